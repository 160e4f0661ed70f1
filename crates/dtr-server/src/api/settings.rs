//! Cluster settings, one JSON document in etcd (`/dtr/settings`), shared by every replica's api:
//! `GET /api/v0/meta/settings` and `POST /api/v0/meta/settings` (administrators; a partial
//! document changes only the fields it names).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use dtr_core::options::LogLevel;

use super::auth::{Admin, Caller};
use super::error::{ApiError, ApiJson, ApiResult};
use super::Api;

const KEY: &str = "/dtr/settings";

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct Settings {
    /// A push to a repository that does not exist creates it (private), in the pusher's own
    /// namespace or, for administrators, anywhere.
    pub create_repository_on_push: bool,
    /// Maintenance mode: the token service grants no push or delete.
    pub read_only_registry: bool,
    /// Lifetime of the registry tokens the api issues.
    pub token_lifetime_seconds: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            create_repository_on_push: true,
            read_only_registry: false,
            token_lifetime_seconds: 300,
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SettingsUpdate {
    create_repository_on_push: Option<bool>,
    read_only_registry: Option<bool>,
    token_lifetime_seconds: Option<u32>,
}

/// How old the settings the token service uses may be: a change through another replica's
/// api takes effect here within this.
const FRESH: Duration = Duration::from_secs(1);

/// The settings as etcd holds them (defaults for anything never set), read through any member
/// that answers. `serializable`: without the quorum (the request path); otherwise linearizable
/// (what an administrator reads and changes).
async fn read(api: &Api, serializable: bool) -> ApiResult<Settings> {
    let entry = api
        .etcd
        .get(KEY, serializable)
        .await
        .map_err(|e| ApiError::dependency("the settings", e))?;
    let Some(entry) = entry else {
        return Ok(Settings::default());
    };
    serde_json::from_slice(&entry.value).map_err(|e| ApiError::dependency("the settings", e))
}

/// The current settings, read linearizably: for the settings endpoints.
pub async fn load(api: &Api) -> ApiResult<Settings> {
    let settings = read(api, false).await?;
    remember(api, &settings);
    Ok(settings)
}

fn remember(api: &Api, settings: &Settings) {
    *api.settings.lock().unwrap_or_else(|e| e.into_inner()) =
        Some((settings.clone(), Instant::now()));
}

/// The settings for the request path (every token, a delete): at most [`FRESH`] old, read
/// without the quorum from any member; when no member answers, the last ones read, so that
/// pulls go on while this replica's etcd restarts or the cluster has no quorum.
pub async fn current(api: &Api) -> ApiResult<Settings> {
    let cached = api
        .settings
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    if let Some((settings, at)) = &cached {
        if at.elapsed() < FRESH {
            return Ok(settings.clone());
        }
    }
    match read(api, true).await {
        Ok(settings) => {
            remember(api, &settings);
            Ok(settings)
        }
        Err(e) => match cached {
            Some((settings, at)) => {
                api.log(
                    LogLevel::Warn,
                    format!(
                        "{}; using the settings read {} s ago",
                        e.message,
                        at.elapsed().as_secs()
                    ),
                );
                Ok(settings)
            }
            None => Err(e),
        },
    }
}

async fn get_settings(State(api): State<Arc<Api>>, caller: Caller) -> ApiResult<Json<Value>> {
    caller.require_admin()?;
    Ok(Json(view(&load(&api).await?)))
}

/// The settings, and beside them (read-only: `dtr reconfigure` changes them) the deployment's
/// as this api was started with: the name clients use, this replica's HTTPS port, the log
/// level and the proxies.
fn view(settings: &Settings) -> Value {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let mut doc = serde_json::to_value(settings).expect("serializable");
    let host = env("DTR_EXTERNAL_URL").map(|u| u.trim_start_matches("https://").to_string());
    for (key, value) in [
        ("dtrHost", host.map(Value::from)),
        (
            "replicaHttpsPort",
            env("DTR_HTTPS_PORT")
                .and_then(|p| p.parse::<u16>().ok())
                .map(Value::from),
        ),
        ("logLevel", env("LOG_LEVEL").map(Value::from)),
        ("httpProxy", env("HTTP_PROXY").map(Value::from)),
        ("httpsProxy", env("HTTPS_PROXY").map(Value::from)),
        ("noProxy", env("NO_PROXY").map(Value::from)),
    ] {
        doc[key] = value.unwrap_or(Value::Null);
    }
    doc
}

async fn post_settings(
    State(api): State<Arc<Api>>,
    Admin(admin): Admin,
    ApiJson(update): ApiJson<SettingsUpdate>,
) -> ApiResult<Json<Value>> {
    let mut settings = load(&api).await?;
    if let Some(v) = update.create_repository_on_push {
        settings.create_repository_on_push = v;
    }
    if let Some(v) = update.read_only_registry {
        settings.read_only_registry = v;
    }
    if let Some(v) = update.token_lifetime_seconds {
        if !(10..=86400).contains(&v) {
            return Err(ApiError::bad_request(
                "INVALID_SETTING",
                "tokenLifetimeSeconds: 10 to 86400",
            ));
        }
        settings.token_lifetime_seconds = v;
    }
    let doc = serde_json::to_vec(&settings).expect("serializable");
    api.etcd
        .put(KEY, &doc)
        .await
        .map_err(|e| ApiError::dependency("the settings", e))?;
    remember(&api, &settings);
    let db = api.db().await?;
    super::events::record(
        &db,
        &admin.name,
        "settings.update",
        "settings",
        serde_json::to_value(&settings).unwrap_or_default(),
    )
    .await?;
    Ok(Json(view(&settings)))
}

pub fn routes() -> Router<Arc<Api>> {
    Router::new().route(
        "/api/v0/meta/settings",
        get(get_settings).post(post_settings),
    )
}
