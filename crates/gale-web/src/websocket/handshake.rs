//! The opening handshake (RFC 6455 §4): checking a client's upgrade request and building the answer, and,
//! for clients, building the request and checking the server's `101 Switching Protocols`.
//!
//! Headers are taken as an iterator of `(name, value)` string pairs, so this module depends on no header map
//! type; names are matched case-insensitively and a header may appear several times. Values that are not
//! valid UTF-8 should simply be left out by the caller.
//!
//! # Server
//!
//! [`UpgradeRequest::parse`] checks, in this order, and answers a failure with the status of
//! [`HandshakeError::status`] (plus [`HandshakeError::headers`]):
//!
//! | rule | status |
//! | --- | --- |
//! | the method is `GET` | 405, with `Allow: GET` |
//! | `Upgrade` lists the `websocket` token | 400 |
//! | `Connection` lists the `upgrade` token | 400 |
//! | `Sec-WebSocket-Version` is `13` | 426, with `Sec-WebSocket-Version: 13` |
//! | one `Sec-WebSocket-Key`, the base64 of 16 bytes | 400 |
//!
//! The handler then chooses a subprotocol among [`UpgradeRequest::subprotocols`], may check the origin
//! ([`origin_matches_host`] is Tornado's default `check_origin`), negotiates compression from
//! [`UpgradeRequest::extensions`], and sends `101 Switching Protocols` with
//! [`UpgradeRequest::response_headers`]. The HTTP layer must also make sure the request is HTTP/1.1 or later.
//!
//! # Client
//!
//! [`ClientHandshake`] makes the key and the request headers, then checks the response with
//! [`ClientHandshake::validate_response`].

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use sha1::{Digest, Sha1};

use crate::websocket::deflate::{DeflateConfig, DeflateParams};
use crate::websocket::frame::MaskRng;

/// The GUID appended to the key before hashing (RFC 6455 §1.3).
pub const WEBSOCKET_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// The protocol version this module speaks.
pub const WEBSOCKET_VERSION: &str = "13";

/// The `Sec-WebSocket-Accept` value for a `Sec-WebSocket-Key`: base64 of the SHA-1 of the key and the GUID.
///
/// # Examples
///
/// ```
/// use gale_web::websocket::handshake::accept_key;
///
/// // RFC 6455 §1.3.
/// assert_eq!(accept_key("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
/// ```
pub fn accept_key(key: &str) -> String {
    let mut sha1 = Sha1::new();
    sha1.update(key.as_bytes());
    sha1.update(WEBSOCKET_GUID.as_bytes());
    BASE64.encode(sha1.finalize())
}

/// Whether a comma-separated header value lists `token` (case-insensitively).
fn lists_token(value: &str, token: &str) -> bool {
    value.split(',').any(|item| item.trim().eq_ignore_ascii_case(token))
}

/// The items of comma-separated header values, trimmed, empty ones skipped.
fn list_items<'h>(values: &[&'h str]) -> Vec<&'h str> {
    values.iter().flat_map(|value| value.split(',')).map(str::trim).filter(|item| !item.is_empty()).collect()
}

// ---------------------------------------------------------------------------------------------------------
// Server side
// ---------------------------------------------------------------------------------------------------------

/// Why an upgrade request was refused, with the HTTP status to answer it with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HandshakeError {
    status: u16,
    reason: &'static str,
}

impl HandshakeError {
    const fn bad_request(reason: &'static str) -> Self {
        HandshakeError { status: 400, reason }
    }

    /// The HTTP status: 400, 405 or 426.
    pub const fn status(&self) -> u16 {
        self.status
    }

    /// What was wrong, suitable for the response body or a log.
    pub const fn reason(&self) -> &'static str {
        self.reason
    }

    /// Headers the error response must carry: `Allow: GET` with 405, `Sec-WebSocket-Version: 13` with 426.
    pub const fn headers(&self) -> &'static [(&'static str, &'static str)] {
        match self.status {
            405 => &[("Allow", "GET")],
            426 => &[("Sec-WebSocket-Version", WEBSOCKET_VERSION)],
            _ => &[],
        }
    }
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "websocket handshake refused ({}): {}", self.status, self.reason)
    }
}

