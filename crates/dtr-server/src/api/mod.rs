//! `dtr api`: the replica's API server behind nginx. It owns the `dtr` database schema, answers
//! `/_ping` with the health of every component of its replica, `/api/v0/meta/cluster_status`
//! with the cluster's members, and the registry's business: accounts and access tokens
//! (`auth`), the registry token service (`token`), repositories, tags and the registry's
//! notifications (`repos`), settings in etcd (`settings`), jobs (`jobs`) and the audit (`events`).

mod auth;
mod error;
mod events;
mod jobs;
mod limits;
mod names;
mod repos;
mod settings;
mod storage;
mod token;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use tokio::sync::Mutex;

use crate::db;
use crate::error::{Error, Result};
use crate::runtime::{log, RoleConfig};
use dtr_core::component::Component;
use dtr_core::contract::env::{process_env, TokenAuth};
use dtr_core::options::LogLevel;
use error::{ApiError, ApiResult};

pub const PORT: u16 = dtr_core::component::API_PORT;
/// A jobrunner whose heartbeat is older than this is reported unhealthy.
const HEARTBEAT_STALE_SECS: f64 = 30.0;
const CHECK_TIMEOUT: Duration = Duration::from_secs(3);

struct DbClient {
    client: Arc<tokio_postgres::Client>,
    writable: bool,
    at: std::time::Instant,
}

/// At most this many connections of their own (`Api::db_exclusive`) at once.
const EXCLUSIVE_CONNECTIONS: usize = 16;
/// An idle connection of its own is reused within this (a failover closes them anyway).
const EXCLUSIVE_IDLE: Duration = Duration::from_secs(30);

/// A connection of its own from `Api::db_exclusive`; it goes back for reuse when dropped.
struct Pooled<'a> {
    client: Option<tokio_postgres::Client>,
    api: &'a Api,
    _permit: tokio::sync::SemaphorePermit<'a>,
}

impl std::ops::Deref for Pooled<'_> {
    type Target = tokio_postgres::Client;
    fn deref(&self) -> &Self::Target {
        self.client.as_ref().expect("held until drop")
    }
}

impl std::ops::DerefMut for Pooled<'_> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        self.client.as_mut().expect("held until drop")
    }
}

impl Drop for Pooled<'_> {
    fn drop(&mut self) {
        if let Some(c) = self.client.take().filter(|c| !c.is_closed()) {
            let mut idle = self
                .api
                .exclusive_idle
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if idle.len() < EXCLUSIVE_CONNECTIONS {
                idle.push((c, std::time::Instant::now()));
            }
        }
    }
}

/// A read-only client (no primary was reachable) is used at most this long before the api looks
/// for a primary again: a repaired or failed-over cluster is writable again within this.
const READ_ONLY_RECHECK: Duration = Duration::from_millis(250);

struct Api {
    cfg: RoleConfig,
    http: reqwest::Client,
    tls: Arc<rustls::ClientConfig>,
    /// The shared client, whether it reaches the primary, and when it was made.
    db: Mutex<Option<DbClient>>,
    /// Held while a new shared client is made (`Api::db`).
    connecting: Mutex<()>,
    /// Turns for connections of their own, and the idle ones (`Api::db_exclusive`).
    exclusive: tokio::sync::Semaphore,
    exclusive_idle: std::sync::Mutex<Vec<(tokio_postgres::Client, std::time::Instant)>>,
    /// Set once the database is reachable and migrated: `/health` (the container's health) waits for it.
    ready: AtomicBool,
    /// Signs the registry tokens.
    signer: token::Signer,
    /// The `service` of registry tokens: the external `host:port` (`DTR_TOKEN_SERVICE`).
    token_service: String,
    /// The secret the registry's notifications carry (`/ca/api/notify-token`).
    notify_token: String,
    /// The cluster's documents (settings, storage) in etcd.
    etcd: crate::etcd::Etcd,
    /// What logins may cost: concurrent password checks, failed logins, checked passwords.
    logins: limits::LoginLimits,
    /// The cluster settings last read from etcd, and when (`settings::current`).
    settings: std::sync::Mutex<Option<(settings::Settings, std::time::Instant)>>,
    /// What `/_ping` last found failing, in detail: logged when it changes.
    last_ping_failure: Mutex<String>,
}

impl Api {
    fn log(&self, level: LogLevel, msg: impl AsRef<str>) {
        log(level, self.cfg.log_level, msg);
    }

