//! Background jobs in the metadata database, shared by the api (which queues and shows them) and
//! the jobrunners (which claim and run them). Tables `jobs` and `job_logs` (migration 3).
//!
//! Life of a job: `waiting` → claimed by one jobrunner (`running`, `attempts + 1`) → `done`, or,
//! on failure, `waiting` again after [`RETRY_DELAY`] until it has had `max_attempts` attempts
//! (then `failed` with `last_error`). A jobrunner heart-beats the job it runs; a `running` job
//! whose heartbeat is older than [`STALE_AFTER`] is requeued (or failed) by any jobrunner.
//! See docs/jobs.md.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio_postgres::{GenericClient, Row};

/// Attempts of a job, as the upgrade guide of the original says of `metadatastoremigration`.
pub const MAX_ATTEMPTS: i32 = 3;
/// A `running` job whose jobrunner has not touched it for this long is requeued.
pub const STALE_AFTER: Duration = Duration::from_secs(60);
/// A failed attempt waits this long before the next one may start.
pub const RETRY_DELAY: Duration = Duration::from_secs(5);
/// Serialises claims across jobrunners (`pg_advisory_xact_lock`), so that the check "no other
/// garbage collection is running" and the claim are one step.
const CLAIM_LOCK: i64 = 7_275_697;
/// Log lines kept per attempt; later ones are counted, not stored (a collection of a large
/// registry prints one line per blob).
pub const MAX_LOG_LINES_PER_ATTEMPT: usize = 5000;

/// What a job does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Garbage collection of the blobs no manifest references (distribution's collector).
    Gc,
    /// Applies the metadata database's schema migrations (run after upgrades).
    MetadataStoreMigration,
    /// Removes the tags whose content the image storage does not hold (after a switch to a
    /// store that lacks them, or lost notifications): the tag table made to match the store.
    TagReconcile,
}

impl Action {
    pub const ALL: [Action; 3] = [
        Action::Gc,
        Action::MetadataStoreMigration,
        Action::TagReconcile,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Action::Gc => "gc",
            Action::MetadataStoreMigration => "metadatastoremigration",
            Action::TagReconcile => "tagreconcile",
        }
    }

    pub fn parse(s: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.name() == s)
    }

    /// Checks and normalises a job's `parameters` (`null` or absent = `{}`).
    pub fn check_parameters(self, parameters: Option<Value>) -> Result<Value, String> {
        let p = match parameters {
            None | Some(Value::Null) => Value::Object(Default::default()),
            Some(v @ Value::Object(_)) => v,
            Some(_) => return Err("parameters must be a JSON object".into()),
        };
        match self {
            Action::Gc => {
                let gc: GcParameters =
                    serde_json::from_value(p).map_err(|e| format!("parameters of gc: {e}"))?;
                Ok(serde_json::to_value(gc).expect("serializable"))
            }
            Action::MetadataStoreMigration => {
                let m: MigrationParameters = serde_json::from_value(p)
                    .map_err(|e| format!("parameters of metadatastoremigration: {e}"))?;
                Ok(serde_json::to_value(m).expect("serializable"))
            }
            Action::TagReconcile => {
                let r: ReconcileParameters = serde_json::from_value(p)
                    .map_err(|e| format!("parameters of tagreconcile: {e}"))?;
                Ok(serde_json::to_value(r).expect("serializable"))
            }
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Parameters of `metadatastoremigration`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MigrationParameters {
    /// The schema version the job must reach (`dtr upgrade` sets the new version's). Only a
    /// jobrunner whose code knows that version claims the job: during a rolling upgrade the
    /// replicas not yet replaced leave it to the new ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_version: Option<i32>,
}

/// Parameters of `tagreconcile`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ReconcileParameters {
    /// Only report the tags that would be removed.
    pub dry_run: bool,
}

/// Parameters of `gc`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct GcParameters {
    /// Only report what would be deleted (no fence, no wait, nothing deleted).
    pub dry_run: bool,
    /// Also delete manifests no tag points to (distribution's `--delete-untagged`).
    pub delete_untagged: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Waiting,
    Running,
    Done,
    Failed,
}

