//! A graceful server shutdown closes open WebSockets with 1001 (going away) and waits for them.

use gale_web::IOLoop;
use gale_web::http1::HttpServer;
use gale_web::websocket::{CloseCode, Message, WebSocket, WebSocketHandler, websocket, websocket_connect};
use gale_web::{Application, RequestContext};
use std::rc::Rc;
use std::time::Duration;

#[derive(Default)]
struct Echo;

impl WebSocketHandler for Echo {
    fn check_origin(&self, _origin: &str, _host: &str) -> bool {
        true
    }

    async fn open(&mut self, _ws: &WebSocket, _cx: &mut RequestContext) {}

    async fn on_message(&mut self, ws: &WebSocket, message: Message) {
        let _ = ws.write_message(&message).await;
    }
}

#[test]
fn shutdown_says_going_away_to_websockets_and_waits_for_them() {
    let app = Application::builder()
        .route("/ws", websocket(Echo::default))
        .configure(|s| s.access_log = false)
        .build()
        .unwrap();
    let io_loop = IOLoop::new().unwrap();
    io_loop.make_current();
    let server = Rc::new(HttpServer::new(&io_loop, app, Default::default()).unwrap());
    server.listen(0, Some("127.0.0.1")).unwrap();
    let url = format!("ws://127.0.0.1:{}/ws", server.local_addrs()[0].port());
    let (echo, code, reason, open_after) = io_loop.run_sync(async move {
        let mut client = websocket_connect(&url).await.expect("connected");
        client.write_message("hi").await.unwrap();
        let echo = client.read_message().await;
        let reader = gale_web::ioloop::spawn(async move {
            while client.read_message().await.is_some() {}
            (client.close_code(), client.close_reason())
        });
        let open_after = server.shutdown(Duration::from_secs(5)).await;
        let (code, reason) = gale_web::ioloop::timeout(Duration::from_secs(10), reader)
            .await
            .expect("the websocket was closed by the shutdown")
            .unwrap();
        (echo, code, reason, open_after)
    });
    assert!(matches!(echo, Some(Message::Text(ref t)) if t == "hi"));
    assert_eq!(code, Some(CloseCode::GOING_AWAY), "reason {reason:?}");
    assert_eq!(open_after, 0, "the shutdown waited for the websocket to close");
}
