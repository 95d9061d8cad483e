//! The HTTP/1 request parser and body decoder, driven as the server connection drives them, over a byte stream
//! cut at fuzzer-chosen points: the outcome must not depend on the cuts, and an error always carries a status
//! the server answers with.
#![no_main]

use bytes::BytesMut;
use gale_http1::proto::Limits;
use gale_http1::proto::body::{BodyKind, Decoded, Decoder};
use gale_http1::proto::request::RequestParser;
use libfuzzer_sys::fuzz_target;

/// One parsed message: method, target, body.
type Message = (String, String, Vec<u8>);

struct Conn {
    parser: RequestParser,
    buf: BytesMut,
    body: Option<(Decoder, Message)>,
    done: Vec<Message>,
    error: Option<u16>,
}

impl Conn {
    fn new() -> Conn {
        Conn {
            parser: RequestParser::new(Limits::default()),
            buf: BytesMut::new(),
            body: None,
            done: Vec::new(),
            error: None,
        }
    }

    /// Takes every message it can out of the buffer.
    fn step(&mut self) {
        while self.error.is_none() {
            if let Some((decoder, message)) = self.body.as_mut() {
                match decoder.decode(&mut self.buf) {
                    Ok(Decoded::Data(chunk)) => message.2.extend_from_slice(&chunk),
                    Ok(Decoded::Done) => self.done.push(self.body.take().expect("in a body").1),
                    Ok(Decoded::NeedMore) => return,
                    Err(e) => self.error = Some(e.status()),
                }
                continue;
            }
            match self.parser.parse(&mut self.buf) {
                Ok(Some(head)) => {
                    let message = (head.method().as_str().to_owned(), head.target().to_owned(), Vec::new());
                    match head.body_kind() {
                        BodyKind::Empty => self.done.push(message),
                        kind => self.body = Some((Decoder::new(kind), message)),
                    }
                }
                Ok(None) => return,
                Err(e) => self.error = Some(e.status()),
            }
        }
    }

    fn feed(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
        self.step();
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&n, rest)) = data.split_first() else { return };
    // The first bytes choose where the stream is cut; the rest is the stream.
    let ncuts = usize::from(n % 8).min(rest.len());
    let (cut_bytes, input) = rest.split_at(ncuts);
    let mut cuts: Vec<usize> = cut_bytes.iter().map(|&b| usize::from(b) * input.len() / 256).collect();
    cuts.sort_unstable();

    let mut whole = Conn::new();
    whole.feed(input);

    let mut split = Conn::new();
    let mut from = 0;
    for cut in cuts.into_iter().chain(std::iter::once(input.len())) {
        split.feed(&input[from..cut]);
        from = cut;
    }

    if let Some(status) = whole.error {
        assert!([400, 413, 414, 431, 501, 505].contains(&status), "unexpected status {status}");
    }
    assert_eq!(whole.done, split.done, "messages depend on how the stream was cut");
    // Cutting never invents a refusal. It may delay one: an unfinished head that arrives in pieces is fully
    // checked only when it has doubled or ended (which keeps the work linear), so garbage without a line end
    // can still be waiting for bytes where the whole stream was already refused; the header timeout or the
    // next bytes end it. And which status it is may differ (a bad version can be seen before a bad header).
    if split.error.is_some() {
        assert!(whole.error.is_some(), "a cut stream was refused but the whole one was not");
    }
    if let Some(status) = split.error {
        assert!([400, 413, 414, 431, 501, 505].contains(&status), "unexpected status {status}");
    }
});