impl std::error::Error for HandshakeError {}

/// A valid WebSocket upgrade request, borrowing from the request's headers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpgradeRequest<'h> {
    key: &'h str,
    subprotocols: Vec<&'h str>,
    extensions: Vec<&'h str>,
    origin: Option<&'h str>,
    host: Option<&'h str>,
}

impl<'h> UpgradeRequest<'h> {
    /// Checks an upgrade request given its method and headers (see the [module docs](self) for the rules).
    ///
    /// # Errors
    ///
    /// A [`HandshakeError`] naming the status to answer with.
    ///
    /// # Examples
    ///
    /// ```
    /// use gale_web::websocket::handshake::UpgradeRequest;
    ///
    /// let headers = [
    ///     ("Host", "example.com"),
    ///     ("Upgrade", "websocket"),
    ///     ("Connection", "keep-alive, Upgrade"),
    ///     ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ///     ("Sec-WebSocket-Version", "13"),
    ///     ("Sec-WebSocket-Protocol", "chat, superchat"),
    /// ];
    /// let request = UpgradeRequest::parse("GET", headers).unwrap();
    /// assert_eq!(request.subprotocols(), ["chat", "superchat"]);
    /// assert_eq!(request.accept_key(), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    ///
    /// let old = [("Upgrade", "websocket"), ("Connection", "Upgrade"), ("Sec-WebSocket-Version", "8")];
    /// assert_eq!(UpgradeRequest::parse("GET", old).unwrap_err().status(), 426);
    /// ```
    pub fn parse<I>(method: &str, headers: I) -> Result<Self, HandshakeError>
    where
        I: IntoIterator<Item = (&'h str, &'h str)>,
    {
        if method != "GET" {
            return Err(HandshakeError { status: 405, reason: "websocket upgrade requires GET" });
        }
        let mut upgrade = false;
        let mut connection = false;
        let mut versions = Vec::new();
        let mut keys = Vec::new();
        let mut protocols = Vec::new();
        let mut extensions = Vec::new();
        let mut origin = None;
        let mut host = None;
        for (name, value) in headers {
            if name.eq_ignore_ascii_case("upgrade") {
                upgrade |= lists_token(value, "websocket");
            } else if name.eq_ignore_ascii_case("connection") {
                connection |= lists_token(value, "upgrade");
            } else if name.eq_ignore_ascii_case("sec-websocket-version") {
                versions.push(value.trim());
            } else if name.eq_ignore_ascii_case("sec-websocket-key") {
                keys.push(value.trim());
            } else if name.eq_ignore_ascii_case("sec-websocket-protocol") {
                protocols.push(value);
            } else if name.eq_ignore_ascii_case("sec-websocket-extensions") {
                extensions.push(value);
            } else if name.eq_ignore_ascii_case("origin") {
                origin.get_or_insert(value.trim());
            } else if name.eq_ignore_ascii_case("host") {
                host.get_or_insert(value.trim());
            }
        }
        if !upgrade {
            return Err(HandshakeError::bad_request("Can \"Upgrade\" only to \"WebSocket\"."));
        }
        if !connection {
            return Err(HandshakeError::bad_request("\"Connection\" must be \"Upgrade\"."));
        }
        if versions != [WEBSOCKET_VERSION] {
            return Err(HandshakeError { status: 426, reason: "unsupported Sec-WebSocket-Version" });
        }
        let key = match keys.as_slice() {
            [key] if BASE64.decode(key).is_ok_and(|nonce| nonce.len() == 16) => *key,
            [_] => return Err(HandshakeError::bad_request("invalid Sec-WebSocket-Key")),
            [] => return Err(HandshakeError::bad_request("missing Sec-WebSocket-Key")),
            _ => return Err(HandshakeError::bad_request("more than one Sec-WebSocket-Key")),
        };
        Ok(UpgradeRequest { key, subprotocols: list_items(&protocols), extensions, origin, host })
    }

