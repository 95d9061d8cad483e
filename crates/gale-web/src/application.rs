//! [`Application`]: the route table, the settings, and the request pipeline (Tornado's `Application` and
//! `RequestHandler._execute`).

use crate::error::{HttpError, Result};
use crate::handler::{RequestContext, RequestHandler};
use crate::routing::Router;
use gale_http1::proto::request::RequestHead;
use gale_http1::{BodyReader, HttpServer, HttpService, Method, Request, ResponseWriter, ServerOptions};
use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::rc::Rc;
use std::task::Poll;

/// Application settings (Tornado's `Application(**settings)`).
#[derive(Clone, Debug)]
pub struct Settings {
    /// Debug mode: error pages show the error's message and panic text.
    pub debug: bool,
    /// The key that signs cookies (`set_signed_cookie`); required for signed cookies and XSRF.
    pub cookie_secret: Option<crate::signing::Secret>,
    /// Require an XSRF token on `POST`, `PUT`, `PATCH` and `DELETE` (Tornado's `xsrf_cookies`).
    pub xsrf_cookies: bool,
    /// Directory served under `static_url_prefix` by a [`StaticFileHandler`](crate::StaticFileHandler).
    pub static_path: Option<PathBuf>,
    /// URL prefix of static files (default `/static/`).
    pub static_url_prefix: String,
    /// Directory of templates for `render`.
    pub template_path: Option<PathBuf>,
    /// Gzip responses to clients that accept it (for compressible types, above a small size).
    pub compress_response: bool,
    /// Where `authenticated()` sends anonymous users (with `?next=`).
    pub login_url: Option<String>,
    /// Send an `ETag` with `GET` responses and answer a matching `If-None-Match` with 304 (default on).
    pub compute_etag: bool,
    /// Most form arguments a request may carry (default 1,000, as Tornado).
    pub max_arguments: usize,
    /// Most parts in a multipart body (default 100, as Tornado).
    pub max_multipart_parts: usize,
    /// Largest headers of one multipart part (default 10 KiB, as Tornado).
    pub max_part_header_size: usize,
    /// Log every request (method, path, status, duration) through `log`, target `gale_web::access`.
    pub access_log: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            debug: false,
            cookie_secret: None,
            xsrf_cookies: false,
            static_path: None,
            static_url_prefix: "/static/".to_owned(),
            template_path: None,
            compress_response: false,
            login_url: None,
            compute_etag: true,
            max_arguments: 1000,
            max_multipart_parts: 100,
            max_part_header_size: 10 * 1024,
            access_log: true,
        }
    }
}

/// What a [`Task`] shares with the future answering its requests: the context of the request, begun before
/// the future is polled for it and ended by the future when the request is over, and the flag telling that it
/// is over.
pub(crate) struct TaskShared {
    /// Borrowed by the future while the handler runs; kept, with its storage, from one request to the next.
    cx: RefCell<RequestContext>,
    /// Set by the future when a request is over (the future itself never completes).
    done: Cell<bool>,
}

/// What answers a route's requests (Tornado's `_execute`), one at a time: a future made once, which answers
/// the request put in its context each time it is polled anew, and sets `done` when it is over. Tasks are
/// reused from request to request with their storage, so that answering a request allocates nothing.
pub(crate) struct Task {
    shared: Rc<TaskShared>,
    /// Never completes: once a request is over, it waits for the next (see [`serve_requests`]).
    future: Pin<Box<dyn Future<Output = ()>>>,
}

