//! `GET /v1/reports/um`: the UM program's record for a period (`crate::lifecycle::report`), in
//! the format asked.

use axum::Json;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};

use crate::keys::Caller;
use crate::lifecycle::report::{self, Format, UmQuery};
use crate::web::{AppError, AppState};

#[utoipa::path(get, path = "/v1/reports/um", operation_id = "um_report", tag = "Reports", summary = "The UM program's record for a period: outcomes, turnaround, timeliness, appeals and the CMS-0057-F metrics (reviewers, admins)",
    params(("from" = String, Query, description = "first day (UTC), YYYY-MM-DD"),
        ("to" = String, Query, description = "last day (UTC), inclusive"),
        ("format" = Option<String>, Query, description = "`json` (default), `markdown`, `csv` or `html`")),
    responses((status = 200, description = "the report", content((crate::answers::UmReport = "application/json"), (String = "text/markdown"), (String = "text/csv"), (String = "text/html"))),
        (status = 401, description = "no API key, or not a valid one", body = crate::answers::Problem, content_type = "application/problem+json"),
        (status = 403, description = "not a reviewer or an admin", body = crate::answers::Problem, content_type = "application/problem+json"),
        (status = 422, description = "a bad parameter, named", body = crate::answers::Problem, content_type = "application/problem+json")))]
pub(crate) async fn um(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<UmQuery>,
) -> Result<Response, AppError> {
    let format = Format::parse(query.format.as_deref())?;
    let report = report::um(&state.service, &caller, &query).await?;
    let text = |content_type: &'static str, body: String| {
        ([(header::CONTENT_TYPE, content_type)], body).into_response()
    };
    Ok(match format {
        Format::Json => Json(report).into_response(),
        Format::Markdown => text("text/markdown; charset=utf-8", report.to_markdown()),
        Format::Csv => text("text/csv; charset=utf-8", report.to_csv()),
        Format::Html => text("text/html; charset=utf-8", report.to_html()),
    })
}
