//! The driver's clients: raw HTTP/1.1 and WebSocket bytes over blocking sockets. Ten thousand of them cost
//! one fd and a small buffer each, and no client library sits between the measurement and the server.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// How long any read from the server may take before the run fails.
pub const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// The largest response head or body the driver accepts: the server's answers are a few bytes.
const MAX_MESSAGE: usize = 64 * 1024;

/// The WebSocket key of RFC 6455's example, and the accept value a correct server answers it with.
const WS_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const WS_ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// The masking key of every frame the driver sends (masking is mandatory for clients; its unpredictability
/// only matters against proxies caching attacker-chosen bytes, not here).
const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// WebSocket opcodes the driver uses.
pub const OP_TEXT: u8 = 0x1;
/// The close opcode.
pub const OP_CLOSE: u8 = 0x8;

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

/// A response: status, headers and body.
#[derive(Debug)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Header fields, names as sent.
    pub headers: Vec<(String, String)>,
    /// The body (empty for 1xx, 204 and 304).
    pub body: Vec<u8>,
}

impl Response {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// One client connection, its read buffer kept across responses (keep-alive, pipelining).
#[derive(Debug)]
pub struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    /// Connects to `127.0.0.1:port`.
    ///
    /// # Errors
    ///
    /// If the connection is refused or the process is out of fds.
    pub fn connect(port: u16) -> io::Result<Conn> {
        let stream = TcpStream::connect(("127.0.0.1", port))?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(READ_TIMEOUT))?;
        Ok(Conn { stream, buf: Vec::new() })
    }

    /// Sends raw bytes.
    ///
    /// # Errors
    ///
    /// If the connection is broken.
    pub fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Sends a request (`Content-Length` framed) and reads its response.
    ///
    /// # Errors
    ///
    /// As [`send`](Conn::send) and [`read_response`](Conn::read_response).
    pub fn request(&mut self, method: &str, path: &str, body: &[u8]) -> io::Result<Response> {
        self.send(&request_bytes(method, path, body))?;
        self.read_response()
    }

    /// Reads one response, framed by `Content-Length`.
    ///
    /// # Errors
    ///
    /// `UnexpectedEof` if the server closes first, `InvalidData` for a malformed or chunked response,
    /// `WouldBlock`/`TimedOut` after [`READ_TIMEOUT`].
    pub fn read_response(&mut self) -> io::Result<Response> {
        let head_end = loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i;
            }
            self.fill()?;
        };
        let head = std::str::from_utf8(&self.buf[..head_end]).map_err(|e| invalid(format!("head: {e}")))?;
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let status = status_line
            .strip_prefix("HTTP/1.1 ")
            .and_then(|rest| rest.get(..3))
            .and_then(|code| code.parse::<u16>().ok())
            .ok_or_else(|| invalid(format!("status line {status_line:?}")))?;
        let headers: Vec<(String, String)> =
            lines.filter_map(|l| l.split_once(':')).map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned())).collect();
        let mut response = Response { status, headers, body: Vec::new() };
        if response.header("Transfer-Encoding").is_some() {
            return Err(invalid("a chunked response (the server's answers have a Content-Length)".into()));
        }
        let len = match (status, response.header("Content-Length")) {
            (100..=199 | 204 | 304, _) => 0,
            (_, Some(v)) => v.parse::<usize>().map_err(|_| invalid(format!("Content-Length {v:?}")))?,
            (_, None) => return Err(invalid(format!("a {status} response without Content-Length"))),
        };
        if len > MAX_MESSAGE {
            return Err(invalid(format!("a body of {len} bytes")));
        }
        let start = head_end + 4;
        while self.buf.len() < start + len {
            self.fill()?;
        }
        response.body = self.buf[start..start + len].to_vec();
        self.buf.drain(..start + len);
        Ok(response)
    }

    /// Reads more bytes into the buffer.
    fn fill(&mut self) -> io::Result<()> {
        if self.buf.len() > MAX_MESSAGE {
            return Err(invalid("the server sent more than a response's worth".into()));
        }
        let mut chunk = [0u8; 4096];
        match self.stream.read(&mut chunk)? {
            0 => Err(io::ErrorKind::UnexpectedEof.into()),
            n => {
                self.buf.extend_from_slice(&chunk[..n]);
                Ok(())
            }
        }
    }

    /// Waits for the server to close the connection, with nothing more to read.
    ///
    /// # Errors
    ///
    /// `InvalidData` if bytes arrive instead, or a read error.
    pub fn expect_eof(&mut self) -> io::Result<()> {
        match self.fill() {
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(()),
            Err(e) => Err(e),
            Ok(()) => Err(invalid(format!("{} unexpected bytes instead of the end", self.buf.len()))),
        }
    }
}

