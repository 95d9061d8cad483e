//! [`IOStream`]: buffered non-blocking reads and writes over any stream fd.

use crate::error::{CloseReason, StreamError};
use bytes::{Buf, Bytes, BytesMut};
use gale_ioloop::{IOLoop, Source};
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::future::{Future, poll_fn};
use std::io::{self, IoSlice};
use std::os::fd::AsFd;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

/// Tornado's default `max_buffer_size`: 100 MiB.
pub const DEFAULT_MAX_BUFFER_SIZE: usize = 100 * 1024 * 1024;
/// Tornado's default read chunk size: 64 KiB. Also the size of the per-thread scratch buffer reads land in.
pub const DEFAULT_READ_CHUNK_SIZE: usize = 64 * 1024;
/// How many queued chunks one `writev` sends at most.
const MAX_IOV: usize = 32;

/// Limits of one stream.
#[derive(Clone, Copy, Debug)]
pub struct StreamOptions {
    /// The most bytes the read buffer may hold; a read that would exceed it fails with
    /// [`StreamError::BufferFull`] and closes the stream. Default 100 MiB.
    pub max_buffer_size: usize,
    /// The most bytes that may wait in the write queue; a write beyond it fails with
    /// [`StreamError::WriteBufferFull`]. `None` (the default, as Tornado) means no limit: callers get
    /// back-pressure by awaiting their writes.
    pub max_write_buffer_size: Option<usize>,
    /// The most bytes one `read` syscall asks for (at most 64 KiB). Default 64 KiB.
    pub read_chunk_size: usize,
}

impl Default for StreamOptions {
    fn default() -> Self {
        StreamOptions {
            max_buffer_size: DEFAULT_MAX_BUFFER_SIZE,
            max_write_buffer_size: None,
            read_chunk_size: DEFAULT_READ_CHUNK_SIZE,
        }
    }
}

/// Input left over after `consume` beyond this size is handed to the stream in the thread's read buffer
/// itself (the thread takes a fresh one) rather than copied out of it.
const HAND_OVER_MIN: usize = DEFAULT_READ_CHUNK_SIZE / 4;

thread_local! {
    /// Every stream on a thread reads into this one buffer, then keeps only the bytes it got. An idle stream
    /// therefore holds no read buffer at all. Reads land in its spare capacity, so no zeroing is needed, and
    /// a large leftover (a burst of pipelined requests) can be handed over whole.
    static SCRATCH: RefCell<Vec<u8>> = RefCell::new(Vec::with_capacity(DEFAULT_READ_CHUNK_SIZE));
}

/// Reads at most `want` bytes from `io` into `buf`, which is left holding just them.
#[inline]
fn read_into(io: impl AsFd, buf: &mut Vec<u8>, want: usize) -> io::Result<usize> {
    buf.clear();
    if buf.capacity() == want {
        // The usual case, a whole chunk: straight into the spare capacity.
        return Ok(rustix::io::read(io, rustix::buffer::spare_capacity(buf))?);
    }
    read_into_zeroed(io, buf, want)
}

/// What is left of the input in `buf` after its first `used` bytes, for the stream to keep: copied out when
/// small, else the buffer itself (unique, so taken over without a copy), the thread taking a fresh one.
fn leftover(buf: &mut Vec<u8>, used: usize) -> BytesMut {
    if buf.len() - used <= HAND_OVER_MIN {
        return BytesMut::from(&buf[used..]);
    }
    let whole = std::mem::replace(buf, Vec::with_capacity(DEFAULT_READ_CHUNK_SIZE));
    let mut rest = BytesMut::from(Bytes::from(whole));
    rest.advance(used);
    rest
}

/// [`read_into`] for a chunk of another size than the buffer's: the spare capacity cannot be bounded, so a
/// zeroed prefix is read into.
#[cold]
#[inline(never)]
fn read_into_zeroed(io: impl AsFd, buf: &mut Vec<u8>, want: usize) -> io::Result<usize> {
    buf.reserve(want);
    buf.resize(want, 0);
    let result = rustix::io::read(io, &mut buf[..]);
    buf.truncate(*result.as_ref().unwrap_or(&0));
    Ok(result?)
}

