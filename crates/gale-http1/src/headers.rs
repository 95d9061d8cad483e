//! Header fields: an order-preserving, case-insensitive, multi-valued map, plus the byte-class checks that keep
//! outgoing heads free of header injection.
//!
//! A [`HeaderMap`] built by the parser copies no field: it holds the head's bytes once, in one buffer, and
//! records each name and value as an offset range into it (the server's request heads own that buffer and
//! refill it for the next request; the client's response heads share it). Maps built by hand store `&'static` strings as they are and
//! owned data as [`Bytes`], so a response with a few literal headers allocates nothing but the map's list of
//! fields, which a cleared map keeps for its next use.
//!
//! Names are compared ASCII case-insensitively and are kept as they were given, so a head is re-serialized with
//! its original spelling. Values are opaque bytes; [`HeaderMap::get`] returns them as `&str` when they are valid
//! UTF-8 and [`HeaderMap::get_bytes`] always works.
//!
//! # Examples
//!
//! ```
//! use gale_http1::headers::HeaderMap;
//!
//! let mut headers = HeaderMap::new();
//! headers.append("Set-Cookie", "a=1");
//! headers.append("set-cookie", "b=2");
//! headers.insert("Content-Type", "text/plain");
//! headers.append("Connection", "keep-alive, Upgrade");
//!
//! assert_eq!(headers.get("content-type"), Some("text/plain"));
//! assert_eq!(headers.get_all("SET-COOKIE").collect::<Vec<_>>(), [&b"a=1"[..], b"b=2"]);
//! assert!(headers.contains_token("connection", "upgrade"));
//! ```

use std::cell::Cell;
use std::fmt;

use bytes::{Bytes, BytesMut};

/// Bytes of a header name or value handed to a [`HeaderMap`].
///
/// Built without copying from `&'static str`, `&'static [u8]`, [`String`], `Vec<u8>` and [`Bytes`]; use
/// [`HeaderBytes::copy_from_slice`] for borrowed data. Static strings cost nothing to store.
#[derive(Clone)]
pub struct HeaderBytes(Repr);

#[derive(Clone)]
enum Repr {
    Static(&'static [u8]),
    Shared(Bytes),
    /// Owned bytes found to be a valid value ([`HeaderBytes::checked_value`]).
    CheckedValue(Bytes),
}

impl HeaderBytes {
    /// Copies borrowed bytes into a new shared buffer.
    pub fn copy_from_slice(bytes: &[u8]) -> Self {
        HeaderBytes(Repr::Shared(Bytes::copy_from_slice(bytes)))
    }

    /// The bytes themselves.
    pub fn as_bytes(&self) -> &[u8] {
        match &self.0 {
            Repr::Static(s) => s,
            Repr::Shared(b) | Repr::CheckedValue(b) => b,
        }
    }

    /// The same bytes, checked once to be a valid header value ([`is_valid_value`]): `None` if they are not.
    ///
    /// A value checked this way (and its clones) is not scanned again when a response carrying it is
    /// encoded, so a value reused across responses, such as a cached `ETag`, is checked once instead of once
    /// per response. The bytes cannot change afterwards, so the check stays true; as a field *name* the
    /// bytes are still checked in full.
    ///
    /// ```
    /// use gale_http1::headers::HeaderBytes;
    ///
    /// let etag = HeaderBytes::from(String::from("\"abc\"")).checked_value().expect("no control bytes");
    /// assert_eq!(etag.as_bytes(), b"\"abc\"");
    /// assert!(HeaderBytes::from(String::from("a\r\nX: y")).checked_value().is_none());
    /// ```
    pub fn checked_value(self) -> Option<HeaderBytes> {
        if !is_valid_value(self.as_bytes()) {
            return None;
        }
        Some(match self.0 {
            // Static strings are remembered by the encoder's own check (see `StaticChecks`).
            Repr::Static(s) => HeaderBytes(Repr::Static(s)),
            Repr::Shared(b) | Repr::CheckedValue(b) => HeaderBytes(Repr::CheckedValue(b)),
        })
    }
}

impl fmt::Debug for HeaderBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&String::from_utf8_lossy(self.as_bytes()), f)
    }
}

impl From<&'static str> for HeaderBytes {
    fn from(s: &'static str) -> Self {
        HeaderBytes(Repr::Static(s.as_bytes()))
    }
}

impl From<&'static [u8]> for HeaderBytes {
    fn from(s: &'static [u8]) -> Self {
        HeaderBytes(Repr::Static(s))
    }
}

impl From<String> for HeaderBytes {
    fn from(s: String) -> Self {
        HeaderBytes(Repr::Shared(Bytes::from(s)))
    }
}

impl From<Vec<u8>> for HeaderBytes {
    fn from(v: Vec<u8>) -> Self {
        HeaderBytes(Repr::Shared(Bytes::from(v)))
    }
}

impl From<Bytes> for HeaderBytes {
    fn from(b: Bytes) -> Self {
        HeaderBytes(Repr::Shared(b))
    }
}

/// A strong entity tag made of a 64-bit hash: its 16 lowercase hex digits in double quotes, e.g.
/// `"00000000000000ff"`. Always a valid header value, so the encoder sends it without checking it again
/// (see [`ResponseWriter::respond_with_etag`](crate::ResponseWriter::respond_with_etag)).
///
/// ```
/// use gale_http1::headers::HashEtag;
///
/// assert_eq!(HashEtag::from_hash(0xff).as_bytes(), b"\"00000000000000ff\"");
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct HashEtag([u8; ETAG_LINE_LENGTH]);

/// Length of the whole `Etag: "<16 hex digits>"\r\n` line a [`HashEtag`] keeps.
const ETAG_LINE_LENGTH: usize = 26;

impl HashEtag {
    /// The tag of hash `h`.
    pub fn from_hash(h: u64) -> Self {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut line = *b"Etag: \"0000000000000000\"\r\n";
        for (i, digit) in line[7..23].iter_mut().enumerate() {
            *digit = HEX[((h >> (60 - 4 * i)) & 0xf) as usize];
        }
        HashEtag(line)
    }

    /// The quoted tag.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0[6..24]
    }

    /// The quoted tag as text.
    pub fn as_str(&self) -> &str {
        // Quotes and hex digits: ASCII.
        std::str::from_utf8(self.as_bytes()).unwrap_or_default()
    }

    /// The whole field line, `Etag: "<tag>"\r\n`, as the encoder writes it.
    pub(crate) fn line(&self) -> &[u8; ETAG_LINE_LENGTH] {
        &self.0
    }

    /// The tag's sixteen digits as one number, to compare tags at once: never 0, as the digits are ASCII.
    #[inline(always)]
    pub(crate) fn key(&self) -> u128 {
        let mut digits = [0; 16];
        digits.copy_from_slice(&self.0[7..23]);
        u128::from_ne_bytes(digits)
    }
}

