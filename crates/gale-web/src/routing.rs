//! The route table: Tornado's `URLSpec` / `PathMatches` semantics behind a lookup that stays cheap with many
//! routes.
//!
//! A [`Router`] holds an ordered list of `(pattern, name, target)` rules. [`Router::find`] returns the target of
//! the **first** rule, in insertion order, whose pattern matches the request path, together with the
//! [`PathArgs`] captured by the pattern. The generic `T` is whatever the application stores per route (a handler
//! factory, typically).
//!
//! # Pattern semantics (as in Tornado)
//!
//! * A pattern is a regular expression matched **from the start** of the path; `$` is appended unless the
//!   pattern already ends with one. So `/user/(\d+)` matches `/user/42` but neither `/user/42/x` nor `/x/user/42`.
//! * Capturing groups are handed to the handler: either all positional or all named (`(?P<id>\d+)`); a pattern
//!   mixing the two is rejected. When a pattern has named groups, only the named values are passed
//!   ([`PathArgs::Named`]), otherwise the positional ones ([`PathArgs::Positional`]).
//! * Captured values are percent-decoded to bytes (`+` stays `+` in paths); an optional group that did not take
//!   part in the match gives `None`. Decoding the bytes to text is the handler's business (Tornado's
//!   `decode_argument`), which is why they are bytes here.
//! * [`Router::reverse_url`] rebuilds a path from a route's name and arguments with Tornado's simple reversal
//!   (`_find_groups`): each group becomes one argument, URL-escaped with `plus = false`; patterns the simple
//!   method cannot invert (non-capturing groups, escapes such as `\d` outside groups, ...) are reported as such.
//!
//! The regular-expression dialect is the [`regex`] crate's, which accepts Python's common syntax including
//! `(?P<name>...)`, but not look-around or back-references.
//!
//! # Lookup cost
//!
//! Routes are indexed when added, so that a request does not run every pattern:
//!
//! * **Literal patterns** (no regex metacharacter once `^`, the final `$` and escapes such as `\.` are
//!   accounted for) go into a hash map and are matched by one string comparison.
//! * **Regex patterns** are bucketed by their literal prefix, cut after its last `/` (`/api/v1/items/(\d+)` goes
//!   to bucket `/api/v1/items/`). A path only consults the buckets keyed by its own `/`-terminated prefixes,
//!   each holding routes in insertion order, and a route's full literal prefix is compared before its regex
//!   runs. A bucket holding many routes is searched with one [`RegexSet`] pass instead of one regex per route.
//!
//! The first-match-in-insertion-order rule is preserved across all of these: the lowest route index that
//! matches wins.
//!
//! # Examples
//!
//! ```
//! use gale_web::routing::{PathArgs, Router};
//!
//! let mut router = Router::new();
//! router.add("/", Some("home"), "home").unwrap();
//! router.add(r"/user/(\d+)", Some("user"), "user").unwrap();
//! router.add(r"/blog/(?P<year>\d{4})/(?P<slug>[^/]+)", Some("post"), "post").unwrap();
//!
//! let (target, args) = router.find("/user/42").unwrap();
//! assert_eq!(*target, "user");
//! assert_eq!(args.get(0), Some(&b"42"[..]));
//!
//! let (target, args) = router.find("/blog/2024/hello%20world").unwrap();
//! assert_eq!(*target, "post");
//! assert_eq!(args.get_named("slug"), Some(&b"hello world"[..]));
//!
//! assert!(router.find("/user/42/extra").is_none());
//! assert_eq!(router.reverse_url("post", ["2024", "a b"]).unwrap(), "/blog/2024/a%20b");
//! ```

use std::collections::HashMap;
use std::error::Error;
use std::fmt;
use std::hash::BuildHasherDefault;
use std::sync::{Arc, OnceLock};

use regex::{Captures, Regex, RegexSet, RegexSetBuilder};

use crate::escape::{url_escape, url_unescape_bytes};

/// Literal routes are looked up in a list, not the hash map, while there are at most this many.
const FEW_LITERALS: usize = 8;

/// Whether `literal` is `path`: lengths, then the first and last bytes, are compared before the whole, so
/// that most mismatches, and a match of up to two bytes (`/`), cost no call.
#[inline(always)]
fn same_path(literal: &str, path: &str) -> bool {
    let (a, b) = (literal.as_bytes(), path.as_bytes());
    match (a.first(), a.last(), b.first(), b.last()) {
        _ if a.len() != b.len() => false,
        (Some(a0), Some(a1), Some(b0), Some(b1)) => a0 == b0 && a1 == b1 && (a.len() <= 2 || a == b),
        _ => true,
    }
}

/// Buckets with at least this many regex routes are searched with a [`RegexSet`] rather than route by route.
const REGEX_SET_MIN_ROUTES: usize = 8;

/// Lazy-DFA cache budget of a bucket's [`RegexSet`] per route (the cache is filled on demand, up to this).
const SET_DFA_CACHE_PER_ROUTE: usize = 16 << 10;

/// Upper bound of one bucket's lazy-DFA cache.
const SET_DFA_CACHE_MAX: usize = 32 << 20;

/// Characters with a meaning in a regular expression outside a character class.
const REGEX_META: &[char] = &['.', '^', '$', '*', '+', '?', '(', ')', '[', ']', '{', '}', '|', '\\'];

