//! HTTP/1.1 for gale: the connection in server and client roles, [`HttpServer`], and [`HttpClient`].
//!
//! This is Tornado's `http1connection`, `httpserver` and `simple_httpclient` on the gale IOStream. The wire
//! protocol — parsing, framing, encoding — lives in [`proto`] and [`headers`] as pure functions of bytes,
//! strict where leniency enables request smuggling; the server and client drive it over streams.
//!
//! A request flows: the [`HttpServer`]'s listener accepts → the connection reads a head from the stream's
//! buffer ([`proto::request::RequestParser`]) → reads or streams the body → calls the [`HttpService`] with a
//! [`Request`] and a [`ResponseWriter`] → the response is encoded into a buffer that is flushed with one
//! `writev` when the connection next waits (pipelined responses share it).
//!
//! # Examples
//!
//! ```
//! use gale_http1::{HttpServer, Response, ServerOptions, service_fn};
//! use gale_http1::IOLoop;
//! use std::io::{Read, Write};
//!
//! let io_loop = IOLoop::new()?;
//! let service = service_fn(|req| async move { Response::text(format!("Hello, {}", req.path())) });
//! let server = HttpServer::new(&io_loop, service, ServerOptions::default())?;
//! server.listen(0, Some("127.0.0.1"))?;
//! let port = server.local_addrs()[0].port();
//! let client = std::thread::spawn(move || {
//!     let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
//!     s.write_all(b"GET /world HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
//!     let mut reply = String::new();
//!     s.read_to_string(&mut reply).unwrap();
//!     reply
//! });
//! io_loop.run_sync(async move {
//!     while !client.is_finished() {
//!         gale_http1::ioloop::sleep(std::time::Duration::from_millis(1)).await;
//!     }
//!     let reply = client.join().unwrap();
//!     assert!(reply.starts_with("HTTP/1.1 200 OK\r\n"));
//!     assert!(reply.ends_with("Hello, /world"));
//! });
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! `httpdate` formats the `Date` header and `itoa` prints numbers: small, well-kept crates for exactly that.

#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations)]

pub mod client;
pub mod headers;
mod message;
pub mod proto;
mod server;

pub use client::{ClientError, ClientOptions, ClientRequest, ClientResponse, HttpClient, TimeoutPhase};
pub use gale_iostream::ioloop;
pub use gale_iostream::{self as iostream, IOLoop};
pub use headers::HeaderMap;
pub use message::{Request, Response};
pub use proto::{Method, Version};
pub use server::{
    BodyError, BodyReader, HttpServer, HttpService, ResponseBody, ResponseWriter, ServerOptions, ServiceFn,
    ShutdownSignal, Workers, WorkersHandle, WriteError, service_fn, static_service,
};
