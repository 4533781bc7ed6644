//! SMART Backend Services for the FHIR endpoints (HRex, on which DTR and PAS rest): the
//! discovery document at `/fhir/.well-known/smart-configuration` and the token endpoint
//! `POST /oauth/token`, where a registered client trades a signed assertion
//! (`private_key_jwt`) for an access token (`trust.rs`). Errors are OAuth 2.0's.

use axum::Json;
use axum::extract::rejection::FormRejection;
use axum::extract::{Form, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::trust::{self, Refused};
use crate::web::AppState;

const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// The token endpoint's path.
pub const TOKEN_PATH: &str = "/oauth/token";

#[utoipa::path(get, path = "/fhir/.well-known/smart-configuration", operation_id = "smart_configuration", tag = "FHIR", summary = "SMART Backend Services discovery: the token endpoint and what it accepts", security(()),
    responses((status = 200, description = "the SMART configuration", body = crate::answers::SmartConfiguration), (status = 431, description = "request headers too large")))]
pub(crate) async fn configuration(headers: HeaderMap) -> Json<Value> {
    let token = trust::own_urls(&headers, &[TOKEN_PATH])
        .into_iter()
        .find(|u| forwarded_https(&headers) == u.starts_with("https:"))
        .unwrap_or_else(|| TOKEN_PATH.to_string());
    Json(json!({
        "token_endpoint": token,
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": ["private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": ["RS384", "ES384"],
        "scopes_supported": ["system/*.read", "system/*.rs", "system/Claim.write", "system/Claim.c", "system/Questionnaire.read", "system/Subscription.write", "system/*.*"],
        "capabilities": ["client-confidential-asymmetric"],
    }))
}

fn forwarded_https(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|h| h.to_str().ok())
        == Some("https")
}

/// A token request (RFC 6749 §4.4 with RFC 7523 client authentication).
#[derive(Debug, Deserialize)]
pub(crate) struct TokenRequest {
    grant_type: Option<String>,
    client_assertion_type: Option<String>,
    client_assertion: Option<String>,
    scope: Option<String>,
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        Json(json!({"error": error, "error_description": description})),
    )
        .into_response()
}

#[utoipa::path(post, path = "/oauth/token", operation_id = "smart_token", tag = "FHIR", summary = "SMART Backend Services token endpoint: a signed client assertion for an access token", security(()),
    request_body(content = String, content_type = "application/x-www-form-urlencoded", description = "grant_type=client_credentials, client_assertion_type, client_assertion, scope"),
    responses((status = 200, description = "an access token (bearer, 300 s)", body = crate::answers::AccessToken), (status = 400, description = "an OAuth error (`invalid_request`, `unsupported_grant_type`, `invalid_scope`)", body = crate::answers::OAuthError), (status = 401, description = "`invalid_client`", body = crate::answers::OAuthError), (status = 503, description = "`temporarily_unavailable`", body = crate::answers::OAuthError)))]
pub(crate) async fn token(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<TokenRequest>, FormRejection>,
) -> Response {
    let Ok(Form(request)) = form else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the body must be application/x-www-form-urlencoded",
        );
    };
    if request.grant_type.as_deref() != Some("client_credentials") {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "grant_type must be client_credentials",
        );
    }
    let (Some(ASSERTION_TYPE), Some(assertion)) = (
        request.client_assertion_type.as_deref(),
        request.client_assertion.as_deref(),
    ) else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "give client_assertion_type urn:ietf:params:oauth:client-assertion-type:jwt-bearer and a client_assertion",
        );
    };
    let audiences = trust::own_urls(&headers, &[TOKEN_PATH]);
    let scope = request.scope.unwrap_or_default();
    match trust::issue(&state.service.store, assertion, &scope, &audiences).await {
        Ok(issued) => Json(json!({
            "access_token": issued.access_token,
            "token_type": "bearer",
            "expires_in": issued.expires_in,
            "scope": issued.scope,
        }))
        .into_response(),
        Err(Refused::Invalid(why)) => oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", &why),
        Err(Refused::Scope(why)) => oauth_error(StatusCode::BAD_REQUEST, "invalid_scope", &why),
        Err(Refused::Store(error)) => {
            eprintln!("token endpoint: {error}");
            oauth_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                "the records could not be read; try again",
            )
        }
    }
}
