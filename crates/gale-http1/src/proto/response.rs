//! Server role, writing: encoding response heads.
//!
//! [`ResponseEncoder::encode`] writes the status line, the caller's header fields (refusing any that could
//! inject a line) and the fields the connection owes the client: framing (`Content-Length` or
//! `Transfer-Encoding: chunked`), `Connection`, `Date` and `Server`. It returns the [`BodyEncoder`] to write the
//! body with and whether the connection survives the response.
//!
//! Framing follows RFC 9112 §6 and Tornado's `HTTP1Connection.write_headers`:
//!
//! | response                        | framing written                         | body encoder     |
//! |---------------------------------|-----------------------------------------|------------------|
//! | 1xx, 204, 2xx to `CONNECT`      | none (refused if the caller set one)    | empty            |
//! | 304                             | the caller's `Content-Length`, if any   | empty            |
//! | to `HEAD`                       | `Content-Length` if known               | discards         |
//! | length known                    | `Content-Length`                        | exact length     |
//! | length unknown, HTTP/1.1 client | `Transfer-Encoding: chunked`            | chunked          |
//! | length unknown, HTTP/1.0 client | none; the connection closes             | until close      |

use bytes::{Bytes, BytesMut};
use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use super::body::{BodyEncoder, BodyKind};
use super::error::EncodeError;
use super::head::{
    NOTED_NAME_LENGTHS, Outgoing, end_head_with_length, invalid_field, is_noted, may_be_noted, note_outgoing,
    put_field, write_field,
};
use super::request::RequestHead;
use super::{Method, Version, date};
use crate::headers::{self, FieldsMemo, HashEtag, HeaderMap};

/// The interim response that lets a client waiting on `Expect: 100-continue` send its body.
pub const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

macro_rules! statuses {
    ($($code:literal $reason:literal,)*) => {
        /// The standard reason phrase for `code` (RFC 9110 names), if it has one.
        pub fn reason_phrase(code: u16) -> Option<&'static str> {
            match code {
                $($code => Some($reason),)*
                _ => None,
            }
        }

        /// The whole status line for `code` with its standard reason.
        #[inline]
        fn status_line(code: u16) -> Option<&'static [u8]> {
            match code {
                $($code => Some(concat!("HTTP/1.1 ", $code, " ", $reason, "\r\n").as_bytes()),)*
                _ => None,
            }
        }
    };
}

statuses! {
    100 "Continue",
    101 "Switching Protocols",
    102 "Processing",
    103 "Early Hints",
    200 "OK",
    201 "Created",
    202 "Accepted",
    203 "Non-Authoritative Information",
    204 "No Content",
    205 "Reset Content",
    206 "Partial Content",
    207 "Multi-Status",
    208 "Already Reported",
    226 "IM Used",
    300 "Multiple Choices",
    301 "Moved Permanently",
    302 "Found",
    303 "See Other",
    304 "Not Modified",
    305 "Use Proxy",
    307 "Temporary Redirect",
    308 "Permanent Redirect",
    400 "Bad Request",
    401 "Unauthorized",
    402 "Payment Required",
    403 "Forbidden",
    404 "Not Found",
    405 "Method Not Allowed",
    406 "Not Acceptable",
    407 "Proxy Authentication Required",
    408 "Request Timeout",
    409 "Conflict",
    410 "Gone",
    411 "Length Required",
    412 "Precondition Failed",
    413 "Content Too Large",
    414 "URI Too Long",
    415 "Unsupported Media Type",
    416 "Range Not Satisfiable",
    417 "Expectation Failed",
    418 "I'm a teapot",
    421 "Misdirected Request",
    422 "Unprocessable Content",
    423 "Locked",
    424 "Failed Dependency",
    425 "Too Early",
    426 "Upgrade Required",
    428 "Precondition Required",
    429 "Too Many Requests",
    431 "Request Header Fields Too Large",
    451 "Unavailable For Legal Reasons",
    500 "Internal Server Error",
    501 "Not Implemented",
    502 "Bad Gateway",
    503 "Service Unavailable",
    504 "Gateway Timeout",
    505 "HTTP Version Not Supported",
    506 "Variant Also Negotiates",
    507 "Insufficient Storage",
    508 "Loop Detected",
    510 "Not Extended",
    511 "Network Authentication Required",
}

/// What becomes of the connection once the response (and its body) is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConnectionAfter {
    /// Read the next request (after an interim 1xx response: write the final response).
    KeepAlive,
    /// Close it.
    Close,
    /// It now speaks another protocol (101, or a tunnel after a 2xx to `CONNECT`): hand it over.
    Upgrade,
}

/// What the encoder needs to know about the request being answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResponseContext {
    version: Version,
    head: bool,
    connect: bool,
    keep_alive: bool,
    now: Option<Instant>,
}

impl ResponseContext {
    /// A context for a request of `version` and `method`; `keep_alive` says whether the connection may be
    /// kept open (what the client asked, and what the server allows).
    pub fn new(version: Version, method: &Method, keep_alive: bool) -> Self {
        ResponseContext {
            version,
            head: *method == Method::Head,
            connect: *method == Method::Connect,
            keep_alive,
            now: None,
        }
    }

    /// The context for answering `request`, keeping the connection open if the client asked to.
    pub fn for_request(request: &RequestHead) -> Self {
        ResponseContext::new(request.version(), request.method(), request.keep_alive())
    }

    /// The same context with keep-alive allowed or not (e.g. off while the server shuts down).
    pub fn with_keep_alive(mut self, keep_alive: bool) -> Self {
        self.keep_alive = keep_alive;
        self
    }

    /// The current time on the monotonic clock, if the caller has it cheaply (an event loop's cached time):
    /// `Date` is then written without reading the wall clock, except once a second.
    pub fn with_now(mut self, now: Instant) -> Self {
        self.now = Some(now);
        self
    }
}

/// A response head to encode.
#[derive(Clone, Copy, Debug)]
pub struct OutgoingResponse<'a> {
    /// Status code, 100–999.
    pub status: u16,
    /// Reason phrase; `None` for the standard one (or `Unknown`).
    pub reason: Option<&'a str>,
    /// Header fields, written in order. Framing fields may be set here, consistently with `content_length`.
    pub headers: &'a HeaderMap,
    /// Body length, if known when the head is written.
    pub content_length: Option<u64>,
}

impl<'a> OutgoingResponse<'a> {
    /// A response with the standard reason and a body of unknown length.
    pub fn new(status: u16, headers: &'a HeaderMap) -> Self {
        OutgoingResponse { status, reason: None, headers, content_length: None }
    }

    /// The same response with a body of `len` bytes.
    pub fn with_content_length(mut self, len: u64) -> Self {
        self.content_length = Some(len);
        self
    }

    /// The same response with a custom reason phrase.
    pub fn with_reason(mut self, reason: &'a str) -> Self {
        self.reason = Some(reason);
        self
    }
}

/// The outcome of encoding a head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EncodedHead {
    /// Writes the body with the framing announced.
    pub body: BodyEncoder,
    /// What to do with the connection after the body.
    pub connection: ConnectionAfter,
}

/// Encodes response heads; holds the per-server settings (`Server` value, `Date` on or off).
///
/// # Examples
///
/// ```
/// use bytes::BytesMut;
/// use gale_http1::headers::HeaderMap;
/// use gale_http1::proto::{Method, Version};
/// use gale_http1::proto::response::{ConnectionAfter, OutgoingResponse, ResponseContext, ResponseEncoder};
///
/// let encoder = ResponseEncoder::new().with_date(false);
/// let mut headers = HeaderMap::new();
/// headers.append("Content-Type", "text/plain");
/// let ctx = ResponseContext::new(Version::Http11, &Method::Get, true);
/// let mut out = BytesMut::new();
/// let mut head = encoder.encode(&ctx, &OutgoingResponse::new(200, &headers).with_content_length(2), &mut out).unwrap();
/// head.body.encode(b"ok", &mut out).unwrap();
/// head.body.finish(&mut out).unwrap();
/// assert_eq!(head.connection, ConnectionAfter::KeepAlive);
/// assert_eq!(
///     &out[..],
///     &b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nServer: gale\r\nContent-Length: 2\r\n\r\nok"[..]
/// );
/// ```
#[derive(Clone, Debug)]
pub struct ResponseEncoder {
    /// The whole `Server: ...\r\n` line, if one is sent.
    server_line: Option<Bytes>,
    /// Names the server line's contents, for the per-thread copy of it kept with the `Date` line: 0 for none,
    /// [`DEFAULT_SERVER_ID`] for the default, a fresh number for any other.
    server_id: u64,
    date: bool,
}

