//! registry: distribution 2.8 serving `/v2/`, blobs on the storage volume, token auth by the
//! api: it accepts only bearer tokens signed by the api (`/ca/api/token.pem`) for this realm
//! and service, the external URL as clients see it.

use dtr_core::component::Component;
use dtr_core::contract::env::TokenAuth;

use crate::plan::{ContainerSpec, ReplicaContext};

pub fn spec(ctx: &ReplicaContext) -> ContainerSpec {
    let mut s = ctx.base_spec(Component::Registry);
    s.mounts.push(ctx.storage.clone());
    s.env
        .extend(TokenAuth::for_authority(&ctx.external_authority).to_env());
    s
}
