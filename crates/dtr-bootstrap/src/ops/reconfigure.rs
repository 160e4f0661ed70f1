//! `dtr reconfigure`: changes the settings of a running cluster. Only the flags given change;
//! every other value is read back from the running containers (`plan::running`).
//!
//! Cluster-wide (every replica): external URL, HTTPS certificate, the image storage's volume
//! (`--dtr-storage-volume`, `--nfs-storage-url`; an object store is set through the API), the
//! custom CA bundle, log level, proxies. Per replica (the one named by `--existing-replica-id`,
//! as the original): its HTTP and HTTPS ports and its database cache. Everything is validated
//! before anything changes — a storage switch also counts the tags the new storage lacks and
//! is refused while there are any, unless `--storage-migrated` — then, replica by replica, the
//! new files are written into its dtr-ca volume, an NFS volume is made on its node, and every
//! container whose spec changed is replaced (`ops::replace`, health-waited); the containers
//! that read a changed file are restarted. A failure removes the volumes this run made.

use std::collections::BTreeMap;

use crate::engine::apply::Apply;
use crate::engine::{Engine, Target};
use crate::error::{Error, Result};
use crate::ops::cluster::{self, Chooser, ClusterView};
use crate::ops::config::ClusterConfig;
use crate::ops::replace::{self, Outcome, Replacer};
use crate::ops::steps;
use crate::plan::running::{replica_containers, RunningReplica};
use crate::plan::{labels, volume_name, ContainerSpec, ReplicaContext};
use crate::report::Reporter;
use dtr_core::component::Component;
use dtr_core::component::{NGINX_HTTPS_PORT, NGINX_HTTP_PORT};
use dtr_core::options::{ExternalUrl, LogLevel, ReplicaId, Storage};
use dtr_core::pki::TlsMaterial;
use dtr_core::version;

/// The changes asked for; `None` keeps the running value.
#[derive(Default)]
pub struct Changes {
    pub http_port: Option<u16>,
    pub https_port: Option<u16>,
    pub db_cache_mb: Option<u32>,
    pub external_url: Option<ExternalUrl>,
    pub tls: Option<TlsMaterial>,
    pub storage: Option<Storage>,
    pub storage_migrated: bool,
    /// `--custom-ca-cert-bundle`.
    pub custom_ca_bundle: Option<String>,
    pub log_level: Option<LogLevel>,
    /// `Some("")` removes the proxy.
    pub http_proxy: Option<String>,
    pub https_proxy: Option<String>,
    pub no_proxy: Option<String>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.http_port.is_none()
            && self.https_port.is_none()
            && self.db_cache_mb.is_none()
            && self.external_url.is_none()
            && self.tls.is_none()
            && self.storage.is_none()
            && self.custom_ca_bundle.is_none()
            && self.log_level.is_none()
            && self.http_proxy.is_none()
            && self.https_proxy.is_none()
            && self.no_proxy.is_none()
    }

    /// A change of every replica (anything but the ports and database cache of one).
    pub fn cluster_wide(&self) -> bool {
        self.external_url.is_some()
            || self.tls.is_some()
            || self.storage.is_some()
            || self.custom_ca_bundle.is_some()
            || self.log_level.is_some()
            || self.http_proxy.is_some()
            || self.https_proxy.is_some()
            || self.no_proxy.is_some()
    }

    /// `ctx` with the changes that apply to it (`own`: the replica the per-replica flags name).
    pub fn apply(&self, ctx: &mut ReplicaContext, own: bool) {
        if own {
            if let Some(p) = self.http_port {
                ctx.http_port = p;
            }
            if let Some(p) = self.https_port {
                let host = authority_host(&ctx.external_authority);
                if ctx.cluster_url.is_none() {
                    ctx.external_authority = if p == 443 {
                        host
                    } else {
                        format!("{host}:{p}")
                    };
                }
                ctx.https_port = p;
            }
            if let Some(mb) = self.db_cache_mb {
                let (shared, cache) = crate::plan::db_memory(Some(mb), 0);
                ctx.db_shared_buffers_mb = shared;
                ctx.db_effective_cache_mb = cache;
            }
        }
        if let Some(url) = &self.external_url {
            ctx.external_authority = url.authority();
            ctx.cluster_url = Some(format!("https://{}", url.authority()));
        }
        if let Some(storage) = &self.storage {
            ctx.storage = crate::plan::storage_mount(storage, &ctx.replica_id);
        }
        if let Some(level) = self.log_level {
            ctx.log_level = level;
        }
        let set = |slot: &mut Option<String>, v: &Option<String>| {
            if let Some(v) = v {
                *slot = Some(v.clone()).filter(|v| !v.is_empty());
            }
        };
        set(&mut ctx.proxies.http, &self.http_proxy);
        set(&mut ctx.proxies.https, &self.https_proxy);
        set(&mut ctx.proxies.no_proxy, &self.no_proxy);
    }
}