/// The id of the default `Server: gale` line.
const DEFAULT_SERVER_ID: u64 = 1;

/// Ids for the server lines given to [`ResponseEncoder::with_server`].
static NEXT_SERVER_ID: AtomicU64 = AtomicU64::new(DEFAULT_SERVER_ID + 1);

impl Default for ResponseEncoder {
    fn default() -> Self {
        ResponseEncoder::new()
    }
}

impl ResponseEncoder {
    /// An encoder sending `Server: gale` and `Date`.
    pub fn new() -> Self {
        ResponseEncoder {
            server_line: Some(Bytes::from_static(b"Server: gale\r\n")),
            server_id: DEFAULT_SERVER_ID,
            date: true,
        }
    }

    /// The same encoder with another `Server` value, or none.
    ///
    /// # Errors
    ///
    /// [`EncodeError::InvalidHeaderValue`] if `server` holds control bytes.
    pub fn with_server(mut self, server: Option<&str>) -> Result<Self, EncodeError> {
        self.server_line = match server {
            None => None,
            Some(s) if headers::is_valid_value(s.as_bytes()) => Some(Bytes::from(format!("Server: {s}\r\n"))),
            Some(_) => return Err(EncodeError::InvalidHeaderValue("Server".into())),
        };
        self.server_id = match self.server_line {
            None => 0,
            Some(_) => NEXT_SERVER_ID.fetch_add(1, Ordering::Relaxed),
        };
        Ok(self)
    }

    /// The same encoder with `Date` sent or not (RFC 9110 §6.6.1 wants it from servers with a clock).
    pub fn with_date(mut self, date: bool) -> Self {
        self.date = date;
        self
    }

    /// Appends the head of `response` to `dst`.
    ///
    /// Fields named `Date` or `Server` replace the encoder's. A `Content-Length` field must agree with
    /// `response.content_length`; a `Transfer-Encoding` field may only be `chunked`. A `Connection` field with
    /// `close` closes the connection; one that contradicts a decision to close is left out.
    ///
    /// # Errors
    ///
    /// Invalid status, reason, header name or value, or inconsistent framing; `dst` is then left as it was.
    pub fn encode(
        &self,
        ctx: &ResponseContext,
        response: &OutgoingResponse<'_>,
        dst: &mut BytesMut,
    ) -> Result<EncodedHead, EncodeError> {
        self.encode_fields(ctx, response.status, response.reason, response.headers, response.content_length, dst)
    }

    /// [`encode`](ResponseEncoder::encode) for any list of fields.
    pub(crate) fn encode_fields<L: FieldList>(
        &self,
        ctx: &ResponseContext,
        status: u16,
        reason: Option<&str>,
        fields: L,
        content_length: Option<u64>,
        dst: &mut BytesMut,
    ) -> Result<EncodedHead, EncodeError> {
        self.encode_whole(ctx, status, reason, fields, content_length, None, dst).map(|(head, _)| head)
    }

    /// [`encode_fields`](ResponseEncoder::encode_fields), and if `body` is given (the whole body, of
    /// `content_length` bytes) and the head leaves it as it is, the body too: `true` then, with an encoder that
    /// takes no more. The usual response is so written in one call.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn encode_whole<L: FieldList>(
        &self,
        ctx: &ResponseContext,
        status: u16,
        reason: Option<&str>,
        fields: L,
        content_length: Option<u64>,
        body: Option<&[u8]>,
        dst: &mut BytesMut,
    ) -> Result<(EncodedHead, bool), EncodeError> {
        // Written in one pass over the fields, learning what they say about framing as they are copied; small
        // (the usual response's shortcut, or a call), so that it goes inline. Truncated again on error.
        let mark = dst.len();
        let result = 'encode: {
            if let (200, None, Some(len), Some(now)) = (status, reason, content_length, ctx.now) {
                if ctx.is_plain() && self.date {
                    // The same response as the last one on this thread: the same head, unless the second changed.
                    let memo = match fields.memo_parts() {
                        Some((map, etag)) => {
                            HEAD_MEMO.with(|memo| memo.put(now, self.server_id, map, etag, len, body, dst))
                        }
                        None => Recall::Unknown,
                    };
                    if memo == Recall::Put {
                        break 'encode Ok(plain_head(len, body.is_some()));
                    }
                    if fields.surely_unnoted() {
                        break 'encode self.encode_plain(now, fields, len, body, memo == Recall::Known, dst);
                    }
                }
            }
            self.encode_any(ctx, status, reason, fields, content_length, dst).map(|head| (head, false))
        };
        if result.is_err() {
            dst.truncate(mark);
        }
        result
    }

    /// [`encode_whole`](ResponseEncoder::encode_whole) for any response: kept apart from the usual
    /// one's shortcut, which is then small enough to be compiled as one piece.
    #[inline(never)]
    fn encode_any<L: FieldList>(
        &self,
        ctx: &ResponseContext,
        status: u16,
        reason: Option<&str>,
        fields: L,
        content_length: Option<u64>,
        dst: &mut BytesMut,
    ) -> Result<EncodedHead, EncodeError> {
        if !(100..=999).contains(&status) {
            return Err(EncodeError::InvalidStatus(status));
        }
        match (reason, status_line(status)) {
            // The usual status, a copy of known size.
            (None, _) if status == 200 => dst.extend_from_slice(b"HTTP/1.1 200 OK\r\n"),
            (None, Some(line)) => dst.extend_from_slice(line),
            (reason, _) => {
                let reason = reason.unwrap_or("Unknown");
                if !headers::is_valid_value(reason.as_bytes()) {
                    return Err(EncodeError::InvalidReason);
                }
                let mut code = itoa::Buffer::new();
                dst.extend_from_slice(b"HTTP/1.1 ");
                dst.extend_from_slice(code.format(status).as_bytes());
                dst.extend_from_slice(b" ");
                dst.extend_from_slice(reason.as_bytes());
                dst.extend_from_slice(b"\r\n");
            }
        }
        let fields_at = dst.len();
        let mut seen = Outgoing::default();
        fields.try_each_valid(|name, value| {
            note_outgoing(&mut seen, name, value);
            put_field(dst, name, value);
            Ok(())
        })?;

        let length = match (seen.content_length, content_length) {
            (None, given) => given,
            (Some(Err(())), _) => return Err(EncodeError::InvalidContentLength),
            (Some(Ok(set)), None) => Some(set),
            (Some(Ok(set)), Some(given)) if set == given => Some(set),
            (Some(Ok(_)), Some(_)) => return Err(EncodeError::ContentLengthMismatch),
        };
        let chunked_field = match seen.transfer_encoding {
            None => false,
            Some(true) if seen.content_length.is_none() => true,
            Some(true) => return Err(EncodeError::InvalidFraming),
            Some(false) => return Err(EncodeError::UnsupportedTransferEncoding),
        };
        let has_framing = seen.content_length.is_some() || chunked_field;

        // Decide the framing: which body encoder, and which framing field we add.
        let tunnel = status == 101 || (ctx.connect && (200..300).contains(&status));
        let (body, add_length, add_chunked) = if status < 200 || status == 204 || tunnel {
            if has_framing || content_length.is_some_and(|n| n > 0) {
                return Err(EncodeError::BodyNotAllowed);
            }
            (BodyEncoder::new(BodyKind::Empty), None, false)
        } else if status == 304 {
            if chunked_field {
                return Err(EncodeError::BodyNotAllowed);
            }
            (BodyEncoder::new(BodyKind::Empty), None, false)
        } else if ctx.head {
            (BodyEncoder::discard(), length.filter(|_| seen.content_length.is_none()), false)
        } else if let Some(n) = length {
            (BodyEncoder::new(BodyKind::from_length(n)), Some(n).filter(|_| seen.content_length.is_none()), false)
        } else if ctx.version == Version::Http11 {
            (BodyEncoder::new(BodyKind::Chunked), None, !chunked_field)
        } else if chunked_field {
            return Err(EncodeError::UnsupportedTransferEncoding);
        } else {
            (BodyEncoder::new(BodyKind::CloseDelimited), None, false)
        };

        let interim = status < 200 && !tunnel;
        let connection = if tunnel {
            ConnectionAfter::Upgrade
        } else if interim || ctx.keep_alive && !seen.close && !body.is_close_delimited() {
            ConnectionAfter::KeepAlive
        } else {
            ConnectionAfter::Close
        };
        // A caller's `Connection: keep-alive` must not survive a decision to close: copy the fields again
        // without it (rare, so the common case stays one pass).
        if connection == ConnectionAfter::Close && !seen.close && seen.connection {
            dst.truncate(fields_at);
            fields.try_each(|name, value| {
                if name.eq_ignore_ascii_case(b"connection") { Ok(()) } else { write_field(dst, name, value) }
            })?;
        }
        let server = match (&self.server_line, seen.server) {
            (Some(line), false) => Some(line),
            _ => None,
        };
        match (self.date && !seen.date, ctx.now) {
            (true, Some(now)) => match server {
                Some(line) => date::put_lines_mono(now, self.server_id, line, dst),
                None => date::put_lines_mono(now, 0, b"", dst),
            },
            (date, _) => {
                if let Some(line) = server {
                    dst.extend_from_slice(line);
                }
                if date {
                    dst.extend_from_slice(&date::line());
                }
            }
        }
        match connection {
            _ if interim => {}
            ConnectionAfter::Close if !seen.close => dst.extend_from_slice(b"Connection: close\r\n"),
            ConnectionAfter::KeepAlive if ctx.version == Version::Http10 && !seen.keep_alive => {
                dst.extend_from_slice(b"Connection: keep-alive\r\n");
            }
            _ => {}
        }
        // The framing line goes last, to carry the empty line ending the head.
        match (add_length, add_chunked) {
            (Some(n), _) => end_head_with_length(dst, n),
            (None, true) => dst.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n"),
            (None, false) => dst.extend_from_slice(b"\r\n"),
        }
        Ok(EncodedHead { body, connection })
    }

    /// [`encode_whole`](ResponseEncoder::encode_whole) for the usual response: `200 OK` with a body
    /// of known length to a `GET` (or similar) that keeps its HTTP/1.1 connection, `Date` sent, and fields
    /// none of which steers framing or the connection ([`FieldList::surely_unnoted`]). Every decision is then
    /// known: the fields are copied as they are checked, followed by `Server` and `Date` and the length.
    ///
    /// The head is then remembered by what it was made of (see [`HeadMemo`]); `known` says the thread's memo
    /// was already for these parts. A `body` given (of `len` bytes) follows it as it is.
    #[inline(always)]
    fn encode_plain<L: FieldList>(
        &self,
        now: Instant,
        fields: L,
        len: u64,
        body: Option<&[u8]>,
        known: bool,
        dst: &mut BytesMut,
    ) -> Result<(EncodedHead, bool), EncodeError> {
        let at = dst.len();
        dst.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
        fields.try_put_lines(dst)?;
        let until = self.end_plain_head(now, len, dst);
        if let Some((map, etag)) = fields.memo_parts() {
            let head = until.filter(|_| known).map(|until| (until, &dst[at..]));
            HEAD_MEMO.with(|memo| memo.remember(self.server_id, map, etag, len, head));
        }
        if let Some(body) = body {
            dst.extend_from_slice(body);
        }
        Ok(plain_head(len, body.is_some()))
    }

    /// The lines that end a head written by [`encode_plain`](ResponseEncoder::encode_plain): `Server` and
    /// `Date`, and `Content-Length`, appended under one access to the thread's kept lines. Returns until when
    /// the `Date` line written stays right.
    #[inline(always)]
    fn end_plain_head(&self, now: Instant, len: u64, dst: &mut BytesMut) -> Option<Instant> {
        // One call for both cases, so that the thread-local access has a single caller (and goes inline).
        let (server_id, line): (u64, &[u8]) = match &self.server_line {
            Some(line) => (self.server_id, line),
            None => (0, b""),
        };
        date::put_lines_and_length_mono(now, server_id, line, len, dst)
    }
}

