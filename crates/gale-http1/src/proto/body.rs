//! Body framing: how long a body is ([`BodyKind`]), reading it ([`Decoder`]: by length, chunked, or until the
//! connection closes) and writing it ([`BodyEncoder`]).
//!
//! Decoders consume from the connection's read buffer and hand out the body as [`Bytes`] split off that buffer,
//! so body data is never copied. The chunked decoder is a byte-level state machine that accepts its input in any
//! split — one byte at a time or everything at once gives the same result — and refuses every malformed framing
//! byte with a [`ParseError`] (status 400).

use bytes::{Buf, Bytes, BytesMut};

use super::error::{EncodeError, ParseError, ParseErrorKind};
use super::head;
use crate::headers::HeaderMap;

/// Most bytes a chunk-size line may take, extensions included (CRLF excluded). Extensions are skipped, not
/// interpreted.
pub const CHUNKED_EXTENSIONS_LIMIT: usize = 4 * 1024;

/// Most bytes the trailer section of a chunked body may take.
pub const TRAILER_LIMIT: usize = 16 * 1024;

/// How the length of a message body is known (RFC 9112 §6.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BodyKind {
    /// No body at all.
    Empty,
    /// Exactly this many bytes (never 0: that is [`BodyKind::Empty`]).
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Everything until the connection closes (responses only).
    CloseDelimited,
}

impl BodyKind {
    /// `Length(n)`, or `Empty` when `n` is 0.
    pub fn from_length(n: u64) -> BodyKind {
        if n == 0 { BodyKind::Empty } else { BodyKind::Length(n) }
    }
}

/// One step of decoding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decoded {
    /// Body bytes (never empty), split off the read buffer.
    Data(Bytes),
    /// The buffer is used up and the body is not over: read more, then decode again.
    NeedMore,
    /// The body is complete; what is left in the buffer belongs to the next message.
    Done,
}

/// Reads one body of any [`BodyKind`] out of a connection's read buffer.
///
/// # Examples
///
/// ```
/// use bytes::BytesMut;
/// use gale_http1::proto::body::{BodyKind, Decoded, Decoder};
///
/// let mut buf = BytesMut::from(&b"5\r\nhello\r\n0\r\n\r\nGET / HTTP/1.1\r\n"[..]);
/// let mut decoder = Decoder::new(BodyKind::Chunked);
/// assert_eq!(decoder.decode(&mut buf).unwrap(), Decoded::Data("hello".into()));
/// assert_eq!(decoder.decode(&mut buf).unwrap(), Decoded::Done);
/// assert_eq!(&buf[..], b"GET / HTTP/1.1\r\n");
/// ```
#[derive(Debug)]
pub struct Decoder {
    kind: DecoderKind,
}

#[derive(Debug)]
enum DecoderKind {
    Length(LengthDecoder),
    Chunked(ChunkedDecoder),
    Eof { done: bool },
}

impl Decoder {
    /// A decoder for a body framed as `kind`.
    pub fn new(kind: BodyKind) -> Decoder {
        let kind = match kind {
            BodyKind::Empty => DecoderKind::Length(LengthDecoder::new(0)),
            BodyKind::Length(n) => DecoderKind::Length(LengthDecoder::new(n)),
            BodyKind::Chunked => DecoderKind::Chunked(ChunkedDecoder::new()),
            BodyKind::CloseDelimited => DecoderKind::Eof { done: false },
        };
        Decoder { kind }
    }

    /// Takes the next piece of body out of `buf`.
    ///
    /// # Errors
    ///
    /// Malformed chunked framing; the connection must be closed.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Decoded, ParseError> {
        match &mut self.kind {
            DecoderKind::Length(d) => Ok(d.decode(buf)),
            DecoderKind::Chunked(d) => d.decode(buf),
            DecoderKind::Eof { done: true } => Ok(Decoded::Done),
            DecoderKind::Eof { .. } if buf.is_empty() => Ok(Decoded::NeedMore),
            DecoderKind::Eof { .. } => Ok(Decoded::Data(buf.split().freeze())),
        }
    }

    /// Tells the decoder the connection has no more bytes. Call [`decode`](Self::decode) first to drain the
    /// buffer.
    ///
    /// # Errors
    ///
    /// [`ParseErrorKind::IncompleteBody`] unless the body was complete or is read until close.
    pub fn decode_eof(&mut self) -> Result<(), ParseError> {
        if let DecoderKind::Eof { done } = &mut self.kind {
            *done = true;
        }
        if self.is_done() { Ok(()) } else { Err(ParseErrorKind::IncompleteBody.into()) }
    }

    /// Whether the whole body has been decoded.
    pub fn is_done(&self) -> bool {
        match &self.kind {
            DecoderKind::Length(d) => d.remaining() == 0,
            DecoderKind::Chunked(d) => d.is_done(),
            DecoderKind::Eof { done } => *done,
        }
    }

    /// The trailer fields of a finished chunked body, if it had any.
    pub fn take_trailers(&mut self) -> Option<HeaderMap> {
        match &mut self.kind {
            DecoderKind::Chunked(d) => d.take_trailers(),
            _ => None,
        }
    }
}

