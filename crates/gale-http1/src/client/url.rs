//! The `http://` URLs the client fetches: parsing, resolving a `Location` against the URL it came from
//! (RFC 3986 §5), and the pieces a request needs — where to connect, the `Host` value and the request target.
//!
//! Only what an HTTP/1.1 client needs is kept: host, port, path and query; the fragment is dropped, as browsers
//! never send it. Bytes that may not appear in a request target (controls aside, which are refused) are
//! percent-encoded as browsers do; existing `%HH` escapes are kept as they are.

use std::fmt;
use std::net::Ipv6Addr;

use super::error::ClientError;

/// The port of `http://` URLs without one.
const DEFAULT_PORT: u16 = 80;

/// An absolute `http://` URL, normalized: the host in lowercase, the path starting with `/` and without dot
/// segments, path and query percent-encoded where needed.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Url {
    /// A registered name or IPv4 literal, or an IPv6 literal in brackets.
    host: String,
    port: u16,
    path: String,
    query: Option<String>,
}

impl Url {
    /// Parses an absolute URL.
    ///
    /// # Errors
    ///
    /// [`ClientError::UnsupportedScheme`] for a scheme other than `http`; [`ClientError::InvalidUrl`] for a
    /// relative or malformed URL, control bytes, user credentials, or a bad host or port.
    pub(crate) fn parse(input: &str) -> Result<Url, ClientError> {
        let input = trim(input.as_bytes());
        check_no_controls(input)?;
        let Some((scheme, rest)) = split_scheme(input) else {
            return Err(invalid("relative URL without a base", input));
        };
        if !scheme.eq_ignore_ascii_case(b"http") {
            return Err(ClientError::UnsupportedScheme(String::from_utf8_lossy(scheme).into_owned()));
        }
        let Some(rest) = rest.strip_prefix(b"//") else {
            return Err(invalid("expected `//` after `http:`", input));
        };
        let authority_end = rest.iter().position(|b| matches!(b, b'/' | b'?' | b'#')).unwrap_or(rest.len());
        let (host, port) = parse_authority(&rest[..authority_end], input)?;
        let (path, query) = split_path_query(&rest[authority_end..]);
        let path = if path.is_empty() { "/".to_owned() } else { remove_dot_segments(&encode(path)) };
        Ok(Url { host, port, path, query: query.map(encode) })
    }

    /// Resolves `reference` (a `Location` value) against this URL.
    ///
    /// # Errors
    ///
    /// As [`Url::parse`].
    pub(crate) fn join(&self, reference: &[u8]) -> Result<Url, ClientError> {
        let reference = trim(reference);
        check_no_controls(reference)?;
        if split_scheme(reference).is_some() {
            // Non-ASCII bytes cannot be in the scheme or a valid host; encode them for the path.
            return Url::parse(&encode(reference));
        }
        if reference.starts_with(b"//") {
            return Url::parse(&format!("http:{}", encode(reference)));
        }
        let (path, query) = split_path_query(reference);
        let mut url = Url { host: self.host.clone(), port: self.port, path: self.path.clone(), query: None };
        if path.is_empty() {
            // Same document: the query is the reference's if it has one, else the base's.
            url.query = match query {
                Some(q) => Some(encode(q)),
                None => self.query.clone(),
            };
            return Ok(url);
        }
        let path = encode(path);
        url.path = if path.starts_with('/') {
            remove_dot_segments(&path)
        } else {
            // Merge with the base path's directory (RFC 3986 §5.2.3).
            let dir = &self.path[..self.path.rfind('/').map_or(0, |i| i + 1)];
            remove_dot_segments(&format!("{dir}{path}"))
        };
        url.query = query.map(encode);
        Ok(url)
    }

    /// The host to connect to: a name, an IPv4 literal or a bracketed IPv6 literal.
    pub(crate) fn host(&self) -> &str {
        &self.host
    }

    /// The port to connect to.
    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// The `Host` header value: the host, and the port unless it is 80.
    pub(crate) fn authority(&self) -> String {
        if self.port == DEFAULT_PORT { self.host.clone() } else { format!("{}:{}", self.host, self.port) }
    }

    /// The request target: path and query.
    pub(crate) fn target(&self) -> String {
        match &self.query {
            Some(q) => format!("{}?{q}", self.path),
            None => self.path.clone(),
        }
    }

    /// Whether `other` has the same origin (scheme, host and port; the scheme is always `http`).
    pub(crate) fn same_origin(&self, other: &Url) -> bool {
        self.host == other.host && self.port == other.port
    }
}

