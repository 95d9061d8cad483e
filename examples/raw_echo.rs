//! The classic non-blocking echo server, done right, on nothing but `gale-ioloop` and `rustix`: bind, listen,
//! accept in batches on readiness, and echo with per-connection buffers, switching each fd's interest between
//! readable and writable as its output backs up — Tornado's `add_handler` style, no streams.
//!
//! ```text
//! cargo run --release --example raw_echo -- --port 8888
//! printf 'hello\n' | nc -q1 127.0.0.1 8888
//! ```

use gale_examples::Options;
use gale_ioloop::{IOLoop, Interest};
use rustix::io::Errno;
use rustix::net::{AddressFamily, SocketFlags, SocketType, sockopt};
use std::cell::RefCell;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::rc::Rc;

/// At most this many bytes wait to be echoed back; beyond it we stop reading from that client.
const MAX_PENDING: usize = 256 * 1024;

struct Conn {
    fd: OwnedFd,
    pending: Vec<u8>,
}

fn main() -> Result<(), gale_examples::CliError> {
    gale_examples::init_logging();
    let opts = Options::from_env();
    let port = opts.port();
    let io_loop = IOLoop::new()?;

    let listener = rustix::net::socket_with(
        AddressFamily::INET,
        SocketType::STREAM,
        SocketFlags::NONBLOCK | SocketFlags::CLOEXEC,
        None,
    )?;
    sockopt::set_socket_reuseaddr(&listener, true)?;
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    rustix::net::bind(&listener, &addr).map_err(|e| gale_examples::port_error(port, e.into()))?;
    rustix::net::listen(&listener, 1024)?;
    println!("raw_echo listening on http://{addr} (poller: {})", io_loop.poller_name());

    let conns: Rc<RefCell<std::collections::HashMap<RawFd, Conn>>> = Rc::default();
    let l = io_loop.clone();
    let listener = Rc::new(listener);
    let lst = listener.clone();
    io_loop.add_handler(&*listener, Interest::READABLE, move |_, _| {
        // Accept a bounded batch per readiness event, so a flood of connections cannot starve the others.
        for _ in 0..128 {
            match rustix::net::accept_with(&*lst, SocketFlags::NONBLOCK | SocketFlags::CLOEXEC) {
                Ok(fd) => {
                    let raw = fd.as_raw_fd();
                    let (l2, c2) = (l.clone(), conns.clone());
                    if let Err(e) = l.add_handler(&fd, Interest::READABLE, move |fd, ev| on_ready(&l2, &c2, fd, ev)) {
                        log::error!("cannot watch fd {raw}: {e}");
                        continue;
                    }
                    conns.borrow_mut().insert(raw, Conn { fd, pending: Vec::new() });
                }
                Err(Errno::AGAIN) => break,
                Err(Errno::CONNABORTED) | Err(Errno::INTR) => continue,
                Err(e) => {
                    log::error!("accept: {e}");
                    break;
                }
            }
        }
    })?;
    Ok(io_loop.start()?)
}

fn on_ready(
    io_loop: &IOLoop,
    conns: &Rc<RefCell<std::collections::HashMap<RawFd, Conn>>>,
    fd: RawFd,
    ev: gale_ioloop::Event,
) {
    let mut map = conns.borrow_mut();
    let Some(conn) = map.get_mut(&fd) else { return };
    let mut close = false;
    if ev.is_readable() && conn.pending.len() < MAX_PENDING {
        let mut buf = [0u8; 16 * 1024];
        loop {
            match rustix::io::read(&conn.fd, &mut buf) {
                Ok(0) => {
                    close = true;
                    break;
                }
                Ok(n) => {
                    conn.pending.extend_from_slice(&buf[..n]);
                    if conn.pending.len() >= MAX_PENDING {
                        break;
                    }
                }
                Err(Errno::AGAIN) => break,
                Err(Errno::INTR) => continue,
                Err(_) => {
                    close = true;
                    break;
                }
            }
        }
    }
    while !close && !conn.pending.is_empty() {
        match rustix::io::write(&conn.fd, &conn.pending) {
            Ok(n) => {
                conn.pending.drain(..n);
            }
            Err(Errno::AGAIN) => break,
            Err(Errno::INTR) => continue,
            Err(_) => close = true,
        }
    }
    if close {
        let conn = map.remove(&fd).expect("present");
        drop(map);
        let _ = io_loop.remove_handler(&conn.fd);
        return; // `conn.fd` closes here
    }
    // Read while there is room; wait for writability while output is pending.
    let mut interest = Interest::NONE;
    if conn.pending.len() < MAX_PENDING {
        interest = interest.add(Interest::READABLE);
    }
    if !conn.pending.is_empty() {
        interest = interest.add(Interest::WRITABLE);
    }
    let fd_ref = rustix::fd::AsFd::as_fd(&conn.fd);
    if let Err(e) = io_loop.update_handler(fd_ref, interest) {
        log::error!("update_handler: {e}");
    }
}
