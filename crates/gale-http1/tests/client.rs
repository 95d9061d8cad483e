//! End-to-end tests of the HTTP client over real sockets on 127.0.0.1.
//!
//! Most run against our own [`HttpServer`] on the same loop as the client, with a service that has one route
//! per behaviour under test and counts what it sees. Raw TCP servers script what a well-behaved server would
//! not send, and Python's `http.server` stands in for a server that is not ours. Every test runs under an
//! overall timeout, so a bug fails it instead of hanging it.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use flate2::Compression;
use flate2::write::GzEncoder;
use gale_http1::ioloop::{sleep, timeout};
use gale_http1::iostream::{IOStream, TcpServer};
use gale_http1::{
    BodyReader, ClientError, ClientOptions, ClientRequest, ClientResponse, HeaderMap, HttpClient, HttpServer,
    HttpService, IOLoop, Request, Response, ResponseWriter, ServerOptions, TimeoutPhase, Version,
};

/// How long any one test may run.
const TEST_TIMEOUT: Duration = Duration::from_secs(20);

/// Runs `test` on `io_loop`, failing if it takes longer than [`TEST_TIMEOUT`].
fn run<T: 'static>(io_loop: &IOLoop, test: impl Future<Output = T> + 'static) -> T {
    io_loop.run_sync(async move { timeout(TEST_TIMEOUT, test).await.expect("the test did not finish in time") })
}

/// Waits on the loop until `condition` holds (the test's overall timeout bounds it).
async fn until(condition: impl Fn() -> bool) {
    while !condition() {
        sleep(Duration::from_millis(2)).await;
    }
}

fn gzip(data: &[u8]) -> Bytes {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap().into()
}

// ---------------------------------------------------------------------------------------------------------
// Our server, with a route per behaviour.
// ---------------------------------------------------------------------------------------------------------

/// What the test service saw, and data it serves.
#[derive(Default)]
struct Seen {
    /// Requests per path.
    hits: RefCell<HashMap<String, usize>>,
    /// The client port of every request, in order: equal ports mean a reused connection.
    ports: RefCell<Vec<u16>>,
    in_flight: Cell<usize>,
    max_in_flight: Cell<usize>,
    /// `/slow` requests wait until this opens.
    gate_open: Cell<bool>,
    /// Pieces the test's streaming callback received (the `/stream` route waits on it).
    delivered: Rc<Cell<usize>>,
}

impl Seen {
    fn hits(&self, path: &str) -> usize {
        self.hits.borrow().get(path).copied().unwrap_or(0)
    }

    fn distinct_ports(&self) -> usize {
        let mut ports = self.ports.borrow().clone();
        ports.sort_unstable();
        ports.dedup();
        ports.len()
    }
}

/// The text `/gzip` serves compressed.
const GZIP_TEXT: &str = "the quick brown fox jumps over the lazy dog; ";

/// Routes by path (see `call`); anything unknown is echoed.
struct TestService {
    seen: Rc<Seen>,
    gzip_body: Bytes,
    /// 16 MiB of zeros, gzipped: about 16 KiB on the wire.
    bomb: Bytes,
}

fn redirect(status: u16, location: impl Into<String>) -> Response {
    Response::text("redirecting").status(status).header("Location", location.into())
}

/// Echoes the request: `METHOD target`, a `name: value` line per header (names lowercase), an empty line,
/// the body.
fn echo(req: &Request) -> Response {
    let mut text = format!("{} {}\n", req.method(), req.target());
    for (name, value) in req.headers() {
        let name = String::from_utf8_lossy(name).to_ascii_lowercase();
        text.push_str(&format!("{name}: {}\n", String::from_utf8_lossy(value)));
    }
    text.push('\n');
    text.push_str(&String::from_utf8_lossy(req.body()));
    Response::text(text)
}

