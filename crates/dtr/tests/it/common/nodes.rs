//! The multi-node harness: three Docker engines on this machine ("nodes", containers of the host
//! engine made by `scripts/test-nodes.sh`), one swarm of three managers. This module reads their
//! environment, runs docker and dtr against one node, injects failures (kill, start, partition,
//! heal), brings the harness back to health and clears what DTR or a test left on it.
//! docs/testing-nodes.md is the guide.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{dtr_command, lines, text};

/// The script that makes the nodes; `swarm` forms their swarm again (one implementation of it).
pub const NODES_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/test-nodes.sh");

/// Names of what tests make inside the nodes besides DTR's own objects (`dtr-*` and the
/// `com.docker.dtr.managed` label): removed by [`Nodes::cleanup_dtr`] too.
pub const TEST_PREFIXES: [&str; 3] = ["dtr-", "nodest-", "mkest-"];

/// The image of the tests' own containers on the nodes (loaded into every node).
pub const TEST_IMAGE: &str = "debian:bookworm-slim";

/// The command of a container that answers every HTTP request on `port` with 200 and
/// `hello from <$HELLO>\n` (perl is in every Debian image): `docker run ... TEST_IMAGE` + these.
pub fn hello_server(port: u16) -> Vec<String> {
    let script = format!(
        r#"use IO::Socket::INET; $|=1;
my $s = IO::Socket::INET->new(LocalPort => {port}, Listen => 16, ReuseAddr => 1) or die "listen: $!";
print "listening\n";
while (my $c = $s->accept) {{
  while (my $l = <$c>) {{ last if $l =~ /^\r?\n$/ }}
  my $b = "hello from $ENV{{HELLO}}\n";
  print $c "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: " . length($b) . "\r\n\r\n$b";
  close $c;
}}"#
    );
    vec!["perl".into(), "-e".into(), script]
}

const MANAGED: &str = "label=com.docker.dtr.managed=true";

/// One test at a time on the harness in this process; across processes, nextest's `engine`
/// group (.config/nextest.toml) runs one engine test at a time.
static ONE_HARNESS: Mutex<()> = Mutex::new(());

/// One node: its name (= its hostname = its swarm node's hostname), the DOCKER_HOST value of
/// its engine (a unix socket on this machine) and its address on the nodes' network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub name: String,
    pub host: String,
    pub addr: String,
}

/// A member of the swarm as one manager lists it (`docker node ls`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwarmMember {
    pub hostname: String,
    pub id: String,
    /// `Ready`, `Down`, `Unknown`
    pub status: String,
    /// `Leader`, `Reachable`, `Unreachable`, or empty for a worker
    pub manager_status: String,
}

impl Node {
    /// The host engine's container of this node: `dtrtest-<name>`.
    pub fn container(&self) -> String {
        format!("dtrtest-{}", self.name)
    }

    /// The path of its engine's socket (DOCKER_HOST without `unix://`).
    pub fn socket(&self) -> &str {
        self.host.strip_prefix("unix://").unwrap_or(&self.host)
    }

    /// `docker ARGS` against this node's engine; the output, whatever the exit.
    pub fn docker(&self, args: &[&str]) -> Output {
        Command::new("docker")
            .env("DOCKER_HOST", &self.host)
            .env_remove("DOCKER_CONTEXT")
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run the docker CLI")
    }

