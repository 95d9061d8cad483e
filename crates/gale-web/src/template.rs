//! Templates: a thin layer over [`minijinja`] (Jinja2 syntax) configured the way a web application needs it.
//!
//! Tornado ships its own template language; gale uses Jinja2's, through minijinja, with Tornado's defaults:
//!
//! * **Autoescaping** is on for `.html`, `.htm`, `.xml` and `.xhtml` templates (also with a trailing `.j2`,
//!   `.jinja` or `.jinja2`): every `{{ value }}` is HTML-escaped unless it is marked safe (`|safe`, or a
//!   [`Value::from_safe_string`] from Rust). Other names follow minijinja's default (no escaping for `.txt`).
//! * **Loading** from a template directory (Tornado's `template_path`); names are `/`-separated paths below it,
//!   and names with a segment starting with `.` (such as `..`) are refused.
//! * **Caching**: a template is read and compiled once, then reused; [`Templates::clear_cache`] forgets
//!   compiled templates (for autoreload in debug mode).
//! * **Undefined variables** fail when printed or iterated (Tornado raises `NameError`), but may be tested with
//!   `{% if name %}` or `{% if name is defined %}`.
//! * **Namespace**: `xhtml_escape`, `url_escape`, `json_encode` and `squeeze` are available as filters and
//!   functions, as in Tornado's template namespace. Applications add their own globals and functions
//!   ([`Templates::add_global`], [`Templates::add_function`]) and per-request values such as
//!   `xsrf_form_html` or `static_url` with [`Templates::render_with`].
//!
//! # Examples
//!
//! ```
//! use gale_web::template::{Templates, Value};
//!
//! let mut templates = Templates::new();
//! templates.add_template("base.html", "<title>{% block title %}{% endblock %}</title>{% block body %}{% endblock %}").unwrap();
//! templates.add_template("page.html", r#"{% extends "base.html" %}{% block title %}{{ title }}{% endblock %}
//! {%- block body %}{{ xsrf_form_html() }}{% endblock %}"#).unwrap();
//!
//! let form = Value::from_safe_string(r#"<input type="hidden" name="_xsrf" value="t"/>"#.to_owned());
//! let html = templates
//!     .render_with("page.html", serde_json::json!({"title": "<Tom & Jerry>"}), [("xsrf_form_html", Value::from_function(move || form.clone()))])
//!     .unwrap();
//! assert_eq!(html, r#"<title>&lt;Tom &amp; Jerry&gt;</title><input type="hidden" name="_xsrf" value="t"/>"#);
//! ```

use std::error::Error;
use std::fmt;
use std::path::Path;

use minijinja::value::merge_maps;
use minijinja::{AutoEscape, Environment, ErrorKind, UndefinedBehavior};
use serde::Serialize;

pub use minijinja::Value;

/// A rendering or loading failure, with the template name and line when known.
#[derive(Debug)]
pub struct TemplateError(minijinja::Error);

impl TemplateError {
    /// Whether the template (or one it extends or includes) does not exist.
    pub fn is_not_found(&self) -> bool {
        self.0.kind() == ErrorKind::TemplateNotFound
    }

    /// Whether the template source is not valid template syntax.
    pub fn is_syntax_error(&self) -> bool {
        self.0.kind() == ErrorKind::SyntaxError
    }

    /// Whether the template used a variable that is not defined.
    pub fn is_undefined(&self) -> bool {
        self.0.kind() == ErrorKind::UndefinedError
    }

    /// The name of the template in which the error occurred.
    pub fn template_name(&self) -> Option<&str> {
        self.0.name()
    }

    /// The line (1-based) at which the error occurred.
    pub fn line(&self) -> Option<usize> {
        self.0.line()
    }

    /// The underlying minijinja error.
    pub fn inner(&self) -> &minijinja::Error {
        &self.0
    }
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)?;
        if let (Some(name), Some(line)) = (self.0.name(), self.0.line()) {
            write!(f, " (in {name}:{line})")?;
        }
        Ok(())
    }
}

impl Error for TemplateError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(&self.0)
    }
}

impl From<minijinja::Error> for TemplateError {
    fn from(error: minijinja::Error) -> Self {
        TemplateError(error)
    }
}

/// The autoescape mode for a template name: HTML for markup extensions, minijinja's default otherwise.
fn auto_escape_for(name: &str) -> AutoEscape {
    let base = [".j2", ".jinja2", ".jinja"].iter().find_map(|ext| name.strip_suffix(ext)).unwrap_or(name);
    match base.rsplit_once('.').map(|(_, ext)| ext.to_ascii_lowercase()) {
        Some(ext) if matches!(ext.as_str(), "html" | "htm" | "xml" | "xhtml") => AutoEscape::Html,
        _ => minijinja::default_auto_escape_callback(name),
    }
}

