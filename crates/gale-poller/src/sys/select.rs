//! Bindings to select (every unix). Placeholder: being written.

use crate::{Events, Interest, Notifier, Poller, Token};
use rustix::fd::BorrowedFd;
use std::io;
use std::time::Duration;

/// The select backend.
#[derive(Debug)]
pub struct Select {
    inner: crate::sys::epoll::Epoll,
}

impl Select {
    /// Creates the backend.
    ///
    /// # Errors
    ///
    /// The OS error if its wake-up fd cannot be created.
    pub fn new() -> io::Result<Select> {
        Ok(Select { inner: crate::sys::epoll::Epoll::new()? })
    }
}

impl Poller for Select {
    fn register(&mut self, fd: BorrowedFd<'_>, token: Token, interest: Interest) -> io::Result<()> {
        self.inner.register(fd, token, interest)
    }
    fn modify(&mut self, fd: BorrowedFd<'_>, token: Token, interest: Interest) -> io::Result<()> {
        self.inner.modify(fd, token, interest)
    }
    fn deregister(&mut self, fd: BorrowedFd<'_>) -> io::Result<()> {
        self.inner.deregister(fd)
    }
    fn wait(&mut self, events: &mut Events, timeout: Option<Duration>) -> io::Result<()> {
        self.inner.wait(events, timeout)
    }
    fn notifier(&self) -> Notifier {
        self.inner.notifier()
    }
    fn name(&self) -> &'static str {
        "select"
    }
}
