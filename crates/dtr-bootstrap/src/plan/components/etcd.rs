//! etcd: the replica's member of the configuration and coordination store (Patroni's DCS too).

use dtr_core::component::Component;
use dtr_core::contract::env;

use crate::plan::{volume_name, ContainerSpec, MountSpec, ReplicaContext};

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
    s.env
        .insert(env::ETCD_NAME.into(), ctx.replica_id.to_string());
    s.env.insert(env::ETCD_INITIAL_CLUSTER.into(), cluster);
    s.env.insert(
        env::ETCD_INITIAL_CLUSTER_STATE.into(),
        ctx.etcd_cluster_state.into(),
    );
    s.env
        .insert(env::ETCD_INITIAL_CLUSTER_TOKEN.into(), "dtr".into());
    s
}
