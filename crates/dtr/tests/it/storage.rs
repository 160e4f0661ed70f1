//! Image storage: a running cluster moved to an object store through the original's API
//! (S3 on SeaweedFS, Swift), refused configurations that change nothing, tags kept only when
//! told, garbage collection on the store, a switch under pull load with no failed pull and an
//! upload begun through one replica finished through another, backup and restore that find
//! the store by themselves, NFS volumes whose failed mount is named, and no credential in any
//! log, `docker inspect`, API answer or error.

use std::time::Duration;

use serde_json::{json, Value};

use crate::common::balancer::Balancer;
use crate::common::http::Request;
use crate::common::pull::Puller;
use crate::common::registry::*;
use crate::common::stores::TestStore;
use crate::common::*;

const SIMPLE: &str = "/api/v0/admin/settings/registry/simple";

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", dtr_core::options::ReplicaId::random())
}

fn put_storage(reg: &Registry, body: Value) -> (u16, Value) {
    reg.client()
        .call("PUT", SIMPLE, Some(("admin", admin_password())), Some(body))
}

fn get_storage(reg: &Registry) -> Value {
    let (code, v) = reg
        .client()
        .call("GET", SIMPLE, Some(("admin", admin_password())), None);
    assert_eq!(code, 200, "{v}");
    v
}

