//! `dtr registry`: the supervisor of the replica's distribution registry. It renders the
//! registry's configuration — the cluster's storage from etcd (`/dtr/storage`), the shared
//! upload secret, TLS, token auth, notifications — into a private file, runs `docker-registry
//! serve` on a loopback port, and forwards the container's ports to it (5000 HTTPS, 5001 debug
//! and health). When the storage configuration changes, it starts a second registry on the new
//! one, waits until it is healthy, sends new connections to it and lets the first finish its
//! transfers (distribution's `draintimeout`): no connection is refused or cut. Replicas move one
//! at a time (an etcd lock), and each records the generation it runs
//! (`/dtr/storage/replicas/<id>`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};

use dtr_core::component::Component;
use dtr_core::contract::env::{process_env, RegistryEnv};
use dtr_core::contract::phase2::TOMBSTONE;
use dtr_core::contract::CA_MOUNT;
use dtr_core::options::LogLevel;

use crate::error::{Error, Result};
use crate::etcd::Etcd;
use crate::runtime::log;
use crate::runtime::write_private;
use crate::storage::{StorageConfig, StoredStorage};

/// distribution's binary (Debian `docker-registry`).
pub const REGISTRY_BIN: &str = "/usr/bin/docker-registry";
/// The container's ports: clients (through nginx) and the health probe.
pub const HTTPS_PORT: u16 = 5000;
pub const DEBUG_PORT: u16 = 5001;
/// The two places a registry process listens on (HTTPS, debug): the current one and the one
/// taking over.
const SLOTS: [(u16, u16); 2] = [(5010, 5011), (5020, 5021)];
/// How long a registry that is being replaced may finish its transfers.
pub const DRAIN: Duration = Duration::from_secs(60);
/// How often etcd is asked for a new storage configuration.
const POLL: Duration = Duration::from_secs(2);
/// A storage generation whose registry did not start is tried again after this.
const RETRY_FAILED: Duration = Duration::from_secs(60);
/// The lock of the replica moving to a new configuration.
const SWITCH_LOCK: &str = "/dtr/storage/switching";
/// Where each replica records the generation its registry runs.
pub use dtr_core::contract::storage::REPLICAS_PREFIX;
/// The system's CAs, to which the cluster CA and `--custom-ca-cert-bundle` are added.
const SYSTEM_CAS: &str = "/etc/ssl/certs/ca-certificates.crt";
/// The shared secret the registry's notifications authenticate with, in the dtr-ca volume.
const NOTIFY_TOKEN: &str = "registry/notify-token";

/// distribution's `http.secret`, which signs the state of an upload between its requests: the
/// same on every replica, so that an upload begun through one can be finished through another
/// behind a load balancer. Derived from the notification secret every replica already shares
/// (join, backup and restore carry it), so that no new file is needed and clusters made
/// before this keep working.
pub fn http_secret(notify_token: &str) -> String {
    use ring::hmac;
    let key = hmac::Key::new(hmac::HMAC_SHA256, notify_token.trim().as_bytes());
    data_encoding::HEXLOWER.encode(hmac::sign(&key, b"dtr registry http.secret").as_ref())
}

struct Supervisor {
    env: RegistryEnv,
    ca_dir: String,
    run_dir: PathBuf,
    etcd: Etcd,
    bin: String,
    /// Index into `SLOTS` of the registry that gets new connections.
    active: Arc<AtomicUsize>,
}

/// One running registry process.
struct Registry {
    slot: usize,
    child: Child,
    generation: u64,
}

fn read(path: &str) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| Error::io(format!("read {path}"), e))
}

