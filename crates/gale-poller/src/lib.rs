//! Readiness polling for gale: one object-safe [`Poller`] trait, four built-in backends, and room for yours.
//!
//! Everything in gale stands on one question: *which of my file descriptors are ready?* This crate answers it
//! with the best mechanism of the platform, behind a trait that the event loop holds as `Box<dyn Poller>`, so a
//! user can plug in a backend of their own (a wrapper that counts syscalls, a backend for an exotic kernel
//! interface) and the layers above never notice.
//!
//! | backend | platforms | cost of one wait | limit |
//! |---|---|---|---|
//! | [`Epoll`] | Linux, Android | O(ready fds) | none |
//! | `Kqueue` | macOS, iOS, FreeBSD, NetBSD, OpenBSD, DragonFly | O(ready fds) | none |
//! | [`Poll`] | every unix | O(registered fds) | none |
//! | [`Select`] | Linux, Android and the kqueue platforms | O(highest fd) | none: the fd sets grow past `FD_SETSIZE` |
//!
//! [`default_poller`] picks epoll or kqueue; [`by_name`] (and [`from_env`], reading `GALE_POLLER`) chooses one
//! at run time, as Tornado's `IOLoop.configure` does.
//!
//! # One semantics for every backend
//!
//! - Readiness is **level-triggered**: a ready fd is reported by every [`Poller::wait`] until the condition is
//!   consumed (data read, buffer drained), exactly as `select` and `poll` behave.
//! - [`Interest::NONE`] keeps a registration that reports **nothing**, not even hang-up or error, until
//!   [`Poller::modify`] gives it an interest again.
//! - Hang-up (the peer closed) is reported as [`Event::is_readable`], so a reader sees end-of-file; backends
//!   that can tell it apart also set [`Event::is_hangup`] (`select` cannot).
//! - An error condition on the fd (`POLLERR`, `EPOLLERR`) is reported as [`Event::is_error`] together with
//!   readable and writable, so whichever I/O call comes next surfaces the error.
//! - Readiness outside the interest may be reported alongside hang-up or error; callers that care mask the
//!   event with their interest (the IOLoop does).
//! - A wait delivers at most [`Events::capacity`] events; when more fds are ready, the following waits deliver
//!   the others (no ready fd starves behind the rest). One wait may report an fd in two events (kqueue watches
//!   reading and writing with separate filters); each carries the same token.
//! - Registering an fd twice fails with [`io::ErrorKind::AlreadyExists`]; modifying or deregistering an fd that
//!   is not registered fails with [`io::ErrorKind::NotFound`]; the reserved token [`Token::WAKE`] is refused
//!   with [`io::ErrorKind::InvalidInput`]. None of these panic.
//! - A registered fd must be deregistered before it is closed. (epoll forgets closed fds by itself, poll and
//!   select would report them as invalid.)
//! - [`Poller::wait`] returns early, with whatever is ready (possibly nothing), when the [`Notifier`] of the
//!   poller is notified from any thread; `EINTR` is returned as [`io::ErrorKind::Interrupted`] for the caller
//!   to retry.
//!
//! # Example
//!
//! ```
//! use gale_poller::{Events, Interest, Token};
//! use std::io::Write;
//! use std::os::fd::AsFd;
//! use std::time::Duration;
//!
//! let mut poller = gale_poller::default_poller()?;
//! let (reader, mut writer) = std::os::unix::net::UnixStream::pair()?;
//! poller.register(reader.as_fd(), Token(7), Interest::READABLE)?;
//!
//! writer.write_all(b"ping")?;
//! let mut events = Events::with_capacity(64);
//! poller.wait(&mut events, Some(Duration::from_secs(5)))?;
//! let event = events.iter().next().expect("the reader is ready");
//! assert_eq!(event.token(), Token(7));
//! assert!(event.is_readable());
//!
//! // Another thread can cut a wait short.
//! let notifier = poller.notifier();
//! std::thread::spawn(move || notifier.notify());
//! poller.deregister(reader.as_fd())?;
//! poller.wait(&mut events, None)?; // returns once notified
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! # Writing a backend
//!
//! Implement [`Poller`] and run the public conformance suite against it in your own tests with
//! [`testing::run_all`]: the built-in backends pass exactly the same suite.

#![warn(missing_docs, missing_debug_implementations)]

use std::fmt;
use std::io;
use std::os::fd::BorrowedFd;
use std::sync::Arc;
use std::time::Duration;

mod fd_map;
mod sys;
#[cfg(feature = "testing")]
pub mod testing;

