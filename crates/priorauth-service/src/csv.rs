//! Lists exported as CSV (RFC 4180) for a spreadsheet: the review queue and the
//! authorizations. A cell is quoted when it holds a comma, a quote or a line break; a cell a
//! spreadsheet would run as a formula (one starting with `=`, `+`, `-`, `@`, tab or carriage
//! return, as a member's name sent by a clinic could) is written with a leading `'`, as
//! OWASP's advice on CSV injection has it, so that it reads as text.

use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

/// A CSV export as an HTTP answer, named for saving.
pub fn answer(name: &str, body: String) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        body,
    )
        .into_response()
}

/// The CSV of `items`, one row per item, one column per `(heading, JSON pointer)`.
pub fn of_items(items: &[Value], columns: &[(&str, &str)]) -> String {
    let mut out = String::new();
    let headings: Vec<String> = columns.iter().map(|(h, _)| cell(h)).collect();
    out.push_str(&headings.join(","));
    out.push_str("\r\n");
    for item in items {
        let row: Vec<String> = columns
            .iter()
            .map(|(_, pointer)| match item.pointer(pointer) {
                None | Some(Value::Null) => String::new(),
                Some(Value::String(text)) => cell(text),
                Some(other) => cell(&other.to_string()),
            })
            .collect();
        out.push_str(&row.join(","));
        out.push_str("\r\n");
    }
    out
}

/// One cell, neutralized and quoted as it must be.
fn cell(text: &str) -> String {
    let formula = text.starts_with(['=', '+', '-', '@', '\t', '\r']);
    let text = if formula && text.parse::<f64>().is_err() {
        format!("'{text}")
    } else {
        text.to_string()
    };
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn cells_are_quoted_and_formulas_neutralized() {
        let items = [
            json!({"name": "=HYPERLINK(\"http://x\")", "n": -3, "note": "a, \"b\"\nc"}),
            json!({"name": "Ana", "n": null}),
        ];
        let csv = of_items(&items, &[("Name", "/name"), ("N", "/n"), ("Note", "/note")]);
        assert_eq!(
            csv,
            "Name,N,Note\r\n\"'=HYPERLINK(\"\"http://x\"\")\",-3,\"a, \"\"b\"\"\nc\"\r\nAna,,\r\n"
        );
        assert_eq!(cell("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(cell("-1.5"), "-1.5");
    }
}
