//! `dtr restore`: a fresh single-replica install that carries a backup's data. First the whole
//! archive is read from stdin into a private temporary directory and checked (manifest, layout,
//! every size and SHA-256, decryption, the version rule, every part present and readable):
//! nothing on the engine changes before that passes. Then, like install: preflight (which
//! refuses an engine that already runs DTR), networks, volumes, phase 2 with the backup's CA and
//! shared files, the containers; etcd and the database start first and get the backup's etcd
//! keys and database dumps; then the other components start and `/_ping` is checked. Any
//! failure or Ctrl-C removes what the run created.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use dtr_core::component::Component;
use dtr_core::contract::phase2::{CertResult, Phase2Secrets};
use dtr_core::options::{ExternalUrl, LogLevel, Proxies, ReplicaId, Storage, Subnet};
use dtr_core::pki::TlsMaterial;
use dtr_core::secret::Secret;
use dtr_core::version;

use crate::backup::{self, archive, crypt, EtcdKeys};
use crate::engine::apply::Apply;
use crate::engine::{Engine, Target};
use crate::error::{Error, Result};
use crate::ops::config::{self, ClusterConfig};
use crate::ops::interruptible;
use crate::ops::preflight::PreflightRequest;
use crate::ops::steps;
use crate::plan::{self, InstallPlan, ReplicaSettings};
use crate::report::Reporter;

/// The new replica's flags. `None` means: as the backup says.
pub struct RestoreOptions {
    pub node: Option<String>,
    pub replica_id: Option<ReplicaId>,
    pub http_port: u16,
    pub https_port: u16,
    pub db_cache_mb: Option<u32>,
    pub external_url: Option<ExternalUrl>,
    pub tls: Option<TlsMaterial>,
    /// `None`: `--dtr-use-default-storage`, the storage the backup was made with.
    pub storage: Option<Storage>,
    pub overlay_subnet: Subnet,
    pub log_level: LogLevel,
    pub proxies: Option<Proxies>,
    pub allow_other_patch: bool,
    pub keys: crypt::Keys,
    /// `--ignore-preflight-errors`.
    pub ignore_checks: Vec<&'static str>,
    /// `--custom-ca-cert-bundle`; `None`: the backup's.
    pub custom_ca_bundle: Option<String>,
}

pub struct RestoreReport {
    pub plan: InstallPlan,
    pub certs: CertResult,
    pub manifest: archive::Manifest,
    pub encrypted: bool,
    pub etcd_keys: usize,
    /// What the restored databases hold: `(what, how many)`.
    pub counts: Vec<(String, i64)>,
}

/// A backup read and checked, its parts spooled in `dir`.
pub struct CheckedBackup {
    pub manifest: archive::Manifest,
    pub encrypted: bool,
    /// Set when the version rule allowed another patch release.
    pub warning: Option<String>,
    pub settings: config::Settings,
    pub etcd: EtcdKeys,
    pub config: ClusterConfig,
    dir: PathBuf,
}

impl CheckedBackup {
    fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }

    /// The storage configuration the backup's etcd keys hold (`/dtr/storage`): an object
    /// store comes back with them; the replica's volume when none was set.
    pub fn object_storage(&self) -> Option<dtr_core::contract::storage::StoredStorage> {
        let key = self
            .etcd
            .keys
            .iter()
            .find(|k| k.key == dtr_core::contract::storage::KEY)?;
        let raw = data_encoding::BASE64.decode(key.value.as_bytes()).ok()?;
        serde_json::from_slice(&raw).ok()
    }
}

fn refused(reason: impl Into<String>) -> Error {
    Error::BadBackup {
        reason: reason.into(),
    }
}