pub use fd_map::FdMap;
#[cfg(any(target_os = "linux", target_os = "android"))]
pub use sys::epoll::{Epoll, EpollEvents};
#[cfg(gale_kqueue)]
pub use sys::kqueue::Kqueue;
pub use sys::poll::Poll;
#[cfg(gale_select)]
pub use sys::select::Select;

/// A caller-chosen value that identifies a registration in the [`Event`]s it produces.
///
/// `Token(usize::MAX)` is [`Token::WAKE`], reserved for the poller's own wake-up fd.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Token(pub usize);

impl Token {
    /// The token reserved by backends for their wake-up mechanism; registering it is refused.
    pub const WAKE: Token = Token(usize::MAX);
}

/// What readiness a registration asks for: readable, writable, both, or none.
#[derive(Copy, Clone, PartialEq, Eq, Hash, Default)]
pub struct Interest(u8);

const READ: u8 = 0b01;
const WRITE: u8 = 0b10;

impl Interest {
    /// No readiness at all: the registration stays, silent.
    pub const NONE: Interest = Interest(0);
    /// Readable, including end-of-file and hang-up.
    pub const READABLE: Interest = Interest(READ);
    /// Writable.
    pub const WRITABLE: Interest = Interest(WRITE);
    /// Readable and writable.
    pub const BOTH: Interest = Interest(READ | WRITE);

    /// Whether read readiness is asked for.
    pub const fn is_readable(self) -> bool {
        self.0 & READ != 0
    }

    /// Whether write readiness is asked for.
    pub const fn is_writable(self) -> bool {
        self.0 & WRITE != 0
    }

    /// Whether nothing is asked for.
    pub const fn is_none(self) -> bool {
        self.0 == 0
    }

    /// This interest and `other` together.
    #[must_use]
    pub const fn add(self, other: Interest) -> Interest {
        Interest(self.0 | other.0)
    }

    /// This interest without `other`.
    #[must_use]
    pub const fn remove(self, other: Interest) -> Interest {
        Interest(self.0 & !other.0)
    }
}

impl std::ops::BitOr for Interest {
    type Output = Interest;
    fn bitor(self, rhs: Interest) -> Interest {
        self.add(rhs)
    }
}

impl fmt::Debug for Interest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match (self.is_readable(), self.is_writable()) {
            (false, false) => "NONE",
            (true, false) => "READABLE",
            (false, true) => "WRITABLE",
            (true, true) => "READABLE | WRITABLE",
        })
    }
}

/// One readiness report: the registration's token and what it is ready for.
#[derive(Copy, Clone, PartialEq, Eq)]
pub struct Event {
    token: Token,
    flags: u8,
}

const EV_READ: u8 = 0b0001;
const EV_WRITE: u8 = 0b0010;
const EV_HUP: u8 = 0b0100;
const EV_ERR: u8 = 0b1000;

impl Event {
    /// Builds an event; backends (including user-written ones) use this to report readiness.
    pub const fn new(token: Token, readable: bool, writable: bool, hangup: bool, error: bool) -> Event {
        let flags = ((readable as u8) * EV_READ)
            | ((writable as u8) * EV_WRITE)
            | ((hangup as u8) * EV_HUP)
            | ((error as u8) * EV_ERR);
        Event { token, flags }
    }

    /// The token the fd was registered with.
    pub const fn token(&self) -> Token {
        self.token
    }

    /// A read will not block (data, end-of-file or an error is waiting).
    pub const fn is_readable(&self) -> bool {
        self.flags & EV_READ != 0
    }

    /// A write will not block.
    pub const fn is_writable(&self) -> bool {
        self.flags & EV_WRITE != 0
    }

    /// The peer hung up (not reported by `select`, which shows hang-up as readable only).
    pub const fn is_hangup(&self) -> bool {
        self.flags & EV_HUP != 0
    }

    /// An error is pending on the fd; the next I/O call will return it.
    pub const fn is_error(&self) -> bool {
        self.flags & EV_ERR != 0
    }

    /// The readiness as an [`Interest`] (readable and/or writable).
    pub const fn readiness(&self) -> Interest {
        Interest(self.flags & (EV_READ | EV_WRITE))
    }
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event")
            .field("token", &self.token.0)
            .field("readable", &self.is_readable())
            .field("writable", &self.is_writable())
            .field("hangup", &self.is_hangup())
            .field("error", &self.is_error())
            .finish()
    }
}

/// A reusable buffer of [`Event`]s filled by [`Poller::wait`].
///
/// A wait delivers at most [`Events::capacity`] events; with level-triggered readiness the rest are delivered
/// by the following waits.
#[derive(Debug)]
pub struct Events {
    list: Vec<Event>,
    capacity: usize,
}

