//! The HTTP/1.1 wire protocol without I/O: parsing heads, framing bodies and encoding heads in both roles.
//!
//! Everything here is a pure function of bytes in and bytes out, driven by the connection code:
//!
//! | Role   | Reads                                              | Writes                                          |
//! |--------|----------------------------------------------------|-------------------------------------------------|
//! | server | [`request::RequestParser`] → [`request::RequestHead`] | [`response::ResponseEncoder`] → [`body::BodyEncoder`] |
//! | client | [`client::ResponseParser`] → [`client::ResponseHead`] | [`client::encode_request_head`] → [`body::BodyEncoder`] |
//!
//! Bodies are read with [`body::Decoder`] (content-length, chunked or read-until-close) whichever the role.
//! Parsers never copy: a complete head is split off the read buffer, frozen, and every field refers to it.
//! They are strict where leniency has enabled request smuggling; each rule names its reason where it is made.

pub mod body;
pub mod client;
pub mod date;
mod error;
mod head;
pub mod request;
pub mod response;

use std::fmt;

use bytes::Bytes;

pub use error::{EncodeError, ParseError, ParseErrorKind};

/// The HTTP versions spoken on an HTTP/1 connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Version {
    /// `HTTP/1.0`: no chunked encoding, persistent connections only on request.
    Http10,
    /// `HTTP/1.1`.
    Http11,
}

impl Version {
    /// The version as it appears on the wire, e.g. `"HTTP/1.1"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Version::Http10 => "HTTP/1.0",
            Version::Http11 => "HTTP/1.1",
        }
    }

    fn from_minor(minor: u8) -> Version {
        if minor == 0 { Version::Http10 } else { Version::Http11 }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A request method. The registered ones are variants; anything else is an [`Method::Extension`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Method {
    /// `GET`
    Get,
    /// `HEAD`: the response carries the headers of a `GET` and no body.
    Head,
    /// `POST`
    Post,
    /// `PUT`
    Put,
    /// `DELETE`
    Delete,
    /// `CONNECT`: the target is an authority and a 2xx answer turns the connection into a tunnel.
    Connect,
    /// `OPTIONS`: the only method whose target may be `*`.
    Options,
    /// `TRACE`
    Trace,
    /// `PATCH`
    Patch,
    /// Any other token.
    Extension(ExtensionMethod),
}

/// A method that is not one of the [`Method`] variants; always a valid token.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ExtensionMethod(Bytes);

impl fmt::Debug for ExtensionMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl ExtensionMethod {
    /// The method name.
    pub fn as_str(&self) -> &str {
        // Built only from tokens, which are ASCII.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl Method {
    /// Parses a method name (case-sensitive, as RFC 9110 §9.1 says). Returns `None` if it is not a token.
    ///
    /// # Examples
    ///
    /// ```
    /// use gale_http1::proto::Method;
    /// assert_eq!(Method::from_bytes(b"GET"), Some(Method::Get));
    /// assert_eq!(Method::from_bytes(b"PROPFIND").unwrap().as_str(), "PROPFIND");
    /// assert_eq!(Method::from_bytes(b"get").unwrap().as_str(), "get");
    /// assert_eq!(Method::from_bytes(b"BAD METHOD"), None);
    /// ```
    pub fn from_bytes(name: &[u8]) -> Option<Method> {
        if let Some(m) = Method::known(name) {
            return Some(m);
        }
        crate::headers::is_token(name).then(|| Method::Extension(ExtensionMethod(Bytes::copy_from_slice(name))))
    }

    /// The registered method spelled exactly `name`, if any.
    #[inline]
    fn known(name: &[u8]) -> Option<Method> {
        Some(match name {
            b"GET" => Method::Get,
            b"HEAD" => Method::Head,
            b"POST" => Method::Post,
            b"PUT" => Method::Put,
            b"DELETE" => Method::Delete,
            b"CONNECT" => Method::Connect,
            b"OPTIONS" => Method::Options,
            b"TRACE" => Method::Trace,
            b"PATCH" => Method::Patch,
            _ => return None,
        })
    }

    /// A method parsed from a head: registered ones need no storage, others are copied (they are rare).
    fn from_name(name: &[u8]) -> Method {
        Method::known(name).unwrap_or_else(|| Method::Extension(ExtensionMethod(Bytes::copy_from_slice(name))))
    }

    /// The method name.
    pub fn as_str(&self) -> &str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
            Method::Connect => "CONNECT",
            Method::Options => "OPTIONS",
            Method::Trace => "TRACE",
            Method::Patch => "PATCH",
            Method::Extension(e) => e.as_str(),
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Size limits applied while reading a head. Exceeding one is an error carrying the status to answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Most bytes a whole head may take, start line and final empty line included (default 64 KiB). A longer
    /// head — complete or still arriving — is refused with 431.
    pub max_header_size: usize,
    /// Most bytes the start line may take, line ending included (default 8 KiB). A longer request line is
    /// refused with 414.
    pub max_request_line: usize,
    /// Most header fields a head may carry (default 100). More are refused with 431.
    pub max_headers: usize,
}

impl Limits {
    /// Default [`Limits::max_header_size`]: 64 KiB, Tornado's default.
    pub const DEFAULT_MAX_HEADER_SIZE: usize = 64 * 1024;
    /// Default [`Limits::max_request_line`]: 8 KiB.
    pub const DEFAULT_MAX_REQUEST_LINE: usize = 8 * 1024;
    /// Default [`Limits::max_headers`].
    pub const DEFAULT_MAX_HEADERS: usize = 100;

    /// The head size limit actually used: offsets into a head are stored as `u32` (and `u32::MAX` is a
    /// marker in `HeaderMap`).
    fn header_size(&self) -> usize {
        self.max_header_size.min(u32::MAX as usize - 1)
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_header_size: Limits::DEFAULT_MAX_HEADER_SIZE,
            max_request_line: Limits::DEFAULT_MAX_REQUEST_LINE,
            max_headers: Limits::DEFAULT_MAX_HEADERS,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_are_case_sensitive_tokens() {
        assert_eq!(Method::from_bytes(b"DELETE"), Some(Method::Delete));
        assert!(matches!(Method::from_bytes(b"Delete"), Some(Method::Extension(_))));
        assert_eq!(Method::from_bytes(b""), None);
        assert_eq!(Method::from_bytes(b"G\x00T"), None);
        assert_eq!(Method::from_bytes(b"M-SEARCH").unwrap().to_string(), "M-SEARCH");
    }

    #[test]
    fn versions_print_as_on_the_wire() {
        assert_eq!(Version::Http10.to_string(), "HTTP/1.0");
        assert_eq!(Version::Http11.as_str(), "HTTP/1.1");
    }
}
