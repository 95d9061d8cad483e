//! The public conformance suite: the whole contract of [`Poller`] (see the crate docs), runnable against any
//! backend, built-in or yours.
//!
//! [`run_all`] takes a constructor and runs every check in [`CHECKS`] against a fresh poller; each check is
//! also a public function of its own, taking `&mut dyn Poller`, for a test that wants one at a time. The checks
//! use real sockets (Unix socket pairs, and TCP on 127.0.0.1 with a port chosen by the kernel) and assert
//! behaviour, never how long something took, except that a timeout waits *at least* as long as asked.
//!
//! [`CountingPoller`] wraps any backend and counts the calls made to it: a ready-made custom backend, and a way
//! to see how often an event loop really polls.
//!
//! Compiled with the `testing` feature, which is on by default.
//!
//! # Examples
//!
//! In a backend's own tests, `run_all` runs everything:
//!
//! ```no_run
//! # fn make_my_backend() -> std::io::Result<Box<dyn gale_poller::Poller>> { gale_poller::default_poller() }
//! gale_poller::testing::run_all(make_my_backend);
//! ```
//!
//! One check at a time, here on a [`CountingPoller`] around the default backend:
//!
//! ```
//! use gale_poller::testing::{self, CountingPoller};
//! use std::sync::atomic::Ordering;
//!
//! let mut poller = CountingPoller::new(gale_poller::default_poller()?);
//! testing::readable_after_peer_writes(&mut poller);
//! testing::notify_wakes_blocked_wait(&mut poller);
//! assert!(poller.counts().wait.load(Ordering::Relaxed) > 0);
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! # Panics
//!
//! Every check panics, with a message naming the broken rule, when the poller breaks the contract, and when
//! the sockets it needs cannot be created.
//!
//! # Process-wide effects
//!
//! [`many_fds`] needs about 4,000 fds at once: it raises the soft `RLIMIT_NOFILE` of the process to the hard
//! limit when the soft one is too low, and uses fewer fds, saying so on stderr, when the hard limit is too low
//! as well. Only one `many_fds` runs at a time in a process, however many tests call it in parallel.

use crate::{Event, Events, Interest, Notifier, Notify, Poller, Token};
use std::collections::BTreeSet;
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

/// One named check of the suite.
#[derive(Copy, Clone, Debug)]
pub struct Check {
    /// The check's name, which is also the name of its function in this module.
    pub name: &'static str,
    /// Runs the check against a poller with nothing registered and no notification pending. Every check
    /// leaves the poller so again when it passes.
    pub run: fn(&mut dyn Poller),
}

macro_rules! checks {
    ($($name:ident),* $(,)?) => {
        /// Every check of the contract, in the order [`run_all`] runs them.
        pub const CHECKS: &[Check] = &[$(Check { name: stringify!($name), run: $name }),*];
    };
}

checks![
    readable_after_peer_writes,
    writable_after_connect,
    hangup_is_readable,
    level_triggered,
    modify_switches_interest_and_token,
    deregister_stops_events,
    interest_none_is_silent,
    zero_timeout_does_not_block,
    timeout_is_honoured,
    huge_timeout_is_accepted,
    notify_wakes_blocked_wait,
    notifications_coalesce,
    notifications_are_never_lost,
    tokens_round_trip,
    more_ready_than_capacity,
    many_fds,
    double_register_is_already_exists,
    unknown_fd_is_not_found,
    wake_token_is_invalid_input,
];

/// Runs every check in [`CHECKS`], each against a fresh poller from `make`, and names each on stderr (which
/// the test harness shows for a failing test).
///
/// # Panics
///
/// When `make` fails, or at the first check the pollers fail, with a message naming the broken rule.
pub fn run_all<P: Poller, F: Fn() -> io::Result<P>>(make: F) {
    for check in CHECKS {
        let mut poller = make().unwrap_or_else(|e| panic!("the backend constructor failed: {e}"));
        eprintln!("gale-poller conformance: {} on {}", check.name, poller.name());
        (check.run)(&mut poller);
    }
}

/// How long a check waits for readiness that should come at once before it declares it missing. A failure
/// limit only: a passing check never waits this long.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// The number of waits [`notifications_are_never_lost`] races against a notifying thread.
pub const RACING_WAITS: usize = 50_000;

/// `FD_SETSIZE` of Linux and the BSDs: [`many_fds`] makes sure that it registers fds past it.
const FD_SETSIZE: i32 = 1024;

/// The number of socket pairs [`many_fds`] registers when the fd limit allows.
pub const MANY_PAIRS: usize = 2_000;

// ---------------------------------------------------------------------------------------------------------
// Helpers.

/// One wait, retried on `Interrupted` with the same timeout.
fn wait(poller: &mut dyn Poller, events: &mut Events, timeout: Option<Duration>) {
    loop {
        match poller.wait(events, timeout) {
            Ok(()) => return,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => panic!("{}: wait({timeout:?}) failed: {e}", poller.name()),
        }
    }
}

