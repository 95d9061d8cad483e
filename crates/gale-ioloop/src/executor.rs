//! The single-threaded executor: tasks that need not be `Send`, woken by `Send + Sync` wakers.
//!
//! A task is a boxed future, behind an `Rc`, in a slab owned by the loop. Its waker is one `Arc` allocated at
//! spawn and reused for every poll; waking pushes the task's id onto the loop's ready queue (a thread-local
//! queue when woken on the loop's thread, else a mutex, and then the poller's wake-up fd is written too). An
//! atomic `scheduled` flag collapses repeated wakes into one poll.
//!
//! The executor knows nothing of I/O: the reactor reaches a task through its [`std::task::Waker`], or, for a
//! waker it has recognised as the own waker of a task of its loop, through [`TaskWaker::schedule_on_loop`].

use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};

use crate::remote::Remote;

/// The slab key and generation of a task, in one word; the generation rejects stale wakes of a reused slot.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) struct TaskId(std::num::NonZeroU64);

impl TaskId {
    /// # Panics
    ///
    /// If `key` does not fit in 32 bits (four billion live tasks) or `generation` is 0 or does not fit either.
    pub(crate) fn new(key: usize, generation: u64) -> TaskId {
        let key = u32::try_from(key).expect("too many tasks");
        assert!(generation != 0 && generation <= u32::MAX as u64, "task generation out of range");
        TaskId(std::num::NonZeroU64::new(generation << 32 | key as u64).expect("generation is not 0"))
    }

    /// The task's slab key.
    pub(crate) fn key(self) -> usize {
        (self.0.get() & 0xffff_ffff) as usize
    }
}

/// The waker of one task.
pub(crate) struct TaskWaker {
    pub(crate) id: TaskId,
    scheduled: AtomicBool,
    remote: Arc<Remote>,
}

impl TaskWaker {
    pub(crate) fn new(id: TaskId, remote: Arc<Remote>) -> Arc<TaskWaker> {
        // A new task is scheduled for its first poll by `spawn`, so it starts out "scheduled".
        Arc::new(TaskWaker { id, scheduled: AtomicBool::new(true), remote })
    }

    /// Marks the task scheduled, as a wake does, for its own loop to queue it: `true` if it was not yet, and
    /// the caller must queue it.
    #[inline]
    pub(crate) fn schedule_on_loop(&self) -> bool {
        !self.scheduled.swap(true, Ordering::AcqRel)
    }

    /// Called right before polling: wakes from now on schedule the task again.
    pub(crate) fn unschedule(&self) {
        self.scheduled.store(false, Ordering::Release);
    }
}

impl Wake for TaskWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if !self.scheduled.swap(true, Ordering::AcqRel) {
            self.remote.schedule_task(self.id);
        }
    }
}

/// The boxed future of a task.
pub(crate) type TaskFuture = Pin<Box<dyn Future<Output = ()>>>;

/// A spawned task: its future, its waker, and where its failure is reported.
///
/// The loop's task table holds each task behind an `Rc`, and a poll holds a second one: the future is then
/// polled where it lies, with the table free for the task to spawn or cancel others (or itself: the future of
/// a task cancelled while it runs is dropped when the poll returns, with the last `Rc`).
pub(crate) struct Task {
    pub(crate) id: TaskId,
    /// Borrowed while the task is being polled.
    pub(crate) future: RefCell<TaskFuture>,
    /// The waker every poll passes, made once at spawn.
    pub(crate) waker: Waker,
    /// The state behind the waker, to unschedule the task before each poll.
    pub(crate) wake_state: Arc<TaskWaker>,
    pub(crate) name: &'static str,
    /// Where the output goes, for a task spawned with a [`JoinHandle`]; `None` for a detached one.
    pub(crate) join: Option<Rc<dyn JoinSink>>,
}

impl Task {
    pub(crate) fn new(
        future: TaskFuture,
        wake_state: Arc<TaskWaker>,
        name: &'static str,
        join: Option<Rc<dyn JoinSink>>,
    ) -> Task {
        let waker = Waker::from(wake_state.clone());
        Task { id: wake_state.id, future: RefCell::new(future), waker, wake_state, name, join }
    }
}

impl Drop for Task {
    fn drop(&mut self) {
        // Dropped before completing (cancelled, or its loop closed): the handle yields `Cancelled`. After a
        // completion this does nothing.
        if let Some(join) = &self.join {
            join.fail(JoinError::Cancelled);
        }
    }
}

/// The type-erased side of a join state: how the executor reports a task that did not complete.
pub(crate) trait JoinSink {
    fn fail(&self, error: JoinError);
}

