//! jobrunner: this project's binary as `dtr jobrunner` (background jobs from the database).
//! Garbage collection runs distribution's collector on the registry storage, so the jobrunner
//! mounts it like the registry does and runs in the registry's group: the registry writes with
//! `umask 0002`, so the jobrunner may delete what the registry stored. It starts distribution's
//! binary, setuid to the registry's user (jobs.md), so it runs without `no-new-privileges`.

use dtr_core::component::Component;

use crate::plan::{ContainerSpec, ReplicaContext};

pub fn spec(ctx: &ReplicaContext) -> ContainerSpec {
    let mut s = ctx.base_spec(Component::Jobrunner);
    s.env.extend(super::api::role_env(ctx).to_env());
    s.user = format!(
        "{}:{}",
        Component::Jobrunner.uid(),
        Component::Registry.uid()
    );
    s.mounts.push(ctx.storage.clone());
    s.no_new_privileges = false;
    s
}
