//! `dtr jobrunner`: runs the background jobs queued in the metadata database (src/roles/jobs.rs,
//! docs/jobs.md), one at a time, and keeps a heartbeat: the `heartbeats` table (the api reports
//! the jobrunner unhealthy when it goes stale), `/tmp/dtr-jobrunner-heartbeat` (read by
//! `dtr health jobrunner`), and `jobs.heartbeat_at` of the job it runs.
//!
//! Actions: `metadatastoremigration` (the api's schema migrations), `gc` (distribution's
//! garbage collector on the cluster's image storage — the volume mounted at `/storage` or the
//! object store of `/dtr/storage` — after write tokens are fenced off and the last one has
//! expired) and `tagreconcile` (the tags whose content the storage does not hold, removed).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::{watch, Mutex};

use crate::db;
use crate::error::Result;
use crate::jobs::{
    self, Action, Claimed, GcParameters, MigrationParameters, Outcome, ReconcileParameters,
};
use crate::runtime::{log, RoleConfig};
use crate::storage::probe::{Store, Trust};
use crate::storage::StorageConfig;
use dtr_core::component::Component;
use dtr_core::options::LogLevel;

/// Touched after every successful heartbeat; `dtr health jobrunner` checks its age.
pub const HEARTBEAT_FILE: &str = "/tmp/dtr-jobrunner-heartbeat";
pub const BEAT_EVERY: Duration = Duration::from_secs(5);
/// How often an idle jobrunner looks for work.
const POLL_EVERY: Duration = Duration::from_secs(1);
/// How often it looks for jobs whose jobrunner stopped heart-beating.
const RECOVER_EVERY: Duration = Duration::from_secs(10);
/// Extra time garbage collection waits after the last write token's expiry: in-flight
/// requests, and clocks of the api replicas and the registry that disagree.
pub const GC_LEEWAY: Duration = Duration::from_secs(60);
/// An upload started longer ago than this is abandoned: distribution's own default age.
pub const UPLOAD_AGE: Duration = Duration::from_secs(7 * 24 * 3600);
/// The registry storage, mounted like in the registry container.
pub const STORAGE: &str = "/storage";
/// distribution's binary (Debian `docker-registry`); `DTR_REGISTRY_BIN` overrides it (tests).
const REGISTRY_BIN: &str = "/usr/bin/docker-registry";

/// The job being run, for the heartbeat task: it stamps the job, and cancels it if the job was
/// taken away (requeued as stale by another jobrunner).
struct Current {
    job: Claimed,
    cancel: watch::Sender<bool>,
}

struct Runner {
    cfg: RoleConfig,
    current: Mutex<Option<Current>>,
    /// Where the storage configuration is (`/dtr/storage`).
    etcd: crate::etcd::Etcd,
}

impl Runner {
    fn log(&self, level: LogLevel, msg: impl AsRef<str>) {
        log(level, self.cfg.log_level, msg);
    }

    /// The cluster's image storage, as the registries use it now.
    async fn storage(&self, log: &JobLog<'_>) -> std::result::Result<Storage, String> {
        let (stored, _) = crate::storage::load(&self.etcd, false)
            .await
            .map_err(|e| format!("read the storage configuration: {e}"))?;
        log.line(format!(
            "image storage: {} (generation {})",
            stored.config.describe(),
            stored.generation
        ))
        .await;
        Ok(Storage {
            config: stored.config,
            root: PathBuf::from(STORAGE),
            trust: crate::storage::trust(&self.cfg.ca_dir),
        })
    }

    fn id(&self) -> &str {
        self.cfg.replica_id.as_str()
    }
}

pub async fn run() -> Result<()> {
    let cfg = RoleConfig::from_env(Component::Jobrunner)?;
    log(
        LogLevel::Info,
        cfg.log_level,
        format!(
            "dtr jobrunner {} for replica {}",
            cfg.version, cfg.replica_id
        ),
    );
    let http = cfg.http_client()?;
    let runner = Arc::new(Runner {
        etcd: crate::etcd::Etcd::new(http, cfg.etcd_endpoints.clone()),
        cfg,
        current: Mutex::new(None),
    });
    let worker = Arc::clone(&runner);
    tokio::spawn(async move { work(worker).await });
    heartbeats(&runner).await
}

