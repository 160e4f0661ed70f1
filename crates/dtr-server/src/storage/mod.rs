//! The image storage as the roles reach it: the configuration (`dtr_core::contract::storage`)
//! read from etcd, and the clients (`s3`, `swift`) with which a configuration is tried before
//! it is used and the store is looked into (`probe`).

pub mod probe;
pub mod s3;
pub mod swift;

pub use dtr_core::contract::storage::*;

/// The cluster's storage configuration and the etcd revision it was read at. `serializable`
/// reads answer from the member's own state (a registry keeps starting while the cluster has
/// no quorum). Never set: the replica's volume, generation 0.
pub async fn load(
    etcd: &crate::etcd::Etcd,
    serializable: bool,
) -> crate::Result<(StoredStorage, i64)> {
    match etcd.get(KEY, serializable).await? {
        None => Ok((StoredStorage::default(), 0)),
        Some(e) => serde_json::from_slice(&e.value)
            .map(|s| (s, e.mod_revision))
            .map_err(|err| crate::Error::BadFile {
                what: format!("etcd key {KEY}"),
                reason: err.to_string(),
            }),
    }
}

/// The TLS trust for object stores of a role whose dtr-ca volume is at `ca_dir`: the system's
/// CAs and `--custom-ca-cert-bundle`.
pub fn trust(ca_dir: &str) -> probe::Trust {
    probe::Trust {
        extra_pem: std::fs::read_to_string(format!(
            "{ca_dir}/{}",
            dtr_core::contract::phase2::CUSTOM_CA
        ))
        .ok(),
    }
}

/// What to do about a store whose certificate is not trusted.
pub(crate) const NOT_TRUSTED_HINT: &str = "give the cluster its CA with `dtr reconfigure --custom-ca-cert-bundle`, or set skipverify: true to use it unverified";

/// Whether a request failed on the server's certificate (rustls: "invalid peer certificate").
pub(crate) fn is_certificate_failure(reason: &str) -> bool {
    reason.contains("invalid peer certificate") || reason.contains("certificate verify failed")
}

#[cfg(test)]
mod tests;
