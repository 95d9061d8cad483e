//! [`WebSocketHandler`] — Tornado's `WebSocketHandler` — and [`WebSocketRoute`], the request handler that
//! performs the opening handshake for it and then runs the connection in a task of its own.

use crate::error::{HttpError, Result};
use crate::handler::{RequestContext, RequestHandler};
use crate::websocket::close::CloseCode;
use crate::websocket::connection::{DEFAULT_MAX_WRITE_BUFFER_SIZE, KeepAlive, Setup, WebSocket};
use crate::websocket::deflate::{DeflateConfig, PerMessageDeflate};
use crate::websocket::frame::Role;
use crate::websocket::handshake::{UpgradeRequest, origin_matches_host};
use crate::websocket::message::{DEFAULT_MAX_MESSAGE_SIZE, Event, Message, WebSocketProtocol};
use bytes::Bytes;
use gale_http1::headers::HeaderMap;
use gale_http1::{Version, ioloop};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

/// What a WebSocket endpoint does: Tornado's `WebSocketHandler`, as a trait.
///
/// A fresh handler is made per connection by the route's factory, so fields hold per-connection state;
/// shared state (the set of open sockets of a chat room) lives in `Rc`s the factory clones. Every method has
/// a default: implement [`on_message`](WebSocketHandler::on_message) and whatever else you need. Methods run
/// on the loop's thread; messages are handled one at a time, the next read only once `on_message` returned
/// (slow handlers slow their peer down instead of piling up messages).
///
/// # Examples
///
/// An echo endpoint, and our client talking to it:
///
/// ```
/// use gale_web::testing::TestServer;
/// use gale_web::websocket::{Message, WebSocket, WebSocketHandler, WebSocketRoute, websocket_connect};
/// use gale_web::Application;
///
/// struct Echo;
///
/// impl WebSocketHandler for Echo {
///     async fn on_message(&mut self, ws: &WebSocket, message: Message) {
///         let _ = ws.write_message(&message).await;
///     }
/// }
///
/// let app = Application::builder().route(r"/echo", || WebSocketRoute::new(Echo)).build().unwrap();
/// let server = TestServer::new(app);
/// let url = format!("ws://127.0.0.1:{}/echo", server.port());
/// let reply = server.run(async move {
///     let mut client = websocket_connect(&url).await.unwrap();
///     client.write_message("hello").await.unwrap();
///     client.read_message().await
/// });
/// assert_eq!(reply, Some(Message::Text("hello".into())));
/// ```
#[allow(unused_variables)]
pub trait WebSocketHandler: 'static {
    /// Runs before the handshake, with the request (Tornado's `prepare`): return an error to refuse the
    /// connection with that status, e.g. 403 when nobody is logged in.
    fn prepare(&mut self, cx: &mut RequestContext) -> impl Future<Output = Result> {
        async { Ok(()) }
    }

    /// Whether to accept a request from a page of `origin`, given the request's `Host` (empty if none).
    /// Called only when the request has an `Origin` header (browsers always send one). The default accepts
    /// only the same `host[:port]`, as Tornado; a refusal is answered with 403. Override it to allow other
    /// sites — carefully: cookies authenticate cross-site requests too.
    fn check_origin(&self, origin: &str, host: &str) -> bool {
        origin_matches_host(origin, host)
    }

    /// Picks one of the subprotocols the client offered (in its order of preference), or none.
    fn select_subprotocol(&mut self, offered: &[String]) -> Option<String> {
        None
    }

    /// The permessage-deflate settings to accept a client's offer with; `None` (the default) leaves
    /// messages uncompressed.
    fn compression(&self) -> Option<DeflateConfig> {
        None
    }

    /// The largest message accepted, after decompression (default 10 MiB, as Tornado); a larger one closes
    /// the connection with 1009.
    fn max_message_size(&self) -> usize {
        DEFAULT_MAX_MESSAGE_SIZE
    }

    /// The most bytes that may wait to be sent to a peer that reads slowly (default 16 MiB): a message that
    /// would take the queue past it while earlier ones still wait aborts the connection.
    fn max_write_buffer_size(&self) -> usize {
        DEFAULT_MAX_WRITE_BUFFER_SIZE
    }

    /// Send a ping this often to keep the connection alive and detect dead peers (default: never).
    fn ping_interval(&self) -> Option<Duration> {
        None
    }

    /// Drop the connection when a ping is not answered within this time (default: three ping intervals,
    /// at least 30 s, as Tornado).
    fn ping_timeout(&self) -> Option<Duration> {
        None
    }

    /// Called once the connection is open (after the 101 response was sent), with the request context:
    /// path arguments, arguments, cookies and the current user are all there. Messages are read once it
    /// returns. Keep `ws` (it is a cheap handle) to send from elsewhere.
    fn open(&mut self, ws: &WebSocket, cx: &mut RequestContext) -> impl Future<Output = ()> {
        async {}
    }

    /// Handles a message. The next message is read once this returns.
    fn on_message(&mut self, ws: &WebSocket, message: Message) -> impl Future<Output = ()> {
        async {}
    }

    /// Called for a ping from the peer; the pong answering it was already sent.
    fn on_ping(&mut self, data: Bytes) {}

    /// Called for a pong from the peer.
    fn on_pong(&mut self, data: Bytes) {}

    /// Called once when the connection is over, with the code and reason of the peer's close frame (`None`
    /// and `""` when it sent none: it dropped the connection, did not answer our close in time, or the
    /// connection was aborted).
    fn on_close(&mut self, code: Option<CloseCode>, reason: &str) {}
}

