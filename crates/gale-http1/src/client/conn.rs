//! One exchange on a connection: send a request, read the response head, then read its body into a
//! [`BodySink`] — collected, streamed to a callback, or discarded — decompressing and bounding it on the way.

use bytes::{Bytes, BytesMut};
use gale_iostream::{CloseReason, IOStream, StreamError};

use super::error::ClientError;
use super::gzip::GzipDecoder;
use crate::proto::Limits;
use crate::proto::body::{Decoded, Decoder};
use crate::proto::client::{ResponseHead, ResponseParser};

/// A connection in use by a fetch. Dropping it closes the connection: only a finished exchange that allows
/// keep-alive hands its stream back to the pool, through [`Conn::into_stream`].
#[derive(Debug)]
pub(crate) struct Conn {
    stream: Option<IOStream>,
    /// Whether it came from the pool (and may have been closed by the server meanwhile).
    pub(crate) reused: bool,
}

impl Conn {
    pub(crate) fn new(stream: IOStream, reused: bool) -> Conn {
        Conn { stream: Some(stream), reused }
    }

    pub(crate) fn stream(&self) -> &IOStream {
        self.stream.as_ref().expect("a connection holds its stream until released")
    }

    /// Releases the stream without closing it.
    pub(crate) fn into_stream(mut self) -> IOStream {
        self.stream.take().expect("a connection holds its stream until released")
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        // Also stops a background flush of a request the server is not reading.
        if let Some(stream) = self.stream.take() {
            stream.close();
        }
    }
}

/// Queues the request's head and body and starts sending them; the rest of a large body is sent in the
/// background while the response is awaited (a server may answer before reading it all). A failed write
/// closes the stream, which the read of the response then reports.
///
/// # Errors
///
/// If the stream is already closed.
pub(crate) fn send(stream: &IOStream, head: Bytes, body: &Bytes) -> Result<(), StreamError> {
    stream.queue_write(head)?;
    if !body.is_empty() {
        stream.queue_write(body.clone())?;
    }
    // Not awaited: completion is seen in `write_buffer_len`, failure as a closed stream.
    drop(stream.flush());
    Ok(())
}

/// Reads the final response head, skipping interim (1xx) responses.
///
/// # Errors
///
/// [`ClientError::Protocol`] for a malformed or oversized head; [`ClientError::Connection`] if the connection
/// closes or fails first.
pub(crate) async fn read_head(stream: &IOStream, limits: Limits) -> Result<ResponseHead, ClientError> {
    let mut parser = ResponseParser::new(limits);
    loop {
        match stream.with_read_buf(|buf| parser.parse(buf))? {
            Some(head) if head.is_interim() => log::trace!("skipping interim response {}", head.status()),
            Some(head) => return Ok(head),
            None => {
                if stream.fill().await? == 0 {
                    return Err(ClientError::Connection(StreamError::Closed(CloseReason::Eof)));
                }
            }
        }
    }
}

/// Reads a body with `decoder` into `sink` until the decoder is done (or, for a body delimited by closing,
/// until the connection ends).
///
/// # Errors
///
/// [`ClientError::Protocol`] for bad framing or a body cut short; [`ClientError::Connection`] for an I/O
/// error; whatever the sink refuses.
pub(crate) async fn read_body(
    stream: &IOStream,
    decoder: &mut Decoder,
    sink: &mut BodySink<'_>,
) -> Result<(), ClientError> {
    loop {
        match stream.with_read_buf(|buf| decoder.decode(buf))? {
            // The stream's buffer is not borrowed here: the sink may run user code.
            Decoded::Data(data) => sink.push(data)?,
            Decoded::Done => return Ok(()),
            Decoded::NeedMore => match stream.fill().await {
                Ok(0) | Err(StreamError::Closed(CloseReason::Eof)) => decoder.decode_eof()?,
                Ok(_) => {}
                Err(e) => return Err(e.into()),
            },
        }
    }
}

/// Where a body goes.
pub(crate) enum Delivery<'a> {
    /// Nowhere: the body of a redirect that is followed.
    Discard,
    /// Into the response.
    Collect(Vec<Bytes>),
    /// To the request's streaming callback.
    Stream(&'a mut dyn FnMut(Bytes)),
}

/// Receives a body piece by piece: bounds it (as received and as decompressed), inflates gzip, and delivers.
pub(crate) struct BodySink<'a> {
    limit: usize,
    received: usize,
    gzip: Option<GzipDecoder>,
    out: Output<'a>,
}

/// The decompressed side of a [`BodySink`].
struct Output<'a> {
    limit: usize,
    delivered: usize,
    delivery: Delivery<'a>,
}

impl Output<'_> {
    fn deliver(&mut self, data: Bytes) -> Result<(), ClientError> {
        self.delivered = self.delivered.saturating_add(data.len());
        if self.delivered > self.limit {
            return Err(ClientError::BodyTooLarge { limit: self.limit });
        }
        match &mut self.delivery {
            Delivery::Discard => {}
            Delivery::Collect(pieces) => pieces.push(data),
            Delivery::Stream(callback) => callback(data),
        }
        Ok(())
    }
}

impl<'a> BodySink<'a> {
    /// A sink taking at most `limit` bytes (before and after decompression), inflating gzip if `gzip`.
    pub(crate) fn new(limit: usize, gzip: bool, delivery: Delivery<'a>) -> BodySink<'a> {
        BodySink {
            limit,
            received: 0,
            gzip: gzip.then(GzipDecoder::new),
            out: Output { limit, delivered: 0, delivery },
        }
    }

    /// Takes a piece of body as received.
    ///
    /// # Errors
    ///
    /// [`ClientError::BodyTooLarge`] past the limit; [`ClientError::Decompress`] for corrupt gzip.
    pub(crate) fn push(&mut self, data: Bytes) -> Result<(), ClientError> {
        self.received = self.received.saturating_add(data.len());
        if self.received > self.limit {
            return Err(ClientError::BodyTooLarge { limit: self.limit });
        }
        match &mut self.gzip {
            Some(gzip) => gzip.decode(&data, &mut |piece| self.out.deliver(piece)),
            None => self.out.deliver(data),
        }
    }

    /// Ends the body: checks a gzip stream is complete, and returns the collected body (empty when it was
    /// streamed or discarded).
    ///
    /// # Errors
    ///
    /// [`ClientError::Decompress`] if a gzip stream was cut short.
    pub(crate) fn finish(mut self) -> Result<Bytes, ClientError> {
        if let Some(gzip) = &mut self.gzip {
            gzip.finish()?;
        }
        Ok(match self.out.delivery {
            Delivery::Collect(mut pieces) if pieces.len() == 1 => pieces.pop().unwrap_or_default(),
            Delivery::Collect(pieces) => {
                let mut body = BytesMut::with_capacity(self.out.delivered);
                for piece in pieces {
                    body.extend_from_slice(&piece);
                }
                body.freeze()
            }
            Delivery::Discard | Delivery::Stream(_) => Bytes::new(),
        })
    }
}
