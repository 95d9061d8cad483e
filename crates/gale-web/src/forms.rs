//! Form bodies: `application/x-www-form-urlencoded` and `multipart/form-data`.
//!
//! * [`parse_urlencoded`] reads query strings and urlencoded bodies like Tornado's `parse_qs_bytes(...,
//!   keep_blank_values=True)`: pairs split on `&`, `+` is a space, percent escapes are decoded, a pair without
//!   `=` is a name with an empty value, empty pairs are skipped.
//! * [`parse_multipart`] reads a whole multipart body into [`Arguments`] and [`Files`] (Tornado's
//!   `parse_multipart_form_data`).
//! * [`MultipartParser`] is the streaming form: it is fed the body in chunks as they arrive and reports each
//!   part to a [`MultipartSink`] (headers, then data in pieces, then the end), buffering no more than one
//!   boundary line's worth of data, so uploads can go to disk without being held in memory.
//!
//! Names and text values are decoded as UTF-8 with invalid sequences replaced by U+FFFD (Tornado keeps bytes
//! and fails with `400` only when a handler decodes them; replacing is what browsers and most servers do).
//! File contents stay bytes.
//!
//! All parsers enforce [`FormLimits`]: at most 1,000 arguments, 100 parts and 10 KiB of headers per part by
//! default.
//!
//! # Examples
//!
//! ```
//! use gale_web::forms::{multipart_boundary, parse_multipart, parse_urlencoded};
//!
//! let args = parse_urlencoded(b"q=caf%C3%A9+au+lait&tag=a&tag=b&empty").unwrap();
//! assert_eq!(args.get("q").map(String::as_str), Some("café au lait"));
//! assert_eq!(args.get_all("tag"), ["a", "b"]);
//! assert_eq!(args.get("empty").map(String::as_str), Some(""));
//!
//! let boundary = multipart_boundary("multipart/form-data; boundary=XyZ").unwrap();
//! let body = b"--XyZ\r\n\
//!     Content-Disposition: form-data; name=\"title\"\r\n\r\n\
//!     Holiday\r\n\
//!     --XyZ\r\n\
//!     Content-Disposition: form-data; name=\"photo\"; filename=\"beach.jpg\"\r\n\
//!     Content-Type: image/jpeg\r\n\r\n\
//!     \xff\xd8\xff\r\n\
//!     --XyZ--\r\n";
//! let (args, files) = parse_multipart(&boundary, body).unwrap();
//! assert_eq!(args.get("title").map(String::as_str), Some("Holiday"));
//! let photo = files.get("photo").unwrap();
//! assert_eq!((photo.filename.as_str(), photo.content_type.as_str()), ("beach.jpg", "image/jpeg"));
//! assert_eq!(&photo.body[..], b"\xff\xd8\xff");
//! ```

use std::borrow::Cow;
use std::collections::HashMap;
use std::error::Error;
use std::fmt;

use bytes::Bytes;
use memchr::memmem;

use crate::escape::url_unescape_bytes;

/// Limits that protect the parsers from hostile bodies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FormLimits {
    /// Most values an [`Arguments`] may hold after urlencoded parsing (default 1,000).
    pub max_arguments: usize,
    /// Most parts in a multipart body (default 100).
    pub max_parts: usize,
    /// Most bytes in one part's header block, blank line included (default 10 KiB).
    pub max_part_header_bytes: usize,
}

impl Default for FormLimits {
    fn default() -> Self {
        FormLimits { max_arguments: 1_000, max_parts: 100, max_part_header_bytes: 10 * 1024 }
    }
}

/// Why a form body was refused. Each maps to `400 Bad Request`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FormError {
    /// More arguments than [`FormLimits::max_arguments`].
    TooManyArguments {
        /// The limit.
        limit: usize,
    },
    /// More parts than [`FormLimits::max_parts`].
    TooManyParts {
        /// The limit.
        limit: usize,
    },
    /// A part's header block is longer than [`FormLimits::max_part_header_bytes`].
    PartHeadersTooLarge {
        /// The limit.
        limit: usize,
    },
    /// The `Content-Type` is not `multipart/form-data` with a `boundary` parameter.
    MissingBoundary,
    /// The boundary is empty, longer than 200 bytes, or holds control or non-ASCII characters.
    InvalidBoundary,
    /// A part is malformed; the text says how.
    InvalidPart(&'static str),
    /// The body ended before the closing boundary.
    Truncated,
    /// The parser was fed again after reporting an error.
    Poisoned,
}

impl fmt::Display for FormError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FormError::TooManyArguments { limit } => write!(f, "more than {limit} form arguments"),
            FormError::TooManyParts { limit } => write!(f, "more than {limit} multipart parts"),
            FormError::PartHeadersTooLarge { limit } => write!(f, "multipart part headers exceed {limit} bytes"),
            FormError::MissingBoundary => f.write_str("multipart boundary not found"),
            FormError::InvalidBoundary => f.write_str("invalid multipart boundary"),
            FormError::InvalidPart(what) => write!(f, "invalid multipart/form-data: {what}"),
            FormError::Truncated => f.write_str("multipart body ended before the final boundary"),
            FormError::Poisoned => f.write_str("multipart parser used after an error"),
        }
    }
}

impl Error for FormError {}

/// An order-preserving map from names to one or more values.
///
/// Names keep the order in which they first appeared, values the order in which they were added.
#[derive(Debug, Clone)]
pub struct MultiMap<V> {
    entries: Vec<(String, Vec<V>)>,
    index: HashMap<String, usize>,
    value_count: usize,
}

/// Form and query arguments: name to values (Tornado's `request.arguments`, decoded).
pub type Arguments = MultiMap<String>;

/// Uploaded files: field name to files (Tornado's `request.files`).
pub type Files = MultiMap<UploadedFile>;

impl<V> Default for MultiMap<V> {
    fn default() -> Self {
        MultiMap { entries: Vec::new(), index: HashMap::new(), value_count: 0 }
    }
}

impl<V: PartialEq> PartialEq for MultiMap<V> {
    fn eq(&self, other: &Self) -> bool {
        self.entries == other.entries
    }
}

