//! Phase 2 of install, run as root in the short-lived `dtr-phase2` container with the replica's
//! `dtr-ca` volume mounted: creates (or reuses) the cluster CA and writes every certificate, key
//! and passphrase the components need, with owners and modes from docs/components.md.
//! The CA private key is created here and never leaves the volume.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{chown, PermissionsExt};
use std::path::{Path, PathBuf};

use dtr_core::component::{Component, REGISTRY_SECRETS_GID};
use dtr_core::contract::phase2::{
    CertRequest, CertResult, Phase2Secrets, ADMIN_PATH, CUSTOM_CA, JOIN_STAGING, REQUEST_PATH,
    SEED_DIR, SEED_FILES, SIGNER_CLIENTS_CA, SIGNER_CLIENT_CERT, SIGNER_CLIENT_KEY, USER_KEY_PATH,
};
use dtr_core::options::ReplicaId;
use dtr_core::pki::{self, Usage};
use dtr_core::secret::Secret;

use crate::error::{Error, Result};

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let context = context.into();
    move |source| Error::io(context, source)
}

/// Writes a file atomically with the given mode and owner.
fn write_file(path: &Path, contents: &[u8], mode: u32, uid: u32) -> Result<()> {
    write_owned(path, contents, mode, uid, uid)
}

/// A secret of the component whose uid is `uid`: 0600 to it, except the registry's, which are
/// root's and 0640 to `REGISTRY_SECRETS_GID` (the jobrunner's collector takes the registry's
/// uid, never that group).
fn write_secret(path: &Path, contents: &[u8], uid: u32) -> Result<()> {
    if uid == Component::Registry.uid() {
        write_owned(path, contents, 0o640, 0, REGISTRY_SECRETS_GID)
    } else {
        write_owned(path, contents, 0o600, uid, uid)
    }
}

fn write_owned(path: &Path, contents: &[u8], mode: u32, uid: u32, gid: u32) -> Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode_compat(mode)
            .open(&tmp)
            .map_err(io(format!("create {}", tmp.display())))?;
        f.write_all(contents)
            .map_err(io(format!("write {}", tmp.display())))?;
        f.sync_all()
            .map_err(io(format!("sync {}", tmp.display())))?;
    }
    fs::set_permissions(&tmp, fs::Permissions::from_mode(mode))
        .map_err(io(format!("chmod {}", tmp.display())))?;
    chown(&tmp, Some(uid), Some(gid)).map_err(io(format!("chown {}", tmp.display())))?;
    fs::rename(&tmp, path).map_err(io(format!("rename to {}", path.display())))
}

trait ModeCompat {
    fn mode_compat(&mut self, mode: u32) -> &mut Self;
}

impl ModeCompat for fs::OpenOptions {
    fn mode_compat(&mut self, mode: u32) -> &mut Self {
        use std::os::unix::fs::OpenOptionsExt;
        self.mode(mode)
    }
}

fn dir(path: PathBuf, mode: u32) -> Result<PathBuf> {
    fs::create_dir_all(&path).map_err(io(format!("create {}", path.display())))?;
    fs::set_permissions(&path, fs::Permissions::from_mode(mode))
        .map_err(io(format!("chmod {}", path.display())))?;
    chown(&path, Some(0), Some(0)).map_err(io(format!("chown {}", path.display())))?;
    Ok(path)
}

/// Loads the CA from the volume, or makes one. Returns (cert, key, reused).
fn cluster_ca(ca_dir: &Path, replica: &ReplicaId) -> Result<(String, Secret<String>, bool)> {
    let cert_path = ca_dir.join("ca.pem");
    let root = dir(ca_dir.join("root"), 0o700)?;
    let key_path = root.join("ca-key.pem");
    if cert_path.exists() && key_path.exists() {
        let cert =
            fs::read_to_string(&cert_path).map_err(io(format!("read {}", cert_path.display())))?;
        let key = Secret::new(
            fs::read_to_string(&key_path).map_err(io(format!("read {}", key_path.display())))?,
        );
        return Ok((cert, key, true));
    }
    let ca = pki::generate_ca(&format!("DTR cluster CA {replica}"))?;
    write_file(&key_path, ca.key_pem.expose().as_bytes(), 0o600, 0)?;
    write_file(&cert_path, ca.cert_pem.as_bytes(), 0o644, 0)?;
    Ok((ca.cert_pem, ca.key_pem, false))
}