    /// stdout of a successful `docker ARGS` against this node, trimmed; the test fails otherwise.
    pub fn docker_ok(&self, args: &[&str]) -> String {
        let out = self.docker(args);
        assert!(
            out.status.success(),
            "docker {args:?} on {}: {}",
            self.name,
            String::from_utf8_lossy(&out.stderr).trim()
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// `dtr ARGS` (this build, the caller's `DTR_*` settings removed: see `dtr_command`) with
    /// `DOCKER_HOST` set to this node's engine, `env` set and no terminal; the output,
    /// whatever the exit.
    pub fn dtr(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        dtr_command(args)
            .env("DOCKER_HOST", &self.host)
            .env_remove("DOCKER_CONTEXT")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .output()
            .expect("run dtr")
    }

    /// Whether its engine answers (`docker version`).
    pub fn answers(&self) -> bool {
        self.docker(&["version", "-f", "{{.Server.Version}}"])
            .status
            .success()
    }

    /// The swarm as this node's engine lists it (it must be a manager with a leader).
    pub fn swarm_members(&self) -> Result<Vec<SwarmMember>, String> {
        let out = self.docker(&[
            "node",
            "ls",
            "--format",
            "{{.Hostname}}\t{{.ID}}\t{{.Status}}\t{{.ManagerStatus}}",
        ]);
        if !out.status.success() {
            return Err(format!("{}: {}", self.name, text(&out).trim()));
        }
        Ok(lines(&String::from_utf8_lossy(&out.stdout))
            .iter()
            .map(|l| {
                let mut f = l.split('\t').map(str::trim).map(String::from);
                let mut next = || f.next().unwrap_or_default();
                SwarmMember {
                    hostname: next(),
                    id: next(),
                    status: next(),
                    manager_status: next(),
                }
            })
            .collect())
    }

    /// Names of the containers on this node (all states) that `filter` (`docker ps --filter`)
    /// selects.
    pub fn containers(&self, filter: &str) -> Vec<String> {
        lines(&self.docker_ok(&["ps", "-a", "--filter", filter, "--format", "{{.Names}}"]))
    }

    /// A TCP connection to `port` at this node's address (5 s to connect, 10 s per read or
    /// write): how a test reaches what a node publishes.
    pub fn tcp(&self, port: u16) -> std::io::Result<TcpStream> {
        let addr: SocketAddr = format!("{}:{port}", self.addr)
            .parse()
            .expect("a node address");
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        stream.set_write_timeout(Some(Duration::from_secs(10)))?;
        Ok(stream)
    }

    /// A plain-HTTP `GET path` to `port` at this node's address (HTTP/1.0, the connection
    /// closed by the server): (status, body), or what went wrong.
    pub fn http_get(&self, port: u16, path: &str) -> Result<(u16, String), String> {
        let what = format!("GET http://{}:{port}{path}", self.addr);
        let mut stream = self.tcp(port).map_err(|e| format!("{what}: {e}"))?;
        let request = format!("GET {path} HTTP/1.0\r\nHost: {}:{port}\r\n\r\n", self.addr);
        stream
            .write_all(request.as_bytes())
            .map_err(|e| format!("{what}: {e}"))?;
        let mut answer = Vec::new();
        stream
            .read_to_end(&mut answer)
            .map_err(|e| format!("{what}: {e}"))?;
        let answer = String::from_utf8_lossy(&answer);
        let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("{what}: not an HTTP answer: {head:?}"))?;
        Ok((status, body.to_string()))
    }

    /// Waits until something accepts connections on `port` at this node's address.
    pub fn wait_for_port(&self, port: u16, timeout: Duration) {
        super::wait_for(
            &format!("{}:{port} ({}) to accept connections", self.addr, self.name),
            timeout,
            || self.tcp(port).map(drop).map_err(|e| e.to_string()),
        );
    }

    /// A file of a volume on this node, read with the bootstrapper image of this version.
    pub fn volume_file(&self, volume: &str, rel: &str) -> String {
        let image = format!("registry/dtr:{}", dtr_core::version::VERSION);
        self.docker_ok(&[
            "run",
            "--rm",
            "-v",
            &format!("{volume}:/v:ro"),
            "--entrypoint",
            "cat",
            &image,
            &format!("/v/{rel}"),
        ])
    }

    /// The cluster CA a replica on this node serves to clients (its dtr-ca volume).
    pub fn external_ca(&self, replica_id: &str) -> String {
        self.volume_file(&format!("dtr-ca-{replica_id}"), "external/ca.pem")
    }
}

/// The harness of one test: the nodes, healthy and clear of DTR objects when handed out, and
/// made so again when dropped (also after a failed test). Holding it keeps the other tests of
/// this process off the harness.
pub struct Nodes {
    nodes: Vec<Node>,
    pub network: String,
    pub image: String,
    _one_test: MutexGuard<'static, ()>,
}

fn required() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
        || std::env::var("DTR_REQUIRE_ENGINE").is_ok_and(|v| v == "1")
}

