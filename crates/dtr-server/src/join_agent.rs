//! `dtr join-agent`: the in-cluster half of `dtr join`, run as a one-task swarm service on the
//! joining replica's node with the cluster's seed secret (`contract::cluster`). A replica can
//! so join from the engine of its own node only: that engine cannot reach the other nodes'
//! containers, but its task reaches their services over the `dtr-ol` overlay, and the swarm
//! hands the seed only to tasks a manager (or MKE) started.
//!
//! - `check --via <replica>`: reads the cluster through that replica — etcd's members and the
//!   replicas' records, the image storage, each replica's etcd health, api `/_ping` and
//!   database role — with a client certificate it issues itself from the seed's CA, kept in
//!   memory, and prints one `JoinCheck` line (nothing secret) on stdout.
//! - `seed`: copies the seed's files into the new replica's dtr-ca volume, where phase 2 picks
//!   them up (`phase2::JOIN_STAGING`).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use dtr_core::component::Component;
use dtr_core::contract::cluster::{
    ClusterSeed, JoinCheck, ReplicaRecord, ReplicaState, REPLICAS_PREFIX, RETIRED_PREFIX,
    SEED_SECRET_TARGET,
};
use dtr_core::contract::phase2::JOIN_STAGING;
use dtr_core::options::ReplicaId;
use dtr_core::pki::{self, Usage};
use dtr_core::secret::Secret;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::etcd::Etcd;

/// Where the swarm mounts the seed in the agent's task.
fn seed_path() -> String {
    format!("/run/secrets/{SEED_SECRET_TARGET}")
}

fn read_seed() -> Result<ClusterSeed> {
    let path = seed_path();
    let raw = std::fs::read(&path).map_err(|e| Error::io(format!("read {path}"), e))?;
    serde_json::from_slice(&raw).map_err(|e| Error::BadFile {
        what: path,
        reason: e.to_string(),
    })
}

/// `dtr join-agent seed`: the seed's files into `ca_dir/.join/`, readable by root only.
pub fn run_seed(ca_dir: &Path) -> Result<()> {
    let seed = read_seed()?;
    stage(ca_dir, &seed)?;
    println!(
        "staged {} file(s) of cluster {}",
        seed.files.len(),
        seed.cluster
    );
    Ok(())
}

/// Writes every file of `seed` under `ca_dir/JOIN_STAGING`, 0600 root in 0700 directories.
pub fn stage(ca_dir: &Path, seed: &ClusterSeed) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let root = ca_dir.join(JOIN_STAGING);
    for f in &seed.files {
        if f.path.split('/').any(|p| p == ".." || p.is_empty()) {
            return Err(Error::BadFile {
                what: seed_path(),
                reason: format!("a file path outside the volume: {}", f.path),
            });
        }
        let data = seed.file(&f.path).ok_or_else(|| Error::BadFile {
            what: seed_path(),
            reason: format!("{} is not hexadecimal", f.path),
        })?;
        let path = root.join(&f.path);
        let parent = path.parent().unwrap_or(&root);
        std::fs::create_dir_all(parent)
            .map_err(|e| Error::io(format!("create {}", parent.display()), e))?;
        let mut dir = parent;
        while dir.starts_with(&root) {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                .map_err(|e| Error::io(format!("chmod {}", dir.display()), e))?;
            match dir.parent() {
                Some(p) => dir = p,
                None => break,
            }
        }
        crate::runtime::write_private(&path, data.expose())?;
    }
    Ok(())
}

/// `dtr join-agent check --via <replica>`.
pub async fn run_check(via: Option<ReplicaId>) -> Result<()> {
    let seed = read_seed()?;
    let via = via.unwrap_or_else(|| seed.replica.clone());
    let check = check(&seed, &via).await;
    println!(
        "{}",
        serde_json::to_string(&check).expect("a check serializes")
    );
    Ok(())
}

