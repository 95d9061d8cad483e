//! The request a server hands to its service, and a whole response to send back.

use crate::headers::HeaderMap;
use crate::proto::request::RequestHead;
use crate::proto::{Method, Version};
use bytes::Bytes;
use std::fmt;
use std::net::SocketAddr;

/// An HTTP request as the server received it: the parsed head, the body (when buffered), and where it came
/// from (Tornado's `HTTPServerRequest`).
///
/// Header lookups are case-insensitive and keep every value in order; the head and body are zero-copy slices
/// of the bytes read from the socket.
pub struct Request {
    /// Boxed: a request is moved several times on its way to the service, a pointer is cheap to move.
    pub(crate) head: PooledHead,
    /// `None` for no body, the usual case: nothing to build or drop then.
    pub(crate) body: Option<Bytes>,
    pub(crate) remote_addr: SocketAddr,
    /// What most requests lack, in one optional box: a request is built and dropped with one word for it.
    pub(crate) extra: Option<Box<RequestExtra>>,
}

/// The parts of a [`Request`] that most requests lack.
pub(crate) struct RequestExtra {
    pub(crate) trailers: Option<HeaderMap>,
    pub(crate) remote_ip: Option<String>,
    pub(crate) scheme: &'static str,
}

impl RequestExtra {
    /// Nothing but the defaults: no trailers, the peer's IP, `http`.
    pub(crate) fn new() -> RequestExtra {
        RequestExtra { trailers: None, remote_ip: None, scheme: "http" }
    }

    /// A chunked body's trailer fields, and the defaults otherwise.
    pub(crate) fn with_trailers(trailers: HeaderMap) -> Box<RequestExtra> {
        Box::new(RequestExtra { trailers: Some(trailers), ..RequestExtra::new() })
    }
}

/// A request's head, given back to the thread's pool of heads when the request is dropped.
pub(crate) struct PooledHead(Option<Box<RequestHead>>);

impl std::ops::Deref for PooledHead {
    type Target = RequestHead;

    #[inline]
    fn deref(&self) -> &RequestHead {
        self.0.as_deref().expect("a head until dropped")
    }
}

impl std::ops::DerefMut for PooledHead {
    #[inline]
    fn deref_mut(&mut self) -> &mut RequestHead {
        self.0.as_deref_mut().expect("a head until dropped")
    }
}

impl Drop for PooledHead {
    // Inline, into the drop glue of the request: a call less per request.
    #[inline]
    fn drop(&mut self) {
        if let Some(head) = self.0.take() {
            crate::proto::request::pool::put(head);
        }
    }
}

impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Request")
            .field("method", &self.method().as_str())
            .field("target", &self.target())
            .field("version", &self.version())
            .field("remote", &self.remote_ip())
            .field("body_len", &self.body().len())
            .finish()
    }
}

impl Request {
    /// Builds a request from a parsed head (for tests and for layers that parse heads themselves).
    pub fn from_head(head: impl Into<Box<RequestHead>>, body: Bytes, remote_addr: SocketAddr) -> Request {
        Request::from_parts(head.into(), Some(body), remote_addr, None)
    }

    /// Builds a request from its parts, as the server does.
    #[inline]
    pub(crate) fn from_parts(
        head: Box<RequestHead>,
        body: Option<Bytes>,
        remote_addr: SocketAddr,
        extra: Option<Box<RequestExtra>>,
    ) -> Request {
        Request { head: PooledHead(Some(head)), body, remote_addr, extra }
    }

    /// Sets the client IP and scheme as a trusted proxy reported them (what `xheaders` does).
    pub fn set_forwarded(&mut self, remote_ip: String, scheme: &'static str) {
        let extra = self.extra.get_or_insert_with(|| Box::new(RequestExtra::new()));
        extra.remote_ip = Some(remote_ip);
        extra.scheme = scheme;
    }

    /// The method.
    pub fn method(&self) -> &Method {
        self.head.method()
    }

    /// The request target as sent (`/path?query`, or an absolute URL).
    pub fn target(&self) -> &str {
        self.head.target()
    }

    /// The path, without the query (for an absolute-form target, the path part of the URL).
    pub fn path(&self) -> &str {
        self.head.path()
    }

