//! The HTTP client: [`HttpClient`] — Tornado's `simple_httpclient`, with keep-alive connection pooling.
//!
//! [`HttpClient::fetch`] takes a [`ClientRequest`] (or just a URL) and resolves to a [`ClientResponse`] or a
//! [`ClientError`]. Like everything on the gale loop it is single-threaded: the client is a cheap clonable
//! handle, its futures are not `Send`, and they run with [`IOLoop::run_sync`](gale_iostream::IOLoop::run_sync)
//! or [`IOLoop::spawn`](gale_iostream::IOLoop::spawn).
//!
//! What a fetch does, in order:
//!
//! 1. **Queue** — with [`ClientOptions::max_clients`], waits for one of that many slots (FIFO).
//! 2. **Connect** — takes an idle keep-alive connection to the same host and port from the pool, checking it was
//!    not closed while idle, or connects within `connect_timeout`.
//! 3. **Request** — sends the head (`Host`, a default `User-Agent`, `Accept-Encoding: gzip` when decompressing)
//!    and the body with a `Content-Length`; reads the response head, skipping `1xx`, then the body: by length,
//!    chunked, or until the server closes. The body is collected, or handed to a
//!    [`streaming_callback`](ClientRequest::streaming_callback); gzip is inflated on the way; both sizes are
//!    bounded by `max_body_size`.
//! 4. **Reuse** — a connection whose response allows it (HTTP/1.1 without `Connection: close`, a body that was
//!    not delimited by closing, nothing left unread or unsent) goes back to the pool.
//! 5. **Redirects** — `301`, `302`, `303`, `307` and `308` with a `Location` are followed, up to
//!    `max_redirects`: `303` (and `301`/`302` after a `POST`) become a `GET` without body, as browsers do;
//!    `307` and `308` keep method and body. A redirect to another origin (host or port) drops
//!    `Authorization`, `Cookie` and `Proxy-Authorization`.
//! 6. **Status** — with `raise_error` (the default, as Tornado), a final status outside 200–299 is
//!    [`ClientError::Status`], which carries the response.
//!
//! `request_timeout` bounds all of it, redirects included; the error says in which [`TimeoutPhase`] it struck.
//!
//! A pooled connection can be closed by the server just as a request is sent on it. Such a request, when no
//! response byte came back, is sent once more on a new connection if its method is idempotent (`GET`, `HEAD`,
//! `PUT`, `DELETE`, `OPTIONS`, `TRACE`) or if not one byte of it was written.
//!
//! Only `http://` is supported: TLS is not part of gale, and `https://` URLs fail with
//! [`ClientError::UnsupportedScheme`]. `flate2` (on zlib-rs) inflates gzip bodies.
//!
//! # Examples
//!
//! ```
//! use gale_http1::{ClientRequest, HttpClient, HttpServer, IOLoop, Response, ServerOptions, service_fn};
//!
//! let io_loop = IOLoop::new()?;
//! let service = service_fn(|req| async move { Response::text(format!("{} {}", req.method(), req.target())) });
//! let server = HttpServer::new(&io_loop, service, ServerOptions::default())?;
//! server.listen(0, Some("127.0.0.1"))?;
//! let base = format!("http://127.0.0.1:{}", server.local_addrs()[0].port());
//!
//! let client = HttpClient::new();
//! let (get, post) = io_loop.run_sync(async move {
//!     let get = client.fetch(format!("{base}/hello?name=gale")).await?;
//!     let post = client.fetch(ClientRequest::post(format!("{base}/items")).body("data")).await?;
//!     Ok::<_, gale_http1::ClientError>((get, post))
//! })?;
//! assert_eq!(get.status(), 200);
//! assert_eq!(&get.body()[..], b"GET /hello?name=gale");
//! assert_eq!(&post.body()[..], b"POST /items");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod conn;
mod error;
mod gzip;
mod limit;
mod pool;
mod request;
mod response;
mod url;

pub use error::{ClientError, TimeoutPhase};
pub use request::ClientRequest;
pub use response::ClientResponse;

