//! What an anonymous client or a guesser can make a replica do, and what its logs give away
//! (docs/security.md): a flood of wrong passwords is bounded in memory and locks the account for
//! a minute, bodies outside /v2/ are small and refused by nginx, HTTPS sends HSTS and refuses CBC
//! suites, no account can take a component's name, the registry's logs hold no notification
//! token, and every component runs under memory and process limits.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::registry::*;
use crate::common::*;
use serde_json::Value;

/// The api's login bounds (dtr-server `api::limits`): failures per account within a minute,
/// checks at once.
const ACCOUNT_FAILURES: usize = 10;
const CONCURRENT_CHECKS: usize = 4;
/// What the api's memory may reach while 200 wrong passwords arrive at once: four argon2 checks
/// of 19 MiB and the server itself. Without the bound each request ran one (≈ 3.8 GiB).
const API_PEAK_MIB: u64 = 256;

/// `n` requests at once (`curl --parallel`, one connection each) of `url` with these
/// credentials: the status of each (0 for no answer).
fn at_once(reg: &Registry, url: &str, user_password: &str, n: usize) -> Vec<u16> {
    let config = reg.dir.path().join("flood.curl");
    let entry = format!("url = \"{url}\"\noutput = \"/dev/null\"\n");
    std::fs::write(&config, entry.repeat(n)).unwrap();
    let out = Command::new("curl")
        .args(["-sS", "--noproxy", "*", "--parallel", "--parallel-max"])
        .arg(n.to_string())
        .arg("--cacert")
        .arg(&reg.ca)
        .args([
            "-u",
            user_password,
            "-m",
            "60",
            "-w",
            "%{http_code}\\n",
            "-K",
        ])
        .arg(&config)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().parse().unwrap_or(0))
        .collect()
}

fn count(codes: &[u16], code: u16) -> usize {
    codes.iter().filter(|c| **c == code).count()
}

/// The highest memory use of a container's cgroup so far, in MiB (cgroup v1 or v2).
fn peak_mib(container: &str) -> u64 {
    let out = docker_ok(&[
        "exec",
        container,
        "sh",
        "-c",
        "cat /sys/fs/cgroup/memory/memory.max_usage_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.peak",
    ]);
    out.trim().parse::<u64>().unwrap() / (1024 * 1024)
}

/// `curl` of `/_ping` limited to TLS 1.2 with these suites: whether a handshake succeeded.
fn tls12_with(reg: &Registry, ciphers: &str) -> bool {
    Command::new("curl")
        .args([
            "-sS",
            "--noproxy",
            "*",
            "-o",
            "/dev/null",
            "--tlsv1.2",
            "--tls-max",
            "1.2",
        ])
        .args(["--ciphers", ciphers, "--cacert"])
        .arg(&reg.ca)
        .arg(format!("https://{}/_ping", reg.authority))
        .status()
        .unwrap()
        .success()
}

#[test]
fn a_replica_bounds_logins_small_bodies_and_tls_and_logs_no_token() {
    let Some(_engine) = engine() else { return };
    let reg = Registry::install();
    let a = reg.authority.clone();
    let api = format!("dtr-api-{}", reg.replica.id);

    // 200 wrong passwords at once: a few are checked, the rest wait their turn or find the
    // account locked, and the api's memory stays bounded
    let flood = at_once(
        &reg,
        &format!("https://{a}/auth/token?service={a}&scope=repository:admin/x:pull"),
        "admin:not-the-password",
        200,
    );
    let locked_at = Instant::now();
    assert_eq!(flood.len(), 200, "{flood:?}");
    let (wrong, locked, busy) = (count(&flood, 401), count(&flood, 429), count(&flood, 503));
    assert_eq!(wrong + locked + busy, 200, "other answers: {flood:?}");
    assert!(
        (1..=ACCOUNT_FAILURES + CONCURRENT_CHECKS).contains(&wrong),
        "{wrong} passwords were checked: {flood:?}"
    );
    assert!(locked > 0, "no request found the account locked: {flood:?}");
    let peak = peak_mib(&api);
    assert!(peak < API_PEAK_MIB, "the api reached {peak} MiB");
    // locked: even the right password is refused, with the time to wait
    let resp = reg
        .client()
        .request("GET", "/api/v0/repositories")
        .basic("admin", admin_password())
        .send();
    assert_eq!(resp.status, 429, "{resp}");
    let wait: u64 = resp.header("Retry-After").unwrap().parse().unwrap();
    assert!((1..=61).contains(&wait), "{resp}");
    assert_eq!(resp.json()["errors"][0]["code"], "TOO_MANY_FAILED_LOGINS");

    // meanwhile, the rest of what an outsider meets
    let notify_token = reg.replica.ca_volume_file("registry/notify-token");
    let logs = docker(&["logs", &format!("dtr-registry-{}", reg.replica.id)]);
    let logs = format!(
        "{}{}",
        String::from_utf8_lossy(&logs.stdout),
        String::from_utf8_lossy(&logs.stderr)
    );
    assert!(
        logs.contains("configuring endpoint"),
        "distribution no longer logs its endpoints: the check below proves nothing\n{logs}"
    );
    assert!(
        !logs.contains(notify_token.trim()),
        "the registry's log holds the notification token"
    );

    let big = reg
        .client()
        .request("POST", "/api/v0/repositories/admin")
        .json_bytes(vec![b' '; 1024 * 1024])
        .send();
    assert_eq!(big.status, 413, "{big}");
    assert!(big.text().contains("nginx"), "not refused by nginx: {big}");

    for path in ["/", "/v2/", "/_ping"] {
        let resp = reg.client().request("HEAD", path).send();
        assert_eq!(
            resp.header("Strict-Transport-Security"),
            Some("max-age=31536000"),
            "{path}: {resp}"
        );
    }
    assert!(tls12_with(
        &reg,
        "ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES128-GCM-SHA256"
    ));
    assert!(
        !tls12_with(
            &reg,
            "ECDHE-RSA-AES128-SHA:ECDHE-ECDSA-AES128-SHA:AES128-SHA:AES256-SHA256"
        ),
        "a CBC suite was accepted"
    );

    for container in reg.replica.containers() {
        let limits = docker_ok(&[
            "inspect",
            "-f",
            "{{.HostConfig.Memory}} {{.HostConfig.PidsLimit}}",
            &container,
        ]);
        let (memory, pids) = limits.split_once(' ').unwrap();
        assert!(
            memory.parse::<u64>().unwrap() > 0,
            "{container}: no memory limit"
        );
        assert!(
            pids.parse::<i64>().unwrap() > 0,
            "{container}: no pids limit"
        );
    }

    // once the failures leave the minute's window the right password works again
    wait_until(
        "the administrator's login to work again",
        Duration::from_secs(90),
        || {
            let (code, _) = reg.api("GET", "/api/v0/repositories", reg.admin(), None);
            code == 200
        },
    );
    assert!(
        locked_at.elapsed() >= Duration::from_secs(30),
        "the lock ended early"
    );
    let (code, answer) = reg.api(
        "POST",
        "/api/v0/accounts",
        reg.admin(),
        Some(r#"{"name":"dtr-api","password":"password-1"}"#),
    );
    assert_eq!(code, 400, "{answer}");
    assert_eq!(answer["errors"][0]["code"], Value::from("RESERVED_NAME"));
}
