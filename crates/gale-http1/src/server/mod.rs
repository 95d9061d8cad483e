//! The HTTP server: [`HttpServer`], the [`HttpService`] it runs, and multi-core [`Workers`].

mod conn;
mod workers;
mod writer;

pub use conn::{BodyError, BodyReader};
pub use workers::{Workers, WorkersHandle};
pub use writer::{ResponseBody, ResponseWriter, ShutdownSignal, WriteError};

use crate::message::{Request, Response};
use crate::proto::Limits;
use crate::proto::request::RequestHead;
use crate::proto::response::ResponseEncoder;
use gale_iostream::{BindOptions, IOLoop, IOStream, StreamOptions, TcpServer};
use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::Future;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::rc::Rc;
use std::task::{Context, Waker};
use std::time::Duration;

/// What a server does with requests — Tornado's `HTTPServerConnectionDelegate` and `HTTPMessageDelegate` in
/// one trait. Implemented by the web layer's `Application`, and by any closure through [`service_fn`].
///
/// A service lives on one thread (one per worker), so it need not be `Send`.
pub trait HttpService: 'static {
    /// Whether to stream this request's body to the service (Tornado's `stream_request_body`) instead of
    /// buffering it. Called once the head is parsed. Default: buffer.
    fn stream_body(&self, head: &RequestHead) -> bool {
        let _ = head;
        false
    }

    /// Answers `request` through `writer`. `body` is `Some` when [`stream_body`](HttpService::stream_body)
    /// said so; the body is then read from it rather than found in the request.
    ///
    /// If the future returns without finishing the response, the server finishes it; if it never wrote a
    /// head, or panics before, the client gets a 500. If the client goes away while the future waits, the
    /// writer's [`closed`](ResponseWriter::closed) resolves and the future is dropped.
    fn call(&self, request: Request, body: Option<BodyReader>, writer: ResponseWriter) -> impl Future<Output = ()>;
}

/// A service from an async closure returning a whole [`Response`].
///
/// # Examples
///
/// ```
/// use gale_http1::{service_fn, Response};
///
/// let service = service_fn(|request| async move {
///     Response::text(format!("you asked for {}", request.path()))
/// });
/// # let _ = service;
/// ```
pub fn service_fn<F, Fut>(f: F) -> ServiceFn<F>
where
    F: Fn(Request) -> Fut + 'static,
    Fut: Future<Output = Response>,
{
    ServiceFn(f)
}

/// The service made by [`service_fn`].
pub struct ServiceFn<F>(F);

impl<F> fmt::Debug for ServiceFn<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ServiceFn")
    }
}

impl<F, Fut> HttpService for ServiceFn<F>
where
    F: Fn(Request) -> Fut + 'static,
    Fut: Future<Output = Response>,
{
    async fn call(&self, request: Request, _body: Option<BodyReader>, writer: ResponseWriter) {
        let response = (self.0)(request).await;
        if let Err(e) = writer.send(&response) {
            log::error!("cannot send response: {e}");
        }
    }
}

/// Server settings (Tornado's `HTTPServer` keyword arguments).
#[derive(Clone, Debug)]
pub struct ServerOptions {
    /// Head limits: size (default 64 KiB → 431), request line (8 KiB → 414), field count (100 → 431).
    pub limits: Limits,
    /// Largest request body (default 100 MiB); a larger `Content-Length` is answered 413 without reading it.
    pub max_body_size: usize,
    /// How long a connection may wait for the next request (default 3600 s, Tornado's).
    pub idle_connection_timeout: Option<Duration>,
    /// How long a client may take to send a whole head once it started (default 60 s).
    pub header_timeout: Option<Duration>,
    /// How long reading a body may take (default none).
    pub body_timeout: Option<Duration>,
    /// Trust `X-Real-Ip` / `X-Forwarded-For` / `X-Forwarded-Proto` from a proxy in front (default off).
    pub xheaders: bool,
    /// Proxies whose addresses are skipped in `X-Forwarded-For` (Tornado's `trusted_downstream`).
    pub trusted_downstream: Vec<String>,
    /// The `Server` header value; `None` to send none (default `gale`).
    pub server_name: Option<String>,
    /// Close every connection after one request.
    pub no_keep_alive: bool,
    /// Most open connections per worker; beyond it new ones wait in the listen backlog (default none).
    pub max_connections: Option<usize>,
    /// Stream limits (read buffer size etc.); `max_buffer_size` is raised to fit a head and read-ahead.
    pub stream: StreamOptions,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            limits: Limits::default(),
            max_body_size: 100 * 1024 * 1024,
            idle_connection_timeout: Some(Duration::from_secs(3600)),
            header_timeout: Some(Duration::from_secs(60)),
            body_timeout: None,
            xheaders: false,
            trusted_downstream: Vec::new(),
            server_name: Some("gale".to_owned()),
            no_keep_alive: false,
            max_connections: None,
            stream: StreamOptions::default(),
        }
    }
}