use std::cell::Cell;
use std::fmt;
use std::io;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use gale_iostream::ioloop::timeout;

use self::conn::{BodySink, Conn, Delivery};
use self::limit::Limiter;
use self::pool::{Pool, PoolKey};
use self::url::Url;
use crate::headers::HeaderMap;
use crate::proto::body::{BodyKind, Decoder};
use crate::proto::client::{OutgoingRequest, ResponseHead, encode_request_head};
use crate::proto::{Limits, Method};

/// The `User-Agent` sent unless a request sets its own.
pub const DEFAULT_USER_AGENT: &str = concat!("gale/", env!("CARGO_PKG_VERSION"));

/// Client settings; the per-request ones can be overridden on each [`ClientRequest`]. The defaults are
/// Tornado's where it has one.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// How long resolving and connecting may take (default 20 s).
    pub connect_timeout: Option<Duration>,
    /// How long a whole fetch may take — queueing, connecting, redirects and body included (default 20 s).
    pub request_timeout: Option<Duration>,
    /// Whether to follow redirects (default `true`).
    pub follow_redirects: bool,
    /// How many redirects to follow at most (default 5); one more is [`ClientError::TooManyRedirects`].
    pub max_redirects: usize,
    /// Whether a final status outside 200–299 is [`ClientError::Status`] (default `true`).
    pub raise_error: bool,
    /// Whether to send `Accept-Encoding: gzip` and inflate gzip bodies (default `true`).
    pub decompress_response: bool,
    /// The `User-Agent` sent unless a request sets one (default [`DEFAULT_USER_AGENT`]; `None` sends none).
    pub user_agent: Option<String>,
    /// The largest body accepted, counted as received and again as decompressed (default 100 MiB). A larger
    /// `Content-Length` fails before the body is read. Streamed bodies are bounded too.
    pub max_body_size: usize,
    /// Limits on response heads: `max_header_size` (default 64 KiB), `max_headers`, and `max_request_line`,
    /// which bounds the status line.
    pub limits: Limits,
    /// How many fetches may be in progress at once; more wait in a FIFO queue (default 10, as Tornado).
    /// `None` for no limit; `Some(0)` counts as 1.
    pub max_clients: Option<usize>,
    /// How many idle keep-alive connections to keep per host and port (default 10). `0` disables pooling:
    /// requests then say `Connection: close`.
    pub max_idle_per_host: usize,
    /// How long an idle connection is kept (default 90 s; `None`: until the server closes it).
    pub idle_timeout: Option<Duration>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            connect_timeout: Some(Duration::from_secs(20)),
            request_timeout: Some(Duration::from_secs(20)),
            follow_redirects: true,
            max_redirects: 5,
            raise_error: true,
            decompress_response: true,
            user_agent: Some(DEFAULT_USER_AGENT.to_owned()),
            max_body_size: 100 * 1024 * 1024,
            limits: Limits::default(),
            max_clients: Some(10),
            max_idle_per_host: 10,
            idle_timeout: Some(Duration::from_secs(90)),
        }
    }
}

/// An asynchronous HTTP/1.1 client with a keep-alive connection pool (Tornado's `SimpleAsyncHTTPClient`).
///
/// Cloning is cheap and clones share the pool and the `max_clients` queue. Dropping the last clone closes
/// the idle connections. See the [module docs](self) for what a fetch does.
///
/// # Examples
///
/// ```no_run
/// use gale_http1::{ClientOptions, HttpClient, IOLoop};
/// use std::time::Duration;
///
/// let client = HttpClient::with_options(ClientOptions {
///     request_timeout: Some(Duration::from_secs(5)),
///     ..ClientOptions::default()
/// });
/// let body = IOLoop::new()?.run_sync(async move {
///     match client.fetch("http://127.0.0.1:8888/").await {
///         Ok(response) => Some(response.into_body()),
///         Err(e) if e.is_timeout() || e.is_connect() => None,
///         Err(e) => panic!("{e}"),
///     }
/// });
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone)]
pub struct HttpClient {
    inner: Rc<Inner>,
}