/// A set of templates: a configured minijinja [`Environment`]; see the [module docs](self).
pub struct Templates {
    env: Environment<'static>,
}

impl fmt::Debug for Templates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let loaded: Vec<&str> = self.env.templates().map(|(name, _)| name).collect();
        f.debug_struct("Templates").field("loaded", &loaded).finish()
    }
}

impl Default for Templates {
    fn default() -> Self {
        Templates::new()
    }
}

impl Templates {
    /// Templates without a directory: add them with [`Templates::add_template`].
    pub fn new() -> Self {
        let mut env = Environment::new();
        env.set_auto_escape_callback(auto_escape_for);
        env.set_undefined_behavior(UndefinedBehavior::SemiStrict);
        env.set_formatter(format_value);
        env.add_function("xhtml_escape", |s: String| crate::escape::xhtml_escape(&s).into_owned());
        env.add_function("url_escape", |s: String| crate::escape::url_escape(&s, true));
        env.add_function("squeeze", |s: String| crate::escape::squeeze(&s));
        env.add_function("json_encode", json_encode);
        env.add_filter("xhtml_escape", |s: String| crate::escape::xhtml_escape(&s).into_owned());
        env.add_filter("url_escape", |s: String| crate::escape::url_escape(&s, true));
        env.add_filter("squeeze", |s: String| crate::escape::squeeze(&s));
        env.add_filter("json_encode", json_encode);
        Templates { env }
    }

    /// Templates loaded on demand from the directory `template_path` (Tornado's `template_path` setting).
    ///
    /// Nothing is read until a template is rendered; a missing directory surfaces as "template not found".
    pub fn from_dir(template_path: impl AsRef<Path>) -> Self {
        let mut templates = Templates::new();
        templates.env.set_loader(minijinja::path_loader(template_path.as_ref()));
        templates
    }

    /// Adds (or replaces) a template from a string.
    ///
    /// # Errors
    ///
    /// A syntax error in `source`.
    pub fn add_template(&mut self, name: &str, source: &str) -> Result<(), TemplateError> {
        Ok(self.env.add_template_owned(name.to_owned(), source.to_owned())?)
    }

    /// Makes `value` available to every template as `name`.
    pub fn add_global(&mut self, name: &str, value: impl Serialize) {
        self.env.add_global(name.to_owned(), Value::from_serialize(value));
    }

    /// Makes the Rust function `f` callable from every template as `name(...)`.
    ///
    /// Return a [`Value::from_safe_string`] for HTML that must not be escaped again.
    pub fn add_function<F, Rv, Args>(&mut self, name: &str, f: F)
    where
        F: minijinja::functions::Function<Rv, Args>,
        Rv: minijinja::value::FunctionResult,
        Args: for<'a> minijinja::value::FunctionArgs<'a>,
    {
        self.env.add_function(name.to_owned(), f);
    }

    /// Makes the Rust function `f` usable as the filter `value|name(...)`.
    pub fn add_filter<F, Rv, Args>(&mut self, name: &str, f: F)
    where
        F: minijinja::functions::Function<Rv, Args>,
        Rv: minijinja::value::FunctionResult,
        Args: for<'a> minijinja::value::FunctionArgs<'a>,
    {
        self.env.add_filter(name.to_owned(), f);
    }

    /// Renders template `name` with the variables of `context` (a struct or map).
    ///
    /// # Errors
    ///
    /// The template does not exist, does not parse, or fails while rendering (undefined variable, failing
    /// function, ...).
    pub fn render<S: Serialize>(&self, name: &str, context: S) -> Result<String, TemplateError> {
        Ok(self.env.get_template(name)?.render(context)?)
    }

    /// Renders template `name` with `context` plus per-request values such as `xsrf_form_html`,
    /// `static_url` or `current_user` (Tornado's `get_template_namespace`).
    ///
    /// As in Tornado, a variable of `context` wins over a request value of the same name.
    ///
    /// # Errors
    ///
    /// As [`Templates::render`].
    pub fn render_with<S, I, K>(&self, name: &str, context: S, request_values: I) -> Result<String, TemplateError>
    where
        S: Serialize,
        I: IntoIterator<Item = (K, Value)>,
        K: Into<String>,
    {
        let request: Value = request_values.into_iter().map(|(k, v)| (k.into(), v)).collect();
        // Later maps win in `merge_maps`.
        let merged = merge_maps([request, Value::from_serialize(context)]);
        Ok(self.env.get_template(name)?.render(merged)?)
    }

    /// Renders a template given as a string (not cached), without autoescaping.
    ///
    /// # Errors
    ///
    /// As [`Templates::render`].
    pub fn render_str<S: Serialize>(&self, source: &str, context: S) -> Result<String, TemplateError> {
        Ok(self.env.render_str(source, context)?)
    }

