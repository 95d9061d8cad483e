//! C10K: one worker holds N standing connections — half long polls, half websockets — while another client
//! measures the latency of ordinary requests; then everything is released and the server must be back to its
//! baseline of file descriptors.
//!
//! ```text
//! cargo run --release -p gale-benches --bin c10k -- --conns 10000 [--backend epoll|poll|select]
//! ```
//!
//! The server runs in a child process (this binary with `--serve`), so that its memory and fds are measured
//! alone, from `/proc/PID`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1).cloned())
}

fn main() {
    if std::env::args().any(|a| a == "--serve") {
        serve(arg("--port").and_then(|p| p.parse().ok()).unwrap_or(0));
        return;
    }
    let conns: usize = arg("--conns").and_then(|c| c.parse().ok()).unwrap_or(10_000);
    let backend = arg("--backend").unwrap_or_else(|| "epoll".into());
    raise_fd_limit();
    let report = drive(conns, &backend);
    println!("{report}");
    if report.contains("FAILED") {
        std::process::exit(1);
    }
}

// ---- the server -----------------------------------------------------------------------------------------

mod server {
    use gale_web::websocket::{Message, WebSocket, WebSocketHandler};
    use gale_web::{RequestContext, RequestHandler, Result};
    use std::cell::{Cell, RefCell};
    use std::rc::Rc;
    use std::task::{Poll, Waker};

    /// Long polls wait until `/release`.
    #[derive(Default)]
    pub struct Gate {
        pub open: Cell<bool>,
        pub waiters: RefCell<Vec<Waker>>,
    }

    pub struct Wait(pub Rc<Gate>);

    impl RequestHandler for Wait {
        async fn get(&mut self, cx: &mut RequestContext) -> Result {
            let gate = self.0.clone();
            std::future::poll_fn(|c| {
                if gate.open.get() {
                    Poll::Ready(())
                } else {
                    gate.waiters.borrow_mut().push(c.waker().clone());
                    Poll::Pending
                }
            })
            .await;
            cx.write("released");
            Ok(())
        }
    }

    pub struct Release(pub Rc<Gate>);

    impl RequestHandler for Release {
        async fn get(&mut self, cx: &mut RequestContext) -> Result {
            self.0.open.set(true);
            for w in self.0.waiters.borrow_mut().drain(..) {
                w.wake();
            }
            cx.write("ok");
            Ok(())
        }
    }

    pub struct Hello;

    impl RequestHandler for Hello {
        async fn get(&mut self, cx: &mut RequestContext) -> Result {
            cx.write("Hello, World!");
            Ok(())
        }
    }

    #[derive(Default)]
    pub struct Echo;

    impl WebSocketHandler for Echo {
        fn check_origin(&self, _origin: &str, _host: &str) -> bool {
            true
        }
        async fn open(&mut self, _ws: &WebSocket, _cx: &mut RequestContext) {}
        async fn on_message(&mut self, ws: &WebSocket, message: Message) {
            let _ = ws.write_message(&message).await;
        }
    }
}

fn serve(port: u16) {
    use gale_web::Application;
    use std::rc::Rc;
    let gate = Rc::new(server::Gate::default());
    let (g1, g2) = (gate.clone(), gate);
    let app = Application::builder()
        .route("/", || server::Hello)
        .route("/wait", move || server::Wait(g1.clone()))
        .route("/release", move || server::Release(g2.clone()))
        .route("/ws", gale_web::websocket::websocket(server::Echo::default))
        .configure(|s| s.access_log = false)
        .build()
        .unwrap();
    let io_loop = gale_web::IOLoop::new().unwrap();
    io_loop.make_current();
    let opts = gale_web::ServerOptions { limits: Default::default(), ..Default::default() };
    let server = gale_web::http1::HttpServer::new(&io_loop, app, opts).unwrap();
    server.listen(port, Some("127.0.0.1")).unwrap();
    println!("{}", server.local_addrs()[0].port());
    io_loop.start().unwrap();
}

// ---- the driver -----------------------------------------------------------------------------------------

fn raise_fd_limit() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut lim = getrlimit(Resource::Nofile);
    lim.current = lim.maximum;
    let _ = setrlimit(Resource::Nofile, lim);
}

