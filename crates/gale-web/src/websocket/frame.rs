//! The frame codec (RFC 6455 §5.2): a role-aware decoder over a `BytesMut` and an encoder into one.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-------+-+-------------+-------------------------------+
//! |F|R|R|R| opcode|M| Payload len |    Extended payload length    |
//! |I|S|S|S|  (4)  |A|     (7)     |             (16/64)           |
//! |N|V|V|V|       |S|             |   (if payload len==126/127)   |
//! | |1|2|3|       |K|             |                               |
//! +-+-+-+-+-------+-+-------------+ - - - - - - - - - - - - - - - +
//! |     Extended payload length continued, if payload len == 127  |
//! + - - - - - - - - - - - - - - - +-------------------------------+
//! |                               | Masking-key, if MASK set to 1 |
//! +-------------------------------+-------------------------------+
//! | Masking-key (continued)       |          Payload Data         |
//! +-------------------------------- - - - - - - - - - - - - - - - +
//! ```
//!
//! [`FrameDecoder`] checks every rule that a single frame can break as soon as the bytes that carry it have
//! arrived, before any payload is buffered: a server wants masked frames and a client unmasked ones, RSV2/RSV3
//! are never set, RSV1 only with a negotiated extension and only on the first frame of a data message,
//! reserved opcodes are refused, control frames are unfragmented and at most 125 bytes, a 64-bit length has
//! its top bit clear, and a data frame fits the payload limit (else 1009). The payload is unmasked in place
//! and split off the input buffer, so it is never copied.
//!
//! [`FrameEncoder`] writes frames into a `BytesMut`; in the client role it masks them with a fresh key from a
//! generator seeded from the operating system.
//!
//! Rules that span frames (fragmentation order, message size, UTF-8, close payloads) live in
//! [`message`](crate::websocket::message).

use std::hash::{BuildHasher, Hasher};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::websocket::close::ProtocolError;

/// The largest payload a control frame (close, ping, pong) may carry.
pub const MAX_CONTROL_PAYLOAD: usize = 125;

/// The longest frame header: 2 fixed bytes, an 8-byte extended length and a 4-byte masking key.
pub const MAX_HEADER_LEN: usize = 14;

/// Which end of the connection this codec speaks for.
///
/// The role decides masking: a client masks every frame it sends and a server refuses unmasked frames; a
/// server never masks and a client refuses masked frames (RFC 6455 §5.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// The end that accepted the connection.
    Server,
    /// The end that opened the connection.
    Client,
}

impl Role {
    /// Whether frames this role sends are masked (only the client's are).
    pub const fn masks_outgoing(self) -> bool {
        matches!(self, Role::Client)
    }
}

/// A frame opcode. The reserved values 0x3–0x7 and 0xB–0xF have no variant: the decoder refuses them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum OpCode {
    /// 0x0: continues a fragmented data message.
    Continuation = 0x0,
    /// 0x1: first frame of a text message.
    Text = 0x1,
    /// 0x2: first frame of a binary message.
    Binary = 0x2,
    /// 0x8: close.
    Close = 0x8,
    /// 0x9: ping.
    Ping = 0x9,
    /// 0xA: pong.
    Pong = 0xA,
}

impl OpCode {
    /// The opcode for the low four bits of a frame's first byte, or `None` for a reserved value.
    pub const fn from_bits(bits: u8) -> Option<OpCode> {
        Some(match bits {
            0x0 => OpCode::Continuation,
            0x1 => OpCode::Text,
            0x2 => OpCode::Binary,
            0x8 => OpCode::Close,
            0x9 => OpCode::Ping,
            0xA => OpCode::Pong,
            _ => return None,
        })
    }

    /// The four-bit wire value.
    pub const fn bits(self) -> u8 {
        self as u8
    }

    /// Whether this is a control opcode (close, ping, pong): the high bit of the nibble is set.
    pub const fn is_control(self) -> bool {
        self.bits() & 0x8 != 0
    }
}

/// A validated frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    /// FIN: this is the final frame of a message.
    pub fin: bool,
    /// RSV1: with permessage-deflate, the message starting with this frame is compressed.
    pub rsv1: bool,
    /// The opcode.
    pub opcode: OpCode,
    /// The masking key, present on (and only on) client-to-server frames.
    pub mask: Option<[u8; 4]>,
    /// The payload length.
    pub payload_len: u64,
}

