//! A cluster across the three engines of the multi-node harness (common/nodes.rs): each
//! command run against the engine of the node it acts on, as an operator of a plain swarm
//! would; the image storage on S3 (SeaweedFS on the host, which the nodes' containers reach).
//! A join onto another node while the images are on a volume is refused before anything is
//! made; with S3, replicas join on nodes 2 and 3, `dtr status` shows where each runs, an image
//! pushed through node 1 pulls through node 3.

use std::time::Duration;

use serde_json::{json, Value};

use crate::common::balancer::Balancer;
use crate::common::http::Api;
use crate::common::mke::{MkeOptions, MkeStandIn};
use crate::common::nodes::{Node, Nodes};
use crate::common::pull::Puller;
use crate::common::registry::Registry;
use crate::common::stores::TestStore;
use crate::common::writer::{AdminApi, Writer};
use crate::common::*;
use dtr_core::options::ReplicaId;

/// One replica of the test's cluster: its node, id and published ports.
pub struct NodeReplica {
    pub node: String,
    pub id: String,
    pub https_port: u16,
    pub http_port: u16,
}

impl NodeReplica {
    fn new(node: &Node) -> NodeReplica {
        NodeReplica {
            node: node.name.clone(),
            id: ReplicaId::random().to_string(),
            https_port: free_port(),
            http_port: free_port(),
        }
    }

    fn ports(&self) -> [String; 4] {
        [
            "--replica-https-port".into(),
            self.https_port.to_string(),
            "--replica-http-port".into(),
            self.http_port.to_string(),
        ]
    }
}

/// A cluster on the harness: the first replica installed on `first`, the external URL its
/// address and HTTPS port.
pub struct NodeCluster<'a> {
    pub nodes: &'a Nodes,
    pub replicas: Vec<NodeReplica>,
    pub ca_pem: String,
    pub authority: String,
}

impl<'a> NodeCluster<'a> {
    pub fn install(nodes: &'a Nodes, first: &Node) -> NodeCluster<'a> {
        NodeCluster::install_as(nodes, first, None)
    }

    /// Installed with `authority` as the external URL (a balancer in front of the nodes), else
    /// the first replica's own address and port.
    pub fn install_as(
        nodes: &'a Nodes,
        first: &Node,
        authority: Option<String>,
    ) -> NodeCluster<'a> {
        let r = NodeReplica::new(first);
        let authority = authority.unwrap_or_else(|| format!("{}:{}", first.addr, r.https_port));
        let mut args = vec![
            "install".to_string(),
            "--ucp-node".into(),
            first.name.clone(),
            "--replica-id".into(),
            r.id.clone(),
            "--dtr-external-url".into(),
            authority.clone(),
        ];
        args.extend(r.ports());
        let out = first.dtr(&strs(&args), &[("DTR_ADMIN_PASSWORD", admin_password())]);
        assert!(out.status.success(), "install failed:\n{}", text(&out));
        let ca_pem = first.external_ca(&r.id);
        NodeCluster {
            nodes,
            replicas: vec![r],
            ca_pem,
            authority,
        }
    }

    pub fn first(&self) -> &NodeReplica {
        &self.replicas[0]
    }

    /// `dtr join` of a new replica on `node`, through the first replica, run against `node`'s
    /// own engine; the output, whatever the exit (the replica is kept only when it joined).
    pub fn join(&mut self, node: &Node) -> std::process::Output {
        let r = NodeReplica::new(node);
        let mut args = vec![
            "join".to_string(),
            "--ucp-node".into(),
            node.name.clone(),
            "--existing-replica-id".into(),
            self.first().id.clone(),
            "--replica-id".into(),
            r.id.clone(),
        ];
        args.extend(r.ports());
        let out = node.dtr(&strs(&args), &[]);
        if out.status.success() {
            self.replicas.push(r);
        }
        out
    }

    /// [`NodeCluster::join`], which must succeed.
    pub fn join_ok(&mut self, node: &Node) {
        let out = self.join(node);
        assert!(
            out.status.success(),
            "join on {}:\n{}",
            node.name,
            text(&out)
        );
    }

