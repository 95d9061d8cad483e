//! [`LoopHandle`]: what other threads may do with a loop.

use crate::remote::Remote;
use std::sync::Arc;

/// A `Send + Sync + Clone` handle to an [`IOLoop`](crate::IOLoop), for other threads.
///
/// # Examples
///
/// ```
/// use gale_ioloop::IOLoop;
///
/// let io_loop = IOLoop::new()?;
/// let handle = io_loop.handle();
/// let worker = std::thread::spawn(move || {
///     handle.add_callback(|| gale_ioloop::IOLoop::current().stop());
/// });
/// io_loop.start()?; // returns once the callback sent from the thread has run
/// worker.join().unwrap();
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct LoopHandle {
    pub(crate) remote: Arc<Remote>,
}

impl LoopHandle {
    /// Runs `callback` on the loop's thread on its next iteration, waking the loop if it is blocked in a wait.
    /// Returns `false` (dropping the callback) if the loop is closed.
    pub fn add_callback(&self, callback: impl FnOnce() + Send + 'static) -> bool {
        self.remote.add_callback(Box::new(callback))
    }

    /// Stops the loop after its current iteration (or makes its next `start` return at once).
    pub fn stop(&self) {
        self.remote.request_stop();
    }

    /// Whether the loop was closed.
    pub fn is_closed(&self) -> bool {
        self.remote.closed.load(std::sync::atomic::Ordering::Acquire)
    }
}
