//! [`ResponseWriter`]: how a service answers — Tornado's `HTTPConnection.write_headers` / `write` / `finish`.

use super::ServerState;
use super::conn::BodyReader;
use crate::headers::{HashEtag, HeaderMap};
use crate::message::Response;
use crate::proto::EncodeError;
use crate::proto::body::{BodyEncoder, Frame};
use crate::proto::response::{ConnectionAfter, FieldList, ResponseContext, ResponseEncoder, WithExtra};
use bytes::{Buf, Bytes, BytesMut};
use gale_iostream::{IOStream, StreamError};
use std::cell::{Cell, RefCell};
use std::fmt;
use std::rc::Rc;
use std::task::{Poll, Waker};

/// Bodies up to this size are copied next to their head, so that a small response is one buffer; larger ones
/// are queued as they are (zero-copy) and go out in the same `writev`.
pub(crate) const COPY_BODY_LIMIT: usize = 4096;
/// Responses accumulated beyond this size are flushed even while more pipelined requests wait.
pub(crate) const COALESCE_LIMIT: usize = 64 * 1024;

/// An error writing a response.
#[derive(Debug)]
pub enum WriteError {
    /// The response violates HTTP framing or contains forbidden bytes (e.g. CR/LF in a header value).
    Encode(EncodeError),
    /// The head was already written.
    HeadAlreadyWritten,
    /// Body data before the head.
    HeadNotWritten,
    /// The connection is closed (the client went away).
    Closed,
}

impl fmt::Display for WriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WriteError::Encode(e) => write!(f, "invalid response: {e}"),
            WriteError::HeadAlreadyWritten => f.write_str("the response head was already written"),
            WriteError::HeadNotWritten => f.write_str("body data written before the response head"),
            WriteError::Closed => f.write_str("the connection is closed"),
        }
    }
}

impl std::error::Error for WriteError {}

impl From<EncodeError> for WriteError {
    fn from(e: EncodeError) -> Self {
        WriteError::Encode(e)
    }
}

impl From<StreamError> for WriteError {
    fn from(_: StreamError) -> Self {
        WriteError::Closed
    }
}

/// Where the current response is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Writing {
    /// Nothing written yet.
    Head,
    /// The head is out; the body goes through this encoder.
    Body(BodyEncoder),
    /// The response is complete.
    Done,
}

/// State shared by a connection and the writer of its current response.
pub(crate) struct Shared {
    pub(crate) stream: IOStream,
    /// Encoded output not yet handed to the stream: heads, small bodies, chunk framing.
    pub(crate) out: RefCell<BytesMut>,
    pub(crate) encoder: Rc<ResponseEncoder>,
    pub(crate) ctx: Cell<ResponseContext>,
    pub(crate) writing: Cell<Writing>,
    pub(crate) after: Cell<ConnectionAfter>,
    /// Set when the client went away while a request was in progress.
    pub(crate) closed: Cell<bool>,
    pub(crate) close_waiters: RefCell<Vec<Waker>>,
    /// The server's state: a response whose head is written during a shutdown closes its connection.
    pub(crate) server: Rc<ServerState>,
    /// The streamed body of the current request, if any: once reading it failed, the connection cannot be
    /// reused, and the response says so.
    pub(crate) body: RefCell<Option<BodyReader>>,
}

thread_local! {
    /// One output buffer kept per thread for the next response: a connection borrows it while it encodes and
    /// sends, and gives it back before waiting for input, so that an idle connection holds no output buffer
    /// and a busy one allocates none. Buffers are swapped in and out rather than moved, so that neither
    /// side drops the empty one it had: no call on the usual path.
    static SPARE_OUT: RefCell<BytesMut> = RefCell::new(BytesMut::new());
}

/// Room given at once to the output buffer of a burst of pipelined requests: their responses are coalesced up
/// to [`COALESCE_LIMIT`], plus the last one, which may pass it (a head and a small body copied next to it).
const BURST_OUT: usize = COALESCE_LIMIT + 2 * COPY_BODY_LIMIT;

