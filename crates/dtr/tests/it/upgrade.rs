//! `dtr upgrade` on the real engine, from this version (the test binary) to the test build of
//! the next minor (`registry/dtr:<tests/upgrade-version>`, made by
//! `scripts/build-images.sh --test-version`, which carries schema migration 5): the migration
//! runs once as a job, clients keep pulling, a killed upgrade is continued by the next run,
//! and a downgrade is refused without touching anything.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common::balancer::Balancer;
use crate::common::http::Request;
use crate::common::pull::Puller;
use crate::common::registry::Registry;
use crate::common::*;

const NEXT: &str = include_str!("upgrade-version");

fn next() -> &'static str {
    NEXT.trim()
}

/// `docker run ... registry/dtr:<next> upgrade --existing-replica-id <id>`, named `name`.
fn upgrade_command(name: &str, existing: &str) -> Command {
    let mut cmd = Command::new("docker");
    cmd.args(["run", "--rm", "--name", name])
        .args(["-v", "/var/run/docker.sock:/var/run/docker.sock"])
        .arg(format!("registry/dtr:{}", next()))
        .args(["upgrade", "--existing-replica-id", existing])
        .stdin(Stdio::null());
    cmd
}

fn upgrade_to_next(existing: &str) -> Output {
    let name = format!("dtr-upgrade-test-{existing}");
    let out = upgrade_command(&name, existing).output().unwrap();
    docker(&["rm", "-f", &name]);
    out
}

/// `name version` of every container of `replica` (all states).
fn containers_of(replica: &str) -> Vec<(String, String)> {
    lines(&docker_ok(&[
        "ps",
        "-a",
        "--filter",
        &format!("label=com.docker.dtr.replica={replica}"),
        "--format",
        "{{.Names}} {{.Label \"com.docker.dtr.version\"}}",
    ]))
    .into_iter()
    .filter_map(|l| {
        l.split_once(' ')
            .map(|(n, v)| (n.to_string(), v.to_string()))
    })
    .collect()
}

/// Whether every one of the replica's eight containers runs `version`, under its own name.
fn on_version(replica: &str, version: &str) -> bool {
    let cs = containers_of(replica);
    cs.len() == 8
        && cs
            .iter()
            .all(|(n, v)| v == version && !n.ends_with("-next") && !n.ends_with("-previous"))
}

/// Ids of every container of the engine, sorted: "untouched" is this list unchanged.
fn all_container_ids() -> Vec<String> {
    let mut ids = lines(&docker_ok(&["ps", "-aq", "--no-trunc"]));
    ids.sort();
    ids
}

/// The migration ran once, as a job, and the schema is the next version's.
fn assert_migrated_once(via: &str) {
    // any member answers reads; the migration is replicated everywhere
    assert_eq!(
        psql(
            via,
            "SELECT count(*) || ' ' || string_agg(status, ',') FROM jobs WHERE action = 'metadatastoremigration'"
        ),
        "1 done"
    );
    assert_eq!(
        psql(
            via,
            "SELECT string_agg(version::text, ',' ORDER BY version) FROM schema_migrations"
        ),
        "1,2,3,4,5"
    );
    assert_eq!(
        psql(
            via,
            "SELECT count(*) FROM pg_indexes WHERE indexname = 'events_at'"
        ),
        "1"
    );
}

fn upgrade_record(via: &str) -> String {
    docker_ok(&[
        "exec",
        &format!("dtr-etcd-{via}"),
        "etcdctl",
        "get",
        "/dtr/upgrade",
        "--print-value-only",
    ])
}

/// The upgrade's own figures (`replica <id>: <s>`), for scripts/bench-upgrade.sh.
fn print_replica_times(log: &str) {
    for line in log
        .lines()
        .filter(|l| l.contains("  replica ") && l.ends_with('s'))
    {
        eprintln!(
            "upgrade figure:{}",
            line.split("INFO").last().unwrap_or(line)
        );
    }
}

