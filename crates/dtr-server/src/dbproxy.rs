//! `dtr db-proxy --listen 127.0.0.1:5432 --db-host dtr-rethinkdb-<id> -- PROGRAM ARGS...`:
//! runs PROGRAM (notary-server or notary-signer, whose Go driver knows a single host) behind a
//! local TCP forwarder that sends every new connection to the metadata database's current
//! primary, as this replica's Patroni reports it (`db::members_leader_first`); with no primary,
//! to this replica's own member, which then serves reads only.
//!
//! TLS stays end to end: the client's handshake passes through untouched, and it checks the
//! server's certificate against `127.0.0.1`, a name every rethinkdb certificate carries.
//! The process exits with PROGRAM's exit code; SIGTERM and SIGINT are passed on to it.

use std::io::BufReader;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};

use crate::db;
use crate::error::{Error, Result};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

pub struct ProxyConfig {
    pub listen: String,
    /// This replica's database member, `host[:port]`.
    pub db_host: String,
    pub ca_file: String,
    pub program: Vec<String>,
}

fn http_client(ca_file: &str) -> Result<reqwest::Client> {
    let pem = std::fs::read(ca_file).map_err(|e| Error::io(format!("read {ca_file}"), e))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut BufReader::new(&pem[..])) {
        let cert = cert.map_err(|e| Error::io(format!("parse {ca_file}"), e))?;
        roots
            .add(cert)
            .map_err(|e| Error::tls(format!("cluster CA {ca_file}"), e))?;
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| Error::tls("protocol versions", e))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .timeout(Duration::from_secs(2))
        .no_proxy()
        .build()
        .map_err(|e| Error::tls("HTTP client", e))
}

fn with_port(host: &str) -> String {
    if host.contains(':') {
        host.to_string()
    } else {
        format!("{host}:5432")
    }
}

/// Forwards one client connection to the first member that accepts a TCP connection.
async fn forward(mut client: TcpStream, http: reqwest::Client, own: String) {
    let mut candidates = db::members_leader_first(&http, &own).await;
    if candidates.is_empty() {
        candidates.push(own);
    }
    for target in candidates {
        match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&target)).await {
            Ok(Ok(mut server)) => {
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                return;
            }
            _ => continue,
        }
    }
    // nothing reachable: closing the connection is the client's "server unavailable"
}

pub async fn run(cfg: ProxyConfig) -> Result<i32> {
    let Some((program, args)) = cfg.program.split_first() else {
        return Err(Error::Usage(
            "db-proxy: no program to run after `--`".into(),
        ));
    };
    let http = http_client(&cfg.ca_file)?;
    let listener = TcpListener::bind(&cfg.listen)
        .await
        .map_err(|e| Error::io(format!("listen on {}", cfg.listen), e))?;
    let own = with_port(&cfg.db_host);
    tokio::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    tokio::spawn(forward(stream, http.clone(), own.clone()));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    });

    crate::runtime::supervise(program, args).await
}
