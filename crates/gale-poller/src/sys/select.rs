//! Bindings to select (every unix).
//!
//! # No `FD_SETSIZE` limit
//!
//! The C `fd_set` holds fds below `FD_SETSIZE` (1,024 on Linux and the BSDs) and silently corrupts memory past
//! it. This backend does not use it: its sets are rustix's growable bit vectors (`Vec<FdSetElement>`, grown by
//! [`fd_set_num_elements`] to fit the highest registered fd) and `select` is called with the matching `nfds`,
//! which Linux and the BSDs accept up to the process's fd limit (rustix builds Apple targets as if with
//! `_DARWIN_UNLIMITED_SELECT`). Any open fd can be registered.
//!
//! # Cost
//!
//! A wait copies the two master sets (one bit per fd number up to the highest registered one), the kernel
//! walks them, and the results are walked again here: O(highest registered fd), whatever the number of
//! registrations or ready fds. A poller watching only fd 5000 pays for 5,000 bits.
//!
//! # Events
//!
//! Read interest puts the fd in `readfds`, write interest in `writefds`; [`Interest::NONE`] keeps the
//! registration (its token stays in `regs`) but in neither set, so nothing at all is reported for it. `exceptfds` is not
//! used: it signals TCP urgent ("out-of-band") data, not an error, and no gale layer reads urgent data.
//!
//! select reports only "a read would not block" and "a write would not block". A hang-up or end-of-file
//! therefore shows as readable only ([`Event::is_hangup`] is never set) and a pending socket error as readable
//! and writable ([`Event::is_error`] is never set); the next I/O call returns the end-of-file or the error. An
//! fd closed while still registered (which breaks the registration contract) makes every wait fail with
//! `EBADF` until it is deregistered.
//!
//! # Fairness
//!
//! When more fds are ready than [`Events::capacity`], the next wait's scan starts at the first ready fd that
//! did not fit, so every ready fd is delivered within a few waits even if none is ever consumed.

use crate::sys::wake::WakeFd;
use crate::{Event, Events, Interest, Notifier, Poller, Token, errors, timespec};
use rustix::event::{FdSetElement, FdSetIter, fd_set_bound, fd_set_insert, fd_set_num_elements, fd_set_remove};
use rustix::fd::{AsRawFd, BorrowedFd, RawFd};
use std::fmt;
use std::io;
use std::iter::Peekable;
use std::sync::Arc;
use std::time::Duration;

/// The select backend: O(highest registered fd) per wait, no limit on fd numbers.
pub struct Select {
    /// The token of each registration, indexed by fd number: select's own shape. The interest is recorded by
    /// the fd's presence in the master sets.
    regs: Vec<Option<Token>>,
    /// The number of `Some` in `regs`.
    registered: usize,
    /// The master sets, changed by `register`, `modify` and `deregister`; the wake-up fd is always in `read`.
    read: Vec<FdSetElement>,
    write: Vec<FdSetElement>,
    /// The working sets handed to the kernel, refilled from the master sets by every wait.
    read_ready: Vec<FdSetElement>,
    write_ready: Vec<FdSetElement>,
    /// Where the next scan of the results starts, so that a full `Events` does not starve the higher fds.
    cursor: RawFd,
    wake: Arc<WakeFd>,
}

impl fmt::Debug for Select {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Select")
            .field("registered", &self.registered)
            .field("nfds", &self.nfds())
            .field("wake", &self.wake)
            .finish()
    }
}

/// Adds `fd` to `set`, growing it to hold `fd`.
fn insert(set: &mut Vec<FdSetElement>, fd: RawFd) {
    let len = fd_set_num_elements(1, fd + 1);
    if set.len() < len {
        set.resize(len, FdSetElement::default());
    }
    fd_set_insert(set, fd);
}

/// Removes `fd` from `set`, if the set is long enough to hold it at all.
fn remove(set: &mut [FdSetElement], fd: RawFd) {
    if set.len() >= fd_set_num_elements(1, fd + 1) {
        fd_set_remove(set, fd);
    }
}

/// Copies the first `len` elements of `from` into `to`, padded with empty elements.
fn refill(to: &mut Vec<FdSetElement>, from: &[FdSetElement], len: usize) {
    to.clear();
    to.extend_from_slice(&from[..len.min(from.len())]);
    to.resize(len, FdSetElement::default());
}

/// The fds in either of two result sets, in ascending order, with whether each is readable and writable.
struct Ready<'a> {
    read: Peekable<FdSetIter<'a>>,
    write: Peekable<FdSetIter<'a>>,
}

impl<'a> Ready<'a> {
    fn new(read: &'a [FdSetElement], write: &'a [FdSetElement]) -> Ready<'a> {
        Ready { read: FdSetIter::new(read).peekable(), write: FdSetIter::new(write).peekable() }
    }
}

