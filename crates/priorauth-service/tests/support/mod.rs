//! The harness of the HTTP tests: a fresh database per test on each back end, a real server
//! on a loopback port, and a small client that answers status, headers and JSON.

// Shared by several test crates; each uses part of it.
#![allow(dead_code)]

pub mod contract;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use priorauth_core::Engine;
use priorauth_service::admission::{Admission, Limits};
pub use priorauth_service::connections::ConnectionLimits;
use priorauth_service::keys::{self, Role};
use priorauth_service::store::random_id;
use priorauth_service::{AppState, Store};
use reqwest::Method;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use sqlx::Connection;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Runs `test` once against a fresh SQLite file and, when `DATABASE_URL` is set, once more
/// against a fresh PostgreSQL database on that server. Each run gets its own database, which
/// is removed afterwards even when the test fails.
pub async fn for_each_backend<F, Fut>(test: F)
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    // SQLite: a temporary file (and its -wal and -shm companions).
    let path = std::env::temp_dir().join(format!("priorauth-test-{}.sqlite", random_id("")));
    let url = format!("sqlite://{}?mode=rwc", path.display());
    let outcome = run("sqlite", test(url)).await;
    for suffix in ["", "-wal", "-shm"] {
        let mut file = path.clone().into_os_string();
        file.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(file));
    }
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }

    let Some(admin_url) = std::env::var("DATABASE_URL")
        .ok()
        .filter(|url| url.starts_with("postgres"))
    else {
        eprintln!(
            "note: DATABASE_URL is not set to a PostgreSQL server; the PostgreSQL run is skipped"
        );
        return;
    };
    let name = format!("priorauth_t_{}", random_id(""));
    let mut admin = connect(&admin_url).await;
    sqlx::raw_sql(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .expect("create the test database");
    let outcome = run("postgres", test(database_url(&admin_url, &name))).await;
    // FORCE ends the connections a failed test left open (PostgreSQL 13 and later).
    if let Err(error) = sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&mut admin)
        .await
    {
        eprintln!("note: could not drop {name}: {error}");
    }
    let _ = admin.close().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// Runs one backend's test in its own task, so that a failure still lets the caller clean up.
async fn run(
    backend: &str,
    test: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Box<dyn std::any::Any + Send>> {
    eprintln!("backend: {backend}");
    let started = Instant::now();
    let result = tokio::spawn(test).await;
    eprintln!("backend: {backend} took {:?}", started.elapsed());
    result.map_err(|error| match error.try_into_panic() {
        Ok(panic) => panic,
        Err(error) => Box::new(format!("the {backend} test did not finish: {error}")),
    })
}

async fn connect(url: &str) -> sqlx::AnyConnection {
    sqlx::any::install_default_drivers();
    sqlx::AnyConnection::connect(url)
        .await
        .expect("connect to DATABASE_URL")
}

/// `url` with its database replaced by `name` (user, host, port and options kept).
fn database_url(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (url, String::new()),
    };
    let authority = base.find("://").map_or(0, |i| i + 3);
    let root = match base[authority..].find('/') {
        Some(i) => &base[..authority + i],
        None => base,
    };
    format!("{root}/{name}{query}")
}

/// The day `days` after today (UTC), the day a request submitted now is received: an
/// approval's period starts then.
#[allow(dead_code)]
pub fn days_after_receipt(days: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    priorauth_core::date::Date::from_epoch_days(now.div_euclid(86_400) + days)
        .map(|d| d.to_string())
        .unwrap_or_default()
}

/// A case from `tests/cases` of the workspace as a clinic would send it now: its facts dated
/// on the day a request submitted now is received (the service refuses a `request.date`
/// more than 90 days before receipt). Its other dates (birth date, earlier authorizations)
/// move with it, so that ages and the course are those of the recorded case.
pub fn case(name: &str) -> Value {
    let mut case = recorded_case(name);
    let Some(recorded) = case["request"]["date"]
        .as_str()
        .and_then(priorauth_core::date::Date::parse)
    else {
        return case;
    };
    let today = priorauth_core::date::Date::parse(&days_after_receipt(0)).expect("today");
    let shift = today.days_since(recorded);
    let moved = |date: &Value| {
        let date = priorauth_core::date::Date::parse(date.as_str().expect("a date"))
            .and_then(|d| d.add_days(shift))
            .expect("a date within the calendar");
        json!(date.to_string())
    };
    case["request"]["date"] = json!(today.to_string());
    if case["patient"]["birth_date"].is_string() {
        case["patient"]["birth_date"] = moved(&case["patient"]["birth_date"]);
    }
    if let Some(past) = case["history"]["authorizations"].as_array_mut() {
        for authorization in past {
            for key in ["start", "end"] {
                authorization[key] = moved(&authorization[key]);
            }
        }
    }
    case
}

