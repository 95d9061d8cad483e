//! Bindings to poll (every unix).
//!
//! The backend owns the `pollfd` array that every wait hands to the kernel: the wake-up fd at index 0, then one
//! entry per registration that has an interest, in no particular order. A table indexed by the fd (fds are
//! small, dense integers) gives each registration's index in the array, which makes `modify` and `deregister`
//! O(1): removing an entry moves the last one into its place (`swap_remove`) and
//! updates that one's index. A wait costs O(registered fds) in the kernel and again here, to find the entries
//! with `revents` set, which is the nature of poll.
//!
//! # Why the array is kept, not rebuilt
//!
//! `rustix::event::PollFd` holds a `BorrowedFd`, while a poller only learns about an fd for the length of a
//! `register` call. Rebuilding the array from raw fds before every wait would need the same unchecked borrow
//! and add an O(registered) copy to every wait; keeping the entries between waits, each made once by
//! [`entry`] under the registration contract (a registered fd stays open until it is deregistered), costs
//! nothing per wait. The entries are only ever read by `poll(2)`, never used for I/O.
//!
//! # Interest none
//!
//! `poll(2)` reports `POLLHUP`, `POLLERR` and `POLLNVAL` whatever `events` asks for, so a registration with
//! [`Interest::NONE`] has no entry at all: the map remembers it (as `None`) until it is modified or
//! deregistered.
//!
//! # Events
//!
//! Read interest asks for `POLLIN` (and `POLLRDHUP` on Linux, Android and FreeBSD), write interest for `POLLOUT`.
//! `revents` map as the crate docs say: `POLLIN` readable, `POLLOUT` writable, `POLLHUP` and `POLLRDHUP`
//! readable + hang-up, `POLLERR` error + readable + writable. `POLLNVAL` (the fd was closed while still
//! registered, which breaks the registration contract) is reported as error + readable + writable, so that the
//! owner's next I/O call fails with `EBADF` and it deregisters the fd.
//!
//! # Fairness
//!
//! When more entries are ready than [`Events::capacity`], the scan of the next wait starts at the first ready
//! entry that did not fit, so every ready fd is delivered within a few waits even if none is ever consumed.

use crate::sys::wake::WakeFd;
use crate::{Event, Events, FdMap, Interest, Notifier, Poller, Token, errors, timespec};
use rustix::event::{PollFd, PollFlags};
use rustix::fd::{AsRawFd, BorrowedFd, RawFd};
use std::fmt;
use std::io;
use std::sync::Arc;
use std::time::Duration;

/// Index of the wake-up fd's entry in [`Poll::fds`].
const WAKE_INDEX: usize = 0;

/// `POLLRDHUP` (the peer shut down its sending side) where the platform has it, else no flag at all.
#[cfg(any(
    target_os = "freebsd",
    all(any(target_os = "linux", target_os = "android"), not(any(target_arch = "sparc", target_arch = "sparc64")))
))]
const RDHUP: PollFlags = PollFlags::RDHUP;
#[cfg(not(any(
    target_os = "freebsd",
    all(any(target_os = "linux", target_os = "android"), not(any(target_arch = "sparc", target_arch = "sparc64")))
)))]
const RDHUP: PollFlags = PollFlags::empty();

/// The poll backend: O(registered fds) per wait, no limit on fd numbers.
pub struct Poll {
    /// The array handed to the kernel: the wake-up fd at [`WAKE_INDEX`], then the registrations with interest.
    fds: Vec<PollFd<'static>>,
    /// For each entry of `fds`, its raw fd and token (the wake-up fd has [`Token::WAKE`]).
    slots: Vec<(RawFd, Token)>,
    /// Every registration: its index in `fds`, or `None` while its interest is none.
    index: FdIndex,
    /// Where the next scan of `revents` starts, so that a full `Events` does not starve the later entries.
    cursor: usize,
    wake: Arc<WakeFd>,
}

impl fmt::Debug for Poll {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Poll")
            .field("registered", &self.index.len())
            .field("watched", &(self.fds.len() - 1))
            .field("wake", &self.wake)
            .finish()
    }
}

