//! The MKE/UCP target, against the MKE stand-in of tests/common/mke.rs (login, CA, token-checked
//! Docker API in front of the real engine, classic-Swarm placement): install and destroy go
//! through it and nothing else (the local socket is hidden from the bootstrapper), and each way
//! of failing to use MKE says what went wrong, creates nothing, and reaches no further than it
//! should; at a terminal only the missing password is asked and progress is drawn. What the
//! stand-in models: docs/testing-mke-standin.md.

use std::process::Output;

use crate::common::http::Api;
use crate::common::mke::{MkeOptions, MkeStandIn};
use crate::common::*;

/// The node name MKE knows this engine's node by.
fn node() -> String {
    docker_ok(&["info", "-f", "{{.Name}}"])
}

/// `dtr <args>` that can reach the engine only through MKE: DOCKER_HOST points nowhere.
fn dtr_via(mke: &MkeStandIn, password: &str, args: &[&str]) -> Output {
    let url = mke.url();
    let mut args = args.to_vec();
    args.extend(["--ucp-url", &url, "--ucp-username", mke.username()]);
    dtr(
        &args,
        &[
            ("UCP_PASSWORD", password),
            ("DOCKER_HOST", "unix:///nonexistent/docker.sock"),
        ],
    )
}

/// `install` of `r` (its id and ports) on `node`, then `extra`.
fn install_args(r: &TestReplica, node: &str, extra: &[&str]) -> Vec<String> {
    let (https, http) = (r.https_port.to_string(), r.http_port.to_string());
    [
        "install",
        "--ucp-node",
        node,
        "--replica-id",
        &r.id,
        "--replica-https-port",
        &https,
        "--replica-http-port",
        &http,
    ]
    .iter()
    .chain(extra)
    .map(|s| s.to_string())
    .collect()
}

/// Every container of `r` was created through MKE's scheduler on `node` (as `placements`, the
/// stand-in's record, shows: under its name or as its `-next` replacement), no create went
/// anywhere else, and each container records the node in its label; MKE removed the constraint.
fn assert_placed(placements: &[(String, Option<String>)], r: &TestReplica, node: &str) {
    for c in COMPONENTS {
        let name = format!("dtr-{c}-{}", r.id);
        assert!(
            placements
                .iter()
                .any(|(n, at)| n.starts_with(&name) && at.as_deref() == Some(node)),
            "{name} not placed on {node}: {placements:?}"
        );
        let labels = docker_ok(&["inspect", "-f", "{{json .Config.Labels}}", &name]);
        let labels: serde_json::Value = serde_json::from_str(&labels).unwrap();
        assert_eq!(labels["com.docker.dtr.node"], node, "{name}");
        let env = docker_ok(&["inspect", "-f", "{{json .Config.Env}}", &name]);
        assert!(
            !env.contains("constraint:"),
            "MKE strips the constraint: {env}"
        );
    }
    assert!(
        placements.iter().all(|(_, n)| n.as_deref() == Some(node)),
        "{placements:?}"
    );
}

/// `destroy` of `r` through `mke` (a login with `--ucp-ca`), which must leave nothing of it.
fn destroy_via(mke: &MkeStandIn, r: &TestReplica) {
    let ca = mke.ca_pem();
    let out = dtr_via(
        mke,
        mke.password(),
        &["destroy", "--replica-id", &r.id, "--ucp-ca", &ca],
    );
    assert!(out.status.success(), "destroy through MKE:\n{}", text(&out));
    assert_eq!(r.containers(), Vec::<String>::new());
    assert_eq!(r.volumes(), Vec::<String>::new());
}

/// Every container and volume of the engine (what "nothing created" is checked against).
fn engine_objects() -> (Vec<String>, Vec<String>) {
    (
        lines(&docker_ok(&["ps", "-aq", "--no-trunc"])),
        lines(&docker_ok(&["volume", "ls", "-q"])),
    )
}

