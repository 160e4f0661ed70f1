//! The cluster-wide configuration as a running replica holds it: log level, proxies and external
//! URL in its api container's environment, the image storage as its registry mounts it, and the
//! files every replica shares in its dtr-ca volume. `join` builds the new replica from it,
//! `backup` saves it and `restore` builds the restored replica from the saved copy.

use std::collections::BTreeMap;
use std::io::Read;

use crate::engine::Engine;
use crate::error::{Error, Result};
use dtr_core::component::Component;
use dtr_core::contract::phase2::{SeedFiles, SEED_FILES};
use dtr_core::contract::storage::StoredStorage;
use dtr_core::contract::STORAGE_MOUNT;
use dtr_core::options::ReplicaId;

use crate::plan::labels;
use dtr_core::pki::UserCertPublic;
use dtr_core::secret::Secret;

/// The HTTPS certificate files of the dtr-ca volume: the user's own when they brought one.
pub const EXTERNAL_FILES: &[&str] = &[
    dtr_core::contract::cluster::EXTERNAL_CA,
    dtr_core::contract::cluster::EXTERNAL_CERT,
    dtr_core::contract::cluster::EXTERNAL_KEY,
];

/// The settings part, as saved in a backup (`config/cluster.json`) and carried by the seed.
pub use dtr_core::contract::cluster::Settings;

/// The cluster's storage configuration as the api recorded it in etcd (`/dtr/storage`), read
/// through replica `via`; the replica's volume when none was ever set.
pub async fn cluster_storage(engine: &Engine, via: &ReplicaId) -> Result<StoredStorage> {
    let out = crate::ops::cluster::etcdctl(
        engine,
        via,
        &[
            "get",
            dtr_core::contract::storage::KEY,
            "--print-value-only",
        ],
    )
    .await?;
    if out.trim().is_empty() {
        return Ok(StoredStorage::default());
    }
    serde_json::from_str(out.trim()).map_err(|e| Error::ClusterCommand {
        command: format!("etcdctl get {}", dtr_core::contract::storage::KEY),
        container: Component::Etcd.container_name(via),
        output: format!("the storage configuration is unreadable: {e}"),
    })
}

pub struct ClusterConfig {
    pub settings: Settings,
    /// `SEED_FILES` and `EXTERNAL_FILES`, by path inside the dtr-ca volume.
    pub files: BTreeMap<String, Secret<Vec<u8>>>,
}

impl ClusterConfig {
    /// Reads the configuration of `replica` through the engine.
    pub async fn read(engine: &Engine, replica: &ReplicaId) -> Result<ClusterConfig> {
        let api_name = Component::Api.container_name(replica);
        let api = engine
            .inspect(&api_name)
            .await?
            .ok_or_else(|| Error::ReplicaNotFound {
                replica: replica.to_string(),
                existing: vec![],
            })?;
        let env = &api.env;
        let registry_name = Component::Registry.container_name(replica);
        let registry = engine.inspect(&registry_name).await?;
        let storage = registry
            .as_ref()
            .and_then(|r| r.mounts.iter().find(|m| m.target == STORAGE_MOUNT))
            .map(|m| m.source.clone())
            .ok_or_else(|| Error::BrokenReplica {
                replica: replica.to_string(),
                problem: format!(
                    "{registry_name} has no /storage mount: cannot tell where the cluster keeps its images"
                ),
            })?;
        // an NFS volume's labels record the export it mounts
        let nfs = match engine.volume(&storage).await? {
            Some(v) if !v.options.is_empty() => labels::nfs_of(&v.labels),
            _ => None,
        };
        let settings = Settings {
            external_url: env
                .get(dtr_core::contract::env::CLUSTER_EXTERNAL_URL)
                .cloned(),
            storage,
            nfs,
            log_level: env
                .get("LOG_LEVEL")
                .cloned()
                .unwrap_or_else(|| "info".into()),
            http_proxy: env.get("HTTP_PROXY").cloned(),
            https_proxy: env.get("HTTPS_PROXY").cloned(),
            no_proxy: env.get("NO_PROXY").cloned(),
        };
        // fail early on a value we could not use again
        settings.external_url()?;
        settings.log_level()?;

        // through a helper mounting the volume: the components do not see the CA key
        let ca_volume = api
            .mounts
            .iter()
            .find(|m| m.target == dtr_core::contract::CA_MOUNT)
            .map(|m| m.source.clone())
            .ok_or_else(|| Error::BrokenReplica {
                replica: replica.to_string(),
                problem: format!("{api_name} has no {} mount", dtr_core::contract::CA_MOUNT),
            })?;
        let archive = engine
            .read_volume(
                &ca_volume,
                dtr_core::contract::CA_MOUNT,
                &format!("dtr-read-ca-{replica}"),
                labels::helper(replica, dtr_core::version::VERSION)
                    .into_iter()
                    .collect(),
                // through MKE, on the node of the replica (not the one a join names)
                api.labels.get(labels::NODE).cloned(),
            )
            .await?;
        let wanted: Vec<&str> = SEED_FILES
            .iter()
            .map(|f| f.path)
            .chain(EXTERNAL_FILES.iter().copied())
            .collect();
        let files = read_ca_archive(&archive, &wanted)?;
        let config = ClusterConfig { settings, files };
        config.seed().map_err(|missing| Error::BrokenReplica {
            replica: replica.to_string(),
            problem: format!("its dtr-ca volume has no {missing}"),
        })?;
        Ok(config)
    }

    /// The shared files a new replica's phase 2 needs (`SEED_FILES`: the required ones and
    /// the others the cluster has), or the first required one missing.
    pub fn seed(&self) -> std::result::Result<SeedFiles, String> {
        let mut out = Vec::new();
        for f in SEED_FILES {
            match self.files.get(f.path) {
                Some(bytes) => out.push((f.path.to_string(), bytes.clone())),
                None if f.required => return Err(f.path.to_string()),
                None => {}
            }
        }
        Ok(out)
    }

    /// The user's own HTTPS certificate and key, when they brought one (its CA is not the
    /// cluster's); it serves every replica.
    pub fn user_cert(&self) -> (Option<UserCertPublic>, Option<Secret<String>>) {
        let text = |rel: &str| {
            self.files
                .get(rel)
                .map(|b| String::from_utf8_lossy(b.expose()).to_string())
        };
        match (text("external/ca.pem"), text("ca.pem")) {
            (Some(ext), Some(ca)) if ext.trim() != ca.trim() => (
                Some(UserCertPublic {
                    cert_pem: text("external/cert.pem").unwrap_or_default(),
                    ca_pem: Some(ext),
                }),
                text("external/key.pem").map(Secret::new),
            ),
            _ => (None, None),
        }
    }
}

/// The `wanted` files of a `GET /containers/<c>/archive?path=/ca` tar, by path inside the volume.
fn read_ca_archive(archive: &[u8], wanted: &[&str]) -> Result<BTreeMap<String, Secret<Vec<u8>>>> {
    let failed = |e| Error::io("read the dtr-ca archive", e);
    let mut out = BTreeMap::new();
    let mut tar = tar::Archive::new(archive);
    for entry in tar.entries().map_err(failed)? {
        let mut entry = entry.map_err(failed)?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let path = entry.path().map_err(failed)?.to_string_lossy().to_string();
        let rel = path.strip_prefix("ca/").unwrap_or(&path).to_string();
        if !wanted.contains(&rel.as_str()) {
            continue;
        }
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).map_err(failed)?;
        out.insert(rel, Secret::new(bytes));
    }
    Ok(out)
}