/// What each registered fd has in [`Poll::index`]: its index in `fds`, or `None` while its interest is none,
/// stored as one [`FdMap`] value.
#[derive(Debug, Default)]
struct FdIndex(FdMap);

impl FdIndex {
    /// The value of a registration with no interest, hence no entry in `fds`.
    const SILENT: u32 = u32::MAX - 1;

    fn len(&self) -> usize {
        self.0.len()
    }

    /// `None` if `fd` is not registered, else its index in `fds` if it has one.
    fn get(&self, fd: RawFd) -> Option<Option<usize>> {
        self.0.get(fd).map(Self::index)
    }

    fn contains(&self, fd: RawFd) -> bool {
        self.0.contains(fd)
    }

    /// Registers `fd`, or changes its index.
    fn insert(&mut self, fd: RawFd, at: Option<usize>) {
        // The array holds one entry per registered fd, far fewer than `SILENT`.
        self.0.insert(fd, at.map_or(Self::SILENT, |at| at as u32));
    }

    /// Forgets `fd`, returning what [`FdIndex::get`] did.
    fn remove(&mut self, fd: RawFd) -> Option<Option<usize>> {
        self.0.remove(fd).map(Self::index)
    }

    fn index(value: u32) -> Option<usize> {
        (value != Self::SILENT).then_some(value as usize)
    }
}

/// The `pollfd` entry for a registered fd.
///
/// # Safety
///
/// `fd` must stay open until the entry is removed from [`Poll::fds`]: the poller's registration contract (a
/// registered fd is deregistered before it is closed), or, for the wake-up fd, the `Arc<WakeFd>` the poller
/// holds for as long as the array lives.
unsafe fn entry(fd: RawFd, interest: Interest) -> PollFd<'static> {
    // SAFETY: the caller guarantees that `fd` is open for as long as the entry exists. The entry is only read
    // by `poll(2)` and never outlives the registration.
    let fd = unsafe { BorrowedFd::borrow_raw(fd) };
    PollFd::from_borrowed_fd(fd, flags(interest))
}

/// The `events` to ask for.
fn flags(interest: Interest) -> PollFlags {
    let mut flags = PollFlags::empty();
    if interest.is_readable() {
        flags |= PollFlags::IN | RDHUP;
    }
    if interest.is_writable() {
        flags |= PollFlags::OUT;
    }
    flags
}

/// The event for a non-empty `revents`.
fn event(token: Token, revents: PollFlags) -> Event {
    let hup = revents.intersects(PollFlags::HUP | RDHUP);
    let err = revents.intersects(PollFlags::ERR | PollFlags::NVAL);
    let readable = hup || err || revents.intersects(PollFlags::IN | PollFlags::PRI);
    let writable = err || revents.contains(PollFlags::OUT);
    Event::new(token, readable, writable, hup, err)
}

impl Poll {
    /// Creates the backend with its wake-up fd (an eventfd on Linux and Android, a pipe elsewhere).
    ///
    /// # Errors
    ///
    /// The OS error if the wake-up fd cannot be created.
    pub fn new() -> io::Result<Poll> {
        let wake = Arc::new(WakeFd::new()?);
        let raw = wake.read_fd().as_raw_fd();
        // SAFETY: the wake-up fd is owned by `wake`, which the poller keeps as long as `fds`.
        let fds = vec![unsafe { entry(raw, Interest::READABLE) }];
        Ok(Poll { fds, slots: vec![(raw, Token::WAKE)], index: FdIndex::default(), cursor: WAKE_INDEX + 1, wake })
    }

    /// Appends an entry for `fd` and returns its index.
    fn push(&mut self, fd: RawFd, token: Token, interest: Interest) -> usize {
        // SAFETY: `fd` is registered, so the caller keeps it open until `deregister` removes the entry.
        self.fds.push(unsafe { entry(fd, interest) });
        self.slots.push((fd, token));
        self.fds.len() - 1
    }

