//! Shared command-line helpers for the gale example programs.
//!
//! Every example that serves something takes `--port N` (default 8888, as Tornado's demos do) and prints the
//! address it listens on.

use std::collections::HashMap;

/// The port Tornado's demos listen on, and so do ours.
pub const DEFAULT_PORT: u16 = 8888;

/// Parsed `--name value` options of an example program.
#[derive(Debug, Default)]
pub struct Options {
    values: HashMap<String, String>,
}

impl Options {
    /// Parses `std::env::args()`; `--name value` and `--name=value` are both accepted.
    ///
    /// # Panics
    ///
    /// Exits the process with a usage message when an argument is not an option.
    pub fn from_env() -> Options {
        Options::parse(std::env::args().skip(1))
    }

    /// Parses the given arguments (without the program name).
    pub fn parse(args: impl IntoIterator<Item = String>) -> Options {
        let mut values = HashMap::new();
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let Some(name) = arg.strip_prefix("--") else {
                eprintln!("unexpected argument {arg:?}; options look like --port 8888");
                std::process::exit(2);
            };
            match name.split_once('=') {
                Some((k, v)) => values.insert(k.to_owned(), v.to_owned()),
                None => values.insert(name.to_owned(), args.next().unwrap_or_default()),
            };
        }
        Options { values }
    }

    /// The value of `--name` parsed as `T`, or `default` when absent.
    ///
    /// # Panics
    ///
    /// Exits the process with a message when the value does not parse.
    pub fn get<T: std::str::FromStr>(&self, name: &str, default: T) -> T {
        match self.values.get(name) {
            None => default,
            Some(v) => v.parse().unwrap_or_else(|_| {
                eprintln!("invalid value {v:?} for --{name}");
                std::process::exit(2);
            }),
        }
    }

    /// `--port`, default [`DEFAULT_PORT`].
    pub fn port(&self) -> u16 {
        self.get("port", DEFAULT_PORT)
    }

    /// Whether the flag `--name` was given.
    pub fn has(&self, name: &str) -> bool {
        self.values.contains_key(name)
    }
}

/// Starts logging at `info` unless `RUST_LOG` says otherwise.
pub fn init_logging() {
    let _ = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).try_init();
}

/// The error type of the examples' `main`: printed as a plain message (`Error: port 8888 is already in
/// use…`), not as a debug dump.
pub struct CliError(std::io::Error);

impl std::fmt::Debug for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&self.0, f)
    }
}

impl From<std::io::Error> for CliError {
    fn from(e: std::io::Error) -> Self {
        CliError(e)
    }
}

impl From<rustix::io::Errno> for CliError {
    fn from(e: rustix::io::Errno) -> Self {
        CliError(e.into())
    }
}

/// Turns a bind error into a clear message naming the port (no panic, no backtrace).
pub fn port_error(port: u16, e: std::io::Error) -> std::io::Error {
    if e.kind() == std::io::ErrorKind::AddrInUse {
        std::io::Error::new(e.kind(), format!("port {port} is already in use; pick another with --port N"))
    } else {
        e
    }
}

/// Blocks until SIGINT or SIGTERM arrives, then runs `shutdown` (a graceful stop) and returns.
///
/// # Errors
///
/// If the signal handlers cannot be installed.
pub fn on_shutdown_signal(shutdown: impl FnOnce()) -> std::io::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])?;
    if let Some(sig) = signals.forever().next() {
        log::info!("signal {sig}: shutting down gracefully");
    }
    shutdown();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_parse_both_forms() {
        let o = Options::parse(["--port".into(), "9000".into(), "--workers=2".into()]);
        assert_eq!(o.port(), 9000);
        assert_eq!(o.get("workers", 1usize), 2);
        assert_eq!(o.get("missing", 7u32), 7);
    }
}