/// The events of one wait.
fn wait_once(poller: &mut dyn Poller, timeout: Option<Duration>) -> Vec<Event> {
    let mut events = Events::with_capacity(256);
    wait(poller, &mut events, timeout);
    events.as_slice().to_vec()
}

/// The events of one wait that does not block.
fn poll_now(poller: &mut dyn Poller) -> Vec<Event> {
    wait_once(poller, Some(Duration::ZERO))
}

/// The events of `list` with `token`, combined into one (a backend may report an fd in two events).
fn find(list: &[Event], token: Token) -> Option<Event> {
    list.iter().filter(|e| e.token() == token).copied().reduce(|a, b| {
        Event::new(
            token,
            a.is_readable() || b.is_readable(),
            a.is_writable() || b.is_writable(),
            a.is_hangup() || b.is_hangup(),
            a.is_error() || b.is_error(),
        )
    })
}

/// Waits until a wait reports `token` and returns its (combined) event.
///
/// # Panics
///
/// If no wait reports it within [`PATIENCE`].
fn wait_for(poller: &mut dyn Poller, token: Token, what: &str) -> Event {
    let start = Instant::now();
    while start.elapsed() < PATIENCE {
        if let Some(event) = find(&wait_once(poller, Some(Duration::from_millis(100))), token) {
            return event;
        }
    }
    panic!("{}: {what}: no event for {token:?} within {PATIENCE:?}", poller.name());
}

/// Asserts that a wait that does not block, and one that waits a little, report nothing for `token`.
fn assert_silent(poller: &mut dyn Poller, token: Token, what: &str) {
    for timeout in [Duration::ZERO, Duration::from_millis(20)] {
        let events = wait_once(poller, Some(timeout));
        assert!(find(&events, token).is_none(), "{}: {what}, yet it was reported: {events:?}", poller.name());
    }
}

fn register(poller: &mut dyn Poller, fd: BorrowedFd<'_>, token: Token, interest: Interest) {
    poller
        .register(fd, token, interest)
        .unwrap_or_else(|e| panic!("{}: register({token:?}, {interest:?}) failed: {e}", poller.name()));
}

fn modify(poller: &mut dyn Poller, fd: BorrowedFd<'_>, token: Token, interest: Interest) {
    poller
        .modify(fd, token, interest)
        .unwrap_or_else(|e| panic!("{}: modify({token:?}, {interest:?}) failed: {e}", poller.name()));
}

fn deregister(poller: &mut dyn Poller, fd: BorrowedFd<'_>) {
    poller.deregister(fd).unwrap_or_else(|e| panic!("{}: deregister failed: {e}", poller.name()));
}

/// A connected, non-blocking Unix socket pair.
fn unix_pair() -> (UnixStream, UnixStream) {
    let (a, b) = UnixStream::pair().expect("socketpair");
    a.set_nonblocking(true).expect("set_nonblocking");
    b.set_nonblocking(true).expect("set_nonblocking");
    (a, b)
}

/// A connected, non-blocking TCP pair on 127.0.0.1: (client, server).
fn tcp_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
    let client = TcpStream::connect(listener.local_addr().expect("local_addr")).expect("connect");
    let (server, _) = listener.accept().expect("accept");
    for s in [&client, &server] {
        s.set_nonblocking(true).expect("set_nonblocking");
        s.set_nodelay(true).expect("set_nodelay");
    }
    (client, server)
}

/// Reads what is waiting on a non-blocking socket: `Some(n)` bytes (0 at end-of-file), `None` if nothing is.
fn read_some(mut s: impl Read) -> Option<usize> {
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(n) => return Some(n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
            Err(e) => panic!("read failed: {e}"),
        }
    }
}

/// Reads until end-of-file or `WouldBlock`; returns whether end-of-file was seen.
fn drain(mut s: impl Read) -> bool {
    loop {
        match read_some(&mut s) {
            Some(0) => return true,
            Some(_) => continue,
            None => return false,
        }
    }
}

fn assert_readable(poller: &dyn Poller, event: Event, what: &str) {
    assert!(event.is_readable(), "{}: {what}: the event is not readable: {event:?}", poller.name());
}

/// Asserts the event claims no writability unless it comes with hang-up or error (see the crate docs).
fn assert_not_writable(poller: &dyn Poller, event: Event, what: &str) {
    assert!(
        !event.is_writable() || event.is_hangup() || event.is_error(),
        "{}: {what}: writable reported without write interest: {event:?}",
        poller.name()
    );
}

// ---------------------------------------------------------------------------------------------------------
// The checks.

