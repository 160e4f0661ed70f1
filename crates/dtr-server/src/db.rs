//! The metadata database as the api and jobrunner see it: a TLS connection authenticated by the
//! component's client certificate (no passwords), following the primary among the members, and
//! the schema migrations the api applies at start.

use tokio_postgres::config::{SslMode, TargetSessionAttrs};
use tokio_postgres::Client;

use crate::error::{Error, Result};
use crate::runtime::RoleConfig;
use dtr_core::component::Component;

pub use dtr_core::contract::db::{schema_target, DATABASE, ROLE};

fn db_err(context: &str, e: impl std::fmt::Display) -> Error {
    Error::Database {
        context: context.into(),
        message: e.to_string(),
    }
}

/// How the database is to be reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Only the primary will do (every write path, the jobrunner).
    Primary,
    /// The primary if there is one, else this replica's own member read-only (a standby keeps
    /// serving reads while the cluster has no primary, e.g. after losing quorum).
    PrimaryOrLocal,
}

/// The members' `host:port`, the leader first, as this replica's Patroni reports them (it reads
/// them from etcd). Empty when Patroni cannot be asked; the caller still has its own member.
pub async fn members_leader_first(http: &reqwest::Client, own_db_host: &str) -> Vec<String> {
    let host = own_db_host.split(':').next().unwrap_or(own_db_host);
    let url = format!(
        "https://{host}:{}/cluster",
        dtr_core::component::PATRONI_PORT
    );
    let Ok(Ok(resp)) = tokio::time::timeout(LOCATE_TIMEOUT, http.get(&url).send()).await else {
        return Vec::new();
    };
    let Ok(doc) = resp.json::<serde_json::Value>().await else {
        return Vec::new();
    };
    let mut members: Vec<(bool, String)> = doc["members"]
        .as_array()
        .map(|m| {
            m.iter()
                .filter_map(|m| {
                    let host = m["host"].as_str()?;
                    let port = m["port"].as_u64().unwrap_or(5432);
                    Some((m["role"] != "leader", format!("{host}:{port}")))
                })
                .collect()
        })
        .unwrap_or_default();
    members.sort();
    members.into_iter().map(|(_, h)| h).collect()
}

const LOCATE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Connects to the primary (found through Patroni, see `members_leader_first`) or, with
/// `Access::PrimaryOrLocal` and no primary reachable, to this replica's member read-only.
/// Returns the client and whether it is writable; the connection task runs in the background.
/// Dead peers are noticed within seconds (TCP keepalives and user timeout), so a client of a
/// primary that vanished fails fast and the owner reconnects to the new one.
pub async fn connect_to(cfg: &RoleConfig, access: Access) -> Result<(Client, bool)> {
    let http = cfg.http_client()?;
    let mut hosts = members_leader_first(&http, &cfg.db_hosts[0]).await;
    for h in &cfg.db_hosts {
        if !hosts.contains(h) {
            hosts.push(h.clone());
        }
    }
    let primary = attempt(cfg, &hosts, TargetSessionAttrs::ReadWrite).await;
    match (primary, access) {
        (Ok(c), _) => Ok((c, true)),
        (Err(e), Access::Primary) => Err(e),
        (Err(_), Access::PrimaryOrLocal) => {
            attempt(cfg, &cfg.db_hosts[..1], TargetSessionAttrs::Any)
                .await
                .map(|c| (c, false))
        }
    }
}

/// Connects to the primary; see `connect_to`.
pub async fn connect(cfg: &RoleConfig) -> Result<Client> {
    connect_to(cfg, Access::Primary).await.map(|(c, _)| c)
}

/// The api's sessions: a statement gets 30 s, a lock wait 5 s.
const API_SESSION_LIMITS: &str = "-c statement_timeout=30000 -c lock_timeout=5000";

async fn attempt(cfg: &RoleConfig, hosts: &[String], attrs: TargetSessionAttrs) -> Result<Client> {
    let mut pg = tokio_postgres::Config::new();
    for h in hosts {
        let (host, port) = h.rsplit_once(':').unwrap_or((h.as_str(), "5432"));
        pg.host(host);
        pg.port(port.parse().unwrap_or(5432));
    }
    pg.user(ROLE)
        .dbname(DATABASE)
        .ssl_mode(SslMode::Require)
        .target_session_attrs(attrs)
        .connect_timeout(std::time::Duration::from_secs(3))
        .keepalives_idle(std::time::Duration::from_secs(5))
        .keepalives_interval(std::time::Duration::from_secs(1))
        .keepalives_retries(3)
        .tcp_user_timeout(std::time::Duration::from_secs(5))
        .application_name(cfg.component.name());
    if cfg.component == Component::Api {
        // a request never waits on the database without end (the jobrunner's jobs may run long)
        pg.options(API_SESSION_LIMITS);
    }
    let tls = tokio_postgres_rustls::MakeRustlsConnect::new(cfg.client_tls()?);
    let (client, connection) = pg.connect(tls).await.map_err(|e| db_err("connect", e))?;
    tokio::spawn(async move {
        // ends when the client is dropped or the server goes away; the owner reconnects
        let _ = connection.await;
    });
    Ok(client)
}