fn authority_host(authority: &str) -> String {
    match authority.rsplit_once(':') {
        Some((host, port)) if !host.ends_with(']') || authority.starts_with('[') => {
            if port.chars().all(|c| c.is_ascii_digit()) {
                host.to_string()
            } else {
                authority.to_string()
            }
        }
        _ => authority.to_string(),
    }
}

/// One replica: what runs, and the containers and values the changes make of it.
struct ReplicaPlan {
    id: ReplicaId,
    running: RunningReplica,
    ctx: ReplicaContext,
    specs: Vec<ContainerSpec>,
}

pub struct ReconfigureReport {
    pub existing: ReplicaId,
    /// Per replica: the containers replaced or restarted.
    pub changed: BTreeMap<ReplicaId, Vec<String>>,
}

pub async fn reconfigure(
    target: &Target,
    existing: Option<ReplicaId>,
    changes: Changes,
    choose: Chooser<'_>,
    reporter: &Reporter,
) -> Result<ReconfigureReport> {
    let engine = steps::connect(target, reporter).await?;

    let step = reporter.step("read the cluster");
    let replicas = cluster::replicas(&engine).await?;
    let existing = cluster::pick_replica(&replicas, existing, |v| v.healthy(), |_| true, choose)?;
    let mut problems: Vec<String> = replicas
        .values()
        .filter(|r| r.version != version::VERSION)
        .map(|r| {
            format!(
                "replica {} runs dtr {}, this bootstrapper is {}",
                r.id,
                r.version,
                version::VERSION
            )
        })
        .collect();
    let view = ClusterView::read(&engine).await?;
    problems.extend(view.problems(true));
    let elsewhere = view.elsewhere();
    if !elsewhere.is_empty() && changes.cluster_wide() {
        return Err(Error::Refused {
            operation: "reconfigure",
            reasons: vec![format!(
                "replicas {} run on other nodes, which this engine cannot reach: a cluster-wide setting must change on every replica",
                elsewhere.join(", ")
            )],
            hint: "run the reconfiguration through MKE (--ucp-url), which reaches every node; the per-replica flags (--replica-http-port, --replica-https-port, --replica-rethinkdb-cache-mb) work against the engine of the replica's own node".into(),
        });
    }
    if !problems.is_empty() {
        return Err(Error::Refused {
            operation: "reconfigure",
            reasons: problems,
            hint: "reconfigure with the cluster's own version, on a healthy cluster (`dtr status`; `dtr upgrade` first if the versions differ)".into(),
        });
    }
    step.done(format!("{} replica(s), through {existing}", replicas.len()));

    let step = reporter.step("check the new settings");
    let mut plans = Vec::new();
    for rid in replicas.keys() {
        let running = replace::observe(&engine, rid).await?;
        let mut ctx = running.context().map_err(|e| Error::BrokenReplica {
            replica: rid.to_string(),
            problem: format!("cannot tell how it was made: {e}"),
        })?;
        changes.apply(&mut ctx, *rid == existing);
        plans.push(ReplicaPlan {
            id: rid.clone(),
            running,
            specs: replica_containers(&ctx),
            ctx,
        });
    }
    validate(&engine, &changes, &existing, &plans, reporter).await?;
    step.done("valid");

    let apply = Apply::new(&engine, reporter);
    let changed = apply
        .run("reconfigure", apply_changes(&apply, &changes, &plans))
        .await?;
    // the settings and shared files a new replica gets: published again (unchanged: kept)
    if let Err(e) = crate::ops::seed::publish(&engine, &existing, reporter).await {
        reporter.warn(format!(
            "the cluster's seed could not be published again ({}): joins use the previous one",
            e.summary()
        ));
    }
    Ok(ReconfigureReport { existing, changed })
}

