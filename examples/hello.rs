//! Tornado's "Hello, world" on gale-web — the README's main command.
//!
//! ```text
//! cargo run --release --example hello -- --port 8888 [--workers N]
//! ```
//!
//! Endpoints, through the whole web layer (routing, handler, headers): `GET /` → `Hello, world`,
//! `GET /json` → `{"message":"Hello, World!"}`.

use gale_examples::Options;
use gale_web::{Application, RequestContext, RequestHandler, Result};

struct MainHandler;

impl RequestHandler for MainHandler {
    async fn get(&mut self, cx: &mut RequestContext) -> Result {
        cx.set_header("Content-Type", "text/plain");
        cx.write("Hello, World!");
        Ok(())
    }
}

#[derive(serde::Serialize)]
struct Message {
    message: &'static str,
}

struct JsonHandler;

impl RequestHandler for JsonHandler {
    async fn get(&mut self, cx: &mut RequestContext) -> Result {
        cx.write_json(&Message { message: "Hello, World!" })
    }
}

fn make_app() -> Application {
    Application::builder()
        .route(r"/", || MainHandler)
        .route(r"/json", || JsonHandler)
        .configure(|s| {
            // One log line per request costs more than the request; opt in with GALE_ACCESS_LOG=1.
            s.access_log = std::env::var_os("GALE_ACCESS_LOG").is_some();
        })
        .build()
        .expect("valid routes")
}

fn main() -> Result<(), gale_examples::CliError> {
    gale_examples::init_logging();
    let opts = Options::from_env();
    let port = opts.port();
    let workers = opts.get("workers", 1usize);
    let handle = gale_web::run(workers, port, Some("127.0.0.1"), Default::default(), make_app)
        .map_err(|e| gale_examples::port_error(port, e))?;
    println!("hello listening on http://{} ({} worker(s))", handle.addr(), handle.len());
    Ok(gale_examples::on_shutdown_signal(move || handle.shutdown(std::time::Duration::from_secs(10)))?)
}
