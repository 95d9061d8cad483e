//! `Cookie` header parsing and `Set-Cookie` building over arbitrary text.
//!
//! Checks: pairs come out trimmed and never span a `;`; the map keeps the last value of a name; a
//! `Set-Cookie` value is built exactly when its parts are valid, carries no control character, has one
//! attribute per option set, and its cookie reads back (as a browser would send it) to the same pair.
#![no_main]

use std::time::{Duration, UNIX_EPOCH};

use gale_fuzz::{Split, fields};
use gale_web::cookies::{
    CookieOptions, SameSite, clear_cookie_value, cookie_pairs, parse_cookie, set_cookie_value, validate_name,
    validate_value,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(split) = Split::new(data) else { return };
    let text = String::from_utf8_lossy(split.stream);

    let pairs: Vec<_> = cookie_pairs(&text).collect();
    for (name, _) in &pairs {
        assert_eq!(name.trim(), *name);
        assert!(!name.contains([';', '=']), "{name:?}");
    }
    let mut last = std::collections::HashMap::new();
    for (name, value) in &pairs {
        last.insert(name.to_string(), value.to_string());
    }
    assert_eq!(parse_cookie(&text), last);

    // name \0 value \0 domain \0 path; the control bits pick the other options.
    let parts = fields(split.stream, 0, 4);
    let part = |i: usize| parts.get(i).map(|p| String::from_utf8_lossy(p).into_owned());
    let (name, value) = (part(0).unwrap_or_default(), part(1).unwrap_or_default());
    let flags = split.flags();
    let options = CookieOptions {
        domain: part(2).filter(|_| flags & 1 != 0),
        path: part(3).or_else(|| Some("/".to_owned())).filter(|_| flags & 2 != 0),
        expires: (flags & 4 != 0).then(|| UNIX_EPOCH + Duration::from_secs(u64::from(data[0]) << 30)),
        max_age: (flags & 8 != 0).then_some(data.len() as u64),
        secure: flags & 1 != 0,
        http_only: flags & 2 != 0,
        same_site: [None, Some(SameSite::Lax), Some(SameSite::Strict), Some(SameSite::None)][data.len() % 4],
        partitioned: flags & 4 != 0,
    };
    let header = set_cookie_value(&name, &value, &options);
    let valid = validate_name(&name).is_ok() && validate_value(&name, &value).is_ok();
    match &header {
        Ok(header) => {
            assert!(valid, "built a cookie from an invalid name or value: {header:?}");
            assert!(!header.bytes().any(|b| b.is_ascii_control()), "{header:?}");
            let attributes = [options.domain.is_some(), options.expires.is_some(), options.http_only]
                .into_iter()
                .chain([options.max_age.is_some(), options.partitioned, options.path.is_some()])
                .chain([options.same_site.is_some(), options.secure])
                .filter(|&set| set)
                .count();
            let mut segments = header.split("; ");
            let first = segments.next().expect("the cookie itself");
            assert_eq!(segments.count(), attributes, "{header:?}");
            assert_eq!(first, format!("{name}={value}"));
            // What the browser sends back reads as the pair, quotes removed.
            let unquoted = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')).filter(|_| value.len() >= 2);
            let sent_back = format!(" ;{first}; ");
            let jar = parse_cookie(&sent_back);
            assert_eq!(jar.get(name.as_str()).map(String::as_str), Some(unquoted.unwrap_or(&value)), "{header:?}");
        }
        Err(_) => assert!(!valid || options.domain.is_some() || options.path.is_some()),
    }
    assert_eq!(clear_cookie_value(&name, &options).is_ok(), set_cookie_value(&name, "", &options).is_ok());
});
