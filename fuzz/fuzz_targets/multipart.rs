//! multipart/form-data and urlencoded parsing: the streaming parser fed in two pieces agrees with the
//! buffered parser on the whole body; nothing panics.
#![no_main]

use gale_web::forms::{
    FormError, FormLimits, MultipartParser, MultipartSink, PartHeaders, parse_multipart, parse_urlencoded,
};
use libfuzzer_sys::fuzz_target;

#[derive(Default)]
struct Record {
    parts: Vec<(String, Option<String>, Vec<u8>)>,
}

impl MultipartSink for Record {
    type Error = FormError;
    fn part_begin(&mut self, headers: &PartHeaders) -> Result<(), FormError> {
        self.parts.push((headers.name.clone(), headers.filename.clone(), Vec::new()));
        Ok(())
    }
    fn part_data(&mut self, data: &[u8]) -> Result<(), FormError> {
        assert!(!data.is_empty());
        self.parts.last_mut().expect("in a part").2.extend_from_slice(data);
        Ok(())
    }
    fn part_end(&mut self) -> Result<(), FormError> {
        Ok(())
    }
}

fn stream(boundary: &str, pieces: &[&[u8]]) -> Result<Vec<(String, Option<String>, Vec<u8>)>, FormError> {
    let mut parser = MultipartParser::new(boundary, FormLimits::default())?;
    let mut sink = Record::default();
    for p in pieces {
        parser.feed(p, &mut sink)?;
    }
    parser.finish()?;
    Ok(sink.parts)
}

fuzz_target!(|data: &[u8]| {
    let _ = parse_urlencoded(data);
    let Some((&cut, body)) = data.split_first() else { return };
    let boundary = "XyZzY";
    let at = usize::from(cut) * body.len() / 256;
    let whole = stream(boundary, &[body]);
    let split = stream(boundary, &[&body[..at], &body[at..]]);
    assert_eq!(whole.is_ok(), split.is_ok(), "outcome depends on the cut");
    if let (Ok(a), Ok(b)) = (&whole, &split) {
        assert_eq!(a, b);
    }
    // The buffered parser accepts what the streaming one accepts.
    if whole.is_ok() {
        assert!(parse_multipart(boundary, body).is_ok());
    }
});
