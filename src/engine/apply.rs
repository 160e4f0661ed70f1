//! The executor every operation reuses: creates networks, volumes and containers from a plan,
//! runs phase 2, starts containers in dependency order waiting for each to be healthy, and keeps
//! a ledger of what *this run* created so that a failure or Ctrl-C removes exactly that.

use std::collections::BTreeSet;
use std::sync::Mutex;

use bollard::models::{ContainerCreateBody, HostConfig};
use futures_util::future::try_join_all;

use crate::components::Component;
use crate::engine::{probe, Engine};
use crate::error::{Error, Result};
use crate::plan::{labels, ContainerSpec, NetworkSpec, Phase2Spec, VolumeSpec};
use crate::report::Reporter;
use crate::roles::phase2::{
    CertResult, Phase2Secrets, ADMIN_PATH, REQUEST_PATH, RESULT_PREFIX, SEED_DIR, USER_KEY_PATH,
};

#[derive(Clone, Debug, PartialEq, Eq)]
enum Created {
    Network(String),
    Volume(String),
    Container(String),
}

impl Created {
    fn describe(&self) -> String {
        match self {
            Created::Network(n) => format!("network {n}"),
            Created::Volume(n) => format!("volume {n}"),
            Created::Container(n) => format!("container {n}"),
        }
    }
}

/// Objects this run created, recorded *before* each create call so that an interrupted call is
/// still cleaned up (removing something that was never made is a no-op).
#[derive(Default)]
pub struct Ledger(Mutex<Vec<Created>>);

impl Ledger {
    fn record(&self, c: Created) {
        self.0.lock().expect("not poisoned").push(c);
    }

    fn forget(&self, c: &Created) {
        self.0.lock().expect("not poisoned").retain(|x| x != c);
    }

    /// Removes everything recorded, newest first: containers, then volumes, then networks.
    /// Returns (removed, could not remove).
    pub async fn rollback(&self, engine: &Engine) -> (Vec<String>, Vec<String>) {
        let items: Vec<Created> = self
            .0
            .lock()
            .expect("not poisoned")
            .drain(..)
            .rev()
            .collect();
        let (mut removed, mut left) = (Vec::new(), Vec::new());
        let rank = |c: &Created| match c {
            Created::Container(_) => 0,
            Created::Volume(_) => 1,
            Created::Network(_) => 2,
        };
        let mut ordered = items;
        ordered.sort_by_key(rank);
        for item in ordered {
            let result = match &item {
                Created::Container(n) => engine.remove_container(n).await,
                Created::Volume(n) => engine.remove_volume(n).await,
                Created::Network(n) => engine.remove_network(n).await,
            };
            match result {
                Ok(()) => removed.push(item.describe()),
                Err(e) => left.push(format!(
                    "{} ({})",
                    item.describe(),
                    crate::report::render(&e)
                )),
            }
        }
        (removed, left)
    }
}

pub struct Apply<'a> {
    pub engine: &'a Engine,
    pub reporter: &'a Reporter,
    pub ledger: Ledger,
}

impl<'a> Apply<'a> {
    pub fn new(engine: &'a Engine, reporter: &'a Reporter) -> Self {
        Apply {
            engine,
            reporter,
            ledger: Ledger::default(),
        }
    }

    /// After `operation` failed with `cause` (or was interrupted): says so, removes what this
    /// run created, and returns the error that reports both.
    pub async fn roll_back(&self, operation: &'static str, cause: Error) -> Error {
        if matches!(cause, Error::Interrupted) {
            self.reporter.warn(format!(
                "interrupted: removing what this {operation} created"
            ));
        } else {
            self.reporter
                .warn(format!("{operation} failed: removing what it created"));
        }
        let (removed, left_behind) = self.ledger.rollback(self.engine).await;
        Error::RolledBack {
            operation,
            cause: Box::new(cause),
            removed,
            left_behind,
        }
    }

    /// Creates the networks that do not exist; existing ones (ours, checked by preflight) are reused.
    pub async fn networks(&self, specs: &[NetworkSpec]) -> Result<Vec<String>> {
        let mut made = Vec::new();
        for spec in specs {
            if !self.engine.networks_named(&spec.name).await?.is_empty() {
                self.reporter
                    .debug(format!("network {} exists, reusing it", spec.name));
                continue;
            }
            let item = Created::Network(spec.name.clone());
            self.ledger.record(item.clone());
            if let Err(e) = self.engine.create_network(spec).await {
                self.ledger.forget(&item);
                return Err(e);
            }
            made.push(spec.name.clone());
        }
        Ok(made)
    }

    /// Creates the volumes that do not exist; an existing volume is reused as it is (that is how
    /// users choose a volume driver).
    pub async fn volumes(&self, specs: &[VolumeSpec]) -> Result<(Vec<String>, Vec<String>)> {
        let (mut made, mut reused) = (Vec::new(), Vec::new());
        for spec in specs {
            if self.engine.volume(&spec.name).await?.is_some() {
                reused.push(spec.name.clone());
                continue;
            }
            let item = Created::Volume(spec.name.clone());
            self.ledger.record(item.clone());
            if let Err(e) = self.engine.create_volume(spec).await {
                self.ledger.forget(&item);
                return Err(e);
            }
            made.push(spec.name.clone());
        }
        Ok((made, reused))
    }

