//! The protocol state machine: frames in, events out, and the frames to send back.
//!
//! [`WebSocketProtocol`] sits between the connection's byte buffers and the handler. Feed received bytes to
//! [`receive`](WebSocketProtocol::receive), which assembles messages from frames and returns one [`Event`] at a
//! time; send with [`send_text`](WebSocketProtocol::send_text), [`send_binary`](WebSocketProtocol::send_binary),
//! [`ping`](WebSocketProtocol::ping) and [`close`](WebSocketProtocol::close); write out whatever
//! [`take_output`](WebSocketProtocol::take_output) returns. It does no I/O of its own.
//!
//! What it enforces on the way in, beyond the frame rules of [`frame`](crate::websocket::frame):
//!
//! - **Fragmentation**: a continuation frame needs a message in progress, and a new text or binary frame
//!   must wait until the previous message is finished (1002). Control frames may come between fragments.
//! - **Size**: a message larger than [`max_message_size`](WebSocketProtocol::max_message_size) fails with
//!   1009, as soon as a frame header announces the excess; a compressed message is measured after inflating,
//!   while it inflates.
//! - **UTF-8**: text is validated fragment by fragment, and within a large frame as its bytes arrive, so
//!   invalid text fails with 1007 at the first bad byte.
//! - **Control frames**: a ping is answered with a pong carrying the same payload (and reported); a pong is
//!   reported. A close frame's payload is empty or a valid code plus a UTF-8 reason (else 1002 or 1007).
//!
//! # The closing handshake
//!
//! When the peer's close frame arrives first, the reply (echoing its code) is queued at once and the state
//! becomes [`State::Closed`]: flush the output, then close the TCP connection (a server does so right away; a
//! client waits for the server to, with a timeout). When we close first, [`close`](WebSocketProtocol::close)
//! moves to [`State::Closing`]; messages still arriving are delivered until the peer's close frame, which
//! moves to `Closed` without a reply. On a [`ProtocolError`], the close frame it names is queued (unless one
//! was already sent) and the state becomes `Closed`. Nothing is decoded after `Closed`.

use std::fmt;
use std::io;

use bytes::{Bytes, BytesMut};

use crate::websocket::close::{CloseCode, ProtocolError};
use crate::websocket::deflate::PerMessageDeflate;
use crate::websocket::frame::{Frame, FrameDecoder, FrameEncoder, FrameHeader, MAX_CONTROL_PAYLOAD, OpCode, Role};
use crate::websocket::utf8::Utf8Validator;

/// The default limit on a received message, after decompression: 10 MiB, as in Tornado.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 10 * 1024 * 1024;

/// The longest close reason: a control frame's 125 bytes less the two-byte code.
pub const MAX_CLOSE_REASON: usize = MAX_CONTROL_PAYLOAD - 2;

const INVALID_TEXT: ProtocolError = ProtocolError::invalid_payload("invalid UTF-8 in text message");
const TOO_BIG: ProtocolError = ProtocolError::too_big("message exceeds the size limit");

/// A complete data message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// A text message, validated as UTF-8.
    Text(String),
    /// A binary message.
    Binary(Bytes),
}

/// What [`WebSocketProtocol::receive`] reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A complete message.
    Message(Message),
    /// A ping; the pong answering it is already queued (while the connection is open).
    Ping(Bytes),
    /// A pong.
    Pong(Bytes),
    /// The peer's close frame. If we had not sent one, the reply is queued. The state is now
    /// [`State::Closed`].
    Close {
        /// The status code, or `None` for an empty close frame.
        code: Option<CloseCode>,
        /// The reason, possibly empty.
        reason: String,
    },
}

/// Where the connection stands in the closing handshake.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum State {
    /// Messages flow both ways.
    Open,
    /// We sent a close frame and await the peer's; messages are still received but no longer sent.
    Closing,
    /// Both close frames were exchanged, or the connection was failed: only flushing the output remains.
    Closed,
}

/// Why a frame could not be sent.
#[derive(Debug)]
pub enum SendError {
    /// The connection is closing or closed: no more messages may be sent.
    Closed,
    /// A ping or pong payload over 125 bytes, or a close reason over 123.
    ControlPayloadTooLong,
    /// A close code that may not be sent (see [`CloseCode::is_valid_on_wire`]).
    InvalidCloseCode(CloseCode),
    /// The compressor failed.
    Compression(io::Error),
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::Closed => f.write_str("websocket is closing or closed"),
            SendError::ControlPayloadTooLong => f.write_str("control frame payload too long"),
            SendError::InvalidCloseCode(code) => write!(f, "close code {code} may not be sent"),
            SendError::Compression(e) => write!(f, "compression failed: {e}"),
        }
    }
}

impl std::error::Error for SendError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SendError::Compression(e) => Some(e),
            _ => None,
        }
    }
}

/// The kind of the data message being received.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Text,
    Binary,
}

/// The data message being received.
#[derive(Debug)]
enum Incoming {
    /// Between messages.
    Idle,
    /// A message whose first frame header has been seen.
    Message {
        kind: Kind,
        /// RSV1 was set on the first frame: every frame's payload is inflated.
        compressed: bool,
        /// The payload so far (inflated, if compressed); empty while a single-frame message arrives.
        data: Vec<u8>,
        utf8: Utf8Validator,
    },
}