    /// The query string without `?`, if any.
    pub fn query(&self) -> Option<&str> {
        self.head.query()
    }

    /// The HTTP version.
    pub fn version(&self) -> Version {
        self.head.version()
    }

    /// The header fields.
    pub fn headers(&self) -> &HeaderMap {
        self.head.headers()
    }

    /// The parsed head.
    pub fn head(&self) -> &RequestHead {
        &self.head
    }

    /// The host the request is for: the authority of an absolute-form target, else the `Host` header.
    pub fn host(&self) -> Option<&str> {
        self.head.host()
    }

    /// The body, if it was buffered (empty when the service streams it, or when there is none).
    pub fn body(&self) -> &Bytes {
        static NO_BODY: Bytes = Bytes::new();
        self.body.as_ref().unwrap_or(&NO_BODY)
    }

    /// Takes the body out of the request.
    pub fn take_body(&mut self) -> Bytes {
        self.body.take().unwrap_or_default()
    }

    /// Trailer fields of a chunked body, if any.
    pub fn trailers(&self) -> Option<&HeaderMap> {
        self.extra.as_ref()?.trailers.as_ref()
    }

    /// The peer's socket address.
    pub fn remote_addr(&self) -> SocketAddr {
        self.remote_addr
    }

    /// The client's IP: the peer's, or with `xheaders` on, the one a trusted proxy reported.
    pub fn remote_ip(&self) -> String {
        match self.extra.as_ref().and_then(|e| e.remote_ip.as_ref()) {
            Some(ip) => ip.clone(),
            None => self.remote_addr.ip().to_string(),
        }
    }

    /// `"http"` or `"https"` (the latter only as reported by a trusted proxy with `xheaders` on).
    pub fn protocol(&self) -> &'static str {
        self.extra.as_ref().map_or("http", |e| e.scheme)
    }

    /// The full URL: `protocol://host/target`.
    pub fn full_url(&self) -> String {
        if self.head.is_absolute_form() {
            return self.target().to_owned();
        }
        format!("{}://{}{}", self.protocol(), self.host().unwrap_or(""), self.target())
    }
}

/// A whole response: status, headers, body. Services that don't stream build one of these.
#[derive(Debug, Clone)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// A custom reason phrase; `None` for the standard one.
    pub reason: Option<String>,
    /// Header fields (the server adds `Content-Length`, `Date` and `Server`).
    pub headers: HeaderMap,
    /// The body.
    pub body: Bytes,
}

impl Response {
    /// An empty response with `status`.
    pub fn new(status: u16) -> Response {
        Response { status, reason: None, headers: HeaderMap::new(), body: Bytes::new() }
    }

    /// A 200 response with `body` and a `Content-Type`.
    pub fn with_body(content_type: &'static str, body: impl Into<Bytes>) -> Response {
        let mut r = Response::new(200);
        r.headers.insert("Content-Type", content_type);
        r.body = body.into();
        r
    }

    /// A `text/plain` 200 response.
    pub fn text(body: impl Into<Bytes>) -> Response {
        Response::with_body("text/plain", body)
    }

    /// Sets the status.
    #[must_use]
    pub fn status(mut self, status: u16) -> Response {
        self.status = status;
        self
    }

    /// Appends a header field.
    #[must_use]
    pub fn header(mut self, name: &'static str, value: impl Into<crate::headers::HeaderBytes>) -> Response {
        self.headers.append(name, value);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::request::RequestParser;

    fn head() -> Box<RequestHead> {
        RequestParser::default().parse_slice(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").unwrap().unwrap().0
    }

    #[test]
    fn a_request_without_a_body_has_an_empty_one() {
        let addr: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let mut r = Request::from_parts(head(), None, addr, None);
        assert!(r.body().is_empty());
        assert!(r.take_body().is_empty());
        let mut r = Request::from_parts(head(), Some(Bytes::from_static(b"abc")), addr, None);
        assert_eq!(r.body().as_ref(), b"abc");
        assert_eq!(r.take_body().as_ref(), b"abc");
        assert!(r.body().is_empty(), "taken");
        assert_eq!((r.protocol(), r.remote_ip().as_str(), r.trailers().is_none()), ("http", "127.0.0.1", true));
    }
}