struct Inner {
    options: ClientOptions,
    user_agent: Option<Bytes>,
    pool: Pool,
    limiter: Option<Limiter>,
}

impl fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpClient")
            .field("options", &self.inner.options)
            .field("pool", &self.inner.pool)
            .field("limiter", &self.inner.limiter)
            .finish()
    }
}

impl Default for HttpClient {
    fn default() -> Self {
        HttpClient::new()
    }
}

/// The settings of one fetch: the request's overrides over the client's options.
#[derive(Clone, Copy, Debug)]
struct Settings {
    connect_timeout: Option<Duration>,
    request_timeout: Option<Duration>,
    follow_redirects: bool,
    max_redirects: usize,
    raise_error: bool,
    decompress: bool,
    max_body_size: usize,
    limits: Limits,
}

/// A request head ready to send.
struct Encoded {
    head: Bytes,
    /// Whether the request allows keeping the connection (pooling is on and it does not say
    /// `Connection: close`).
    keep_alive: bool,
}

/// A request sent and its response head received, the body still to read.
struct Exchange {
    conn: Conn,
    key: PoolKey,
    head: ResponseHead,
    /// As [`Encoded::keep_alive`].
    keep_alive: bool,
}

/// A response read whole (its body possibly streamed or discarded).
struct Received {
    head: ResponseHead,
    body: Bytes,
    trailers: Option<HeaderMap>,
}

impl HttpClient {
    /// A client with the default [`ClientOptions`].
    pub fn new() -> HttpClient {
        HttpClient::with_options(ClientOptions::default())
    }

    /// A client with `options`.
    pub fn with_options(options: ClientOptions) -> HttpClient {
        HttpClient {
            inner: Rc::new(Inner {
                user_agent: options.user_agent.clone().map(Bytes::from),
                pool: Pool::new(options.max_idle_per_host, options.idle_timeout),
                limiter: options.max_clients.map(Limiter::new),
                options,
            }),
        }
    }

    /// The client's options.
    pub fn options(&self) -> &ClientOptions {
        &self.inner.options
    }

    /// Idle keep-alive connections in the pool right now.
    pub fn idle_connections(&self) -> usize {
        self.inner.pool.idle_count()
    }

    /// Fetches waiting for a slot under `max_clients` right now.
    pub fn queued(&self) -> usize {
        self.inner.limiter.as_ref().map_or(0, Limiter::queued)
    }

    /// Closes the idle connections (Tornado's `close`). The client stays usable.
    pub fn close(&self) {
        self.inner.pool.clear();
    }

    /// Fetches `request` — a [`ClientRequest`], or a URL to `GET` — and returns the response.
    ///
    /// Must run on a gale loop (the connection is registered with the current one).
    ///
    /// # Errors
    ///
    /// - [`ClientError::InvalidUrl`], [`ClientError::UnsupportedScheme`] (anything but `http://`) or
    ///   [`ClientError::InvalidRequest`] before anything is sent;
    /// - [`ClientError::Connect`] if no connection can be made, [`ClientError::Timeout`] when time runs out;
    /// - [`ClientError::Connection`], [`ClientError::Protocol`], [`ClientError::BodyTooLarge`] or
    ///   [`ClientError::Decompress`] if the response cannot be read;
    /// - [`ClientError::TooManyRedirects`] past `max_redirects`, and [`ClientError::Status`] for a status
    ///   outside 200–299 when `raise_error` is on — both carry the response.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use gale_http1::{HttpClient, ClientRequest};
    /// # async fn f(client: HttpClient) -> Result<(), gale_http1::ClientError> {
    /// let page = client.fetch("http://127.0.0.1:8888/index.html").await?;
    /// let missing = client.fetch(ClientRequest::get("http://127.0.0.1:8888/nope").raise_error(false)).await?;
    /// assert_eq!(missing.status(), 404);
    /// # Ok(()) }
    /// ```
    pub async fn fetch(&self, request: impl Into<ClientRequest>) -> Result<ClientResponse, ClientError> {
        let mut request = request.into();
        let started = Instant::now();
        let settings = self.settings(&request);
        let url = Url::parse(&request.url)?;
        let phase = Cell::new(TimeoutPhase::Queue);
        let work = self.run(&mut request, url, &settings, &phase, started);
        match settings.request_timeout {
            Some(limit) => timeout(limit, work).await.unwrap_or_else(|_| Err(ClientError::Timeout(phase.get()))),
            None => work.await,
        }
    }

