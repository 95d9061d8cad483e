//! WebSockets end to end, over real TCP on 127.0.0.1: our client against our server (messages, pings,
//! keep-alive, close codes, handshake errors, the message size limit, compression, a reader too slow for
//! its writer), and each against a peer that is not ours: Python's `websockets` (found through
//! `GALE_PYTHON`, else `python3`; skipped loudly when it cannot be imported).

use gale_web::http1::Method;
use gale_web::http1::client::ClientRequest;
use gale_web::http1::iostream::{IOStream, connect};
use gale_web::ioloop;
use gale_web::testing::TestServer;
use gale_web::websocket::{
    CloseCode, ConnectError, ConnectOptions, DeflateConfig, Event, Message, WebSocket, WebSocketError,
    WebSocketHandler, WebSocketRoute, websocket, websocket_connect, websocket_connect_with,
};
use gale_web::{Application, HttpError, RequestContext, Result, Secret};
use std::cell::RefCell;
use std::future::Future;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::rc::Rc;
use std::time::Duration;

/// How long one test's async part may take before it fails instead of hanging.
const TEST_TIMEOUT: Duration = Duration::from_secs(20);

/// The write buffer limit of the flooding handler.
const FLOOD_LIMIT: usize = 256 * 1024;

/// What the handlers saw, in order.
type Log = Rc<RefCell<Vec<String>>>;

/// The handler behind most routes: echoes, obeys `close CODE REASON`, and logs its calls.
#[derive(Default)]
struct TestHandler {
    log: Log,
    compression: bool,
    max_message_size: Option<usize>,
    keep_alive: Option<(Duration, Duration)>,
    require_user: bool,
}

impl WebSocketHandler for TestHandler {
    async fn prepare(&mut self, cx: &mut RequestContext) -> Result {
        if self.require_user && cx.current_user().is_none() {
            return Err(HttpError::with_message(403, "login required"));
        }
        Ok(())
    }

    fn select_subprotocol(&mut self, offered: &[String]) -> Option<String> {
        offered.iter().find(|p| p.starts_with("gale.")).cloned()
    }

    fn compression(&self) -> Option<DeflateConfig> {
        self.compression.then(DeflateConfig::default)
    }

    fn max_message_size(&self) -> usize {
        self.max_message_size.unwrap_or(gale_web::websocket::message::DEFAULT_MAX_MESSAGE_SIZE)
    }

    fn ping_interval(&self) -> Option<Duration> {
        self.keep_alive.map(|(interval, _)| interval)
    }

    fn ping_timeout(&self) -> Option<Duration> {
        self.keep_alive.map(|(_, timeout)| timeout)
    }

    async fn open(&mut self, ws: &WebSocket, cx: &mut RequestContext) {
        let name = cx.get_argument_or("name", "-").unwrap_or_default();
        self.log.borrow_mut().push(format!("open {:?} {name}", cx.path_args()));
        if let Some(user) = cx.current_user() {
            let _ = ws.write_message(&format!("hello {user}")).await;
        }
    }

    async fn on_message(&mut self, ws: &WebSocket, message: Message) {
        if let Message::Text(text) = &message {
            if let Some(rest) = text.strip_prefix("close ") {
                let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
                ws.close(Some(CloseCode(code.parse().unwrap())), reason).unwrap();
                let late = ws.write_message("too late").await;
                self.log.borrow_mut().push(format!("late write: {}", matches!(late, Err(WebSocketError::Closed))));
                return;
            }
        }
        let _ = ws.write_message(&message).await;
    }

    fn on_ping(&mut self, data: bytes::Bytes) {
        self.log.borrow_mut().push(format!("ping {}", String::from_utf8_lossy(&data)));
    }

    fn on_pong(&mut self, _data: bytes::Bytes) {
        self.log.borrow_mut().push("pong".to_owned());
    }

    fn on_close(&mut self, code: Option<CloseCode>, reason: &str) {
        self.log.borrow_mut().push(format!("close {code:?} {reason:?}"));
    }
}

/// Writes to a client that never reads, without awaiting, until the write buffer limit stops it.
struct Flood {
    log: Log,
}