struct State {
    read_buf: BytesMut,
    /// False after a short read: the kernel buffer is then most likely empty, so the next read waits for
    /// readiness first instead of trying a `read` that would return `EAGAIN`.
    may_have_data: bool,
    reading: bool,
    write_queue: VecDeque<Bytes>,
    queued_bytes: usize,
    /// Totals since the stream opened; a write future waits until `flushed_total` reaches its mark.
    queued_total: u64,
    flushed_total: u64,
    write_waiters: Vec<(u64, Waker)>,
    flusher_running: bool,
    closed: Option<CloseReason>,
    close_waiters: Vec<Waker>,
    close_callback: Option<Box<dyn FnOnce()>>,
    bytes_read: u64,
    bytes_written: u64,
}

struct Inner<S: AsFd + 'static> {
    source: RefCell<Option<Source<S>>>,
    state: RefCell<State>,
    options: Cell<StreamOptions>,
    /// Dropped with the last handle: lets a server count open connections.
    _guard: RefCell<Option<Guard>>,
}

/// What a stream keeps alive until its last handle is dropped.
#[allow(dead_code)] // The fields are held for their destructors only.
enum Guard {
    /// One given to [`IOStream::attach_guard`].
    Any(Box<dyn std::any::Any>),
    /// The open-connection count of a [`TcpServer`](crate::TcpServer), kept without a box of its own.
    Connection(crate::net::ConnectionGuard),
}

/// A buffered, non-blocking stream over a socket, pipe or any stream fd — Tornado's `IOStream`.
///
/// `IOStream` is a cheap clonable handle (an `Rc`), so one task may read while others write: exactly one read
/// may be pending at a time (a second is [`StreamError::ReadPending`], not a hang), while writes queue
/// without copying (`Bytes` chunks, sent with vectored writes) and each returns a [`WriteFuture`] that
/// resolves once that data has been flushed to the kernel. A write that would block is finished in the
/// background, so a write need not be awaited.
///
/// Reads try the syscall first and wait for readiness only on `WouldBlock`. Bytes read but not yet consumed
/// are served before the socket is read again; an idle stream keeps no read buffer.
///
/// # Examples
///
/// ```
/// use gale_ioloop::IOLoop;
/// use gale_iostream::IOStream;
/// use std::os::unix::net::UnixStream;
///
/// let io_loop = IOLoop::new()?;
/// io_loop.run_sync(async {
///     let (a, b) = UnixStream::pair().unwrap();
///     let (a, b) = (IOStream::new(a).unwrap(), IOStream::new(b).unwrap());
///     a.write(&b"GET / HTTP/1.1\r\n\r\nrest"[..]).await.unwrap();
///     let head = b.read_until(b"\r\n\r\n", None).await.unwrap();
///     assert_eq!(&head[..], b"GET / HTTP/1.1\r\n\r\n");
///     let rest = b.read_bytes(4, false).await.unwrap();
///     assert_eq!(&rest[..], b"rest");
/// });
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct IOStream<S: AsFd + 'static = std::net::TcpStream> {
    inner: Rc<Inner<S>>,
}

impl<S: AsFd + 'static> Clone for IOStream<S> {
    fn clone(&self) -> Self {
        IOStream { inner: self.inner.clone() }
    }
}

impl<S: AsFd + 'static> fmt::Debug for IOStream<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.inner.state.borrow();
        f.debug_struct("IOStream")
            .field("buffered", &st.read_buf.len())
            .field("queued", &st.queued_bytes)
            .field("closed", &st.closed)
            .finish()
    }
}