impl Status {
    pub const ALL: [Status; 4] = [
        Status::Waiting,
        Status::Running,
        Status::Done,
        Status::Failed,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Status::Waiting => "waiting",
            Status::Running => "running",
            Status::Done => "done",
            Status::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|x| x.name() == s)
    }
}

/// A job as the api shows it (camelCase JSON; times in UTC, RFC 3339 with milliseconds).
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Job {
    pub id: i64,
    pub action: String,
    pub status: String,
    pub attempts: i32,
    pub max_attempts: i32,
    pub parameters: Value,
    pub result: Option<Value>,
    pub created_by: String,
    pub created_at: String,
    /// A waiting job does not start before this (the delay before a retry).
    pub not_before: String,
    pub started_at: Option<String>,
    pub ended_at: Option<String>,
    /// Replica id of the jobrunner that runs (or last ran) the job.
    pub claimed_by: Option<String>,
    pub heartbeat_at: Option<String>,
    pub last_error: Option<String>,
}

macro_rules! ts {
    ($col:literal) => {
        concat!(
            "to_char(",
            $col,
            " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"
        )
    };
}

/// The columns [`Job::from_row`] reads, in order.
pub const JOB_COLUMNS: &str = concat!(
    "id, action, status, attempts, max_attempts, parameters, result, created_by, ",
    ts!("created_at"),
    ", ",
    ts!("not_before"),
    ", ",
    ts!("started_at"),
    ", ",
    ts!("ended_at"),
    ", claimed_by, ",
    ts!("heartbeat_at"),
    ", last_error"
);

impl Job {
    pub fn from_row(r: &Row) -> Job {
        Job {
            id: r.get(0),
            action: r.get(1),
            status: r.get(2),
            attempts: r.get(3),
            max_attempts: r.get(4),
            parameters: r.get(5),
            result: r.get(6),
            created_by: r.get(7),
            created_at: r.get(8),
            not_before: r.get(9),
            started_at: r.get(10),
            ended_at: r.get(11),
            claimed_by: r.get(12),
            heartbeat_at: r.get(13),
            last_error: r.get(14),
        }
    }
}

/// One stored log line of a job.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct LogLine {
    pub line_num: i64,
    pub at: String,
    pub attempt: i32,
    pub data: String,
}

type DbResult<T> = Result<T, tokio_postgres::Error>;

/// Queues a job (parameters already checked with [`Action::check_parameters`]).
pub async fn enqueue(
    db: &impl GenericClient,
    action: Action,
    parameters: &Value,
    created_by: &str,
) -> DbResult<Job> {
    let sql = format!(
        "INSERT INTO jobs (action, parameters, created_by, max_attempts) VALUES ($1, $2, $3, $4)
         RETURNING {JOB_COLUMNS}"
    );
    let row = db
        .query_one(
            &sql,
            &[&action.name(), parameters, &created_by, &MAX_ATTEMPTS],
        )
        .await?;
    Ok(Job::from_row(&row))
}

pub async fn get(db: &impl GenericClient, id: i64) -> DbResult<Option<Job>> {
    let sql = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1");
    Ok(db.query_opt(&sql, &[&id]).await?.map(|r| Job::from_row(&r)))
}

/// Newest first, optionally only one action and/or status.
pub async fn list(
    db: &impl GenericClient,
    action: Option<Action>,
    status: Option<Status>,
    limit: i64,
) -> DbResult<Vec<Job>> {
    let sql = format!(
        "SELECT {JOB_COLUMNS} FROM jobs
         WHERE ($1::text IS NULL OR action = $1) AND ($2::text IS NULL OR status = $2)
         ORDER BY id DESC LIMIT $3"
    );
    let rows = db
        .query(
            &sql,
            &[&action.map(Action::name), &status.map(Status::name), &limit],
        )
        .await?;
    Ok(rows.iter().map(Job::from_row).collect())
}

