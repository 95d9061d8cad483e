//! Escaping and unescaping for HTML, URLs and JSON, after Tornado's `tornado.escape`.
//!
//! | Function | Tornado | Notes |
//! |---|---|---|
//! | [`xhtml_escape`] | `xhtml_escape` (`html.escape`) | escapes `& < > " '` |
//! | [`xhtml_unescape`] | `xhtml_unescape` (`html.unescape`) | numeric references follow HTML5; named ones cover HTML 4 |
//! | [`url_escape`] / [`url_escape_bytes`] | `url_escape(value, plus)` | `quote_plus` or `quote(safe="/")` |
//! | [`url_unescape`] / [`url_unescape_bytes`] | `url_unescape(value, encoding, plus)` | invalid `%` escapes kept verbatim |
//! | [`json_encode`] | `json_encode` | never emits `</` |
//! | [`squeeze`] | `squeeze` | runs of `\x00`-`\x20` become one space |
//!
//! Every function is pure and allocation-free when there is nothing to change (those returning [`Cow`]).
//!
//! # Examples
//!
//! ```
//! use gale_web::escape::{url_escape, xhtml_escape};
//!
//! assert_eq!(xhtml_escape("<a href='x'>"), "&lt;a href=&#x27;x&#x27;&gt;");
//! assert_eq!(url_escape("a b/c", true), "a+b%2Fc");
//! assert_eq!(url_escape("a b/c", false), "a%20b/c");
//! ```

use std::borrow::Cow;

use serde::Serialize;

/// Escapes `&`, `<`, `>`, `"` and `'` so that `value` is safe inside HTML or XML text and quoted attributes.
///
/// The output is identical to Python's `html.escape(value, quote=True)`, which Tornado's `xhtml_escape` wraps:
/// the single quote becomes `&#x27;`.
///
/// # Examples
///
/// ```
/// use gale_web::escape::xhtml_escape;
///
/// assert_eq!(xhtml_escape(r#"<b class="x">Tom & 'Jerry'</b>"#),
///            "&lt;b class=&quot;x&quot;&gt;Tom &amp; &#x27;Jerry&#x27;&lt;/b&gt;");
/// assert!(matches!(xhtml_escape("plain"), std::borrow::Cow::Borrowed(_)));
/// ```
pub fn xhtml_escape(value: &str) -> Cow<'_, str> {
    let bytes = value.as_bytes();
    let Some(first) = bytes.iter().position(|b| matches!(b, b'&' | b'<' | b'>' | b'"' | b'\'')) else {
        return Cow::Borrowed(value);
    };
    let mut out = String::with_capacity(value.len() + value.len() / 8 + 8);
    out.push_str(&value[..first]);
    let mut start = first;
    for (i, &b) in bytes.iter().enumerate().skip(first) {
        let replacement = match b {
            b'&' => "&amp;",
            b'<' => "&lt;",
            b'>' => "&gt;",
            b'"' => "&quot;",
            b'\'' => "&#x27;",
            _ => continue,
        };
        out.push_str(&value[start..i]);
        out.push_str(replacement);
        start = i + 1;
    }
    out.push_str(&value[start..]);
    Cow::Owned(out)
}

