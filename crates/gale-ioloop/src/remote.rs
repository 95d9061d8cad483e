//! The part of a loop other threads may touch: queued callbacks, woken tasks, the stop flag, the notifier.
//!
//! As in Tornado's `add_callback`, the poller's wake-up fd is written only when the caller is off the loop's
//! thread (or the loop is blocked in `wait`): a callback added by loop code is seen before the next wait anyway.

use crate::executor::TaskId;
use gale_poller::Notifier;
use std::fmt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// A callback sent from another thread.
pub(crate) type RemoteCallback = Box<dyn FnOnce() + Send>;

static NEXT_LOOP_ID: AtomicUsize = AtomicUsize::new(1);

thread_local! {
    /// The id of the loop running on this thread, 0 when none.
    pub(crate) static RUNNING_LOOP: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    /// The time the running loop last read the clock (after its last wait), for [`now`](crate::now).
    pub(crate) static LOOP_NOW: std::cell::Cell<Option<std::time::Instant>> = const { std::cell::Cell::new(None) };
    /// Tasks woken on the thread of the loop that is running there: no lock needed.
    pub(crate) static LOCAL_READY: std::cell::RefCell<Vec<TaskId>> = const { std::cell::RefCell::new(Vec::new()) };
    /// Set whenever a task is pushed onto [`LOCAL_READY`], cleared when the queue is taken: a flag that needs no
    /// destructor, so that the loop learns from one load whether the queue has anything for it.
    pub(crate) static LOCAL_WOKEN: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

pub(crate) struct Remote {
    pub(crate) id: usize,
    pub(crate) callbacks: Mutex<Vec<RemoteCallback>>,
    pub(crate) ready: Mutex<Vec<TaskId>>,
    /// Set when callbacks or ready tasks were queued; lets the loop skip taking the mutexes when idle.
    pub(crate) pending: AtomicBool,
    pub(crate) stop_requested: AtomicBool,
    pub(crate) closed: AtomicBool,
    notifier: Notifier,
}

impl fmt::Debug for Remote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Remote").field("id", &self.id).field("closed", &self.closed.load(Ordering::Relaxed)).finish()
    }
}

impl Remote {
    pub(crate) fn new(notifier: Notifier) -> Remote {
        Remote {
            id: NEXT_LOOP_ID.fetch_add(1, Ordering::Relaxed),
            callbacks: Mutex::new(Vec::new()),
            ready: Mutex::new(Vec::new()),
            pending: AtomicBool::new(false),
            stop_requested: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            notifier,
        }
    }

    fn on_loop_thread(&self) -> bool {
        RUNNING_LOOP.with(|c| c.get()) == self.id
    }

    /// Wakes the loop unless the caller is the loop itself.
    pub(crate) fn wake(&self) {
        if !self.on_loop_thread() {
            if let Err(e) = self.notifier.notify() {
                log::error!("cannot wake the IOLoop: {e}");
            }
        }
    }

    pub(crate) fn add_callback(&self, cb: RemoteCallback) -> bool {
        if self.closed.load(Ordering::Acquire) {
            return false;
        }
        lock(&self.callbacks).push(cb);
        self.pending.store(true, Ordering::Release);
        self.wake();
        true
    }

    #[inline]
    pub(crate) fn schedule_task(&self, id: TaskId) {
        if self.on_loop_thread() {
            LOCAL_READY.with(|q| q.borrow_mut().push(id));
            LOCAL_WOKEN.with(|w| w.set(true));
        } else {
            self.schedule_task_remote(id);
        }
    }

    /// [`schedule_task`](Remote::schedule_task) from off the loop's thread: through the mutex and the notifier.
    #[cold]
    #[inline(never)]
    fn schedule_task_remote(&self, id: TaskId) {
        if self.closed.load(Ordering::Acquire) {
            return;
        }
        lock(&self.ready).push(id);
        self.pending.store(true, Ordering::Release);
        self.wake();
    }

    pub(crate) fn request_stop(&self) {
        self.stop_requested.store(true, Ordering::Release);
        self.wake();
    }
}

/// Locks a mutex, ignoring poisoning: no user code runs while these are held.
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