impl fmt::Debug for HashEtag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

/// Where the bytes of one name or value live, in 16 bytes, so that a field's record is 32. (A third variant for owned values would cost 8 more bytes, hence the
/// [`SHARED`] marker.)
#[derive(Clone, Copy)]
enum Field {
    /// A string with static lifetime.
    Static(&'static [u8]),
    /// A range of the map's buffer (parsed heads), or if `len` is [`SHARED`] or [`SHARED_CHECKED`], the index
    /// `start` of an owned value.
    Local { start: u32, len: u32 },
}

/// The `len` of a [`Field::Local`] that refers to an owned value. No span can be this long: heads are
/// limited to `u32::MAX - 1` bytes (`Limits::max_header_size` is capped so), and a span is at most a head
/// less its `:` and line end.
const SHARED: u32 = u32::MAX;

/// [`SHARED`] for an owned value that was checked to be a valid value when it was made
/// ([`HeaderBytes::checked_value`]), which no span can be either.
const SHARED_CHECKED: u32 = u32::MAX - 1;

impl Field {
    fn shared_index(self) -> Option<usize> {
        match self {
            Field::Local { start, len: SHARED | SHARED_CHECKED } => Some(start as usize),
            _ => None,
        }
    }
}

#[derive(Clone, Copy)]
struct Entry {
    name: Field,
    value: Field,
}

impl Entry {
    /// A field whose name and value are the given `(start, len)` ranges of the map's buffer.
    #[inline(always)]
    fn spans(name: (u32, u32), value: (u32, u32)) -> Entry {
        Entry {
            name: Field::Local { start: name.0, len: name.1 },
            value: Field::Local { start: value.0, len: value.1 },
        }
    }
}

/// An ordered multimap of header fields with ASCII case-insensitive names.
///
/// Lookups are linear scans, which beat hashing for the dozen or so fields of a real message; the parser caps
/// the number of fields (see `proto::Limits::max_headers`), so the scans stay bounded.
#[derive(Clone, Default)]
pub struct HeaderMap {
    /// Backing storage for spans.
    buf: Buf,
    /// The fields, in order. A plain `Vec`, not one with inline room: the maps that matter are reused (pooled
    /// request heads, the web layer's response maps), so its allocation is made once, and each push and
    /// lookup is then cheaper than one that must first tell inline storage from the heap.
    entries: Vec<Entry>,
    /// Backing storage for owned values; slots of removed fields are emptied and compacted away.
    shared: Vec<Bytes>,
    /// Bit `n % 64` is set when a name of length `n` was added since the map was last emptied: a lookup whose
    /// length has no bit ends without a scan (the usual answer for `If-None-Match`, `Cookie`, ...). Removals
    /// leave bits set, so a bit only means "maybe".
    name_lengths: u64,
}

/// The buffer that parsed fields are spans of.
#[derive(Clone)]
enum Buf {
    /// Shared with whoever else holds the head (heads read by the client).
    Shared(Bytes),
    /// Owned by the map alone, so that it can be refilled in place (server request heads, which are pooled:
    /// no reference count to check or convert per request).
    Owned(Vec<u8>),
}

impl Default for Buf {
    fn default() -> Self {
        Buf::Shared(Bytes::new())
    }
}

impl Buf {
    #[inline(always)]
    fn as_slice(&self) -> &[u8] {
        match self {
            Buf::Shared(b) => b,
            Buf::Owned(v) => v,
        }
    }
}

/// The bit that stands for names of `len` bytes in a map's record of the name lengths it holds.
#[inline]
pub(crate) fn name_length_bit(len: usize) -> u64 {
    1 << (len % 64)
}

/// The bytes of `field`.
#[inline(always)]
fn resolve<'a>(field: &'a Field, buf: &'a [u8], shared: &'a [Bytes]) -> &'a [u8] {
    match *field {
        Field::Static(s) => s,
        Field::Local { start, len: SHARED | SHARED_CHECKED } => &shared[start as usize],
        Field::Local { start, len } => &buf[start as usize..(start + len) as usize],
    }
}

impl HeaderMap {
    /// Creates an empty map.
    pub fn new() -> Self {
        HeaderMap::default()
    }

    /// Creates an empty map with room for `capacity` fields.
    pub fn with_capacity(capacity: usize) -> Self {
        HeaderMap { buf: Buf::default(), entries: Vec::with_capacity(capacity), shared: Vec::new(), name_lengths: 0 }
    }

    /// Replaces the backing buffer of parsed fields. The offsets recorded so far must be valid in `buf`.
    pub(crate) fn set_buffer(&mut self, buf: Bytes) {
        self.buf = Buf::Shared(buf);
    }

    /// Makes the backing buffer of parsed fields one the map owns alone, holding a copy of `bytes`: the buffer
    /// the map owns is refilled in place if it has room, else replaced by one of at least `capacity` bytes. The
    /// offsets recorded so far must be valid in `bytes`.
    #[inline]
    pub(crate) fn fill_owned_buffer(&mut self, bytes: &[u8], capacity: usize) {
        if let Buf::Owned(v) = &mut self.buf {
            if v.capacity() >= bytes.len() {
                v.clear();
                v.extend_from_slice(bytes);
                return;
            }
        }
        let mut v = Vec::with_capacity(bytes.len().max(capacity));
        v.extend_from_slice(bytes);
        self.buf = Buf::Owned(v);
    }

    /// Takes the buffer parsed fields refer to if the map owns it alone (else an empty one), leaving the
    /// fields.
    pub(crate) fn take_owned_buffer(&mut self) -> Vec<u8> {
        match std::mem::take(&mut self.buf) {
            Buf::Owned(v) => v,
            Buf::Shared(_) => Vec::new(),
        }
    }

    /// Removes every field but keeps the buffer, for reuse.
    pub(crate) fn clear_fields(&mut self) {
        self.entries.clear();
        // Parsed maps seldom hold owned values: the loop that drops them is out of line, so that the usual path
        // makes no call.
        if !self.shared.is_empty() {
            self.clear_shared();
        }
        self.name_lengths = 0;
    }

    /// Drops the owned values, for [`clear_fields`](HeaderMap::clear_fields) and [`clear`](HeaderMap::clear).
    #[inline(never)]
    fn clear_shared(&mut self) {
        self.shared.clear();
    }

    /// How many bytes the buffer parsed fields refer to holds, used or not.
    pub(crate) fn buffer_capacity(&self) -> usize {
        match &self.buf {
            Buf::Shared(b) => b.len(),
            Buf::Owned(v) => v.capacity(),
        }
    }

    /// The buffer parsed fields refer to.
    pub(crate) fn buffer(&self) -> &[u8] {
        self.buf.as_slice()
    }

    /// Appends a field given as offset ranges into the backing buffer.
    #[inline]
    pub(crate) fn push_span(&mut self, name: (u32, u32), value: (u32, u32)) {
        self.note_name_length(name.1 as usize);
        self.entries.push(Entry::spans(name, value));
    }