/// What a head written by [`ResponseEncoder::encode_plain`] leads to: a body of `len` bytes (none more if it
/// was written with the head: `written`), and the connection kept; then `written`.
#[inline(always)]
fn plain_head(len: u64, written: bool) -> (EncodedHead, bool) {
    let body = BodyEncoder::new(BodyKind::from_length(if written { 0 } else { len }));
    (EncodedHead { body, connection: ConnectionAfter::KeepAlive }, written)
}

/// The longest head a [`HeadMemo`] keeps.
const HEAD_MEMO_LENGTH: usize = 256;

/// The last usual head ([`ResponseEncoder::encode_plain`]) written on this thread, whole, with what it was made
/// of: the same response again (the same static fields and `ETag`, `Server` line and length) is answered with a
/// copy of it while its `Date` line is right, instead of being encoded again. The fields are recognized by the
/// addresses of their static strings ([`FieldsMemo`]), so the test is cheaper than the encoding it spares.
///
/// A head is kept only once the same parts came twice running: responses that all differ pay for remembering
/// their parts, not for copying their heads.
struct HeadMemo {
    /// Until when the kept head's `Date` line is right, on the monotonic clock; `None` when no head is kept
    /// (its parts may be).
    until: Cell<Option<Instant>>,
    /// The parts: the encoder's server line, the body length, the `ETag` (0 for none), the map's fields.
    server_id: Cell<u64>,
    len: Cell<u64>,
    etag: Cell<u128>,
    fields: FieldsMemo,
    /// The head: `head_len` bytes.
    head_len: Cell<usize>,
    head: RefCell<[u8; HEAD_MEMO_LENGTH]>,
}

thread_local! {
    static HEAD_MEMO: HeadMemo = const {
        HeadMemo {
            until: Cell::new(None),
            server_id: Cell::new(0),
            len: Cell::new(0),
            etag: Cell::new(0),
            fields: FieldsMemo::new(),
            head_len: Cell::new(0),
            head: RefCell::new([0; HEAD_MEMO_LENGTH]),
        }
    };
}

/// What a [`HeadMemo`] knows of a head.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Recall {
    /// The head was kept, and is now appended.
    Put,
    /// The memo is for the same parts, but keeps no head right for now.
    Known,
    /// The memo is for other parts.
    Unknown,
}

impl HeadMemo {
    /// Appends the kept head, and `body` if given, if the head is for these parts and its `Date` line is right
    /// at `now`. Out of line, so that the thread-local access around it goes inline.
    #[inline(never)]
    #[allow(clippy::too_many_arguments)]
    fn put(
        &self,
        now: Instant,
        server_id: u64,
        map: &HeaderMap,
        etag: u128,
        len: u64,
        body: Option<&[u8]>,
        dst: &mut BytesMut,
    ) -> Recall {
        let same = (self.server_id.get() == server_id) & (self.len.get() == len) & (self.etag.get() == etag);
        if !(same && self.fields.holds(map)) {
            return Recall::Unknown;
        }
        if self.until.get().is_none_or(|until| now >= until) {
            return Recall::Known;
        }
        dst.extend_from_slice(&self.head.borrow()[..self.head_len.get()]);
        if let Some(body) = body {
            dst.extend_from_slice(body);
        }
        Recall::Put
    }

    /// After a head was written for these parts, which were found valid: keeps `head` (right until the time
    /// given) if the memo was already for these parts, else remembers the parts alone.
    #[inline(never)]
    fn remember(&self, server_id: u64, map: &HeaderMap, etag: u128, len: u64, head: Option<(Instant, &[u8])>) {
        match head {
            Some((until, head)) if head.len() <= HEAD_MEMO_LENGTH => {
                self.head.borrow_mut()[..head.len()].copy_from_slice(head);
                self.head_len.set(head.len());
                self.until.set(Some(until));
            }
            _ => {
                self.until.set(None);
                self.server_id.set(server_id);
                self.len.set(len);
                self.etag.set(etag);
                self.fields.remember(map);
            }
        }
    }
}

/// The longest field line [`put_line`] assembles on the stack.
const LINE_BLOCK: usize = 64;

/// Appends `name: value\r\n`, as [`put_field`] does. A line of up to [`LINE_BLOCK`] bytes (the usual one) is
/// assembled in a block on the stack by copies of known size and appended in one copy of known size, instead
/// of four copies of which two are calls.
#[inline(always)]
pub(crate) fn put_line(dst: &mut BytesMut, name: &[u8], value: &[u8]) {
    let (n, v) = (name.len(), value.len());
    let total = n + v + 4;
    if total > LINE_BLOCK {
        return put_field(dst, name, value);
    }
    let mut block = [0; LINE_BLOCK];
    copy_short(&mut block, 0, name);
    block[n..n + 2].copy_from_slice(b": ");
    copy_short(&mut block, n + 2, value);
    block[n + 2 + v..total].copy_from_slice(b"\r\n");
    let at = dst.len();
    dst.extend_from_slice(&block);
    dst.truncate(at + total);
}

