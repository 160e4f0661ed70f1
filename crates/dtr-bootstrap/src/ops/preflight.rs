//! Preflight of a new replica (install, join, restore). The facts about the engine and the
//! target node are gathered once (`gather`, and the port probe once the other checks pass:
//! the only I/O here), then every check of `CHECKS` — a name, whether
//! `--ignore-preflight-errors` may ignore it, and a small pure function over the facts — runs
//! and all failures are reported together before anything is created. Resource shortfalls and
//! a manager node (through MKE) are warnings; the install continues.

use dtr_core::component::Component;
use dtr_core::options::{InstallOptions, ReplicaId};
use dtr_core::version;

use crate::engine::Engine;
use crate::engine::{EngineInfo, NetworkInfo, NodeInfo};
use crate::error::{DockerFailure, Error, PreflightFailure, Result};
use crate::plan::{
    labels, OneShotNetwork, OneShotSpec, PortSpec, TargetFacts, BRIDGE_NETWORK, OVERLAY_NETWORK,
};
use crate::report::Reporter;

/// The documented minimums of the original (DTR system requirements).
pub const MIN_CPUS: i64 = 2;
pub const MIN_MEMORY_BYTES: i64 = 8 * 1024 * 1024 * 1024;
pub const MIN_DISK_BYTES: u64 = 10 * 1024 * 1024 * 1024;

/// The oldest Docker Engine dtr drives (what it is tested on: Debian's 20.10).
pub const MIN_ENGINE: (u64, u64) = (20, 10);

/// One named check: what `--ignore-preflight-errors` and the summary line call it, whether
/// its failures may be ignored, what it checks (the docs' list), and the check itself.
pub struct Check {
    pub name: &'static str,
    /// May `--ignore-preflight-errors` turn its failures into warnings? The others stay
    /// failures: the operation would fail later (swarm, node, images, scheduling) or damage a
    /// cluster (existing-install, replica-id, networks).
    pub ignorable: bool,
    pub about: &'static str,
    run: fn(&Facts, &mut Findings),
}

/// Every check of a new replica's preflight, in the order they are reported
/// (docs/operations/install.md#preflight-checks lists the same).
pub const CHECKS: [Check; 10] = [
    Check {
        name: "swarm",
        ignorable: false,
        about: "the engine is an active swarm manager",
        run: swarm,
    },
    Check {
        name: "node",
        ignorable: false,
        about: "the target node exists, is ready, and is this engine's node (without MKE)",
        run: node,
    },
    Check {
        name: "engine-version",
        ignorable: true,
        about: "the node's Docker Engine is 20.10 or newer",
        run: engine_version,
    },
    Check {
        name: "existing-install",
        ignorable: false,
        about: "install and restore: no DTR replica is on this engine",
        run: existing_install,
    },
    Check {
        name: "replica-id",
        ignorable: false,
        about: "join: no replica of the new id already runs on this engine",
        run: replica_id,
    },
    Check {
        name: "networks",
        ignorable: false,
        about: "dtr-ol and dtr-br are absent or dtr's own, and each name is unique",
        run: networks,
    },
    Check {
        name: "images",
        ignorable: false,
        about: "the nine images of this version are on the engine",
        run: images,
    },
    Check {
        name: "ports",
        ignorable: true,
        about: "the two host ports differ and are free on the node",
        run: ports,
    },
    Check {
        name: "scheduling",
        ignorable: false,
        about: "through MKE: MKE places a container on the node",
        run: scheduling,
    },
    Check {
        name: "resources",
        ignorable: false,
        about: "CPUs, memory and disk meet the documented minimums (warnings only)",
        run: resources,
    },
];

/// The names of the checks `--ignore-preflight-errors` accepts.
pub fn ignorable_names() -> Vec<&'static str> {
    CHECKS
        .iter()
        .filter(|c| c.ignorable)
        .map(|c| c.name)
        .collect()
}