    fn settings(&self, request: &ClientRequest) -> Settings {
        let o = &self.inner.options;
        Settings {
            connect_timeout: request.connect_timeout.unwrap_or(o.connect_timeout),
            request_timeout: request.request_timeout.unwrap_or(o.request_timeout),
            follow_redirects: request.follow_redirects.unwrap_or(o.follow_redirects),
            max_redirects: request.max_redirects.unwrap_or(o.max_redirects),
            raise_error: request.raise_error.unwrap_or(o.raise_error),
            decompress: request.decompress_response.unwrap_or(o.decompress_response),
            max_body_size: o.max_body_size,
            limits: o.limits,
        }
    }

    /// The fetch, without its overall timeout: queue, then one exchange per redirect.
    async fn run(
        &self,
        request: &mut ClientRequest,
        mut url: Url,
        s: &Settings,
        phase: &Cell<TimeoutPhase>,
        started: Instant,
    ) -> Result<ClientResponse, ClientError> {
        let _permit = match &self.inner.limiter {
            Some(limiter) => Some(limiter.acquire().await),
            None => None,
        };
        let mut redirects = 0;
        loop {
            let encoded = self.encode_head(request, &url, s)?;
            let exchange = self.start(&url, &request.method, &encoded, &request.body, s, phase).await?;
            let status = exchange.head.status();
            let location = match exchange.head.headers().get_bytes("location") {
                Some(l) if s.follow_redirects && is_redirect(status) => Some(l.to_vec()),
                _ => None,
            };
            let delivery = match (&location, request.streaming_callback.as_deref_mut()) {
                (Some(_), _) if redirects < s.max_redirects => Delivery::Discard,
                (Some(_), _) | (None, None) => Delivery::Collect(Vec::new()),
                (None, Some(callback)) => Delivery::Stream(callback),
            };
            let Received { head, body, trailers } = self.finish(exchange, &request.method, delivery, s).await?;
            let effective_url = url.to_string();
            let response = ClientResponse { head, body, trailers, effective_url, request_time: started.elapsed() };
            let Some(location) = location else {
                if s.raise_error && !response.is_success() {
                    return Err(ClientError::Status(Box::new(response)));
                }
                return Ok(response);
            };
            if redirects >= s.max_redirects {
                return Err(ClientError::TooManyRedirects(Box::new(response)));
            }
            let next = url.join(&location)?;
            log::debug!("{status} redirect from {url} to {next}");
            prepare_redirect(request, status, &url, &next);
            url = next;
            redirects += 1;
        }
    }

    /// Encodes the request head for `url`, adding the client's default fields.
    fn encode_head(&self, request: &ClientRequest, url: &Url, s: &Settings) -> Result<Encoded, ClientError> {
        let mut headers: HeaderMap = request.headers.clone();
        if let Some(agent) = &self.inner.user_agent {
            if !headers.contains("user-agent") {
                headers.append("User-Agent", agent.clone());
            }
        }
        if s.decompress && !headers.contains("accept-encoding") {
            headers.append("Accept-Encoding", "gzip");
        }
        let pooling = self.inner.pool.enabled();
        if !pooling && !headers.contains_token("connection", "close") {
            headers.append("Connection", "close");
        }
        let keep_alive = pooling && !headers.contains_token("connection", "close");
        let target = url.target();
        let host = url.authority();
        let body = BodyKind::from_length(request.body.len() as u64);
        let outgoing =
            OutgoingRequest { method: &request.method, target: &target, host: &host, headers: &headers, body };
        let mut head = BytesMut::new();
        // A body of known length needs no framing beyond the `Content-Length` written here: it is sent as is.
        encode_request_head(&outgoing, &mut head)?;
        Ok(Encoded { head: head.freeze(), keep_alive })
    }

