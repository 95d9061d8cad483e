//! What Linux's `/proc/PID` says about the server process: resident memory, open fds, CPU time.

use std::io;
use std::time::Duration;

/// Resident memory of `pid` in KiB (`VmRSS`).
///
/// # Errors
///
/// If the process is gone or the field is missing.
pub fn rss_kib(pid: u32) -> io::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status_field(&status, "VmRSS:").ok_or_else(|| io::Error::other("no VmRSS in /proc/PID/status"))
}

/// A `kB` field of `/proc/PID/status`.
fn status_field(status: &str, key: &str) -> Option<u64> {
    status.lines().find_map(|l| l.strip_prefix(key)).and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// The number of open fds of `pid`.
///
/// # Errors
///
/// If the process is gone.
pub fn fd_count(pid: u32) -> io::Result<usize> {
    Ok(std::fs::read_dir(format!("/proc/{pid}/fd"))?.count())
}

/// CPU time `pid` has used, user and system, all threads.
///
/// From the scheduler's nanosecond counters (`/proc/PID/task/*/schedstat`) where the kernel keeps them, else
/// from `utime + stime` of `/proc/PID/stat`, whose clock ticks (10 ms) are too coarse for one request but
/// fine for thousands.
///
/// # Errors
///
/// If the process is gone.
pub fn cpu_time(pid: u32) -> io::Result<Duration> {
    match schedstat_ns(pid) {
        Ok(ns) => Ok(Duration::from_nanos(ns)),
        Err(_) => stat_ticks(pid).map(|t| Duration::from_secs_f64(t as f64 / clock_ticks_per_second())),
    }
}

fn schedstat_ns(pid: u32) -> io::Result<u64> {
    let mut total = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let text = std::fs::read_to_string(task?.path().join("schedstat"))?;
        total += text
            .split_whitespace()
            .next()
            .and_then(|ns| ns.parse::<u64>().ok())
            .ok_or_else(|| io::Error::other(format!("schedstat {text:?}")))?;
    }
    Ok(total)
}

fn stat_ticks(pid: u32) -> io::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    parse_stat_ticks(&stat).ok_or_else(|| io::Error::other(format!("/proc/{pid}/stat: {stat:?}")))
}

/// `utime + stime` (fields 14 and 15) of a `/proc/PID/stat` line; the command name in parentheses may hold
/// spaces, so fields are counted from the last `)`.
fn parse_stat_ticks(stat: &str) -> Option<u64> {
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

fn clock_ticks_per_second() -> f64 {
    rustix::param::clock_ticks_per_second() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_ticks_count_fields_after_the_command_name() {
        let stat = "4242 (a (weird) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 37 5 0 0 20 0 1 0 12345 1000 200";
        assert_eq!(parse_stat_ticks(stat), Some(42));
        assert_eq!(parse_stat_ticks("garbage"), None);
    }

    #[test]
    fn status_fields_are_read_in_kib() {
        let status = "Name:\tc10k\nVmHWM:\t  9000 kB\nVmRSS:\t  8192 kB\nThreads:\t1\n";
        assert_eq!(status_field(status, "VmRSS:"), Some(8192));
        assert_eq!(status_field(status, "VmSwap:"), None);
    }

    #[test]
    fn this_process_is_visible() {
        let pid = std::process::id();
        assert!(rss_kib(pid).unwrap() > 0);
        let fds = fd_count(pid).unwrap();
        let file = std::fs::File::open("/proc/self/status").unwrap();
        assert_eq!(fd_count(pid).unwrap(), fds + 1);
        drop(file);
        let before = cpu_time(pid).unwrap();
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
        }
        assert!(cpu_time(pid).unwrap() > before, "{x}");
    }
}
