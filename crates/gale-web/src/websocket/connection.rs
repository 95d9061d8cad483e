//! [`WebSocket`]: one open connection on an [`IOStream`] — sending, the read loop with keep-alive pings, and
//! the closing handshake — shared by the server's handler session and the client.

use crate::websocket::close::CloseCode;
use crate::websocket::frame::Role;
use crate::websocket::message::{Event, Message, SendError, State, WebSocketProtocol};
use bytes::Bytes;
use gale_http1::ioloop::{self, Sleep};
use gale_http1::iostream::{IOStream, StreamError, WriteFuture};
use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// How long the peer has to answer our close frame, and how long a finished connection waits for the
/// other end's end of stream (Tornado waits 5 s too).
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// The default cap on bytes waiting to be sent to one peer: 16 MiB.
pub const DEFAULT_MAX_WRITE_BUFFER_SIZE: usize = 16 * 1024 * 1024;

/// Why a send failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum WebSocketError {
    /// The connection is closing or closed (Tornado's `WebSocketClosedError`).
    Closed,
    /// The peer reads too slowly: the bytes waiting to be sent passed the write buffer limit, and the
    /// connection was aborted.
    WriteBufferFull,
    /// The frame could not be built: a control payload over 125 bytes, a close code that may not be sent, a
    /// close reason over 123 bytes, or a compressor failure.
    Send(SendError),
}

impl fmt::Display for WebSocketError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WebSocketError::Closed => f.write_str("websocket is closed"),
            WebSocketError::WriteBufferFull => f.write_str("websocket aborted: the peer is not reading"),
            WebSocketError::Send(e) => write!(f, "cannot send: {e}"),
        }
    }
}

impl std::error::Error for WebSocketError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            WebSocketError::Send(e) => Some(e),
            _ => None,
        }
    }
}

impl From<SendError> for WebSocketError {
    fn from(e: SendError) -> Self {
        match e {
            SendError::Closed => WebSocketError::Closed,
            other => WebSocketError::Send(other),
        }
    }
}

/// A message to send, borrowed: text or binary. Made from `&str`, `&String`, `&[u8]`, `&Vec<u8>`, `&Bytes`
/// and `&Message`, so one value can be sent to many sockets without copies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageRef<'a> {
    /// A text message.
    Text(&'a str),
    /// A binary message.
    Binary(&'a [u8]),
}

impl<'a> From<&'a str> for MessageRef<'a> {
    fn from(text: &'a str) -> Self {
        MessageRef::Text(text)
    }
}

impl<'a> From<&'a String> for MessageRef<'a> {
    fn from(text: &'a String) -> Self {
        MessageRef::Text(text)
    }
}

impl<'a> From<&'a [u8]> for MessageRef<'a> {
    fn from(data: &'a [u8]) -> Self {
        MessageRef::Binary(data)
    }
}

impl<'a, const N: usize> From<&'a [u8; N]> for MessageRef<'a> {
    fn from(data: &'a [u8; N]) -> Self {
        MessageRef::Binary(data)
    }
}

impl<'a> From<&'a Vec<u8>> for MessageRef<'a> {
    fn from(data: &'a Vec<u8>) -> Self {
        MessageRef::Binary(data)
    }
}

impl<'a> From<&'a Bytes> for MessageRef<'a> {
    fn from(data: &'a Bytes) -> Self {
        MessageRef::Binary(data)
    }
}

impl<'a> From<&'a Message> for MessageRef<'a> {
    fn from(message: &'a Message) -> Self {
        match message {
            Message::Text(text) => MessageRef::Text(text),
            Message::Binary(data) => MessageRef::Binary(data),
        }
    }
}

impl From<&str> for Message {
    fn from(text: &str) -> Self {
        Message::Text(text.to_owned())
    }
}

impl From<String> for Message {
    fn from(text: String) -> Self {
        Message::Text(text)
    }
}

