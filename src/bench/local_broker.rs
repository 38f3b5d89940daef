//! A throwaway broker for `kafkachain bench` when no `--brokers` is given, on free
//! ports of 127.0.0.1 with its data in a temporary directory, gone on drop:
//! - Tansu (SQLite storage), a child process killed on drop;
//! - Apache Kafka (KRaft, 1 or 3 nodes), started and stopped by the repository's
//!   `scripts/broker` (which owns the Kafka configuration), with this process as
//!   owner so the broker stops even if the bench is killed.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::transport::{topics, KafkaConfig};

/// Which broker to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Engine {
    Tansu,
    Kafka,
}

impl Engine {
    pub fn name(self) -> &'static str {
        match self {
            Engine::Tansu => "tansu",
            Engine::Kafka => "kafka",
        }
    }
}

enum Process {
    Tansu(Child),
    /// `scripts/broker` and the data dir it manages.
    Script {
        script: PathBuf,
    },
}

/// A running broker we own.
pub struct LocalBroker {
    process: Process,
    pub engine: Engine,
    pub bootstrap: String,
    dir: tempfile::TempDir,
}

/// Where Tansu is: `$KAFKACHAIN_TANSU`, the cache `scripts/setup` installs into, or PATH.
pub fn find_tansu() -> Option<PathBuf> {
    let mut candidates = Vec::new();
    if let Ok(path) = std::env::var("KAFKACHAIN_TANSU") {
        candidates.push(PathBuf::from(path));
    }
    if let Ok(home) = std::env::var("HOME") {
        candidates.push(PathBuf::from(home).join(".cache/kafkachain/tansu-0.6.0/bin/tansu"));
    }
    if let Ok(path) = std::env::var("PATH") {
        candidates.extend(std::env::split_paths(&path).map(|d| d.join("tansu")));
    }
    candidates.into_iter().find(|p| p.is_file())
}

/// `scripts/broker` of the checkout this binary was built from (or `$KAFKACHAIN_SCRIPTS/broker`).
fn find_broker_script() -> Option<PathBuf> {
    let dir = std::env::var_os("KAFKACHAIN_SCRIPTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts"));
    Some(dir.join("broker")).filter(|p| p.is_file())
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

impl LocalBroker {
    /// Starts `nodes` nodes of `engine` (Tansu: always 1) and waits until they answer.
    pub fn start(engine: Engine, nodes: u32) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("kafkachain-bench-{}-", engine.name()))
            .tempdir()?;
        match engine {
            Engine::Tansu => Self::start_tansu(dir),
            Engine::Kafka => Self::start_script(engine, nodes, dir),
        }
    }

    fn start_tansu(dir: tempfile::TempDir) -> anyhow::Result<Self> {
        let bin = find_tansu().ok_or_else(|| {
            anyhow::anyhow!("Tansu not found: run scripts/setup (or pass --brokers)")
        })?;
        let bootstrap = format!("127.0.0.1:{}", free_port()?);
        let log = std::fs::File::create(dir.path().join("tansu.log"))?;
        let child = Command::new(&bin)
            .current_dir(dir.path())
            .args(["broker", "--cluster-id", "kafkachain-bench"])
            .arg("--listener-url")
            .arg(format!("tcp://{bootstrap}"))
            .arg("--advertised-listener-url")
            .arg(format!("tcp://{bootstrap}"))
            .args(["--storage-engine", "sqlite://tansu.db"])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        let broker = LocalBroker {
            process: Process::Tansu(child),
            engine: Engine::Tansu,
            bootstrap,
            dir,
        };
        let config = KafkaConfig::new(&broker.bootstrap);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let probe = topics::metadata_client(&config)?;
            match rdkafka::consumer::Consumer::fetch_metadata(&probe, None, Duration::from_secs(2))
            {
                Ok(_) => return Ok(broker),
                Err(err) if Instant::now() > deadline => {
                    anyhow::bail!("local Tansu at {} did not answer: {err}", broker.bootstrap)
                }
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    }

    fn start_script(engine: Engine, nodes: u32, dir: tempfile::TempDir) -> anyhow::Result<Self> {
        let script = find_broker_script().ok_or_else(|| {
            anyhow::anyhow!(
                "scripts/broker not found (set KAFKACHAIN_SCRIPTS to the repository's scripts/ \
                 directory), or start a broker yourself and pass --brokers"
            )
        })?;
        // The script gives node N ports base+N-1 (clients) and base+nodes+N-1 (controllers).
        let base = (0..100)
            .filter_map(|_| free_port().ok())
            .find(|&p| {
                (p..p.saturating_add(2 * nodes as u16))
                    .all(|q| std::net::TcpListener::bind(("127.0.0.1", q)).is_ok())
            })
            .ok_or_else(|| anyhow::anyhow!("no run of free ports on 127.0.0.1"))?;
        let out = Command::new(&script)
            .args(["start", "--engine", engine.name()])
            .args(["--nodes", &nodes.to_string()])
            .args(["--port", &base.to_string()])
            .arg("--data-dir")
            .arg(dir.path())
            .args(["--owner-pid", &std::process::id().to_string()])
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .output()?;
        let bootstrap = String::from_utf8_lossy(&out.stdout)
            .lines()
            .last()
            .unwrap_or_default()
            .trim()
            .to_string();
        let broker = LocalBroker {
            process: Process::Script { script },
            engine,
            bootstrap,
            dir,
        };
        if !out.status.success() {
            anyhow::bail!(
                "scripts/broker start --engine {} failed ({})",
                engine.name(),
                out.status
            );
        }
        Ok(broker)
    }

    /// Pids of the broker processes (for CPU accounting).
    pub fn pids(&self) -> Vec<u32> {
        match &self.process {
            Process::Tansu(child) => vec![child.id()],
            Process::Script { .. } => (1..=9)
                .filter_map(|n| {
                    std::fs::read_to_string(self.dir.path().join(format!("node-{n}/kafka.pid")))
                        .ok()?
                        .trim()
                        .parse()
                        .ok()
                })
                .collect(),
        }
    }

    /// CPU seconds the broker used so far (all nodes).
    pub fn cpu_seconds(&self) -> Option<f64> {
        let pids = self.pids();
        (!pids.is_empty()).then(|| {
            pids.iter()
                .filter_map(|&p| crate::bench::cpu_seconds(p))
                .sum()
        })
    }
}

impl Drop for LocalBroker {
    fn drop(&mut self) {
        match &mut self.process {
            Process::Tansu(child) => {
                let _ = child.kill();
                let _ = child.wait();
            }
            Process::Script { script } => {
                let _ = Command::new(&*script)
                    .arg("stop")
                    .arg("--data-dir")
                    .arg(self.dir.path())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
            }
        }
    }
}
