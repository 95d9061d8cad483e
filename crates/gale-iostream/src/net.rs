//! Socket helpers (Tornado's `netutil`), the TCP server and the TCP client.

use crate::stream::{IOStream, StreamOptions};
use gale_ioloop::{IOLoop, Interest, sleep, timeout};
use rustix::io::Errno;
use rustix::net::{AddressFamily, SocketFlags, SocketType, ipproto, sockopt};
use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::rc::Rc;
use std::time::Duration;

/// Tornado's default listen backlog (`_DEFAULT_BACKLOG`).
pub const DEFAULT_BACKLOG: i32 = 128;
/// How many connections one readiness event of a listener accepts at most, so that one busy listener cannot
/// monopolise the loop. While connections come one at a time, an event accepts just one (see [`TcpServer`]).
pub const ACCEPT_BATCH: usize = 128;
/// How long accepting pauses when the process is out of fds (`EMFILE`/`ENFILE`), instead of spinning.
pub const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Which address families [`bind_sockets`] binds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Family {
    /// IPv4 and IPv6, where available (Tornado's `AF_UNSPEC`).
    #[default]
    Any,
    /// IPv4 only.
    V4,
    /// IPv6 only.
    V6,
}

/// Options of [`bind_sockets`].
#[derive(Clone, Debug)]
pub struct BindOptions {
    /// Address families to bind when the address is a name or absent.
    pub family: Family,
    /// The `listen` backlog.
    pub backlog: i32,
    /// Set `SO_REUSEPORT`, so that several sockets (one per worker thread or process) share the port and the
    /// kernel balances connections between them.
    pub reuse_port: bool,
}

impl Default for BindOptions {
    fn default() -> Self {
        BindOptions { family: Family::Any, backlog: DEFAULT_BACKLOG, reuse_port: false }
    }
}

/// Creates listening sockets bound to `port` on `address` (Tornado's `bind_sockets`).
///
/// `address` may be an IP literal, a host name (every address it resolves to is bound), or `None` / `""` for
/// all interfaces (`0.0.0.0` and `::` where IPv6 is available). Port 0 picks a free port; when several sockets
/// are bound, they all get the port chosen for the first. Sockets are non-blocking and close-on-exec, with
/// `SO_REUSEADDR` and, for IPv6, `IPV6_V6ONLY` (so IPv4 and IPv6 sockets can share the port).
///
/// # Errors
///
/// If the name does not resolve, or no address could be bound (the first error is returned). A failure to
/// bind IPv6 when IPv4 succeeded is ignored, as on hosts without IPv6.
pub fn bind_sockets(port: u16, address: Option<&str>, options: &BindOptions) -> io::Result<Vec<TcpListener>> {
    let addrs: Vec<IpAddr> = match address {
        None | Some("") => {
            let mut v = Vec::new();
            if options.family != Family::V6 {
                v.push(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
            }
            if options.family != Family::V4 {
                v.push(IpAddr::V6(Ipv6Addr::UNSPECIFIED));
            }
            v
        }
        Some(host) => match host.parse::<IpAddr>() {
            Ok(ip) => vec![ip],
            Err(_) => {
                let mut v: Vec<IpAddr> = (host, port).to_socket_addrs()?.map(|a| a.ip()).collect();
                v.retain(|ip| match options.family {
                    Family::Any => true,
                    Family::V4 => ip.is_ipv4(),
                    Family::V6 => ip.is_ipv6(),
                });
                v.dedup();
                v
            }
        },
    };
    let mut listeners = Vec::new();
    let mut first_error = None;
    let mut port = port;
    for ip in addrs {
        match bind_one(SocketAddr::new(ip, port), options) {
            Ok(l) => {
                if port == 0 {
                    port = l.local_addr()?.port();
                }
                listeners.push(l);
            }
            Err(e) => {
                log::debug!("cannot bind {ip} port {port}: {e}");
                first_error.get_or_insert(e);
            }
        }
    }
    match (listeners.is_empty(), first_error) {
        (true, Some(e)) => Err(e),
        (true, None) => Err(io::Error::new(io::ErrorKind::AddrNotAvailable, "no address to bind")),
        _ => Ok(listeners),
    }
}

/// A non-blocking, close-on-exec TCP socket of `addr`'s family.
fn tcp_socket(addr: SocketAddr) -> io::Result<OwnedFd> {
    let family = if addr.is_ipv4() { AddressFamily::INET } else { AddressFamily::INET6 };
    Ok(rustix::net::socket_with(
        family,
        SocketType::STREAM,
        SocketFlags::NONBLOCK | SocketFlags::CLOEXEC,
        Some(ipproto::TCP),
    )?)
}

fn bind_one(addr: SocketAddr, options: &BindOptions) -> io::Result<TcpListener> {
    let fd = tcp_socket(addr)?;
    sockopt::set_socket_reuseaddr(&fd, true)?;
    if options.reuse_port {
        sockopt::set_socket_reuseport(&fd, true)?;
    }
    if addr.is_ipv6() {
        sockopt::set_ipv6_v6only(&fd, true)?;
    }
    rustix::net::bind(&fd, &addr).map_err(|e| {
        let e = io::Error::from(e);
        io::Error::new(e.kind(), format!("cannot bind {addr}: {e}"))
    })?;
    rustix::net::listen(&fd, options.backlog)?;
    Ok(TcpListener::from(fd))
}

/// Creates a listening Unix socket at `path` (Tornado's `bind_unix_socket`), removing a stale socket file
/// first. `mode` sets the file's permissions.
///
/// # Errors
///
/// If `path` exists and is not a socket, or binding fails.
pub fn bind_unix_socket(path: impl AsRef<Path>, mode: u32, backlog: i32) -> io::Result<UnixListener> {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    let path = path.as_ref();
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => std::fs::remove_file(path)?,
        Ok(_) => {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} exists and is not a socket", path.display()),
            ));
        }
        Err(_) => {}
    }
    let fd = rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::NONBLOCK | SocketFlags::CLOEXEC,
        None,
    )?;
    let addr = rustix::net::SocketAddrUnix::new(path)?;
    rustix::net::bind(&fd, &addr)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    rustix::net::listen(&fd, backlog)?;
    Ok(UnixListener::from(fd))
}

