//! `dtr backup`: the metadata of a running cluster as one archive on stdout, made while it
//! serves. Every part is one consistent read: DTR's etcd keys at one revision, one `pg_dump`
//! snapshot per database (taken on the database primary, so the newest committed data), the
//! cluster-wide settings and the dtr-ca volume's shared files (the CA and its key, the token
//! key, the notary passphrase, the user's HTTPS certificate). Image blobs are not in it.
//! The parts are spooled to a private temporary directory, hashed, then streamed out behind a
//! manifest (`backup::archive`), encrypted with age when asked (`backup::crypt`).

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::backup::{self, archive, crypt, EtcdKeys};
use crate::engine::{Engine, Target};
use crate::error::{Error, Result};
use crate::ops::cluster::{self, Chooser};
use crate::ops::config::ClusterConfig;
use crate::ops::steps;
use crate::report::Reporter;
use dtr_core::component::Component;
use dtr_core::options::ReplicaId;
use dtr_core::version;

pub struct BackupOptions {
    pub existing: Option<ReplicaId>,
    pub offline: bool,
    pub protection: crypt::Protection,
}

pub struct BackupReport {
    pub replica: ReplicaId,
    /// The replica whose database member was dumped (the primary when there is one).
    pub db_from: ReplicaId,
    pub entries: usize,
    pub bytes: u64,
    pub encrypted: bool,
}

pub async fn backup<W: Write>(
    target: &Target,
    opts: BackupOptions,
    choose: Chooser<'_>,
    out: W,
    reporter: &Reporter,
) -> Result<BackupReport> {
    let engine = steps::connect(target, reporter).await?;

    let replicas = cluster::replicas(&engine).await?;
    // no replica at all: pick_replica says so, naming none
    let replica = cluster::pick_replica(
        &replicas,
        opts.existing.clone(),
        |v| v.running(Component::Etcd),
        |v| v.healthy(),
        choose,
    )?;
    let view = &replicas[&replica];
    if view.version != version::VERSION {
        return Err(Error::Refused {
            operation: "backup",
            reasons: vec![format!(
                "replica {replica} runs dtr {}; this bootstrapper is dtr {}",
                view.version,
                version::VERSION
            )],
            hint: format!(
                "back it up with registry/dtr:{} (a backup restores only with the version that made it)",
                view.version
            ),
        });
    }
    if opts.offline {
        reporter.info(
            "--offline-backup: nothing is stopped; each database dump is already one consistent snapshot taken while the cluster serves",
        );
    }
    reporter.warn(
        "the backup holds the cluster's private keys (CA, token signing, notary): keep it like a secret, or encrypt it (--encrypt-to / --encrypt-with-passphrase)",
    );

    // the spool holds the cluster's private keys: it is removed however this ends, Ctrl-C and
    // SIGTERM included
    let spool = crate::ops::private_temp_dir("dtr-backup-", "the backup")?;
    crate::ops::interruptible(write_backup(
        &engine,
        &replica,
        &replicas,
        spool.path(),
        &opts.protection,
        out,
        reporter,
    ))
    .await
}

