//! Cookies: reading the `Cookie` request header and writing `Set-Cookie` values.
//!
//! * [`parse_cookie`] / [`cookie_pairs`] read a `Cookie` header the way Tornado's `httputil.parse_cookie` does,
//!   which mimics browsers rather than the RFCs: pairs split on `;`, a chunk without `=` is a value with an
//!   empty name, surrounding whitespace is trimmed, and double-quoted values are unquoted with Python's
//!   `http.cookies` rules (`\"`, `\\` and octal `\054` escapes).
//! * [`set_cookie_value`] builds a `Set-Cookie` header value from a name, a value and [`CookieOptions`]
//!   (Tornado's `set_cookie` keyword arguments); [`clear_cookie_value`] builds the value that deletes a cookie.
//!
//! Unlike Python's `SimpleCookie`, which silently wraps awkward values in quotes with octal escapes, names and
//! values are **validated** against RFC 6265 and refused with a [`CookieError`]: a name must be an HTTP token
//! and a value a run of cookie-octets (no control characters, whitespace, `"`, `,`, `;` or `\`, no non-ASCII),
//! optionally enclosed in one pair of double quotes. Values that need other characters should be encoded
//! first (URL-escaping, base64, or a [signed value](crate::signing)).
//!
//! # Examples
//!
//! ```
//! use gale_web::cookies::{parse_cookie, set_cookie_value, CookieOptions, SameSite};
//!
//! let jar = parse_cookie(r#"session=abc123; theme="dark"; flag"#);
//! assert_eq!(jar["session"], "abc123");
//! assert_eq!(jar["theme"], "dark");
//! assert_eq!(jar[""], "flag");
//!
//! let options = CookieOptions { http_only: true, same_site: Some(SameSite::Lax), ..CookieOptions::default() };
//! assert_eq!(set_cookie_value("session", "abc123", &options).unwrap(),
//!            "session=abc123; HttpOnly; Path=/; SameSite=Lax");
//! ```

use std::borrow::Cow;
use std::collections::HashMap;
use std::error::Error;
use std::fmt::{self, Write as _};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Iterates over the `(name, value)` pairs of a `Cookie` header, in order, values unquoted.
///
/// Empty chunks (`a=1;;b=2`) are skipped; a chunk without `=` yields an empty name, as browsers do.
pub fn cookie_pairs(header: &str) -> impl Iterator<Item = (&str, Cow<'_, str>)> {
    header.split(';').filter_map(|chunk| {
        let (name, value) = chunk.split_once('=').unwrap_or(("", chunk));
        let (name, value) = (name.trim(), value.trim());
        (!name.is_empty() || !value.is_empty()).then(|| (name, unquote_cookie_value(value)))
    })
}

/// Parses a `Cookie` header into a map from name to value (Tornado's `parse_cookie`).
///
/// When a name occurs more than once the last value wins, as with Tornado's dictionary.
///
/// # Examples
///
/// ```
/// use gale_web::cookies::parse_cookie;
///
/// let jar = parse_cookie(r#"a=1; b="x\"y\054z"; a=2"#);
/// assert_eq!(jar["a"], "2");
/// assert_eq!(jar["b"], "x\"y,z");
/// ```
pub fn parse_cookie(header: &str) -> HashMap<String, String> {
    cookie_pairs(header).map(|(name, value)| (name.to_owned(), value.into_owned())).collect()
}