#[test]
fn install_and_destroy_go_through_mke() {
    let Some(_engine) = engine() else { return };
    let mke = MkeStandIn::start(MkeOptions::default());
    let r = TestReplica::new();
    let node = node();
    let ca = mke.ca_pem();
    let args = install_args(&r, &node, &["--ucp-ca", &ca, "--debug"]);
    let out = dtr_via(&mke, mke.password(), &strs(&args));
    let log = text(&out);
    assert!(out.status.success(), "install through MKE failed:\n{log}");
    // the manager warning, with the reason, and the install went on
    assert!(
        log.contains(&format!("node {node} is an MKE manager")) && log.contains("control plane"),
        "{log}"
    );
    assert!(log.contains("preflight: swarm ok, node warn"), "{log}");
    // --debug prints the plan, and neither the password nor its hash
    assert!(log.contains("DEBUG"), "{log}");
    assert!(
        !log.contains(mke.password()),
        "the MKE password was printed:\n{log}"
    );
    assert!(
        !log.contains("$argon2"),
        "a password hash was printed:\n{log}"
    );

    // it works: /_ping through nginx with the cluster's CA
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, r.external_ca()).unwrap();
    let api = Api::new(format!("https://127.0.0.1:{}", r.https_port), &ca_file);
    let ping = api.request("GET", "/_ping").send();
    assert_eq!(ping.status, 200, "{ping}");
    // DTR's first administrator is MKE's: same name, same password (not asked, not given)
    let accounts = |user: &str, password: &str| {
        api.request("GET", "/api/v0/accounts")
            .basic(user, password)
            .send()
            .status
    };
    assert_eq!(accounts(mke.username(), mke.password()), 200);
    assert_eq!(accounts(mke.username(), &generated_secret()), 401);

    // every container went through MKE's scheduler, placed on the node
    let (logins_ok, refused) = mke.logins();
    assert!(
        logins_ok >= 1 && refused == 0,
        "logins {logins_ok}/{refused}"
    );
    assert_eq!(mke.rejected_requests(), 0);
    assert_placed(&mke.placements(), &r, &node);

    // later commands through MKE: a backup (exec in the containers, the dumps streamed back)
    // that verifies, and an upgrade to the same version (the cluster's health read through
    // MKE) that has nothing to do
    let out = dtr_via(
        &mke,
        mke.password(),
        &["backup", "--existing-replica-id", &r.id, "--ucp-ca", &ca],
    );
    assert!(out.status.success(), "backup through MKE:\n{}", text(&out));
    let archive = dir.path().join("backup.tar");
    std::fs::write(&archive, &out.stdout).unwrap();
    let verify = dtr_command(&["backup", "verify"])
        .stdin(std::fs::File::open(&archive).unwrap())
        .output()
        .unwrap();
    assert!(verify.status.success(), "{}", text(&verify));
    let out = dtr_via(
        &mke,
        mke.password(),
        &["upgrade", "--existing-replica-id", &r.id, "--ucp-ca", &ca],
    );
    let log = text(&out);
    assert!(
        out.status.success() && log.contains("nothing to do"),
        "{log}"
    );

    // destroy through MKE too
    destroy_via(&mke, &r);
}