/// A registration for reading is reported readable once its peer writes (a Unix socket pair and a TCP
/// connection), and not before.
pub fn readable_after_peer_writes(poller: &mut dyn Poller) {
    let (a, mut b) = unix_pair();
    register(poller, a.as_fd(), Token(1), Interest::READABLE);
    assert_silent(poller, Token(1), "nothing was written to the Unix socket");
    b.write_all(b"ping").unwrap();
    let event = wait_for(poller, Token(1), "the Unix peer wrote");
    assert_readable(poller, event, "the Unix peer wrote");
    assert_not_writable(poller, event, "the Unix peer wrote");
    assert_eq!(read_some(&a), Some(4), "the reported readiness was real");

    let (mut client, server) = tcp_pair();
    register(poller, server.as_fd(), Token(2), Interest::READABLE);
    assert_silent(poller, Token(2), "nothing was written to the TCP connection");
    client.write_all(b"ping").unwrap();
    let event = wait_for(poller, Token(2), "the TCP peer wrote");
    assert_readable(poller, event, "the TCP peer wrote");
    assert!(read_some(&server).is_some_and(|n| n > 0), "the reported readiness was real");
    deregister(poller, a.as_fd());
    deregister(poller, server.as_fd());
}

/// A non-blocking TCP connect in progress is reported writable once it completes, with no socket error.
pub fn writable_after_connect(poller: &mut dyn Poller) {
    use rustix::net::{AddressFamily, SocketType};
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
    let addr: SocketAddr = listener.local_addr().unwrap();
    let socket: OwnedFd = rustix::net::socket(AddressFamily::INET, SocketType::STREAM, None).expect("socket");
    rustix::io::ioctl_fionbio(&socket, true).expect("FIONBIO");
    match rustix::net::connect(&socket, &addr) {
        Ok(()) | Err(rustix::io::Errno::INPROGRESS) => {}
        Err(e) => panic!("connect to {addr} failed: {e}"),
    }
    register(poller, socket.as_fd(), Token(3), Interest::WRITABLE);
    let event = wait_for(poller, Token(3), "a TCP connect was in progress");
    assert!(event.is_writable(), "{}: the connect completed, yet not writable: {event:?}", poller.name());
    assert_eq!(rustix::net::sockopt::socket_error(&socket).unwrap(), Ok(()), "the connect succeeded");
    let (_server, _) = listener.accept().expect("accept");
    deregister(poller, socket.as_fd());
}

/// When the peer closes, the registration for reading is reported readable and a read returns 0 bytes (Unix
/// socket pair and TCP, with and without unread data before the end). [`Event::is_hangup`] is not required
/// here, as `select` cannot report it; [`hangup_is_flagged`] checks it for the backends that can.
pub fn hangup_is_readable(poller: &mut dyn Poller) {
    let (a, b) = unix_pair();
    register(poller, a.as_fd(), Token(4), Interest::READABLE);
    drop(b);
    let event = wait_for(poller, Token(4), "the Unix peer closed");
    assert_readable(poller, event, "the Unix peer closed");
    assert_eq!(read_some(&a), Some(0), "end-of-file after the Unix peer closed");
    deregister(poller, a.as_fd());

    let (mut client, server) = tcp_pair();
    register(poller, server.as_fd(), Token(5), Interest::READABLE);
    client.write_all(b"last words").unwrap();
    drop(client);
    let event = wait_for(poller, Token(5), "the TCP peer wrote and closed");
    assert_readable(poller, event, "the TCP peer wrote and closed");
    let start = Instant::now();
    while !drain(&server) {
        assert!(start.elapsed() < PATIENCE, "no end-of-file after the TCP peer closed");
        wait_for(poller, Token(5), "the TCP peer closed");
    }
    deregister(poller, server.as_fd());
}

/// Not part of [`run_all`]: a closed peer also sets [`Event::is_hangup`], along with readable (Unix socket
/// pair and TCP). The built-in backends other than `select` pass it; run it for a backend that claims to tell
/// hang-up apart.
pub fn hangup_is_flagged(poller: &mut dyn Poller) {
    let (a, b) = unix_pair();
    register(poller, a.as_fd(), Token(6), Interest::READABLE);
    drop(b);
    let event = wait_for(poller, Token(6), "the Unix peer closed");
    assert!(event.is_hangup() && event.is_readable(), "{}: Unix peer closed: {event:?}", poller.name());
    deregister(poller, a.as_fd());

    let (client, server) = tcp_pair();
    register(poller, server.as_fd(), Token(7), Interest::READABLE);
    drop(client);
    let start = Instant::now();
    loop {
        let event = wait_for(poller, Token(7), "the TCP peer closed");
        if event.is_hangup() {
            assert_readable(poller, event, "the TCP peer closed");
            break;
        }
        assert!(start.elapsed() < PATIENCE, "{}: TCP peer closed, no hang-up: {event:?}", poller.name());
    }
    deregister(poller, server.as_fd());
}

