//! [`ClientResponse`]: what a fetch returns (Tornado's `HTTPResponse`).

use std::fmt;
use std::time::Duration;

use bytes::Bytes;

use super::error::ClientError;
use crate::headers::HeaderMap;
use crate::proto::Version;
use crate::proto::client::ResponseHead;

/// A response: status, headers, the whole body, and where and how long the fetch went.
///
/// The head is kept as parsed, without copying: header lookups are case-insensitive slices of the bytes read.
/// When the body was streamed to a [`streaming_callback`](super::ClientRequest::streaming_callback), the
/// response's body is empty.
#[derive(Clone)]
pub struct ClientResponse {
    pub(super) head: ResponseHead,
    pub(super) body: Bytes,
    pub(super) trailers: Option<HeaderMap>,
    pub(super) effective_url: String,
    pub(super) request_time: Duration,
}

impl ClientResponse {
    /// The status code.
    pub fn status(&self) -> u16 {
        self.head.status()
    }

    /// The reason phrase as sent (`""` if it was empty or not UTF-8).
    pub fn reason(&self) -> &str {
        self.head.reason()
    }

    /// The protocol version the server answered with.
    pub fn version(&self) -> Version {
        self.head.version()
    }

    /// The header fields. When a gzip body was decompressed, `Content-Encoding` and `Content-Length` are gone
    /// and `X-Consumed-Content-Encoding: gzip` says what was undone (as Tornado does).
    pub fn headers(&self) -> &HeaderMap {
        self.head.headers()
    }

    /// The body (decompressed, when it was gzip and `decompress_response` was on).
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// Takes the body.
    pub fn into_body(self) -> Bytes {
        self.body
    }

    /// The trailer fields of a chunked body, if it had any.
    pub fn trailers(&self) -> Option<&HeaderMap> {
        self.trailers.as_ref()
    }

    /// The URL of this response: the one fetched, or where the redirects led.
    pub fn effective_url(&self) -> &str {
        &self.effective_url
    }

    /// How long the whole fetch took, from the call to the end of the body (queueing and redirects included).
    pub fn request_time(&self) -> Duration {
        self.request_time
    }

    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status())
    }

    /// The response if its status is 2xx, else [`ClientError::Status`] carrying it (Tornado's `rethrow`, for
    /// fetches made with `raise_error` off).
    ///
    /// # Errors
    ///
    /// [`ClientError::Status`] for a status outside 200–299.
    pub fn error_for_status(self) -> Result<ClientResponse, ClientError> {
        if self.is_success() { Ok(self) } else { Err(ClientError::Status(Box::new(self))) }
    }
}

impl fmt::Debug for ClientResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientResponse")
            .field("status", &self.status())
            .field("reason", &self.reason())
            .field("effective_url", &self.effective_url)
            .field("headers", self.headers())
            .field("body_len", &self.body.len())
            .field("request_time", &self.request_time)
            .finish()
    }
}
