//! [`RequestHandler`] and the [`RequestContext`] its methods work with — Tornado's `RequestHandler`, split
//! into your type (what to do) and the context (the request, the response being built, cookies, arguments).

use crate::application::AppInner;
use crate::error::{HttpError, Result};
use crate::params::{Arguments, UploadedFile};
use bytes::{Bytes, BytesMut};
use gale_http1::headers::{HeaderBytes, HeaderMap};
use gale_http1::{BodyReader, Method, Request, ResponseWriter};
use std::fmt;
use std::future::Future;
use std::rc::Rc;
use std::time::Instant;

/// Room a response body gets before it must grow (below glibc's per-thread cache limit).
const BODY_BUFFER: usize = 1000;

/// The methods a handler answers (Tornado's `SUPPORTED_METHODS`), for the `Allow` header of a 405.
pub const DEFAULT_METHODS: &[&str] = &["GET", "HEAD", "POST", "DELETE", "PATCH", "PUT", "OPTIONS"];

/// Handles requests for a route. A fresh handler is made for every request (by the factory given to the
/// route), so fields hold per-request state; state shared between requests lives in `Rc`s the factory clones.
///
/// Implement the methods you answer; the others answer 405 with an `Allow` header listing
/// [`ALLOWED_METHODS`](RequestHandler::ALLOWED_METHODS). Return `Err(HttpError)` to answer with an error
/// page (see [`write_error`](RequestHandler::write_error)). If a method returns without calling
/// [`RequestContext::finish`], the response is finished for it.
///
/// # Examples
///
/// ```
/// use gale_web::{RequestContext, RequestHandler, Result};
///
/// struct MainHandler;
///
/// impl RequestHandler for MainHandler {
///     async fn get(&mut self, cx: &mut RequestContext) -> Result {
///         cx.write("Hello, world");
///         Ok(())
///     }
/// }
/// ```
#[allow(unused_variables)]
pub trait RequestHandler: 'static {
    /// The methods this handler implements, for the `Allow` header of a 405 response.
    const ALLOWED_METHODS: &'static [&'static str] = DEFAULT_METHODS;

    /// Whether the request body is streamed to [`data_received`](RequestHandler::data_received) instead of
    /// being buffered (Tornado's `@stream_request_body`).
    const STREAM_REQUEST_BODY: bool = false;

    /// Runs before the method (after the XSRF check); return an error or finish the response to stop there.
    fn prepare(&mut self, cx: &mut RequestContext) -> impl Future<Output = Result> {
        async { Ok(()) }
    }

    /// Answers `GET`.
    fn get(&mut self, cx: &mut RequestContext) -> impl Future<Output = Result> {
        async { Err(HttpError::new(405)) }
    }

    /// Answers `HEAD`; by default as `GET` (the server sends the headers, `Content-Length` included, and
    /// drops the body).
    fn head(&mut self, cx: &mut RequestContext) -> impl Future<Output = Result> {
        self.get(cx)
    }

    /// Answers `POST`.
    fn post(&mut self, cx: &mut RequestContext) -> impl Future<Output = Result> {
        async { Err(HttpError::new(405)) }
    }

    /// Answers `PUT`.
    fn put(&mut self, cx: &mut RequestContext) -> impl Future<Output = Result> {
        async { Err(HttpError::new(405)) }
    }

    /// Answers `DELETE`.
    fn delete(&mut self, cx: &mut RequestContext) -> impl Future<Output = Result> {
        async { Err(HttpError::new(405)) }
    }

    /// Answers `PATCH`.
    fn patch(&mut self, cx: &mut RequestContext) -> impl Future<Output = Result> {
        async { Err(HttpError::new(405)) }
    }

    /// Answers `OPTIONS`.
    fn options(&mut self, cx: &mut RequestContext) -> impl Future<Output = Result> {
        async { Err(HttpError::new(405)) }
    }

    /// Receives a piece of a streamed body (only with [`STREAM_REQUEST_BODY`](RequestHandler::STREAM_REQUEST_BODY));
    /// called after `prepare` and before the method.
    fn data_received(&mut self, cx: &mut RequestContext, chunk: Bytes) -> impl Future<Output = Result> {
        async { Ok(()) }
    }

    /// Writes the error page for `status` (Tornado's `write_error`). The default writes a small HTML page;
    /// in debug mode it includes the error's log message.
    fn write_error(&mut self, cx: &mut RequestContext, status: u16, error: &HttpError) {
        cx.write_default_error(status, error);
    }

    /// Called after the response was sent, for cleanup and logging (Tornado's `on_finish`).
    fn on_finish(&mut self, cx: &mut RequestContext) {}

    /// Called when the client goes away before the response is finished (long polls); the handler is then
    /// dropped.
    fn on_connection_close(&mut self) {}

    /// Whether unsafe methods must carry a valid XSRF token when the application's `xsrf_cookies` is on.
    fn check_xsrf(&self) -> bool {
        true
    }
}

/// Parsed body arguments and uploaded files.
pub(crate) type BodyArguments = (Arguments, Vec<(String, UploadedFile)>);

