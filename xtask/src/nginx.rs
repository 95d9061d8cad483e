//! `cargo xtask nginx`: Debian's nginx on loopback in front of two gale processes (the `whoami` example), set
//! up as `docs/deploy-nginx.md` describes. HTTP and a WebSocket go through it; both processes must serve, and
//! both must see the client's address and scheme as nginx reports them, not as the client claims them.
//!
//! nginx runs in the foreground as a child (`nginx -p DIR -c DIR/nginx.conf -e DIR/logs/error.log`, `daemon
//! off`), with its configuration, pid file, logs and temp files in a fresh temporary directory: no system
//! service, no system path written. Every process is stopped by PID at the end, and the directory removed.
//!
//! nginx connects to gale from `127.0.0.2` (`proxy_bind`) while the client connects from `127.0.0.1`: so
//! the `remote_ip` gale reports is `127.0.0.1` only if it came from the `X-Real-IP` header.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Requests sent through nginx.
const REQUESTS: usize = 200;

/// The address nginx connects to gale from: loopback, but not the client's.
const PROXY_SOURCE: &str = "127.0.0.2";

/// How long a process may take to start listening, or to exit once told to.
const PATIENCE: Duration = Duration::from_secs(15);

/// A child process stopped by PID when dropped: SIGTERM (nginx stops its workers, gale shuts down
/// gracefully), then SIGKILL if it is still there after [`PATIENCE`].
struct Guard {
    name: &'static str,
    child: Child,
}

impl Guard {
    /// Stops the process; returns how it went.
    fn stop(&mut self) -> Result<(), String> {
        if let Ok(Some(status)) = self.child.try_wait() {
            return Err(format!("{} (pid {}) had already exited: {status}", self.name, self.child.id()));
        }
        if let Some(pid) = rustix::process::Pid::from_raw(self.child.id() as i32) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        let until = Instant::now() + PATIENCE;
        while Instant::now() < until {
            if let Ok(Some(_)) = self.child.try_wait() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        Err(format!("{} (pid {}) ignored SIGTERM for {PATIENCE:?} and was killed", self.name, self.child.id()))
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.stop();
        }
    }
}

/// A directory removed with its contents when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(prefix: &str) -> Result<TempDir, String> {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
        let path = std::env::temp_dir().join(format!("{prefix}-{}-{nanos}", std::process::id()));
        std::fs::create_dir(&path).map_err(|e| format!("cannot create {}: {e}", path.display()))?;
        Ok(TempDir(path))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn free_port() -> Result<u16, String> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(l.local_addr().map_err(|e| e.to_string())?.port())
}

/// Waits until something accepts connections on `port`, failing early if `guard`'s process exits.
fn wait_for(port: u16, guard: &mut Guard) -> Result<(), String> {
    let until = Instant::now() + PATIENCE;
    while Instant::now() < until {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        if let Ok(Some(status)) = guard.child.try_wait() {
            return Err(format!("{} exited before listening on port {port}: {status}", guard.name));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(format!("{} does not listen on port {port} after {PATIENCE:?}", guard.name))
}

/// A `GET` through the proxy with extra header lines; returns status line and body.
fn get(port: u16, path: &str, extra_headers: &str) -> Result<(String, String), String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(10))).map_err(|e| e.to_string())?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: example.test\r\n{extra_headers}Connection: close\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let mut out = String::new();
    s.read_to_string(&mut out).map_err(|e| e.to_string())?;
    let (head, body) = out.split_once("\r\n\r\n").ok_or_else(|| format!("no response head in {out:?}"))?;
    Ok((head.lines().next().unwrap_or_default().to_owned(), body.to_owned()))
}

/// The value of `"key":` in a flat JSON object, unquoted (enough for whoami's answers).
fn json_field<'a>(json: &'a str, key: &str) -> Option<&'a str> {
    let rest = json.split_once(&format!("\"{key}\":"))?.1.trim_start();
    match rest.strip_prefix('"') {
        Some(quoted) => quoted.split_once('"').map(|(v, _)| v),
        None => rest.split([',', '}']).next().map(str::trim),
    }
}

