//! The benchmark report: the figures collected per server and their rendering as Markdown, every figure
//! beside its ratio to the baseline server (gale's HTTP/1.1 server).

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// The load scenarios of the peers' `bench.sh`, in its order (the idle-memory scenario is reported apart).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scenario {
    /// `GET /`, 64 keep-alive connections.
    Plaintext,
    /// `GET /`, 64 connections, 16 requests per write.
    Pipelined,
    /// `GET /json`, 64 keep-alive connections.
    Json,
    /// `GET /`, 1,024 keep-alive connections.
    C1024,
}

impl Scenario {
    /// All scenarios, in `bench.sh`'s order.
    pub const ALL: [Scenario; 4] = [Scenario::Plaintext, Scenario::Pipelined, Scenario::Json, Scenario::C1024];

    /// The name `bench.sh` uses (`scenario=…`, `cpu_us_…`).
    pub fn key(self) -> &'static str {
        match self {
            Scenario::Plaintext => "plaintext",
            Scenario::Pipelined => "pipelined",
            Scenario::Json => "json",
            Scenario::C1024 => "c1024",
        }
    }

    /// The column heading.
    fn heading(self) -> &'static str {
        match self {
            Scenario::Plaintext => "plaintext",
            Scenario::Pipelined => "pipelined ×16",
            Scenario::Json => "json",
            Scenario::C1024 => "1,024 conns",
        }
    }
}

/// The figures of one scenario for one server.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ScenarioFigures {
    /// Requests per second (wrk).
    pub rps: Option<f64>,
    /// Median latency, ms (wrk's corrected histogram); `None` when wrk's percentiles are invalid.
    pub p50_ms: Option<f64>,
    /// 99th percentile latency, ms; `None` when invalid.
    pub p99_ms: Option<f64>,
    /// Server CPU time per request, µs.
    pub cpu_us_per_req: Option<f64>,
    /// Server CPU use during the run, % of one core.
    pub server_cpu_pct: Option<f64>,
    /// wrk's CPU use during the run, % of one core.
    pub wrk_cpu_pct: Option<f64>,
    /// CPU used by other processes during the run, % of one core.
    pub other_pct: Option<f64>,
    /// Socket errors plus non-2xx responses.
    pub errors: Option<f64>,
}

impl ScenarioFigures {
    /// Whether other processes used enough CPU during the run to disturb it.
    pub fn disturbed(&self) -> bool {
        self.other_pct.is_some_and(|p| p > DISTURBED_PCT)
    }
}

/// One point of the connection sweep.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SweepPoint {
    /// Open connections (wrk `-c`).
    pub conns: u32,
    /// Requests per second.
    pub rps: Option<f64>,
    /// Median latency, ms.
    pub p50_ms: Option<f64>,
    /// 99th percentile latency, ms.
    pub p99_ms: Option<f64>,
    /// Socket errors plus non-2xx responses.
    pub errors: u64,
    /// Server CPU time per request, µs.
    pub cpu_us_per_req: Option<f64>,
    /// CPU used by other processes during the run, % of one core.
    pub other_pct: Option<f64>,
}

impl SweepPoint {
    /// Whether other processes used enough CPU during the run to disturb it.
    pub fn disturbed(&self) -> bool {
        self.other_pct.is_some_and(|p| p > DISTURBED_PCT)
    }
}

/// Above this share of one core used by other processes during a measurement, its figures are marked.
pub const DISTURBED_PCT: f64 = 15.0;

