//! Decompressing `Content-Encoding: gzip` bodies as they arrive, with bounded memory.
//!
//! Output leaves in pieces of at most [`OUTPUT_CHUNK`] bytes, each handed to a sink that may refuse it (the
//! body limit): so a small input that inflates enormously — a gzip bomb — costs at most one piece beyond the
//! limit before decoding stops. `flate2` (on zlib-rs) does the inflating and checks the gzip trailer's CRC.

use std::io;

use bytes::Bytes;
use flate2::{Decompress, FlushDecompress, Status};

use super::error::ClientError;

/// The most decompressed bytes produced before they are handed on.
pub(crate) const OUTPUT_CHUNK: usize = 32 * 1024;

/// Inflates one gzip member.
pub(crate) struct GzipDecoder {
    inflate: Decompress,
    /// Where each piece of output is inflated before it is copied out.
    scratch: Vec<u8>,
    done: bool,
}

impl std::fmt::Debug for GzipDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GzipDecoder").field("total_in", &self.inflate.total_in()).field("done", &self.done).finish()
    }
}

fn corrupt(message: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> ClientError {
    ClientError::Decompress(io::Error::new(io::ErrorKind::InvalidData, message))
}

impl GzipDecoder {
    /// A decoder at the start of a gzip stream.
    pub(crate) fn new() -> GzipDecoder {
        GzipDecoder { inflate: Decompress::new_gzip(15), scratch: Vec::new(), done: false }
    }

    /// Inflates `input`, handing the output to `sink` piece by piece. Bytes after the end of the gzip member
    /// are ignored, as Tornado and browsers do.
    ///
    /// # Errors
    ///
    /// [`ClientError::Decompress`] for corrupt data; whatever `sink` returns.
    pub(crate) fn decode(
        &mut self,
        mut input: &[u8],
        sink: &mut dyn FnMut(Bytes) -> Result<(), ClientError>,
    ) -> Result<(), ClientError> {
        if self.scratch.capacity() == 0 {
            self.scratch.reserve_exact(OUTPUT_CHUNK);
        }
        while !self.done {
            self.scratch.clear();
            let before = self.inflate.total_in();
            let status =
                self.inflate.decompress_vec(input, &mut self.scratch, FlushDecompress::None).map_err(corrupt)?;
            let consumed = usize::try_from(self.inflate.total_in() - before).unwrap_or(input.len());
            input = &input[consumed..];
            let produced = self.scratch.len();
            if produced > 0 {
                sink(Bytes::copy_from_slice(&self.scratch))?;
            }
            match status {
                Status::StreamEnd => self.done = true,
                // No progress: everything given was used and all output taken; wait for more input.
                _ if consumed == 0 && produced == 0 => break,
                // Output room left over means the input is used up and nothing more is pending.
                _ if input.is_empty() && produced < OUTPUT_CHUNK => break,
                _ => {}
            }
        }
        if self.done && !input.is_empty() {
            log::debug!("ignoring {} bytes after the end of a gzip body", input.len());
        }
        Ok(())
    }

    /// Checks that the gzip stream ended (an empty body is accepted too).
    ///
    /// # Errors
    ///
    /// [`ClientError::Decompress`] if the body stopped in the middle of the stream.
    pub(crate) fn finish(&mut self) -> Result<(), ClientError> {
        if self.done || self.inflate.total_in() == 0 { Ok(()) } else { Err(corrupt("gzip stream cut short")) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::Compression;
    use flate2::write::GzEncoder;
    use std::io::Write;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    /// Decodes `input` fed in pieces of `step` bytes; returns the output and the largest piece handed out.
    fn decode_in_steps(input: &[u8], step: usize, limit: usize) -> Result<(Vec<u8>, usize), ClientError> {
        let mut d = GzipDecoder::new();
        let mut out = Vec::new();
        let mut largest = 0;
        let mut sink = |b: Bytes| {
            largest = largest.max(b.len());
            out.extend_from_slice(&b);
            if out.len() > limit { Err(ClientError::BodyTooLarge { limit }) } else { Ok(()) }
        };
        for piece in input.chunks(step.max(1)) {
            d.decode(piece, &mut sink)?;
        }
        d.finish()?;
        Ok((out, largest))
    }

    #[test]
    fn gzip_split_anywhere_decodes_the_same() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let compressed = gzip(&data);
        for step in [1, 7, 4096, compressed.len()] {
            let (out, largest) = decode_in_steps(&compressed, step, usize::MAX).unwrap();
            assert_eq!(out, data, "step {step}");
            assert!(largest <= OUTPUT_CHUNK);
        }
    }

    #[test]
    fn a_gzip_bomb_stops_at_the_limit() {
        let compressed = gzip(&vec![0u8; 50 * 1024 * 1024]);
        assert!(compressed.len() < 100 * 1024);
        let mut d = GzipDecoder::new();
        let mut produced = 0usize;
        let err = d
            .decode(&compressed, &mut |b| {
                produced += b.len();
                if produced > 1024 * 1024 { Err(ClientError::BodyTooLarge { limit: 1024 * 1024 }) } else { Ok(()) }
            })
            .unwrap_err();
        assert!(err.is_body_too_large());
        assert!(produced <= 1024 * 1024 + OUTPUT_CHUNK, "inflated {produced} bytes");
    }

    #[test]
    fn corrupt_and_truncated_gzip_are_errors() {
        let compressed = gzip(b"hello hello hello hello");
        let cut = &compressed[..compressed.len() - 5];
        assert!(decode_in_steps(cut, 3, usize::MAX).unwrap_err().is_decode());
        let mut flipped = compressed.clone();
        let crc_at = flipped.len() - 8;
        flipped[crc_at] ^= 1;
        assert!(decode_in_steps(&flipped, 100, usize::MAX).unwrap_err().is_decode(), "the CRC is checked");
        assert!(decode_in_steps(b"not gzip at all", 100, usize::MAX).unwrap_err().is_decode());
        assert_eq!(decode_in_steps(b"", 1, usize::MAX).unwrap().0, b"");
    }

    #[test]
    fn bytes_after_the_member_are_ignored() {
        let mut input = gzip(b"payload");
        input.extend_from_slice(b"trailing junk");
        assert_eq!(decode_in_steps(&input, 4, usize::MAX).unwrap().0, b"payload");
    }
}
