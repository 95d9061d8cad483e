//! Client role: encoding request heads and parsing response heads.
//!
//! Response heads get the same hardening as request heads (CRLF only, no folding, no control bytes, strict
//! `Content-Length` and `Transfer-Encoding`), plus Tornado's rules for bodiless statuses: a 1xx response may
//! not announce a body, nor may a 204 (except `Content-Length: 0`).

use std::fmt;
use std::mem::MaybeUninit;

use bytes::BytesMut;

use super::body::{BodyEncoder, BodyKind};
use super::error::{EncodeError, ParseError, ParseErrorKind};
use super::head::{self, Coding, Fields, HeadScanner, STACK_HEADERS, write_content_length, write_field};
use super::{Limits, Method, Version};
use crate::headers::HeaderMap;

/// A request head to encode.
#[derive(Clone, Copy, Debug)]
pub struct OutgoingRequest<'a> {
    /// The method.
    pub method: &'a Method,
    /// The request target, e.g. `/path?query` (or an absolute URI through a proxy).
    pub target: &'a str,
    /// The `Host` value, `host[:port]`; not written if `headers` has a `Host` field.
    pub host: &'a str,
    /// Header fields, written in order after `Host`.
    pub headers: &'a HeaderMap,
    /// How the body is framed: `Empty`, `Length(n)` or `Chunked` (requests cannot be close-delimited).
    pub body: BodyKind,
}

/// Appends the head of `request` to `dst` and returns the encoder for its body.
///
/// Adds `Host` (unless set), and the framing: `Content-Length` for a known length (also `0` for an empty
/// `POST`, `PUT` or `PATCH`, which servers otherwise may refuse with 411), `Transfer-Encoding: chunked` else.
/// The version sent is always HTTP/1.1.
///
/// # Errors
///
/// An invalid method, target, host, header field or inconsistent framing; `dst` is then left as it was.
///
/// # Examples
///
/// ```
/// use bytes::BytesMut;
/// use gale_http1::headers::HeaderMap;
/// use gale_http1::proto::body::BodyKind;
/// use gale_http1::proto::client::{OutgoingRequest, encode_request_head};
/// use gale_http1::proto::Method;
///
/// let headers = HeaderMap::new();
/// let request = OutgoingRequest { method: &Method::Get, target: "/", host: "example.com", headers: &headers, body: BodyKind::Empty };
/// let mut out = BytesMut::new();
/// encode_request_head(&request, &mut out).unwrap();
/// assert_eq!(&out[..], b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n");
/// ```
pub fn encode_request_head(request: &OutgoingRequest<'_>, dst: &mut BytesMut) -> Result<BodyEncoder, EncodeError> {
    let mark = dst.len();
    let result = encode_unchecked(request, dst);
    if result.is_err() {
        dst.truncate(mark);
    }
    result
}