#[test]
fn one_replica_upgrades_to_the_next_minor_migrating_once_and_a_downgrade_is_refused() {
    let Some(_engine) = engine() else { return };
    let reg = Registry::install();
    let id = reg.replica.id.clone();
    reg.login_ok("admin", admin_password());
    let image = reg.make_image("admin/app:1", 256 * 1024);
    let digest = reg.push(&image);

    let puller = Puller::start(
        &reg.authority,
        reg.ca.clone(),
        "admin/app",
        "1",
        ("admin", admin_password()),
    );
    // the pulls measured are those around the upgrade: some before it starts, some after it ends
    puller.wait_for_pulls(5, Duration::from_secs(60));
    let started = Instant::now();
    let out = upgrade_to_next(&id);
    let took = started.elapsed();
    let log = text(&out);
    assert!(out.status.success(), "upgrade failed:\n{log}");
    puller.wait_for_pulls(5, Duration::from_secs(60));
    let stats = puller.finish();
    assert!(
        log.contains(&format!(
            "Upgrade from {} to {} is complete",
            dtr_core::version::VERSION,
            next()
        )),
        "{log}"
    );
    assert!(log.contains("schema migrated from version 4 to 5"), "{log}");
    // measured, not asserted: timings belong in scripts/bench-upgrade.sh
    eprintln!(
        "single-replica upgrade in {:.1}s: {} pulls, {} failed, longest outage {:.1}s; failures: {:?}",
        took.as_secs_f64(),
        stats.pulls,
        stats.failed.len(),
        stats.longest_outage.as_secs_f64(),
        stats.failed
    );
    assert!(stats.pulls > 10, "{stats:?}");
    print_replica_times(&log);

    assert!(on_version(&id, next()), "{:?}", containers_of(&id));
    assert_migrated_once(&id);
    assert_eq!(upgrade_record(&id), "");
    // the data is there: the same image, the repository through the new api
    let (code, repos) = reg.api("GET", "/api/v0/repositories", reg.admin(), None);
    assert_eq!(code, 200, "{repos}");
    assert!(repos.to_string().contains("\"app\""), "{repos}");
    reg.docker_ok(&["rmi", &image], &[]);
    let pulled = reg.docker_ok(&["pull", &image], &[]);
    assert!(pulled.contains(&digest), "{pulled}");

    // again: nothing to do
    let out = upgrade_to_next(&id);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("nothing to do"), "{}", text(&out));

    // back to this version: a downgrade, refused, nothing touched
    let before = all_container_ids();
    let out = dtr(&["upgrade", "--existing-replica-id", &id], &[]);
    assert_eq!(out.status.code(), Some(6), "{}", text(&out));
    assert!(text(&out).contains("nothing was changed"), "{}", text(&out));
    assert_eq!(all_container_ids(), before);
    assert!(on_version(&id, next()));
}

#[test]
fn three_replicas_upgrade_behind_a_balancer_without_a_failed_pull_and_a_killed_upgrade_is_continued(
) {
    let Some(_engine) = engine() else { return };
    let lb_port = free_port();
    let lb = format!("127.0.0.1:{lb_port}");
    let first = TestReplica::new();
    let out = first.install(&["--dtr-external-url", &lb]);
    assert!(out.status.success(), "install failed:\n{}", text(&out));
    // pushes go to the first replica directly (its certificate is the cluster's, for 127.0.0.1)
    let direct = format!("127.0.0.1:{}", first.https_port);
    let reg = Registry::attach(first, &direct);
    let others = Replicas::new(2);
    for r in others.iter() {
        let out = join(r, &reg.replica);
        assert!(out.status.success(), "join failed:\n{}", text(&out));
    }
    let ids: Vec<String> = std::iter::once(reg.replica.id.clone())
        .chain(others.iter().map(|r| r.id.clone()))
        .collect();
    let ports: Vec<u16> = std::iter::once(reg.replica.https_port)
        .chain(others.iter().map(|r| r.https_port))
        .collect();
    let _balancer = Balancer::start(lb_port, &reg.replica, &ports);
    reg.login_ok("admin", admin_password());
    let image = reg.make_image("admin/app:1", 256 * 1024);
    let digest = reg.push(&image);
    let puller = Puller::start(
        &lb,
        reg.ca.clone(),
        "admin/app",
        "1",
        ("admin", admin_password()),
    );
    puller.wait_for_pulls(5, Duration::from_secs(60));

    // the first run is killed once a replica is done
    let name = format!("dtr-upgrade-test-{}", ids[0]);
    let mut first_run = upgrade_command(&name, &ids[0])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until(
        "the first replica to be upgraded",
        Duration::from_secs(600),
        || ids.iter().any(|r| on_version(r, next())),
    );
    docker_ok(&["kill", &name]);
    let _ = first_run.wait();
    let upgraded = ids.iter().filter(|r| on_version(r, next())).count();
    assert!(upgraded < 3, "the kill came too late to test anything");
    assert!(upgrade_record(&ids[0]).contains(next()));

    // the second run continues it
    let out = upgrade_to_next(&ids[0]);
    let log = text(&out);
    assert!(
        out.status.success(),
        "the second upgrade run failed:\n{log}"
    );
    puller.wait_for_pulls(5, Duration::from_secs(60));
    let stats = puller.finish();
    assert!(log.contains("continued from an interrupted run"), "{log}");
    eprintln!(
        "three-replica upgrade behind the balancer: {} pulls, {} failed, longest outage {:.1}s",
        stats.pulls,
        stats.failed.len(),
        stats.longest_outage.as_secs_f64()
    );
    print_replica_times(&log);
    assert!(stats.failed.is_empty(), "pulls failed: {:?}", stats.failed);
    assert!(stats.pulls > 30, "{stats:?}");

    for r in &ids {
        assert!(on_version(r, next()), "{r}: {:?}", containers_of(r));
    }
    assert_migrated_once(&ids[0]);
    assert_eq!(upgrade_record(&ids[0]), "");
    let status = dtr(&["status", "--json"], &[]);
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status["etcd"].as_array().map(Vec::len), Some(3), "{status}");
    reg.docker_ok(&["rmi", &image], &[]);
    let pulled = reg.docker_ok(&["pull", &image], &[]);
    assert!(pulled.contains(&digest), "{pulled}");
}

