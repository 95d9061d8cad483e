//! The chunked body decoder over arbitrary input cut at fuzzer-chosen points (or fed a byte at a time), and
//! over the chunked encoding of arbitrary data.
//!
//! Checks: body, trailers, outcome and the bytes left for the next message do not depend on the cuts; data
//! pieces are never empty; what the encoder writes decodes to the data it was given, whatever its chunking.
#![no_main]

use bytes::BytesMut;
use gale_fuzz::Split;
use gale_http1::proto::ParseErrorKind;
use gale_http1::proto::body::{ChunkedDecoder, Decoded, TRAILER_LIMIT, encode_chunk, encode_last_chunk};
use libfuzzer_sys::fuzz_target;

/// Everything a decoding run produced.
#[derive(Debug, PartialEq, Eq)]
struct Run {
    body: Vec<u8>,
    /// `Ok(true)` once done, `Ok(false)` if more input is needed, or the error.
    outcome: Result<bool, ParseErrorKind>,
    trailers: Option<Vec<(Vec<u8>, Vec<u8>)>>,
    /// What is left in the buffer at the end.
    rest: Vec<u8>,
}

fn decode<'a>(pieces: impl IntoIterator<Item = &'a [u8]>) -> Run {
    let mut decoder = ChunkedDecoder::new();
    let mut buf = BytesMut::new();
    let mut body = Vec::new();
    let mut outcome = Ok(false);
    for piece in pieces {
        buf.extend_from_slice(piece);
        // Once the body is over, later bytes belong to the next message and just stay in the buffer.
        while outcome == Ok(false) {
            let before = buf.len();
            match decoder.decode(&mut buf) {
                Ok(Decoded::Data(data)) => {
                    assert!(!data.is_empty(), "empty data piece");
                    assert!(before - buf.len() >= data.len());
                    body.extend_from_slice(&data);
                }
                Ok(Decoded::Done) => {
                    assert!(decoder.is_done());
                    outcome = Ok(true);
                }
                Ok(Decoded::NeedMore) => {
                    assert!(buf.is_empty(), "NeedMore with {} bytes unread", buf.len());
                    break;
                }
                Err(e) => outcome = Err(e.kind()),
            }
        }
        if outcome.is_err() {
            buf.clear();
            break;
        }
    }
    let trailers: Option<Vec<(Vec<u8>, Vec<u8>)>> =
        decoder.take_trailers().map(|t| t.iter().map(|(n, v)| (n.to_vec(), v.to_vec())).collect());
    if let Some(fields) = &trailers {
        let size: usize = fields.iter().map(|(n, v)| n.len() + v.len()).sum();
        assert!(size <= TRAILER_LIMIT);
    }
    Run { body, outcome, trailers, rest: buf.to_vec() }
}

fuzz_target!(|data: &[u8]| {
    let Some(split) = Split::new(data) else { return };
    let whole = decode([split.stream]);
    let cut = decode(split.pieces());
    assert_eq!(whole, cut, "decoding depends on how the input was cut");

    // The encoder's output, chunked at the same cuts, decodes to the data.
    let mut wire = BytesMut::new();
    for piece in split.pieces() {
        encode_chunk(piece, &mut wire);
    }
    encode_last_chunk(&mut wire);
    wire.extend_from_slice(b"NEXT");
    let run = decode([&wire[..]]);
    assert_eq!(run.outcome, Ok(true));
    assert_eq!(run.body, split.stream);
    assert_eq!(run.rest, b"NEXT");
    assert_eq!(run.trailers, None);
});
