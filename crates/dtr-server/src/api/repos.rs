//! Repositories and their tags in the metadata database, and the registry's notifications that
//! keep the tags true: `/api/v0/repositories...` for people and scripts, and
//! `POST /internal/registry/events` for the registry (authenticated by the shared secret in
//! `/ca/api/notify-token`; nginx does not route `/internal/`).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::{Authenticated, Caller};
use super::error::{ApiError, ApiJson, ApiResult};
use super::token::{allowed_actions, Grant};
use super::{names, Api};
use dtr_core::component::Component;

/// The subject of the tokens the api signs for itself (its deletes in the registry).
const API_SUBJECT: &str = "dtr-api";

/// A repository row, as far as authorisation is concerned.
struct Repo {
    id: i64,
    public: bool,
}

async fn find(api: &Api, namespace: &str, name: &str) -> ApiResult<Option<Repo>> {
    let row = api
        .db()
        .await?
        .query_opt(
            "SELECT id, visibility = 'public' FROM repositories WHERE namespace = $1 AND name = $2",
            &[&namespace, &name],
        )
        .await?;
    Ok(row.map(|r| Repo {
        id: r.get(0),
        public: r.get(1),
    }))
}

/// The repository if the caller may see it; a private one is "not found" to others, so that
/// its existence does not leak.
async fn readable(api: &Api, caller: &Caller, namespace: &str, name: &str) -> ApiResult<Repo> {
    names::check_namespace(namespace)?;
    names::check_repository(name)?;
    match find(api, namespace, name).await? {
        Some(r) if allowed_actions(caller, namespace, Some(r.public)).contains(&"pull") => Ok(r),
        _ => Err(ApiError::not_found(
            "NO_SUCH_REPOSITORY",
            format!("no repository {namespace}/{name}"),
        )),
    }
}

/// The repository if the caller may change it (owner of the namespace or administrator).
async fn writable(api: &Api, caller: &Caller, namespace: &str, name: &str) -> ApiResult<Repo> {
    let account = caller.account()?;
    let repo = readable(api, caller, namespace, name).await?;
    if allowed_actions(caller, namespace, Some(repo.public)).contains(&"push") {
        Ok(repo)
    } else {
        Err(ApiError::forbidden(format!(
            "{} may not change {namespace}/{name}",
            account.name
        )))
    }
}

fn repo_json(r: &tokio_postgres::Row) -> Value {
    json!({
        "id": r.get::<_, i64>("id"),
        "namespace": r.get::<_, String>("namespace"),
        "name": r.get::<_, String>("name"),
        "visibility": r.get::<_, String>("visibility"),
        "shortDescription": r.get::<_, String>("short_description"),
    })
}

const REPO_COLUMNS: &str = "id, namespace, name, visibility, short_description";

async fn list(State(api): State<Arc<Api>>, caller: Caller) -> ApiResult<Json<Value>> {
    let (admin, name) = match &caller {
        Caller::Account(a) => (a.admin, a.name.clone()),
        Caller::Anonymous => (false, String::new()),
    };
    let rows = api
        .db()
        .await?
        .query(
            &format!(
                "SELECT {REPO_COLUMNS} FROM repositories
                 WHERE $1 OR visibility = 'public' OR namespace = $2 ORDER BY namespace, name"
            ),
            &[&admin, &name],
        )
        .await?;
    Ok(Json(
        json!({"repositories": rows.iter().map(repo_json).collect::<Vec<_>>()}),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct NewRepo {
    name: String,
    #[serde(default = "private")]
    visibility: String,
    #[serde(default)]
    short_description: String,
}

fn private() -> String {
    "private".into()
}

fn check_visibility(v: &str) -> ApiResult<()> {
    if v == "public" || v == "private" {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            "INVALID_VISIBILITY",
            "visibility is public or private",
        ))
    }
}

async fn create(
    State(api): State<Arc<Api>>,
    Authenticated(account): Authenticated,
    Path(namespace): Path<String>,
    ApiJson(new): ApiJson<NewRepo>,
) -> ApiResult<Response> {
    let caller = Caller::Account(account.clone());
    names::check_namespace(&namespace)?;
    names::check_repository(&new.name)?;
    check_visibility(&new.visibility)?;
    if new.short_description.len() > 140 {
        return Err(ApiError::bad_request(
            "INVALID_DESCRIPTION",
            "shortDescription: at most 140 characters",
        ));
    }
    if !allowed_actions(&caller, &namespace, None).contains(&"push") {
        return Err(ApiError::forbidden(format!(
            "{} may not create repositories in {namespace}",
            account.name
        )));
    }
    // the repository and its audit event in one statement, so one transaction: a reader (or a
    // backup) sees both or neither. On the shared client, which answers DATABASE_READ_ONLY
    // when there is no primary.
    let full = format!("{namespace}/{}", new.name);
    let detail = json!({"visibility": new.visibility});
    let row = api
        .db()
        .await?
        .query_opt(
            &format!(
                "WITH repo AS (
                   INSERT INTO repositories (namespace, name, visibility, short_description) VALUES ($1, $2, $3, $4)
                   ON CONFLICT DO NOTHING RETURNING {REPO_COLUMNS}),
                 event AS (
                   INSERT INTO events (actor, action, object, detail)
                   SELECT $5, 'repository.create', $6, $7 FROM repo)
                 SELECT {REPO_COLUMNS} FROM repo"
            ),
            &[&namespace, &new.name, &new.visibility, &new.short_description, &account.name, &full, &detail],
        )
        .await?
        .ok_or_else(|| ApiError::conflict("REPOSITORY_EXISTS", format!("{namespace}/{} exists", new.name)))?;
    Ok((StatusCode::CREATED, Json(repo_json(&row))).into_response())
}

