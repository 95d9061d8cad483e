//! The sweep's Markdown report and its SVG chart: p99 latency and server CPU per ordinary request against
//! the number of standing connections, one line per backend.

use crate::run::Outcome;
use plotters::prelude::*;
use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

/// Line colour of each backend, the same in both panels.
fn colour(backend: &str) -> RGBColor {
    match backend {
        "epoll" => RGBColor(31, 119, 180),
        "poll" => RGBColor(255, 127, 14),
        "select" => RGBColor(44, 160, 44),
        _ => RGBColor(127, 127, 127),
    }
}

/// The backends of `outcomes`, in the order they first appear.
fn backends(outcomes: &[Outcome]) -> Vec<&str> {
    let mut names: Vec<&str> = Vec::new();
    for o in outcomes {
        if !names.contains(&o.backend.as_str()) {
            names.push(&o.backend);
        }
    }
    names
}

/// One run per configuration (backend and N): of repeated runs, the median by server CPU per ordinary request
/// with every connection held, the figure the comparison rests on. In the order configurations first appear.
pub fn medians(outcomes: &[Outcome]) -> Vec<Outcome> {
    let mut groups: Vec<Vec<&Outcome>> = Vec::new();
    for o in outcomes {
        match groups.iter_mut().find(|g| g[0].backend == o.backend && g[0].conns == o.conns) {
            Some(g) => g.push(o),
            None => groups.push(vec![o]),
        }
    }
    groups
        .into_iter()
        .map(|mut g| {
            g.sort_by(|a, b| a.loaded.cpu_us_per_request.total_cmp(&b.loaded.cpu_us_per_request));
            g[(g.len() - 1) / 2].clone()
        })
        .collect()
}

/// `1234567` → `1,234,567`.
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A duration in µs, with the precision it deserves.
fn micros(us: f64) -> String {
    if us >= 100.0 { thousands(us.round() as usize) } else { format!("{us:.1}") }
}

/// Renders the two-panel chart as an SVG document.
///
/// # Errors
///
/// When there is nothing to plot, or plotters reports a drawing error.
pub fn chart_svg(outcomes: &[Outcome]) -> Result<String, String> {
    let outcomes = &medians(outcomes)[..];
    type Pick = fn(&Outcome) -> f64;
    let panels: [(&str, Pick); 2] = [
        ("p99 of an ordinary GET (µs)", |o| o.loaded.p99_us),
        ("server CPU per ordinary GET (µs)", |o| o.loaded.cpu_us_per_request),
    ];
    let xs: Vec<f64> = outcomes.iter().map(|o| o.conns as f64).filter(|&x| x > 0.0).collect();
    let (x_lo, x_hi) = span(xs.iter().copied()).ok_or("no run with standing connections to plot")?;
    let mut x_ticks = xs.clone();
    x_ticks.sort_by(f64::total_cmp);
    x_ticks.dedup();

    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (1100, 460)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let root = root
            .titled("Ordinary requests beside N standing connections, one worker", ("sans-serif", 22))
            .map_err(|e| e.to_string())?;
        let (left, right) = root.split_horizontally(550);
        for ((title, pick), area) in panels.iter().zip([left, right]) {
            let ys = outcomes.iter().filter(|o| o.conns > 0).map(pick).filter(|&y| y > 0.0);
            let (y_lo, y_hi) = span(ys).ok_or_else(|| format!("nothing to plot for {title}"))?;
            let mut chart = ChartBuilder::on(&area)
                .caption(*title, ("sans-serif", 16))
                .margin(14)
                .x_label_area_size(42)
                .y_label_area_size(64)
                .build_cartesian_2d(
                    ((x_lo / 1.5)..(x_hi * 1.5)).log_scale().with_key_points(x_ticks.clone()),
                    ((y_lo / 2.0)..(y_hi * 2.0)).log_scale(),
                )
                .map_err(|e| e.to_string())?;
            chart
                .configure_mesh()
                .x_desc("standing connections")
                .x_label_formatter(&|x| thousands(x.round() as usize))
                .y_label_formatter(&|y| if *y >= 10.0 { thousands(y.round() as usize) } else { format!("{y:.1}") })
                .label_style(("sans-serif", 13))
                .draw()
                .map_err(|e| e.to_string())?;
            for backend in backends(outcomes) {
                let mut line: Vec<(f64, f64)> = outcomes
                    .iter()
                    .filter(|o| o.backend == backend && o.conns > 0)
                    .map(|o| (o.conns as f64, pick(o)))
                    .filter(|&(_, y)| y > 0.0)
                    .collect();
                line.sort_by(|a, b| a.0.total_cmp(&b.0));
                let c = colour(backend);
                chart
                    .draw_series(LineSeries::new(line.iter().copied(), c.stroke_width(2)))
                    .map_err(|e| e.to_string())?
                    .label(backend)
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
                chart.draw_series(line.iter().map(|&p| Circle::new(p, 3, c.filled()))).map_err(|e| e.to_string())?;
            }
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperLeft)
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .label_font(("sans-serif", 13))
                .draw()
                .map_err(|e| e.to_string())?;
        }
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

