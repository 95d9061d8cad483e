//! [`StaticFileHandler`]: files from a directory, with validators, ranges and no path traversal.

use crate::error::{HttpError, Result};
use crate::handler::{RequestContext, RequestHandler};
use sha2::Digest;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `Cache-Control` lifetime of a versioned static URL (`?v=`): ten years, as Tornado.
pub const CACHE_MAX_AGE: Duration = Duration::from_secs(86_400 * 365 * 10);
/// Files up to this size are read whole; larger ones are streamed in chunks of this size.
pub const CHUNK_SIZE: usize = 64 * 1024;

/// Serves files under a root directory (Tornado's `StaticFileHandler`), routed with one capture: the path.
///
/// - `Content-Type` from the extension; `ETag` (size and mtime) and `Last-Modified`; `If-None-Match` and
///   `If-Modified-Since` → 304.
/// - A single `Range` → 206 with `Content-Range`, an unsatisfiable one → 416.
/// - `?v=` (from [`RequestContext::static_url`]) → cached for ten years.
/// - Paths with `..`, absolute paths and symlinks leading out of the root → 403; missing files → 404;
///   directories → 403 (or `default_filename`).
/// - Large files are streamed in 64 KiB chunks with back-pressure, never loaded whole.
#[derive(Debug, Clone)]
pub struct StaticFileHandler {
    root: PathBuf,
    default_filename: Option<String>,
}

impl StaticFileHandler {
    /// Serves files under `root`.
    pub fn new(root: impl Into<PathBuf>) -> StaticFileHandler {
        StaticFileHandler { root: root.into(), default_filename: None }
    }

    /// Serves `name` (e.g. `index.html`) for a directory.
    #[must_use]
    pub fn with_default_filename(mut self, name: &str) -> StaticFileHandler {
        self.default_filename = Some(name.to_owned());
        self
    }

    /// Resolves a request path to a file under the root, refusing traversal.
    pub fn resolve(&self, requested: &str) -> Result<PathBuf> {
        resolve_under(&self.root, requested, self.default_filename.as_deref())
    }

    async fn serve(&mut self, cx: &mut RequestContext, include_body: bool) -> Result {
        let requested = cx.path_arg(0).to_owned();
        let path = self.resolve(&requested)?;
        let meta = std::fs::metadata(&path)?;
        let size = meta.len();
        let modified = meta.modified().ok();
        let etag = format!(
            "\"{:x}-{:x}\"",
            size,
            modified.and_then(|m| m.duration_since(UNIX_EPOCH).ok()).map_or(0, |d| d.as_nanos())
        );
        cx.set_header("Etag", etag.clone());
        cx.set_header("Accept-Ranges", "bytes");
        if let Some(m) = modified {
            cx.set_header("Last-Modified", httpdate::fmt_http_date(m));
        }
        let mime = mime_guess::from_path(&path).first_or_octet_stream();
        let ct = if mime.type_() == "text" || mime.essence_str() == "application/javascript" {
            format!("{}; charset=utf-8", mime.essence_str())
        } else {
            mime.essence_str().to_owned()
        };
        cx.set_header("Content-Type", ct);
        if cx.request().query().is_some_and(|q| q.split('&').any(|p| p.starts_with("v="))) {
            cx.set_header("Cache-Control", format!("max-age={}", CACHE_MAX_AGE.as_secs()));
            cx.set_header("Expires", httpdate::fmt_http_date(SystemTime::now() + CACHE_MAX_AGE));
        }

        // Conditional requests.
        let not_modified = match cx.header("If-None-Match") {
            Some(inm) => etag_matches(inm, &etag),
            None => match (cx.header("If-Modified-Since").and_then(|v| httpdate::parse_http_date(v).ok()), modified) {
                (Some(since), Some(m)) => {
                    m.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
                        <= since.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
                }
                _ => false,
            },
        };
        if not_modified {
            cx.set_status(304);
            cx.clear_header("Content-Type");
            return cx.finish_raw(Some(0));
        }

        // Ranges.
        let (start, end) = match cx.header("Range") {
            Some(range) => match parse_range(range, size) {
                RangeSpec::Whole => (0, size),
                RangeSpec::Partial(s, e) => {
                    cx.set_status(206);
                    cx.set_header("Content-Range", format!("bytes {}-{}/{}", s, e - 1, size));
                    (s, e)
                }
                RangeSpec::Unsatisfiable => {
                    cx.set_status(416);
                    cx.set_header("Content-Type", "text/plain");
                    cx.set_header("Content-Range", format!("bytes */{size}"));
                    return cx.finish_raw(Some(0));
                }
            },
            None => (0, size),
        };
        let len = end - start;
        cx.start_body(Some(len))?;
        if !include_body || len == 0 {
            return cx.finish_raw(None);
        }
        let mut file = File::open(&path)?;
        file.seek(SeekFrom::Start(start))?;
        let mut left = len;
        let mut buf = vec![0u8; CHUNK_SIZE.min(len as usize)];
        while left > 0 {
            let want = (left as usize).min(buf.len());
            file.read_exact(&mut buf[..want])?;
            cx.send_chunk(bytes::Bytes::copy_from_slice(&buf[..want])).await?;
            left -= want as u64;
        }
        cx.finish_raw(None)
    }
}