/// A complete frame with its payload unmasked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// FIN: this is the final frame of a message.
    pub fin: bool,
    /// RSV1: with permessage-deflate, the message starting with this frame is compressed.
    pub rsv1: bool,
    /// The opcode.
    pub opcode: OpCode,
    /// The unmasked payload, split off the input buffer without copying.
    pub payload: Bytes,
}

/// Where the decoder stands within the current frame.
#[derive(Clone, Copy, Debug)]
enum DecodeState {
    /// Waiting for (the rest of) a header; nothing of it has been consumed.
    Header,
    /// The header was validated and consumed; the payload is the first `len` bytes of the input buffer, the
    /// first `unmasked` of which have already been unmasked in place.
    Payload { header: FrameHeader, len: usize, unmasked: usize },
}

/// The outcome of looking at the start of the input for a header.
enum HeaderParse {
    /// This many more bytes are needed (the full count once the second byte has been seen).
    Need(usize),
    /// A complete, valid header of `len` bytes.
    Complete(FrameHeader, usize),
}

/// An incremental, role-aware frame decoder.
///
/// Feed it the connection's input buffer as bytes arrive; each call consumes at most one frame. The header is
/// validated and consumed as soon as it is complete, so a bad header fails before its payload is buffered;
/// the payload is then taken from the buffer once all of it has arrived.
///
/// After an error the connection must be failed; the decoder is not meant to be used again.
///
/// # Examples
///
/// ```
/// use bytes::BytesMut;
/// use gale_web::websocket::frame::{FrameDecoder, FrameEncoder, OpCode, Role};
///
/// let mut wire = BytesMut::new();
/// FrameEncoder::new(Role::Client).encode(&mut wire, true, false, OpCode::Text, b"hello");
///
/// let mut decoder = FrameDecoder::new(Role::Server);
/// let mut input = wire.split_to(3); // only part of the frame has arrived
/// assert_eq!(decoder.decode(&mut input).unwrap(), None);
/// input.unsplit(wire);
/// let frame = decoder.decode(&mut input).unwrap().unwrap();
/// assert_eq!(&frame.payload[..], b"hello");
/// assert!(input.is_empty());
/// ```
#[derive(Debug)]
pub struct FrameDecoder {
    role: Role,
    rsv1_allowed: bool,
    max_payload: usize,
    state: DecodeState,
    missing: usize,
}

impl FrameDecoder {
    /// A decoder for frames received by `role`, with RSV1 refused and no payload limit beyond `usize::MAX`.
    pub fn new(role: Role) -> Self {
        FrameDecoder { role, rsv1_allowed: false, max_payload: usize::MAX, state: DecodeState::Header, missing: 2 }
    }

    /// The role this decoder receives for.
    pub fn role(&self) -> Role {
        self.role
    }

    /// Allows RSV1 on the first frame of data messages: call once permessage-deflate has been negotiated.
    pub fn set_rsv1_allowed(&mut self, allowed: bool) {
        self.rsv1_allowed = allowed;
    }

    /// Sets the largest data-frame payload accepted; a larger declared length fails with 1009 as soon as the
    /// header is complete, before anything is allocated for it. Control frames are always capped at 125.
    pub fn set_max_payload(&mut self, max: usize) {
        self.max_payload = max;
    }

    /// The largest data-frame payload currently accepted.
    pub fn max_payload(&self) -> usize {
        self.max_payload
    }

    /// After a call returned `Ok(None)`: how many more bytes must arrive before the next call can progress.
    ///
    /// Exact once the header's length bytes have been seen (it then counts the rest of the header, or the
    /// rest of the payload); a lower bound before that.
    pub fn missing(&self) -> usize {
        self.missing
    }

    /// The header of the frame whose payload is still arriving, if any.
    pub fn pending_header(&self) -> Option<&FrameHeader> {
        match &self.state {
            DecodeState::Payload { header, .. } => Some(header),
            DecodeState::Header => None,
        }
    }

