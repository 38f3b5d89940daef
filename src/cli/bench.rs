//! `kafkachain bench`: ledger vs bare broker, side by side, printed as a table or JSON.

use std::process::ExitCode;

use anyhow::Context;
use serde::Serialize;

use super::connect::ConnectArgs;
use super::node::RulesArg;
use crate::bench::baseline::{self, BaselineReport};
use crate::bench::ledger::{self, LedgerParams, LedgerReport};
use crate::bench::local_broker::{Engine, LocalBroker};
use crate::bench::replay::{self, ReplayReport};
use crate::chain;

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Bootstrap brokers; default: a throwaway local broker of `--engine`.
    #[arg(long)]
    pub brokers: Option<String>,
    /// The throwaway broker when no `--brokers` is given: Tansu (SQLite storage), or
    /// Apache Kafka (KRaft, via scripts/broker; install it with scripts/setup --engine kafka).
    #[arg(long, value_enum, default_value = "tansu", conflicts_with = "brokers")]
    pub engine: Engine,
    /// Kafka nodes of the throwaway cluster (with `--engine kafka`): 1, or 3 for
    /// replication factor 3 with min.insync.replicas=2.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=9))]
    pub broker_nodes: u32,
    /// A librdkafka setting passed through, e.g. `-X security.protocol=SASL_SSL`.
    #[arg(short = 'X', value_name = "KEY=VALUE")]
    pub settings: Vec<String>,
    /// Transactions per run.
    #[arg(long, default_value_t = 100_000)]
    pub txs: u64,
    /// Nodes (and transactions partitions).
    #[arg(long, default_value_t = 2)]
    pub nodes: usize,
    #[arg(long, default_value_t = 1000)]
    pub block_size: usize,
    /// Block timeout of the nodes, in milliseconds.
    #[arg(long, default_value_t = 200)]
    pub block_timeout_ms: u64,
    #[arg(long, value_enum, default_value = "v2")]
    pub rules: RulesArg,
    #[arg(long, default_value_t = chain::DEFAULT_V2_DIFFICULTY)]
    pub difficulty: u32,
    /// Offer transactions to the full-speed ledger run at this rate (tx/s; default: as
    /// fast as the producer goes). A sustainable rate measures memory without a backlog.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Also run the ledger at this fraction of the baseline's rate, for latency (0 = skip).
    #[arg(long, default_value_t = 0.5)]
    pub latency_load: f64,
    /// Sample node memory when this many transactions are on the chain.
    #[arg(long)]
    pub rss_checkpoint: Option<u64>,
    /// Skip the baseline and the full-speed ledger run (only latency/replay phases).
    #[arg(long)]
    pub skip_throughput: bool,
    /// Also measure start-up replay of a chain of this many blocks (0 = skip).
    #[arg(long, default_value_t = 0)]
    pub replay_blocks: u64,
    /// Transactions per block in the replay chain.
    #[arg(long, default_value_t = 10)]
    pub replay_block_txs: usize,
    /// Funded sender accounts signing the transfers (`--rules accounts`).
    #[arg(long, default_value_t = 1000)]
    pub senders: usize,
    /// The nodes' publishing turns (`kafkachain node --turn-grace`), in milliseconds;
    /// 0 = every node publishes as soon as it has mined (the old behaviour).
    #[arg(long, default_value_t = 100)]
    pub turn_grace_ms: u64,
    /// Also run every ledger phase with this turn grace, interleaved with the main one,
    /// for a before/after comparison in one run (e.g. `--compare-grace-ms 0`).
    #[arg(long)]
    pub compare_grace_ms: Option<u64>,
    /// Transactions sent and put on the chain before each ledger run's clock starts
    /// (not counted in its rate, latency, blocks or races): the nodes' consumers have
    /// fetched, every node has won a block and knows the others. The baseline sends and
    /// reads as many first, off its clock too. 0 = no warm-up.
    #[arg(long, default_value_t = 2000)]
    pub warmup_txs: u64,
    /// Copy every ledger phase's node logs into this directory (named after the
    /// phase's chain topic and the node), for looking into where the time went. Without
    /// it the logs are deleted after the run, unless the ledger stalls.
    #[arg(long, value_name = "DIR")]
    pub keep_node_logs: Option<std::path::PathBuf>,
    /// The nodes' log filter (`RUST_LOG`), e.g. `warn,kafkachain=debug`; the race
    /// report needs `kafkachain::node=info` at least.
    #[arg(long, value_name = "FILTER", default_value = ledger::DEFAULT_NODE_LOG)]
    pub node_log: String,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