/// Readiness is level-triggered: an fd with unread data is reported by every wait until the data is read, and
/// a writable fd by every wait.
pub fn level_triggered(poller: &mut dyn Poller) {
    let (a, mut b) = unix_pair();
    register(poller, a.as_fd(), Token(8), Interest::READABLE);
    b.write_all(b"unread").unwrap();
    wait_for(poller, Token(8), "data was written");
    for round in 0..3 {
        let events = poll_now(poller);
        let event = find(&events, Token(8));
        assert!(
            event.is_some_and(|e| e.is_readable()),
            "{}: unread data not reported again by wait {round} after the first: {events:?}",
            poller.name()
        );
    }
    assert_eq!(read_some(&a), Some(6));
    assert_silent(poller, Token(8), "all data was read");

    register(poller, b.as_fd(), Token(9), Interest::WRITABLE);
    for round in 0..3 {
        let event = wait_for(poller, Token(9), "the socket can be written");
        assert!(event.is_writable(), "{}: wait {round}: not writable: {event:?}", poller.name());
    }
    deregister(poller, a.as_fd());
    deregister(poller, b.as_fd());
}

/// `modify` replaces both the interest and the token of a registration.
pub fn modify_switches_interest_and_token(poller: &mut dyn Poller) {
    let (a, mut b) = unix_pair();
    register(poller, a.as_fd(), Token(10), Interest::WRITABLE);
    let event = wait_for(poller, Token(10), "registered for writing");
    assert!(event.is_writable(), "{}: registered for writing: {event:?}", poller.name());

    modify(poller, a.as_fd(), Token(11), Interest::READABLE);
    let events = poll_now(poller);
    assert!(events.is_empty(), "{}: modified to reading, nothing written, yet: {events:?}", poller.name());

    b.write_all(b"x").unwrap();
    let events = wait_once(poller, Some(PATIENCE));
    let event = find(&events, Token(11)).unwrap_or_else(|| panic!("{}: no event for the new token", poller.name()));
    assert_readable(poller, event, "modified to reading, then written");
    assert_not_writable(poller, event, "modified to reading, then written");
    assert!(find(&events, Token(10)).is_none(), "{}: the old token is still reported: {events:?}", poller.name());

    modify(poller, a.as_fd(), Token(12), Interest::BOTH);
    let event = wait_for(poller, Token(12), "modified to both");
    assert!(event.is_readable() && event.is_writable(), "{}: modified to both: {event:?}", poller.name());
    let events = poll_now(poller);
    assert!(
        events.iter().all(|e| e.token() == Token(12)),
        "{}: only the newest token may be reported: {events:?}",
        poller.name()
    );
    deregister(poller, a.as_fd());
}

/// A deregistered fd is not reported, even while ready, and it can be registered again afterwards.
pub fn deregister_stops_events(poller: &mut dyn Poller) {
    let (a, mut b) = unix_pair();
    register(poller, a.as_fd(), Token(13), Interest::BOTH);
    b.write_all(b"x").unwrap();
    wait_for(poller, Token(13), "registered and ready");
    deregister(poller, a.as_fd());
    assert_silent(poller, Token(13), "the fd was deregistered");
    let events = poll_now(poller);
    assert!(events.is_empty(), "{}: nothing is registered, yet: {events:?}", poller.name());

    register(poller, a.as_fd(), Token(14), Interest::READABLE);
    let event = wait_for(poller, Token(14), "registered again");
    assert_readable(poller, event, "registered again");
    deregister(poller, a.as_fd());
}

/// [`Interest::NONE`] keeps a registration that reports nothing, not even after the peer wrote and hung up;
/// `modify` back to reading reports again. Checked both for `register` with none and `modify` to none.
pub fn interest_none_is_silent(poller: &mut dyn Poller) {
    let (a, mut b) = unix_pair();
    register(poller, a.as_fd(), Token(15), Interest::NONE);
    b.write_all(b"x").unwrap();
    drop(b);
    assert_silent(poller, Token(15), "registered with no interest, the peer wrote and hung up");
    let events = poll_now(poller);
    assert!(events.is_empty(), "{}: only a silent registration exists, yet: {events:?}", poller.name());
    modify(poller, a.as_fd(), Token(16), Interest::READABLE);
    let event = wait_for(poller, Token(16), "modified from none to reading");
    assert_readable(poller, event, "modified from none to reading");

    let (c, d) = unix_pair();
    register(poller, c.as_fd(), Token(17), Interest::READABLE);
    modify(poller, c.as_fd(), Token(17), Interest::NONE);
    drop(d);
    assert_silent(poller, Token(17), "modified to no interest, then the peer hung up");
    modify(poller, c.as_fd(), Token(18), Interest::READABLE);
    let event = wait_for(poller, Token(18), "modified from none to reading");
    assert_readable(poller, event, "modified from none to reading");
    assert_eq!(read_some(&c), Some(0));

    // Modifying a silent registration to none again, and deregistering it, are both fine.
    modify(poller, a.as_fd(), Token(16), Interest::NONE);
    modify(poller, a.as_fd(), Token(16), Interest::NONE);
    deregister(poller, a.as_fd());
    deregister(poller, c.as_fd());
    assert!(poll_now(poller).is_empty(), "{}: everything was deregistered", poller.name());
}