/// Sets `TCP_NODELAY` on a TCP socket.
///
/// # Errors
///
/// The OS error.
pub fn set_nodelay(socket: impl AsFd, on: bool) -> io::Result<()> {
    Ok(sockopt::set_tcp_nodelay(socket, on)?)
}

/// Accepts up to `max` connections from `listener`, non-blocking and close-on-exec, and says how many it
/// accepted and whether it found the backlog empty (`EAGAIN`). `EMFILE`/`ENFILE` end the batch with that error
/// so the caller can back off.
fn accept_batch(
    listener: &impl AsFd,
    max: usize,
    mut on_conn: impl FnMut(OwnedFd, Option<SocketAddr>),
) -> io::Result<(usize, bool)> {
    let mut accepted = 0;
    for _ in 0..max {
        match rustix::net::acceptfrom_with(listener, SocketFlags::NONBLOCK | SocketFlags::CLOEXEC) {
            Ok((fd, addr)) => {
                accepted += 1;
                on_conn(fd, addr.and_then(|a| SocketAddr::try_from(a).ok()));
            }
            Err(Errno::AGAIN) => return Ok((accepted, true)),
            // The connection was reset before we accepted it, or a signal came: go on.
            Err(Errno::CONNABORTED) | Err(Errno::INTR) | Err(Errno::PROTO) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Ok((accepted, false))
}

/// While a listener's connections arrive one at a time, how many of its readiness events in a row accept a
/// single connection (see [`AcceptPace`]) before one drains the backlog again.
const SPARSE_ACCEPTS: u8 = 8;

/// How many connections one readiness event of a listener accepts.
///
/// Draining the backlog until `accept` says `EAGAIN` (Tornado's way) costs that last, fruitless `accept` on
/// every event, which is one syscall per connection when connections come one at a time. So once a drain finds
/// a single connection waiting, the next [`SPARSE_ACCEPTS`] events accept one connection each and stop there:
/// readiness is level-triggered, so a connection left behind reports the listener again at the next wait. The
/// event after them drains the backlog as usual (at most [`ACCEPT_BATCH`]), and a drain that finds more than
/// one connection ends this sparse pace until a drain finds a single one again.
#[derive(Debug, Default)]
struct AcceptPace {
    sparse: bool,
    /// Events since the last drain.
    single: u8,
}

impl AcceptPace {
    /// How many connections this event may accept.
    fn batch(&self) -> usize {
        if self.sparse && self.single < SPARSE_ACCEPTS { 1 } else { ACCEPT_BATCH }
    }

    /// Notes the outcome of a batch of `max` (from [`AcceptPace::batch`]).
    fn record(&mut self, max: usize, accepted: usize, drained: bool) {
        if max == 1 && self.sparse {
            self.single += 1;
        } else {
            self.single = 0;
            self.sparse = drained && accepted <= 1;
        }
    }
}

/// How the accepted sockets of one listener get `TCP_NODELAY`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum NoDelay {
    /// Not asked for.
    Off,
    /// Set on the listener; whether its connections inherit it is learnt from the first one.
    Unknown,
    /// Accepted sockets inherit it from the listener (Linux and the BSDs do): nothing to do per connection.
    Inherited,
    /// Set on each accepted socket.
    PerSocket,
}

impl NoDelay {
    /// Sets `TCP_NODELAY` on the listener when it is wanted, so that connections may inherit it.
    fn for_listener(listener: &TcpListener, on: bool) -> NoDelay {
        match on {
            false => NoDelay::Off,
            true if sockopt::set_tcp_nodelay(listener, true).is_ok() => NoDelay::Unknown,
            true => NoDelay::PerSocket,
        }
    }

    /// Gives `socket`, just accepted, `TCP_NODELAY` if it is wanted and was not inherited; the first socket of
    /// a listener tells whether it was.
    #[inline]
    fn apply(&mut self, socket: &TcpStream) {
        match *self {
            NoDelay::Off | NoDelay::Inherited => {}
            NoDelay::PerSocket => {
                let _ = sockopt::set_tcp_nodelay(socket, true);
            }
            NoDelay::Unknown => {
                if sockopt::tcp_nodelay(socket).unwrap_or(false) {
                    *self = NoDelay::Inherited;
                } else {
                    *self = NoDelay::PerSocket;
                    let _ = sockopt::set_tcp_nodelay(socket, true);
                }
            }
        }
    }
}

/// What a [`TcpServer`] does with each connection.
pub trait StreamHandler: 'static {
    /// Handles one accepted connection; the returned future runs on the loop as its own task.
    fn handle_stream(&self, stream: IOStream<TcpStream>, address: SocketAddr) -> impl Future<Output = ()> + 'static;
}

