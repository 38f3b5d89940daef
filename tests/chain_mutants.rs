//! Tests written against mutants of `src/chain` that the rest of the suite let survive
//! (`scripts/mutants chain`; docs/testing.md, "Mutation testing"). Each names the
//! behaviour the mutant broke. Public API only.

use kafkachain::chain::canonical::{is_canonical, to_canonical};

/// A container closed by the other bracket, or a value followed by anything but `,` or
/// its closing bracket, is malformed (Python's `json.loads` refuses each). Under the
/// mutant that let any byte close the innermost container, `[1}` read as `[1]`.
#[test]
fn a_container_closes_only_with_its_own_bracket() {
    for bad in [
        &b"[1}"[..],
        b"{\"a\": 1]",
        b"[[1]}",
        b"{\"a\": [1}}",
        b"[1 2]",
        b"[true x]",
        b"{\"a\": \"b\" \"c\": 1}",
    ] {
        let shown = String::from_utf8_lossy(bad);
        let err = to_canonical(bad).expect_err(&format!("{shown} accepted"));
        assert!(
            err.msg.starts_with("expected ','"),
            "{shown}: wrong error {err:?}"
        );
        assert!(is_canonical(bad).is_err(), "{shown} accepted as canonical");
    }
    assert_eq!(
        to_canonical(b"[[1], {\"a\": []}]").unwrap(),
        b"[[1], {\"a\": []}]"
    );
}