    /// The API of the first replica at its node's address (the external URL may be a balancer
    /// that is not started yet).
    pub fn first_api(&self) -> Api {
        Api::new(
            format!("https://{}", self.authority_of(self.first())),
            &self.ca_file(),
        )
    }

    /// The API of replica `r` at its node's address, as the administrator.
    pub fn admin_api_of(&self, r: &NodeReplica) -> AdminApi {
        AdminApi(Api::new(
            format!("https://{}", self.authority_of(r)),
            &self.ca_file(),
        ))
    }

    /// The CA clients trust, as a file.
    pub fn ca_file(&self) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("dtr-multinode-{}", self.first().id));
        std::fs::create_dir_all(&dir).unwrap();
        let ca = dir.join("ca.pem");
        std::fs::write(&ca, &self.ca_pem).unwrap();
        ca
    }

    /// The test balancer on 127.0.0.1:`port` in front of every replica's HTTPS port, with the
    /// first replica's certificate (made for 127.0.0.1 too).
    pub fn balancer(&self, port: u16) -> Balancer {
        let n1 = self.nodes.node(&self.first().node);
        let volume = format!("dtr-ca-{}", self.first().id);
        let (cert, key) = (
            n1.volume_file(&volume, "external/cert.pem"),
            n1.volume_file(&volume, "external/key.pem"),
        );
        let upstreams: Vec<String> = self.replicas.iter().map(|r| self.authority_of(r)).collect();
        Balancer::start_to(port, (&cert, &key), &upstreams)
    }

    /// Three replicas, one per node, on S3.
    pub fn three_on_s3(
        nodes: &'a Nodes,
        authority: Option<String>,
    ) -> Option<(NodeCluster<'a>, TestStore)> {
        let mut cluster = NodeCluster::install_as(nodes, nodes.node("node1"), authority);
        let s3 = cluster.use_s3()?;
        for n in ["node2", "node3"] {
            cluster.join_ok(nodes.node(n));
        }
        Some((cluster, s3))
    }

    /// `dtr status --json` against `node`'s engine: problems of every replica, or none.
    pub fn wait_all_healthy(&self, node: &Node, timeout: Duration) {
        wait_for("every replica healthy in dtr status", timeout, || {
            let out = node.dtr(&["status", "--json"], &[]);
            let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
            let replicas = v["replicas"].as_object().cloned().unwrap_or_default();
            let sick: Vec<String> = replicas
                .iter()
                .filter_map(|(id, r)| {
                    let p = if r["elsewhere"].is_array() {
                        r["elsewhere"].as_array().cloned().unwrap_or_default()
                    } else {
                        Vec::new()
                    };
                    let local_bad = r["containers"]
                        .as_object()
                        .is_some_and(|c| c.values().any(|c| c["health"] != "healthy"));
                    (!p.is_empty() || local_bad).then(|| format!("{id}: {p:?}"))
                })
                .collect();
            if replicas.len() == self.replicas.len() && sick.is_empty() {
                Ok(())
            } else {
                Err(format!("{} replicas; {sick:?}", replicas.len()))
            }
        });
    }

    /// A docker client of the cluster at `authority` (a replica's address and port).
    pub fn client(&self, authority: &str) -> Registry {
        Registry::attach_client(authority, &self.ca_pem)
    }

    pub fn authority_of(&self, r: &NodeReplica) -> String {
        format!("{}:{}", self.nodes.node(&r.node).addr, r.https_port)
    }

    /// Moves the cluster to a new S3 bucket of the test SeaweedFS, and waits until every
    /// replica's registry runs it.
    pub fn use_s3(&self) -> Option<TestStore> {
        let s3 = TestStore::s3(&format!("dtr-{}", ReplicaId::random()))?;
        let (code, v) = self.first_api().call(
            "PUT",
            "/api/v0/admin/settings/registry/simple",
            Some(("admin", admin_password())),
            Some(json!({"storage": s3.section, "keep_metadata": true})),
        );
        assert_eq!(code, 202, "{v}");
        self.wait_storage_generation(v["generation"].as_u64().unwrap());
        Some(s3)
    }

    pub fn wait_storage_generation(&self, generation: u64) {
        let api = self.first_api();
        wait_for(
            &format!("every registry on storage generation {generation}"),
            Duration::from_secs(180),
            || {
                let (code, v) = api.call(
                    "GET",
                    "/api/v0/admin/settings/registry/status",
                    Some(("admin", admin_password())),
                    None,
                );
                let all = v["replicas"].as_object().cloned().unwrap_or_default();
                if code == 200
                    && !all.is_empty()
                    && all
                        .values()
                        .all(|r| r["generation"].as_u64() == Some(generation))
                {
                    Ok(())
                } else {
                    Err(format!("{code} {v}"))
                }
            },
        );
    }

    /// `dtr status --json` run against `node`'s engine.
    pub fn status(&self, node: &Node) -> Value {
        let out = node.dtr(&["status", "--json"], &[]);
        assert!(out.status.success(), "status failed:\n{}", text(&out));
        serde_json::from_slice(&out.stdout).expect("status --json")
    }
}