    /// Decodes at most one frame from the front of `buf`. See [`decode_with`](Self::decode_with).
    ///
    /// # Errors
    ///
    /// A [`ProtocolError`] (1002 or 1009) when the frame breaks a framing rule.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, ProtocolError> {
        self.decode_with(buf, |_| Ok(()))
    }

    /// Decodes at most one frame from the front of `buf`, calling `check` on its header once the header is
    /// complete and valid, before the header is consumed or any payload is waited for.
    ///
    /// Returns `Ok(None)` when more bytes are needed ([`missing`](Self::missing) tells how many), and
    /// `Ok(Some(frame))` with the frame's bytes removed from `buf` otherwise. The payload is unmasked in place
    /// and split off `buf` without a copy.
    ///
    /// `check` lets the message layer refuse a frame on rules spanning frames (a continuation with no message
    /// open, a message outgrowing its limit) without waiting for the payload.
    ///
    /// # Errors
    ///
    /// A [`ProtocolError`] from the frame rules (1002, or 1009 for a payload over the limit) or from `check`.
    pub fn decode_with<F>(&mut self, buf: &mut BytesMut, check: F) -> Result<Option<Frame>, ProtocolError>
    where
        F: FnOnce(&FrameHeader) -> Result<(), ProtocolError>,
    {
        if let DecodeState::Header = self.state {
            match self.parse_header(buf)? {
                HeaderParse::Need(n) => {
                    self.missing = n;
                    return Ok(None);
                }
                HeaderParse::Complete(header, header_len) => {
                    check(&header)?;
                    buf.advance(header_len);
                    // `parse_header` refused lengths above `max_payload: usize` (and control frames are tiny).
                    let len = usize::try_from(header.payload_len).expect("payload length checked against limit");
                    self.state = DecodeState::Payload { header, len, unmasked: 0 };
                }
            }
        }
        let DecodeState::Payload { header, len, unmasked } = self.state else {
            unreachable!("a header was parsed above");
        };
        if buf.len() < len {
            self.missing = len - buf.len();
            return Ok(None);
        }
        if let Some(mask) = header.mask {
            apply_mask(&mut buf[unmasked..len], mask, unmasked);
        }
        let payload = buf.split_to(len).freeze();
        self.state = DecodeState::Header;
        self.missing = 2;
        Ok(Some(Frame { fin: header.fin, rsv1: header.rsv1, opcode: header.opcode, payload }))
    }

    /// While a payload is arriving: unmasks, in place, the payload bytes that arrived since the previous call
    /// and returns them. Returns an empty slice when no frame is pending or nothing new arrived.
    ///
    /// This lets the message layer inspect a large frame before it is complete (to fail fast on invalid UTF-8
    /// in a text frame). The bytes stay in `buf`; the frame later returned by `decode` holds them, already
    /// unmasked.
    pub fn unmask_arrived<'b>(&mut self, buf: &'b mut BytesMut) -> &'b [u8] {
        let DecodeState::Payload { header, len, unmasked } = &mut self.state else {
            return &[];
        };
        let start = *unmasked;
        let end = buf.len().min(*len);
        if end <= start {
            return &[];
        }
        if let Some(mask) = header.mask {
            apply_mask(&mut buf[start..end], mask, start);
        }
        *unmasked = end;
        &buf[start..end]
    }

    /// Parses and validates the header at the front of `buf` without consuming it. Each rule is checked as soon
    /// as the byte carrying it is present.
    fn parse_header(&self, buf: &[u8]) -> Result<HeaderParse, ProtocolError> {
        let Some(&b0) = buf.first() else {
            return Ok(HeaderParse::Need(2));
        };
        if b0 & 0x30 != 0 {
            return Err(ProtocolError::protocol("reserved bit RSV2 or RSV3 set"));
        }
        let opcode = OpCode::from_bits(b0 & 0x0F).ok_or_else(|| ProtocolError::protocol("reserved opcode"))?;
        let fin = b0 & 0x80 != 0;
        let rsv1 = b0 & 0x40 != 0;
        if rsv1 {
            if !self.rsv1_allowed {
                return Err(ProtocolError::protocol("reserved bit RSV1 set without a negotiated extension"));
            }
            if !matches!(opcode, OpCode::Text | OpCode::Binary) {
                return Err(ProtocolError::protocol("RSV1 set on a control or continuation frame"));
            }
        }
        if opcode.is_control() && !fin {
            return Err(ProtocolError::protocol("fragmented control frame"));
        }

        let Some(&b1) = buf.get(1) else {
            return Ok(HeaderParse::Need(1));
        };
        let masked = b1 & 0x80 != 0;
        match (self.role, masked) {
            (Role::Server, false) => return Err(ProtocolError::protocol("unmasked frame from client")),
            (Role::Client, true) => return Err(ProtocolError::protocol("masked frame from server")),
            _ => {}
        }
        let len7 = b1 & 0x7F;
        if opcode.is_control() && usize::from(len7) > MAX_CONTROL_PAYLOAD {
            return Err(ProtocolError::protocol("control frame payload longer than 125 bytes"));
        }
        let ext_len = match len7 {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        let header_len = 2 + ext_len + if masked { 4 } else { 0 };
        if buf.len() < header_len {
            return Ok(HeaderParse::Need(header_len - buf.len()));
        }

        let payload_len = match ext_len {
            0 => u64::from(len7),
            2 => u64::from(u16::from_be_bytes([buf[2], buf[3]])),
            _ => u64::from_be_bytes(buf[2..10].try_into().expect("8 length bytes")),
        };
        if payload_len >> 63 != 0 {
            return Err(ProtocolError::protocol("64-bit payload length with the most significant bit set"));
        }
        if !opcode.is_control() && payload_len > self.max_payload as u64 {
            return Err(ProtocolError::too_big("frame payload exceeds the size limit"));
        }
        let mask = masked.then(|| {
            let at = 2 + ext_len;
            [buf[at], buf[at + 1], buf[at + 2], buf[at + 3]]
        });
        Ok(HeaderParse::Complete(FrameHeader { fin, rsv1, opcode, mask, payload_len }, header_len))
    }
}

