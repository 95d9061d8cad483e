//! An IOLoop on a poller backend written outside gale: a wrapper that counts the syscalls the default backend
//! makes, serving a line echo server (`--port`, default 8888) and printing the counts every five seconds.
//!
//! It shows the whole extension point: implement `gale_poller::Poller`, hand it to `IOLoop::with_poller`, and
//! everything above — streams, servers — runs on it unchanged.
//!
//! ```text
//! cargo run --release --example custom_poller -- --port 8888
//! ```

use gale_examples::Options;
use gale_ioloop::{IOLoop, PeriodicCallback};
use gale_iostream::{IOStream, TcpServer};
use gale_poller::{Events, Interest, Notifier, Poller, Token};
use std::os::fd::BorrowedFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Syscall counters, shared with the reporting timer.
#[derive(Debug, Default)]
struct Counts {
    register: AtomicU64,
    modify: AtomicU64,
    deregister: AtomicU64,
    wait: AtomicU64,
    events: AtomicU64,
}

/// A backend that delegates to another and counts every call.
#[derive(Debug)]
struct CountingPoller {
    inner: Box<dyn Poller>,
    counts: Arc<Counts>,
}

impl Poller for CountingPoller {
    fn register(&mut self, fd: BorrowedFd<'_>, token: Token, interest: Interest) -> std::io::Result<()> {
        self.counts.register.fetch_add(1, Ordering::Relaxed);
        self.inner.register(fd, token, interest)
    }
    fn modify(&mut self, fd: BorrowedFd<'_>, token: Token, interest: Interest) -> std::io::Result<()> {
        self.counts.modify.fetch_add(1, Ordering::Relaxed);
        self.inner.modify(fd, token, interest)
    }
    fn deregister(&mut self, fd: BorrowedFd<'_>) -> std::io::Result<()> {
        self.counts.deregister.fetch_add(1, Ordering::Relaxed);
        self.inner.deregister(fd)
    }
    fn wait(&mut self, events: &mut Events, timeout: Option<Duration>) -> std::io::Result<()> {
        self.counts.wait.fetch_add(1, Ordering::Relaxed);
        let r = self.inner.wait(events, timeout);
        self.counts.events.fetch_add(events.len() as u64, Ordering::Relaxed);
        r
    }
    fn notifier(&self) -> Notifier {
        self.inner.notifier()
    }
    fn name(&self) -> &'static str {
        "counting"
    }
}

fn main() -> Result<(), gale_examples::CliError> {
    gale_examples::init_logging();
    let port = Options::from_env().port();
    let counts = Arc::new(Counts::default());
    let poller = CountingPoller { inner: gale_poller::default_poller()?, counts: counts.clone() };
    let io_loop = IOLoop::with_poller(Box::new(poller));

    let server = TcpServer::new(&io_loop, |stream: IOStream, _| async move {
        while let Ok(line) = stream.read_until(b"\n", Some(64 * 1024)).await {
            if stream.write(line).await.is_err() {
                break;
            }
        }
    });
    server.listen(port, Some("127.0.0.1")).map_err(|e| gale_examples::port_error(port, e))?;
    println!("custom_poller echo server listening on 127.0.0.1:{port} (poller: {})", io_loop.poller_name());

    let report = PeriodicCallback::new(
        move || {
            println!(
                "poller calls: register {} modify {} deregister {} wait {} (events {})",
                counts.register.load(Ordering::Relaxed),
                counts.modify.load(Ordering::Relaxed),
                counts.deregister.load(Ordering::Relaxed),
                counts.wait.load(Ordering::Relaxed),
                counts.events.load(Ordering::Relaxed),
            )
        },
        Duration::from_secs(5),
    );
    report.start_on(&io_loop);
    Ok(io_loop.start()?)
}
