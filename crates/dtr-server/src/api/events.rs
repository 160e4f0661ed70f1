//! The audit of events: who did what to which object, in the metadata database. Written by every
//! endpoint that changes something and by the registry's notifications; read by `GET /api/v0/events`.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::Caller;
use super::error::{ApiError, ApiResult};
use super::Api;

pub async fn record(
    db: &tokio_postgres::Client,
    actor: &str,
    action: &str,
    object: &str,
    detail: Value,
) -> ApiResult<()> {
    record_in(db, actor, action, object, detail).await
}

/// `record` on any client or transaction (part of the change it audits).
pub async fn record_in(
    db: &impl tokio_postgres::GenericClient,
    actor: &str,
    action: &str,
    object: &str,
    detail: Value,
) -> ApiResult<()> {
    db.execute(
        "INSERT INTO events (actor, action, object, detail) VALUES ($1, $2, $3, $4)",
        &[&actor, &action, &object, &detail],
    )
    .await?;
    Ok(())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventsQuery {
    #[serde(default = "default_limit")]
    limit: i64,
    /// Only events whose object starts with this (e.g. `admin/app`).
    #[serde(default)]
    object: Option<String>,
}

fn default_limit() -> i64 {
    100
}

/// Administrators see every event; other accounts the events of their own namespace and their own acts.
async fn list(
    State(api): State<Arc<Api>>,
    caller: Caller,
    Query(q): Query<EventsQuery>,
) -> ApiResult<Json<Value>> {
    let account = caller.account()?;
    if !(1..=1000).contains(&q.limit) {
        return Err(ApiError::bad_request("INVALID_LIMIT", "limit: 1 to 1000"));
    }
    let prefix = q.object.unwrap_or_default();
    let own = format!("{}/", account.name);
    let rows = api
        .db()
        .await?
        .query(
            "SELECT id, to_char(at, 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), actor, action, object, detail
             FROM events
             WHERE starts_with(object, $1) AND ($2 OR actor = $3 OR starts_with(object, $4))
             ORDER BY id DESC LIMIT $5",
            &[&prefix, &account.admin, &account.name, &own, &q.limit],
        )
        .await?;
    let events: Vec<Value> = rows
        .iter()
        .map(|r| {
            json!({"id": r.get::<_, i64>(0), "at": r.get::<_, String>(1), "actor": r.get::<_, String>(2),
                   "action": r.get::<_, String>(3), "object": r.get::<_, String>(4), "detail": r.get::<_, Value>(5)})
        })
        .collect();
    Ok(Json(json!({"events": events})))
}

pub fn routes() -> Router<Arc<Api>> {
    Router::new().route("/api/v0/events", get(list))
}
