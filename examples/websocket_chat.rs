//! Tornado's WebSocket chat demo (`demos/websocket/chatdemo.py`) on gale-web.
//!
//! Every browser on `/` opens a socket on `/chatsocket`; a message sent on one socket is broadcast to all of
//! them. The last 200 messages are kept, and a page shows them to whoever joins. Open
//! `http://127.0.0.1:8888/` in two browser windows:
//!
//! ```text
//! cargo run --release --example websocket_chat -- --port 8888
//! ```

use gale_examples::Options;
use gale_web::escape::{json_encode, xhtml_escape};
use gale_web::websocket::{DeflateConfig, Message, WebSocket, WebSocketHandler, websocket};
use gale_web::{Application, RequestContext, RequestHandler, Result};
use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;

/// How many messages new joiners get.
const CACHE_SIZE: usize = 200;

/// The longest message accepted from a browser.
const MAX_MESSAGE_SIZE: usize = 64 * 1024;

/// One chat message, as sent to the browsers.
#[derive(Clone, serde::Serialize)]
struct Chat {
    id: String,
    body: String,
    html: String,
}

/// What a browser sends.
#[derive(serde::Deserialize)]
struct NewChat {
    body: String,
}

/// The room: its open sockets and recent messages (Tornado's `ChatSocketHandler.waiters` and `.cache`).
#[derive(Default)]
struct Room {
    waiters: HashMap<u64, WebSocket>,
    cache: VecDeque<Chat>,
    next_socket: u64,
    next_message: u64,
}

impl Room {
    fn add(&mut self, body: String) -> Chat {
        self.next_message += 1;
        let id = format!("{:x}", self.next_message);
        let html = format!("<div class=\"message\" id=\"m{id}\">{}</div>", xhtml_escape(&body));
        let chat = Chat { id, body, html };
        self.cache.push_back(chat.clone());
        if self.cache.len() > CACHE_SIZE {
            self.cache.pop_front();
        }
        chat
    }
}

/// The page, with the cached messages.
struct MainHandler {
    room: Rc<RefCell<Room>>,
}

impl RequestHandler for MainHandler {
    async fn get(&mut self, cx: &mut RequestContext) -> Result {
        let messages: String = self.room.borrow().cache.iter().map(|m| m.html.as_str()).collect();
        cx.write(PAGE.replace("{messages}", &messages));
        Ok(())
    }
}

/// One browser's socket (Tornado's `ChatSocketHandler`).
struct ChatSocket {
    room: Rc<RefCell<Room>>,
    id: Option<u64>,
}

impl WebSocketHandler for ChatSocket {
    fn compression(&self) -> Option<DeflateConfig> {
        Some(DeflateConfig::default())
    }

    fn max_message_size(&self) -> usize {
        MAX_MESSAGE_SIZE
    }

    async fn open(&mut self, ws: &WebSocket, _cx: &mut RequestContext) {
        let mut room = self.room.borrow_mut();
        room.next_socket += 1;
        let id = room.next_socket;
        room.waiters.insert(id, ws.clone());
        self.id = Some(id);
        log::info!("chat: socket {id} joined ({} open)", room.waiters.len());
    }

    async fn on_message(&mut self, _ws: &WebSocket, message: Message) {
        let Message::Text(text) = message else { return };
        let body = match serde_json::from_str::<NewChat>(&text) {
            Ok(new) if !new.body.trim().is_empty() => new.body,
            Ok(_) => return,
            Err(e) => {
                log::warn!("chat: unreadable message: {e}");
                return;
            }
        };
        let chat = self.room.borrow_mut().add(body);
        let Ok(json) = json_encode(&chat) else { return };
        // Collect the sockets first: no borrow of the room is held while sending.
        let waiters: Vec<WebSocket> = self.room.borrow().waiters.values().cloned().collect();
        log::info!("chat: sending a message to {} sockets", waiters.len());
        for ws in waiters {
            // Queued without waiting, so that one slow browser does not hold up the others.
            if let Err(e) = ws.queue_message(&json) {
                log::warn!("chat: cannot send to a socket: {e}");
            }
        }
    }

    fn on_close(&mut self, _code: Option<gale_web::websocket::CloseCode>, _reason: &str) {
        if let Some(id) = self.id.take() {
            let mut room = self.room.borrow_mut();
            room.waiters.remove(&id);
            log::info!("chat: socket {id} left ({} open)", room.waiters.len());
        }
    }
}

/// The application; the room is shared by its handlers.
pub fn make_app() -> Application {
    let room = Rc::new(RefCell::new(Room::default()));
    let (page, socket) = (room.clone(), room);
    Application::builder()
        .route(r"/", move || MainHandler { room: page.clone() })
        .route(r"/chatsocket", websocket(move || ChatSocket { room: socket.clone(), id: None }))
        .build()
        .expect("valid routes")
}

fn main() -> std::result::Result<(), gale_examples::CliError> {
    gale_examples::init_logging();
    let port = Options::from_env().port();
    // One worker: the room lives on its thread.
    let handle = gale_web::run(1, port, Some("127.0.0.1"), Default::default(), make_app)
        .map_err(|e| gale_examples::port_error(port, e))?;
    println!("websocket chat listening on http://{}", handle.addr());
    Ok(gale_examples::on_shutdown_signal(move || handle.shutdown(std::time::Duration::from_secs(5)))?)
}

const PAGE: &str = r#"<!DOCTYPE html>
<html>
<head>
<meta charset="utf-8">
<title>gale websocket chat demo</title>
<style>
body { font-family: sans-serif; margin: 2em; }
#inbox { border: 1px solid #ccc; padding: 0.5em; height: 20em; overflow-y: auto; }
.message { padding: 0.2em 0; }
#status { color: #888; font-size: small; }
</style>
</head>
<body>
<h1>gale websocket chat</h1>
<div id="inbox">{messages}</div>
<form id="messageform">
  <input name="body" id="message" style="width: 30em" autocomplete="off">
  <input type="submit" value="Post">
</form>
<div id="status" data-state="connecting">connecting…</div>
<script>
const updater = {
  socket: null,
  start() {
    const scheme = location.protocol === 'https:' ? 'wss://' : 'ws://';
    updater.socket = new WebSocket(scheme + location.host + '/chatsocket');
    updater.socket.onopen = () => updater.status('open', 'connected');
    updater.socket.onclose = () => updater.status('closed', 'disconnected; reload to reconnect');
    updater.socket.onmessage = (event) => updater.showMessage(JSON.parse(event.data));
  },
  status(state, text) {
    const node = document.getElementById('status');
    node.dataset.state = state;
    node.textContent = text;
  },
  showMessage(message) {
    if (document.getElementById('m' + message.id)) return;
    document.getElementById('inbox').insertAdjacentHTML('beforeend', message.html);
    const inbox = document.getElementById('inbox');
    inbox.scrollTop = inbox.scrollHeight;
  },
};

function newMessage(form) {
  const input = form.querySelector('#message');
  if (!input.value) return;
  updater.socket.send(JSON.stringify({body: input.value}));
  input.value = '';
  input.focus();
}

document.getElementById('messageform').addEventListener('submit', (e) => {
  e.preventDefault();
  newMessage(e.target);
});
document.getElementById('message').focus();
updater.start();
</script>
</body>
</html>
"#;
