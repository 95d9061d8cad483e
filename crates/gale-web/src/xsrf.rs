//! Cross-site request forgery tokens, in Tornado's formats.
//!
//! The raw token is 16 random bytes stored in the `_xsrf` cookie; forms (or the `X-XSRFToken` header) echo it
//! back and the two must match. Tornado writes it in one of two forms:
//!
//! * **Version 2** (the default): `2|<mask hex>|<masked token hex>|<timestamp>`. A fresh 4-byte mask is XORed
//!   over the token (repeated every 4 bytes, as in websocket masking) each time the token is written, so a
//!   page never shows the same bytes twice and compression side channels (BREACH) learn nothing.
//! * **Version 1** (legacy): the token in hex. Anything that is not valid hex is taken as the raw token bytes,
//!   as Tornado does.
//!
//! [`decode_token`] reads both and yields the raw token; [`tokens_match`] compares raw tokens in constant time;
//! [`check_xsrf`] performs Tornado's `check_xsrf_cookie` decision.
//!
//! Randomness comes from the operating system (`/dev/urandom`), so this module is for Unix-like systems.
//!
//! # Examples
//!
//! ```
//! use gale_web::xsrf::{check_xsrf, decode_token, encode_token_with_mask};
//!
//! let token = [7u8; 16];
//! let written = encode_token_with_mask(&token, [1, 2, 3, 4], 1_700_000_000);
//! assert_eq!(written, "2|01020304|06050403060504030605040306050403|1700000000");
//!
//! let decoded = decode_token(&written).unwrap();
//! assert_eq!((decoded.version, &decoded.token[..], decoded.timestamp), (2, &token[..], Some(1_700_000_000)));
//! assert!(check_xsrf(Some(&written), &token).is_ok());
//! ```

use std::error::Error;
use std::fmt;
use std::fs::File;
use std::io::{self, Read as _};
use std::sync::OnceLock;

use subtle::ConstantTimeEq;

use crate::escape::xhtml_escape;

/// Length in bytes of a raw token made by [`generate_token`].
pub const TOKEN_LEN: usize = 16;

/// Length in bytes of the mask of a version 2 token.
pub const MASK_LEN: usize = 4;

/// Fills `buf` with bytes from the operating system's cryptographically secure generator.
///
/// # Errors
///
/// The error from opening or reading `/dev/urandom`.
pub fn random_bytes(buf: &mut [u8]) -> io::Result<()> {
    static URANDOM: OnceLock<File> = OnceLock::new();
    let file = match URANDOM.get() {
        Some(file) => file,
        // A race may open the device twice; one of the handles is kept, the other closed.
        None => {
            let opened = File::open("/dev/urandom")?;
            URANDOM.get_or_init(|| opened)
        }
    };
    (&*file).read_exact(buf)
}

/// Makes a new raw token of [`TOKEN_LEN`] random bytes.
///
/// # Errors
///
/// As [`random_bytes`].
pub fn generate_token() -> io::Result<[u8; TOKEN_LEN]> {
    let mut token = [0; TOKEN_LEN];
    random_bytes(&mut token)?;
    Ok(token)
}

/// XORs `mask` over `data`, repeating it (Tornado's `_websocket_mask`).
fn apply_mask(mask: [u8; MASK_LEN], data: &[u8]) -> Vec<u8> {
    data.iter().zip(mask.iter().cycle()).map(|(b, m)| b ^ m).collect()
}

/// Writes `token` in the version 2 format with a fresh random mask.
///
/// `timestamp` is when the token was first made, in seconds since the Unix epoch.
///
/// # Errors
///
/// As [`random_bytes`].
pub fn encode_token(token: &[u8], timestamp: u64) -> io::Result<String> {
    let mut mask = [0; MASK_LEN];
    random_bytes(&mut mask)?;
    Ok(encode_token_with_mask(token, mask, timestamp))
}

/// Writes `token` in the version 2 format with the given `mask`: `2|mask_hex|masked_token_hex|timestamp`.
pub fn encode_token_with_mask(token: &[u8], mask: [u8; MASK_LEN], timestamp: u64) -> String {
    format!("2|{}|{}|{timestamp}", hex::encode(mask), hex::encode(apply_mask(mask, token)))
}

/// Writes `token` in the legacy version 1 format (plain hex), for Tornado's `xsrf_cookie_version=1`.
pub fn encode_token_v1(token: &[u8]) -> String {
    hex::encode(token)
}

