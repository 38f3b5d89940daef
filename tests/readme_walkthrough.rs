//! The README's "Walk-through by hand", run as written.
//!
//! The fenced block is read from README.md (so the test breaks when the README
//! drifts), its first command (`scripts/setup`, which scripts/test has already run)
//! is left out, and the rest is fed to one `bash` on its standard input, line by line,
//! as a paste into a fresh shell would be (a command that reads standard input would
//! eat the lines after it, as it would in a terminal). It runs in an empty directory
//! with the repository's `scripts/` and `bin/` linked in, so `data/` is the test's own.
//! Two things differ from a user's shell, both through the environment: the broker
//! port is a free one (`KAFKACHAIN_BROKER_PORT`, `KAFKACHAIN_BROKERS`, and the block's
//! literal `127.0.0.1:9092` replaced), and `bin/kafkachain` runs the binary cargo built
//! for this test (`KAFKACHAIN_BIN`) instead of building a release binary.
//! Each command's exit status and its key output are checked.

mod support;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::Engine;

const MARK: &str = "@@walkthrough-step";

/// The commands of the README's walk-through block, one per line.
fn walkthrough() -> Vec<String> {
    let readme =
        std::fs::read_to_string(support::repo_root().join("README.md")).expect("reading README.md");
    let section = readme
        .split("\n## Walk-through by hand")
        .nth(1)
        .expect("README.md has a `## Walk-through by hand` section");
    let block = section
        .split("```sh\n")
        .nth(1)
        .and_then(|rest| rest.split("\n```").next())
        .expect("the walk-through has a ```sh block");
    block
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect()
}

/// The output of one command of the block: its line, exit status and stdout.
#[derive(Debug)]
struct Step {
    line: String,
    status: i32,
    stdout: String,
}

/// Stops the test's broker (and whatever the block left running) however the test ends.
struct Cleanup<'a> {
    dir: &'a Path,
    bash: Option<u32>,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        if let Some(pgid) = self.bash {
            // SAFETY: kill(2) on the process group of the bash this test started.
            unsafe {
                libc::kill(-(pgid as i32), libc::SIGTERM);
            }
        }
        let _ = Command::new(support::repo_root().join("scripts/broker"))
            .arg("stop")
            .arg("--data-dir")
            .arg(self.dir.join("data/broker"))
            .env("KAFKACHAIN_PYTHON", support::python())
            .output();
    }
}

