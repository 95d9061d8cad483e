//! [`Source`]: an fd registered with the loop, whose readiness futures await.

use crate::IOLoop;
use gale_poller::Interest;
use std::fmt;
use std::future::poll_fn;
use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::rc::Rc;
use std::task::{Context, Poll};

/// An I/O object registered with an [`IOLoop`] for readiness-driven async I/O — the building block of streams.
///
/// The intended pattern is "try the syscall first, wait only on `WouldBlock`": [`Source::read_with`] and
/// [`Source::write_with`] do exactly that. The poller watches a direction only while somebody waits for it,
/// so an idle source costs no wake-ups, and a steady request/response connection needs no `epoll_ctl`. The
/// poller learns of the fd only when somebody first waits on it: a source whose syscalls never block costs
/// no poller call at all.
///
/// Dropping the source deregisters the fd and then drops the I/O object.
///
/// # Examples
///
/// ```
/// use gale_ioloop::{IOLoop, Source};
/// use std::io::{Read, Write};
/// use std::os::unix::net::UnixStream;
///
/// let io_loop = IOLoop::new()?;
/// let (a, mut b) = UnixStream::pair()?;
/// a.set_nonblocking(true)?;
/// let n = io_loop.run_sync(async move {
///     let source = Source::new(a).unwrap();
///     std::thread::spawn(move || b.write_all(b"hello"));
///     let mut buf = [0u8; 16];
///     source.read_with(|mut s| s.read(&mut buf)).await.unwrap()
/// });
/// assert_eq!(n, 5);
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Source<T: AsFd + 'static> {
    io: Rc<T>,
    key: usize,
    io_loop: IOLoop,
}

impl<T: AsFd + 'static> fmt::Debug for Source<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Source").field("fd", &self.io.as_fd().as_raw_fd()).field("key", &self.key).finish()
    }
}

impl<T: AsFd + 'static> Source<T> {
    /// Registers `io` (which should be in non-blocking mode) with the current thread's loop.
    ///
    /// # Errors
    ///
    /// If the fd is already registered with the loop. The poller sees the fd only at the first wait, so an fd
    /// it cannot watch (a regular file, for epoll) fails that wait, not this call.
    pub fn new(io: T) -> io::Result<Source<T>> {
        Source::with_loop(&IOLoop::current(), io)
    }

    /// Registers `io` with `io_loop`.
    ///
    /// # Errors
    ///
    /// As [`Source::new`].
    pub fn with_loop(io_loop: &IOLoop, io: T) -> io::Result<Source<T>> {
        let io = Rc::new(io);
        let key = io_loop.register_source(io.clone())?;
        Ok(Source { io, key, io_loop: io_loop.clone() })
    }

    /// The I/O object.
    pub fn get_ref(&self) -> &T {
        &self.io
    }

    /// The loop this source is registered with.
    pub fn io_loop(&self) -> &IOLoop {
        &self.io_loop
    }

    /// Polls for read readiness: `Ready` consumes one readiness report; `Pending` arranges a wake-up.
    ///
    /// # Errors
    ///
    /// If the poller cannot watch the fd, or the loop was closed.
    #[inline]
    pub fn poll_readable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.io_loop.poll_source(self.key, Interest::READABLE, cx.waker())
    }

    /// Polls for write readiness, as [`poll_readable`](Source::poll_readable).
    ///
    /// # Errors
    ///
    /// As [`poll_readable`](Source::poll_readable).
    #[inline]
    pub fn poll_writable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.io_loop.poll_source(self.key, Interest::WRITABLE, cx.waker())
    }

    /// Waits until the fd is readable.
    ///
    /// # Errors
    ///
    /// As [`poll_readable`](Source::poll_readable).
    pub async fn readable(&self) -> io::Result<()> {
        poll_fn(|cx| self.poll_readable(cx)).await
    }

    /// Waits until the fd is writable.
    ///
    /// # Errors
    ///
    /// As [`poll_readable`](Source::poll_readable).
    pub async fn writable(&self) -> io::Result<()> {
        poll_fn(|cx| self.poll_writable(cx)).await
    }

    /// Whether the poller has reported a hang-up on this fd.
    pub fn is_hangup(&self) -> bool {
        self.io_loop.with_source(self.key, |s| s.is_none_or(|s| s.hangup))
    }

    /// Runs `op` until it does not return `WouldBlock`, waiting for read readiness in between.
    ///
    /// # Errors
    ///
    /// Whatever `op` returns other than `WouldBlock`; `Interrupted` is retried.
    pub fn poll_read_with<R>(&self, cx: &mut Context<'_>, op: impl FnMut(&T) -> io::Result<R>) -> Poll<io::Result<R>> {
        self.poll_with(cx, Interest::READABLE, op)
    }

    /// Runs `op` until it does not return `WouldBlock`, waiting for write readiness in between.
    ///
    /// # Errors
    ///
    /// As [`poll_read_with`](Source::poll_read_with).
    pub fn poll_write_with<R>(&self, cx: &mut Context<'_>, op: impl FnMut(&T) -> io::Result<R>) -> Poll<io::Result<R>> {
        self.poll_with(cx, Interest::WRITABLE, op)
    }

    #[inline]
    fn poll_with<R>(
        &self,
        cx: &mut Context<'_>,
        dir: Interest,
        mut op: impl FnMut(&T) -> io::Result<R>,
    ) -> Poll<io::Result<R>> {
        loop {
            match op(&self.io) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    // The readiness that let `op` run is spent: wait for the next.
                    match self.io_loop.poll_source_after_would_block(self.key, dir, cx.waker()) {
                        Poll::Ready(Ok(())) => continue,
                        Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                        Poll::Pending => return Poll::Pending,
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                result => return Poll::Ready(result),
            }
        }
    }

    /// Async form of [`poll_read_with`](Source::poll_read_with).
    ///
    /// # Errors
    ///
    /// As [`poll_read_with`](Source::poll_read_with).
    pub async fn read_with<R>(&self, mut op: impl FnMut(&T) -> io::Result<R>) -> io::Result<R> {
        poll_fn(|cx| self.poll_with(cx, Interest::READABLE, &mut op)).await
    }

    /// Async form of [`poll_write_with`](Source::poll_write_with).
    ///
    /// # Errors
    ///
    /// As [`poll_read_with`](Source::poll_read_with).
    pub async fn write_with<R>(&self, mut op: impl FnMut(&T) -> io::Result<R>) -> io::Result<R> {
        poll_fn(|cx| self.poll_with(cx, Interest::WRITABLE, &mut op)).await
    }
}

impl<T: AsFd + 'static> Drop for Source<T> {
    fn drop(&mut self) {
        self.io_loop.deregister_source(self.key);
    }
}
