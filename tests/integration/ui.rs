//! Compile-time checks: every macro error is pinned with its span and hint (`tests/ui/fail`),
//! and every supported signature compiles (`tests/ui/pass`).
//!
//! Regenerate the expected output after an intended change with
//! `TRYBUILD=overwrite cargo test --test integration ui`.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/fail/*.rs");
    t.pass("tests/ui/pass/*.rs");
}
