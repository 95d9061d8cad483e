//! One server connection: read a head, read or stream the body, run the service, write the response, repeat.
//!
//! The connection is one task on the loop. Its states are those of Tornado's `HTTP1ServerConnection` /
//! `HTTP1Connection` pair, made explicit:
//!
//! - **Idle** — between requests, no bytes buffered: bounded by `idle_connection_timeout`; a shutdown closes it.
//! - **Head** — some bytes of a head arrived: bounded by `header_timeout` (slow clients are dropped).
//! - **Body** — buffered up to `max_body_size`, or streamed to the service; bounded by `body_timeout`.
//! - **Service** — the service's future runs; if it waits, responses queued so far are flushed and the
//!   connection watches for the client going away (the service is told, then dropped).
//!
//! Output is coalesced: responses are encoded into one buffer, which is flushed only before the connection
//! waits for input, when it grows past a limit, or when a service waits. So sequential requests cost one
//! `read` and one `write` each, and a batch of pipelined requests one `writev` for all their responses. A
//! response that is due is always flushed before the connection closes.

use super::writer::{ResponseWriter, Shared, Writing};
use super::{Config, HttpService, ServerState};
use crate::headers::HeaderMap;
use crate::message::{Request, RequestExtra};
use crate::proto::ParseError;
use crate::proto::Version;
use crate::proto::body::{BodyKind, Decoded, Decoder};
use crate::proto::request::{RequestHead, RequestParser};
use crate::proto::response::{CONTINUE, ConnectionAfter, ResponseContext};
use bytes::{Buf, Bytes, BytesMut};
use gale_iostream::ioloop::{self as gale_ioloop, Sleep};
use gale_iostream::{IOStream, StreamError};
use std::cell::{Cell, RefCell};
use std::future::{Future, poll_fn};
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::pin::{Pin, pin};
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// How a service's run ended.
enum Outcome {
    Done,
    Panicked(String),
    ClientGone,
}

/// Why waiting for input ended without input.
enum Wait {
    TimedOut,
    Shutdown,
}

/// A deadline re-armed lazily: moving it later costs a field store; the timer is only rescheduled when it
/// fires early.
///
/// Only the connection's own task polls it, so once its timer holds that task's waker, a poll before the
/// timer's deadline has nothing to do.
struct Deadline {
    sleep: Option<Pin<Box<Sleep>>>,
    /// The deadline is `start + timeout`, worked out only when the timer is armed: restarting the same
    /// timeout (the idle timeout, once per request) stores the loop's time and does no arithmetic.
    timeout: Option<Duration>,
    start: Instant,
    /// The timer's deadline while it is registered with the task's waker, and no later than the deadline: a
    /// copy, so that the common check touches neither the timer nor its box.
    armed: Option<Instant>,
}

impl Deadline {
    fn new() -> Deadline {
        Deadline { sleep: None, timeout: None, start: gale_ioloop::now(), armed: None }
    }

    fn set(&mut self, timeout: Option<Duration>) {
        if timeout != self.timeout {
            // Another timeout may end sooner than the armed timer: re-armed at the next poll.
            self.timeout = timeout;
            self.armed = None;
        }
        // The loop's time of this iteration: no clock read per request. Restarting the same timeout only
        // moves the deadline later (the loop's time never goes back), so an armed timer stays early enough.
        self.start = gale_ioloop::now();
    }

    #[inline]
    fn poll_expired(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(timeout) = self.timeout else { return false };
        if let Some(armed) = self.armed {
            // Armed for no later than the deadline, and not yet due: the timer will wake the task.
            if gale_ioloop::now() < armed {
                return false;
            }
        }
        self.poll_timer(self.start + timeout, cx)
    }

    /// Re-arms the timer for `at` if need be and polls it.
    #[inline(never)]
    fn poll_timer(&mut self, at: Instant, cx: &mut Context<'_>) -> bool {
        self.armed = None;
        loop {
            match &mut self.sleep {
                None => self.sleep = Some(Box::pin(gale_ioloop::sleep_until(at))),
                Some(s) => {
                    if s.deadline() > at {
                        s.as_mut().reset(at);
                    }
                    match s.as_mut().poll(cx) {
                        Poll::Pending => {
                            self.armed = Some(s.deadline());
                            return false;
                        }
                        Poll::Ready(()) if Instant::now() >= at => return true,
                        Poll::Ready(()) => s.as_mut().reset(at),
                    }
                }
            }
        }
    }
}

