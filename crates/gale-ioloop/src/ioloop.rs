//! [`IOLoop`] itself: the handler table, the callback queue, the timers and the iteration that drives them.

use crate::executor::{self, JoinError, JoinHandle, JoinSink, Task, TaskId, TaskWaker};
use crate::remote::{self, LOCAL_READY, LOCAL_WOKEN, LOOP_NOW, RUNNING_LOOP, Remote};
use crate::timer::{TimeoutHandle, Timers};
use gale_poller::{Event, Events, FdMap, Interest, Poller, Token};
use slab::Slab;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::io;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::panic::AssertUnwindSafe;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

/// The longest a single poll waits, so that a missed wake-up can never hang the loop forever.
const MAX_POLL_TIMEOUT: Duration = Duration::from_secs(3600);
/// How many events one wait collects.
const EVENTS_CAPACITY: usize = 1024;
/// A timer further than this from the start of an iteration is waited for with the clock read at that start
/// (stopping this much short of it, then reading the clock afresh on the way in); a nearer one reads the clock
/// again before the wait. So the common iteration reads the clock once, and a timer still fires late only if
/// the iteration before its wait ran longer than half this (see [`WaitPlan`]).
const CLOCK_REUSE_MARGIN: Duration = Duration::from_millis(100);

/// A wait timeout for a far timer (or for no timer at all), worked out once and reused by the iterations that
/// start within `CLOCK_REUSE_MARGIN / 2` of it while the timers stay as they were, so that they neither look at
/// the timers nor do clock arithmetic. A plan that holds for no iteration (see [`WaitPlan::void`]) stands for
/// none, so that the test of the usual iteration is two compares, with no `Option` to look through.
#[derive(Clone, Copy)]
struct WaitPlan {
    /// The `timers_version` the plan was made for; a timer scheduled or removed since voids it.
    version: u64,
    /// Iterations starting before this may wait `timeout`: they wake at least `CLOCK_REUSE_MARGIN / 2` short
    /// of the earliest deadline, and none is due when they start.
    valid_until: Instant,
    timeout: Duration,
}

impl WaitPlan {
    /// A plan no iteration starting at or after `now` may use: the clock never goes back.
    fn void(now: Instant) -> WaitPlan {
        WaitPlan { version: 0, valid_until: now, timeout: Duration::ZERO }
    }

    /// Whether an iteration starting at `now` may wait `timeout`, the timers being at `version`.
    #[inline]
    fn holds(&self, version: u64, now: Instant) -> bool {
        self.version == version && now < self.valid_until
    }
}

/// The tasks an iteration polls, in order: those a dispatch woke straight from readiness, then those woken
/// otherwise. The first has a slot of its own, because an iteration usually has a single task to poll (the one
/// whose connection became ready): filling the slot is one store, where a push onto the list checks its
/// capacity and updates its length, and polling it needs no walk of the list.
#[derive(Default)]
struct ReadyTasks {
    /// The first task to poll; `None` only while `rest` is empty too, until the woken tasks are appended.
    first: Option<TaskId>,
    rest: Vec<TaskId>,
}

impl ReadyTasks {
    #[inline]
    fn push(&mut self, id: TaskId) {
        if self.first.is_none() {
            self.first = Some(id);
        } else {
            self.rest.push(id);
        }
    }
}

type Callback = Box<dyn FnOnce()>;
type HandlerFn = Box<dyn FnMut(RawFd, Event)>;

/// A callback with the name it is reported under by the blocked-loop detector.
struct Named<T> {
    f: T,
    name: &'static str,
}

/// What a registered fd drives.
enum Entry {
    /// A Tornado-style handler callback; `None` while it is running.
    Handler { fd: RawFd, interest: Interest, callback: Option<HandlerFn>, name: &'static str, generation: u64 },
    /// Readiness state for futures ([`Source`](crate::Source)).
    Source(SourceState),
}

/// The readiness state of a [`Source`](crate::Source): wakers waiting per direction and events not yet consumed.
pub(crate) struct SourceState {
    pub(crate) fd: Rc<dyn AsFd>,
    pub(crate) interest: Interest,
    pub(crate) ready: Interest,
    pub(crate) hangup: bool,
    /// The last waker polled per direction. It is kept after a wake-up, so that a task waiting again (the
    /// usual case) costs a `will_wake` compare rather than a clone and a drop; `waiting` says who waits now.
    pub(crate) read_waker: Option<Waker>,
    pub(crate) write_waker: Option<Waker>,
    /// When the waker of a direction is the own waker of a task of this loop (the usual case: a task awaiting
    /// its stream directly), that task's wake state, so that a readiness event wakes it without a dynamic
    /// call.
    pub(crate) read_task: Option<Arc<TaskWaker>>,
    pub(crate) write_task: Option<Arc<TaskWaker>>,
    /// The directions whose waker waits for readiness and has not been woken since.
    pub(crate) waiting: Interest,
    pub(crate) generation: u64,
    /// Whether the poller knows the fd. A source is handed to the poller only when somebody first waits on
    /// it, with the interest of that wait: a connection whose reads and writes never block (a short request
    /// already there when it is accepted, a response that fits the socket buffer) costs no poller call.
    pub(crate) registered: bool,
}

/// An fd handler's token packs the slab key with a generation, so an event for a removed handler is never
/// delivered to a newer handler that reused its slot within the same iteration.
fn token(key: usize, generation: u64) -> Token {
    Token((generation as usize) << 32 | key)
}

fn untoken(t: Token) -> (usize, u64) {
    (t.0 & 0xffff_ffff, (t.0 >> 32) as u64)
}

/// The poller of a loop. Linux's default backend is held by value, so that the wait of every iteration is a
/// direct call the compiler can inline, rather than a call through the trait object; any other backend (one
/// named by `GALE_POLLER`, or given to [`IOLoop::with_poller`]) goes through the trait object. Everything but
/// the wait goes through `dyn Poller` either way (see the `Deref` impls).
enum LoopPoller {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    Epoll(gale_poller::Epoll),
    Dyn(Box<dyn Poller>),
}

/// The event buffer of a running loop, of its poller's kind: epoll's records are decoded as the dispatch
/// reaches them (see [`gale_poller::EpollEvents`]), other backends fill [`Events`].
enum LoopEvents {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    Epoll(gale_poller::EpollEvents),
    Dyn(Events),
}

impl LoopPoller {
    /// A buffer for [`wait`](LoopPoller::wait) on this poller.
    fn events(&self, capacity: usize) -> LoopEvents {
        match self {
            #[cfg(any(target_os = "linux", target_os = "android"))]
            LoopPoller::Epoll(p) => LoopEvents::Epoll(p.events(capacity)),
            LoopPoller::Dyn(_) => LoopEvents::Dyn(Events::with_capacity(capacity)),
        }
    }