/// Output buffers larger than this are freed rather than kept as the thread's spare.
const SPARE_OUT_MAX: usize = BURST_OUT;

/// Frees the output buffer `out`, leaving it without one: kept out of line, as it is seldom needed.
#[cold]
#[inline(never)]
fn drop_out(out: &mut BytesMut) {
    *out = BytesMut::new();
}

/// Gives the empty output buffer `out` back to the thread (or frees it), leaving `out` without one.
#[inline]
fn release(out: &mut BytesMut) {
    if out.is_empty() && out.capacity() > 0 {
        SPARE_OUT.with_borrow_mut(|spare| {
            if spare.capacity() == 0 && out.capacity() <= SPARE_OUT_MAX {
                std::mem::swap(out, spare);
            } else {
                // The thread has a spare already (another connection gave one back), or this one is too
                // large to keep.
                drop_out(out);
            }
        });
    }
}

impl Shared {
    /// The output buffer, borrowed from the thread's spare if the connection has none.
    #[inline]
    pub(crate) fn out(&self) -> std::cell::RefMut<'_, BytesMut> {
        let mut out = self.out.borrow_mut();
        if out.capacity() == 0 {
            // The spare, if the thread has one (else another buffer without room, which changes nothing).
            SPARE_OUT.with_borrow_mut(|spare| std::mem::swap(&mut *out, spare));
        }
        out
    }

    /// The length of `out` before another pipelined response is encoded, with room made for the whole burst
    /// once: grown by doubling as responses come, the buffer would be copied again and again.
    pub(crate) fn burst_out_len(&self) -> usize {
        let mut out = self.out();
        let len = out.len();
        if out.capacity() < BURST_OUT {
            out.reserve(BURST_OUT - len);
        }
        len
    }

    /// Gives an empty output buffer back to the thread, before the connection waits for input.
    pub(crate) fn release_out(&self) {
        release(&mut self.out.borrow_mut());
    }

    /// Moves `out` onto the stream's write queue (no syscall).
    pub(crate) fn queue_out(&self) -> Result<(), StreamError> {
        let mut out = self.out.borrow_mut();
        if out.is_empty() {
            return Ok(());
        }
        let chunk = out.split().freeze();
        drop(out);
        self.stream.queue_write(chunk)
    }

    /// Sends `out` now if nothing else is queued and the kernel takes all of it: `Ok(true)` then, with the
    /// output buffer given back to the thread (see [`release_out`](Shared::release_out)), as the connection
    /// does before it waits for input. `Ok(false)` when something is left to [`flush`](Shared::flush).
    #[inline]
    pub(crate) fn flush_now(&self) -> Result<bool, StreamError> {
        // One borrow for the write and the release: this runs before every wait for input.
        let mut out = self.out.borrow_mut();
        if out.is_empty() {
            if self.stream.write_buffer_len() != 0 {
                return Ok(false);
            }
        } else {
            let n = self.stream.try_write(&out)?;
            if n != out.len() {
                out.advance(n);
                return Ok(false);
            }
            out.clear();
        }
        release(&mut out);
        Ok(true)
    }

    /// Sends `out` and everything queued; resolves when the kernel has it all. The output buffer is then
    /// given back to the thread, as by [`flush_now`](Shared::flush_now).
    pub(crate) async fn flush(&self) -> Result<(), StreamError> {
        if self.flush_now()? {
            return Ok(());
        }
        self.queue_out()?;
        self.stream.flush().await?;
        self.release_out();
        Ok(())
    }

    pub(crate) fn mark_closed(&self) {
        self.closed.set(true);
        for w in self.close_waiters.borrow_mut().drain(..) {
            w.wake();
        }
    }
}