/// The future of a task: for each request, a fresh handler from `factory`, run as Tornado's `_execute` does
/// (XSRF check, `prepare`, the streamed body, the method, errors, `finish`, `on_finish`, and the access log);
/// then the request's context is emptied, and `done` set.
// The context stays borrowed while the handler runs: its cell belongs to this request's task, which nothing
// else touches until the request is over.
#[allow(clippy::await_holding_refcell_ref)]
async fn serve_requests<F, H>(factory: Rc<F>, shared: Rc<TaskShared>)
where
    F: Fn() -> H,
    H: RequestHandler,
{
    loop {
        'request: {
            let mut handler = factory();
            let mut slot = shared.cx.borrow_mut();
            let cx = &mut *slot;
            if !cx.in_progress() {
                break 'request;
            }
            let closed_watch = cx.writer.clone();
            let verb = Verb::of(cx.request.method());
            let run = async {
                // A method the handler does not list is a 405 before anything else (Tornado's SUPPORTED_METHODS).
                let allowed = if std::ptr::eq(H::ALLOWED_METHODS, crate::handler::DEFAULT_METHODS) {
                    // The default list holds every method `Verb` names.
                    !matches!(verb, Verb::Other)
                } else {
                    method_allowed(H::ALLOWED_METHODS, cx.request.method())
                };
                if !allowed {
                    return Err(HttpError::new(405));
                }
                if cx.app.settings.xsrf_cookies
                    && !matches!(verb, Verb::Get | Verb::Head | Verb::Options)
                    && handler.check_xsrf()
                {
                    cx.check_xsrf_cookie()?;
                }
                handler.prepare(cx).await?;
                if cx.finished {
                    return Ok(());
                }
                if H::STREAM_REQUEST_BODY {
                    while let Some(chunk) = cx.body_chunk().await? {
                        handler.data_received(cx, chunk).await?;
                    }
                }
                match verb {
                    Verb::Get => handler.get(cx).await,
                    Verb::Head => handler.head(cx).await,
                    Verb::Post => handler.post(cx).await,
                    Verb::Put => handler.put(cx).await,
                    Verb::Delete => handler.delete(cx).await,
                    Verb::Patch => handler.patch(cx).await,
                    Verb::Options => handler.options(cx).await,
                    Verb::Other => Err(HttpError::new(405)),
                }
            };
            // Polls the handler and, while it waits, the client going away; the first to finish wins. (Pinned here
            // rather than handed to a helper future, which would store both futures twice.)
            let outcome = {
                let mut run = std::pin::pin!(run);
                let mut closed = std::pin::pin!(closed_watch.closed());
                std::future::poll_fn(|task| {
                    if let Poll::Ready(v) = run.as_mut().poll(task) {
                        return Poll::Ready(Ok(v));
                    }
                    if let Poll::Ready(()) = closed.as_mut().poll(task) {
                        return Poll::Ready(Err(()));
                    }
                    Poll::Pending
                })
                .await
            };
            match outcome {
                Ok(result) => {
                    match result {
                        Ok(()) => {
                            if let Err(e) = cx.finish() {
                                send_handler_error(&mut handler, cx, e);
                            }
                        }
                        Err(e) if e.is_handled() => {
                            let _ = cx.finish();
                        }
                        Err(e) => send_handler_error(&mut handler, cx, e),
                    }
                    handler.on_finish(cx);
                    log_request(cx, cx.status);
                }
                Err(()) => {
                    handler.on_connection_close();
                    log_request(cx, 499);
                }
            }
            drop(handler);
            cx.end();
        }
        shared.done.set(true);
        NextPoll(false).await;
    }
}

/// Pending once: until the task is polled for its next request.
struct NextPoll(bool);

impl Future for NextPoll {
    type Output = ();
    #[inline]
    fn poll(mut self: Pin<&mut Self>, _: &mut std::task::Context<'_>) -> Poll<()> {
        if self.0 {
            Poll::Ready(())
        } else {
            self.0 = true;
            Poll::Pending
        }
    }
}

/// Most idle tasks a route keeps besides its first (about the number of its requests answered at the same
/// time).
const SPARE_TASKS: usize = 64;

/// A route: its handler factory, type-erased, and the idle tasks its requests are answered with. (Not itself
/// type-erased, so that taking and giving back an idle task, what every request does, costs no dynamic call.)
pub(crate) struct Route {
    /// Makes a new task: a fresh handler from the factory for each request, run by [`serve_requests`].
    new_task: Box<dyn Fn() -> Task>,
    stream_body: bool,
    /// The idle task taken first: one request at a time needs no more.
    idle: Cell<Option<Task>>,
    /// More idle tasks, for requests answered at the same time.
    spare: RefCell<Vec<Task>>,
}

impl Route {
    fn stream_body(&self) -> bool {
        self.stream_body
    }

    /// An idle task to answer a request with: one an earlier request of this route gave back (see
    /// [`recycle`](Route::recycle)), or a new one.
    #[inline]
    fn task(&self) -> Task {
        match self.idle.take() {
            Some(task) => task,
            None => self.spare_or_new_task(),
        }
    }

    #[inline(never)]
    fn spare_or_new_task(&self) -> Task {
        self.spare.borrow_mut().pop().unwrap_or_else(|| (self.new_task)())
    }

