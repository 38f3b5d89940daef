//! Test harness shared by the integration tests (`mod support;`).
//!
//! - [`engine`]: which broker the tests run against, `KAFKACHAIN_TEST_ENGINE=tansu|kafka`
//!   (default tansu); [`skip_unless`] lets a test that needs a behaviour only one engine
//!   has skip itself, with a printed reason, on the other.
//! - [`broker`]: bootstrap address of the test broker. `KAFKACHAIN_TEST_BROKERS` if set
//!   (scripts/test sets it), else a private broker of [`engine`] started once per test
//!   process: Tansu on a free port with a temporary data dir, killed by the kernel when
//!   the process ends; Apache Kafka via `scripts/broker`, stopped by its watcher then.
//! - [`Tansu`]: one Tansu process you own (killed on drop), for tests that need their own.
//! - [`ScriptBroker`]: a broker (Tansu, or a 1- or 3-node Kafka) started with
//!   `scripts/broker` in a temporary data dir, with `kill`/`stop_node`/`restart` of one
//!   node: what the broker-fault tests use.
//! - [`unique_topic`], [`create_topic`], [`create_topic_with`]: topics that never collide.
//! - [`config`], [`produce`]: rdkafka clients pointed at [`broker`].
//! - [`wait_until`]: polling with a deadline, so a dead broker fails a test instead of hanging it.
//! - [`python`]: the venv interpreter with confluent-kafka (scripts/setup makes it).
//! - [`secure`]: a secured Apache Kafka (SASL/SCRAM, TLS, ACLs) and its users' settings.
#![allow(dead_code)]

pub mod secure;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{DeliveryResult, Message};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};
use rdkafka::ClientContext;

/// The Tansu release the scripts install and the tests are written against.
pub const TANSU_VERSION: &str = "0.6.0";

/// How long a freshly started Tansu may take to answer a metadata request.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// Per-request timeout of the helpers here; generous for a loaded 2-core CI box.
pub const TIMEOUT: Duration = Duration::from_secs(30);

struct Shared {
    addr: String,
    pid: u32,
}

static SHARED: OnceLock<Result<Shared, String>> = OnceLock::new();

/// Bootstrap address of the test broker (see the module docs). Panics with the reason
/// (and the broker log tail) if no broker can be had.
pub fn broker() -> &'static str {
    if let Ok(addr) = std::env::var("KAFKACHAIN_TEST_BROKERS") {
        if !addr.trim().is_empty() {
            static EXTERNAL: OnceLock<String> = OnceLock::new();
            return EXTERNAL.get_or_init(|| addr);
        }
    }
    if engine() == Engine::Kafka {
        // Never dropped: the broker's watcher stops it when this process exits.
        static KAFKA: OnceLock<Result<ScriptBroker, String>> = OnceLock::new();
        return match KAFKA.get_or_init(|| ScriptBroker::start(Engine::Kafka, 1)) {
            Ok(kafka) => &kafka.addr,
            Err(err) => panic!("{err}"),
        };
    }
    match shared() {
        Ok(shared) => &shared.addr,
        Err(err) => panic!("{err}"),
    }
}

/// Pid of the Tansu this process started for [`broker`], if it started one.
pub fn broker_pid() -> Option<u32> {
    if std::env::var("KAFKACHAIN_TEST_BROKERS").is_ok_and(|a| !a.trim().is_empty()) {
        return None;
    }
    shared().as_ref().ok().map(|s| s.pid)
}

fn shared() -> &'static Result<Shared, String> {
    SHARED.get_or_init(|| {
        // PR_SET_PDEATHSIG fires when the *thread* that forked the child exits, not the
        // process. So the child is forked from a thread that never exits: it parks
        // forever holding the `Tansu`, and the kernel SIGKILLs Tansu when the test
        // process ends, however it ends (statics are never dropped).
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("tansu-keeper".into())
            .spawn(move || match Tansu::start() {
                Ok(tansu) => {
                    let _ = tx.send(Ok(Shared {
                        addr: tansu.addr.clone(),
                        pid: tansu.pid(),
                    }));
                    loop {
                        std::thread::park();
                    }
                }
                Err(err) => {
                    let _ = tx.send(Err(err));
                }
            })
            .map_err(|e| format!("spawning the tansu keeper thread: {e}"))?;
        rx.recv()
            .map_err(|_| "the tansu keeper thread died".to_string())?
    })
}

