//! `kafkachain topics create|list`.

use std::process::ExitCode;

use anyhow::Context;

use super::connect::ConnectArgs;
use crate::transport::topics;

#[derive(Debug, clap::Args)]
pub struct TopicsArgs {
    #[command(subcommand)]
    pub action: TopicsAction,
}

#[derive(Debug, clap::Subcommand)]
pub enum TopicsAction {
    /// Create the transactions and chain topics if missing.
    Create(ConnectArgs),
    /// Show both topics with partitions and offsets.
    List(ConnectArgs),
}

pub fn run(args: &TopicsArgs) -> anyhow::Result<ExitCode> {
    match &args.action {
        TopicsAction::Create(connect) => {
            let kafka = connect.kafka()?;
            topics::ensure_topics(&kafka, &connect.topics())
                .with_context(|| format!("creating topics on {}", connect.brokers))?;
            println!(
                "topics ready: {} ({} partitions), {} (1 partition, kept forever)",
                connect.tx_topic,
                topics::describe_topic(&kafka, &connect.tx_topic)?
                    .partitions
                    .len(),
                connect.chain_topic
            );
        }
        TopicsAction::List(connect) => {
            let kafka = connect.kafka()?;
            println!(
                "{:<24} {:>9} {:>12} {:>12}",
                "topic", "partition", "low", "end"
            );
            for name in [&connect.tx_topic, &connect.chain_topic] {
                match topics::describe_topic(&kafka, name) {
                    Ok(info) => {
                        for p in &info.partitions {
                            println!(
                                "{:<24} {:>9} {:>12} {:>12}",
                                name, p.partition, p.low, p.high
                            );
                        }
                    }
                    Err(crate::transport::TransportError::MissingTopic(_)) => {
                        println!("{name:<24} (missing: run `kafkachain topics create`)")
                    }
                    Err(err) => return Err(err).context(format!("describing `{name}`")),
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