/// Everything measured for one server.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ServerFigures {
    /// The server's name (`gale_http1`, `hyper`, …).
    pub name: String,
    /// What it is.
    pub about: String,
    /// The command it ran as (paths relative to the workspace root).
    pub command: String,
    /// The `bench.sh` scenarios.
    pub scenarios: BTreeMap<Scenario, ScenarioFigures>,
    /// Server memory per idle keep-alive connection, KiB.
    pub idle_kib_per_conn: Option<f64>,
    /// User-space instructions per request, one request at a time (callgrind).
    pub instr_per_req_seq: Option<f64>,
    /// User-space instructions per request, pipelined (callgrind).
    pub instr_per_req_pipe: Option<f64>,
    /// The connection sweep, in increasing connection count.
    pub sweep: Vec<SweepPoint>,
    /// What went wrong while measuring it.
    pub problems: Vec<String>,
}

impl ServerFigures {
    fn scenario(&self, scenario: Scenario) -> Option<&ScenarioFigures> {
        self.scenarios.get(&scenario)
    }

    fn sweep_at(&self, conns: u32) -> Option<&SweepPoint> {
        self.sweep.iter().find(|p| p.conns == conns)
    }
}

/// A whole report.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// First heading.
    pub title: String,
    /// One paragraph under the title: how the run was made.
    pub summary: String,
    /// Machine description, `(what, value)` rows.
    pub machine: Vec<(String, String)>,
    /// The commands run, one per entry (shell syntax).
    pub commands: Vec<String>,
    /// Servers in table order; the baseline is the one named `baseline`.
    pub servers: Vec<ServerFigures>,
    /// The server every ratio is relative to.
    pub baseline: String,
    /// Charts beside the report: `(file name, caption)`.
    pub charts: Vec<(String, String)>,
    /// Sections of raw harness output: `(heading, text)`.
    pub raw: Vec<(String, String)>,
}

/// Which way a figure improves, for the reading guide under each table.
#[derive(Clone, Copy)]
enum Better {
    Higher,
    Lower,
}

impl Better {
    fn note(self) -> &'static str {
        match self {
            Better::Higher => "higher is better",
            Better::Lower => "lower is better",
        }
    }
}

impl Report {
    /// Renders the report as GitHub-flavoured Markdown.
    pub fn to_markdown(&self) -> String {
        let mut md = String::new();
        let _ = writeln!(md, "# {}\n\n{}\n", self.title, self.summary);
        self.machine_section(&mut md);
        self.servers_section(&mut md);
        self.figures_sections(&mut md);
        self.sweep_section(&mut md);
        md.push_str(CAVEATS);
        self.problems_section(&mut md);
        self.commands_section(&mut md);
        for (heading, text) in &self.raw {
            let _ = writeln!(
                md,
                "\n<details><summary>{heading}</summary>\n\n```text\n{}\n```\n\n</details>",
                text.trim_end()
            );
        }
        md
    }

    fn base(&self) -> Option<&ServerFigures> {
        self.servers.iter().find(|s| s.name == self.baseline)
    }

    fn machine_section(&self, md: &mut String) {
        md.push_str("## Machine\n\n| | |\n|---|---|\n");
        for (what, value) in &self.machine {
            let _ = writeln!(md, "| {what} | {value} |");
        }
    }

    fn servers_section(&self, md: &mut String) {
        md.push_str(
            "\n## Servers\n\nEach runs one worker thread (one event loop) pinned to core 0; wrk runs one thread on \
             core 1. Commands run in the copy of the peers folder, `target/peers-src`.\n\n",
        );
        md.push_str("| server | what | command |\n|---|---|---|\n");
        for s in &self.servers {
            let _ = writeln!(md, "| {} | {} | `{}` |", s.name, s.about, s.command);
        }
    }

