//! The harness of the tests that run `priorauth serve` as a separate process: start it on a
//! free loopback port over a database, kill it with SIGKILL or stop it with SIGTERM, create
//! keys and verify the audit log with the binary, call the API without panicking when the
//! server dies mid-call, and check the database's invariants by SQL.

// Shared by several test crates; each uses part of it.
#![allow(dead_code)]

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::Value;
use sqlx::Row;

pub const BIN: &str = env!("CARGO_BIN_EXE_priorauth");

/// `priorauth` with DATABASE_URL set to `url`, run in `dir`.
pub fn priorauth(url: &str, dir: &Path) -> Command {
    let mut command = Command::new(BIN);
    command.env("DATABASE_URL", url).current_dir(dir);
    command
}

/// Creates an API key with `priorauth keys create` and returns its secret.
pub fn create_key(
    url: &str,
    dir: &Path,
    organization: &str,
    role: &str,
    name: &str,
    credentials: &str,
) -> String {
    let output = priorauth(url, dir)
        .args(["keys", "create", "--organization", organization])
        .args(["--role", role, "--name", name, "--credentials", credentials])
        .output()
        .expect("run priorauth keys create");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "keys create failed: {text}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    text.lines()
        .find_map(|line| line.strip_prefix("key: "))
        .unwrap_or_else(|| panic!("no key in: {text}"))
        .to_string()
}

/// `priorauth audit verify`: its exit code and output.
pub fn audit_verify(url: &str, dir: &Path) -> (Option<i32>, String) {
    let output = priorauth(url, dir)
        .args(["audit", "verify"])
        .output()
        .expect("run priorauth audit verify");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.code(), text.trim().to_string())
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free loopback port")
        .port()
}

/// One `priorauth serve` process.
#[derive(Debug)]
pub struct Service {
    child: Option<Child>,
    pub base: String,
    log: PathBuf,
}

impl Service {
    /// Starts the server on a fresh port without waiting for it; its stderr is appended to
    /// `log`.
    pub fn spawn(url: &str, dir: &Path, log: &Path) -> Service {
        Service::spawn_with(url, dir, log, &[])
    }

