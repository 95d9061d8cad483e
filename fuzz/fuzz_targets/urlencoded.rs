//! `application/x-www-form-urlencoded` bodies and URL escaping over arbitrary bytes.
//!
//! Checks: every non-empty `&`-separated pair becomes one value, up to the argument limit, which is enforced
//! exactly; parsing is a fixpoint (the arguments, encoded again, parse to themselves); escaping round-trips any
//! bytes and only ever emits safe characters.
#![no_main]

use gale_fuzz::Split;
use gale_web::escape::{url_escape, url_escape_bytes, url_unescape, url_unescape_bytes};
use gale_web::forms::{
    Arguments, FormError, FormLimits, parse_body_arguments, parse_urlencoded, parse_urlencoded_into,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(split) = Split::new(data) else { return };
    let body = split.stream;
    let pairs = body.split(|&b| b == b'&').filter(|p| !p.is_empty()).count();

    let parsed = parse_urlencoded(body);
    match &parsed {
        Ok(args) => {
            assert_eq!(args.value_count(), pairs);
            // Encoded again (grouped by name), the arguments parse to themselves.
            let mut again = String::new();
            for (name, values) in args.iter() {
                for value in values {
                    again.push_str(&url_escape(name, true));
                    again.push('=');
                    again.push_str(&url_escape(value, true));
                    again.push('&');
                }
            }
            assert_eq!(parse_urlencoded(again.as_bytes()).as_ref(), Ok(args));
        }
        Err(e) => assert_eq!((e, pairs > 1_000), (&FormError::TooManyArguments { limit: 1_000 }, true)),
    }
    let by_type =
        parse_body_arguments("application/x-www-form-urlencoded; charset=utf-8", body, &FormLimits::default());
    assert_eq!(by_type.map(|(args, files)| (args, files.is_empty())), parsed.map(|args| (args, true)));

    // A small limit holds exactly: the values before it are kept, the next one is refused.
    let limit = usize::from(split.flags());
    let limits = FormLimits { max_arguments: limit, ..FormLimits::default() };
    let mut args = Arguments::new();
    let result = parse_urlencoded_into(body, &mut args, &limits);
    assert_eq!(result.is_err(), pairs > limit);
    assert_eq!(args.value_count(), pairs.min(limit));

    for plus in [false, true] {
        let escaped = url_escape_bytes(body, plus);
        assert!(escaped.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-~%+/".contains(&b)), "{escaped:?}");
        assert_eq!(url_unescape_bytes(escaped.as_bytes(), plus), body);
        let text = String::from_utf8_lossy(body);
        assert_eq!(url_unescape(&url_escape(&text, plus), plus), text);
        // Unescaping never grows its input.
        assert!(url_unescape_bytes(body, plus).len() <= body.len());
    }
});
