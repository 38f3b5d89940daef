//! A throwaway Tansu broker for `kafkachain bench` when no `--brokers` is given:
//! SQLite storage in a temporary directory, a free port on 127.0.0.1, killed on drop.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::transport::{topics, KafkaConfig};

/// A running Tansu process we own.
pub struct LocalBroker {
    child: Child,
    pub bootstrap: String,
    _dir: tempfile::TempDir,
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

impl LocalBroker {
    pub fn start() -> anyhow::Result<Self> {
        let bin = find_tansu().ok_or_else(|| {
            anyhow::anyhow!("Tansu not found: run scripts/setup (or pass --brokers)")
        })?;
        let dir = tempfile::Builder::new()
            .prefix("kafkachain-bench-")
            .tempdir()?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let bootstrap = format!("127.0.0.1:{port}");
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
            child,
            bootstrap,
            _dir: dir,
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
}

impl LocalBroker {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for LocalBroker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
