//! Request arguments as the handler sees them: the query and the body, parsed once, on first use.

use crate::application::Settings;
use crate::error::HttpError;
pub use crate::forms::{Arguments, UploadedFile};
use crate::forms::{FormError, FormLimits};

fn limits(settings: &Settings) -> FormLimits {
    FormLimits {
        max_arguments: settings.max_arguments,
        max_parts: settings.max_multipart_parts,
        max_part_header_bytes: settings.max_part_header_size,
    }
}

fn bad_request(e: FormError) -> HttpError {
    HttpError::with_message(400, format!("malformed request arguments: {e}"))
}

/// Parses a query string.
pub(crate) fn parse_query(query: &[u8], max_arguments: usize) -> Result<Arguments, FormError> {
    let mut args = Arguments::new();
    let limits = FormLimits { max_arguments, ..FormLimits::default() };
    crate::forms::parse_urlencoded_into(query, &mut args, &limits)?;
    Ok(args)
}

/// Parses a buffered body by its `Content-Type` (urlencoded or multipart; anything else has no arguments).
pub(crate) fn parse_body(
    content_type: &str,
    body: &[u8],
    settings: &Settings,
) -> Result<(Arguments, Vec<(String, UploadedFile)>), HttpError> {
    let (args, files) =
        crate::forms::parse_body_arguments(content_type, body, &limits(settings)).map_err(bad_request)?;
    let files = files.iter().flat_map(|(name, list)| list.iter().map(move |f| (name.to_owned(), f.clone()))).collect();
    Ok((args, files))
}