    /// Appends `fields`, each given as the offset ranges of its name and value into the backing buffer, for a
    /// parser, which gives the names' lengths afterwards, all at once, with
    /// [`note_name_lengths`](HeaderMap::note_name_lengths). One reservation for them all, then plain writes:
    /// cheaper than a push per field.
    #[inline]
    pub(crate) fn extend_spans(&mut self, fields: impl ExactSizeIterator<Item = ((u32, u32), (u32, u32))>) {
        self.entries.extend(fields.map(|(name, value)| Entry::spans(name, value)));
    }

    /// Number of fields (a name appearing twice counts twice).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the map holds no field.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Removes every field.
    pub fn clear(&mut self) {
        // The buffer of most maps cleared, responses' built by hand, is the empty one they started with:
        // dropping and replacing it would cost more than telling it apart.
        if !matches!(&self.buf, Buf::Shared(b) if b.is_empty()) {
            self.drop_buffer();
        }
        self.entries.clear();
        self.name_lengths = 0;
        // Last, so that the usual path makes no call but this one.
        if !self.shared.is_empty() {
            self.clear_shared();
        }
    }

    /// Replaces the buffer parsed fields refer to by the empty one, for [`clear`](HeaderMap::clear).
    #[inline(never)]
    fn drop_buffer(&mut self) {
        self.buf = Buf::default();
    }

    #[inline]
    fn bytes<'a>(&'a self, field: &'a Field) -> &'a [u8] {
        resolve(field, self.buf.as_slice(), &self.shared)
    }

    #[inline]
    fn note_name_length(&mut self, len: usize) {
        self.name_lengths |= name_length_bit(len);
    }

    /// Records the names' lengths of fields appended with [`extend_spans`](HeaderMap::extend_spans): the union
    /// of their [`name_length_bit`]s.
    #[inline]
    pub(crate) fn note_name_lengths(&mut self, bits: u64) {
        self.name_lengths |= bits;
    }

    /// Whether a field called by a name of `len` bytes may be in the map (see `name_lengths`).
    #[inline]
    fn may_hold_length(&self, len: usize) -> bool {
        self.name_lengths & name_length_bit(len) != 0
    }

    /// The first field called `name`. The usual miss (no name of that length) is told inline, without a call.
    #[inline]
    fn find(&self, name: &[u8]) -> Option<&Entry> {
        if !self.may_hold_length(name.len()) {
            return None;
        }
        self.scan(name)
    }

    /// [`find`](HeaderMap::find) for a name whose length some field may have.
    #[inline(never)]
    fn scan(&self, name: &[u8]) -> Option<&Entry> {
        // Lengths first, read from the field itself: most fields are told apart without touching their bytes.
        self.entries
            .iter()
            .find(|e| self.len_of(&e.name) == name.len() && self.bytes(&e.name).eq_ignore_ascii_case(name))
    }

    /// The length of `field`'s bytes.
    #[inline]
    fn len_of(&self, field: &Field) -> usize {
        match *field {
            Field::Static(s) => s.len(),
            Field::Local { start, len: SHARED | SHARED_CHECKED } => self.shared[start as usize].len(),
            Field::Local { len, .. } => len as usize,
        }
    }

    /// Stores `bytes` in a field, keeping static strings where they are.
    #[inline]
    fn store(&mut self, bytes: HeaderBytes) -> Field {
        match bytes.0 {
            Repr::Static(s) => Field::Static(s),
            Repr::Shared(b) => self.store_shared(b, SHARED),
            Repr::CheckedValue(b) => self.store_shared(b, SHARED_CHECKED),
        }
    }

    /// Stores an owned value in a slot of its own, marked `SHARED` or `SHARED_CHECKED`.
    #[inline]
    fn store_shared(&mut self, b: Bytes, mark: u32) -> Field {
        if self.shared.len() == self.shared.capacity() {
            self.compact_shared();
        }
        self.shared.push(b);
        Field::Local { start: (self.shared.len() - 1) as u32, len: mark }
    }

    /// Drops the slots of removed fields once they are the majority, so that replacing values in a loop does
    /// not grow the map without bound.
    #[cold]
    fn compact_shared(&mut self) {
        let live = self.entries.iter().flat_map(|e| [e.name, e.value]).filter_map(Field::shared_index).count();
        if live * 2 > self.shared.len() {
            return;
        }
        let mut kept = Vec::with_capacity(live.max(4));
        for entry in &mut self.entries {
            for field in [&mut entry.name, &mut entry.value] {
                if let (Some(i), Field::Local { len: mark, .. }) = (field.shared_index(), *field) {
                    kept.push(std::mem::take(&mut self.shared[i]));
                    *field = Field::Local { start: (kept.len() - 1) as u32, len: mark };
                }
            }
        }
        self.shared = kept;
    }

    /// The first value of `name` as a string, or `None` when the field is absent or its value is not UTF-8.
    ///
    /// Use [`get_bytes`](Self::get_bytes) for values that may carry `obs-text` (bytes 0x80–0xFF).
    #[inline]
    pub fn get(&self, name: &str) -> Option<&str> {
        self.get_bytes(name).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// The first value of `name` as raw bytes.
    #[inline]
    pub fn get_bytes(&self, name: &str) -> Option<&[u8]> {
        self.find(name.as_bytes()).map(|e| self.bytes(&e.value))
    }

    /// The first value of `name` as [`Bytes`], to keep past the map's life: it shares the map's storage (no
    /// copy) unless that storage is a server request head's, which is recycled for the next request and so is
    /// copied from.
    pub fn get_shared(&self, name: &str) -> Option<Bytes> {
        self.find(name.as_bytes()).map(|e| match e.value {
            Field::Static(s) => Bytes::from_static(s),
            Field::Local { start, len: SHARED | SHARED_CHECKED } => self.shared[start as usize].clone(),
            Field::Local { start, len } => {
                let range = start as usize..(start + len) as usize;
                match &self.buf {
                    Buf::Shared(b) => b.slice(range),
                    Buf::Owned(v) => Bytes::copy_from_slice(&v[range]),
                }
            }
        })
    }

    /// Every value of `name`, in order of appearance.
    pub fn get_all<'a>(&'a self, name: &'a str) -> GetAll<'a> {
        GetAll { map: self, inner: self.entries.iter(), name: name.as_bytes() }
    }

    /// Whether at least one field is called `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.find(name.as_bytes()).is_some()
    }

    /// Whether any value of `name`, read as a comma-separated list, holds `token` (ASCII case-insensitive,
    /// surrounding spaces and tabs ignored): `Connection: keep-alive, Upgrade` contains `upgrade`.
    pub fn contains_token(&self, name: &str, token: &str) -> bool {
        self.get_all(name).any(|value| list_contains_token(value, token.as_bytes()))
    }

