//! [`PeriodicCallback`]: a callback run every `period`, skipping missed runs instead of bursting to catch up.

use crate::{IOLoop, TimeoutHandle};
use std::cell::RefCell;
use std::fmt;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Schedules a callback to run every `period`, as Tornado's `PeriodicCallback`.
///
/// If a run is late (the loop was blocked, or the callback took longer than `period`), the runs that were
/// missed are skipped: the next run is at the next multiple of `period` after now, never a burst.
/// With [`jitter`](PeriodicCallback::with_jitter) `j`, each period is multiplied by a random factor in
/// `[1 - j/2, 1 + j/2]`, to spread out callbacks of many processes.
///
/// # Examples
///
/// ```
/// use gale_ioloop::{IOLoop, PeriodicCallback};
/// use std::{cell::Cell, rc::Rc, time::Duration};
///
/// let io_loop = IOLoop::new()?;
/// let ticks = Rc::new(Cell::new(0));
/// let t = ticks.clone();
/// let l = io_loop.clone();
/// let pc = PeriodicCallback::new(move || {
///     t.set(t.get() + 1);
///     if t.get() == 3 { l.stop(); }
/// }, Duration::from_millis(1));
/// pc.start_on(&io_loop);
/// io_loop.start()?;
/// pc.stop();
/// assert_eq!(ticks.get(), 3);
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct PeriodicCallback {
    state: Rc<RefCell<State>>,
}

struct State {
    callback: Rc<RefCell<dyn FnMut()>>,
    period: Duration,
    jitter: f64,
    running: bool,
    next: Option<Instant>,
    timeout: Option<TimeoutHandle>,
    io_loop: Option<IOLoop>,
    rng: u64,
}

impl fmt::Debug for PeriodicCallback {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.state.borrow();
        f.debug_struct("PeriodicCallback")
            .field("period", &s.period)
            .field("jitter", &s.jitter)
            .field("running", &s.running)
            .finish()
    }
}

impl PeriodicCallback {
    /// A periodic callback, not yet started.
    ///
    /// # Panics
    ///
    /// If `period` is zero.
    pub fn new(callback: impl FnMut() + 'static, period: Duration) -> PeriodicCallback {
        assert!(!period.is_zero(), "PeriodicCallback period must be positive");
        let seed = Instant::now().elapsed().subsec_nanos() as u64 ^ (Rc::as_ptr(&Rc::new(())) as u64);
        PeriodicCallback {
            state: Rc::new(RefCell::new(State {
                callback: Rc::new(RefCell::new(callback)),
                period,
                jitter: 0.0,
                running: false,
                next: None,
                timeout: None,
                io_loop: None,
                rng: seed | 1,
            })),
        }
    }

    /// Sets the jitter fraction (0 to 1) applied to each period.
    #[must_use]
    pub fn with_jitter(self, jitter: f64) -> PeriodicCallback {
        self.state.borrow_mut().jitter = jitter.clamp(0.0, 1.0);
        self
    }

    /// Starts the timer on the current thread's loop ([`IOLoop::current`]).
    pub fn start(&self) {
        self.start_on(&IOLoop::current());
    }

    /// Starts the timer on `io_loop`; the first run is one period from now. Starting a running timer does
    /// nothing.
    pub fn start_on(&self, io_loop: &IOLoop) {
        {
            let mut s = self.state.borrow_mut();
            if s.running {
                return;
            }
            s.running = true;
            s.io_loop = Some(io_loop.clone());
            s.next = Some(io_loop.time());
        }
        schedule_next(&self.state);
    }

    /// Stops the timer; a run in progress completes.
    pub fn stop(&self) {
        let mut s = self.state.borrow_mut();
        s.running = false;
        if let (Some(h), Some(l)) = (s.timeout.take(), s.io_loop.as_ref()) {
            l.remove_timeout(h);
        }
    }

    /// Whether the timer is started.
    pub fn is_running(&self) -> bool {
        self.state.borrow().running
    }
}

impl Drop for PeriodicCallback {
    fn drop(&mut self) {
        self.stop();
    }
}

fn schedule_next(state: &Rc<RefCell<State>>) {
    let mut s = state.borrow_mut();
    if !s.running {
        return;
    }
    let io_loop = s.io_loop.clone().expect("a started PeriodicCallback has a loop");
    let now = io_loop.time();
    let factor = if s.jitter > 0.0 {
        // xorshift64: plenty for spreading timers; not for anything that must be unpredictable.
        s.rng ^= s.rng << 13;
        s.rng ^= s.rng >> 7;
        s.rng ^= s.rng << 17;
        let unit = (s.rng >> 11) as f64 / (1u64 << 53) as f64;
        1.0 + s.jitter * (unit - 0.5)
    } else {
        1.0
    };
    let period = s.period.mul_f64(factor);
    let next = next_run(s.next.unwrap_or(now), now, period);
    s.next = Some(next);
    let weak = Rc::downgrade(state);
    s.timeout = Some(io_loop.call_at(next, move || {
        if let Some(state) = weak.upgrade() {
            run(&state);
        }
    }));
}

fn run(state: &Rc<RefCell<State>>) {
    let callback = {
        let mut s = state.borrow_mut();
        s.timeout = None;
        if !s.running {
            return;
        }
        s.callback.clone()
    };
    // The state is not borrowed while user code runs: the callback may stop or restart this timer.
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (callback.borrow_mut())()));
    if let Err(payload) = result {
        log::error!("periodic callback panicked: {}", crate::panic_message(&*payload));
    }
    schedule_next(state);
}

/// The next run time after `now` for a timer that was due at `scheduled`: `scheduled + period` if that is
/// still ahead, else the first multiple of `period` after `now` — missed runs are skipped, never bursted.
pub fn next_run(scheduled: Instant, now: Instant, period: Duration) -> Instant {
    if scheduled > now {
        return scheduled;
    }
    let behind = now.duration_since(scheduled);
    let periods = behind.as_nanos() / period.as_nanos().max(1) + 1;
    let periods = u32::try_from(periods).unwrap_or(u32::MAX);
    scheduled + period * periods
}

#[cfg(test)]
mod tests {
    use super::next_run;
    use std::time::{Duration, Instant};

    // Tornado's TestPeriodicCallbackMath, with a fake clock: start at t0, period 10 s.
    #[test]
    fn next_run_skips_missed_periods_instead_of_bursting() {
        let t0 = Instant::now();
        let s = |x: u64| t0 + Duration::from_secs(x);
        let p = Duration::from_secs(10);
        // On time: the next run is one period later.
        assert_eq!(next_run(s(0), s(0), p), s(10));
        assert_eq!(next_run(s(10), s(10), p), s(20));
        // Slightly late: still the next slot.
        assert_eq!(next_run(s(20), s(21), p), s(30));
        // Very late: skip to the first slot after now.
        assert_eq!(next_run(s(30), s(55), p), s(60));
        assert_eq!(next_run(s(30), s(60), p), s(70));
        // Early (clock granularity): keep the planned slot.
        assert_eq!(next_run(s(40), s(39), p), s(40));
    }
}
