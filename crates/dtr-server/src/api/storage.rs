//! The image storage, as the original's API and System > Storage page set it (administrators):
//! `GET`/`PUT /api/v0/admin/settings/registry/simple` (the distribution `storage` section as
//! JSON) and `GET`/`PUT /api/v0/admin/settings/registry` (the registry configuration as YAML,
//! of which the `storage` section can be changed). A new configuration is tried against the
//! store first (`storage::probe`) and the tags the metadata database knows are looked up in it:
//! when some are missing, the change is refused unless `keep_metadata` (the content was copied)
//! or `prune_metadata` (switch, and the `tagreconcile` job removes those tags) says otherwise.
//! The configuration goes to etcd (`/dtr/storage`), every replica's registry moves to it one at
//! a time (`dtr registry`), and the change is audited. `GET
//! /api/v0/admin/settings/registry/status` says which generation each replica runs.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::Admin;
use super::error::{ApiError, ApiJson, ApiResult};
use super::Api;
use crate::jobs::{self, Action};
use crate::registry::REPLICAS_PREFIX;
use crate::storage::probe;
use crate::storage::{StorageConfig, StoredStorage, KEY};

/// How many missing tags a refusal names.
const SAMPLE: usize = 10;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SimpleUpdate {
    storage: Value,
    /// The content was copied into the new store: keep every tag.
    #[serde(default)]
    keep_metadata: bool,
    /// Switch even though the new store lacks some tags' content, and remove those tags.
    #[serde(default)]
    prune_metadata: bool,
}

async fn current(api: &Api) -> ApiResult<(StoredStorage, i64)> {
    crate::storage::load(&api.etcd, false)
        .await
        .map_err(|e| ApiError::dependency("the storage configuration", e))
}

async fn get_simple(State(api): State<Arc<Api>>, _: Admin) -> ApiResult<Json<Value>> {
    let (stored, _) = current(&api).await?;
    Ok(Json(json!({"storage": stored.config.redacted_section()})))
}

/// Every replica's generation, beside the cluster's.
async fn get_status(State(api): State<Arc<Api>>, _: Admin) -> ApiResult<Json<Value>> {
    let (stored, _) = current(&api).await?;
    let mut replicas = serde_json::Map::new();
    for rid in api.replica_ids().await? {
        let key = format!("{REPLICAS_PREFIX}{rid}");
        let v = match api.etcd.get(&key, false).await {
            Ok(Some(e)) => serde_json::from_slice(&e.value).unwrap_or(Value::Null),
            Ok(None) => Value::Null,
            Err(e) => return Err(ApiError::dependency("etcd", e)),
        };
        replicas.insert(rid, v);
    }
    Ok(Json(json!({
        "generation": stored.generation,
        "storage": stored.config.describe(),
        "changedBy": stored.changed_by,
        "changedAt": stored.changed_at,
        "replicas": replicas,
    })))
}

async fn put_simple(
    State(api): State<Arc<Api>>,
    Admin(admin): Admin,
    ApiJson(update): ApiJson<SimpleUpdate>,
) -> ApiResult<Response> {
    change(
        &api,
        &admin.name,
        &update.storage,
        update.keep_metadata,
        update.prune_metadata,
    )
    .await
}

async fn get_yaml(State(api): State<Arc<Api>>, _: Admin) -> ApiResult<Response> {
    let (stored, _) = current(&api).await?;
    let doc = json!({"version": "0.1", "storage": stored.config.redacted_section()});
    let yaml = serde_yaml::to_string(&doc)
        .map_err(|e| ApiError::dependency("the storage configuration", e))?;
    Ok(([(header::CONTENT_TYPE, "application/yaml")], yaml).into_response())
}

/// The YAML document: `version` and `storage` (DTR writes the rest of the registry's
/// configuration itself); `keep_metadata`/`prune_metadata` as in the simple form.
async fn put_yaml(
    State(api): State<Arc<Api>>,
    Admin(admin): Admin,
    body: Bytes,
) -> ApiResult<Response> {
    let doc: Value = serde_yaml::from_slice(&body).map_err(|e| {
        ApiError::bad_request("INVALID_YAML", format!("the registry configuration: {e}"))
    })?;
    let Some(map) = doc.as_object() else {
        return Err(ApiError::bad_request(
            "INVALID_YAML",
            "the registry configuration must be a mapping",
        ));
    };
    let mut flags = (false, false);
    for (key, value) in map {
        match key.as_str() {
            "version" | "storage" => {}
            "keep_metadata" => flags.0 = value.as_bool().unwrap_or(false),
            "prune_metadata" => flags.1 = value.as_bool().unwrap_or(false),
            other => {
                return Err(ApiError::bad_request(
                    "INVALID_STORAGE",
                    format!("{other}: only the storage section of the registry configuration can be changed (DTR writes http, auth, notifications, log and health itself)"),
                ))
            }
        }
    }
    let storage = map
        .get("storage")
        .ok_or_else(|| ApiError::bad_request("INVALID_STORAGE", "no storage section"))?;
    change(&api, &admin.name, storage, flags.0, flags.1).await
}

