//! The HTTP server end to end: raw bytes over real TCP on 127.0.0.1, on every poller backend.
//!
//! Semantics first (keep-alive, framing, pipelining, `Expect`, proxies' headers, streaming both ways, service
//! failures, connection limits, graceful shutdown), then hardening: each malformed or oversized request gets
//! the right status, its connection is closed, and the server still answers a fresh request afterwards.

mod util;

use gale_http1::{ServerOptions, Workers};
use std::io::Read;
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};
use util::{Client, Probe, TIMEOUT, TestServer, TestService, each_backend, get, get_close, wait_for};

// ---------------------------------------------------------------------------------------------------------
// Connection persistence.
// ---------------------------------------------------------------------------------------------------------

#[test]
fn http11_keeps_the_connection_alive_by_default() {
    each_backend(|backend| {
        let server = TestServer::new(backend);
        let mut c = server.connect();
        for i in 0..3 {
            let r = c.roundtrip(&get(&format!("/request/{i}")));
            assert_eq!(r.status, 200);
            assert_eq!(r.text(), format!("/request/{i}"));
            assert!(r.header("connection").is_none(), "no Connection header needed for 1.1 keep-alive");
        }
    });
}

#[test]
fn http10_closes_after_the_response_by_default() {
    each_backend(|backend| {
        let server = TestServer::new(backend);
        let mut c = server.connect();
        let r = c.roundtrip(b"GET / HTTP/1.0\r\n\r\n");
        assert_eq!(r.status, 200);
        assert_eq!(r.text(), "Hello, World!");
        assert_eq!(r.header("content-length"), Some("13"));
        assert!(r.says_close());
        c.assert_closed();
    });
}