impl From<&[u8]> for Message {
    fn from(data: &[u8]) -> Self {
        Message::Binary(Bytes::copy_from_slice(data))
    }
}

impl From<Vec<u8>> for Message {
    fn from(data: Vec<u8>) -> Self {
        Message::Binary(Bytes::from(data))
    }
}

impl From<Bytes> for Message {
    fn from(data: Bytes) -> Self {
        Message::Binary(data)
    }
}

/// Keep-alive pings: one every `interval`; no pong within `timeout` of a ping aborts the connection.
#[derive(Clone, Copy, Debug)]
pub(crate) struct KeepAlive {
    pub(crate) interval: Duration,
    pub(crate) timeout: Duration,
}

impl KeepAlive {
    /// Tornado's rule: pings every `interval`, and a timeout of three intervals but at least 30 s unless
    /// `timeout` says otherwise.
    pub(crate) fn new(interval: Option<Duration>, timeout: Option<Duration>) -> Option<KeepAlive> {
        let interval = interval.filter(|i| !i.is_zero())?;
        let timeout = timeout.unwrap_or_else(|| (interval * 3).max(Duration::from_secs(30)));
        Some(KeepAlive { interval, timeout })
    }
}

/// How a connection is set up, beyond its stream and protocol.
#[derive(Clone, Debug)]
pub(crate) struct Setup {
    pub(crate) max_write_buffer_size: usize,
    pub(crate) keep_alive: Option<KeepAlive>,
    pub(crate) subprotocol: Option<String>,
}

/// The timers the reader watches.
struct Timers {
    /// When our close frame must have been answered.
    close_deadline: Option<Instant>,
    /// When the next keep-alive ping is due.
    next_ping: Option<Instant>,
    /// When the pong to our last keep-alive ping must have arrived.
    pong_deadline: Option<Instant>,
    /// The one timer armed for the earliest of them.
    sleep: Option<Sleep>,
}

impl Timers {
    fn earliest(&self) -> Option<Instant> {
        [self.close_deadline, self.next_ping, self.pong_deadline].into_iter().flatten().min()
    }
}

struct Inner {
    stream: IOStream,
    protocol: RefCell<WebSocketProtocol>,
    setup: Setup,
    /// Set by senders that need the reader's attention (a close started, the connection aborted).
    notified: Cell<bool>,
    reader: RefCell<Option<Waker>>,
    timers: RefCell<Timers>,
    /// The peer's close frame: its code and reason.
    peer_close: RefCell<Option<(Option<CloseCode>, String)>>,
    /// The reader has seen the end: the stream is closed for good.
    finished: Cell<bool>,
}

