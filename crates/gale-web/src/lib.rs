//! gale's web layer: Tornado's `Application`, routing, `RequestHandler`, cookies, templates, static files and
//! websockets. Being assembled.

#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations)]

pub mod websocket;
