//! `cargo xtask bench`: gale against its peers, same load, one run, one report.
//!
//! The peer servers and the harness live in `../shared/peers` beside the workspace (its own Cargo workspace).
//! This task copies that folder into `target/peers-src`, builds the peers there and the gale examples here,
//! then for every server:
//!
//! 1. runs the peers' `bench.sh` (plaintext, pipelined, JSON, 1,024 connections, idle memory per connection);
//! 2. sweeps the number of open connections with wrk itself (server on core 0, wrk on core 1, as `bench.sh`);
//! 3. counts user-space instructions per request with the peers' `instr_per_req.py` (callgrind).
//!
//! Raw output goes to `target/bench/<UTC stamp>/`; the report (Markdown plus SVG charts) to `benches/report/`
//! as `YYYY-MM-DD-<cores>core.md`. `--quick` is a smoke run for CI: seconds of load, gale and the floor only,
//! report under `target/bench/quick-report/`.

use crate::chart::{self, Series};
use crate::harness::{self, ServerProcess, ServerSpec};
use crate::parse::{self, KvLine, WrkReport};
use crate::report::{Report, Scenario, ScenarioFigures, ServerFigures, SweepPoint};
use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const HELP: &str = "\
cargo xtask bench [OPTIONS]

Builds the gale examples and the peer servers in ../shared/peers, runs the same load against each
(bench.sh scenarios, a connection sweep, callgrind instruction counts) and writes a Markdown report
with SVG charts to benches/report/YYYY-MM-DD-<cores>core.md.

Options:
  --quick             smoke run for CI: 1 s per scenario, no warm-up, gale and floor only, 200 idle
                      connections, sweep 64,256, no callgrind, report under target/bench/quick-report/
  --servers A,B,...   servers to measure (gale_http1 gale_web hyper actix may_minihttp tornado floor)
  --duration S        seconds measured per wrk run (default 10; --quick 1)
  --warmup S          seconds of discarded warm-up before each wrk run (default 2; --quick 0)
  --sweep N,N,...     connection counts of the sweep (default 64,256,1024,4096,10000)
  --idle-conns N      idle keep-alive connections for the memory figure (default 10000)
  --callgrind         count instructions per request (default on; --quick off)
  --no-callgrind      do not
  --quiet-wait S      wait up to S s before each run for the machine to be idle (default 60; --quick 0)
  --rounds N          run the bench.sh scenarios N times, every server once per round in turn, and report
                      the median of each figure (default 1): this machine has slow and fast phases
  --port P            port the servers listen on (default 18080)
  --out DIR           where the report goes (default benches/report)
  --peers DIR         the peers folder (default ../shared/peers beside the workspace)
  --no-build          use the binaries already built
";

/// Every server the task knows, in report order: name and description.
const SERVERS: [(&str, &str); 7] = [
    ("gale_http1", "gale's HTTP/1.1 server, no web layer (`examples/hello_http.rs`)"),
    ("gale_web", "gale's web layer: Application, routing, RequestHandler (`examples/hello.rs`)"),
    ("hyper", "hyper 1.x + tokio, current_thread runtime"),
    ("actix", "actix-web 4.x"),
    ("may_minihttp", "may_minihttp on may coroutines"),
    ("tornado", "Tornado 6.6 on asyncio (CPython, no uvloop)"),
    ("floor", "not HTTP: raw epoll loop, canned response (the kernel's cost)"),
];

/// The server every ratio in the report is relative to.
const BASELINE: &str = "gale_http1";

/// Rust peers: report name and binary in the peers workspace.
const RUST_PEERS: [(&str, &str); 4] =
    [("hyper", "hyper_hello"), ("actix", "actix_hello"), ("may_minihttp", "may_hello"), ("floor", "floor_epoll")];

/// Folders of the peers tree that are build or run products, never copied.
const NOT_COPIED: [&str; 5] = ["target", ".venv", "local", "__pycache__", ".git"];

/// wrk's per-request timeout in the sweep: long enough that slow answers at 10,000 connections are counted in
/// the latency figures rather than as timeouts (wrk's default is 2 s).
const SWEEP_WRK_TIMEOUT: &str = "10s";

/// The sweep's figures in the run folder, one `NAME conns=N key=value …` line per point.
const SWEEP_FILE: &str = "sweep.txt";
/// `instr_per_req.py`'s result lines in the run folder.
const INSTR_FILE: &str = "instr.txt";

/// Below this share of all CPUs busy the machine counts as quiet (`bench.sh`'s `QUIET_PCT`).
const QUIET_PCT: u64 = 10;

/// Parsed command line of `cargo xtask bench`.
#[derive(Clone, Debug, PartialEq)]
struct Options {
    quick: bool,
    servers: Option<Vec<String>>,
    duration_s: u32,
    warmup_s: u32,
    sweep: Vec<u32>,
    idle_conns: u32,
    callgrind: bool,
    quiet_wait_s: u32,
    rounds: u32,
    port: u16,
    out: Option<PathBuf>,
    peers: Option<PathBuf>,
    build: bool,
    help: bool,
}