/// Replica by replica: the files, the storage volume, the containers.
async fn apply_changes(
    apply: &Apply<'_>,
    changes: &Changes,
    plans: &[ReplicaPlan],
) -> Result<BTreeMap<ReplicaId, Vec<String>>> {
    let (engine, reporter) = (apply.engine, apply.reporter);
    let replacer = Replacer {
        engine,
        reporter,
        max_wait: None,
    };
    let mut changed = BTreeMap::new();
    for plan in plans {
        let mut done = Vec::new();
        if let Some(tls) = &changes.tls {
            write_certificate(engine, &plan.id, tls).await?;
        }
        if let Some(bundle) = &changes.custom_ca_bundle {
            write_custom_ca(engine, &plan.id, bundle).await?;
        }
        if let Some(storage) = &changes.storage {
            // the NFS volume is made on the replica's node (a named volume was checked)
            let volumes = crate::plan::storage_volumes(storage, &plan.id, version::VERSION);
            apply.volumes(&volumes).await?;
        }
        for spec in &plan.specs {
            let outcome = match (replacer.replace(spec).await, &changes.storage) {
                (Err(e), Some(storage)) => {
                    return Err(steps::explain_storage(e, storage, &plan.id))
                }
                (result, _) => result?,
            };
            let restart_for = if changes.tls.is_some() && spec.component == Component::Nginx {
                Some("new certificate")
            } else if changes.custom_ca_bundle.is_some()
                && matches!(
                    spec.component,
                    Component::Registry | Component::Api | Component::Jobrunner
                )
            {
                Some("new custom CA bundle")
            } else {
                None
            };
            match (outcome, restart_for) {
                (Outcome::Replaced, _) => done.push(spec.name.clone()),
                (Outcome::Kept, Some(why)) => {
                    let step = reporter.step(format!("restart {} ({why})", spec.name));
                    engine.restart(&spec.name).await?;
                    crate::engine::probe::wait_healthy_step(
                        engine,
                        &spec.name,
                        &spec.health.command,
                        spec.readiness_timeout,
                        &step,
                    )
                    .await?;
                    step.done("healthy");
                    done.push(spec.name.clone());
                }
                (Outcome::Kept, None) => {}
            }
        }
        changed.insert(plan.id.clone(), done);
    }
    Ok(changed)
}

