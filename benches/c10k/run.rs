//! One run: start the server on a backend, hold N standing connections, measure, release, check for leaks.

use crate::client::{Conn, OP_CLOSE, OP_TEXT, WsClient, request_bytes};
use crate::procfs;
use crate::server::Stats;
use serde::{Deserialize, Serialize};
use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

/// Connections opened before the driver waits for the server to have them all: below the listen backlog, so
/// that no SYN is dropped and retried a second later.
const BATCH: usize = 500;

/// Failures of single connections kept in the report; the counts say how many there were.
const MAX_DETAILS: usize = 10;

/// How long the server may take to register a batch, or to let go of everything after the release.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);

/// How much resident memory may grow from the first release to the last, as a share of what the standing
/// connections took: a cycle that leaked even a tenth of each connection's memory would exceed it.
const MAX_RSS_GROWTH: f64 = 0.1;

/// Growth always tolerated, KiB: a few pages of allocator bookkeeping.
const RSS_SLACK_KIB: u64 = 256;

/// Ordinary requests sent to warm the server up before anything is measured.
const WARM_UP: usize = 200;

/// What to run.
#[derive(Clone, Debug)]
pub struct Config {
    /// The poller backend (`GALE_POLLER`): `epoll`, `poll` or `select`.
    pub backend: String,
    /// Standing connections: half long polls, half websockets (the odd one is a long poll).
    pub conns: usize,
    /// Ordinary requests timed, with no standing connection and again with all of them.
    pub requests: usize,
    /// Hold-and-release cycles on the same server: from the second on, memory must be reused, not grown.
    pub cycles: usize,
}

/// Latency and server CPU of the ordinary requests, sent one after another on one keep-alive connection.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
pub struct Latency {
    /// Median round trip, µs.
    pub p50_us: f64,
    /// 99th percentile round trip, µs.
    pub p99_us: f64,
    /// Slowest round trip, µs.
    pub max_us: f64,
    /// Server CPU time (user + system) per request, µs.
    pub cpu_us_per_request: f64,
}

/// The server at one moment.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
pub struct Snapshot {
    /// Resident memory, KiB.
    pub rss_kib: u64,
    /// Open fds.
    pub fds: usize,
    /// What the server reports holding.
    pub server: Stats,
}

/// Memory per standing connection, from the growth of the server's resident memory (user space only: socket
/// buffers live in the kernel).
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
pub struct Memory {
    /// Over all standing connections.
    pub kib_per_conn: f64,
    /// Per waiting long poll.
    pub kib_per_long_poll: f64,
    /// Per open websocket.
    pub kib_per_websocket: f64,
}

/// Everything one run measured and checked.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Outcome {
    /// The backend, as the server reported it.
    pub backend: String,
    /// Standing connections.
    pub conns: usize,
    /// Of which long polls.
    pub long_polls: usize,
    /// Of which websockets.
    pub websockets: usize,
    /// Ordinary requests timed in each phase.
    pub requests: usize,
    /// Hold-and-release cycles run on the server.
    pub cycles: usize,
    /// Seconds to open every standing connection (first cycle).
    pub open_seconds: f64,
    /// Before any standing connection (the driver's own connection open).
    pub baseline: Snapshot,
    /// With the long polls waiting, before the websockets (first cycle).
    pub with_long_polls: Snapshot,
    /// With every standing connection (first cycle).
    pub held: Snapshot,
    /// After the last release, once the server let go.
    pub after: Snapshot,
    /// Resident memory after each release, KiB.
    pub rss_after_release_kib: Vec<u64>,
    /// Memory per standing connection (first cycle).
    pub memory: Memory,
    /// Ordinary requests with no standing connection.
    pub idle: Latency,
    /// Ordinary requests with every standing connection held (first cycle).
    pub loaded: Latency,
    /// Websockets whose handshake was answered `101` with the right accept key (this and the counts below:
    /// the fewest of any cycle).
    pub websockets_upgraded: usize,
    /// Websockets that echoed a message while all were held.
    pub websockets_echoed: usize,
    /// Long polls the release reported waking.
    pub woken: usize,
    /// Long polls answered `200 released`.
    pub long_polls_answered: usize,
    /// Websockets that answered a close frame with one and then closed the connection.
    pub websockets_closed: usize,
    /// Failed checks; empty when the run passed.
    pub failures: Vec<String>,
}