fn encode_unchecked(request: &OutgoingRequest<'_>, dst: &mut BytesMut) -> Result<BodyEncoder, EncodeError> {
    let target = request.target.as_bytes();
    if target.is_empty() || !target.iter().all(|&b| b > 0x20 && b != 0x7f) {
        return Err(EncodeError::InvalidTarget);
    }
    let fields = head::scan_outgoing(request.headers);
    let content_length = match fields.content_length {
        None => None,
        Some(Ok(n)) => Some(n),
        Some(Err(())) => return Err(EncodeError::InvalidContentLength),
    };
    if fields.transfer_encoding == Some(false) {
        return Err(EncodeError::UnsupportedTransferEncoding);
    }
    let chunked_field = fields.transfer_encoding.is_some();
    let (add_length, add_chunked) = match (request.body, content_length, chunked_field) {
        (_, Some(_), true) | (BodyKind::CloseDelimited, ..) => return Err(EncodeError::InvalidFraming),
        (BodyKind::Chunked, Some(_), _) | (BodyKind::Empty | BodyKind::Length(_), _, true) => {
            return Err(EncodeError::InvalidFraming);
        }
        (BodyKind::Chunked, None, set) => (None, !set),
        (BodyKind::Length(n), Some(set), _) if set != n => return Err(EncodeError::ContentLengthMismatch),
        (BodyKind::Empty, Some(set), _) if set != 0 => return Err(EncodeError::ContentLengthMismatch),
        (_, Some(_), _) => (None, false),
        (BodyKind::Length(n), None, _) => (Some(n), false),
        (BodyKind::Empty, None, _) => {
            let expects_body = matches!(request.method, Method::Post | Method::Put | Method::Patch);
            (expects_body.then_some(0), false)
        }
    };
    if !fields.host && !head::is_valid_host(request.host.as_bytes()) {
        return Err(EncodeError::InvalidHost);
    }

    let method = request.method.as_str();
    dst.reserve(method.len() + target.len() + request.host.len() + 64);
    dst.extend_from_slice(method.as_bytes());
    dst.extend_from_slice(b" ");
    dst.extend_from_slice(target);
    dst.extend_from_slice(b" HTTP/1.1\r\n");
    if !fields.host {
        dst.extend_from_slice(b"Host: ");
        dst.extend_from_slice(request.host.as_bytes());
        dst.extend_from_slice(b"\r\n");
    }
    for (name, value) in request.headers {
        write_field(dst, name, value)?;
    }
    match (add_length, add_chunked) {
        (Some(n), _) => write_content_length(dst, n, b"\r\n"),
        (None, true) => dst.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n"),
        (None, false) => dst.extend_from_slice(b"\r\n"),
    }
    Ok(BodyEncoder::new(request.body))
}

/// Parses response heads off a connection's read buffer, remembering progress across partial reads.
#[derive(Debug, Default)]
pub struct ResponseParser {
    limits: Limits,
    scanner: HeadScanner,
}

impl ResponseParser {
    /// A parser enforcing `limits` (`max_request_line` bounds the status line).
    pub fn new(limits: Limits) -> Self {
        ResponseParser { limits, scanner: HeadScanner::default() }
    }

    /// Parses the head at the start of `buf`: `Ok(None)` if incomplete (the buffer is untouched), else the
    /// head, split off `buf`. Interim (1xx) responses come out like any other; parse again for the final one.
    ///
    /// # Errors
    ///
    /// A malformed or oversized head; the connection must be closed.
    pub fn parse(&mut self, buf: &mut BytesMut) -> Result<Option<ResponseHead>, ParseError> {
        let Some(start) = head::skip_empty_line(buf, ParseErrorKind::InvalidStatusLine)? else {
            return Ok(None);
        };
        if self.scanner.ready(buf, start) {
            let mut head = ResponseHead::blank();
            if let Some(len) = parse_head(buf, start, &self.limits, &mut head)? {
                self.scanner.reset();
                head.headers.set_buffer(buf.split_to(len).freeze());
                return Ok(Some(head));
            }
        }
        self.scanner.wait(buf, start, &self.limits, ParseErrorKind::HeadTooLarge)?;
        Ok(None)
    }
}

/// A parsed response head; fields are slices of the head's bytes.
#[derive(Clone)]
pub struct ResponseHead {
    version: Version,
    status: u16,
    reason: (u32, u32),
    headers: HeaderMap,
    content_length: Option<u64>,
    chunked: bool,
    keep_alive: bool,
}

impl ResponseHead {
    fn blank() -> Self {
        ResponseHead {
            version: Version::Http11,
            status: 0,
            reason: (0, 0),
            headers: HeaderMap::new(),
            content_length: None,
            chunked: false,
            keep_alive: false,
        }
    }

    /// The protocol version.
    pub fn version(&self) -> Version {
        self.version
    }

    /// The status code, 100–999.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The reason phrase, or `""` if it is not UTF-8 (see [`reason_bytes`](Self::reason_bytes)).
    pub fn reason(&self) -> &str {
        std::str::from_utf8(self.reason_bytes()).unwrap_or_default()
    }

    /// The reason phrase as sent.
    pub fn reason_bytes(&self) -> &[u8] {
        let (start, len) = self.reason;
        &self.headers.buffer()[start as usize..(start + len) as usize]
    }

