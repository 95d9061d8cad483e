//! Server role, reading: parsing request heads.
//!
//! [`RequestParser::parse`] takes the connection's read buffer and either leaves it alone (`Ok(None)`: the head
//! is incomplete), or splits the head off it and returns a [`RequestHead`] whose fields are slices of that
//! frozen head, or refuses the request with the status to answer.
//!
//! On top of `httparse`'s grammar it enforces what RFC 9110/9112 and Tornado 6.5 require of a server that
//! must not be fooled into reading a different request than the proxy in front of it did:
//!
//! * CRLF line endings only; no obsolete line folding; no whitespace before a colon; no control bytes;
//! * a single, valid `Host` in HTTP/1.1 requests;
//! * `Content-Length` as plain digits, duplicates only if identical, never with `Transfer-Encoding`;
//! * `Transfer-Encoding: chunked` exactly (case-insensitive), only in HTTP/1.1;
//! * a request target in the form its method allows;
//! * size limits ([`Limits`]) checked while the head is still arriving, with linear total work.

use std::fmt;
use std::mem::MaybeUninit;

use bytes::{Buf, BytesMut};

use super::body::BodyKind;
use super::error::{ParseError, ParseErrorKind};
use super::head::{self, Coding, Fields, HeadScanner, STACK_HEADERS};
use super::{Limits, Method, Version};
use crate::headers::HeaderMap;

/// Parses request heads off a connection's read buffer, remembering progress across partial reads.
///
/// # Examples
///
/// ```
/// use bytes::BytesMut;
/// use gale_http1::proto::{Limits, Method};
/// use gale_http1::proto::request::RequestParser;
///
/// let mut parser = RequestParser::new(Limits::default());
/// let mut buf = BytesMut::from(&b"GET /search?q=gale HTTP/1.1\r\nHost: example.com\r\n"[..]);
/// assert!(parser.parse(&mut buf).unwrap().is_none());
///
/// buf.extend_from_slice(b"\r\nnext request...");
/// let head = parser.parse(&mut buf).unwrap().unwrap();
/// assert_eq!(head.method(), &Method::Get);
/// assert_eq!(head.path(), "/search");
/// assert_eq!(head.query(), Some("q=gale"));
/// assert_eq!(head.headers().get("host"), Some("example.com"));
/// assert!(head.keep_alive());
/// assert_eq!(&buf[..], b"next request...");
/// ```
#[derive(Debug)]
pub struct RequestParser {
    limits: Limits,
    /// `limits.header_size()`, worked out once.
    max_head: usize,
    scanner: HeadScanner,
}

impl Default for RequestParser {
    fn default() -> Self {
        RequestParser::new(Limits::default())
    }
}

impl RequestParser {
    /// A parser enforcing `limits`.
    pub fn new(limits: Limits) -> Self {
        RequestParser { limits, max_head: limits.header_size(), scanner: HeadScanner::default() }
    }

    /// The limits enforced.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Parses the head at the start of `buf`.
    ///
    /// Returns `Ok(None)` when more bytes are needed (the buffer is untouched; call again once more arrived),
    /// or `Ok(Some(head))` with the head's bytes removed from `buf`, which then starts at the body. Call again
    /// when more bytes arrived: however the head is split, the work done stays linear in its length.
    ///
    /// # Errors
    ///
    /// A [`ParseError`] whose [`status`](ParseError::status) is the response to send (400, 414, 431, 501 or
    /// 505) before closing the connection. Limits are enforced on partial heads too.
    pub fn parse(&mut self, buf: &mut BytesMut) -> Result<Option<RequestHead>, ParseError> {
        Ok(self.parse_slice(buf)?.map(|(head, len)| {
            buf.advance(len);
            *head
        }))
    }

    /// [`parse`](RequestParser::parse) over borrowed input: returns the head and how many bytes of `buf` it
    /// took. The head keeps a copy of its own bytes (so a request that lives long never pins a large read
    /// buffer); `buf` itself is left alone. An incomplete head returns `Ok(None)`: call again with the same
    /// bytes followed by more.
    ///
    /// # Errors
    ///
    /// As [`parse`](RequestParser::parse).
    pub fn parse_slice(&mut self, buf: &[u8]) -> Result<Option<(Box<RequestHead>, usize)>, ParseError> {
        let Some(start) = head::skip_empty_line(buf, ParseErrorKind::InvalidRequestLine)? else {
            return Ok(None);
        };
        if self.scanner.ready(buf, start) {
            // Filled in place, on the heap: the head is large enough for moves to show in profiles.
            let mut head = pool::take();
            if let Some(complete) = parse_head(buf, start, &self.limits, self.max_head, &mut head)? {
                self.scanner.reset();
                head.headers.fill_owned_buffer(&buf[..complete.len], pool::NEW_BUFFER);
                head.len = complete.len as u32;
                // Mostly `GET`, told without the general match: the method of every head taken from the pool.
                let method = complete.method;
                debug_assert_eq!(head.method, Method::Get);
                if method != b"GET" {
                    head.method = Method::from_name(method);
                }
                return Ok(Some((head, complete.len)));
            }
            // Kept for the next attempt, or any other parse.
            pool::put(head);
        }
        self.scanner.wait(buf, start, &self.limits, ParseErrorKind::RequestLineTooLong)?;
        Ok(None)
    }
}

/// Request heads kept per thread for reuse: a head handed to a service comes back when its request is dropped,
/// with its allocation and its byte buffer, so that a steady stream of requests allocates nothing for heads.
pub(crate) mod pool {
    use super::RequestHead;
    use crate::proto::Method;
    use std::cell::{Cell, RefCell};

    /// Most heads kept per thread (in the list and the last slot).
    const MAX: usize = 64;
    /// Heads whose buffer is larger than this are not kept.
    const MAX_BUFFER: usize = 8 * 1024;
    /// Size of a new head buffer, so that it fits the heads that follow.
    pub(crate) const NEW_BUFFER: usize = 1024;

    thread_local! {
        // The head given back last, taken first: one slot, cheaper to reach than the list behind it. (A
        // service that answers before it drops its request hands back one head per request, so the list is
        // seldom touched.)
        static LAST: Cell<Option<Box<RequestHead>>> = const { Cell::new(None) };
        // The boxes are what is reused: a request holds its head by `Box`.
        #[allow(clippy::vec_box)]
        static POOL: RefCell<Vec<Box<RequestHead>>> = const { RefCell::new(Vec::new()) };
    }

    /// Drops what a head holds that is not worth keeping: an extension method's bytes, a large buffer. Out of
    /// line, as it is seldom needed.
    #[cold]
    #[inline(never)]
    fn release(head: &mut RequestHead) {
        head.method = Method::Get;
        if head.headers.buffer_capacity() > MAX_BUFFER {
            drop(head.headers.take_owned_buffer());
        }
    }

    /// A blank head, from the pool if it has one. Its method is `GET`.
    #[inline]
    pub(crate) fn take() -> Box<RequestHead> {
        match LAST.try_with(Cell::take) {
            Ok(Some(head)) => head,
            _ => take_listed(),
        }
    }

    /// [`take`] when the last head given back is gone: from the list, or a new one.
    #[inline(never)]
    fn take_listed() -> Box<RequestHead> {
        POOL.try_with(|p| p.borrow_mut().pop()).ok().flatten().unwrap_or_else(|| Box::new(RequestHead::blank()))
    }

