//! The permessage-deflate extension (RFC 7692): negotiation for both roles and the per-message codec.
//!
//! # Negotiation
//!
//! A client offers the extension in `Sec-WebSocket-Extensions`, possibly several times with different
//! parameters, in order of preference. The server accepts the first offer it can honour
//! ([`DeflateConfig::negotiate`]) and answers with the agreed parameters; the client checks that answer
//! against what it offered ([`DeflateConfig::accept_response`]). An offer with an unknown, duplicated or
//! malformed parameter is declined, and the next one considered. Four parameters exist:
//!
//! | parameter | meaning |
//! | --- | --- |
//! | `server_no_context_takeover` | the server resets its compressor after every message |
//! | `client_no_context_takeover` | the client resets its compressor after every message |
//! | `server_max_window_bits=N` | the server compresses with a window of at most 2^N bytes (8 ≤ N ≤ 15) |
//! | `client_max_window_bits[=N]` | likewise for the client; in an offer, without a value, it only says the client supports the parameter |
//!
//! The server's rules follow the tables of Python's `websockets` library: its own `*_no_context_takeover`
//! settings are added to the client's requests, and each window is the smaller of what was asked for and
//! what is configured.
//!
//! # Compression
//!
//! Each message is compressed as raw DEFLATE (no zlib header) ended with a sync flush, whose trailing
//! `00 00 ff ff` is removed; the receiver appends it back before inflating. With context takeover the
//! LZ77 window carries over from message to message; without it the compressor or decompressor is reset
//! after each message. Inflated output is bounded as it is produced, so a small message that inflates
//! enormously (a "zip bomb") fails with 1009 once it passes the limit, without allocating beyond it.
//!
//! Window sizes need a complete zlib, here `flate2`'s pure-Rust `zlib-rs` backend: miniz_oxide cannot
//! compress with a window under 2^15. zlib cannot build a raw deflate stream with an 8-bit window either: it
//! uses 9 bits instead, which is still honest, because zlib never emits a match farther than the window
//! size minus 262 bytes (`MAX_DIST`), that is 250 bytes for a 9-bit window, within the 256 bytes a peer that
//! asked for 8 bits keeps. For inflating, a window larger than the sender's is always enough, so 8 becomes 9
//! there too.

use std::borrow::Cow;
use std::fmt;
use std::io;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use crate::websocket::close::ProtocolError;
use crate::websocket::frame::Role;

/// The extension's registered name.
pub const EXTENSION_NAME: &str = "permessage-deflate";

/// The empty stored block that ends a sync flush; removed after compressing, appended before inflating.
const SYNC_TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// The smallest window zlib can use for a raw deflate stream (see the module docs for 8).
const ZLIB_MIN_WINDOW_BITS: u8 = 9;

/// The largest LZ77 window, and the default.
const MAX_WINDOW_BITS: u8 = 15;

/// The smallest window RFC 7692 allows.
const MIN_WINDOW_BITS: u8 = 8;

/// Bounds on the buffer slice inflated into at a time: it starts near four times the input and doubles
/// while filled.
const INFLATE_MIN_CHUNK: usize = 256;
const INFLATE_MAX_CHUNK: usize = 256 * 1024;

// ---------------------------------------------------------------------------------------------------------
// Sec-WebSocket-Extensions parsing
// ---------------------------------------------------------------------------------------------------------

/// One element of a `Sec-WebSocket-Extensions` header: an extension name and its parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExtensionItem<'a> {
    /// The extension token, e.g. `permessage-deflate`.
    pub name: &'a str,
    /// The parameters in order, each a name and an optional value (a quoted value is unquoted).
    pub params: Vec<(&'a str, Option<Cow<'a, str>>)>,
}

/// A `Sec-WebSocket-Extensions` value that does not follow the header's grammar.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MalformedExtensions;

impl fmt::Display for MalformedExtensions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("malformed Sec-WebSocket-Extensions header")
    }
}

impl std::error::Error for MalformedExtensions {}

/// Parses one `Sec-WebSocket-Extensions` header value (RFC 6455 §9.1):
/// `extension *( "," extension )`, `extension = token *( ";" param )`, `param = token [ "=" (token /
/// quoted-string) ]`, with optional whitespace around separators. Empty list elements are skipped.
///
/// # Errors
///
/// [`MalformedExtensions`] if the value does not follow that grammar.
///
/// # Examples
///
/// ```
/// use gale_web::websocket::deflate::parse_extensions;
///
/// let items = parse_extensions("permessage-deflate; client_max_window_bits, x-foo; a=\"1\"").unwrap();
/// assert_eq!(items[0].name, "permessage-deflate");
/// assert_eq!(items[0].params, vec![("client_max_window_bits", None)]);
/// assert_eq!(items[1].params[0].1.as_deref(), Some("1"));
/// ```
pub fn parse_extensions(value: &str) -> Result<Vec<ExtensionItem<'_>>, MalformedExtensions> {
    let mut cursor = Cursor { s: value, pos: 0 };
    let mut items = Vec::new();
    loop {
        cursor.skip_ows();
        if cursor.eat(b',') {
            continue; // an empty list element
        }
        if cursor.at_end() {
            return Ok(items);
        }
        let name = cursor.token()?;
        let mut params = Vec::new();
        loop {
            cursor.skip_ows();
            if cursor.at_end() || cursor.eat(b',') {
                break;
            }
            if !cursor.eat(b';') {
                return Err(MalformedExtensions);
            }
            cursor.skip_ows();
            let param = cursor.token()?;
            cursor.skip_ows();
            let value = if cursor.eat(b'=') {
                cursor.skip_ows();
                Some(if cursor.peek() == Some(b'"') { cursor.quoted()? } else { Cow::Borrowed(cursor.token()?) })
            } else {
                None
            };
            params.push((param, value));
        }
        items.push(ExtensionItem { name, params });
    }
}

