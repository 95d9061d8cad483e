//! The web layer end to end, through real sockets: routing, arguments, uploads, cookies, signed cookies, XSRF,
//! static files, templates, redirects, errors, panics, compression and long polling.

use gale_http1::client::ClientRequest;
use gale_web::testing::TestServer;
use gale_web::{Application, HttpError, RedirectHandler, RequestContext, RequestHandler, Result, Secret};
use std::cell::{Cell, RefCell};
use std::io::{Read, Write};
use std::rc::Rc;
use std::time::{Duration, SystemTime};

struct Echo;

impl RequestHandler for Echo {
    const ALLOWED_METHODS: &'static [&'static str] = &["GET", "POST"];

    async fn get(&mut self, cx: &mut RequestContext) -> Result {
        let named = cx.path_kwarg("id").unwrap_or("-").to_owned();
        let body = format!("args={:?} id={named}", cx.path_args());
        cx.write(body);
        Ok(())
    }

    async fn post(&mut self, cx: &mut RequestContext) -> Result {
        let name = cx.get_argument("name")?;
        let tags = cx.get_arguments("tag")?;
        let q = cx.get_query_arguments("q");
        let files = cx.files("upload")?;
        let file = files.first().map(|f| format!("{}:{}:{}", f.filename, f.content_type, f.body.len()));
        cx.write(format!("name={name} tags={tags:?} q={q:?} file={file:?}"));
        Ok(())
    }
}

struct Boom;

impl RequestHandler for Boom {
    async fn get(&mut self, _cx: &mut RequestContext) -> Result {
        panic!("handler exploded");
    }
}

struct Injector;

impl RequestHandler for Injector {
    async fn get(&mut self, cx: &mut RequestContext) -> Result {
        cx.set_header("X-Evil", "a\r\nSet-Cookie: stolen=1");
        cx.write("never sent");
        Ok(())
    }
}

struct Teapot;

impl RequestHandler for Teapot {
    async fn get(&mut self, _cx: &mut RequestContext) -> Result {
        Err(HttpError::with_message(418, "short and stout"))
    }

    fn write_error(&mut self, cx: &mut RequestContext, status: u16, _error: &HttpError) {
        cx.set_status(status);
        cx.write("custom error page");
    }
}

struct Cookies;

impl RequestHandler for Cookies {
    async fn get(&mut self, cx: &mut RequestContext) -> Result {
        let plain = cx.get_cookie("plain").unwrap_or_default();
        let signed = cx.get_signed_cookie("user", None).unwrap_or_else(|| "none".into());
        cx.write(format!("plain={plain} signed={signed}"));
        Ok(())
    }

    async fn post(&mut self, cx: &mut RequestContext) -> Result {
        let opts = gale_web::CookieOptions { http_only: true, ..Default::default() };
        cx.set_cookie("plain", "v1", &opts)?;
        cx.set_signed_cookie("user", "alice", &Default::default())?;
        Ok(())
    }

    fn check_xsrf(&self) -> bool {
        false
    }
}

struct Form;

impl RequestHandler for Form {
    async fn get(&mut self, cx: &mut RequestContext) -> Result {
        let html = cx.xsrf_form_html();
        cx.write(html);
        Ok(())
    }

    async fn post(&mut self, cx: &mut RequestContext) -> Result {
        cx.write("accepted");
        Ok(())
    }
}

struct Page;

impl RequestHandler for Page {
    async fn get(&mut self, cx: &mut RequestContext) -> Result {
        let name = cx.get_argument("name")?;
        cx.render("page.html", serde_json::json!({ "name": name }))
    }
}

struct Big;

impl RequestHandler for Big {
    async fn get(&mut self, cx: &mut RequestContext) -> Result {
        cx.set_header("Content-Type", "text/plain");
        cx.write("gale ".repeat(2000));
        Ok(())
    }
}

