//! Route matching against a naive oracle: a linear scan of every route's regular expression, in order.
//!
//! Two tables: a fixed one covering literal routes, shadowing, named and optional groups and a bucket large
//! enough to be searched with a `RegexSet`; and one built from fuzzer-chosen pattern fragments. Checks: the
//! router finds the same route and arguments as the oracle for any path (its literal map, prefix buckets and
//! sets are only an index); never panics; a URL reversed from a match's arguments is matched by the route
//! again with the same arguments, and is the original path when nothing needed escaping.
#![no_main]

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::{Arc, LazyLock};

use gale_fuzz::{Split, fields};
use gale_web::escape::{url_escape, url_unescape_bytes};
use gale_web::routing::{PathArgs, Router};
use libfuzzer_sys::fuzz_target;
use regex::Regex;

/// One route of the oracle: its pattern compiled the way Tornado anchors it, and its name.
struct Rule {
    regex: Regex,
    name: Option<String>,
}

/// A router and the oracle for the same table.
struct Table {
    router: Router<usize>,
    rules: Vec<Rule>,
    /// Every reversible pattern has only literal text outside its groups.
    plain: bool,
}

impl Table {
    /// Adds the routes the router accepts (invalid or mixed-group patterns and duplicate names are refused).
    fn new<'a>(routes: impl IntoIterator<Item = (String, Option<&'a str>)>, plain: bool) -> Table {
        let mut table = Table { router: Router::new(), rules: Vec::new(), plain };
        for (pattern, name) in routes {
            if table.router.add(&pattern, name, table.rules.len()).is_ok() {
                table.rules.push(Rule { regex: oracle_regex(&pattern), name: name.map(str::to_owned) });
            }
        }
        table
    }

    /// The first rule matching `path`, with the arguments the router should give.
    fn oracle(&self, path: &str) -> Option<(usize, PathArgs)> {
        let (index, rule) = self.rules.iter().enumerate().find(|(_, rule)| rule.regex.is_match(path))?;
        Some((index, captured_args(&rule.regex, path).expect("it matched")))
    }

    fn check(&self, path: &str) {
        let found = self.router.find(path).map(|(&index, args)| (index, args));
        let expected = self.oracle(path);
        assert_eq!(found, expected, "{path:?}");
        if let Some((index, args)) = found {
            self.check_reverse(index, path, &args);
        }
    }

    /// Reverses the match and matches the result against the same route.
    fn check_reverse(&self, index: usize, path: &str, args: &PathArgs) {
        let rule = &self.rules[index];
        let Some(name) = &rule.name else { return };
        let raw: Vec<Option<&[u8]>> = match args {
            PathArgs::Positional(values) => values.iter().map(Option::as_deref).collect(),
            PathArgs::Named(values) => values.iter().map(|(_, v)| v.as_deref()).collect(),
        };
        let Some(values) = raw.iter().map(|v| v.and_then(|v| std::str::from_utf8(v).ok())).collect::<Option<Vec<_>>>()
        else {
            return; // an optional group that did not match, or bytes that are not text
        };
        let Ok(url) = self.router.reverse_url(name, &values) else { return };
        if !self.plain {
            return; // Tornado's reversal copies text outside groups as it is: only plain patterns round-trip
        }
        if let Some(again) = captured_args(&rule.regex, &url) {
            assert_eq!(&again, args, "{path:?} reversed to {url:?}");
        }
        // Nothing was percent-decoded or needs escaping: the reversed URL is the path.
        let captured = rule.regex.captures(path).expect("it matched");
        let verbatim = captured.iter().skip(1).zip(&values).all(|(m, v)| m.is_some_and(|m| m.as_str() == *v));
        if verbatim && values.iter().all(|v| url_escape(v, false) == *v) {
            assert_eq!(url, path, "reversing {path:?}");
        }
    }
}

/// `pattern` compiled as Tornado anchors it: at the start, and at the end unless it already ends with `$`.
/// Compiled patterns are kept, since the fuzzer repeats them.
fn oracle_regex(pattern: &str) -> Regex {
    thread_local! {
        static CACHE: RefCell<HashMap<String, Regex>> = RefCell::new(HashMap::new());
    }
    CACHE.with_borrow_mut(|cache| {
        if cache.len() > 100_000 {
            cache.clear();
        }
        let compile = || {
            let anchored = if pattern.ends_with('$') { pattern.to_owned() } else { format!("{pattern}$") };
            Regex::new(&format!(r"\A(?:{anchored})")).expect("the router compiled it")
        };
        cache.entry(pattern.to_owned()).or_insert_with(compile).clone()
    })
}

