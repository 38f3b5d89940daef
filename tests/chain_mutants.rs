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

/// `Ledger::contains` says whether an address has an account. The node's accounts pool
/// checks an unknown recipient's address is a valid key and skips the check for known
/// ones; nothing looked at the answer for an address the ledger has never seen, so a
/// mutant answering `true` for every address (every recipient taken as checked) survived.
#[test]
fn a_ledger_contains_only_the_accounts_it_has() {
    use ed25519_dalek::SigningKey;
    use kafkachain::chain::accounts::{Address, ChainId, Ledger};

    let addr = |n: u8| Address::of(&SigningKey::from_bytes(&[n; 32]).verifying_key());
    let ledger = Ledger::new(ChainId([42; 32]), 10, [(addr(1), 5)]).unwrap();
    assert!(ledger.contains(&addr(1)));
    assert!(
        !ledger.contains(&addr(2)),
        "an address never seen has no account"
    );
}