fn span(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    values.fold(None, |acc, v| match acc {
        None => Some((v, v)),
        Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
    })
}

/// Server CPU per ordinary request added by each standing connection, ns: the slope between the smallest and
/// the largest N of a backend. Near zero for an O(active) poller, the per-fd cost of a wait for O(registered).
fn cpu_slope_ns<'a>(outcomes: &'a [Outcome], backend: &str) -> Option<(f64, &'a Outcome, &'a Outcome)> {
    let runs = || outcomes.iter().filter(|o| o.backend == backend);
    let lo = runs().min_by_key(|o| o.conns)?;
    let hi = runs().max_by_key(|o| o.conns)?;
    (hi.conns > lo.conns).then(|| {
        let slope = (hi.loaded.cpu_us_per_request - lo.loaded.cpu_us_per_request) * 1e3 / (hi.conns - lo.conns) as f64;
        (slope, lo, hi)
    })
}

/// What the report says about where it was made.
#[derive(Debug)]
pub struct Machine {
    /// The date, `YYYY-MM-DD` (UTC).
    pub date: String,
    /// Cores available to the run.
    pub cores: usize,
    /// The CPU model.
    pub cpu: String,
    /// The kernel release.
    pub kernel: String,
    /// The load average when the sweep started (1, 5, 15 minutes): other work sharing the cores.
    pub load: String,
}

impl Machine {
    /// This machine, today.
    pub fn detect() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .and_then(|v| v.split_once(':'))
            .map_or_else(|| "unknown CPU".to_owned(), |(_, v)| v.trim().to_owned());
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim().to_owned();
        let loadavg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
        let load = loadavg.split_whitespace().take(3).collect::<Vec<_>>().join(" ");
        let days = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() / 86_400) as i64;
        let (y, m, d) = civil_from_days(days);
        Machine {
            date: format!("{y:04}-{m:02}-{d:02}"),
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu,
            kernel,
            load,
        }
    }

    /// The report's file name without extension, after the convention of `benches/report/`.
    pub fn stem(&self) -> String {
        format!("c10k-{}-{}core", self.date, self.cores)
    }
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
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