#[test]
fn reconfigure_moves_the_https_port_and_certificate_of_a_running_replica_and_keeps_the_data() {
    let Some(_engine) = engine() else { return };
    let reg = Registry::install();
    let id = reg.replica.id.clone();
    reg.login_ok("admin", admin_password());
    let image = reg.make_image("admin/app:1", 64 * 1024);
    let digest = reg.push(&image);

    // a certificate of the user's own CA, for the new address
    let port = free_port();
    let authority = format!("127.0.0.1:{port}");
    let ca = dtr_core::pki::generate_ca("test user CA").unwrap();
    let leaf = dtr_core::pki::issue(
        &ca.cert_pem,
        &ca.key_pem,
        "127.0.0.1",
        &["127.0.0.1".to_string(), "localhost".to_string()],
        dtr_core::pki::Usage::Server,
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, pem: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, pem).unwrap();
        path.display().to_string()
    };
    let (cert, key, ca_file) = (
        write("cert.pem", &leaf.cert_pem),
        write("key.pem", leaf.key_pem.expose()),
        write("ca.pem", &ca.cert_pem),
    );
    let before = reg.api("GET", "/api/v0/repositories", reg.admin(), None);

    let out = dtr(
        &[
            "reconfigure",
            "--existing-replica-id",
            &id,
            "--replica-https-port",
            &port.to_string(),
            "--dtr-external-url",
            &authority,
            "--dtr-cert",
            &cert,
            "--dtr-key",
            &key,
            "--dtr-ca",
            &ca_file,
            "--log-level",
            "debug",
        ],
        &[],
    );
    let log = text(&out);
    assert!(out.status.success(), "reconfigure failed:\n{log}");
    assert!(log.contains("Reconfiguration is complete"), "{log}");
    assert!(!log.contains("BEGIN"), "a PEM in the output:\n{log}");

    // the new port serves the new certificate; the old port is closed
    let ping = |ca: &std::path::Path, url: String| Request::get(url).ca(ca).send().status;
    let new_ca = std::path::Path::new(&ca_file);
    let code = ping(new_ca, format!("https://{authority}/_ping"));
    assert_eq!(code, 200);
    let code = ping(&reg.ca, format!("https://{authority}/_ping"));
    assert_ne!(code, 200, "the old CA must not verify the new certificate");
    let code = ping(
        new_ca,
        format!("https://127.0.0.1:{}/_ping", reg.replica.https_port),
    );
    assert_ne!(code, 200, "the old port still answers");

    // the settings say so, the data is intact, and the registry serves it at the new address
    let moved = Registry::attach_client(&authority, &ca.cert_pem);
    let (code, settings) = moved.api("GET", "/api/v0/meta/settings", moved.admin(), None);
    assert_eq!(code, 200, "{settings}");
    assert_eq!(settings["dtrHost"], authority.as_str(), "{settings}");
    assert_eq!(settings["replicaHttpsPort"], port, "{settings}");
    assert_eq!(settings["logLevel"], "debug", "{settings}");
    assert_eq!(
        moved.api("GET", "/api/v0/repositories", moved.admin(), None),
        before
    );
    moved.login_ok("admin", admin_password());
    let name = format!("{authority}/admin/app:1");
    let pulled = moved.docker_ok(&["pull", &name], &[]);
    assert!(pulled.contains(&digest), "{pulled}");
    docker(&["rmi", &name]);
    let running = containers_of(&id);
    assert_eq!(running.len(), 8, "{running:?}");
}
