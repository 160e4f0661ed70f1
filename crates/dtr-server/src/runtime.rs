//! What the api and jobrunner roles share: their configuration from the container's env,
//! TLS set-up from the replica's certificates, and plain log lines on stderr.

use std::io::BufReader;
use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use dtr_core::component::Component;
use dtr_core::contract::env::{self, process_env, RoleEnv};
use dtr_core::contract::phase2::TOMBSTONE;
use dtr_core::options::{LogLevel, ReplicaId};

use crate::error::{Error, Result};

/// A role's view of its container: `RoleEnv` (the contract with the plan) and where its
/// certificates are.
pub struct RoleConfig {
    pub component: Component,
    pub replica_id: ReplicaId,
    pub version: String,
    pub log_level: LogLevel,
    /// `host:port` of the metadata database members, this replica's first.
    pub db_hosts: Vec<String>,
    pub etcd_endpoints: Vec<String>,
    pub external_url: String,
    pub ca_dir: String,
}

impl RoleConfig {
    pub fn from_env(component: Component) -> Result<Self> {
        let ca_dir =
            process_env(env::CA_DIR).unwrap_or_else(|| dtr_core::contract::CA_MOUNT.into());
        // see dtr_refuse_if_removed in docker/common/lib.sh
        if let Ok(why) = std::fs::read_to_string(format!("{ca_dir}/{TOMBSTONE}")) {
            return Err(Error::Tombstoned {
                reason: why.trim().to_string(),
            });
        }
        let RoleEnv {
            base,
            db_hosts,
            etcd_endpoints,
            external_url,
        } = RoleEnv::from_env(process_env)?;
        Ok(RoleConfig {
            component,
            replica_id: base.replica_id,
            version: base.version,
            log_level: base.log_level,
            db_hosts,
            etcd_endpoints,
            external_url,
            ca_dir,
        })
    }

    pub fn container(&self, c: Component) -> String {
        c.container_name(&self.replica_id)
    }

    fn path(&self, rel: &str) -> String {
        format!("{}/{rel}", self.ca_dir)
    }

    pub fn ca_certs(&self) -> Result<Vec<CertificateDer<'static>>> {
        read_certs(&self.path("ca.pem"))
    }

    /// This component's certificate and key (its identity as a server and as a client).
    pub fn identity(&self) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
        let dir = self.component.name();
        Ok((
            read_certs(&self.path(&format!("{dir}/cert.pem")))?,
            read_key(&self.path(&format!("{dir}/key.pem")))?,
        ))
    }

    /// TLS client config: trusts only the cluster CA, presents this component's certificate.
    pub fn client_tls(&self) -> Result<rustls::ClientConfig> {
        client_tls(&self.ca_dir, self.component.name())
    }

    pub fn http_client(&self) -> Result<reqwest::Client> {
        reqwest::Client::builder()
            .use_preconfigured_tls(self.client_tls()?)
            .timeout(std::time::Duration::from_secs(3))
            .no_proxy()
            .build()
            .map_err(|e| Error::tls("HTTP client", e))
    }
}

/// TLS client config from the dtr-ca volume at `ca_dir`: trusts only the cluster CA, presents
/// the certificate of `component` (its directory in the volume).
pub fn client_tls(ca_dir: &str, component: &str) -> Result<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for c in read_certs(&format!("{ca_dir}/ca.pem"))? {
        roots.add(c).map_err(|e| Error::tls("cluster CA", e))?;
    }
    let certs = read_certs(&format!("{ca_dir}/{component}/cert.pem"))?;
    let key = read_key(&format!("{ca_dir}/{component}/key.pem"))?;
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::tls("protocol versions", e))?
        .with_root_certificates(roots)
        .with_client_auth_cert(certs, key)
        .map_err(|e| Error::tls("client certificate", e))
}

pub(crate) fn read_certs(path: &str) -> Result<Vec<CertificateDer<'static>>> {
    let data = std::fs::read(path).map_err(|e| Error::io(format!("read {path}"), e))?;
    rustls_pemfile::certs(&mut BufReader::new(&data[..]))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::io(format!("parse {path}"), e))
}

pub(crate) fn read_key(path: &str) -> Result<PrivateKeyDer<'static>> {
    let data = std::fs::read(path).map_err(|e| Error::io(format!("read {path}"), e))?;
    rustls_pemfile::private_key(&mut BufReader::new(&data[..]))
        .map_err(|e| Error::io(format!("parse {path}"), e))?
        .ok_or_else(|| Error::tls(path, "no private key in it"))
}

/// Writes `data` to `path` readable by this user only (a configuration with credentials).
pub fn write_private(path: &Path, data: &[u8]) -> Result<()> {
    write_with_mode(path, data, 0o600)
}

/// Writes `data` to `path` with `mode` (created so, never wider for a moment).
pub fn write_with_mode(path: &Path, data: &[u8], mode: u32) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .map_err(|e| Error::io(format!("write {}", path.display()), e))?;
    f.write_all(data)
        .map_err(|e| Error::io(format!("write {}", path.display()), e))
}

/// One log line on stderr: `2026-11-23T10:00:00Z INFO  message`.
pub fn log(level: LogLevel, threshold: LogLevel, msg: impl AsRef<str>) {
    if (level as u8) >= (threshold as u8) {
        eprintln!(
            "{} {:<5} {}",
            dtr_core::timestamp(),
            level.as_str().to_uppercase(),
            msg.as_ref()
        );
    }
}

/// Runs `program` as this process's child until it exits, passing SIGTERM and SIGINT on to it;
/// its exit code is the result (the wrappers `db-proxy` and `etcd-guard` end with it).
pub async fn supervise(program: &str, args: &[String]) -> Result<i32> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .spawn()
        .map_err(|e| Error::io(format!("start {program}"), e))?;
    let pid = child.id().map(|p| p as i32);
    let mut term = signal(SignalKind::terminate()).map_err(|e| Error::io("signal handler", e))?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| Error::io("signal handler", e))?;
    let pass_on = |sig: i32| {
        if let Some(pid) = pid {
            // SAFETY: kill(2) with a pid this process spawned and has not reaped yet.
            unsafe {
                libc::kill(pid, sig);
            }
        }
    };
    loop {
        tokio::select! {
            status = child.wait() => {
                let status = status.map_err(|e| Error::io(format!("wait for {program}"), e))?;
                return Ok(status.code().unwrap_or(1));
            }
            _ = term.recv() => pass_on(libc::SIGTERM),
            _ = int.recv() => pass_on(libc::SIGINT),
        }
    }
}
