//! Buffered non-blocking streams for gale: [`IOStream`], the [`TcpServer`], [`connect`], and socket helpers.
//!
//! This is Tornado's `iostream` and `tcpserver`/`tcpclient`/`netutil` on the gale IOLoop. An [`IOStream`]
//! wraps any stream fd (TCP, Unix socket, pipe) with async reads — [`read_until`](IOStream::read_until),
//! [`read_bytes`](IOStream::read_bytes), [`read_into`](IOStream::read_into),
//! [`read_until_close`](IOStream::read_until_close) — and zero-copy queued writes whose futures resolve when
//! the data is flushed. Buffers are bounded by [`StreamOptions`] (Tornado's `max_buffer_size`,
//! `max_write_buffer_size`, read chunk size), and an idle stream holds no buffer memory at all: every read
//! lands in one per-thread scratch buffer and the stream keeps only the bytes it got.
//!
//! # Examples
//!
//! A line echo server and a client, on one loop:
//!
//! ```
//! use gale_ioloop::IOLoop;
//! use gale_iostream::{IOStream, TcpServer, connect};
//!
//! let io_loop = IOLoop::new()?;
//! let server = TcpServer::new(&io_loop, |stream: IOStream, _peer| async move {
//!     while let Ok(line) = stream.read_until(b"\n", Some(4096)).await {
//!         if stream.write(line).await.is_err() {
//!             break;
//!         }
//!     }
//! });
//! server.listen(0, Some("127.0.0.1"))?;
//! let port = server.local_addrs()[0].port();
//! let reply = io_loop.run_sync(async move {
//!     let client = connect("127.0.0.1", port, None).await.unwrap();
//!     client.write(&b"hello\n"[..]).await.unwrap();
//!     client.read_until(b"\n", None).await.unwrap()
//! });
//! assert_eq!(&reply[..], b"hello\n");
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! `memchr` finds delimiters (SIMD-accelerated, well kept) rather than a hand-written search.

#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations)]

mod error;
mod net;
mod stream;

pub use error::{CloseReason, StreamError};
pub use gale_ioloop::{self as ioloop, IOLoop};
pub use net::{
    ACCEPT_BACKOFF, ACCEPT_BATCH, BindOptions, DEFAULT_BACKLOG, Family, StreamHandler, TcpServer, bind_sockets,
    bind_unix_socket, connect, connect_addr, resolve, set_nodelay,
};
pub use stream::{DEFAULT_MAX_BUFFER_SIZE, DEFAULT_READ_CHUNK_SIZE, IOStream, StreamOptions, WriteFuture};
