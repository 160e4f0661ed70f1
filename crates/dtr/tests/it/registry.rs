//! A working registry after install, driven with the engine's own docker CLI (no mock): login,
//! push, pull with the same digest, permissions, access tokens, content trust, tag deletion and
//! garbage collection; and the API's answers to bad input. Harness rules as in tests/common.

use crate::common::registry::*;
use crate::common::*;
use serde_json::{json, Value};
use std::time::Duration;

fn error_code(body: &Value) -> &str {
    body["errors"][0]["code"].as_str().unwrap_or("")
}

#[test]
fn docker_cli_login_push_pull_sign_permissions_and_gc() {
    let Some(_engine) = engine() else { return };
    let reg = Registry::install();
    let a = &reg.authority;

    // short registry tokens, so that garbage collection (which outwaits every write token) is quick
    let (code, _) = reg.api(
        "POST",
        "/api/v0/meta/settings",
        reg.admin(),
        Some(r#"{"tokenLifetimeSeconds":10}"#),
    );
    assert_eq!(code, 200);

    // wrong password refused, right one accepted
    assert!(!reg.login("admin", "not-the-password").status.success());
    let out = reg.login("admin", admin_password());
    assert!(out.status.success(), "{}", text(&out));

    // push, remove, pull: same digest
    let image = reg.make_image("admin/app:1", 3 * 1024 * 1024);
    let digest = reg.push(&image);
    reg.docker_ok(&["rmi", &image], &[]);
    reg.docker_ok(&["pull", &image], &[]);
    let pulled = reg.docker_ok(
        &["image", "inspect", "-f", "{{index .RepoDigests 0}}", &image],
        &[],
    );
    assert_eq!(pulled, format!("{a}/admin/app@{digest}"));

    // the notification put the tag into the metadata
    let (code, tags) = reg.api(
        "GET",
        "/api/v0/repositories/admin/app/tags",
        reg.admin(),
        None,
    );
    assert_eq!(code, 200, "{tags}");
    assert_eq!(tags[0]["name"], "1");
    assert_eq!(tags[0]["digest"], digest.as_str());
    assert_eq!(tags[0]["author"], "admin");

    // an account without rights on admin/ cannot push there nor pull the private repository
    let (code, body) = reg.api(
        "POST",
        "/api/v0/accounts",
        reg.admin(),
        Some(r#"{"name":"alice","password":"alice-password"}"#),
    );
    assert_eq!(code, 201, "{body}");
    assert!(reg.login("alice", "alice-password").status.success());
    let sneaky = format!("{a}/admin/sneaky:1");
    reg.docker_ok(&["tag", &image, &sneaky], &[]);
    reg.images.lock().unwrap().push(sneaky.clone());
    let out = reg.docker(&["push", &sneaky], &[]);
    assert!(
        !out.status.success() && text(&out).contains("denied"),
        "{}",
        text(&out)
    );
    let out = reg.docker(&["pull", &image], &[]);
    assert!(
        !out.status.success(),
        "alice pulled a private repository:\n{}",
        text(&out)
    );
    // ... but her own namespace is hers
    let hers = format!("{a}/alice/mine:1");
    reg.docker_ok(&["tag", &image, &hers], &[]);
    reg.images.lock().unwrap().push(hers.clone());
    reg.docker_ok(&["push", &hers], &[]);

    // an access token logs in like a password
    let (code, token) = reg.api(
        "POST",
        "/api/v0/api_tokens",
        reg.admin(),
        Some(r#"{"tokenLabel":"ci"}"#),
    );
    assert_eq!(code, 201, "{token}");
    let token = token["token"].as_str().unwrap().to_string();
    let out = reg.login("admin", &token);
    assert!(out.status.success(), "{}", text(&out));
    let (code, _) = reg.api("GET", "/api/v0/repositories", Some(("admin", &token)), None);
    assert_eq!(code, 200);

    // content trust: signed push, verified pull; an unsigned tag is refused under trust
    let trust = TRUST;
    let signed = reg.push_signed("admin/app:2");
    reg.docker_ok(&["rmi", &signed], &[]);
    reg.docker_ok(&["pull", &signed], &trust);
    let out = reg.docker(&["pull", &image], &trust);
    assert!(
        !out.status.success(),
        "an unsigned tag was pulled under content trust:\n{}",
        text(&out)
    );

    // delete the first image, collect garbage: the blob store shrinks
    // a tag that shares its manifest is not deleted alone: the manifest is, with its tags
    let copy = format!("{a}/admin/app:copy");
    reg.docker_ok(&["tag", &image, &copy], &[]);
    reg.images.lock().unwrap().push(copy.clone());
    reg.docker_ok(&["push", &copy], &[]);
    let (code, body) = reg.api(
        "DELETE",
        "/api/v0/repositories/admin/app/tags/1",
        reg.admin(),
        None,
    );
    assert_eq!(
        (code, error_code(&body)),
        (409, "TAG_SHARES_MANIFEST"),
        "{body}"
    );
    let (code, body) = reg.api(
        "DELETE",
        &format!("/api/v0/repositories/admin/app/manifests/{digest}"),
        reg.admin(),
        None,
    );
    assert_eq!(code, 204, "{body}");
    let (_, tags) = reg.api(
        "GET",
        "/api/v0/repositories/admin/app/tags",
        reg.admin(),
        None,
    );
    let names: Vec<&str> = tags
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert_eq!(names, vec!["2"], "{tags}");
    let (code, body) = reg.api(
        "DELETE",
        "/api/v0/repositories/alice/mine/tags/1",
        Some(("alice", "alice-password")),
        None,
    );
    assert_eq!(code, 204, "{body}");
    let before = reg.blob_bytes();
    let job = reg.run_job(r#"{"action":"gc"}"#, Duration::from_secs(180));
    let after = reg.blob_bytes();
    assert!(
        after + 3 * 1024 * 1024 <= before,
        "blob store {before} -> {after} bytes"
    );
    let (code, logs) = reg.api(
        "GET",
        &format!("/api/v0/jobs/{}/logs", job["id"]),
        reg.admin(),
        None,
    );
    assert_eq!(code, 200, "{logs}");
    // the signed image is still there
    reg.docker_ok(&["rmi", &signed], &[]);
    reg.docker_ok(&["pull", &signed], &trust);

    reg.replica.destroy();
}

#[test]
fn the_api_answers_bad_input_with_clear_4xx_and_changes_nothing() {
    let Some(_engine) = engine() else { return };
    let reg = Registry::install();
    let admin = reg.admin();
    let count = || {
        reg.api("GET", "/api/v0/repositories", admin, None).1["repositories"]
            .as_array()
            .map_or(0, Vec::len)
    };

    // credentials
    let (code, body) = reg.api(
        "GET",
        "/api/v0/repositories",
        Some(("admin", "wrong")),
        None,
    );
    assert_eq!((code, error_code(&body)), (401, "UNAUTHORIZED"), "{body}");
    let (code, body) = reg.api(
        "GET",
        "/api/v0/repositories",
        Some(("nobody", "wrong")),
        None,
    );
    assert_eq!((code, error_code(&body)), (401, "UNAUTHORIZED"), "{body}");
    let (code, body) = reg.api("GET", "/api/v0/accounts", None, None);
    assert_eq!(code, 401, "{body}");
    let (code, body) = reg.api("GET", "/api/v0/meta/cluster_status", None, None);
    assert_eq!(code, 401, "{body}");
    let (code, body) = reg.api("GET", "/api/v0/meta/cluster_status", admin, None);
    assert_eq!(code, 200, "{body}");
    assert!(
        body["replica_health"][&reg.replica.id].is_string(),
        "{body}"
    );

    // bodies: malformed, unknown field, wrong type, not JSON, too large
    let before = count();
    for (body, expected) in [
        ("{not json", "INVALID_JSON"),
        (
            r#"{"name":"x1","visibility":"public","extra":1}"#,
            "INVALID_JSON",
        ),
        (r#"{"name":5}"#, "INVALID_JSON"),
        (r#"{"name":"UPPER"}"#, "INVALID_NAME"),
        (r#"{"name":"a/../b"}"#, "INVALID_NAME"),
        (
            r#"{"name":"ok","visibility":"secret"}"#,
            "INVALID_VISIBILITY",
        ),
    ] {
        let (code, answer) = reg.api("POST", "/api/v0/repositories/admin", admin, Some(body));
        assert_eq!(
            (code, error_code(&answer)),
            (400, expected),
            "{body}: {answer}"
        );
    }
    let big = format!(
        r#"{{"name":"big","shortDescription":"{}"}}"#,
        "x".repeat(200_000)
    );
    // nginx refuses it before the api (which would answer BODY_TOO_LARGE) reads it
    let (code, answer) = reg.api("POST", "/api/v0/repositories/admin", admin, Some(&big));
    assert_eq!(code, 413, "{answer}");
    assert!(
        answer.as_str().is_some_and(|t| t.contains("nginx")),
        "{answer}"
    );
    let (code, answer) = reg.api(
        "POST",
        "/api/v0/jobs",
        admin,
        Some(r#"{"action":"format-disk"}"#),
    );
    assert_eq!(
        (code, error_code(&answer)),
        (400, "UNKNOWN_ACTION"),
        "{answer}"
    );
    let (code, answer) = reg.api(
        "POST",
        "/api/v0/meta/settings",
        admin,
        Some(r#"{"tokenLifetimeSeconds":1}"#),
    );
    assert_eq!(
        (code, error_code(&answer)),
        (400, "INVALID_SETTING"),
        "{answer}"
    );
    // path traversal in names and tags
    for path in [
        "/api/v0/repositories/..%2F..%2Fetc/passwd/tags",
        "/api/v0/repositories/admin/..%2Fx",
        "/api/v0/repositories/ADMIN/app",
    ] {
        let (code, answer) = reg.api("GET", path, admin, None);
        assert!(code == 400 || code == 404, "{path}: {code} {answer}");
    }
    let (code, answer) = reg.api(
        "DELETE",
        "/api/v0/repositories/admin/app/tags/..%2F..",
        admin,
        None,
    );
    assert!(code == 400 || code == 404, "{code} {answer}");
    // the token service refuses another service and malformed scopes
    let (code, answer) = reg.api(
        "GET",
        "/auth/token?service=evil.example&scope=repository:admin/app:pull",
        admin,
        None,
    );
    assert_eq!(
        (code, error_code(&answer)),
        (400, "INVALID_SERVICE"),
        "{answer}"
    );
    let svc = &reg.authority;
    let (code, answer) = reg.api(
        "GET",
        &format!("/auth/token?service={svc}&scope=repository:..%2Fetc:pull"),
        admin,
        None,
    );
    assert_eq!(
        (code, error_code(&answer)),
        (400, "INVALID_NAME"),
        "{answer}"
    );
    // the registry's notification endpoint is not reachable from outside
    let (code, _) = reg.api(
        "POST",
        "/internal/registry/events",
        None,
        Some(r#"{"events":[]}"#),
    );
    assert_eq!(code, 404);
    assert_eq!(count(), before, "a refused request changed something");

    // accounts: a password changes, the flag is the administrators', the last one stays
    let (code, _) = reg.api(
        "POST",
        "/api/v0/accounts",
        admin,
        Some(r#"{"name":"bob","password":"bob-password"}"#),
    );
    assert_eq!(code, 201);
    let bob = Some(("bob", "bob-password"));
    let (code, answer) = reg.api(
        "PATCH",
        "/api/v0/accounts/bob",
        bob,
        Some(r#"{"isAdmin":true}"#),
    );
    assert_eq!((code, error_code(&answer)), (403, "FORBIDDEN"), "{answer}");
    let (code, answer) = reg.api(
        "PATCH",
        "/api/v0/accounts/admin",
        bob,
        Some(r#"{"password":"taken-over"}"#),
    );
    assert_eq!((code, error_code(&answer)), (403, "FORBIDDEN"), "{answer}");
    let (code, answer) = reg.api(
        "PATCH",
        "/api/v0/accounts/bob",
        bob,
        Some(r#"{"password":"short"}"#),
    );
    assert_eq!(
        (code, error_code(&answer)),
        (400, "INVALID_PASSWORD"),
        "{answer}"
    );
    // an access token mints no token and changes no password; a new password revokes it
    let (code, answer) = reg.api(
        "POST",
        "/api/v0/api_tokens",
        bob,
        Some(r#"{"tokenLabel":"bob-ci"}"#),
    );
    assert_eq!(code, 201, "{answer}");
    let bob_token = answer["token"].as_str().unwrap().to_string();
    let by_token = Some(("bob", bob_token.as_str()));
    let (code, answer) = reg.api(
        "POST",
        "/api/v0/api_tokens",
        by_token,
        Some(r#"{"tokenLabel":"more"}"#),
    );
    assert_eq!(
        (code, error_code(&answer)),
        (403, "PASSWORD_REQUIRED"),
        "{answer}"
    );
    let (code, answer) = reg.api(
        "PATCH",
        "/api/v0/accounts/bob",
        by_token,
        Some(r#"{"password":"by-the-token"}"#),
    );
    assert_eq!(
        (code, error_code(&answer)),
        (403, "PASSWORD_REQUIRED"),
        "{answer}"
    );
    let (code, listed) = reg.api("GET", "/api/v0/api_tokens", by_token, None);
    assert_eq!(code, 200, "the token still works for what it may do");
    assert_eq!(listed["tokens"][0]["expiresAt"], Value::Null, "{listed}");
    // a token may expire: it works until then and is refused after; lifetimes out of range
    // are refused
    for bad in [0, -5, 10 * 365 * 24 * 3600 + 1] {
        let body = json!({"tokenLabel": "bad", "expiresInSeconds": bad}).to_string();
        let (code, answer) = reg.api("POST", "/api/v0/api_tokens", bob, Some(&body));
        assert_eq!(
            (code, error_code(&answer)),
            (400, "INVALID_EXPIRY"),
            "{bad}: {answer}"
        );
    }
    let (code, answer) = reg.api(
        "POST",
        "/api/v0/api_tokens",
        bob,
        Some(r#"{"tokenLabel":"short","expiresInSeconds":3}"#),
    );
    assert_eq!(code, 201, "{answer}");
    assert!(
        answer["expiresAt"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z')),
        "{answer}"
    );
    let short = answer["token"].as_str().unwrap().to_string();
    let by_short = Some(("bob", short.as_str()));
    let (code, _) = reg.api("GET", "/api/v0/api_tokens", by_short, None);
    assert_eq!(code, 200, "a token that has not expired yet works");
    std::thread::sleep(Duration::from_secs(4));
    let (code, _) = reg.api("GET", "/api/v0/api_tokens", by_short, None);
    assert_eq!(code, 401, "the expired token still works");
    let (code, answer) = reg.api(
        "PATCH",
        "/api/v0/accounts/bob",
        bob,
        Some(r#"{"password":"bob-password-2"}"#),
    );
    assert_eq!(code, 200, "{answer}");
    assert_eq!(answer["revokedTokens"], 2, "{answer}");
    let (code, _) = reg.api("GET", "/api/v0/api_tokens", bob, None);
    assert_eq!(code, 401, "the old password no longer works");
    let (code, _) = reg.api("GET", "/api/v0/api_tokens", by_token, None);
    assert_eq!(code, 401, "the new password revoked the token");
    let (code, answer) = reg.api("DELETE", "/api/v0/accounts/admin", admin, None);
    assert_eq!((code, error_code(&answer)), (409, "LAST_ADMIN"), "{answer}");
    let (code, _) = reg.api("DELETE", "/api/v0/accounts/bob", admin, None);
    assert_eq!(code, 204);
    let (code, _) = reg.api(
        "GET",
        "/api/v0/api_tokens",
        Some(("bob", "bob-password-2")),
        None,
    );
    assert_eq!(code, 401, "a deleted account cannot log in");
    // an anonymous caller is refused before its (bad) body is read
    let (code, answer) = reg.api("POST", "/api/v0/accounts", None, Some("{not json"));
    assert_eq!(
        (code, error_code(&answer)),
        (401, "UNAUTHORIZED"),
        "{answer}"
    );

    // the happy path of the same endpoints
    let (code, repo) = reg.api(
        "POST",
        "/api/v0/repositories/admin",
        admin,
        Some(r#"{"name":"web","visibility":"public"}"#),
    );
    assert_eq!(code, 201, "{repo}");
    let (code, answer) = reg.api(
        "POST",
        "/api/v0/repositories/admin",
        admin,
        Some(r#"{"name":"web"}"#),
    );
    assert_eq!(
        (code, error_code(&answer)),
        (409, "REPOSITORY_EXISTS"),
        "{answer}"
    );
    let (code, anon) = reg.api("GET", "/api/v0/repositories/admin/web", None, None);
    assert_eq!(
        (code, anon["visibility"].as_str()),
        (200, Some("public")),
        "public repositories are visible to anyone"
    );
    let (code, _) = reg.api(
        "PATCH",
        "/api/v0/repositories/admin/web",
        admin,
        Some(r#"{"visibility":"private"}"#),
    );
    assert_eq!(code, 200);
    let (code, answer) = reg.api("GET", "/api/v0/repositories/admin/web", None, None);
    assert_eq!(
        (code, error_code(&answer)),
        (404, "NO_SUCH_REPOSITORY"),
        "private ones are not"
    );
    let (code, settings) = reg.api("GET", "/api/v0/meta/settings", admin, None);
    assert_eq!(code, 200);
    assert_eq!(settings["createRepositoryOnPush"], true);
    let (code, events) = reg.api("GET", "/api/v0/events?object=admin/web", admin, None);
    assert_eq!(code, 200);
    let actions: Vec<&str> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert!(
        actions.contains(&"repository.create") && actions.contains(&"repository.update"),
        "{events}"
    );
    let (code, _) = reg.api("DELETE", "/api/v0/repositories/admin/web", admin, None);
    assert_eq!(code, 204);
    let (code, jobs) = reg.api("GET", "/api/v0/jobs", admin, None);
    assert_eq!(code, 200, "{jobs}");
    reg.replica.destroy();
}