    /// Takes back a task whose request is over, for the next request.
    #[inline]
    fn recycle(&self, task: Task) {
        if let Some(other) = self.idle.replace(Some(task)) {
            self.keep_spare(other);
        }
    }

    #[inline(never)]
    fn keep_spare(&self, task: Task) {
        let mut spare = self.spare.borrow_mut();
        if spare.len() < SPARE_TASKS {
            // Only the first idle task keeps a body buffer: one request at a time needs no more.
            task.shared.cx.borrow_mut().body = bytes::BytesMut::new();
            spare.push(task);
        }
    }
}

/// The route of handlers made by `factory`.
fn handler_route<F, H>(factory: F) -> Rc<Route>
where
    F: Fn() -> H + 'static,
    H: RequestHandler,
{
    let factory = Rc::new(factory);
    Rc::new(Route {
        new_task: Box::new(move || {
            let shared = Rc::new(TaskShared { cx: RefCell::new(RequestContext::idle()), done: Cell::new(false) });
            let future = Box::pin(serve_requests(factory.clone(), shared.clone()));
            Task { shared, future }
        }),
        stream_body: H::STREAM_REQUEST_BODY,
        idle: Default::default(),
        spare: Default::default(),
    })
}

/// Hook computing the current user of a request.
pub type CurrentUserHook = Rc<dyn Fn(&mut RequestContext) -> Option<String>>;

pub(crate) struct AppInner {
    pub(crate) settings: Settings,
    router: Router<Rc<Route>>,
    default_route: Rc<Route>,
    any_streaming: bool,
    pub(crate) current_user_hook: Option<CurrentUserHook>,
    templates: Option<crate::template::Templates>,
    static_versions: std::cell::RefCell<std::collections::HashMap<String, Option<String>>>,
    /// The hash of the last `ETag` computed, and the tag: responses repeating a body do not format it again.
    /// (At first the tag of hash 0: a pair that is always right needs no `Option` to test.)
    last_etag: std::cell::Cell<(u64, gale_http1::headers::HashEtag)>,
}

impl AppInner {
    /// The `ETag` of a response body (see [`etag_for`](crate::static_files::etag_for)), formatted only when
    /// it differs from the previous one.
    pub(crate) fn etag(&self, body: &[u8]) -> gale_http1::headers::HashEtag {
        let h = crate::static_files::etag_hash(body);
        if self.last_etag.get().0 != h {
            self.last_etag.set((h, gale_http1::headers::HashEtag::from_hash(h)));
        }
        // Read back from the cell on both paths: the tag is copied once.
        self.last_etag.get().1
    }

    pub(crate) fn reverse_url(&self, name: &str, args: &[&str]) -> Result<String> {
        self.router.reverse_url(name, args).map_err(|e| HttpError::with_message(500, e.to_string()))
    }

    pub(crate) fn secret(&self) -> Result<&crate::signing::Secret> {
        self.settings
            .cookie_secret
            .as_ref()
            .ok_or_else(|| HttpError::with_message(500, "the application needs a cookie_secret for signed cookies"))
    }

    pub(crate) fn render<T: serde::Serialize>(
        &self,
        name: &str,
        context: T,
        xsrf_form_html: &str,
        current_user: Option<&str>,
    ) -> Result<String> {
        let Some(t) = &self.templates else {
            return Err(HttpError::with_message(500, "the application has no template_path"));
        };
        let form = minijinja::Value::from_safe_string(xsrf_form_html.to_owned());
        let extra = [
            ("xsrf_form_html", minijinja::Value::from_function(move || form.clone())),
            ("current_user", minijinja::Value::from(current_user)),
        ];
        t.render_with(name, context, extra).map_err(|e| HttpError::with_message(500, format!("template {name}: {e}")))
    }

    pub(crate) fn static_url(&self, path: &str) -> String {
        let prefix = &self.settings.static_url_prefix;
        let version = {
            let mut cache = self.static_versions.borrow_mut();
            cache
                .entry(path.to_owned())
                .or_insert_with(|| {
                    self.settings.static_path.as_ref().and_then(|root| crate::static_files::content_version(root, path))
                })
                .clone()
        };
        match version {
            Some(v) => format!("{prefix}{path}?v={v}"),
            None => format!("{prefix}{path}"),
        }
    }
}

