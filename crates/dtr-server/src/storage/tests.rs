//! The S3 and Swift clients and the probe against real stores (SeaweedFS and a Swift "all in
//! one", `scripts/test-servers.sh`).

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

/// The Swift of `scripts/test-servers.sh` (tempauth, auth v1.0): its configuration for
/// `container`, objects under the driver's `dtr/files/`.
fn swift(container: &str) -> Option<StorageConfig> {
    let authurl = crate::testing::required_env("DTR_TEST_SWIFT_AUTHURL")?;
    let user = crate::testing::required_env("DTR_TEST_SWIFT_USER")?;
    let password = crate::testing::required_env("DTR_TEST_SWIFT_PASSWORD")?;
    Some(
        parse(
            json!({"swift": {"authurl": authurl, "username": user, "password": password,
            "container": container, "prefix": "dtr"}}),
        )
        .unwrap(),
    )
}

#[tokio::test]
async fn a_real_swift_store_is_tried_and_each_failure_is_named() {
    let container = format!(
        "probe-{}-{}",
        std::process::id(),
        data_encoding::HEXLOWER.encode(&rand::random::<[u8; 4]>())
    );
    let Some(good) = swift(&container) else {
        return;
    };
    let store = match probe::Store::open(&good, &trust()).await.unwrap() {
        Some(probe::Store::Swift(s)) => s,
        _ => panic!("a swift store"),
    };
    // no container yet: the probe makes it, as the driver does at start
    let e = store.list("", 1).await.unwrap_err();
    assert!(e.to_string().contains("answered 404"), "{e}");
    probe::try_config(&good, &trust()).await.unwrap();
    // the probe leaves nothing behind
    assert_eq!(store.list_all("").await.unwrap(), vec![]);
    assert!(store.list("dtr/", 10).await.unwrap().is_empty());

    // objects round-trip, with keys that need encoding
    let link = good.object_key(&tag_link("admin/app", "1.0 x"));
    assert_eq!(
        link,
        "dtr/files/docker/registry/v2/repositories/admin/app/_manifests/tags/1.0 x/current/link"
    );
    let odd = "dtr/files/odd/ü a+b%20c?d#e&f=g;h";
    let plain = "dtr/files/odd/plain";
    for (key, data) in [(&link[..], &b"sha256:abc"[..]), (odd, b"odd"), (plain, b"")] {
        store.put(key, data.to_vec()).await.unwrap();
        assert!(store.exists(key).await.unwrap(), "{key} written");
        assert_eq!(
            store.get(key).await.unwrap().as_deref(),
            Some(data),
            "{key} read back"
        );
    }
    // Swift pages at 10000 names: the walk reads this page and asks for the next one after
    // the last name, the key that needs the most encoding (a marker sent wrong would list it
    // again, and again)
    let all = tokio::time::timeout(std::time::Duration::from_secs(20), store.list_all("dtr/"))
        .await
        .expect("list_all ends")
        .unwrap();
    assert_eq!(
        all,
        vec![
            (link.clone(), 10),
            (plain.to_string(), 0),
            (odd.to_string(), 3)
        ],
        "every object once, in Swift's order (bytes: \"ü\" after \"plain\")"
    );
    assert_eq!(
        store.list_all("dtr/files/odd/").await.unwrap().len(),
        2,
        "the prefix narrows the listing"
    );
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
    for key in [&link[..], odd, plain] {
        store.delete(key).await.unwrap();
        assert!(!store.exists(key).await.unwrap(), "{key} deleted");
        assert_eq!(store.get(key).await.unwrap(), None);
    }
    assert_eq!(store.list_all("dtr/").await.unwrap(), vec![]);

    // a wrong password, an unknown user, a closed port: each refused with its reason
    let mut wrong = good.clone();
    wrong
        .params
        .insert("password".into(), json!("not-the-password"));
    let e = probe::try_config(&wrong, &trust()).await.unwrap_err();
    assert!(e.to_string().contains("refused the credentials"), "{e}");
    assert!(!e.to_string().contains("not-the-password"), "{e}");
    let user = good.params["username"].as_str().unwrap().to_string();
    assert!(e.to_string().contains(&user), "the user is named: {e}");
    let mut unknown = good.clone();
    unknown
        .params
        .insert("username".into(), json!("dtr:nobody"));
    let e = probe::try_config(&unknown, &trust()).await.unwrap_err();
    assert!(e.to_string().contains("refused the credentials"), "{e}");
    let mut closed = good.clone();
    closed
        .params
        .insert("authurl".into(), json!("http://127.0.0.1:9/auth/v1.0"));
    let e = probe::try_config(&closed, &trust()).await.unwrap_err();
    assert!(
        e.to_string()
            .contains("the auth URL http://127.0.0.1:9/auth/v1.0 is not reachable"),
        "{e}"
    );
}

#[tokio::test]
async fn a_store_behind_a_private_ca_is_trusted_only_with_its_ca_or_when_told_to_skip() {
    let Some(mut config) = seaweedfs(&format!("tls-{}", std::process::id())) else {
        return;
    };
    let Some(endpoint) = crate::testing::required_env("DTR_TEST_S3_TLS_ENDPOINT") else {
        return;
    };
    let Some(ca_file) = crate::testing::required_env("DTR_TEST_S3_CA_FILE") else {
        return;
    };
    config
        .params
        .insert("regionendpoint".into(), json!(endpoint));
    config.params.insert("secure".into(), json!(true));
    let e = probe::try_config(&config, &trust()).await.unwrap_err();
    assert!(
        e.to_string()
            .contains(&format!("the certificate of {endpoint} is not trusted"))
            && e.to_string().contains("--custom-ca-cert-bundle"),
        "{e}"
    );
    let with_ca = probe::Trust {
        extra_pem: Some(std::fs::read_to_string(&ca_file).unwrap()),
    };
    match probe::Store::open(&config, &with_ca).await.unwrap() {
        Some(probe::Store::S3(s)) => s.create_bucket().await.unwrap(),
        _ => panic!("an s3 store"),
    }
    probe::try_config(&config, &with_ca).await.unwrap();
    // skipverify: no CA needed, as the registry's driver does it
    config.params.insert("skipverify".into(), json!(true));
    probe::try_config(&config, &trust()).await.unwrap();
}