impl WebSocketHandler for Flood {
    fn max_write_buffer_size(&self) -> usize {
        FLOOD_LIMIT
    }

    async fn open(&mut self, ws: &WebSocket, _cx: &mut RequestContext) {
        let (ws, log) = (ws.clone(), self.log.clone());
        ioloop::spawn(async move {
            let chunk = vec![7u8; 16 * 1024];
            let mut most_queued = 0;
            // 1.6 GB if nothing stopped it.
            for i in 0..100_000 {
                most_queued = most_queued.max(ws.write_buffer_len());
                match ws.queue_message(&chunk) {
                    Err(e) => {
                        log.borrow_mut().push(format!("flood stopped after {i}: {e:?}; most queued {most_queued}"));
                        return;
                    }
                    _ if i % 16 == 0 => ioloop::sleep(Duration::ZERO).await,
                    _ => {}
                }
            }
            log.borrow_mut().push("flood was never stopped".to_owned());
        });
    }

    fn on_close(&mut self, code: Option<CloseCode>, _reason: &str) {
        self.log.borrow_mut().push(format!("close {code:?}"));
    }
}

/// Panics on the message `boom`, echoes the others.
struct Fragile {
    log: Log,
}

impl WebSocketHandler for Fragile {
    async fn on_message(&mut self, ws: &WebSocket, message: Message) {
        assert_ne!(message, Message::Text("boom".into()), "the handler fails on purpose");
        let _ = ws.write_message(&message).await;
    }

    fn on_close(&mut self, code: Option<CloseCode>, _reason: &str) {
        self.log.borrow_mut().push(format!("close {code:?}"));
    }
}

/// Polls a future once: its output if it is ready at once.
trait NowOrNever: Future + Sized {
    fn now_or_never(self) -> Option<Self::Output> {
        let mut future = std::pin::pin!(self);
        let waker = std::task::Waker::noop();
        match future.as_mut().poll(&mut std::task::Context::from_waker(waker)) {
            std::task::Poll::Ready(v) => Some(v),
            std::task::Poll::Pending => None,
        }
    }
}

impl<F: Future> NowOrNever for F {}

fn secret() -> Secret {
    Secret::Single(b"a test secret that is long enough".to_vec())
}

/// The test application; every handler logs to `log`.
fn app(log: &Log) -> Application {
    let l = |log: &Log| log.clone();
    let (echo, deflate, small, keep_alive, private, flood) = (l(log), l(log), l(log), l(log), l(log), l(log));
    let fragile = l(log);
    Application::builder()
        .route(r"/echo/(\w*)", move || WebSocketRoute::new(TestHandler { log: echo.clone(), ..Default::default() }))
        .route(
            r"/deflate",
            websocket(move || TestHandler { log: deflate.clone(), compression: true, ..Default::default() }),
        )
        .route(
            r"/small",
            websocket(move || TestHandler { log: small.clone(), max_message_size: Some(1024), ..Default::default() }),
        )
        .route(
            r"/keepalive",
            websocket(move || TestHandler {
                log: keep_alive.clone(),
                keep_alive: Some((Duration::from_millis(20), Duration::from_millis(300))),
                ..Default::default()
            }),
        )
        .route(
            r"/private",
            websocket(move || TestHandler { log: private.clone(), require_user: true, ..Default::default() }),
        )
        .route(r"/flood", websocket(move || Flood { log: flood.clone() }))
        .route(r"/fragile", websocket(move || Fragile { log: fragile.clone() }))
        .current_user(|cx| cx.get_signed_cookie("user", None))
        .configure(|s| {
            s.cookie_secret = Some(secret());
            s.access_log = false;
        })
        .build()
        .unwrap()
}

struct Fixture {
    server: TestServer,
    log: Log,
}

impl Fixture {
    fn new() -> Fixture {
        let log = Log::default();
        Fixture { server: TestServer::new(app(&log)), log }
    }

    fn url(&self, path: &str) -> String {
        format!("ws://127.0.0.1:{}{path}", self.server.port())
    }

