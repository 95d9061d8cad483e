//! A model of the server connection's reading side: [`RequestParser`] and the body [`Decoder`] driven over a
//! read buffer the way `gale-http1`'s `server/conn.rs` drives them, minus the I/O and the service.
//!
//! Every call checks the invariants the connection relies on: a parsed head is well-formed and its framing
//! agrees with its fields, body pieces are never empty and add up to the announced length, and each step
//! makes progress (so a connection can never spin on its buffer).

use bytes::BytesMut;
use gale_http1::headers::{is_token, is_valid_value, list_contains_token};
use gale_http1::proto::body::{BodyKind, Decoded, Decoder};
use gale_http1::proto::request::{RequestHead, RequestParser, TargetForm};
use gale_http1::proto::{Limits, Method, ParseError, Version};

/// The statuses a server answers a refused request with.
pub const ERROR_STATUSES: [u16; 6] = [400, 413, 414, 431, 501, 505];

/// Header fields as `(name, value)` byte strings, in order.
pub type Fields = Vec<(Vec<u8>, Vec<u8>)>;

/// One request as the connection saw it: every fact of its head, and its body so far.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// The method.
    pub method: Method,
    /// The request target as sent.
    pub target: String,
    /// The target's form.
    pub form: TargetForm,
    /// The version.
    pub version: Version,
    /// [`RequestHead::path`].
    pub path: String,
    /// [`RequestHead::query`].
    pub query: Option<String>,
    /// [`RequestHead::host`].
    pub host: Option<String>,
    /// The header fields.
    pub headers: Fields,
    /// The body framing.
    pub body_kind: BodyKind,
    /// [`RequestHead::keep_alive`].
    pub keep_alive: bool,
    /// [`RequestHead::expects_continue`].
    pub expects_continue: bool,
    /// [`RequestHead::is_upgrade`].
    pub upgrade: bool,
    /// The length of the head on the wire.
    pub head_len: usize,
    /// The body bytes decoded so far.
    pub body: Vec<u8>,
    /// The trailer fields of a finished chunked body.
    pub trailers: Option<Fields>,
    /// Whether the body is complete.
    pub complete: bool,
}

impl Message {
    /// Records `head`, after checking what must hold of any head the parser accepts.
    ///
    /// # Panics
    ///
    /// If the head breaks one of those rules.
    pub fn from_head(head: &RequestHead, limits: &Limits) -> Message {
        let headers: Fields = head.headers().iter().map(|(n, v)| (n.to_vec(), v.to_vec())).collect();
        let bytes = head.head_bytes();
        assert!(bytes.len() <= limits.max_header_size, "head of {} bytes accepted", bytes.len());
        assert!(bytes.ends_with(b"\r\n\r\n"), "head does not end with an empty line");
        assert!(headers.len() <= limits.max_headers, "{} fields accepted", headers.len());
        assert_eq!(Method::from_bytes(head.method().as_str().as_bytes()).as_ref(), Some(head.method()));
        let target = head.target();
        assert!(!target.is_empty() && !target.bytes().any(|b| b.is_ascii_control() || b == b' '), "{target:?}");
        for (name, value) in &headers {
            assert!(is_token(name), "field name {:?}", String::from_utf8_lossy(name));
            assert!(is_valid_value(value), "field value {:?}", String::from_utf8_lossy(value));
            let untrimmed = |b: Option<&u8>| matches!(b, Some(b' ' | b'\t'));
            assert!(!untrimmed(value.first()) && !untrimmed(value.last()), "untrimmed value");
        }
        let all = |name: &'static str| headers.iter().filter(move |(n, _)| n.eq_ignore_ascii_case(name.as_bytes()));
        let hosts = all("host").count();
        assert!(hosts <= 1, "several Host fields accepted");
        if head.version() == Version::Http11 {
            assert_eq!(hosts, 1, "HTTP/1.1 request without Host accepted");
        }
        // Framing: exactly what the fields say, and never two ways at once (request smuggling).
        let lengths: Vec<u64> = all("content-length")
            .flat_map(|(_, v)| v.split(|&b| b == b','))
            .map(|item| String::from_utf8_lossy(item).trim().parse().expect("Content-Length accepted as a number"))
            .collect();
        let codings = all("transfer-encoding").count();
        match head.body_kind() {
            BodyKind::Empty => assert!(codings == 0 && lengths.iter().all(|&n| n == 0)),
            BodyKind::Length(n) => assert!(codings == 0 && !lengths.is_empty() && lengths.iter().all(|&m| m == n)),
            BodyKind::Chunked => {
                assert!(lengths.is_empty(), "chunked with Content-Length");
                assert_eq!(head.version(), Version::Http11, "chunked HTTP/1.0 request");
                let (_, last) = all("transfer-encoding").next_back().expect("a Transfer-Encoding field");
                let last = last.rsplit(|&b| b == b',').next().unwrap_or_default();
                assert!(String::from_utf8_lossy(last).trim().eq_ignore_ascii_case("chunked"));
            }
            BodyKind::CloseDelimited => panic!("a request body delimited by closing"),
        }
        if head.is_upgrade() {
            assert!(all("upgrade").count() > 0);
            assert!(all("connection").any(|(_, v)| list_contains_token(v, b"upgrade")));
        }
        match head.target_form() {
            TargetForm::Origin => assert!(target.starts_with('/')),
            TargetForm::Asterisk => assert!(target == "*" && *head.method() == Method::Options),
            TargetForm::Authority => assert!(*head.method() == Method::Connect && head.authority() == Some(target)),
            TargetForm::Absolute => assert!(head.authority().is_some_and(|a| !a.is_empty())),
        }
        Message {
            method: head.method().clone(),
            target: target.to_owned(),
            form: head.target_form(),
            version: head.version(),
            path: head.path().to_owned(),
            query: head.query().map(str::to_owned),
            host: head.host().map(str::to_owned),
            headers,
            body_kind: head.body_kind(),
            keep_alive: head.keep_alive(),
            expects_continue: head.expects_continue(),
            upgrade: head.is_upgrade(),
            head_len: bytes.len(),
            body: Vec::new(),
            trailers: None,
            complete: false,
        }
    }

