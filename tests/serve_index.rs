//! The index behind `kafkachain serve`: resumed after a restart once its tip is found on
//! the chain topic, rebuilt when the tip is not there or the file is deleted, and
//! `/healthz` naming an unreachable broker.

mod cluster;
mod serve;
mod support;

use std::time::Duration;

use cluster::{node_flags, Ledger};
use serde_json::json;
use serve::ServeProc;

fn metric(s: &ServeProc, name: &str) -> f64 {
    let text = s.get("/metrics").text();
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("{name} missing:\n{text}"))
}

/// Waits until `path` answers 200 with `key` equal to `expected`.
fn wait_json(s: &ServeProc, path: &str, key: &str, expected: serde_json::Value) {
    support::wait_until(
        Duration::from_secs(60),
        &format!("{path} {key} = {expected}"),
        || {
            let r = s.get(path);
            (r.status == 200 && r.json()[key] == expected).then_some(())
        },
    );
}

fn sql(index: &std::path::Path, statement: &str) {
    let conn = rusqlite::Connection::open(index).expect("opening the index");
    conn.execute_batch(statement).expect("editing the index");
}

#[test]
fn the_index_resumes_verified_and_rebuilds_when_its_tip_is_gone() {
    let ledger = Ledger::new("index", 1);
    let _node = ledger.node("n1", &node_flags(Some(0), 2, 6));
    ledger.send(6, Some(0), "alice");
    let view = ledger.wait_for_txs(6, Duration::from_secs(90));
    let index = ledger.dir.path().join("index.sqlite");

    let mut s = ServeProc::start(&ledger, &index, &[]);
    s.wait_for_height(view.height, Duration::from_secs(60));
    let blocks_first_run = metric(&s, "kafkachain_index_blocks_total");
    assert_eq!(blocks_first_run, view.height as f64);
    s.terminate();

    // Restart: replays the topic without rewriting, checks the tip, then resumes.
    ledger.send(4, Some(0), "carol");
    let view = ledger.wait_for_txs(10, Duration::from_secs(90));
    let s = ServeProc::start(&ledger, &index, &[]);
    s.wait_for_height(view.height, Duration::from_secs(60));
    assert!(
        s.log().contains("index verified against the topic"),
        "{}",
        s.log()
    );
    assert!(!s.log().contains("rebuilding"), "{}", s.log());
    // Only the blocks after the stored offset were written in this run.
    assert_eq!(
        metric(&s, "kafkachain_index_blocks_total"),
        view.height as f64 - blocks_first_run
    );
    assert_eq!(s.get("/blocks/tip/hash").text(), view.tip);
    assert_eq!(s.get("/address/carol").json()["tx_count"], json!(4));
    drop(s);

    // A stored tip that the topic does not have (as after the topic was recreated):
    // the index is wiped and rebuilt from offset 0, with nothing counted twice.
    sql(
        &index,
        &format!(
            "UPDATE meta SET value = '{}' WHERE key = 'tip_hash'",
            "ab".repeat(32)
        ),
    );
    let s = ServeProc::start(&ledger, &index, &[]);
    support::wait_until(Duration::from_secs(60), "a rebuild", || {
        s.log()
            .contains("rebuilding the index from offset 0")
            .then_some(())
    });
    wait_json(&s, "/address/alice", "tx_count", json!(6));
    s.wait_for_height(view.height, Duration::from_secs(60));
    assert_eq!(metric(&s, "kafkachain_index_rebuilds_total"), 1.0);
    assert_eq!(s.get("/blocks/tip/hash").text(), view.tip);
    drop(s);

    // An index past the end of the topic is rebuilt too.
    sql(
        &index,
        "UPDATE meta SET value = '999999' WHERE key = 'next_offset'",
    );
    let s = ServeProc::start(&ledger, &index, &[]);
    support::wait_until(Duration::from_secs(60), "a rebuild", || {
        s.log().contains("before the index's 999999").then_some(())
    });
    wait_json(&s, "/address/alice", "tx_count", json!(6));
    s.wait_for_height(view.height, Duration::from_secs(60));
    drop(s);

    // Deleting the file rebuilds it.
    std::fs::remove_file(&index).unwrap();
    let s = ServeProc::start(&ledger, &index, &[]);
    s.wait_for_height(view.height, Duration::from_secs(60));
    assert_eq!(
        metric(&s, "kafkachain_index_blocks_total"),
        view.height as f64
    );
    assert_eq!(s.get("/address/alice").json()["tx_count"], json!(6));
}

/// A restarted `serve` whose index already ends at the topic's end reports that tip at
/// once (`/healthz`, `/metrics`): no batch is written, and it used to say height 0 and
/// "behind" until the next block landed.
#[test]
fn a_restart_with_nothing_new_reports_the_stored_tip() {
    let ledger = Ledger::new("index-idle", 1);
    let node = ledger.node("n1", &node_flags(Some(0), 2, 6));
    ledger.send(4, Some(0), "alice");
    let view = ledger.wait_for_txs(4, Duration::from_secs(90));
    drop(node); // nothing new may land on the topic from here on
    let index = ledger.dir.path().join("index.sqlite");

    let mut s = ServeProc::start(&ledger, &index, &[]);
    s.wait_for_height(view.height, Duration::from_secs(60));
    s.terminate();

    let s = ServeProc::start(&ledger, &index, &[]);
    let health = support::wait_until(
        Duration::from_secs(60),
        &format!("/healthz 200 at height {}", view.height),
        || {
            let r = s.get("/healthz");
            (r.status == 200 && r.json()["height"] == json!(view.height)).then(|| r.json())
        },
    );
    assert_eq!(health["tip"], json!(view.tip), "{health}");
    assert_eq!(health["behind"], json!(0), "{health}");
    assert_eq!(metric(&s, "kafkachain_index_height"), view.height as f64);
    // Nothing was written in this run.
    assert_eq!(metric(&s, "kafkachain_index_blocks_total"), 0.0);
}

#[test]
fn healthz_names_an_unreachable_broker() {
    // A broker of our own, so that it can be stopped.
    let tansu = support::Tansu::start().expect("starting a private Tansu");
    let mut ledger = Ledger::new("health", 1);
    ledger.brokers = tansu.addr.clone();
    kafkachain::transport::topics::ensure_topics(&ledger.kafka(), &ledger.topics)
        .expect("creating topics on the private broker");
    let s = ServeProc::start(&ledger, &ledger.dir.path().join("index.sqlite"), &[]);
    support::wait_until(Duration::from_secs(30), "healthz 200", || {
        (s.get("/healthz").status == 200).then_some(())
    });
    drop(tansu);
    let body = support::wait_until(Duration::from_secs(60), "healthz 503", || {
        let r = s.get("/healthz");
        (r.status == 503).then(|| r.json())
    });
    assert_eq!(body["status"], json!("unhealthy"));
    let problems = body["problems"].to_string();
    assert!(problems.contains("broker unreachable"), "{problems}");
}
