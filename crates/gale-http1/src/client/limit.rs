//! The `max_clients` limit: at most that many fetches in progress, the rest waiting in FIFO order (Tornado's
//! request queue).
//!
//! A freed slot is handed straight to the first waiter, so a fetch arriving later cannot overtake the queue. A
//! waiter dropped while queued (its fetch cancelled or timed out) leaves the queue; one dropped after being
//! handed a slot passes it on.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::future::poll_fn;
use std::rc::Rc;
use std::task::{Poll, Waker};

/// A counting semaphore for one thread.
#[derive(Clone)]
pub(crate) struct Limiter {
    state: Rc<RefCell<State>>,
}

struct State {
    available: usize,
    queue: VecDeque<Rc<Waiter>>,
}

#[derive(Default)]
struct Waiter {
    granted: Cell<bool>,
    waker: RefCell<Option<Waker>>,
}

impl fmt::Debug for Limiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.state.borrow();
        f.debug_struct("Limiter").field("available", &s.available).field("queued", &s.queue.len()).finish()
    }
}

/// One slot, given back when dropped.
pub(crate) struct Permit {
    state: Rc<RefCell<State>>,
}

impl fmt::Debug for Permit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Permit")
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        release(&self.state);
    }
}

/// Hands a slot to the first waiter, or makes it available.
fn release(state: &Rc<RefCell<State>>) {
    let next = {
        let mut s = state.borrow_mut();
        let next = s.queue.pop_front();
        if next.is_none() {
            s.available += 1;
        }
        next
    };
    if let Some(waiter) = next {
        waiter.granted.set(true);
        let waker = waiter.waker.borrow_mut().take();
        if let Some(w) = waker {
            w.wake();
        }
    }
}

/// Removes a waiter from the queue when its acquire is dropped, or passes on a slot it was handed.
struct QueueGuard<'a> {
    state: &'a Rc<RefCell<State>>,
    waiter: Rc<Waiter>,
    done: bool,
}

impl Drop for QueueGuard<'_> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        if self.waiter.granted.get() {
            release(self.state);
        } else {
            self.state.borrow_mut().queue.retain(|w| !Rc::ptr_eq(w, &self.waiter));
        }
    }
}

impl Limiter {
    /// A limiter with `slots` slots (at least one).
    pub(crate) fn new(slots: usize) -> Limiter {
        Limiter { state: Rc::new(RefCell::new(State { available: slots.max(1), queue: VecDeque::new() })) }
    }

    /// Waits for a slot.
    pub(crate) async fn acquire(&self) -> Permit {
        let waiter = {
            let mut s = self.state.borrow_mut();
            if s.available > 0 && s.queue.is_empty() {
                s.available -= 1;
                return Permit { state: self.state.clone() };
            }
            let waiter = Rc::new(Waiter::default());
            s.queue.push_back(waiter.clone());
            waiter
        };
        let mut guard = QueueGuard { state: &self.state, waiter, done: false };
        poll_fn(|cx| {
            if guard.waiter.granted.get() {
                return Poll::Ready(());
            }
            *guard.waiter.waker.borrow_mut() = Some(cx.waker().clone());
            Poll::Pending
        })
        .await;
        guard.done = true;
        Permit { state: self.state.clone() }
    }

    /// Fetches waiting for a slot.
    pub(crate) fn queued(&self) -> usize {
        self.state.borrow().queue.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;
    use std::pin::pin;
    use std::task::Context;

    fn poll_once<F: Future>(f: std::pin::Pin<&mut F>) -> Poll<F::Output> {
        f.poll(&mut Context::from_waker(Waker::noop()))
    }

    #[test]
    fn slots_go_to_waiters_in_order() {
        let limiter = Limiter::new(1);
        let first = pin!(limiter.acquire());
        let Poll::Ready(p1) = poll_once(first) else { panic!("a free slot is taken at once") };
        let mut second = pin!(limiter.acquire());
        let mut third = pin!(limiter.acquire());
        assert!(poll_once(second.as_mut()).is_pending());
        assert!(poll_once(third.as_mut()).is_pending());
        assert_eq!(limiter.queued(), 2);
        drop(p1);
        assert!(poll_once(third.as_mut()).is_pending(), "the slot went to the first in line");
        let Poll::Ready(p2) = poll_once(second.as_mut()) else { panic!("second in line is served") };
        drop(p2);
        assert!(poll_once(third.as_mut()).is_ready());
    }

    #[test]
    fn a_cancelled_waiter_leaves_the_queue_or_passes_its_slot_on() {
        let limiter = Limiter::new(1);
        let p1 = match poll_once(pin!(limiter.acquire())) {
            Poll::Ready(p) => p,
            Poll::Pending => panic!("free slot"),
        };
        {
            let mut queued = Box::pin(limiter.acquire());
            assert!(poll_once(queued.as_mut()).is_pending());
            assert_eq!(limiter.queued(), 1);
        }
        assert_eq!(limiter.queued(), 0, "dropped while queued");
        let mut handed = Box::pin(limiter.acquire());
        assert!(poll_once(handed.as_mut()).is_pending());
        let mut last = pin!(limiter.acquire());
        assert!(poll_once(last.as_mut()).is_pending());
        drop(p1); // handed to `handed`, which is dropped before it sees it
        drop(handed);
        assert!(poll_once(last.as_mut()).is_ready(), "the slot was passed on");
    }
}