/// One WebSocket connection's protocol state, for either role, without I/O.
///
/// # Examples
///
/// ```
/// use bytes::BytesMut;
/// use gale_web::websocket::{Event, Message, Role, WebSocketProtocol};
///
/// let mut client = WebSocketProtocol::new(Role::Client, None);
/// let mut server = WebSocketProtocol::new(Role::Server, None);
///
/// client.send_text("hello").unwrap();
/// let mut server_input = BytesMut::from(&client.take_output()[..]);
/// let event = server.receive(&mut server_input).unwrap();
/// assert_eq!(event, Some(Event::Message(Message::Text("hello".into()))));
/// ```
#[derive(Debug)]
pub struct WebSocketProtocol {
    role: Role,
    decoder: FrameDecoder,
    encoder: FrameEncoder,
    deflate: Option<PerMessageDeflate>,
    max_message_size: usize,
    state: State,
    incoming: Incoming,
    /// How many bytes of the pending frame's payload the UTF-8 validator has already seen.
    frame_validated: usize,
    output: BytesMut,
    /// Reused buffer for compressed payloads.
    scratch: Vec<u8>,
    /// The peer's close frame, once received.
    peer_close: Option<(Option<CloseCode>, String)>,
}

impl WebSocketProtocol {
    /// The protocol for our `role`, with permessage-deflate if it was negotiated, and the default message
    /// size limit.
    pub fn new(role: Role, deflate: Option<PerMessageDeflate>) -> Self {
        let mut decoder = FrameDecoder::new(role);
        decoder.set_rsv1_allowed(deflate.is_some());
        let mut protocol = WebSocketProtocol {
            role,
            decoder,
            encoder: FrameEncoder::new(role),
            deflate,
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            state: State::Open,
            incoming: Incoming::Idle,
            frame_validated: 0,
            output: BytesMut::new(),
            scratch: Vec::new(),
            peer_close: None,
        };
        protocol.set_max_message_size(DEFAULT_MAX_MESSAGE_SIZE);
        protocol
    }

    /// Sets the largest message accepted (after decompression); larger ones fail the connection with 1009.
    pub fn set_max_message_size(&mut self, max: usize) {
        self.max_message_size = max;
        // A compressed frame may be a little larger than what it inflates to (stored blocks cost 5 bytes per
        // 64 KiB), so its raw payload gets some slack; the inflated size is what is held to `max`.
        let frame_limit = if self.deflate.is_some() { max.saturating_add(max / 1024 + 1024) } else { max };
        self.decoder.set_max_payload(frame_limit);
    }

    /// The largest message accepted.
    pub fn max_message_size(&self) -> usize {
        self.max_message_size
    }

    /// Our role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// Where the closing handshake stands.
    pub fn state(&self) -> State {
        self.state
    }

    /// Whether permessage-deflate is in use.
    pub fn is_compressed(&self) -> bool {
        self.deflate.is_some()
    }

    /// The code of the peer's close frame, once received (`None` before, and for an empty close frame).
    pub fn close_code(&self) -> Option<CloseCode> {
        self.peer_close.as_ref().and_then(|(code, _)| *code)
    }

    /// The reason in the peer's close frame, once received.
    pub fn close_reason(&self) -> Option<&str> {
        self.peer_close.as_ref().map(|(_, reason)| reason.as_str())
    }

    /// Decodes frames from the front of `input` until one yields an event or more bytes are needed
    /// (`Ok(None)`). Consumed bytes are removed from `input`. Pongs and close replies go to the output.
    /// Once the state is [`State::Closed`], returns `Ok(None)` and leaves `input` alone.
    ///
    /// # Errors
    ///
    /// A [`ProtocolError`] when the peer broke the protocol. The close frame it names has then been queued
    /// (unless we had already sent one) and the state is `Closed`: flush the output and close the connection.
    pub fn receive(&mut self, input: &mut BytesMut) -> Result<Option<Event>, ProtocolError> {
        if self.state == State::Closed {
            return Ok(None);
        }
        self.receive_frames(input).inspect_err(|error| self.fail(error))
    }

    fn receive_frames(&mut self, input: &mut BytesMut) -> Result<Option<Event>, ProtocolError> {
        loop {
            let incoming = &mut self.incoming;
            let max = self.max_message_size;
            let Some(frame) = self.decoder.decode_with(input, |header| on_header(incoming, max, header))? else {
                self.validate_arrived_text(input)?;
                return Ok(None);
            };
            if let Some(event) = self.on_frame(frame)? {
                return Ok(Some(event));
            }
        }
    }

    /// While a text frame's payload is arriving, validates the bytes that came so far (fail fast on 1007).
    fn validate_arrived_text(&mut self, input: &mut BytesMut) -> Result<(), ProtocolError> {
        let Some(header) = self.decoder.pending_header() else {
            return Ok(());
        };
        if header.opcode.is_control() {
            return Ok(());
        }
        if let Incoming::Message { kind: Kind::Text, compressed: false, utf8, .. } = &mut self.incoming {
            let arrived = self.decoder.unmask_arrived(input);
            utf8.feed(arrived)?;
            self.frame_validated += arrived.len();
        }
        Ok(())
    }