#[test]
fn mke_failures_are_clear_and_create_nothing() {
    let Some(_engine) = engine() else { return };
    let mke = MkeStandIn::start(MkeOptions::default());
    let r = TestReplica::new();
    let node = node();
    let before = engine_objects();
    let with = |extra: &[&str]| install_args(&r, &node, extra);
    let run = |mke: &MkeStandIn, password: &str, args: &[String]| {
        let out = dtr_via(mke, password, &strs(args));
        (out.status.code(), text(&out))
    };
    let ca = mke.ca_pem();

    // wrong password: refused at login, named, exit 3
    let wrong = generated_secret();
    let (code, log) = run(&mke, &wrong, &with(&["--ucp-ca", &ca]));
    assert_eq!(code, Some(3), "{log}");
    assert!(
        log.contains("the login of admin was refused")
            && log.contains("invalid username or password"),
        "{log}"
    );
    assert!(log.contains("--ucp-password"), "says what to check:\n{log}");
    assert!(!log.contains(&wrong), "{log}");
    assert_eq!(mke.logins().1, 1);

    // MKE's certificate without --ucp-ca or --ucp-insecure-tls: not trusted, no login sent
    let logins = mke.logins();
    let (code, log) = run(&mke, mke.password(), &with(&[]));
    assert_eq!(code, Some(3), "{log}");
    assert!(
        log.contains("not trusted") && log.contains("--ucp-ca"),
        "{log}"
    );
    assert_eq!(
        mke.logins(),
        logins,
        "no password may be sent to an unverified MKE"
    );

    // a CA that is not MKE's: not trusted either
    let other = MkeStandIn::start(MkeOptions::default());
    let (code, log) = run(&mke, mke.password(), &with(&["--ucp-ca", &other.ca_pem()]));
    assert_eq!(code, Some(3), "{log}");
    assert!(
        log.contains("not trusted by the CA given with --ucp-ca"),
        "{log}"
    );
    assert_eq!(mke.logins(), logins);

    // a token MKE does not honour: the Docker API refuses it, nothing is forwarded
    let expiring = MkeStandIn::start(MkeOptions {
        expire_tokens: true,
        ..Default::default()
    });
    let (code, log) = run(
        &expiring,
        expiring.password(),
        &with(&["--ucp-ca", &expiring.ca_pem()]),
    );
    assert_eq!(code, Some(3), "{log}");
    assert!(log.contains("refused the session token"), "{log}");
    assert!(expiring.rejected_requests() >= 1);
    assert_eq!(expiring.forwarded_requests(), 0);

    // --ucp-insecure-tls: warned, then the login and the checks go ahead; MKE's scheduler
    // refusing the node is a named preflight failure with the admin setting to change
    let strict = MkeStandIn::start(MkeOptions {
        admins_on_managers: false,
        ..Default::default()
    });
    let (code, log) = run(&strict, strict.password(), &with(&["--ucp-insecure-tls"]));
    assert_eq!(code, Some(3), "{log}");
    assert!(
        log.contains("--ucp-insecure-tls: MKE's certificate is not verified"),
        "{log}"
    );
    assert!(log.contains("[scheduling]"), "{log}");
    assert!(
        log.contains("Allow administrators to deploy containers on MKE managers"),
        "{log}"
    );
    assert!(strict.placements().is_empty());

    // none of it created anything
    assert_eq!(engine_objects(), before, "objects were created");
    assert_eq!(r.containers(), Vec::<String>::new());
}

/// The issue's own example at a terminal: every value given but the MKE password, which is
/// asked for (hidden) and nothing else; progress is drawn (spinners with elapsed time and what
/// is waited on), and the install goes through MKE to the end.
#[test]
fn at_a_terminal_only_the_password_is_asked_and_progress_is_drawn() {
    let Some(_engine) = engine() else { return };
    let mke = MkeStandIn::start(MkeOptions::default());
    let r = TestReplica::new();
    let node = node();
    let ca = mke.ca_pem();
    let mut cmd = dtr_command(&strs(&install_args(&r, &node, &[])));
    cmd.args(["--ucp-url", &mke.url(), "--ucp-username", mke.username()])
        .args(["--ucp-ca", &ca])
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .env("TERM", "xterm")
        .env_remove("NO_COLOR");
    let mut p = rexpect::session::spawn_command(cmd, Some(180_000)).expect("spawn in a pty");
    let before = p
        .exp_string("ucp-password: ")
        .expect("the password is asked");
    p.send_line(mke.password()).unwrap();
    let during = p
        .exp_string("Installation is complete")
        .expect("the install completes");
    let rest = p.exp_eof().unwrap_or_default();
    let screen = format!("{before}{during}{rest}");
    for question in [
        "ucp-url (",
        "ucp-username (",
        "Password for the DTR administrator",
    ] {
        assert!(
            !screen.contains(question),
            "{question} was asked:\n{screen}"
        );
    }
    assert!(
        !screen.contains(mke.password()),
        "the password was echoed:\n{screen}"
    );
    // indicatif's spinner line: the step, what it waits for, the elapsed time
    assert!(
        screen.contains("waiting for dtr-") && screen.contains("[0s]"),
        "no progress drawn:\n{screen}"
    );
    // coloured level on a terminal (no NO_COLOR)
    assert!(screen.contains("\u{1b}[36mINFO"), "no colour:\n{screen}");
    destroy_via(&mke, &r);
}