/// A web application: an ordered route table of regex patterns → handler factories, plus settings.
///
/// Routes are tried in order; the first whose pattern matches the whole path wins, and its captures become
/// the handler's path arguments. Unmatched paths get a 404 (or the default handler's answer).
///
/// An `Application` lives on one thread (its handlers need not be `Send`); for several cores, build one per
/// worker with [`run`](crate::run).
///
/// # Examples
///
/// ```no_run
/// use gale_web::{Application, RequestContext, RequestHandler, Result};
///
/// struct MainHandler;
/// impl RequestHandler for MainHandler {
///     async fn get(&mut self, cx: &mut RequestContext) -> Result {
///         cx.write("Hello, world");
///         Ok(())
///     }
/// }
///
/// let io_loop = gale_web::IOLoop::current();
/// let app = Application::builder().route(r"/", || MainHandler).build()?;
/// let _server = app.listen(8888)?;
/// io_loop.start()?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone)]
pub struct Application {
    pub(crate) inner: Rc<AppInner>,
}

impl fmt::Debug for Application {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Application").field("routes", &self.inner.router.len()).finish()
    }
}

/// Builds an [`Application`].
pub struct ApplicationBuilder {
    routes: Vec<(String, Option<String>, Rc<Route>)>,
    settings: Settings,
    default_route: Option<Rc<Route>>,
    current_user: Option<CurrentUserHook>,
    template_globals: Vec<(String, minijinja::Value)>,
}

impl fmt::Debug for ApplicationBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApplicationBuilder").field("routes", &self.routes.len()).finish()
    }
}

impl Application {
    /// Starts building an application.
    pub fn builder() -> ApplicationBuilder {
        ApplicationBuilder {
            routes: Vec::new(),
            settings: Settings::default(),
            default_route: None,
            current_user: None,
            template_globals: Vec::new(),
        }
    }

    /// The settings.
    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    /// The URL of the route named `name` with `args` (Tornado's `reverse_url`).
    ///
    /// # Errors
    ///
    /// If there is no such route or the arguments don't fit.
    pub fn reverse_url(&self, name: &str, args: &[&str]) -> Result<String> {
        self.inner.reverse_url(name, args)
    }

    /// Serves the application on `port` of 127.0.0.1... no: of all interfaces, on the current thread's loop
    /// (Tornado's `app.listen`). Keep the returned server alive; run the loop to serve.
    ///
    /// # Errors
    ///
    /// If the port cannot be bound.
    pub fn listen(&self, port: u16) -> io::Result<HttpServer<Application>> {
        self.listen_on(port, None, ServerOptions::default())
    }

    /// Serves on `port` of `address` with server options.
    ///
    /// # Errors
    ///
    /// If the port cannot be bound.
    pub fn listen_on(
        &self,
        port: u16,
        address: Option<&str>,
        options: ServerOptions,
    ) -> io::Result<HttpServer<Application>> {
        let server = HttpServer::new(&gale_http1::IOLoop::current(), self.clone(), options)?;
        server.listen(port, address)?;
        Ok(server)
    }
}

impl ApplicationBuilder {
    /// Adds a route: `pattern` is a regex matched against the whole path; `factory` makes a handler per
    /// request.
    #[must_use]
    pub fn route<F, H>(self, pattern: &str, factory: F) -> Self
    where
        F: Fn() -> H + 'static,
        H: RequestHandler,
    {
        self.named_route_opt(pattern, None, factory)
    }

    /// Adds a route with a name, for [`Application::reverse_url`].
    #[must_use]
    pub fn named_route<F, H>(self, name: &str, pattern: &str, factory: F) -> Self
    where
        F: Fn() -> H + 'static,
        H: RequestHandler,
    {
        self.named_route_opt(pattern, Some(name), factory)
    }

    fn named_route_opt<F, H>(mut self, pattern: &str, name: Option<&str>, factory: F) -> Self
    where
        F: Fn() -> H + 'static,
        H: RequestHandler,
    {
        let route = handler_route(factory);
        self.routes.push((pattern.to_owned(), name.map(str::to_owned), route));
        self
    }

    /// The handler for paths no route matches (default: 404).
    #[must_use]
    pub fn default_handler<F, H>(mut self, factory: F) -> Self
    where
        F: Fn() -> H + 'static,
        H: RequestHandler,
    {
        self.default_route = Some(handler_route(factory));
        self
    }

