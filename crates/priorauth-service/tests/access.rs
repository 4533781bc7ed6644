//! Access under attack: every route of the service tried with no key, malformed
//! Authorization headers, a wrong key, a revoked key, the wrong role and another
//! organization's key, and with oversized, deeply nested and malformed bodies. Each answer
//! has its status, is problem+json, and carries neither internals (panics, SQL, source
//! paths) nor another organization's records. The `/v1` routes come from the served OpenAPI
//! document, and the table below must have an entry for each of them: a route added without
//! one fails this test. Runs on SQLite and, with `DATABASE_URL`, on PostgreSQL.

// Test code: a failed unwrap is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::collections::BTreeSet;

use priorauth_service::keys::{self, Role};
use priorauth_service::store::verify_audit;
use reqwest::Method;
use reqwest::header::{HeaderName, HeaderValue};
use serde_json::{Value, json};
use support::{Reply, Server, case, for_each_backend};

/// What a route's record parameter names, which decides how another organization sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    /// No record: the same for every key, or filtered to the caller's organization.
    Unscoped,
    /// `{id}` is a request: another organization's answers as one that does not exist.
    Request,
    /// `{number}` is an authorization: likewise.
    Authorization,
    /// `{id}` is an appeal (and `{n}` its first file): likewise.
    Appeal,
    /// `{id}` is a policy: public data, the same for every key.
    Policy,
    /// The body's `renews` names an authorization: another organization's answers as an
    /// unknown number.
    Renewal,
}

/// The valid body a route takes, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Body {
    Empty,
    /// A file as the raw body (a clinic's note, a PDF), titled in the query.
    File,
    Comment,
    Submission,
    Completion,
    Determination,
    Assignment,
    InformationRequest,
    Usage,
    Cancellation,
    Evaluation,
    Withdrawal,
    Reopening,
    RequestExtension,
    Appeal,
    PeerToPeer,
    AppealDecision,
    Extension,
}

#[derive(Debug)]
struct Route {
    /// As in the OpenAPI document: lower case.
    method: &'static str,
    path: &'static str,
    /// The roles let through; any other gets 403.
    roles: &'static [Role],
    scope: Scope,
    body: Body,
}

const ANY_ROLE: &[Role] = &[Role::Submitter, Role::Reviewer, Role::Admin];
const SUBMITTING: &[Role] = &[Role::Submitter, Role::Admin];