/// Replaces HTML character references in `value` with the characters they stand for.
///
/// This follows Python's `html.unescape` (what Tornado's `xhtml_unescape` wraps):
///
/// * numeric references (`&#39;`, `&#x27;`, with or without the final `;`) are decoded with the HTML5 rules:
///   `&#0;`, surrogates and values above U+10FFFF become U+FFFD, the C1 range `&#128;`-`&#159;` is read as
///   Windows-1252, and noncharacters and most control characters are dropped;
/// * named references are decoded for the 252 HTML 4 names plus `&apos;` (and the upper-case `&AMP;` family);
///   the Latin-1 ones are also recognised without `;` or as the longest prefix of a longer word (`&ampx` is
///   `&x`), exactly as HTML5 does for legacy names. Unknown names are left untouched.
///
/// # Examples
///
/// ```
/// use gale_web::escape::xhtml_unescape;
///
/// assert_eq!(xhtml_unescape("&lt;p&gt; &amp;amp; &#39;&#x41;&eacute;&hellip;"), "<p> &amp; 'Aé…");
/// assert_eq!(xhtml_unescape("&unknown; &"), "&unknown; &");
/// ```
pub fn xhtml_unescape(value: &str) -> Cow<'_, str> {
    if !value.contains('&') {
        return Cow::Borrowed(value);
    }
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let after = &rest[amp + 1..];
        match decode_reference(after, &mut out) {
            Some(consumed) => rest = &after[consumed..],
            None => {
                out.push('&');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// Decodes the character reference at the start of `s` (the text right after a `&`) into `out`.
///
/// Returns how many bytes of `s` the reference used, or `None` (and writes nothing) if `s` does not start with
/// a reference that `html.unescape` would replace.
fn decode_reference(s: &str, out: &mut String) -> Option<usize> {
    let bytes = s.as_bytes();
    if bytes.first() == Some(&b'#') {
        let (radix, digits_start) = match bytes.get(1) {
            Some(b'x' | b'X') => (16, 2),
            _ => (10, 1),
        };
        let digits = bytes[digits_start..].iter().take_while(|b| (**b as char).is_digit(radix)).count();
        if digits == 0 {
            return None;
        }
        let text = &s[digits_start..digits_start + digits];
        // Saturate: anything that does not fit is far above U+10FFFF anyway.
        let number = u32::from_str_radix(text, radix).unwrap_or(u32::MAX);
        if let Some(c) = numeric_reference(number) {
            out.push(c);
        }
        let mut used = digits_start + digits;
        if bytes.get(used) == Some(&b';') {
            used += 1;
        }
        return Some(used);
    }

    // Named reference: up to 32 characters that are not `\t \n \x0c space < & # ;`, then an optional `;`.
    let name_len = s
        .char_indices()
        .take(32)
        .find(|&(_, c)| matches!(c, '\t' | '\n' | '\x0c' | ' ' | '<' | '&' | '#' | ';'))
        .map_or_else(|| s.char_indices().nth(32).map_or(s.len(), |(i, _)| i), |(i, _)| i);
    if name_len == 0 {
        return None;
    }
    let name = &s[..name_len];
    if bytes.get(name_len) == Some(&b';') {
        if let Some(c) = named_reference(name) {
            out.push(c);
            return Some(name_len + 1);
        }
    }
    // Legacy names may appear without `;`, also as the longest prefix (of at least two bytes) of a longer word.
    for end in (2..=name_len).rev() {
        if !name.is_char_boundary(end) {
            continue;
        }
        if let Some(c) = named_reference(&name[..end]).filter(|&c| is_legacy_name(&name[..end], c)) {
            out.push(c);
            return Some(end);
        }
    }
    None
}

/// Maps a numeric character reference to the character HTML5 substitutes for it (`None`: the reference is
/// dropped).
fn numeric_reference(number: u32) -> Option<char> {
    const WINDOWS_1252: [u16; 32] = [
        0x20AC, 0x0081, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160, 0x2039, 0x0152, 0x008D,
        0x017D, 0x008F, 0x0090, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A,
        0x0153, 0x009D, 0x017E, 0x0178,
    ];
    match number {
        0 => Some('\u{FFFD}'),
        0x0D => Some('\r'),
        0x80..=0x9F => char::from_u32(u32::from(WINDOWS_1252[(number - 0x80) as usize])),
        0xD800..=0xDFFF | 0x11_0000.. => Some('\u{FFFD}'),
        0x01..=0x08 | 0x0B | 0x0E..=0x1F | 0x7F | 0xFDD0..=0xFDEF => None,
        n if n & 0xFFFE == 0xFFFE => None,
        n => char::from_u32(n),
    }
}

/// Whether HTML5 also recognises the named reference without its `;` (the Latin-1 names of HTML 3.2).
fn is_legacy_name(name: &str, c: char) -> bool {
    u32::from(c) <= 0xFF && name != "apos"
}

/// Looks a named character reference up (case-sensitive).
fn named_reference(name: &str) -> Option<char> {
    ENTITIES.binary_search_by(|(n, _)| n.cmp(&name)).ok().and_then(|i| char::from_u32(ENTITIES[i].1))
}

/// HTML 4 named character references (Python's `html.entities.name2codepoint`), `apos`, and the upper-case
/// legacy spellings HTML5 added; sorted by name for binary search.
static ENTITIES: &[(&str, u32)] = &[
    ("AElig", 198),
    ("AMP", 38),
    ("Aacute", 193),
    ("Acirc", 194),
    ("Agrave", 192),
    ("Alpha", 913),
    ("Aring", 197),
    ("Atilde", 195),
    ("Auml", 196),
    ("Beta", 914),
    ("COPY", 169),
    ("Ccedil", 199),
    ("Chi", 935),
    ("Dagger", 8225),
    ("Delta", 916),
    ("ETH", 208),
    ("Eacute", 201),
    ("Ecirc", 202),
    ("Egrave", 200),
    ("Epsilon", 917),
    ("Eta", 919),
    ("Euml", 203),
    ("GT", 62),
    ("Gamma", 915),
    ("Iacute", 205),
    ("Icirc", 206),
    ("Igrave", 204),
    ("Iota", 921),
    ("Iuml", 207),
    ("Kappa", 922),
    ("LT", 60),
    ("Lambda", 923),
    ("Mu", 924),
    ("Ntilde", 209),
    ("Nu", 925),
    ("OElig", 338),
    ("Oacute", 211),
    ("Ocirc", 212),
    ("Ograve", 210),
    ("Omega", 937),
    ("Omicron", 927),
    ("Oslash", 216),
    ("Otilde", 213),
    ("Ouml", 214),
    ("Phi", 934),
    ("Pi", 928),
    ("Prime", 8243),
    ("Psi", 936),
    ("QUOT", 34),
    ("REG", 174),
    ("Rho", 929),
    ("Scaron", 352),
    ("Sigma", 931),
    ("THORN", 222),
    ("Tau", 932),
    ("Theta", 920),
    ("Uacute", 218),
    ("Ucirc", 219),
    ("Ugrave", 217),
    ("Upsilon", 933),
    ("Uuml", 220),
    ("Xi", 926),
    ("Yacute", 221),
    ("Yuml", 376),
    ("Zeta", 918),
    ("aacute", 225),
    ("acirc", 226),
    ("acute", 180),
    ("aelig", 230),
    ("agrave", 224),
    ("alefsym", 8501),
    ("alpha", 945),
    ("amp", 38),
    ("and", 8743),
    ("ang", 8736),
    ("apos", 39),
    ("aring", 229),
    ("asymp", 8776),
    ("atilde", 227),
    ("auml", 228),
    ("bdquo", 8222),
    ("beta", 946),
    ("brvbar", 166),
    ("bull", 8226),
    ("cap", 8745),
    ("ccedil", 231),
    ("cedil", 184),
    ("cent", 162),
    ("chi", 967),
    ("circ", 710),
    ("clubs", 9827),
    ("cong", 8773),
    ("copy", 169),
    ("crarr", 8629),
    ("cup", 8746),
    ("curren", 164),
    ("dArr", 8659),
    ("dagger", 8224),
    ("darr", 8595),
    ("deg", 176),
    ("delta", 948),
    ("diams", 9830),
    ("divide", 247),
    ("eacute", 233),
    ("ecirc", 234),
    ("egrave", 232),
    ("empty", 8709),
    ("emsp", 8195),
    ("ensp", 8194),
    ("epsilon", 949),
    ("equiv", 8801),
    ("eta", 951),
    ("eth", 240),
    ("euml", 235),
    ("euro", 8364),
    ("exist", 8707),
    ("fnof", 402),
    ("forall", 8704),
    ("frac12", 189),
    ("frac14", 188),
    ("frac34", 190),
    ("frasl", 8260),
    ("gamma", 947),
    ("ge", 8805),
    ("gt", 62),
    ("hArr", 8660),
    ("harr", 8596),
    ("hearts", 9829),
    ("hellip", 8230),
    ("iacute", 237),
    ("icirc", 238),
    ("iexcl", 161),
    ("igrave", 236),
    ("image", 8465),
    ("infin", 8734),
    ("int", 8747),
    ("iota", 953),
    ("iquest", 191),
    ("isin", 8712),
    ("iuml", 239),
    ("kappa", 954),
    ("lArr", 8656),
    ("lambda", 955),
    ("lang", 9001),
    ("laquo", 171),
    ("larr", 8592),
    ("lceil", 8968),
    ("ldquo", 8220),
    ("le", 8804),
    ("lfloor", 8970),
    ("lowast", 8727),
    ("loz", 9674),
    ("lrm", 8206),
    ("lsaquo", 8249),
    ("lsquo", 8216),
    ("lt", 60),
    ("macr", 175),
    ("mdash", 8212),
    ("micro", 181),
    ("middot", 183),
    ("minus", 8722),
    ("mu", 956),
    ("nabla", 8711),
    ("nbsp", 160),
    ("ndash", 8211),
    ("ne", 8800),
    ("ni", 8715),
    ("not", 172),
    ("notin", 8713),
    ("nsub", 8836),
    ("ntilde", 241),
    ("nu", 957),
    ("oacute", 243),
    ("ocirc", 244),
    ("oelig", 339),
    ("ograve", 242),
    ("oline", 8254),
    ("omega", 969),
    ("omicron", 959),
    ("oplus", 8853),
    ("or", 8744),
    ("ordf", 170),
    ("ordm", 186),
    ("oslash", 248),
    ("otilde", 245),
    ("otimes", 8855),
    ("ouml", 246),
    ("para", 182),
    ("part", 8706),
    ("permil", 8240),
    ("perp", 8869),
    ("phi", 966),
    ("pi", 960),
    ("piv", 982),
    ("plusmn", 177),
    ("pound", 163),
    ("prime", 8242),
    ("prod", 8719),
    ("prop", 8733),
    ("psi", 968),
    ("quot", 34),
    ("rArr", 8658),
    ("radic", 8730),
    ("rang", 9002),
    ("raquo", 187),
    ("rarr", 8594),
    ("rceil", 8969),
    ("rdquo", 8221),
    ("real", 8476),
    ("reg", 174),
    ("rfloor", 8971),
    ("rho", 961),
    ("rlm", 8207),
    ("rsaquo", 8250),
    ("rsquo", 8217),
    ("sbquo", 8218),
    ("scaron", 353),
    ("sdot", 8901),
    ("sect", 167),
    ("shy", 173),
    ("sigma", 963),
    ("sigmaf", 962),
    ("sim", 8764),
    ("spades", 9824),
    ("sub", 8834),
    ("sube", 8838),
    ("sum", 8721),
    ("sup", 8835),
    ("sup1", 185),
    ("sup2", 178),
    ("sup3", 179),
    ("supe", 8839),
    ("szlig", 223),
    ("tau", 964),
    ("there4", 8756),
    ("theta", 952),
    ("thetasym", 977),
    ("thinsp", 8201),
    ("thorn", 254),
    ("tilde", 732),
    ("times", 215),
    ("trade", 8482),
    ("uArr", 8657),
    ("uacute", 250),
    ("uarr", 8593),
    ("ucirc", 251),
    ("ugrave", 249),
    ("uml", 168),
    ("upsih", 978),
    ("upsilon", 965),
    ("uuml", 252),
    ("weierp", 8472),
    ("xi", 958),
    ("yacute", 253),
    ("yen", 165),
    ("yuml", 255),
    ("zeta", 950),
    ("zwj", 8205),
    ("zwnj", 8204),
];

/// Bytes that `urllib.parse.quote` never escapes: ASCII letters, digits and `_.-~`.
fn is_always_safe(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-' | b'~')
}

/// URL-encodes `value` (as UTF-8) for a query string (`plus`) or a path component (`!plus`).
///
/// With `plus`, spaces become `+` and `/` becomes `%2F` (Python's `quote_plus`); without it, spaces become
/// `%20` and `/` is kept (Python's `quote`). Letters, digits and `_.-~` are never escaped; everything else is
/// percent-encoded with upper-case hex digits.
///
/// # Examples
///
/// ```
/// use gale_web::escape::url_escape;
///
/// assert_eq!(url_escape("é & ü/x", true), "%C3%A9+%26+%C3%BC%2Fx");
/// assert_eq!(url_escape("é & ü/x", false), "%C3%A9%20%26%20%C3%BC/x");
/// ```
pub fn url_escape(value: &str, plus: bool) -> String {
    url_escape_bytes(value.as_bytes(), plus)
}

/// [`url_escape`] for arbitrary bytes (Tornado accepts `bytes` as well as `str`).
pub fn url_escape_bytes(value: &[u8], plus: bool) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(value.len() + value.len() / 2);
    for &b in value {
        if is_always_safe(b) || (b == b'/' && !plus) {
            out.push(char::from(b));
        } else if b == b' ' && plus {
            out.push('+');
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0x0F)]));
        }
    }
    out
}

