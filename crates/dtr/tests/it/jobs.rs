//! Jobs on a real replica (see tests/common for the harness rules): the endpoints and their
//! errors, the metadata migration job, and garbage collection that fences pushes, waits for the
//! last write token and frees a blob nobody references. docs/jobs.md describes what is checked.

use std::time::{Duration, Instant};

use crate::common::http::Api;
use crate::common::registry::token_grants as token;
use crate::common::*;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// A test replica whose id starts with `b0b0` (the ids this suite's author may remove).
fn replica() -> TestReplica {
    let mut r = TestReplica::new();
    let id = format!("b0b0{}", &r.id[4..]);
    r.set_id(id);
    r
}

fn code_of(v: &Value) -> &str {
    v["errors"][0]["code"].as_str().unwrap_or("")
}

fn grants_push(access: &[Value]) -> bool {
    access.iter().any(|g| {
        g["actions"]
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x == "push"))
    })
}

/// Uploads a blob through nginx with a bearer token; returns its digest.
fn upload_blob(c: &Api, jwt: &str, repo: &str, data: &[u8]) -> String {
    let digest = format!("sha256:{}", hex::encode(Sha256::digest(data)));
    let bearer = format!("Authorization: Bearer {jwt}");
    let started = c
        .request("POST", &format!("/v2/{repo}/blobs/uploads/"))
        .header(&bearer)
        .body(Vec::new())
        .send();
    assert_eq!(started.status, 202, "{started}");
    let location = started.header("location").expect("Location of the upload");
    let sep = if location.contains('?') { '&' } else { '?' };
    let done = c
        .request("PUT", &format!("{location}{sep}digest={digest}"))
        .header(&bearer)
        .header("Content-Type: application/octet-stream")
        .body(data)
        .send();
    assert_eq!(done.status, 201, "{done}");
    digest
}