/// The arguments a route's capturing groups extracted from the path, percent-decoded.
///
/// Which variant a route yields depends only on its pattern: [`PathArgs::Named`] when it has named groups,
/// [`PathArgs::Positional`] otherwise (empty for patterns without groups).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathArgs {
    /// Values of unnamed groups in pattern order; `None` for an optional group that did not match.
    Positional(Vec<Option<Vec<u8>>>),
    /// `(name, value)` for each named group in pattern order; `None` for an optional group that did not match.
    Named(Vec<(Arc<str>, Option<Vec<u8>>)>),
}

impl Default for PathArgs {
    fn default() -> Self {
        PathArgs::Positional(Vec::new())
    }
}

impl PathArgs {
    /// The number of captured groups (matched or not).
    pub fn len(&self) -> usize {
        match self {
            PathArgs::Positional(values) => values.len(),
            PathArgs::Named(values) => values.len(),
        }
    }

    /// Whether the pattern had no capturing group.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The positional values (empty for [`PathArgs::Named`]).
    pub fn positional(&self) -> &[Option<Vec<u8>>] {
        match self {
            PathArgs::Positional(values) => values,
            PathArgs::Named(_) => &[],
        }
    }

    /// The named values (empty for [`PathArgs::Positional`]).
    pub fn named(&self) -> &[(Arc<str>, Option<Vec<u8>>)] {
        match self {
            PathArgs::Positional(_) => &[],
            PathArgs::Named(values) => values,
        }
    }

    /// The positional value at `index`, if present and matched.
    pub fn get(&self, index: usize) -> Option<&[u8]> {
        self.positional().get(index)?.as_deref()
    }

    /// The named value `name`, if present and matched.
    pub fn get_named(&self, name: &str) -> Option<&[u8]> {
        self.named().iter().find(|(n, _)| &**n == name)?.1.as_deref()
    }
}

/// Why [`Router::add`] refused a route.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RouteError {
    /// The pattern is not a valid regular expression.
    InvalidPattern {
        /// The pattern as given.
        pattern: String,
        /// The regex compiler's explanation.
        reason: String,
    },
    /// The pattern has both named and unnamed capturing groups.
    MixedGroups {
        /// The pattern as given.
        pattern: String,
    },
    /// Another route already has this name.
    DuplicateName {
        /// The name.
        name: String,
    },
}

impl fmt::Display for RouteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RouteError::InvalidPattern { pattern, reason } => write!(f, "invalid url pattern {pattern:?}: {reason}"),
            RouteError::MixedGroups { pattern } => {
                write!(f, "groups in url pattern {pattern:?} must either be all named or all positional")
            }
            RouteError::DuplicateName { name } => write!(f, "a route named {name:?} already exists"),
        }
    }
}

impl Error for RouteError {}

/// Why [`Router::reverse_url`] could not build a path.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReverseError {
    /// No route has this name.
    UnknownName {
        /// The name asked for.
        name: String,
    },
    /// The route's pattern is too complex for Tornado's reversal method.
    NotReversible {
        /// The route's pattern.
        pattern: String,
    },
    /// The number of arguments differs from the number of groups in the pattern.
    WrongArgumentCount {
        /// The number of groups.
        expected: usize,
        /// The number of arguments given.
        given: usize,
    },
}

impl fmt::Display for ReverseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReverseError::UnknownName { name } => write!(f, "{name} not found in named urls"),
            ReverseError::NotReversible { pattern } => write!(f, "cannot reverse url regex {pattern}"),
            ReverseError::WrongArgumentCount { expected, given } => {
                write!(f, "url requires {expected} arguments, {given} given")
            }
        }
    }
}

impl Error for ReverseError {}

/// How a route recognises paths.
enum Matcher {
    /// The pattern is a plain string: the path must equal it.
    Literal(Box<str>),
    /// A real regular expression, anchored at the start, plus the literal prefix every match starts with.
    Regex { regex: Regex, prefix: Box<str>, names: Option<Arc<[Arc<str>]>> },
}

impl Matcher {
    /// The captures of a regex route matching `path` (checking the literal prefix first); `None` for literals,
    /// which are matched through the hash map.
    fn captures<'p>(&self, path: &'p str) -> Option<Captures<'p>> {
        match self {
            Matcher::Regex { regex, prefix, .. } if path.starts_with(&**prefix) => regex.captures(path),
            _ => None,
        }
    }
}

/// One piece of a reverse template.
#[derive(Debug)]
enum Piece {
    Literal(String),
    Argument,
}

/// One rule of the table.
struct Route<T> {
    pattern: Box<str>,
    name: Option<Box<str>>,
    target: T,
    matcher: Matcher,
    /// `None` if the pattern cannot be reversed.
    reverse: Option<Vec<Piece>>,
    group_count: usize,
}

/// Regex routes sharing one `/`-terminated literal prefix, in insertion order.
#[derive(Default)]
struct Bucket {
    routes: Vec<usize>,
    /// Built on first use once the bucket is large; `None` inside if the set could not be built.
    set: OnceLock<Option<RegexSet>>,
}

type FxBuild = BuildHasherDefault<rustc_hash::FxHasher>;