/// Decodes a URL-encoded `value` to text; with `plus`, `+` also stands for a space (query strings and forms).
///
/// Percent escapes are decoded to bytes which are then read as UTF-8, invalid sequences becoming U+FFFD (like
/// Python's `unquote`, whose `errors` default is `"replace"`). A `%` not followed by two hex digits is kept as
/// is.
///
/// # Examples
///
/// ```
/// use gale_web::escape::url_unescape;
///
/// assert_eq!(url_unescape("a+b%2Bc%20%C3%A9", true), "a b+c é");
/// assert_eq!(url_unescape("a+b", false), "a+b");
/// assert_eq!(url_unescape("100%", false), "100%");
/// ```
pub fn url_unescape(value: &str, plus: bool) -> String {
    match url_unescape_bytes(value.as_bytes(), plus) {
        Cow::Borrowed(_) => value.to_owned(),
        Cow::Owned(bytes) => match String::from_utf8(bytes) {
            Ok(text) => text,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        },
    }
}

/// Decodes a URL-encoded `value` to raw bytes (Tornado's `url_unescape(value, encoding=None, plus)`).
///
/// Borrows `value` when it holds neither `%` nor (with `plus`) `+`.
pub fn url_unescape_bytes(value: &[u8], plus: bool) -> Cow<'_, [u8]> {
    let needs_work = value.iter().any(|&b| b == b'%' || (plus && b == b'+'));
    if !needs_work {
        return Cow::Borrowed(value);
    }
    let mut out = Vec::with_capacity(value.len());
    let mut i = 0;
    while i < value.len() {
        let b = value[i];
        if b == b'%' {
            if let (Some(hi), Some(lo)) = (value.get(i + 1).and_then(hex_value), value.get(i + 2).and_then(hex_value)) {
                out.push(hi << 4 | lo);
                i += 3;
                continue;
            }
        }
        out.push(if plus && b == b'+' { b' ' } else { b });
        i += 1;
    }
    Cow::Owned(out)
}