/// Reads a body of known length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LengthDecoder {
    remaining: u64,
}

impl LengthDecoder {
    /// A decoder for `len` bytes.
    pub fn new(len: u64) -> Self {
        LengthDecoder { remaining: len }
    }

    /// Bytes of body still to come.
    pub fn remaining(&self) -> u64 {
        self.remaining
    }

    /// Takes up to the rest of the body out of `buf`.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Decoded {
        if self.remaining == 0 {
            return Decoded::Done;
        }
        if buf.is_empty() {
            return Decoded::NeedMore;
        }
        let n = usize::try_from(self.remaining).unwrap_or(usize::MAX).min(buf.len());
        self.remaining -= n as u64;
        Decoded::Data(buf.split_to(n).freeze())
    }
}

/// Where the chunked decoder stands; each state names what the next byte must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ChunkedState {
    /// Hex digits of the chunk size.
    Size,
    /// Whitespace after the size, which must lead to an extension.
    SizeWs,
    /// Chunk extensions up to CR.
    Extension,
    /// LF ending the chunk-size line.
    SizeLf,
    /// Chunk data.
    Data,
    /// CR after the chunk data.
    DataCr,
    /// LF after the chunk data.
    DataLf,
    /// First byte after the last chunk: CR (no trailers) or a trailer field.
    TrailerStart,
    /// Inside the trailer section.
    Trailer,
    /// LF ending the body.
    EndLf,
    /// Finished.
    Done,
}

/// Reads a `Transfer-Encoding: chunked` body (RFC 9112 §7.1).
///
/// Chunk extensions are skipped (at most [`CHUNKED_EXTENSIONS_LIMIT`] bytes a line). Trailer fields are parsed
/// with the same rules as header fields and returned by [`take_trailers`](Self::take_trailers) (at most
/// [`TRAILER_LIMIT`] bytes). Bare LF line endings are refused everywhere.
#[derive(Debug)]
pub struct ChunkedDecoder {
    state: ChunkedState,
    /// Size of the current chunk, then bytes of it still to come.
    size: u64,
    /// Hex digits read of the current size.
    digits: u32,
    /// Length of the current chunk-size line.
    line_len: usize,
    /// Raw trailer section while it arrives.
    trailer_buf: BytesMut,
    /// Boxed: trailers are rare and a map is large.
    trailers: Option<Box<HeaderMap>>,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        ChunkedDecoder::new()
    }
}

impl ChunkedDecoder {
    /// A decoder at the start of a chunked body.
    pub fn new() -> Self {
        ChunkedDecoder {
            state: ChunkedState::Size,
            size: 0,
            digits: 0,
            line_len: 0,
            trailer_buf: BytesMut::new(),
            trailers: None,
        }
    }

    /// Whether the last chunk and trailer section have been read.
    pub fn is_done(&self) -> bool {
        self.state == ChunkedState::Done
    }

    /// The trailer fields, once the body is done, if there were any.
    pub fn take_trailers(&mut self) -> Option<HeaderMap> {
        self.trailers.take().map(|t| *t)
    }

