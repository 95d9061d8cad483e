//! The server side: a gale-web application on one loop (one worker), run in a child process so that its memory
//! and file descriptors can be read alone from `/proc/PID`.
//!
//! | route | method | what it does |
//! | --- | --- | --- |
//! | `/` | `GET` | `Hello, World!` — the ordinary request whose latency is measured |
//! | `/wait` | `POST` | a long poll: answers `released` at the next `/release` |
//! | `/release` | `POST` | wakes every waiting long poll; answers `{"woken": n}` |
//! | `/ws` | `GET` | a WebSocket echo |
//! | `/stats` | `GET` | [`Stats`]: what the server holds right now, for the driver's leak check |
//!
//! Long polls and WebSockets are counted by guards their handlers own, so the counts fall back to zero only if
//! the handlers themselves were dropped, not merely if their sockets were closed.

use gale_web::http1::iostream::BindOptions;
use gale_web::http1::{HttpServer, IOLoop};
use gale_web::websocket::{Message, WebSocket, WebSocketHandler, websocket};
use gale_web::{Application, RequestContext, RequestHandler, Result, ServerOptions};
use serde::{Deserialize, Serialize};
use slab::Slab;
use std::cell::{Cell, OnceCell, RefCell};
use std::future::poll_fn;
use std::io::{self, Write};
use std::rc::{Rc, Weak};
use std::task::{Poll, Waker};

/// The listen backlog: large enough that the driver's batches of connections are never refused and retried
/// after the kernel's one-second SYN timeout (Tornado's default of 128 would be).
pub const BACKLOG: i32 = 1024;

/// What the server holds, as `GET /stats` reports it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// Long-poll handlers alive (waiting, or answered and not yet dropped).
    pub long_polls: usize,
    /// WebSocket handlers alive.
    pub websockets: usize,
    /// Connections accepted and not yet closed, the one asking included.
    pub connections: usize,
    /// Tasks on the loop (one per connection, plus those of open WebSockets).
    pub tasks: usize,
    /// Timers on the loop.
    pub timers: usize,
}

/// Long polls wait at the gate until it is released. Waiters are kept in a slab — O(1) to add and to drop,
/// so that a client leaving does not cost a scan of the other thousands.
#[derive(Debug, Default)]
struct Gate {
    /// Bumped by every release; a waiter is done once it differs from the value it started with.
    generation: Cell<u64>,
    waiters: RefCell<Slab<Waker>>,
}

impl Gate {
    /// Resolves at the next [`release`](Gate::release). Dropping the future (the client went away) removes
    /// the waiter.
    async fn wait(self: &Rc<Self>) {
        /// Removes a waiter that is still registered when its wait ends early.
        struct Registration {
            gate: Rc<Gate>,
            generation: u64,
            key: Option<usize>,
        }
        impl Drop for Registration {
            fn drop(&mut self) {
                // After a release every waiter of the old generation was drained: its key may be reused.
                if let (Some(key), true) = (self.key, self.gate.generation.get() == self.generation) {
                    self.gate.waiters.borrow_mut().try_remove(key);
                }
            }
        }

        let mut registration = Registration { gate: self.clone(), generation: self.generation.get(), key: None };
        poll_fn(|cx| {
            let gate = &registration.gate;
            if gate.generation.get() != registration.generation {
                return Poll::Ready(());
            }
            let mut waiters = gate.waiters.borrow_mut();
            match registration.key.and_then(|k| waiters.get_mut(k)) {
                Some(w) if w.will_wake(cx.waker()) => {}
                Some(w) => *w = cx.waker().clone(),
                None => registration.key = Some(waiters.insert(cx.waker().clone())),
            }
            Poll::Pending
        })
        .await;
    }

    /// Wakes every waiter; returns how many there were.
    fn release(&self) -> usize {
        self.generation.set(self.generation.get() + 1);
        // Wake outside the borrow: a woken task may run (and drop its registration) at once.
        let woken: Vec<Waker> = self.waiters.borrow_mut().drain().collect();
        let n = woken.len();
        woken.into_iter().for_each(Waker::wake);
        n
    }
}

/// Live handler counts.
#[derive(Debug, Default)]
struct Census {
    long_polls: Cell<usize>,
    websockets: Cell<usize>,
}

/// Which count a [`Counted`] guard holds.
#[derive(Clone, Copy, Debug)]
enum Kind {
    LongPoll,
    WebSocket,
}

/// One unit of a [`Census`] count, given back when the handler owning it is dropped.
#[derive(Debug)]
struct Counted {
    census: Rc<Census>,
    kind: Kind,
}

impl Census {
    fn cell(&self, kind: Kind) -> &Cell<usize> {
        match kind {
            Kind::LongPoll => &self.long_polls,
            Kind::WebSocket => &self.websockets,
        }
    }

    fn enter(self: &Rc<Self>, kind: Kind) -> Counted {
        let cell = self.cell(kind);
        cell.set(cell.get() + 1);
        Counted { census: self.clone(), kind }
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        let cell = self.census.cell(self.kind);
        cell.set(cell.get() - 1);
    }
}

/// State shared by the handlers of the one worker.
#[derive(Debug, Default)]
struct Shared {
    gate: Rc<Gate>,
    census: Rc<Census>,
    /// The server, for its connection count; set once it exists (weak: the server owns the application).
    server: OnceCell<Weak<HttpServer<Application>>>,
}

