//! `cargo xtask conformance`: the Autobahn|Testsuite's fuzzing client against the `ws_echo` example, and
//! `cargo xtask browser`: two headless Chromium pages chatting through the `websocket_chat` example.
//!
//! # Conformance
//!
//! The suite is Python 2 code, so it runs in a Python 2.7 virtualenv (see `shared/autobahn/README.md` beside
//! the workspace): the pyenv's CPython 2.7.18, a `virtualenv==20.21.1` from a Python 3 venv to create the
//! environment, and the pinned dependency set of `constraints-py27.txt`. Everything lives under
//! `target/autobahn/`, installed once and reused while the constraints stay the same. Then `ws_echo` is
//! built in release mode and started on a free port, and `wstest -m fuzzingclient` runs cases 1–7, 9 and
//! 10 (about 20 s), and with `--all` also 12 and 13 (compression, about 13 minutes). The report's
//! `index.json` is summed up per behaviour; the task fails if any case FAILED.
//!
//! # Browser
//!
//! Starts `websocket_chat` and a headless Chromium with its DevTools port, and drives the browser through
//! the DevTools protocol from a small Python script (stdlib plus `websockets`: `GALE_PYTHON`, else the CI
//! venv `target/ci-venv`, else `python3`): two pages connect (with permessage-deflate), page A posts a
//! message, page B must show it (escaped), and a page opened afterwards must show it from the server's
//! message cache. A screenshot of page B is
//! saved as `target/browser/chat.png`.

use crate::harness::{ServerProcess, ServerSpec};
use crate::{cargo, workspace_root};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CONFORMANCE_USAGE: &str = "usage: cargo xtask conformance [--all] [--cases 'A.*,B.*']\n  \
     runs Autobahn|Testsuite cases 1-7, 9, 10 against examples/ws_echo (with --all also 12 and 13)";

/// The fast sections: framing, pings, reserved bits, opcodes, fragmentation, UTF-8, closing, limits and
/// performance, auto-fragmentation.
const FAST_CASES: &[&str] = &["1.*", "2.*", "3.*", "4.*", "5.*", "6.*", "7.*", "9.*", "10.*"];
/// The compression sections (permessage-deflate), slow.
const COMPRESSION_CASES: &[&str] = &["12.*", "13.*"];

/// The suite and its pins.
const AUTOBAHN_VERSION: &str = "autobahntestsuite==25.10.1";
const VIRTUALENV_VERSION: &str = "virtualenv==20.21.1";
const PYTHON2_VERSION: &str = "2.7.18";

