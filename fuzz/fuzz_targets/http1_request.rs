//! The HTTP/1 request parser and body decoder over a pipelined byte stream cut at fuzzer-chosen points.
//!
//! Checks: the heads and bodies found do not depend on the cuts (the errors only within the latitude
//! [`gale_fuzz::http1::assert_same`] states); every accepted head is well-formed, its framing agrees with its
//! fields, and, written out again in canonical form, parses to the same facts; every refusal carries a status
//! the server answers with; nothing panics.
#![no_main]

use gale_fuzz::Split;
use gale_fuzz::http1::{Message, Outcome, Policy, assert_same, run};
use gale_http1::proto::Limits;
use libfuzzer_sys::fuzz_target;

/// Pipelined requests are all parsed: this target is about the parser, not about connection policy.
const POLICY: Policy = Policy {
    limits: Limits {
        max_header_size: Limits::DEFAULT_MAX_HEADER_SIZE,
        max_request_line: Limits::DEFAULT_MAX_REQUEST_LINE,
        max_headers: Limits::DEFAULT_MAX_HEADERS,
    },
    max_body: None,
    honour_close: false,
};

/// Room for a head re-encoded with more bytes than it came with.
const ROOMY: Policy =
    Policy { limits: Limits { max_header_size: 1 << 20, max_request_line: 1 << 20, max_headers: 10_000 }, ..POLICY };

fuzz_target!(|data: &[u8]| {
    let Some(split) = Split::new(data) else { return };
    let whole = run(POLICY, [split.stream]);
    let cut = run(POLICY, split.pieces());
    assert_same(&whole, &cut);

    for message in whole.0.iter().filter(|m| m.complete) {
        let again = run(ROOMY, [&message.canonical_head()[..]]);
        let reparsed: Vec<Message> = again.0.iter().map(Message::head_facts).collect();
        assert_eq!(reparsed, [message.head_facts()], "a re-encoded head parses differently");
        assert!(matches!(again.1, Outcome::Idle | Outcome::PartialBody), "{:?}", again.1);
    }
});