    /// The header fields.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The header fields, for changes (framing stays as parsed).
    pub fn headers_mut(&mut self) -> &mut HeaderMap {
        &mut self.headers
    }

    /// Whether this is an interim response (1xx other than 101): the final response follows.
    pub fn is_interim(&self) -> bool {
        self.status < 200 && self.status != 101
    }

    /// How the body is framed, given the method of the request answered (RFC 9112 §6.3): none after `HEAD`,
    /// for 1xx, 204 and 304, or for a 2xx to `CONNECT`; then chunked, `Content-Length`, or until close.
    pub fn body_kind(&self, request_method: &Method) -> BodyKind {
        let tunnel = *request_method == Method::Connect && (200..300).contains(&self.status);
        if *request_method == Method::Head || self.status < 200 || self.status == 204 || self.status == 304 || tunnel {
            BodyKind::Empty
        } else if self.chunked {
            BodyKind::Chunked
        } else if let Some(n) = self.content_length {
            BodyKind::from_length(n)
        } else {
            BodyKind::CloseDelimited
        }
    }

    /// Whether the connection can carry another request after this response's body: HTTP/1.1 unless
    /// `Connection: close`, HTTP/1.0 only with `Connection: keep-alive`, and never after a body delimited by
    /// closing or a protocol switch.
    pub fn keep_alive(&self, request_method: &Method) -> bool {
        let switched = self.status == 101 || (*request_method == Method::Connect && (200..300).contains(&self.status));
        self.keep_alive && !switched && self.body_kind(request_method) != BodyKind::CloseDelimited
    }

    /// The whole head as received.
    pub fn head_bytes(&self) -> &[u8] {
        self.headers.buffer()
    }
}

impl fmt::Debug for ResponseHead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseHead")
            .field("version", &self.version)
            .field("status", &self.status)
            .field("reason", &String::from_utf8_lossy(self.reason_bytes()))
            .field("headers", &self.headers)
            .finish()
    }
}

