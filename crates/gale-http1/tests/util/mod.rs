//! Shared helpers for the end-to-end tests: a server running on its own thread and loop, a service with one
//! route per behaviour under test, and a blocking raw-socket client that parses responses strictly.
//!
//! Every socket has read and write timeouts, so a server that fails to answer fails the test instead of
//! hanging it.

// Each test binary uses its own subset of these helpers.
#![allow(dead_code)]

use gale_http1::ioloop::{self, LoopHandle, poller};
use gale_http1::proto::request::RequestHead;
use gale_http1::{BodyError, BodyReader, HttpServer, HttpService, IOLoop, Request, ResponseWriter, ServerOptions};
use gale_http1::{Response as ServiceResponse, headers::HeaderMap};
use std::cell::RefCell;
use std::fmt::Write as _;
use std::future::{Future, poll_fn};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::pin::{Pin, pin};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::task::Poll;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long any socket operation of a test may block.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// Runs `test` once per poller backend of this platform.
pub fn each_backend(test: impl Fn(&'static str)) {
    for name in poller::BACKENDS {
        eprintln!("-- backend {name}");
        test(name);
    }
}

/// The default backend, for tests not worth repeating per backend.
pub fn default_backend() -> &'static str {
    poller::BACKENDS[0]
}

/// Polls `condition` until it holds, failing the test after [`TIMEOUT`].
pub fn wait_for(what: &str, condition: impl Fn() -> bool) {
    let until = Instant::now() + TIMEOUT;
    while !condition() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

// ---------------------------------------------------------------------------------------------------------
// The server side.
// ---------------------------------------------------------------------------------------------------------

/// What the test thread may ask of a server running on another thread's loop.
trait Control {
    fn open_connections(&self) -> usize;
    fn shutdown(&self, deadline: Duration) -> Pin<Box<dyn Future<Output = usize> + '_>>;
}

impl<S: HttpService> Control for HttpServer<S> {
    fn open_connections(&self) -> usize {
        HttpServer::open_connections(self)
    }

    fn shutdown(&self, deadline: Duration) -> Pin<Box<dyn Future<Output = usize> + '_>> {
        Box::pin(HttpServer::shutdown(self, deadline))
    }
}

thread_local! {
    /// The server of this (server) thread.
    static CONTROL: RefCell<Option<Rc<dyn Control>>> = const { RefCell::new(None) };
}

/// An [`HttpServer`] on 127.0.0.1 (ephemeral port), served by an IOLoop on a thread of its own. Dropping it
/// stops the loop and joins the thread.
pub struct TestServer {
    /// The port the server listens on.
    pub port: u16,
    /// The poller backend the loop runs on.
    pub backend: &'static str,
    handle: LoopHandle,
    thread: Option<JoinHandle<()>>,
}

impl TestServer {
    /// Starts a server with `options` running the service `make` builds (on the server thread, as services
    /// need not be `Send`).
    pub fn start<S, F>(backend: &'static str, options: ServerOptions, make: F) -> TestServer
    where
        S: HttpService,
        F: FnOnce() -> S + Send + 'static,
    {
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name(format!("server-{backend}"))
            .spawn(move || {
                let io_loop = IOLoop::with_poller(poller::by_name(backend).expect("poller backend"));
                let server = Rc::new(HttpServer::new(&io_loop, make(), options).expect("server"));
                server.listen(0, Some("127.0.0.1")).expect("listen");
                let port = server.local_addrs()[0].port();
                CONTROL.with(|c| *c.borrow_mut() = Some(server.clone()));
                tx.send((port, io_loop.handle())).expect("test thread waits");
                io_loop.start().expect("loop runs");
                CONTROL.with(|c| c.borrow_mut().take());
                drop(server);
                io_loop.close();
            })
            .expect("spawn server thread");
        let (port, handle) = rx.recv().expect("server started");
        TestServer { port, backend, handle, thread: Some(thread) }
    }

    /// Starts the [`TestService`] with `options`.
    pub fn with_options(backend: &'static str, options: ServerOptions, probe: &Arc<Probe>) -> TestServer {
        let probe = probe.clone();
        TestServer::start(backend, options, move || TestService { probe })
    }

    /// Starts the [`TestService`] with default options.
    pub fn new(backend: &'static str) -> TestServer {
        TestServer::with_options(backend, ServerOptions::default(), &Probe::new())
    }

    /// A fresh client connection.
    pub fn connect(&self) -> Client {
        Client::connect(self.port)
    }

    /// Runs `f` with the server on its loop thread and returns its result.
    fn on_server<R: Send + 'static>(&self, f: impl FnOnce(&Rc<dyn Control>) -> R + Send + 'static) -> R {
        let (tx, rx) = mpsc::channel();
        assert!(self.handle.add_callback(move || {
            let server = CONTROL.with(|c| c.borrow().clone()).expect("server thread has a server");
            let _ = tx.send(f(&server));
        }));
        rx.recv_timeout(TIMEOUT).expect("server loop answers")
    }

