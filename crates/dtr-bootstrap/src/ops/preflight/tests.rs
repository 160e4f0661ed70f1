//! Each check on fixtures: the facts a real engine would report, no engine.

use super::*;

fn node(name: &str, role: &str, state: &str) -> NodeInfo {
    NodeInfo {
        id: format!("id-{name}"),
        hostname: name.into(),
        manager: role == "manager",
        state: state.into(),
        addr: Some(format!("10.0.0.{}", name.len())),
        engine_version: Some("20.10.24+dfsg1".into()),
        cpus: Some(4),
        memory_bytes: Some(16 * 1024 * 1024 * 1024),
    }
}

/// A healthy single-node swarm on a plain engine, nothing installed, the probe passed.
fn healthy() -> Facts {
    Facts {
        replica_id: Some(ReplicaId::parse("0123456789ab").unwrap()),
        wanted_node: None,
        http_port: 8080,
        https_port: 8443,
        joining: false,
        engine_host: "unix:///var/run/docker.sock".into(),
        via_mke: false,
        engine: EngineInfo {
            name: "node1".into(),
            server_version: Some("20.10.24+dfsg1".into()),
            swarm_active: true,
            swarm_manager: true,
            node_id: "id-node1".into(),
            node_addr: Some("10.0.0.5".into()),
            cpus: Some(4),
            memory_bytes: Some(16 * 1024 * 1024 * 1024),
        },
        nodes: vec![node("node1", "manager", "ready")],
        replicas: vec![],
        serving: vec![],
        networks: vec![(OVERLAY_NETWORK, vec![]), (BRIDGE_NETWORK, vec![])],
        missing_images: vec![],
        published: vec![],
        probe: Some(Probe::Ran {
            free_disk_bytes: Some(50 * 1024 * 1024 * 1024),
        }),
    }
}

fn failed_checks(facts: &Facts) -> Vec<&'static str> {
    check(facts, &[]).failures.iter().map(|f| f.check).collect()
}

fn warned_checks(facts: &Facts) -> Vec<&'static str> {
    check(facts, &[]).warnings.iter().map(|w| w.0).collect()
}

#[test]
fn a_healthy_engine_passes_every_check() {
    let f = check(&healthy(), &[]);
    assert!(f.failures.is_empty(), "{:?}", f.failures);
    assert!(f.warnings.is_empty(), "{:?}", f.warnings);
    assert!(f.summary().split(", ").all(|s| s.ends_with(" ok")));
    let t = healthy().target();
    assert_eq!(t.node, "node1");
    assert_eq!(t.node_addr.as_deref(), Some("10.0.0.5"));
}

#[test]
fn swarm_needs_an_active_manager() {
    let mut f = healthy();
    f.engine.swarm_active = false;
    f.nodes.clear();
    assert_eq!(failed_checks(&f), ["swarm"]);
    let mut f = healthy();
    f.engine.swarm_manager = false;
    f.nodes.clear();
    let findings = check(&f, &[]);
    assert_eq!(findings.failures[0].check, "swarm");
    assert!(findings.failures[0].problem.contains("worker"));
}

#[test]
fn node_must_exist_be_ready_and_be_this_engines_without_mke() {
    let mut f = healthy();
    f.wanted_node = Some("elsewhere".into());
    let findings = check(&f, &[]);
    assert_eq!(findings.failures[0].check, "node");
    assert!(findings.failures[0]
        .problem
        .contains("not a node of this swarm (nodes: node1)"));

    let mut f = healthy();
    f.nodes[0].state = "down".into();
    assert!(check(&f, &[]).failures[0]
        .problem
        .contains("is down, not ready"));

    let mut f = healthy();
    f.nodes.push(node("node2", "worker", "ready"));
    f.wanted_node = Some("node2".into());
    let findings = check(&f, &[]);
    assert_eq!(failed_checks(&f), ["node"]);
    assert!(findings.failures[0].fix.contains("node2's own engine"));
}