    /// Replaces the settings.
    #[must_use]
    pub fn settings(mut self, settings: Settings) -> Self {
        self.settings = settings;
        self
    }

    /// Changes the settings in place.
    #[must_use]
    pub fn configure(mut self, f: impl FnOnce(&mut Settings)) -> Self {
        f(&mut self.settings);
        self
    }

    /// How to find the logged-in user of a request (Tornado's `get_current_user`), e.g. from a signed
    /// cookie: `|cx| cx.get_signed_cookie("user", None)`.
    #[must_use]
    pub fn current_user(mut self, hook: impl Fn(&mut RequestContext) -> Option<String> + 'static) -> Self {
        self.current_user = Some(Rc::new(hook));
        self
    }

    /// Makes `value` available to every template as `name`.
    #[must_use]
    pub fn template_global(mut self, name: &str, value: impl serde::Serialize) -> Self {
        self.template_globals.push((name.to_owned(), minijinja::Value::from_serialize(value)));
        self
    }

    /// Builds the application: compiles the routes, adds the static file route when `static_path` is set,
    /// and loads the template environment.
    ///
    /// # Errors
    ///
    /// [`io::ErrorKind::InvalidInput`] for an invalid route pattern.
    pub fn build(self) -> io::Result<Application> {
        let mut router = Router::new();
        let mut any_streaming = false;
        let mut routes = self.routes;
        if let Some(root) = &self.settings.static_path {
            let prefix = regex::escape(&self.settings.static_url_prefix);
            let root = root.clone();
            let route = handler_route(move || crate::StaticFileHandler::new(root.clone()));
            routes.insert(0, (format!("{prefix}(.*)"), None, route));
        }
        for (pattern, name, route) in routes {
            any_streaming |= route.stream_body();
            router
                .add(&pattern, name.as_deref(), route)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("route {pattern:?}: {e}")))?;
        }
        let templates = match &self.settings.template_path {
            Some(p) => {
                let mut t = crate::template::Templates::from_dir(p);
                for (k, v) in self.template_globals {
                    t.add_global(&k, v);
                }
                Some(t)
            }
            None => None,
        };
        let default_route = self.default_route.unwrap_or_else(|| handler_route(|| NotFound));
        Ok(Application {
            inner: Rc::new(AppInner {
                settings: self.settings,
                router,
                default_route,
                any_streaming,
                current_user_hook: self.current_user,
                templates,
                static_versions: Default::default(),
                last_etag: std::cell::Cell::new((0, gale_http1::headers::HashEtag::from_hash(0))),
            }),
        })
    }
}

/// Answers 404 (the default for unmatched paths).
struct NotFound;

impl RequestHandler for NotFound {
    async fn prepare(&mut self, _cx: &mut RequestContext) -> Result {
        Err(HttpError::new(404))
    }
}

impl HttpService for Application {
    fn stream_body(&self, head: &RequestHead) -> bool {
        self.inner.any_streaming && self.inner.router.find(head.path()).is_some_and(|(r, _)| r.stream_body())
    }

    // Not an `async fn`: the request is routed and its context built when the future is made, so that the
    // future holds the task rather than the request, and the request is moved once, into its context. (Nothing
    // here runs the application's code: the handler is made when the future first runs, where a panic is
    // caught.)
    fn call(
        &self,
        request: Request,
        body: Option<BodyReader>,
        writer: ResponseWriter,
    ) -> impl std::future::Future<Output = ()> {
        let inner = &self.inner;
        let (route, args) = match inner.router.lookup(request.path()) {
            Some((route, args)) => (route, args),
            None => (&inner.default_route, None),
        };
        let task = route.task();
        {
            let mut cx = task.shared.cx.borrow_mut();
            cx.begin(inner.clone(), request, writer, body);
            if let Some(args) = args.filter(|a| !a.is_empty()) {
                let text = |v: &Option<Vec<u8>>| {
                    v.as_deref().map(|b| String::from_utf8_lossy(b).into_owned()).unwrap_or_default()
                };
                let extra = cx.extra();
                extra.path_args = args.positional().iter().map(text).collect();
                extra.path_kwargs = args.named().iter().map(|(k, v)| (k.to_string(), text(v))).collect();
            }
            if inner.settings.access_log && log::max_level() >= log::LevelFilter::Error {
                cx.extra().started = Some(std::time::Instant::now());
            }
        }
        Answer { route, task: Some(task) }
    }
}

