//! `kafkachain chain`: print the chain topic, one record per line, as kcat would.

use std::io::{BufWriter, Write};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;

use super::connect::ConnectArgs;
use crate::node::Shutdown;
use crate::transport::chain_log::{read_to_end, ChainLog};

#[derive(Debug, clap::Args)]
pub struct ChainArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// Keep printing new blocks as they are published (until Ctrl-C).
    #[arg(long)]
    pub follow: bool,
    /// Start at this offset.
    #[arg(long, default_value_t = 0)]
    pub from: i64,
}

/// Writes records as lines; remembers the first write error instead of panicking.
struct Printer<W: Write> {
    out: W,
    error: Option<std::io::Error>,
}

impl<W: Write> Printer<W> {
    fn print(&mut self, payload: &[u8]) {
        if self.error.is_none() {
            if let Err(err) = self
                .out
                .write_all(payload)
                .and_then(|_| self.out.write_all(b"\n"))
            {
                self.error = Some(err);
            }
        }
    }

    fn finish(mut self) -> anyhow::Result<ExitCode> {
        if self.error.is_none() {
            self.error = self.out.flush().err();
        }
        match self.error {
            // A closed pipe (`| head`) is a normal way to stop reading.
            Some(err) if err.kind() == std::io::ErrorKind::BrokenPipe => Ok(ExitCode::SUCCESS),
            Some(err) => Err(err).context("writing to stdout"),
            None => Ok(ExitCode::SUCCESS),
        }
    }
}

pub fn run(args: &ChainArgs) -> anyhow::Result<ExitCode> {
    let kafka = args.connect.kafka()?;
    let topic = &args.connect.chain_topic;
    let stdout = std::io::stdout();
    let mut printer = Printer {
        out: BufWriter::new(stdout.lock()),
        error: None,
    };
    if args.follow {
        let shutdown = Shutdown::on_signals().context("installing the Ctrl-C handler")?;
        let log = ChainLog::open(&kafka, topic, args.from)?;
        while !shutdown.is_triggered() && printer.error.is_none() {
            if let Some(record) = log.poll(Duration::from_millis(200))? {
                printer.print(&record.payload);
                // Following is interactive: show each block as it arrives.
                if let Err(err) = printer.out.flush() {
                    printer.error = Some(err);
                }
            }
        }
    } else {
        read_to_end(
            &kafka,
            topic,
            args.from,
            Duration::from_secs(30),
            |record| printer.print(&record.payload),
        )
        .with_context(|| format!("reading chain topic `{topic}`"))?;
    }
    printer.finish()
}