/// A token read back by [`decode_token`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedToken {
    /// The format it was written in: 1 or 2.
    pub version: u32,
    /// The raw token.
    pub token: Vec<u8>,
    /// When the token was made; version 1 does not record it.
    pub timestamp: Option<u64>,
}

/// Reads a token written in either format (Tornado's `_decode_xsrf_token`).
///
/// Returns `None` for a malformed version 2 token or an unknown version; version 1 accepts anything (text that
/// is not hex is the raw token).
pub fn decode_token(s: &str) -> Option<DecodedToken> {
    match leading_version(s) {
        None => {
            let token = hex::decode(s).unwrap_or_else(|_| s.as_bytes().to_vec());
            Some(DecodedToken { version: 1, token, timestamp: None })
        }
        Some(2) => {
            let mut fields = s.split('|');
            let (Some(_), Some(mask), Some(masked), Some(timestamp), None) =
                (fields.next(), fields.next(), fields.next(), fields.next(), fields.next())
            else {
                return None;
            };
            let mask: [u8; MASK_LEN] = hex::decode(mask).ok()?.try_into().ok()?;
            let token = apply_mask(mask, &hex::decode(masked).ok()?);
            if timestamp.is_empty() || !timestamp.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            Some(DecodedToken { version: 2, token, timestamp: Some(timestamp.parse().ok()?) })
        }
        // Unknown versions are treated as no token at all.
        Some(_) => None,
    }
}

/// The version number of a `<version>|...` token: digits without a leading zero, then `|`.
fn leading_version(s: &str) -> Option<u64> {
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 || s.starts_with('0') || s.as_bytes().get(digits) != Some(&b'|') {
        return None;
    }
    // Absurdly long numbers are no known version either.
    Some(s[..digits].parse().unwrap_or(u64::MAX))
}

/// Compares two raw tokens in time independent of their contents.
pub fn tokens_match(a: &[u8], b: &[u8]) -> bool {
    bool::from(a.ct_eq(b))
}

/// Why a request failed the XSRF check; each maps to `403 Forbidden`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XsrfError {
    /// No `_xsrf` argument or header was sent.
    Missing,
    /// The submitted token cannot be decoded.
    InvalidFormat,
    /// The submitted token differs from the cookie's.
    Mismatch,
}

impl fmt::Display for XsrfError {
    /// Tornado's log messages for the three cases.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            XsrfError::Missing => "'_xsrf' argument missing from POST",
            XsrfError::InvalidFormat => "'_xsrf' argument has invalid format",
            XsrfError::Mismatch => "XSRF cookie does not match POST argument",
        })
    }
}

impl Error for XsrfError {}

/// Tornado's `check_xsrf_cookie` decision: `submitted` is the `_xsrf` argument (or `X-XSRFToken` /
/// `X-CSRFToken` header), `expected` the raw token from the `_xsrf` cookie.
///
/// # Errors
///
/// [`XsrfError::Missing`] if `submitted` is absent or empty, [`XsrfError::InvalidFormat`] if it does not decode
/// to a non-empty token, [`XsrfError::Mismatch`] if the tokens differ.
pub fn check_xsrf(submitted: Option<&str>, expected: &[u8]) -> Result<(), XsrfError> {
    let submitted = submitted.filter(|s| !s.is_empty()).ok_or(XsrfError::Missing)?;
    let decoded = decode_token(submitted).filter(|d| !d.token.is_empty()).ok_or(XsrfError::InvalidFormat)?;
    if !tokens_match(&decoded.token, expected) {
        return Err(XsrfError::Mismatch);
    }
    Ok(())
}