#[test]
fn http10_with_keep_alive_is_kept_alive_and_told_so() {
    each_backend(|backend| {
        let server = TestServer::new(backend);
        let mut c = server.connect();
        for _ in 0..2 {
            let r = c.roundtrip(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
            assert_eq!(r.status, 200);
            assert_eq!(r.header("connection"), Some("keep-alive"));
            assert_eq!(r.text(), "Hello, World!");
        }
    });
}

#[test]
fn connection_close_is_honoured() {
    each_backend(|backend| {
        let server = TestServer::new(backend);
        let mut c = server.connect();
        let r = c.roundtrip(&get_close("/bye"));
        assert_eq!((r.status, r.text()), (200, "/bye"));
        assert!(r.says_close());
        c.assert_closed();
    });
}

#[test]
fn no_keep_alive_option_closes_after_every_response() {
    each_backend(|backend| {
        let options = ServerOptions { no_keep_alive: true, ..Default::default() };
        let server = TestServer::with_options(backend, options, &Probe::new());
        let mut c = server.connect();
        let r = c.roundtrip(&get("/once"));
        assert_eq!(r.status, 200);
        assert!(r.says_close());
        c.assert_closed();
    });
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    each_backend(|backend| {
        let server = TestServer::new(backend);
        let mut c = server.connect();
        let mut burst = Vec::new();
        for i in 0..16 {
            if i % 5 == 4 {
                let body = format!("body-{i}");
                burst.extend_from_slice(
                    format!("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n{body}", body.len())
                        .as_bytes(),
                );
            } else {
                burst.extend_from_slice(&get(&format!("/pipelined/{i}")));
            }
        }
        c.send(&burst);
        for i in 0..16 {
            let r = c.response();
            assert_eq!(r.status, 200, "response {i}");
            let expected = if i % 5 == 4 { format!("body-{i}") } else { format!("/pipelined/{i}") };
            assert_eq!(r.text(), expected, "response {i} out of order");
        }
        // The connection is still usable after the burst.
        assert_eq!(c.roundtrip(&get("/after")).text(), "/after");
    });
}

#[test]
fn pipelined_responses_beyond_the_coalescing_limit_arrive_whole_and_in_order() {
    each_backend(|backend| {
        let server = TestServer::new(backend);
        let mut c = server.connect();
        // Twelve 20 kB responses: several times the 64 KiB that queued responses may grow to before they are
        // sent while more pipelined requests wait.
        let mut burst = Vec::new();
        for i in 0..12 {
            burst.extend_from_slice(&get(if i % 4 == 3 { "/" } else { "/big/20000" }));
        }
        c.send(&burst);
        for i in 0..12 {
            let r = c.response();
            assert_eq!(r.status, 200, "response {i}");
            if i % 4 == 3 {
                assert_eq!(r.text(), "Hello, World!", "response {i}");
            } else {
                assert!(r.body == util::pattern(0, 20_000), "response {i}");
            }
        }
        assert_eq!(c.roundtrip(&get("/after")).text(), "/after");
    });
}

#[test]
fn pipelined_bad_request_is_refused_after_the_good_ones_before_it() {
    each_backend(|backend| {
        let server = TestServer::new(backend);
        let mut c = server.connect();
        let mut burst = get("/one");
        burst.extend_from_slice(&get("/two"));
        burst.extend_from_slice(b"GET /three HTTP/1.1\r\nHost: t\r\nX-A : b\r\n\r\n");
        burst.extend_from_slice(&get("/never"));
        c.send(&burst);
        assert_eq!(c.response().text(), "/one");
        assert_eq!(c.response().text(), "/two");
        let r = c.response();
        assert_eq!(r.status, 400);
        assert!(r.says_close());
        c.assert_closed();
        server.assert_serving();
    });
}

#[test]
fn half_closed_client_still_gets_its_answer() {
    each_backend(|backend| {
        let server = TestServer::new(backend);
        let mut c = server.connect();
        c.send(&get("/half"));
        c.shutdown_write();
        let r = c.response();
        assert_eq!((r.status, r.text()), (200, "/half"));
        c.assert_closed();
    });
}

#[test]
fn concurrent_clients_are_all_served() {
    each_backend(|backend| {
        let server = TestServer::new(backend);
        let port = server.port;
        let clients: Vec<_> = (0..8)
            .map(|t| {
                std::thread::spawn(move || {
                    let mut c = Client::connect(port);
                    for i in 0..10 {
                        let target = format!("/client/{t}/{i}");
                        assert_eq!(c.roundtrip(&get(&target)).text(), target);
                    }
                })
            })
            .collect();
        for client in clients {
            client.join().expect("client thread");
        }
    });
}

#[test]
fn output_buffers_passed_between_connections_keep_their_responses_apart() {
    each_backend(|backend| {
        let server = TestServer::new(backend);
        let (mut a, mut b) = (server.connect(), server.connect());
        // Taking turns, each connection takes the output buffer the other gave back.
        for i in 0..20 {
            let (c, target) = if i % 2 == 0 { (&mut a, format!("/a/{i}")) } else { (&mut b, format!("/b/{i}")) };
            assert_eq!(c.roundtrip(&get(&target)).text(), target);
        }
        // One connection's client does not read, so that its output waits, while the other is served: both hold
        // a buffer, and the one given back last finds the thread's spare taken.
        let n = 100;
        a.send(&get("/respond/map-large").repeat(n));
        for i in 0..5 {
            let target = format!("/b/while-a-waits/{i}");
            assert_eq!(b.roundtrip(&get(&target)).text(), target);
        }
        for _ in 0..n {
            assert_eq!(a.response().body, util::pattern(3, 50_000));
        }
        // Pipelined responses that outgrow the largest buffer kept.
        let mut burst = Vec::new();
        for i in 0..2000 {
            burst.extend_from_slice(&get(&format!("/b/burst/{i}")));
        }
        b.send(&burst);
        for i in 0..2000 {
            assert_eq!(b.response().text(), format!("/b/burst/{i}"));
        }
        for i in 0..4 {
            let (c, target) =
                if i % 2 == 0 { (&mut a, format!("/a/after/{i}")) } else { (&mut b, format!("/b/after/{i}")) };
            assert_eq!(c.roundtrip(&get(&target)).text(), target);
        }
    });
}

// ---------------------------------------------------------------------------------------------------------
// Request bodies.
// ---------------------------------------------------------------------------------------------------------

#[test]
fn content_length_body_is_delivered_even_when_it_arrives_late() {
    each_backend(|backend| {
        let server = TestServer::new(backend);
        let mut c = server.connect();
        c.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\n\r\nhello");
        std::thread::sleep(Duration::from_millis(20));
        c.send(b" world");
        let r = c.response();
        assert_eq!((r.status, r.text()), (200, "hello world"));
    });
}

#[test]
fn chunked_request_body_with_extensions_and_trailers() {
    each_backend(|backend| {
        let server = TestServer::new(backend);
        let mut c = server.connect();
        c.send(
            b"POST /inspect HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n\
              5;name=value\r\nhello\r\n6;quoted=\"a;b\";flag\r\n world\r\n\
              0\r\nX-Checksum: abc\r\nX-Other: 1\r\n\r\n",
        );
        let r = c.response();
        assert_eq!(r.status, 200);
        assert_eq!(r.one("body"), "hello world");
        assert_eq!(r.field("trailer"), ["X-Checksum: abc", "X-Other: 1"]);
        // The connection goes on after the trailers.
        assert_eq!(c.roundtrip(&get("/next")).text(), "/next");
    });
}

#[test]
fn streamed_request_body_is_read_piece_by_piece() {
    each_backend(|backend| {
        let server = TestServer::new(backend);
        let mut c = server.connect();
        let len = 300_000;
        c.send(format!("POST /count HTTP/1.1\r\nHost: t\r\nContent-Length: {len}\r\n\r\n").as_bytes());
        for _ in 0..3 {
            c.send(&vec![b'x'; len / 3]);
        }
        let r = c.response();
        assert_eq!(r.status, 200);
        let text = r.text();
        assert!(text.starts_with(&format!("bytes={len} ")), "{text}");
        let pieces: usize = text.rsplit('=').next().unwrap().parse().unwrap();
        assert!(pieces > 1, "a streamed body arrives in pieces, not whole: {text}");
        // Chunked streamed bodies too, and the connection is reused after.
        let r = c.roundtrip(
            b"POST /count HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n",
        );
        assert_eq!(r.text(), "bytes=7 pieces=2");
    });
}

#[test]
fn streamed_body_over_max_body_size_is_refused_by_the_reader() {
    each_backend(|backend| {
        let options = ServerOptions { max_body_size: 1024, ..Default::default() };
        let server = TestServer::with_options(backend, options, &Probe::new());
        let mut c = server.connect();
        let mut request = b"POST /count HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        for _ in 0..4 {
            request.extend_from_slice(format!("200\r\n{}\r\n", "y".repeat(0x200)).as_bytes());
        }
        request.extend_from_slice(b"0\r\n\r\n");
        let _ = c.try_send(&request);
        let r = c.response();
        assert_eq!(r.status, 413);
        assert!(r.says_close(), "an unread body makes the connection unusable");
        c.assert_closed();
        server.assert_serving();
    });
}

#[test]
fn body_of_exactly_max_body_size_is_accepted() {
    each_backend(|backend| {
        let options = ServerOptions { max_body_size: 1024, ..Default::default() };
        let server = TestServer::with_options(backend, options, &Probe::new());
        let body = "b".repeat(1024);
        let mut c = server.connect();
        let r = c.roundtrip(format!("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 1024\r\n\r\n{body}").as_bytes());
        assert_eq!((r.status, r.text()), (200, body.as_str()));
        let r = c.roundtrip(
            format!("POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n400\r\n{body}\r\n0\r\n\r\n")
                .as_bytes(),
        );
        assert_eq!((r.status, r.text()), (200, body.as_str()));
    });
}

#[test]
fn large_bodies_round_trip_intact() {
    each_backend(|backend| {
        let server = TestServer::new(backend);
        let mut c = server.connect();
        let body = util::pattern(7, 1 << 20);
        c.send(format!("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n", body.len()).as_bytes());
        c.send(&body);
        let r = c.response();
        assert_eq!(r.status, 200);
        assert!(r.body == body, "echoed body differs");
        let r = c.roundtrip(&get("/big/2500000"));
        assert!(r.is_chunked());
        assert!(r.body == util::pattern(0, 2_500_000), "streamed body differs");
        assert_eq!(r.chunks.len(), 25);
    });
}