async fn get_one(
    State(api): State<Arc<Api>>,
    caller: Caller,
    Path((namespace, name)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let repo = readable(&api, &caller, &namespace, &name).await?;
    let row = api
        .db()
        .await?
        .query_one(
            &format!("SELECT {REPO_COLUMNS} FROM repositories WHERE id = $1"),
            &[&repo.id],
        )
        .await?;
    Ok(Json(repo_json(&row)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RepoUpdate {
    visibility: Option<String>,
    short_description: Option<String>,
}

async fn update(
    State(api): State<Arc<Api>>,
    caller: Caller,
    Path((namespace, name)): Path<(String, String)>,
    ApiJson(change): ApiJson<RepoUpdate>,
) -> ApiResult<Json<Value>> {
    let repo = writable(&api, &caller, &namespace, &name).await?;
    if let Some(v) = &change.visibility {
        check_visibility(v)?;
    }
    if change
        .short_description
        .as_ref()
        .is_some_and(|d| d.len() > 140)
    {
        return Err(ApiError::bad_request(
            "INVALID_DESCRIPTION",
            "shortDescription: at most 140 characters",
        ));
    }
    let db = api.db().await?;
    let row = db
        .query_one(
            &format!(
                "UPDATE repositories SET visibility = coalesce($2, visibility),
                 short_description = coalesce($3, short_description) WHERE id = $1 RETURNING {REPO_COLUMNS}"
            ),
            &[&repo.id, &change.visibility, &change.short_description],
        )
        .await?;
    let full = format!("{namespace}/{name}");
    super::events::record(
        &db,
        caller.name(),
        "repository.update",
        &full,
        repo_json(&row),
    )
    .await?;
    Ok(Json(repo_json(&row)))
}

async fn list_tags(
    State(api): State<Arc<Api>>,
    caller: Caller,
    Path((namespace, name)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let repo = readable(&api, &caller, &namespace, &name).await?;
    let rows = api
        .db()
        .await?
        .query(
            "SELECT name, digest, media_type, size, author,
                    to_char(updated_at, 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')
             FROM tags WHERE repository_id = $1 ORDER BY name",
            &[&repo.id],
        )
        .await?;
    let tags: Vec<Value> = rows
        .iter()
        .map(|r| {
            json!({"name": r.get::<_, String>(0), "digest": r.get::<_, String>(1),
                   "mediaType": r.get::<_, String>(2), "size": r.get::<_, i64>(3),
                   "author": r.get::<_, String>(4), "updatedAt": r.get::<_, String>(5)})
        })
        .collect();
    Ok(Json(Value::Array(tags)))
}

/// Deletes the manifest a tag points to, in the registry (distribution 2.8 deletes manifests by
/// digest, with every tag on it): refused when other tags share the manifest.
async fn delete_tag(
    State(api): State<Arc<Api>>,
    caller: Caller,
    Path((namespace, name, tag)): Path<(String, String, String)>,
) -> ApiResult<StatusCode> {
    names::check_tag(&tag)?;
    let repo = writable(&api, &caller, &namespace, &name).await?;
    let db = api.db().await?;
    let row = db
        .query_opt(
            "SELECT digest FROM tags WHERE repository_id = $1 AND name = $2",
            &[&repo.id, &tag],
        )
        .await?
        .ok_or_else(|| {
            ApiError::not_found("NO_SUCH_TAG", format!("no tag {tag} in {namespace}/{name}"))
        })?;
    let digest: String = row.get(0);
    let others: Vec<String> = db
        .query(
            "SELECT name FROM tags WHERE repository_id = $1 AND digest = $2 AND name <> $3 ORDER BY name",
            &[&repo.id, &digest, &tag],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    if !others.is_empty() {
        return Err(ApiError::conflict(
            "TAG_SHARES_MANIFEST",
            format!(
                "{tag} points to the same manifest as {}: delete those first, or all together",
                others.join(", ")
            ),
        ));
    }
    writes_allowed(&api, &db).await?;
    let full = format!("{namespace}/{name}");
    registry_delete_manifest(&api, &full, &digest).await?;
    db.execute(
        "DELETE FROM tags WHERE repository_id = $1 AND digest = $2",
        &[&repo.id, &digest],
    )
    .await?;
    super::events::record(
        &db,
        caller.name(),
        "tag.delete",
        &format!("{full}:{tag}"),
        json!({"digest": digest}),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Deletes a manifest and every tag on it.
async fn delete_manifest(
    State(api): State<Arc<Api>>,
    caller: Caller,
    Path((namespace, name, digest)): Path<(String, String, String)>,
) -> ApiResult<StatusCode> {
    let hex = digest.strip_prefix("sha256:").unwrap_or_default();
    if hex.len() != 64
        || !hex
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    {
        return Err(ApiError::bad_request(
            "INVALID_DIGEST",
            format!("{digest:?} is not sha256:<64 hex>"),
        ));
    }
    let repo = writable(&api, &caller, &namespace, &name).await?;
    let db = api.db().await?;
    writes_allowed(&api, &db).await?;
    let full = format!("{namespace}/{name}");
    registry_delete_manifest(&api, &full, &digest).await?;
    let tags = db
        .execute(
            "DELETE FROM tags WHERE repository_id = $1 AND digest = $2",
            &[&repo.id, &digest],
        )
        .await?;
    super::events::record(
        &db,
        caller.name(),
        "manifest.delete",
        &full,
        json!({"digest": digest, "tags": tags}),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Deletes in the registry are writes: refused in read-only mode and while garbage collection runs.
async fn writes_allowed(api: &Api, db: &tokio_postgres::Client) -> ApiResult<()> {
    if super::settings::current(api).await?.read_only_registry {
        return Err(ApiError::conflict(
            "READ_ONLY",
            "the registry is read-only (setting readOnlyRegistry)",
        ));
    }
    if super::jobs::registry_writes_fenced(db).await? {
        return Err(ApiError::conflict(
            "GARBAGE_COLLECTION_RUNNING",
            "garbage collection is running: try again when it is done",
        ));
    }
    Ok(())
}

async fn registry_delete_manifest(api: &Api, full: &str, digest: &str) -> ApiResult<()> {
    let grant = Grant {
        kind: "repository".into(),
        name: full.into(),
        actions: vec!["*".into(), "delete".into()],
    };
    let jwt = api
        .signer
        .sign(&api.token_service, API_SUBJECT, &[grant], 30)?;
    let url = format!(
        "https://{}:5000/v2/{full}/manifests/{digest}",
        api.cfg.container(Component::Registry)
    );
    let response = api
        .http
        .delete(&url)
        .bearer_auth(jwt)
        .send()
        .await
        .map_err(|e| ApiError::dependency("the registry", e))?;
    match response.status().as_u16() {
        202 | 404 => Ok(()),
        s => Err(ApiError::unavailable(format!(
            "the registry answered {s} to deleting {full}@{digest}"
        ))),
    }
}

/// Deletes a repository: its manifests in the registry, then its metadata.
async fn delete_repo(
    State(api): State<Arc<Api>>,
    caller: Caller,
    Path((namespace, name)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let repo = writable(&api, &caller, &namespace, &name).await?;
    let db = api.db().await?;
    writes_allowed(&api, &db).await?;
    let full = format!("{namespace}/{name}");
    let digests: Vec<String> = db
        .query(
            "SELECT DISTINCT digest FROM tags WHERE repository_id = $1",
            &[&repo.id],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    for digest in &digests {
        registry_delete_manifest(&api, &full, digest).await?;
    }
    db.execute("DELETE FROM repositories WHERE id = $1", &[&repo.id])
        .await?;
    super::events::record(
        &db,
        caller.name(),
        "repository.delete",
        &full,
        json!({"manifests": digests.len()}),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The registry's notification envelope (the parts used).
#[derive(Deserialize)]
struct Envelope {
    events: Vec<RegistryEvent>,
}

#[derive(Deserialize)]
struct RegistryEvent {
    action: String,
    target: Target,
    #[serde(default)]
    actor: Actor,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Target {
    #[serde(default)]
    media_type: String,
    #[serde(default)]
    digest: String,
    #[serde(default)]
    size: i64,
    repository: String,
    #[serde(default)]
    tag: String,
}

#[derive(Deserialize, Default)]
struct Actor {
    #[serde(default)]
    name: String,
}

fn is_manifest(media_type: &str) -> bool {
    media_type.contains("manifest") || media_type.contains("image.index")
}

async fn registry_events(
    State(api): State<Arc<Api>>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<StatusCode> {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    if api.notify_token.is_empty()
        || !constant_time_eq(presented.as_bytes(), api.notify_token.as_bytes())
    {
        return Err(ApiError::unauthorized(
            "registry notifications need the notification secret",
        ));
    }
    let envelope: Envelope = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request("INVALID_JSON", format!("registry events: {e}")))?;
    let db = api.db().await?;
    for event in envelope.events {
        let t = &event.target;
        let Ok((namespace, name)) = names::split_full(&t.repository) else {
            continue; // nothing the token service would have allowed
        };
        match event.action.as_str() {
            "push" if !t.tag.is_empty() && is_manifest(&t.media_type) => {
                let repo_id: i64 = db
                    .query_one(
                        "INSERT INTO repositories (namespace, name, visibility) VALUES ($1, $2, 'private')
                         ON CONFLICT (namespace, name) DO UPDATE SET namespace = excluded.namespace RETURNING id",
                        &[&namespace, &name],
                    )
                    .await?
                    .get(0);
                // idempotent: the registry sends an event again when it did not see our
                // answer, and the tag reconcile job may have added the tag meanwhile; a tag
                // that already has this digest changes nothing and is not audited again
                let changed = db
                    .execute(
                        "INSERT INTO tags (repository_id, name, digest, media_type, size, author) VALUES ($1, $2, $3, $4, $5, $6)
                         ON CONFLICT (repository_id, name) DO UPDATE SET digest = excluded.digest,
                           media_type = excluded.media_type, size = excluded.size, author = excluded.author, updated_at = now()
                         WHERE tags.digest IS DISTINCT FROM excluded.digest",
                        &[&repo_id, &t.tag, &t.digest, &t.media_type, &t.size, &event.actor.name],
                    )
                    .await?;
                if changed == 0 {
                    continue;
                }
                let object = format!("{}:{}", t.repository, t.tag);
                super::events::record(
                    &db,
                    &event.actor.name,
                    "tag.push",
                    &object,
                    json!({"digest": t.digest}),
                )
                .await?;
            }
            "delete" if !t.digest.is_empty() => {
                db.execute(
                    "DELETE FROM tags USING repositories r WHERE tags.repository_id = r.id
                     AND r.namespace = $1 AND r.name = $2 AND tags.digest = $3",
                    &[&namespace, &name, &t.digest],
                )
                .await?;
                // deletes through the api are already in the audit, under the person's name
                if event.actor.name != API_SUBJECT {
                    super::events::record(
                        &db,
                        &event.actor.name,
                        "manifest.delete",
                        &t.repository,
                        json!({"digest": t.digest}),
                    )
                    .await?;
                }
            }
            _ => {}
        }
    }
    Ok(StatusCode::OK)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub fn routes() -> Router<Arc<Api>> {
    Router::new()
        .route("/api/v0/repositories", get(list))
        .route("/api/v0/repositories/{namespace}", post(create))
        .route(
            "/api/v0/repositories/{namespace}/{name}",
            get(get_one).patch(update).delete(delete_repo),
        )
        .route(
            "/api/v0/repositories/{namespace}/{name}/tags",
            get(list_tags),
        )
        .route(
            "/api/v0/repositories/{namespace}/{name}/tags/{tag}",
            delete(delete_tag),
        )
        .route(
            "/api/v0/repositories/{namespace}/{name}/manifests/{digest}",
            delete(delete_manifest),
        )
        .route(
            "/internal/registry/events",
            // the registry batches events: allow more than the API's usual body limit
            post(registry_events).layer(DefaultBodyLimit::max(4 * 1024 * 1024)),
        )
}