/// Everything that can be checked before a container is touched.
async fn validate(
    engine: &Engine,
    changes: &Changes,
    existing: &ReplicaId,
    plans: &[ReplicaPlan],
    reporter: &Reporter,
) -> Result<()> {
    let own = &plans
        .iter()
        .find(|p| p.id == *existing)
        .expect("the existing replica is planned")
        .running;
    // a new host port must be free (or already ours)
    for (flag, port, container_port) in [
        ("--replica-http-port", changes.http_port, NGINX_HTTP_PORT),
        ("--replica-https-port", changes.https_port, NGINX_HTTPS_PORT),
    ] {
        if let Some(port) = port.filter(|p| Some(*p) != own.published_port(container_port)) {
            if std::net::TcpListener::bind(("0.0.0.0", port)).is_err() {
                return Err(Error::Input(dtr_core::InputError::InvalidValue {
                    flag,
                    value: port.to_string(),
                    reason: "the port is in use on this node".into(),
                }));
            }
        }
    }
    if changes.http_port.is_some() && changes.http_port == changes.https_port {
        return Err(Error::Input(dtr_core::InputError::InvalidValue {
            flag: "--replica-http-port",
            value: changes.http_port.unwrap_or_default().to_string(),
            reason: "the HTTP and HTTPS ports must differ".into(),
        }));
    }
    // the certificate must be made for the name clients use
    let names = match &changes.tls {
        Some(t) => dtr_core::pki::subject_names(&t.cert_pem)?,
        None => {
            let config = ClusterConfig::read(engine, existing).await?;
            match config.files.get("external/cert.pem") {
                Some(pem) => dtr_core::pki::subject_names(&String::from_utf8_lossy(pem.expose()))?,
                None => vec![],
            }
        }
    };
    for ReplicaPlan { id: rid, ctx, .. } in plans {
        let host = authority_host(&ctx.external_authority)
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let moved =
            changes.external_url.is_some() || (rid == existing && changes.https_port.is_some());
        if moved && !names.iter().any(|n| n.eq_ignore_ascii_case(&host)) {
            return Err(match &changes.tls {
                Some(_) => Error::Input(dtr_core::InputError::InvalidValue {
                    flag: "--dtr-cert",
                    value: "(the certificate)".into(),
                    reason: format!("it is not made for {host} (it names {})", names.join(", ")),
                }),
                None => Error::NotImplemented {
                    what: format!("re-issuing the cluster's generated HTTPS certificate for {host}"),
                    hint: format!("give a certificate made for {host} with --dtr-cert, --dtr-key and --dtr-ca"),
                },
            });
        }
    }
    if let Some(storage) = &changes.storage {
        if let Storage::NamedVolume(v) = storage {
            if engine.volume(v).await?.is_none() {
                return Err(Error::Input(dtr_core::InputError::InvalidValue {
                    flag: "--dtr-storage-volume",
                    value: v.clone(),
                    reason:
                        "no such volume on this engine: create it first (`docker volume create`)"
                            .into(),
                }));
            }
        }
        if let Storage::HostPath(p) = storage {
            if !p.is_dir() {
                return Err(Error::Input(dtr_core::InputError::InvalidValue {
                    flag: "--dtr-storage-volume",
                    value: p.display().to_string(),
                    reason: "no such directory on this node".into(),
                }));
            }
        }
        let cluster = crate::ops::config::cluster_storage(engine, existing).await?;
        if !cluster.config.on_the_volume() {
            reporter.warn(format!(
                "the cluster's images are in {} (set through the API): the new volume is used once the storage is set back to the filesystem driver",
                cluster.config.describe()
            ));
        } else if !changes.storage_migrated {
            if let Storage::Nfs(_) = storage {
                reporter.warn("switching to NFS: the tags are kept; the export must hold the images already (copy them first; this bootstrapper cannot look into an NFS export before it is mounted)");
            } else {
                check_tags_in(engine, storage, existing, reporter).await?;
            }
        }
        if plans.len() > 1 && matches!(storage, Storage::DefaultVolume) {
            reporter.warn("every replica must reach the same image storage: a local volume is not shared between nodes");
        }
    }
    Ok(())
}

/// A switch to `storage` (a volume or a host path) is refused while it lacks content the tags
/// point at: the tags the database knows, looked up in the new storage by a throw-away
/// container that mounts it.
async fn check_tags_in(
    engine: &Engine,
    storage: &Storage,
    existing: &ReplicaId,
    reporter: &Reporter,
) -> Result<()> {
    let leader = cluster::db_members(engine, existing)
        .await?
        .into_iter()
        .find(|m| m.role == "leader")
        .and_then(|m| ReplicaId::parse(&m.name).ok())
        .unwrap_or_else(|| existing.clone());
    let out = cluster::psql(
        engine,
        &leader,
        dtr_core::contract::db::DATABASE,
        "SELECT r.namespace || '/' || r.name || '/_manifests/tags/' || t.name FROM tags t JOIN repositories r ON r.id = t.repository_id ORDER BY 1",
    )
    .await?;
    let tags: Vec<&str> = out
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    if tags.is_empty() {
        return Ok(());
    }
    let list = tags.join("\n") + "\n";
    let spec = tag_check_spec(storage, existing);
    let out = engine
        .run_once(
            &spec,
            Some(&crate::plan::Uploads {
                dir: "/run",
                files: vec![("dtr-tags.txt", list.as_bytes(), 0o644)],
            }),
        )
        .await?;
    let missing: Vec<&str> = out.stdout.lines().filter(|l| !l.is_empty()).collect();
    if out.exit_code != 0 {
        return Err(Error::ClusterCommand {
            command: "look the tags up in the new storage".into(),
            container: spec.name,
            output: out.stderr,
        });
    }
    if missing.is_empty() {
        reporter.info(format!(
            "the new storage holds the content of all {} tags",
            tags.len()
        ));
        return Ok(());
    }
    Err(Error::Refused {
        operation: "reconfigure",
        reasons: vec![format!(
            "{} of {} tags point at content the new storage does not hold (e.g. {})",
            missing.len(),
            tags.len(),
            missing
                .iter()
                .take(5)
                .map(|m| m.replace("/_manifests/tags/", ":"))
                .collect::<Vec<_>>()
                .join(", ")
        )],
        hint: "copy the images into the new storage first, then pass --storage-migrated; or switch anyway with --storage-migrated and remove the tags the new storage lacks with the tagreconcile job (POST /api/v0/jobs {\"action\": \"tagreconcile\"})".into(),
    })
}