/// Writes frames for one role, masking them in the client role.
#[derive(Debug)]
pub struct FrameEncoder {
    role: Role,
    rng: MaskRng,
}

impl FrameEncoder {
    /// An encoder for frames sent by `role`.
    pub fn new(role: Role) -> Self {
        FrameEncoder { role, rng: MaskRng::new() }
    }

    /// The role this encoder sends for.
    pub fn role(&self) -> Role {
        self.role
    }

    /// Appends a complete frame carrying `payload` to `dst` (copying the payload once, and masking that copy
    /// in the client role).
    ///
    /// # Panics
    ///
    /// In debug builds, if a control frame is fragmented or longer than 125 bytes: the message layer checks
    /// these before encoding.
    pub fn encode(&mut self, dst: &mut BytesMut, fin: bool, rsv1: bool, opcode: OpCode, payload: &[u8]) {
        dst.reserve(MAX_HEADER_LEN + payload.len());
        let mask = self.write_header(dst, fin, rsv1, opcode, payload.len() as u64);
        let start = dst.len();
        dst.extend_from_slice(payload);
        if let Some(mask) = mask {
            apply_mask(&mut dst[start..], mask, 0);
        }
    }

    /// Appends just a frame header to `dst` and returns the masking key the payload must be masked with (in
    /// the client role), for callers that write the payload themselves.
    ///
    /// # Panics
    ///
    /// In debug builds, if a control frame is fragmented or longer than 125 bytes.
    pub fn write_header(
        &mut self,
        dst: &mut BytesMut,
        fin: bool,
        rsv1: bool,
        opcode: OpCode,
        payload_len: u64,
    ) -> Option<[u8; 4]> {
        debug_assert!(!opcode.is_control() || (fin && payload_len <= MAX_CONTROL_PAYLOAD as u64));
        debug_assert!(payload_len >> 63 == 0);
        let masked = self.role.masks_outgoing();
        dst.put_u8(u8::from(fin) << 7 | u8::from(rsv1) << 6 | opcode.bits());
        let mask_bit = u8::from(masked) << 7;
        if payload_len < 126 {
            dst.put_u8(mask_bit | payload_len as u8);
        } else if let Ok(len) = u16::try_from(payload_len) {
            dst.put_u8(mask_bit | 126);
            dst.put_u16(len);
        } else {
            dst.put_u8(mask_bit | 127);
            dst.put_u64(payload_len);
        }
        masked.then(|| {
            let mask = self.rng.next_u32().to_ne_bytes();
            dst.put_slice(&mask);
            mask
        })
    }
}

/// The length of the header for a payload of `payload_len` bytes.
pub const fn header_len(payload_len: u64, masked: bool) -> usize {
    let ext = if payload_len < 126 {
        0
    } else if payload_len <= 0xFFFF {
        2
    } else {
        8
    };
    2 + ext + if masked { 4 } else { 0 }
}

/// XORs `buf` with the masking key, where `buf` starts `offset` bytes into the payload (RFC 6455 §5.3).
///
/// Masking is its own inverse, so this both masks and unmasks. Eight bytes are processed at a time.
///
/// # Examples
///
/// ```
/// use gale_web::websocket::frame::apply_mask;
///
/// let mut data = *b"Hello";
/// apply_mask(&mut data, [0x37, 0xfa, 0x21, 0x3d], 0);
/// assert_eq!(data, [0x7f, 0x9f, 0x4d, 0x51, 0x58]); // RFC 6455 §5.7
/// apply_mask(&mut data, [0x37, 0xfa, 0x21, 0x3d], 0);
/// assert_eq!(&data, b"Hello");
/// ```
pub fn apply_mask(buf: &mut [u8], mask: [u8; 4], offset: usize) {
    let mut key = mask;
    key.rotate_left(offset % 4);
    let wide = u64::from_ne_bytes([key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3]]);
    let mut chunks = buf.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let word: [u8; 8] = (*chunk).try_into().expect("chunks of 8");
        chunk.copy_from_slice(&(u64::from_ne_bytes(word) ^ wide).to_ne_bytes());
    }
    // Whole chunks keep the remainder aligned with the start of `key`.
    for (byte, k) in chunks.into_remainder().iter_mut().zip(key.iter().cycle()) {
        *byte ^= k;
    }
}

