//! Write benchmarks (filled in below).
fn main() {}