/// A Tansu broker process owned by the test: SQLite storage in a temporary dir,
/// listening on and advertising 127.0.0.1:<free port>. Killed (and its data removed)
/// on drop; also killed by the kernel if the thread that started it exits.
pub struct Tansu {
    child: Child,
    pub addr: String,
    data_dir: PathBuf,
}

impl Tansu {
    /// Starts Tansu and waits until it answers a metadata request.
    pub fn start() -> Result<Tansu, String> {
        let bin = tansu_bin()?;
        remove_stale_data_dirs();
        let mut last_err = String::new();
        // The port is free when we look; another process may take it before Tansu
        // binds it, so retry with a new one.
        for _ in 0..3 {
            match Tansu::start_on(&bin, free_port()?) {
                Ok(tansu) => return Ok(tansu),
                Err(err) => last_err = err,
            }
        }
        Err(last_err)
    }

    fn start_on(bin: &Path, port: u16) -> Result<Tansu, String> {
        let addr = format!("127.0.0.1:{port}");
        let data_dir =
            std::env::temp_dir().join(format!("kafkachain-tansu-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&data_dir)
            .map_err(|e| format!("creating {}: {e}", data_dir.display()))?;
        let log_path = data_dir.join("tansu.log");
        let log = std::fs::File::create(&log_path)
            .map_err(|e| format!("creating {}: {e}", log_path.display()))?;
        let log2 = log.try_clone().map_err(|e| e.to_string())?;

        let mut cmd = Command::new(bin);
        // Tansu resolves sqlite://NAME against its working directory. Explicit flags
        // override CLUSTER_ID, STORAGE_ENGINE, ... from the environment.
        cmd.current_dir(&data_dir)
            .args(["broker", "--cluster-id", "kafkachain-test"])
            .arg("--listener-url")
            .arg(format!("tcp://{addr}"))
            .arg("--advertised-listener-url")
            .arg(format!("tcp://{addr}"))
            .args(["--storage-engine", "sqlite://tansu.db"])
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2);
        set_parent_death_signal(&mut cmd);
        let child = cmd
            .spawn()
            .map_err(|e| format!("starting {}: {e}", bin.display()))?;
        let mut tansu = Tansu {
            child,
            addr,
            data_dir,
        };

        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            if let Ok(Some(status)) = tansu.child.try_wait() {
                return Err(format!(
                    "tansu on {} exited during startup ({status}); log tail:\n{}",
                    tansu.addr,
                    tansu.log_tail()
                ));
            }
            if answers_metadata(&tansu.addr, Duration::from_secs(2)) {
                return Ok(tansu);
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "tansu on {} did not answer a metadata request within {STARTUP_TIMEOUT:?}; log tail:\n{}",
                    tansu.addr,
                    tansu.log_tail()
                ));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The last lines of the broker's log, for failure messages.
    pub fn log_tail(&self) -> String {
        let mut text = String::new();
        if let Ok(mut f) = std::fs::File::open(self.data_dir.join("tansu.log")) {
            let _ = f.read_to_string(&mut text);
        }
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(25)..].join("\n")
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

/// Asks the child to be SIGKILLed when the thread that spawned it exits (so a test's
/// nodes, servers and drivers die with it, however it ends: no orphans on Ctrl-C).
pub fn set_parent_death_signal(cmd: &mut Command) {
    kafkachain::bench::die_with_parent(cmd, libc::SIGKILL);
}

/// The Tansu binary: `$KAFKACHAIN_TANSU`, the scripts/setup install, or `tansu` on PATH.
pub fn tansu_bin() -> Result<PathBuf, String> {
    let mut candidates = Vec::new();
    if let Some(p) = std::env::var_os("KAFKACHAIN_TANSU") {
        candidates.push(PathBuf::from(p));
    }
    let cache = std::env::var_os("KAFKACHAIN_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/kafkachain")));
    if let Some(cache) = cache {
        candidates.push(cache.join(format!("tansu-{TANSU_VERSION}/bin/tansu")));
    }
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path).map(|d| d.join("tansu")));
    }
    candidates.into_iter().find(|p| p.is_file()).ok_or_else(|| {
        format!(
            "Tansu {TANSU_VERSION} not found (looked at $KAFKACHAIN_TANSU, \
                 ~/.cache/kafkachain/tansu-{TANSU_VERSION}/bin/tansu and PATH): run scripts/setup, \
                 or set KAFKACHAIN_TEST_BROKERS to a running broker"
        )
    })
}

