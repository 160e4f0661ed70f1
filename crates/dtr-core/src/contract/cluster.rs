//! What a cluster keeps about itself, so that a replica can join it — or a command find its
//! way around it — from any node of the swarm, not only through the engine of a node where a
//! replica runs:
//! - the **seed**: the cluster-wide settings of the replicas' containers and the files every
//!   replica shares (`phase2::SEED_FILES`, and the user's HTTPS certificate), published by the
//!   bootstrapper as a swarm secret (`SEED_SECRET_PREFIX`) that only a swarm manager can hand
//!   to a task; the join agent (`dtr join-agent`, a one-task service on the joining node)
//!   reads it there;
//! - in etcd: every replica's record (`REPLICAS_PREFIX`: its node and ports), and the replicas
//!   an emergency repair retired (`RETIRED_PREFIX`);
//! - what the join agent reports back about the cluster (`JoinCheck`), which holds no secret.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::options::{ExternalUrl, LogLevel, NfsStorage, Proxies, ReplicaId, Storage};
use crate::secret::Secret;

/// The settings part of the cluster's configuration: what every replica's containers are made
/// with. Saved in a backup as `config/cluster.json` and carried by the seed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub external_url: Option<String>,
    /// The registry's `/storage`: a volume name or an absolute host path.
    pub storage: String,
    /// When that volume mounts an NFS export: the export (`--nfs-storage-url` and options).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nfs: Option<NfsStorage>,
    pub log_level: String,
    pub http_proxy: Option<String>,
    pub https_proxy: Option<String>,
    pub no_proxy: Option<String>,
}

impl Settings {
    pub fn external_url(&self) -> Result<Option<ExternalUrl>> {
        self.external_url
            .as_deref()
            .map(ExternalUrl::parse)
            .transpose()
    }

    pub fn log_level(&self) -> Result<LogLevel> {
        LogLevel::parse(&self.log_level)
    }

    pub fn proxies(&self) -> Proxies {
        Proxies {
            http: self.http_proxy.clone(),
            https: self.https_proxy.clone(),
            no_proxy: self.no_proxy.clone(),
        }
    }

    /// The storage for `replica`: the same NFS export, its own default volume when the saved
    /// volume is the one named after the replica it was read from (`own`), otherwise the saved
    /// volume or path itself.
    pub fn storage_for(&self, own: &ReplicaId) -> Result<Storage> {
        if let Some(nfs) = &self.nfs {
            return Ok(Storage::Nfs(nfs.clone()));
        }
        if self.storage == format!("dtr-registry-{own}") {
            return Ok(Storage::DefaultVolume);
        }
        Storage::parse(Some(&self.storage))
    }

    /// Whether replicas on different nodes could share this storage by itself: an NFS export
    /// (a named volume or a host path is on its node, unless the operator shares it).
    pub fn shared_between_nodes(&self) -> bool {
        self.nfs.is_some()
    }
}

/// The name of the cluster's seed secrets: `dtr-seed-<cluster>-<content>`, 12 hex digits each
/// (the cluster: of the CA certificate's fingerprint; the content: of the seed itself).
pub const SEED_SECRET_PREFIX: &str = "dtr-seed-";
/// The label of a seed secret naming its cluster.
pub const SEED_CLUSTER_LABEL: &str = "com.docker.dtr.cluster";
/// Where the join agent's task sees the seed (`/run/secrets/<target>`).
pub const SEED_SECRET_TARGET: &str = "dtr-seed";

/// A shared file of the seed, hexadecimal in the secret.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeedFile {
    /// Inside the dtr-ca volume.
    pub path: String,
    pub data: String,
}

impl std::fmt::Debug for SeedFile {
    /// The path only: the data holds keys.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SeedFile({}, {} bytes)", self.path, self.data.len() / 2)
    }
}

/// The seed secret's content.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSeed {
    /// `seed_cluster_id` of the CA.
    pub cluster: String,
    /// The replica the seed was read from.
    pub replica: ReplicaId,
    pub settings: Settings,
    pub files: Vec<SeedFile>,
}

impl ClusterSeed {
    pub fn new(
        replica: ReplicaId,
        settings: Settings,
        files: &BTreeMap<String, Secret<Vec<u8>>>,
    ) -> Option<ClusterSeed> {
        let ca = files.get("ca.pem")?;
        Some(ClusterSeed {
            cluster: cluster_id(&String::from_utf8_lossy(ca.expose())),
            replica,
            settings,
            files: files
                .iter()
                .map(|(path, data)| SeedFile {
                    path: path.clone(),
                    data: hex::encode(data.expose()),
                })
                .collect(),
        })
    }

    /// The content of the file at `path` of the dtr-ca volume, when the seed has it.
    pub fn file(&self, path: &str) -> Option<Secret<Vec<u8>>> {
        self.files
            .iter()
            .find(|f| f.path == path)
            .and_then(|f| hex::decode(&f.data).ok())
            .map(Secret::new)
    }

    fn text(&self, path: &str) -> Option<String> {
        self.file(path)
            .map(|b| String::from_utf8_lossy(b.expose()).to_string())
    }

