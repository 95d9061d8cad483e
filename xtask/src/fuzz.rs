//! `cargo xtask fuzz [--seconds N | --quick] [TARGET…]`: runs the cargo-fuzz targets of `fuzz/` for a bounded
//! time each, one after the other, and prints a table of executions and coverage per target.
//!
//! Needs the nightly toolchain and `cargo-fuzz` (`cargo install cargo-fuzz`) and says so when either is
//! missing. Targets are built once, optimized with debug assertions and AddressSanitizer (cargo-fuzz's
//! default), then each runs for `--seconds` (default 60; `--quick` is 10) on its corpus in `fuzz/corpus/`
//! plus the committed seeds in `fuzz/seeds/`. An input slower than 10 s counts as a hang.
//!
//! A finding — a panic, a failed invariant, a sanitizer report or a hang — makes the task fail; libFuzzer
//! leaves the input in `fuzz/artifacts/<target>/`. Reproduce it with `cargo +nightly fuzz run <target>
//! <file>`, shrink it with `cargo +nightly fuzz tmin <target> <file>`, and turn it into a regression test next
//! to the code it hit. Each run's full log is kept in `fuzz/target/xtask-logs/<target>.log`.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

/// Every target in `fuzz/fuzz_targets/`, in the order they run.
pub const TARGETS: &[&str] = &[
    "http1_request",
    "http1_connection",
    "http1_response",
    "chunked_decoder",
    "ws_frame",
    "ws_deflate",
    "multipart",
    "urlencoded",
    "cookies",
    "signed_cookie",
    "routing",
];

/// Seconds per target by default, and with `--quick`.
const DEFAULT_SECONDS: u64 = 60;
const QUICK_SECONDS: u64 = 10;

/// An input that runs longer than this is reported as a hang.
const INPUT_TIMEOUT_SECONDS: u64 = 10;

const USAGE: &str = "usage: cargo xtask fuzz [--seconds N | --quick] [TARGET...]";

/// One target's final libFuzzer statistics (the `#N DONE cov: X ft: Y corp: C/S exec/s: E` line).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// Inputs executed.
    pub execs: u64,
    /// Coverage: instrumented edges reached.
    pub cov: u64,
    /// Features (edges weighted by hit counts, comparisons, ...) reached.
    pub ft: u64,
    /// Inputs in the corpus at the end.
    pub corpus: u64,
    /// Executions per second.
    pub exec_per_sec: u64,
}

/// Reads the last `#N DONE …` line of a libFuzzer log.
pub fn parse_done(log: &str) -> Option<Stats> {
    let line = log.lines().rev().find(|l| l.starts_with('#') && l.contains("DONE"))?;
    let words: Vec<&str> = line.split_whitespace().collect();
    let mut stats = Stats { execs: words.first()?.trim_start_matches('#').parse().ok()?, ..Stats::default() };
    for pair in words.windows(2) {
        let number = || pair[1].split('/').next().and_then(|n| n.parse().ok()).unwrap_or(0);
        match pair[0] {
            "cov:" => stats.cov = number(),
            "ft:" => stats.ft = number(),
            "corp:" => stats.corpus = number(),
            "exec/s:" => stats.exec_per_sec = number(),
            _ => {}
        }
    }
    Some(stats)
}

/// The inputs libFuzzer saved for a finding (`Test unit written to <path>`).
pub fn artifacts(log: &str) -> Vec<&str> {
    log.lines().filter_map(|l| l.split_once("Test unit written to ").map(|(_, path)| path.trim())).collect()
}

/// What the command line asked for.
#[derive(Debug, PartialEq, Eq)]
struct Options {
    seconds: u64,
    targets: Vec<String>,
}

fn parse_args(args: &[String]) -> Result<Options, String> {
    let mut options = Options { seconds: DEFAULT_SECONDS, targets: Vec::new() };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--quick" => options.seconds = QUICK_SECONDS,
            "--seconds" => {
                let value = it.next().ok_or("--seconds needs a number")?;
                options.seconds = value.parse().map_err(|_| format!("--seconds: not a number: {value:?}"))?;
            }
            "-h" | "--help" => return Err(format!("{USAGE}\ntargets: {}", TARGETS.join(", "))),
            t if TARGETS.contains(&t) => options.targets.push(t.to_owned()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}\ntargets: {}", TARGETS.join(", "))),
        }
    }
    if options.targets.is_empty() {
        options.targets = TARGETS.iter().map(|t| (*t).to_owned()).collect();
    }
    Ok(options)
}

