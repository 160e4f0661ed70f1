//! A storage configuration tried before it is used: list, write, read back and delete a probe
//! object in the store, each failure named; and the store looked up for the tags the metadata
//! database knows (how many would point at content the new store does not hold).

use std::sync::Arc;

use super::s3::{S3Error, S3};
use super::swift::{Swift, SwiftError};
use super::StorageConfig;

/// Why a configuration is refused, naming what failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProbeError {
    #[error("{0}")]
    S3(#[from] S3Error),
    #[error("{0}")]
    Swift(#[from] SwiftError),
    #[error("the probe object {key} read back differently from what was written")]
    Mismatch { key: String },
    #[error("TLS set-up: {0}")]
    Tls(String),
}

/// An object store the registry can use, as far as DTR needs to reach it itself.
pub enum Store {
    S3(S3),
    Swift(Swift),
}

/// Where TLS trust for the stores comes from: the system's CAs, the cluster's custom bundle
/// (`--custom-ca-cert-bundle`), and whether the configuration skips verification.
pub struct Trust {
    pub extra_pem: Option<String>,
}

/// A client for talking to the store of `config`: the system's CAs and the custom bundle;
/// no verification only when the configuration says so (`skipverify`, `insecureskipverify`).
pub fn http_client(config: &StorageConfig, trust: &Trust) -> Result<reqwest::Client, ProbeError> {
    let skip = ["skipverify", "insecureskipverify"]
        .iter()
        .any(|k| config.params.get(*k).and_then(|v| v.as_bool()) == Some(true));
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(c);
    }
    if let Some(pem) = &trust.extra_pem {
        for c in rustls_pemfile::certs(&mut pem.as_bytes()) {
            let c = c.map_err(|e| ProbeError::Tls(format!("custom CA bundle: {e}")))?;
            roots
                .add(c)
                .map_err(|e| ProbeError::Tls(format!("custom CA bundle: {e}")))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| ProbeError::Tls(e.to_string()))?;
    // a preconfigured TLS set-up is taken as it is: skipping verification is said in it
    let tls = if skip {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(dtr_core::pki::AnyCertificate(provider)))
            .with_no_client_auth()
    } else {
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .timeout(std::time::Duration::from_secs(20))
        .connect_timeout(std::time::Duration::from_secs(5))
        .build()
        .map_err(|e| ProbeError::Tls(e.to_string()))
}

impl Store {
    /// The store of `config`; `None` for the filesystem driver (the replica's own volume).
    pub async fn open(config: &StorageConfig, trust: &Trust) -> Result<Option<Store>, ProbeError> {
        let http = http_client(config, trust)?;
        Ok(match config.driver.as_str() {
            "s3" => Some(Store::S3(S3::new(config, http))),
            "swift" => Some(Store::Swift(Swift::login(config, http).await?)),
            _ => None,
        })
    }

    pub async fn list(&self, prefix: &str, max: usize) -> Result<Vec<String>, ProbeError> {
        Ok(match self {
            Store::S3(s) => s.list(prefix, max).await?,
            Store::Swift(s) => s.list(prefix, max).await?,
        })
    }

    pub async fn list_all(&self, prefix: &str) -> Result<Vec<(String, u64)>, ProbeError> {
        Ok(match self {
            Store::S3(s) => s.list_all(prefix).await?,
            Store::Swift(s) => s.list_all(prefix).await?,
        })
    }

    pub async fn put(&self, key: &str, data: Vec<u8>) -> Result<(), ProbeError> {
        match self {
            Store::S3(s) => s.put(key, data).await?,
            Store::Swift(s) => s.put(key, data).await?,
        }
        Ok(())
    }

    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, ProbeError> {
        Ok(match self {
            Store::S3(s) => s.get(key).await?,
            Store::Swift(s) => s.get(key).await?,
        })
    }

    pub async fn exists(&self, key: &str) -> Result<bool, ProbeError> {
        Ok(match self {
            Store::S3(s) => s.exists(key).await?,
            Store::Swift(s) => s.exists(key).await?,
        })
    }

    pub async fn delete(&self, key: &str) -> Result<(), ProbeError> {
        match self {
            Store::S3(s) => s.delete(key).await?,
            Store::Swift(s) => s.delete(key).await?,
        }
        Ok(())
    }
}

/// Tries `config` the way the registry will use it: the container is made (swift, as the
/// driver does), the root is listed, a probe object is written under the root, read back,
/// compared and deleted. Nothing is left in the store.
pub async fn try_config(config: &StorageConfig, trust: &Trust) -> Result<(), ProbeError> {
    let Some(store) = Store::open(config, trust).await? else {
        return Ok(());
    };
    if let Store::Swift(s) = &store {
        s.ensure_container().await?;
    }
    let root = config.object_key("/");
    store.list(&root, 1).await?;
    let key = config.object_key(&format!(
        "/dtr-probe/{}",
        data_encoding::HEXLOWER.encode(&rand::random::<[u8; 8]>())
    ));
    let data = format!("dtr storage probe {}", dtr_core::timestamp()).into_bytes();
    store.put(&key, data.clone()).await?;
    let back = store.get(&key).await;
    let deleted = store.delete(&key).await;
    if back? != Some(data) {
        return Err(ProbeError::Mismatch { key });
    }
    deleted
}

/// Of `tags` (`(repository, tag)`), those whose link the store of `config` does not hold.
pub async fn missing_tags(
    config: &StorageConfig,
    trust: &Trust,
    tags: &[(String, String)],
) -> Result<Vec<(String, String)>, ProbeError> {
    let Some(store) = Store::open(config, trust).await? else {
        return Ok(Vec::new());
    };
    let mut missing = Vec::new();
    for (repo, tag) in tags {
        let key = config.object_key(&super::tag_link(repo, tag));
        if !store.exists(&key).await? {
            missing.push((repo.clone(), tag.clone()));
        }
    }
    Ok(missing)
}