/// Serves one connection until it ends. The returned future is the connection's own, with no future around
/// it: every request polls it once more.
pub(crate) fn serve<S: HttpService>(
    service: Rc<S>,
    stream: IOStream,
    peer: SocketAddr,
    config: Rc<Config>,
    state: Rc<ServerState>,
) -> impl Future<Output = ()> {
    let shared = Rc::new(Shared {
        stream,
        out: RefCell::new(BytesMut::new()),
        encoder: config.encoder.clone(),
        ctx: Cell::new(ResponseContext::new(Version::Http11, &crate::proto::Method::Get, true)),
        writing: Cell::new(Writing::Done),
        after: Cell::new(ConnectionAfter::KeepAlive),
        closed: Cell::new(false),
        close_waiters: RefCell::new(Vec::new()),
        server: state.clone(),
        body: RefCell::new(None),
    });
    let conn = Conn {
        service,
        shared,
        peer,
        parser: RequestParser::new(config.limits),
        config,
        state,
        deadline: Deadline::new(),
        shutdown_key: None,
    };
    conn.serve()
}

struct Conn<S: HttpService> {
    service: Rc<S>,
    shared: Rc<Shared>,
    peer: SocketAddr,
    config: Rc<Config>,
    state: Rc<ServerState>,
    parser: RequestParser,
    deadline: Deadline,
    /// This connection's slot among the server's shutdown waiters.
    shutdown_key: Option<usize>,
}

impl<S: HttpService> Drop for Conn<S> {
    fn drop(&mut self) {
        self.state.forget(self.shutdown_key.take());
    }
}

impl<S: HttpService> Conn<S> {
    fn stream(&self) -> &IOStream {
        &self.shared.stream
    }

    /// Serves requests until the connection should end, then ends it. The loop is written here rather than in
    /// a method of its own, whose future would be one more layer to poll on every request.
    async fn serve(mut self) {
        'conn: loop {
            // The next head. Read here rather than in a method of its own, whose future would be one more layer
            // to poll on every request. Ends the connection on EOF, timeout, or an error answered.
            let head = 'read: {
                let mut idle = true;
                // Bytes buffered and not yet parsed: counted once per lap, as nothing but a fill changes them.
                let mut buffered = self.stream().buffered();
                if buffered > 0 {
                    // More requests wait (pipelined): their responses are coalesced with those before, up to a
                    // limit. (With none waiting, what is due is flushed below, before waiting for input.)
                    if self.shared.burst_out_len() + self.stream().write_buffer_len() > super::writer::COALESCE_LIMIT
                        && self.shared.flush().await.is_err()
                    {
                        break 'conn;
                    }
                    match self.parse_buffered() {
                        Ok(Some(head)) => break 'read head,
                        Ok(None) => {}
                        Err(e) => {
                            self.refuse(e);
                            break 'conn;
                        }
                    }
                }
                loop {
                    if self.state.shutting_down.get() && buffered == 0 {
                        break 'conn;
                    }
                    // About to wait for input: send what is due first, and hand the output buffer back.
                    match self.shared.flush_now() {
                        Ok(true) => {}
                        Ok(false) => {
                            if self.shared.flush().await.is_err() {
                                break 'conn;
                            }
                        }
                        Err(_) => break 'conn,
                    }
                    if buffered == 0 && idle {
                        self.deadline.set(self.config.idle_connection_timeout);
                    } else if idle {
                        idle = false;
                        self.deadline.set(self.config.header_timeout);
                    }
                    // Fresh input is parsed where it was read; only what is left of it is buffered.
                    let mut fresh = None;
                    let filled = {
                        let parser = &mut self.parser;
                        fill_with(
                            &self.shared.stream,
                            &self.state,
                            &mut self.deadline,
                            &mut self.shutdown_key,
                            |input| match parser.parse_slice(input) {
                                Ok(Some((head, len))) => {
                                    fresh = Some(Ok(head));
                                    len
                                }
                                Ok(None) => 0,
                                Err(e) => {
                                    fresh = Some(Err(e));
                                    0
                                }
                            },
                        )
                        .await
                    };
                    match filled {
                        Ok(0) => {
                            if self.stream().buffered() > 0 {
                                log::debug!("{}: connection closed in the middle of a request head", self.peer);
                            }
                            break 'conn;
                        }
                        Ok(_) => {
                            // A head parsed from the fresh input needs no header deadline.
                            if idle && fresh.is_none() {
                                idle = false;
                                self.deadline.set(self.config.header_timeout);
                            }
                        }
                        Err(Ok(Wait::Shutdown)) if self.stream().buffered() == 0 => break 'conn,
                        Err(Ok(Wait::Shutdown)) => {}
                        Err(Ok(Wait::TimedOut)) => {
                            log::debug!("{}: timed out waiting for a request", self.peer);
                            break 'conn;
                        }
                        Err(Err(_)) => break 'conn,
                    }
                    let parsed = match fresh {
                        // The usual case, taken straight to the handling.
                        Some(Ok(head)) => break 'read head,
                        Some(Err(e)) => Err(e),
                        None => {
                            buffered = self.stream().buffered();
                            self.parse_buffered()
                        }
                    };
                    match parsed {
                        Ok(Some(head)) => break 'read head,
                        Ok(None) => {}
                        Err(e) => {
                            self.refuse(e);
                            break 'conn;
                        }
                    }
                }
            };
            // The request is handled here rather than in a method of its own: the state of a nested future
            // would be built and moved (several KiB) on every request.
            #[allow(clippy::never_loop)]
            let keep_alive = 'handle: {
                let s = self.shared.clone();
                let keep_alive = head.keep_alive() && !self.state.shutting_down.get() && !self.config.no_keep_alive;
                s.ctx.set(ResponseContext::for_request(&head).with_keep_alive(keep_alive));
                s.writing.set(Writing::Head);
                s.after.set(ConnectionAfter::KeepAlive);
                s.closed.set(false);

