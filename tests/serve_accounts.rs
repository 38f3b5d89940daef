//! `kafkachain serve` on an `accounts` chain, against the real broker: a real node with
//! genesis allocations mines signed transfers submitted through `POST
//! /transactions/new`, and `/address/:address` gives each account's balance and next
//! nonce exactly as the node's own replay of the topic has them.

mod cluster;
mod serve;
mod support;

use std::time::Duration;

use cluster::Ledger;
use kafkachain::chain::accounts::{Address, ChainId};
use serde_json::{json, Value};
use serve::{accounts_flags, key, transfer, verify_both, ServeProc};

fn confirmed(s: &ServeProc, txid: &str) -> Value {
    support::wait_until(
        Duration::from_secs(120),
        &format!("{txid} to be confirmed"),
        || {
            let r = s.get(&format!("/tx/{txid}"));
            (r.status == 200 && r.json()["status"]["confirmed"] == json!(true)).then(|| r.json())
        },
    )
}

fn error_of(r: &serve::Response, status: u16) -> String {
    assert_eq!(r.status, status, "{}", r.text());
    r.json()["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no JSON error: {}", r.text()))
        .to_string()
}

#[test]
fn accounts_have_balances_and_next_nonces() {
    let ledger = Ledger::new("serve-accounts", 1);
    let (alice_key, alice) = key();
    let (_, bob) = key();
    let (_, never_seen) = key();
    let _node = ledger.node("a1", &accounts_flags(&ledger, &[(alice, 1000)]));
    let s = ServeProc::start(&ledger, &ledger.dir.path().join("index.sqlite"), &[]);
    s.wait_for_height(1, Duration::from_secs(60));
    let (chain, _) = ledger.replay();
    let chain_id = chain.accounts().expect("an accounts chain").chain_id();

    // Funded by the genesis alone (no transaction names it): balance and nonce 0.
    let a = s.get(&format!("/address/{alice}"));
    assert_eq!(a.status, 200, "{}", a.text());
    let a = a.json();
    assert_eq!(
        (&a["rules"], &a["balance"], &a["next_nonce"], &a["tx_count"]),
        (&json!("accounts"), &json!(1000), &json!(0), &json!(0))
    );
    // Any well-formed address has a balance and a nonce, so a new wallet can sign.
    let n = s.get(&format!("/address/{never_seen}")).json();
    assert_eq!((&n["balance"], &n["next_nonce"]), (&json!(0), &json!(0)));
    let msg = error_of(&s.get("/address/alice"), 400);
    assert!(msg.contains("64 lowercase hex"), "{msg}");

    // Two signed transfers through the API; each is confirmed under the id it was given.
    let mut txids = Vec::new();
    for (nonce, amount) in [(0, 100), (1, 50)] {
        let r = s.post(
            "/transactions/new",
            &transfer(&alice_key, bob, amount, nonce, &chain_id),
        );
        assert_eq!(r.status, 201, "{}", r.text());
        let txid = r.json()["txid"].as_str().expect("txid").to_string();
        let info = confirmed(&s, &txid);
        assert_eq!(info["sender"], json!(alice.to_string()));
        assert_eq!(info["tx"]["nonce"], json!(nonce));
        txids.push(txid);
    }

    // Rejected before publishing, each with its reason.
    let used = error_of(
        &s.post(
            "/transactions/new",
            &transfer(&alice_key, bob, 1, 0, &chain_id),
        ),
        400,
    );
    assert!(used.contains("already used (next is 2)"), "{used}");
    let other_chain = error_of(
        &s.post(
            "/transactions/new",
            &transfer(&alice_key, bob, 1, 2, &ChainId([7; 32])),
        ),
        400,
    );
    assert!(other_chain.contains("signature"), "{other_chain}");
    let unsigned = error_of(
        &s.post(
            "/transactions/new",
            format!(r#"{{"from": "{alice}", "to": "{bob}", "amount": 1}}"#).as_bytes(),
        ),
        400,
    );
    assert!(unsigned.contains("unsigned"), "{unsigned}");

    // Balances and nonces agree with the node's replay of the topic, miner included.
    let (_, view) = ledger.replay();
    s.wait_for_height(view.height, Duration::from_secs(60));
    let (chain, view) = ledger.replay();
    let ledger_state = chain.accounts().expect("accounts");
    let miners: Vec<String> = view.blocks_by_miner.keys().cloned().collect();
    assert!(!miners.is_empty());
    let mut checked = vec![alice.to_string(), bob.to_string()];
    checked.extend(miners);
    for address in &checked {
        let parsed = Address::parse(address.as_bytes(), "test").expect("an address");
        let account = ledger_state.account(&parsed);
        let v = s.get(&format!("/address/{address}")).json();
        assert_eq!(
            (&v["balance"], &v["next_nonce"]),
            (&json!(account.balance), &json!(account.nonce)),
            "{address} (served at height {} of {})",
            s.get("/blocks/tip/height").text(),
            view.height
        );
    }
    let a = s.get(&format!("/address/{alice}")).json();
    assert_eq!(
        (&a["balance"], &a["next_nonce"], &a["tx_count"], &a["sent"]),
        (&json!(850), &json!(2), &json!(2), &json!(150.0))
    );
    let b = s.get(&format!("/address/{bob}")).json();
    assert_eq!((&b["balance"], &b["next_nonce"]), (&json!(150), &json!(0)));

    // The history, newest first, and each transfer's proof (accounts blocks have the
    // v2 header), checked by Rust and by Python.
    let history = s.get(&format!("/address/{alice}/txs")).json();
    let nonces: Vec<&Value> = history
        .as_array()
        .expect("a list")
        .iter()
        .map(|t| &t["tx"]["nonce"])
        .collect();
    assert_eq!(nonces, [&json!(1), &json!(0)]);
    assert_eq!(history[1]["txid"], json!(txids[0]));
    for txid in &txids {
        let r = s.get(&format!("/tx/{txid}/merkle-proof"));
        assert_eq!(r.status, 200, "{}", r.text());
        let path = ledger.dir.path().join(format!("proof-{txid}.json"));
        std::fs::write(&path, r.text()).expect("proof file");
        let (rust_ok, rust_out, py_ok, py_out) = verify_both(&path);
        assert!(rust_ok, "kafkachain proof verify: {rust_out}");
        assert!(py_ok, "proof_verify.py: {py_out}");
    }

    // The explorer's account page: tests/serve_browser.rs.
}