    /// Takes the next chunk data out of `buf`, consuming framing bytes on the way.
    ///
    /// # Errors
    ///
    /// Any malformed framing (invalid hex, size overflow, missing CRLF after data, bare LF, overlong extension
    /// or trailer section, invalid trailer field).
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Decoded, ParseError> {
        loop {
            match self.state {
                ChunkedState::Done => return Ok(Decoded::Done),
                ChunkedState::Data => {
                    if buf.is_empty() {
                        return Ok(Decoded::NeedMore);
                    }
                    let n = usize::try_from(self.size).unwrap_or(usize::MAX).min(buf.len());
                    self.size -= n as u64;
                    if self.size == 0 {
                        self.state = ChunkedState::DataCr;
                    }
                    return Ok(Decoded::Data(buf.split_to(n).freeze()));
                }
                ChunkedState::Trailer => {
                    if buf.is_empty() {
                        return Ok(Decoded::NeedMore);
                    }
                    self.read_trailer(buf)?;
                }
                _ => {
                    if buf.is_empty() {
                        return Ok(Decoded::NeedMore);
                    }
                    // Run over framing bytes, then consume them at once.
                    let mut used = 0;
                    while used < buf.len() && self.in_framing() {
                        let b = buf[used];
                        used += 1;
                        self.step(b)?;
                    }
                    if self.state == ChunkedState::Trailer {
                        // The first trailer byte was read by `step`; keep it.
                        self.trailer_buf.extend_from_slice(&buf[used - 1..used]);
                    }
                    buf.advance(used);
                }
            }
        }
    }

    fn in_framing(&self) -> bool {
        !matches!(self.state, ChunkedState::Data | ChunkedState::Trailer | ChunkedState::Done)
    }

    /// Advances the state machine by one framing byte.
    fn step(&mut self, b: u8) -> Result<(), ParseErrorKind> {
        use ChunkedState::*;
        match self.state {
            Size | SizeWs | Extension if b != b'\r' => {
                self.line_len += 1;
                if self.line_len > CHUNKED_EXTENSIONS_LIMIT {
                    return Err(ParseErrorKind::ChunkExtensionsTooLong);
                }
            }
            _ => {}
        }
        self.state = match (self.state, b) {
            (Size, _) if b.is_ascii_hexdigit() => {
                let digit = (b as char).to_digit(16).unwrap_or_default();
                self.size = self
                    .size
                    .checked_mul(16)
                    .and_then(|s| s.checked_add(u64::from(digit)))
                    .ok_or(ParseErrorKind::ChunkSizeOverflow)?;
                self.digits += 1;
                Size
            }
            (Size, b' ' | b'\t') if self.digits > 0 => SizeWs,
            (Size | SizeWs, b';') if self.digits > 0 => Extension,
            (Size, b'\r') if self.digits > 0 => SizeLf,
            (Size | SizeWs | Extension, b'\n') => return Err(ParseErrorKind::InvalidLineEnding),
            (Size, _) => return Err(ParseErrorKind::InvalidChunkSize),
            (SizeWs, b' ' | b'\t') => SizeWs,
            (SizeWs, _) => return Err(ParseErrorKind::InvalidChunkSize),
            (Extension, b'\r') => SizeLf,
            (Extension, _) if b == b'\t' || (b >= 0x20 && b != 0x7f) => Extension,
            (Extension, _) => return Err(ParseErrorKind::InvalidChunkSize),
            (SizeLf, b'\n') if self.size == 0 => TrailerStart,
            (SizeLf, b'\n') => Data,
            (SizeLf, _) => return Err(ParseErrorKind::InvalidLineEnding),
            (DataCr, b'\r') => DataLf,
            (DataLf, b'\n') => {
                self.digits = 0;
                self.line_len = 0;
                Size
            }
            (DataCr | DataLf, _) => return Err(ParseErrorKind::InvalidChunkTerminator),
            (TrailerStart, b'\r') => EndLf,
            (TrailerStart, b'\n') => return Err(ParseErrorKind::InvalidLineEnding),
            (TrailerStart, _) => Trailer,
            (EndLf, b'\n') => Done,
            (EndLf, _) => return Err(ParseErrorKind::InvalidLineEnding),
            (Data | Trailer | Done, _) => unreachable!("not a framing state"),
        };
        Ok(())
    }

    /// Gathers the trailer section line by line until the empty line that ends it, then parses it.
    fn read_trailer(&mut self, buf: &mut BytesMut) -> Result<(), ParseError> {
        while !buf.is_empty() {
            let (take, line_done) = match memchr::memchr(b'\n', buf) {
                Some(i) => (i + 1, true),
                None => (buf.len(), false),
            };
            if self.trailer_buf.len() + take > TRAILER_LIMIT {
                return Err(ParseErrorKind::TrailersTooLarge.into());
            }
            self.trailer_buf.extend_from_slice(&buf[..take]);
            buf.advance(take);
            if !line_done {
                break;
            }
            if !self.trailer_buf.ends_with(b"\r\n") {
                return Err(ParseErrorKind::InvalidLineEnding.into());
            }
            if self.trailer_buf.ends_with(b"\r\n\r\n") {
                self.trailers = Some(Box::new(parse_trailers(self.trailer_buf.split().freeze())?));
                self.state = ChunkedState::Done;
                break;
            }
        }
        Ok(())
    }
}

