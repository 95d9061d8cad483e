//! [`Workers`]: one loop and one server per thread, thread-per-core, nothing shared.

use super::{HttpServer, HttpService, ServerOptions};
use gale_iostream::{BindOptions, IOLoop};
use std::cell::RefCell;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Starts a graceful shutdown with a deadline.
type ShutdownHook = Box<dyn FnOnce(Duration)>;

thread_local! {
    /// How to shut the server of this worker thread down; set by the worker, run from a loop callback.
    static SHUTDOWN: RefCell<Option<ShutdownHook>> = const { RefCell::new(None) };
}

/// Runs a server on several threads (Tornado's multi-process mode, as threads): each worker has its own
/// IOLoop and its own `SO_REUSEPORT` listener on the same port, so the kernel spreads connections and no
/// state is shared. The service is made per worker by `make_service`, so it need not be `Send`.
///
/// # Examples
///
/// ```no_run
/// use gale_http1::{Response, ServerOptions, Workers, service_fn};
///
/// let workers = Workers::start(2, 8888, Some("127.0.0.1"), ServerOptions::default(), || {
///     service_fn(|_req| async { Response::text("Hello, World!") })
/// })?;
/// println!("listening on {}", workers.addr());
/// workers.join();
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct Workers;

/// The running workers: their address, and how to stop them.
pub struct WorkersHandle {
    threads: Vec<JoinHandle<io::Result<()>>>,
    loops: Vec<gale_iostream::ioloop::LoopHandle>,
    addr: SocketAddr,
}

impl fmt::Debug for WorkersHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkersHandle").field("workers", &self.threads.len()).field("addr", &self.addr).finish()
    }
}

impl Workers {
    /// Starts `count` workers (at least 1) serving on `port` of `address`.
    ///
    /// # Errors
    ///
    /// If the port cannot be bound (a taken port names itself in the message) or a thread cannot start.
    pub fn start<S, F>(
        count: usize,
        port: u16,
        address: Option<&str>,
        options: ServerOptions,
        make_service: F,
    ) -> io::Result<WorkersHandle>
    where
        S: HttpService,
        F: Fn() -> S + Send + Sync + 'static,
    {
        let count = count.max(1);
        let bind = BindOptions { reuse_port: count > 1, backlog: 4096, ..Default::default() };
        // Bind every worker's listeners here, so that errors surface at once and port 0 means one port.
        let first = gale_iostream::bind_sockets(port, address, &bind)?;
        let addr = first[0].local_addr()?;
        let mut all = vec![first];
        for _ in 1..count {
            all.push(gale_iostream::bind_sockets(addr.port(), address, &bind)?);
        }
        let make_service = std::sync::Arc::new(make_service);
        let mut threads = Vec::new();
        let mut loops = Vec::new();
        for (i, listeners) in all.into_iter().enumerate() {
            let (tx, rx) = std::sync::mpsc::channel();
            let make = make_service.clone();
            let options = options.clone();
            let t = std::thread::Builder::new().name(format!("gale-worker-{i}")).spawn(move || {
                let io_loop = IOLoop::new()?;
                let server = Rc::new(HttpServer::new(&io_loop, make(), options)?);
                server.add_sockets(listeners)?;
                let s = server.clone();
                SHUTDOWN.with(|h| {
                    *h.borrow_mut() = Some(Box::new(move |deadline| {
                        let l = IOLoop::current();
                        let l2 = l.clone();
                        l.spawn(async move {
                            s.shutdown(deadline).await;
                            l2.stop();
                        });
                    }))
                });
                let _ = tx.send(io_loop.handle());
                let result = io_loop.start();
                SHUTDOWN.with(|h| h.borrow_mut().take());
                drop(server);
                result
            })?;
            match rx.recv() {
                Ok(h) => loops.push(h),
                Err(_) => {
                    // The worker failed before starting; report its error.
                    return Err(t
                        .join()
                        .unwrap_or_else(|_| Err(io::Error::other("worker panicked")))
                        .err()
                        .unwrap_or_else(|| io::Error::other("worker exited")));
                }
            }
            threads.push(t);
        }
        Ok(WorkersHandle { threads, loops, addr })
    }
}

impl WorkersHandle {
    /// The address the workers listen on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// How many workers run.
    pub fn len(&self) -> usize {
        self.threads.len()
    }

    /// Whether there are no workers (never, once started).
    pub fn is_empty(&self) -> bool {
        self.threads.is_empty()
    }

    /// Graceful shutdown of every worker (see [`HttpServer::shutdown`]), then waits for the threads.
    pub fn shutdown(self, deadline: Duration) {
        for l in &self.loops {
            l.add_callback(move || {
                SHUTDOWN.with(|h| {
                    if let Some(f) = h.borrow_mut().take() {
                        f(deadline);
                    }
                })
            });
        }
        self.join();
    }

    /// Waits for every worker thread to end.
    pub fn join(self) {
        for t in self.threads {
            match t.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => log::error!("worker failed: {e}"),
                Err(_) => log::error!("worker panicked"),
            }
        }
    }
}
