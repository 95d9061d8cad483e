//! Machinery shared by the request and response heads, in both directions: waiting for a complete head
//! without rescanning, turning `httparse` fields into a [`HeaderMap`] while applying the rules `httparse` leaves
//! to us, and writing header fields safely.

use std::mem::MaybeUninit;

use bytes::BytesMut;

use super::Limits;
use super::error::{EncodeError, ParseError, ParseErrorKind};
use crate::headers::{self, HeaderMap, trim_ows};

/// Header fields parsed into a stack array before spilling to the heap; `Limits::max_headers` above this
/// costs one allocation per head.
pub(crate) const STACK_HEADERS: usize = 100;

/// One slot for a field parsed by `httparse`.
pub(crate) type Slot<'b> = MaybeUninit<httparse::Header<'b>>;

/// Room for `max` fields: the caller's uninitialized stack array, or for larger limits the heap.
pub(crate) fn header_slots<'a, 'b>(
    stack: &'a mut [Slot<'b>; STACK_HEADERS],
    heap: &'a mut Vec<Slot<'b>>,
    max: usize,
) -> &'a mut [Slot<'b>] {
    if max <= STACK_HEADERS {
        &mut stack[..max]
    } else {
        heap.resize(max, MaybeUninit::uninit());
        heap
    }
}

/// Room for `max` fields on the heap, for limits above [`STACK_HEADERS`]: out of line, as seldom needed.
#[cold]
#[inline(never)]
pub(crate) fn heap_slots<'b>(max: usize) -> Vec<Slot<'b>> {
    vec![MaybeUninit::uninit(); max]
}

/// Skips the single empty line RFC 9112 §2.2 tells servers to tolerate before a start line.
///
/// Returns where the start line begins, `None` if more bytes are needed to tell, or an error for a bare LF or
/// a second empty line (refusing those early keeps a stream of CRLFs from costing a full parse each).
#[inline]
pub(crate) fn skip_empty_line(buf: &[u8], start_line: ParseErrorKind) -> Result<Option<usize>, ParseError> {
    // Mostly a start line, told by one comparison: every byte above CR starts one (as far as this is concerned).
    if buf.first().is_some_and(|&b| b > b'\r') {
        return Ok(Some(0));
    }
    match buf {
        [] | [b'\r'] | [b'\r', b'\n'] => Ok(None),
        [b'\r', b'\n', b'\r' | b'\n', ..] => Err(start_line.into()),
        [b'\r', b'\n', ..] => Ok(Some(2)),
        [b'\n', ..] => Err(ParseErrorKind::InvalidLineEnding.into()),
        [b'\r', ..] => Err(start_line.into()),
        _ => Ok(Some(0)),
    }
}

/// Remembers how far a partial head has been searched, so that bytes trickling in cost linear time in total.
///
/// The full parser runs on the first look, once an empty line (the end of the head) has arrived, and whenever
/// the buffer has doubled since it last ran: the last rule bounds how long a malformed head that never ends
/// goes unnoticed, at a total cost of at most twice its length.
#[derive(Debug, Default)]
pub(crate) struct HeadScanner {
    /// Bytes of the buffer known not to complete the head; 0 before the first look.
    scanned: usize,
    /// Length of the buffer when the full parser last ran.
    parsed: usize,
    /// Whether the end of the start line has been seen.
    start_line_ended: bool,
    /// Full parses run, and the bytes they covered (tests assert the scanner's economy).
    #[cfg(test)]
    pub(crate) full_parses: usize,
    #[cfg(test)]
    pub(crate) parsed_bytes: usize,
}

impl HeadScanner {
    /// Whether to run the full parser on `buf` now.
    pub(crate) fn ready(&mut self, buf: &[u8], start: usize) -> bool {
        let ready = self.scanned == 0 || buf.len() >= 2 * self.parsed || {
            // The last two bytes may begin a line ending whose rest had not arrived.
            let from = self.scanned.min(buf.len()).saturating_sub(2).max(start);
            memchr::memchr_iter(b'\n', &buf[from..]).any(|i| {
                let after = &buf[from + i + 1..];
                after.starts_with(b"\r\n") || after.starts_with(b"\n")
            })
        };
        if ready {
            self.parsed = buf.len();
            #[cfg(test)]
            {
                self.full_parses += 1;
                self.parsed_bytes += buf.len();
            }
        }
        ready
    }