/// Everything a handler method works with: the request, its arguments, and the response being built
/// (Tornado's `RequestHandler` attributes and methods that are not about your logic).
///
/// Output is buffered: [`write`](RequestContext::write) appends to the body; [`finish`](RequestContext::finish)
/// (or returning from the method) sends headers and body together — with an `ETag` and a 304 for a matching
/// `If-None-Match`, and gzip when the application compresses. [`flush`](RequestContext::flush) sends what is
/// written so far (a streaming response).
pub struct RequestContext {
    pub(crate) app: Current<Rc<AppInner>>,
    pub(crate) request: Current<Request>,
    pub(crate) writer: Current<ResponseWriter>,
    pub(crate) status: u16,
    pub(crate) headers_written: bool,
    pub(crate) finished: bool,
    /// Boxed, and kept, emptied, for the next request of the context's task (see [`end`](RequestContext::end)):
    /// the map keeps the storage its owned values needed.
    pub(crate) headers: Box<HeaderMap>,
    /// Whether `headers` has a `Content-Type` field, and an `Etag` field: kept up to date by every change of
    /// `headers` (see [`note_field`](RequestContext::note_field)), so that finishing a response need not search.
    pub(crate) has_type: bool,
    pub(crate) has_etag: bool,
    /// The buffer response bodies are written into: a small body sent whole is copied from it into the output
    /// and it is emptied (see [`finish`](RequestContext::finish)); a streamed body is split off its front, and
    /// once it is used up, its storage is reclaimed if the bodies sent from it are gone. Kept for the next
    /// request, so a small response allocates nothing.
    pub(crate) body: BytesMut,
    /// The reader of a streamed body (`None` for a buffered one); a [`FallbackHandler`](crate::FallbackHandler)
    /// hands it on to its service.
    pub(crate) streamed_body: Option<BodyReader>,
    /// State most requests never need (path arguments, parsed arguments, cookies' users, ...), allocated on
    /// first use so that the context of a plain request stays small and cheap to build.
    pub(crate) extra: Option<Box<Extra>>,
}

/// A part of a [`RequestContext`] that belongs to the request in progress. A context stays in its task from
/// one request to the next, with the storage it reuses (header map, body buffer), but lets go of the request,
/// the connection's writer and the application when a request is over (see [`end`](RequestContext::end)):
/// only then are these empty, when no handler sees the context.
pub(crate) struct Current<T>(Option<T>);

impl<T> Current<T> {
    /// Takes the part out (the context is over or unusable afterwards).
    pub(crate) fn take(&mut self) -> Option<T> {
        self.0.take()
    }
}

impl<T> std::ops::Deref for Current<T> {
    type Target = T;

    #[inline]
    fn deref(&self) -> &T {
        self.0.as_ref().expect("a request in progress")
    }
}

impl<T> std::ops::DerefMut for Current<T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        self.0.as_mut().expect("a request in progress")
    }
}

/// Header maps that held more fields than this are not kept for the next request (their storage would stay
/// that large).
const REUSED_HEADER_MAP_FIELDS: usize = 16;

/// The rarely used part of a [`RequestContext`].
#[derive(Default)]
pub(crate) struct Extra {
    pub(crate) path_args: Vec<String>,
    pub(crate) path_kwargs: Vec<(String, String)>,
    pub(crate) reason: Option<String>,
    pub(crate) query_args: Option<Arguments>,
    pub(crate) body_args: Option<BodyArguments>,
    pub(crate) current_user: Option<Option<String>>,
    pub(crate) xsrf_token: Option<String>,
    /// When the request started, for the access log (only recorded when it is on).
    pub(crate) started: Option<Instant>,
    /// The `Allow` header of a 405 error page.
    pub(crate) allow: Option<String>,
}

impl fmt::Debug for RequestContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestContext")
            .field("method", &self.request.method().as_str())
            .field("uri", &self.request.target())
            .field("status", &self.status)
            .field("finished", &self.finished)
            .finish()
    }
}

impl RequestContext {
    /// A context waiting for its first request (see [`begin`](RequestContext::begin)).
    pub(crate) fn idle() -> Self {
        RequestContext {
            app: Current(None),
            request: Current(None),
            writer: Current(None),
            status: 200,
            headers_written: false,
            finished: false,
            headers: Box::default(),
            has_type: false,
            has_etag: false,
            body: BytesMut::new(),
            streamed_body: None,
            extra: None,
        }
    }

    /// Starts answering `request` (`body` is its reader if it is streamed), in a context that is idle: new, or
    /// whose last request [`end`](RequestContext::end)ed.
    #[inline]
    pub(crate) fn begin(
        &mut self,
        app: Rc<AppInner>,
        request: Request,
        writer: ResponseWriter,
        body: Option<BodyReader>,
    ) {
        self.app.0 = Some(app);
        self.request.0 = Some(request);
        self.writer.0 = Some(writer);
        // The default `Content-Type` is added when the head is sent, if the handler set none.
        self.status = 200;
        self.headers_written = false;
        self.finished = false;
        self.has_type = false;
        self.has_etag = false;
        self.streamed_body = body;
    }

    /// Whether a request is in progress (begun and not ended).
    pub(crate) fn in_progress(&self) -> bool {
        self.request.0.is_some()
    }

    /// Ends the request in progress: lets go of it (and of its writer and application), and empties the
    /// header map and the body buffer for the next one, unless they grew large.
    // Inlined into the task's loop, its one caller.
    #[inline(always)]
    pub(crate) fn end(&mut self) {
        // In the order of the fields, as the context of a request used to be dropped.
        self.app.0 = None;
        self.request.0 = None;
        self.writer.0 = None;
        if self.headers.len() <= REUSED_HEADER_MAP_FIELDS {
            self.headers.clear();
        } else {
            *self.headers = HeaderMap::new();
        }
        if !self.body.is_empty() {
            // Bodies sent from the buffer may still hold its storage.
            self.body = BytesMut::new();
        }
        self.streamed_body = None;
        // Tested here: dropping the usual `None` through the field's drop glue would cost a call.
        if self.extra.is_some() {
            self.extra = None;
        }
    }