/// The arguments `regex` captures from `path`, percent-decoded, as the router reports them.
fn captured_args(regex: &Regex, path: &str) -> Option<PathArgs> {
    let captures = regex.captures(path)?;
    let decode = |m: Option<regex::Match<'_>>| m.map(|m| url_unescape_bytes(m.as_str().as_bytes(), false).into_owned());
    let names: Vec<&str> = regex.capture_names().flatten().collect();
    Some(if names.is_empty() {
        PathArgs::Positional(captures.iter().skip(1).map(decode).collect())
    } else {
        PathArgs::Named(names.iter().map(|&n| (Arc::from(n), decode(captures.name(n)))).collect())
    })
}

static FIXED: LazyLock<Table> = LazyLock::new(|| {
    let mut routes: Vec<(String, Option<&str>)> = vec![
        ("/".into(), Some("home")),
        (r"/static/(.*)".into(), Some("static")),
        (r"/user/(\d+)/posts/([^/]+)".into(), Some("post")),
        ("/a/message/new".into(), None),
        (r"/files/(.+)\.txt".into(), Some("file")),
        (r"/blog/(?P<year>\d{4})/(?P<slug>[^/]+)".into(), Some("blog")),
        (r"/api/v1/items/(\d+)".into(), Some("item")),
        // Shadowed by the route above for every path it matches.
        ("/api/v1/items/7".into(), Some("seven")),
        // Reversible for Tornado, but into `?`s: unnamed here.
        (r"/opt/(\d+)?/?(x)?".into(), None),
        (r"/esc/a\.b/(.*)".into(), Some("escaped")),
        (r"^/caret/(x+)$".into(), Some("caret")),
        ("/caf\u{e9}/(.+)/(.+)".into(), Some("unicode")),
        (r"/caf\u{e9}/(.+)".into(), Some("escape")),
        (r"/alt/(?:a|b)/(\w+)".into(), None),
        (r"/(.*)/edit".into(), Some("edit")),
    ];
    // One bucket with enough overlapping routes to be searched with a `RegexSet`.
    for i in 0..10 {
        routes.push((format!(r"/set/(a{i}|b)/(\w*)"), None));
    }
    routes.push((r"/set/b/literal".into(), Some("late literal")));
    Table::new(routes, true)
});

/// Pattern pieces the fuzzer assembles routes from.
const FRAGMENTS: [&str; 24] = [
    "/",
    "a",
    "b",
    "\\.",
    ".",
    "(\\d+)",
    "([^/]+)",
    "(.*)",
    "(a|b)",
    "x?",
    "[ab]+",
    "\\d",
    "(?:a|/)",
    "$",
    "^",
    "|",
    "\u{e9}",
    "(?P<k>[a-z]+)",
    "(?P<m>\\d*)",
    "a+",
    "/api/",
    "{2}",
    "%",
    "\\/",
];

/// Characters fuzzed paths are made of, so that they often match.
const ALPHABET: [char; 12] = ['/', 'a', 'b', '.', 'x', '1', '2', '\u{e9}', '%', 'F', 'z', 'k'];

/// A table built from fragment indices, kept for reuse: building one compiles every pattern twice, which is
/// most of the work, and the fuzzer often keeps the patterns and changes the paths.
fn fuzzed_table(patterns: &[&[u8]]) -> Rc<Table> {
    thread_local! {
        static TABLES: RefCell<HashMap<Vec<Vec<u8>>, Rc<Table>>> = RefCell::new(HashMap::new());
    }
    let key: Vec<Vec<u8>> = patterns.iter().map(|p| p.to_vec()).collect();
    if let Some(table) = TABLES.with_borrow(|tables| tables.get(&key).cloned()) {
        return table;
    }
    let names = ["r0", "r1", "r2", "r3", "r4", "r5", "r6", "r7", "r8", "r9", "r10", "r11"];
    let routes = patterns.iter().zip(names).map(|(pattern, name)| {
        let pattern: String = pattern.iter().map(|&b| FRAGMENTS[usize::from(b) % FRAGMENTS.len()]).collect();
        (pattern, Some(name))
    });
    let table = Rc::new(Table::new(routes, false));
    TABLES.with_borrow_mut(|tables| {
        if tables.len() >= 64 {
            tables.clear();
        }
        tables.insert(key, table.clone());
    });
    table
}

fuzz_target!(|data: &[u8]| {
    let Some(split) = Split::new(data) else { return };
    if split.flags() & 1 == 0 {
        FIXED.check(&String::from_utf8_lossy(split.stream));
        return;
    }
    // pattern \0 pattern \0 ... \0 paths: each byte picks a fragment or a character; 0xFF separates paths.
    let mut parts = fields(split.stream, 0, 13);
    let Some(paths) = parts.pop() else { return };
    let table = fuzzed_table(&parts);
    for path in paths.split(|&b| b == 0xFF).take(16) {
        let path: String = path.iter().map(|&b| ALPHABET[usize::from(b) % ALPHABET.len()]).collect();
        table.check(&path);
    }
});
