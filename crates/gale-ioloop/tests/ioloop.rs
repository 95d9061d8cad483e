//! The IOLoop's behaviour, on every built-in backend: handlers, callbacks, timers, cross-thread wake-ups, the
//! executor, and Tornado's loop regression tests ported to Rust.

mod util;

use gale_ioloop::{IOLoop, Interest, JoinError, PeriodicCallback, Source, sleep, timeout};
use std::cell::{Cell, RefCell};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};
use util::each_backend;

fn pair() -> (UnixStream, UnixStream) {
    let (a, b) = UnixStream::pair().unwrap();
    a.set_nonblocking(true).unwrap();
    b.set_nonblocking(true).unwrap();
    (a, b)
}

/// Stops the loop after `d` in case a test's own stop condition never comes, and fails the test then.
fn watchdog(io_loop: &IOLoop, d: Duration) -> Rc<Cell<bool>> {
    let fired = Rc::new(Cell::new(false));
    let (f, l) = (fired.clone(), io_loop.clone());
    io_loop.call_later(d, move || {
        f.set(true);
        l.stop();
    });
    fired
}

#[test]
fn callbacks_run_in_fifo_order() {
    each_backend(|io_loop| {
        let seen = Rc::new(RefCell::new(Vec::new()));
        for i in 0..5 {
            let s = seen.clone();
            io_loop.add_callback(move || s.borrow_mut().push(i));
        }
        let l = io_loop.clone();
        io_loop.add_callback(move || l.stop());
        io_loop.start().unwrap();
        assert_eq!(*seen.borrow(), vec![0, 1, 2, 3, 4]);
    });
}

#[test]
fn a_self_rescheduling_callback_cannot_starve_io() {
    each_backend(|io_loop| {
        let (mut a, b) = pair();
        let spins = Rc::new(Cell::new(0u64));
        fn spin(l: IOLoop, spins: Rc<Cell<u64>>) {
            spins.set(spins.get() + 1);
            let l2 = l.clone();
            l.add_callback(move || spin(l2, spins));
        }
        spin(io_loop.clone(), spins.clone());
        let l = io_loop.clone();
        let got_io = Rc::new(Cell::new(false));
        let g = got_io.clone();
        io_loop
            .add_handler(&b, Interest::READABLE, move |_, _| {
                g.set(true);
                l.stop();
            })
            .unwrap();
        a.write_all(b"x").unwrap();
        let dog = watchdog(&io_loop, Duration::from_secs(10));
        io_loop.start().unwrap();
        assert!(!dog.get(), "the handler never ran");
        assert!(got_io.get());
        assert!(spins.get() >= 1);
        io_loop.remove_handler(&b).unwrap();
        io_loop.close();
    });
}

#[test]
fn handler_sees_readable_and_writable_as_asked() {
    each_backend(|io_loop| {
        let (a, b) = pair();
        let l = io_loop.clone();
        let events = Rc::new(RefCell::new(Vec::new()));
        let e = events.clone();
        io_loop
            .add_handler(&a, Interest::WRITABLE, move |_, ev| {
                e.borrow_mut().push((ev.is_readable(), ev.is_writable()));
                l.stop();
            })
            .unwrap();
        io_loop.start().unwrap();
        assert_eq!(events.borrow()[0], (false, true));
        // Switch to readable: nothing until the peer writes.
        io_loop.update_handler(&a, Interest::READABLE).unwrap();
        (&b).write_all(b"z").unwrap();
        io_loop.start().unwrap();
        assert_eq!(events.borrow()[1], (true, false));
        io_loop.remove_handler(&a).unwrap();
    });
}

// Tornado: test_remove_handler_from_handler.
#[test]
fn a_handler_may_remove_another_ready_handler() {
    each_backend(|io_loop| {
        let (mut c1, s1) = pair();
        let (mut c2, s2) = pair();
        c1.write_all(b"x").unwrap();
        c2.write_all(b"x").unwrap();
        let s1 = Rc::new(s1);
        let s2 = Rc::new(s2);
        let calls = Rc::new(RefCell::new(Vec::new()));
        let (l, c, me, o) = (io_loop.clone(), calls.clone(), s1.clone(), s2.clone());
        io_loop
            .add_handler(&*s1, Interest::READABLE, move |_, _| {
                c.borrow_mut().push(1);
                let _ = (&*me).read(&mut [0u8; 8]);
                let _ = l.remove_handler(&*o);
            })
            .unwrap();
        let (l, c, me, o) = (io_loop.clone(), calls.clone(), s2.clone(), s1.clone());
        io_loop
            .add_handler(&*s2, Interest::READABLE, move |_, _| {
                c.borrow_mut().push(2);
                let _ = (&*me).read(&mut [0u8; 8]);
                let _ = l.remove_handler(&*o);
            })
            .unwrap();
        let l = io_loop.clone();
        io_loop.call_later(Duration::from_millis(30), move || l.stop());
        io_loop.start().unwrap();
        // Exactly one handler ran, once: it removed the other before the other's event was dispatched.
        assert_eq!(calls.borrow().len(), 1, "calls: {:?}", calls.borrow());
    });
}