#[test]
fn unread_streamed_body_closes_the_connection_after_the_response() {
    each_backend(|backend| {
        let server = TestServer::new(backend);
        let mut c = server.connect();
        c.send(b"POST /ignore-body HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\n");
        let _ = c.try_send(&[b'x'; 1000]);
        let r = c.response();
        assert_eq!((r.status, r.text()), (200, "ignored"));
        c.assert_closed();
        server.assert_serving();
    });
}

#[test]
fn expect_100_continue_gets_an_interim_response_before_the_body() {
    each_backend(|backend| {
        let server = TestServer::new(backend);
        let mut c = server.connect();
        c.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n");
        let interim = c.head();
        assert_eq!((interim.version.as_str(), interim.status), ("HTTP/1.1", 100));
        assert_eq!(interim.reason, "Continue");
        assert!(interim.headers.is_empty());
        c.send(b"hello");
        let r = c.response();
        assert_eq!((r.status, r.text()), (200, "hello"));
    });
}

#[test]
fn expect_100_continue_with_a_body_too_large_gets_413_instead() {
    each_backend(|backend| {
        let options = ServerOptions { max_body_size: 1024, ..Default::default() };
        let server = TestServer::with_options(backend, options, &Probe::new());
        let mut c = server.connect();
        c.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5000\r\nExpect: 100-continue\r\n\r\n");
        let r = c.response();
        assert_eq!(r.status, 413, "no 100 Continue for a body that will be refused");
        c.assert_closed();
        server.assert_serving();
    });
}

// ---------------------------------------------------------------------------------------------------------
// Response framing and standard headers.
// ---------------------------------------------------------------------------------------------------------

#[test]
fn response_without_length_is_chunked_for_http11() {
    each_backend(|backend| {
        let server = TestServer::new(backend);
        let mut c = server.connect();
        let r = c.roundtrip(&get("/chunked"));
        assert_eq!(r.status, 200);
        assert!(r.is_chunked());
        assert!(r.header("content-length").is_none());
        assert_eq!(r.text(), "chunk-1;chunk-2;chunk-3");
        assert_eq!(r.chunks.len(), 3, "each write is one chunk");
        assert!(!r.says_close());
        assert_eq!(c.roundtrip(&get("/next")).text(), "/next");
    });
}

