//! Install and destroy on the real Docker engine (see tests/common for the harness rules: one
//! cluster at a time, random replica ids, high ports, cleanup of exactly what the test made).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use crate::common::http::Request;
use crate::common::*;
use dtr_core::version::VERSION;

fn write_temp(dir: &tempfile::TempDir, name: &str, content: &str) -> std::path::PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, content).unwrap();
    path
}

fn assert_ping_healthy(ca: &std::path::Path, url: &str, replica_id: &str) {
    let resp = Request::get(url).ca(ca).send();
    let body = resp.text();
    assert_eq!(resp.status, 200, "{url}: {resp}");
    let ping: serde_json::Value = serde_json::from_str(&body).expect("/_ping is JSON");
    assert_eq!(ping["Healthy"], true, "{body}");
    assert_eq!(ping["ReplicaID"], replica_id, "{body}");
    assert_eq!(ping["Version"], VERSION, "{body}");
    let components = ping["Components"].as_object().expect("Components");
    for c in COMPONENTS.iter().filter(|c| **c != "nginx") {
        assert_eq!(
            components.get(*c).and_then(|v| v.as_str()),
            Some("OK"),
            "{c} in {body}"
        );
    }
}

fn assert_nothing_left(r: &TestReplica, networks_ours: bool) {
    assert_eq!(r.containers(), Vec::<String>::new(), "containers left");
    assert_eq!(r.volumes(), Vec::<String>::new(), "volumes left");
    if networks_ours {
        for n in ["dtr-ol", "dtr-br"] {
            assert!(
                !docker(&["network", "inspect", n]).status.success(),
                "network {n} left"
            );
        }
    }
}

#[test]
fn install_serves_ping_then_destroy_leaves_nothing() {
    let Some(_engine) = engine() else { return };
    let r = TestReplica::new();
    let out = r.install(&[]);
    let log = text(&out);
    assert!(out.status.success(), "install failed:\n{log}");
    assert!(
        log.contains(&r.id),
        "the output names the replica id:\n{log}"
    );

    // the eight containers, named and labelled per replica, running this version
    let mut names = r.containers();
    names.sort();
    let expected: Vec<String> = COMPONENTS
        .iter()
        .map(|c| format!("dtr-{c}-{}", r.id))
        .collect();
    assert_eq!(names, expected);
    // operators' scripts: replica id = third dash-separated field of dtr-rethinkdb-<id>
    let rethink = names
        .iter()
        .find(|n| n.starts_with("dtr-rethinkdb-"))
        .unwrap();
    assert_eq!(rethink.split('-').nth(2), Some(r.id.as_str()));
    for c in COMPONENTS {
        let name = format!("dtr-{c}-{}", r.id);
        let image = docker_ok(&["inspect", "-f", "{{.Config.Image}}", &name]);
        assert_eq!(image, format!("registry/dtr-{c}:{VERSION}"));
        let labels = docker_ok(&["inspect", "-f", "{{json .Config.Labels}}", &name]);
        let labels: serde_json::Value = serde_json::from_str(&labels).unwrap();
        assert_eq!(labels["com.docker.dtr.component"], c);
        assert_eq!(labels["com.docker.dtr.version"], VERSION);
        let env = docker_ok(&["inspect", "-f", "{{json .Config.Env}}", &name]);
        assert!(
            env.contains(&format!("\"DTR_VERSION={VERSION}\"")),
            "{name}: {env}"
        );
        assert!(
            env.contains(&format!("\"DTR_REPLICA_ID={}\"", r.id)),
            "{name}: {env}"
        );
        assert_eq!(
            docker_ok(&["inspect", "-f", "{{.State.Status}}", &name]),
            "running"
        );
        assert_ne!(
            docker_ok(&["inspect", "-f", "{{.State.Health.Status}}", &name]),
            "unhealthy"
        );
        // no secret on a command line or in the environment
        let config = docker_ok(&["inspect", "-f", "{{json .Config}}", &name]);
        assert!(
            !config.contains("PRIVATE KEY"),
            "{name} config holds a private key"
        );
    }
    let mut volumes = r.volumes();
    volumes.sort();
    let expected: Vec<String> = ["ca", "etcd", "notary", "registry", "rethink"]
        .iter()
        .map(|v| format!("dtr-{v}-{}", r.id))
        .collect();
    assert_eq!(volumes, expected);
    assert_eq!(
        docker_ok(&["network", "inspect", "-f", "{{.Driver}}", "dtr-ol"]),
        "overlay"
    );
    assert_eq!(
        docker_ok(&["network", "inspect", "-f", "{{.Driver}}", "dtr-br"]),
        "bridge"
    );

    // /_ping through nginx on the published HTTPS port, trusted with the cluster CA
    let dir = tempfile::tempdir().unwrap();
    let ca = write_temp(&dir, "ca.pem", &r.external_ca());
    assert_ping_healthy(
        &ca,
        &format!("https://127.0.0.1:{}/_ping", r.https_port),
        &r.id,
    );
    let served_ca = Request::get(format!("https://127.0.0.1:{}/ca", r.https_port))
        .ca(&ca)
        .send();
    assert_eq!(served_ca.status, 200);
    assert_eq!(served_ca.text().trim(), r.external_ca().trim());
    let plain = Request::get(format!("http://127.0.0.1:{}/v2/", r.http_port))
        .ca(&ca)
        .send();
    assert_eq!(plain.status, 301, "plain HTTP redirects to HTTPS");

    // a second install on the same engine is refused before anything is created
    let second = TestReplica::new();
    let out = second.install(&[]);
    let log = text(&out);
    assert_eq!(out.status.code(), Some(3), "{log}");
    assert!(
        log.contains(&r.id) && log.contains("join"),
        "names the existing replica and the way out:\n{log}"
    );
    assert_eq!(second.containers(), Vec::<String>::new());
    assert_eq!(second.volumes(), Vec::<String>::new());

    // an upgrade to the version the cluster already runs has nothing to do
    let out = dtr(&["upgrade", "--existing-replica-id", &r.id], &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("nothing to do"), "{}", text(&out));

    // destroy removes all of it
    r.destroy();
    assert_nothing_left(&r, true);
}

