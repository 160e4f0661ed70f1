//! What an anonymous client or a guesser can make a replica do, and what its logs give away
//! (docs/security.md): a flood of wrong passwords is bounded in memory and locks the account for
//! a minute, bodies outside /v2/ are small and refused by nginx, HTTPS sends HSTS and refuses CBC
//! suites, no account can take a component's name, the registry's logs hold no notification
//! token, every component runs under memory and process limits, the first administrator's hash
//! is gone after install, tokens name exactly what was decided (notary has its own audience),
//! a component's certificate opens only its own keys in etcd and no Patroni action, and pulls
//! go on while the replica's etcd is stopped.

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

/// The claims of a JWT (not verified: the test only reads what the api put in).
fn claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).unwrap();
    let bytes = data_encoding::BASE64URL_NOPAD
        .decode(payload.as_bytes())
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
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

    // the first administrator's hash went once the api had made the account
    let vol = format!("dtr-ca-{}:/ca:ro", reg.replica.id);
    let image = format!("registry/dtr:{}", dtr_core::version::VERSION);
    let handover = docker(&[
        "run",
        "--rm",
        "-v",
        &vol,
        "--entrypoint",
        "test",
        &image,
        "-e",
        "/ca/api/admin.json",
    ]);
    assert!(
        !handover.status.success(),
        "/ca/api/admin.json is still in the dtr-ca volume"
    );

    // limits and no privileges: every capability dropped, no-new-privileges but where the
    // jobrunner's setuid registry binary needs it, read-only root file systems, no setuid
    // program in the api
    for container in reg.replica.containers() {
        let host = docker_ok(&["inspect", "-f", "{{json .HostConfig}}", &container]);
        let host: Value = serde_json::from_str(&host).unwrap();
        assert!(
            host["Memory"].as_u64().unwrap_or(0) > 0,
            "{container}: no memory limit"
        );
        assert!(
            host["PidsLimit"].as_i64().unwrap_or(0) > 0,
            "{container}: no pids limit"
        );
        assert_eq!(host["CapDrop"], serde_json::json!(["ALL"]), "{container}");
        let no_new = host["SecurityOpt"]
            .as_array()
            .is_some_and(|o| o.iter().any(|x| x == "no-new-privileges:true"));
        assert_eq!(
            no_new,
            !container.starts_with("dtr-jobrunner-"),
            "{container}: {host}"
        );
        // a read-only root file system, but for etcd and the database (restore copies into
        // them); what the others write goes to their tmpfs
        let read_only =
            !container.starts_with("dtr-etcd-") && !container.starts_with("dtr-rethinkdb-");
        assert_eq!(
            host["ReadonlyRootfs"].as_bool().unwrap_or(false),
            read_only,
            "{container}: {host}"
        );
        // the CA key is in no component, not even for root in it
        let key_dir = docker_ok(&["exec", "-u", "0", &container, "ls", "-A", "/ca/root"]);
        assert_eq!(key_dir.trim(), "", "{container} sees the CA key directory");
        if read_only {
            let root = docker(&["exec", &container, "touch", "/dtr-written"]);
            assert!(
                String::from_utf8_lossy(&root.stderr).contains("Read-only file system"),
                "{container}: the root file system took a write"
            );
            docker_ok(&[
                "exec",
                &container,
                "sh",
                "-c",
                "touch /run/dtr/x /tmp/x && rm /run/dtr/x /tmp/x",
            ]);
        }
    }
    // the key is still in the volume, for phase 2 and the bootstrapper's helpers
    let key = docker(&[
        "run",
        "--rm",
        "-v",
        &vol,
        "--entrypoint",
        "test",
        &image,
        "-s",
        "/ca/root/ca-key.pem",
    ]);
    assert!(key.status.success(), "the CA key left the dtr-ca volume");
    // (as root in the container; without capabilities a directory it cannot read is skipped)
    let setuid = docker(&[
        "exec", "-u", "0", &api, "find", "/", "-xdev", "-perm", "/6000", "-type", "f",
    ]);
    let setuid = String::from_utf8_lossy(&setuid.stdout);
    assert_eq!(setuid.trim(), "", "setuid or setgid programs in the api");

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

    // 250 push tokens at once: one password check, at most 16 database connections of the
    // api's own, every one answered; notary and the jobrunner unaffected
    let burst = at_once(
        &reg,
        &format!("https://{a}/auth/token?service={a}&scope=repository:admin/burst:push,pull"),
        &format!("admin:{}", admin_password()),
        250,
    );
    assert_eq!(count(&burst, 200), 250, "{burst:?}");
    let ping = reg.client().request("GET", "/_ping").send();
    assert_eq!(ping.status, 200, "{ping}");

    // a registry token names exactly the repository decided on; notary's GUNs need notary's
    // own audience, which the registry does not accept
    let (code, answer) = reg.api(
        "POST",
        "/api/v0/accounts",
        reg.admin(),
        Some(r#"{"name":"alice","password":"alice-password"}"#),
    );
    assert_eq!(code, 201, "{answer}");
    let alice = ("alice", "alice-password");
    let client = reg.client();
    let notary = format!("{a}-notary");
    // a GUN asked of the registry's service (what the docker CLI's notary client does) gets a
    // token for notary's audience; beside a registry name it gets nothing
    let (_, jwt) = token_grants(
        &client,
        &a,
        alice,
        &format!("repository:{a}/alice/x:push,pull"),
    );
    assert_eq!(claims(&jwt)["aud"], Value::from(format!("{a}-notary")));
    let (mixed, _) = token_grants(
        &client,
        &a,
        alice,
        &format!("repository:alice/x:push,pull&scope=repository:{a}/alice/x:push"),
    );
    assert_eq!(
        mixed[0]["actions"],
        serde_json::json!(["pull", "push"]),
        "{mixed:?}"
    );
    assert_eq!(
        mixed[1]["actions"],
        serde_json::json!([]),
        "a GUN beside a registry name: {mixed:?}"
    );
    let (own, _) = token_grants(&client, &a, alice, "repository:alice/x:push,pull");
    assert_eq!(
        own[0]["actions"],
        serde_json::json!(["pull", "push"]),
        "{own:?}"
    );
    let (gun, _) = token_grants(
        &client,
        &notary,
        alice,
        &format!("repository:{a}/alice/x:push,pull"),
    );
    assert_eq!(
        gun[0]["actions"],
        serde_json::json!(["pull", "push"]),
        "{gun:?}"
    );
    let (plain, notary_jwt) = token_grants(&client, &notary, alice, "repository:alice/x:push,pull");
    assert!(
        plain[0]["actions"].as_array().is_some_and(|x| x.is_empty()),
        "notary's audience granted a registry name: {plain:?}"
    );
    // nginx lets only <namespace>/<repository> paths reach the registry
    let raw = client
        .request("POST", &format!("/v2/{a}/alice/x/blobs/uploads/"))
        .header(&format!("Authorization: Bearer {jwt}"))
        .send();
    assert_eq!(raw.status, 404, "{raw}");
    assert_eq!(raw.json()["errors"][0]["code"], "NAME_UNKNOWN", "{raw}");
    // and the registry refuses a token made for notary
    let (_, gun_jwt) = token_grants(
        &client,
        &notary,
        alice,
        &format!("repository:{a}/alice/x:push,pull"),
    );
    for bearer in [gun_jwt, notary_jwt, jwt] {
        let upload = client
            .request("POST", "/v2/alice/x/blobs/uploads/")
            .header(&format!("Authorization: Bearer {bearer}"))
            .send();
        assert_eq!(
            upload.status, 401,
            "the registry took a notary token: {upload}"
        );
    }

    each_component_reaches_only_what_its_certificate_allows(&reg);
    the_jobrunners_collector_cannot_read_the_registrys_secrets(&reg);

    // the token service keeps the settings it read: with this replica's etcd stopped, a pull
    // of a public repository still gets its token
    reg.login_ok("admin", admin_password());
    let image = reg.make_image("admin/pub:1", 256 * 1024);
    reg.push(&image);
    let (code, answer) = reg.api(
        "PATCH",
        "/api/v0/repositories/admin/pub",
        reg.admin(),
        Some(r#"{"visibility":"public"}"#),
    );
    assert_eq!(code, 200, "{answer}");
    a_lost_notification_is_reconciled_once(&reg, &image);
    reg.docker_ok(&["rmi", &image], &[]);
    reg.docker_ok(&["logout", &a], &[]);
    let etcd = format!("dtr-etcd-{}", reg.replica.id);
    docker_ok(&["stop", &etcd]);
    let pulled = reg.docker(&["pull", &image], &[]);
    // and /_ping, which anyone may read, names what fails without internal addresses; so
    // does an administrator's request that needs etcd (503, the details in the api's log)
    let ping = reg.client().request("GET", "/_ping").send();
    let (settings_code, settings) = reg.api("GET", "/api/v0/meta/settings", reg.admin(), None);
    docker_ok(&["start", &etcd]);
    assert_eq!(settings_code, 503, "{settings}");
    assert_eq!(settings["errors"][0]["code"], "UNAVAILABLE", "{settings}");
    for internal in ["dtr-etcd", "https://", ":2379"] {
        assert!(
            !settings.to_string().contains(internal),
            "a 503 shows {internal}: {settings}"
        );
    }
    assert!(
        pulled.status.success(),
        "pull without etcd: {}",
        text(&pulled)
    );
    assert_eq!(ping.status, 503, "{ping}");
    assert_eq!(ping.json()["Components"]["etcd"], "unhealthy", "{ping}");
    for internal in ["dtr-etcd", "https://", ":2379"] {
        assert!(
            !ping.text().contains(internal),
            "/_ping shows {internal}: {ping}"
        );
    }
    wait_until("etcd to be healthy again", Duration::from_secs(60), || {
        docker_ok(&["inspect", "-f", "{{.State.Health.Status}}", &etcd]) == "healthy"
    });
}

/// The HTTP status of a `curl` run inside `container` with the certificate `cert` and key
/// `key` of its dtr-ca volume ("000" when the TLS connection was refused).
fn status_as(container: &str, cert: &str, key: &str, curl_args: &str) -> String {
    let script = format!(
        "curl -sS --noproxy '*' -m 10 -o /dev/null -w '%{{http_code}}' --cacert /ca/ca.pem \
         --cert /ca/{cert} --key /ca/{key} {curl_args}; true"
    );
    docker_ok(&["exec", container, "sh", "-c", &script])
        .trim()
        .to_string()
}

/// The same with `component`'s own certificate.
fn status_from(container: &str, component: &str, curl_args: &str) -> String {
    status_as(
        container,
        &format!("{component}/cert.pem"),
        &format!("{component}/key.pem"),
        curl_args,
    )
}

/// Finding 2 of issue 18: nginx's certificate neither reads nor writes etcd, nor drives
/// Patroni, nor calls notary-signer; the api's reaches its settings but not Patroni's keys
/// (dtr-core `contract::etcd_access`); the notary-server's signer certificate calls the signer.
fn each_component_reaches_only_what_its_certificate_allows(reg: &Registry) {
    let id = &reg.replica.id;
    let (nginx, api) = (format!("dtr-nginx-{id}"), format!("dtr-api-{id}"));
    let etcd = format!("https://dtr-etcd-{id}:2379/v3/kv");
    let b64 = |s: &str| data_encoding::BASE64.encode(s.as_bytes());
    let put = |key: &str| {
        format!(
            "-X POST {etcd}/put -d '{{\"key\":\"{}\",\"value\":\"{}\"}}'",
            b64(key),
            b64("{}")
        )
    };
    let range = |key: &str| format!("-X POST {etcd}/range -d '{{\"key\":\"{}\"}}'", b64(key));
    // (absent until an administrator changes a setting)
    let settings_before = etcdctl_get(reg, "/dtr/settings");

    assert_eq!(status_from(&nginx, "nginx", &put("/dtr/settings")), "403");
    assert_eq!(status_from(&nginx, "nginx", &range("/dtr/settings")), "403");
    assert_eq!(
        status_from(&api, "api", &put("/dtr/patroni/dtr/leader")),
        "403"
    );
    assert_eq!(
        status_from(&api, "api", &range("/dtr/patroni/dtr/leader")),
        "403"
    );
    assert_eq!(status_from(&api, "api", &range("/dtr/settings")), "200");
    assert_eq!(etcdctl_get(reg, "/dtr/settings"), settings_before);
    // the api's token-signing key signs documents only: no TLS peer takes it as a client
    let as_token = |args: &str| status_as(&api, "api/token.pem", "api/token-key.pem", args);
    assert_eq!(as_token(&range("/dtr/settings")), "000");

    let restart = format!("-X POST https://dtr-rethinkdb-{id}:8008/restart -d '{{}}'");
    assert_eq!(status_from(&nginx, "nginx", &restart), "403");
    assert_eq!(as_token(&restart), "000");
    let patroni = docker_ok(&[
        "exec",
        &format!("dtr-rethinkdb-{id}"),
        "sh",
        "-c",
        "curl -sS --noproxy '*' --cacert /ca/ca.pem https://127.0.0.1:8008/patroni",
    ]);
    let patroni: Value = serde_json::from_str(&patroni).unwrap();
    assert_eq!(patroni["state"], "running", "Patroni restarted: {patroni}");

    let signer_health = format!(
        "--http2 -H 'content-type: application/grpc' -H 'te: trailers' --data-binary '' \
         https://dtr-notary-signer-{id}:7899/grpc.health.v1.Health/Check"
    );
    assert_eq!(status_from(&nginx, "nginx", &signer_health), "000");
    assert_eq!(status_from(&api, "api", &signer_health), "000");
    assert_eq!(
        status_as(
            &format!("dtr-notary-server-{id}"),
            "notary-server/signer-client.pem",
            "notary-server/signer-client-key.pem",
            &signer_health
        ),
        "200"
    );
}

/// A key's value as the etcd member itself reads it.
fn etcdctl_get(reg: &Registry, key: &str) -> String {
    docker_ok(&[
        "exec",
        &format!("dtr-etcd-{}", reg.replica.id),
        "etcdctl",
        "get",
        "--print-value-only",
        key,
    ])
}

/// Finding 12 of issue 18: the jobrunner's distribution binary is set-user-id to the registry's
/// uid (it deletes blobs as the registry), but the registry's TLS key and notification secret
/// belong to a group only the registry container has: the binary, asked to serve TLS with that
/// key, cannot open it.
fn the_jobrunners_collector_cannot_read_the_registrys_secrets(reg: &Registry) {
    let id = &reg.replica.id;
    let registry = format!("dtr-registry-{id}");
    for secret in ["/ca/registry/key.pem", "/ca/registry/notify-token"] {
        let owner = docker_ok(&["exec", &registry, "stat", "-c", "%u:%g %a", secret]);
        assert_eq!(owner.trim(), "0:10009 640", "{secret}");
    }
    let script = "mkdir -p /tmp/steal && cat > /tmp/steal/config.yml <<'YAML'
version: 0.1
storage:
  filesystem:
    rootdirectory: /tmp/steal
http:
  addr: 127.0.0.1:5999
  tls:
    certificate: /ca/registry/cert.pem
    key: /ca/registry/key.pem
YAML
timeout 5 docker-registry serve /tmp/steal/config.yml 2>&1; rm -rf /tmp/steal; true";
    let out = docker_ok(&["exec", &format!("dtr-jobrunner-{id}"), "sh", "-c", script]);
    assert!(
        out.contains("key.pem: permission denied"),
        "the collector read the registry's key:\n{out}"
    );
}

/// Runs `tagreconcile` and returns its result.
fn reconcile(reg: &Registry) -> Value {
    reg.run_job(r#"{"action":"tagreconcile"}"#, Duration::from_secs(120))["result"].clone()
}

/// `psql` on this replica's `dtr` database.
fn sql(reg: &Registry, query: &str) -> String {
    psql(&reg.replica.id, query)
}

/// Finding 18 of issue 18: a tag whose registry notification was lost (its row is gone, the
/// storage has it) comes back with its digest through `tagreconcile`, audited once; a second
/// run and the registry's notification of the same push again change nothing.
fn a_lost_notification_is_reconciled_once(reg: &Registry, image: &str) {
    let tag = "WHERE t.name = '1' AND r.namespace = 'admin' AND r.name = 'pub'";
    let row =
        format!("SELECT t.digest FROM tags t JOIN repositories r ON r.id = t.repository_id {tag}");
    let pushes = "SELECT count(*) FROM events WHERE action = 'tag.push' AND object = 'admin/pub:1'";
    wait_until("the push's notification", Duration::from_secs(30), || {
        sql(reg, pushes) == "1"
    });
    let digest = sql(reg, &row);
    assert!(digest.starts_with("sha256:"), "{digest}");
    sql(
        reg,
        "DELETE FROM tags t USING repositories r WHERE r.id = t.repository_id \
         AND t.name = '1' AND r.namespace = 'admin' AND r.name = 'pub'",
    );
    assert_eq!(sql(reg, &row), "");

    let first = reconcile(reg);
    assert_eq!(first["added"], 1, "{first}");
    assert_eq!(first["removed"], 0, "{first}");
    assert_eq!(sql(reg, &row), digest);
    let media = format!("SELECT t.media_type, t.size > 0 FROM tags t JOIN repositories r ON r.id = t.repository_id {tag}");
    assert_eq!(
        sql(reg, &media),
        "application/vnd.docker.distribution.manifest.v2+json|t"
    );
    assert_eq!(sql(reg, pushes), "2", "the re-added tag is audited once");
    let again = reconcile(reg);
    assert_eq!(
        (again["added"].clone(), again["removed"].clone()),
        (0.into(), 0.into()),
        "{again}"
    );

    // the same push again: the registry notifies, the tag already has that digest; a push of
    // another tag after it, whose notification comes after (one queue, in order), shows that
    // the first one has been handled
    reg.push(image);
    let marker = reg.make_image("admin/pub:2", 1024);
    reg.push(&marker);
    wait_until(
        "the next push's notification",
        Duration::from_secs(30),
        || {
            sql(
                reg,
                "SELECT count(*) FROM events WHERE action = 'tag.push' AND object = 'admin/pub:2'",
            ) == "1"
        },
    );
    assert_eq!(sql(reg, &row), digest);
    assert_eq!(
        sql(reg, pushes),
        "2",
        "a repeated notification was audited again"
    );
    reg.docker_ok(&["rmi", &marker], &[]);
}