    /// The client's `Sec-WebSocket-Key`.
    pub fn key(&self) -> &'h str {
        self.key
    }

    /// The `Sec-WebSocket-Accept` answering the key.
    pub fn accept_key(&self) -> String {
        accept_key(self.key)
    }

    /// The subprotocols the client offered, in its order of preference (what Tornado passes to
    /// `select_subprotocol`).
    pub fn subprotocols(&self) -> &[&'h str] {
        &self.subprotocols
    }

    /// The raw `Sec-WebSocket-Extensions` values, for
    /// [`DeflateConfig::negotiate`](crate::websocket::deflate::DeflateConfig::negotiate).
    pub fn extensions(&self) -> &[&'h str] {
        &self.extensions
    }

    /// The `Origin` header, if any (browsers always send one; other clients often do not).
    pub fn origin(&self) -> Option<&'h str> {
        self.origin
    }

    /// The `Host` header, if any.
    pub fn host(&self) -> Option<&'h str> {
        self.host
    }

    /// Tornado's default `check_origin`: true without an `Origin` header (not a browser), otherwise whether
    /// the origin's `host[:port]` equals the `Host` header.
    pub fn is_same_origin(&self) -> bool {
        match (self.origin, self.host) {
            (None, _) => true,
            (Some(origin), Some(host)) => origin_matches_host(origin, host),
            (Some(_), None) => false,
        }
    }

    /// The headers of the `101 Switching Protocols` response, after `Upgrade` and `Connection`:
    /// `Sec-WebSocket-Accept`, then `Sec-WebSocket-Protocol` if a subprotocol was selected and
    /// `Sec-WebSocket-Extensions` if compression was negotiated.
    ///
    /// A `subprotocol` that the client did not offer is left out (and logged): answering with it would make
    /// the client fail the connection.
    pub fn response_headers(
        &self,
        subprotocol: Option<&str>,
        deflate: Option<&DeflateParams>,
    ) -> Vec<(&'static str, String)> {
        let mut headers = vec![
            ("Upgrade", "websocket".to_owned()),
            ("Connection", "Upgrade".to_owned()),
            ("Sec-WebSocket-Accept", self.accept_key()),
        ];
        match subprotocol {
            Some(chosen) if self.subprotocols.contains(&chosen) => {
                headers.push(("Sec-WebSocket-Protocol", chosen.to_owned()));
            }
            Some(chosen) => log::warn!("ignoring subprotocol {chosen:?}: the client did not offer it"),
            None => {}
        }
        if let Some(params) = deflate {
            headers.push(("Sec-WebSocket-Extensions", params.to_header_value()));
        }
        headers
    }
}

/// The `host[:port]` of an `Origin` value such as `https://Example.com:8443`, or `None` for an opaque
/// origin (`null`) or a value without a scheme.
///
/// # Examples
///
/// ```
/// use gale_web::websocket::handshake::origin_host;
///
/// assert_eq!(origin_host("https://Example.com:8443"), Some("Example.com:8443"));
/// assert_eq!(origin_host("null"), None);
/// ```
pub fn origin_host(origin: &str) -> Option<&str> {
    let (_scheme, rest) = origin.trim().split_once("://")?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    // Origins carry no credentials, but a URL might.
    let host = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    (!host.is_empty()).then_some(host)
}