/// Reads the whole archive into `dir` (an empty private directory) and checks everything a
/// restore relies on. Changes nothing outside `dir`.
pub fn read_backup<R: Read>(
    input: R,
    keys: &crypt::Keys,
    allow_other_patch: bool,
    dir: &Path,
) -> Result<CheckedBackup> {
    let (reader, encrypted) = crypt::open(input, keys).map_err(|e| refused(e.to_string()))?;
    let mut current: Option<(String, std::fs::File)> = None;
    let manifest = archive::read(reader, |rel, bytes| {
        if current.as_ref().map(|(r, _)| r.as_str()) != Some(rel) {
            let path = dir.join(rel);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            current = Some((rel.to_string(), std::fs::File::create_new(path)?));
        }
        current.as_mut().expect("just set").1.write_all(bytes)
    })
    .map_err(|e| refused(e.to_string()))?;
    drop(current);
    let warning =
        archive::check_version(&manifest.dtr_version, version::VERSION, allow_other_patch)
            .map_err(refused)?;

    let listed = |rel: &str| manifest.entries.iter().any(|e| e.path == rel);
    let mut missing: Vec<String> = [backup::ETCD_KEYS, backup::CLUSTER_SETTINGS]
        .into_iter()
        .map(str::to_string)
        .chain(backup::DATABASES.iter().map(|db| backup::db_entry(db)))
        .filter(|rel| !listed(rel))
        .collect();
    let mut files = BTreeMap::new();
    let optional = |rel: &str| {
        config::EXTERNAL_FILES.contains(&rel)
            || dtr_core::contract::phase2::SEED_FILES
                .iter()
                .any(|f| f.path == rel && !f.required)
    };
    for rel in dtr_core::contract::phase2::SEED_FILES
        .iter()
        .map(|f| f.path)
        .chain(config::EXTERNAL_FILES.iter().copied())
    {
        let entry = format!("{}{rel}", backup::CA_PREFIX);
        match std::fs::read(dir.join(&entry)) {
            Ok(bytes) => {
                files.insert(rel.to_string(), Secret::new(bytes));
            }
            Err(_) if optional(rel) => {}
            Err(_) => missing.push(entry),
        }
    }
    if !missing.is_empty() {
        return Err(refused(format!(
            "the archive is intact but incomplete: it has no {}",
            missing.join(", ")
        )));
    }
    let json = |rel: &str| -> Result<serde_json::Value> {
        let raw = std::fs::read(dir.join(rel))
            .map_err(|e| Error::io(format!("read the spooled {rel}"), e))?;
        serde_json::from_slice(&raw).map_err(|e| refused(format!("{rel} is not valid: {e}")))
    };
    let settings: config::Settings = serde_json::from_value(json(backup::CLUSTER_SETTINGS)?)
        .map_err(|e| refused(format!("{} is not valid: {e}", backup::CLUSTER_SETTINGS)))?;
    settings
        .external_url()
        .and(settings.log_level())
        .map_err(|e| refused(format!("{}: {e}", backup::CLUSTER_SETTINGS)))?;
    let etcd: EtcdKeys = serde_json::from_value(json(backup::ETCD_KEYS)?)
        .map_err(|e| refused(format!("{} is not valid: {e}", backup::ETCD_KEYS)))?;
    for k in &etcd.keys {
        if !k.key.starts_with("/dtr/") || k.key.starts_with("/dtr/patroni/") {
            return Err(refused(format!(
                "{} holds the key {:?}, which a backup never holds",
                backup::ETCD_KEYS,
                k.key
            )));
        }
        data_encoding::BASE64
            .decode(k.value.as_bytes())
            .map_err(|_| {
                refused(format!(
                    "{}: the value of {} is not base64",
                    backup::ETCD_KEYS,
                    k.key
                ))
            })?;
    }
    let config = ClusterConfig {
        settings: settings.clone(),
        files,
    };
    Ok(CheckedBackup {
        manifest,
        encrypted,
        warning,
        settings,
        etcd,
        config,
        dir: dir.to_path_buf(),
    })
}

