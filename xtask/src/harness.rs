//! Process plumbing for the benchmark: servers started pinned to a core and stopped by their PID, the
//! readiness wait on their port, CPU-time sampling from `/proc`, and the wait for a quiet machine.

use crate::parse;
use std::ffi::OsString;
use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

/// How long a server may take to accept its first connection (Tornado under valgrind is the slow one).
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a server gets to exit after `SIGTERM` before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// A server to benchmark: a name for the tables and a command that execs the server itself, so that the PID
/// the harness gets is the process whose CPU time and memory are measured.
#[derive(Clone, Debug)]
pub struct ServerSpec {
    /// Name used in tables, file names and the harness's output lines.
    pub name: &'static str,
    /// One line on what the server is.
    pub about: &'static str,
    /// The program (not a wrapper shell).
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
}

impl ServerSpec {
    /// The command as arguments for `bench.sh NAME PORT -- CMD…` or `instr_per_req.py`.
    pub fn argv(&self) -> Vec<OsString> {
        std::iter::once(self.program.clone().into_os_string()).chain(self.args.iter().map(OsString::from)).collect()
    }
}

/// `taskset -c CPUS PROGRAM ARGS…`, or the bare command when `cpus` is empty. `taskset` execs the program,
/// so the child's PID is the program's.
pub fn pinned(cpus: &str, program: impl Into<OsString>, args: &[OsString]) -> Command {
    if cpus.is_empty() {
        let mut command = Command::new(program.into());
        command.args(args);
        command
    } else {
        let mut command = Command::new("taskset");
        command.arg("-c").arg(cpus).arg(program.into()).args(args);
        command
    }
}

/// Whether something accepts TCP connections on 127.0.0.1:`port`.
pub fn port_accepts(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok()
}

/// A running server, stopped (by its PID only) when dropped.
#[derive(Debug)]
pub struct ServerProcess {
    child: Child,
}

impl ServerProcess {
    /// Starts `spec` in `dir`, pinned to `cpus`, with its output in `log`, and waits until it accepts on `port`.
    ///
    /// # Errors
    ///
    /// Fails when the port is already taken (a server this harness did not start must not be measured), when
    /// the server cannot be spawned, exits early, or does not accept within 30 s.
    pub fn start(spec: &ServerSpec, dir: &Path, cpus: &str, port: u16, log: &Path) -> Result<ServerProcess, String> {
        if port_accepts(port) {
            return Err(format!(
                "port {port} already accepts connections: refusing to measure a server not started here"
            ));
        }
        let out = File::create(log).map_err(|e| format!("cannot create {}: {e}", log.display()))?;
        let err = out.try_clone().map_err(|e| format!("cannot duplicate a file handle: {e}"))?;
        let child = pinned(cpus, spec.program.clone(), &spec.argv()[1..])
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", spec.program.display()))?;
        let mut server = ServerProcess { child };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if !server.is_running() {
                return Err(format!("{} exited before accepting; see {}", spec.name, log.display()));
            }
            if port_accepts(port) {
                return Ok(server);
            }
            if Instant::now() >= deadline {
                return Err(format!("{} did not accept on 127.0.0.1:{port} within {START_TIMEOUT:?}", spec.name));
            }
            sleep(Duration::from_millis(100));
        }
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The server's user plus system CPU time so far, in clock ticks (all threads).
    pub fn cpu_ticks(&self) -> Option<u64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).ok()?;
        parse::proc_pid_cpu_ticks(&stat).map(|(own, _)| own)
    }

    /// Stops the server: `SIGTERM`, then `SIGKILL` if it is still running after 5 s.
    pub fn stop(mut self) {
        self.terminate();
    }

    fn terminate(&mut self) {
        if !self.is_running() {
            return;
        }
        let pid = rustix::process::Pid::from_child(&self.child);
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        let deadline = Instant::now() + STOP_TIMEOUT;
        while self.is_running() && Instant::now() < deadline {
            sleep(Duration::from_millis(50));
        }
        if self.is_running() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.terminate();
    }
}

/// CPU time, in clock ticks, of this process's children that have been waited for (wrk runs, once
/// `Command::output` returns).
pub fn waited_children_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    parse::proc_pid_cpu_ticks(&stat).map(|(_, children)| children)
}

/// Busy clock ticks summed over all CPUs (see [`parse::proc_stat_busy_ticks`]).
pub fn busy_ticks() -> Option<u64> {
    std::fs::read_to_string("/proc/stat").ok().as_deref().and_then(parse::proc_stat_busy_ticks)
}

/// The kernel's clock ticks per second (the unit of `/proc` CPU times).
pub fn clock_ticks_per_second() -> u64 {
    rustix::param::clock_ticks_per_second()
}

/// Waits (at most `limit`) until less than `quiet_pct` % of all CPUs were busy over one second, the rule
/// `bench.sh` applies before each scenario. Returns whether the machine was quiet; with a zero `limit` it
/// returns `false` at once without sampling.
pub fn wait_quiet(limit: Duration, quiet_pct: u64) -> bool {
    if limit.is_zero() {
        return false;
    }
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get() as u64);
    let hz = clock_ticks_per_second();
    let deadline = Instant::now() + limit;
    loop {
        let Some(a) = busy_ticks() else { return false };
        sleep(Duration::from_secs(1));
        let Some(b) = busy_ticks() else { return false };
        let pct = b.saturating_sub(a) * 100 / hz / cpus;
        if pct < quiet_pct {
            return true;
        }
        if Instant::now() >= deadline {
            eprintln!("warning: machine still busy ({pct}% of all CPUs) after {limit:?}; measuring anyway");
            return false;
        }
    }
}

/// Raises this process's open-files limit to its hard limit (children inherit it: wrk and the servers need
/// one descriptor per connection) and returns the resulting soft limit (`None`: unlimited).
pub fn raise_open_files_limit() -> Option<u64> {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    let raised = Rlimit { current: limit.maximum, maximum: limit.maximum };
    if setrlimit(Resource::Nofile, raised).is_ok() { limit.maximum } else { limit.current }
}

/// The first line of `PROGRAM ARGS…`'s output (stdout, else stderr), for version strings.
pub fn first_line_of(program: &str, args: &[&str]) -> Option<String> {
    let output = Command::new(program).args(args).stdin(Stdio::null()).output().ok()?;
    let text = if output.stdout.is_empty() { output.stderr } else { output.stdout };
    String::from_utf8_lossy(&text).lines().next().map(|l| l.trim().to_owned()).filter(|l| !l.is_empty())
}

/// Whether `program` is found on `PATH`.
pub fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}