/// Checks, tries and records a new storage configuration.
async fn change(
    api: &Api,
    actor: &str,
    section: &Value,
    keep_metadata: bool,
    prune_metadata: bool,
) -> ApiResult<Response> {
    let (stored, revision) = current(api).await?;
    let config = StorageConfig::from_section(section, &stored.config)
        .map_err(|e| ApiError::bad_request("INVALID_STORAGE", e.0))?;
    if config == stored.config {
        return Ok((
            StatusCode::OK,
            Json(json!({"storage": config.redacted_section(), "generation": stored.generation, "changed": false})),
        )
            .into_response());
    }
    let trust = crate::storage::trust(&api.cfg.ca_dir);
    probe::try_config(&config, &trust).await.map_err(|e| {
        ApiError::bad_request(
            "STORAGE_UNUSABLE",
            format!(
                "the new storage ({}) cannot be used: {e}; nothing was changed",
                config.describe()
            ),
        )
    })?;
    let db = api.db().await?;
    let missing =
        if keep_metadata {
            Vec::new()
        } else {
            let tags: Vec<(String, String)> = db
                .query(
                    "SELECT r.namespace || '/' || r.name, t.name FROM tags t
                 JOIN repositories r ON r.id = t.repository_id ORDER BY 1, 2",
                    &[],
                )
                .await?
                .iter()
                .map(|r| (r.get(0), r.get(1)))
                .collect();
            probe::missing_tags(&config, &trust, &tags)
                .await
                .map_err(|e| {
                    ApiError::bad_request(
                "STORAGE_UNUSABLE",
                format!("looking the tags up in the new storage failed: {e}; nothing was changed"),
            )
                })?
        };
    if !missing.is_empty() && !prune_metadata {
        let sample: Vec<String> = missing
            .iter()
            .take(SAMPLE)
            .map(|(r, t)| format!("{r}:{t}"))
            .collect();
        return Err(ApiError::conflict(
            "TAGS_NOT_IN_STORAGE",
            format!(
                "{} tag(s) point at content the new storage ({}) does not hold (e.g. {}): copy the content into it and send \"keep_metadata\": true, or send \"prune_metadata\": true to switch and remove those tags; nothing was changed",
                missing.len(),
                config.describe(),
                sample.join(", ")
            ),
        ));
    }
    let next = StoredStorage {
        generation: stored.generation + 1,
        config,
        changed_by: actor.to_string(),
        changed_at: dtr_core::timestamp(),
    };
    let doc = serde_json::to_vec(&next).expect("serializable");
    if !api
        .etcd
        .put_if(KEY, revision, &doc)
        .await
        .map_err(|e| ApiError::dependency("etcd", e))?
    {
        return Err(ApiError::conflict(
            "CONCURRENT_CHANGE",
            "the storage configuration changed meanwhile: read it again and retry",
        ));
    }
    let job = if missing.is_empty() {
        None
    } else {
        let p = Action::TagReconcile
            .check_parameters(None)
            .map_err(|e| ApiError::bad_request("INVALID_JOB", e))?;
        Some(
            jobs::enqueue(&*db, Action::TagReconcile, &p, actor)
                .await?
                .id,
        )
    };
    super::events::record(
        &db,
        actor,
        "storage.update",
        "storage",
        json!({
            "from": stored.config.describe(),
            "to": next.config.describe(),
            "generation": next.generation,
            "keepMetadata": keep_metadata,
            "missingTags": missing.len(),
            "reconcileJob": job,
        }),
    )
    .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({
            "storage": next.config.redacted_section(),
            "generation": next.generation,
            "changed": true,
            "missingTags": missing.len(),
            "reconcileJob": job,
        })),
    )
        .into_response())
}

pub fn routes() -> Router<Arc<Api>> {
    Router::new()
        .route(
            "/api/v0/admin/settings/registry/simple",
            get(get_simple).put(put_simple),
        )
        .route(
            "/api/v0/admin/settings/registry",
            get(get_yaml).put(put_yaml),
        )
        .route("/api/v0/admin/settings/registry/status", get(get_status))
}