/// Whether an `Origin` header names the same `host[:port]` as the `Host` header, ignoring ASCII case
/// (Tornado's default `check_origin`). Ports are compared as written: `http://a.com:80` does not match
/// `a.com`.
///
/// # Examples
///
/// ```
/// use gale_web::websocket::handshake::origin_matches_host;
///
/// assert!(origin_matches_host("http://EXAMPLE.com:8888", "example.com:8888"));
/// assert!(!origin_matches_host("http://evil.example", "example.com"));
/// ```
pub fn origin_matches_host(origin: &str, host: &str) -> bool {
    origin_host(origin).is_some_and(|origin| origin.eq_ignore_ascii_case(host.trim()))
}

// ---------------------------------------------------------------------------------------------------------
// Client side
// ---------------------------------------------------------------------------------------------------------

/// Why a client refused the server's handshake response; the connection must be dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResponseError(&'static str);

impl ResponseError {
    /// What was wrong.
    pub fn reason(&self) -> &'static str {
        self.0
    }
}

impl fmt::Display for ResponseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid websocket handshake response: {}", self.0)
    }
}

impl std::error::Error for ResponseError {}

/// What the server agreed to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Accepted {
    /// The subprotocol the server selected among ours.
    pub subprotocol: Option<String>,
    /// The permessage-deflate parameters, if the server accepted compression.
    pub deflate: Option<DeflateParams>,
}

/// A client's side of the opening handshake: a fresh key, the subprotocols and compression offered.
///
/// # Examples
///
/// ```
/// use gale_web::websocket::handshake::{ClientHandshake, UpgradeRequest};
///
/// let client = ClientHandshake::new(&["chat"], None);
/// let request = client.request_headers();
/// let server_side = UpgradeRequest::parse("GET", request.iter().map(|(n, v)| (*n, v.as_str()))).unwrap();
/// let response = server_side.response_headers(Some("chat"), None);
/// let accepted = client.validate_response(101, response.iter().map(|(n, v)| (*n, v.as_str()))).unwrap();
/// assert_eq!(accepted.subprotocol.as_deref(), Some("chat"));
/// ```
#[derive(Clone, Debug)]
pub struct ClientHandshake {
    key: String,
    subprotocols: Vec<String>,
    deflate: Option<DeflateConfig>,
}

impl ClientHandshake {
    /// A handshake with a new random key, offering `subprotocols` (in order of preference) and, with
    /// `deflate`, permessage-deflate.
    pub fn new(subprotocols: &[&str], deflate: Option<DeflateConfig>) -> Self {
        let mut rng = MaskRng::new();
        let mut nonce = [0u8; 16];
        nonce[..8].copy_from_slice(&rng.next_u64().to_ne_bytes());
        nonce[8..].copy_from_slice(&rng.next_u64().to_ne_bytes());
        ClientHandshake {
            key: BASE64.encode(nonce),
            subprotocols: subprotocols.iter().map(|s| (*s).to_owned()).collect(),
            deflate,
        }
    }

    /// The `Sec-WebSocket-Key` sent.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The handshake headers to add to the `GET` request (besides `Host`, and `Origin` if wanted):
    /// `Upgrade`, `Connection`, `Sec-WebSocket-Key`, `Sec-WebSocket-Version`, and `Sec-WebSocket-Protocol`
    /// and `Sec-WebSocket-Extensions` when there is something to offer.
    pub fn request_headers(&self) -> Vec<(&'static str, String)> {
        let mut headers = vec![
            ("Upgrade", "websocket".to_owned()),
            ("Connection", "Upgrade".to_owned()),
            ("Sec-WebSocket-Key", self.key.clone()),
            ("Sec-WebSocket-Version", WEBSOCKET_VERSION.to_owned()),
        ];
        if !self.subprotocols.is_empty() {
            headers.push(("Sec-WebSocket-Protocol", self.subprotocols.join(", ")));
        }
        if let Some(config) = &self.deflate {
            headers.push(("Sec-WebSocket-Extensions", config.offer()));
        }
        headers
    }

