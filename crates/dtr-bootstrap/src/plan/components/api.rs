//! api: this project's binary as `dtr api` (the HTTP API, the token service, health).

use dtr_core::component::{Component, DB_PORT, ETCD_CLIENT_PORT};
use dtr_core::contract::env::{ApiEnv, RoleEnv, TokenAuth};

use crate::plan::{ContainerSpec, ReplicaContext};

/// The environment of the two roles of our own binary (api and jobrunner).
pub fn role_env(ctx: &ReplicaContext) -> RoleEnv {
    RoleEnv {
        base: ctx.base_env(),
        db_hosts: vec![ctx.hosts(Component::Rethinkdb, DB_PORT)],
        etcd_endpoints: vec![format!(
            "https://{}",
            ctx.hosts(Component::Etcd, ETCD_CLIENT_PORT)
        )],
        external_url: format!("https://{}", ctx.external_authority),
    }
}

pub fn spec(ctx: &ReplicaContext) -> ContainerSpec {
    let mut s = ctx.base_spec(Component::Api);
    let env = ApiEnv {
        role: role_env(ctx),
        https_port: ctx.https_port,
        cluster_url: ctx.cluster_url.clone(),
        // the api issues the tokens the registry and notary-server check
        token: TokenAuth::for_authority(&ctx.external_authority),
    };
    s.env.extend(env.to_env());
    s
}
