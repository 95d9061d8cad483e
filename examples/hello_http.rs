//! Tornado's "Hello, World" on the bare HTTP server, no web layer: the benchmark endpoints.
//!
//! - `GET /` → `Hello, World!` (`text/plain`)
//! - `GET /json` → `{"message":"Hello, World!"}` (serialized per request)
//! - `POST /echo` → the request body, verbatim
//! - anything else → 404
//!
//! ```text
//! cargo run --release --example hello_http -- --port 8888 --workers 1 --max-body-size 1048576
//! ```

use gale_examples::Options;
use gale_http1::{BodyReader, HttpService, Method, Request, ResponseBody, ResponseWriter, ServerOptions, Workers};
use std::time::Duration;

/// The service: a match on method and path, writing straight into the connection's buffer.
struct Hello;

#[derive(serde::Serialize)]
struct Message {
    message: &'static str,
}

fn reply<'b>(writer: &ResponseWriter, status: u16, content_type: &'static str, body: impl Into<ResponseBody<'b>>) {
    if let Err(e) = writer.respond(status, &[("Content-Type", content_type)], body) {
        log::warn!("cannot answer: {e}");
    }
}

impl HttpService for Hello {
    async fn call(&self, request: Request, _body: Option<BodyReader>, writer: ResponseWriter) {
        match (request.method(), request.path()) {
            (Method::Get | Method::Head, "/") => reply(&writer, 200, "text/plain", "Hello, World!"),
            (Method::Get | Method::Head, "/json") => {
                let body = serde_json::to_vec(&Message { message: "Hello, World!" }).expect("serializable");
                reply(&writer, 200, "application/json", &body)
            }
            (Method::Post, "/echo") => {
                let body = request.body().clone();
                reply(&writer, 200, "application/octet-stream", body)
            }
            _ => reply(&writer, 404, "text/plain", "Not Found\n"),
        }
    }
}

fn main() -> Result<(), gale_examples::CliError> {
    gale_examples::init_logging();
    let opts = Options::from_env();
    let port = opts.port();
    let workers = opts.get("workers", 1usize);
    let options = ServerOptions { max_body_size: opts.get("max-body-size", 100 << 20), ..Default::default() };
    let handle = Workers::start(workers, port, Some("127.0.0.1"), options, || Hello)
        .map_err(|e| gale_examples::port_error(port, e))?;
    println!("hello_http listening on http://{} ({} worker(s))", handle.addr(), handle.len());
    Ok(gale_examples::on_shutdown_signal(move || {
        handle.shutdown(Duration::from_secs(10));
    })?)
}
