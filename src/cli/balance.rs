//! `kafkachain balance ADDRESS`: an account's balance and next nonce as of the tip of
//! an accounts chain (replays the chain topic).

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;

use super::connect::ConnectArgs;
use crate::chain::accounts::Address;
use crate::chain::ChainState;
use crate::transport::chain_log::ToEnd;
use crate::transport::KafkaConfig;

#[derive(Debug, clap::Args)]
pub struct BalanceArgs {
    /// The account's address (64 lowercase hex digits).
    pub address: String,
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Replays the chain topic to its current end (discarded records are skipped, as
/// every node skips them).
pub fn replay_chain(kafka: &KafkaConfig, topic: &str) -> anyhow::Result<ChainState> {
    let mut chain = ChainState::new();
    let records = ToEnd::open(kafka, topic, 0, Duration::from_secs(30))
        .with_context(|| format!("opening chain topic `{topic}`"))?;
    for record in records {
        let record = record.with_context(|| format!("reading chain topic `{topic}`"))?;
        let _ = chain.apply(&record.payload);
    }
    Ok(chain)
}

pub fn run(args: &BalanceArgs) -> anyhow::Result<ExitCode> {
    let address: Address = args.address.parse().context("reading the address")?;
    let kafka = args.connect.kafka()?;
    let chain = replay_chain(&kafka, &args.connect.chain_topic)?;
    let ledger = chain.accounts().with_context(|| {
        format!(
            "chain topic `{}` is not an accounts chain (rules: {})",
            args.connect.chain_topic,
            chain
                .rules()
                .map_or("no genesis yet".to_string(), |r| r.to_string())
        )
    })?;
    let account = ledger.account(&address);
    let height = chain.height();
    let tip = chain.tip().map(|t| t.hash.to_string()).unwrap_or_default();
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "address": address.to_string(),
                "balance": account.balance,
                "nonce": account.nonce,
                "height": height,
                "tip": tip,
            })
        );
    } else {
        println!("address: {address}");
        println!("balance: {}", account.balance);
        println!("next nonce: {}", account.nonce);
        println!("as of: height {height}, tip {tip}");
    }
    Ok(ExitCode::SUCCESS)
}
