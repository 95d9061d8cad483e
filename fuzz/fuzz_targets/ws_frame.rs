//! WebSocket frames and messages in either role, over arbitrary input cut at fuzzer-chosen points.
//!
//! Checks: the frame decoder finds the same frames and the same error whatever the cuts, never returns a frame
//! before the bytes [`FrameDecoder::missing`] asked for have arrived, and a decoded frame re-encoded by the
//! peer decodes to itself; the protocol (with or without permessage-deflate) reports the same events, error
//! and state whatever the cuts, and whatever it queues to send decodes cleanly at the peer; the incremental
//! UTF-8 validator fails exactly when the bytes seen so far cannot begin valid UTF-8.
#![no_main]

use bytes::BytesMut;
use gale_fuzz::Split;
use gale_web::websocket::CloseCode;
use gale_web::websocket::deflate::{DeflateParams, PerMessageDeflate};
use gale_web::websocket::frame::{Frame, FrameDecoder, FrameEncoder, OpCode, Role};
use gale_web::websocket::message::{Event, Message, State, WebSocketProtocol, parse_close_payload};
use gale_web::websocket::utf8::Utf8Validator;
use libfuzzer_sys::fuzz_target;

fn peer(role: Role) -> Role {
    match role {
        Role::Server => Role::Client,
        Role::Client => Role::Server,
    }
}

/// Frames decoded from `pieces`, and the error's close code if decoding failed.
fn frames<'a>(
    role: Role,
    rsv1: bool,
    max_payload: usize,
    pieces: impl IntoIterator<Item = &'a [u8]>,
    peek: bool,
) -> (Vec<Frame>, Option<CloseCode>) {
    let mut decoder = FrameDecoder::new(role);
    decoder.set_rsv1_allowed(rsv1);
    decoder.set_max_payload(max_payload);
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    // Bytes the decoder said it needs before it can progress, and bytes added since.
    let (mut need, mut added) = (0, 0);
    for piece in pieces {
        buf.extend_from_slice(piece);
        added += piece.len();
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(frame)) => {
                    assert!(added >= need, "a frame after {added} bytes; {need} were said to be missing");
                    assert!(frame.payload.len() <= 125 || !frame.opcode.is_control());
                    (need, added) = (0, 0);
                    out.push(frame);
                }
                Ok(None) => {
                    (need, added) = (decoder.missing(), 0);
                    assert!(need > 0);
                    if peek {
                        // Unmasking early must not change what the frame holds in the end.
                        let _ = decoder.unmask_arrived(&mut buf);
                    }
                    break;
                }
                Err(e) => return (out, Some(e.code())),
            }
        }
    }
    (out, None)
}

/// Everything the protocol did with `pieces`: events, the error's code, the final state, and the frames it
/// queued for the peer (decoded by the peer, which must manage without error).
#[derive(Debug, PartialEq, Eq)]
struct Session {
    events: Vec<Event>,
    error: Option<CloseCode>,
    state: State,
    sent: Vec<Frame>,
}

fn session<'a>(role: Role, deflate: bool, small: bool, pieces: impl IntoIterator<Item = &'a [u8]>) -> Session {
    let deflate = deflate.then(|| PerMessageDeflate::new(role, &DeflateParams::default(), 6));
    let mut proto = WebSocketProtocol::new(role, deflate);
    if small {
        proto.set_max_message_size(256);
    }
    let mut input = BytesMut::new();
    let mut output = BytesMut::new();
    let mut events = Vec::new();
    let mut error = None;
    for piece in pieces {
        input.extend_from_slice(piece);
        while error.is_none() {
            match proto.receive(&mut input) {
                Ok(Some(event)) => events.push(event),
                Ok(None) => break,
                Err(e) => {
                    assert_eq!(proto.state(), State::Closed);
                    error = Some(e.code());
                }
            }
        }
        output.extend_from_slice(&proto.take_output());
        if proto.state() == State::Closed {
            // Nothing is decoded after the connection closed.
            let before = input.len();
            assert!(matches!(proto.receive(&mut input), Ok(None)));
            assert_eq!(input.len(), before);
        }
    }
    let mut decoder = FrameDecoder::new(peer(role));
    decoder.set_rsv1_allowed(true);
    let mut sent = Vec::new();
    while let Some(frame) = decoder.decode(&mut output).expect("the peer decodes what we send") {
        sent.push(frame);
    }
    assert!(output.is_empty(), "a partial frame was queued");
    check_replies(&events, error, &sent, proto.max_message_size());
    Session { events, error, state: proto.state(), sent }
}

