//! etcd: the replica's member of the configuration and coordination store (Patroni's DCS too).

use crate::components::Component;
use crate::plan::{volume_name, ContainerSpec, MountSpec, ReplicaContext};

pub const CLIENT_PORT: u16 = 2379;
pub const PEER_PORT: u16 = 2380;

/// The URL other etcd members reach this replica's member by.
pub fn peer_url(replica: &crate::options::ReplicaId) -> String {
    format!(
        "https://{}:{PEER_PORT}",
        Component::Etcd.container_name(replica)
    )
}

pub fn spec(ctx: &ReplicaContext) -> ContainerSpec {
    let mut s = ctx.base_spec(Component::Etcd);
    s.mounts.push(MountSpec {
        source: volume_name("etcd", &ctx.replica_id),
        target: "/data".into(),
        read_only: false,
        bind: false,
    });
    let cluster = ctx
        .etcd_initial_cluster
        .iter()
        .map(|(name, url)| format!("{name}={url}"))
        .collect::<Vec<_>>()
        .join(",");
    s.env.insert("ETCD_NAME".into(), ctx.replica_id.to_string());
    s.env.insert("ETCD_INITIAL_CLUSTER".into(), cluster);
    s.env.insert(
        "ETCD_INITIAL_CLUSTER_STATE".into(),
        ctx.etcd_cluster_state.into(),
    );
    s.env
        .insert("ETCD_INITIAL_CLUSTER_TOKEN".into(), "dtr".into());
    s
}
