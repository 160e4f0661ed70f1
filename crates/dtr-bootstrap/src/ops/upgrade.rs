//! `dtr upgrade`: moves every replica to this bootstrapper's version, one replica at a time.
//!
//! 1. Reads the version of every replica's containers and applies `version_rules::decide` to
//!    the move from the oldest; checks the etcd quorum, the database primary and the health of
//!    every replica not yet touched. A refusal changes nothing.
//! 2. Records the upgrade in etcd (`/dtr/upgrade`: from, to, the migration job), so that a
//!    re-run after an interruption continues it — and an upgrade to another version is refused
//!    until this one is finished.
//! 3. Queues the schema migration as a `metadatastoremigration` job (3 attempts) that only a
//!    jobrunner of the new version claims; the new api waits for it before it serves.
//! 4. Replaces the replicas, the database primary last (after a switchover to an upgraded
//!    replica): on each, every component in turn with `ops::replace` — new image, same volumes,
//!    health-waited — the jobrunner before the api, and the migration job waited for on the
//!    first replica before its api is replaced.
//! 5. Removes the record.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::engine::{Engine, Target};
use crate::error::{Error, Result};
use crate::ops::cluster::{self, Chooser, ClusterView, ReplicaView};
use crate::ops::replace::{self, Outcome, Replacer};
use crate::ops::steps;
use crate::plan::running::replica_containers;
use crate::report::Reporter;
use dtr_core::component::Component;
use dtr_core::contract::db;
use dtr_core::options::ReplicaId;
use dtr_core::version;
use dtr_core::version_rules::{self, Verdict};

/// Where the upgrade under way is recorded.
pub const PROGRESS_KEY: &str = "/dtr/upgrade";

/// The order components are replaced in: what the others need first, the jobrunner (which runs
/// the migration) before the api (which waits for it), nginx (the replica's door) last.
pub const ORDER: [Component; 8] = [
    Component::Etcd,
    Component::Rethinkdb,
    Component::Registry,
    Component::NotarySigner,
    Component::NotaryServer,
    Component::Jobrunner,
    Component::Api,
    Component::Nginx,
];

/// How long the migration job may take when `--max-wait` is not given.
const MIGRATION_WAIT: Duration = Duration::from_secs(600);

pub struct UpgradeOptions {
    pub existing: Option<ReplicaId>,
    /// Upper bound for each wait (a component's health, the migration, a switchover).
    pub max_wait: Option<Duration>,
}

/// The upgrade record in etcd.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    pub from: String,
    pub to: String,
    /// Unix seconds.
    pub started_at: u64,
    /// The `metadatastoremigration` job queued for this upgrade, if one was needed.
    pub migration_job: Option<i64>,
}

pub enum UpgradeReport {
    NothingToDo {
        existing: ReplicaId,
        version: String,
    },
    Upgraded {
        from: String,
        to: String,
        resumed: bool,
        /// Each replica and how long its containers took.
        replicas: Vec<(ReplicaId, Duration)>,
        /// The migration job and the schema versions before and after.
        migration: Option<(i64, i32, i32)>,
    },
}

pub async fn upgrade(
    target: &Target,
    opts: UpgradeOptions,
    choose: Chooser<'_>,
    reporter: &Reporter,
) -> Result<UpgradeReport> {
    let engine = steps::connect(target, reporter).await?;
    let cluster = match read_cluster(&engine, opts.existing, choose, reporter).await? {
        Read::Upgrade(c) => c,
        Read::UpToDate { existing } => {
            return Ok(UpgradeReport::NothingToDo {
                existing,
                version: version::VERSION.into(),
            })
        }
    };
    let mut progress = record_start(&engine, &cluster, reporter).await?;
    let migration = queue_schema_migration(&engine, &cluster, &mut progress, reporter).await?;
    let done = replace_replicas(&engine, &cluster, migration, opts.max_wait, reporter).await?;
    cluster::etcdctl(&engine, &cluster.via, &["del", PROGRESS_KEY]).await?;
    Ok(UpgradeReport::Upgraded {
        from: cluster.from,
        to: version::VERSION.into(),
        resumed: cluster.progress.is_some(),
        replicas: done,
        migration,
    })
}