/// A position in a header value being parsed.
struct Cursor<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.pos).copied()
    }

    fn at_end(&self) -> bool {
        self.pos >= self.s.len()
    }

    fn eat(&mut self, byte: u8) -> bool {
        let hit = self.peek() == Some(byte);
        self.pos += usize::from(hit);
        hit
    }

    fn skip_ows(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.pos += 1;
        }
    }

    /// One or more token characters (RFC 7230 `tchar`).
    fn token(&mut self) -> Result<&'a str, MalformedExtensions> {
        let start = self.pos;
        while self.peek().is_some_and(is_tchar) {
            self.pos += 1;
        }
        if self.pos == start { Err(MalformedExtensions) } else { Ok(&self.s[start..self.pos]) }
    }

    /// A quoted-string, returned without its quotes and with backslash escapes resolved.
    fn quoted(&mut self) -> Result<Cow<'a, str>, MalformedExtensions> {
        debug_assert_eq!(self.peek(), Some(b'"'));
        self.pos += 1;
        let start = self.pos;
        let mut owned: Option<String> = None;
        loop {
            match self.peek() {
                None => return Err(MalformedExtensions),
                Some(b'"') => {
                    let raw = &self.s[start..self.pos];
                    self.pos += 1;
                    return Ok(owned.map_or(Cow::Borrowed(raw), Cow::Owned));
                }
                Some(b'\\') => {
                    let buf = owned.get_or_insert_with(|| self.s[start..self.pos].to_owned());
                    self.pos += 1;
                    let ch = self.s[self.pos..].chars().next().ok_or(MalformedExtensions)?;
                    buf.push(ch);
                    self.pos += ch.len_utf8();
                }
                Some(_) => {
                    let ch = self.s[self.pos..].chars().next().expect("not at end");
                    if let Some(buf) = owned.as_mut() {
                        buf.push(ch);
                    }
                    self.pos += ch.len_utf8();
                }
            }
        }
    }
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

// ---------------------------------------------------------------------------------------------------------
// Negotiation
// ---------------------------------------------------------------------------------------------------------

/// Local permessage-deflate settings, for either role.
///
/// As a server, these shape the answer to a client's offer ([`negotiate`](Self::negotiate)); as a client,
/// they are the offer ([`offer`](Self::offer)) and the bounds the server's answer must respect
/// ([`accept_response`](Self::accept_response)). Window bits outside 8..=15 are clamped into that range.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeflateConfig {
    /// The zlib compression level, 0 (store) to 9 (best); larger values are treated as 9. Default 6.
    pub compression_level: u32,
    /// Server: always reset the compressor between messages (saves memory per connection). Client: ask the
    /// server to do so.
    pub server_no_context_takeover: bool,
    /// Server: require the client to reset its compressor between messages. Client: reset ours.
    pub client_no_context_takeover: bool,
    /// Server: the largest window to compress with. Client: ask the server not to exceed it.
    pub server_max_window_bits: Option<u8>,
    /// Server: limit the client's window to this, if the client supports the parameter. Client: the largest
    /// window we compress with (`None` offers the parameter without a value: we accept any limit).
    pub client_max_window_bits: Option<u8>,
}

impl Default for DeflateConfig {
    fn default() -> Self {
        DeflateConfig {
            compression_level: 6,
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            server_max_window_bits: None,
            client_max_window_bits: None,
        }
    }
}

/// The parameters both ends agreed on; `None` window bits mean the default, 15.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeflateParams {
    /// The server resets its compressor after every message.
    pub server_no_context_takeover: bool,
    /// The client resets its compressor after every message.
    pub client_no_context_takeover: bool,
    /// The server's window, if limited.
    pub server_max_window_bits: Option<u8>,
    /// The client's window, if limited.
    pub client_max_window_bits: Option<u8>,
}

impl DeflateParams {
    /// The `Sec-WebSocket-Extensions` value stating these parameters (the server's response).
    pub fn to_header_value(&self) -> String {
        let mut value = String::from(EXTENSION_NAME);
        if self.server_no_context_takeover {
            value.push_str("; server_no_context_takeover");
        }
        if self.client_no_context_takeover {
            value.push_str("; client_no_context_takeover");
        }
        if let Some(bits) = self.server_max_window_bits {
            value.push_str(&format!("; server_max_window_bits={bits}"));
        }
        if let Some(bits) = self.client_max_window_bits {
            value.push_str(&format!("; client_max_window_bits={bits}"));
        }
        value
    }
}

/// `client_max_window_bits` as it may appear in an offer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ClientWindow {
    Absent,
    /// Present without a value: the client supports a limit.
    Supported,
    Bits(u8),
}

/// The parameters of one offer or response, checked for unknown names, duplicates and bad values.
#[derive(Clone, Copy, Debug)]
struct RawParams {
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
    server_max_window_bits: Option<u8>,
    client_max_window_bits: ClientWindow,
}

