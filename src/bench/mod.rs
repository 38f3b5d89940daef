//! `kafkachain bench`: the ledger measured against the bare broker, side by side, in
//! one invocation on the same broker.
//!
//! - [`baseline`]: bare rdkafka producer + consumer, same producer settings as the node.
//! - [`ledger`]: the same transactions through N real node processes, read back from
//!   the chain topic: committed tx/s, publish-to-chain latency, stale blocks, node RSS.
//! - [`races`]: rival blocks per height, how far behind the winner they arrive, and
//!   each node's time from tip to publish (issue 15).
//! - [`replay`]: a node's start-up replay of a long chain against a bare consumer
//!   reading the same topic.
//! - [`local_broker`]: the throwaway Tansu used when no `--brokers` is given.
//! - [`accounts`]: signed transfers and mined accounts chains for `--rules accounts`
//!   and the accounts replay benchmark.

pub mod accounts;
pub mod baseline;
pub mod ledger;
pub mod local_broker;
pub mod races;
pub mod replay;

use std::time::Duration;

use serde::Serialize;

/// Asks the kernel to send the child `signal` when the thread that spawns it exits
/// (`PR_SET_PDEATHSIG`: the *thread*, not the process, so spawn from one that lives as
/// long as the child should), so children die with their parent however it ends.
pub fn die_with_parent(command: &mut std::process::Command, signal: libc::c_int) {
    use std::os::unix::process::CommandExt;
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: the closure only makes async-signal-safe syscalls (prctl, getppid, _exit).
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, signal, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent may have died before prctl took effect.
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
}

/// Unique topic names so runs never interfere.
pub fn unique(prefix: &str) -> String {
    format!(
        "bench-{prefix}-{}-{:08x}",
        std::process::id(),
        rand::random::<u32>()
    )
}

/// Latency percentiles in milliseconds.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Latency {
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Latency {
    pub fn from_samples(mut samples: Vec<Duration>) -> Latency {
        if samples.is_empty() {
            return Latency::default();
        }
        samples.sort_unstable();
        let at = |q: f64| {
            let i = ((samples.len() as f64 - 1.0) * q).round() as usize;
            samples[i.min(samples.len() - 1)].as_secs_f64() * 1000.0
        };
        Latency {
            p50_ms: at(0.50),
            p99_ms: at(0.99),
            max_ms: at(1.0),
        }
    }
}

/// Peak and current resident memory of a process (kB) and the CPU time it used, from /proc.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Memory {
    pub rss_kb: u64,
    pub peak_rss_kb: u64,
    pub cpu_seconds: f64,
}

impl Memory {
    pub fn of(pid: u32) -> Option<Memory> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        };
        Some(Memory {
            rss_kb: field("VmRSS:")?,
            peak_rss_kb: field("VmHWM:")?,
            cpu_seconds: cpu_seconds(pid).unwrap_or(0.0),
        })
    }
}

/// User + system CPU time of a process (Linux clock ticks are 1/100 s).
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let rest = stat.rsplit_once(") ")?.1;
    let mut fields = rest.split_whitespace().skip(11);
    let utime: f64 = fields.next()?.parse().ok()?;
    let stime: f64 = fields.next()?.parse().ok()?;
    Some((utime + stime) / 100.0)
}