    /// The replicas of the cluster: its etcd members, named by replica id.
    async fn replica_ids(&self) -> ApiResult<Vec<String>> {
        let url = format!("{}/v3/cluster/member/list", self.cfg.etcd_endpoints[0]);
        let v = post_json(&self.http, &url)
            .await
            .map_err(|e| ApiError::dependency("etcd", e))?;
        let mut ids: Vec<String> = v["members"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| m["name"].as_str())
            .filter(|n| !n.is_empty())
            .map(str::to_string)
            .collect();
        ids.sort();
        Ok(ids)
    }

    /// A connected database client, reconnecting if the last one is gone. It reaches the primary
    /// when there is one; without one (the cluster lost quorum, or a failover is under way) it
    /// is this replica's own member, read-only, so that reads keep working and writes fail with
    /// a clear "read-only" error.
    async fn db(&self) -> Result<Arc<tokio_postgres::Client>> {
        let usable = |c: &DbClient| {
            !c.client.is_closed() && (c.writable || c.at.elapsed() < READ_ONLY_RECHECK)
        };
        if let Some(c) = self.db.lock().await.as_ref().filter(|c| usable(c)) {
            return Ok(Arc::clone(&c.client));
        }
        // one request connects at a time, without holding the client's lock: requests that
        // have a client go on meanwhile, and those waiting here take the one it made
        let _connecting = self.connecting.lock().await;
        if let Some(c) = self.db.lock().await.as_ref().filter(|c| usable(c)) {
            return Ok(Arc::clone(&c.client));
        }
        let (client, writable) = tokio::time::timeout(
            CHECK_TIMEOUT * 2,
            db::connect_to(&self.cfg, db::Access::PrimaryOrLocal),
        )
        .await
        .map_err(|_| timed_out("connect"))??;
        if !writable {
            self.log(
                LogLevel::Warn,
                "no primary metadata database is reachable: serving reads from this replica's member",
            );
        }
        let client = Arc::new(client);
        *self.db.lock().await = Some(DbClient {
            client: Arc::clone(&client),
            writable,
            at: std::time::Instant::now(),
        });
        Ok(client)
    }