/// The cluster an upgrade works on, read before anything changes.
struct Cluster {
    replicas: BTreeMap<ReplicaId, ReplicaView>,
    /// A replica whose etcd answers: where the upgrade record lives.
    via: ReplicaId,
    /// The version the upgrade moves from.
    from: String,
    /// The record of an upgrade under way (a re-run continues it).
    progress: Option<Progress>,
}

enum Read {
    Upgrade(Cluster),
    /// Every replica runs this version already (checked through `existing`).
    UpToDate {
        existing: ReplicaId,
    },
}

/// Reads the cluster and the record of an upgrade under way, and refuses a move the version
/// rules or the cluster's health do not allow.
async fn read_cluster(
    engine: &Engine,
    existing: Option<ReplicaId>,
    choose: Chooser<'_>,
    reporter: &Reporter,
) -> Result<Read> {
    let step = reporter.step("read the cluster");
    let replicas = cluster::replicas(engine).await?;
    // no replica at all: pick_replica says so, naming none
    let existing = cluster::pick_replica(&replicas, existing, |_| true, |v| v.healthy(), choose)?;
    let via = etcd_via(&replicas).unwrap_or_else(|| existing.clone());
    let progress = read_progress(engine, &via).await?;
    let from = progress
        .as_ref()
        .filter(|p| p.to == version::VERSION)
        .map(|p| p.from.clone())
        .unwrap_or_else(|| oldest(&replicas));
    decide(&replicas, progress.as_ref(), &from)?;
    if progress.is_none() && replicas.values().all(|r| r.version == version::VERSION) {
        step.done(format!("every replica runs {}", version::VERSION));
        return Ok(Read::UpToDate { existing });
    }
    let view = ClusterView::read(engine).await?;
    let elsewhere = view.elsewhere();
    if !elsewhere.is_empty() {
        step.fail("replicas on other nodes");
        return Err(Error::Refused {
            operation: "upgrade",
            reasons: vec![format!(
                "replicas {} run on other nodes, which this engine cannot reach: a rolling upgrade replaces every replica, the database primary last",
                elsewhere.join(", ")
            )],
            hint: "run the upgrade through MKE (--ucp-url), which reaches every node".into(),
        });
    }
    check_health(&view, progress.is_some())?;
    step.done(format!(
        "{} replica(s), {from} → {}{}",
        replicas.len(),
        version::VERSION,
        if progress.is_some() {
            " (continuing the upgrade under way)"
        } else {
            ""
        }
    ));
    Ok(Read::Upgrade(Cluster {
        replicas,
        via,
        from,
        progress,
    }))
}

/// The record in etcd that lets a re-run continue: the one under way, or a new one.
async fn record_start(engine: &Engine, cluster: &Cluster, reporter: &Reporter) -> Result<Progress> {
    if let Some(p) = &cluster.progress {
        reporter.info(format!(
            "continuing the upgrade from {} to {} started at {} (unix time)",
            p.from, p.to, p.started_at
        ));
        return Ok(p.clone());
    }
    let p = Progress {
        from: cluster.from.clone(),
        to: version::VERSION.into(),
        started_at: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        migration_job: None,
    };
    write_progress(engine, &cluster.via, &p).await?;
    Ok(p)
}