    /// [`HttpServer::open_connections`], asked on the server's thread.
    pub fn open_connections(&self) -> usize {
        self.on_server(|s| s.open_connections())
    }

    /// Starts [`HttpServer::shutdown`] on the server's loop; the receiver gets its result.
    pub fn begin_shutdown(&self, deadline: Duration) -> mpsc::Receiver<usize> {
        let (tx, rx) = mpsc::channel();
        assert!(self.handle.add_callback(move || {
            let server = CONTROL.with(|c| c.borrow().clone()).expect("server thread has a server");
            IOLoop::current().spawn(async move {
                let left = server.shutdown(deadline).await;
                let _ = tx.send(left);
            });
        }));
        rx
    }

    /// Asserts that a fresh connection gets a 200 for `GET /alive`.
    pub fn assert_serving(&self) {
        let mut c = self.connect();
        c.send(b"GET /alive HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
        let r = c.response();
        assert_eq!(r.status, 200, "server no longer serves after the previous case ({})", self.backend);
        c.assert_closed();
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.handle.stop();
        if let Some(t) = self.thread.take() {
            let result = t.join();
            if result.is_err() && !std::thread::panicking() {
                panic!("server thread panicked");
            }
        }
    }
}

/// Flags shared by the test thread and the [`TestService`].
#[derive(Debug, Default)]
pub struct Probe {
    /// Requests to `/slow` (and `/stream`) that started.
    pub started: AtomicUsize,
    /// Lets `/slow` answer and `/stream` write its second piece.
    pub release: AtomicBool,
    /// `/slow` saw `ResponseWriter::closed` resolve.
    pub saw_closed: AtomicBool,
    /// `/slow` service futures dropped before they finished.
    pub dropped: AtomicUsize,
}

impl Probe {
    /// A fresh set of flags.
    pub fn new() -> Arc<Probe> {
        Arc::new(Probe::default())
    }
}

/// Counts a drop in [`Probe::dropped`] unless disarmed.
struct DropGuard<'a> {
    probe: &'a Probe,
    armed: bool,
}

impl Drop for DropGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.probe.dropped.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// The service the battery runs against: one route per behaviour.
///
/// - `/` → `Hello, World!`; `/echo` → the body; `/inspect` → a description of the request (see
///   [`describe`]); any other path → the target as the body.
/// - `/chunked` → three pieces written without a length; `/stream` → `first`, flushed, then `second` once
///   [`Probe::release`] is set.
/// - `/big/N` → `N` bytes of [`pattern`] in pieces of 100 000, without a length.
/// - `/count…` streams the request body and answers `bytes=N pieces=M`; `/ignore-body` streams it and
///   answers without reading it.
/// - `/header/NAME` → the values of the header `NAME`; `/teapot` → 418 with a custom reason.
/// - `/slow` waits for [`Probe::release`] or for the client to leave.
/// - `/panic`, `/panic-late` (after a flushed piece), `/no-answer`, `/short` (3 bytes of a promised 10),
///   `/bad-header`, `/bad-reason`, `/bad-response` misbehave in their own ways.
#[derive(Debug)]
pub struct TestService {
    /// Flags shared with the test.
    pub probe: Arc<Probe>,
}

/// Writes a whole response with a `Content-Length`.
pub fn reply(writer: &ResponseWriter, status: u16, body: impl Into<bytes::Bytes>) {
    let body = body.into();
    let mut headers = HeaderMap::new();
    headers.insert("Content-Type", "text/plain");
    writer
        .write_head(status, None, &headers, Some(body.len() as u64))
        .and_then(|()| writer.write(body))
        .and_then(|()| writer.finish())
        .expect("valid response");
}