impl RawParams {
    /// `client_max_window_bits` may lack a value only in an offer (`in_offer`).
    fn parse(params: &[(&str, Option<Cow<'_, str>>)], in_offer: bool) -> Result<Self, NegotiationError> {
        let mut raw = RawParams {
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            server_max_window_bits: None,
            client_max_window_bits: ClientWindow::Absent,
        };
        let mut seen = [false; 4];
        for (name, value) in params {
            let value = value.as_deref();
            let index = match name.to_ascii_lowercase().as_str() {
                "server_no_context_takeover" => {
                    if value.is_some() {
                        return Err(NegotiationError("server_no_context_takeover takes no value"));
                    }
                    raw.server_no_context_takeover = true;
                    0
                }
                "client_no_context_takeover" => {
                    if value.is_some() {
                        return Err(NegotiationError("client_no_context_takeover takes no value"));
                    }
                    raw.client_no_context_takeover = true;
                    1
                }
                "server_max_window_bits" => {
                    let bits = value.and_then(parse_window_bits);
                    raw.server_max_window_bits = Some(bits.ok_or(NegotiationError("invalid server_max_window_bits"))?);
                    2
                }
                "client_max_window_bits" => {
                    raw.client_max_window_bits = match value {
                        None if in_offer => ClientWindow::Supported,
                        _ => ClientWindow::Bits(
                            value
                                .and_then(parse_window_bits)
                                .ok_or(NegotiationError("invalid client_max_window_bits"))?,
                        ),
                    };
                    3
                }
                _ => return Err(NegotiationError("unknown permessage-deflate parameter")),
            };
            if std::mem::replace(&mut seen[index], true) {
                return Err(NegotiationError("duplicate permessage-deflate parameter"));
            }
        }
        Ok(raw)
    }
}

/// "8" to "15", exactly (no sign, no leading zero).
fn parse_window_bits(value: &str) -> Option<u8> {
    if value.starts_with('0') || value.len() > 2 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let bits: u8 = value.parse().ok()?;
    (MIN_WINDOW_BITS..=MAX_WINDOW_BITS).contains(&bits).then_some(bits)
}

fn clamp_bits(bits: u8) -> u8 {
    bits.clamp(MIN_WINDOW_BITS, MAX_WINDOW_BITS)
}

/// Why a permessage-deflate offer or response was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NegotiationError(&'static str);

impl NegotiationError {
    /// What was wrong.
    pub fn reason(&self) -> &'static str {
        self.0
    }
}

impl fmt::Display for NegotiationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "permessage-deflate negotiation failed: {}", self.0)
    }
}

impl std::error::Error for NegotiationError {}

impl DeflateConfig {
    /// Server side: picks the first permessage-deflate offer in the request's `Sec-WebSocket-Extensions`
    /// values that can be accepted, and returns the agreed parameters (their
    /// [`to_header_value`](DeflateParams::to_header_value) is the response header). `None` means compression
    /// is not used: nothing was offered, or every offer was malformed. A header value that does not parse
    /// contributes no offers; other extensions are ignored.
    ///
    /// # Examples
    ///
    /// ```
    /// use gale_web::websocket::deflate::DeflateConfig;
    ///
    /// let config = DeflateConfig { server_max_window_bits: Some(12), ..DeflateConfig::default() };
    /// let offers = ["permessage-deflate; server_max_window_bits=16", "permessage-deflate; client_max_window_bits"];
    /// let agreed = config.negotiate(offers).unwrap();
    /// assert_eq!(agreed.to_header_value(), "permessage-deflate; server_max_window_bits=12");
    /// ```
    pub fn negotiate<'a, I>(&self, header_values: I) -> Option<DeflateParams>
    where
        I: IntoIterator<Item = &'a str>,
    {
        header_values
            .into_iter()
            .filter_map(|value| parse_extensions(value).ok())
            .flatten()
            .filter(|item| item.name.eq_ignore_ascii_case(EXTENSION_NAME))
            .find_map(|item| match RawParams::parse(&item.params, true) {
                Ok(offer) => Some(self.answer(offer)),
                Err(e) => {
                    log::debug!("declining permessage-deflate offer: {}", e.reason());
                    None
                }
            })
    }

    /// The server's answer to one well-formed offer.
    fn answer(&self, offer: RawParams) -> DeflateParams {
        let server_max_window_bits = match (offer.server_max_window_bits, self.server_max_window_bits.map(clamp_bits)) {
            (None, configured) => configured,
            (Some(asked), None) => Some(asked),
            (Some(asked), Some(configured)) => Some(asked.min(configured)),
        };
        let configured_client = self.client_max_window_bits.map(clamp_bits);
        let client_max_window_bits = match (offer.client_max_window_bits, configured_client) {
            // Without the parameter in the offer the client cannot be limited: accept its full window.
            (ClientWindow::Absent, _) | (ClientWindow::Supported, None) => None,
            (ClientWindow::Supported, Some(configured)) => Some(configured),
            (ClientWindow::Bits(offered), configured) => Some(configured.map_or(offered, |c| c.min(offered))),
        };
        DeflateParams {
            server_no_context_takeover: offer.server_no_context_takeover || self.server_no_context_takeover,
            client_no_context_takeover: offer.client_no_context_takeover || self.client_no_context_takeover,
            server_max_window_bits,
            client_max_window_bits,
        }
    }

