//! Close status codes (RFC 6455 §7.4) and the protocol error that fails a connection.
//!
//! A [`CloseCode`] is the two-byte status that opens the payload of a close frame. Only some of the 65 536
//! values may appear on the wire: [`CloseCode::is_valid_on_wire`] encodes the table in the
//! [module docs](crate::websocket#close-codes). A [`ProtocolError`] is what every parsing step in this module
//! returns when the peer broke the protocol: it names the close frame to send before the TCP connection goes.

use std::fmt;

/// A WebSocket close status code.
///
/// The associated constants name the codes registered with IANA. Any `u16` can be wrapped, so the layer above
/// can carry application codes (3000–4999) through unchanged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CloseCode(pub u16);

impl CloseCode {
    /// 1000: the purpose of the connection has been fulfilled.
    pub const NORMAL: CloseCode = CloseCode(1000);
    /// 1001: the endpoint is going away (server shutdown, page navigated away).
    pub const GOING_AWAY: CloseCode = CloseCode(1001);
    /// 1002: the peer violated the protocol.
    pub const PROTOCOL_ERROR: CloseCode = CloseCode(1002);
    /// 1003: the endpoint received a type of data it cannot accept.
    pub const UNSUPPORTED_DATA: CloseCode = CloseCode(1003);
    /// 1005: reserved; stands for "the close frame carried no status code". Never sent.
    pub const NO_STATUS: CloseCode = CloseCode(1005);
    /// 1006: reserved; stands for "the connection dropped without a close frame". Never sent.
    pub const ABNORMAL: CloseCode = CloseCode(1006);
    /// 1007: a message's data did not match its type (invalid UTF-8 in a text message).
    pub const INVALID_PAYLOAD: CloseCode = CloseCode(1007);
    /// 1008: a message violated the endpoint's policy.
    pub const POLICY_VIOLATION: CloseCode = CloseCode(1008);
    /// 1009: a message was too big to process.
    pub const MESSAGE_TOO_BIG: CloseCode = CloseCode(1009);
    /// 1010: (client) the server did not negotiate an extension the client requires.
    pub const MANDATORY_EXTENSION: CloseCode = CloseCode(1010);
    /// 1011: the server hit an unexpected condition.
    pub const INTERNAL_ERROR: CloseCode = CloseCode(1011);
    /// 1012: the service is restarting.
    pub const SERVICE_RESTART: CloseCode = CloseCode(1012);
    /// 1013: try again later (temporary overload).
    pub const TRY_AGAIN_LATER: CloseCode = CloseCode(1013);
    /// 1014: a gateway received an invalid response from upstream.
    pub const BAD_GATEWAY: CloseCode = CloseCode(1014);
    /// 1015: reserved; stands for "the TLS handshake failed". Never sent.
    pub const TLS_HANDSHAKE: CloseCode = CloseCode(1015);

    /// Whether this code may appear in a close frame on the wire.
    ///
    /// Allowed: 1000–1003, 1007–1014 (registered) and 3000–4999 (libraries, frameworks, applications).
    /// Everything else is invalid: below 1000, 1004 (reserved), 1005, 1006 and 1015 (reserved for local use,
    /// never sent), the unassigned rest of 1016–2999, and 5000 and up. A peer that sends an invalid code is
    /// answered with [`CloseCode::PROTOCOL_ERROR`].
    ///
    /// # Examples
    ///
    /// ```
    /// # use gale_web::websocket::CloseCode;
    /// assert!(CloseCode::NORMAL.is_valid_on_wire());
    /// assert!(CloseCode(4000).is_valid_on_wire());
    /// assert!(!CloseCode::NO_STATUS.is_valid_on_wire());
    /// assert!(!CloseCode(2999).is_valid_on_wire());
    /// ```
    pub const fn is_valid_on_wire(self) -> bool {
        matches!(self.0, 1000..=1003 | 1007..=1014 | 3000..=4999)
    }
}

impl From<u16> for CloseCode {
    fn from(code: u16) -> Self {
        CloseCode(code)
    }
}

impl From<CloseCode> for u16 {
    fn from(code: CloseCode) -> Self {
        code.0
    }
}

impl fmt::Display for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// The peer broke the protocol: the connection must be failed.
///
/// Carries the close frame to send before closing the TCP connection: [`code`](Self::code) and a short
/// [`reason`](Self::reason) (always valid UTF-8 and at most 123 bytes, so it fits a control frame).
/// [`WebSocketProtocol`](crate::websocket::WebSocketProtocol) queues that frame itself; the lower-level
/// decoders only report it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProtocolError {
    code: CloseCode,
    reason: &'static str,
}

impl ProtocolError {
    /// A protocol error that closes with `code` and `reason`.
    ///
    /// # Panics
    ///
    /// Panics in debug builds if `reason` is longer than 123 bytes (it could not fit a close frame).
    pub const fn new(code: CloseCode, reason: &'static str) -> Self {
        debug_assert!(reason.len() <= super::frame::MAX_CONTROL_PAYLOAD - 2);
        ProtocolError { code, reason }
    }

    /// 1002: a framing or sequencing rule was broken.
    pub const fn protocol(reason: &'static str) -> Self {
        Self::new(CloseCode::PROTOCOL_ERROR, reason)
    }

    /// 1007: invalid UTF-8 in a text message or a close reason, or undecodable compressed data.
    pub const fn invalid_payload(reason: &'static str) -> Self {
        Self::new(CloseCode::INVALID_PAYLOAD, reason)
    }

    /// 1009: a frame or message is larger than the configured limit.
    pub const fn too_big(reason: &'static str) -> Self {
        Self::new(CloseCode::MESSAGE_TOO_BIG, reason)
    }

    /// The close code to send.
    pub const fn code(&self) -> CloseCode {
        self.code
    }

    /// The reason to send with the close code.
    pub const fn reason(&self) -> &'static str {
        self.reason
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "websocket protocol error {}: {}", self.code, self.reason)
    }
}

impl std::error::Error for ProtocolError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_code_table_matches_rfc_and_registry() {
        let valid = |c: u16| CloseCode(c).is_valid_on_wire();
        for c in [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999] {
            assert!(valid(c), "{c} should be valid");
        }
        // The invalid codes exercised by the Autobahn 7.9.x cases, and the other edges of the table.
        for c in [0, 1, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535] {
            assert!(!valid(c), "{c} should be invalid");
        }
    }

    #[test]
    fn protocol_error_displays_code_and_reason() {
        let e = ProtocolError::too_big("message too big");
        assert_eq!(e.code(), CloseCode::MESSAGE_TOO_BIG);
        assert_eq!(e.to_string(), "websocket protocol error 1009: message too big");
    }
}