/// Queues the metadatastoremigration job when the schema is behind this version's (once: a
/// re-run reuses the recorded job unless it failed). `(job, schema before, target)`.
async fn queue_schema_migration(
    engine: &Engine,
    cluster: &Cluster,
    progress: &mut Progress,
    reporter: &Reporter,
) -> Result<Option<(i64, i32, i32)>> {
    let step = reporter.step("queue the schema migration");
    let leader = db_leader(engine, &cluster.replicas).await?;
    let schema_before = schema_version(engine, &leader).await?;
    let target = db::schema_target();
    if schema_before >= target {
        step.done(format!(
            "schema version {schema_before}: nothing to migrate"
        ));
        return Ok(None);
    }
    let job = match progress.migration_job {
        Some(id) if job_state(engine, &leader, id).await?.status != "failed" => id,
        _ => {
            let id = queue_migration(engine, &leader, progress, target).await?;
            progress.migration_job = Some(id);
            write_progress(engine, &cluster.via, progress).await?;
            id
        }
    };
    step.done(format!(
        "job {job}: schema version {schema_before} → {target}, run by the first jobrunner of {}",
        version::VERSION
    ));
    Ok(Some((job, schema_before, target)))
}

/// Replaces every replica's containers, one replica at a time, the database primary last
/// (after a switchover, so that it moves once, to a replica already upgraded); the first new
/// api waits for the migration. Returns how long each replica took.
async fn replace_replicas(
    engine: &Engine,
    cluster: &Cluster,
    migration: Option<(i64, i32, i32)>,
    max_wait: Option<Duration>,
    reporter: &Reporter,
) -> Result<Vec<(ReplicaId, Duration)>> {
    let replicas = &cluster.replicas;
    let replacer = Replacer {
        engine,
        reporter,
        max_wait,
    };
    let leader = db_leader(engine, replicas).await?;
    let mut order: Vec<ReplicaId> = replicas.keys().cloned().collect();
    order.sort_by_key(|r| *r == leader);
    let mut done = Vec::new();
    let mut migrated = migration.is_none();
    for rid in &order {
        let start = Instant::now();
        reporter.info(format!("upgrading replica {rid}"));
        if replicas.len() > 1 && db_leader(engine, replicas).await? == *rid {
            switch_over(engine, replicas, rid, &done, max_wait, reporter).await?;
        }
        let running = replace::observe(engine, rid).await?;
        let ctx = running.context().map_err(|e| Error::BrokenReplica {
            replica: rid.to_string(),
            problem: format!("cannot tell how it was made: {e}; repair it before upgrading"),
        })?;
        let specs = replica_containers(&ctx);
        let mut changed = 0;
        for component in ORDER {
            if component == Component::Api && !migrated {
                if let Some((job, _, _)) = migration {
                    wait_migration(engine, replicas, job, max_wait, reporter).await?;
                    migrated = true;
                }
            }
            let spec = specs
                .iter()
                .find(|s| s.component == component)
                .expect("a spec per component");
            if replacer.replace(spec).await? == Outcome::Replaced {
                changed += 1;
            }
        }
        let took = start.elapsed();
        reporter.info(format!(
            "replica {rid} runs {} ({changed} container(s) replaced in {:.1}s)",
            version::VERSION,
            took.as_secs_f64()
        ));
        done.push((rid.clone(), took));
    }
    if let (false, Some((job, _, _))) = (migrated, migration) {
        wait_migration(engine, replicas, job, max_wait, reporter).await?;
    }
    Ok(done)
}

/// The oldest version any replica runs.
fn oldest(replicas: &BTreeMap<ReplicaId, ReplicaView>) -> String {
    replicas
        .values()
        .map(|v| v.version.as_str())
        .reduce(|a, b| if version_rules::older(b, a) { b } else { a })
        .unwrap_or_default()
        .to_string()
}