/// SQL for a `timestamptz` column as UTC RFC 3339 text to the second (NULL stays NULL).
pub fn utc_seconds(column: &str) -> String {
    format!("to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')")
}

/// One schema change: its number, the release that brings it, and its SQL.
pub struct Migration {
    pub version: i32,
    /// `major.minor.patch` of the first release that carries it. A bootstrapper of an older
    /// release (and its images) leaves it out: that is how the test build of the next version
    /// (`DTR_TEST_VERSION`, src/version.rs) has a real migration the current one does not.
    pub since: (u64, u64, u64),
    pub sql: &'static str,
}

/// Schema versions, applied in order, each once, under an advisory lock so that several api
/// replicas starting together do not race. A migration of a minor release must keep the
/// previous minor's code working (add, never rename or drop): during a rolling upgrade the
/// replicas not yet replaced run on the migrated schema.
const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        since: (0, 1, 0),
        sql: "CREATE TABLE heartbeats (
            replica_id text NOT NULL,
            component text NOT NULL,
            version text NOT NULL,
            beat_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (replica_id, component)
        )",
    },
    Migration {
        version: 2,
        since: (0, 1, 0),
        sql: "CREATE TABLE accounts (
            id bigserial PRIMARY KEY,
            name text NOT NULL UNIQUE,
            password_hash text NOT NULL,
            is_admin boolean NOT NULL DEFAULT false,
            created_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE TABLE api_tokens (
            id bigserial PRIMARY KEY,
            account_id bigint NOT NULL REFERENCES accounts ON DELETE CASCADE,
            label text NOT NULL,
            token_sha256 text NOT NULL UNIQUE,
            created_at timestamptz NOT NULL DEFAULT now(),
            last_used timestamptz
        );
        CREATE TABLE repositories (
            id bigserial PRIMARY KEY,
            namespace text NOT NULL,
            name text NOT NULL,
            visibility text NOT NULL CHECK (visibility IN ('public', 'private')),
            short_description text NOT NULL DEFAULT '',
            created_at timestamptz NOT NULL DEFAULT now(),
            UNIQUE (namespace, name)
        );
        CREATE TABLE tags (
            repository_id bigint NOT NULL REFERENCES repositories ON DELETE CASCADE,
            name text NOT NULL,
            digest text NOT NULL,
            media_type text NOT NULL DEFAULT '',
            size bigint NOT NULL DEFAULT 0,
            author text NOT NULL DEFAULT '',
            updated_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (repository_id, name)
        );
        CREATE TABLE events (
            id bigserial PRIMARY KEY,
            at timestamptz NOT NULL DEFAULT now(),
            actor text NOT NULL,
            action text NOT NULL,
            object text NOT NULL,
            detail jsonb NOT NULL DEFAULT '{}'
        );
        CREATE INDEX events_object ON events (object text_pattern_ops);
        -- the latest expiry of any token that allows writing to the registry (push, delete):
        -- garbage collection waits for it after it has stopped such tokens being issued
        CREATE TABLE write_token_horizon (
            id int PRIMARY KEY CHECK (id = 1),
            expires_at timestamptz NOT NULL
        );
        INSERT INTO write_token_horizon VALUES (1, now())",
    },
    Migration {
        version: 3,
        since: (0, 1, 0),
        sql: "-- background jobs (src/roles/jobs.rs, docs/jobs.md): the api queues them, jobrunners
        -- claim one at a time (FOR UPDATE SKIP LOCKED), heart-beat while they run, and retry
        -- a failure until max_attempts
        CREATE TABLE jobs (
            id bigserial PRIMARY KEY,
            action text NOT NULL,
            status text NOT NULL DEFAULT 'waiting'
                CHECK (status IN ('waiting', 'running', 'done', 'failed')),
            attempts int NOT NULL DEFAULT 0,
            max_attempts int NOT NULL DEFAULT 3 CHECK (max_attempts >= 1),
            parameters jsonb NOT NULL DEFAULT '{}',
            result jsonb,
            created_by text NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            not_before timestamptz NOT NULL DEFAULT now(),
            started_at timestamptz,
            ended_at timestamptz,
            claimed_by text,
            heartbeat_at timestamptz,
            last_error text
        );
        CREATE INDEX jobs_waiting ON jobs (id) WHERE status = 'waiting';
        CREATE INDEX jobs_running ON jobs (action) WHERE status = 'running';
        CREATE INDEX jobs_action_status ON jobs (action, status, id);
        CREATE TABLE job_logs (
            job_id bigint NOT NULL REFERENCES jobs ON DELETE CASCADE,
            seq bigserial,
            at timestamptz NOT NULL DEFAULT now(),
            attempt int NOT NULL,
            line text NOT NULL,
            PRIMARY KEY (job_id, seq)
        )",
    },
    Migration {
        version: 4,
        since: (0, 1, 0),
        sql: "-- an access token may expire (POST /api/v0/api_tokens expiresInSeconds); NULL: never
        ALTER TABLE api_tokens ADD COLUMN expires_at timestamptz",
    },
    Migration {
        version: 5,
        since: (0, 2, 0),
        sql: "-- 0.2.0: the audit events are read newest first and by time range (the api's event
        -- list, retention); without this index both scan the whole table
        CREATE INDEX events_at ON events (at DESC, id DESC)",
    },
];