/// A case from `tests/cases` as it is recorded there, with its own dates.
pub fn recorded_case(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/cases")
        .join(format!("{name}.json"));
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text).expect("a case is JSON")
}

/// One answer: status, headers and the body (JSON, or the text as a JSON string).
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The field the first problem names (`errors[0].field`).
    pub fn field(&self) -> Option<&str> {
        self.body.pointer("/errors/0/field").and_then(Value::as_str)
    }

    /// Asserts the status, showing the body when it differs.
    #[track_caller]
    pub fn expect(&self, status: u16) -> &Reply {
        assert_eq!(
            self.status, status,
            "unexpected status; body: {}",
            self.body
        );
        self
    }

    /// Asserts a problem+json answer with this status naming this field.
    #[track_caller]
    pub fn expect_problem(&self, status: u16, field: &str) {
        self.expect(status);
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json"),
            "{}",
            self.body
        );
        assert_eq!(self.body["status"], json!(status), "{}", self.body);
        assert_eq!(self.field(), Some(field), "{}", self.body);
    }
}

/// A server on a loopback port over one database, as `priorauth serve` runs it.
pub struct Server {
    pub base: String,
    pub state: AppState,
    pub client: reqwest::Client,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl Server {
    pub async fn start(url: &str) -> Server {
        Server::start_with(url, Limits::UNLIMITED, ConnectionLimits::DEFAULT).await
    }

    /// A server with these shares per key and organization, and these connection limits.
    pub async fn start_with(url: &str, limits: Limits, connections: ConnectionLimits) -> Server {
        let engine = Engine::bundled().expect("the bundled policies load");
        Server::start_engine(url, engine, None, limits, connections).await
    }

    /// A server over the bundled policies with this plans file.
    pub async fn start_with_plans(url: &str, plans: &str) -> Server {
        let engine = Engine::bundled().expect("the bundled policies load");
        Server::start_engine(
            url,
            engine,
            Some(plans),
            Limits::UNLIMITED,
            ConnectionLimits::DEFAULT,
        )
        .await
    }

    /// A server deciding by `engine` (policies of a directory) and these plans.
    #[allow(dead_code)]
    pub async fn start_engine(
        url: &str,
        engine: Engine,
        plans: Option<&str>,
        limits: Limits,
        connections: ConnectionLimits,
    ) -> Server {
        let mut state = priorauth_service::state(engine, plans, url)
            .await
            .expect("the state builds");
        // Most tests send faster than a clinic would; the limits have their own tests.
        // Refused calls are audited when a test flushes them, never halfway through it.
        state.admission = std::sync::Arc::new(
            Admission::new(limits).with_refusals_flushed_every(Duration::from_secs(24 * 3600)),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("local address");
        let (shutdown, stop) = oneshot::channel::<()>();
        // What `priorauth_service::serve` runs, with a shutdown the test controls instead
        // of SIGINT/SIGTERM.
        let task = tokio::spawn(priorauth_service::serve_until(
            state.clone(),
            listener,
            connections,
            async move {
                let _ = stop.await;
            },
        ));
        Server {
            base: format!("http://{address}"),
            state,
            client: reqwest::Client::new(),
            shutdown: Some(shutdown),
            task: Some(task),
        }
    }

    pub fn store(&self) -> &Store {
        &self.state.service.store
    }

    /// Graceful shutdown: stops accepting, finishes what is in flight, closes the database.
    pub async fn stop(mut self) {
        // Idle keep-alive connections of this client would otherwise hold the server open.
        self.client = reqwest::Client::new();
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(10), task)
                .await
                .expect("the server stops within 10 s")
                .expect("the server task")
                .expect("the server ends without an error");
        }
        self.state.service.store.pool.close().await;
    }