/// Refuses a move the rules do not allow, a replica newer than this bootstrapper, and an
/// upgrade to another version while one is under way.
fn decide(
    replicas: &BTreeMap<ReplicaId, ReplicaView>,
    progress: Option<&Progress>,
    from: &str,
) -> Result<()> {
    let refused = |reason: String, hint: String| Error::Refused {
        operation: "upgrade",
        reasons: vec![reason],
        hint,
    };
    if let Some(p) = progress.filter(|p| p.to != version::VERSION) {
        return Err(refused(
            format!(
                "an upgrade from {} to {} is under way (recorded in etcd at {PROGRESS_KEY})",
                p.from, p.to
            ),
            format!("finish it first: run `upgrade` with registry/dtr:{}", p.to),
        ));
    }
    if let Some(newer) = replicas
        .values()
        .find(|r| version_rules::older(version::VERSION, &r.version))
    {
        return Err(refused(
            format!(
                "replica {} runs dtr {}, newer than this bootstrapper ({})",
                newer.id,
                newer.version,
                version::VERSION
            ),
            format!(
                "use registry/dtr:{} (downgrades are not supported)",
                newer.version
            ),
        ));
    }
    match version_rules::decide_str(from, version::VERSION) {
        Verdict::Refused { reason, next } => Err(refused(reason, next)),
        Verdict::Same | Verdict::Allowed(_) => Ok(()),
    }
}

/// The quorum must hold and a database primary exist; before an upgrade starts every replica
/// must be healthy. An upgrade under way (`resuming`) may have left a replica half replaced,
/// with a container stopped or missing: that is what the run finishes.
fn check_health(view: &ClusterView, resuming: bool) -> Result<()> {
    let problems = view.problems(!resuming);
    if problems.is_empty() {
        return Ok(());
    }
    Err(Error::Refused {
        operation: "upgrade",
        reasons: problems,
        hint: "repair the cluster first (`dtr status` shows it; `dtr remove` or `dtr emergency-repair`)".into(),
    })
}

/// A replica whose etcd runs, to run `etcdctl` in.
fn etcd_via(replicas: &BTreeMap<ReplicaId, ReplicaView>) -> Option<ReplicaId> {
    replicas
        .values()
        .filter(|r| r.running(Component::Etcd))
        .map(|r| r.id.clone())
        .next()
}

async fn read_progress(engine: &Engine, via: &ReplicaId) -> Result<Option<Progress>> {
    let out = cluster::etcdctl(engine, via, &["get", PROGRESS_KEY, "--print-value-only"]).await?;
    let text = out.trim();
    if text.is_empty() {
        return Ok(None);
    }
    serde_json::from_str(text)
        .map(Some)
        .map_err(|e| Error::ClusterCommand {
            command: format!("etcdctl get {PROGRESS_KEY}"),
            container: Component::Etcd.container_name(via),
            output: format!("the upgrade record is unreadable ({e}): {text}"),
        })
}

async fn write_progress(engine: &Engine, via: &ReplicaId, p: &Progress) -> Result<()> {
    let json = serde_json::to_string(p).expect("serializable");
    cluster::etcdctl(engine, via, &["put", PROGRESS_KEY, &json]).await?;
    Ok(())
}

/// The replica whose database member is the primary, asked of any replica that answers.
async fn db_leader(
    engine: &Engine,
    replicas: &BTreeMap<ReplicaId, ReplicaView>,
) -> Result<ReplicaId> {
    let mut last = None;
    for r in replicas
        .values()
        .filter(|r| r.running(Component::Rethinkdb))
    {
        match cluster::db_members(engine, &r.id).await {
            Ok(members) => {
                if let Some(id) = members
                    .iter()
                    .find(|m| m.role == "leader")
                    .and_then(|m| ReplicaId::parse(&m.name).ok())
                {
                    return Ok(id);
                }
            }
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| Error::Refused {
        operation: "upgrade",
        reasons: vec!["the metadata database has no primary".into()],
        hint: "wait for the database to elect a primary (`dtr status`), or repair the cluster with `dtr emergency-repair`".into(),
    }))
}

async fn schema_version(engine: &Engine, leader: &ReplicaId) -> Result<i32> {
    let out = cluster::psql(
        engine,
        leader,
        db::DATABASE,
        "SELECT coalesce(max(version), 0) FROM schema_migrations",
    )
    .await?;
    out.trim().parse().map_err(|_| Error::ClusterCommand {
        command: "SELECT max(version) FROM schema_migrations".into(),
        container: Component::Rethinkdb.container_name(leader),
        output: format!("unexpected schema version {:?}", out.trim()),
    })
}