/// Describes a request as `key=value` lines: method, target, path, query, host, version, remote_ip,
/// protocol, full_url, body, then `header=name: value` and `trailer=name: value` lines in order.
pub fn describe(request: &Request) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "method={}", request.method());
    let _ = writeln!(out, "target={}", request.target());
    let _ = writeln!(out, "path={}", request.path());
    let _ = writeln!(out, "query={}", request.query().unwrap_or("<none>"));
    let _ = writeln!(out, "host={}", request.host().unwrap_or("<none>"));
    let _ = writeln!(out, "version={}", request.version());
    let _ = writeln!(out, "remote_ip={}", request.remote_ip());
    let _ = writeln!(out, "protocol={}", request.protocol());
    let _ = writeln!(out, "full_url={}", request.full_url());
    let _ = writeln!(out, "body={}", String::from_utf8_lossy(request.body()));
    for (name, value) in request.headers() {
        let _ = writeln!(out, "header={}: {}", String::from_utf8_lossy(name), String::from_utf8_lossy(value));
    }
    for (name, value) in request.trailers().into_iter().flatten() {
        let _ = writeln!(out, "trailer={}: {}", String::from_utf8_lossy(name), String::from_utf8_lossy(value));
    }
    out
}

/// `len` bytes of a repeating pattern, starting at `offset` of it: a body whose every byte is checkable.
pub fn pattern(offset: usize, len: usize) -> Vec<u8> {
    (offset..offset + len).map(|i| (i % 251) as u8).collect()
}

/// Resolves when the client leaves (`true`) or `flag` is set (`false`), checking the flag every few ms.
async fn client_left_or(writer: &ResponseWriter, flag: &AtomicBool) -> bool {
    let mut closed = pin!(writer.closed());
    let mut tick = Box::pin(ioloop::sleep(Duration::from_millis(2)));
    poll_fn(|cx| {
        if closed.as_mut().poll(cx).is_ready() {
            return Poll::Ready(true);
        }
        loop {
            if flag.load(Ordering::SeqCst) {
                return Poll::Ready(false);
            }
            if tick.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            tick = Box::pin(ioloop::sleep(Duration::from_millis(2)));
        }
    })
    .await
}

impl HttpService for TestService {
    fn stream_body(&self, head: &RequestHead) -> bool {
        head.path().starts_with("/count") || head.path() == "/ignore-body"
    }