/// Parses and checks a head starting at `start` in `buf` into `head` (all but its buffer). Returns the head's
/// length, or `None` if it is incomplete.
fn parse_head(buf: &[u8], start: usize, limits: &Limits, head: &mut ResponseHead) -> Result<Option<usize>, ParseError> {
    let mut stack = [const { MaybeUninit::uninit() }; STACK_HEADERS];
    let mut heap = Vec::new();
    let slots = head::header_slots(&mut stack, &mut heap, limits.max_headers);
    let mut res = httparse::Response::new(&mut []);
    let len = match httparse::ParserConfig::default().parse_response_with_uninit_headers(&mut res, buf, slots) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(head::map_httparse_error(e, &buf[start..], ParseErrorKind::InvalidStatusLine)),
    };
    if len > limits.header_size() {
        return Err(ParseErrorKind::HeadTooLarge.into());
    }
    let (Some(minor), Some(status)) = (res.version, res.code) else {
        return Err(ParseErrorKind::InvalidStatusLine.into());
    };
    if status < 100 {
        return Err(ParseErrorKind::InvalidStatusLine.into());
    }
    // `HTTP/1.x 200[ reason]\r\n`: httparse found the line; locate its end to check the CR and the limit.
    let newline = start + memchr::memchr(b'\n', &buf[start..len]).ok_or(ParseErrorKind::InvalidStatusLine)?;
    if buf[newline - 1] != b'\r' {
        return Err(ParseErrorKind::InvalidLineEnding.into());
    }
    let line_end = newline - 1;
    if newline + 1 - start > limits.max_request_line {
        return Err(ParseErrorKind::HeadTooLarge.into());
    }
    let reason_start = (start + 13).min(line_end);
    let version = Version::from_minor(minor);

    let fields = head::collect_fields(buf, res.headers, line_end, len, &mut head.headers)?;

    let chunked = match fields.coding {
        Coding::Absent => false,
        _ if fields.content_length.is_some() => return Err(ParseErrorKind::ContentLengthWithTransferEncoding.into()),
        _ if version == Version::Http10 => return Err(ParseErrorKind::InvalidTransferEncoding.into()),
        Coding::Chunked => true,
        Coding::Unsupported { .. } => return Err(ParseErrorKind::UnsupportedTransferEncoding.into()),
        Coding::Malformed => return Err(ParseErrorKind::InvalidTransferEncoding.into()),
    };
    let announces_body = chunked || fields.content_length.is_some_and(|n| n > 0);
    if (status < 200 && (chunked || fields.content_length.is_some())) || (status == 204 && announces_body) {
        return Err(ParseErrorKind::UnexpectedBody.into());
    }

    head.version = version;
    head.status = status;
    head.reason = (reason_start as u32, (line_end - reason_start) as u32);
    head.content_length = fields.content_length;
    head.chunked = chunked;
    head.keep_alive = !fields.has(Fields::CLOSE) && (version == Version::Http11 || fields.has(Fields::KEEP_ALIVE));
    Ok(Some(len))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::body::{Decoded, Decoder};
    use crate::proto::request::RequestParser;
    use crate::proto::response::{OutgoingResponse, ResponseContext, ResponseEncoder};

    fn parse(input: &[u8]) -> Result<Option<ResponseHead>, ParseError> {
        ResponseParser::new(Limits::default()).parse(&mut BytesMut::from(input))
    }

    fn ok(input: &[u8]) -> ResponseHead {
        parse(input).unwrap().unwrap()
    }

    fn error(input: &[u8]) -> ParseErrorKind {
        parse(input).map(|_| ()).unwrap_err().kind()
    }

    fn encode(request: OutgoingRequest<'_>) -> Result<String, EncodeError> {
        let mut out = BytesMut::new();
        encode_request_head(&request, &mut out)?;
        Ok(String::from_utf8(out.to_vec()).unwrap())
    }

    fn request<'a>(method: &'a Method, headers: &'a HeaderMap, body: BodyKind) -> OutgoingRequest<'a> {
        OutgoingRequest { method, target: "/path?q=1", host: "example.com:8080", headers, body }
    }

    #[test]
    fn parses_a_typical_response() {
        let input = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 5\r\n\r\nhello";
        let mut buf = BytesMut::from(&input[..]);
        let head = ResponseParser::default().parse(&mut buf).unwrap().unwrap();
        assert_eq!(head.version(), Version::Http11);
        assert_eq!(head.status(), 200);
        assert_eq!(head.reason(), "OK");
        assert_eq!(head.headers().get("content-type"), Some("text/html"));
        assert_eq!(head.body_kind(&Method::Get), BodyKind::Length(5));
        assert!(head.keep_alive(&Method::Get));
        assert_eq!(&buf[..], b"hello");
    }

    #[test]
    fn reason_phrases_may_be_empty_or_obs_text() {
        assert_eq!(ok(b"HTTP/1.1 200\r\n\r\n").reason(), "");
        assert_eq!(ok(b"HTTP/1.1 200 \r\n\r\n").reason(), "");
        assert_eq!(ok(b"HTTP/1.1 404 Not  Found\t!\r\n\r\n").reason(), "Not  Found\t!");
        let head = ok(b"HTTP/1.1 200 Tr\xe8s bien\r\n\r\n");
        assert_eq!(head.reason_bytes(), b"Tr\xe8s bien");
        assert_eq!(head.reason(), "");
    }

    #[test]
    fn response_heads_split_at_every_point_parse_the_same() {
        let input = b"HTTP/1.1 201 Created\r\nLocation: /x\r\nTransfer-Encoding: chunked\r\n\r\n";
        let whole = format!("{:?}", ok(input));
        for cut in 0..input.len() {
            let mut parser = ResponseParser::default();
            let mut buf = BytesMut::from(&input[..cut]);
            assert!(parser.parse(&mut buf).unwrap().is_none(), "cut at {cut}");
            buf.extend_from_slice(&input[cut..]);
            let head = parser.parse(&mut buf).unwrap().unwrap();
            assert_eq!(format!("{head:?}"), whole);
            assert!(head.chunked);
        }
    }

    #[test]
    fn response_parsing_has_the_request_hardening() {
        let cases: [(&[u8], ParseErrorKind); 10] = [
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
                ParseErrorKind::ContentLengthWithTransferEncoding,
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                ParseErrorKind::ConflictingContentLength,
            ),
            (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", ParseErrorKind::InvalidContentLength),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
                ParseErrorKind::UnsupportedTransferEncoding,
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
                ParseErrorKind::InvalidTransferEncoding,
            ),
            (b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", ParseErrorKind::InvalidTransferEncoding),
            (b"HTTP/1.1 200 OK\r\nX: a\r\n folded\r\n\r\n", ParseErrorKind::ObsoleteLineFolding),
            (b"HTTP/1.1 200 OK\r\nX : a\r\n\r\n", ParseErrorKind::InvalidHeaderName),
            (b"HTTP/1.1 200 OK\nX: a\r\n\r\n", ParseErrorKind::InvalidLineEnding),
            (b"HTTP/1.1 200 OK\r\nX: a\x00b\r\n\r\n", ParseErrorKind::InvalidHeaderValue),
        ];
        for (input, kind) in cases {
            assert_eq!(error(input), kind, "{:?}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn rejects_malformed_status_lines() {
        for line in [
            &b"HTTP/1.1 20 OK"[..],
            b"HTTP/1.1 2000 OK",
            b"HTTP/1.1 099 Low",
            b"HTTP/1.1 OK",
            b"HTTP/1.1  200 OK",
            b"ICY 200 OK",
            b"HTTP/1.1 200 O\x01K",
        ] {
            let mut input = line.to_vec();
            input.extend_from_slice(b"\r\n\r\n");
            assert_eq!(error(&input), ParseErrorKind::InvalidStatusLine, "{:?}", String::from_utf8_lossy(line));
        }
        assert_eq!(error(b"HTTP/2.0 200 OK\r\n\r\n"), ParseErrorKind::UnsupportedVersion);
    }

    #[test]
    fn bodiless_statuses_may_not_announce_a_body() {
        assert_eq!(error(b"HTTP/1.1 100 Continue\r\nContent-Length: 0\r\n\r\n"), ParseErrorKind::UnexpectedBody);
        assert_eq!(
            error(b"HTTP/1.1 101 Switching\r\nTransfer-Encoding: chunked\r\n\r\n"),
            ParseErrorKind::UnexpectedBody
        );
        assert_eq!(error(b"HTTP/1.1 204 No Content\r\nContent-Length: 3\r\n\r\n"), ParseErrorKind::UnexpectedBody);
        assert_eq!(
            error(b"HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n"),
            ParseErrorKind::UnexpectedBody
        );
        assert_eq!(
            ok(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n").body_kind(&Method::Get),
            BodyKind::Empty
        );
        let not_modified = ok(b"HTTP/1.1 304 Not Modified\r\nContent-Length: 300\r\n\r\n");
        assert_eq!(not_modified.body_kind(&Method::Get), BodyKind::Empty);
        assert!(not_modified.keep_alive(&Method::Get));
    }

    #[test]
    fn response_framing_depends_on_the_request_method() {
        let head = ok(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n");
        assert_eq!(head.body_kind(&Method::Head), BodyKind::Empty);
        assert_eq!(head.body_kind(&Method::Get), BodyKind::Length(10));
        let tunnel = ok(b"HTTP/1.1 200 Connection established\r\n\r\n");
        assert_eq!(tunnel.body_kind(&Method::Connect), BodyKind::Empty);
        assert!(!tunnel.keep_alive(&Method::Connect));
        assert_eq!(tunnel.body_kind(&Method::Get), BodyKind::CloseDelimited);
        assert!(!tunnel.keep_alive(&Method::Get), "a body read until close ends the connection");
        let interim = ok(b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\n");
        assert!(interim.is_interim());
        assert_eq!(interim.body_kind(&Method::Get), BodyKind::Empty);
    }

    #[test]
    fn response_keep_alive_follows_version_and_connection() {
        assert!(!ok(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n").keep_alive(&Method::Get));
        assert!(!ok(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n").keep_alive(&Method::Get));
        assert!(ok(b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n").keep_alive(&Method::Get));
        assert!(!ok(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n").keep_alive(&Method::Get));
    }

    #[test]
    fn response_limits_apply() {
        let limits = Limits { max_headers: 1, ..Limits::default() };
        let err =
            ResponseParser::new(limits).parse(&mut BytesMut::from(&b"HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\n\r\n"[..]));
        assert_eq!(err.unwrap_err().kind(), ParseErrorKind::TooManyHeaders);
        let limits = Limits { max_header_size: 20, ..Limits::default() };
        let err = ResponseParser::new(limits).parse(&mut BytesMut::from(&b"HTTP/1.1 200 OK\r\nA: 12345678"[..]));
        assert_eq!(err.unwrap_err().kind(), ParseErrorKind::HeadTooLarge);
    }

    #[test]
    fn encodes_a_get_request() {
        let mut h = HeaderMap::new();
        h.append("User-Agent", "gale");
        h.append("Accept", "*/*");
        let out = encode(request(&Method::Get, &h, BodyKind::Empty)).unwrap();
        assert_eq!(out, "GET /path?q=1 HTTP/1.1\r\nHost: example.com:8080\r\nUser-Agent: gale\r\nAccept: */*\r\n\r\n");
    }

    #[test]
    fn encodes_request_body_framing() {
        let h = HeaderMap::new();
        let out = encode(request(&Method::Post, &h, BodyKind::Length(11))).unwrap();
        assert!(out.ends_with("Content-Length: 11\r\n\r\n"));
        let out = encode(request(&Method::Post, &h, BodyKind::Empty)).unwrap();
        assert!(out.ends_with("Content-Length: 0\r\n\r\n"), "empty POST says so");
        let out = encode(request(&Method::Delete, &h, BodyKind::Empty)).unwrap();
        assert!(!out.contains("Content-Length"));
        let out = encode(request(&Method::Put, &h, BodyKind::Chunked)).unwrap();
        assert!(out.ends_with("Transfer-Encoding: chunked\r\n\r\n"));
        assert_eq!(
            encode(request(&Method::Post, &h, BodyKind::CloseDelimited)).unwrap_err(),
            EncodeError::InvalidFraming
        );
    }

    #[test]
    fn request_framing_fields_must_agree_with_the_body() {
        let cl: HeaderMap = [("Content-Length", "4")].into_iter().collect();
        assert_eq!(
            encode(request(&Method::Post, &cl, BodyKind::Length(4))).unwrap().matches("Content-Length").count(),
            1
        );
        assert_eq!(
            encode(request(&Method::Post, &cl, BodyKind::Length(5))).unwrap_err(),
            EncodeError::ContentLengthMismatch
        );
        assert_eq!(encode(request(&Method::Post, &cl, BodyKind::Chunked)).unwrap_err(), EncodeError::InvalidFraming);
        let te: HeaderMap = [("Transfer-Encoding", "chunked")].into_iter().collect();
        assert_eq!(encode(request(&Method::Post, &te, BodyKind::Chunked)).unwrap().matches("chunked").count(), 1);
        assert_eq!(encode(request(&Method::Post, &te, BodyKind::Length(1))).unwrap_err(), EncodeError::InvalidFraming);
        let gzip: HeaderMap = [("Transfer-Encoding", "gzip")].into_iter().collect();
        assert_eq!(
            encode(request(&Method::Post, &gzip, BodyKind::Chunked)).unwrap_err(),
            EncodeError::UnsupportedTransferEncoding
        );
    }

    #[test]
    fn request_encoding_refuses_injection() {
        let h = HeaderMap::new();
        for target in ["", "/a b", "/a\r\nX: y", "/\0"] {
            let req = OutgoingRequest { target, ..request(&Method::Get, &h, BodyKind::Empty) };
            assert_eq!(encode(req).unwrap_err(), EncodeError::InvalidTarget, "{target:?}");
        }
        for host in ["a b", "a\r\nX: y", "user@host"] {
            let req = OutgoingRequest { host, ..request(&Method::Get, &h, BodyKind::Empty) };
            assert_eq!(encode(req).unwrap_err(), EncodeError::InvalidHost, "{host:?}");
        }
        let evil: HeaderMap = [("X-A", "1\r\nX-B: 2")].into_iter().collect();
        let mut out = BytesMut::new();
        assert!(encode_request_head(&request(&Method::Get, &evil, BodyKind::Empty), &mut out).is_err());
        assert!(out.is_empty());
        let own_host: HeaderMap = [("Host", "other")].into_iter().collect();
        let req = OutgoingRequest { host: "ignored because set", ..request(&Method::Get, &own_host, BodyKind::Empty) };
        assert_eq!(encode(req).unwrap(), "GET /path?q=1 HTTP/1.1\r\nHost: other\r\n\r\n");
    }

    #[test]
    fn encoded_requests_parse_back_with_their_bodies() {
        let mut h = HeaderMap::new();
        h.append("X-Trace", String::from("abc"));
        h.append("Expect", "100-continue");
        let method = Method::from_bytes(b"PROPPATCH").unwrap();
        for body in [BodyKind::Empty, BodyKind::Length(11), BodyKind::Chunked] {
            let mut wire = BytesMut::new();
            let mut encoder = encode_request_head(&request(&method, &h, body), &mut wire).unwrap();
            if body != BodyKind::Empty {
                encoder.encode(b"hello", &mut wire).unwrap();
                encoder.encode(b" world", &mut wire).unwrap();
            }
            encoder.finish(&mut wire).unwrap();

            let head = RequestParser::default().parse(&mut wire).unwrap().unwrap();
            assert_eq!(head.method(), &method);
            assert_eq!(head.target(), "/path?q=1");
            assert_eq!(head.host(), Some("example.com:8080"));
            assert_eq!(head.headers().get("x-trace"), Some("abc"));
            assert!(head.expects_continue());
            assert_eq!(head.body_kind(), body);
            let mut decoder = Decoder::new(head.body_kind());
            let mut received = Vec::new();
            while let Decoded::Data(d) = decoder.decode(&mut wire).unwrap() {
                received.extend_from_slice(&d);
            }
            assert!(decoder.is_done());
            assert_eq!(received, if body == BodyKind::Empty { &b""[..] } else { b"hello world" });
            assert!(wire.is_empty());
        }
    }

    #[test]
    fn encoded_responses_parse_back_with_their_bodies() {
        let mut h = HeaderMap::new();
        h.append("Content-Type", "text/plain");
        h.append("Set-Cookie", "a=1");
        h.append("Set-Cookie", "b=2");
        let encoder = ResponseEncoder::new();
        for (version, length) in [(Version::Http11, Some(9)), (Version::Http11, None), (Version::Http10, None)] {
            let ctx = ResponseContext::new(version, &Method::Get, true);
            let response = OutgoingResponse { content_length: length, ..OutgoingResponse::new(200, &h) };
            let mut wire = BytesMut::new();
            let mut head = encoder.encode(&ctx, &response, &mut wire).unwrap();
            head.body.encode(b"some ", &mut wire).unwrap();
            head.body.encode(b"body", &mut wire).unwrap();
            head.body.finish(&mut wire).unwrap();

            let parsed = ResponseParser::default().parse(&mut wire).unwrap().unwrap();
            assert_eq!(parsed.status(), 200);
            assert_eq!(parsed.reason(), "OK");
            assert_eq!(parsed.headers().get_all("set-cookie").collect::<Vec<_>>(), [&b"a=1"[..], b"b=2"]);
            assert_eq!(parsed.headers().get("server"), Some("gale"));
            assert!(parsed.headers().contains("date"));
            let kind = parsed.body_kind(&Method::Get);
            let mut decoder = Decoder::new(kind);
            let mut received = Vec::new();
            loop {
                match decoder.decode(&mut wire).unwrap() {
                    Decoded::Data(d) => received.extend_from_slice(&d),
                    Decoded::NeedMore => decoder.decode_eof().unwrap(),
                    Decoded::Done => break,
                }
            }
            assert_eq!(received, b"some body", "{version} {length:?}");
            assert_eq!(parsed.keep_alive(&Method::Get), version == Version::Http11);
        }
    }
}