/// Who may call this replica's notary-signer: a CA of its own, made here and forgotten at
/// once (its key is never written), that signs exactly two client certificates — the
/// notary-server's and the signer's own health probe. The signer trusts only it, so the
/// cluster CA's other certificates (nginx's, the api's, …) cannot reach the signing keys.
/// Phase 2 writes both sides together, so they always match.
fn write_signer_clients(
    ca_dir: &Path,
    replica: &ReplicaId,
    signer_uid: u32,
    server_uid: u32,
) -> Result<()> {
    let ca = pki::generate_ca(&format!("DTR notary-signer callers {replica}"))?;
    let signer = ca_dir.join(Component::NotarySigner.name());
    let server = ca_dir.join(Component::NotaryServer.name());
    write_file(
        &signer.join(SIGNER_CLIENTS_CA),
        ca.cert_pem.as_bytes(),
        0o644,
        0,
    )?;
    for (dir, cn, uid) in [
        (&server, Component::NotaryServer.name(), server_uid),
        (&signer, "notary-signer-health", signer_uid),
    ] {
        let client = pki::issue(&ca.cert_pem, &ca.key_pem, cn, &[], Usage::Client)?;
        write_file(
            &dir.join(SIGNER_CLIENT_CERT),
            client.cert_pem.as_bytes(),
            0o644,
            0,
        )?;
        write_file(
            &dir.join(SIGNER_CLIENT_KEY),
            client.key_pem.expose().as_bytes(),
            0o600,
            uid,
        )?;
    }
    Ok(())
}