    /// Records that `buf` holds no complete head, and refuses it if it already breaks a limit.
    pub(crate) fn wait(
        &mut self,
        buf: &[u8],
        start: usize,
        limits: &Limits,
        line_too_long: ParseErrorKind,
    ) -> Result<(), ParseError> {
        if !self.start_line_ended {
            let from = self.scanned.max(start).min(buf.len());
            match memchr::memchr(b'\n', &buf[from..]) {
                Some(i) if from + i + 1 - start > limits.max_request_line => return Err(line_too_long.into()),
                Some(_) => self.start_line_ended = true,
                None if buf.len() - start > limits.max_request_line => return Err(line_too_long.into()),
                None => {}
            }
        }
        if buf.len() > limits.header_size() {
            return Err(ParseErrorKind::HeadTooLarge.into());
        }
        self.scanned = buf.len().max(1);
        Ok(())
    }

    /// Forgets the head just parsed.
    pub(crate) fn reset(&mut self) {
        self.scanned = 0;
        self.parsed = 0;
        self.start_line_ended = false;
    }
}

/// Maps an `httparse` error to ours. `buf` is the unparsed head, used to tell apart causes `httparse` lumps.
pub(crate) fn map_httparse_error(err: httparse::Error, buf: &[u8], start_line: ParseErrorKind) -> ParseError {
    use httparse::Error as E;
    let kind = match err {
        E::HeaderName => name_error(buf),
        E::HeaderValue => ParseErrorKind::InvalidHeaderValue,
        E::TooManyHeaders => ParseErrorKind::TooManyHeaders,
        E::Version if claims_other_version(buf, start_line) => ParseErrorKind::UnsupportedVersion,
        E::NewLine | E::Token | E::Status | E::Version => start_line,
    };
    kind.into()
}

/// Tells a folded line from a malformed name: finds the first field line `httparse` must have stopped at.
fn name_error(buf: &[u8]) -> ParseErrorKind {
    let mut rest = memchr::memchr(b'\n', buf).map_or(&[][..], |nl| &buf[nl + 1..]);
    loop {
        if let [b' ' | b'\t', ..] = rest {
            return ParseErrorKind::ObsoleteLineFolding;
        }
        let Some(nl) = memchr::memchr(b'\n', rest) else {
            return ParseErrorKind::InvalidHeaderName;
        };
        let line = &rest[..nl];
        match memchr::memchr(b':', line) {
            Some(colon) if headers::is_token(&line[..colon]) => rest = &rest[nl + 1..],
            _ => return ParseErrorKind::InvalidHeaderName,
        }
    }
}

/// Whether the start line carries a well-formed `HTTP/x.y` version that simply is not 1.0 or 1.1.
fn claims_other_version(buf: &[u8], start_line: ParseErrorKind) -> bool {
    let line = match memchr::memchr(b'\n', buf) {
        Some(i) => &buf[..i],
        None => buf,
    };
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let mut parts = line.split(|&b| b == b' ');
    let version = if start_line == ParseErrorKind::InvalidStatusLine {
        parts.next().unwrap_or_default()
    } else {
        // method SP target SP version: anything else is a malformed line, whatever its end looks like.
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some(_), Some(_), Some(version), None) => version,
            _ => return false,
        }
    };
    matches!(version, [b'H', b'T', b'T', b'P', b'/', major, b'.', minor] if major.is_ascii_digit() && minor.is_ascii_digit())
}

/// Offset of `part` inside `buf`; `part` must be a subslice of `buf`.
#[inline]
pub(crate) fn offset(buf: &[u8], part: &[u8]) -> usize {
    let off = part.as_ptr() as usize - buf.as_ptr() as usize;
    debug_assert!(off + part.len() <= buf.len());
    off
}

/// The transfer codings of a message, as far as framing is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Coding {
    /// No `Transfer-Encoding` field.
    Absent,
    /// Exactly `chunked`.
    Chunked,
    /// Well-formed, but with codings other than `chunked`; `chunked_last` tells whether `chunked` ends the list.
    Unsupported { chunked_last: bool },
    /// Empty elements, non-tokens, or `chunked` applied twice.
    Malformed,
}

/// What the fields that steer framing and connection handling say; filled while the fields are collected.
#[derive(Debug)]
pub(crate) struct Fields {
    pub(crate) content_length: Option<u64>,
    pub(crate) coding: Coding,
    pub(crate) hosts: usize,
    /// The yes-or-no facts, one bit each ([`Fields::CLOSE`] and the others): one word to keep and test, where
    /// separate flags would be moved one by one.
    flags: u16,
}