/// Parses a complete trailer section (field lines and the final CRLF) into a map sharing its buffer. Line
/// endings were checked while the section was gathered.
fn parse_trailers(section: Bytes) -> Result<HeaderMap, ParseError> {
    let lines = memchr::memchr_iter(b'\n', &section).count();
    let mut slots = vec![httparse::EMPTY_HEADER; lines];
    let mut map = HeaderMap::with_capacity(lines);
    match httparse::parse_headers(&section, &mut slots) {
        Ok(httparse::Status::Complete((len, fields))) if len == section.len() => {
            for field in fields {
                let name = field.name.as_bytes();
                let name_at = head::offset(&section, name);
                let value_at = head::offset(&section, field.value);
                map.push_span((name_at as u32, name.len() as u32), (value_at as u32, field.value.len() as u32));
            }
        }
        _ => return Err(ParseErrorKind::InvalidTrailer.into()),
    }
    drop(slots);
    map.set_buffer(section);
    Ok(map)
}

/// Writes one chunk: size line, `data`, CRLF. Empty data writes nothing, since an empty chunk ends the body.
pub fn encode_chunk(data: &[u8], dst: &mut BytesMut) {
    if data.is_empty() {
        return;
    }
    dst.reserve(data.len() + 20);
    encode_chunk_size(data.len(), dst);
    dst.extend_from_slice(data);
    dst.extend_from_slice(b"\r\n");
}

/// Writes the last chunk and the empty trailer section: `0\r\n\r\n`.
pub fn encode_last_chunk(dst: &mut BytesMut) {
    dst.extend_from_slice(b"0\r\n\r\n");
}

/// Writes `{len:x}\r\n`.
fn encode_chunk_size(len: usize, dst: &mut BytesMut) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 2 * size_of::<usize>() + 2];
    let mut i = out.len() - 2;
    out[i..].copy_from_slice(b"\r\n");
    let mut n = len;
    loop {
        i -= 1;
        out[i] = HEX[n & 0xf];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    dst.extend_from_slice(&out[i..]);
}

/// What to do with a body frame announced by [`BodyEncoder::frame`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Frame {
    /// Send the data, then `suffix` (CRLF after a chunk, else empty).
    Send {
        /// Bytes to send right after the data.
        suffix: &'static [u8],
    },
    /// Drop the data: the response to a `HEAD` request has no body.
    Discard,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum EncoderKind {
    Length(u64),
    Chunked,
    CloseDelimited,
    /// A body that is silently dropped (responses to `HEAD`).
    Discard,
    /// No body allowed (1xx, 204, 304, bodiless requests).
    Empty,
    Finished,
}

/// Writes a body with the framing chosen for its head, and checks the writer keeps its promises (no more and
/// no fewer bytes than a `Content-Length`; nothing after the end).
///
/// # Examples
///
/// ```
/// use bytes::BytesMut;
/// use gale_http1::proto::body::{BodyEncoder, BodyKind};
///
/// let mut out = BytesMut::new();
/// let mut body = BodyEncoder::new(BodyKind::Chunked);
/// body.encode(b"hello", &mut out).unwrap();
/// body.finish(&mut out).unwrap();
/// assert_eq!(&out[..], b"5\r\nhello\r\n0\r\n\r\n");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BodyEncoder {
    kind: EncoderKind,
}

impl BodyEncoder {
    /// An encoder for a body framed as `kind`.
    pub fn new(kind: BodyKind) -> Self {
        let kind = match kind {
            BodyKind::Empty => EncoderKind::Empty,
            BodyKind::Length(n) => EncoderKind::Length(n),
            BodyKind::Chunked => EncoderKind::Chunked,
            BodyKind::CloseDelimited => EncoderKind::CloseDelimited,
        };
        BodyEncoder { kind }
    }

    /// An encoder that accepts and drops any body, for responses to `HEAD`.
    pub fn discard() -> Self {
        BodyEncoder { kind: EncoderKind::Discard }
    }

    /// Whether the body is chunked.
    pub fn is_chunked(&self) -> bool {
        self.kind == EncoderKind::Chunked
    }

    /// Whether the body ends when the connection closes: the caller must close after [`finish`](Self::finish).
    pub fn is_close_delimited(&self) -> bool {
        self.kind == EncoderKind::CloseDelimited
    }