#[test]
fn a_handler_may_remove_itself_and_register_a_new_one_for_the_same_fd() {
    each_backend(|io_loop| {
        let (mut a, b) = pair();
        let b = Rc::new(b);
        let log = Rc::new(RefCell::new(Vec::new()));
        let (l, lg, bb) = (io_loop.clone(), log.clone(), b.clone());
        io_loop
            .add_handler(&*b, Interest::READABLE, move |_, _| {
                lg.borrow_mut().push("first");
                l.remove_handler(&*bb).unwrap();
                let (l2, lg2, b2) = (l.clone(), lg.clone(), bb.clone());
                l.add_handler(&*bb, Interest::READABLE, move |_, _| {
                    lg2.borrow_mut().push("second");
                    let mut buf = [0u8; 8];
                    let _ = (&*b2).read(&mut buf);
                    l2.stop();
                })
                .unwrap();
            })
            .unwrap();
        a.write_all(b"x").unwrap();
        let dog = watchdog(&io_loop, Duration::from_secs(10));
        io_loop.start().unwrap();
        assert!(!dog.get());
        assert_eq!(*log.borrow(), vec!["first", "second"]);
        io_loop.remove_handler(&*b).unwrap();
    });
}

#[test]
fn handler_errors_are_clear() {
    each_backend(|io_loop| {
        let (a, _b) = pair();
        io_loop.add_handler(&a, Interest::READABLE, |_, _| {}).unwrap();
        let e = io_loop.add_handler(&a, Interest::READABLE, |_, _| {}).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::AlreadyExists);
        io_loop.remove_handler(&a).unwrap();
        assert_eq!(io_loop.remove_handler(&a).unwrap_err().kind(), std::io::ErrorKind::NotFound);
        assert_eq!(io_loop.update_handler(&a, Interest::BOTH).unwrap_err().kind(), std::io::ErrorKind::NotFound);
    });
}

#[test]
fn a_panicking_handler_is_logged_and_the_loop_goes_on() {
    each_backend(|io_loop| {
        let (mut a, b) = pair();
        let hits = Rc::new(Cell::new(0));
        let (h, l) = (hits.clone(), io_loop.clone());
        let mut reader = b.try_clone().unwrap();
        io_loop
            .add_handler(&b, Interest::READABLE, move |_, _| {
                h.set(h.get() + 1);
                let mut buf = [0u8; 1];
                let _ = reader.read(&mut buf);
                if h.get() == 1 {
                    panic!("handler boom");
                }
                l.stop();
            })
            .unwrap();
        a.write_all(b"12").unwrap();
        let dog = watchdog(&io_loop, Duration::from_secs(10));
        io_loop.start().unwrap();
        assert!(!dog.get());
        assert_eq!(hits.get(), 2, "the handler stays registered after a panic");
        assert!(!util::logs_containing("handler boom").is_empty());
        io_loop.remove_handler(&b).unwrap();
    });
}

#[test]
fn a_panicking_callback_is_logged_and_the_loop_goes_on() {
    each_backend(|io_loop| {
        io_loop.add_callback(|| panic!("callback boom"));
        let ran = Rc::new(Cell::new(false));
        let (r, l) = (ran.clone(), io_loop.clone());
        io_loop.add_callback(move || {
            r.set(true);
            l.stop();
        });
        io_loop.start().unwrap();
        assert!(ran.get());
        assert!(!util::logs_containing("callback boom").is_empty());
    });
}

#[test]
fn timers_with_equal_deadlines_fire_in_fifo_order() {
    each_backend(|io_loop| {
        let at = Instant::now() + Duration::from_millis(5);
        let seen = Rc::new(RefCell::new(Vec::new()));
        for i in 0..10 {
            let s = seen.clone();
            io_loop.call_at(at, move || s.borrow_mut().push(i));
        }
        let l = io_loop.clone();
        io_loop.call_at(at, move || l.stop());
        io_loop.start().unwrap();
        assert_eq!(*seen.borrow(), (0..10).collect::<Vec<_>>());
    });
}

