//! The chunked body decoder over arbitrary input cut at arbitrary points: same body, same outcome.
#![no_main]

use bytes::BytesMut;
use gale_http1::proto::body::{ChunkedDecoder, Decoded};
use libfuzzer_sys::fuzz_target;

fn decode(pieces: &[&[u8]]) -> (Vec<u8>, Result<bool, u16>) {
    let mut d = ChunkedDecoder::new();
    let mut buf = BytesMut::new();
    let mut body = Vec::new();
    for piece in pieces {
        buf.extend_from_slice(piece);
        loop {
            match d.decode(&mut buf) {
                Ok(Decoded::Data(b)) => {
                    assert!(!b.is_empty(), "empty data chunk");
                    body.extend_from_slice(&b);
                }
                Ok(Decoded::Done) => return (body, Ok(true)),
                Ok(Decoded::NeedMore) => break,
                Err(e) => return (body, Err(e.status())),
            }
        }
    }
    (body, Ok(false))
}

fuzz_target!(|data: &[u8]| {
    let Some((&cut, input)) = data.split_first() else { return };
    let at = usize::from(cut) * input.len() / 256;
    let whole = decode(&[input]);
    let split = decode(&[&input[..at], &input[at..]]);
    // Before an error, the split run may have delivered the same data in more pieces: compare outcomes.
    assert_eq!(whole.1, split.1);
    if whole.1.is_ok() {
        assert_eq!(whole.0, split.0);
    }
});
