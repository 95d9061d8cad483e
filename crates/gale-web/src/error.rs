//! [`HttpError`]: how a handler says "answer with this status" (Tornado's `HTTPError`).

use std::fmt;

/// An error that ends a request with an HTTP status, as Tornado's `tornado.web.HTTPError`.
///
/// Return it from a handler method (`Err(HttpError::new(404))`) or use `?` on anything that converts into
/// it. The response is written by the handler's `write_error`; `log_message` goes to the log, never to
/// the client (unless the application runs in debug mode).
#[derive(Clone, PartialEq, Eq)]
pub struct HttpError(Box<Details>);

/// What an [`HttpError`] says, behind a box: handler results are moved through every layer of the request's
/// future, and a `Result<(), HttpError>` one pointer wide is cheap to move on the usual path, `Ok`.
#[derive(Clone, PartialEq, Eq)]
struct Details {
    status: u16,
    log_message: Option<String>,
    reason: Option<String>,
    /// The response was already written (e.g. a redirect to the login page): nothing more to send.
    handled: bool,
}

impl HttpError {
    /// An error answering `status`.
    pub fn new(status: u16) -> HttpError {
        HttpError(Box::new(Details { status, log_message: None, reason: None, handled: false }))
    }

    /// An error answering `status`, with a message for the log.
    pub fn with_message(status: u16, log_message: impl Into<String>) -> HttpError {
        HttpError(Box::new(Details { status, log_message: Some(log_message.into()), reason: None, handled: false }))
    }

    /// 400 for a missing required argument (Tornado's `MissingArgumentError`).
    pub fn missing_argument(name: &str) -> HttpError {
        HttpError::with_message(400, format!("Missing argument {name}")).reason("Bad Request")
    }

    /// Sets a custom reason phrase.
    #[must_use]
    pub fn reason(mut self, reason: impl Into<String>) -> HttpError {
        self.0.reason = Some(reason.into());
        self
    }

    /// Marks the response as already written: the request ends without an error page.
    pub fn handled() -> HttpError {
        HttpError(Box::new(Details { status: 0, log_message: None, reason: None, handled: true }))
    }

    /// The status to answer.
    pub fn status(&self) -> u16 {
        self.0.status
    }

    /// The message for the log.
    pub fn log_message(&self) -> Option<&str> {
        self.0.log_message.as_deref()
    }

    /// The custom reason phrase, if any.
    pub fn reason_phrase(&self) -> Option<&str> {
        self.0.reason.as_deref()
    }

    /// Whether the response was already written.
    pub fn is_handled(&self) -> bool {
        self.0.handled
    }
}

impl fmt::Debug for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.handled {
            return f.write_str("HttpError(handled)");
        }
        write!(f, "HttpError({}", self.0.status)?;
        if let Some(m) = &self.0.log_message {
            write!(f, ": {m}")?;
        }
        f.write_str(")")
    }
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HTTP {}", self.0.status)?;
        if let Some(m) = &self.0.log_message {
            write!(f, ": {m}")?;
        }
        Ok(())
    }
}

impl std::error::Error for HttpError {}

impl From<std::io::Error> for HttpError {
    fn from(e: std::io::Error) -> HttpError {
        match e.kind() {
            std::io::ErrorKind::NotFound => HttpError::with_message(404, e.to_string()),
            std::io::ErrorKind::PermissionDenied => HttpError::with_message(403, e.to_string()),
            _ => HttpError::with_message(500, e.to_string()),
        }
    }
}

impl From<serde_json::Error> for HttpError {
    fn from(e: serde_json::Error) -> HttpError {
        HttpError::with_message(400, format!("invalid JSON: {e}"))
    }
}

/// What handler methods return.
pub type Result<T = (), E = HttpError> = std::result::Result<T, E>;