/// The distribution configuration for `storage` in `slot` (JSON is YAML to distribution).
pub fn registry_config(
    env: &RegistryEnv,
    ca_dir: &str,
    storage: &StorageConfig,
    slot: (u16, u16),
    http_secret: &str,
    notify_token: &str,
) -> Value {
    let rid = env.base.replica_id.as_str();
    let level = match env.base.log_level {
        LogLevel::Fatal => "error",
        l => l.as_str(),
    };
    let mut section = storage.section();
    if !storage.on_the_volume() {
        // distribution's purger panics on the `_uploads/` markers some object stores list
        // (distribution/distribution#2908), and each replica would walk the shared store: the
        // garbage collection job purges abandoned uploads there instead (docs/jobs.md)
        section["maintenance"]["uploadpurging"] = json!({"enabled": false});
    }
    json!({
        "version": "0.1",
        "log": {"level": level, "formatter": "text",
                "fields": {"service": "registry", "replica": rid}},
        "storage": section,
        "http": {
            "addr": format!("127.0.0.1:{}", slot.0),
            "secret": http_secret,
            "draintimeout": format!("{}s", DRAIN.as_secs()),
            "tls": {"certificate": format!("{ca_dir}/registry/cert.pem"),
                    "key": format!("{ca_dir}/registry/key.pem")},
            "debug": {"addr": format!("127.0.0.1:{}", slot.1)},
            "headers": {"X-Content-Type-Options": ["nosniff"]},
        },
        "auth": {"token": {
            "realm": env.token.realm,
            "service": env.token.service,
            "issuer": "dtr",
            "rootcertbundle": format!("{ca_dir}/api/token.pem"),
        }},
        "notifications": {"endpoints": [{
            "name": "dtr-api",
            "url": format!("https://{}:{}/internal/registry/events",
                           Component::Api.container_name(&env.base.replica_id),
                           dtr_core::component::API_PORT),
            "headers": {"Authorization": [format!("Bearer {notify_token}")]},
            "timeout": "2s", "threshold": 5, "backoff": "1s",
            "ignore": {"actions": ["pull"]},
        }]},
        "health": {"storagedriver": {"enabled": true, "interval": "10s", "threshold": 3}},
    })
}

impl Supervisor {
    fn log(&self, level: LogLevel, msg: impl AsRef<str>) {
        log(level, self.env.base.log_level, msg);
    }

    fn ca(&self, rel: &str) -> String {
        format!("{}/{rel}", self.ca_dir)
    }

    /// The storage configuration the cluster runs on, from this replica's own etcd member
    /// (serializable: it answers without the quorum); the replica's volume when none was set.
    async fn storage(&self) -> Result<StoredStorage> {
        Ok(crate::storage::load(&self.etcd, true).await?.0)
    }

    /// The CAs the registry trusts for its outgoing calls (the api's notifications, the object
    /// store): the system's, the cluster's, and the custom bundle.
    fn write_ca_bundle(&self) -> Result<PathBuf> {
        let mut bundle = std::fs::read_to_string(SYSTEM_CAS).unwrap_or_default();
        bundle.push('\n');
        bundle.push_str(&read(&self.ca("ca.pem"))?);
        if let Ok(custom) = std::fs::read_to_string(self.ca(dtr_core::contract::phase2::CUSTOM_CA))
        {
            bundle.push('\n');
            bundle.push_str(&custom);
        }
        let path = self.run_dir.join("ca-bundle.pem");
        write_private(&path, bundle.as_bytes())?;
        Ok(path)
    }