#[test]
fn response_without_length_is_close_delimited_for_http10() {
    each_backend(|backend| {
        let server = TestServer::new(backend);
        let mut c = server.connect();
        // Even when the client asks to keep the connection: only closing can end the body.
        let r = c.roundtrip(b"GET /chunked HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        assert_eq!(r.status, 200);
        assert!(r.header("transfer-encoding").is_none());
        assert!(r.header("content-length").is_none());
        assert!(r.says_close());
        assert_eq!(r.text(), "chunk-1;chunk-2;chunk-3");
    });
}

#[test]
fn head_response_has_the_length_but_no_body() {
    each_backend(|backend| {
        let server = TestServer::new(backend);
        let mut c = server.connect();
        c.send(b"HEAD / HTTP/1.1\r\nHost: t\r\n\r\n");
        let r = c.head_response();
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-length"), Some("13"));
        // Had a body been sent, this would read it as the next status line.
        let r = c.roundtrip(&get("/"));
        assert_eq!((r.status, r.text()), (200, "Hello, World!"));
    });
}

#[test]
fn head_response_without_a_length_has_no_body_and_keeps_the_connection() {
    each_backend(|backend| {
        let server = TestServer::new(backend);
        let mut c = server.connect();
        c.send(b"HEAD /chunked HTTP/1.1\r\nHost: t\r\n\r\n");
        let r = c.head_response();
        assert_eq!(r.status, 200);
        assert!(!r.says_close());
        let r = c.roundtrip(&get("/"));
        assert_eq!((r.status, r.text()), (200, "Hello, World!"));
    });
}

#[test]
fn whole_responses_are_written_in_one_call_with_any_body() {
    each_backend(|backend| {
        let server = TestServer::new(backend);
        let mut c = server.connect();
        let r = c.roundtrip(&get("/respond/borrowed"));
        assert_eq!(
            (r.status, r.header("content-type"), r.header("x-kind")),
            (201, Some("application/x-test"), Some("borrowed"))
        );
        assert_eq!((r.header("content-length"), &r.body[..]), (Some("100"), &util::pattern(0, 100)[..]));
        // Past the copy limit a borrowed body is still sent whole, on the same connection.
        let r = c.roundtrip(&get("/respond/large"));
        assert_eq!((r.status, r.body.len()), (200, 100_000));
        assert_eq!(r.body, util::pattern(0, 100_000));
        let r = c.roundtrip(&get("/respond/shared"));
        assert_eq!(r.body, util::pattern(7, 9_000));
        c.send(b"GET /respond/empty HTTP/1.1\r\nHost: t\r\n\r\n");
        let r = c.head_response();
        assert_eq!((r.status, r.header("content-length")), (204, None));
        let r = c.roundtrip(&get("/respond/injection"));
        assert_eq!((r.status, r.header("x-evil"), r.header("set-cookie")), (500, None, None));
        assert_eq!(c.roundtrip(&get("/")).text(), "Hello, World!");
        // A header map and a reason phrase, small and large bodies.
        let r = c.roundtrip(&get("/respond/map"));
        assert_eq!((r.status, r.reason.as_str(), r.header("x-kind")), (202, "Taken In", Some("map")));
        assert_eq!((r.header("content-type"), r.text()), (Some("text/x-map"), "from a map"));
        let r = c.roundtrip(&get("/respond/map-large"));
        assert_eq!((r.status, r.reason.as_str(), r.header("content-length")), (200, "OK", Some("50000")));
        assert_eq!(r.body, util::pattern(3, 50_000));
        // HEAD: the length of the body that a GET would get, and no body.
        c.send(b"HEAD /respond/borrowed HTTP/1.1\r\nHost: t\r\n\r\n");
        let r = c.head_response();
        assert_eq!((r.status, r.header("content-length")), (201, Some("100")));
        c.send(b"GET /respond/not-modified HTTP/1.1\r\nHost: t\r\n\r\n");
        let r = c.head_response();
        assert_eq!((r.status, r.header("etag"), r.header("content-length")), (304, Some("\"v1\""), None));
        assert_eq!(c.roundtrip(&get("/")).text(), "Hello, World!", "the connection goes on, nothing stray sent");
    });
}

#[test]
fn date_header_is_present_and_current() {
    each_backend(|backend| {
        let server = TestServer::new(backend);
        let r = server.connect().roundtrip(&get("/"));
        assert_eq!(r.header_count("date"), 1);
        let date = httpdate::parse_http_date(r.header("date").unwrap()).expect("an IMF-fixdate");
        let skew = match date.duration_since(SystemTime::now()) {
            Ok(ahead) => ahead,
            Err(e) => e.duration(),
        };
        assert!(skew < Duration::from_secs(60), "Date is {skew:?} off the clock");
    });
}

#[test]
fn server_header_defaults_to_gale() {
    let server = TestServer::new(util::default_backend());
    let r = server.connect().roundtrip(&get("/"));
    assert_eq!(r.header("server"), Some("gale"));
    assert_eq!(r.header_count("server"), 1);
}

#[test]
fn server_header_is_configurable() {
    let options = ServerOptions { server_name: Some("custom/1.0".into()), ..Default::default() };
    let server = TestServer::with_options(util::default_backend(), options, &Probe::new());
    let r = server.connect().roundtrip(&get("/"));
    assert_eq!(r.header("server"), Some("custom/1.0"));
}

#[test]
fn server_header_can_be_disabled() {
    let options = ServerOptions { server_name: None, ..Default::default() };
    let server = TestServer::with_options(util::default_backend(), options, &Probe::new());
    let r = server.connect().roundtrip(&get("/"));
    assert_eq!(r.status, 200);
    assert!(r.header("server").is_none());
}

#[test]
fn server_name_with_a_line_break_is_refused_at_construction() {
    let io_loop = gale_http1::IOLoop::new().unwrap();
    let options = ServerOptions { server_name: Some("gale\r\nX-Evil: 1".into()), ..Default::default() };
    let err = gale_http1::HttpServer::new(&io_loop, TestService { probe: Probe::new() }, options).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
}

#[test]
fn custom_reason_phrase_is_sent() {
    each_backend(|backend| {
        let server = TestServer::new(backend);
        let r = server.connect().roundtrip(&get("/teapot"));
        assert_eq!((r.status, r.reason.as_str()), (418, "Short And Stout"));
    });
}

// ---------------------------------------------------------------------------------------------------------
// What the service sees.
// ---------------------------------------------------------------------------------------------------------

#[test]
fn absolute_form_target_routes_by_path_and_host() {
    each_backend(|backend| {
        let server = TestServer::new(backend);
        let r = server
            .connect()
            .roundtrip(b"GET http://example.com:8080/inspect?x=1 HTTP/1.1\r\nHost: other.example\r\n\r\n");
        assert_eq!(r.status, 200);
        assert_eq!(r.one("path"), "/inspect");
        assert_eq!(r.one("query"), "x=1");
        assert_eq!(r.one("host"), "example.com:8080", "the target's authority overrides Host");
        assert_eq!(r.one("full_url"), "http://example.com:8080/inspect?x=1");
    });
}

#[test]
fn query_string_is_split_from_the_path() {
    each_backend(|backend| {
        let server = TestServer::new(backend);
        let mut c = server.connect();
        let r = c.roundtrip(&get("/inspect?a=1&b=two%20words&a=3"));
        assert_eq!(r.one("path"), "/inspect");
        assert_eq!(r.one("query"), "a=1&b=two%20words&a=3");
        assert_eq!(r.one("target"), "/inspect?a=1&b=two%20words&a=3");
        assert_eq!(r.one("full_url"), "http://test/inspect?a=1&b=two%20words&a=3");
        let r = c.roundtrip(&get("/inspect"));
        assert_eq!(r.one("query"), "<none>");
        let r = c.roundtrip(&get("/inspect?"));
        assert_eq!(r.one("query"), "");
    });
}

#[test]
fn request_headers_are_case_insensitive_multi_valued_and_ordered() {
    each_backend(|backend| {
        let server = TestServer::new(backend);
        let r = server.connect().roundtrip(
            b"GET /header/x-multi HTTP/1.1\r\nHost: t\r\nX-Multi: one\r\nOther: o\r\nx-multi: two\r\nX-MULTI: three\r\n\r\n",
        );
        assert_eq!(r.text(), "first=one\nall=one|two|three\ncount=3\n");
        let r = server.connect().roundtrip(
            b"GET /inspect HTTP/1.1\r\nHost: t\r\nX-Multi: one\r\nOther: o\r\nx-multi: two\r\nX-MULTI: three\r\n\r\n",
        );
        assert_eq!(r.field("header"), ["Host: t", "X-Multi: one", "Other: o", "x-multi: two", "X-MULTI: three"]);
    });
}

#[test]
fn header_values_are_trimmed_of_spaces_and_tabs_only() {
    each_backend(|backend| {
        let server = TestServer::new(backend);
        let r = server.connect().roundtrip(b"GET /header/X-A HTTP/1.1\r\nHost: t\r\nX-A: \t a \t b \t \r\n\r\n");
        assert_eq!(r.text(), "first=a \t b\nall=a \t b\ncount=1\n");
    });
}

#[test]
fn many_repeated_headers_parse_fine() {
    each_backend(|backend| {
        let server = TestServer::new(backend);
        let mut request = b"GET /header/x-a HTTP/1.1\r\nHost: t\r\n".to_vec();
        for _ in 0..90 {
            request.extend_from_slice(b"X-A: b\r\n");
        }
        request.extend_from_slice(b"\r\n");
        let r = server.connect().roundtrip(&request);
        assert_eq!(r.status, 200);
        assert!(r.text().ends_with("count=90\n"), "{}", r.text());
    });
}

#[test]
fn xheaders_off_ignores_proxy_headers() {
    each_backend(|backend| {
        let server = TestServer::new(backend);
        let r = server.connect().roundtrip(
            b"GET /inspect HTTP/1.1\r\nHost: t\r\nX-Real-Ip: 1.2.3.4\r\nX-Forwarded-For: 5.6.7.8\r\nX-Forwarded-Proto: https\r\n\r\n",
        );
        assert_eq!(r.one("remote_ip"), "127.0.0.1");
        assert_eq!(r.one("protocol"), "http");
    });
}

fn xheaders_server(backend: &'static str) -> TestServer {
    let options = ServerOptions { xheaders: true, trusted_downstream: vec!["10.0.0.1".into()], ..Default::default() };
    TestServer::with_options(backend, options, &Probe::new())
}

#[test]
fn xheaders_on_honours_x_real_ip() {
    each_backend(|backend| {
        let server = xheaders_server(backend);
        let r = server.connect().roundtrip(b"GET /inspect HTTP/1.1\r\nHost: t\r\nX-Real-Ip: 1.2.3.4\r\n\r\n");
        assert_eq!(r.one("remote_ip"), "1.2.3.4");
        assert_eq!(r.one("protocol"), "http");
        // Something that is not an address is ignored.
        let r = server.connect().roundtrip(b"GET /inspect HTTP/1.1\r\nHost: t\r\nX-Real-Ip: not-an-ip\r\n\r\n");
        assert_eq!(r.one("remote_ip"), "127.0.0.1");
    });
}

#[test]
fn xheaders_on_takes_the_last_untrusted_x_forwarded_for_hop() {
    each_backend(|backend| {
        let server = xheaders_server(backend);
        let r = server
            .connect()
            .roundtrip(b"GET /inspect HTTP/1.1\r\nHost: t\r\nX-Forwarded-For: 9.9.9.9, 5.6.7.8, 10.0.0.1\r\n\r\n");
        assert_eq!(r.one("remote_ip"), "5.6.7.8", "10.0.0.1 is a trusted proxy and skipped");
        let r = server.connect().roundtrip(
            b"GET /inspect HTTP/1.1\r\nHost: t\r\nX-Forwarded-For: 9.9.9.9\r\nX-Forwarded-For: 5.6.7.8\r\n\r\n",
        );
        assert_eq!(r.one("remote_ip"), "5.6.7.8", "repeated fields are one list");
    });
}

#[test]
fn xheaders_on_honours_x_forwarded_proto() {
    each_backend(|backend| {
        let server = xheaders_server(backend);
        let r = server.connect().roundtrip(b"GET /inspect HTTP/1.1\r\nHost: t\r\nX-Forwarded-Proto: https\r\n\r\n");
        assert_eq!(r.one("protocol"), "https");
        assert_eq!(r.one("full_url"), "https://t/inspect");
        let r = server.connect().roundtrip(b"GET /inspect HTTP/1.1\r\nHost: t\r\nX-Forwarded-Proto: gopher\r\n\r\n");
        assert_eq!(r.one("protocol"), "http", "unknown schemes are ignored");
    });
}

#[test]
fn xheaders_and_trailers_of_one_request_are_both_kept() {
    each_backend(|backend| {
        let server = xheaders_server(backend);
        let mut c = server.connect();
        c.send(
            b"POST /inspect HTTP/1.1\r\nHost: t\r\nX-Real-Ip: 1.2.3.4\r\nX-Scheme: https\r\n\
              Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-Checksum: abc\r\n\r\n",
        );
        let r = c.response();
        assert_eq!(r.one("remote_ip"), "1.2.3.4");
        assert_eq!(r.one("protocol"), "https");
        assert_eq!(r.field("trailer"), ["X-Checksum: abc"]);
        // Without them, the next request on the connection has the defaults.
        let r = c.roundtrip(b"GET /inspect HTTP/1.1\r\nHost: t\r\n\r\n");
        assert_eq!((r.one("remote_ip"), r.one("protocol")), ("127.0.0.1", "http"));
        assert!(r.field("trailer").is_empty());
    });
}

// ---------------------------------------------------------------------------------------------------------
// Streaming responses and services that fail or wait.
// ---------------------------------------------------------------------------------------------------------

#[test]
fn flushed_piece_reaches_the_client_before_the_next_is_written() {
    each_backend(|backend| {
        let probe = Probe::new();
        let server = TestServer::with_options(backend, ServerOptions::default(), &probe);
        let mut c = server.connect();
        c.send(&get("/stream"));
        let r = c.head();
        assert_eq!(r.status, 200);
        assert!(r.is_chunked());
        // The service is parked until `release` is set, which happens only after the first piece arrived.
        assert_eq!(c.chunk().as_deref(), Some(&b"first"[..]));
        probe.release.store(true, Ordering::SeqCst);
        assert_eq!(c.chunk().as_deref(), Some(&b"second"[..]));
        assert_eq!(c.chunk(), None);
        assert_eq!(c.roundtrip(&get("/next")).text(), "/next");
    });
}

#[test]
fn panicking_service_gets_500_and_the_server_keeps_serving() {
    each_backend(|backend| {
        let server = TestServer::new(backend);
        let mut c = server.connect();
        let r = c.roundtrip(&get("/panic"));
        assert_eq!(r.status, 500);
        assert!(r.says_close());
        c.assert_closed();
        server.assert_serving();
    });
}

#[test]
fn panic_after_the_head_cuts_the_response_and_closes() {
    each_backend(|backend| {
        let server = TestServer::new(backend);
        let mut c = server.connect();
        c.send(&get("/panic-late"));
        let r = c.head();
        assert_eq!(r.status, 200);
        assert!(r.is_chunked());
        assert_eq!(c.chunk().as_deref(), Some(&b"partial"[..]));
        // No last chunk, and no second head inside the body: the client sees a truncated response.
        c.assert_closed();
        server.assert_serving();
    });
}

#[test]
fn response_shorter_than_its_content_length_closes_the_connection() {
    each_backend(|backend| {
        let server = TestServer::new(backend);
        let mut c = server.connect();
        c.send(&get("/short"));
        let r = c.head();
        assert_eq!(r.header("content-length"), Some("10"));
        let mut body = [0u8; 3];
        c.reader().read_exact(&mut body).expect("the bytes written");
        assert_eq!(&body, b"abc");
        c.assert_closed();
        server.assert_serving();
    });
}

#[test]
fn service_fn_and_static_service_answer_and_bad_responses_become_500() {
    each_backend(|backend| {
        let server = TestServer::start(backend, ServerOptions::default(), || {
            gale_http1::service_fn(|request: gale_http1::Request| async move {
                match request.path() {
                    "/evil" => gale_http1::Response::text("x").header("X-Evil", "a\r\nInjected: yes"),
                    path => gale_http1::Response::text(format!("fn {path}")).status(201),
                }
            })
        });
        let mut c = server.connect();
        let r = c.roundtrip(&get("/ok"));
        assert_eq!((r.status, r.text()), (201, "fn /ok"));
        assert_eq!(r.header("content-type"), Some("text/plain"));
        let r = c.roundtrip(&get("/evil"));
        assert_eq!(r.status, 500);
        assert!(r.header("injected").is_none());
        c.assert_closed();

        let server = TestServer::start(backend, ServerOptions::default(), || {
            gale_http1::static_service(gale_http1::Response::text("same").header("X-Static", "1"))
        });
        let mut c = server.connect();
        for path in ["/a", "/b"] {
            let r = c.roundtrip(&get(path));
            assert_eq!((r.status, r.text(), r.header("x-static")), (200, "same", Some("1")));
        }
    });
}

#[test]
fn service_returning_without_an_answer_gets_500() {
    each_backend(|backend| {
        let server = TestServer::new(backend);
        let mut c = server.connect();
        let r = c.roundtrip(&get("/no-answer"));
        assert_eq!(r.status, 500);
        c.assert_closed();
        server.assert_serving();
    });
}

#[test]
fn abandoned_request_resolves_closed_and_drops_the_service() {
    each_backend(|backend| {
        let probe = Probe::new();
        let server = TestServer::with_options(backend, ServerOptions::default(), &probe);
        let mut c = server.connect();
        c.send(&get("/slow"));
        wait_for("the service to start", || probe.started.load(Ordering::SeqCst) == 1);
        c.stream().shutdown(Shutdown::Both).unwrap();
        drop(c);
        wait_for("the service to see the client leave", || probe.saw_closed.load(Ordering::SeqCst));
        wait_for("the service future to be dropped", || probe.dropped.load(Ordering::SeqCst) == 1);
        server.assert_serving();
        wait_for("the connection to be gone", || server.open_connections() == 0);
    });
}

// ---------------------------------------------------------------------------------------------------------
// Connection accounting and shutdown.
// ---------------------------------------------------------------------------------------------------------

#[test]
fn max_connections_holds_back_connections_until_one_closes() {
    each_backend(|backend| {
        let options = ServerOptions { max_connections: Some(1), ..Default::default() };
        let server = TestServer::with_options(backend, options, &Probe::new());
        let mut first = server.connect();
        assert_eq!(first.roundtrip(&get("/first")).status, 200);
        let mut second = server.connect();
        second.send(&get_close("/second"));
        second.assert_silent_for(Duration::from_millis(200));
        drop(first);
        let r = second.response();
        assert_eq!((r.status, r.text()), (200, "/second"));
    });
}

#[test]
fn open_connections_counts_live_connections() {
    each_backend(|backend| {
        let server = TestServer::new(backend);
        assert_eq!(server.open_connections(), 0);
        let clients: Vec<Client> = (0..3)
            .map(|_| {
                let mut c = server.connect();
                assert_eq!(c.roundtrip(&get("/")).status, 200);
                c
            })
            .collect();
        assert_eq!(server.open_connections(), 3);
        drop(clients);
        wait_for("every connection to close", || server.open_connections() == 0);
    });
}

#[test]
fn graceful_shutdown_closes_idle_finishes_in_flight_and_refuses_new() {
    each_backend(|backend| {
        let probe = Probe::new();
        let server = TestServer::with_options(backend, ServerOptions::default(), &probe);
        let mut idle = server.connect();
        assert_eq!(idle.roundtrip(&get("/")).status, 200);
        let mut busy = server.connect();
        busy.send(&get("/slow"));
        wait_for("the slow request to start", || probe.started.load(Ordering::SeqCst) == 1);

        let done = server.begin_shutdown(TIMEOUT);
        idle.assert_closed();
        let refused = TcpStream::connect(("127.0.0.1", server.port));
        assert!(refused.is_err(), "a new connection was accepted during shutdown");

        probe.release.store(true, Ordering::SeqCst);
        let r = busy.response();
        assert_eq!((r.status, r.text()), (200, "released"));
        assert!(r.says_close(), "a response finished during shutdown closes its connection");
        busy.assert_closed();
        assert_eq!(done.recv_timeout(TIMEOUT), Ok(0), "shutdown resolves with no connection left");
        assert_eq!(probe.dropped.load(Ordering::SeqCst), 0);
    });
}

#[test]
fn workers_serve_on_two_threads_and_shut_down() {
    let probe = Probe::new();
    let p = probe.clone();
    let workers =
        Workers::start(2, 0, Some("127.0.0.1"), ServerOptions::default(), move || TestService { probe: p.clone() })
            .expect("workers start");
    assert_eq!(workers.len(), 2);
    let port = workers.addr().port();
    let mut kept = Client::connect(port);
    for i in 0..8 {
        let r = Client::connect(port).roundtrip(&get_close(&format!("/worker/{i}")));
        assert_eq!((r.status, r.text()), (200, format!("/worker/{i}").as_str()));
        assert_eq!(kept.roundtrip(&get("/")).status, 200);
    }
    workers.shutdown(Duration::from_secs(2));
    kept.assert_closed();
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err(), "workers still accept after shutdown");
}

