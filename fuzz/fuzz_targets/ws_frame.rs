//! WebSocket frames and messages in both roles: the protocol never panics on any input, whatever the cuts, and
//! permessage-deflate round-trips and bounds what it inflates.
#![no_main]

use bytes::BytesMut;
use gale_web::websocket::deflate::{DeflateConfig, PerMessageDeflate};
use gale_web::websocket::frame::Role;
use gale_web::websocket::message::WebSocketProtocol;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, input)) = data.split_first() else { return };
    let role = if ctl & 1 == 0 { Role::Server } else { Role::Client };
    let at = usize::from(ctl >> 1) * input.len() / 128;
    let mut proto = WebSocketProtocol::new(role, None);
    proto.set_max_message_size(1 << 16);
    let mut buf = BytesMut::new();
    for piece in [&input[..at.min(input.len())], &input[at.min(input.len())..]] {
        buf.extend_from_slice(piece);
        loop {
            match proto.receive(&mut buf) {
                Ok(Some(_event)) => {}
                Ok(None) | Err(_) => break,
            }
        }
        let _ = proto.take_output();
    }

    // Deflate: compress → decompress is the identity; arbitrary input inflates within the limit or fails.
    let offer = DeflateConfig::default();
    if let Some(params) = offer.negotiate(["permessage-deflate"]) {
        let mut server = PerMessageDeflate::new(Role::Server, &params, 6);
        let mut client = PerMessageDeflate::new(Role::Client, &params, 6);
        let mut packed = Vec::new();
        server.compress(input, &mut packed).expect("compress");
        let mut back = Vec::new();
        client.decompress(&packed, true, &mut back, input.len() + 1).expect("decompress own output");
        assert_eq!(back, input);
        let mut out = Vec::new();
        if client.decompress(input, true, &mut out, 4096).is_ok() {
            assert!(out.len() <= 4096);
        }
    }
});
