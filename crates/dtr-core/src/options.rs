//! Validated values: what the CLI layer hands to the operations. A value of these types is
//! known good (a `ReplicaId` cannot hold a bad id, a `Subnet` is a real IPv4 CIDR, ...).

use std::fmt;
use std::net::Ipv4Addr;
use std::path::PathBuf;

use crate::error::{InputError as Error, Result};
use crate::pki::TlsMaterial;
use crate::secret::Secret;

/// 12 lowercase hex characters, like the original's `%012x`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct ReplicaId(String);

impl ReplicaId {
    pub fn parse(s: &str) -> Result<Self> {
        let ok = s.len() == 12
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if ok {
            Ok(ReplicaId(s.to_string()))
        } else {
            Err(Error::InvalidValue {
                flag: "--replica-id",
                value: s.to_string(),
                reason:
                    "a replica id is exactly 12 lowercase hexadecimal characters, e.g. 0123456789ab"
                        .into(),
            })
        }
    }

    pub fn random() -> Self {
        ReplicaId(format!("{:012x}", rand::random::<u64>() & 0xffff_ffff_ffff))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> serde::Deserialize<'de> for ReplicaId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        ReplicaId::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for ReplicaId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Log level of the service containers (`--log-level`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
    Fatal,
}

impl LogLevel {
    pub fn parse(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "debug" => Ok(LogLevel::Debug),
            "info" => Ok(LogLevel::Info),
            "warn" | "warning" => Ok(LogLevel::Warn),
            "error" => Ok(LogLevel::Error),
            "fatal" => Ok(LogLevel::Fatal),
            _ => Err(Error::InvalidValue {
                flag: "--log-level",
                value: s.to_string(),
                reason: "use one of debug, info, warn, error, fatal".into(),
            }),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
            LogLevel::Fatal => "fatal",
        }
    }
}

/// `--dtr-external-url`: always `https://host[:port]`, no path.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ExternalUrl {
    pub host: String,
    pub port: Option<u16>,
}

impl ExternalUrl {
    pub fn parse(s: &str) -> Result<Self> {
        let bad = |reason: &str| Error::InvalidValue {
            flag: "--dtr-external-url",
            value: s.to_string(),
            reason: reason.to_string(),
        };
        let rest = if let Some(r) = s.strip_prefix("https://") {
            r
        } else if s.starts_with("http://") {
            return Err(bad(
                "DTR is only served over HTTPS: use https://host[:port]",
            ));
        } else if s.contains("://") {
            return Err(bad("use https://host[:port]"));
        } else {
            s
        };
        let rest = rest.trim_end_matches('/');
        if rest.contains('/') || rest.contains('?') || rest.contains('@') {
            return Err(bad(
                "give only https://host[:port], without a path, query or user",
            ));
        }
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') || h.ends_with(']') => {
                let port = p
                    .parse::<u16>()
                    .ok()
                    .filter(|p| *p > 0)
                    .ok_or_else(|| bad("the port must be a number from 1 to 65535"))?;
                (h, Some(port))
            }
            _ => (rest, None),
        };
        let valid_host = !host.is_empty()
            && host.len() <= 253
            && host.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            })
            || host.parse::<std::net::IpAddr>().is_ok()
            || (host.starts_with('[')
                && host.ends_with(']')
                && host[1..host.len() - 1]
                    .parse::<std::net::Ipv6Addr>()
                    .is_ok());
        if !valid_host {
            return Err(bad("the host is not a valid DNS name or IP address"));
        }
        Ok(ExternalUrl {
            host: host.to_ascii_lowercase(),
            port,
        })
    }

    /// `host` or `host:port`, as users type it after `docker login`.
    pub fn authority(&self) -> String {
        match self.port {
            Some(p) => format!("{}:{p}", self.host),
            None => self.host.clone(),
        }
    }

    pub fn url(&self) -> String {
        format!("https://{}", self.authority())
    }
}

/// An IPv4 CIDR such as `10.1.0.0/24` (`--overlay-subnet`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(transparent)]
pub struct Subnet(String);

impl Subnet {
    pub const DEFAULT: &'static str = "10.1.0.0/24";