// ---------------------------------------------------------------------------------------------------------
// Timeouts.
// ---------------------------------------------------------------------------------------------------------

#[test]
fn client_that_never_finishes_its_head_is_dropped_after_header_timeout() {
    each_backend(|backend| {
        let options = ServerOptions { header_timeout: Some(Duration::from_millis(200)), ..Default::default() };
        let server = TestServer::with_options(backend, options, &Probe::new());
        let mut c = server.connect();
        let start = Instant::now();
        c.send(b"GET / HTTP/1.1\r\nHost: t\r\n");
        c.assert_closed();
        assert!(start.elapsed() >= Duration::from_millis(200), "closed before the header timeout");
        server.assert_serving();
    });
}

#[test]
fn header_timeout_does_not_start_before_the_first_byte() {
    each_backend(|backend| {
        let options = ServerOptions { header_timeout: Some(Duration::from_millis(50)), ..Default::default() };
        let server = TestServer::with_options(backend, options, &Probe::new());
        let mut c = server.connect();
        // Idle, not slow: the idle timeout (an hour) applies until a head starts.
        c.assert_silent_for(Duration::from_millis(250));
        assert_eq!(c.roundtrip(&get("/")).status, 200);
        c.assert_silent_for(Duration::from_millis(250));
        assert_eq!(c.roundtrip(&get("/")).status, 200);
    });
}