/// Data dirs of earlier test processes that are gone (their broker died with them,
/// but nothing removed the directory).
fn remove_stale_data_dirs() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| {
            n.strip_prefix("kafkachain-tansu-")
                .or_else(|| n.strip_prefix("kafkachain-kafka-"))
        }) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("finding a free port: {e}"))
}

/// True if the broker at `addr` returns metadata listing at least one broker.
pub fn answers_metadata(addr: &str, timeout: Duration) -> bool {
    let consumer: Result<BaseConsumer, _> = ClientConfig::new()
        .set("bootstrap.servers", addr)
        .set("log_level", "0")
        .create();
    consumer
        .ok()
        .and_then(|c| c.fetch_metadata(None, timeout).ok())
        .is_some_and(|md| !md.brokers().is_empty())
}

/// A client config pointed at [`broker`]; add group.id etc. as needed.
pub fn config() -> ClientConfig {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", broker());
    cfg
}

/// `prefix-<pid>-<counter>-<random>`: unique across tests, test processes and reruns
/// against the same broker.
pub fn unique_topic(prefix: &str) -> String {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{prefix}-{}-{}-{:08x}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        rand::random::<u32>()
    )
}

/// Creates `name` with `partitions` partitions (replication 1) and waits until its
/// metadata shows them. Panics on failure, including "already exists".
pub fn create_topic(name: &str, partitions: i32) {
    create_topic_with(name, partitions, &[]);
}

/// [`create_topic`] with topic configs, e.g. `&[("retention.ms", "-1")]`.
pub fn create_topic_with(name: &str, partitions: i32, configs: &[(&str, &str)]) {
    let admin: AdminClient<DefaultClientContext> = config()
        .create()
        .unwrap_or_else(|e| panic!("creating admin client for {}: {e}", broker()));
    let mut topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
    for (k, v) in configs {
        topic = topic.set(k, v);
    }
    let opts = AdminOptions::new()
        .request_timeout(Some(TIMEOUT))
        .operation_timeout(Some(TIMEOUT));
    let results = futures_executor::block_on(admin.create_topics([&topic], &opts))
        .unwrap_or_else(|e| panic!("creating topic {name}: {e}"));
    for result in results {
        if let Err((topic, code)) = result {
            panic!("creating topic {topic}: {code:?} ({code})");
        }
    }
    let probe: BaseConsumer = config()
        .create()
        .unwrap_or_else(|e| panic!("creating consumer: {e}"));
    wait_until(
        TIMEOUT,
        &format!("topic {name} to show {partitions} partitions"),
        || {
            let md = probe
                .fetch_metadata(Some(name), Duration::from_secs(5))
                .ok()?;
            let topic = md.topics().iter().find(|t| t.name() == name)?;
            (topic.error().is_none() && topic.partitions().len() == partitions as usize)
                .then_some(())
        },
    );
}

/// Records each delivery report, so [`produce`] can say exactly what failed.
#[derive(Default)]
pub struct Deliveries(pub Mutex<Vec<Result<(i32, i64), String>>>);

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        let r = match result {
            Ok(m) => Ok((m.partition(), m.offset())),
            Err((e, _)) => Err(e.to_string()),
        };
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push(r);
    }
}

/// Produces one record to `topic`/`partition` with acks=all and returns its
/// (partition, offset). Panics with the broker's error if it is not acknowledged.
pub fn produce(topic: &str, partition: i32, key: &[u8], payload: &[u8]) -> (i32, i64) {
    let producer: BaseProducer<Deliveries> = config()
        .set("acks", "all")
        .set("message.timeout.ms", TIMEOUT.as_millis().to_string())
        .create_with_context(Deliveries::default())
        .unwrap_or_else(|e| panic!("creating producer: {e}"));
    producer
        .send(
            BaseRecord::to(topic)
                .partition(partition)
                .key(key)
                .payload(payload),
        )
        .unwrap_or_else(|(e, _)| panic!("enqueueing a record for {topic}[{partition}]: {e}"));
    producer
        .flush(TIMEOUT)
        .unwrap_or_else(|e| panic!("flushing a record to {topic}[{partition}]: {e}"));
    let reports = std::mem::take(
        &mut *producer
            .context()
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner()),
    );
    match reports.as_slice() {
        [Ok(at)] => *at,
        other => panic!("producing to {topic}[{partition}]: delivery reports {other:?}"),
    }
}