/// The work itself, on a CA directory (the mounted volume; a temp dir in tests).
pub fn write_certs(ca_dir: &Path, req: &CertRequest, secrets: Phase2Secrets) -> Result<CertResult> {
    let user_key = secrets.user_key;
    fs::set_permissions(ca_dir, fs::Permissions::from_mode(0o755))
        .map_err(io(format!("chmod {}", ca_dir.display())))?;
    install_seed(ca_dir, &secrets.seed)?;
    let (ca_cert, ca_key, reused_ca) = cluster_ca(ca_dir, &req.replica_id)?;

    for c in &req.components {
        let d = dir(ca_dir.join(c.component.name()), 0o755)?;
        let names = vec![c.hostname.clone(), "localhost".into(), "127.0.0.1".into()];
        let leaf = pki::issue(
            &ca_cert,
            &ca_key,
            c.component.name(),
            &names,
            Usage::ServerAndClient,
        )?;
        write_file(&d.join("cert.pem"), leaf.cert_pem.as_bytes(), 0o644, 0)?;
        write_secret(&d.join("key.pem"), leaf.key_pem.expose().as_bytes(), c.uid)?;

        match c.component {
            Component::Api => {
                // kept when it exists: the tokens any replica issues must pass every registry
                if !d.join("token-key.pem").exists() {
                    let token = pki::issue(
                        &ca_cert,
                        &ca_key,
                        "dtr token signer",
                        std::slice::from_ref(&c.hostname),
                        Usage::TokenSigning,
                    )?;
                    write_file(&d.join("token.pem"), token.cert_pem.as_bytes(), 0o644, 0)?;
                    write_file(
                        &d.join("token-key.pem"),
                        token.key_pem.expose().as_bytes(),
                        0o600,
                        c.uid,
                    )?;
                }
                if let Some(admin) = &secrets.admin {
                    // the api creates the account from it when there is none yet
                    write_file(
                        &d.join("admin.json"),
                        admin.expose().as_bytes(),
                        0o600,
                        c.uid,
                    )?;
                }
            }
            Component::NotarySigner => {
                let path = d.join("passphrase");
                if !path.exists() {
                    let bytes: [u8; 32] = rand::random();
                    write_file(&path, hex::encode(bytes).as_bytes(), 0o600, c.uid)?;
                }
            }
            _ => {}
        }
    }
    write_notify_token(ca_dir, req)?;
    let uid_of = |component| {
        req.components
            .iter()
            .find(|c| c.component == component)
            .map(|c| c.uid)
    };
    if let (Some(signer), Some(server)) = (
        uid_of(Component::NotarySigner),
        uid_of(Component::NotaryServer),
    ) {
        write_signer_clients(ca_dir, &req.replica_id, signer, server)?;
    }
    if let Some(bundle) = &req.custom_ca_bundle {
        write_file(&ca_dir.join(CUSTOM_CA), bundle.as_bytes(), 0o644, 0)?;
    }

    let nginx_uid = req
        .components
        .iter()
        .find(|c| c.component == Component::Nginx)
        .map(|c| c.uid)
        .unwrap_or(Component::Nginx.uid());
    let ext = dir(ca_dir.join("external"), 0o755)?;
    let external_ca = match (&req.user_cert, user_key) {
        (Some(user), Some(key)) => {
            write_file(&ext.join("cert.pem"), user.cert_pem.as_bytes(), 0o644, 0)?;
            write_file(
                &ext.join("key.pem"),
                key.expose().as_bytes(),
                0o600,
                nginx_uid,
            )?;
            // Without --dtr-ca, the top-most certificate of the chain is what clients must trust.
            user.ca_pem
                .clone()
                .unwrap_or_else(|| pki::last_pem_block(&user.cert_pem))
        }
        (Some(_), None) => {
            return Err(Error::Phase2 {
                step: "certs".into(),
                message: "--dtr-cert was given but its key did not arrive".into(),
            })
        }
        (None, _) => {
            let leaf = pki::issue(
                &ca_cert,
                &ca_key,
                req.external_names
                    .first()
                    .map(String::as_str)
                    .unwrap_or("dtr"),
                &req.external_names,
                Usage::Server,
            )?;
            // nginx sends the chain: leaf, then the CA
            write_file(
                &ext.join("cert.pem"),
                format!("{}{}", leaf.cert_pem, ca_cert).as_bytes(),
                0o644,
                0,
            )?;
            write_file(
                &ext.join("key.pem"),
                leaf.key_pem.expose().as_bytes(),
                0o600,
                nginx_uid,
            )?;
            ca_cert.clone()
        }
    };
    write_file(&ext.join("ca.pem"), external_ca.as_bytes(), 0o644, 0)?;

    Ok(CertResult {
        external_ca_fingerprint: pki::fingerprint(&external_ca)?,
        cluster_ca_fingerprint: pki::fingerprint(&ca_cert)?,
        external_ca_pem: external_ca,
        reused_ca,
    })
}

/// Writes the cluster's shared files a join brought, before anything else is made: the CA found
/// there is then reused like on a re-run of install.
fn install_seed(ca_dir: &Path, seed: &[(String, Secret<Vec<u8>>)]) -> Result<()> {
    for (rel, contents) in seed {
        let Some(file) = SEED_FILES.iter().find(|f| f.path == rel) else {
            return Err(Error::Phase2 {
                step: "certs".into(),
                message: format!("unexpected cluster file {rel}"),
            });
        };
        let path = ca_dir.join(rel);
        if let Some(parent) = path.parent() {
            let parent_mode = if rel.starts_with("root/") {
                0o700
            } else {
                0o755
            };
            dir(parent.to_path_buf(), parent_mode)?;
        }
        let owner = file.owner.map_or(0, Component::uid);
        if file.mode == 0o600 {
            write_secret(&path, contents.expose(), owner)?;
        } else {
            write_file(&path, contents.expose(), file.mode, owner)?;
        }
    }
    Ok(())
}

