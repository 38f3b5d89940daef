//! `kafkachain send`: publish tutorial-style transactions.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use crossbeam_channel::unbounded;

use super::connect::ConnectArgs;
use crate::transport::publish::{Profile, Publisher};
use crate::transport::topics;

#[derive(Debug, clap::Args)]
pub struct SendArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,
    #[arg(long)]
    pub from: String,
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
    let payload = transaction_json(&args.from, &args.to, &args.amount);
    let started = Instant::now();
    for i in 0..args.count {
        if let Some(rate) = args.rate.filter(|r| *r > 0.0) {
            let due = Duration::from_secs_f64(i as f64 / rate);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                std::thread::sleep(wait);
            }
        }
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