fn temp_dir(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("gale-web-e2e-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn app() -> (Application, std::path::PathBuf) {
    let root = temp_dir("app");
    std::fs::create_dir_all(root.join("static/css")).unwrap();
    std::fs::write(root.join("static/css/site.css"), "body { color: red }\n".repeat(10)).unwrap();
    std::fs::create_dir_all(root.join("templates")).unwrap();
    std::fs::write(root.join("templates/page.html"), "<p>Hello {{ name }}</p>").unwrap();
    let app = Application::builder()
        .route(r"/echo/(\d+)/([a-z]+)", || Echo)
        .named_route("item", r"/item/(?P<id>\d+)", || Echo)
        .route(r"/form-echo", || Echo)
        .route(r"/boom", || Boom)
        .route(r"/teapot", || Teapot)
        .route(r"/inject", || Injector)
        .route(r"/cookies", || Cookies)
        .route(r"/form", || Form)
        .route(r"/page", || Page)
        .route(r"/big", || Big)
        .route(r"/old/(.*)", || RedirectHandler::new("/new/{0}", true))
        .configure(|s| {
            s.cookie_secret = Some(Secret::Single(b"0123456789abcdef0123456789abcdef".to_vec()));
            s.xsrf_cookies = true;
            s.static_path = Some(root.join("static"));
            s.template_path = Some(root.join("templates"));
            s.compress_response = true;
            s.access_log = false;
        })
        .build()
        .unwrap();
    (app, root)
}

fn body(r: &gale_http1::client::ClientResponse) -> String {
    String::from_utf8_lossy(r.body()).into_owned()
}

#[test]
fn routes_pass_positional_and_named_captures_and_reverse() {
    let (app, _) = app();
    assert_eq!(app.reverse_url("item", &["42"]).unwrap(), "/item/42");
    let s = TestServer::new(app);
    let r = s.fetch("/echo/7/abc");
    assert_eq!(r.status(), 200);
    assert_eq!(body(&r), r#"args=["7", "abc"] id=-"#);
    assert_eq!(body(&s.fetch("/item/42")), "args=[] id=42");
    assert_eq!(s.fetch("/echo/x/abc").status(), 404);
    assert_eq!(s.fetch("/nowhere").status(), 404);
}

#[test]
fn unimplemented_methods_answer_405_with_allow() {
    let (app, _) = app();
    let s = TestServer::new(app);
    let r = s.request(ClientRequest::delete(s.url("/echo/1/a")));
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers().get("Allow"), Some("GET, POST"));
}

#[test]
fn query_urlencoded_and_multipart_arguments_and_files_arrive() {
    let (app, _) = app();
    let s = TestServer::new(app);
    let r = s.request(
        ClientRequest::post(s.url("/form-echo?q=1&q=2"))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .header("Cookie", "_xsrf=skip")
            .body("name=%20ann%20&tag=a&tag=b"),
    );
    // XSRF is on for this application: without a token the POST is refused.
    assert_eq!(r.status(), 403);

    let token = xsrf_token(&s);
    let r = s.request(
        ClientRequest::post(s.url("/form-echo?q=1&q=2"))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .header("Cookie", format!("_xsrf={token}"))
            .body(format!("name=%20ann%20&tag=a&tag=b&_xsrf={token}")),
    );
    assert_eq!(body(&r), r#"name=ann tags=["a", "b"] q=["1", "2"] file=None"#);

    let multipart = format!(
        "--B\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\nbob\r\n--B\r\nContent-Disposition: form-data; \
         name=\"_xsrf\"\r\n\r\n{token}\r\n--B\r\nContent-Disposition: form-data; name=\"upload\"; \
         filename=\"a.txt\"\r\nContent-Type: text/plain\r\n\r\nhello file\r\n--B--\r\n"
    );
    let r = s.request(
        ClientRequest::post(s.url("/form-echo"))
            .header("Content-Type", "multipart/form-data; boundary=B")
            .header("Cookie", format!("_xsrf={token}"))
            .body(multipart),
    );
    assert_eq!(body(&r), r#"name=bob tags=[] q=[] file=Some("a.txt:text/plain:10")"#);

    let r = s.request(
        ClientRequest::post(s.url("/form-echo"))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .header("X-XSRFToken", token.clone())
            .header("Cookie", format!("_xsrf={token}"))
            .body("tag=only"),
    );
    assert_eq!(r.status(), 400, "a missing required argument is a 400");
}

fn xsrf_token(s: &TestServer) -> String {
    let r = s.fetch("/form");
    let cookie = r.headers().get("Set-Cookie").expect("the _xsrf cookie").to_owned();
    let value = cookie.split(';').next().unwrap().strip_prefix("_xsrf=").unwrap().to_owned();
    assert!(body(&r).contains("name=\"_xsrf\""), "{}", body(&r));
    value
}

#[test]
fn xsrf_missing_wrong_and_right() {
    let (app, _) = app();
    let s = TestServer::new(app);
    let token = xsrf_token(&s);
    let post = |cookie: &str, form: &str| {
        s.request(
            ClientRequest::post(s.url("/form"))
                .header("Content-Type", "application/x-www-form-urlencoded")
                .header("Cookie", cookie.to_owned())
                .body(form.to_owned()),
        )
    };
    assert_eq!(post(&format!("_xsrf={token}"), "a=1").status(), 403, "missing");
    let other = {
        let s2 = TestServer::new(app_only_form());
        xsrf_token(&s2)
    };
    assert_eq!(post(&format!("_xsrf={token}"), &format!("_xsrf={other}")).status(), 403, "wrong");
    let r = post(&format!("_xsrf={token}"), &format!("_xsrf={token}"));
    assert_eq!(r.status(), 200, "right");
    assert_eq!(body(&r), "accepted");
}

fn app_only_form() -> Application {
    Application::builder().route("/form", || Form).configure(|s| s.xsrf_cookies = true).build().unwrap()
}

#[test]
fn cookies_and_signed_cookies_round_trip_and_refuse_forgeries() {
    let (app, _) = app();
    let s = TestServer::new(app);
    let r = s.request(ClientRequest::post(s.url("/cookies")));
    let set: Vec<String> = r.headers().get_all("Set-Cookie").map(|v| String::from_utf8_lossy(v).into_owned()).collect();
    assert!(set.iter().any(|c| c.starts_with("plain=v1") && c.contains("HttpOnly")), "{set:?}");
    let signed = set.iter().find(|c| c.starts_with("user=")).unwrap().split(';').next().unwrap().to_owned();
    assert!(signed.starts_with("user=2|"), "Tornado's version 2 format: {signed}");

    let get = |cookie: String| body(&s.request(ClientRequest::get(s.url("/cookies")).header("Cookie", cookie)));
    assert_eq!(get(format!("plain=v1; {signed}")), "plain=v1 signed=alice");
    // Tampered: change the last hex digit of the signature.
    let mut tampered = signed.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == '0' { '1' } else { '0' });
    assert_eq!(get(tampered), "plain= signed=none");
    // Signed with another secret.
    let other = Secret::Single(b"another secret entirely".to_vec());
    let forged = gale_web::signing::create_signed_value(&other, "user", "mallory", SystemTime::now()).unwrap();
    assert_eq!(get(format!("user={forged}")), "plain= signed=none");
    // Expired: signed 40 days ago with the right secret.
    let right = Secret::Single(b"0123456789abcdef0123456789abcdef".to_vec());
    let old = SystemTime::now() - Duration::from_secs(40 * 86_400);
    let expired = gale_web::signing::create_signed_value(&right, "user", "old", old).unwrap();
    assert_eq!(get(format!("user={expired}")), "plain= signed=none");
    let fresh = gale_web::signing::create_signed_value(&right, "user", "bob", SystemTime::now()).unwrap();
    assert_eq!(get(format!("user={fresh}")), "plain= signed=bob");
}

#[test]
fn static_files_validators_ranges_and_traversal() {
    let (app, _) = app();
    let s = TestServer::new(app);
    let r = s.fetch("/static/css/site.css");
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers().get("Content-Type"), Some("text/css; charset=utf-8"));
    let etag = r.headers().get("Etag").unwrap().to_owned();
    let modified = r.headers().get("Last-Modified").unwrap().to_owned();
    let len = r.body().len();
    assert_eq!(len, 200);
    let cond = |name: &'static str, value: String| {
        s.request(ClientRequest::get(s.url("/static/css/site.css")).header(name, value)).status()
    };
    assert_eq!(cond("If-None-Match", etag.clone()), 304);
    assert_eq!(cond("If-Modified-Since", modified), 304);
    assert_eq!(cond("If-None-Match", "\"other\"".into()), 200);
    let r = s.request(ClientRequest::get(s.url("/static/css/site.css")).header("Range", "bytes=0-3"));
    assert_eq!(r.status(), 206);
    assert_eq!(r.headers().get("Content-Range"), Some("bytes 0-3/200"));
    assert_eq!(&r.body()[..], b"body");
    let r = s.request(ClientRequest::get(s.url("/static/css/site.css")).header("Range", "bytes=500-"));
    assert_eq!(r.status(), 416);
    assert_eq!(r.headers().get("Content-Range"), Some("bytes */200"));
    for attack in [
        "/static/../Cargo.toml",
        "/static/%2e%2e/Cargo.toml",
        "/static/..%2fCargo.toml",
        "/static/%2e%2e%2f%2e%2e%2fetc/passwd",
        "/static/css/../../templates/page.html",
        "/static//etc/passwd",
    ] {
        let st = s.fetch(attack).status();
        assert!(st == 403 || st == 404, "{attack} answered {st}");
    }
    assert_eq!(s.fetch("/static/missing.css").status(), 404);
}