                let kind = head.body_kind();
                if let BodyKind::Length(n) = kind {
                    if n > self.config.max_body_size as u64 {
                        self.send_error(413, "Content Too Large");
                        break 'handle false;
                    }
                }
                let streaming = kind != BodyKind::Empty && self.service.stream_body(&head);
                if kind != BodyKind::Empty && head.expects_continue() && head.version() == Version::Http11 {
                    s.out().extend_from_slice(CONTINUE);
                    if s.flush().await.is_err() {
                        break 'handle false;
                    }
                }
                // The body (when buffered) is kept apart from the head until the request is built, in the call
                // below, and comes out of the branch that may wait for it: a request (or a body) held across the
                // waits here would be copied into the connection's state, then out again.
                let (body, extra, body_reader) = if streaming {
                    let reader = BodyReader {
                        inner: Rc::new(RefCell::new(BodyState {
                            decoder: Some(Decoder::new(kind)),
                            stream: s.stream.clone(),
                            max: self.config.max_body_size,
                            read: 0,
                            error: None,
                            timeout: self.config.body_timeout,
                        })),
                    };
                    (None, None, Some(reader))
                } else if kind != BodyKind::Empty {
                    let mut decoder = Decoder::new(kind);
                    match Box::pin(self.read_body(&mut decoder)).await {
                        Ok(body) => (Some(body), decoder.take_trailers().map(RequestExtra::with_trailers), None),
                        Err(status) => {
                            if status != 0 {
                                self.send_error(
                                    status,
                                    if status == 413 { "Content Too Large" } else { "Bad Request" },
                                );
                            }
                            break 'handle false;
                        }
                    }
                } else {
                    (None, None, None)
                };
                let body_done = body_reader.clone();
                if body_reader.is_some() || s.body.borrow().is_some() {
                    s.body.replace(body_reader.clone());
                }