/// Runs the task answering a request (its context filled in) and gives it back to its route, or answers with
/// the application's 500 page if the handler (or its factory) panics.
struct Answer<'a> {
    route: &'a Route,
    /// Taken once the request is over.
    task: Option<Task>,
}

impl Future for Answer<'_> {
    type Output = ();

    // Inlined into the server's loop: one call less per request.
    #[inline(always)]
    fn poll(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let Some(task) = &mut this.task else { return Poll::Ready(()) };
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| task.future.as_mut().poll(cx))) {
            Ok(_) if task.shared.done.replace(false) => {
                if let Some(task) = this.task.take() {
                    this.route.recycle(task);
                }
                Poll::Ready(())
            }
            Ok(_) => Poll::Pending,
            Err(payload) => {
                if let Some(task) = this.task.take() {
                    handler_panicked(task, &*payload);
                }
                Poll::Ready(())
            }
        }
    }
}

/// Answers with the application's 500 page the request of a task whose handler panicked (or hands the panic
/// on to the server if the response was started).
#[cold]
#[inline(never)]
fn handler_panicked(task: Task, payload: &(dyn std::any::Any + Send)) {
    let msg = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".to_owned());
    // A task that panicked is not reused; its handler and context go first, as they would have (the
    // handler's future let go of the context when it unwound).
    let Task { shared, future } = task;
    drop(future);
    let (app, writer) = {
        let mut cx = shared.cx.borrow_mut();
        (cx.app.take(), cx.writer.take())
    };
    drop(shared);
    // No request in progress: it was over, nothing more to send.
    let (Some(app), Some(fallback)) = (app, writer) else {
        log::error!("handler panicked: {msg}");
        return;
    };
    if fallback.head_written() && !fallback.is_finished() {
        // Too late for an error page, and ending the cut response here would pass it off as complete:
        // hand the panic on to the server, which logs it and closes the connection.
        std::panic::resume_unwind(Box::new(msg));
    }
    log::error!("handler panicked: {msg}");
    if !fallback.head_written() {
        let detail = if app.settings.debug {
            format!("<pre>{}</pre>", crate::escape::xhtml_escape(&msg))
        } else {
            String::new()
        };
        let page = format!(
            "<html><title>500: Internal Server Error</title><body>500: Internal Server Error{detail}</body></html>"
        );
        let mut headers = gale_http1::HeaderMap::new();
        headers.insert("Content-Type", "text/html; charset=UTF-8");
        let _ = fallback.write_head(500, None, &headers, Some(page.len() as u64));
        let _ = fallback.write(page);
        let _ = fallback.finish();
    }
}

/// The methods handlers have a method for (`Method` without its extension bytes, to copy freely).
#[derive(Clone, Copy)]
enum Verb {
    Get,
    Head,
    Post,
    Put,
    Delete,
    Patch,
    Options,
    Other,
}

impl Verb {
    fn of(method: &Method) -> Verb {
        match method {
            Method::Get => Verb::Get,
            Method::Head => Verb::Head,
            Method::Post => Verb::Post,
            Method::Put => Verb::Put,
            Method::Delete => Verb::Delete,
            Method::Patch => Verb::Patch,
            Method::Options => Verb::Options,
            _ => Verb::Other,
        }
    }
}

/// Whether `method` is in `allowed`; the default list holds every standard method but `CONNECT` and `TRACE`.
#[inline]
fn method_allowed(allowed: &[&str], method: &Method) -> bool {
    (std::ptr::eq(allowed, crate::handler::DEFAULT_METHODS)
        && matches!(
            method,
            Method::Get | Method::Head | Method::Post | Method::Put | Method::Delete | Method::Patch | Method::Options
        ))
        || allowed.contains(&method.as_str())
}

fn send_handler_error<H: RequestHandler>(handler: &mut H, cx: &mut RequestContext, e: HttpError) {
    let status = e.status();
    if status >= 500 {
        log::error!("{} {}: {e}", cx.request.method(), cx.request.target());
    } else if let Some(m) = e.log_message() {
        log::warn!("{status} {} {}: {m}", cx.request.method(), cx.request.target());
    }
    if cx.headers_written {
        // Too late for an error page: end what was started (the connection closes if a length is owed).
        let _ = cx.writer.finish();
        cx.finished = true;
        return;
    }
    cx.finished = false;
    if status == 405 {
        cx.extra().allow = Some(H::ALLOWED_METHODS.join(", "));
    }
    handler.write_error(cx, status, &e);
    if !cx.finished {
        if let Err(e2) = cx.finish() {
            log::error!("cannot send the error page: {e2}");
        }
    }
}

