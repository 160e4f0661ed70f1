//! The object stores the storage tests use, started by `scripts/test-servers.sh` (SeaweedFS
//! for S3, OpenStack Swift): a bucket or container of each test's own, the storage section
//! that points a cluster at it, and a client to look into it with the product's own S3/Swift
//! clients (`dtr_server::storage`).

use serde_json::{json, Value};

use dtr_server::storage::probe::{Store, Trust};
use dtr_server::storage::StorageConfig;

/// A variable `scripts/test-servers.sh` sets: missing, it fails the test under CI (or
/// `DTR_REQUIRE_ENGINE=1`) and skips it elsewhere.
pub fn server_env(var: &str) -> Option<String> {
    if let Some(v) = std::env::var(var).ok().filter(|v| !v.is_empty()) {
        return Some(v);
    }
    let required = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
        || std::env::var("DTR_REQUIRE_ENGINE").is_ok_and(|v| v == "1");
    assert!(
        !required,
        "{var} is not set: run the tests through scripts/test.sh (it sources scripts/test-servers.sh)"
    );
    eprintln!("skipped: {var} is not set (source scripts/test-servers.sh; CI fails here)");
    None
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
}

/// A bucket (S3) or container (Swift) of one test, and the storage section for it.
pub struct TestStore {
    /// `{"s3": {...}}` or `{"swift": {...}}`, as the API takes it.
    pub section: Value,
    /// The credential in it, which must never show anywhere.
    pub secret: String,
    pub describe: String,
    /// The CA of the store's certificate, when it is not one of the system's.
    pub ca: Option<String>,
}

impl TestStore {
    /// A new bucket of SeaweedFS, with the root directory `/dtr`.
    pub fn s3(bucket: &str) -> Option<TestStore> {
        let endpoint = server_env("DTR_TEST_S3_ENDPOINT")?;
        let access = server_env("DTR_TEST_S3_ACCESS_KEY")?;
        let secret = server_env("DTR_TEST_S3_SECRET_KEY")?;
        let section = json!({"s3": {"region": "us-east-1", "regionendpoint": endpoint,
            "bucket": bucket, "accesskey": access, "secretkey": secret, "secure": false,
            "v4auth": true, "rootdirectory": "/dtr"}});
        let store = TestStore {
            describe: format!("s3 bucket {bucket} at {endpoint}"),
            section,
            secret,
            ca: None,
        };
        match store.open() {
            Store::S3(s) => runtime()
                .block_on(s.create_bucket())
                .expect("create the bucket"),
            Store::Swift(_) => unreachable!(),
        }
        Some(store)
    }

    /// A new bucket of SeaweedFS reached over HTTPS, whose certificate is of a CA made for the
    /// run (the "private CA" of `scripts/test-servers.sh`); that CA's PEM.
    pub fn s3_private_ca(bucket: &str) -> Option<(TestStore, String)> {
        let endpoint = server_env("DTR_TEST_S3_TLS_ENDPOINT")?;
        let ca = std::fs::read_to_string(server_env("DTR_TEST_S3_CA_FILE")?).expect("the CA");
        let mut store = TestStore::s3(bucket)?;
        store.section["s3"]["regionendpoint"] = json!(endpoint);
        store.section["s3"]["secure"] = json!(true);
        store.describe = format!("s3 bucket {bucket} at {endpoint}");
        store.ca = Some(ca.clone());
        Some((store, ca))
    }

    /// A container of the test Swift (the registry's driver creates it), prefix `dtr`.
    pub fn swift(container: &str) -> Option<TestStore> {
        let authurl = server_env("DTR_TEST_SWIFT_AUTHURL")?;
        let user = server_env("DTR_TEST_SWIFT_USER")?;
        let password = server_env("DTR_TEST_SWIFT_PASSWORD")?;
        Some(TestStore {
            describe: format!("swift container {container} at {authurl}"),
            section: json!({"swift": {"authurl": authurl, "username": user,
                "password": password, "container": container, "prefix": "dtr"}}),
            secret: password,
            ca: None,
        })
    }

    /// The storage section with `field` of the driver set to `value` (a broken variant).
    pub fn with(&self, field: &str, value: Value) -> Value {
        let mut s = self.section.clone();
        let driver = s.as_object().unwrap().keys().next().unwrap().clone();
        s[driver][field] = value;
        s
    }

    pub fn config(&self) -> StorageConfig {
        StorageConfig::from_section(&self.section, &StorageConfig::default()).expect("valid")
    }

    fn trust(&self) -> Trust {
        Trust {
            extra_pem: self.ca.clone(),
        }
    }

    fn open(&self) -> Store {
        runtime()
            .block_on(Store::open(&self.config(), &self.trust()))
            .expect("reach the store")
            .expect("an object store")
    }

    /// Every object under the registry's root and its size.
    pub fn objects(&self) -> Vec<(String, u64)> {
        let config = self.config();
        runtime()
            .block_on(async {
                let store = Store::open(&config, &self.trust()).await?;
                store
                    .expect("an object store")
                    .list_all(&config.object_key("/"))
                    .await
            })
            .expect("list the store")
    }

    /// Writes `data` at `path` of distribution's layout (`/docker/registry/v2/...`).
    pub fn put(&self, path: &str, data: Vec<u8>) {
        let config = self.config();
        runtime()
            .block_on(async {
                let store = Store::open(&config, &self.trust()).await?;
                store
                    .expect("an object store")
                    .put(&config.object_key(path), data)
                    .await
            })
            .expect("write to the store")
    }
}
