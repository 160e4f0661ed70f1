//! `dtr reconfigure`: changes the settings of a running cluster. Only the flags given change;
//! every other value is read back from the running containers (`plan::running`).
//!
//! Cluster-wide (every replica): external URL, HTTPS certificate, storage volume, log level,
//! proxies. Per replica (the one named by `--existing-replica-id`, as the original): its HTTP
//! and HTTPS ports and its database cache. Everything is validated before anything changes;
//! then, replica by replica, the new certificate files are written into its dtr-ca volume and
//! every container whose spec changed is replaced (`ops::replace`, health-waited); nginx is
//! restarted when only its certificate changed.

use std::collections::BTreeMap;

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
            && self.log_level.is_none()
            && self.http_proxy.is_none()
            && self.https_proxy.is_none()
            && self.no_proxy.is_none()
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
    problems.extend(ClusterView::read(&engine).await?.problems(true));
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

    let replacer = Replacer {
        engine: &engine,
        reporter,
        max_wait: None,
    };
    let mut changed = BTreeMap::new();
    for plan in &plans {
        let mut done = Vec::new();
        if let Some(tls) = &changes.tls {
            write_certificate(&engine, &plan.id, tls).await?;
        }
        for spec in &plan.specs {
            let outcome = replacer.replace(spec).await?;
            let restart_for_cert = changes.tls.is_some() && spec.component == Component::Nginx;
            match outcome {
                Outcome::Replaced => done.push(spec.name.clone()),
                Outcome::Kept if restart_for_cert => {
                    let step = reporter.step(format!("restart {} (new certificate)", spec.name));
                    engine.restart(&spec.name).await?;
                    crate::engine::probe::wait_healthy_step(
                        &engine,
                        &spec.name,
                        &spec.health.command,
                        spec.readiness_timeout,
                        &step,
                    )
                    .await?;
                    step.done("healthy");
                    done.push(spec.name.clone());
                }
                Outcome::Kept => {}
            }
        }
        changed.insert(plan.id.clone(), done);
    }
    Ok(ReconfigureReport { existing, changed })
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
        if !changes.storage_migrated {
            reporter.warn(
                "switching the image storage: the new storage must already hold the images \
                 (copy them first, then pass --storage-migrated to say so); tags and manifests \
                 stay in the metadata database, and pulling an image whose blobs are not in the \
                 new storage fails",
            );
        }
        if plans.len() > 1 && matches!(storage, Storage::DefaultVolume) {
            reporter.warn("every replica must reach the same image storage: a local volume is not shared between nodes");
        }
    }
    Ok(())
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