    /// Empties `head` and keeps it for [`take`], if there is room.
    ///
    /// The usual path makes no call but a last one, so that it needs no registers saved.
    #[inline]
    pub(crate) fn put(mut head: Box<RequestHead>) {
        // The rest of the head is overwritten by the next parse.
        head.headers.clear_fields();
        if matches!(head.method, Method::Extension(_)) || head.headers.buffer_capacity() > MAX_BUFFER {
            return put_released(head);
        }
        // Every head kept says `GET`, which the parser then need not store.
        head.method = Method::Get;
        keep(head);
    }

    /// [`put`] for a head that holds what is not worth keeping.
    #[cold]
    #[inline(never)]
    fn put_released(mut head: Box<RequestHead>) {
        release(&mut head);
        keep(head);
    }

    /// Keeps the emptied `head` in the last slot, moving the head there to the list.
    #[inline(always)]
    fn keep(head: Box<RequestHead>) {
        if let Ok(Some(earlier)) = LAST.try_with(|last| last.replace(Some(head))) {
            put_listed(earlier);
        }
    }

    /// Keeps `head` in the list behind the last head given back, if there is room.
    #[inline(never)]
    fn put_listed(head: Box<RequestHead>) {
        let _ = POOL.try_with(|p| {
            let mut p = p.borrow_mut();
            if p.len() < MAX - 1 {
                p.push(head);
            }
        });
    }
}

/// The shape of a request target (RFC 9112 §3.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TargetForm {
    /// `/path?query`, the usual form.
    Origin,
    /// `http://authority/path?query`, sent to proxies.
    Absolute,
    /// `host:port`, for `CONNECT` only.
    Authority,
    /// `*`, for `OPTIONS` only.
    Asterisk,
}

/// A parsed request head. Every field is a slice of the head's bytes, shared and never copied; the target is
/// kept apart as a string.
#[derive(Clone)]
pub struct RequestHead {
    method: Method,
    version: Version,
    /// The target, copied from the string `httparse` validated as UTF-8, so that the target and its parts are
    /// handed out as strings without validating them again (a copy of a short target costs less than that).
    /// Its allocation is reused with the head's.
    target: String,
    /// Length of the target before its `?`, or the target's length if it has no query; found at parse time
    /// so that `path` and `query` are slices, not searches.
    path_end: u32,
    form: TargetForm,
    /// Authority of absolute- and authority-form targets, as offsets into the target.
    authority: (u32, u32),
    /// The fields; their buffer holds the head's bytes, possibly followed by unused ones (buffers are reused).
    headers: HeaderMap,
    /// Length of the head in the buffer.
    len: u32,
    body: BodyKind,
    keep_alive: bool,
    /// What the fields say about the connection, as [`Fields`]' bits: the facts servers seldom ask for
    /// (`expects_continue`, `is_upgrade`) are told from them when asked, rather than for every request.
    connection: u16,
}

impl RequestHead {
    fn blank() -> Self {
        RequestHead {
            method: Method::Get,
            version: Version::Http11,
            target: String::new(),
            path_end: 0,
            form: TargetForm::Origin,
            authority: (0, 0),
            headers: HeaderMap::new(),
            len: 0,
            body: BodyKind::Empty,
            keep_alive: false,
            connection: 0,
        }
    }

    /// The method.
    pub fn method(&self) -> &Method {
        &self.method
    }

    /// The protocol version.
    pub fn version(&self) -> Version {
        self.version
    }

    /// The request target as sent (e.g. `/a/b?c=d`).
    pub fn target(&self) -> &str {
        &self.target
    }

    /// The form of the target.
    pub fn target_form(&self) -> TargetForm {
        self.form
    }

    /// Whether the target is in absolute form (`http://host/path`); `host()` then comes from it.
    pub fn is_absolute_form(&self) -> bool {
        self.form == TargetForm::Absolute
    }

    /// The path: the target up to `?`. For an absolute-form target, the part after the authority (`/` if
    /// empty); for `*`, `*`; for `CONNECT`'s `host:port`, the whole target.
    pub fn path(&self) -> &str {
        // Mostly an origin-form target without a query: the whole target, with no bounds to check.
        if self.form == TargetForm::Origin && self.path_end as usize == self.target.len() {
            return &self.target;
        }
        let start = match self.form {
            TargetForm::Absolute => self.authority.0 + self.authority.1,
            _ => 0,
        };
        // Offsets found at parse time, next to ASCII bytes: `get` never fails.
        let path = self.target.get(start as usize..self.path_end as usize).unwrap_or_default();
        if path.is_empty() { "/" } else { path }
    }

    /// The query: what follows the first `?` of the target, if there is one.
    pub fn query(&self) -> Option<&str> {
        let end = self.path_end as usize;
        (end < self.target.len()).then(|| self.target.get(end + 1..).unwrap_or_default())
    }

    /// The authority of an absolute-form target (`example.com:8080` in `http://example.com:8080/`) or of a
    /// `CONNECT` target.
    pub fn authority(&self) -> Option<&str> {
        match self.form {
            TargetForm::Absolute | TargetForm::Authority => {
                let (start, len) = (self.authority.0 as usize, self.authority.1 as usize);
                Some(self.target.get(start..start + len).unwrap_or_default())
            }
            _ => None,
        }
    }

    /// The host the request is for, port included: the target's authority if it has one (which RFC 9112
    /// §3.2.2 says overrides `Host`), else the `Host` header. `None` if neither names one.
    pub fn host(&self) -> Option<&str> {
        self.authority().or_else(|| self.headers.get("host")).filter(|h| !h.is_empty())
    }

    /// The header fields.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The header fields, for changes. The framing and connection facts below were computed at parse time
    /// and do not follow such changes.
    pub fn headers_mut(&mut self) -> &mut HeaderMap {
        &mut self.headers
    }

    /// How the body that follows is framed: never [`BodyKind::CloseDelimited`] for a request.
    pub fn body_kind(&self) -> BodyKind {
        self.body
    }

    /// Whether the client wants the connection kept open after the response: HTTP/1.1 unless
    /// `Connection: close`; HTTP/1.0 only with `Connection: keep-alive`.
    pub fn keep_alive(&self) -> bool {
        self.keep_alive
    }

    /// Whether an HTTP/1.1 client sent `Expect: 100-continue` and waits for `100 Continue` before the body
    /// (RFC 9110 §10.1.1; HTTP/1.0 expectations are ignored).
    pub fn expects_continue(&self) -> bool {
        self.version == Version::Http11 && self.says(Fields::EXPECT_CONTINUE)
    }

    /// Whether an HTTP/1.1 client asks to switch protocols: `Connection: upgrade` and an `Upgrade` header
    /// (whose value names the protocol, e.g. `websocket`).
    pub fn is_upgrade(&self) -> bool {
        self.version == Version::Http11 && self.says(Fields::CONNECTION_UPGRADE | Fields::UPGRADE)
    }

    /// Whether the fields say every one of `bits` ([`Fields`]' connection bits).
    fn says(&self, bits: u16) -> bool {
        self.connection & bits == bits
    }

    /// The whole head as received.
    pub fn head_bytes(&self) -> &[u8] {
        // Empty if the fields were cleared through `headers_mut`.
        self.headers.buffer().get(..self.len as usize).unwrap_or_default()
    }
}

impl fmt::Debug for RequestHead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestHead")
            .field("method", &self.method)
            .field("target", &self.target())
            .field("version", &self.version)
            .field("headers", &self.headers)
            .field("body", &self.body)
            .finish()
    }
}

/// Where a complete head ends, and its method.
struct Complete<'b> {
    len: usize,
    /// A slice of the parsed bytes, as `httparse` found it: no range to check again.
    method: &'b [u8],
}

