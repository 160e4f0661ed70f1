//! Tests of the multi-node harness itself (common/nodes.rs, scripts/test-nodes.sh): three engines
//! in one swarm of managers, an overlay across them, ports published at a node's address, the
//! failures it injects and its return to health, and a DTR install on one node. Skipped without
//! the harness, failed under CI; each test's objects are named `nodest-*` and removed by the
//! harness's guard even when the test fails.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::common::http::Request;
use crate::common::nodes::{hello_server, Node, Nodes, TEST_IMAGE};
use crate::common::{admin_password, free_port, text, wait_for, COMPONENTS};
use dtr_core::options::ReplicaId;

fn unique(what: &str) -> String {
    format!("nodest-{what}-{}", ReplicaId::random())
}

/// `docker run -d` of a hello server on `node` answering `hello from <hello>` on `port`, with
/// `extra` flags; waits until it listens. The container's name.
fn run_hello(node: &Node, name: &str, hello: &str, port: u16, extra: &[&str]) -> String {
    let env = format!("HELLO={hello}");
    let mut args = vec!["run", "-d", "--name", name, "-e", &env];
    args.extend(extra);
    args.push(TEST_IMAGE);
    let command = hello_server(port);
    args.extend(command.iter().map(String::as_str));
    node.docker_ok(&args);
    wait_for(
        &format!("{name} on {} to listen", node.name),
        Duration::from_secs(20),
        || {
            let logs = text(&node.docker(&["logs", name]));
            if logs.contains("listening") {
                Ok(())
            } else {
                Err(logs)
            }
        },
    );
    name.to_string()
}

/// What a container on `node` gets from `GET /` at `host:port` (bash's /dev/tcp, a fresh
/// container on `network`), or the complaint.
fn fetch_from(node: &Node, network: &str, host: &str, port: u16) -> Result<String, String> {
    let script = format!(
        "exec 3<>/dev/tcp/{host}/{port} && printf 'GET / HTTP/1.0\\r\\n\\r\\n' >&3 && timeout 10 cat <&3"
    );
    let out = node.docker(&[
        "run",
        "--rm",
        "--network",
        network,
        TEST_IMAGE,
        "bash",
        "-c",
        &script,
    ]);
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).to_string())
    } else {
        Err(text(&out))
    }
}

#[test]
fn the_three_nodes_are_ready_managers_of_one_swarm() {
    let Some(nodes) = Nodes::get() else { return };
    assert_eq!(nodes.len(), 3, "{:?}", &nodes[..]);
    let names: Vec<&str> = nodes.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["node1", "node2", "node3"]);

    let mut clusters = BTreeSet::new();
    for node in nodes.iter() {
        // each engine is its own: its name is the node's, it advertises the node's address
        let info = node.docker_ok(&[
            "info",
            "-f",
            "{{.Name}} {{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}} {{.Swarm.NodeAddr}} {{.Swarm.Cluster.ID}}",
        ]);
        let fields: Vec<&str> = info.split_whitespace().collect();
        assert_eq!(
            fields[..4],
            [node.name.as_str(), "active", "true", node.addr.as_str()],
            "{info}"
        );
        clusters.insert(fields[4].to_string());

        let members = node.swarm_members().expect("a manager lists the swarm");
        let mut seen: Vec<(String, String)> = members
            .iter()
            .map(|m| (m.hostname.clone(), m.status.clone()))
            .collect();
        seen.sort();
        assert_eq!(
            seen,
            names
                .iter()
                .map(|n| (n.to_string(), "Ready".to_string()))
                .collect::<Vec<_>>(),
            "as {} sees it: {members:?}",
            node.name
        );
        let leaders = members
            .iter()
            .filter(|m| m.manager_status == "Leader")
            .count();
        assert_eq!(leaders, 1, "{members:?}");
        assert!(
            members
                .iter()
                .all(|m| ["Leader", "Reachable"].contains(&m.manager_status.as_str())),
            "every node a manager: {members:?}"
        );
    }
    assert_eq!(clusters.len(), 1, "one swarm: {clusters:?}");
    nodes.swarm_whole().expect("the harness agrees");

    // the images of this version are in every node, loaded (never pulled: there is no registry)
    let image = format!("registry/dtr:{}", dtr_core::version::VERSION);
    for node in nodes.iter() {
        assert!(
            node.docker(&["image", "inspect", &image]).status.success(),
            "{image} on {}",
            node.name
        );
    }
}

#[test]
fn an_overlay_made_on_node1_lets_node3_reach_node1_by_name() {
    let Some(nodes) = Nodes::get() else { return };
    let (node1, node3) = (nodes.node("node1"), nodes.node("node3"));
    let network = unique("ol");
    node1.docker_ok(&[
        "network",
        "create",
        "-d",
        "overlay",
        "--attachable",
        &network,
    ]);
    let server = run_hello(
        node1,
        &unique("server"),
        "node1",
        8080,
        &["--network", &network],
    );

    let answer = wait_for(
        "node3 to reach the server on node1 over the overlay",
        Duration::from_secs(60),
        || fetch_from(node3, &network, &server, 8080),
    );
    assert!(answer.starts_with("HTTP/1.0 200"), "{answer}");
    assert!(answer.ends_with("hello from node1\n"), "{answer}");
    // it really ran on node1: node3's engine does not have it
    assert!(!node3.docker(&["inspect", &server]).status.success());
}

