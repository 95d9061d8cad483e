//! The client side: the HTTP/1 response parser and body decoder over a stream of responses (interim ones
//! included) cut at fuzzer-chosen points, each answering a request whose method the fuzzer picks.
//!
//! Checks: heads, bodies and the outcome do not depend on the cuts (within the latitude of a head that never
//! ends); every accepted head is well-formed, its status line reads back to its status and reason, and its
//! framing agrees with its fields; reading stops after a response that ends the connection.
#![no_main]

use bytes::BytesMut;
use gale_fuzz::Split;
use gale_http1::headers::{is_token, is_valid_value};
use gale_http1::proto::body::{BodyKind, Decoded, Decoder};
use gale_http1::proto::client::{ResponseHead, ResponseParser};
use gale_http1::proto::{Limits, Method, ParseErrorKind};
use libfuzzer_sys::fuzz_target;

/// The methods the responses answer, in turn: the body rules differ for each.
const METHODS: [Method; 4] = [Method::Get, Method::Head, Method::Connect, Method::Post];

const LIMITS: Limits = Limits { max_header_size: 1024, max_request_line: 256, max_headers: 16 };

/// One response as the client saw it.
#[derive(Debug, PartialEq, Eq)]
struct Response {
    status: u16,
    reason: Vec<u8>,
    headers: Vec<(Vec<u8>, Vec<u8>)>,
    kind: BodyKind,
    keep_alive: bool,
    body: Vec<u8>,
    complete: bool,
}

#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// Waiting for a head (`true` if part of one is buffered).
    Head(bool),
    /// In a body when the input ended (`true` if that completes it: it is delimited by closing).
    Body(bool),
    /// The connection cannot carry another response.
    Closed,
    Failed(ParseErrorKind),
}

fn check_head(head: &ResponseHead, method: &Method) {
    let bytes = head.head_bytes();
    assert!(bytes.len() <= LIMITS.max_header_size && bytes.ends_with(b"\r\n\r\n"));
    assert!((100..=999).contains(&head.status()));
    let line = bytes.strip_prefix(b"\r\n").unwrap_or(bytes);
    let line = &line[..line.windows(2).position(|w| w == b"\r\n").expect("a status line")];
    let expected = format!("{} {}", head.version(), head.status()).into_bytes();
    assert_eq!(line.get(..12), Some(&expected[..]), "{:?}", String::from_utf8_lossy(line));
    match &line[12..] {
        [] => assert!(head.reason_bytes().is_empty()),
        [b' ', reason @ ..] => assert_eq!(head.reason_bytes(), reason),
        other => panic!("status line continues with {other:?}"),
    }
    assert!(is_valid_value(head.reason_bytes()));
    for (name, value) in head.headers() {
        assert!(is_token(name) && is_valid_value(value));
    }
    let kind = head.body_kind(method);
    let no_body = *method == Method::Head || head.status() < 200 || matches!(head.status(), 204 | 304);
    if no_body {
        assert_eq!(kind, BodyKind::Empty);
    }
    let lengths = head.headers().get_all("content-length").count();
    let codings = head.headers().get_all("transfer-encoding").count();
    assert!(lengths == 0 || codings == 0, "Content-Length and Transfer-Encoding accepted together");
    if kind == BodyKind::CloseDelimited {
        assert!(lengths == 0 && codings == 0 && !head.keep_alive(method));
    }
}

fn run<'a>(split_flags: u8, pieces: impl IntoIterator<Item = &'a [u8]>) -> (Vec<Response>, Outcome) {
    let mut parser = ResponseParser::new(LIMITS);
    let mut buf = BytesMut::new();
    let mut responses: Vec<Response> = Vec::new();
    let mut decoder: Option<Decoder> = None;
    let mut outcome = Outcome::Head(false);
    let mut answered = 0;
    'input: for piece in pieces {
        buf.extend_from_slice(piece);
        loop {
            if let Some(d) = decoder.as_mut() {
                let response = responses.last_mut().expect("a body follows a head");
                match d.decode(&mut buf) {
                    Ok(Decoded::Data(data)) => {
                        assert!(!data.is_empty());
                        response.body.extend_from_slice(&data);
                    }
                    Ok(Decoded::NeedMore) => continue 'input,
                    Ok(Decoded::Done) => {
                        response.complete = true;
                        decoder = None;
                        if !response.keep_alive {
                            outcome = Outcome::Closed;
                            break 'input;
                        }
                    }
                    Err(e) => {
                        outcome = Outcome::Failed(e.kind());
                        break 'input;
                    }
                }
                continue;
            }
            let method = &METHODS[(usize::from(split_flags) + answered) % METHODS.len()];
            match parser.parse(&mut buf) {
                Ok(Some(head)) => {
                    check_head(&head, method);
                    let kind = head.body_kind(method);
                    responses.push(Response {
                        status: head.status(),
                        reason: head.reason_bytes().to_vec(),
                        headers: head.headers().iter().map(|(n, v)| (n.to_vec(), v.to_vec())).collect(),
                        kind,
                        keep_alive: head.keep_alive(method),
                        body: Vec::new(),
                        complete: false,
                    });
                    if !head.is_interim() {
                        answered += 1;
                    }
                    decoder = Some(Decoder::new(kind));
                }
                Ok(None) => continue 'input,
                Err(e) => {
                    outcome = Outcome::Failed(e.kind());
                    break 'input;
                }
            }
        }
    }
    if let Outcome::Head(_) = outcome {
        outcome = match decoder.as_mut() {
            Some(d) => Outcome::Body(d.decode_eof().is_ok()),
            None => Outcome::Head(!buf.is_empty()),
        };
    }
    (responses, outcome)
}

fuzz_target!(|data: &[u8]| {
    let Some(split) = Split::new(data) else { return };
    let whole = run(split.flags(), [split.stream]);
    let cut = run(split.flags(), split.pieces());
    assert_eq!(whole.0, cut.0, "responses depend on how the stream was cut");
    match (&whole.1, &cut.1) {
        (a, b) if a == b => {}
        // A head that never ends is fully checked only once it doubled or ended; of two faults of one head,
        // either may be reported.
        (Outcome::Failed(_), Outcome::Head(true) | Outcome::Failed(_)) => {}
        (a, b) => panic!("whole stream ends {a:?}, cut stream {b:?}"),
    }
    if let Outcome::Body(true) = whole.1 {
        assert_eq!(whole.0.last().map(|r| r.kind), Some(BodyKind::CloseDelimited));
    }
});