/// Log lines after `after` (a `lineNum`), oldest first.
pub async fn logs(
    db: &impl GenericClient,
    id: i64,
    after: i64,
    limit: i64,
) -> DbResult<Vec<LogLine>> {
    let rows = db
        .query(
            concat!(
                "SELECT seq, ",
                ts!("at"),
                ", attempt, line FROM job_logs WHERE job_id = $1 AND seq > $2 ORDER BY seq LIMIT $3"
            ),
            &[&id, &after, &limit],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| LogLine {
            line_num: r.get(0),
            at: r.get(1),
            attempt: r.get(2),
            data: r.get(3),
        })
        .collect())
}

pub async fn append_log(
    db: &impl GenericClient,
    id: i64,
    attempt: i32,
    line: &str,
) -> DbResult<()> {
    db.execute(
        "INSERT INTO job_logs (job_id, attempt, line) VALUES ($1, $2, $3)",
        &[&id, &attempt, &line],
    )
    .await?;
    Ok(())
}

/// True while a garbage collection that deletes (not a dry run) is running: the token service
/// then grants no push or delete. The caller holds the `write_token_horizon` row lock, so a
/// collection that starts after this answer waits for every token issued before it.
pub async fn writes_fenced(db: &impl GenericClient) -> DbResult<bool> {
    let row = db
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM jobs WHERE action = 'gc' AND status = 'running'
                            AND NOT coalesce((parameters->>'dryRun')::boolean, false))",
            &[],
        )
        .await?;
    Ok(row.get(0))
}

/// A job a jobrunner has claimed: which attempt this is.
#[derive(Clone, Debug, PartialEq)]
pub struct Claimed {
    pub id: i64,
    pub action: String,
    pub parameters: Value,
    pub attempt: i32,
    pub max_attempts: i32,
}

/// Claims the oldest waiting job that may start now, for `runner` (a replica id). Several
/// jobrunners may call this at once: each job is claimed once (`FOR UPDATE SKIP LOCKED`, under
/// an advisory lock that also keeps two garbage collections from running together).
pub async fn claim(db: &mut tokio_postgres::Client, runner: &str) -> DbResult<Option<Claimed>> {
    let tx = db.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&CLAIM_LOCK])
        .await?;
    let row = tx
        .query_opt(
            "UPDATE jobs SET status = 'running', attempts = attempts + 1, claimed_by = $1,
                    started_at = now(), heartbeat_at = now(), ended_at = NULL
             WHERE id = (
                 SELECT id FROM jobs j
                 WHERE status = 'waiting' AND not_before <= now()
                   AND NOT (action = 'gc' AND EXISTS
                            (SELECT 1 FROM jobs r WHERE r.action = 'gc' AND r.status = 'running'))
                   AND NOT (action = 'metadatastoremigration'
                            AND coalesce((parameters->>'schemaVersion')::int, 0) > $2)
                 ORDER BY id
                 FOR UPDATE SKIP LOCKED
                 LIMIT 1)
             RETURNING id, action, parameters, attempts, max_attempts",
            &[&runner, &crate::db::schema_target()],
        )
        .await?;
    tx.commit().await?;
    Ok(row.map(|r| Claimed {
        id: r.get(0),
        action: r.get(1),
        parameters: r.get(2),
        attempt: r.get(3),
        max_attempts: r.get(4),
    }))
}

/// The jobrunner is still working on this attempt. False when the job is no longer ours (it
/// was requeued as stale): the runner must stop it.
pub async fn touch(db: &impl GenericClient, job: &Claimed, runner: &str) -> DbResult<bool> {
    let n = db
        .execute(
            "UPDATE jobs SET heartbeat_at = now()
             WHERE id = $1 AND status = 'running' AND claimed_by = $2 AND attempts = $3",
            &[&job.id, &runner, &job.attempt],
        )
        .await?;
    Ok(n == 1)
}

/// Where a finished attempt leaves its job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Done,
    /// Failed, will be retried.
    Retry,
    /// Failed, no attempt left.
    Failed,
    /// The job was no longer ours (requeued as stale); nothing was written.
    Lost,
}

