//! Errors of the protocol layer: what the peer got wrong ([`ParseError`]) and what we were asked to send but
//! must not ([`EncodeError`]).

use std::fmt;

/// Why a head or body received from the peer was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ParseErrorKind {
    /// The request line is not `method SP request-target SP HTTP-version CRLF`, or holds a control byte.
    InvalidRequestLine,
    /// The request target fits none of the forms of RFC 9112 §3.2 for its method.
    InvalidTarget,
    /// The status line is not `HTTP-version SP 3DIGIT [SP reason] CRLF`.
    InvalidStatusLine,
    /// A version other than HTTP/1.0 or HTTP/1.1.
    UnsupportedVersion,
    /// The request line is longer than `Limits::max_request_line`.
    RequestLineTooLong,
    /// The head is longer than `Limits::max_header_size`.
    HeadTooLarge,
    /// More header fields than `Limits::max_headers`.
    TooManyHeaders,
    /// A header name that is not a token, including whitespace before the colon.
    InvalidHeaderName,
    /// A header value with a control byte (NUL, bare CR, ...).
    InvalidHeaderValue,
    /// A field line starting with whitespace (obsolete line folding, RFC 9112 §5.2).
    ObsoleteLineFolding,
    /// A line ended by a bare LF (or a CR not followed by LF) instead of CRLF.
    InvalidLineEnding,
    /// An HTTP/1.1 request without a `Host` header.
    MissingHost,
    /// More than one `Host` header.
    MultipleHosts,
    /// A `Host` value that is not `host[:port]`.
    InvalidHost,
    /// A `Content-Length` that is not a plain decimal number.
    InvalidContentLength,
    /// Several `Content-Length` values that differ.
    ConflictingContentLength,
    /// Both `Content-Length` and `Transfer-Encoding`: the classic request smuggling vector.
    ContentLengthWithTransferEncoding,
    /// A `Transfer-Encoding` whose last coding is not `chunked`, that repeats `chunked`, is malformed, or comes
    /// in an HTTP/1.0 message.
    InvalidTransferEncoding,
    /// A transfer coding other than `chunked` (e.g. `gzip, chunked`); we implement only `chunked`.
    UnsupportedTransferEncoding,
    /// A response that may not have a body (1xx, 204) announces one.
    UnexpectedBody,
    /// A chunk-size line that is not hexadecimal digits, optionally followed by extensions.
    InvalidChunkSize,
    /// A chunk size too large for 64 bits.
    ChunkSizeOverflow,
    /// A chunk-size line longer than `body::CHUNKED_EXTENSIONS_LIMIT`.
    ChunkExtensionsTooLong,
    /// Chunk data not followed by CRLF.
    InvalidChunkTerminator,
    /// A malformed trailer section.
    InvalidTrailer,
    /// A trailer section longer than `body::TRAILER_LIMIT`.
    TrailersTooLarge,
    /// The connection ended before the body did.
    IncompleteBody,
}

impl ParseErrorKind {
    /// The status code a server answers this error with.
    pub fn status(self) -> u16 {
        use ParseErrorKind::*;
        match self {
            UnsupportedVersion => 505,
            RequestLineTooLong => 414,
            HeadTooLarge | TooManyHeaders => 431,
            UnsupportedTransferEncoding => 501,
            _ => 400,
        }
    }

    /// A short description, fit for a log line or an error page.
    pub fn message(self) -> &'static str {
        use ParseErrorKind::*;
        match self {
            InvalidRequestLine => "malformed request line",
            InvalidTarget => "invalid request target",
            InvalidStatusLine => "malformed status line",
            UnsupportedVersion => "unsupported HTTP version",
            RequestLineTooLong => "request line too long",
            HeadTooLarge => "header section too large",
            TooManyHeaders => "too many header fields",
            InvalidHeaderName => "invalid header name",
            InvalidHeaderValue => "invalid header value",
            ObsoleteLineFolding => "obsolete line folding in header section",
            InvalidLineEnding => "line not terminated by CRLF",
            MissingHost => "missing Host header",
            MultipleHosts => "multiple Host headers",
            InvalidHost => "invalid Host header",
            InvalidContentLength => "invalid Content-Length",
            ConflictingContentLength => "conflicting Content-Length values",
            ContentLengthWithTransferEncoding => "both Content-Length and Transfer-Encoding",
            InvalidTransferEncoding => "invalid Transfer-Encoding",
            UnsupportedTransferEncoding => "unsupported Transfer-Encoding",
            UnexpectedBody => "body not allowed for this status",
            InvalidChunkSize => "invalid chunk size",
            ChunkSizeOverflow => "chunk size too large",
            ChunkExtensionsTooLong => "chunk extensions too long",
            InvalidChunkTerminator => "chunk data not terminated by CRLF",
            InvalidTrailer => "invalid trailer section",
            TrailersTooLarge => "trailer section too large",
            IncompleteBody => "connection closed before the end of the body",
        }
    }
}