    fn figures_sections(&self, md: &mut String) {
        let _ = writeln!(
            md,
            "\nEvery cell is `value (ratio)`, ratio = value ÷ {}'s value; NA: not measured or invalid.",
            self.baseline
        );

        let columns: Vec<Column<'_>> = Scenario::ALL
            .iter()
            .map(|&sc| Column::new(sc.heading(), move |s| s.scenario(sc)?.rps, fmt_count).scenario(sc))
            .collect();
        self.table(md, "Throughput (requests/s)", Better::Higher, &columns);

        let mut columns = Vec::new();
        for sc in [Scenario::Plaintext, Scenario::Json, Scenario::C1024] {
            columns.push(
                Column::owned(format!("{} p50", sc.heading()), move |s| s.scenario(sc)?.p50_ms, fmt_ms).scenario(sc),
            );
            columns.push(
                Column::owned(format!("{} p99", sc.heading()), move |s| s.scenario(sc)?.p99_ms, fmt_ms).scenario(sc),
            );
        }
        self.table(md, "Latency (ms)", Better::Lower, &columns);
        md.push_str(
            "\nwrk's percentiles are coordinated-omission corrected; with pipelining they are invalid and not shown.\n",
        );

        let columns: Vec<Column<'_>> = Scenario::ALL
            .iter()
            .map(|&sc| Column::new(sc.heading(), move |s| s.scenario(sc)?.cpu_us_per_req, fmt_us).scenario(sc))
            .collect();
        self.table(md, "Server CPU time per request (µs)", Better::Lower, &columns);
        md.push_str(
            "\nThe figure to compare when wrk, not the server, is the limit. It includes the kernel's loopback TCP \
             work charged to the server's core.\n",
        );

        self.limits_table(md);

        let columns = [
            Column::new("idle KiB/conn", |s| s.idle_kib_per_conn, fmt_kib),
            Column::new("instr/req seq", |s| s.instr_per_req_seq, fmt_count),
            Column::new("instr/req pipelined", |s| s.instr_per_req_pipe, fmt_count),
        ];
        self.table(md, "Memory per idle connection and instructions per request", Better::Lower, &columns);
        md.push_str(
            "\nIdle: growth of the server's VmRSS while it holds the idle keep-alive connections, divided by their \
             number (user-space memory only; kernel socket buffers are not in it). Instructions: user-space \
             instructions counted by callgrind over 16 keep-alive connections × 250 requests, sent one at a \
             time (seq) or all in one write (pipelined); deterministic for a binary and workload, whatever the \
             machine's load.\n",
        );
    }

    fn limits_table(&self, md: &mut String) {
        md.push_str("\n### Who was the limit: CPU % of one core, server / wrk / other processes\n\n| server |");
        for sc in Scenario::ALL {
            let _ = write!(md, " {} |", sc.heading());
        }
        md.push_str("\n|---|");
        md.push_str(&"---:|".repeat(Scenario::ALL.len()));
        md.push('\n');
        for s in &self.servers {
            let _ = write!(md, "| {} |", s.name);
            for sc in Scenario::ALL {
                let f = s.scenario(sc);
                let pct = |v: Option<f64>| v.map_or_else(|| "NA".to_owned(), |v| format!("{v:.0}"));
                let _ = write!(
                    md,
                    " {} / {} / {} |",
                    pct(f.and_then(|f| f.server_cpu_pct)),
                    pct(f.and_then(|f| f.wrk_cpu_pct)),
                    pct(f.and_then(|f| f.other_pct))
                );
            }
            md.push('\n');
        }
        md.push_str(
            "\nA server near 100 % is the limit; wrk near 100 % with the server well below means the load \
             generator was, and the server's req/s is a lower bound. Other processes' share is busy time that was \
             neither (tick accounting makes it noisy by a few %).\n",
        );
    }