    /// The head written out again in canonical form: one space after each colon, no leading empty line.
    pub fn canonical_head(&self) -> Vec<u8> {
        let mut out = format!("{} {} {}\r\n", self.method, self.target, self.version.as_str()).into_bytes();
        for (name, value) in &self.headers {
            out.extend_from_slice(name);
            out.extend_from_slice(b": ");
            out.extend_from_slice(value);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out
    }

    /// Everything but the wire length of the head and the body: what a re-encoded head must reproduce.
    pub fn head_facts(&self) -> Message {
        Message { head_len: 0, body: Vec::new(), trailers: None, complete: false, ..self.clone() }
    }
}

/// What the connection does besides parsing.
#[derive(Clone, Copy, Debug)]
pub struct Policy {
    /// The head limits.
    pub limits: Limits,
    /// Bodies longer than this are refused with 413 (`ServerOptions::max_body_size`); `None` for no limit.
    pub max_body: Option<u64>,
    /// Stop reading after a request that does not keep the connection alive, or that switches protocols.
    pub honour_close: bool,
}

/// Where the connection stands.
#[derive(Debug)]
enum State {
    /// Reading a head.
    Head,
    /// Reading the body of the last message.
    Body(Decoder),
    /// The connection ends after the last message (no keep-alive, or a protocol switch).
    Closed,
    /// A request was refused with this status.
    Failed(u16),
}

/// Where the connection stands at the end of its input, for comparisons.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Between requests, nothing buffered.
    Idle,
    /// Part of a head is buffered.
    PartialHead,
    /// Part of a body is still to come.
    PartialBody,
    /// The connection is closing after its last request.
    Closed,
    /// A request was refused with this status.
    Failed(u16),
}

/// The reading side of one server connection.
#[derive(Debug)]
pub struct ServerModel {
    policy: Policy,
    parser: RequestParser,
    buf: BytesMut,
    state: State,
    /// The requests seen, the last one possibly incomplete.
    pub messages: Vec<Message>,
    /// The error that refused a request, if one was refused.
    pub error: Option<ParseError>,
}

impl ServerModel {
    /// A connection under `policy`, before any byte arrived.
    pub fn new(policy: Policy) -> ServerModel {
        ServerModel {
            policy,
            parser: RequestParser::new(policy.limits),
            buf: BytesMut::new(),
            state: State::Head,
            messages: Vec::new(),
            error: None,
        }
    }

