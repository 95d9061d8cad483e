//! Response compression (Tornado's `compress_response` / `GZipContentEncoding`), with `flate2`: a
//! well-kept deflate implementation rather than a hand-written one.

use bytes::Bytes;
use flate2::Compression;
use flate2::write::GzEncoder;
use gale_http1::headers::HeaderMap;
use std::io::Write;

/// Bodies shorter than this are not worth compressing (Tornado's `MIN_LENGTH`).
pub const MIN_LENGTH: usize = 1024;

/// Content types worth compressing (Tornado's `CONTENT_TYPES`), plus every `text/*`.
const COMPRESSIBLE: &[&str] = &[
    "application/javascript",
    "application/x-javascript",
    "application/xml",
    "application/atom+xml",
    "application/json",
    "application/xhtml+xml",
    "image/svg+xml",
];

/// Whether the client's `Accept-Encoding` allows gzip (`gzip` listed without `q=0`).
pub fn accepts_gzip(request_headers: &HeaderMap) -> bool {
    request_headers.get_all("Accept-Encoding").filter_map(|v| std::str::from_utf8(v).ok()).any(|v| {
        v.split(',').any(|item| {
            let mut parts = item.split(';');
            let coding = parts.next().unwrap_or("").trim();
            let zero = parts.any(|p| {
                let p = p.trim();
                p.strip_prefix("q=").is_some_and(|q| q.trim().parse::<f32>().is_ok_and(|q| q == 0.0))
            });
            coding.eq_ignore_ascii_case("gzip") && !zero
        })
    })
}

fn compressible(content_type: &str) -> bool {
    let ct = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    ct.starts_with("text/") || COMPRESSIBLE.contains(&ct.as_str())
}

/// Gzips `body` if the client accepts it, its type is compressible, it is long enough and not already
/// encoded; sets `Content-Encoding` and `Vary` then. Returns the compressed body, or `None` to send `body`.
pub fn maybe_gzip(request_headers: &HeaderMap, response_headers: &mut HeaderMap, body: &[u8]) -> Option<Bytes> {
    if body.len() < MIN_LENGTH || response_headers.contains("Content-Encoding") {
        return None;
    }
    let ct = response_headers.get("Content-Type").unwrap_or("");
    if !compressible(ct) {
        return None;
    }
    response_headers.append("Vary", "Accept-Encoding");
    if !accepts_gzip(request_headers) {
        return None;
    }
    let mut enc = GzEncoder::new(Vec::with_capacity(body.len() / 3 + 64), Compression::new(6));
    enc.write_all(body).ok()?;
    let out = enc.finish().ok()?;
    response_headers.insert("Content-Encoding", "gzip");
    Some(Bytes::from(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_is_used_only_when_accepted_and_worthwhile() {
        let mut req = HeaderMap::new();
        req.insert("Accept-Encoding", "deflate, gzip;q=0.8");
        let mut resp = HeaderMap::new();
        resp.insert("Content-Type", "text/html; charset=UTF-8");
        let body = vec![b'a'; 4096];
        let gz = maybe_gzip(&req, &mut resp, &body).expect("compressed");
        assert!(gz.len() < 200);
        assert_eq!(resp.get("Content-Encoding"), Some("gzip"));
        let mut d = flate2::read::GzDecoder::new(&gz[..]);
        let mut back = Vec::new();
        std::io::Read::read_to_end(&mut d, &mut back).unwrap();
        assert_eq!(back, body);

        let mut resp = HeaderMap::new();
        resp.insert("Content-Type", "image/png");
        assert!(maybe_gzip(&req, &mut resp, &body).is_none());

        let mut req0 = HeaderMap::new();
        req0.insert("Accept-Encoding", "gzip;q=0");
        let mut resp = HeaderMap::new();
        resp.insert("Content-Type", "text/plain");
        assert!(maybe_gzip(&req0, &mut resp, &body).is_none());
        assert_eq!(resp.get("Vary"), Some("Accept-Encoding"));
        assert!(maybe_gzip(&req, &mut HeaderMap::new(), b"short").is_none());
    }
}