    fn sweep_section(&self, md: &mut String) {
        let mut conns: Vec<u32> = self.servers.iter().flat_map(|s| s.sweep.iter().map(|p| p.conns)).collect();
        conns.sort_unstable();
        conns.dedup();
        if conns.is_empty() {
            return;
        }
        md.push_str("\n## Connection sweep (`GET /`, keep-alive)\n\n");
        for (file, caption) in &self.charts {
            let _ = writeln!(md, "![{caption}]({file})\n");
        }
        let rps: Vec<Column<'_>> = conns
            .iter()
            .map(|&c| Column::owned(fmt_count(c.into()), move |s| s.sweep_at(c)?.rps, fmt_count).sweep(c))
            .collect();
        self.table(md, "Requests/s by open connections", Better::Higher, &rps);
        let p99: Vec<Column<'_>> = conns
            .iter()
            .map(|&c| Column::owned(fmt_count(c.into()), move |s| s.sweep_at(c)?.p99_ms, fmt_ms).sweep(c))
            .collect();
        self.table(md, "p99 latency (ms) by open connections", Better::Lower, &p99);
        let cpu: Vec<Column<'_>> = conns
            .iter()
            .map(|&c| Column::owned(fmt_count(c.into()), move |s| s.sweep_at(c)?.cpu_us_per_req, fmt_us).sweep(c))
            .collect();
        self.table(md, "Server CPU µs per request by open connections", Better::Lower, &cpu);

        let errors: Vec<String> = self
            .servers
            .iter()
            .flat_map(|s| {
                s.sweep.iter().filter(|p| p.errors > 0).map(move |p| format!("{} at {}: {}", s.name, p.conns, p.errors))
            })
            .collect();
        if !errors.is_empty() {
            let _ = writeln!(md, "\nSocket errors or non-2xx responses during the sweep: {}.", errors.join("; "));
        }
    }

    fn problems_section(&self, md: &mut String) {
        let problems: Vec<String> =
            self.servers.iter().flat_map(|s| s.problems.iter().map(move |p| format!("- {}: {p}", s.name))).collect();
        if !problems.is_empty() {
            let _ = writeln!(md, "\n## Problems during the run\n\n{}", problems.join("\n"));
        }
    }

    fn commands_section(&self, md: &mut String) {
        md.push_str("\n## Commands\n\nPaths are relative to the workspace root.\n\n```sh\n");
        for command in &self.commands {
            let _ = writeln!(md, "{command}");
        }
        md.push_str("```\n");
    }

    /// One table: a row per server, `value (ratio)` per column.
    fn table(&self, md: &mut String, heading: &str, better: Better, columns: &[Column<'_>]) {
        let _ = write!(md, "\n### {heading}, {}\n\n| server |", better.note());
        for c in columns {
            let _ = write!(md, " {} |", c.heading);
        }
        md.push_str("\n|---|");
        md.push_str(&"---:|".repeat(columns.len()));
        md.push('\n');
        let base = self.base();
        let mut flagged = false;
        for s in &self.servers {
            let _ = write!(md, "| {} |", s.name);
            for c in columns {
                let value = (c.value)(s);
                let reference = base.and_then(|b| (c.value)(b));
                let mark = if value.is_some() && (c.disturbed)(s) { " †" } else { "" };
                flagged |= !mark.is_empty();
                let _ = write!(md, " {}{mark} |", value_with_ratio(value, reference, c.format));
            }
            md.push('\n');
        }
        if flagged {
            let _ = writeln!(
                md,
                "\n† other processes used more than {DISTURBED_PCT:.0} % of a core during this measurement: \
                 the figure is disturbed."
            );
        }
    }
}

/// Picks one figure of a server.
type Figure<'a> = Box<dyn Fn(&ServerFigures) -> Option<f64> + 'a>;

/// Whether a server's figure in a column was disturbed.
type Disturbed<'a> = Box<dyn Fn(&ServerFigures) -> bool + 'a>;

/// A table column: heading, the figure it shows, how to print it, and whether the measurement was disturbed.
struct Column<'a> {
    heading: String,
    value: Figure<'a>,
    format: fn(f64) -> String,
    disturbed: Disturbed<'a>,
}

impl<'a> Column<'a> {
    fn new(heading: &str, value: impl Fn(&ServerFigures) -> Option<f64> + 'a, format: fn(f64) -> String) -> Self {
        Column::owned(heading.to_owned(), value, format)
    }

