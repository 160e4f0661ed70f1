//! Phase 2's contract: what the bootstrapper (phase 1) uploads into the short-lived
//! `dtr-phase2` container, and the one line it reads back. Phase 2 itself is
//! `dtr_server::phase2`; the container is planned by `dtr_bootstrap::plan` and run by
//! `dtr_bootstrap::engine::apply`.

use serde::{Deserialize, Serialize};

use crate::component::Component;
use crate::options::ReplicaId;
use crate::pki::UserCertPublic;
use crate::secret::Secret;

/// Where phase 1 uploads the request before it starts the container.
pub const REQUEST_PATH: &str = "/run/dtr/phase2-request.json";
/// Where phase 1 uploads `--dtr-key`, when given (never part of the request JSON).
pub const USER_KEY_PATH: &str = "/run/dtr/user-key.pem";
/// The first administrator (name and argon2 hash, JSON) for the api, uploaded like the key.
pub const ADMIN_PATH: &str = "/run/dtr/admin.json";
/// Where phase 1 uploads the cluster's shared files for a join (`SEED_FILES`, same layout).
pub const SEED_DIR: &str = "/run/dtr/seed";
/// Where the join agent leaves the cluster's shared files (`SEED_FILES`, and the user's
/// HTTPS key as `external/key.pem`) inside the new replica's dtr-ca volume for phase 2, which
/// installs them and removes the directory (root only, 0700).
pub const JOIN_STAGING: &str = ".join";
/// Written into the dtr-ca volume of every replica an emergency repair left out; the
/// components refuse to start when it exists.
pub const TOMBSTONE: &str = "tombstone.json";
/// Prefix of the one stdout line that carries the result back to phase 1.
pub const RESULT_PREFIX: &str = "DTR-PHASE2-RESULT ";

/// A file every replica of a cluster shares, copied from an existing replica's dtr-ca volume
/// when a replica joins (and kept by backups): its path in the volume, mode and owner (`None`
/// for root); `required` files every cluster has, the others only when configured.
pub struct SeedFile {
    pub path: &'static str,
    pub mode: u32,
    pub owner: Option<Component>,
    pub required: bool,
}

const fn seed(path: &'static str, mode: u32, owner: Option<Component>, required: bool) -> SeedFile {
    SeedFile {
        path,
        mode,
        owner,
        required,
    }
}

/// What every replica of a cluster shares. The CA key signs the new replica's certificates;
/// the token key because any replica's registry must accept the tokens any replica's api
/// issues; the notification secret (the registries' shared upload secret is derived from it);
/// the passphrase of the notary signer's keys, which all replicas share through the database;
/// and the CAs the services trust for remote servers (`--custom-ca-cert-bundle`), when given.
pub const SEED_FILES: &[SeedFile] = &[
    seed("ca.pem", 0o644, None, true),
    seed("root/ca-key.pem", 0o600, None, true),
    seed("api/token.pem", 0o644, None, true),
    seed("api/token-key.pem", 0o600, Some(Component::Api), true),
    seed("api/notify-token", 0o600, Some(Component::Api), true),
    seed(
        "registry/notify-token",
        0o600,
        Some(Component::Registry),
        true,
    ),
    seed(
        "notary-signer/passphrase",
        0o600,
        Some(Component::NotarySigner),
        true,
    ),
    seed(CUSTOM_CA, 0o644, None, false),
];

/// `--custom-ca-cert-bundle` in the dtr-ca volume: PEM certificates the services trust, besides
/// the system's, when they call remote TLS servers (an object store, a webhook receiver).
pub const CUSTOM_CA: &str = "custom-ca.pem";
/// Who may call a replica's notary-signer (issue 18, finding 2): the CA the signer trusts, in
/// its directory, and the client certificate and key signed by it, in the directories of the
/// notary-server and of the signer's health probe. Replicas installed before these existed
/// have none, and their signer trusts the cluster CA as before.
pub const SIGNER_CLIENTS_CA: &str = "signer-clients-ca.pem";
pub const SIGNER_CLIENT_CERT: &str = "signer-client.pem";
pub const SIGNER_CLIENT_KEY: &str = "signer-client-key.pem";

/// The cluster's shared files as `(path in the volume, contents)`.
pub type SeedFiles = Vec<(String, Secret<Vec<u8>>)>;

/// What phase 2 receives as files next to the request, never inside it: the user's TLS key,
/// the first administrator's name and password hash, and for a join the cluster's shared files.
#[derive(Default)]
pub struct Phase2Secrets {
    pub user_key: Option<Secret<String>>,
    pub admin: Option<Secret<String>>,
    pub seed: SeedFiles,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ComponentCert {
    pub component: Component,
    pub hostname: String,
    pub uid: u32,
}

/// What phase 2 must write. Holds no secret: the user's key travels as a separate file.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CertRequest {
    pub replica_id: ReplicaId,
    pub components: Vec<ComponentCert>,
    /// Names for the generated HTTPS certificate (ignored when the user brings one).
    pub external_names: Vec<String>,
    pub user_cert: Option<UserCertPublic>,
    /// `--custom-ca-cert-bundle` (PEM certificates, not a secret); `None` keeps what the
    /// volume has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_ca_bundle: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CertResult {
    /// The CA that clients must trust for the HTTPS port (served at `/ca`).
    pub external_ca_pem: String,
    pub external_ca_fingerprint: String,
    pub cluster_ca_fingerprint: String,
    pub reused_ca: bool,
}

impl CertResult {
    /// The line phase 2 prints on stdout.
    pub fn to_line(&self) -> String {
        format!(
            "{RESULT_PREFIX}{}",
            serde_json::to_string(self).expect("serializable")
        )
    }

    /// The result in phase 2's output, or why there is none.
    pub fn from_output(stdout: &str) -> Result<CertResult, String> {
        let line = stdout
            .lines()
            .find_map(|l| l.strip_prefix(RESULT_PREFIX))
            .ok_or_else(|| "it printed no result".to_string())?;
        serde_json::from_str(line).map_err(|e| format!("unreadable result: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_result_line_round_trips() {
        let r = CertResult {
            external_ca_pem: "-----BEGIN CERTIFICATE-----\n".into(),
            external_ca_fingerprint: "ab".into(),
            cluster_ca_fingerprint: "cd".into(),
            reused_ca: true,
        };
        let out = format!("some log\n{}\n", r.to_line());
        let back = CertResult::from_output(&out).unwrap();
        assert_eq!(back.external_ca_fingerprint, "ab");
        assert!(back.reused_ca);
        assert_eq!(
            CertResult::from_output("nothing").unwrap_err(),
            "it printed no result"
        );
    }

    #[test]
    fn every_seed_file_is_under_the_ca_volume() {
        for f in SEED_FILES {
            assert!(
                !f.path.starts_with('/') && !f.path.contains(".."),
                "{}",
                f.path
            );
            assert!(f.mode == 0o600 || f.mode == 0o644, "{}", f.path);
            // a secret is readable by its owner only
            assert!(f.mode == 0o600 || !f.path.contains("key"), "{}", f.path);
        }
    }
}
