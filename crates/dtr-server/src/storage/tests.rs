//! The storage section as the API takes it: every refusal names its field.

use serde_json::json;

use super::*;

fn parse(v: serde_json::Value) -> Result<StorageConfig, Invalid> {
    StorageConfig::from_section(&v, &StorageConfig::default())
}

fn s3() -> serde_json::Value {
    json!({
        "s3": {"region": "us-east-1", "regionendpoint": "http://172.17.0.1:8333", "bucket": "dtr",
               "accesskey": "AK", "secretkey": "SK", "secure": false, "v4auth": "true",
               "chunksize": "5242880", "rootdirectory": "/reg"},
        "delete": {"enabled": true},
        "maintenance": {"readonly": {"enabled": false}}
    })
}

#[test]
fn the_originals_s3_body_is_taken_with_its_types_normalised() {
    let c = parse(s3()).unwrap();
    assert_eq!(c.driver, "s3");
    assert_eq!(c.params["v4auth"], json!(true));
    assert_eq!(c.params["chunksize"], json!(5242880));
    assert_eq!(c.params["secure"], json!(false));
    assert!(!c.readonly && c.redirect_disable);
    assert_eq!(c.describe(), "s3 bucket dtr at http://172.17.0.1:8333");
    assert_eq!(
        c.object_key(&tag_link("admin/app", "1")),
        "reg/docker/registry/v2/repositories/admin/app/_manifests/tags/1/current/link"
    );
}

#[test]
fn credentials_are_redacted_and_a_redacted_one_keeps_the_current() {
    let c = parse(s3()).unwrap();
    let shown = c.redacted_section();
    assert_eq!(shown["s3"]["secretkey"], json!(REDACTED));
    assert_eq!(shown["s3"]["accesskey"], json!("AK"));
    assert!(!shown.to_string().contains("\"SK\""));
    assert_eq!(c.secrets(), vec!["SK"]);
    // the shown document sent back keeps the secret
    let again = StorageConfig::from_section(&shown, &c).unwrap();
    assert_eq!(again.params["secretkey"], json!("SK"));
    // but not from another driver's configuration
    let e = StorageConfig::from_section(&shown, &StorageConfig::default()).unwrap_err();
    assert!(e.0.contains("storage.s3.secretkey"), "{e}");
}

#[test]
fn every_refusal_names_its_field() {
    let cases = [
        (
            json!({"gcs": {"bucket": "x"}}),
            "gcs storage driver is not built into this registry",
        ),
        (json!({"azure": {}}), "it has filesystem, s3, swift"),
        (
            json!({"s3": {"region": "r", "bucket": "b", "colour": "red"}}),
            "unknown field storage.s3.colour",
        ),
        (
            json!({"s3": {"region": "r"}}),
            "storage.s3.bucket is required",
        ),
        (
            json!({"s3": {"region": "r", "bucket": "b", "secure": "maybe"}}),
            "storage.s3.secure must be true or false",
        ),
        (
            json!({"s3": {"region": "r", "bucket": "b", "chunksize": -5}}),
            "storage.s3.chunksize must be a whole number",
        ),
        (
            json!({"s3": {"region": "r", "bucket": "b", "accesskey": "a"}}),
            "accesskey and storage.s3.secretkey go together",
        ),
        (
            json!({"swift": {"authurl": "u", "username": "x", "container": "c"}}),
            "storage.swift.password is required",
        ),
        (
            json!({"filesystem": {"rootdirectory": "/elsewhere"}}),
            "rootdirectory is \"/elsewhere\"",
        ),
        (
            json!({"s3": {"region": "r", "bucket": "b"}, "swift": {}}),
            "exactly one storage driver",
        ),
        (json!({"delete": {"enabled": true}}), "no storage driver"),
        (
            json!({"s3": {"region": "r", "bucket": "b"}, "delete": {"enabled": false}}),
            "delete.enabled must be true",
        ),
        (
            json!({"s3": {"region": "r", "bucket": "b"}, "cache": {}}),
            "unknown field storage.cache",
        ),
        (
            json!({"s3": {"region": "r", "bucket": "b"}, "maintenance": {"readonly": {"on": true}}}),
            "unknown field storage.maintenance.readonly.on",
        ),
        (json!("s3"), "storage must be an object"),
    ];
    for (body, expected) in cases {
        let e = parse(body.clone()).unwrap_err();
        assert!(e.0.contains(expected), "{body}: {e}");
    }
}