/// Python's `http.cookies._unquote`: strips one pair of enclosing double quotes and resolves backslash escapes
/// (`\ooo` octal for a code point below 256, `\c` for any other character).
fn unquote_cookie_value(value: &str) -> Cow<'_, str> {
    let inner = match value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
        Some(inner) if value.len() >= 2 => inner,
        _ => return Cow::Borrowed(value),
    };
    if !inner.contains('\\') {
        return Cow::Borrowed(inner);
    }
    let mut out = String::with_capacity(inner.len());
    let mut rest = inner;
    while let Some(backslash) = rest.find('\\') {
        out.push_str(&rest[..backslash]);
        let escaped = &rest[backslash + 1..];
        let octal = escaped
            .as_bytes()
            .get(..3)
            .filter(|d| matches!(d[0], b'0'..=b'3') && matches!(d[1], b'0'..=b'7') && matches!(d[2], b'0'..=b'7'));
        if let Some(digits) = octal {
            let code = digits.iter().fold(0u8, |acc, d| acc * 8 + (d - b'0'));
            out.push(char::from(code));
            rest = &escaped[3..];
        } else {
            match escaped.chars().next() {
                // Python's `.` does not match a newline: `\` + newline stays as it is.
                Some(c) if c != '\n' => {
                    out.push(c);
                    rest = &escaped[c.len_utf8()..];
                }
                _ => {
                    out.push('\\');
                    rest = escaped;
                }
            }
        }
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// The `SameSite` attribute of a cookie.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SameSite {
    /// Sent only with same-site requests.
    Strict,
    /// Sent with same-site requests and top-level cross-site navigations.
    Lax,
    /// Sent with all requests; browsers require `Secure` with it.
    None,
}

impl SameSite {
    /// The attribute value as written in `Set-Cookie`.
    pub fn as_str(self) -> &'static str {
        match self {
            SameSite::Strict => "Strict",
            SameSite::Lax => "Lax",
            SameSite::None => "None",
        }
    }
}

impl fmt::Display for SameSite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The attributes of a `Set-Cookie` header (Tornado's `set_cookie` keyword arguments).
///
/// The default has `path = Some("/")`, as in Tornado, and nothing else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CookieOptions {
    /// `Domain`: the cookie is also sent to subdomains of this domain.
    pub domain: Option<String>,
    /// `Path`: the cookie is only sent for paths under this one. Default `/`.
    pub path: Option<String>,
    /// `Expires`: when the browser should drop the cookie (otherwise at the end of the session). Times outside
    /// the years 1970-9999 are clamped to that range.
    pub expires: Option<SystemTime>,
    /// `Max-Age` in seconds; takes precedence over `Expires` in browsers. `Some(0)` deletes the cookie.
    pub max_age: Option<u64>,
    /// `Secure`: only sent over HTTPS.
    pub secure: bool,
    /// `HttpOnly`: hidden from scripts.
    pub http_only: bool,
    /// `SameSite`.
    pub same_site: Option<SameSite>,
    /// `Partitioned` (CHIPS): the cookie is keyed by the top-level site.
    pub partitioned: bool,
}

impl Default for CookieOptions {
    fn default() -> Self {
        CookieOptions {
            domain: None,
            path: Some("/".to_owned()),
            expires: None,
            max_age: None,
            secure: false,
            http_only: false,
            same_site: None,
            partitioned: false,
        }
    }
}

/// Why a cookie could not be written.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CookieError {
    /// The name is empty or not an HTTP token.
    InvalidName(String),
    /// The value holds characters a cookie value cannot carry.
    InvalidValue {
        /// The cookie's name.
        name: String,
    },
    /// The `Domain` attribute is empty or holds a control character, whitespace, `;` or `,`.
    InvalidDomain(String),
    /// The `Path` attribute holds a control character, a non-ASCII character or `;`.
    InvalidPath(String),
}

impl fmt::Display for CookieError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CookieError::InvalidName(name) => write!(f, "invalid cookie name {name:?}"),
            CookieError::InvalidValue { name } => write!(f, "invalid value for cookie {name:?}"),
            CookieError::InvalidDomain(domain) => write!(f, "invalid cookie domain {domain:?}"),
            CookieError::InvalidPath(path) => write!(f, "invalid cookie path {path:?}"),
        }
    }
}

impl Error for CookieError {}

/// Whether `b` may appear in an HTTP token (RFC 9110 `tchar`).
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Whether `b` is an RFC 6265 `cookie-octet`.
fn is_cookie_octet(b: u8) -> bool {
    matches!(b, 0x21 | 0x23..=0x2B | 0x2D..=0x3A | 0x3C..=0x5B | 0x5D..=0x7E)
}