async fn queue_migration(
    engine: &Engine,
    leader: &ReplicaId,
    p: &Progress,
    target: i32,
) -> Result<i64> {
    let sql = format!(
        "INSERT INTO jobs (action, parameters, created_by) VALUES ('metadatastoremigration', '{{\"schemaVersion\": {target}}}', 'dtr upgrade {} to {}') RETURNING id",
        p.from, p.to
    );
    let out = cluster::psql(engine, leader, db::DATABASE, &sql).await?;
    out.lines()
        .find_map(|l| l.trim().parse().ok())
        .ok_or_else(|| Error::ClusterCommand {
            command: "INSERT INTO jobs (metadatastoremigration)".into(),
            container: Component::Rethinkdb.container_name(leader),
            output: format!("queueing the migration job answered {out:?}"),
        })
}

struct JobState {
    status: String,
    attempts: i32,
    max_attempts: i32,
    last_error: String,
}

async fn job_state(engine: &Engine, leader: &ReplicaId, job: i64) -> Result<JobState> {
    let out = cluster::psql(
        engine,
        leader,
        db::DATABASE,
        &format!(
            "SELECT status, attempts, max_attempts, replace(coalesce(last_error, ''), E'\\n', ' ') FROM jobs WHERE id = {job}"
        ),
    )
    .await?;
    let line = out.lines().next().unwrap_or("");
    let mut fields = line.splitn(4, ' ');
    let (Some(status), Some(attempts), Some(max)) = (fields.next(), fields.next(), fields.next())
    else {
        return Err(Error::MigrationFailed {
            job,
            reason: "the job is gone from the jobs table".into(),
        });
    };
    Ok(JobState {
        status: status.to_string(),
        attempts: attempts.parse().unwrap_or(0),
        max_attempts: max.parse().unwrap_or(0),
        last_error: fields.next().unwrap_or("").to_string(),
    })
}