/// Records the end of an attempt: `done` with `result`, or the error (retry or `failed`).
pub async fn finish(
    db: &impl GenericClient,
    job: &Claimed,
    runner: &str,
    result: Result<Value, String>,
) -> DbResult<Outcome> {
    let row = match result {
        Ok(value) => {
            db.query_opt(
                "UPDATE jobs SET status = 'done', result = $4, ended_at = now(), last_error = NULL
                 WHERE id = $1 AND status = 'running' AND claimed_by = $2 AND attempts = $3
                 RETURNING status",
                &[&job.id, &runner, &job.attempt, &value],
            )
            .await?
        }
        Err(error) => {
            let delay = RETRY_DELAY.as_secs_f64();
            db.query_opt(
                "UPDATE jobs SET
                     status = CASE WHEN attempts >= max_attempts THEN 'failed' ELSE 'waiting' END,
                     not_before = now() + make_interval(secs => $5),
                     ended_at = now(), last_error = $4
                 WHERE id = $1 AND status = 'running' AND claimed_by = $2 AND attempts = $3
                 RETURNING status",
                &[&job.id, &runner, &job.attempt, &error, &delay],
            )
            .await?
        }
    };
    Ok(match row.map(|r| r.get::<_, String>(0)).as_deref() {
        None => Outcome::Lost,
        Some("done") => Outcome::Done,
        Some("waiting") => Outcome::Retry,
        Some(_) => Outcome::Failed,
    })
}

