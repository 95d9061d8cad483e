//! C10K and beyond: one gale-web worker holds N standing connections — half long polls, half websockets —
//! while another client measures the latency of ordinary requests and the server's CPU per request; then
//! everything is released, and the server must come back to its baseline with nothing leaked.
//!
//! ```text
//! cargo run --release -p gale-benches --bin c10k -- --conns 10000 --backend epoll [--requests 2000] [--json]
//! cargo run --release -p gale-benches --bin c10k -- --sweep 100,1000,5000,10000 \
//!     --backends epoll,poll,select --repeat 3 --report benches/report
//! ```
//!
//! The server is this binary again (`--serve`), in a child process on the poller that `GALE_POLLER` names,
//! so that its memory, fds and CPU time are read alone from `/proc/PID`. The driver (this process) raises its
//! fd limit to the hard limit first; the child inherits it. Linux only.
//!
//! A run holds and releases the connections twice (`--cycles`) on the same server. It fails (exit status 1)
//! unless in every cycle every long poll is answered and every websocket upgrades, echoes and closes cleanly;
//! after every release the server's fd count, live handlers, connections, loop tasks and timers are exactly
//! what they were before; and the second cycle reuses the memory of the first instead of growing. `--json`
//! prints each run's [`run::Outcome`] as one JSON line.

#[path = "c10k/client.rs"]
mod client;
#[path = "c10k/procfs.rs"]
mod procfs;
#[path = "c10k/report.rs"]
mod report;
#[path = "c10k/run.rs"]
mod run;
#[path = "c10k/server.rs"]
mod server;

use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "\
usage: c10k [--conns N] [--backend epoll|poll|select] [--requests R] [--cycles C] [--repeat K] [--json]
       c10k --sweep N,N,... [--backends B,B,...] [--requests R] [--cycles C] [--repeat K] [--report DIR] [--json]

  --conns N       standing connections, half long polls and half websockets (default 10000)
  --backend B     the server's poller (default epoll)
  --requests R    ordinary requests timed per phase (default 2000)
  --repeat K      run each configuration K times; the report shows the median by server CPU (default 1)
  --cycles C      hold-and-release cycles per run, on the same server (default 2)
  --sweep LIST    one run per N and backend; with --report DIR, writes DIR/c10k-DATE-Ncore.{md,svg}
  --backends LIST backends of the sweep (default epoll,poll,select)
  --json          print each run as a JSON line instead of a summary";

/// The command line.
#[derive(Debug)]
struct Args {
    conns: Vec<usize>,
    backends: Vec<String>,
    requests: usize,
    repeat: usize,
    cycles: usize,
    json: bool,
    report: Option<PathBuf>,
}

fn parse_list<T: std::str::FromStr>(flag: &str, value: &str) -> Result<Vec<T>, String> {
    value
        .split(',')
        .map(|v| v.trim().parse::<T>().map_err(|_| format!("{flag}: cannot read {v:?}")))
        .collect::<Result<Vec<T>, String>>()
        .and_then(|v| if v.is_empty() { Err(format!("{flag}: empty list")) } else { Ok(v) })
}

fn parse_args(args: &[String]) -> Result<Args, String> {
    let mut parsed = Args {
        conns: vec![10_000],
        backends: vec!["epoll".into()],
        requests: 2_000,
        repeat: 1,
        cycles: 2,
        json: false,
        report: None,
    };
    let (mut sweep, mut backends) = (None, None);
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--conns" => parsed.conns = parse_list("--conns", value()?)?,
            "--backend" => parsed.backends = vec![value()?.clone()],
            "--sweep" => sweep = Some(parse_list("--sweep", value()?)?),
            "--backends" => backends = Some(parse_list("--backends", value()?)?),
            "--requests" => parsed.requests = value()?.parse().map_err(|_| "--requests: not a number".to_owned())?,
            "--cycles" => parsed.cycles = value()?.parse().map_err(|_| "--cycles: not a number".to_owned())?,
            "--repeat" => parsed.repeat = value()?.parse().map_err(|_| "--repeat: not a number".to_owned())?,
            "--report" => parsed.report = Some(PathBuf::from(value()?)),
            "--json" => parsed.json = true,
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if let Some(sweep) = sweep {
        parsed.conns = sweep;
        parsed.backends = backends.unwrap_or_else(|| ["epoll", "poll", "select"].map(String::from).to_vec());
    } else if backends.is_some() || parsed.report.is_some() {
        return Err("--backends and --report go with --sweep".into());
    }
    if parsed.requests == 0 || parsed.repeat == 0 || parsed.cycles == 0 {
        return Err("--requests, --repeat and --cycles must be at least 1".into());
    }
    Ok(parsed)
}

/// Raises the soft fd limit to the hard one and returns it.
fn raise_fd_limit() -> u64 {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.maximum.is_some() && limit.current != limit.maximum {
        limit.current = limit.maximum;
        // On failure the soft limit stays; the check below reports it.
        let _ = setrlimit(Resource::Nofile, limit);
    }
    getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX)
}