#[test]
fn through_mke_a_node_is_picked_and_a_manager_is_a_warning() {
    let mut f = healthy();
    f.via_mke = true;
    f.engine.node_id = String::new();
    f.nodes = vec![
        node("m1", "manager", "ready"),
        node("w2", "worker", "ready"),
    ];
    let findings = check(&f, &[]);
    assert!(findings.failures.is_empty(), "{:?}", findings.failures);
    assert_eq!(
        findings.notes,
        ["Picking node 'w2' (the first of 1 ready workers; --ucp-node chooses another)"]
    );
    assert_eq!(f.target().node, "w2");

    f.wanted_node = Some("m1".into());
    assert_eq!(warned_checks(&f), ["node"]);

    f.wanted_node = None;
    f.nodes.iter_mut().for_each(|n| n.state = "down".into());
    let findings = check(&f, &[]);
    assert!(findings.failures[0]
        .problem
        .starts_with("MKE has no ready node"));
}

#[test]
fn without_ucp_node_a_ready_worker_is_picked_first() {
    let picked = |nodes: &[NodeInfo]| pick_node(nodes).map(|(n, why)| (n.hostname.clone(), why));
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
fn engine_versions() {
    assert_eq!(parse_engine_version("20.10.24+dfsg1"), Some((20, 10)));
    assert_eq!(parse_engine_version("28.2.2"), Some((28, 2)));
    assert_eq!(parse_engine_version("ucp/3.8.1"), None);
    let mut f = healthy();
    f.nodes[0].engine_version = Some("19.03.15".into());
    assert_eq!(failed_checks(&f), ["engine-version"]);
    f.nodes[0].engine_version = Some("ucp/3.8.1".into());
    assert_eq!(warned_checks(&f), ["engine-version"]);
    f.nodes[0].engine_version = Some("23.0.1".into());
    assert!(failed_checks(&f).is_empty());
}

#[test]
fn an_existing_install_is_refused_and_a_join_needs_a_new_id() {
    let mut f = healthy();
    f.replicas = vec!["aaaaaaaaaaaa".into()];
    f.serving = f.replicas.clone();
    assert_eq!(failed_checks(&f), ["existing-install"]);
    f.joining = true;
    assert!(failed_checks(&f).is_empty());
    // what an interrupted join of the id left: the join clears it
    f.replicas.push("0123456789ab".into());
    assert!(failed_checks(&f).is_empty());
    f.serving.push("0123456789ab".into());
    assert_eq!(failed_checks(&f), ["replica-id"]);
}

#[test]
fn networks_must_be_ours_and_unique() {
    let net = |id: &str, managed| NetworkInfo {
        id: id.into(),
        name: OVERLAY_NETWORK.into(),
        managed,
        local: false,
    };
    let mut f = healthy();
    f.networks[0].1 = vec![net("aaaaaaaaaaaaaaaa", true)];
    assert!(failed_checks(&f).is_empty());
    f.networks[0].1 = vec![net("aaaaaaaaaaaaaaaa", false)];
    assert!(check(&f, &[]).failures[0]
        .problem
        .contains("was not created by dtr"));
    f.networks[0].1 = vec![net("aaaaaaaaaaaaaaaa", true), net("bbbbbbbbbbbbbbbb", true)];
    let findings = check(&f, &[]);
    assert!(findings.failures[0]
        .problem
        .contains("2 networks are named dtr-ol (ids aaaaaaaaaaaa, bbbbbbbbbbbb)"));
}

#[test]
fn through_mke_each_node_has_its_own_bridge_of_the_name() {
    let bridge = |id: &str, managed| NetworkInfo {
        id: id.into(),
        name: BRIDGE_NETWORK.into(),
        managed,
        local: true,
    };
    let mut f = healthy();
    f.networks[1].1 = vec![bridge("aaaaaaaaaaaa", true), bridge("bbbbbbbbbbbb", true)];
    assert_eq!(failed_checks(&f), ["networks"], "one engine, two bridges");
    f.via_mke = true;
    assert!(
        failed_checks(&f).is_empty(),
        "one bridge on each of two nodes"
    );
    f.networks[1].1[1].managed = false;
    assert_eq!(failed_checks(&f), ["networks"], "one of them is not dtr's");
}

#[test]
fn missing_images_are_named_with_the_offline_bundle_as_the_fix() {
    let mut f = healthy();
    f.missing_images = vec!["registry/dtr-api:0.1.0".into()];
    let findings = check(&f, &[]);
    assert_eq!(findings.failures[0].check, "images");
    assert!(findings.failures[0].fix.contains("dtr images load"));
}

#[test]
fn ports_must_differ_and_be_free() {
    let mut f = healthy();
    f.https_port = 8080;
    assert_eq!(failed_checks(&f), ["ports"]);
    let mut f = healthy();
    f.published = vec![(8443, "web".into()), (9999, "other".into())];
    let findings = check(&f, &[]);
    assert_eq!(findings.failures.len(), 1);
    assert_eq!(
        findings.failures[0].problem,
        "host port 8443 is published by container web"
    );
    let mut f = healthy();
    f.probe = Some(Probe::PortInUse(
        "host port 8080 or 8443 is in use on the node".into(),
    ));
    assert_eq!(failed_checks(&f), ["ports"]);
}

#[test]
fn mkes_scheduling_refusal_names_the_admin_setting() {
    let mut f = healthy();
    f.probe = Some(Probe::SchedulingRefused("could not find any nodes".into()));
    let findings = check(&f, &[]);
    assert_eq!(findings.failures[0].check, "scheduling");
    assert!(findings.failures[0]
        .fix
        .contains("Allow administrators to deploy containers"));
}

#[test]
fn small_nodes_are_warnings_only() {
    let mut f = healthy();
    f.nodes[0].cpus = Some(1);
    f.nodes[0].memory_bytes = Some(2 * 1024 * 1024 * 1024);
    f.probe = Some(Probe::Ran {
        free_disk_bytes: Some(1024 * 1024 * 1024),
    });
    let findings = check(&f, &[]);
    assert!(findings.failures.is_empty());
    assert_eq!(findings.warnings.len(), 3, "{:?}", findings.warnings);
    assert!(findings.summary().contains("resources warn"));
    assert_eq!(f.target().mem_total_bytes, 2 * 1024 * 1024 * 1024);
}

#[test]
fn only_the_ignorable_checks_can_be_ignored() {
    assert_eq!(ignorable_names(), ["engine-version", "ports"]);
    assert_eq!(
        ignorable(Some("ports, engine-version,ports")).unwrap(),
        vec!["ports", "engine-version"]
    );
    assert!(ignorable(None).unwrap().is_empty());
    for bad in ["existing-install", "swarm", "no-such-check"] {
        match ignorable(Some(bad)) {
            Err(Error::Input(dtr_core::InputError::InvalidValue { flag, value, .. })) => {
                assert_eq!(flag, "--ignore-preflight-errors");
                assert_eq!(value, bad);
            }
            other => panic!("{bad}: {:?}", other.map(|_| ())),
        }
    }
    // an ignored check's failure is a warning that says so, not a failure
    let mut f = healthy();
    f.https_port = 8080;
    let findings = check(&f, &["ports"]);
    assert!(findings.failures.is_empty());
    assert!(findings
        .warnings
        .iter()
        .any(|(c, w)| *c == "ports" && w.contains("ignored with --ignore-preflight-errors=ports")));
    assert!(findings.summary().contains("ports warn"));
}

#[test]
fn the_summary_names_every_check_and_the_docs_list_them() {
    let s = check(&healthy(), &[]).summary();
    for c in &CHECKS {
        assert!(s.contains(c.name), "{} missing from {s}", c.name);
    }
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/operations/install.md"
    ))
    .expect("read docs/operations/install.md");
    for c in &CHECKS {
        assert!(
            doc.contains(&format!("`{}`", c.name)),
            "docs/operations/install.md does not list the {} check",
            c.name
        );
    }
}

#[test]
fn the_probe_publishes_both_ports_and_reads_the_disk() {
    let spec = probe_spec(&ReplicaId::parse("0123456789ab").unwrap(), 8080, 8443);
    assert_eq!(spec.name, "dtr-preflight-0123456789ab");
    assert_eq!(spec.network, OneShotNetwork::Default);
    assert_eq!(
        spec.ports.iter().map(|p| p.host).collect::<Vec<_>>(),
        [8080, 8443]
    );
    assert_eq!(spec.entrypoint.as_deref().unwrap()[0], "df");
}