/// An ordered route table mapping URL paths to targets of type `T`; see the [module docs](self).
pub struct Router<T> {
    routes: Vec<Route<T>>,
    // Fx hashing: the tables are fixed once built, so paths chosen by clients cannot make them degrade, and a
    // lookup costs a few instructions instead of SipHash's hundred.
    literals: HashMap<Box<str>, usize, FxBuild>,
    /// The same literals in a list while they are few: comparing a handful of strings beats hashing the path.
    few_literals: Vec<(Box<str>, usize)>,
    buckets: HashMap<Box<str>, Bucket, FxBuild>,
    /// Index of the first regex route (`usize::MAX` if none): a literal match before it needs no bucket search.
    first_regex: usize,
    /// Length of the longest bucket key: path prefixes longer than this cannot select a bucket.
    longest_key: usize,
    names: HashMap<Box<str>, usize>,
}

impl<T> Default for Router<T> {
    fn default() -> Self {
        Router::new()
    }
}

impl<T> fmt::Debug for Router<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.routes.iter().map(|r| (&r.pattern, &r.name))).finish()
    }
}

impl<T> Router<T> {
    /// An empty table.
    pub fn new() -> Self {
        Router {
            routes: Vec::new(),
            literals: HashMap::default(),
            few_literals: Vec::new(),
            buckets: HashMap::default(),
            first_regex: usize::MAX,
            longest_key: 0,
            names: HashMap::new(),
        }
    }

    /// The number of routes.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// Whether the table has no route.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// Appends a route: paths matching `pattern` (and no earlier route) lead to `target`.
    ///
    /// `name`, if given, lets [`Router::reverse_url`] build paths for this route.
    ///
    /// # Errors
    ///
    /// [`RouteError::InvalidPattern`] if `pattern` does not compile, [`RouteError::MixedGroups`] if it has both
    /// named and unnamed groups, [`RouteError::DuplicateName`] if `name` is taken. The table is unchanged then.
    pub fn add(&mut self, pattern: &str, name: Option<&str>, target: T) -> Result<(), RouteError> {
        if let Some(name) = name.filter(|name| self.names.contains_key(*name)) {
            return Err(RouteError::DuplicateName { name: name.to_owned() });
        }
        // Tornado: `if not pattern.endswith("$"): pattern += "$"`, then `regex.match` anchors at the start.
        let anchored: String = if pattern.ends_with('$') { pattern.to_owned() } else { format!("{pattern}$") };
        let (matcher, group_count) = match literal_pattern(&anchored) {
            Some(literal) => (Matcher::Literal(literal.into()), 0),
            None => {
                let regex = Regex::new(&format!(r"\A(?:{anchored})"))
                    .map_err(|e| RouteError::InvalidPattern { pattern: pattern.to_owned(), reason: e.to_string() })?;
                let group_count = regex.captures_len() - 1;
                let names: Vec<Arc<str>> = regex.capture_names().flatten().map(Arc::from).collect();
                if !names.is_empty() && names.len() != group_count {
                    return Err(RouteError::MixedGroups { pattern: pattern.to_owned() });
                }
                let names = (!names.is_empty()).then(|| Arc::from(names));
                (Matcher::Regex { regex, prefix: literal_prefix(&anchored).into(), names }, group_count)
            }
        };
        let index = self.routes.len();
        match &matcher {
            Matcher::Literal(literal) => {
                // An earlier identical literal already wins every lookup; keep the first.
                if !self.literals.contains_key(literal) {
                    self.literals.insert(literal.clone(), index);
                    self.few_literals.push((literal.clone(), index));
                }
                if self.literals.len() > FEW_LITERALS {
                    self.few_literals = Vec::new();
                }
            }
            Matcher::Regex { prefix, .. } => {
                let key = bucket_key(prefix);
                self.longest_key = self.longest_key.max(key.len());
                self.first_regex = self.first_regex.min(index);
                let bucket = self.buckets.entry(key.into()).or_default();
                bucket.routes.push(index);
                bucket.set = OnceLock::new();
            }
        }
        if let Some(name) = name {
            self.names.insert(name.into(), index);
        }
        self.routes.push(Route {
            pattern: pattern.into(),
            name: name.map(Into::into),
            target,
            reverse: reverse_template(&anchored, group_count),
            matcher,
            group_count,
        });
        Ok(())
    }

    /// Finds the first route matching `path` and returns its target with the arguments captured from `path`.
    ///
    /// `path` is the request path as received (still percent-encoded, without the query string).
    pub fn find(&self, path: &str) -> Option<(&T, PathArgs)> {
        self.lookup(path).map(|(target, args)| (target, args.unwrap_or_default()))
    }

    /// [`find`](Router::find), with `None` for the arguments of a pattern without groups (nothing to drop).
    #[inline(always)]
    pub(crate) fn lookup(&self, path: &str) -> Option<(&T, Option<PathArgs>)> {
        // The usual case, kept small enough to be inlined: a literal route that no regex route precedes.
        match self.literal_index(path) {
            Some(i) if i < self.first_regex => Some((&self.routes[i].target, None)),
            literal => self.lookup_searching(path, literal),
        }
    }

    /// The index of the first literal route equal to `path`.
    #[inline(always)]
    fn literal_index(&self, path: &str) -> Option<usize> {
        if self.literals.len() <= FEW_LITERALS {
            self.few_literals.iter().find(|(l, _)| same_path(l, path)).map(|&(_, i)| i)
        } else {
            self.literals.get(path).copied()
        }
    }