    /// Client side: the `Sec-WebSocket-Extensions` value offering permessage-deflate with these settings.
    ///
    /// # Examples
    ///
    /// ```
    /// use gale_web::websocket::deflate::DeflateConfig;
    ///
    /// assert_eq!(DeflateConfig::default().offer(), "permessage-deflate; client_max_window_bits");
    /// ```
    pub fn offer(&self) -> String {
        let mut value = String::from(EXTENSION_NAME);
        if self.server_no_context_takeover {
            value.push_str("; server_no_context_takeover");
        }
        if self.client_no_context_takeover {
            value.push_str("; client_no_context_takeover");
        }
        if let Some(bits) = self.server_max_window_bits {
            value.push_str(&format!("; server_max_window_bits={}", clamp_bits(bits)));
        }
        match self.client_max_window_bits {
            Some(bits) => value.push_str(&format!("; client_max_window_bits={}", clamp_bits(bits))),
            None => value.push_str("; client_max_window_bits"),
        }
        value
    }

    /// Client side: checks the server's `Sec-WebSocket-Extensions` response values against our
    /// [`offer`](Self::offer). `Ok(None)`: the server declined compression.
    ///
    /// # Errors
    ///
    /// A [`NegotiationError`] (the client must then fail the connection) if the response names another
    /// extension or permessage-deflate twice, has unknown, duplicate or malformed parameters, or grants
    /// less than we required: no `server_no_context_takeover` or a larger `server_max_window_bits` than we
    /// asked for, or a larger `client_max_window_bits` than we allow.
    pub fn accept_response<'a, I>(&self, header_values: I) -> Result<Option<DeflateParams>, NegotiationError>
    where
        I: IntoIterator<Item = &'a str>,
    {
        let mut items = Vec::new();
        for value in header_values {
            items.extend(parse_extensions(value).map_err(|_| NegotiationError("malformed extensions header"))?);
        }
        let item = match items.as_slice() {
            [] => return Ok(None),
            [item] if item.name.eq_ignore_ascii_case(EXTENSION_NAME) => item,
            [_] => return Err(NegotiationError("server accepted an extension we did not offer")),
            _ => return Err(NegotiationError("server accepted more than one extension")),
        };
        let response = RawParams::parse(&item.params, false)?;
        if self.server_no_context_takeover && !response.server_no_context_takeover {
            return Err(NegotiationError("server ignored server_no_context_takeover"));
        }
        if let Some(asked) = self.server_max_window_bits.map(clamp_bits) {
            match response.server_max_window_bits {
                None => return Err(NegotiationError("server ignored server_max_window_bits")),
                Some(granted) if granted > asked => {
                    return Err(NegotiationError("server_max_window_bits larger than requested"));
                }
                Some(_) => {}
            }
        }
        let allowed_client = self.client_max_window_bits.map(clamp_bits);
        let client_max_window_bits = match response.client_max_window_bits {
            ClientWindow::Bits(bits) if allowed_client.is_some_and(|allowed| bits > allowed) => {
                return Err(NegotiationError("client_max_window_bits larger than offered"));
            }
            ClientWindow::Bits(bits) => Some(bits),
            ClientWindow::Absent | ClientWindow::Supported => allowed_client,
        };
        Ok(Some(DeflateParams {
            server_no_context_takeover: response.server_no_context_takeover,
            client_no_context_takeover: response.client_no_context_takeover || self.client_no_context_takeover,
            server_max_window_bits: response.server_max_window_bits,
            client_max_window_bits,
        }))
    }
}

// ---------------------------------------------------------------------------------------------------------
// The codec
// ---------------------------------------------------------------------------------------------------------

/// The permessage-deflate state of one connection: a compressor for the messages we send and a
/// decompressor for those we receive, configured from the agreed parameters and our role.
///
/// Both are created on first use, so a connection that only receives never allocates a compressor.
///
/// # Examples
///
/// ```
/// use gale_web::websocket::deflate::{DeflateParams, PerMessageDeflate};
/// use gale_web::websocket::frame::Role;
///
/// let params = DeflateParams::default();
/// let mut server = PerMessageDeflate::new(Role::Server, &params, 6);
/// let mut client = PerMessageDeflate::new(Role::Client, &params, 6);
/// let mut wire = Vec::new();
/// server.compress(b"Hello, Hello, Hello", &mut wire).unwrap();
/// let mut text = Vec::new();
/// client.decompress(&wire, true, &mut text, 1024).unwrap();
/// assert_eq!(text, b"Hello, Hello, Hello");
/// ```
pub struct PerMessageDeflate {
    level: Compression,
    local_no_context_takeover: bool,
    remote_no_context_takeover: bool,
    /// The window we compress with, after the 8-to-9 adjustment.
    local_window_bits: u8,
    /// The window we inflate with, after the 8-to-9 adjustment.
    remote_window_bits: u8,
    compressor: Option<Compress>,
    decompressor: Option<Decompress>,
    /// The message being inflated contained a final block; the rest of it is ignored.
    stream_ended: bool,
}

impl fmt::Debug for PerMessageDeflate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PerMessageDeflate")
            .field("level", &self.level.level())
            .field("local_no_context_takeover", &self.local_no_context_takeover)
            .field("remote_no_context_takeover", &self.remote_no_context_takeover)
            .field("local_window_bits", &self.local_window_bits)
            .field("remote_window_bits", &self.remote_window_bits)
            .finish_non_exhaustive()
    }
}