/// Checks that `name` may be used as a cookie name.
///
/// # Errors
///
/// [`CookieError::InvalidName`] if it is empty or holds a byte outside the HTTP token characters.
pub fn validate_name(name: &str) -> Result<(), CookieError> {
    if name.is_empty() || !name.bytes().all(is_token_byte) {
        return Err(CookieError::InvalidName(name.to_owned()));
    }
    Ok(())
}

/// Checks that `value` may be used as a cookie value: cookie-octets, optionally inside one pair of `"`.
///
/// # Errors
///
/// [`CookieError::InvalidValue`] naming `name` otherwise.
pub fn validate_value(name: &str, value: &str) -> Result<(), CookieError> {
    let inner = match value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
        Some(inner) if value.len() >= 2 => inner,
        _ => value,
    };
    if !inner.bytes().all(is_cookie_octet) {
        return Err(CookieError::InvalidValue { name: name.to_owned() });
    }
    Ok(())
}

/// Builds the `Set-Cookie` header value for `name=value` with `options` (Tornado's `set_cookie`).
///
/// Attributes come in the order Python's `Morsel` writes them: `Domain`, `Expires`, `HttpOnly`, `Max-Age`,
/// `Partitioned`, `Path`, `SameSite`, `Secure`. `Max-Age=0` is written (Tornado skips a zero `max_age`, which
/// makes it impossible to ask for immediate expiry).
///
/// # Errors
///
/// A [`CookieError`] if the name, value, domain or path cannot be written safely.
///
/// # Examples
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use gale_web::cookies::{set_cookie_value, CookieOptions, SameSite};
///
/// let options = CookieOptions {
///     domain: Some("example.com".into()),
///     expires: Some(UNIX_EPOCH + Duration::from_secs(1_359_312_200)),
///     max_age: Some(3600),
///     secure: true,
///     same_site: Some(SameSite::None),
///     partitioned: true,
///     ..CookieOptions::default()
/// };
/// assert_eq!(
///     set_cookie_value("id", "a1", &options).unwrap(),
///     "id=a1; Domain=example.com; Expires=Sun, 27 Jan 2013 18:43:20 GMT; Max-Age=3600; Partitioned; Path=/; \
///      SameSite=None; Secure"
/// );
/// assert!(set_cookie_value("bad name", "x", &CookieOptions::default()).is_err());
/// assert!(set_cookie_value("id", "a;b", &CookieOptions::default()).is_err());
/// ```
pub fn set_cookie_value(name: &str, value: &str, options: &CookieOptions) -> Result<String, CookieError> {
    validate_name(name)?;
    validate_value(name, value)?;
    let mut out = String::with_capacity(name.len() + value.len() + 64);
    out.push_str(name);
    out.push('=');
    out.push_str(value);
    if let Some(domain) = &options.domain {
        if domain.is_empty() || !domain.bytes().all(|b| b.is_ascii_graphic() && b != b';' && b != b',') {
            return Err(CookieError::InvalidDomain(domain.clone()));
        }
        out.push_str("; Domain=");
        out.push_str(domain);
    }
    if let Some(expires) = options.expires {
        out.push_str("; Expires=");
        out.push_str(&httpdate::fmt_http_date(clamp_http_date(expires)));
    }
    if options.http_only {
        out.push_str("; HttpOnly");
    }
    if let Some(max_age) = options.max_age {
        // Writing into a String cannot fail.
        let _ = write!(out, "; Max-Age={max_age}");
    }
    if options.partitioned {
        out.push_str("; Partitioned");
    }
    if let Some(path) = &options.path {
        if !path.bytes().all(|b| (b' '..=b'~').contains(&b) && b != b';') {
            return Err(CookieError::InvalidPath(path.clone()));
        }
        out.push_str("; Path=");
        out.push_str(path);
    }
    if let Some(same_site) = options.same_site {
        out.push_str("; SameSite=");
        out.push_str(same_site.as_str());
    }
    if options.secure {
        out.push_str("; Secure");
    }
    Ok(out)
}