    /// A connection of its own, for a transaction (the shared client pipelines every caller):
    /// one of at most [`EXCLUSIVE_CONNECTIONS`], reused while it is open and was returned
    /// within [`EXCLUSIVE_IDLE`], so that a burst of push tokens neither opens a connection
    /// each nor exhausts the database's `max_connections`.
    async fn db_exclusive(&self) -> Result<Pooled<'_>> {
        let permit = tokio::time::timeout(REQUEST_TIMEOUT, self.exclusive.acquire())
            .await
            .map_err(|_| timed_out("wait for a database connection"))?
            .map_err(|_| timed_out("wait for a database connection"))?;
        let reused = {
            let mut idle = self
                .exclusive_idle
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            idle.retain(|(c, at)| !c.is_closed() && at.elapsed() < EXCLUSIVE_IDLE);
            idle.pop().map(|(c, _)| c)
        };
        let client = match reused {
            Some(c) => c,
            None => tokio::time::timeout(CHECK_TIMEOUT * 2, db::connect(&self.cfg))
                .await
                .map_err(|_| timed_out("connect"))??,
        };
        Ok(Pooled {
            client: Some(client),
            api: self,
            _permit: permit,
        })
    }

    /// Forgets the client after a failed query, so that the next call reconnects.
    async fn db_failed(&self) {
        *self.db.lock().await = None;
    }

    async fn check_http(&self, url: &str, ok: &[u16]) -> std::result::Result<(), String> {
        match self.http.get(url).send().await {
            Ok(r) if ok.contains(&r.status().as_u16()) => Ok(()),
            Ok(r) => Err(format!("{url} answered {}", r.status())),
            Err(e) => Err(format!("{url}: {}", error_chain(&e))),
        }
    }

    async fn check_tls(&self, host: &str, port: u16) -> std::result::Result<(), String> {
        let mut tls = (*self.tls).clone();
        tls.alpn_protocols = vec![b"h2".to_vec()];
        let connector = tokio_rustls::TlsConnector::from(Arc::new(tls));
        let name =
            rustls::pki_types::ServerName::try_from(host.to_string()).map_err(|e| e.to_string())?;
        let attempt = async {
            let tcp = tokio::net::TcpStream::connect((host, port))
                .await
                .map_err(|e| format!("{host}:{port}: {e}"))?;
            connector
                .connect(name, tcp)
                .await
                .map_err(|e| format!("{host}:{port}: TLS: {e}"))?;
            Ok(())
        };
        tokio::time::timeout(CHECK_TIMEOUT, attempt)
            .await
            .unwrap_or_else(|_| Err(format!("{host}:{port}: timed out")))
    }

    /// Health of each component of this replica: `Ok` or what is wrong.
    async fn component_health(&self) -> BTreeMap<&'static str, std::result::Result<(), String>> {
        let c = |x| self.cfg.container(x);
        let (etcd_url, registry_url, notary_url) = (
            format!("{}/health", self.cfg.etcd_endpoints[0]),
            format!("https://{}:5000/v2/", c(Component::Registry)),
            format!(
                "https://{}:4443/_notary_server/health",
                c(Component::NotaryServer)
            ),
        );
        let signer_host = c(Component::NotarySigner);
        let rid = self.cfg.replica_id.to_string();
        let database = async {
            let client = self.db().await?;
            let r = tokio::time::timeout(CHECK_TIMEOUT, async {
                client
                    .simple_query("SELECT 1")
                    .await
                    .map_err(|e| Error::Database {
                        context: "select".into(),
                        message: e.to_string(),
                    })?;
                db::heartbeat_age(&client, &rid, Component::Jobrunner.name()).await
            })
            .await
            .map_err(|_| timed_out("query"))
            .and_then(|r| r);
            if r.is_err() {
                self.db_failed().await;
            }
            r
        };
        let (etcd, registry, notary_server, notary_signer, database) = tokio::join!(
            self.check_http(&etcd_url, &[200]),
            self.check_http(&registry_url, &[200, 401]),
            self.check_http(&notary_url, &[200]),
            self.check_tls(&signer_host, 7899),
            database
        );
        let (database, jobrunner) = match database {
            Ok(age) => (Ok(()), Ok(age)),
            Err(e) => (Err(e.to_string()), Err(e)),
        };
        let jobrunner = match jobrunner {
            Ok(Some(age)) if age <= HEARTBEAT_STALE_SECS => Ok(()),
            Ok(Some(age)) => Err(format!("last heartbeat {age:.0}s ago")),
            Ok(None) => Err("no heartbeat yet".into()),
            Err(e) => Err(format!("cannot read its heartbeat: {e}")),
        };
        BTreeMap::from([
            ("api", Ok(())),
            ("etcd", etcd),
            ("rethinkdb", database),
            ("registry", registry),
            ("notary-server", notary_server),
            ("notary-signer", notary_signer),
            ("jobrunner", jobrunner),
        ])
    }
}

fn timed_out(what: &str) -> Error {
    Error::Database {
        context: what.into(),
        message: "timed out".into(),
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(inner) = cur {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        cur = inner.source();
    }
    s
}

/// What `/_ping` says of a failing component: anyone may ask, so no internal address or error
/// text (those go to the api's log, and to administrators through `cluster_status`).
const UNHEALTHY: &str = "unhealthy";

async fn ping(State(api): State<Arc<Api>>) -> Response {
    let health = api.component_health().await;
    let details: Vec<String> = health
        .iter()
        .filter_map(|(k, v)| v.as_ref().err().map(|e| format!("{k}: {e}")))
        .collect();
    let failing: Vec<String> = health
        .iter()
        .filter(|(_, v)| v.is_err())
        .map(|(k, _)| format!("{k}: {UNHEALTHY}"))
        .collect();
    {
        let mut last = api.last_ping_failure.lock().await;
        let now = details.join("; ");
        if *last != now {
            if !now.is_empty() {
                api.log(LogLevel::Warn, format!("/_ping: {now}"));
            }
            *last = now;
        }
    }
    let components: BTreeMap<_, _> = health
        .iter()
        .map(|(k, v)| (*k, if v.is_ok() { "OK" } else { UNHEALTHY }))
        .collect();
    let healthy = failing.is_empty();
    let body = json!({
        "Healthy": healthy,
        "Error": failing.join("; "),
        "ReplicaID": api.cfg.replica_id.as_str(),
        "Version": api.cfg.version,
        "Components": components,
    });
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

async fn health(State(api): State<Arc<Api>>) -> Response {
    if api.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, Json(json!({"Healthy": true}))).into_response()
    } else {
        ApiError::unavailable("the api has not reached its database yet").into_response()
    }
}

async fn post_json(http: &reqwest::Client, url: &str) -> std::result::Result<Value, String> {
    let r = http
        .post(url)
        .json(&json!({}))
        .send()
        .await
        .map_err(|e| error_chain(&e))?;
    r.json::<Value>().await.map_err(|e| error_chain(&e))
}