/// The bytes of a `Content-Length` framed request.
pub fn request_bytes(method: &str, path: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!("{method} {path} HTTP/1.1\r\nHost: c10k\r\n").into_bytes();
    if !body.is_empty() || method != "GET" {
        out.extend_from_slice(format!("Content-Type: text/plain\r\nContent-Length: {}\r\n", body.len()).as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

/// The position of `needle` in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A WebSocket frame as received.
#[derive(Debug, PartialEq, Eq)]
pub struct Frame {
    /// The opcode (final frames only: the server's echoes are small).
    pub opcode: u8,
    /// The payload.
    pub payload: Vec<u8>,
}

/// A WebSocket client connection, opened in two steps so that a batch of handshakes can be in flight at once.
#[derive(Debug)]
pub struct WsClient {
    conn: Conn,
}

impl WsClient {
    /// Connects and sends the upgrade request to `path`.
    ///
    /// # Errors
    ///
    /// As [`Conn::connect`] and [`Conn::send`].
    pub fn start(port: u16, path: &str) -> io::Result<WsClient> {
        let mut conn = Conn::connect(port)?;
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: c10k\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: {WS_KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        conn.send(request.as_bytes())?;
        Ok(WsClient { conn })
    }

    /// Reads the handshake's answer: `101` with the right `Sec-WebSocket-Accept`.
    ///
    /// # Errors
    ///
    /// `InvalidData` for any other answer, or a read error.
    pub fn finish_handshake(&mut self) -> io::Result<()> {
        let response = self.conn.read_response()?;
        match (response.status, response.header("Sec-WebSocket-Accept")) {
            (101, Some(WS_ACCEPT)) => Ok(()),
            (status, accept) => Err(invalid(format!("handshake answered {status} with accept {accept:?}"))),
        }
    }

    /// Sends a final, masked frame.
    ///
    /// # Errors
    ///
    /// If the connection is broken.
    pub fn send(&mut self, opcode: u8, payload: &[u8]) -> io::Result<()> {
        self.conn.send(&masked_frame(opcode, payload))
    }

    /// Sends a close frame with `code` and no reason.
    ///
    /// # Errors
    ///
    /// If the connection is broken.
    pub fn send_close(&mut self, code: u16) -> io::Result<()> {
        self.send(OP_CLOSE, &code.to_be_bytes())
    }

    /// Reads one frame.
    ///
    /// # Errors
    ///
    /// `InvalidData` for a masked, fragmented or oversized frame; `UnexpectedEof` if the server closed.
    pub fn read_frame(&mut self) -> io::Result<Frame> {
        loop {
            if let Some((frame, used)) = parse_frame(&self.conn.buf)? {
                self.conn.buf.drain(..used);
                return Ok(frame);
            }
            self.conn.fill()?;
        }
    }

    /// Waits for the server to close the TCP connection (after the close handshake).
    ///
    /// # Errors
    ///
    /// As [`Conn::expect_eof`].
    pub fn expect_eof(&mut self) -> io::Result<()> {
        self.conn.expect_eof()
    }
}

/// A final frame with `payload`, masked with [`MASK`].
fn masked_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut frame = vec![0x80 | opcode];
    match payload.len() {
        n @ 0..=125 => frame.push(0x80 | n as u8),
        n @ 126..=0xffff => {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            frame.push(0x80 | 127);
            frame.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    frame.extend_from_slice(&MASK);
    frame.extend(payload.iter().zip(MASK.iter().cycle()).map(|(b, m)| b ^ m));
    frame
}

/// Parses a server frame from the front of `buf`: `Ok(None)` until it is complete; the frame and the bytes it
/// took.
fn parse_frame(buf: &[u8]) -> io::Result<Option<(Frame, usize)>> {
    let [first, second, ..] = *buf else { return Ok(None) };
    if first & 0x80 == 0 || second & 0x80 != 0 {
        return Err(invalid(format!("a fragmented or masked server frame ({first:#04x} {second:#04x})")));
    }
    let (len, header) = match second & 0x7f {
        126 if buf.len() >= 4 => (usize::from(u16::from_be_bytes([buf[2], buf[3]])), 4),
        127 if buf.len() >= 10 => {
            let len = u64::from_be_bytes(buf[2..10].try_into().expect("eight bytes"));
            (usize::try_from(len).unwrap_or(usize::MAX), 10)
        }
        126 | 127 => return Ok(None),
        n => (usize::from(n), 2),
    };
    if len > MAX_MESSAGE {
        return Err(invalid(format!("a frame of {len} bytes")));
    }
    if buf.len() < header + len {
        return Ok(None);
    }
    Ok(Some((Frame { opcode: first & 0x0f, payload: buf[header..header + len].to_vec() }, header + len)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masked_frame_unmasks_to_the_payload() {
        let frame = masked_frame(OP_TEXT, b"hello");
        assert_eq!(frame[..2], [0x81, 0x85]);
        let unmasked: Vec<u8> = frame[6..].iter().zip(frame[2..6].iter().cycle()).map(|(b, m)| b ^ m).collect();
        assert_eq!(unmasked, b"hello");
        assert_eq!(masked_frame(OP_TEXT, &[0; 300])[1..4], [0x80 | 126, 1, 44]);
    }

    #[test]
    fn parse_frame_waits_for_the_whole_frame() {
        let mut wire = vec![0x81, 126, 0, 200];
        wire.extend_from_slice(&[b'x'; 200]);
        wire.extend_from_slice(&[0x88, 2, 0x03, 0xe8]);
        assert!(parse_frame(&wire[..3]).unwrap().is_none());
        assert!(parse_frame(&wire[..203]).unwrap().is_none());
        let (frame, used) = parse_frame(&wire).unwrap().unwrap();
        assert_eq!((frame.opcode, frame.payload.len(), used), (OP_TEXT, 200, 204));
        let (close, used) = parse_frame(&wire[204..]).unwrap().unwrap();
        assert_eq!((close.opcode, close.payload.as_slice(), used), (OP_CLOSE, &[0x03, 0xe8][..], 4));
    }

    #[test]
    fn parse_frame_rejects_masked_and_fragmented_server_frames() {
        assert!(parse_frame(&[0x81, 0x81, 0, 0, 0, 0, b'x']).is_err());
        assert!(parse_frame(&[0x01, 1, b'x']).is_err());
    }

    #[test]
    fn requests_carry_a_length_unless_they_are_bodiless_gets() {
        assert_eq!(request_bytes("GET", "/", b""), b"GET / HTTP/1.1\r\nHost: c10k\r\n\r\n");
        let post = String::from_utf8(request_bytes("POST", "/wait", b"")).unwrap();
        assert!(post.ends_with("Content-Length: 0\r\n\r\n"), "{post}");
    }
}
