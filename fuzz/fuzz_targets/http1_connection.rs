//! The server connection's reading side (request parser, body decoder, body limit, keep-alive, end of input)
//! under tight limits, over a byte stream cut at fuzzer-chosen points; then each request answered with the
//! response encoder and the answer read back with the response parser.
//!
//! Checks: the connection always ends in a defined state, having read heads and bodies or refused a request
//! with 400, 413, 414, 431, 501 or 505, whatever the cuts; each step makes progress; the response to every
//! complete request reads back with its status, body and keep-alive decision intact.
#![no_main]

use bytes::BytesMut;
use gale_fuzz::Split;
use gale_fuzz::http1::{ERROR_STATUSES, Message, Outcome, Policy, assert_same, run};
use gale_http1::headers::HeaderMap;
use gale_http1::proto::body::{BodyKind, Decoded, Decoder};
use gale_http1::proto::client::ResponseParser;
use gale_http1::proto::response::{ConnectionAfter, OutgoingResponse, ResponseContext, ResponseEncoder};
use gale_http1::proto::{Limits, Method};
use libfuzzer_sys::fuzz_target;

/// Limits small enough for the fuzzer to reach every one of them.
const POLICY: Policy = Policy {
    limits: Limits { max_header_size: 512, max_request_line: 128, max_headers: 12 },
    max_body: Some(256),
    honour_close: true,
};

/// Statuses to answer with: ordinary ones, and the ones that forbid a body or switch protocols.
const STATUSES: [u16; 8] = [200, 404, 204, 304, 101, 500, 206, 201];

fuzz_target!(|data: &[u8]| {
    let Some(split) = Split::new(data) else { return };
    let whole = run(POLICY, [split.stream]);
    let cut = run(POLICY, split.pieces());
    assert_same(&whole, &cut);

    let (messages, outcome) = &whole;
    if let Outcome::Failed(status) = outcome {
        assert!(ERROR_STATUSES.contains(status));
    }
    if let Some(last) = messages.last().filter(|m| m.complete) {
        // After a request that closes the connection or switches protocols, nothing more is read.
        let stop = !last.keep_alive || last.upgrade;
        assert_eq!(*outcome == Outcome::Closed, stop, "{outcome:?} after {last:?}");
    }
    for (i, message) in messages.iter().filter(|m| m.complete).enumerate() {
        let status = STATUSES[(usize::from(split.flags()) + i) % STATUSES.len()];
        answer(message, status, split.flags() & 1 == 0);
    }
});

/// Encodes a response echoing `message`'s body, then reads it back as a client would.
fn answer(message: &Message, status: u16, known_length: bool) {
    let method = &message.method;
    let tunnel = status == 101 || (*method == Method::Connect && (200..300).contains(&status));
    let bodiless = status < 200 || status == 204 || status == 304 || tunnel;
    let body: &[u8] = if bodiless { b"" } else { &message.body };

    let ctx = ResponseContext::new(message.version, method, message.keep_alive);
    let headers = HeaderMap::new();
    let mut response = OutgoingResponse::new(status, &headers);
    if known_length && !bodiless {
        response = response.with_content_length(body.len() as u64);
    }
    let mut wire = BytesMut::new();
    let mut head = ResponseEncoder::new().encode(&ctx, &response, &mut wire).expect("encode a plain response");
    if !bodiless {
        head.body.encode(body, &mut wire).expect("encode the body");
    }
    head.body.finish(&mut wire).expect("finish the body");

    let mut parser = ResponseParser::new(Limits::default());
    let parsed = parser.parse(&mut wire).expect("our own response parses").expect("our own response is complete");
    assert_eq!(parsed.status(), status);
    assert_eq!(parsed.keep_alive(method), head.connection == ConnectionAfter::KeepAlive, "{parsed:?}");
    assert_eq!(head.connection == ConnectionAfter::Upgrade, tunnel);

    let kind = parsed.body_kind(method);
    let mut decoder = Decoder::new(kind);
    let mut read = Vec::new();
    loop {
        match decoder.decode(&mut wire).expect("our own body decodes") {
            Decoded::Data(piece) => read.extend_from_slice(&piece),
            Decoded::Done => break,
            Decoded::NeedMore if kind == BodyKind::CloseDelimited => {
                decoder.decode_eof().expect("a body delimited by closing ends at EOF");
                break;
            }
            Decoded::NeedMore => panic!("our own body is incomplete"),
        }
    }
    let expected: &[u8] = if *method == Method::Head { b"" } else { body };
    assert_eq!(read, expected);
    assert!(wire.is_empty(), "bytes left after our own response");
}