/// Calls `f` every 50 ms until it returns `Some`, and returns that. Panics with
/// "timed out after ... waiting for {what}" once `timeout` has passed.
pub fn wait_until<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Root of the repository (where Cargo.toml is).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The Python interpreter with confluent-kafka: `$KAFKACHAIN_PYTHON`, else
/// `<repo>/.venv/bin/python`. Panics asking to run scripts/setup if it is missing.
pub fn python() -> PathBuf {
    let path = std::env::var_os("KAFKACHAIN_PYTHON")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".venv/bin/python"));
    if !path.exists() {
        panic!(
            "Python interpreter {} not found: run scripts/setup (it creates .venv with confluent-kafka), \
             or set KAFKACHAIN_PYTHON",
            path.display()
        );
    }
    path
}

/// `scripts/broker ARGS --data-dir DIR` as the tests run it: with the test's Python, a
/// generous start-up timeout (a JVM starting on a busy 2-core machine is slow; waiting
/// beats retrying) and none of the caller's broker variables leaking in.
pub fn broker_script(args: &[&str], data_dir: &Path) -> Command {
    let mut command = Command::new(repo_root().join("scripts/broker"));
    command
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .env("KAFKACHAIN_PYTHON", python())
        .env(
            "KAFKACHAIN_BROKER_TIMEOUT",
            std::env::var("KAFKACHAIN_BROKER_TIMEOUT").unwrap_or_else(|_| "300".into()),
        )
        .env_remove("KAFKACHAIN_ENGINE")
        .env_remove("KAFKACHAIN_BROKER_OWNER_PID")
        .stdin(Stdio::null());
    command
}

/// The broker implementation under test: Tansu 0.6.0 (SQLite storage, the default) or
/// Apache Kafka 4.x (KRaft, installed by `scripts/setup --engine kafka`); the same type
/// `kafkachain bench --engine` takes.
pub use kafkachain::bench::local_broker::Engine;

/// The engine named by `KAFKACHAIN_TEST_ENGINE` (`tansu` when unset). Panics on any
/// other value, so a typo never silently tests the wrong broker.
pub fn engine() -> Engine {
    match std::env::var("KAFKACHAIN_TEST_ENGINE")
        .as_deref()
        .map(str::trim)
    {
        Err(_) | Ok("") | Ok("tansu") => Engine::Tansu,
        Ok("kafka") => Engine::Kafka,
        Ok(other) => panic!("KAFKACHAIN_TEST_ENGINE={other}: expected tansu or kafka"),
    }
}

/// True (after printing why) if the test must be skipped because it needs `needed`
/// and the suite runs on another engine. Use as `if skip_unless(Engine::Kafka, "...") { return; }`.
pub fn skip_unless(needed: Engine, reason: &str) -> bool {
    let current = engine();
    if current == needed {
        return false;
    }
    let line = format!(
        "skipped on {}: needs {} ({reason}); run with KAFKACHAIN_TEST_ENGINE={} (scripts/test does)",
        current.name(),
        needed.name(),
        needed.name()
    );
    eprintln!("{line}");
    // scripts/test counts skips for its summary line.
    if let Some(path) = std::env::var_os("KAFKACHAIN_TEST_SKIP_LOG") {
        use std::io::Write;
        let test = std::thread::current().name().unwrap_or("?").to_string();
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = writeln!(f, "{test}: {line}");
        }
    }
    true
}

/// A broker started by `scripts/broker` in a temporary data dir, stopped (and its
/// data removed) on drop. Started with `--owner-pid` of this test process, so a
/// watcher stops it even if the test process is killed.
pub struct ScriptBroker {
    pub engine: Engine,
    pub nodes: u32,
    /// Bootstrap address (every node, comma-separated).
    pub addr: String,
    /// Client port of node 1; node N listens on `base_port + N - 1`.
    pub base_port: u16,
    data_dir: tempfile::TempDir,
}