    /// Checks the server's response: status 101, `Upgrade: websocket`, `Connection: upgrade`, the right
    /// `Sec-WebSocket-Accept`, at most one subprotocol and only one we offered, and extensions only as we
    /// offered them.
    ///
    /// # Errors
    ///
    /// A [`ResponseError`] for the first rule broken.
    pub fn validate_response<'h, I>(&self, status: u16, headers: I) -> Result<Accepted, ResponseError>
    where
        I: IntoIterator<Item = (&'h str, &'h str)>,
    {
        if status != 101 {
            return Err(ResponseError("the server did not switch protocols"));
        }
        let mut upgrade = false;
        let mut connection = false;
        let mut accepts = Vec::new();
        let mut protocols = Vec::new();
        let mut extensions = Vec::new();
        for (name, value) in headers {
            if name.eq_ignore_ascii_case("upgrade") {
                upgrade |= lists_token(value, "websocket");
            } else if name.eq_ignore_ascii_case("connection") {
                connection |= lists_token(value, "upgrade");
            } else if name.eq_ignore_ascii_case("sec-websocket-accept") {
                accepts.push(value.trim());
            } else if name.eq_ignore_ascii_case("sec-websocket-protocol") {
                protocols.push(value);
            } else if name.eq_ignore_ascii_case("sec-websocket-extensions") {
                extensions.push(value);
            }
        }
        if !upgrade {
            return Err(ResponseError("missing Upgrade: websocket"));
        }
        if !connection {
            return Err(ResponseError("missing Connection: upgrade"));
        }
        if accepts != [accept_key(&self.key).as_str()] {
            return Err(ResponseError("wrong Sec-WebSocket-Accept"));
        }
        let subprotocol = match list_items(&protocols).as_slice() {
            [] => None,
            [chosen] if self.subprotocols.iter().any(|offered| offered == chosen) => Some((*chosen).to_owned()),
            [_] => return Err(ResponseError("the server selected a subprotocol we did not offer")),
            _ => return Err(ResponseError("the server selected more than one subprotocol")),
        };
        let deflate = match &self.deflate {
            Some(config) => config.accept_response(extensions).map_err(|e| ResponseError(e.reason()))?,
            None if list_items(&extensions).is_empty() => None,
            None => return Err(ResponseError("the server accepted an extension we did not offer")),
        };
        Ok(Accepted { subprotocol, deflate })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

    fn valid_headers() -> Vec<(&'static str, &'static str)> {
        vec![
            ("Host", "server.example.com"),
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Key", KEY),
            ("Origin", "http://example.com"),
            ("Sec-WebSocket-Protocol", "chat, superchat"),
            ("Sec-WebSocket-Version", "13"),
        ]
    }

    fn with(replace: &str, value: Option<&'static str>) -> Vec<(&'static str, &'static str)> {
        let mut headers: Vec<_> =
            valid_headers().into_iter().filter(|(n, _)| !n.eq_ignore_ascii_case(replace)).collect();
        if let Some(value) = value {
            let name = valid_headers().into_iter().find(|(n, _)| n.eq_ignore_ascii_case(replace)).unwrap().0;
            headers.push((name, value));
        }
        headers
    }

    fn refusal(method: &str, headers: Vec<(&'static str, &'static str)>) -> HandshakeError {
        UpgradeRequest::parse(method, headers).unwrap_err()
    }

    #[test]
    fn accepts_the_rfc_example_request() {
        let request = UpgradeRequest::parse("GET", valid_headers()).unwrap();
        assert_eq!(request.key(), KEY);
        assert_eq!(request.accept_key(), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        assert_eq!(request.subprotocols(), ["chat", "superchat"]);
        assert_eq!(request.origin(), Some("http://example.com"));
        assert_eq!(request.host(), Some("server.example.com"));
        assert!(!request.is_same_origin());
    }

    #[test]
    fn header_names_and_tokens_are_case_insensitive_and_lists_are_split() {
        let headers = vec![
            ("upgrade", "WebSocket"),
            ("CONNECTION", "keep-alive"),
            ("connection", "UPGRADE"),
            ("sec-websocket-key", KEY),
            ("sec-websocket-version", " 13 "),
            ("Sec-WebSocket-Protocol", "a,,b "),
            ("Sec-WebSocket-Protocol", "c"),
            ("Sec-WebSocket-Extensions", "permessage-deflate"),
            ("Sec-WebSocket-Extensions", "x-foo"),
        ];
        let request = UpgradeRequest::parse("GET", headers).unwrap();
        assert_eq!(request.subprotocols(), ["a", "b", "c"]);
        assert_eq!(request.extensions(), ["permessage-deflate", "x-foo"]);
        assert!(request.is_same_origin(), "no Origin header: not a browser");
    }

    #[test]
    fn refuses_requests_that_break_a_rule_with_the_right_status() {
        assert_eq!(refusal("POST", valid_headers()).status(), 405);
        assert_eq!(refusal("POST", valid_headers()).headers(), &[("Allow", "GET")]);
        assert_eq!(refusal("GET", with("Upgrade", None)).status(), 400);
        assert_eq!(refusal("GET", with("Upgrade", Some("h2c"))).status(), 400);
        assert_eq!(refusal("GET", with("Connection", Some("keep-alive"))).status(), 400);
        assert_eq!(refusal("GET", with("Connection", Some("upgraded"))).status(), 400);
        for version in [None, Some("8"), Some("13, 8"), Some("")] {
            let err = refusal("GET", with("Sec-WebSocket-Version", version));
            assert_eq!(err.status(), 426, "version {version:?}");
            assert_eq!(err.headers(), &[("Sec-WebSocket-Version", "13")]);
        }
        let mut twice = valid_headers();
        twice.push(("Sec-WebSocket-Version", "13"));
        assert_eq!(refusal("GET", twice).status(), 426);
        for key in [None, Some(""), Some("not base64!"), Some("dGhlIHNhbXBsZQ=="), Some("AAAAAAAAAAAAAAAAAAAAAAAAAAA=")]
        {
            let err = refusal("GET", with("Sec-WebSocket-Key", key));
            assert_eq!(err.status(), 400, "key {key:?}");
            assert!(err.headers().is_empty());
        }
        let mut two_keys = valid_headers();
        two_keys.push(("Sec-WebSocket-Key", KEY));
        assert_eq!(refusal("GET", two_keys).reason(), "more than one Sec-WebSocket-Key");
    }

    #[test]
    fn response_headers_carry_accept_subprotocol_and_extensions() {
        let request = UpgradeRequest::parse("GET", valid_headers()).unwrap();
        let deflate = DeflateParams { server_max_window_bits: Some(10), ..DeflateParams::default() };
        assert_eq!(
            request.response_headers(Some("superchat"), Some(&deflate)),
            vec![
                ("Upgrade", "websocket".to_owned()),
                ("Connection", "Upgrade".to_owned()),
                ("Sec-WebSocket-Accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=".to_owned()),
                ("Sec-WebSocket-Protocol", "superchat".to_owned()),
                ("Sec-WebSocket-Extensions", "permessage-deflate; server_max_window_bits=10".to_owned()),
            ]
        );
        let unoffered = request.response_headers(Some("mqtt"), None);
        assert!(unoffered.iter().all(|(name, _)| *name != "Sec-WebSocket-Protocol"));
    }

    #[test]
    fn origin_checks_follow_tornado() {
        assert!(origin_matches_host("http://example.com", "example.com"));
        assert!(origin_matches_host("https://Example.COM:8443", "example.com:8443"));
        assert!(origin_matches_host("http://[::1]:8888", "[::1]:8888"));
        assert!(origin_matches_host("http://user@example.com/path?q", "example.com"));
        assert!(!origin_matches_host("http://example.com:8080", "example.com"));
        assert!(!origin_matches_host("http://example.com.evil.net", "example.com"));
        assert!(!origin_matches_host("null", "example.com"));
        assert!(!origin_matches_host("example.com", "example.com"));
        assert_eq!(origin_host("file://"), None);
        let same = with("Origin", Some("http://server.example.com"));
        assert!(UpgradeRequest::parse("GET", same).unwrap().is_same_origin());
        let no_host: Vec<_> = valid_headers().into_iter().filter(|(n, _)| *n != "Host").collect();
        assert!(!UpgradeRequest::parse("GET", no_host).unwrap().is_same_origin());
    }

    #[test]
    fn client_keys_are_fresh_16_byte_nonces() {
        let a = ClientHandshake::new(&[], None);
        let b = ClientHandshake::new(&[], None);
        assert_ne!(a.key(), b.key());
        assert_eq!(BASE64.decode(a.key()).unwrap().len(), 16);
        let headers = a.request_headers();
        assert_eq!(headers.len(), 4, "no protocol or extension headers when nothing is offered");
        assert!(UpgradeRequest::parse("GET", headers.iter().map(|(n, v)| (*n, v.as_str()))).is_ok());
    }

    #[test]
    fn client_and_server_agree_on_subprotocol_and_compression() {
        let client = ClientHandshake::new(&["v2.chat", "v1.chat"], Some(DeflateConfig::default()));
        let request_headers = client.request_headers();
        let request = UpgradeRequest::parse("GET", request_headers.iter().map(|(n, v)| (*n, v.as_str()))).unwrap();
        assert_eq!(request.subprotocols(), ["v2.chat", "v1.chat"]);
        let server_config = DeflateConfig { server_max_window_bits: Some(11), ..DeflateConfig::default() };
        let agreed = server_config.negotiate(request.extensions().iter().copied()).unwrap();
        let response = request.response_headers(Some("v1.chat"), Some(&agreed));
        let accepted = client.validate_response(101, response.iter().map(|(n, v)| (*n, v.as_str()))).unwrap();
        assert_eq!(accepted.subprotocol.as_deref(), Some("v1.chat"));
        assert_eq!(accepted.deflate, Some(agreed));
    }

    #[test]
    fn client_refuses_bad_responses() {
        let client = ClientHandshake::new(&["chat"], None);
        let accept = accept_key(client.key());
        let good = vec![("Upgrade", "websocket"), ("Connection", "Upgrade"), ("Sec-WebSocket-Accept", accept.as_str())];
        assert!(client.validate_response(101, good.clone()).is_ok());
        assert!(client.validate_response(200, good.clone()).is_err());
        let without = |name: &str| good.iter().copied().filter(|(n, _)| *n != name).collect::<Vec<_>>();
        assert!(client.validate_response(101, without("Upgrade")).is_err());
        assert!(client.validate_response(101, without("Connection")).is_err());
        assert!(client.validate_response(101, without("Sec-WebSocket-Accept")).is_err());
        let mut wrong_accept = without("Sec-WebSocket-Accept");
        wrong_accept.push(("Sec-WebSocket-Accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="));
        assert_eq!(client.validate_response(101, wrong_accept).unwrap_err().reason(), "wrong Sec-WebSocket-Accept");
        for (name, value) in [
            ("Sec-WebSocket-Protocol", "superchat"),
            ("Sec-WebSocket-Protocol", "chat, chat"),
            ("Sec-WebSocket-Extensions", "permessage-deflate"),
        ] {
            let mut headers = good.clone();
            headers.push((name, value));
            assert!(client.validate_response(101, headers).is_err(), "{name}: {value}");
        }
        let compressing = ClientHandshake::new(&[], Some(DeflateConfig::default()));
        let accept = accept_key(compressing.key());
        let headers = vec![
            ("Upgrade", "websocket"),
            ("Connection", "upgrade"),
            ("Sec-WebSocket-Accept", accept.as_str()),
            ("Sec-WebSocket-Extensions", "permessage-deflate; server_max_window_bits=99"),
        ];
        assert!(compressing.validate_response(101, headers).is_err());
    }
}