impl Events {
    /// An empty buffer that holds at most `capacity` events per wait (at least 1).
    pub fn with_capacity(capacity: usize) -> Events {
        let capacity = capacity.max(1);
        Events { list: Vec::with_capacity(capacity), capacity }
    }

    /// How many events one wait may deliver.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The number of events delivered by the last wait.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// Whether the last wait delivered nothing.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Whether the buffer is full; backends stop adding events then.
    pub fn is_full(&self) -> bool {
        self.list.len() >= self.capacity
    }

    /// The delivered events, in the order the backend found them.
    pub fn iter(&self) -> std::slice::Iter<'_, Event> {
        self.list.iter()
    }

    /// The delivered events as a slice.
    pub fn as_slice(&self) -> &[Event] {
        &self.list
    }

    /// Forgets all events; backends call this at the start of a wait.
    pub fn clear(&mut self) {
        self.list.clear();
    }

    /// Adds an event, as a backend does. Returns `false` (and drops the event) when the buffer is full.
    pub fn push(&mut self, event: Event) -> bool {
        if self.is_full() {
            return false;
        }
        self.list.push(event);
        true
    }
}

impl<'a> IntoIterator for &'a Events {
    type Item = &'a Event;
    type IntoIter = std::slice::Iter<'a, Event>;
    fn into_iter(self) -> Self::IntoIter {
        self.list.iter()
    }
}

/// Something that can interrupt a blocked [`Poller::wait`]; backends implement it for their wake-up fd.
pub trait Notify: Send + Sync + fmt::Debug {
    /// Makes the current or next `wait` of the poller return promptly.
    fn notify(&self) -> io::Result<()>;
}

/// A `Send + Sync + Clone` handle that wakes a poller's [`wait`](Poller::wait) from any thread.
///
/// Notifications coalesce: many notifications before a wait cost one early return.
#[derive(Clone, Debug)]
pub struct Notifier(Arc<dyn Notify>);

impl Notifier {
    /// Wraps a backend's wake-up mechanism.
    pub fn new(inner: Arc<dyn Notify>) -> Notifier {
        Notifier(inner)
    }

    /// Wakes the poller.
    ///
    /// # Errors
    ///
    /// Only if the wake-up fd cannot be written for a reason other than being already signalled (which is
    /// not an error).
    pub fn notify(&self) -> io::Result<()> {
        self.0.notify()
    }
}

/// A readiness poller: register fds with a token and an interest, then wait for events.
///
/// The trait is object safe: the IOLoop holds a `Box<dyn Poller>`. Its documented contract (see the crate
/// docs) is checked for any implementation by [`testing::run_all`].
pub trait Poller: Send + fmt::Debug {
    /// Starts watching `fd` for `interest`, reporting events with `token`.
    ///
    /// # Errors
    ///
    /// [`io::ErrorKind::AlreadyExists`] if `fd` is registered; [`io::ErrorKind::InvalidInput`] for
    /// [`Token::WAKE`] or an fd the backend cannot watch; the OS error otherwise.
    fn register(&mut self, fd: BorrowedFd<'_>, token: Token, interest: Interest) -> io::Result<()>;

    /// Changes the token and interest of a registered fd.
    ///
    /// # Errors
    ///
    /// [`io::ErrorKind::NotFound`] if `fd` is not registered; as for `register` otherwise.
    fn modify(&mut self, fd: BorrowedFd<'_>, token: Token, interest: Interest) -> io::Result<()>;

    /// Stops watching `fd`.
    ///
    /// # Errors
    ///
    /// [`io::ErrorKind::NotFound`] if `fd` is not registered.
    fn deregister(&mut self, fd: BorrowedFd<'_>) -> io::Result<()>;

    /// Waits until at least one registered fd is ready, the timeout passes, or the poller is notified, and
    /// fills `events` (cleared first) with at most `events.capacity()` events. `None` waits without limit;
    /// `Some(Duration::ZERO)` does not block. The built-in backends shorten timeouts longer than `i32::MAX`
    /// milliseconds (about 24.8 days) to that.
    ///
    /// When more fds are ready than `events` holds, the rest stay ready (readiness is level-triggered) and
    /// later waits deliver them: a backend must not report the same few fds on every wait and starve the others.
    ///
    /// # Errors
    ///
    /// [`io::ErrorKind::Interrupted`] when a signal interrupted the wait (retry it); the OS error otherwise.
    fn wait(&mut self, events: &mut Events, timeout: Option<Duration>) -> io::Result<()>;

    /// A handle that wakes this poller's `wait` from any thread.
    fn notifier(&self) -> Notifier;

    /// A short name for logs and `by_name`: `"epoll"`, `"poll"`, …
    fn name(&self) -> &'static str;
}

impl<P: Poller + ?Sized> Poller for Box<P> {
    fn register(&mut self, fd: BorrowedFd<'_>, token: Token, interest: Interest) -> io::Result<()> {
        (**self).register(fd, token, interest)
    }
    fn modify(&mut self, fd: BorrowedFd<'_>, token: Token, interest: Interest) -> io::Result<()> {
        (**self).modify(fd, token, interest)
    }
    fn deregister(&mut self, fd: BorrowedFd<'_>) -> io::Result<()> {
        (**self).deregister(fd)
    }
    fn wait(&mut self, events: &mut Events, timeout: Option<Duration>) -> io::Result<()> {
        (**self).wait(events, timeout)
    }
    fn notifier(&self) -> Notifier {
        (**self).notifier()
    }
    fn name(&self) -> &'static str {
        (**self).name()
    }
}

/// The names [`by_name`] accepts on this platform, the default first.
pub const BACKENDS: &[&str] = &[
    #[cfg(any(target_os = "linux", target_os = "android"))]
    "epoll",
    #[cfg(gale_kqueue)]
    "kqueue",
    "poll",
    #[cfg(gale_select)]
    "select",
];

/// The best backend of this platform: epoll on Linux and Android, kqueue on the BSDs and Apple systems, poll
/// elsewhere.
///
/// # Errors
///
/// The OS error if the backend cannot be created (for example when out of fds).
pub fn default_poller() -> io::Result<Box<dyn Poller>> {
    by_name(BACKENDS[0])
}

/// The backend called `name` (one of [`BACKENDS`]).
///
/// # Errors
///
/// [`io::ErrorKind::InvalidInput`] naming the valid choices when `name` is unknown here; the OS error if the
/// backend cannot be created.
pub fn by_name(name: &str) -> io::Result<Box<dyn Poller>> {
    match name {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        "epoll" => Ok(Box::new(Epoll::new()?)),
        #[cfg(gale_kqueue)]
        "kqueue" => Ok(Box::new(Kqueue::new()?)),
        "poll" => Ok(Box::new(Poll::new()?)),
        #[cfg(gale_select)]
        "select" => Ok(Box::new(Select::new()?)),
        other => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("unknown poller backend {other:?}; this platform has: {}", BACKENDS.join(", ")),
        )),
    }
}

