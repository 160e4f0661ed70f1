//! What the api and jobrunner roles share: their configuration from the container's env,
//! TLS set-up from the replica's certificates, and plain log lines on stderr.

use std::io::BufReader;
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::components::Component;
use crate::error::{Error, Result};
use crate::options::{LogLevel, ReplicaId};

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

fn env(name: &str) -> Result<String> {
    std::env::var(name).map_err(|_| {
        Error::Role(format!(
            "environment variable {name} is not set (it is set by the install plan)"
        ))
    })
}

impl RoleConfig {
    pub fn from_env(component: Component) -> Result<Self> {
        let ca_dir = std::env::var("DTR_CA_DIR").unwrap_or_else(|_| crate::plan::CA_MOUNT.into());
        // see dtr_refuse_if_removed in docker/common/lib.sh
        let tombstone = format!("{ca_dir}/{}", crate::roles::phase2::TOMBSTONE);
        if let Ok(why) = std::fs::read_to_string(&tombstone) {
            return Err(Error::Role(format!(
                "this replica no longer belongs to a cluster ({}); it must not start again: remove it with dtr destroy",
                why.trim()
            )));
        }
        Ok(RoleConfig {
            component,
            replica_id: ReplicaId::parse(&env("DTR_REPLICA_ID")?)?,
            version: std::env::var("DTR_VERSION")
                .unwrap_or_else(|_| crate::version::VERSION.into()),
            log_level: LogLevel::parse(
                &std::env::var("LOG_LEVEL").unwrap_or_else(|_| "info".into()),
            )?,
            db_hosts: env("DTR_DB_HOSTS")?
                .split(',')
                .map(str::to_string)
                .collect(),
            etcd_endpoints: env("DTR_ETCD_ENDPOINTS")?
                .split(',')
                .map(str::to_string)
                .collect(),
            external_url: std::env::var("DTR_EXTERNAL_URL").unwrap_or_default(),
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
        let mut roots = rustls::RootCertStore::empty();
        for c in self.ca_certs()? {
            roots
                .add(c)
                .map_err(|e| Error::Role(format!("cluster CA: {e}")))?;
        }
        let (certs, key) = self.identity()?;
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Role(e.to_string()))?
        .with_root_certificates(roots)
        .with_client_auth_cert(certs, key)
        .map_err(|e| Error::Role(format!("client certificate: {e}")))
    }

    pub fn http_client(&self) -> Result<reqwest::Client> {
        reqwest::Client::builder()
            .use_preconfigured_tls(self.client_tls()?)
            .timeout(std::time::Duration::from_secs(3))
            .no_proxy()
            .build()
            .map_err(|e| Error::Role(format!("http client: {e}")))
    }
}

fn read_certs(path: &str) -> Result<Vec<CertificateDer<'static>>> {
    let data = std::fs::read(path).map_err(|e| Error::io(format!("read {path}"), e))?;
    rustls_pemfile::certs(&mut BufReader::new(&data[..]))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::io(format!("parse {path}"), e))
}

fn read_key(path: &str) -> Result<PrivateKeyDer<'static>> {
    let data = std::fs::read(path).map_err(|e| Error::io(format!("read {path}"), e))?;
    rustls_pemfile::private_key(&mut BufReader::new(&data[..]))
        .map_err(|e| Error::io(format!("parse {path}"), e))?
        .ok_or_else(|| Error::Role(format!("no private key in {path}")))
}

/// One log line on stderr: `2026-11-23T10:00:00Z INFO  message`.
pub fn log(level: LogLevel, threshold: LogLevel, msg: impl AsRef<str>) {
    if (level as u8) >= (threshold as u8) {
        eprintln!(
            "{} {:<5} {}",
            crate::report::timestamp(),
            level.as_str().to_uppercase(),
            msg.as_ref()
        );
    }
}