    pub fn parse(s: &str) -> Result<Self> {
        let bad = || Error::InvalidValue {
            flag: "--overlay-subnet",
            value: s.to_string(),
            reason: "use an IPv4 network in CIDR form, e.g. 10.1.0.0/24, with no host bits set"
                .into(),
        };
        let (addr, len) = s.split_once('/').ok_or_else(bad)?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| bad())?;
        let len: u32 = len.parse().map_err(|_| bad())?;
        if !(8..=29).contains(&len) {
            return Err(Error::InvalidValue {
                flag: "--overlay-subnet",
                value: s.to_string(),
                reason: "the prefix length must be between /8 and /29 (room for the replicas' containers)".into(),
            });
        }
        let mask = u32::MAX << (32 - len);
        if u32::from(addr) & !mask != 0 {
            return Err(bad());
        }
        Ok(Subnet(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Where image blobs live when the registry stores them on its `/storage` mount (an object
/// store is configured through the API instead, `dtr_server::storage`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Storage {
    /// The replica's own `dtr-registry-<id>` volume.
    DefaultVolume,
    /// A named volume chosen by the user; created if missing, never removed by destroy.
    NamedVolume(String),
    /// An absolute path on the node, bind-mounted.
    HostPath(PathBuf),
    /// An NFS export (`--nfs-storage-url`): the volume `dtr-nfs-registry-<id>` of the local
    /// driver with type `nfs`, on every replica's node.
    Nfs(NfsStorage),
}

impl Storage {
    /// Where replica `replica`'s images are, for the log.
    pub fn describe(&self, replica: &ReplicaId) -> String {
        match self {
            Storage::DefaultVolume => format!("volume dtr-registry-{replica} (the replica's own)"),
            Storage::NamedVolume(v) => format!("volume {v}"),
            Storage::HostPath(p) => format!("host path {}", p.display()),
            Storage::Nfs(n) => format!("NFS export {} (volume dtr-nfs-registry-{replica})", n.url),
        }
    }
}

/// `--nfs-storage-url nfs://host[:port]/path`, `--nfs-options` and `--async-nfs`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NfsStorage {
    /// As given, for messages and for the cluster's record.
    pub url: String,
    pub host: String,
    pub port: Option<u16>,
    /// The exported path, absolute.
    pub path: String,
    /// `--nfs-options`: mount options given verbatim (the server's address is added).
    pub options: Option<String>,
    /// `--async-nfs`: mount with `async` instead of `sync`.
    pub async_nfs: bool,
}

/// The mount options of an NFS volume when `--nfs-options` is not given.
pub const NFS_DEFAULT_OPTIONS: &str = "rw,nfsvers=4,hard";

impl NfsStorage {
    pub fn parse(url: &str, options: Option<&str>, async_nfs: bool) -> Result<NfsStorage> {
        let bad = |reason: &str| Error::InvalidValue {
            flag: "--nfs-storage-url",
            value: url.to_string(),
            reason: reason.to_string(),
        };
        let rest = url
            .strip_prefix("nfs://")
            .ok_or_else(|| bad("use nfs://<host>[:<port>]/<exported path>"))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => return Err(bad("no exported path: use nfs://<host>[:<port>]/<path>")),
        };
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') || h.ends_with(']') => (
                h,
                Some(
                    p.parse::<u16>()
                        .ok()
                        .filter(|p| *p > 0)
                        .ok_or_else(|| bad("the port must be a number from 1 to 65535"))?,
                ),
            ),
            _ => (authority, None),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let host_ok = !host.is_empty()
            && (host.parse::<std::net::IpAddr>().is_ok()
                || host.split('.').all(|l| {
                    !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                }));
        if !host_ok {
            return Err(bad("the host is not a valid DNS name or IP address"));
        }
        if path.split('/').any(|p| p == "..")
            || path.contains(',')
            || path.contains(char::is_whitespace)
        {
            return Err(bad(
                "the exported path must be absolute, without `..`, commas or spaces",
            ));
        }
        let options = options.map(str::trim).filter(|o| !o.is_empty());
        if let Some(o) = options {
            if o.contains(char::is_whitespace) || o.split(',').any(str::is_empty) {
                return Err(Error::InvalidValue {
                    flag: "--nfs-options",
                    value: o.to_string(),
                    reason:
                        "give comma-separated mount options without spaces, e.g. rw,nfsvers=4.1"
                            .into(),
                });
            }
        }
        Ok(NfsStorage {
            url: url.to_string(),
            host: host.to_string(),
            port,
            path: path.trim_end_matches('/').to_string().max("/".to_string()),
            options: options.map(str::to_string),
            async_nfs,
        })
    }

    /// The local driver's options of the volume: `type=nfs`, the mount options (the
    /// server's address first) and the device (`:<path>`).
    pub fn driver_opts(&self) -> std::collections::BTreeMap<String, String> {
        let mut o = format!("addr={}", self.host);
        if let Some(p) = self.port {
            o.push_str(&format!(",port={p}"));
        }
        match &self.options {
            Some(given) => {
                o.push(',');
                o.push_str(given);
            }
            None => {
                o.push(',');
                o.push_str(NFS_DEFAULT_OPTIONS);
                o.push_str(if self.async_nfs { ",async" } else { ",sync" });
            }
        }
        if self.options.is_some() && self.async_nfs {
            o.push_str(",async");
        }
        std::collections::BTreeMap::from([
            ("type".to_string(), "nfs".to_string()),
            ("o".to_string(), o),
            ("device".to_string(), format!(":{}", self.path)),
        ])
    }
}

