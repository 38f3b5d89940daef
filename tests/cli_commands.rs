//! The command line against the real broker: topics, send, chain, verify, watch.

mod cluster;
mod support;

use std::process::{Command, Output};

use cluster::Ledger;

fn kafkachain(args: &[String]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kafkachain"))
        .args(args)
        .output()
        .expect("running kafkachain")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn with(ledger: &Ledger, command: &[&str], extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = command.iter().map(|s| s.to_string()).collect();
    args.extend(ledger.connect_args());
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

#[test]
fn topics_send_chain_verify_and_watch() {
    let ledger = Ledger::new("cli", 3);
    let out = kafkachain(&with(&ledger, &["topics", "create"], &[]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = kafkachain(&with(&ledger, &["topics", "list"], &[]));
    let listing = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let tx_rows = listing
        .lines()
        .filter(|l| l.starts_with(&ledger.topics.transactions))
        .count();
    let chain_rows = listing
        .lines()
        .filter(|l| l.starts_with(&ledger.topics.chain))
        .count();
    assert_eq!((tx_rows, chain_rows), (3, 1), "{listing}");

    // Send: one to a chosen partition (reported), then a small load.
    let out = kafkachain(&with(
        &ledger,
        &["send"],
        &[
            "--from",
            "zoë",
            "--to",
            "bob",
            "--amount",
            "2.5",
            "--partition",
            "2",
        ],
    ));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("partition 2 offset 0"),
        "{}",
        text(&out.stdout)
    );
    let out = kafkachain(&with(
        &ledger,
        &["send"],
        &[
            "--from",
            "a",
            "--to",
            "b",
            "--amount",
            "1",
            "--count",
            "20",
            "--rate",
            "1000",
            "--partition",
            "0",
        ],
    ));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("sent 20 transactions"),
        "{}",
        text(&out.stdout)
    );

    // A node mines them; watch exits once all are on the chain.
    let mut node = ledger.node(
        "cli-node",
        &[
            "--difficulty",
            "8",
            "--block-size",
            "7",
            "--block-timeout",
            "100ms",
        ],
    );
    let out = kafkachain(&with(
        &ledger,
        &["watch"],
        &["--until-txs", "21", "--timeout", "120", "--every", "0.5"],
    ));
    assert!(
        out.status.success(),
        "watch: {}\n{}",
        text(&out.stdout),
        node.log()
    );
    assert!(
        text(&out.stdout).contains("txs on chain       21"),
        "{}",
        text(&out.stdout)
    );
    node.terminate();

    // `chain` prints the topic as JSON lines; `verify` accepts them from stdin and
    // straight from the topic, with the same tip.
    let out = kafkachain(&with(&ledger, &["chain"], &[]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let lines = text(&out.stdout);
    assert!(lines.lines().count() >= 4, "{lines}");
    // Published as the Python original would hash it: non-ASCII escaped.
    assert!(lines.contains(r#""sender": "zo\u00eb""#), "{lines}");
    let mut verify = Command::new(env!("CARGO_BIN_EXE_kafkachain"))
        .args(["verify", "--allow-stale"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("verify");
    std::io::Write::write_all(verify.stdin.as_mut().expect("stdin"), lines.as_bytes())
        .expect("write");
    let from_file = verify.wait_with_output().expect("verify output");
    assert!(from_file.status.success(), "{}", text(&from_file.stdout));
    let mut args = vec![
        "verify".to_string(),
        "--allow-stale".into(),
        "--brokers".into(),
        ledger.brokers.clone(),
    ];
    args.extend(["--chain-topic".to_string(), ledger.topics.chain.clone()]);
    let from_topic = kafkachain(&args);
    assert!(from_topic.status.success(), "{}", text(&from_topic.stdout));
    let tip = |out: &Output| {
        text(&out.stdout)
            .lines()
            .find(|l| l.starts_with("tip: "))
            .map(str::to_owned)
    };
    assert_eq!(tip(&from_file), tip(&from_topic));
    assert_eq!(
        tip(&from_topic).map(|t| t.contains(&ledger.replay().1.tip)),
        Some(true)
    );
}

#[test]
fn a_chain_topic_with_two_partitions_is_refused() {
    let tx = support::unique_topic("refuse-tx");
    let chain = support::unique_topic("refuse-chain");
    support::create_topic(&chain, 2);
    let out = kafkachain(&[
        "topics".into(),
        "create".into(),
        "--brokers".into(),
        support::broker().into(),
        "--tx-topic".into(),
        tx,
        "--chain-topic".into(),
        chain.clone(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains(&chain) && err.contains("2 partitions") && err.contains("exactly one"),
        "{err}"
    );
}

#[test]
fn malformed_librdkafka_settings_fail_clearly() {
    let out = kafkachain(&[
        "topics".into(),
        "list".into(),
        "-X".into(),
        "no-equals-sign".into(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("expected key=value"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn an_accounts_bench_with_too_few_senders_is_refused_before_it_starts() {
    // 100 transfers per sender: most would be rejected as nonces too far ahead, and
    // the run would stall instead of measuring (it did, at 73-84k of 102k).
    let args: Vec<String> = [
        "bench",
        "--rules",
        "accounts",
        "--txs",
        "100000",
        "--senders",
        "1000",
        "--brokers",
        "127.0.0.1:1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let out = kafkachain(&args);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("use --senders 1588 or more"), "{err}");
}
