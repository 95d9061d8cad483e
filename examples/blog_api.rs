//! A small blog: JSON API, HTML forms, a signed-cookie login and XSRF protection together.
//!
//! ```text
//! cargo run --release --example blog_api -- --port 8888
//! ```
//!
//! - `GET /` — the posts, a login form or (logged in) a form to write a post; forms carry the XSRF token.
//! - `POST /login` (form: `username`) — sets the signed cookie `user`, redirects to `/`.
//! - `POST /logout` — clears it.
//! - `POST /posts` (form: `title`, `body`; login required) — creates a post, redirects to `/`.
//! - `GET /api/posts` — every post as JSON; `GET /api/posts/(\d+)` — one post, or 404.
//! - `POST /api/posts` (JSON body `{"title": .., "body": ..}`, header `X-XSRFToken`; login required) — 201 + JSON.

use gale_examples::Options;
use gale_web::escape::xhtml_escape;
use gale_web::{Application, CookieOptions, HttpError, RequestContext, RequestHandler, Result, Secret};
use std::cell::RefCell;
use std::rc::Rc;

#[derive(Clone, serde::Serialize, serde::Deserialize)]
struct Post {
    #[serde(default)]
    id: u64,
    title: String,
    body: String,
    #[serde(default)]
    author: String,
}

#[derive(Default)]
struct Blog {
    posts: Vec<Post>,
}

impl Blog {
    fn add(&mut self, mut post: Post) -> Post {
        post.id = self.posts.len() as u64 + 1;
        self.posts.push(post.clone());
        post
    }
}

type Shared = Rc<RefCell<Blog>>;

struct Home {
    blog: Shared,
}

impl RequestHandler for Home {
    const ALLOWED_METHODS: &'static [&'static str] = &["GET", "HEAD"];

    async fn get(&mut self, cx: &mut RequestContext) -> Result {
        let xsrf = cx.xsrf_form_html();
        let mut page =
            String::from("<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>gale blog</title></head><body>");
        match cx.current_user() {
            Some(user) => {
                page.push_str(&format!(
                    "<p>Logged in as <b>{}</b>. <form method=\"post\" action=\"/logout\" style=\"display:inline\">{xsrf}\
                     <button>Log out</button></form></p>\
                     <form method=\"post\" action=\"/posts\">{xsrf}<input name=\"title\" placeholder=\"Title\"><br>\
                     <textarea name=\"body\" rows=\"4\" cols=\"50\"></textarea><br><button>Publish</button></form>",
                    xhtml_escape(&user)
                ));
            }
            None => page.push_str(&format!(
                "<form method=\"post\" action=\"/login\">{xsrf}<input name=\"username\" placeholder=\"Your name\">\
                 <button>Log in</button></form>"
            )),
        }
        for post in self.blog.borrow().posts.iter().rev() {
            page.push_str(&format!(
                "<article><h2>{}</h2><p>{}</p><p><i>by {}</i></p></article>",
                xhtml_escape(&post.title),
                xhtml_escape(&post.body),
                xhtml_escape(&post.author)
            ));
        }
        page.push_str("</body></html>");
        cx.write(page);
        Ok(())
    }
}

struct Login;

impl RequestHandler for Login {
    const ALLOWED_METHODS: &'static [&'static str] = &["POST"];

    async fn post(&mut self, cx: &mut RequestContext) -> Result {
        let name = cx.get_argument("username")?;
        if name.is_empty() || name.len() > 40 {
            return Err(HttpError::with_message(400, "a user name is 1 to 40 characters"));
        }
        let opts = CookieOptions { http_only: true, ..Default::default() };
        cx.set_signed_cookie("user", &name, &opts)?;
        cx.redirect("/", false)
    }
}

struct Logout;

impl RequestHandler for Logout {
    const ALLOWED_METHODS: &'static [&'static str] = &["POST"];

    async fn post(&mut self, cx: &mut RequestContext) -> Result {
        cx.clear_cookie("user", &CookieOptions::default());
        cx.redirect("/", false)
    }
}

struct NewPost {
    blog: Shared,
}

impl RequestHandler for NewPost {
    const ALLOWED_METHODS: &'static [&'static str] = &["POST"];

    async fn post(&mut self, cx: &mut RequestContext) -> Result {
        let author = cx.authenticated()?;
        let title = cx.get_argument("title")?;
        let body = cx.get_argument("body")?;
        self.blog.borrow_mut().add(Post { id: 0, title, body, author });
        cx.redirect("/", false)
    }
}

struct ApiPosts {
    blog: Shared,
}

impl RequestHandler for ApiPosts {
    const ALLOWED_METHODS: &'static [&'static str] = &["GET", "HEAD", "POST"];

    async fn get(&mut self, cx: &mut RequestContext) -> Result {
        let posts = self.blog.borrow().posts.clone();
        cx.write_json(&posts)
    }

    async fn post(&mut self, cx: &mut RequestContext) -> Result {
        let author = cx.authenticated()?;
        let mut post: Post = cx.json_body()?;
        post.author = author;
        let post = self.blog.borrow_mut().add(post);
        cx.set_status(201);
        cx.set_header("Location", format!("/api/posts/{}", post.id));
        cx.write_json(&post)
    }
}

struct ApiPost {
    blog: Shared,
}

impl RequestHandler for ApiPost {
    const ALLOWED_METHODS: &'static [&'static str] = &["GET", "HEAD"];

    async fn get(&mut self, cx: &mut RequestContext) -> Result {
        let id: u64 = cx.path_arg(0).parse().map_err(|_| HttpError::new(404))?;
        let post = self.blog.borrow().posts.iter().find(|p| p.id == id).cloned().ok_or_else(|| HttpError::new(404))?;
        cx.write_json(&post)
    }
}

/// The application; `secret` signs the login cookie (keep it out of the code in a real deployment).
pub fn make_app(secret: Vec<u8>) -> Application {
    let blog: Shared = Rc::default();
    let (b1, b2, b3, b4) = (blog.clone(), blog.clone(), blog.clone(), blog);
    Application::builder()
        .route(r"/", move || Home { blog: b1.clone() })
        .route(r"/login", || Login)
        .route(r"/logout", || Logout)
        .route(r"/posts", move || NewPost { blog: b2.clone() })
        .route(r"/api/posts", move || ApiPosts { blog: b3.clone() })
        .route(r"/api/posts/(\d+)", move || ApiPost { blog: b4.clone() })
        .current_user(|cx| cx.get_signed_cookie("user", None))
        .configure(move |s| {
            s.cookie_secret = Some(Secret::Single(secret));
            s.xsrf_cookies = true;
            s.login_url = Some("/".into());
        })
        .build()
        .expect("valid routes")
}

fn main() -> Result<(), gale_examples::CliError> {
    gale_examples::init_logging();
    let opts = Options::from_env();
    let port = opts.port();
    let secret: String = opts.get("cookie-secret", "change me: at least 32 random bytes in production".to_owned());
    // One worker: the posts live in memory on its thread.
    let handle =
        gale_web::run(1, port, Some("127.0.0.1"), Default::default(), move || make_app(secret.clone().into_bytes()))
            .map_err(|e| gale_examples::port_error(port, e))?;
    println!("blog_api listening on http://{}", handle.addr());
    Ok(gale_examples::on_shutdown_signal(move || handle.shutdown(std::time::Duration::from_secs(5)))?)
}