    /// Waits into `events`, which [`events`](LoopPoller::events) made for this poller.
    #[inline(always)]
    fn wait(&mut self, events: &mut LoopEvents, timeout: Option<Duration>) -> io::Result<()> {
        match (self, events) {
            #[cfg(any(target_os = "linux", target_os = "android"))]
            (LoopPoller::Epoll(p), LoopEvents::Epoll(e)) => p.wait_into(e, timeout),
            (LoopPoller::Dyn(p), LoopEvents::Dyn(e)) => p.wait(e, timeout),
            #[cfg(any(target_os = "linux", target_os = "android"))]
            _ => unreachable!("a loop's event buffer is made by its own poller"),
        }
    }
}

impl std::ops::Deref for LoopPoller {
    type Target = dyn Poller;

    fn deref(&self) -> &(dyn Poller + 'static) {
        match self {
            #[cfg(any(target_os = "linux", target_os = "android"))]
            LoopPoller::Epoll(p) => p,
            LoopPoller::Dyn(p) => &**p,
        }
    }
}

impl std::ops::DerefMut for LoopPoller {
    fn deref_mut(&mut self) -> &mut (dyn Poller + 'static) {
        match self {
            #[cfg(any(target_os = "linux", target_os = "android"))]
            LoopPoller::Epoll(p) => p,
            LoopPoller::Dyn(p) => &mut **p,
        }
    }
}

pub(crate) struct Inner {
    poller: RefCell<LoopPoller>,
    entries: RefCell<Slab<Entry>>,
    /// The slab key of each registered fd (keys fit in 32 bits: tokens carry them so, see `token`).
    by_fd: RefCell<FdMap>,
    next_generation: Cell<u64>,
    callbacks: RefCell<VecDeque<Named<Callback>>>,
    timers: RefCell<Timers<Named<Callback>>>,
    /// Changes whenever a timer is scheduled or removed, so that a [`WaitPlan`] can tell it still holds.
    timers_version: Cell<u64>,
    tasks: RefCell<Slab<Rc<Task>>>,
    /// The task being polled, if any.
    current_task: Cell<Option<TaskId>>,
    pub(crate) remote: Arc<Remote>,
    running: Cell<bool>,
    stopped: Cell<bool>,
    closed: Cell<bool>,
    blocking_threshold: Cell<Option<Duration>>,
}

/// A single-threaded event loop: fd handlers, callbacks, timers and async tasks, run one at a time.
///
/// `IOLoop` is a cheap, clonable handle to a loop that lives on one thread (it is neither `Send` nor `Sync`);
/// [`IOLoop::handle`] gives the `Send + Sync` handle other threads use. Each iteration runs, in this order
/// (Tornado's `PollIOLoop.start`): the callbacks and tasks that were pending when it began (ones added
/// meanwhile wait for the next iteration, so callbacks cannot starve I/O), the timers that were due when it
/// began, then one poll for I/O — with timeout zero if work is pending, else until the next timer — and the
/// ready fds' handlers, one at a time.
///
/// A panic in a callback, handler or task is caught and logged through `log`; the loop goes on.
#[derive(Clone)]
pub struct IOLoop {
    pub(crate) inner: Rc<Inner>,
}

impl fmt::Debug for IOLoop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IOLoop")
            .field("poller", &self.inner.poller.borrow().name())
            .field("handlers", &self.inner.entries.borrow().len())
            .field("callbacks", &self.inner.callbacks.borrow().len())
            .field("timers", &self.inner.timers.borrow().len())
            .field("tasks", &self.inner.tasks.borrow().len())
            .field("running", &self.inner.running.get())
            .finish()
    }
}

thread_local! {
    static CURRENT: RefCell<Option<IOLoop>> = const { RefCell::new(None) };
}

/// Restores the previous current loop when a `start` ends, however it ends.
struct CurrentGuard {
    previous: Option<IOLoop>,
    previous_running: usize,
    /// The woken-task queue of a loop this one was started inside of, and its flag, put back on exit.
    previous_local: Vec<TaskId>,
    previous_woken: bool,
    io_loop: IOLoop,
}

impl Drop for CurrentGuard {
    fn drop(&mut self) {
        // Tasks woken but not yet polled stay scheduled for the next `start`.
        let leftover =
            LOCAL_READY.with(|q| std::mem::replace(&mut *q.borrow_mut(), std::mem::take(&mut self.previous_local)));
        LOCAL_WOKEN.with(|w| w.set(self.previous_woken));
        if !leftover.is_empty() {
            let remote = &self.io_loop.inner.remote;
            remote::lock(&remote.ready).extend(leftover);
            remote.pending.store(true, std::sync::atomic::Ordering::Release);
        }
        self.io_loop.inner.running.set(false);
        self.io_loop.inner.stopped.set(false);
        RUNNING_LOOP.with(|c| c.set(self.previous_running));
        LOOP_NOW.with(|c| c.set(None));
        let previous = self.previous.take();
        CURRENT.with(|c| *c.borrow_mut() = previous);
    }
}

impl IOLoop {
    /// A new loop on the backend chosen by `GALE_POLLER`, or the platform's default.
    ///
    /// # Errors
    ///
    /// When the poller cannot be created, or `GALE_POLLER` names an unknown backend.
    pub fn new() -> io::Result<IOLoop> {
        // The backend `gale_poller::from_env` would choose here, held by value (see `LoopPoller`).
        #[cfg(any(target_os = "linux", target_os = "android"))]
        if std::env::var_os(gale_poller::ENV_VAR).is_none_or(|name| name.is_empty() || name == "epoll") {
            return Ok(IOLoop::with_loop_poller(LoopPoller::Epoll(gale_poller::Epoll::new()?)));
        }
        Ok(IOLoop::with_poller(gale_poller::from_env()?))
    }