impl Options {
    /// Parses the arguments after `bench`. `--quick` sets its defaults first, whatever its position; the other
    /// options then override them.
    fn parse(args: &[String]) -> Result<Options, String> {
        let quick = args.iter().any(|a| a == "--quick");
        let mut o = Options {
            quick,
            servers: None,
            duration_s: if quick { 1 } else { 10 },
            warmup_s: if quick { 0 } else { 2 },
            sweep: if quick { vec![64, 256] } else { vec![64, 256, 1024, 4096, 10_000] },
            idle_conns: if quick { 200 } else { 10_000 },
            callgrind: !quick,
            quiet_wait_s: if quick { 0 } else { 60 },
            rounds: 1,
            port: 18080,
            out: None,
            peers: None,
            build: true,
            help: false,
        };
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            let (flag, inline) = match arg.split_once('=') {
                Some((f, v)) if f.starts_with("--") => (f, Some(v.to_owned())),
                _ => (arg.as_str(), None),
            };
            let mut value = || inline.clone().or_else(|| args.next().cloned()).ok_or(format!("{flag} needs a value"));
            match flag {
                "--quick" => {}
                "--servers" => {
                    let list: Vec<String> = value()?.split(',').map(str::trim).map(String::from).collect();
                    if let Some(bad) = list.iter().find(|n| !SERVERS.iter().any(|(k, _)| k == n)) {
                        let known: Vec<&str> = SERVERS.iter().map(|(k, _)| *k).collect();
                        return Err(format!("unknown server {bad:?}; known: {}", known.join(" ")));
                    }
                    o.servers = Some(list);
                }
                "--duration" => o.duration_s = number(flag, &value()?)?,
                "--warmup" => o.warmup_s = number(flag, &value()?)?,
                "--sweep" => {
                    o.sweep = value()?.split(',').map(|n| number(flag, n.trim())).collect::<Result<_, _>>()?;
                    o.sweep.sort_unstable();
                    o.sweep.dedup();
                }
                "--idle-conns" => o.idle_conns = number(flag, &value()?)?,
                "--callgrind" => o.callgrind = true,
                "--no-callgrind" => o.callgrind = false,
                "--quiet-wait" => o.quiet_wait_s = number(flag, &value()?)?,
                "--rounds" => o.rounds = number(flag, &value()?)?,
                "--port" => o.port = number(flag, &value()?)?,
                "--out" => o.out = Some(value()?.into()),
                "--peers" => o.peers = Some(value()?.into()),
                "--no-build" => o.build = false,
                "-h" | "--help" => o.help = true,
                _ => return Err(format!("unknown option {arg:?}\n\n{HELP}")),
            }
        }
        if o.duration_s == 0 {
            return Err("--duration must be at least 1 s".into());
        }
        if o.rounds == 0 {
            return Err("--rounds must be at least 1".into());
        }
        if o.sweep.contains(&0) || o.idle_conns == 0 || o.port == 0 {
            return Err("connection counts and the port must be positive".into());
        }
        Ok(o)
    }

    /// The servers to measure, in report order, each with whether it must exist. Named servers must; by default
    /// the web-layer example is measured only when the workspace has it. `--quick` defaults to gale and the floor.
    fn selection(&self) -> Vec<(&'static str, bool)> {
        SERVERS
            .iter()
            .map(|&(name, _)| name)
            .filter_map(|name| match &self.servers {
                Some(list) => list.iter().any(|n| n == name).then_some((name, true)),
                None if self.quick && !name.starts_with("gale") && name != "floor" => None,
                None => Some((name, name != "gale_web")),
            })
            .collect()
    }
}

fn number<T: std::str::FromStr>(flag: &str, text: &str) -> Result<T, String> {
    text.parse().map_err(|_| format!("{flag}: {text:?} is not a valid number"))
}

/// Where things are.
struct Layout {
    root: PathBuf,
    /// gale's cargo target directory.
    target: PathBuf,
    /// The copy of the peers folder the harness runs from.
    peers: PathBuf,
    /// Raw output of this run.
    run_dir: PathBuf,
}

impl Layout {
    /// `path` for display and for the report: relative to the workspace root when inside it.
    fn show(&self, path: &Path) -> String {
        path.strip_prefix(&self.root).unwrap_or(path).display().to_string()
    }

    /// `path` as seen from the peers folder (where `bench.sh` and `instr_per_req.py` run).
    fn in_peers(&self, path: &Path) -> String {
        let rel = relative(path, &self.peers);
        if rel.components().count() == 1 { format!("./{}", rel.display()) } else { rel.display().to_string() }
    }
}

/// Runs `cargo xtask bench ARGS…`.
pub fn run(args: &[String]) -> Result<(), String> {
    let opts = Options::parse(args)?;
    if opts.help {
        print!("{HELP}");
        return Ok(());
    }
    let started = SystemTime::now();
    let root = crate::workspace_root();
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), |t| root.join(t));
    let peers_src = opts.peers.clone().unwrap_or_else(|| root.join("../shared/peers"));
    let peers_src = peers_src
        .canonicalize()
        .map_err(|e| format!("peers folder {} not found ({e}); pass --peers DIR", peers_src.display()))?;
    let layout = Layout {
        peers: target.join("peers-src"),
        run_dir: target.join("bench").join(utc_stamp(started)),
        root,
        target,
    };

    let copied = sync_tree(&peers_src, &layout.peers)
        .map_err(|e| format!("cannot copy {} to {}: {e}", peers_src.display(), layout.peers.display()))?;
    eprintln!("peers: {copied} file(s) updated in {}", layout.show(&layout.peers));

    let wanted = opts.selection();
    let wants = |name: &str| wanted.iter().any(|(w, _)| *w == name);
    if opts.build {
        crate::cargo(&["build", "--release", "-p", "gale-examples", "--examples"])?;
        let bins: Vec<&str> = RUST_PEERS.iter().filter(|(n, _)| wants(n)).map(|(_, b)| *b).collect();
        if !bins.is_empty() {
            let peers_target = layout.peers.join("target");
            let mut args = vec!["build", "--release", "--target-dir", peers_target.to_str().ok_or("non-UTF-8 path")?];
            for bin in &bins {
                args.extend(["--bin", bin]);
            }
            crate::cargo_in(&layout.peers, &args)?;
        }
    }
    let python = if wants("tornado") { Some(tornado_venv(&layout.peers)?) } else { None };

    let mut specs = Vec::new();
    for &(name, required) in &wanted {
        match server_spec(name, &layout, opts.port, python.as_deref()) {
            Some(spec) if spec.program.is_file() => specs.push(spec),
            Some(spec) if required => {
                return Err(format!(
                    "{name}: {} is missing (build it, or leave out --no-build)",
                    spec.program.display()
                ));
            }
            _ => eprintln!("{name}: not built here; skipped"),
        }
    }
    if specs.is_empty() {
        return Err("no server to measure".into());
    }

    ensure_wrk()?;
    for tool in ["taskset", "python3"] {
        if !harness::on_path(tool) {
            return Err(format!("{tool} is required and not on PATH"));
        }
    }
    let callgrind = opts.callgrind && harness::on_path("valgrind") && harness::on_path("callgrind_control");
    if opts.callgrind && !callgrind {
        eprintln!("warning: valgrind/callgrind_control not found: no instruction counts");
    }
    let nofile = harness::raise_open_files_limit();
    let most = opts.sweep.iter().copied().max().unwrap_or(0).max(opts.idle_conns);
    if nofile.is_some_and(|n| n < u64::from(most) + 1024) {
        eprintln!("warning: open-files limit {nofile:?} is low for {most} connections");
    }
    fs::create_dir_all(layout.run_dir.join("logs")).map_err(|e| format!("cannot create the run folder: {e}"))?;
    let loadavg = fs::read_to_string("/proc/loadavg").unwrap_or_default();
    eprintln!("load average before the run: {}", loadavg.split_whitespace().take(3).collect::<Vec<_>>().join(" "));
    eprintln!("raw output: {}", layout.show(&layout.run_dir));

    let mut commands = vec![format!("cargo xtask bench {}", shell_join(args))];
    // The bench.sh scenarios in interleaved rounds (every server once per round), so that a slow or fast phase
    // of the machine falls on all servers alike; each figure is then the median over the rounds.
    let mut rounds: Vec<Vec<ServerFigures>> = vec![Vec::new(); specs.len()];
    for round in 1..=opts.rounds {
        for (spec, runs) in specs.iter().zip(&mut rounds) {
            eprintln!("\n=== {} (round {round} of {}) ===", spec.name, opts.rounds);
            let mut f = ServerFigures::default();
            let command = run_bench_sh(spec, &opts, &layout, &mut f);
            if round == 1 {
                commands.push(command);
            }
            runs.push(f);
        }
    }
    let mut figures = Vec::new();
    for (spec, runs) in specs.iter().zip(rounds) {
        let mut f = median_of_rounds(runs);
        f.name = spec.name.to_owned();
        f.about = spec.about.to_owned();
        f.command = shell_join(&server_argv(spec, &layout));
        if !opts.sweep.is_empty() {
            commands.push(run_sweep(spec, &opts, &layout, &mut f));
        }
        if callgrind {
            commands.push(run_callgrind(spec, &opts, &layout, &mut f));
        }
        figures.push(f);
    }

    let report =
        build_report(&opts, &layout, &loadavg, nofile, python.as_deref(), commands, figures, started, callgrind);
    write_report(report, &opts, &layout, started)
}