fn env_of(var: &str) -> String {
    std::env::var(var)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| {
            panic!(
                "{var} is not set although DTR_TEST_NODES is: source scripts/test-nodes.sh again"
            )
        })
}

/// Polls `check` every 500 ms until it gives a value or `timeout` passes; the last complaint.
fn poll<T>(timeout: Duration, mut check: impl FnMut() -> Result<T, String>) -> Result<T, String> {
    let start = Instant::now();
    loop {
        match check() {
            Ok(v) => return Ok(v),
            Err(seen) if start.elapsed() >= timeout => return Err(seen),
            Err(_) => std::thread::sleep(Duration::from_millis(500)),
        }
    }
}

/// `docker ARGS` on the host engine (where the node containers are).
fn host_docker(args: &[&str]) -> Output {
    super::docker(args)
}

fn host_docker_ok(args: &[&str]) -> Result<String, String> {
    let out = host_docker(args);
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(format!("docker {args:?}: {}", text(&out).trim()))
    }
}

impl Nodes {
    /// The harness, when `scripts/test-nodes.sh` was sourced: `None` (skip) when
    /// `DTR_TEST_NODES` is not set, a failure instead under `CI=true` or `DTR_REQUIRE_ENGINE=1`.
    /// Brings it back to three running, connected, ready managers ([`Nodes::ensure_healthy`])
    /// and removes what an earlier test left ([`Nodes::cleanup_dtr`]).
    pub fn get() -> Option<Nodes> {
        let Some(names) = std::env::var("DTR_TEST_NODES")
            .ok()
            .filter(|v| !v.is_empty())
        else {
            assert!(
                !required(),
                "DTR_TEST_NODES is not set: run the tests through scripts/test.sh (it sources scripts/test-nodes.sh)"
            );
            eprintln!(
                "skipped: DTR_TEST_NODES is not set (source scripts/test-nodes.sh; CI fails here)"
            );
            return None;
        };
        let nodes = names
            .split_whitespace()
            .map(|name| Node {
                name: name.to_string(),
                host: env_of(&format!("DTR_TEST_NODE_HOST_{name}")),
                addr: env_of(&format!("DTR_TEST_NODE_ADDR_{name}")),
            })
            .collect();
        let harness = Nodes {
            nodes,
            network: env_of("DTR_TEST_NODES_NETWORK"),
            image: env_of("DTR_TEST_NODE_IMAGE"),
            _one_test: ONE_HARNESS.lock().unwrap_or_else(|e| e.into_inner()),
        };
        harness.ensure_healthy();
        harness.cleanup_dtr();
        Some(harness)
    }

    /// The node of that name; the test fails when there is none.
    pub fn node(&self, name: &str) -> &Node {
        self.nodes
            .iter()
            .find(|n| n.name == name)
            .unwrap_or_else(|| panic!("no node {name} in the harness"))
    }

    /// The engines as the MKE stand-in fronts them (`MkeOptions::nodes`): (name, socket path).
    pub fn mke_engines(&self) -> Vec<(String, String)> {
        self.nodes
            .iter()
            .map(|n| (n.name.clone(), n.socket().to_string()))
            .collect()
    }

    /// A manager whose engine answers and that has a leader: the first one in node order.
    pub fn manager(&self) -> &Node {
        self.nodes
            .iter()
            .find(|n| n.swarm_members().is_ok())
            .expect("no node answers as a manager of a swarm with a leader")
    }

    /// `docker kill` of the node's container: its engine and every container on it are gone at
    /// once, as when a machine loses power. Returns once the container has stopped.
    pub fn kill(&self, node: &Node) {
        host_docker_ok(&["kill", &node.container()]).unwrap_or_else(|e| panic!("{e}"));
        super::wait_until(
            &format!("{} to stop", node.container()),
            Duration::from_secs(30),
            || self.running(node) == Some(false),
        );
    }

    /// Starts a stopped node and waits until its engine answers and, when the swarm has a leader,
    /// the swarm lists it ready.
    pub fn start(&self, node: &Node) {
        self.start_many(&[node]);
    }