    /// Sets `name` to `value`, replacing every previous value. The field keeps the position of the first one it
    /// replaces, or goes last.
    ///
    /// Nothing is validated here; the encoders refuse invalid names and values (see [`is_valid_name`] and
    /// [`is_valid_value`]).
    pub fn insert(&mut self, name: impl Into<HeaderBytes>, value: impl Into<HeaderBytes>) {
        let name = name.into();
        let first = self.remove_matching(name.as_bytes(), true);
        self.note_name_length(name.as_bytes().len());
        let entry = Entry { name: self.store(name), value: self.store(value.into()) };
        match first {
            Some(i) => self.entries[i] = entry,
            None => self.entries.push(entry),
        }
    }

    /// Adds a value for `name` after the existing ones.
    pub fn append(&mut self, name: impl Into<HeaderBytes>, value: impl Into<HeaderBytes>) {
        let name = name.into();
        self.note_name_length(name.as_bytes().len());
        let entry = Entry { name: self.store(name), value: self.store(value.into()) };
        self.entries.push(entry);
    }

    /// Removes every field called `name`; returns whether there was one.
    pub fn remove(&mut self, name: &str) -> bool {
        let before = self.entries.len();
        self.remove_matching(name.as_bytes(), false);
        self.entries.len() != before
    }

    /// Removes the fields called `name`, except the first one if `keep_first` (whose index is returned; its
    /// owned bytes are released all the same, as the caller overwrites it).
    fn remove_matching(&mut self, name: &[u8], keep_first: bool) -> Option<usize> {
        if !self.may_hold_length(name.len()) {
            return None;
        }
        let HeaderMap { buf, entries, shared, .. } = self;
        let buf = buf.as_slice();
        let mut first = None;
        let mut index = 0;
        entries.retain(|e| {
            if !resolve(&e.name, buf, shared).eq_ignore_ascii_case(name) {
                index += 1;
                return true;
            }
            for i in [e.name, e.value].into_iter().filter_map(Field::shared_index) {
                shared[i] = Bytes::new();
            }
            let keep = keep_first && first.is_none();
            if keep {
                first = Some(index);
                index += 1;
            }
            keep
        });
        first
    }

    /// Calls `f` on every field's name and value in order, once each has been found sendable ([`is_valid_name`],
    /// [`is_valid_value`]); stops at the first error of `f`, or at the first unsendable field with `bad(name)`.
    ///
    /// Static strings are checked once per thread and remembered (see [`StaticChecks`]): a handler's literal
    /// names and values are not scanned again for every response. Values made with
    /// [`HeaderBytes::checked_value`] were checked when they were made.
    #[inline]
    pub(crate) fn try_for_each_valid<E>(
        &self,
        f: impl FnMut(&[u8], &[u8]) -> Result<(), E>,
        bad: impl FnOnce(&[u8]) -> E,
    ) -> Result<(), E> {
        self.try_for_each_valid_and(&[], f, bad)
    }

    /// [`try_for_each_valid`](HeaderMap::try_for_each_valid) over the map's fields, then over `extra` (fields
    /// sent with the map's without being stored in it), checked the same way.
    #[inline]
    pub(crate) fn try_for_each_valid_and<E>(
        &self,
        extra: &[(&'static str, &[u8])],
        mut f: impl FnMut(&[u8], &[u8]) -> Result<(), E>,
        bad: impl FnOnce(&[u8]) -> E,
    ) -> Result<(), E> {
        let buf = self.buf.as_slice();
        let shared = &self.shared[..];
        STATIC_CHECKS.with(|checks| {
            let mut entries = self.entries.iter();
            let mut extra = extra.iter();
            loop {
                // One place calls `f`, for the map's fields and the extra ones alike, so that it is inlined.
                let (name, value, ok) = if let Some(e) = entries.next() {
                    checks.checked_entry(e, buf, shared)
                } else if let Some(&extra) = extra.next() {
                    checks.checked_extra(extra)
                } else {
                    return Ok(());
                };
                if !ok {
                    return Err(bad(name));
                }
                f(name, value)?;
            }
        })
    }

    /// Appends every field's line (`name: value\r\n`, as [`put_line`](crate::proto::response::put_line) writes it), then
    /// `extra`'s, once each is found sendable as [`try_for_each_valid_and`](HeaderMap::try_for_each_valid_and)
    /// finds it; stops at the first unsendable field with `bad(name)`, leaving the lines before it in `dst`.
    ///
    /// A field whose name and value are both static strings is remembered per thread as its whole line once
    /// found valid (see [`StaticChecks`]), and later copied as it is, without being checked or assembled again.
    #[inline]
    pub(crate) fn put_valid_lines<E>(
        &self,
        extra: &[(&'static str, &[u8])],
        dst: &mut BytesMut,
        bad: impl FnOnce(&[u8]) -> E,
    ) -> Result<(), E> {
        use crate::proto::response::put_line;
        let buf = self.buf.as_slice();
        let shared = &self.shared[..];
        STATIC_CHECKS.with(|checks| {
            let mut entries = self.entries.iter();
            let mut extra = extra.iter();
            loop {
                let (name, value, ok) = if let Some(e) = entries.next() {
                    if let (Field::Static(name), Field::Static(value)) = (e.name, e.value) {
                        if checks.put_line(name, value, dst) {
                            continue;
                        }
                        if checks.name(name) & checks.value(value) {
                            let at = dst.len();
                            put_line(dst, name, value);
                            checks.remember_line(name, value, &dst[at..]);
                            continue;
                        }
                        (name, value, false)
                    } else {
                        checks.checked_entry(e, buf, shared)
                    }
                } else if let Some(&extra) = extra.next() {
                    checks.checked_extra(extra)
                } else {
                    return Ok(());
                };
                if !ok {
                    return Err(bad(name));
                }
                put_line(dst, name, value);
            }
        })
    }

    /// Whether some field's name may have a length whose [`name_length_bit`] is in `lengths` (`false`: surely
    /// none has).
    #[inline]
    pub(crate) fn may_hold_lengths(&self, lengths: u64) -> bool {
        self.name_lengths & lengths != 0
    }

    /// Every `(name, value)` pair in order, names as given.
    pub fn iter(&self) -> Iter<'_> {
        Iter { map: self, inner: self.entries.iter() }
    }
}

impl fmt::Debug for HeaderMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.iter().map(|(n, v)| (String::from_utf8_lossy(n), String::from_utf8_lossy(v))))
            .finish()
    }
}

