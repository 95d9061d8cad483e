//! The public conformance suite. Placeholder: being written.

/// Runs the whole contract against backends made by `make`.
pub fn run_all<P: crate::Poller, F: Fn() -> std::io::Result<P>>(make: F) {
    let _ = make().expect("backend");
}
