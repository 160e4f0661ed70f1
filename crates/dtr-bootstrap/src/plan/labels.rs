//! The labels that mark a Docker object as ours. Status, destroy and clean-up find objects only
//! through these, never by name alone, so nothing the user made is ever touched.

use std::collections::BTreeMap;

use dtr_core::component::Component;
use dtr_core::options::ReplicaId;

/// Present (value `true`) on every object dtr creates.
pub const MANAGED: &str = "com.docker.dtr.managed";
/// The original's labels, kept for operators' scripts.
pub const REPLICA: &str = "com.docker.dtr.replica";
pub const VERSION: &str = "com.docker.dtr.version";
pub const COMPONENT: &str = "com.docker.dtr.component";
pub const VOLUME_KIND: &str = "com.docker.dtr.volume";
pub const NETWORK_KIND: &str = "com.docker.dtr.network";
/// On component containers: `ContainerSpec::fingerprint` of the spec it was made from.
pub const SPEC: &str = "com.docker.dtr.spec";
/// The node a container was placed on through MKE (set by the engine layer, not the plan).
pub const NODE: &str = "com.docker.dtr.node";
/// On the short-lived phase-2 container.
pub const PHASE2: &str = "com.docker.dtr.phase2";

fn base(version: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (MANAGED.to_string(), "true".to_string()),
        (VERSION.to_string(), version.to_string()),
    ])
}

pub fn container(
    replica: &ReplicaId,
    version: &str,
    component: Component,
) -> BTreeMap<String, String> {
    let mut l = base(version);
    l.insert(REPLICA.into(), replica.to_string());
    l.insert(COMPONENT.into(), component.name().into());
    l
}

pub fn volume(replica: &ReplicaId, version: &str, kind: &str) -> BTreeMap<String, String> {
    let mut l = base(version);
    l.insert(REPLICA.into(), replica.to_string());
    l.insert(VOLUME_KIND.into(), kind.into());
    l
}

/// The NFS export an `nfs-registry` volume mounts, as given (`--nfs-storage-url`,
/// `--nfs-options`, `--async-nfs`): how `join`, `backup` and `reconfigure` read the cluster's
/// NFS storage back.
pub const NFS_URL: &str = "com.docker.dtr.nfs.url";
pub const NFS_OPTIONS: &str = "com.docker.dtr.nfs.options";
pub const NFS_ASYNC: &str = "com.docker.dtr.nfs.async";

pub fn nfs_volume(
    replica: &ReplicaId,
    version: &str,
    nfs: &dtr_core::options::NfsStorage,
) -> BTreeMap<String, String> {
    let mut l = volume(replica, version, "registry");
    l.insert(NFS_URL.into(), nfs.url.clone());
    if let Some(o) = &nfs.options {
        l.insert(NFS_OPTIONS.into(), o.clone());
    }
    l.insert(NFS_ASYNC.into(), nfs.async_nfs.to_string());
    l
}

/// The NFS storage an `nfs-registry` volume's labels record, if they do.
pub fn nfs_of(labels: &BTreeMap<String, String>) -> Option<dtr_core::options::NfsStorage> {
    dtr_core::options::NfsStorage::parse(
        labels.get(NFS_URL)?,
        labels.get(NFS_OPTIONS).map(String::as_str),
        labels.get(NFS_ASYNC).is_some_and(|v| v == "true"),
    )
    .ok()
}

pub fn network(version: &str, kind: &str) -> BTreeMap<String, String> {
    let mut l = base(version);
    l.insert(NETWORK_KIND.into(), kind.into());
    l
}

pub fn phase2(replica: &ReplicaId, version: &str) -> BTreeMap<String, String> {
    let mut l = helper(replica, version);
    l.insert(PHASE2.into(), "true".into());
    l
}

/// On the throw-away containers of an operation (port probe, network test, volume writer):
/// ours and the replica's, so that clean-up by label finds them.
pub fn helper(replica: &ReplicaId, version: &str) -> BTreeMap<String, String> {
    let mut l = base(version);
    l.insert(REPLICA.into(), replica.to_string());
    l
}

/// Docker label filter for "everything we made" (`label=com.docker.dtr.managed=true`).
pub fn managed_filter() -> String {
    format!("{MANAGED}=true")
}

/// Docker label filter for one replica's objects.
pub fn replica_filter(replica: &ReplicaId) -> String {
    format!("{REPLICA}={replica}")
}