                // Run the service, catching panics; flush and watch for the client leaving while it waits.
                let writer = ResponseWriter { shared: s.clone() };
                let mut fut = pin!(self.service.call(self.make_request(head, body, extra), body_reader, writer));
                let stream = &s.stream;
                let max_read_ahead = self.config.limits.max_header_size;
                let mut flushed_for_wait = false;
                let outcome = poll_fn(|cx| {
                    match std::panic::catch_unwind(AssertUnwindSafe(|| fut.as_mut().poll(cx))) {
                        Ok(Poll::Ready(())) => return Poll::Ready(Outcome::Done),
                        Ok(Poll::Pending) => {}
                        Err(payload) => return Poll::Ready(Outcome::Panicked(panic_message(&*payload))),
                    }
                    if !flushed_for_wait {
                        flushed_for_wait = true;
                        // The service waits: what is queued (earlier pipelined responses) must not wait with it.
                        let _ = s.queue_out();
                        drop(stream.flush());
                    }
                    // Watch for the client going away once its request body has been read (a streaming body is the
                    // service's to read), unless the connection is being upgraded.
                    let body_read = body_done.as_ref().is_none_or(|b| b.is_done());
                    if body_read && s.after.get() != ConnectionAfter::Upgrade && stream.buffered() < max_read_ahead {
                        loop {
                            match stream.poll_fill(cx) {
                                Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => {
                                    // Tell the service (its `closed()` resolves) and let it react once before it is
                                    // dropped.
                                    s.mark_closed();
                                    let _ = std::panic::catch_unwind(AssertUnwindSafe(|| fut.as_mut().poll(cx)));
                                    return Poll::Ready(Outcome::ClientGone);
                                }
                                Poll::Ready(Ok(_)) if stream.buffered() < max_read_ahead => continue,
                                _ => break,
                            }
                        }
                    }
                    Poll::Pending
                })
                .await;
                match outcome {
                    Outcome::Done => {}
                    Outcome::ClientGone => {
                        // The client left while the service waited: tell it, then drop it.
                        log::debug!("{}: client went away during the request", self.peer);
                        s.mark_closed();
                        break 'handle false;
                    }
                    Outcome::Panicked(msg) => {
                        log::error!("service panicked on a request from {}: {msg}", self.peer);
                        if s.writing.get() == Writing::Head {
                            self.send_error(500, "Internal Server Error");
                        } else {
                            s.after.set(ConnectionAfter::Close);
                        }
                        break 'handle false;
                    }
                }

                // Make sure the response is complete.
                match s.writing.get() {
                    Writing::Head => {
                        log::error!("service returned without answering a request from {}", self.peer);
                        self.send_error(500, "Internal Server Error");
                        break 'handle false;
                    }
                    Writing::Body(_) => {
                        let w = ResponseWriter { shared: s.clone() };
                        if w.finish().is_err() {
                            s.after.set(ConnectionAfter::Close);
                        }
                    }
                    Writing::Done => {}
                }
                if let Some(reader) = &body_done {
                    if !reader.is_done() {
                        // The service did not read all of a streamed body: the connection cannot be reused.
                        s.after.set(ConnectionAfter::Close);
                    }
                }
                break 'handle s.after.get() == ConnectionAfter::KeepAlive;
            };
            if !keep_alive {
                break;
            }
        }
        // A final response is always flushed before the connection closes.
        // (The next connection of this thread takes the output buffer over.)
        if self.shared.flush().await.is_err() {
            // Not sent, but not to be kept either.
            self.shared.release_out();
        }
        if self.shared.after.get() != ConnectionAfter::Upgrade {
            self.shared.stream.close();
        }
    }

    /// Parses a head from the bytes the stream has buffered.
    fn parse_buffered(&mut self) -> Result<Option<Box<RequestHead>>, ParseError> {
        let parser = &mut self.parser;
        self.shared.stream.with_read_buf(|buf| {
            Ok(parser.parse_slice(buf)?.map(|(head, len)| {
                buf.advance(len);
                head
            }))
        })
    }

    /// Reads more input, unless the deadline passes or (while idle) the server shuts down.
    async fn fill(&mut self) -> Result<usize, Result<Wait, StreamError>> {
        fill_with(&self.shared.stream, &self.state, &mut self.deadline, &mut self.shutdown_key, |_| 0).await
    }

    /// Answers a request whose head is malformed or too large, then closes.
    fn refuse(&self, e: ParseError) {
        log::debug!("{}: bad request: {e}", self.peer);
        self.send_error(e.status(), e.message());
    }

    /// Answers a request the connection itself refuses (bad head, body too large), then closes.
    fn send_error(&self, status: u16, message: &str) {
        let s = &self.shared;
        s.ctx.set(ResponseContext::new(Version::Http11, &crate::proto::Method::Get, false));
        s.writing.set(Writing::Head);
        let mut headers = HeaderMap::new();
        headers.insert("Content-Type", "text/plain; charset=utf-8");
        let body = format!("{status} {message}\n");
        let w = ResponseWriter { shared: s.clone() };
        if w.write_head(status, None, &headers, Some(body.len() as u64)).is_ok() {
            let _ = w.write(body);
            let _ = w.finish();
        }
        s.after.set(ConnectionAfter::Close);
    }

    /// Builds the request in one expression, with no later stores into it, so that it is made where the service
    /// takes it rather than made and then copied there.
    #[inline]
    fn make_request(
        &self,
        head: Box<RequestHead>,
        body: Option<Bytes>,
        mut extra: Option<Box<RequestExtra>>,
    ) -> Request {
        if self.config.xheaders {
            let extra = extra.get_or_insert_with(|| Box::new(RequestExtra::new()));
            (extra.remote_ip, extra.scheme) = forwarded(head.headers(), &self.config.trusted_downstream);
        }
        Request::from_parts(head, body, self.peer, extra)
    }

    /// Reads a whole body into memory; `Err(status)` to answer (0: just close).
    async fn read_body(&mut self, decoder: &mut Decoder) -> Result<Bytes, u16> {
        let mut parts: Vec<Bytes> = Vec::new();
        let mut total = 0usize;
        self.deadline.set(self.config.body_timeout);
        loop {
            let step = self.shared.stream.with_read_buf(|buf| decoder.decode(buf));
            match step {
                Ok(Decoded::Data(d)) => {
                    total += d.len();
                    if total > self.config.max_body_size {
                        return Err(413);
                    }
                    parts.push(d);
                }
                Ok(Decoded::Done) => break,
                Ok(Decoded::NeedMore) => match self.fill().await {
                    Ok(0) => return Err(0),
                    Ok(_) => {}
                    Err(Ok(Wait::Shutdown)) => {}
                    Err(_) => return Err(0),
                },
                Err(e) => {
                    log::debug!("{}: bad body: {e}", self.peer);
                    return Err(e.status());
                }
            }
        }
        Ok(match parts.len() {
            0 => Bytes::new(),
            1 => parts.pop().expect("one part"),
            _ => {
                let mut all = BytesMut::with_capacity(total);
                for p in parts {
                    all.extend_from_slice(&p);
                }
                all.freeze()
            }
        })
    }
}