    /// The user's own HTTPS certificate (chain, then its CA) when they brought one: its CA
    /// (`external/ca.pem`) is then not the cluster's. Public.
    pub fn user_cert(&self) -> Option<(String, Option<String>)> {
        match (self.text(EXTERNAL_CA), self.text("ca.pem")) {
            (Some(ext), Some(ca)) if ext.trim() != ca.trim() => {
                Some((self.text(EXTERNAL_CERT).unwrap_or_default(), Some(ext)))
            }
            _ => None,
        }
    }
}

/// The HTTPS certificate files of the dtr-ca volume (the user's own when they brought one).
pub const EXTERNAL_CA: &str = "external/ca.pem";
pub const EXTERNAL_CERT: &str = "external/cert.pem";
pub const EXTERNAL_KEY: &str = "external/key.pem";

/// The cluster's identity: the first 12 hex digits of the SHA-256 of its CA certificate, the
/// same on every replica (a restore from a backup keeps it: the CA is the backup's).
pub fn cluster_id(ca_pem: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(ca_pem.trim().as_bytes()))[..12].to_string()
}

/// The secret's name for a seed document of cluster `cluster`.
pub fn seed_secret_name(cluster: &str, document: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    format!(
        "{SEED_SECRET_PREFIX}{cluster}-{}",
        &hex::encode(Sha256::digest(document))[..12]
    )
}

/// Every replica's record in etcd: `REPLICAS_PREFIX<replica id>` → `ReplicaRecord`.
pub const REPLICAS_PREFIX: &str = "/dtr/cluster/replicas/";
/// A replica an emergency repair retired: `RETIRED_PREFIX<replica id>` → `Retired`.
pub const RETIRED_PREFIX: &str = "/dtr/cluster/retired/";

/// Where a replica runs, as `install`, `join` and `restore` record it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaRecord {
    /// The swarm node's hostname.
    pub node: String,
    pub https_port: u16,
    pub http_port: u16,
}

/// Why a replica must never serve again.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retired {
    pub by: String,
    pub at: String,
    pub reason: String,
}

/// What the join agent (`dtr join-agent check`) found, printed as one JSON line on its
/// stdout. Read through the replica the join goes through; nothing in it is secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinCheck {
    pub cluster: String,
    /// The replica the seed was read from, and the one the agent asked.
    pub via: ReplicaId,
    pub settings: Settings,
    /// The user's own HTTPS certificate chain and its CA, when they brought one (public).
    pub user_cert: Option<(String, Option<String>)>,
    /// The image storage as `/dtr/storage` describes it (no credential).
    pub storage: String,
    /// Whether that is the replicas' volume (not an object store).
    pub storage_on_volume: bool,
    pub replicas: BTreeMap<ReplicaId, ReplicaState>,
    /// Set when the agent could not read the cluster at all (the existing replica's etcd did
    /// not answer, or its CA is not the seed's).
    pub failure: Option<String>,
}

/// One replica as the cluster sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaState {
    pub record: Option<ReplicaRecord>,
    /// etcd: `Some(learner)` for a member, `None` for a replica that is not one.
    pub etcd_learner: Option<bool>,
    /// The etcd member's id (hexadecimal, as etcdctl takes it).
    pub etcd_member: Option<String>,
    pub etcd_healthy: bool,
    /// Patroni's role and state (`leader`/`replica`, `running`/`streaming`...).
    pub db: Option<(String, String)>,
    /// The api's `/_ping`: healthy, and the version it runs.
    pub ping: Option<(bool, String)>,
    pub retired: bool,
}

impl ReplicaState {
    /// A voting etcd member whose etcd, database member and api all answer well.
    pub fn healthy(&self) -> bool {
        self.etcd_learner == Some(false)
            && self.etcd_healthy
            && self.ping.as_ref().is_some_and(|(ok, _)| *ok)
            && self
                .db
                .as_ref()
                .is_some_and(|(_, state)| state == "running" || state == "streaming")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clusters_id_is_its_cas_and_a_seeds_name_its_content() {
        let a = cluster_id("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n");
        assert_eq!(a.len(), 12);
        assert_eq!(
            a,
            cluster_id("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----")
        );
        let one = seed_secret_name(&a, b"{}");
        assert!(one.starts_with(&format!("dtr-seed-{a}-")), "{one}");
        assert_ne!(one, seed_secret_name(&a, b"{ }"));
    }

    #[test]
    fn settings_tell_their_storage() {
        let own = ReplicaId::parse("0123456789ab").unwrap();
        let mut s = Settings {
            external_url: None,
            storage: "dtr-registry-0123456789ab".into(),
            nfs: None,
            log_level: "info".into(),
            http_proxy: None,
            https_proxy: None,
            no_proxy: None,
        };
        assert_eq!(s.storage_for(&own).unwrap(), Storage::DefaultVolume);
        assert!(!s.shared_between_nodes());
        s.storage = "blobs".into();
        assert_eq!(
            s.storage_for(&own).unwrap(),
            Storage::NamedVolume("blobs".into())
        );
    }
}
