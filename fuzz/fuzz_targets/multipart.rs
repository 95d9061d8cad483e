//! multipart/form-data: the streaming parser over arbitrary bodies cut at fuzzer-chosen points, and over
//! well-formed bodies built from arbitrary data.
//!
//! Checks: the parts reported (headers, data, order of calls) and the outcome do not depend on the cuts; the
//! buffered parser agrees with the streaming one; a body built from arbitrary part contents, file names and
//! boundaries parses back to exactly those parts.
#![no_main]

use gale_fuzz::Split;
use gale_web::forms::{
    Arguments, Files, FormError, FormLimits, MultipartParser, MultipartSink, PartHeaders, UploadedFile, parse_multipart,
};
use libfuzzer_sys::fuzz_target;

/// Boundaries worth trying: ordinary, one byte, browser-style, awkward characters, and the longest allowed.
const BOUNDARIES: [&str; 6] = [
    "XyZzY",
    "a",
    "----WebKitFormBoundary7MA4YWxkTrZu0gW",
    "b o\"u;n=d-",
    "-",
    "0123456789012345678901234567890123456789012345678901234567890123456789",
];

/// Small limits, so that the fuzzer reaches them.
const LIMITS: FormLimits = FormLimits { max_arguments: 1_000, max_parts: 8, max_part_header_bytes: 256 };

/// A sink that checks the order of the calls it receives and keeps everything.
#[derive(Debug, Default)]
struct Record {
    parts: Vec<(PartHeaders, Vec<u8>)>,
    open: bool,
}

impl MultipartSink for Record {
    type Error = FormError;

    fn part_begin(&mut self, headers: &PartHeaders) -> Result<(), FormError> {
        assert!(!self.open, "a part began inside another");
        assert!(!headers.name.is_empty(), "a part without a name");
        self.open = true;
        self.parts.push((headers.clone(), Vec::new()));
        Ok(())
    }

    fn part_data(&mut self, data: &[u8]) -> Result<(), FormError> {
        assert!(self.open, "data outside a part");
        assert!(!data.is_empty(), "an empty data call");
        self.parts.last_mut().expect("a part is open").1.extend_from_slice(data);
        Ok(())
    }

    fn part_end(&mut self) -> Result<(), FormError> {
        assert!(self.open, "a part ended twice");
        self.open = false;
        Ok(())
    }
}

/// What a streaming run produced: the parts, whether the last one was still open, and the outcome.
type Streamed = (Vec<(PartHeaders, Vec<u8>)>, bool, Result<(), FormError>);

fn stream<'a>(boundary: &str, limits: FormLimits, pieces: impl IntoIterator<Item = &'a [u8]>) -> Streamed {
    let mut parser = MultipartParser::new(boundary, limits).expect("a valid boundary");
    let mut sink = Record::default();
    let mut outcome = Ok(());
    for piece in pieces {
        if let Err(e) = parser.feed(piece, &mut sink) {
            outcome = Err(e);
            break;
        }
    }
    if outcome.is_ok() {
        outcome = parser.finish();
        assert_eq!(outcome.is_ok(), parser.is_done());
        if outcome.is_ok() {
            assert!(!sink.open, "the body ended inside a part");
        }
    }
    // A parser that failed stays failed.
    if outcome.is_err() {
        assert_eq!(parser.feed(b"more", &mut Record::default()), Err(FormError::Poisoned));
    }
    (sink.parts, sink.open, outcome)
}

/// What `parse_multipart` makes of the parts.
fn collect(parts: &[(PartHeaders, Vec<u8>)]) -> (Arguments, Files) {
    let mut arguments = Arguments::new();
    let mut files = Files::new();
    for (headers, body) in parts {
        match headers.filename.as_deref().filter(|f| !f.is_empty()) {
            Some(filename) => files.push(
                headers.name.clone(),
                UploadedFile {
                    filename: filename.to_owned(),
                    content_type: headers.content_type.clone().unwrap_or_else(|| "application/unknown".into()),
                    body: body.clone().into(),
                },
            ),
            None => arguments.push(headers.name.clone(), String::from_utf8_lossy(body).into_owned()),
        }
    }
    (arguments, files)
}

fuzz_target!(|data: &[u8]| {
    let Some(split) = Split::new(data) else { return };
    let boundary = BOUNDARIES[usize::from(split.flags()) % BOUNDARIES.len()];

    let whole = stream(boundary, LIMITS, [split.stream]);
    let cut = stream(boundary, LIMITS, split.pieces());
    assert_eq!(whole, cut, "parts depend on how the body was cut");
    let buffered = parse_multipart(boundary, split.stream);
    if whole.2.is_ok() {
        assert_eq!(buffered, Ok(collect(&whole.0)));
    }

    // A well-formed body whose parts are the pieces: odd ones files named after their first bytes.
    let delimiter = [&b"\r\n--"[..], boundary.as_bytes()].concat();
    let pieces: Vec<&[u8]> = split.pieces().take(LIMITS.max_parts).collect();
    if pieces.iter().any(|p| p.windows(delimiter.len()).any(|w| w == delimiter)) {
        return;
    }
    let mut body = b"preamble".to_vec();
    let mut expected: Vec<(PartHeaders, Vec<u8>)> = Vec::new();
    for (i, piece) in pieces.iter().enumerate() {
        let name = format!("field{i}");
        let filename = (i % 2 == 1).then(|| {
            let text: String = String::from_utf8_lossy(&piece[..piece.len().min(12)])
                .chars()
                .filter(|c| !matches!(c, '"' | '\\' | '\r' | '\n'))
                .collect();
            if text.trim().is_empty() { "blank.bin".to_owned() } else { text }
        });
        body.extend_from_slice(b"\r\n--");
        body.extend_from_slice(boundary.as_bytes());
        body.extend_from_slice(format!("\r\nContent-Disposition: form-data; name=\"{name}\"").as_bytes());
        if let Some(filename) = &filename {
            body.extend_from_slice(format!("; filename=\"{filename}\"\r\nContent-Type: app/x-{i}").as_bytes());
        }
        body.extend_from_slice(b"\r\n\r\n");
        body.extend_from_slice(piece);
        let disposition = match &filename {
            Some(f) => format!("form-data; name=\"{name}\"; filename=\"{f}\""),
            None => format!("form-data; name=\"{name}\""),
        };
        let mut headers = vec![("Content-Disposition".to_owned(), disposition)];
        if filename.is_some() {
            headers.push(("Content-Type".to_owned(), format!("app/x-{i}")));
        }
        let content_type = filename.as_ref().map(|_| format!("app/x-{i}"));
        expected.push((PartHeaders { name, filename, content_type, headers }, piece.to_vec()));
    }
    body.extend_from_slice(b"\r\n--");
    body.extend_from_slice(boundary.as_bytes());
    body.extend_from_slice(b"--\r\nepilogue");
    let built = stream(boundary, LIMITS, [&body[..]]);
    assert_eq!(built, (expected, false, Ok(())), "a well-formed body parsed wrongly");
});