    /// The rarely used state, allocated now if it was not.
    pub(crate) fn extra(&mut self) -> &mut Extra {
        self.extra.get_or_insert_with(Default::default)
    }

    /// The custom reason phrase, if any.
    fn reason(&self) -> Option<&str> {
        self.extra.as_ref().and_then(|e| e.reason.as_deref())
    }

    fn clear_reason(&mut self) {
        if let Some(e) = &mut self.extra {
            e.reason = None;
        }
    }

    // ---- the request -----------------------------------------------------------------------------------

    /// The request.
    pub fn request(&self) -> &Request {
        &self.request
    }

    /// The request method.
    pub fn method(&self) -> &Method {
        self.request.method()
    }

    /// The request path (without the query).
    pub fn path(&self) -> &str {
        self.request.path()
    }

    /// A request header (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.request.headers().get(name)
    }

    /// Positional captures of the route's pattern, URL-decoded.
    pub fn path_args(&self) -> &[String] {
        self.extra.as_ref().map_or(&[], |e| &e.path_args)
    }

    /// The positional capture `i`, or `""`.
    pub fn path_arg(&self, i: usize) -> &str {
        self.path_args().get(i).map_or("", String::as_str)
    }

    /// A named capture of the route's pattern (`(?P<name>…)`).
    pub fn path_kwarg(&self, name: &str) -> Option<&str> {
        self.extra.as_ref()?.path_kwargs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// The application's settings.
    pub fn settings(&self) -> &crate::Settings {
        &self.app.settings
    }

    /// The URL of the route named `name` with `args` filled in (Tornado's `reverse_url`).
    ///
    /// # Errors
    ///
    /// 500 if there is no such route or the arguments don't fit it.
    pub fn reverse_url(&self, name: &str, args: &[&str]) -> Result<String> {
        self.app.reverse_url(name, args)
    }

    // ---- arguments -------------------------------------------------------------------------------------

    fn query_arguments(&mut self) -> &Arguments {
        if self.extra.as_ref().is_none_or(|e| e.query_args.is_none()) {
            let parsed = crate::params::parse_query(
                self.request.query().unwrap_or("").as_bytes(),
                self.app.settings.max_arguments,
            )
            .unwrap_or_else(|e| {
                log::debug!("bad query string: {e}");
                Arguments::default()
            });
            self.extra().query_args = Some(parsed);
        }
        self.extra.as_ref().and_then(|e| e.query_args.as_ref()).expect("parsed")
    }

    fn body_arguments_parsed(&mut self) -> Result<&(Arguments, Vec<(String, UploadedFile)>)> {
        if self.extra.as_ref().is_none_or(|e| e.body_args.is_none()) {
            let content_type = self.request.headers().get("Content-Type").unwrap_or("").to_owned();
            let parsed = crate::params::parse_body(&content_type, self.request.body(), &self.app.settings)?;
            self.extra().body_args = Some(parsed);
        }
        Ok(self.extra.as_ref().and_then(|e| e.body_args.as_ref()).expect("parsed"))
    }

    /// The last value of argument `name` from the query or the body (Tornado's `get_argument`), stripped.
    ///
    /// # Errors
    ///
    /// 400 if it is missing (or the body cannot be parsed).
    pub fn get_argument(&mut self, name: &str) -> Result<String> {
        self.get_argument_opt(name)?.ok_or_else(|| HttpError::missing_argument(name))
    }

    /// The last value of argument `name`, or `default` when missing.
    ///
    /// # Errors
    ///
    /// 400 if the body cannot be parsed.
    pub fn get_argument_or(&mut self, name: &str, default: &str) -> Result<String> {
        Ok(self.get_argument_opt(name)?.unwrap_or_else(|| default.to_owned()))
    }

    /// The last value of argument `name`, if present.
    ///
    /// # Errors
    ///
    /// 400 if the body cannot be parsed.
    pub fn get_argument_opt(&mut self, name: &str) -> Result<Option<String>> {
        Ok(self.get_arguments(name)?.pop())
    }

    /// Every value of argument `name`, query first, then body (Tornado's `get_arguments`), stripped.
    ///
    /// # Errors
    ///
    /// 400 if the body cannot be parsed.
    pub fn get_arguments(&mut self, name: &str) -> Result<Vec<String>> {
        let mut v: Vec<String> = self.query_arguments().get_all(name).iter().map(|s| s.trim().to_owned()).collect();
        v.extend(self.body_arguments_parsed()?.0.get_all(name).iter().map(|s| s.trim().to_owned()));
        Ok(v)
    }

    /// The last value of query argument `name`.
    ///
    /// # Errors
    ///
    /// 400 if missing.
    pub fn get_query_argument(&mut self, name: &str) -> Result<String> {
        self.get_query_arguments(name).pop().ok_or_else(|| HttpError::missing_argument(name))
    }

    /// Every value of query argument `name`.
    pub fn get_query_arguments(&mut self, name: &str) -> Vec<String> {
        self.query_arguments().get_all(name).iter().map(|s| s.trim().to_owned()).collect()
    }

    /// The last value of body argument `name` (urlencoded or multipart form).
    ///
    /// # Errors
    ///
    /// 400 if missing or if the body cannot be parsed.
    pub fn get_body_argument(&mut self, name: &str) -> Result<String> {
        self.get_body_arguments(name)?.pop().ok_or_else(|| HttpError::missing_argument(name))
    }

    /// Every value of body argument `name`.
    ///
    /// # Errors
    ///
    /// 400 if the body cannot be parsed.
    pub fn get_body_arguments(&mut self, name: &str) -> Result<Vec<String>> {
        Ok(self.body_arguments_parsed()?.0.get_all(name).iter().map(|s| s.trim().to_owned()).collect())
    }

    /// Files uploaded in a multipart form field `name` (Tornado's `request.files[name]`).
    ///
    /// # Errors
    ///
    /// 400 if the body cannot be parsed.
    pub fn files(&mut self, name: &str) -> Result<Vec<UploadedFile>> {
        Ok(self.body_arguments_parsed()?.1.iter().filter(|(n, _)| n == name).map(|(_, f)| f.clone()).collect())
    }

    /// Parses the body as JSON.
    ///
    /// # Errors
    ///
    /// 400 if it is not valid JSON for `T`.
    pub fn json_body<T: serde::de::DeserializeOwned>(&self) -> Result<T> {
        Ok(serde_json::from_slice(self.request.body())?)
    }

    /// The next piece of a streamed request body (handlers with `STREAM_REQUEST_BODY` that read it
    /// themselves rather than through `data_received`), or `None` at its end.
    ///
    /// # Errors
    ///
    /// 400 for a malformed body, 413 past `max_body_size`.
    pub async fn body_chunk(&mut self) -> Result<Option<Bytes>> {
        match &self.streamed_body {
            None => Ok(None),
            Some(r) => r.chunk().await.map_err(|e| match e {
                gale_http1::BodyError::TooLarge => HttpError::new(413),
                _ => HttpError::with_message(400, e.to_string()),
            }),
        }
    }

    // ---- the response ----------------------------------------------------------------------------------

    /// Sets the status (and a custom reason phrase with [`set_status_reason`](RequestContext::set_status_reason)).
    pub fn set_status(&mut self, status: u16) {
        self.status = status;
        self.clear_reason();
    }

    /// Sets the status with a custom reason phrase.
    pub fn set_status_reason(&mut self, status: u16, reason: &str) {
        self.status = status;
        self.extra().reason = Some(reason.to_owned());
    }

    /// The status so far.
    pub fn get_status(&self) -> u16 {
        self.status
    }

    /// Sets a response header, replacing earlier values. Values with CR or LF are refused when the response
    /// is sent (no header injection); the request then ends with a 500.
    #[inline]
    pub fn set_header(&mut self, name: impl Into<HeaderBytes>, value: impl Into<HeaderBytes>) {
        let name = name.into();
        self.note_field(name.as_bytes(), true);
        // Usually the first header set goes into an empty map: a plain append, inlined. The search for an
        // earlier field of the name stays out of line, so that its loop's registers and stack are not set up
        // for the usual case.
        if self.headers.is_empty() {
            self.headers.append(name, value);
        } else {
            self.replace_header(name, value.into());
        }
    }

    /// [`set_header`](RequestContext::set_header) once the map holds fields.
    #[inline(never)]
    fn replace_header(&mut self, name: HeaderBytes, value: HeaderBytes) {
        // Usually the header is new: appending it spares `insert`'s removal pass.
        if has_header(&self.headers, name.as_bytes()) {
            self.headers.insert(name, value);
        } else {
            self.headers.append(name, value);
        }
    }

    /// Adds a response header value (several may share a name).
    pub fn add_header(&mut self, name: impl Into<HeaderBytes>, value: impl Into<HeaderBytes>) {
        let name = name.into();
        self.note_field(name.as_bytes(), true);
        self.headers.append(name, value);
    }

    /// Removes a response header.
    pub fn clear_header(&mut self, name: &str) {
        self.note_field(name.as_bytes(), false);
        self.headers.remove(name);
    }

    /// Records that a field called `name` was added to the response headers, or with `present` false, that
    /// every field so called was removed.
    #[inline]
    pub(crate) fn note_field(&mut self, name: &[u8], present: bool) {
        match name.len() {
            12 if same_name(name, b"Content-Type") => self.has_type = present,
            4 if same_name(name, b"Etag") => self.has_etag = present,
            _ => {}
        }
    }

    /// The response headers so far: those the handler set, and the defaults added when the response is
    /// finished (`Content-Type`). The `ETag` computed for a finished response goes out with them but is not
    /// stored here.
    pub fn response_headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// Appends to the response body.
    pub fn write(&mut self, chunk: impl AsRef<[u8]>) {
        if self.finished {
            log::warn!("write() after finish() on {} ignored", self.request.target());
            return;
        }
        if self.body.capacity() == 0 {
            self.body.reserve(BODY_BUFFER);
        }
        self.body.extend_from_slice(chunk.as_ref());
    }

    /// Writes `value` as JSON and sets `Content-Type: application/json; charset=UTF-8` (Tornado's
    /// `write(dict)`). `</` is escaped so the JSON is safe inside HTML.
    ///
    /// # Errors
    ///
    /// 500 if `value` cannot be serialized.
    pub fn write_json<T: serde::Serialize + ?Sized>(&mut self, value: &T) -> Result {
        let json = crate::escape::json_encode(value).map_err(|e| HttpError::with_message(500, e.to_string()))?;
        self.set_header("Content-Type", "application/json; charset=UTF-8");
        self.write(json);
        Ok(())
    }

    /// Renders the template `name` with `context` (autoescaped HTML) and writes it.
    ///
    /// # Errors
    ///
    /// 500 if the template is missing or fails.
    pub fn render<T: serde::Serialize>(&mut self, name: &str, context: T) -> Result {
        let html = self.render_string(name, context)?;
        self.write(html);
        Ok(())
    }

    /// Renders the template `name` to a string.
    ///
    /// # Errors
    ///
    /// 500 if the template is missing or fails.
    pub fn render_string<T: serde::Serialize>(&mut self, name: &str, context: T) -> Result<String> {
        let xsrf = if self.app.settings.xsrf_cookies { self.xsrf_form_html() } else { String::new() };
        let current_user = self.current_user();
        self.app.render(name, context, &xsrf, current_user.as_deref())
    }

    /// Sends what was written so far (headers first, then the body so far, chunked): a streaming response.
    ///
    /// # Errors
    ///
    /// If the client went away or a header is invalid.
    pub async fn flush(&mut self) -> Result {
        self.send_head(None)?;
        let chunk = self.take_body();
        if !chunk.is_empty() {
            self.writer.write(chunk).map_err(|e| HttpError::with_message(500, e.to_string()))?;
        }
        self.writer.flush().await.map_err(|e| HttpError::with_message(500, e.to_string()))
    }

    /// A copy of the request for a [`FallbackHandler`](crate::FallbackHandler)'s service.
    pub(crate) fn take_request_for_fallback(&mut self) -> Request {
        let mut r =
            Request::from_head(self.request.head().clone(), self.request.body().clone(), self.request.remote_addr());
        r.set_forwarded(self.request.remote_ip(), self.request.protocol());
        self.headers_written = true;
        r
    }

    /// Whether the client went away; a long poll can stop waiting.
    pub fn connection_closed(&self) -> bool {
        self.writer.is_closed()
    }

    /// Resolves when the client goes away (for long polls: `select` it against your event).
    pub async fn wait_for_close(&self) {
        self.writer.closed().await
    }

    /// Finishes the response: sends headers and the buffered body. Later writes are ignored.
    ///
    /// # Errors
    ///
    /// 500 if a header is invalid (CR/LF in a value) — nothing was sent then.
    pub fn finish(&mut self) -> Result {
        if self.finished {
            return Ok(());
        }
        if self.headers_written {
            return self.finish_started();
        }
        self.ensure_content_type();
        // The parts of the request in progress, each checked once here rather than at every use.
        let (Some(app), Some(request)) = (self.app.0.as_ref(), self.request.0.as_ref()) else {
            panic!("a request in progress")
        };
        // The `ETag` computed for the body, if one is due (the handler set none), kept here and lent to the
        // writer: it goes out after the handler's fields without being stored among them.
        let computed;
        let mut etag = None;
        let mut not_modified = false;
        if matches!(request.method(), Method::Get | Method::Head) && self.status == 200 {
            if app.settings.compute_etag && !self.has_etag {
                computed = app.etag(&self.body);
                etag = Some(&computed);
            }
            not_modified = is_not_modified(request, &self.headers, etag);
        }
        // One call of `send_whole`, which inlines the writer's.
        let replacement = if not_modified {
            self.status = 304;
            self.clear_reason();
            for h in ["Content-Type", "Content-Length", "Content-Encoding", "Transfer-Encoding"] {
                self.clear_header(h);
            }
            Some(Bytes::new())
        } else if app.settings.compress_response && !self.omits_body() {
            crate::compress::maybe_gzip(request.headers(), &mut self.headers, &self.body)
        } else {
            None
        };
        self.send_whole(etag, replacement)
    }

    /// Sends a response whole, head, body and end, once `ETag`, 304 and compression were seen to: the
    /// `replacement` body (an empty one for a 304, or the compressed one), or else the buffer's, with the
    /// computed `etag` after the handler's fields.
    #[inline(always)]
    fn send_whole(&mut self, etag: Option<&gale_http1::headers::HashEtag>, replacement: Option<Bytes>) -> Result {
        let omits_body = self.omits_body();
        if self.status >= 200 {
            // Head, body and end in one call. (The replacement is matched by value, with `omits_body`, so that
            // each arm knows whether it is dropped: no flag to keep and test at the end.)
            let body: gale_http1::ResponseBody<'_> = match (omits_body, replacement) {
                (true, _) => Bytes::new().into(),
                (false, Some(body)) => body.into(),
                // The usual case: the body is copied from the buffer into the output, and the buffer kept
                // for what is written next (no count of references to keep on the bytes sent).
                (false, None) if self.body.len() <= BODY_BUFFER => (&self.body[..]).into(),
                // A large body goes with its storage.
                (false, None) => std::mem::take(&mut self.body).freeze().into(),
            };
            let Some(writer) = self.writer.0.as_ref() else { panic!("a request in progress") };
            let sent = writer.respond_with_etag(self.status, self.reason(), &self.headers, etag, body);
            // Sent, or refused (the error page then starts from an empty body, as it would have). A buffer
            // the body made grow is not kept.
            if self.body.len() > BODY_BUFFER {
                self.body = BytesMut::new();
            } else {
                self.body.clear();
            }
            self.headers_written = writer.head_written();
            // A refused head sent nothing: the error page may still answer.
            self.finished = self.headers_written;
            return sent.map_err(|e| {
                let what = if self.headers_written { "cannot send response" } else { "cannot send response head" };
                HttpError::with_message(500, format!("{what}: {e}"))
            });
        }
        self.send_informational(replacement, omits_body)
    }

    /// [`send_whole`](RequestContext::send_whole) for a 1xx status: head, then body, then end.
    #[inline(never)]
    fn send_informational(&mut self, replacement: Option<Bytes>, omits_body: bool) -> Result {
        let body = replacement.unwrap_or_else(|| self.take_body());
        let len = if omits_body { 0 } else { body.len() as u64 };
        // `send_head` with what is known here: the head is not written, `finish` added the default
        // `Content-Type`, and a length is given.
        self.writer
            .write_head(self.status, self.reason(), &self.headers, Some(len))
            .map_err(|e| HttpError::with_message(500, format!("cannot send response head: {e}")))?;
        self.headers_written = true;
        if !body.is_empty() && !omits_body {
            self.writer.write(body).map_err(|e| HttpError::with_message(500, e.to_string()))?;
        }
        self.finished = true;
        let _ = self.writer.finish();
        Ok(())
    }

    /// [`finish`](RequestContext::finish) once the head was sent: the rest of the body, then the end.
    #[inline(never)]
    fn finish_started(&mut self) -> Result {
        let chunk = self.take_body();
        if !chunk.is_empty() {
            self.writer.write(chunk).map_err(|e| HttpError::with_message(500, e.to_string()))?;
        }
        self.finished = true;
        let _ = self.writer.finish();
        Ok(())
    }

    /// Sends the head announcing a body of `len` bytes (or chunked for `None`); the body then goes out with
    /// [`send_chunk`](RequestContext::send_chunk). For handlers that stream large bodies.
    ///
    /// # Errors
    ///
    /// 500 if a header is invalid.
    pub fn start_body(&mut self, len: Option<u64>) -> Result {
        self.send_head(len)
    }

    /// Sends a piece of body now and waits until the kernel took it (back-pressure).
    ///
    /// # Errors
    ///
    /// If the client went away or the body exceeds the announced length.
    pub async fn send_chunk(&mut self, chunk: Bytes) -> Result {
        self.send_head(None)?;
        self.writer.write(chunk).map_err(|e| HttpError::with_message(500, e.to_string()))?;
        self.writer.flush().await.map_err(|e| HttpError::with_message(500, e.to_string()))
    }

    /// Ends a response whose body was sent with [`send_chunk`](RequestContext::send_chunk) (sending the head
    /// first, with `len`, if it was not sent).
    ///
    /// # Errors
    ///
    /// 500 if the announced length was not met.
    pub fn finish_raw(&mut self, len: Option<u64>) -> Result {
        if !self.headers_written {
            self.send_head(len)?;
        }
        self.finished = true;
        self.writer.finish().map_err(|e| HttpError::with_message(500, e.to_string()))
    }

    /// Whether [`finish`](RequestContext::finish) was called.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// The body written so far, split off the front of the buffer: the rest is kept for what is written
    /// next (this response's next chunks, or the next responses), unless the body made it grow (its storage
    /// then goes with the body).
    fn take_body(&mut self) -> Bytes {
        if self.body.is_empty() {
            return Bytes::new();
        }
        let body = self.body.split().freeze();
        if body.len() > BODY_BUFFER {
            self.body = BytesMut::new();
        }
        body
    }

    #[inline]
    fn omits_body(&self) -> bool {
        // 200 first: the usual status answers with one comparison.
        self.status != 200 && (self.status == 204 || self.status == 304 || (100..200).contains(&self.status))
    }

    /// Tornado's default `Content-Type`, unless the handler chose one (or the response has no body).
    #[inline]
    fn ensure_content_type(&mut self) {
        if !self.has_type && !self.omits_body() {
            self.headers.append("Content-Type", "text/html; charset=UTF-8");
            self.has_type = true;
        }
    }

    /// Sends the head (unless it was sent), with the default `Content-Type` if the handler set none.
    fn send_head(&mut self, content_length: Option<u64>) -> Result {
        if self.headers_written {
            return Ok(());
        }
        self.ensure_content_type();
        if content_length.is_none() && self.app.settings.compress_response {
            // A streamed response is sent uncompressed; say it varies anyway for caches.
            self.headers.append("Vary", "Accept-Encoding");
        }
        self.writer
            .write_head(self.status, self.reason(), &self.headers, content_length)
            .map_err(|e| HttpError::with_message(500, format!("cannot send response head: {e}")))?;
        self.headers_written = true;
        Ok(())
    }

    /// Redirects to `url` with 302 (or 301 when `permanent`).
    ///
    /// # Errors
    ///
    /// 500 if headers were already sent.
    pub fn redirect(&mut self, url: &str, permanent: bool) -> Result {
        self.redirect_with_status(url, if permanent { 301 } else { 302 })
    }

    /// Redirects to `url` with `status` (301, 302, 303, 307 or 308).
    ///
    /// # Errors
    ///
    /// 500 if headers were already sent.
    pub fn redirect_with_status(&mut self, url: &str, status: u16) -> Result {
        if self.headers_written {
            return Err(HttpError::with_message(500, "cannot redirect after headers have been written"));
        }
        self.set_status(status);
        self.set_header("Location", url.to_owned());
        self.body.clear();
        self.finish()
    }

    /// Ends the request with the error page for `status` (Tornado's `send_error` without the handler's
    /// `write_error`; handlers get theirs by returning `Err(HttpError)`).
    pub fn send_error(&mut self, status: u16) {
        let e = HttpError::new(status);
        self.write_default_error(status, &e);
        let _ = self.finish();
    }

    /// Writes the default error page (status, headers and body; the response is finished afterwards).
    pub fn write_default_error(&mut self, status: u16, error: &HttpError) {
        if self.headers_written {
            return;
        }
        self.body.clear();
        self.headers.clear();
        self.has_etag = false;
        self.headers.insert("Content-Type", "text/html; charset=UTF-8");
        self.has_type = true;
        if let Some(allow) = self.extra.as_ref().and_then(|e| e.allow.clone()) {
            self.headers.insert("Allow", allow);
        }
        self.status = if (100..=999).contains(&status) { status } else { 500 };
        match error.reason_phrase() {
            Some(r) => self.extra().reason = Some(r.to_owned()),
            None => self.clear_reason(),
        }
        let phrase = error
            .reason_phrase()
            .unwrap_or_else(|| gale_http1::proto::response::reason_phrase(self.status).unwrap_or("Unknown"));
        let phrase = crate::escape::xhtml_escape(phrase);
        let mut page =
            format!("<html><title>{code}: {phrase}</title><body>{code}: {phrase}", code = self.status, phrase = phrase);
        if self.app.settings.debug {
            if let Some(m) = error.log_message() {
                page.push_str("<pre>");
                page.push_str(&crate::escape::xhtml_escape(m));
                page.push_str("</pre>");
            }
        }
        page.push_str("</body></html>");
        self.body.extend_from_slice(page.as_bytes());
    }

    // ---- cookies, users, XSRF --------------------------------------------------------------------------

    /// The value of request cookie `name`.
    pub fn get_cookie(&self, name: &str) -> Option<String> {
        let mut found = None;
        for h in self.request.headers().get_all("Cookie") {
            let Ok(h) = std::str::from_utf8(h) else { continue };
            // The last one wins, as in Tornado's cookie dictionary.
            if let Some((_, v)) = crate::cookies::cookie_pairs(h).filter(|(k, _)| *k == name).last() {
                found = Some(v.into_owned());
            }
        }
        found
    }

    /// Sets a cookie (adds a `Set-Cookie` header) with the given attributes.
    ///
    /// # Errors
    ///
    /// 500 for a name or value that cannot be a cookie.
    pub fn set_cookie(&mut self, name: &str, value: &str, options: &crate::cookies::CookieOptions) -> Result {
        let header = crate::cookies::set_cookie_value(name, value, options)
            .map_err(|e| HttpError::with_message(500, e.to_string()))?;
        self.add_header("Set-Cookie", header);
        Ok(())
    }

    /// Deletes a cookie on the client (an expired `Set-Cookie`) with the given path and domain.
    pub fn clear_cookie(&mut self, name: &str, options: &crate::cookies::CookieOptions) {
        match crate::cookies::clear_cookie_value(name, options) {
            Ok(header) => self.add_header("Set-Cookie", header),
            Err(e) => log::warn!("cannot clear cookie {name:?}: {e}"),
        }
    }

    /// Signs `value` with the application's `cookie_secret` (Tornado's version-2 format) and sets it.
    ///
    /// # Errors
    ///
    /// 500 if the application has no `cookie_secret`.
    pub fn set_signed_cookie(&mut self, name: &str, value: &str, options: &crate::cookies::CookieOptions) -> Result {
        let secret = self.app.secret()?;
        let signed = crate::signing::create_signed_value(secret, name, value.as_bytes(), std::time::SystemTime::now())
            .map_err(|e| HttpError::with_message(500, e.to_string()))?;
        self.set_cookie(name, &signed, options)
    }

    /// The verified value of signed cookie `name`, if it is valid and at most `max_age_days` old (default 31).
    pub fn get_signed_cookie(&self, name: &str, max_age_days: Option<f64>) -> Option<String> {
        let value = self.get_cookie(name)?;
        let secret = self.app.secret().ok()?;
        let max_age = max_age_days.unwrap_or(31.0);
        match crate::signing::decode_signed_value(secret, name, &value, max_age, std::time::SystemTime::now(), 1) {
            Ok(v) => String::from_utf8(v).ok(),
            Err(e) => {
                log::debug!("signed cookie {name:?} refused: {e}");
                None
            }
        }
    }

    /// The logged-in user: the application's `current_user` hook's answer (computed once per request), or
    /// what [`set_current_user`](RequestContext::set_current_user) set.
    pub fn current_user(&mut self) -> Option<String> {
        if self.extra.as_ref().is_none_or(|e| e.current_user.is_none()) {
            let user = match self.app.current_user_hook.clone() {
                Some(hook) => hook(self),
                None => None,
            };
            self.extra().current_user = Some(user);
        }
        self.extra.as_ref().and_then(|e| e.current_user.clone()).flatten()
    }

    /// Sets the logged-in user for this request (e.g. after an async lookup in `prepare`).
    pub fn set_current_user(&mut self, user: Option<String>) {
        self.extra().current_user = Some(user);
    }

    /// Tornado's `@authenticated`: the current user, or — when nobody is logged in — a redirect to the
    /// application's `login_url` (with `?next=`) for `GET`/`HEAD`, else 403.
    ///
    /// # Errors
    ///
    /// [`HttpError::handled`] after redirecting, 403 otherwise; just `?` it.
    pub fn authenticated(&mut self) -> Result<String> {
        if let Some(user) = self.current_user() {
            return Ok(user);
        }
        if matches!(self.request.method(), Method::Get | Method::Head) {
            let Some(login) = self.app.settings.login_url.clone() else {
                return Err(HttpError::with_message(403, "login required and no login_url is set"));
            };
            let sep = if login.contains('?') { '&' } else { '?' };
            let next = crate::escape::url_escape(self.request.target(), true);
            self.redirect(&format!("{login}{sep}next={next}"), false)?;
            return Err(HttpError::handled());
        }
        Err(HttpError::new(403))
    }

    /// This client's XSRF token, setting the `_xsrf` cookie if it has none (Tornado's `xsrf_token`). The token
    /// is masked afresh for every request (version 2 format), so it cannot be learned by compression attacks.
    pub fn xsrf_token(&mut self) -> String {
        if let Some(t) = self.extra.as_ref().and_then(|e| e.xsrf_token.as_ref()) {
            return t.clone();
        }
        let existing = self.get_cookie("_xsrf").and_then(|c| crate::xsrf::decode_token(&c));
        let (token, timestamp) = match existing {
            Some(d) if !d.token.is_empty() => (d.token, d.timestamp.unwrap_or_else(unix_now)),
            _ => {
                let token = crate::xsrf::generate_token().map(|t| t.to_vec()).unwrap_or_else(|e| {
                    log::error!("no randomness for an XSRF token: {e}");
                    Vec::new()
                });
                let ts = unix_now();
                if let Ok(cookie) = crate::xsrf::encode_token(&token, ts) {
                    let opts = crate::cookies::CookieOptions { path: Some("/".into()), ..Default::default() };
                    let _ = self.set_cookie("_xsrf", &cookie, &opts);
                }
                (token, ts)
            }
        };
        let encoded = crate::xsrf::encode_token(&token, timestamp).unwrap_or_default();
        self.extra().xsrf_token = Some(encoded.clone());
        encoded
    }

    /// A hidden form field carrying the XSRF token (Tornado's `xsrf_form_html`).
    pub fn xsrf_form_html(&mut self) -> String {
        let token = self.xsrf_token();
        crate::xsrf::xsrf_form_html(&token)
    }

    /// Checks the `_xsrf` argument or `X-XSRFToken` / `X-CSRFToken` header against the cookie.
    ///
    /// # Errors
    ///
    /// 403 when missing or wrong.
    pub fn check_xsrf_cookie(&mut self) -> Result {
        let supplied = match self.get_argument_opt("_xsrf")? {
            Some(v) => Some(v),
            None => self.header("X-XSRFToken").or_else(|| self.header("X-CSRFToken")).map(str::to_owned),
        };
        let Some(supplied) = supplied else {
            return Err(HttpError::with_message(403, "'_xsrf' argument missing from POST"));
        };
        let cookie = self.get_cookie("_xsrf");
        let (Some(a), Some(b)) =
            (crate::xsrf::decode_token(&supplied), cookie.as_deref().and_then(crate::xsrf::decode_token))
        else {
            return Err(HttpError::with_message(403, "'_xsrf' argument has invalid format or cookie is missing"));
        };
        if a.token.is_empty() || !crate::xsrf::tokens_match(&a.token, &b.token) {
            return Err(HttpError::with_message(403, "XSRF cookie does not match POST argument"));
        }
        Ok(())
    }

    /// The URL of static file `path` with a version argument (content hash), for long cache lifetimes.
    pub fn static_url(&self, path: &str) -> String {
        self.app.static_url(path)
    }
}

