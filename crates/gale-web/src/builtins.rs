//! Built-in handlers: [`RedirectHandler`], [`ErrorHandler`], and [`FallbackHandler`] for plain gale-http1
//! services (Tornado's `RedirectHandler`, `ErrorHandler` and `FallbackHandler`).

use crate::error::{HttpError, Result};
use crate::handler::{RequestContext, RequestHandler};
use gale_http1::HttpService;
use std::rc::Rc;

/// Redirects every request to `url`, where `{0}`, `{1}`, … are replaced by the route's captures and the
/// query string is kept (Tornado's `RedirectHandler`).
///
/// ```
/// use gale_web::{Application, RedirectHandler};
/// let app = Application::builder()
///     .route(r"/old/(.*)", || RedirectHandler::new("/new/{0}", true))
///     .build()
///     .unwrap();
/// # let _ = app;
/// ```
#[derive(Debug, Clone)]
pub struct RedirectHandler {
    url: String,
    permanent: bool,
}

impl RedirectHandler {
    /// Redirects to `url`; 301 when `permanent`, else 302.
    pub fn new(url: &str, permanent: bool) -> RedirectHandler {
        RedirectHandler { url: url.to_owned(), permanent }
    }

    fn target(&self, cx: &RequestContext) -> String {
        let mut url = self.url.clone();
        for (i, arg) in cx.path_args().iter().enumerate() {
            url = url.replace(&format!("{{{i}}}"), &crate::escape::url_escape(arg, false).replace("%2F", "/"));
        }
        if let Some(q) = cx.request().query() {
            url.push(if url.contains('?') { '&' } else { '?' });
            url.push_str(q);
        }
        url
    }
}

impl RequestHandler for RedirectHandler {
    async fn prepare(&mut self, cx: &mut RequestContext) -> Result {
        let target = self.target(cx);
        cx.redirect(&target, self.permanent)
    }
}

/// Answers every request with `status` (Tornado's `ErrorHandler`).
#[derive(Debug, Clone, Copy)]
pub struct ErrorHandler {
    status: u16,
}

impl ErrorHandler {
    /// Answers `status`.
    pub fn new(status: u16) -> ErrorHandler {
        ErrorHandler { status }
    }
}

impl RequestHandler for ErrorHandler {
    async fn prepare(&mut self, _cx: &mut RequestContext) -> Result {
        Err(HttpError::new(self.status))
    }

    fn check_xsrf(&self) -> bool {
        false
    }
}

/// Hands requests to a plain [`HttpService`] (Tornado's `FallbackHandler`, which wraps a WSGI app): mix
/// gale-http1 services into a web application.
pub struct FallbackHandler<S: HttpService> {
    service: Rc<S>,
}

impl<S: HttpService> std::fmt::Debug for FallbackHandler<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FallbackHandler")
    }
}

impl<S: HttpService> FallbackHandler<S> {
    /// Wraps `service` (shared by all requests of the route).
    pub fn new(service: Rc<S>) -> FallbackHandler<S> {
        FallbackHandler { service }
    }
}

impl<S: HttpService> RequestHandler for FallbackHandler<S> {
    async fn prepare(&mut self, cx: &mut RequestContext) -> Result {
        let request = cx.take_request_for_fallback();
        let writer = cx.writer.clone();
        let body = cx.streamed_body.take();
        self.service.call(request, body, writer).await;
        cx.finished = true;
        Ok(())
    }

    fn check_xsrf(&self) -> bool {
        false
    }
}