#[test]
fn templates_escape_variables() {
    let (app, _) = app();
    let s = TestServer::new(app);
    let r = s.fetch("/page?name=%3Cscript%3Ealert(1)%3C/script%3E");
    assert_eq!(r.status(), 200);
    let html = body(&r);
    assert!(html.contains("&lt;script&gt;"), "{html}");
    assert!(!html.contains("<script>"), "{html}");
}

#[test]
fn redirects_errors_and_panics() {
    let (app, _) = app();
    let s = TestServer::new(app);
    let r = s.fetch("/old/a/b?x=1");
    assert_eq!(r.status(), 301);
    assert_eq!(r.headers().get("Location"), Some("/new/a/b?x=1"));
    let r = s.fetch("/teapot");
    assert_eq!(r.status(), 418);
    assert_eq!(body(&r), "custom error page");
    let r = s.fetch("/boom");
    assert_eq!(r.status(), 500);
    assert!(!body(&r).contains("exploded"), "no traceback outside debug mode");
    assert_eq!(s.fetch("/echo/1/a").status(), 200, "the server goes on after a panic");
    // A header value with a line break is refused whole: the error page answers instead, nothing injected.
    let r = s.fetch("/inject");
    assert_eq!((r.status(), r.headers().get("X-Evil"), r.headers().get("Set-Cookie")), (500, None, None));
    assert!(!body(&r).contains("never sent"));
    assert_eq!(r.headers().get("Content-Type"), Some("text/html; charset=UTF-8"), "the application's error page");
    assert_eq!(s.fetch("/echo/1/a").status(), 200, "the server goes on after a refused head");
}

