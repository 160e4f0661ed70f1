//! jobrunner: this project's binary as `dtr jobrunner` (background jobs from the database).

use crate::components::{api, Component};
use crate::plan::{ContainerSpec, ReplicaContext};

pub fn spec(ctx: &ReplicaContext) -> ContainerSpec {
    let mut s = ctx.base_spec(Component::Jobrunner);
    api::role_env(ctx, &mut s);
    s
}