/// Reads more input, unless the deadline passes or (while idle) the server shuts down; fresh input is offered
/// to `consume` first (see [`IOStream::poll_fill_with`]).
fn fill_with(
    stream: &IOStream,
    state: &ServerState,
    deadline: &mut Deadline,
    key: &mut Option<usize>,
    mut consume: impl FnMut(&[u8]) -> usize,
) -> impl Future<Output = Result<usize, Result<Wait, StreamError>>> {
    // A `poll_fn` returned as is: an `async fn` would wrap it in one more future. (`consume` runs at most once:
    // the future is ready once input was read.)
    poll_fn(move |cx| {
        if let Poll::Ready(r) = stream.poll_fill_with(cx, &mut consume) {
            return Poll::Ready(r.map_err(Err));
        }
        if deadline.poll_expired(cx) {
            return Poll::Ready(Err(Ok(Wait::TimedOut)));
        }
        // Once registered, the connection's own task (the only one polling this) is woken by a shutdown.
        let shutdown = if key.is_some() { state.shutting_down.get() } else { state.poll_shutdown(cx, key) };
        if shutdown {
            return Poll::Ready(Err(Ok(Wait::Shutdown)));
        }
        Poll::Pending
    })
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    let msg = if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    };
    if msg.is_empty() { "panic".to_owned() } else { msg }
}

/// Tornado's `xheaders`: trust `X-Real-Ip` / `X-Forwarded-For` and `X-Scheme` / `X-Forwarded-Proto` set by
/// a proxy in front. With several `X-Forwarded-For` hops, the last one not in `trusted_downstream` is the
/// client. Returns the client's IP, if the headers name a valid one, and the scheme (`"http"` unless they say
/// otherwise).
#[cold]
#[inline(never)]
fn forwarded(headers: &HeaderMap, trusted_downstream: &[String]) -> (Option<String>, &'static str) {
    let forwarded_for =
        headers.get_all("X-Forwarded-For").filter_map(|v| std::str::from_utf8(v).ok()).collect::<Vec<_>>().join(",");
    let mut ip = None;
    if !forwarded_for.is_empty() {
        let hops: Vec<&str> = forwarded_for.split(',').map(str::trim).filter(|h| !h.is_empty()).collect();
        ip = hops
            .iter()
            .rev()
            .find(|h| !trusted_downstream.iter().any(|t| t == *h))
            .or(hops.first())
            .map(|s| s.to_string());
    }
    if let Some(real) = headers.get("X-Real-Ip") {
        ip = Some(real.trim().to_owned());
    }
    let proto = headers.get("X-Scheme").or_else(|| headers.get("X-Forwarded-Proto")).map(str::to_owned);
    let remote_ip = ip.filter(|ip| ip.parse::<std::net::IpAddr>().is_ok());
    let mut scheme = "http";
    if let Some(p) = proto {
        // With several proxies, the last value is the one the nearest proxy saw.
        let p = p.rsplit(',').next().unwrap_or("").trim();
        if p.eq_ignore_ascii_case("https") {
            scheme = "https";
        }
    }
    (remote_ip, scheme)
}