impl Fields {
    /// A `Host` value is not a valid host.
    pub(crate) const HOST_INVALID: u16 = 1;
    /// `Connection` lists `close`.
    pub(crate) const CLOSE: u16 = 1 << 1;
    /// `Connection` lists `keep-alive`.
    pub(crate) const KEEP_ALIVE: u16 = 1 << 2;
    /// `Connection` lists `upgrade`.
    pub(crate) const CONNECTION_UPGRADE: u16 = 1 << 3;
    /// An `Upgrade` field is present.
    pub(crate) const UPGRADE: u16 = 1 << 4;
    /// The last `Expect` field is `100-continue`.
    pub(crate) const EXPECT_CONTINUE: u16 = 1 << 5;
    /// Transfer-coding bookkeeping across several `Transfer-Encoding` lines.
    const TE_PRESENT: u16 = 1 << 6;
    const TE_LAST_CHUNKED: u16 = 1 << 7;
    const TE_CHUNKED_BEFORE: u16 = 1 << 8;
    const TE_OTHER: u16 = 1 << 9;
    const TE_MALFORMED: u16 = 1 << 10;

    fn new() -> Self {
        Fields { content_length: None, coding: Coding::Absent, hosts: 0, flags: 0 }
    }

    /// Whether every bit of `bits` is set.
    #[inline]
    pub(crate) fn has(&self, bits: u16) -> bool {
        self.flags & bits == bits
    }

    /// Every bit above, for a head to keep and test with the public ones.
    #[inline]
    pub(crate) fn bits(&self) -> u16 {
        self.flags
    }

    /// Sets or clears `bit`.
    #[inline]
    fn set(&mut self, bit: u16, on: bool) {
        self.flags = if on { self.flags | bit } else { self.flags & !bit };
    }

    /// `Content-Length: 1*DIGIT`, possibly repeated or listed; every copy must agree (RFC 9110 §8.6 lets a
    /// recipient accept identical duplicates, as Tornado and hyper do; differing ones are a smuggling attempt).
    fn content_length(&mut self, value: &[u8]) -> Result<(), ParseErrorKind> {
        for item in value.split(|&b| b == b',') {
            let n = parse_decimal(trim_ows(item)).ok_or(ParseErrorKind::InvalidContentLength)?;
            match self.content_length {
                Some(prev) if prev != n => return Err(ParseErrorKind::ConflictingContentLength),
                _ => self.content_length = Some(n),
            }
        }
        Ok(())
    }

    /// `Transfer-Encoding`: only a lone `chunked` is accepted in the end, compared case-insensitively.
    fn transfer_encoding(&mut self, value: &[u8]) {
        self.flags |= Self::TE_PRESENT;
        for item in value.split(|&b| b == b',') {
            let item = trim_ows(item);
            if !headers::is_token(item) {
                self.flags |= Self::TE_MALFORMED;
            } else if item.eq_ignore_ascii_case(b"chunked") {
                // Chunked twice would need two rounds of decoding (RFC 9112 §6.1 forbids it).
                if self.flags & (Self::TE_LAST_CHUNKED | Self::TE_CHUNKED_BEFORE) != 0 {
                    self.flags |= Self::TE_MALFORMED;
                }
                self.flags |= Self::TE_CHUNKED_BEFORE | Self::TE_LAST_CHUNKED;
            } else {
                self.flags |= Self::TE_OTHER;
                self.flags &= !Self::TE_LAST_CHUNKED;
            }
        }
    }

    fn connection(&mut self, value: &[u8]) {
        for item in value.split(|&b| b == b',') {
            let item = trim_ows(item);
            if item.eq_ignore_ascii_case(b"close") {
                self.flags |= Self::CLOSE;
            } else if item.eq_ignore_ascii_case(b"keep-alive") {
                self.flags |= Self::KEEP_ALIVE;
            } else if item.eq_ignore_ascii_case(b"upgrade") {
                self.flags |= Self::CONNECTION_UPGRADE;
            }
        }
    }

    fn finish(&mut self) {
        let last_chunked = self.has(Self::TE_LAST_CHUNKED);
        self.coding = if !self.has(Self::TE_PRESENT) {
            Coding::Absent
        } else if self.has(Self::TE_MALFORMED) {
            Coding::Malformed
        } else if last_chunked && !self.has(Self::TE_OTHER) {
            Coding::Chunked
        } else {
            Coding::Unsupported { chunked_last: last_chunked }
        };
    }
}

/// Parses `1*DIGIT` into a `u64`, refusing signs, spaces, emptiness and overflow.
pub(crate) fn parse_decimal(s: &[u8]) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    s.iter().try_fold(0u64, |n, &b| {
        let d = b.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        n.checked_mul(10)?.checked_add(u64::from(d))
    })
}

/// Bytes a `Host` value may hold besides `%HH`: RFC 3986 unreserved and sub-delims but the comma, plus the
/// colon and brackets of ports and IPv6 literals.
static HOST_BYTE: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        t[i] = b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'.' | b'_' | b'~' | b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+')
            || matches!(b, b';' | b'=' | b':' | b'[' | b']');
        i += 1;
    }
    t
};