    /// Whether body bytes are dropped (a response to `HEAD`).
    pub fn is_discarding(&self) -> bool {
        self.kind == EncoderKind::Discard
    }

    /// Whether [`finish`](Self::finish) has succeeded.
    pub fn is_finished(&self) -> bool {
        self.kind == EncoderKind::Finished
    }

    /// Bytes still owed to a `Content-Length`, if the body has one.
    pub fn remaining(&self) -> Option<u64> {
        match self.kind {
            EncoderKind::Length(n) => Some(n),
            _ => None,
        }
    }

    /// Copies `data` into `dst` with its framing.
    ///
    /// # Errors
    ///
    /// [`EncodeError::BodyTooLong`] past the `Content-Length`, [`EncodeError::BodyNotAllowed`] for bodiless
    /// messages, [`EncodeError::AlreadyFinished`] after [`finish`](Self::finish). Nothing is written then.
    #[inline]
    pub fn encode(&mut self, data: &[u8], dst: &mut BytesMut) -> Result<(), EncodeError> {
        match self.frame(data.len(), dst)? {
            Frame::Send { suffix } => {
                dst.extend_from_slice(data);
                if !suffix.is_empty() {
                    dst.extend_from_slice(suffix);
                }
            }
            Frame::Discard => {}
        }
        Ok(())
    }

    /// Announces `len` bytes of body the caller sends itself (e.g. a large buffer, without copying): writes the
    /// framing that goes before them into `dst` and says what must follow them.
    ///
    /// # Errors
    ///
    /// As [`encode`](Self::encode).
    #[inline]
    pub fn frame(&mut self, len: usize, dst: &mut BytesMut) -> Result<Frame, EncodeError> {
        match &mut self.kind {
            EncoderKind::Length(remaining) => {
                *remaining = remaining.checked_sub(len as u64).ok_or(EncodeError::BodyTooLong)?;
                Ok(Frame::Send { suffix: b"" })
            }
            EncoderKind::Chunked if len == 0 => Ok(Frame::Send { suffix: b"" }),
            EncoderKind::Chunked => {
                encode_chunk_size(len, dst);
                Ok(Frame::Send { suffix: b"\r\n" })
            }
            EncoderKind::CloseDelimited => Ok(Frame::Send { suffix: b"" }),
            EncoderKind::Discard => Ok(Frame::Discard),
            EncoderKind::Empty if len == 0 => Ok(Frame::Send { suffix: b"" }),
            EncoderKind::Empty => Err(EncodeError::BodyNotAllowed),
            EncoderKind::Finished => Err(EncodeError::AlreadyFinished),
        }
    }