impl<V: Eq> Eq for MultiMap<V> {}

impl<V> MultiMap<V> {
    /// An empty map.
    pub fn new() -> Self {
        MultiMap::default()
    }

    /// Appends `value` to the values of `name`.
    pub fn push(&mut self, name: impl Into<String>, value: V) {
        let name = name.into();
        match self.index.get(&name) {
            Some(&i) => self.entries[i].1.push(value),
            None => {
                self.index.insert(name.clone(), self.entries.len());
                self.entries.push((name, vec![value]));
            }
        }
        self.value_count += 1;
    }

    /// All values of `name`, in order (empty if absent).
    pub fn get_all(&self, name: &str) -> &[V] {
        self.index.get(name).map_or(&[], |&i| &self.entries[i].1)
    }

    /// The **last** value of `name`, as Tornado's `get_argument` returns.
    pub fn get(&self, name: &str) -> Option<&V> {
        self.get_all(name).last()
    }

    /// The first value of `name`.
    pub fn first(&self, name: &str) -> Option<&V> {
        self.get_all(name).first()
    }

    /// Whether `name` has at least one value.
    pub fn contains(&self, name: &str) -> bool {
        self.index.contains_key(name)
    }

    /// The number of distinct names.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the map is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The number of values over all names.
    pub fn value_count(&self) -> usize {
        self.value_count
    }

    /// `(name, values)` pairs in order of first appearance.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[V])> {
        self.entries.iter().map(|(name, values)| (name.as_str(), values.as_slice()))
    }

    /// The names in order of first appearance.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(name, _)| name.as_str())
    }

    /// Moves every value of `other` into `self`, after the values already there.
    pub fn extend(&mut self, other: MultiMap<V>) {
        for (name, values) in other.entries {
            for value in values {
                self.push(name.clone(), value);
            }
        }
    }
}

/// A file from a multipart body (Tornado's `HTTPFile`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadedFile {
    /// The file name the client sent (not sanitised: never use it as a path as is).
    pub filename: String,
    /// The part's `Content-Type`, `application/unknown` if it had none.
    pub content_type: String,
    /// The contents.
    pub body: Bytes,
}

/// Parses an `application/x-www-form-urlencoded` body or a query string with the default [`FormLimits`].
///
/// # Errors
///
/// [`FormError::TooManyArguments`] beyond 1,000 values.
pub fn parse_urlencoded(body: &[u8]) -> Result<Arguments, FormError> {
    let mut arguments = Arguments::new();
    parse_urlencoded_into(body, &mut arguments, &FormLimits::default())?;
    Ok(arguments)
}

/// Parses a urlencoded `body` into `arguments`, after the values already there (query and body arguments
/// share one map in Tornado).
///
/// # Errors
///
/// [`FormError::TooManyArguments`] if `arguments` would hold more than `limits.max_arguments` values; the
/// values before the limit have been added then.
pub fn parse_urlencoded_into(body: &[u8], arguments: &mut Arguments, limits: &FormLimits) -> Result<(), FormError> {
    for pair in body.split(|&b| b == b'&').filter(|pair| !pair.is_empty()) {
        if arguments.value_count() >= limits.max_arguments {
            return Err(FormError::TooManyArguments { limit: limits.max_arguments });
        }
        let (name, value) = match pair.iter().position(|&b| b == b'=') {
            Some(eq) => (&pair[..eq], &pair[eq + 1..]),
            None => (pair, &b""[..]),
        };
        arguments.push(form_text(name), form_text(value));
    }
    Ok(())
}

/// Decodes one urlencoded name or value to text.
fn form_text(raw: &[u8]) -> String {
    match url_unescape_bytes(raw, true) {
        Cow::Borrowed(bytes) => String::from_utf8_lossy(bytes).into_owned(),
        Cow::Owned(bytes) => String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into()),
    }
}

/// Extracts the boundary from a `multipart/form-data` `Content-Type` header value (quoted or not).
///
/// # Errors
///
/// [`FormError::MissingBoundary`] if the media type is not `multipart/form-data` or has no `boundary`,
/// [`FormError::InvalidBoundary`] if the boundary could not delimit parts safely.
///
/// # Examples
///
/// ```
/// use gale_web::forms::multipart_boundary;
///
/// assert_eq!(multipart_boundary("multipart/form-data; boundary=\"a;b c\"").unwrap(), "a;b c");
/// assert!(multipart_boundary("text/plain; boundary=x").is_err());
/// ```
pub fn multipart_boundary(content_type: &str) -> Result<String, FormError> {
    let (media_type, params) = parse_header_value(content_type);
    if !media_type.eq_ignore_ascii_case("multipart/form-data") {
        return Err(FormError::MissingBoundary);
    }
    let boundary = params.into_iter().find(|(k, _)| k == "boundary").map(|(_, v)| v);
    let boundary = boundary.filter(|b| !b.is_empty()).ok_or(FormError::MissingBoundary)?;
    validate_boundary(&boundary)?;
    Ok(boundary)
}

/// Checks that `boundary` can delimit parts: 1 to 200 printable ASCII characters or spaces.
fn validate_boundary(boundary: &str) -> Result<(), FormError> {
    if boundary.is_empty() || boundary.len() > 200 || !boundary.bytes().all(|b| (b' '..=b'~').contains(&b)) {
        return Err(FormError::InvalidBoundary);
    }
    Ok(())
}

/// Parses a body by its `Content-Type` (Tornado's `parse_body_arguments`): urlencoded or multipart bodies are
/// parsed, others give empty results.
///
/// # Errors
///
/// As [`parse_urlencoded_into`], [`multipart_boundary`] and [`parse_multipart_with_limits`].
pub fn parse_body_arguments(
    content_type: &str,
    body: &[u8],
    limits: &FormLimits,
) -> Result<(Arguments, Files), FormError> {
    let (media_type, _) = parse_header_value(content_type);
    if media_type.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        let mut arguments = Arguments::new();
        parse_urlencoded_into(body, &mut arguments, limits)?;
        Ok((arguments, Files::new()))
    } else if media_type.eq_ignore_ascii_case("multipart/form-data") {
        parse_multipart_with_limits(&multipart_boundary(content_type)?, body, limits)
    } else {
        Ok((Arguments::new(), Files::new()))
    }
}

