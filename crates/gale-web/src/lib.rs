//! gale's web layer — Tornado's `tornado.web` in idiomatic async Rust: [`Application`], regex routing,
//! [`RequestHandler`]s, arguments and uploads, cookies and signed cookies, XSRF protection, templates,
//! static files, JSON, gzip, long polling and websockets. Depend on this crate and you have everything.
//!
//! # Hello, world
//!
//! ```no_run
//! use gale_web::{Application, IOLoop, RequestContext, RequestHandler, Result};
//!
//! struct MainHandler;
//!
//! impl RequestHandler for MainHandler {
//!     async fn get(&mut self, cx: &mut RequestContext) -> Result {
//!         cx.write("Hello, world");
//!         Ok(())
//!     }
//! }
//!
//! fn main() -> std::io::Result<()> {
//!     let app = Application::builder().route(r"/", || MainHandler).build()?;
//!     let _server = app.listen(8888)?;
//!     IOLoop::current().start()
//! }
//! ```
//!
//! # How a request reaches your handler
//!
//! 1. **gale-poller** reports the listening socket readable; the **IOLoop** runs the accept handler, which
//!    accepts a batch of connections and wraps each in an **IOStream** (gale-iostream).
//! 2. The **HTTP server** (gale-http1) runs one task per connection: it reads into the stream's buffer,
//!    parses the head (strictly: smuggling-prone requests get a 400 and the connection closes), reads the body
//!    (or streams it, for handlers with `STREAM_REQUEST_BODY`), and calls the [`Application`].
//! 3. The **Application** matches the path against its routes in order, makes a fresh handler with the
//!    route's factory, and runs Tornado's pipeline: XSRF check for unsafe methods, `prepare`, `data_received`
//!    for streamed bodies, the method (`get`, `post`, …), then `finish` — headers, `ETag`/304, gzip — and
//!    `on_finish`. Errors become error pages through `write_error`; a panic becomes a 500 and the server
//!    goes on.
//! 4. The response is encoded into the connection's buffer and flushed with one `writev` when the connection
//!    next waits — pipelined responses share it. A handler that waits (a long poll) gets its earlier output
//!    flushed, and is told through [`RequestContext::wait_for_close`] if the client leaves.
//!
//! Handlers run on the loop's thread, one callback at a time: share state between requests with
//! `Rc<RefCell<…>>` captured by the route's factory, and never block — await instead.
//!
//! # Crates used
//!
//! Well-kept crates do the jobs they were made for: `regex` (route patterns), `hmac` + `sha2` + `subtle`
//! (signed cookies, constant-time checks), `base64` and `hex` (signed value encoding), `minijinja`
//! (templates, autoescaping), `serde_json` (JSON), `flate2` (gzip and permessage-deflate), `sha1`
//! (the WebSocket accept key), `percent-encoding` (URLs), `mime_guess` (static file types), `httpdate`
//! (HTTP dates).

#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations)]

mod application;
mod builtins;
pub mod compress;
pub mod cookies;
mod error;
pub mod escape;
pub mod forms;
mod handler;
mod params;
pub mod routing;
pub mod signing;
pub mod static_files;
pub mod template;
pub mod testing;
pub mod websocket;
pub mod xsrf;

pub use application::{Application, ApplicationBuilder, CurrentUserHook, Settings};
pub use builtins::{ErrorHandler, FallbackHandler, RedirectHandler};
pub use cookies::{CookieOptions, SameSite};
pub use error::{HttpError, Result};
pub use gale_http1::{self as http1, IOLoop, ServerOptions, ioloop};
pub use handler::{DEFAULT_METHODS, RequestContext, RequestHandler};
pub use params::UploadedFile;
pub use signing::Secret;
pub use static_files::StaticFileHandler;

/// Runs an application on `workers` threads (one IOLoop and one `SO_REUSEPORT` listener each), building it
/// per worker with `make_app`, so that handlers need not be `Send`.
///
/// # Errors
///
/// If the port cannot be bound.
pub fn run<F>(
    workers: usize,
    port: u16,
    address: Option<&str>,
    options: ServerOptions,
    make_app: F,
) -> std::io::Result<gale_http1::WorkersHandle>
where
    F: Fn() -> Application + Send + Sync + 'static,
{
    gale_http1::Workers::start(workers, port, address, options, make_app)
}