/// Whether `host` is a valid `Host` value: `uri-host [ ":" port ]` with RFC 3986's characters (brackets and
/// colons anywhere, for IPv6 literals), like Tornado 6.5. Commas are refused: they betray several hosts folded
/// into one line. Empty is valid (RFC 9110 §7.2, for targets without an authority).
#[inline(always)]
pub(crate) fn is_valid_host(host: &[u8]) -> bool {
    // Branch-free over the usual plain host; `%` sends us the slow way.
    if host.iter().fold(true, |ok, &b| ok & HOST_BYTE[b as usize]) {
        return true;
    }
    let mut i = 0;
    while i < host.len() {
        if host[i] == b'%' && host.len() > i + 2 && host[i + 1].is_ascii_hexdigit() && host[i + 2].is_ascii_hexdigit() {
            i += 3;
        } else if HOST_BYTE[host[i] as usize] {
            i += 1;
        } else {
            return false;
        }
    }
    true
}

/// Whether `gap`, the bytes between the end of one line's content and the start of the next line, is
/// optional trailing whitespace and then exactly `ending`.
#[inline]
fn gap_is(gap: &[u8], ending: &[u8]) -> bool {
    let mut g = gap;
    while let [b' ' | b'\t', rest @ ..] = g {
        g = rest;
    }
    g == ending
}

/// Whether the token `name` is `lower` (lowercase letters and `-`) in any case. Setting bit 5 maps the
/// uppercase letters onto lowercase ones; the only other byte it could map onto `-` is CR, which no token holds.
/// The first byte is compared alone first: most names that share a length with one we look for differ there.
/// The rest is compared eight bytes at a time.
#[inline]
fn token_is<const N: usize>(name: &[u8], lower: &[u8; N]) -> bool {
    /// Up to eight bytes as one word, zero-padded.
    #[inline(always)]
    fn word(bytes: &[u8]) -> u64 {
        let mut w = [0; 8];
        w[..bytes.len()].copy_from_slice(bytes);
        u64::from_le_bytes(w)
    }
    if name.len() != N || name[0] | 0x20 != lower[0] {
        return false;
    }
    let mut eq = true;
    let mut at = 0;
    while at < N {
        let end = (at + 8).min(N);
        let case = u64::from_le_bytes([0x20; 8]) >> (8 * (8 - (end - at)));
        eq &= word(&name[at..end]) | case == word(&lower[at..end]);
        at = end;
    }
    eq
}