/// Every route of the OpenAPI document, with what the lifecycle and the console enforce.
const ROUTES: &[Route] = &[
    Route {
        method: "post",
        path: "/v1/requests",
        roles: SUBMITTING,
        scope: Scope::Renewal,
        body: Body::Submission,
    },
    Route {
        method: "get",
        path: "/v1/requests/{id}",
        roles: ANY_ROLE,
        scope: Scope::Request,
        body: Body::Empty,
    },
    Route {
        method: "patch",
        path: "/v1/requests/{id}",
        roles: SUBMITTING,
        scope: Scope::Request,
        body: Body::Completion,
    },
    Route {
        method: "post",
        path: "/v1/requests/{id}/determination",
        roles: &[Role::Reviewer],
        scope: Scope::Request,
        body: Body::Determination,
    },
    Route {
        method: "post",
        path: "/v1/requests/{id}/information-request",
        roles: &[Role::Reviewer],
        scope: Scope::Request,
        body: Body::InformationRequest,
    },
    Route {
        method: "post",
        path: "/v1/requests/{id}/determination/preview",
        roles: &[Role::Reviewer],
        scope: Scope::Request,
        body: Body::Determination,
    },
    Route {
        method: "post",
        path: "/v1/requests/{id}/attachments",
        roles: &[Role::Submitter, Role::Reviewer],
        scope: Scope::Request,
        body: Body::File,
    },
    Route {
        method: "get",
        path: "/v1/requests/{id}/attachments/{n}",
        roles: ANY_ROLE,
        scope: Scope::Request,
        body: Body::Empty,
    },
    Route {
        method: "post",
        path: "/v1/requests/{id}/comments",
        roles: &[Role::Reviewer],
        scope: Scope::Request,
        body: Body::Comment,
    },
    Route {
        method: "post",
        path: "/v1/requests/{id}/assignment",
        roles: &[Role::Reviewer],
        scope: Scope::Request,
        body: Body::Assignment,
    },
    Route {
        method: "get",
        path: "/v1/requests/{id}/approval-notice",
        roles: ANY_ROLE,
        scope: Scope::Request,
        body: Body::Empty,
    },
    Route {
        method: "get",
        path: "/v1/requests/{id}/approval-notice.pdf",
        roles: ANY_ROLE,
        scope: Scope::Request,
        body: Body::Empty,
    },
    Route {
        method: "get",
        path: "/v1/requests/{id}/denial-letter.pdf",
        roles: ANY_ROLE,
        scope: Scope::Request,
        body: Body::Empty,
    },
    Route {
        method: "get",
        path: "/v1/requests/{id}/denial-letter",
        roles: ANY_ROLE,
        scope: Scope::Request,
        body: Body::Empty,
    },
    Route {
        method: "post",
        path: "/v1/requests/{id}/withdrawal",
        roles: SUBMITTING,
        scope: Scope::Request,
        body: Body::Withdrawal,
    },
    Route {
        method: "post",
        path: "/v1/requests/{id}/reopening",
        roles: &[Role::Reviewer],
        scope: Scope::Request,
        body: Body::Reopening,
    },
    Route {
        method: "post",
        path: "/v1/requests/{id}/extension",
        roles: &[Role::Reviewer, Role::Admin],
        scope: Scope::Request,
        body: Body::RequestExtension,
    },
    Route {
        method: "get",
        path: "/v1/reports/um",
        roles: &[Role::Reviewer, Role::Admin],
        scope: Scope::Unscoped,
        body: Body::Empty,
    },
    Route {
        method: "post",
        path: "/v1/requests/{id}/appeals",
        roles: SUBMITTING,
        scope: Scope::Request,
        body: Body::Appeal,
    },
    Route {
        method: "get",
        path: "/v1/requests/{id}/appeals",
        roles: ANY_ROLE,
        scope: Scope::Request,
        body: Body::Empty,
    },
    Route {
        method: "post",
        path: "/v1/requests/{id}/peer-to-peer",
        roles: &[Role::Reviewer],
        scope: Scope::Request,
        body: Body::PeerToPeer,
    },
    Route {
        method: "get",
        path: "/v1/appeals",
        roles: ANY_ROLE,
        scope: Scope::Unscoped,
        body: Body::Empty,
    },
    Route {
        method: "get",
        path: "/v1/appeals/{id}",
        roles: ANY_ROLE,
        scope: Scope::Appeal,
        body: Body::Empty,
    },
    Route {
        method: "post",
        path: "/v1/appeals/{id}/decision",
        roles: &[Role::Reviewer],
        scope: Scope::Appeal,
        body: Body::AppealDecision,
    },
    Route {
        method: "post",
        path: "/v1/appeals/{id}/extension",
        roles: &[Role::Reviewer, Role::Admin],
        scope: Scope::Appeal,
        body: Body::Extension,
    },
    Route {
        method: "get",
        path: "/v1/appeals/{id}/notice",
        roles: ANY_ROLE,
        scope: Scope::Appeal,
        body: Body::Empty,
    },
    Route {
        method: "get",
        path: "/v1/appeals/{id}/attachments/{n}",
        roles: ANY_ROLE,
        scope: Scope::Appeal,
        body: Body::Empty,
    },
    Route {
        method: "get",
        path: "/v1/queue",
        roles: &[Role::Reviewer, Role::Admin],
        scope: Scope::Unscoped,
        body: Body::Empty,
    },
    Route {
        method: "get",
        path: "/v1/authorizations/{number}",
        roles: ANY_ROLE,
        scope: Scope::Authorization,
        body: Body::Empty,
    },
    Route {
        method: "post",
        path: "/v1/authorizations/{number}/usage",
        roles: SUBMITTING,
        scope: Scope::Authorization,
        body: Body::Usage,
    },
    Route {
        method: "post",
        path: "/v1/authorizations/{number}/cancellation",
        roles: SUBMITTING,
        scope: Scope::Authorization,
        body: Body::Cancellation,
    },
    Route {
        method: "get",
        path: "/v1/notifications/dead",
        roles: &[Role::Admin],
        scope: Scope::Unscoped,
        body: Body::Empty,
    },
    Route {
        method: "get",
        path: "/v1/authorizations",
        roles: ANY_ROLE,
        scope: Scope::Unscoped,
        body: Body::Empty,
    },
    Route {
        method: "get",
        path: "/v1/questions",
        roles: ANY_ROLE,
        scope: Scope::Unscoped,
        body: Body::Empty,
    },
    Route {
        method: "get",
        path: "/v1/requests",
        roles: ANY_ROLE,
        scope: Scope::Unscoped,
        body: Body::Empty,
    },
    Route {
        method: "get",
        path: "/v1/me",
        roles: ANY_ROLE,
        scope: Scope::Unscoped,
        body: Body::Empty,
    },
    Route {
        method: "get",
        path: "/v1/plans",
        roles: ANY_ROLE,
        scope: Scope::Unscoped,
        body: Body::Empty,
    },
    Route {
        method: "get",
        path: "/v1/policies",
        roles: ANY_ROLE,
        scope: Scope::Unscoped,
        body: Body::Empty,
    },
    Route {
        method: "get",
        path: "/v1/policies/{id}/source",
        roles: ANY_ROLE,
        scope: Scope::Policy,
        body: Body::Empty,
    },
    Route {
        method: "post",
        path: "/v1/evaluate",
        roles: ANY_ROLE,
        scope: Scope::Unscoped,
        body: Body::Evaluation,
    },
];