#[test]
fn install_from_the_image_with_the_users_certificate() {
    let Some(_engine) = engine() else { return };
    let r = TestReplica::new();
    let ca = dtr_core::pki::generate_ca("user test CA").unwrap();
    let leaf = dtr_core::pki::issue(
        &ca.cert_pem,
        &ca.key_pem,
        "registry.test",
        &["registry.test".into(), "127.0.0.1".into()],
        dtr_core::pki::Usage::Server,
    )
    .unwrap();
    let image = format!("registry/dtr:{VERSION}");
    let external = format!("registry.test:{}", r.https_port);
    // certificates as env var contents (DTR_CERT, DTR_KEY, DTR_CA), the CI-script way
    let out = Command::new("docker")
        .args([
            "run",
            "--rm",
            "-v",
            "/var/run/docker.sock:/var/run/docker.sock",
        ])
        .args([
            "-e",
            "DTR_CERT",
            "-e",
            "DTR_KEY",
            "-e",
            "DTR_CA",
            "-e",
            "DTR_ADMIN_PASSWORD",
        ])
        .env("DTR_ADMIN_PASSWORD", admin_password())
        .env("DTR_CERT", &leaf.cert_pem)
        .env("DTR_KEY", leaf.key_pem.expose())
        .env("DTR_CA", &ca.cert_pem)
        .args([
            &image,
            "install",
            "--replica-id",
            &r.id,
            "--dtr-external-url",
            &external,
        ])
        .args(["--replica-https-port", &r.https_port.to_string()])
        .args(["--replica-http-port", &r.http_port.to_string()])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let log = text(&out);
    assert!(
        out.status.success(),
        "install in a container failed:\n{log}"
    );
    assert!(
        !log.contains("PRIVATE KEY"),
        "the key is never printed:\n{log}"
    );

    let dir = tempfile::tempdir().unwrap();
    let user_ca = write_temp(&dir, "user-ca.pem", &ca.cert_pem);
    let resp = Request::get(format!("https://{external}/_ping"))
        .resolve(&format!("registry.test:{}:127.0.0.1", r.https_port))
        .ca(&user_ca)
        .timeout(10)
        .send();
    assert!(
        resp.failure.is_none(),
        "TLS with the user's certificate: {resp}"
    );
    let ping: serde_json::Value = serde_json::from_slice(&resp.body).unwrap();
    assert_eq!(ping["Healthy"], true);

    let out = Command::new("docker")
        .args([
            "run",
            "--rm",
            "-v",
            "/var/run/docker.sock:/var/run/docker.sock",
            &image,
        ])
        .args(["destroy", "--replica-id", &r.id])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "destroy in a container failed:\n{}",
        text(&out)
    );
    assert_nothing_left(&r, true);
}