    async fn call(&self, request: Request, body: Option<BodyReader>, writer: ResponseWriter) {
        let probe = &*self.probe;
        match request.path() {
            "/" => reply(&writer, 200, "Hello, World!"),
            "/echo" => reply(&writer, 200, request.body().clone()),
            "/inspect" => reply(&writer, 200, describe(&request)),
            "/respond/borrowed" => {
                let body = pattern(0, 100);
                writer
                    .respond(201, &[("Content-Type", "application/x-test"), ("X-Kind", "borrowed")], &body)
                    .expect("respond");
            }
            "/respond/large" => {
                let body = pattern(0, 100_000);
                writer.respond(200, &[("X-Kind", "large")], &body).expect("respond");
            }
            "/respond/shared" => writer.respond(200, &[], bytes::Bytes::from(pattern(7, 9_000))).expect("respond"),
            "/respond/empty" => writer.respond(204, &[], "").expect("respond"),
            "/respond/map" => {
                let mut headers = HeaderMap::new();
                headers.append("Content-Type", "text/x-map");
                headers.append("X-Kind", "map");
                writer.respond_with(202, Some("Taken In"), &headers, "from a map").expect("respond_with");
            }
            "/respond/map-large" => {
                let mut headers = HeaderMap::new();
                headers.append("X-Kind", "map");
                writer.respond_with(200, None, &headers, bytes::Bytes::from(pattern(3, 50_000))).expect("respond_with");
            }
            "/respond/not-modified" => {
                // A 304 carries no body: the body is refused, the head is out and the response still ends well.
                let refused = writer.respond(304, &[("ETag", "\"v1\"")], "stale body");
                assert!(refused.is_err(), "a 304 body is refused");
            }
            "/respond/injection" => {
                let refused = writer.respond(200, &[("X-Evil", "a\r\nSet-Cookie: x=1")], "no");
                assert!(refused.is_err(), "a line break in a value is refused");
                writer.respond(500, &[], "refused").expect("respond");
            }
            "/chunked" => {
                writer.write_head(200, None, &HeaderMap::new(), None).expect("head");
                for piece in ["chunk-1;", "chunk-2;", "chunk-3"] {
                    writer.write(piece).expect("piece");
                }
                writer.finish().expect("finish");
            }
            "/stream" => {
                probe.started.fetch_add(1, Ordering::SeqCst);
                writer.write_head(200, None, &HeaderMap::new(), None).expect("head");
                writer.write("first").expect("first");
                writer.flush().await.expect("flush");
                if client_left_or(&writer, &probe.release).await {
                    return;
                }
                writer.write("second").expect("second");
                writer.finish().expect("finish");
            }
            path if path.starts_with("/count") => {
                let body = body.expect("a streamed body");
                let mut bytes = 0;
                let mut pieces = 0;
                loop {
                    match body.chunk().await {
                        Ok(Some(piece)) => {
                            bytes += piece.len();
                            pieces += 1;
                        }
                        Ok(None) => break,
                        Err(BodyError::TooLarge) => return reply(&writer, 413, "too large"),
                        Err(e) => return reply(&writer, 400, e.to_string()),
                    }
                }
                assert_eq!(bytes, body.bytes_read());
                assert!(body.is_done());
                reply(&writer, 200, format!("bytes={bytes} pieces={pieces}"));
            }
            "/slow" => {
                probe.started.fetch_add(1, Ordering::SeqCst);
                let mut guard = DropGuard { probe, armed: true };
                if client_left_or(&writer, &probe.release).await {
                    probe.saw_closed.store(true, Ordering::SeqCst);
                    // Never returns: the server drops this future, which the guard records.
                    std::future::pending::<()>().await;
                }
                guard.armed = false;
                reply(&writer, 200, "released");
            }
            path if path.starts_with("/big/") => {
                let mut left: usize = path["/big/".len()..].parse().expect("a length");
                writer.write_head(200, None, &HeaderMap::new(), None).expect("head");
                let mut offset = 0;
                while left > 0 {
                    let n = left.min(100_000);
                    writer.write(pattern(offset, n)).expect("piece");
                    offset += n;
                    left -= n;
                }
                writer.finish().expect("finish");
            }
            "/ignore-body" => reply(&writer, 200, "ignored"),
            "/panic" => panic!("this service panics on purpose"),
            "/panic-late" => {
                writer.write_head(200, None, &HeaderMap::new(), None).expect("head");
                writer.write("partial").expect("piece");
                writer.flush().await.expect("flush");
                panic!("this service panics on purpose, mid-body");
            }
            "/short" => {
                writer.write_head(200, None, &HeaderMap::new(), Some(10)).expect("head");
                writer.write("abc").expect("piece");
            }
            "/no-answer" => {}
            "/bad-header" => {
                let mut headers = HeaderMap::new();
                headers.insert("X-Evil", "a\r\nInjected: yes");
                // Refused: return without answering, and the server answers 500. Accepted (a bug): finish, and
                // the client sees the injected line.
                if writer.write_head(200, None, &headers, Some(0)).is_ok() {
                    writer.finish().expect("finish");
                }
            }
            "/teapot" => {
                writer.write_head(418, Some("Short And Stout"), &HeaderMap::new(), Some(0)).expect("head");
                writer.finish().expect("finish");
            }
            path if path.starts_with("/header/") => {
                let name = &path["/header/".len()..];
                let all: Vec<String> =
                    request.headers().get_all(name).map(|v| String::from_utf8_lossy(v).into_owned()).collect();
                let first = request.headers().get(name).unwrap_or("<none>");
                reply(&writer, 200, format!("first={first}\nall={}\ncount={}\n", all.join("|"), all.len()));
            }
            "/bad-reason" => {
                let refused = writer.write_head(200, Some("OK\r\nInjected: yes"), &HeaderMap::new(), Some(0)).is_err();
                if refused {
                    // The service may still answer differently after a refused head.
                    reply(&writer, 500, "reason refused");
                } else {
                    writer.finish().expect("finish");
                }
            }
            "/bad-response" => {
                // A whole response through `send`, as `service_fn` does, with a header that would inject a line.
                let response = ServiceResponse::text("never sent").header("X-Evil", "a\nInjected: yes");
                assert!(writer.send(&response).is_err());
            }
            _ => reply(&writer, 200, request.target().to_owned()),
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// The client side.
// ---------------------------------------------------------------------------------------------------------

/// A response as read off the wire.
#[derive(Debug, Clone)]
pub struct Response {
    /// `HTTP/1.1` or `HTTP/1.0`.
    pub version: String,
    /// The status code.
    pub status: u16,
    /// The reason phrase.
    pub reason: String,
    /// Header fields in order, as sent.
    pub headers: Vec<(String, String)>,
    /// The body, decoded from its framing.
    pub body: Vec<u8>,
    /// The chunks of a chunked body, as framed.
    pub chunks: Vec<Vec<u8>>,
    /// Trailer fields of a chunked body.
    pub trailers: Vec<(String, String)>,
}

impl Response {
    /// The first value of `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// How many fields are called `name`.
    pub fn header_count(&self, name: &str) -> usize {
        self.headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case(name)).count()
    }

    /// The body as text.
    pub fn text(&self) -> &str {
        std::str::from_utf8(&self.body).expect("UTF-8 body")
    }

    /// The values of `key=` lines of a [`describe`] body.
    pub fn field(&self, key: &str) -> Vec<&str> {
        let prefix = format!("{key}=");
        self.text().lines().filter_map(|l| l.strip_prefix(prefix.as_str())).collect()
    }

    /// The single value of `key=` in a [`describe`] body.
    pub fn one(&self, key: &str) -> &str {
        let values = self.field(key);
        assert_eq!(values.len(), 1, "one {key}= line expected in\n{}", self.text());
        values[0]
    }

    /// Whether the response says the connection closes after it.
    pub fn says_close(&self) -> bool {
        self.header("connection").is_some_and(|v| v.eq_ignore_ascii_case("close"))
    }

    /// Whether the body is chunked.
    pub fn is_chunked(&self) -> bool {
        self.header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    }
}

/// A blocking client connection with timeouts, reading responses strictly (CRLF everywhere).
pub struct Client {
    reader: BufReader<TcpStream>,
}

impl Client {
    /// Connects to 127.0.0.1:`port` with [`TIMEOUT`] on reads and writes.
    pub fn connect(port: u16) -> Client {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream.set_read_timeout(Some(TIMEOUT)).unwrap();
        stream.set_write_timeout(Some(TIMEOUT)).unwrap();
        stream.set_nodelay(true).unwrap();
        Client { reader: BufReader::new(stream) }
    }

    /// The socket.
    pub fn stream(&self) -> &TcpStream {
        self.reader.get_ref()
    }

    /// The buffered reader, for reading raw bytes.
    pub fn reader(&mut self) -> &mut BufReader<TcpStream> {
        &mut self.reader
    }

    /// Sends `bytes`, failing the test on error.
    pub fn send(&mut self, bytes: &[u8]) {
        self.reader.get_mut().write_all(bytes).expect("send");
    }

    /// Sends `bytes`; the server may legitimately close before it read them all.
    pub fn try_send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.reader.get_mut().write_all(bytes)
    }

    /// Half-closes the sending side.
    pub fn shutdown_write(&self) {
        self.stream().shutdown(Shutdown::Write).expect("shutdown");
    }

    /// Sets the read timeout (for the few tests that expect silence).
    pub fn set_read_timeout(&self, timeout: Duration) {
        self.stream().set_read_timeout(Some(timeout)).unwrap();
    }

    fn line(&mut self, what: &str) -> String {
        let mut line = Vec::new();
        let n = (&mut self.reader)
            .take(128 * 1024)
            .read_until(b'\n', &mut line)
            .unwrap_or_else(|e| panic!("reading {what}: {e}"));
        assert!(n > 0, "connection closed while reading {what}");
        assert!(line.ends_with(b"\r\n"), "{what} not terminated by CRLF: {:?}", String::from_utf8_lossy(&line));
        line.truncate(line.len() - 2);
        String::from_utf8(line).unwrap_or_else(|e| panic!("{what} is not UTF-8: {e}"))
    }

    fn fields(&mut self, what: &str) -> Vec<(String, String)> {
        let mut fields = Vec::new();
        loop {
            let line = self.line(what);
            if line.is_empty() {
                return fields;
            }
            let (name, value) = line.split_once(':').unwrap_or_else(|| panic!("malformed {what} line {line:?}"));
            assert!(!name.is_empty() && !name.contains([' ', '\t']), "malformed field name in {line:?}");
            fields.push((name.to_owned(), value.trim_matches([' ', '\t']).to_owned()));
        }
    }

    /// Reads a status line and header fields; the body is left unread.
    pub fn head(&mut self) -> Response {
        let line = self.line("status line");
        let mut parts = line.splitn(3, ' ');
        let version = parts.next().unwrap_or_default().to_owned();
        assert!(version == "HTTP/1.1" || version == "HTTP/1.0", "bad status line {line:?}");
        let status = parts.next().and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("bad status line {line:?}"));
        let reason = parts.next().unwrap_or_default().to_owned();
        let headers = self.fields("header");
        Response { version, status, reason, headers, body: Vec::new(), chunks: Vec::new(), trailers: Vec::new() }
    }