    fn owned(heading: String, value: impl Fn(&ServerFigures) -> Option<f64> + 'a, format: fn(f64) -> String) -> Self {
        Column { heading, value: Box::new(value), format, disturbed: Box::new(|_| false) }
    }

    /// Marks the figure when the `bench.sh` scenario it comes from was disturbed.
    fn scenario(mut self, scenario: Scenario) -> Self {
        self.disturbed = Box::new(move |s| s.scenario(scenario).is_some_and(ScenarioFigures::disturbed));
        self
    }

    /// Marks the figure when the sweep point it comes from was disturbed.
    fn sweep(mut self, conns: u32) -> Self {
        self.disturbed = Box::new(move |s| s.sweep_at(conns).is_some_and(SweepPoint::disturbed));
        self
    }
}

const CAVEATS: &str = "
## Reading these figures

- Two cores: loopback TCP work (softirq) runs on whichever core sends, so part of each side's network stack
  lands on the other's core; with tick-based accounting it is charged to whichever process was running.
- One wrk thread can saturate its core: where wrk's CPU is near 100 % (see the limits table), compare servers by
  CPU time per request and by instructions per request, not by req/s.
- Latency percentiles come from wrk's corrected histogram (coordinated omission), not raw samples.
- `floor` is not an HTTP server: a raw epoll loop answering each request head with a canned response. It is
  what the kernel alone costs per request.
";

/// `value (ratio)`; `NA` when the value is missing; no ratio when the reference is missing or zero.
pub fn value_with_ratio(value: Option<f64>, reference: Option<f64>, format: fn(f64) -> String) -> String {
    match (value, reference) {
        (None, _) => "NA".to_owned(),
        (Some(v), Some(r)) if r > 0.0 => format!("{} ({})", format(v), fmt_ratio(v / r)),
        (Some(v), _) => format(v),
    }
}

/// A ratio with the precision its size deserves: `0.93×`, `12.4×`, `157×`.
pub fn fmt_ratio(ratio: f64) -> String {
    if ratio >= 100.0 {
        format!("{ratio:.0}×")
    } else if ratio >= 10.0 {
        format!("{ratio:.1}×")
    } else {
        format!("{ratio:.2}×")
    }
}

