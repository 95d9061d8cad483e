//! Which process answered, and whom it thinks it answered: for checking a deployment behind a proxy.
//!
//! `GET /` → `{"pid": .., "remote_ip": "..", "protocol": "http"}` with `xheaders` on (the client's address
//! comes from the proxy's `X-Real-IP` / `X-Forwarded-For`), and a WebSocket echo on `/ws`.
//!
//! ```text
//! cargo run --release --example whoami -- --port 8001 [--workers 1]
//! ```
//!
//! `cargo xtask nginx` runs two of these behind nginx (see `docs/deploy-nginx.md`).

use gale_examples::Options;
use gale_web::websocket::{Message, WebSocket, WebSocketHandler, websocket};
use gale_web::{Application, RequestContext, RequestHandler, Result, ServerOptions};

struct WhoAmI;

#[derive(serde::Serialize)]
struct Answer {
    pid: u32,
    remote_ip: String,
    protocol: &'static str,
}

impl RequestHandler for WhoAmI {
    async fn get(&mut self, cx: &mut RequestContext) -> Result {
        let answer =
            Answer { pid: std::process::id(), remote_ip: cx.request().remote_ip(), protocol: cx.request().protocol() };
        cx.write_json(&answer)
    }
}

#[derive(Default)]
struct Echo;

impl WebSocketHandler for Echo {
    // Behind a proxy the Host seen here is the proxy's; accept any origin for this diagnostic tool.
    fn check_origin(&self, _origin: &str, _host: &str) -> bool {
        true
    }

    async fn open(&mut self, _ws: &WebSocket, _cx: &mut RequestContext) {}

    async fn on_message(&mut self, ws: &WebSocket, message: Message) {
        let _ = ws.write_message(&message).await;
    }
}

fn main() -> Result<(), gale_examples::CliError> {
    gale_examples::init_logging();
    let options = Options::from_env();
    let (port, workers) = (options.port(), options.get("workers", 1));
    // Behind nginx on this host: the client's address and scheme come from its X-Real-IP / X-Forwarded-*
    // headers. A request with X-Forwarded-For alone would name the client as its last hop not from this host.
    let server_options =
        ServerOptions { xheaders: true, trusted_downstream: vec!["127.0.0.1".into()], ..Default::default() };
    let make_app = || {
        Application::builder()
            .route("/", || WhoAmI)
            .route("/ws", websocket(Echo::default))
            .configure(|s| s.access_log = false)
            .build()
            .expect("valid routes")
    };
    let handle = gale_web::run(workers, port, Some("127.0.0.1"), server_options, make_app)
        .map_err(|e| gale_examples::port_error(port, e))?;
    println!("whoami listening on http://{} (pid {})", handle.addr(), std::process::id());
    Ok(gale_examples::on_shutdown_signal(move || handle.shutdown(std::time::Duration::from_secs(5)))?)
}