/// Writes the response to one request: head, then body pieces, then finish. Dropping the writer of an
/// unfinished response finishes it (an unanswered request gets a 500 from the server instead).
///
/// Output is coalesced: nothing is sent until [`flush`](ResponseWriter::flush) or until the service returns,
/// so a whole response normally leaves in one `writev` — and pipelined responses share one.
///
/// Clones are handles to the same response.
#[derive(Clone)]
pub struct ResponseWriter {
    pub(crate) shared: Rc<Shared>,
}

impl fmt::Debug for ResponseWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseWriter").field("writing", &self.shared.writing.get()).finish()
    }
}

impl ResponseWriter {
    /// Writes the status line and headers. `content_length` announces the body's length; without it the
    /// body is chunked for HTTP/1.1 clients and close-delimited for HTTP/1.0.
    ///
    /// # Errors
    ///
    /// [`WriteError::Encode`] for invalid status, reason or header bytes (nothing is written then, and the
    /// service may still answer differently); [`WriteError::HeadAlreadyWritten`].
    pub fn write_head(
        &self,
        status: u16,
        reason: Option<&str>,
        headers: &HeaderMap,
        content_length: Option<u64>,
    ) -> Result<(), WriteError> {
        self.write_head_fields(status, reason, headers, content_length)
    }

    /// What the head is encoded with, once it is known that no head was written yet: the request's context,
    /// without keep-alive if the server is stopping or the request body failed.
    #[inline]
    fn head_context(&self) -> Result<ResponseContext, WriteError> {
        let s = &self.shared;
        if s.writing.get() != Writing::Head {
            return Err(WriteError::HeadAlreadyWritten);
        }
        let mut ctx = s.ctx.get();
        if s.server.shutting_down.get() || s.body.borrow().as_ref().is_some_and(BodyReader::failed) {
            ctx = ctx.with_keep_alive(false);
        }
        Ok(ctx.with_now(gale_iostream::ioloop::now()))
    }

    fn write_head_fields<L: FieldList>(
        &self,
        status: u16,
        reason: Option<&str>,
        fields: L,
        content_length: Option<u64>,
    ) -> Result<(), WriteError> {
        let ctx = self.head_context()?;
        let s = &self.shared;
        let mut out = s.out();
        let head = s.encoder.encode_fields(&ctx, status, reason, fields, content_length, &mut out)?;
        if (100..200).contains(&status) && status != 101 {
            // An interim response: the final one follows.
            return Ok(());
        }
        s.after.set(head.connection);
        s.writing.set(Writing::Body(head.body));
        Ok(())
    }

