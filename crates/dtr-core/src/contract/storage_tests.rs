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

#[test]
fn tag_links_and_blobs_are_found_where_distribution_writes_them() {
    let link = tag_link("admin/app", "1");
    let below = link.strip_prefix(REPOSITORIES).unwrap();
    assert_eq!(tag_of_link(below), Some(("admin/app".into(), "1".into())));
    for other in [
        "admin/app/_layers/sha256/abc/link",
        "admin/app/_manifests/revisions/sha256/abc/link",
        "admin/app/_manifests/tags/1/index/sha256/abc/link",
        "_manifests/tags/1/current/link",
    ] {
        assert_eq!(tag_of_link(other), None, "{other}");
    }
    let digest = format!("sha256:{}", "ab".repeat(32));
    assert_eq!(
        blob_data(&digest).unwrap(),
        format!(
            "/docker/registry/v2/blobs/sha256/ab/{}/data",
            "ab".repeat(32)
        )
    );
    assert_eq!(blob_data("sha256:../../etc"), None);
    assert_eq!(blob_data("md5:00"), None);
}

#[test]
fn an_upload_is_found_by_its_directory_and_markers_are_not_uploads() {
    let dir = "admin/team/app/_uploads/0b8c-11";
    for file in ["startedat", "data", "hashstates/sha256/0"] {
        assert_eq!(upload_of(&format!("{dir}/{file}")), Some(dir), "{file}");
    }
    for other in [
        "admin/app/_uploads/",
        "admin/app/_uploads",
        "_uploads/x/data",
        "admin/app/_layers/sha256/abc/link",
        "admin/app/_manifests/tags/1/current/link",
    ] {
        assert_eq!(upload_of(other), None, "{other}");
    }
}