impl PerMessageDeflate {
    /// The codec for our `role` under the agreed `params`, compressing at `level` (0–9; larger means 9).
    pub fn new(role: Role, params: &DeflateParams, level: u32) -> Self {
        let (local_no_context_takeover, remote_no_context_takeover, local_bits, remote_bits) = match role {
            Role::Server => (
                params.server_no_context_takeover,
                params.client_no_context_takeover,
                params.server_max_window_bits,
                params.client_max_window_bits,
            ),
            Role::Client => (
                params.client_no_context_takeover,
                params.server_no_context_takeover,
                params.client_max_window_bits,
                params.server_max_window_bits,
            ),
        };
        let zlib_bits = |bits: Option<u8>| bits.unwrap_or(MAX_WINDOW_BITS).clamp(ZLIB_MIN_WINDOW_BITS, MAX_WINDOW_BITS);
        PerMessageDeflate {
            level: Compression::new(level.min(9)),
            local_no_context_takeover,
            remote_no_context_takeover,
            local_window_bits: zlib_bits(local_bits),
            remote_window_bits: zlib_bits(remote_bits),
            compressor: None,
            decompressor: None,
            stream_ended: false,
        }
    }

    /// Compresses one whole message, appending the frame payload (sync-flushed, tail removed) to `out`.
    /// Without context takeover the compressor is reset afterwards.
    ///
    /// # Errors
    ///
    /// An `io::Error` if zlib reports a failure (not expected with a well-formed compressor).
    pub fn compress(&mut self, message: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
        let (level, bits) = (self.level, self.local_window_bits);
        let compressor = self.compressor.get_or_insert_with(|| Compress::new_with_window_bits(level, false, bits));
        let start = out.len();
        let mut input = message;
        loop {
            // Usually enough for the whole output at once; the loop grows it otherwise.
            out.reserve(input.len() / 2 + 64);
            let before = compressor.total_in();
            compressor.compress_vec(input, out, FlushCompress::Sync).map_err(io::Error::from)?;
            input = &input[(compressor.total_in() - before) as usize..];
            // The flush is complete once zlib returns with output space to spare.
            if input.is_empty() && out.len() < out.capacity() {
                break;
            }
        }
        if out.len() == start {
            // zlib does not repeat a flush when no input came since the last one, so an empty message after
            // another yields nothing. RFC 7692 §7.2.3.6 sends it as a lone 0x00: with the receiver's tail
            // appended, an empty stored block.
            out.push(0x00);
        } else {
            debug_assert!(out[start..].ends_with(&SYNC_TAIL), "a sync flush ends with an empty stored block");
            if out[start..].ends_with(&SYNC_TAIL) {
                out.truncate(out.len() - SYNC_TAIL.len());
            }
        }
        if self.local_no_context_takeover {
            compressor.reset();
        }
        Ok(())
    }

    /// Inflates one frame's payload of a compressed message, appending to `out`; `fin` marks the message's
    /// last frame (the sync tail is then appended, and without context takeover the decompressor is reset).
    /// `limit` bounds `out.len()`: the message so far, including what earlier frames appended.
    ///
    /// # Errors
    ///
    /// 1009 as soon as `out` would grow past `limit` (at most `limit + 1` bytes are ever held); 1007 if the
    /// data is not valid deflate. After an error the connection must be failed.
    pub fn decompress(
        &mut self,
        payload: &[u8],
        fin: bool,
        out: &mut Vec<u8>,
        limit: usize,
    ) -> Result<(), ProtocolError> {
        if !self.stream_ended {
            self.inflate(payload, out, limit)?;
        }
        if fin {
            if !std::mem::take(&mut self.stream_ended) {
                self.inflate(&SYNC_TAIL, out, limit)?;
            }
            if let (true, Some(decompressor)) = (self.remote_no_context_takeover, self.decompressor.as_mut()) {
                decompressor.reset(false);
            }
        }
        Ok(())
    }

