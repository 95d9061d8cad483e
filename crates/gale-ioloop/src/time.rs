//! Timer futures: [`sleep`], [`sleep_until`] and [`timeout`].

use crate::{IOLoop, TimeoutHandle};
use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// Completes once `duration` has passed. Must be polled on a loop's thread ([`IOLoop::current`]).
pub fn sleep(duration: Duration) -> Sleep {
    sleep_until(Instant::now() + duration)
}

/// Completes at `deadline`.
pub fn sleep_until(deadline: Instant) -> Sleep {
    Sleep { deadline, timer: None, shared: Rc::new(RefCell::new(SleepState { fired: false, waker: None })) }
}

struct SleepState {
    fired: bool,
    waker: Option<Waker>,
}

/// The future of [`sleep`]; dropping it cancels its timer.
pub struct Sleep {
    deadline: Instant,
    timer: Option<(IOLoop, TimeoutHandle)>,
    shared: Rc<RefCell<SleepState>>,
}

impl fmt::Debug for Sleep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sleep").field("deadline", &self.deadline).finish()
    }
}

impl Sleep {
    /// When this sleep completes.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Moves the deadline (the timer is rescheduled on the next poll).
    pub fn reset(&mut self, deadline: Instant) {
        self.cancel();
        self.deadline = deadline;
        self.shared.borrow_mut().fired = false;
    }

    fn cancel(&mut self) {
        if let Some((l, h)) = self.timer.take() {
            l.remove_timeout(h);
        }
    }
}

impl Future for Sleep {
    type Output = ();

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        // Armed, not fired, and polled by the task it will wake (the usual case, as when a deadline guards
        // every read of a connection): nothing to do, not even a clock read.
        if self.timer.is_some() {
            let s = self.shared.borrow();
            if !s.fired && s.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                return Poll::Pending;
            }
        }
        self.poll_slow(cx)
    }
}

impl Sleep {
    #[inline(never)]
    fn poll_slow(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        {
            let mut s = self.shared.borrow_mut();
            // Armed and not fired: the timer will wake us; no need to read the clock.
            if self.timer.is_some() && !s.fired {
                match &s.waker {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    _ => s.waker = Some(cx.waker().clone()),
                }
                return Poll::Pending;
            }
            if s.fired || Instant::now() >= self.deadline {
                s.fired = true;
                drop(s);
                self.cancel();
                return Poll::Ready(());
            }
            match &s.waker {
                Some(w) if w.will_wake(cx.waker()) => {}
                _ => s.waker = Some(cx.waker().clone()),
            }
        }
        if self.timer.is_none() {
            let io_loop = IOLoop::current();
            let shared = Rc::downgrade(&self.shared);
            let handle = io_loop.call_at(self.deadline, move || {
                if let Some(shared) = shared.upgrade() {
                    let waker = {
                        let mut s = shared.borrow_mut();
                        s.fired = true;
                        s.waker.take()
                    };
                    if let Some(w) = waker {
                        w.wake();
                    }
                }
            });
            self.timer = Some((io_loop, handle));
        }
        Poll::Pending
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        self.cancel();
    }
}

/// The error of [`timeout`]: the deadline passed first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed;

impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("deadline has elapsed")
    }
}

impl std::error::Error for Elapsed {}

impl From<Elapsed> for std::io::Error {
    fn from(_: Elapsed) -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::TimedOut, Elapsed)
    }
}

/// Runs `future` for at most `duration`: its output, or [`Elapsed`] (and the future is dropped).
pub fn timeout<F: Future>(duration: Duration, future: F) -> Timeout<F> {
    Timeout { future: Box::pin(future), sleep: sleep(duration) }
}

/// The future of [`timeout`].
pub struct Timeout<F: Future> {
    future: Pin<Box<F>>,
    sleep: Sleep,
}

impl<F: Future> fmt::Debug for Timeout<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Timeout").field("deadline", &self.sleep.deadline).finish()
    }
}

impl<F: Future> Future for Timeout<F> {
    type Output = Result<F::Output, Elapsed>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let Poll::Ready(v) = self.future.as_mut().poll(cx) {
            return Poll::Ready(Ok(v));
        }
        match Pin::new(&mut self.sleep).poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(Elapsed)),
            Poll::Pending => Poll::Pending,
        }
    }
}