    /// A new loop on the given poller — a built-in backend or your own.
    pub fn with_poller(poller: Box<dyn Poller>) -> IOLoop {
        IOLoop::with_loop_poller(LoopPoller::Dyn(poller))
    }

    fn with_loop_poller(poller: LoopPoller) -> IOLoop {
        let remote = Arc::new(Remote::new(poller.notifier()));
        IOLoop {
            inner: Rc::new(Inner {
                poller: RefCell::new(poller),
                entries: RefCell::new(Slab::new()),
                by_fd: RefCell::new(FdMap::new()),
                next_generation: Cell::new(1),
                callbacks: RefCell::new(VecDeque::new()),
                timers: RefCell::new(Timers::new()),
                timers_version: Cell::new(0),
                tasks: RefCell::new(Slab::new()),
                current_task: Cell::new(None),
                remote,
                running: Cell::new(false),
                stopped: Cell::new(false),
                closed: Cell::new(false),
                blocking_threshold: Cell::new(None),
            }),
        }
    }

    /// The current thread's loop: the one running (or made current) on this thread, else a new one that
    /// becomes current.
    ///
    /// # Panics
    ///
    /// If no loop is current and a new one cannot be created (for example when out of fds).
    pub fn current() -> IOLoop {
        if let Some(l) = IOLoop::try_current() {
            return l;
        }
        let l = IOLoop::new().expect("cannot create an IOLoop");
        l.make_current();
        l
    }

    /// The current thread's loop, if there is one.
    pub fn try_current() -> Option<IOLoop> {
        CURRENT.with(|c| c.borrow().clone())
    }

    /// Makes this loop the one [`IOLoop::current`] returns on this thread.
    pub fn make_current(&self) {
        CURRENT.with(|c| *c.borrow_mut() = Some(self.clone()));
    }

    /// Forgets the current loop of this thread.
    pub fn clear_current() {
        CURRENT.with(|c| *c.borrow_mut() = None);
    }