    /// Ends the body: writes the last chunk for chunked bodies, checks a `Content-Length` was met.
    ///
    /// # Errors
    ///
    /// [`EncodeError::BodyTooShort`] if bytes are still owed (the connection cannot be reused then),
    /// [`EncodeError::AlreadyFinished`] on a second call.
    #[inline]
    pub fn finish(&mut self, dst: &mut BytesMut) -> Result<(), EncodeError> {
        match self.kind {
            EncoderKind::Length(remaining) if remaining > 0 => return Err(EncodeError::BodyTooShort { remaining }),
            EncoderKind::Chunked => encode_last_chunk(dst),
            EncoderKind::Finished => return Err(EncodeError::AlreadyFinished),
            _ => {}
        }
        self.kind = EncoderKind::Finished;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `input` fed in pieces of the given sizes (the rest at once at the end), collecting the data.
    /// Body, trailers and the bytes left after the body.
    type Outcome = (Vec<u8>, Option<HeaderMap>, Vec<u8>);

    fn decode_in_pieces(input: &[u8], cuts: &[usize]) -> Result<Outcome, ParseError> {
        let mut decoder = Decoder::new(BodyKind::Chunked);
        let mut buf = BytesMut::new();
        let mut body = Vec::new();
        let mut fed = 0;
        let mut pieces = cuts.iter().copied().chain(std::iter::once(input.len()));
        loop {
            match decoder.decode(&mut buf)? {
                Decoded::Data(d) => {
                    assert!(!d.is_empty());
                    body.extend_from_slice(&d);
                }
                Decoded::NeedMore => {
                    if fed == input.len() {
                        return Err(decoder.decode_eof().unwrap_err());
                    }
                    let end = pieces.next().map_or(input.len(), |c| (fed + c).min(input.len()));
                    buf.extend_from_slice(&input[fed..end]);
                    fed = end;
                }
                Decoded::Done => {
                    let mut rest = buf.to_vec();
                    rest.extend_from_slice(&input[fed..]);
                    return Ok((body, decoder.take_trailers(), rest));
                }
            }
        }
    }

    fn chunked_err(input: &[u8]) -> ParseErrorKind {
        decode_in_pieces(input, &[]).unwrap_err().kind()
    }

    const SAMPLE: &[u8] =
        b"4\r\nWiki\r\n6;name=value\r\npedia \r\nE\r\nin \r\n\r\nchunks.\r\n0\r\nX-Sum: 42\r\n\r\nNEXT";

    #[test]
    fn chunked_body_decodes_with_extensions_and_trailers() {
        let (body, trailers, rest) = decode_in_pieces(SAMPLE, &[]).unwrap();
        assert_eq!(body, b"Wikipedia in \r\n\r\nchunks.");
        assert_eq!(trailers.unwrap().get("x-sum"), Some("42"));
        assert_eq!(rest, b"NEXT");
    }

    #[test]
    fn chunked_body_split_at_every_byte_decodes_the_same() {
        let whole = decode_in_pieces(SAMPLE, &[]).unwrap();
        for cut in 0..SAMPLE.len() {
            let split = decode_in_pieces(SAMPLE, &[cut]).unwrap();
            assert_eq!(split.0, whole.0, "cut at {cut}");
            assert_eq!(split.2, whole.2, "cut at {cut}");
            assert_eq!(split.1.unwrap().get("x-sum"), Some("42"));
        }
        let ones = vec![1; SAMPLE.len()];
        let trickled = decode_in_pieces(SAMPLE, &ones).unwrap();
        assert_eq!(trickled.0, whole.0);
        assert_eq!(trickled.2, whole.2);
    }

    #[test]
    fn chunk_data_is_not_copied() {
        let mut buf = BytesMut::from(&b"5\r\nhello\r\n0\r\n\r\n"[..]);
        let start = buf.as_ptr() as usize;
        let mut decoder = ChunkedDecoder::new();
        let Decoded::Data(data) = decoder.decode(&mut buf).unwrap() else { panic!("expected data") };
        assert_eq!(data.as_ptr() as usize, start + 3);
    }

    #[test]
    fn body_without_trailers_has_none() {
        let (body, trailers, rest) = decode_in_pieces(b"3\r\nabc\r\n0\r\n\r\n", &[]).unwrap();
        assert_eq!(body, b"abc");
        assert!(trailers.is_none());
        assert!(rest.is_empty());
    }

    #[test]
    fn mutated_chunked_bodies_decode_the_same_whatever_the_split() {
        let specials = [b'\r', b'\n', b';', b' ', b'0', b'f', b'G', b'\0', b':'];
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as usize
        };
        for _ in 0..3000 {
            let mut input = SAMPLE.to_vec();
            for _ in 0..1 + next() % 3 {
                let at = next() % input.len();
                let byte = specials[next() % specials.len()];
                match next() % 3 {
                    0 => input[at] = byte,
                    1 => input.insert(at, byte),
                    _ => {
                        input.remove(at);
                    }
                }
            }
            let whole = decode_in_pieces(&input, &[]);
            let split = decode_in_pieces(&input, &[next() % input.len(), next() % 5]);
            let whole = whole.map(|(body, _, rest)| (body, rest));
            let split = split.map(|(body, _, rest)| (body, rest));
            assert_eq!(whole, split, "{:?}", String::from_utf8_lossy(&input));
        }
    }

    #[test]
    fn chunked_rejects_invalid_hex_and_missing_size() {
        assert_eq!(chunked_err(b"x\r\n"), ParseErrorKind::InvalidChunkSize);
        assert_eq!(chunked_err(b"\r\n"), ParseErrorKind::InvalidChunkSize);
        assert_eq!(chunked_err(b";ext\r\n"), ParseErrorKind::InvalidChunkSize);
        assert_eq!(chunked_err(b" 5\r\nhello\r\n"), ParseErrorKind::InvalidChunkSize);
        assert_eq!(chunked_err(b"-5\r\n"), ParseErrorKind::InvalidChunkSize);
        assert_eq!(chunked_err(b"0x5\r\n"), ParseErrorKind::InvalidChunkSize);
        assert_eq!(chunked_err(b"5 x\r\n"), ParseErrorKind::InvalidChunkSize);
        assert_eq!(chunked_err(b"5;a\0b\r\n"), ParseErrorKind::InvalidChunkSize);
    }

