//! Cookie headers and Tornado signed values: parsing never panics; what gale signs, gale verifies; a
//! formatted Set-Cookie value parses back to the same pair.
#![no_main]

use gale_web::cookies::{CookieOptions, cookie_pairs, set_cookie_value};
use gale_web::signing::{Secret, create_signed_value, decode_signed_value};
use libfuzzer_sys::fuzz_target;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for (name, value) in cookie_pairs(&text) {
        let _ = (name.len(), value.len());
    }
    let secret = Secret::Single(b"fuzz secret".to_vec());
    let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let _ = decode_signed_value(&secret, "n", data, 31.0, now, 1);
    let signed = create_signed_value(&secret, "name", data, now).expect("sign");
    assert_eq!(decode_signed_value(&secret, "name", &signed, 31.0, now, 2).expect("verify"), data);
    assert!(decode_signed_value(&secret, "other", &signed, 31.0, now, 2).is_err());
    let later = now + Duration::from_secs(40 * 86_400);
    assert!(decode_signed_value(&secret, "name", &signed, 31.0, later, 2).is_err());

    if let Some((name, value)) = text.split_once('=') {
        // A quoted value is sent as it is and read back unquoted, as browsers and Python do.
        let quoted = value.len() >= 2 && value.starts_with('"') && value.ends_with('"');
        if let Ok(header) = set_cookie_value(name, value, &CookieOptions::default())
            .map_err(|_| ())
            .and_then(|h| if quoted { Err(()) } else { Ok(h) })
        {
            let first = header.split(';').next().unwrap_or("");
            let parsed: Vec<_> = cookie_pairs(first).collect();
            assert_eq!(parsed.len(), 1, "{header:?}");
            assert_eq!(parsed[0].0, name);
            assert_eq!(parsed[0].1, value);
        }
    }
    let _ = SystemTime::now();
});