struct BodyState {
    decoder: Option<Decoder>,
    stream: IOStream,
    max: usize,
    read: usize,
    error: Option<BodyError>,
    timeout: Option<Duration>,
}

/// Why a streamed body could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyError {
    /// The body is longer than `max_body_size`.
    TooLarge,
    /// Malformed framing (bad chunk), or the client closed before the end.
    Malformed,
    /// `body_timeout` passed.
    TimedOut,
}

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BodyError::TooLarge => "request body too large",
            BodyError::Malformed => "malformed or truncated request body",
            BodyError::TimedOut => "timed out reading the request body",
        })
    }
}

impl std::error::Error for BodyError {}

/// Streams a request body to a service that asked for it (Tornado's `stream_request_body` +
/// `data_received`): each [`chunk`](BodyReader::chunk) is what arrived, never the whole body at once.
#[derive(Clone)]
pub struct BodyReader {
    inner: Rc<RefCell<BodyState>>,
}

impl std::fmt::Debug for BodyReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BodyReader").field("read", &self.inner.borrow().read).finish()
    }
}

impl BodyReader {
    /// The next piece of body, or `Ok(None)` at its end.
    ///
    /// # Errors
    ///
    /// [`BodyError`]; the connection closes after the response.
    pub async fn chunk(&self) -> Result<Option<Bytes>, BodyError> {
        let timeout = self.inner.borrow().timeout;
        let read = async {
            loop {
                let step = {
                    let mut st = self.inner.borrow_mut();
                    if let Some(e) = st.error {
                        return Err(e);
                    }
                    let st = &mut *st;
                    let Some(decoder) = st.decoder.as_mut() else { return Ok(None) };
                    let stream = st.stream.clone();
                    stream.with_read_buf(|buf| decoder.decode(buf))
                };
                match step {
                    Ok(Decoded::Data(d)) => {
                        let mut st = self.inner.borrow_mut();
                        st.read += d.len();
                        if st.read > st.max {
                            st.error = Some(BodyError::TooLarge);
                            return Err(BodyError::TooLarge);
                        }
                        return Ok(Some(d));
                    }
                    Ok(Decoded::Done) => {
                        self.inner.borrow_mut().decoder = None;
                        return Ok(None);
                    }
                    Ok(Decoded::NeedMore) => {
                        let stream = self.inner.borrow().stream.clone();
                        match stream.fill().await {
                            Ok(n) if n > 0 => {}
                            _ => {
                                self.inner.borrow_mut().error = Some(BodyError::Malformed);
                                return Err(BodyError::Malformed);
                            }
                        }
                    }
                    Err(_) => {
                        self.inner.borrow_mut().error = Some(BodyError::Malformed);
                        return Err(BodyError::Malformed);
                    }
                }
            }
        };
        match timeout {
            Some(t) => gale_ioloop::timeout(t, read).await.unwrap_or_else(|_| {
                self.inner.borrow_mut().error = Some(BodyError::TimedOut);
                Err(BodyError::TimedOut)
            }),
            None => read.await,
        }
    }

    /// Whether reading the body failed (the connection closes after the response).
    pub(crate) fn failed(&self) -> bool {
        self.inner.borrow().error.is_some()
    }

    /// Whether the whole body has been read.
    pub fn is_done(&self) -> bool {
        self.inner.borrow().decoder.is_none()
    }

    /// Bytes of body read so far.
    pub fn bytes_read(&self) -> usize {
        self.inner.borrow().read
    }
}