    /// Runs `dtr phase2 certs` in the short-lived container and returns its result.
    pub async fn phase2_certs(
        &self,
        spec: &Phase2Spec,
        secrets: &Phase2Secrets,
    ) -> Result<CertResult> {
        self.clear_stale_phase2(&spec.name).await?;
        let body = ContainerCreateBody {
            image: Some(spec.image.clone()),
            cmd: Some(spec.command.clone()),
            user: Some("0:0".into()),
            labels: Some(spec.labels.clone().into_iter().collect()),
            network_disabled: Some(true),
            host_config: Some(HostConfig {
                mounts: Some(super::mounts(&spec.mounts)),
                network_mode: Some("none".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let item = Created::Container(spec.name.clone());
        self.ledger.record(item.clone());
        self.engine.create_raw(&spec.name, body).await?;
        let request = serde_json::to_vec(&spec.request).expect("serializable");
        let request_name = REQUEST_PATH.trim_start_matches("/run/");
        let mut files: Vec<(&str, &[u8], u32)> = vec![(request_name, &request, 0o600)];
        for (path, secret) in [
            (USER_KEY_PATH, &secrets.user_key),
            (ADMIN_PATH, &secrets.admin),
        ] {
            if let Some(value) = secret {
                files.push((
                    path.trim_start_matches("/run/"),
                    value.expose().as_bytes(),
                    0o600,
                ));
            }
        }
        let seed_paths: Vec<String> = secrets
            .seed
            .iter()
            .map(|(rel, _)| format!("{}/{rel}", SEED_DIR.trim_start_matches("/run/")))
            .collect();
        for ((_, contents), path) in secrets.seed.iter().zip(&seed_paths) {
            files.push((path, contents.expose(), 0o600));
        }
        self.engine.upload(&spec.name, "/run", &files).await?;
        self.engine.start(&spec.name).await?;
        let code = self.engine.wait_exit(&spec.name).await?;
        let (stdout, stderr) = self.engine.output(&spec.name).await;
        self.engine.remove_container(&spec.name).await?;
        self.ledger.forget(&item);
        if code != 0 {
            return Err(Error::Phase2 {
                step: spec.command.join(" "),
                message: format!("exit code {code}: {}", stderr.trim()),
            });
        }
        let line = stdout
            .lines()
            .find_map(|l| l.strip_prefix(RESULT_PREFIX))
            .ok_or_else(|| Error::Phase2 {
                step: spec.command.join(" "),
                message: "it printed no result".into(),
            })?;
        serde_json::from_str(line).map_err(|e| Error::Phase2 {
            step: spec.command.join(" "),
            message: format!("unreadable result: {e}"),
        })
    }

    /// A `dtr-phase2` left by an interrupted run is removed; one still running means another
    /// operation is under way.
    async fn clear_stale_phase2(&self, name: &str) -> Result<()> {
        let found = self
            .engine
            .containers_labelled(&[&format!("{}=true", labels::PHASE2)])
            .await?;
        for c in found {
            let names = c.names.unwrap_or_default();
            if !names.iter().any(|n| n.trim_start_matches('/') == name) {
                continue;
            }
            if c.state.map(|s| s.to_string()) == Some("running".into()) {
                return Err(Error::Phase2 {
                    step: "start".into(),
                    message: format!("a {name} container is already running: another dtr operation is in progress on this node; wait for it or remove it"),
                });
            }
            self.engine.remove_container(name).await?;
        }
        Ok(())
    }

    /// Creates all containers (not started), concurrently.
    pub async fn create_containers(&self, specs: &[ContainerSpec]) -> Result<()> {
        for s in specs {
            self.ledger.record(Created::Container(s.name.clone()));
        }
        try_join_all(specs.iter().map(|s| self.engine.create_container(s))).await?;
        Ok(())
    }

    /// Starts the containers in dependency order: every round starts, concurrently, each
    /// container whose dependencies are healthy, and waits for it to be healthy.
    pub async fn start_in_order(&self, specs: &[ContainerSpec]) -> Result<()> {
        let mut healthy: BTreeSet<Component> = BTreeSet::new();
        let mut pending: Vec<&ContainerSpec> = specs.iter().collect();
        let planned: BTreeSet<Component> = specs.iter().map(|s| s.component).collect();
        while !pending.is_empty() {
            let (ready, rest): (Vec<&ContainerSpec>, Vec<&ContainerSpec>) =
                pending.into_iter().partition(|s| {
                    s.depends_on
                        .iter()
                        .all(|d| healthy.contains(d) || !planned.contains(d))
                });
            if ready.is_empty() {
                return Err(Error::Role(format!(
                    "dependency cycle among {:?}",
                    rest.iter().map(|s| &s.name).collect::<Vec<_>>()
                )));
            }
            try_join_all(ready.iter().map(|s| self.start_one(s))).await?;
            healthy.extend(ready.iter().map(|s| s.component));
            pending = rest;
        }
        Ok(())
    }

    async fn start_one(&self, spec: &ContainerSpec) -> Result<()> {
        let step = self.reporter.step(format!("start {}", spec.name));
        let result = async {
            self.engine.start(&spec.name).await?;
            probe::wait_healthy_step(
                self.engine,
                &spec.name,
                &spec.health.command,
                spec.readiness_timeout,
                &step,
            )
            .await
        }
        .await;
        match result {
            Ok(_) => {
                step.done("healthy");
                Ok(())
            }
            Err(e) => {
                step.fail(e.to_string());
                Err(e)
            }
        }
    }
}
