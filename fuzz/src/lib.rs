//! Helpers shared by the fuzz targets in `fuzz_targets/`.
//!
//! Most targets check that a streaming parser gives the same result whatever the pieces its input arrives
//! in. [`Split`] reads those pieces out of the fuzz input itself, so that libFuzzer steers the cuts as well as
//! the bytes, and a plain input (a request, a frame) prefixed with a zero byte is a meaningful seed.

pub mod http1;

use std::ops::Range;

/// A fuzz input taken apart as a byte stream plus the places it is cut at.
///
/// Layout: one control byte `c`, then, unless `c & 0x80` is set, `c & 0x07` cut positions of two bytes each
/// (big-endian, scaled to the stream's length), then the stream. With `c & 0x80` set the stream is fed one
/// byte at a time. Bits `0x78` of `c` are left to the target ([`Split::flags`]).
#[derive(Clone, Debug)]
pub struct Split<'a> {
    /// The byte stream.
    pub stream: &'a [u8],
    /// Where each piece of `stream` ends, ascending, the last one being `stream.len()`.
    ends: Vec<usize>,
    flags: u8,
}

impl<'a> Split<'a> {
    /// Reads a [`Split`] from the front of `data`; `None` if `data` is empty.
    pub fn new(data: &'a [u8]) -> Option<Split<'a>> {
        let (&control, rest) = data.split_first()?;
        let flags = (control >> 3) & 0x0F;
        if control & 0x80 != 0 {
            return Some(Split { stream: rest, ends: (1..=rest.len()).collect(), flags });
        }
        let ncuts = usize::from(control & 0x07).min(rest.len() / 2);
        let (cut_bytes, stream) = rest.split_at(2 * ncuts);
        let mut ends: Vec<usize> = cut_bytes
            .chunks_exact(2)
            .map(|pair| usize::from(u16::from_be_bytes([pair[0], pair[1]])) * stream.len() / 65_536)
            .collect();
        ends.push(stream.len());
        ends.sort_unstable();
        Some(Split { stream, ends, flags })
    }

    /// The four target-defined bits of the control byte.
    pub fn flags(&self) -> u8 {
        self.flags
    }

    /// The ranges of `stream` fed one after the other (some may be empty).
    pub fn ranges(&self) -> impl Iterator<Item = Range<usize>> + '_ {
        std::iter::once(0).chain(self.ends.iter().copied()).zip(self.ends.iter().copied()).map(|(a, b)| a..b)
    }

    /// The pieces of `stream`, in order; concatenated they are `stream`.
    pub fn pieces(&self) -> impl Iterator<Item = &'a [u8]> + '_ {
        let stream = self.stream;
        self.ranges().map(move |r| &stream[r])
    }
}

/// Cuts `data` into at most `max` pieces at each occurrence of `separator` (which is dropped).
pub fn fields(data: &[u8], separator: u8, max: usize) -> Vec<&[u8]> {
    data.splitn(max, |&b| b == separator).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_cover_the_stream_in_order() {
        let data = [0x02, 0x80, 0x00, 0x40, 0x00, b'a', b'b', b'c', b'd'];
        let split = Split::new(&data).unwrap();
        assert_eq!(split.stream, b"abcd");
        let pieces: Vec<&[u8]> = split.pieces().collect();
        assert_eq!(pieces, [&b"a"[..], b"b", b"cd"]);
        let trickle = Split::new(b"\x80xyz").unwrap();
        assert_eq!(trickle.pieces().collect::<Vec<_>>(), [&b"x"[..], b"y", b"z"]);
        assert_eq!(Split::new(b"\x00whole").unwrap().pieces().collect::<Vec<_>>(), [&b"whole"[..]]);
        assert!(Split::new(b"").is_none());
    }
}