/// A TLS client with a certificate issued from the seed's CA, kept in memory.
fn client(seed: &ClusterSeed) -> Result<reqwest::Client> {
    let text = |path: &str| {
        seed.file(path)
            .map(|b| String::from_utf8_lossy(b.expose()).to_string())
            .ok_or_else(|| Error::BadFile {
                what: seed_path(),
                reason: format!("no {path} in the seed"),
            })
    };
    let ca = text("ca.pem")?;
    let ca_key = Secret::new(text("root/ca-key.pem")?);
    let me = pki::issue(
        &ca,
        &ca_key,
        "dtr-join-agent",
        &["dtr-join-agent".to_string()],
        Usage::ServerAndClient,
    )
    .map_err(|e| Error::tls("join agent certificate", e))?;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pemfile::certs(&mut ca.as_bytes()) {
        roots
            .add(c.map_err(|e| Error::tls("cluster CA", e))?)
            .map_err(|e| Error::tls("cluster CA", e))?;
    }
    let certs = rustls_pemfile::certs(&mut me.cert_pem.as_bytes())
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::tls("join agent certificate", e))?;
    let key = rustls_pemfile::private_key(&mut me.key_pem.expose().as_bytes())
        .map_err(|e| Error::tls("join agent key", e))?
        .ok_or_else(|| Error::tls("join agent key", "no key"))?;
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| Error::tls("protocol versions", e))?
    .with_root_certificates(roots)
    .with_client_auth_cert(certs, key)
    .map_err(|e| Error::tls("join agent certificate", e))?;
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .timeout(Duration::from_secs(4))
        .connect_timeout(Duration::from_secs(3))
        .no_proxy()
        .build()
        .map_err(|e| Error::tls("HTTP client", e))
}

/// The cluster as replica `via` shows it; `failure` says why when it cannot be read at all.
pub async fn check(seed: &ClusterSeed, via: &ReplicaId) -> JoinCheck {
    let mut out = JoinCheck {
        cluster: seed.cluster.clone(),
        via: via.clone(),
        settings: seed.settings.clone(),
        user_cert: seed.user_cert(),
        storage: String::new(),
        storage_on_volume: true,
        replicas: BTreeMap::new(),
        failure: None,
    };
    if let Err(e) = read_cluster(seed, via, &mut out).await {
        out.failure = Some(e.to_string());
    }
    out
}