impl ScriptBroker {
    /// Starts `nodes` nodes of `engine` and waits until every one answers metadata.
    pub fn start(engine: Engine, nodes: u32) -> Result<ScriptBroker, String> {
        let mut last_err = String::new();
        // Ports are free when we look; another process may take one before the
        // broker binds it, so retry with new ones.
        for _ in 0..2 {
            remove_stale_data_dirs();
            // Named after this process: a leftover of a killed test process is
            // recognised and removed by the next one.
            let data_dir = tempfile::Builder::new()
                .prefix(&format!(
                    "kafkachain-{}-{}-",
                    engine.name(),
                    std::process::id()
                ))
                .tempdir()
                .map_err(|e| format!("creating a broker data dir: {e}"))?;
            let base_port = free_port_run(2 * nodes as u16)?;
            let out = Self::script(
                data_dir.path(),
                &[
                    "start",
                    "--engine",
                    engine.name(),
                    "--nodes",
                    &nodes.to_string(),
                    "--port",
                    &base_port.to_string(),
                    "--owner-pid",
                    &std::process::id().to_string(),
                ],
            );
            match out {
                Ok(stdout) => {
                    let addr = stdout.lines().last().unwrap_or_default().trim().to_string();
                    return Ok(ScriptBroker {
                        engine,
                        nodes,
                        addr,
                        base_port,
                        data_dir,
                    });
                }
                Err(err) => {
                    // Stop whatever did start before trying other ports.
                    let _ = Self::script(data_dir.path(), &["stop"]);
                    last_err = err;
                }
            }
        }
        Err(last_err)
    }

    /// Runs `scripts/broker ARGS --data-dir DIR`; its stdout, or an error with stderr.
    fn script(data_dir: &Path, args: &[&str]) -> Result<String, String> {
        let out = broker_script(args, data_dir)
            .output()
            .map_err(|e| format!("running scripts/broker: {e}"))?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.status.success() {
            Ok(stdout)
        } else {
            Err(format!(
                "scripts/broker {} failed ({}):\n{stdout}{}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    fn run(&self, args: &[&str]) {
        if let Err(err) = Self::script(self.data_dir.path(), args) {
            panic!("{err}");
        }
    }

    /// Address of node `n` (1-based).
    pub fn node_addr(&self, n: u32) -> String {
        format!("127.0.0.1:{}", u32::from(self.base_port) + n - 1)
    }

    /// SIGKILL node `n`: no controlled shutdown, no flush.
    pub fn kill(&self, n: u32) {
        self.run(&["kill", &n.to_string()]);
    }

    /// Stops node `n` gracefully (controlled shutdown).
    pub fn stop_node(&self, n: u32) {
        self.run(&["stop", &n.to_string()]);
    }

    /// Starts node `n` again (stopping it first if it runs) and waits until it answers.
    pub fn restart(&self, n: u32) {
        self.run(&["restart", &n.to_string()]);
    }

    /// Where the broker's data and logs are.
    pub fn data_dir(&self) -> &Path {
        self.data_dir.path()
    }

    /// The last lines of every node's log, for failure messages.
    pub fn log_tail(&self) -> String {
        let mut out = String::new();
        let logs: Vec<PathBuf> = match self.engine {
            Engine::Tansu => vec![self.data_dir.path().join("tansu.log")],
            Engine::Kafka => (1..=self.nodes)
                .map(|n| self.data_dir.path().join(format!("node-{n}/server.log")))
                .collect(),
        };
        for log in logs {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            out.push_str(&format!("--- {}\n", log.display()));
            out.push_str(&lines[lines.len().saturating_sub(15)..].join("\n"));
            out.push('\n');
        }
        out
    }
}

impl Drop for ScriptBroker {
    fn drop(&mut self) {
        let _ = Self::script(self.data_dir.path(), &["stop"]);
    }
}

/// A port P with P .. P+n-1 all free a moment ago.
fn free_port_run(n: u16) -> Result<u16, String> {
    for _ in 0..100 {
        let base = free_port()?;
        if base.checked_add(n).is_none() {
            continue;
        }
        let all_free =
            (base..base + n).all(|p| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok());
        if all_free {
            return Ok(base);
        }
    }
    Err(format!("no run of {n} free ports found on 127.0.0.1"))
}
