//! Incremental UTF-8 validation for text messages that arrive in pieces.
//!
//! A text message may be split across frames, and a frame across reads, at any byte, including inside a
//! multi-byte character. [`Utf8Validator`] checks each piece as it arrives and keeps the (at most three)
//! bytes of a character left incomplete at the end of a piece. An invalid sequence is reported by the
//! `feed` that delivers its first offending byte, so the connection can be failed with 1007 at once rather
//! than at the end of the message (RFC 6455 §8.1; the Autobahn 6.x "fail fast" cases check this). Overlong
//! forms, UTF-16 surrogates (U+D800–U+DFFF) and code points above U+10FFFF are all invalid.
//!
//! The checking is done by `std::str::from_utf8`, whose `error_len` tells "invalid" (`Some`) from "valid
//! so far but cut short" (`None`).

use crate::websocket::close::ProtocolError;

/// The error for invalid UTF-8 in a text message: close with 1007.
const INVALID_TEXT: ProtocolError = ProtocolError::invalid_payload("invalid UTF-8 in text message");

/// Validates a UTF-8 byte stream delivered in arbitrary pieces.
///
/// # Examples
///
/// ```
/// use gale_web::websocket::utf8::Utf8Validator;
///
/// let euro = "€".as_bytes(); // E2 82 AC
/// let mut v = Utf8Validator::new();
/// v.feed(&euro[..1]).unwrap();
/// v.feed(&euro[1..]).unwrap();
/// v.finish().unwrap();
///
/// // A surrogate half is refused as soon as its second byte is seen.
/// let mut v = Utf8Validator::new();
/// v.feed(b"ok \xED").unwrap();
/// assert!(v.feed(b"\xA0").is_err());
/// ```
#[derive(Clone, Debug, Default)]
pub struct Utf8Validator {
    /// The start of a character cut off at the end of the previous piece.
    pending: [u8; 4],
    pending_len: u8,
}

impl Utf8Validator {
    /// A validator at the start of a stream.
    pub const fn new() -> Self {
        Utf8Validator { pending: [0; 4], pending_len: 0 }
    }

    /// Checks the next piece of the stream.
    ///
    /// # Errors
    ///
    /// A 1007 [`ProtocolError`] as soon as the bytes seen so far cannot begin any valid UTF-8 text.
    pub fn feed(&mut self, mut input: &[u8]) -> Result<(), ProtocolError> {
        if self.pending_len > 0 {
            let have = usize::from(self.pending_len);
            let width = sequence_width(self.pending[0]);
            let take = (width - have).min(input.len());
            self.pending[have..have + take].copy_from_slice(&input[..take]);
            input = &input[take..];
            let now = have + take;
            match std::str::from_utf8(&self.pending[..now]) {
                Ok(_) => self.pending_len = 0,
                // Still a valid prefix: `input` is used up.
                Err(e) if e.error_len().is_none() => {
                    self.pending_len = now as u8;
                    return Ok(());
                }
                Err(_) => return Err(INVALID_TEXT),
            }
        }
        match std::str::from_utf8(input) {
            Ok(_) => Ok(()),
            Err(e) if e.error_len().is_none() => {
                let tail = &input[e.valid_up_to()..];
                self.pending[..tail.len()].copy_from_slice(tail);
                self.pending_len = tail.len() as u8;
                Ok(())
            }
            Err(_) => Err(INVALID_TEXT),
        }
    }

    /// Ends the stream: fails if it stopped inside a character. The validator is reset either way.
    ///
    /// # Errors
    ///
    /// A 1007 [`ProtocolError`] if the last character is incomplete.
    pub fn finish(&mut self) -> Result<(), ProtocolError> {
        let complete = self.pending_len == 0;
        self.reset();
        if complete { Ok(()) } else { Err(INVALID_TEXT) }
    }

    /// Forgets any incomplete character, readying the validator for a new stream.
    pub fn reset(&mut self) {
        self.pending_len = 0;
    }

    /// Whether the stream so far ends on a character boundary.
    pub fn is_complete(&self) -> bool {
        self.pending_len == 0
    }
}