    /// Starts the server with these environment variables set as well.
    pub fn spawn_with(url: &str, dir: &Path, log: &Path, environment: &[(&str, &str)]) -> Service {
        let port = free_port();
        let stderr = File::options()
            .create(true)
            .append(true)
            .open(log)
            .expect("open the server log");
        let child = priorauth(url, dir)
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            // These tests drive one organization far faster than a clinic would; the shares
            // per key and organization have their own tests (service tests/isolation.rs).
            .env("PRIORAUTH_RATE_PER_KEY", "0")
            .env("PRIORAUTH_RATE_PER_ORGANIZATION", "0")
            .env("PRIORAUTH_IN_FLIGHT_PER_ORGANIZATION", "0")
            .env("PRIORAUTH_FHIR_KB_PER_ORGANIZATION", "0")
            .envs(environment.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("start priorauth serve");
        Service {
            child: Some(child),
            base: format!("http://127.0.0.1:{port}"),
            log: log.to_path_buf(),
        }
    }

    /// Starts the server and waits until it answers `/readyz`.
    pub async fn start(url: &str, dir: &Path, log: &Path) -> Service {
        let mut service = Service::spawn(url, dir, log);
        service.wait_ready().await;
        service
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Waits up to 60 s for `/readyz` to answer 200.
    pub async fn wait_ready(&mut self) {
        let client = reqwest::Client::new();
        let started = Instant::now();
        loop {
            if let Ok(response) = client.get(format!("{}/readyz", self.base)).send().await {
                if response.status().is_success() {
                    return;
                }
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("the server exited at start ({status}): {}", self.log_tail());
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the server was not ready within 60 s: {}",
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// SIGKILL: no shutdown, nothing flushed, connections cut.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then the graceful shutdown (SIGKILL after 20 s).
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(20) {
            if let Ok(Some(status)) = child.try_wait() {
                assert!(status.success(), "the server ended with {status}");
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("the server did not stop within 20 s of SIGTERM");
    }

    /// The last lines of the servers' log, for a failure message.
    pub fn log_tail(&self) -> String {
        log_tail(&self.log)
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// An answer the client received in full: status and body (JSON, or the text as a string).
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
}

/// One call; None when no complete answer arrived (refused, reset, cut mid-body, timed out).
pub async fn try_call(
    client: &reqwest::Client,
    base: &str,
    method: Method,
    path: &str,
    key: &str,
    body: Option<&Value>,
    headers: &[(&str, &str)],
) -> Option<Answer> {
    let mut request = client
        .request(method, format!("{base}{path}"))
        .bearer_auth(key);
    if let Some(body) = body {
        request = request.json(body);
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.ok()?;
    let status = response.status().as_u16();
    let text = response.text().await.ok()?;
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Some(Answer { status, body })
}

/// A client whose calls give up after 30 s (a dead server refuses at once).
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("an HTTP client")
}

/// A small deterministic generator (SplitMix64): the same seed gives the same run.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `low..=high`.
    pub fn between(&mut self, low: u64, high: u64) -> u64 {
        low + self.next_u64() % (high - low + 1)
    }

    /// True with probability 1/n.
    pub fn one_in(&mut self, n: u64) -> bool {
        self.next_u64() % n == 0
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[(self.next_u64() % items.len() as u64) as usize]
    }
}

/// The seed of a run: `PRIORAUTH_TEST_SEED`, else a fixed one.
pub fn seed() -> u64 {
    std::env::var("PRIORAUTH_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_261_124)
}

/// The invariants of the records, checked by SQL over the whole database; each entry of the
/// answer is a violation.
pub async fn invariant_violations(url: &str) -> Vec<String> {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(url)
        .await
        .expect("connect to the database");
    let mut violations = Vec::new();
    let rows = |sql: &'static str, what: &'static str| violating(pool.clone(), sql, what);
    violations.extend(
        rows(
            "SELECT organization || ' ' || idempotency_key FROM requests WHERE idempotency_key IS NOT NULL \
             GROUP BY organization, idempotency_key HAVING COUNT(*) > 1",
            "more than one request for one idempotency key",
        )
        .await,
    );
    violations.extend(
        rows(
            "SELECT number FROM authorizations WHERE used_units > approved_units OR used_units < 0",
            "authorization used beyond its approved units",
        )
        .await,
    );
    violations.extend(
        rows(
            "SELECT a.number FROM authorizations a \
             WHERE a.used_units <> (SELECT COALESCE(SUM(u.units), 0) FROM usage u WHERE u.authorization_number = a.number)",
            "used units differ from the usage recorded",
        )
        .await,
    );
    violations.extend(
        rows(
            "SELECT u.id FROM usage u WHERE NOT EXISTS (SELECT 1 FROM authorizations a WHERE a.number = u.authorization_number)",
            "usage of no authorization",
        )
        .await,
    );
    violations.extend(
        rows(
            "SELECT r.id FROM requests r WHERE r.status = 'denied' AND NOT EXISTS \
             (SELECT 1 FROM determinations d WHERE d.request_id = r.id AND d.decision = 'deny' \
              AND d.reviewer_name <> '' AND d.reviewer_credentials <> '')",
            "a final denial without a credentialed reviewer",
        )
        .await,
    );
    violations.extend(
        rows(
            "SELECT renews FROM authorizations WHERE renews IS NOT NULL GROUP BY renews HAVING COUNT(*) > 1",
            "an authorization renewed more than once",
        )
        .await,
    );
    violations.extend(
        rows(
            "SELECT request_id FROM authorizations GROUP BY request_id HAVING COUNT(*) > 1",
            "more than one authorization for one request",
        )
        .await,
    );
    violations.extend(
        rows(
            "SELECT r.id FROM requests r WHERE (r.status = 'approved') <> EXISTS \
             (SELECT 1 FROM authorizations a WHERE a.request_id = r.id)",
            "approved without an authorization, or an authorization of a request not approved",
        )
        .await,
    );
    violations.extend(
        rows(
            "SELECT r.id FROM requests r WHERE NOT EXISTS \
             (SELECT 1 FROM request_events e WHERE e.request_id = r.id AND e.seq = 1 AND e.kind = 'submitted')",
            "a request without its submission event",
        )
        .await,
    );
    pool.close().await;
    violations
}

/// Each row of `sql` (one text column) as a violation named `what`.
async fn violating(pool: sqlx::AnyPool, sql: &str, what: &str) -> Vec<String> {
    let found = sqlx::query(sql)
        .fetch_all(&pool)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    found
        .iter()
        .map(|row| format!("{what}: {}", row.try_get::<String, _>(0).unwrap()))
        .collect()
}

/// The number of rows of a table (or of a `FROM … WHERE …` tail).
pub async fn count(url: &str, from: &str) -> i64 {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(url)
        .await
        .expect("connect to the database");
    let n = sqlx::query(&format!("SELECT COUNT(*) AS n FROM {from}"))
        .fetch_one(&pool)
        .await
        .expect("count")
        .try_get::<i64, _>("n")
        .expect("a count");
    pool.close().await;
    n
}