/// Settings shared by a server's connections.
pub(crate) struct Config {
    pub(crate) limits: Limits,
    pub(crate) max_body_size: usize,
    pub(crate) idle_connection_timeout: Option<Duration>,
    pub(crate) header_timeout: Option<Duration>,
    pub(crate) body_timeout: Option<Duration>,
    pub(crate) xheaders: bool,
    pub(crate) trusted_downstream: Vec<String>,
    pub(crate) no_keep_alive: bool,
    pub(crate) encoder: Rc<ResponseEncoder>,
}

/// Server-wide state the connections watch.
pub(crate) struct ServerState {
    pub(crate) shutting_down: Cell<bool>,
    /// One waker per connection waiting for input, removed when the connection ends: O(1) per poll, and
    /// nothing left behind by closed connections.
    shutdown_waiters: RefCell<slab::Slab<Waker>>,
}

impl ServerState {
    /// Whether the server is shutting down; else makes sure this connection's task is woken when it does.
    /// `key` is the connection's slot, kept by the connection and released with [`ServerState::forget`].
    pub(crate) fn poll_shutdown(&self, cx: &mut Context<'_>, key: &mut Option<usize>) -> bool {
        if self.shutting_down.get() {
            return true;
        }
        let mut waiters = self.shutdown_waiters.borrow_mut();
        match key.and_then(|k| waiters.get_mut(k)) {
            Some(w) if w.will_wake(cx.waker()) => {}
            Some(w) => *w = cx.waker().clone(),
            None => *key = Some(waiters.insert(cx.waker().clone())),
        }
        false
    }

    /// Releases a connection's slot.
    pub(crate) fn forget(&self, key: Option<usize>) {
        if let Some(k) = key {
            self.shutdown_waiters.borrow_mut().try_remove(k);
        }
    }

    fn begin_shutdown(&self) {
        self.shutting_down.set(true);
        let waiters: Vec<Waker> = self.shutdown_waiters.borrow().iter().map(|(_, w)| w.clone()).collect();
        for w in waiters {
            w.wake();
        }
    }
}

/// Hands accepted streams to connections.
struct Acceptor<S: HttpService> {
    service: Rc<S>,
    config: Rc<Config>,
    state: Rc<ServerState>,
}

impl<S: HttpService> gale_iostream::StreamHandler for Acceptor<S> {
    fn handle_stream(&self, stream: IOStream, address: SocketAddr) -> impl Future<Output = ()> + 'static {
        conn::serve(self.service.clone(), stream, address, self.config.clone(), self.state.clone())
    }
}

/// A non-blocking HTTP/1.1 server (Tornado's `HTTPServer`) running a [`HttpService`] on one loop.
///
/// For several cores, [`Workers`] runs one server per thread, each with its own loop and its own
/// `SO_REUSEPORT` listener.
///
/// # Examples
///
/// ```no_run
/// use gale_http1::{HttpServer, Response, ServerOptions, service_fn};
///
/// let io_loop = gale_iostream::IOLoop::new()?;
/// let server = HttpServer::new(&io_loop, service_fn(|_req| async { Response::text("Hello, World!") }), ServerOptions::default())?;
/// server.listen(8888, Some("127.0.0.1"))?;
/// io_loop.start()?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct HttpServer<S: HttpService> {
    tcp: TcpServer<Acceptor<S>>,
    state: Rc<ServerState>,
    io_loop: IOLoop,
}

impl<S: HttpService> fmt::Debug for HttpServer<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpServer")
            .field("addrs", &self.tcp.local_addrs())
            .field("open_connections", &self.tcp.open_connections())
            .finish()
    }
}