#[test]
fn timers_fire_in_deadline_order_not_scheduling_order() {
    each_backend(|io_loop| {
        let seen = Rc::new(RefCell::new(Vec::new()));
        for (i, ms) in [(3, 30u64), (1, 10), (2, 20)] {
            let s = seen.clone();
            io_loop.call_later(Duration::from_millis(ms), move || s.borrow_mut().push(i));
        }
        let l = io_loop.clone();
        io_loop.call_later(Duration::from_millis(40), move || l.stop());
        let started = Instant::now();
        io_loop.start().unwrap();
        assert!(started.elapsed() >= Duration::from_millis(40));
        assert_eq!(*seen.borrow(), vec![1, 2, 3]);
    });
}

#[test]
fn cancelling_the_next_due_timer_keeps_the_others() {
    each_backend(|io_loop| {
        let seen = Rc::new(RefCell::new(Vec::new()));
        let s = seen.clone();
        let first = io_loop.call_later(Duration::from_millis(5), move || s.borrow_mut().push("first"));
        let s = seen.clone();
        io_loop.call_later(Duration::from_millis(10), move || s.borrow_mut().push("second"));
        io_loop.remove_timeout(first);
        io_loop.remove_timeout(first); // twice is harmless
        let l = io_loop.clone();
        io_loop.call_later(Duration::from_millis(15), move || l.stop());
        io_loop.start().unwrap();
        assert_eq!(*seen.borrow(), vec!["second"]);
    });
}

// Tornado: test_remove_timeout_from_timeout.
#[test]
fn a_timer_may_remove_another_due_timer() {
    each_backend(|io_loop| {
        let at = Instant::now() + Duration::from_millis(2);
        let calls = Rc::new(Cell::new(0));
        let second: Rc<Cell<Option<gale_ioloop::TimeoutHandle>>> = Rc::new(Cell::new(None));
        let (c, s, l) = (calls.clone(), second.clone(), io_loop.clone());
        io_loop.call_at(at, move || {
            c.set(c.get() + 1);
            if let Some(h) = s.get() {
                l.remove_timeout(h);
            }
        });
        let c = calls.clone();
        second.set(Some(io_loop.call_at(at, move || c.set(c.get() + 100))));
        let l = io_loop.clone();
        io_loop.call_later(Duration::from_millis(20), move || l.stop());
        io_loop.start().unwrap();
        assert_eq!(calls.get(), 1);
    });
}

#[test]
fn a_timer_scheduled_from_another_thread_fires() {
    each_backend(|io_loop| {
        let handle = io_loop.handle();
        let fired = Arc::new(AtomicUsize::new(0));
        let f = fired.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            handle.add_callback(move || {
                let l = IOLoop::current();
                let l2 = l.clone();
                l.call_later(Duration::from_millis(5), move || {
                    f.fetch_add(1, Ordering::SeqCst);
                    l2.stop();
                });
            });
        });
        let dog = watchdog(&io_loop, Duration::from_secs(10));
        io_loop.start().unwrap();
        t.join().unwrap();
        assert!(!dog.get());
        assert_eq!(fired.load(Ordering::SeqCst), 1);
    });
}

#[test]
fn stop_from_another_thread_wakes_a_blocked_loop() {
    each_backend(|io_loop| {
        let handle = io_loop.handle();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            handle.stop();
        });
        let dog = watchdog(&io_loop, Duration::from_secs(10));
        io_loop.start().unwrap();
        t.join().unwrap();
        assert!(!dog.get(), "the loop was not woken by the other thread");
    });
}

#[test]
fn stop_before_start_makes_start_return_at_once() {
    each_backend(|io_loop| {
        io_loop.stop();
        let dog = watchdog(&io_loop, Duration::from_secs(10));
        io_loop.start().unwrap();
        assert!(!dog.get());
        assert_eq!(io_loop.timer_count(), 1); // the watchdog never ran
    });
}

#[test]
fn start_while_running_is_an_error() {
    each_backend(|io_loop| {
        let l = io_loop.clone();
        let err = Rc::new(RefCell::new(None));
        let e = err.clone();
        io_loop.add_callback(move || {
            *e.borrow_mut() = Some(l.start().unwrap_err().to_string());
            l.stop();
        });
        io_loop.start().unwrap();
        assert!(err.borrow().as_deref().unwrap().contains("already running"));
    });
}