/// The hidden form field carrying `token` (Tornado's `xsrf_form_html`), e.g.
/// `<input type="hidden" name="_xsrf" value="2|...|...|1700000000"/>`.
///
/// `token` is the encoded token as written to the page; it is HTML-escaped.
pub fn xsrf_form_html(token: &str) -> String {
    format!(r#"<input type="hidden" name="_xsrf" value="{}"/>"#, xhtml_escape(token))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_are_random_and_sixteen_bytes() {
        let a = generate_token().unwrap();
        let b = generate_token().unwrap();
        assert_eq!(a.len(), TOKEN_LEN);
        assert_ne!(a, b, "two draws of 128 random bits collided");
    }

    #[test]
    fn encoded_tokens_use_a_fresh_mask_each_time() {
        let token = generate_token().unwrap();
        let first = encode_token(&token, 5).unwrap();
        let second = encode_token(&token, 5).unwrap();
        assert_ne!(first, second);
        assert_eq!(decode_token(&first).unwrap().token, token);
        assert_eq!(decode_token(&second).unwrap().token, token);
    }

    #[test]
    fn version_2_layout_matches_tornado() {
        let token: Vec<u8> = (0..16).collect();
        let written = encode_token_with_mask(&token, [0xde, 0xad, 0xbe, 0xef], 1_234);
        assert_eq!(written, "2|deadbeef|deacbcecdaa8b8e8d6a4b4e4d2a0b0e0|1234");
        let parts: Vec<_> = written.split('|').collect();
        assert_eq!(parts.len(), 4);
        assert_eq!(parts[2].len(), 32);
    }

    #[test]
    fn version_2_tokens_decode_with_their_timestamp() {
        let decoded = decode_token("2|deadbeef|deacbcecdaa8b8e8d6a4b4e4d2a0b0e0|1234").unwrap();
        assert_eq!(decoded, DecodedToken { version: 2, token: (0..16).collect(), timestamp: Some(1234) });
        // Upper-case hex is accepted, like binascii.a2b_hex.
        assert_eq!(decode_token("2|DEADBEEF|DEACBCEC|1").unwrap().token, [0, 1, 2, 3]);
    }

    #[test]
    fn malformed_version_2_tokens_are_rejected() {
        for bad in [
            "2|deadbeef|00|",
            "2|deadbeef|00|x",
            "2|deadbeef|00",
            "2|deadbeef|00|1|extra",
            "2|dead|00|1",
            "2|zzzzzzzz|00|1",
            "2|deadbeef|0|1",
            "2|deadbeef|00|-1",
        ] {
            assert_eq!(decode_token(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn unknown_versions_are_treated_as_absent() {
        assert_eq!(decode_token("3|deadbeef|00|1"), None);
        assert_eq!(decode_token("99999999999999999999999|x"), None);
    }

    #[test]
    fn version_1_tokens_are_hex_or_raw_text() {
        let decoded = decode_token("00ff10").unwrap();
        assert_eq!(decoded, DecodedToken { version: 1, token: vec![0, 0xff, 0x10], timestamp: None });
        assert_eq!(decode_token("not hex!").unwrap().token, b"not hex!");
        assert_eq!(decode_token("02|x").unwrap().token, b"02|x");
        assert_eq!(encode_token_v1(&[0xab, 1]), "ab01");
    }

    #[test]
    fn tokens_match_compares_contents_and_length() {
        assert!(tokens_match(b"abc", b"abc"));
        assert!(!tokens_match(b"abc", b"abd"));
        assert!(!tokens_match(b"abc", b"abcd"));
        assert!(tokens_match(b"", b""));
    }

    #[test]
    fn check_xsrf_accepts_both_formats_of_the_cookie_token() {
        let token = [9u8; TOKEN_LEN];
        assert_eq!(check_xsrf(Some(&encode_token(&token, 1).unwrap()), &token), Ok(()));
        assert_eq!(check_xsrf(Some(&encode_token_v1(&token)), &token), Ok(()));
    }

    #[test]
    fn check_xsrf_reports_missing_invalid_and_mismatched_tokens() {
        let token = [9u8; TOKEN_LEN];
        assert_eq!(check_xsrf(None, &token), Err(XsrfError::Missing));
        assert_eq!(check_xsrf(Some(""), &token), Err(XsrfError::Missing));
        assert_eq!(check_xsrf(Some("2|bad"), &token), Err(XsrfError::InvalidFormat));
        assert_eq!(check_xsrf(Some("2|00000000||5"), &token), Err(XsrfError::InvalidFormat));
        let other = encode_token(&[8u8; TOKEN_LEN], 1).unwrap();
        assert_eq!(check_xsrf(Some(&other), &token), Err(XsrfError::Mismatch));
        assert_eq!(XsrfError::Mismatch.to_string(), "XSRF cookie does not match POST argument");
    }

    #[test]
    fn form_html_escapes_the_token() {
        assert_eq!(xsrf_form_html("2|0a|0b|1"), r#"<input type="hidden" name="_xsrf" value="2|0a|0b|1"/>"#);
        assert_eq!(
            xsrf_form_html(r#""><script>"#),
            r#"<input type="hidden" name="_xsrf" value="&quot;&gt;&lt;script&gt;"/>"#
        );
    }
}