/// Resets the "a read is pending" flag when a read future ends or is dropped.
struct ReadGuard<'a, S: AsFd + 'static>(&'a IOStream<S>);

impl<S: AsFd + 'static> Drop for ReadGuard<'_, S> {
    fn drop(&mut self) {
        self.0.inner.state.borrow_mut().reading = false;
    }
}

impl<S: AsFd + 'static> IOStream<S> {
    /// Wraps `io`, switching it to non-blocking mode, on the current thread's loop.
    ///
    /// # Errors
    ///
    /// If the fd cannot be made non-blocking or registered with the loop.
    pub fn new(io: S) -> io::Result<IOStream<S>> {
        IOStream::with_options(&IOLoop::current(), io, StreamOptions::default())
    }

    /// Wraps `io` on `io_loop` with the given limits.
    ///
    /// # Errors
    ///
    /// As [`IOStream::new`].
    pub fn with_options(io_loop: &IOLoop, io: S, options: StreamOptions) -> io::Result<IOStream<S>> {
        set_nonblocking(&io)?;
        IOStream::with_nonblocking(io_loop, io, options)
    }

    /// As [`IOStream::with_options`], for an fd already in non-blocking mode (one created with
    /// `SOCK_NONBLOCK`, such as an accepted connection): no `fcntl` calls.
    pub(crate) fn with_nonblocking(io_loop: &IOLoop, io: S, options: StreamOptions) -> io::Result<IOStream<S>> {
        let source = Source::with_loop(io_loop, io)?;
        Ok(IOStream {
            inner: Rc::new(Inner {
                source: RefCell::new(Some(source)),
                state: RefCell::new(State {
                    read_buf: BytesMut::new(),
                    may_have_data: true,
                    reading: false,
                    write_queue: VecDeque::new(),
                    queued_bytes: 0,
                    queued_total: 0,
                    flushed_total: 0,
                    write_waiters: Vec::new(),
                    flusher_running: false,
                    closed: None,
                    close_waiters: Vec::new(),
                    close_callback: None,
                    bytes_read: 0,
                    bytes_written: 0,
                }),
                options: Cell::new(options),
                _guard: RefCell::new(None),
            }),
        })
    }

    /// The stream's limits.
    pub fn options(&self) -> StreamOptions {
        self.inner.options.get()
    }

    /// Changes the stream's limits.
    pub fn set_options(&self, options: StreamOptions) {
        self.inner.options.set(options);
    }

    /// Keeps `guard` alive until the last handle to this stream is dropped (used to count connections).
    pub fn attach_guard(&self, guard: Box<dyn std::any::Any>) {
        *self.inner._guard.borrow_mut() = Some(Guard::Any(guard));
    }

    /// As [`IOStream::attach_guard`], for the guard of a [`TcpServer`](crate::TcpServer) connection.
    pub(crate) fn attach_connection_guard(&self, guard: crate::net::ConnectionGuard) {
        *self.inner._guard.borrow_mut() = Some(Guard::Connection(guard));
    }

    /// Runs `f` with the underlying I/O object, if the stream is not closed.
    pub fn with_io<R>(&self, f: impl FnOnce(&S) -> R) -> Option<R> {
        self.inner.source.borrow().as_ref().map(|s| f(s.get_ref()))
    }

    // ---- reading ------------------------------------------------------------------------------------------

    fn begin_read(&self) -> Result<ReadGuard<'_, S>, StreamError> {
        let mut st = self.inner.state.borrow_mut();
        if st.reading {
            return Err(StreamError::ReadPending);
        }
        st.reading = true;
        Ok(ReadGuard(self))
    }

    /// Reads once from the fd into the read buffer. `Ok(0)` means end of stream (the stream is then closed).
    ///
    /// This is the primitive the `read_*` methods and protocol layers build on: call it when the buffered
    /// bytes ([`IOStream::with_read_buf`]) are not enough.
    ///
    /// # Errors
    ///
    /// [`StreamError::BufferFull`] (and the stream closes) if the buffer already holds `max_buffer_size`
    /// bytes; [`StreamError::Closed`] if the stream was closed; the I/O error (the stream closes) otherwise.
    pub fn poll_fill(&self, cx: &mut Context<'_>) -> Poll<Result<usize, StreamError>> {
        self.poll_fill_with(cx, |_| 0)
    }

    /// [`poll_fill`](IOStream::poll_fill) that first offers fresh input to `consume` when nothing was buffered:
    /// `consume` sees the bytes just read and returns how many leading ones it took (say, a whole request head it
    /// parsed); only the rest is copied into the stream's buffer. A protocol that consumes its input whole thus
    /// never copies it through the stream. When bytes were already buffered, the new ones are appended and
    /// `consume` is not called: read them with [`with_read_buf`](IOStream::with_read_buf).
    ///
    /// `consume` runs while the thread's read buffer is borrowed: it must not read from any stream.
    ///
    /// # Errors
    ///
    /// As [`poll_fill`](IOStream::poll_fill).
    pub fn poll_fill_with(
        &self,
        cx: &mut Context<'_>,
        consume: impl FnOnce(&[u8]) -> usize,
    ) -> Poll<Result<usize, StreamError>> {
        let options = self.inner.options.get();
        let result = {
            let guard = self.inner.source.borrow();
            // Closing takes the source: without one, the stream is closed.
            let Some(source) = guard.as_ref() else { return Poll::Ready(Err(self.closed_error())) };
            let (buffered, may_have_data) = {
                let st = self.inner.state.borrow();
                (st.read_buf.len(), st.may_have_data)
            };
            if buffered >= options.max_buffer_size {
                drop(guard);
                self.close_with(CloseReason::Error(io::ErrorKind::OutOfMemory, "read buffer full".into()));
                return Poll::Ready(Err(StreamError::BufferFull));
            }
            let room = options.max_buffer_size - buffered;
            let ready = if may_have_data { Poll::Ready(Ok(())) } else { source.poll_readable(cx) };
            match ready {
                Poll::Pending => return Poll::Pending,
                // Handled below, once the source is no longer borrowed (closing takes it).
                Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                Poll::Ready(Ok(())) => SCRATCH.with(|scratch| {
                    let want = options.read_chunk_size.clamp(1, DEFAULT_READ_CHUNK_SIZE).min(room);
                    let mut scratch = scratch.borrow_mut();
                    match source.poll_read_with(cx, |io| read_into(io, &mut scratch, want)) {
                        Poll::Ready(Ok(n)) => {
                            let mut st = self.inner.state.borrow_mut();
                            st.may_have_data = n == want;
                            if n > 0 {
                                st.bytes_read += n as u64;
                                if st.read_buf.is_empty() {
                                    drop(st);
                                    let used = consume(&scratch[..n]).min(n);
                                    if used < n {
                                        self.inner.state.borrow_mut().read_buf = leftover(&mut scratch, used);
                                    }
                                } else {
                                    st.read_buf.extend_from_slice(&scratch[..n]);
                                }
                            }
                            Poll::Ready(Ok(n))
                        }
                        other => other,
                    }
                }),
            }
        };
        match result {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(0)) => {
                self.close_with(CloseReason::Eof);
                Poll::Ready(Ok(0))
            }
            Poll::Ready(Ok(n)) => Poll::Ready(Ok(n)),
            Poll::Ready(Err(e)) => {
                let reason = CloseReason::from_io(&e);
                self.close_with(reason);
                Poll::Ready(Err(StreamError::Io(e)))
            }
        }
    }

    /// Async form of [`poll_fill`](IOStream::poll_fill).
    ///
    /// # Errors
    ///
    /// As [`poll_fill`](IOStream::poll_fill).
    pub async fn fill(&self) -> Result<usize, StreamError> {
        poll_fn(|cx| self.poll_fill(cx)).await
    }

    /// Runs `f` on the read buffer: bytes read but not yet consumed. Consume with `split_to`/`advance`.
    pub fn with_read_buf<R>(&self, f: impl FnOnce(&mut BytesMut) -> R) -> R {
        let mut st = self.inner.state.borrow_mut();
        let r = f(&mut st.read_buf);
        if st.read_buf.is_empty() && st.read_buf.capacity() > 0 {
            // Release the allocation: an idle stream keeps no buffer.
            st.read_buf = BytesMut::new();
        }
        r
    }

    /// The number of bytes read but not yet consumed.
    pub fn buffered(&self) -> usize {
        self.inner.state.borrow().read_buf.len()
    }

    fn closed_error(&self) -> StreamError {
        StreamError::Closed(self.inner.state.borrow().closed.clone().unwrap_or(CloseReason::Eof))
    }

    fn take(&self, n: usize) -> Bytes {
        self.with_read_buf(|b| b.split_to(n).freeze())
    }

    /// Reads up to and including `delimiter`. With `max_bytes`, fails with [`StreamError::UnsatisfiableRead`]
    /// (and closes the stream) if the delimiter is not within that many bytes.
    ///
    /// # Errors
    ///
    /// As above; [`StreamError::Closed`] if the stream closes first; [`StreamError::ReadPending`] if another
    /// read is pending.
    pub async fn read_until(&self, delimiter: &[u8], max_bytes: Option<usize>) -> Result<Bytes, StreamError> {
        assert!(!delimiter.is_empty(), "read_until needs a non-empty delimiter");
        let _guard = self.begin_read()?;
        let finder = memchr::memmem::Finder::new(delimiter);
        let mut scanned = 0;
        loop {
            let found = {
                let st = self.inner.state.borrow();
                let buf = &st.read_buf[..];
                match finder.find(&buf[scanned..]) {
                    Some(pos) => Some(scanned + pos + delimiter.len()),
                    None => {
                        // The delimiter may straddle the end of what we have: rescan its length minus one.
                        scanned = buf.len().saturating_sub(delimiter.len() - 1);
                        None
                    }
                }
            };
            let limit_hit = match (found, max_bytes) {
                (Some(end), Some(max)) => end > max,
                (None, Some(max)) => self.buffered() > max,
                _ => false,
            };
            if limit_hit {
                self.close_with(CloseReason::Error(io::ErrorKind::InvalidData, "delimiter not found in time".into()));
                return Err(StreamError::UnsatisfiableRead);
            }
            if let Some(end) = found {
                return Ok(self.take(end));
            }
            if self.fill().await? == 0 {
                return Err(self.closed_error());
            }
        }
    }

    /// Reads exactly `n` bytes; with `partial`, returns as soon as any bytes are available (at most `n`).
    ///
    /// # Errors
    ///
    /// [`StreamError::Closed`] if the stream closes first (or, with `partial`, before any byte);
    /// [`StreamError::BufferFull`] if `n` exceeds `max_buffer_size`; [`StreamError::ReadPending`].
    pub async fn read_bytes(&self, n: usize, partial: bool) -> Result<Bytes, StreamError> {
        let _guard = self.begin_read()?;
        if n > self.inner.options.get().max_buffer_size {
            return Err(StreamError::BufferFull);
        }
        loop {
            let have = self.buffered();
            if have >= n || (partial && have > 0) {
                return Ok(self.take(have.min(n)));
            }
            if n == 0 {
                return Ok(Bytes::new());
            }
            if self.fill().await? == 0 {
                return Err(self.closed_error());
            }
        }
    }

    /// Reads into `buf`: fills it entirely, or with `partial` returns after any bytes. Returns the count.
    ///
    /// # Errors
    ///
    /// As [`read_bytes`](IOStream::read_bytes).
    pub async fn read_into(&self, buf: &mut [u8], partial: bool) -> Result<usize, StreamError> {
        let _guard = self.begin_read()?;
        let mut filled = 0;
        loop {
            let n = self.with_read_buf(|b| {
                let n = b.len().min(buf.len() - filled);
                buf[filled..filled + n].copy_from_slice(&b[..n]);
                b.advance(n);
                n
            });
            filled += n;
            if filled == buf.len() || (partial && filled > 0) {
                return Ok(filled);
            }
            if self.fill().await? == 0 {
                return Err(self.closed_error());
            }
        }
    }

    /// Reads everything until the peer closes.
    ///
    /// # Errors
    ///
    /// [`StreamError::BufferFull`] if more than `max_buffer_size` bytes arrive; an I/O error.
    pub async fn read_until_close(&self) -> Result<Bytes, StreamError> {
        let _guard = self.begin_read()?;
        loop {
            match self.fill().await {
                Ok(0) => break,
                Ok(_) => {}
                Err(StreamError::Closed(_)) => break,
                Err(e) => return Err(e),
            }
        }
        let n = self.buffered();
        Ok(self.take(n))
    }

    /// Waits until the peer closes the stream (or it is closed locally), reading and buffering whatever
    /// arrives meanwhile (up to `max_buffer_size`, after which it stops reading). For protocol layers that
    /// must notice a client going away while no read is pending, as Tornado's `on_connection_close`.
    pub async fn wait_for_close(&self) -> CloseReason {
        poll_fn(|cx| {
            if let Some(reason) = &self.inner.state.borrow().closed {
                return Poll::Ready(reason.clone());
            }
            if self.buffered() >= self.inner.options.get().max_buffer_size {
                push_waker(&mut self.inner.state.borrow_mut().close_waiters, cx.waker());
                return Poll::Pending;
            }
            loop {
                match self.poll_fill(cx) {
                    Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => {
                        let reason = self.inner.state.borrow().closed.clone();
                        return Poll::Ready(reason.unwrap_or(CloseReason::Eof));
                    }
                    Poll::Ready(Ok(_)) => {
                        if self.buffered() >= self.inner.options.get().max_buffer_size {
                            push_waker(&mut self.inner.state.borrow_mut().close_waiters, cx.waker());
                            return Poll::Pending;
                        }
                    }
                    Poll::Pending => {
                        push_waker(&mut self.inner.state.borrow_mut().close_waiters, cx.waker());
                        return Poll::Pending;
                    }
                }
            }
        })
        .await
    }

    // ---- writing ------------------------------------------------------------------------------------------

    /// Queues `data` without sending it; [`flush`](IOStream::flush) sends everything queued with as few
    /// `writev` calls as possible. Protocol layers use this to coalesce pipelined responses.
    ///
    /// # Errors
    ///
    /// [`StreamError::Closed`] after close; [`StreamError::WriteBufferFull`] beyond `max_write_buffer_size`.
    pub fn queue_write(&self, data: impl Into<Bytes>) -> Result<(), StreamError> {
        let data = data.into();
        let mut st = self.inner.state.borrow_mut();
        if let Some(reason) = &st.closed {
            return Err(StreamError::Closed(reason.clone()));
        }
        if let Some(max) = self.inner.options.get().max_write_buffer_size {
            if st.queued_bytes + data.len() > max {
                return Err(StreamError::WriteBufferFull);
            }
        }
        if data.is_empty() {
            return Ok(());
        }
        st.queued_bytes += data.len();
        st.queued_total += data.len() as u64;
        st.write_queue.push_back(data);
        Ok(())
    }

    /// Queues `data` and starts sending it. The returned future resolves when this data (and all queued
    /// before it) has been handed to the kernel; it need not be awaited — the rest is sent in the background.
    pub fn write(&self, data: impl Into<Bytes>) -> WriteFuture<S> {
        match self.queue_write(data) {
            Ok(()) => self.flush(),
            Err(e) => WriteFuture { stream: self.clone(), mark: 0, error: Some(e) },
        }
    }

    /// Sends everything queued; the future resolves when it has all been handed to the kernel.
    pub fn flush(&self) -> WriteFuture<S> {
        let mark = self.inner.state.borrow().queued_total;
        let error = self.try_flush().err();
        if error.is_none() && self.inner.state.borrow().flushed_total < mark {
            self.start_flusher();
        }
        WriteFuture { stream: self.clone(), mark, error }
    }

    /// Writes from the caller's buffer straight to the kernel, without queuing, when nothing is queued: returns
    /// how many bytes the kernel took now (0 if it would block, or if earlier writes still wait in the queue).
    /// Queue what is left with [`queue_write`](IOStream::queue_write) to keep the order. A protocol that encodes
    /// into its own buffer and reuses it saves a copy and an allocation per message this way.
    ///
    /// # Errors
    ///
    /// [`StreamError::Closed`] after close; the I/O error (the stream closes) otherwise.
    pub fn try_write(&self, data: &[u8]) -> Result<usize, StreamError> {
        let result = {
            // Held across the syscall, which runs no other code, so that the count is kept in the same borrow.
            let mut st = self.inner.state.borrow_mut();
            // (Closing empties the queue.)
            if !st.write_queue.is_empty() {
                return Ok(0);
            }
            let source = self.inner.source.borrow();
            // Closing takes the source: without one, the stream is closed.
            let Some(source) = source.as_ref() else {
                return Err(StreamError::Closed(st.closed.clone().unwrap_or(CloseReason::Local)));
            };
            if data.is_empty() {
                return Ok(0);
            }
            let result = loop {
                match rustix::io::write(source.get_ref().as_fd(), data) {
                    Err(rustix::io::Errno::INTR) => continue,
                    other => break other,
                }
            };
            if let Ok(n) = result {
                st.bytes_written += n as u64;
            }
            result
        };
        match result {
            Ok(n) => Ok(n),
            Err(rustix::io::Errno::AGAIN) => Ok(0),
            Err(e) => {
                let e = io::Error::from(e);
                self.close_with(CloseReason::from_io(&e));
                Err(StreamError::Io(e))
            }
        }
    }

    /// Bytes queued but not yet sent.
    pub fn write_buffer_len(&self) -> usize {
        self.inner.state.borrow().queued_bytes
    }

    /// Writes as much of the queue as the kernel takes now. `Ok(true)` when the queue is empty.
    fn try_flush(&self) -> Result<bool, StreamError> {
        loop {
            let result = {
                let st = self.inner.state.borrow();
                if st.write_queue.is_empty() {
                    return Ok(true);
                }
                if let Some(reason) = &st.closed {
                    return Err(StreamError::Closed(reason.clone()));
                }
                let source = self.inner.source.borrow();
                let Some(source) = source.as_ref() else { return Err(StreamError::Closed(CloseReason::Local)) };
                let fd = source.get_ref().as_fd();
                if st.write_queue.len() == 1 {
                    rustix::io::write(fd, &st.write_queue[0])
                } else {
                    let mut iov: smallvec_iov::Iov<'_> = smallvec_iov::Iov::new();
                    for chunk in st.write_queue.iter().take(MAX_IOV) {
                        iov.push(IoSlice::new(chunk));
                    }
                    rustix::io::writev(fd, iov.as_slice())
                }
            };
            match result {
                Ok(n) => self.advance_written(n),
                Err(rustix::io::Errno::AGAIN) => return Ok(false),
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => {
                    let e = io::Error::from(e);
                    self.close_with(CloseReason::from_io(&e));
                    return Err(StreamError::Io(e));
                }
            }
        }
    }

    fn advance_written(&self, mut n: usize) {
        let mut st = self.inner.state.borrow_mut();
        st.queued_bytes -= n;
        st.flushed_total += n as u64;
        st.bytes_written += n as u64;
        while n > 0 {
            let front = st.write_queue.front_mut().expect("wrote more than was queued");
            if front.len() <= n {
                n -= front.len();
                st.write_queue.pop_front();
            } else {
                front.advance(n);
                n = 0;
            }
        }
        if st.write_waiters.is_empty() {
            return;
        }
        let flushed = st.flushed_total;
        let mut ready = Vec::new();
        st.write_waiters.retain(|(mark, w)| {
            if *mark <= flushed {
                ready.push(w.clone());
                false
            } else {
                true
            }
        });
        drop(st);
        for w in ready {
            w.wake();
        }
    }

    /// Sends the rest of the queue in the background once the socket is writable again.
    fn start_flusher(&self) {
        {
            let mut st = self.inner.state.borrow_mut();
            if st.flusher_running {
                return;
            }
            st.flusher_running = true;
        }
        let stream = self.clone();
        let io_loop = self.inner.source.borrow().as_ref().map(|s| s.io_loop().clone());
        let Some(io_loop) = io_loop else { return };
        io_loop.spawn(async move {
            loop {
                let ready = poll_fn(|cx| {
                    let source = stream.inner.source.borrow();
                    match source.as_ref() {
                        Some(s) => s.poll_writable(cx),
                        None => Poll::Ready(Err(io::Error::new(io::ErrorKind::NotConnected, "closed"))),
                    }
                })
                .await;
                if ready.is_err() {
                    break;
                }
                match stream.try_flush() {
                    Ok(true) | Err(_) => break,
                    Ok(false) => {}
                }
            }
            stream.inner.state.borrow_mut().flusher_running = false;
        });
    }

    // ---- closing ------------------------------------------------------------------------------------------

    /// Closes the stream now: queued writes are dropped, pending reads and writes fail with
    /// [`StreamError::Closed`], and the fd is deregistered and closed. Bytes already buffered can still be
    /// read. Closing twice does nothing.
    pub fn close(&self) {
        self.close_with(CloseReason::Local);
    }

    /// Closes the stream once everything queued has been sent (or sending failed).
    pub async fn close_after_flush(&self) {
        let _ = self.flush().await;
        self.close();
    }

    fn close_with(&self, reason: CloseReason) {
        let (waiters, close_waiters, callback, source) = {
            let mut st = self.inner.state.borrow_mut();
            if st.closed.is_some() {
                return;
            }
            st.closed = Some(reason);
            st.write_queue.clear();
            st.queued_bytes = 0;
            let waiters: Vec<Waker> = st.write_waiters.drain(..).map(|(_, w)| w).collect();
            let close_waiters = std::mem::take(&mut st.close_waiters);
            (waiters, close_waiters, st.close_callback.take(), self.inner.source.borrow_mut().take())
        };
        drop(source); // deregisters and closes the fd
        for w in waiters.into_iter().chain(close_waiters) {
            w.wake();
        }
        if let Some(cb) = callback {
            cb();
        }
    }

    /// Whether the stream is closed.
    pub fn closed(&self) -> bool {
        self.inner.state.borrow().closed.is_some()
    }

    /// Why the stream closed, once it has.
    pub fn close_reason(&self) -> Option<CloseReason> {
        self.inner.state.borrow().closed.clone()
    }

    /// Calls `callback` once when the stream closes (at once if it already has). Replaces an earlier one.
    pub fn set_close_callback(&self, callback: impl FnOnce() + 'static) {
        let closed = self.closed();
        if closed {
            callback();
        } else {
            self.inner.state.borrow_mut().close_callback = Some(Box::new(callback));
        }
    }

    /// Resolves once the stream is closed (by either side, as far as it has been noticed), with the reason.
    pub async fn closed_future(&self) -> CloseReason {
        poll_fn(|cx| {
            let mut st = self.inner.state.borrow_mut();
            match &st.closed {
                Some(r) => Poll::Ready(r.clone()),
                None => {
                    push_waker(&mut st.close_waiters, cx.waker());
                    Poll::Pending
                }
            }
        })
        .await
    }

    /// Waits until the fd is writable (used to learn the outcome of a non-blocking `connect`).
    ///
    /// # Errors
    ///
    /// If the stream is closed or the poller fails.
    pub async fn writable(&self) -> io::Result<()> {
        poll_fn(|cx| match self.inner.source.borrow().as_ref() {
            Some(s) => s.poll_writable(cx),
            None => Poll::Ready(Err(io::Error::new(io::ErrorKind::NotConnected, "stream is closed"))),
        })
        .await
    }

    // ---- statistics ---------------------------------------------------------------------------------------

    /// Bytes read from the fd since the stream opened.
    pub fn bytes_read(&self) -> u64 {
        self.inner.state.borrow().bytes_read
    }

    /// Bytes written to the fd since the stream opened.
    pub fn bytes_written(&self) -> u64 {
        self.inner.state.borrow().bytes_written
    }

    /// The heap bytes this stream holds for buffers right now (read buffer capacity and queued writes).
    pub fn buffer_memory(&self) -> usize {
        let st = self.inner.state.borrow();
        st.read_buf.capacity() + st.queued_bytes
    }
}