#[test]
fn idle_keep_alive_connection_is_closed_after_idle_timeout() {
    each_backend(|backend| {
        let options = ServerOptions { idle_connection_timeout: Some(Duration::from_millis(200)), ..Default::default() };
        let server = TestServer::with_options(backend, options, &Probe::new());
        let mut c = server.connect();
        let start = Instant::now();
        assert_eq!(c.roundtrip(&get("/")).status, 200);
        c.assert_closed();
        assert!(start.elapsed() >= Duration::from_millis(200), "closed before the idle timeout");
        server.assert_serving();
    });
}

#[test]
fn idle_timeout_restarts_with_every_request() {
    each_backend(|backend| {
        let idle = Duration::from_millis(400);
        let options = ServerOptions { idle_connection_timeout: Some(idle), ..Default::default() };
        let server = TestServer::with_options(backend, options, &Probe::new());
        let mut c = server.connect();
        assert_eq!(c.roundtrip(&get("/")).status, 200);
        // The timer armed after the first request fires before the deadline of the second: the connection
        // must then wait for the second's deadline, not close.
        std::thread::sleep(idle / 2);
        let second = Instant::now();
        assert_eq!(c.roundtrip(&get("/")).status, 200);
        c.assert_closed();
        assert!(second.elapsed() >= idle, "closed before the idle timeout of the last request");
        server.assert_serving();
    });
}