/// `wait(Some(Duration::ZERO))` returns at once, with nothing when nothing is ready.
pub fn zero_timeout_does_not_block(poller: &mut dyn Poller) {
    let events = poll_now(poller);
    assert!(events.is_empty(), "{}: nothing is registered, yet: {events:?}", poller.name());
    let (a, _b) = unix_pair();
    register(poller, a.as_fd(), Token(19), Interest::READABLE);
    for _ in 0..3 {
        let events = poll_now(poller);
        assert!(events.is_empty(), "{}: nothing is ready, yet: {events:?}", poller.name());
    }
    deregister(poller, a.as_fd());
}

/// A wait with nothing ready lasts at least its timeout (a lower bound only) and delivers nothing.
pub fn timeout_is_honoured(poller: &mut dyn Poller) {
    let (a, _b) = unix_pair();
    register(poller, a.as_fd(), Token(20), Interest::READABLE);
    for timeout in [Duration::from_millis(1), Duration::from_millis(30), Duration::from_millis(120)] {
        let mut events = Events::with_capacity(8);
        let start = Instant::now();
        wait(poller, &mut events, Some(timeout));
        let elapsed = start.elapsed();
        assert!(events.is_empty(), "{}: nothing is ready, yet: {events:?}", poller.name());
        assert!(elapsed >= timeout, "{}: wait({timeout:?}) returned after only {elapsed:?}", poller.name());
    }
    deregister(poller, a.as_fd());
}

/// A timeout too large for the kernel's own type (`Duration::MAX`) is accepted, not refused with an error; the
/// wait returns when notified.
pub fn huge_timeout_is_accepted(poller: &mut dyn Poller) {
    for timeout in [Duration::MAX, Duration::from_secs(u64::from(u32::MAX)), Duration::from_millis(i32::MAX as u64 + 1)]
    {
        poller.notifier().notify().expect("notify");
        let events = wait_once(poller, Some(timeout));
        assert!(events.is_empty(), "{}: nothing is registered, yet: {events:?}", poller.name());
    }
}

/// `wait(None)` blocks until another thread notifies the poller, then returns with nothing ready.
pub fn notify_wakes_blocked_wait(poller: &mut dyn Poller) {
    let (a, _b) = unix_pair();
    register(poller, a.as_fd(), Token(21), Interest::READABLE);
    for _ in 0..3 {
        let notified = Arc::new(AtomicBool::new(false));
        let notifier = poller.notifier();
        let flag = notified.clone();
        let thread = thread::spawn(move || {
            thread::sleep(Duration::from_millis(30));
            flag.store(true, Ordering::SeqCst);
            notifier.notify().expect("notify");
        });
        let events = wait_once(poller, None);
        assert!(notified.load(Ordering::SeqCst), "{}: wait(None) returned before the notification", poller.name());
        assert!(events.is_empty(), "{}: nothing is ready, yet: {events:?}", poller.name());
        thread.join().unwrap();
    }
    deregister(poller, a.as_fd());
}

/// A notification made before a wait is not lost; many notifications before a wait cost one early return (the
/// next wait lasts its full timeout); a notification after that wakes a wait again.
pub fn notifications_coalesce(poller: &mut dyn Poller) {
    let notifier = poller.notifier();
    for _ in 0..100 {
        notifier.notify().expect("notify");
    }
    let clone = notifier.clone();
    thread::spawn(move || (0..100).for_each(|_| clone.notify().expect("notify"))).join().unwrap();
    let events = wait_once(poller, None); // Returns: notified before.
    assert!(events.is_empty(), "{}: nothing is registered, yet: {events:?}", poller.name());

    let timeout = Duration::from_millis(50);
    let start = Instant::now();
    let events = wait_once(poller, Some(timeout));
    let elapsed = start.elapsed();
    assert!(events.is_empty(), "{}: nothing is registered, yet: {events:?}", poller.name());
    assert!(
        elapsed >= timeout,
        "{}: 200 notifications woke more than one wait (the second returned after {elapsed:?})",
        poller.name()
    );

    notifier.notify().expect("notify");
    wait_once(poller, None); // Returns: the wake-up mechanism was re-armed.
}