/// The environment variable [`from_env`] reads.
pub const ENV_VAR: &str = "GALE_POLLER";

/// The backend named by the `GALE_POLLER` environment variable, or the default when it is unset or empty.
///
/// # Errors
///
/// As [`by_name`], for an unknown name.
pub fn from_env() -> io::Result<Box<dyn Poller>> {
    match std::env::var(ENV_VAR) {
        Ok(name) if !name.is_empty() => by_name(&name),
        _ => default_poller(),
    }
}

/// Errors shared by the built-in backends, so that they say the same thing.
pub(crate) mod errors {
    use super::*;

    pub(crate) fn reserved_token() -> io::Error {
        io::Error::new(io::ErrorKind::InvalidInput, "Token::WAKE (usize::MAX) is reserved by the poller")
    }

    pub(crate) fn already_registered(fd: i32) -> io::Error {
        io::Error::new(io::ErrorKind::AlreadyExists, format!("fd {fd} is already registered"))
    }

    pub(crate) fn not_registered(fd: i32) -> io::Error {
        io::Error::new(io::ErrorKind::NotFound, format!("fd {fd} is not registered"))
    }
}

/// The longest timeout handed to the kernel: `i32::MAX` milliseconds, about 24.8 days.
///
/// `epoll_wait` takes its timeout as an `int` of milliseconds (only Linux 5.11's `epoll_pwait2` takes more),
/// and not every kernel accepts an arbitrarily large `timespec` for `kevent`, so every backend shortens longer
/// timeouts to this one. Such a wait then returns with no events after 24.8 days, which callers treat like
/// any other expired timeout.
pub(crate) const MAX_TIMEOUT: Duration = Duration::from_millis(i32::MAX as u64);

/// Converts an optional timeout to the `Timespec` the syscalls take, shortened to [`MAX_TIMEOUT`].
#[inline]
pub(crate) fn timespec(timeout: Option<Duration>) -> Option<rustix::time::Timespec> {
    timeout.map(|d| {
        // Whole seconds below the limit's cannot reach it: one compare for every timeout but the longest.
        let d = if d.as_secs() < MAX_TIMEOUT.as_secs() { d } else { d.min(MAX_TIMEOUT) };
        rustix::time::Timespec { tv_sec: d.as_secs() as _, tv_nsec: d.subsec_nanos() as _ }
    })
}