/// Autobahn's outcomes, best first.
const BEHAVIORS: &[&str] = &["OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "FAILED"];

pub fn run(args: &[String]) -> Result<(), String> {
    let mut sections: Vec<Vec<String>> = vec![FAST_CASES.iter().map(|s| s.to_string()).collect()];
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        match arg.as_str() {
            "--all" => sections.push(COMPRESSION_CASES.iter().map(|s| s.to_string()).collect()),
            "--cases" => {
                let list = iter.next().ok_or("--cases needs a value such as '1.*,5.1.1'")?;
                sections = vec![list.split(',').map(|c| c.trim().to_owned()).filter(|c| !c.is_empty()).collect()];
            }
            "-h" | "--help" => {
                println!("{CONFORMANCE_USAGE}");
                return Ok(());
            }
            other => return Err(format!("unknown argument {other:?}\n{CONFORMANCE_USAGE}")),
        }
    }

    let root = workspace_root();
    let dir = root.join("target/autobahn");
    fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let wstest = install_wstest(&root, &dir)?;
    cargo(&["build", "--release", "--package", "gale-examples", "--example", "ws_echo"])?;

    let port = free_port()?;
    let spec = ServerSpec {
        name: "ws_echo",
        about: "the gale WebSocket echo server",
        program: root.join("target/release/examples/ws_echo"),
        args: vec!["--port".into(), port.to_string()],
    };
    let server = ServerProcess::start(&spec, &dir, "", port, &dir.join("ws_echo.log"))?;

    let mut total = Summary::default();
    let mut result = Ok(());
    for (i, cases) in sections.iter().enumerate() {
        let name = format!("run{}", i + 1);
        eprintln!("== Autobahn|Testsuite cases {} against ws://127.0.0.1:{port}/", cases.join(" "));
        let started = Instant::now();
        match run_suite(&wstest, &dir, &name, port, cases) {
            Ok(summary) => {
                println!("{}", summary.render(&format!("cases {}", cases.join(" ")), started.elapsed()));
                total.merge(summary);
            }
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    server.stop();
    result?;
    if sections.len() > 1 {
        println!("{}", total.render("all cases", total.elapsed));
    }
    match total.failed() {
        0 => Ok(()),
        n => Err(format!("{n} case(s) FAILED; reports in {}", dir.join("reports").display())),
    }
}

/// Installs the suite under `dir` unless it is there for the current constraints; returns `wstest`'s path.
fn install_wstest(root: &Path, dir: &Path) -> Result<PathBuf, String> {
    let constraints = root.join("../shared/autobahn/constraints-py27.txt");
    let pins = fs::read_to_string(&constraints).map_err(|e| {
        format!("cannot read {}: {e} (the shared folder sits beside the workspace)", constraints.display())
    })?;
    let wstest = dir.join("venv-wstest/bin/wstest");
    let marker = dir.join("venv-wstest/installed-constraints.txt");
    if wstest.is_file() && fs::read_to_string(&marker).is_ok_and(|m| m == pins) {
        return Ok(wstest);
    }
    eprintln!("== installing the Autobahn|Testsuite under {}", dir.display());
    let python2 = pyenv_python(PYTHON2_VERSION)?;
    let tools = dir.join("venv-tools");
    if !tools.join("bin/python").is_file() {
        run_tool(Command::new("python3").arg("-m").arg("venv").arg(&tools))?;
    }
    run_tool(Command::new(tools.join("bin/pip")).args([
        "install",
        "--quiet",
        "--disable-pip-version-check",
        VIRTUALENV_VERSION,
    ]))?;
    let venv = dir.join("venv-wstest");
    let _ = fs::remove_dir_all(&venv);
    run_tool(Command::new(tools.join("bin/virtualenv")).arg("--quiet").arg("-p").arg(&python2).arg(&venv))?;
    // The suite declares no dependencies: the constraints file is the full, pinned list.
    run_tool(
        Command::new(venv.join("bin/pip"))
            .args(["install", "--quiet", "--disable-pip-version-check", "--no-python-version-warning", "-c"])
            .arg(&constraints)
            .arg("-r")
            .arg(&constraints)
            .arg(AUTOBAHN_VERSION),
    )?;
    if !wstest.is_file() {
        return Err(format!("the install left no {}", wstest.display()));
    }
    fs::write(&marker, pins).map_err(|e| format!("cannot write {}: {e}", marker.display()))?;
    Ok(wstest)
}

/// The interpreter of a pyenv-installed Python version.
fn pyenv_python(version: &str) -> Result<PathBuf, String> {
    let output = Command::new("pyenv")
        .args(["prefix", version])
        .output()
        .map_err(|e| format!("cannot run pyenv ({e}): the suite needs CPython {version} from pyenv"))?;
    if !output.status.success() {
        return Err(format!("pyenv has no Python {version}: {}", String::from_utf8_lossy(&output.stderr).trim()));
    }
    let prefix = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    Ok(Path::new(&prefix).join("bin/python"))
}

/// Runs an install step, failing with its output.
fn run_tool(command: &mut Command) -> Result<(), String> {
    eprintln!("$ {command:?}");
    let output = command.stdin(Stdio::null()).output().map_err(|e| format!("cannot run {command:?}: {e}"))?;
    if output.status.success() {
        return Ok(());
    }
    Err(format!(
        "{command:?} failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    ))
}

/// A port nothing listens on right now.
fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(|e| format!("no free port: {e}"))?;
    listener.local_addr().map(|a| a.port()).map_err(|e| e.to_string())
}

/// Runs the fuzzing client for `cases` into `dir/reports/name` and sums up its report.
fn run_suite(wstest: &Path, dir: &Path, name: &str, port: u16, cases: &[String]) -> Result<Summary, String> {
    let outdir = dir.join("reports").join(name);
    let _ = fs::remove_dir_all(&outdir);
    let cases_json = cases.iter().map(|c| format!("{c:?}")).collect::<Vec<_>>().join(", ");
    let spec = format!(
        "{{\n  \"outdir\": {:?},\n  \"servers\": [{{\"agent\": \"gale\", \"url\": \"ws://127.0.0.1:{port}\"}}],\n  \
         \"cases\": [{cases_json}],\n  \"exclude-cases\": [],\n  \"exclude-agent-cases\": {{}}\n}}\n",
        outdir.display().to_string()
    );
    let spec_path = dir.join(format!("{name}-spec.json"));
    fs::write(&spec_path, spec).map_err(|e| format!("cannot write {}: {e}", spec_path.display()))?;
    let log_path = dir.join(format!("{name}-wstest.log"));
    let log = fs::File::create(&log_path).map_err(|e| format!("cannot create {}: {e}", log_path.display()))?;
    let err = log.try_clone().map_err(|e| e.to_string())?;
    let started = Instant::now();
    let status = Command::new(wstest)
        .args(["-m", "fuzzingclient", "-s"])
        .arg(&spec_path)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err)
        .status()
        .map_err(|e| format!("cannot run {}: {e}", wstest.display()))?;
    if !status.success() {
        return Err(format!("wstest failed ({status}); see {}", log_path.display()));
    }
    let index = outdir.join("index.json");
    let text = fs::read_to_string(&index).map_err(|e| format!("cannot read {}: {e}", index.display()))?;
    let mut summary = Summary::from_index(&text)?;
    summary.elapsed = started.elapsed();
    Ok(summary)
}

/// The outcome of a run: cases by behaviour.
#[derive(Debug, Default, PartialEq)]
struct Summary {
    /// Case ids by behaviour.
    cases: BTreeMap<String, Vec<String>>,
    elapsed: Duration,
}

impl Summary {
    /// Reads Autobahn's `index.json`: `{agent: {case id: {"behavior": …, "behaviorClose": …}}}`. A case
    /// whose closing behaviour FAILED counts as FAILED.
    fn from_index(text: &str) -> Result<Summary, String> {
        let index = json::parse(text).map_err(|e| format!("index.json: {e}"))?;
        let agents = index.as_object().ok_or("index.json is not an object")?;
        let mut summary = Summary::default();
        for (_agent, cases) in agents {
            for (id, result) in cases.as_object().ok_or("index.json: an agent's cases are not an object")? {
                let field = |name: &str| result.get(name).and_then(json::Value::as_str).unwrap_or("MISSING");
                let behavior = if field("behaviorClose") == "FAILED" { "FAILED" } else { field("behavior") };
                summary.cases.entry(behavior.to_owned()).or_default().push(id.clone());
            }
        }
        for ids in summary.cases.values_mut() {
            ids.sort_by_key(|id| case_key(id));
        }
        Ok(summary)
    }

    fn merge(&mut self, other: Summary) {
        for (behavior, ids) in other.cases {
            self.cases.entry(behavior).or_default().extend(ids);
        }
        self.elapsed += other.elapsed;
    }

    fn failed(&self) -> usize {
        self.cases.get("FAILED").map_or(0, Vec::len)
    }

    fn render(&self, title: &str, elapsed: Duration) -> String {
        let total: usize = self.cases.values().map(Vec::len).sum();
        let mut out = format!("Autobahn|Testsuite, {title}: {total} cases in {:.1} s\n", elapsed.as_secs_f64());
        let others = self.cases.keys().filter(|b| !BEHAVIORS.contains(&b.as_str()));
        for behavior in BEHAVIORS.iter().map(|b| b.to_string()).chain(others.cloned()) {
            let ids = self.cases.get(&behavior).map_or(&[][..], Vec::as_slice);
            let _ = write!(out, "  {behavior:<14} {:>4}", ids.len());
            if !ids.is_empty() && behavior != "OK" {
                let _ = write!(out, "  {}", ids.join(" "));
            }
            out.push('\n');
        }
        out.pop();
        out
    }
}

/// Sorts case ids numerically: 1.1.2 before 1.1.10.
fn case_key(id: &str) -> Vec<u32> {
    id.split('.').map(|part| part.parse().unwrap_or(u32::MAX)).collect()
}

// ---------------------------------------------------------------------------------------------------------
// cargo xtask browser
// ---------------------------------------------------------------------------------------------------------

const BROWSER_USAGE: &str = "usage: cargo xtask browser\n  \
     two headless Chromium pages chat through examples/websocket_chat (needs `chromium` and a Python with \
     `websockets`: GALE_PYTHON)";

/// The Chromium flags for a quiet, sandbox-less headless run that talks only to 127.0.0.1.
const CHROMIUM_FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-allow-origins=*",
];

pub fn browser(args: &[String]) -> Result<(), String> {
    if let Some(arg) = args.first() {
        if arg == "-h" || arg == "--help" {
            println!("{BROWSER_USAGE}");
            return Ok(());
        }
        return Err(format!("unknown argument {arg:?}\n{BROWSER_USAGE}"));
    }
    let root = workspace_root();
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "chromium".to_owned());
    if Command::new(&chromium).arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_err() {
        return Err(format!("{chromium} not found: `apt-get install chromium` (Debian), or set CHROMIUM"));
    }
    let python = python_with_websockets(&root)?;
    cargo(&["build", "--release", "--package", "gale-examples", "--example", "websocket_chat"])?;

    let dir = root.join("target/browser");
    let profile = dir.join("profile");
    let _ = fs::remove_dir_all(&profile);
    fs::create_dir_all(&profile).map_err(|e| format!("cannot create {}: {e}", profile.display()))?;

    let chat_port = free_port()?;
    let chat = ServerSpec {
        name: "websocket_chat",
        about: "the gale WebSocket chat demo",
        program: root.join("target/release/examples/websocket_chat"),
        args: vec!["--port".into(), chat_port.to_string()],
    };
    let chat_server = ServerProcess::start(&chat, &dir, "", chat_port, &dir.join("websocket_chat.log"))?;

    let devtools_port = free_port()?;
    let mut chromium_args: Vec<String> = CHROMIUM_FLAGS.iter().map(|s| s.to_string()).collect();
    chromium_args.push(format!("--user-data-dir={}", profile.display()));
    chromium_args.push(format!("--remote-debugging-port={devtools_port}"));
    chromium_args.push("about:blank".to_owned());
    let browser_spec = ServerSpec {
        name: "chromium",
        about: "headless Chromium",
        program: PathBuf::from(&chromium),
        args: chromium_args,
    };
    let browser = ServerProcess::start(&browser_spec, &dir, "", devtools_port, &dir.join("chromium.log"))?;

    let script = dir.join("chat_check.py");
    fs::write(&script, CDP_CHAT_CHECK).map_err(|e| format!("cannot write {}: {e}", script.display()))?;
    let started = Instant::now();
    let output = Command::new(&python)
        .arg(&script)
        .arg(devtools_port.to_string())
        .arg(format!("http://127.0.0.1:{chat_port}/"))
        .arg(dir.join("chat.png"))
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {python}: {e}"));
    browser.stop();
    chat_server.stop();
    let output = output?;
    print!("{}", String::from_utf8_lossy(&output.stdout));
    eprint!("{}", String::from_utf8_lossy(&output.stderr));
    if output.status.success() {
        println!("browser check passed in {:.1} s", started.elapsed().as_secs_f64());
        Ok(())
    } else {
        Err(format!("the browser check failed ({}); logs in {}", output.status, dir.display()))
    }
}