    /// Reads one chunk of a chunked body: `Some(data)`, or `None` for the last chunk (trailers are read too).
    pub fn chunk(&mut self) -> Option<Vec<u8>> {
        self.chunk_with_trailers(&mut Vec::new())
    }

    fn chunk_with_trailers(&mut self, trailers: &mut Vec<(String, String)>) -> Option<Vec<u8>> {
        let line = self.line("chunk size");
        let size = line.split(';').next().unwrap_or_default();
        let size = usize::from_str_radix(size, 16).unwrap_or_else(|_| panic!("bad chunk size line {line:?}"));
        if size == 0 {
            *trailers = self.fields("trailer");
            return None;
        }
        let mut data = vec![0; size];
        self.reader.read_exact(&mut data).expect("chunk data");
        let end = self.line("chunk end");
        assert!(end.is_empty(), "chunk data not followed by CRLF");
        Some(data)
    }

    /// Reads the body of a response whose head was read with [`head`](Client::head), by its framing.
    pub fn body(&mut self, response: &mut Response) {
        if response.is_chunked() {
            assert!(response.header("content-length").is_none(), "both Content-Length and chunked");
            let mut trailers = Vec::new();
            while let Some(chunk) = self.chunk_with_trailers(&mut trailers) {
                response.body.extend_from_slice(&chunk);
                response.chunks.push(chunk);
            }
            response.trailers = trailers;
        } else if let Some(len) = response.header("content-length") {
            let len: usize = len.parse().expect("numeric Content-Length");
            response.body = vec![0; len];
            self.reader.read_exact(&mut response.body).expect("body of Content-Length");
        } else {
            self.reader.read_to_end(&mut response.body).expect("close-delimited body");
        }
    }