    /// The name of the poller backend (`"epoll"`, `"poll"`, …).
    pub fn poller_name(&self) -> &'static str {
        self.inner.poller.borrow().name()
    }

    /// The loop's clock: the monotonic [`Instant::now`].
    pub fn time(&self) -> Instant {
        Instant::now()
    }

    /// A `Send + Sync + Clone` handle for other threads.
    pub fn handle(&self) -> crate::LoopHandle {
        crate::LoopHandle { remote: self.inner.remote.clone() }
    }

    /// Whether two handles refer to the same loop.
    pub fn ptr_eq(&self, other: &IOLoop) -> bool {
        Rc::ptr_eq(&self.inner, &other.inner)
    }

    /// Logs (at `warn`) every callback, handler or task poll that holds the loop longer than `threshold`,
    /// naming it. `None` (the default) turns the detector off; it costs a clock read per callback when on.
    pub fn set_blocking_log_threshold(&self, threshold: Option<Duration>) {
        self.inner.blocking_threshold.set(threshold);
    }

    // ---- fd handlers -------------------------------------------------------------------------------------

    /// Calls `handler(fd, event)` whenever `fd` is ready for `interest` (level-triggered, as Tornado).
    ///
    /// The event is masked to the interest, but hang-up and error are always passed on. A handler may add,
    /// update or remove any handler, itself included.
    ///
    /// # Errors
    ///
    /// [`io::ErrorKind::AlreadyExists`] if `fd` has a handler; the poller's error otherwise.
    pub fn add_handler(
        &self,
        fd: impl AsFd,
        interest: Interest,
        handler: impl FnMut(RawFd, Event) + 'static,
    ) -> io::Result<()> {
        let fd = fd.as_fd();
        let raw = fd.as_raw_fd();
        if self.inner.by_fd.borrow().contains(raw) {
            return Err(io::Error::new(io::ErrorKind::AlreadyExists, format!("fd {raw} already has a handler")));
        }
        let generation = self.next_generation();
        let name = std::any::type_name_of_val(&handler);
        let key = self.inner.entries.borrow_mut().insert(Entry::Handler {
            fd: raw,
            interest,
            callback: Some(Box::new(handler)),
            name,
            generation,
        });
        if let Err(e) = self.inner.poller.borrow_mut().register(fd, token(key, generation), interest) {
            self.inner.entries.borrow_mut().remove(key);
            return Err(e);
        }
        self.inner.by_fd.borrow_mut().insert(raw, key as u32);
        Ok(())
    }

    /// Changes the interest of `fd`'s handler.
    ///
    /// # Errors
    ///
    /// [`io::ErrorKind::NotFound`] if `fd` has no handler.
    pub fn update_handler(&self, fd: impl AsFd, interest: Interest) -> io::Result<()> {
        let fd = fd.as_fd();
        let raw = fd.as_raw_fd();
        let key = self.key_of(raw)?;
        let mut entries = self.inner.entries.borrow_mut();
        match &mut entries[key] {
            Entry::Handler { interest: current, generation, .. } => {
                if *current != interest {
                    self.inner.poller.borrow_mut().modify(fd, token(key, *generation), interest)?;
                    *current = interest;
                }
                Ok(())
            }
            Entry::Source(_) => Err(not_a_handler(raw)),
        }
    }

    /// Stops watching `fd` and drops its handler (after it returns, if it is the one running).
    ///
    /// # Errors
    ///
    /// [`io::ErrorKind::NotFound`] if `fd` has no handler.
    pub fn remove_handler(&self, fd: impl AsFd) -> io::Result<()> {
        let fd = fd.as_fd();
        let raw = fd.as_raw_fd();
        let key = self.key_of(raw)?;
        if matches!(self.inner.entries.borrow()[key], Entry::Source(_)) {
            return Err(not_a_handler(raw));
        }
        self.inner.by_fd.borrow_mut().remove(raw);
        let entry = self.inner.entries.borrow_mut().remove(key);
        let result = self.inner.poller.borrow_mut().deregister(fd);
        drop(entry); // The handler's captures are dropped with no borrow held.
        result
    }

    fn key_of(&self, raw: RawFd) -> io::Result<usize> {
        self.inner
            .by_fd
            .borrow()
            .get(raw)
            .map(|key| key as usize)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("fd {raw} has no handler")))
    }

    fn next_generation(&self) -> u64 {
        let g = self.inner.next_generation.get();
        self.inner.next_generation.set(if g >= u32::MAX as u64 { 1 } else { g + 1 });
        g
    }

    // ---- sources (readiness for futures) ------------------------------------------------------------------

    pub(crate) fn register_source(&self, fd: Rc<dyn AsFd>) -> io::Result<usize> {
        let raw = fd.as_fd().as_raw_fd();
        if self.inner.by_fd.borrow().contains(raw) {
            return Err(io::Error::new(io::ErrorKind::AlreadyExists, format!("fd {raw} is already registered")));
        }
        let generation = self.next_generation();
        let key = self.inner.entries.borrow_mut().insert(Entry::Source(SourceState {
            fd: fd.clone(),
            interest: Interest::NONE,
            ready: Interest::NONE,
            hangup: false,
            read_waker: None,
            write_waker: None,
            read_task: None,
            write_task: None,
            waiting: Interest::NONE,
            generation,
            registered: false,
        }));
        // Not handed to the poller yet: the first poll_* call that must wait registers it with what it needs.
        self.inner.by_fd.borrow_mut().insert(raw, key as u32);
        Ok(key)
    }

    pub(crate) fn deregister_source(&self, key: usize) {
        let entry = self.inner.entries.borrow_mut().try_remove(key);
        if let Some(Entry::Source(state)) = entry {
            let fd = state.fd.as_fd();
            self.inner.by_fd.borrow_mut().remove(fd.as_raw_fd());
            if state.registered {
                if let Err(e) = self.inner.poller.borrow_mut().deregister(fd) {
                    log::debug!("deregistering fd {}: {e}", fd.as_raw_fd());
                }
            }
        }
    }

    /// Polls a source for readiness in `dir` (READABLE or WRITABLE): `Ready` consumes a readiness report,
    /// `Pending` stores the waker and makes sure the poller watches that direction.
    #[inline(always)]
    pub(crate) fn poll_source(&self, key: usize, dir: Interest, waker: &Waker) -> Poll<io::Result<()>> {
        let mut entries = self.inner.entries.borrow_mut();
        let Some(Entry::Source(s)) = entries.get_mut(key) else {
            return Poll::Ready(Err(source_closed()));
        };
        if s.ready.is_readable() && dir.is_readable() || s.ready.is_writable() && dir.is_writable() {
            s.ready = s.ready.remove(dir);
            return Poll::Ready(Ok(()));
        }
        self.park_source(key, s, dir, waker)
    }

    /// After the syscall said `WouldBlock`: marks `dir` as not ready and waits for it, as
    /// [`poll_source`](IOLoop::poll_source) would right after — with one look-up of the source for both.
    #[inline(always)]
    pub(crate) fn poll_source_after_would_block(
        &self,
        key: usize,
        dir: Interest,
        waker: &Waker,
    ) -> Poll<io::Result<()>> {
        let mut entries = self.inner.entries.borrow_mut();
        let Some(Entry::Source(s)) = entries.get_mut(key) else {
            return Poll::Ready(Err(source_closed()));
        };
        s.ready = s.ready.remove(dir);
        self.park_source(key, s, dir, waker)
    }

    /// Stores `waker` as the one waiting for `dir` of source `s`, which is not ready.
    #[inline(always)]
    fn park_source(&self, key: usize, s: &mut SourceState, dir: Interest, waker: &Waker) -> Poll<io::Result<()>> {
        let slot = if dir.is_readable() { &s.read_waker } else { &s.write_waker };
        let watched = s.interest.is_readable() && dir.is_readable() || s.interest.is_writable() && dir.is_writable();
        // The usual case: the task that waited last time waits again, on a direction already watched.
        if watched && slot.as_ref().is_some_and(|w| w.will_wake(waker)) {
            s.waiting = s.waiting.add(dir);
            return Poll::Pending;
        }
        self.wait_source(key, s, dir, waker)
    }

    /// The rare branch of [`park_source`](IOLoop::park_source), kept out of its way: a new waker to store,
    /// or a direction the poller must start watching.
    #[cold]
    #[inline(never)]
    fn wait_source(&self, key: usize, s: &mut SourceState, dir: Interest, waker: &Waker) -> Poll<io::Result<()>> {
        let (slot, task) = if dir.is_readable() {
            (&mut s.read_waker, &mut s.read_task)
        } else {
            (&mut s.write_waker, &mut s.write_task)
        };
        match slot {
            Some(w) if w.will_wake(waker) => {}
            _ => {
                *slot = Some(waker.clone());
                *task = self.own_task_waker(waker);
            }
        }
        s.waiting = s.waiting.add(dir);
        if !s.interest.is_readable() && dir.is_readable() || !s.interest.is_writable() && dir.is_writable() {
            let interest = s.interest.add(dir);
            let fd = s.fd.clone();
            let mut poller = self.inner.poller.borrow_mut();
            let result = if s.registered {
                poller.modify(fd.as_fd(), token(key, s.generation), interest)
            } else {
                poller.register(fd.as_fd(), token(key, s.generation), interest)
            };
            if let Err(e) = result {
                return Poll::Ready(Err(e));
            }
            s.registered = true;
            s.interest = interest;
        }
        Poll::Pending
    }

    /// The wake state of the task being polled, if `waker` is that task's own waker.
    fn own_task_waker(&self, waker: &Waker) -> Option<Arc<TaskWaker>> {
        let id = self.inner.current_task.get()?;
        let tasks = self.inner.tasks.borrow();
        let task = tasks.get(id.key()).filter(|t| t.id == id)?;
        task.waker.will_wake(waker).then(|| task.wake_state.clone())
    }

    // ---- callbacks and timers -----------------------------------------------------------------------------

    /// Runs `callback` on the next iteration (FIFO). Callbacks added while callbacks run wait for the next
    /// iteration. Use [`LoopHandle::add_callback`](crate::LoopHandle::add_callback) from other threads.
    pub fn add_callback(&self, callback: impl FnOnce() + 'static) {
        if self.inner.closed.get() {
            return;
        }
        let name = std::any::type_name_of_val(&callback);
        self.inner.callbacks.borrow_mut().push_back(Named { f: Box::new(callback), name });
    }

    /// As [`add_callback`](IOLoop::add_callback): Tornado's name for a callback whose result nobody awaits.
    pub fn spawn_callback(&self, callback: impl FnOnce() + 'static) {
        self.add_callback(callback);
    }

    /// Runs `callback` once `delay` has passed.
    pub fn call_later(&self, delay: Duration, callback: impl FnOnce() + 'static) -> TimeoutHandle {
        self.call_at(self.time() + delay, callback)
    }

    /// Runs `callback` at `deadline` (on the monotonic clock). Timers with equal deadlines run in the order
    /// they were scheduled.
    pub fn call_at(&self, deadline: Instant, callback: impl FnOnce() + 'static) -> TimeoutHandle {
        let name = std::any::type_name_of_val(&callback);
        self.timers_changed();
        self.inner.timers.borrow_mut().insert(deadline, Named { f: Box::new(callback), name })
    }

    /// Cancels a timer; does nothing if it already ran or was cancelled. O(log n); nothing is left behind.
    pub fn remove_timeout(&self, handle: TimeoutHandle) {
        let removed = self.inner.timers.borrow_mut().remove(handle);
        if removed.is_some() {
            self.timers_changed();
        }
        drop(removed); // Its captures drop with no borrow held.
    }

    fn timers_changed(&self) {
        self.inner.timers_version.set(self.inner.timers_version.get().wrapping_add(1));
    }

    /// The number of scheduled timers (for tests and monitoring).
    pub fn timer_count(&self) -> usize {
        self.inner.timers.borrow().len()
    }

    // ---- tasks --------------------------------------------------------------------------------------------

    /// Spawns a future on this loop. It need not be `Send`: it runs on this thread, so it may share state with
    /// handlers through `Rc<RefCell<…>>`. The returned handle is a future of the output; dropping it detaches.
    pub fn spawn<F: Future + 'static>(&self, future: F) -> JoinHandle<F::Output> {
        let ((future, join), mut handle) = executor::wrap(future);
        if self.inner.closed.get() {
            join.fail(JoinError::Cancelled);
            drop(future);
            return handle;
        }
        let id = self.insert_task(future, std::any::type_name::<F>(), Some(join));
        executor::set_task(&mut handle, Rc::downgrade(&self.inner), id);
        handle
    }

    /// Spawns a future whose end nobody awaits (Tornado's `spawn_callback` for coroutines): as
    /// [`spawn`](IOLoop::spawn) with the handle dropped at once, without the state a handle shares with its
    /// task. A panic is logged, as for every task.
    pub fn spawn_detached<F: Future<Output = ()> + 'static>(&self, future: F) {
        if self.inner.closed.get() {
            return;
        }
        self.insert_task(Box::pin(future), std::any::type_name::<F>(), None);
    }

    fn insert_task(&self, future: executor::TaskFuture, name: &'static str, join: Option<Rc<dyn JoinSink>>) -> TaskId {
        let generation = self.next_generation();
        let mut tasks = self.inner.tasks.borrow_mut();
        let entry = tasks.vacant_entry();
        let id = TaskId::new(entry.key(), generation);
        let waker = TaskWaker::new(id, self.inner.remote.clone());
        entry.insert(Rc::new(Task::new(future, waker, name, join)));
        drop(tasks);
        self.inner.remote.schedule_task(id);
        id
    }

    /// The number of live tasks.
    pub fn task_count(&self) -> usize {
        self.inner.tasks.borrow().len()
    }

    /// Runs the loop until `future` completes and returns its output. The loop is current on this thread
    /// meanwhile.
    ///
    /// # Panics
    ///
    /// If the future panics (the panic is passed on), if the loop is already running, or if polling fails
    /// with an unrecoverable error.
    pub fn run_sync<F: Future + 'static>(&self, future: F) -> F::Output
    where
        F::Output: 'static,
    {
        let out: Rc<RefCell<Option<std::thread::Result<F::Output>>>> = Rc::new(RefCell::new(None));
        let slot = out.clone();
        let this = self.clone();
        let wrapped = async move {
            let fut = std::pin::pin!(future);
            let result = CatchUnwind(fut).await;
            *slot.borrow_mut() = Some(result);
            this.stop();
        };
        self.spawn(wrapped);
        self.start().expect("IOLoop failed");
        let result = out.borrow_mut().take();
        match result {
            Some(Ok(v)) => v,
            Some(Err(payload)) => std::panic::resume_unwind(payload),
            None => panic!("IOLoop::run_sync: the loop stopped before the future completed"),
        }
    }

    // ---- running ------------------------------------------------------------------------------------------

    /// Runs the loop until [`stop`](IOLoop::stop) is called. If `stop` was called before `start`, returns at
    /// once (Tornado's semantics).
    ///
    /// # Errors
    ///
    /// If the loop is already running, closed, or the poller fails (other than `EINTR`, which is retried).
    pub fn start(&self) -> io::Result<()> {
        let inner = &self.inner;
        if inner.running.get() {
            return Err(io::Error::other("IOLoop is already running"));
        }
        if inner.closed.get() {
            return Err(io::Error::other("IOLoop is closed"));
        }
        if inner.stopped.replace(false) || inner.remote.stop_requested.swap(false, std::sync::atomic::Ordering::AcqRel)
        {
            return Ok(());
        }
        let _guard = CurrentGuard {
            previous: CURRENT.with(|c| c.borrow_mut().replace(self.clone())),
            previous_running: RUNNING_LOOP.with(|c| c.replace(inner.remote.id)),
            previous_local: LOCAL_READY.with(|q| std::mem::take(&mut *q.borrow_mut())),
            previous_woken: LOCAL_WOKEN.with(|w| w.replace(false)),
            io_loop: self.clone(),
        };
        inner.running.set(true);
        let mut events = inner.poller.borrow().events(EVENTS_CAPACITY);
        let mut due: Vec<TimeoutHandle> = Vec::new();
        let mut plan = WaitPlan::void(Instant::now());
        let mut ready = ReadyTasks::default();
        loop {
            // Read once: work queued from other threads after this is seen before the wait (`work_pending`).
            let remote_pending = inner.remote.pending.load(std::sync::atomic::Ordering::Acquire);
            if remote_pending {
                self.drain_remote_callbacks();
            }
            let ncallbacks = inner.callbacks.borrow().len();
            // Collect due timers before running anything.
            let now = Instant::now();
            LOOP_NOW.with(|c| c.set(Some(now)));
            // The blocked-loop detector, asked once per iteration; when it is on, `mark` is the clock reading
            // that starts the next timed callback.
            let timed = inner.blocking_threshold.get().is_some();
            let mut mark = if timed { Some(now) } else { None };
            // A plan that still holds says that no timer is due yet.
            let planned = plan.holds(inner.timers_version.get(), now);
            if !planned {
                inner.timers.borrow().due(now, &mut due);
            }

            if ncallbacks > 0 {
                self.run_callbacks(ncallbacks, timed, &mut mark);
            }
            self.run_ready_tasks(&mut ready, remote_pending, timed, &mut mark);
            if !due.is_empty() {
                self.run_due_timers(&mut due, timed, &mut mark);
            }

            if inner.remote.stop_requested.load(std::sync::atomic::Ordering::Relaxed)
                && inner.remote.stop_requested.swap(false, std::sync::atomic::Ordering::AcqRel)
            {
                inner.running.set(false);
            }
            if !inner.running.get() {
                break;
            }
            let work_pending = !inner.callbacks.borrow().is_empty()
                || inner.remote.pending.load(std::sync::atomic::Ordering::Acquire)
                || LOCAL_WOKEN.with(|w| w.get());
            // The plan is asked again: a callback or task may have changed the timers since.
            let timeout = if work_pending {
                Duration::ZERO
            } else if planned && plan.version == inner.timers_version.get() {
                plan.timeout
            } else {
                self.poll_timeout(now, &mut plan)
            };
            let result = inner.poller.borrow_mut().wait(&mut events, Some(timeout));
            match result {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            match &events {
                #[cfg(any(target_os = "linux", target_os = "android"))]
                LoopEvents::Epoll(e) => {
                    if !e.is_empty() {
                        self.dispatch(e.iter(), timed, &mut ready);
                    }
                }
                LoopEvents::Dyn(e) => {
                    if !e.is_empty() {
                        self.dispatch(e.iter().copied(), timed, &mut ready);
                    }
                }
            }
        }
        Ok(())
    }

    /// Stops the loop after the current iteration. Calling it before [`start`](IOLoop::start) makes the next
    /// `start` return at once. Use [`LoopHandle::stop`](crate::LoopHandle::stop) from other threads.
    pub fn stop(&self) {
        if self.inner.running.get() {
            self.inner.running.set(false);
        } else {
            self.inner.stopped.set(true);
        }
    }

    /// Whether the loop is running.
    pub fn is_running(&self) -> bool {
        self.inner.running.get()
    }

    /// Closes the loop: drops every handler (deregistering its fd), callback, timer and task. Callbacks sent
    /// from other threads afterwards are dropped. A closed loop cannot start again.
    pub fn close(&self) {
        let inner = &self.inner;
        inner.closed.set(true);
        inner.remote.closed.store(true, std::sync::atomic::Ordering::Release);
        let entries = std::mem::take(&mut *inner.entries.borrow_mut());
        inner.by_fd.borrow_mut().clear();
        for (_, entry) in entries {
            if let Entry::Source(s) = &entry {
                if s.registered {
                    let _ = inner.poller.borrow_mut().deregister(s.fd.as_fd());
                }
            }
            // A handler's fd belongs to its owner, who closes it; the handler's captures drop here.
            drop(entry);
        }
        let callbacks = std::mem::take(&mut *inner.callbacks.borrow_mut());
        drop(callbacks);
        self.timers_changed();
        let timers = inner.timers.borrow_mut().clear();
        drop(timers);
        let tasks = std::mem::take(&mut *inner.tasks.borrow_mut());
        drop(tasks);
        let remote_cbs = std::mem::take(&mut *remote::lock(&inner.remote.callbacks));
        drop(remote_cbs);
    }

    /// Whether [`close`](IOLoop::close) was called.
    pub fn is_closed(&self) -> bool {
        self.inner.closed.get()
    }

    /// How long the wait may block: until the next timer (or [`MAX_POLL_TIMEOUT`]), reusing the clock reading
    /// `now` of the iteration's start for far timers (see [`CLOCK_REUSE_MARGIN`]), in which case the result is
    /// kept as the `plan` of the iterations that follow.
    #[cold]
    #[inline(never)]
    fn poll_timeout(&self, now: Instant, plan: &mut WaitPlan) -> Duration {
        let version = self.inner.timers_version.get();
        let valid_until = now + CLOCK_REUSE_MARGIN / 2;
        let Some(deadline) = self.inner.timers.borrow_mut().earliest() else {
            *plan = WaitPlan { version, valid_until, timeout: MAX_POLL_TIMEOUT };
            return MAX_POLL_TIMEOUT;
        };
        let from_start = deadline.saturating_duration_since(now);
        if from_start > CLOCK_REUSE_MARGIN {
            let timeout = (from_start - CLOCK_REUSE_MARGIN).min(MAX_POLL_TIMEOUT);
            *plan = WaitPlan { version, valid_until, timeout };
            timeout
        } else {
            *plan = WaitPlan::void(now);
            deadline.saturating_duration_since(Instant::now())
        }
    }

    fn drain_remote_callbacks(&self) {
        let inner = &self.inner;
        if !inner.remote.pending.load(std::sync::atomic::Ordering::Acquire) {
            return;
        }
        let cbs = std::mem::take(&mut *remote::lock(&inner.remote.callbacks));
        if !cbs.is_empty() {
            let mut q = inner.callbacks.borrow_mut();
            for cb in cbs {
                q.push_back(Named { f: Box::new(cb), name: "remote callback" });
            }
        }
    }

    /// Runs the first `n` queued callbacks (those queued before the iteration began).
    fn run_callbacks(&self, n: usize, timed: bool, mark: &mut Option<Instant>) {
        for _ in 0..n {
            let cb = self.inner.callbacks.borrow_mut().pop_front();
            match cb {
                Some(cb) => self.run_guarded(cb.name, cb.f, timed, mark),
                None => break,
            }
        }
    }

    /// Runs the timers collected in `due`, leaving it empty.
    fn run_due_timers(&self, due: &mut Vec<TimeoutHandle>, timed: bool, mark: &mut Option<Instant>) {
        for handle in due.drain(..) {
            // A due timer cancelled by an earlier callback is gone from the map and does not run.
            let cb = self.inner.timers.borrow_mut().remove(handle);
            if let Some(cb) = cb {
                self.timers_changed();
                self.run_guarded(cb.name, cb.f, timed, mark);
            }
        }
    }

    /// Polls the woken tasks; `ready` holds those the last dispatch woke, and is left empty. `remote_pending` is
    /// the iteration's reading of the flag that says tasks may have been woken from other threads.
    #[inline]
    fn run_ready_tasks(&self, ready: &mut ReadyTasks, remote_pending: bool, timed: bool, mark: &mut Option<Instant>) {
        // The tasks the last dispatch woke straight from readiness come first; those woken otherwise on this
        // thread follow, then those woken from others. Tasks woken while these run wait for the next iteration.
        if LOCAL_WOKEN.with(|w| w.replace(false)) {
            LOCAL_READY.with(|q| ready.rest.append(&mut q.borrow_mut()));
        }
        if remote_pending {
            self.take_remote_ready(&mut ready.rest);
        }
        if let Some(id) = ready.first.take() {
            self.poll_task(id, timed, mark);
        }
        if !ready.rest.is_empty() {
            self.poll_rest(&mut ready.rest, timed, mark);
        }
    }

    /// Polls the tasks of `rest`, leaving it empty: those after the first of an iteration.
    #[inline(never)]
    fn poll_rest(&self, rest: &mut Vec<TaskId>, timed: bool, mark: &mut Option<Instant>) {
        // Iterated, then cleared, rather than drained: the buffer is the loop's own, out of reach of the tasks.
        for &id in rest.iter() {
            self.poll_task(id, timed, mark);
        }
        rest.clear();
    }

    /// Appends the tasks woken from other threads to `ready`.
    #[cold]
    #[inline(never)]
    fn take_remote_ready(&self, ready: &mut Vec<TaskId>) {
        let remote = &self.inner.remote;
        if remote.pending.swap(false, std::sync::atomic::Ordering::AcqRel) {
            ready.append(&mut remote::lock(&remote.ready));
            // Remote callbacks that arrived after the drain keep the flag up for the next iteration.
            if !remote::lock(&remote.callbacks).is_empty() {
                remote.pending.store(true, std::sync::atomic::Ordering::Release);
            }
        }
    }

    // Always inline: the first task of an iteration is polled in the body of the loop.
    #[inline(always)]
    fn poll_task(&self, id: TaskId, timed: bool, mark: &mut Option<Instant>) {
        // A second handle to the task, so that the task table is not borrowed while it runs.
        let task = {
            let tasks = self.inner.tasks.borrow();
            match tasks.get(id.key()) {
                Some(task) if task.id == id => task.clone(),
                _ => return,
            }
        };
        let Ok(mut future) = task.future.try_borrow_mut() else { return };
        task.wake_state.unschedule();
        let start = if timed { self.blocking_start(mark) } else { None };
        self.inner.current_task.set(Some(id));
        let result = executor::poll_task(&mut future, &task.waker);
        self.inner.current_task.set(None);
        drop(future);
        self.check_blocking(start, mark, "task", task.name);
        if !matches!(result, Ok(Poll::Pending)) {
            self.end_task(id, task.name, result.err());
        }
        // The future is dropped here if the task ended or was cancelled while it ran.
        drop(task);
    }

    /// Removes a task whose future completed or panicked (`panic` is then its message).
    #[inline(never)]
    fn end_task(&self, id: TaskId, name: &'static str, panic: Option<String>) {
        let mut tasks = self.inner.tasks.borrow_mut();
        if let Some(msg) = panic {
            log::error!("task {name} panicked: {msg}");
            if let Some(join) = tasks.get(id.key()).filter(|t| t.id == id).and_then(|t| t.join.as_ref()) {
                join.fail(JoinError::Panicked(msg));
            }
        }
        if tasks.get(id.key()).is_some_and(|t| t.id == id) {
            let task = tasks.remove(id.key());
            drop(tasks);
            drop(task);
        }
    }

    fn run_guarded(&self, name: &'static str, f: Callback, timed: bool, mark: &mut Option<Instant>) {
        let start = if timed { self.blocking_start(mark) } else { None };
        if let Err(payload) = std::panic::catch_unwind(AssertUnwindSafe(f)) {
            log::error!("callback {name} panicked: {}", crate::panic_message(&*payload));
        }
        self.check_blocking(start, mark, "callback", name);
    }

    /// When the blocked-loop detector is on, the time a callback about to run starts at: `mark`, the reading
    /// that ended the previous timed callback (or began the iteration), if there is one.
    #[inline]
    fn blocking_start(&self, mark: &mut Option<Instant>) -> Option<Instant> {
        if self.inner.blocking_threshold.get().is_none() {
            // Whatever runs now goes untimed, so the mark would not tell when the next callback starts.
            *mark = None;
            return None;
        }
        Some(mark.unwrap_or_else(Instant::now))
    }

    #[inline]
    fn check_blocking(&self, start: Option<Instant>, mark: &mut Option<Instant>, kind: &str, name: &str) {
        if let Some(start) = start {
            *mark = Some(self.report_blocking(start, kind, name));
        }
    }

    /// Reads the clock, warns if the callback that began at `start` ran too long, and returns the reading.
    #[cold]
    #[inline(never)]
    fn report_blocking(&self, start: Instant, kind: &str, name: &str) -> Instant {
        let end = Instant::now();
        if let Some(threshold) = self.inner.blocking_threshold.get() {
            let took = end.saturating_duration_since(start);
            if took > threshold {
                log::warn!("IOLoop blocked for {took:?} (threshold {threshold:?}) by {kind} {name}");
            }
        }
        end
    }

    /// Delivers the events of a wait; tasks woken straight from a source's readiness are pushed onto `ready`.
    fn dispatch(&self, events: impl Iterator<Item = Event>, timed: bool, ready: &mut ReadyTasks) {
        let inner = &self.inner;
        // The first handler after the wait reads the clock; each later one starts when the one before ended.
        let mut mark = None;
        // `events` reads the loop's own buffer: no handler can reach it, so it is read in place.
        for ev in events {
            let (key, generation) = untoken(ev.token());
            // Sources: record readiness and wake; no user code runs here.
            let mut entries = inner.entries.borrow_mut();
            let Some(entry) = entries.get_mut(key) else { continue };
            match entry {
                Entry::Source(s) => {
                    if s.generation != generation {
                        continue;
                    }
                    self.on_source_event(key, s, &ev, ready);
                }
                Entry::Handler { fd, interest, callback, name, generation: g } => {
                    if *g != generation {
                        continue;
                    }
                    let fd = *fd;
                    let name = *name;
                    let masked = Event::new(
                        ev.token(),
                        ev.is_readable() && interest.is_readable() || ev.is_hangup() || ev.is_error(),
                        ev.is_writable() && interest.is_writable() || ev.is_error(),
                        ev.is_hangup(),
                        ev.is_error(),
                    );
                    let Some(mut cb) = callback.take() else { continue };
                    drop(entries);
                    let start = if timed { self.blocking_start(&mut mark) } else { None };
                    if let Err(payload) = std::panic::catch_unwind(AssertUnwindSafe(|| cb(fd, masked))) {
                        log::error!("handler {name} for fd {fd} panicked: {}", crate::panic_message(&*payload));
                    }
                    self.check_blocking(start, &mut mark, "handler", name);
                    // Put the callback back unless the handler was removed (or replaced) meanwhile.
                    let mut entries = inner.entries.borrow_mut();
                    if let Some(Entry::Handler { callback: slot @ None, generation: g, .. }) = entries.get_mut(key) {
                        if *g == generation {
                            *slot = Some(cb);
                            continue;
                        }
                    }
                    drop(entries);
                    drop(cb);
                }
            }
        }
    }

    // Always inline: it runs for nearly every event, in the body of the dispatch loop.
    #[inline(always)]
    fn on_source_event(&self, key: usize, s: &mut SourceState, ev: &Event, queue: &mut ReadyTasks) {
        // Hang-up comes as readable and an error as both (the poller's contract). Only directions being watched
        // count: the rest was reported alongside a hang-up or an error.
        let ready = ev.readiness().remove(Interest::BOTH.remove(s.interest));
        s.ready = s.ready.add(ready);
        s.hangup |= ev.is_hangup();
        let woken = ready.remove(Interest::BOTH.remove(s.waiting));
        s.waiting = s.waiting.remove(woken);
        if woken.is_readable() {
            wake(&s.read_task, &s.read_waker, queue);
        }
        if woken.is_writable() {
            wake(&s.write_task, &s.write_waker, queue);
        }
        // Nobody waits for a ready direction: stop watching it, or level-triggered readiness would spin the loop.
        if woken != ready {
            self.unwatch_source(key, s, ready.remove(woken));
        }
    }

    #[cold]
    #[inline(never)]
    fn unwatch_source(&self, key: usize, s: &mut SourceState, unwanted: Interest) {
        let wanted = s.interest.remove(unwanted);
        let fd = s.fd.clone();
        match self.inner.poller.borrow_mut().modify(fd.as_fd(), token(key, s.generation), wanted) {
            Ok(()) => s.interest = wanted,
            Err(e) => log::error!("cannot update interest of fd {}: {e}", fd.as_fd().as_raw_fd()),
        }
    }

    /// Borrows the fd of a source, for the stream that owns it.
    pub(crate) fn with_source<R>(&self, key: usize, f: impl FnOnce(Option<&SourceState>) -> R) -> R {
        let entries = self.inner.entries.borrow();
        match entries.get(key) {
            Some(Entry::Source(s)) => f(Some(s)),
            _ => f(None),
        }
    }
}