/// The heartbeat loop (the container's health): every 5 s, the `heartbeats` row, the file, and
/// the running job's `heartbeat_at`.
async fn heartbeats(runner: &Runner) -> Result<()> {
    let mut client: Option<tokio_postgres::Client> = None;
    let mut failures = 0u32;
    loop {
        if client.as_ref().is_none_or(|c| c.is_closed()) {
            match db::connect(&runner.cfg).await {
                Ok(c) => {
                    runner.log(LogLevel::Info, "connected to the metadata database");
                    client = Some(c);
                }
                Err(e) => {
                    failures += 1;
                    if failures % 10 == 1 {
                        runner.log(
                            LogLevel::Warn,
                            format!("waiting for the metadata database: {e}"),
                        );
                    }
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    continue;
                }
            }
        }
        let c = client.as_ref().expect("connected above");
        match db::heartbeat(c, &runner.cfg).await {
            Ok(()) => {
                failures = 0;
                if let Err(e) = std::fs::write(HEARTBEAT_FILE, dtr_core::timestamp()) {
                    runner.log(LogLevel::Error, format!("write {HEARTBEAT_FILE}: {e}"));
                }
                let current = runner.current.lock().await;
                if let Some(cur) = current.as_ref() {
                    match jobs::touch(c, &cur.job, runner.id()).await {
                        Ok(true) => {}
                        Ok(false) => {
                            runner.log(
                                LogLevel::Warn,
                                format!(
                                    "job {} is no longer ours (requeued by another jobrunner): stopping it",
                                    cur.job.id
                                ),
                            );
                            let _ = cur.cancel.send(true);
                        }
                        Err(e) => runner.log(
                            LogLevel::Warn,
                            format!("heartbeat of job {}: {e}", cur.job.id),
                        ),
                    }
                }
                drop(current);
                tokio::time::sleep(BEAT_EVERY).await;
            }
            Err(e) => {
                runner.log(
                    LogLevel::Warn,
                    format!("heartbeat failed, reconnecting: {e}"),
                );
                client = None;
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}

/// The worker loop: recover lost jobs, claim one, run it, record how it ended.
async fn work(runner: Arc<Runner>) {
    let mut client: Option<tokio_postgres::Client> = None;
    let mut recovered_own = false;
    let mut last_recover = tokio::time::Instant::now() - RECOVER_EVERY;
    let mut errors = 0u32;
    loop {
        if client.as_ref().is_none_or(|c| c.is_closed()) {
            match db::connect(&runner.cfg).await {
                Ok(c) => client = Some(c),
                Err(_) => {
                    // the heartbeat loop reports the database being away
                    tokio::time::sleep(POLL_EVERY).await;
                    continue;
                }
            }
        }
        let c = client.as_mut().expect("connected above");
        let step = async {
            if !recovered_own || last_recover.elapsed() >= RECOVER_EVERY {
                // at start, jobs claimed by this replica's jobrunner were cut off by a restart
                let own = (!recovered_own).then(|| runner.id());
                for (id, status) in jobs::recover(&*c, own).await? {
                    runner.log(
                        LogLevel::Warn,
                        format!("job {id}: its attempt was lost; now {status}"),
                    );
                }
                recovered_own = true;
                last_recover = tokio::time::Instant::now();
            }
            jobs::claim(c, runner.id()).await
        };
        match step.await {
            Ok(Some(job)) => {
                errors = 0;
                execute(&runner, c, job).await;
            }
            Ok(None) => {
                errors = 0;
                tokio::time::sleep(POLL_EVERY).await;
            }
            Err(e) => {
                errors += 1;
                // before the api has migrated the database the tables do not exist yet
                if errors % 30 == 1 {
                    runner.log(LogLevel::Warn, format!("looking for jobs: {e}"));
                }
                if c.is_closed() {
                    client = None;
                }
                tokio::time::sleep(POLL_EVERY).await;
            }
        }
    }
}

/// Writes a job's log lines to `job_logs` (and the container's log), at most
/// [`jobs::MAX_LOG_LINES_PER_ATTEMPT`] per attempt.
struct JobLog<'a> {
    runner: &'a Runner,
    db: &'a tokio_postgres::Client,
    job: &'a Claimed,
    written: std::sync::atomic::AtomicUsize,
    dropped: std::sync::atomic::AtomicUsize,
}

impl JobLog<'_> {
    async fn line(&self, line: impl AsRef<str>) {
        self.write(line.as_ref(), false).await
    }

    /// A line kept even past the limit (summaries and errors).
    async fn important(&self, line: impl AsRef<str>) {
        self.write(line.as_ref(), true).await
    }

    async fn write(&self, line: &str, important: bool) {
        use std::sync::atomic::Ordering::Relaxed;
        self.runner.log(
            LogLevel::Info,
            format!("job {} ({}): {line}", self.job.id, self.job.action),
        );
        if !important && self.written.load(Relaxed) >= jobs::MAX_LOG_LINES_PER_ATTEMPT {
            self.dropped.fetch_add(1, Relaxed);
            return;
        }
        self.written.fetch_add(1, Relaxed);
        if let Err(e) = jobs::append_log(self.db, self.job.id, self.job.attempt, line).await {
            self.runner.log(
                LogLevel::Warn,
                format!("job {}: store a log line: {e}", self.job.id),
            );
        }
    }

    async fn close(&self) {
        let dropped = self.dropped.load(std::sync::atomic::Ordering::Relaxed);
        if dropped > 0 {
            self.important(format!("({dropped} more lines not stored)"))
                .await;
        }
    }
}

async fn execute(runner: &Runner, db: &tokio_postgres::Client, job: Claimed) {
    let (cancel, mut cancelled) = watch::channel(false);
    *runner.current.lock().await = Some(Current {
        job: job.clone(),
        cancel,
    });
    let log = JobLog {
        runner,
        db,
        job: &job,
        written: Default::default(),
        dropped: Default::default(),
    };
    log.line(format!(
        "attempt {} of {} on the jobrunner of replica {}",
        job.attempt,
        job.max_attempts,
        runner.id()
    ))
    .await;
    let started = tokio::time::Instant::now();
    let result = tokio::select! {
        r = run_action(runner, &log, &job) => r,
        _ = cancelled.wait_for(|c| *c) => Err("stopped: the job was requeued by another jobrunner".to_string()),
    };
    let took = started.elapsed().as_secs_f64();
    match &result {
        Ok(_) => log.important(format!("done in {took:.1}s")).await,
        Err(e) => log.important(format!("failed after {took:.1}s: {e}")).await,
    }
    log.close().await;
    *runner.current.lock().await = None;
    // record the end; keep trying through a short database outage (after 60 s without our
    // heartbeat another jobrunner requeues the job anyway)
    for attempt in 1..=30 {
        match jobs::finish(db, &job, runner.id(), result.clone()).await {
            Ok(outcome) => {
                let what = match outcome {
                    Outcome::Done => "done",
                    Outcome::Retry => "failed; it will be retried",
                    Outcome::Failed => "failed; no attempt left",
                    Outcome::Lost => {
                        "was requeued by another jobrunner meanwhile; outcome not recorded"
                    }
                };
                runner.log(
                    LogLevel::Info,
                    format!(
                        "job {} ({}) attempt {}: {what}",
                        job.id, job.action, job.attempt
                    ),
                );
                return;
            }
            Err(e) => {
                if attempt == 1 || db.is_closed() {
                    runner.log(
                        LogLevel::Warn,
                        format!("job {}: record its end: {e}", job.id),
                    );
                }
                if db.is_closed() {
                    return;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

async fn run_action(
    runner: &Runner,
    log: &JobLog<'_>,
    job: &Claimed,
) -> std::result::Result<Value, String> {
    match Action::parse(&job.action) {
        Some(Action::MetadataStoreMigration) => {
            let params: MigrationParameters = serde_json::from_value(job.parameters.clone())
                .map_err(|e| format!("parameters: {e}"))?;
            metadata_store_migration(runner, log, params.schema_version).await
        }
        Some(Action::Gc) => {
            let params: GcParameters = serde_json::from_value(job.parameters.clone())
                .map_err(|e| format!("parameters: {e}"))?;
            let bin = std::env::var("DTR_REGISTRY_BIN").unwrap_or_else(|_| REGISTRY_BIN.into());
            let storage = runner.storage(log).await?;
            gc(log, &params, &storage, &bin).await
        }
        Some(Action::TagReconcile) => {
            let params: ReconcileParameters = serde_json::from_value(job.parameters.clone())
                .map_err(|e| format!("parameters: {e}"))?;
            let storage = runner.storage(log).await?;
            tag_reconcile(log, &params, &storage).await
        }
        None => Err(format!(
            "this jobrunner ({}) does not know the action {:?}",
            runner.cfg.version, job.action
        )),
    }
}

async fn schema_version(db: &tokio_postgres::Client) -> std::result::Result<(i32, i64), String> {
    let row = db
        .query_one(
            "SELECT coalesce(max(version), 0), count(*) FROM schema_migrations",
            &[],
        )
        .await
        .map_err(|e| format!("read the schema version: {e}"))?;
    Ok((row.get(0), row.get(1)))
}

/// Applies the schema migrations this version knows, then checks the schema is complete.
async fn metadata_store_migration(
    runner: &Runner,
    log: &JobLog<'_>,
    wanted: Option<i32>,
) -> std::result::Result<Value, String> {
    let mut client = db::connect(&runner.cfg).await.map_err(|e| e.to_string())?;
    let (before, _) = schema_version(&client).await?;
    log.line(format!("schema version before: {before}")).await;
    let version = db::migrate(&mut client).await.map_err(|e| e.to_string())?;
    let (after, count) = schema_version(&client).await?;
    if let Some(wanted) = wanted.filter(|w| after < *w) {
        return Err(format!(
            "this jobrunner ({}) reached schema version {after}, the job asks for {wanted}",
            runner.cfg.version
        ));
    }
    if after != version || i64::from(after) != count {
        return Err(format!(
            "schema check failed: version {after} with {count} migrations recorded (expected {version})"
        ));
    }
    let applied: Vec<i32> = client
        .query(
            "SELECT version FROM schema_migrations WHERE version > $1 ORDER BY version",
            &[&before],
        )
        .await
        .map_err(|e| format!("list migrations: {e}"))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    if applied.is_empty() {
        log.line(format!("schema is up to date at version {after}"))
            .await;
    } else {
        log.line(format!(
            "applied migrations {applied:?}; schema version {after}"
        ))
        .await;
    }
    Ok(json!({"schemaVersionBefore": before, "schemaVersion": after, "applied": applied}))
}

/// Size and number of the blob files under `root/docker/registry/v2/blobs` (0 when absent).
pub fn blob_usage(root: &Path) -> std::io::Result<(u64, u64)> {
    fn walk(dir: &Path, acc: &mut (u64, u64)) -> std::io::Result<()> {
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let kind = entry.file_type()?;
            if kind.is_dir() {
                walk(&entry.path(), acc)?;
            } else if kind.is_file() {
                acc.0 += entry.metadata()?.len();
                if entry.file_name() == "data" {
                    acc.1 += 1;
                }
            }
        }
        Ok(())
    }
    let blobs = root.join("docker/registry/v2/blobs");
    let mut acc = (0, 0);
    match walk(&blobs, &mut acc) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !blobs.exists() => Ok((0, 0)),
        r => r.map(|()| acc),
    }
}

/// The image storage a job works on: the configuration, the volume's mount (for the
/// filesystem driver), and the TLS trust for an object store.
pub struct Storage {
    pub config: StorageConfig,
    pub root: PathBuf,
    pub trust: Trust,
}

impl Storage {
    async fn store(&self) -> std::result::Result<Option<Store>, String> {
        Store::open(&self.config, &self.trust)
            .await
            .map_err(|e| format!("open {}: {e}", self.config.describe()))
    }

    /// Size and number of the blobs (0 when none).
    async fn blob_usage(&self) -> std::result::Result<(u64, u64), String> {
        match self.store().await? {
            None => {
                let r = self.root.clone();
                tokio::task::spawn_blocking(move || blob_usage(&r))
                    .await
                    .map_err(|e| e.to_string())?
                    .map_err(|e| format!("measure {}: {e}", self.root.display()))
            }
            Some(store) => {
                let prefix = self.config.object_key("/docker/registry/v2/blobs/");
                let objects = store
                    .list_all(&prefix)
                    .await
                    .map_err(|e| format!("list {}: {e}", self.config.describe()))?;
                Ok((
                    objects.iter().map(|(_, size)| size).sum(),
                    objects.iter().filter(|(k, _)| k.ends_with("/data")).count() as u64,
                ))
            }
        }
    }

    /// Whether anything was pushed yet.
    async fn has_repositories(&self) -> std::result::Result<bool, String> {
        match self.store().await? {
            None => Ok(self.root.join("docker/registry/v2/repositories").is_dir()),
            Some(store) => Ok(!store
                .list(
                    &self.config.object_key("/docker/registry/v2/repositories/"),
                    1,
                )
                .await
                .map_err(|e| format!("list {}: {e}", self.config.describe()))?
                .is_empty()),
        }
    }

    /// Whether the storage holds the tag's link.
    /// A file of the storage below its root (`None` when absent).
    async fn read(
        &self,
        store: Option<&Store>,
        path: &str,
    ) -> std::result::Result<Option<Vec<u8>>, String> {
        match store {
            None => match std::fs::read(self.root.join(path.trim_start_matches('/'))) {
                Ok(b) => Ok(Some(b)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(format!("read {path}: {e}")),
            },
            Some(store) => store
                .get(&self.config.object_key(path))
                .await
                .map_err(|e| format!("read {path}: {e}")),
        }
    }

    /// Every tag the storage holds, as its current links say: (repository, tag, digest).
    async fn stored_tags(
        &self,
        store: Option<&Store>,
    ) -> std::result::Result<Vec<(String, String, String)>, String> {
        let below = crate::storage::REPOSITORIES;
        let links: Vec<(String, String)> = match store {
            None => {
                let top = self.root.join(below.trim_start_matches('/'));
                tokio::task::spawn_blocking(move || files_below(&top))
                    .await
                    .map_err(|e| e.to_string())?
                    .map_err(|e| format!("list {below}: {e}"))?
                    .into_iter()
                    .filter_map(|rel| crate::storage::tag_of_link(&rel))
                    .collect()
            }
            Some(store) => {
                let prefix = format!("{}/", self.config.object_key(below));
                store
                    .list_all(&prefix)
                    .await
                    .map_err(|e| format!("list {}: {e}", self.config.describe()))?
                    .into_iter()
                    .filter_map(|(key, _)| crate::storage::tag_of_link(key.strip_prefix(&prefix)?))
                    .collect()
            }
        };
        let mut out = Vec::new();
        for (repo, tag) in links {
            let link = crate::storage::tag_link(&repo, &tag);
            if let Some(digest) = self.read(store, &link).await? {
                out.push((
                    repo,
                    tag,
                    String::from_utf8_lossy(&digest).trim().to_string(),
                ));
            }
        }
        Ok(out)
    }

    /// Removes from an object store every upload started more than `UPLOAD_AGE` ago, each
    /// object of its directory (distribution's own purger is off there: `registry_config`).
    /// `None` on the volume, where the registry purges them itself.
    async fn purge_uploads(
        &self,
        dry_run: bool,
    ) -> std::result::Result<Option<PurgedUploads>, String> {
        let Some(store) = self.store().await? else {
            return Ok(None);
        };
        let failed =
            |e: crate::storage::probe::ProbeError| format!("{}: {e}", self.config.describe());
        let prefix = format!("{}/", self.config.object_key(crate::storage::REPOSITORIES));
        let mut uploads: std::collections::BTreeMap<String, Vec<String>> = Default::default();
        for (key, _) in store.list_all(&prefix).await.map_err(failed)? {
            if let Some(dir) = key
                .strip_prefix(&prefix)
                .and_then(crate::storage::upload_of)
            {
                let dir = format!("{prefix}{dir}");
                uploads.entry(dir).or_default().push(key);
            }
        }
        let mut started = Vec::new();
        for dir in uploads.keys() {
            let at = format!("{dir}/{}", crate::storage::UPLOAD_STARTED_AT);
            started.push((dir.as_str(), store.get(&at).await.map_err(failed)?));
        }
        let cutoff = time::OffsetDateTime::now_utc() - UPLOAD_AGE;
        let abandoned = abandoned_uploads(
            started.iter().map(|(dir, at)| (*dir, at.as_deref())),
            cutoff,
        );
        if !dry_run {
            for dir in &abandoned {
                for key in &uploads[*dir] {
                    store.delete(key).await.map_err(failed)?;
                }
            }
        }
        Ok(Some(PurgedUploads {
            purged: abandoned.len() as u64,
            kept: (uploads.len() - abandoned.len()) as u64,
        }))
    }

    async fn has_tag(
        &self,
        store: Option<&Store>,
        repo: &str,
        tag: &str,
    ) -> std::result::Result<bool, String> {
        let path = crate::storage::tag_link(repo, tag);
        match store {
            None => Ok(self.root.join(path.trim_start_matches('/')).is_file()),
            Some(store) => store
                .exists(&self.config.object_key(&path))
                .await
                .map_err(|e| format!("look {repo}:{tag} up: {e}")),
        }
    }
}

/// What `Storage::purge_uploads` did: the abandoned uploads removed (or, on a dry run, that
/// would be) and the recent ones kept.
pub struct PurgedUploads {
    pub purged: u64,
    pub kept: u64,
}

/// The uploads to purge: the directories whose start time is before `cutoff`. An upload whose
/// start cannot be read is kept (it may be starting now).
pub fn abandoned_uploads<'a>(
    started: impl IntoIterator<Item = (&'a str, Option<&'a [u8]>)>,
    cutoff: time::OffsetDateTime,
) -> Vec<&'a str> {
    started
        .into_iter()
        .filter(|(_, at)| {
            at.and_then(|b| std::str::from_utf8(b).ok())
                .and_then(|t| {
                    time::OffsetDateTime::parse(
                        t.trim(),
                        &time::format_description::well_known::Rfc3339,
                    )
                    .ok()
                })
                .is_some_and(|t| t < cutoff)
        })
        .map(|(dir, _)| dir)
        .collect()
}

/// The minimal registry configuration distribution's collector needs: the same storage (on
/// the filesystem driver, the volume as this container mounts it).
pub fn gc_config(storage: &Storage) -> String {
    let mut config = storage.config.clone();
    if config.on_the_volume() {
        config.params.insert(
            "rootdirectory".into(),
            json!(storage.root.display().to_string()),
        );
    }
    json!({
        "version": "0.1",
        "log": {"level": "info", "formatter": "text"},
        "storage": config.section(),
    })
    .to_string()
}

/// `docker-registry garbage-collect` arguments.
pub fn gc_args(params: &GcParameters, config: &Path) -> Vec<String> {
    let mut args = vec![
        "garbage-collect".to_string(),
        format!("--delete-untagged={}", params.delete_untagged),
    ];
    if params.dry_run {
        args.push("--dry-run".into());
    }
    args.push(config.display().to_string());
    args
}

/// Lines of the collector's output worth keeping past the log limit.
fn gc_line_is_summary(line: &str) -> bool {
    // "N blobs marked, M blobs and K manifests eligible for deletion" (not the per-blob lines)
    line.contains(" blobs marked, ") || gc_line_is_error(line)
}

/// The collector's failures: logrus errors and the command's final message.
fn gc_line_is_error(line: &str) -> bool {
    line.contains("level=error")
        || line.contains("level=fatal")
        || line.starts_with("failed to garbage collect")
        || line.to_ascii_lowercase().contains("permission denied")
}

/// The system's CAs and `--custom-ca-cert-bundle` in one file for the collector, when there is
/// a custom bundle (otherwise Go's own defaults apply).
fn ca_bundle(trust: &Trust) -> Option<PathBuf> {
    let extra = trust.extra_pem.as_ref()?;
    let mut all = std::fs::read_to_string("/etc/ssl/certs/ca-certificates.crt").unwrap_or_default();
    all.push('\n');
    all.push_str(extra);
    let path = std::env::temp_dir().join(format!("dtr-gc-ca-{}.pem", std::process::id()));
    crate::runtime::write_with_mode(&path, all.as_bytes(), 0o640).ok()?;
    Some(path)
}

/// Paths of the files below `top`, relative to it, `/`-separated.
fn files_below(top: &std::path::Path) -> std::io::Result<Vec<String>> {
    let mut out = Vec::new();
    let mut dirs = vec![top.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            let kind = entry.file_type()?;
            if kind.is_dir() {
                dirs.push(entry.path());
            } else if kind.is_file() {
                if let Ok(rel) = entry.path().strip_prefix(top) {
                    out.push(rel.to_string_lossy().replace('\\', "/"));
                }
            }
        }
    }
    Ok(out)
}

/// `tagreconcile`: the tag table matched to the storage, both ways. Every tag whose link the
/// storage does not hold is removed; every tag the storage holds that the table lacks (or has
/// with another digest: a registry notification that was lost) is added from the storage's
/// link and manifest. Each change is logged and audited; running it again changes nothing.
async fn tag_reconcile(
    log: &JobLog<'_>,
    params: &ReconcileParameters,
    storage: &Storage,
) -> std::result::Result<Value, String> {
    let tags: Vec<(i64, String, String, String)> = log
        .db
        .query(
            "SELECT t.repository_id, r.namespace || '/' || r.name, t.name, t.digest FROM tags t
             JOIN repositories r ON r.id = t.repository_id ORDER BY 2, 3",
            &[],
        )
        .await
        .map_err(|e| format!("list the tags: {e}"))?
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    let store = storage.store().await?;
    let mut missing = Vec::new();
    for (repo_id, repo, tag, _) in &tags {
        if !storage.has_tag(store.as_ref(), repo, tag).await? {
            missing.push((*repo_id, repo.clone(), tag.clone()));
        }
    }
    log.important(format!(
        "{} of {} tags have no content in {}",
        missing.len(),
        tags.len(),
        storage.config.describe()
    ))
    .await;
    let mut removed = 0u64;
    for (repo_id, repo, tag) in &missing {
        if params.dry_run {
            log.line(format!("would remove {repo}:{tag}")).await;
            continue;
        }
        let n = log
            .db
            .execute(
                "WITH gone AS (DELETE FROM tags WHERE repository_id = $1 AND name = $2 RETURNING name)
                 INSERT INTO events (actor, action, object, detail)
                 SELECT 'tagreconcile', 'tag.delete', $3, $4 FROM gone",
                &[repo_id, tag, &format!("{repo}:{tag}"), &json!({"reason": "not in the image storage"})],
            )
            .await
            .map_err(|e| format!("remove {repo}:{tag}: {e}"))?;
        if n > 0 {
            removed += 1;
            log.line(format!("removed {repo}:{tag}")).await;
        }
    }
    let added = add_stored_tags(log, params, storage, store.as_ref(), &tags).await?;
    Ok(json!({
        "dryRun": params.dry_run,
        "tags": tags.len(),
        "missing": missing.len(),
        "removed": removed,
        "unrecorded": added.unrecorded,
        "added": added.added,
        "unknownRepositories": added.unknown_repositories,
        "storage": storage.config.describe(),
    }))
}

struct Added {
    unrecorded: u64,
    added: u64,
    unknown_repositories: Vec<String>,
}

/// The second half of `tagreconcile`: what the storage holds and the table does not. A
/// repository the table does not know is not created (it may have been deleted through the
/// API while its files remain): it is reported instead.
async fn add_stored_tags(
    log: &JobLog<'_>,
    params: &ReconcileParameters,
    storage: &Storage,
    store: Option<&Store>,
    table: &[(i64, String, String, String)],
) -> std::result::Result<Added, String> {
    use std::collections::{BTreeSet, HashMap};
    let recorded: HashMap<(&str, &str), &str> = table
        .iter()
        .map(|(_, repo, tag, digest)| ((repo.as_str(), tag.as_str()), digest.as_str()))
        .collect();
    let repositories: HashMap<String, i64> = log
        .db
        .query("SELECT namespace || '/' || name, id FROM repositories", &[])
        .await
        .map_err(|e| format!("list the repositories: {e}"))?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let mut out = Added {
        unrecorded: 0,
        added: 0,
        unknown_repositories: Vec::new(),
    };
    let mut unknown = BTreeSet::new();
    for (repo, tag, digest) in storage.stored_tags(store).await? {
        if recorded.get(&(repo.as_str(), tag.as_str())) == Some(&digest.as_str()) {
            continue;
        }
        let Some(repo_id) = repositories.get(&repo) else {
            unknown.insert(repo);
            continue;
        };
        out.unrecorded += 1;
        if params.dry_run {
            log.line(format!("would add {repo}:{tag} ({digest})")).await;
            continue;
        }
        let manifest = match crate::storage::blob_data(&digest) {
            Some(path) => storage.read(store, &path).await?,
            None => None,
        };
        let Some(manifest) = manifest else {
            log.line(format!(
                "{repo}:{tag}: its manifest {digest} is not in the storage; left out"
            ))
            .await;
            continue;
        };
        let media_type = serde_json::from_slice::<Value>(&manifest)
            .ok()
            .and_then(|m| m["mediaType"].as_str().map(str::to_string))
            .unwrap_or_default();
        let size = manifest.len() as i64;
        let object = format!("{repo}:{tag}");
        let detail =
            json!({"digest": digest, "reason": "in the image storage, missing from the tag table"});
        let n = log
            .db
            .execute(
                "WITH put AS (
                   INSERT INTO tags (repository_id, name, digest, media_type, size, author)
                   VALUES ($1, $2, $3, $4, $5, '')
                   ON CONFLICT (repository_id, name) DO UPDATE SET digest = excluded.digest,
                     media_type = excluded.media_type, size = excluded.size, updated_at = now()
                   WHERE tags.digest IS DISTINCT FROM excluded.digest
                   RETURNING name)
                 INSERT INTO events (actor, action, object, detail)
                 SELECT 'tagreconcile', 'tag.push', $6, $7 FROM put",
                &[repo_id, &tag, &digest, &media_type, &size, &object, &detail],
            )
            .await
            .map_err(|e| format!("add {object}: {e}"))?;
        if n > 0 {
            out.added += 1;
            log.line(format!("added {object} ({digest})")).await;
        }
    }
    for repo in &unknown {
        log.line(format!(
            "{repo}: in the image storage but not a repository here; its tags are left out"
        ))
        .await;
    }
    out.unknown_repositories = unknown.into_iter().collect();
    Ok(out)
}

/// `uid N gid M` of this process (for error messages about file permissions).
fn process_identity() -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .unwrap_or("?")
            .to_string()
    };
    format!("uid {} gid {}", field("Uid:"), field("Gid:"))
}

