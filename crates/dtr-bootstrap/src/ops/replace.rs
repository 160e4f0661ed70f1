//! Replacing the containers of a running replica with new ones on the same volumes: what
//! `upgrade` (new images) and `reconfigure` (new settings) apply, one component at a time,
//! each health-waited before the next is touched.
//!
//! The new container is created beside the old one as `<name>-next` while the old one serves;
//! then the old one is stopped and becomes `<name>-previous`, the new one takes the name, is
//! started and waited for. A new container that does not become healthy is removed and the
//! old one started again. Containers are renamed only while stopped: Docker 20.10 refuses to
//! rename a running container attached to a swarm overlay network ("Could not add service
//! state for endpoint ... on rename"), so a new service cannot take over while the old one
//! still runs; the component is unavailable on that replica between the stop and the health
//! check passing (on a cluster, a load balancer sends its requests to the other replicas).
//!
//! A run cut short (Ctrl-C, a killed bootstrapper) leaves at most a `-next`, which never
//! served and is removed, and a `-previous`, which is either superseded (the new container
//! has the name) or the container to put back: the next run settles both before going on.

use std::time::{Duration, Instant};

use crate::engine::{probe, ContainerDetails, Engine};
use crate::error::Result;
use crate::plan::labels;
use crate::plan::running::{RunningContainer, RunningReplica};
use crate::plan::ContainerSpec;
use crate::report::Reporter;
use dtr_core::component::Component;
use dtr_core::options::ReplicaId;

pub const NEXT: &str = "-next";
pub const PREVIOUS: &str = "-previous";

/// Reads replica `rid`'s containers (a `-previous` one stands in for a missing container: that
/// is what an interrupted replacement leaves).
pub async fn observe(engine: &Engine, rid: &ReplicaId) -> Result<RunningReplica> {
    let mut containers = std::collections::BTreeMap::new();
    for c in Component::ALL {
        let name = c.container_name(rid);
        let found = match engine.inspect(&name).await? {
            Some(i) => Some(i),
            None => engine.inspect(&format!("{name}{PREVIOUS}")).await?,
        };
        if let Some(i) = found {
            containers.insert(c, running_of(&i));
        }
    }
    Ok(RunningReplica {
        replica_id: rid.clone(),
        containers,
    })
}

fn running_of(c: &ContainerDetails) -> RunningContainer {
    RunningContainer {
        version: c.labels.get(labels::VERSION).cloned().unwrap_or_default(),
        fingerprint: c.labels.get(labels::SPEC).cloned(),
        env: c.env.clone(),
        mounts: c.mounts.clone(),
        ports: c.ports.clone(),
    }
}

/// What one `replace` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The container was already made from the spec (and is healthy).
    Kept,
    /// A new container took over (or was made where one was missing).
    Replaced,
}

pub struct Replacer<'a> {
    pub engine: &'a Engine,
    pub reporter: &'a Reporter,
    /// Upper bound for each health wait (`--max-wait`); the component's own otherwise.
    pub max_wait: Option<Duration>,
}

impl Replacer<'_> {
    /// Makes `spec.name` the container `spec` describes, healthy.
    pub async fn replace(&self, spec: &ContainerSpec) -> Result<Outcome> {
        let start = Instant::now();
        let name = spec.name.as_str();
        let next = format!("{name}{NEXT}");
        let previous = format!("{name}{PREVIOUS}");
        let engine = self.engine;

        // what an interrupted run left: a `-next` never served; a `-previous` is either
        // superseded by the container that has the name or the one to put back
        engine.remove_container(&next).await?;
        let mut current = engine.inspect(name).await?;
        let had_previous = engine.inspect(&previous).await?.is_some();
        if had_previous {
            if current.is_some() {
                self.reporter
                    .debug(format!("{previous} was superseded by {name}: removing it"));
                engine.remove_container(&previous).await?;
            } else {
                self.reporter
                    .debug(format!("{name} is missing: putting {previous} back"));
                engine.rename(&previous, name).await?;
                current = engine.inspect(name).await?;
            }
        }
        let current = match current {
            None => {
                let step = self
                    .reporter
                    .step(format!("create {name} (it was missing)"));
                engine.create_container(spec).await?;
                self.start_healthy(spec, name, &step).await?;
                return Ok(Outcome::Replaced);
            }
            Some(c) => c,
        };
        if running_of(&current).made_from(spec) {
            if !current.running || had_previous {
                let step = self.reporter.step(format!("check {name}"));
                self.start_healthy(spec, name, &step).await?;
            }
            return Ok(Outcome::Kept);
        }

        let step = self.reporter.step(format!("replace {name}"));
        engine.create_container_as(spec, &next).await?;
        engine.stop(name, crate::plan::STOP_GRACE).await?;
        engine.rename(name, &previous).await?;
        engine.rename(&next, name).await?;
        if let Err(e) = self.start_healthy(spec, name, &step).await {
            self.reporter.warn(format!(
                "the new {name} did not become healthy: starting the one it replaced again"
            ));
            engine.remove_container(name).await?;
            engine.rename(&previous, name).await?;
            engine.start(name).await?;
            return Err(e);
        }
        engine.remove_container(&previous).await?;
        let took = start.elapsed();
        step.done(format!("{:.1}s", took.as_secs_f64()));
        Ok(Outcome::Replaced)
    }

    /// Starts `container` (made from `spec`) unless it runs, and waits for it to be healthy.
    async fn start_healthy(
        &self,
        spec: &ContainerSpec,
        container: &str,
        step: &crate::report::Step<'_>,
    ) -> Result<()> {
        if self.engine.state(container).await?.map(|(s, _)| s) != Some("running".into()) {
            self.engine.start(container).await?;
        }
        let timeout = self.max_wait.unwrap_or(spec.readiness_timeout);
        probe::wait_healthy_step(self.engine, container, &spec.health.command, timeout, step)
            .await
            .map(|_| ())
    }
}