    fn on_frame(&mut self, frame: Frame) -> Result<Option<Event>, ProtocolError> {
        match frame.opcode {
            OpCode::Ping => {
                if self.state == State::Open {
                    self.encoder.encode(&mut self.output, true, false, OpCode::Pong, &frame.payload);
                }
                Ok(Some(Event::Ping(frame.payload)))
            }
            OpCode::Pong => Ok(Some(Event::Pong(frame.payload))),
            OpCode::Close => self.on_close(&frame.payload).map(Some),
            OpCode::Text | OpCode::Binary | OpCode::Continuation => self.on_data(frame),
        }
    }

    fn on_data(&mut self, frame: Frame) -> Result<Option<Event>, ProtocolError> {
        let validated = std::mem::take(&mut self.frame_validated);
        let Incoming::Message { kind, compressed, data, utf8 } = &mut self.incoming else {
            // `on_header` opened the message when it saw this frame's header.
            return Err(ProtocolError::protocol("continuation frame with no message in progress"));
        };
        let kind = *kind;
        if *compressed {
            let deflate = self.deflate.as_mut().ok_or(ProtocolError::protocol("compressed frame without deflate"))?;
            let before = data.len();
            deflate.decompress(&frame.payload, frame.fin, data, self.max_message_size)?;
            if kind == Kind::Text {
                utf8.feed(&data[before..])?;
            }
        } else if frame.fin && frame.opcode != OpCode::Continuation {
            // A single-frame message: no assembly.
            self.incoming = Incoming::Idle;
            let message = match kind {
                Kind::Binary => Message::Binary(frame.payload),
                Kind::Text => Message::Text(std::str::from_utf8(&frame.payload).map_err(|_| INVALID_TEXT)?.to_owned()),
            };
            return Ok(Some(Event::Message(message)));
        } else {
            if kind == Kind::Text {
                utf8.feed(&frame.payload[validated..])?;
            }
            data.extend_from_slice(&frame.payload);
        }
        if !frame.fin {
            return Ok(None);
        }
        let Incoming::Message { data, mut utf8, .. } = std::mem::replace(&mut self.incoming, Incoming::Idle) else {
            unreachable!("matched above");
        };
        let message = match kind {
            Kind::Binary => Message::Binary(Bytes::from(data)),
            Kind::Text => {
                utf8.finish()?;
                Message::Text(String::from_utf8(data).map_err(|_| INVALID_TEXT)?)
            }
        };
        Ok(Some(Event::Message(message)))
    }

    fn on_close(&mut self, payload: &[u8]) -> Result<Event, ProtocolError> {
        let (code, reason) = parse_close_payload(payload)?;
        if self.state == State::Open {
            // Echo the peer's code (RFC 6455 §5.5.1); an empty close gets an empty reply.
            let reply = close_payload(code, "");
            self.encoder.encode(&mut self.output, true, false, OpCode::Close, &reply);
        }
        self.state = State::Closed;
        self.incoming = Incoming::Idle;
        self.peer_close = Some((code, reason.to_owned()));
        Ok(Event::Close { code, reason: reason.to_owned() })
    }

    /// Fails the connection: queues the error's close frame unless a close was already sent.
    fn fail(&mut self, error: &ProtocolError) {
        log::debug!("failing websocket connection: {error}");
        if self.state == State::Open {
            let payload = close_payload(Some(error.code()), error.reason());
            self.encoder.encode(&mut self.output, true, false, OpCode::Close, &payload);
        }
        self.state = State::Closed;
        self.incoming = Incoming::Idle;
        self.frame_validated = 0;
    }

    /// Queues a text message (compressed when permessage-deflate is in use).
    ///
    /// # Errors
    ///
    /// [`SendError::Closed`] unless the state is [`State::Open`]; [`SendError::Compression`] if zlib fails.
    pub fn send_text(&mut self, text: &str) -> Result<(), SendError> {
        self.send_data(OpCode::Text, text.as_bytes())
    }

    /// Queues a binary message (compressed when permessage-deflate is in use).
    ///
    /// # Errors
    ///
    /// As for [`send_text`](Self::send_text).
    pub fn send_binary(&mut self, data: &[u8]) -> Result<(), SendError> {
        self.send_data(OpCode::Binary, data)
    }

    fn send_data(&mut self, opcode: OpCode, payload: &[u8]) -> Result<(), SendError> {
        self.ensure_open()?;
        match self.deflate.as_mut() {
            Some(deflate) => {
                self.scratch.clear();
                deflate.compress(payload, &mut self.scratch).map_err(SendError::Compression)?;
                self.encoder.encode(&mut self.output, true, true, opcode, &self.scratch);
            }
            None => self.encoder.encode(&mut self.output, true, false, opcode, payload),
        }
        Ok(())
    }

    /// Queues a ping.
    ///
    /// # Errors
    ///
    /// [`SendError::ControlPayloadTooLong`] over 125 bytes; [`SendError::Closed`] unless open.
    pub fn ping(&mut self, payload: &[u8]) -> Result<(), SendError> {
        self.send_control(OpCode::Ping, payload)
    }

    /// Queues an unsolicited pong (pings are answered automatically).
    ///
    /// # Errors
    ///
    /// As for [`ping`](Self::ping).
    pub fn pong(&mut self, payload: &[u8]) -> Result<(), SendError> {
        self.send_control(OpCode::Pong, payload)
    }