#[test]
fn a_taken_https_port_is_refused_before_anything_is_created() {
    let Some(_engine) = engine() else { return };
    let r = TestReplica::new();
    let _taken = std::net::TcpListener::bind(("0.0.0.0", r.https_port)).expect("hold the port");
    let out = r.install(&[]);
    let log = text(&out);
    assert_eq!(out.status.code(), Some(3), "{log}");
    assert!(
        log.contains(&r.https_port.to_string()),
        "names the port:\n{log}"
    );
    assert!(
        log.contains("--replica-https-port"),
        "says which flag to change:\n{log}"
    );
    assert_nothing_left(&r, true);
}

#[test]
fn an_interrupted_install_rolls_back_but_keeps_volumes_it_did_not_make() {
    let Some(_engine) = engine() else { return };
    let r = TestReplica::new();
    // the user prepared the registry volume (that is how a storage driver is chosen)
    let users = UserVolume::create(&format!("dtr-registry-{}", r.id));
    let mut child = dtr_command(&["install", "--replica-id", &r.id])
        .env("DTR_ADMIN_PASSWORD", admin_password())
        .args(["--replica-https-port", &r.https_port.to_string()])
        .args(["--replica-http-port", &r.http_port.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut seen = Vec::new();
    let mut reader = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while reader.read_line(&mut line).unwrap() > 0 {
        seen.push(line.clone());
        if line.contains("start dtr-etcd") {
            break;
        }
        line.clear();
    }
    assert!(
        seen.last().is_some_and(|l| l.contains("start dtr-etcd")),
        "install output:\n{}",
        seen.concat()
    );
    assert!(
        !r.containers().is_empty(),
        "containers exist when etcd starts"
    );
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut reader, &mut rest).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{}{rest}", seen.concat());
    assert!(rest.to_lowercase().contains("interrupted"), "{rest}");
    assert_nothing_left(&r, true);
    assert!(
        users.exists(),
        "the user's volume {} was removed by the rollback",
        users.0
    );
}

/// Networks the test itself made (by id), removed on drop.
struct TestNetworks(Vec<String>);

impl Drop for TestNetworks {
    fn drop(&mut self) {
        for id in &self.0 {
            docker(&["network", "rm", id]);
        }
    }
}

#[test]
fn two_networks_with_our_name_are_reported_before_anything_is_created() {
    let Some(_engine) = engine() else { return };
    if docker(&["network", "inspect", "dtr-br"]).status.success() {
        panic!("a dtr-br network exists already: this test needs an engine without DTR");
    }
    // the engine API (unlike the CLI) lets two creations with one name both succeed
    let mut made = TestNetworks(Vec::new());
    for _ in 0..2 {
        let resp = Request::post("http://localhost/networks/create")
            .unix_socket(std::path::Path::new("/var/run/docker.sock"))
            .json(&serde_json::json!({"Name": "dtr-br"}))
            .send();
        let created: serde_json::Value =
            serde_json::from_slice(&resp.body).expect("network created");
        made.0
            .push(created["Id"].as_str().expect("an id").to_string());
    }
    let r = TestReplica::new();
    let out = r.install(&[]);
    let log = text(&out);
    assert_eq!(out.status.code(), Some(3), "{log}");
    assert!(log.contains("2 networks are named dtr-br"), "{log}");
    assert!(
        log.contains(&made.0[0][..12]) && log.contains(&made.0[1][..12]),
        "names both ids:\n{log}"
    );
    assert_eq!(r.containers(), Vec::<String>::new());
    assert_eq!(r.volumes(), Vec::<String>::new());
}