impl HttpService for TestService {
    async fn call(&self, req: Request, _body: Option<BodyReader>, writer: ResponseWriter) {
        let seen = &self.seen;
        seen.ports.borrow_mut().push(req.remote_addr().port());
        *seen.hits.borrow_mut().entry(req.path().to_owned()).or_default() += 1;
        let path = req.path().to_owned();
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let response = match segments.as_slice() {
            ["status", code] => Response::text("not here").status(code.parse().unwrap()),
            ["r", code] => redirect(code.parse().unwrap(), "/echo"),
            ["dir", "relative"] => redirect(302, "../echo?from=relative"),
            ["absolute"] => redirect(302, format!("http://{}/echo?from=absolute", req.host().unwrap())),
            ["chain", "0"] => echo(&req),
            ["chain", n] => redirect(302, format!("/chain/{}", n.parse::<u32>().unwrap() - 1)),
            ["loop"] => redirect(302, "/loop"),
            ["to"] => redirect(302, req.query().unwrap().to_owned()),
            ["close"] => Response::text("closing").header("Connection", "close"),
            ["sleep", ms] => {
                sleep(Duration::from_millis(ms.parse().unwrap())).await;
                Response::text("slept")
            }
            ["slow"] => {
                seen.in_flight.set(seen.in_flight.get() + 1);
                seen.max_in_flight.set(seen.max_in_flight.get().max(seen.in_flight.get()));
                until(|| seen.gate_open.get()).await;
                seen.in_flight.set(seen.in_flight.get() - 1);
                Response::text("slow")
            }
            ["big", n] => Response::text(vec![b'x'; n.parse().unwrap()]),
            ["gzip"] => Response::text(self.gzip_body.clone()).header("Content-Encoding", "gzip"),
            ["bomb"] => {
                Response::with_body("application/octet-stream", self.bomb.clone()).header("Content-Encoding", "gzip")
            }
            ["corrupt-gzip"] => Response::text("definitely not gzip").header("Content-Encoding", "gzip"),
            ["chunked"] => {
                writer.write_head(200, None, &HeaderMap::new(), None).unwrap();
                for piece in ["one ", "two ", "three"] {
                    writer.write(piece).unwrap();
                    writer.flush().await.unwrap();
                }
                writer.finish().unwrap();
                return;
            }
            ["chunked-big", pieces] => {
                writer.write_head(200, None, &HeaderMap::new(), None).unwrap();
                for _ in 0..pieces.parse::<usize>().unwrap() {
                    writer.write(vec![b'y'; 1000]).unwrap();
                    writer.flush().await.unwrap();
                }
                writer.finish().unwrap();
                return;
            }
            ["stream"] => {
                // The second piece is only sent once the client handed the first to its callback.
                writer.write_head(200, None, &HeaderMap::new(), None).unwrap();
                writer.write("first,").unwrap();
                writer.flush().await.unwrap();
                until(|| seen.delivered.get() >= 1).await;
                writer.write("second").unwrap();
                writer.finish().unwrap();
                return;
            }
            _ => echo(&req),
        };
        writer.send(&response).unwrap();
    }
}

struct Fixture {
    io_loop: IOLoop,
    server: HttpServer<TestService>,
    seen: Rc<Seen>,
    base: String,
}

impl Fixture {
    fn new() -> Fixture {
        Fixture::with_options(ServerOptions::default())
    }