    /// Removes the entry at `i` by moving the last entry into its place.
    fn remove(&mut self, i: usize) {
        debug_assert_ne!(i, WAKE_INDEX);
        self.fds.swap_remove(i);
        self.slots.swap_remove(i);
        if let Some(&(moved, _)) = self.slots.get(i) {
            self.index.insert(moved, Some(i));
        }
    }

    fn is_wake(&self, fd: RawFd) -> bool {
        fd == self.slots[WAKE_INDEX].0
    }
}

impl Poller for Poll {
    fn register(&mut self, fd: BorrowedFd<'_>, token: Token, interest: Interest) -> io::Result<()> {
        if token == Token::WAKE {
            return Err(errors::reserved_token());
        }
        let raw = fd.as_raw_fd();
        if self.index.contains(raw) || self.is_wake(raw) {
            return Err(errors::already_registered(raw));
        }
        let at = (!interest.is_none()).then(|| self.push(raw, token, interest));
        self.index.insert(raw, at);
        Ok(())
    }

    fn modify(&mut self, fd: BorrowedFd<'_>, token: Token, interest: Interest) -> io::Result<()> {
        if token == Token::WAKE {
            return Err(errors::reserved_token());
        }
        let raw = fd.as_raw_fd();
        let Some(at) = self.index.get(raw) else {
            return Err(errors::not_registered(raw));
        };
        let at = match (at, interest.is_none()) {
            (None, true) => None,
            (None, false) => Some(self.push(raw, token, interest)),
            (Some(i), true) => {
                self.remove(i);
                None
            }
            (Some(i), false) => {
                // SAFETY: `raw` is registered, so the caller keeps it open until `deregister` removes the entry.
                self.fds[i] = unsafe { entry(raw, interest) };
                self.slots[i].1 = token;
                Some(i)
            }
        };
        self.index.insert(raw, at);
        Ok(())
    }

    fn deregister(&mut self, fd: BorrowedFd<'_>) -> io::Result<()> {
        let raw = fd.as_raw_fd();
        match self.index.remove(raw) {
            None => Err(errors::not_registered(raw)),
            Some(None) => Ok(()),
            Some(Some(i)) => {
                self.remove(i);
                Ok(())
            }
        }
    }

    fn wait(&mut self, events: &mut Events, timeout: Option<Duration>) -> io::Result<()> {
        events.clear();
        let ts = timespec(timeout);
        let mut ready = rustix::event::poll(&mut self.fds, ts.as_ref())?;
        if ready == 0 {
            return Ok(());
        }
        if !self.fds[WAKE_INDEX].revents().is_empty() {
            self.wake.drain();
            ready -= 1;
        }
        let len = self.fds.len();
        let start = if (WAKE_INDEX + 1..len).contains(&self.cursor) { self.cursor } else { WAKE_INDEX + 1 };
        for i in (start..len).chain(WAKE_INDEX + 1..start) {
            if ready == 0 {
                break;
            }
            let revents = self.fds[i].revents();
            if revents.is_empty() {
                continue;
            }
            if events.is_full() {
                self.cursor = i;
                break;
            }
            events.push(event(self.slots[i].1, revents));
            ready -= 1;
        }
        Ok(())
    }

    fn notifier(&self) -> Notifier {
        Notifier::new(self.wake.clone())
    }

    fn name(&self) -> &'static str {
        "poll"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fd_index_tells_unregistered_silent_and_placed_fds_apart() {
        let mut index = FdIndex::default();
        assert_eq!(index.get(5), None);
        index.insert(5, None);
        index.insert(700, Some(3));
        assert_eq!((index.get(5), index.get(700), index.get(6), index.len()), (Some(None), Some(Some(3)), None, 2));
        index.insert(5, Some(1));
        assert_eq!((index.get(5), index.len()), (Some(Some(1)), 2));
        assert_eq!(index.remove(700), Some(Some(3)));
        assert_eq!((index.remove(700), index.get(700), index.len()), (None, None, 1));
    }
}