/// The length of the sequence a (valid) leading byte starts. Only called on the first byte of a tail that
/// `from_utf8` called a valid prefix, so it is a lead byte of a 2-, 3- or 4-byte sequence.
fn sequence_width(lead: u8) -> usize {
    match lead {
        0xC2..=0xDF => 2,
        0xE0..=0xEF => 3,
        _ => 4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::websocket::close::CloseCode;

    /// Feeds `pieces` one by one; returns the index of the piece that failed, or `pieces.len()` if `finish`
    /// failed, or `None` if all was valid.
    fn first_failure(pieces: &[&[u8]]) -> Option<usize> {
        let mut v = Utf8Validator::new();
        for (i, piece) in pieces.iter().enumerate() {
            if v.feed(piece).is_err() {
                return Some(i);
            }
        }
        v.finish().is_err().then_some(pieces.len())
    }

    fn valid_whole(bytes: &[u8]) -> bool {
        first_failure(&[bytes]).is_none()
    }

    #[test]
    fn valid_text_split_at_every_pair_of_points_is_accepted() {
        let text = "a€𝄞é\u{10FFFF}\u{D7FF}\u{E000}κόσμε".as_bytes();
        for i in 0..=text.len() {
            for j in i..=text.len() {
                assert_eq!(first_failure(&[&text[..i], &text[i..j], &text[j..]]), None, "split {i}/{j}");
            }
        }
    }

    #[test]
    fn a_four_byte_sequence_fed_byte_by_byte_is_accepted() {
        let grin = "😀".as_bytes();
        assert_eq!(first_failure(&[&grin[..1], &grin[1..2], &grin[2..3], &grin[3..]]), None);
        let mut v = Utf8Validator::new();
        v.feed(&grin[..3]).unwrap();
        assert!(!v.is_complete());
        v.feed(&grin[3..]).unwrap();
        assert!(v.is_complete());
    }

    #[test]
    fn overlong_encodings_are_invalid() {
        for bad in
            [&b"\xC0\x80"[..], b"\xC1\xBF", b"\xE0\x80\x80", b"\xE0\x9F\xBF", b"\xF0\x80\x80\x80", b"\xF0\x8F\xBF\xBF"]
        {
            assert!(!valid_whole(bad), "{bad:02X?}");
        }
    }

    #[test]
    fn surrogates_are_invalid_and_their_neighbours_valid() {
        for bad in
            [&b"\xED\xA0\x80"[..], b"\xED\xAD\xBF", b"\xED\xB0\x80", b"\xED\xBF\xBF", b"\xED\xA0\x80\xED\xB0\x80"]
        {
            assert!(!valid_whole(bad), "{bad:02X?}");
        }
        assert!(valid_whole(b"\xED\x9F\xBF")); // U+D7FF
        assert!(valid_whole(b"\xEE\x80\x80")); // U+E000
    }

    #[test]
    fn code_points_above_u10ffff_are_invalid() {
        assert!(valid_whole(b"\xF4\x8F\xBF\xBF")); // U+10FFFF
        for bad in
            [&b"\xF4\x90\x80\x80"[..], b"\xF5\x80\x80\x80", b"\xF7\xBF\xBF\xBF", b"\xF8\x88\x80\x80\x80", b"\xFF"]
        {
            assert!(!valid_whole(bad), "{bad:02X?}");
        }
    }

    #[test]
    fn invalid_sequences_fail_on_the_piece_that_brings_the_first_bad_byte() {
        // Autobahn 6.4.1: valid "κόσμε", then a code point above U+10FFFF, then more valid text.
        let part1 = "κόσμε".as_bytes();
        assert_eq!(first_failure(&[part1, b"\xF4\x90\x80\x80", b"edited"]), Some(1));
        // The bad byte is the second of the sequence, delivered alone.
        assert_eq!(first_failure(&[b"ab\xF4", b"\x90", b"\x80\x80"]), Some(1));
        // A lone continuation byte or an impossible lead byte fails at once.
        assert_eq!(first_failure(&[b"abc", b"\x80"]), Some(1));
        assert_eq!(first_failure(&[b"\xC0"]), Some(0));
        // A lead byte followed by ASCII fails when the ASCII arrives.
        assert_eq!(first_failure(&[b"\xE2\x82", b"x"]), Some(1));
    }

    #[test]
    fn a_message_ending_inside_a_character_fails_at_finish() {
        assert_eq!(first_failure(&[b"abc\xE2\x82"]), Some(1));
        assert_eq!(first_failure(&[b"\xF0", b"\x9F\x98"]), Some(2));
        let mut v = Utf8Validator::new();
        v.feed(b"\xE2").unwrap();
        assert_eq!(v.finish().unwrap_err().code(), CloseCode::INVALID_PAYLOAD);
        v.feed(b"fresh start").unwrap();
        v.finish().unwrap();
    }

    #[test]
    fn agrees_with_std_on_arbitrary_bytes_split_anywhere() {
        // Deterministic pseudo-random strings biased towards bytes that form multi-byte sequences.
        let mut state = 0x1234_5678_9ABC_DEF0u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let alphabet = [b'a', 0x80, 0x8F, 0x90, 0xA0, 0xBF, 0xC2, 0xDF, 0xE0, 0xED, 0xEF, 0xF0, 0xF4, 0xF5, 0xC0];
        for _ in 0..20_000 {
            let len = (next() % 9) as usize;
            let bytes: Vec<u8> = (0..len).map(|_| alphabet[(next() % alphabet.len() as u64) as usize]).collect();
            let split = if len == 0 { 0 } else { (next() % (len as u64 + 1)) as usize };
            let expected = std::str::from_utf8(&bytes).is_ok();
            let got = first_failure(&[&bytes[..split], &bytes[split..]]).is_none();
            assert_eq!(got, expected, "{bytes:02X?} split at {split}");
        }
    }
}