/// The throw-away container that prints each tag (`<repo>/_manifests/tags/<tag>` of
/// `/run/dtr-tags.txt`) whose link is not in `storage`.
fn tag_check_spec(storage: &Storage, replica: &ReplicaId) -> crate::plan::OneShotSpec {
    let mut mount = crate::plan::storage_mount(storage, replica);
    mount.read_only = true;
    crate::plan::OneShotSpec {
        name: format!("dtr-storage-check-{replica}"),
        image: version::bootstrapper_image(),
        entrypoint: Some(vec![
            "bash".into(),
            "-c".into(),
            "while IFS= read -r t; do [ -f \"/storage/docker/registry/v2/repositories/$t/current/link\" ] || printf '%s\\n' \"$t\"; done < /run/dtr-tags.txt".into(),
        ]),
        command: Vec::new(),
        user: None,
        labels: labels::helper(replica, version::VERSION),
        network: crate::plan::OneShotNetwork::None,
        mounts: vec![mount],
        ports: Vec::new(),
    }
}

/// `--custom-ca-cert-bundle` into the replica's dtr-ca volume, as phase 2 writes it.
async fn write_custom_ca(engine: &Engine, rid: &ReplicaId, bundle: &str) -> Result<()> {
    let l: std::collections::HashMap<String, String> =
        labels::helper(rid, version::VERSION).into_iter().collect();
    engine
        .write_into_volume(
            &volume_name("ca", rid),
            &format!("dtr-reconfigure-{rid}"),
            &[(
                dtr_core::contract::phase2::CUSTOM_CA,
                bundle.as_bytes(),
                0o644,
            )],
            0,
            l,
        )
        .await
}

/// The user's certificate, key and CA into the replica's dtr-ca volume (`external/`), as
/// phase 2 writes them at install: the key readable by nginx only.
async fn write_certificate(engine: &Engine, rid: &ReplicaId, tls: &TlsMaterial) -> Result<()> {
    let ca = tls
        .ca_pem
        .clone()
        .unwrap_or_else(|| dtr_core::pki::last_pem_block(&tls.cert_pem));
    let l: std::collections::HashMap<String, String> =
        labels::helper(rid, version::VERSION).into_iter().collect();
    let volume = volume_name("ca", rid);
    let helper = format!("dtr-reconfigure-{rid}");
    engine
        .write_into_volume(
            &volume,
            &helper,
            &[
                ("external/cert.pem", tls.cert_pem.as_bytes(), 0o644),
                ("external/ca.pem", ca.as_bytes(), 0o644),
            ],
            0,
            l.clone(),
        )
        .await?;
    engine
        .write_into_volume(
            &volume,
            &helper,
            &[("external/key.pem", tls.key_pem.expose().as_bytes(), 0o600)],
            u64::from(Component::Nginx.uid()),
            l,
        )
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_port_moves_the_authority_only_without_an_external_url() {
        assert_eq!(authority_host("node1:8443"), "node1");
        assert_eq!(authority_host("node1"), "node1");
        assert_eq!(authority_host("[::1]:8443"), "[::1]");
    }
}