/// Routes that answer without a key, outside the OpenAPI document (which describes the keyed
/// API): operations and the console's static page. `/` and `/console` redirect to the page.
const PUBLIC: &[&str] = &[
    "/healthz",
    "/readyz",
    "/openapi.json",
    "/",
    "/console",
    "/console/",
    "/console/app.js",
    "/console/app.css",
];

/// Text that would show the service's insides: panics, backtraces, SQL, source files.
const INTERNALS: &[&str] = &[
    "panicked",
    "RUST_BACKTRACE",
    "backtrace",
    "/src/",
    ".rs:",
    "sqlx",
    "SELECT ",
    "INSERT ",
    "UPDATE ",
    " FROM ",
    " WHERE ",
    "priorauth_service",
    "priorauth_core",
    "sqlite",
    "postgres",
];

const MISSING_REQUEST: &str = "req_00000000000000000000000000000000";
const MISSING_AUTHORIZATION: &str = "PA-000000000000";
const MISSING_POLICY: &str = "no-such-policy";
const MISSING_APPEAL: &str = "apl_00000000000000000000000000000000";

/// A server with keys of every kind and one approved request of `clinic-a`.
struct World {
    server: Server,
    /// `clinic-a`'s submitter, owner of the record.
    submitter: String,
    /// A submitter of `clinic-b`.
    other_organization: String,
    reviewer: String,
    admin: String,
    /// A `clinic-a` submitter key, revoked.
    revoked: String,
    request: String,
    authorization: String,
    policy: String,
    /// An appeal (with a file) of another `clinic-a` request, denied.
    appeal: String,
    /// Text of `clinic-a`'s record that nobody else's answer may contain.
    record_text: Vec<String>,
}

/// Whose record a probe names: the existing one of `clinic-a`, or one that does not exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Existing,
    Missing,
}

/// One call: path and JSON body.
#[derive(Debug)]
struct Probe {
    path: String,
    body: Option<Value>,
}

impl Probe {
    /// Everything the caller sent, which an answer may echo.
    fn text(&self) -> String {
        format!(
            "{} {}",
            self.path,
            self.body.as_ref().map(Value::to_string).unwrap_or_default()
        )
    }
}

impl World {
    async fn new(url: &str) -> World {
        let server = Server::start(url).await;
        let (_, submitter) = server
            .key("clinic-a", Role::Submitter, "Clinic A EHR", "")
            .await;
        let (_, other_organization) = server
            .key("clinic-b", Role::Submitter, "Clinic B EHR", "")
            .await;
        let (_, reviewer) = server
            .key("payer", Role::Reviewer, "Dr. Rivera", "MD, Hematology")
            .await;
        let (_, admin) = server.key("payer", Role::Admin, "Operations", "").await;
        let (revoked_id, revoked) = server
            .key("clinic-a", Role::Submitter, "Clinic A old EHR", "")
            .await;
        assert!(keys::revoke(server.store(), &revoked_id).await.unwrap());

        let case = case("E01");
        let record = server
            .submitted(&submitter, "masshealth", case.clone())
            .await;
        assert_eq!(record["status"], "approved", "{record}");
        let request = record["id"].as_str().unwrap().to_string();
        let authorization = record["authorization"]["number"]
            .as_str()
            .unwrap()
            .to_string();
        let policy = record["policy"].as_str().unwrap().to_string();
        let reviewed = server
            .submitted(&submitter, "masshealth", support::case("E12"))
            .await;
        let denied = reviewed["id"].as_str().unwrap();
        server
            .determine(
                &reviewer,
                denied,
                "deny",
                "one-of-the-following",
                "Not on therapy.",
            )
            .await
            .expect(200);
        let filed = server
            .post(
                &format!("/v1/requests/{denied}/appeals"),
                &submitter,
                &json!({"appellant": "member", "grounds": "Records attached.",
                        "attachments": [{"title": "Letter", "content_type": "text/plain", "data": "TGV0dGVy"}]}),
            )
            .await;
        filed.expect(201);
        let appeal = filed.body["id"].as_str().unwrap().to_string();
        let record_text = vec![
            request.clone(),
            authorization.clone(),
            "clinic-a".to_string(),
            case["patient"]["birth_date"].as_str().unwrap().to_string(),
            case["diagnosis"]["icd10"][0].as_str().unwrap().to_string(),
        ];
        World {
            server,
            submitter,
            other_organization,
            reviewer,
            admin,
            revoked,
            request,
            authorization,
            policy,
            appeal,
            record_text,
        }
    }