impl<F, Fut> StreamHandler for F
where
    F: Fn(IOStream<TcpStream>, SocketAddr) -> Fut + 'static,
    Fut: Future<Output = ()> + 'static,
{
    fn handle_stream(&self, stream: IOStream<TcpStream>, address: SocketAddr) -> impl Future<Output = ()> + 'static {
        self(stream, address)
    }
}

/// Counts open connections and pauses accepting at the limit.
struct Accounting {
    open: Cell<usize>,
    max: Cell<Option<usize>>,
    listeners: RefCell<Vec<Rc<TcpListener>>>,
    paused: Cell<bool>,
    stopped: Cell<bool>,
    io_loop: IOLoop,
}

impl Accounting {
    fn set_accepting(&self, on: bool) {
        if self.paused.get() != on || self.stopped.get() {
            return;
        }
        self.paused.set(!on);
        let interest = if on { Interest::READABLE } else { Interest::NONE };
        for l in self.listeners.borrow().iter() {
            if let Err(e) = self.io_loop.update_handler(&**l, interest) {
                log::error!("cannot {} accepting: {e}", if on { "resume" } else { "pause" });
            }
        }
    }
}

/// Decrements the open-connection count when the last handle to a stream is dropped.
pub(crate) struct ConnectionGuard(Rc<Accounting>);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        let acc = &self.0;
        acc.open.set(acc.open.get() - 1);
        if acc.max.get().is_some_and(|m| acc.open.get() < m) {
            acc.set_accepting(true);
        }
    }
}