/// Waits until every replica's registry runs storage `generation`.
fn wait_for_generation(reg: &Registry, generation: u64) {
    wait_for(
        &format!("every replica's registry on storage generation {generation}"),
        Duration::from_secs(180),
        || {
            let (code, v) = reg.client().call(
                "GET",
                "/api/v0/admin/settings/registry/status",
                Some(("admin", admin_password())),
                None,
            );
            let replicas = v["replicas"].as_object().cloned().unwrap_or_default();
            if code == 200
                && !replicas.is_empty()
                && replicas
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

/// Copies the blobs and repositories of the replica's volume into `store`, as an operator
/// moving to it would (`aws s3 sync`, `rclone`...).
fn copy_volume_to(replica: &TestReplica, store: &TestStore) -> usize {
    let vol = format!("dtr-registry-{}:/s:ro", replica.id);
    let image = format!("registry/dtr:{}", dtr_core::version::VERSION);
    let out = docker(&[
        "run",
        "--rm",
        "-v",
        &vol,
        "--entrypoint",
        "tar",
        &image,
        "-C",
        "/s",
        "-c",
        "docker",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let mut archive = tar::Archive::new(&out.stdout[..]);
    let mut copied = 0;
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let path = format!("/{}", entry.path().unwrap().display());
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut data).unwrap();
        store.put(&path, data);
        copied += 1;
    }
    copied
}

/// Neither the credential nor anything else secret shows in `docker inspect` or the logs of
/// any container of the replicas.
fn assert_secret_nowhere(replicas: &[&TestReplica], secret: &str) {
    for r in replicas {
        for c in r.containers() {
            let inspect = text(&docker(&["inspect", &c]));
            assert!(
                !inspect.contains(secret),
                "docker inspect {c} shows the credential"
            );
            let logs = text(&docker(&["logs", &c]));
            assert!(
                !logs.contains(secret),
                "docker logs {c} shows the credential"
            );
        }
    }
}

#[test]
fn a_cluster_moves_to_s3_keeping_its_tags_only_when_told_and_bad_configurations_change_nothing() {
    let Some(_engine) = engine() else { return };
    let bucket = unique("dtr");
    let Some(s3) = TestStore::s3(&bucket) else {
        return;
    };
    let reg = Registry::install();
    let admin = reg.admin();
    // short tokens: garbage collection waits for the last write token to expire
    let (code, v) = reg.api(
        "POST",
        "/api/v0/meta/settings",
        admin,
        Some(r#"{"tokenLifetimeSeconds":10}"#),
    );
    assert_eq!(code, 200, "{v}");
    reg.login_ok("admin", admin_password());
    let one = reg.make_image("admin/app:1", 300 * 1024);
    let digest_one = reg.push(&one);
    let before = get_storage(&reg);
    assert_eq!(
        before["storage"]["filesystem"]["rootdirectory"], "/storage",
        "{before}"
    );

    // each bad configuration is refused with its reason, and nothing changes
    let wrong = generated_secret();
    let cases = [
        (
            json!({"gcs": {"bucket": "x"}}),
            400,
            "not built into this registry",
        ),
        (
            s3.with("colour", json!("red")),
            400,
            "unknown field storage.s3.colour",
        ),
        (
            s3.with("regionendpoint", json!("http://127.0.0.1:9")),
            400,
            "is not reachable",
        ),
        (
            s3.with("secretkey", json!(wrong)),
            400,
            "refused the credentials",
        ),
        (
            s3.with("bucket", json!(unique("missing"))),
            400,
            "does not exist",
        ),
    ];
    for (section, status, reason) in cases {
        let (code, v) = put_storage(&reg, json!({"storage": section}));
        assert_eq!(code, status, "{section}: {v}");
        let message = v["errors"][0]["message"].as_str().unwrap_or_default();
        assert!(message.contains(reason), "{section}: {message}");
        assert!(
            !v.to_string().contains(&s3.secret) && !v.to_string().contains(&wrong),
            "{v}"
        );
        assert_eq!(
            get_storage(&reg),
            before,
            "a refused change changed the storage"
        );
    }

    // the empty bucket lacks the content of the tag: refused, with the count and the tag
    let (code, v) = put_storage(&reg, json!({"storage": s3.section}));
    assert_eq!(code, 409, "{v}");
    let message = v["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("1 tag(s)") && message.contains("admin/app:1"),
        "{message}"
    );
    assert_eq!(get_storage(&reg), before);

    // copy the content, then say so
    assert!(copy_volume_to(&reg.replica, &s3) > 3);
    let (code, v) = put_storage(&reg, json!({"storage": s3.section, "keep_metadata": true}));
    assert_eq!(code, 202, "{v}");
    assert_eq!(v["generation"], 1, "{v}");
    assert_eq!(v["storage"]["s3"]["secretkey"], "*****", "{v}");
    wait_for_generation(&reg, 1);
    let shown = get_storage(&reg);
    assert_eq!(shown["storage"]["s3"]["bucket"], bucket.as_str(), "{shown}");
    assert!(!shown.to_string().contains(&s3.secret), "{shown}");
    let yaml = reg
        .client()
        .request("GET", "/api/v0/admin/settings/registry")
        .basic("admin", admin_password())
        .send();
    assert_eq!(yaml.status, 200);
    assert!(
        yaml.text().contains("bucket: ") && !yaml.text().contains(&s3.secret),
        "{}",
        yaml.text()
    );

    // the old tag pulls from S3; a new push lands in the bucket
    reg.docker_ok(&["rmi", &one], &[]);
    let pulled = reg.docker_ok(&["pull", &one], &[]);
    assert!(pulled.contains(&digest_one), "{pulled}");
    let objects_before = s3.objects().len();
    let two = reg.make_image("admin/app:2", 2 * 1024 * 1024);
    reg.push(&two);
    let objects = s3.objects();
    assert!(
        objects.len() > objects_before,
        "the push wrote nothing into the bucket"
    );
    assert!(
        objects
            .iter()
            .any(|(k, size)| k.starts_with("dtr/docker/registry/v2/blobs/")
                && k.ends_with("/data")
                && *size > 2 * 1024 * 1024),
        "the 2 MiB layer is not in the bucket: {objects:?}"
    );
    // audited
    let (_, events) = reg.api("GET", "/api/v0/events?object=storage", admin, None);
    assert!(events.to_string().contains("storage.update"), "{events}");

    // garbage collection on S3 frees the layer of the deleted tag
    let (code, v) = reg.api(
        "DELETE",
        "/api/v0/repositories/admin/app/tags/2",
        admin,
        None,
    );
    assert_eq!(code, 204, "{v}");
    // an upload abandoned 30 days ago and one started now; the registry's own purger is off on
    // an object store (it panics on the `_uploads/` marker this store lists): the job purges
    let uploads = "/docker/registry/v2/repositories/admin/app/_uploads";
    let abandoned = format!("{uploads}/{}", unique("old"));
    let started = time::OffsetDateTime::now_utc() - time::Duration::days(30);
    let at = |t: time::OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .unwrap()
            .into_bytes()
    };
    s3.put(&format!("{abandoned}/startedat"), at(started));
    s3.put(&format!("{abandoned}/data"), vec![7; 4096]);
    s3.put(&format!("{abandoned}/hashstates/sha256/4096"), vec![1; 64]);
    let recent = format!("{uploads}/{}", unique("new"));
    s3.put(
        &format!("{recent}/startedat"),
        at(time::OffsetDateTime::now_utc()),
    );
    s3.put(&format!("{recent}/data"), vec![7; 4096]);
    let job = reg.run_job(r#"{"action":"gc"}"#, Duration::from_secs(240));
    assert!(
        job["result"]["freedBytes"].as_u64().unwrap_or(0) > 2 * 1024 * 1024,
        "{job}"
    );
    assert_eq!(job["result"]["uploadsPurged"], 1, "{job}");
    let keys: Vec<String> = s3.objects().into_iter().map(|(k, _)| k).collect();
    assert!(
        !keys.iter().any(|k| k.contains(&abandoned)),
        "the abandoned upload is still in the bucket: {keys:?}"
    );
    assert!(
        keys.iter().any(|k| k.ends_with(&format!("{recent}/data"))),
        "the recent upload was purged: {keys:?}"
    );
    assert!(
        !s3.objects()
            .iter()
            .any(|(k, size)| k.ends_with("/data") && *size > 2 * 1024 * 1024),
        "the deleted tag's layer is still in the bucket"
    );
    // what is kept still pulls
    reg.docker_ok(&["rmi", &one], &[]);
    reg.docker_ok(&["pull", &one], &[]);

    assert_secret_nowhere(&[&reg.replica], &s3.secret);
    reg.replica.destroy();
}

/// A chunked upload started through the replica at `begin` is finished through the one at
/// `finish` (both `127.0.0.1:<port>`): the upload state is signed with the secret every replica
/// shares. Tokens are for the cluster's `service` (its external authority).
fn upload_across(reg: &Registry, service: &str, begin: &str, finish: &str, repo: &str) {
    let token = Request::get(format!(
        "https://{begin}/auth/token?service={service}&scope=repository:{repo}:push,pull"
    ))
    .ca(&reg.ca)
    .basic("admin", admin_password())
    .send()
    .json()["token"]
        .as_str()
        .expect("a push token")
        .to_string();
    let bearer = format!("Authorization: Bearer {token}");
    let started = Request::post(format!("https://{begin}/v2/{repo}/blobs/uploads/"))
        .ca(&reg.ca)
        .header(&bearer)
        .body(Vec::new())
        .send();
    assert_eq!(started.status, 202, "{}", started.text());
    let location = started
        .header("Location")
        .expect("an upload location")
        .to_string();
    let (chunk_a, chunk_b) = (vec![rand_byte(); 64 * 1024], vec![rand_byte(); 32 * 1024]);
    let at = |loc: &str, authority: &str| {
        let path = loc.split_once("/v2/").map(|(_, p)| p).unwrap_or(loc);
        format!("https://{authority}/v2/{path}")
    };
    let first = Request::new("PATCH", at(&location, begin))
        .ca(&reg.ca)
        .header(&bearer)
        .header("Content-Type: application/octet-stream")
        .body(chunk_a.clone())
        .send();
    assert_eq!(first.status, 202, "{}", first.text());
    let next = first
        .header("Location")
        .expect("the next location")
        .to_string();
    let mut all = chunk_a;
    all.extend_from_slice(&chunk_b);
    let digest = format!(
        "sha256:{}",
        data_encoding::HEXLOWER.encode(&<sha2::Sha256 as sha2::Digest>::digest(&all))
    );
    let sep = if next.contains('?') { '&' } else { '?' };
    let done = Request::new("PUT", format!("{}{sep}digest={digest}", at(&next, finish)))
        .ca(&reg.ca)
        .header(&bearer)
        .header("Content-Type: application/octet-stream")
        .body(chunk_b)
        .send();
    assert_eq!(
        done.status,
        201,
        "finishing through {finish} an upload begun through {begin}: {}",
        done.text()
    );
}

#[test]
fn two_replicas_behind_a_balancer_switch_to_s3_without_a_failed_pull_and_share_uploads() {
    let Some(_engine) = engine() else { return };
    let bucket = unique("dtr");
    let Some(s3) = TestStore::s3(&bucket) else {
        return;
    };
    let lb_port = free_port();
    let lb = format!("127.0.0.1:{lb_port}");
    let first = TestReplica::new();
    let out = first.install(&["--dtr-external-url", &lb]);
    assert!(out.status.success(), "install failed:\n{}", text(&out));
    let second = TestReplica::new();
    let out = join(&second, &first);
    assert!(out.status.success(), "join failed:\n{}", text(&out));
    let ports = [first.https_port, second.https_port];
    let reg = Registry::attach(first, &lb);
    let _balancer = Balancer::start(lb_port, &reg.replica, &ports);
    reg.login_ok("admin", admin_password());
    let image = reg.make_image("admin/app:1", 256 * 1024);
    reg.push(&image);
    copy_volume_to(&reg.replica, &s3);

    let puller = Puller::start(
        &lb,
        reg.ca.clone(),
        "admin/app",
        "1",
        ("admin", admin_password()),
    );
    puller.wait_for_pulls(5, Duration::from_secs(60));
    let (code, v) = put_storage(&reg, json!({"storage": s3.section, "keep_metadata": true}));
    assert_eq!(code, 202, "{v}");
    wait_for_generation(&reg, 1);
    puller.wait_for_pulls(10, Duration::from_secs(60));
    let stats = puller.finish();
    eprintln!(
        "storage switch of two replicas behind the balancer: {} pulls, longest outage {:.1}s",
        stats.pulls,
        stats.longest_outage.as_secs_f64()
    );
    assert!(stats.failed.is_empty(), "pulls failed: {:?}", stats.failed);

    // an upload begun through one replica, finished through the other, both ways
    let (a, b) = (
        format!("127.0.0.1:{}", ports[0]),
        format!("127.0.0.1:{}", ports[1]),
    );
    upload_across(&reg, &lb, &a, &b, "admin/app");
    upload_across(&reg, &lb, &b, &a, "admin/app");

    assert_secret_nowhere(&[&reg.replica, &second], &s3.secret);
    second.destroy();
    reg.replica.destroy();
}

#[test]
fn a_backup_on_s3_restores_onto_the_same_bucket_without_a_storage_flag() {
    let Some(_engine) = engine() else { return };
    let bucket = unique("dtr");
    let Some(s3) = TestStore::s3(&bucket) else {
        return;
    };
    let reg = Registry::install();
    let (code, v) = put_storage(&reg, json!({"storage": s3.section}));
    assert_eq!(code, 202, "{v}");
    wait_for_generation(&reg, 1);
    reg.login_ok("admin", admin_password());
    let image = reg.make_image("admin/app:1", 256 * 1024);
    let digest = reg.push(&image);

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("backup.tar");
    let out = dtr_command(&["backup", "--existing-replica-id", &reg.replica.id])
        .stdout(std::fs::File::create(&file).unwrap())
        .output()
        .unwrap();
    assert!(out.status.success(), "backup failed:\n{}", text(&out));
    let backup = std::fs::read(&file).unwrap();
    assert!(
        !String::from_utf8_lossy(&backup).contains("*****"),
        "the backup must hold the credential itself, to restore onto the store"
    );
    reg.replica.destroy();

    // restore with no storage flag, under the 2.0-era name of --dtr-external-url
    let fresh = TestReplica::new();
    let authority = format!("127.0.0.1:{}", fresh.https_port);
    let out = dtr_command(&[
        "restore",
        "--replica-id",
        &fresh.id,
        "--replica-https-port",
        &fresh.https_port.to_string(),
        "--replica-http-port",
        &fresh.http_port.to_string(),
        "--dtr-load-balancer",
        &authority,
    ])
    .stdin(std::fs::File::open(&file).unwrap())
    .output()
    .unwrap();
    let log = text(&out);
    assert!(out.status.success(), "restore failed:\n{log}");
    assert!(
        log.contains(&format!("images: {}, as the backup recorded", s3.describe)),
        "{log}"
    );
    assert!(
        !log.contains(&s3.secret),
        "the restore's log shows the credential"
    );
    let restored = Registry::attach(fresh, &authority);
    restored.login_ok("admin", admin_password());
    restored.docker(&["rmi", &image], &[]);
    let again = format!("{authority}/admin/app:1");
    let pulled = restored.docker_ok(&["pull", &again], &[]);
    assert!(pulled.contains(&digest), "{pulled}");
    restored.docker(&["rmi", &again], &[]);
    assert_secret_nowhere(&[&restored.replica], &s3.secret);
    restored.replica.destroy();
}

#[test]
fn an_nfs_export_that_cannot_be_mounted_is_named_and_leaves_nothing() {
    let Some(_engine) = engine() else { return };
    let r = TestReplica::new();
    // this machine's kernel has no NFS client: the mount fails as it would with a wrong
    // export or a node without nfs-common
    let url = "nfs://127.0.0.1/exports/dtr";
    let out = r.install(&["--nfs-storage-url", url, "--nfs-options", "rw,nfsvers=4.1"]);
    let log = text(&out);
    assert_eq!(out.status.code(), Some(1), "{log}");
    assert!(
        log.contains(&format!("the NFS export {url} could not be mounted"))
            && log.contains(&format!("volume dtr-nfs-registry-{}", r.id)),
        "{log}"
    );
    assert!(
        r.containers().is_empty(),
        "left behind: {:?}",
        r.containers()
    );
    assert!(r.volumes().is_empty(), "left behind: {:?}", r.volumes());
}

#[test]
fn a_cluster_moves_to_swift_and_the_reconcile_job_drops_the_tags_it_lacks() {
    let Some(_engine) = engine() else { return };
    let Some(swift) = TestStore::swift(&unique("dtr")) else {
        return;
    };
    let reg = Registry::install();
    let admin = reg.admin();
    reg.login_ok("admin", admin_password());
    let old = reg.make_image("admin/old:1", 64 * 1024);
    reg.push(&old);

    // a wrong password is named, and not shown
    let wrong = generated_secret();
    let (code, v) = put_storage(
        &reg,
        json!({"storage": swift.with("password", json!(wrong))}),
    );
    assert_eq!(code, 400, "{v}");
    assert!(v.to_string().contains("refused the credentials"), "{v}");
    assert!(
        !v.to_string().contains(&wrong) && !v.to_string().contains(&swift.secret),
        "{v}"
    );

    // the new container lacks the old tag: switch anyway, and the job removes it
    let (code, v) = put_storage(
        &reg,
        json!({"storage": swift.section, "prune_metadata": true}),
    );
    assert_eq!(code, 202, "{v}");
    assert_eq!(v["missingTags"], 1, "{v}");
    assert_eq!(v["storage"]["swift"]["password"], "*****", "{v}");
    let job = wait_for_job(
        &reg.client(),
        ("admin", admin_password()),
        v["reconcileJob"].as_i64().expect("a reconcile job"),
        &["done", "failed"],
        Duration::from_secs(120),
    );
    assert_eq!(job["status"], "done", "{job}");
    assert_eq!(job["result"]["removed"], 1, "{job}");
    let (code, tags) = reg.api("GET", "/api/v0/repositories/admin/old/tags", admin, None);
    assert_eq!(code, 200, "{tags}");
    assert!(!tags.to_string().contains("\"1\""), "{tags}");
    wait_for_generation(&reg, 1);

    // pushes land in the container and pull back
    let new = reg.make_image("admin/new:1", 512 * 1024);
    let digest = reg.push(&new);
    assert!(
        swift
            .objects()
            .iter()
            .any(|(k, _)| k.starts_with("dtr/files/docker/registry/v2/blobs/")),
        "nothing in the Swift container"
    );
    reg.docker_ok(&["rmi", &new], &[]);
    assert!(reg.docker_ok(&["pull", &new], &[]).contains(&digest));
    assert_secret_nowhere(&[&reg.replica], &swift.secret);
    reg.replica.destroy();
}

#[test]
fn a_store_behind_a_private_ca_is_used_once_reconfigure_gives_its_ca_and_debug_shows_no_credential()
{
    let Some(_engine) = engine() else { return };
    let bucket = unique("dtr");
    let Some((s3, ca)) = TestStore::s3_private_ca(&bucket) else {
        return;
    };
    let reg = Registry::install();
    let endpoint = s3.section["s3"]["regionendpoint"]
        .as_str()
        .unwrap()
        .to_string();

    // the cluster does not know the CA: refused, with what to do
    let (code, v) = put_storage(&reg, json!({"storage": s3.section}));
    assert_eq!(code, 400, "{v}");
    let message = v["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(&format!("the certificate of {endpoint} is not trusted"))
            && message.contains("--custom-ca-cert-bundle"),
        "{message}"
    );

    // given with reconfigure (the content, as the original takes it), the same change is taken
    let out = dtr(
        &[
            "reconfigure",
            "--existing-replica-id",
            &reg.replica.id,
            "--custom-ca-cert-bundle",
            &ca,
            "--debug",
        ],
        &[],
    );
    let log = text(&out);
    assert!(out.status.success(), "reconfigure failed:\n{log}");
    let (code, v) = put_storage(&reg, json!({"storage": s3.section}));
    assert_eq!(code, 202, "{v}");
    wait_for_generation(&reg, 1);
    reg.login_ok("admin", admin_password());
    let image = reg.make_image("admin/app:1", 1024 * 1024);
    let digest = reg.push(&image);
    assert!(
        s3.objects()
            .iter()
            .any(|(k, size)| k.ends_with("/data") && *size > 1024 * 1024),
        "the layer is not in the bucket"
    );
    reg.docker_ok(&["rmi", &image], &[]);
    let pulled = reg.docker_ok(&["pull", &image], &[]);
    assert!(pulled.contains(&digest), "{pulled}");

    // --debug output of the commands that read the storage credential shows none of it
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("backup.tar");
    let out = dtr_command(&[
        "backup",
        "--existing-replica-id",
        &reg.replica.id,
        "--debug",
    ])
    .stdout(std::fs::File::create(&file).unwrap())
    .output()
    .unwrap();
    let backup_log = text(&out);
    assert!(out.status.success(), "backup failed:\n{backup_log}");
    let out = dtr(
        &[
            "reconfigure",
            "--existing-replica-id",
            &reg.replica.id,
            "--log-level",
            "debug",
            "--debug",
        ],
        &[],
    );
    let again = text(&out);
    assert!(out.status.success(), "reconfigure failed:\n{again}");
    for (what, log) in [
        ("reconfigure", &log),
        ("backup", &backup_log),
        ("reconfigure", &again),
    ] {
        assert!(
            log.contains("DEBUG") || log.contains("debug"),
            "{what}: no debug output:\n{log}"
        );
        assert!(
            !log.contains(&s3.secret),
            "{what} --debug shows the credential:\n{log}"
        );
        assert!(
            !log.contains(admin_password()),
            "{what} --debug shows the admin password"
        );
    }
    assert_secret_nowhere(&[&reg.replica], &s3.secret);
    reg.replica.destroy();
}
