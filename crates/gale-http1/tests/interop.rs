//! The server against real clients: `curl` (skipped, loudly, when it is not installed) and Python's
//! `http.client` (found through `GALE_PYTHON`, else `python3`).

mod util;

use std::io::{Read, Write};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
use util::{TestServer, default_backend};

/// How long a client process may run before it is killed and the test fails.
const PROCESS_TIMEOUT: Duration = Duration::from_secs(20);

/// Runs `command` with `stdin` as its input, failing the test if it runs longer than [`PROCESS_TIMEOUT`].
fn run(mut command: Command, stdin: &[u8]) -> Output {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    let mut input = child.stdin.take().expect("piped stdin");
    let stdin = stdin.to_vec();
    let feeder = std::thread::spawn(move || {
        let _ = input.write_all(&stdin);
    });
    // Drain both pipes on threads so that a chatty child cannot block on a full pipe.
    let mut out = child.stdout.take().expect("piped stdout");
    let mut err = child.stderr.take().expect("piped stderr");
    let out_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let err_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let until = Instant::now() + PROCESS_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for child") {
            break status;
        }
        if Instant::now() > until {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{command:?} did not finish within {PROCESS_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    feeder.join().expect("stdin feeder");
    let stdout = out_reader.join().expect("stdout reader");
    let stderr = err_reader.join().expect("stderr reader");
    let output = Output { status, stdout, stderr };
    assert!(
        output.status.success(),
        "{command:?} failed ({}):\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

// ---------------------------------------------------------------------------------------------------------
// curl
// ---------------------------------------------------------------------------------------------------------

/// A `curl` command with a timeout and errors shown, or `None` (after saying so) when curl is missing.
fn curl() -> Option<Command> {
    match Command::new("curl").arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status() {
        Ok(status) if status.success() => {
            let mut c = Command::new("curl");
            c.args(["--silent", "--show-error", "--max-time", "10"]);
            Some(c)
        }
        _ => {
            eprintln!("!!! SKIPPED: `curl` is not on PATH; the curl interop tests did not run !!!");
            None
        }
    }
}

fn url(server: &TestServer, path: &str) -> String {
    format!("http://127.0.0.1:{}{path}", server.port)
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).expect("UTF-8 output")
}

#[test]
fn curl_get() {
    let Some(mut curl) = curl() else { return };
    let server = TestServer::new(default_backend());
    curl.arg(url(&server, "/"));
    assert_eq!(stdout(&run(curl, b"")), "Hello, World!");
}

#[test]
fn curl_post_with_a_body() {
    let Some(mut curl) = curl() else { return };
    let server = TestServer::new(default_backend());
    curl.args(["--data-binary", "name=gale&kind=server", &url(&server, "/echo")]);
    assert_eq!(stdout(&run(curl, b"")), "name=gale&kind=server");
}

#[test]
fn curl_chunked_upload() {
    let Some(mut curl) = curl() else { return };
    let server = TestServer::new(default_backend());
    let body = util::pattern(0, 300_000);
    curl.args(["-H", "Transfer-Encoding: chunked", "--data-binary", "@-", &url(&server, "/echo")]);
    let output = run(curl, &body);
    assert!(output.stdout == body, "echoed body differs ({} bytes back)", output.stdout.len());
}

#[test]
fn curl_waits_for_100_continue() {
    let Some(mut curl) = curl() else { return };
    let server = TestServer::new(default_backend());
    curl.args(["-v", "-H", "Expect: 100-continue", "--data-binary", "@-", &url(&server, "/echo")]);
    let output = run(curl, b"sent after the interim response");
    assert_eq!(stdout(&output), "sent after the interim response");
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(log.contains("< HTTP/1.1 100 Continue"), "{log}");
}

#[test]
fn curl_head() {
    let Some(mut curl) = curl() else { return };
    let server = TestServer::new(default_backend());
    curl.args(["-I", &url(&server, "/")]);
    let out = stdout(&run(curl, b""));
    assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
    assert!(out.contains("\r\nContent-Length: 13\r\n"), "{out}");
    assert!(out.ends_with("\r\n\r\n"), "no body after the head: {out:?}");
}

#[test]
fn curl_reuses_one_connection_for_two_urls() {
    let Some(mut curl) = curl() else { return };
    let server = TestServer::new(default_backend());
    curl.args(["-v", &url(&server, "/first"), &url(&server, "/second")]);
    let output = run(curl, b"");
    assert_eq!(stdout(&output), "/first/second");
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(log.contains("Re-using existing connection") || log.contains("left intact"), "{log}");
    assert_eq!(log.matches("Connected to").count(), 1, "curl connected twice:\n{log}");
}

#[test]
fn curl_http10() {
    let Some(mut curl) = curl() else { return };
    let server = TestServer::new(default_backend());
    curl.args(["--http1.0", "-i", &url(&server, "/")]);
    let out = stdout(&run(curl, b""));
    assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
    assert!(out.contains("\r\nConnection: close\r\n"), "{out}");
    assert!(out.ends_with("\r\n\r\nHello, World!"), "{out}");

    // A response of unknown length is delimited by closing the connection.
    let mut curl = self::curl().expect("curl was found above");
    curl.args(["--http1.0", "-i", &url(&server, "/chunked")]);
    let out = stdout(&run(curl, b""));
    assert!(!out.contains("Transfer-Encoding"), "{out}");
    assert!(out.ends_with("\r\n\r\nchunk-1;chunk-2;chunk-3"), "{out}");
}

#[test]
fn curl_reads_a_chunked_response() {
    let Some(mut curl) = curl() else { return };
    let server = TestServer::new(default_backend());
    curl.args(["-i", &url(&server, "/big/1000000")]);
    let output = run(curl, b"");
    let split = output.stdout.windows(4).position(|w| w == b"\r\n\r\n").expect("a head") + 4;
    let head = String::from_utf8_lossy(&output.stdout[..split]);
    assert!(head.contains("Transfer-Encoding: chunked"), "{head}");
    assert!(output.stdout[split..] == util::pattern(0, 1_000_000), "body differs");
}

// ---------------------------------------------------------------------------------------------------------
// Python's http.client
// ---------------------------------------------------------------------------------------------------------

/// The Python interpreter: `GALE_PYTHON`, else `python3`.
fn python() -> Command {
    Command::new(std::env::var_os("GALE_PYTHON").unwrap_or_else(|| "python3".into()))
}

/// Runs `script` with the server's port as `PORT` and returns what it printed.
fn run_python(server: &TestServer, script: &str) -> String {
    let mut python = python();
    python.args(["-c", script, &server.port.to_string()]);
    stdout(&run(python, b""))
}

const PY_PRELUDE: &str = r#"
import http.client, sys
PORT = int(sys.argv[1])
conn = http.client.HTTPConnection("127.0.0.1", PORT, timeout=5)
def fetch(method, path, body=None, headers={}, **kw):
    conn.request(method, path, body=body, headers=headers, **kw)
    r = conn.getresponse()
    return r, r.read()
"#;

#[test]
fn python_get_sequence_on_one_connection() {
    let server = TestServer::new(default_backend());
    let script = format!(
        "{PY_PRELUDE}
first_socket = None
for path in ['/', '/py/1', '/py/2?x=y']:
    r, body = fetch('GET', path)
    first_socket = first_socket or conn.sock
    print(r.status, r.version, body.decode(), conn.sock is first_socket)
"
    );
    let out = run_python(&server, &script);
    assert_eq!(out, "200 11 Hello, World! True\n200 11 /py/1 True\n200 11 /py/2?x=y True\n");
}

#[test]
fn python_post() {
    let server = TestServer::new(default_backend());
    let script = format!(
        "{PY_PRELUDE}
r, body = fetch('POST', '/echo', body=b'posted \\x00 bytes' * 1000, headers={{'Content-Type': 'application/octet-stream'}})
print(r.status, body == b'posted \\x00 bytes' * 1000)
r, body = fetch('POST', '/echo', body=iter([b'chunked ', b'upload']), encode_chunked=True)
print(r.status, body.decode())
r, body = fetch('POST', '/inspect', body=iter([b'abc']), encode_chunked=True)
print([l for l in body.decode().splitlines() if l.lower().startswith('header=transfer-encoding')])
"
    );
    let out = run_python(&server, &script);
    assert_eq!(out, "200 True\n200 chunked upload\n['header=Transfer-Encoding: chunked']\n");
}

#[test]
fn python_reads_a_chunked_response() {
    let server = TestServer::new(default_backend());
    let script = format!(
        "{PY_PRELUDE}
r, body = fetch('GET', '/chunked')
print(r.status, r.getheader('Transfer-Encoding'), r.getheader('Content-Length'), body.decode())
r, body = fetch('GET', '/big/500000')
print(len(body), body == bytes(i % 251 for i in range(500000)))
"
    );
    let out = run_python(&server, &script);
    assert_eq!(out, "200 chunked None chunk-1;chunk-2;chunk-3\n500000 True\n");
}

#[test]
fn python_head() {
    let server = TestServer::new(default_backend());
    let script = format!(
        "{PY_PRELUDE}
r, body = fetch('HEAD', '/')
print(r.status, r.getheader('Content-Length'), body)
r, body = fetch('GET', '/')
print(r.status, body.decode())
"
    );
    let out = run_python(&server, &script);
    assert_eq!(out, "200 13 b''\n200 Hello, World!\n");
}
