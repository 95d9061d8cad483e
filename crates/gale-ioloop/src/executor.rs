//! The single-threaded executor: tasks that need not be `Send`, woken by `Send + Sync` wakers.
//!
//! A task is a boxed future in a slab owned by the loop. Its waker is one `Arc` allocated at spawn and reused
//! for every poll; waking pushes the task's id onto the loop's ready queue (a mutex that is uncontended unless
//! another thread wakes) and, only when called from another thread, writes the poller's wake-up fd. An atomic
//! `scheduled` flag collapses repeated wakes into one poll.
//!
//! The executor knows nothing of I/O: it meets the reactor only at [`std::task::Waker`].

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

/// The slab key and generation of a task; the generation rejects stale wakes of a reused slot.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) struct TaskId {
    pub(crate) key: usize,
    pub(crate) generation: u64,
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

/// A spawned task: its future and its waker.
pub(crate) struct Task {
    pub(crate) future: Pin<Box<dyn Future<Output = ()>>>,
    pub(crate) waker: Arc<TaskWaker>,
    pub(crate) name: &'static str,
}

/// Polls a task's future, catching a panic. Returns `Ready` when the task is over either way.
pub(crate) fn poll_task(future: &mut Pin<Box<dyn Future<Output = ()>>>, waker: &Waker) -> Poll<()> {
    let mut cx = Context::from_waker(waker);
    match std::panic::catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(&mut cx))) {
        Ok(p) => p,
        Err(_) => Poll::Ready(()), // Reported by the task's own wrapper (see `Spawned`).
    }
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
    cancel: Option<Box<dyn FnOnce()>>,
    finished: bool,
}

impl<T> JoinState<T> {
    fn complete(&mut self, result: Result<T, JoinError>) {
        if self.finished {
            return;
        }
        self.finished = true;
        self.result = Some(result);
        self.cancel = None;
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
        let cancel = self.state.borrow_mut().cancel.take();
        if let Some(cancel) = cancel {
            cancel();
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

/// The future a task runs: the user's future, whose output or panic goes to the join state.
pub(crate) struct Spawned<F: Future> {
    future: Pin<Box<F>>,
    state: Rc<RefCell<JoinState<F::Output>>>,
    name: &'static str,
}

impl<F: Future> Future for Spawned<F> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        match std::panic::catch_unwind(AssertUnwindSafe(|| this.future.as_mut().poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(out)) => {
                this.state.borrow_mut().complete(Ok(out));
                Poll::Ready(())
            }
            Err(payload) => {
                let msg = crate::panic_message(&*payload);
                log::error!("task {} panicked: {msg}", this.name);
                this.state.borrow_mut().complete(Err(JoinError::Panicked(msg)));
                Poll::Ready(())
            }
        }
    }
}

impl<F: Future> Drop for Spawned<F> {
    fn drop(&mut self) {
        // Dropped without completing (cancelled, or the loop closed): tell the handle.
        if let Ok(mut s) = self.state.try_borrow_mut() {
            s.complete(Err(JoinError::Cancelled));
        }
    }
}

/// Wraps `future` for spawning; returns the task future and its handle.
pub(crate) fn wrap<F: Future + 'static>(future: F) -> (Spawned<F>, JoinHandle<F::Output>) {
    let state = Rc::new(RefCell::new(JoinState { result: None, waker: None, cancel: None, finished: false }));
    let spawned = Spawned { future: Box::pin(future), state: state.clone(), name: std::any::type_name::<F>() };
    (spawned, JoinHandle { state })
}

/// Installs the cancel hook of a handle once the task's id is known.
pub(crate) fn set_cancel<T>(handle: &JoinHandle<T>, cancel: Box<dyn FnOnce()>) {
    handle.state.borrow_mut().cancel = Some(cancel);
}
