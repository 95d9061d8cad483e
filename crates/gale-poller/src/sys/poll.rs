//! Bindings to poll (every unix). Placeholder: being written.

use crate::{Events, Interest, Notifier, Poller, Token};
use rustix::fd::BorrowedFd;
use std::io;
use std::time::Duration;

/// The poll backend.
#[derive(Debug)]
pub struct Poll {
    inner: crate::sys::epoll::Epoll,
}

impl Poll {
    /// Creates the backend.
    ///
    /// # Errors
    ///
    /// The OS error if its wake-up fd cannot be created.
    pub fn new() -> io::Result<Poll> {
        Ok(Poll { inner: crate::sys::epoll::Epoll::new()? })
    }
}

impl Poller for Poll {
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
        "poll"
    }
}
