//! Shared helpers for the IOLoop tests: every test runs on every built-in backend.

#![allow(dead_code)]

use gale_ioloop::IOLoop;
use std::sync::{Mutex, Once};

/// The backends every test runs on.
pub fn backends() -> Vec<&'static str> {
    gale_poller::BACKENDS.to_vec()
}

/// Runs `test` once per backend with a fresh loop on that backend.
pub fn each_backend(test: impl Fn(IOLoop)) {
    init_logger();
    for name in backends() {
        let io_loop = IOLoop::with_poller(gale_poller::by_name(name).unwrap());
        eprintln!("-- backend {name}");
        test(io_loop);
    }
}

static LOGS: Mutex<Vec<String>> = Mutex::new(Vec::new());

struct Capture;

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        if record.level() <= log::Level::Warn {
            LOGS.lock().unwrap().push(format!("{} {}", record.level(), record.args()));
        }
    }
    fn flush(&self) {}
}

/// Installs a logger that keeps warnings and errors for [`logs_containing`].
pub fn init_logger() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        log::set_logger(&Capture).unwrap();
        log::set_max_level(log::LevelFilter::Warn);
    });
}

/// The captured log lines containing `needle`.
pub fn logs_containing(needle: &str) -> Vec<String> {
    LOGS.lock().unwrap().iter().filter(|l| l.contains(needle)).cloned().collect()
}

/// Resident memory of this process in KiB.
pub fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}