/// Copies `s` into `block` at `at` (which leaves room for it) in pieces of known size, overlapping when the
/// length is not a multiple of theirs.
#[inline(always)]
fn copy_short(block: &mut [u8; LINE_BLOCK], at: usize, s: &[u8]) {
    let n = s.len();
    if n >= 16 {
        let mut from = 0;
        while from + 16 < n {
            block[at + from..at + from + 16].copy_from_slice(&s[from..from + 16]);
            from += 16;
        }
        block[at + n - 16..at + n].copy_from_slice(&s[n - 16..]);
    } else if n >= 8 {
        block[at..at + 8].copy_from_slice(&s[..8]);
        block[at + n - 8..at + n].copy_from_slice(&s[n - 8..]);
    } else if n >= 4 {
        block[at..at + 4].copy_from_slice(&s[..4]);
        block[at + n - 4..at + n].copy_from_slice(&s[n - 4..]);
    } else {
        for (i, &b) in s.iter().enumerate() {
            block[at + i] = b;
        }
    }
}

impl ResponseContext {
    /// Whether the request leaves the response no choice to make about framing or the connection: an HTTP/1.1
    /// request, not `HEAD` nor `CONNECT`, whose connection stays open.
    #[inline(always)]
    fn is_plain(&self) -> bool {
        self.keep_alive & (self.version == Version::Http11) & !self.head & !self.connect
    }
}

mod sealed {
    /// Keeps [`FieldList`](super::FieldList) to the crate's types: the encoder trusts what they say about
    /// their fields.
    pub trait Sealed {}
    impl Sealed for &crate::headers::HeaderMap {}
    impl Sealed for &[(&str, &str)] {}
    impl Sealed for super::WithExtra<'_> {}
}

/// A list of header fields the encoder can walk (more than once, in the rare case it must): a [`HeaderMap`],
/// or a slice of `(name, value)` string pairs.
pub trait FieldList: Copy + sealed::Sealed {
    /// Calls `f` on every field in order, stopping at the first error.
    ///
    /// # Errors
    ///
    /// The first error `f` returns.
    fn try_each<E>(self, f: impl FnMut(&[u8], &[u8]) -> Result<(), E>) -> Result<(), E>;

    /// Calls `f` on every field in order once it is found fit to send (its name a token, its value free of
    /// control bytes: see [`headers::is_valid_name`] and [`headers::is_valid_value`]), stopping at the first
    /// error.
    ///
    /// # Errors
    ///
    /// [`EncodeError::InvalidHeaderName`] or [`EncodeError::InvalidHeaderValue`] for the first field unfit to
    /// send, or the first error `f` returns.
    #[inline]
    fn try_each_valid(self, mut f: impl FnMut(&[u8], &[u8]) -> Result<(), EncodeError>) -> Result<(), EncodeError> {
        self.try_each(|name, value| {
            if !(headers::is_valid_name(name) & headers::is_valid_value(value)) {
                return Err(invalid_field(name));
            }
            f(name, value)
        })
    }

    /// Appends every field's line (`name: value` and CRLF), once each is found fit to send as
    /// [`try_each_valid`](FieldList::try_each_valid) finds it.
    ///
    /// # Errors
    ///
    /// As [`try_each_valid`](FieldList::try_each_valid); the lines before the unfit field are left in `dst`.
    #[inline]
    fn try_put_lines(self, dst: &mut BytesMut) -> Result<(), EncodeError> {
        self.try_each_valid(|name, value| {
            put_line(dst, name, value);
            Ok(())
        })
    }

    /// Whether surely no field is one the encoder takes note of (`Content-Length`, `Transfer-Encoding`,
    /// `Connection`, `Date`, `Server`, `Host`): the fields can then be copied without being looked at. `false`
    /// when unsure.
    #[inline]
    fn surely_unnoted(self) -> bool {
        false
    }

    /// The map the fields are, and the key of a [`HashEtag`] sent after the map's fields (0 for none), when
    /// the fields are no more than that: what the head of the usual response is remembered by per thread, to
    /// be copied for the same response again. `None` when the fields are something else.
    #[inline]
    fn memo_parts(&self) -> Option<(&HeaderMap, u128)> {
        None
    }
}

impl FieldList for &HeaderMap {
    #[inline]
    fn try_each<E>(self, mut f: impl FnMut(&[u8], &[u8]) -> Result<(), E>) -> Result<(), E> {
        for (name, value) in self {
            f(name, value)?;
        }
        Ok(())
    }

    #[inline]
    fn try_each_valid(self, f: impl FnMut(&[u8], &[u8]) -> Result<(), EncodeError>) -> Result<(), EncodeError> {
        self.try_for_each_valid(f, invalid_field)
    }

    #[inline]
    fn try_put_lines(self, dst: &mut BytesMut) -> Result<(), EncodeError> {
        self.put_valid_lines(&[], dst, invalid_field)
    }

    #[inline]
    fn surely_unnoted(self) -> bool {
        !self.may_hold_lengths(NOTED_NAME_LENGTHS)
    }

    #[inline]
    fn memo_parts(&self) -> Option<(&HeaderMap, u128)> {
        Some((self, 0))
    }
}

/// A [`HeaderMap`]'s fields followed by a few more that are not stored in it (see
/// [`ResponseWriter::respond_with_extra`](crate::ResponseWriter::respond_with_extra)).
#[derive(Clone, Copy, Debug)]
pub(crate) struct WithExtra<'a> {
    pub(crate) map: &'a HeaderMap,
    pub(crate) extra: &'a [(&'static str, &'a [u8])],
    /// An `ETag` sent after the extra fields: valid by construction, and not one the encoder takes note of,
    /// so it is neither checked nor looked at; its line is copied whole.
    pub(crate) etag: Option<&'a HashEtag>,
}

impl FieldList for WithExtra<'_> {
    #[inline]
    fn try_each<E>(self, mut f: impl FnMut(&[u8], &[u8]) -> Result<(), E>) -> Result<(), E> {
        self.map.try_each(&mut f)?;
        for &(name, value) in self.extra {
            f(name.as_bytes(), value)?;
        }
        Ok(())
    }

    #[inline]
    fn try_each_valid(self, f: impl FnMut(&[u8], &[u8]) -> Result<(), EncodeError>) -> Result<(), EncodeError> {
        let mut f = f;
        self.map.try_for_each_valid_and(self.extra, &mut f, invalid_field)?;
        match self.etag {
            Some(etag) => f(b"Etag", etag.as_bytes()),
            None => Ok(()),
        }
    }

    #[inline]
    fn try_put_lines(self, dst: &mut BytesMut) -> Result<(), EncodeError> {
        self.map.put_valid_lines(self.extra, dst, invalid_field)?;
        if let Some(etag) = self.etag {
            dst.extend_from_slice(etag.line());
        }
        Ok(())
    }

    #[inline]
    fn surely_unnoted(self) -> bool {
        self.map.surely_unnoted() && !self.extra.iter().any(|(name, _)| is_noted(name.as_bytes()))
    }

    #[inline]
    fn memo_parts(&self) -> Option<(&HeaderMap, u128)> {
        // Extra fields are borrowed bytes, which cannot be recognized by their address.
        self.extra.is_empty().then(|| (self.map, self.etag.map_or(0, HashEtag::key)))
    }
}

impl FieldList for &[(&str, &str)] {
    #[inline]
    fn try_each<E>(self, mut f: impl FnMut(&[u8], &[u8]) -> Result<(), E>) -> Result<(), E> {
        for (name, value) in self {
            f(name.as_bytes(), value.as_bytes())?;
        }
        Ok(())
    }

