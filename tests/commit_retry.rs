//! A failed offset commit is retried until the broker takes it (issue 13, item 7).
//!
//! The node commits its transactions partition asynchronously once the transactions
//! are on the chain; the broker's answer arrives later. Here the broker refuses those
//! commits for a while, for real: a secured Apache Kafka (`scripts/broker start
//! --secure`, ACLs by principal) where the test removes the miner's `Read` on its
//! consumer group. In `--partition` mode fetching needs only `Read` on the topic, so
//! the node goes on mining while every `OffsetCommit` fails with
//! `GROUP_AUTHORIZATION_FAILED`. Then the group ACL comes back and the test sends
//! nothing more: only a node that retries failed commits brings the group's committed
//! offset to the partition's end while it runs. A node that ignores the failure (or
//! treats it as done, and then skips the same positions as unchanged) stays behind.
//!
//! Checked to discriminate: with the node's `IntakeEvent::Committed(Err(_))` handling
//! changed to record the positions in flight as committed, the test fails with
//! "the group's committed offset stays at 1 while partition 0 ends at 13 (expected
//! 13): a refused commit was not retried". Before the intake ran commits on a thread of
//! its own, it failed earlier: "the node logged no refused commit in 60 s" (librdkafka
//! logged `COMMITFAIL … Group authorization failed`, the node heard nothing).
//!
//! The secured broker is this test process's own (free ports, a temporary data dir
//! named like `broker_security`'s so either test removes the other's leftovers, stopped
//! by its watcher when the process exits). Tansu 0.6.0 has no ACLs: the test skips there.

mod cluster;
mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kafkachain::chain::Origin;
use kafkachain::transport::intake::group_committed;
use kafkachain::transport::{topics, TopicNames};
use support::secure::{self, report, text, SecureBroker};
use support::Engine;

const SKIP_REASON: &str = "ACLs (the broker refuses commits): Tansu 0.6.0 has none";

/// The miner principal whose group ACL the test takes away and gives back.
const MINER: &str = "miner-1";

/// Transactions sent while the broker refuses the miner's commits.
const REFUSED: usize = 12;

/// Removes (`delete`) or restores (`create`) `User:<principal>`'s `Read` on groups
/// prefixed `kafkachain` (the binding `scripts/broker` creates for each miner).
const GROUP_ACL_PY: &str = r#"
import sys
from confluent_kafka.admin import (AclBinding, AclBindingFilter, AclOperation,
                                   AclPermissionType, AdminClient, ResourcePatternType,
                                   ResourceType)
addr, conf, action, principal = sys.argv[1:5]
settings = {"bootstrap.servers": addr, "log_level": 0}
settings.update(l.split("=", 1) for l in open(conf).read().splitlines() if "=" in l)
admin = AdminClient(settings)
args = (ResourceType.GROUP, "kafkachain", ResourcePatternType.PREFIXED, principal, "*",
        AclOperation.READ, AclPermissionType.ALLOW)
if action == "delete":
    for future in admin.delete_acls([AclBindingFilter(*args)], request_timeout=60).values():
        print(len(future.result()))
else:
    for future in admin.create_acls([AclBinding(*args)], request_timeout=60).values():
        future.result()
    print(1)
"#;

/// Runs [`GROUP_ACL_PY`] as the admin; the number of bindings it touched.
fn group_acl(broker: &SecureBroker, action: &str) -> usize {
    let out = Command::new(support::python())
        .arg("-c")
        .arg(GROUP_ACL_PY)
        .arg(&broker.addr)
        .arg(broker.conf("admin"))
        .arg(action)
        .arg(format!("User:{MINER}"))
        .stdin(Stdio::null())
        .output()
        .expect("running python");
    assert!(
        out.status.success(),
        "{action} the group ACL: {}",
        report(&out)
    );
    text(&out.stdout).trim().parse().unwrap_or(0)
}

/// `kafkachain COMMAND --brokers … --tx-topic … --chain-topic … --tx-partitions 1
/// <user's -X> EXTRA`, which must succeed within two minutes.
fn kafkachain(broker: &SecureBroker, user: &str, names: &TopicNames, command: &[&str]) {
    let mut args: Vec<String> = command.iter().map(|s| s.to_string()).collect();
    args.extend(broker.connect(names));
    args.extend(broker.x_args(user));
    let mut child = Command::new(env!("CARGO_BIN_EXE_kafkachain"))
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running kafkachain");
    let deadline = Instant::now() + Duration::from_secs(120);
    while child.try_wait().expect("waiting for kafkachain").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().expect("collecting output");
    assert!(
        out.status.success(),
        "kafkachain {} as {user}: {}",
        args.join(" "),
        report(&out)
    );
}