/// Failed checks: every run-wide one, and the first [`MAX_DETAILS`] of single connections.
#[derive(Debug, Default)]
struct Failures {
    list: Vec<String>,
    details: usize,
}

impl Failures {
    /// A run-wide check that failed.
    fn check(&mut self, ok: bool, what: impl FnOnce() -> String) {
        if !ok {
            self.list.push(what());
        }
    }

    /// A single connection that misbehaved.
    fn detail(&mut self, what: String) {
        self.details += 1;
        if self.details <= MAX_DETAILS {
            self.list.push(what);
        }
    }

    fn into_list(mut self) -> Vec<String> {
        if self.details > MAX_DETAILS {
            self.list.push(format!("… and {} more connections failed", self.details - MAX_DETAILS));
        }
        self.list
    }
}

impl Outcome {
    /// Whether every check passed.
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

/// The server child process, killed when dropped.
struct ServerProcess {
    child: Child,
    /// Kept open: the server may not write to a closed pipe.
    _stdout: BufReader<ChildStdout>,
    pid: u32,
    port: u16,
    backend: String,
}

impl ServerProcess {
    /// Starts this executable with `--serve` on `backend` and reads the port it listens on.
    fn start(backend: &str) -> Result<ServerProcess, String> {
        let exe = std::env::current_exe().map_err(|e| format!("cannot find this executable: {e}"))?;
        let mut child = Command::new(exe)
            .arg("--serve")
            .env(gale_web::http1::ioloop::poller::ENV_VAR, backend)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start the server: {e}"))?;
        let mut stdout = BufReader::new(child.stdout.take().expect("piped"));
        let mut line = String::new();
        let read = stdout.read_line(&mut line);
        let pid = child.id();
        let mut server = ServerProcess { child, _stdout: stdout, pid, port: 0, backend: String::new() };
        read.map_err(|e| format!("reading the server's port: {e}"))?;
        let (port, name) = line.trim().split_once(' ').ok_or_else(|| format!("the server said {line:?}"))?;
        server.port = port.parse().map_err(|_| format!("the server said {line:?}"))?;
        server.backend = name.to_owned();
        Ok(server)
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn io_err(what: &str) -> impl FnOnce(std::io::Error) -> String + '_ {
    move |e| format!("{what}: {e}")
}

/// The server's [`Stats`], asked on `conn`.
fn stats(conn: &mut Conn) -> Result<Stats, String> {
    let response = conn.request("GET", "/stats", b"").map_err(io_err("GET /stats"))?;
    serde_json::from_slice(&response.body).map_err(|e| format!("GET /stats answered {response:?}: {e}"))
}

/// Asks for [`Stats`] until `done` holds; fails after [`SETTLE_TIMEOUT`].
fn wait_for(conn: &mut Conn, what: &str, done: impl Fn(&Stats) -> bool) -> Result<Stats, String> {
    let until = Instant::now() + SETTLE_TIMEOUT;
    loop {
        let s = stats(conn)?;
        if done(&s) {
            return Ok(s);
        }
        if Instant::now() > until {
            return Err(format!("timed out waiting for {what}; the server holds {s:?}"));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn snapshot(pid: u32, conn: &mut Conn) -> Result<Snapshot, String> {
    let server = stats(conn)?;
    Ok(Snapshot {
        rss_kib: procfs::rss_kib(pid).map_err(io_err("VmRSS"))?,
        fds: procfs::fd_count(pid).map_err(io_err("fd count"))?,
        server,
    })
}

/// Sends `requests` ordinary `GET /` one after another on `conn`, timing each, and reads the server's CPU time
/// around them.
fn measure(pid: u32, conn: &mut Conn, requests: usize) -> Result<Latency, String> {
    let request = request_bytes("GET", "/", b"");
    let mut samples = Vec::with_capacity(requests);
    let cpu_before = procfs::cpu_time(pid).map_err(io_err("CPU time"))?;
    for _ in 0..requests {
        let start = Instant::now();
        conn.send(&request).map_err(io_err("GET /"))?;
        let response = conn.read_response().map_err(io_err("GET /"))?;
        samples.push(start.elapsed());
        if response.status != 200 || response.body != b"Hello, World!" {
            return Err(format!("GET / answered {response:?}"));
        }
    }
    let cpu = procfs::cpu_time(pid).map_err(io_err("CPU time"))?.saturating_sub(cpu_before);
    samples.sort_unstable();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    Ok(Latency {
        p50_us: us(percentile(&samples, 50.0)),
        p99_us: us(percentile(&samples, 99.0)),
        max_us: samples.last().map_or(0.0, |d| us(*d)),
        cpu_us_per_request: us(cpu) / requests.max(1) as f64,
    })
}

/// The nearest-rank percentile of sorted `samples` (zero for none).
fn percentile(samples: &[Duration], p: f64) -> Duration {
    if samples.is_empty() {
        return Duration::ZERO;
    }
    let rank = (p / 100.0 * samples.len() as f64).ceil() as usize;
    samples[rank.clamp(1, samples.len()) - 1]
}

/// What one hold-and-release cycle saw.
#[derive(Debug)]
struct Cycle {
    open_seconds: f64,
    with_long_polls: Snapshot,
    held: Snapshot,
    loaded: Option<Latency>,
    after: Snapshot,
    websockets_upgraded: usize,
    websockets_echoed: usize,
    woken: usize,
    long_polls_answered: usize,
    websockets_closed: usize,
}

/// The driver's side of a run: the server process and the driver's own connection, through which ordinary
/// requests, stats and the release all go.
struct Driver {
    pid: u32,
    port: u16,
    probe: Conn,
    failures: Failures,
}

impl Driver {
    /// Opens `long_polls` long polls and `websockets` websockets, has every websocket echo once, optionally
    /// times ordinary requests, then releases everything and waits for the server to come back to `baseline`.
    fn cycle(
        &mut self,
        long_polls: usize,
        websockets: usize,
        baseline: &Snapshot,
        requests: Option<usize>,
    ) -> Result<Cycle, String> {
        let (pid, port) = (self.pid, self.port);

        // Long polls: a POST each, its response not read yet.
        let started = Instant::now();
        let wait_request = request_bytes("POST", "/wait", b"");
        let mut polls = Vec::with_capacity(long_polls);
        while polls.len() < long_polls {
            for _ in 0..BATCH.min(long_polls - polls.len()) {
                let mut conn = Conn::connect(port).map_err(io_err("connecting a long poll"))?;
                conn.send(&wait_request).map_err(io_err("POST /wait"))?;
                polls.push(conn);
            }
            let n = polls.len();
            wait_for(&mut self.probe, "the long polls to wait", |s| s.long_polls >= n)?;
        }
        let with_long_polls = snapshot(pid, &mut self.probe)?;

        // Websockets: a batch of handshakes in flight, then their answers.
        let mut sockets = Vec::with_capacity(websockets);
        let mut websockets_upgraded = 0;
        while sockets.len() < websockets {
            let first = sockets.len();
            for _ in 0..BATCH.min(websockets - first) {
                sockets.push(WsClient::start(port, "/ws").map_err(io_err("connecting a websocket"))?);
            }
            for ws in &mut sockets[first..] {
                match ws.finish_handshake() {
                    Ok(()) => websockets_upgraded += 1,
                    Err(e) => self.failures.detail(format!("websocket handshake: {e}")),
                }
            }
            let n = websockets_upgraded;
            wait_for(&mut self.probe, "the websockets to open", |s| s.websockets >= n)?;
        }
        let open_seconds = started.elapsed().as_secs_f64();

        // Every websocket echoes once: all messages out, then all echoes in.
        let mut websockets_echoed = 0;
        for (i, ws) in sockets.iter_mut().enumerate() {
            if let Err(e) = ws.send(OP_TEXT, format!("echo {i}").as_bytes()) {
                self.failures.detail(format!("websocket {i} send: {e}"));
            }
        }
        for (i, ws) in sockets.iter_mut().enumerate() {
            match ws.read_frame() {
                Ok(f) if f.opcode == OP_TEXT && f.payload == format!("echo {i}").as_bytes() => websockets_echoed += 1,
                Ok(f) => self.failures.detail(format!("websocket {i} echoed {f:?}")),
                Err(e) => self.failures.detail(format!("websocket {i} echo: {e}")),
            }
        }

        let held = snapshot(pid, &mut self.probe)?;
        self.failures.check(held.server.connections == baseline.server.connections + long_polls + websockets, || {
            format!(
                "the server held {} connections, expected {}",
                held.server.connections,
                baseline.server.connections + long_polls + websockets
            )
        });
        let loaded = requests.map(|n| measure(pid, &mut self.probe, n)).transpose()?;

        // The release: every long poll gets its answer; then the websockets are closed by the book.
        let released = self.probe.request("POST", "/release", b"").map_err(io_err("POST /release"))?;
        let woken = serde_json::from_slice::<serde_json::Value>(&released.body)
            .ok()
            .and_then(|v| v["woken"].as_u64())
            .ok_or_else(|| format!("POST /release answered {released:?}"))? as usize;
        let mut long_polls_answered = 0;
        for conn in &mut polls {
            match conn.read_response() {
                Ok(r) if r.status == 200 && r.body == b"released" => long_polls_answered += 1,
                Ok(r) => self.failures.detail(format!("long poll answered {r:?}")),
                Err(e) => self.failures.detail(format!("long poll: {e}")),
            }
        }
        drop(polls);
        for (i, ws) in sockets.iter_mut().enumerate() {
            if let Err(e) = ws.send_close(1000) {
                self.failures.detail(format!("websocket {i} close: {e}"));
            }
        }
        let mut websockets_closed = 0;
        for ws in &mut sockets {
            match ws.read_frame().and_then(|f| ws.expect_eof().map(|()| f)) {
                Ok(f) if f.opcode == OP_CLOSE && f.payload.starts_with(&1000u16.to_be_bytes()) => {
                    websockets_closed += 1
                }
                Ok(f) => self.failures.detail(format!("websocket close answered {f:?}")),
                Err(e) => self.failures.detail(format!("websocket close: {e}")),
            }
        }
        drop(sockets);

        // Leak check: the server must come back to exactly where it started.
        let until = Instant::now() + SETTLE_TIMEOUT;
        let after = loop {
            let now = snapshot(pid, &mut self.probe)?;
            if (now.fds == baseline.fds && now.server == baseline.server) || Instant::now() > until {
                break now;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        self.failures.check(after.fds == baseline.fds, || {
            format!("fds: {} before, {} after a release", baseline.fds, after.fds)
        });
        self.failures.check(after.server == baseline.server, || {
            format!("server state {:?} before, {:?} after a release", baseline.server, after.server)
        });

        Ok(Cycle {
            open_seconds,
            with_long_polls,
            held,
            loaded,
            after,
            websockets_upgraded,
            websockets_echoed,
            woken,
            long_polls_answered,
            websockets_closed,
        })
    }
}

/// Whether resident memory after the last release stayed within [`MAX_RSS_GROWTH`] of its level after the
/// first, given what the connections took (`held_kib`).
fn rss_reused(after_releases: &[u64], held_kib: u64) -> bool {
    match (after_releases.first(), after_releases.last()) {
        (Some(&first), Some(&last)) => {
            last.saturating_sub(first) as f64 <= (held_kib as f64 * MAX_RSS_GROWTH).max(RSS_SLACK_KIB as f64)
        }
        _ => true,
    }
}

/// Runs `config` against a fresh server process.
///
/// # Errors
///
/// When the run cannot go on: the server does not start, a connection cannot be made, the server stops
/// answering. Failed checks are not errors: they are listed in [`Outcome::failures`].
pub fn run(config: &Config) -> Result<Outcome, String> {
    let server = ServerProcess::start(&config.backend)?;
    let mut failures = Failures::default();
    failures.check(server.backend == config.backend, || {
        format!("asked for the {} backend, the server runs {}", config.backend, server.backend)
    });
    let long_polls = config.conns.div_ceil(2);
    let websockets = config.conns / 2;
    let probe = Conn::connect(server.port).map_err(io_err("connecting"))?;
    let mut d = Driver { pid: server.pid, port: server.port, probe, failures };

    for _ in 0..WARM_UP {
        d.probe.request("GET", "/", b"").map_err(io_err("warm-up"))?;
    }
    let idle = measure(d.pid, &mut d.probe, config.requests)?;
    let baseline = snapshot(d.pid, &mut d.probe)?;

    let mut cycles = Vec::with_capacity(config.cycles);
    for i in 0..config.cycles.max(1) {
        cycles.push(d.cycle(long_polls, websockets, &baseline, (i == 0).then_some(config.requests))?);
    }
    let first = &cycles[0];
    let last = cycles.last().expect("at least one cycle");
    let fewest = |count: fn(&Cycle) -> usize| cycles.iter().map(count).min().unwrap_or(0);
    let (websockets_upgraded, websockets_echoed, websockets_closed) =
        (fewest(|c| c.websockets_upgraded), fewest(|c| c.websockets_echoed), fewest(|c| c.websockets_closed));
    let (woken, long_polls_answered) = (fewest(|c| c.woken), fewest(|c| c.long_polls_answered));
    let rss_after_release_kib: Vec<u64> = cycles.iter().map(|c| c.after.rss_kib).collect();

    let per = |kib: u64, base: u64, n: usize| if n == 0 { 0.0 } else { kib.saturating_sub(base) as f64 / n as f64 };
    let memory = Memory {
        kib_per_conn: per(first.held.rss_kib, baseline.rss_kib, config.conns),
        kib_per_long_poll: per(first.with_long_polls.rss_kib, baseline.rss_kib, long_polls),
        kib_per_websocket: per(first.held.rss_kib, first.with_long_polls.rss_kib, websockets),
    };

    let mut failures = d.failures;
    failures
        .check(websockets_upgraded == websockets, || format!("{websockets_upgraded}/{websockets} websockets upgraded"));
    failures.check(websockets_echoed == websockets, || format!("{websockets_echoed}/{websockets} websockets echoed"));
    failures.check(woken == long_polls, || format!("a release woke {woken} of {long_polls} long polls"));
    failures
        .check(long_polls_answered == long_polls, || format!("{long_polls_answered}/{long_polls} long polls answered"));
    failures.check(websockets_closed == websockets, || {
        format!("{websockets_closed}/{websockets} websockets closed cleanly")
    });
    let held_kib = first.held.rss_kib.saturating_sub(baseline.rss_kib);
    failures.check(rss_reused(&rss_after_release_kib, held_kib), || {
        format!("resident memory grew from cycle to cycle: {rss_after_release_kib:?} KiB after each release")
    });

    Ok(Outcome {
        backend: server.backend.clone(),
        conns: config.conns,
        long_polls,
        websockets,
        requests: config.requests,
        cycles: cycles.len(),
        open_seconds: first.open_seconds,
        baseline,
        with_long_polls: first.with_long_polls,
        held: first.held,
        after: last.after,
        rss_after_release_kib,
        memory,
        idle,
        loaded: first.loaded.unwrap_or_default(),
        websockets_upgraded,
        websockets_echoed,
        woken,
        long_polls_answered,
        websockets_closed,
        failures: failures.into_list(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_keep_every_check_and_the_first_details() {
        let mut f = Failures::default();
        f.check(true, || unreachable!("a passed check formats nothing"));
        f.check(false, || "fds: 9 before, 10 after the release".into());
        for i in 0..MAX_DETAILS + 3 {
            f.detail(format!("long poll {i}"));
        }
        let list = f.into_list();
        assert_eq!(list.len(), 1 + MAX_DETAILS + 1, "{list:?}");
        assert_eq!(list[0], "fds: 9 before, 10 after the release");
        assert_eq!(list[MAX_DETAILS], format!("long poll {}", MAX_DETAILS - 1));
        assert_eq!(list.last().unwrap(), "… and 3 more connections failed");
        assert!(Failures::default().into_list().is_empty());
    }

    #[test]
    fn memory_must_be_reused_from_cycle_to_cycle() {
        assert!(rss_reused(&[56_000, 56_100], 52_000), "100 KiB of noise");
        assert!(rss_reused(&[56_000, 60_000], 52_000), "within a tenth of what the connections took");
        assert!(!rss_reused(&[56_000, 66_000], 52_000), "a fifth of every connection's memory leaked");
        assert!(rss_reused(&[4_700, 4_900], 600), "below the slack");
        assert!(rss_reused(&[4_700], 600) && rss_reused(&[], 0), "one cycle proves nothing either way");
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let samples: Vec<Duration> = (1..=100).map(Duration::from_micros).collect();
        assert_eq!(percentile(&samples, 50.0), Duration::from_micros(50));
        assert_eq!(percentile(&samples, 99.0), Duration::from_micros(99));
        assert_eq!(percentile(&samples, 100.0), Duration::from_micros(100));
        assert_eq!(percentile(&samples[..1], 99.0), Duration::from_micros(1));
        assert_eq!(percentile(&[], 50.0), Duration::ZERO);
    }
}
