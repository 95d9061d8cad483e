//! Parsers for what the benchmark tools print: the `NAME key=value …` lines of the peers' `bench.sh` and
//! `instr_per_req.py`, wrk's text report, and the kernel's `/proc` files the harness samples.

use std::collections::BTreeMap;

/// One `NAME key=value key=value …` line, as `bench.sh` appends to its results and details files and as
/// `instr_per_req.py` prints. Words without `=` after the name are ignored.
#[derive(Clone, Debug, PartialEq)]
pub struct KvLine {
    /// The first word: the server's name.
    pub name: String,
    fields: BTreeMap<String, String>,
}

impl KvLine {
    /// Parses one line; `None` for a blank line or a `#` comment.
    pub fn parse(line: &str) -> Option<KvLine> {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            return None;
        }
        let mut words = line.split_whitespace();
        let name = words.next()?.to_owned();
        let fields = words
            .filter_map(|w| w.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect::<BTreeMap<_, _>>();
        Some(KvLine { name, fields })
    }

    /// Every line of `text` that parses.
    pub fn parse_all(text: &str) -> Vec<KvLine> {
        text.lines().filter_map(KvLine::parse).collect()
    }

    /// The raw value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields.get(key).map(String::as_str)
    }

    /// The value of `key` as a finite number; `None` when absent, `NA` or not a number.
    pub fn number(&self, key: &str) -> Option<f64> {
        self.get(key)?.parse::<f64>().ok().filter(|v| v.is_finite())
    }
}

/// The figures of one wrk run, read from its text report (wrk 4.x with `--latency`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WrkReport {
    /// Completed requests (`N requests in T`).
    pub requests: Option<u64>,
    /// `Requests/sec:`.
    pub rps: Option<f64>,
    /// The 50 % line of `Latency Distribution`, in milliseconds.
    pub p50_ms: Option<f64>,
    /// The 99 % line of `Latency Distribution`, in milliseconds.
    pub p99_ms: Option<f64>,
    /// Sum of the `Socket errors:` counts (connect, read, write, timeout); 0 when wrk printed none.
    pub socket_errors: u64,
    /// `Non-2xx or 3xx responses:`; 0 when wrk printed none.
    pub non_2xx: u64,
}

impl WrkReport {
    /// Parses wrk's report. Lines it does not know are skipped, so a failed run yields `None` figures.
    pub fn parse(text: &str) -> WrkReport {
        let mut report = WrkReport::default();
        for line in text.lines() {
            let line = line.trim();
            let mut words = line.split_whitespace();
            match words.next() {
                Some("Requests/sec:") => report.rps = words.next().and_then(|v| v.parse().ok()),
                Some("50%") => report.p50_ms = words.next().and_then(wrk_time_ms),
                Some("99%") => report.p99_ms = words.next().and_then(wrk_time_ms),
                Some("Socket") if line.starts_with("Socket errors:") => {
                    // "Socket errors: connect 0, read 0, write 0, timeout 12"
                    report.socket_errors = line.split([',', ' ']).filter_map(|w| w.parse::<u64>().ok()).sum();
                }
                Some("Non-2xx") => {
                    report.non_2xx = line.rsplit(' ').next().and_then(|v| v.parse().ok()).unwrap_or(0);
                }
                Some(count) if words.next() == Some("requests") && words.next() == Some("in") => {
                    report.requests = count.parse().ok();
                }
                _ => {}
            }
        }
        report
    }
}

/// A wrk duration (`812.00us`, `1.23ms`, `2.00s`, `1.05m`) in milliseconds.
pub fn wrk_time_ms(text: &str) -> Option<f64> {
    let (number, scale) = if let Some(n) = text.strip_suffix("us") {
        (n, 1e-3)
    } else if let Some(n) = text.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1e3)
    } else if let Some(n) = text.strip_suffix('m') {
        (n, 60e3)
    } else if let Some(n) = text.strip_suffix('h') {
        (n, 3600e3)
    } else {
        return None;
    };
    number.parse::<f64>().ok().filter(|v| v.is_finite()).map(|v| v * scale)
}

/// CPU time in clock ticks from the text of `/proc/PID/stat`: `(own, children)`, each user plus system.
/// `children` counts the children the process has waited for.
///
/// The command name (field 2) is parenthesised and may itself contain spaces and parentheses, so fields are
/// counted from the last `)`: `utime`, `stime`, `cutime` and `cstime` are fields 14 to 17.
pub fn proc_pid_cpu_ticks(stat: &str) -> Option<(u64, u64)> {
    let after_comm = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    // fields[0] is field 3 (state), so field N is fields[N - 3].
    let field = |n: usize| -> Option<u64> { fields.get(n - 3)?.parse().ok() };
    Some((field(14)? + field(15)?, field(16)? + field(17)?))
}

