//! Tornado's long-polling chat demo on gale-web.
//!
//! A message buffer with a cursor: new messages wake the requests waiting for them through futures; a
//! waiting request whose client disconnects is cleaned up (its waiter is dropped). Open
//! `http://127.0.0.1:8888/` in two browsers, or use curl:
//!
//! ```text
//! cargo run --release --example chat -- --port 8888
//! curl -X POST -d cursor=0 http://127.0.0.1:8888/a/message/updates          # waits
//! curl -X POST -d body=hello http://127.0.0.1:8888/a/message/new            # wakes it
//! ```
//!
//! (The demo keeps XSRF off so that curl can post; the blog_api example shows XSRF.)

use gale_examples::Options;
use gale_web::escape::xhtml_escape;
use gale_web::{Application, HttpError, RequestContext, RequestHandler, Result};
use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::poll_fn;
use std::rc::Rc;
use std::task::{Poll, Waker};

/// How many messages new joiners get.
const CACHE_SIZE: usize = 200;

#[derive(Clone, serde::Serialize)]
struct Message {
    id: u64,
    body: String,
    html: String,
}

/// The shared message buffer (Tornado's `MessageBuffer`), on the loop's thread.
#[derive(Default)]
struct MessageBuffer {
    cache: VecDeque<Message>,
    next_id: u64,
    /// Requests waiting for a message newer than their cursor; a waiter whose request went away is removed
    /// by its guard.
    waiters: Vec<(u64, Waker)>,
    next_waiter: u64,
}

impl MessageBuffer {
    fn messages_since(&self, cursor: u64) -> Vec<Message> {
        self.cache.iter().filter(|m| m.id > cursor).cloned().collect()
    }

    fn add(&mut self, body: String) -> Message {
        self.next_id += 1;
        let html = format!("<div class=\"message\" id=\"m{}\">{}</div>", self.next_id, xhtml_escape(&body));
        let message = Message { id: self.next_id, body, html };
        self.cache.push_back(message.clone());
        if self.cache.len() > CACHE_SIZE {
            self.cache.pop_front();
        }
        for (_, w) in self.waiters.drain(..) {
            w.wake();
        }
        message
    }
}

/// Removes a waiter from the buffer when the waiting request ends, however it ends (answered, or dropped
/// because its client disconnected).
struct WaiterGuard {
    buffer: Rc<RefCell<MessageBuffer>>,
    id: u64,
}

impl Drop for WaiterGuard {
    fn drop(&mut self) {
        self.buffer.borrow_mut().waiters.retain(|(id, _)| *id != self.id);
    }
}

/// Resolves with the messages newer than `cursor`, waiting until there are some.
async fn wait_for_messages(buffer: &Rc<RefCell<MessageBuffer>>, cursor: u64) -> Vec<Message> {
    let id = {
        let mut b = buffer.borrow_mut();
        b.next_waiter += 1;
        b.next_waiter
    };
    let _guard = WaiterGuard { buffer: buffer.clone(), id };
    poll_fn(|cx| {
        let mut b = buffer.borrow_mut();
        let new = b.messages_since(cursor);
        if !new.is_empty() {
            return Poll::Ready(new);
        }
        b.waiters.retain(|(w, _)| *w != id);
        b.waiters.push((id, cx.waker().clone()));
        Poll::Pending
    })
    .await
}

struct MainHandler {
    buffer: Rc<RefCell<MessageBuffer>>,
}

impl RequestHandler for MainHandler {
    async fn get(&mut self, cx: &mut RequestContext) -> Result {
        let messages: String = self.buffer.borrow().cache.iter().map(|m| m.html.as_str()).collect();
        cx.write(PAGE.replace("{messages}", &messages));
        Ok(())
    }
}

struct MessageNewHandler {
    buffer: Rc<RefCell<MessageBuffer>>,
}

