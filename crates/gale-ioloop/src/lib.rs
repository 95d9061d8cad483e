//! The gale IOLoop: one thread multiplexing fd handlers, callbacks, timers and async tasks.
//!
//! This is Tornado's IOLoop in Rust, and a complete event loop on its own: depend on `gale-ioloop` alone to
//! write callback-style code (Tornado's `add_handler` / `add_callback` / `call_later`), async Rust (`spawn`,
//! [`sleep`], [`timeout`], [`Source`] readiness futures), or both on the same thread. Futures need not be
//! `Send`; handlers and tasks can share state through `Rc<RefCell<…>>`.
//!
//! It stands on [`gale_poller`]: the loop holds a `Box<dyn Poller>`, by default the platform's best
//! backend or the one named by `GALE_POLLER`, or any backend you give [`IOLoop::with_poller`] — including one
//! you wrote.
//!
//! # Callbacks
//!
//! ```
//! use gale_ioloop::IOLoop;
//! use std::{cell::RefCell, rc::Rc, time::Duration};
//!
//! let io_loop = IOLoop::new()?;
//! let log = Rc::new(RefCell::new(Vec::new()));
//! let (l, lp) = (log.clone(), io_loop.clone());
//! io_loop.call_later(Duration::from_millis(5), move || {
//!     l.borrow_mut().push("timer");
//!     lp.stop();
//! });
//! let l = log.clone();
//! io_loop.add_callback(move || l.borrow_mut().push("callback"));
//! io_loop.start()?;
//! assert_eq!(*log.borrow(), ["callback", "timer"]);
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! # Async
//!
//! ```
//! use gale_ioloop::{IOLoop, sleep, timeout};
//! use std::time::Duration;
//!
//! let io_loop = IOLoop::new()?;
//! let answer = io_loop.run_sync(async {
//!     let task = gale_ioloop::spawn(async {
//!         sleep(Duration::from_millis(1)).await;
//!         21
//!     });
//!     let slow = timeout(Duration::from_millis(1), sleep(Duration::from_secs(60))).await;
//!     assert!(slow.is_err());
//!     task.await.unwrap() * 2
//! });
//! assert_eq!(answer, 42);
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! # fd handlers
//!
//! ```
//! use gale_ioloop::{IOLoop, Interest};
//! use std::io::{Read, Write};
//! use std::os::unix::net::UnixStream;
//!
//! let io_loop = IOLoop::new()?;
//! let (mut a, mut b) = UnixStream::pair()?;
//! b.set_nonblocking(true)?;
//! let fd = std::os::fd::AsRawFd::as_raw_fd(&b);
//! let l = io_loop.clone();
//! let mut reader = b.try_clone()?;
//! io_loop.add_handler(&b, Interest::READABLE, move |_fd, event| {
//!     assert!(event.is_readable());
//!     let mut buf = [0u8; 8];
//!     assert_eq!(reader.read(&mut buf).unwrap(), 2);
//!     l.stop();
//! })?;
//! a.write_all(b"hi")?;
//! io_loop.start()?;
//! io_loop.remove_handler(&b)?;
//! # let _ = fd;
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! # The iteration
//!
//! Each turn follows Tornado 5.1.1's `PollIOLoop.start`: remember how many callbacks are pending (ones added
//! meanwhile wait a turn, so callbacks cannot starve I/O), collect the due timers before running any, run the
//! callbacks, the woken tasks and the due timers, poll with timeout zero if more work is pending or else until
//! the next timer (one more than 100 ms away is waited for in two steps, the first ending 100 ms short, so that
//! an iteration reads the clock once), retry on `EINTR`, then dispatch ready fds one at a time. No user code ever runs while the
//! loop holds a borrow of its own tables, so any callback may add or remove anything, itself included.

#![warn(missing_docs, missing_debug_implementations)]

mod executor;
mod handle;
mod ioloop;
mod periodic;
mod remote;
mod source;
mod time;
mod timer;

pub use executor::{JoinError, JoinHandle};
pub use gale_poller::{self as poller, Event, Interest, Poller};
pub use handle::LoopHandle;
pub use ioloop::IOLoop;
pub use periodic::{PeriodicCallback, next_run};
pub use source::Source;
pub use time::{Elapsed, Sleep, Timeout, sleep, sleep_until, timeout};
pub use timer::TimeoutHandle;

/// Spawns `future` on the current thread's loop ([`IOLoop::current`]); see [`IOLoop::spawn`].
pub fn spawn<F: std::future::Future + 'static>(future: F) -> JoinHandle<F::Output> {
    IOLoop::current().spawn(future)
}

/// The current time, cheaply: inside a running loop, the time that loop read at the start of its current
/// iteration (all callbacks of one iteration see one time); elsewhere [`Instant::now`](std::time::Instant::now).
/// Good for coarse deadlines such as idle timeouts: it lags the true time by at most the age of the
/// iteration, so a deadline computed from it is that much earlier.
pub fn now() -> std::time::Instant {
    remote::LOOP_NOW.with(|c| c.get()).unwrap_or_else(std::time::Instant::now)
}

/// The text of a panic payload, for logs.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}