#[test]
fn the_readme_walkthrough_works_as_written() {
    if support::skip_unless(
        Engine::Tansu,
        "the walk-through starts the default local broker, Tansu, itself",
    ) {
        return;
    }
    let lines = walkthrough();
    assert!(
        lines[0].starts_with("scripts/setup"),
        "the block's first command is scripts/setup (what the user runs before pasting the rest): {:?}",
        lines[0]
    );
    let default_addr = "127.0.0.1:9092";
    assert!(
        lines.iter().any(|l| l.contains(default_addr)),
        "the block names the default broker address {default_addr}"
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let addr = format!("127.0.0.1:{port}");
    let steps: Vec<String> = lines[1..]
        .iter()
        .map(|l| l.replace(default_addr, &addr))
        .collect();

    let dir = tempfile::tempdir().expect("tempdir");
    for link in ["scripts", "bin"] {
        std::os::unix::fs::symlink(support::repo_root().join(link), dir.path().join(link))
            .expect("linking the repository into the test dir");
    }
    // After each command, its status on stdout (what a user would look at).
    let mut script = String::new();
    for (i, line) in steps.iter().enumerate() {
        script.push_str(line);
        script.push('\n');
        script.push_str(&format!("echo \"{MARK} {i} $?\"\n"));
    }

    let mut cleanup = Cleanup {
        dir: dir.path(),
        bash: None,
    };
    let mut command = Command::new("bash");
    command
        .current_dir(dir.path())
        .env("KAFKACHAIN_BIN", env!("CARGO_BIN_EXE_kafkachain"))
        .env("KAFKACHAIN_BROKER_PORT", port.to_string())
        .env("KAFKACHAIN_BROKERS", &addr)
        .env("KAFKACHAIN_PYTHON", support::python())
        .env(
            "KAFKACHAIN_BROKER_OWNER_PID",
            std::process::id().to_string(),
        )
        .env("KAFKACHAIN_BROKER_TIMEOUT", "120")
        .env_remove("KAFKACHAIN_ENGINE")
        .env_remove("KAFKACHAIN_BROKER_DATA_DIR")
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    {
        use std::os::unix::process::CommandExt;
        command.process_group(0);
    }
    let mut bash = command.spawn().expect("starting bash");
    cleanup.bash = Some(bash.id());
    let mut stdin = bash.stdin.take().expect("bash stdin");
    // Written from a thread: a pipe holds only so much before bash reads it.
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(script.as_bytes());
    });
    let started = Instant::now();
    let limit = Duration::from_secs(600);
    while bash.try_wait().expect("waiting for bash").is_none() {
        if started.elapsed() > limit {
            drop(cleanup);
            let out = bash.wait_with_output().expect("bash output");
            panic!(
                "the walk-through did not finish within {limit:?}:\n{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = writer.join();
    let out = bash.wait_with_output().expect("bash output");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let logs = ["data/n0.log", "data/n1.log"]
        .iter()
        .map(|l| {
            format!(
                "--- {l}\n{}",
                std::fs::read_to_string(dir.path().join(l)).unwrap_or_default()
            )
        })
        .collect::<Vec<_>>()
        .join("\n");
    let context = format!("stdout:\n{stdout}\nstderr:\n{stderr}\n{logs}");

    // Split stdout at the markers: each command's output and status.
    let mut results: Vec<Step> = Vec::new();
    let mut pending = String::new();
    for line in stdout.lines() {
        if let Some(rest) = line.strip_prefix(MARK) {
            let mut parts = rest.split_whitespace();
            let i: usize = parts.next().and_then(|n| n.parse().ok()).expect("step");
            let status: i32 = parts.next().and_then(|n| n.parse().ok()).expect("status");
            results.push(Step {
                line: steps[i].clone(),
                status,
                stdout: std::mem::take(&mut pending),
            });
        } else {
            pending.push_str(line);
            pending.push('\n');
        }
    }
    assert_eq!(
        results.len(),
        steps.len(),
        "every command of the block ran (one swallowed the lines after it?)\n{context}"
    );
    for step in &results {
        assert_eq!(
            step.status, 0,
            "`{}` exited with {}\n{context}",
            step.line, step.status
        );
    }

    // Key output of each kind of command.
    let find = |prefix: &str| -> Vec<&Step> {
        results
            .iter()
            .filter(|s| s.line.starts_with(prefix))
            .collect()
    };
    let one = |prefix: &str| -> &Step {
        let found = find(prefix);
        assert_eq!(found.len(), 1, "one `{prefix}` in the block\n{context}");
        found[0]
    };
    assert!(
        one("scripts/broker start").stdout.contains(&addr),
        "{context}"
    );
    assert!(
        one("kafkachain topics create")
            .stdout
            .contains("topics ready"),
        "{context}"
    );
    assert_eq!(find("kafkachain node").len(), 2, "two nodes\n{context}");
    let sends = find("kafkachain send");
    assert_eq!(sends.len(), 2, "{context}");
    assert!(
        sends[0].stdout.contains("partition 0 offset"),
        "the single send names its partition and offset\n{context}"
    );
    let submitted: u64 = 1 + sends[1]
        .line
        .split("--count")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse::<u64>().ok())
        .expect("the second send has --count N");
    // Every transaction ended up on the chain before the chain was printed and checked.
    one("kafkachain watch");
    let tail = one("kafkachain chain |").stdout.clone();
    assert_eq!(tail.lines().count(), 2, "{context}");
    for block in tail.lines() {
        let value: serde_json::Value = serde_json::from_str(block)
            .unwrap_or_else(|e| panic!("a block as JSON: {e}: {block}\n{context}"));
        assert!(value.get("index").is_some(), "{block}");
    }
    let verified = find("kafkachain verify");
    assert_eq!(verified.len(), 1, "{context}");
    let file_verify = one("kafkachain chain >");
    let height = |out: &str| -> u64 {
        out.lines()
            .find_map(|l| l.strip_prefix("height: "))
            .and_then(|h| h.trim().parse().ok())
            .unwrap_or_else(|| panic!("a height line in {out}\n{context}"))
    };
    let topic_height = height(&verified[0].stdout);
    assert!(
        topic_height >= submitted.div_ceil(3),
        "{submitted} transactions in blocks of at most 3: height {topic_height}\n{context}"
    );
    assert_eq!(
        height(&file_verify.stdout),
        topic_height,
        "the file and the topic hold the same chain\n{context}"
    );
    let listing = one("kafkachain topics list").stdout.clone();
    assert!(
        listing.contains("transactions") && listing.contains("blockchain"),
        "{context}"
    );
    assert!(
        one("scripts/broker stop").status == 0,
        "the broker stopped\n{context}"
    );
    for log in ["data/n0.log", "data/n1.log"] {
        let text = std::fs::read_to_string(dir.path().join(log)).unwrap_or_default();
        assert!(
            text.contains("node running") && !text.contains("panicked"),
            "{log}:\n{text}"
        );
    }
}

/// `bin/kafkachain` without `KAFKACHAIN_BIN`, called through a symlink (as the
/// walk-through's `export PATH` does from another directory): it finds the checkout,
/// takes `CARGO_TARGET_DIR` and runs a release binary newer than every source without
/// building. (The build itself, minutes of release compilation, is not run here.)
#[test]
fn bin_kafkachain_runs_a_current_release_binary_without_building() {
    let dir = tempfile::tempdir().expect("tempdir");
    let target = dir.path().join("target");
    std::fs::create_dir_all(target.join("release")).expect("target dir");
    // A link made now is newer than every source file.
    std::os::unix::fs::symlink(
        env!("CARGO_BIN_EXE_kafkachain"),
        target.join("release/kafkachain"),
    )
    .expect("linking the binary");
    std::os::unix::fs::symlink(support::repo_root().join("bin"), dir.path().join("bin"))
        .expect("linking bin/");
    let out = Command::new(dir.path().join("bin/kafkachain"))
        .arg("--version")
        .current_dir(dir.path())
        .env("CARGO_TARGET_DIR", &target)
        .env_remove("KAFKACHAIN_BIN")
        // No cargo on PATH: a build attempt would fail loudly.
        .env("PATH", "/usr/bin:/bin")
        .output()
        .expect("running bin/kafkachain");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.starts_with("kafkachain "),
        "{}\nstdout: {stdout}\nstderr: {stderr}",
        out.status
    );
    assert!(!stderr.contains("building"), "it built: {stderr}");
}
