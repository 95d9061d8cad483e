//! Bindings to kqueue (macOS, iOS, FreeBSD, NetBSD, OpenBSD, DragonFly).
//!
//! This file is compiled only on those targets (the `cfg` in `sys/mod.rs`), so a Linux build never checks it;
//! it is kept small and uses nothing of `rustix::event::kqueue` beyond `kqueue`, `kevent_timespec`, `Event`,
//! `EventFilter::{Read, Write}` and `EventFlags`.
//!
//! An fd's read and write interest are two kernel filters, `EVFILT_READ` and `EVFILT_WRITE`, each added
//! level-triggered (no `EV_CLEAR`) with the token in its `udata` word, so a wait needs no lookup. The poller
//! remembers each registration's interest in `regs`, which is what makes double registration and unknown fds
//! detectable (`EV_ADD` on a known filter silently updates it) and tells `modify` which filter to delete.
//! [`Interest::NONE`] deletes both filters and keeps the fd in `regs`, so nothing at all is reported for it.
//!
//! Wake-up uses the shared pipe ([`WakeFd`]) under an `EVFILT_READ` filter, which every kqueue platform has
//! (`EVFILT_USER` is missing on OpenBSD and NetBSD).
//!
//! # Events
//!
//! kqueue reports the two filters of one fd as two events; the backend merges them when the kernel returns
//! them side by side, and otherwise delivers two events with the same token. `EVFILT_READ` maps to readable,
//! `EVFILT_WRITE` to writable, `EV_EOF` on either to hang-up + readable (and, on the write filter, writable,
//! so that a writer meets its `EPIPE`), `EV_ERROR` to error + readable + writable.

use crate::sys::wake::WakeFd;
use crate::{Event, Events, Interest, Notifier, Poller, Token, errors, timespec};
use rustix::event::kqueue::{self, EventFilter, EventFlags};
use rustix::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};
use rustix::io::{Errno, FdFlags};
use std::collections::HashMap;
use std::io;
use std::mem::MaybeUninit;
use std::sync::Arc;
use std::time::Duration;

/// The kqueue backend: O(ready fds) per wait.
#[derive(Debug)]
pub struct Kqueue {
    kq: OwnedFd,
    wake: Arc<WakeFd>,
    /// The interest of every registration, [`Interest::NONE`] included.
    regs: HashMap<RawFd, Interest>,
    /// Raw event buffer reused across waits.
    buf: EventBuf,
}

/// The kernel's event records, reused across waits.
struct EventBuf(Vec<kqueue::Event>);

// SAFETY: `kqueue::Event` is not `Send` only because its `udata` word is a raw pointer. This backend only ever
// stores integer tokens in it (`ptr::without_provenance_mut`), so moving the buffer across threads moves plain
// integers.
unsafe impl Send for EventBuf {}

impl std::fmt::Debug for EventBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventBuf").field("capacity", &self.0.capacity()).finish()
    }
}

/// A change record for one filter of `fd`, carrying `token` in `udata`.
fn change(filter: EventFilter, flags: EventFlags, token: Token) -> kqueue::Event {
    kqueue::Event::new(filter, flags | EventFlags::RECEIPT, std::ptr::without_provenance_mut(token.0))
}

impl Kqueue {
    /// Creates a kqueue with its wake-up pipe registered.
    ///
    /// # Errors
    ///
    /// The OS error from `kqueue`, `pipe` or `fcntl`.
    pub fn new() -> io::Result<Kqueue> {
        let kq = kqueue::kqueue()?;
        rustix::io::fcntl_setfd(&kq, FdFlags::CLOEXEC)?;
        let wake = Arc::new(WakeFd::new()?);
        let poller = Kqueue { kq, wake, regs: HashMap::new(), buf: EventBuf(Vec::new()) };
        let wake_fd = poller.wake.read_fd().as_raw_fd();
        poller.apply(&[change(EventFilter::Read(wake_fd), EventFlags::ADD, Token::WAKE)])?;
        Ok(poller)
    }

    /// Submits up to two changes and returns the first error among their receipts. `ENOENT` from deleting a
    /// filter that is not there is not an error.
    fn apply(&self, changes: &[kqueue::Event]) -> io::Result<()> {
        let mut receipts = [const { MaybeUninit::<kqueue::Event>::uninit() }; 2];
        let receipts = &mut receipts[..changes.len()];
        // SAFETY: `kevent` requires the fds named by the changes to stay valid for the life of the kqueue: they
        // are the wake-up pipe, which lives as long as `self`, and registered fds, which the registration
        // contract keeps open until they are deregistered (and so deleted from the kqueue). `EV_RECEIPT` makes
        // the kernel answer every change with a receipt in `receipts`, which has room for all of them.
        let (receipts, _) =
            unsafe { kqueue::kevent_timespec(&self.kq, changes, receipts, Some(&rustix::time::Timespec::default())) }?;
        for receipt in receipts.iter() {
            let errno = receipt.data();
            if receipt.flags().contains(EventFlags::ERROR) && errno != 0 {
                let errno = Errno::from_raw_os_error(errno as i32);
                if errno != Errno::NOENT {
                    return Err(errno.into());
                }
            }
        }
        Ok(())
    }