    /// Writes a whole response in one call: status, header fields given as `(name, value)` pairs, and a body
    /// whose length goes in `Content-Length`. The quickest way to answer: no [`HeaderMap`] to build, and a
    /// borrowed body (say, one serialized into a reused buffer) is copied once, into the output.
    ///
    /// ```no_run
    /// # async fn answer(writer: gale_http1::ResponseWriter) -> Result<(), gale_http1::WriteError> {
    /// writer.respond(200, &[("Content-Type", "text/plain")], "Hello, World!")
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`write_head`](ResponseWriter::write_head) and [`write`](ResponseWriter::write).
    pub fn respond<'b>(
        &self,
        status: u16,
        fields: &[(&str, &str)],
        body: impl Into<ResponseBody<'b>>,
    ) -> Result<(), WriteError> {
        self.respond_fields(status, None, fields, body.into())
    }

    /// [`respond`](ResponseWriter::respond) with the header fields in a [`HeaderMap`] and an optional reason
    /// phrase (the standard one if `None`): for layers that build their headers as a map, such as a web
    /// framework finishing a handler's response.
    ///
    /// # Errors
    ///
    /// As [`write_head`](ResponseWriter::write_head) and [`write`](ResponseWriter::write).
    pub fn respond_with<'b>(
        &self,
        status: u16,
        reason: Option<&str>,
        headers: &HeaderMap,
        body: impl Into<ResponseBody<'b>>,
    ) -> Result<(), WriteError> {
        self.respond_fields(status, reason, headers, body.into())
    }

    /// [`respond_with`](ResponseWriter::respond_with) with more header fields sent after the map's, without
    /// storing them in it: for a value made per response, such as a computed `ETag`, this spares the map an
    /// owned value to keep and drop. The extra fields are checked like the map's (a value with CR, LF or another
    /// control byte is refused, and nothing is written).
    ///
    /// ```no_run
    /// # fn answer(writer: gale_http1::ResponseWriter, etag: &[u8]) -> Result<(), gale_http1::WriteError> {
    /// let headers = gale_http1::HeaderMap::new();
    /// writer.respond_with_extra(200, None, &headers, &[("Etag", etag)], "Hello, World!")
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`write_head`](ResponseWriter::write_head) and [`write`](ResponseWriter::write).
    pub fn respond_with_extra<'b>(
        &self,
        status: u16,
        reason: Option<&str>,
        headers: &HeaderMap,
        extra: &[(&'static str, &[u8])],
        body: impl Into<ResponseBody<'b>>,
    ) -> Result<(), WriteError> {
        self.respond_fields(status, reason, WithExtra { map: headers, extra, etag: None }, body.into())
    }

    /// [`respond_with`](ResponseWriter::respond_with) with an `Etag` field sent after the map's when `etag` is
    /// given: the tag is valid by construction, so it is not checked again per response.
    ///
    /// ```no_run
    /// # fn answer(writer: gale_http1::ResponseWriter) -> Result<(), gale_http1::WriteError> {
    /// let headers = gale_http1::HeaderMap::new();
    /// let etag = gale_http1::headers::HashEtag::from_hash(42);
    /// writer.respond_with_etag(200, None, &headers, Some(&etag), "Hello, World!")
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`write_head`](ResponseWriter::write_head) and [`write`](ResponseWriter::write).
    #[inline]
    pub fn respond_with_etag<'b>(
        &self,
        status: u16,
        reason: Option<&str>,
        headers: &HeaderMap,
        etag: Option<&HashEtag>,
        body: impl Into<ResponseBody<'b>>,
    ) -> Result<(), WriteError> {
        self.respond_fields(status, reason, WithExtra { map: headers, extra: &[], etag }, body.into())
    }

    fn respond_fields<L: FieldList>(
        &self,
        status: u16,
        reason: Option<&str>,
        fields: L,
        body: ResponseBody<'_>,
    ) -> Result<(), WriteError> {
        let bytes: &[u8] = match &body {
            ResponseBody::Borrowed(b) => b,
            ResponseBody::Shared(b) => b,
        };
        if status >= 200 && bytes.len() <= COPY_BODY_LIMIT && !self.shared.closed.get() {
            return self.respond_small(status, reason, fields, bytes);
        }
        self.write_head_fields(status, reason, fields, Some(bytes.len() as u64))?;
        match body {
            ResponseBody::Borrowed(b) if b.len() > COPY_BODY_LIMIT => self.write(Bytes::copy_from_slice(b))?,
            ResponseBody::Borrowed(b) if !b.is_empty() => self.write_copy(b)?,
            ResponseBody::Shared(b) if !b.is_empty() => self.write(b)?,
            _ => {}
        }
        self.finish()
    }

    /// [`respond`](ResponseWriter::respond) for a final response with a small body, the usual case: head, body
    /// and end are written under one borrow of the output, with the same checks and outcomes as the three
    /// steps taken one by one.
    fn respond_small<L: FieldList>(
        &self,
        status: u16,
        reason: Option<&str>,
        fields: L,
        bytes: &[u8],
    ) -> Result<(), WriteError> {
        let ctx = self.head_context()?;
        let s = &self.shared;
        let mut out = s.out();
        let len = Some(bytes.len() as u64);
        let (head, written) = s.encoder.encode_whole(&ctx, status, reason, fields, len, Some(bytes), &mut out)?;
        let mut body = head.body;
        s.after.set(head.connection);
        if !written && !bytes.is_empty() {
            if let Err(e) = body.encode(bytes, &mut out) {
                // As a failed `write`: the head is out, the body is still to come.
                s.writing.set(Writing::Body(body));
                return Err(e.into());
            }
        }
        let result = body.finish(&mut out);
        if result.is_err() || body.is_close_delimited() {
            s.after.set(ConnectionAfter::Close);
        }
        s.writing.set(Writing::Done);
        Ok(result?)
    }

    /// Copies a small piece of body into the output.
    fn write_copy(&self, data: &[u8]) -> Result<(), WriteError> {
        let s = &self.shared;
        let Writing::Body(mut body) = s.writing.get() else { return Err(WriteError::HeadNotWritten) };
        if s.closed.get() {
            return Err(WriteError::Closed);
        }
        body.encode(data, &mut s.out())?;
        s.writing.set(Writing::Body(body));
        Ok(())
    }

    /// Writes a piece of body (copied if small, else queued as is).
    ///
    /// # Errors
    ///
    /// [`WriteError::HeadNotWritten`]; [`WriteError::Encode`] past a `Content-Length` or after finish;
    /// [`WriteError::Closed`].
    pub fn write(&self, data: impl Into<Bytes>) -> Result<(), WriteError> {
        let s = &self.shared;
        let Writing::Body(mut body) = s.writing.get() else {
            return Err(match s.writing.get() {
                Writing::Head => WriteError::HeadNotWritten,
                _ => WriteError::Encode(EncodeError::AlreadyFinished),
            });
        };
        if s.closed.get() {
            return Err(WriteError::Closed);
        }
        let data: Bytes = data.into();
        let mut out = s.out();
        if data.len() <= COPY_BODY_LIMIT {
            body.encode(&data, &mut out)?;
        } else {
            match body.frame(data.len(), &mut out)? {
                Frame::Discard => {}
                Frame::Send { suffix } => {
                    let head = out.split().freeze();
                    drop(out);
                    s.stream.queue_write(head)?;
                    s.stream.queue_write(data.clone())?;
                    s.out().extend_from_slice(suffix);
                }
            }
        }
        s.writing.set(Writing::Body(body));
        Ok(())
    }

    /// Sends everything written so far (Tornado's `flush`): for streaming responses and long polls.
    ///
    /// # Errors
    ///
    /// [`WriteError::Closed`] if the client went away.
    pub async fn flush(&self) -> Result<(), WriteError> {
        Ok(self.shared.flush().await?)
    }

    /// Ends the response (the last chunk of a chunked body). The connection sends it when the service returns.
    ///
    /// # Errors
    ///
    /// [`WriteError::Encode`] if a `Content-Length` was not met ([`EncodeError::BodyTooShort`]: the connection
    /// will close) or on a second call; [`WriteError::HeadNotWritten`].
    pub fn finish(&self) -> Result<(), WriteError> {
        let s = &self.shared;
        let mut body = match s.writing.get() {
            Writing::Body(b) => b,
            Writing::Head => return Err(WriteError::HeadNotWritten),
            Writing::Done => return Err(WriteError::Encode(EncodeError::AlreadyFinished)),
        };
        let result = body.finish(&mut s.out());
        if result.is_err() || body.is_close_delimited() {
            s.after.set(ConnectionAfter::Close);
        }
        s.writing.set(Writing::Done);
        Ok(result?)
    }

    /// Writes a whole response: head with `Content-Length`, body, finish.
    ///
    /// # Errors
    ///
    /// As [`write_head`](ResponseWriter::write_head).
    pub fn send(&self, response: &Response) -> Result<(), WriteError> {
        self.write_head(
            response.status,
            response.reason.as_deref(),
            &response.headers,
            Some(response.body.len() as u64),
        )?;
        if !response.body.is_empty() {
            self.write(response.body.clone())?;
        }
        self.finish()
    }

    /// Whether the head has been written.
    pub fn head_written(&self) -> bool {
        self.shared.writing.get() != Writing::Head
    }

    /// Whether the response is complete.
    pub fn is_finished(&self) -> bool {
        self.shared.writing.get() == Writing::Done
    }

    /// Whether the client went away (Tornado's `on_connection_close`); writes fail from then on.
    pub fn is_closed(&self) -> bool {
        self.shared.closed.get()
    }

    /// Resolves when the client goes away while this request is in progress: for long polls that must clean
    /// up. (The service's future is dropped right after, so `Drop` guards work too.)
    pub async fn closed(&self) {
        std::future::poll_fn(|cx| {
            if self.shared.closed.get() {
                Poll::Ready(())
            } else {
                let mut waiters = self.shared.close_waiters.borrow_mut();
                if !waiters.iter().any(|w| w.will_wake(cx.waker())) {
                    waiters.push(cx.waker().clone());
                }
                Poll::Pending
            }
        })
        .await
    }

    /// Resolves when the server begins a graceful shutdown: for connections that outlive their request (a
    /// WebSocket after its 101) and must say goodbye themselves.
    pub fn server_shutdown(&self) -> ShutdownSignal {
        ShutdownSignal { server: self.shared.server.clone(), key: None }
    }

    /// The stream under the connection, for protocol upgrades (websockets) once a 101 head was written: the
    /// server hands the connection over when the service returns.
    pub fn stream(&self) -> &IOStream {
        &self.shared.stream
    }
}