#[test]
fn stalled_body_is_dropped_after_body_timeout() {
    each_backend(|backend| {
        let options = ServerOptions { body_timeout: Some(Duration::from_millis(200)), ..Default::default() };
        let server = TestServer::with_options(backend, options, &Probe::new());
        let mut c = server.connect();
        c.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc");
        c.assert_closed();
        server.assert_serving();
    });
}

// ---------------------------------------------------------------------------------------------------------
// Hardening: refused requests. Each is sent on a fresh connection of a server with a 1 KiB body limit; the
// response must carry the status, say `Connection: close`, the connection must then close, and the server must
// still answer a fresh request.
// ---------------------------------------------------------------------------------------------------------

/// Server options for the refusal cases.
fn hardening_options() -> ServerOptions {
    ServerOptions { max_body_size: 1024, ..Default::default() }
}

fn assert_refused(backend: &'static str, request: &[u8], status: u16) {
    let server = TestServer::with_options(backend, hardening_options(), &Probe::new());
    let mut c = server.connect();
    // The server may close before it has read everything.
    let _ = c.try_send(request);
    let r = c.response();
    assert_eq!(r.status, status, "body: {:?}", String::from_utf8_lossy(&r.body));
    assert!(r.says_close(), "a refused request closes its connection");
    c.assert_closed();
    server.assert_serving();
}

/// A `GET /inspect` with `fields` (each ending in CRLF) after `Host`.
fn with_fields(fields: &str) -> Vec<u8> {
    format!("GET /inspect HTTP/1.1\r\nHost: t\r\n{fields}\r\n").into_bytes()
}

/// A `POST /echo` with `fields` and `body`.
fn post(fields: &str, body: &str) -> Vec<u8> {
    format!("POST /echo HTTP/1.1\r\nHost: t\r\n{fields}\r\n{body}").into_bytes()
}