    /// Reads a whole response to a request that is not `HEAD`. A 1xx interim response is returned as is.
    pub fn response(&mut self) -> Response {
        let mut r = self.head();
        if r.status >= 200 && r.status != 204 && r.status != 304 {
            self.body(&mut r);
        }
        r
    }

    /// Reads a whole response to a `HEAD` request: no body, whatever the headers say.
    pub fn head_response(&mut self) -> Response {
        self.head()
    }

    /// Sends `request` and reads the response.
    pub fn roundtrip(&mut self, request: &[u8]) -> Response {
        self.send(request);
        self.response()
    }

    /// Asserts the server closes the connection with no further bytes (a reset counts as closed).
    pub fn assert_closed(&mut self) {
        let mut rest = Vec::new();
        match self.reader.read_to_end(&mut rest) {
            Ok(_) => assert!(rest.is_empty(), "unexpected bytes before close: {:?}", String::from_utf8_lossy(&rest)),
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {}
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                panic!("the server did not close the connection within {TIMEOUT:?}")
            }
            Err(e) => panic!("unexpected error waiting for close: {e}"),
        }
    }

    /// Asserts nothing arrives within `wait` (the connection stays open and silent).
    pub fn assert_silent_for(&mut self, wait: Duration) {
        self.set_read_timeout(wait);
        let mut byte = [0u8; 1];
        match self.reader.read(&mut byte) {
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {}
            Ok(0) => panic!("connection closed while it should have stayed open"),
            Ok(_) => panic!("unexpected byte {:?} while the connection should be silent", byte[0] as char),
            Err(e) => panic!("unexpected error: {e}"),
        }
        self.set_read_timeout(TIMEOUT);
    }
}

/// A minimal HTTP/1.1 GET for `target`.
pub fn get(target: &str) -> Vec<u8> {
    format!("GET {target} HTTP/1.1\r\nHost: test\r\n\r\n").into_bytes()
}

/// A minimal HTTP/1.1 GET for `target` with `Connection: close`.
pub fn get_close(target: &str) -> Vec<u8> {
    format!("GET {target} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n").into_bytes()
}
