//! The wake-up fd: an eventfd on Linux and Android, a non-blocking pipe elsewhere (polling's `Notifier`).
//!
//! The poller watches [`WakeFd::read_fd`] for readability with [`Token::WAKE`](crate::Token::WAKE); any thread
//! makes it readable with [`Notify::notify`]; the poller drains it after every wait that saw it.

use crate::Notify;
use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::io::Errno;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};

/// A wake-up fd shared by a poller and its notifiers.
#[derive(Debug)]
pub(crate) struct WakeFd {
    read: OwnedFd,
    /// The pipe's write end; `None` for an eventfd, which is read and written through one fd.
    write: Option<OwnedFd>,
    /// Set by `notify` and cleared by `drain`, so that a burst of notifications costs one write.
    pending: AtomicBool,
}

impl WakeFd {
    pub(crate) fn new() -> io::Result<WakeFd> {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        {
            use rustix::event::{EventfdFlags, eventfd};
            let fd = eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)?;
            Ok(WakeFd { read: fd, write: None, pending: AtomicBool::new(false) })
        }
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        {
            use rustix::fs::{OFlags, fcntl_setfl};
            use rustix::io::{FdFlags, fcntl_setfd};
            let (read, write) = rustix::pipe::pipe()?;
            for fd in [&read, &write] {
                fcntl_setfl(fd, OFlags::NONBLOCK)?;
                fcntl_setfd(fd, FdFlags::CLOEXEC)?;
            }
            Ok(WakeFd { read, write: Some(write), pending: AtomicBool::new(false) })
        }
    }

    /// The fd the poller watches for readability.
    pub(crate) fn read_fd(&self) -> BorrowedFd<'_> {
        self.read.as_fd()
    }

    /// Empties the fd so that it is no longer readable; called by the poller after a wait that saw it.
    ///
    /// The fd is emptied *before* `pending` is cleared. The other order loses wake-ups: a `notify` landing
    /// between the two steps would set `pending` and write, the read would swallow that write, and every later
    /// `notify` would see `pending` set and write nothing, with nothing left to wake the poller. In this order
    /// a `notify` landing between the steps is absorbed by the wait that is returning anyway (it asked for the
    /// current or next wait to return, and the current one does), and one landing after them writes again.
    pub(crate) fn drain(&self) {
        let mut buf = [0u8; 64];
        loop {
            match rustix::io::read(&self.read, &mut buf) {
                // A pipe may hold more than one buffer's worth; an eventfd reads as 8 bytes, all at once.
                Ok(n) if n == buf.len() => continue,
                Ok(_) => break,
                Err(Errno::INTR) => continue,
                Err(_) => break, // EAGAIN: empty.
            }
        }
        self.pending.store(false, Ordering::SeqCst);
    }
}

impl Notify for WakeFd {
    fn notify(&self) -> io::Result<()> {
        if self.pending.swap(true, Ordering::SeqCst) {
            return Ok(()); // A wake-up is already on its way.
        }
        let fd = self.write.as_ref().unwrap_or(&self.read);
        loop {
            match rustix::io::write(fd, &1u64.to_ne_bytes()) {
                Ok(_) | Err(Errno::AGAIN) => return Ok(()),
                Err(Errno::INTR) => continue,
                Err(e) => {
                    self.pending.store(false, Ordering::SeqCst);
                    return Err(e.into());
                }
            }
        }
    }
}