    #[test]
    fn chunked_allows_whitespace_only_before_an_extension() {
        let (body, _, _) = decode_in_pieces(b"3 \t;x\r\nabc\r\n0\r\n\r\n", &[]).unwrap();
        assert_eq!(body, b"abc");
        assert_eq!(chunked_err(b"3 \r\nabc\r\n0\r\n\r\n"), ParseErrorKind::InvalidChunkSize);
    }

    #[test]
    fn chunked_rejects_size_overflow() {
        assert_eq!(chunked_err(b"10000000000000000\r\n"), ParseErrorKind::ChunkSizeOverflow);
        // Leading zeros are fine as long as the value fits.
        let (body, _, _) = decode_in_pieces(b"00000000000000000000001\r\na\r\n0\r\n\r\n", &[]).unwrap();
        assert_eq!(body, b"a");
    }

    #[test]
    fn chunked_rejects_missing_crlf_after_data() {
        assert_eq!(chunked_err(b"3\r\nabcd\r\n0\r\n\r\n"), ParseErrorKind::InvalidChunkTerminator);
        assert_eq!(chunked_err(b"3\r\nabc\rX0\r\n\r\n"), ParseErrorKind::InvalidChunkTerminator);
        assert_eq!(chunked_err(b"3\r\nabc\n0\r\n\r\n"), ParseErrorKind::InvalidChunkTerminator);
    }

    #[test]
    fn chunked_rejects_bare_lf_everywhere() {
        assert_eq!(chunked_err(b"3\nabc\r\n0\r\n\r\n"), ParseErrorKind::InvalidLineEnding);
        assert_eq!(chunked_err(b"3;x\nabc\r\n0\r\n\r\n"), ParseErrorKind::InvalidLineEnding);
        assert_eq!(chunked_err(b"3\r\nabc\r\n0\n\r\n"), ParseErrorKind::InvalidLineEnding);
        assert_eq!(chunked_err(b"3\r\nabc\r\n0\r\n\n"), ParseErrorKind::InvalidLineEnding);
        assert_eq!(chunked_err(b"0\r\nX: 1\n\r\n"), ParseErrorKind::InvalidLineEnding);
        assert_eq!(chunked_err(b"3\r\nabc\r\n0\r\n\rX"), ParseErrorKind::InvalidLineEnding);
    }

    #[test]
    fn chunked_limits_extensions_and_trailers() {
        let mut long_ext = b"1;".to_vec();
        long_ext.resize(CHUNKED_EXTENSIONS_LIMIT, b'x');
        long_ext.extend_from_slice(b"\r\na\r\n0\r\n\r\n");
        assert!(decode_in_pieces(&long_ext, &[]).is_ok(), "a line of exactly the limit is fine");
        long_ext.insert(3, b'x');
        assert_eq!(chunked_err(&long_ext), ParseErrorKind::ChunkExtensionsTooLong);

        let mut long_trailer = b"0\r\nX: ".to_vec();
        long_trailer.resize(TRAILER_LIMIT + 10, b'y');
        long_trailer.extend_from_slice(b"\r\n\r\n");
        assert_eq!(chunked_err(&long_trailer), ParseErrorKind::TrailersTooLarge);
    }

    #[test]
    fn chunked_rejects_malformed_trailers() {
        assert_eq!(chunked_err(b"0\r\nBad Name: 1\r\n\r\n"), ParseErrorKind::InvalidTrailer);
        assert_eq!(chunked_err(b"0\r\nX: a\r\n folded\r\n\r\n"), ParseErrorKind::InvalidTrailer);
        assert_eq!(chunked_err(b"0\r\nX: a\x00\r\n\r\n"), ParseErrorKind::InvalidTrailer);
    }

    #[test]
    fn truncated_bodies_are_incomplete_at_eof() {
        assert_eq!(chunked_err(b"5\r\nhel"), ParseErrorKind::IncompleteBody);
        let mut d = Decoder::new(BodyKind::Length(10));
        let mut buf = BytesMut::from(&b"12345"[..]);
        assert_eq!(d.decode(&mut buf).unwrap(), Decoded::Data("12345".into()));
        assert_eq!(d.decode(&mut buf).unwrap(), Decoded::NeedMore);
        assert_eq!(d.decode_eof().unwrap_err().kind(), ParseErrorKind::IncompleteBody);
    }