/// Notifications from another thread racing with waits are never lost: while a thread notifies without pause,
/// the poller waits [`RACING_WAITS`] times, and every wait returns promptly (a lost notification would leave a
/// wait to its [`PATIENCE`] timeout: a failure limit, not a timing measurement).
pub fn notifications_are_never_lost(poller: &mut dyn Poller) {
    let stop = Arc::new(AtomicBool::new(false));
    let notifier = poller.notifier();
    let flag = stop.clone();
    let thread = thread::spawn(move || {
        while !flag.load(Ordering::Relaxed) {
            notifier.notify().expect("notify");
        }
    });
    let mut events = Events::with_capacity(8);
    let mut lost = None;
    for round in 0..RACING_WAITS {
        let start = Instant::now();
        wait(poller, &mut events, Some(PATIENCE));
        if start.elapsed() >= PATIENCE {
            lost = Some(round);
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    thread.join().unwrap();
    if let Some(round) = lost {
        panic!("{}: wait {round} of {RACING_WAITS} was never woken by the notifying thread", poller.name());
    }
}

/// Tokens come back exactly as registered, the largest usable values included, after `modify` too.
pub fn tokens_round_trip(poller: &mut dyn Poller) {
    let tokens = [0, 1, 42, u32::MAX as usize, usize::MAX / 2 + 1, usize::MAX - 1].map(Token);
    let pairs: Vec<_> = tokens.iter().map(|_| unix_pair()).collect();
    for ((a, b), &token) in pairs.iter().zip(&tokens) {
        register(poller, a.as_fd(), token, Interest::READABLE);
        (&*b).write_all(b"x").unwrap();
    }
    let expected: BTreeSet<Token> = tokens.iter().copied().collect();
    let mut seen = BTreeSet::new();
    let start = Instant::now();
    while seen != expected && start.elapsed() < PATIENCE {
        for event in wait_once(poller, Some(Duration::from_millis(100))) {
            assert!(expected.contains(&event.token()), "{}: unknown token in {event:?}", poller.name());
            assert_readable(poller, event, "written to");
            seen.insert(event.token());
        }
    }
    assert_eq!(seen, expected, "{}: every token comes back", poller.name());

    let (a, _) = &pairs[0];
    let moved = Token(usize::MAX - 2);
    modify(poller, a.as_fd(), moved, Interest::READABLE);
    let event = wait_for(poller, moved, "modified to a large token");
    assert_readable(poller, event, "modified to a large token");
    for (a, _) in &pairs {
        deregister(poller, a.as_fd());
    }
}

/// When more fds are ready than [`Events`] holds, no wait delivers more than its capacity, and successive
/// waits deliver every ready fd even though none is ever read.
pub fn more_ready_than_capacity(poller: &mut dyn Poller) {
    const PAIRS: usize = 40;
    const CAPACITY: usize = 7;
    let pairs: Vec<_> = (0..PAIRS).map(|_| unix_pair()).collect();
    for (i, (a, b)) in pairs.iter().enumerate() {
        register(poller, a.as_fd(), Token(i), Interest::READABLE);
        (&*b).write_all(b"x").unwrap();
    }
    let mut events = Events::with_capacity(CAPACITY);
    let mut seen = BTreeSet::new();
    // With everything ready, a fair backend needs ceil(40 / 7) = 6 waits; 40 leaves room for backends that
    // deliver fewer than `CAPACITY` at a time, but none for one that keeps delivering the same few.
    for _ in 0..PAIRS {
        wait(poller, &mut events, Some(PATIENCE));
        assert!(!events.is_empty(), "{}: 40 fds are ready, yet a wait delivered nothing", poller.name());
        assert!(events.len() <= CAPACITY, "{}: more events than the capacity", poller.name());
        seen.extend(events.iter().map(|e| e.token().0));
        if seen.len() == PAIRS {
            break;
        }
    }
    let missing: Vec<usize> = (0..PAIRS).filter(|i| !seen.contains(i)).collect();
    assert!(missing.is_empty(), "{}: these ready fds were never delivered: {missing:?}", poller.name());
    for (a, _) in &pairs {
        deregister(poller, a.as_fd());
    }
}

/// Serializes [`many_fds`] within a process, so that tests running in parallel do not exhaust the fd limit.
static MANY_FDS: Mutex<()> = Mutex::new(());

/// How many fds the process may have open, after raising the soft limit towards the hard one if it is below
/// `wanted`.
fn fd_limit(wanted: u64) -> u64 {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    let soft = limit.current.unwrap_or(u64::MAX);
    if soft >= wanted {
        return soft;
    }
    let hard = limit.maximum.unwrap_or(u64::MAX);
    // The hard limit first; some systems (macOS) refuse an unlimited soft limit, so then just what is wanted.
    for target in [hard, wanted.min(hard)] {
        if setrlimit(Resource::Nofile, Rlimit { current: Some(target), maximum: limit.maximum }).is_ok() {
            return target;
        }
    }
    soft
}

/// Thousands of fds at once ([`MANY_PAIRS`] socket pairs, so fd numbers well past `FD_SETSIZE`): exactly the
/// ready ones are reported, including the highest; once read they are not; once deregistered nothing is.
///
/// Raises the soft `RLIMIT_NOFILE` when needed and uses fewer pairs, saying so on stderr, when the hard limit
/// is too low for them (see the [module docs](self)).
pub fn many_fds(poller: &mut dyn Poller) {
    /// Fds left for the rest of the process (the test harness, other tests running in parallel).
    const HEADROOM: u64 = 512;
    let _one_at_a_time = MANY_FDS.lock().unwrap_or_else(PoisonError::into_inner);
    let limit = fd_limit(2 * MANY_PAIRS as u64 + HEADROOM);
    let n = usize::try_from(limit.saturating_sub(HEADROOM) / 2).unwrap_or(usize::MAX).min(MANY_PAIRS);
    if n < MANY_PAIRS {
        eprintln!(
            "gale-poller conformance: many_fds uses {n} socket pairs instead of {MANY_PAIRS}: the fd limit of \
             this process is {limit} and cannot be raised (raise `ulimit -Hn` to check the full count)"
        );
    }
    assert!(n >= 8, "the fd limit ({limit}) is too low to run many_fds at all");

    let pairs: Vec<_> = (0..n).map(|_| unix_pair()).collect();
    for (i, (a, _)) in pairs.iter().enumerate() {
        register(poller, a.as_fd(), Token(i), Interest::READABLE);
    }
    let highest = (0..n).max_by_key(|&i| pairs[i].0.as_raw_fd()).unwrap();
    if n == MANY_PAIRS {
        let fd = pairs[highest].0.as_raw_fd();
        assert!(fd >= FD_SETSIZE, "{n} socket pairs should reach past FD_SETSIZE, yet the highest fd is {fd}");
    }

    let ready: BTreeSet<usize> = (0..n).step_by(97).chain([highest, n - 1]).collect();
    for &i in &ready {
        (&pairs[i].1).write_all(b"x").unwrap();
    }
    let mut seen = BTreeSet::new();
    let start = Instant::now();
    while seen != ready && start.elapsed() < PATIENCE {
        for event in wait_once(poller, Some(Duration::from_millis(100))) {
            let i = event.token().0;
            assert!(ready.contains(&i), "{}: fd {i} of {n} reported, nothing was written to it", poller.name());
            assert_readable(poller, event, "written to");
            seen.insert(i);
        }
    }
    let missing: Vec<_> = ready.difference(&seen).collect();
    assert!(missing.is_empty(), "{}: with {n} fds registered, never reported: {missing:?}", poller.name());

    for &i in &ready {
        assert_eq!(read_some(&pairs[i].0), Some(1));
    }
    let events = poll_now(poller);
    assert!(events.is_empty(), "{}: everything was read, yet: {events:?}", poller.name());

    for &i in &ready {
        (&pairs[i].1).write_all(b"y").unwrap();
    }
    for (a, _) in &pairs {
        deregister(poller, a.as_fd());
    }
    let events = poll_now(poller);
    assert!(events.is_empty(), "{}: everything was deregistered, yet: {events:?}", poller.name());
}

/// Registering a registered fd fails with `AlreadyExists` (whether its interest is none or not) and leaves the
/// registration as it was.
pub fn double_register_is_already_exists(poller: &mut dyn Poller) {
    let (a, mut b) = unix_pair();
    for first in [Interest::READABLE, Interest::NONE] {
        register(poller, a.as_fd(), Token(30), first);
        for again in [Interest::READABLE, Interest::WRITABLE, Interest::NONE] {
            let result = poller.register(a.as_fd(), Token(31), again);
            let kind = result.as_ref().map_err(io::Error::kind);
            assert_eq!(
                kind,
                Err(io::ErrorKind::AlreadyExists),
                "{}: registered with {first:?}, then again with {again:?}: {result:?}",
                poller.name()
            );
        }
        deregister(poller, a.as_fd());
    }
    register(poller, a.as_fd(), Token(32), Interest::READABLE);
    assert!(poller.register(a.as_fd(), Token(33), Interest::NONE).is_err());
    b.write_all(b"x").unwrap();
    let events = wait_once(poller, Some(PATIENCE));
    let event = find(&events, Token(32));
    assert!(
        event.is_some_and(|e| e.is_readable()) && find(&events, Token(33)).is_none(),
        "{}: a refused second registration changed the first: {events:?}",
        poller.name()
    );
    deregister(poller, a.as_fd());
}

/// `modify` and `deregister` of an fd that is not registered (never, or no longer) fail with `NotFound`.
pub fn unknown_fd_is_not_found(poller: &mut dyn Poller) {
    let (a, _b) = unix_pair();
    let not_found = |result: io::Result<()>, what: &str, name: &str| {
        let kind = result.as_ref().map_err(io::Error::kind);
        assert_eq!(kind, Err(io::ErrorKind::NotFound), "{name}: {what}: {result:?}");
    };
    for round in ["never registered", "deregistered"] {
        let result = poller.modify(a.as_fd(), Token(34), Interest::READABLE);
        not_found(result, &format!("modify of an fd {round}"), poller.name());
        let result = poller.deregister(a.as_fd());
        not_found(result, &format!("deregister of an fd {round}"), poller.name());
        register(poller, a.as_fd(), Token(34), Interest::READABLE);
        deregister(poller, a.as_fd());
    }
}

/// [`Token::WAKE`] is refused with `InvalidInput` by `register` (which then registers nothing) and by `modify`
/// (which then changes nothing).
pub fn wake_token_is_invalid_input(poller: &mut dyn Poller) {
    let (a, mut b) = unix_pair();
    let result = poller.register(a.as_fd(), Token::WAKE, Interest::READABLE);
    let kind = result.as_ref().map_err(io::Error::kind);
    assert_eq!(kind, Err(io::ErrorKind::InvalidInput), "{}: register with Token::WAKE: {result:?}", poller.name());
    let result = poller.deregister(a.as_fd());
    assert!(result.is_err(), "{}: a refused registration was registered anyway", poller.name());

    register(poller, a.as_fd(), Token(35), Interest::READABLE);
    let result = poller.modify(a.as_fd(), Token::WAKE, Interest::BOTH);
    let kind = result.as_ref().map_err(io::Error::kind);
    assert_eq!(kind, Err(io::ErrorKind::InvalidInput), "{}: modify with Token::WAKE: {result:?}", poller.name());
    b.write_all(b"x").unwrap();
    let events = wait_once(poller, Some(PATIENCE));
    let event = find(&events, Token(35));
    assert!(
        event.is_some_and(|e| e.is_readable()) && events.iter().all(|e| e.token() == Token(35)),
        "{}: a refused modify changed the registration: {events:?}",
        poller.name()
    );
    deregister(poller, a.as_fd());
}

// ---------------------------------------------------------------------------------------------------------
// A ready-made custom backend.

/// The calls a [`CountingPoller`] has seen, shared through an `Arc` so that they can be read while the poller
/// itself is owned elsewhere (by an event loop, by [`run_all`]).
#[derive(Debug, Default)]
pub struct Counts {
    /// Calls to [`Poller::register`], successful or not.
    pub register: AtomicU64,
    /// Calls to [`Poller::modify`].
    pub modify: AtomicU64,
    /// Calls to [`Poller::deregister`].
    pub deregister: AtomicU64,
    /// Calls to [`Poller::wait`].
    pub wait: AtomicU64,
    /// Events delivered by all waits together.
    pub events: AtomicU64,
    /// Calls to [`Notifier::notify`] on the notifiers the poller handed out.
    pub notify: AtomicU64,
}

/// A backend that delegates to another (any [`Poller`], `Box<dyn Poller>` included) and counts the calls made
/// to it in [`Counts`]. It passes the conformance suite exactly when the backend it wraps does.
///
/// # Examples
///
/// ```
/// use gale_poller::Poller;
/// use gale_poller::testing::CountingPoller;
/// use std::sync::atomic::Ordering;
/// use std::time::Duration;
///
/// let mut poller = CountingPoller::new(gale_poller::default_poller()?);
/// let counts = poller.counts().clone();
/// poller.notifier().notify()?;
/// poller.wait(&mut gale_poller::Events::with_capacity(8), Some(Duration::ZERO))?;
/// assert_eq!(counts.wait.load(Ordering::Relaxed), 1);
/// assert_eq!(counts.notify.load(Ordering::Relaxed), 1);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct CountingPoller<P> {
    inner: P,
    counts: Arc<Counts>,
}

impl<P: Poller> CountingPoller<P> {
    /// Wraps `inner` with counts of its own.
    pub fn new(inner: P) -> CountingPoller<P> {
        CountingPoller::with_counts(inner, Arc::default())
    }

    /// Wraps `inner`, adding to `counts` (which other pollers may share).
    pub fn with_counts(inner: P, counts: Arc<Counts>) -> CountingPoller<P> {
        CountingPoller { inner, counts }
    }

    /// The counts.
    pub fn counts(&self) -> &Arc<Counts> {
        &self.counts
    }

    /// The wrapped backend.
    pub fn get_ref(&self) -> &P {
        &self.inner
    }

    /// Unwraps the backend.
    pub fn into_inner(self) -> P {
        self.inner
    }
}

/// Counts the notifications sent through a [`CountingPoller`]'s notifiers.
struct CountingNotify {
    inner: Notifier,
    counts: Arc<Counts>,
}

impl fmt::Debug for CountingNotify {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CountingNotify").field("inner", &self.inner).finish_non_exhaustive()
    }
}

