//! `kafkachain serve` against the real broker: a real node mines, a real `serve` process
//! indexes, and every check goes over a real socket.

mod cluster;
mod serve;
mod support;

use std::time::Duration;

use cluster::{node_flags, Ledger};
use serde_json::{json, Value};
use serve::{verify_both, Events, ServeProc};

fn confirmed(s: &ServeProc, txid: &str) -> Value {
    support::wait_until(
        Duration::from_secs(90),
        &format!("{txid} to be confirmed"),
        || {
            let r = s.get(&format!("/tx/{txid}"));
            let v = r.json();
            (r.status == 200 && v["status"]["confirmed"] == json!(true)).then_some(v)
        },
    )
}

fn assert_json_error(r: &serve::Response, status: u16, contains: &str) {
    assert_eq!(r.status, status, "{}", r.text());
    let v = r.json();
    let msg = v["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error: {v}"));
    assert!(
        msg.contains(contains),
        "{msg:?} should mention {contains:?}"
    );
}

#[test]
fn api_events_proofs_and_metrics_over_a_real_chain() {
    let ledger = Ledger::new("serve", 1);
    let _node = ledger.node("n1", &node_flags(Some(0), 3, 6));
    let s = ServeProc::start(&ledger, &ledger.dir.path().join("index.sqlite"), &[]);

    // Submit through the tutorial's endpoint (both spellings of the fields).
    let mut txids = Vec::new();
    for i in 0..7 {
        let body = if i % 2 == 0 {
            format!(r#"{{"from": "alice", "to": "bob", "amount": {}}}"#, i + 1)
        } else {
            format!(
                r#"{{"sender": "alice", "recipient": "carol", "amount": {}}}"#,
                i + 1
            )
        };
        let r = s.post("/transactions/new", body.as_bytes());
        assert_eq!(r.status, 201, "{}", r.text());
        let v = r.json();
        assert!(v["message"]
            .as_str()
            .unwrap()
            .starts_with("Transaction will be added to Block"));
        txids.push(v["txid"].as_str().unwrap().to_string());
    }
    let state = s.get(&format!("/tx/{}", txids[6])).json()["status"]["state"].clone();
    assert!(
        state == json!("pending") || state == json!("confirmed"),
        "{state}"
    );

    for t in &txids {
        confirmed(&s, t);
    }
    let (_, view) = ledger.replay();
    s.wait_for_height(view.height, Duration::from_secs(30));
    let infos: Vec<Value> = txids.iter().map(|t| confirmed(&s, t)).collect();

    // The tip and the chain agree with the node's own replay of the topic.
    assert_eq!(s.get("/blocks/tip/height").text(), view.height.to_string());
    assert_eq!(s.get("/blocks/tip/hash").text(), view.tip);
    let chain = s.get("/chain").json();
    assert_eq!(chain["length"], json!(view.height));
    assert_eq!(chain["chain"].as_array().unwrap().len() as u64, view.height);
    assert_eq!(chain["chain"][0]["rules"], json!("v2"));
    let page = s.get("/chain?from=2&limit=1").json();
    assert_eq!(page["chain"].as_array().unwrap().len(), 1);
    assert_eq!(page["chain"][0]["index"], json!(2));

    // A transaction, its block, and the block's lookups all agree.
    let t = &infos[0];
    assert_eq!(t["sender"], json!("alice"));
    assert_eq!(t["recipient"], json!("bob"));
    assert_eq!(t["amount"], json!("1"));
    let height = t["status"]["block_height"].as_u64().unwrap();
    let hash = t["status"]["block_hash"].as_str().unwrap().to_string();
    assert_eq!(
        t["status"]["confirmations"].as_u64().unwrap(),
        view.height - height + 1
    );
    let block = s.get(&format!("/block/{hash}")).json();
    assert_eq!(block["height"], json!(height));
    assert_eq!(block["miner"], json!("n1"));
    let ids = s.get(&format!("/block/{hash}/txids")).json();
    assert_eq!(
        ids.as_array().unwrap().len() as u64,
        block["tx_count"].as_u64().unwrap()
    );
    assert_eq!(ids[t["pos"].as_u64().unwrap() as usize], json!(txids[0]));
    assert_eq!(s.get(&format!("/block-height/{height}")).text(), hash);
    let recent = s.get("/blocks").json();
    assert_eq!(recent[0]["height"], json!(view.height));
    let older = s.get(&format!("/blocks/{height}")).json();
    assert_eq!(older[0]["id"], json!(hash));

    // Merkle proofs, checked by `kafkachain proof verify` and by the Python verifier.
    for txid in &txids {
        let r = s.get(&format!("/tx/{txid}/merkle-proof"));
        assert_eq!(r.status, 200, "{}", r.text());
        let proof = r.json();
        for key in ["block_height", "merkle", "pos"] {
            assert!(proof.get(key).is_some(), "Esplora field {key} missing");
        }
        let path = ledger.dir.path().join(format!("proof-{txid}.json"));
        std::fs::write(&path, proof.to_string()).unwrap();
        let (rust_ok, rust_out, py_ok, py_out) = verify_both(&path);
        assert!(rust_ok, "kafkachain proof verify: {rust_out}");
        assert!(py_ok, "proof_verify.py: {py_out}");
        // Tampering with the amount breaks the leaf; with the position, the branch.
        let mut bad = proof.clone();
        bad["tx"] = json!(proof["tx"]
            .as_str()
            .unwrap()
            .replace("\"amount\": ", "\"amount\": 9"));
        let mut moved = proof.clone();
        moved["pos"] = json!(proof["pos"].as_u64().unwrap() ^ 1);
        for (what, tampered) in [("tx", bad), ("pos", moved)] {
            std::fs::write(&path, tampered.to_string()).unwrap();
            let (rust_ok, rust_out, py_ok, py_out) = verify_both(&path);
            assert!(!rust_ok, "tampered {what} accepted by Rust: {rust_out}");
            assert!(!py_ok, "tampered {what} accepted by Python: {py_out}");
            assert!(rust_out.contains("invalid"), "{rust_out}");
        }
    }

    // Addresses: totals and paged history.
    let alice = s.get("/address/alice").json();
    assert_eq!(alice["tx_count"], json!(7));
    assert_eq!(alice["sent"], json!(28.0));
    let bob = s.get("/address/bob").json();
    assert_eq!(bob["received"], json!(1.0 + 3.0 + 5.0 + 7.0));
    let first = s.get("/address/alice/txs?limit=2").json();
    let second = s.get("/address/alice/txs?from=2&limit=5").json();
    assert_eq!(first.as_array().unwrap().len(), 2);
    assert_eq!(second.as_array().unwrap().len(), 5);
    assert!(first[0]["block_height"].as_u64() >= second[0]["block_height"].as_u64());

    // Bad input: a JSON error with a 4xx, never a 500.
    assert_json_error(&s.get("/tx/xyz"), 400, "not a transaction id");
    assert_json_error(
        &s.get(&format!("/tx/{}", "0".repeat(64))),
        404,
        "not on the chain",
    );
    assert_json_error(&s.get("/block/zz"), 400, "not a block hash");
    assert_json_error(
        &s.get(&format!("/block/{}", "1".repeat(64))),
        404,
        "no block",
    );
    assert_json_error(&s.get("/block-height/-3"), 400, "not a block height");
    assert_json_error(&s.get("/block-height/999999"), 404, "no block at height");
    assert_json_error(&s.get("/chain?limit=0"), 400, "limit");
    assert_json_error(&s.get("/chain?from=-1"), 400, "from");
    assert_json_error(&s.get("/address/alice/txs?limit=5000"), 400, "limit");
    assert_json_error(&s.get("/address/nobody"), 404, "no transactions");
    assert_json_error(&s.get("/nope"), 404, "no such route");
    assert_json_error(
        &s.post("/transactions/new", br#"{"from": "a"}"#),
        400,
        "Missing values: to, amount",
    );
    assert_json_error(&s.post("/transactions/new", b"{not json"), 400, "not JSON");
    assert_json_error(
        &s.post(
            "/transactions/new",
            br#"{"from": "a", "to": "b", "amount": -1}"#,
        ),
        400,
        "negative",
    );
    assert_json_error(
        &s.post(
            "/transactions/new",
            br#"{"from": 1, "to": "b", "amount": 1}"#,
        ),
        400,
        "from",
    );
    let huge = format!(
        r#"{{"from": "{}", "to": "b", "amount": 1}}"#,
        "a".repeat(10_000)
    );
    assert_json_error(&s.post("/transactions/new", huge.as_bytes()), 413, "limit");

    // Server-sent events: the tip on connect, then one event per new block.
    let mut events = Events::open(&s.addr);
    let (name, tip) = events.next_event();
    assert_eq!(name, "tip");
    let tip_height = tip["height"].as_u64().unwrap();
    let r = s.post(
        "/transactions/new",
        br#"{"from": "dave", "to": "erin", "amount": 2}"#,
    );
    assert_eq!(r.status, 201);
    let (name, block) = events.next_event();
    assert_eq!(name, "block");
    assert_eq!(block["height"].as_u64().unwrap(), tip_height + 1);
    assert!(block["tx_count"].as_u64().unwrap() >= 1);
    assert_eq!(block["hash"].as_str().unwrap().len(), 64);

    // Health and metrics.
    let health = s.get("/healthz");
    assert_eq!(health.status, 200, "{}", health.text());
    assert_eq!(health.json()["status"], json!("ok"));
    let metrics = s.get("/metrics");
    assert_eq!(metrics.status, 200);
    let text = metrics.text();
    let value = |name: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("metric {name} missing from:\n{text}"))
    };
    let indexed_height = value("kafkachain_index_height");
    assert!(indexed_height >= (tip_height + 1) as f64);
    assert!(value("kafkachain_index_transactions_total") >= 8.0);
    assert!(text.contains("# TYPE kafkachain_http_request_duration_seconds histogram"));
    assert!(text.contains("route=\"/tx/{txid}\""), "{text}");

    // The OpenAPI document describes every route.
    let openapi = s.get("/openapi.json").json();
    for path in [
        "/chain",
        "/transactions/new",
        "/blocks/tip/height",
        "/block/{hash}",
        "/tx/{txid}/merkle-proof",
        "/address/{address}/txs",
        "/events",
        "/healthz",
        "/metrics",
    ] {
        assert!(
            openapi["paths"].get(path).is_some(),
            "{path} not documented"
        );
    }
    assert!(s.get("/").text().contains("kafkachain explorer"));
}

#[test]
fn seed_chains_have_no_proofs_and_say_so() {
    let ledger = Ledger::new("serve-seed", 1);
    let mut flags = node_flags(Some(0), 2, 0);
    flags.extend(["--rules".into(), "seed".into()]);
    let _node = ledger.node("s1", &flags);
    let s = ServeProc::start(&ledger, &ledger.dir.path().join("index.sqlite"), &[]);
    let r = s.post(
        "/transactions/new",
        br#"{"from": "a", "to": "b", "amount": 1}"#,
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let txid = r.json()["txid"].as_str().unwrap().to_string();
    // The id computed at submission is the one the seed block carries too.
    let info = confirmed(&s, &txid);
    assert_eq!(info["sender"], json!("a"));
    let r = s.get(&format!("/tx/{txid}/merkle-proof"));
    assert_json_error(&r, 422, "seed");
    assert!(r.json()["error"]
        .as_str()
        .unwrap()
        .contains("no Merkle root"));
}