// Tornado: test_add_callback_while_closing.
#[test]
fn adding_callbacks_from_threads_while_the_loop_closes_is_harmless() {
    util::init_logger();
    for _ in 0..20 {
        let io_loop = IOLoop::new().unwrap();
        let handle = io_loop.handle();
        let go = Arc::new(std::sync::Barrier::new(2));
        let g = go.clone();
        let t = std::thread::spawn(move || {
            g.wait();
            let mut accepted = 0;
            for _ in 0..1000 {
                if handle.add_callback(|| {}) {
                    accepted += 1;
                }
            }
            accepted
        });
        go.wait();
        io_loop.close();
        let accepted = t.join().unwrap();
        assert!(accepted <= 1000);
        let handle = io_loop.handle();
        assert!(handle.is_closed());
        assert!(!handle.add_callback(|| {}), "a closed loop refuses callbacks");
        assert!(io_loop.start().is_err(), "a closed loop does not start");
    }
}

#[test]
fn current_is_the_running_loop() {
    each_backend(|io_loop| {
        let (l, same) = (io_loop.clone(), Rc::new(Cell::new(false)));
        let s = same.clone();
        io_loop.add_callback(move || {
            s.set(IOLoop::current().ptr_eq(&l));
            l.stop();
        });
        io_loop.start().unwrap();
        assert!(same.get());
    });
}

#[test]
fn spawned_tasks_share_rc_state_and_join() {
    each_backend(|io_loop| {
        let shared = Rc::new(RefCell::new(Vec::new()));
        let s = shared.clone();
        let out = io_loop.run_sync(async move {
            let mut handles = Vec::new();
            for i in 0..10u64 {
                let s = s.clone();
                handles.push(gale_ioloop::spawn(async move {
                    sleep(Duration::from_millis(10 - i)).await;
                    s.borrow_mut().push(i);
                    i * 2
                }));
            }
            let mut total = 0;
            for h in handles {
                total += h.await.unwrap();
            }
            total
        });
        assert_eq!(out, 90);
        assert_eq!(shared.borrow().len(), 10);
        assert_eq!(io_loop.task_count(), 0);
    });
}

#[test]
fn a_panicking_task_yields_an_error_and_the_loop_survives() {
    each_backend(|io_loop| {
        let msg = io_loop.run_sync(async {
            let h = gale_ioloop::spawn(async {
                sleep(Duration::from_millis(1)).await;
                panic!("task boom");
            });
            match h.await {
                Err(JoinError::Panicked(m)) => m,
                other => panic!("unexpected {other:?}"),
            }
        });
        assert_eq!(msg, "task boom");
        assert!(!util::logs_containing("task boom").is_empty());
        assert_eq!(io_loop.run_sync(async { 7 }), 7);
    });
}

#[test]
fn detached_tasks_run_and_a_panicking_one_is_logged() {
    each_backend(|io_loop| {
        let ran = Rc::new(Cell::new(0));
        let r = ran.clone();
        let l = io_loop.clone();
        io_loop.run_sync(async move {
            l.spawn_detached(async {
                sleep(Duration::from_millis(1)).await;
                panic!("detached boom");
            });
            let r2 = r.clone();
            l.spawn_detached(async move { r2.set(r2.get() + 1) });
            sleep(Duration::from_millis(10)).await;
            r.set(r.get() + 1);
        });
        assert_eq!(ran.get(), 2);
        assert!(!util::logs_containing("detached boom").is_empty());
        // A closed loop drops what is spawned on it.
        let dropped = Rc::new(Cell::new(false));
        struct Flag(Rc<Cell<bool>>);
        impl Drop for Flag {
            fn drop(&mut self) {
                self.0.set(true);
            }
        }
        io_loop.close();
        let flag = Flag(dropped.clone());
        io_loop.spawn_detached(async move { drop(flag) });
        assert!(dropped.get());
    });
}

#[test]
fn cancelling_a_task_drops_its_future() {
    each_backend(|io_loop| {
        struct Flag(Rc<Cell<bool>>);
        impl Drop for Flag {
            fn drop(&mut self) {
                self.0.set(true);
            }
        }
        let dropped = Rc::new(Cell::new(false));
        let d = dropped.clone();
        let result = io_loop.run_sync(async move {
            let h = gale_ioloop::spawn(async move {
                let _f = Flag(d);
                sleep(Duration::from_secs(3600)).await;
            });
            sleep(Duration::from_millis(1)).await;
            h.cancel();
            h.await
        });
        assert!(matches!(result, Err(JoinError::Cancelled)));
        assert!(dropped.get());
        assert_eq!(io_loop.timer_count(), 0, "the cancelled sleep removed its timer");
    });
}