impl RequestHandler for StaticFileHandler {
    const ALLOWED_METHODS: &'static [&'static str] = &["GET", "HEAD"];

    async fn get(&mut self, cx: &mut RequestContext) -> Result {
        self.serve(cx, true).await
    }

    async fn head(&mut self, cx: &mut RequestContext) -> Result {
        self.serve(cx, false).await
    }
}

/// Joins `requested` (already URL-decoded) to `root`, refusing anything that could leave it: `..`, absolute
/// paths, NUL bytes, and symlinks that point outside (checked on the canonical path).
pub fn resolve_under(root: &Path, requested: &str, default_filename: Option<&str>) -> Result<PathBuf> {
    if requested.contains('\0') || requested.contains('\\') {
        return Err(HttpError::with_message(403, "invalid static path"));
    }
    let rel = Path::new(requested.trim_start_matches('/'));
    for c in rel.components() {
        match c {
            Component::Normal(_) | Component::CurDir => {}
            _ => return Err(HttpError::with_message(403, format!("{requested} is not in the static root"))),
        }
    }
    let root = root.canonicalize().map_err(|e| HttpError::with_message(500, format!("static root: {e}")))?;
    let joined = root.join(rel);
    let mut path = match joined.canonicalize() {
        Ok(p) => p,
        Err(_) => return Err(HttpError::new(404)),
    };
    if !path.starts_with(&root) {
        return Err(HttpError::with_message(403, format!("{requested} is not in the static root")));
    }
    if path.is_dir() {
        match default_filename {
            Some(name) => {
                path = path.join(name);
                if !path.is_file() {
                    return Err(HttpError::new(404));
                }
            }
            None => return Err(HttpError::with_message(403, format!("{requested} is a directory"))),
        }
    }
    if !path.is_file() {
        return Err(HttpError::with_message(403, format!("{requested} is not a file")));
    }
    Ok(path)
}

/// The parsed `Range` header.
#[derive(Debug, PartialEq, Eq)]
pub enum RangeSpec {
    /// No usable range (absent, several ranges, or malformed): send everything with 200.
    Whole,
    /// Send bytes `start..end` with 206.
    Partial(u64, u64),
    /// 416.
    Unsatisfiable,
}

/// Parses a single `bytes=` range against a file of `size` bytes (RFC 9110 §14).
pub fn parse_range(header: &str, size: u64) -> RangeSpec {
    let Some(spec) = header.trim().strip_prefix("bytes=") else { return RangeSpec::Whole };
    if spec.contains(',') {
        return RangeSpec::Whole;
    }
    let Some((a, b)) = spec.split_once('-') else { return RangeSpec::Whole };
    let (a, b) = (a.trim(), b.trim());
    match (a.parse::<u64>(), b.parse::<u64>()) {
        (Ok(start), Ok(last)) if start <= last => {
            if start >= size {
                RangeSpec::Unsatisfiable
            } else {
                RangeSpec::Partial(start, (last + 1).min(size))
            }
        }
        (Ok(_), Ok(_)) => RangeSpec::Whole,
        (Ok(start), Err(_)) if b.is_empty() => {
            if start >= size {
                RangeSpec::Unsatisfiable
            } else {
                RangeSpec::Partial(start, size)
            }
        }
        (Err(_), Ok(suffix)) if a.is_empty() => {
            if suffix == 0 {
                RangeSpec::Unsatisfiable
            } else {
                RangeSpec::Partial(size.saturating_sub(suffix), size)
            }
        }
        _ => RangeSpec::Whole,
    }
}