impl<'a> IntoIterator for &'a HeaderMap {
    type Item = (&'a [u8], &'a [u8]);
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

impl<N: Into<HeaderBytes>, V: Into<HeaderBytes>> Extend<(N, V)> for HeaderMap {
    fn extend<I: IntoIterator<Item = (N, V)>>(&mut self, iter: I) {
        for (n, v) in iter {
            self.append(n, v);
        }
    }
}

impl<N: Into<HeaderBytes>, V: Into<HeaderBytes>> FromIterator<(N, V)> for HeaderMap {
    fn from_iter<I: IntoIterator<Item = (N, V)>>(iter: I) -> Self {
        let mut map = HeaderMap::new();
        map.extend(iter);
        map
    }
}

/// Iterator over the `(name, value)` pairs of a [`HeaderMap`], from [`HeaderMap::iter`].
#[derive(Clone)]
pub struct Iter<'a> {
    map: &'a HeaderMap,
    inner: std::slice::Iter<'a, Entry>,
}

impl fmt::Debug for Iter<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Iter").field("remaining", &self.inner.len()).finish()
    }
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a [u8], &'a [u8]);

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        let e = self.inner.next()?;
        Some((self.map.bytes(&e.name), self.map.bytes(&e.value)))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

impl ExactSizeIterator for Iter<'_> {}

/// Iterator over the values of one name, from [`HeaderMap::get_all`].
#[derive(Clone)]
pub struct GetAll<'a> {
    map: &'a HeaderMap,
    inner: std::slice::Iter<'a, Entry>,
    name: &'a [u8],
}

impl fmt::Debug for GetAll<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GetAll").field("name", &String::from_utf8_lossy(self.name)).finish()
    }
}

impl<'a> Iterator for GetAll<'a> {
    type Item = &'a [u8];

    #[inline]
    fn next(&mut self) -> Option<&'a [u8]> {
        let map = self.map;
        let name = self.name;
        self.inner.by_ref().find(|e| map.bytes(&e.name).eq_ignore_ascii_case(name)).map(|e| map.bytes(&e.value))
    }
}

/// Whether a comma-separated list holds `token`, compared ASCII case-insensitively after trimming spaces and tabs.
pub fn list_contains_token(list: &[u8], token: &[u8]) -> bool {
    list.split(|&b| b == b',').any(|item| trim_ows(item).eq_ignore_ascii_case(token))
}

/// Strips leading and trailing spaces and horizontal tabs (HTTP's only whitespace), nothing else.
pub fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// Static strings found to be valid names, or valid values, on this thread: a small direct-mapped memo of
/// [`is_valid_name`] and [`is_valid_value`] keyed by address and length.
///
/// This is sound because a `&'static [u8]` can never change: no safe code can write to it, so a check made
/// once holds for the rest of the program. Only successes are remembered, and a slot holds one string at a
/// time (a collision just means checking again), so a miss always falls back to the full check.
///
/// Whole lines of fields whose name and value are both static (`Content-Type: text/plain\r\n`) are remembered
/// the same way once found valid, keyed by both strings' addresses and lengths: the line is made of those bytes
/// alone, by one fixed function, so it stays right.
pub(crate) struct StaticChecks {
    names: [Cell<(usize, usize)>; STATIC_CHECK_SLOTS],
    values: [Cell<(usize, usize)>; STATIC_CHECK_SLOTS],
    lines: [LineMemo; LINE_SLOTS],
}

const STATIC_CHECK_SLOTS: usize = 32;

/// How many whole lines [`StaticChecks`] remembers, and the longest it does.
const LINE_SLOTS: usize = 16;
const LINE_MEMO: usize = 64;

/// One remembered line: its key (name address and length, value address and length; all 0 when empty), its
/// length, and its bytes (those past the length unused).
struct LineMemo {
    key: Cell<(usize, usize, usize, usize)>,
    len: Cell<usize>,
    line: Cell<[u8; LINE_MEMO]>,
}

thread_local! {
    static STATIC_CHECKS: StaticChecks = const {
        StaticChecks {
            names: [const { Cell::new((0, 0)) }; STATIC_CHECK_SLOTS],
            values: [const { Cell::new((0, 0)) }; STATIC_CHECK_SLOTS],
            lines: [const {
                LineMemo { key: Cell::new((0, 0, 0, 0)), len: Cell::new(0), line: Cell::new([0; LINE_MEMO]) }
            }; LINE_SLOTS],
        }
    };
}

impl StaticChecks {
    /// The slot of `s`, and the key it is remembered under (a slice's address is never 0, an empty slot's is).
    #[inline(always)]
    fn slot(s: &'static [u8]) -> (usize, (usize, usize)) {
        let addr = s.as_ptr() as usize;
        let hash = (addr ^ s.len()).wrapping_mul(0x9E37_79B9_7F4A_7C15_u64 as usize);
        (hash >> (usize::BITS - STATIC_CHECK_SLOTS.trailing_zeros()), (addr, s.len()))
    }

    /// Whether a map entry, whose name and value resolve to `name` and `value`, can be sent: static strings
    /// through this memo, values checked when they were made without a scan, the rest in full.
    #[inline(always)]
    fn entry(&self, e: &Entry, name: &[u8], value: &[u8]) -> bool {
        let name_ok = match e.name {
            Field::Static(s) => self.name(s),
            _ => is_valid_name(name),
        };
        let value_ok = match e.value {
            Field::Static(s) => self.value(s),
            Field::Local { len: SHARED_CHECKED, .. } => true,
            _ => is_valid_value(value),
        };
        name_ok & value_ok
    }

    /// A map entry's name and value, and whether it can be sent ([`entry`](StaticChecks::entry)).
    #[inline(always)]
    fn checked_entry<'a>(&self, e: &'a Entry, buf: &'a [u8], shared: &'a [Bytes]) -> (&'a [u8], &'a [u8], bool) {
        let name = resolve(&e.name, buf, shared);
        let value = resolve(&e.value, buf, shared);
        (name, value, self.entry(e, name, value))
    }

    /// An extra field's name and value (see [`HeaderMap::try_for_each_valid_and`]), and whether it can be sent.
    #[inline(always)]
    fn checked_extra<'a>(&self, (name, value): (&'static str, &'a [u8])) -> (&'a [u8], &'a [u8], bool) {
        (name.as_bytes(), value, self.name(name.as_bytes()) & is_valid_value(value))
    }

    /// [`is_valid_name`] for a static string.
    #[inline(always)]
    fn name(&self, s: &'static [u8]) -> bool {
        let (i, key) = Self::slot(s);
        self.names[i].get() == key || Self::check(&self.names[i], key, is_valid_name(s))
    }

    /// [`is_valid_value`] for a static string.
    #[inline(always)]
    fn value(&self, s: &'static [u8]) -> bool {
        let (i, key) = Self::slot(s);
        self.values[i].get() == key || Self::check(&self.values[i], key, is_valid_value(s))
    }

    /// The line slot of the field `name: value`, and its key.
    #[inline(always)]
    fn line_slot(&self, name: &'static [u8], value: &'static [u8]) -> (&LineMemo, (usize, usize, usize, usize)) {
        let key = (name.as_ptr() as usize, name.len(), value.as_ptr() as usize, value.len());
        let hash = (key.0 ^ key.2.rotate_left(17) ^ key.3).wrapping_mul(0x9E37_79B9_7F4A_7C15_u64 as usize);
        (&self.lines[hash >> (usize::BITS - LINE_SLOTS.trailing_zeros())], key)
    }

    /// Appends the remembered line of the field `name: value`, if there is one.
    #[inline(always)]
    fn put_line(&self, name: &'static [u8], value: &'static [u8], dst: &mut BytesMut) -> bool {
        let (slot, key) = self.line_slot(name, value);
        if slot.key.get() != key {
            return false;
        }
        let at = dst.len();
        dst.extend_from_slice(&slot.line.get());
        dst.truncate(at + slot.len.get());
        true
    }

    /// Remembers `line`, made of the valid field `name: value`, if it is short enough.
    #[inline(never)]
    fn remember_line(&self, name: &'static [u8], value: &'static [u8], line: &[u8]) {
        if line.len() <= LINE_MEMO {
            let (slot, key) = self.line_slot(name, value);
            let mut bytes = [0; LINE_MEMO];
            bytes[..line.len()].copy_from_slice(line);
            slot.line.set(bytes);
            slot.len.set(line.len());
            slot.key.set(key);
        }
    }

    /// Remembers a success.
    #[inline]
    fn check(slot: &Cell<(usize, usize)>, key: (usize, usize), valid: bool) -> bool {
        if valid {
            slot.set(key);
        }
        valid
    }
}

