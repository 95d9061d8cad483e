//! SIGTERM stops a server gracefully: requests in flight finish (with `Connection: close`), idle connections
//! close at once, new connections are refused. In its own test binary, since it signals its own process.

use gale_web::{Application, RequestContext, RequestHandler, Result};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

struct Slow;

impl RequestHandler for Slow {
    async fn get(&mut self, cx: &mut RequestContext) -> Result {
        gale_web::ioloop::sleep(Duration::from_millis(300)).await;
        cx.write("finished");
        Ok(())
    }
}

fn make_app() -> Application {
    Application::builder().route("/slow", || Slow).configure(|s| s.access_log = false).build().unwrap()
}

fn read_all(mut s: TcpStream) -> String {
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

#[test]
fn sigterm_lets_in_flight_requests_finish_and_refuses_new_ones() {
    let handle = gale_web::run(2, 0, Some("127.0.0.1"), Default::default(), make_app).unwrap();
    let addr = handle.addr();
    let connect = || {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s
    };
    // One idle keep-alive connection, and three requests in flight.
    let idle = connect();
    let in_flight: Vec<_> = (0..3)
        .map(|_| {
            let mut s = connect();
            s.write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
            std::thread::spawn(move || read_all(s))
        })
        .collect();
    std::thread::sleep(Duration::from_millis(100)); // the requests reach their handlers

    let waiter = std::thread::spawn(move || {
        gale_examples::on_shutdown_signal(move || handle.shutdown(Duration::from_secs(10))).unwrap();
    });
    std::thread::sleep(Duration::from_millis(50)); // the signal handler is installed
    rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::TERM).unwrap();

    for t in in_flight {
        let reply = t.join().unwrap();
        assert!(reply.starts_with("HTTP/1.1 200 OK\r\n"), "lost an in-flight request: {reply:?}");
        assert!(reply.contains("Connection: close\r\n"), "{reply}");
        assert!(reply.ends_with("finished"), "{reply}");
    }
    // The idle connection was closed without a response.
    assert_eq!(read_all(idle), "");
    waiter.join().unwrap();
    // Everything stopped: the port no longer accepts.
    assert!(TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_err());
}