    #[test]
    fn length_decoder_stops_at_the_length() {
        let mut d = Decoder::new(BodyKind::Length(5));
        let mut buf = BytesMut::from(&b"hel"[..]);
        assert_eq!(d.decode(&mut buf).unwrap(), Decoded::Data("hel".into()));
        buf.extend_from_slice(b"loGET /");
        assert_eq!(d.decode(&mut buf).unwrap(), Decoded::Data("lo".into()));
        assert_eq!(d.decode(&mut buf).unwrap(), Decoded::Done);
        assert!(d.is_done());
        assert_eq!(&buf[..], b"GET /");
    }

    #[test]
    fn empty_body_is_done_at_once() {
        let mut d = Decoder::new(BodyKind::Empty);
        let mut buf = BytesMut::from(&b"GET"[..]);
        assert_eq!(d.decode(&mut buf).unwrap(), Decoded::Done);
        assert_eq!(buf.len(), 3);
    }

    #[test]
    fn close_delimited_body_ends_at_eof() {
        let mut d = Decoder::new(BodyKind::CloseDelimited);
        let mut buf = BytesMut::from(&b"all of it"[..]);
        assert_eq!(d.decode(&mut buf).unwrap(), Decoded::Data("all of it".into()));
        assert_eq!(d.decode(&mut buf).unwrap(), Decoded::NeedMore);
        assert!(!d.is_done());
        d.decode_eof().unwrap();
        assert_eq!(d.decode(&mut buf).unwrap(), Decoded::Done);
    }

    #[test]
    fn chunk_encoding_round_trips_through_the_decoder() {
        let mut out = BytesMut::new();
        let mut enc = BodyEncoder::new(BodyKind::Chunked);
        let pieces: [&[u8]; 4] = [b"a", b"", &[b'z'; 300], b"tail\r\n"];
        for p in pieces {
            enc.encode(p, &mut out).unwrap();
        }
        enc.finish(&mut out).unwrap();
        assert!(out.starts_with(b"1\r\na\r\n12c\r\n"));
        let (body, _, rest) = decode_in_pieces(&out, &[]).unwrap();
        assert_eq!(body, pieces.concat());
        assert!(rest.is_empty());
    }

    #[test]
    fn chunk_helpers_write_the_wire_format() {
        let mut out = BytesMut::new();
        encode_chunk(b"", &mut out);
        assert!(out.is_empty(), "an empty chunk would end the body");
        encode_chunk(&[0; 255], &mut out);
        assert!(out.starts_with(b"ff\r\n"));
        assert!(out.ends_with(b"\0\r\n"));
        out.clear();
        encode_last_chunk(&mut out);
        assert_eq!(&out[..], b"0\r\n\r\n");
    }

    #[test]
    fn length_encoder_refuses_too_much_and_too_little() {
        let mut out = BytesMut::new();
        let mut enc = BodyEncoder::new(BodyKind::Length(5));
        enc.encode(b"abc", &mut out).unwrap();
        assert_eq!(enc.encode(b"def", &mut out), Err(EncodeError::BodyTooLong));
        assert_eq!(&out[..], b"abc");
        assert_eq!(enc.finish(&mut out), Err(EncodeError::BodyTooShort { remaining: 2 }));
        enc.encode(b"de", &mut out).unwrap();
        enc.finish(&mut out).unwrap();
        assert_eq!(&out[..], b"abcde");
        assert_eq!(enc.encode(b"x", &mut out), Err(EncodeError::AlreadyFinished));
    }

    #[test]
    fn bodiless_and_head_encoders() {
        let mut out = BytesMut::new();
        let mut empty = BodyEncoder::new(BodyKind::Empty);
        assert_eq!(empty.encode(b"x", &mut out), Err(EncodeError::BodyNotAllowed));
        empty.finish(&mut out).unwrap();
        let mut head = BodyEncoder::discard();
        head.encode(b"dropped", &mut out).unwrap();
        assert_eq!(head.frame(100, &mut out), Ok(Frame::Discard));
        head.finish(&mut out).unwrap();
        assert!(out.is_empty());
    }

    #[test]
    fn frame_lets_the_caller_send_data_itself() {
        let mut out = BytesMut::new();
        let mut enc = BodyEncoder::new(BodyKind::Chunked);
        assert_eq!(enc.frame(16, &mut out), Ok(Frame::Send { suffix: b"\r\n" }));
        assert_eq!(&out[..], b"10\r\n");
        let mut len = BodyEncoder::new(BodyKind::Length(16));
        assert_eq!(len.frame(16, &mut out), Ok(Frame::Send { suffix: b"" }));
        assert_eq!(len.remaining(), Some(0));
    }
}
