//! Test helpers for `kafkachain serve`: a real `serve` process against a ledger on the
//! test broker, and a minimal HTTP/1.1 client (requests over a real socket, so the
//! tests exercise exactly what a browser or curl gets).
#![allow(dead_code)]

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use ed25519_dalek::SigningKey;
use kafkachain::chain::accounts::{Address, ChainId, Transfer};

use crate::cluster::Ledger;
use crate::support;

/// An HTTP response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One request with `Connection: close`; the body is read to the end (chunked decoded).
pub fn request(addr: &str, method: &str, path: &str, body: Option<&[u8]>) -> Response {
    let mut stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connecting {addr}: {e}"));
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(b) = body {
        req.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            b.len()
        ));
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes()).expect("write request");
    if let Some(b) = body {
        stream.write_all(b).expect("write body");
    }
    // Read until the body is complete: by Content-Length when given (some servers,
    // e.g. chromedriver, keep the connection open), else to the end of the stream.
    let mut raw = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        if let Some(split) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok());
            if length.is_some_and(|n| raw.len() >= split + 4 + n) {
                break;
            }
        }
        let n = stream.read(&mut chunk).expect("read response");
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&chunk[..n]);
    }
    parse_response(&raw)
}

fn parse_response(raw: &[u8]) -> Response {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("end of headers");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.lines();
    let status: u16 = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    if chunked {
        let mut out = Vec::new();
        let mut rest = &body[..];
        while let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") {
            let size = usize::from_str_radix(String::from_utf8_lossy(&rest[..eol]).trim(), 16)
                .unwrap_or(0);
            if size == 0 {
                break;
            }
            out.extend_from_slice(&rest[eol + 2..eol + 2 + size]);
            rest = &rest[eol + 2 + size + 2..];
        }
        body = out;
    }
    Response {
        status,
        headers,
        body,
    }
}

pub fn get(addr: &str, path: &str) -> Response {
    request(addr, "GET", path, None)
}

pub fn post(addr: &str, path: &str, body: &[u8]) -> Response {
    request(addr, "POST", path, Some(body))
}

/// A server-sent event stream: yields (event name, data) pairs.
pub struct Events {
    reader: BufReader<TcpStream>,
}

impl Events {
    pub fn open(addr: &str) -> Events {
        let mut stream = TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .expect("timeout");
        write!(
            stream,
            "GET /events HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n"
        )
        .expect("write");
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        reader.read_line(&mut line).expect("status line");
        assert!(line.contains(" 200 "), "GET /events: {line}");
        // Headers end at the first empty line.
        loop {
            line.clear();
            reader.read_line(&mut line).expect("header");
            if line.trim().is_empty() {
                break;
            }
        }
        Events { reader }
    }

    /// The next event (keep-alive comments skipped). Chunk-size lines are ignored:
    /// every SSE line starts with a field name.
    pub fn next_event(&mut self) -> (String, serde_json::Value) {
        let (mut name, mut data) = (String::from("message"), None);
        loop {
            let mut line = String::new();
            let n = self.reader.read_line(&mut line).expect("reading events");
            assert!(n > 0, "event stream closed");
            let line = line.trim_end();
            if let Some(v) = line.strip_prefix("event:") {
                name = v.trim().to_string();
            } else if let Some(v) = line.strip_prefix("data:") {
                data = Some(serde_json::from_str(v.trim()).expect("event data is JSON"));
            } else if line.is_empty() {
                if let Some(d) = data.take() {
                    return (name, d);
                }
            }
        }
    }
}

/// A running `kafkachain serve` process; killed when dropped.
pub struct ServeProc {
    child: Option<Child>,
    pub addr: String,
    pub log_path: PathBuf,
    pub index: PathBuf,
}

