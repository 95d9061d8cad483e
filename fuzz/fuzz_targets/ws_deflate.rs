//! permessage-deflate (RFC 7692): compression round trips, inflating hostile input, and negotiation.
//!
//! Checks: every message (a piece of the input) survives compress → decompress under the agreed parameters,
//! with or without context takeover, whatever window and level, and however its compressed payload is split
//! into frames; the inflated size limit is exact; arbitrary input inflates within the limit or fails with
//! 1007/1009, the same whatever its frames; negotiation never panics, and what one gale end agrees to, the
//! other accepts unchanged.
#![no_main]

use gale_fuzz::Split;
use gale_web::websocket::CloseCode;
use gale_web::websocket::deflate::{DeflateConfig, DeflateParams, PerMessageDeflate, parse_extensions};
use gale_web::websocket::frame::Role;
use libfuzzer_sys::fuzz_target;

/// Inflates `frames` as the frames of one message; `Ok(output)` or the error's code.
fn inflate<'a>(
    receiver: &mut PerMessageDeflate,
    frames: impl IntoIterator<Item = &'a [u8]>,
    limit: usize,
) -> Result<Vec<u8>, CloseCode> {
    let frames: Vec<&[u8]> = frames.into_iter().collect();
    let mut out = Vec::new();
    for (i, frame) in frames.iter().enumerate() {
        let fin = i + 1 == frames.len();
        let result = receiver.decompress(frame, fin, &mut out, limit);
        assert!(out.len() <= limit.saturating_add(1), "inflated {} bytes past a limit of {limit}", out.len());
        if let Err(e) = result {
            assert!(matches!(e.code().0, 1007 | 1009), "{e:?}");
            return Err(e.code());
        }
    }
    assert!(out.len() <= limit);
    Ok(out)
}

/// A configuration from four fuzz bytes.
fn config(bytes: &[u8]) -> DeflateConfig {
    let bits = |b: u8| (b & 0x80 != 0).then_some(b & 0x1F);
    DeflateConfig {
        compression_level: u32::from(bytes[0] % 12),
        server_no_context_takeover: bytes[1] & 0x40 != 0,
        client_no_context_takeover: bytes[1] & 0x20 != 0,
        server_max_window_bits: bits(bytes[2]),
        client_max_window_bits: bits(bytes[3]),
    }
}

fn peer(role: Role) -> Role {
    match role {
        Role::Server => Role::Client,
        Role::Client => Role::Server,
    }
}

fuzz_target!(|data: &[u8]| {
    let Some(split) = Split::new(data) else { return };
    let flags = split.flags();
    let stream = split.stream;
    let role = if flags & 1 == 0 { Role::Server } else { Role::Client };
    let window = |b: Option<&u8>| b.map(|b| 8 + b % 8);
    let params = DeflateParams {
        server_no_context_takeover: flags & 2 != 0,
        client_no_context_takeover: flags & 4 != 0,
        server_max_window_bits: if flags & 8 != 0 { window(stream.first()) } else { None },
        client_max_window_bits: if flags & 8 != 0 { window(stream.last()) } else { None },
    };
    let level = stream.len() as u32 % 10;

    // Round trips: each piece is one message, and its payload travels in two frames.
    let mut sender = PerMessageDeflate::new(role, &params, level);
    let mut receiver = PerMessageDeflate::new(peer(role), &params, level);
    for (i, message) in split.pieces().enumerate() {
        let mut payload = Vec::new();
        sender.compress(message, &mut payload).expect("compress");
        assert!(!payload.is_empty());
        let at = message.first().map_or(0, |&b| usize::from(b) * payload.len() / 256);
        let back = inflate(&mut receiver, [&payload[..at], &payload[at..]], message.len());
        assert_eq!(back.as_deref(), Ok(message), "message {i} did not survive the round trip");
        if i == 0 && !message.is_empty() {
            // One byte less than the message is over the limit.
            let mut fresh = PerMessageDeflate::new(peer(role), &params, level);
            assert_eq!(inflate(&mut fresh, [&payload[..]], message.len() - 1), Err(CloseCode(1009)));
        }
    }

    // Arbitrary input, whole or as the frames the cuts make.
    let limit = if flags & 8 != 0 { 64 } else { 1 << 16 };
    let whole = inflate(&mut PerMessageDeflate::new(role, &params, level), [stream], limit);
    let framed = inflate(&mut PerMessageDeflate::new(role, &params, level), split.pieces(), limit);
    match (&whole, &framed) {
        // A message that is both too large and corrupt fails either way, but which of the two is found first
        // depends on where the frame cuts fall against the inflater's output buffering: 1009 if the output
        // passes the limit before the bad bits are read, 1007 otherwise.
        (Err(a), Err(b)) if a != b => assert!(matches!((a.0, b.0), (1007, 1009) | (1009, 1007)), "{a:?} vs {b:?}"),
        _ => assert_eq!(whole, framed, "inflating depends on the framing"),
    }

    // Negotiation: arbitrary header values are refused or agreed to consistently.
    let text = String::from_utf8_lossy(stream);
    let _ = parse_extensions(&text);
    let default = DeflateConfig::default();
    if let Some(agreed) = default.negotiate([&*text]) {
        assert_eq!(default.negotiate([agreed.to_header_value().as_str()]), Some(agreed));
    }
    if let Ok(Some(accepted)) = default.accept_response([&*text]) {
        for bits in [accepted.server_max_window_bits, accepted.client_max_window_bits].into_iter().flatten() {
            assert!((8..=15).contains(&bits), "window bits {bits} accepted");
        }
    }
    // Two gale ends, configured from the input, agree on what the server answers.
    if let [a, b, c, d, e, f, g, h, ..] = *stream {
        let (client, server) = (config(&[a, b, c, d]), config(&[e, f, g, h]));
        let agreed = server.negotiate([client.offer().as_str()]).expect("a gale offer is acceptable");
        let accepted = client.accept_response([agreed.to_header_value().as_str()]);
        assert_eq!(accepted.expect("the answer to our own offer is acceptable"), Some(agreed));
    }
});