/// Drops a task's future now (for [`JoinHandle::cancel`]), unless the task already ended.
pub(crate) fn cancel_task(inner: &Inner, id: TaskId) {
    let mut tasks = inner.tasks.borrow_mut();
    if tasks.get(id.key()).is_some_and(|t| t.id == id) {
        let task = tasks.remove(id.key());
        drop(tasks);
        drop(task); // its destructors run with no borrow held
    }
}

/// Wakes whoever waits on a source in one direction: when the waker is a task's own, by scheduling the task
/// and queueing it on `queue`, the loop's own list of tasks to poll next; else through the waker.
#[inline]
fn wake(task: &Option<Arc<TaskWaker>>, waker: &Option<Waker>, queue: &mut ReadyTasks) {
    match (task, waker) {
        (Some(t), _) => {
            if t.schedule_on_loop() {
                queue.push(t.id);
            }
        }
        (None, Some(w)) => w.wake_by_ref(),
        (None, None) => {}
    }
}

#[cold]
fn source_closed() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "source is closed")
}

fn not_a_handler(fd: RawFd) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, format!("fd {fd} is driven by a Source, not a handler"))
}

/// A future that catches a panic of the inner future.
struct CatchUnwind<F>(F);

impl<F: Future + Unpin> Future for CatchUnwind<F> {
    type Output = std::thread::Result<F::Output>;
    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<Self::Output> {
        let inner = &mut self.0;
        match std::panic::catch_unwind(AssertUnwindSafe(|| std::pin::Pin::new(inner).poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
            Err(payload) => Poll::Ready(Err(payload)),
        }
    }
}