    /// [`lookup`](Router::lookup) when regex routes may come before `literal` (the path's literal route, if
    /// any): the buckets are searched.
    #[inline(never)]
    fn lookup_searching(&self, path: &str, literal: Option<usize>) -> Option<(&T, Option<PathArgs>)> {
        let mut best: Option<(usize, Option<Captures<'_>>)> = literal.map(|i| (i, None));
        if literal.unwrap_or(usize::MAX) > self.first_regex {
            self.search_bucket_prefixes(path, &mut best);
        }
        let (index, captures) = best?;
        let route = &self.routes[index];
        let args = match (&route.matcher, captures) {
            (Matcher::Regex { names, .. }, Some(captures)) => Some(path_args(&captures, names.as_ref())),
            _ => None,
        };
        Some((&route.target, args))
    }

    /// Searches the buckets keyed by `path`'s `/`-terminated prefixes (and the empty one).
    fn search_bucket_prefixes<'p>(&self, path: &'p str, best: &mut Option<(usize, Option<Captures<'p>>)>) {
        self.search_bucket("", path, best);
        if self.longest_key > 0 {
            let limit = path.len().min(self.longest_key);
            for (slash, _) in path.as_bytes()[..limit].iter().enumerate().filter(|(_, b)| **b == b'/') {
                self.search_bucket(&path[..=slash], path, best);
            }
        }
    }

    /// Looks for a route in bucket `key` matching `path` with a lower index than `best`, updating `best`.
    fn search_bucket<'p>(&self, key: &str, path: &'p str, best: &mut Option<(usize, Option<Captures<'p>>)>) {
        let Some(bucket) = self.buckets.get(key) else { return };
        let bound = best.as_ref().map_or(usize::MAX, |(i, _)| *i);
        if bucket.routes.first().is_none_or(|&first| first >= bound) {
            return;
        }
        if bucket.routes.len() >= REGEX_SET_MIN_ROUTES {
            if let Some(set) = bucket.set.get_or_init(|| self.build_set(bucket)) {
                // Set indices follow the bucket's (ascending) route order, so the first hit is the earliest.
                if let Some(index) = set.matches(path).iter().next().map(|hit| bucket.routes[hit]) {
                    if index < bound {
                        if let Some(captures) = self.routes[index].matcher.captures(path) {
                            *best = Some((index, Some(captures)));
                        }
                    }
                }
                return;
            }
        }
        for &index in bucket.routes.iter().take_while(|&&i| i < bound) {
            if let Some(captures) = self.routes[index].matcher.captures(path) {
                *best = Some((index, Some(captures)));
                return;
            }
        }
    }

    /// Compiles one set from a bucket's patterns, `None` if the combined automaton exceeds the size limits.
    fn build_set(&self, bucket: &Bucket) -> Option<RegexSet> {
        let patterns = bucket.routes.iter().filter_map(|&i| match &self.routes[i].matcher {
            Matcher::Regex { regex, .. } => Some(regex.as_str()),
            Matcher::Literal(_) => None,
        });
        // The lazy DFA of a large set needs a cache that grows with the number of patterns; with the default
        // 2 MiB a set of 1,000 routes thrashes it and falls back to a slow NFA simulation (~400x slower).
        let cache = (bucket.routes.len() * SET_DFA_CACHE_PER_ROUTE).clamp(2 << 20, SET_DFA_CACHE_MAX);
        RegexSetBuilder::new(patterns).dfa_size_limit(cache).build().ok()
    }

    /// Builds the path of the route called `name` from `args` (Tornado's `reverse_url`).
    ///
    /// Each argument replaces one capturing group, in order, URL-escaped as a path component (`/` is kept,
    /// space becomes `%20`).
    ///
    /// # Errors
    ///
    /// [`ReverseError::UnknownName`], [`ReverseError::NotReversible`] for patterns Tornado's method cannot
    /// invert, [`ReverseError::WrongArgumentCount`] when `args` does not supply exactly one value per group.
    ///
    /// # Examples
    ///
    /// ```
    /// use gale_web::routing::Router;
    ///
    /// let mut router = Router::new();
    /// router.add(r"/files/(.+)\.txt", Some("file"), ()).unwrap();
    /// assert_eq!(router.reverse_url("file", ["a/b c"]).unwrap(), "/files/a/b%20c.txt");
    /// ```
    pub fn reverse_url<I>(&self, name: &str, args: I) -> Result<String, ReverseError>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let &index = self.names.get(name).ok_or_else(|| ReverseError::UnknownName { name: name.to_owned() })?;
        let route = &self.routes[index];
        let pieces =
            route.reverse.as_ref().ok_or_else(|| ReverseError::NotReversible { pattern: route.pattern.to_string() })?;
        let args: Vec<I::Item> = args.into_iter().collect();
        if args.len() != route.group_count {
            return Err(ReverseError::WrongArgumentCount { expected: route.group_count, given: args.len() });
        }
        let mut args = args.iter();
        let mut out = String::new();
        for piece in pieces {
            match piece {
                Piece::Literal(text) => out.push_str(text),
                Piece::Argument => {
                    // The count was checked above and the template has exactly `group_count` arguments.
                    if let Some(arg) = args.next() {
                        out.push_str(&url_escape(arg.as_ref(), false));
                    }
                }
            }
        }
        Ok(out)
    }

    /// The routes in order, as `(pattern, name, target)`.
    pub fn iter(&self) -> impl Iterator<Item = (&str, Option<&str>, &T)> {
        self.routes.iter().map(|r| (&*r.pattern, r.name.as_deref(), &r.target))
    }
}