macro_rules! refused {
    ($($(#[$doc:meta])* $name:ident: $request:expr => $status:expr;)*) => {$(
        $(#[$doc])*
        #[test]
        fn $name() {
            each_backend(|backend| assert_refused(backend, AsRef::<[u8]>::as_ref(&$request), $status));
        }
    )*};
}

refused! {
    /// The classic smuggling vector: which framing would a proxy have used?
    content_length_with_transfer_encoding_is_400:
        post("Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", "5\r\nhello\r\n0\r\n\r\n") => 400;
    two_different_content_lengths_are_400: post("Content-Length: 5\r\nContent-Length: 6\r\n", "hello!") => 400;
    content_length_list_with_different_values_is_400: post("Content-Length: 5, 6\r\n", "hello!") => 400;
    non_numeric_content_length_is_400: post("Content-Length: abc\r\n", "") => 400;
    negative_content_length_is_400: post("Content-Length: -1\r\n", "") => 400;
    signed_content_length_is_400: post("Content-Length: +5\r\n", "hello") => 400;
    hexadecimal_content_length_is_400: post("Content-Length: 0x5\r\n", "hello") => 400;
    overflowing_content_length_is_400: post("Content-Length: 99999999999999999999999\r\n", "") => 400;
    /// Only `chunked` is implemented; a coding we cannot undo is "not implemented".
    gzip_transfer_coding_is_501: post("Transfer-Encoding: gzip, chunked\r\n", "0\r\n\r\n") => 501;
    repeated_chunked_is_400: post("Transfer-Encoding: chunked, chunked\r\n", "0\r\n\r\n") => 400;
    transfer_encoding_not_ending_in_chunked_is_400: post("Transfer-Encoding: chunked, gzip\r\n", "0\r\n\r\n") => 400;
    transfer_encoding_in_http10_is_400:
        b"POST /echo HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" => 400;
    invalid_chunk_size_is_400: post("Transfer-Encoding: chunked\r\n", "zz\r\nhello\r\n0\r\n\r\n") => 400;
    chunk_size_with_a_sign_is_400: post("Transfer-Encoding: chunked\r\n", "+5\r\nhello\r\n0\r\n\r\n") => 400;
    chunk_size_overflowing_64_bits_is_400:
        post("Transfer-Encoding: chunked\r\n", "10000000000000000\r\nhello\r\n0\r\n\r\n") => 400;
    chunk_data_missing_its_crlf_is_400: post("Transfer-Encoding: chunked\r\n", "5\r\nhelloXX0\r\n\r\n") => 400;
    chunk_size_line_ended_by_bare_lf_is_400: post("Transfer-Encoding: chunked\r\n", "5\nhello\r\n0\r\n\r\n") => 400;
    nul_in_a_header_value_is_400: with_fields("X-A: a\0b\r\n") => 400;
    bare_cr_in_a_header_value_is_400: with_fields("X-A: a\rb\r\n") => 400;
    space_before_the_colon_is_400: with_fields("X-A : b\r\n") => 400;
    invalid_character_in_a_header_name_is_400: with_fields("X@A: b\r\n") => 400;
    obsolete_line_folding_is_400: with_fields("X-A: b\r\n c\r\n") => 400;
    header_line_ended_by_bare_lf_is_400: with_fields("X-A: b\nX-B: c\r\n") => 400;
    /// Only SP and HTAB are whitespace (Tornado 6.5): a vertical tab is a control byte, and refused.
    vertical_tab_before_a_header_value_is_400: with_fields("X-A: \x0bvalue\r\n") => 400;
    vertical_tab_after_a_header_value_is_400: with_fields("X-A: value\x0b\r\n") => 400;
    header_section_over_64_kib_is_431: with_fields(&format!("X-Big: {}\r\n", "a".repeat(70 * 1024))) => 431;
    more_than_100_header_fields_is_431: with_fields(&"X-A: b\r\n".repeat(101)) => 431;
    request_line_over_8_kib_is_414: get(&format!("/{}", "a".repeat(9 * 1024))) => 414;
    http11_without_host_is_400: b"GET / HTTP/1.1\r\n\r\n" => 400;
    two_host_headers_are_400: with_fields("Host: u\r\n") => 400;
    invalid_host_is_400: b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n" => 400;
    control_character_in_the_request_line_is_400: b"GET /a\x01b HTTP/1.1\r\nHost: t\r\n\r\n" => 400;
    request_line_with_a_tab_separator_is_400: b"GET\t/ HTTP/1.1\r\nHost: t\r\n\r\n" => 400;
    garbage_request_line_is_400: b"HELLO\r\n\r\n" => 400;
    http2_request_line_is_505: b"GET / HTTP/2.0\r\nHost: t\r\n\r\n" => 505;
    http09_style_version_is_505: b"GET / HTTP/0.9\r\nHost: t\r\n\r\n" => 505;
    /// The 413 comes from the head alone: the body is never sent.
    content_length_over_max_body_size_is_413_without_reading_the_body:
        post("Content-Length: 2048\r\n", "") => 413;
    chunked_body_over_max_body_size_is_413:
        post("Transfer-Encoding: chunked\r\n", &format!("800\r\n{}\r\n0\r\n\r\n", "z".repeat(0x800))) => 413;
}

#[test]
fn identical_duplicate_content_lengths_are_accepted() {
    each_backend(|backend| {
        let server = TestServer::new(backend);
        let r = server.connect().roundtrip(&post("Content-Length: 5\r\nContent-Length: 5\r\n", "hello"));
        assert_eq!((r.status, r.text()), (200, "hello"));
    });
}

// ---------------------------------------------------------------------------------------------------------
// Hardening: responses a service must not be able to send.
// ---------------------------------------------------------------------------------------------------------

#[test]
fn response_header_with_crlf_is_refused_and_the_client_gets_500() {
    each_backend(|backend| {
        let server = TestServer::new(backend);
        let mut c = server.connect();
        let r = c.roundtrip(&get("/bad-header"));
        assert_eq!(r.status, 500);
        assert!(r.header("injected").is_none() && r.header("x-evil").is_none(), "header injected: {r:?}");
        c.assert_closed();
        server.assert_serving();
    });
}

#[test]
fn whole_response_with_lf_in_a_header_is_refused_and_the_client_gets_500() {
    each_backend(|backend| {
        let server = TestServer::new(backend);
        let mut c = server.connect();
        let r = c.roundtrip(&get("/bad-response"));
        assert_eq!(r.status, 500);
        assert!(r.header("injected").is_none() && r.header("x-evil").is_none(), "header injected: {r:?}");
        server.assert_serving();
    });
}

#[test]
fn custom_reason_with_crlf_is_refused() {
    each_backend(|backend| {
        let server = TestServer::new(backend);
        let mut c = server.connect();
        let r = c.roundtrip(&get("/bad-reason"));
        assert_eq!((r.status, r.text()), (500, "reason refused"), "the service saw the head refused");
        assert!(r.header("injected").is_none());
        assert_eq!(c.roundtrip(&get("/next")).text(), "/next", "a refused head does not spoil the connection");
    });
}