#[test]
fn a_port_published_on_node2_answers_at_node2s_address_only() {
    let Some(nodes) = Nodes::get() else { return };
    let (node1, node2) = (nodes.node("node1"), nodes.node("node2"));
    let port = free_port();
    let publish = format!("{port}:8080");
    run_hello(
        node2,
        &unique("published"),
        "node2",
        8080,
        &["-p", &publish],
    );

    node2.wait_for_port(port, Duration::from_secs(20));
    assert_eq!(
        node2.http_get(port, "/"),
        Ok((200, "hello from node2\n".to_string()))
    );
    // a container's port is published on its own node, not through a swarm routing mesh
    assert!(
        node1.tcp(port).is_err(),
        "{}:{port} (node1) must not answer",
        node1.addr
    );
}

#[test]
fn a_killed_node_is_down_the_others_keep_the_quorum_and_start_brings_it_back() {
    let Some(nodes) = Nodes::get() else { return };
    let (node1, node3) = (nodes.node("node1"), nodes.node("node3"));
    let port = free_port();
    let publish = format!("{port}:8080");
    let server = run_hello(
        node3,
        &unique("restarts"),
        "node3",
        8080,
        &["-p", &publish, "--restart", "always"],
    );
    node3.wait_for_port(port, Duration::from_secs(20));

    nodes.kill(node3);
    assert!(!node3.answers(), "the engine of a killed node is gone");
    assert!(node3.tcp(port).is_err(), "and so are its containers");
    wait_for("node1 to see node3 down", Duration::from_secs(60), || {
        let members = node1.swarm_members()?;
        let n3 = members.iter().find(|m| m.hostname == "node3");
        match n3 {
            Some(m) if m.status == "Down" && m.manager_status == "Unreachable" => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });
    // two managers of three: still a quorum, the swarm takes writes
    let network = unique("quorum");
    node1.docker_ok(&["network", "create", "-d", "overlay", &network]);

    nodes.start(node3);
    assert!(node3.answers());
    nodes.swarm_whole().expect("whole again after start");
    // the engine came back with its containers: a restart policy is honoured
    node3.wait_for_port(port, Duration::from_secs(30));
    assert_eq!(
        node3.http_get(port, "/"),
        Ok((200, "hello from node3\n".to_string()))
    );
    assert_eq!(
        node3.docker_ok(&["inspect", "-f", "{{.State.Running}}", &server]),
        "true"
    );
}

#[test]
fn dtr_install_on_node1_serves_ping_at_its_address_and_destroy_leaves_nothing() {
    let Some(nodes) = Nodes::get() else { return };
    let node1 = nodes.node("node1");
    let id = ReplicaId::random().to_string();
    let https = free_port();
    let mut http = free_port();
    while http == https {
        http = free_port();
    }
    let (https_s, http_s) = (https.to_string(), http.to_string());
    let out = node1.dtr(
        &[
            "install",
            "--replica-id",
            &id,
            "--replica-https-port",
            &https_s,
            "--replica-http-port",
            &http_s,
            "--ucp-node",
            "node1",
        ],
        &[("DTR_ADMIN_PASSWORD", admin_password())],
    );
    assert!(out.status.success(), "install on node1:\n{}", text(&out));

    // the eight containers on node1's engine, none on the others
    let label = format!("label=com.docker.dtr.replica={id}");
    let mut on_node1 = node1.containers(&label);
    on_node1.sort();
    let expected: Vec<String> = COMPONENTS.iter().map(|c| format!("dtr-{c}-{id}")).collect();
    assert_eq!(on_node1, expected);
    for other in nodes.iter().filter(|n| n.name != "node1") {
        assert_eq!(
            other.containers(&label),
            Vec::<String>::new(),
            "{}",
            other.name
        );
    }

    // /_ping at node1's address, trusted with the cluster CA from node1's dtr-ca volume
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, node1.external_ca(&id)).unwrap();
    let url = format!("https://{}:{https}/_ping", node1.addr);
    let resp = Request::get(&url).ca(&ca).send();
    assert_eq!(resp.status, 200, "{url}: {resp}");
    let ping = resp.json();
    assert_eq!(ping["Healthy"], true, "{ping}");
    assert_eq!(ping["ReplicaID"], id.as_str(), "{ping}");

    let out = node1.dtr(&["destroy", "--replica-id", &id], &[]);
    assert!(out.status.success(), "destroy:\n{}", text(&out));
    assert_eq!(nodes.leftovers(), Vec::<String>::new());
}