/// One WebSocket connection: send messages, pings and the close frame; learn how it closed.
///
/// Clones are handles to the same connection, usable from any task on its loop (for broadcasting: keep a
/// handle per socket in `Rc<RefCell<…>>` shared state). The handler's methods receive one; a
/// [`WebSocketClient`](crate::websocket::WebSocketClient) gives one with
/// [`handle`](crate::websocket::WebSocketClient::handle).
///
/// Exactly one task reads: the server's session or the owner of a
/// [`WebSocketClient`](crate::websocket::WebSocketClient). Reading drives everything that is not a send:
/// answering pings, keep-alive pings and their timeout, the closing handshake and its timeout.
///
/// # Closing
///
/// RFC 6455 §7 has the server close the TCP connection. When the peer's close frame arrives first, its
/// reply is queued at once; when we close first ([`close`](WebSocket::close)), the peer has
/// [`CLOSE_TIMEOUT`] to answer. Once both close frames are exchanged (or the peer broke the protocol and our
/// close frame names the error), a server flushes, shuts down its sending side, waits briefly for the peer's
/// end of stream and closes; a client waits for the server to close first, with the same bound.
///
/// # Back-pressure
///
/// Sends never wait: a frame is queued on the stream and sent in the background, and the future of a send
/// resolves once the kernel took it. A peer that does not read would let the queue grow without bound, so
/// it is capped: a frame that would take the queue past the write buffer limit
/// ([`WebSocketHandler::max_write_buffer_size`](crate::websocket::WebSocketHandler::max_write_buffer_size),
/// default 16 MiB) while earlier bytes still wait aborts the connection
/// ([`WebSocketError::WriteBufferFull`]). Await your sends to stay under it; broadcast with
/// [`queue_message`](WebSocket::queue_message) so that one slow peer does not hold up the others.
///
/// # Examples
///
/// ```
/// use gale_web::websocket::WebSocket;
///
/// /// Sends `text` to every open socket; returns how many are gone.
/// fn broadcast(sockets: &[WebSocket], text: &str) -> usize {
///     sockets.iter().filter(|ws| ws.queue_message(text).is_err()).count()
/// }
///
/// async fn reply(ws: &WebSocket, text: &str) {
///     // Queued at once; awaiting gives back-pressure and tells whether it was sent.
///     if ws.write_message(text).await.is_err() {
///         println!("the peer has gone");
///     }
/// }
/// ```
#[derive(Clone)]
pub struct WebSocket {
    inner: Rc<Inner>,
}

impl fmt::Debug for WebSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebSocket")
            .field("role", &self.inner.protocol.borrow().role())
            .field("state", &self.inner.protocol.borrow().state())
            .field("closed", &self.is_closed())
            .finish()
    }
}

impl WebSocket {
    pub(crate) fn new(stream: IOStream, protocol: WebSocketProtocol, setup: Setup) -> WebSocket {
        let next_ping = setup.keep_alive.map(|k| ioloop::now() + k.interval);
        let timers = Timers { close_deadline: None, next_ping, pong_deadline: None, sleep: None };
        WebSocket {
            inner: Rc::new(Inner {
                stream,
                protocol: RefCell::new(protocol),
                setup,
                notified: Cell::new(false),
                reader: RefCell::new(None),
                timers: RefCell::new(timers),
                peer_close: RefCell::new(None),
                finished: Cell::new(false),
            }),
        }
    }

    // ---- sending ------------------------------------------------------------------------------------------