/// Garbage collection: fence writes (this job being `running` does it), wait for the last
/// write token to expire, run distribution's collector, and report the bytes freed.
async fn gc(
    log: &JobLog<'_>,
    params: &GcParameters,
    storage: &Storage,
    bin: &str,
) -> std::result::Result<Value, String> {
    let mut waited = 0.0;
    if params.dry_run {
        log.line("dry run: nothing is deleted, and registry writes are not fenced")
            .await;
    } else {
        log.line("registry writes are fenced: the token service grants no push or delete while this job runs")
            .await;
        // Lock the horizon row: a token transaction that checked the fence before this job
        // started has finished, and its expiry is in the row. One statement, so its own
        // transaction: the lock is released as soon as the value is read.
        let row = log
            .db
            .query_one(
                "SELECT greatest(0, extract(epoch FROM expires_at + make_interval(secs => $1) - now()))::float8,
                        to_char((expires_at + make_interval(secs => $1)) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),
                        to_char(expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')
                 FROM write_token_horizon WHERE id = 1 FOR UPDATE",
                &[&GC_LEEWAY.as_secs_f64()],
            )
            .await
            .map_err(|e| format!("read the write token horizon: {e}"))?;
        let (wait, until, expires): (f64, String, String) = (row.get(0), row.get(1), row.get(2));
        if wait > 0.0 {
            log.line(format!(
                "waiting {wait:.0}s, until {until}: the last write token expires at {expires}, plus {}s of leeway",
                GC_LEEWAY.as_secs()
            ))
            .await;
            tokio::time::sleep(Duration::from_secs_f64(wait)).await;
            waited = wait;
        }
        log.line("no write token is valid any more").await;
    }

    if !storage.has_repositories().await? {
        log.line(format!(
            "nothing stored yet in {}: nothing to collect",
            storage.config.describe()
        ))
        .await;
        let (bytes, blobs) = storage.blob_usage().await?;
        return Ok(gc_result(params, waited, (bytes, blobs), (bytes, blobs), 0));
    }
    let before = storage.blob_usage().await?;
    log.line(format!(
        "blobs before: {} bytes in {} blobs",
        before.0, before.1
    ))
    .await;

    let config = PathBuf::from(format!(
        "{}/dtr-gc-{}-{}.yml",
        std::env::temp_dir().display(),
        log.job.id,
        log.job.attempt
    ));
    // it holds the store's credentials: readable by this user and its group only (the
    // collector runs as the registry's user, of the jobrunner's group), removed after the run
    crate::runtime::write_with_mode(&config, gc_config(storage).as_bytes(), 0o640)
        .map_err(|e| e.to_string())?;
    let args = gc_args(params, &config);
    log.line(format!("running {bin} {}", args.join(" "))).await;
    let bundle = ca_bundle(&storage.trust);
    let run = run_logged(log, bin, &args, bundle.as_deref()).await;
    let _ = std::fs::remove_file(&config);
    if let Some(b) = &bundle {
        let _ = std::fs::remove_file(b);
    }
    let (status, error_line) = run?;

    let after = storage.blob_usage().await?;
    log.line(format!(
        "blobs after: {} bytes in {} blobs",
        after.0, after.1
    ))
    .await;
    if !status.success() {
        let mut e = format!("{bin} garbage-collect exited with {status}");
        if let Some(line) = error_line {
            e.push_str(": ");
            e.push_str(&line);
            if line.to_ascii_lowercase().contains("permission denied") {
                e.push_str(&format!(
                    " (the jobrunner runs as {}; it must be allowed to delete what the registry stored: see docs/jobs.md)",
                    process_identity()
                ));
            }
        }
        return Err(e);
    }
    let purged = match storage.purge_uploads(params.dry_run).await? {
        None => {
            log.line(format!(
                "uploads abandoned for {} days are purged by the registry itself on its volume",
                UPLOAD_AGE.as_secs() / 86400
            ))
            .await;
            0
        }
        Some(uploads) => {
            log.line(format!(
                "{} {} upload(s) started more than {} days ago; {} more recent kept",
                if params.dry_run {
                    "dry run: would purge"
                } else {
                    "purged"
                },
                uploads.purged,
                UPLOAD_AGE.as_secs() / 86400,
                uploads.kept
            ))
            .await;
            uploads.purged
        }
    };
    let freed = before.0.saturating_sub(after.0);
    log.important(if params.dry_run {
        "dry run: freed 0 bytes".to_string()
    } else {
        format!(
            "freed {freed} bytes ({} blobs)",
            before.1.saturating_sub(after.1)
        )
    })
    .await;
    Ok(gc_result(params, waited, before, after, purged))
}

fn gc_result(
    params: &GcParameters,
    waited: f64,
    before: (u64, u64),
    after: (u64, u64),
    uploads_purged: u64,
) -> Value {
    json!({
        "uploadsPurged": uploads_purged,
        "dryRun": params.dry_run,
        "deleteUntagged": params.delete_untagged,
        "waitedSeconds": waited.round(),
        "blobBytesBefore": before.0,
        "blobBytesAfter": after.0,
        "blobsBefore": before.1,
        "blobsAfter": after.1,
        "freedBytes": before.0.saturating_sub(after.0),
    })
}

/// Runs a command with its stdout and stderr going, line by line, to the job's log. Returns
/// its exit status and its last error line.
async fn run_logged(
    log: &JobLog<'_>,
    bin: &str,
    args: &[String],
    ca_bundle: Option<&Path>,
) -> std::result::Result<(std::process::ExitStatus, Option<String>), String> {
    let mut command = tokio::process::Command::new(bin);
    if let Some(b) = ca_bundle {
        // Go's TLS trusts this file (the s3 driver panics with AWS_CA_BUNDLE set)
        command.env("SSL_CERT_FILE", b).env_remove("AWS_CA_BUNDLE");
    }
    let mut child = command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("start {bin}: {e}"))?;
    let mut out = BufReader::new(child.stdout.take().expect("piped")).lines();
    let mut err = BufReader::new(child.stderr.take().expect("piped")).lines();
    let (mut out_open, mut err_open) = (true, true);
    let mut last_error = None;
    while out_open || err_open {
        let line = tokio::select! {
            l = out.next_line(), if out_open => l.map_err(|e| e.to_string())?.or_else(|| { out_open = false; None }),
            l = err.next_line(), if err_open => l.map_err(|e| e.to_string())?.or_else(|| { err_open = false; None }),
        };
        if let Some(line) = line.filter(|l| !l.trim().is_empty()) {
            if gc_line_is_error(&line) {
                last_error = Some(line.clone());
            }
            if gc_line_is_summary(&line) {
                log.important(&line).await;
            } else {
                log.line(&line).await;
            }
        }
    }
    let status = child
        .wait()
        .await
        .map_err(|e| format!("wait for {bin}: {e}"))?;
    Ok((status, last_error))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uploads_started_before_the_cutoff_are_abandoned_the_others_and_unreadable_ones_kept() {
        let cutoff = time::macros::datetime!(2026-11-25 12:00 UTC);
        let started: [(&str, Option<&[u8]>); 6] = [
            ("old", Some(b"2026-11-01T08:00:00Z")),
            ("old-newline", Some(b"2026-11-25T11:59:59Z\n")),
            ("recent", Some(b"2026-12-01T08:00:00Z")),
            ("at-cutoff", Some(b"2026-11-25T12:00:00Z")),
            ("garbled", Some(b"yesterday")),
            ("no-start", None),
        ];
        assert_eq!(
            abandoned_uploads(started, cutoff),
            vec!["old", "old-newline"]
        );
    }

    #[test]
    fn the_collector_gets_the_registry_storage_and_safe_flags() {
        let volume = |root: &str| Storage {
            config: StorageConfig::default(),
            root: PathBuf::from(root),
            trust: Trust { extra_pem: None },
        };
        let cfg: Value = serde_json::from_str(&gc_config(&volume("/storage"))).unwrap();
        assert_eq!(cfg["version"], "0.1");
        assert_eq!(
            cfg["storage"]["filesystem"],
            json!({"rootdirectory": "/storage"})
        );
        assert_eq!(cfg["storage"]["delete"], json!({"enabled": true}));
        // elsewhere (a test's scratch directory), the collector is pointed there
        let cfg: Value = serde_json::from_str(&gc_config(&volume("/tmp/x"))).unwrap();
        assert_eq!(cfg["storage"]["filesystem"]["rootdirectory"], "/tmp/x");
        let args = gc_args(&GcParameters::default(), Path::new("/tmp/c.yml"));
        assert_eq!(
            args,
            ["garbage-collect", "--delete-untagged=false", "/tmp/c.yml"]
        );
        let args = gc_args(
            &GcParameters {
                dry_run: true,
                delete_untagged: true,
            },
            Path::new("/tmp/c.yml"),
        );
        assert_eq!(
            args,
            [
                "garbage-collect",
                "--delete-untagged=true",
                "--dry-run",
                "/tmp/c.yml"
            ]
        );
        assert!(gc_line_is_summary(
            "3 blobs marked, 2 blobs and 0 manifests eligible for deletion"
        ));
        assert!(!gc_line_is_summary("admin/app: marking blob sha256:abc"));
        assert!(!gc_line_is_summary(
            "blob eligible for deletion: sha256:1f29938189d9"
        ));
    }

    #[test]
    fn blob_usage_counts_the_data_files_under_blobs() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(blob_usage(dir.path()).unwrap(), (0, 0));
        let blobs = dir.path().join("docker/registry/v2/blobs/sha256");
        for (d, n) in [("ab/abcd", 100usize), ("cd/cdef", 23)] {
            std::fs::create_dir_all(blobs.join(d)).unwrap();
            std::fs::write(blobs.join(d).join("data"), vec![0u8; n]).unwrap();
        }
        // repositories are not blobs
        let repo = dir.path().join("docker/registry/v2/repositories/admin/app");
        std::fs::create_dir_all(&repo).unwrap();
        std::fs::write(repo.join("link"), "sha256:abcd").unwrap();
        assert_eq!(blob_usage(dir.path()).unwrap(), (123, 2));
    }

    fn sha256(data: &[u8]) -> String {
        use sha2::Digest;
        format!("sha256:{}", hex::encode(sha2::Sha256::digest(data)))
    }

    async fn upload(http: &reqwest::Client, base: &str, repo: &str, data: &[u8]) -> String {
        let digest = sha256(data);
        let r = http
            .post(format!("{base}/v2/{repo}/blobs/uploads/"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
        let location = r.headers()["location"].to_str().unwrap().to_string();
        let sep = if location.contains('?') { '&' } else { '?' };
        let url = if location.starts_with("http") {
            location
        } else {
            format!("{base}{location}")
        };
        let r = http
            .put(format!("{url}{sep}digest={digest}"))
            .body(data.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
        digest
    }

    async fn put_manifest(
        http: &reqwest::Client,
        base: &str,
        repo: &str,
        tag: &str,
        config: (&str, usize),
        layer: (&str, usize),
    ) -> (String, usize) {
        let m = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": config.1, "digest": config.0},
            "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": layer.1, "digest": layer.0}]
        });
        let body = serde_json::to_vec(&m).unwrap();
        let r = http
            .put(format!("{base}/v2/{repo}/manifests/{tag}"))
            .header(
                "content-type",
                "application/vnd.docker.distribution.manifest.v2+json",
            )
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
        (sha256(&body), body.len())
    }

    /// `gc()` on a storage written by distribution itself: `DTR_TEST_PG` (a scratch database)
    /// and `DTR_REGISTRY_BIN` (Debian's distribution 2.8, the registry image's binary), both
    /// from `scripts/test-servers.sh`.
    #[tokio::test]
    async fn gc_frees_exactly_the_unreferenced_blobs() {
        let (Some(conn), Some(bin)) = (
            crate::testing::required_env("DTR_TEST_PG"),
            crate::testing::required_env("DTR_REGISTRY_BIN"),
        ) else {
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let storage = dir.path().join("storage");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let serve = dir.path().join("serve.yml");
        std::fs::write(
            &serve,
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
                storage.display()
            ),
        )
        .unwrap();
        let _registry = tokio::process::Command::new(&bin)
            .args(["serve", serve.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        for _ in 0..100 {
            if http.get(format!("{base}/v2/")).send().await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // kept: app:1 (config + layer + manifest); garbage: a blob nobody references, and
        // app:2 once its manifest is deleted (its layer and its manifest)
        let config = b"{\"architecture\":\"amd64\",\"os\":\"linux\"}".to_vec();
        let kept_layer = vec![1u8; 10_000];
        let orphan = vec![2u8; 50_000];
        let dropped_layer = vec![3u8; 30_000];
        let c = upload(&http, &base, "admin/app", &config).await;
        let k = upload(&http, &base, "admin/app", &kept_layer).await;
        upload(&http, &base, "admin/app", &orphan).await;
        let d = upload(&http, &base, "admin/app", &dropped_layer).await;
        let (_, m1_len) = put_manifest(
            &http,
            &base,
            "admin/app",
            "1",
            (&c, config.len()),
            (&k, kept_layer.len()),
        )
        .await;
        let (m2, m2_len) = put_manifest(
            &http,
            &base,
            "admin/app",
            "2",
            (&c, config.len()),
            (&d, dropped_layer.len()),
        )
        .await;
        let r = http
            .delete(format!("{base}/v2/admin/app/manifests/{m2}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
        let total = (config.len()
            + kept_layer.len()
            + orphan.len()
            + dropped_layer.len()
            + m1_len
            + m2_len) as u64;
        assert_eq!(blob_usage(&storage).unwrap(), (total, 6));

        let (mut db, connection) = tokio_postgres::connect(&conn, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        let schema = format!("dtr_gc_test_{}", std::process::id());
        db.batch_execute(&format!(
            "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}; SET search_path = {schema}"
        ))
        .await
        .unwrap();
        db::migrate(&mut db).await.unwrap();
        // the last write token expired long ago: no wait
        db.execute(
            "UPDATE write_token_horizon SET expires_at = now() - interval '2 min'",
            &[],
        )
        .await
        .unwrap();
        let runner = Runner {
            etcd: crate::etcd::Etcd::new(reqwest::Client::new(), vec![]),
            cfg: RoleConfig {
                component: Component::Jobrunner,
                replica_id: dtr_core::options::ReplicaId::parse("b0b0b0b0b0b0").unwrap(),
                version: "test".into(),
                log_level: LogLevel::Warn,
                db_hosts: vec![],
                etcd_endpoints: vec![],
                external_url: String::new(),
                ca_dir: String::new(),
            },
            current: Mutex::new(None),
        };
        let run = |params: GcParameters, bin: String| {
            let (runner, db, storage) = (&runner, &db, &storage);
            async move {
                let p = serde_json::to_value(&params).unwrap();
                let job = jobs::enqueue(db, Action::Gc, &p, "admin").await.unwrap();
                let claimed = Claimed {
                    id: job.id,
                    action: "gc".into(),
                    parameters: p,
                    attempt: 1,
                    max_attempts: 3,
                };
                let log = JobLog {
                    runner,
                    db,
                    job: &claimed,
                    written: Default::default(),
                    dropped: Default::default(),
                };
                let storage = Storage {
                    config: StorageConfig::default(),
                    root: storage.clone(),
                    trust: Trust { extra_pem: None },
                };
                let result = gc(&log, &params, &storage, &bin).await;
                let lines: Vec<String> = jobs::logs(db, job.id, 0, 1000)
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|l| l.data)
                    .collect();
                (result, lines)
            }
        };
        let (dry, lines) = run(
            GcParameters {
                dry_run: true,
                delete_untagged: false,
            },
            bin.clone(),
        )
        .await;
        let dry = dry.unwrap();
        assert_eq!(dry["freedBytes"], 0, "{lines:#?}");
        assert_eq!(blob_usage(&storage).unwrap(), (total, 6));
        assert!(
            lines
                .iter()
                .any(|l| l.contains("3 blobs and 0 manifests eligible for deletion")),
            "{lines:#?}"
        );

        // a collector that fails: the error line and a hint end up in the job's error
        let fake = dir.path().join("fake-registry");
        std::fs::write(
            &fake,
            "#!/bin/sh\necho 'failed to garbage collect: failed to delete blob sha256:ab: filesystem: unlinkat /storage/x/data: permission denied' >&2\nexit 1\n",
        )
        .unwrap();
        std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let (failed, lines) = run(GcParameters::default(), fake.display().to_string()).await;
        let e = failed.unwrap_err();
        assert!(
            e.contains("exited with exit status: 1: failed to garbage collect")
                && e.contains("permission denied (the jobrunner runs as uid "),
            "{e}"
        );
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("failed to garbage collect")),
            "{lines:#?}"
        );
        assert_eq!(blob_usage(&storage).unwrap(), (total, 6));

        let (result, lines) = run(GcParameters::default(), bin.clone()).await;
        let result = result.unwrap_or_else(|e| panic!("{e}: {lines:#?}"));
        let freed = (orphan.len() + dropped_layer.len() + m2_len) as u64;
        assert_eq!(result["freedBytes"], freed, "{lines:#?}");
        assert_eq!(result["blobsAfter"], 3);
        assert_eq!(blob_usage(&storage).unwrap(), (total - freed, 3));
        assert!(
            lines
                .iter()
                .any(|l| l == &format!("freed {freed} bytes (3 blobs)")),
            "{lines:#?}"
        );
        eprintln!("{}", lines.join("\n"));
        // what is kept still pulls
        let r = http
            .get(format!("{base}/v2/admin/app/blobs/{k}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        db.batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
            .await
            .unwrap();
    }
}
