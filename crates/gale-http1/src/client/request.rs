//! [`ClientRequest`]: what to fetch and how (Tornado's `HTTPRequest`).

use std::fmt;
use std::time::Duration;

use bytes::Bytes;

use crate::headers::{HeaderBytes, HeaderMap};
use crate::proto::Method;

/// A request to fetch: method, URL, headers, body, and per-request settings that override the client's
/// [`ClientOptions`](super::ClientOptions).
///
/// Built with a constructor and chained setters; a URL string converts into a `GET` request, so
/// `client.fetch("http://…")` works as in Tornado.
///
/// # Examples
///
/// ```
/// use gale_http1::ClientRequest;
/// use std::time::Duration;
///
/// let request = ClientRequest::post("http://127.0.0.1:8888/items?draft=1")
///     .header("Content-Type", "application/json")
///     .body(r#"{"name": "gale"}"#)
///     .request_timeout(Some(Duration::from_secs(5)))
///     .follow_redirects(false);
/// assert_eq!(request.method().as_str(), "POST");
/// assert_eq!(request.headers().get("content-type"), Some("application/json"));
/// ```
pub struct ClientRequest {
    pub(super) method: Method,
    pub(super) url: String,
    pub(super) headers: HeaderMap,
    pub(super) body: Bytes,
    pub(super) connect_timeout: Option<Option<Duration>>,
    pub(super) request_timeout: Option<Option<Duration>>,
    pub(super) follow_redirects: Option<bool>,
    pub(super) max_redirects: Option<usize>,
    pub(super) raise_error: Option<bool>,
    pub(super) decompress_response: Option<bool>,
    pub(super) streaming_callback: Option<Box<dyn FnMut(Bytes)>>,
}

impl ClientRequest {
    /// A request with `method` for `url`, no headers and no body.
    pub fn new(method: Method, url: impl Into<String>) -> ClientRequest {
        ClientRequest {
            method,
            url: url.into(),
            headers: HeaderMap::new(),
            body: Bytes::new(),
            connect_timeout: None,
            request_timeout: None,
            follow_redirects: None,
            max_redirects: None,
            raise_error: None,
            decompress_response: None,
            streaming_callback: None,
        }
    }

    /// A `GET` request.
    pub fn get(url: impl Into<String>) -> ClientRequest {
        ClientRequest::new(Method::Get, url)
    }

    /// A `HEAD` request.
    pub fn head(url: impl Into<String>) -> ClientRequest {
        ClientRequest::new(Method::Head, url)
    }

    /// A `POST` request.
    pub fn post(url: impl Into<String>) -> ClientRequest {
        ClientRequest::new(Method::Post, url)
    }

    /// A `PUT` request.
    pub fn put(url: impl Into<String>) -> ClientRequest {
        ClientRequest::new(Method::Put, url)
    }

    /// A `PATCH` request.
    pub fn patch(url: impl Into<String>) -> ClientRequest {
        ClientRequest::new(Method::Patch, url)
    }

    /// A `DELETE` request.
    pub fn delete(url: impl Into<String>) -> ClientRequest {
        ClientRequest::new(Method::Delete, url)
    }

    /// Appends a header field (use [`headers_mut`](Self::headers_mut) to replace or remove fields). `Host`, `User-Agent` and `Accept-Encoding` given here replace the client's
    /// defaults; `Content-Length` and `Transfer-Encoding` must agree with the body, or the fetch fails with
    /// [`ClientError::InvalidRequest`](super::ClientError::InvalidRequest).
    #[must_use]
    pub fn header(mut self, name: impl Into<HeaderBytes>, value: impl Into<HeaderBytes>) -> ClientRequest {
        self.headers.append(name, value);
        self
    }

    /// Sets the body, sent with a `Content-Length`. An empty `POST`, `PUT` or `PATCH` says
    /// `Content-Length: 0`.
    #[must_use]
    pub fn body(mut self, body: impl Into<Bytes>) -> ClientRequest {
        self.body = body.into();
        self
    }

    /// How long resolving and connecting may take (`None`: no limit). Default:
    /// [`ClientOptions::connect_timeout`](super::ClientOptions::connect_timeout).
    #[must_use]
    pub fn connect_timeout(mut self, timeout: Option<Duration>) -> ClientRequest {
        self.connect_timeout = Some(timeout);
        self
    }

    /// How long the whole fetch may take, redirects included (`None`: no limit). Default:
    /// [`ClientOptions::request_timeout`](super::ClientOptions::request_timeout).
    #[must_use]
    pub fn request_timeout(mut self, timeout: Option<Duration>) -> ClientRequest {
        self.request_timeout = Some(timeout);
        self
    }

    /// Whether to follow redirects. Default: [`ClientOptions::follow_redirects`](super::ClientOptions).
    #[must_use]
    pub fn follow_redirects(mut self, follow: bool) -> ClientRequest {
        self.follow_redirects = Some(follow);
        self
    }

    /// How many redirects to follow at most. Default: [`ClientOptions::max_redirects`](super::ClientOptions).
    #[must_use]
    pub fn max_redirects(mut self, max: usize) -> ClientRequest {
        self.max_redirects = Some(max);
        self
    }

    /// Whether a status outside 200–299 is an error. Default:
    /// [`ClientOptions::raise_error`](super::ClientOptions::raise_error).
    #[must_use]
    pub fn raise_error(mut self, raise: bool) -> ClientRequest {
        self.raise_error = Some(raise);
        self
    }

    /// Whether to ask for gzip and decompress it. Default:
    /// [`ClientOptions::decompress_response`](super::ClientOptions::decompress_response).
    #[must_use]
    pub fn decompress_response(mut self, decompress: bool) -> ClientRequest {
        self.decompress_response = Some(decompress);
        self
    }

    /// Hands the body of the final response to `callback` piece by piece as it arrives (decompressed, if it
    /// was gzip), instead of collecting it: the response's body is then empty (Tornado's `streaming_callback`).
    ///
    /// Bodies of redirects that are followed are not passed on. `max_body_size` still bounds the total.
    /// The callback runs on the loop: it should not block.
    #[must_use]
    pub fn streaming_callback(mut self, callback: impl FnMut(Bytes) + 'static) -> ClientRequest {
        self.streaming_callback = Some(Box::new(callback));
        self
    }

    /// The method.
    pub fn method(&self) -> &Method {
        &self.method
    }

    /// The URL, as given.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The header fields.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The header fields, for changes.
    pub fn headers_mut(&mut self) -> &mut HeaderMap {
        &mut self.headers
    }

    /// The body.
    pub fn body_bytes(&self) -> &Bytes {
        &self.body
    }
}

impl From<&str> for ClientRequest {
    /// A `GET` request for the URL.
    fn from(url: &str) -> ClientRequest {
        ClientRequest::get(url)
    }
}

impl From<String> for ClientRequest {
    /// A `GET` request for the URL.
    fn from(url: String) -> ClientRequest {
        ClientRequest::get(url)
    }
}

impl From<&String> for ClientRequest {
    /// A `GET` request for the URL.
    fn from(url: &String) -> ClientRequest {
        ClientRequest::get(url.as_str())
    }
}

impl fmt::Debug for ClientRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientRequest")
            .field("method", &self.method)
            .field("url", &self.url)
            .field("headers", &self.headers)
            .field("body_len", &self.body.len())
            .field("streaming", &self.streaming_callback.is_some())
            .finish_non_exhaustive()
    }
}
