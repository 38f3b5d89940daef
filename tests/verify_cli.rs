//! `kafkachain verify` as a user runs it: the built binary on fixture files and stdin.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

fn verify(args: &[&str], stdin: Option<&[u8]>) -> (i32, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kafkachain"))
        .arg("verify")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(bytes) = stdin {
        input.write_all(bytes).unwrap();
    }
    drop(input);
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn path(name: &str) -> String {
    fixture(name).to_string_lossy().into_owned()
}

#[test]
fn valid_tutorial_chain_exits_zero() {
    let (code, out, _) = verify(&[&path("seed_chain.jsonl")], None);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("rules: seed"), "{out}");
    assert!(out.contains("height: 24"), "{out}");
    assert!(
        out.contains(
            "tip: 38deb572c4784a128f7f2c852c996dc79142d750a2b291db21e866b293644836 (index 24)"
        ),
        "{out}"
    );
}

#[test]
fn tampered_chain_names_the_line_and_the_rule() {
    let (code, out, _) = verify(&[&path("seed_tampered_link.jsonl")], None);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("line 7: discarded: bad link"), "{out}");
    assert!(out.contains("height: 6"), "{out}");
    let (code, out, _) = verify(&[&path("seed_tampered_proof.jsonl")], None);
    assert_eq!(code, 1);
    assert!(
        out.contains("line 12: discarded: bad proof of work"),
        "{out}"
    );
    let (code, out, _) = verify(&[&path("seed_garbage.jsonl")], None);
    assert_eq!(code, 1);
    assert!(out.contains("line 6: discarded: unparsable JSON"), "{out}");
    assert!(out.contains("line 10: discarded: not a block"), "{out}");
}

#[test]
fn stale_blocks_are_tolerated_only_on_request() {
    let (code, out, _) = verify(&[&path("seed_duplicate.jsonl")], None);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("line 17: discarded (stale)"), "{out}");
    let (code, out, _) = verify(&[&path("seed_duplicate.jsonl"), "--allow-stale"], None);
    assert_eq!(code, 0, "{out}");
    // --allow-stale does not excuse anything else.
    let (code, _, _) = verify(&[&path("seed_garbage.jsonl"), "--allow-stale"], None);
    assert_eq!(code, 1);
}

#[test]
fn reads_stdin_and_skips_empty_lines() {
    let chain = std::fs::read(fixture("seed_chain.jsonl")).unwrap();
    let mut spaced = Vec::new();
    for line in chain.split(|b| *b == b'\n') {
        spaced.extend_from_slice(line);
        spaced.extend_from_slice(b"\n\n");
    }
    let (code, out, _) = verify(&[], Some(&spaced));
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("height: 24"), "{out}");
}

#[test]
fn empty_input_is_not_a_valid_chain() {
    let (code, out, _) = verify(&[], Some(b""));
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("no genesis"), "{out}");
}

#[test]
fn unreadable_file_is_a_clear_error_not_a_panic() {
    let (code, out, err) = verify(&["/nonexistent/chain.jsonl"], None);
    assert_eq!(code, 2, "{out}");
    assert!(
        err.contains("opening chain file /nonexistent/chain.jsonl"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = verify(&[&dir.path().to_string_lossy()], None);
    assert_eq!(code, 2);
    assert!(err.contains("chain file"), "{err}");
}