/// A non-blocking TCP server (Tornado's `TCPServer`): accepts connections on its listeners and runs the
/// handler's future for each one on the loop.
///
/// A readiness event of a listener accepts until the backlog is empty, at most [`ACCEPT_BATCH`] connections;
/// while connections come one at a time, it accepts just one and spares the `accept` that would only find
/// the backlog empty (a connection left behind reports the listener again at the next wait).
///
/// # Examples
///
/// ```no_run
/// use gale_iostream::TcpServer;
///
/// let io_loop = gale_ioloop::IOLoop::new()?;
/// let server = TcpServer::new(&io_loop, |stream: gale_iostream::IOStream, _addr| async move {
///     while let Ok(line) = stream.read_until(b"\n", Some(64 * 1024)).await {
///         if stream.write(line).await.is_err() {
///             break;
///         }
///     }
/// });
/// server.listen(8888, Some("127.0.0.1"))?;
/// io_loop.start()?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct TcpServer<H: StreamHandler> {
    handler: Rc<H>,
    acc: Rc<Accounting>,
    stream_options: Cell<StreamOptions>,
    nodelay: Cell<bool>,
}

impl<H: StreamHandler> fmt::Debug for TcpServer<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpServer")
            .field("listeners", &self.acc.listeners.borrow().len())
            .field("open_connections", &self.acc.open.get())
            .finish()
    }
}

impl<H: StreamHandler> TcpServer<H> {
    /// A server on `io_loop` that hands each connection to `handler`.
    pub fn new(io_loop: &IOLoop, handler: H) -> TcpServer<H> {
        TcpServer {
            handler: Rc::new(handler),
            acc: Rc::new(Accounting {
                open: Cell::new(0),
                max: Cell::new(None),
                listeners: RefCell::new(Vec::new()),
                paused: Cell::new(false),
                stopped: Cell::new(false),
                io_loop: io_loop.clone(),
            }),
            stream_options: Cell::new(StreamOptions::default()),
            nodelay: Cell::new(true),
        }
    }

    /// The limits given to every accepted stream.
    pub fn set_stream_options(&self, options: StreamOptions) {
        self.stream_options.set(options);
    }

    /// Whether accepted TCP sockets get `TCP_NODELAY` (default on: responses are written whole). Listeners
    /// added afterwards follow it. The option is set on the listener itself, and on each accepted socket only
    /// where the platform does not pass it on from the listener (Linux and the BSDs do).
    pub fn set_nodelay(&self, on: bool) {
        self.nodelay.set(on);
    }

    /// Caps open connections: at the cap the server stops accepting (new connections wait in the kernel's
    /// backlog) until one closes.
    pub fn set_max_connections(&self, max: Option<usize>) {
        self.acc.max.set(max);
        let at_cap = max.is_some_and(|m| self.acc.open.get() >= m);
        self.acc.set_accepting(!at_cap);
    }

    /// The number of connections accepted and not yet closed (their last stream handle not yet dropped).
    pub fn open_connections(&self) -> usize {
        self.acc.open.get()
    }

    /// Binds `port` on `address` (all interfaces for `None`) and starts accepting.
    ///
    /// # Errors
    ///
    /// As [`bind_sockets`], with a message naming the port when it is taken.
    pub fn listen(&self, port: u16, address: Option<&str>) -> io::Result<()> {
        let sockets = bind_sockets(port, address, &BindOptions::default())?;
        self.add_sockets(sockets)
    }

    /// Starts accepting on already-bound listeners (Tornado's `add_sockets`).
    ///
    /// # Errors
    ///
    /// If a listener cannot be registered with the loop.
    pub fn add_sockets(&self, listeners: Vec<TcpListener>) -> io::Result<()> {
        for l in listeners {
            l.set_nonblocking(true)?;
            self.add_accept_handler(Rc::new(l))?;
        }
        Ok(())
    }