struct Report {
    brokers: String,
    /// The throwaway broker's engine (None with `--brokers`).
    engine: Option<String>,
    nodes: usize,
    block_size: usize,
    rules: String,
    difficulty: u32,
    baseline: Option<BaselineReport>,
    ledger: Option<LedgerReport>,
    ratio: Option<f64>,
    latency_run: Option<LedgerReport>,
    /// The same phases with `--compare-grace-ms`.
    compare: Option<Compare>,
    replay: Option<ReplayReport>,
    /// CPU time the throwaway broker used over the whole run.
    broker_cpu_seconds: Option<f64>,
}

#[derive(Debug, Serialize)]
struct Compare {
    turn_grace_ms: u64,
    ledger: Option<LedgerReport>,
    ratio: Option<f64>,
    latency_run: Option<LedgerReport>,
}

pub fn run(args: &BenchArgs) -> anyhow::Result<ExitCode> {
    if matches!(args.rules, RulesArg::Accounts) {
        // Sender i % n signs transfer i with nonce i / n, and the whole run is sent at
        // once: a node holds at most HOLD_WINDOW - 1 nonces ahead of the chain and
        // rejects the rest, so more transfers per sender would be refused, not measured.
        let per_sender = crate::node::accounts_pool::HOLD_WINDOW - 1;
        let most = per_sender.saturating_mul(args.senders as u64);
        if args.txs > most {
            anyhow::bail!(
                "--txs {} over --senders {} is more than {per_sender} transfers per sender, \
                 beyond the nonces a node holds ahead of the chain (they would be rejected \
                 as too high); use --senders {} or more",
                args.txs,
                args.senders,
                args.txs.div_ceil(per_sender)
            );
        }
    }
    let mut local = None;
    let brokers = match &args.brokers {
        Some(b) => b.clone(),
        None => {
            let nodes = match args.engine {
                Engine::Tansu => 1,
                Engine::Kafka => args.broker_nodes,
            };
            let local = local.insert(
                LocalBroker::start(args.engine, nodes)
                    .with_context(|| format!("starting a throwaway {}", args.engine.name()))?,
            );
            eprintln!(
                "bench: throwaway {} ({nodes} node(s)) at {}",
                args.engine.name(),
                local.bootstrap
            );
            local.bootstrap.clone()
        }
    };
    let connect = ConnectArgs {
        brokers: brokers.clone(),
        settings: args.settings.clone(),
        tx_topic: String::new(),
        chain_topic: String::new(),
        tx_partitions: args.nodes as i32,
    };
    let kafka = connect.kafka()?;
    let exe = std::env::current_exe().context("locating the kafkachain binary")?;
    // Accounts: the baseline carries a signed transfer of the same size.
    let payload = match args.rules {
        RulesArg::Accounts => crate::bench::accounts::transfer(
            &crate::bench::accounts::senders(2),
            0,
            &crate::chain::accounts::ChainId([0; 32]),
        ),
        _ => super::send::transaction_json("alice", "bob", &serde_json::Number::from(3)),
    };
    let rules = match args.rules {
        RulesArg::Seed => "seed",
        RulesArg::V2 => "v2",
        RulesArg::Accounts => "accounts",
    };
    let params = LedgerParams {
        txs: args.txs,
        nodes: args.nodes,
        block_size: args.block_size,
        block_timeout_ms: args.block_timeout_ms,
        rules: rules.into(),
        difficulty: args.difficulty,
        rate: args.rate,
        rss_checkpoint: args.rss_checkpoint,
        accounts_senders: matches!(args.rules, RulesArg::Accounts).then_some(args.senders),
        turn_grace_ms: args.turn_grace_ms,
        warmup_txs: args.warmup_txs,
        node_log_filter: args.node_log.clone(),
        keep_logs: args.keep_node_logs.clone(),
    };
    let compare_params = args.compare_grace_ms.map(|ms| LedgerParams {
        turn_grace_ms: ms,
        ..params.clone()
    });
    let mut report = Report {
        brokers,
        engine: local.as_ref().map(|l| l.engine.name().to_string()),
        nodes: args.nodes,
        block_size: args.block_size,
        rules: rules.into(),
        difficulty: args.difficulty,
        baseline: None,
        ledger: None,
        ratio: None,
        latency_run: None,
        compare: args.compare_grace_ms.map(|ms| Compare {
            turn_grace_ms: ms,
            ledger: None,
            ratio: None,
            latency_run: None,
        }),
        replay: None,
        broker_cpu_seconds: None,
    };
    if !args.skip_throughput {
        eprintln!("bench: baseline ({} messages, bare rdkafka) ...", args.txs);
        let base = baseline::run(
            &kafka,
            args.txs,
            args.warmup_txs,
            args.nodes as i32,
            &payload,
        )?;
        eprintln!(
            "bench: ledger ({} transactions, {} nodes) ...",
            args.txs, args.nodes
        );
        let full = ledger::run(&exe, &kafka, &params, &payload)?;
        report.ratio = Some(full.committed_tx_per_sec / base.msgs_per_sec);
        if let (Some(compare), Some(p)) = (&mut report.compare, &compare_params) {
            eprintln!(
                "bench: ledger again with turn grace {} ms ...",
                p.turn_grace_ms
            );
            let run = ledger::run(&exe, &kafka, p, &payload)?;
            compare.ratio = Some(run.committed_tx_per_sec / base.msgs_per_sec);
            compare.ledger = Some(run);
        }
        if args.latency_load > 0.0 {
            let rate = base.msgs_per_sec * args.latency_load;
            eprintln!("bench: ledger at {rate:.0} tx/s for latency ...");
            let latency_params = LedgerParams {
                rate: Some(rate),
                rss_checkpoint: None,
                ..params.clone()
            };
            report.latency_run = Some(ledger::run(&exe, &kafka, &latency_params, &payload)?);
            if let (Some(compare), Some(p)) = (&mut report.compare, &compare_params) {
                eprintln!(
                    "bench: ledger at {rate:.0} tx/s with turn grace {} ms ...",
                    p.turn_grace_ms
                );
                let p = LedgerParams {
                    rate: Some(rate),
                    rss_checkpoint: None,
                    ..p.clone()
                };
                compare.latency_run = Some(ledger::run(&exe, &kafka, &p, &payload)?);
            }
        }
        report.baseline = Some(base);
        report.ledger = Some(full);
    }
    if args.replay_blocks > 0 {
        eprintln!("bench: replay of {} blocks ...", args.replay_blocks);
        report.replay = Some(replay::run(
            &kafka,
            args.replay_blocks,
            args.replay_block_txs,
        )?);
    }
    report.broker_cpu_seconds = local.as_ref().and_then(LocalBroker::cpu_seconds);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_table(&report);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_table(r: &Report) {
    println!(
        "kafkachain bench: {} nodes, block size {}, rules {} (difficulty {}), broker {}{}",
        r.nodes,
        r.block_size,
        r.rules,
        r.difficulty,
        r.brokers,
        r.engine
            .as_deref()
            .map(|e| format!(" ({e})"))
            .unwrap_or_default()
    );
    if let (Some(base), Some(ledger)) = (&r.baseline, &r.ledger) {
        println!(
            "{:<34} {:>14}",
            "baseline (bare rdkafka) msgs/s",
            format!("{:.0}", base.msgs_per_sec)
        );
        println!(
            "{:<34} {:>14}",
            "ledger committed tx/s",
            format!("{:.0}", ledger.committed_tx_per_sec)
        );
        println!(
            "{:<34} {:>14}",
            "ratio ledger/baseline",
            format!("{:.2}", r.ratio.unwrap_or(0.0))
        );
        print_ledger("full speed", ledger);
    }
    if let Some(run) = &r.latency_run {
        print_ledger(
            &format!("at {:.0} tx/s", run.offered_rate.unwrap_or(0.0)),
            run,
        );
    }
    if let Some(c) = &r.compare {
        if let Some(run) = &c.ledger {
            println!(
                "{:<34} {:>14}",
                format!("ratio with turn grace {} ms", c.turn_grace_ms),
                format!("{:.2}", c.ratio.unwrap_or(0.0))
            );
            print_ledger("full speed", run);
        }
        if let Some(run) = &c.latency_run {
            print_ledger(
                &format!("at {:.0} tx/s", run.offered_rate.unwrap_or(0.0)),
                run,
            );
        }
    }
    if let Some(cpu) = r.broker_cpu_seconds {
        println!("local broker CPU over the whole run: {cpu:.1} s");
    }
    if let Some(replay) = &r.replay {
        println!(
            "replay of {} blocks ({} tx each, {} MB): bare consumer {:.0} records/s, node {:.0} blocks/s ({:.0} tx/s), ratio {:.2}",
            replay.blocks,
            replay.txs_per_block,
            replay.bytes / 1_000_000,
            replay.bare_records_per_sec,
            replay.node_blocks_per_sec,
            replay.node_txs_per_sec,
            replay.ratio
        );
    }
}

fn print_ledger(label: &str, run: &LedgerReport) {
    println!(
        "ledger {label}, turn grace {} ms: {:.0} tx/s, latency p50 {:.0} ms p99 {:.0} ms max {:.0} ms, {} blocks, {} stale ({:.0}% of published), {} invalid",
        run.turn_grace_ms,
        run.committed_tx_per_sec,
        run.latency.p50_ms,
        run.latency.p99_ms,
        run.latency.max_ms,
        run.blocks,
        run.stale_blocks,
        100.0 * run.stale_blocks as f64 / (run.blocks + run.stale_blocks).max(1) as f64,
        run.invalid_records
    );
    let races = &run.races;
    println!(
        "  races: {} of {} heights drew a rival (stale per height {:?}); rivals arrived p50 {:.0} ms p99 {:.0} ms after the winner",
        races.raced_heights,
        races.heights,
        races.stale_per_height,
        races.rival_gap.p50_ms,
        races.rival_gap.p99_ms
    );
    for n in &races.nodes {
        println!(
            "  {}: published {}, lost {} ({:.0} ms from tip to publish thrown away); tip to publish p50 {:.0} ms p99 {:.0} ms",
            n.node, n.published, n.lost, n.lost_ms, n.tip_to_publish.p50_ms, n.tip_to_publish.p99_ms
        );
    }
    if let Some(cpu) = run.bench_cpu_seconds {
        println!(
            "  bench process (load generator and chain follower): {cpu:.1} CPU-s, {:.0}% of a core",
            100.0 * cpu / run.seconds.max(1e-9)
        );
    }
    for m in &run.node_memory {
        let fmt = |mem: Option<crate::bench::Memory>| {
            mem.map_or("-".to_string(), |m| {
                format!(
                    "rss {} MB peak {} MB cpu {:.1} s",
                    m.rss_kb / 1024,
                    m.peak_rss_kb / 1024,
                    m.cpu_seconds
                )
            })
        };
        println!(
            "  {}: at checkpoint {} ; at end {}",
            m.node,
            fmt(m.at_checkpoint),
            fmt(m.at_end)
        );
    }
}