    /// Appends `bytes` to the read buffer and takes out every head and body piece it completes.
    ///
    /// # Panics
    ///
    /// If an invariant breaks, or if the loop stops making progress.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
        // Each turn consumes bytes or changes state, and a state change is followed by consuming bytes: the
        // number of turns is bounded by twice the buffered bytes, plus the turns that find nothing to do.
        let mut budget = 2 * self.buf.len() + 4;
        loop {
            budget = budget.checked_sub(1).expect("the connection loop makes no progress");
            match &mut self.state {
                State::Closed | State::Failed(_) => return,
                State::Head => {
                    let before = self.buf.len();
                    match self.parser.parse(&mut self.buf) {
                        Ok(Some(head)) => {
                            let message = Message::from_head(&head, &self.policy.limits);
                            assert_eq!(before - self.buf.len(), message.head_len, "head length and bytes consumed");
                            let kind = message.body_kind;
                            self.messages.push(message);
                            match (kind, self.policy.max_body) {
                                (BodyKind::Length(n), Some(max)) if n > max => self.state = State::Failed(413),
                                (BodyKind::Empty, _) => self.end_message(),
                                _ => self.state = State::Body(Decoder::new(kind)),
                            }
                        }
                        Ok(None) => {
                            assert_eq!(self.buf.len(), before, "a partial parse consumed bytes");
                            return;
                        }
                        Err(e) => self.fail(e),
                    }
                }
                State::Body(decoder) => {
                    let before = self.buf.len();
                    let message = self.messages.last_mut().expect("a body follows a head");
                    match decoder.decode(&mut self.buf) {
                        Ok(Decoded::Data(data)) => {
                            assert!(!data.is_empty(), "empty body piece");
                            let consumed = before - self.buf.len();
                            // Chunked framing is consumed along with the data it frames.
                            match message.body_kind {
                                BodyKind::Chunked => assert!(consumed >= data.len()),
                                _ => assert_eq!(consumed, data.len(), "piece length and bytes consumed"),
                            }
                            message.body.extend_from_slice(&data);
                            if let BodyKind::Length(n) = message.body_kind {
                                assert!(message.body.len() as u64 <= n, "more body than Content-Length");
                            }
                            if self.policy.max_body.is_some_and(|max| message.body.len() as u64 > max) {
                                self.state = State::Failed(413);
                            }
                        }
                        Ok(Decoded::NeedMore) => {
                            assert!(!decoder.is_done());
                            return;
                        }
                        Ok(Decoded::Done) => {
                            assert!(decoder.is_done());
                            if let BodyKind::Length(n) = message.body_kind {
                                assert_eq!(message.body.len() as u64, n, "body shorter than Content-Length");
                            }
                            message.trailers = decoder
                                .take_trailers()
                                .map(|t| t.iter().map(|(n, v)| (n.to_vec(), v.to_vec())).collect());
                            self.end_message();
                        }
                        Err(e) => self.fail(e),
                    }
                }
            }
        }
    }

    /// The peer closed its side: a body cut short is an error the server answers by closing.
    pub fn outcome(&mut self) -> Outcome {
        match &mut self.state {
            State::Closed => Outcome::Closed,
            State::Failed(status) => Outcome::Failed(*status),
            State::Head if self.buf.is_empty() => Outcome::Idle,
            State::Head => Outcome::PartialHead,
            State::Body(decoder) => {
                assert!(decoder.decode_eof().is_err(), "an unfinished request body was accepted at EOF");
                Outcome::PartialBody
            }
        }
    }

    fn end_message(&mut self) {
        let message = self.messages.last_mut().expect("a message ends");
        message.complete = true;
        let stop = !message.keep_alive || message.upgrade;
        self.state = if self.policy.honour_close && stop { State::Closed } else { State::Head };
    }

    fn fail(&mut self, error: ParseError) {
        assert!(ERROR_STATUSES.contains(&error.status()), "{error:?} answered with {}", error.status());
        self.error = Some(error);
        self.state = State::Failed(error.status());
    }
}

/// Runs a model over `pieces`, one after the other.
pub fn run<'a>(policy: Policy, pieces: impl IntoIterator<Item = &'a [u8]>) -> (Vec<Message>, Outcome) {
    let mut model = ServerModel::new(policy);
    for piece in pieces {
        model.feed(piece);
    }
    let outcome = model.outcome();
    (model.messages, outcome)
}

/// Checks that feeding the stream in pieces ends like feeding it whole.
///
/// The messages must be identical (but for how much of a body over the limit was read before it was
/// refused). The outcome must be too, but for one latitude the parser is allowed:
/// a head still arriving is fully checked only once it has doubled in size or ended (which keeps the work
/// linear), so garbage without an empty line may still be waiting for bytes in pieces where the whole stream
/// was refused at once; and which of two faults of one head is reported first may differ.
///
/// # Panics
///
/// If they differ otherwise.
pub fn assert_same(whole: &(Vec<Message>, Outcome), split: &(Vec<Message>, Outcome)) {
    if (whole.1, split.1) == (Outcome::Failed(413), Outcome::Failed(413)) {
        // A body over the limit is refused at the first piece that passes it, and how much was read by then
        // depends on the pieces.
        let (a, b) = (whole.0.split_last().expect("a message"), split.0.split_last().expect("a message"));
        assert_eq!(a.1, b.1, "messages depend on how the stream was cut");
        assert_eq!(a.0.head_facts(), b.0.head_facts(), "messages depend on how the stream was cut");
        let common = a.0.body.len().min(b.0.body.len());
        assert_eq!(a.0.body[..common], b.0.body[..common], "bodies depend on how the stream was cut");
        return;
    }
    assert_eq!(whole.0, split.0, "messages depend on how the stream was cut");
    match (whole.1, split.1) {
        (a, b) if a == b => {}
        (Outcome::Failed(_), Outcome::PartialHead) => {}
        (Outcome::Failed(a), Outcome::Failed(b)) if a != 413 && b != 413 => {}
        (a, b) => panic!("whole stream ends {a:?}, cut stream {b:?}"),
    }
}
