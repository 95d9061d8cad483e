//! `gale-web` through real sockets, one concern per test: routing and `reverse_url`, 404 and 405, every
//! argument source, uploads, cookies and signed cookies (with Tornado interoperability), XSRF, static files,
//! templates, redirects, error pages, panics, gzip, ETags, `HEAD`, `authenticated()` and long polling.
//!
//! Every request carries a timeout (the [`TestServer`] default, or an explicit one on raw sockets), so a
//! hung server fails a test instead of hanging it.

use gale_http1::client::{ClientRequest, ClientResponse};
use gale_web::cookies::{CookieOptions, SameSite};
use gale_web::signing::create_signed_value;
use gale_web::testing::TestServer;
use gale_web::{Application, HttpError, RedirectHandler, RequestContext, RequestHandler, Result, Secret};
use std::cell::{Cell, RefCell};
use std::io::{Read, Write};
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Poll, Waker};
use std::time::{Duration, Instant, SystemTime};

const SECRET: &[u8] = b"a test secret of a reasonable length, 42";
/// How long a test waits for the server to reach a state before it fails.
const DEADLINE: Duration = Duration::from_secs(10);

fn secret() -> Secret {
    Secret::Single(SECRET.to_vec())
}

fn text(r: &ClientResponse) -> String {
    String::from_utf8_lossy(r.body()).into_owned()
}

fn set_cookies(r: &ClientResponse) -> Vec<String> {
    r.headers().get_all("Set-Cookie").map(|v| String::from_utf8_lossy(v).into_owned()).collect()
}

/// The `name=value` part of the `Set-Cookie` for `name`.
fn cookie_pair(r: &ClientResponse, name: &str) -> String {
    let prefix = format!("{name}=");
    let all = set_cookies(r);
    let found = all.iter().find(|c| c.starts_with(&prefix)).unwrap_or_else(|| panic!("no {name} cookie in {all:?}"));
    found.split(';').next().unwrap().to_owned()
}

/// A fresh directory under the system temp dir, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("gale-web-tests-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn write(&self, relative: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.0.join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, contents).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn quiet(s: &mut gale_web::Settings) {
    s.access_log = false;
}

// ---- routing ----------------------------------------------------------------------------------------------

struct Captures;

impl RequestHandler for Captures {
    const ALLOWED_METHODS: &'static [&'static str] = &["GET", "PUT"];

    async fn get(&mut self, cx: &mut RequestContext) -> Result {
        let positional = cx.path_args().join(",");
        let year = cx.path_kwarg("year").unwrap_or("-").to_owned();
        let slug = cx.path_kwarg("slug").unwrap_or("-").to_owned();
        let back = cx.reverse_url("article", &["1999", "party"])?;
        cx.write(format!("positional=[{positional}] year={year} slug={slug} reverse={back}"));
        Ok(())
    }

    async fn put(&mut self, cx: &mut RequestContext) -> Result {
        cx.write("put");
        Ok(())
    }
}

fn routing_app() -> Application {
    Application::builder()
        .route(r"/pos/(\d+)/([a-z]+)", || Captures)
        .named_route("article", r"/articles/(?P<year>\d{4})/(?P<slug>[a-z-]+)", || Captures)
        .route(r"/decoded/(.+)", || Captures)
        .configure(quiet)
        .build()
        .unwrap()
}

#[test]
fn positional_captures_reach_the_handler() {
    let s = TestServer::new(routing_app());
    let r = s.fetch("/pos/12/abc");
    assert_eq!(r.status(), 200);
    assert_eq!(text(&r), "positional=[12,abc] year=- slug=- reverse=/articles/1999/party");
}

#[test]
fn named_groups_become_keyword_arguments() {
    let s = TestServer::new(routing_app());
    let r = s.fetch("/articles/2024/hello-world");
    assert_eq!(r.status(), 200);
    assert_eq!(text(&r), "positional=[] year=2024 slug=hello-world reverse=/articles/1999/party");
}

#[test]
fn captures_are_url_decoded() {
    let s = TestServer::new(routing_app());
    assert_eq!(text(&s.fetch("/decoded/a%20b")), "positional=[a b] year=- slug=- reverse=/articles/1999/party");
}

#[test]
fn reverse_url_fills_named_routes_and_refuses_unknown_names() {
    let app = routing_app();
    assert_eq!(app.reverse_url("article", &["2001", "odyssey"]).unwrap(), "/articles/2001/odyssey");
    assert!(app.reverse_url("no-such-route", &[]).is_err());
}

#[test]
fn unmatched_paths_are_404() {
    let s = TestServer::new(routing_app());
    // A pattern must match the whole path: neither a prefix nor a longer path will do.
    for path in ["/nowhere", "/pos/12", "/pos/12/abc/more", "/pos/x/abc", "/articles/24/x"] {
        assert_eq!(s.fetch(path).status(), 404, "{path}");
    }
}

#[test]
fn methods_outside_allowed_methods_are_405_with_allow() {
    let s = TestServer::new(routing_app());
    for request in [ClientRequest::post(s.url("/pos/1/a")), ClientRequest::delete(s.url("/pos/1/a"))] {
        let r = s.request(request);
        assert_eq!(r.status(), 405);
        assert_eq!(r.headers().get("Allow"), Some("GET, PUT"));
    }
    assert_eq!(text(&s.request(ClientRequest::put(s.url("/pos/1/a")))), "put");
}

// ---- arguments and uploads --------------------------------------------------------------------------------

struct Args;

impl RequestHandler for Args {
    async fn get(&mut self, cx: &mut RequestContext) -> Result {
        let a = cx.get_query_argument("a")?;
        let all = cx.get_query_arguments("a");
        let opt = cx.get_argument_or("opt", "default")?;
        cx.write(format!("a={a} all={all:?} opt={opt}"));
        Ok(())
    }

    async fn post(&mut self, cx: &mut RequestContext) -> Result {
        let from_body = cx.get_body_arguments("x")?;
        let from_query = cx.get_query_arguments("x");
        let both = cx.get_arguments("x")?;
        let required = cx.get_argument("required")?;
        let mut out = format!("body={from_body:?} query={from_query:?} both={both:?} required={required}");
        for f in cx.files("upload")? {
            out.push_str(&format!(" file={}:{}:{}", f.filename, f.content_type, String::from_utf8_lossy(&f.body)));
        }
        cx.write(out);
        Ok(())
    }
}

fn args_app() -> Application {
    Application::builder().route("/args", || Args).configure(quiet).build().unwrap()
}

fn form_post(s: &TestServer, path: &str, body: &str) -> ClientResponse {
    s.request(
        ClientRequest::post(s.url(path))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(body.to_owned()),
    )
}

