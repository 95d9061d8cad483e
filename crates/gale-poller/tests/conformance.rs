//! The conformance suite against every built-in backend, by type and by name, and against a backend written
//! here, outside the crate, with nothing but the public API.

#[cfg(any(target_os = "linux", target_os = "android"))]
use gale_poller::Epoll;
use gale_poller::testing::{self, CountingPoller, Counts};
use gale_poller::{BACKENDS, Events, Interest, Notifier, Notify, Poll, Poller, Select, Token};
use std::io;
use std::os::fd::BorrowedFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

#[cfg(any(target_os = "linux", target_os = "android"))]
#[test]
fn epoll_passes_the_suite() {
    testing::run_all(Epoll::new);
}

#[test]
fn poll_passes_the_suite() {
    testing::run_all(Poll::new);
}

#[test]
fn select_passes_the_suite() {
    testing::run_all(Select::new);
}

#[test]
fn every_backend_by_name_passes_the_suite() {
    for &name in BACKENDS {
        testing::run_all(|| gale_poller::by_name(name));
        assert_eq!(gale_poller::by_name(name).unwrap().name(), name);
    }
}

#[test]
fn every_backend_but_select_flags_hangup() {
    for &name in BACKENDS.iter().filter(|&&name| name != "select") {
        testing::hangup_is_flagged(&mut gale_poller::by_name(name).unwrap());
    }
}

#[test]
fn select_never_flags_hangup_or_error() {
    // select cannot tell these apart; the suite checks that hang-up still reads as readable.
    let mut poller = Select::new().unwrap();
    let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
    poller.register(std::os::fd::AsFd::as_fd(&a), Token(1), Interest::READABLE).unwrap();
    drop(b);
    let mut events = Events::with_capacity(4);
    poller.wait(&mut events, Some(Duration::from_secs(10))).unwrap();
    let event = events.iter().next().expect("the peer closed");
    assert!(event.is_readable() && !event.is_hangup() && !event.is_error(), "{event:?}");
}

#[test]
fn the_default_is_the_first_name() {
    assert_eq!(gale_poller::default_poller().unwrap().name(), BACKENDS[0]);
    #[cfg(any(target_os = "linux", target_os = "android"))]
    assert_eq!(BACKENDS, ["epoll", "poll", "select"]);
}

#[test]
fn an_unknown_name_is_invalid_input_naming_the_choices() {
    let err = gale_poller::by_name("nope").unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    let message = err.to_string();
    assert!(message.contains("\"nope\""), "{message}");
    for name in BACKENDS {
        assert!(message.contains(name), "{message} does not name {name}");
    }
}

/// All of the `from_env` cases in one test, since they share the process environment.
#[test]
fn from_env_honours_gale_poller() {
    // SAFETY (edition 2024 makes `set_var` unsafe): no other test in this binary reads or writes the
    // environment, and the variable is only read by `from_env` on this thread.
    let set = |value: Option<&str>| unsafe {
        match value {
            Some(value) => std::env::set_var(gale_poller::ENV_VAR, value),
            None => std::env::remove_var(gale_poller::ENV_VAR),
        }
    };
    for &name in BACKENDS {
        set(Some(name));
        assert_eq!(gale_poller::from_env().unwrap().name(), name);
    }
    set(Some("nope"));
    assert_eq!(gale_poller::from_env().unwrap_err().kind(), io::ErrorKind::InvalidInput);
    set(Some(""));
    assert_eq!(gale_poller::from_env().unwrap().name(), BACKENDS[0]);
    set(None);
    assert_eq!(gale_poller::from_env().unwrap().name(), BACKENDS[0]);
}

#[test]
fn counting_poller_passes_the_suite_and_counts() {
    let counts = Arc::new(Counts::default());
    testing::run_all(|| Ok(CountingPoller::with_counts(gale_poller::default_poller()?, counts.clone())));
    for (what, counter) in [
        ("register", &counts.register),
        ("modify", &counts.modify),
        ("deregister", &counts.deregister),
        ("wait", &counts.wait),
        ("events", &counts.events),
        ("notify", &counts.notify),
    ] {
        assert!(counter.load(Ordering::Relaxed) > 0, "no {what} counted");
    }
}

#[test]
fn counting_poller_wraps_any_backend() {
    testing::run_all(|| Ok(CountingPoller::new(Select::new()?)));
}

// A backend defined outside the crate: it sees only the public API, as a user's would.

/// Calls per method, indexed by [`Method`].
#[derive(Debug, Default)]
struct Tally([AtomicUsize; 5]);

#[derive(Copy, Clone, Debug)]
enum Method {
    Register,
    Modify,
    Deregister,
    Wait,
    Notify,
}

impl Tally {
    fn add(&self, method: Method) {
        self.0[method as usize].fetch_add(1, Ordering::Relaxed);
    }

    fn get(&self, method: Method) -> usize {
        self.0[method as usize].load(Ordering::Relaxed)
    }
}

/// Wraps the default backend and tallies the calls (each one or more syscalls) made through it.
#[derive(Debug)]
struct TallyingPoller {
    inner: Box<dyn Poller>,
    tally: Arc<Tally>,
}

/// Its own wake-up handle, tallying and forwarding to the inner backend's.
#[derive(Debug)]
struct TallyingNotify {
    inner: Notifier,
    tally: Arc<Tally>,
}

impl Notify for TallyingNotify {
    fn notify(&self) -> io::Result<()> {
        self.tally.add(Method::Notify);
        self.inner.notify()
    }
}

impl Poller for TallyingPoller {
    fn register(&mut self, fd: BorrowedFd<'_>, token: Token, interest: Interest) -> io::Result<()> {
        self.tally.add(Method::Register);
        self.inner.register(fd, token, interest)
    }

    fn modify(&mut self, fd: BorrowedFd<'_>, token: Token, interest: Interest) -> io::Result<()> {
        self.tally.add(Method::Modify);
        self.inner.modify(fd, token, interest)
    }

    fn deregister(&mut self, fd: BorrowedFd<'_>) -> io::Result<()> {
        self.tally.add(Method::Deregister);
        self.inner.deregister(fd)
    }

    fn wait(&mut self, events: &mut Events, timeout: Option<Duration>) -> io::Result<()> {
        self.tally.add(Method::Wait);
        self.inner.wait(events, timeout)
    }

    fn notifier(&self) -> Notifier {
        Notifier::new(Arc::new(TallyingNotify { inner: self.inner.notifier(), tally: self.tally.clone() }))
    }

    fn name(&self) -> &'static str {
        "tallying"
    }
}

#[test]
fn a_backend_written_outside_the_crate_passes_the_suite() {
    let tally = Arc::new(Tally::default());
    testing::run_all(|| Ok(TallyingPoller { inner: gale_poller::default_poller()?, tally: tally.clone() }));
    for method in [Method::Register, Method::Modify, Method::Deregister, Method::Wait, Method::Notify] {
        assert!(tally.get(method) > 0, "no {method:?} calls tallied");
    }
}

#[test]
fn every_check_is_listed_once() {
    let mut names: Vec<_> = testing::CHECKS.iter().map(|c| c.name).collect();
    let count = names.len();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), count);
    assert!(!names.contains(&"hangup_is_flagged"), "select cannot pass it");
}
