//! Bindings to epoll (Linux, Android).
//!
//! Level-triggered (no `EPOLLET`). The token travels in the event's 64-bit data word, so a wait needs no
//! lookup. [`Interest::NONE`] cannot be expressed to epoll (it reports `EPOLLHUP`/`EPOLLERR` whatever the mask),
//! so such a registration is taken out of the epoll set and remembered in `silent` until it is modified or
//! deregistered.
//!
//! `EPOLLRDHUP` (the peer shut down its sending side) is asked for only with read interest: it stays raised
//! for as long as the socket lives, so a write-only registration on a half-closed socket would otherwise be
//! woken on every wait while it waits for buffer space.
//!
//! Events map as the crate docs say: `EPOLLIN`/`EPOLLPRI` readable, `EPOLLOUT` writable, `EPOLLHUP` and
//! `EPOLLRDHUP` readable + hang-up, `EPOLLERR` error + readable + writable.

use crate::sys::wake::WakeFd;
use crate::{EV_ERR, EV_HUP, EV_READ, EV_WRITE, Event, Events, Interest, Notifier, Poller, Token, errors, timespec};
use rustix::event::epoll;
use rustix::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};
use rustix::io::Errno;
use std::io;
use std::sync::Arc;
use std::time::Duration;

/// The epoll backend: O(ready fds) per wait.
#[derive(Debug)]
pub struct Epoll {
    epfd: OwnedFd,
    wake: Arc<WakeFd>,
    /// Registered fds whose interest is none, kept out of the kernel's set.
    silent: FdSet,
    /// Raw event buffer reused across waits.
    buf: EventBuf,
}

/// A set of fds as a bitmap indexed by the fd: fds are small, dense integers (the kernel hands out the lowest
/// free one), so membership is one load and a mask, with no hashing. It grows to the highest fd inserted.
#[derive(Debug, Default)]
struct FdSet(Vec<u64>);

impl FdSet {
    fn split(fd: RawFd) -> (usize, u64) {
        let i = fd as usize;
        (i / 64, 1 << (i % 64))
    }

    fn contains(&self, fd: RawFd) -> bool {
        let (word, bit) = Self::split(fd);
        self.0.get(word).is_some_and(|w| w & bit != 0)
    }

    fn insert(&mut self, fd: RawFd) {
        let (word, bit) = Self::split(fd);
        if word >= self.0.len() {
            self.0.resize(word + 1, 0);
        }
        self.0[word] |= bit;
    }

    /// Removes `fd`; returns whether it was there.
    fn remove(&mut self, fd: RawFd) -> bool {
        let (word, bit) = Self::split(fd);
        match self.0.get_mut(word) {
            Some(w) if *w & bit != 0 => {
                *w &= !bit;
                true
            }
            _ => false,
        }
    }
}

/// The kernel's event records, reused across waits.
struct EventBuf(Vec<epoll::Event>);

// SAFETY: `epoll::Event` is not `Send` only because its data word may hold a raw pointer. This backend only
// ever stores integer tokens in it (`EventData::new_u64`), so moving the buffer across threads moves plain
// integers.
unsafe impl Send for EventBuf {}

impl std::fmt::Debug for EventBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventBuf").field("capacity", &self.0.capacity()).finish()
    }
}

/// The records of [`Epoll::wait_into`], read where they lie and decoded only as [`EpollEvents::iter`] reaches
/// them: a loop that owns this buffer (and not the poller's [`Events`]) skips the pass that copies every
/// record into an [`Event`] before any is dispatched. The buffer is its owner's alone, so no handler the owner
/// runs while iterating can refill it, and the iteration borrows nothing of the [`Epoll`].
#[derive(Debug)]
pub struct EpollEvents {
    /// Always `capacity` records long; the first `len` come from the last wait.
    buf: EventBuf,
    len: usize,
    /// Drained when the wake-up token comes up, as [`Epoll::wait`] does right after its wait.
    wake: Arc<WakeFd>,
}