impl RequestHandler for MessageNewHandler {
    async fn post(&mut self, cx: &mut RequestContext) -> Result {
        let body = cx.get_argument("body")?;
        if body.is_empty() {
            return Err(HttpError::with_message(400, "empty message"));
        }
        let message = self.buffer.borrow_mut().add(body);
        match cx.get_argument_opt("next")? {
            Some(next) if next.starts_with('/') => cx.redirect(&next, false),
            _ => cx.write_json(&message),
        }
    }
}

struct MessageUpdatesHandler {
    buffer: Rc<RefCell<MessageBuffer>>,
}

#[derive(serde::Serialize)]
struct Updates {
    messages: Vec<Message>,
}

impl RequestHandler for MessageUpdatesHandler {
    async fn post(&mut self, cx: &mut RequestContext) -> Result {
        let cursor = cx.get_argument_or("cursor", "0")?.parse::<u64>().unwrap_or(0);
        // If the client disconnects while we wait, this future is dropped and the guard removes the waiter.
        let messages = wait_for_messages(&self.buffer, cursor).await;
        if cx.connection_closed() {
            return Ok(());
        }
        cx.write_json(&Updates { messages })
    }

    fn on_connection_close(&mut self) {
        log::info!("a waiting chat client went away");
    }
}

/// The application; the buffer is shared by its handlers.
pub fn make_app() -> Application {
    let buffer = Rc::new(RefCell::new(MessageBuffer::default()));
    let (b1, b2, b3) = (buffer.clone(), buffer.clone(), buffer);
    Application::builder()
        .route(r"/", move || MainHandler { buffer: b1.clone() })
        .route(r"/a/message/new", move || MessageNewHandler { buffer: b2.clone() })
        .route(r"/a/message/updates", move || MessageUpdatesHandler { buffer: b3.clone() })
        .build()
        .expect("valid routes")
}

fn main() -> Result<(), gale_examples::CliError> {
    gale_examples::init_logging();
    let port = Options::from_env().port();
    // One worker: the message buffer lives on its thread.
    let handle = gale_web::run(1, port, Some("127.0.0.1"), Default::default(), make_app)
        .map_err(|e| gale_examples::port_error(port, e))?;
    println!("chat listening on http://{}", handle.addr());
    Ok(gale_examples::on_shutdown_signal(move || handle.shutdown(std::time::Duration::from_secs(5)))?)
}

const PAGE: &str = r#"<!DOCTYPE html>
<html>
<head>
<meta charset="utf-8">
<title>gale chat demo</title>
<style>
body { font-family: sans-serif; margin: 2em; }
#inbox { border: 1px solid #ccc; padding: 0.5em; height: 20em; overflow-y: auto; }
.message { padding: 0.2em 0; }
</style>
</head>
<body>
<h1>gale chat</h1>
<div id="inbox">{messages}</div>
<form id="messageform" action="/a/message/new" method="post">
  <input name="body" id="message" style="width: 30em" autocomplete="off">
  <input type="submit" value="Post">
  <input type="hidden" name="next" value="/">
</form>
<script>
let cursor = 0;
for (const m of document.querySelectorAll('.message')) cursor = Math.max(cursor, +m.id.slice(1));
async function poll() {
  try {
    const r = await fetch('/a/message/updates', {method: 'POST', body: new URLSearchParams({cursor})});
    if (r.ok) {
      const data = await r.json();
      for (const m of data.messages) {
        if (document.getElementById('m' + m.id)) continue;
        document.getElementById('inbox').insertAdjacentHTML('beforeend', m.html);
        cursor = Math.max(cursor, m.id);
      }
    } else {
      await new Promise(ok => setTimeout(ok, 1000));
    }
  } catch (e) {
    await new Promise(ok => setTimeout(ok, 1000));
  }
  poll();
}
document.getElementById('messageform').addEventListener('submit', async (e) => {
  e.preventDefault();
  const input = document.getElementById('message');
  if (!input.value) return;
  await fetch('/a/message/new', {method: 'POST', body: new URLSearchParams({body: input.value})});
  input.value = '';
});
poll();
</script>
</body>
</html>
"#;
