//! registry: distribution 2.8 serving `/v2/`, blobs on the storage volume, token auth by the api.

use crate::components::Component;
use crate::plan::{ContainerSpec, ReplicaContext};

pub fn spec(ctx: &ReplicaContext) -> ContainerSpec {
    let mut s = ctx.base_spec(Component::Registry);
    s.mounts.push(ctx.storage.clone());
    s.env.insert(
        "DTR_TOKEN_REALM".into(),
        format!("https://{}/auth/token", ctx.external_authority),
    );
    s.env
        .insert("DTR_TOKEN_SERVICE".into(), ctx.external_authority.clone());
    s
}