impl ServeProc {
    /// Starts `serve` on a free port with `index` as its index file.
    pub fn start(ledger: &Ledger, index: &Path, extra: &[&str]) -> ServeProc {
        let log_path = ledger
            .dir
            .path()
            .join(format!("serve.{}.log", rand::random::<u32>()));
        let log = File::create(&log_path).expect("creating serve log");
        let mut command = Command::new(env!("CARGO_BIN_EXE_kafkachain"));
        command
            .arg("serve")
            .args(ledger.connect_args())
            .args(["--listen", "127.0.0.1:0", "--index"])
            .arg(index)
            .args(extra)
            .env("RUST_LOG", "warn,kafkachain=info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        support::set_parent_death_signal(&mut command);
        let child = command.spawn().expect("starting kafkachain serve");
        let mut proc = ServeProc {
            child: Some(child),
            addr: String::new(),
            log_path,
            index: index.to_path_buf(),
        };
        proc.addr = support::wait_until(Duration::from_secs(60), "serve to listen", || {
            proc.assert_alive();
            let log = proc.log();
            let at = log.find("serving on http://")?;
            let rest = &log[at + "serving on http://".len()..];
            Some(rest.split('/').next()?.to_string())
        });
        proc
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    pub fn assert_alive(&self) {
        if let Some(child) = &self.child {
            let pid = child.id();
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            assert!(
                !stat.is_empty() && !stat.contains(") Z "),
                "serve exited early; its log:\n{}",
                self.log()
            );
        }
    }

    pub fn get(&self, path: &str) -> Response {
        get(&self.addr, path)
    }

    pub fn post(&self, path: &str, body: &[u8]) -> Response {
        post(&self.addr, path, body)
    }

    /// Waits until the index reports `height` blocks (the API's tip height).
    pub fn wait_for_height(&self, height: u64, timeout: Duration) {
        support::wait_until(timeout, &format!("serve to index height {height}"), || {
            self.assert_alive();
            let r = self.get("/blocks/tip/height");
            (r.status == 200 && r.text().parse::<u64>().ok()? >= height).then_some(())
        });
    }

    /// SIGTERM and wait for a clean exit.
    pub fn terminate(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let status = support::wait_until(Duration::from_secs(30), "serve to stop", || {
                child.try_wait().ok().flatten()
            });
            assert!(
                status.success(),
                "serve exited with {status}: {}",
                self.log()
            );
        }
    }
}

impl Drop for ServeProc {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Runs `kafkachain proof verify FILE` and the Python verifier on one proof file;
/// returns (rust ok, rust output, python ok, python output).
pub fn verify_both(path: &Path) -> (bool, String, bool, String) {
    let rust = Command::new(env!("CARGO_BIN_EXE_kafkachain"))
        .args(["proof", "verify"])
        .arg(path)
        .output()
        .expect("running kafkachain proof verify");
    let python = Command::new(support::python())
        .arg(support::repo_root().join("tests/proof_verify.py"))
        .arg(path)
        .output()
        .expect("running tests/proof_verify.py");
    let text = |o: &std::process::Output| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    };
    (
        rust.status.success(),
        text(&rust),
        python.status.success(),
        text(&python),
    )
}

/// Node flags for an accounts chain funding `alloc`, with a block reward of 3.
pub fn accounts_flags(ledger: &Ledger, alloc: &[(Address, u64)]) -> Vec<String> {
    let path = ledger.dir.path().join("alloc.json");
    let json: serde_json::Map<String, serde_json::Value> = alloc
        .iter()
        .map(|(a, n)| (a.to_string(), (*n).into()))
        .collect();
    std::fs::write(&path, serde_json::to_vec(&json).expect("json")).expect("alloc file");
    let mut flags = crate::cluster::node_flags(Some(0), 5, 6);
    flags.extend([
        "--rules".into(),
        "accounts".into(),
        "--reward".into(),
        "3".into(),
        "--genesis-alloc".into(),
        path.display().to_string(),
    ]);
    flags
}

/// A new ed25519 key and its address.
pub fn key() -> (SigningKey, Address) {
    let key = SigningKey::generate(&mut rand::rngs::OsRng);
    let address = Address::of(&key.verifying_key());
    (key, address)
}

/// A signed transfer in its submitted form.
pub fn transfer(
    key: &SigningKey,
    to: Address,
    amount: u64,
    nonce: u64,
    chain: &ChainId,
) -> Vec<u8> {
    Transfer {
        from: Address::of(&key.verifying_key()),
        to,
        amount,
        nonce,
    }
    .sign(key, chain)
    .to_json()
}