/// A strong ETag for a dynamic body: a 64-bit FxHash of it in hex. An ETag only has to change with the
/// content; Tornado's SHA-1 would cost more than the rest of a small request.
pub fn etag_for(body: &[u8]) -> String {
    gale_http1::headers::HashEtag::from_hash(etag_hash(body)).as_str().to_owned()
}

/// The hash an [`etag_for`] is made of.
pub(crate) fn etag_hash(body: &[u8]) -> u64 {
    use std::hash::BuildHasher;
    rustc_hash::FxBuildHasher.hash_one(body)
}

/// Whether an `If-None-Match` value matches `etag` (weak comparison, `*` matches anything).
pub fn etag_matches(if_none_match: &str, etag: &str) -> bool {
    let strip = |s: &str| s.trim().trim_start_matches("W/").to_owned();
    let etag = strip(etag);
    if_none_match.trim() == "*" || if_none_match.split(',').any(|t| strip(t) == etag)
}

/// The version argument of a static file: the first 32 hex digits of its SHA-256 (Tornado hashes the
/// content too), or `None` if it cannot be read.
pub fn content_version(root: &Path, path: &str) -> Option<String> {
    let file = resolve_under(root, path, None).ok()?;
    let mut f = File::open(file).ok()?;
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; CHUNK_SIZE];
    loop {
        let n = f.read(&mut buf).ok()?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Some(hex::encode(&hasher.finalize()[..16]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_follow_rfc_9110() {
        assert_eq!(parse_range("bytes=0-9", 100), RangeSpec::Partial(0, 10));
        assert_eq!(parse_range("bytes=90-", 100), RangeSpec::Partial(90, 100));
        assert_eq!(parse_range("bytes=-10", 100), RangeSpec::Partial(90, 100));
        assert_eq!(parse_range("bytes=-200", 100), RangeSpec::Partial(0, 100));
        assert_eq!(parse_range("bytes=50-500", 100), RangeSpec::Partial(50, 100));
        assert_eq!(parse_range("bytes=100-", 100), RangeSpec::Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 100), RangeSpec::Unsatisfiable);
        assert_eq!(parse_range("bytes=5-1", 100), RangeSpec::Whole);
        assert_eq!(parse_range("bytes=0-1,5-6", 100), RangeSpec::Whole);
        assert_eq!(parse_range("items=0-1", 100), RangeSpec::Whole);
    }

    #[test]
    fn etags_match_weakly_and_with_star() {
        let e = etag_for(b"hello");
        assert!(etag_matches(&e, &e));
        assert!(etag_matches(&format!("W/{e}"), &e));
        assert!(etag_matches(&format!("\"x\", {e}"), &e));
        assert!(etag_matches("*", &e));
        assert!(!etag_matches("\"other\"", &e));
        assert_ne!(etag_for(b"hello"), etag_for(b"hellp"));
    }

    #[test]
    fn etag_text_is_the_quoted_big_endian_hex_of_the_hash() {
        for body in [&b""[..], b"hello", b"Hello, World!", &[0xff; 100]] {
            let h = etag_hash(body);
            assert_eq!(etag_for(body), format!("\"{}\"", hex::encode(h.to_be_bytes())));
        }
        for h in [0, 1, 0xf, u64::MAX, 0x0123_4567_89ab_cdef] {
            assert_eq!(gale_http1::headers::HashEtag::from_hash(h).as_bytes(), format!("\"{h:016x}\"").as_bytes());
        }
    }

    #[test]
    fn traversal_is_refused() {
        let root = std::env::temp_dir().join(format!("gale-static-{}", std::process::id()));
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(root.join("sub/a.txt"), b"a").unwrap();
        assert!(resolve_under(&root, "sub/a.txt", None).is_ok());
        for bad in ["../etc/passwd", "sub/../../x", "/etc/passwd", "sub\\..\\x", "a\0b"] {
            let e = resolve_under(&root, bad, None).unwrap_err();
            assert!(e.status() == 403 || e.status() == 404, "{bad}: {e:?}");
        }
        assert_eq!(resolve_under(&root, "missing.txt", None).unwrap_err().status(), 404);
        assert_eq!(resolve_under(&root, "sub", None).unwrap_err().status(), 403);
        let _ = std::fs::remove_dir_all(&root);
    }
}
