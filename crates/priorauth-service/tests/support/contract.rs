//! The OpenAPI document as a contract: every answer any HTTP test receives through the
//! harness is checked against the schema the document gives for its route, method and
//! status, so the document cannot drift from what the service sends. A success status the
//! document does not list for the operation is a failure; an error status it does not list
//! must still be a problem+json (or, on the FHIR routes, an OperationOutcome).

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use serde_json::{Value, json};

static DOCUMENT: OnceLock<Value> = OnceLock::new();
/// Compiled validators by `components.schemas` pointer or response location.
static VALIDATORS: OnceLock<Mutex<HashMap<String, std::sync::Arc<jsonschema::Validator>>>> =
    OnceLock::new();

fn document() -> &'static Value {
    DOCUMENT.get_or_init(priorauth_service::ops::document)
}

/// The document's template for a concrete path (`/v1/requests/req_1` → `/v1/requests/{id}`).
fn template(path: &str) -> Option<&'static str> {
    let path = path.split('?').next().unwrap_or(path);
    let segments: Vec<&str> = path.split('/').collect();
    let paths = document()["paths"].as_object()?;
    // A literal segment outranks a parameter (`$next-question` before `{id}`).
    let mut best: Option<(&'static str, usize)> = None;
    for template in paths.keys() {
        let parts: Vec<&str> = template.split('/').collect();
        if parts.len() != segments.len() {
            continue;
        }
        let mut literal = 0;
        let matches = parts.iter().zip(&segments).all(|(t, s)| {
            if t.starts_with('{') {
                !s.is_empty()
            } else {
                literal += 1;
                t == s
            }
        });
        if matches && best.is_none_or(|(_, l)| literal > l) {
            best = Some((template.as_str(), literal));
        }
    }
    best.map(|(t, _)| t)
}

/// Validates `body` against `schema` (which may `$ref` the document's components).
fn check(location: &str, schema: &Value, body: &Value) -> Result<(), String> {
    let validators = VALIDATORS.get_or_init(Default::default);
    let validator = {
        let mut map = validators.lock().unwrap_or_else(|p| p.into_inner());
        match map.get(location) {
            Some(v) => v.clone(),
            None => {
                let mut root = schema.clone();
                if let Some(object) = root.as_object_mut() {
                    object.insert("components".into(), document()["components"].clone());
                }
                let compiled = jsonschema::draft202012::options()
                    .should_validate_formats(true)
                    .build(&root)
                    .map_err(|e| format!("{location}: the schema does not compile: {e}"))?;
                let compiled = std::sync::Arc::new(compiled);
                map.insert(location.to_string(), compiled.clone());
                compiled
            }
        }
    };
    let errors: Vec<String> = validator
        .iter_errors(body)
        .take(5)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(format!("{location}: {}", errors.join("; ")))
    }
}

/// Checks one answer against the document; the problem, when there is one.
pub fn verify(
    method: &str,
    path: &str,
    status: u16,
    content_type: Option<&str>,
    body: &Value,
) -> Result<(), String> {
    let Some(template) = template(path) else {
        // Not an API route (the console's files, an unknown path's 404).
        return Ok(());
    };
    let method = method.to_ascii_lowercase();
    let Some(operation) = document()["paths"][template].get(&method) else {
        return Ok(()); // 405: the method is not routed
    };
    let content_type = content_type
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim();
    let code = status.to_string();
    let Some(response) = operation["responses"].get(&code) else {
        if status < 400 {
            return Err(format!(
                "{} {template}: answered {status}, which the document does not list",
                method.to_uppercase()
            ));
        }
        // An undocumented error is still of the error shape.
        let schema = if template.starts_with("/fhir") {
            json!({"$ref": "#/components/schemas/FhirResource"})
        } else if content_type == "application/problem+json" {
            json!({"$ref": "#/components/schemas/Problem"})
        } else {
            return Ok(()); // a bare error from below the API (413, 431, a closed connection)
        };
        return check(&format!("error {template}"), &schema, body);
    };
    let Some(content) = response["content"].as_object() else {
        return Ok(()); // no body (204)
    };
    let Some((declared, media)) = content
        .iter()
        .find(|(declared, _)| declared.as_str() == content_type)
        .or_else(|| content.iter().next())
    else {
        return Ok(());
    };
    if declared != content_type {
        return Err(format!(
            "{} {template} {status}: content type `{content_type}`, the document says `{declared}`",
            method.to_uppercase()
        ));
    }
    if !declared.contains("json") {
        return Ok(());
    }
    check(
        &format!("{} {template} {status}", method.to_uppercase()),
        &media["schema"],
        body,
    )
}

/// Every case in `tests/cases` is valid against the `Case` schema of the document.
pub fn verify_case(case: &Value) -> Result<(), String> {
    check("case", &json!({"$ref": "#/components/schemas/Case"}), case)
}

/// Every example the document gives is valid against the schema it illustrates.
pub fn verify_examples() -> Result<usize, String> {
    let schemas = document()["components"]["schemas"]
        .as_object()
        .ok_or("no schemas")?;
    let mut checked = 0;
    for (name, schema) in schemas {
        for example in schema["examples"].as_array().into_iter().flatten() {
            check(
                &format!("example of {name}"),
                &json!({"$ref": format!("#/components/schemas/{name}")}),
                example,
            )?;
            checked += 1;
        }
    }
    Ok(checked)
}