    /// Sends a text message (`&str`, `&String`) or a binary one (`&[u8]`, `&Vec<u8>`, `&Bytes`), or a
    /// received `&Message`; compressed if permessage-deflate was agreed (Tornado's `write_message`).
    ///
    /// The frame is queued at once, so the message is sent even if the future is dropped; the future
    /// resolves once the kernel took it.
    ///
    /// # Errors
    ///
    /// [`WebSocketError::Closed`] once a close frame was sent or received or the connection is gone;
    /// [`WebSocketError::WriteBufferFull`] when the peer does not read (the connection is aborted).
    pub fn write_message<'a>(&self, message: impl Into<MessageRef<'a>>) -> WriteMessage {
        let result = self.send(|p| match message.into() {
            MessageRef::Text(text) => p.send_text(text),
            MessageRef::Binary(data) => p.send_binary(data),
        });
        WriteMessage::new(result)
    }

    /// Queues a message without waiting for it to be sent — for broadcasts, where one slow peer must not
    /// hold up the others. The write buffer limit still applies to each peer.
    ///
    /// # Errors
    ///
    /// As [`write_message`](WebSocket::write_message), known at once.
    pub fn queue_message<'a>(&self, message: impl Into<MessageRef<'a>>) -> Result<(), WebSocketError> {
        self.send(|p| match message.into() {
            MessageRef::Text(text) => p.send_text(text),
            MessageRef::Binary(data) => p.send_binary(data),
        })
        .map(|_write| ())
    }

    /// Sends a ping with `data` (at most 125 bytes); the peer's pong goes to the handler's `on_pong`.
    ///
    /// # Errors
    ///
    /// [`WebSocketError::Send`] for a payload over 125 bytes; as [`write_message`](WebSocket::write_message).
    pub fn ping(&self, data: &[u8]) -> Result<(), WebSocketError> {
        self.send(|p| p.ping(data)).map(|_write| ())
    }

    /// Starts the closing handshake with `code` (default 1000 when a reason is given, none otherwise) and
    /// `reason` (at most 123 bytes). The peer has [`CLOSE_TIMEOUT`] to answer before the connection is
    /// dropped. Closing an already closing or closed connection does nothing.
    ///
    /// # Errors
    ///
    /// [`WebSocketError::Send`] for a code that may not be sent (see
    /// [`CloseCode::is_valid_on_wire`]) or a reason that is too long.
    pub fn close(&self, code: Option<CloseCode>, reason: &str) -> Result<(), WebSocketError> {
        if self.inner.protocol.borrow().state() != State::Open || self.inner.stream.closed() {
            return Ok(());
        }
        match self.send(|p| p.close(code, reason)) {
            Ok(_) => {}
            Err(WebSocketError::Closed) => return Ok(()),
            Err(e) => return Err(e),
        }
        self.inner.timers.borrow_mut().close_deadline = Some(ioloop::now() + CLOSE_TIMEOUT);
        self.notify_reader();
        Ok(())
    }

    /// Runs one send operation of the protocol and queues its output.
    fn send(
        &self,
        op: impl FnOnce(&mut WebSocketProtocol) -> Result<(), SendError>,
    ) -> Result<WriteFuture, WebSocketError> {
        if self.inner.stream.closed() {
            return Err(WebSocketError::Closed);
        }
        let output = {
            let mut protocol = self.inner.protocol.borrow_mut();
            op(&mut protocol)?;
            protocol.take_output()
        };
        self.queue(output)
    }

    /// Queues encoded frames on the stream, enforcing the write buffer limit.
    fn queue(&self, output: Bytes) -> Result<WriteFuture, WebSocketError> {
        let stream = &self.inner.stream;
        let waiting = stream.write_buffer_len();
        if waiting > 0 && waiting + output.len() > self.inner.setup.max_write_buffer_size {
            log::warn!("aborting websocket: the peer is not reading ({waiting} bytes wait to be sent)");
            self.abort();
            return Err(WebSocketError::WriteBufferFull);
        }
        match stream.queue_write(output) {
            Ok(()) => Ok(stream.flush()),
            Err(StreamError::WriteBufferFull) => {
                log::warn!("aborting websocket: the stream's write buffer is full");
                self.abort();
                Err(WebSocketError::WriteBufferFull)
            }
            Err(_) => Err(WebSocketError::Closed),
        }
    }

    /// Sends what the protocol queued by itself (pongs, close replies); errors surface on the next read.
    fn send_protocol_output(&self) {
        let output = {
            let mut protocol = self.inner.protocol.borrow_mut();
            if !protocol.has_output() {
                return;
            }
            protocol.take_output()
        };
        if !self.inner.stream.closed() {
            let _ = self.queue(output);
        }
    }

    /// Drops the connection without a closing handshake.
    pub(crate) fn abort(&self) {
        self.inner.stream.close();
        self.notify_reader();
    }

    fn notify_reader(&self) {
        self.inner.notified.set(true);
        if let Some(waker) = self.inner.reader.borrow().as_ref() {
            waker.wake_by_ref();
        }
    }

    // ---- state --------------------------------------------------------------------------------------------

    /// Whether messages can no longer be sent: a close frame was sent or received, or the connection is gone.
    pub fn is_closed(&self) -> bool {
        self.inner.stream.closed() || self.inner.protocol.borrow().state() != State::Open
    }

    /// The status code of the peer's close frame (Tornado's `close_code`): `None` before it arrives, for a
    /// close frame without a code, and when the connection dropped without one.
    pub fn close_code(&self) -> Option<CloseCode> {
        self.inner.peer_close.borrow().as_ref().and_then(|(code, _)| *code)
    }

    /// The reason in the peer's close frame (Tornado's `close_reason`), if one arrived.
    pub fn close_reason(&self) -> Option<String> {
        self.inner.peer_close.borrow().as_ref().map(|(_, reason)| reason.clone())
    }

    /// The subprotocol agreed in the handshake.
    pub fn selected_subprotocol(&self) -> Option<&str> {
        self.inner.setup.subprotocol.as_deref()
    }

    /// Whether messages are compressed (permessage-deflate was agreed).
    pub fn is_compressed(&self) -> bool {
        self.inner.protocol.borrow().is_compressed()
    }

    /// Bytes queued for the peer and not yet taken by the kernel.
    pub fn write_buffer_len(&self) -> usize {
        self.inner.stream.write_buffer_len()
    }

    /// Bytes received on the TCP connection since it opened (the handshake included; frames as they came:
    /// compressed, masked), for metrics.
    pub fn bytes_received(&self) -> u64 {
        self.inner.stream.bytes_read()
    }

    /// Bytes handed to the kernel since the connection opened (the 101 response or upgrade request
    /// included), for metrics.
    pub fn bytes_sent(&self) -> u64 {
        self.inner.stream.bytes_written()
    }

    /// Resolves once the TCP connection is closed, by either side or by an abort.
    pub async fn wait_closed(&self) {
        self.inner.stream.closed_future().await;
    }

    // ---- reading ------------------------------------------------------------------------------------------

    /// The next message, ping or pong from the peer, or `None` once the connection is over (the closing
    /// handshake done or timed out, the peer gone, or the connection aborted). Drives everything that is not
    /// a send; exactly one task may call it.
    pub(crate) async fn next_event(&self) -> Option<Event> {
        let inner = &*self.inner;
        loop {
            if inner.finished.get() {
                return None;
            }
            let received = {
                let mut protocol = inner.protocol.borrow_mut();
                inner.stream.with_read_buf(|buf| protocol.receive(buf))
            };
            self.send_protocol_output();
            match received {
                Ok(Some(Event::Close { code, reason })) => {
                    log::debug!("websocket close frame received: {code:?} {reason:?}");
                    *inner.peer_close.borrow_mut() = Some((code, reason));
                }
                Ok(Some(event)) => {
                    if let Event::Pong(_) = event {
                        inner.timers.borrow_mut().pong_deadline = None;
                    }
                    return Some(event);
                }
                Ok(None) => {}
                Err(error) => log::debug!("websocket failed: {error}"),
            }
            if inner.protocol.borrow().state() == State::Closed {
                self.finish().await;
                return self.done();
            }
            if inner.stream.closed() {
                // The peer left without a closing handshake, or we aborted.
                return self.done();
            }
            match self.wait().await {
                Wake::Input => {}
                Wake::Timer => {
                    if !self.on_timer() {
                        self.abort();
                        return self.done();
                    }
                }
            }
        }
    }

    /// Waits for input, a due timer, or a note from a sender.
    async fn wait(&self) -> Wake {
        let inner = &*self.inner;
        poll_fn(|cx| {
            {
                let mut reader = inner.reader.borrow_mut();
                if !reader.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                    *reader = Some(cx.waker().clone());
                }
            }
            if inner.notified.replace(false) {
                return Poll::Ready(Wake::Input);
            }
            if inner.stream.poll_fill(cx).is_ready() {
                // Data, end of stream or an error: the loop decodes what there is and looks at the stream.
                return Poll::Ready(Wake::Input);
            }
            if poll_timers(&mut inner.timers.borrow_mut(), cx) {
                return Poll::Ready(Wake::Timer);
            }
            Poll::Pending
        })
        .await
    }

    /// Handles due timers; `false` when the connection must be dropped.
    fn on_timer(&self) -> bool {
        let now = Instant::now();
        let mut timers = self.inner.timers.borrow_mut();
        if timers.close_deadline.is_some_and(|d| d <= now) {
            log::debug!("websocket peer did not answer our close frame in time");
            return false;
        }
        if timers.pong_deadline.is_some_and(|d| d <= now) {
            log::info!("websocket ping timed out: closing the connection");
            return false;
        }
        if let (Some(due), Some(keep_alive)) = (timers.next_ping, self.inner.setup.keep_alive) {
            if due <= now {
                timers.next_ping = Some(now + keep_alive.interval);
                if timers.pong_deadline.is_none() {
                    timers.pong_deadline = Some(now + keep_alive.timeout);
                }
                drop(timers);
                // Fails only once the connection is closing, when no more pings are due anyway.
                let _ = self.ping(b"");
            }
        }
        true
    }

    /// Ends a connection whose closing handshake is over (or that failed): see the module docs.
    async fn finish(&self) {
        let stream = &self.inner.stream;
        // Only the closing handshake's timeout applies from here on.
        {
            let mut timers = self.inner.timers.borrow_mut();
            timers.next_ping = None;
            timers.pong_deadline = None;
            timers.sleep = None;
        }
        let deadline = Instant::now() + CLOSE_TIMEOUT;
        let _ = ioloop::timeout(CLOSE_TIMEOUT, stream.flush()).await;
        if self.inner.protocol.borrow().role() == Role::Server {
            // Our end of stream first, so that the peer closes its side and no reset can overtake the close
            // frame; then wait for the peer's end of stream.
            let _ = stream.with_io(|s| s.shutdown(std::net::Shutdown::Write));
        }
        let drain = async {
            loop {
                match stream.fill().await {
                    Ok(0) | Err(_) => break,
                    // Nothing is decoded after the closing handshake.
                    Ok(_) => stream.with_read_buf(|buf| buf.clear()),
                }
            }
        };
        let _ = ioloop::timeout(deadline.saturating_duration_since(Instant::now()), drain).await;
        stream.close();
    }

    /// Marks the connection over for the reader: no more events, no timers, no waker kept.
    fn done(&self) -> Option<Event> {
        self.inner.finished.set(true);
        self.inner.reader.borrow_mut().take();
        self.inner.timers.borrow_mut().sleep = None;
        None
    }
}