async fn cluster_status(State(api): State<Arc<Api>>, caller: auth::Caller) -> Response {
    if let Err(e) = caller.require_admin() {
        return e.into_response();
    }
    let endpoint = &api.cfg.etcd_endpoints[0];
    let (members_url, status_url) = (
        format!("{endpoint}/v3/cluster/member/list"),
        format!("{endpoint}/v3/maintenance/status"),
    );
    let members = post_json(&api.http, &members_url);
    let status = post_json(&api.http, &status_url);
    let patroni = async {
        let url = format!(
            "https://{}:{}/cluster",
            api.cfg.container(Component::Rethinkdb),
            dtr_core::component::PATRONI_PORT
        );
        let r = api
            .http
            .get(&url)
            .send()
            .await
            .map_err(|e| error_chain(&e))?;
        r.json::<Value>().await.map_err(|e| error_chain(&e))
    };
    let replicas = async {
        let client = api.db().await?;
        let rows = client
            .query(
                "SELECT replica_id, version, extract(epoch FROM now() - beat_at)::float8 FROM heartbeats WHERE component = 'api' ORDER BY replica_id",
                &[],
            )
            .await
            .map_err(|e| Error::Database { context: "replicas".into(), message: e.to_string() })?;
        Ok::<_, Error>(
            rows.iter()
                .map(|r| {
                    (
                        r.get::<_, String>(0),
                        r.get::<_, String>(1),
                        r.get::<_, f64>(2),
                    )
                })
                .collect::<Vec<_>>(),
        )
    };
    let (members, status, patroni, replicas, health) =
        tokio::join!(members, status, patroni, replicas, api.component_health());

    let mut issues = Vec::new();
    let mut replica_health = serde_json::Map::new();
    let mut replica_versions = serde_json::Map::new();
    let own = api.cfg.replica_id.to_string();
    let own_failing: Vec<String> = health
        .iter()
        .filter_map(|(k, v)| v.as_ref().err().map(|e| format!("{k}: {e}")))
        .collect();
    replica_health.insert(
        own.clone(),
        json!(if own_failing.is_empty() {
            "OK".to_string()
        } else {
            own_failing.join("; ")
        }),
    );
    match replicas {
        Ok(rows) => {
            for (rid, version, age) in rows {
                replica_versions.insert(rid.clone(), json!(version));
                if rid != own {
                    let h = if age <= HEARTBEAT_STALE_SECS {
                        "OK".to_string()
                    } else {
                        format!("api not seen for {age:.0}s")
                    };
                    replica_health.insert(rid, json!(h));
                }
            }
        }
        Err(e) => issues.push(format!("metadata database: {e}")),
    }
    issues.extend(own_failing.iter().map(|f| format!("replica {own}: {f}")));
    let etcd = match (members, status) {
        (Ok(m), Ok(s)) => {
            json!({"members": m.get("members").cloned().unwrap_or(Value::Null), "leader": s.get("leader").cloned().unwrap_or(Value::Null)})
        }
        (Err(e), _) | (_, Err(e)) => {
            issues.push(format!("etcd: {e}"));
            Value::Null
        }
    };
    let database = match patroni {
        Ok(v) => v,
        Err(e) => {
            issues.push(format!("database cluster: {e}"));
            Value::Null
        }
    };
    Json(json!({
        "replica_health": replica_health,
        "replica_versions": replica_versions,
        "current_issues": issues,
        "etcd": etcd,
        "database": database,
    }))
    .into_response()
}

async fn not_found() -> ApiError {
    ApiError::not_found("NOT_FOUND", "no such endpoint")
}

/// The longest any request may take (a storage probe is the slowest); beyond, 503.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a client may take to send its request's headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(15);

async fn with_timeout(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    match tokio::time::timeout(REQUEST_TIMEOUT, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::unavailable(format!(
            "the request took longer than {} s",
            REQUEST_TIMEOUT.as_secs()
        ))
        .into_response(),
    }
}

fn router(api: Arc<Api>) -> Router {
    Router::new()
        .route("/_ping", get(ping))
        .route("/health", get(health))
        .route("/api/v0/meta/cluster_status", get(cluster_status))
        .merge(auth::routes())
        .merge(token::routes())
        .merge(repos::routes())
        .merge(settings::routes())
        .merge(storage::routes())
        .merge(jobs::routes())
        .merge(events::routes())
        .fallback(not_found)
        .layer(axum::middleware::from_fn(with_timeout))
        .layer(axum::extract::DefaultBodyLimit::max(error::BODY_LIMIT))
        .with_state(api)
}