#[test]
fn timeout_returns_elapsed_or_the_output() {
    each_backend(|io_loop| {
        let (fast, slow) = io_loop.run_sync(async {
            let fast = timeout(Duration::from_secs(5), async { 1 }).await;
            let slow = timeout(Duration::from_millis(5), sleep(Duration::from_secs(5))).await;
            (fast, slow)
        });
        assert_eq!(fast, Ok(1));
        assert!(slow.is_err());
    });
}

#[test]
fn sleep_waits_at_least_its_duration() {
    each_backend(|io_loop| {
        let started = Instant::now();
        io_loop.run_sync(sleep(Duration::from_millis(20)));
        assert!(started.elapsed() >= Duration::from_millis(20));
    });
}

#[test]
fn a_far_timer_fires_after_its_deadline_even_behind_a_slow_iteration() {
    // The wait before a far timer reuses the clock reading of the iteration's start; a slow callback in that
    // iteration must not make the timer fire early (nor never).
    each_backend(|io_loop| {
        let deadline = Instant::now() + Duration::from_millis(250);
        let fired_at = Rc::new(Cell::new(None));
        let (f, l) = (fired_at.clone(), io_loop.clone());
        io_loop.call_at(deadline, move || {
            f.set(Some(Instant::now()));
            l.stop();
        });
        io_loop.add_callback(|| std::thread::sleep(Duration::from_millis(30)));
        let timed_out = watchdog(&io_loop, Duration::from_secs(10));
        io_loop.start().unwrap();
        assert!(!timed_out.get());
        assert!(fired_at.get().is_some_and(|t| t >= deadline));
    });
}

/// The timeouts a [`RecordingPoller`] was asked to wait, each with the phase of the test it was asked in.
type WaitLog = Arc<Mutex<Vec<(usize, Option<Duration>)>>>;

/// A poller that passes everything to an inner one and records the timeout of each wait, tagged with `phase`.
#[derive(Debug)]
struct RecordingPoller {
    inner: Box<dyn gale_ioloop::Poller>,
    phase: Arc<AtomicUsize>,
    waits: WaitLog,
}

impl gale_ioloop::Poller for RecordingPoller {
    fn register(
        &mut self,
        fd: std::os::fd::BorrowedFd<'_>,
        token: gale_poller::Token,
        interest: Interest,
    ) -> std::io::Result<()> {
        self.inner.register(fd, token, interest)
    }
    fn modify(
        &mut self,
        fd: std::os::fd::BorrowedFd<'_>,
        token: gale_poller::Token,
        interest: Interest,
    ) -> std::io::Result<()> {
        self.inner.modify(fd, token, interest)
    }
    fn deregister(&mut self, fd: std::os::fd::BorrowedFd<'_>) -> std::io::Result<()> {
        self.inner.deregister(fd)
    }
    fn wait(&mut self, events: &mut gale_poller::Events, timeout: Option<Duration>) -> std::io::Result<()> {
        self.waits.lock().unwrap().push((self.phase.load(Ordering::SeqCst), timeout));
        self.inner.wait(events, timeout)
    }
    fn notifier(&self) -> gale_poller::Notifier {
        self.inner.notifier()
    }
    fn name(&self) -> &'static str {
        "recording"
    }
}

#[test]
fn a_timer_nearer_than_the_one_a_wait_was_planned_for_cuts_the_next_wait_short() {
    // The loop waits for the watchdog, a far timer; a handler then schedules a near one, which must bound the
    // next wait rather than let it reuse the wait planned for the watchdog.
    for name in util::backends() {
        let phase = Arc::new(AtomicUsize::new(0));
        let waits = Arc::new(Mutex::new(Vec::new()));
        let poller =
            RecordingPoller { inner: gale_poller::by_name(name).unwrap(), phase: phase.clone(), waits: waits.clone() };
        let io_loop = IOLoop::with_poller(Box::new(poller));
        let (mut a, b) = pair();
        let fired = Rc::new(Cell::new(false));
        let (f, l) = (fired.clone(), io_loop.clone());
        let mut reader = b.try_clone().unwrap();
        io_loop
            .add_handler(&b, Interest::READABLE, move |_, _| {
                let mut buf = [0u8; 8];
                let _ = reader.read(&mut buf);
                let (f, l2) = (f.clone(), l.clone());
                l.call_later(Duration::from_millis(20), move || {
                    f.set(true);
                    l2.stop();
                });
                phase.store(1, Ordering::SeqCst);
            })
            .unwrap();
        let writer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(5));
            a.write_all(b"x").unwrap();
            a
        });
        let timed_out = watchdog(&io_loop, Duration::from_secs(5));
        io_loop.start().unwrap();
        drop(writer.join().unwrap());
        io_loop.remove_handler(&b).unwrap();
        assert!(fired.get() && !timed_out.get(), "{name}");
        let waits = waits.lock().unwrap();
        assert!(waits.iter().any(|&(p, t)| p == 0 && t > Some(Duration::from_secs(1))), "{name}: {waits:?}");
        assert!(waits.iter().all(|&(p, t)| p == 0 || t <= Some(Duration::from_millis(20))), "{name}: {waits:?}");
    }
}