impl<T> JoinSink for RefCell<JoinState<T>> {
    fn fail(&self, error: JoinError) {
        if let Ok(mut s) = self.try_borrow_mut() {
            s.complete(Err(error));
        }
    }
}

/// Polls a task's future, catching a panic: `Ready` when the task is over either way.
#[inline(always)]
pub(crate) fn poll_task(
    task_future: &mut Pin<Box<dyn Future<Output = ()>>>,
    waker: &Waker,
) -> Result<Poll<()>, String> {
    let mut cx = Context::from_waker(waker);
    std::panic::catch_unwind(AssertUnwindSafe(|| task_future.as_mut().poll(&mut cx)))
        .map_err(|payload| crate::panic_message(&*payload))
}

/// Why a task produced no output.
#[derive(Debug)]
pub enum JoinError {
    /// The task panicked; the message is the panic payload when it was a string.
    Panicked(String),
    /// The task was cancelled with [`JoinHandle::cancel`] or dropped when its loop closed.
    Cancelled,
}

impl fmt::Display for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JoinError::Panicked(msg) => write!(f, "task panicked: {msg}"),
            JoinError::Cancelled => f.write_str("task was cancelled"),
        }
    }
}

impl std::error::Error for JoinError {}

/// Shared between a task's wrapper and its [`JoinHandle`].
pub(crate) struct JoinState<T> {
    result: Option<Result<T, JoinError>>,
    waker: Option<Waker>,
    finished: bool,
}

impl<T> JoinState<T> {
    fn complete(&mut self, result: Result<T, JoinError>) {
        if self.finished {
            return;
        }
        self.finished = true;
        self.result = Some(result);
        if let Some(w) = self.waker.take() {
            w.wake();
        }
    }
}

/// Awaits the output of a spawned task: `Ok(output)`, or the [`JoinError`] if it panicked or was cancelled.
///
/// Dropping the handle detaches the task; it keeps running.
pub struct JoinHandle<T> {
    state: Rc<RefCell<JoinState<T>>>,
    /// The loop and the task, for `cancel`; `None` if the task never started (its loop was closed).
    task: Option<(std::rc::Weak<crate::ioloop::Inner>, TaskId)>,
}

impl<T> fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinHandle").field("finished", &self.is_finished()).finish()
    }
}

impl<T> JoinHandle<T> {
    /// Whether the task is over (completed, panicked or cancelled).
    pub fn is_finished(&self) -> bool {
        self.state.borrow().finished
    }

    /// Cancels the task: its future is dropped at once (its destructors run) and this handle yields
    /// [`JoinError::Cancelled`]. Does nothing if the task is over.
    pub fn cancel(&self) {
        if let Some((inner, id)) = &self.task {
            if let Some(inner) = inner.upgrade() {
                crate::ioloop::cancel_task(&inner, *id);
            }
        }
        self.state.borrow_mut().complete(Err(JoinError::Cancelled));
    }
}

impl<T> Future for JoinHandle<T> {
    type Output = Result<T, JoinError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut s = self.state.borrow_mut();
        match s.result.take() {
            Some(r) => Poll::Ready(r),
            None if s.finished => Poll::Ready(Err(JoinError::Cancelled)),
            None => {
                match &s.waker {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    _ => s.waker = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
        }
    }
}

/// Wraps `future` for spawning: one allocation holds the user's future and the code that hands its output
/// to the join state.
pub(crate) type Wrapped = (Pin<Box<dyn Future<Output = ()>>>, Rc<dyn JoinSink>);

pub(crate) fn wrap<F: Future + 'static>(future: F) -> (Wrapped, JoinHandle<F::Output>) {
    let state = Rc::new(RefCell::new(JoinState { result: None, waker: None, finished: false }));
    let task = Box::pin(Join { future, state: state.clone() });
    ((task, state.clone()), JoinHandle { state, task: None })
}

pin_project_lite::pin_project! {
    /// A spawned future and the join state its output goes to. A hand-written future rather than an `async`
    /// block: an `async` block awaiting a captured future stores it twice (the capture and the awaited copy),
    /// which doubled the memory of every task.
    struct Join<F: Future> {
        #[pin]
        future: F,
        state: Rc<RefCell<JoinState<F::Output>>>,
    }
}

impl<F: Future> Future for Join<F> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.project();
        match this.future.poll(cx) {
            Poll::Ready(out) => {
                this.state.borrow_mut().complete(Ok(out));
                Poll::Ready(())
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

/// Tells a handle which task it joins, once the task has an id.
pub(crate) fn set_task<T>(handle: &mut JoinHandle<T>, inner: std::rc::Weak<crate::ioloop::Inner>, id: TaskId) {
    handle.task = Some((inner, id));
}