/// Builds the handler arguments from a successful match.
fn path_args(captures: &Captures<'_>, names: Option<&Arc<[Arc<str>]>>) -> PathArgs {
    let decode = |m: Option<regex::Match<'_>>| m.map(|m| url_unescape_bytes(m.as_str().as_bytes(), false).into_owned());
    match names {
        Some(names) => PathArgs::Named(names.iter().map(|n| (n.clone(), decode(captures.name(n)))).collect()),
        None => PathArgs::Positional(captures.iter().skip(1).map(decode).collect()),
    }
}

/// If `anchored` (a pattern ending in `$`) matches exactly one string, returns that string.
fn literal_pattern(anchored: &str) -> Option<String> {
    let body = anchored.strip_prefix('^').unwrap_or(anchored);
    let body = body.strip_suffix('$')?;
    let mut out = String::with_capacity(body.len());
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some(escaped) if !escaped.is_ascii_alphanumeric() && !matches!(escaped, '<' | '>') => out.push(escaped),
                _ => return None,
            }
        } else if REGEX_META.contains(&c) {
            return None;
        } else {
            out.push(c);
        }
    }
    Some(out)
}

/// The literal text every match of `anchored` starts with (possibly empty).
fn literal_prefix(anchored: &str) -> String {
    if has_top_level_alternation(anchored) {
        return String::new();
    }
    let body = anchored.strip_prefix('^').unwrap_or(anchored);
    let mut prefix = String::new();
    let mut chars = body.chars().peekable();
    while let Some(c) = chars.next() {
        let literal = if c == '\\' {
            match chars.next() {
                Some(escaped) if !escaped.is_ascii_alphanumeric() && !matches!(escaped, '<' | '>') => escaped,
                _ => break,
            }
        } else if REGEX_META.contains(&c) {
            break;
        } else {
            c
        };
        match chars.peek() {
            // The character may be absent: it is not part of the prefix.
            Some('?' | '*' | '{') => break,
            // Present at least once.
            Some('+') => {
                prefix.push(literal);
                break;
            }
            _ => prefix.push(literal),
        }
    }
    prefix
}

/// Whether `pattern` has a `|` outside every group and character class.
fn has_top_level_alternation(pattern: &str) -> bool {
    let mut depth = 0usize;
    let mut in_class = false;
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                chars.next();
            }
            ']' if in_class => in_class = false,
            _ if in_class => {}
            '[' => {
                in_class = true;
                // A `]` right after `[` or `[^` is a literal member of the class.
                let rest = chars.as_str();
                let skip = if rest.starts_with("^]") { 2 } else { usize::from(rest.starts_with(']')) };
                for _ in 0..skip {
                    chars.next();
                }
            }
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            '|' if depth == 0 => return true,
            _ => {}
        }
    }
    false
}

/// The bucket a regex route with literal `prefix` belongs to: the prefix cut after its last `/`.
fn bucket_key(prefix: &str) -> &str {
    prefix.rfind('/').map_or("", |slash| &prefix[..=slash])
}

/// Tornado's `PathMatches._find_groups`: the reverse template of `anchored`, or `None` if it cannot be reversed.
fn reverse_template(anchored: &str, group_count: usize) -> Option<Vec<Piece>> {
    let pattern = anchored.strip_prefix('^').unwrap_or(anchored);
    let pattern = pattern.strip_suffix('$').unwrap_or(pattern);
    if pattern.matches('(').count() != group_count {
        return None;
    }
    let mut pieces = Vec::new();
    let mut arguments = 0;
    for (i, fragment) in pattern.split('(').enumerate() {
        let literal = match fragment.find(')') {
            // Text inside a group is replaced by the argument; what follows the group is kept.
            Some(close) if i > 0 => {
                pieces.push(Piece::Argument);
                arguments += 1;
                &fragment[close + 1..]
            }
            Some(_) => return None,
            None => fragment,
        };
        let literal = re_unescape(literal)?;
        if !literal.is_empty() {
            pieces.push(Piece::Literal(literal));
        }
    }
    // Nested groups would need fewer arguments than groups; Tornado would fail at formatting time.
    (arguments == group_count).then_some(pieces)
}