/// How many fields a [`FieldsMemo`] recognizes a map by.
const MEMO_FIELDS: usize = 4;

/// The `count` of a [`FieldsMemo`] that remembers no map: no map holds that many fields.
const NO_MEMO: usize = usize::MAX;

/// The fields of one map, all static strings, remembered by the addresses and lengths of their names and values:
/// to tell cheaply that a later map holds the very same fields in the same order, hence the same bytes.
///
/// Sound for the reason [`StaticChecks`] is: a `&'static [u8]` never changes, so fields found valid (and not
/// steering framing) when they were remembered still are, and are still written as the same lines. Only maps of
/// up to [`MEMO_FIELDS`] fields, all static, are remembered.
pub(crate) struct FieldsMemo {
    /// How many fields the map held; [`NO_MEMO`] when none is remembered.
    count: Cell<usize>,
    /// Per field: name address and length, value address and length.
    fields: [Cell<[usize; 4]>; MEMO_FIELDS],
}

impl FieldsMemo {
    /// A memo that remembers no map.
    pub(crate) const fn new() -> Self {
        FieldsMemo { count: Cell::new(NO_MEMO), fields: [const { Cell::new([0; 4]) }; MEMO_FIELDS] }
    }

    /// The key a field is remembered by, if its name and value are both static.
    #[inline(always)]
    fn key(e: &Entry) -> Option<[usize; 4]> {
        match (e.name, e.value) {
            (Field::Static(n), Field::Static(v)) => Some([n.as_ptr() as usize, n.len(), v.as_ptr() as usize, v.len()]),
            _ => None,
        }
    }

    /// Whether `map` holds the remembered fields, and only them, in the same order.
    #[inline(always)]
    pub(crate) fn holds(&self, map: &HeaderMap) -> bool {
        let entries = &map.entries[..];
        entries.len() == self.count.get()
            && entries.iter().zip(&self.fields).all(|(e, key)| {
                let key = key.get();
                // Word by word, which compiles to compares in registers.
                match (e.name, e.value) {
                    (Field::Static(n), Field::Static(v)) => {
                        (n.as_ptr() as usize == key[0])
                            & (n.len() == key[1])
                            & (v.as_ptr() as usize == key[2])
                            & (v.len() == key[3])
                    }
                    _ => false,
                }
            })
    }

    /// Remembers the fields of `map`, which the caller found valid; `false` (and nothing remembered) if they
    /// are too many or not all static.
    pub(crate) fn remember(&self, map: &HeaderMap) -> bool {
        self.count.set(NO_MEMO);
        if map.entries.len() > MEMO_FIELDS {
            return false;
        }
        for (e, slot) in map.entries.iter().zip(&self.fields) {
            let Some(key) = Self::key(e) else { return false };
            slot.set(key);
        }
        self.count.set(map.entries.len());
        true
    }
}

/// `tchar` from RFC 9110 §5.6.2: the bytes a token (method, header name, coding) may contain.
static TCHAR: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        t[i] = b.is_ascii_alphanumeric()
            || matches!(b, b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+' | b'-' | b'.' | b'^' | b'_')
            || matches!(b, b'`' | b'|' | b'~');
        i += 1;
    }
    t
};

/// Whether `s` is a non-empty RFC 9110 token.
#[inline]
pub fn is_token(s: &[u8]) -> bool {
    // Branch-free: names are short and almost always valid.
    !s.is_empty() && s.iter().fold(true, |ok, &b| ok & TCHAR[b as usize])
}

/// Whether `name` may be sent as a header field name: a non-empty token (so no spaces, colons, CR, LF or NUL).
#[inline]
pub fn is_valid_name(name: &[u8]) -> bool {
    is_token(name)
}

/// Whether `value` may be sent as a header field value: no control byte except horizontal tab, no DEL. CR, LF
/// and NUL are refused, which is what stops header injection; bytes 0x80–0xFF (`obs-text`) pass.
#[inline]
pub fn is_valid_value(value: &[u8]) -> bool {
    let n = value.len();
    if n < 8 {
        return value.iter().fold(true, |ok, &b| ok & is_value_byte(b));
    }
    if n >= 16 {
        if n <= 32 {
            // Two blocks, overlapping unless the length is 32.
            return block_is_valid(&value[..16]) & block_is_valid(&value[n - 16..]);
        }
        // Blocks of sixteen bytes, tested all at once (vector compares); the last one overlaps the one before
        // when the length is not a multiple of sixteen.
        let mut at = 0;
        while at + 16 < n {
            if !block_is_valid(&value[at..at + 16]) {
                return false;
            }
            at += 16;
        }
        return block_is_valid(&value[n - 16..]);
    }
    // Words of eight bytes; the last one overlaps the one before when the length is not a multiple of eight,
    // so that no byte is looked at alone.
    let mut at = 0;
    while at + 8 < n {
        if !word_is_valid(&value[at..at + 8]) {
            return false;
        }
        at += 8;
    }
    word_is_valid(&value[n - 8..])
}

/// [`is_valid_value`] for sixteen bytes, written without branches so that it compiles to vector compares.
#[inline(always)]
fn block_is_valid(chunk: &[u8]) -> bool {
    let mut block = [0; 16];
    block.copy_from_slice(chunk);
    block.iter().fold(true, |ok, &b| ok & (((b >= 0x20) & (b != 0x7f)) | (b == b'\t')))
}

