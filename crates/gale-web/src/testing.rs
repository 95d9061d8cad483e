//! Test helpers (Tornado's `AsyncHTTPTestCase`): serve an [`Application`] on an ephemeral port of
//! 127.0.0.1 and fetch from it with the gale HTTP client, on one loop, in a couple of lines.
//!
//! ```
//! use gale_web::testing::TestServer;
//! use gale_web::{Application, RequestContext, RequestHandler, Result};
//!
//! struct Hello;
//! impl RequestHandler for Hello {
//!     async fn get(&mut self, cx: &mut RequestContext) -> Result {
//!         cx.write("hi");
//!         Ok(())
//!     }
//! }
//!
//! let server = TestServer::new(Application::builder().route("/", || Hello).build().unwrap());
//! let response = server.fetch("/");
//! assert_eq!(response.status(), 200);
//! assert_eq!(&response.body()[..], b"hi");
//! ```

use crate::Application;
use gale_http1::client::{ClientError, ClientRequest, ClientResponse, HttpClient};
use gale_http1::{HttpServer, IOLoop, Method, ServerOptions};
use std::fmt;
use std::future::Future;
use std::time::Duration;

/// How long one test fetch may take before it fails (a hung server fails the test instead of hanging it).
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// An application served on 127.0.0.1 with an ephemeral port, and a client, on one loop.
///
/// Each `fetch` runs the loop until the response arrived (Tornado's `self.fetch`). Errors never raise:
/// non-2xx responses are returned as they are.
pub struct TestServer {
    io_loop: IOLoop,
    server: HttpServer<Application>,
    client: HttpClient,
    port: u16,
}

impl fmt::Debug for TestServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestServer").field("port", &self.port).finish()
    }
}

impl TestServer {
    /// Serves `app` with default server options.
    ///
    /// # Panics
    ///
    /// If no loop or port can be had.
    pub fn new(app: Application) -> TestServer {
        TestServer::with_options(app, ServerOptions::default())
    }

    /// Serves `app` with the given server options.
    ///
    /// # Panics
    ///
    /// If no loop or port can be had.
    pub fn with_options(app: Application, options: ServerOptions) -> TestServer {
        let io_loop = IOLoop::new().expect("an IOLoop");
        io_loop.make_current();
        let server = HttpServer::new(&io_loop, app, options).expect("a server");
        server.listen(0, Some("127.0.0.1")).expect("an ephemeral port");
        let port = server.local_addrs()[0].port();
        TestServer { io_loop, server, client: HttpClient::new(), port }
    }

    /// The port served.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The loop everything runs on.
    pub fn io_loop(&self) -> &IOLoop {
        &self.io_loop
    }

    /// The server.
    pub fn server(&self) -> &HttpServer<Application> {
        &self.server
    }

    /// The absolute URL of `path` on this server.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    /// `GET path`; the response whatever its status.
    ///
    /// # Panics
    ///
    /// If the request fails without a response (connection error, timeout).
    pub fn fetch(&self, path: &str) -> ClientResponse {
        self.request(ClientRequest::get(self.url(path)))
    }

    /// `method path` with `body`.
    ///
    /// # Panics
    ///
    /// As [`fetch`](TestServer::fetch).
    pub fn fetch_with(&self, method: Method, path: &str, body: impl Into<bytes::Bytes>) -> ClientResponse {
        self.request(ClientRequest::new(method, self.url(path)).body(body.into()))
    }

    /// Sends `request` (made with [`url`](TestServer::url)); redirects are not followed, errors are not raised.
    ///
    /// # Panics
    ///
    /// As [`fetch`](TestServer::fetch).
    pub fn request(&self, request: ClientRequest) -> ClientResponse {
        let request = request.follow_redirects(false).raise_error(false).request_timeout(Some(FETCH_TIMEOUT));
        match self.try_request(request) {
            Ok(r) => r,
            Err(e) => panic!("request to the test server failed: {e}"),
        }
    }

    /// Sends `request` as it is configured.
    ///
    /// # Errors
    ///
    /// The client's error.
    pub fn try_request(&self, request: ClientRequest) -> Result<ClientResponse, ClientError> {
        let client = self.client.clone();
        self.io_loop.run_sync(async move { client.fetch(request).await })
    }

    /// Runs `future` on the server's loop until it completes (for tests that drive several requests at once).
    pub fn run<F: Future + 'static>(&self, future: F) -> F::Output
    where
        F::Output: 'static,
    {
        self.io_loop.run_sync(future)
    }

    /// The client, for use inside [`run`](TestServer::run).
    pub fn client(&self) -> HttpClient {
        self.client.clone()
    }
}