/// The [`RequestHandler`] of a WebSocket route: checks the upgrade request, answers `101 Switching
/// Protocols` and runs the connection with its [`WebSocketHandler`].
///
/// ```text
/// .route(r"/ws", || WebSocketRoute::new(EchoHandler))   // or: .route(r"/ws", websocket(|| EchoHandler))
/// ```
///
/// The request goes through the application's pipeline like any other: the handler's
/// [`prepare`](WebSocketHandler::prepare) runs first and may refuse it with any status (a login check: 403),
/// then the upgrade is checked — 405 for a method other than `GET` (with `Allow: GET`), 400 for a request
/// that is not an upgrade to `websocket` or not HTTP/1.1, 426 with `Sec-WebSocket-Version: 13` for another
/// protocol version, 403 when [`check_origin`](WebSocketHandler::check_origin) refuses the `Origin` — and
/// answered with `101 Switching Protocols` (with the headers the handler set, such as cookies), the
/// subprotocol the handler selected, and permessage-deflate if it offers
/// [`compression`](WebSocketHandler::compression). [`open`](WebSocketHandler::open) then runs with the
/// request context (path arguments, cookies, the current user), and the connection moves to a task of its
/// own, which calls [`on_message`](WebSocketHandler::on_message) for every message, one at a time, and
/// finally [`on_close`](WebSocketHandler::on_close). The request itself is then over: the access log shows
/// it as a 101.
pub struct WebSocketRoute<H> {
    handler: Option<H>,
}

impl<H> fmt::Debug for WebSocketRoute<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebSocketRoute").field("handler", &std::any::type_name::<H>()).finish()
    }
}

impl<H: WebSocketHandler> WebSocketRoute<H> {
    /// The route's handler for one request, running `handler` if the request is a valid upgrade.
    pub fn new(handler: H) -> Self {
        WebSocketRoute { handler: Some(handler) }
    }
}

/// A route factory making a [`WebSocketRoute`] around a fresh handler from `factory` per request:
/// `.route(r"/ws", websocket(|| EchoHandler))`.
pub fn websocket<F, H>(factory: F) -> impl Fn() -> WebSocketRoute<H> + 'static
where
    F: Fn() -> H + 'static,
    H: WebSocketHandler,
{
    move || WebSocketRoute::new(factory())
}

impl<H: WebSocketHandler> RequestHandler for WebSocketRoute<H> {
    const ALLOWED_METHODS: &'static [&'static str] = &["GET"];

    async fn prepare(&mut self, cx: &mut RequestContext) -> Result {
        match self.handler.as_mut() {
            Some(handler) => handler.prepare(cx).await,
            None => Err(HttpError::with_message(500, "websocket handler already used")),
        }
    }

    async fn get(&mut self, cx: &mut RequestContext) -> Result {
        let Some(mut handler) = self.handler.take() else {
            return Err(HttpError::with_message(500, "websocket handler already used"));
        };
        let Some(ws) = accept(&mut handler, cx).await? else {
            return Ok(());
        };
        handler.open(&ws, cx).await;
        // A graceful server shutdown closes the socket with 1001 (going away) and lets the close handshake
        // finish; the server waits for the connection like any other.
        let shutdown = cx.writer.server_shutdown();
        let watched = ws.clone();
        let watcher = ioloop::spawn(async move {
            shutdown.await;
            let _ = watched.close(Some(CloseCode::GOING_AWAY), "server shutting down");
        });
        ioloop::spawn(async move {
            run_session(handler, ws).await;
            watcher.cancel();
        });
        Ok(())
    }
}