impl Iterator for Ready<'_> {
    type Item = (RawFd, bool, bool);

    fn next(&mut self) -> Option<(RawFd, bool, bool)> {
        match (self.read.peek().copied(), self.write.peek().copied()) {
            (None, None) => None,
            (Some(r), Some(w)) if r == w => {
                self.read.next();
                self.write.next();
                Some((r, true, true))
            }
            (Some(r), w) if w.is_none_or(|w| r < w) => {
                self.read.next();
                Some((r, true, false))
            }
            (_, w) => {
                self.write.next();
                w.map(|w| (w, false, true))
            }
        }
    }
}

impl Select {
    /// Creates the backend with its wake-up fd (an eventfd on Linux and Android, a pipe elsewhere).
    ///
    /// # Errors
    ///
    /// The OS error if the wake-up fd cannot be created.
    pub fn new() -> io::Result<Select> {
        let wake = Arc::new(WakeFd::new()?);
        let mut read = Vec::new();
        insert(&mut read, wake.read_fd().as_raw_fd());
        Ok(Select {
            regs: Vec::new(),
            registered: 0,
            read,
            write: Vec::new(),
            read_ready: Vec::new(),
            write_ready: Vec::new(),
            cursor: 0,
            wake,
        })
    }

    fn wake_fd(&self) -> RawFd {
        self.wake.read_fd().as_raw_fd()
    }

    fn token(&self, fd: RawFd) -> Option<Token> {
        self.regs.get(fd as usize).copied().flatten()
    }

    /// Puts `fd` in the master sets that `interest` asks for, and takes it out of the others.
    fn watch(&mut self, fd: RawFd, interest: Interest) {
        if interest.is_readable() {
            insert(&mut self.read, fd);
        } else {
            remove(&mut self.read, fd);
        }
        if interest.is_writable() {
            insert(&mut self.write, fd);
        } else {
            remove(&mut self.write, fd);
        }
    }

    /// The `nfds` argument for the master sets: one past the highest fd in either.
    fn nfds(&self) -> RawFd {
        fd_set_bound(&self.read).max(fd_set_bound(&self.write))
    }
}

impl Poller for Select {
    fn register(&mut self, fd: BorrowedFd<'_>, token: Token, interest: Interest) -> io::Result<()> {
        if token == Token::WAKE {
            return Err(errors::reserved_token());
        }
        let raw = fd.as_raw_fd();
        if self.token(raw).is_some() || raw == self.wake_fd() {
            return Err(errors::already_registered(raw));
        }
        let i = raw as usize;
        if self.regs.len() <= i {
            self.regs.resize(i + 1, None);
        }
        self.regs[i] = Some(token);
        self.registered += 1;
        self.watch(raw, interest);
        Ok(())
    }

    fn modify(&mut self, fd: BorrowedFd<'_>, token: Token, interest: Interest) -> io::Result<()> {
        if token == Token::WAKE {
            return Err(errors::reserved_token());
        }
        let raw = fd.as_raw_fd();
        let Some(registered) = self.regs.get_mut(raw as usize).and_then(Option::as_mut) else {
            return Err(errors::not_registered(raw));
        };
        *registered = token;
        self.watch(raw, interest);
        Ok(())
    }

    fn deregister(&mut self, fd: BorrowedFd<'_>) -> io::Result<()> {
        let raw = fd.as_raw_fd();
        if self.regs.get_mut(raw as usize).and_then(Option::take).is_none() {
            return Err(errors::not_registered(raw));
        }
        self.registered -= 1;
        self.watch(raw, Interest::NONE);
        Ok(())
    }

    fn wait(&mut self, events: &mut Events, timeout: Option<Duration>) -> io::Result<()> {
        events.clear();
        let nfds = self.nfds();
        let len = fd_set_num_elements(self.registered + 1, nfds);
        refill(&mut self.read_ready, &self.read, len);
        refill(&mut self.write_ready, &self.write, len);
        let ts = timespec(timeout);
        // SAFETY: `select` requires every fd in the sets to be open. The sets hold the wake-up fd, owned by
        // `self.wake`, and registered fds, which the registration contract keeps open until they are
        // deregistered (and so taken out of the master sets). Both sets have `len` elements, enough for `nfds`.
        let ready = unsafe {
            rustix::event::select(nfds, Some(&mut self.read_ready), Some(&mut self.write_ready), None, ts.as_ref())
        }?;
        if ready == 0 {
            return Ok(());
        }
        let wake_fd = self.wake_fd();
        let cursor = self.cursor;
        // From the cursor to the end, then from the start up to the cursor.
        let scan = Ready::new(&self.read_ready, &self.write_ready)
            .skip_while(|&(fd, ..)| fd < cursor)
            .chain(Ready::new(&self.read_ready, &self.write_ready).take_while(|&(fd, ..)| fd < cursor));
        for (fd, readable, writable) in scan {
            if fd == wake_fd {
                self.wake.drain();
                continue;
            }
            let Some(token) = self.token(fd) else {
                continue; // Not reachable: only registered fds are in the sets.
            };
            if events.is_full() {
                self.cursor = fd;
                break;
            }
            events.push(Event::new(token, readable, writable, false, false));
        }
        Ok(())
    }

    fn notifier(&self) -> Notifier {
        Notifier::new(self.wake.clone())
    }

    fn name(&self) -> &'static str {
        "select"
    }
}