/// The Markdown report of a sweep; `command` is how it was run, `chart` the SVG's file name.
pub fn markdown(machine: &Machine, command: &str, chart: &str, outcomes: &[Outcome]) -> String {
    let mut md = String::new();
    let w = &mut md;
    let all = outcomes;
    let outcomes = &medians(all)[..];
    let repeat = all.len().div_ceil(outcomes.len().max(1));
    let requests = outcomes.first().map_or(0, |o| o.requests);
    let _ = writeln!(w, "# C10K — {}, {} cores\n", machine.date, machine.cores);
    let _ = writeln!(
        w,
        "{} · Linux {} · load average {} at the start · `{command}`\n",
        machine.cpu, machine.kernel, machine.load
    );
    let _ = writeln!(
        w,
        "One gale-web worker (one loop, one thread, in a child process measured through `/proc/PID`) holds N \
         standing connections — half long polls (`POST /wait`, answered at the release), half websockets \
         (upgraded, each echoing one message) — while the driver sends {} ordinary `GET /` one after another on \
         a keep-alive connection and times them. Then `POST /release` answers every long poll, every websocket \
         is closed with a close handshake, and the server must come back to its baseline: the same fd count, \
         no long-poll or websocket handler alive, the same connections, loop tasks and timers. Server CPU is \
         the scheduler's count (`/proc/PID/task/*/schedstat`) over the timed requests. Memory is the growth of \
         the server's resident set (user space; the kernel's socket buffers are not in it). \
         The same requests are timed first with no standing connection (\"idle\"), on the same server moments \
         before: the ratio of the two CPU figures depends less on how fast a shared machine happens to be.\n",
        thousands(requests)
    );
    if repeat > 1 {
        let _ = writeln!(
            w,
            "Each configuration ran {repeat} times, each time against a fresh server process; the tables and \
             the chart show the median run by server CPU per ordinary request with every connection held, and \
             every run had to pass the leak check.\n"
        );
    }

    let Some(largest) = outcomes.iter().map(|o| o.conns).max() else {
        let _ = writeln!(w, "No run completed.");
        return md;
    };
    let _ = writeln!(w, "## {} standing connections\n", thousands(largest));
    let _ = writeln!(
        w,
        "| backend | long polls answered | websockets echoed / closed | KiB per long poll | KiB per websocket | \
         KiB per connection | p50 / p99 idle (µs) | p50 / p99 held (µs) | CPU per GET idle → held (µs) | \
         open (s) |"
    );
    let _ = writeln!(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for o in outcomes.iter().filter(|o| o.conns == largest) {
        let _ = writeln!(
            w,
            "| {} | {}/{} | {}/{} / {} | {:.2} | {:.2} | {:.2} | {} / {} | {} / {} | {} → {} | {:.1} |",
            o.backend,
            thousands(o.long_polls_answered),
            thousands(o.long_polls),
            thousands(o.websockets_echoed),
            thousands(o.websockets),
            thousands(o.websockets_closed),
            o.memory.kib_per_long_poll,
            o.memory.kib_per_websocket,
            o.memory.kib_per_conn,
            micros(o.idle.p50_us),
            micros(o.idle.p99_us),
            micros(o.loaded.p50_us),
            micros(o.loaded.p99_us),
            micros(o.idle.cpu_us_per_request),
            micros(o.loaded.cpu_us_per_request),
            o.open_seconds,
        );
    }

    let _ =
        writeln!(w, "\n## Sweep\n\n![p99 and server CPU per ordinary request against standing connections]({chart})\n");
    let _ = writeln!(
        w,
        "| backend | standing | p50 (µs) | p99 (µs) | max (µs) | server CPU per GET (µs) | CPU ÷ idle CPU | \
         KiB per connection |"
    );
    let _ = writeln!(w, "|---|---:|---:|---:|---:|---:|---:|---:|");
    for backend in backends(outcomes) {
        let mut runs: Vec<&Outcome> = outcomes.iter().filter(|o| o.backend == backend).collect();
        runs.sort_by_key(|o| o.conns);
        for o in runs {
            let _ = writeln!(
                w,
                "| {} | {} | {} | {} | {} | {} | {:.1} | {:.2} |",
                o.backend,
                thousands(o.conns),
                micros(o.loaded.p50_us),
                micros(o.loaded.p99_us),
                micros(o.loaded.max_us),
                micros(o.loaded.cpu_us_per_request),
                o.loaded.cpu_us_per_request / o.idle.cpu_us_per_request.max(f64::MIN_POSITIVE),
                o.memory.kib_per_conn,
            );
        }
    }
    let _ = writeln!(w, "\nServer CPU per ordinary request added by each standing connection (slope of the sweep):\n");
    for backend in backends(outcomes) {
        if let Some((slope, lo, hi)) = cpu_slope_ns(outcomes, backend) {
            let _ = writeln!(
                w,
                "- **{backend}**: {} µs at {} → {} µs at {}: {slope:.2} ns per standing connection",
                micros(lo.loaded.cpu_us_per_request),
                thousands(lo.conns),
                micros(hi.loaded.cpu_us_per_request),
                thousands(hi.conns),
            );
        }
    }

    let _ = writeln!(w, "\n## Release and leak check\n");
    let _ = writeln!(
        w,
        "| backend | standing | fds before → held → after | RSS KiB before → held → after each release | \
         server before → after (long polls, websockets, connections, tasks, timers) | runs passed |"
    );
    let _ = writeln!(w, "|---|---:|---|---|---|---|");
    for o in outcomes {
        let runs = || all.iter().filter(|r| r.backend == o.backend && r.conns == o.conns);
        let s = |x: &crate::server::Stats| {
            format!("{}, {}, {}, {}, {}", x.long_polls, x.websockets, x.connections, x.tasks, x.timers)
        };
        let _ = writeln!(
            w,
            "| {} | {} | {} → {} → {} | {} → {} → {} | {} → {} | {}/{} |",
            o.backend,
            thousands(o.conns),
            o.baseline.fds,
            thousands(o.held.fds),
            o.after.fds,
            thousands(o.baseline.rss_kib as usize),
            thousands(o.held.rss_kib as usize),
            o.rss_after_release_kib.iter().map(|&k| thousands(k as usize)).collect::<Vec<_>>().join(", "),
            s(&o.baseline.server),
            s(&o.after.server),
            runs().filter(|r| r.passed()).count(),
            runs().count(),
        );
    }
    for r in all.iter().filter(|r| !r.passed()) {
        let _ = writeln!(w, "\n**FAIL** {} with {}: {}", r.backend, thousands(r.conns), r.failures.join("; "));
    }
    let _ = writeln!(
        w,
        "\nRSS after a release is not expected to fall back: the allocator keeps the freed memory for reuse. \
         What is checked is that it is reused: each run holds and releases its connections {} times on the \
         same server, and resident memory after the last release may exceed that after the first by no more \
         than a tenth of what the connections took (or 256 KiB). The fd count and the server's own accounting \
         must come back exactly, after every release.",
        outcomes.first().map_or(0, |o| o.cycles)
    );
    md
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::{Latency, Memory, Snapshot};

    fn outcome(backend: &str, conns: usize, p99: f64, cpu: f64) -> Outcome {
        Outcome {
            backend: backend.into(),
            conns,
            long_polls: conns / 2,
            websockets: conns / 2,
            requests: 100,
            cycles: 2,
            open_seconds: 1.0,
            baseline: Snapshot::default(),
            with_long_polls: Snapshot::default(),
            held: Snapshot::default(),
            after: Snapshot::default(),
            rss_after_release_kib: vec![0, 0],
            memory: Memory::default(),
            idle: Latency::default(),
            loaded: Latency { p50_us: p99 / 2.0, p99_us: p99, max_us: p99, cpu_us_per_request: cpu },
            websockets_upgraded: conns / 2,
            websockets_echoed: conns / 2,
            woken: conns / 2,
            long_polls_answered: conns / 2,
            websockets_closed: conns / 2,
            failures: Vec::new(),
        }
    }

    #[test]
    fn medians_pick_the_middle_run_of_each_configuration() {
        let runs = [
            outcome("poll", 100, 1.0, 30.0),
            outcome("poll", 100, 2.0, 10.0),
            outcome("epoll", 100, 3.0, 5.0),
            outcome("poll", 100, 3.0, 20.0),
        ];
        let m = medians(&runs);
        assert_eq!(m.len(), 2);
        assert_eq!((m[0].backend.as_str(), m[0].loaded.cpu_us_per_request), ("poll", 20.0));
        assert_eq!((m[1].backend.as_str(), m[1].loaded.cpu_us_per_request), ("epoll", 5.0));
    }

    #[test]
    fn numbers_are_grouped_and_rounded() {
        assert_eq!(thousands(10_000), "10,000");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(micros(14.26), "14.3");
        assert_eq!(micros(5825.4), "5,825");
    }

    #[test]
    fn dates_are_civil() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_517), (2026, 3, 5));
    }

    #[test]
    fn slope_is_cpu_per_standing_connection() {
        let runs = [outcome("poll", 100, 50.0, 10.0), outcome("poll", 10_100, 900.0, 5_010.0)];
        let (slope, lo, hi) = cpu_slope_ns(&runs, "poll").unwrap();
        assert!((slope - 500.0).abs() < 1e-9, "{slope}");
        assert_eq!((lo.conns, hi.conns), (100, 10_100));
        assert!(cpu_slope_ns(&runs[..1], "poll").is_none());
    }

    #[test]
    fn chart_has_a_line_per_backend_in_each_panel() {
        let runs = [
            outcome("epoll", 100, 20.0, 10.0),
            outcome("epoll", 10_000, 22.0, 11.0),
            outcome("poll", 100, 25.0, 12.0),
            outcome("poll", 10_000, 6_000.0, 5_000.0),
        ];
        let svg = chart_svg(&runs).unwrap();
        assert!(svg.starts_with("<svg"), "{svg}");
        for c in [colour("epoll"), colour("poll")] {
            let stroke = format!(r##"stroke="#{:02X}{:02X}{:02X}" stroke-width="2""##, c.0, c.1, c.2);
            // Per panel: the line and the legend sample.
            assert_eq!(svg.matches(&stroke).count(), 4, "{stroke} in {svg}");
        }
        assert!(svg.contains("10,000"), "x axis labelled at the sweep points");
    }

    #[test]
    fn report_lists_every_run_and_flags_failures() {
        let mut failed = outcome("select", 10_000, 8_000.0, 4_000.0);
        failed.failures.push("fds: 8 before, 9 after the release".into());
        let runs = [outcome("epoll", 10_000, 20.0, 10.0), failed];
        let machine = Machine {
            date: "2026-11-25".into(),
            cores: 2,
            cpu: "cpu".into(),
            kernel: "6.1".into(),
            load: "0.5 0.4 0.3".into(),
        };
        let md = markdown(&machine, "c10k --sweep", "chart.svg", &runs);
        assert!(md.contains("## 10,000 standing connections"), "{md}");
        assert!(md.contains("| epoll | 10,000 |"), "{md}");
        assert!(md.contains("**FAIL** select with 10,000: fds: 8 before, 9 after the release"), "{md}");
        assert_eq!(md.matches("| 1/1 |").count(), 1, "{md}");
        assert_eq!(md.matches("| 0/1 |").count(), 1, "{md}");
    }
}