/// A count rounded to an integer with thousands separators: `1,222,414`.
pub fn fmt_count(value: f64) -> String {
    let rounded = value.round();
    let digits = format!("{:.0}", rounded.abs());
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if rounded < 0.0 {
        out.push('-');
    }
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// Milliseconds with three significant digits for small values: `0.641`, `9.02`, `16.6`, `2,014`.
pub fn fmt_ms(value: f64) -> String {
    if value < 1.0 {
        format!("{value:.3}")
    } else if value < 10.0 {
        format!("{value:.2}")
    } else if value < 100.0 {
        format!("{value:.1}")
    } else {
        fmt_count(value)
    }
}

/// Microseconds per request: `7.41`.
pub fn fmt_us(value: f64) -> String {
    if value < 100.0 { format!("{value:.2}") } else { fmt_count(value) }
}

/// KiB per connection: `10.90`.
pub fn fmt_kib(value: f64) -> String {
    format!("{value:.2}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(name: &str, plaintext_rps: Option<f64>, idle: Option<f64>) -> ServerFigures {
        let mut s = ServerFigures { name: name.into(), about: format!("{name} server"), ..Default::default() };
        s.command = format!("./{name} 18080");
        s.scenarios.insert(
            Scenario::Plaintext,
            ScenarioFigures {
                rps: plaintext_rps,
                p50_ms: Some(0.4),
                p99_ms: Some(0.8),
                cpu_us_per_req: Some(7.5),
                server_cpu_pct: Some(97.0),
                wrk_cpu_pct: Some(100.0),
                other_pct: Some(2.0),
                errors: Some(0.0),
            },
        );
        s.idle_kib_per_conn = idle;
        s.sweep = vec![SweepPoint { conns: 64, rps: plaintext_rps, p99_ms: Some(1.5), ..Default::default() }];
        s
    }

    fn report() -> Report {
        Report {
            title: "bench".into(),
            summary: "summary".into(),
            machine: vec![("CPU".into(), "test cpu".into())],
            commands: vec!["./bench.sh a 18080 -- ./a 18080".into()],
            servers: vec![server("gale_http1", Some(100_000.0), Some(4.0)), server("hyper", Some(125_000.0), None)],
            baseline: "gale_http1".into(),
            charts: vec![("sweep-rps.svg".into(), "req/s".into())],
            raw: vec![("raw lines".into(), "gale_http1 plaintext=100000\n".into())],
        }
    }

    #[test]
    fn counts_get_thousands_separators() {
        assert_eq!(fmt_count(0.0), "0");
        assert_eq!(fmt_count(999.4), "999");
        assert_eq!(fmt_count(1000.0), "1,000");
        assert_eq!(fmt_count(1_222_414.0), "1,222,414");
        assert_eq!(fmt_count(-12_345.0), "-12,345");
    }

    #[test]
    fn ratios_and_missing_values_are_spelled_out() {
        assert_eq!(value_with_ratio(Some(125_000.0), Some(100_000.0), fmt_count), "125,000 (1.25×)");
        assert_eq!(value_with_ratio(Some(5.0), Some(0.0), fmt_us), "5.00");
        assert_eq!(value_with_ratio(Some(5.0), None, fmt_us), "5.00");
        assert_eq!(value_with_ratio(None, Some(1.0), fmt_us), "NA");
        assert_eq!(fmt_ratio(157.2), "157×");
        assert_eq!(fmt_ratio(12.44), "12.4×");
        assert_eq!(fmt_ms(0.6414), "0.641");
        assert_eq!(fmt_ms(16.62), "16.6");
    }

    #[test]
    fn tables_relate_every_server_to_the_baseline() {
        let md = report().to_markdown();
        assert!(md.contains("| gale_http1 | 100,000 (1.00×) |"), "{md}");
        assert!(md.contains("| hyper | 125,000 (1.25×) |"), "{md}");
        // hyper's idle figure is missing: NA, and the baseline's own ratio is 1.
        assert!(md.contains("| gale_http1 | 4.00 (1.00×) |"), "{md}");
        assert!(md.contains("| hyper | NA |"), "{md}");
        assert!(md.contains("| hyper | 97 / 100 / 2 |"), "{md}");
    }

    #[test]
    fn report_links_charts_and_lists_commands_and_raw_output() {
        let md = report().to_markdown();
        assert!(md.contains("![req/s](sweep-rps.svg)"));
        assert!(md.contains("./bench.sh a 18080 -- ./a 18080\n```"));
        assert!(md.contains("<summary>raw lines</summary>"));
        assert!(md.contains("| hyper | hyper server | `./hyper 18080` |"));
        assert!(!md.contains("## Problems"));
    }

    #[test]
    fn disturbed_measurements_are_marked_with_a_footnote() {
        let mut r = report();
        assert!(!r.to_markdown().contains('†'));
        r.servers[1].scenarios.get_mut(&Scenario::Plaintext).unwrap().other_pct = Some(40.0);
        r.servers[0].sweep[0].other_pct = Some(16.0);
        let md = r.to_markdown();
        assert!(md.contains("| hyper | 125,000 (1.25×) † |"), "{md}");
        assert!(md.contains("| gale_http1 | 100,000 (1.00×) † |"), "sweep point marked: {md}");
        assert!(md.contains("\n† other processes used more than 15 % of a core"), "{md}");
    }

    #[test]
    fn problems_are_listed_per_server() {
        let mut r = report();
        r.servers[1].problems.push("server died during c1024".into());
        assert!(r.to_markdown().contains("## Problems during the run\n\n- hyper: server died during c1024"));
    }
}