    /// Starts these stopped nodes together (say all three, none of which could reach a quorum
    /// alone), then waits as [`Nodes::start`] does for each.
    pub fn start_many(&self, nodes: &[&Node]) {
        for node in nodes {
            host_docker_ok(&["start", &node.container()]).unwrap_or_else(|e| panic!("{e}"));
        }
        for node in nodes {
            self.wait_engine(node).unwrap_or_else(|e| panic!("{e}"));
        }
        for node in nodes {
            self.wait_ready(node, Duration::from_secs(90))
                .unwrap_or_else(|e| panic!("{e}"));
        }
    }

    /// Cuts the node off the nodes' network (`docker network disconnect`): it reaches no other
    /// node and none reaches it; its engine still answers on its socket.
    pub fn partition(&self, node: &Node) {
        host_docker_ok(&["network", "disconnect", &self.network, &node.container()])
            .unwrap_or_else(|e| panic!("{e}"));
    }

    /// Connects a partitioned node again at its own address and waits until the swarm lists it
    /// ready.
    pub fn heal(&self, node: &Node) {
        host_docker_ok(&[
            "network",
            "connect",
            "--ip",
            &node.addr,
            &self.network,
            &node.container(),
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        self.wait_ready(node, Duration::from_secs(90))
            .unwrap_or_else(|e| panic!("{e}"));
    }

    /// Back to three running nodes at their addresses, whose engines answer, in one swarm of
    /// three ready managers with one leader; the test fails when that cannot be done.
    pub fn ensure_healthy(&self) {
        if let Err(e) = self.try_ensure_healthy() {
            panic!("the test nodes cannot be made healthy: {e}");
        }
    }

    /// [`Nodes::ensure_healthy`] without panicking. Stopped nodes are started, partitioned ones
    /// connected again; when the swarm does not become whole within 45 s (a quorum lost for
    /// good, a `--force-new-cluster` on one node) it is formed anew: every node leaves, node1
    /// initialises, the others join (`scripts/test-nodes.sh swarm`).
    pub fn try_ensure_healthy(&self) -> Result<(), String> {
        for node in &self.nodes {
            match self.running(node) {
                None => {
                    return Err(format!(
                        "{} does not exist: source scripts/test-nodes.sh again",
                        node.container()
                    ))
                }
                Some(false) => {
                    host_docker_ok(&["start", &node.container()])?;
                }
                Some(true) => {}
            }
        }
        for node in &self.nodes {
            let networks = host_docker_ok(&[
                "inspect",
                "-f",
                "{{json .NetworkSettings.Networks}}",
                &node.container(),
            ])?;
            let networks: Value = serde_json::from_str(&networks).unwrap_or_default();
            let ip = networks[&self.network]["IPAddress"].as_str();
            if ip != Some(node.addr.as_str()) {
                if ip.is_some() {
                    host_docker_ok(&["network", "disconnect", &self.network, &node.container()])?;
                }
                host_docker_ok(&[
                    "network",
                    "connect",
                    "--ip",
                    &node.addr,
                    &self.network,
                    &node.container(),
                ])?;
            }
        }
        for node in &self.nodes {
            self.wait_engine(node)?;
        }
        if self.wait_whole_or_split(Duration::from_secs(45)) {
            // a whole swarm can still leave a node listing a network of an old one
            return nodes_script("ghosts");
        }
        eprintln!("the swarm of the test nodes is not whole: forming it again");
        nodes_script("swarm")?;
        poll(Duration::from_secs(30), || self.swarm_whole())
    }

    /// Ok when every node, asked itself, lists the same three ready managers and one leader.
    pub fn swarm_whole(&self) -> Result<(), String> {
        match self.swarm_state() {
            SwarmState::Whole => Ok(()),
            SwarmState::Split(seen) | SwarmState::NotYet(seen) => Err(seen),
        }
    }

    /// Waits up to `timeout` for the swarm to be whole; gives up early (false) when two nodes
    /// have seen different leaders for 10 s: two swarms, which no waiting mends.
    fn wait_whole_or_split(&self, timeout: Duration) -> bool {
        let start = Instant::now();
        let mut split_since: Option<Instant> = None;
        loop {
            match self.swarm_state() {
                SwarmState::Whole => return true,
                SwarmState::Split(_) => {
                    let since = *split_since.get_or_insert_with(Instant::now);
                    if since.elapsed() >= Duration::from_secs(10) {
                        return false;
                    }
                }
                SwarmState::NotYet(_) => split_since = None,
            }
            if start.elapsed() >= timeout {
                return false;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    fn swarm_state(&self) -> SwarmState {
        let wanted: Vec<&str> = self.nodes.iter().map(|n| n.name.as_str()).collect();
        let mut leaders: Vec<(String, String)> = Vec::new();
        let mut not_yet = None;
        for node in &self.nodes {
            let members = match node.swarm_members() {
                Ok(members) => members,
                Err(e) => {
                    not_yet.get_or_insert(e);
                    continue;
                }
            };
            let mut names: Vec<&str> = members.iter().map(|m| m.hostname.as_str()).collect();
            names.sort_unstable();
            let ready = members.iter().all(|m| {
                m.status == "Ready" && ["Leader", "Reachable"].contains(&m.manager_status.as_str())
            });
            if names != wanted || !ready {
                not_yet.get_or_insert(format!("{} sees {members:?}", node.name));
            }
            if let Some(l) = members.iter().find(|m| m.manager_status == "Leader") {
                leaders.push((node.name.clone(), l.hostname.clone()));
            }
        }
        if leaders.iter().any(|(_, l)| *l != leaders[0].1) {
            return SwarmState::Split(format!("leaders as each node sees them: {leaders:?}"));
        }
        match not_yet {
            Some(seen) => SwarmState::NotYet(seen),
            None => SwarmState::Whole,
        }
    }

    /// Removes what DTR labels as its own (`com.docker.dtr.managed=true`) or what is named
    /// `dtr-*`, `nodest-*`, `mkest-*`: services and secrets of the swarm (through a manager),
    /// and on every node whose engine answers containers and volumes; then the dtr-ol and dtr-br
    /// networks when DTR labelled them, and networks of the test prefixes. Never fails (a guard
    /// runs it on the way out of a failed test).
    pub fn cleanup_dtr(&self) {
        let answering: Vec<&Node> = self.nodes.iter().filter(|n| n.answers()).collect();
        // swarm objects once, through a manager: services first (their tasks' containers go
        // with them), their secrets once the containers are gone
        let manager = answering.iter().find(|n| n.swarm_members().is_ok());
        if let Some(manager) = manager {
            for s in test_objects(manager, &["service", "ls"], "{{.Name}}") {
                manager.docker(&["service", "rm", &s]);
            }
        }
        for node in &answering {
            // one at a time: removing several containers of one network in parallel can leave
            // Docker 20.10 counting endpoints that are gone (see TestReplica::cleanup)
            for c in test_objects(node, &["ps", "-a"], "{{.Names}}") {
                node.docker(&["rm", "-f", "-v", &c]);
            }
        }
        for node in &answering {
            let volumes = test_objects(node, &["volume", "ls"], "{{.Name}}");
            if !volumes.is_empty() {
                let mut args = vec!["volume", "rm", "-f"];
                args.extend(volumes.iter().map(String::as_str));
                node.docker(&args);
            }
        }
        if let Some(manager) = manager {
            for s in test_objects(manager, &["secret", "ls"], "{{.Name}}") {
                manager.docker(&["secret", "rm", &s]);
            }
        }
        for node in &answering {
            for n in lines(&String::from_utf8_lossy(
                &node
                    .docker(&["network", "ls", "--format", "{{.Name}}"])
                    .stdout,
            )) {
                let dtr_managed = (n == "dtr-ol" || n == "dtr-br")
                    && String::from_utf8_lossy(
                        &node
                            .docker(&[
                                "network",
                                "inspect",
                                "-f",
                                "{{index .Labels \"com.docker.dtr.managed\"}}",
                                &n,
                            ])
                            .stdout,
                    )
                    .trim()
                        == "true";
                let test_made = TEST_PREFIXES[1..].iter().any(|p| n.starts_with(p));
                if dtr_managed || test_made {
                    node.docker(&["network", "rm", &n]);
                }
            }
        }
        for node in self.nodes.iter().filter(|n| !answering.contains(n)) {
            eprintln!(
                "cleanup: the engine of {} does not answer: skipped",
                node.name
            );
        }
    }

    /// What DTR or a test left: `swarm: service|secret NAME` and `NODE: container|volume|network
    /// NAME` lines (the objects [`Nodes::cleanup_dtr`] removes). Empty on a clear harness.
    pub fn leftovers(&self) -> Vec<String> {
        let mut left = Vec::new();
        if let Some(manager) = self.nodes.iter().find(|n| n.swarm_members().is_ok()) {
            for kind in ["service", "secret"] {
                for name in test_objects(manager, &[kind, "ls"], "{{.Name}}") {
                    left.push(format!("swarm: {kind} {name}"));
                }
            }
        }
        for node in &self.nodes {
            for c in test_objects(node, &["ps", "-a"], "{{.Names}}") {
                left.push(format!("{}: container {c}", node.name));
            }
            for v in test_objects(node, &["volume", "ls"], "{{.Name}}") {
                left.push(format!("{}: volume {v}", node.name));
            }
            for n in ["dtr-ol", "dtr-br"] {
                if node.docker(&["network", "inspect", n]).status.success() {
                    left.push(format!("{}: network {n}", node.name));
                }
            }
        }
        left
    }

    /// Whether the node's container runs (`None`: there is no such container).
    fn running(&self, node: &Node) -> Option<bool> {
        host_docker_ok(&["inspect", "-f", "{{.State.Running}}", &node.container()])
            .ok()
            .map(|s| s == "true")
    }

    fn wait_engine(&self, node: &Node) -> Result<(), String> {
        poll(Duration::from_secs(60), || {
            if node.answers() {
                Ok(())
            } else {
                Err(format!(
                    "the engine of {} does not answer on {}",
                    node.name, node.host
                ))
            }
        })
    }

    /// Waits until a manager that has a leader lists `node` as a ready, reachable manager.
    fn wait_ready(&self, node: &Node, timeout: Duration) -> Result<(), String> {
        poll(timeout, || {
            let mut seen = Vec::new();
            for manager in &self.nodes {
                match manager.swarm_members() {
                    Ok(members) => {
                        let me = members.iter().find(|m| m.hostname == node.name);
                        if me.is_some_and(|m| {
                            m.status == "Ready"
                                && ["Leader", "Reachable"].contains(&m.manager_status.as_str())
                        }) {
                            return Ok(());
                        }
                        seen.push(format!("{} sees {me:?}", manager.name));
                    }
                    Err(e) => seen.push(e),
                }
            }
            Err(format!(
                "{} not a ready manager of the swarm: {}",
                node.name,
                seen.join("; ")
            ))
        })
    }
}

enum SwarmState {
    Whole,
    /// two nodes see different leaders
    Split(String),
    NotYet(String),
}

/// The objects of one kind on a node that DTR labels as its own or that carry a test prefix.
fn test_objects(node: &Node, list: &[&str], format: &str) -> Vec<String> {
    let run = |extra: &[&str]| {
        let mut args = list.to_vec();
        args.extend(extra);
        args.extend(["--format", format]);
        lines(&String::from_utf8_lossy(&node.docker(&args).stdout))
    };
    let mut names = run(&["--filter", MANAGED]);
    for name in run(&[]) {
        if TEST_PREFIXES.iter().any(|p| name.starts_with(p)) && !names.contains(&name) {
            names.push(name);
        }
    }
    names
}

impl std::ops::Deref for Nodes {
    type Target = [Node];
    fn deref(&self) -> &[Node] {
        &self.nodes
    }
}

impl Drop for Nodes {
    /// Leaves the harness healthy and clear for the next test, whatever this one did.
    fn drop(&mut self) {
        if let Err(e) = self.try_ensure_healthy() {
            eprintln!("the test nodes could not be made healthy again: {e}");
        }
        self.cleanup_dtr();
    }
}

/// `bash scripts/test-nodes.sh <mode>`: its output when it fails.
fn nodes_script(mode: &str) -> Result<(), String> {
    let out = Command::new("bash")
        .args([NODES_SCRIPT, mode])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("bash {NODES_SCRIPT} {mode}: {e}"))?;
    if !out.status.success() {
        return Err(format!("bash {NODES_SCRIPT} {mode}: {}", text(&out)));
    }
    Ok(())
}