    fn send_control(&mut self, opcode: OpCode, payload: &[u8]) -> Result<(), SendError> {
        if payload.len() > MAX_CONTROL_PAYLOAD {
            return Err(SendError::ControlPayloadTooLong);
        }
        self.ensure_open()?;
        self.encoder.encode(&mut self.output, true, false, opcode, payload);
        Ok(())
    }

    /// Starts the closing handshake: queues a close frame and moves to [`State::Closing`]. A reason without
    /// a code is sent with [`CloseCode::NORMAL`], as Tornado does.
    ///
    /// # Errors
    ///
    /// [`SendError::InvalidCloseCode`] for a code that may not be sent, [`SendError::ControlPayloadTooLong`]
    /// for a reason over 123 bytes, [`SendError::Closed`] if a close frame was already sent or received.
    pub fn close(&mut self, code: Option<CloseCode>, reason: &str) -> Result<(), SendError> {
        let code = match code {
            None if !reason.is_empty() => Some(CloseCode::NORMAL),
            code => code,
        };
        if let Some(code) = code.filter(|code| !code.is_valid_on_wire()) {
            return Err(SendError::InvalidCloseCode(code));
        }
        if reason.len() > MAX_CLOSE_REASON {
            return Err(SendError::ControlPayloadTooLong);
        }
        self.ensure_open()?;
        let payload = close_payload(code, reason);
        self.encoder.encode(&mut self.output, true, false, OpCode::Close, &payload);
        self.state = State::Closing;
        Ok(())
    }

    fn ensure_open(&self) -> Result<(), SendError> {
        if self.state == State::Open { Ok(()) } else { Err(SendError::Closed) }
    }

    /// Whether encoded frames are waiting to be written.
    pub fn has_output(&self) -> bool {
        !self.output.is_empty()
    }

    /// The encoded frames waiting to be written.
    pub fn output(&self) -> &[u8] {
        &self.output
    }

    /// Takes the encoded frames waiting to be written, leaving the output empty.
    pub fn take_output(&mut self) -> Bytes {
        self.output.split().freeze()
    }
}

/// Header-time checks for data frames, run by the decoder before any payload is awaited; a text or binary
/// frame opens the message here, so its payload can be validated while it arrives.
fn on_header(incoming: &mut Incoming, max: usize, header: &FrameHeader) -> Result<(), ProtocolError> {
    let kind = match header.opcode {
        OpCode::Continuation => {
            return match incoming {
                Incoming::Idle => Err(ProtocolError::protocol("continuation frame with no message in progress")),
                Incoming::Message { compressed: false, data, .. }
                    if data.len() as u64 + header.payload_len > max as u64 =>
                {
                    Err(TOO_BIG)
                }
                Incoming::Message { .. } => Ok(()),
            };
        }
        OpCode::Text => Kind::Text,
        OpCode::Binary => Kind::Binary,
        OpCode::Close | OpCode::Ping | OpCode::Pong => return Ok(()),
    };
    if let Incoming::Message { .. } = incoming {
        return Err(ProtocolError::protocol("new data frame while a fragmented message is in progress"));
    }
    if !header.rsv1 && header.payload_len > max as u64 {
        return Err(TOO_BIG);
    }
    *incoming = Incoming::Message { kind, compressed: header.rsv1, data: Vec::new(), utf8: Utf8Validator::new() };
    Ok(())
}

/// Parses a close frame's payload (RFC 6455 §5.5.1): empty, or a two-byte code that may be sent followed by
/// a UTF-8 reason.
///
/// # Errors
///
/// 1002 for a one-byte payload or a code that may not be sent; 1007 for a reason that is not UTF-8.
///
/// # Examples
///
/// ```
/// use gale_web::websocket::{CloseCode, message::parse_close_payload};
///
/// assert_eq!(parse_close_payload(b"\x03\xe8bye"), Ok((Some(CloseCode::NORMAL), "bye")));
/// assert_eq!(parse_close_payload(b""), Ok((None, "")));
/// assert_eq!(parse_close_payload(b"\x03\xed").unwrap_err().code(), CloseCode::PROTOCOL_ERROR); // 1005
/// ```
pub fn parse_close_payload(payload: &[u8]) -> Result<(Option<CloseCode>, &str), ProtocolError> {
    match payload {
        [] => Ok((None, "")),
        [_] => Err(ProtocolError::protocol("close frame payload of one byte")),
        [hi, lo, reason @ ..] => {
            let code = CloseCode(u16::from_be_bytes([*hi, *lo]));
            if !code.is_valid_on_wire() {
                return Err(ProtocolError::protocol("invalid close code"));
            }
            let reason = std::str::from_utf8(reason)
                .map_err(|_| ProtocolError::invalid_payload("invalid UTF-8 in close reason"))?;
            Ok((Some(code), reason))
        }
    }
}

