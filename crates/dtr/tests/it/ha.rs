//! High availability on a real engine (see tests/common for the harness rules): several replicas
//! of one cluster on this engine, each on its own ports. What is checked is in docs/operations/ha.md
//! ("What the tests prove"); the figures (join time, write unavailability) come from
//! scripts/bench-ha.sh, not from here.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common::writer::{AdminApi, Writer};
use crate::common::*;
use serde_json::{json, Value};

/// `dtr remove` of `gone` through `existing`, with the flag spelling given.
fn remove(existing: &TestReplica, flag: &str, gone: &TestReplica) -> Output {
    dtr(
        &[
            "remove",
            "--existing-replica-id",
            &existing.id,
            flag,
            &gone.id,
        ],
        &[],
    )
}

fn status() -> Value {
    let out = dtr(&["status", "--json"], &[]);
    assert!(out.status.success(), "status:\n{}", text(&out));
    serde_json::from_slice(&out.stdout).expect("status JSON")
}

/// The database member that leads, from `dtr status`.
fn db_leader() -> Option<String> {
    status()["db"]
        .as_array()?
        .iter()
        .find(|m| m["role"] == "leader" && m["state"] == "running")
        .and_then(|m| m["name"].as_str().map(str::to_string))
}

fn etcd_member_names(via: &TestReplica) -> Vec<String> {
    let out = docker_ok(&[
        "exec",
        &format!("dtr-etcd-{}", via.id),
        "etcdctl",
        "member",
        "list",
        "-w",
        "json",
    ]);
    let v: Value = serde_json::from_str(&out).unwrap();
    let mut names: Vec<String> = v["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap_or("(unstarted)").to_string())
        .collect();
    names.sort();
    names
}

/// `docker kill` of every container of the replica, the database member first (one at a time:
/// parallel kills and removals on one network can leave Docker 20.10 with phantom endpoints).
fn kill_replica(r: &TestReplica) {
    let mut names = r.containers();
    names.sort_by_key(|n| !n.starts_with("dtr-rethinkdb-"));
    for n in names {
        docker(&["kill", &n]);
    }
}

/// The API of one replica (through the name `vm`, which its certificate has).
fn replica_api(ca: &std::path::Path, r: &TestReplica) -> AdminApi {
    AdminApi(http::Api::new(format!("https://vm:{}", r.https_port), ca))
}

fn install(r: &TestReplica) {
    let out = r.install(&[]);
    assert!(out.status.success(), "install failed:\n{}", text(&out));
}

fn ca_file(dir: &tempfile::TempDir, r: &TestReplica) -> std::path::PathBuf {
    let path = dir.path().join("ca.pem");
    std::fs::write(&path, r.external_ca()).unwrap();
    path
}

#[test]
fn three_replicas_survive_the_primary_dying_and_are_repaired_after_losing_two() {
    let Some(_engine) = engine() else { return };
    let rs = Replicas::new(3);
    install(&rs[0]);
    for r in &rs[1..] {
        let out = join(r, &rs[0]);
        assert!(out.status.success(), "join failed:\n{}", text(&out));
    }
    let dir = tempfile::tempdir().unwrap();
    let ca = ca_file(&dir, &rs[0]);
    let s = status();
    assert_eq!(s["etcd"].as_array().unwrap().len(), 3, "{s}");
    assert!(
        s["etcd"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["healthy"] == true && m["learner"] == false),
        "{s}"
    );

    // a push through one replica is pulled through another (shared storage, shared tokens)
    let repo = registry_round_trip(&dir, &ca, &rs[1], &rs[2]);

    // a replica whose own etcd member is stopped still reads the cluster's settings through
    // the other members (its api learnt their addresses from the member list)
    let own_etcd = format!("dtr-etcd-{}", rs[1].id);
    docker_ok(&["stop", &own_etcd]);
    let (code, settings) = replica_api(&ca, &rs[1]).call("GET", "/api/v0/meta/settings", None, 30);
    docker_ok(&["start", &own_etcd]);
    assert_eq!(
        code, 200,
        "settings without the replica's own etcd: {settings}"
    );
    wait_until(
        "the stopped etcd member to be healthy",
        Duration::from_secs(60),
        || docker_ok(&["inspect", "-f", "{{.State.Health.Status}}", &own_etcd]) == "healthy",
    );

    // kill every container of the replica holding the primary while writes go through another
    let leader = db_leader().expect("a database primary");
    let dead = rs.iter().position(|r| r.id == leader).unwrap();
    let via = (dead + 1) % 3;
    let third = (dead + 2) % 3;
    let writer = Writer::start(replica_api(&ca, &rs[via]), "w");
    writer.wait_for_acks(10, Duration::from_secs(60));
    let killed_at = Instant::now();
    kill_replica(&rs[dead]);
    let killed = writer.since(killed_at);
    wait_until(
        "writes to resume after the primary's replica died",
        Duration::from_secs(90),
        || writer.first_ok_after(killed + 0.5).is_some(),
    );
    // a few more after the recovery, so that the check below covers writes on the new primary
    writer.wait_for_acks(writer.acks() + 5, Duration::from_secs(60));
    let log = writer.finish();
    let acked: Vec<&String> = log
        .iter()
        .filter(|(_, _, c)| *c == 201)
        .map(|(_, n, _)| n)
        .collect();
    assert!(acked.len() >= 10, "too few writes: {log:?}");
    let present = replica_api(&ca, &rs[third]).repositories();
    for name in &acked {
        assert!(
            present.contains(name),
            "acknowledged write {name} is missing"
        );
    }
    // pushes and pulls go on through the survivors
    pull(&dir, &rs[third], &repo);

    // lose the majority: only `via` is left
    kill_replica(&rs[third]);
    let api = replica_api(&ca, &rs[via]);
    let mut attempt = 0;
    wait_until(
        "writes to be refused with a clear status",
        Duration::from_secs(60),
        || {
            attempt += 1;
            let name = format!("refused{attempt}");
            let (code, v) = api.call(
                "POST",
                "/api/v0/repositories/admin",
                Some(json!({"name": name})),
                40,
            );
            code == 503 && v.to_string().contains("DATABASE_READ_ONLY") || {
                eprintln!("write while the majority is lost: {code} {v}");
                false
            }
        },
    );
    assert!(
        api.repositories().contains(acked[0]),
        "reads are still served"
    );

    let out = dtr(
        &["emergency-repair", "--existing-replica-id", &rs[via].id],
        &[],
    );
    assert!(
        !out.status.success(),
        "no terminal and no --yes: must not repair"
    );
    let out = dtr(
        &[
            "emergency-repair",
            "--existing-replica-id",
            &rs[via].id,
            "--yes",
        ],
        &[],
    );
    assert!(
        out.status.success(),
        "emergency-repair failed:\n{}",
        text(&out)
    );
    // the api notices the new primary within a second (a read-only client is rechecked every 250 ms)
    let started = Instant::now();
    let (code, v) = loop {
        let (code, v) = api.call(
            "POST",
            "/api/v0/repositories/admin",
            Some(json!({"name": "after-repair"})),
            30,
        );
        if code == 201 || started.elapsed() > Duration::from_secs(5) {
            break (code, v);
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(code, 201, "write after the repair: {v}");
    let present = api.repositories();
    for name in &acked {
        assert!(
            present.contains(name),
            "acknowledged write {name} lost by the repair"
        );
    }
    assert_eq!(etcd_member_names(&rs[via]), vec![rs[via].id.clone()]);

    // grow back to three with fresh replicas
    let fresh = Replicas::new(2);
    for r in fresh.iter() {
        let out = join(r, &rs[via]);
        assert!(
            out.status.success(),
            "join after repair failed:\n{}",
            text(&out)
        );
    }
    let mut expected = vec![rs[via].id.clone(), fresh[0].id.clone(), fresh[1].id.clone()];
    expected.sort();
    assert_eq!(etcd_member_names(&rs[via]), expected);

    // the stale replicas' containers are started again: they refuse, no second cluster
    let stale: Vec<String> = [&rs[dead], &rs[third]]
        .iter()
        .flat_map(|r| ["etcd", "rethinkdb"].map(|c| format!("dtr-{c}-{}", r.id)))
        .collect();
    for name in &stale {
        docker(&["start", name]);
    }
    for name in &stale {
        assert_keeps_refusing(name);
    }
    let s = status();
    let leaders: Vec<&Value> = s["db"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "leader")
        .collect();
    assert_eq!(leaders.len(), 1, "{s}");
    assert_eq!(etcd_member_names(&rs[via]), expected);
    let (code, _) = api.call(
        "POST",
        "/api/v0/repositories/admin",
        Some(json!({"name": "last"})),
        30,
    );
    assert_eq!(code, 201);
    for r in [&rs[dead], &rs[third]] {
        r.destroy();
    }
}

/// What a component of a replica that emergency-repair cut off says when it is started.
const REFUSAL: &str = "no longer belongs to a cluster";

/// Container `name` (started again by the test) refuses to start, and keeps refusing: its
/// restart policy starts it again and it refuses again, or it stays exited. A single sample
/// cannot tell: between two refusals a restarted container runs for a moment.
fn assert_keeps_refusing(name: &str) {
    // (refusals in its logs, the last lines, "status restarting restart-count")
    let look = || {
        let logs = text(&docker(&["logs", name]));
        let lines: Vec<&str> = logs.lines().collect();
        let tail = &lines[lines.len().saturating_sub(5)..];
        let state = docker_ok(&[
            "inspect",
            "-f",
            "{{.State.Status}} {{.State.Restarting}} {{.RestartCount}}",
            name,
        ]);
        (logs.matches(REFUSAL).count(), tail.join("\n"), state)
    };
    let restarts = |state: &str| -> u64 {
        let count = state.rsplit(' ').next().and_then(|n| n.parse().ok());
        count.expect("a restart count")
    };
    let (refused, at_first) = wait_for(
        &format!("{name} to refuse to start"),
        Duration::from_secs(60),
        || match look() {
            (n, _, state) if n > 0 => Ok((n, restarts(&state))),
            (_, tail, state) => Err(format!("{state}; logs end with:\n{tail}")),
        },
    );
    wait_for(
        &format!("{name} to refuse again or stay exited"),
        Duration::from_secs(120),
        || match look() {
            (_, _, state) if state.starts_with("exited false") => Ok(()),
            (n, _, state) if n > refused && restarts(&state) > at_first => Ok(()),
            (n, tail, state) => Err(format!(
                "{state}, {n} refusals ({refused} after {at_first} restarts at first); \
                 logs end with:\n{tail}"
            )),
        },
    );
    let logs = text(&docker(&["logs", "--tail", "5", name]));
    assert!(logs.contains(REFUSAL), "{name} did not refuse:\n{logs}");
}

/// Trusts the cluster CA for both replicas, logs in, pushes a small image through `a` and
/// pulls it through `b`; returns the image name (on `b`'s authority).
fn registry_round_trip(
    dir: &tempfile::TempDir,
    ca: &std::path::Path,
    a: &TestReplica,
    b: &TestReplica,
) -> String {
    for r in [a, b] {
        let certs = format!("/etc/docker/certs.d/vm:{}", r.https_port);
        std::fs::create_dir_all(&certs).unwrap();
        std::fs::copy(ca, format!("{certs}/ca.crt")).unwrap();
        login(dir, r);
    }
    let name_a = format!("vm:{}/admin/ha:1", a.https_port);
    crate::common::registry::import_image(
        dir.path(),
        &name_a,
        dtr_core::options::ReplicaId::random()
            .to_string()
            .repeat(5000)
            .as_bytes(),
    );
    let push = cli(dir, &["push", &name_a]);
    assert!(
        push.status.success(),
        "push through {}:\n{}",
        a.id,
        text(&push)
    );
    docker(&["rmi", &name_a]);
    let name_b = pull(dir, b, "admin/ha:1");
    docker(&["rmi", &name_b]);
    "admin/ha:1".into()
}

fn pull(dir: &tempfile::TempDir, r: &TestReplica, repo: &str) -> String {
    let name = format!("vm:{}/{repo}", r.https_port);
    let certs = format!("/etc/docker/certs.d/vm:{}", r.https_port);
    if !std::path::Path::new(&certs).exists() {
        std::fs::create_dir_all(&certs).unwrap();
        std::fs::copy(dir.path().join("ca.pem"), format!("{certs}/ca.crt")).unwrap();
        login(dir, r);
    }
    let out = cli(dir, &["pull", &name]);
    assert!(
        out.status.success(),
        "pull through {}:\n{}",
        r.id,
        text(&out)
    );
    docker(&["rmi", &name]);
    name
}

fn cli(dir: &tempfile::TempDir, args: &[&str]) -> Output {
    Command::new("docker")
        .args(args)
        .env("DOCKER_CONFIG", dir.path().join("config"))
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn login(dir: &tempfile::TempDir, r: &TestReplica) {
    use std::io::Write;
    let mut child = Command::new("docker")
        .args([
            "login",
            &format!("vm:{}", r.https_port),
            "-u",
            "admin",
            "--password-stdin",
        ])
        .env("DOCKER_CONFIG", dir.path().join("config"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(admin_password().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "login to {}:\n{}", r.id, text(&out));
}

#[test]
fn remove_keeps_quorum_and_an_interrupted_join_converges() {
    let Some(_engine) = engine() else { return };
    let mut rs = Replicas::new(3);
    // an id of decimal digits only must work too (YAML would read it as a number)
    let decimal = format!(
        "{:012}",
        u64::from_str_radix(&rs[0].id, 16).unwrap() % 1_000_000_000_000
    );
    rs[0].set_id(decimal);
    install(&rs[0]);
    for r in &rs[1..] {
        let out = join(r, &rs[0]);
        assert!(out.status.success(), "join failed:\n{}", text(&out));
    }
    let dir = tempfile::tempdir().unwrap();
    let ca = ca_file(&dir, &rs[0]);

    // one replica dies: removing a healthy one would lose the quorum
    kill_replica(&rs[2]);
    let out = remove(&rs[0], "--replica-ids", &rs[1]);
    assert_eq!(
        out.status.code(),
        Some(6),
        "remove must be refused:\n{}",
        text(&out)
    );
    assert!(text(&out).contains("quorum"), "{}", text(&out));
    assert_eq!(etcd_member_names(&rs[0]).len(), 3, "nothing changed");
    // removing the dead one is fine (the deprecated flag still works)
    let out = remove(&rs[0], "--replica-id", &rs[2]);
    assert!(
        out.status.success(),
        "remove of the dead replica:\n{}",
        text(&out)
    );
    assert!(rs[2].containers().is_empty());

    // removing a healthy standby keeps the cluster writable throughout
    let leader = db_leader().expect("a primary");
    let (stay, go) = if leader == rs[0].id {
        (&rs[0], &rs[1])
    } else {
        (&rs[1], &rs[0])
    };
    let writer = Writer::start(replica_api(&ca, stay), "rm");
    writer.wait_for_acks(5, Duration::from_secs(60));
    let out = remove(stay, "--replica-ids", go);
    assert!(
        out.status.success(),
        "remove of a healthy standby:\n{}",
        text(&out)
    );
    writer.wait_for_acks(writer.acks() + 5, Duration::from_secs(60));
    let log = writer.finish();
    let failed: Vec<_> = log.iter().filter(|(_, _, c)| *c != 201).collect();
    assert!(
        failed.is_empty(),
        "writes failed during the remove: {failed:?}"
    );
    assert_eq!(etcd_member_names(stay), vec![stay.id.clone()]);

    // a join killed right after its etcd member was added converges when run again
    let d = TestReplica::new();
    let mut child = dtr_command(&strs(&join_args(&d, stay)))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until("the new etcd member", Duration::from_secs(120), || {
        etcd_member_names(stay).len() == 2
    });
    child.kill().unwrap();
    let _ = child.wait();
    let out = join(&d, stay);
    assert!(
        out.status.success(),
        "re-run of the interrupted join:\n{}",
        text(&out)
    );
    let mut both = vec![stay.id.clone(), d.id.clone()];
    both.sort();
    assert_eq!(etcd_member_names(stay), both);
    assert!(
        text(&out).contains("3, 5 or 7"),
        "an even count is warned about"
    );
    let out = remove(stay, "--replica-ids", &d);
    assert!(out.status.success(), "remove:\n{}", text(&out));
    assert_eq!(etcd_member_names(stay), vec![stay.id.clone()]);
    assert!(d.containers().is_empty() && d.volumes().is_empty());
}