/// One server's `bench.sh` figures over several rounds: each figure is the median of the rounds that measured it
/// (the upper middle one for an even count); errors are summed; every round's problems are kept.
fn median_of_rounds(runs: Vec<ServerFigures>) -> ServerFigures {
    fn median(values: impl Iterator<Item = Option<f64>>) -> Option<f64> {
        let mut v: Vec<f64> = values.flatten().collect();
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied()
    }
    let mut out = ServerFigures::default();
    for scenario in Scenario::ALL {
        let per: Vec<&ScenarioFigures> = runs.iter().filter_map(|r| r.scenarios.get(&scenario)).collect();
        if per.is_empty() {
            continue;
        }
        let pick = |get: fn(&ScenarioFigures) -> Option<f64>| median(per.iter().map(|f| get(f)));
        out.scenarios.insert(
            scenario,
            ScenarioFigures {
                rps: pick(|f| f.rps),
                p50_ms: pick(|f| f.p50_ms),
                p99_ms: pick(|f| f.p99_ms),
                cpu_us_per_req: pick(|f| f.cpu_us_per_req),
                server_cpu_pct: pick(|f| f.server_cpu_pct),
                wrk_cpu_pct: pick(|f| f.wrk_cpu_pct),
                other_pct: pick(|f| f.other_pct),
                errors: per.iter().map(|f| f.errors).sum(),
            },
        );
    }
    out.idle_kib_per_conn = median(runs.iter().map(|r| r.idle_kib_per_conn));
    let rounds = runs.len();
    for (i, run) in runs.into_iter().enumerate() {
        out.problems
            .extend(run.problems.into_iter().map(|p| if rounds > 1 { format!("round {}: {p}", i + 1) } else { p }));
    }
    out
}

/// The command for server `name`, or `None` for an unknown name.
fn server_spec(name: &str, layout: &Layout, port: u16, python: Option<&Path>) -> Option<ServerSpec> {
    let port_s = port.to_string();
    let examples = layout.target.join("release").join("examples");
    let peer_bin = |bin: &str| layout.peers.join("target").join("release").join(bin);
    let (program, args): (PathBuf, Vec<String>) = match name {
        "gale_http1" => (examples.join("hello_http"), vec!["--port".into(), port_s, "--workers".into(), "1".into()]),
        "gale_web" => (examples.join("hello"), vec!["--port".into(), port_s, "--workers".into(), "1".into()]),
        "floor" => (peer_bin("floor_epoll"), vec![port_s]),
        "tornado" => (python?.to_path_buf(), vec!["tornado_hello.py".into(), port_s]),
        _ => {
            let (_, bin) = RUST_PEERS.iter().find(|(n, _)| *n == name)?;
            (peer_bin(bin), vec![port_s, "1".into()])
        }
    };
    let &(name, about) = SERVERS.iter().find(|(n, _)| *n == name)?;
    Some(ServerSpec { name, about, program, args })
}

/// The server's command line as run from the peers folder.
fn server_argv(spec: &ServerSpec, layout: &Layout) -> Vec<String> {
    std::iter::once(layout.in_peers(&spec.program)).chain(spec.args.iter().cloned()).collect()
}