impl Drop for NodeCluster<'_> {
    fn drop(&mut self) {
        self.nodes.cleanup_dtr();
        let dir = std::env::temp_dir().join(format!("dtr-multinode-{}", self.first().id));
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// The repositories the cluster lists through replica `r`.
fn repositories_through(cluster: &NodeCluster, r: &NodeReplica) -> Vec<String> {
    cluster.admin_api_of(r).repositories()
}

/// The acknowledged writes of a writer's log that the cluster does not list through `r`.
fn lost_writes(cluster: &NodeCluster, r: &NodeReplica, log: &[(f64, String, u16)]) -> Vec<String> {
    let present = repositories_through(cluster, r);
    log.iter()
        .filter(|(_, name, code)| *code == 201 && !present.contains(name))
        .map(|(_, name, _)| name.clone())
        .collect()
}

/// The longest stretch, in seconds, between the last acknowledged write before `t` and the
/// first one after it.
fn write_gap(log: &[(f64, String, u16)], t: f64) -> f64 {
    let before = log
        .iter()
        .filter(|(at, _, code)| *at <= t && *code == 201)
        .map(|(at, _, _)| *at)
        .fold(0.0, f64::max);
    let after = log
        .iter()
        .find(|(at, _, code)| *at > t && *code == 201)
        .map(|(at, _, _)| *at)
        .unwrap_or(f64::INFINITY);
    after - before
}

/// The DTR containers and volumes on `node` (none means nothing was made there).
fn dtr_objects(node: &Node) -> Vec<String> {
    let mut out = node.containers("label=com.docker.dtr.managed=true");
    out.extend(lines(&node.docker_ok(&[
        "volume",
        "ls",
        "--filter",
        "label=com.docker.dtr.managed=true",
        "--format",
        "{{.Name}}",
    ])));
    out
}

#[test]
fn replicas_join_on_other_nodes_once_the_images_are_shared_and_each_is_seen_where_it_runs() {
    let Some(nodes) = Nodes::get() else { return };
    let (n1, n2, n3) = (
        nodes.node("node1"),
        nodes.node("node2"),
        nodes.node("node3"),
    );
    let mut cluster = NodeCluster::install(&nodes, n1);

    // the images are on node 1's volume: a replica on node 2 could not serve them
    let out = cluster.join(n2);
    let log = text(&out);
    assert_eq!(out.status.code(), Some(6), "{log}");
    assert!(
        log.contains("node node1")
            && log.contains("node node2")
            && log.contains("object store")
            && log.contains("--nfs-storage-url"),
        "{log}"
    );
    assert!(
        dtr_objects(n2).is_empty(),
        "the refused join made {:?} on node2",
        dtr_objects(n2)
    );

    let Some(_s3) = cluster.use_s3() else { return };
    for node in [n2, n3] {
        cluster.join_ok(node);
    }

    // status through node 2: three replicas, two of them elsewhere, each on its node
    let status = cluster.status(n2);
    let replicas = status["replicas"].as_object().unwrap();
    assert_eq!(replicas.len(), 3, "{status:#}");
    for r in &cluster.replicas {
        let v = &replicas[&r.id];
        assert_eq!(v["node"], r.node.as_str(), "{v:#}");
        assert_eq!(v["elsewhere"].is_null(), r.node == "node2", "{v:#}");
        let problems = if v["elsewhere"].is_null() {
            Value::Array(vec![])
        } else {
            v["elsewhere"].clone()
        };
        assert_eq!(problems, json!([]), "replica {} on {}: {v:#}", r.id, r.node);
    }
    assert_eq!(
        status["etcd"].as_array().map(|m| m.len()),
        Some(3),
        "{status:#}"
    );

    // pushed through node 1, pulled through node 3
    let one = cluster.client(&cluster.authority);
    one.login_ok("admin", admin_password());
    let image = one.make_image("admin/app:1", 512 * 1024);
    let digest = one.push(&image);
    let third = cluster.client(&cluster.authority_of(&cluster.replicas[2]));
    third.login_ok("admin", admin_password());
    let there = format!("{}/admin/app:1", third.authority);
    let pulled = third.docker_ok(&["pull", &there], &[]);
    assert!(pulled.contains(&digest), "{pulled}");
    third.docker(&["rmi", &there], &[]);
}

#[test]
fn a_partition_heals_a_whole_node_dies_under_load_and_comes_back_and_a_lone_component_dies() {
    let Some(nodes) = Nodes::get() else { return };
    let lb = free_port();
    let Some((cluster, _s3)) = NodeCluster::three_on_s3(&nodes, Some(format!("127.0.0.1:{lb}")))
    else {
        return;
    };
    let _balancer = cluster.balancer(lb);
    let client = cluster.client(&cluster.authority);
    client.login_ok("admin", admin_password());
    let image = client.make_image("admin/app:1", 256 * 1024);
    client.push(&image);

    // (one cluster for the three stories: each set-up of three replicas costs over a minute)
    a_partitioned_node_refuses_writes_without_hanging_and_heals_without_losing_any(
        &nodes, &cluster,
    );

    let (n1, n2) = (nodes.node("node1"), nodes.node("node2"));
    let writer = Writer::start(cluster.admin_api_of(&cluster.replicas[1]), "w");
    writer.wait_for_acks(10, Duration::from_secs(60));
    let puller = Puller::start(
        &cluster.authority,
        cluster.ca_file(),
        "admin/app",
        "1",
        ("admin", admin_password()),
    );
    puller.wait_for_pulls(5, Duration::from_secs(60));

    let killed_at = std::time::Instant::now();
    nodes.kill(n1);
    let killed = writer.since(killed_at);
    wait_until(
        "a write acknowledged through node2 after node1 died",
        Duration::from_secs(120),
        || writer.first_ok_after(killed + 0.5).is_some(),
    );
    writer.wait_for_acks(writer.acks() + 5, Duration::from_secs(60));
    puller.wait_for_pulls(10, Duration::from_secs(60));
    let log = writer.finish();
    let pulls = puller.finish();
    let gap = write_gap(&log, killed);
    eprintln!(
        "node1 killed: write gap {gap:.1} s; {} pulls, {} failed, longest pull outage {:.1} s",
        pulls.pulls,
        pulls.failed.len(),
        pulls.longest_outage.as_secs_f64()
    );
    let lost = lost_writes(&cluster, &cluster.replicas[2], &log);
    assert!(lost.is_empty(), "acknowledged writes lost: {lost:?}");

    // node 1 back: its replica comes back by itself (restart policies) and catches up
    nodes.start(n1);
    cluster.wait_all_healthy(n2, Duration::from_secs(240));
    let lost = lost_writes(&cluster, &cluster.replicas[0], &log);
    assert!(lost.is_empty(), "replica on node1 lacks {lost:?}");

    // one component alone: node 2's etcd, then node 3's database (the primary or not): the
    // cluster goes on taking writes through node 1, and loses none
    let n3 = nodes.node("node3");
    let alone = [
        (n2, format!("dtr-etcd-{}", cluster.replicas[1].id), "e"),
        (n3, format!("dtr-rethinkdb-{}", cluster.replicas[2].id), "d"),
    ];
    for (node, container, prefix) in alone {
        node.docker_ok(&["kill", &container]);
        let writer = Writer::start(cluster.admin_api_of(&cluster.replicas[0]), prefix);
        writer.wait_for_acks(5, Duration::from_secs(90));
        let log = writer.finish();
        let lost = lost_writes(&cluster, &cluster.replicas[0], &log);
        assert!(lost.is_empty(), "{container} killed: writes lost {lost:?}");
        node.docker_ok(&["start", &container]);
    }
    cluster.wait_all_healthy(n1, Duration::from_secs(240));
}

/// Node 3 cut off from the others: its replica refuses writes without hanging, the others go on;
/// healed, one primary, three etcd members, no acknowledged write lost anywhere.
fn a_partitioned_node_refuses_writes_without_hanging_and_heals_without_losing_any(
    nodes: &Nodes,
    cluster: &NodeCluster,
) {
    let n3 = nodes.node("node3");
    let writer = Writer::start(cluster.admin_api_of(&cluster.replicas[0]), "p");
    writer.wait_for_acks(5, Duration::from_secs(60));
    nodes.partition(n3);
    // node 3's replica, asked from inside its node: a refusal, not a hang
    let r3 = &cluster.replicas[2];
    let nginx = format!("dtr-nginx-{}", r3.id);
    let body = r#"{"name":"from-the-minority"}"#;
    wait_for(
        "node3's replica to refuse a write while partitioned",
        Duration::from_secs(120),
        || {
            let started = std::time::Instant::now();
            let out = create_repository_inside(n3, &nginx, body);
            let code = String::from_utf8_lossy(&out.stdout).trim().to_string();
            let took = started.elapsed();
            assert_ne!(code, "201", "the partitioned replica took a write");
            if took < Duration::from_secs(20) && (code.starts_with('5') || code == "409") {
                eprintln!("partitioned node3: write refused with {code} after {took:?}");
                Ok(())
            } else {
                Err(format!("HTTP {code} after {took:?}"))
            }
        },
    );
    writer.wait_for_acks(writer.acks() + 5, Duration::from_secs(60));
    nodes.heal(n3);
    cluster.wait_all_healthy(nodes.node("node1"), Duration::from_secs(240));
    let log = writer.finish();
    let status = cluster.status(nodes.node("node1"));
    let leaders: Vec<&Value> = status["db"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "leader")
        .collect();
    assert_eq!(leaders.len(), 1, "{status:#}");
    assert_eq!(status["etcd"].as_array().unwrap().len(), 3, "{status:#}");
    for r in &cluster.replicas {
        let lost = lost_writes(cluster, r, &log);
        assert!(lost.is_empty(), "replica on {} lacks {lost:?}", r.node);
        assert!(!repositories_through(cluster, r).contains(&"from-the-minority".to_string()));
    }
}

#[test]
fn a_dead_nodes_replica_is_removed_and_a_cluster_that_lost_two_nodes_is_repaired_for_good() {
    let Some(nodes) = Nodes::get() else { return };
    let Some((cluster, _s3)) = NodeCluster::three_on_s3(&nodes, None) else {
        return;
    };
    let (n1, n2, n3) = (
        nodes.node("node1"),
        nodes.node("node2"),
        nodes.node("node3"),
    );
    let (r1, r2, r3) = (
        &cluster.replicas[0],
        &cluster.replicas[1],
        &cluster.replicas[2],
    );

    // node 3 dies: its replica is removed through node 1
    nodes.kill(n3);
    let out = n1.dtr(
        &[
            "remove",
            "--existing-replica-id",
            &r1.id,
            "--replica-ids",
            &r3.id,
        ],
        &[],
    );
    let log = text(&out);
    assert!(out.status.success(), "remove failed:\n{log}");
    assert!(
        log.contains("are not on this engine") && log.contains("node node3"),
        "{log}"
    );
    let status = cluster.status(n1);
    assert_eq!(
        status["replicas"].as_object().unwrap().len(),
        2,
        "{status:#}"
    );
    assert_eq!(status["etcd"].as_array().unwrap().len(), 2, "{status:#}");

    // node 2 dies too: no quorum; the swarm is made anew on node 1 (Docker's own recovery),
    // then the cluster is repaired from the survivor
    nodes.kill(n2);
    n1.docker_ok(&[
        "swarm",
        "init",
        "--force-new-cluster",
        "--advertise-addr",
        &n1.addr,
    ]);
    let out = n1.dtr(
        &["emergency-repair", "--existing-replica-id", &r1.id, "--yes"],
        &[],
    );
    let log = text(&out);
    assert!(out.status.success(), "emergency-repair failed:\n{log}");
    let api = cluster.admin_api_of(r1);
    let (code, v) = api.call(
        "POST",
        "/api/v0/repositories/admin",
        Some(json!({"name": "after-repair"})),
        30,
    );
    assert_eq!(code, 201, "{v}");

    // node 2 comes back: its replica was retired, it must not form a second cluster
    nodes.start(n2);
    let etcd2 = format!("dtr-etcd-{}", r2.id);
    wait_for(
        "the returning replica's etcd to stop as removed",
        Duration::from_secs(180),
        || {
            let running = n2.docker_ok(&["inspect", "-f", "{{.State.Running}}", &etcd2]);
            let logs = text(&n2.docker(&["logs", "--tail", "50", &etcd2]));
            if running == "false" || logs.contains("removed") {
                Ok(())
            } else {
                Err(format!(
                    "running {running}; {}",
                    logs.lines().last().unwrap_or("")
                ))
            }
        },
    );
    let status = cluster.status(n1);
    let leaders = status["db"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "leader")
        .count();
    assert_eq!(leaders, 1, "{status:#}");
    let (code, _) = api.call(
        "POST",
        "/api/v0/repositories/admin",
        Some(json!({"name": "after-return"})),
        30,
    );
    assert_eq!(code, 201);
    // a write through the returned node's replica is not taken
    let nginx2 = format!("dtr-nginx-{}", r2.id);
    let out = create_repository_inside(n2, &nginx2, r#"{"name":"split"}"#);
    assert_ne!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "201",
        "a second primary took a write"
    );
    assert!(!repositories_through(&cluster, r1).contains(&"split".to_string()));
}

#[test]
fn a_backup_through_a_survivor_restores_onto_another_node_and_the_others_join_it_again() {
    let Some(nodes) = Nodes::get() else { return };
    let (n1, n2, n3) = (
        nodes.node("node1"),
        nodes.node("node2"),
        nodes.node("node3"),
    );
    let lb = free_port();
    let authority = format!("127.0.0.1:{lb}");
    let Some((mut cluster, s3)) = NodeCluster::three_on_s3(&nodes, Some(authority.clone())) else {
        return;
    };
    let client = cluster.client(&authority);
    let (image, digest, signed) = {
        let _balancer = cluster.balancer(lb);
        client.login_ok("admin", admin_password());
        let image = client.make_image("admin/app:1", 256 * 1024);
        let digest = client.push(&image);
        let signed = client.push_signed("admin/signed:1");
        (image, digest, signed)
    };
    let ca_before = cluster.ca_pem.clone();

    // node 1 is down: the backup goes through node 2's replica
    nodes.kill(n1);
    let r2 = cluster.replicas[1].id.clone();
    let out = n2.dtr(&["backup", "--existing-replica-id", &r2], &[]);
    assert!(
        out.status.success(),
        "backup failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("backup.tar");
    std::fs::write(&file, &out.stdout).unwrap();

    // everything destroyed, each replica on its own node
    nodes.start(n1);
    for r in &cluster.replicas {
        let out = nodes
            .node(&r.node)
            .dtr(&["destroy", "--replica-id", &r.id], &[]);
        assert!(
            out.status.success(),
            "destroy on {}:\n{}",
            r.node,
            text(&out)
        );
    }

    // restored onto node 3, with no storage flag: the backup's bucket
    let restored = NodeReplica::new(n3);
    let mut args = vec![
        "restore".to_string(),
        "--ucp-node".into(),
        "node3".into(),
        "--replica-id".into(),
        restored.id.clone(),
    ];
    args.extend(restored.ports());
    let out = dtr_command(&strs(&args))
        .env("DOCKER_HOST", &n3.host)
        .stdin(std::fs::File::open(&file).unwrap())
        .output()
        .unwrap();
    let log = text(&out);
    assert!(out.status.success(), "restore failed:\n{log}");
    assert!(
        log.contains(&format!("images: {}, as the backup recorded", s3.describe)),
        "{log}"
    );
    cluster.replicas = vec![restored];
    for node in [n1, n2] {
        cluster.join_ok(node);
    }
    let _balancer = cluster.balancer(lb);
    assert_eq!(n3.external_ca(&cluster.replicas[0].id), ca_before);
    client.docker(&["rmi", &image, &signed], &[]);
    let pulled = client.docker_ok(&["pull", &image], &[]);
    assert!(pulled.contains(&digest), "{pulled}");
    client.docker_ok(&["pull", &signed], &crate::common::registry::TRUST);
    let status = cluster.status(n2);
    assert_eq!(
        status["replicas"].as_object().unwrap().len(),
        3,
        "{status:#}"
    );
}

/// `dtr <args>` from this machine through the MKE stand-in in front of the three nodes (no
/// engine of its own: DOCKER_HOST points nowhere).
fn via_mke(mke: &MkeStandIn, args: &[String]) -> std::process::Output {
    let ca = mke.ca_pem();
    let mut all = args.to_vec();
    all.extend(["--ucp-url".into(), mke.url(), "--ucp-username".into()]);
    all.extend([mke.username().to_string(), "--ucp-ca".into(), ca]);
    dtr(
        &strs(&all),
        &[
            ("UCP_PASSWORD", mke.password()),
            ("DTR_ADMIN_PASSWORD", admin_password()),
            ("DOCKER_HOST", "unix:///nonexistent/docker.sock"),
        ],
    )
}

/// The version label of every DTR container of replica `r` on its node.
fn versions_of(node: &Node, r: &NodeReplica) -> Vec<String> {
    node.containers(&format!("label=com.docker.dtr.replica={}", r.id))
        .iter()
        .map(|c| {
            node.docker_ok(&[
                "inspect",
                "-f",
                "{{index .Config.Labels \"com.docker.dtr.version\"}}",
                c,
            ])
        })
        .collect()
}

/// Through MKE every command runs from this machine against one endpoint: install on node 1,
/// joins on nodes 2 and 3 (each create placed on the node `--ucp-node` names), backup, a
/// rolling upgrade to the next version with pulls going on through the balancer, destroy.
#[test]
fn through_mke_install_join_backup_upgrade_and_destroy_land_on_the_nodes_they_name() {
    let Some(nodes) = Nodes::get() else { return };
    let next = include_str!("upgrade-version").trim();
    let mke = MkeStandIn::start(MkeOptions {
        nodes: nodes.mke_engines(),
        ..Default::default()
    });
    let lb = free_port();
    let authority = format!("127.0.0.1:{lb}");
    let n1 = nodes.node("node1");
    let first = NodeReplica::new(n1);
    let mut args: Vec<String> = ["install", "--ucp-node", "node1", "--replica-id", &first.id]
        .map(String::from)
        .to_vec();
    args.extend(["--dtr-external-url".into(), authority.clone()]);
    args.extend(first.ports());
    let out = via_mke(&mke, &args);
    assert!(out.status.success(), "install through MKE:\n{}", text(&out));
    let ca_pem = n1.external_ca(&first.id);
    let mut cluster = NodeCluster {
        nodes: &nodes,
        replicas: vec![first],
        ca_pem,
        authority: authority.clone(),
    };
    let Some(_s3) = cluster.use_s3() else { return };
    for name in ["node2", "node3"] {
        let r = NodeReplica::new(nodes.node(name));
        let mut args: Vec<String> = ["join", "--ucp-node", name, "--replica-id", &r.id]
            .map(String::from)
            .to_vec();
        args.extend(["--existing-replica-id".into(), cluster.first().id.clone()]);
        args.extend(r.ports());
        let out = via_mke(&mke, &args);
        assert!(
            out.status.success(),
            "join on {name} through MKE:\n{}",
            text(&out)
        );
        cluster.replicas.push(r);
    }
    // each replica's eight containers on its own node, and nowhere else
    for r in &cluster.replicas {
        for node in nodes.iter() {
            let here = node.containers(&format!("label=com.docker.dtr.replica={}", r.id));
            let want = if node.name == r.node { 8 } else { 0 };
            assert_eq!(
                here.len(),
                want,
                "replica {} on {}: {here:?}",
                r.id,
                node.name
            );
        }
    }
    let out = via_mke(&mke, &["status".into(), "--json".into()]);
    let status: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    assert_eq!(
        status["etcd"].as_array().map(Vec::len),
        Some(3),
        "{}",
        text(&out)
    );

    // backup through MKE: an archive on stdout
    let out = via_mke(
        &mke,
        &[
            "backup".into(),
            "--existing-replica-id".into(),
            cluster.first().id.clone(),
        ],
    );
    assert!(
        out.status.success(),
        "backup through MKE:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stdout.len() > 1024,
        "a backup of {} bytes",
        out.stdout.len()
    );

    // the next version's bootstrapper upgrades every replica on its node while pulls go on
    let _balancer = cluster.balancer(lb);
    let client = cluster.client(&authority);
    client.login_ok("admin", admin_password());
    let image = client.make_image("admin/app:1", 256 * 1024);
    let digest = client.push(&image);
    let puller = Puller::start(
        &authority,
        cluster.ca_file(),
        "admin/app",
        "1",
        ("admin", admin_password()),
    );
    puller.wait_for_pulls(5, Duration::from_secs(60));
    let placed_before = mke.created_on().len();
    let out = mke.upgrade_from_image(next, &cluster.first().id);
    assert!(out.status.success(), "upgrade through MKE:\n{}", text(&out));
    puller.wait_for_pulls(5, Duration::from_secs(60));
    let stats = puller.finish();
    eprintln!(
        "upgrade of three replicas on three nodes through MKE: {} pulls, {} failed, longest outage {:.1}s",
        stats.pulls,
        stats.failed.len(),
        stats.longest_outage.as_secs_f64()
    );
    assert!(stats.failed.is_empty(), "pulls failed: {:?}", stats.failed);
    for r in &cluster.replicas {
        let node = nodes.node(&r.node);
        let versions = versions_of(node, r);
        assert_eq!(versions.len(), 8, "replica {} on {}", r.id, r.node);
        assert!(
            versions.iter().all(|v| v == next),
            "replica {}: {versions:?}",
            r.id
        );
    }
    for (container, node) in &mke.created_on()[placed_before..] {
        if let Some(r) = cluster.replicas.iter().find(|r| container.ends_with(&r.id)) {
            assert_eq!(node, &r.node, "{container}");
        }
    }
    client.docker(&["rmi", &image], &[]);
    let pulled = client.docker_ok(&["pull", &image], &[]);
    assert!(pulled.contains(&digest), "{pulled}");

    // destroy through MKE, each replica by its id
    for r in &cluster.replicas {
        let out = via_mke(
            &mke,
            &["destroy".into(), "--replica-id".into(), r.id.clone()],
        );
        assert!(
            out.status.success(),
            "destroy of {} through MKE:\n{}",
            r.id,
            text(&out)
        );
    }
    cluster.replicas.truncate(1);
    let left: Vec<String> = nodes.iter().flat_map(dtr_objects).collect();
    assert!(left.is_empty(), "left after destroy: {left:?}");
}

/// `POST /api/v0/repositories/admin` with `body`, as the administrator, from inside the nginx
/// container `nginx` on `node` (its own replica, whatever the network between the nodes does);
/// curl's `%{http_code}` on stdout.
fn create_repository_inside(node: &Node, nginx: &str, body: &str) -> std::process::Output {
    let auth = format!("admin:{}", admin_password());
    node.docker(&[
        "exec",
        nginx,
        "curl",
        "-sk",
        "-m",
        "30",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "-u",
        &auth,
        "-H",
        "Content-Type: application/json",
        "-X",
        "POST",
        "--data",
        body,
        "https://localhost:8443/api/v0/repositories/admin",
    ])
}