    /// The addresses the server listens on.
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.acc.listeners.borrow().iter().filter_map(|l| l.local_addr().ok()).collect()
    }

    fn add_accept_handler(&self, listener: Rc<TcpListener>) -> io::Result<()> {
        let io_loop = self.acc.io_loop.clone();
        let handler = self.handler.clone();
        let acc = self.acc.clone();
        let options = self.stream_options.get();
        let mut nodelay = NoDelay::for_listener(&listener, self.nodelay.get());
        let mut pace = AcceptPace::default();
        let l = listener.clone();
        let interest = if self.acc.paused.get() { Interest::NONE } else { Interest::READABLE };
        io_loop.add_handler(&*listener, interest, move |_, _| {
            let max = pace.batch();
            let result = accept_batch(&*l, max, |fd, addr| {
                let socket = TcpStream::from(fd);
                nodelay.apply(&socket);
                let addr = addr.unwrap_or(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0));
                // `accept_batch` made it non-blocking.
                let stream = match IOStream::with_nonblocking(&acc.io_loop, socket, options) {
                    Ok(s) => s,
                    Err(e) => {
                        log::error!("cannot set up connection from {addr}: {e}");
                        return;
                    }
                };
                acc.open.set(acc.open.get() + 1);
                stream.attach_connection_guard(ConnectionGuard(acc.clone()));
                if acc.max.get().is_some_and(|m| acc.open.get() >= m) {
                    acc.set_accepting(false);
                }
                acc.io_loop.spawn_detached(handler.handle_stream(stream, addr));
            });
            match result {
                Ok((accepted, drained)) => pace.record(max, accepted, drained),
                Err(e) => match e.raw_os_error() {
                    Some(code) if code == Errno::MFILE.raw_os_error() || code == Errno::NFILE.raw_os_error() => {
                        log::error!("out of file descriptors ({e}); pausing accept for {ACCEPT_BACKOFF:?}");
                        acc.set_accepting(false);
                        let a = acc.clone();
                        acc.io_loop.spawn(async move {
                            sleep(ACCEPT_BACKOFF).await;
                            if a.max.get().is_none_or(|m| a.open.get() < m) {
                                a.set_accepting(true);
                            }
                        });
                    }
                    _ => log::error!("accept failed: {e}"),
                },
            }
        })?;
        self.acc.listeners.borrow_mut().push(listener);
        Ok(())
    }

    /// Stops accepting and closes the listeners. Open connections are not touched.
    pub fn stop(&self) {
        self.acc.stopped.set(true);
        let listeners = std::mem::take(&mut *self.acc.listeners.borrow_mut());
        for l in listeners {
            let _ = self.acc.io_loop.remove_handler(&*l);
        }
    }
}

impl<H: StreamHandler> Drop for TcpServer<H> {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Connects to `host:port` (Tornado's `TCPClient.connect`), trying each resolved address in turn, within
/// `connect_timeout` in all. The stream is on the current thread's loop, with `TCP_NODELAY`.
///
/// Host names are resolved on a helper thread so the loop never blocks; IP literals are used directly.
///
/// # Errors
///
/// The last connection error, `TimedOut` when the timeout passes, or the resolver's error.
pub async fn connect(host: &str, port: u16, connect_timeout: Option<Duration>) -> io::Result<IOStream<TcpStream>> {
    let attempt = async {
        let addrs = resolve(host, port).await?;
        let mut last = io::Error::new(io::ErrorKind::NotFound, format!("{host} resolved to no address"));
        for addr in addrs {
            match connect_addr(addr).await {
                Ok(s) => return Ok(s),
                Err(e) => last = e,
            }
        }
        Err(last)
    };
    match connect_timeout {
        Some(d) => timeout(d, attempt)
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, format!("connecting to {host}:{port} timed out")))?,
        None => attempt.await,
    }
}