#[test]
fn responses_are_gzipped_and_etags_give_304() {
    let (app, _) = app();
    let s = TestServer::new(app);
    let r = s.request(ClientRequest::get(s.url("/big")).header("Accept-Encoding", "gzip").decompress_response(false));
    assert_eq!(r.headers().get("Content-Encoding"), Some("gzip"));
    assert!(r.body().len() < 1000);
    let plain = s.fetch("/big");
    assert_eq!(plain.body().len(), 10_000);
    let etag = plain.headers().get("Etag").unwrap().to_owned();
    let r = s.request(ClientRequest::get(s.url("/big")).header("If-None-Match", etag));
    assert_eq!(r.status(), 304);
    assert!(r.body().is_empty());
    let head = s.request(ClientRequest::head(s.url("/big")));
    assert_eq!(head.status(), 200);
    assert!(head.body().is_empty());
}

/// A long poll: waits until `release` is set; counts live waiters with a guard.
struct Wait {
    released: Rc<Cell<bool>>,
    live: Rc<Cell<usize>>,
    wakers: Rc<RefCell<Vec<std::task::Waker>>>,
}

struct LiveGuard(Rc<Cell<usize>>);

impl Drop for LiveGuard {
    fn drop(&mut self) {
        self.0.set(self.0.get() - 1);
    }
}