impl EpollEvents {
    /// Whether the last wait delivered no record.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The events of the last wait, in the kernel's order, each decoded when it is reached. The wake-up token
    /// is not among them: reaching it empties the wake-up fd instead.
    pub fn iter(&self) -> impl Iterator<Item = Event> + '_ {
        self.buf.0[..self.len].iter().filter_map(|ev| {
            let event = decode(ev);
            if event.token == Token::WAKE {
                drain(&self.wake);
                return None;
            }
            Some(event)
        })
    }
}

/// The [`Event`] of one kernel record.
#[inline(always)]
fn decode(ev: &epoll::Event) -> Event {
    Event { token: Token(ev.data.u64() as usize), flags: event_flags({ ev.flags }.bits()) }
}

impl Epoll {
    /// A buffer for [`wait_into`](Epoll::wait_into) that takes at most `capacity` records per wait (at least 1).
    pub fn events(&self, capacity: usize) -> EpollEvents {
        let empty = epoll::Event { flags: epoll::EventFlags::empty(), data: epoll::EventData::new_u64(0) };
        EpollEvents { buf: EventBuf(vec![empty; capacity.clamp(1, 1 << 16)]), len: 0, wake: self.wake.clone() }
    }

    /// Waits like [`Poller::wait`], leaving the records in `events` undecoded (see [`EpollEvents`]).
    ///
    /// # Errors
    ///
    /// The OS error from `epoll_wait`, `EINTR` included.
    #[inline(always)]
    pub fn wait_into(&mut self, events: &mut EpollEvents, timeout: Option<Duration>) -> io::Result<()> {
        events.len = 0;
        let ts = timespec(timeout);
        events.len = epoll::wait(&self.epfd, &mut events.buf.0[..], ts.as_ref())?;
        Ok(())
    }

    /// Creates an epoll instance with its wake-up eventfd registered.
    ///
    /// # Errors
    ///
    /// The OS error from `epoll_create1` or `eventfd`.
    pub fn new() -> io::Result<Epoll> {
        let epfd = epoll::create(epoll::CreateFlags::CLOEXEC)?;
        let wake = Arc::new(WakeFd::new()?);
        epoll::add(&epfd, wake.read_fd(), epoll::EventData::new_u64(Token::WAKE.0 as u64), epoll::EventFlags::IN)?;
        Ok(Epoll { epfd, wake, silent: FdSet::default(), buf: EventBuf(Vec::new()) })
    }

    fn flags(interest: Interest) -> epoll::EventFlags {
        let mut flags = epoll::EventFlags::empty();
        if interest.is_readable() {
            flags |= epoll::EventFlags::IN | epoll::EventFlags::RDHUP;
        }
        if interest.is_writable() {
            flags |= epoll::EventFlags::OUT;
        }
        flags
    }

    fn data(token: Token) -> epoll::EventData {
        epoll::EventData::new_u64(token.0 as u64)
    }
}

/// An [`Event`]'s flags from epoll's: `EPOLLIN`/`EPOLLPRI`/`EPOLLHUP`/`EPOLLRDHUP`/`EPOLLERR` readable, `EPOLLOUT`/
/// `EPOLLERR` writable, `EPOLLHUP`/`EPOLLRDHUP` hang-up, `EPOLLERR` error.
const fn decode_flags(bits: u32) -> u8 {
    use epoll::EventFlags as F;
    const HUP: u32 = F::HUP.bits() | F::RDHUP.bits();
    const ERR: u32 = F::ERR.bits();
    const READABLE: u32 = F::IN.bits() | F::PRI.bits() | HUP | ERR;
    const WRITABLE: u32 = F::OUT.bits() | ERR;
    (((bits & READABLE != 0) as u8) * EV_READ)
        | (((bits & WRITABLE != 0) as u8) * EV_WRITE)
        | (((bits & HUP != 0) as u8) * EV_HUP)
        | (((bits & ERR != 0) as u8) * EV_ERR)
}