/// A `cargo +nightly …` command run in `dir`, free of the stable toolchain this task runs under.
fn nightly_cargo(dir: &Path) -> Command {
    let mut cmd = Command::new("cargo");
    cmd.arg("+nightly").current_dir(dir).env_remove("RUSTUP_TOOLCHAIN").env_remove("CARGO");
    cmd
}

/// Whether `cargo +nightly ARGS` runs and succeeds.
fn nightly_works(dir: &Path, args: &[&str]) -> bool {
    nightly_cargo(dir).args(args).stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
}

/// What one target's run came to.
struct Outcome {
    target: String,
    stats: Option<Stats>,
    passed: bool,
    artifacts: Vec<String>,
}

/// Runs the task.
pub fn run(args: &[String]) -> Result<(), String> {
    let options = parse_args(args)?;
    let dir = crate::workspace_root().join("fuzz");
    if !nightly_works(&dir, &["--version"]) {
        return Err("the nightly toolchain is needed: rustup toolchain install nightly".into());
    }
    if !nightly_works(&dir, &["fuzz", "--version"]) {
        return Err("cargo-fuzz is needed: cargo install cargo-fuzz".into());
    }

    eprintln!("== building the fuzz targets");
    // `cargo fuzz build` takes one target, or none for all of them.
    let builds: Vec<Option<&str>> = if options.targets.len() == TARGETS.len() {
        vec![None]
    } else {
        options.targets.iter().map(|t| Some(t.as_str())).collect()
    };
    for target in builds {
        let status = nightly_cargo(&dir)
            .args(["fuzz", "build"])
            .args(target)
            .status()
            .map_err(|e| format!("cannot run cargo fuzz: {e}"))?;
        if !status.success() {
            return Err(format!("cargo fuzz build failed: {status}"));
        }
    }

    let logs = dir.join("target").join("xtask-logs");
    std::fs::create_dir_all(&logs).map_err(|e| format!("{}: {e}", logs.display()))?;
    let mut outcomes = Vec::new();
    for target in &options.targets {
        eprintln!("== fuzzing {target} for {} s", options.seconds);
        let log = fuzz_one(&dir, target, options.seconds)?;
        let _ = std::fs::write(logs.join(format!("{target}.log")), &log.text);
        let stats = parse_done(&log.text);
        let found = artifacts(&log.text).into_iter().map(str::to_owned).collect::<Vec<_>>();
        if !log.passed {
            let tail: Vec<&str> = log.text.lines().rev().take(40).collect();
            eprintln!("{}", tail.into_iter().rev().collect::<Vec<_>>().join("\n"));
        }
        outcomes.push(Outcome { target: target.clone(), stats, passed: log.passed, artifacts: found });
    }

    println!("| target | executions | exec/s | cov | ft | corpus | result |");
    println!("|---|---:|---:|---:|---:|---:|---|");
    for o in &outcomes {
        let s = o.stats.unwrap_or_default();
        let result = if o.passed { "ok" } else { "FINDING" };
        println!(
            "| {} | {} | {} | {} | {} | {} | {result} |",
            o.target, s.execs, s.exec_per_sec, s.cov, s.ft, s.corpus
        );
    }
    let failed: Vec<&Outcome> = outcomes.iter().filter(|o| !o.passed).collect();
    if failed.is_empty() {
        return Ok(());
    }
    for o in &failed {
        for artifact in &o.artifacts {
            eprintln!("reproduce: (cd fuzz && cargo +nightly fuzz run {} {artifact})", o.target);
        }
    }
    let names: Vec<&str> = failed.iter().map(|o| o.target.as_str()).collect();
    Err(format!("findings in {}: turn each into a regression test next to the code it hit", names.join(", ")))
}

/// A finished libFuzzer run.
struct Log {
    text: String,
    passed: bool,
}

