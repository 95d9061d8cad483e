//! The client: [`websocket_connect`] — Tornado's `websocket_connect` — and [`WebSocketClient`].
//!
//! Connecting opens a TCP connection ([`gale_http1::iostream::connect`]), sends the `GET` upgrade request
//! made by [`ClientHandshake`], parses the answer with the HTTP client's response parser and checks it: a
//! `101` with the right accept key, a subprotocol and extensions we offered. Bytes that came after the 101
//! are the server's first frames. Only `ws://` URLs are supported (there is no TLS in gale).

use crate::websocket::close::CloseCode;
use crate::websocket::connection::MessageRef;
use crate::websocket::connection::{
    DEFAULT_MAX_WRITE_BUFFER_SIZE, KeepAlive, Setup, WebSocket, WebSocketError, WriteMessage,
};
use crate::websocket::deflate::{DeflateConfig, PerMessageDeflate};
use crate::websocket::frame::Role;
use crate::websocket::handshake::{ClientHandshake, ResponseError};
use crate::websocket::message::{DEFAULT_MAX_MESSAGE_SIZE, Event, Message, WebSocketProtocol};
use bytes::BytesMut;
use gale_http1::headers::HeaderMap;
use gale_http1::proto::body::BodyKind;
use gale_http1::proto::client::{OutgoingRequest, ResponseParser, encode_request_head};
use gale_http1::proto::{Limits, Method, ParseError};
use gale_http1::{ioloop, iostream};
use std::fmt;
use std::io;
use std::time::Duration;

/// The default bound on connecting and the opening handshake together: 20 s, as Tornado's `connect_timeout`.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

/// How a client connects (Tornado's `websocket_connect` arguments).
#[derive(Clone, Debug)]
pub struct ConnectOptions {
    /// Subprotocols to offer, in order of preference.
    pub subprotocols: Vec<String>,
    /// Offer permessage-deflate with these settings; `None` (the default) does not offer it.
    pub compression: Option<DeflateConfig>,
    /// Bound on the TCP connection and the handshake together (default 20 s); `None` waits as long as it
    /// takes.
    pub connect_timeout: Option<Duration>,
    /// The largest message accepted, after decompression (default 10 MiB); larger ones close with 1009.
    pub max_message_size: usize,
    /// The most bytes that may wait to be sent (default 16 MiB); see [`WebSocket`].
    pub max_write_buffer_size: usize,
    /// Send a ping this often (default: never).
    pub ping_interval: Option<Duration>,
    /// Drop the connection when a ping is not answered in time (default: three intervals, at least 30 s).
    pub ping_timeout: Option<Duration>,
    /// More request headers, e.g. `Origin`, `Cookie` or `Authorization`.
    pub headers: Vec<(String, String)>,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            subprotocols: Vec::new(),
            compression: None,
            connect_timeout: Some(DEFAULT_CONNECT_TIMEOUT),
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            max_write_buffer_size: DEFAULT_MAX_WRITE_BUFFER_SIZE,
            ping_interval: None,
            ping_timeout: None,
            headers: Vec::new(),
        }
    }
}

/// Why connecting failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum ConnectError {
    /// The URL is not a `ws://` URL we can connect to.
    InvalidUrl(String),
    /// The TCP connection failed, or the connection broke during the handshake.
    Io(io::Error),
    /// The connection and handshake took longer than the connect timeout.
    TimedOut,
    /// The server's answer is not valid HTTP.
    Http(ParseError),
    /// The server answered with another status than 101 (e.g. 403, 404, 426).
    Rejected {
        /// The status.
        status: u16,
    },
    /// The server's 101 breaks the handshake rules (wrong accept key, a subprotocol or extension we did not
    /// offer).
    Handshake(ResponseError),
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectError::InvalidUrl(why) => write!(f, "invalid websocket URL: {why}"),
            ConnectError::Io(e) => write!(f, "websocket connection failed: {e}"),
            ConnectError::TimedOut => f.write_str("websocket connection timed out"),
            ConnectError::Http(e) => write!(f, "invalid HTTP response to the websocket upgrade: {e}"),
            ConnectError::Rejected { status } => write!(f, "websocket upgrade refused with status {status}"),
            ConnectError::Handshake(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for ConnectError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ConnectError::Io(e) => Some(e),
            ConnectError::Handshake(e) => Some(e),
            _ => None,
        }
    }
}

impl ConnectError {
    /// The status of a refused upgrade.
    pub fn status(&self) -> Option<u16> {
        match self {
            ConnectError::Rejected { status } => Some(*status),
            _ => None,
        }
    }
}