/// A Python that can import `websockets`: `GALE_PYTHON`, the CI venv, or `python3`.
fn python_with_websockets(root: &Path) -> Result<String, String> {
    let candidates = std::env::var("GALE_PYTHON")
        .ok()
        .into_iter()
        .chain([root.join("target/ci-venv/bin/python").display().to_string(), "python3".to_owned()]);
    for python in candidates {
        let ok = Command::new(&python)
            .args(["-c", "import websockets.asyncio.client"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return Ok(python);
        }
    }
    Err("no Python with `websockets` 13+: set GALE_PYTHON, or `python3 -m venv target/ci-venv && \
         target/ci-venv/bin/pip install websockets`"
        .to_owned())
}

/// Drives Chromium through the DevTools protocol: argv is the DevTools port, the chat URL and the path of
/// the screenshot to write.
const CDP_CHAT_CHECK: &str = r#"
import asyncio, base64, itertools, json, sys, urllib.request
from websockets.asyncio.client import connect

DEVTOOLS_PORT, CHAT_URL, SCREENSHOT = int(sys.argv[1]), sys.argv[2], sys.argv[3]
MESSAGE = "hello from page A <b>not bold</b>"

class Browser:
    def __init__(self, ws):
        self.ws, self.ids, self.pending = ws, itertools.count(1), {}

    async def pump(self):
        async for raw in self.ws:
            reply = json.loads(raw)
            future = self.pending.pop(reply.get("id"), None)
            if future is not None and not future.done():
                future.set_result(reply)

    async def call(self, method, session=None, **params):
        call_id = next(self.ids)
        future = asyncio.get_running_loop().create_future()
        self.pending[call_id] = future
        message = {"id": call_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        await self.ws.send(json.dumps(message))
        reply = await asyncio.wait_for(future, 10)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply["result"]

    async def open_page(self, url):
        target = await self.call("Target.createTarget", url=url)
        attached = await self.call("Target.attachToTarget", targetId=target["targetId"], flatten=True)
        return attached["sessionId"]

    async def evaluate(self, session, expression):
        result = await self.call("Runtime.evaluate", session, expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def wait_for(self, session, expression, what, timeout=15):
        for _ in range(int(timeout / 0.05)):
            try:
                if await self.evaluate(session, expression):
                    return
            except RuntimeError:
                pass  # the page is still loading
            await asyncio.sleep(0.05)
        raise TimeoutError(f"timed out waiting for {what}")

OPEN = "document.getElementById('status') && document.getElementById('status').dataset.state === 'open'"
MESSAGES = "[...document.querySelectorAll('#inbox .message')].map(n => n.textContent)"
HAS_MESSAGE = f"{MESSAGES}.includes({json.dumps(MESSAGE)})"

async def main():
    with urllib.request.urlopen(f"http://127.0.0.1:{DEVTOOLS_PORT}/json/version", timeout=10) as r:
        endpoint = json.load(r)["webSocketDebuggerUrl"]
    async with connect(endpoint, max_size=2**26) as ws:
        browser = Browser(ws)
        pump = asyncio.create_task(browser.pump())
        a = await browser.open_page(CHAT_URL)
        b = await browser.open_page(CHAT_URL)
        await browser.wait_for(a, OPEN, "page A's socket to open")
        await browser.wait_for(b, OPEN, "page B's socket to open")
        extensions = await browser.evaluate(b, "updater.socket.extensions")
        assert extensions.startswith("permessage-deflate"), f"no compression: {extensions!r}"
        print("both pages connected, with", extensions)
        await browser.evaluate(a, f"""
            document.getElementById('message').value = {json.dumps(MESSAGE)};
            document.getElementById('messageform').requestSubmit();
            true""")
        await browser.wait_for(b, HAS_MESSAGE, "page B to show page A's message")
        await browser.wait_for(a, HAS_MESSAGE, "page A to show its own message")
        bold = await browser.evaluate(b, "document.querySelectorAll('#inbox b').length")
        assert bold == 0, "the message's HTML was not escaped"
        print("page B shows page A's message:", (await browser.evaluate(b, MESSAGES))[-1])
        c = await browser.open_page(CHAT_URL)
        await browser.wait_for(c, HAS_MESSAGE, "a new page to show the cached message")
        print("a page opened afterwards shows it from the cache")
        shot = await browser.call("Page.captureScreenshot", b, format="png")
        with open(SCREENSHOT, "wb") as f:
            f.write(base64.b64decode(shot["data"]))
        print("screenshot of page B:", SCREENSHOT)
        pump.cancel()

asyncio.run(asyncio.wait_for(main(), 60))
"#;

// ---------------------------------------------------------------------------------------------------------
// JSON, as much as index.json needs
// ---------------------------------------------------------------------------------------------------------

/// A small JSON reader for Autobahn's report index (the xtask keeps its dependencies few).
mod json {
    /// A JSON value; objects keep their members in order.
    #[derive(Debug, PartialEq)]
    pub enum Value {
        Null,
        Bool(bool),
        Number(f64),
        String(String),
        Array(Vec<Value>),
        Object(Vec<(String, Value)>),
    }

    impl Value {
        pub fn as_object(&self) -> Option<&[(String, Value)]> {
            match self {
                Value::Object(members) => Some(members),
                _ => None,
            }
        }

        pub fn as_str(&self) -> Option<&str> {
            match self {
                Value::String(s) => Some(s),
                _ => None,
            }
        }

        pub fn get(&self, key: &str) -> Option<&Value> {
            self.as_object()?.iter().find(|(k, _)| k == key).map(|(_, v)| v)
        }
    }

    /// Parses a whole document.
    pub fn parse(text: &str) -> Result<Value, String> {
        let mut parser = Parser { bytes: text.as_bytes(), pos: 0 };
        let value = parser.value(0)?;
        parser.skip_ws();
        if parser.pos != parser.bytes.len() {
            return Err(parser.error("trailing characters"));
        }
        Ok(value)
    }

    /// Deeper nesting is refused rather than risking the stack.
    const MAX_DEPTH: usize = 64;

    struct Parser<'a> {
        bytes: &'a [u8],
        pos: usize,
    }

    impl Parser<'_> {
        fn error(&self, what: &str) -> String {
            format!("{what} at byte {}", self.pos)
        }

        fn skip_ws(&mut self) {
            while self.bytes.get(self.pos).is_some_and(|b| b.is_ascii_whitespace()) {
                self.pos += 1;
            }
        }

        fn eat(&mut self, literal: &str) -> bool {
            if self.bytes[self.pos..].starts_with(literal.as_bytes()) {
                self.pos += literal.len();
                true
            } else {
                false
            }
        }

        fn value(&mut self, depth: usize) -> Result<Value, String> {
            if depth > MAX_DEPTH {
                return Err(self.error("nesting too deep"));
            }
            self.skip_ws();
            match self.bytes.get(self.pos) {
                Some(b'{') => self.object(depth),
                Some(b'[') => self.array(depth),
                Some(b'"') => self.string().map(Value::String),
                Some(b'-' | b'0'..=b'9') => self.number(),
                _ if self.eat("true") => Ok(Value::Bool(true)),
                _ if self.eat("false") => Ok(Value::Bool(false)),
                _ if self.eat("null") => Ok(Value::Null),
                _ => Err(self.error("expected a value")),
            }
        }

        fn object(&mut self, depth: usize) -> Result<Value, String> {
            self.pos += 1;
            let mut members = Vec::new();
            self.skip_ws();
            if self.eat("}") {
                return Ok(Value::Object(members));
            }
            loop {
                self.skip_ws();
                if self.bytes.get(self.pos) != Some(&b'"') {
                    return Err(self.error("expected a key"));
                }
                let key = self.string()?;
                self.skip_ws();
                if !self.eat(":") {
                    return Err(self.error("expected ':'"));
                }
                members.push((key, self.value(depth + 1)?));
                self.skip_ws();
                if self.eat("}") {
                    return Ok(Value::Object(members));
                }
                if !self.eat(",") {
                    return Err(self.error("expected ',' or '}'"));
                }
            }
        }

        fn array(&mut self, depth: usize) -> Result<Value, String> {
            self.pos += 1;
            let mut items = Vec::new();
            self.skip_ws();
            if self.eat("]") {
                return Ok(Value::Array(items));
            }
            loop {
                items.push(self.value(depth + 1)?);
                self.skip_ws();
                if self.eat("]") {
                    return Ok(Value::Array(items));
                }
                if !self.eat(",") {
                    return Err(self.error("expected ',' or ']'"));
                }
            }
        }

        fn number(&mut self) -> Result<Value, String> {
            let start = self.pos;
            while self.bytes.get(self.pos).is_some_and(|b| matches!(b, b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9'))
            {
                self.pos += 1;
            }
            let text = std::str::from_utf8(&self.bytes[start..self.pos]).map_err(|_| self.error("bad number"))?;
            text.parse().map(Value::Number).map_err(|_| self.error("bad number"))
        }

        fn string(&mut self) -> Result<String, String> {
            self.pos += 1;
            let mut out = String::new();
            loop {
                let start = self.pos;
                while self.bytes.get(self.pos).is_some_and(|b| *b != b'"' && *b != b'\\') {
                    self.pos += 1;
                }
                out.push_str(std::str::from_utf8(&self.bytes[start..self.pos]).map_err(|_| self.error("bad UTF-8"))?);
                match self.bytes.get(self.pos) {
                    Some(b'"') => {
                        self.pos += 1;
                        return Ok(out);
                    }
                    Some(b'\\') => {
                        self.pos += 1;
                        let escape = *self.bytes.get(self.pos).ok_or_else(|| self.error("unfinished escape"))?;
                        self.pos += 1;
                        match escape {
                            b'"' => out.push('"'),
                            b'\\' => out.push('\\'),
                            b'/' => out.push('/'),
                            b'b' => out.push('\u{8}'),
                            b'f' => out.push('\u{c}'),
                            b'n' => out.push('\n'),
                            b'r' => out.push('\r'),
                            b't' => out.push('\t'),
                            b'u' => out.push(self.unicode_escape()?),
                            _ => return Err(self.error("bad escape")),
                        }
                    }
                    _ => return Err(self.error("unterminated string")),
                }
            }
        }

        /// The character of a `\uXXXX` escape (after the `u`), joining surrogate pairs.
        fn unicode_escape(&mut self) -> Result<char, String> {
            let high = self.hex4()?;
            if (0xD800..0xDC00).contains(&high) && self.eat("\\u") {
                let low = self.hex4()?;
                if (0xDC00..0xE000).contains(&low) {
                    let code = 0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00);
                    return Ok(char::from_u32(code).unwrap_or('\u{fffd}'));
                }
                return Ok('\u{fffd}');
            }
            Ok(char::from_u32(high).unwrap_or('\u{fffd}'))
        }

        fn hex4(&mut self) -> Result<u32, String> {
            let digits = self.bytes.get(self.pos..self.pos + 4).ok_or_else(|| self.error("short \\u escape"))?;
            let text = std::str::from_utf8(digits).map_err(|_| self.error("bad \\u escape"))?;
            let code = u32::from_str_radix(text, 16).map_err(|_| self.error("bad \\u escape"))?;
            self.pos += 4;
            Ok(code)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INDEX: &str = r#"{
       "gale": {
          "1.1.2": {"behavior": "OK", "behaviorClose": "OK", "duration": 2, "remoteCloseCode": 1000,
                    "reportfile": "gale_case_1_1_2.json"},
          "1.1.10": {"behavior": "OK", "behaviorClose": "OK", "duration": 1, "remoteCloseCode": null},
          "6.4.3": {"behavior": "NON-STRICT", "behaviorClose": "OK"},
          "7.9.1": {"behavior": "OK", "behaviorClose": "FAILED"},
          "7.1.6": {"behavior": "INFORMATIONAL", "behaviorClose": "INFORMATIONAL"},
          "12.1.1": {"behavior": "UNIMPLEMENTED", "behaviorClose": "UNIMPLEMENTED", "note": "caf\u00e9 \"x\""}
       }
    }"#;

    #[test]
    fn index_json_is_summed_up_by_behavior() {
        let summary = Summary::from_index(INDEX).unwrap();
        assert_eq!(summary.cases["OK"], ["1.1.2", "1.1.10"]);
        assert_eq!(summary.cases["NON-STRICT"], ["6.4.3"]);
        assert_eq!(summary.cases["FAILED"], ["7.9.1"], "a failed closing handshake fails the case");
        assert_eq!(summary.cases["UNIMPLEMENTED"], ["12.1.1"]);
        assert_eq!(summary.failed(), 1);
        let text = summary.render("test", Duration::from_secs(2));
        assert!(text.starts_with("Autobahn|Testsuite, test: 6 cases in 2.0 s\n"), "{text}");
        assert!(text.contains("  OK                2\n"), "{text}");
        assert!(text.contains("  FAILED            1  7.9.1"), "{text}");
    }

    #[test]
    fn json_reader_handles_escapes_and_rejects_garbage() {
        let value = json::parse(r#"{"a": ["\u00e9\ud83d\ude00\n", -1.5e3, true, null, {}]}"#).unwrap();
        let json::Value::Array(items) = value.get("a").unwrap() else { panic!("not an array") };
        assert_eq!(items[0], json::Value::String("é😀\n".into()));
        assert_eq!(items[1], json::Value::Number(-1500.0));
        for bad in ["", "{", r#"{"a" 1}"#, "[1,]", r#""open"#, "nul", "{} x"] {
            assert!(json::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn case_ids_sort_numerically() {
        let mut ids = vec!["10.1.1", "9.2.1", "1.1.10", "1.1.2"];
        ids.sort_by_key(|id| case_key(id));
        assert_eq!(ids, ["1.1.2", "1.1.10", "9.2.1", "10.1.1"]);
    }
}