pub async fn restore<R: Read + Send + 'static>(
    target: &Target,
    opts: RestoreOptions,
    input: R,
    reporter: &Reporter,
) -> Result<RestoreReport> {
    // the spool holds the backup's private keys: it is removed however this function ends,
    // Ctrl-C included (the read runs on a blocking thread, the signal is watched here)
    let spool = crate::ops::private_temp_dir("dtr-restore-", "the backup")?;
    let checked = read_and_check(&opts, input, spool.path(), reporter).await?;
    let (settings, secrets) = replica_settings(&opts, &checked)?;
    let replica_id = settings.replica_id.clone();

    let engine = steps::connect(target, reporter).await?;
    let request = PreflightRequest {
        replica_id: replica_id.clone(),
        node: opts.node.clone(),
        http_port: opts.http_port,
        https_port: opts.https_port,
        joining: false,
        ignore: opts.ignore_checks.clone(),
    };
    let (engine, facts) = steps::preflight(&engine, &request, reporter).await?;
    let plan = plan::restore_plan(&settings, &facts);
    let images = match checked
        .object_storage()
        .filter(|s| !s.config.on_the_volume())
    {
        // the object store comes back with the etcd keys; the volume is mounted, unused
        Some(s) => format!("{}, as the backup recorded", s.config.describe()),
        None if opts.storage.is_none() => format!(
            "{}, as the backup recorded",
            settings.storage.describe(&replica_id)
        ),
        None => settings.storage.describe(&replica_id),
    };
    reporter.info(format!(
        "restoring into replica {} of dtr {} on node {} (images: {images})",
        plan.replica_id, plan.version, plan.node
    ));
    steps::log_plan(reporter, &plan);

    let apply = Apply::new(&engine, reporter);
    let (certs, counts) = apply
        .run(
            "restore",
            steps::naming_storage(&settings.storage, &replica_id, async {
                steps::networks(&apply, &plan).await?;
                steps::volumes(&apply, &plan).await?;
                let certs = steps::certificates_and_containers(
                    &apply,
                    &plan,
                    &secrets,
                    "phase 2, the backup's CA",
                )
                .await?;
                let (stores, services): (Vec<_>, Vec<_>) =
                    plan.containers.iter().cloned().partition(|c| {
                        matches!(c.component, Component::Etcd | Component::Rethinkdb)
                    });
                apply.start_in_order(&stores).await?;
                load_data(&engine, &replica_id, &checked, reporter).await?;
                apply.start_in_order(&services).await?;
                steps::verify(&engine, &plan, reporter).await?;
                steps::register(&engine, &plan, reporter).await?;
                Ok((certs, counts(&engine, &replica_id).await?))
            }),
        )
        .await?;
    Ok(RestoreReport {
        plan,
        certs,
        etcd_keys: checked.etcd.keys.len(),
        encrypted: checked.encrypted,
        manifest: checked.manifest,
        counts,
    })
}

/// Reads the whole backup from `input` into `spool` and checks it: nothing on the engine
/// changes before this passes.
async fn read_and_check<R: Read + Send + 'static>(
    opts: &RestoreOptions,
    input: R,
    spool: &Path,
    reporter: &Reporter,
) -> Result<CheckedBackup> {
    let step = reporter.step("read and check the backup");
    let (keys, allow, dir) = (
        opts.keys.clone(),
        opts.allow_other_patch,
        spool.to_path_buf(),
    );
    let reading = tokio::task::spawn_blocking(move || read_backup(input, &keys, allow, &dir));
    let checked = match interruptible(async {
        reading.await.map_err(|e| Error::Bug {
            what: format!("reading the backup stopped: {e}"),
        })?
    })
    .await
    {
        Ok(c) => c,
        Err(e) => {
            step.fail(if matches!(e, Error::Interrupted) {
                "interrupted"
            } else {
                "refused"
            });
            return Err(e);
        }
    };
    if let Some(w) = &checked.warning {
        reporter.warn(w);
    }
    let bytes: u64 = checked.manifest.entries.iter().map(|e| e.size).sum();
    step.done(format!(
        "dtr {} backup of replica {} made {}: {} entries, {bytes} bytes, every SHA-256 matches{}",
        checked.manifest.dtr_version,
        checked.manifest.replica_id,
        checked.manifest.created_at,
        checked.manifest.entries.len(),
        if checked.encrypted { ", decrypted" } else { "" }
    ));
    Ok(checked)
}

