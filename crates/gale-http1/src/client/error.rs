//! What can go wrong with a fetch: [`ClientError`], and the [`TimeoutPhase`] a timeout struck in.

use std::fmt;
use std::io;

use gale_iostream::StreamError;

use super::response::ClientResponse;
use crate::proto::{EncodeError, ParseError};

/// Where a fetch stood when its time ran out (Tornado's `HTTPTimeoutError` messages).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TimeoutPhase {
    /// Waiting for a free slot under [`ClientOptions::max_clients`](super::ClientOptions::max_clients).
    Queue,
    /// Resolving the host or connecting: `connect_timeout`, or `request_timeout` striking first.
    Connect,
    /// Sending the request or receiving the response.
    Request,
}

impl fmt::Display for TimeoutPhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TimeoutPhase::Queue => "timeout in request queue",
            TimeoutPhase::Connect => "timeout while connecting",
            TimeoutPhase::Request => "timeout during request",
        })
    }
}

/// Why a [`fetch`](super::HttpClient::fetch) failed.
///
/// Match on the variants, or ask the predicates ([`is_timeout`](Self::is_timeout),
/// [`is_connect`](Self::is_connect), [`status`](Self::status), ...). A response that arrived but is refused —
/// a non-2xx status with `raise_error` on (Tornado's `HTTPClientError`), or one redirect too many — is carried
/// by the error, body included.
#[derive(Debug)]
#[non_exhaustive]
pub enum ClientError {
    /// The URL cannot be parsed, is relative, holds control bytes or credentials, or has a bad host or port.
    InvalidUrl(String),
    /// The URL's scheme is not `http` (the scheme is given, lowercase as written). TLS is not part of this
    /// client.
    UnsupportedScheme(String),
    /// The request cannot be sent as given: a header name or value with forbidden bytes, or framing headers
    /// (`Content-Length`, `Transfer-Encoding`) that contradict the body. Nothing was sent.
    InvalidRequest(EncodeError),
    /// Resolving the host or connecting to it failed (refused, unreachable, unknown name).
    Connect(io::Error),
    /// The time allowed ran out; the connection, if any, was closed.
    Timeout(TimeoutPhase),
    /// The connection failed or closed before the response was complete.
    Connection(StreamError),
    /// The response is malformed: a bad head, bad chunked framing, or a body cut short.
    Protocol(ParseError),
    /// The body — as received, or once decompressed — is larger than `max_body_size`.
    BodyTooLarge {
        /// The limit that was exceeded, in bytes.
        limit: usize,
    },
    /// A `Content-Encoding: gzip` body is corrupt or cut short.
    Decompress(io::Error),
    /// A redirect arrived after `max_redirects` had been followed; the error carries it.
    TooManyRedirects(Box<ClientResponse>),
    /// A response with a status outside 200–299 while `raise_error` is on; the error carries it.
    Status(Box<ClientResponse>),
}

impl ClientError {
    /// Whether the time allowed ran out, in whichever [`TimeoutPhase`].
    pub fn is_timeout(&self) -> bool {
        matches!(self, ClientError::Timeout(_))
    }

    /// Whether no connection could be made: a connect error, or a timeout while connecting.
    pub fn is_connect(&self) -> bool {
        matches!(self, ClientError::Connect(_) | ClientError::Timeout(TimeoutPhase::Connect))
    }

    /// Whether the request itself was refused before anything was sent: bad URL, unsupported scheme, or
    /// invalid headers.
    pub fn is_request(&self) -> bool {
        matches!(self, ClientError::InvalidUrl(_) | ClientError::UnsupportedScheme(_) | ClientError::InvalidRequest(_))
    }

    /// Whether an established connection failed or closed before the response was complete.
    pub fn is_connection(&self) -> bool {
        matches!(self, ClientError::Connection(_))
    }

    /// Whether the response was malformed.
    pub fn is_protocol(&self) -> bool {
        matches!(self, ClientError::Protocol(_))
    }

    /// Whether a compressed body could not be decoded.
    pub fn is_decode(&self) -> bool {
        matches!(self, ClientError::Decompress(_))
    }

    /// Whether the body was larger than allowed.
    pub fn is_body_too_large(&self) -> bool {
        matches!(self, ClientError::BodyTooLarge { .. })
    }

    /// Whether redirects went on past `max_redirects`.
    pub fn is_redirect(&self) -> bool {
        matches!(self, ClientError::TooManyRedirects(_))
    }

    /// Whether a response arrived with a status refused by `raise_error`.
    pub fn is_status(&self) -> bool {
        matches!(self, ClientError::Status(_))
    }

    /// The status of the response the error carries, if any.
    pub fn status(&self) -> Option<u16> {
        self.response().map(ClientResponse::status)
    }

    /// The response the error carries ([`Status`](Self::Status) and [`TooManyRedirects`](Self::TooManyRedirects)).
    pub fn response(&self) -> Option<&ClientResponse> {
        match self {
            ClientError::Status(r) | ClientError::TooManyRedirects(r) => Some(r),
            _ => None,
        }
    }

    /// Takes the response the error carries, if any.
    pub fn into_response(self) -> Option<ClientResponse> {
        match self {
            ClientError::Status(r) | ClientError::TooManyRedirects(r) => Some(*r),
            _ => None,
        }
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::InvalidUrl(why) => write!(f, "invalid URL: {why}"),
            ClientError::UnsupportedScheme(scheme) => {
                write!(f, "unsupported scheme {scheme:?}: only http:// URLs can be fetched")
            }
            ClientError::InvalidRequest(e) => write!(f, "invalid request: {e}"),
            ClientError::Connect(e) => write!(f, "cannot connect: {e}"),
            ClientError::Timeout(phase) => phase.fmt(f),
            ClientError::Connection(e) => write!(f, "connection failed before the response was complete: {e}"),
            ClientError::Protocol(e) => write!(f, "malformed response: {e}"),
            ClientError::BodyTooLarge { limit } => write!(f, "response body larger than {limit} bytes"),
            ClientError::Decompress(e) => write!(f, "cannot decompress the response body: {e}"),
            ClientError::TooManyRedirects(r) => {
                write!(f, "too many redirects (the last was {} to {:?})", r.status(), r.headers().get("location"))
            }
            ClientError::Status(r) => write!(f, "HTTP {}: {}", r.status(), r.reason()),
        }
    }
}

impl std::error::Error for ClientError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ClientError::InvalidRequest(e) => Some(e),
            ClientError::Connect(e) | ClientError::Decompress(e) => Some(e),
            ClientError::Connection(e) => Some(e),
            ClientError::Protocol(e) => Some(e),
            _ => None,
        }
    }
}

impl From<EncodeError> for ClientError {
    fn from(e: EncodeError) -> Self {
        ClientError::InvalidRequest(e)
    }
}

impl From<ParseError> for ClientError {
    fn from(e: ParseError) -> Self {
        ClientError::Protocol(e)
    }
}

impl From<StreamError> for ClientError {
    fn from(e: StreamError) -> Self {
        ClientError::Connection(e)
    }
}

impl From<ClientError> for io::Error {
    fn from(e: ClientError) -> io::Error {
        let kind = match &e {
            ClientError::Timeout(_) => io::ErrorKind::TimedOut,
            ClientError::Connect(e) => e.kind(),
            ClientError::InvalidUrl(_) | ClientError::UnsupportedScheme(_) | ClientError::InvalidRequest(_) => {
                io::ErrorKind::InvalidInput
            }
            ClientError::Connection(_) => io::ErrorKind::ConnectionAborted,
            _ => io::ErrorKind::InvalidData,
        };
        io::Error::new(kind, e)
    }
}
