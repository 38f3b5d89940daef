//! `kafkachain send`: publish tutorial-style transactions, or (with `--key`) signed
//! transfers for an accounts chain.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use crossbeam_channel::unbounded;

use super::balance::replay_chain;
use super::connect::ConnectArgs;
use crate::chain::accounts::{Address, ChainId, Transfer, MAX_AMOUNT};
use crate::node::keyfile;
use crate::transport::publish::{Profile, Publisher};
use crate::transport::topics;

#[derive(Debug, clap::Args)]
pub struct SendArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// Sender of a tutorial-format (unsigned) transaction.
    #[arg(long, required_unless_present = "key", conflicts_with = "key")]
    pub from: Option<String>,
    /// Sign a transfer with this key file (accounts chains): the sender is its address.
    #[arg(long)]
    pub key: Option<std::path::PathBuf>,
    /// The transfer's nonce (with --key); default: the sender's next nonce on the chain.
    /// With --count N, the transfers carry nonces N, N+1, ...
    #[arg(long, requires = "key")]
    pub nonce: Option<u64>,
    #[arg(long)]
    pub to: String,
    #[arg(long)]
    pub amount: serde_json::Number,
    /// Send to this partition (default: the producer spreads them).
    #[arg(long)]
    pub partition: Option<i32>,
    /// How many copies to send (for load).
    #[arg(long, default_value_t = 1)]
    pub count: u64,
    /// At most this many per second (default: as fast as the broker takes them).
    #[arg(long)]
    pub rate: Option<f64>,
}

/// The tutorial's transaction JSON.
pub fn transaction_json(from: &str, to: &str, amount: &serde_json::Number) -> Vec<u8> {
    serde_json::json!({ "from": from, "to": to, "amount": amount })
        .to_string()
        .into_bytes()
}

/// What to publish: the same tutorial transaction each time, or signed transfers
/// with consecutive nonces.
enum Payloads {
    Tutorial(Vec<u8>),
    Signed {
        key: Box<ed25519_dalek::SigningKey>,
        chain_id: ChainId,
        transfer: Transfer,
    },
}

impl Payloads {
    fn new(args: &SendArgs, kafka: &crate::transport::KafkaConfig) -> anyhow::Result<Self> {
        let Some(path) = &args.key else {
            let from = args.from.as_deref().unwrap_or_default();
            return Ok(Payloads::Tutorial(transaction_json(
                from,
                &args.to,
                &args.amount,
            )));
        };
        let key = keyfile::read(path).context("reading the key file")?;
        let to: Address = args.to.parse().context("reading --to")?;
        let amount = args
            .amount
            .as_u64()
            .filter(|a| (1..=MAX_AMOUNT).contains(a))
            .with_context(|| {
                format!(
                    "--amount {} is not an integer 1..={MAX_AMOUNT} (minor units)",
                    args.amount
                )
            })?;
        let chain = replay_chain(kafka, &args.connect.chain_topic)?;
        let ledger = chain.accounts().with_context(|| {
            format!(
                "chain topic `{}` is not an accounts chain, so there is nothing to sign for",
                args.connect.chain_topic
            )
        })?;
        let from = keyfile::address(&key);
        let nonce = args.nonce.unwrap_or(ledger.account(&from).nonce);
        Ok(Payloads::Signed {
            key: Box::new(key),
            chain_id: ledger.chain_id(),
            transfer: Transfer {
                from,
                to,
                amount,
                nonce,
            },
        })
    }

    fn next(&mut self) -> Vec<u8> {
        match self {
            Payloads::Tutorial(payload) => payload.clone(),
            Payloads::Signed {
                key,
                chain_id,
                transfer,
            } => {
                let signed = transfer.sign(key, chain_id);
                transfer.nonce += 1;
                signed.to_json()
            }
        }
    }
}

pub fn run(args: &SendArgs) -> anyhow::Result<ExitCode> {
    let kafka = args.connect.kafka()?;
    topics::ensure_topics(&kafka, &args.connect.topics()).context("creating topics")?;
    let (reports_tx, reports) = unbounded();
    let publisher = Publisher::new(
        &kafka,
        &args.connect.tx_topic,
        Profile::Transactions,
        Some(reports_tx),
    )?;
    let mut payloads = Payloads::new(args, &kafka)?;
    let started = Instant::now();
    for i in 0..args.count {
        if let Some(rate) = args.rate.filter(|r| *r > 0.0) {
            let due = Duration::from_secs_f64(i as f64 / rate);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                std::thread::sleep(wait);
            }
        }
        let payload = payloads.next();
        publisher
            .send(i, args.partition, &payload)
            .context("sending transaction")?;
    }
    publisher
        .flush(Duration::from_secs(60))
        .context("waiting for the broker to acknowledge")?;
    let mut failed = 0u64;
    let mut first_error = None;
    for report in reports.try_iter() {
        if let Err(err) = report.result {
            failed += 1;
            first_error.get_or_insert(err);
        } else if args.count == 1 {
            if let Ok((partition, offset)) = report.result {
                println!(
                    "sent to {} partition {partition} offset {offset}",
                    args.connect.tx_topic
                );
            }
        }
    }
    let secs = started.elapsed().as_secs_f64();
    if args.count > 1 {
        println!(
            "sent {} transactions in {secs:.2} s ({:.0}/s)",
            args.count - failed,
            (args.count - failed) as f64 / secs.max(1e-9)
        );
    }
    if let Some(err) = first_error {
        eprintln!("error: {failed} transaction(s) were not acknowledged: {err}");
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}
