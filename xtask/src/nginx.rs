//! `cargo xtask nginx`: Debian's nginx on loopback in front of two gale processes (the `whoami` example), as
//! `docs/deploy-nginx.md` describes; HTTP and a WebSocket go through it, and both processes must have served.
//!
//! nginx runs in the foreground as a child with a generated config under `target/nginx/` (no system service),
//! and everything is stopped by PID at the end.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Stops a child when dropped: SIGTERM (nginx then stops its workers, gale shuts down gracefully), SIGKILL if it
/// is still there after 5 s.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(pid) = rustix::process::Pid::from_raw(self.0.id() as i32) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        let until = Instant::now() + Duration::from_secs(5);
        while Instant::now() < until {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> Result<u16, String> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(l.local_addr().map_err(|e| e.to_string())?.port())
}

fn wait_for(port: u16) -> Result<(), String> {
    let until = Instant::now() + Duration::from_secs(15);
    while Instant::now() < until {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(format!("nothing listens on port {port}"))
}

fn get(port: u16, path: &str) -> Result<String, String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(10))).map_err(|e| e.to_string())?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: example.test\r\nConnection: close\r\n\r\n").map_err(|e| e.to_string())?;
    let mut out = String::new();
    s.read_to_string(&mut out).map_err(|e| e.to_string())?;
    Ok(out)
}

/// One WebSocket round trip through the proxy: handshake, a masked text frame, its echo.
fn websocket_echo(port: u16) -> Result<String, String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(10))).map_err(|e| e.to_string())?;
    s.write_all(
        b"GET /ws HTTP/1.1\r\nHost: example.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .map_err(|e| e.to_string())?;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut byte).map_err(|e| format!("reading the handshake: {e}"))?;
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    if !head.starts_with("HTTP/1.1 101") {
        return Err(format!("no upgrade through nginx: {head}"));
    }
    let payload = b"through nginx";
    let mask = [1u8, 2, 3, 4];
    let mut frame = vec![0x81, 0x80 | payload.len() as u8];
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    s.write_all(&frame).map_err(|e| e.to_string())?;
    let mut hdr = [0u8; 2];
    s.read_exact(&mut hdr).map_err(|e| format!("reading the echo: {e}"))?;
    let mut body = vec![0u8; usize::from(hdr[1] & 0x7f)];
    s.read_exact(&mut body).map_err(|e| e.to_string())?;
    Ok(String::from_utf8_lossy(&body).into_owned())
}

pub fn run(_args: &[String]) -> Result<(), String> {
    let root = crate::workspace_root();
    if Command::new("nginx").arg("-v").output().is_err() {
        return Err("nginx is not installed (apt-get install -y nginx-light)".into());
    }
    crate::cargo(&["build", "--release", "-p", "gale-examples", "--example", "whoami"])?;
    let whoami = root.join("target/release/examples/whoami");
    let (p1, p2, front) = (free_port()?, free_port()?, free_port()?);
    let mut backends = Vec::new();
    for p in [p1, p2] {
        let child = Command::new(&whoami)
            .args(["--port", &p.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start whoami: {e}"))?;
        backends.push(Guard(child));
        wait_for(p)?;
    }
    let dir = root.join("target/nginx");
    std::fs::create_dir_all(dir.join("logs")).map_err(|e| e.to_string())?;
    let conf = format!(
        r#"daemon off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/logs/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log {dir}/logs/access.log;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    upstream gale {{
        server 127.0.0.1:{p1};
        server 127.0.0.1:{p2};
        keepalive 16;
    }}
    map $http_upgrade $connection_upgrade {{
        default upgrade;
        ''      '';
    }}
    server {{
        listen 127.0.0.1:{front};
        location / {{
            proxy_pass http://gale;
            proxy_http_version 1.1;
            proxy_set_header Host $host;
            proxy_set_header X-Real-IP $remote_addr;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_read_timeout 3600s;
        }}
    }}
}}
"#,
        dir = dir.display()
    );
    let conf_path = dir.join("nginx.conf");
    std::fs::write(&conf_path, conf).map_err(|e| e.to_string())?;
    let nginx = Command::new("nginx")
        .arg("-p")
        .arg(&dir)
        .arg("-c")
        .arg(&conf_path)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start nginx: {e}"))?;
    let _nginx = Guard(nginx);
    wait_for(front)?;

    let mut pids = std::collections::BTreeMap::new();
    for _ in 0..200 {
        let reply = get(front, "/")?;
        if !reply.starts_with("HTTP/1.1 200") {
            return Err(format!("bad reply through nginx: {reply}"));
        }
        let body = reply.split("\r\n\r\n").nth(1).unwrap_or("");
        let pid = body.split("\"pid\":").nth(1).and_then(|r| r.split(',').next()).unwrap_or("?").to_owned();
        if !body.contains("\"remote_ip\":\"127.0.0.1\"") || !body.contains("\"protocol\":\"http\"") {
            return Err(format!("xheaders not applied: {body}"));
        }
        *pids.entry(pid).or_insert(0) += 1;
    }
    let echo = websocket_echo(front)?;
    println!("requests per backend pid: {pids:?}; websocket echo through nginx: {echo:?}");
    if pids.len() != 2 {
        return Err(format!("expected both gale processes to serve, saw {pids:?}"));
    }
    if echo != "through nginx" {
        return Err(format!("websocket echo was {echo:?}"));
    }
    println!("nginx check: OK (2 processes served, xheaders applied, websocket proxied)");
    Ok(())
}
