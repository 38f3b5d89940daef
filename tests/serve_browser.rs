//! The explorer page in a real headless browser (Debian's Chromium driven through
//! chromedriver's WebDriver protocol), against a real node and `serve` process.
//! `scripts/browser-deps` installs both; scripts/test runs it first.

mod cluster;
mod serve;
mod support;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use cluster::{node_flags, Ledger};
use serde_json::{json, Value};
use serve::ServeProc;

/// A chromedriver process and one browser session; both ended on drop.
struct Browser {
    driver: Child,
    addr: String,
    session: String,
}

impl Browser {
    fn start() -> Browser {
        let have = |bin: &str| {
            Command::new("sh")
                .args(["-c", &format!("command -v {bin}")])
                .output()
                .is_ok_and(|o| o.status.success())
        };
        assert!(
            have("chromedriver") && have("chromium"),
            "chromium and chromedriver are needed: run scripts/browser-deps"
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("free port");
        let mut command = Command::new("chromedriver");
        command
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        support::set_parent_death_signal(&mut command);
        let driver = command.spawn().expect("starting chromedriver");
        let addr = format!("127.0.0.1:{port}");
        support::wait_until(Duration::from_secs(30), "chromedriver to start", || {
            std::net::TcpStream::connect(&addr).ok()?;
            (serve::get(&addr, "/status").json()["value"]["ready"] == json!(true)).then_some(())
        });
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless", "--no-sandbox", "--disable-gpu",
                         "--disable-background-networking", "--no-first-run",
                         "--disable-dev-shm-usage"]
            }
        }}});
        let r = serve::post(&addr, "/session", caps.to_string().as_bytes());
        let v = r.json();
        let session = v["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {v}"))
            .to_string();
        Browser {
            driver,
            addr,
            session,
        }
    }

    fn command(&self, path: &str, body: Value) -> Value {
        let r = serve::post(
            &self.addr,
            &format!("/session/{}{path}", self.session),
            body.to_string().as_bytes(),
        );
        let v = r.json();
        assert_eq!(r.status, 200, "WebDriver {path}: {v}");
        v["value"].clone()
    }

    fn goto(&self, url: &str) {
        self.command("/url", json!({ "url": url }));
    }

    /// Runs `script` in the page and returns its result.
    fn eval(&self, script: &str) -> Value {
        self.command("/execute/sync", json!({ "script": script, "args": [] }))
    }

    fn text_of(&self, css: &str) -> String {
        let script = format!(
            "const e = document.querySelector({}); return e ? e.textContent : null;",
            json!(css)
        );
        self.eval(&script).as_str().unwrap_or_default().to_string()
    }

    fn wait_text(&self, css: &str, what: &str, ok: impl Fn(&str) -> bool) -> String {
        support::wait_until(Duration::from_secs(60), what, || {
            let t = self.text_of(css);
            ok(&t).then_some(t)
        })
    }

    /// Types into the search box and submits it as a user would.
    fn search(&self, query: &str) {
        let element = |css: &str| -> String {
            let v = self.command("/element", json!({ "using": "css selector", "value": css }));
            v.as_object()
                .and_then(|o| o.values().next())
                .and_then(Value::as_str)
                .expect("element id")
                .to_string()
        };
        let input = element("#q");
        self.command(&format!("/element/{input}/clear"), json!({}));
        self.command(&format!("/element/{input}/value"), json!({ "text": query }));
        let button = element("#search button");
        self.command(&format!("/element/{button}/click"), json!({}));
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = serve::request(
            &self.addr,
            "DELETE",
            &format!("/session/{}", self.session),
            None,
        );
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

#[test]
fn explorer_shows_the_tip_follows_new_blocks_and_finds_a_transaction() {
    let ledger = Ledger::new("explorer", 1);
    let _node = ledger.node("n1", &node_flags(Some(0), 2, 6));
    let s = ServeProc::start(&ledger, &ledger.dir.path().join("index.sqlite"), &[]);
    let first = s.post(
        "/transactions/new",
        br#"{"from": "alice", "to": "bob", "amount": 4}"#,
    );
    assert_eq!(first.status, 201, "{}", first.text());
    let txid = first.json()["txid"].as_str().unwrap().to_string();
    support::wait_until(Duration::from_secs(90), "the first transaction", || {
        (s.get(&format!("/tx/{txid}")).json()["status"]["confirmed"] == json!(true)).then_some(())
    });

    let browser = Browser::start();
    browser.goto(&format!("http://{}/", s.addr));
    // The page shows the tip height the API reports.
    let api_tip = s.get("/blocks/tip/height").text();
    browser.wait_text("#tip-height", "the page to show the API's tip", |t| {
        t == api_tip
    });
    browser.wait_text("#live", "the event stream to connect", |t| t == "live");

    // A new block lands: the page updates without a reload.
    let marker: Value = browser.eval("window.__marker = 42; return window.__marker;");
    assert_eq!(marker, json!(42));
    let second = s.post(
        "/transactions/new",
        br#"{"from": "carol", "to": "dave", "amount": 1}"#,
    );
    assert_eq!(second.status, 201);
    let old: u64 = api_tip.parse().unwrap();
    let shown = browser.wait_text("#tip-height", "the page to show a new block", |t| {
        t.parse::<u64>().is_ok_and(|h| h > old)
    });
    assert_eq!(
        browser.eval("return window.__marker;"),
        json!(42),
        "the page reloaded"
    );
    let row = browser.text_of(&format!("#blocks tr[data-height=\"{shown}\"]"));
    assert!(
        row.starts_with(&shown),
        "recent blocks table lacks {shown}: {row:?}"
    );

    // Search by transaction id: the transaction page, with its proof checked in the browser.
    browser.search(&txid);
    browser.wait_text("#txid", "the transaction page", |t| t == txid);
    let proof = browser.wait_text("#proof", "the proof check", |t| !t.contains("checking"));
    assert!(proof.starts_with("verified in this browser"), "{proof}");
    assert!(browser
        .text_of("#tx-status")
        .starts_with("confirmed in block"));

    // Search by height and by address.
    let hash = s.get("/block-height/1").text();
    browser.search("1");
    browser.wait_text("#block-hash", "the block page", |t| t == hash);
    browser.search("alice");
    let balance = browser.wait_text("#balance", "the account page", |t| !t.is_empty());
    assert_eq!(balance, "-4");
    browser.search("no-such-thing");
    browser.wait_text("#not-found", "a not-found message", |t| {
        t.contains("no-such-thing")
    });
}

#[test]
fn the_account_page_of_an_accounts_chain_shows_balance_and_next_nonce() {
    let ledger = Ledger::new("explorer-accounts", 1);
    let (alice_key, alice) = serve::key();
    let (_, bob) = serve::key();
    let _node = ledger.node("a1", &serve::accounts_flags(&ledger, &[(alice, 1000)]));
    let s = ServeProc::start(&ledger, &ledger.dir.path().join("index.sqlite"), &[]);
    s.wait_for_height(1, Duration::from_secs(60));
    let (chain, _) = ledger.replay();
    let chain_id = chain.accounts().expect("an accounts chain").chain_id();
    let r = s.post(
        "/transactions/new",
        &serve::transfer(&alice_key, bob, 100, 0, &chain_id),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let txid = r.json()["txid"].as_str().unwrap().to_string();
    support::wait_until(Duration::from_secs(90), "the transfer", || {
        (s.get(&format!("/tx/{txid}")).json()["status"]["confirmed"] == json!(true)).then_some(())
    });

    let browser = Browser::start();
    browser.goto(&format!("http://{}/", s.addr));
    browser.wait_text("#live", "the event stream to connect", |t| t == "live");
    // A 64-hex search that is no block and no transaction is the account.
    browser.search(&alice.to_string());
    let balance = browser.wait_text("#balance", "the account page", |t| !t.is_empty());
    assert!(balance.starts_with("900"), "{balance}");
    assert_eq!(browser.text_of("#next-nonce"), "1");
}