    fn key(&self, role: Role) -> &str {
        match role {
            Role::Submitter => &self.submitter,
            Role::Reviewer => &self.reviewer,
            Role::Admin => &self.admin,
        }
    }

    /// The route's call naming `target`, with a valid body.
    fn probe(&self, route: &Route, target: Target) -> Probe {
        let existing = target == Target::Existing;
        let (request, authorization, policy, appeal) = if existing {
            (
                self.request.as_str(),
                self.authorization.as_str(),
                self.policy.as_str(),
                self.appeal.as_str(),
            )
        } else {
            (
                MISSING_REQUEST,
                MISSING_AUTHORIZATION,
                MISSING_POLICY,
                MISSING_APPEAL,
            )
        };
        let path = match route.scope {
            // A file is titled in the query; a request's first file is read.
            Scope::Request if route.body == Body::File => {
                format!("{}?title=Note", route.path.replace("{id}", request))
            }
            Scope::Request => route.path.replace("{id}", request).replace("{n}", "1"),
            Scope::Authorization => route.path.replace("{number}", authorization),
            Scope::Policy => route.path.replace("{id}", policy),
            Scope::Appeal => route.path.replace("{id}", appeal).replace("{n}", "1"),
            // The report's period is required.
            Scope::Unscoped if route.path == "/v1/reports/um" => {
                format!("{}?from=2026-01-01&to=2026-12-31", route.path)
            }
            Scope::Unscoped | Scope::Renewal => route.path.to_string(),
        };
        assert!(!path.contains('{'), "{}: a parameter is left", route.path);
        let body = match route.body {
            Body::Empty => None,
            // Sent raw (`send`): the bytes of a PDF.
            Body::File => Some(json!("%PDF-1.4\n%%EOF\n")),
            Body::Comment => Some(json!({"text": "Asked the office for the marrow report."})),
            // A renewal of the authorization: refused before anything is evaluated when the
            // number is not the caller's.
            Body::Submission => {
                Some(json!({"plan": "masshealth", "case": case("E01"), "renews": authorization}))
            }
            Body::Completion => Some(json!({"diagnosis": {"mrd_percent": 0.5}})),
            Body::Determination => Some(json!({
                "decision": "approve",
                "criterion": "new-to-plan-on-treatment",
                "reason": "Continuing therapy begun before enrollment.",
            })),
            Body::Assignment => Some(json!({"assign": true})),
            Body::InformationRequest => Some(json!({
                "questions": ["When did therapy start?"],
                "answer_by": support::days_after_receipt(0),
            })),
            Body::Usage => {
                Some(json!({"units": 1, "date_of_service": support::days_after_receipt(0)}))
            }
            Body::Cancellation => Some(json!({"reason": "The treatment was stopped."})),
            Body::Evaluation => Some(json!({"case": case("E01")})),
            Body::Withdrawal => Some(json!({"reason": "The order was cancelled."})),
            Body::Reopening => Some(json!({"reason": "New pathology."})),
            Body::RequestExtension => Some(json!({"reason": "Awaiting the notes."})),
            Body::Appeal => Some(json!({"appellant": "member", "grounds": "New records."})),
            Body::PeerToPeer => Some(json!({
                "prescriber": "Dr. Alvarez",
                "held_at": "2026-01-05T10:00:00Z",
                "outcome": "determination_stands",
            })),
            Body::AppealDecision => {
                Some(json!({"decision": "overturn", "reason": "Records show therapy began."}))
            }
            Body::Extension => Some(json!({"reason": "Awaiting records."})),
        };
        Probe { path, body }
    }