async fn write_backup<W: Write>(
    engine: &Engine,
    replica: &ReplicaId,
    replicas: &std::collections::BTreeMap<ReplicaId, cluster::ReplicaView>,
    spool: &Path,
    protection: &crypt::Protection,
    out: W,
    reporter: &Reporter,
) -> Result<BackupReport> {
    let mut files: Vec<(String, PathBuf)> = Vec::new();

    let step = reporter.step("etcd: DTR's keys at one revision");
    let keys = etcd_keys(engine, replica).await?;
    let path = spool_json(spool, backup::ETCD_KEYS, &keys)?;
    files.push((backup::ETCD_KEYS.into(), path));
    step.done(format!(
        "{} keys at revision {}",
        keys.keys.len(),
        keys.revision
    ));

    let (db_from, primary_elsewhere) = database_source(engine, replica, replicas, reporter).await;
    let container = Component::Rethinkdb.container_name(&db_from);
    std::fs::create_dir_all(spool.join("db"))
        .map_err(|e| Error::io("create the spool directory", e))?;
    for db in backup::DATABASES {
        let source = match &primary_elsewhere {
            Some(p) => format!(
                "from {} through {container}",
                Component::Rethinkdb.container_name(p)
            ),
            None => format!("on {container}"),
        };
        let step = reporter.step(format!("database {db}: one snapshot (pg_dump {source})"));
        let rel = backup::db_entry(db);
        let path = spool.join(&rel);
        let dbname = match &primary_elsewhere {
            // the rethinkdb certificate is the postgres superuser on every member
            Some(p) => format!(
                "host={} port={} dbname={db} user=postgres sslmode=verify-full sslrootcert=/ca/ca.pem sslcert=/ca/rethinkdb/cert.pem sslkey=/ca/rethinkdb/key.pem",
                Component::Rethinkdb.container_name(p),
                dtr_core::component::DB_PORT
            ),
            None => db.to_string(),
        };
        let mut cmd: Vec<String> = vec![
            "pg_dump".into(),
            "--no-password".into(),
            "--format=custom".into(),
            "--dbname".into(),
            dbname,
        ];
        if *db == "dtr" {
            // which replica's api last beat is the old cluster's business, not the restored one's
            cmd.push("--exclude-table-data=heartbeats".into());
        }
        let result = engine.exec_to_file(&container, &cmd, &path).await?;
        if result.exit_code != 0 {
            step.fail("pg_dump failed");
            return Err(Error::ClusterCommand {
                command: cmd.join(" "),
                container: container.clone(),
                output: result.output.trim().to_string(),
            });
        }
        let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        step.done(format!("{size} bytes"));
        files.push((rel, path));
    }

    let step = reporter.step("cluster settings and certificates");
    let config = ClusterConfig::read(engine, replica).await?;
    let path = spool_json(spool, backup::CLUSTER_SETTINGS, &config.settings)?;
    files.push((backup::CLUSTER_SETTINGS.into(), path));
    for (rel, bytes) in &config.files {
        let entry = format!("{}{rel}", backup::CA_PREFIX);
        let path = spool_file(spool, &entry, bytes.expose())?;
        files.push((entry, path));
    }
    step.done(format!("{} files of the dtr-ca volume", config.files.len()));

    let step = reporter.step("write the archive to stdout");
    let mut entries = Vec::new();
    for (rel, path) in &files {
        entries.push(
            archive::describe_file(rel, path)
                .map_err(|e| Error::io(format!("read the spooled {rel}"), e))?,
        );
    }
    let bytes: u64 = entries.iter().map(|e| e.size).sum();
    let manifest = archive::manifest(
        version::VERSION,
        replica.as_str(),
        dtr_core::timestamp(),
        entries,
    );
    let writer = crypt::encrypt(out, protection).map_err(|e| {
        Error::Input(dtr_core::InputError::invalid(
            "--encrypt-to / --passphrase",
            "(given)",
            format!("cannot encrypt the backup with it: {e}"),
        ))
    })?;
    let encrypted = writer.is_encrypted();
    let writer = archive::write(writer, &manifest, &files)
        .map_err(|e| Error::io("write the backup to stdout", e))?;
    let mut out = writer
        .finish()
        .map_err(|e| Error::io("write the backup to stdout", e))?;
    out.flush()
        .map_err(|e| Error::io("write the backup to stdout", e))?;
    step.done(format!(
        "{} entries, {bytes} bytes of data{}",
        files.len(),
        if encrypted { ", encrypted" } else { "" }
    ));
    Ok(BackupReport {
        replica: replica.clone(),
        db_from,
        entries: files.len(),
        bytes,
        encrypted,
    })
}

