//! A WebSocket echo server, for conformance runs (the Autobahn|Testsuite's fuzzing client) and for trying
//! clients against: every text or binary message is sent back as it came, on any path.
//!
//! ```text
//! cargo run --release --example ws_echo -- --port 9001
//! ```
//!
//! permessage-deflate is accepted when offered, and messages of up to 32 MiB are taken (the suite's
//! largest is 16 MiB); origins are not checked, since the suite's client is not a browser.

use gale_examples::Options;
use gale_web::Application;
use gale_web::websocket::{DeflateConfig, Message, WebSocket, WebSocketHandler, websocket};

/// The largest message echoed.
const MAX_MESSAGE_SIZE: usize = 32 * 1024 * 1024;

struct Echo;

impl WebSocketHandler for Echo {
    fn check_origin(&self, _origin: &str, _host: &str) -> bool {
        true
    }

    fn compression(&self) -> Option<DeflateConfig> {
        Some(DeflateConfig::default())
    }

    fn max_message_size(&self) -> usize {
        MAX_MESSAGE_SIZE
    }

    async fn on_message(&mut self, ws: &WebSocket, message: Message) {
        // Awaiting the send keeps at most one message queued per client: a client that stops reading is
        // not read from either.
        let _ = ws.write_message(&message).await;
    }
}

fn make_app() -> Application {
    Application::builder()
        .route(r"/.*", websocket(|| Echo))
        .configure(|s| s.access_log = false)
        .build()
        .expect("valid routes")
}

fn main() -> Result<(), gale_examples::CliError> {
    gale_examples::init_logging();
    let options = Options::from_env();
    let port = options.port();
    let handle = gale_web::run(1, port, Some("127.0.0.1"), Default::default(), make_app)
        .map_err(|e| gale_examples::port_error(port, e))?;
    println!("ws_echo listening on ws://{}/", handle.addr());
    Ok(gale_examples::on_shutdown_signal(move || handle.shutdown(std::time::Duration::from_secs(5)))?)
}