/// The shared secret with which the registry authenticates its notifications to the api: the
/// same random value in `registry/notify-token` and `api/notify-token`, each readable only by
/// its component. Kept when both exist (another replica's api must accept it too).
fn write_notify_token(ca_dir: &Path, req: &CertRequest) -> Result<()> {
    let uid = |component| {
        req.components
            .iter()
            .find(|c| c.component == component)
            .map(|c| c.uid)
    };
    let (Some(registry_uid), Some(api_uid)) = (uid(Component::Registry), uid(Component::Api))
    else {
        return Ok(());
    };
    let (reg_path, api_path) = (
        ca_dir.join("registry/notify-token"),
        ca_dir.join("api/notify-token"),
    );
    let token = match fs::read_to_string(&api_path) {
        Ok(t) if reg_path.exists() => t,
        _ => hex::encode(rand::random::<[u8; 32]>()),
    };
    write_secret(&reg_path, token.as_bytes(), registry_uid)?;
    write_file(&api_path, token.as_bytes(), 0o600, api_uid)
}

/// `dtr phase2 certs` inside the container: read the uploaded request, write, print the result.
pub fn run_certs() -> Result<()> {
    let raw = fs::read_to_string(REQUEST_PATH).map_err(io(format!("read {REQUEST_PATH}")))?;
    let req: CertRequest = serde_json::from_str(&raw).map_err(|e| Error::Phase2 {
        step: "certs".into(),
        message: format!("bad request: {e}"),
    })?;
    let ca_dir = Path::new(dtr_core::contract::CA_MOUNT);
    let take = |path: &Path| match fs::read_to_string(path) {
        Ok(k) => {
            let _ = fs::remove_file(path);
            Some(Secret::new(k))
        }
        Err(_) => None,
    };
    // what phase 1 uploaded, or what the join agent staged in the volume
    let staged = ca_dir.join(JOIN_STAGING);
    let mut seed = Vec::new();
    for file in SEED_FILES {
        let rel = file.path;
        for path in [Path::new(SEED_DIR).join(rel), staged.join(rel)] {
            if let Ok(bytes) = fs::read(&path) {
                let _ = fs::remove_file(&path);
                seed.push((rel.to_string(), Secret::new(bytes)));
                break;
            }
        }
    }
    let secrets = Phase2Secrets {
        user_key: take(Path::new(USER_KEY_PATH))
            .or_else(|| take(&staged.join(dtr_core::contract::cluster::EXTERNAL_KEY))),
        admin: take(Path::new(ADMIN_PATH)),
        seed,
    };
    let result = write_certs(ca_dir, &req, secrets);
    if staged.exists() {
        fs::remove_dir_all(&staged).map_err(io(format!("remove {}", staged.display())))?;
    }
    println!("{}", result?.to_line());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use dtr_core::contract::phase2::ComponentCert;

    #[test]
    fn writes_the_contract_layout_and_reuses_the_ca() {
        assert!(
            nix_is_root(),
            "phase 2 chowns what it writes to the components' uids: run the tests as root (as CI does)"
        );
        let dir = tempfile::tempdir().unwrap();
        let rid = ReplicaId::parse("0123456789ab").unwrap();
        let req = CertRequest {
            replica_id: rid.clone(),
            components: Component::ALL
                .iter()
                .map(|c| ComponentCert {
                    component: *c,
                    hostname: c.container_name(&rid),
                    uid: c.uid(),
                })
                .collect(),
            external_names: vec!["node1".into(), "127.0.0.1".into()],
            user_cert: None,
            custom_ca_bundle: Some("-----BEGIN CERTIFICATE-----\n".into()),
        };
        let admin = r#"{"username":"admin","password_hash":"$argon2id$x"}"#;
        let secrets = Phase2Secrets {
            user_key: None,
            admin: Some(Secret::new(admin.into())),
            seed: Vec::new(),
        };
        let first = write_certs(dir.path(), &req, secrets).unwrap();
        assert!(!first.reused_ca);
        let meta = |p: &str| fs::metadata(dir.path().join(p)).unwrap();
        use std::os::unix::fs::MetadataExt;
        assert_eq!(meta("root").mode() & 0o777, 0o700);
        assert_eq!(meta("root/ca-key.pem").mode() & 0o777, 0o600);
        assert_eq!(meta("etcd/key.pem").uid(), Component::Etcd.uid());
        assert_eq!(meta("etcd/key.pem").mode() & 0o777, 0o600);
        for secret in ["registry/key.pem", "registry/notify-token"] {
            assert_eq!(meta(secret).uid(), 0, "{secret}");
            assert_eq!(meta(secret).gid(), REGISTRY_SECRETS_GID, "{secret}");
            assert_eq!(meta(secret).mode() & 0o777, 0o640, "{secret}");
        }
        assert_eq!(meta("external/key.pem").uid(), Component::Nginx.uid());
        assert_eq!(meta("api/token-key.pem").uid(), Component::Api.uid());
        assert_eq!(
            meta("notary-signer/passphrase").uid(),
            Component::NotarySigner.uid()
        );
        assert_eq!(meta("api/admin.json").uid(), Component::Api.uid());
        assert_eq!(meta("api/admin.json").mode() & 0o777, 0o600);
        assert_eq!(meta(CUSTOM_CA).mode() & 0o777, 0o644);
        // the signer's callers: a CA of their own, whose key is nowhere, signing exactly the
        // notary-server's and the signer's probe's client certificates
        let signer_ca =
            fs::read_to_string(dir.path().join("notary-signer").join(SIGNER_CLIENTS_CA)).unwrap();
        for (component, cn) in [
            (Component::NotaryServer, "notary-server"),
            (Component::NotarySigner, "notary-signer-health"),
        ] {
            let d = component.name();
            let key = format!("{d}/{SIGNER_CLIENT_KEY}");
            assert_eq!(meta(&key).uid(), component.uid());
            assert_eq!(meta(&key).mode() & 0o777, 0o600);
            let pem = fs::read(dir.path().join(d).join(SIGNER_CLIENT_CERT)).unwrap();
            let der = rustls_pemfile::certs(&mut &pem[..])
                .next()
                .unwrap()
                .unwrap();
            let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
            assert_eq!(
                cert.subject()
                    .iter_common_name()
                    .next()
                    .unwrap()
                    .as_str()
                    .unwrap(),
                cn
            );
            let ca_pem = rustls_pemfile::certs(&mut signer_ca.as_bytes())
                .next()
                .unwrap()
                .unwrap();
            let (_, ca) = x509_parser::parse_x509_certificate(&ca_pem).unwrap();
            assert_eq!(cert.issuer(), ca.subject());
            assert!(cert.verify_signature(Some(ca.public_key())).is_ok());
        }
        let cluster_ca = fs::read_to_string(dir.path().join("ca.pem")).unwrap();
        assert_ne!(signer_ca, cluster_ca);
        let token = fs::read_to_string(dir.path().join("api/notify-token")).unwrap();
        assert_eq!(token.len(), 64);
        let second = write_certs(dir.path(), &req, Phase2Secrets::default()).unwrap();
        assert!(second.reused_ca);
        let again = fs::read_to_string(dir.path().join("registry/notify-token")).unwrap();
        assert_eq!(token, again, "the notification secret is kept");
        assert_eq!(first.cluster_ca_fingerprint, second.cluster_ca_fingerprint);
    }

    fn nix_is_root() -> bool {
        std::fs::metadata("/proc/self")
            .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
            .unwrap_or(false)
    }
}
