//! registry: distribution 2.8 serving `/v2/`, blobs on the storage volume, token auth by the api.

use crate::components::Component;
use crate::plan::{ContainerSpec, ReplicaContext};

pub fn spec(ctx: &ReplicaContext) -> ContainerSpec {
    let mut s = ctx.base_spec(Component::Registry);
    s.mounts.push(ctx.storage.clone());
    s.env.extend(token_auth_env(ctx));
    s
}

/// Registry and notary-server accept only bearer tokens signed by the api (`/ca/api/token.pem`)
/// for this realm and service: the external URL, as clients see it.
pub fn token_auth_env(ctx: &ReplicaContext) -> [(String, String); 2] {
    [
        (
            "DTR_TOKEN_REALM".into(),
            format!("https://{}/auth/token", ctx.external_authority),
        ),
        ("DTR_TOKEN_SERVICE".into(), ctx.external_authority.clone()),
    ]
}