    /// Starts a registry on `storage` in `slot` and waits until its health checks pass.
    async fn start(&self, stored: &StoredStorage, slot: usize) -> Result<Registry> {
        let notify_token = read(&self.ca(NOTIFY_TOKEN))?;
        let config = registry_config(
            &self.env,
            &self.ca_dir,
            &stored.config,
            SLOTS[slot],
            &http_secret(&notify_token),
            notify_token.trim(),
        );
        let file = self.run_dir.join(format!("registry-{slot}.json"));
        write_private(&file, config.to_string().as_bytes())?;
        let bundle = self.write_ca_bundle()?;
        let mut child = Command::new(&self.bin)
            .args(["serve", &file.display().to_string()])
            // Go's TLS trusts this file; not AWS_CA_BUNDLE, with which the s3 driver panics
            .env("SSL_CERT_FILE", &bundle)
            .env_remove("AWS_CA_BUNDLE")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| Error::io(format!("start {}", self.bin), e))?;
        // distribution logs each notification endpoint with its headers (the token) at info
        let mut secrets = vec![notify_token.trim().to_string()];
        secrets.extend(stored.config.secrets().into_iter().map(str::to_string));
        let secrets = Arc::new(secrets);
        if let Some(out) = child.stdout.take() {
            tokio::spawn(forward_redacted(
                out,
                tokio::io::stdout(),
                Arc::clone(&secrets),
            ));
        }
        if let Some(err) = child.stderr.take() {
            tokio::spawn(forward_redacted(err, tokio::io::stderr(), secrets));
        }
        let health = format!("http://127.0.0.1:{}/debug/health", SLOTS[slot].1);
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(2))
            .build()
            .map_err(|e| Error::tls("HTTP client", e))?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        let healthy = loop {
            if let Ok(Some(status)) = child.try_wait() {
                break Err(Error::Unhealthy(format!(
                    "the registry on {} exited at start ({status})",
                    stored.config.describe()
                )));
            }
            if let Ok(r) = http.get(&health).send().await {
                if r.status().is_success() {
                    break Ok(());
                }
            }
            if tokio::time::Instant::now() >= deadline {
                break Err(Error::Unhealthy(format!(
                    "the registry on {} did not become healthy within 120s",
                    stored.config.describe()
                )));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        };
        // the configuration holds credentials: it is read once, at the start
        let _ = std::fs::remove_file(&file);
        if let Err(e) = healthy {
            let _ = child.kill().await;
            return Err(e);
        }
        Ok(Registry {
            slot,
            child,
            generation: stored.generation,
        })
    }

    async fn record(&self, generation: u64) {
        let key = format!("{REPLICAS_PREFIX}{}", self.env.base.replica_id);
        let value = json!({"generation": generation, "at": dtr_core::timestamp()}).to_string();
        if let Err(e) = self.etcd.put(&key, value.as_bytes()).await {
            self.log(
                LogLevel::Warn,
                format!("record the storage generation: {e}"),
            );
        }
    }

    /// Moves to `next`: a second registry on it, then the switch, then the first one drained.
    async fn switch(&self, current: Registry, next: &StoredStorage) -> Registry {
        let owner = self.env.base.replica_id.to_string();
        let lease = loop {
            match self.etcd.try_lock(SWITCH_LOCK, &owner, 300).await {
                Ok(Some(lease)) => break Some(lease),
                Ok(None) => tokio::time::sleep(POLL).await,
                Err(e) => {
                    self.log(
                        LogLevel::Warn,
                        format!("the storage switch lock: {e}; switching without it"),
                    );
                    break None;
                }
            }
        };
        self.log(
            LogLevel::Info,
            format!(
                "moving to storage generation {} ({})",
                next.generation,
                next.config.describe()
            ),
        );
        let other = 1 - current.slot;
        let result = match self.start(next, other).await {
            Ok(new) => {
                self.active.store(other, Ordering::SeqCst);
                drain(current);
                self.record(new.generation).await;
                self.log(
                    LogLevel::Info,
                    format!("storage generation {} in use", new.generation),
                );
                new
            }
            Err(e) => {
                self.log(
                    LogLevel::Error,
                    format!(
                        "storage generation {} did not start, staying on generation {}: {e}",
                        next.generation, current.generation
                    ),
                );
                current
            }
        };
        if let Some(lease) = lease {
            let _ = self.etcd.unlock(lease).await;
        }
        result
    }
}

/// Copies the registry's output line by line to ours, every secret in `secrets` replaced by
/// `[redacted]`.
async fn forward_redacted(
    from: impl tokio::io::AsyncRead + Unpin,
    mut to: impl tokio::io::AsyncWrite + Unpin,
    secrets: Arc<Vec<String>>,
) {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    let mut lines = tokio::io::BufReader::new(from).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let mut line = redact(&line, &secrets);
        line.push('\n');
        if to.write_all(line.as_bytes()).await.is_err() {
            return;
        }
        let _ = to.flush().await;
    }
}

/// `line` with each non-empty secret replaced by `[redacted]`.
fn redact(line: &str, secrets: &[String]) -> String {
    secrets
        .iter()
        .filter(|s| !s.is_empty())
        .fold(line.to_string(), |l, s| l.replace(s.as_str(), "[redacted]"))
}

/// Stops a registry with SIGTERM: it finishes its transfers (draintimeout), then exits; one
/// that does not is killed.
async fn stop(mut old: Registry) {
    if let Some(pid) = old.child.id() {
        // SAFETY: a signal to our own child process, which has not been reaped (it has an id)
        unsafe {
            libc::kill(pid as i32, libc::SIGTERM);
        }
    }
    if tokio::time::timeout(DRAIN + Duration::from_secs(5), old.child.wait())
        .await
        .is_err()
    {
        let _ = old.child.kill().await;
    }
}

/// `stop`, in the background: the supervisor goes on serving through the new registry.
fn drain(old: Registry) {
    tokio::spawn(stop(old));
}

