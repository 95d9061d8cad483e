//! Keep-alive connections waiting for their next request, per `(host, port)`.
//!
//! A connection goes back to the pool only after a response that allows it (see `HttpClient`), at most
//! `max_idle_per_host` per origin (the oldest is closed beyond that), and leaves it after `idle_timeout` on a
//! loop timer. Checkout takes the most recently used connection — the likeliest to be alive — and probes it
//! with one non-blocking read: end-of-file means the server closed it while it idled (it is dropped and the next
//! one tried), and unsolicited bytes (a `408` some servers send before closing) condemn it too. The probe
//! cannot see a close that is still in flight; the client retries such requests once (see `HttpClient`).

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::rc::{Rc, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use gale_iostream::ioloop::TimeoutHandle;
use gale_iostream::{IOLoop, IOStream};

/// Connections are pooled per host (lowercase, as in the URL) and port.
pub(crate) type PoolKey = (String, u16);

/// Idle keep-alive connections, shared by the clones of one client.
pub(crate) struct Pool {
    inner: Rc<RefCell<PoolInner>>,
}

struct PoolInner {
    idle: HashMap<PoolKey, Vec<Idle>>,
    max_idle_per_host: usize,
    idle_timeout: Option<Duration>,
    next_id: u64,
}

/// A pooled connection and its expiry timer. Dropping it closes the connection and cancels the timer.
struct Idle {
    id: u64,
    stream: Option<IOStream>,
    io_loop: IOLoop,
    timer: Option<TimeoutHandle>,
}

impl Idle {
    /// Takes the connection out, cancelling the expiry timer.
    fn take(mut self) -> IOStream {
        self.stream.take().expect("an idle entry holds its stream until taken or dropped")
    }
}

impl Drop for Idle {
    fn drop(&mut self) {
        if let Some(timer) = self.timer.take() {
            self.io_loop.remove_timeout(timer);
        }
        if let Some(stream) = self.stream.take() {
            stream.close();
        }
    }
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = self.inner.borrow();
        f.debug_struct("Pool")
            .field("idle", &p.idle.values().map(Vec::len).sum::<usize>())
            .field("max_idle_per_host", &p.max_idle_per_host)
            .field("idle_timeout", &p.idle_timeout)
            .finish()
    }
}

impl Pool {
    /// An empty pool keeping at most `max_idle_per_host` connections per origin, each for `idle_timeout`.
    pub(crate) fn new(max_idle_per_host: usize, idle_timeout: Option<Duration>) -> Pool {
        Pool {
            inner: Rc::new(RefCell::new(PoolInner {
                idle: HashMap::new(),
                max_idle_per_host,
                idle_timeout,
                next_id: 0,
            })),
        }
    }

    /// Whether connections are kept at all.
    pub(crate) fn enabled(&self) -> bool {
        self.inner.borrow().max_idle_per_host > 0
    }

    /// An idle connection to `key` that is still open, if there is one. Dead ones found on the way are closed.
    pub(crate) fn checkout(&self, key: &PoolKey) -> Option<IOStream> {
        let current = IOLoop::try_current();
        loop {
            let idle = {
                let mut p = self.inner.borrow_mut();
                let list = p.idle.get_mut(key)?;
                let idle = list.pop();
                if list.is_empty() {
                    p.idle.remove(key);
                }
                idle?
            };
            if !current.as_ref().is_some_and(|l| l.ptr_eq(&idle.io_loop)) {
                // Registered with another loop (the client moved between loops on this thread): unusable here.
                continue;
            }
            let stream = idle.take();
            if still_open(&stream) {
                return Some(stream);
            }
            log::debug!("pooled connection to {}:{} was closed while idle", key.0, key.1);
            stream.close();
        }
    }

    /// Keeps `stream`, which just finished a response and may carry another request, for later. Beyond
    /// `max_idle_per_host` the oldest connection to `key` is closed.
    pub(crate) fn checkin(&self, key: PoolKey, stream: IOStream) {
        let Some(io_loop) = IOLoop::try_current() else { return stream.close() };
        let evicted = {
            let mut p = self.inner.borrow_mut();
            if p.max_idle_per_host == 0 {
                drop(p);
                return stream.close();
            }
            let id = p.next_id;
            p.next_id += 1;
            let timer = p.idle_timeout.map(|after| {
                let pool = Rc::downgrade(&self.inner);
                let key = key.clone();
                io_loop.call_later(after, move || expire(&pool, &key, id))
            });
            let max = p.max_idle_per_host;
            let list = p.idle.entry(key).or_default();
            list.push(Idle { id, stream: Some(stream), io_loop, timer });
            if list.len() > max { Some(list.remove(0)) } else { None }
        };
        // Closed here, with the pool no longer borrowed.
        drop(evicted);
    }

    /// Idle connections right now.
    pub(crate) fn idle_count(&self) -> usize {
        self.inner.borrow().idle.values().map(Vec::len).sum()
    }

    /// Closes every idle connection.
    pub(crate) fn clear(&self) {
        let idle = std::mem::take(&mut self.inner.borrow_mut().idle);
        drop(idle);
    }
}

/// The idle timer of connection `id` fired: close it, if it is still in the pool.
fn expire(pool: &Weak<RefCell<PoolInner>>, key: &PoolKey, id: u64) {
    let Some(pool) = pool.upgrade() else { return };
    let expired = {
        let mut p = pool.borrow_mut();
        let Some(list) = p.idle.get_mut(key) else { return };
        let Some(i) = list.iter().position(|e| e.id == id) else { return };
        let mut idle = list.remove(i);
        idle.timer = None; // it has just run
        if list.is_empty() {
            p.idle.remove(key);
        }
        idle
    };
    log::debug!("closing a connection to {}:{} idle for too long", key.0, key.1);
    drop(expired);
}

/// Whether a connection that idled in the pool can carry a request: not closed, nothing unread, and a
/// non-blocking read finds neither end-of-file nor unsolicited bytes.
fn still_open(stream: &IOStream) -> bool {
    if stream.closed() || stream.buffered() > 0 {
        return false;
    }
    let mut cx = Context::from_waker(Waker::noop());
    match stream.poll_fill(&mut cx) {
        Poll::Pending => true,
        Poll::Ready(Ok(0) | Err(_)) => false,
        Poll::Ready(Ok(n)) => {
            log::debug!("pooled connection received {n} unsolicited bytes; dropping it");
            false
        }
    }
}