/// Requeues (or fails, when no attempt is left) the running jobs nobody heart-beats any more,
/// and, when `own` is given, every running job claimed by that jobrunner (it has just started,
/// so it runs nothing: those were cut off by a restart). Returns (id, new status) of each.
pub async fn recover(db: &impl GenericClient, own: Option<&str>) -> DbResult<Vec<(i64, String)>> {
    let stale = STALE_AFTER.as_secs_f64();
    let delay = RETRY_DELAY.as_secs_f64();
    let rows = db
        .query(
            "WITH lost AS (
                 SELECT id, claimed_by,
                        CASE WHEN claimed_by = $1 THEN 'its jobrunner restarted'
                             ELSE 'its jobrunner stopped heart-beating' END AS why
                 FROM jobs
                 WHERE status = 'running'
                   AND (claimed_by = $1 OR heartbeat_at < now() - make_interval(secs => $2))
                 FOR UPDATE SKIP LOCKED),
             moved AS (
                 UPDATE jobs j SET
                     status = CASE WHEN j.attempts >= j.max_attempts THEN 'failed' ELSE 'waiting' END,
                     not_before = now() + make_interval(secs => $3),
                     ended_at = now(),
                     last_error = format('attempt %s: %s (%s)', j.attempts, lost.why, lost.claimed_by)
                 FROM lost WHERE j.id = lost.id
                 RETURNING j.id, j.status, j.attempts, j.last_error),
             logged AS (
                 INSERT INTO job_logs (job_id, attempt, line)
                 SELECT id, attempts, last_error || CASE WHEN status = 'failed'
                                                         THEN '; no attempt left'
                                                         ELSE '; requeued' END
                 FROM moved)
             SELECT id, status FROM moved ORDER BY id",
            &[&own, &stale, &delay],
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn actions_and_statuses_round_trip_by_name() {
        for a in Action::ALL {
            assert_eq!(Action::parse(a.name()), Some(a));
        }
        assert_eq!(Action::parse("gc"), Some(Action::Gc));
        assert_eq!(
            Action::parse("metadatastoremigration"),
            Some(Action::MetadataStoreMigration)
        );
        assert_eq!(Action::parse("GC"), None);
        assert_eq!(Action::parse("rm -rf"), None);
        for s in Status::ALL {
            assert_eq!(Status::parse(s.name()), Some(s));
        }
        assert_eq!(Status::parse("retrying"), None);
    }

    #[test]
    fn parameters_are_checked_per_action() {
        assert_eq!(
            Action::Gc.check_parameters(None).unwrap(),
            json!({"dryRun": false, "deleteUntagged": false})
        );
        assert_eq!(
            Action::Gc
                .check_parameters(Some(json!({"dryRun": true})))
                .unwrap(),
            json!({"dryRun": true, "deleteUntagged": false})
        );
        assert!(Action::Gc
            .check_parameters(Some(json!({"dryrun": true})))
            .unwrap_err()
            .contains("unknown field"));
        assert!(Action::Gc
            .check_parameters(Some(json!({"dryRun": "yes"})))
            .is_err());
        assert!(Action::Gc.check_parameters(Some(json!([1]))).is_err());
        assert_eq!(
            Action::MetadataStoreMigration
                .check_parameters(Some(Value::Null))
                .unwrap(),
            json!({})
        );
        assert!(Action::MetadataStoreMigration
            .check_parameters(Some(json!({"x": 1})))
            .is_err());
    }

    #[test]
    fn timestamps_are_selected_in_utc() {
        assert!(JOB_COLUMNS.contains("to_char(created_at AT TIME ZONE 'UTC'"));
        assert_eq!(JOB_COLUMNS.matches("to_char(").count(), 5);
    }

    /// The SQL against a real PostgreSQL: `DTR_TEST_PG` is the connection string of a scratch
    /// database (`scripts/test-servers.sh`). Creates and drops the tables of the migrations in
    /// a schema of its own.
    #[tokio::test]
    async fn claims_retries_and_recovery_against_postgres() {
        let Some(conn) = crate::testing::required_env("DTR_TEST_PG") else {
            return;
        };
        let (mut db, connection) = tokio_postgres::connect(&conn, tokio_postgres::NoTls)
            .await
            .expect("connect to DTR_TEST_PG");
        tokio::spawn(connection);
        let schema = format!("dtr_jobs_test_{}", std::process::id());
        db.batch_execute(&format!(
            "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}; SET search_path = {schema}"
        ))
        .await
        .unwrap();
        // the api's migrations, into this schema (the first of the search path)
        assert!(crate::db::migrate(&mut db).await.unwrap() >= 3);
        // a second connection, as a second jobrunner
        let (mut other, connection) = tokio_postgres::connect(&conn, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        other
            .batch_execute(&format!("SET search_path = {schema}"))
            .await
            .unwrap();

        let p = Action::Gc.check_parameters(None).unwrap();
        let gc1 = enqueue(&db, Action::Gc, &p, "admin").await.unwrap();
        assert_eq!(
            (gc1.status.as_str(), gc1.attempts, gc1.max_attempts),
            ("waiting", 0, 3)
        );
        assert!(gc1.created_at.ends_with('Z') && gc1.started_at.is_none());
        let gc2 = enqueue(&db, Action::Gc, &p, "admin").await.unwrap();
        let mig = enqueue(&db, Action::MetadataStoreMigration, &json!({}), "admin")
            .await
            .unwrap();
        assert!(!writes_fenced(&db).await.unwrap());

        // two runners claim at once: different jobs, and never two collections together
        let (a, b) = tokio::join!(
            claim(&mut db, "aaaaaaaaaaaa"),
            claim(&mut other, "bbbbbbbbbbbb")
        );
        let (a, b) = (a.unwrap().unwrap(), b.unwrap().unwrap());
        let mut ids = [a.id, b.id];
        ids.sort();
        assert_eq!(ids, [gc1.id, mig.id], "gc2 must wait for gc1");
        assert!(writes_fenced(&db).await.unwrap());
        assert_eq!(claim(&mut db, "aaaaaaaaaaaa").await.unwrap(), None);
        let (gc, gc_runner, mig_claim, mig_runner) = if a.id == gc1.id {
            (a, "aaaaaaaaaaaa", b, "bbbbbbbbbbbb")
        } else {
            (b, "bbbbbbbbbbbb", a, "aaaaaaaaaaaa")
        };
        assert_eq!(gc.attempt, 1);
        assert!(touch(&db, &gc, gc_runner).await.unwrap());
        assert!(!touch(&db, &gc, "cccccccccccc").await.unwrap());
        assert_eq!(
            finish(&db, &mig_claim, mig_runner, Ok(json!({"schemaVersion": 3})))
                .await
                .unwrap(),
            Outcome::Done
        );

        // a failed attempt is retried after the delay, up to three attempts
        assert_eq!(
            finish(&db, &gc, gc_runner, Err("boom 1".into()))
                .await
                .unwrap(),
            Outcome::Retry
        );
        assert!(!writes_fenced(&db).await.unwrap());
        let j = get(&db, gc1.id).await.unwrap().unwrap();
        assert_eq!((j.status.as_str(), j.attempts), ("waiting", 1));
        assert_eq!(j.last_error.as_deref(), Some("boom 1"));
        // not before the retry delay: gc2 (older not_before) goes first
        let next = claim(&mut db, "aaaaaaaaaaaa").await.unwrap().unwrap();
        assert_eq!(next.id, gc2.id);
        finish(&db, &next, "aaaaaaaaaaaa", Ok(json!({})))
            .await
            .unwrap();
        db.execute(
            "UPDATE jobs SET not_before = now() WHERE id = $1",
            &[&gc1.id],
        )
        .await
        .unwrap();
        for attempt in 2..=3 {
            let c = claim(&mut db, "aaaaaaaaaaaa").await.unwrap().unwrap();
            assert_eq!((c.id, c.attempt), (gc1.id, attempt));
            let outcome = finish(&db, &c, "aaaaaaaaaaaa", Err(format!("boom {attempt}")))
                .await
                .unwrap();
            assert_eq!(
                outcome,
                if attempt < 3 {
                    Outcome::Retry
                } else {
                    Outcome::Failed
                }
            );
            db.execute(
                "UPDATE jobs SET not_before = now() WHERE id = $1",
                &[&gc1.id],
            )
            .await
            .unwrap();
        }
        let j = get(&db, gc1.id).await.unwrap().unwrap();
        assert_eq!((j.status.as_str(), j.attempts), ("failed", 3));
        assert_eq!(claim(&mut db, "aaaaaaaaaaaa").await.unwrap(), None);

        // a runner that stops heart-beating loses its job to the others
        let stale = enqueue(&db, Action::MetadataStoreMigration, &json!({}), "admin")
            .await
            .unwrap();
        let c = claim(&mut db, "aaaaaaaaaaaa").await.unwrap().unwrap();
        assert!(recover(&db, None).await.unwrap().is_empty());
        db.execute(
            "UPDATE jobs SET heartbeat_at = now() - interval '61 s' WHERE id = $1",
            &[&stale.id],
        )
        .await
        .unwrap();
        assert_eq!(
            recover(&db, None).await.unwrap(),
            vec![(stale.id, "waiting".to_string())]
        );
        assert!(!touch(&db, &c, "aaaaaaaaaaaa").await.unwrap());
        assert_eq!(
            finish(&db, &c, "aaaaaaaaaaaa", Ok(json!({})))
                .await
                .unwrap(),
            Outcome::Lost
        );
        // a restarted runner gives up what it had claimed
        db.execute(
            "UPDATE jobs SET not_before = now() WHERE id = $1",
            &[&stale.id],
        )
        .await
        .unwrap();
        let c = claim(&mut other, "bbbbbbbbbbbb").await.unwrap().unwrap();
        assert_eq!((c.id, c.attempt), (stale.id, 2));
        assert!(recover(&db, Some("aaaaaaaaaaaa")).await.unwrap().is_empty());
        assert_eq!(
            recover(&db, Some("bbbbbbbbbbbb")).await.unwrap(),
            vec![(stale.id, "waiting".to_string())]
        );
        let lines = logs(&db, stale.id, 0, 100).await.unwrap();
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(lines[0].data.contains("stopped heart-beating"), "{lines:?}");
        assert!(lines[1].data.contains("restarted"), "{lines:?}");
        append_log(&db, stale.id, 2, "hello").await.unwrap();
        let after = logs(&db, stale.id, lines[1].line_num, 100).await.unwrap();
        assert_eq!(after.len(), 1);
        assert_eq!(after[0].data, "hello");

        let all = list(&db, None, None, 100).await.unwrap();
        assert_eq!(all.len(), 4);
        assert_eq!(all[0].id, stale.id, "newest first");
        let failed = list(&db, Some(Action::Gc), Some(Status::Failed), 100)
            .await
            .unwrap();
        assert_eq!(failed.iter().map(|j| j.id).collect::<Vec<_>>(), [gc1.id]);

        db.batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
            .await
            .unwrap();
    }
}