    #[inline]
    fn surely_unnoted(self) -> bool {
        !self.iter().any(|(name, _)| may_be_noted(name.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(fields: &[(&'static str, &'static str)]) -> HeaderMap {
        fields.iter().copied().collect()
    }

    fn get(version: Version, keep_alive: bool) -> ResponseContext {
        ResponseContext::new(version, &Method::Get, keep_alive)
    }

    /// Encodes without Date so the output is predictable.
    fn encode(ctx: ResponseContext, response: OutgoingResponse<'_>) -> Result<(String, EncodedHead), EncodeError> {
        let mut out = BytesMut::new();
        let head = ResponseEncoder::new().with_date(false).encode(&ctx, &response, &mut out)?;
        Ok((String::from_utf8(out.to_vec()).unwrap(), head))
    }

    #[test]
    fn common_response_with_known_length() {
        let h = headers(&[("Content-Type", "text/html; charset=UTF-8")]);
        let (out, head) =
            encode(get(Version::Http11, true), OutgoingResponse::new(200, &h).with_content_length(12)).unwrap();
        assert_eq!(
            out,
            "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=UTF-8\r\nServer: gale\r\nContent-Length: 12\r\n\r\n"
        );
        assert_eq!(head.connection, ConnectionAfter::KeepAlive);
        assert_eq!(head.body.remaining(), Some(12));
    }

    #[test]
    fn date_is_added_from_the_cache_unless_set() {
        let mut out = BytesMut::new();
        let h = HeaderMap::new();
        let ctx = get(Version::Http11, true);
        ResponseEncoder::new().encode(&ctx, &OutgoingResponse::new(204, &h), &mut out).unwrap();
        let text = String::from_utf8(out.to_vec()).unwrap();
        let date = text.lines().find_map(|l| l.strip_prefix("Date: ")).expect("a Date line");
        assert_eq!(date.len(), 29);
        assert!(httpdate::parse_http_date(date).is_ok());

        let h = headers(&[("Date", "Thu, 01 Jan 1970 00:00:00 GMT")]);
        out.clear();
        ResponseEncoder::new().encode(&ctx, &OutgoingResponse::new(204, &h), &mut out).unwrap();
        assert_eq!(String::from_utf8(out.to_vec()).unwrap().matches("Date:").count(), 1);
    }

    #[test]
    fn server_header_is_configurable() {
        let h = HeaderMap::new();
        let ctx = get(Version::Http11, true);
        let res = OutgoingResponse::new(204, &h);
        let mut out = BytesMut::new();
        let enc = ResponseEncoder::new().with_date(false).with_server(Some("custom/1.0")).unwrap();
        enc.encode(&ctx, &res, &mut out).unwrap();
        assert_eq!(&out[..], b"HTTP/1.1 204 No Content\r\nServer: custom/1.0\r\n\r\n");
        out.clear();
        ResponseEncoder::new().with_date(false).with_server(None).unwrap().encode(&ctx, &res, &mut out).unwrap();
        assert_eq!(&out[..], b"HTTP/1.1 204 No Content\r\n\r\n");
        assert!(ResponseEncoder::new().with_server(Some("evil\r\nX: y")).is_err());
        let own = headers(&[("Server", "mine")]);
        let (text, _) = encode(ctx, OutgoingResponse::new(204, &own)).unwrap();
        assert_eq!(text, "HTTP/1.1 204 No Content\r\nServer: mine\r\n\r\n");
    }

    #[test]
    fn unknown_length_is_chunked_for_http11_clients() {
        let h = HeaderMap::new();
        let (out, head) = encode(get(Version::Http11, true), OutgoingResponse::new(200, &h)).unwrap();
        assert!(out.ends_with("Transfer-Encoding: chunked\r\n\r\n"));
        assert!(head.body.is_chunked());
        assert_eq!(head.connection, ConnectionAfter::KeepAlive);
    }

    #[test]
    fn unknown_length_closes_the_connection_for_http10_clients() {
        let h = HeaderMap::new();
        let (out, head) = encode(get(Version::Http10, true), OutgoingResponse::new(200, &h)).unwrap();
        assert!(!out.contains("Transfer-Encoding"));
        assert!(out.ends_with("Connection: close\r\n\r\n"));
        assert!(head.body.is_close_delimited());
        assert_eq!(head.connection, ConnectionAfter::Close);
    }

    #[test]
    fn http10_keep_alive_clients_are_told_so() {
        let h = HeaderMap::new();
        let res = OutgoingResponse::new(200, &h).with_content_length(0);
        let (out, head) = encode(get(Version::Http10, true), res).unwrap();
        assert!(out.ends_with("Connection: keep-alive\r\nContent-Length: 0\r\n\r\n"));
        assert_eq!(head.connection, ConnectionAfter::KeepAlive);
        let (out, head) = encode(get(Version::Http10, false), res).unwrap();
        assert!(out.ends_with("Connection: close\r\nContent-Length: 0\r\n\r\n"));
        assert_eq!(head.connection, ConnectionAfter::Close);
    }

    #[test]
    fn closing_http11_connections_send_connection_close() {
        let h = headers(&[("Connection", "keep-alive")]);
        let (out, head) =
            encode(get(Version::Http11, false), OutgoingResponse::new(200, &h).with_content_length(0)).unwrap();
        assert_eq!(head.connection, ConnectionAfter::Close);
        assert!(!out.contains("keep-alive"), "contradicting field dropped: {out}");
        assert_eq!(out.matches("Connection: close").count(), 1);
        // The handler may close on its own.
        let h = headers(&[("Connection", "close")]);
        let (out, head) =
            encode(get(Version::Http11, true), OutgoingResponse::new(200, &h).with_content_length(0)).unwrap();
        assert_eq!(head.connection, ConnectionAfter::Close);
        assert_eq!(out.matches("Connection").count(), 1);
    }

    #[test]
    fn head_responses_announce_the_length_but_discard_the_body() {
        let h = HeaderMap::new();
        let ctx = ResponseContext::new(Version::Http11, &Method::Head, true);
        let (out, head) = encode(ctx, OutgoingResponse::new(200, &h).with_content_length(1234)).unwrap();
        assert!(out.ends_with("Content-Length: 1234\r\n\r\n"));
        assert!(head.body.is_discarding());
        let (out, head) = encode(ctx, OutgoingResponse::new(200, &h)).unwrap();
        assert!(!out.contains("Transfer-Encoding") && !out.contains("Content-Length"));
        assert_eq!(head.connection, ConnectionAfter::KeepAlive);
    }

    #[test]
    fn bodiless_statuses_get_no_framing() {
        let h = HeaderMap::new();
        for status in [100, 101, 103, 204, 304] {
            let (out, head) = encode(get(Version::Http11, true), OutgoingResponse::new(status, &h)).unwrap();
            assert!(!out.contains("Content-Length") && !out.contains("Transfer-Encoding"), "{status}: {out}");
            let mut sink = BytesMut::new();
            let mut body = head.body;
            assert_eq!(body.encode(b"x", &mut sink), Err(EncodeError::BodyNotAllowed), "{status}");
        }
        let (_, head) = encode(get(Version::Http11, true), OutgoingResponse::new(101, &h)).unwrap();
        assert_eq!(head.connection, ConnectionAfter::Upgrade);
        let cl = headers(&[("Content-Length", "5")]);
        assert_eq!(
            encode(get(Version::Http11, true), OutgoingResponse::new(204, &cl)).unwrap_err(),
            EncodeError::BodyNotAllowed
        );
        let res = OutgoingResponse::new(204, &h).with_content_length(5);
        assert_eq!(encode(get(Version::Http11, true), res).unwrap_err(), EncodeError::BodyNotAllowed);
        // 304 may repeat the representation's length.
        let (out, _) = encode(get(Version::Http11, true), OutgoingResponse::new(304, &cl)).unwrap();
        assert!(out.contains("Content-Length: 5\r\n"));
    }

    #[test]
    fn connect_success_becomes_a_tunnel() {
        let h = HeaderMap::new();
        let ctx = ResponseContext::new(Version::Http11, &Method::Connect, true);
        let (out, head) = encode(ctx, OutgoingResponse::new(200, &h)).unwrap();
        assert_eq!(out, "HTTP/1.1 200 OK\r\nServer: gale\r\n\r\n");
        assert_eq!(head.connection, ConnectionAfter::Upgrade);
    }

    #[test]
    fn caller_framing_fields_must_agree() {
        let ctx = get(Version::Http11, true);
        let cl = headers(&[("Content-Length", "3")]);
        let (out, head) = encode(ctx, OutgoingResponse::new(200, &cl)).unwrap();
        assert_eq!(out.matches("Content-Length").count(), 1);
        assert_eq!(head.body.remaining(), Some(3));
        assert!(encode(ctx, OutgoingResponse::new(200, &cl).with_content_length(3)).is_ok());
        assert_eq!(
            encode(ctx, OutgoingResponse::new(200, &cl).with_content_length(4)).unwrap_err(),
            EncodeError::ContentLengthMismatch
        );
        let bad = headers(&[("Content-Length", "3 apples")]);
        assert_eq!(encode(ctx, OutgoingResponse::new(200, &bad)).unwrap_err(), EncodeError::InvalidContentLength);
        let te = headers(&[("Transfer-Encoding", "chunked")]);
        let (out, head) = encode(ctx, OutgoingResponse::new(200, &te)).unwrap();
        assert_eq!(out.matches("Transfer-Encoding").count(), 1);
        assert!(head.body.is_chunked());
        assert_eq!(
            encode(get(Version::Http10, true), OutgoingResponse::new(200, &te)).unwrap_err(),
            EncodeError::UnsupportedTransferEncoding
        );
        let gzip = headers(&[("Transfer-Encoding", "gzip")]);
        assert_eq!(
            encode(ctx, OutgoingResponse::new(200, &gzip)).unwrap_err(),
            EncodeError::UnsupportedTransferEncoding
        );
        let both = headers(&[("Transfer-Encoding", "chunked"), ("Content-Length", "3")]);
        assert_eq!(encode(ctx, OutgoingResponse::new(200, &both)).unwrap_err(), EncodeError::InvalidFraming);
    }

    #[test]
    fn refuses_header_injection_and_leaves_the_buffer_untouched() {
        let ctx = get(Version::Http11, true);
        let mut out = BytesMut::from(&b"earlier bytes"[..]);
        let enc = ResponseEncoder::new();
        for (name, value) in
            [("X-A", "v\r\nSet-Cookie: x=1"), ("X-A", "v\nX: y"), ("X-A", "v\0"), ("X A", "v"), ("X:A", "v")]
        {
            let h: HeaderMap = [(name, value)].into_iter().collect();
            let err = enc.encode(&ctx, &OutgoingResponse::new(200, &h), &mut out).unwrap_err();
            assert!(
                matches!(err, EncodeError::InvalidHeaderName(_) | EncodeError::InvalidHeaderValue(_)),
                "{name:?}: {value:?}"
            );
            assert_eq!(&out[..], b"earlier bytes");
        }
    }

    #[test]
    fn field_slices_refuse_header_injection_too() {
        let ctx = get(Version::Http11, true);
        let enc = ResponseEncoder::new();
        let mut out = BytesMut::from(&b"earlier bytes"[..]);
        for fields in [&[("X-A", "v\r\nX: y")][..], &[("X-A", "ok"), ("X A", "v")], &[("X-A", "nul\0")]] {
            let err = enc.encode_fields(&ctx, 200, None, fields, Some(0), &mut out).unwrap_err();
            assert!(
                matches!(err, EncodeError::InvalidHeaderName(_) | EncodeError::InvalidHeaderValue(_)),
                "{fields:?}"
            );
            assert_eq!(&out[..], b"earlier bytes");
        }
    }

    /// Encodes a 200 with `Date`, through the shortcut when the fields allow it, and returns the head without
    /// its `Date` line (checked to be there once).
    fn encode_200<L: FieldList>(ctx: ResponseContext, fields: L, len: Option<u64>) -> Result<String, EncodeError> {
        let mut out = BytesMut::from(&b"earlier"[..]);
        let ctx = ctx.with_now(Instant::now());
        let result = ResponseEncoder::new().encode_fields(&ctx, 200, None, fields, len, &mut out);
        let text = String::from_utf8(out.to_vec()).unwrap();
        let text = text.strip_prefix("earlier").expect("what was there is kept");
        if let Err(e) = result {
            assert_eq!(text, "", "nothing is written on error");
            return Err(e);
        }
        assert_eq!(text.matches("\r\nDate: ").count(), 1, "{text}");
        Ok(text.split("\r\n").filter(|l| !l.starts_with("Date: ")).collect::<Vec<_>>().join("\r\n"))
    }

    #[test]
    fn plain_responses_take_the_shortcut_with_the_same_outcome() {
        let ctx = get(Version::Http11, true);
        let h = headers(&[("Content-Type", "text/plain"), ("X-Owned", "v")]);
        assert!((&h).surely_unnoted());
        let text = encode_200(ctx, &h, Some(13)).unwrap();
        assert_eq!(
            text,
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Owned: v\r\nServer: gale\r\nContent-Length: 13\r\n\r\n"
        );
        let fields: &[(&str, &str)] = &[("Content-Type", "text/plain"), ("X-Owned", "v")];
        assert!(fields.surely_unnoted());
        assert_eq!(encode_200(ctx, fields, Some(13)).unwrap(), text);
        // What the shortcut does not handle is still handled: closing, HTTP/1.0, HEAD, unknown lengths.
        assert!(encode_200(get(Version::Http11, false), &h, Some(1)).unwrap().contains("Connection: close\r\n"));
        assert!(encode_200(get(Version::Http10, true), &h, Some(1)).unwrap().contains("Connection: keep-alive\r\n"));
        let head = ResponseContext::new(Version::Http11, &Method::Head, true);
        assert!(encode_200(head, &h, Some(7)).unwrap().contains("Content-Length: 7\r\n"));
        assert!(encode_200(ctx, &h, None).unwrap().contains("Transfer-Encoding: chunked\r\n"));
        // Injection is refused on the shortcut too.
        let bad = headers(&[("Content-Type", "text/plain"), ("X-A", "v\r\nSet-Cookie: x=1")]);
        assert!((&bad).surely_unnoted());
        assert!(matches!(encode_200(ctx, &bad, Some(1)), Err(EncodeError::InvalidHeaderValue(_))));
    }

    #[test]
    fn fields_the_encoder_notes_keep_the_long_way_however_the_map_was_built() {
        let ctx = get(Version::Http11, true);
        let cases: [(&str, &str, &str); 5] = [
            ("Content-Length", "3", "Content-Length: 3\r\n"),
            ("date", "Thu, 01 Jan 1970 00:00:00 GMT", "date: Thu"),
            ("SERVER", "mine", "SERVER: mine\r\n"),
            ("Connection", "close", "Connection: close\r\n"),
            ("Host", "example.com", "Host: example.com\r\n"),
        ];
        for (name, value, expected) in cases {
            let appended = headers(&[("Content-Type", "text/plain"), (name, value)]);
            let mut inserted = HeaderMap::new();
            inserted.insert(name.to_owned(), value.to_owned());
            let host = if name == "Host" { "" } else { "Host: a\r\n" };
            let head = format!("GET / HTTP/1.1\r\n{host}{name}: {value}\r\n\r\n");
            let mut parsed_buf = BytesMut::from(head.as_bytes());
            let parsed = super::super::request::RequestParser::default().parse(&mut parsed_buf).unwrap().unwrap();
            for map in [&appended, &inserted, parsed.headers()] {
                assert!(!map.surely_unnoted(), "{name}");
                let mut out = BytesMut::new();
                let now = ctx.with_now(Instant::now());
                let len = if name == "Content-Length" { None } else { Some(3) };
                let head = ResponseEncoder::new().encode_fields(&now, 200, None, map, len, &mut out).unwrap();
                let text = String::from_utf8(out.to_vec()).unwrap();
                assert!(text.contains(expected), "{name}: {text}");
                for once in ["Content-Length", "Date", "Server", "Connection"] {
                    assert!(text.to_ascii_lowercase().matches(&once.to_ascii_lowercase()).count() <= 1, "{text}");
                }
                let closes = name == "Connection";
                assert_eq!(head.connection == ConnectionAfter::Close, closes, "{name}");
            }
        }
    }

    #[test]
    fn the_usual_head_ends_with_server_date_and_length_with_or_without_a_server_line() {
        let ctx = get(Version::Http11, true).with_now(Instant::now());
        let h = headers(&[("Content-Type", "text/plain")]);
        for server in [Some("gale"), None, Some("other/2"), None] {
            let enc = ResponseEncoder::new().with_server(server).unwrap();
            for len in [5, 12_345] {
                let mut out = BytesMut::new();
                enc.encode_fields(&ctx, 200, None, &h, Some(len), &mut out).unwrap();
                let text = String::from_utf8(out.to_vec()).unwrap();
                let server_line = server.map(|s| format!("Server: {s}\r\n")).unwrap_or_default();
                let start = format!("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n{server_line}Date: ");
                assert!(text.starts_with(&start), "{text}");
                assert_eq!(text.matches("Server:").count(), usize::from(server.is_some()), "{text}");
                let date = text[start.len()..].split("\r\n").next().unwrap();
                assert!(httpdate::parse_http_date(date).is_ok(), "{text}");
                assert!(text.ends_with(&format!("GMT\r\nContent-Length: {len}\r\n\r\n")), "{text}");
            }
        }
    }

    #[test]
    fn extra_fields_follow_the_maps_and_are_checked_the_same_way() {
        let ctx = get(Version::Http11, true);
        let h = headers(&[("Content-Type", "text/plain")]);
        let etag: &[u8] = b"\"0123456789abcdef\"";
        let with = WithExtra { map: &h, etag: None, extra: &[("Etag", etag)] };
        assert!(with.surely_unnoted());
        assert_eq!(
            encode_200(ctx, with, Some(2)).unwrap(),
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nEtag: \"0123456789abcdef\"\r\nServer: gale\r\nContent-Length: 2\r\n\r\n"
        );
        let (text, _) = {
            let mut out = BytesMut::new();
            let head =
                ResponseEncoder::new().with_date(false).encode_fields(&ctx, 304, None, with, None, &mut out).unwrap();
            (String::from_utf8(out.to_vec()).unwrap(), head)
        };
        assert_eq!(
            text,
            "HTTP/1.1 304 Not Modified\r\nContent-Type: text/plain\r\nEtag: \"0123456789abcdef\"\r\nServer: gale\r\n\r\n"
        );
        // Extra fields valid by construction come out the same, unchecked.
        let hashed = crate::headers::HashEtag::from_hash(0x0123_4567_89ab_cdef);
        assert_eq!(hashed.as_bytes(), etag);
        let trusted = WithExtra { map: &h, etag: Some(&hashed), extra: &[] };
        assert_eq!(encode_200(ctx, trusted, Some(2)).unwrap(), encode_200(ctx, with, Some(2)).unwrap());
        // And through the general path (a 304, a close, HTTP/1.0).
        for (ctx, status) in [(ctx, 304), (get(Version::Http11, false), 200), (get(Version::Http10, true), 200)] {
            let encode = |fields: WithExtra<'_>| {
                let mut out = BytesMut::new();
                ResponseEncoder::new()
                    .with_date(false)
                    .encode_fields(&ctx, status, None, fields, None, &mut out)
                    .unwrap();
                out
            };
            assert_eq!(encode(trusted), encode(with), "{status}");
        }
        for bad in [&b"\"x\"\r\nSet-Cookie: y=1"[..], b"nul\0", b"a\nb", b"0123456789abcdef\r\n"] {
            let with = WithExtra { map: &h, etag: None, extra: &[("Etag", bad)] };
            assert!(matches!(encode_200(ctx, with, Some(2)), Err(EncodeError::InvalidHeaderValue(_))), "{bad:?}");
        }
        let with = WithExtra { map: &h, etag: None, extra: &[("Bad Name", b"v")] };
        assert!(matches!(encode_200(ctx, with, Some(2)), Err(EncodeError::InvalidHeaderName(_))));
        // Extra fields that steer framing or the connection are noted like the map's.
        let with = WithExtra { map: &h, etag: None, extra: &[("Connection", b"close")] };
        assert!(!with.surely_unnoted());
        let mut out = BytesMut::new();
        let now = ctx.with_now(Instant::now());
        let head = ResponseEncoder::new().encode_fields(&now, 200, None, with, Some(0), &mut out).unwrap();
        assert_eq!(head.connection, ConnectionAfter::Close);
        assert_eq!(String::from_utf8(out.to_vec()).unwrap().matches("Connection").count(), 1);
        let with = WithExtra { map: &h, etag: None, extra: &[("Content-Length", b"5")] };
        assert!(matches!(encode_200(ctx, with, Some(2)), Err(EncodeError::ContentLengthMismatch)));
    }

    #[test]
    fn lines_assembled_on_the_stack_are_the_same_as_copied_ones() {
        let bytes: Vec<u8> = (0..80u8).map(|i| b'!' + i).collect();
        for n in 0..=70 {
            for v in 0..=70 {
                let (name, value) = (&bytes[..n], &bytes[80 - v..]);
                let mut expected = BytesMut::from(&b"before"[..]);
                put_field(&mut expected, name, value);
                let mut out = BytesMut::from(&b"before"[..]);
                put_line(&mut out, name, value);
                assert_eq!(out, expected, "{n} {v}");
            }
        }
    }

    #[test]
    fn remembered_static_lines_are_the_same_as_assembled_ones() {
        static NAMES: [&str; 4] = ["Content-Type", "X-A", "X-Quite-A-Long-Header-Name-Indeed", "Cache-Control"];
        static VALUES: [&str; 5] =
            ["text/plain", "", "v", "no-cache, no-store, must-revalidate, max-age=0, private", "a\tb"];
        let ctx = get(Version::Http11, true);
        // Many maps of static fields, each encoded several times (remembered, then copied), through the
        // shortcut and through the general path (which does not use the remembered lines).
        for round in 0..3 {
            for (i, name) in NAMES.iter().enumerate() {
                for (j, value) in VALUES.iter().enumerate() {
                    let mut h = HeaderMap::new();
                    h.append(*name, *value);
                    h.append(NAMES[(i + j + round) % NAMES.len()], VALUES[(i * j + round) % VALUES.len()]);
                    h.append("X-Owned", String::from("owned"));
                    let fast = encode_200(ctx, &h, Some(5)).unwrap();
                    let expected = format!(
                        "HTTP/1.1 200 OK\r\n{}Server: gale\r\nContent-Length: 5\r\n\r\n",
                        h.iter()
                            .map(|(n, v)| format!("{}: {}\r\n", String::from_utf8_lossy(n), String::from_utf8_lossy(v)))
                            .collect::<String>()
                    );
                    assert_eq!(fast, expected);
                    let etag = crate::headers::HashEtag::from_hash(0xff);
                    let with = WithExtra { map: &h, etag: Some(&etag), extra: &[] };
                    let text = encode_200(ctx, with, Some(5)).unwrap();
                    assert!(text.contains("owned\r\nEtag: \"00000000000000ff\"\r\nServer"), "{text}");
                }
            }
        }
        // An invalid static field is refused every time: only valid lines are remembered.
        static BAD: &str = "v\r\nSet-Cookie: x=1";
        for _ in 0..3 {
            let mut h = HeaderMap::new();
            h.append("Content-Type", "text/plain");
            h.append("X-A", BAD);
            assert!(matches!(encode_200(ctx, &h, Some(1)), Err(EncodeError::InvalidHeaderValue(_))));
            let mut h = HeaderMap::new();
            h.append("X A", "text/plain");
            assert!(matches!(encode_200(ctx, &h, Some(1)), Err(EncodeError::InvalidHeaderName(_))));
        }
    }

    /// Encodes a 200 of `len` bytes at `now` with `encoder`, as the usual response is.
    fn encode_at<L: FieldList>(encoder: &ResponseEncoder, now: Instant, fields: L, len: u64) -> String {
        let ctx = get(Version::Http11, true).with_now(now);
        let mut out = BytesMut::from(&b"earlier"[..]);
        let head = encoder.encode_fields(&ctx, 200, None, fields, Some(len), &mut out).unwrap();
        assert_eq!(head, plain_head(len, false).0);
        String::from_utf8(out[b"earlier".len()..].to_vec()).unwrap()
    }

    fn head_kept() -> bool {
        HEAD_MEMO.with(|memo| memo.until.get().is_some())
    }

    #[test]
    fn the_same_usual_response_again_is_a_copy_of_the_last_head() {
        let now = Instant::now();
        let enc = ResponseEncoder::new();
        let h = headers(&[("Content-Type", "text/plain"), ("X-Frame-Options", "DENY")]);
        let etag = HashEtag::from_hash(0x3357_a100_db90_a754);
        let with = |etag| WithExtra { map: &h, etag, extra: &[] };
        let date = String::from_utf8(date::line_mono(now).to_vec()).unwrap();
        let expected = |fields: &str, etag: &str, server: &str, len: u64| {
            format!("HTTP/1.1 200 OK\r\n{fields}{etag}{server}{date}Content-Length: {len}\r\n\r\n")
        };
        let fields = "Content-Type: text/plain\r\nX-Frame-Options: DENY\r\n";
        let tag = "Etag: \"3357a100db90a754\"\r\n";
        let gale = "Server: gale\r\n";
        // Once to remember the parts, once to keep the head, then copies.
        for round in 0..4 {
            assert_eq!(encode_at(&enc, now, with(Some(&etag)), 13), expected(fields, tag, gale, 13));
            assert_eq!(head_kept(), round > 0, "{round}");
        }
        // Any other part is another head: the tag, the length, the fields, the server line.
        let other = HashEtag::from_hash(1);
        assert_eq!(
            encode_at(&enc, now, with(Some(&other)), 13),
            expected(fields, "Etag: \"0000000000000001\"\r\n", gale, 13)
        );
        assert_eq!(encode_at(&enc, now, with(None), 13), expected(fields, "", gale, 13));
        assert_eq!(encode_at(&enc, now, &h, 13), expected(fields, "", gale, 13));
        assert_eq!(encode_at(&enc, now, with(Some(&etag)), 12), expected(fields, tag, gale, 12));
        assert_eq!(encode_at(&enc, now, with(Some(&etag)), 12_345), expected(fields, tag, gale, 12_345));
        let none = ResponseEncoder::new().with_server(None).unwrap();
        let other_server = ResponseEncoder::new().with_server(Some("other")).unwrap();
        for _ in 0..3 {
            assert_eq!(encode_at(&none, now, with(Some(&etag)), 13), expected(fields, tag, "", 13));
            assert_eq!(encode_at(&enc, now, with(Some(&etag)), 13), expected(fields, tag, gale, 13));
            assert_eq!(
                encode_at(&other_server, now, with(Some(&etag)), 13),
                expected(fields, tag, "Server: other\r\n", 13)
            );
        }
        let maps = [
            headers(&[("Content-Type", "text/plain")]),
            headers(&[("Content-Type", "text/html"), ("X-Frame-Options", "DENY")]),
            headers(&[("Content-Type", "text/plain"), ("X-Frame-Options", "DENY"), ("X-A", "1")]),
            headers(&[("X-Frame-Options", "DENY"), ("Content-Type", "text/plain")]),
            headers(&[("A", "1"), ("B", "2"), ("C", "3"), ("D", "4"), ("E", "5")]),
            HeaderMap::new(),
        ];
        for map in maps.iter().chain(maps.iter()).chain([&h]) {
            let lines: String = map
                .iter()
                .map(|(n, v)| format!("{}: {}\r\n", String::from_utf8_lossy(n), String::from_utf8_lossy(v)))
                .collect();
            for _ in 0..3 {
                assert_eq!(encode_at(&enc, now, map, 13), expected(&lines, "", gale, 13));
            }
        }
        // Owned values are not recognized: each is written anew.
        for value in ["a", "b", "a", "b", "b", "b"] {
            let mut owned = headers(&[("Content-Type", "text/plain")]);
            owned.append("X-Owned", value.to_owned());
            let line = format!("Content-Type: text/plain\r\nX-Owned: {value}\r\n");
            assert_eq!(encode_at(&enc, now, &owned, 13), expected(&line, "", gale, 13));
        }
        // Nor are extra fields given as bytes.
        for value in [&b"\"a\""[..], b"\"b\"", b"\"a\"", b"\"b\"", b"\"b\"", b"\"b\""] {
            let extra = [("Etag", value)];
            let text = encode_at(&enc, now, WithExtra { map: &h, etag: None, extra: &extra }, 13);
            let tag = format!("Etag: {}\r\n", String::from_utf8_lossy(value));
            assert_eq!(text, expected(fields, &tag, gale, 13));
        }
    }

    #[test]
    fn a_kept_head_is_used_only_for_the_usual_response_while_its_date_is_right() {
        let now = Instant::now();
        let h = headers(&[("Content-Type", "text/plain")]);
        let enc = ResponseEncoder::new();
        let usual = encode_at(&enc, now, &h, 13);
        assert_eq!(encode_at(&enc, now, &h, 13), usual);
        assert!(head_kept());
        // Other responses with the same parts are encoded as ever.
        assert!(encode_200(get(Version::Http11, false), &h, Some(13)).unwrap().contains("Connection: close\r\n"));
        assert!(encode_200(get(Version::Http10, true), &h, Some(13)).unwrap().contains("Connection: keep-alive\r\n"));
        let head = ResponseContext::new(Version::Http11, &Method::Head, true);
        assert!(encode_200(head, &h, Some(13)).unwrap().contains("Content-Length: 13\r\n"));
        let ctx = get(Version::Http11, true).with_now(now);
        let mut out = BytesMut::new();
        ResponseEncoder::new().with_date(false).encode_fields(&ctx, 200, None, &h, Some(13), &mut out).unwrap();
        assert_eq!(
            &out[..],
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nServer: gale\r\nContent-Length: 13\r\n\r\n"
        );
        for (status, reason) in [(201, None), (200, Some("Fine"))] {
            let mut out = BytesMut::new();
            enc.encode_fields(&ctx, status, reason, &h, Some(13), &mut out).unwrap();
            let start = format!("HTTP/1.1 {status} {}\r\n", reason.or(reason_phrase(status)).unwrap());
            assert!(out.starts_with(start.as_bytes()));
        }
        assert_eq!(encode_at(&enc, now, &h, 13), usual);
        // Past its second, the head is written anew with the date of now (and kept again).
        let later = HEAD_MEMO.with(|memo| memo.until.get()).unwrap() + std::time::Duration::from_millis(1);
        let renewed = encode_at(&enc, later, &h, 13);
        let date = String::from_utf8(date::line_mono(later).to_vec()).unwrap();
        assert_eq!(
            renewed,
            format!("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nServer: gale\r\n{date}Content-Length: 13\r\n\r\n")
        );
        assert!(HEAD_MEMO.with(|memo| memo.until.get()).unwrap() > later);
        assert_eq!(encode_at(&enc, later, &h, 13), renewed);
    }

    #[test]
    fn a_whole_body_goes_with_the_usual_head_and_is_left_to_the_caller_otherwise() {
        let now = Instant::now();
        let enc = ResponseEncoder::new();
        let h = headers(&[("Content-Type", "text/plain")]);
        let whole = |ctx: ResponseContext, status, body: &[u8]| {
            let mut out = BytesMut::from(&b"earlier"[..]);
            let len = Some(body.len() as u64);
            let (mut head, written) =
                enc.encode_whole(&ctx.with_now(now), status, None, &h, len, Some(body), &mut out).unwrap();
            if !written {
                head.body.encode(body, &mut out).unwrap();
            }
            // Written with the head: the encoder takes no more.
            assert!(!written || head.body.encode(b"more", &mut BytesMut::new()).is_err());
            head.body.finish(&mut out).unwrap();
            (String::from_utf8(out[b"earlier".len()..].to_vec()).unwrap(), written)
        };
        let usual = get(Version::Http11, true);
        let head = encode_at(&enc, now, &h, 13);
        // Written anew, then kept, then copied: the body follows the head each time.
        for (round, body) in ["Hello, World!", "Hello, World!", "Hello, World!", "Hello, Earth!"].iter().enumerate() {
            assert_eq!(whole(usual, 200, body.as_bytes()), (format!("{head}{body}"), true), "{round}");
        }
        assert!(head_kept());
        assert_eq!(whole(usual, 200, b""), (encode_at(&enc, now, &h, 0), true));
        // Other responses leave the body to the caller.
        let (text, written) = whole(get(Version::Http11, false), 200, b"Hello, World!");
        assert!(!written && text.contains("Connection: close\r\n") && text.ends_with("\r\n\r\nHello, World!"));
        let (text, written) = whole(usual, 201, b"Hello, World!");
        assert!(!written && text.starts_with("HTTP/1.1 201 Created\r\n") && text.ends_with("\r\n\r\nHello, World!"));
        let (text, written) = whole(ResponseContext::new(Version::Http11, &Method::Head, true), 200, b"Hello, World!");
        assert!(!written && text.ends_with("Content-Length: 13\r\n\r\n"), "{text}");
    }

    #[test]
    fn custom_reasons_are_validated() {
        let h = HeaderMap::new();
        let ctx = get(Version::Http11, true);
        let (out, _) =
            encode(ctx, OutgoingResponse::new(200, &h).with_reason("Fine\tThanks").with_content_length(0)).unwrap();
        assert!(out.starts_with("HTTP/1.1 200 Fine\tThanks\r\n"));
        for reason in ["OK\r\nX-Injected: 1", "OK\n", "A\0", "\x7f"] {
            let res = OutgoingResponse::new(200, &h).with_reason(reason);
            assert_eq!(encode(ctx, res).unwrap_err(), EncodeError::InvalidReason, "{reason:?}");
        }
    }

    #[test]
    fn unknown_and_invalid_statuses() {
        let h = HeaderMap::new();
        let ctx = get(Version::Http11, true);
        let (out, _) = encode(ctx, OutgoingResponse::new(599, &h).with_content_length(0)).unwrap();
        assert!(out.starts_with("HTTP/1.1 599 Unknown\r\n"));
        for status in [0, 99, 1000] {
            assert_eq!(encode(ctx, OutgoingResponse::new(status, &h)).unwrap_err(), EncodeError::InvalidStatus(status));
        }
        assert_eq!(reason_phrase(404), Some("Not Found"));
        assert_eq!(reason_phrase(299), None);
    }

    #[test]
    fn context_follows_the_request() {
        let mut buf = BytesMut::from(&b"HEAD / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"[..]);
        let req = super::super::request::RequestParser::default().parse(&mut buf).unwrap().unwrap();
        let ctx = ResponseContext::for_request(&req);
        assert_eq!(ctx, ResponseContext::new(Version::Http10, &Method::Head, true));
        assert!(!ctx.with_keep_alive(false).keep_alive);
    }
}