/// The new replica: the restore's flags where given, else what the backup says; and the
/// backup's CA and shared files for phase 2.
fn replica_settings(
    opts: &RestoreOptions,
    checked: &CheckedBackup,
) -> Result<(ReplicaSettings, Phase2Secrets)> {
    let replica_id = match &opts.replica_id {
        Some(r) => r.clone(),
        None => ReplicaId::parse(&checked.manifest.replica_id)
            .map_err(|_| refused("the manifest's replica id is not one"))?,
    };
    let storage = match &opts.storage {
        Some(s) => s.clone(),
        None => checked
            .settings
            .storage_for(&replica_id)
            .map_err(|e| refused(format!("{}: {e}", backup::CLUSTER_SETTINGS)))?,
    };
    let (backup_cert, backup_key) = checked.config.user_cert();
    let (user_cert, user_key) = match &opts.tls {
        Some(t) => (Some(t.public_part()), Some(t.key_pem.clone())),
        None => (backup_cert, backup_key),
    };
    let seed = checked
        .config
        .seed()
        .map_err(|m| refused(format!("no {m}")))?;
    let settings = ReplicaSettings {
        replica_id: replica_id.clone(),
        http_port: opts.http_port,
        https_port: opts.https_port,
        external_url: match &opts.external_url {
            Some(u) => Some(u.clone()),
            None => checked.settings.external_url()?,
        },
        user_cert,
        storage,
        overlay_subnet: opts.overlay_subnet.clone(),
        log_level: opts.log_level,
        proxies: opts
            .proxies
            .clone()
            .unwrap_or_else(|| checked.settings.proxies()),
        db_cache_mb: opts.db_cache_mb,
        etcd_initial_cluster: vec![(
            replica_id.to_string(),
            dtr_core::component::etcd_peer_url(&replica_id),
        )],
        etcd_cluster_state: "new",
        // the backup's, if any, comes with the shared files; the flag replaces it
        custom_ca_bundle: opts.custom_ca_bundle.clone(),
    };

    let secrets = Phase2Secrets {
        user_key,
        admin: None,
        seed,
    };
    Ok((settings, secrets))
}

/// The backup's etcd keys and database dumps, into the new etcd and database before the
/// other components start.
async fn load_data(
    engine: &Engine,
    replica_id: &ReplicaId,
    checked: &CheckedBackup,
    reporter: &Reporter,
) -> Result<()> {
    let step = reporter.step("load the etcd keys");
    load_etcd(engine, replica_id, checked).await?;
    step.done(format!(
        "{} keys of revision {}",
        checked.etcd.keys.len(),
        checked.etcd.revision
    ));
    for db in backup::DATABASES {
        let step = reporter.step(format!("load database {db} (pg_restore)"));
        load_database(engine, replica_id, db, &checked.path(&backup::db_entry(db))).await?;
        step.done("one transaction");
    }
    Ok(())
}

