//! The S3 client and the probe against a real store (SeaweedFS, `scripts/test-servers.sh`).

use serde_json::json;

use super::*;

fn parse(v: serde_json::Value) -> Result<StorageConfig, Invalid> {
    StorageConfig::from_section(&v, &StorageConfig::default())
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