/// `bench.sh NAME PORT -- CMD…` with the run's settings; fills the scenario and idle figures. Returns the command
/// line, for the report.
fn run_bench_sh(spec: &ServerSpec, opts: &Options, layout: &Layout, f: &mut ServerFigures) -> String {
    let results = layout.run_dir.join("bench-results.txt");
    let details = layout.run_dir.join("bench-details.txt");
    let mut env: Vec<(&str, String)> = vec![
        ("RESULTS", layout.in_peers(&results)),
        ("DETAILS", layout.in_peers(&details)),
        ("LOG_DIR", layout.in_peers(&layout.run_dir.join("logs"))),
        ("DURATION", opts.duration_s.to_string()),
        ("WARMUP", opts.warmup_s.to_string()),
        ("SCENARIOS", "plaintext pipelined json c1024 idle".into()),
        ("IDLE_CONNS", opts.idle_conns.to_string()),
        ("QUIET_WAIT_S", opts.quiet_wait_s.to_string()),
        ("SERVER_CPUS", "0".into()),
        ("WRK_CPUS", "1".into()),
        ("WRK_THREADS", "1".into()),
    ];
    if opts.quick {
        env.push(("SETTLE", "0.5".into())); // idle_conns.py's pause before each memory reading
    }
    let mut argv: Vec<String> = vec!["./bench.sh".into(), spec.name.into(), opts.port.to_string(), "--".into()];
    argv.extend(server_argv(spec, layout));

    let mut command = Command::new(&argv[0]);
    command.args(&argv[1..]).current_dir(&layout.peers).envs(env.iter().map(|(k, v)| (k, v)));
    match command.status() {
        Ok(status) if status.success() => {}
        Ok(status) => {
            f.problems.push(format!("bench.sh exited with {status}; logs in {}", layout.show(&layout.run_dir)))
        }
        Err(e) => f.problems.push(format!("cannot run bench.sh: {e}")),
    }

    let summary = read_kv(&results).into_iter().rfind(|l| l.name == spec.name);
    let details = read_kv(&details);
    for scenario in Scenario::ALL {
        let Some(line) = details.iter().rfind(|l| l.name == spec.name && l.get("scenario") == Some(scenario.key()))
        else {
            continue;
        };
        let valid = line.get("lat_valid") == Some("1");
        let errors = line.number("socket_errors").unwrap_or(0.0) + line.number("non2xx").unwrap_or(0.0);
        if errors > 0.0 {
            f.problems.push(format!("{}: {errors} socket errors or non-2xx responses", scenario.key()));
        }
        f.scenarios.insert(
            scenario,
            ScenarioFigures {
                rps: line.number("rps"),
                p50_ms: line.number("p50_ms").filter(|_| valid),
                p99_ms: line.number("p99_ms").filter(|_| valid),
                cpu_us_per_req: summary.as_ref().and_then(|s| s.number(&format!("cpu_us_{}", scenario.key()))),
                server_cpu_pct: line.number("server_cpu_pct"),
                wrk_cpu_pct: line.number("wrk_cpu_pct"),
                other_pct: line.number("other_pct"),
                errors: Some(errors),
            },
        );
    }
    f.idle_kib_per_conn = summary.as_ref().and_then(|s| s.number("idle_kib_per_conn"));
    if f.idle_kib_per_conn.is_none() {
        let why = details
            .iter()
            .rfind(|l| l.name == spec.name && l.get("scenario") == Some("idle"))
            .map(|l| {
                ["opened", "failed", "closed_by_server", "probe_status"]
                    .iter()
                    .map(|k| format!("{k}={}", l.get(k).unwrap_or("?")))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_else(|| "no idle line".into());
        f.problems.push(format!("idle-memory test incomplete ({why})"));
    }

    let env_text: Vec<String> = env.iter().map(|(k, v)| format!("{k}={}", shell_quote(v))).collect();
    format!("(cd {} && {} {})", layout.show(&layout.peers), env_text.join(" "), shell_join(&argv))
}

/// The connection sweep: one server instance, wrk at each connection count. Returns the command lines.
fn run_sweep(spec: &ServerSpec, opts: &Options, layout: &Layout, f: &mut ServerFigures) -> String {
    let url = format!("http://127.0.0.1:{}/", opts.port);
    let warmup = if opts.warmup_s > 0 { format!("wrk -d{}s warm-up, then ", opts.warmup_s) } else { String::new() };
    let command = format!(
        "(cd {} && taskset -c 0 {} &)  # then for N in {}: {warmup}taskset -c 1 wrk -t1 -cN -d{}s --timeout \
         {SWEEP_WRK_TIMEOUT} --latency {url}",
        layout.show(&layout.peers),
        shell_join(&server_argv(spec, layout)),
        opts.sweep.iter().map(u32::to_string).collect::<Vec<_>>().join(" "),
        opts.duration_s
    );
    let log = layout.run_dir.join("logs").join(format!("{}-sweep-server.log", spec.name));
    let mut server = match ServerProcess::start(spec, &layout.peers, "0", opts.port, &log) {
        Ok(server) => server,
        Err(e) => {
            f.problems.push(format!("sweep: {e}"));
            return command;
        }
    };
    let hz = harness::clock_ticks_per_second() as f64;
    let wrk_args = |conns: u32, seconds: u32, latency: bool| -> Vec<OsString> {
        let mut a: Vec<OsString> =
            vec!["-t1".into(), format!("-c{conns}").into(), format!("-d{seconds}s").into(), "--timeout".into()];
        a.push(SWEEP_WRK_TIMEOUT.into());
        if latency {
            a.push("--latency".into());
        }
        a.push(url.clone().into());
        a
    };
    for &conns in &opts.sweep {
        harness::wait_quiet(Duration::from_secs(opts.quiet_wait_s.into()), QUIET_PCT);
        if opts.warmup_s > 0 {
            let _ = harness::pinned("1", "wrk", &wrk_args(conns, opts.warmup_s, false)).output();
        }
        let before = (server.cpu_ticks(), harness::waited_children_ticks(), harness::busy_ticks(), Instant::now());
        let output = harness::pinned("1", "wrk", &wrk_args(conns, opts.duration_s, true)).output();
        let after = (server.cpu_ticks(), harness::waited_children_ticks(), harness::busy_ticks(), Instant::now());
        let text = match output {
            Ok(out) => String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
            Err(e) => format!("cannot run wrk: {e}"),
        };
        let raw = layout.run_dir.join("logs").join(format!("{}-sweep-c{conns}.wrk.txt", spec.name));
        let _ = fs::write(&raw, &text);
        let wrk = WrkReport::parse(&text);
        let server_ticks = after.0.zip(before.0).map(|(a, b)| a.saturating_sub(b));
        let cpu_us_per_req = match (server_ticks, wrk.requests) {
            (Some(ticks), Some(n)) if n > 0 => Some(ticks as f64 / hz * 1e6 / n as f64),
            _ => None,
        };
        // Busy time that was neither the server's nor wrk's: other processes, as bench.sh's other_pct.
        let other_pct = match (server_ticks, after.1.zip(before.1), after.2.zip(before.2)) {
            (Some(server), Some((wrk_a, wrk_b)), Some((busy_a, busy_b))) => {
                let other = busy_a.saturating_sub(busy_b) as f64 - server as f64 - wrk_a.saturating_sub(wrk_b) as f64;
                Some(100.0 * other / hz / after.3.duration_since(before.3).as_secs_f64())
            }
            _ => None,
        };
        let point = SweepPoint {
            conns,
            rps: wrk.rps.filter(|r| *r > 0.0),
            p50_ms: wrk.p50_ms,
            p99_ms: wrk.p99_ms,
            errors: wrk.socket_errors + wrk.non_2xx,
            cpu_us_per_req,
            other_pct,
        };
        let line = format!(
            "{} conns={conns} rps={} p50_ms={} p99_ms={} errors={} cpu_us_per_req={} other_pct={}",
            spec.name,
            opt(point.rps),
            opt(point.p50_ms),
            opt(point.p99_ms),
            point.errors,
            opt(point.cpu_us_per_req),
            opt(point.other_pct)
        );
        eprintln!("[sweep] {line}");
        append_line(&layout.run_dir.join(SWEEP_FILE), &line);
        if point.rps.is_none() {
            f.problems.push(format!("sweep at {conns} connections: no result (see {})", layout.show(&raw)));
        }
        f.sweep.push(point);
        if !server.is_running() {
            f.problems.push(format!("server died during the sweep at {conns} connections"));
            break;
        }
    }
    server.stop();
    command
}

/// Instructions per request under callgrind (`instr_per_req.py`). Returns the command line.
fn run_callgrind(spec: &ServerSpec, opts: &Options, layout: &Layout, f: &mut ServerFigures) -> String {
    let mut argv: Vec<String> = vec!["instr_per_req.py".into(), spec.name.into(), opts.port.to_string(), "--".into()];
    argv.extend(server_argv(spec, layout));
    eprintln!("[callgrind {}] counting instructions (takes a while under valgrind)", spec.name);
    let output = Command::new("python3").args(&argv).current_dir(&layout.peers).output();
    match output {
        Ok(out) => {
            let stdout = String::from_utf8_lossy(&out.stdout);
            let text = format!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
            let _ = fs::write(layout.run_dir.join("logs").join(format!("{}-callgrind.txt", spec.name)), &text);
            eprintln!("[callgrind {}] {}", spec.name, stdout.trim());
            let result =
                stdout.lines().rev().find_map(|l| Some((l, KvLine::parse(l).filter(|kv| kv.name == spec.name)?)));
            if let Some((raw_line, kv)) = result {
                append_line(&layout.run_dir.join(INSTR_FILE), raw_line);
                f.instr_per_req_seq = kv.number("instr_per_req_seq").filter(|v| *v > 0.0);
                f.instr_per_req_pipe = kv.number("instr_per_req_pipe").filter(|v| *v > 0.0);
            }
            if !out.status.success() || f.instr_per_req_seq.is_none() {
                let last = text.lines().last().unwrap_or("").to_owned();
                f.problems.push(format!("instr_per_req.py exited with {} ({last})", out.status));
            }
        }
        Err(e) => f.problems.push(format!("cannot run instr_per_req.py: {e}")),
    }
    format!("(cd {} && python3 {})", layout.show(&layout.peers), shell_join(&argv))
}

#[allow(clippy::too_many_arguments)] // one call site; the pieces are all the run has
fn build_report(
    opts: &Options,
    layout: &Layout,
    loadavg: &str,
    nofile: Option<u64>,
    python: Option<&Path>,
    commands: Vec<String>,
    servers: Vec<ServerFigures>,
    started: SystemTime,
    callgrind: bool,
) -> Report {
    let cores = cores();
    let date = utc_date(started);
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown", |(_, m)| m.trim())
        .to_owned();
    let cpus_listed = cpuinfo.lines().filter(|l| l.starts_with("processor")).count();
    let mem_kib = meminfo_total_kib();
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim().to_owned();
    let lock = fs::read_to_string(layout.peers.join("Cargo.lock")).unwrap_or_default();
    let versions: Vec<String> = ["hyper", "tokio", "actix-web", "may_minihttp", "may"]
        .iter()
        .filter_map(|n| parse::cargo_lock_version(&lock, n).map(|v| format!("{n} {v}")))
        .chain(fs::read_to_string(layout.peers.join("requirements.txt")).ok().map(|r| r.trim().replace("==", " ")))
        .collect();
    let git = harness::first_line_of("git", &["-C", &layout.root.to_string_lossy(), "rev-parse", "--short", "HEAD"]);
    let dirty = Command::new("git")
        .args(["-C", &layout.root.to_string_lossy(), "status", "--porcelain"])
        .output()
        .is_ok_and(|o| !o.stdout.is_empty());

    let mut machine = vec![
        ("date (UTC)".to_owned(), date.clone()),
        ("CPU".into(), format!("{model}, {cpus_listed} logical CPUs (`nproc`: {cores})")),
        ("kernel".into(), kernel),
        ("memory".into(), mem_kib.map_or("unknown".into(), |k| format!("{:.1} GiB", k as f64 / 1_048_576.0))),
        ("rustc".into(), harness::first_line_of("rustc", &["-V"]).unwrap_or_default()),
        (
            "wrk".into(),
            harness::first_line_of("wrk", &["-v"])
                .map(|v| v.split(" Copyright").next().unwrap_or_default().to_owned())
                .unwrap_or_default(),
        ),
        ("peers".into(), versions.join(", ")),
        (
            "gale".into(),
            git.map_or("unknown".into(), |c| {
                format!("commit {c}{}", if dirty { " with uncommitted changes" } else { "" })
            }),
        ),
        ("load average at start".into(), loadavg.split_whitespace().take(3).collect::<Vec<_>>().join(" ")),
        ("open-files limit".into(), nofile.map_or("unlimited".into(), |n| n.to_string())),
    ];
    if let Some(python) = python {
        machine.push((
            "Python (Tornado)".into(),
            harness::first_line_of(&python.to_string_lossy(), &["-V"]).unwrap_or_default(),
        ));
    }
    if callgrind {
        machine.push(("valgrind".into(), harness::first_line_of("valgrind", &["--version"]).unwrap_or_default()));
    }

    let sweep = opts.sweep.iter().map(u32::to_string).collect::<Vec<_>>().join(", ");
    let summary = format!(
        "{} server(s), {}{}: the peers' `bench.sh` ({} s warm-up + {} s measured per scenario, {} idle \
         connections), a connection sweep over {{{sweep}}} with wrk{}. {} CPU time per request and instruction \
         counts are the steadier figures. Raw lines are at the end.",
        servers.len(),
        if opts.rounds > 1 { format!("{} interleaved rounds", opts.rounds) } else { "one run each".to_owned() },
        if opts.quick { " (`--quick`: a smoke run, figures not meaningful)" } else { "" },
        opts.warmup_s,
        opts.duration_s,
        fmt_int(opts.idle_conns),
        if callgrind { ", and callgrind instruction counts (`instr_per_req.py`)" } else { "" },
        if opts.rounds > 1 {
            "Each `bench.sh` figure is the median over the rounds (every server ran once per round, in turn); the \
             sweep and the instruction counts ran once."
        } else {
            "Single runs, no medians: on this machine req/s varies by up to ±20 % between runs (pass `--rounds 3`)."
        },
    );

    let stem = report_stem(started, cores);
    let mut charts = Vec::new();
    if servers.iter().any(|s| s.sweep.iter().any(|p| p.rps.is_some())) {
        charts.push((format!("{stem}-rps.svg"), "requests/s against open connections".to_owned()));
        charts.push((format!("{stem}-p99.svg"), "p99 latency against open connections".to_owned()));
    }
    let mut raw: Vec<(String, String)> = [
        ("bench-results.txt", "bench.sh"),
        ("bench-details.txt", "bench.sh"),
        (SWEEP_FILE, "the connection sweep"),
        (INSTR_FILE, "instr_per_req.py"),
    ]
    .iter()
    .filter_map(|(file, from)| {
        let text = fs::read_to_string(layout.run_dir.join(file)).ok()?;
        Some((format!("{file} (from {from})"), text))
    })
    .collect();
    // The peers' own summary of the same lines, as a cross-check of the tables above.
    let summary_table = Command::new("python3")
        .arg("summarize.py")
        .arg(layout.run_dir.join("bench-results.txt"))
        .arg(layout.run_dir.join("bench-details.txt"))
        .current_dir(&layout.peers)
        .output();
    if let Some(out) = summary_table.ok().filter(|o| o.status.success()) {
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let _ = fs::write(layout.run_dir.join("summary.md"), &text);
        raw.push(("summarize.py output".into(), text));
    }
    Report {
        title: format!("gale vs peers, HTTP/1.1 — {date}, {cores} cores"),
        summary,
        machine,
        commands,
        servers,
        baseline: BASELINE.into(),
        charts,
        raw,
    }
}

fn meminfo_total_kib() -> Option<u64> {
    let meminfo = fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Writes the Markdown and the charts.
fn write_report(mut report: Report, opts: &Options, layout: &Layout, started: SystemTime) -> Result<(), String> {
    let out = opts.out.clone().unwrap_or_else(|| {
        if opts.quick { layout.run_dir.with_file_name("quick-report") } else { layout.root.join("benches/report") }
    });
    fs::create_dir_all(&out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let ticks: Vec<f64> = opts.sweep.iter().map(|&c| f64::from(c)).collect();
    let series = |servers: &[ServerFigures], pick: fn(&SweepPoint) -> Option<f64>| -> Vec<Series> {
        servers
            .iter()
            .map(|s| Series {
                name: s.name.clone(),
                colour: SERVERS.iter().position(|(n, _)| *n == s.name).unwrap_or(SERVERS.len()),
                dashed: s.name == "floor",
                points: s.sweep.iter().filter_map(|p| Some((f64::from(p.conns), pick(p)?))).collect(),
            })
            .collect()
    };
    let mut kept = Vec::new();
    for (file, caption) in std::mem::take(&mut report.charts) {
        let (y_desc, pick): (&str, fn(&SweepPoint) -> Option<f64>) =
            if file.ends_with("-rps.svg") { ("requests/s", |p| p.rps) } else { ("p99 latency, ms", |p| p.p99_ms) };
        match chart::log_log_svg(&caption, "open connections", y_desc, &ticks, &series(&report.servers, pick)) {
            Ok(svg) => {
                fs::write(out.join(&file), svg).map_err(|e| format!("cannot write {file}: {e}"))?;
                kept.push((file, caption));
            }
            Err(e) => eprintln!("warning: {e}"),
        }
    }
    report.charts = kept;
    let path = out.join(format!("{}.md", report_stem(started, cores())));
    fs::write(&path, report.to_markdown()).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    eprintln!("\nreport: {}", layout.show(&path));
    Ok(())
}

/// `YYYY-MM-DD-<cores>core`.
fn report_stem(at: SystemTime, cores: usize) -> String {
    format!("{}-{cores}core", utc_date(at))
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Creates the Tornado virtualenv in the peers folder (once per requirements file) and returns its python.
fn tornado_venv(peers: &Path) -> Result<PathBuf, String> {
    let venv = peers.join(".venv");
    let python = venv.join("bin").join("python");
    let requirements = fs::read(peers.join("requirements.txt")).map_err(|e| format!("requirements.txt: {e}"))?;
    let stamp = venv.join("requirements.installed");
    if python.is_file() && fs::read(&stamp).ok().as_deref() == Some(&requirements[..]) {
        return Ok(python);
    }
    if !python.is_file() {
        run_checked(Command::new("python3").args(["-m", "venv", ".venv"]).current_dir(peers))?;
    }
    run_checked(
        Command::new(venv.join("bin").join("pip")).args(["install", "-q", "-r", "requirements.txt"]).current_dir(peers),
    )?;
    fs::write(&stamp, &requirements).map_err(|e| format!("cannot write {}: {e}", stamp.display()))?;
    Ok(python)
}

/// Installs wrk with apt-get when it is missing, as `bench.sh` does.
fn ensure_wrk() -> Result<(), String> {
    if harness::on_path("wrk") {
        return Ok(());
    }
    eprintln!("wrk not found; installing it with apt-get");
    let apt = |args: &[&str]| {
        let mut command = if rustix::process::geteuid().is_root() { Command::new("env") } else { sudo_env() };
        command.arg("DEBIAN_FRONTEND=noninteractive").arg("apt-get").args(args);
        run_checked(&mut command)
    };
    apt(&["install", "-y", "wrk"]).or_else(|_| apt(&["update"]).and_then(|()| apt(&["install", "-y", "wrk"])))
}

fn sudo_env() -> Command {
    let mut command = Command::new("sudo");
    command.arg("env");
    command
}

fn run_checked(command: &mut Command) -> Result<(), String> {
    let shown = format!("{command:?}");
    eprintln!("$ {shown}");
    match command.status() {
        Ok(status) if status.success() => Ok(()),
        Ok(status) => Err(format!("{shown} failed: {status}")),
        Err(e) => Err(format!("cannot run {shown}: {e}")),
    }
}

/// Appends `line` to the file at `path`; the raw record of the run, so a failure to write is only reported.
fn append_line(path: &Path, line: &str) {
    use std::io::Write as _;
    let written = fs::OpenOptions::new().create(true).append(true).open(path).and_then(|mut f| writeln!(f, "{line}"));
    if let Err(e) = written {
        eprintln!("warning: cannot append to {}: {e}", path.display());
    }
}

fn read_kv(path: &Path) -> Vec<KvLine> {
    fs::read_to_string(path).map(|t| KvLine::parse_all(&t)).unwrap_or_default()
}

/// Copies the tree at `src` into `dst`, writing only files whose contents differ (so cargo does not rebuild
/// what did not change) and skipping build and run products. Existing extra files in `dst` are kept. Returns the
/// number of files written.
fn sync_tree(src: &Path, dst: &Path) -> std::io::Result<usize> {
    fs::create_dir_all(dst)?;
    let mut written = 0;
    for entry in fs::read_dir(src)? {
        let entry = entry?;
        let name = entry.file_name();
        if NOT_COPIED.iter().any(|skip| name == *skip) {
            continue;
        }
        let (from, to) = (entry.path(), dst.join(&name));
        let kind = entry.file_type()?;
        if kind.is_dir() {
            written += sync_tree(&from, &to)?;
        } else if kind.is_file() {
            let data = fs::read(&from)?;
            if fs::read(&to).ok().as_deref() != Some(&data[..]) {
                // The source may be read-only; its copy must stay writable for the next update.
                let _ = fs::remove_file(&to);
                fs::write(&to, &data)?;
                written += 1;
            }
            let mode = entry.metadata()?.permissions().mode() | 0o200;
            if fs::metadata(&to)?.permissions().mode() & 0o7777 != mode & 0o7777 {
                fs::set_permissions(&to, fs::Permissions::from_mode(mode))?;
            }
        }
    }
    Ok(written)
}

/// `path` relative to `base` (both absolute), with `..` where they diverge.
fn relative(path: &Path, base: &Path) -> PathBuf {
    let p: Vec<Component<'_>> = path.components().collect();
    let b: Vec<Component<'_>> = base.components().collect();
    let common = p.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let mut out: PathBuf = std::iter::repeat_n(Component::ParentDir, b.len() - common).collect();
    out.extend(&p[common..]);
    if out.as_os_str().is_empty() { PathBuf::from(".") } else { out }
}

/// Single-quotes `word` for a POSIX shell when it needs it.
fn shell_quote(word: &str) -> String {
    let plain = !word.is_empty() && word.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c));
    if plain { word.to_owned() } else { format!("'{}'", word.replace('\'', r"'\''")) }
}

fn shell_join(words: &[String]) -> String {
    words.iter().map(|w| shell_quote(w)).collect::<Vec<_>>().join(" ")
}

fn opt(v: Option<f64>) -> String {
    v.map_or_else(|| "NA".into(), |v| format!("{v:.2}"))
}

fn fmt_int(n: u32) -> String {
    crate::report::fmt_count(f64::from(n))
}

/// Days since 1970-01-01 to a proleptic Gregorian `(year, month, day)` (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn unix_seconds(at: SystemTime) -> i64 {
    at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// `YYYY-MM-DD` in UTC.
fn utc_date(at: SystemTime) -> String {
    let (y, m, d) = civil_from_days(unix_seconds(at).div_euclid(86_400));
    format!("{y:04}-{m:02}-{d:02}")
}

/// `YYYYMMDDTHHMMSSZ`, as `bench.sh` stamps its logs.
fn utc_stamp(at: SystemTime) -> String {
    let secs = unix_seconds(at);
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    format!("{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z", s / 3600, s / 60 % 60, s % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(text: &str) -> Vec<String> {
        text.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn default_options_measure_everything() {
        let o = Options::parse(&[]).unwrap();
        assert!(!o.quick && o.callgrind && o.build);
        let all: Vec<&str> = o.selection().iter().map(|(n, _)| *n).collect();
        assert_eq!(all, SERVERS.map(|(n, _)| n));
        assert!(o.selection().iter().all(|&(n, required)| required == (n != "gale_web")));
        assert_eq!((o.duration_s, o.warmup_s, o.idle_conns), (10, 2, 10_000));
        assert_eq!(o.sweep, [64, 256, 1024, 4096, 10_000]);
        assert_eq!(o.rounds, 1);
    }

    #[test]
    fn rounds_are_parsed_and_zero_is_refused() {
        assert_eq!(Options::parse(&args("--rounds 3")).unwrap().rounds, 3);
        assert_eq!(Options::parse(&args("--rounds=5 --quick")).unwrap().rounds, 5);
        assert!(Options::parse(&args("--rounds 0")).is_err());
        assert!(Options::parse(&args("--rounds many")).is_err());
    }

    #[test]
    fn rounds_merge_into_the_median_of_each_figure() {
        let round = |rps: f64, cpu: Option<f64>, idle: Option<f64>, problem: Option<&str>| {
            let mut f = ServerFigures { idle_kib_per_conn: idle, ..Default::default() };
            f.scenarios.insert(
                Scenario::ALL[0],
                ScenarioFigures { rps: Some(rps), cpu_us_per_req: cpu, errors: Some(1.0), ..Default::default() },
            );
            f.problems.extend(problem.map(String::from));
            f
        };
        let merged = median_of_rounds(vec![
            round(133_000.0, Some(6.9), Some(2.1), None),
            round(166_000.0, Some(5.5), None, Some("idle-memory test incomplete")),
            round(135_000.0, None, Some(2.0), None),
        ]);
        let s = &merged.scenarios[&Scenario::ALL[0]];
        assert_eq!(s.rps, Some(135_000.0), "the middle of three");
        assert_eq!(s.cpu_us_per_req, Some(6.9), "the upper middle of the two rounds that measured it");
        assert_eq!(s.errors, Some(3.0), "errors add up");
        assert_eq!(merged.idle_kib_per_conn, Some(2.1));
        assert_eq!(merged.problems, ["round 2: idle-memory test incomplete"]);
        assert!(merged.scenarios.len() == 1, "scenarios no round measured stay absent");
        let single = median_of_rounds(vec![round(1.0, None, None, Some("x"))]);
        assert_eq!(single.problems, ["x"], "a single run's problems are not numbered");
    }

    #[test]
    fn quick_sets_its_defaults_and_later_options_still_override_them() {
        let o = Options::parse(&args("--duration 3 --quick")).unwrap();
        assert!(o.quick && !o.callgrind);
        assert_eq!(o.duration_s, 3);
        assert_eq!(o.warmup_s, 0);
        assert_eq!(o.sweep, [64, 256]);
        assert_eq!(o.idle_conns, 200);
        assert_eq!(o.quiet_wait_s, 0);
        assert_eq!(o.selection(), [("gale_http1", true), ("gale_web", false), ("floor", true)]);
        let o = Options::parse(&args("--quick --callgrind --servers=floor,gale_web")).unwrap();
        assert!(o.callgrind);
        assert_eq!(o.selection(), [("gale_web", true), ("floor", true)], "report order, all required");
    }

    #[test]
    fn sweep_is_sorted_and_bad_input_is_refused() {
        assert_eq!(Options::parse(&args("--sweep 256,64,256")).unwrap().sweep, [64, 256]);
        assert!(Options::parse(&args("--sweep 64,x")).is_err());
        assert!(Options::parse(&args("--servers hyper,nginx")).unwrap_err().contains("nginx"));
        assert!(Options::parse(&args("--duration 0")).is_err());
        assert!(Options::parse(&args("--port")).unwrap_err().contains("needs a value"));
        assert!(Options::parse(&args("--bogus")).is_err());
    }

    #[test]
    fn every_known_server_has_a_command() {
        let layout = Layout {
            root: "/w".into(),
            target: "/w/target".into(),
            peers: "/w/target/peers-src".into(),
            run_dir: "/w/target/bench/x".into(),
        };
        for (name, _) in SERVERS {
            let spec = server_spec(name, &layout, 18080, Some(Path::new("/w/target/peers-src/.venv/bin/python")))
                .unwrap_or_else(|| panic!("{name}"));
            assert!(spec.args.contains(&"18080".to_owned()), "{name} listens on the given port");
        }
        let gale = server_spec("gale_http1", &layout, 9000, None).unwrap();
        assert_eq!(layout.in_peers(&gale.program), "../release/examples/hello_http");
        let floor = server_spec("floor", &layout, 9000, None).unwrap();
        assert_eq!(layout.in_peers(&floor.program), "target/release/floor_epoll");
        assert_eq!(layout.in_peers(Path::new("/w/target/peers-src/bench.sh")), "./bench.sh");
        assert_eq!(layout.show(&floor.program), "target/peers-src/target/release/floor_epoll");
        assert!(server_spec("tornado", &layout, 9000, None).is_none(), "tornado needs its virtualenv");
        assert!(server_spec("nginx", &layout, 9000, None).is_none());
    }

    #[test]
    fn relative_paths_climb_where_needed() {
        assert_eq!(relative(Path::new("/a/b/c"), Path::new("/a")), Path::new("b/c"));
        assert_eq!(relative(Path::new("/a/x"), Path::new("/a/b/c")), Path::new("../../x"));
        assert_eq!(relative(Path::new("/a"), Path::new("/a")), Path::new("."));
    }

    #[test]
    fn shell_words_are_quoted_only_when_needed() {
        assert_eq!(shell_quote("--port"), "--port");
        assert_eq!(shell_quote("plaintext pipelined"), "'plaintext pipelined'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }

    #[test]
    fn dates_are_proleptic_gregorian_utc() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        let at = UNIX_EPOCH + Duration::from_secs(1_795_000_000); // 2026-11-18T11:06:40Z
        assert_eq!(utc_date(at), "2026-11-18");
        assert_eq!(utc_stamp(at), "20261118T110640Z");
        assert_eq!(report_stem(at, 2), "2026-11-18-2core");
    }

    #[test]
    fn tree_sync_copies_changed_files_only_and_keeps_build_products_out() {
        let base = std::env::temp_dir().join(format!("xtask-sync-{}", std::process::id()));
        let (src, dst) = (base.join("src"), base.join("dst"));
        fs::create_dir_all(src.join("sub")).unwrap();
        fs::create_dir_all(src.join("target")).unwrap();
        fs::write(src.join("a.txt"), "a").unwrap();
        fs::write(src.join("sub/b.sh"), "b").unwrap();
        fs::set_permissions(src.join("sub/b.sh"), fs::Permissions::from_mode(0o555)).unwrap();
        fs::write(src.join("target/big"), "x").unwrap();

        assert_eq!(sync_tree(&src, &dst).unwrap(), 2);
        assert_eq!(fs::read_to_string(dst.join("sub/b.sh")).unwrap(), "b");
        assert_eq!(fs::metadata(dst.join("sub/b.sh")).unwrap().permissions().mode() & 0o777, 0o755);
        assert!(!dst.join("target").exists());
        assert_eq!(sync_tree(&src, &dst).unwrap(), 0, "nothing changed");
        fs::write(src.join("a.txt"), "a2").unwrap();
        fs::write(dst.join("Cargo.lock"), "kept").unwrap();
        assert_eq!(sync_tree(&src, &dst).unwrap(), 1);
        assert_eq!(fs::read_to_string(dst.join("a.txt")).unwrap(), "a2");
        assert!(dst.join("Cargo.lock").exists());
        fs::set_permissions(src.join("sub/b.sh"), fs::Permissions::from_mode(0o755)).unwrap();
        fs::remove_dir_all(&base).unwrap();
    }
}