impl RequestHandler for Wait {
    async fn get(&mut self, cx: &mut RequestContext) -> Result {
        self.live.set(self.live.get() + 1);
        let _guard = LiveGuard(self.live.clone());
        let (released, wakers) = (self.released.clone(), self.wakers.clone());
        std::future::poll_fn(|c| {
            if released.get() {
                std::task::Poll::Ready(())
            } else {
                wakers.borrow_mut().push(c.waker().clone());
                std::task::Poll::Pending
            }
        })
        .await;
        cx.write("released");
        Ok(())
    }
}

#[test]
fn a_long_poll_waiter_that_disconnects_is_cleaned_up_while_others_get_the_message() {
    let released = Rc::new(Cell::new(false));
    let live = Rc::new(Cell::new(0usize));
    let wakers: Rc<RefCell<Vec<std::task::Waker>>> = Rc::default();
    let (r, l, w) = (released.clone(), live.clone(), wakers.clone());
    let app = Application::builder()
        .route("/wait", move || Wait { released: r.clone(), live: l.clone(), wakers: w.clone() })
        .configure(|s| s.access_log = false)
        .build()
        .unwrap();
    let s = TestServer::new(app);
    let port = s.port();
    let open = || {
        let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        c.write_all(b"GET /wait HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        c
    };
    let leaver = open();
    let stayer = open();
    let sleep = |ms| s.run(gale_web::ioloop::sleep(Duration::from_millis(ms)));
    sleep(100);
    assert_eq!(live.get(), 2, "both requests wait");
    drop(leaver);
    sleep(100);
    assert_eq!(live.get(), 1, "the waiter whose client left was dropped");
    released.set(true);
    for w in wakers.borrow_mut().drain(..) {
        w.wake();
    }
    let reader = std::thread::spawn(move || {
        let mut stayer = stayer;
        let mut buf = [0u8; 1024];
        let mut got = Vec::new();
        while !String::from_utf8_lossy(&got).contains("released") {
            match stayer.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
        String::from_utf8_lossy(&got).into_owned()
    });
    while !reader.is_finished() {
        sleep(10);
    }
    let reply = reader.join().unwrap();
    assert!(reply.starts_with("HTTP/1.1 200 OK"), "{reply}");
    assert!(reply.ends_with("released"), "{reply}");
    assert_eq!(live.get(), 0);
}

/// Writes `c` `n` times, waiting a little between writes, so that bodies of concurrent requests are built
/// at the same time.
struct Interleave;

impl RequestHandler for Interleave {
    async fn get(&mut self, cx: &mut RequestContext) -> Result {
        let n: usize = cx.get_query_argument("n")?.parse().map_err(|_| HttpError::new(400))?;
        let c = cx.get_query_argument("c")?;
        for _ in 0..n {
            cx.write(&c);
            gale_web::ioloop::sleep(Duration::from_millis(1)).await;
        }
        Ok(())
    }
}

#[test]
fn bodies_of_concurrent_requests_do_not_mix() {
    let app = Application::builder().route("/i", || Interleave).configure(|s| s.access_log = false).build().unwrap();
    let s = TestServer::new(app);
    let big = "b".repeat(3000);
    let cases = [("a", 20), (big.as_str(), 4), ("c", 400), ("d", 1)];
    let client = s.client();
    let urls: Vec<_> = cases.iter().map(|(c, n)| s.url(&format!("/i?c={c}&n={n}"))).collect();
    for _ in 0..3 {
        let client = client.clone();
        let urls = urls.clone();
        let bodies = s.run(async move {
            let handles: Vec<_> = urls
                .into_iter()
                .map(|u| {
                    let client = client.clone();
                    gale_web::ioloop::spawn(async move { client.fetch(ClientRequest::get(u)).await.unwrap() })
                })
                .collect();
            let mut bodies = Vec::new();
            for h in handles {
                bodies.push(h.await.unwrap().body().to_vec());
            }
            bodies
        });
        for ((c, n), body) in cases.iter().zip(bodies) {
            assert_eq!(String::from_utf8(body).unwrap(), c.repeat(*n));
        }
    }
}