#[test]
fn query_arguments_are_decoded_and_kept_in_order() {
    let s = TestServer::new(args_app());
    let r = s.fetch("/args?a=1&a=two%20words&a=%E2%9C%93");
    assert_eq!(r.status(), 200);
    assert_eq!(text(&r), r#"a=✓ all=["1", "two words", "✓"] opt=default"#);
    assert_eq!(text(&s.fetch("/args?a=1&opt=+given+")), r#"a=1 all=["1"] opt=given"#, "values are stripped");
}

#[test]
fn urlencoded_body_arguments_are_separate_from_query_arguments() {
    let s = TestServer::new(args_app());
    let r = form_post(&s, "/args?x=q1", "x=b1&x=b%2B2&required=yes");
    assert_eq!(r.status(), 200);
    assert_eq!(text(&r), r#"body=["b1", "b+2"] query=["q1"] both=["q1", "b1", "b+2"] required=yes"#);
}

#[test]
fn a_missing_required_argument_is_400() {
    let s = TestServer::new(args_app());
    assert_eq!(form_post(&s, "/args", "x=1").status(), 400);
    assert_eq!(s.fetch("/args").status(), 400, "missing query argument");
    // The argument in the query satisfies get_argument.
    assert_eq!(form_post(&s, "/args?required=q", "").status(), 200);
}

#[test]
fn multipart_fields_and_files_arrive() {
    let s = TestServer::new(args_app());
    let body = "--XyZ\r\n\
        Content-Disposition: form-data; name=\"x\"\r\n\r\nfield value\r\n\
        --XyZ\r\n\
        Content-Disposition: form-data; name=\"required\"\r\n\r\nok\r\n\
        --XyZ\r\n\
        Content-Disposition: form-data; name=\"upload\"; filename=\"a.txt\"\r\n\
        Content-Type: text/plain\r\n\r\nfirst file\r\n\
        --XyZ\r\n\
        Content-Disposition: form-data; name=\"upload\"; filename=\"b.bin\"\r\n\
        Content-Type: application/octet-stream\r\n\r\nline1\r\nline2\r\n\
        --XyZ--\r\n";
    let r = s.request(
        ClientRequest::post(s.url("/args"))
            .header("Content-Type", "multipart/form-data; boundary=XyZ")
            .body(body.to_owned()),
    );
    assert_eq!(r.status(), 200, "{}", text(&r));
    assert_eq!(
        text(&r),
        "body=[\"field value\"] query=[] both=[\"field value\"] required=ok \
         file=a.txt:text/plain:first file file=b.bin:application/octet-stream:line1\r\nline2"
    );
}

#[test]
fn a_malformed_multipart_body_is_400() {
    let s = TestServer::new(args_app());
    let r = s.request(
        ClientRequest::post(s.url("/args?required=1"))
            .header("Content-Type", "multipart/form-data; boundary=XyZ")
            .body("--XyZ\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\nno closing boundary"),
    );
    assert_eq!(r.status(), 400);
}

// ---- cookies and signed cookies ---------------------------------------------------------------------------

struct Cookies;

impl RequestHandler for Cookies {
    async fn get(&mut self, cx: &mut RequestContext) -> Result {
        let plain = cx.get_cookie("plain").unwrap_or_else(|| "none".into());
        let signed = cx.get_signed_cookie("session", None).unwrap_or_else(|| "none".into());
        cx.write(format!("plain={plain} signed={signed}"));
        Ok(())
    }

    async fn post(&mut self, cx: &mut RequestContext) -> Result {
        let options = CookieOptions {
            domain: Some("example.test".into()),
            path: Some("/app".into()),
            max_age: Some(3600),
            secure: true,
            http_only: true,
            same_site: Some(SameSite::Lax),
            ..CookieOptions::default()
        };
        cx.set_cookie("plain", "v1", &options)?;
        let value = cx.get_argument_or("session", "alice")?;
        cx.set_signed_cookie("session", &value, &CookieOptions::default())
    }

    async fn delete(&mut self, cx: &mut RequestContext) -> Result {
        let options = CookieOptions { path: Some("/app".into()), ..CookieOptions::default() };
        cx.clear_cookie("plain", &options);
        Ok(())
    }
}

fn cookie_app(secret: Secret) -> Application {
    Application::builder()
        .route("/cookies", || Cookies)
        .configure(|s| {
            s.cookie_secret = Some(secret);
            quiet(s);
        })
        .build()
        .unwrap()
}

fn get_with_cookie(s: &TestServer, path: &str, cookie: &str) -> ClientResponse {
    s.request(ClientRequest::get(s.url(path)).header("Cookie", cookie.to_owned()))
}

#[test]
fn set_cookie_carries_every_attribute() {
    let s = TestServer::new(cookie_app(secret()));
    let r = s.request(ClientRequest::post(s.url("/cookies")));
    assert_eq!(r.status(), 200);
    let all = set_cookies(&r);
    let plain = all.iter().find(|c| c.starts_with("plain=")).unwrap();
    assert_eq!(plain, "plain=v1; Domain=example.test; HttpOnly; Max-Age=3600; Path=/app; SameSite=Lax; Secure");
}

#[test]
fn cookies_sent_by_the_client_are_read_back() {
    let s = TestServer::new(cookie_app(secret()));
    assert_eq!(text(&get_with_cookie(&s, "/cookies", "other=1; plain=hello")), "plain=hello signed=none");
    assert_eq!(text(&s.fetch("/cookies")), "plain=none signed=none");
}

#[test]
fn clear_cookie_expires_it_with_the_same_path() {
    let s = TestServer::new(cookie_app(secret()));
    let r = s.request(ClientRequest::delete(s.url("/cookies")));
    assert_eq!(r.status(), 200);
    assert_eq!(set_cookies(&r), ["plain=; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=0; Path=/app"]);
}

#[test]
fn a_signed_cookie_round_trips() {
    let s = TestServer::new(cookie_app(secret()));
    let r = form_post(&s, "/cookies", "session=bob%20smith");
    let pair = cookie_pair(&r, "session");
    assert!(pair.starts_with("session=2|1:0|"), "Tornado's version 2 format: {pair}");
    assert!(!pair.contains("bob"), "the value is encoded, not in clear: {pair}");
    assert_eq!(text(&get_with_cookie(&s, "/cookies", &pair)), "plain=none signed=bob smith");
}

#[test]
fn a_tampered_signed_cookie_is_refused() {
    let s = TestServer::new(cookie_app(secret()));
    let pair = cookie_pair(&s.request(ClientRequest::post(s.url("/cookies"))), "session");
    // Flip the last hex digit of the signature.
    let mut bad_signature = pair.clone();
    let last = bad_signature.pop().unwrap();
    bad_signature.push(if last == '0' { '1' } else { '0' });
    assert_eq!(text(&get_with_cookie(&s, "/cookies", &bad_signature)), "plain=none signed=none");
    // Swap the value (base64 of "alice") for another one, keeping the signature.
    let swapped = pair.replace("YWxpY2U=", "bWFsbG9y");
    assert_ne!(swapped, pair);
    assert_eq!(text(&get_with_cookie(&s, "/cookies", &swapped)), "plain=none signed=none");
    // The value of another cookie name does not pass for this one.
    let other_name = create_signed_value(&secret(), "other", "alice", SystemTime::now()).unwrap();
    assert_eq!(text(&get_with_cookie(&s, "/cookies", &format!("session={other_name}"))), "plain=none signed=none");
}

#[test]
fn an_expired_signed_cookie_is_refused() {
    let s = TestServer::new(cookie_app(secret()));
    let old = SystemTime::now() - Duration::from_secs(32 * 86_400);
    let expired = create_signed_value(&secret(), "session", "old", old).unwrap();
    assert_eq!(text(&get_with_cookie(&s, "/cookies", &format!("session={expired}"))), "plain=none signed=none");
    let recent = SystemTime::now() - Duration::from_secs(30 * 86_400);
    let valid = create_signed_value(&secret(), "session", "recent", recent).unwrap();
    assert_eq!(text(&get_with_cookie(&s, "/cookies", &format!("session={valid}"))), "plain=none signed=recent");
}

#[test]
fn a_cookie_signed_with_another_secret_is_refused() {
    let s = TestServer::new(cookie_app(secret()));
    let forged =
        create_signed_value(&Secret::Single(b"not the secret".to_vec()), "session", "eve", SystemTime::now()).unwrap();
    assert_eq!(text(&get_with_cookie(&s, "/cookies", &format!("session={forged}"))), "plain=none signed=none");
}

/// The Python that has Tornado, or `None` (with a loud notice) when there is none.
fn python_with_tornado() -> Option<String> {
    let python = std::env::var("GALE_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let ok = std::process::Command::new(&python)
        .args(["-c", "import tornado.web"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        Some(python)
    } else {
        eprintln!(
            "\n*** SKIP: `{python}` cannot `import tornado`; the Tornado interoperability test did not run. ***\n\
             *** Set GALE_PYTHON to a Python with Tornado installed to run it.                            ***\n"
        );
        None
    }
}

/// Runs `script` with `python`, passing `args` as `sys.argv[1:]`; its trimmed stdout.
fn run_python(python: &str, script: &str, args: &[&str]) -> String {
    let mut child = std::process::Command::new(python)
        .arg("-c")
        .arg(script)
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > DEADLINE {
            let _ = child.kill();
            panic!("python did not finish in {DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "python failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[test]
fn signed_cookies_interoperate_with_tornado_both_ways() {
    let Some(python) = python_with_tornado() else { return };
    let secret_text = std::str::from_utf8(SECRET).unwrap();
    let s = TestServer::new(cookie_app(secret()));

    // (a) Tornado signs, gale verifies.
    let from_tornado = run_python(
        &python,
        "import sys, tornado.web\n\
         print(tornado.web.create_signed_value(sys.argv[1], 'session', sys.argv[2]).decode())",
        &[secret_text, "signed by tornado ✓"],
    );
    assert!(from_tornado.starts_with("2|"), "{from_tornado}");
    let r = get_with_cookie(&s, "/cookies", &format!("session={from_tornado}"));
    assert_eq!(text(&r), "plain=none signed=signed by tornado ✓");

    // (b) gale signs, Tornado verifies.
    let r = form_post(&s, "/cookies", "session=signed%20by%20gale");
    let pair = cookie_pair(&r, "session");
    let value = pair.strip_prefix("session=").unwrap();
    let decoded = run_python(
        &python,
        "import sys, tornado.web\n\
         v = tornado.web.decode_signed_value(sys.argv[1], 'session', sys.argv[2])\n\
         print('None' if v is None else v.decode())",
        &[secret_text, value],
    );
    assert_eq!(decoded, "signed by gale");
    // Tornado refuses it under another name, as gale does.
    let wrong_name = run_python(
        &python,
        "import sys, tornado.web\n\
         print(tornado.web.decode_signed_value(sys.argv[1], 'other', sys.argv[2]))",
        &[secret_text, value],
    );
    assert_eq!(wrong_name, "None");
}

// ---- XSRF -------------------------------------------------------------------------------------------------

struct XsrfForm;

impl RequestHandler for XsrfForm {
    async fn get(&mut self, cx: &mut RequestContext) -> Result {
        let token = cx.xsrf_token();
        cx.write(token);
        Ok(())
    }

    async fn post(&mut self, cx: &mut RequestContext) -> Result {
        cx.write("accepted");
        Ok(())
    }
}

fn xsrf_app() -> Application {
    Application::builder()
        .route("/form", || XsrfForm)
        .configure(|s| {
            s.xsrf_cookies = true;
            quiet(s);
        })
        .build()
        .unwrap()
}

/// The `_xsrf` cookie value a GET sets, and the token the page shows.
fn fetch_xsrf(s: &TestServer) -> (String, String) {
    let r = s.fetch("/form");
    assert_eq!(r.status(), 200);
    let cookie = cookie_pair(&r, "_xsrf").strip_prefix("_xsrf=").unwrap().to_owned();
    (cookie, text(&r))
}

fn post_form(s: &TestServer, cookie: Option<&str>, header: Option<&str>, body: &str) -> u16 {
    let mut request = ClientRequest::post(s.url("/form"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(body.to_owned());
    if let Some(c) = cookie {
        request = request.header("Cookie", format!("_xsrf={c}"));
    }
    if let Some(h) = header {
        request = request.header("X-XSRFToken", h.to_owned());
    }
    s.request(request).status()
}

#[test]
fn xsrf_a_post_without_a_token_is_403() {
    let s = TestServer::new(xsrf_app());
    let (cookie, _) = fetch_xsrf(&s);
    assert_eq!(post_form(&s, Some(&cookie), None, "a=1"), 403, "cookie but no token");
    assert_eq!(post_form(&s, None, None, "a=1"), 403, "neither");
    assert_eq!(post_form(&s, None, None, &format!("_xsrf={cookie}")), 403, "token but no cookie");
}

#[test]
fn xsrf_a_wrong_token_is_403() {
    let s = TestServer::new(xsrf_app());
    let (cookie, _) = fetch_xsrf(&s);
    let (other, _) = fetch_xsrf(&s);
    assert_ne!(cookie, other, "every new client gets its own token");
    assert_eq!(post_form(&s, Some(&cookie), None, &format!("_xsrf={other}")), 403);
    assert_eq!(post_form(&s, Some(&cookie), Some(&other), ""), 403);
    assert_eq!(post_form(&s, Some(&cookie), None, "_xsrf=garbage"), 403);
}

#[test]
fn xsrf_the_right_token_as_argument_or_header_is_accepted() {
    let s = TestServer::new(xsrf_app());
    let (cookie, page_token) = fetch_xsrf(&s);
    let form =
        |t: &str| format!("_xsrf={}", percent_encoding::utf8_percent_encode(t, percent_encoding::NON_ALPHANUMERIC));
    assert_eq!(post_form(&s, Some(&cookie), None, &form(&cookie)), 200, "cookie value as argument");
    assert_eq!(post_form(&s, Some(&cookie), None, &form(&page_token)), 200, "masked page token as argument");
    assert_eq!(post_form(&s, Some(&cookie), Some(&page_token), ""), 200, "masked page token as header");
    // A second GET with the cookie keeps it (no new Set-Cookie) and shows a token that still matches.
    let r = get_with_cookie(&s, "/form", &format!("_xsrf={cookie}"));
    assert!(set_cookies(&r).is_empty(), "{:?}", set_cookies(&r));
    assert_eq!(post_form(&s, Some(&cookie), Some(&text(&r)), ""), 200);
}

// ---- static files -----------------------------------------------------------------------------------------

const SCRIPT: &str = "console.log('gale static file');\n";

struct StaticUrl;

impl RequestHandler for StaticUrl {
    async fn get(&mut self, cx: &mut RequestContext) -> Result {
        let url = cx.static_url("js/app.js");
        cx.write(url);
        Ok(())
    }
}

/// An application serving `dir/static`, with `dir/Cargo.toml` beside it as a traversal target.
fn static_app(dir: &TempDir) -> Application {
    dir.write("static/js/app.js", SCRIPT);
    dir.write("static/data.bin", (0u8..=255).collect::<Vec<u8>>());
    dir.write("Cargo.toml", "[package]\nname = \"secret\"\n");
    let root = dir.0.join("static");
    Application::builder()
        .route("/url", || StaticUrl)
        .configure(move |s| {
            s.static_path = Some(root);
            quiet(s);
        })
        .build()
        .unwrap()
}

fn get_with(s: &TestServer, path: &str, name: &'static str, value: &str) -> ClientResponse {
    s.request(ClientRequest::get(s.url(path)).header(name, value.to_owned()))
}

#[test]
fn static_files_are_served_with_their_type_and_validators() {
    let dir = TempDir::new();
    let s = TestServer::new(static_app(&dir));
    let r = s.fetch("/static/js/app.js");
    assert_eq!(r.status(), 200);
    assert_eq!(text(&r), SCRIPT);
    assert_eq!(r.headers().get("Content-Type"), Some("text/javascript; charset=utf-8"));
    assert_eq!(r.headers().get("Content-Length"), Some(SCRIPT.len().to_string().as_str()));
    assert!(r.headers().get("Etag").is_some());
    assert!(r.headers().get("Last-Modified").is_some());
    let r = s.fetch("/static/data.bin");
    assert_eq!(r.headers().get("Content-Type"), Some("application/octet-stream"));
    assert_eq!(r.body().len(), 256);
    assert_eq!(s.fetch("/static/missing.js").status(), 404);
    assert_eq!(s.fetch("/static/js").status(), 403, "a directory is not listed");
}

#[test]
fn static_etag_gives_304_to_if_none_match() {
    let dir = TempDir::new();
    let s = TestServer::new(static_app(&dir));
    let etag = s.fetch("/static/js/app.js").headers().get("Etag").unwrap().to_owned();
    let r = get_with(&s, "/static/js/app.js", "If-None-Match", &etag);
    assert_eq!(r.status(), 304);
    assert!(r.body().is_empty());
    assert_eq!(get_with(&s, "/static/js/app.js", "If-None-Match", &format!("\"x\", {etag}")).status(), 304);
    assert_eq!(get_with(&s, "/static/js/app.js", "If-None-Match", "*").status(), 304);
    assert_eq!(get_with(&s, "/static/js/app.js", "If-None-Match", "\"stale\"").status(), 200);
}

#[test]
fn static_last_modified_gives_304_to_if_modified_since() {
    let dir = TempDir::new();
    let s = TestServer::new(static_app(&dir));
    let modified = s.fetch("/static/js/app.js").headers().get("Last-Modified").unwrap().to_owned();
    let r = get_with(&s, "/static/js/app.js", "If-Modified-Since", &modified);
    assert_eq!(r.status(), 304);
    assert!(r.body().is_empty());
    let long_ago = httpdate::fmt_http_date(SystemTime::UNIX_EPOCH + Duration::from_secs(86_400));
    assert_eq!(get_with(&s, "/static/js/app.js", "If-Modified-Since", &long_ago).status(), 200);
}

#[test]
fn static_ranges_give_206_and_unsatisfiable_ones_416() {
    let dir = TempDir::new();
    let s = TestServer::new(static_app(&dir));
    let r = get_with(&s, "/static/data.bin", "Range", "bytes=10-19");
    assert_eq!(r.status(), 206);
    assert_eq!(r.headers().get("Content-Range"), Some("bytes 10-19/256"));
    assert_eq!(&r.body()[..], &(10u8..20).collect::<Vec<u8>>()[..]);
    let r = get_with(&s, "/static/data.bin", "Range", "bytes=-6");
    assert_eq!(r.status(), 206);
    assert_eq!(r.headers().get("Content-Range"), Some("bytes 250-255/256"));
    assert_eq!(&r.body()[..], &[250, 251, 252, 253, 254, 255]);
    let r = get_with(&s, "/static/data.bin", "Range", "bytes=250-");
    assert_eq!(r.headers().get("Content-Range"), Some("bytes 250-255/256"));
    let r = get_with(&s, "/static/data.bin", "Range", "bytes=256-300");
    assert_eq!(r.status(), 416);
    assert_eq!(r.headers().get("Content-Range"), Some("bytes */256"));
}

#[test]
fn static_traversal_attempts_never_succeed() {
    let dir = TempDir::new();
    let s = TestServer::new(static_app(&dir));
    for attack in [
        "/static/../Cargo.toml",
        "/static/%2e%2e/Cargo.toml",
        "/static/..%2fCargo.toml",
        "/static/..%2FCargo.toml",
        "/static/%2e%2e%2fCargo.toml",
        "/static/js/../../Cargo.toml",
        "/static/js/%2e%2e/%2e%2e/Cargo.toml",
        "/static/..%5cCargo.toml",
        "/static//etc/passwd",
        "/static/%2fetc%2fpasswd",
        "/static/js%00/app.js",
    ] {
        let r = s.fetch(attack);
        assert!(matches!(r.status(), 400 | 403 | 404), "{attack} answered {}", r.status());
        assert!(!text(&r).contains("secret"), "{attack} leaked the file");
    }
}

#[test]
fn static_url_carries_a_version_that_is_served_with_a_long_cache_life() {
    let dir = TempDir::new();
    let s = TestServer::new(static_app(&dir));
    let url = text(&s.fetch("/url"));
    assert!(url.starts_with("/static/js/app.js?v="), "{url}");
    assert!(url.len() > "/static/js/app.js?v=".len(), "{url}");
    let r = s.fetch(&url);
    assert_eq!(r.status(), 200);
    assert_eq!(text(&r), SCRIPT);
    let cache = r.headers().get("Cache-Control").unwrap_or_default();
    assert!(cache.contains("max-age=315360000"), "{cache}");
    assert!(s.fetch("/static/js/app.js").headers().get("Cache-Control").is_none(), "no version, no long cache");
}

#[test]
fn static_head_sends_the_length_without_the_body() {
    let dir = TempDir::new();
    let s = TestServer::new(static_app(&dir));
    let r = s.request(ClientRequest::head(s.url("/static/js/app.js")));
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers().get("Content-Length"), Some(SCRIPT.len().to_string().as_str()));
    assert!(r.body().is_empty());
    assert_eq!(s.request(ClientRequest::post(s.url("/static/js/app.js"))).status(), 405);
}

// ---- templates --------------------------------------------------------------------------------------------

struct Page;

impl RequestHandler for Page {
    async fn get(&mut self, cx: &mut RequestContext) -> Result {
        let name = cx.get_argument("name")?;
        cx.render("page.html", serde_json::json!({ "name": name, "items": ["<a>", "b&c"] }))
    }
}

fn template_app(dir: &TempDir, xsrf: bool) -> Application {
    dir.write(
        "templates/page.html",
        "<h1>Hello {{ name }}</h1><ul>{% for i in items %}<li>{{ i }}</li>{% endfor %}</ul>{{ xsrf_form_html() }}",
    );
    let path = dir.0.join("templates");
    Application::builder()
        .route("/page", || Page)
        .route("/missing", || MissingTemplate)
        .configure(move |s| {
            s.template_path = Some(path);
            s.xsrf_cookies = xsrf;
            quiet(s);
        })
        .build()
        .unwrap()
}

struct MissingTemplate;

impl RequestHandler for MissingTemplate {
    async fn get(&mut self, cx: &mut RequestContext) -> Result {
        cx.render("nope.html", ())
    }
}

#[test]
fn templates_escape_variables() {
    let dir = TempDir::new();
    let s = TestServer::new(template_app(&dir, false));
    let r = s.fetch("/page?name=%3Cscript%3Ealert(%22x%22)%3C%2Fscript%3E");
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers().get("Content-Type"), Some("text/html; charset=UTF-8"));
    let html = text(&r);
    assert!(html.starts_with("<h1>Hello &lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;</h1>"), "{html}");
    assert!(html.contains("<li>&lt;a&gt;</li><li>b&amp;c</li>"), "{html}");
    assert!(!html.contains("<script>"), "{html}");
    assert!(!html.contains("_xsrf"), "no XSRF field when XSRF is off: {html}");
}

#[test]
fn templates_get_the_xsrf_form_field() {
    let dir = TempDir::new();
    let s = TestServer::new(template_app(&dir, true));
    let r = s.fetch("/page?name=x");
    let html = text(&r);
    assert!(html.contains(r#"<input type="hidden" name="_xsrf" value=""#), "{html}");
    assert!(set_cookies(&r).iter().any(|c| c.starts_with("_xsrf=")), "rendering the field sets the cookie");
}

#[test]
fn a_missing_template_is_500() {
    let dir = TempDir::new();
    let s = TestServer::new(template_app(&dir, false));
    assert_eq!(s.fetch("/missing").status(), 500);
}

// ---- redirects, errors and panics -------------------------------------------------------------------------

struct Redirecting;

impl RequestHandler for Redirecting {
    async fn get(&mut self, cx: &mut RequestContext) -> Result {
        let permanent = cx.get_query_argument("permanent").is_ok();
        cx.redirect("/elsewhere", permanent)
    }
}

struct Failing;

impl RequestHandler for Failing {
    async fn get(&mut self, cx: &mut RequestContext) -> Result {
        let status: u16 = cx.get_argument("status")?.parse().map_err(|_| HttpError::new(400))?;
        cx.write("this partial output is discarded");
        Err(HttpError::with_message(status, "the log message"))
    }
}

struct CustomErrors;

impl RequestHandler for CustomErrors {
    async fn get(&mut self, _cx: &mut RequestContext) -> Result {
        Err(HttpError::with_message(418, "short and stout"))
    }

    fn write_error(&mut self, cx: &mut RequestContext, status: u16, error: &HttpError) {
        cx.set_status(status);
        cx.set_header("Content-Type", "application/json");
        cx.set_header("X-Custom", "yes");
        cx.write(format!(r#"{{"status":{status},"seen":{}}}"#, error.status()));
    }
}

struct Panicking;

impl RequestHandler for Panicking {
    async fn get(&mut self, _cx: &mut RequestContext) -> Result {
        panic!("handler exploded with a secret detail");
    }
}

struct Hello;

impl RequestHandler for Hello {
    async fn get(&mut self, cx: &mut RequestContext) -> Result {
        cx.write("hello");
        Ok(())
    }
}

fn errors_app(debug: bool) -> Application {
    Application::builder()
        .route(r"/old/(.*)", || RedirectHandler::new("/new/{0}", false))
        .route(r"/moved/(\w+)/(\w+)", || RedirectHandler::new("/to/{1}/{0}", true))
        .route("/redirect", || Redirecting)
        .route("/fail", || Failing)
        .route("/custom", || CustomErrors)
        .route("/panic", || Panicking)
        .route("/hello", || Hello)
        .configure(move |s| {
            s.debug = debug;
            quiet(s);
        })
        .build()
        .unwrap()
}

#[test]
fn redirect_handler_substitutes_captures_and_keeps_the_query() {
    let s = TestServer::new(errors_app(false));
    let r = s.fetch("/old/a/b?x=1&y=2");
    assert_eq!(r.status(), 302);
    assert_eq!(r.headers().get("Location"), Some("/new/a/b?x=1&y=2"));
    let r = s.fetch("/moved/first/second");
    assert_eq!(r.status(), 301);
    assert_eq!(r.headers().get("Location"), Some("/to/second/first"));
}

#[test]
fn handler_redirects_are_temporary_or_permanent() {
    let s = TestServer::new(errors_app(false));
    let r = s.fetch("/redirect");
    assert_eq!(r.status(), 302);
    assert_eq!(r.headers().get("Location"), Some("/elsewhere"));
    let r = s.fetch("/redirect?permanent=1");
    assert_eq!(r.status(), 301);
    assert_eq!(r.headers().get("Location"), Some("/elsewhere"));
}

#[test]
fn http_errors_answer_their_status_with_the_default_page() {
    let s = TestServer::new(errors_app(false));
    for (status, phrase) in [(403, "Forbidden"), (404, "Not Found"), (503, "Service Unavailable")] {
        let r = s.fetch(&format!("/fail?status={status}"));
        assert_eq!(r.status(), status);
        let page = text(&r);
        assert!(page.contains(&format!("{status}: {phrase}")), "{page}");
        assert!(!page.contains("partial output"), "{page}");
        assert!(!page.contains("the log message"), "no log message outside debug mode: {page}");
    }
    let debug = TestServer::new(errors_app(true));
    assert!(text(&debug.fetch("/fail?status=403")).contains("the log message"));
}

#[test]
fn write_error_can_be_overridden() {
    let s = TestServer::new(errors_app(false));
    let r = s.fetch("/custom");
    assert_eq!(r.status(), 418);
    assert_eq!(r.headers().get("Content-Type"), Some("application/json"));
    assert_eq!(r.headers().get("X-Custom"), Some("yes"));
    assert_eq!(text(&r), r#"{"status":418,"seen":418}"#);
}

#[test]
fn a_panicking_handler_is_500_and_the_server_goes_on() {
    let s = TestServer::new(errors_app(false));
    for _ in 0..3 {
        let r = s.fetch("/panic");
        assert_eq!(r.status(), 500);
        assert!(!text(&r).contains("secret detail"), "no panic text outside debug mode");
        let r = s.fetch("/hello");
        assert_eq!(r.status(), 200);
        assert_eq!(text(&r), "hello");
    }
    let debug = TestServer::new(errors_app(true));
    assert!(text(&debug.fetch("/panic")).contains("secret detail"), "debug mode shows the panic");
}

#[test]
fn a_panicking_handler_factory_gets_the_application_500_page() {
    let app = Application::builder()
        .route("/factory", || -> Hello { panic!("the factory exploded") })
        .route("/hello", || Hello)
        .configure(|s| {
            s.debug = true;
            quiet(s);
        })
        .build()
        .unwrap();
    let s = TestServer::new(app);
    for _ in 0..2 {
        let r = s.fetch("/factory");
        assert_eq!(r.status(), 500);
        assert!(text(&r).contains("the factory exploded"), "the application's page, in debug mode");
        assert_eq!(text(&s.fetch("/hello")), "hello");
    }
}

/// Panics when asked to; otherwise answers with how many handlers its factory made.
struct PanicsOnDemand(usize);

impl RequestHandler for PanicsOnDemand {
    async fn get(&mut self, cx: &mut RequestContext) -> Result {
        if cx.request().query() == Some("panic") {
            panic!("asked to");
        }
        cx.write(self.0.to_string());
        Ok(())
    }
}

#[test]
fn a_route_whose_handler_panicked_answers_its_next_requests_afresh() {
    let made = Rc::new(Cell::new(0));
    let counter = made.clone();
    let app = Application::builder()
        .route("/p", move || {
            counter.set(counter.get() + 1);
            PanicsOnDemand(counter.get())
        })
        .configure(quiet)
        .build()
        .unwrap();
    let s = TestServer::new(app);
    for round in 0..3 {
        assert_eq!(s.fetch("/p?panic").status(), 500);
        let r = s.fetch("/p");
        assert_eq!(r.status(), 200);
        assert_eq!(text(&r), (3 * round + 2).to_string(), "a fresh handler for every request");
        assert_eq!(text(&s.fetch("/p")), (3 * round + 3).to_string());
    }
    assert_eq!(made.get(), 9);
}

/// Streams its body in flushed pieces of growing size, or answers at once with `?whole`.
struct Pieces;

impl RequestHandler for Pieces {
    async fn get(&mut self, cx: &mut RequestContext) -> Result {
        if cx.request().query() == Some("whole") {
            cx.write("whole");
            return Ok(());
        }
        for (i, size) in [1, 2, 3000, 1].into_iter().enumerate() {
            cx.write(((b'a' + i as u8) as char).to_string().repeat(size));
            cx.flush().await?;
        }
        cx.write("end");
        Ok(())
    }
}

#[test]
fn streamed_pieces_and_the_responses_after_them_keep_their_bytes() {
    let s = TestServer::new(Application::builder().route("/pieces", || Pieces).configure(quiet).build().unwrap());
    for _ in 0..3 {
        let expected = format!("abb{}dend", "c".repeat(3000));
        assert_eq!(text(&s.fetch("/pieces")), expected);
        assert_eq!(text(&s.fetch("/pieces?whole")), "whole");
        assert_eq!(text(&s.fetch("/pieces?whole")), "whole");
    }
}

struct PanicAfterFlush;

impl RequestHandler for PanicAfterFlush {
    async fn get(&mut self, cx: &mut RequestContext) -> Result {
        cx.write("partial ");
        cx.flush().await?;
        panic!("after the head was sent");
    }
}

#[test]
fn a_panic_after_the_head_was_sent_cuts_the_response_and_the_server_goes_on() {
    let app = Application::builder()
        .route("/late-panic", || PanicAfterFlush)
        .route("/hello", || Hello)
        .configure(quiet)
        .build()
        .unwrap();
    let s = TestServer::new(app);
    let mut raw = std::net::TcpStream::connect(("127.0.0.1", s.port())).unwrap();
    raw.set_read_timeout(Some(DEADLINE)).unwrap();
    raw.write_all(b"GET /late-panic HTTP/1.1\r\nHost: test\r\n\r\n").unwrap();
    let reader = std::thread::spawn(move || {
        let mut got = Vec::new();
        // Until the server closes the connection (or the read times out, which fails below).
        let _ = raw.read_to_end(&mut got);
        String::from_utf8_lossy(&got).into_owned()
    });
    run_until(&s, "the server to close the cut response", || reader.is_finished());
    let reply = reader.join().unwrap();
    assert!(reply.starts_with("HTTP/1.1 200 OK\r\n"), "{reply}");
    assert!(reply.contains("partial "), "{reply}");
    assert!(!reply.ends_with("0\r\n\r\n"), "a cut response must not look complete: {reply}");
    assert_eq!(text(&s.fetch("/hello")), "hello");
}

// ---- compression, ETags and HEAD --------------------------------------------------------------------------

const PARAGRAPH: &str = "The quick brown fox jumps over the lazy dog. ";

struct Text;

impl RequestHandler for Text {
    async fn get(&mut self, cx: &mut RequestContext) -> Result {
        let repeat: usize = cx.get_argument_or("n", "100")?.parse().map_err(|_| HttpError::new(400))?;
        cx.set_header("Content-Type", "text/plain; charset=UTF-8");
        cx.write(PARAGRAPH.repeat(repeat));
        Ok(())
    }

    async fn post(&mut self, cx: &mut RequestContext) -> Result {
        cx.write("posted");
        Ok(())
    }
}

fn text_app(compress: bool) -> Application {
    Application::builder()
        .route("/text", || Text)
        .configure(move |s| {
            s.compress_response = compress;
            quiet(s);
        })
        .build()
        .unwrap()
}

fn gunzip(data: &[u8]) -> String {
    let mut out = String::new();
    flate2::read::GzDecoder::new(data).read_to_string(&mut out).unwrap();
    out
}

fn fetch_gzip(s: &TestServer, path: &str) -> ClientResponse {
    s.request(ClientRequest::get(s.url(path)).header("Accept-Encoding", "gzip").decompress_response(false))
}

#[test]
fn compress_response_gzips_for_clients_that_accept_it() {
    let s = TestServer::new(text_app(true));
    let r = fetch_gzip(&s, "/text");
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers().get("Content-Encoding"), Some("gzip"));
    assert!(r.headers().get_all("Vary").any(|v| v.eq_ignore_ascii_case(b"Accept-Encoding")));
    let expected = PARAGRAPH.repeat(100);
    assert!(r.body().len() < expected.len() / 4, "compressed to {} bytes", r.body().len());
    assert_eq!(r.headers().get("Content-Length"), Some(r.body().len().to_string().as_str()));
    assert_eq!(gunzip(r.body()), expected);
}

#[test]
fn compression_is_skipped_when_not_accepted_tiny_or_disabled() {
    let s = TestServer::new(text_app(true));
    let r = s.request(ClientRequest::get(s.url("/text")).decompress_response(false));
    assert_eq!(r.headers().get("Content-Encoding"), None, "no Accept-Encoding");
    assert_eq!(text(&r), PARAGRAPH.repeat(100));
    let r = s.request(
        ClientRequest::get(s.url("/text")).header("Accept-Encoding", "gzip;q=0, identity").decompress_response(false),
    );
    assert_eq!(r.headers().get("Content-Encoding"), None, "gzip refused with q=0");
    let r = fetch_gzip(&s, "/text?n=1");
    assert_eq!(r.headers().get("Content-Encoding"), None, "too small to be worth it");
    assert_eq!(text(&r), PARAGRAPH);
    let off = TestServer::new(text_app(false));
    assert_eq!(fetch_gzip(&off, "/text").headers().get("Content-Encoding"), None, "compress_response is off");
}

/// Writes `n` bytes (the query's `n`, default 5) of `'a' + i % 26`, in pieces of 300.
struct SizedBody;

impl RequestHandler for SizedBody {
    async fn get(&mut self, cx: &mut RequestContext) -> Result {
        let n: usize = cx.get_query_argument("n").ok().and_then(|v| v.parse().ok()).unwrap_or(5);
        let body: Vec<u8> = (0..n).map(|i| b'a' + (i % 26) as u8).collect();
        for piece in body.chunks(300) {
            cx.write(piece);
        }
        Ok(())
    }
}

#[test]
fn small_and_large_bodies_from_one_reused_buffer_arrive_whole() {
    let s = TestServer::new(Application::builder().route("/sized", || SizedBody).configure(quiet).build().unwrap());
    let expected = |n: usize| (0..n).map(|i| (b'a' + (i % 26) as u8) as char).collect::<String>();
    let mut tags = std::collections::HashSet::new();
    for n in [5, 0, 999, 1000, 1001, 5000, 3, 20_000, 7, 1000, 6] {
        let r = s.fetch(&format!("/sized?n={n}"));
        assert_eq!(r.status(), 200, "{n}");
        assert_eq!(text(&r), expected(n), "{n} bytes");
        let etag = r.headers().get("Etag").expect("an ETag").to_owned();
        assert_eq!(etag, gale_web::static_files::etag_for(expected(n).as_bytes()), "the tag of the body");
        assert_eq!(s.fetch(&format!("/sized?n={n}")).headers().get("Etag"), Some(etag.as_str()), "{n}");
        assert_eq!(get_with(&s, &format!("/sized?n={n}"), "If-None-Match", &etag).status(), 304, "{n}");
        tags.insert(etag);
    }
    assert_eq!(tags.len(), 10, "one tag per body");
}

/// Sets `n` owned headers `X-<i>: <i>-<tag>` and writes `tag`.
struct ManyHeaders;

impl RequestHandler for ManyHeaders {
    async fn get(&mut self, cx: &mut RequestContext) -> Result {
        let n: usize = cx.get_argument("n")?.parse().map_err(|_| HttpError::new(400))?;
        let tag = cx.get_argument("tag")?;
        for i in 0..n {
            cx.set_header(format!("X-{i}"), format!("{i}-{tag}"));
        }
        cx.write(tag);
        Ok(())
    }
}

#[test]
fn the_header_maps_a_task_reuses_carry_nothing_over() {
    let s = TestServer::new(Application::builder().route("/many", || ManyHeaders).configure(quiet).build().unwrap());
    // Small maps are kept for the next request of the route's task, large ones are not: neither leaks a field.
    for (n, tag) in [(3, "a"), (0, "b"), (40, "c"), (1, "d"), (17, "e"), (16, "f"), (0, "g")] {
        let r = s.fetch(&format!("/many?n={n}&tag={tag}"));
        assert_eq!(r.status(), 200);
        assert_eq!(text(&r), tag);
        for i in 0..45 {
            let want = (i < n).then(|| format!("{i}-{tag}"));
            assert_eq!(r.headers().get(&format!("X-{i}")), want.as_deref(), "field {i} of request {tag}");
        }
        assert_eq!(r.headers().get("Content-Type"), Some("text/html; charset=UTF-8"), "{tag}");
        assert_eq!(r.headers().get_all("Etag").count(), 1, "{tag}");
    }
}

#[test]
fn dynamic_responses_get_an_etag_and_304_for_if_none_match() {
    let s = TestServer::new(text_app(false));
    let r = s.fetch("/text");
    let etag = r.headers().get("Etag").expect("an ETag").to_owned();
    assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");
    assert_eq!(s.fetch("/text").headers().get("Etag"), Some(etag.as_str()), "same body, same tag");
    assert_ne!(s.fetch("/text?n=2").headers().get("Etag"), Some(etag.as_str()), "other body, other tag");
    let r = get_with(&s, "/text", "If-None-Match", &etag);
    assert_eq!(r.status(), 304);
    assert!(r.body().is_empty());
    assert_eq!(r.headers().get("Etag"), Some(etag.as_str()));
    assert_eq!(get_with(&s, "/text?n=2", "If-None-Match", &etag).status(), 200);
    // Only GET and HEAD are validated.
    let post = s.request(ClientRequest::post(s.url("/text")).header("If-None-Match", etag.clone()));
    assert_eq!(post.status(), 200);
    assert_eq!(text(&post), "posted");
}

/// Sets, clears and replaces `Content-Type` and `Etag` as the query says.
struct FieldEdits;

impl RequestHandler for FieldEdits {
    async fn get(&mut self, cx: &mut RequestContext) -> Result {
        let edits = cx.request().query().unwrap_or("").to_owned();
        for edit in edits.split('&') {
            match edit {
                "type-lower" => cx.set_header("content-type", "text/plain"),
                "type-added" => cx.add_header("CONTENT-TYPE", "text/css"),
                "type-cleared" => cx.clear_header("Content-TYPE"),
                "etag-lower" => cx.set_header("ETAG", "\"mine\""),
                "etag-cleared" => cx.clear_header("etag"),
                "x-set" => cx.set_header("X-Edit", "first"),
                "x-reset" => cx.set_header("x-EDIT", "second"),
                _ => {}
            }
        }
        cx.write("body");
        Ok(())
    }
}

#[test]
fn set_header_replaces_a_field_set_before_whether_or_not_others_came_first() {
    let s = TestServer::new(Application::builder().route("/edit", || FieldEdits).configure(quiet).build().unwrap());
    // The first field set goes into an empty map; later ones look for the name among those set before.
    for (query, want) in [
        ("x-set", &[&b"first"[..]][..]),
        ("x-set&x-reset", &[&b"second"[..]]),
        ("type-lower&x-set&x-reset", &[&b"second"[..]]),
        ("x-set&type-lower&x-reset&x-set", &[&b"first"[..]]),
    ] {
        let r = s.fetch(&format!("/edit?{query}"));
        assert_eq!(r.headers().get_all("X-Edit").collect::<Vec<_>>(), want, "{query}");
    }
    let r = s.fetch("/edit?x-set&type-lower&x-reset");
    assert_eq!(r.headers().get_all("Content-Type").collect::<Vec<_>>(), [&b"text/plain"[..]]);
}

#[test]
fn content_type_and_etag_set_in_any_spelling_are_kept_and_cleared_ones_are_defaulted() {
    let s = TestServer::new(Application::builder().route("/edit", || FieldEdits).configure(quiet).build().unwrap());
    let r = s.fetch("/edit?type-lower&etag-lower");
    assert_eq!(r.headers().get_all("Content-Type").collect::<Vec<_>>(), [&b"text/plain"[..]]);
    assert_eq!(r.headers().get_all("Etag").collect::<Vec<_>>(), [&b"\"mine\""[..]]);
    assert_eq!(get_with(&s, "/edit?etag-lower", "If-None-Match", "\"mine\"").status(), 304);
    let r = s.fetch("/edit?type-added");
    assert_eq!(r.headers().get_all("Content-Type").collect::<Vec<_>>(), [&b"text/css"[..]]);
    let r = s.fetch("/edit?type-lower&type-cleared&etag-lower&etag-cleared");
    assert_eq!(r.headers().get("Content-Type"), Some("text/html; charset=UTF-8"));
    let computed = r.headers().get("Etag").expect("a computed ETag");
    assert_ne!(computed, "\"mine\"");
    assert_eq!(s.fetch("/edit").headers().get("Etag"), Some(computed));
}

#[test]
fn head_answers_like_get_without_a_body() {
    let s = TestServer::new(text_app(false));
    let get = s.fetch("/text");
    let head = s.request(ClientRequest::head(s.url("/text")));
    assert_eq!(head.status(), 200);
    assert!(head.body().is_empty());
    assert_eq!(head.headers().get("Content-Length"), Some(get.body().len().to_string().as_str()));
    assert_eq!(head.headers().get("Content-Type"), get.headers().get("Content-Type"));
    assert_eq!(head.headers().get("Etag"), get.headers().get("Etag"));
    // The connection is still in step after a HEAD: the next request gets its own answer.
    assert_eq!(text(&s.fetch("/text?n=1")), PARAGRAPH);
}

#[test]
fn head_with_compression_announces_the_compressed_length() {
    let s = TestServer::new(text_app(true));
    let get = fetch_gzip(&s, "/text");
    let head =
        s.request(ClientRequest::head(s.url("/text")).header("Accept-Encoding", "gzip").decompress_response(false));
    assert_eq!(head.status(), 200);
    assert!(head.body().is_empty());
    assert_eq!(head.headers().get("Content-Encoding"), Some("gzip"));
    assert_eq!(head.headers().get("Content-Length"), Some(get.body().len().to_string().as_str()));
}

// ---- authentication ---------------------------------------------------------------------------------------

struct Private;

impl RequestHandler for Private {
    async fn get(&mut self, cx: &mut RequestContext) -> Result {
        let user = cx.authenticated()?;
        cx.write(format!("hello {user}"));
        Ok(())
    }

    async fn post(&mut self, cx: &mut RequestContext) -> Result {
        let user = cx.authenticated()?;
        cx.write(format!("posted as {user}"));
        Ok(())
    }
}

fn auth_app(login_url: Option<&str>) -> Application {
    let login_url = login_url.map(str::to_owned);
    Application::builder()
        .route("/private", || Private)
        .current_user(|cx: &mut RequestContext| cx.get_signed_cookie("user", None))
        .configure(move |s| {
            s.cookie_secret = Some(secret());
            s.login_url = login_url;
            quiet(s);
        })
        .build()
        .unwrap()
}

#[test]
fn authenticated_redirects_anonymous_users_to_the_login_url_with_next() {
    let s = TestServer::new(auth_app(Some("/login")));
    let r = s.fetch("/private?tab=1&x=a%20b");
    assert_eq!(r.status(), 302);
    let location = r.headers().get("Location").unwrap();
    let (path, query) = location.split_once('?').unwrap();
    assert_eq!(path, "/login");
    let next = query.strip_prefix("next=").unwrap();
    let next = percent_encoding::percent_decode_str(next).decode_utf8().unwrap();
    assert_eq!(next, "/private?tab=1&x=a%20b");
    // A login URL that has a query already gets `&next=`.
    let s = TestServer::new(auth_app(Some("/login?lang=en")));
    let location = s.fetch("/private").headers().get("Location").unwrap().to_owned();
    assert!(location.starts_with("/login?lang=en&next="), "{location}");
}

#[test]
fn authenticated_forbids_anonymous_posts_and_admits_signed_in_users() {
    let s = TestServer::new(auth_app(Some("/login")));
    assert_eq!(s.request(ClientRequest::post(s.url("/private"))).status(), 403);
    let cookie = format!("user={}", create_signed_value(&secret(), "user", "carol", SystemTime::now()).unwrap());
    let r = get_with_cookie(&s, "/private", &cookie);
    assert_eq!(r.status(), 200);
    assert_eq!(text(&r), "hello carol");
    let r = s.request(ClientRequest::post(s.url("/private")).header("Cookie", cookie));
    assert_eq!(text(&r), "posted as carol");
    // Without a login URL an anonymous GET is refused outright.
    let s = TestServer::new(auth_app(None));
    assert_eq!(s.fetch("/private").status(), 403);
}

// ---- long polling -----------------------------------------------------------------------------------------

/// A message board requests wait on: `publish` wakes every waiter.
#[derive(Default)]
struct Board {
    message: RefCell<Option<String>>,
    wakers: RefCell<Vec<Waker>>,
    /// Waiters alive now (a guard in each waiting handler counts itself).
    waiting: Cell<usize>,
    /// Handlers told that their client left.
    closed: Cell<usize>,
}

impl Board {
    fn publish(&self, message: &str) {
        *self.message.borrow_mut() = Some(message.to_owned());
        let wakers = std::mem::take(&mut *self.wakers.borrow_mut());
        for w in wakers {
            w.wake();
        }
    }

    async fn next_message(&self) -> String {
        std::future::poll_fn(|cx| match &*self.message.borrow() {
            Some(m) => Poll::Ready(m.clone()),
            None => {
                self.wakers.borrow_mut().push(cx.waker().clone());
                Poll::Pending
            }
        })
        .await
    }
}

struct WaitingGuard(Rc<Board>);

impl Drop for WaitingGuard {
    fn drop(&mut self) {
        self.0.waiting.set(self.0.waiting.get() - 1);
    }
}

struct LongPoll {
    board: Rc<Board>,
}

impl RequestHandler for LongPoll {
    async fn get(&mut self, cx: &mut RequestContext) -> Result {
        self.board.waiting.set(self.board.waiting.get() + 1);
        let _guard = WaitingGuard(self.board.clone());
        let message = self.board.next_message().await;
        cx.write(message);
        Ok(())
    }

    fn on_connection_close(&mut self) {
        self.board.closed.set(self.board.closed.get() + 1);
    }
}

/// Runs the loop until `done` holds, failing after [`DEADLINE`].
fn run_until(s: &TestServer, what: &str, done: impl Fn() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < DEADLINE, "timed out waiting for: {what}");
        s.run(gale_web::ioloop::sleep(Duration::from_millis(5)));
    }
}

#[test]
fn a_long_poll_client_that_leaves_is_cleaned_up_and_the_others_get_the_message() {
    let board = Rc::new(Board::default());
    let b = board.clone();
    let app = Application::builder()
        .route("/poll", move || LongPoll { board: b.clone() })
        .route("/hello", || Hello)
        .configure(quiet)
        .build()
        .unwrap();
    let s = TestServer::new(app);

    // A client on a raw socket, which will leave, and one through the gale client, which will stay.
    let mut leaver = std::net::TcpStream::connect(("127.0.0.1", s.port())).unwrap();
    leaver.set_read_timeout(Some(DEADLINE)).unwrap();
    leaver.write_all(b"GET /poll HTTP/1.1\r\nHost: test\r\n\r\n").unwrap();
    let client = s.client();
    let request = ClientRequest::get(s.url("/poll")).request_timeout(Some(DEADLINE));
    let stayer = s.io_loop().spawn(async move { client.fetch(request).await });
    run_until(&s, "both requests to wait", || board.waiting.get() == 2);

    // Other requests are served while the two wait.
    assert_eq!(text(&s.fetch("/hello")), "hello");

    drop(leaver);
    run_until(&s, "the departed client's waiter to be dropped", || board.waiting.get() == 1);
    assert_eq!(board.closed.get(), 1, "on_connection_close ran for the client that left");
    assert!(!stayer.is_finished(), "the other request still waits");

    board.publish("news!");
    let response = s.run(gale_web::ioloop::timeout(DEADLINE, stayer)).expect("in time").expect("not cancelled");
    let response = response.expect("a response");
    assert_eq!(response.status(), 200);
    assert_eq!(text(&response), "news!");
    assert_eq!(board.waiting.get(), 0);
    assert_eq!(board.closed.get(), 1);
    assert!(board.wakers.borrow().is_empty());
}

/// Counts the bytes of a streamed body as they arrive, and answers with the count and the length of the
/// request's own (buffered) body.
#[derive(Default)]
struct StreamedCount {
    bytes: usize,
}

impl RequestHandler for StreamedCount {
    const STREAM_REQUEST_BODY: bool = true;

    async fn data_received(&mut self, _cx: &mut RequestContext, chunk: bytes::Bytes) -> Result {
        self.bytes += chunk.len();
        Ok(())
    }

    async fn post(&mut self, cx: &mut RequestContext) -> Result {
        let buffered = cx.request().body().len();
        cx.write(format!("{} {buffered}", self.bytes));
        Ok(())
    }
}

/// Reads a body with `body_chunk` (nothing to read when it is buffered), and answers as `StreamedCount`.
struct OwnReader;

impl RequestHandler for OwnReader {
    async fn post(&mut self, cx: &mut RequestContext) -> Result {
        let mut read = 0;
        while let Some(chunk) = cx.body_chunk().await? {
            read += chunk.len();
        }
        let buffered = cx.request().body().len();
        cx.write(format!("{read} {buffered}"));
        Ok(())
    }
}

#[test]
fn request_bodies_reach_handlers_streamed_or_buffered_and_fallback_services_whole() {
    let service = Rc::new(gale_http1::service_fn(|request: gale_http1::Request| async move {
        gale_http1::Response::text(format!("fallback {} {}", request.path(), request.body().len()))
    }));
    let app = Application::builder()
        .route("/streamed", StreamedCount::default)
        .route("/own", || OwnReader)
        .route("/fallback/.*", move || gale_web::FallbackHandler::new(service.clone()))
        .configure(quiet)
        .build()
        .unwrap();
    let s = TestServer::new(app);
    let post = |path: &str, n: usize| {
        let r = s.request(ClientRequest::post(s.url(path)).body(vec![b'x'; n]));
        assert_eq!(r.status(), 200, "{path} {n}");
        text(&r)
    };
    for n in [0, 10, 70_000] {
        assert_eq!(post("/streamed", n), format!("{n} 0"), "streamed, so not buffered");
        assert_eq!(post("/own", n), format!("0 {n}"), "buffered, so nothing to stream");
        assert_eq!(post("/fallback/x", n), format!("fallback /fallback/x {n}"));
    }
}