/// [`is_valid_value`] for eight bytes: a word-wide test, then a closer look only if it flags a byte.
#[inline(always)]
fn word_is_valid(chunk: &[u8]) -> bool {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    let mut word = [0; 8];
    word.copy_from_slice(chunk);
    let x = u64::from_ne_bytes(word);
    // Some byte < 0x20, or some byte == 0x7F: look closer (a tab is fine).
    let below_space = x.wrapping_sub(ONES * 0x20) & !x & HIGH;
    let y = x ^ (ONES * 0x7f);
    let is_del = y.wrapping_sub(ONES) & !y & HIGH;
    (below_space | is_del) == 0 || chunk.iter().all(|&b| is_value_byte(b))
}

#[inline]
fn is_value_byte(b: u8) -> bool {
    (b >= 0x20 && b != 0x7f) || b == b'\t'
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `(offset, length)` of a name and of its value.
    type Spans = ((u32, u32), (u32, u32));

    fn parsed(buf: &'static [u8], fields: &[Spans]) -> HeaderMap {
        let mut map = HeaderMap::new();
        map.set_buffer(Bytes::from_static(buf));
        for &(n, v) in fields {
            map.push_span(n, v);
        }
        map
    }

    #[test]
    fn lookups_ignore_ascii_case() {
        let mut h = HeaderMap::new();
        h.append("Content-Type", "text/html");
        assert_eq!(h.get("content-type"), Some("text/html"));
        assert_eq!(h.get("CONTENT-TYPE"), Some("text/html"));
        assert!(h.contains("cOnTeNt-TyPe"));
        assert!(!h.contains("content-typ"));
        assert_eq!(h.get("content-length"), None);
    }

    #[test]
    fn keeps_every_value_in_order_of_appearance() {
        let mut h = HeaderMap::new();
        h.append("A", "1");
        h.append("B", "x");
        h.append("a", "2");
        h.append("A", "3");
        assert_eq!(h.get_all("a").collect::<Vec<_>>(), [&b"1"[..], b"2", b"3"]);
        assert_eq!(h.get("A"), Some("1"));
        let names: Vec<&[u8]> = h.iter().map(|(n, _)| n).collect();
        assert_eq!(names, [&b"A"[..], b"B", b"a", b"A"]);
        assert_eq!(h.len(), 4);
    }

    #[test]
    fn insert_replaces_all_values_at_the_first_position() {
        let mut h = HeaderMap::new();
        h.append("X", "1");
        h.append("Y", "y");
        h.append("x", "2");
        h.insert("X", "new");
        let pairs: Vec<(&[u8], &[u8])> = h.iter().collect();
        assert_eq!(pairs, [(&b"X"[..], &b"new"[..]), (b"Y", b"y")]);
        h.insert("Z", String::from("z"));
        assert_eq!(h.iter().last(), Some((&b"Z"[..], &b"z"[..])));
    }

    #[test]
    fn replacing_owned_values_in_a_loop_does_not_grow_the_map() {
        let mut h = HeaderMap::new();
        h.append("Static", "kept");
        h.append("X-Owned-Name".to_string(), "first".to_string());
        for i in 0..1000 {
            h.insert("X-Counter", i.to_string());
            h.append("X-Tmp", String::from("t"));
            assert!(h.remove("x-tmp"));
        }
        assert_eq!(h.get("x-counter"), Some("999"));
        assert_eq!(h.get("x-owned-name"), Some("first"));
        assert_eq!(h.get("static"), Some("kept"));
        assert!(h.shared.len() <= 16, "{} owned slots for 3 live values", h.shared.len());
        let names: Vec<&[u8]> = h.iter().map(|(n, _)| n).collect();
        assert_eq!(names, [&b"Static"[..], b"X-Owned-Name", b"X-Counter"]);
    }

    #[test]
    fn remove_drops_every_value_and_reports_it() {
        let mut h: HeaderMap = [("A", "1"), ("b", "2"), ("a", "3")].into_iter().collect();
        assert!(h.remove("A"));
        assert!(!h.remove("A"));
        assert_eq!(h.len(), 1);
        assert_eq!(h.get("b"), Some("2"));
    }

    #[test]
    fn get_returns_none_for_non_utf8_values_but_get_bytes_does_not() {
        let mut h = HeaderMap::new();
        h.append("X-Latin1", Bytes::from_static(b"caf\xe9"));
        assert_eq!(h.get("x-latin1"), None);
        assert_eq!(h.get_bytes("x-latin1"), Some(&b"caf\xe9"[..]));
    }

    #[test]
    fn parsed_fields_are_slices_of_the_shared_buffer() {
        let buf: &'static [u8] = b"Host: example.com\r\nAccept: */*\r\n";
        let h = parsed(buf, &[((0, 4), (6, 11)), ((19, 6), (27, 3))]);
        assert_eq!(h.get("host"), Some("example.com"));
        assert_eq!(h.get("ACCEPT"), Some("*/*"));
        let shared = h.get_shared("host").unwrap();
        assert_eq!(&shared[..], b"example.com");
        assert_eq!(shared.as_ptr(), buf[6..].as_ptr(), "no copy was made");
    }

    #[test]
    fn parsed_and_owned_fields_mix() {
        let mut h = parsed(b"Host: a\r\n", &[((0, 4), (6, 1))]);
        h.append("X-Owned", String::from("yes"));
        h.insert("host", "b");
        assert_eq!(h.get("Host"), Some("b"));
        assert_eq!(h.get("x-owned"), Some("yes"));
        assert!(h.remove("x-owned"));
        assert_eq!(h.len(), 1);
    }

    #[test]
    fn contains_token_reads_comma_lists_case_insensitively() {
        let mut h = HeaderMap::new();
        h.append("Connection", "keep-alive,\tUpgrade ");
        h.append("Connection", "TE");
        assert!(h.contains_token("connection", "upgrade"));
        assert!(h.contains_token("Connection", "KEEP-ALIVE"));
        assert!(h.contains_token("connection", "te"));
        assert!(!h.contains_token("connection", "close"));
        assert!(!h.contains_token("connection", "keep"));
        assert!(!h.contains_token("upgrade", "upgrade"));
    }

    #[test]
    fn trim_ows_strips_only_space_and_tab() {
        assert_eq!(trim_ows(b" \t a b \t "), b"a b");
        assert_eq!(trim_ows(b"\x0ba\x0c"), b"\x0ba\x0c");
        assert_eq!(trim_ows(b"   "), b"");
    }

    #[test]
    fn hash_etags_are_quoted_hex_and_valid_values() {
        for h in [0, 1, 0xff, 0x0123_4567_89ab_cdef, u64::MAX, 0x8000_0000_0000_0000] {
            let etag = HashEtag::from_hash(h);
            assert_eq!(etag.as_str(), format!("\"{h:016x}\""));
            assert_eq!(etag.as_bytes(), etag.as_str().as_bytes());
            assert!(is_valid_value(etag.as_bytes()));
            assert_eq!(etag.line(), format!("Etag: \"{h:016x}\"\r\n").as_bytes());
        }
    }

    #[test]
    fn valid_names_are_tokens() {
        assert!(is_valid_name(b"X-Custom_Header.1~"));
        for bad in [&b""[..], b"Bad Name", b"Bad:", b"X\r\nInjected", b"X\0", b"caf\xe9", b"(x)"] {
            assert!(!is_valid_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn lookups_skipped_by_name_length_still_find_every_field() {
        let mut h = HeaderMap::new();
        assert_eq!(h.get("x"), None);
        h.append("Content-Type", "text/plain");
        // A name 64 bytes longer shares the length bit: it must still be told apart by its bytes.
        let long: &'static str = Box::leak(format!("X-{}", "a".repeat(74)).into_boxed_str());
        assert_eq!(long.len() % 64, "Content-Type".len() % 64);
        assert_eq!(h.get(long), None);
        h.insert(long, "long");
        assert_eq!((h.get("content-type"), h.get(long)), (Some("text/plain"), Some("long")));
        assert!(h.remove("CONTENT-TYPE"));
        assert!(!h.remove("content-type"));
        assert_eq!((h.get("content-type"), h.get(long)), (None, Some("long")));
        h.clear();
        assert_eq!(h.get(long), None);
        h.insert("If-None-Match", "\"v\"");
        assert_eq!(h.get("if-none-match"), Some("\"v\""));
        // Parsed fields are found the same way.
        let p = parsed(b"Host: a\r\nIf-None-Match: *\r\n", &[((0, 4), (6, 1)), ((9, 13), (24, 1))]);
        assert_eq!((p.get("host"), p.get("if-none-match"), p.get("cookie")), (Some("a"), Some("*"), None));
    }

    #[test]
    fn valid_values_refuse_every_control_byte_but_tab() {
        for b in 0u8..=255 {
            let allowed = b == b'\t' || (b >= 0x20 && b != 0x7f);
            // Every position of values short and long: bytes taken alone, whole words, and a last word that
            // overlaps the one before it.
            for len in 1..=40 {
                for pos in 0..len {
                    let mut v = vec![b'a'; len];
                    v[pos] = b;
                    assert_eq!(is_valid_value(&v), allowed, "byte {b:#04x} at {pos} of {len}");
                }
            }
        }
        assert!(is_valid_value(b""));
        assert!(is_valid_value(b"text/html; charset=\"utf-8\"\twith tab"));
    }

    /// The walk an encoder makes: the first field that is not fit to send, by name.
    fn first_unsendable(h: &HeaderMap) -> Option<String> {
        h.try_for_each_valid(|_, _| Ok(()), |name| String::from_utf8_lossy(name).into_owned()).err()
    }

    #[test]
    fn checked_values_skip_the_encoders_scan_and_cannot_be_forged() {
        let checked = |v: &str| HeaderBytes::from(v.to_owned()).checked_value();
        for bad in ["a\r\nX: y", "a\n", "nul\0", "del\x7f"] {
            assert!(checked(bad).is_none(), "{bad:?}");
            assert!(HeaderBytes::from(Bytes::from(bad.to_owned())).checked_value().is_none());
        }
        let etag = checked("\"0123456789abcdef\"").unwrap();
        let mut h = HeaderMap::new();
        h.append("Etag", etag.clone());
        h.append("X-Copy", etag.clone());
        assert_eq!(first_unsendable(&h), None);
        assert_eq!(h.get("etag"), Some("\"0123456789abcdef\""));
        assert_eq!(&h.get_shared("x-copy").unwrap()[..], b"\"0123456789abcdef\"");
        // The mark is for values: checked bytes given as a name are still checked as a name.
        let mut h = HeaderMap::new();
        h.append(checked("Bad Name").unwrap(), "v");
        assert_eq!(first_unsendable(&h).as_deref(), Some("Bad Name"));
        // Marks follow their values when the owned slots are compacted, and unchecked values stay unchecked.
        let mut h = HeaderMap::new();
        for i in 0..100 {
            h.insert("X-Checked", checked(&format!("v{i}")).unwrap());
            h.insert("X-Plain", format!("p{i}"));
        }
        assert_eq!((h.get("x-checked"), h.get("x-plain")), (Some("v99"), Some("p99")));
        assert_eq!(first_unsendable(&h), None);
        h.insert("X-Plain", String::from("p\r\nX: y"));
        assert_eq!(first_unsendable(&h).as_deref(), Some("X-Plain"));
        assert!(h.shared.len() <= 16);
        // A static string stays static.
        let s = HeaderBytes::from("text/plain").checked_value().unwrap();
        assert!(matches!(s.0, Repr::Static(_)));
    }

    #[test]
    fn remembered_checks_of_static_strings_refuse_what_a_full_check_refuses() {
        // A static string remembered as a valid value is still refused as a name.
        let mut h = HeaderMap::new();
        h.append("X-Type", "text/plain");
        assert_eq!(first_unsendable(&h), None);
        assert_eq!(first_unsendable(&h), None, "twice, from the memo");
        h.append("text/plain", "v");
        assert_eq!(first_unsendable(&h).as_deref(), Some("text/plain"));
        // Invalid static strings are refused every time, never remembered.
        for _ in 0..3 {
            let bad: HeaderMap = [("X-A", "v\r\nSet-Cookie: x=1")].into_iter().collect();
            assert_eq!(first_unsendable(&bad).as_deref(), Some("X-A"));
            let bad: HeaderMap = [("X A", "v")].into_iter().collect();
            assert_eq!(first_unsendable(&bad).as_deref(), Some("X A"));
        }
        // Slices of one static string share an address but not a length: each is checked for itself.
        const LINE: &str = "ok\r\nX: y";
        let mut h = HeaderMap::new();
        h.append("X-A", &LINE[..2]);
        assert_eq!(first_unsendable(&h), None);
        h.append("X-B", LINE);
        assert_eq!(first_unsendable(&h).as_deref(), Some("X-B"));
        // Many strings compete for the slots: a string pushed out is checked again, with the same answer.
        let names: Vec<&'static str> = (0..200).map(|i| &*Box::leak(format!("X-{i}").into_boxed_str())).collect();
        for _ in 0..2 {
            let mut h = HeaderMap::new();
            for &n in &names {
                h.append(n, n);
            }
            assert_eq!(first_unsendable(&h), None);
            h.append("X:", "v");
            assert_eq!(first_unsendable(&h).as_deref(), Some("X:"));
        }
        // Owned and parsed fields are checked in full.
        let mut h = HeaderMap::new();
        h.append("X-Owned", String::from("a\nb"));
        assert_eq!(first_unsendable(&h).as_deref(), Some("X-Owned"));
        let p = parsed(b"Bad Name: v\r\n", &[((0, 8), (10, 1))]);
        assert_eq!(first_unsendable(&p).as_deref(), Some("Bad Name"));
    }
}