#[test]
fn filesystem_is_the_replicas_volume_and_swift_keys_carry_prefix_and_files() {
    let c = parse(json!({"filesystem": null})).unwrap();
    assert_eq!(c, StorageConfig::default());
    assert!(c.on_the_volume());
    let c = parse(
        json!({"swift": {"authurl": "http://keystone:8080/auth/v1.0", "username": "test:tester",
        "password": "testing", "container": "dtr", "prefix": "p"},
        "maintenance": {"readonly": {"enabled": "true"}}, "redirect": {"disable": false}}),
    )
    .unwrap();
    assert!(c.readonly && !c.redirect_disable);
    assert_eq!(c.object_key("/docker/x"), "p/files/docker/x");
    assert_eq!(c.secrets(), vec!["testing"]);
    assert_eq!(c.section()["swift"]["password"], json!("testing"));
    assert_eq!(c.redacted_section()["swift"]["password"], json!(REDACTED));
}

/// The S3 store of `scripts/test-servers.sh` (SeaweedFS): its configuration for `bucket`.
fn seaweedfs(bucket: &str) -> Option<StorageConfig> {
    let endpoint = crate::testing::required_env("DTR_TEST_S3_ENDPOINT")?;
    let access = crate::testing::required_env("DTR_TEST_S3_ACCESS_KEY")?;
    let secret = crate::testing::required_env("DTR_TEST_S3_SECRET_KEY")?;
    Some(
        parse(
            json!({"s3": {"region": "us-east-1", "regionendpoint": endpoint, "bucket": bucket,
            "accesskey": access, "secretkey": secret, "secure": false, "v4auth": true,
            "rootdirectory": "/dtr"}}),
        )
        .unwrap(),
    )
}

fn trust() -> probe::Trust {
    probe::Trust { extra_pem: None }
}

#[tokio::test]
async fn a_real_s3_store_is_tried_and_each_failure_is_named() {
    let bucket = format!("probe-{}", std::process::id());
    let Some(good) = seaweedfs(&bucket) else {
        return;
    };
    let store = match probe::Store::open(&good, &trust()).await.unwrap() {
        Some(probe::Store::S3(s)) => s,
        _ => panic!("an s3 store"),
    };
    // no bucket yet: named
    let e = probe::try_config(&good, &trust()).await.unwrap_err();
    assert!(
        e.to_string()
            .contains(&format!("the bucket {bucket} does not exist")),
        "{e}"
    );
    store.create_bucket().await.unwrap();
    probe::try_config(&good, &trust()).await.unwrap();
    // the probe leaves nothing behind
    assert!(store.list("dtr/", 10).await.unwrap().is_empty());

    // objects round-trip, with keys that need encoding
    let key = "dtr/docker/registry/v2/repositories/admin/app/_manifests/tags/1.0 x/current/link";
    store.put(key, b"sha256:abc".to_vec()).await.unwrap();
    assert!(store.exists(key).await.unwrap());
    assert_eq!(
        store.get(key).await.unwrap().as_deref(),
        Some(&b"sha256:abc"[..])
    );
    let all = store.list_all("dtr/").await.unwrap();
    assert_eq!(all, vec![(key.to_string(), 10)]);
    let missing = probe::missing_tags(
        &good,
        &trust(),
        &[
            ("admin/app".into(), "1.0 x".into()),
            ("admin/app".into(), "2".into()),
        ],
    )
    .await
    .unwrap();
    assert_eq!(missing, vec![("admin/app".to_string(), "2".to_string())]);
    store.delete(key).await.unwrap();
    assert!(!store.exists(key).await.unwrap());

    // a wrong secret, an unknown key, a closed port: each refused with its reason
    let mut wrong = good.clone();
    wrong
        .params
        .insert("secretkey".into(), json!("not-the-secret"));
    let e = probe::try_config(&wrong, &trust()).await.unwrap_err();
    assert!(e.to_string().contains("refused the credentials"), "{e}");
    assert!(!e.to_string().contains("not-the-secret"), "{e}");
    let mut unknown = good.clone();
    unknown.params.insert("accesskey".into(), json!("AKNOBODY"));
    let e = probe::try_config(&unknown, &trust()).await.unwrap_err();
    assert!(e.to_string().contains("refused the credentials"), "{e}");
    let mut closed = good.clone();
    closed
        .params
        .insert("regionendpoint".into(), json!("http://127.0.0.1:9"));
    let e = probe::try_config(&closed, &trust()).await.unwrap_err();
    assert!(
        e.to_string()
            .contains("the endpoint http://127.0.0.1:9 is not reachable"),
        "{e}"
    );
}