    /// What a caller allowed on the route is answered for a record that does not exist.
    fn missing_status(route: &Route) -> u16 {
        match route.scope {
            Scope::Request | Scope::Authorization | Scope::Policy | Scope::Appeal => 404,
            // `renews` names no authorization of the caller's.
            Scope::Renewal => 422,
            Scope::Unscoped => 200,
        }
    }
}

/// Sends `probe` with these headers.
async fn send(
    world: &World,
    method: &str,
    probe: &Probe,
    headers: &[(HeaderName, HeaderValue)],
) -> Reply {
    let body = probe.body.as_ref().map(|body| match body.as_str() {
        // A file goes as its own bytes.
        Some(file) => ("application/pdf", file.as_bytes().to_vec()),
        None => ("application/json", body.to_string().into_bytes()),
    });
    send_raw(world, method, &probe.path, headers, body).await
}

/// Sends raw bytes with a content type, for bodies no client library would make.
async fn send_raw(
    world: &World,
    method: &str,
    path: &str,
    headers: &[(HeaderName, HeaderValue)],
    body: Option<(&str, Vec<u8>)>,
) -> Reply {
    let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
    let mut request = world
        .server
        .client
        .request(method, format!("{}{path}", world.server.base));
    for (name, value) in headers {
        request = request.header(name, value);
    }
    if let Some((content_type, bytes)) = body {
        if !content_type.is_empty() {
            request = request.header("content-type", content_type);
        }
        request = request.body(bytes);
    }
    support::reply(request.send().await.expect("the server answers")).await
}

fn bearer(secret: &str) -> Vec<(HeaderName, HeaderValue)> {
    vec![authorization(&format!("Bearer {secret}"))]
}

fn authorization(value: &str) -> (HeaderName, HeaderValue) {
    (
        reqwest::header::AUTHORIZATION,
        HeaderValue::from_str(value).unwrap(),
    )
}

/// An error answer: this status, as problem+json, with nothing of the service's insides and
/// nothing of `clinic-a`'s record that the caller did not send itself.
#[track_caller]
fn assert_problem(reply: &Reply, status: u16, world: &World, sent: &str, what: &str) {
    assert_eq!(reply.status, status, "{what}: {}", reply.body);
    assert_eq!(
        reply.header("content-type"),
        Some("application/problem+json"),
        "{what}: {}",
        reply.body
    );
    assert_eq!(
        reply.body["status"],
        json!(status),
        "{what}: {}",
        reply.body
    );
    assert_eq!(reply.body["type"], "about:blank", "{what}: {}", reply.body);
    let text = reply.body.to_string();
    for internal in INTERNALS {
        assert!(
            !text.contains(internal),
            "{what}: the answer shows `{internal}`: {text}"
        );
    }
    assert_no_record(reply, world, sent, what);
}

/// No text of `clinic-a`'s record in the answer, unless the caller sent it itself.
#[track_caller]
fn assert_no_record(reply: &Reply, world: &World, sent: &str, what: &str) {
    let text = reply.body.to_string();
    for record in &world.record_text {
        assert!(
            sent.contains(record.as_str()) || !text.contains(record.as_str()),
            "{what}: the answer shows `{record}` of another organization's record: {text}"
        );
    }
}

/// The methods a route table may use; any other on a documented path must be 405.
const METHODS: &[&str] = &["get", "post", "put", "patch", "delete"];