/// A `ws://` URL taken apart.
#[derive(Debug, PartialEq, Eq)]
struct WsUrl {
    /// The host to connect to (an IPv6 literal without brackets).
    host: String,
    port: u16,
    /// `host[:port]` as written, for the `Host` header.
    authority: String,
    /// Path and query.
    target: String,
}

fn parse_url(url: &str) -> Result<WsUrl, ConnectError> {
    let invalid = |why: &str| ConnectError::InvalidUrl(format!("{why}: {url:?}"));
    let (scheme, rest) = url.split_once("://").ok_or_else(|| invalid("no scheme"))?;
    if scheme.eq_ignore_ascii_case("wss") {
        return Err(invalid("wss:// is not supported (no TLS)"));
    }
    if !scheme.eq_ignore_ascii_case("ws") {
        return Err(invalid("the scheme is not ws://"));
    }
    let rest = rest.split('#').next().unwrap_or_default();
    let split = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, target) = rest.split_at(split);
    let target = match target {
        "" => "/".to_owned(),
        t if t.starts_with('?') => format!("/{t}"),
        t => t.to_owned(),
    };
    if authority.is_empty() || authority.contains('@') {
        return Err(invalid("no host, or credentials in the URL"));
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']').ok_or_else(|| invalid("unclosed IPv6 literal"))?;
        (host, after.strip_prefix(':'))
    } else {
        match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    let port = match port {
        None => 80,
        Some(p) => p.parse().map_err(|_| invalid("bad port"))?,
    };
    if host.is_empty() {
        return Err(invalid("empty host"));
    }
    Ok(WsUrl { host: host.to_owned(), port, authority: authority.to_owned(), target })
}

/// Connects to a `ws://` URL with default options.
///
/// # Errors
///
/// See [`ConnectError`].
///
/// # Examples
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use gale_web::websocket::{Message, websocket_connect};
///
/// let mut client = websocket_connect("ws://127.0.0.1:8888/echo").await?;
/// client.write_message("hello").await?;
/// while let Some(message) = client.read_message().await {
///     if let Message::Text(text) = message {
///         println!("{text}");
///     }
/// }
/// # Ok(())
/// # }
/// ```
pub async fn websocket_connect(url: &str) -> Result<WebSocketClient, ConnectError> {
    websocket_connect_with(url, ConnectOptions::default()).await
}

/// Connects to a `ws://` URL with `options`.
///
/// # Errors
///
/// See [`ConnectError`].
pub async fn websocket_connect_with(url: &str, options: ConnectOptions) -> Result<WebSocketClient, ConnectError> {
    let url = parse_url(url)?;
    match options.connect_timeout {
        Some(limit) => ioloop::timeout(limit, connect(url, options)).await.map_err(|_| ConnectError::TimedOut)?,
        None => connect(url, options).await,
    }
}

async fn connect(url: WsUrl, options: ConnectOptions) -> Result<WebSocketClient, ConnectError> {
    let stream = iostream::connect(&url.host, url.port, None).await.map_err(ConnectError::Io)?;
    let offered: Vec<&str> = options.subprotocols.iter().map(String::as_str).collect();
    let handshake = ClientHandshake::new(&offered, options.compression.clone());
    let mut headers = HeaderMap::new();
    for (name, value) in handshake.request_headers() {
        headers.append(name, value);
    }
    for (name, value) in &options.headers {
        headers.append(name.clone(), value.clone());
    }
    let mut head = BytesMut::new();
    let request = OutgoingRequest {
        method: &Method::Get,
        target: &url.target,
        host: &url.authority,
        headers: &headers,
        body: BodyKind::Empty,
    };
    encode_request_head(&request, &mut head)
        .map_err(|e| ConnectError::InvalidUrl(format!("cannot make the request: {e}")))?;
    stream.write(head.freeze()).await.map_err(|e| ConnectError::Io(e.into()))?;

    let mut parser = ResponseParser::new(Limits::default());
    let response = loop {
        match stream.with_read_buf(|buf| parser.parse(buf)) {
            Ok(Some(head)) if head.is_interim() => continue,
            Ok(Some(head)) => break head,
            Ok(None) => {}
            Err(e) => return Err(ConnectError::Http(e)),
        }
        match stream.fill().await {
            Ok(0) => {
                let eof = io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed during the handshake");
                return Err(ConnectError::Io(eof));
            }
            Ok(_) => {}
            Err(e) => return Err(ConnectError::Io(e.into())),
        }
    };
    if response.status() != 101 {
        stream.close();
        return Err(ConnectError::Rejected { status: response.status() });
    }
    let response_headers = response
        .headers()
        .iter()
        .filter_map(|(n, v)| Some((std::str::from_utf8(n).ok()?, std::str::from_utf8(v).ok()?)));
    let accepted = handshake.validate_response(response.status(), response_headers).map_err(|e| {
        stream.close();
        ConnectError::Handshake(e)
    })?;

    let mut stream_options = stream.options();
    stream_options.max_buffer_size =
        stream_options.max_buffer_size.max(options.max_message_size.saturating_add(64 * 1024));
    stream.set_options(stream_options);
    let level = options.compression.as_ref().map_or(6, |c| c.compression_level);
    let deflate = accepted.deflate.map(|params| PerMessageDeflate::new(Role::Client, &params, level));
    let mut protocol = WebSocketProtocol::new(Role::Client, deflate);
    protocol.set_max_message_size(options.max_message_size);
    let setup = Setup {
        max_write_buffer_size: options.max_write_buffer_size,
        keep_alive: KeepAlive::new(options.ping_interval, options.ping_timeout),
        subprotocol: accepted.subprotocol,
    };
    Ok(WebSocketClient { ws: WebSocket::new(stream, protocol, setup) })
}