/// One WebSocket round trip through the proxy: handshake, a masked text frame, its echo, the close handshake.
fn websocket_echo(port: u16, text: &str) -> Result<String, String> {
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
    // The accept key of RFC 6455's example request key.
    if !head.starts_with("HTTP/1.1 101") || !head.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") {
        return Err(format!("no upgrade through nginx: {head}"));
    }
    let send = |s: &mut TcpStream, opcode: u8, payload: &[u8]| {
        let mask = [0x11u8, 0x22, 0x33, 0x44];
        let mut frame = vec![0x80 | opcode, 0x80 | payload.len() as u8];
        frame.extend_from_slice(&mask);
        frame.extend(payload.iter().zip(mask.iter().cycle()).map(|(b, m)| b ^ m));
        s.write_all(&frame).map_err(|e| e.to_string())
    };
    let read = |s: &mut TcpStream| -> Result<(u8, Vec<u8>), String> {
        let mut hdr = [0u8; 2];
        s.read_exact(&mut hdr).map_err(|e| format!("reading a frame: {e}"))?;
        if hdr[1] & 0x80 != 0 || hdr[1] & 0x7f > 125 {
            return Err(format!("unexpected frame header {hdr:?}"));
        }
        let mut payload = vec![0u8; usize::from(hdr[1] & 0x7f)];
        s.read_exact(&mut payload).map_err(|e| e.to_string())?;
        Ok((hdr[0] & 0x0f, payload))
    };
    send(&mut s, 0x1, text.as_bytes())?;
    let (opcode, echo) = read(&mut s)?;
    if opcode != 0x1 {
        return Err(format!("expected a text echo, got opcode {opcode}"));
    }
    send(&mut s, 0x8, &1000u16.to_be_bytes())?;
    let (opcode, code) = read(&mut s)?;
    if opcode != 0x8 || code.get(..2) != Some(&1000u16.to_be_bytes()[..]) {
        return Err(format!("expected a close frame with 1000, got opcode {opcode} {code:?}"));
    }
    Ok(String::from_utf8_lossy(&echo).into_owned())
}