impl Storage {
    pub fn parse(s: Option<&str>) -> Result<Self> {
        let Some(s) = s.filter(|s| !s.is_empty()) else {
            return Ok(Storage::DefaultVolume);
        };
        if s.starts_with('/') {
            if s.split('/').any(|part| part == "..") {
                return Err(Error::InvalidValue {
                    flag: "--dtr-storage-volume",
                    value: s.to_string(),
                    reason: "an absolute path without `..` components is needed".into(),
                });
            }
            return Ok(Storage::HostPath(PathBuf::from(s)));
        }
        let valid = s.len() >= 2
            && s.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
        if !valid {
            return Err(Error::InvalidValue {
                flag: "--dtr-storage-volume",
                value: s.to_string(),
                reason: "give a volume name ([a-zA-Z0-9][a-zA-Z0-9_.-]+) or an absolute host path"
                    .into(),
            });
        }
        Ok(Storage::NamedVolume(s.to_string()))
    }
}

/// Proxy settings passed to every service container.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Proxies {
    pub http: Option<String>,
    pub https: Option<String>,
    pub no_proxy: Option<String>,
}

/// Everything `install` needs, validated.
#[derive(Clone, Debug)]
pub struct InstallOptions {
    /// `--ucp-node`; `None` = this engine's own node.
    pub node: Option<String>,
    pub replica_id: ReplicaId,
    pub http_port: u16,
    pub https_port: u16,
    pub external_url: Option<ExternalUrl>,
    pub tls: Option<TlsMaterial>,
    pub storage: Storage,
    pub overlay_subnet: Subnet,
    pub log_level: LogLevel,
    pub proxies: Proxies,
    /// `--replica-rethinkdb-cache-mb`; `None` = derived from the node's memory.
    pub db_cache_mb: Option<u32>,
    /// The first administrator of a plain-engine install (`--admin-username/--admin-password`).
    pub admin: AdminAccount,
    /// `--ignore-preflight-errors`.
    pub ignore_checks: Vec<&'static str>,
    /// `--custom-ca-cert-bundle`: PEM certificates the services trust for remote servers.
    pub custom_ca_bundle: Option<String>,
}

/// One component of an account, namespace or repository name (the registry's grammar):
/// lower-case letters and digits, separated by single `.`, `_` or `-`, at most `max` bytes.
pub fn name_component_ok(s: &str, max: usize) -> bool {
    let bytes = s.as_bytes();
    let sep = |b: &u8| b"._-".contains(b);
    !s.is_empty()
        && s.len() <= max
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || sep(b))
        && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
        && !bytes.windows(2).any(|w| sep(&w[0]) && sep(&w[1]))
}

/// An account to create, with its password already hashed (the password itself goes no further
/// than the CLI layer).
#[derive(Clone, Debug)]
pub struct AdminAccount {
    pub username: String,
    pub password_hash: Secret<String>,
}