/// Whether `headers` has a field called `name`: [`HeaderMap::contains`] with a cheap exact comparison first, as
/// names are mostly spelled as given.
#[inline]
fn has_header(headers: &HeaderMap, name: &[u8]) -> bool {
    headers.iter().any(|(n, _)| n.len() == name.len() && same_name(n, name))
}

/// Whether the `If-None-Match` of `request` matches the response's tag: `etag` if computed, else the `Etag`
/// field of `headers`.
#[inline]
fn is_not_modified(request: &Request, headers: &HeaderMap, etag: Option<&gale_http1::headers::HashEtag>) -> bool {
    let Some(inm) = request.headers().get("If-None-Match") else { return false };
    match etag {
        Some(etag) => crate::static_files::etag_matches(inm, etag.as_str()),
        None => headers.get("Etag").is_some_and(|etag| crate::static_files::etag_matches(inm, etag)),
    }
}

/// ASCII case-insensitive equality of two names of the same length, with a plain comparison first as names
/// are mostly spelled alike.
#[inline]
fn same_name(a: &[u8], b: &[u8]) -> bool {
    a == b || a.eq_ignore_ascii_case(b)
}

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_names_compare_ascii_case_insensitively() {
        for (a, b, eq) in [
            ("Content-Type", "content-type", true),
            ("Content-Type", "Content-Type", true),
            ("CONTENT-TYPE", "content-typE", true),
            ("Content-Type", "Content-Typf", false),
            ("Content-Type", "Dontent-Type", false),
            ("Etag", "ETag", true),
            ("Etag", "Etah", false),
            ("", "", true),
            ("X-Long-Header-Name-1", "x-long-header-name-1", true),
            ("X-Long-Header-Name-1", "x-long-header-name-2", false),
        ] {
            assert_eq!(same_name(a.as_bytes(), b.as_bytes()), eq, "{a} vs {b}");
        }
        let mut headers = HeaderMap::new();
        assert!(!has_header(&headers, b"Etag"));
        headers.append("Content-Type", "text/plain");
        headers.append("ETag", "\"x\"");
        assert!(has_header(&headers, b"Etag"));
        assert!(has_header(&headers, b"content-type"));
        assert!(!has_header(&headers, b"Content-Length"));
    }
}