/// Parses and checks a head starting at `start` in `buf` into `head` (all but its method and buffer), refusing
/// a head longer than `max_head` bytes. Returns `None` if the head is incomplete.
fn parse_head<'b>(
    buf: &'b [u8],
    start: usize,
    limits: &Limits,
    max_head: usize,
    head: &mut RequestHead,
) -> Result<Option<Complete<'b>>, ParseError> {
    let mut stack = [const { MaybeUninit::uninit() }; STACK_HEADERS];
    // Made only for limits above the stack's room, so that the usual path neither builds nor drops a `Vec`.
    let mut heap;
    let slots = if limits.max_headers <= STACK_HEADERS {
        &mut stack[..limits.max_headers]
    } else {
        heap = head::heap_slots(limits.max_headers);
        &mut heap[..]
    };
    let mut req = httparse::Request::new(&mut []);
    let len = match req.parse_with_uninit_headers(buf, slots) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(head::map_httparse_error(e, &buf[start..], ParseErrorKind::InvalidRequestLine)),
    };
    if len > max_head {
        return Err(ParseErrorKind::HeadTooLarge.into());
    }
    let (Some(method), Some(target), Some(minor)) = (req.method, req.path, req.version) else {
        return Err(ParseErrorKind::InvalidRequestLine.into());
    };
    let method_at = head::offset(buf, method.as_bytes());
    let target_at = head::offset(buf, target.as_bytes());
    // `SP HTTP/1.x` follows the target; the line ending is checked with the fields.
    let line_end = target_at + target.len() + 9;
    // A head no longer than the limit holds a request line within it, told without working out the line's
    // length.
    if len > limits.max_request_line && line_end + 2 - method_at > limits.max_request_line {
        return Err(ParseErrorKind::RequestLineTooLong.into());
    }
    let version = Version::from_minor(minor);

    let fields = head::collect_fields(buf, req.headers, line_end, len, &mut head.headers)?;

    let (form, authority) = target_form(method.as_bytes(), target.as_bytes())?;

    // Mostly one valid `Host`, told by one test; the cases it leaves are told apart in order.
    if fields.hosts != 1 || fields.has(Fields::HOST_INVALID) {
        if fields.hosts > 1 {
            return Err(ParseErrorKind::MultipleHosts.into());
        }
        if fields.has(Fields::HOST_INVALID) {
            return Err(ParseErrorKind::InvalidHost.into());
        }
        if fields.hosts == 0 && version == Version::Http11 {
            return Err(ParseErrorKind::MissingHost.into());
        }
    }

    let body = match fields.coding {
        Coding::Absent => BodyKind::from_length(fields.content_length.unwrap_or(0)),
        _ if fields.content_length.is_some() => return Err(ParseErrorKind::ContentLengthWithTransferEncoding.into()),
        // RFC 9112 §6.1: HTTP/1.0 has no transfer codings; framing would be guesswork.
        _ if version == Version::Http10 => return Err(ParseErrorKind::InvalidTransferEncoding.into()),
        Coding::Chunked => BodyKind::Chunked,
        Coding::Unsupported { chunked_last: true } => return Err(ParseErrorKind::UnsupportedTransferEncoding.into()),
        // RFC 9112 §6.3: chunked not last in a request leaves the length unknowable.
        Coding::Unsupported { chunked_last: false } | Coding::Malformed => {
            return Err(ParseErrorKind::InvalidTransferEncoding.into());
        }
    };

    head.version = version;
    head.target.clear();
    match target.as_bytes() {
        // A one-byte target (`/`, the usual home page; `*`) is pushed inline as a character, rather than copied
        // by a call; any other is copied.
        &[b] if b.is_ascii() => head.target.push(char::from(b)),
        _ => head.target.push_str(target),
    }
    // A plain scan: targets are short, and most are just a path.
    head.path_end = target.bytes().position(|b| b == b'?').unwrap_or(target.len()) as u32;
    head.form = form;
    head.authority = authority;
    head.body = body;
    // Without branches: `&` and `|` on booleans, not `&&` and `||`.
    head.keep_alive = !fields.has(Fields::CLOSE) & ((version == Version::Http11) | fields.has(Fields::KEEP_ALIVE));
    head.connection = fields.bits();
    Ok(Some(Complete { len, method: method.as_bytes() }))
}

/// Classifies a target, returning its form and the authority's offset and length within it.
#[inline(always)]
fn target_form(method: &[u8], target: &[u8]) -> Result<(TargetForm, (u32, u32)), ParseErrorKind> {
    // The usual origin form, without a call.
    if let [b'/', ..] = target {
        if method != b"CONNECT" {
            return Ok((TargetForm::Origin, (0, 0)));
        }
    }
    other_target_form(method, target)
}

