//! `kafkachain verify [FILE] [--allow-stale]`: replays a chain, one block per line
//! (as `kcat -C -t blockchain` prints it), and reports the height, the tip, the
//! rules and every discarded record with the reason.
//!
//! The record source is pluggable: [`replay_records`] takes any iterator of
//! `(position, bytes)` (file lines here; Kafka offsets for a broker source), and
//! [`VerifyReport::print`] writes the result.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use crate::chain::{ChainState, Discarded, Rules, Tip};
use crate::transport::chain_log::ToEnd;
use std::time::Duration;

/// Arguments of `kafkachain verify`.
#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// Chain file, one block per line; standard input when absent.
    pub file: Option<PathBuf>,
    /// Succeed even with discarded records, as long as every one is a stale block
    /// (a well-formed block that lost a mining race).
    #[arg(long)]
    pub allow_stale: bool,
    /// Replay the chain topic on these brokers instead of a file.
    #[arg(long, conflicts_with = "file")]
    pub brokers: Option<String>,
    /// A librdkafka setting passed through (with --brokers), e.g. `-X security.protocol=SSL`.
    #[arg(short = 'X', value_name = "KEY=VALUE", requires = "brokers")]
    pub settings: Vec<String>,
    /// The chain topic (with --brokers).
    #[arg(long, default_value = "blockchain")]
    pub chain_topic: String,
}

/// The outcome of replaying a chain.
#[derive(Debug, Default)]
pub struct VerifyReport {
    /// Records seen (empty lines excluded).
    pub records: u64,
    pub height: u64,
    pub tip: Option<Tip>,
    pub rules: Option<Rules>,
    /// Position (line number or offset) and reason of every discarded record.
    pub discarded: Vec<(u64, Discarded)>,
    /// Accounts chains: number of accounts and the sum of their balances at the tip.
    pub accounts: Option<(usize, u128)>,
}

impl VerifyReport {
    pub fn stale_count(&self) -> usize {
        self.discarded.iter().filter(|(_, d)| d.is_stale()).count()
    }

    /// Whether the chain verifies: it has a genesis, and nothing was discarded
    /// (or, with `allow_stale`, only stale blocks were).
    pub fn is_ok(&self, allow_stale: bool) -> bool {
        let tolerated = if allow_stale { self.stale_count() } else { 0 };
        self.height > 0 && self.discarded.len() == tolerated
    }

    /// Human-readable report; `unit` names positions ("line", "offset").
    pub fn print(&self, out: &mut dyn Write, unit: &str) -> io::Result<()> {
        for (pos, d) in &self.discarded {
            let tag = if d.is_stale() {
                "discarded (stale)"
            } else {
                "discarded"
            };
            writeln!(out, "{unit} {pos}: {tag}: {d}")?;
        }
        match self.rules {
            Some(r) => writeln!(out, "rules: {r}")?,
            None => writeln!(out, "rules: none (no genesis block found)")?,
        }
        writeln!(out, "height: {}", self.height)?;
        if let Some((count, supply)) = self.accounts {
            writeln!(out, "accounts: {count}, total balance: {supply}")?;
        }
        match &self.tip {
            Some(tip) => writeln!(out, "tip: {} (index {})", tip.hash, tip.index)?,
            None => writeln!(out, "tip: none")?,
        }
        writeln!(
            out,
            "records: {}, appended: {}, discarded: {} ({} stale)",
            self.records,
            self.height,
            self.discarded.len(),
            self.stale_count()
        )
    }
}

/// Replays `(position, record)` pairs in order. Errors come only from the source.
pub fn replay_records<I>(records: I) -> anyhow::Result<VerifyReport>
where
    I: IntoIterator<Item = anyhow::Result<(u64, Vec<u8>)>>,
{
    let mut state = ChainState::new();
    let mut report = VerifyReport::default();
    for record in records {
        let (pos, bytes) = record?;
        report.records += 1;
        if let Err(d) = state.apply(&bytes) {
            report.discarded.push((pos, d));
        }
    }
    report.height = state.height();
    report.tip = state.tip().cloned();
    report.rules = state.rules();
    report.accounts = state.accounts().map(|l| (l.len(), l.supply()));
    Ok(report)
}

/// Non-empty lines of `reader` with their 1-based line numbers.
pub fn line_records<R: BufRead>(reader: R) -> impl Iterator<Item = anyhow::Result<(u64, Vec<u8>)>> {
    reader.split(b'\n').enumerate().filter_map(|(i, line)| {
        let line_no = i as u64 + 1;
        match line {
            Err(e) => Some(Err(
                anyhow::Error::new(e).context(format!("reading line {line_no}"))
            )),
            Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => None,
            Ok(bytes) => Some(Ok((line_no, bytes))),
        }
    })
}

/// Runs the command.
pub fn run(args: &VerifyArgs) -> anyhow::Result<ExitCode> {
    if let Some(brokers) = &args.brokers {
        let kafka = crate::transport::KafkaConfig::new(brokers)
            .with_settings(&args.settings)
            .context("parsing -X settings")?;
        let report =
            replay_records(topic_records(&kafka, &args.chain_topic)?).with_context(|| {
                format!("replaying chain topic `{}` on {brokers}", args.chain_topic)
            })?;
        return finish(&report, "offset", args.allow_stale);
    }
    let report = match &args.file {
        Some(path) => {
            let file = File::open(path)
                .with_context(|| format!("opening chain file {}", path.display()))?;
            replay_records(line_records(BufReader::with_capacity(1 << 16, file)))
                .with_context(|| format!("reading chain file {}", path.display()))?
        }
        None => replay_records(line_records(io::stdin().lock()))
            .context("reading the chain from standard input")?,
    };
    finish(&report, "line", args.allow_stale)
}

fn finish(report: &VerifyReport, unit: &str, allow_stale: bool) -> anyhow::Result<ExitCode> {
    let stdout = io::stdout();
    let mut out = stdout.lock();
    report.print(&mut out, unit).context("writing the report")?;
    out.flush().context("writing the report")?;
    Ok(if report.is_ok(allow_stale) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The chain topic's records from offset 0 to its end offset at the start, streamed
/// (a long chain is never held in memory), positioned by Kafka offset.
fn topic_records(
    kafka: &crate::transport::KafkaConfig,
    topic: &str,
) -> anyhow::Result<impl Iterator<Item = anyhow::Result<(u64, Vec<u8>)>>> {
    let records = ToEnd::open(kafka, topic, 0, Duration::from_secs(30))
        .with_context(|| format!("opening chain topic `{topic}`"))?;
    Ok(records.map(|record| {
        let record = record?;
        Ok((
            u64::try_from(record.offset).unwrap_or_default(),
            record.payload,
        ))
    }))
}