#[test]
fn a_waker_woken_from_another_thread_resumes_the_task() {
    each_backend(|io_loop| {
        let slot: Arc<Mutex<(bool, Option<Waker>)>> = Arc::new(Mutex::new((false, None)));
        let s = slot.clone();
        let t = std::thread::spawn(move || {
            loop {
                std::thread::sleep(Duration::from_millis(5));
                let mut g = s.lock().unwrap();
                if let Some(w) = g.1.take() {
                    g.0 = true;
                    w.wake();
                    return;
                }
            }
        });
        let s = slot.clone();
        io_loop.run_sync(std::future::poll_fn(move |cx| {
            let mut g = s.lock().unwrap();
            if g.0 {
                Poll::Ready(())
            } else {
                g.1 = Some(cx.waker().clone());
                Poll::Pending
            }
        }));
        t.join().unwrap();
    });
}

#[test]
fn source_futures_read_and_write() {
    each_backend(|io_loop| {
        let (a, b) = pair();
        let got = io_loop.run_sync(async move {
            let a = Source::new(a).unwrap();
            let b = Source::new(b).unwrap();
            let reader = gale_ioloop::spawn(async move {
                let mut all = Vec::new();
                let mut buf = [0u8; 4096];
                loop {
                    let n = b.read_with(|mut s| s.read(&mut buf)).await.unwrap();
                    if n == 0 {
                        return all;
                    }
                    all.extend_from_slice(&buf[..n]);
                }
            });
            // Enough to fill the socket buffer, so that the writer really waits for writability.
            let data = vec![7u8; 4 << 20];
            let mut off = 0;
            while off < data.len() {
                off += a.write_with(|mut s| s.write(&data[off..])).await.unwrap();
            }
            drop(a); // closes the fd: the reader sees EOF
            reader.await.unwrap()
        });
        assert_eq!(got.len(), 4 << 20);
        assert!(got.iter().all(|&b| b == 7));
    });
}

#[test]
fn a_source_awaited_by_one_task_then_another_wakes_the_one_waiting() {
    each_backend(|io_loop| {
        let (mut a, b) = pair();
        let order = io_loop.run_sync(async move {
            let b = Rc::new(Source::new(b).unwrap());
            let order = Rc::new(RefCell::new(Vec::new()));
            let (b1, o1) = (b.clone(), order.clone());
            let first = gale_ioloop::spawn(async move {
                b1.readable().await.unwrap();
                o1.borrow_mut().push("first");
            });
            sleep(Duration::from_millis(5)).await;
            a.write_all(b"x").unwrap();
            first.await.unwrap();
            // The data is left unread; a second task now waits on the same source, after draining it.
            let mut buf = [0u8; 8];
            assert_eq!(b.read_with(|s| (&*s).read(&mut buf)).await.unwrap(), 1);
            let (b2, o2) = (b.clone(), order.clone());
            let second = gale_ioloop::spawn(async move {
                b2.readable().await.unwrap();
                o2.borrow_mut().push("second");
            });
            sleep(Duration::from_millis(5)).await;
            a.write_all(b"y").unwrap();
            second.await.unwrap();
            order.take()
        });
        assert_eq!(order, ["first", "second"]);
    });
}

#[test]
fn tasks_woken_by_one_wait_all_run() {
    // One wait reports several sources ready: the first woken task has a slot of its own in the loop, the
    // others queue after it, and each runs once.
    each_backend(|io_loop| {
        let woken = io_loop.run_sync(async move {
            let woken = Rc::new(RefCell::new(Vec::new()));
            let mut writers = Vec::new();
            let mut tasks = Vec::new();
            for i in 0..3 {
                let (a, b) = pair();
                writers.push(a);
                let w = woken.clone();
                tasks.push(gale_ioloop::spawn(async move {
                    let b = Source::new(b).unwrap();
                    b.readable().await.unwrap();
                    w.borrow_mut().push(i);
                }));
            }
            // Let every task reach its wait, then make all three fds ready before the loop waits again.
            sleep(Duration::from_millis(5)).await;
            for a in &mut writers {
                a.write_all(b"x").unwrap();
            }
            for t in tasks {
                t.await.unwrap();
            }
            woken.take()
        });
        let mut sorted = woken.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, [0, 1, 2], "each task ran once: {woken:?}");
    });
}