struct Hello;

impl RequestHandler for Hello {
    async fn get(&mut self, cx: &mut RequestContext) -> Result {
        cx.write("Hello, World!");
        Ok(())
    }
}

struct LongPoll(Rc<Shared>);

impl RequestHandler for LongPoll {
    async fn post(&mut self, cx: &mut RequestContext) -> Result {
        let _counted = self.0.census.enter(Kind::LongPoll);
        self.0.gate.wait().await;
        cx.write("released");
        Ok(())
    }
}

struct Release(Rc<Shared>);

#[derive(Serialize)]
struct Released {
    woken: usize,
}

impl RequestHandler for Release {
    async fn post(&mut self, cx: &mut RequestContext) -> Result {
        let woken = self.0.gate.release();
        cx.write_json(&Released { woken })
    }
}

struct StatsHandler(Rc<Shared>);

impl RequestHandler for StatsHandler {
    async fn get(&mut self, cx: &mut RequestContext) -> Result {
        let io_loop = IOLoop::current();
        let stats = Stats {
            long_polls: self.0.census.long_polls.get(),
            websockets: self.0.census.websockets.get(),
            connections: self.0.server.get().and_then(Weak::upgrade).map_or(0, |s| s.open_connections()),
            tasks: io_loop.task_count(),
            timers: io_loop.timer_count(),
        };
        cx.write_json(&stats)
    }
}

/// Echoes every message; counted from `open` until the handler is dropped.
struct Echo {
    shared: Rc<Shared>,
    counted: Option<Counted>,
}

impl WebSocketHandler for Echo {
    async fn open(&mut self, _ws: &WebSocket, _cx: &mut RequestContext) {
        self.counted = Some(self.shared.census.enter(Kind::WebSocket));
    }

    async fn on_message(&mut self, ws: &WebSocket, message: Message) {
        // A peer that is gone makes the write fail; the connection is closing then anyway.
        let _ = ws.write_message(&message).await;
    }
}

fn application(shared: &Rc<Shared>) -> io::Result<Application> {
    let (s1, s2, s3, s4) = (shared.clone(), shared.clone(), shared.clone(), shared.clone());
    Application::builder()
        .route("/", || Hello)
        .route("/wait", move || LongPoll(s1.clone()))
        .route("/release", move || Release(s2.clone()))
        .route("/stats", move || StatsHandler(s3.clone()))
        .route("/ws", websocket(move || Echo { shared: s4.clone(), counted: None }))
        .configure(|s| s.access_log = false)
        .build()
}

/// Serves on `127.0.0.1:port` (0 for any free port) on the poller `GALE_POLLER` names, after printing
/// `PORT BACKEND` as the first line of stdout; runs until killed.
///
/// # Errors
///
/// If the loop or the listener cannot be created.
pub fn serve(port: u16) -> io::Result<()> {
    let io_loop = IOLoop::new()?;
    io_loop.make_current();
    let shared = Rc::new(Shared::default());
    let server = Rc::new(HttpServer::new(&io_loop, application(&shared)?, ServerOptions::default())?);
    shared.server.set(Rc::downgrade(&server)).expect("set once");
    server.bind(port, Some("127.0.0.1"), &BindOptions { backlog: BACKLOG, ..Default::default() })?;
    let port = server.local_addrs().first().map(|a| a.port()).ok_or_else(|| io::Error::other("no listener"))?;
    let mut out = io::stdout().lock();
    writeln!(out, "{port} {}", io_loop.poller_name())?;
    out.flush()?;
    drop(out);
    io_loop.start()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::{Context, Wake};

    struct CountingWaker(AtomicUsize);

    impl Wake for CountingWaker {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn gate_release_wakes_every_waiter_and_a_dropped_wait_leaves_no_waker() {
        let gate = Rc::new(Gate::default());
        let counter = Arc::new(CountingWaker(AtomicUsize::new(0)));
        let waker = Waker::from(counter.clone());
        let mut cx = Context::from_waker(&waker);
        let mut waits: Vec<_> = (0..3).map(|_| Box::pin(gate.wait())).collect();
        for w in &mut waits {
            assert!(w.as_mut().poll(&mut cx).is_pending());
        }
        assert_eq!(gate.waiters.borrow().len(), 3);
        drop(waits.pop());
        assert_eq!(gate.waiters.borrow().len(), 2, "the dropped wait removed its waker");

        assert_eq!(gate.release(), 2);
        assert_eq!(counter.0.load(Ordering::SeqCst), 2);
        for w in &mut waits {
            assert!(w.as_mut().poll(&mut cx).is_ready());
        }
        // A wait started after the release waits for the next one.
        let mut late = Box::pin(gate.wait());
        assert!(late.as_mut().poll(&mut cx).is_pending());
        drop(waits);
        assert_eq!(gate.waiters.borrow().len(), 1, "old registrations do not remove the new waiter");
    }

    #[test]
    fn census_counts_live_guards() {
        let census = Rc::new(Census::default());
        let a = census.enter(Kind::LongPoll);
        let b = census.enter(Kind::WebSocket);
        let c = census.enter(Kind::WebSocket);
        assert_eq!((census.long_polls.get(), census.websockets.get()), (1, 2));
        drop((a, b));
        assert_eq!((census.long_polls.get(), census.websockets.get()), (0, 1));
        drop(c);
        assert_eq!(census.websockets.get(), 0);
    }
}