/// Records the fields `httparse` found into `map` as offsets into `buf`, checks the line endings it was lenient
/// about, and summarizes the fields that steer framing.
///
/// `line_end` is where the start line's content ends (its line ending follows) and `head_end` the length of the
/// head. `fields` must come from `httparse` with its default configuration, whose guarantees the checks rely
/// on: every field line starts right after the line ending of the line before it (no whitespace before the
/// first name, no obsolete folding), every line ends with CRLF or a bare LF, and no value holds a CR or LF
/// (its trailing spaces and tabs are trimmed off, and stay between the value and the line ending).
#[inline(always)]
pub(crate) fn collect_fields(
    buf: &[u8],
    fields: &[httparse::Header<'_>],
    line_end: usize,
    head_end: usize,
    map: &mut HeaderMap,
) -> Result<Fields, ParseErrorKind> {
    let base = buf.as_ptr() as usize;
    // Recorded first, with their names' lengths, in a loop of their own: the checks below are left registers
    // enough.
    let mut name_lengths = 0;
    map.extend_spans(fields.iter().map(|f| {
        let (name, value) = (f.name.as_bytes(), f.value);
        name_lengths |= headers::name_length_bit(name.len());
        let at = |part: &[u8]| (part.as_ptr() as usize - base) as u32;
        ((at(name), name.len() as u32), (at(value), value.len() as u32))
    }));
    map.note_name_lengths(name_lengths);
    let mut summary = Fields::new();
    for (i, field) in fields.iter().enumerate() {
        let name = field.name.as_bytes();
        let value = field.value;
        let name_at = name.as_ptr() as usize - base;
        debug_assert!({
            let prev_end = match i {
                0 => line_end,
                _ => fields[i - 1].value.as_ptr() as usize - base + fields[i - 1].value.len(),
            };
            gap_is(&buf[prev_end..name_at], b"\r\n") || gap_is(&buf[prev_end..name_at], b"\n")
        });
        // The line before this field ended just before its name, with CRLF or a bare LF: the byte before that
        // LF tells which. httparse accepts bare LFs; a CR must precede every LF (RFC 9112 §2.2), or a front end
        // that disagrees about line boundaries could smuggle a field past us.
        // (A name never starts before the third byte: a wrapped-around index finds no byte.)
        if buf.get(name_at.wrapping_sub(2)) != Some(&b'\r') {
            return Err(ParseErrorKind::InvalidLineEnding);
        }

        match name.len() {
            4 if token_is(name, b"host") => {
                summary.hosts += 1;
                if !is_valid_host(value) {
                    summary.flags |= Fields::HOST_INVALID;
                }
            }
            6 if token_is(name, b"expect") => {
                summary.set(Fields::EXPECT_CONTINUE, value.eq_ignore_ascii_case(b"100-continue"));
            }
            7 if token_is(name, b"upgrade") => summary.flags |= Fields::UPGRADE,
            10 if token_is(name, b"connection") => summary.connection(value),
            14 if token_is(name, b"content-length") => summary.content_length(value)?,
            17 if token_is(name, b"transfer-encoding") => summary.transfer_encoding(value),
            _ => {}
        }
    }
    // The last two line endings, the last line's and the empty line's, are the head's last bytes: both LFs,
    // each CRLF exactly when a CR precedes its LF.
    debug_assert!({
        let prev_end = fields.last().map_or(line_end, |f| f.value.as_ptr() as usize - base + f.value.len());
        [&b"\r\n\r\n"[..], b"\n\r\n", b"\r\n\n", b"\n\n"].iter().any(|e| gap_is(&buf[prev_end..head_end], e))
    });
    if !buf.get(..head_end).is_some_and(|head| head.ends_with(b"\r\n\r\n")) {
        return Err(ParseErrorKind::InvalidLineEnding);
    }
    summary.finish();
    Ok(summary)
}

/// What the fields of an outgoing head say about framing and connection handling.
#[derive(Debug, Default)]
pub(crate) struct Outgoing {
    /// `Content-Length`, if given: parsed, or `Err` if not a decimal number.
    pub(crate) content_length: Option<Result<u64, ()>>,
    /// Some `Transfer-Encoding`; `true` if every one is exactly `chunked`.
    pub(crate) transfer_encoding: Option<bool>,
    pub(crate) connection: bool,
    pub(crate) close: bool,
    pub(crate) keep_alive: bool,
    pub(crate) date: bool,
    pub(crate) server: bool,
    pub(crate) host: bool,
}

/// One cheap pass over outgoing fields to learn what the encoder must add or check.
pub(crate) fn scan_outgoing(map: &HeaderMap) -> Outgoing {
    let mut out = Outgoing::default();
    for (name, value) in map {
        note_outgoing(&mut out, name, value);
    }
    out
}

/// The [`name_length_bit`](crate::headers::name_length_bit)s of every name [`note_outgoing`] looks at (`Date`,
/// `Host`, `Server`, `Connection`, `Content-Length`, `Transfer-Encoding`): a map whose record of name lengths
/// has none of them holds no such field, and its fields can be copied without being looked at.
pub(crate) const NOTED_NAME_LENGTHS: u64 = (1 << 4) | (1 << 6) | (1 << 10) | (1 << 14) | (1 << 17);

/// Whether [`note_outgoing`] may learn something from a field called `name` (`false`: it surely does not).
#[inline]
pub(crate) fn may_be_noted(name: &[u8]) -> bool {
    crate::headers::name_length_bit(name.len()) & NOTED_NAME_LENGTHS != 0
}

/// Whether [`note_outgoing`] learns something from a field called `name`, whatever its value.
#[inline]
pub(crate) fn is_noted(name: &[u8]) -> bool {
    match name.len() {
        4 => name_is(name, b"date") | name_is(name, b"host"),
        6 => name_is(name, b"server"),
        10 => name_is(name, b"connection"),
        14 => name_is(name, b"content-length"),
        17 => name_is(name, b"transfer-encoding"),
        _ => false,
    }
}

/// Records what one outgoing field says about framing and connection handling.
#[inline]
pub(crate) fn note_outgoing(out: &mut Outgoing, name: &[u8], value: &[u8]) {
    match name.len() {
        4 if name_is(name, b"date") => out.date = true,
        4 if name_is(name, b"host") => out.host = true,
        6 if name_is(name, b"server") => out.server = true,
        10 if name_is(name, b"connection") => {
            out.connection = true;
            out.close |= headers::list_contains_token(value, b"close");
            out.keep_alive |= headers::list_contains_token(value, b"keep-alive");
        }
        14 if name_is(name, b"content-length") => {
            let parsed = parse_decimal(trim_ows(value)).ok_or(());
            out.content_length = match (out.content_length, parsed) {
                (None, p) => Some(p),
                (Some(Ok(a)), Ok(b)) if a == b => Some(Ok(a)),
                _ => Some(Err(())),
            };
        }
        17 if name_is(name, b"transfer-encoding") => {
            let chunked = trim_ows(value).eq_ignore_ascii_case(b"chunked");
            out.transfer_encoding = Some(chunked && out.transfer_encoding.unwrap_or(true));
        }
        _ => {}
    }
}

/// Whether `name` is `lower` (at least four bytes: lowercase letters and other bytes that have no case),
/// ignoring ASCII case, compared a word at a time: the words of `lower`, and where case is folded, are
/// constants.
#[inline(always)]
fn name_is<const N: usize>(name: &[u8], lower: &[u8; N]) -> bool {
    if name.len() != N {
        return false;
    }
    let step = if N >= 8 { 8 } else { 4 };
    let word = |s: &[u8], at: usize| {
        let mut w = [0; 8];
        w[..step].copy_from_slice(&s[at..at + step]);
        u64::from_le_bytes(w)
    };
    // 0x20 where `lower` has a letter: OR-ing it in folds only that byte's case, so `-` never matches CR.
    let fold = |at: usize| {
        let mut w = [0; 8];
        for (f, &l) in w.iter_mut().zip(&lower[at..at + step]) {
            *f = if l.is_ascii_lowercase() { 0x20 } else { 0 };
        }
        u64::from_le_bytes(w)
    };
    let mut diff = 0;
    let mut at = 0;
    loop {
        // The last word overlaps the one before when `N` is not a multiple of the step.
        let at_ = at.min(N - step);
        diff |= (word(name, at_) | fold(at_)) ^ word(lower, at_);
        if at_ == N - step {
            return diff == 0;
        }
        at += step;
    }
}

/// Writes `name: value\r\n`, refusing names that are not tokens and values with control bytes, so that no
/// caller-supplied string can end the line early and inject a field (or a whole response).
#[inline]
pub(crate) fn write_field(dst: &mut BytesMut, name: &[u8], value: &[u8]) -> Result<(), EncodeError> {
    // Both checks, then one branch: fields are almost always valid.
    if !(headers::is_valid_name(name) & headers::is_valid_value(value)) {
        return Err(invalid_field(name));
    }
    put_field(dst, name, value);
    Ok(())
}

/// Writes `name: value\r\n` for a field already found valid ([`headers::is_valid_name`],
/// [`headers::is_valid_value`]).
#[inline(always)]
pub(crate) fn put_field(dst: &mut BytesMut, name: &[u8], value: &[u8]) {
    dst.extend_from_slice(name);
    dst.extend_from_slice(b": ");
    dst.extend_from_slice(value);
    dst.extend_from_slice(b"\r\n");
}

/// The error for a field that cannot be sent: its name's, if the name is bad, else its value's.
#[cold]
#[inline(never)]
pub(crate) fn invalid_field(name: &[u8]) -> EncodeError {
    let shown = String::from_utf8_lossy(name).into_owned();
    if headers::is_valid_name(name) {
        EncodeError::InvalidHeaderValue(shown)
    } else {
        EncodeError::InvalidHeaderName(shown)
    }
}

/// Writes `Content-Length: n\r\n`, followed by `end` (the empty line ending the head, or nothing).
#[inline]
pub(crate) fn write_content_length(dst: &mut BytesMut, n: u64, end: &[u8]) {
    dst.reserve(b"Content-Length: ".len() + 20 + 2 + end.len());
    dst.extend_from_slice(b"Content-Length: ");
    // Lengths under 10,000 (most bodies sent whole) are written digit by digit, each piece a copy of known
    // size; longer ones through `itoa`.
    let d = |k: u64| b'0' + (k % 10) as u8;
    match n {
        0..=9 => dst.extend_from_slice(&[d(n)]),
        10..=99 => dst.extend_from_slice(&[d(n / 10), d(n)]),
        100..=999 => dst.extend_from_slice(&[d(n / 100), d(n / 10), d(n)]),
        1000..=9999 => dst.extend_from_slice(&[d(n / 1000), d(n / 100), d(n / 10), d(n)]),
        _ => dst.extend_from_slice(itoa::Buffer::new().format(n).as_bytes()),
    }
    dst.extend_from_slice(b"\r\n");
    dst.extend_from_slice(end);
}

/// Writes `Content-Length: n\r\n\r\n`, the line that ends a head: for lengths under 10,000 (most bodies sent
/// whole) in two copies of known size, the digits and the line ends in one word, of which the bytes past the
/// digits' are dropped again.
#[inline(always)]
pub(crate) fn end_head_with_length(dst: &mut BytesMut, n: u64) {
    if n >= 10_000 {
        return end_head_with_long_length(dst, n);
    }
    dst.extend_from_slice(b"Content-Length: ");
    end_head_with_digits(dst, n);
}

/// The rest of [`end_head_with_length`] after `Content-Length: `, for `n` under 10,000: the digits and the line
/// ends in one word, of which the bytes past the digits' are dropped again.
#[inline(always)]
pub(crate) fn end_head_with_digits(dst: &mut BytesMut, n: u64) {
    debug_assert!(n < 10_000);
    let d = |k: u64| u64::from(b'0' + (k % 10) as u8);
    let (digits, count) = match n {
        0..=9 => (d(n), 1),
        10..=99 => (d(n / 10) | d(n) << 8, 2),
        100..=999 => (d(n / 100) | d(n / 10) << 8 | d(n) << 16, 3),
        _ => (d(n / 1000) | d(n / 100) << 8 | d(n / 10) << 16 | d(n) << 24, 4),
    };
    let word = digits | u64::from_le_bytes(*b"\r\n\r\n\0\0\0\0") << (8 * count);
    dst.extend_from_slice(&word.to_le_bytes());
    dst.truncate(dst.len() - (4 - count));
}

/// [`end_head_with_length`] for lengths of five digits or more.
#[inline(never)]
fn end_head_with_long_length(dst: &mut BytesMut, n: u64) {
    write_content_length(dst, n, b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_parsing_refuses_signs_spaces_and_overflow() {
        assert_eq!(parse_decimal(b"0"), Some(0));
        assert_eq!(parse_decimal(b"0042"), Some(42));
        assert_eq!(parse_decimal(b"18446744073709551615"), Some(u64::MAX));
        for bad in [&b""[..], b"+5", b"-5", b"5 ", b" 5", b"0x10", b"1e3", b"18446744073709551616", b"5,5"] {
            assert_eq!(parse_decimal(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn host_values_follow_tornados_grammar() {
        for good in [&b""[..], b"example.com", b"example.com:8080", b"[::1]:80", b"a%20b", b"xn--bcher-kva.example"] {
            assert!(is_valid_host(good), "{good:?}");
        }
        for bad in [&b"a b"[..], b"a,b", b"user@host", b"a/b", b"a%2", b"a%zz", b"host\x00", b"caf\xc3\xa9"] {
            assert!(!is_valid_host(bad), "{bad:?}");
        }
    }

    #[test]
    fn framing_names_are_matched_in_any_case_and_only_them() {
        fn check<const N: usize>(lower: &[u8; N]) {
            assert!(token_is(lower, lower));
            assert!(token_is(&lower.to_ascii_uppercase(), lower));
            assert!(!token_is(&lower[..N - 1], lower));
            assert!(!token_is(&[lower.as_slice(), b"s"].concat(), lower));
            // Every token byte at every position: only the letter itself, in either case, matches.
            for i in 0..N {
                for b in (0..=255u8).filter(|&b| headers::is_token(&[b])) {
                    let mut name = *lower;
                    name[i] = b;
                    assert_eq!(token_is(&name, lower), b.to_ascii_lowercase() == lower[i], "{:?}", name);
                }
            }
        }
        check(b"host");
        check(b"expect");
        check(b"upgrade");
        check(b"connection");
        check(b"content-length");
        check(b"transfer-encoding");
    }

    #[test]
    fn transfer_codings_are_summarized_across_lines() {
        let summarize = |values: &[&[u8]]| {
            let mut f = Fields::new();
            for v in values {
                f.transfer_encoding(v);
            }
            f.finish();
            f.coding
        };
        assert_eq!(summarize(&[b"chunked"]), Coding::Chunked);
        assert_eq!(summarize(&[b"CHUNKED"]), Coding::Chunked);
        assert_eq!(summarize(&[b"gzip, chunked"]), Coding::Unsupported { chunked_last: true });
        assert_eq!(summarize(&[b"gzip", b"chunked"]), Coding::Unsupported { chunked_last: true });
        assert_eq!(summarize(&[b"chunked, gzip"]), Coding::Unsupported { chunked_last: false });
        assert_eq!(summarize(&[b"gzip"]), Coding::Unsupported { chunked_last: false });
        assert_eq!(summarize(&[b"chunked", b"chunked"]), Coding::Malformed);
        assert_eq!(summarize(&[b"chunked,"]), Coding::Malformed);
        assert_eq!(summarize(&[b""]), Coding::Malformed);
        assert_eq!(summarize(&[b"chunked;x=1"]), Coding::Malformed);
    }

    #[test]
    fn empty_line_before_the_start_line_is_skipped_once() {
        let k = ParseErrorKind::InvalidRequestLine;
        assert_eq!(skip_empty_line(b"GET", k), Ok(Some(0)));
        assert_eq!(skip_empty_line(b"\r\nGET", k), Ok(Some(2)));
        assert_eq!(skip_empty_line(b"\r", k), Ok(None));
        assert_eq!(skip_empty_line(b"\r\n", k), Ok(None));
        assert_eq!(skip_empty_line(b"\r\n\r\n", k), Err(k.into()));
        assert_eq!(skip_empty_line(b"\nGET", k), Err(ParseErrorKind::InvalidLineEnding.into()));
        assert_eq!(skip_empty_line(b"\rGET", k), Err(k.into()));
    }

    #[test]
    fn outgoing_names_are_recognized_in_any_case_and_only_them() {
        for name in [&b"content-length"[..], b"Content-Length", b"CONTENT-LENGTH", b"cOnTeNt-LeNgTh"] {
            assert!(name_is(name, b"content-length"), "{name:?}");
        }
        for name in
            [&b"content\rlength"[..], b"content-lengt", b"content-lengthx", b"Content_Length", b"dontent-length"]
        {
            assert!(!name_is(name, b"content-length"), "{name:?}");
        }
        assert!(name_is(b"DATE", b"date") && !name_is(b"DAT\x05", b"date") && !name_is(b"Serve", b"server"));
        assert!(name_is(b"Transfer-Encoding", b"transfer-encoding"));
        assert!(!name_is(b"Transfer-Encodinh", b"transfer-encoding"));
        let mut seen = Outgoing::default();
        for (name, value) in [("SERVER", "x"), ("date", "y"), ("Connection", "close"), ("Content-Length", "5")] {
            note_outgoing(&mut seen, name.as_bytes(), value.as_bytes());
        }
        assert!(seen.server && seen.date && seen.connection && seen.close && !seen.host);
        assert_eq!(seen.content_length, Some(Ok(5)));
    }

    #[test]
    fn every_noted_name_has_its_length_in_the_mask() {
        for name in ["Date", "Host", "Server", "Connection", "Content-Length", "Transfer-Encoding"] {
            assert!(may_be_noted(name.as_bytes()) && is_noted(name.as_bytes()), "{name}");
            assert!(is_noted(name.to_ascii_uppercase().as_bytes()), "{name}");
            let mut seen = Outgoing::default();
            note_outgoing(&mut seen, name.as_bytes(), b"close");
            assert!(format!("{seen:?}") != format!("{:?}", Outgoing::default()), "{name} is noted");
        }
        for name in ["Etag", "Vary", "Dat", "Datee", "Hosts", "Servers", "Content-Type", "Transfer-Encodin"] {
            assert!(!is_noted(name.as_bytes()), "{name}");
        }
        // Every other length is told apart from them without looking at the name's bytes.
        for len in 0..64 {
            assert_eq!(may_be_noted(&vec![b'x'; len]), [4, 6, 10, 14, 17].contains(&len), "length {len}");
        }
    }

    #[test]
    fn content_length_lines() {
        for (n, text) in [(0, "0"), (7, "7"), (13, "13"), (99, "99"), (100, "100"), (999, "999"), (1000, "1000")]
            .into_iter()
            .chain([
                (10, "10"),
                (42, "42"),
                (101, "101"),
                (1009, "1009"),
                (9999, "9999"),
                (10_000, "10000"),
                (123_456_789, "123456789"),
                (u64::MAX, "18446744073709551615"),
            ])
        {
            let mut dst = BytesMut::from(&b"x"[..]);
            write_content_length(&mut dst, n, b"\r\n");
            assert_eq!(dst, format!("xContent-Length: {text}\r\n\r\n").as_bytes(), "{n}");
            let mut dst = BytesMut::from(&b"x"[..]);
            end_head_with_length(&mut dst, n);
            assert_eq!(dst, format!("xContent-Length: {text}\r\n\r\n").as_bytes(), "{n}");
            let mut dst = BytesMut::new();
            write_content_length(&mut dst, n, b"");
            assert_eq!(dst, format!("Content-Length: {text}\r\n").as_bytes(), "{n}");
        }
    }

    #[test]
    fn write_field_refuses_header_injection() {
        let mut dst = BytesMut::new();
        assert!(matches!(
            write_field(&mut dst, b"X-A", b"ok\r\nSet-Cookie: evil=1"),
            Err(EncodeError::InvalidHeaderValue(name)) if name == "X-A"
        ));
        assert!(matches!(write_field(&mut dst, b"X-A\r\nB", b"v"), Err(EncodeError::InvalidHeaderName(_))));
        assert!(matches!(write_field(&mut dst, b"X-A", b"nul\0"), Err(EncodeError::InvalidHeaderValue(_))));
        assert!(dst.is_empty());
        write_field(&mut dst, b"X-A", b"fine\tvalue").unwrap();
        assert_eq!(&dst[..], b"X-A: fine\tvalue\r\n");
    }
}