/// Where the dumps come from: the database primary's own container when it is on this
/// engine; the primary over `dtr-ol` from the chosen replica's container when it runs on
/// another node (`Some(primary)`); else the chosen replica's own copy (it may lag behind: said
/// so).
async fn database_source(
    engine: &Engine,
    replica: &ReplicaId,
    replicas: &std::collections::BTreeMap<ReplicaId, cluster::ReplicaView>,
    reporter: &Reporter,
) -> (ReplicaId, Option<ReplicaId>) {
    let local_db = replicas[replica].running(Component::Rethinkdb);
    let started = std::time::Instant::now();
    loop {
        let leader = cluster::db_members(engine, replica)
            .await
            .ok()
            .and_then(|m| {
                m.into_iter()
                    .find(|m| m.role == "leader" && m.state == "running")
            })
            .and_then(|m| ReplicaId::parse(&m.name).ok());
        match leader {
            Some(l)
                if replicas
                    .get(&l)
                    .is_some_and(|v| v.running(Component::Rethinkdb)) =>
            {
                return (l, None)
            }
            // a primary on another node counts once it answers: right after its node died,
            // Patroni still names it until its leader key expires and a standby takes over
            Some(l) if local_db && answers(engine, replica, &l).await => {
                return (replica.clone(), Some(l))
            }
            _ if started.elapsed() < PRIMARY_WAIT => {
                tokio::time::sleep(std::time::Duration::from_secs(2)).await
            }
            _ => {
                reporter.warn(format!(
                    "no database primary answers: dumping replica {replica}'s own copy, which may miss the newest writes"
                ));
                return (replica.clone(), None);
            }
        }
    }
}

/// How long a backup waits for a database primary that answers (a failover takes Patroni's
/// ttl plus a loop, about 15 s).
const PRIMARY_WAIT: std::time::Duration = std::time::Duration::from_secs(45);

/// Whether the database of replica `other` accepts connections, asked from `via`'s database
/// container over dtr-ol.
async fn answers(engine: &Engine, via: &ReplicaId, other: &ReplicaId) -> bool {
    let cmd: Vec<String> = [
        "pg_isready",
        "-q",
        "-t",
        "3",
        "-h",
        &Component::Rethinkdb.container_name(other),
        "-p",
        "5432",
    ]
    .map(String::from)
    .to_vec();
    matches!(
        engine.exec(&Component::Rethinkdb.container_name(via), &cmd).await,
        Ok(out) if out.exit_code == 0
    )
}

fn spool_file(dir: &Path, rel: &str, bytes: &[u8]) -> Result<PathBuf> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = dir.join(rel);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| Error::io("create the spool directory", e))?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| Error::io(format!("spool {rel}"), e))?;
    f.write_all(bytes)
        .map_err(|e| Error::io(format!("spool {rel}"), e))?;
    Ok(path)
}

fn spool_json(dir: &Path, rel: &str, value: &impl serde::Serialize) -> Result<PathBuf> {
    let json = serde_json::to_vec_pretty(value).expect("serializable");
    spool_file(dir, rel, &json)
}

/// DTR's etcd keys at one revision, asked again for up to 30 s while etcd elects a leader (a
/// node that held it just died) and answers with errors or warnings only. The answer holds
/// the configuration's secrets: an error names what etcd said besides it, never the keys.
async fn etcd_keys(engine: &Engine, replica: &ReplicaId) -> Result<EtcdKeys> {
    let started = std::time::Instant::now();
    loop {
        let error =
            match cluster::etcdctl(engine, replica, &["get", "--prefix", "/dtr/", "-w", "json"])
                .await
            {
                Ok(raw) => match EtcdKeys::from_etcdctl(&raw) {
                    Some(keys) => return Ok(keys),
                    None => Error::ClusterCommand {
                        command: "etcdctl get --prefix /dtr/".into(),
                        container: Component::Etcd.container_name(replica),
                        output: format!(
                            "an answer that is not etcd's JSON; besides it: {}",
                            raw.lines()
                                .filter(|l| !l.trim_start().starts_with("{\"header\""))
                                .take(3)
                                .collect::<Vec<_>>()
                                .join(" | ")
                        ),
                    },
                },
                Err(e) => e,
            };
        if started.elapsed() > std::time::Duration::from_secs(30) {
            return Err(error);
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
}