/// [`target_form`] for targets other than the origin form of a method other than `CONNECT`.
#[inline(never)]
fn other_target_form(method: &[u8], target: &[u8]) -> Result<(TargetForm, (u32, u32)), ParseErrorKind> {
    let len = target.len() as u32;
    if method == b"CONNECT" {
        // authority-form = uri-host ":" port
        let valid = match target.iter().rposition(|&b| b == b':') {
            Some(colon) => colon > 0 && head::parse_decimal(&target[colon + 1..]).is_some_and(|p| p <= 65535),
            None => false,
        };
        return if valid && head::is_valid_host(target) {
            Ok((TargetForm::Authority, (0, len)))
        } else {
            Err(ParseErrorKind::InvalidTarget)
        };
    }
    match target {
        [b'/', ..] => Ok((TargetForm::Origin, (0, 0))),
        b"*" if method == b"OPTIONS" => Ok((TargetForm::Asterisk, (0, 0))),
        _ => {
            // absolute-form: scheme "://" authority [path-abempty] ["?" query]
            let colon = memchr::memchr(b':', target).ok_or(ParseErrorKind::InvalidTarget)?;
            let scheme = &target[..colon];
            let scheme_ok = scheme.first().is_some_and(u8::is_ascii_alphabetic)
                && scheme.iter().all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
            if !scheme_ok || !target[colon..].starts_with(b"://") {
                return Err(ParseErrorKind::InvalidTarget);
            }
            let auth_start = colon + 3;
            let auth_len = target[auth_start..].iter().position(|&b| matches!(b, b'/' | b'?' | b'#'));
            let auth_len = auth_len.unwrap_or(target.len() - auth_start);
            let authority = &target[auth_start..auth_start + auth_len];
            // No userinfo (RFC 9110 §4.2.4) and a real host.
            if authority.is_empty() || !head::is_valid_host(authority) {
                return Err(ParseErrorKind::InvalidTarget);
            }
            Ok((TargetForm::Absolute, (auth_start as u32, auth_len as u32)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BROWSER: &[u8] = b"GET /static/app.js?v=3&lang=en HTTP/1.1\r\n\
Host: www.example.com\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n\
Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n\
Accept-Language: en-US,en;q=0.5\r\n\
Accept-Encoding: gzip, deflate, br, zstd\r\n\
Connection: keep-alive\r\n\
Cookie: session=0123456789abcdef; theme=dark\r\n\
Upgrade-Insecure-Requests: 1\r\n\
Sec-Fetch-Dest: document\r\n\
Sec-Fetch-Mode: navigate\r\n\
Sec-Fetch-Site: none\r\n\
Priority: u=0, i\r\n\r\n";

    fn parse_with(limits: Limits, input: &[u8]) -> Result<Option<RequestHead>, ParseError> {
        RequestParser::new(limits).parse(&mut BytesMut::from(input))
    }

    fn parse(input: &[u8]) -> RequestHead {
        match parse_with(Limits::default(), input) {
            Ok(Some(head)) => head,
            other => panic!("{:?} for {:?}", other.map(|h| h.map(|_| ())), String::from_utf8_lossy(input)),
        }
    }

    fn error(input: &[u8]) -> ParseErrorKind {
        match parse_with(Limits::default(), input) {
            Err(e) => e.kind(),
            Ok(h) => panic!("accepted {:?}: {h:?}", String::from_utf8_lossy(input)),
        }
    }

    /// A request with `field` added to a valid HTTP/1.1 head.
    fn with_field(field: &str) -> Vec<u8> {
        format!("POST /upload HTTP/1.1\r\nHost: h\r\n{field}\r\n\r\n").into_bytes()
    }

    /// Feeds `input` in pieces (of the given sizes, the rest at the end), returning the head and what is left.
    fn feed(input: &[u8], cuts: &[usize]) -> Result<(RequestHead, Vec<u8>), ParseError> {
        Ok(try_feed(input, cuts)?.expect("head never completed"))
    }

    /// [`feed`], with `None` for an input that never completes a head.
    fn try_feed(input: &[u8], cuts: &[usize]) -> Result<Option<(RequestHead, Vec<u8>)>, ParseError> {
        let mut parser = RequestParser::new(Limits::default());
        let mut buf = BytesMut::new();
        let mut fed = 0;
        for &cut in cuts.iter().chain(std::iter::once(&input.len())) {
            let end = (fed + cut).min(input.len());
            buf.extend_from_slice(&input[fed..end]);
            fed = end;
            if let Some(head) = parser.parse(&mut buf)? {
                let mut rest = buf.to_vec();
                rest.extend_from_slice(&input[fed..]);
                return Ok(Some((head, rest)));
            }
            assert_eq!(buf.len(), fed, "a partial parse must not consume");
        }
        Ok(None)
    }

    /// Whether `input` holds an empty line, which ends a head.
    fn ends_head(input: &[u8]) -> bool {
        input.windows(2).any(|w| w == b"\n\n") || input.windows(3).any(|w| w == b"\n\r\n")
    }

    fn summary(head: &RequestHead) -> String {
        format!("{head:?} {:?} {} {}", head.path(), head.keep_alive(), head.expects_continue())
    }

    #[test]
    fn parses_a_typical_browser_request() {
        let mut input = BROWSER.to_vec();
        input.extend_from_slice(b"GET /next");
        let mut buf = BytesMut::from(&input[..]);
        let head = RequestParser::new(Limits::default()).parse(&mut buf).unwrap().unwrap();
        assert_eq!(head.method(), &Method::Get);
        assert_eq!(head.version(), Version::Http11);
        assert_eq!(head.target(), "/static/app.js?v=3&lang=en");
        assert_eq!(head.path(), "/static/app.js");
        assert_eq!(head.query(), Some("v=3&lang=en"));
        assert_eq!(head.target_form(), TargetForm::Origin);
        assert_eq!(head.host(), Some("www.example.com"));
        assert_eq!(head.headers().len(), 12);
        assert_eq!(head.headers().get("accept-encoding"), Some("gzip, deflate, br, zstd"));
        assert_eq!(head.headers().get("priority"), Some("u=0, i"));
        assert_eq!(head.body_kind(), BodyKind::Empty);
        assert!(head.keep_alive());
        assert!(!head.expects_continue());
        assert!(!head.is_upgrade());
        assert_eq!(head.head_bytes(), BROWSER);
        assert_eq!(&buf[..], b"GET /next", "pipelined bytes stay in the buffer");
    }

    #[test]
    fn fields_share_the_head_buffer() {
        let head = parse(BROWSER);
        let value = head.headers().get_bytes("cookie").unwrap();
        let base = head.head_bytes().as_ptr() as usize;
        let at = value.as_ptr() as usize - base;
        assert!(at < BROWSER.len());
        assert_eq!(&BROWSER[at..at + value.len()], value);
    }

    #[test]
    fn incomplete_heads_return_none_and_leave_the_buffer() {
        for end in 0..BROWSER.len() {
            let mut buf = BytesMut::from(&BROWSER[..end]);
            assert!(RequestParser::new(Limits::default()).parse(&mut buf).unwrap().is_none(), "at {end}");
            assert_eq!(buf.len(), end);
        }
    }

    #[test]
    fn split_at_every_point_gives_the_same_head() {
        let whole = summary(&parse(BROWSER));
        for cut in 0..=BROWSER.len() {
            let (head, rest) = feed(BROWSER, &[cut]).unwrap();
            assert_eq!(summary(&head), whole, "cut at {cut}");
            assert!(rest.is_empty());
        }
    }

    #[test]
    fn byte_by_byte_and_random_splits_give_the_same_head() {
        let whole = summary(&parse(BROWSER));
        let (head, _) = feed(BROWSER, &vec![1; BROWSER.len()]).unwrap();
        assert_eq!(summary(&head), whole);
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        for _ in 0..200 {
            let mut cuts = Vec::new();
            while cuts.iter().sum::<usize>() < BROWSER.len() {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                cuts.push((seed % 40) as usize);
            }
            let (head, _) = feed(BROWSER, &cuts).unwrap();
            assert_eq!(summary(&head), whole, "cuts {cuts:?}");
        }
    }

    #[test]
    fn errors_are_the_same_whatever_the_split() {
        let bad = b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n";
        for cut in 0..bad.len() {
            assert_eq!(
                feed(bad, &[cut]).map(|_| ()).unwrap_err().kind(),
                ParseErrorKind::ContentLengthWithTransferEncoding,
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn a_trickled_head_is_parsed_in_full_only_when_complete() {
        let mut parser = RequestParser::new(Limits::default());
        let mut buf = BytesMut::new();
        let mut value = b"GET / HTTP/1.1\r\nHost: a\r\nX-Long: ".to_vec();
        value.resize(value.len() + 30_000, b'v');
        value.extend_from_slice(b"\r\n\r\n");
        for &b in &value[..value.len() - 1] {
            buf.extend_from_slice(&[b]);
            assert!(parser.parse(&mut buf).unwrap().is_none());
        }
        buf.extend_from_slice(b"\n");
        let total = buf.len();
        let head = parser.parse(&mut buf).unwrap().unwrap();
        assert_eq!(head.headers().get_bytes("x-long").unwrap().len(), 30_000);
        // Full parses at 1, 2, 4, ... bytes and at the end, not one per byte: linear work in total.
        assert!(parser.scanner.full_parses <= 18, "{} full parses", parser.scanner.full_parses);
        assert!(parser.scanner.parsed_bytes <= 3 * total, "{} bytes parsed for {total}", parser.scanner.parsed_bytes);
    }

    #[test]
    fn a_malformed_head_that_never_ends_is_caught_before_the_size_limit() {
        let mut parser = RequestParser::new(Limits::default());
        let mut buf = BytesMut::from(&b"GET / HTTP/1.1\r\nHo"[..]);
        assert!(parser.parse(&mut buf).unwrap().is_none());
        buf.extend_from_slice(b"st: a\0b\r\nX: ");
        let mut err = None;
        for _ in 0..100 {
            buf.extend_from_slice(b"y");
            if let Err(e) = parser.parse(&mut buf) {
                err = Some(e.kind());
                break;
            }
        }
        assert_eq!(err, Some(ParseErrorKind::InvalidHeaderValue));
        assert!(buf.len() < 100, "caught after {} bytes", buf.len());
    }

    #[test]
    fn parser_resets_between_pipelined_requests() {
        let mut parser = RequestParser::new(Limits::default());
        let mut buf = BytesMut::from(&b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHo"[..]);
        assert_eq!(parser.parse(&mut buf).unwrap().unwrap().path(), "/1");
        assert!(parser.parse(&mut buf).unwrap().is_none());
        buf.extend_from_slice(b"st: a\r\n\r\n");
        assert_eq!(parser.parse(&mut buf).unwrap().unwrap().path(), "/2");
        assert!(buf.is_empty());
    }

    #[test]
    fn rejects_content_length_with_transfer_encoding() {
        assert_eq!(
            error(&with_field("Content-Length: 5\r\nTransfer-Encoding: chunked")),
            ParseErrorKind::ContentLengthWithTransferEncoding
        );
        assert_eq!(
            error(&with_field("Transfer-Encoding: chunked\r\nContent-Length: 0")),
            ParseErrorKind::ContentLengthWithTransferEncoding
        );
    }

    #[test]
    fn rejects_differing_content_lengths() {
        assert_eq!(
            error(&with_field("Content-Length: 5\r\nContent-Length: 6")),
            ParseErrorKind::ConflictingContentLength
        );
        assert_eq!(error(&with_field("Content-Length: 5, 6")), ParseErrorKind::ConflictingContentLength);
    }

    #[test]
    fn accepts_identical_content_length_duplicates() {
        for field in ["Content-Length: 5, 5", "Content-Length: 5\r\nContent-Length: 5", "Content-Length: 5,005"] {
            assert_eq!(parse(&with_field(field)).body_kind(), BodyKind::Length(5), "{field}");
        }
    }

    #[test]
    fn rejects_malformed_content_length() {
        for value in ["", "abc", "+5", "-5", "5 5", "0x5", "5.0", "1e3", ",5", "5,", "18446744073709551616"] {
            assert_eq!(
                error(&with_field(&format!("Content-Length: {value}"))),
                ParseErrorKind::InvalidContentLength,
                "{value:?}"
            );
        }
    }

    #[test]
    fn content_length_sets_the_body_length() {
        assert_eq!(parse(&with_field("Content-Length: 42")).body_kind(), BodyKind::Length(42));
        assert_eq!(parse(&with_field("content-length: 0")).body_kind(), BodyKind::Empty);
        assert_eq!(parse(&with_field("Content-Length:\t7 ")).body_kind(), BodyKind::Length(7));
    }

    #[test]
    fn accepts_only_a_lone_chunked_transfer_encoding() {
        for value in ["chunked", "Chunked", "CHUNKED", "chunked "] {
            assert_eq!(parse(&with_field(&format!("Transfer-Encoding: {value}"))).body_kind(), BodyKind::Chunked);
        }
        let cases = [
            ("gzip, chunked", ParseErrorKind::UnsupportedTransferEncoding),
            ("gzip\r\nTransfer-Encoding: chunked", ParseErrorKind::UnsupportedTransferEncoding),
            ("gzip", ParseErrorKind::InvalidTransferEncoding),
            ("identity", ParseErrorKind::InvalidTransferEncoding),
            ("chunked, gzip", ParseErrorKind::InvalidTransferEncoding),
            ("chunked, chunked", ParseErrorKind::InvalidTransferEncoding),
            ("chunked\r\nTransfer-Encoding: chunked", ParseErrorKind::InvalidTransferEncoding),
            ("chunked,", ParseErrorKind::InvalidTransferEncoding),
            (", chunked", ParseErrorKind::InvalidTransferEncoding),
            ("", ParseErrorKind::InvalidTransferEncoding),
            ("\"chunked\"", ParseErrorKind::InvalidTransferEncoding),
            ("chunked;q=1", ParseErrorKind::InvalidTransferEncoding),
        ];
        for (value, kind) in cases {
            assert_eq!(error(&with_field(&format!("Transfer-Encoding: {value}"))), kind, "{value:?}");
        }
        assert_eq!(error(&with_field("Transfer-Encoding: gzip, chunked")).status(), 501);
    }

    #[test]
    fn rejects_transfer_encoding_in_http10() {
        let req = b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(error(req), ParseErrorKind::InvalidTransferEncoding);
    }

    #[test]
    fn rejects_forbidden_bytes_in_header_values() {
        for value in ["a\0b", "a\rb", "a\x01b", "a\x0bb", "a\x0cb", "a\x1bb", "a\x7fb", "\x0bleading"] {
            let kind = error(&with_field(&format!("X-Test: {value}")));
            assert_eq!(kind, ParseErrorKind::InvalidHeaderValue, "{value:?}");
        }
    }

    #[test]
    fn rejects_forbidden_bytes_in_header_names() {
        for name in ["X\0A", "X\x01A", "X(A)", "X\"A", "X/A", "Caf\u{e9}", "X\x7fA", ""] {
            let kind = error(&with_field(&format!("{name}: v")));
            assert!(
                matches!(kind, ParseErrorKind::InvalidHeaderName | ParseErrorKind::InvalidHeaderValue),
                "{name:?}: {kind:?}"
            );
        }
        assert_eq!(error(&with_field("NoColon")), ParseErrorKind::InvalidHeaderName);
    }

    #[test]
    fn every_byte_in_a_header_value_is_classified_as_tornado_does() {
        for b in 0u8..=255 {
            // Long enough for httparse's vectorized scanners, with the byte in the middle.
            let mut req = b"GET / HTTP/1.1\r\nHost: h\r\nX-Test: ".to_vec();
            req.extend_from_slice(&[b'a'; 40]);
            req.push(b);
            req.extend_from_slice(&[b'a'; 40]);
            req.extend_from_slice(b"\r\n\r\n");
            let allowed = b == b'\t' || b == b' ' || (0x21..=0x7e).contains(&b) || b >= 0x80;
            let result = parse_with(Limits::default(), &req);
            if allowed {
                let head = result.unwrap().unwrap();
                assert_eq!(head.headers().get_bytes("x-test").unwrap()[40], b);
            } else {
                assert!(result.is_err(), "byte {b:#04x} accepted");
            }
        }
    }

    #[test]
    fn every_byte_in_a_header_name_is_classified_as_a_token() {
        // Every byte but the colon, which ends the name.
        for b in (0u8..=255).filter(|&b| b != b':') {
            let mut req = b"GET / HTTP/1.1\r\nHost: h\r\nX-Long-Header-Name-Prefix-".to_vec();
            req.push(b);
            req.extend_from_slice(b"-Suffix-Of-Some-Length: v\r\n\r\n");
            let result = parse_with(Limits::default(), &req);
            let token = crate::headers::is_token(&[b]);
            assert_eq!(result.is_ok(), token, "byte {b:#04x}");
        }
    }

    #[test]
    fn rejects_whitespace_before_the_colon() {
        assert_eq!(error(&with_field("Content-Length : 5")), ParseErrorKind::InvalidHeaderName);
        assert_eq!(error(&with_field("Transfer-Encoding\t: chunked")), ParseErrorKind::InvalidHeaderName);
    }

    #[test]
    fn rejects_obsolete_line_folding() {
        assert_eq!(error(&with_field("X-A: one\r\n two")), ParseErrorKind::ObsoleteLineFolding);
        assert_eq!(error(&with_field("X-A: one\r\n\ttwo")), ParseErrorKind::ObsoleteLineFolding);
        assert_eq!(error(b"GET / HTTP/1.1\r\n Host: h\r\n\r\n"), ParseErrorKind::ObsoleteLineFolding);
    }

    #[test]
    fn values_are_stripped_of_space_and_tab_only() {
        let head = parse(&with_field("X-A: \t padded value \t "));
        assert_eq!(head.headers().get("x-a"), Some("padded value"));
        let head = parse(&with_field("X-Empty:   "));
        assert_eq!(head.headers().get("x-empty"), Some(""));
        // Other ASCII whitespace is not stripped but refused (Tornado 6.4.2).
        assert_eq!(error(&with_field("X-A: \x0cvalue")), ParseErrorKind::InvalidHeaderValue);
        assert_eq!(error(&with_field("X-A: value\x0b")), ParseErrorKind::InvalidHeaderValue);
    }

    #[test]
    fn obs_text_values_are_kept_as_bytes() {
        let head = parse(&with_field("X-Latin: caf\u{e9}"));
        assert_eq!(head.headers().get("x-latin"), Some("caf\u{e9}"));
        let head = parse(b"GET / HTTP/1.1\r\nHost: h\r\nX-Latin: caf\xe9\r\n\r\n");
        assert_eq!(head.headers().get("x-latin"), None);
        assert_eq!(head.headers().get_bytes("x-latin"), Some(&b"caf\xe9"[..]));
    }

    #[test]
    fn rejects_control_characters_in_the_request_line() {
        for line in [
            &b"GET /a\x01b HTTP/1.1"[..],
            b"GET /a\x7fb HTTP/1.1",
            b"GET /a\0b HTTP/1.1",
            b"G\0T / HTTP/1.1",
            b"GET\t/ HTTP/1.1",
            b"GET  / HTTP/1.1",
            b"GET / HTTP/1.1 ",
            b"GET /a b HTTP/1.1",
            b"GET /\xff HTTP/1.1",
            b" GET / HTTP/1.1",
            b"GET / \x0bHTTP/1.1",
            b"GET /",
        ] {
            let mut req = line.to_vec();
            req.extend_from_slice(b"\r\nHost: h\r\n\r\n");
            let kind = error(&req);
            assert_eq!(kind, ParseErrorKind::InvalidRequestLine, "{:?}", String::from_utf8_lossy(line));
        }
    }

    #[test]
    fn rejects_bare_line_feeds() {
        assert_eq!(error(b"GET / HTTP/1.1\nHost: h\r\n\r\n"), ParseErrorKind::InvalidLineEnding);
        assert_eq!(error(b"GET / HTTP/1.1\r\nHost: h\nX: y\r\n\r\n"), ParseErrorKind::InvalidLineEnding);
        assert_eq!(error(b"GET / HTTP/1.1\r\nHost: h\r\n\n"), ParseErrorKind::InvalidLineEnding);
        assert_eq!(error(b"GET / HTTP/1.1\r\nHost: h  \n\r\n"), ParseErrorKind::InvalidLineEnding);
        assert_eq!(error(b"GET / HTTP/1.1\n\n"), ParseErrorKind::InvalidLineEnding);
        assert_eq!(error(b"GET / HTTP/1.1\r\nX-Empty:\nHost: h\r\n\r\n"), ParseErrorKind::InvalidLineEnding);
    }

    #[test]
    fn every_line_ending_must_be_crlf_whatever_precedes_it() {
        // Lines whose content ends in a value, an empty value, trailing whitespace, or the start line itself.
        let heads: [&[&str]; 3] = [
            &["GET / HTTP/1.1", "Host: h", "X-Empty:", "X-Ws: v \t", "X-Empty-Ws: \t", "Accept: */*", ""],
            &["GET / HTTP/1.0", ""],
            &["\r\nGET / HTTP/1.0", "X-Ws:  ", ""],
        ];
        for lines in heads {
            let head = parse(format!("{}\r\n", lines.join("\r\n")).as_bytes());
            assert_eq!(head.headers().len(), lines.len() - 2);
            for (name, value) in head.headers() {
                assert!(!value.ends_with(b" ") && !value.ends_with(b"\t"), "{name:?} {value:?}");
            }
            for bare in 0..lines.len() {
                let mut req = String::new();
                for (i, line) in lines.iter().enumerate() {
                    req.push_str(line);
                    req.push_str(if i == bare { "\n" } else { "\r\n" });
                }
                assert_eq!(error(req.as_bytes()), ParseErrorKind::InvalidLineEnding, "{req:?}");
            }
        }
    }

    #[test]
    fn tolerates_one_empty_line_before_the_request_line() {
        let head = parse(b"\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n");
        assert_eq!(head.path(), "/");
        assert_eq!(error(b"\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n"), ParseErrorKind::InvalidRequestLine);
        assert_eq!(error(b"\nGET / HTTP/1.1\r\nHost: h\r\n\r\n"), ParseErrorKind::InvalidLineEnding);
    }

    #[test]
    fn rejects_http11_requests_without_host() {
        assert_eq!(error(b"GET / HTTP/1.1\r\nAccept: */*\r\n\r\n"), ParseErrorKind::MissingHost);
        let head = parse(b"GET / HTTP/1.0\r\n\r\n");
        assert_eq!(head.version(), Version::Http10);
        assert_eq!(head.host(), None);
    }

    #[test]
    fn rejects_several_host_headers() {
        assert_eq!(error(b"GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n"), ParseErrorKind::MultipleHosts);
        assert_eq!(error(b"GET / HTTP/1.0\r\nHost: a\r\nhost: b\r\n\r\n"), ParseErrorKind::MultipleHosts);
    }

    #[test]
    fn rejects_invalid_host_values() {
        for host in ["a,b", "a b", "user@evil", "a/b", "a\\b", "<a>", "a%zz"] {
            let req = format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n");
            assert_eq!(error(req.as_bytes()), ParseErrorKind::InvalidHost, "{host:?}");
        }
        for host in ["example.com:8080", "[::1]:80", "127.0.0.1", ""] {
            let req = format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n");
            assert_eq!(parse(req.as_bytes()).headers().get("host"), Some(host));
        }
    }

    #[test]
    fn refuses_more_headers_than_the_limit_with_431() {
        let limits = Limits { max_headers: 3, ..Limits::default() };
        let ok = b"GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\n\r\n";
        assert!(parse_with(limits, ok).unwrap().is_some());
        let too_many = b"GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
        let err = parse_with(limits, too_many).unwrap_err();
        assert_eq!(err.kind(), ParseErrorKind::TooManyHeaders);
        assert_eq!(err.status(), 431);
        // Known before the head is even complete.
        let partial = b"GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\nC: 3\r\nD:";
        assert_eq!(parse_with(limits, partial).unwrap_err().kind(), ParseErrorKind::TooManyHeaders);
    }

    fn repeated(field: &str, times: usize) -> Vec<u8> {
        let mut req = b"GET / HTTP/1.1\r\nHost: h\r\n".to_vec();
        for _ in 0..times {
            req.extend_from_slice(field.as_bytes());
            req.extend_from_slice(b"\r\n");
        }
        req.extend_from_slice(b"\r\n");
        req
    }

    #[test]
    fn ten_thousand_repeated_headers_are_refused_by_count() {
        let limits = Limits { max_header_size: 1 << 20, ..Limits::default() };
        let req = repeated("X-A: b", 10_000);
        assert_eq!(parse_with(limits, &req).unwrap_err().kind(), ParseErrorKind::TooManyHeaders);
    }

    #[test]
    fn ten_thousand_repeated_headers_parse_linearly_when_allowed() {
        let limits = Limits { max_header_size: 1 << 20, max_headers: 20_000, ..Limits::default() };
        let head = parse_with(limits, &repeated("X-A: b", 10_000)).unwrap().unwrap();
        assert_eq!(head.headers().get_all("x-a").count(), 10_000);
        // Repeated framing fields are checked in one pass as they come, not against each other.
        let head = parse_with(limits, &repeated("Content-Length: 5", 10_000)).unwrap().unwrap();
        assert_eq!(head.body_kind(), BodyKind::Length(5));
        let err = parse_with(limits, &repeated("Host: h", 10_000)).unwrap_err();
        assert_eq!(err.kind(), ParseErrorKind::MultipleHosts);
    }

    #[test]
    fn refuses_a_head_larger_than_the_limit_while_it_arrives() {
        let limits = Limits { max_header_size: 100, ..Limits::default() };
        let mut parser = RequestParser::new(limits);
        let mut buf = BytesMut::from(&b"GET / HTTP/1.1\r\nHost: h\r\nX-Big: "[..]);
        assert!(parser.parse(&mut buf).unwrap().is_none());
        buf.extend_from_slice(&[b'x'; 80]);
        let err = parser.parse(&mut buf).unwrap_err();
        assert_eq!(err.kind(), ParseErrorKind::HeadTooLarge);
        assert_eq!(err.status(), 431);
    }

    #[test]
    fn refuses_a_complete_head_larger_than_the_limit() {
        let limits = Limits { max_header_size: BROWSER.len() - 1, ..Limits::default() };
        assert_eq!(parse_with(limits, BROWSER).unwrap_err().kind(), ParseErrorKind::HeadTooLarge);
        let limits = Limits { max_header_size: BROWSER.len(), ..Limits::default() };
        assert!(parse_with(limits, BROWSER).unwrap().is_some());
    }

    #[test]
    fn refuses_a_long_request_line_with_414() {
        let limits = Limits { max_request_line: 32, ..Limits::default() };
        let long = format!("GET /{} HTTP/1.1\r\nHost: h\r\n\r\n", "a".repeat(40));
        let err = parse_with(limits, long.as_bytes()).unwrap_err();
        assert_eq!(err.kind(), ParseErrorKind::RequestLineTooLong);
        assert_eq!(err.status(), 414);
        // Also while the line is still arriving.
        let mut parser = RequestParser::new(limits);
        let mut buf = BytesMut::from(&b"GET /aaaaaaaaaa"[..]);
        assert!(parser.parse(&mut buf).unwrap().is_none());
        buf.extend_from_slice(&[b'a'; 30]);
        assert_eq!(parser.parse(&mut buf).unwrap_err().kind(), ParseErrorKind::RequestLineTooLong);
        // A line of exactly the limit passes.
        let exact = format!("GET /{} HTTP/1.1\r\nHost: h\r\n\r\n", "a".repeat(32 - 17));
        assert!(parse_with(limits, exact.as_bytes()).unwrap().is_some());
    }

    #[test]
    fn unsupported_versions_are_505_and_garbage_is_400() {
        for version in ["HTTP/2.0", "HTTP/1.2", "HTTP/0.9", "HTTP/3.0"] {
            let req = format!("GET / {version}\r\nHost: h\r\n\r\n");
            let err = parse_with(Limits::default(), req.as_bytes()).unwrap_err();
            assert_eq!(err.kind(), ParseErrorKind::UnsupportedVersion, "{version}");
            assert_eq!(err.status(), 505);
        }
        for version in ["HTTX/1.1", "http/1.1", "HTTP/1.10", "HTTP/11"] {
            let req = format!("GET / {version}\r\nHost: h\r\n\r\n");
            assert_eq!(error(req.as_bytes()), ParseErrorKind::InvalidRequestLine, "{version}");
        }
    }

    #[test]
    fn detects_expect_100_continue_in_http11_only() {
        let head = parse(&with_field("Expect: 100-Continue\r\nContent-Length: 3"));
        assert!(head.expects_continue());
        let head = parse(b"POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n");
        assert!(!head.expects_continue());
        assert!(!parse(&with_field("Expect: something-else")).expects_continue());
    }

    #[test]
    fn decides_keep_alive_by_version_and_connection_tokens() {
        let cases: [(&[u8], bool); 7] = [
            (b"GET / HTTP/1.1\r\nHost: h\r\n\r\n", true),
            (b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n", false),
            (b"GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, CLOSE\r\n\r\n", false),
            (b"GET / HTTP/1.0\r\n\r\n", false),
            (b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", true),
            (b"GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n", false),
            (b"GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive\r\n\r\n", true),
        ];
        for (req, keep_alive) in cases {
            assert_eq!(parse(req).keep_alive(), keep_alive, "{:?}", String::from_utf8_lossy(req));
        }
    }

    #[test]
    fn detects_connection_upgrade() {
        let ws = b"GET /chat HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n\r\n";
        let head = parse(ws);
        assert!(head.is_upgrade());
        assert_eq!(head.headers().get("upgrade"), Some("websocket"));
        assert!(!parse(b"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n\r\n").is_upgrade());
        assert!(!parse(b"GET / HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\n\r\n").is_upgrade());
        let old = b"GET / HTTP/1.0\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n";
        assert!(!parse(old).is_upgrade());
    }

    #[test]
    fn absolute_form_targets_give_host_path_and_query() {
        let head = parse(b"GET http://example.com:8080/a/b?x=1 HTTP/1.1\r\nHost: other\r\n\r\n");
        assert!(head.is_absolute_form());
        assert_eq!(head.authority(), Some("example.com:8080"));
        assert_eq!(head.host(), Some("example.com:8080"));
        assert_eq!(head.path(), "/a/b");
        assert_eq!(head.query(), Some("x=1"));
        let head = parse(b"GET https://example.com?q HTTP/1.1\r\nHost: example.com\r\n\r\n");
        assert_eq!(head.path(), "/");
        assert_eq!(head.query(), Some("q"));
        assert_eq!(head.host(), Some("example.com"));
    }

    #[test]
    fn rejects_malformed_targets() {
        for target in ["http://user:pw@example.com/", "http:///path", "1http://a/", "example.com", "a:b", "http:/a"] {
            let req = format!("GET {target} HTTP/1.1\r\nHost: h\r\n\r\n");
            assert_eq!(error(req.as_bytes()), ParseErrorKind::InvalidTarget, "{target}");
        }
    }

    #[test]
    fn asterisk_form_is_for_options_only() {
        let head = parse(b"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n");
        assert_eq!(head.target_form(), TargetForm::Asterisk);
        assert_eq!(head.path(), "*");
        assert_eq!(error(b"GET * HTTP/1.1\r\nHost: h\r\n\r\n"), ParseErrorKind::InvalidTarget);
    }

    #[test]
    fn authority_form_is_for_connect_only() {
        let head = parse(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n");
        assert_eq!(head.method(), &Method::Connect);
        assert_eq!(head.target_form(), TargetForm::Authority);
        assert_eq!(head.authority(), Some("example.com:443"));
        for target in ["/", "example.com", "example.com:99999", ":443", "http://example.com:443"] {
            let req = format!("CONNECT {target} HTTP/1.1\r\nHost: h\r\n\r\n");
            assert_eq!(error(req.as_bytes()), ParseErrorKind::InvalidTarget, "{target}");
        }
    }

    #[test]
    fn origin_form_path_and_query() {
        let head = parse(b"GET /a?b?c HTTP/1.1\r\nHost: h\r\n\r\n");
        assert_eq!(head.path(), "/a");
        assert_eq!(head.query(), Some("b?c"));
        let head = parse(b"GET /plain HTTP/1.1\r\nHost: h\r\n\r\n");
        assert_eq!(head.query(), None);
        let head = parse("GET /caf\u{e9} HTTP/1.1\r\nHost: h\r\n\r\n".as_bytes());
        assert_eq!(head.path(), "/caf\u{e9}");
    }

    #[test]
    fn the_target_and_its_parts_outlive_cleared_fields() {
        let mut head = parse(b"GET http://example.com:8080/a/b?x=1 HTTP/1.1\r\nHost: other\r\n\r\n");
        head.headers_mut().clear();
        assert_eq!(head.head_bytes(), b"");
        assert_eq!(head.target(), "http://example.com:8080/a/b?x=1");
        assert_eq!((head.path(), head.query(), head.authority()), ("/a/b", Some("x=1"), Some("example.com:8080")));
        assert_eq!(head.host(), Some("example.com:8080"));
    }

    #[test]
    fn extension_methods_share_the_head() {
        let head = parse(b"PROPFIND /dav HTTP/1.1\r\nHost: h\r\n\r\n");
        assert_eq!(head.method().as_str(), "PROPFIND");
        assert!(matches!(head.method(), Method::Extension(_)));
    }

    /// Parses `input` whole with `parser`, returning the pooled head.
    fn parse_boxed(parser: &mut RequestParser, input: &[u8]) -> Box<RequestHead> {
        let (head, len) = parser.parse_slice(input).unwrap().unwrap();
        assert_eq!(len, input.len());
        head
    }

    #[test]
    fn one_byte_and_longer_targets_replace_each_other_in_a_reused_head() {
        let mut parser = RequestParser::default();
        let requests: [&[u8]; 5] = [
            b"GET /a/b?c=d HTTP/1.1\r\nHost: h\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: h\r\n\r\n",
            b"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n",
            b"GET /x HTTP/1.1\r\nHost: h\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: h\r\n\r\n",
        ];
        let expected = [("/a/b?c=d", "/a/b"), ("/", "/"), ("*", "*"), ("/x", "/x"), ("/", "/")];
        for (input, (target, path)) in requests.into_iter().zip(expected) {
            let head = parse_boxed(&mut parser, input);
            assert_eq!((head.target(), head.path()), (target, path));
            pool::put(head);
        }
    }

    #[test]
    fn pooled_heads_are_reused_and_never_mix_requests() {
        let mut parser = RequestParser::default();
        let long = parse_boxed(&mut parser, BROWSER);
        let (long_at, long_fields) = (long.head_bytes().as_ptr(), long.headers().len());
        assert!(long_fields > 3);
        pool::put(long);
        let short = parse_boxed(&mut parser, b"GET /s?x=1 HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!(short.head_bytes().as_ptr(), long_at, "the head and its buffer were reused");
        assert_eq!(short.head_bytes(), b"GET /s?x=1 HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!(short.headers().len(), 1);
        assert_eq!(short.headers().get("host"), Some("a"));
        assert_eq!(short.headers().get("cookie"), None, "nothing left of the earlier request");
        assert_eq!((short.method(), short.path(), short.query()), (&Method::Get, "/s", Some("x=1")));
        pool::put(short);
    }

    #[test]
    fn a_reused_head_never_keeps_the_method_of_its_last_request() {
        let mut parser = RequestParser::default();
        for (input, method) in [
            (&b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n"[..], Method::Post),
            (b"GET / HTTP/1.1\r\nHost: h\r\n\r\n", Method::Get),
            (b"DELETE / HTTP/1.1\r\nHost: h\r\n\r\n", Method::Delete),
            (b"GET / HTTP/1.1\r\nHost: h\r\n\r\n", Method::Get),
        ] {
            let head = parse_boxed(&mut parser, input);
            assert_eq!(head.method(), &method);
            pool::put(head);
        }
    }

    #[test]
    fn heads_given_back_together_are_all_reused() {
        let mut parser = RequestParser::default();
        let (a, b) = (parse_boxed(&mut parser, BROWSER), parse_boxed(&mut parser, BROWSER));
        let mut given = [a.head_bytes().as_ptr(), b.head_bytes().as_ptr()];
        // The first goes to the last slot, then on to the list behind it when the second takes its place.
        pool::put(a);
        pool::put(b);
        let (c, d) = (parse_boxed(&mut parser, BROWSER), parse_boxed(&mut parser, BROWSER));
        let mut taken = [c.head_bytes().as_ptr(), d.head_bytes().as_ptr()];
        given.sort();
        taken.sort();
        assert_eq!(given, taken);
        assert_eq!((c.headers().len(), d.headers().len()), (12, 12));
        pool::put(c);
        pool::put(d);
    }

    #[test]
    fn a_pooled_buffer_still_in_use_is_not_overwritten() {
        let mut parser = RequestParser::default();
        let head = parse_boxed(&mut parser, b"PROPFIND /dav HTTP/1.1\r\nHost: h\r\n\r\n");
        // The extension method outlives the head, whose buffer is overwritten.
        let method = head.method().clone();
        pool::put(head);
        let next = parse_boxed(&mut parser, b"MKCALENDAR /x HTTP/1.1\r\nHost: h\r\n\r\n");
        assert_eq!(method.as_str(), "PROPFIND");
        assert_eq!(next.method().as_str(), "MKCALENDAR");
    }

    #[test]
    fn heads_with_large_buffers_are_not_kept() {
        let mut parser = RequestParser::default();
        let big = format!("GET / HTTP/1.1\r\nHost: h\r\nX-Big: {}\r\n\r\n", "v".repeat(10_000));
        let head = parse_boxed(&mut parser, big.as_bytes());
        pool::put(head);
        let next = parse_boxed(&mut parser, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n");
        let mut next = next;
        assert_eq!(next.headers_mut().take_owned_buffer().capacity(), 1024, "a new buffer of the usual size");
    }

    #[test]
    fn mutated_requests_never_panic_and_parse_the_same_whatever_the_split() {
        let specials = [b'\r', b'\n', b'\0', b' ', b'\t', b':', b',', b'%', 0x7f, 0xff, b'0'];
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let base = [BROWSER, &with_field("Content-Length: 10, 10\r\nTransfer-Encoding: chunked")].concat();
        for _ in 0..3000 {
            let mut input = base.clone();
            for _ in 0..1 + next() % 3 {
                let at = (next() as usize) % input.len();
                let byte = specials[(next() as usize) % specials.len()];
                match next() % 3 {
                    0 => input[at] = byte,
                    1 => input.insert(at, byte),
                    _ => {
                        input.remove(at);
                    }
                }
            }
            let whole = parse_with(Limits::default(), &input);
            if let Ok(Some(head)) = &whole {
                // Every accessor works on whatever was accepted.
                let _ = (head.path(), head.query(), head.host(), head.authority(), head.headers().len());
            }
            let cut = (next() as usize) % input.len();
            let split = try_feed(&input, &[cut]).map(|head| head.map(|(head, _)| summary(&head)));
            match (&whole, &split) {
                (Ok(Some(head)), Ok(Some(split))) => assert_eq!(&summary(head), split),
                (Ok(None), Ok(None)) => {}
                (Err(a), Err(b)) => assert_eq!(a, b, "{:?}", String::from_utf8_lossy(&input)),
                // A head that never ends may be refused at once when whole, and only later when trickled.
                (Err(_), Ok(None)) if !ends_head(&input) => {}
                _ => panic!("{whole:?} vs {split:?} for {:?}", String::from_utf8_lossy(&input)),
            }
        }
    }

    #[test]
    fn chunked_requests_report_their_framing() {
        let head = parse(&with_field("Transfer-Encoding: chunked"));
        assert_eq!(head.body_kind(), BodyKind::Chunked);
    }
}