/// Parses a whole `multipart/form-data` body with the default [`FormLimits`].
///
/// Parts with a non-empty `filename` become [`Files`], the others [`Arguments`] (as in Tornado, a file field
/// submitted without a file, `filename=""`, is an empty argument).
///
/// # Errors
///
/// [`FormError`] for malformed or truncated bodies and exceeded limits.
pub fn parse_multipart(boundary: &str, body: &[u8]) -> Result<(Arguments, Files), FormError> {
    parse_multipart_with_limits(boundary, body, &FormLimits::default())
}

/// [`parse_multipart`] with explicit limits.
///
/// # Errors
///
/// As [`parse_multipart`].
pub fn parse_multipart_with_limits(
    boundary: &str,
    body: &[u8],
    limits: &FormLimits,
) -> Result<(Arguments, Files), FormError> {
    let mut parser = MultipartParser::new(boundary, *limits)?;
    let mut sink = CollectingSink::default();
    parser.feed(body, &mut sink)?;
    parser.finish()?;
    Ok((sink.arguments, sink.files))
}

/// Gathers parts in memory for [`parse_multipart`].
#[derive(Default)]
struct CollectingSink {
    arguments: Arguments,
    files: Files,
    current: Option<(PartHeaders, Vec<u8>)>,
}

impl MultipartSink for CollectingSink {
    type Error = FormError;

    fn part_begin(&mut self, headers: &PartHeaders) -> Result<(), FormError> {
        self.current = Some((headers.clone(), Vec::new()));
        Ok(())
    }

    fn part_data(&mut self, data: &[u8]) -> Result<(), FormError> {
        if let Some((_, body)) = &mut self.current {
            body.extend_from_slice(data);
        }
        Ok(())
    }

    fn part_end(&mut self) -> Result<(), FormError> {
        let Some((headers, body)) = self.current.take() else { return Ok(()) };
        match headers.filename.filter(|f| !f.is_empty()) {
            Some(filename) => {
                let content_type = headers.content_type.unwrap_or_else(|| "application/unknown".to_owned());
                self.files.push(headers.name, UploadedFile { filename, content_type, body: Bytes::from(body) });
            }
            None => {
                let value = String::from_utf8(body).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into());
                self.arguments.push(headers.name, value);
            }
        }
        Ok(())
    }
}

/// The headers of one multipart part, with its `Content-Disposition` already interpreted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartHeaders {
    /// The form field name (`Content-Disposition: form-data; name=...`), never empty.
    pub name: String,
    /// The file name (`filename*=` in RFC 5987 form wins over `filename=`), if any. May be empty when a file
    /// input was left blank.
    pub filename: Option<String>,
    /// The part's `Content-Type`, if given.
    pub content_type: Option<String>,
    /// Every header line as `(name, value)`, in order.
    pub headers: Vec<(String, String)>,
}

impl PartHeaders {
    /// The first header called `name` (case-insensitive).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// Whether the part is a file upload (has a non-empty file name).
    pub fn is_file(&self) -> bool {
        self.filename.as_ref().is_some_and(|f| !f.is_empty())
    }

    /// Interprets a header block (without its terminating blank line).
    fn parse(block: &[u8]) -> Result<PartHeaders, FormError> {
        let text = String::from_utf8_lossy(block);
        let mut headers: Vec<(String, String)> = Vec::new();
        for line in text.split("\r\n").filter(|line| !line.is_empty()) {
            if line.starts_with([' ', '\t']) {
                // Obsolete line folding: continues the previous header.
                let (_, value) = headers.last_mut().ok_or(FormError::InvalidPart("continuation line first"))?;
                value.push(' ');
                value.push_str(line.trim());
                continue;
            }
            let (name, value) = line.split_once(':').ok_or(FormError::InvalidPart("header line without a colon"))?;
            let name = name.trim();
            if name.is_empty() {
                return Err(FormError::InvalidPart("empty header name"));
            }
            headers.push((name.to_owned(), value.trim().to_owned()));
        }
        let find = |wanted: &str| headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(wanted)).map(|(_, v)| v);
        let disposition = find("Content-Disposition").ok_or(FormError::InvalidPart("no Content-Disposition"))?;
        let (kind, params) = parse_header_value(disposition);
        if !kind.eq_ignore_ascii_case("form-data") {
            return Err(FormError::InvalidPart("disposition is not form-data"));
        }
        let param = |wanted: &str| params.iter().find(|(k, _)| k == wanted).map(|(_, v)| v.clone());
        let name = param("name").filter(|n| !n.is_empty()).ok_or(FormError::InvalidPart("part without a name"))?;
        let filename = param("filename*").or_else(|| param("filename"));
        let content_type = find("Content-Type").cloned();
        Ok(PartHeaders { name, filename, content_type, headers })
    }
}

/// Receives the parts a [`MultipartParser`] finds, in order: for each part `part_begin`, any number of
/// `part_data` (never empty), then `part_end`.
///
/// Returning an error stops the parser; [`MultipartParser::feed`] hands it back.
pub trait MultipartSink {
    /// The sink's error type; parse errors are converted into it.
    type Error: From<FormError>;

    /// A part starts.
    fn part_begin(&mut self, headers: &PartHeaders) -> Result<(), Self::Error>;

    /// The next piece of the current part's body.
    fn part_data(&mut self, data: &[u8]) -> Result<(), Self::Error>;

    /// The current part is complete.
    fn part_end(&mut self) -> Result<(), Self::Error>;
}

/// Where the parser is in the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before the first delimiter; bytes are discarded.
    Preamble,
    /// Right after `--boundary`: expecting `--`, or optional blanks and CRLF.
    AfterDelimiter,
    /// After `--boundary-`: expecting the second `-` of the close delimiter.
    AfterDelimiterDash,
    /// After `--boundary` and CR: expecting LF.
    AfterDelimiterCr,
    /// Inside a part's header block.
    Headers,
    /// Inside a part's body.
    Body,
    /// After the close delimiter; bytes are discarded.
    Epilogue,
    /// An error was reported.
    Failed,
}