/// Connects and migrates, retrying while the database is still starting.
async fn prepare_database(api: &Api) {
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        let result = async {
            let mut client = db::connect(&api.cfg).await?;
            let version = match (db::schema_version(&client).await?, db::schema_target()) {
                // a new install: the first api creates the schema
                (0, _) => db::migrate(&mut client).await?,
                // an upgrade: the migration runs once, as the job `dtr upgrade` queues
                (current, target) if current < target => {
                    return Err(Error::Database {
                        context: "schema".into(),
                        message: format!(
                            "the schema is at version {current} and this api ({}) needs {target}: waiting for the metadatastoremigration job (`dtr upgrade` queues it)",
                            api.cfg.version
                        ),
                    })
                }
                (current, _) => current,
            };
            db::heartbeat(&client, &api.cfg).await?;
            let handover = format!("{}/api/admin.json", api.cfg.ca_dir);
            if let Ok(doc) = std::fs::read_to_string(&handover) {
                if auth::create_initial_admin(&client, &doc).await? {
                    api.log(LogLevel::Info, "created the first administrator account");
                }
            }
            Ok::<_, Error>((client, version))
        }
        .await;
        match result {
            Ok((client, version)) => {
                api.log(
                    LogLevel::Info,
                    format!("metadata database ready, schema version {version}"),
                );
                *api.db.lock().await = Some(DbClient {
                    client: Arc::new(client),
                    writable: true,
                    at: std::time::Instant::now(),
                });
                api.ready.store(true, Ordering::Relaxed);
                return;
            }
            Err(e) => {
                if attempt % 10 == 1 {
                    api.log(
                        LogLevel::Warn,
                        format!("waiting for the metadata database: {e}"),
                    );
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        }
    }
}

pub async fn run() -> Result<()> {
    let cfg = RoleConfig::from_env(Component::Api)?;
    let tls = Arc::new(cfg.client_tls()?);
    let http = cfg.http_client()?;
    let (certs, key) = cfg.identity()?;
    let server_tls = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| Error::tls("protocol versions", e))?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .map_err(|e| Error::tls("api certificate", e))?;
    let read = |rel: &str| {
        let path = format!("{}/{rel}", cfg.ca_dir);
        std::fs::read_to_string(&path).map_err(|e| Error::io(format!("read {path}"), e))
    };
    let signer = token::Signer::load(&read("api/token.pem")?, &read("api/token-key.pem")?)?;
    let notify_token = read("api/notify-token")?.trim().to_string();
    let token_service = TokenAuth::from_env(process_env)?.service;
    let etcd = crate::etcd::Etcd::new(http.clone(), cfg.etcd_endpoints.clone());
    let api = Arc::new(Api {
        etcd,
        cfg,
        http,
        tls,
        db: Mutex::new(None),
        connecting: Mutex::new(()),
        exclusive: tokio::sync::Semaphore::new(EXCLUSIVE_CONNECTIONS),
        exclusive_idle: std::sync::Mutex::new(Vec::new()),
        ready: AtomicBool::new(false),
        signer,
        token_service,
        notify_token,
        logins: limits::LoginLimits::default(),
        settings: std::sync::Mutex::new(None),
        last_ping_failure: Mutex::new(String::new()),
    });
    api.log(
        LogLevel::Info,
        format!(
            "dtr api {} for replica {} listening on :{PORT}",
            api.cfg.version, api.cfg.replica_id
        ),
    );

    let background = Arc::clone(&api);
    tokio::spawn(async move {
        prepare_database(&background).await;
        loop {
            tokio::time::sleep(Duration::from_secs(5)).await;
            let beat = async { db::heartbeat(&*background.db().await?, &background.cfg).await };
            if let Err(e) = beat.await {
                background.db_failed().await;
                background.log(LogLevel::Warn, format!("heartbeat: {e}"));
            }
        }
    });

    let addr = SocketAddr::from(([0, 0, 0, 0], PORT));
    let mut server = axum_server::bind_rustls(
        addr,
        axum_server::tls_rustls::RustlsConfig::from_config(Arc::new(server_tls)),
    );
    server
        .http_builder()
        .http1()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    server
        .serve(router(api).into_make_service_with_connect_info::<SocketAddr>())
        .await
        .map_err(|e| Error::io(format!("serve on :{PORT}"), e))
}