    /// Forgets every compiled template, so that templates from the directory are read again on next use.
    ///
    /// Templates added with [`Templates::add_template`] are forgotten too.
    pub fn clear_cache(&mut self) {
        self.env.clear_templates();
    }

    /// The underlying environment, to read its configuration.
    pub fn environment(&self) -> &Environment<'static> {
        &self.env
    }

    /// The underlying environment, for configuration this type does not cover.
    pub fn environment_mut(&mut self) -> &mut Environment<'static> {
        &mut self.env
    }
}

/// Writes a value into the output, HTML-escaping it in HTML templates with Tornado's `xhtml_escape` (which, unlike
/// minijinja's escaper, leaves `/` alone, so that URLs stay readable).
fn format_value(
    out: &mut minijinja::Output<'_>,
    state: &minijinja::State<'_, '_>,
    value: &Value,
) -> Result<(), minijinja::Error> {
    if state.auto_escape() != AutoEscape::Html || value.is_safe() {
        return minijinja::escape_formatter(out, state, value);
    }
    let escaped = match value.as_str() {
        Some(text) => crate::escape::xhtml_escape(text).into_owned(),
        None => crate::escape::xhtml_escape(&value.to_string()).into_owned(),
    };
    out.write_str(&escaped).map_err(minijinja::Error::from)
}