/// The value of one ASCII hex digit.
fn hex_value(b: &u8) -> Option<u8> {
    (*b as char).to_digit(16).map(|d| d as u8)
}

/// Serialises `value` to JSON that is safe to embed in an HTML `<script>` element.
///
/// Like Tornado's `json_encode`, every `</` in the output becomes `<\/` (an equivalent JSON escape), so a string
/// holding `</script>` cannot end the script element early. The output is compact `serde_json` output, not
/// Python's `json.dumps` spacing.
///
/// # Errors
///
/// Fails when `value`'s `Serialize` implementation fails (for instance a map with non-string keys).
///
/// # Examples
///
/// ```
/// use gale_web::escape::json_encode;
///
/// let json = json_encode(&serde_json::json!({"html": "</script>"})).unwrap();
/// assert_eq!(json, r#"{"html":"<\/script>"}"#);
/// ```
pub fn json_encode<T: Serialize + ?Sized>(value: &T) -> Result<String, serde_json::Error> {
    let json = serde_json::to_string(value)?;
    Ok(if json.contains("</") { json.replace("</", "<\\/") } else { json })
}

/// Replaces every run of characters in `\x00`-`\x20` with a single space and trims the ends.
///
/// # Examples
///
/// ```
/// use gale_web::escape::squeeze;
///
/// assert_eq!(squeeze("  a \t\n b\r\n"), "a b");
/// ```
pub fn squeeze(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut in_run = false;
    for c in value.chars() {
        if c <= '\x20' {
            if !in_run {
                out.push(' ');
                in_run = true;
            }
        } else {
            out.push(c);
            in_run = false;
        }
    }
    out.trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xhtml_escape_escapes_the_five_html_specials() {
        assert_eq!(xhtml_escape("<>&\"'"), "&lt;&gt;&amp;&quot;&#x27;");
        assert_eq!(xhtml_escape("a<b>c"), "a&lt;b&gt;c");
        assert_eq!(xhtml_escape("é<"), "é&lt;");
    }

    #[test]
    fn xhtml_escape_borrows_clean_input() {
        assert!(matches!(xhtml_escape("nothing to do é"), Cow::Borrowed("nothing to do é")));
    }

    #[test]
    fn xhtml_unescape_reverses_xhtml_escape() {
        let text = "<script>alert('x' & \"y\")</script> é";
        assert_eq!(xhtml_unescape(&xhtml_escape(text)), text);
    }

    #[test]
    fn xhtml_unescape_decodes_numeric_references_like_html5() {
        assert_eq!(xhtml_unescape("&#65;&#x42;&#X43;&#68"), "ABCD");
        assert_eq!(xhtml_unescape("&#0;"), "\u{FFFD}");
        assert_eq!(xhtml_unescape("&#xD800;"), "\u{FFFD}");
        assert_eq!(xhtml_unescape("&#99999999999;"), "\u{FFFD}");
        assert_eq!(xhtml_unescape("&#128;&#x9F;"), "€Ÿ");
        assert_eq!(xhtml_unescape("a&#1;b&#xFFFF;c"), "abc");
        assert_eq!(xhtml_unescape("&#;&#x;"), "&#;&#x;");
    }

    #[test]
    fn xhtml_unescape_decodes_named_references_and_legacy_prefixes() {
        assert_eq!(xhtml_unescape("&amp;&lt;&gt;&quot;&apos;&nbsp;&euro;&hearts;"), "&<>\"'\u{a0}€♥");
        assert_eq!(xhtml_unescape("&amp &ampx &notit; &AMP;"), "& &x ¬it; &");
        assert_eq!(xhtml_unescape("&apos &hearts &bogus; &;"), "&apos &hearts &bogus; &;");
    }

    #[test]
    fn entity_table_is_sorted_for_binary_search() {
        assert!(ENTITIES.windows(2).all(|w| w[0].0 < w[1].0));
        assert_eq!(ENTITIES.len(), 259);
    }

    #[test]
    fn url_escape_matches_quote_plus_and_quote() {
        assert_eq!(url_escape("a b&c=d/e?f~g_h.i-j", true), "a+b%26c%3Dd%2Fe%3Ff~g_h.i-j");
        assert_eq!(url_escape("a b&c=d/e?f~g_h.i-j", false), "a%20b%26c%3Dd/e%3Ff~g_h.i-j");
        assert_eq!(url_escape("", true), "");
        assert_eq!(url_escape_bytes(&[0xFF, 0x00], false), "%FF%00");
    }

    #[test]
    fn url_unescape_handles_plus_and_bad_escapes() {
        assert_eq!(url_unescape("a+b", true), "a b");
        assert_eq!(url_unescape("a+b", false), "a+b");
        assert_eq!(url_unescape("%41%4a%zz%4", false), "AJ%zz%4");
        assert_eq!(url_unescape("%FF", false), "\u{FFFD}");
        assert_eq!(url_unescape_bytes(b"%FF%2b", true).as_ref(), b"\xff+");
        assert!(matches!(url_unescape_bytes(b"plain", true), Cow::Borrowed(_)));
    }

    #[test]
    fn url_escape_round_trips_through_url_unescape() {
        let text = "naïve / café + 100% & more";
        for plus in [true, false] {
            assert_eq!(url_unescape(&url_escape(text, plus), plus), text);
        }
    }

    #[test]
    fn json_encode_never_emits_a_closing_tag_opener() {
        let json = json_encode(&["</script>", "a</b"]).unwrap();
        assert_eq!(json, r#"["<\/script>","a<\/b"]"#);
        let back: Vec<String> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, ["</script>", "a</b"]);
    }

    #[test]
    fn squeeze_collapses_control_and_space_runs() {
        assert_eq!(squeeze("\x00a\x01\x02b  c\n"), "a b c");
        assert_eq!(squeeze(""), "");
        assert_eq!(squeeze("é\u{7f}x"), "é\u{7f}x");
    }
}