/// A streaming `multipart/form-data` parser; see the [module docs](self).
///
/// # Examples
///
/// ```
/// use gale_web::forms::{FormError, FormLimits, MultipartParser, MultipartSink, PartHeaders};
///
/// /// Counts the bytes of each part instead of keeping them.
/// #[derive(Default)]
/// struct Sizes(Vec<(String, usize)>);
///
/// impl MultipartSink for Sizes {
///     type Error = FormError;
///     fn part_begin(&mut self, headers: &PartHeaders) -> Result<(), FormError> {
///         self.0.push((headers.name.clone(), 0));
///         Ok(())
///     }
///     fn part_data(&mut self, data: &[u8]) -> Result<(), FormError> {
///         self.0.last_mut().unwrap().1 += data.len();
///         Ok(())
///     }
///     fn part_end(&mut self) -> Result<(), FormError> {
///         Ok(())
///     }
/// }
///
/// let body = b"--b\r\nContent-Disposition: form-data; name=\"f\"; filename=\"x\"\r\n\r\n0123456789\r\n--b--";
/// let mut parser = MultipartParser::new("b", FormLimits::default()).unwrap();
/// let mut sizes = Sizes::default();
/// for chunk in body.chunks(7) {
///     parser.feed(chunk, &mut sizes).unwrap();
/// }
/// parser.finish().unwrap();
/// assert_eq!(sizes.0, [("f".to_owned(), 10)]);
/// ```
#[derive(Debug)]
pub struct MultipartParser {
    /// `\r\n--boundary`.
    delimiter: Box<[u8]>,
    finder: memmem::Finder<'static>,
    limits: FormLimits,
    state: State,
    /// A proper prefix of `delimiter` seen at the end of the previous chunk.
    partial: Vec<u8>,
    /// The current part's header block so far.
    header_block: Vec<u8>,
    parts: usize,
}

impl MultipartParser {
    /// A parser for a body delimited by `boundary` (as given by [`multipart_boundary`]).
    ///
    /// # Errors
    ///
    /// [`FormError::InvalidBoundary`] if `boundary` is empty, longer than 200 bytes, or holds control or
    /// non-ASCII characters.
    pub fn new(boundary: &str, limits: FormLimits) -> Result<Self, FormError> {
        validate_boundary(boundary)?;
        let delimiter: Box<[u8]> = [b"\r\n--", boundary.as_bytes()].concat().into();
        let finder = memmem::Finder::new(&delimiter).into_owned();
        // The body may open with `--boundary` directly: act as if a CRLF had been seen.
        let partial = b"\r\n".to_vec();
        Ok(MultipartParser {
            delimiter,
            finder,
            limits,
            state: State::Preamble,
            partial,
            header_block: Vec::new(),
            parts: 0,
        })
    }

    /// Parses the next `chunk` of the body, reporting what it completes to `sink`.
    ///
    /// # Errors
    ///
    /// A malformed body or an exceeded limit (as [`FormError`] converted into the sink's error), or the sink's
    /// own error. The parser is unusable afterwards: further calls fail with [`FormError::Poisoned`].
    pub fn feed<S: MultipartSink>(&mut self, chunk: &[u8], sink: &mut S) -> Result<(), S::Error> {
        let result = self.feed_inner(chunk, sink);
        if result.is_err() {
            self.state = State::Failed;
        }
        result
    }

    /// Checks that the body is complete (the close delimiter was seen).
    ///
    /// # Errors
    ///
    /// [`FormError::Truncated`] if it was not, [`FormError::Poisoned`] after an error.
    pub fn finish(&mut self) -> Result<(), FormError> {
        match self.state {
            State::Epilogue => Ok(()),
            State::Failed => Err(FormError::Poisoned),
            _ => {
                self.state = State::Failed;
                Err(FormError::Truncated)
            }
        }
    }

    /// Whether the close delimiter has been seen (later bytes are ignored).
    pub fn is_done(&self) -> bool {
        self.state == State::Epilogue
    }

    fn feed_inner<S: MultipartSink>(&mut self, mut input: &[u8], sink: &mut S) -> Result<(), S::Error> {
        loop {
            match self.state {
                State::Preamble => match self.scan(input, &mut |_: &[u8]| Ok::<(), S::Error>(()))? {
                    Some(used) => {
                        input = &input[used..];
                        self.state = State::AfterDelimiter;
                    }
                    None => return Ok(()),
                },
                State::Body => match self.scan(input, &mut |data| sink.part_data(data))? {
                    Some(used) => {
                        input = &input[used..];
                        sink.part_end()?;
                        self.state = State::AfterDelimiter;
                    }
                    None => return Ok(()),
                },
                State::AfterDelimiter | State::AfterDelimiterDash | State::AfterDelimiterCr => {
                    let Some((&byte, rest)) = input.split_first() else { return Ok(()) };
                    input = rest;
                    self.state = match (self.state, byte) {
                        (State::AfterDelimiter, b'-') => State::AfterDelimiterDash,
                        // Transport padding (RFC 2046) before the CRLF.
                        (State::AfterDelimiter, b' ' | b'\t') => State::AfterDelimiter,
                        (State::AfterDelimiter, b'\r') => State::AfterDelimiterCr,
                        (State::AfterDelimiterDash, b'-') => State::Epilogue,
                        (State::AfterDelimiterCr, b'\n') => {
                            if self.parts == self.limits.max_parts {
                                return Err(FormError::TooManyParts { limit: self.limits.max_parts }.into());
                            }
                            self.parts += 1;
                            self.header_block.clear();
                            State::Headers
                        }
                        _ => return Err(FormError::InvalidPart("malformed boundary line").into()),
                    };
                }
                State::Headers => {
                    let Some(used) = self.take_headers(input)? else { return Ok(()) };
                    input = &input[used..];
                    let headers = PartHeaders::parse(&self.header_block)?;
                    self.header_block = Vec::new();
                    sink.part_begin(&headers)?;
                    self.state = State::Body;
                }
                State::Epilogue => return Ok(()),
                State::Failed => return Err(FormError::Poisoned.into()),
            }
        }
    }

