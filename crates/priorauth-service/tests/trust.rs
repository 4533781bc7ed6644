//! Trust as an EHR's systems bring it: a SMART Backend Services client trades a signed
//! assertion for a scoped access token and calls the FHIR endpoints with it, and a CDS Hooks
//! client signs each hook call. Every way a JWT can be wrong is refused. On SQLite and
//! PostgreSQL.

// Test code: a failed unwrap is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use priorauth_service::keys::Role;
use priorauth_service::trust;
use ring::signature::{ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use serde_json::{Value, json};
use support::{Server, for_each_backend};

/// A client's ES384 key: what it signs with, and its public JWK.
struct ClientKey {
    encoding: EncodingKey,
    jwk: Value,
    kid: String,
}

fn client_key(kid: &str) -> ClientKey {
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P384_SHA384_FIXED_SIGNING, &rng).unwrap();
    let pair =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P384_SHA384_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap();
    // An uncompressed point: 0x04, then x and y of 48 bytes each.
    let point = pair.public_key().as_ref();
    let jwk = json!({"kty": "EC", "crv": "P-384", "kid": kid, "use": "sig", "alg": "ES384",
        "x": URL_SAFE_NO_PAD.encode(&point[1..49]), "y": URL_SAFE_NO_PAD.encode(&point[49..97])});
    ClientKey {
        encoding: EncodingKey::from_ec_der(pkcs8.as_ref()),
        jwk,
        kid: kid.to_string(),
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn sign(key: &ClientKey, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::ES384);
    header.kid = Some(key.kid.clone());
    jsonwebtoken::encode(&header, claims, &key.encoding).unwrap()
}

fn claims(iss: &str, aud: &str, lifetime: i64, jti: &str) -> Value {
    json!({"iss": iss, "sub": iss, "aud": aud, "exp": now() + lifetime, "iat": now(), "jti": jti})
}

async fn register(server: &Server, id: &str, key: &ClientKey) {
    let jwks = json!({"keys": [key.jwk]}).to_string();
    trust::register(
        server.store(),
        id,
        "clinic-a",
        Role::Submitter,
        "Clinic A EHR",
        &jwks,
    )
    .await
    .unwrap();
}

/// Asks the token endpoint; answers (status, body).
async fn token(server: &Server, assertion: &str, scope: &str) -> (u16, Value) {
    let response = server
        .client
        .post(format!("{}/oauth/token", server.base))
        .form(&[
            ("grant_type", "client_credentials"),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", assertion),
            ("scope", scope),
        ])
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn subscription() -> Value {
    json!({"resourceType": "Subscription", "status": "requested", "reason": "PAS updates",
        "criteria": "http://hl7.org/fhir/us/davinci-pas/SubscriptionTopic/PASSubscriptionTopic",
        "channel": {"type": "rest-hook", "endpoint": "http://127.0.0.1:9/notify", "payload": "application/fhir+json"}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_smart_backend_client_gets_a_scoped_token_and_nothing_else_does() {
    for_each_backend(|url| async move {
        let server = Server::start(&url).await;
        let key = client_key("ehr-key-1");
        register(&server, "ehr-backend", &key).await;

        let discovery = server
            .get("/fhir/.well-known/smart-configuration", "")
            .await;
        assert_eq!(discovery.status, 200, "{}", discovery.body);
        let endpoint = discovery.body["token_endpoint"]
            .as_str()
            .unwrap()
            .to_string();
        assert_eq!(endpoint, format!("{}/oauth/token", server.base));
        assert_eq!(
            discovery.body["token_endpoint_auth_methods_supported"],
            json!(["private_key_jwt"])
        );

        // A write scope: the token calls the FHIR endpoints as the client's organization.
        let (status, issued) = token(
            &server,
            &sign(&key, &claims("ehr-backend", &endpoint, 240, "j-1")),
            "system/*.read system/Subscription.write launch",
        )
        .await;
        assert_eq!(status, 200, "{issued}");
        assert_eq!(issued["token_type"], "bearer");
        assert_eq!(issued["expires_in"], 300);
        assert_eq!(
            issued["scope"], "system/*.read system/Subscription.write",
            "only system scopes are granted"
        );
        let access = issued["access_token"].as_str().unwrap().to_string();
        let created = server
            .post("/fhir/Subscription", &access, &subscription())
            .await;
        assert_eq!(created.status, 201, "{}", created.body);
        let id = created.body["id"].as_str().unwrap().to_string();
        assert_eq!(
            server
                .get(&format!("/fhir/Subscription/{id}"), &access)
                .await
                .status,
            200
        );

        // A read-only token reads, and is refused a write.
        let (_, reader) = token(
            &server,
            &sign(&key, &claims("ehr-backend", &endpoint, 240, "j-2")),
            "system/*.read",
        )
        .await;
        let reader = reader["access_token"].as_str().unwrap().to_string();
        assert_eq!(
            server
                .get(&format!("/fhir/Subscription/{id}"), &reader)
                .await
                .status,
            200
        );
        let refused = server
            .post("/fhir/Subscription", &reader, &subscription())
            .await;
        assert_eq!(refused.status, 403, "{}", refused.body);
        assert_eq!(refused.body["resourceType"], "OperationOutcome");

        // Every wrong assertion is `invalid_client`, and none gets a token.
        let other = client_key("ehr-key-1");
        let mut hs256 = Header::new(Algorithm::HS256);
        hs256.kid = Some("ehr-key-1".into());
        let symmetric = jsonwebtoken::encode(
            &hs256,
            &claims("ehr-backend", &endpoint, 240, "j-9"),
            &EncodingKey::from_secret(b"guess"),
        )
        .unwrap();
        let mut not_sub = claims("ehr-backend", &endpoint, 240, "j-8");
        not_sub["sub"] = json!("someone-else");
        let mut no_jti = claims("ehr-backend", &endpoint, 240, "x");
        no_jti.as_object_mut().unwrap().remove("jti");
        for (why, assertion) in [
            (
                "replayed",
                sign(&key, &claims("ehr-backend", &endpoint, 240, "j-1")),
            ),
            (
                "another audience",
                sign(
                    &key,
                    &claims(
                        "ehr-backend",
                        "https://elsewhere.example/oauth/token",
                        240,
                        "j-3",
                    ),
                ),
            ),
            (
                "expired",
                sign(&key, &claims("ehr-backend", &endpoint, -120, "j-4")),
            ),
            (
                "an hour to live",
                sign(&key, &claims("ehr-backend", &endpoint, 3600, "j-5")),
            ),
            (
                "not registered",
                sign(&key, &claims("stranger", &endpoint, 240, "j-6")),
            ),
            (
                "another key",
                sign(&other, &claims("ehr-backend", &endpoint, 240, "j-7")),
            ),
            ("symmetric", symmetric),
            ("sub is not iss", sign(&key, &not_sub)),
            ("no jti", sign(&key, &no_jti)),
            ("not a JWT", "abc.def.ghi".into()),
        ] {
            let (status, body) = token(&server, &assertion, "system/*.read").await;
            assert_eq!(
                (status, body["error"].as_str()),
                (401, Some("invalid_client")),
                "{why}: {body}"
            );
        }
        let (status, body) = token(
            &server,
            &sign(&key, &claims("ehr-backend", &endpoint, 240, "j-10")),
            "patient/*.read",
        )
        .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_scope")),
            "{body}"
        );
        let wrong_grant = server
            .client
            .post(&endpoint)
            .form(&[("grant_type", "password")])
            .send()
            .await
            .unwrap();
        assert_eq!(wrong_grant.status(), 400);

        // Revoked: its tokens are refused from the next call on.
        assert!(trust::revoke(server.store(), "ehr-backend").await.unwrap());
        assert_eq!(
            server
                .get(&format!("/fhir/Subscription/{id}"), &access)
                .await
                .status,
            401
        );
        let (status, _) = token(
            &server,
            &sign(&key, &claims("ehr-backend", &endpoint, 240, "j-11")),
            "system/*.read",
        )
        .await;
        assert_eq!(status, 401);
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cds_hooks_client_signs_each_call() {
    for_each_backend(|url| async move {
        let server = Server::start(&url).await;
        let key = client_key("cds-key");
        register(&server, "https://ehr.example.org", &key).await;
        let service = format!("{}/cds-services/order-sign-crd", server.base);
        let hook = json!({"hook": "order-sign", "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
            "context": {"userId": "Practitioner/doc", "patientId": "pat", "draftOrders": {"resourceType": "Bundle", "type": "collection", "entry": []}},
            "prefetch": {"coverage": {"resourceType": "Bundle", "type": "searchset"}}});
        let jwt = |aud: &str, jti: &str, signer: &ClientKey| {
            let mut c = claims("https://ehr.example.org", aud, 120, jti);
            c.as_object_mut().unwrap().remove("sub");
            sign(signer, &c)
        };
        let signed = jwt(&service, "h-1", &key);
        let answer = server.post("/cds-services/order-sign-crd", &signed, &hook).await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        // Each JWT once; the audience is this service; the key is the client's.
        assert_eq!(server.post("/cds-services/order-sign-crd", &signed, &hook).await.status, 401, "replayed");
        let elsewhere = jwt(&format!("{}/cds-services/order-select-crd", server.base), "h-2", &key);
        assert_eq!(server.post("/cds-services/order-sign-crd", &elsewhere, &hook).await.status, 401, "another service's audience");
        let forged = jwt(&service, "h-3", &client_key("cds-key"));
        assert_eq!(server.post("/cds-services/order-sign-crd", &forged, &hook).await.status, 401, "another key");
        // The discovery endpoint as the audience, as earlier CDS Hooks drafts had it.
        let base_audience = jwt(&format!("{}/cds-services", server.base), "h-4", &key);
        assert_eq!(server.post("/cds-services/order-sign-crd", &base_audience, &hook).await.status, 200);
        // A hook JWT is not a key anywhere else.
        let on_api = jwt(&service, "h-5", &key);
        assert_eq!(server.get("/v1/plans", &on_api).await.status, 401);
        server.stop().await;
    })
    .await;
}