/// The nginx configuration of `docs/deploy-nginx.md`, on loopback ports, with every path under `dir`.
fn config(dir: &Path, front: u16, backends: &[u16]) -> String {
    let dir = dir.display();
    let servers: String = backends.iter().map(|p| format!("        server 127.0.0.1:{p};\n")).collect();
    format!(
        r#"daemon off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/logs/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log {dir}/logs/access.log;
    client_body_temp_path {dir}/temp/body;
    proxy_temp_path {dir}/temp/proxy;
    fastcgi_temp_path {dir}/temp/fastcgi;
    uwsgi_temp_path {dir}/temp/uwsgi;
    scgi_temp_path {dir}/temp/scgi;
    upstream gale {{
{servers}        keepalive 16;
    }}
    map $http_upgrade $connection_upgrade {{
        default upgrade;
        ''      '';
    }}
    server {{
        listen 127.0.0.1:{front};
        location / {{
            proxy_pass http://gale;
            proxy_bind {PROXY_SOURCE};
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
"#
    )
}

/// The last lines of nginx's error log, for a failure message.
fn error_log_tail(dir: &Path) -> String {
    let log = std::fs::read_to_string(dir.join("logs/error.log")).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(10)..].join("\n")
}

/// Runs the check.
///
/// # Errors
///
/// When nginx is missing, a process does not start, or a check fails.
pub fn run(args: &[String]) -> Result<(), String> {
    if !args.is_empty() {
        return Err(format!("unexpected arguments {args:?}; usage: cargo xtask nginx"));
    }
    if Command::new("nginx").arg("-v").output().is_err() {
        return Err("nginx is not installed (Debian: apt-get install -y nginx)".into());
    }
    let root = crate::workspace_root();
    crate::cargo(&["build", "--release", "-p", "gale-examples", "--example", "whoami"])?;
    let whoami = root.join("target/release/examples/whoami");

    let dir = TempDir::new("gale-nginx")?;
    for sub in ["logs", "temp"] {
        std::fs::create_dir(dir.0.join(sub)).map_err(|e| e.to_string())?;
    }
    let ports = [free_port()?, free_port()?];
    let mut backends = Vec::new();
    for port in ports {
        let child = Command::new(&whoami)
            .args(["--port", &port.to_string()])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start whoami: {e}"))?;
        let mut guard = Guard { name: "whoami", child };
        wait_for(port, &mut guard)?;
        backends.push(guard);
    }
    let pids: Vec<String> = backends.iter().map(|g| g.child.id().to_string()).collect();

    let front = free_port()?;
    let conf = dir.0.join("nginx.conf");
    std::fs::write(&conf, config(&dir.0, front, &ports)).map_err(|e| e.to_string())?;
    let nginx_args = |extra: &[&str]| {
        let mut cmd = Command::new("nginx");
        cmd.arg("-p").arg(&dir.0).arg("-c").arg(&conf).arg("-e").arg(dir.0.join("logs/error.log")).args(extra);
        cmd
    };
    let tested = nginx_args(&["-t", "-q"]).output().map_err(|e| format!("cannot run nginx -t: {e}"))?;
    if !tested.status.success() {
        return Err(format!("nginx rejects the configuration:\n{}", String::from_utf8_lossy(&tested.stderr)));
    }
    let child = nginx_args(&[]).stdout(Stdio::null()).spawn().map_err(|e| format!("cannot start nginx: {e}"))?;
    let mut nginx = Guard { name: "nginx", child };
    wait_for(front, &mut nginx).map_err(|e| format!("{e}\n{}", error_log_tail(&dir.0)))?;

    let result = checks(front, &pids);
    // nginx first, so that no request is in flight to the gale processes when they stop.
    let mut stops = vec![nginx.stop()];
    stops.extend(backends.iter_mut().map(Guard::stop));
    let stopped = stops.into_iter().collect::<Result<(), _>>();
    match (result, stopped) {
        (Ok(summary), Ok(())) => {
            println!("{summary}");
            println!("nginx check: OK (nginx and both gale processes stopped)");
            Ok(())
        }
        (Err(e), _) => Err(format!("{e}\nnginx error log:\n{}", error_log_tail(&dir.0))),
        (Ok(_), Err(e)) => Err(e),
    }
}

/// The checks, through nginx on `front`, of gale processes `pids`.
fn checks(front: u16, pids: &[String]) -> Result<String, String> {
    let mut served: BTreeMap<String, usize> = pids.iter().map(|p| (p.clone(), 0)).collect();
    for _ in 0..REQUESTS {
        let (status, body) = get(front, "/", "")?;
        if !status.starts_with("HTTP/1.1 200") {
            return Err(format!("through nginx: {status}\n{body}"));
        }
        let pid = json_field(&body, "pid").unwrap_or_default();
        *served.get_mut(pid).ok_or_else(|| format!("answered by pid {pid:?}, not one of {pids:?}: {body}"))? += 1;
        let who = (json_field(&body, "remote_ip"), json_field(&body, "protocol"));
        if who != (Some("127.0.0.1"), Some("http")) {
            return Err(format!("gale saw {who:?}, not the client's address and scheme (xheaders): {body}"));
        }
    }
    if let Some((pid, _)) = served.iter().find(|(_, n)| **n == 0) {
        return Err(format!("gale process {pid} served none of {REQUESTS} requests: {served:?}"));
    }

    // What a client claims is replaced by what nginx saw.
    let spoofing = "X-Real-IP: 203.0.113.7\r\nX-Forwarded-For: 203.0.113.9\r\nX-Forwarded-Proto: https\r\n";
    let (_, body) = get(front, "/", spoofing)?;
    let who = (json_field(&body, "remote_ip"), json_field(&body, "protocol"));
    if who != (Some("127.0.0.1"), Some("http")) {
        return Err(format!("a client's own X-Real-IP / X-Forwarded-* headers got through: gale saw {who:?}"));
    }

    let echo = websocket_echo(front, "through nginx")?;
    if echo != "through nginx" {
        return Err(format!("the websocket echoed {echo:?}"));
    }
    Ok(format!(
        "{REQUESTS} requests through nginx, by gale pid: {served:?}; remote_ip 127.0.0.1 (X-Real-IP; gale's peer \
         is {PROXY_SOURCE}), protocol http, spoofed headers overridden; websocket echo {echo:?} and close handshake"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_fields_are_read_quoted_or_not() {
        let body = r#"{"pid":4242,"remote_ip":"127.0.0.1","protocol":"http"}"#;
        assert_eq!(json_field(body, "pid"), Some("4242"));
        assert_eq!(json_field(body, "remote_ip"), Some("127.0.0.1"));
        assert_eq!(json_field(body, "protocol"), Some("http"));
        assert_eq!(json_field(body, "missing"), None);
    }

    #[test]
    fn config_proxies_to_every_backend_with_the_documented_headers() {
        let conf = config(Path::new("/tmp/x"), 8080, &[8001, 8002]);
        assert!(conf.contains("server 127.0.0.1:8001;\n        server 127.0.0.1:8002;"), "{conf}");
        assert!(conf.contains("listen 127.0.0.1:8080;"), "{conf}");
        assert!(conf.contains("pid /tmp/x/nginx.pid;"), "{conf}");
        let doc = std::fs::read_to_string(crate::workspace_root().join("docs/deploy-nginx.md")).unwrap();
        for line in [
            "proxy_http_version 1.1;",
            "proxy_set_header X-Real-IP $remote_addr;",
            "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
            "proxy_set_header X-Forwarded-Proto $scheme;",
            "proxy_set_header Upgrade $http_upgrade;",
            "proxy_set_header Connection $connection_upgrade;",
        ] {
            assert!(conf.contains(line), "{line} missing from the check's configuration");
            assert!(doc.contains(line), "{line} missing from docs/deploy-nginx.md");
        }
    }
}
