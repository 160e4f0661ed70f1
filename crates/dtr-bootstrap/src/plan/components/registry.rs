//! registry: distribution 2.8 serving `/v2/`, supervised by our binary (`dtr registry`), which
//! reads the cluster's storage configuration from etcd and moves the registry to a new one
//! without dropping a connection. Blobs on the storage volume at `/storage` or in the object
//! store; token auth by the api: it accepts only bearer tokens signed by the api
//! (`/ca/api/token.pem`) for this realm and service, the external URL as clients see it.

use dtr_core::component::{Component, ETCD_CLIENT_PORT, REGISTRY_SECRETS_GID};
use dtr_core::contract::env::{RegistryEnv, TokenAuth};

use crate::plan::{ContainerSpec, ReplicaContext};

pub fn spec(ctx: &ReplicaContext) -> ContainerSpec {
    let mut s = ctx.base_spec(Component::Registry);
    // its TLS key and notification secret are readable through this group only
    s.group_add.push(REGISTRY_SECRETS_GID);
    s.mounts.push(ctx.storage.clone());
    let env = RegistryEnv {
        base: ctx.base_env(),
        token: TokenAuth::for_authority(&ctx.external_authority),
        etcd_endpoints: vec![format!(
            "https://{}",
            ctx.hosts(Component::Etcd, ETCD_CLIENT_PORT)
        )],
    };
    s.env.extend(env.to_env());
    s
}