    /// Adds header bytes from `input` to the header block. Returns how many bytes of `input` the block used
    /// once it is complete (the block then lacks its terminating blank line), `None` if more input is needed.
    fn take_headers(&mut self, input: &[u8]) -> Result<Option<usize>, FormError> {
        let limit = self.limits.max_part_header_bytes;
        let old_len = self.header_block.len();
        let room = limit.saturating_sub(old_len);
        self.header_block.extend_from_slice(&input[..input.len().min(room)]);
        let end = if self.header_block.starts_with(b"\r\n") {
            // No headers at all: the blank line comes first.
            Some((0, 2))
        } else {
            let from = old_len.saturating_sub(3);
            memmem::find(&self.header_block[from..], b"\r\n\r\n").map(|i| (from + i, from + i + 4))
        };
        match end {
            Some((content_end, block_end)) => {
                self.header_block.truncate(content_end);
                Ok(Some(block_end - old_len))
            }
            None if self.header_block.len() >= limit => Err(FormError::PartHeadersTooLarge { limit }),
            None => Ok(None),
        }
    }

    /// Looks for the delimiter in `input`, continuing a partial match from the previous chunk. Bytes before it
    /// go to `data` (except what might still start the delimiter, kept in `self.partial`). Returns the number
    /// of bytes of `input` up to the end of the delimiter, or `None` if it was not found.
    fn scan<E>(&mut self, input: &[u8], data: &mut dyn FnMut(&[u8]) -> Result<(), E>) -> Result<Option<usize>, E> {
        let delimiter = &*self.delimiter;
        if !self.partial.is_empty() {
            let matched = self.partial.len();
            let compared = (delimiter.len() - matched).min(input.len());
            if input[..compared] == delimiter[matched..matched + compared] {
                if matched + compared == delimiter.len() {
                    self.partial.clear();
                    return Ok(Some(compared));
                }
                self.partial.extend_from_slice(input);
                return Ok(None);
            }
            // Not the delimiter after all. No delimiter can start later inside the partial match either: it
            // begins with the only CR of the delimiter (boundaries hold no control characters).
            let partial = std::mem::take(&mut self.partial);
            data(&partial)?;
        }
        if let Some(at) = self.finder.find(input) {
            if at > 0 {
                data(&input[..at])?;
            }
            return Ok(Some(at + delimiter.len()));
        }
        // Keep a tail that could be the start of a delimiter split across chunks.
        let window = input.len().saturating_sub(delimiter.len() - 1);
        let keep = memchr::memrchr(b'\r', &input[window..])
            .map(|i| window + i)
            .filter(|&i| delimiter.starts_with(&input[i..]));
        let emit_end = keep.unwrap_or(input.len());
        if emit_end > 0 {
            data(&input[..emit_end])?;
        }
        if let Some(i) = keep {
            self.partial.extend_from_slice(&input[i..]);
        }
        Ok(None)
    }
}

/// Splits a header value such as `form-data; name="a"; filename*=UTF-8''%C3%A9` into its main value and its
/// parameters (Tornado's `_parse_header`): parameter names lower-cased, quoted values unquoted, RFC 2231 / 5987
/// extended values (`name*=charset'lang'percent-encoded`) decoded and stored under `name*`.
fn parse_header_value(line: &str) -> (String, Vec<(String, String)>) {
    let mut pieces = split_params(line).into_iter();
    let main = pieces.next().unwrap_or_default().trim().to_owned();
    let mut params = Vec::new();
    for piece in pieces {
        let Some((name, value)) = piece.split_once('=') else { continue };
        let name = name.trim().to_ascii_lowercase();
        let value = value.trim();
        let value = if name.ends_with('*') { decode_extended_value(unquote(value)) } else { unquote(value) };
        params.push((name, value));
    }
    (main, params)
}