async fn read_cluster(seed: &ClusterSeed, via: &ReplicaId, out: &mut JoinCheck) -> Result<()> {
    let http = client(seed)?;
    let etcd_url = |r: &ReplicaId| {
        format!(
            "https://{}:{}",
            Component::Etcd.container_name(r),
            dtr_core::component::ETCD_CLIENT_PORT
        )
    };
    let etcd = Etcd::new(http.clone(), vec![etcd_url(via)]);
    let members = etcd.members().await?;
    let records = etcd.get_prefix(REPLICAS_PREFIX).await?;
    let retired = etcd.get_prefix(RETIRED_PREFIX).await?;
    let (storage, _) = crate::storage::load(&etcd, false).await?;
    out.storage = storage.config.describe();
    out.storage_on_volume = storage.config.on_the_volume();

    let id_of = |key: &str, prefix: &str| ReplicaId::parse(key.strip_prefix(prefix)?).ok();
    for (key, value) in &records {
        if let Some(r) = id_of(key, REPLICAS_PREFIX) {
            out.replicas.entry(r).or_insert_with(empty).record =
                serde_json::from_slice::<ReplicaRecord>(value).ok();
        }
    }
    for (key, _) in &retired {
        if let Some(r) = id_of(key, RETIRED_PREFIX) {
            out.replicas.entry(r).or_insert_with(empty).retired = true;
        }
    }
    for m in &members {
        let owner = ReplicaId::parse(&m.name).ok().or_else(|| {
            m.peer_urls.iter().find_map(|u| {
                let host = u.trim_start_matches("https://").split(':').next()?;
                ReplicaId::parse(host.strip_prefix("dtr-etcd-")?).ok()
            })
        });
        if let Some(r) = owner {
            let state = out.replicas.entry(r).or_insert_with(empty);
            state.etcd_learner = Some(m.learner);
            state.etcd_member = Some(m.id.clone());
        }
    }
    let ids: Vec<ReplicaId> = out.replicas.keys().cloned().collect();
    let mut db: Option<Vec<Value>> = None;
    for r in &ids {
        let state = out.replicas.get_mut(r).expect("listed");
        if state.etcd_member.is_some() {
            state.etcd_healthy = get_json(&http, &format!("{}/health", etcd_url(r)))
                .await
                .is_some_and(|h| h["health"] == "true" || h["health"] == true);
        }
        let ping = format!(
            "https://{}:{}/_ping",
            Component::Api.container_name(r),
            dtr_core::component::API_PORT
        );
        // /_ping answers 503 with the same document when the replica is not healthy
        state.ping = get_json(&http, &ping).await.map(|p| {
            (
                p["Healthy"].as_bool().unwrap_or(false),
                p["Version"].as_str().unwrap_or_default().to_string(),
            )
        });
        if db.is_none() {
            let cluster = format!(
                "https://{}:{}/cluster",
                Component::Rethinkdb.container_name(r),
                dtr_core::component::PATRONI_PORT
            );
            db = get_json(&http, &cluster)
                .await
                .and_then(|c| c["members"].as_array().cloned());
        }
    }
    for m in db.into_iter().flatten() {
        let Some(r) = m["name"].as_str().and_then(|n| ReplicaId::parse(n).ok()) else {
            continue;
        };
        if let Some(state) = out.replicas.get_mut(&r) {
            state.db = Some((
                m["role"].as_str().unwrap_or_default().to_string(),
                m["state"].as_str().unwrap_or_default().to_string(),
            ));
        }
    }
    Ok(())
}

fn empty() -> ReplicaState {
    ReplicaState {
        record: None,
        etcd_learner: None,
        etcd_member: None,
        etcd_healthy: false,
        db: None,
        ping: None,
        retired: false,
    }
}

/// A JSON answer, whatever its status (a `/_ping` of an unhealthy replica is a 503 with the
/// same document); `None` when there is no answer or it is not JSON.
async fn get_json(http: &reqwest::Client, url: &str) -> Option<Value> {
    let r = http.get(url).send().await.ok()?;
    r.json().await.ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use dtr_core::contract::cluster::Settings;

    #[test]
    fn the_seed_is_staged_for_phase_2_readable_by_root_only() {
        use std::os::unix::fs::PermissionsExt;
        let mut files = BTreeMap::new();
        files.insert("ca.pem".to_string(), Secret::new(b"CA".to_vec()));
        files.insert("root/ca-key.pem".to_string(), Secret::new(b"KEY".to_vec()));
        let seed = ClusterSeed::new(
            ReplicaId::parse("0123456789ab").unwrap(),
            Settings {
                external_url: None,
                storage: "dtr-registry-0123456789ab".into(),
                nfs: None,
                log_level: "info".into(),
                http_proxy: None,
                https_proxy: None,
                no_proxy: None,
            },
            &files,
        )
        .unwrap();
        assert!(!format!("{seed:?}").contains("4b4559"), "{seed:?}");
        let dir = tempfile::tempdir().unwrap();
        stage(dir.path(), &seed).unwrap();
        let staged = dir.path().join(JOIN_STAGING);
        assert_eq!(
            std::fs::read(staged.join("root/ca-key.pem")).unwrap(),
            b"KEY"
        );
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&staged), 0o700);
        assert_eq!(mode(&staged.join("root")), 0o700);
        assert_eq!(mode(&staged.join("root/ca-key.pem")), 0o600);

        let mut bad = seed.clone();
        bad.files[0].path = "../escape".into();
        assert!(stage(dir.path(), &bad).is_err());
    }
}