/// The epoll flags [`decode_flags`] reads, gathered in six bits: `EPOLLIN`, `EPOLLPRI`, `EPOLLOUT`, `EPOLLERR`
/// and `EPOLLHUP` where they are (the low five bits), `EPOLLRDHUP` moved down next to them.
const fn flag_index(bits: u32) -> usize {
    ((bits & 0x1f) | ((bits >> 8) & 0x20)) as usize
}

const _: () = {
    use epoll::EventFlags as F;
    assert!(F::IN.bits() | F::PRI.bits() | F::OUT.bits() | F::ERR.bits() | F::HUP.bits() == 0x1f);
    assert!(F::RDHUP.bits() == 0x2000);
};

/// [`decode_flags`] of every combination of the six bits of [`flag_index`]: one load per event.
const FLAG_TABLE: [u8; 64] = {
    let mut table = [0u8; 64];
    let mut i = 0;
    while i < 64 {
        let bits = (i as u32 & 0x1f) | ((i as u32 & 0x20) << 8);
        table[i] = decode_flags(bits);
        i += 1;
    }
    table
};

#[inline]
fn event_flags(bits: u32) -> u8 {
    FLAG_TABLE[flag_index(bits)]
}

/// Empties the wake-up fd: rare next to fd events, so kept out of the body of [`Epoll::wait`].
#[cold]
#[inline(never)]
fn drain(wake: &WakeFd) {
    wake.drain();
}

