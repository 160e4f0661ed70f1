//! How the plan runs each component: one module per component turns the replica's shared
//! base spec (`ReplicaContext::base_spec`) into its container spec: environment, mounts,
//! ports, user. The names, uids and ports are `dtr_core::component`; the variables are
//! `dtr_core::contract::env`; the images' side is `docker/<component>/`.

mod api;
mod etcd;
mod jobrunner;
mod nginx;
mod notary;
mod registry;
mod rethinkdb;

use dtr_core::component::Component;

use crate::plan::{ContainerSpec, ReplicaContext};

/// The container spec of `component` for the replica of `ctx`.
pub fn spec(component: Component, ctx: &ReplicaContext) -> ContainerSpec {
    match component {
        Component::Etcd => etcd::spec(ctx),
        Component::Rethinkdb => rethinkdb::spec(ctx),
        Component::NotarySigner => notary::signer_spec(ctx),
        Component::NotaryServer => notary::server_spec(ctx),
        Component::Registry => registry::spec(ctx),
        Component::Api => api::spec(ctx),
        Component::Jobrunner => jobrunner::spec(ctx),
        Component::Nginx => nginx::spec(ctx),
    }
}