fn log_lines(c: &Api, admin: (&str, &str), id: i64) -> Vec<String> {
    let (code, v) = c.call("GET", &format!("/api/v0/jobs/{id}/logs"), Some(admin), None);
    assert_eq!(code, 200, "{v}");
    v["logs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["data"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn jobs_api_migration_and_gc_on_a_real_replica() {
    let Some(_engine) = engine() else { return };
    let r = replica();
    let out = r.install(&[]);
    assert!(out.status.success(), "install failed:\n{}", text(&out));
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, r.external_ca()).unwrap();
    let c = Api::new(format!("https://127.0.0.1:{}", r.https_port), &ca);
    let admin = ("admin", admin_password());
    let node = docker_ok(&["info", "-f", "{{.Name}}"]);
    let service = format!("{node}:{}", r.https_port);

    // who may: administrators only
    let (code, v) = c.call("POST", "/api/v0/jobs", None, Some(json!({"action": "gc"})));
    assert_eq!((code, code_of(&v)), (401, "UNAUTHORIZED"), "{v}");
    let (code, v) = c.call(
        "POST",
        "/api/v0/accounts",
        Some(admin),
        Some(json!({"name": "alice", "password": "alice-password"})),
    );
    assert_eq!(code, 201, "{v}");
    for (method, path) in [("POST", "/api/v0/jobs"), ("GET", "/api/v0/jobs")] {
        let (code, v) = c.call(
            method,
            path,
            Some(("alice", "alice-password")),
            Some(json!({"action": "gc"})).filter(|_| method == "POST"),
        );
        assert_eq!(
            (code, code_of(&v)),
            (403, "FORBIDDEN"),
            "{method} {path}: {v}"
        );
    }
    // bad input: clear 4xx, nothing queued
    for (body, status, code) in [
        (json!({"action": "nope"}), 400, "UNKNOWN_ACTION"),
        (json!({"action": "gc", "extra": 1}), 400, "INVALID_JSON"),
        (json!({"parameters": {}}), 400, "INVALID_JSON"),
        (
            json!({"action": "gc", "parameters": {"dryrun": true}}),
            400,
            "INVALID_PARAMETERS",
        ),
        (
            json!({"action": "metadatastoremigration", "parameters": {"x": 1}}),
            400,
            "INVALID_PARAMETERS",
        ),
    ] {
        let (got, v) = c.call("POST", "/api/v0/jobs", Some(admin), Some(body.clone()));
        assert_eq!((got, code_of(&v)), (status, code), "{body}: {v}");
    }
    let resp = c
        .request("POST", "/api/v0/jobs")
        .basic(admin.0, admin.1)
        .json_bytes(&b"{not json"[..])
        .send();
    assert_eq!(resp.status, 400, "{}", resp.text());
    for path in [
        "/api/v0/jobs/999999",
        "/api/v0/jobs/abc",
        "/api/v0/jobs/999999/logs",
        "/api/v0/jobs/-1/logs",
    ] {
        let (code, v) = c.call("GET", path, Some(admin), None);
        assert_eq!((code, code_of(&v)), (404, "NO_SUCH_JOB"), "{path}: {v}");
    }
    for (query, code) in [
        ("status=bogus", "INVALID_STATUS"),
        ("action=bogus", "UNKNOWN_ACTION"),
        ("limit=0", "INVALID_LIMIT"),
        ("x=1", "INVALID_QUERY"),
    ] {
        let (got, v) = c.call("GET", &format!("/api/v0/jobs?{query}"), Some(admin), None);
        assert_eq!((got, code_of(&v)), (400, code), "{query}: {v}");
    }
    let (code, v) = c.call("GET", "/api/v0/jobs", Some(admin), None);
    assert_eq!(code, 200);
    assert_eq!(v["jobs"], json!([]), "nothing was queued by bad requests");

    // the metadata migration job (what the original runs after an upgrade)
    let (code, job) = c.call(
        "POST",
        "/api/v0/jobs",
        Some(admin),
        Some(json!({"action": "metadatastoremigration"})),
    );
    assert_eq!(code, 202, "{job}");
    assert_eq!(job["status"], "waiting");
    assert_eq!(job["attempts"], 0);
    assert_eq!(job["maxAttempts"], 3);
    let mig = job["id"].as_i64().unwrap();
    let job = wait_for_job(&c, admin, mig, &["done", "failed"], Duration::from_secs(30));
    assert_eq!(job["status"], "done", "{job}");
    assert_eq!(job["claimedBy"], r.id.as_str());
    assert!(
        job["result"]["schemaVersion"].as_i64().unwrap() >= 3,
        "{job}"
    );
    assert_eq!(
        job["result"]["applied"],
        json!([]),
        "the api migrated at start"
    );
    let lines = log_lines(&c, admin, mig);
    assert!(
        lines.iter().any(|l| l.contains("schema is up to date")),
        "{lines:#?}"
    );
    let (_, events) = c.call("GET", "/api/v0/events?object=job:", Some(admin), None);
    assert!(
        events["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "job.create" && e["object"] == format!("job:{mig}")),
        "{events}"
    );

    // garbage collection: short tokens so the wait is short (the 60 s leeway stays)
    let (code, v) = c.call(
        "POST",
        "/api/v0/meta/settings",
        Some(admin),
        Some(json!({"tokenLifetimeSeconds": 10})),
    );
    assert_eq!(code, 200, "{v}");
    let (access, jwt) = token(&c, &service, admin, "repository:admin/junk:push,pull");
    assert!(grants_push(&access), "{access:?}");
    let orphan: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    upload_blob(&c, &jwt, "admin/junk", &orphan);

    let (code, job) = c.call(
        "POST",
        "/api/v0/jobs",
        Some(admin),
        Some(json!({"action": "gc"})),
    );
    assert_eq!(code, 202, "{job}");
    let gc = job["id"].as_i64().unwrap();
    let started = Instant::now();
    wait_for_job(
        &c,
        admin,
        gc,
        &["running", "done", "failed"],
        Duration::from_secs(30),
    );
    // while it runs, no token allows a push; pulls are still granted
    let (access, _) = token(&c, &service, admin, "repository:admin/junk:push,pull");
    assert!(!grants_push(&access), "push granted during gc: {access:?}");
    assert!(
        access[0]["actions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a == "pull"),
        "{access:?}"
    );
    let (code, listed) = c.call(
        "GET",
        "/api/v0/jobs?action=gc&status=running",
        Some(admin),
        None,
    );
    assert_eq!(code, 200);
    assert_eq!(listed["jobs"][0]["id"], gc, "{listed}");

    let job = wait_for_job(&c, admin, gc, &["done", "failed"], Duration::from_secs(240));
    let lines = log_lines(&c, admin, gc);
    assert_eq!(job["status"], "done", "{job}\n{lines:#?}");
    // it waited for the last write token (10 s) plus the 60 s leeway
    assert!(
        started.elapsed() >= Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );
    assert!(
        lines.iter().any(|l| l.starts_with("waiting ")),
        "{lines:#?}"
    );
    let freed = job["result"]["freedBytes"].as_u64().unwrap();
    assert!(freed >= orphan.len() as u64, "{job}\n{lines:#?}");
    assert!(
        lines
            .iter()
            .any(|l| l == &format!("freed {freed} bytes (1 blobs)")),
        "{lines:#?}"
    );
    eprintln!(
        "gc took {:.0}s, freed {freed} bytes; log:\n{}",
        started.elapsed().as_secs_f64(),
        lines.join("\n")
    );
    // and pushes are granted again
    let (access, jwt) = token(&c, &service, admin, "repository:admin/junk:push,pull");
    assert!(grants_push(&access), "{access:?}");
    upload_blob(&c, &jwt, "admin/junk", b"after gc");

    r.destroy();
}
