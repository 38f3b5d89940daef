//! A secured Apache Kafka for tests (`scripts/broker start --engine kafka --secure`:
//! SASL/SCRAM over TLS, the StandardAuthorizer and ACLs by principal; users and their
//! librdkafka settings in `D/secure/USER.conf`), shared by `tests/broker_security.rs`
//! and `tests/commit_retry.rs`.

use std::path::{Path, PathBuf};
use std::process::Output;

use kafkachain::transport::{KafkaConfig, TopicNames};

/// A secured broker started by [`SecureBroker::start`].
pub struct SecureBroker {
    pub addr: String,
    pub dir: PathBuf,
}

/// `scripts/broker start --engine kafka --secure` on free ports in a temporary data
/// dir (named like the harness's, so a leftover of a killed process is removed by the
/// next one); `--owner-pid` stops it when this process exits, however it exits.
pub fn start_secure_broker() -> Result<SecureBroker, String> {
    remove_stale_secure_dirs();
    let mut last_err = String::new();
    for _ in 0..2 {
        let dir = std::env::temp_dir().join(format!(
            "kafkachain-kafka-{}-secure-{:08x}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        let port = free_port_pair()?;
        let port = port.to_string();
        let pid = std::process::id().to_string();
        let out = super::broker_script(
            &[
                "start",
                "--engine",
                "kafka",
                "--secure",
                "--port",
                &port,
                "--owner-pid",
                &pid,
            ],
            &dir,
        )
        .output()
        .map_err(|e| format!("running scripts/broker: {e}"))?;
        let stdout = text(&out.stdout);
        if out.status.success() {
            let addr = stdout.lines().last().unwrap_or_default().trim().to_string();
            return Ok(SecureBroker { addr, dir });
        }
        last_err = format!(
            "scripts/broker start --secure failed ({}):\n{stdout}{}",
            out.status,
            text(&out.stderr)
        );
        let _ = super::broker_script(&["stop"], &dir).output();
    }
    Err(last_err)
}

/// Data dirs of secured brokers whose test process is gone (their watcher stopped the
/// broker; the directory stays because the broker outlives every destructor here).
fn remove_stale_secure_dirs() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name
            .to_str()
            .and_then(|n| n.strip_prefix("kafkachain-kafka-"))
        else {
            continue;
        };
        let mut parts = rest.split('-');
        let (Some(pid), Some("secure")) = (parts.next(), parts.next()) else {
            continue;
        };
        if pid.parse::<u32>().is_ok() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// A port P with P and P+1 free a moment ago (client and controller listener).
fn free_port_pair() -> Result<u16, String> {
    for _ in 0..100 {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .map_err(|e| format!("finding a free port: {e}"))?;
        if port < u16::MAX && std::net::TcpListener::bind(("127.0.0.1", port + 1)).is_ok() {
            return Ok(port);
        }
    }
    Err("no two adjacent free ports on 127.0.0.1".into())
}

impl SecureBroker {
    /// The connection flags of a `kafkachain` command against `names` on this broker
    /// (credentials come separately, as `-X` settings of a user).
    pub fn connect(&self, names: &TopicNames) -> Vec<String> {
        vec![
            "--brokers".into(),
            self.addr.clone(),
            "--tx-topic".into(),
            names.transactions.clone(),
            "--chain-topic".into(),
            names.chain.clone(),
            "--tx-partitions".into(),
            names.tx_partitions.to_string(),
        ]
    }

    /// `user`'s settings file as the script wrote it (`D/secure/USER.conf`).
    pub fn conf(&self, user: &str) -> PathBuf {
        self.dir.join(format!("secure/{user}.conf"))
    }

    /// The librdkafka settings of `user` as the script wrote them (key=value lines).
    pub fn settings(&self, user: &str) -> Vec<String> {
        let path = self.conf(user);
        let conf = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        conf.lines()
            .filter(|l| l.contains('='))
            .map(str::to_string)
            .collect()
    }

    /// `-X key=value` arguments for `user`.
    pub fn x_args(&self, user: &str) -> Vec<String> {
        self.settings(user)
            .into_iter()
            .flat_map(|kv| ["-X".to_string(), kv])
            .collect()
    }

    pub fn kafka(&self, user: &str) -> KafkaConfig {
        KafkaConfig::new(&self.addr)
            .with_settings(self.settings(user))
            .expect("settings")
    }

    pub fn ca(&self) -> PathBuf {
        self.dir.join("secure/ca.crt")
    }
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

pub fn report(out: &Output) -> String {
    format!(
        "{}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    )
}
