//! WebSockets (RFC 6455) with permessage-deflate compression (RFC 7692): Tornado's `tornado.websocket`,
//! servers and clients.
//!
//! # Serving and connecting
//!
//! Implement [`WebSocketHandler`] and route to it with [`WebSocketRoute`] (or [`websocket`]):
//!
//! ```no_run
//! use gale_web::websocket::{Message, WebSocket, WebSocketHandler, websocket};
//! use gale_web::{Application, IOLoop};
//!
//! struct Echo;
//!
//! impl WebSocketHandler for Echo {
//!     async fn on_message(&mut self, ws: &WebSocket, message: Message) {
//!         let _ = ws.write_message(&message).await;
//!     }
//! }
//!
//! let app = Application::builder().route(r"/echo", websocket(|| Echo)).build()?;
//! let _server = app.listen(8888)?;
//! IOLoop::current().start()?;
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! Connect with [`websocket_connect`]; both ends send through a [`WebSocket`] handle. [`WebSocketRoute`]
//! says how a request becomes a connection (`prepare`, the origin check, handshake errors, `open`), and
//! [`WebSocket`] how a connection is closed and how slow readers are bounded.
//!
//! # The pieces
//!
//! The connection layer — [`WebSocketHandler`] and [`WebSocketRoute`], [`WebSocket`], [`WebSocketClient`] —
//! owns the stream and drives the protocol. Below it everything is pure protocol: bytes and headers in,
//! events and bytes out; nothing there reads a socket, starts a timer or calls a handler.
//!
//! | module | what it does |
//! | --- | --- |
//! | [`handshake`] | checks an upgrade request and builds the 101 response (server); builds the request and checks the response (client) |
//! | [`deflate`] | negotiates permessage-deflate and compresses/inflates messages, with a bound on inflated size |
//! | [`frame`] | decodes frames from a `BytesMut` (role-aware, zero-copy payloads) and encodes them, masking as a client |
//! | [`utf8`] | validates text incrementally, failing at the first invalid byte |
//! | [`message`] | [`WebSocketProtocol`]: assembles messages, answers pings and close frames, enforces the size limit |
//! | [`close`] | [`CloseCode`] and [`ProtocolError`] |
//!
//! A server connection goes: [`UpgradeRequest::parse`] the request (answering a
//! [`HandshakeError`](handshake::HandshakeError) with its status); pick a subprotocol among
//! [`UpgradeRequest::subprotocols`] and check the origin; negotiate compression with
//! [`DeflateConfig::negotiate`] over [`UpgradeRequest::extensions`]; write `101 Switching Protocols` with
//! [`UpgradeRequest::response_headers`]; then build a [`WebSocketProtocol`] (with a
//! [`PerMessageDeflate`] if compression was agreed) and loop: append read bytes to
//! an input `BytesMut`, call [`receive`](WebSocketProtocol::receive) until `Ok(None)`, dispatch the events,
//! and write [`take_output`](WebSocketProtocol::take_output). A client does the same with
//! [`ClientHandshake`].
//!
//! # Close codes
//!
//! What [`CloseCode::is_valid_on_wire`] accepts in a received close frame, and what this module sends:
//!
//! | code | name | on the wire | sent by this module when |
//! | --- | --- | --- | --- |
//! | 0–999 | — | invalid | — |
//! | 1000 | normal closure | valid | echoing the peer; `close` with a reason but no code |
//! | 1001 | going away | valid | — |
//! | 1002 | protocol error | valid | a framing or sequencing rule is broken, or a close frame is malformed or has an invalid code |
//! | 1003 | unsupported data | valid | — |
//! | 1004 | reserved | invalid | — |
//! | 1005 | no status received | invalid (local use only) | — |
//! | 1006 | abnormal closure | invalid (local use only) | — |
//! | 1007 | invalid payload data | valid | text or a close reason is not UTF-8, or compressed data does not inflate |
//! | 1008 | policy violation | valid | — |
//! | 1009 | message too big | valid | a frame or message (inflated) exceeds the limit |
//! | 1010 | mandatory extension | valid | — |
//! | 1011 | internal error | valid | — |
//! | 1012–1014 | service restart, try again later, bad gateway | valid | — |
//! | 1015 | TLS handshake failure | invalid (local use only) | — |
//! | 1016–2999 | unassigned | invalid | — |
//! | 3000–3999 | registered by libraries and frameworks | valid | — |
//! | 4000–4999 | private use by applications | valid | — |
//! | 5000+ | — | invalid | — |
//!
//! A received close frame with a valid code is answered with the same code; one with an invalid code is
//! answered with 1002.
//!
//! # The protocol alone
//!
//! ```
//! use bytes::BytesMut;
//! use gale_web::websocket::deflate::{DeflateConfig, PerMessageDeflate};
//! use gale_web::websocket::handshake::{ClientHandshake, UpgradeRequest};
//! use gale_web::websocket::{Event, Message, Role, WebSocketProtocol};
//!
//! // The handshake, both sides.
//! let client_hs = ClientHandshake::new(&["chat"], Some(DeflateConfig::default()));
//! let request = client_hs.request_headers();
//! let upgrade = UpgradeRequest::parse("GET", request.iter().map(|(n, v)| (*n, v.as_str()))).unwrap();
//! let config = DeflateConfig::default();
//! let agreed = config.negotiate(upgrade.extensions().iter().copied());
//! let response = upgrade.response_headers(Some("chat"), agreed.as_ref());
//! let accepted = client_hs.validate_response(101, response.iter().map(|(n, v)| (*n, v.as_str()))).unwrap();
//!
//! // The connection, both sides.
//! let level = config.compression_level;
//! let server_deflate = agreed.map(|p| PerMessageDeflate::new(Role::Server, &p, level));
//! let client_deflate = accepted.deflate.map(|p| PerMessageDeflate::new(Role::Client, &p, level));
//! let mut server = WebSocketProtocol::new(Role::Server, server_deflate);
//! let mut client = WebSocketProtocol::new(Role::Client, client_deflate);
//! assert!(server.is_compressed() && client.is_compressed());
//!
//! client.send_text("hello, compressed world").unwrap();
//! let mut input = BytesMut::from(&client.take_output()[..]);
//! let event = server.receive(&mut input).unwrap();
//! assert_eq!(event, Some(Event::Message(Message::Text("hello, compressed world".into()))));
//! ```

mod client;
pub mod close;
mod connection;
pub mod deflate;
pub mod frame;
mod handler;
pub mod handshake;
pub mod message;
pub mod utf8;

pub use client::{
    ConnectError, ConnectOptions, DEFAULT_CONNECT_TIMEOUT, WebSocketClient, websocket_connect, websocket_connect_with,
};
pub use close::{CloseCode, ProtocolError};
pub use connection::{
    CLOSE_TIMEOUT, DEFAULT_MAX_WRITE_BUFFER_SIZE, MessageRef, WebSocket, WebSocketError, WriteMessage,
};
pub use deflate::{DeflateConfig, DeflateParams, PerMessageDeflate};
pub use frame::{OpCode, Role};
pub use handler::{WebSocketHandler, WebSocketRoute, websocket};
pub use handshake::{ClientHandshake, UpgradeRequest};
pub use message::{Event, Message, SendError, State, WebSocketProtocol};