/// (method, path) of every operation of the served OpenAPI document.
async fn documented_routes(world: &World) -> BTreeSet<(String, String)> {
    let reply = send_raw(world, "get", "/openapi.json", &[], None).await;
    reply.expect(200);
    let paths = reply.body["paths"].as_object().expect("paths");
    let mut routes = BTreeSet::new();
    // The FHIR and CDS Hooks routes answer in their own terms (OperationOutcome) and are
    // attacked in tests/fhir.rs (`the_fhir_interfaces_refuse_…`); the operations routes
    // take no key.
    for (path, item) in paths.iter().filter(|(path, _)| path.starts_with("/v1/")) {
        for method in item.as_object().expect("a path item").keys() {
            if [
                "get", "put", "post", "delete", "options", "head", "patch", "trace",
            ]
            .contains(&method.as_str())
            {
                routes.insert((method.clone(), path.clone()));
            }
        }
    }
    routes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_route_refuses_what_it_must_and_leaks_nothing() {
    for_each_backend(|url| async move {
        let world = World::new(&url).await;

        // The table covers the document exactly: a new route needs its expectations here.
        let documented = documented_routes(&world).await;
        let table: BTreeSet<(String, String)> = ROUTES
            .iter()
            .map(|r| (r.method.to_string(), r.path.to_string()))
            .collect();
        assert_eq!(table.len(), ROUTES.len(), "a route is listed twice");
        let missing: Vec<_> = documented.difference(&table).collect();
        let stale: Vec<_> = table.difference(&documented).collect();
        assert!(
            missing.is_empty(),
            "routes of /openapi.json without an entry in ROUTES of tests/access.rs: {missing:?}"
        );
        assert!(
            stale.is_empty(),
            "entries of ROUTES that /openapi.json does not have: {stale:?}"
        );
        for path in PUBLIC {
            assert!(
                !documented.iter().any(|(_, p)| p == path),
                "{path} is public but in the OpenAPI document"
            );
        }

        // Public routes answer without a key, and a bad key changes nothing there.
        for path in PUBLIC {
            send_raw(&world, "get", path, &[], None).await.expect(200);
            send_raw(&world, "get", path, &bearer("pak_wrong"), None)
                .await
                .expect(200);
        }

        let long_key = format!("Bearer pak_{}", "a".repeat(8000));
        let not_utf8 = (
            reqwest::header::AUTHORIZATION,
            HeaderValue::from_bytes(b"Bearer pak_\xff\xfe").unwrap(),
        );
        let x_api_key = HeaderName::from_static("x-api-key");
        for route in ROUTES {
            let what = |case: &str| format!("{} {}: {case}", route.method, route.path);
            let existing = world.probe(route, Target::Existing);
            let missing = world.probe(route, Target::Missing);
            let sent = existing.text();

            // No valid key, in every shape: 401 with a Bearer challenge.
            let unauthenticated: Vec<(&str, Vec<(HeaderName, HeaderValue)>)> = vec![
                ("no Authorization header", vec![]),
                ("a scheme without a key", vec![authorization("Bearer")]),
                (
                    "the key under another scheme",
                    vec![authorization(&format!("Basic {}", world.submitter))],
                ),
                (
                    "the key without a scheme",
                    vec![authorization(&world.submitter)],
                ),
                (
                    "the key with a character more",
                    bearer(&format!("{}0", world.submitter)),
                ),
                ("a header that is not UTF-8", vec![not_utf8.clone()]),
                ("a very long key", vec![authorization(&long_key)]),
                (
                    "an empty X-API-Key",
                    vec![(x_api_key.clone(), HeaderValue::from_static(""))],
                ),
                (
                    "a wrong key",
                    bearer("pak_0123456789abcdef0123456789abcdef"),
                ),
                ("a revoked key", bearer(&world.revoked)),
                (
                    "a revoked key as X-API-Key",
                    vec![(
                        x_api_key.clone(),
                        HeaderValue::from_str(&world.revoked).unwrap(),
                    )],
                ),
            ];
            for (case, headers) in &unauthenticated {
                let reply = send(&world, route.method, &existing, headers).await;
                assert_problem(&reply, 401, &world, &sent, &what(case));
                assert_eq!(
                    reply.header("www-authenticate"),
                    Some("Bearer"),
                    "{}",
                    what(case)
                );
                assert_eq!(reply.body["title"], "unauthorized");
            }

            // The wrong role: 403, even on the caller's own organization's record.
            for role in ANY_ROLE.iter().filter(|r| !route.roles.contains(r)) {
                let reply = send(&world, route.method, &existing, &bearer(world.key(*role))).await;
                let case = format!("the {} role", role.as_str());
                assert_problem(&reply, 403, &world, &sent, &what(&case));
                assert_eq!(reply.body["title"], "forbidden");
            }

            // The right roles get past the checks: on a record that does not exist, 404 (or
            // 422 naming `renews`); on an unscoped route, 200.
            for role in route.roles {
                let reply = send(&world, route.method, &missing, &bearer(world.key(*role))).await;
                let case = format!("the {} role, no such record", role.as_str());
                let status = World::missing_status(route);
                if status == 200 {
                    // `clinic-a` and the payer's staff may see `clinic-a`'s records.
                    reply.expect(200);
                } else {
                    assert_problem(&reply, status, &world, &missing.text(), &what(&case));
                }
                if route.scope == Scope::Renewal {
                    assert_eq!(reply.field(), Some("renews"), "{}", what(&case));
                }
            }

            // Another organization's submitter: `clinic-a`'s record is answered exactly as
            // one that does not exist (404 where submitters may call, else the role's 403),
            // so an answer never tells that the record exists.
            let other = bearer(&world.other_organization);
            let theirs = send(&world, route.method, &existing, &other).await;
            match route.scope {
                Scope::Request | Scope::Authorization | Scope::Appeal | Scope::Renewal => {
                    let made_up = send(&world, route.method, &missing, &other).await;
                    let case = "another organization's record";
                    let status = if route.roles.contains(&Role::Submitter) {
                        World::missing_status(route)
                    } else {
                        403
                    };
                    assert_problem(&theirs, status, &world, &sent, &what(case));
                    let (ours, missing_id) = match route.scope {
                        Scope::Request => (&world.request, MISSING_REQUEST),
                        Scope::Appeal => (&world.appeal, MISSING_APPEAL),
                        _ => (&world.authorization, MISSING_AUTHORIZATION),
                    };
                    assert_eq!(
                        theirs.body.to_string().replace(ours.as_str(), missing_id),
                        made_up.body.to_string(),
                        "{}: the answer differs from one for a record that does not exist",
                        what(case)
                    );
                }
                Scope::Unscoped | Scope::Policy => {
                    // Shared data, or the caller's organization's only.
                    if route.roles.contains(&Role::Submitter) {
                        theirs.expect(200);
                    }
                    assert_no_record(&theirs, &world, &sent, &what("another organization"));
                }
            }
            assert!(theirs.status < 500, "{}: {}", what("5xx"), theirs.body);
        }

        // The check above can fail: the payer's reviewer does see the authorization.
        let list = send_raw(
            &world,
            "get",
            "/v1/authorizations",
            &bearer(&world.reviewer),
            None,
        )
        .await;
        list.expect(200);
        assert!(
            list.body.to_string().contains(&world.authorization),
            "{}",
            list.body
        );
        // That read of records is in the audit log, as every other.
        let (last_action,): (String,) =
            sqlx::query_as("SELECT action FROM audit_log ORDER BY seq DESC LIMIT 1")
                .fetch_one(&world.server.store().pool)
                .await
                .unwrap();
        assert_eq!(last_action, "authorization.list");

        // Undocumented methods on documented paths, and path segments that do not parse.
        let reviewer = bearer(&world.reviewer);
        for (path, methods) in documented.iter().fold(
            std::collections::BTreeMap::<&str, Vec<&str>>::new(),
            |mut paths, (method, path)| {
                paths.entry(path).or_default().push(method);
                paths
            },
        ) {
            let concrete = path
                .replace("{id}", MISSING_REQUEST)
                .replace("{number}", MISSING_AUTHORIZATION)
                .replace("{n}", "1");
            for method in METHODS.iter().filter(|m| !methods.contains(m)) {
                let reply = send_raw(&world, method, &concrete, &reviewer, None).await;
                let what = format!("{method} {path}");
                assert_problem(&reply, 405, &world, &concrete, &what);
                assert!(reply.header("allow").is_some(), "{what}: no Allow header");
            }
            if path.contains('{') {
                let unparsable = path
                    .replace("{id}", "%FF")
                    .replace("{number}", "%FF")
                    .replace("{n}", "1");
                let method = methods[0];
                let reply = send_raw(&world, method, &unparsable, &reviewer, None).await;
                assert_problem(
                    &reply,
                    400,
                    &world,
                    &unparsable,
                    &format!("{method} {unparsable}"),
                );
            }
        }
        let reply = send_raw(&world, "get", "/v1/no-such-route", &reviewer, None).await;
        assert_problem(&reply, 404, &world, "", "an unknown route");

        // Nothing above changed a record, and the audit chain is whole.
        assert_eq!(world.server.count("requests").await, 2);
        assert_eq!(world.server.count("usage").await, 0);
        assert_eq!(world.server.count("determinations").await, 1);
        assert_eq!(
            world.server.count("appeals WHERE status = 'pending'").await,
            1
        );
        assert_eq!(world.server.count("peer_to_peer").await, 0);
        assert_eq!(
            world
                .server
                .count("authorizations WHERE used_units = 0")
                .await,
            1
        );
        let report = verify_audit(world.server.store()).await.unwrap();
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        world.server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hostile_bodies_are_refused_without_harm() {
    for_each_backend(|url| async move {
        let world = World::new(&url).await;
        let limit = priorauth_service::web::BODY_LIMIT;
        let deep_arrays = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        let deep_objects = format!("{}1{}", "{\"a\":".repeat(40_000), "}".repeat(40_000));
        assert!(deep_arrays.len() < limit && deep_objects.len() < limit);
        let oversized = json!({"padding": "x".repeat(limit + 1024)}).to_string();
        // In the first key, so that no route refuses the key before reading it.
        let not_utf8 = b"{\"\xff\xfe\": 1}".to_vec();

        // JSON bodies; a file's route is attacked in tests/worklist.rs (its type, size and
        // emptiness).
        for route in ROUTES
            .iter()
            .filter(|r| r.body != Body::Empty && r.body != Body::File)
        {
            // A caller the route lets through, on a record that does not exist: nothing is
            // written even if a body were wrongly accepted.
            let role = route.roles[0];
            let probe = world.probe(route, Target::Missing);
            let key = bearer(world.key(role));
            let valid = probe.body.as_ref().unwrap().to_string().into_bytes();
            // The route's valid body without its closing brace: every field fits, then it ends.
            let truncated = valid[..valid.len() - 1].to_vec();
            // The nesting as the value of the body's first field (`case` of a submission, a
            // JSON value that the parser descends into until its depth limit).
            let first_field = probe
                .body
                .as_ref()
                .unwrap()
                .as_object()
                .unwrap()
                .keys()
                .next()
                .unwrap();
            let nested_in_a_field = format!("{{\"{first_field}\": {deep_arrays}}}").into_bytes();
            let what = |case: &str| format!("{} {}: {case}", route.method, route.path);
            let attacks: Vec<(&str, &str, Vec<u8>, &[u16])> = vec![
                (
                    "a body over the limit",
                    "application/json",
                    oversized.clone().into_bytes(),
                    &[413],
                ),
                (
                    "100,000 nested arrays",
                    "application/json",
                    deep_arrays.clone().into_bytes(),
                    &[400, 422],
                ),
                (
                    "40,000 nested objects",
                    "application/json",
                    deep_objects.clone().into_bytes(),
                    &[400, 422],
                ),
                (
                    "nesting inside a field",
                    "application/json",
                    nested_in_a_field,
                    &[400, 422],
                ),
                (
                    "malformed JSON",
                    "application/json",
                    truncated.clone(),
                    &[400, 422],
                ),
                ("an empty body", "application/json", Vec::new(), &[400, 422]),
                (
                    "bytes that are not UTF-8",
                    "application/json",
                    not_utf8.clone(),
                    &[400, 422],
                ),
                (
                    "JSON sent as text/plain",
                    "text/plain",
                    probe.body.as_ref().unwrap().to_string().into_bytes(),
                    &[415],
                ),
                (
                    "JSON without a content type",
                    "",
                    probe.body.as_ref().unwrap().to_string().into_bytes(),
                    &[415],
                ),
            ];
            for (case, content_type, bytes, statuses) in attacks {
                let reply = send_raw(
                    &world,
                    route.method,
                    &probe.path,
                    &key,
                    Some((content_type, bytes)),
                )
                .await;
                assert!(
                    statuses.contains(&reply.status),
                    "{}: status {}: {}",
                    what(case),
                    reply.status,
                    reply.body
                );
                assert_problem(&reply, reply.status, &world, &probe.path, &what(case));
                // The problem names what is wrong: the body itself, or, for nesting, the first
                // field that does not fit (a struct refuses `[` at once, a JSON value at the
                // parser's depth limit).
                assert!(
                    reply.field().is_some_and(|field| !field.is_empty()),
                    "{}: {}",
                    what(case),
                    reply.body
                );
                if !case.contains("nest") {
                    assert_eq!(
                        reply.field(),
                        Some("body"),
                        "{}: {}",
                        what(case),
                        reply.body
                    );
                }
                let message = reply.body["errors"][0]["message"]
                    .as_str()
                    .unwrap_or_default();
                assert!(!message.trim().is_empty(), "{}: {}", what(case), reply.body);
                // Still serving.
                send_raw(&world, "get", "/healthz", &[], None)
                    .await
                    .expect(200);
            }

            // Without a key, the body is not even read: 401 whatever it holds.
            let reply = send_raw(
                &world,
                route.method,
                &probe.path,
                &[],
                Some(("application/json", deep_arrays.clone().into_bytes())),
            )
            .await;
            assert_problem(
                &reply,
                401,
                &world,
                &probe.path,
                &what("a hostile body without a key"),
            );
        }

        assert_eq!(world.server.count("requests").await, 2);
        assert_eq!(world.server.count("usage").await, 0);
        let report = verify_audit(world.server.store()).await.unwrap();
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        world.server.stop().await;
    })
    .await;
}
