//! Criterion benchmarks for gale; the benchmark targets live beside this file. Run them with
//! `cargo bench -p gale-benches`.