impl Notify for CountingNotify {
    fn notify(&self) -> io::Result<()> {
        self.counts.notify.fetch_add(1, Ordering::Relaxed);
        self.inner.notify()
    }
}

fn count(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl<P: Poller> Poller for CountingPoller<P> {
    fn register(&mut self, fd: BorrowedFd<'_>, token: Token, interest: Interest) -> io::Result<()> {
        count(&self.counts.register);
        self.inner.register(fd, token, interest)
    }

    fn modify(&mut self, fd: BorrowedFd<'_>, token: Token, interest: Interest) -> io::Result<()> {
        count(&self.counts.modify);
        self.inner.modify(fd, token, interest)
    }

    fn deregister(&mut self, fd: BorrowedFd<'_>) -> io::Result<()> {
        count(&self.counts.deregister);
        self.inner.deregister(fd)
    }

    fn wait(&mut self, events: &mut Events, timeout: Option<Duration>) -> io::Result<()> {
        count(&self.counts.wait);
        let result = self.inner.wait(events, timeout);
        self.counts.events.fetch_add(events.len() as u64, Ordering::Relaxed);
        result
    }

    fn notifier(&self) -> Notifier {
        Notifier::new(Arc::new(CountingNotify { inner: self.inner.notifier(), counts: self.counts.clone() }))
    }

    /// The wrapped backend's name: the mechanism doing the work.
    fn name(&self) -> &'static str {
        self.inner.name()
    }
}