    fn with_options(options: ServerOptions) -> Fixture {
        let io_loop = IOLoop::new().unwrap();
        let seen = Rc::new(Seen::default());
        let service = TestService {
            seen: seen.clone(),
            gzip_body: gzip(GZIP_TEXT.repeat(100).as_bytes()),
            bomb: gzip(&vec![0; 16 * 1024 * 1024]),
        };
        let server = HttpServer::new(&io_loop, service, options).unwrap();
        server.listen(0, Some("127.0.0.1")).unwrap();
        let base = format!("http://127.0.0.1:{}", server.local_addrs()[0].port());
        Fixture { io_loop, server, seen, base }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

/// A request's echo, parsed.
#[derive(Debug)]
struct Echo {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: String,
}

impl Echo {
    fn of(response: &ClientResponse) -> Echo {
        let text = std::str::from_utf8(response.body()).unwrap();
        let (head, body) = text.split_once("\n\n").unwrap();
        let mut lines = head.lines();
        let (method, target) = lines.next().unwrap().split_once(' ').unwrap();
        let headers = lines
            .map(|l| {
                let (n, v) = l.split_once(": ").unwrap();
                (n.to_owned(), v.to_owned())
            })
            .collect();
        Echo { method: method.to_owned(), target: target.to_owned(), headers, body: body.to_owned() }
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

// ---------------------------------------------------------------------------------------------------------
// Requests and responses.
// ---------------------------------------------------------------------------------------------------------

#[test]
fn get_sends_host_user_agent_and_query() {
    let fx = Fixture::new();
    let (client, url) = (HttpClient::new(), fx.url("/echo?a=1&b=two%20words"));
    let port = fx.server.local_addrs()[0].port();
    let response = run(&fx.io_loop, async move { client.fetch(url).await.unwrap() });
    assert_eq!(response.status(), 200);
    assert_eq!(response.reason(), "OK");
    assert_eq!(response.version(), Version::Http11);
    assert_eq!(response.headers().get("content-type"), Some("text/plain"));
    assert!(response.effective_url().ends_with("/echo?a=1&b=two%20words"));
    let echo = Echo::of(&response);
    assert_eq!((echo.method.as_str(), echo.target.as_str()), ("GET", "/echo?a=1&b=two%20words"));
    assert_eq!(echo.header("host"), Some(format!("127.0.0.1:{port}").as_str()));
    assert_eq!(echo.header("user-agent"), Some(gale_http1::client::DEFAULT_USER_AGENT));
    assert_eq!(echo.header("accept-encoding"), Some("gzip"));
    assert_eq!(echo.header("connection"), None, "keep-alive is HTTP/1.1's default");
    assert_eq!(echo.header("content-length"), None, "a GET without body announces none");
}

#[test]
fn post_and_put_send_their_body_and_headers() {
    let fx = Fixture::new();
    let (client, url) = (HttpClient::new(), fx.url("/echo"));
    let (post, put, empty) = run(&fx.io_loop, async move {
        let post = client
            .fetch(ClientRequest::post(&url).header("Content-Type", "application/json").body(r#"{"a": 1}"#))
            .await
            .unwrap();
        let put = client
            .fetch(ClientRequest::put(&url).header("User-Agent", "custom/1").body(vec![b'z'; 100_000]))
            .await
            .unwrap();
        let empty = client.fetch(ClientRequest::post(&url)).await.unwrap();
        (post, put, empty)
    });
    let post = Echo::of(&post);
    assert_eq!(post.method, "POST");
    assert_eq!(post.body, r#"{"a": 1}"#);
    assert_eq!(post.header("content-type"), Some("application/json"));
    assert_eq!(post.header("content-length"), Some("8"));
    let put = Echo::of(&put);
    assert_eq!(put.method, "PUT");
    assert_eq!(put.body.len(), 100_000);
    assert_eq!(put.header("user-agent"), Some("custom/1"), "the request's own User-Agent wins");
    let empty = Echo::of(&empty);
    assert_eq!(empty.header("content-length"), Some("0"), "an empty POST says so");
}

#[test]
fn head_has_headers_and_no_body_and_keeps_the_connection() {
    let fx = Fixture::new();
    let (client, url) = (HttpClient::new(), fx.url("/big/5000"));
    let (head, get) = run(&fx.io_loop, async move {
        let head = client.fetch(ClientRequest::head(&url)).await.unwrap();
        let get = client.fetch(&url).await.unwrap();
        (head, get)
    });
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers().get("content-length"), Some("5000"));
    assert!(head.body().is_empty());
    assert_eq!(get.body().len(), 5000);
    assert_eq!(fx.seen.ports.borrow().len(), 2);
    assert_eq!(fx.seen.distinct_ports(), 1, "the GET went over the connection of the HEAD");
}

#[test]
fn chunked_responses_are_reassembled() {
    let fx = Fixture::new();
    let (client, url) = (HttpClient::new(), fx.url("/chunked"));
    let response = run(&fx.io_loop, async move { client.fetch(url).await.unwrap() });
    assert_eq!(response.headers().get("transfer-encoding"), Some("chunked"));
    assert_eq!(&response.body()[..], b"one two three");
}

#[test]
fn statuses_outside_2xx_are_errors_unless_told_otherwise() {
    let fx = Fixture::new();
    let client = HttpClient::new();
    let lenient = HttpClient::with_options(ClientOptions { raise_error: false, ..ClientOptions::default() });
    let url = fx.url("/status/404");
    let (strict, per_request, lenient) = run(&fx.io_loop, async move {
        let strict = client.fetch(&url).await.unwrap_err();
        let per_request = client.fetch(ClientRequest::get(&url).raise_error(false)).await.unwrap();
        let lenient = lenient.fetch(&url).await.unwrap();
        (strict, per_request, lenient)
    });
    assert!(strict.is_status());
    assert_eq!(strict.status(), Some(404));
    assert_eq!(strict.to_string(), "HTTP 404: Not Found");
    assert_eq!(&strict.response().unwrap().body()[..], b"not here");
    assert_eq!(per_request.status(), 404);
    assert!(!per_request.is_success());
    assert_eq!(per_request.error_for_status().unwrap_err().status(), Some(404));
    assert_eq!(lenient.status(), 404);
}

#[test]
fn bad_requests_fail_before_sending() {
    let fx = Fixture::new();
    let client = HttpClient::new();
    let url = fx.url("/echo");
    let (https, relative, injected) = run(&fx.io_loop, async move {
        let https = client.fetch("https://127.0.0.1/").await.unwrap_err();
        let relative = client.fetch("/just/a/path").await.unwrap_err();
        let injected = client.fetch(ClientRequest::get(url).header("X-Evil", "a\r\nX-Injected: 1")).await.unwrap_err();
        (https, relative, injected)
    });
    assert!(matches!(&https, ClientError::UnsupportedScheme(s) if s == "https"));
    assert!(https.to_string().contains("unsupported scheme"), "{https}");
    assert!(https.is_request());
    assert!(matches!(relative, ClientError::InvalidUrl(_)));
    assert!(matches!(injected, ClientError::InvalidRequest(_)));
    assert!(fx.seen.ports.borrow().is_empty(), "nothing reached the server");
}

// ---------------------------------------------------------------------------------------------------------
// Redirects.
// ---------------------------------------------------------------------------------------------------------

#[test]
fn relative_absolute_and_chained_redirects_are_followed() {
    let fx = Fixture::new();
    let client = HttpClient::new();
    let urls = [fx.url("/dir/relative"), fx.url("/absolute"), fx.url("/chain/3")];
    let responses = run(&fx.io_loop, async move {
        let mut responses = Vec::new();
        for url in urls {
            responses.push(client.fetch(url).await.unwrap());
        }
        responses
    });
    assert_eq!(Echo::of(&responses[0]).target, "/echo?from=relative");
    assert_eq!(responses[0].effective_url(), fx.url("/echo?from=relative"));
    assert_eq!(Echo::of(&responses[1]).target, "/echo?from=absolute");
    assert_eq!(Echo::of(&responses[2]).target, "/chain/0");
    assert_eq!(responses[2].effective_url(), fx.url("/chain/0"));
    assert_eq!(fx.seen.distinct_ports(), 1, "redirects to the same origin reuse the connection");
}

#[test]
fn redirects_stop_at_max_redirects() {
    let fx = Fixture::new();
    let client = HttpClient::new();
    let url = fx.url("/loop");
    let (too_many, not_followed, lenient) = run(&fx.io_loop, async move {
        let too_many = client.fetch(ClientRequest::get(&url).max_redirects(3)).await.unwrap_err();
        let not_followed = client.fetch(ClientRequest::get(&url).follow_redirects(false)).await.unwrap_err();
        let lenient = client.fetch(ClientRequest::get(&url).follow_redirects(false).raise_error(false)).await;
        (too_many, not_followed, lenient.unwrap())
    });
    assert!(too_many.is_redirect(), "{too_many}");
    assert_eq!(too_many.status(), Some(302));
    assert_eq!(too_many.response().unwrap().headers().get("location"), Some("/loop"));
    assert_eq!(fx.seen.hits("/loop"), 4 + 1 + 1, "the first request, 3 redirects followed, then two more fetches");
    assert!(not_followed.is_status());
    assert_eq!(not_followed.status(), Some(302));
    assert_eq!(lenient.status(), 302);
    assert_eq!(lenient.headers().get("location"), Some("/loop"));
}

#[test]
fn see_other_and_moved_turn_post_into_get() {
    let fx = Fixture::new();
    let client = HttpClient::new();
    let urls = [fx.url("/r/303"), fx.url("/r/302"), fx.url("/r/301")];
    let echoes = run(&fx.io_loop, async move {
        let mut echoes = Vec::new();
        for url in urls {
            let request = ClientRequest::post(url).header("Content-Type", "text/plain").body("form data");
            echoes.push(Echo::of(&client.fetch(request).await.unwrap()));
        }
        echoes
    });
    for echo in echoes {
        assert_eq!(echo.method, "GET", "{echo:?}");
        assert_eq!(echo.body, "");
        assert_eq!(echo.header("content-type"), None);
        assert_eq!(echo.header("content-length"), None);
    }
}

#[test]
fn temporary_and_permanent_redirects_keep_method_and_body() {
    let fx = Fixture::new();
    let client = HttpClient::new();
    let urls = [fx.url("/r/307"), fx.url("/r/308")];
    let echoes = run(&fx.io_loop, async move {
        let mut echoes = Vec::new();
        for url in urls {
            let request = ClientRequest::post(url).header("Content-Type", "text/plain").body("form data");
            echoes.push(Echo::of(&client.fetch(request).await.unwrap()));
        }
        echoes
    });
    for echo in echoes {
        assert_eq!((echo.method.as_str(), echo.body.as_str()), ("POST", "form data"), "{echo:?}");
        assert_eq!(echo.header("content-type"), Some("text/plain"));
    }
}

#[test]
fn cross_origin_redirects_drop_authorization_and_cookie() {
    let origin = Fixture::new();
    // The other origin differs by port only; it runs on the same loop.
    let other = HttpServer::new(
        &origin.io_loop,
        TestService { seen: Rc::new(Seen::default()), gzip_body: Bytes::new(), bomb: Bytes::new() },
        ServerOptions::default(),
    )
    .unwrap();
    other.listen(0, Some("127.0.0.1")).unwrap();
    let other_echo = format!("http://127.0.0.1:{}/echo", other.local_addrs()[0].port());
    let client = HttpClient::new();
    let with_credentials = |url: String| {
        ClientRequest::get(url)
            .header("Authorization", "Bearer secret")
            .header("Cookie", "session=1")
            .header("X-Custom", "kept")
    };
    let cross = with_credentials(origin.url(&format!("/to?{other_echo}")));
    let same = with_credentials(origin.url("/r/302"));
    let (cross, same) =
        run(&origin.io_loop, async move { (client.fetch(cross).await.unwrap(), client.fetch(same).await.unwrap()) });
    assert_eq!(cross.effective_url(), other_echo);
    let cross = Echo::of(&cross);
    assert_eq!(cross.header("authorization"), None);
    assert_eq!(cross.header("cookie"), None);
    assert_eq!(cross.header("x-custom"), Some("kept"));
    let same = Echo::of(&same);
    assert_eq!(same.header("authorization"), Some("Bearer secret"), "same-origin redirects keep credentials");
    assert_eq!(same.header("cookie"), Some("session=1"));
}

// ---------------------------------------------------------------------------------------------------------
// The connection pool.
// ---------------------------------------------------------------------------------------------------------

#[test]
fn keep_alive_connections_are_reused() {
    let fx = Fixture::new();
    let client = HttpClient::new();
    let (c, url) = (client.clone(), fx.url("/echo"));
    let idle = run(&fx.io_loop, async move {
        for _ in 0..3 {
            c.fetch(&url).await.unwrap();
        }
        c.idle_connections()
    });
    assert_eq!(fx.seen.ports.borrow().len(), 3);
    assert_eq!(fx.seen.distinct_ports(), 1, "one connection carried the three requests");
    assert_eq!(idle, 1);
    assert_eq!(fx.server.open_connections(), 1);
    client.close();
    assert_eq!(client.idle_connections(), 0);
}

#[test]
fn without_pooling_each_request_says_connection_close() {
    let fx = Fixture::new();
    let client = HttpClient::with_options(ClientOptions { max_idle_per_host: 0, ..ClientOptions::default() });
    let url = fx.url("/echo");
    let (first, idle) = run(&fx.io_loop, async move {
        let first = client.fetch(&url).await.unwrap();
        client.fetch(&url).await.unwrap();
        (first, client.idle_connections())
    });
    assert_eq!(Echo::of(&first).header("connection"), Some("close"));
    assert_eq!(fx.seen.distinct_ports(), 2);
    assert_eq!(idle, 0);
}

#[test]
fn connection_close_responses_are_not_pooled() {
    let fx = Fixture::new();
    let client = HttpClient::new();
    let (close, echo) = (fx.url("/close"), fx.url("/echo"));
    let idle_after_close = run(&fx.io_loop, async move {
        assert_eq!(&client.fetch(&close).await.unwrap().body()[..], b"closing");
        let idle = client.idle_connections();
        client.fetch(&echo).await.unwrap();
        idle
    });
    assert_eq!(idle_after_close, 0);
    assert_eq!(fx.seen.distinct_ports(), 2);
}

#[test]
fn a_pooled_connection_the_server_closed_is_replaced() {
    let fx = Fixture::with_options(ServerOptions {
        idle_connection_timeout: Some(Duration::from_millis(100)),
        ..ServerOptions::default()
    });
    let client = HttpClient::new();
    let url = fx.url("/echo");
    let server = Rc::new(fx.server);
    let s = server.clone();
    run(&fx.io_loop, async move {
        client.fetch(&url).await.unwrap();
        assert_eq!(client.idle_connections(), 1);
        // The server drops the idle connection after 100 ms.
        until(|| s.open_connections() == 0).await;
        // Loopback delivers the FIN at once, unless a loaded machine defers it a little.
        sleep(Duration::from_millis(20)).await;
        // A POST is not retried once sent: it succeeds only if the dead connection was seen before sending.
        let response = client.fetch(ClientRequest::post(&url).body("after the close")).await.unwrap();
        assert_eq!(Echo::of(&response).body, "after the close");
    });
    assert_eq!(fx.seen.ports.borrow().len(), 2);
    assert_eq!(fx.seen.distinct_ports(), 2, "the second request went over a new connection");
}

#[test]
fn idle_connections_expire_after_idle_timeout() {
    let fx = Fixture::new();
    let client = HttpClient::with_options(ClientOptions {
        idle_timeout: Some(Duration::from_millis(30)),
        ..ClientOptions::default()
    });
    let url = fx.url("/echo");
    let server = Rc::new(fx.server);
    let s = server.clone();
    let started = Instant::now();
    run(&fx.io_loop, async move {
        client.fetch(&url).await.unwrap();
        assert_eq!(client.idle_connections(), 1);
        until(|| client.idle_connections() == 0).await;
        // The client closed it: the server sees the connection go.
        until(|| s.open_connections() == 0).await;
    });
    assert!(started.elapsed() >= Duration::from_millis(30));
}

#[test]
fn max_clients_queues_fetches() {
    let fx = Fixture::new();
    let client = HttpClient::with_options(ClientOptions { max_clients: Some(1), ..ClientOptions::default() });
    let url = fx.url("/slow");
    let (io_loop, seen) = (fx.io_loop.clone(), fx.seen.clone());
    let statuses = run(&fx.io_loop, async move {
        let tasks: Vec<_> = (0..3)
            .map(|_| {
                let (client, url) = (client.clone(), url.clone());
                io_loop.spawn(async move { client.fetch(url).await.map(|r| r.status()) })
            })
            .collect();
        // The first request waits at the server's gate; the other two wait for the client's only slot.
        until(|| seen.hits("/slow") == 1).await;
        assert_eq!(client.queued(), 2);
        seen.gate_open.set(true);
        let mut statuses = Vec::new();
        for task in tasks {
            statuses.push(task.await.unwrap().unwrap());
        }
        statuses
    });
    assert_eq!(statuses, [200, 200, 200]);
    assert_eq!(fx.seen.max_in_flight.get(), 1, "never more than one request at a time");
    assert_eq!(fx.seen.distinct_ports(), 1, "queued fetches took the connection over in turn");
}

// ---------------------------------------------------------------------------------------------------------
// Timeouts and failures.
// ---------------------------------------------------------------------------------------------------------

#[test]
fn a_slow_response_times_out() {
    let fx = Fixture::new();
    let client = HttpClient::new();
    let url = fx.url("/sleep/5000");
    let started = Instant::now();
    let error = run(&fx.io_loop, async move {
        client.fetch(ClientRequest::get(url).request_timeout(Some(Duration::from_millis(100)))).await.unwrap_err()
    });
    assert!(error.is_timeout(), "{error}");
    assert!(matches!(error, ClientError::Timeout(TimeoutPhase::Request)));
    assert_eq!(error.to_string(), "timeout during request");
    assert!(started.elapsed() >= Duration::from_millis(100));
}

#[test]
fn a_fetch_waiting_in_the_queue_times_out() {
    let fx = Fixture::new();
    let client = HttpClient::with_options(ClientOptions { max_clients: Some(1), ..ClientOptions::default() });
    let (slow, echo) = (fx.url("/slow"), fx.url("/echo"));
    let (io_loop, seen) = (fx.io_loop.clone(), fx.seen.clone());
    let (error, occupying) = run(&fx.io_loop, async move {
        let c = client.clone();
        let occupying = io_loop.spawn(async move { c.fetch(slow).await.map(|r| r.status()) });
        until(|| seen.hits("/slow") == 1).await;
        let request = ClientRequest::get(echo).request_timeout(Some(Duration::from_millis(50)));
        let error = client.fetch(request).await.unwrap_err();
        seen.gate_open.set(true);
        (error, occupying.await.unwrap())
    });
    assert!(matches!(error, ClientError::Timeout(TimeoutPhase::Queue)), "{error}");
    assert_eq!(error.to_string(), "timeout in request queue");
    assert_eq!(occupying.unwrap(), 200);
    assert_eq!(fx.seen.hits("/echo"), 0);
}

#[test]
fn a_refused_connection_is_a_connect_error() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let io_loop = IOLoop::new().unwrap();
    let client = HttpClient::new();
    let error = run(&io_loop, async move { client.fetch(format!("http://127.0.0.1:{port}/")).await.unwrap_err() });
    assert!(error.is_connect(), "{error}");
    assert!(matches!(&error, ClientError::Connect(e) if e.kind() == std::io::ErrorKind::ConnectionRefused));
}

#[test]
fn bodies_larger_than_max_body_size_are_refused() {
    let fx = Fixture::new();
    let client = HttpClient::with_options(ClientOptions { max_body_size: 4000, ..ClientOptions::default() });
    let (by_length, chunked, fits) = (fx.url("/big/5000"), fx.url("/chunked-big/10"), fx.url("/big/4000"));
    let (by_length, chunked, fits, idle) = run(&fx.io_loop, async move {
        let by_length = client.fetch(by_length).await.unwrap_err();
        let chunked = client.fetch(chunked).await.unwrap_err();
        let fits = client.fetch(fits).await.unwrap();
        (by_length, chunked, fits, client.idle_connections())
    });
    assert!(matches!(by_length, ClientError::BodyTooLarge { limit: 4000 }), "{by_length}");
    assert!(chunked.is_body_too_large(), "{chunked}");
    assert_eq!(fits.body().len(), 4000);
    assert_eq!(idle, 1, "only the connection whose body was read whole is kept");
}

// ---------------------------------------------------------------------------------------------------------
// Compression and streaming.
// ---------------------------------------------------------------------------------------------------------

#[test]
fn gzip_bodies_are_decompressed() {
    let fx = Fixture::new();
    let client = HttpClient::new();
    let url = fx.url("/gzip");
    let (decoded, raw) = run(&fx.io_loop, async move {
        let decoded = client.fetch(&url).await.unwrap();
        let raw = client.fetch(ClientRequest::get(&url).decompress_response(false)).await.unwrap();
        (decoded, raw)
    });
    assert_eq!(decoded.body(), GZIP_TEXT.repeat(100).as_bytes());
    assert_eq!(decoded.headers().get("content-encoding"), None);
    assert_eq!(decoded.headers().get("content-length"), None);
    assert_eq!(decoded.headers().get("x-consumed-content-encoding"), Some("gzip"));
    assert_eq!(raw.headers().get("content-encoding"), Some("gzip"));
    assert_eq!(raw.body(), &gzip(GZIP_TEXT.repeat(100).as_bytes()));
}

#[test]
fn without_decompression_no_gzip_is_asked_for() {
    let fx = Fixture::new();
    let client = HttpClient::with_options(ClientOptions { decompress_response: false, ..ClientOptions::default() });
    let url = fx.url("/echo");
    let response = run(&fx.io_loop, async move { client.fetch(url).await.unwrap() });
    assert_eq!(Echo::of(&response).header("accept-encoding"), None);
}

#[test]
fn a_gzip_bomb_is_bounded_by_max_body_size() {
    let fx = Fixture::new();
    let client = HttpClient::with_options(ClientOptions { max_body_size: 1024 * 1024, ..ClientOptions::default() });
    let url = fx.url("/bomb");
    let error = run(&fx.io_loop, async move { client.fetch(url).await.unwrap_err() });
    assert!(matches!(error, ClientError::BodyTooLarge { limit: 1_048_576 }), "{error}");
}

#[test]
fn corrupt_gzip_is_a_decode_error() {
    let fx = Fixture::new();
    let client = HttpClient::new();
    let url = fx.url("/corrupt-gzip");
    let error = run(&fx.io_loop, async move { client.fetch(url).await.unwrap_err() });
    assert!(error.is_decode(), "{error}");
}

#[test]
fn the_streaming_callback_gets_the_body_as_it_arrives() {
    let fx = Fixture::new();
    let client = HttpClient::new();
    let url = fx.url("/stream");
    let pieces: Rc<RefCell<Vec<Bytes>>> = Rc::default();
    let (p, delivered) = (pieces.clone(), fx.seen.delivered.clone());
    let response = run(&fx.io_loop, async move {
        let request = ClientRequest::get(url).streaming_callback(move |piece| {
            p.borrow_mut().push(piece);
            delivered.set(delivered.get() + 1);
        });
        client.fetch(request).await.unwrap()
    });
    assert!(response.body().is_empty(), "a streamed body is not collected too");
    let pieces = pieces.borrow();
    assert!(pieces.len() >= 2, "the first piece was handed over before the second was sent");
    assert_eq!(pieces.concat(), b"first,second");
}

#[test]
fn streamed_gzip_is_decompressed_and_redirect_bodies_are_not_streamed() {
    let fx = Fixture::new();
    let client = HttpClient::new();
    let url = fx.url(&format!("/to?{}", fx.url("/gzip")));
    let received: Rc<RefCell<Vec<u8>>> = Rc::default();
    let r = received.clone();
    run(&fx.io_loop, async move {
        let request = ClientRequest::get(url).streaming_callback(move |piece| r.borrow_mut().extend_from_slice(&piece));
        client.fetch(request).await.unwrap()
    });
    assert_eq!(*received.borrow(), GZIP_TEXT.repeat(100).as_bytes(), "no `redirecting` from the 302");
}

// ---------------------------------------------------------------------------------------------------------
// Raw servers: what ours would never send.
// ---------------------------------------------------------------------------------------------------------

/// Starts a TCP server on the loop that hands each connection, with its number (from 1), to `handler`.
fn raw_server<F, Fut>(io_loop: &IOLoop, handler: F) -> (impl Drop, u16, Rc<Cell<usize>>)
where
    F: Fn(IOStream, usize) -> Fut + 'static,
    Fut: Future<Output = ()> + 'static,
{
    let accepted = Rc::new(Cell::new(0));
    let count = accepted.clone();
    let server = TcpServer::new(io_loop, move |stream: IOStream, _peer: SocketAddr| {
        count.set(count.get() + 1);
        handler(stream, count.get())
    });
    server.listen(0, Some("127.0.0.1")).unwrap();
    let port = server.local_addrs()[0].port();
    (server, port, accepted)
}

#[test]
fn close_delimited_bodies_end_with_the_connection() {
    let io_loop = IOLoop::new().unwrap();
    let (_server, port, _) = raw_server(&io_loop, |stream, _| async move {
        stream.read_until(b"\r\n\r\n", Some(8192)).await.unwrap();
        stream.write(&b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nfirst part, "[..]).await.unwrap();
        sleep(Duration::from_millis(5)).await;
        stream.write(&b"and the rest"[..]).await.unwrap();
        stream.close();
    });
    let client = HttpClient::new();
    let (body, idle) = run(&io_loop, async move {
        let response = client.fetch(format!("http://127.0.0.1:{port}/")).await.unwrap();
        (response.into_body(), client.idle_connections())
    });
    assert_eq!(&body[..], b"first part, and the rest");
    assert_eq!(idle, 0, "a connection whose body ended by closing is not kept");
}

#[test]
fn malformed_and_truncated_responses_are_protocol_errors() {
    let io_loop = IOLoop::new().unwrap();
    let (_server, port, _) = raw_server(&io_loop, |stream, _| async move {
        let head = stream.read_until(b"\r\n\r\n", Some(8192)).await.unwrap();
        let reply: &'static [u8] = if head.starts_with(b"GET /smuggle") {
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
        } else {
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"
        };
        stream.write(reply).await.unwrap();
        stream.close();
    });
    let client = HttpClient::new();
    let (smuggle, truncated) = run(&io_loop, async move {
        let smuggle = client.fetch(format!("http://127.0.0.1:{port}/smuggle")).await.unwrap_err();
        let truncated = client.fetch(format!("http://127.0.0.1:{port}/truncated")).await.unwrap_err();
        (smuggle, truncated)
    });
    assert!(smuggle.is_protocol(), "{smuggle}");
    assert!(truncated.is_protocol(), "{truncated}");
}

#[test]
fn interim_responses_are_skipped_and_trailers_kept() {
    let io_loop = IOLoop::new().unwrap();
    let (_server, port, accepted) = raw_server(&io_loop, |stream, _| async move {
        while stream.read_until(b"\r\n\r\n", Some(8192)).await.is_ok() {
            let reply = &b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n\
                HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Checksum\r\n\r\n\
                5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Checksum: 42\r\n\r\n"[..];
            stream.write(reply).await.unwrap();
        }
    });
    let client = HttpClient::new();
    let url = format!("http://127.0.0.1:{port}/");
    let (first, second) = run(&io_loop, async move {
        let first = client.fetch(ClientRequest::post(&url).header("Expect", "100-continue").body("x")).await.unwrap();
        (first, client.fetch(&url).await.unwrap())
    });
    for response in [&first, &second] {
        assert_eq!(response.status(), 200);
        assert_eq!(&response.body()[..], b"hello world");
        assert_eq!(response.trailers().and_then(|t| t.get("x-checksum")), Some("42"));
    }
    assert_eq!(accepted.get(), 1, "the connection was kept after a chunked body with trailers");
}

/// Answers the first request on each connection with keep-alive, and closes the connection without a word
/// when a second one arrives: the race of a server closing an idle connection just as the client reuses it.
async fn answer_once_then_close(stream: IOStream, _connection: usize) {
    stream.read_until(b"\r\n\r\n", Some(8192)).await.unwrap();
    stream.write(&b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"[..]).await.unwrap();
    let _ = stream.read_until(b"\r\n\r\n", Some(8192)).await;
    stream.close();
}

#[test]
fn an_idempotent_request_is_retried_when_a_pooled_connection_dies() {
    let io_loop = IOLoop::new().unwrap();
    let (_server, port, accepted) = raw_server(&io_loop, answer_once_then_close);
    let client = HttpClient::new();
    let url = format!("http://127.0.0.1:{port}/");
    let bodies = run(&io_loop, async move {
        let first = client.fetch(&url).await.unwrap().into_body();
        let second = client.fetch(&url).await.unwrap().into_body();
        (first, second)
    });
    assert_eq!((&bodies.0[..], &bodies.1[..]), (&b"ok"[..], &b"ok"[..]));
    assert_eq!(accepted.get(), 2, "the second GET was sent again on a new connection");
}

#[test]
fn a_post_is_not_retried_once_sent() {
    let io_loop = IOLoop::new().unwrap();
    let (_server, port, accepted) = raw_server(&io_loop, answer_once_then_close);
    let client = HttpClient::new();
    let url = format!("http://127.0.0.1:{port}/");
    let error = run(&io_loop, async move {
        client.fetch(ClientRequest::post(&url).body("once")).await.unwrap();
        client.fetch(ClientRequest::post(&url).body("twice?")).await.unwrap_err()
    });
    assert!(error.is_connection(), "{error}");
    assert_eq!(accepted.get(), 1, "the POST may have been acted on: it is not sent again");
}

#[test]
fn a_pooled_connection_with_unsolicited_bytes_is_dropped() {
    let io_loop = IOLoop::new().unwrap();
    let first_connection: Rc<RefCell<Option<IOStream>>> = Rc::default();
    let keep = first_connection.clone();
    let (_server, port, accepted) = raw_server(&io_loop, move |stream, _| {
        *keep.borrow_mut() = Some(stream.clone());
        async move {
            while stream.read_until(b"\r\n\r\n", Some(8192)).await.is_ok() {
                stream.write(&b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"[..]).await.unwrap();
            }
        }
    });
    let client = HttpClient::new();
    let url = format!("http://127.0.0.1:{port}/");
    run(&io_loop, async move {
        client.fetch(&url).await.unwrap();
        // What some servers send before closing an idle connection. Loopback delivers it at once, unless a
        // loaded machine defers it a little.
        let idle = first_connection.borrow_mut().take().unwrap();
        idle.write(&b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\n\r\n"[..]).await.unwrap();
        sleep(Duration::from_millis(20)).await;
        let response = client.fetch(&url).await.unwrap();
        assert_eq!(response.status(), 200, "the 408 was not taken for the answer");
    });
    assert_eq!(accepted.get(), 2);
}

// ---------------------------------------------------------------------------------------------------------
// A server that is not ours: Python's http.server (HTTP/1.0).
// ---------------------------------------------------------------------------------------------------------

/// Kills the child (by its PID) and reaps it, even when the test panics.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A directory removed at the end of the test.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[test]
fn fetches_from_python_http_server() {
    let dir = TempDir(std::env::temp_dir().join(format!("gale-client-test-{}", std::process::id())));
    std::fs::create_dir_all(&dir.0).unwrap();
    std::fs::write(dir.0.join("hello.txt"), "hello from a file\n").unwrap();
    let python = std::env::var("GALE_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let port = free_port();
    let spawned = Command::new(&python)
        .args(["-m", "http.server", &port.to_string(), "--bind", "127.0.0.1", "--directory"])
        .arg(&dir.0)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let mut child = match spawned {
        Ok(child) => ChildGuard(child),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("skipped: no Python interpreter {python:?} (set GALE_PYTHON)");
            return;
        }
        Err(e) => panic!("cannot start {python}: {e}"),
    };
    let until = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(child.0.try_wait().unwrap().is_none(), "python http.server exited");
        assert!(Instant::now() < until, "python http.server did not start listening");
        std::thread::sleep(Duration::from_millis(20));
    }

    let io_loop = IOLoop::new().unwrap();
    let client = HttpClient::new();
    let base = format!("http://127.0.0.1:{port}");
    let (file, head, listing, missing, missing_lenient, idle) = run(&io_loop, async move {
        let file = client.fetch(format!("{base}/hello.txt?cache=no")).await.unwrap();
        let head = client.fetch(ClientRequest::head(format!("{base}/hello.txt"))).await.unwrap();
        let listing = client.fetch(format!("{base}/")).await.unwrap();
        let missing = client.fetch(format!("{base}/missing.txt")).await.unwrap_err();
        let missing_lenient = client.fetch(ClientRequest::get(format!("{base}/missing.txt")).raise_error(false)).await;
        (file, head, listing, missing, missing_lenient.unwrap(), client.idle_connections())
    });
    assert_eq!(file.status(), 200);
    assert_eq!(file.version(), Version::Http10);
    assert_eq!(&file.body()[..], b"hello from a file\n");
    assert_eq!(file.headers().get("content-length"), Some("18"));
    assert!(file.headers().get("server").is_some_and(|s| s.starts_with("SimpleHTTP")));
    assert_eq!(head.headers().get("content-length"), Some("18"));
    assert!(head.body().is_empty());
    assert!(std::str::from_utf8(listing.body()).unwrap().contains("hello.txt"));
    assert_eq!(missing.status(), Some(404));
    assert_eq!(missing_lenient.status(), 404);
    assert!(std::str::from_utf8(missing_lenient.body()).unwrap().contains("404"));
    assert_eq!(idle, 0, "HTTP/1.0 connections without keep-alive are not pooled");
    drop(child);
}