/// Builds the `Set-Cookie` value that deletes cookie `name` (Tornado's `clear_cookie`).
///
/// The value is empty, `Expires` is the Unix epoch and `Max-Age` is 0; `options.expires` and
/// `options.max_age` are ignored. The browser only deletes the cookie if `domain` and `path` (and for
/// `SameSite=None` cookies, `secure` and `same_site`) match the ones it was set with.
///
/// # Errors
///
/// As [`set_cookie_value`].
///
/// # Examples
///
/// ```
/// use gale_web::cookies::{clear_cookie_value, CookieOptions};
///
/// assert_eq!(clear_cookie_value("id", &CookieOptions::default()).unwrap(),
///            "id=; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=0; Path=/");
/// ```
pub fn clear_cookie_value(name: &str, options: &CookieOptions) -> Result<String, CookieError> {
    let options = CookieOptions { expires: Some(UNIX_EPOCH), max_age: Some(0), ..options.clone() };
    set_cookie_value(name, "", &options)
}

/// Clamps `time` into the range an HTTP date can express (`httpdate` panics outside the years 1970-9999).
fn clamp_http_date(time: SystemTime) -> SystemTime {
    /// 9999-12-31T23:59:59Z.
    const LAST_HTTP_DATE: u64 = 253_402_300_799;
    let latest = UNIX_EPOCH + Duration::from_secs(LAST_HTTP_DATE);
    time.clamp(UNIX_EPOCH, latest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_cookie_splits_pairs_and_trims_whitespace() {
        let jar = parse_cookie("  a = 1 ;b=2;c=  ; ;d");
        assert_eq!(jar.len(), 4);
        assert_eq!(jar["a"], "1");
        assert_eq!(jar["b"], "2");
        assert_eq!(jar["c"], "");
        assert_eq!(jar[""], "d");
    }

    #[test]
    fn parse_cookie_keeps_equals_signs_inside_values() {
        let jar = parse_cookie("sig=2|1:0|10:1700000000|1:n|4:dg==|ab==");
        assert_eq!(jar["sig"], "2|1:0|10:1700000000|1:n|4:dg==|ab==");
    }

    #[test]
    fn parse_cookie_lets_the_last_duplicate_win() {
        assert_eq!(parse_cookie("a=1; a=2")["a"], "2");
        let pairs: Vec<_> = cookie_pairs("a=1; a=2").collect();
        assert_eq!(pairs, [("a", Cow::Borrowed("1")), ("a", Cow::Borrowed("2"))]);
    }

    #[test]
    fn quoted_values_are_unquoted_with_python_escapes() {
        assert_eq!(unquote_cookie_value(r#""plain""#), "plain");
        assert_eq!(unquote_cookie_value(r#""a\"b\\c""#), r#"a"b\c"#);
        assert_eq!(unquote_cookie_value(r#""\054\073\377""#), ",;\u{ff}");
        assert_eq!(unquote_cookie_value(r#""\400x""#), "400x");
        assert_eq!(unquote_cookie_value(r#""end\""#), "end\\");
        assert_eq!(unquote_cookie_value("\""), "\"");
        assert_eq!(unquote_cookie_value(r#""unterminated"#), r#""unterminated"#);
        assert_eq!(unquote_cookie_value(r#""""#), "");
    }

    #[test]
    fn parse_cookie_handles_non_ascii_and_empty_headers() {
        assert!(parse_cookie("").is_empty());
        assert!(parse_cookie(" ; ; ").is_empty());
        assert_eq!(parse_cookie("name=välue")["name"], "välue");
    }

    #[test]
    fn set_cookie_writes_every_attribute_in_morsel_order() {
        let options = CookieOptions {
            domain: Some(".example.com".into()),
            path: Some("/app".into()),
            expires: Some(UNIX_EPOCH + Duration::from_secs(784_111_777)),
            max_age: Some(0),
            secure: true,
            http_only: true,
            same_site: Some(SameSite::Strict),
            partitioned: true,
        };
        assert_eq!(
            set_cookie_value("n", "v", &options).unwrap(),
            "n=v; Domain=.example.com; Expires=Sun, 06 Nov 1994 08:49:37 GMT; HttpOnly; Max-Age=0; Partitioned; \
             Path=/app; SameSite=Strict; Secure"
        );
    }

    #[test]
    fn set_cookie_without_options_has_only_the_pair() {
        let options = CookieOptions { path: None, ..CookieOptions::default() };
        assert_eq!(set_cookie_value("n", "", &options).unwrap(), "n=");
        assert_eq!(set_cookie_value("n", "v", &CookieOptions::default()).unwrap(), "n=v; Path=/");
    }

    #[test]
    fn set_cookie_rejects_bad_names() {
        for name in ["", "a b", "a;b", "a=b", "a,b", "a\tb", "é", "a\"b", "a:b", "a\u{7f}"] {
            assert_eq!(
                set_cookie_value(name, "v", &CookieOptions::default()),
                Err(CookieError::InvalidName(name.to_owned())),
                "{name:?}"
            );
        }
        assert!(set_cookie_value("!#$%&'*+-.^_`|~Az09", "v", &CookieOptions::default()).is_ok());
    }

    #[test]
    fn set_cookie_rejects_bad_values_but_accepts_quoted_ones() {
        for value in ["a b", "a;b", "a,b", "a\\b", "a\"b", "\"", "a\r\nSet-Cookie: x=y", "é", "\x7f", "\"a b\""] {
            let result = set_cookie_value("n", value, &CookieOptions::default());
            assert_eq!(result, Err(CookieError::InvalidValue { name: "n".into() }), "{value:?}");
        }
        assert!(set_cookie_value("n", "\"quoted\"", &CookieOptions::default()).is_ok());
        assert!(set_cookie_value("n", "2|1:0|10:1700000000|1:n|4:dg==|ab", &CookieOptions::default()).is_ok());
    }

    #[test]
    fn set_cookie_rejects_attribute_injection() {
        let options = CookieOptions { domain: Some("a.com; Secure".into()), ..CookieOptions::default() };
        assert!(matches!(set_cookie_value("n", "v", &options), Err(CookieError::InvalidDomain(_))));
        let options = CookieOptions { domain: Some(String::new()), ..CookieOptions::default() };
        assert!(matches!(set_cookie_value("n", "v", &options), Err(CookieError::InvalidDomain(_))));
        let options = CookieOptions { path: Some("/a;HttpOnly".into()), ..CookieOptions::default() };
        assert!(matches!(set_cookie_value("n", "v", &options), Err(CookieError::InvalidPath(_))));
        let options = CookieOptions { path: Some("/a\nb".into()), ..CookieOptions::default() };
        assert!(matches!(set_cookie_value("n", "v", &options), Err(CookieError::InvalidPath(_))));
    }

    #[test]
    fn expires_outside_the_http_date_range_is_clamped() {
        let far = UNIX_EPOCH + Duration::from_secs(400_000_000_000);
        let options = CookieOptions { expires: Some(far), path: None, ..CookieOptions::default() };
        assert_eq!(set_cookie_value("n", "v", &options).unwrap(), "n=v; Expires=Fri, 31 Dec 9999 23:59:59 GMT");
        let before = UNIX_EPOCH - Duration::from_secs(10);
        let options = CookieOptions { expires: Some(before), path: None, ..CookieOptions::default() };
        assert_eq!(set_cookie_value("n", "v", &options).unwrap(), "n=v; Expires=Thu, 01 Jan 1970 00:00:00 GMT");
    }

    #[test]
    fn clear_cookie_expires_immediately_and_keeps_scope_attributes() {
        let options = CookieOptions {
            domain: Some("example.com".into()),
            max_age: Some(99),
            secure: true,
            same_site: Some(SameSite::None),
            ..CookieOptions::default()
        };
        assert_eq!(
            clear_cookie_value("sid", &options).unwrap(),
            "sid=; Domain=example.com; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=0; Path=/; SameSite=None; \
             Secure"
        );
    }

    #[test]
    fn a_written_cookie_parses_back_to_the_same_value() {
        let header = set_cookie_value("token", "\"x=y|z\"", &CookieOptions::default()).unwrap();
        let pair = header.split(';').next().unwrap();
        assert_eq!(parse_cookie(pair)["token"], "x=y|z");
    }
}
