//! `cargo xtask`: the project's automation, written in Rust so that it runs wherever cargo does.
//!
//! Tasks:
//! - `ci`: format check, clippy with warnings denied, the whole test suite, and the docs build. If
//!   `cargo xtask ci` passes locally, CI is green.
//! - `bench`: builds the gale examples and the peer servers, runs the same load scenarios against each and
//!   writes a Markdown report with SVG charts (see [`mod@bench`] and `cargo xtask bench --help`).
//! - `conformance`: the Autobahn|Testsuite against the `ws_echo` example (`--all` adds the compression
//!   sections); `browser`: two headless Chromium pages of `websocket_chat` exchange a message.
//! - `nginx`: Debian's nginx in front of two gale processes; HTTP and a WebSocket go through it.
//! - `fuzz`: runs every cargo-fuzz target of `fuzz/` for a bounded time (see [`mod@fuzz`]).

mod bench;
mod chart;
mod conformance;
mod fuzz;
mod harness;
mod nginx;
mod parse;
mod report;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

const USAGE: &str = "usage: cargo xtask <ci | bench [--quick] [options] | fuzz [--seconds N | --quick] [TARGET…] | conformance [--all] | browser | nginx>";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let task = args.first().map(String::as_str).unwrap_or("help");
    let result = match task {
        "ci" => ci(),
        "bench" => bench::run(&args[1..]),
        "fuzz" => fuzz::run(&args[1..]),
        "nginx" => nginx::run(&args[1..]),
        "conformance" => conformance::run(&args[1..]),
        "browser" => conformance::browser(&args[1..]),
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask {task}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs `cargo ARGS…` from the workspace root, failing on a non-zero exit.
fn cargo(args: &[&str]) -> Result<(), String> {
    cargo_in(&workspace_root(), args)
}

/// Runs `cargo ARGS…` in `dir`, failing on a non-zero exit.
fn cargo_in(dir: &Path, args: &[&str]) -> Result<(), String> {
    eprintln!("$ cargo {}", args.join(" "));
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(args)
        .current_dir(dir)
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if status.success() { Ok(()) } else { Err(format!("cargo {} failed: {status}", args.join(" "))) }
}

/// The workspace root: the parent of this crate's manifest directory.
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask lives in the workspace root").to_path_buf()
}

fn ci() -> Result<(), String> {
    cargo(&["fmt", "--all", "--", "--check"])?;
    cargo(&["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"])?;
    cargo(&["test", "--workspace"])?;
    cargo(&["doc", "--workspace", "--no-deps"])
}