/// Runs one target, echoing libFuzzer's progress lines while keeping the whole log.
fn fuzz_one(dir: &Path, target: &str, seconds: u64) -> Result<Log, String> {
    let corpus = dir.join("corpus").join(target);
    std::fs::create_dir_all(&corpus).map_err(|e| format!("{}: {e}", corpus.display()))?;
    let mut cmd = nightly_cargo(dir);
    cmd.args(["fuzz", "run", target]).arg(&corpus);
    let seeds = dir.join("seeds").join(target);
    if seeds.is_dir() {
        cmd.arg(&seeds);
    }
    cmd.arg("--")
        .arg(format!("-max_total_time={seconds}"))
        .arg(format!("-timeout={INPUT_TIMEOUT_SECONDS}"))
        .arg("-print_final_stats=1");
    let mut child =
        cmd.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().map_err(|e| format!("cannot run cargo fuzz: {e}"))?;
    let mut text = String::new();
    if let Some(stderr) = child.stderr.take() {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if line.contains("pulse") || line.contains("DONE") || line.contains("INITED") {
                eprintln!("   {line}");
            }
            text.push_str(&line);
            text.push('\n');
        }
    }
    let status = child.wait().map_err(|e| format!("cargo fuzz: {e}"))?;
    Ok(Log { passed: status.success(), text })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn reads_the_final_statistics_line() {
        let log = "INFO: seed\n#1024\tpulse  cov: 10 ft: 11 corp: 5/60b exec/s: 512\n\
                   #52345\tDONE   cov: 812 ft: 2991 corp: 300/20Kb lim: 4096 exec/s: 1744 rss: 480Mb\n";
        let expected = Stats { execs: 52345, cov: 812, ft: 2991, corpus: 300, exec_per_sec: 1744 };
        assert_eq!(parse_done(log), Some(expected));
        assert_eq!(parse_done("no stats"), None);
    }

    #[test]
    fn finds_the_saved_inputs_of_a_finding() {
        let log = "==1== ERROR: libFuzzer: deadly signal\n\
                   artifact_prefix='/x/fuzz/artifacts/ws_frame/'; Test unit written to /x/fuzz/artifacts/ws_frame/crash-ab12\n";
        assert_eq!(artifacts(log), ["/x/fuzz/artifacts/ws_frame/crash-ab12"]);
        assert!(artifacts("#1 DONE cov: 1").is_empty());
    }

    #[test]
    fn parses_durations_and_target_lists() {
        let all: Vec<String> = TARGETS.iter().map(|t| (*t).to_owned()).collect();
        assert_eq!(parse_args(&[]).unwrap(), Options { seconds: 60, targets: all });
        let quick = parse_args(&args(&["--quick", "routing", "cookies"])).unwrap();
        assert_eq!(quick, Options { seconds: 10, targets: args(&["routing", "cookies"]) });
        assert_eq!(parse_args(&args(&["--seconds", "5", "ws_frame"])).unwrap().seconds, 5);
        assert!(parse_args(&args(&["--seconds"])).is_err());
        assert!(parse_args(&args(&["--seconds", "ten"])).is_err());
        assert!(parse_args(&args(&["no_such_target"])).unwrap_err().contains("http1_request"));
    }

    #[test]
    fn every_fuzz_target_is_listed_and_every_listed_target_exists() {
        let root = crate::workspace_root().join("fuzz");
        let manifest = std::fs::read_to_string(root.join("Cargo.toml")).expect("fuzz/Cargo.toml");
        let mut declared: Vec<&str> = manifest
            .split("[[bin]]")
            .skip(1)
            .filter_map(|bin| bin.lines().find_map(|l| l.trim().strip_prefix("name = ")))
            .map(|name| name.trim_matches('"'))
            .collect();
        declared.sort_unstable();
        let mut listed = TARGETS.to_vec();
        listed.sort_unstable();
        assert_eq!(declared, listed, "fuzz/Cargo.toml and TARGETS disagree");
        for target in TARGETS {
            assert!(root.join("fuzz_targets").join(format!("{target}.rs")).is_file(), "{target}.rs is missing");
        }
    }
}