#[test]
fn a_new_loop_runs_on_the_backend_the_environment_names() {
    // `IOLoop::new` holds the default backend by value, where `with_poller` (every other test) boxes it: the
    // loop must behave the same either way, and pick what `GALE_POLLER` names.
    let io_loop = IOLoop::new().unwrap();
    assert_eq!(io_loop.poller_name(), gale_poller::from_env().unwrap().name());
    let (mut a, b) = pair();
    let got = io_loop.run_sync(async move {
        let b = Source::new(b).unwrap();
        IOLoop::current().call_later(Duration::from_millis(2), move || a.write_all(b"xy").unwrap());
        let mut buf = [0u8; 4];
        let n = b.read_with(|s| (&*s).read(&mut buf)).await.unwrap();
        buf[..n].to_vec()
    });
    assert_eq!(got, b"xy");
    io_loop.close();
}

#[test]
fn an_idle_source_does_not_spin_the_loop() {
    each_backend(|io_loop| {
        let (mut a, b) = pair();
        a.write_all(b"unread").unwrap();
        let turns = Rc::new(Cell::new(0u32));
        let t = turns.clone();
        io_loop.run_sync(async move {
            let b = Source::new(b).unwrap();
            // Wait once, then leave the data unread while sleeping: the loop must not wake repeatedly.
            b.readable().await.unwrap();
            let l = IOLoop::current();
            let pc = PeriodicCallback::new(move || t.set(t.get() + 1), Duration::from_millis(10));
            pc.start_on(&l);
            sleep(Duration::from_millis(60)).await;
            pc.stop();
            drop(b);
        });
        // The periodic callback ran a handful of times; the point is that the loop did not hang or panic and
        // that the level-triggered readiness no one waited for was dropped from the interest set.
        assert!(turns.get() >= 1);
    });
}

#[test]
fn a_source_awaited_through_a_wrapping_waker_is_woken_through_it() {
    // The loop wakes a task awaiting a source with its own waker without going through the waker; a waker
    // wrapped by a combinator must still be woken itself, so that the combinator learns which part is ready.
    struct Counting {
        wakes: AtomicUsize,
        inner: Waker,
    }
    impl std::task::Wake for Counting {
        fn wake(self: Arc<Self>) {
            self.wake_by_ref();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            self.wakes.fetch_add(1, Ordering::SeqCst);
            self.inner.wake_by_ref();
        }
    }
    each_backend(|io_loop| {
        let (mut a, b) = pair();
        io_loop.call_later(Duration::from_millis(5), move || a.write_all(b"x").unwrap());
        let wakes = io_loop.run_sync(async move {
            let b = Source::new(b).unwrap();
            let mut counting: Option<Arc<Counting>> = None;
            std::future::poll_fn(|cx| {
                let c = counting
                    .get_or_insert_with(|| Arc::new(Counting { wakes: AtomicUsize::new(0), inner: cx.waker().clone() }))
                    .clone();
                let waker = Waker::from(c.clone());
                let mut inner_cx = std::task::Context::from_waker(&waker);
                b.poll_readable(&mut inner_cx).map(|r| r.map(|()| c.wakes.load(Ordering::SeqCst)))
            })
            .await
            .unwrap()
        });
        assert_eq!(wakes, 1);
    });
}

#[test]
fn periodic_callback_runs_repeatedly_until_stopped() {
    each_backend(|io_loop| {
        let n = Rc::new(Cell::new(0));
        let (c, l) = (n.clone(), io_loop.clone());
        let pc = Rc::new(RefCell::new(None::<PeriodicCallback>));
        let p2 = pc.clone();
        let cb = PeriodicCallback::new(
            move || {
                c.set(c.get() + 1);
                if c.get() == 5 {
                    p2.borrow().as_ref().unwrap().stop();
                    let l2 = l.clone();
                    l.call_later(Duration::from_millis(20), move || l2.stop());
                }
            },
            Duration::from_millis(2),
        )
        .with_jitter(0.5);
        cb.start_on(&io_loop);
        assert!(cb.is_running());
        *pc.borrow_mut() = Some(cb);
        io_loop.start().unwrap();
        assert_eq!(n.get(), 5, "no run after stop");
        assert!(!pc.borrow().as_ref().unwrap().is_running());
    });
}

