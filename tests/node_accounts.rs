//! The `accounts` rules end to end against the real broker: real `kafkachain` node
//! processes, signed transfers, every bad input refused with its reason, the
//! double-spend race between two nodes, forged blocks, the commands, and transfers
//! signed by Python (PyNaCl) and published with confluent-kafka.

mod cluster;
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use cluster::{node_flags, Ledger, NodeProc};
use ed25519_dalek::SigningKey;
use kafkachain::chain::accounts::{Address, ChainId, SignedTransfer, Transfer};
use kafkachain::chain::{BlockTemplate, ChainState, Miner, Origin, Transaction};
use kafkachain::node::keyfile;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_kafkachain"))
}

/// A key file made by `kafkachain keys new`; returns (path, key, address).
fn new_key(dir: &Path, name: &str) -> (PathBuf, SigningKey, Address) {
    let path = dir.join(format!("{name}.key"));
    let out = bin()
        .args(["keys", "new", "--out"])
        .arg(&path)
        .output()
        .expect("kafkachain keys new");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let key = keyfile::read(&path).expect("key file");
    let address = keyfile::address(&key);
    assert_eq!(printed, address.to_string());
    (path, key, address)
}

/// Node flags for an accounts chain with these allocations.
fn accounts_flags(
    ledger: &Ledger,
    partition: Option<i32>,
    alloc: &[(Address, u64)],
) -> Vec<String> {
    let path = ledger
        .dir
        .path()
        .join(format!("alloc-{}.json", rand::random::<u32>()));
    let json: serde_json::Map<String, serde_json::Value> = alloc
        .iter()
        .map(|(a, n)| (a.to_string(), (*n).into()))
        .collect();
    std::fs::write(&path, serde_json::to_vec(&json).expect("json")).expect("alloc file");
    let mut flags = node_flags(partition, 5, 8);
    flags.extend([
        "--rules".into(),
        "accounts".into(),
        "--reward".into(),
        "3".into(),
        "--genesis-alloc".into(),
        path.display().to_string(),
    ]);
    flags
}

/// Publishes records to one partition, in order; returns their offsets.
fn publish(ledger: &Ledger, partition: i32, records: &[Vec<u8>]) -> Vec<i64> {
    ledger
        .send_payloads(Some(partition), records)
        .into_iter()
        .map(|o| o.offset)
        .collect()
}

fn chain_id(ledger: &Ledger) -> ChainId {
    let (chain, _) = ledger.replay();
    chain.accounts().expect("an accounts chain").chain_id()
}

fn sign(key: &SigningKey, to: Address, amount: u64, nonce: u64, chain: &ChainId) -> SignedTransfer {
    Transfer {
        from: keyfile::address(key),
        to,
        amount,
        nonce,
    }
    .sign(key, chain)
}

/// Waits until `address` has sent `nonce` transfers on the chain; returns the chain.
/// Fails on any invalid block.
fn wait_for_nonce(ledger: &Ledger, address: &Address, nonce: u64) -> ChainState {
    wait_for(ledger, address, nonce, false)
}