/// `--ignore-preflight-errors`: comma-separated names of ignorable checks.
pub fn ignorable(list: Option<&str>) -> Result<Vec<&'static str>> {
    let allowed = ignorable_names();
    let mut out = Vec::new();
    for name in list
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
    {
        match CHECKS.iter().find(|c| c.name == name) {
            Some(c) if c.ignorable => {
                if !out.contains(&c.name) {
                    out.push(c.name);
                }
            }
            found => {
                let reason = if found.is_some() {
                    format!(
                        "the {name} check cannot be ignored (only {} can)",
                        allowed.join(", ")
                    )
                } else {
                    format!(
                        "no such check; checks that can be ignored: {}",
                        allowed.join(", ")
                    )
                };
                return Err(Error::invalid("--ignore-preflight-errors", name, reason));
            }
        }
    }
    Ok(out)
}

/// What the preflight of a new replica checks against.
#[derive(Clone, Debug)]
pub struct PreflightRequest {
    pub replica_id: ReplicaId,
    /// `--ucp-node`; `None` = this engine's own node (through MKE: one is picked).
    pub node: Option<String>,
    pub http_port: u16,
    pub https_port: u16,
    /// `join`: a cluster must exist (and the new id must be unused); `install`: none may.
    pub joining: bool,
    /// `--ignore-preflight-errors`: these checks' failures are reported as warnings.
    pub ignore: Vec<&'static str>,
}

impl PreflightRequest {
    pub fn install(opts: &InstallOptions) -> PreflightRequest {
        PreflightRequest {
            replica_id: opts.replica_id.clone(),
            node: opts.node.clone(),
            http_port: opts.http_port,
            https_port: opts.https_port,
            joining: false,
            ignore: opts.ignore_checks.clone(),
        }
    }
}

/// Everything the checks look at, gathered once.
#[derive(Clone, Debug, Default)]
pub struct Facts {
    pub replica_id: Option<ReplicaId>,
    pub wanted_node: Option<String>,
    pub http_port: u16,
    pub https_port: u16,
    pub joining: bool,
    pub engine_host: String,
    pub via_mke: bool,
    pub engine: EngineInfo,
    /// The swarm's nodes; empty unless the engine is a swarm manager.
    pub nodes: Vec<NodeInfo>,
    /// Replica ids with DTR containers on the engine.
    pub replicas: Vec<String>,
    /// Those of `replicas` whose every component runs here.
    pub serving: Vec<String>,
    /// The networks named `dtr-ol` and `dtr-br`, by name.
    pub networks: Vec<(&'static str, Vec<NetworkInfo>)>,
    pub missing_images: Vec<String>,
    /// Host ports published by containers on the engine, and by which.
    pub published: Vec<(u16, String)>,
    /// What the throw-away container on the node found; run once the other checks pass.
    pub probe: Option<Probe>,
}

/// The port probe's outcome.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Probe {
    /// It ran with both ports published; the free bytes of Docker's data filesystem, if read.
    Ran { free_disk_bytes: Option<u64> },
    /// The node refused to publish a port.
    PortInUse(String),
    /// MKE refused to place it on the node.
    SchedulingRefused(String),
}

/// The node the replica goes to, and why when it was picked.
struct Choice<'a> {
    node: Option<&'a NodeInfo>,
    picked: Option<String>,
}

impl Facts {
    fn choice(&self) -> Choice<'_> {
        match &self.wanted_node {
            Some(w) => Choice {
                node: self.nodes.iter().find(|n| n.id == *w || n.hostname == *w),
                picked: None,
            },
            // Through MKE without --ucp-node: as the original, a node is chosen for the user
            None if self.via_mke => match pick_node(&self.nodes) {
                Some((n, why)) => Choice {
                    node: Some(n),
                    picked: Some(why),
                },
                None => Choice {
                    node: None,
                    picked: None,
                },
            },
            None => Choice {
                node: self.nodes.iter().find(|n| n.id == self.engine.node_id),
                picked: None,
            },
        }
    }

    /// The node's name as the plan uses it: the chosen node's hostname, else what was asked
    /// for, else this engine's name.
    pub fn node_name(&self) -> String {
        match self.choice().node {
            Some(n) => n.hostname.clone(),
            None => self
                .wanted_node
                .clone()
                .unwrap_or_else(|| self.engine.name.clone()),
        }
    }

    fn node_engine_version(&self) -> Option<String> {
        self.choice()
            .node
            .and_then(|n| n.engine_version.clone())
            .or_else(|| self.engine.server_version.clone())
    }

    fn cpus(&self) -> i64 {
        self.choice()
            .node
            .and_then(|n| n.cpus)
            .or(self.engine.cpus)
            .unwrap_or(0)
    }

    fn memory_bytes(&self) -> i64 {
        self.choice()
            .node
            .and_then(|n| n.memory_bytes)
            .or(self.engine.memory_bytes)
            .unwrap_or(0)
    }

    /// What the plan needs to know about the target.
    pub fn target(&self) -> TargetFacts {
        TargetFacts {
            node: self.node_name(),
            node_addr: self
                .choice()
                .node
                .and_then(|n| n.addr.clone())
                .or_else(|| self.engine.node_addr.clone()),
            mem_total_bytes: self.memory_bytes().max(0) as u64,
        }
    }

    fn swarm_usable(&self) -> bool {
        self.engine.swarm_active && self.engine.swarm_manager
    }
}