    /// Runs `future` on the server's loop, failing the test if it takes longer than [`TEST_TIMEOUT`].
    fn run<F: Future + 'static>(&self, future: F) -> F::Output
    where
        F::Output: 'static,
    {
        self.server.run(async move { ioloop::timeout(TEST_TIMEOUT, future).await.expect("the test timed out") })
    }

    fn logged(&self) -> Vec<String> {
        self.log.borrow().clone()
    }
}

/// Waits until `log` has an entry starting with `prefix`, and returns it.
async fn logged(log: &Log, prefix: &str) -> String {
    loop {
        if let Some(entry) = log.borrow().iter().find(|e| e.starts_with(prefix)) {
            return entry.clone();
        }
        ioloop::sleep(Duration::from_millis(2)).await;
    }
}

// ---------------------------------------------------------------------------------------------------------
// Our client, our server
// ---------------------------------------------------------------------------------------------------------

#[test]
fn text_and_binary_messages_are_echoed() {
    let f = Fixture::new();
    let url = f.url("/echo/lobby?name=ann");
    let log = f.log.clone();
    f.run(async move {
        let mut client = websocket_connect(&url).await.unwrap();
        assert!(!client.is_compressed());
        client.write_message("héllo, wörld").await.unwrap();
        assert_eq!(client.read_message().await, Some(Message::Text("héllo, wörld".into())));
        client.write_message(&[0u8, 1, 2, 255][..]).await.unwrap();
        assert_eq!(client.read_message().await, Some(Message::Binary(vec![0u8, 1, 2, 255].into())));
        let big = "x".repeat(300 * 1024);
        client.write_message(&big).await.unwrap();
        assert_eq!(client.read_message().await, Some(Message::Text(big)));
        assert_eq!(client.read_message().now_or_never(), None, "nothing more was sent");
        client.close(None, "").unwrap();
        assert_eq!(client.read_message().await, None);
        logged(&log, "close").await;
    });
    assert_eq!(f.logged(), [r#"open ["lobby"] ann"#, "close None \"\""]);
}

#[test]
fn pings_are_answered_both_ways() {
    let f = Fixture::new();
    let url = f.url("/echo/x");
    let log = f.log.clone();
    f.run(async move {
        let mut client = websocket_connect(&url).await.unwrap();
        client.ping(b"are you there").unwrap();
        assert_eq!(client.read_event().await, Some(Event::Pong("are you there".into())));
        logged(&log, "ping are you there").await;
        let too_long = [0u8; 126];
        assert!(matches!(client.ping(&too_long), Err(WebSocketError::Send(_))));
    });
}

#[test]
fn keep_alive_pings_are_sent_and_an_unanswered_one_drops_the_connection() {
    let f = Fixture::new();
    let url = f.url("/keepalive");
    let log = f.log.clone();
    f.run(async move {
        // A reading client answers the server's pings.
        let mut client = websocket_connect(&url).await.unwrap();
        assert!(matches!(client.read_event().await, Some(Event::Ping(_))));
        logged(&log, "pong").await;
        drop(client);
        logged(&log, "close").await;

        // A client that stops reading stops answering: the server gives up on it.
        log.borrow_mut().clear();
        let client = websocket_connect(&url).await.unwrap();
        let entry = logged(&log, "close").await;
        assert_eq!(entry, "close None \"\"");
        assert!(!log.borrow().iter().any(|e| e == "pong"));
        drop(client);
    });
}

#[test]
fn close_codes_travel_both_ways() {
    let f = Fixture::new();
    let (url, log) = (f.url("/echo/x"), f.log.clone());
    f.run(async move {
        // The client closes: the server sees its code and reason, and echoes the code.
        let mut client = websocket_connect(&url).await.unwrap();
        client.close(Some(CloseCode(4001)), "done here").unwrap();
        assert!(client.is_closed());
        assert!(matches!(client.write_message("after close").await, Err(WebSocketError::Closed)));
        assert_eq!(client.read_message().await, None);
        assert_eq!(client.close_code(), Some(CloseCode(4001)));
        assert_eq!(logged(&log, "close").await, "close Some(CloseCode(4001)) \"done here\"");

        // The server closes: the client sees its code and reason.
        log.borrow_mut().clear();
        let mut client = websocket_connect(&url).await.unwrap();
        client.write_message("close 4002 bye now").await.unwrap();
        assert_eq!(client.read_message().await, None);
        assert_eq!(client.close_code(), Some(CloseCode(4002)));
        assert_eq!(client.close_reason().as_deref(), Some("bye now"));
        assert_eq!(logged(&log, "late write").await, "late write: true");
        assert_eq!(logged(&log, "close").await, "close Some(CloseCode(4002)) \"\"");

        // Codes that may not be sent are refused before anything is sent.
        let client = websocket_connect(&url).await.unwrap();
        assert!(matches!(client.close(Some(CloseCode(1005)), ""), Err(WebSocketError::Send(_))));
        assert!(!client.is_closed());
    });
}

#[test]
fn a_message_over_the_size_limit_closes_with_1009() {
    let f = Fixture::new();
    let (url, log) = (f.url("/small"), f.log.clone());
    f.run(async move {
        let mut client = websocket_connect(&url).await.unwrap();
        client.write_message(&"y".repeat(1024)).await.unwrap();
        assert_eq!(client.read_message().await.map(|m| matches!(m, Message::Text(t) if t.len() == 1024)), Some(true));
        client.write_message(&"y".repeat(1025)).await.unwrap();
        assert_eq!(client.read_message().await, None);
        assert_eq!(client.close_code(), Some(CloseCode::MESSAGE_TOO_BIG));
        // The server failed the connection: it got no close frame from the client.
        assert_eq!(logged(&log, "close").await, "close None \"\"");
    });
}

#[test]
fn compression_is_negotiated_and_used() {
    let f = Fixture::new();
    let (deflate, plain) = (f.url("/deflate"), f.url("/echo/x"));
    f.run(async move {
        let options = ConnectOptions { compression: Some(DeflateConfig::default()), ..Default::default() };
        let mut client = websocket_connect_with(&deflate, options.clone()).await.unwrap();
        assert!(client.is_compressed());
        let text = "gale speaks websocket; ".repeat(4096); // 92 KiB
        for _ in 0..3 {
            client.write_message(&text).await.unwrap();
            assert_eq!(client.read_message().await, Some(Message::Text(text.clone())));
        }
        let ws = client.handle();
        assert!(ws.bytes_sent() < 8 * 1024, "{} bytes sent for 3 × 92 KiB", ws.bytes_sent());
        assert!(ws.bytes_received() < 8 * 1024, "{} bytes received for 3 × 92 KiB", ws.bytes_received());

        // A server that offers no compression declines the offer.
        let client = websocket_connect_with(&plain, options).await.unwrap();
        assert!(!client.is_compressed());
    });
}

#[test]
fn a_subprotocol_is_selected_among_those_offered() {
    let f = Fixture::new();
    let url = f.url("/echo/x");
    f.run(async move {
        let offer = |p: &[&str]| ConnectOptions {
            subprotocols: p.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        };
        let client = websocket_connect_with(&url, offer(&["mqtt", "gale.v2", "gale.v1"])).await.unwrap();
        assert_eq!(client.selected_subprotocol(), Some("gale.v2"));
        let client = websocket_connect_with(&url, offer(&["mqtt"])).await.unwrap();
        assert_eq!(client.selected_subprotocol(), None);
    });
}

#[test]
fn bad_upgrade_requests_get_400_405_and_426() {
    let f = Fixture::new();
    let url = format!("http://127.0.0.1:{}/echo/x", f.server.port());
    let upgrade = |request: ClientRequest, version: &str| {
        request
            .header("Upgrade", "websocket")
            .header("Connection", "Upgrade")
            .header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
            .header("Sec-WebSocket-Version", version.to_owned())
    };

    let plain = f.server.request(ClientRequest::get(url.clone()));
    assert_eq!(plain.status(), 400);
    let no_key = f.server.request(
        ClientRequest::get(url.clone())
            .header("Upgrade", "websocket")
            .header("Connection", "upgrade")
            .header("Sec-WebSocket-Version", "13"),
    );
    assert_eq!(no_key.status(), 400);

    let old = f.server.request(upgrade(ClientRequest::get(url.clone()), "8"));
    assert_eq!(old.status(), 426);
    assert_eq!(old.headers().get("Sec-WebSocket-Version"), Some("13"));

    let post = f.server.request(upgrade(ClientRequest::new(Method::Post, url.clone()), "13"));
    assert_eq!(post.status(), 405);
    assert_eq!(post.headers().get("Allow"), Some("GET"));

    // HTTP/1.0 cannot upgrade.
    let mut raw = std::net::TcpStream::connect(("127.0.0.1", f.server.port())).unwrap();
    raw.write_all(
        b"GET /echo/x HTTP/1.0\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .unwrap();
    let reply = f.run(async move {
        let mut reply = Vec::new();
        raw.set_nonblocking(true).unwrap();
        while !reply.ends_with(b"</html>") {
            let mut buf = [0u8; 1024];
            match raw.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => reply.extend_from_slice(&buf[..n]),
                Err(_) => ioloop::sleep(Duration::from_millis(2)).await,
            }
        }
        String::from_utf8(reply).unwrap()
    });
    assert!(reply.starts_with("HTTP/1.1 400 "), "{reply}");
}

#[test]
fn cross_origin_requests_are_refused_with_403() {
    let f = Fixture::new();
    let (url, port) = (f.url("/echo/x"), f.server.port());
    f.run(async move {
        let from = |origin: String| ConnectOptions { headers: vec![("Origin".into(), origin)], ..Default::default() };
        let evil = websocket_connect_with(&url, from("http://evil.example".into())).await.unwrap_err();
        assert_eq!(evil.status(), Some(403), "{evil}");
        let same = websocket_connect_with(&url, from(format!("http://127.0.0.1:{port}"))).await;
        assert!(same.is_ok());
    });
}

#[test]
fn prepare_can_refuse_anonymous_users_and_open_sees_the_user() {
    let f = Fixture::new();
    let url = f.url("/private");
    f.run(async move {
        let anonymous = websocket_connect(&url).await.unwrap_err();
        assert!(matches!(anonymous, ConnectError::Rejected { status: 403 }), "{anonymous}");

        let cookie =
            gale_web::signing::create_signed_value(&secret(), "user", "ann", std::time::SystemTime::now()).unwrap();
        let options =
            ConnectOptions { headers: vec![("Cookie".into(), format!("user=\"{cookie}\""))], ..Default::default() };
        let mut client = websocket_connect_with(&url, options).await.unwrap();
        assert_eq!(client.read_message().await, Some(Message::Text("hello ann".into())));
    });
}

#[test]
fn a_client_that_does_not_read_cannot_make_the_server_buffer_without_bound() {
    let f = Fixture::new();
    let (url, log) = (f.url("/flood"), f.log.clone());
    f.run(async move {
        let client = websocket_connect(&url).await.unwrap();
        let stopped = logged(&log, "flood").await;
        assert_eq!(logged(&log, "close").await, "close None");
        drop(client);
        stopped
    });
    let entries = f.logged();
    let stopped = entries.iter().find(|e| e.starts_with("flood")).unwrap();
    assert!(stopped.contains("WriteBufferFull"), "{stopped}");
    let most: usize = stopped.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(most <= FLOOD_LIMIT, "{most} bytes were queued; the limit is {FLOOD_LIMIT}");
}

#[test]
fn a_panicking_handler_loses_its_connection_and_the_server_goes_on() {
    let f = Fixture::new();
    let (url, log) = (f.url("/fragile"), f.log.clone());
    f.run(async move {
        let mut client = websocket_connect(&url).await.unwrap();
        client.write_message("fine").await.unwrap();
        assert_eq!(client.read_message().await, Some(Message::Text("fine".into())));
        client.write_message("boom").await.unwrap();
        // The connection is dropped without a closing handshake, and the handler still hears of it.
        assert_eq!(client.read_message().await, None);
        assert_eq!(client.close_code(), None);
        assert_eq!(logged(&log, "close").await, "close None");

        // Other connections are unaffected.
        let mut client = websocket_connect(&url).await.unwrap();
        client.write_message("still here").await.unwrap();
        assert_eq!(client.read_message().await, Some(Message::Text("still here".into())));
    });
}

#[test]
fn unusable_urls_and_refusals_are_errors() {
    let f = Fixture::new();
    let (missing, port) = (f.url("/nowhere"), f.server.port());
    f.run(async move {
        assert!(matches!(websocket_connect("wss://127.0.0.1/").await, Err(ConnectError::InvalidUrl(_))));
        assert_eq!(websocket_connect(&missing).await.unwrap_err().status(), Some(404));
        // Nothing listens on the port of a closed listener.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        assert_ne!(closed, port);
        let refused = websocket_connect(&format!("ws://127.0.0.1:{closed}/")).await.unwrap_err();
        assert!(matches!(refused, ConnectError::Io(_)), "{refused}");
    });
}

// ---------------------------------------------------------------------------------------------------------
// Our server, against frames written by hand (RFC 6455 §5.2): nothing of our client is involved
// ---------------------------------------------------------------------------------------------------------

/// The upgrade request of RFC 6455 §1.3, whose accept key is `s3pPLMBiTxaQ9kYGzzhZRbK+xOo=`.
fn rfc_upgrade_request(path: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
}

/// A client frame: `first` is the FIN bit and opcode; the payload is masked with a fixed key unless
/// `masked` is false.
fn client_frame(first: u8, payload: &[u8], masked: bool) -> Vec<u8> {
    let key = [0x37u8, 0xfa, 0x21, 0x3d];
    let mask_bit = if masked { 0x80 } else { 0 };
    let mut frame = vec![first];
    match payload.len() {
        n if n < 126 => frame.push(mask_bit | n as u8),
        n if n <= 0xffff => {
            frame.push(mask_bit | 126);
            frame.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            frame.push(mask_bit | 127);
            frame.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    if masked {
        frame.extend_from_slice(&key);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    } else {
        frame.extend_from_slice(payload);
    }
    frame
}

/// Reads one server frame: its first byte (FIN, RSV, opcode) and its payload, checking it is not masked.
async fn server_frame(stream: &IOStream) -> (u8, Vec<u8>) {
    let head = stream.read_bytes(2, false).await.unwrap();
    assert_eq!(head[1] & 0x80, 0, "a server frame must not be masked");
    let len = match head[1] & 0x7f {
        126 => u16::from_be_bytes(stream.read_bytes(2, false).await.unwrap()[..].try_into().unwrap()) as usize,
        127 => u64::from_be_bytes(stream.read_bytes(8, false).await.unwrap()[..].try_into().unwrap()) as usize,
        n => n as usize,
    };
    let payload = if len == 0 { Vec::new() } else { stream.read_bytes(len, false).await.unwrap().to_vec() };
    (head[0], payload)
}

/// Connects and completes the handshake of [`rfc_upgrade_request`], returning the 101 head.
async fn raw_upgrade(port: u16, path: &str) -> (IOStream, String) {
    let stream = connect("127.0.0.1", port, Some(TEST_TIMEOUT)).await.unwrap();
    stream.write(rfc_upgrade_request(path)).await.unwrap();
    let head = stream.read_until(b"\r\n\r\n", Some(16 * 1024)).await.unwrap();
    (stream, String::from_utf8(head.to_vec()).unwrap())
}

/// The close frame payload: code and reason.
fn close_payload(code: u16, reason: &str) -> Vec<u8> {
    let mut payload = code.to_be_bytes().to_vec();
    payload.extend_from_slice(reason.as_bytes());
    payload
}

#[test]
fn hand_written_frames_get_the_rfc_answers() {
    let f = Fixture::new();
    let (port, log) = (f.server.port(), f.log.clone());
    f.run(async move {
        let (stream, head) = raw_upgrade(port, "/echo/raw").await;
        assert!(head.starts_with("HTTP/1.1 101 Switching Protocols\r\n"), "{head}");
        let head = head.to_ascii_lowercase();
        assert!(head.contains("\r\nsec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo=\r\n"), "{head}");
        assert!(head.contains("\r\nupgrade: websocket\r\n"), "{head}");
        assert!(!head.contains("sec-websocket-extensions"), "no compression was offered: {head}");

        // A text message in two fragments with a ping between them: the pong comes first, then the
        // message, whole and unmasked. All of it in one write, so the server decodes it from one read.
        let mut burst = client_frame(0x01, b"Hel", true); // text, not final
        burst.extend(client_frame(0x89, b"p", true)); // ping
        burst.extend(client_frame(0x80, b"lo", true)); // continuation, final
        stream.write(burst).await.unwrap();
        assert_eq!(server_frame(&stream).await, (0x8a, b"p".to_vec()));
        assert_eq!(server_frame(&stream).await, (0x81, b"Hello".to_vec()));

        // A binary message with a 16-bit length.
        let binary: Vec<u8> = (0..300u32).map(|i| (i % 251) as u8).collect();
        stream.write(client_frame(0x82, &binary, true)).await.unwrap();
        assert_eq!(server_frame(&stream).await, (0x82, binary));

        // The closing handshake: our code comes back, then the server closes the TCP connection.
        stream.write(client_frame(0x88, &close_payload(1000, "bye"), true)).await.unwrap();
        assert_eq!(server_frame(&stream).await, (0x88, 1000u16.to_be_bytes().to_vec()));
        assert_eq!(stream.read_until_close().await.unwrap().len(), 0, "nothing after the close frame");
        assert_eq!(logged(&log, "close").await, "close Some(CloseCode(1000)) \"bye\"");
    });
}

#[test]
fn protocol_violations_close_with_1002_and_1009() {
    let f = Fixture::new();
    let port = f.server.port();
    f.run(async move {
        // A client frame must be masked.
        let (stream, head) = raw_upgrade(port, "/echo/raw").await;
        assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
        stream.write(client_frame(0x81, b"naked", false)).await.unwrap();
        let (first, payload) = server_frame(&stream).await;
        assert_eq!((first, &payload[..2]), (0x88, &1002u16.to_be_bytes()[..]));
        assert_eq!(stream.read_until_close().await.unwrap().len(), 0);

        // A frame over the size limit (1 KiB on /small), announced by its length alone.
        let (stream, _) = raw_upgrade(port, "/small").await;
        stream.write(client_frame(0x82, &[1u8; 2000], true)).await.unwrap();
        let (first, payload) = server_frame(&stream).await;
        assert_eq!((first, &payload[..2]), (0x88, &1009u16.to_be_bytes()[..]));
        assert_eq!(stream.read_until_close().await.unwrap().len(), 0);
    });
}

#[test]
fn a_raw_upgrade_without_a_key_gets_400() {
    let f = Fixture::new();
    let port = f.server.port();
    let reply = f.run(async move {
        let stream = connect("127.0.0.1", port, Some(TEST_TIMEOUT)).await.unwrap();
        let request = rfc_upgrade_request("/echo/raw").replace("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", "");
        stream.write(request).await.unwrap();
        let head = stream.read_until(b"\r\n\r\n", Some(16 * 1024)).await.unwrap();
        String::from_utf8(head.to_vec()).unwrap()
    });
    assert!(reply.starts_with("HTTP/1.1 400 "), "{reply}");
    assert!(!reply.to_ascii_lowercase().contains("sec-websocket-accept"), "{reply}");
}

// ---------------------------------------------------------------------------------------------------------
// Against Python's `websockets`
// ---------------------------------------------------------------------------------------------------------

/// A Python with `websockets`, or `None` after saying loudly that the interop tests are skipped. With
/// `GALE_REQUIRE_INTEROP=1` (for CI), a missing `websockets` fails the test instead.
fn python() -> Option<String> {
    let python = std::env::var("GALE_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let probe = Command::new(&python)
        .args(["-c", "import websockets.asyncio.server, websockets.asyncio.client"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if probe.is_ok_and(|status| status.success()) {
        return Some(python);
    }
    let notice = format!(
        "!!! SKIPPED: {python} cannot import `websockets` (13 or later); the websocket interop tests did not run. \
         Set GALE_PYTHON to a Python that has it. !!!"
    );
    assert!(std::env::var_os("GALE_REQUIRE_INTEROP").is_none_or(|v| v != "1"), "{notice}");
    // Straight to the process's stderr: the test harness captures `eprintln!` of passing tests.
    let _ = writeln!(std::io::stderr(), "{notice}");
    None
}

/// A child process killed (by its PID) when the test ends, however it ends.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

const PYTHON_ECHO_SERVER: &str = r#"
import asyncio
from websockets.asyncio.server import serve

async def echo(ws):
    async for message in ws:
        await ws.send(message)

async def main():
    async with serve(echo, "127.0.0.1", 0, max_size=2**24) as server:
        print(server.sockets[0].getsockname()[1], flush=True)
        await asyncio.Future()

asyncio.run(main())
"#;

const PYTHON_CLIENT: &str = r#"
import asyncio, sys
from websockets.asyncio.client import connect

async def main(url):
    async with connect(url, compression="deflate") as ws:
        extensions = [e.name for e in ws.protocol.extensions]
        assert extensions == ["permessage-deflate"], extensions
        for message in ["héllo", b"\x00\x01\xff", "z" * 200000, b""]:
            await ws.send(message)
            echo = await ws.recv()
            assert echo == message, (message[:20], echo[:20])
        pong = await ws.ping(b"interop")
        await asyncio.wait_for(pong, 5)
    assert ws.close_code == 1000, ws.close_code
    print("ok")

asyncio.run(asyncio.wait_for(main(sys.argv[1]), 15))
"#;

#[test]
fn our_client_talks_to_a_python_websockets_server() {
    let Some(python) = python() else { return };
    let child = Command::new(python)
        .args(["-c", PYTHON_ECHO_SERVER])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the Python server");
    let mut child = ChildGuard(child);
    let stdout = child.0.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let port: u16 = rx.recv_timeout(TEST_TIMEOUT).expect("the Python server's port").trim().parse().unwrap();

    let f = Fixture::new();
    let url = format!("ws://127.0.0.1:{port}/");
    f.run(async move {
        for compression in [None, Some(DeflateConfig::default())] {
            let compressed = compression.is_some();
            let options = ConnectOptions { compression, ..Default::default() };
            let mut client = websocket_connect_with(&url, options).await.unwrap();
            assert_eq!(client.is_compressed(), compressed);
            let big = "w".repeat(1 << 20);
            let messages =
                [Message::Text("grüß dich".into()), Message::Binary(vec![9u8, 0, 255].into()), Message::Text(big)];
            for message in messages {
                client.write_message(&message).await.unwrap();
                assert_eq!(client.read_message().await, Some(message));
            }
            client.close(Some(CloseCode::NORMAL), "bye").unwrap();
            assert_eq!(client.read_message().await, None);
            assert_eq!(client.close_code(), Some(CloseCode::NORMAL));
        }
    });
}

#[test]
fn a_python_websockets_client_talks_to_our_server() {
    let Some(python) = python() else { return };
    let f = Fixture::new();
    let child = Command::new(python)
        .args(["-c", PYTHON_CLIENT, &f.url("/deflate")])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the Python client");
    let mut child = ChildGuard(child);
    let log = f.log.clone();
    let status = f.run(async move {
        let status = loop {
            if let Some(status) = child.0.try_wait().unwrap() {
                break status;
            }
            ioloop::sleep(Duration::from_millis(5)).await;
        };
        logged(&log, "close").await;
        let mut out = String::new();
        let mut err = String::new();
        child.0.stdout.take().unwrap().read_to_string(&mut out).unwrap();
        child.0.stderr.take().unwrap().read_to_string(&mut err).unwrap();
        (status, out, err)
    });
    let (status, out, err) = status;
    assert!(status.success() && out.trim() == "ok", "python client: {status}\n{out}\n{err}");
    let entries = f.logged();
    assert!(entries.contains(&"ping interop".to_owned()), "{entries:?}");
    assert_eq!(entries.last().unwrap(), "close Some(CloseCode(1000)) \"\"");
}