impl AdminAccount {
    /// The hand-over document phase 2 writes for the api (`/ca/api/admin.json`).
    pub fn handover(&self) -> Secret<String> {
        Secret::new(
            serde_json::json!({"username": self.username, "password_hash": self.password_hash.expose()})
                .to_string(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replica_id_is_exactly_twelve_lowercase_hex() {
        assert!(ReplicaId::parse("0123456789ab").is_ok());
        for bad in [
            "",
            "0123456789a",
            "0123456789abc",
            "0123456789AB",
            "0123456789ag",
            "01234567-9ab",
            " 123456789ab",
        ] {
            assert!(ReplicaId::parse(bad).is_err(), "{bad:?} must be refused");
        }
    }

    #[test]
    fn random_replica_ids_are_valid_and_differ() {
        let a = ReplicaId::random();
        let b = ReplicaId::random();
        assert!(ReplicaId::parse(a.as_str()).is_ok(), "{a}");
        assert_ne!(a, b);
    }

    #[test]
    fn log_levels_accept_any_case() {
        assert_eq!(LogLevel::parse("INFO").unwrap(), LogLevel::Info);
        assert_eq!(LogLevel::parse("Debug").unwrap().as_str(), "debug");
        assert!(LogLevel::parse("verbose").is_err());
    }

    #[test]
    fn external_url_forms() {
        let u = ExternalUrl::parse("https://Registry.Example.com:8443/").unwrap();
        assert_eq!(u.url(), "https://registry.example.com:8443");
        assert_eq!(
            ExternalUrl::parse("dtr.local").unwrap().url(),
            "https://dtr.local"
        );
        assert_eq!(ExternalUrl::parse("10.0.0.5:443").unwrap().port, Some(443));
        for bad in [
            "http://x",
            "https://x/path",
            "https://",
            "https://a:0",
            "https://a:99999",
            "ftp://x",
            "https://a b",
        ] {
            assert!(ExternalUrl::parse(bad).is_err(), "{bad:?} must be refused");
        }
    }

    #[test]
    fn subnets() {
        assert!(Subnet::parse("10.1.0.0/24").is_ok());
        assert!(Subnet::parse("172.30.0.0/16").is_ok());
        for bad in [
            "10.1.0.1/24",
            "10.1.0.0",
            "10.1.0.0/33",
            "10.1.0.0/30",
            "x/24",
            "::1/64",
        ] {
            assert!(Subnet::parse(bad).is_err(), "{bad:?} must be refused");
        }
    }

    #[test]
    fn nfs_urls_and_the_volume_options_they_make() {
        let n = NfsStorage::parse("nfs://nas.example.com/exports/dtr/", None, false).unwrap();
        assert_eq!(
            (n.host.as_str(), n.port, n.path.as_str()),
            ("nas.example.com", None, "/exports/dtr")
        );
        let o = n.driver_opts();
        assert_eq!(o["type"], "nfs");
        assert_eq!(o["o"], "addr=nas.example.com,rw,nfsvers=4,hard,sync");
        assert_eq!(o["device"], ":/exports/dtr");
        let n = NfsStorage::parse("nfs://10.0.0.7:2049/", Some("rw,nfsvers=4.1"), true).unwrap();
        assert_eq!(n.path, "/");
        assert_eq!(
            n.driver_opts()["o"],
            "addr=10.0.0.7,port=2049,rw,nfsvers=4.1,async"
        );
        assert_eq!(n.driver_opts()["device"], ":/");
        for bad in [
            "http://nas/x",
            "nfs://nas",
            "nfs:///x",
            "nfs://nas:0/x",
            "nfs://na s/x",
            "nfs://nas/a/../b",
            "nfs://nas/a,b",
        ] {
            match NfsStorage::parse(bad, None, false) {
                Err(Error::InvalidValue { flag, .. }) => {
                    assert_eq!(flag, "--nfs-storage-url", "{bad}")
                }
                other => panic!("{bad}: {other:?}"),
            }
        }
        match NfsStorage::parse("nfs://nas/x", Some("rw, sync"), false) {
            Err(Error::InvalidValue { flag, .. }) => assert_eq!(flag, "--nfs-options"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn storage_forms() {
        assert_eq!(Storage::parse(None).unwrap(), Storage::DefaultVolume);
        assert_eq!(
            Storage::parse(Some("my-blobs")).unwrap(),
            Storage::NamedVolume("my-blobs".into())
        );
        assert_eq!(
            Storage::parse(Some("/srv/dtr")).unwrap(),
            Storage::HostPath("/srv/dtr".into())
        );
        assert!(Storage::parse(Some("/srv/../etc")).is_err());
        assert!(Storage::parse(Some("bad name")).is_err());
    }
}