/// The `json_encode` filter and function: JSON safe to embed anywhere in HTML.
///
/// Besides Tornado's `</` rule, `<`, `>`, `&` and `'` are written as `\u` escapes, so the (safe-marked) output
/// is valid both inside `<script>` and inside a quoted attribute.
fn json_encode(value: Value) -> Result<Value, minijinja::Error> {
    let json = serde_json::to_string(&value).map_err(|e| {
        minijinja::Error::new(ErrorKind::InvalidOperation, "cannot encode value as JSON").with_source(e)
    })?;
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\'' => out.push_str("\\u0027"),
            c => out.push(c),
        }
    }
    Ok(Value::from_safe_string(out))
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use serde_json::json;

    use super::*;

    /// A scratch template directory removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(files: &[(&str, &str)]) -> TempDir {
            static COUNTER: AtomicUsize = AtomicUsize::new(0);
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let dir = std::env::temp_dir().join(format!("gale-templates-{}-{n}", std::process::id()));
            let _ = fs::remove_dir_all(&dir);
            for (name, source) in files {
                let path = dir.join(name);
                fs::create_dir_all(path.parent().unwrap()).unwrap();
                fs::write(path, source).unwrap();
            }
            fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn html_templates_escape_variables() {
        let mut t = Templates::new();
        t.add_template("x.html", "<p>{{ v }}</p>").unwrap();
        let out = t.render("x.html", json!({"v": "<script>alert('x')</script>"})).unwrap();
        assert_eq!(out, "<p>&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;</p>");
    }

    #[test]
    fn markup_extensions_all_autoescape() {
        for name in ["a.htm", "a.xml", "a.xhtml", "a.html.j2", "A.HTML"] {
            assert!(matches!(auto_escape_for(name), AutoEscape::Html), "{name}");
        }
        assert!(matches!(auto_escape_for("a.txt"), AutoEscape::None));
    }

    #[test]
    fn plain_text_templates_do_not_escape() {
        let mut t = Templates::new();
        t.add_template("mail.txt", "Hi {{ name }}").unwrap();
        assert_eq!(t.render("mail.txt", json!({"name": "<b>Bob</b>"})).unwrap(), "Hi <b>Bob</b>");
    }

    #[test]
    fn safe_values_are_not_escaped_twice() {
        let mut t = Templates::new();
        t.add_template("x.html", "{{ a|safe }} {{ b }}").unwrap();
        t.add_global("b", Value::from_safe_string("<i>ok</i>".into()));
        assert_eq!(t.render("x.html", json!({"a": "<b>"})).unwrap(), "<b> <i>ok</i>");
    }

    #[test]
    fn templates_load_from_the_directory_and_inherit() {
        let dir = TempDir::new(&[
            (
                "base.html",
                "<html><title>{% block title %}Site{% endblock %}</title>{% block body %}{% endblock %}</html>",
            ),
            (
                "pages/home.html",
                "{% extends \"base.html\" %}{% block title %}Home: {{ who }}{% endblock %}{% block body %}{% include \"parts/nav.html\" %}{% endblock %}",
            ),
            ("parts/nav.html", "<nav>{{ who }}</nav>"),
        ]);
        let t = Templates::from_dir(&dir.0);
        let out = t.render("pages/home.html", json!({"who": "<me>"})).unwrap();
        assert_eq!(out, "<html><title>Home: &lt;me&gt;</title><nav>&lt;me&gt;</nav></html>");
    }

    #[test]
    fn compiled_templates_are_cached_until_cleared() {
        let dir = TempDir::new(&[("page.html", "v1")]);
        let mut t = Templates::from_dir(&dir.0);
        assert_eq!(t.render("page.html", ()).unwrap(), "v1");
        fs::write(dir.0.join("page.html"), "v2").unwrap();
        assert_eq!(t.render("page.html", ()).unwrap(), "v1");
        t.clear_cache();
        assert_eq!(t.render("page.html", ()).unwrap(), "v2");
    }

    #[test]
    fn missing_templates_and_path_traversal_are_not_found() {
        let dir = TempDir::new(&[("inner/ok.html", "ok")]);
        fs::write(dir.0.join("secret.txt"), "secret").unwrap();
        let t = Templates::from_dir(dir.0.join("inner"));
        assert_eq!(t.render("ok.html", ()).unwrap(), "ok");
        for name in ["nope.html", "../secret.txt", ".hidden.html", "a/../../secret.txt"] {
            let err = t.render(name, ()).unwrap_err();
            assert!(err.is_not_found(), "{name}: {err}");
        }
    }

    #[test]
    fn undefined_variables_fail_when_printed_but_not_when_tested() {
        let mut t = Templates::new();
        t.add_template("x.html", "{{ missing }}").unwrap();
        t.add_template("y.html", "{% if missing %}yes{% else %}no{% endif %}").unwrap();
        let err = t.render("x.html", ()).unwrap_err();
        assert!(err.is_undefined(), "{err}");
        assert_eq!(t.render("y.html", ()).unwrap(), "no");
    }

    #[test]
    fn syntax_errors_report_name_and_line() {
        let mut t = Templates::new();
        let err = t.add_template("bad.html", "line one\n{% if %}").unwrap_err();
        assert!(err.is_syntax_error());
        assert_eq!((err.template_name(), err.line()), (Some("bad.html"), Some(2)));
        assert!(err.to_string().contains("bad.html:2"), "{err}");
    }

    #[test]
    fn functions_and_globals_are_callable_from_templates() {
        let mut t = Templates::new();
        t.add_function("static_url", |path: String| format!("/static/{path}?v=abc"));
        t.add_function("xsrf_form_html", || Value::from_safe_string("<input name=\"_xsrf\"/>".into()));
        t.add_global("site", json!({"name": "Gale"}));
        t.add_template("x.html", "{{ site.name }} {{ static_url('a b.css') }} {{ xsrf_form_html() }}").unwrap();
        assert_eq!(t.render("x.html", ()).unwrap(), "Gale /static/a b.css?v=abc <input name=\"_xsrf\"/>");
    }

    #[test]
    fn prebuilt_values_keep_their_nature_as_globals() {
        let mut t = Templates::new();
        t.add_global("greet", Value::from_function(|who: String| format!("<hi {who}>")));
        t.add_global("raw", Value::from_safe_string("<br>".into()));
        t.add_template("x.html", "{{ greet('you') }}{{ raw }}").unwrap();
        assert_eq!(t.render("x.html", ()).unwrap(), "&lt;hi you&gt;<br>");
    }

    #[test]
    fn render_with_lets_the_context_override_request_values() {
        let mut t = Templates::new();
        t.add_template("x.txt", "{{ user }} {{ locale }}").unwrap();
        let request = [("user", Value::from("request-user")), ("locale", Value::from("en_US"))];
        assert_eq!(t.render_with("x.txt", json!({"user": "explicit"}), request).unwrap(), "explicit en_US");
    }

    #[test]
    fn tornado_helpers_are_available_as_filters_and_functions() {
        let mut t = Templates::new();
        t.add_template(
            "x.html",
            "{{ q|url_escape }} {{ url_escape(q) }} {{ '  a \n b '|squeeze }} <script>var d = {{ d|json_encode }};</script>",
        )
        .unwrap();
        let out = t.render("x.html", json!({"q": "a b&c", "d": {"k": "</script><b>'&"}})).unwrap();
        assert_eq!(
            out,
            r#"a+b%26c a+b%26c a b <script>var d = {"k":"\u003c/script\u003e\u003cb\u003e\u0027\u0026"};</script>"#
        );
    }

    #[test]
    fn non_string_values_are_formatted_and_escaped_in_html() {
        let mut t = Templates::new();
        t.add_template("x.html", "{{ n }}|{{ z }}|{{ b }}|{{ l }}").unwrap();
        let out = t.render("x.html", json!({"n": 5, "z": null, "b": true, "l": ["<a/b>"]})).unwrap();
        assert_eq!(out, "5|None|True|[&quot;&lt;a/b&gt;&quot;]");
    }

    #[test]
    fn render_str_renders_without_caching() {
        let t = Templates::new();
        assert_eq!(t.render_str("{{ 1 + 2 }} {{ x }}", json!({"x": "<"})).unwrap(), "3 <");
        assert!(t.environment().templates().next().is_none());
    }
}