/// Each key's value is copied into the etcd container as a file and put from there: values
/// never travel on a command line. Where the backed-up cluster's replicas ran (and which it
/// retired, which generation each registry ran) is not the restored cluster's: those keys
/// stay out.
async fn load_etcd(engine: &Engine, replica: &ReplicaId, checked: &CheckedBackup) -> Result<()> {
    let container = Component::Etcd.container_name(replica);
    let dir = checked.dir.join("etcd-values");
    std::fs::create_dir_all(&dir).map_err(|e| Error::io("spool etcd values", e))?;
    let topology = [
        dtr_core::contract::cluster::REPLICAS_PREFIX,
        dtr_core::contract::cluster::RETIRED_PREFIX,
        dtr_core::contract::storage::REPLICAS_PREFIX,
    ];
    for (n, k) in checked.etcd.keys.iter().enumerate() {
        if topology.iter().any(|p| k.key.starts_with(p)) {
            continue;
        }
        let value = data_encoding::BASE64
            .decode(k.value.as_bytes())
            .map_err(|_| refused(format!("the value of {} is not base64", k.key)))?;
        let file = dir.join(n.to_string());
        std::fs::write(&file, value).map_err(|e| Error::io("spool etcd values", e))?;
        let entry = format!("dtr-restore-{n}");
        engine
            .upload_file(
                &container,
                "/tmp",
                &entry,
                &file,
                0o600,
                Component::Etcd.uid().into(),
            )
            .await?;
        let cmd: Vec<String> = [
            "sh",
            "-c",
            "etcdctl --command-timeout=5s put \"$1\" < \"$2\"; rc=$?; rm -f \"$2\"; exit $rc",
            "sh",
            &k.key,
            &format!("/tmp/{entry}"),
        ]
        .map(str::to_string)
        .to_vec();
        let out = engine.exec(&container, &cmd).await?;
        if out.exit_code != 0 {
            return Err(Error::ClusterCommand {
                command: format!("etcdctl put {}", k.key),
                container,
                output: out.output.trim().to_string(),
            });
        }
    }
    Ok(())
}

/// The dump is copied into the database container and loaded by `pg_restore` in one
/// transaction (all or nothing), replacing what the fresh database holds. It runs as the
/// database's owner (`SET ROLE` after the superuser's local connection), keeping no owner or
/// grant the dump names: what a backup holds cannot act as the superuser (an event trigger, a
/// function in an untrusted language, a role change) — it fails the restore instead.
async fn load_database(engine: &Engine, replica: &ReplicaId, db: &str, dump: &Path) -> Result<()> {
    let container = Component::Rethinkdb.container_name(replica);
    let owner = dtr_core::contract::db::owner(db).ok_or_else(|| {
        refused(format!(
            "the backup has a database {db} this version does not know"
        ))
    })?;
    let entry = format!("restore-{db}.dump");
    engine
        .upload_file(
            &container,
            "/run/dtr",
            &entry,
            dump,
            0o600,
            Component::Rethinkdb.uid().into(),
        )
        .await?;
    let path = format!("/run/dtr/{entry}");
    let cmd: Vec<String> = [
        "pg_restore",
        "--no-password",
        "--clean",
        "--if-exists",
        "--single-transaction",
        "--exit-on-error",
        "--no-owner",
        "--no-privileges",
        "--role",
        owner,
        "--dbname",
        db,
        &path,
    ]
    .map(str::to_string)
    .to_vec();
    let out = engine.exec(&container, &cmd).await;
    let _ = engine
        .exec(&container, &["rm".to_string(), "-f".to_string(), path])
        .await;
    let out = out?;
    if out.exit_code != 0 {
        return Err(Error::ClusterCommand {
            command: cmd.join(" "),
            container,
            output: out.output.trim().to_string(),
        });
    }
    Ok(())
}

/// What the restored cluster holds, counted in its databases.
async fn counts(engine: &Engine, replica: &ReplicaId) -> Result<Vec<(String, i64)>> {
    const QUERIES: &[(&str, &[&str])] = &[
        (
            "dtr",
            &[
                "accounts",
                "api_tokens",
                "repositories",
                "tags",
                "events",
                "jobs",
            ],
        ),
        ("notaryserver", &["tuf_files"]),
        ("notarysigner", &["private_keys"]),
    ];
    let mut out = Vec::new();
    for (db, tables) in QUERIES {
        let sql = tables
            .iter()
            .map(|t| format!("SELECT '{t}', count(*) FROM {t}"))
            .collect::<Vec<_>>()
            .join(" UNION ALL ");
        let result = crate::ops::cluster::psql(engine, replica, db, &sql).await?;
        for line in result.lines() {
            if let Some((name, n)) = line.trim().split_once(' ') {
                if let Ok(n) = n.parse() {
                    out.push((name.to_string(), n));
                }
            }
        }
    }
    Ok(out)
}