    /// Creates an API key and returns (id, secret).
    pub async fn key(
        &self,
        organization: &str,
        role: Role,
        name: &str,
        credentials: &str,
    ) -> (String, String) {
        keys::create(self.store(), organization, role, name, credentials)
            .await
            .expect("create a key")
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Reply {
        call(&self.client, &self.base, method, path, key, body, headers).await
    }

    pub async fn get(&self, path: &str, key: &str) -> Reply {
        self.call(Method::GET, path, Some(key), None, &[]).await
    }

    pub async fn post(&self, path: &str, key: &str, body: &Value) -> Reply {
        self.call(Method::POST, path, Some(key), Some(body), &[])
            .await
    }

    pub async fn patch(&self, path: &str, key: &str, body: &Value) -> Reply {
        self.call(Method::PATCH, path, Some(key), Some(body), &[])
            .await
    }

    /// Sends a file as a raw body of `content_type` (with extra headers), checked against the
    /// OpenAPI document as every call.
    pub async fn upload(
        &self,
        path: &str,
        key: &str,
        content_type: &str,
        bytes: Vec<u8>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut request = self
            .client
            .post(format!("{}{path}", self.base))
            .bearer_auth(key)
            .header("content-type", content_type)
            .body(bytes);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let reply = reply(request.send().await.expect("the server answers")).await;
        in_contract("POST", path, reply)
    }

    /// Submits `case` for a member of `plan`.
    pub async fn submit(&self, key: &str, plan: &str, case: Value) -> Reply {
        self.post("/v1/requests", key, &json!({"plan": plan, "case": case}))
            .await
    }

    /// Submits and asserts 201: the answer's body.
    pub async fn submitted(&self, key: &str, plan: &str, case: Value) -> Value {
        let reply = self.submit(key, plan, case).await;
        reply.expect(201);
        reply.body
    }

    /// A reviewer's determination.
    pub async fn determine(
        &self,
        key: &str,
        id: &str,
        decision: &str,
        criterion: &str,
        reason: &str,
    ) -> Reply {
        self.post(
            &format!("/v1/requests/{id}/determination"),
            key,
            &json!({"decision": decision, "criterion": criterion, "reason": reason}),
        )
        .await
    }

    /// The number of rows of a table (or of a `FROM … WHERE …` tail).
    pub async fn count(&self, from: &str) -> i64 {
        use sqlx::Row;
        sqlx::query(&format!("SELECT COUNT(*) AS n FROM {from}"))
            .fetch_one(&self.store().pool)
            .await
            .expect("count")
            .try_get::<i64, _>("n")
            .expect("a count")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// One HTTP call with an optional bearer key, JSON body and extra headers.
pub async fn call(
    client: &reqwest::Client,
    base: &str,
    method: Method,
    path: &str,
    key: Option<&str>,
    body: Option<&Value>,
    headers: &[(&str, &str)],
) -> Reply {
    let method_name = method.as_str().to_string();
    let mut request = client.request(method, format!("{base}{path}"));
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    if let Some(body) = body {
        request = request.json(body);
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("the server answers");
    in_contract(&method_name, path, reply(response).await)
}

/// The reply, once checked against the OpenAPI document (a test fails on an answer the
/// document does not describe).
#[track_caller]
fn in_contract(method: &str, path: &str, reply: Reply) -> Reply {
    if let Err(problem) = contract::verify(
        method,
        path,
        reply.status,
        reply.header("content-type"),
        &reply.body,
    ) {
        panic!(
            "the answer breaks the OpenAPI document: {problem}\nbody: {}",
            reply.body
        );
    }
    reply
}

pub async fn reply(response: reqwest::Response) -> Reply {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.expect("a body");
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Reply {
        status,
        headers,
        body,
    }
}

/// A timestamp of the API (`2026-05-18T09:30:00.123Z`) in milliseconds since the epoch.
pub fn millis(value: &Value) -> i64 {
    value
        .as_str()
        .and_then(|text| text.parse::<jiff::Timestamp>().ok())
        .unwrap_or_else(|| panic!("not a timestamp: {value}"))
        .as_millisecond()
}

/// Loads the payer's eligibility (CSV lines under the header
/// `member_id,plan,effective_from,effective_to,birth_date`), as `priorauth members import`.
pub async fn import_members(server: &Server, lines: &str) {
    let admin = keys::Caller {
        key_id: "test".into(),
        organization: "payer".into(),
        role: Role::Admin,
        name: "eligibility load".into(),
        credentials: String::new(),
    };
    let members = priorauth_service::lifecycle::members::parse(
        &server.state.service,
        &format!("member_id,plan,effective_from,effective_to,birth_date\n{lines}"),
    )
    .expect("the eligibility lines are valid");
    priorauth_service::lifecycle::members::import(&server.state.service, &admin, &members)
        .await
        .expect("the eligibility is imported");
}

/// The bundled plans, with EOCCO's payer named by its NPI and its payer id (the identifiers
/// are made up for the test).
pub fn plans_naming_the_payer() -> String {
    std::fs::read_to_string(repo_root().join("config/plans.toml"))
        .unwrap()
        .replace(
            "id = \"eocco-medicaid\"",
            "id = \"eocco-medicaid\"\npayer_ids = [\"http://hl7.org/fhir/sid/us-npi|1234567893\", \"EOCCO01\"]",
        )
}

/// The repository's root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Where this run keeps what the service emitted, for the validator.
pub fn emitted_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("priorauth-fhir-{test}-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    dir
}

pub fn keep(dir: &Path, name: &str, body: &Value) {
    std::fs::write(dir.join(format!("{name}.json")), body.to_string()).expect("write");
}

/// The Python of the FHIR validator's environment (fhir.resources, fhirpathpy), or None (with
/// a note) when it is not installed and `REQUIRE_FHIR_VALIDATOR` is not set.
pub fn fhir_python() -> Option<PathBuf> {
    let python = std::env::var("FHIR_VALIDATOR_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|_| repo_root().join("target/fhir-validator/bin/python"));
    if !python.exists() {
        assert!(
            std::env::var("REQUIRE_FHIR_VALIDATOR").is_err(),
            "the FHIR validator is required and not installed at {}",
            python.display()
        );
        eprintln!(
            "note: no FHIR validator at {}; validation skipped",
            python.display()
        );
        return None;
    }
    Some(python)
}

/// Runs the independent validator over a folder. Without it installed (`.ci/run` installs
/// it), the check is skipped with a note, unless `REQUIRE_FHIR_VALIDATOR` is set.
pub fn validate(dir: &Path) {
    let Some(python) = fhir_python() else { return };
    let out = std::process::Command::new(&python)
        .arg(repo_root().join("tests/fhir/validate.py"))
        .arg(dir)
        .output()
        .expect("run the validator");
    let text = String::from_utf8_lossy(&out.stdout);
    eprintln!("{text}");
    assert!(out.status.success(), "FHIR validation failed:\n{text}");
    // And by the guides' own rules: each profile a resource claims, CRD's coverage
    // information (`tests/fhir/profile_check.py`, with the IG packages' profiles).
    let out = std::process::Command::new(&python)
        .arg(repo_root().join("tests/fhir/profile_check.py"))
        .arg(dir)
        .output()
        .expect("run the profile check");
    let text = String::from_utf8_lossy(&out.stdout);
    eprintln!("{text}");
    assert!(
        out.status.success(),
        "the guides' profiles are not met:\n{text}"
    );
}

/// Whether a body posted to a subscriber is the Subscriptions Backport's handshake (sent when
/// a subscription is saved), not a notification.
pub fn is_handshake(body: &Value) -> bool {
    body["entry"][0]["resource"]["parameter"]
        .as_array()
        .is_some_and(|p| {
            p.iter()
                .any(|p| p["name"] == "type" && p["valueCode"] == "handshake")
        })
}

#[cfg(test)]
mod tests {
    #[test]
    fn database_url_replaces_only_the_database() {
        assert_eq!(
            super::database_url("postgres://postgres@127.0.0.1:5432/test", "x"),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(
            super::database_url("postgres://u:p@h/db?sslmode=disable", "x"),
            "postgres://u:p@h/x?sslmode=disable"
        );
        assert_eq!(
            super::database_url("postgres://h:5432", "x"),
            "postgres://h:5432/x"
        );
    }
}
