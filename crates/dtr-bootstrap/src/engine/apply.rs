//! The executor every operation reuses: creates networks, volumes and containers from a plan,
//! runs phase 2, starts containers in dependency order waiting for each to be healthy, and keeps
//! a ledger of what *this run* created so that a failure or Ctrl-C removes exactly that.

use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;

use futures_util::future::{join_all, try_join_all};

use dtr_core::component::Component;
use dtr_core::contract::phase2::{
    CertResult, Phase2Secrets, ADMIN_PATH, REQUEST_PATH, SEED_DIR, USER_KEY_PATH,
};

use crate::engine::{probe, Engine};
use crate::error::{Error, Result};
use crate::plan::{
    labels, ContainerSpec, NetworkSpec, OneShotNetwork, OneShotSpec, Phase2Spec, Uploads,
    VolumeSpec,
};
use crate::report::Reporter;

/// Work a rollback must undo beyond removing Docker objects (a join's new etcd member): the
/// operation that did it registers it with `Apply::undo_with`.
pub trait Undo: Send + Sync {
    /// What is undone, for the report (`etcd member 8e9e…`).
    fn describe(&self) -> String;
    fn undo<'a>(
        &'a self,
        engine: &'a Engine,
    ) -> Pin<Box<dyn Future<Output = Result<()>> + Send + 'a>>;
}

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
    undos: Mutex<Vec<Box<dyn Undo>>>,
}

impl<'a> Apply<'a> {
    pub fn new(engine: &'a Engine, reporter: &'a Reporter) -> Self {
        Apply {
            engine,
            reporter,
            ledger: Ledger::default(),
            undos: Mutex::new(Vec::new()),
        }
    }

    /// Registers work a rollback undoes first (newest first), before the Docker objects go.
    pub fn undo_with(&self, undo: impl Undo + 'static) {
        self.undos
            .lock()
            .expect("not poisoned")
            .push(Box::new(undo));
    }

    /// Runs `work` as `operation`: Ctrl-C/SIGTERM interrupt it, and on any failure what this
    /// run did is undone (`roll_back`).
    pub async fn run<T>(
        &self,
        operation: &'static str,
        work: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        match crate::ops::interruptible(work).await {
            Ok(v) => Ok(v),
            Err(cause) => Err(self.roll_back(operation, cause).await),
        }
    }

    /// After `operation` failed with `cause` (or was interrupted): says so, undoes what this
    /// run did (its `Undo`s, then the objects it created), and returns the error that reports
    /// both.
    pub async fn roll_back(&self, operation: &'static str, cause: Error) -> Error {
        if matches!(cause, Error::Interrupted) {
            self.reporter.warn(format!(
                "interrupted: removing what this {operation} created"
            ));
        } else {
            self.reporter
                .warn(format!("{operation} failed: removing what it created"));
        }
        let undos: Vec<Box<dyn Undo>> = self
            .undos
            .lock()
            .expect("not poisoned")
            .drain(..)
            .rev()
            .collect();
        let mut undo_failed = Vec::new();
        for u in &undos {
            if let Err(e) = u.undo(self.engine).await {
                undo_failed.push(format!("{} ({})", u.describe(), e.summary()));
            }
        }
        let (removed, mut left_behind) = self.ledger.rollback(self.engine).await;
        left_behind.extend(undo_failed);
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
        let one_shot = OneShotSpec {
            name: spec.name.clone(),
            image: spec.image.clone(),
            entrypoint: None,
            command: spec.command.clone(),
            user: Some("0:0".into()),
            labels: spec.labels.clone(),
            network: OneShotNetwork::None,
            mounts: spec.mounts.clone(),
            ports: Vec::new(),
        };
        let request = serde_json::to_vec(&spec.request).expect("serializable");
        let under_run = |path: &'static str| path.trim_start_matches("/run/");
        let mut files: Vec<(&str, &[u8], u32)> = vec![(under_run(REQUEST_PATH), &request, 0o600)];
        for (path, secret) in [
            (USER_KEY_PATH, &secrets.user_key),
            (ADMIN_PATH, &secrets.admin),
        ] {
            if let Some(value) = secret {
                files.push((under_run(path), value.expose().as_bytes(), 0o600));
            }
        }
        let seed_paths: Vec<String> = secrets
            .seed
            .iter()
            .map(|(rel, _)| format!("{}/{rel}", under_run(SEED_DIR)))
            .collect();
        for ((_, contents), path) in secrets.seed.iter().zip(&seed_paths) {
            files.push((path, contents.expose(), 0o600));
        }
        let item = Created::Container(spec.name.clone());
        self.ledger.record(item.clone());
        let out = self
            .engine
            .run_once(&one_shot, Some(&Uploads { dir: "/run", files }))
            .await?;
        self.ledger.forget(&item);
        let failed = |message: String| Error::Phase2 {
            step: spec.command.join(" "),
            message,
        };
        if out.exit_code != 0 {
            return Err(failed(format!(
                "exit code {}: {}",
                out.exit_code,
                out.stderr.trim()
            )));
        }
        CertResult::from_output(&out.stdout).map_err(failed)
    }

    /// A `dtr-phase2` left by an interrupted run is removed; one still running means another
    /// operation is under way.
    async fn clear_stale_phase2(&self, name: &str) -> Result<()> {
        let found = self
            .engine
            .containers_labelled(&[&format!("{}=true", labels::PHASE2)])
            .await?;
        for c in found {
            if c.name != name {
                continue;
            }
            if c.state == "running" {
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
    /// Every create runs to its end even when one fails: a request dropped half way could
    /// still make its container after the rollback looked for it.
    pub async fn create_containers(&self, specs: &[ContainerSpec]) -> Result<()> {
        for s in specs {
            self.ledger.record(Created::Container(s.name.clone()));
        }
        join_all(specs.iter().map(|s| self.engine.create_container(s)))
            .await
            .into_iter()
            .collect()
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
                return Err(Error::Bug {
                    what: format!(
                        "the plan's start dependencies form a cycle among {:?}",
                        rest.iter().map(|s| &s.name).collect::<Vec<_>>()
                    ),
                });
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
                step.fail(e.summary());
                Err(e)
            }
        }
    }
}
