//! Tornado-compatible signed values over arbitrary input and secrets.
//!
//! Checks: decoding arbitrary bytes never panics, whatever the secret, name, age limit and minimum version;
//! what gale signs, gale verifies (and reports the key version it was signed with), for that name only, until
//! it expires; a rotated-out key still verifies its values while it is kept; any change of one byte, or
//! another secret, is refused.
#![no_main]

use std::collections::HashMap;
use std::time::{Duration, UNIX_EPOCH};

use gale_fuzz::{Split, fields};
use gale_web::signing::{Secret, SignedValueError, create_signed_value, decode_signed_value, signature_key_version};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(split) = Split::new(data) else { return };
    let flags = split.flags();
    let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000 + u64::from(data[0]));

    // key \0 name \0 value; the value may hold further NULs.
    let parts = fields(split.stream, 0, 3);
    let key = parts.first().copied().unwrap_or_default().to_vec();
    let name = String::from_utf8_lossy(parts.get(1).copied().unwrap_or_default()).into_owned();
    let value = parts.get(2).copied().unwrap_or_default();
    let secret = if flags & 1 == 0 {
        Secret::Single(key.clone())
    } else {
        Secret::Versioned { keys: HashMap::from([(3, b"old key".to_vec()), (7, key.clone())]), current: 7 }
    };

    // Arbitrary bytes as a signed value.
    let max_age = [31.0, 0.0, -1.0, 1e9, f64::NAN, f64::INFINITY][usize::from(flags >> 1) % 6];
    for min_version in 0..=3 {
        let _ = decode_signed_value(&secret, &name, split.stream, max_age, now, min_version);
    }
    let _ = signature_key_version(split.stream);

    // Round trip.
    let signed = create_signed_value(&secret, &name, value, now).expect("sign");
    let version = if flags & 1 == 0 { 0 } else { 7 };
    assert_eq!(signature_key_version(&signed), Some(version));
    for min_version in [0, 1, 2] {
        assert_eq!(decode_signed_value(&secret, &name, &signed, 31.0, now, min_version).as_deref(), Ok(value));
    }
    let other_name = format!("{name}x");
    assert_eq!(decode_signed_value(&secret, &other_name, &signed, 31.0, now, 1), Err(SignedValueError::WrongName));
    let later = now + Duration::from_secs(32 * 86_400);
    assert_eq!(decode_signed_value(&secret, &name, &signed, 31.0, later, 1), Err(SignedValueError::Expired));
    let other_secret = Secret::Single([&key[..], b"!"].concat());
    assert!(decode_signed_value(&other_secret, &name, &signed, 31.0, now, 1).is_err());

    // Key rotation: a value signed with the old key verifies while that key is kept.
    if let Secret::Versioned { keys, .. } = &secret {
        let old = Secret::Versioned { keys: keys.clone(), current: 3 };
        let signed_old = create_signed_value(&old, &name, value, now).expect("sign with the old key");
        assert_eq!(decode_signed_value(&secret, &name, &signed_old, 31.0, now, 2).as_deref(), Ok(value));
        let dropped = Secret::Versioned { keys: HashMap::from([(7, key.clone())]), current: 7 };
        assert_eq!(
            decode_signed_value(&dropped, &name, &signed_old, 31.0, now, 2),
            Err(SignedValueError::UnknownKeyVersion(3))
        );
    }

    // Tampering with any one byte is detected.
    let mut tampered = signed.clone().into_bytes();
    let at = usize::from(*split.stream.last().unwrap_or(&0)) * tampered.len() / 256;
    tampered[at] ^= 1 + data.len() as u8 % 255;
    assert!(decode_signed_value(&secret, &name, &tampered, 31.0, now, 1).is_err(), "byte {at} of {signed:?}");
});