/// What the protocol must have answered: a pong echoing each ping, and at the end the close frame that echoes
/// the peer's or names the error; no message over the size limit is delivered.
fn check_replies(events: &[Event], error: Option<CloseCode>, sent: &[Frame], max: usize) {
    let pings: Vec<&[u8]> = events
        .iter()
        .filter_map(|e| match e {
            Event::Ping(payload) => Some(&payload[..]),
            _ => None,
        })
        .collect();
    let (close, pongs) = match sent.split_last() {
        Some((last, rest)) if last.opcode == OpCode::Close => (Some(last), rest),
        _ => (None, sent),
    };
    assert!(pongs.iter().all(|f| f.opcode == OpCode::Pong && f.fin && !f.rsv1), "{sent:?}");
    assert_eq!(pongs.iter().map(|f| &f.payload[..]).collect::<Vec<_>>(), pings, "pongs do not echo the pings");
    let close_code = close.map(|f| parse_close_payload(&f.payload).expect("a valid close frame").0);
    match (error, events.last()) {
        (Some(code), _) => assert_eq!(close_code, Some(Some(code)), "the error was not sent"),
        (None, Some(Event::Close { code, .. })) => assert_eq!(close_code, Some(*code), "the close was not echoed"),
        (None, _) => assert_eq!(close_code, None, "a close frame out of nowhere"),
    }
    for event in events {
        let size = match event {
            Event::Message(Message::Text(text)) => text.len(),
            Event::Message(Message::Binary(data)) => data.len(),
            _ => 0,
        };
        assert!(size <= max, "a message of {size} bytes passed a limit of {max}");
    }
}

fuzz_target!(|data: &[u8]| {
    let Some(split) = Split::new(data) else { return };
    let flags = split.flags();
    let role = if flags & 1 == 0 { Role::Server } else { Role::Client };
    let (rsv1, small, peek) = (flags & 2 != 0, flags & 4 != 0, flags & 8 != 0);
    let max_payload = if small { 256 } else { usize::MAX };

    let whole = frames(role, rsv1, max_payload, [split.stream], false);
    let cut = frames(role, rsv1, max_payload, split.pieces(), peek);
    assert_eq!(whole, cut, "frames depend on how the input was cut");

    let mut encoder = FrameEncoder::new(peer(role));
    for frame in &whole.0 {
        let mut wire = BytesMut::new();
        encoder.encode(&mut wire, frame.fin, frame.rsv1, frame.opcode, &frame.payload);
        let (again, error) = frames(role, rsv1, max_payload, [&wire[..]], false);
        assert_eq!((&again[..], error), (std::slice::from_ref(frame), None), "a re-encoded frame differs");
    }

    let whole = session(role, rsv1, small, [split.stream]);
    let cut = session(role, rsv1, small, split.pieces());
    assert_eq!(whole, cut, "the protocol depends on how the input was cut");

    let mut validator = Utf8Validator::new();
    let mut failed = false;
    for range in split.ranges() {
        let seen = &split.stream[..range.end];
        let hopeless = std::str::from_utf8(seen).is_err_and(|e| e.error_len().is_some());
        failed = failed || validator.feed(&split.stream[range]).is_err();
        assert_eq!(failed, hopeless, "validator and std disagree on {seen:?}");
        if failed {
            break;
        }
    }
    if !failed {
        assert_eq!(validator.finish().is_ok(), std::str::from_utf8(split.stream).is_ok());
    }
});