/// The outcome of the checks.
#[derive(Debug, Default)]
pub struct Findings {
    pub failures: Vec<PreflightFailure>,
    pub warnings: Vec<(&'static str, String)>,
    /// Informational lines (which node was picked and why).
    pub notes: Vec<String>,
    /// `--ignore-preflight-errors`: these checks' failures are recorded as warnings.
    ignore: Vec<&'static str>,
}

impl Findings {
    fn new(ignore: &[&'static str]) -> Findings {
        Findings {
            ignore: ignore.to_vec(),
            ..Default::default()
        }
    }

    fn fail(&mut self, check: &'static str, problem: impl Into<String>, fix: impl Into<String>) {
        if self.ignore.contains(&check) {
            let problem = problem.into();
            self.warn(
                check,
                format!("{problem} (ignored with --ignore-preflight-errors={check})"),
            );
            return;
        }
        self.failures.push(PreflightFailure {
            check,
            problem: problem.into(),
            fix: fix.into(),
        });
    }

    fn warn(&mut self, check: &'static str, problem: impl Into<String>) {
        self.warnings.push((check, problem.into()));
    }

    /// `swarm ok, node warn, ports FAIL, ...`: every check's outcome on one line.
    pub fn summary(&self) -> String {
        CHECKS
            .iter()
            .map(|c| {
                let outcome = if self.failures.iter().any(|f| f.check == c.name) {
                    "FAIL"
                } else if self.warnings.iter().any(|(w, _)| *w == c.name) {
                    "warn"
                } else {
                    "ok"
                };
                format!("{} {outcome}", c.name)
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Runs every check over `facts`.
pub fn check(facts: &Facts, ignore: &[&'static str]) -> Findings {
    let mut f = Findings::new(ignore);
    for c in &CHECKS {
        (c.run)(facts, &mut f);
    }
    f
}

const PORTS_FIX: &str =
    "free the port or choose another with --replica-http-port/--replica-https-port";

fn swarm(facts: &Facts, f: &mut Findings) {
    if !facts.engine.swarm_active {
        f.fail("swarm", "this Docker engine is not part of a swarm (the dtr-ol overlay network needs swarm mode)", "run `docker swarm init` (or join it to your swarm), then retry");
    } else if !facts.engine.swarm_manager {
        f.fail(
            "swarm",
            "this engine is a swarm worker: overlay networks and node checks need a manager",
            "point DOCKER_HOST at a manager of the swarm, or install through MKE/UCP",
        );
    }
}

fn node(facts: &Facts, f: &mut Findings) {
    if !facts.swarm_usable() {
        return;
    }
    let choice = facts.choice();
    let node_name = facts.node_name();
    if let (Some(n), Some(why)) = (choice.node, &choice.picked) {
        f.notes.push(format!(
            "Picking node '{}' ({why}; --ucp-node chooses another)",
            n.hostname
        ));
    }
    let names: Vec<&str> = facts.nodes.iter().map(|n| n.hostname.as_str()).collect();
    let Some(n) = choice.node else {
        if facts.wanted_node.is_none() && facts.via_mke {
            f.fail(
                "node",
                format!("MKE has no ready node (nodes: {})", names.join(", ")),
                "bring a node back (`docker node ls`), then retry",
            );
        } else {
            f.fail(
                "node",
                format!(
                    "node {} is not a node of this swarm (nodes: {})",
                    facts.wanted_node.as_deref().unwrap_or("(this engine)"),
                    names.join(", ")
                ),
                "give --ucp-node with a hostname from `docker node ls`",
            );
        }
        return;
    };
    if n.state != "ready" {
        f.fail(
            "node",
            format!("node {node_name} is {}, not ready", n.state),
            "bring the node back (`docker node ls`) or choose another with --ucp-node",
        );
    }
    if facts.via_mke && n.manager {
        f.warn(
            "node",
            format!("node {node_name} is an MKE manager: MKE's documentation recommends worker nodes for DTR, because the managers run MKE's own control plane (its etcd and databases) and DTR's etcd and database compete with it for disk and memory, and losing that node then costs both a manager and a DTR replica; the install continues on it"),
        );
    }
    if !facts.via_mke && n.id != facts.engine.node_id {
        f.fail(
            "node",
            format!("node {node_name} is not the node of the engine at {}: without MKE/UCP, containers can only be placed on the engine dtr talks to", facts.engine_host),
            format!("run dtr against {node_name}'s own engine (DOCKER_HOST), or omit --ucp-node, or go through MKE with --ucp-url"),
        );
    }
}

/// `major.minor` of an engine version such as `20.10.24+dfsg1` or `23.0.1`.
fn parse_engine_version(v: &str) -> Option<(u64, u64)> {
    let mut parts = v.split(['.', '-', '+']);
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

fn engine_version(facts: &Facts, f: &mut Findings) {
    let node_name = facts.node_name();
    let version = facts.node_engine_version();
    match version.as_deref().map(parse_engine_version) {
        Some(Some(v)) if v < MIN_ENGINE => f.fail(
            "engine-version",
            format!(
                "node {node_name} runs Docker Engine {}; dtr needs {}.{} or newer",
                version.as_deref().unwrap_or_default(),
                MIN_ENGINE.0,
                MIN_ENGINE.1
            ),
            "upgrade the node's Docker Engine (or MKE), then retry",
        ),
        Some(None) | None => f.warn(
            "engine-version",
            format!(
                "the Docker Engine version of node {node_name} is not known ({}); dtr is tested with {}.{} and newer",
                version.as_deref().unwrap_or("not reported"),
                MIN_ENGINE.0,
                MIN_ENGINE.1
            ),
        ),
        Some(Some(_)) => {}
    }
}

fn existing_install(facts: &Facts, f: &mut Findings) {
    if !facts.joining && !facts.replicas.is_empty() {
        f.fail(
            "existing-install",
            format!("a DTR is already installed on this engine (replica {}); one engine holds one DTR cluster", facts.replicas.join(", ")),
            "use `dtr join` to add a replica or `dtr reconfigure` to change it; `dtr destroy --replica-id <id>` removes one",
        );
    }
}

fn replica_id(facts: &Facts, f: &mut Findings) {
    let Some(id) = &facts.replica_id else {
        return;
    };
    // what an interrupted join of this id left is cleared by the join itself, once it has
    // read the cluster; a replica that serves here is another one's
    if facts.joining && facts.serving.iter().any(|r| r == id.as_str()) {
        f.fail(
            "replica-id",
            format!("replica {id} already runs on this engine"),
            format!("choose another --replica-id, or remove it first with `dtr remove --replica-ids {id}`"),
        );
    }
}

fn networks(facts: &Facts, f: &mut Findings) {
    for (name, found) in &facts.networks {
        // through MKE every node has its own bridge of that name, listed together
        let one_per_node = facts.via_mke && found.iter().all(|n| n.local);
        if found.len() > 1 && !one_per_node {
            let ids: Vec<&str> = found.iter().map(|n| &n.id[..12.min(n.id.len())]).collect();
            f.fail(
                "networks",
                format!("{} networks are named {name} (ids {}); containers cannot be attached by that name", found.len(), ids.join(", ")),
                format!("remove the ones no container uses (`docker network inspect {name}`, then `docker network rm <id>`)"),
            );
        } else if found.iter().any(|n| !n.managed) {
            f.fail(
                "networks",
                format!("a network named {name} exists and was not created by dtr"),
                format!("remove it (`docker network rm {name}`) or rename it"),
            );
        }
    }
}

fn images(facts: &Facts, f: &mut Findings) {
    if !facts.missing_images.is_empty() {
        f.fail(
            "images",
            format!("missing images: {}", facts.missing_images.join(", ")),
            "on a node without network, load the offline bundle of this version: `dtr images load --input <bundle>` (made with `dtr images save` on a connected machine); or build them with `scripts/build-images.sh` in the dtr source tree",
        );
    }
}

fn ports(facts: &Facts, f: &mut Findings) {
    if facts.http_port == facts.https_port {
        f.fail(
            "ports",
            format!(
                "--replica-http-port and --replica-https-port are both {}",
                facts.http_port
            ),
            "give two different ports",
        );
    }
    for (public, name) in &facts.published {
        if *public == facts.http_port || *public == facts.https_port {
            f.fail(
                "ports",
                format!("host port {public} is published by container {name}"),
                PORTS_FIX,
            );
        }
    }
    if let Some(Probe::PortInUse(msg)) = &facts.probe {
        f.fail("ports", msg.clone(), PORTS_FIX);
    }
}

fn scheduling(facts: &Facts, f: &mut Findings) {
    if let Some(Probe::SchedulingRefused(msg)) = &facts.probe {
        f.fail(
            "scheduling",
            format!(
                "MKE refused to place a container on node {}: {msg}",
                facts.node_name()
            ),
            crate::engine::mke::SCHEDULING_FIX,
        );
    }
}

fn resources(facts: &Facts, f: &mut Findings) {
    let cpus = facts.cpus();
    if cpus < MIN_CPUS {
        f.warn(
            "resources",
            format!("the node has {cpus} CPUs; DTR's documented minimum is {MIN_CPUS}"),
        );
    }
    let mem = facts.memory_bytes();
    if mem < MIN_MEMORY_BYTES {
        f.warn(
            "resources",
            format!(
                "the node has {:.1} GiB of memory; DTR's documented minimum is 8 GiB",
                mem as f64 / 1073741824.0
            ),
        );
    }
    if let Some(Probe::Ran {
        free_disk_bytes: Some(free),
    }) = &facts.probe
    {
        if *free < MIN_DISK_BYTES {
            f.warn(
                "resources",
                format!(
                    "{:.1} GiB free for Docker's data; DTR's documented minimum is 10 GiB",
                    *free as f64 / 1073741824.0
                ),
            );
        }
    }
}

/// The node a replica goes to through MKE when `--ucp-node` is not given (the original chose
/// one for the user): a ready worker, else a ready manager (warned about later); among several,
/// the first by hostname, so that a re-run chooses the same. With the reason, for the log.
pub fn pick_node(nodes: &[NodeInfo]) -> Option<(&NodeInfo, String)> {
    let mut ready: Vec<&NodeInfo> = nodes.iter().filter(|n| n.state == "ready").collect();
    ready.sort_by(|a, b| a.hostname.cmp(&b.hostname));
    if ready.len() == 1 {
        return Some((ready[0], "the only ready node".into()));
    }
    let workers: Vec<_> = ready.iter().filter(|n| !n.manager).collect();
    match workers.first() {
        Some(w) => Some((w, format!("the first of {} ready workers", workers.len()))),
        None => ready.first().map(|m| {
            (
                *m,
                format!(
                    "no ready worker; the first of {} ready managers",
                    ready.len()
                ),
            )
        }),
    }
}

/// Everything the checks need, read from the engine (the probe comes later).
pub async fn gather(engine: &Engine, request: &PreflightRequest) -> Result<Facts> {
    let info = engine.describe().await?;
    let nodes = if info.swarm_active && info.swarm_manager {
        engine.nodes().await?
    } else {
        Vec::new()
    };
    let ours = engine
        .containers_labelled(&[&labels::managed_filter()])
        .await?;
    let mut replicas: Vec<String> = ours
        .iter()
        .filter_map(|c| c.labels.get(labels::REPLICA).cloned())
        .collect();
    replicas.sort();
    replicas.dedup();
    // every component's container running: a replica, not what an interrupted join left
    let serving = replicas
        .iter()
        .filter(|r| {
            let mine = ours
                .iter()
                .filter(|c| c.labels.get(labels::REPLICA) == Some(*r));
            mine.clone().count() >= Component::ALL.len()
                && mine.clone().all(|c| c.state == "running")
        })
        .cloned()
        .collect();
    let mut networks = Vec::new();
    for name in [OVERLAY_NETWORK, BRIDGE_NETWORK] {
        networks.push((name, engine.networks_named(name).await?));
    }
    let mut missing_images = Vec::new();
    for image in version::all_images() {
        if !engine.image_exists(&image).await? {
            missing_images.push(image);
        }
    }
    Ok(Facts {
        replica_id: Some(request.replica_id.clone()),
        wanted_node: request.node.clone(),
        http_port: request.http_port,
        https_port: request.https_port,
        joining: request.joining,
        engine_host: engine.host.clone(),
        via_mke: engine.via_mke(),
        engine: info,
        nodes,
        replicas,
        serving,
        networks,
        missing_images,
        published: engine.published_ports().await?,
        probe: None,
    })
}

/// The short-lived container that tries the replica's ports on the node.
pub fn probe_name(replica: &ReplicaId) -> String {
    format!("dtr-preflight-{replica}")
}

/// A throw-away container of the bootstrapper image on the node binds the ports for real
/// (catches non-Docker listeners), reads the free disk space, and — through MKE — proves that
/// MKE schedules there.
pub fn probe_spec(replica: &ReplicaId, http: u16, https: u16) -> OneShotSpec {
    OneShotSpec {
        name: probe_name(replica),
        image: version::bootstrapper_image(),
        entrypoint: Some(vec!["df".into(), "-Pk".into(), "/".into()]),
        command: Vec::new(),
        user: None,
        labels: labels::helper(replica, version::VERSION),
        network: OneShotNetwork::Default,
        mounts: Vec::new(),
        ports: vec![
            PortSpec {
                host: http,
                container: 1080,
            },
            PortSpec {
                host: https,
                container: 1443,
            },
        ],
    }
}

/// Runs the probe; a taken port or MKE's refusal is a fact for the checks, not an error.
async fn probe(engine: &Engine, request: &PreflightRequest) -> Result<Probe> {
    let spec = probe_spec(&request.replica_id, request.http_port, request.https_port);
    match engine.run_once(&spec, None).await {
        Ok(out) => Ok(Probe::Ran {
            free_disk_bytes: out
                .stdout
                .lines()
                .nth(1)
                .and_then(|l| l.split_whitespace().nth(3))
                .and_then(|kb| kb.parse::<u64>().ok())
                .map(|kb| kb * 1024),
        }),
        Err(e) if e.is_docker(DockerFailure::SchedulingRefused) => Ok(Probe::SchedulingRefused(
            crate::engine::mke::SCHEDULING_REFUSAL.into(),
        )),
        Err(e) if e.is_docker(DockerFailure::PortInUse) => Ok(Probe::PortInUse(format!(
            "host port {} or {} is in use on the node: {}",
            request.http_port,
            request.https_port,
            e.summary()
        ))),
        Err(e) => Err(e),
    }
}

/// Gathers the facts, checks them, runs the probe when nothing failed and checks again, then
/// reports: notes and warnings, one summary line, and all failures as one error. Returns what
/// the plan needs to know about the target.
pub async fn run(
    engine: &Engine,
    request: &PreflightRequest,
    reporter: &Reporter,
) -> Result<TargetFacts> {
    let mut facts = gather(engine, request).await?;
    let mut findings = check(&facts, &request.ignore);
    if findings.failures.is_empty() {
        let placed = engine.placed_on(&facts.node_name());
        facts.probe = Some(probe(&placed, request).await?);
        findings = check(&facts, &request.ignore);
    }
    for note in &findings.notes {
        reporter.info(note);
    }
    for (_, w) in &findings.warnings {
        reporter.warn(w);
    }
    reporter.info(format!("preflight: {}", findings.summary()));
    if !findings.failures.is_empty() {
        return Err(Error::Preflight {
            failures: findings.failures,
        });
    }
    Ok(facts.target())
}

/// `run`, stopped by Ctrl-C/SIGTERM like the rest of an operation; the port probe, the only
/// object preflight makes, is removed whatever the outcome was.
pub async fn run_interruptible(
    engine: &Engine,
    request: &PreflightRequest,
    reporter: &Reporter,
) -> Result<TargetFacts> {
    let result = crate::ops::interruptible(run(engine, request, reporter)).await;
    if result.is_err() {
        let _ = engine
            .remove_container(&probe_name(&request.replica_id))
            .await;
    }
    result
}

#[cfg(test)]
mod tests;