/// Forwards every connection to `listen` to the active registry's port of `pick`.
async fn forward(
    listen: SocketAddr,
    active: Arc<AtomicUsize>,
    pick: fn((u16, u16)) -> u16,
) -> Result<()> {
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|e| Error::io(format!("listen on {listen}"), e))?;
    loop {
        let Ok((mut client, _)) = listener.accept().await else {
            continue;
        };
        let port = pick(SLOTS[active.load(Ordering::SeqCst)]);
        tokio::spawn(async move {
            if let Ok(mut server) = TcpStream::connect(("127.0.0.1", port)).await {
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
            }
        });
    }
}

pub async fn run() -> Result<()> {
    let ca_dir = process_env(dtr_core::contract::env::CA_DIR).unwrap_or_else(|| CA_MOUNT.into());
    if let Ok(why) = std::fs::read_to_string(format!("{ca_dir}/{TOMBSTONE}")) {
        return Err(Error::Tombstoned {
            reason: why.trim().to_string(),
        });
    }
    let env = RegistryEnv::from_env(process_env)?;
    let tls = crate::runtime::client_tls(&ca_dir, Component::Registry.name())?;
    let http = reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .timeout(Duration::from_secs(5))
        .no_proxy()
        .build()
        .map_err(|e| Error::tls("HTTP client", e))?;
    let sup = Supervisor {
        etcd: Etcd::new(http, env.etcd_endpoints.clone()),
        env,
        ca_dir,
        run_dir: PathBuf::from("/run/dtr"),
        bin: process_env("DTR_REGISTRY_BIN").unwrap_or_else(|| REGISTRY_BIN.into()),
        active: Arc::new(AtomicUsize::new(0)),
    };
    // the configuration: etcd must answer (the registry starts after it); retried a while
    let mut attempts = 0;
    let stored = loop {
        match sup.storage().await {
            Ok(s) => break s,
            Err(e) if attempts < 30 => {
                attempts += 1;
                sup.log(
                    LogLevel::Warn,
                    format!("read the storage configuration: {e}"),
                );
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(e) => return Err(e),
        }
    };
    let mut current = sup.start(&stored, 0).await?;
    sup.record(current.generation).await;
    sup.log(
        LogLevel::Info,
        format!(
            "registry of replica {} on {} (storage generation {})",
            sup.env.base.replica_id,
            stored.config.describe(),
            stored.generation
        ),
    );
    let https = tokio::spawn(forward(
        SocketAddr::from(([0, 0, 0, 0], HTTPS_PORT)),
        Arc::clone(&sup.active),
        |s| s.0,
    ));
    let debug = tokio::spawn(forward(
        SocketAddr::from(([127, 0, 0, 1], DEBUG_PORT)),
        Arc::clone(&sup.active),
        |s| s.1,
    ));
    // a generation that did not start is tried again after a while, not at every poll
    let mut failed: Option<(u64, tokio::time::Instant)> = None;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| Error::io("signal handler", e))?;
    let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .map_err(|e| Error::io("signal handler", e))?;
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            status = current.child.wait() => {
                return Err(Error::Unhealthy(format!("the registry exited ({})",
                    status.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string()))));
            }
            _ = tokio::time::sleep(POLL) => {
                match sup.storage().await {
                    Ok(next) if next.generation != current.generation
                        && failed.is_none_or(|(g, at)| g != next.generation || at.elapsed() > RETRY_FAILED) =>
                    {
                        current = sup.switch(current, &next).await;
                        failed = (current.generation != next.generation)
                            .then(|| (next.generation, tokio::time::Instant::now()));
                    }
                    Ok(_) => {}
                    Err(e) => sup.log(LogLevel::Debug, format!("read the storage configuration: {e}")),
                }
            }
        }
    }
    https.abort();
    debug.abort();
    // docker stop: the registry finishes its transfers, then exits
    stop(current).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use dtr_core::contract::env::{BaseEnv, TokenAuth};
    use dtr_core::options::{Proxies, ReplicaId};
    use dtr_core::pki::{self, Usage};

    #[test]
    fn a_logged_line_keeps_no_secret() {
        let secrets = vec!["tok3n".to_string(), String::new(), "AKIA".to_string()];
        let line = r#"configuring endpoint api (https://dtr-api:9443/internal/events), headers=map[Authorization:[Bearer tok3n]] key AKIA"#;
        let shown = redact(line, &secrets);
        assert!(
            !shown.contains("tok3n") && !shown.contains("AKIA"),
            "{shown}"
        );
        assert!(shown.contains("Bearer [redacted]"), "{shown}");
        assert_eq!(redact("plain", &secrets), "plain");
    }

    #[test]
    fn the_upload_secret_is_the_same_everywhere_and_not_the_token() {
        let a = http_secret("notify-token-value\n");
        assert_eq!(a, http_secret("notify-token-value"));
        assert_ne!(a, http_secret("another"));
        assert_eq!(a.len(), 64);
        assert!(!a.contains("notify-token-value"));
    }

    /// The rendered configuration is one distribution 2.8 starts with and serves health on.
    #[tokio::test]
    async fn distribution_runs_with_the_rendered_configuration() {
        let Some(bin) = crate::testing::required_env("DTR_REGISTRY_BIN") else {
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let ca_dir = dir.path().join("ca");
        for sub in ["registry", "api"] {
            std::fs::create_dir_all(ca_dir.join(sub)).unwrap();
        }
        let ca = pki::generate_ca("test CA").unwrap();
        let leaf = pki::issue(
            &ca.cert_pem,
            &ca.key_pem,
            "registry",
            &["localhost".into(), "127.0.0.1".into()],
            Usage::ServerAndClient,
        )
        .unwrap();
        let token = pki::issue(
            &ca.cert_pem,
            &ca.key_pem,
            "token",
            &["dtr-api".into()],
            Usage::TokenSigning,
        )
        .unwrap();
        std::fs::write(ca_dir.join("registry/cert.pem"), &leaf.cert_pem).unwrap();
        std::fs::write(ca_dir.join("registry/key.pem"), leaf.key_pem.expose()).unwrap();
        std::fs::write(ca_dir.join("api/token.pem"), &token.cert_pem).unwrap();
        let env = RegistryEnv {
            base: BaseEnv {
                replica_id: ReplicaId::parse("0123456789ab").unwrap(),
                version: "test".into(),
                log_level: LogLevel::Warn,
                proxies: Proxies::default(),
            },
            token: TokenAuth::for_authority("dtr.example.com"),
            etcd_endpoints: vec![],
        };
        let mut storage = StorageConfig::default();
        storage.params.insert(
            "rootdirectory".into(),
            json!(dir.path().join("storage").display().to_string()),
        );
        // free loopback ports for this run
        let port = || {
            std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
        };
        let slot = (port(), port());
        let config = registry_config(
            &env,
            &ca_dir.display().to_string(),
            &storage,
            slot,
            &http_secret("x"),
            "x",
        );
        assert_eq!(config["http"]["draintimeout"], "60s");
        assert_eq!(config["storage"]["redirect"]["disable"], true);
        // on its volume the registry purges abandoned uploads itself; on an object store the
        // garbage collection job does
        assert_eq!(
            config["storage"]["maintenance"]["uploadpurging"],
            Value::Null
        );
        let s3 = StorageConfig::from_section(
            &json!({"s3": {"region": "us-east-1", "bucket": "b"}}),
            &StorageConfig::default(),
        )
        .unwrap();
        let on_s3 = registry_config(&env, "/ca", &s3, slot, &http_secret("x"), "x");
        assert_eq!(
            on_s3["storage"]["maintenance"],
            json!({"readonly": {"enabled": false}, "uploadpurging": {"enabled": false}})
        );
        let file = dir.path().join("registry.json");
        std::fs::write(&file, config.to_string()).unwrap();
        let mut child = Command::new(&bin)
            .args(["serve", &file.display().to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        let url = format!("http://127.0.0.1:{}/debug/health", slot.1);
        let mut healthy = false;
        for _ in 0..100 {
            if let Ok(Some(status)) = child.try_wait() {
                let mut err = String::new();
                use tokio::io::AsyncReadExt;
                child
                    .stderr
                    .take()
                    .unwrap()
                    .read_to_string(&mut err)
                    .await
                    .unwrap();
                panic!("distribution exited ({status}): {err}");
            }
            if http
                .get(&url)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                healthy = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(healthy, "no health answer at {url}");
        // and it answers the token challenge over TLS on the HTTPS slot
        let tls = reqwest::Client::builder()
            .no_proxy()
            .danger_accept_invalid_certs(true)
            .build()
            .unwrap();
        let r = tls
            .get(format!("https://127.0.0.1:{}/v2/", slot.0))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
        let challenge = r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .to_string();
        assert!(
            challenge.contains("realm=\"https://dtr.example.com/auth/token\""),
            "{challenge}"
        );
    }
}