#[test]
fn the_blocked_loop_detector_names_the_culprit() {
    each_backend(|io_loop| {
        io_loop.set_blocking_log_threshold(Some(Duration::from_millis(5)));
        fn slow_callback_marker() {
            std::thread::sleep(Duration::from_millis(20));
        }
        io_loop.add_callback(slow_callback_marker);
        let l = io_loop.clone();
        io_loop.add_callback(move || l.stop());
        io_loop.start().unwrap();
        let lines = util::logs_containing("slow_callback_marker");
        assert!(lines.iter().any(|l| l.contains("blocked")), "{lines:?}");
    });
}

#[test]
fn the_blocked_loop_detector_does_not_blame_the_wait_on_what_follows_it() {
    each_backend(|io_loop| {
        io_loop.set_blocking_log_threshold(Some(Duration::from_millis(10)));
        let (mut a, b) = pair();
        fn quick_timer_after_a_wait() {}
        let mut reader = b.try_clone().unwrap();
        let l = io_loop.clone();
        io_loop
            .add_handler(&b, Interest::READABLE, move |_, _| {
                let mut buf = [0u8; 8];
                let _ = reader.read(&mut buf);
                l.call_later(Duration::from_millis(30), quick_timer_after_a_wait);
                let l2 = l.clone();
                l.call_later(Duration::from_millis(60), move || l2.stop());
            })
            .unwrap();
        let writer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(30));
            a.write_all(b"x").unwrap();
            a
        });
        io_loop.start().unwrap();
        drop(writer.join().unwrap());
        io_loop.remove_handler(&b).unwrap();
        // The handler (named after this test, as a closure in it) and the timer ran right after waits longer
        // than the threshold; neither blocked the loop.
        let blamed = util::logs_containing("does_not_blame_the_wait_on_what_follows_it");
        assert!(blamed.is_empty(), "{blamed:?}");
        assert!(util::logs_containing("quick_timer_after_a_wait").is_empty());
    });
}

#[test]
fn many_handlers_on_one_loop() {
    each_backend(|io_loop| {
        let mut pairs = Vec::new();
        let hits = Rc::new(Cell::new(0usize));
        const N: usize = 500;
        for _ in 0..N {
            let (mut a, b) = pair();
            a.write_all(b"x").unwrap();
            let (h, l) = (hits.clone(), io_loop.clone());
            let mut r = b.try_clone().unwrap();
            io_loop
                .add_handler(&b, Interest::READABLE, move |_, _| {
                    let mut buf = [0u8; 4];
                    let _ = r.read(&mut buf);
                    h.set(h.get() + 1);
                    if h.get() == N {
                        l.stop();
                    }
                })
                .unwrap();
            pairs.push((a, b));
        }
        let dog = watchdog(&io_loop, Duration::from_secs(20));
        io_loop.start().unwrap();
        assert!(!dog.get());
        assert_eq!(hits.get(), N);
        for (_, b) in &pairs {
            io_loop.remove_handler(b).unwrap();
        }
    });
}

#[test]
fn a_source_reaches_the_poller_only_when_something_waits_on_it() {
    util::init_logger();
    for name in util::backends() {
        let poller = gale_poller::testing::CountingPoller::new(gale_poller::by_name(name).unwrap());
        let counts = poller.counts().clone();
        // Calls to register, modify and deregister so far.
        let c = move || [&counts.register, &counts.modify, &counts.deregister].map(|n| n.load(Ordering::SeqCst));
        let io_loop = IOLoop::with_poller(Box::new(poller));
        io_loop.run_sync(async move {
            // Data already there: the read does not block, and the poller never hears of the fd.
            let (mut a, b) = pair();
            a.write_all(b"ready").unwrap();
            let b = Source::new(b).unwrap();
            let mut buf = [0u8; 8];
            assert_eq!(b.read_with(|s| (&*s).read(&mut buf)).await.unwrap(), 5);
            drop(b);
            assert_eq!(c(), [0, 0, 0], "{name}");
            // A read that waits registers the fd once, with read interest; dropping the source deregisters it.
            let (mut a, b) = pair();
            let b = Source::new(b).unwrap();
            let writer = gale_ioloop::spawn(async move {
                sleep(Duration::from_millis(5)).await;
                a.write_all(b"later").unwrap();
                a
            });
            assert_eq!(b.read_with(|s| (&*s).read(&mut buf)).await.unwrap(), 5);
            assert_eq!(c(), [1, 0, 0], "{name}");
            drop(b);
            assert_eq!(c(), [1, 0, 1], "{name}");
            drop(writer.await.unwrap());
        });
    }
}