/// The future of [`IOStream::write`] and [`IOStream::flush`]: resolves once the data was handed to the kernel.
#[must_use = "a write is sent in the background anyway; await it for back-pressure or to see errors"]
pub struct WriteFuture<S: AsFd + 'static = std::net::TcpStream> {
    stream: IOStream<S>,
    mark: u64,
    error: Option<StreamError>,
}

impl<S: AsFd + 'static> fmt::Debug for WriteFuture<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WriteFuture").field("mark", &self.mark).finish()
    }
}

impl<S: AsFd + 'static> Future for WriteFuture<S> {
    type Output = Result<(), StreamError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let Some(e) = self.error.take() {
            return Poll::Ready(Err(e));
        }
        let mut st = self.stream.inner.state.borrow_mut();
        if st.flushed_total >= self.mark {
            return Poll::Ready(Ok(()));
        }
        if let Some(reason) = &st.closed {
            return Poll::Ready(Err(StreamError::Closed(reason.clone())));
        }
        let mark = self.mark;
        if !st.write_waiters.iter().any(|(m, w)| *m == mark && w.will_wake(cx.waker())) {
            st.write_waiters.push((mark, cx.waker().clone()));
        }
        Poll::Pending
    }
}

/// Adds `waker` to `list` unless an equivalent one is there.
fn push_waker(list: &mut Vec<Waker>, waker: &Waker) {
    if !list.iter().any(|w| w.will_wake(waker)) {
        list.push(waker.clone());
    }
}

fn set_nonblocking<S: AsFd>(io: &S) -> io::Result<()> {
    let fd = io.as_fd();
    let flags = rustix::fs::fcntl_getfl(fd)?;
    if !flags.contains(rustix::fs::OFlags::NONBLOCK) {
        rustix::fs::fcntl_setfl(fd, flags | rustix::fs::OFlags::NONBLOCK)?;
    }
    Ok(())
}

/// A small inline array of `IoSlice`s, so that a `writev` needs no allocation.
mod smallvec_iov {
    use super::MAX_IOV;
    use std::io::IoSlice;

    pub(super) struct Iov<'a> {
        slices: [IoSlice<'a>; MAX_IOV],
        len: usize,
    }

    impl<'a> Iov<'a> {
        pub(super) fn new() -> Self {
            Iov { slices: [IoSlice::new(&[]); MAX_IOV], len: 0 }
        }
        pub(super) fn push(&mut self, s: IoSlice<'a>) {
            self.slices[self.len] = s;
            self.len += 1;
        }
        pub(super) fn as_slice(&self) -> &[IoSlice<'a>] {
            &self.slices[..self.len]
        }
    }
}