/// Tornado's `re_unescape`: undoes `re.escape`, failing on escapes such as `\d` that it cannot have produced.
fn re_unescape(text: &str) -> Option<String> {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some(escaped) if escaped.is_ascii_alphanumeric() => return None,
            Some(escaped) => out.push(escaped),
            None => out.push('\\'),
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_path_is_string_equality() {
        let cases = ["", "/", "//", "/a", "/ab", "/json", "/jsoN", "/j", "/json/", "a/", "ab"];
        for a in cases {
            for b in cases {
                assert_eq!(same_path(a, b), a == b, "{a:?} {b:?}");
            }
        }
    }

    fn router(patterns: &[&str]) -> Router<usize> {
        let mut router = Router::new();
        for (i, pattern) in patterns.iter().enumerate() {
            router.add(pattern, Some(&format!("r{i}")), i).unwrap();
        }
        router
    }

    fn target(router: &Router<usize>, path: &str) -> Option<usize> {
        router.find(path).map(|(t, _)| *t)
    }

    #[test]
    fn literal_routes_match_the_whole_path_only() {
        let r = router(&["/", "/about", r"/robots\.txt", "^/anchored$"]);
        assert_eq!(target(&r, "/"), Some(0));
        assert_eq!(target(&r, "/about"), Some(1));
        assert_eq!(target(&r, "/robots.txt"), Some(2));
        assert_eq!(target(&r, "/anchored"), Some(3));
        assert_eq!(target(&r, "/about/"), None);
        assert_eq!(target(&r, "/robotsxtxt"), None);
        assert_eq!(target(&r, ""), None);
    }

    #[test]
    fn literal_detection_ignores_escaped_metacharacters_only() {
        assert_eq!(literal_pattern(r"/a\.b\/c\-d$").as_deref(), Some("/a.b/c-d"));
        assert_eq!(literal_pattern("^/x$").as_deref(), Some("/x"));
        assert_eq!(literal_pattern(r"/a\d$"), None);
        assert_eq!(literal_pattern("/a.b$"), None);
        assert_eq!(literal_pattern("/a|b$"), None);
    }

    #[test]
    fn regex_routes_are_anchored_at_both_ends() {
        let r = router(&[r"/user/(\d+)"]);
        assert_eq!(target(&r, "/user/42"), Some(0));
        assert_eq!(target(&r, "/user/42/"), None);
        assert_eq!(target(&r, "/x/user/42"), None);
        assert_eq!(target(&r, "/user/"), None);
    }

    #[test]
    fn top_level_alternation_keeps_tornados_prefix_match_quirk() {
        // Tornado appends `$` to the last branch only: `/a|/b$` matches anything starting with `/a`.
        let r = router(&["/a|/b"]);
        assert_eq!(target(&r, "/a"), Some(0));
        assert_eq!(target(&r, "/abc"), Some(0));
        assert_eq!(target(&r, "/b"), Some(0));
        assert_eq!(target(&r, "/bc"), None);
    }

    #[test]
    fn the_first_matching_route_wins_across_literals_and_buckets() {
        let r = router(&["/(.*)", "/about", r"/api/(\w+)", "/api/users"]);
        assert_eq!(target(&r, "/about"), Some(0));
        assert_eq!(target(&r, "/api/users"), Some(0));
        let r = router(&["/about", r"/api/(\w+)", "/api/users", "/(.*)"]);
        assert_eq!(target(&r, "/about"), Some(0));
        assert_eq!(target(&r, "/api/users"), Some(1));
        assert_eq!(target(&r, "/api/users/x"), Some(3));
        assert_eq!(target(&r, "/elsewhere"), Some(3));
        // A literal that no regex route precedes is found without a search, and has no arguments.
        assert!(r.lookup("/about").is_some_and(|(t, args)| *t == 0 && args.is_none()));
        assert!(r.lookup("/api/users").is_some_and(|(t, args)| *t == 1 && args.is_some()));
    }

    #[test]
    fn literal_lookup_is_the_same_with_few_and_many_literals() {
        for count in [1, FEW_LITERALS - 1, FEW_LITERALS, FEW_LITERALS + 1, 3 * FEW_LITERALS] {
            let mut r = Router::new();
            for i in 0..count {
                r.add(&format!("/p{i}"), None, i).unwrap();
                // A duplicate never wins.
                r.add(&format!("/p{i}"), None, 1000 + i).unwrap();
            }
            for i in 0..count {
                assert_eq!(r.find(&format!("/p{i}")).map(|(t, _)| *t), Some(i), "{count} routes");
            }
            assert!(r.find("/p").is_none());
            assert!(r.find(&format!("/p{count}")).is_none());
        }
    }

    #[test]
    fn a_duplicate_literal_route_never_shadows_the_first() {
        let r = router(&["/same", "/same"]);
        assert_eq!(target(&r, "/same"), Some(0));
        assert_eq!(r.len(), 2);
    }

    #[test]
    fn positional_groups_are_percent_decoded_without_plus_conversion() {
        let r = router(&[r"/files/([^/]+)/(.+)"]);
        let (_, args) = r.find("/files/a%20b+c/d%2Fe").unwrap();
        assert_eq!(args, PathArgs::Positional(vec![Some(b"a b+c".to_vec()), Some(b"d/e".to_vec())]));
        assert_eq!(args.get(1), Some(&b"d/e"[..]));
        assert_eq!(args.get_named("x"), None);
    }

    #[test]
    fn invalid_utf8_in_captures_is_passed_through_as_bytes() {
        let r = router(&["/raw/(.*)"]);
        let (_, args) = r.find("/raw/%FF%FE").unwrap();
        assert_eq!(args.get(0), Some(&b"\xff\xfe"[..]));
    }

    #[test]
    fn named_groups_are_passed_by_name_only() {
        let r = router(&[r"/blog/(?P<year>\d{4})/(?<slug>[a-z-]+)"]);
        let (_, args) = r.find("/blog/2024/hello-world").unwrap();
        assert_eq!(args.named().len(), 2);
        assert_eq!(&*args.named()[0].0, "year");
        assert_eq!(args.get_named("year"), Some(&b"2024"[..]));
        assert_eq!(args.get_named("slug"), Some(&b"hello-world"[..]));
        assert!(args.positional().is_empty());
    }

    #[test]
    fn unmatched_optional_groups_yield_none() {
        let r = router(&[r"/page(/\d+)?", r"/n/(?P<a>x)?(?P<b>y)?"]);
        let (_, args) = r.find("/page").unwrap();
        assert_eq!(args, PathArgs::Positional(vec![None]));
        let (_, args) = r.find("/page/3").unwrap();
        assert_eq!(args.get(0), Some(&b"/3"[..]));
        let (_, args) = r.find("/n/y").unwrap();
        assert_eq!(args.named()[0].1, None);
        assert_eq!(args.get_named("b"), Some(&b"y"[..]));
    }

    #[test]
    fn patterns_without_groups_give_empty_arguments() {
        let r = router(&[r"/static/.*"]);
        let (_, args) = r.find("/static/x.css").unwrap();
        assert!(args.is_empty());
        assert_eq!(args, PathArgs::default());
    }

    #[test]
    fn mixing_named_and_positional_groups_is_rejected() {
        let mut r = Router::new();
        let err = r.add(r"/(?P<a>\d+)/(\d+)", None, ()).unwrap_err();
        assert!(matches!(err, RouteError::MixedGroups { .. }), "{err}");
        assert!(r.is_empty());
    }

    #[test]
    fn invalid_regexes_are_rejected_with_the_pattern() {
        let mut r = Router::new();
        let err = r.add("/(unclosed", None, ()).unwrap_err();
        assert!(matches!(&err, RouteError::InvalidPattern { pattern, .. } if pattern == "/(unclosed"));
        assert!(err.to_string().contains("/(unclosed"));
    }

    #[test]
    fn duplicate_names_are_rejected() {
        let mut r = Router::new();
        r.add("/a", Some("x"), ()).unwrap();
        assert_eq!(r.add("/b", Some("x"), ()), Err(RouteError::DuplicateName { name: "x".into() }));
        assert_eq!(r.len(), 1);
    }

    #[test]
    fn prefixes_stop_before_optional_characters_and_alternations() {
        assert_eq!(literal_prefix(r"/api/v1/items/(\d+)$"), "/api/v1/items/");
        assert_eq!(literal_prefix(r"^/ab?c$"), "/a");
        assert_eq!(literal_prefix(r"/ab*$"), "/a");
        assert_eq!(literal_prefix(r"/ab{0,2}$"), "/a");
        assert_eq!(literal_prefix(r"/ab+$"), "/ab");
        assert_eq!(literal_prefix(r"/a\.b.*$"), "/a.b");
        assert_eq!(literal_prefix(r"/x/(a|b)$"), "/x/");
        assert_eq!(literal_prefix(r"/x/a|/y/b$"), "");
        assert_eq!(literal_prefix(r"/x/[|]|/y$"), "");
        assert_eq!(literal_prefix(r"/x/[|](a)$"), "/x/");
        assert_eq!(literal_prefix(r"/x/[]|]$"), "/x/");
        assert_eq!(literal_prefix(r"(?i)/abc$"), "");
        assert_eq!(bucket_key("/api/v1/it"), "/api/v1/");
        assert_eq!(bucket_key("abc"), "");
    }

    #[test]
    fn optional_leading_characters_do_not_hide_a_route() {
        let r = router(&["/ab?c", "/x*y", "/z{0,1}w"]);
        assert_eq!(target(&r, "/ac"), Some(0));
        assert_eq!(target(&r, "/abc"), Some(0));
        assert_eq!(target(&r, "/y"), Some(1));
        assert_eq!(target(&r, "/w"), Some(2));
    }

    #[test]
    fn case_insensitive_patterns_are_found_in_the_root_bucket() {
        let r = router(&["(?i)/Hello"]);
        assert_eq!(target(&r, "/HELLO"), Some(0));
    }

    #[test]
    fn large_buckets_use_a_regex_set_and_keep_insertion_order() {
        let mut patterns: Vec<String> = (0..50).map(|i| format!(r"/api/(\d+)/r{i}")).collect();
        patterns.insert(10, r"/api/(\d+)/r4(\d)".to_owned());
        patterns.push(r"/api/(.*)".to_owned());
        let refs: Vec<&str> = patterns.iter().map(String::as_str).collect();
        let r = router(&refs);
        assert!(r.buckets["/api/"].routes.len() >= REGEX_SET_MIN_ROUTES);
        assert_eq!(target(&r, "/api/7/r3"), Some(3));
        // `/api/7/r45` matches both `r4(\d)` (index 10) and `r45` (index 46): the earlier wins.
        assert_eq!(target(&r, "/api/7/r45"), Some(10));
        let (_, args) = r.find("/api/7/r45").unwrap();
        assert_eq!(args.get(1), Some(&b"5"[..]));
        assert_eq!(target(&r, "/api/7/r12"), Some(13));
        assert_eq!(target(&r, "/api/7/r49"), Some(10));
        assert_eq!(target(&r, "/api/x/nothing"), Some(51));
        assert!(r.buckets["/api/"].set.get().is_some_and(Option::is_some));
    }

    #[test]
    fn adding_a_route_invalidates_the_bucket_set() {
        let mut r = Router::new();
        for i in 0..REGEX_SET_MIN_ROUTES {
            r.add(&format!(r"/s/(\d+)/{i}"), None, i).unwrap();
        }
        assert!(r.find("/s/1/new").is_none());
        r.add(r"/s/(\d+)/new", None, 99).unwrap();
        assert_eq!(r.find("/s/1/new").map(|(t, _)| *t), Some(99));
    }

    #[test]
    fn reverse_url_fills_groups_with_escaped_arguments() {
        let r = router(&[r"/user/(\d+)", r"/blog/([0-9]{4})/([a-z-]+)/", r"/files/(.*)", r"^/lit\.html$"]);
        assert_eq!(r.reverse_url("r0", ["42"]).unwrap(), "/user/42");
        assert_eq!(r.reverse_url("r1", ["2024", "a b"]).unwrap(), "/blog/2024/a%20b/");
        assert_eq!(r.reverse_url("r2", ["dir/é&x"]).unwrap(), "/files/dir/%C3%A9%26x");
        assert_eq!(r.reverse_url("r3", [""; 0]).unwrap(), "/lit.html");
    }

    #[test]
    fn reverse_url_accepts_named_groups_positionally() {
        let r = router(&[r"/blog/(?P<year>\d{4})/(?P<slug>[^/]+)"]);
        assert_eq!(r.reverse_url("r0", vec!["2023".to_owned(), "x".to_owned()]).unwrap(), "/blog/2023/x");
    }

    #[test]
    fn reverse_url_reports_unknown_names_and_argument_counts() {
        let r = router(&[r"/user/(\d+)"]);
        assert_eq!(r.reverse_url("nope", ["1"]), Err(ReverseError::UnknownName { name: "nope".into() }));
        assert_eq!(r.reverse_url("r0", ["1", "2"]), Err(ReverseError::WrongArgumentCount { expected: 1, given: 2 }));
    }

    #[test]
    fn complex_patterns_are_not_reversible() {
        let r = router(&[r"/a/(?:x|y)/(\d+)", r"/b/\d+/(\w+)", r"/c/((a)b)", r"/d/\(x"]);
        for name in ["r0", "r1", "r2", "r3"] {
            let err = r.reverse_url(name, ["1"]).unwrap_err();
            assert!(matches!(err, ReverseError::NotReversible { .. }), "{name}: {err}");
        }
    }

    #[test]
    fn re_unescape_rejects_class_escapes() {
        assert_eq!(re_unescape(r"a\.b\-c\/").as_deref(), Some("a.b-c/"));
        assert_eq!(re_unescape(r"a\d"), None);
        assert_eq!(re_unescape("trailing\\").as_deref(), Some("trailing\\"));
    }

    #[test]
    fn iter_lists_routes_in_insertion_order() {
        let mut r = Router::new();
        r.add("/a", Some("a"), 1).unwrap();
        r.add("/b/(.*)", None, 2).unwrap();
        let listed: Vec<_> = r.iter().collect();
        assert_eq!(listed, [("/a", Some("a"), &1), ("/b/(.*)", None, &2)]);
        assert_eq!(format!("{r:?}"), r#"[("/a", Some("a")), ("/b/(.*)", None)]"#);
    }

    #[test]
    fn non_ascii_paths_and_patterns_are_handled() {
        let r = router(&["/café/(.+)", "/ü"]);
        assert_eq!(target(&r, "/café/x"), Some(0));
        assert_eq!(target(&r, "/ü"), Some(1));
        assert_eq!(target(&r, "/caf"), None);
    }

    /// Rough lookup cost; run with `cargo test --release -- --ignored --nocapture routing_lookup_cost`.
    #[test]
    #[ignore = "benchmark, prints figures"]
    fn routing_lookup_cost() {
        use std::hint::black_box;
        use std::time::Instant;

        fn table(n: usize) -> Router<usize> {
            let mut r = Router::new();
            for i in 0..n {
                let pattern = match i % 4 {
                    0 => format!("/page{i}"),
                    1 => format!(r"/api/v1/res{i}/(\d+)"),
                    2 => format!(r"/user{i}/(?P<name>[^/]+)/posts/(?P<post>\d+)"),
                    _ => format!(r"/static{i}/(.*)"),
                };
                r.add(&pattern, None, i).unwrap();
            }
            r
        }

        for n in [10, 1_000] {
            let r = table(n);
            let last = |k: usize| (0..n).rev().find(|i| i % 4 == k).unwrap();
            let paths = [
                format!("/page{}", last(0)),
                format!("/api/v1/res{}/12345", last(1)),
                format!("/user{}/alice/posts/7", last(2)),
                format!("/static{}/css/site.css", last(3)),
                "/no/such/path".to_owned(),
            ];
            for path in &paths {
                let expected = r.find(path).map(|(t, _)| *t);
                let iterations = 200_000;
                let start = Instant::now();
                for _ in 0..iterations {
                    black_box(r.find(black_box(path)));
                }
                let ns = start.elapsed().as_nanos() / iterations;
                println!("{n:>5} routes  {path:<40} -> {expected:?}: {ns} ns/lookup");
            }
        }

        // Worst case for the prefix index: every route in one bucket, told apart only after a regex group.
        for n in [10, 1_000] {
            let mut r = Router::new();
            for i in 0..n {
                r.add(&format!(r"/items/(\d+)/action{i}"), None, i).unwrap();
            }
            for path in [format!("/items/42/action{}", n - 1), "/items/42/none".to_owned()] {
                let expected = r.find(&path).map(|(t, _)| *t);
                let iterations = 20_000;
                let start = Instant::now();
                for _ in 0..iterations {
                    black_box(r.find(black_box(&path)));
                }
                let ns = start.elapsed().as_nanos() / iterations;
                println!("{n:>5} routes, one bucket  {path:<28} -> {expected:?}: {ns} ns/lookup");
            }
        }
    }
}