    fn inflate(&mut self, mut input: &[u8], out: &mut Vec<u8>, limit: usize) -> Result<(), ProtocolError> {
        const CORRUPT: ProtocolError = ProtocolError::invalid_payload("invalid compressed data");
        const TOO_BIG: ProtocolError = ProtocolError::too_big("decompressed message exceeds the size limit");
        let bits = self.remote_window_bits;
        let decompressor = self.decompressor.get_or_insert_with(|| Decompress::new_with_window_bits(false, bits));
        let mut chunk = input.len().saturating_mul(4).clamp(INFLATE_MIN_CHUNK, INFLATE_MAX_CHUNK);
        loop {
            let start = out.len();
            if start > limit {
                return Err(TOO_BIG);
            }
            // One byte past the limit is enough to tell that the limit was passed.
            let room = chunk.min((limit - start).saturating_add(1));
            out.resize(start + room, 0);
            let (in_before, out_before) = (decompressor.total_in(), decompressor.total_out());
            let status = decompressor.decompress(input, &mut out[start..], FlushDecompress::None);
            let written = (decompressor.total_out() - out_before) as usize;
            let consumed = (decompressor.total_in() - in_before) as usize;
            out.truncate(start + written);
            let status = status.map_err(|_| CORRUPT)?;
            input = &input[consumed..];
            if out.len() > limit {
                return Err(TOO_BIG);
            }
            if status == Status::StreamEnd {
                // The sender ended the deflate stream with a final block: the context is gone, and the rest of
                // the message (normally nothing but the tail we append) is not part of the stream.
                decompressor.reset(false);
                self.stream_ended = true;
                return Ok(());
            }
            if written < room {
                if input.is_empty() {
                    return Ok(());
                }
                if consumed == 0 {
                    return Err(CORRUPT); // no progress possible with output space available
                }
            } else {
                chunk = (chunk * 2).min(INFLATE_MAX_CHUNK);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::websocket::close::CloseCode;

    fn params(snct: bool, cnct: bool, smwb: Option<u8>, cmwb: Option<u8>) -> DeflateParams {
        DeflateParams {
            server_no_context_takeover: snct,
            client_no_context_takeover: cnct,
            server_max_window_bits: smwb,
            client_max_window_bits: cmwb,
        }
    }

    fn negotiate(config: &DeflateConfig, offers: &[&str]) -> Option<String> {
        config.negotiate(offers.iter().copied()).map(|p| p.to_header_value())
    }

    /// Text that compresses well but not trivially.
    fn sample(len: usize) -> Vec<u8> {
        let words = ["alpha ", "beta ", "gamma ", "delta ", "{\"k\": 12}, ", "epsilon\n", "zeta "];
        let mut state = 7u32;
        let mut out = Vec::with_capacity(len + 16);
        while out.len() < len {
            state = state.wrapping_mul(1_103_515_245).wrapping_add(12345);
            out.extend_from_slice(words[(state >> 16) as usize % words.len()].as_bytes());
        }
        out.truncate(len);
        out
    }

    #[test]
    fn parses_extension_lists_with_params_and_quotes() {
        let items = parse_extensions(
            "permessage-deflate ; server_no_context_takeover;client_max_window_bits = \"10\" ,, foo;bar=\"a\\\"b\"",
        )
        .unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].name, "permessage-deflate");
        assert_eq!(
            items[0].params,
            vec![("server_no_context_takeover", None), ("client_max_window_bits", Some(Cow::Borrowed("10")))]
        );
        assert_eq!(items[1].params, vec![("bar", Some(Cow::Owned::<str>("a\"b".into())))]);
        assert_eq!(parse_extensions("").unwrap(), vec![]);
        assert_eq!(parse_extensions(" , ").unwrap(), vec![]);
    }

    #[test]
    fn malformed_extension_lists_are_refused() {
        for bad in
            ["permessage-deflate;", "permessage-deflate; a=", "x; a=\"open", "x y", "; a", "x; a=b c", "x;=1", "é"]
        {
            assert_eq!(parse_extensions(bad), Err(MalformedExtensions), "{bad:?}");
        }
    }

    #[test]
    fn window_bits_accept_exactly_8_to_15() {
        for (text, bits) in [("8", Some(8)), ("15", Some(15)), ("9", Some(9))] {
            assert_eq!(parse_window_bits(text), bits);
        }
        for bad in ["7", "16", "08", "0", "", "+9", "-9", "9.0", "115", "a"] {
            assert_eq!(parse_window_bits(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn server_accepts_the_autobahn_offers() {
        let config = DeflateConfig::default();
        // What Autobahn's 12.x/13.x clients send (its default offer always declares client support).
        let cases = [
            ("permessage-deflate; client_max_window_bits", "permessage-deflate"),
            (
                "permessage-deflate; client_no_context_takeover; client_max_window_bits",
                "permessage-deflate; client_no_context_takeover",
            ),
            (
                "permessage-deflate; server_no_context_takeover; client_no_context_takeover; client_max_window_bits",
                "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
            ),
            (
                "permessage-deflate; client_no_context_takeover; server_max_window_bits=8; client_max_window_bits",
                "permessage-deflate; client_no_context_takeover; server_max_window_bits=8",
            ),
            (
                "permessage-deflate; server_no_context_takeover; server_max_window_bits=15",
                "permessage-deflate; server_no_context_takeover; server_max_window_bits=15",
            ),
            ("permessage-deflate; client_max_window_bits=9", "permessage-deflate; client_max_window_bits=9"),
        ];
        for (offer, answer) in cases {
            assert_eq!(negotiate(&config, &[offer]).as_deref(), Some(answer), "offer {offer:?}");
        }
    }

    #[test]
    fn server_takes_the_first_acceptable_of_several_offers() {
        let config = DeflateConfig::default();
        let offers = "permessage-deflate; server_no_context_takeover; server_max_window_bits=8, \
                      permessage-deflate; server_no_context_takeover, permessage-deflate";
        assert_eq!(
            negotiate(&config, &[offers]).as_deref(),
            Some("permessage-deflate; server_no_context_takeover; server_max_window_bits=8")
        );
        // Bad offers are skipped, in the same header or across headers; other extensions are ignored.
        let bad_then_good = [
            "x-webkit-deflate-frame, permessage-deflate; server_max_window_bits=16",
            "permessage-deflate; client_no_context_takeover; client_no_context_takeover",
            "permessage-deflate; mystery_param, permessage-deflate; server_max_window_bits=10",
        ];
        assert_eq!(
            negotiate(&config, &bad_then_good).as_deref(),
            Some("permessage-deflate; server_max_window_bits=10")
        );
    }

    #[test]
    fn server_declines_invalid_offers() {
        let config = DeflateConfig::default();
        for offer in [
            "permessage-deflate; server_max_window_bits",
            "permessage-deflate; server_max_window_bits=7",
            "permessage-deflate; server_max_window_bits=16",
            "permessage-deflate; client_max_window_bits=16",
            "permessage-deflate; server_no_context_takeover=1",
            "permessage-deflate; server_max_window_bits=10; server_max_window_bits=10",
            "permessage-deflate; client_max_window_bits; client_max_window_bits=9",
            "permessage-deflate; unknown",
            "permessage-deflate; server_max_window_bits=\"1 0\"",
            "permessage-deflate; a=", // a malformed header contributes nothing
            "x-other-extension",
        ] {
            assert_eq!(negotiate(&config, &[offer]), None, "offer {offer:?}");
        }
        assert_eq!(negotiate(&config, &[]), None);
    }

    #[test]
    fn server_configuration_limits_the_answer() {
        let config = DeflateConfig {
            compression_level: 6,
            server_no_context_takeover: true,
            client_no_context_takeover: true,
            server_max_window_bits: Some(10),
            client_max_window_bits: Some(11),
        };
        let answer = |offer: &str| negotiate(&config, &[offer]).unwrap();
        assert_eq!(
            answer("permessage-deflate"),
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10"
        );
        assert_eq!(
            answer("permessage-deflate; server_max_window_bits=12; client_max_window_bits"),
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
             server_max_window_bits=10; client_max_window_bits=11"
        );
        assert_eq!(
            answer("permessage-deflate; server_max_window_bits=9; client_max_window_bits=9"),
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
             server_max_window_bits=9; client_max_window_bits=9"
        );
        // Out-of-range settings are clamped.
        let wide = DeflateConfig { server_max_window_bits: Some(30), ..DeflateConfig::default() };
        assert_eq!(
            negotiate(&wide, &["permessage-deflate"]).as_deref(),
            Some("permessage-deflate; server_max_window_bits=15")
        );
    }

    #[test]
    fn client_offer_reflects_the_configuration() {
        let config = DeflateConfig {
            compression_level: 1,
            server_no_context_takeover: true,
            client_no_context_takeover: true,
            server_max_window_bits: Some(10),
            client_max_window_bits: Some(12),
        };
        assert_eq!(
            config.offer(),
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
             server_max_window_bits=10; client_max_window_bits=12"
        );
        // Our own server accepts our own offer as is.
        let agreed = DeflateConfig::default().negotiate([config.offer().as_str()]).unwrap();
        assert_eq!(agreed, params(true, true, Some(10), Some(12)));
        assert_eq!(config.accept_response([agreed.to_header_value().as_str()]), Ok(Some(agreed)));
    }

    #[test]
    fn client_validates_the_server_response() {
        let plain = DeflateConfig::default();
        assert_eq!(plain.accept_response([]), Ok(None));
        assert_eq!(plain.accept_response(["permessage-deflate"]), Ok(Some(params(false, false, None, None))));
        assert_eq!(
            plain.accept_response(["permessage-deflate; server_no_context_takeover; server_max_window_bits=9"]),
            Ok(Some(params(true, false, Some(9), None)))
        );
        assert_eq!(
            plain.accept_response(["permessage-deflate; client_max_window_bits=8"]),
            Ok(Some(params(false, false, None, Some(8))))
        );
        for bad in [
            "x-unknown",
            "permessage-deflate, permessage-deflate",
            "permessage-deflate; client_max_window_bits",
            "permessage-deflate; server_max_window_bits=16",
            "permessage-deflate; foo",
            "permessage-deflate;",
        ] {
            assert!(plain.accept_response([bad]).is_err(), "{bad:?}");
        }

        let demanding = DeflateConfig {
            server_no_context_takeover: true,
            server_max_window_bits: Some(10),
            client_max_window_bits: Some(11),
            ..DeflateConfig::default()
        };
        let ok = "permessage-deflate; server_no_context_takeover; server_max_window_bits=10";
        assert_eq!(demanding.accept_response([ok]), Ok(Some(params(true, false, Some(10), Some(11)))));
        for bad in [
            "permessage-deflate; server_max_window_bits=10",
            "permessage-deflate; server_no_context_takeover",
            "permessage-deflate; server_no_context_takeover; server_max_window_bits=11",
            "permessage-deflate; server_no_context_takeover; server_max_window_bits=10; client_max_window_bits=12",
        ] {
            assert!(demanding.accept_response([bad]).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn rfc7692_examples_decompress() {
        let mut inflater = PerMessageDeflate::new(Role::Client, &DeflateParams::default(), 6);
        let mut out = Vec::new();
        // §7.2.3.1: "Hello" compressed, then the same with context takeover.
        inflater.decompress(&[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00], true, &mut out, 100).unwrap();
        assert_eq!(out, b"Hello");
        out.clear();
        inflater.decompress(&[0xf2, 0x00, 0x11, 0x00, 0x00], true, &mut out, 100).unwrap();
        assert_eq!(out, b"Hello");
        // §7.2.3.2: a stored (uncompressed) block.
        let mut fresh = PerMessageDeflate::new(Role::Client, &DeflateParams::default(), 6);
        out.clear();
        fresh
            .decompress(&[0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00], true, &mut out, 100)
            .unwrap();
        assert_eq!(out, b"Hello");
        // §7.2.3.4: a final block (BFINAL set); the decompressor then starts over for the next message.
        out.clear();
        fresh.decompress(&[0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00], true, &mut out, 100).unwrap();
        assert_eq!(out, b"Hello");
        out.clear();
        fresh.decompress(&[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00], true, &mut out, 100).unwrap();
        assert_eq!(out, b"Hello");
    }

    #[test]
    fn compressing_hello_gives_the_rfc_bytes() {
        let mut deflater = PerMessageDeflate::new(Role::Server, &DeflateParams::default(), 6);
        let mut out = Vec::new();
        deflater.compress(b"Hello", &mut out).unwrap();
        assert_eq!(out, [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]);
        out.clear();
        deflater.compress(b"Hello", &mut out).unwrap();
        assert_eq!(out, [0xf2, 0x00, 0x11, 0x00, 0x00], "context takeover reuses the first message");
    }

    #[test]
    fn round_trips_with_every_window_size_and_takeover_mode() {
        let messages: Vec<Vec<u8>> =
            vec![Vec::new(), sample(3000), Vec::new(), sample(70_000), b"x".to_vec(), sample(3000)];
        for bits in 8..=15u8 {
            for no_takeover in [false, true] {
                for (role, peer) in [(Role::Server, Role::Client), (Role::Client, Role::Server)] {
                    let agreed = params(no_takeover, no_takeover, Some(bits), Some(bits));
                    let mut sender = PerMessageDeflate::new(role, &agreed, 6);
                    let mut receiver = PerMessageDeflate::new(peer, &agreed, 6);
                    for message in &messages {
                        let mut wire = Vec::new();
                        sender.compress(message, &mut wire).unwrap();
                        let mut back = Vec::new();
                        receiver.decompress(&wire, true, &mut back, 1 << 20).unwrap();
                        assert!(back == *message, "bits {bits} no_takeover {no_takeover} len {}", message.len());
                    }
                }
            }
        }
    }

    #[test]
    fn context_takeover_shrinks_repeated_messages_and_no_takeover_does_not() {
        let message = sample(2000);
        let sizes = |no_takeover: bool| {
            let mut deflater = PerMessageDeflate::new(Role::Server, &params(no_takeover, false, None, None), 6);
            let mut first = Vec::new();
            let mut second = Vec::new();
            deflater.compress(&message, &mut first).unwrap();
            deflater.compress(&message, &mut second).unwrap();
            (first, second)
        };
        let (first, second) = sizes(false);
        assert!(second.len() * 4 < first.len(), "takeover: {} then {}", first.len(), second.len());
        let (first, second) = sizes(true);
        assert_eq!(first, second, "without takeover each message stands alone");
        // ...so a fresh decompressor can read the second one.
        let mut fresh = PerMessageDeflate::new(Role::Client, &DeflateParams::default(), 6);
        let mut out = Vec::new();
        fresh.decompress(&second, true, &mut out, 1 << 20).unwrap();
        assert_eq!(out, message);
    }

    #[test]
    fn a_message_split_across_frames_inflates_whole() {
        let message = sample(50_000);
        let agreed = DeflateParams::default();
        let mut deflater = PerMessageDeflate::new(Role::Client, &agreed, 9);
        let mut inflater = PerMessageDeflate::new(Role::Server, &agreed, 9);
        for _ in 0..2 {
            let mut wire = Vec::new();
            deflater.compress(&message, &mut wire).unwrap();
            let mut out = Vec::new();
            let pieces: Vec<&[u8]> = wire.chunks(97).collect();
            for (i, piece) in pieces.iter().enumerate() {
                inflater.decompress(piece, i + 1 == pieces.len(), &mut out, usize::MAX).unwrap();
            }
            assert!(out == message);
        }
    }

    #[test]
    fn zip_bombs_stop_at_the_limit() {
        let bomb_source = vec![0u8; 8 << 20];
        let mut deflater = PerMessageDeflate::new(Role::Client, &DeflateParams::default(), 9);
        let mut bomb = Vec::new();
        deflater.compress(&bomb_source, &mut bomb).unwrap();
        assert!(bomb.len() < 16 * 1024, "8 MiB of zeros should compress to a few KiB, got {}", bomb.len());

        let limit = 1 << 20;
        let mut inflater = PerMessageDeflate::new(Role::Server, &DeflateParams::default(), 6);
        let mut out = Vec::new();
        let err = inflater.decompress(&bomb, true, &mut out, limit).unwrap_err();
        assert_eq!(err.code(), CloseCode::MESSAGE_TOO_BIG);
        assert!(out.len() <= limit + 1, "held {} bytes", out.len());
        assert!(out.capacity() <= 2 * limit + INFLATE_MAX_CHUNK, "allocated {} bytes", out.capacity());

        // The exact size passes: the limit is inclusive.
        let mut inflater = PerMessageDeflate::new(Role::Server, &DeflateParams::default(), 6);
        out.clear();
        inflater.decompress(&bomb, true, &mut out, bomb_source.len()).unwrap();
        assert_eq!(out.len(), bomb_source.len());
    }

    #[test]
    fn corrupt_data_is_an_invalid_payload() {
        let mut inflater = PerMessageDeflate::new(Role::Server, &DeflateParams::default(), 6);
        let mut out = Vec::new();
        // BTYPE 11 is reserved.
        let err = inflater.decompress(&[0xff, 0xff, 0xff], true, &mut out, 1000).unwrap_err();
        assert_eq!(err.code(), CloseCode::INVALID_PAYLOAD);
    }
}