/// The chain as a fresh replay (as the admin) sees it.
fn replay(broker: &SecureBroker, chain_topic: &str) -> cluster::ChainView {
    cluster::replay_topic(&broker.kafka("admin"), chain_topic)
        .expect("reading the chain topic")
        .1
}

/// The group's committed offset of partition 0 and the partition's end offset.
fn committed_and_end(broker: &SecureBroker, names: &TopicNames, group: &str) -> (i64, i64) {
    let admin = broker.kafka("admin");
    let committed = group_committed(&admin, &names.transactions, group, &[0])
        .expect("reading the committed offset")
        .first()
        .and_then(|(_, o)| *o)
        .unwrap_or(-1);
    let end = topics::describe_topic(&admin, &names.transactions)
        .expect("describing the transactions topic")
        .partitions[0]
        .high;
    (committed, end)
}

fn wait_on_chain(broker: &SecureBroker, names: &TopicNames, n: usize, log: &dyn Fn() -> String) {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let view = replay(broker, &names.chain);
        if view.origins.len() >= n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "only {} of {n} transactions reached the chain; node log:\n{}",
            view.origins.len(),
            log()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

fn origins(count: usize) -> Vec<Origin> {
    (0..count as i64)
        .map(|offset| Origin {
            partition: 0,
            offset,
        })
        .collect()
}

#[test]
fn a_refused_commit_is_retried_until_the_broker_takes_it() {
    if support::skip_unless(Engine::Kafka, SKIP_REASON) {
        return;
    }
    let broker = secure::start_secure_broker().unwrap_or_else(|e| panic!("{e}"));
    let names = TopicNames {
        transactions: support::unique_topic("transactions-commit-retry"),
        chain: support::unique_topic("blockchain-commit-retry"),
        tx_partitions: 1,
    };
    kafkachain(&broker, "admin", &names, &["topics", "create"]);
    // Under the miners' group ACL prefix `kafkachain`.
    let group = support::unique_topic("kafkachain-commit-retry");
    // The cluster helpers' node, on this broker, with the miner's credentials.
    let ledger = cluster::Ledger {
        brokers: broker.addr.clone(),
        topics: names.clone(),
        dir: tempfile::tempdir().expect("tempdir"),
    };
    let flags = [broker.x_args(MINER), cluster::node_flags(Some(0), 5, 8)].concat();
    let mut node = ledger.node_in_group(MINER, &group, &flags);
    let log = || node.log();
    let send = |count: usize| {
        let count = count.to_string();
        kafkachain(
            &broker,
            "client",
            &names,
            &[
                "send",
                "--from",
                "alice",
                "--to",
                "bob",
                "--amount",
                "1",
                "--partition",
                "0",
                "--count",
                &count,
            ],
        )
    };

    // With the ACL in place the node commits (and has read the committed offset).
    send(1);
    wait_on_chain(&broker, &names, 1, &log);
    wait_committed(&broker, &names, &group, 1, &log);

    // The broker refuses every commit now; mining goes on.
    assert_eq!(group_acl(&broker, "delete"), 1, "removed the group ACL");
    send(REFUSED);
    wait_on_chain(&broker, &names, 1 + REFUSED, &log);
    let refused = |log: &str| {
        log.lines().any(|l| {
            l.contains("committing offsets failed") && l.to_lowercase().contains("authoriz")
        })
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while !refused(&node.log()) {
        node.assert_alive();
        assert!(
            Instant::now() < deadline,
            "the node logged no refused commit in 60 s; its log:\n{}",
            node.log()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    let (committed, end) = committed_and_end(&broker, &names, &group);
    assert_eq!(
        (committed, end),
        (1, 1 + REFUSED as i64),
        "the broker took no commit without the ACL"
    );

    // The ACL comes back and nothing more is sent: only a retry moves the offset.
    assert_eq!(group_acl(&broker, "create"), 1, "restored the group ACL");
    wait_committed(&broker, &names, &group, end, &log);
    node.assert_alive();

    let log = node.terminate();
    assert!(
        log.contains(" stopped: height "),
        "the node stopped cleanly:\n{log}"
    );
    assert_eq!(
        committed_and_end(&broker, &names, &group),
        (end, end),
        "committed offset after SIGTERM"
    );
    replay(&broker, &names.chain).assert_exactly_once(&origins(1 + REFUSED));
}

/// Waits (60 s: the node retries a failed commit every second) until the group's
/// committed offset of partition 0 is `target`.
fn wait_committed(
    broker: &SecureBroker,
    names: &TopicNames,
    group: &str,
    target: i64,
    log: &dyn Fn() -> String,
) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (committed, end) = committed_and_end(broker, names, group);
        if committed == target {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the group's committed offset stays at {committed} while partition 0 ends at {end} \
             (expected {target}): a refused commit was not retried; node log:\n{}",
            log()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}