    /// Brings the filters of `fd` from interest `old` to `new`, with `token` in their `udata`.
    fn update(&self, fd: RawFd, token: Token, old: Interest, new: Interest) -> io::Result<()> {
        let one = |filter, was: bool, is: bool| match (was, is) {
            (_, true) => Some(change(filter, EventFlags::ADD, token)),
            (true, false) => Some(change(filter, EventFlags::DELETE, token)),
            (false, false) => None,
        };
        let read = one(EventFilter::Read(fd), old.is_readable(), new.is_readable());
        let write = one(EventFilter::Write(fd), old.is_writable(), new.is_writable());
        match (read, write) {
            (Some(read), Some(write)) => self.apply(&[read, write]),
            (Some(change), None) | (None, Some(change)) => self.apply(&[change]),
            (None, None) => Ok(()),
        }
    }
}

impl Poller for Kqueue {
    fn register(&mut self, fd: BorrowedFd<'_>, token: Token, interest: Interest) -> io::Result<()> {
        if token == Token::WAKE {
            return Err(errors::reserved_token());
        }
        let raw = fd.as_raw_fd();
        if self.regs.contains_key(&raw) || raw == self.wake.read_fd().as_raw_fd() {
            return Err(errors::already_registered(raw));
        }
        if let Err(e) = self.update(raw, token, Interest::NONE, interest) {
            // Leave nothing half-added behind (deleting an absent filter is not an error).
            let _ = self.update(raw, token, interest, Interest::NONE);
            return Err(e);
        }
        self.regs.insert(raw, interest);
        Ok(())
    }

    fn modify(&mut self, fd: BorrowedFd<'_>, token: Token, interest: Interest) -> io::Result<()> {
        if token == Token::WAKE {
            return Err(errors::reserved_token());
        }
        let raw = fd.as_raw_fd();
        let Some(&old) = self.regs.get(&raw) else {
            return Err(errors::not_registered(raw));
        };
        self.update(raw, token, old, interest)?;
        self.regs.insert(raw, interest);
        Ok(())
    }

    fn deregister(&mut self, fd: BorrowedFd<'_>) -> io::Result<()> {
        let raw = fd.as_raw_fd();
        let Some(old) = self.regs.remove(&raw) else {
            return Err(errors::not_registered(raw));
        };
        self.update(raw, Token(0), old, Interest::NONE)
    }

    fn wait(&mut self, events: &mut Events, timeout: Option<Duration>) -> io::Result<()> {
        events.clear();
        let buf = &mut self.buf.0;
        buf.clear();
        // No more records than `events` holds. The kernel puts every level-triggered record it returns back at
        // the end of its queue, so a record fetched here and then dropped for want of room would be dropped
        // again on every lap, and its fd would starve. (The wake-up pipe may take a slot; the event it keeps out
        // comes with the next wait.)
        let want = events.capacity().min(1 << 16);
        buf.reserve(want);
        let ts = timespec(timeout);
        // SAFETY: no changes are submitted; the fds already in the kqueue are valid as explained in `apply`.
        let (ready, _) =
            unsafe { kqueue::kevent_timespec(&self.kq, &[], &mut buf.spare_capacity_mut()[..want], ts.as_ref()) }?;
        // The event being built: the kernel often returns the read and write filters of one fd side by side.
        let mut pending: Option<Event> = None;
        for ev in ready.iter() {
            let token = Token(ev.udata().addr());
            if token == Token::WAKE {
                self.wake.drain();
                continue;
            }
            let flags = ev.flags();
            let eof = flags.contains(EventFlags::EOF);
            let err = flags.contains(EventFlags::ERROR);
            let (readable, writable) = match ev.filter() {
                EventFilter::Read(_) => (true, err),
                EventFilter::Write(_) => (eof || err, true),
                _ => continue,
            };
            let event = match pending.take() {
                Some(prev) if prev.token() == token => Event::new(
                    token,
                    prev.is_readable() || readable || err,
                    prev.is_writable() || writable,
                    prev.is_hangup() || eof,
                    prev.is_error() || err,
                ),
                prev => {
                    if let Some(prev) = prev {
                        // At most `want` records make at most `want` events: the push cannot fail.
                        events.push(prev);
                    }
                    Event::new(token, readable || err, writable, eof, err)
                }
            };
            pending = Some(event);
        }
        if let Some(event) = pending {
            events.push(event);
        }
        Ok(())
    }

    fn notifier(&self) -> Notifier {
        Notifier::new(self.wake.clone())
    }

    fn name(&self) -> &'static str {
        "kqueue"
    }
}
