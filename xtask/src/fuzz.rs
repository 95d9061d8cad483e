//! `cargo xtask fuzz [--seconds N | --quick] [TARGET…]`: runs each cargo-fuzz target of `fuzz/` for a bounded
//! time, one after the other, and prints executions and coverage per target.
//!
//! Needs the nightly toolchain and `cargo-fuzz` (`cargo install cargo-fuzz`); says so clearly when either is
//! missing. Crashes are left in `fuzz/artifacts/<target>/` by libFuzzer and make the task fail; turn each into a
//! regression test next to the code it hit.

use std::process::Command;

/// Every target in `fuzz/fuzz_targets/`.
pub const TARGETS: &[&str] =
    &["http1_request", "chunked_decoder", "ws_frame", "multipart", "cookies_signing", "routing"];

/// One target's final libFuzzer statistics.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Executions.
    pub execs: u64,
    /// Coverage (edges) reached.
    pub cov: u64,
    /// Features reached.
    pub ft: u64,
}

/// Reads the last `#N DONE cov: X ft: Y …` line of a libFuzzer log.
pub fn parse_done(log: &str) -> Option<Stats> {
    let line = log.lines().rev().find(|l| l.starts_with('#') && l.contains("DONE"))?;
    let mut words = line.split_whitespace();
    let execs = words.next()?.trim_start_matches('#').parse().ok()?;
    let mut stats = Stats { execs, ..Stats::default() };
    let words: Vec<&str> = line.split_whitespace().collect();
    for pair in words.windows(2) {
        match pair[0] {
            "cov:" => stats.cov = pair[1].parse().unwrap_or(0),
            "ft:" => stats.ft = pair[1].parse().unwrap_or(0),
            _ => {}
        }
    }
    Some(stats)
}

pub fn run(args: &[String]) -> Result<(), String> {
    let mut seconds = 60u64;
    let mut targets: Vec<String> = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--quick" => seconds = 10,
            "--seconds" => {
                seconds = it.next().and_then(|s| s.parse().ok()).ok_or("--seconds needs a number")?;
            }
            t if TARGETS.contains(&t) => targets.push(t.to_owned()),
            other => return Err(format!("unknown fuzz argument {other:?}; targets: {}", TARGETS.join(", "))),
        }
    }
    if targets.is_empty() {
        targets = TARGETS.iter().map(|t| (*t).to_owned()).collect();
    }
    let nightly = Command::new("cargo").args(["+nightly", "--version"]).output();
    if !nightly.is_ok_and(|o| o.status.success()) {
        return Err("the nightly toolchain is needed (rustup toolchain install nightly)".into());
    }
    let fuzz = Command::new("cargo").args(["+nightly", "fuzz", "--version"]).output();
    if !fuzz.is_ok_and(|o| o.status.success()) {
        return Err("cargo-fuzz is needed: cargo install cargo-fuzz".into());
    }
    let dir = crate::workspace_root().join("fuzz");
    let mut rows = Vec::new();
    let mut failed = Vec::new();
    for t in &targets {
        let corpus = dir.join("corpus").join(t);
        std::fs::create_dir_all(&corpus).map_err(|e| e.to_string())?;
        let mut cmd = Command::new("cargo");
        cmd.current_dir(&dir).args(["+nightly", "fuzz", "run", "-O", t]).arg(&corpus);
        let seeds = dir.join("seeds").join(t);
        if seeds.is_dir() {
            cmd.arg(&seeds);
        }
        cmd.arg("--").arg(format!("-max_total_time={seconds}")).arg("-print_final_stats=1");
        eprintln!("== fuzzing {t} for {seconds} s");
        let out = cmd.output().map_err(|e| format!("cannot run cargo fuzz: {e}"))?;
        let log = String::from_utf8_lossy(&out.stderr);
        let stats = parse_done(&log);
        if !out.status.success() {
            eprintln!(
                "{}",
                log.lines().rev().take(30).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n")
            );
            failed.push(t.clone());
        }
        rows.push((t.clone(), stats, out.status.success()));
    }
    println!("| target | executions | cov | ft | result |\n|---|---:|---:|---:|---|");
    for (t, s, ok) in &rows {
        let s = s.as_ref();
        println!(
            "| {t} | {} | {} | {} | {} |",
            s.map_or(0, |s| s.execs),
            s.map_or(0, |s| s.cov),
            s.map_or(0, |s| s.ft),
            if *ok { "ok" } else { "FAILED" }
        );
    }
    if failed.is_empty() { Ok(()) } else { Err(format!("findings in: {} (see fuzz/artifacts/)", failed.join(", "))) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_final_statistics_line() {
        let log =
            "INFO: seed\n#1024\tpulse  cov: 10 ft: 11\n#52345\tDONE   cov: 812 ft: 2991 corp: 300/20Kb exec/s: 1744\n";
        assert_eq!(parse_done(log), Some(Stats { execs: 52345, cov: 812, ft: 2991 }));
        assert_eq!(parse_done("no stats"), None);
    }
}
