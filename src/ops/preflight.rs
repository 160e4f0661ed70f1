//! Preflight: every check runs and all failures are reported together before anything is
//! created, and one line says how each named check (`CHECKS`) came out. Resource shortfalls
//! and a manager node (through MKE) are warnings; the install continues.

use crate::engine::Engine;
use crate::error::{Error, PreflightFailure, Result};
use crate::options::{InstallOptions, ReplicaId};
use crate::plan::{labels, TargetFacts, BRIDGE_NETWORK, OVERLAY_NETWORK};
use crate::report::Reporter;
use crate::version;

/// The documented minimums of the original (DTR system requirements).
pub const MIN_CPUS: i64 = 2;
pub const MIN_MEMORY_BYTES: i64 = 8 * 1024 * 1024 * 1024;
pub const MIN_DISK_BYTES: u64 = 10 * 1024 * 1024 * 1024;

/// Every named check of a new replica's preflight, in the order they are reported
/// (docs/operations/install.md#preflight-checks).
pub const CHECKS: [&str; 10] = [
    "swarm",
    "node",
    "engine-version",
    "existing-install",
    "replica-id",
    "networks",
    "images",
    "ports",
    "scheduling",
    "resources",
];

/// The checks `--ignore-preflight-errors` may turn into warnings. The others stay failures: the
/// operation would fail later (swarm, node, images, scheduling) or damage a cluster
/// (existing-install, replica-id, networks).
pub const IGNORABLE: [&str; 2] = ["engine-version", "ports"];

/// `--ignore-preflight-errors`: comma-separated names out of `IGNORABLE`.
pub fn ignorable(list: Option<&str>) -> Result<Vec<&'static str>> {
    let mut out = Vec::new();
    for name in list
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
    {
        match IGNORABLE.iter().find(|c| **c == name) {
            Some(c) if !out.contains(c) => out.push(*c),
            Some(_) => {}
            None => {
                return Err(Error::InvalidValue {
                    flag: "--ignore-preflight-errors",
                    value: name.to_string(),
                    reason: if CHECKS.contains(&name) {
                        format!(
                            "the {name} check cannot be ignored (only {} can)",
                            IGNORABLE.join(", ")
                        )
                    } else {
                        format!(
                            "no such check; checks that can be ignored: {}",
                            IGNORABLE.join(", ")
                        )
                    },
                })
            }
        }
    }
    Ok(out)
}

fn node_hostname(n: &crate::engine::Node) -> &str {
    n.description
        .as_ref()
        .and_then(|d| d.hostname.as_deref())
        .unwrap_or_default()
}

/// `ready`, `down`, ... as `docker node ls` shows it (empty when not reported).
fn node_state(n: &crate::engine::Node) -> String {
    n.status
        .as_ref()
        .and_then(|s| s.state.map(|x| x.to_string()))
        .unwrap_or_default()
}

fn is_manager(n: &crate::engine::Node) -> bool {
    n.spec
        .as_ref()
        .and_then(|s| s.role.map(|r| r.to_string()))
        .as_deref()
        == Some("manager")
}