    /// Gets a connection and sends the request on it, until the response head arrives. A request that failed
    /// on a pooled connection the server had closed is sent once more on a new one (see the module docs).
    async fn start(
        &self,
        url: &Url,
        method: &Method,
        request: &Encoded,
        body: &Bytes,
        s: &Settings,
        phase: &Cell<TimeoutPhase>,
    ) -> Result<Exchange, ClientError> {
        let key: PoolKey = (url.host().to_owned(), url.port());
        let mut fresh = false;
        loop {
            let conn = self.connection(url, &key, s, phase, fresh).await?;
            let stream = conn.stream();
            let (read_before, written_before) = (stream.bytes_read(), stream.bytes_written());
            let result = match conn::send(stream, request.head.clone(), body) {
                Ok(()) => conn::read_head(stream, s.limits).await,
                Err(e) => Err(e.into()),
            };
            match result {
                Ok(head) => return Ok(Exchange { conn, key, head, keep_alive: request.keep_alive }),
                Err(e) if conn.reused && e.is_connection() && stream.bytes_read() == read_before => {
                    let nothing_sent = stream.bytes_written() == written_before;
                    if !(nothing_sent || is_idempotent(method)) {
                        return Err(e);
                    }
                    log::debug!("pooled connection to {url} failed before a response ({e}); retrying on a new one");
                    fresh = true;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// A pooled connection to `key` (unless `fresh`), or a new one.
    async fn connection(
        &self,
        url: &Url,
        key: &PoolKey,
        s: &Settings,
        phase: &Cell<TimeoutPhase>,
        fresh: bool,
    ) -> Result<Conn, ClientError> {
        if !fresh {
            if let Some(stream) = self.inner.pool.checkout(key) {
                phase.set(TimeoutPhase::Request);
                return Ok(Conn::new(stream, true));
            }
        }
        phase.set(TimeoutPhase::Connect);
        let stream = gale_iostream::connect(url.host(), url.port(), s.connect_timeout).await.map_err(|e| {
            if e.kind() == io::ErrorKind::TimedOut {
                ClientError::Timeout(TimeoutPhase::Connect)
            } else {
                ClientError::Connect(e)
            }
        })?;
        phase.set(TimeoutPhase::Request);
        Ok(Conn::new(stream, false))
    }

    /// Reads the body of an exchange into `delivery`, and returns the connection to the pool if it may carry
    /// another request.
    async fn finish(
        &self,
        exchange: Exchange,
        method: &Method,
        delivery: Delivery<'_>,
        s: &Settings,
    ) -> Result<Received, ClientError> {
        let Exchange { conn, key, mut head, keep_alive } = exchange;
        let kind = head.body_kind(method);
        if let BodyKind::Length(n) = kind {
            if n > s.max_body_size as u64 {
                return Err(ClientError::BodyTooLarge { limit: s.max_body_size });
            }
        }
        let gzip = s.decompress
            && kind != BodyKind::Empty
            && !matches!(delivery, Delivery::Discard)
            && is_gzip(head.headers());
        if gzip {
            let headers = head.headers_mut();
            headers.remove("Content-Encoding");
            headers.remove("Content-Length");
            headers.append("X-Consumed-Content-Encoding", "gzip");
        }
        let mut sink = BodySink::new(s.max_body_size, gzip, delivery);
        let mut decoder = Decoder::new(kind);
        conn::read_body(conn.stream(), &mut decoder, &mut sink).await?;
        let body = sink.finish()?;
        let trailers = decoder.take_trailers();
        let stream = conn.stream();
        let reusable = keep_alive
            && head.keep_alive(method)
            && decoder.is_done()
            && !stream.closed()
            && stream.buffered() == 0
            && stream.write_buffer_len() == 0;
        if reusable {
            self.inner.pool.checkin(key, conn.into_stream());
        }
        Ok(Received { head, body, trailers })
    }
}

/// Statuses whose `Location` is followed.
fn is_redirect(status: u16) -> bool {
    matches!(status, 301 | 302 | 303 | 307 | 308)
}

/// Methods that may be repeated without changing the outcome (RFC 9110 §9.2.2).
fn is_idempotent(method: &Method) -> bool {
    matches!(method, Method::Get | Method::Head | Method::Put | Method::Delete | Method::Options | Method::Trace)
}

/// Whether the body is gzip and nothing else (`gzip` or the old `x-gzip`).
fn is_gzip(headers: &HeaderMap) -> bool {
    let mut codings = headers.get_all("content-encoding");
    match (codings.next(), codings.next()) {
        (Some(coding), None) => {
            let coding = crate::headers::trim_ows(coding);
            coding.eq_ignore_ascii_case(b"gzip") || coding.eq_ignore_ascii_case(b"x-gzip")
        }
        _ => false,
    }
}

/// Turns `request` into the one to send to `to` after a `status` redirect from `from`.
fn prepare_redirect(request: &mut ClientRequest, status: u16, from: &Url, to: &Url) {
    let to_get = match status {
        303 => request.method != Method::Head,
        301 | 302 => request.method == Method::Post,
        _ => false,
    };
    if to_get {
        request.method = Method::Get;
        request.body = Bytes::new();
        for name in ["Content-Length", "Content-Type", "Content-Encoding", "Transfer-Encoding"] {
            request.headers.remove(name);
        }
    }
    // The new URL names the host.
    request.headers.remove("Host");
    if !from.same_origin(to) {
        for name in ["Authorization", "Cookie", "Proxy-Authorization"] {
            request.headers.remove(name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    fn request_with_credentials(method: Method) -> ClientRequest {
        ClientRequest::new(method, "http://a/")
            .header("Authorization", "Bearer t")
            .header("Cookie", "sid=1")
            .header("Content-Type", "text/plain")
            .header("Host", "a")
            .header("X-Keep", "yes")
            .body("payload")
    }

    #[test]
    fn see_other_and_post_moved_become_get_without_body() {
        for (status, method, becomes_get) in [
            (303, Method::Post, true),
            (303, Method::Put, true),
            (303, Method::Head, false),
            (302, Method::Post, true),
            (301, Method::Post, true),
            (302, Method::Put, false),
            (307, Method::Post, false),
            (308, Method::Post, false),
        ] {
            let mut r = request_with_credentials(method.clone());
            prepare_redirect(&mut r, status, &url("http://a/"), &url("http://a/next"));
            let expected = if becomes_get { Method::Get } else { method.clone() };
            assert_eq!(r.method, expected, "{status} after {method}");
            assert_eq!(r.body.is_empty(), becomes_get, "{status} after {method}");
            assert_eq!(r.headers.contains("content-type"), !becomes_get);
            assert!(!r.headers.contains("host"));
            assert_eq!(r.headers.get("authorization"), Some("Bearer t"), "same origin keeps credentials");
        }
    }

    #[test]
    fn cross_origin_redirects_drop_credentials() {
        for to in ["http://b/", "http://a:8080/"] {
            let mut r = request_with_credentials(Method::Get);
            prepare_redirect(&mut r, 302, &url("http://a/"), &url(to));
            assert!(!r.headers.contains("authorization"), "{to}");
            assert!(!r.headers.contains("cookie"), "{to}");
            assert_eq!(r.headers.get("x-keep"), Some("yes"));
        }
    }

    #[test]
    fn only_plain_gzip_is_inflated() {
        let map = |v: &[&'static str]| v.iter().map(|v| ("Content-Encoding", *v)).collect::<HeaderMap>();
        assert!(is_gzip(&map(&["gzip"])));
        assert!(is_gzip(&map(&["X-GZIP "])));
        assert!(!is_gzip(&map(&["br"])));
        assert!(!is_gzip(&map(&["gzip", "br"])));
        assert!(!is_gzip(&map(&["gzip, br"])));
        assert!(!is_gzip(&HeaderMap::new()));
    }
}
