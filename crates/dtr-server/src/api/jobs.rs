//! Jobs (administrators only): `POST /api/v0/jobs` queues one (`{"action": "gc"}`, with
//! optional `"parameters"`), `GET /api/v0/jobs` lists them (`?action=`, `?status=`, `?limit=`),
//! `GET /api/v0/jobs/{id}` shows one and `GET /api/v0/jobs/{id}/logs` its log lines
//! (`?after=<lineNum>`, `?limit=`). The jobrunners run them (src/roles/jobs.rs, docs/jobs.md).

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::{Admin, Caller};
use super::error::{ApiError, ApiJson, ApiResult};
use super::Api;
use crate::jobs::{self, Action, Status};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewJob {
    action: String,
    #[serde(default)]
    parameters: Option<Value>,
}

fn unknown_action(action: &str) -> ApiError {
    let known: Vec<&str> = Action::ALL.iter().map(|a| a.name()).collect();
    ApiError::bad_request(
        "UNKNOWN_ACTION",
        format!(
            "unknown job action {action:?} (known: {})",
            known.join(", ")
        ),
    )
}

/// Query strings are parsed here rather than by axum's `Query`, whose rejections are plain text.
fn query<T: DeserializeOwned>(raw: Option<String>) -> ApiResult<T> {
    let raw = raw.unwrap_or_default();
    serde_json::from_value(Value::Object(
        url::form_urlencoded::parse(raw.as_bytes())
            .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
            .collect(),
    ))
    .map_err(|e| ApiError::bad_request("INVALID_QUERY", format!("query string: {e}")))
}

fn limit(raw: Option<&str>, default: i64, max: i64) -> ApiResult<i64> {
    match raw {
        None => Ok(default),
        Some(s) => s
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| ApiError::bad_request("INVALID_LIMIT", format!("limit: 1 to {max}"))),
    }
}

/// A job id from the path; anything but a positive number is no job.
fn job_id(raw: &str) -> ApiResult<i64> {
    raw.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| no_such_job(raw))
}

fn no_such_job(id: &str) -> ApiError {
    ApiError::not_found("NO_SUCH_JOB", format!("no job {id:?}"))
}

async fn create(
    State(api): State<Arc<Api>>,
    Admin(admin): Admin,
    ApiJson(new): ApiJson<NewJob>,
) -> ApiResult<Response> {
    let action = Action::parse(&new.action).ok_or_else(|| unknown_action(&new.action))?;
    let parameters = action
        .check_parameters(new.parameters)
        .map_err(|e| ApiError::bad_request("INVALID_PARAMETERS", e))?;
    let db = api.db().await?;
    let job = jobs::enqueue(&*db, action, &parameters, &admin.name).await?;
    super::events::record(
        &db,
        &admin.name,
        "job.create",
        &format!("job:{}", job.id),
        json!({"action": job.action, "parameters": job.parameters}),
    )
    .await?;
    Ok((StatusCode::ACCEPTED, Json(job)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    action: Option<String>,
    status: Option<String>,
    limit: Option<String>,
}

async fn list(
    State(api): State<Arc<Api>>,
    caller: Caller,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    caller.require_admin()?;
    let q: ListQuery = query(raw)?;
    let action = match q.action.as_deref() {
        None | Some("") => None,
        Some(a) => Some(Action::parse(a).ok_or_else(|| unknown_action(a))?),
    };
    let status = match q.status.as_deref() {
        None | Some("") => None,
        Some(s) => Some(Status::parse(s).ok_or_else(|| {
            ApiError::bad_request(
                "INVALID_STATUS",
                format!("unknown status {s:?} (waiting, running, done, failed)"),
            )
        })?),
    };
    let limit = limit(q.limit.as_deref(), 100, 1000)?;
    let jobs = jobs::list(&*api.db().await?, action, status, limit).await?;
    Ok(Json(json!({"jobs": jobs})))
}

async fn show(
    State(api): State<Arc<Api>>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<jobs::Job>> {
    caller.require_admin()?;
    let n = job_id(&id)?;
    let job = jobs::get(&*api.db().await?, n)
        .await?
        .ok_or_else(|| no_such_job(&id))?;
    Ok(Json(job))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LogsQuery {
    after: Option<String>,
    limit: Option<String>,
}

async fn logs(
    State(api): State<Arc<Api>>,
    caller: Caller,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    caller.require_admin()?;
    let n = job_id(&id)?;
    let q: LogsQuery = query(raw)?;
    let after = match q.after.as_deref() {
        None => 0,
        Some(s) => s.parse::<i64>().ok().filter(|a| *a >= 0).ok_or_else(|| {
            ApiError::bad_request("INVALID_QUERY", "after: a lineNum (0 or more)")
        })?,
    };
    let limit = limit(q.limit.as_deref(), 1000, 10000)?;
    let db = api.db().await?;
    let job = jobs::get(&*db, n).await?.ok_or_else(|| no_such_job(&id))?;
    let lines = jobs::logs(&*db, n, after, limit).await?;
    Ok(Json(
        json!({"id": job.id, "status": job.status, "logs": lines}),
    ))
}

pub fn routes() -> Router<Arc<Api>> {
    Router::new()
        .route("/api/v0/jobs", get(list).post(create))
        .route("/api/v0/jobs/{id}", get(show))
        .route("/api/v0/jobs/{id}/logs", get(logs))
}

/// True while a garbage collection runs: the token service then grants no write. Called inside
/// the transaction that holds the `write_token_horizon` row lock (see `token::fence_writes`).
pub async fn registry_writes_fenced(
    db: &impl tokio_postgres::GenericClient,
) -> super::error::ApiResult<bool> {
    Ok(jobs::writes_fenced(db).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings_are_checked_with_json_errors() {
        let q: ListQuery = query(Some("action=gc&status=done&limit=5".into())).unwrap();
        assert_eq!(q.action.as_deref(), Some("gc"));
        assert_eq!(q.status.as_deref(), Some("done"));
        assert_eq!(limit(q.limit.as_deref(), 100, 1000).unwrap(), 5);
        let e = query::<ListQuery>(Some("bogus=1".into())).err().unwrap();
        assert_eq!(
            (e.status, e.code),
            (StatusCode::BAD_REQUEST, "INVALID_QUERY")
        );
        let q: ListQuery = query(None).unwrap();
        assert!(q.action.is_none());
        for bad in ["0", "-1", "1001", "x"] {
            assert_eq!(
                limit(Some(bad), 100, 1000).unwrap_err().code,
                "INVALID_LIMIT"
            );
        }
    }

    #[test]
    fn job_ids_and_actions() {
        assert_eq!(job_id("42").unwrap(), 42);
        for bad in ["0", "-3", "x", "../1", ""] {
            let e = job_id(bad).unwrap_err();
            assert_eq!((e.status, e.code), (StatusCode::NOT_FOUND, "NO_SUCH_JOB"));
        }
        let e = unknown_action("nope");
        assert_eq!(
            (e.status, e.code),
            (StatusCode::BAD_REQUEST, "UNKNOWN_ACTION")
        );
        assert!(
            e.message.contains("gc, metadatastoremigration"),
            "{}",
            e.message
        );
        let body: std::result::Result<NewJob, _> =
            serde_json::from_str(r#"{"action":"gc","extra":1}"#);
        assert!(body.is_err(), "unknown fields are refused");
    }
}