/// Busy clock ticks summed over all CPUs (user, nice, system, irq, softirq, steal) from the text of
/// `/proc/stat`: the same sum `bench.sh` uses to decide whether the machine is quiet.
pub fn proc_stat_busy_ticks(stat: &str) -> Option<u64> {
    let line = stat.lines().find(|l| l.split_whitespace().next() == Some("cpu"))?;
    let v: Vec<u64> = line.split_whitespace().skip(1).map(|w| w.parse().ok()).collect::<Option<_>>()?;
    // user nice system idle iowait irq softirq steal …
    Some(v.first()? + v.get(1)? + v.get(2)? + v.get(5)? + v.get(6)? + v.get(7)?)
}

/// The `version` of package `name` in a `Cargo.lock` (the first entry when several versions are locked).
pub fn cargo_lock_version(lock: &str, name: &str) -> Option<String> {
    let wanted = format!("name = \"{name}\"");
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line.trim() == wanted {
            let version = lines.next()?.trim().strip_prefix("version = \"")?.strip_suffix('"')?;
            return Some(version.to_owned());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const WRK: &str = "\
Running 6s test @ http://127.0.0.1:18080/
  1 threads and 1024 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     9.37ms    2.10ms  45.01ms   91.20%
    Req/Sec   109.02k     5.01k  118.33k    70.00%
  Latency Distribution
     50%    9.02ms
     75%    9.81ms
     90%   10.90ms
     99%   17.00ms
  650887 requests in 6.01s, 81.31MB read
  Socket errors: connect 0, read 3, write 0, timeout 12
  Non-2xx or 3xx responses: 7
Requests/sec: 108300.67
Transfer/sec:     13.53MB
";

    #[test]
    fn wrk_report_yields_rate_percentiles_and_errors() {
        let r = WrkReport::parse(WRK);
        assert_eq!(r.requests, Some(650_887));
        assert_eq!(r.rps, Some(108_300.67));
        assert_eq!(r.p50_ms, Some(9.02));
        assert_eq!(r.p99_ms, Some(17.0));
        assert_eq!(r.socket_errors, 15);
        assert_eq!(r.non_2xx, 7);
    }

    #[test]
    fn wrk_report_of_a_failed_run_has_no_figures() {
        let r = WrkReport::parse("unable to connect to 127.0.0.1:18080 Connection refused\n");
        assert_eq!(r, WrkReport::default());
    }

    #[test]
    fn wrk_times_convert_to_milliseconds() {
        assert_eq!(wrk_time_ms("812.00us"), Some(0.812));
        assert_eq!(wrk_time_ms("1.23ms"), Some(1.23));
        assert_eq!(wrk_time_ms("2.00s"), Some(2000.0));
        assert_eq!(wrk_time_ms("1.50m"), Some(90_000.0));
        assert_eq!(wrk_time_ms("0.00us"), Some(0.0));
        assert_eq!(wrk_time_ms("12"), None);
        assert_eq!(wrk_time_ms("fast"), None);
    }

    #[test]
    fn kv_line_reads_numbers_and_treats_na_as_missing() {
        let line = KvLine::parse("hyper plaintext=129646 pipelined=NA p99_ms=0.641 note").unwrap();
        assert_eq!(line.name, "hyper");
        assert_eq!(line.number("plaintext"), Some(129_646.0));
        assert_eq!(line.number("pipelined"), None);
        assert_eq!(line.get("pipelined"), Some("NA"));
        assert_eq!(line.number("p99_ms"), Some(0.641));
        assert_eq!(line.get("note"), None);
        assert_eq!(KvLine::parse("   "), None);
        assert_eq!(KvLine::parse("# comment"), None);
        assert_eq!(KvLine::parse_all("a x=1\n\nb y=2\n").len(), 2);
    }

    #[test]
    fn pid_stat_cpu_ticks_survive_odd_command_names() {
        let stat = "4242 (a (b) c) S 1 4242 4242 0 -1 4194560 500 0 0 0 150 25 7 3 20 0 1 0 100 1000 200";
        assert_eq!(proc_pid_cpu_ticks(stat), Some((175, 10)));
        assert_eq!(proc_pid_cpu_ticks("4242 (x) S 1"), None);
    }

    #[test]
    fn proc_stat_busy_ticks_leave_out_idle_and_iowait() {
        let stat = "cpu  100 2 30 9000 50 4 6 1 0 0\ncpu0 50 1 15 4500 25 2 3 0 0 0\n";
        assert_eq!(proc_stat_busy_ticks(stat), Some(143));
        assert_eq!(proc_stat_busy_ticks("intr 1 2 3\n"), None);
    }

    #[test]
    fn cargo_lock_versions_are_found_by_exact_name() {
        let lock = "[[package]]\nname = \"hyper-util\"\nversion = \"0.1.21\"\n\n[[package]]\nname = \"hyper\"\nversion = \"1.12.0\"\n";
        assert_eq!(cargo_lock_version(lock, "hyper").as_deref(), Some("1.12.0"));
        assert_eq!(cargo_lock_version(lock, "hyper-util").as_deref(), Some("0.1.21"));
        assert_eq!(cargo_lock_version(lock, "tokio"), None);
    }
}
