//! api: this project's binary as `dtr api` (health, cluster status; the business logic).

use crate::components::{etcd, rethinkdb, Component};
use crate::plan::{ContainerSpec, ReplicaContext};

pub const PORT: u16 = 9443;
/// `--dtr-external-url` as given at install, on the api container.
pub const CLUSTER_URL_ENV: &str = "DTR_CLUSTER_EXTERNAL_URL";

/// Env shared by the two roles of our own binary (api and jobrunner).
pub fn role_env(ctx: &ReplicaContext, s: &mut ContainerSpec) {
    s.env.insert(
        "DTR_DB_HOSTS".into(),
        ctx.hosts(Component::Rethinkdb, rethinkdb::PG_PORT),
    );
    s.env.insert(
        "DTR_ETCD_ENDPOINTS".into(),
        format!("https://{}", ctx.hosts(Component::Etcd, etcd::CLIENT_PORT)),
    );
    s.env.insert(
        "DTR_EXTERNAL_URL".into(),
        format!("https://{}", ctx.external_authority),
    );
}

pub fn spec(ctx: &ReplicaContext) -> ContainerSpec {
    let mut s = ctx.base_spec(Component::Api);
    role_env(ctx, &mut s);
    s.env
        .insert("DTR_HTTPS_PORT".into(), ctx.https_port.to_string());
    if let Some(url) = &ctx.cluster_url {
        // not used by the api: `dtr join` reads it back to plan the next replica the same way
        s.env.insert(CLUSTER_URL_ENV.into(), url.clone());
    }
    // the api issues the tokens the registry and notary-server check
    s.env.extend(super::registry::token_auth_env(ctx));
    s
}