impl fmt::Display for Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "http://{}{}", self.authority(), self.path)?;
        if let Some(q) = &self.query {
            write!(f, "?{q}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

fn invalid(why: &str, input: &[u8]) -> ClientError {
    ClientError::InvalidUrl(format!("{why}: {:?}", String::from_utf8_lossy(input)))
}

/// Strips the leading and trailing spaces and C0 controls browsers ignore.
fn trim(mut s: &[u8]) -> &[u8] {
    while let [b'\0'..=b' ', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b'\0'..=b' '] = s {
        s = rest;
    }
    s
}

/// Control bytes inside a URL are refused rather than encoded: they are how header injection starts.
fn check_no_controls(s: &[u8]) -> Result<(), ClientError> {
    if s.iter().any(|&b| b < 0x20 || b == 0x7f) {
        return Err(invalid("control character in URL", s));
    }
    Ok(())
}

/// Splits `scheme:` off, if `s` starts with a syntactically valid scheme (RFC 3986 §3.1).
fn split_scheme(s: &[u8]) -> Option<(&[u8], &[u8])> {
    let colon = s.iter().position(|&b| b == b':')?;
    let scheme = &s[..colon];
    let valid = scheme.first().is_some_and(u8::is_ascii_alphabetic)
        && scheme.iter().all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
    valid.then(|| (scheme, &s[colon + 1..]))
}

/// Parses `host[:port]`; the host comes back lowercase.
fn parse_authority(authority: &[u8], input: &[u8]) -> Result<(String, u16), ClientError> {
    if authority.contains(&b'@') {
        return Err(invalid("credentials in URLs are not supported (send an Authorization header)", input));
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix(b"[") {
        let close = v6.iter().position(|&b| b == b']').ok_or_else(|| invalid("unclosed IPv6 literal", input))?;
        let literal = std::str::from_utf8(&v6[..close]).map_err(|_| invalid("invalid IPv6 literal", input))?;
        let ip: Ipv6Addr = literal.parse().map_err(|_| invalid("invalid IPv6 literal", input))?;
        let port = match &v6[close + 1..] {
            [] => None,
            [b':', port @ ..] => Some(port),
            _ => return Err(invalid("invalid authority", input)),
        };
        (format!("[{ip}]"), port)
    } else {
        let (host, port) = match authority.iter().rposition(|&b| b == b':') {
            Some(i) => (&authority[..i], Some(&authority[i + 1..])),
            None => (authority, None),
        };
        let valid = |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_');
        if host.is_empty() || !host.iter().all(valid) {
            return Err(invalid("invalid host", input));
        }
        (String::from_utf8_lossy(host).to_ascii_lowercase(), port)
    };
    let port = match port {
        None | Some([]) => DEFAULT_PORT,
        Some(digits) => std::str::from_utf8(digits)
            .ok()
            .filter(|d| d.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|d| d.parse::<u16>().ok())
            .filter(|&p| p != 0)
            .ok_or_else(|| invalid("invalid port", input))?,
    };
    Ok((host, port))
}

/// Splits a path-and-query-and-fragment into path and query; the fragment is dropped.
fn split_path_query(s: &[u8]) -> (&[u8], Option<&[u8]>) {
    let s = match s.iter().position(|&b| b == b'#') {
        Some(i) => &s[..i],
        None => s,
    };
    match s.iter().position(|&b| b == b'?') {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    }
}

/// Percent-encodes the bytes a request target may not hold: space, non-ASCII, `"`, `<`, `>`, `\`, `^`, the
/// backtick, `{`, `|` and `}`. `%` is kept, so what was already encoded stays as it was.
fn encode(s: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(s.len());
    for &b in s {
        let escape =
            b <= b' ' || b >= 0x7f || matches!(b, b'"' | b'<' | b'>' | b'\\' | b'^' | b'`' | b'{' | b'|' | b'}');
        if escape {
            out.push('%');
            out.push(HEX[usize::from(b >> 4)] as char);
            out.push(HEX[usize::from(b & 15)] as char);
        } else {
            out.push(b as char);
        }
    }
    out
}

/// Removes `.` and `..` segments from an absolute path (RFC 3986 §5.2.4); a relative one is made absolute.
fn remove_dot_segments(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path.strip_prefix('/').unwrap_or(path).split('/').collect();
    let last = segments.len() - 1;
    for (i, segment) in segments.iter().enumerate() {
        match *segment {
            "." | ".." => {
                if *segment == ".." {
                    out.pop();
                }
                if i == last {
                    // `/a/b/..` names the directory `/a/`.
                    out.push("");
                }
            }
            s => out.push(s),
        }
    }
    format!("/{}", out.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn join(base: &str, reference: &str) -> String {
        url(base).join(reference.as_bytes()).unwrap_or_else(|e| panic!("{reference}: {e}")).to_string()
    }

    #[test]
    fn parses_host_port_path_and_query() {
        let u = url("http://Example.COM:8080/a/b?x=1&y=2#frag");
        assert_eq!(u.host(), "example.com");
        assert_eq!(u.port(), 8080);
        assert_eq!(u.target(), "/a/b?x=1&y=2");
        assert_eq!(u.authority(), "example.com:8080");
        assert_eq!(u.to_string(), "http://example.com:8080/a/b?x=1&y=2");
        let bare = url("HTTP://example.com");
        assert_eq!((bare.port(), bare.target(), bare.authority()), (80, "/".to_owned(), "example.com".to_owned()));
        assert_eq!(url("http://h:80/").to_string(), "http://h/");
        assert_eq!(url("http://h:/x").port(), 80);
        assert_eq!(url("  http://h/x?  ").target(), "/x?", "an empty query is kept, outer spaces are not");
    }

    #[test]
    fn parses_ip_literals() {
        let v6 = url("http://[::1]:9000/x");
        assert_eq!((v6.host(), v6.port()), ("[::1]", 9000));
        assert_eq!(v6.authority(), "[::1]:9000");
        assert_eq!(url("http://[0:0:0:0:0:0:0:1]/").host(), "[::1]", "IPv6 literals are normalized");
        assert_eq!(url("http://127.0.0.1:1/").host(), "127.0.0.1");
    }

    #[test]
    fn refuses_what_it_cannot_fetch() {
        assert!(matches!(Url::parse("https://example.com/"), Err(ClientError::UnsupportedScheme(s)) if s == "https"));
        assert!(matches!(Url::parse("ftp://example.com/"), Err(ClientError::UnsupportedScheme(_))));
        for bad in [
            "/relative",
            "example.com/path",
            "http:/one-slash",
            "http://",
            "http://user:pw@host/",
            "http://host:0/",
            "http://host:65536/",
            "http://host:8a/",
            "http://ho st/",
            "http://[::1/",
            "http://[zz]/",
            "http://h/a\r\nX-Injected: 1",
            "http://h/a\0b",
        ] {
            assert!(matches!(Url::parse(bad), Err(ClientError::InvalidUrl(_))), "{bad:?}");
        }
    }

    #[test]
    fn encodes_what_a_target_may_not_hold() {
        assert_eq!(url("http://h/a b/\u{e9}?q=a b&r=\"x\"").target(), "/a%20b/%C3%A9?q=a%20b&r=%22x%22");
        assert_eq!(url("http://h/already%20done?x=%2F").target(), "/already%20done?x=%2F");
        assert_eq!(url("http://h/{a}|^").target(), "/%7Ba%7D%7C%5E");
    }

    #[test]
    fn removes_dot_segments() {
        assert_eq!(url("http://h/a/b/../c/./d").target(), "/a/c/d");
        assert_eq!(url("http://h/../../x").target(), "/x");
        assert_eq!(url("http://h/a/b/..").target(), "/a/");
        assert_eq!(url("http://h/a/.").target(), "/a/");
    }

    #[test]
    fn resolves_references_as_rfc_3986_examples() {
        // RFC 3986 §5.4.1, on an http base.
        let base = "http://a/b/c/d;p?q";
        for (reference, expected) in [
            ("g", "http://a/b/c/g"),
            ("./g", "http://a/b/c/g"),
            ("g/", "http://a/b/c/g/"),
            ("/g", "http://a/g"),
            ("//g", "http://g/"),
            ("?y", "http://a/b/c/d;p?y"),
            ("g?y", "http://a/b/c/g?y"),
            ("#s", "http://a/b/c/d;p?q"),
            ("g#s", "http://a/b/c/g"),
            (";x", "http://a/b/c/;x"),
            ("", "http://a/b/c/d;p?q"),
            (".", "http://a/b/c/"),
            ("..", "http://a/b/"),
            ("../g", "http://a/b/g"),
            ("../..", "http://a/"),
            ("../../../g", "http://a/g"),
            ("/./g", "http://a/g"),
            ("g.", "http://a/b/c/g."),
            ("..g", "http://a/b/c/..g"),
            ("http://other:81/x?z", "http://other:81/x?z"),
        ] {
            assert_eq!(join(base, reference), expected, "{reference:?}");
        }
    }

    #[test]
    fn location_values_may_hold_raw_bytes() {
        let base = url("http://h/dir/page");
        assert_eq!(base.join(b"caf\xc3\xa9 x").unwrap().target(), "/dir/caf%C3%A9%20x");
        assert_eq!(base.join(b"/l\xe9").unwrap().target(), "/l%E9");
        assert!(matches!(base.join(b"https://h/"), Err(ClientError::UnsupportedScheme(_))));
        assert!(matches!(base.join(b"/a\r\nb"), Err(ClientError::InvalidUrl(_))));
    }

    #[test]
    fn origins_compare_host_and_port() {
        let a = url("http://h:1/x");
        assert!(a.same_origin(&url("http://H:1/y?z")));
        assert!(!a.same_origin(&url("http://h:2/x")));
        assert!(!a.same_origin(&url("http://g:1/x")));
    }
}