/// Splits on `;` outside double-quoted strings.
fn split_params(line: &str) -> Vec<&str> {
    let mut pieces = Vec::new();
    let mut start = 0;
    let mut in_quotes = false;
    let mut escaped = false;
    for (i, c) in line.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if in_quotes => escaped = true,
            '"' => in_quotes = !in_quotes,
            ';' if !in_quotes => {
                pieces.push(&line[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    pieces.push(&line[start..]);
    pieces
}

/// Python's `email.utils.unquote` for parameter values: strips enclosing double quotes and undoes `\\` and
/// `\"` (other backslashes, as in Windows paths, are kept).
fn unquote(value: &str) -> String {
    match value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
        Some(inner) if value.len() >= 2 => inner.replace("\\\\", "\\").replace("\\\"", "\""),
        _ => value.to_owned(),
    }
}

/// Decodes an RFC 2231 / 5987 extended value `charset'language'percent-encoded`. Latin-1 and ASCII are
/// decoded as Latin-1, every other charset as UTF-8 (invalid sequences replaced). A value not in that form is
/// returned as is.
fn decode_extended_value(value: String) -> String {
    let mut parts = value.splitn(3, '\'');
    let (Some(charset), Some(_language), Some(encoded)) = (parts.next(), parts.next(), parts.next()) else {
        return value;
    };
    let bytes = url_unescape_bytes(encoded.as_bytes(), false);
    match charset.to_ascii_lowercase().as_str() {
        "iso-8859-1" | "latin1" | "latin-1" | "us-ascii" => bytes.iter().map(|&b| char::from(b)).collect(),
        _ => String::from_utf8_lossy(&bytes).into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // ----- urlencoded -------------------------------------------------------------------------------------

    #[test]
    fn urlencoded_pairs_are_decoded_in_order() {
        let args = parse_urlencoded(b"b=2&a=1&b=3&c=%E2%82%AC+%2B").unwrap();
        let names: Vec<_> = args.names().collect();
        assert_eq!(names, ["b", "a", "c"]);
        assert_eq!(args.get_all("b"), ["2", "3"]);
        assert_eq!(args.get("b").map(String::as_str), Some("3"));
        assert_eq!(args.first("b").map(String::as_str), Some("2"));
        assert_eq!(args.get("c").map(String::as_str), Some("€ +"));
        assert_eq!(args.value_count(), 4);
    }

    #[test]
    fn urlencoded_keeps_blank_values_and_skips_empty_pairs() {
        let args = parse_urlencoded(b"&a&&b=&=c&").unwrap();
        assert_eq!(args.get("a").map(String::as_str), Some(""));
        assert_eq!(args.get("b").map(String::as_str), Some(""));
        assert_eq!(args.get("").map(String::as_str), Some("c"));
        assert_eq!(args.value_count(), 3);
    }

    #[test]
    fn urlencoded_splits_on_ampersand_only_and_first_equals() {
        let args = parse_urlencoded(b"a=1;b=2&c=x=y").unwrap();
        assert_eq!(args.get("a").map(String::as_str), Some("1;b=2"));
        assert_eq!(args.get("c").map(String::as_str), Some("x=y"));
    }

    #[test]
    fn urlencoded_replaces_invalid_utf8_and_keeps_bad_escapes() {
        let args = parse_urlencoded(b"n%FF=%C3%28&p=100%&q=%zz\xff").unwrap();
        assert_eq!(args.get("n\u{FFFD}").map(String::as_str), Some("\u{FFFD}("));
        assert_eq!(args.get("p").map(String::as_str), Some("100%"));
        assert_eq!(args.get("q").map(String::as_str), Some("%zz\u{FFFD}"));
    }

    #[test]
    fn urlencoded_enforces_the_argument_limit() {
        let body: Vec<u8> = (0..1_000).map(|i| format!("k{i}=v&")).collect::<String>().into_bytes();
        assert_eq!(parse_urlencoded(&body).unwrap().value_count(), 1_000);
        let mut over = body.clone();
        over.extend_from_slice(b"one=more");
        assert_eq!(parse_urlencoded(&over), Err(FormError::TooManyArguments { limit: 1_000 }));
    }

    #[test]
    fn the_argument_limit_counts_values_already_present() {
        let limits = FormLimits { max_arguments: 3, ..FormLimits::default() };
        let mut args = Arguments::new();
        parse_urlencoded_into(b"a=1&a=2", &mut args, &limits).unwrap();
        parse_urlencoded_into(b"b=1", &mut args, &limits).unwrap();
        assert_eq!(parse_urlencoded_into(b"c=1", &mut args, &limits), Err(FormError::TooManyArguments { limit: 3 }));
        assert_eq!(args.value_count(), 3);
    }

    #[test]
    fn multimap_extend_appends_and_merges_names() {
        let mut a = parse_urlencoded(b"x=1&y=2").unwrap();
        a.extend(parse_urlencoded(b"y=3&z=4").unwrap());
        let all: Vec<_> = a.iter().map(|(n, v)| (n.to_owned(), v.to_vec())).collect();
        assert_eq!(all.len(), 3);
        assert_eq!(a.get_all("y"), ["2", "3"]);
        assert!(a.contains("z") && !a.contains("w"));
        assert_eq!(a.get_all("w"), [] as [String; 0]);
        assert_eq!(a, {
            let mut b = Arguments::new();
            for (n, v) in [("x", "1"), ("y", "2"), ("y", "3"), ("z", "4")] {
                b.push(n, v.to_owned());
            }
            b
        });
    }

    // ----- header values and boundaries ---------------------------------------------------------------------

    #[test]
    fn boundaries_are_read_quoted_or_not() {
        assert_eq!(multipart_boundary("multipart/form-data; boundary=abc").unwrap(), "abc");
        assert_eq!(multipart_boundary("Multipart/Form-Data;charset=utf-8;BOUNDARY=\"q;uo ted\"").unwrap(), "q;uo ted");
        assert_eq!(multipart_boundary("multipart/form-data"), Err(FormError::MissingBoundary));
        assert_eq!(multipart_boundary("multipart/form-data; boundary="), Err(FormError::MissingBoundary));
        assert_eq!(multipart_boundary("application/json; boundary=x"), Err(FormError::MissingBoundary));
        assert_eq!(multipart_boundary("multipart/form-data; boundary=\"a\rb\""), Err(FormError::InvalidBoundary));
        let long = format!("multipart/form-data; boundary={}", "x".repeat(201));
        assert_eq!(multipart_boundary(&long), Err(FormError::InvalidBoundary));
    }

    #[test]
    fn header_values_follow_tornados_parse_header() {
        let (main, params) = parse_header_value(r#"form-data; foo="b\\a\"r"; file*=utf-8''T%C3%A4st; Empty="""#);
        assert_eq!(main, "form-data");
        assert_eq!(
            params,
            [("foo".into(), r#"b\a"r"#.into()), ("file*".into(), "Täst".into()), ("empty".into(), String::new())]
        );
        let (_, params) = parse_header_value(r#"form-data; filename="C:\dir\f.txt"; x*=iso-8859-1'en'%E9"#);
        assert_eq!(params[0].1, r"C:\dir\f.txt");
        assert_eq!(params[1].1, "é");
        let (_, params) = parse_header_value("a; b*=no-quotes-here");
        assert_eq!(params[0].1, "no-quotes-here");
    }

    // ----- buffered multipart ---------------------------------------------------------------------------------

    const BODY: &[u8] = b"preamble is ignored\r\n\
        --1234\r\n\
        Content-Disposition: form-data; name=\"title\"\r\n\
        \r\n\
        A \xc3\xa9 title\r\n\
        --1234\r\n\
        Content-Disposition: form-data; name=\"files\"; filename=\"a.txt\"\r\n\
        Content-Type: text/plain\r\n\
        \r\n\
        line one\r\nx--1234 mid-line\r\n-\r\n--123\r\n\r\r\n\
        --1234  \t\r\n\
        content-disposition: form-data; name=\"files\"; filename=\"ignored.bin\"; filename*=UTF-8''%E2%82%AC.bin\r\n\
        \r\n\
        \x00\x01\r\n\
        --1234\r\n\
        Content-Disposition: form-data; name=\"blank\"; filename=\"\"\r\n\
        Content-Type: application/octet-stream\r\n\
        \r\n\
        \r\n\
        --1234--\r\n\
        epilogue is ignored too";

    #[test]
    fn multipart_bodies_split_into_arguments_and_files() {
        let (args, files) = parse_multipart("1234", BODY).unwrap();
        assert_eq!(args.get("title").map(String::as_str), Some("A é title"));
        assert_eq!(args.get("blank").map(String::as_str), Some(""));
        let uploaded = files.get_all("files");
        assert_eq!(uploaded.len(), 2);
        assert_eq!(uploaded[0].filename, "a.txt");
        assert_eq!(uploaded[0].content_type, "text/plain");
        assert_eq!(&uploaded[0].body[..], b"line one\r\nx--1234 mid-line\r\n-\r\n--123\r\n\r");
        assert_eq!(uploaded[1].filename, "€.bin");
        assert_eq!(uploaded[1].content_type, "application/unknown");
        assert_eq!(&uploaded[1].body[..], b"\x00\x01");
    }

    #[test]
    fn a_body_may_start_directly_with_the_delimiter_or_have_no_parts() {
        let (args, _) =
            parse_multipart("b", b"--b\r\nContent-Disposition: form-data; name=x\r\n\r\n1\r\n--b--").unwrap();
        assert_eq!(args.get("x").map(String::as_str), Some("1"));
        let (args, files) = parse_multipart("b", b"--b--").unwrap();
        assert!(args.is_empty() && files.is_empty());
    }

    #[test]
    fn truncated_bodies_are_rejected() {
        for body in [
            &b""[..],
            b"--b\r\nContent-Disposition: form-data; name=x\r\n\r\n1\r\n",
            b"--b\r\nContent-Disposition: form-data; name=x\r\n\r\n1\r\n--b",
            b"--b\r\nContent-Disposition: form-data; name=x\r\n\r\n1\r\n--b-",
            b"--b\r\nContent-Disposition: form-data; name=x\r\n",
        ] {
            assert_eq!(parse_multipart("b", body), Err(FormError::Truncated), "{:?}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn malformed_parts_are_rejected() {
        let cases: [(&[u8], &str); 6] = [
            (b"--b\r\nContent-Type: text/plain\r\n\r\nx\r\n--b--", "no Content-Disposition"),
            (b"--b\r\nContent-Disposition: attachment; name=x\r\n\r\nx\r\n--b--", "disposition is not form-data"),
            (b"--b\r\nContent-Disposition: form-data; name=\"\"\r\n\r\nx\r\n--b--", "part without a name"),
            (b"--b\r\nContent-Disposition: form-data\r\n\r\nx\r\n--b--", "part without a name"),
            (b"--b\r\nno colon here\r\n\r\nx\r\n--b--", "header line without a colon"),
            (b"--bx\r\nContent-Disposition: form-data; name=a\r\n\r\nx\r\n--b--", "malformed boundary line"),
        ];
        for (body, reason) in cases {
            assert_eq!(parse_multipart("b", body), Err(FormError::InvalidPart(reason)), "{reason}");
        }
    }

    #[test]
    fn parts_without_headers_are_rejected_for_lack_of_a_name() {
        assert_eq!(
            parse_multipart("b", b"--b\r\n\r\nx\r\n--b--"),
            Err(FormError::InvalidPart("no Content-Disposition"))
        );
    }

    #[test]
    fn folded_header_lines_are_joined() {
        let body = b"--b\r\nContent-Disposition: form-data;\r\n\tname=\"folded\"\r\n\r\nv\r\n--b--";
        let (args, _) = parse_multipart("b", body).unwrap();
        assert_eq!(args.get("folded").map(String::as_str), Some("v"));
    }

    #[test]
    fn the_part_limit_is_enforced() {
        let part = b"--b\r\nContent-Disposition: form-data; name=p\r\n\r\nv\r\n";
        let body = |n: usize| [part.repeat(n), b"--b--".to_vec()].concat();
        assert_eq!(parse_multipart("b", &body(100)).unwrap().0.get_all("p").len(), 100);
        assert_eq!(parse_multipart("b", &body(101)), Err(FormError::TooManyParts { limit: 100 }));
    }

    #[test]
    fn the_part_header_limit_is_enforced() {
        let limits = FormLimits { max_part_header_bytes: 64, ..FormLimits::default() };
        let header = |pad: usize| {
            let mut h = format!("Content-Disposition: form-data; name=x\r\nX-Pad: {}\r\n\r\n", "p".repeat(pad));
            h.insert_str(0, "--b\r\n");
            h.push_str("v\r\n--b--");
            h.into_bytes()
        };
        // The header block (blank line included) is 40 + 9 + pad + 2 bytes.
        assert!(parse_multipart_with_limits("b", &header(13), &limits).is_ok());
        assert_eq!(
            parse_multipart_with_limits("b", &header(14), &limits),
            Err(FormError::PartHeadersTooLarge { limit: 64 })
        );
        assert_eq!(parse_multipart("b", &header(20_000)), Err(FormError::PartHeadersTooLarge { limit: 10 * 1024 }));
    }

    #[test]
    fn parse_body_arguments_dispatches_on_content_type() {
        let limits = FormLimits::default();
        let (args, _) =
            parse_body_arguments("application/x-www-form-urlencoded; charset=UTF-8", b"a=1", &limits).unwrap();
        assert_eq!(args.get("a").map(String::as_str), Some("1"));
        let body = b"--z\r\nContent-Disposition: form-data; name=m\r\n\r\n2\r\n--z--";
        let (args, _) = parse_body_arguments("multipart/form-data; boundary=z", body, &limits).unwrap();
        assert_eq!(args.get("m").map(String::as_str), Some("2"));
        let (args, files) = parse_body_arguments("application/json", b"{\"a\":1}", &limits).unwrap();
        assert!(args.is_empty() && files.is_empty());
        assert_eq!(parse_body_arguments("multipart/form-data", body, &limits), Err(FormError::MissingBoundary));
    }

    // ----- streaming multipart ------------------------------------------------------------------------------

    /// What a sink saw.
    #[derive(Debug, Clone, PartialEq, Eq)]
    enum Event {
        Begin(String, Option<String>),
        Data(Vec<u8>),
        End,
    }

    /// Records events, merging consecutive data so that different chunkings compare equal.
    #[derive(Default)]
    struct Recorder {
        events: Vec<Event>,
        largest_piece: usize,
    }

    impl MultipartSink for Recorder {
        type Error = FormError;

        fn part_begin(&mut self, headers: &PartHeaders) -> Result<(), FormError> {
            self.events.push(Event::Begin(headers.name.clone(), headers.filename.clone()));
            Ok(())
        }

        fn part_data(&mut self, data: &[u8]) -> Result<(), FormError> {
            assert!(!data.is_empty(), "part_data called with nothing");
            self.largest_piece = self.largest_piece.max(data.len());
            match self.events.last_mut() {
                Some(Event::Data(buffered)) => buffered.extend_from_slice(data),
                _ => self.events.push(Event::Data(data.to_vec())),
            }
            Ok(())
        }

        fn part_end(&mut self) -> Result<(), FormError> {
            self.events.push(Event::End);
            Ok(())
        }
    }

    fn stream(body: &[u8], chunks: &[&[u8]]) -> Result<Vec<Event>, FormError> {
        assert_eq!(chunks.concat(), body);
        let mut parser = MultipartParser::new("1234", FormLimits::default())?;
        let mut recorder = Recorder::default();
        for chunk in chunks {
            parser.feed(chunk, &mut recorder)?;
            assert!(parser.partial.len() < parser.delimiter.len());
        }
        parser.finish()?;
        Ok(recorder.events)
    }

    #[test]
    fn streaming_reports_begin_data_end_for_each_part() {
        let events = stream(BODY, &[BODY]).unwrap();
        assert_eq!(events.len(), 11);
        assert_eq!(events[0], Event::Begin("title".into(), None));
        assert_eq!(events[1], Event::Data("A é title".as_bytes().to_vec()));
        assert_eq!(events[2], Event::End);
        assert_eq!(events[3], Event::Begin("files".into(), Some("a.txt".into())));
        assert_eq!(events[9], Event::Begin("blank".into(), Some(String::new())));
        // An empty part body gives no data event at all.
        assert_eq!(events[10], Event::End);
    }

    #[test]
    fn streaming_gives_the_same_events_at_every_split_point() {
        let expected = stream(BODY, &[BODY]).unwrap();
        for split in 0..=BODY.len() {
            let (a, b) = BODY.split_at(split);
            assert_eq!(stream(BODY, &[a, b]).unwrap(), expected, "split at {split}");
        }
    }

    #[test]
    fn streaming_gives_the_same_events_at_every_pair_of_split_points() {
        let expected = stream(BODY, &[BODY]).unwrap();
        for first in 0..=BODY.len() {
            for second in first..=BODY.len() {
                let chunks = [&BODY[..first], &BODY[first..second], &BODY[second..]];
                assert_eq!(stream(BODY, &chunks).unwrap(), expected, "split at {first} and {second}");
            }
        }
    }

    #[test]
    fn streaming_byte_by_byte_gives_the_same_events() {
        let expected = stream(BODY, &[BODY]).unwrap();
        let bytes: Vec<&[u8]> = BODY.chunks(1).collect();
        assert_eq!(stream(BODY, &bytes).unwrap(), expected);
    }

    #[test]
    fn streaming_never_holds_a_whole_part() {
        let payload: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
        let body = [
            &b"--1234\r\nContent-Disposition: form-data; name=\"big\"; filename=\"big.bin\"\r\n\r\n"[..],
            &payload,
            b"\r\n--1234--\r\n",
        ]
        .concat();
        let mut parser = MultipartParser::new("1234", FormLimits::default()).unwrap();
        let mut recorder = Recorder::default();
        for chunk in body.chunks(8192) {
            parser.feed(chunk, &mut recorder).unwrap();
            assert!(parser.partial.len() < parser.delimiter.len());
            assert!(parser.header_block.capacity() <= FormLimits::default().max_part_header_bytes);
        }
        parser.finish().unwrap();
        assert!(recorder.largest_piece <= 8192);
        assert_eq!(recorder.events[1], Event::Data(payload));
    }

    #[test]
    fn a_sink_error_stops_the_parser_and_poisons_it() {
        #[derive(Debug, PartialEq)]
        enum SinkError {
            Full,
            Form(FormError),
        }
        impl From<FormError> for SinkError {
            fn from(e: FormError) -> Self {
                SinkError::Form(e)
            }
        }
        struct Refuses;
        impl MultipartSink for Refuses {
            type Error = SinkError;
            fn part_begin(&mut self, _: &PartHeaders) -> Result<(), SinkError> {
                Ok(())
            }
            fn part_data(&mut self, _: &[u8]) -> Result<(), SinkError> {
                Err(SinkError::Full)
            }
            fn part_end(&mut self) -> Result<(), SinkError> {
                Ok(())
            }
        }
        let mut parser = MultipartParser::new("1234", FormLimits::default()).unwrap();
        assert_eq!(parser.feed(BODY, &mut Refuses), Err(SinkError::Full));
        assert_eq!(parser.feed(b"more", &mut Refuses), Err(SinkError::Form(FormError::Poisoned)));
        assert_eq!(parser.finish(), Err(FormError::Poisoned));
    }

    #[test]
    fn bytes_after_the_close_delimiter_are_ignored() {
        let mut parser = MultipartParser::new("b", FormLimits::default()).unwrap();
        let mut recorder = Recorder::default();
        parser.feed(b"--b--", &mut recorder).unwrap();
        assert!(parser.is_done());
        parser.feed(b"\r\n--b\r\nContent-Disposition: form-data; name=x\r\n\r\n", &mut recorder).unwrap();
        parser.finish().unwrap();
        assert!(recorder.events.is_empty());
    }

    #[test]
    fn invalid_boundaries_are_refused_by_the_parser() {
        for boundary in ["", "a\r\nb", "é"] {
            assert_eq!(MultipartParser::new(boundary, FormLimits::default()).unwrap_err(), FormError::InvalidBoundary);
        }
    }
}