/// A body for [`ResponseWriter::respond`]: borrowed bytes (copied into the output) or shared [`Bytes`]
/// (queued without copying when large).
#[derive(Debug, Clone)]
pub enum ResponseBody<'a> {
    /// Bytes the caller keeps; copied.
    Borrowed(&'a [u8]),
    /// Bytes handed over.
    Shared(Bytes),
}

impl<'a> From<&'a [u8]> for ResponseBody<'a> {
    fn from(b: &'a [u8]) -> Self {
        ResponseBody::Borrowed(b)
    }
}

impl<'a, const N: usize> From<&'a [u8; N]> for ResponseBody<'a> {
    fn from(b: &'a [u8; N]) -> Self {
        ResponseBody::Borrowed(b)
    }
}

impl<'a> From<&'a str> for ResponseBody<'a> {
    fn from(s: &'a str) -> Self {
        ResponseBody::Borrowed(s.as_bytes())
    }
}

impl<'a> From<&'a Vec<u8>> for ResponseBody<'a> {
    fn from(b: &'a Vec<u8>) -> Self {
        ResponseBody::Borrowed(b)
    }
}

impl From<Bytes> for ResponseBody<'_> {
    fn from(b: Bytes) -> Self {
        ResponseBody::Shared(b)
    }
}

impl From<Vec<u8>> for ResponseBody<'_> {
    fn from(b: Vec<u8>) -> Self {
        ResponseBody::Shared(Bytes::from(b))
    }
}

impl From<String> for ResponseBody<'_> {
    fn from(s: String) -> Self {
        ResponseBody::Shared(Bytes::from(s))
    }
}

/// The future of [`ResponseWriter::server_shutdown`].
pub struct ShutdownSignal {
    server: Rc<ServerState>,
    key: Option<usize>,
}

impl fmt::Debug for ShutdownSignal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShutdownSignal").field("shutting_down", &self.server.shutting_down.get()).finish()
    }
}

impl std::future::Future for ShutdownSignal {
    type Output = ();

    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<()> {
        let this = &mut *self;
        if this.server.poll_shutdown(cx, &mut this.key) { Poll::Ready(()) } else { Poll::Pending }
    }
}

impl Drop for ShutdownSignal {
    fn drop(&mut self) {
        self.server.forget(self.key.take());
    }
}