/// The migrations this version carries, in order.
pub fn migrations() -> impl Iterator<Item = &'static Migration> {
    let release = dtr_core::version::release();
    MIGRATIONS.iter().filter(move |m| m.since <= release)
}

/// The schema version of the database: 0 when it has none yet (a new install).
pub async fn schema_version(client: &Client) -> Result<i32> {
    let exists: bool = client
        .query_one("SELECT to_regclass('schema_migrations') IS NOT NULL", &[])
        .await
        .map_err(|e| db_err("look for the schema table", e))?
        .get(0);
    if !exists {
        return Ok(0);
    }
    let row = client
        .query_one(
            "SELECT coalesce(max(version), 0) FROM schema_migrations",
            &[],
        )
        .await
        .map_err(|e| db_err("read the schema version", e))?;
    Ok(row.get(0))
}

pub async fn migrate(client: &mut Client) -> Result<i32> {
    let tx = client
        .transaction()
        .await
        .map_err(|e| db_err("begin migration", e))?;
    tx.batch_execute(
        "SELECT pg_advisory_xact_lock(7275696);
         CREATE TABLE IF NOT EXISTS schema_migrations (version int PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())",
    )
    .await
    .map_err(|e| db_err("lock schema", e))?;
    let current: i32 = tx
        .query_one(
            "SELECT coalesce(max(version), 0) FROM schema_migrations",
            &[],
        )
        .await
        .map_err(|e| db_err("read schema version", e))?
        .get(0);
    for m in migrations().filter(|m| m.version > current) {
        tx.batch_execute(m.sql)
            .await
            .map_err(|e| db_err(&format!("migration {}", m.version), e))?;
        tx.execute(
            "INSERT INTO schema_migrations(version) VALUES ($1)",
            &[&m.version],
        )
        .await
        .map_err(|e| db_err("record migration", e))?;
    }
    tx.commit()
        .await
        .map_err(|e| db_err("commit migration", e))?;
    Ok(schema_target().max(current))
}

pub async fn heartbeat(client: &Client, cfg: &RoleConfig) -> Result<()> {
    client
        .execute(
            "INSERT INTO heartbeats(replica_id, component, version, beat_at) VALUES ($1, $2, $3, now())
             ON CONFLICT (replica_id, component) DO UPDATE SET version = excluded.version, beat_at = now()",
            &[&cfg.replica_id.as_str(), &cfg.component.name(), &cfg.version],
        )
        .await
        .map_err(|e| db_err("heartbeat", e))?;
    Ok(())
}

/// Seconds since the component's last heartbeat on this replica, if it ever beat.
pub async fn heartbeat_age(client: &Client, replica: &str, component: &str) -> Result<Option<f64>> {
    let row = client
        .query_opt(
            "SELECT extract(epoch FROM now() - beat_at)::float8 FROM heartbeats WHERE replica_id = $1 AND component = $2",
            &[&replica, &component],
        )
        .await
        .map_err(|e| db_err("read heartbeat", e))?;
    Ok(row.map(|r| r.get(0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_migrations_are_the_contracts_schema_versions() {
        let ours: Vec<(i32, (u64, u64, u64))> =
            MIGRATIONS.iter().map(|m| (m.version, m.since)).collect();
        assert_eq!(ours, dtr_core::contract::db::SCHEMA_VERSIONS);
        assert_eq!(
            migrations().last().map(|m| m.version),
            Some(schema_target())
        );
    }
}