/// A later command that creates containers: the upgrade (the next version's bootstrapper image,
/// run on the host network so that it reaches the stand-in) replaces every container through
/// MKE, and each replacement is placed on the node its replica's containers record.
#[test]
fn an_upgrade_through_mke_places_each_replacement_on_the_replicas_node() {
    let Some(_engine) = engine() else { return };
    let next = include_str!("upgrade-version").trim();
    let mke = MkeStandIn::start(MkeOptions::default());
    let r = TestReplica::new();
    let node = node();
    let ca = mke.ca_pem();
    let args = install_args(&r, &node, &["--ucp-ca", &ca]);
    let out = dtr_via(&mke, mke.password(), &strs(&args));
    assert!(out.status.success(), "install through MKE:\n{}", text(&out));
    let installed = mke.placements().len();

    let out = mke.upgrade_from_image(next, &r.id);
    let log = text(&out);
    assert!(out.status.success(), "upgrade through MKE:\n{log}");

    // every container replaced through MKE on the node; the new version runs
    assert_placed(&mke.placements()[installed..], &r, &node);
    for c in COMPONENTS {
        let container = format!("dtr-{c}-{}", r.id);
        let version = docker_ok(&[
            "inspect",
            "-f",
            "{{index .Config.Labels \"com.docker.dtr.version\"}}",
            &container,
        ]);
        assert_eq!(version, next, "{container}");
    }
    destroy_via(&mke, &r);
}

/// MKE's other way in: a client bundle (DOCKER_HOST=tcp://mke, DOCKER_TLS_VERIFY,
/// DOCKER_CERT_PATH) and no password. dtr recognises MKE by its version and places the
/// containers on the node as it does after a login.
#[test]
fn a_client_bundle_reaches_mke_without_a_login() {
    let Some(_engine) = engine() else { return };
    let mke = MkeStandIn::start(MkeOptions {
        report_as_mke: true,
        ..Default::default()
    });
    let r = TestReplica::new();
    let node = node();
    let bundle = tempfile::tempdir().unwrap();
    mke.write_client_bundle(bundle.path());
    let host = format!("tcp://127.0.0.1:{}", mke.port());
    let cert_path = bundle.path().to_string_lossy().to_string();
    let with_bundle = |args: &[&str]| {
        dtr(
            args,
            &[
                ("DOCKER_HOST", &host),
                ("DOCKER_TLS_VERIFY", "1"),
                ("DOCKER_CERT_PATH", &cert_path),
                ("DTR_ADMIN_PASSWORD", admin_password()),
            ],
        )
    };
    let out = with_bundle(&strs(&install_args(&r, &node, &[])));
    let log = text(&out);
    assert!(out.status.success(), "install with a client bundle:\n{log}");
    assert!(log.contains("(MKE, client bundle)"), "{log}");
    assert!(log.contains("is an MKE manager"), "{log}");
    assert_eq!(mke.logins(), (0, 0), "a client bundle needs no login");
    assert_eq!(mke.rejected_requests(), 0);
    assert_placed(&mke.placements(), &r, &node);
    let out = with_bundle(&["destroy", "--replica-id", &r.id]);
    assert!(
        out.status.success(),
        "destroy with a client bundle:\n{}",
        text(&out)
    );
    assert_eq!(r.containers(), Vec::<String>::new());
}