/// A client connection (Tornado's `WebSocketClientConnection`): read with
/// [`read_message`](WebSocketClient::read_message), send through the same methods as a [`WebSocket`].
///
/// Reading drives the connection: pings are answered, keep-alive pings sent, and the closing handshake
/// completed only while somebody waits in `read_message`. After [`close`](WebSocketClient::close), keep
/// reading until it returns `None` for a clean close.
pub struct WebSocketClient {
    ws: WebSocket,
}

impl fmt::Debug for WebSocketClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebSocketClient").field("ws", &self.ws).finish()
    }
}

impl WebSocketClient {
    /// The next message, or `None` once the connection is closed (then see
    /// [`close_code`](WebSocketClient::close_code)). Pings and pongs are handled on the way.
    pub async fn read_message(&mut self) -> Option<Message> {
        loop {
            match self.ws.next_event().await? {
                Event::Message(message) => return Some(message),
                Event::Ping(_) | Event::Pong(_) | Event::Close { .. } => {}
            }
        }
    }

    /// The next message, ping or pong, or `None` once the connection is closed. Pings were already answered.
    pub async fn read_event(&mut self) -> Option<Event> {
        self.ws.next_event().await
    }

    /// Sends a message; see [`WebSocket::write_message`].
    pub fn write_message<'a>(&self, message: impl Into<MessageRef<'a>>) -> WriteMessage {
        self.ws.write_message(message)
    }

    /// Sends a ping; see [`WebSocket::ping`].
    ///
    /// # Errors
    ///
    /// As [`WebSocket::ping`].
    pub fn ping(&self, data: &[u8]) -> Result<(), WebSocketError> {
        self.ws.ping(data)
    }

    /// Starts the closing handshake; see [`WebSocket::close`].
    ///
    /// # Errors
    ///
    /// As [`WebSocket::close`].
    pub fn close(&self, code: Option<CloseCode>, reason: &str) -> Result<(), WebSocketError> {
        self.ws.close(code, reason)
    }

    /// Whether messages can no longer be sent.
    pub fn is_closed(&self) -> bool {
        self.ws.is_closed()
    }

    /// The status code of the server's close frame.
    pub fn close_code(&self) -> Option<CloseCode> {
        self.ws.close_code()
    }

    /// The reason in the server's close frame.
    pub fn close_reason(&self) -> Option<String> {
        self.ws.close_reason()
    }

    /// The subprotocol the server selected.
    pub fn selected_subprotocol(&self) -> Option<&str> {
        self.ws.selected_subprotocol()
    }

    /// Whether permessage-deflate was agreed.
    pub fn is_compressed(&self) -> bool {
        self.ws.is_compressed()
    }

    /// A handle for sending from other tasks.
    pub fn handle(&self) -> WebSocket {
        self.ws.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(host: &str, port: u16, authority: &str, target: &str) -> WsUrl {
        WsUrl { host: host.into(), port, authority: authority.into(), target: target.into() }
    }

    #[test]
    fn ws_urls_are_taken_apart() {
        assert_eq!(parse_url("ws://example.com").unwrap(), url("example.com", 80, "example.com", "/"));
        assert_eq!(parse_url("WS://a:8888/chat?room=1#x").unwrap(), url("a", 8888, "a:8888", "/chat?room=1"));
        assert_eq!(parse_url("ws://[::1]:9000?x").unwrap(), url("::1", 9000, "[::1]:9000", "/?x"));
    }

    #[test]
    fn unusable_urls_are_refused() {
        for bad in ["wss://a/", "http://a/", "a/b", "ws:///x", "ws://u:p@a/", "ws://a:http/", "ws://[::1/"] {
            assert!(matches!(parse_url(bad), Err(ConnectError::InvalidUrl(_))), "{bad}");
        }
    }
}