struct Server {
    child: Child,
    port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(backend: &str) -> Server {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .arg("--serve")
        .env("GALE_POLLER", backend)
        .stdout(Stdio::piped())
        .spawn()
        .expect("server process");
    let mut out = child.stdout.take().unwrap();
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while out.read(&mut byte).unwrap_or(0) == 1 && byte[0] != b'\n' {
        line.push(byte[0]);
    }
    let port = String::from_utf8_lossy(&line).trim().parse().expect("the server prints its port");
    Server { child, port }
}

fn proc_status(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0)
}

fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    f.get(11).and_then(|u| u.parse::<u64>().ok()).unwrap_or(0)
        + f.get(12).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0)
}

fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s
}

/// Reads one HTTP response with a Content-Length body; returns (status line, body).
fn read_response(s: &mut TcpStream) -> Option<(String, String)> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&buf).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let len = text[..end]
                .lines()
                .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_owned()))
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                let status = text.lines().next().unwrap_or("").to_owned();
                return Some((status, text[end + 4..end + 4 + len].to_owned()));
            }
        }
        match s.read(&mut byte) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&byte[..n]),
        }
    }
}

fn drive(conns: usize, backend: &str) -> String {
    let server = start(backend);
    let (pid, port) = (server.child.id(), server.port);
    // Warm up and take the baseline.
    let mut probe = connect(port);
    probe.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    read_response(&mut probe).expect("hello");
    std::thread::sleep(Duration::from_millis(200));
    let (rss0, fds0) = (proc_status(pid, "VmRSS:"), fd_count(pid));

    // Standing connections: half long polls, half websockets.
    let started = Instant::now();
    let mut polls = Vec::new();
    let mut sockets = Vec::new();
    for i in 0..conns {
        let mut s = connect(port);
        if i % 2 == 0 {
            s.write_all(b"GET /wait HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
            polls.push(s);
        } else {
            s.write_all(
                b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                  Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
            )
            .unwrap();
            sockets.push(s);
        }
    }
    let mut upgraded = 0;
    for s in &mut sockets {
        let mut buf = [0u8; 512];
        if s.read(&mut buf).is_ok_and(|n| String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 101")) {
            upgraded += 1;
        }
    }
    let open_s = started.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_millis(500));
    let (rss1, fds1) = (proc_status(pid, "VmRSS:"), fd_count(pid));

    // Ordinary requests while they stand.
    let mut lat = Vec::with_capacity(2000);
    let cpu0 = cpu_ticks(pid);
    for _ in 0..2000 {
        let t = Instant::now();
        probe.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        read_response(&mut probe).expect("hello while loaded");
        lat.push(t.elapsed());
    }
    let ticks = cpu_ticks(pid) - cpu0;
    lat.sort();
    let p50 = lat[lat.len() / 2];
    let p99 = lat[lat.len() * 99 / 100];
    let hz = 100.0; // USER_HZ on Linux
    let cpu_us = ticks as f64 / hz * 1e6 / 2000.0;

    // Release: every long poll must be answered; close the websockets.
    let mut rel = connect(port);
    rel.write_all(b"GET /release HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    read_response(&mut rel).expect("release");
    let mut answered = 0;
    for s in &mut polls {
        if read_response(s).is_some_and(|(st, body)| st.contains("200") && body == "released") {
            answered += 1;
        }
    }
    let expected_polls = polls.len();
    drop(polls);
    drop(sockets);
    drop(rel);
    // The server notices the closes; give it a moment, then read its fds again.
    let mut fds2 = fd_count(pid);
    for _ in 0..100 {
        if fds2 <= fds0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
        fds2 = fd_count(pid);
    }
    let rss2 = proc_status(pid, "VmRSS:");
    let per_conn = (rss1.saturating_sub(rss0)) as f64 / conns.max(1) as f64;
    let ok = answered == expected_polls && upgraded == conns / 2 && fds2 <= fds0;
    format!(
        "backend={backend} conns={conns} open_s={open_s:.2} upgraded={upgraded}/{} long_polls_answered={answered}/{} \
         rss_kib={rss0}->{rss1}->{rss2} kib_per_conn={per_conn:.2} fds={fds0}->{fds1}->{fds2} \
         p50_us={} p99_us={} cpu_us_per_req={cpu_us:.1} {}",
        conns / 2,
        expected_polls,
        p50.as_micros(),
        p99.as_micros(),
        if ok { "OK" } else { "FAILED" }
    )
}