/// Waits for the migration job to be done; its own retries (3 attempts) are the jobrunner's.
async fn wait_migration(
    engine: &Engine,
    replicas: &BTreeMap<ReplicaId, ReplicaView>,
    job: i64,
    max_wait: Option<Duration>,
    reporter: &Reporter,
) -> Result<()> {
    let step = reporter.step(format!("wait for the metadatastoremigration job {job}"));
    let limit = max_wait.unwrap_or(MIGRATION_WAIT);
    let start = Instant::now();
    loop {
        // the primary may move while the cluster is being upgraded: ask for it each time
        let state = match db_leader(engine, replicas).await {
            Ok(leader) => job_state(engine, &leader, job).await.ok(),
            Err(_) => None,
        };
        match state {
            Some(s) if s.status == "done" => {
                step.done(format!(
                    "done (attempt {} of {}, {:.1}s)",
                    s.attempts,
                    s.max_attempts,
                    start.elapsed().as_secs_f64()
                ));
                return Ok(());
            }
            Some(s) if s.status == "failed" => {
                step.fail("failed");
                return Err(Error::MigrationFailed {
                    job,
                    reason: format!(
                        "it failed {} time(s): {}",
                        s.attempts,
                        if s.last_error.is_empty() {
                            "no error recorded"
                        } else {
                            &s.last_error
                        }
                    ),
                });
            }
            Some(s) => step.waiting(
                start.elapsed(),
                &format!(
                    "{} (attempt {} of {})",
                    s.status, s.attempts, s.max_attempts
                ),
            ),
            None => step.waiting(start.elapsed(), "the database primary is moving"),
        }
        if start.elapsed() >= limit {
            step.fail("timed out");
            return Err(Error::MigrationFailed {
                job,
                reason: format!(
                    "it did not finish within {}s (a jobrunner of {} claims it)",
                    limit.as_secs(),
                    version::VERSION
                ),
            });
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Moves the database primary away from `from`, to an upgraded replica when there is one.
async fn switch_over(
    engine: &Engine,
    replicas: &BTreeMap<ReplicaId, ReplicaView>,
    from: &ReplicaId,
    upgraded: &[(ReplicaId, Duration)],
    max_wait: Option<Duration>,
    reporter: &Reporter,
) -> Result<()> {
    let candidate = upgraded
        .iter()
        .map(|(r, _)| r)
        .chain(replicas.keys())
        .find(|r| *r != from)
        .cloned()
        .expect("more than one replica");
    let step = reporter.step(format!(
        "move the database primary from {from} to {candidate}"
    ));
    cluster::patronictl(
        engine,
        &candidate,
        &[
            "switchover",
            "--leader",
            from.as_str(),
            "--candidate",
            candidate.as_str(),
            "--force",
        ],
    )
    .await?;
    let limit = max_wait.unwrap_or(Duration::from_secs(60));
    let start = Instant::now();
    if !cluster::wait_primary(engine, &candidate, limit).await {
        step.fail("timed out");
        return Err(Error::Unhealthy {
            container: Component::Rethinkdb.container_name(&candidate),
            waited: limit,
            last_output: "the member did not become the primary".into(),
            logs: String::new(),
        });
    }
    step.done(format!("{:.1}s", start.elapsed().as_secs_f64()));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::cluster::{ContainerView, Health};

    fn replica(id: &str, version: &str) -> (ReplicaId, ReplicaView) {
        let id = ReplicaId::parse(id).unwrap();
        let view = ReplicaView {
            id: id.clone(),
            version: version.into(),
            containers: Component::ALL
                .iter()
                .map(|c| {
                    (
                        *c,
                        ContainerView {
                            name: c.container_name(&id),
                            health: Health::Healthy,
                            version: version.into(),
                        },
                    )
                })
                .collect(),
            https_port: None,
            http_port: None,
            node: None,
            elsewhere: None,
        };
        (id, view)
    }

    fn refusal(r: Result<()>) -> String {
        match r {
            Err(Error::Refused { reasons, hint, .. }) => format!("{} | {hint}", reasons.join("; ")),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn the_oldest_replica_decides_and_newer_ones_are_refused() {
        let cluster: BTreeMap<_, _> = [
            replica("aaaaaaaaaaaa", version::VERSION),
            replica("bbbbbbbbbbbb", "0.0.1"),
        ]
        .into_iter()
        .collect();
        assert_eq!(oldest(&cluster), "0.0.1");
        let cluster: BTreeMap<_, _> = [replica("aaaaaaaaaaaa", "99.0.0")].into_iter().collect();
        let why = refusal(decide(&cluster, None, version::VERSION));
        assert!(why.contains("newer than this bootstrapper"), "{why}");
    }

    #[test]
    fn an_upgrade_to_another_version_under_way_is_refused() {
        let cluster: BTreeMap<_, _> = [replica("aaaaaaaaaaaa", version::VERSION)]
            .into_iter()
            .collect();
        let p = Progress {
            from: version::VERSION.into(),
            to: "99.0.0".into(),
            started_at: 1,
            migration_job: None,
        };
        let why = refusal(decide(&cluster, Some(&p), version::VERSION));
        assert!(why.contains("registry/dtr:99.0.0"), "{why}");
        let mine = Progress {
            to: version::VERSION.into(),
            ..p
        };
        assert!(decide(&cluster, Some(&mine), version::VERSION).is_ok());
    }

    #[test]
    fn jobrunner_before_api_and_nginx_last() {
        let at = |c| ORDER.iter().position(|x| *x == c).unwrap();
        assert!(at(Component::Jobrunner) < at(Component::Api));
        assert_eq!(ORDER.last(), Some(&Component::Nginx));
        assert_eq!(ORDER[0], Component::Etcd);
        let mut all = ORDER.to_vec();
        all.sort();
        let mut expected = Component::ALL.to_vec();
        expected.sort();
        assert_eq!(all, expected);
    }
}