#[inline]
fn log_request(cx: &RequestContext, status: u16) {
    if cx.app.settings.access_log {
        write_access_log(cx, status);
    }
}

fn write_access_log(cx: &RequestContext, status: u16) {
    let ms = cx.extra.as_ref().and_then(|e| e.started).map_or(0.0, |t| t.elapsed().as_secs_f64() * 1000.0);
    let (method, uri, ip) = (cx.request.method(), cx.request.target(), cx.request.remote_ip());
    if status < 400 {
        log::info!(target: "gale_web::access", "{status} {method} {uri} ({ip}) {ms:.2}ms");
    } else if status < 500 {
        log::warn!(target: "gale_web::access", "{status} {method} {uri} ({ip}) {ms:.2}ms");
    } else {
        log::error!(target: "gale_web::access", "{status} {method} {uri} ({ip}) {ms:.2}ms");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_route_reuses_its_idle_tasks_and_keeps_a_bounded_number_of_spares() {
        struct Nothing;
        impl RequestHandler for Nothing {}
        let route = handler_route(|| Nothing);
        let address = |t: &Task| Rc::as_ptr(&t.shared);
        let first = route.task();
        let at = address(&first);
        route.recycle(first);
        let again = route.task();
        assert_eq!(address(&again), at, "the idle task is reused");
        let tasks: Vec<_> = std::iter::once(again).chain((0..SPARE_TASKS + 5).map(|_| route.task())).collect();
        for task in tasks {
            route.recycle(task);
        }
        assert_eq!(route.spare.borrow().len(), SPARE_TASKS);
        assert!(route.spare.borrow().iter().all(|t| t.shared.cx.borrow().body.capacity() == 0));
        assert!(route.idle.take().is_some());
    }

    #[test]
    fn a_task_between_requests_keeps_neither_its_request_nor_the_application() {
        struct Hi;
        impl RequestHandler for Hi {
            async fn get(&mut self, cx: &mut RequestContext) -> Result {
                cx.set_header("X-Owned", String::from("yes"));
                cx.write("hi");
                Ok(())
            }
        }
        let app = Application::builder().route("/", || Hi).configure(|s| s.access_log = false).build().unwrap();
        let weak = Rc::downgrade(&app.inner);
        let route = app.inner.router.find("/").map(|(r, _)| r.clone()).expect("the route");
        let s = crate::testing::TestServer::new(app.clone());
        let handles = weak.strong_count();
        for _ in 0..3 {
            let r = s.fetch("/");
            assert_eq!(r.body().as_ref(), b"hi");
            assert_eq!(r.headers().get("X-Owned"), Some("yes"));
        }
        let task = route.idle.take().expect("the idle task");
        {
            let cx = task.shared.cx.borrow();
            assert!(!cx.in_progress());
            assert!(cx.headers.is_empty(), "emptied for the next request");
        }
        route.recycle(task);
        // The idle context does not hold the application (which holds the task): its handles are the same.
        assert_eq!(weak.strong_count(), handles);
        drop(s);
    }

    #[test]
    fn the_default_methods_are_the_standard_ones_but_connect_and_trace() {
        let standard =
            [Method::Get, Method::Head, Method::Post, Method::Put, Method::Delete, Method::Patch, Method::Options];
        for m in &standard {
            assert!(crate::handler::DEFAULT_METHODS.contains(&m.as_str()));
            assert!(method_allowed(crate::handler::DEFAULT_METHODS, m));
            assert!(!method_allowed(&["X"], m));
        }
        assert_eq!(crate::handler::DEFAULT_METHODS.len(), standard.len());
        for m in [Method::Connect, Method::Trace] {
            assert!(!method_allowed(crate::handler::DEFAULT_METHODS, &m));
        }
        assert!(method_allowed(&["GET", "TRACE"], &Method::Trace));
        // `serve_requests` answers for the default list from the verb alone.
        for m in standard.iter().chain(&[Method::Connect, Method::Trace]) {
            assert_eq!(!matches!(Verb::of(m), Verb::Other), method_allowed(crate::handler::DEFAULT_METHODS, m));
        }
    }
}
