//! rethinkdb: the replicated metadata database. The container keeps DTR's name so operators'
//! scripts keep working; it runs PostgreSQL 15 managed by Patroni on the replica's etcd.

use dtr_core::component::{Component, ETCD_CLIENT_PORT};
use dtr_core::contract::env;

use crate::plan::{volume_name, ContainerSpec, MountSpec, ReplicaContext};

pub fn spec(ctx: &ReplicaContext) -> ContainerSpec {
    let mut s = ctx.base_spec(Component::Rethinkdb);
    s.mounts.push(MountSpec {
        source: volume_name("rethink", &ctx.replica_id),
        target: "/var/lib/postgresql/data".into(),
        read_only: false,
        bind: false,
    });
    s.env.insert(
        env::ETCD_HOSTS.into(),
        ctx.hosts(Component::Etcd, ETCD_CLIENT_PORT),
    );
    s.env.insert(
        env::DB_SHARED_BUFFERS_MB.into(),
        ctx.db_shared_buffers_mb.to_string(),
    );
    s.env.insert(
        env::DB_EFFECTIVE_CACHE_MB.into(),
        ctx.db_effective_cache_mb.to_string(),
    );
    s
}
