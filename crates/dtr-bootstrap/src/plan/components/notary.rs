//! notary-signer and notary-server: content trust. Both keep their data in the metadata
//! database; the signer's keys are encrypted with a passphrase that lives in the CA volume.

use dtr_core::component::Component;
use dtr_core::contract::env::{self, TokenAuth};

use crate::plan::{volume_name, ContainerSpec, MountSpec, ReplicaContext};

pub fn signer_spec(ctx: &ReplicaContext) -> ContainerSpec {
    let mut s = ctx.base_spec(Component::NotarySigner);
    s.mounts.push(MountSpec {
        source: volume_name("notary", &ctx.replica_id),
        target: "/var/lib/notary".into(),
        read_only: false,
        bind: false,
    });
    s.env
        .insert(env::DB_HOST.into(), ctx.container(Component::Rethinkdb));
    s
}

pub fn server_spec(ctx: &ReplicaContext) -> ContainerSpec {
    let mut s = ctx.base_spec(Component::NotaryServer);
    s.env
        .insert(env::DB_HOST.into(), ctx.container(Component::Rethinkdb));
    s.env.insert(
        env::NOTARY_SIGNER_HOST.into(),
        ctx.container(Component::NotarySigner),
    );
    // its own audience: a token for trust data is no token for the registry
    s.env.extend(
        TokenAuth::for_authority(&ctx.external_authority)
            .for_notary()
            .to_env(),
    );
    s
}