/// A close frame's payload: the code in network order then the reason; empty without a code.
fn close_payload(code: Option<CloseCode>, reason: &str) -> Vec<u8> {
    let Some(code) = code else {
        return Vec::new();
    };
    let mut payload = Vec::with_capacity(2 + reason.len());
    payload.extend_from_slice(&code.0.to_be_bytes());
    payload.extend_from_slice(reason.as_bytes());
    payload
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::websocket::deflate::DeflateParams;
    use crate::websocket::frame::apply_mask;

    fn server() -> WebSocketProtocol {
        WebSocketProtocol::new(Role::Server, None)
    }

    fn deflate_pair(agreed: DeflateParams) -> (WebSocketProtocol, WebSocketProtocol) {
        (
            WebSocketProtocol::new(Role::Server, Some(PerMessageDeflate::new(Role::Server, &agreed, 6))),
            WebSocketProtocol::new(Role::Client, Some(PerMessageDeflate::new(Role::Client, &agreed, 6))),
        )
    }

    /// A client frame built by hand (masked), for sequences `FrameEncoder` users would not produce.
    fn client_frame(fin: bool, rsv1: bool, opcode: OpCode, payload: &[u8]) -> Vec<u8> {
        let mut out = BytesMut::new();
        FrameEncoder::new(Role::Client).encode(&mut out, fin, rsv1, opcode, payload);
        out.to_vec()
    }

    fn frames(parts: &[Vec<u8>]) -> BytesMut {
        BytesMut::from(&parts.concat()[..])
    }

    /// Runs `receive` until it needs more input, collecting events (and the error, if any).
    fn drain(protocol: &mut WebSocketProtocol, input: &mut BytesMut) -> (Vec<Event>, Option<ProtocolError>) {
        let mut events = Vec::new();
        loop {
            match protocol.receive(input) {
                Ok(Some(event)) => events.push(event),
                Ok(None) => return (events, None),
                Err(e) => return (events, Some(e)),
            }
        }
    }

    /// Decodes the frames a server queued (unmasked), as (opcode, payload).
    fn sent_by_server(protocol: &mut WebSocketProtocol) -> Vec<(OpCode, Vec<u8>)> {
        let mut output = BytesMut::from(&protocol.take_output()[..]);
        let mut decoder = FrameDecoder::new(Role::Client);
        decoder.set_rsv1_allowed(true);
        let mut out = Vec::new();
        while let Some(frame) = decoder.decode(&mut output).unwrap() {
            out.push((frame.opcode, frame.payload.to_vec()));
        }
        assert!(output.is_empty());
        out
    }

    fn text(s: &str) -> Event {
        Event::Message(Message::Text(s.to_owned()))
    }

    fn error_of(parts: &[Vec<u8>]) -> (ProtocolError, Vec<(OpCode, Vec<u8>)>) {
        let mut s = server();
        let (_, err) = drain(&mut s, &mut frames(parts));
        let err = err.expect("expected a protocol error");
        assert_eq!(s.state(), State::Closed);
        (err, sent_by_server(&mut s))
    }

    fn close_frame_for(err: ProtocolError) -> (OpCode, Vec<u8>) {
        (OpCode::Close, close_payload(Some(err.code()), err.reason()))
    }

    #[test]
    fn single_frame_messages_are_delivered() {
        let mut s = server();
        let mut input = frames(&[
            client_frame(true, false, OpCode::Text, "héllo".as_bytes()),
            client_frame(true, false, OpCode::Binary, &[0, 1, 2]),
            client_frame(true, false, OpCode::Text, b""),
        ]);
        let (events, err) = drain(&mut s, &mut input);
        assert_eq!(err, None);
        assert_eq!(
            events,
            vec![text("héllo"), Event::Message(Message::Binary(Bytes::from_static(&[0, 1, 2]))), text("")]
        );
        assert!(!s.has_output());
    }

    #[test]
    fn fragmented_messages_assemble_around_interleaved_control_frames() {
        let mut s = server();
        let mut input = frames(&[
            client_frame(false, false, OpCode::Text, b"frag"),
            client_frame(true, false, OpCode::Ping, b"are you there"),
            client_frame(false, false, OpCode::Continuation, b"men"),
            client_frame(true, false, OpCode::Pong, b"unsolicited"),
            client_frame(true, false, OpCode::Continuation, b"ted"),
            client_frame(false, false, OpCode::Binary, &[1]),
            client_frame(true, false, OpCode::Continuation, &[2]),
        ]);
        let (events, err) = drain(&mut s, &mut input);
        assert_eq!(err, None);
        assert_eq!(
            events,
            vec![
                Event::Ping(Bytes::from_static(b"are you there")),
                Event::Pong(Bytes::from_static(b"unsolicited")),
                text("fragmented"),
                Event::Message(Message::Binary(Bytes::from_static(&[1, 2]))),
            ]
        );
        assert_eq!(sent_by_server(&mut s), vec![(OpCode::Pong, b"are you there".to_vec())]);
    }

    #[test]
    fn every_split_of_the_input_gives_the_same_events() {
        let wire = [
            client_frame(false, false, OpCode::Text, "κόσ".as_bytes()),
            client_frame(true, false, OpCode::Ping, b"p"),
            client_frame(true, false, OpCode::Continuation, "με".as_bytes()),
            client_frame(true, false, OpCode::Binary, &[9; 300]),
        ]
        .concat();
        let expected = vec![
            Event::Ping(Bytes::from_static(b"p")),
            text("κόσμε"),
            Event::Message(Message::Binary(Bytes::from(vec![9; 300]))),
        ];
        for split in 0..=wire.len() {
            let mut s = server();
            let mut input = BytesMut::from(&wire[..split]);
            let (mut events, err) = drain(&mut s, &mut input);
            assert_eq!(err, None);
            input.extend_from_slice(&wire[split..]);
            let (more, err) = drain(&mut s, &mut input);
            assert_eq!(err, None);
            events.extend(more);
            assert_eq!(events, expected, "split at {split}");
        }
    }

    #[test]
    fn continuation_without_a_message_is_a_protocol_error() {
        let (err, sent) = error_of(&[client_frame(true, false, OpCode::Continuation, b"x")]);
        assert_eq!(err.code(), CloseCode::PROTOCOL_ERROR);
        assert_eq!(sent, vec![close_frame_for(err)]);
    }

    #[test]
    fn a_new_message_inside_a_fragmented_one_is_a_protocol_error() {
        for opcode in [OpCode::Text, OpCode::Binary] {
            let (err, _) =
                error_of(&[client_frame(false, false, OpCode::Text, b"a"), client_frame(true, false, opcode, b"b")]);
            assert_eq!(err.reason(), "new data frame while a fragmented message is in progress");
        }
    }

    #[test]
    fn the_client_role_masks_pongs_and_accepts_unmasked_frames() {
        let mut client = WebSocketProtocol::new(Role::Client, None);
        let mut ping = BytesMut::new();
        FrameEncoder::new(Role::Server).encode(&mut ping, true, false, OpCode::Ping, b"hi");
        assert_eq!(client.receive(&mut ping).unwrap(), Some(Event::Ping(Bytes::from_static(b"hi"))));
        let pong = client.take_output();
        assert_eq!(&pong[..2], &[0x8A, 0x82], "a masked pong of two bytes");
        let mut payload = pong[6..].to_vec();
        apply_mask(&mut payload, pong[2..6].try_into().unwrap(), 0);
        assert_eq!(payload, b"hi");
    }

    #[test]
    fn close_frames_are_echoed_and_end_the_connection() {
        for (payload, code, reason, reply) in [
            (&b""[..], None, "", &b""[..]),
            (b"\x03\xe8", Some(CloseCode::NORMAL), "", b"\x03\xe8"),
            (b"\x03\xe9going", Some(CloseCode::GOING_AWAY), "going", b"\x03\xe9"),
            (b"\x0b\xb8app", Some(CloseCode(3000)), "app", b"\x0b\xb8"),
            (b"\x13\x87", Some(CloseCode(4999)), "", b"\x13\x87"),
        ] {
            let mut s = server();
            let mut input = frames(&[
                client_frame(true, false, OpCode::Close, payload),
                client_frame(true, false, OpCode::Text, b"ignored after close"),
            ]);
            let (events, err) = drain(&mut s, &mut input);
            assert_eq!(err, None);
            assert_eq!(events, vec![Event::Close { code, reason: reason.to_owned() }]);
            assert_eq!(s.state(), State::Closed);
            assert_eq!((s.close_code(), s.close_reason()), (code, Some(reason)));
            assert_eq!(sent_by_server(&mut s), vec![(OpCode::Close, reply.to_vec())]);
            assert!(s.send_text("late").is_err());
        }
    }

    #[test]
    fn invalid_close_codes_are_answered_with_1002() {
        for code in [0u16, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535] {
            let (err, sent) = error_of(&[client_frame(true, false, OpCode::Close, &code.to_be_bytes())]);
            assert_eq!(err.code(), CloseCode::PROTOCOL_ERROR, "code {code}");
            assert_eq!(sent, vec![close_frame_for(err)]);
        }
    }

    #[test]
    fn malformed_close_payloads_fail() {
        let (err, _) = error_of(&[client_frame(true, false, OpCode::Close, b"\x03")]);
        assert_eq!(err.code(), CloseCode::PROTOCOL_ERROR);
        let (err, sent) = error_of(&[client_frame(
            true,
            false,
            OpCode::Close,
            b"\x03\xe8\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80",
        )]);
        assert_eq!(err.code(), CloseCode::INVALID_PAYLOAD);
        assert_eq!(sent, vec![close_frame_for(err)]);
    }

    #[test]
    fn closing_first_waits_for_the_peer_and_does_not_reply() {
        let mut s = server();
        s.close(Some(CloseCode::GOING_AWAY), "bye").unwrap();
        assert_eq!(s.state(), State::Closing);
        assert_eq!(sent_by_server(&mut s), vec![(OpCode::Close, b"\x03\xe9bye".to_vec())]);
        assert!(matches!(s.send_text("no"), Err(SendError::Closed)));
        assert!(matches!(s.ping(b""), Err(SendError::Closed)));
        assert!(matches!(s.close(None, ""), Err(SendError::Closed)));
        let mut input = frames(&[
            client_frame(true, false, OpCode::Text, b"in flight"),
            client_frame(true, false, OpCode::Ping, b"no pong now"),
            client_frame(true, false, OpCode::Close, b"\x03\xe9"),
        ]);
        let (events, err) = drain(&mut s, &mut input);
        assert_eq!(err, None);
        assert_eq!(
            events,
            vec![
                text("in flight"),
                Event::Ping(Bytes::from_static(b"no pong now")),
                Event::Close { code: Some(CloseCode::GOING_AWAY), reason: String::new() }
            ]
        );
        assert_eq!(s.state(), State::Closed);
        assert!(!s.has_output(), "neither a pong nor a second close frame after ours");
    }

    #[test]
    fn a_protocol_error_after_our_close_sends_nothing_more() {
        let mut s = server();
        s.close(None, "").unwrap();
        s.take_output();
        let (_, err) = drain(&mut s, &mut frames(&[client_frame(true, false, OpCode::Continuation, b"x")]));
        assert!(err.is_some());
        assert_eq!(s.state(), State::Closed);
        assert!(!s.has_output());
    }

    #[test]
    fn close_arguments_are_checked() {
        let mut s = server();
        assert!(matches!(s.close(Some(CloseCode::NO_STATUS), ""), Err(SendError::InvalidCloseCode(_))));
        assert!(matches!(s.close(Some(CloseCode(2000)), ""), Err(SendError::InvalidCloseCode(_))));
        assert!(matches!(s.close(None, &"r".repeat(124)), Err(SendError::ControlPayloadTooLong)));
        assert!(matches!(s.ping(&[0; 126]), Err(SendError::ControlPayloadTooLong)));
        assert_eq!(s.state(), State::Open);
        s.close(None, "reason only").unwrap();
        assert_eq!(sent_by_server(&mut s), vec![(OpCode::Close, b"\x03\xe8reason only".to_vec())]);
    }

    #[test]
    fn oversized_messages_fail_with_1009_before_their_payload_arrives() {
        let mut s = server();
        s.set_max_message_size(100);
        let header_only = client_frame(true, false, OpCode::Binary, &[0; 101])[..8].to_vec();
        let (_, err) = drain(&mut s, &mut BytesMut::from(&header_only[..]));
        assert_eq!(err.map(|e| e.code()), Some(CloseCode::MESSAGE_TOO_BIG));

        // Fragments are summed: 60 + 40 fits, one more byte does not.
        let mut s = server();
        s.set_max_message_size(100);
        let mut input = frames(&[
            client_frame(false, false, OpCode::Text, &[b'a'; 60]),
            client_frame(true, false, OpCode::Continuation, &[b'b'; 40]),
            client_frame(false, false, OpCode::Text, &[b'a'; 60]),
        ]);
        let (events, err) = drain(&mut s, &mut input);
        assert_eq!((events.len(), err), (1, None));
        let next = client_frame(true, false, OpCode::Continuation, &[b'b'; 41]);
        let (_, err) = drain(&mut s, &mut BytesMut::from(&next[..8]));
        let err = err.expect("over the limit");
        assert_eq!(err.code(), CloseCode::MESSAGE_TOO_BIG);
        assert_eq!(sent_by_server(&mut s), vec![close_frame_for(err)]);
    }

    #[test]
    fn invalid_text_fails_with_1007() {
        let (err, _) = error_of(&[client_frame(true, false, OpCode::Text, b"\xff")]);
        assert_eq!(err.code(), CloseCode::INVALID_PAYLOAD);
        // A message cut inside a character.
        let (err, _) = error_of(&[
            client_frame(false, false, OpCode::Text, b"ok"),
            client_frame(true, false, OpCode::Continuation, b"\xe2\x82"),
        ]);
        assert_eq!(err.code(), CloseCode::INVALID_PAYLOAD);
        // A character split across fragments is fine.
        let mut s = server();
        let (events, err) = drain(
            &mut s,
            &mut frames(&[
                client_frame(false, false, OpCode::Text, b"\xe2"),
                client_frame(false, false, OpCode::Continuation, b"\x82"),
                client_frame(true, false, OpCode::Continuation, b"\xac"),
            ]),
        );
        assert_eq!((events, err), (vec![text("€")], None));
    }

    #[test]
    fn invalid_text_fails_at_the_fragment_that_carries_it() {
        // Autobahn 6.4.1: the bad fragment fails the connection before the message's last frame arrives.
        let mut s = server();
        let mut input = frames(&[
            client_frame(false, false, OpCode::Text, "κόσμε".as_bytes()),
            client_frame(false, false, OpCode::Continuation, b"\xf4\x90\x80\x80"),
        ]);
        let (events, err) = drain(&mut s, &mut input);
        assert!(events.is_empty());
        assert_eq!(err.map(|e| e.code()), Some(CloseCode::INVALID_PAYLOAD));
    }

    #[test]
    fn invalid_text_fails_while_the_frame_is_still_arriving() {
        // Autobahn 6.4.3: one frame, delivered in chops; the chop with the bad bytes fails it.
        let payload = ["κόσμε".as_bytes(), b"\xf4\x90\x80\x80", b"edited"].concat();
        let wire = client_frame(true, false, OpCode::Text, &payload);
        let header = wire.len() - payload.len();
        let mut s = server();
        let mut input = BytesMut::from(&wire[..header + 11]);
        assert_eq!(s.receive(&mut input), Ok(None), "the first chop is valid so far");
        input.extend_from_slice(&wire[header + 11..header + 13]);
        assert_eq!(s.receive(&mut input).unwrap_err().code(), CloseCode::INVALID_PAYLOAD);
        // The same frame, valid, delivered in the same chops, is accepted.
        let payload = "κόσμεκόσμε".as_bytes();
        let wire = client_frame(true, false, OpCode::Text, payload);
        let mut s = server();
        let mut input = BytesMut::from(&wire[..header + 11]);
        assert_eq!(s.receive(&mut input), Ok(None));
        input.extend_from_slice(&wire[header + 11..]);
        assert_eq!(s.receive(&mut input), Ok(Some(text("κόσμεκόσμε"))));
    }

    #[test]
    fn rsv1_without_negotiation_is_a_protocol_error() {
        let (err, _) = error_of(&[client_frame(true, true, OpCode::Text, b"x")]);
        assert_eq!(err.code(), CloseCode::PROTOCOL_ERROR);
    }

    #[test]
    fn messages_round_trip_between_roles_with_and_without_compression() {
        let messages = [
            Message::Text("hello".into()),
            Message::Binary(Bytes::from(vec![7; 70_000])),
            Message::Text(String::new()),
            Message::Text("€".repeat(5000)),
            Message::Binary(Bytes::new()),
        ];
        let agreed = [
            None,
            Some(DeflateParams::default()),
            Some(DeflateParams {
                server_no_context_takeover: true,
                client_no_context_takeover: true,
                server_max_window_bits: Some(9),
                client_max_window_bits: Some(8),
            }),
        ];
        for params in agreed {
            let (mut server, mut client) = match params {
                Some(p) => deflate_pair(p),
                None => (server(), WebSocketProtocol::new(Role::Client, None)),
            };
            let exchange = |sender: &mut WebSocketProtocol, receiver: &mut WebSocketProtocol| {
                for message in &messages {
                    match message {
                        Message::Text(t) => sender.send_text(t).unwrap(),
                        Message::Binary(b) => sender.send_binary(b).unwrap(),
                    }
                }
                let mut wire = BytesMut::from(&sender.take_output()[..]);
                let (events, err) = drain(receiver, &mut wire);
                assert_eq!(err, None);
                let expected: Vec<Event> = messages.iter().cloned().map(Event::Message).collect();
                assert_eq!(events, expected, "params {params:?}");
            };
            exchange(&mut client, &mut server);
            exchange(&mut server, &mut client);
        }
    }

    #[test]
    fn compressed_and_plain_messages_mix_and_compressed_ones_may_be_fragmented() {
        let agreed = DeflateParams::default();
        let (mut s, _) = deflate_pair(agreed);
        let mut deflater = PerMessageDeflate::new(Role::Client, &agreed, 6);
        let body = "a fairly repetitive text, a fairly repetitive text, a fairly repetitive text".repeat(20);
        let mut compressed = Vec::new();
        deflater.compress(body.as_bytes(), &mut compressed).unwrap();
        let (a, rest) = compressed.split_at(10);
        let (b, c) = rest.split_at(rest.len() / 2);
        let mut again = Vec::new();
        deflater.compress(body.as_bytes(), &mut again).unwrap();
        let mut input = frames(&[
            client_frame(false, true, OpCode::Text, a),
            client_frame(false, false, OpCode::Continuation, b),
            client_frame(true, false, OpCode::Ping, b"between"),
            client_frame(true, false, OpCode::Continuation, c),
            client_frame(true, false, OpCode::Text, b"plain"),
            client_frame(true, true, OpCode::Binary, &again),
        ]);
        let (events, err) = drain(&mut s, &mut input);
        assert_eq!(err, None);
        assert_eq!(
            events,
            vec![
                Event::Ping(Bytes::from_static(b"between")),
                text(&body),
                text("plain"),
                Event::Message(Message::Binary(Bytes::from(body.clone().into_bytes()))),
            ]
        );
    }

    #[test]
    fn compressed_messages_are_limited_after_inflating() {
        let agreed = DeflateParams::default();
        let (mut s, mut c) = deflate_pair(agreed);
        s.set_max_message_size(64 * 1024);
        c.send_binary(&vec![0; 64 * 1024]).unwrap();
        c.send_binary(&vec![0; 64 * 1024 + 1]).unwrap();
        let wire = c.take_output();
        assert!(wire.len() < 1024, "zeros compress well");
        let (events, err) = drain(&mut s, &mut BytesMut::from(&wire[..]));
        assert_eq!(events.len(), 1);
        let err = err.expect("the second message inflates past the limit");
        assert_eq!(err.code(), CloseCode::MESSAGE_TOO_BIG);
        assert_eq!(sent_by_server(&mut s), vec![close_frame_for(err)]);
    }

    #[test]
    fn compressed_text_is_validated_after_inflating() {
        let agreed = DeflateParams::default();
        let (mut s, _) = deflate_pair(agreed);
        let mut deflater = PerMessageDeflate::new(Role::Client, &agreed, 6);
        let mut compressed = Vec::new();
        deflater.compress(b"valid start \xed\xa0\x80 surrogate", &mut compressed).unwrap();
        let (_, err) = drain(&mut s, &mut frames(&[client_frame(true, true, OpCode::Text, &compressed)]));
        assert_eq!(err.map(|e| e.code()), Some(CloseCode::INVALID_PAYLOAD));
    }

    #[test]
    fn nothing_is_decoded_after_the_connection_failed() {
        let mut s = server();
        let mut input =
            frames(&[client_frame(true, false, OpCode::Text, b"\xc0"), client_frame(true, false, OpCode::Text, b"ok")]);
        assert!(s.receive(&mut input).is_err());
        let left = input.len();
        assert_eq!(s.receive(&mut input), Ok(None));
        assert_eq!(input.len(), left);
    }
}
