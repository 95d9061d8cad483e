//! Stream errors and close reasons.

use std::fmt;
use std::io;

/// Why a stream closed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// The peer closed its end (a read returned end-of-file).
    Eof,
    /// [`IOStream::close`](crate::IOStream::close) was called.
    Local,
    /// An I/O error or a broken limit closed it: the error's kind and message.
    Error(io::ErrorKind, String),
}

impl CloseReason {
    pub(crate) fn from_io(e: &io::Error) -> CloseReason {
        CloseReason::Error(e.kind(), e.to_string())
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseReason::Eof => f.write_str("closed by the peer"),
            CloseReason::Local => f.write_str("closed locally"),
            CloseReason::Error(_, msg) => write!(f, "closed on error: {msg}"),
        }
    }
}

/// What can go wrong with a stream operation.
#[derive(Debug)]
pub enum StreamError {
    /// The stream is closed (Tornado's `StreamClosedError`), with the reason.
    Closed(CloseReason),
    /// The read buffer reached `max_buffer_size`; the stream was closed.
    BufferFull,
    /// `read_until` did not find its delimiter within `max_bytes`; the stream was closed.
    UnsatisfiableRead,
    /// A read was started while another read was pending on the same stream.
    ReadPending,
    /// A write would take the write queue past `max_write_buffer_size`; nothing was queued.
    WriteBufferFull,
    /// An I/O error (the stream was closed).
    Io(io::Error),
}

impl StreamError {
    /// Whether this is [`StreamError::Closed`].
    pub fn is_closed(&self) -> bool {
        matches!(self, StreamError::Closed(_))
    }
}

impl fmt::Display for StreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StreamError::Closed(r) => write!(f, "stream is closed ({r})"),
            StreamError::BufferFull => f.write_str("read buffer is full (max_buffer_size reached)"),
            StreamError::UnsatisfiableRead => f.write_str("delimiter not found within max_bytes"),
            StreamError::ReadPending => f.write_str("another read is already pending on this stream"),
            StreamError::WriteBufferFull => f.write_str("write buffer is full (max_write_buffer_size reached)"),
            StreamError::Io(e) => write!(f, "I/O error: {e}"),
        }
    }
}

impl std::error::Error for StreamError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StreamError::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<StreamError> for io::Error {
    fn from(e: StreamError) -> io::Error {
        match e {
            StreamError::Io(e) => e,
            StreamError::Closed(_) => io::Error::new(io::ErrorKind::ConnectionAborted, e.to_string()),
            StreamError::ReadPending => io::Error::new(io::ErrorKind::ResourceBusy, e.to_string()),
            other => io::Error::new(io::ErrorKind::InvalidData, other.to_string()),
        }
    }
}