/// A head or body received from the peer was refused. Carries the status code a server answers with; the
/// connection must be closed afterwards, since the framing of what follows is unknown.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ParseError {
    kind: ParseErrorKind,
}

impl ParseError {
    /// What went wrong.
    pub fn kind(&self) -> ParseErrorKind {
        self.kind
    }

    /// The status code to answer with: 400 by default; 414, 431, 501 or 505 where they apply.
    pub fn status(&self) -> u16 {
        self.kind.status()
    }

    /// A short description.
    pub fn message(&self) -> &'static str {
        self.kind.message()
    }
}

impl From<ParseErrorKind> for ParseError {
    fn from(kind: ParseErrorKind) -> Self {
        ParseError { kind }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message(), self.status())
    }
}

impl std::error::Error for ParseError {}

/// A head or body we were asked to send is invalid; nothing was written for the failing call.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EncodeError {
    /// A status code outside 100–999.
    InvalidStatus(u16),
    /// A reason phrase with CR, LF or another control byte.
    InvalidReason,
    /// A header name that is not a token (the name is given lossily).
    InvalidHeaderName(String),
    /// A header value with CR, LF, NUL or another control byte (the header name is given).
    InvalidHeaderValue(String),
    /// A method that is not a token.
    InvalidMethod,
    /// A request target that is empty or holds whitespace or control bytes.
    InvalidTarget,
    /// A `Host` value that is not `host[:port]`.
    InvalidHost,
    /// A `Content-Length` header that is not a decimal number.
    InvalidContentLength,
    /// A `Content-Length` header that disagrees with the length given to the encoder.
    ContentLengthMismatch,
    /// A `Transfer-Encoding` header other than `chunked`, or chunked framing towards an HTTP/1.0 peer.
    UnsupportedTransferEncoding,
    /// Framing that cannot be expressed: both `Content-Length` and `Transfer-Encoding`, or a request body
    /// delimited by closing the connection.
    InvalidFraming,
    /// Framing headers or body data on a message that cannot have a body (1xx, 204).
    BodyNotAllowed,
    /// More body bytes than the announced `Content-Length`.
    BodyTooLong,
    /// The body ended `remaining` bytes short of the announced `Content-Length`.
    BodyTooShort {
        /// Bytes still owed.
        remaining: u64,
    },
    /// Data written after the body was finished.
    AlreadyFinished,
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncodeError::InvalidStatus(code) => write!(f, "invalid status code {code}"),
            EncodeError::InvalidReason => f.write_str("invalid characters in reason phrase"),
            EncodeError::InvalidHeaderName(name) => write!(f, "invalid header name {name:?}"),
            EncodeError::InvalidHeaderValue(name) => write!(f, "invalid characters in value of header {name:?}"),
            EncodeError::InvalidMethod => f.write_str("invalid method"),
            EncodeError::InvalidTarget => f.write_str("invalid request target"),
            EncodeError::InvalidHost => f.write_str("invalid host"),
            EncodeError::InvalidContentLength => f.write_str("Content-Length header is not a decimal number"),
            EncodeError::ContentLengthMismatch => f.write_str("Content-Length header disagrees with the body length"),
            EncodeError::UnsupportedTransferEncoding => f.write_str("unsupported Transfer-Encoding"),
            EncodeError::InvalidFraming => f.write_str("conflicting or impossible body framing"),
            EncodeError::BodyNotAllowed => f.write_str("this message cannot have a body"),
            EncodeError::BodyTooLong => f.write_str("tried to write more data than Content-Length"),
            EncodeError::BodyTooShort { remaining } => {
                write!(f, "body ended {remaining} bytes short of Content-Length")
            }
            EncodeError::AlreadyFinished => f.write_str("body already finished"),
        }
    }
}

impl std::error::Error for EncodeError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_follow_the_rfcs() {
        assert_eq!(ParseError::from(ParseErrorKind::RequestLineTooLong).status(), 414);
        assert_eq!(ParseError::from(ParseErrorKind::HeadTooLarge).status(), 431);
        assert_eq!(ParseError::from(ParseErrorKind::TooManyHeaders).status(), 431);
        assert_eq!(ParseError::from(ParseErrorKind::UnsupportedVersion).status(), 505);
        assert_eq!(ParseError::from(ParseErrorKind::UnsupportedTransferEncoding).status(), 501);
        assert_eq!(ParseError::from(ParseErrorKind::ContentLengthWithTransferEncoding).status(), 400);
        assert_eq!(ParseError::from(ParseErrorKind::MissingHost).to_string(), "missing Host header (400)");
    }
}