/// A cheap generator of masking keys and handshake nonces: xorshift64* whose state is derived from an
/// operating-system seed (read once per process from `/dev/urandom`, falling back to std's randomly keyed
/// hasher) mixed with a per-generator counter.
///
/// Masking keys only need to be unpredictable to scripts inside a browser; this is not a cryptographic
/// generator.
#[derive(Debug)]
pub(crate) struct MaskRng(u64);

impl MaskRng {
    /// A generator with a fresh state.
    pub(crate) fn new() -> Self {
        static SEED: OnceLock<u64> = OnceLock::new();
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let seed = *SEED.get_or_init(os_seed);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        // splitmix64 of the combination spreads consecutive counters over the whole state space; xorshift
        // needs a non-zero state.
        MaskRng(splitmix64(seed ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15)) | 1)
    }

    /// The next 64 random bits.
    pub(crate) fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// The next 32 random bits (the high half, the better-mixed one).
    pub(crate) fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }
}

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn os_seed() -> u64 {
    use std::io::Read;
    let mut bytes = [0u8; 8];
    if std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes)).is_ok() {
        return u64::from_ne_bytes(bytes);
    }
    // std keys each RandomState from the operating system's generator.
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher
        .write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos());
    hasher.write_u32(std::process::id());
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::websocket::close::CloseCode;

    fn encode(role: Role, fin: bool, rsv1: bool, opcode: OpCode, payload: &[u8]) -> BytesMut {
        let mut out = BytesMut::new();
        FrameEncoder::new(role).encode(&mut out, fin, rsv1, opcode, payload);
        out
    }

    /// A header written by hand: `b0`, then the masked length encoding chosen by the caller, then a mask.
    fn raw(b0: u8, len_bytes: &[u8], payload: &[u8]) -> BytesMut {
        let mask = [1, 2, 3, 4];
        let mut out = BytesMut::new();
        out.put_u8(b0);
        out.put_u8(len_bytes[0] | 0x80);
        out.put_slice(&len_bytes[1..]);
        out.put_slice(&mask);
        let start = out.len();
        out.put_slice(payload);
        apply_mask(&mut out[start..], mask, 0);
        out
    }

    fn server_err(input: &[u8]) -> ProtocolError {
        FrameDecoder::new(Role::Server).decode(&mut BytesMut::from(input)).unwrap_err()
    }

    fn naive_mask(buf: &mut [u8], mask: [u8; 4], offset: usize) {
        for (i, b) in buf.iter_mut().enumerate() {
            *b ^= mask[(i + offset) % 4];
        }
    }

    #[test]
    fn apply_mask_matches_bytewise_masking_for_every_length_and_offset() {
        let mask = [0xA1, 0x5C, 0x07, 0xF0];
        for len in 0..40 {
            for offset in 0..8 {
                let original: Vec<u8> = (0..len as u8).map(|b| b.wrapping_mul(37)).collect();
                let mut fast = original.clone();
                let mut slow = original.clone();
                apply_mask(&mut fast, mask, offset);
                naive_mask(&mut slow, mask, offset);
                assert_eq!(fast, slow, "len {len} offset {offset}");
            }
        }
    }

    #[test]
    fn masking_in_pieces_equals_masking_at_once() {
        let mask = [9, 8, 7, 6];
        let data: Vec<u8> = (0..=255).collect();
        let mut whole = data.clone();
        apply_mask(&mut whole, mask, 0);
        let mut pieces = data;
        let (a, rest) = pieces.split_at_mut(13);
        let (b, c) = rest.split_at_mut(100);
        apply_mask(a, mask, 0);
        apply_mask(b, mask, 13);
        apply_mask(c, mask, 113);
        assert_eq!(pieces, whole);
    }

    #[test]
    fn rfc_example_frames_decode() {
        // RFC 6455 §5.7: single-frame unmasked and masked "Hello".
        let mut unmasked = BytesMut::from(&[0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f][..]);
        let frame = FrameDecoder::new(Role::Client).decode(&mut unmasked).unwrap().unwrap();
        assert_eq!((frame.fin, frame.opcode, &frame.payload[..]), (true, OpCode::Text, &b"Hello"[..]));
        let mut masked = BytesMut::from(&[0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58][..]);
        let frame = FrameDecoder::new(Role::Server).decode(&mut masked).unwrap().unwrap();
        assert_eq!(&frame.payload[..], b"Hello");
        // A fragmented unmasked text message: "Hel" then "lo".
        let mut frags = BytesMut::from(&[0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f][..]);
        let mut dec = FrameDecoder::new(Role::Client);
        let first = dec.decode(&mut frags).unwrap().unwrap();
        let second = dec.decode(&mut frags).unwrap().unwrap();
        assert_eq!((first.fin, first.opcode, &first.payload[..]), (false, OpCode::Text, &b"Hel"[..]));
        assert_eq!((second.fin, second.opcode, &second.payload[..]), (true, OpCode::Continuation, &b"lo"[..]));
    }

    #[test]
    fn every_length_encoding_round_trips_in_both_directions() {
        for len in [0usize, 1, 125, 126, 127, 65535, 65536, 70000] {
            let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            for (sender, receiver) in [(Role::Client, Role::Server), (Role::Server, Role::Client)] {
                let mut wire = encode(sender, true, false, OpCode::Binary, &payload);
                assert_eq!(wire.len(), header_len(len as u64, sender.masks_outgoing()) + len);
                let frame = FrameDecoder::new(receiver).decode(&mut wire).unwrap().unwrap();
                assert_eq!(frame.payload.len(), len);
                assert!(frame.payload[..] == payload[..], "payload differs at len {len}");
                assert!(wire.is_empty());
            }
        }
    }

    #[test]
    fn length_encodings_use_the_minimal_form() {
        let second_byte = |len: usize| encode(Role::Server, true, false, OpCode::Binary, &vec![0; len])[1];
        assert_eq!(second_byte(125), 125);
        assert_eq!(second_byte(126), 126);
        assert_eq!(second_byte(65535), 126);
        assert_eq!(second_byte(65536), 127);
        let wire = encode(Role::Server, true, false, OpCode::Binary, &vec![0; 65536]);
        assert_eq!(&wire[2..10], &65536u64.to_be_bytes());
    }

    #[test]
    fn client_frames_are_masked_with_fresh_keys() {
        let mut encoder = FrameEncoder::new(Role::Client);
        let mut a = BytesMut::new();
        let mut b = BytesMut::new();
        encoder.encode(&mut a, true, false, OpCode::Text, b"same payload");
        encoder.encode(&mut b, true, false, OpCode::Text, b"same payload");
        assert_eq!(a[1] & 0x80, 0x80);
        assert_ne!(a[2..6], b[2..6], "two frames reused a masking key");
        assert_ne!(&a[6..], b"same payload", "payload was not masked");
        let server = encode(Role::Server, true, false, OpCode::Text, b"x");
        assert_eq!(&server[..], &[0x81, 0x01, b'x']);
    }

    #[test]
    fn mask_generators_differ_between_instances() {
        let firsts: Vec<u64> = (0..16).map(|_| MaskRng::new().next_u64()).collect();
        let mut unique = firsts.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), firsts.len());
    }

    #[test]
    fn partial_input_at_every_split_point_yields_the_same_frame() {
        for len in [0usize, 5, 125, 126, 300, 65536] {
            let payload: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
            let wire = encode(Role::Client, true, false, OpCode::Binary, &payload);
            // Every split for short frames; for the big one, every header split plus a spread of payload splits.
            let splits: Vec<usize> = if wire.len() < 400 {
                (0..wire.len()).collect()
            } else {
                (0..20).chain((20..wire.len()).step_by(4093)).collect()
            };
            for split in splits {
                let mut dec = FrameDecoder::new(Role::Server);
                let mut input = BytesMut::from(&wire[..split]);
                assert_eq!(dec.decode(&mut input).unwrap(), None, "len {len} split {split}");
                let missing = dec.missing();
                assert!(missing >= 1 && missing <= wire.len() - split, "len {len} split {split} missing {missing}");
                input.extend_from_slice(&wire[split..]);
                let frame = dec.decode(&mut input).unwrap().unwrap();
                assert!(frame.payload[..] == payload[..], "len {len} split {split}");
                assert!(input.is_empty());
            }
        }
    }

    #[test]
    fn missing_is_exact_once_the_length_is_known() {
        let wire = encode(Role::Client, true, false, OpCode::Binary, &[7; 300]);
        let mut dec = FrameDecoder::new(Role::Server);
        let mut input = BytesMut::from(&wire[..2]);
        assert_eq!(dec.decode(&mut input).unwrap(), None);
        assert_eq!(dec.missing(), 2 + 4, "16-bit length and mask still to come");
        input.extend_from_slice(&wire[2..10]);
        assert_eq!(dec.decode(&mut input).unwrap(), None);
        assert_eq!(dec.missing(), 300 - 2);
        assert_eq!(dec.pending_header().map(|h| h.payload_len), Some(300));
    }

    #[test]
    fn byte_by_byte_feeding_decodes_consecutive_frames() {
        let mut wire = encode(Role::Client, false, false, OpCode::Text, b"ab");
        wire.extend_from_slice(&encode(Role::Client, true, false, OpCode::Ping, b"p"));
        wire.extend_from_slice(&encode(Role::Client, true, false, OpCode::Continuation, b"cd"));
        let mut dec = FrameDecoder::new(Role::Server);
        let mut input = BytesMut::new();
        let mut frames = Vec::new();
        for &byte in wire.iter() {
            input.put_u8(byte);
            while let Some(frame) = dec.decode(&mut input).unwrap() {
                frames.push((frame.opcode, frame.fin, frame.payload));
            }
        }
        assert_eq!(
            frames,
            vec![
                (OpCode::Text, false, Bytes::from_static(b"ab")),
                (OpCode::Ping, true, Bytes::from_static(b"p")),
                (OpCode::Continuation, true, Bytes::from_static(b"cd")),
            ]
        );
    }

    #[test]
    fn payload_is_split_off_the_input_without_copying() {
        let mut input = encode(Role::Client, true, false, OpCode::Binary, &[5; 1000]);
        let range = input.as_ptr() as usize..input.as_ptr() as usize + input.len();
        let frame = FrameDecoder::new(Role::Server).decode(&mut input).unwrap().unwrap();
        assert!(range.contains(&(frame.payload.as_ptr() as usize)), "payload was copied out of the input buffer");
        assert!(frame.payload.iter().all(|&b| b == 5));
    }

    #[test]
    fn server_refuses_unmasked_frames_and_client_refuses_masked_ones() {
        let unmasked = encode(Role::Server, true, false, OpCode::Text, b"hi");
        assert_eq!(server_err(&unmasked).code(), CloseCode::PROTOCOL_ERROR);
        let masked = encode(Role::Client, true, false, OpCode::Text, b"hi");
        let err = FrameDecoder::new(Role::Client).decode(&mut masked.clone()).unwrap_err();
        assert_eq!(err.code(), CloseCode::PROTOCOL_ERROR);
        // The check needs only the first two bytes.
        let err = FrameDecoder::new(Role::Client).decode(&mut BytesMut::from(&masked[..2])).unwrap_err();
        assert_eq!(err.reason(), "masked frame from server");
    }

    #[test]
    fn reserved_opcodes_are_protocol_errors_from_the_first_byte() {
        for op in (0x3..=0x7).chain(0xB..=0xF) {
            let err = server_err(&[0x80 | op]);
            assert_eq!((err.code(), err.reason()), (CloseCode::PROTOCOL_ERROR, "reserved opcode"), "opcode {op:#x}");
        }
    }

    #[test]
    fn rsv2_and_rsv3_are_always_refused() {
        for bit in [0x20, 0x10] {
            let mut dec = FrameDecoder::new(Role::Server);
            dec.set_rsv1_allowed(true);
            let err = dec.decode(&mut raw(0x81 | bit, &[0], b"")).unwrap_err();
            assert_eq!(err.code(), CloseCode::PROTOCOL_ERROR);
        }
    }

    #[test]
    fn rsv1_needs_negotiation_and_a_first_data_frame() {
        assert_eq!(server_err(&raw(0xC1, &[1], b"x")).code(), CloseCode::PROTOCOL_ERROR);
        let mut dec = FrameDecoder::new(Role::Server);
        dec.set_rsv1_allowed(true);
        assert!(dec.decode(&mut raw(0x41, &[1], b"x")).unwrap().unwrap().rsv1);
        assert!(dec.decode(&mut raw(0xC2, &[1], b"x")).unwrap().unwrap().rsv1);
        for b0 in [0xC0, 0xC9, 0xCA, 0xC8] {
            let mut dec = FrameDecoder::new(Role::Server);
            dec.set_rsv1_allowed(true);
            let err = dec.decode(&mut raw(b0, &[0], b"")).unwrap_err();
            assert_eq!(err.reason(), "RSV1 set on a control or continuation frame", "b0 {b0:#x}");
        }
    }

    #[test]
    fn control_frames_must_be_short_and_unfragmented() {
        for op in [0x8, 0x9, 0xA] {
            assert_eq!(server_err(&raw(op, &[0], b"")).reason(), "fragmented control frame");
            assert!(FrameDecoder::new(Role::Server).decode(&mut raw(0x80 | op, &[125], &[0; 125])).is_ok());
            let err = server_err(&raw(0x80 | op, &[126, 0, 126], &[0; 126]));
            assert_eq!(err.reason(), "control frame payload longer than 125 bytes");
            let err = server_err(&raw(0x80 | op, &[127, 0, 0, 0, 0, 0, 0, 0, 1], b"x"));
            assert_eq!(err.code(), CloseCode::PROTOCOL_ERROR);
        }
    }

    #[test]
    fn a_64_bit_length_with_the_top_bit_set_is_a_protocol_error() {
        let err = server_err(&raw(0x82, &[127, 0x80, 0, 0, 0, 0, 0, 0, 0], b""));
        assert_eq!(err.code(), CloseCode::PROTOCOL_ERROR);
        let mut dec = FrameDecoder::new(Role::Server);
        dec.set_max_payload(1 << 30);
        let err = dec.decode(&mut raw(0x82, &[127, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF], b"")).unwrap_err();
        assert_eq!(err.code(), CloseCode::MESSAGE_TOO_BIG, "a huge but legal length is only too big");
    }

    #[test]
    fn oversized_data_frames_fail_with_1009_before_the_payload_arrives() {
        let mut dec = FrameDecoder::new(Role::Server);
        dec.set_max_payload(1000);
        let wire = encode(Role::Client, true, false, OpCode::Binary, &[0; 1001]);
        let header_only = header_len(1001, true);
        let err = dec.decode(&mut BytesMut::from(&wire[..header_only])).unwrap_err();
        assert_eq!(err.code(), CloseCode::MESSAGE_TOO_BIG);
        let mut dec = FrameDecoder::new(Role::Server);
        dec.set_max_payload(1000);
        let wire = encode(Role::Client, true, false, OpCode::Binary, &[0; 1000]);
        assert_eq!(dec.decode(&mut wire.clone()).unwrap().unwrap().payload.len(), 1000);
    }

    #[test]
    fn the_header_check_runs_once_before_the_payload_is_awaited() {
        let wire = encode(Role::Client, true, false, OpCode::Text, &[b'a'; 200]);
        let mut dec = FrameDecoder::new(Role::Server);
        let mut input = BytesMut::from(&wire[..10]);
        let mut calls = 0;
        assert_eq!(
            dec.decode_with(&mut input, |h| {
                calls += 1;
                assert_eq!(h.payload_len, 200);
                Ok(())
            })
            .unwrap(),
            None
        );
        input.extend_from_slice(&wire[10..]);
        let frame = dec
            .decode_with(&mut input, |_| {
                calls += 1;
                Ok(())
            })
            .unwrap()
            .unwrap();
        assert_eq!((calls, frame.payload.len()), (1, 200));
        let refusal = ProtocolError::protocol("refused by check");
        let err = FrameDecoder::new(Role::Server).decode_with(&mut wire.clone(), |_| Err(refusal)).unwrap_err();
        assert_eq!(err, refusal);
    }

    #[test]
    fn unmask_arrived_exposes_payload_bytes_as_they_come() {
        let wire = encode(Role::Client, true, false, OpCode::Text, b"hello world, piecewise");
        let header = header_len(22, true);
        let mut dec = FrameDecoder::new(Role::Server);
        let mut input = BytesMut::from(&wire[..header + 5]);
        assert_eq!(dec.decode(&mut input).unwrap(), None);
        assert_eq!(dec.unmask_arrived(&mut input), b"hello");
        assert_eq!(dec.unmask_arrived(&mut input), b"", "nothing new arrived");
        input.extend_from_slice(&wire[header + 5..header + 12]);
        assert_eq!(dec.unmask_arrived(&mut input), b" world,");
        input.extend_from_slice(&wire[header + 12..]);
        let frame = dec.decode(&mut input).unwrap().unwrap();
        assert_eq!(&frame.payload[..], b"hello world, piecewise");
    }
}