/// Checks the upgrade and answers it: `Ok(Some(ws))` after a 101, `Ok(None)` after a handshake error
/// response, `Err` for an error page.
async fn accept<H: WebSocketHandler>(handler: &mut H, cx: &mut RequestContext) -> Result<Option<WebSocket>> {
    // A copy of the request's headers (a shared buffer and offsets), so that the context can change while
    // the upgrade borrows from them.
    let request_headers = cx.request.headers().clone();
    let version = cx.request.version();
    let headers =
        request_headers.iter().filter_map(|(n, v)| Some((std::str::from_utf8(n).ok()?, std::str::from_utf8(v).ok()?)));
    let upgrade = match UpgradeRequest::parse(cx.request.method().as_str(), headers) {
        Ok(upgrade) => upgrade,
        Err(e) => {
            log::debug!("{} {}: {e}", cx.request.method(), cx.request.target());
            cx.set_status(e.status());
            for (name, value) in e.headers() {
                cx.set_header(*name, *value);
            }
            cx.set_header("Content-Type", "text/plain; charset=UTF-8");
            cx.write(e.reason());
            cx.finish()?;
            return Ok(None);
        }
    };
    if version == Version::Http10 {
        return Err(HttpError::with_message(400, "websocket upgrade needs HTTP/1.1"));
    }
    if let Some(origin) = upgrade.origin() {
        if !handler.check_origin(origin, upgrade.host().unwrap_or("")) {
            return Err(HttpError::with_message(403, format!("cross-origin websocket from {origin} refused")));
        }
    }
    let offered: Vec<String> = upgrade.subprotocols().iter().map(|s| (*s).to_owned()).collect();
    let subprotocol = if offered.is_empty() { None } else { handler.select_subprotocol(&offered) };
    let subprotocol = subprotocol.filter(|s| offered.contains(s));
    let config = handler.compression();
    let agreed = config.as_ref().and_then(|c| c.negotiate(upgrade.extensions().iter().copied()));

    // The handler's headers (cookies set in `prepare`) go out with the 101, as in Tornado.
    let mut headers: HeaderMap = std::mem::take(&mut *cx.headers);
    let had_etag = std::mem::take(&mut cx.has_etag);
    cx.has_type = false;
    headers.remove("Content-Type");
    for (name, value) in upgrade.response_headers(subprotocol.as_deref(), agreed.as_ref()) {
        headers.insert(name, value);
    }
    cx.writer
        .write_head(101, None, &headers, None)
        .map_err(|e| HttpError::with_message(500, format!("cannot send the 101 response: {e}")))?;
    *cx.headers = headers;
    cx.has_etag = had_etag;
    cx.status = 101;
    cx.headers_written = true;
    cx.finished = true;
    // The head must reach the stream before any frame is queued on it.
    cx.writer.flush().await.map_err(|e| HttpError::with_message(500, format!("client went away: {e}")))?;

    let stream = cx.writer.stream().clone();
    let max_message_size = handler.max_message_size();
    // A frame is decoded once it is whole in the read buffer: make room for the largest one.
    let mut options = stream.options();
    options.max_buffer_size = options.max_buffer_size.max(max_message_size.saturating_add(64 * 1024));
    stream.set_options(options);

    let level = config.as_ref().map_or(6, |c| c.compression_level);
    let deflate = agreed.map(|params| PerMessageDeflate::new(Role::Server, &params, level));
    let mut protocol = WebSocketProtocol::new(Role::Server, deflate);
    protocol.set_max_message_size(max_message_size);
    let setup = Setup {
        max_write_buffer_size: handler.max_write_buffer_size(),
        keep_alive: KeepAlive::new(handler.ping_interval(), handler.ping_timeout()),
        subprotocol,
    };
    Ok(Some(WebSocket::new(stream, protocol, setup)))
}

/// The connection's task: dispatches events to the handler until the connection is over, then `on_close`.
/// A panicking handler aborts its connection (as an exception does in Tornado) and still gets `on_close`.
async fn run_session<H: WebSocketHandler>(mut handler: H, ws: WebSocket) {
    // The dispatching future (and its borrow of the handler) is gone once this statement ends, even when
    // it panicked.
    let outcome = CatchUnwind { future: Box::pin(dispatch(&mut handler, ws.clone())) }.await;
    if let Err(message) = outcome {
        log::error!("websocket handler panicked: {message}");
        ws.abort();
    }
    let (code, reason) = (ws.close_code(), ws.close_reason().unwrap_or_default());
    let on_close = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| handler.on_close(code, &reason)));
    if on_close.is_err() {
        log::error!("websocket handler panicked in on_close");
    }
}

async fn dispatch<H: WebSocketHandler>(handler: &mut H, ws: WebSocket) {
    while let Some(event) = ws.next_event().await {
        match event {
            Event::Message(message) => handler.on_message(&ws, message).await,
            Event::Ping(data) => handler.on_ping(data),
            Event::Pong(data) => handler.on_pong(data),
            Event::Close { .. } => {}
        }
    }
}

/// Runs a future, turning a panic into `Err(message)`; the future is dropped with the panic.
struct CatchUnwind<F: Future> {
    future: Pin<Box<F>>,
}

impl<F: Future> Future for CatchUnwind<F> {
    type Output = std::result::Result<F::Output, String>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let future = self.future.as_mut();
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| future.poll(cx))) {
            Ok(poll) => poll.map(Ok),
            Err(payload) => {
                let message = payload
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "non-string panic payload".to_owned());
                Poll::Ready(Err(message))
            }
        }
    }
}