impl Poller for Epoll {
    fn register(&mut self, fd: BorrowedFd<'_>, token: Token, interest: Interest) -> io::Result<()> {
        if token == Token::WAKE {
            return Err(errors::reserved_token());
        }
        let raw = fd.as_raw_fd();
        if self.silent.contains(raw) {
            return Err(errors::already_registered(raw));
        }
        match epoll::add(&self.epfd, fd, Self::data(token), Self::flags(interest)) {
            Ok(()) => {}
            Err(Errno::EXIST) => return Err(errors::already_registered(raw)),
            Err(Errno::PERM) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("fd {raw} does not support epoll (regular files are always ready)"),
                ));
            }
            Err(e) => return Err(e.into()),
        }
        if interest.is_none() {
            // The add above checked, without touching an existing registration, that the fd is new and that
            // epoll can watch it. Out it goes again: epoll reports hang-up and error whatever the mask.
            epoll::delete(&self.epfd, fd)?;
            self.silent.insert(raw);
        }
        Ok(())
    }

    fn modify(&mut self, fd: BorrowedFd<'_>, token: Token, interest: Interest) -> io::Result<()> {
        if token == Token::WAKE {
            return Err(errors::reserved_token());
        }
        let raw = fd.as_raw_fd();
        if raw == self.wake.read_fd().as_raw_fd() {
            return Err(errors::not_registered(raw));
        }
        let was_silent = self.silent.contains(raw);
        match (was_silent, interest.is_none()) {
            (true, true) => Ok(()),
            (true, false) => {
                epoll::add(&self.epfd, fd, Self::data(token), Self::flags(interest))?;
                self.silent.remove(raw);
                Ok(())
            }
            (false, true) => match epoll::delete(&self.epfd, fd) {
                Ok(()) => {
                    self.silent.insert(raw);
                    Ok(())
                }
                Err(Errno::NOENT) => Err(errors::not_registered(raw)),
                Err(e) => Err(e.into()),
            },
            (false, false) => match epoll::modify(&self.epfd, fd, Self::data(token), Self::flags(interest)) {
                Ok(()) => Ok(()),
                Err(Errno::NOENT) => Err(errors::not_registered(raw)),
                Err(e) => Err(e.into()),
            },
        }
    }

    fn deregister(&mut self, fd: BorrowedFd<'_>) -> io::Result<()> {
        let raw = fd.as_raw_fd();
        if self.silent.remove(raw) {
            return Ok(());
        }
        if raw == self.wake.read_fd().as_raw_fd() {
            return Err(errors::not_registered(raw));
        }
        match epoll::delete(&self.epfd, fd) {
            Ok(()) => Ok(()),
            Err(Errno::NOENT) => Err(errors::not_registered(raw)),
            Err(e) => Err(e.into()),
        }
    }

    // Inlined into a loop that holds the backend by value (its one direct caller), for the loop's every lap.
    #[inline(always)]
    fn wait(&mut self, events: &mut Events, timeout: Option<Duration>) -> io::Result<()> {
        events.clear();
        let buf = &mut self.buf.0;
        // No more records than `events` holds. The kernel moves every level-triggered fd it reports to the back
        // of its ready list, so an event fetched here and then dropped for want of room would be dropped again
        // on every lap, and its fd would starve. (The wake-up fd may take a slot; the event it keeps out comes
        // with the next wait.) The buffer's length stays zero: the records live in its spare capacity.
        let want = events.capacity().min(1 << 16);
        if buf.capacity() < want {
            buf.reserve(want);
        }
        let ts = timespec(timeout);
        let (ready, _) = epoll::wait(&self.epfd, &mut buf.spare_capacity_mut()[..want], ts.as_ref())?;
        // One pass that trusts the count (`ready` is no longer than `events` holds) and notes the wake-up
        // token, which is taken out again afterwards: it comes with at most one event, and rarely.
        let mut woken = false;
        events.list.extend(ready.iter().map(|ev| {
            let event = decode(ev);
            woken |= event.token == Token::WAKE;
            event
        }));
        if woken {
            events.list.retain(|ev| ev.token != Token::WAKE);
            drain(&self.wake);
        }
        Ok(())
    }

    fn notifier(&self) -> Notifier {
        Notifier::new(self.wake.clone())
    }

    fn name(&self) -> &'static str {
        "epoll"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flag_table_decodes_every_combination_as_the_rules_do() {
        for bits in 0..0x4000u32 {
            assert_eq!(event_flags(bits), decode_flags(bits), "{bits:#x}");
        }
        let all = epoll::EventFlags::all().bits();
        assert_eq!(event_flags(all), decode_flags(all));
    }

    #[test]
    fn wait_into_delivers_what_wait_does_and_drains_the_wake_up_fd() {
        use std::io::Write;
        use std::os::fd::AsFd;
        let mut poller = Epoll::new().unwrap();
        let mut events = poller.events(8);
        let (mut a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        poller.register(b.as_fd(), Token(7), Interest::READABLE).unwrap();
        poller.wait_into(&mut events, Some(Duration::ZERO)).unwrap();
        assert!(events.is_empty());
        a.write_all(b"x").unwrap();
        poller.notifier().notify().unwrap();
        poller.wait_into(&mut events, Some(Duration::from_secs(5))).unwrap();
        // The wake-up record is taken out, and reaching it empties the wake-up fd.
        let got: Vec<Event> = events.iter().collect();
        assert_eq!(got, [Event::new(Token(7), true, false, false, false)]);
        poller.wait_into(&mut events, Some(Duration::ZERO)).unwrap();
        assert_eq!(events.len, 1, "the wake-up fd was drained, the socket is still readable");
        let mut plain = Events::with_capacity(8);
        poller.wait(&mut plain, Some(Duration::ZERO)).unwrap();
        assert_eq!(plain.as_slice(), got.as_slice());
    }

    #[test]
    fn the_fd_set_holds_what_was_inserted_and_not_removed() {
        let mut set = FdSet::default();
        assert!(!set.contains(3));
        assert!(!set.remove(3));
        for fd in [0, 3, 63, 64, 1000] {
            set.insert(fd);
        }
        assert!([0, 3, 63, 64, 1000].iter().all(|&fd| set.contains(fd)));
        assert!(!set.contains(4) && !set.contains(999) && !set.contains(5000));
        assert!(set.remove(64));
        assert!(!set.contains(64) && !set.remove(64));
        assert!(set.contains(63) && set.contains(1000));
    }
}