/// The node a replica goes to through MKE when `--ucp-node` is not given (the original chose
/// one for the user): a ready worker, else a ready manager (warned about later); among several,
/// the first by hostname, so that a re-run chooses the same. With the reason, for the log.
pub fn pick_node(nodes: &[crate::engine::Node]) -> Option<(&crate::engine::Node, String)> {
    let mut ready: Vec<&crate::engine::Node> =
        nodes.iter().filter(|n| node_state(n) == "ready").collect();
    ready.sort_by(|a, b| node_hostname(a).cmp(node_hostname(b)));
    if ready.len() == 1 {
        return Some((ready[0], "the only ready node".into()));
    }
    let workers: Vec<_> = ready.iter().filter(|n| !is_manager(n)).collect();
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

/// The oldest Docker Engine dtr drives (what it is tested on: Debian's 20.10).
pub const MIN_ENGINE: (u64, u64) = (20, 10);

/// `major.minor` of an engine version such as `20.10.24+dfsg1` or `23.0.1`.
fn engine_version(v: &str) -> Option<(u64, u64)> {
    let mut parts = v.split(['.', '-', '+']);
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

struct Findings {
    failures: Vec<PreflightFailure>,
    warnings: Vec<(&'static str, String)>,
    /// `--ignore-preflight-errors`: these checks' failures are recorded as warnings.
    ignore: Vec<&'static str>,
}

impl Findings {
    fn new(ignore: &[&'static str]) -> Findings {
        Findings {
            failures: Vec::new(),
            warnings: Vec::new(),
            ignore: ignore.to_vec(),
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
    fn summary(&self) -> String {
        CHECKS
            .iter()
            .map(|c| {
                let outcome = if self.failures.iter().any(|f| f.check == *c) {
                    "FAIL"
                } else if self.warnings.iter().any(|(w, _)| w == c) {
                    "warn"
                } else {
                    "ok"
                };
                format!("{c} {outcome}")
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// What the preflight of a new replica checks against.
pub struct PreflightRequest {
    pub replica_id: ReplicaId,
    /// `--ucp-node`; `None` = this engine's own node.
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

/// `replica`, stopped by Ctrl-C/SIGTERM like the rest of an operation; the port probe, the only
/// object preflight makes, is removed whatever the outcome was.
pub async fn replica_interruptible(
    engine: &Engine,
    opts: &PreflightRequest,
    reporter: &Reporter,
) -> Result<TargetFacts> {
    let result = crate::ops::interruptible(replica(engine, opts, reporter)).await;
    if result.is_err() {
        let _ = engine.remove_container(&probe_name(&opts.replica_id)).await;
    }
    result
}

/// Runs the preflight of a new replica (install or join); returns what was learnt about the
/// target for planning.
pub async fn replica(
    engine: &Engine,
    opts: &PreflightRequest,
    reporter: &Reporter,
) -> Result<TargetFacts> {
    let mut f = Findings::new(&opts.ignore);
    let info = engine.info().await?;

    // swarm and node
    let swarm = info.swarm.clone().unwrap_or_default();
    let active = swarm.local_node_state.map(|s| s.to_string()) == Some("active".into());
    let own_node_id = swarm.node_id.clone().unwrap_or_default();
    let mut node_name = opts
        .node
        .clone()
        .unwrap_or_else(|| info.name.clone().unwrap_or_default());
    let mut node_addr = swarm.node_addr.clone().filter(|a| !a.is_empty());
    let mut node_resources = None;
    let mut node_engine = info.server_version.clone();
    let via_mke = engine.via_mke();
    if !active {
        f.fail("swarm", "this Docker engine is not part of a swarm (the dtr-ol overlay network needs swarm mode)", "run `docker swarm init` (or join it to your swarm), then retry");
    } else if swarm.control_available != Some(true) {
        f.fail(
            "swarm",
            "this engine is a swarm worker: overlay networks and node checks need a manager",
            "point DOCKER_HOST at a manager of the swarm, or install through MKE/UCP",
        );
    } else {
        let nodes = engine.nodes().await?;
        let hostname = |n: &crate::engine::Node| node_hostname(n).to_string();
        let wanted = opts.node.clone();
        let found = match &wanted {
            Some(w) => nodes
                .iter()
                .find(|n| n.id.as_deref() == Some(w.as_str()) || hostname(n) == *w),
            // Through MKE without --ucp-node: as the original, a node is chosen for the user
            None if via_mke => {
                let picked = pick_node(&nodes);
                if let Some((n, why)) = &picked {
                    reporter.info(format!(
                        "Picking node '{}' ({why}; --ucp-node chooses another)",
                        hostname(n)
                    ));
                }
                picked.map(|(n, _)| n)
            }
            None => nodes
                .iter()
                .find(|n| n.id.as_deref() == Some(own_node_id.as_str())),
        };
        let names: Vec<String> = nodes.iter().map(hostname).collect();
        match found {
            None if wanted.is_none() && via_mke => f.fail(
                "node",
                format!("MKE has no ready node (nodes: {})", names.join(", ")),
                "bring a node back (`docker node ls`), then retry",
            ),
            None => f.fail(
                "node",
                format!(
                    "node {} is not a node of this swarm (nodes: {})",
                    wanted.as_deref().unwrap_or("(this engine)"),
                    names.join(", ")
                ),
                "give --ucp-node with a hostname from `docker node ls`",
            ),
            Some(n) => {
                node_name = hostname(n);
                if let Some(addr) = n
                    .status
                    .as_ref()
                    .and_then(|s| s.addr.clone())
                    .filter(|a| !a.is_empty() && a != "0.0.0.0")
                {
                    node_addr = Some(addr);
                }
                let description = n.description.clone().unwrap_or_default();
                node_resources = description.resources.clone();
                if let Some(v) = description.engine.and_then(|e| e.engine_version) {
                    node_engine = Some(v);
                }
                let state = node_state(n);
                if state != "ready" {
                    f.fail(
                        "node",
                        format!("node {node_name} is {state}, not ready"),
                        "bring the node back (`docker node ls`) or choose another with --ucp-node",
                    );
                }
                if via_mke && is_manager(n) {
                    f.warn(
                        "node",
                        format!("node {node_name} is an MKE manager: MKE's documentation recommends worker nodes for DTR, because the managers run MKE's own control plane (its etcd and databases) and DTR's etcd and database compete with it for disk and memory, and losing that node then costs both a manager and a DTR replica; the install continues on it"),
                    );
                }
                if !via_mke && n.id.as_deref() != Some(own_node_id.as_str()) {
                    f.fail(
                        "node",
                        format!("node {node_name} is not the node of the engine at {}: without MKE/UCP, containers can only be placed on the engine dtr talks to", engine.host),
                        format!("run dtr against {node_name}'s own engine (DOCKER_HOST), or omit --ucp-node, or go through MKE with --ucp-url"),
                    );
                }
            }
        }
    }

    // engine version of the node
    match node_engine.as_deref().map(engine_version) {
        Some(Some(v)) if v < MIN_ENGINE => f.fail(
            "engine-version",
            format!(
                "node {node_name} runs Docker Engine {}; dtr needs {}.{} or newer",
                node_engine.as_deref().unwrap_or_default(),
                MIN_ENGINE.0,
                MIN_ENGINE.1
            ),
            "upgrade the node's Docker Engine (or MKE), then retry",
        ),
        Some(None) | None => f.warn(
            "engine-version",
            format!(
                "the Docker Engine version of node {node_name} is not known ({}); dtr is tested with {}.{} and newer",
                node_engine.as_deref().unwrap_or("not reported"),
                MIN_ENGINE.0,
                MIN_ENGINE.1
            ),
        ),
        Some(Some(_)) => {}
    }

    // an existing DTR: refuse
    let ours = engine
        .containers_labelled(&[&labels::managed_filter()])
        .await?;
    let mut replicas: Vec<String> = ours
        .iter()
        .filter_map(|c| {
            c.labels
                .as_ref()
                .and_then(|l| l.get(labels::REPLICA).cloned())
        })
        .collect();
    replicas.sort();
    replicas.dedup();
    if opts.joining {
        if replicas.contains(&opts.replica_id.to_string()) {
            f.fail(
                "replica-id",
                format!("replica {} already has containers on this engine", opts.replica_id),
                format!("choose another --replica-id, or if a join of it was interrupted, run `dtr remove --replica-ids {}` (or `dtr join` again with the same id)", opts.replica_id),
            );
        }
    } else if !replicas.is_empty() {
        f.fail(
            "existing-install",
            format!("a DTR is already installed on this engine (replica {}); one engine holds one DTR cluster", replicas.join(", ")),
            "use `dtr join` to add a replica or `dtr reconfigure` to change it; `dtr destroy --replica-id <id>` removes one",
        );
    }
    for name in [OVERLAY_NETWORK, BRIDGE_NETWORK] {
        let found = engine.networks_named(name).await?;
        let is_ours = |n: &bollard::models::Network| {
            n.labels
                .as_ref()
                .and_then(|l| l.get(labels::MANAGED))
                .map(String::as_str)
                == Some("true")
        };
        if found.len() > 1 {
            let ids: Vec<&str> = found
                .iter()
                .filter_map(|n| n.id.as_deref())
                .map(|id| &id[..12.min(id.len())])
                .collect();
            f.fail(
                "networks",
                format!("{} networks are named {name} (ids {}); containers cannot be attached by that name", found.len(), ids.join(", ")),
                format!("remove the ones no container uses (`docker network inspect {name}`, then `docker network rm <id>`)"),
            );
        } else if found.first().is_some_and(|n| !is_ours(n)) {
            f.fail(
                "networks",
                format!("a network named {name} exists and was not created by dtr"),
                format!("remove it (`docker network rm {name}`) or rename it"),
            );
        }
    }

    // images
    let mut missing = Vec::new();
    for image in version::all_images() {
        if !engine.image_exists(&image).await? {
            missing.push(image);
        }
    }
    if !missing.is_empty() {
        f.fail(
            "images",
            format!("missing images: {}", missing.join(", ")),
            "on a node without network, load the offline bundle of this version: `dtr images load --input <bundle>` (made with `dtr images save` on a connected machine); or build them with `scripts/build-images.sh` in the dtr source tree",
        );
    }

    // ports
    if opts.http_port == opts.https_port {
        f.fail(
            "ports",
            format!(
                "--replica-http-port and --replica-https-port are both {}",
                opts.http_port
            ),
            "give two different ports",
        );
    }
    let containers = engine.containers_labelled(&[]).await?;
    for c in &containers {
        for p in c.ports.iter().flatten() {
            if let Some(public) = p.public_port {
                if public == opts.http_port || public == opts.https_port {
                    let name = c
                        .names
                        .iter()
                        .flatten()
                        .next()
                        .map(|n| n.trim_start_matches('/').to_string())
                        .unwrap_or_default();
                    f.fail("ports", format!("host port {public} is published by container {name}"), "free the port or choose another with --replica-http-port/--replica-https-port".to_string());
                }
            }
        }
    }

    // resources of the node (the engine's own figures on a plain engine)
    let cpus = node_resources
        .as_ref()
        .and_then(|r| r.nano_cpus)
        .map(|n| n / 1_000_000_000)
        .or(info.ncpu)
        .unwrap_or(0);
    let mem = node_resources
        .as_ref()
        .and_then(|r| r.memory_bytes)
        .or(info.mem_total)
        .unwrap_or(0);
    if cpus < MIN_CPUS {
        f.warn(
            "resources",
            format!("the node has {cpus} CPUs; DTR's documented minimum is {MIN_CPUS}"),
        );
    }
    if mem < MIN_MEMORY_BYTES {
        f.warn(
            "resources",
            format!(
                "the node has {:.1} GiB of memory; DTR's documented minimum is 8 GiB",
                mem as f64 / 1073741824.0
            ),
        );
    }

    // a throw-away container on the node binds the ports for real (catches non-Docker
    // listeners), reads the free disk space, and — through MKE — proves MKE schedules there
    if f.failures.is_empty() {
        let placed = engine.placed_on(&node_name);
        match probe_node(&placed, &opts.replica_id, opts.http_port, opts.https_port).await {
            Ok(Some(free)) if free < MIN_DISK_BYTES => f.warn(
                "resources",
                format!(
                    "{:.1} GiB free for Docker's data; DTR's documented minimum is 10 GiB",
                    free as f64 / 1073741824.0
                ),
            ),
            Ok(_) => {}
            Err(ProbeError::Ports(msg)) => f.fail(
                "ports",
                msg,
                "free the port or choose another with --replica-http-port/--replica-https-port",
            ),
            Err(ProbeError::Scheduling(msg)) => f.fail(
                "scheduling",
                format!("MKE refused to place a container on node {node_name}: {msg}"),
                crate::engine::mke::SCHEDULING_FIX,
            ),
            Err(ProbeError::Other(e)) => return Err(e),
        }
    }

    for (_, w) in &f.warnings {
        reporter.warn(w);
    }
    reporter.info(format!("preflight: {}", f.summary()));
    if !f.failures.is_empty() {
        return Err(Error::Preflight {
            failures: f.failures,
        });
    }
    Ok(TargetFacts {
        node: node_name,
        node_addr,
        mem_total_bytes: mem.max(0) as u64,
    })
}

enum ProbeError {
    Ports(String),
    Scheduling(String),
    Other(Error),
}

/// The short-lived container that tries the replica's ports on the node.
pub fn probe_name(replica: &ReplicaId) -> String {
    format!("dtr-preflight-{replica}")
}

/// Runs the bootstrapper image once with the replica's ports published. Returns the free bytes
/// of the engine's data filesystem, if it could be read.
async fn probe_node(
    engine: &Engine,
    replica: &ReplicaId,
    http: u16,
    https: u16,
) -> std::result::Result<Option<u64>, ProbeError> {
    use bollard::models::{ContainerCreateBody, HostConfig, PortBinding};
    let name = probe_name(replica);
    let l = labels::helper(replica, version::VERSION);
    let bindings = [(http, 1080u16), (https, 1443u16)]
        .into_iter()
        .map(|(h, c)| {
            (
                format!("{c}/tcp"),
                Some(vec![PortBinding {
                    host_ip: None,
                    host_port: Some(h.to_string()),
                }]),
            )
        })
        .collect();
    let body = ContainerCreateBody {
        image: Some(version::bootstrapper_image()),
        entrypoint: Some(vec!["df".into(), "-Pk".into(), "/".into()]),
        labels: Some(l.into_iter().collect()),
        exposed_ports: Some(vec!["1080/tcp".into(), "1443/tcp".into()]),
        host_config: Some(HostConfig {
            port_bindings: Some(bindings),
            ..Default::default()
        }),
        ..Default::default()
    };
    let _ = engine.remove_container(&name).await;
    if let Err(e) = engine.create_raw(&name, body).await {
        let text = crate::report::render(&e);
        if text.contains(crate::engine::mke::SCHEDULING_REFUSAL) {
            return Err(ProbeError::Scheduling(
                crate::engine::mke::SCHEDULING_REFUSAL.into(),
            ));
        }
        return Err(ProbeError::Other(e));
    }
    let result = async {
        if let Err(e) = engine.start(&name).await {
            let text = crate::report::render(&e);
            if text.contains("address already in use") || text.contains("port is already allocated")
            {
                return Err(ProbeError::Ports(format!(
                    "host port {http} or {https} is in use on the node: {}",
                    text.lines().next().unwrap_or("")
                )));
            }
            return Err(ProbeError::Other(e));
        }
        engine.wait_exit(&name).await.map_err(ProbeError::Other)?;
        let (out, _) = engine.output(&name).await;
        Ok(out
            .lines()
            .nth(1)
            .and_then(|l| l.split_whitespace().nth(3))
            .and_then(|kb| kb.parse::<u64>().ok())
            .map(|kb| kb * 1024))
    }
    .await;
    let _ = engine.remove_container(&name).await;
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_versions() {
        assert_eq!(engine_version("20.10.24+dfsg1"), Some((20, 10)));
        assert_eq!(engine_version("28.2.2"), Some((28, 2)));
        assert_eq!(engine_version("ucp/3.8.1"), None);
        assert!(engine_version("19.03.15").unwrap() < MIN_ENGINE);
        assert!(engine_version("23.0.1").unwrap() >= MIN_ENGINE);
    }

    #[test]
    fn only_the_ignorable_checks_can_be_ignored() {
        assert_eq!(
            ignorable(Some("ports, engine-version,ports")).unwrap(),
            vec!["ports", "engine-version"]
        );
        assert!(ignorable(None).unwrap().is_empty());
        for bad in ["existing-install", "swarm", "no-such-check"] {
            match ignorable(Some(bad)) {
                Err(Error::InvalidValue { flag, value, .. }) => {
                    assert_eq!(flag, "--ignore-preflight-errors");
                    assert_eq!(value, bad);
                }
                other => panic!("{bad}: {:?}", other.map(|_| ())),
            }
        }
    }

    fn node(name: &str, role: &str, state: &str) -> crate::engine::Node {
        serde_json::from_value(serde_json::json!({
            "ID": format!("id-{name}"),
            "Spec": {"Role": role},
            "Description": {"Hostname": name},
            "Status": {"State": state},
        }))
        .unwrap()
    }

    #[test]
    fn without_ucp_node_a_ready_worker_is_picked_first() {
        let picked = |nodes: &[crate::engine::Node]| {
            pick_node(nodes).map(|(n, why)| (node_hostname(n).to_string(), why))
        };
        // the only ready node, even a manager
        let one = [node("m1", "manager", "ready"), node("w1", "worker", "down")];
        assert_eq!(picked(&one).unwrap().0, "m1");
        // workers before managers, by hostname
        let many = [
            node("m1", "manager", "ready"),
            node("w2", "worker", "ready"),
            node("w1", "worker", "ready"),
        ];
        let (name, why) = picked(&many).unwrap();
        assert_eq!(name, "w1");
        assert!(why.contains("2 ready workers"), "{why}");
        // no worker: the first manager
        let managers = [
            node("m2", "manager", "ready"),
            node("m1", "manager", "ready"),
        ];
        assert_eq!(picked(&managers).unwrap().0, "m1");
        // nothing ready
        assert!(picked(&[node("w1", "worker", "down")]).is_none());
    }

    #[test]
    fn the_summary_names_every_check() {
        let mut f = Findings::new(&["engine-version"]);
        f.fail("ports", "port 443 in use", "free it");
        f.warn("resources", "2 CPUs");
        let s = f.summary();
        for c in CHECKS {
            assert!(s.contains(c), "{c} missing from {s}");
        }
        assert!(s.contains("ports FAIL"));
        assert!(s.contains("resources warn"));
        assert!(s.contains("swarm ok"));
        // an ignored check's failure is a warning that says so, not a failure
        f.fail("engine-version", "Docker Engine 19.03", "upgrade it");
        assert!(f.failures.iter().all(|x| x.check != "engine-version"));
        assert!(f.warnings.iter().any(|(c, w)| *c == "engine-version"
            && w.contains("ignored with --ignore-preflight-errors=engine-version")));
        assert!(f.summary().contains("engine-version warn"));
    }
}