/// Why the reader's wait ended.
enum Wake {
    Input,
    Timer,
}

/// Polls the earliest timer, re-arming it when the deadlines changed; `true` when it is due.
fn poll_timers(timers: &mut Timers, cx: &mut Context<'_>) -> bool {
    let Some(at) = timers.earliest() else {
        timers.sleep = None;
        return false;
    };
    if Instant::now() >= at {
        return true;
    }
    let sleep = timers.sleep.get_or_insert_with(|| ioloop::sleep_until(at));
    if sleep.deadline() != at {
        sleep.reset(at);
    }
    Pin::new(sleep).poll(cx).is_ready()
}

/// The future of [`WebSocket::write_message`]: resolves once the message was handed to the kernel.
#[must_use = "the message is sent anyway; await it for back-pressure and to learn whether it was sent"]
pub struct WriteMessage {
    state: Result<WriteFuture, Option<WebSocketError>>,
}

impl WriteMessage {
    fn new(result: Result<WriteFuture, WebSocketError>) -> Self {
        WriteMessage { state: result.map_err(Some) }
    }
}

impl fmt::Debug for WriteMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WriteMessage").field("failed", &self.state.is_err()).finish()
    }
}

impl Future for WriteMessage {
    type Output = Result<(), WebSocketError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.state {
            Ok(write) => Pin::new(write).poll(cx).map_err(|_| WebSocketError::Closed),
            Err(error) => Poll::Ready(Err(error.take().unwrap_or(WebSocketError::Closed))),
        }
    }
}