fn summary(o: &run::Outcome) -> String {
    format!(
        "{backend:>6} {conns:>6} conns: long polls {lpa}/{lp}, websockets {wse}/{ws} echoed {wsc} closed; \
         {kib:.2} KiB/conn ({kib_lp:.2} per long poll, {kib_ws:.2} per websocket); GET p50/p99 {p50:.1}/{p99:.1} µs \
         idle, {lp50:.1}/{lp99:.1} µs held; CPU {icpu:.1} → {lcpu:.1} µs/GET; fds {f0}→{f1}→{f2}; \
         RSS {r0}→{r1} KiB, after each release {r2:?}; opened in {open:.1} s: {verdict}",
        backend = o.backend,
        conns = o.conns,
        lpa = o.long_polls_answered,
        lp = o.long_polls,
        wse = o.websockets_echoed,
        ws = o.websockets,
        wsc = o.websockets_closed,
        kib = o.memory.kib_per_conn,
        kib_lp = o.memory.kib_per_long_poll,
        kib_ws = o.memory.kib_per_websocket,
        p50 = o.idle.p50_us,
        p99 = o.idle.p99_us,
        lp50 = o.loaded.p50_us,
        lp99 = o.loaded.p99_us,
        icpu = o.idle.cpu_us_per_request,
        lcpu = o.loaded.cpu_us_per_request,
        f0 = o.baseline.fds,
        f1 = o.held.fds,
        f2 = o.after.fds,
        r0 = o.baseline.rss_kib,
        r1 = o.held.rss_kib,
        r2 = o.rss_after_release_kib,
        open = o.open_seconds,
        verdict = if o.passed() { "OK".to_owned() } else { format!("FAILED: {}", o.failures.join("; ")) },
    )
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--serve") {
        let port = args.get(1..).and_then(|a| a.windows(2).find(|w| w[0] == "--port")).map(|w| w[1].as_str());
        return match server::serve(port.and_then(|p| p.parse().ok()).unwrap_or(0)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("c10k server: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let args = match parse_args(&args) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("c10k: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let limit = raise_fd_limit();
    let most = args.conns.iter().copied().max().unwrap_or(0) as u64;
    // Each process needs one fd per standing connection, plus a few of its own.
    if most + 64 > limit {
        eprintln!("c10k: {most} connections need more fds than the limit of {limit} (raise the hard limit)");
        return ExitCode::FAILURE;
    }

    // Taken now, for the load average before the runs.
    let machine = args.report.as_ref().map(|_| report::Machine::detect());
    let mut outcomes = Vec::new();
    let mut failed = false;
    for backend in &args.backends {
        for conns in args.conns.iter().flat_map(|&c| std::iter::repeat_n(c, args.repeat)) {
            let config = run::Config { backend: backend.clone(), conns, requests: args.requests, cycles: args.cycles };
            match run::run(&config) {
                Ok(o) => {
                    failed |= !o.passed();
                    if args.json {
                        println!("{}", serde_json::to_string(&o).expect("serializable"));
                    } else {
                        println!("{}", summary(&o));
                    }
                    outcomes.push(o);
                }
                Err(e) => {
                    failed = true;
                    eprintln!("c10k: {backend} with {conns} connections: {e}");
                }
            }
        }
    }

    if let (Some(dir), Some(machine)) = (&args.report, &machine) {
        let stem = machine.stem();
        let command = format!("c10k {}", std::env::args().skip(1).collect::<Vec<_>>().join(" "));
        let md = report::markdown(machine, &command, &format!("{stem}.svg"), &outcomes);
        let written = std::fs::create_dir_all(dir)
            .map_err(|e| e.to_string())
            .and_then(|()| report::chart_svg(&outcomes))
            .and_then(|svg| std::fs::write(dir.join(format!("{stem}.svg")), svg).map_err(|e| e.to_string()))
            .and_then(|()| std::fs::write(dir.join(format!("{stem}.md")), md).map_err(|e| e.to_string()));
        match written {
            Ok(()) => eprintln!("c10k: report written to {}", dir.join(format!("{stem}.md")).display()),
            Err(e) => {
                eprintln!("c10k: cannot write the report: {e}");
                failed = true;
            }
        }
    }
    if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(text: &str) -> Vec<String> {
        text.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn a_single_run_defaults_to_ten_thousand_on_epoll() {
        let a = parse_args(&[]).unwrap();
        assert_eq!((a.conns, a.backends, a.requests, a.json), (vec![10_000], vec!["epoll".to_owned()], 2_000, false));
        let a = parse_args(&args("--conns 200 --backend select --json --requests 50")).unwrap();
        assert_eq!((a.conns, a.backends, a.requests, a.json), (vec![200], vec!["select".to_owned()], 50, true));
    }

    #[test]
    fn a_sweep_covers_every_backend_unless_told() {
        let a = parse_args(&args("--sweep 100,1000 --report out")).unwrap();
        assert_eq!(a.conns, [100, 1000]);
        assert_eq!(a.backends, ["epoll", "poll", "select"]);
        assert_eq!(a.report, Some(PathBuf::from("out")));
        assert_eq!(parse_args(&args("--sweep 5 --backends poll")).unwrap().backends, ["poll"]);
    }

    #[test]
    fn bad_arguments_are_refused() {
        assert!(parse_args(&args("--conns")).is_err());
        assert!(parse_args(&args("--conns ten")).is_err());
        assert!(parse_args(&args("--report out")).is_err(), "a report needs a sweep");
        assert!(parse_args(&args("--requests 0")).is_err());
        assert!(parse_args(&args("--frobnicate")).is_err());
    }
}