impl<S: HttpService> HttpServer<S> {
    /// A server on `io_loop` running `service`.
    ///
    /// # Errors
    ///
    /// [`io::ErrorKind::InvalidInput`] if `server_name` holds bytes not allowed in a header.
    pub fn new(io_loop: &IOLoop, service: S, options: ServerOptions) -> io::Result<HttpServer<S>> {
        let encoder = ResponseEncoder::new()
            .with_server(options.server_name.as_deref())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        let config = Rc::new(Config {
            limits: options.limits,
            max_body_size: options.max_body_size,
            idle_connection_timeout: options.idle_connection_timeout,
            header_timeout: options.header_timeout,
            body_timeout: options.body_timeout,
            xheaders: options.xheaders,
            trusted_downstream: options.trusted_downstream.clone(),
            no_keep_alive: options.no_keep_alive,
            encoder: Rc::new(encoder),
        });
        let state =
            Rc::new(ServerState { shutting_down: Cell::new(false), shutdown_waiters: RefCell::new(slab::Slab::new()) });
        let tcp = TcpServer::new(io_loop, Acceptor { service: Rc::new(service), config, state: state.clone() });
        let mut stream = options.stream;
        stream.max_buffer_size = stream.max_buffer_size.max(options.limits.max_header_size * 2);
        tcp.set_stream_options(stream);
        tcp.set_max_connections(options.max_connections);
        Ok(HttpServer { tcp, state, io_loop: io_loop.clone() })
    }

    /// Binds `port` on `address` (all interfaces for `None`) and starts serving.
    ///
    /// # Errors
    ///
    /// As [`gale_iostream::bind_sockets`]; a taken port is `AddrInUse` with a message naming it.
    pub fn listen(&self, port: u16, address: Option<&str>) -> io::Result<()> {
        self.tcp.listen(port, address)
    }

    /// Binds with explicit options (e.g. `reuse_port`) and starts serving (Tornado's `bind` + `start`).
    ///
    /// # Errors
    ///
    /// As [`listen`](HttpServer::listen).
    pub fn bind(&self, port: u16, address: Option<&str>, options: &BindOptions) -> io::Result<()> {
        self.tcp.add_sockets(gale_iostream::bind_sockets(port, address, options)?)
    }

    /// Serves on already-bound listeners.
    ///
    /// # Errors
    ///
    /// If a listener cannot be registered.
    pub fn add_sockets(&self, listeners: Vec<TcpListener>) -> io::Result<()> {
        self.tcp.add_sockets(listeners)
    }

    /// The addresses the server listens on.
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.tcp.local_addrs()
    }

    /// Open connections right now.
    pub fn open_connections(&self) -> usize {
        self.tcp.open_connections()
    }

    /// Stops accepting new connections (Tornado's `stop`); open ones go on.
    pub fn stop(&self) {
        self.tcp.stop();
    }

    /// Graceful shutdown: stops accepting, closes idle keep-alive connections at once, lets requests in
    /// progress finish (their responses say `Connection: close`), and resolves when every connection is gone
    /// or `deadline` passes — then the rest are left to close as their streams are dropped. Returns how many
    /// connections were still open at the deadline.
    pub async fn shutdown(&self, deadline: Duration) -> usize {
        self.stop();
        self.state.begin_shutdown();
        let until = std::time::Instant::now() + deadline;
        while self.open_connections() > 0 && std::time::Instant::now() < until {
            gale_iostream::ioloop::sleep(Duration::from_millis(5)).await;
        }
        let _ = &self.io_loop;
        self.open_connections()
    }
}

/// A server answering every request with `response`, for tests and benchmarks.
pub fn static_service(response: Response) -> impl HttpService {
    let response = Rc::new(response);
    service_fn(move |_req| {
        let r = response.clone();
        async move { (*r).clone() }
    })
}

impl<S: HttpService> HttpService for Rc<S> {
    fn stream_body(&self, head: &RequestHead) -> bool {
        (**self).stream_body(head)
    }
    fn call(&self, request: Request, body: Option<BodyReader>, writer: ResponseWriter) -> impl Future<Output = ()> {
        (**self).call(request, body, writer)
    }
}