/// Resolves `host` without blocking the loop.
pub async fn resolve(host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
    let literal = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = literal.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let handle = IOLoop::current().handle();
    let host = host.to_owned();
    let waker_slot: std::sync::Arc<std::sync::Mutex<Option<std::task::Waker>>> = Default::default();
    let slot = waker_slot.clone();
    std::thread::spawn(move || {
        let result = (host.as_str(), port).to_socket_addrs().map(|i| i.collect::<Vec<_>>());
        let _ = tx.send(result);
        handle.add_callback(move || {
            if let Some(w) = slot.lock().unwrap_or_else(|e| e.into_inner()).take() {
                w.wake();
            }
        });
    });
    std::future::poll_fn(|cx| match rx.try_recv() {
        Ok(r) => std::task::Poll::Ready(r),
        Err(std::sync::mpsc::TryRecvError::Disconnected) => {
            std::task::Poll::Ready(Err(io::Error::other("resolver thread died")))
        }
        Err(std::sync::mpsc::TryRecvError::Empty) => {
            *waker_slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(cx.waker().clone());
            // The result may have arrived between the check and storing the waker.
            match rx.try_recv() {
                Ok(r) => std::task::Poll::Ready(r),
                Err(_) => std::task::Poll::Pending,
            }
        }
    })
    .await
}

/// Connects to one address without blocking: `connect` returns `EINPROGRESS`, then writability tells the
/// outcome, read from `SO_ERROR`.
pub async fn connect_addr(addr: SocketAddr) -> io::Result<IOStream<TcpStream>> {
    let fd = tcp_socket(addr)?;
    let pending = match rustix::net::connect(&fd, &addr) {
        Ok(()) => false,
        Err(Errno::INPROGRESS) | Err(Errno::INTR) => true,
        Err(e) => return Err(io::Error::new(io::Error::from(e).kind(), format!("connect to {addr}: {e}"))),
    };
    let _ = sockopt::set_tcp_nodelay(&fd, true);
    // `tcp_socket` made it non-blocking.
    let stream = IOStream::with_nonblocking(&IOLoop::current(), TcpStream::from(fd), StreamOptions::default())?;
    if pending {
        stream.writable().await?;
        let err = stream.with_io(|s| sockopt::socket_error(s)).ok_or_else(|| io::Error::other("closed"))??;
        if let Err(e) = err {
            return Err(io::Error::new(io::Error::from(e).kind(), format!("connect to {addr}: {e}")));
        }
    }
    Ok(stream)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The batch sizes of `events` listener events, each finding `waiting(i)` connections in the backlog.
    fn batches(events: usize, waiting: impl Fn(usize) -> usize) -> Vec<usize> {
        let mut pace = AcceptPace::default();
        (0..events)
            .map(|i| {
                let max = pace.batch();
                let backlog = waiting(i);
                let accepted = backlog.min(max);
                pace.record(max, accepted, backlog < max);
                max
            })
            .collect()
    }

    #[test]
    fn connections_coming_one_at_a_time_are_accepted_without_a_fruitless_accept() {
        let sizes = batches(20, |_| 1);
        let sparse = SPARSE_ACCEPTS as usize;
        assert_eq!(sizes[0], ACCEPT_BATCH);
        assert!(sizes[1..=sparse].iter().all(|&n| n == 1), "{sizes:?}");
        assert_eq!(sizes[sparse + 1], ACCEPT_BATCH);
        assert!(sizes[sparse + 2..].iter().take(sparse).all(|&n| n == 1), "{sizes:?}");
    }

    #[test]
    fn a_burst_ends_the_sparse_pace_at_the_next_drain() {
        // One at a time first, then a backlog of 50 that stays until drained.
        let mut pace = AcceptPace::default();
        let mut backlog = 1;
        for _ in 0..3 {
            let max = pace.batch();
            pace.record(max, 1, max > 1);
        }
        assert_eq!(pace.batch(), 1);
        backlog += 49;
        let mut events = 0;
        while backlog > 0 {
            let max = pace.batch();
            let accepted = backlog.min(max);
            backlog -= accepted;
            pace.record(max, accepted, backlog == 0 && accepted < max);
            events += 1;
        }
        assert!(events <= SPARSE_ACCEPTS as usize + 1, "{events} events");
        assert_eq!(pace.batch(), ACCEPT_BATCH);
    }
}