fn wait_for(ledger: &Ledger, address: &Address, nonce: u64, forgeries: bool) -> ChainState {
    let started = Instant::now();
    loop {
        let (chain, view) = ledger.replay();
        assert!(
            forgeries || view.invalid.is_empty(),
            "invalid blocks: {:?}",
            view.invalid
        );
        if chain.accounts().expect("accounts").account(address).nonce >= nonce {
            return chain;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "{address} did not reach nonce {nonce}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Waits until the node has logged a rejection of `offset` on `partition`; returns the line.
fn rejection(node: &NodeProc, partition: i32, offset: i64) -> String {
    let needle = format!("partition={partition} offset={offset} ");
    support::wait_until(
        Duration::from_secs(60),
        &format!("rejection of partition {partition} offset {offset}"),
        || {
            node.assert_alive();
            node.log()
                .lines()
                .find(|l| l.contains("rejected transfer") && l.contains(&needle))
                .map(str::to_string)
        },
    )
}

fn balances(chain: &ChainState, who: &[Address]) -> Vec<(u64, u64)> {
    let ledger = chain.accounts().expect("accounts");
    who.iter()
        .map(|a| {
            let acc = ledger.account(a);
            (acc.balance, acc.nonce)
        })
        .collect()
}

#[test]
fn bad_transfers_are_refused_with_their_reason_and_nothing_is_lost() {
    let ledger = Ledger::new("acc-bad", 1);
    let dir = ledger.dir.path().to_path_buf();
    let (_, alice, a) = new_key(&dir, "alice");
    let (_, mallory, _) = new_key(&dir, "mallory");
    let (_, carol, c) = new_key(&dir, "carol");
    let (_, _, b) = new_key(&dir, "bob");
    let mut node = ledger.node("n0", &accounts_flags(&ledger, Some(0), &[(a, 1000)]));
    let chain = chain_id(&ledger);

    let t0 = sign(&alice, b, 10, 0, &chain);
    let good = t0.to_json();
    let json = |s: &SignedTransfer| String::from_utf8(s.to_json()).expect("utf-8");
    let edit = |from: &str, to: &str| {
        json(&sign(&alice, b, 5, 1, &chain))
            .replacen(from, to, 1)
            .into_bytes()
    };
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            br#"{"from": "alice", "to": "bob", "amount": 3}"#.to_vec(),
            "unsigned transaction",
        ),
        (
            Transfer {
                from: a,
                to: b,
                amount: 5,
                nonce: 1,
            }
            .sign(&mallory, &chain)
            .to_json(),
            "bad signature",
        ),
        (
            sign(&alice, b, 5, 1, &ChainId([7; 32])).to_json(),
            "bad signature",
        ),
        (sign(&alice, b, 5, 500, &chain).to_json(), "too high"),
        (sign(&alice, b, 5000, 1, &chain).to_json(), "overdraft"),
        (sign(&carol, a, 5, 0, &chain).to_json(), "empty account"),
        (edit("\"amount\": 5", "\"amount\": 0"), "amount is zero"),
        (edit("\"amount\": 5", "\"amount\": -5"), "negative"),
        (edit("\"amount\": 5", "\"amount\": 2.5"), "not an integer"),
        (
            edit("\"amount\": 5", "\"amount\": 18446744073709551616"),
            "out of range",
        ),
        (edit("{", "{\"fee\": 1, "), "unknown field `fee`"),
        (edit("\"nonce\": 1, ", ""), "missing field `nonce`"),
        (
            edit(&format!("\"to\": \"{b}\""), "\"to\": \"bob\""),
            "malformed address in `to`",
        ),
        (edit("\"sig\": \"", "\"sig\": \"zz"), "malformed signature"),
        (b"not json".to_vec(), "unparsable JSON"),
    ];
    let mut records = vec![good.clone()];
    records.extend(cases.iter().map(|(r, _)| r.clone()));
    let offsets = publish(&ledger, 0, &records);
    for ((_, why), offset) in cases.iter().zip(&offsets[1..]) {
        let line = rejection(&node, 0, *offset);
        assert!(
            line.contains(why),
            "offset {offset}: expected `{why}` in: {line}"
        );
    }
    // A replay of the same bytes: refused whether the first copy is still pending or
    // already on the chain.
    wait_for_nonce(&ledger, &a, 1);
    let replay = publish(&ledger, 0, &[good])[0];
    assert!(rejection(&node, 0, replay).contains("replay"));
    // Nothing lost: the next good transfer lands after all of that.
    let t1 = sign(&alice, c, 20, 1, &chain);
    publish(&ledger, 0, &[t1.to_json()]);
    let chain_state = wait_for_nonce(&ledger, &a, 2);
    let [alice_acc, bob_acc, carol_acc] = balances(&chain_state, &[a, b, c])[..] else {
        unreachable!()
    };
    assert_eq!(alice_acc, (970, 2));
    assert_eq!(bob_acc, (10, 0));
    assert_eq!(carol_acc, (20, 0));
    let log = node.terminate();
    assert!(
        log.contains(&format!("malformed transactions {}", cases.len() + 1)),
        "every rejection counted: {}",
        log.lines().last().unwrap_or_default()
    );
    let (_, view) = ledger.replay();
    assert_eq!(
        view.user_txs, 2,
        "only the two good transfers are on the chain"
    );
}

#[test]
fn a_double_spend_across_two_nodes_ends_with_exactly_one_transfer_everywhere() {
    let ledger = Ledger::new("acc-race", 2);
    let dir = ledger.dir.path().to_path_buf();
    let (_, alice, a) = new_key(&dir, "alice");
    let (_, _, b) = new_key(&dir, "bob");
    let (_, _, c) = new_key(&dir, "carol");
    let mut n0 = ledger.node("n0", &accounts_flags(&ledger, Some(0), &[(a, 1000)]));
    let mut n1 = ledger.node("n1", &accounts_flags(&ledger, Some(1), &[(a, 1000)]));
    let chain = chain_id(&ledger);
    const ROUNDS: u64 = 4;
    for nonce in 0..ROUNDS {
        // Alice signs two different transfers with the same nonce, one per partition:
        // each node sees only one of them.
        let to_bob = sign(&alice, b, 100, nonce, &chain).to_json();
        let to_carol = sign(&alice, c, 100, nonce, &chain).to_json();
        std::thread::scope(|s| {
            s.spawn(|| publish(&ledger, 0, &[to_bob]));
            s.spawn(|| publish(&ledger, 1, &[to_carol]));
        });
        wait_for_nonce(&ledger, &a, nonce + 1);
    }
    // Both nodes drop their losing transfers and agree on the tip.
    std::thread::sleep(Duration::from_secs(2));
    n0.terminate();
    n1.terminate();
    let (chain_state, view) = ledger.replay();
    assert!(view.invalid.is_empty(), "{:?}", view.invalid);
    assert_eq!(view.user_txs, ROUNDS, "exactly one transfer per nonce");
    assert_eq!(n0.reported_tip(), Some(view.tip.clone()));
    assert_eq!(n1.reported_tip(), Some(view.tip.clone()));
    let got = balances(&chain_state, &[a, b, c]);
    assert_eq!(got[0], (1000 - 100 * ROUNDS, ROUNDS));
    assert_eq!(got[1].0 + got[2].0, 100 * ROUNDS);
    // The losing transfers were dropped and committed past on both partitions.
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let group = format!("{}-group", ledger.topics.transactions);
    let consumer: BaseConsumer = support::config()
        .set("group.id", &group)
        .create()
        .expect("consumer");
    let mut query = rdkafka::TopicPartitionList::new();
    query.add_partition(&ledger.topics.transactions, 0);
    query.add_partition(&ledger.topics.transactions, 1);
    let committed = consumer
        .committed_offsets(query, support::TIMEOUT)
        .expect("committed offsets");
    for p in [0, 1] {
        let offset = committed
            .find_partition(&ledger.topics.transactions, p)
            .expect("partition")
            .offset();
        assert_eq!(
            offset,
            rdkafka::Offset::Offset(ROUNDS as i64),
            "partition {p}: every transfer, won or lost, committed past"
        );
    }
}

/// Mines a block on the tip of `chain` carrying `txs`.
fn mined(chain: &ChainState, txs: &[Transaction]) -> Vec<u8> {
    let tip = chain.tip().expect("tip");
    let t = BlockTemplate::new(tip, chain.rules().expect("rules"), tip.timestamp + 1.0, txs);
    let m = Miner::new(1)
        .mine(&t.work(), &AtomicBool::new(false))
        .expect("mined");
    t.seal(m.nonce)
}

#[test]
fn forged_accounts_blocks_are_discarded_and_the_chain_carries_on() {
    let ledger = Ledger::new("acc-forge", 1);
    let dir = ledger.dir.path().to_path_buf();
    let (_, alice, a) = new_key(&dir, "alice");
    let (_, mallory, m) = new_key(&dir, "mallory");
    let mut node = ledger.node("n0", &accounts_flags(&ledger, Some(0), &[(a, 1000)]));
    let (chain, _) = ledger.replay();
    let id = chain.accounts().expect("accounts").chain_id();
    let origin = |offset: i64| Origin {
        partition: 0,
        offset: 1_000_000 + offset,
    };
    let reward = |n: u64| Transaction::reward(&m.to_string(), &serde_json::Number::from(n));
    let forged = [
        // Mints more than the reward of 3.
        (mined(&chain, &[reward(1_000_000)]), "more than the reward"),
        // Spends from an empty account (mallory's own, correctly signed).
        (
            mined(
                &chain,
                &[sign(&mallory, m, 5, 0, &id).unverified_block_tx(origin(1))],
            ),
            "empty account",
        ),
        // Alice's money, mallory's signature.
        (
            mined(
                &chain,
                &[Transfer {
                    from: a,
                    to: m,
                    amount: 500,
                    nonce: 0,
                }
                .sign(&mallory, &id)
                .unverified_block_tx(origin(2))],
            ),
            "bad signature",
        ),
        // Overdraft with alice's real signature.
        (
            mined(
                &chain,
                &[sign(&alice, m, 1001, 0, &id).unverified_block_tx(origin(3))],
            ),
            "overdraft",
        ),
    ];
    let records: Vec<Vec<u8>> = forged.iter().map(|(b, _)| b.clone()).collect();
    ledger.publish_raw_blocks(&records);
    // The honest node discards each with its reason, then keeps mining.
    publish(&ledger, 0, &[sign(&alice, m, 7, 0, &id).to_json()]);
    let after = wait_for(&ledger, &a, 1, true);
    assert_eq!(
        balances(&after, &[m])[0],
        (7, 0),
        "the forged blocks moved nothing"
    );
    let (_, view) = ledger.replay();
    for (_, why) in &forged {
        assert!(
            view.invalid.iter().any(|r| r.contains(why)),
            "expected a block discarded for `{why}`: {:?}",
            view.invalid
        );
    }
    let log = node.terminate();
    assert!(log.contains("discarded invalid chain record"));
}

#[test]
fn keys_send_balance_and_verify_commands() {
    let ledger = Ledger::new("acc-cli", 1);
    let dir = ledger.dir.path().to_path_buf();
    let (alice_file, _, a) = new_key(&dir, "alice");
    let (_, _, b) = new_key(&dir, "bob");
    // keys: mode 0600, never overwritten, `show` prints the same address.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&alice_file)
        .expect("stat")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let again = bin()
        .args(["keys", "new", "--out"])
        .arg(&alice_file)
        .output()
        .expect("run");
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
    let shown = bin()
        .args(["keys", "show"])
        .arg(&alice_file)
        .output()
        .expect("run");
    assert_eq!(String::from_utf8_lossy(&shown.stdout).trim(), a.to_string());

    let mut node = ledger.node("n0", &accounts_flags(&ledger, Some(0), &[(a, 1000)]));
    let send = |extra: &[&str]| {
        let out = bin()
            .arg("send")
            .args(ledger.connect_args())
            .arg("--key")
            .arg(&alice_file)
            .args(["--to", &b.to_string(), "--partition", "0"])
            .args(extra)
            .output()
            .expect("kafkachain send");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    send(&["--amount", "7"]);
    wait_for_nonce(&ledger, &a, 1);
    send(&["--amount", "1", "--count", "3"]); // nonces 1, 2, 3 looked up and counted on
    wait_for_nonce(&ledger, &a, 4);
    let out = bin()
        .arg("balance")
        .arg(a.to_string())
        .args(ledger.connect_args())
        .arg("--json")
        .output()
        .expect("kafkachain balance");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["balance"], 1000 - 10);
    assert_eq!(v["nonce"], 4);
    // A tutorial-format transaction is refused with a message that says why.
    let tutorial = bin()
        .arg("send")
        .args(ledger.connect_args())
        .args([
            "--from",
            "alice",
            "--to",
            "bob",
            "--amount",
            "3",
            "--partition",
            "0",
        ])
        .output()
        .expect("kafkachain send");
    assert!(tutorial.status.success());
    support::wait_until(
        Duration::from_secs(60),
        "the unsigned transaction refused",
        || {
            node.log()
                .contains("unsigned transaction: this chain follows the accounts rules")
                .then_some(())
        },
    );
    node.terminate();
    let verify = bin()
        .args([
            "verify",
            "--allow-stale",
            "--brokers",
            &ledger.brokers,
            "--chain-topic",
        ])
        .arg(&ledger.topics.chain)
        .output()
        .expect("kafkachain verify");
    let report = String::from_utf8_lossy(&verify.stdout);
    assert!(verify.status.success(), "{report}");
    assert!(report.contains("rules: accounts"), "{report}");
}

#[test]
fn python_signed_transfers_are_accepted_and_forgeries_rejected() {
    let ledger = Ledger::new("acc-py", 1);
    let dir = ledger.dir.path().to_path_buf();
    let (alice_file, _, a) = new_key(&dir, "alice");
    let (_, _, b) = new_key(&dir, "bob");
    let mut node = ledger.node("n0", &accounts_flags(&ledger, Some(0), &[(a, 100)]));
    let python = |variant: &str, amount: u64, nonce: u64| -> Vec<i64> {
        let out = Command::new(support::python())
            .arg(support::repo_root().join("python/accounts_client.py"))
            .args([
                "--brokers",
                &ledger.brokers,
                "--tx-topic",
                &ledger.topics.transactions,
            ])
            .args(["--chain-topic", &ledger.topics.chain, "--key"])
            .arg(&alice_file)
            .args([
                "--to",
                &b.to_string(),
                "--partition",
                "0",
                "--variant",
                variant,
            ])
            .args([
                "--amount",
                &amount.to_string(),
                "--nonce",
                &nonce.to_string(),
            ])
            .output()
            .expect("running python/accounts_client.py");
        assert!(
            out.status.success(),
            "accounts_client.py failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_whitespace().nth(2)?.parse().ok())
            .collect()
    };
    python("good", 10, 0);
    wait_for_nonce(&ledger, &a, 1);
    let forged = python("forged", 10, 1)[0];
    let wrong_chain = python("wrong-chain", 10, 1)[0];
    assert!(rejection(&node, 0, forged).contains("bad signature"));
    assert!(rejection(&node, 0, wrong_chain).contains("bad signature"));
    python("good", 20, 1);
    wait_for_nonce(&ledger, &a, 2);
    let replayed = python("replay", 30, 2);
    assert!(rejection(&node, 0, replayed[1]).contains("replay"));
    let chain = wait_for_nonce(&ledger, &a, 3);
    assert_eq!(balances(&chain, &[a, b]), vec![(40, 3), (60, 0)]);
    node.terminate();
}
