//! Where the registry keeps image data: distribution's `storage` section, as the original's
//! API takes it (`PUT /api/v0/admin/settings/registry/simple`), checked field by field against
//! the drivers Debian's distribution 2.8 has (filesystem, s3, swift), kept cluster-wide in etcd
//! (`/dtr/storage`, `StoredStorage`), shown with its credentials redacted, and rendered into
//! the configuration each replica's registry and the jobrunner's garbage collection run with.
//! A contract: the api writes it, the registries and the jobrunner read it, and the
//! bootstrapper reads it back (reconfigure, restore) to say where the images are.

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::STORAGE_MOUNT;

/// The etcd key of the cluster's storage configuration (`StoredStorage`, JSON).
pub const KEY: &str = "/dtr/storage";
/// Where each replica's registry records the storage generation it runs (`<prefix><replica>`).
pub const REPLICAS_PREFIX: &str = "/dtr/storage/replicas/";
/// Shown instead of a credential; sent back unchanged, it means "keep the current one".
pub const REDACTED: &str = "*****";

/// The drivers this build's registry has (Debian's distribution 2.8).
pub const DRIVERS: [&str; 3] = ["filesystem", "s3", "swift"];
/// Drivers distribution knows that this build does not have.
const OTHER_DRIVERS: [&str; 6] = ["azure", "gcs", "oss", "inmemory", "cloudfront", "swift3"];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Text,
    Bool,
    Integer,
}

/// One parameter of a driver: its name (distribution's), type, whether it is required, and
/// whether it is a credential (never shown, never logged).
struct Param(&'static str, Kind, bool, bool);

const S3_PARAMS: &[Param] = &[
    Param("region", Kind::Text, true, false),
    Param("bucket", Kind::Text, true, false),
    Param("regionendpoint", Kind::Text, false, false),
    Param("rootdirectory", Kind::Text, false, false),
    Param("accesskey", Kind::Text, false, false),
    Param("secretkey", Kind::Text, false, true),
    Param("sessiontoken", Kind::Text, false, true),
    Param("secure", Kind::Bool, false, false),
    Param("v4auth", Kind::Bool, false, false),
    Param("skipverify", Kind::Bool, false, false),
    Param("chunksize", Kind::Integer, false, false),
    Param("multipartcopychunksize", Kind::Integer, false, false),
    Param("multipartcopymaxconcurrency", Kind::Integer, false, false),
    Param("multipartcopythresholdsize", Kind::Integer, false, false),
    Param("storageclass", Kind::Text, false, false),
    Param("encrypt", Kind::Bool, false, false),
    Param("keyid", Kind::Text, false, false),
    Param("objectacl", Kind::Text, false, false),
    Param("useragent", Kind::Text, false, false),
    Param("usedualstack", Kind::Bool, false, false),
    Param("accelerate", Kind::Bool, false, false),
];

const SWIFT_PARAMS: &[Param] = &[
    Param("authurl", Kind::Text, true, false),
    Param("username", Kind::Text, true, false),
    Param("password", Kind::Text, true, true),
    Param("container", Kind::Text, true, false),
    Param("region", Kind::Text, false, false),
    Param("tenant", Kind::Text, false, false),
    Param("tenantid", Kind::Text, false, false),
    Param("domain", Kind::Text, false, false),
    Param("domainid", Kind::Text, false, false),
    Param("tenantdomain", Kind::Text, false, false),
    Param("tenantdomainid", Kind::Text, false, false),
    Param("trustid", Kind::Text, false, false),
    Param("prefix", Kind::Text, false, false),
    Param("authversion", Kind::Integer, false, false),
    Param("endpointtype", Kind::Text, false, false),
    Param("insecureskipverify", Kind::Bool, false, false),
    Param("chunksize", Kind::Integer, false, false),
    Param("secretkey", Kind::Text, false, true),
    Param("accesskey", Kind::Text, false, false),
    Param("tempurlcontainerkey", Kind::Bool, false, false),
    Param("tempurlmethods", Kind::Text, false, false),
];

const FILESYSTEM_PARAMS: &[Param] = &[
    Param("rootdirectory", Kind::Text, false, false),
    Param("maxthreads", Kind::Integer, false, false),
];

fn params_of(driver: &str) -> &'static [Param] {
    match driver {
        "s3" => S3_PARAMS,
        "swift" => SWIFT_PARAMS,
        _ => FILESYSTEM_PARAMS,
    }
}

/// Why a storage configuration is refused, naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

fn invalid(msg: impl Into<String>) -> Invalid {
    Invalid(msg.into())
}

/// A checked storage configuration: the driver and its parameters (distribution's names and
/// values), and the sections DTR allows around it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StorageConfig {
    pub driver: String,
    pub params: Map<String, Value>,
    /// `maintenance.readonly.enabled`: the registry refuses writes.
    #[serde(default)]
    pub readonly: bool,
    /// `redirect.disable`: blobs are served through the registry (DTR's default), not by a
    /// redirect to the store.
    #[serde(default = "yes")]
    pub redirect_disable: bool,
}

fn yes() -> bool {
    true
}

impl Default for StorageConfig {
    /// The replica's volume, mounted at `/storage`.
    fn default() -> Self {
        StorageConfig {
            driver: "filesystem".into(),
            params: Map::from_iter([("rootdirectory".to_string(), json!(STORAGE_MOUNT))]),
            readonly: false,
            redirect_disable: true,
        }
    }
}

/// What etcd holds under `KEY`: the configuration, a generation each change increments (the
/// registries move when it changes), and who changed it when.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StoredStorage {
    pub generation: u64,
    pub config: StorageConfig,
    #[serde(default)]
    pub changed_by: String,
    #[serde(default)]
    pub changed_at: String,
}

fn as_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) => match s.to_ascii_lowercase().as_str() {
            "true" => Some(true),
            "false" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

fn check_kind(driver: &str, name: &str, kind: Kind, v: &Value) -> Result<Value, Invalid> {
    let field = format!("storage.{driver}.{name}");
    match kind {
        Kind::Text => match v {
            Value::String(s) => Ok(Value::String(s.clone())),
            Value::Number(n) => Ok(Value::String(n.to_string())),
            _ => Err(invalid(format!("{field} must be a string"))),
        },
        Kind::Bool => as_bool(v)
            .map(Value::Bool)
            .ok_or_else(|| invalid(format!("{field} must be true or false"))),
        Kind::Integer => match v {
            Value::Number(n) if n.as_u64().is_some() => Ok(v.clone()),
            Value::String(s) => s
                .parse::<u64>()
                .map(|n| json!(n))
                .map_err(|_| invalid(format!("{field} must be a whole number"))),
            _ => Err(invalid(format!("{field} must be a whole number"))),
        },
    }
}

fn section<'a>(v: &'a Value, name: &str) -> Result<&'a Map<String, Value>, Invalid> {
    v.as_object()
        .ok_or_else(|| invalid(format!("{name} must be an object")))
}

impl StorageConfig {
    /// The `storage` section of a distribution configuration, as the original's API takes it:
    /// exactly one driver with its parameters, and optionally `delete`, `maintenance` and
    /// `redirect`. `current` is the configuration in use: a credential sent as `REDACTED`
    /// keeps its value when the driver stays the same.
    pub fn from_section(
        storage: &Value,
        current: &StorageConfig,
    ) -> Result<StorageConfig, Invalid> {
        let storage = section(storage, "storage")?;
        let mut driver = None;
        let mut readonly = false;
        let mut redirect_disable = true;
        for (key, value) in storage {
            match key.as_str() {
                "delete" => {
                    let d = section(value, "storage.delete")?;
                    for (k, v) in d {
                        match (k.as_str(), as_bool(v)) {
                            ("enabled", Some(true)) => {}
                            ("enabled", Some(false)) => return Err(invalid("storage.delete.enabled must be true: DTR deletes tags and collects garbage through it")),
                            ("enabled", None) => return Err(invalid("storage.delete.enabled must be true or false")),
                            (other, _) => return Err(invalid(format!("unknown field storage.delete.{other}"))),
                        }
                    }
                }
                "maintenance" => {
                    for (k, v) in section(value, "storage.maintenance")? {
                        match k.as_str() {
                            "readonly" => {
                                for (rk, rv) in section(v, "storage.maintenance.readonly")? {
                                    match (rk.as_str(), as_bool(rv)) {
                                        ("enabled", Some(b)) => readonly = b,
                                        ("enabled", None) => return Err(invalid("storage.maintenance.readonly.enabled must be true or false")),
                                        (other, _) => return Err(invalid(format!("unknown field storage.maintenance.readonly.{other}"))),
                                    }
                                }
                            }
                            // distribution's own housekeeping of abandoned uploads: its defaults
                            "uploadpurging" => {}
                            other => return Err(invalid(format!("unknown field storage.maintenance.{other}"))),
                        }
                    }
                }
                "redirect" => {
                    for (k, v) in section(value, "storage.redirect")? {
                        match (k.as_str(), as_bool(v)) {
                            ("disable", Some(b)) => redirect_disable = b,
                            ("disable", None) => return Err(invalid("storage.redirect.disable must be true or false")),
                            (other, _) => return Err(invalid(format!("unknown field storage.redirect.{other}"))),
                        }
                    }
                }
                name if DRIVERS.contains(&name) => {
                    if driver.is_some() {
                        return Err(invalid("give exactly one storage driver"));
                    }
                    driver = Some((name.to_string(), value));
                }
                name if OTHER_DRIVERS.contains(&name) => {
                    return Err(invalid(format!(
                        "the {name} storage driver is not built into this registry (Debian's distribution 2.8); it has {}",
                        DRIVERS.join(", ")
                    )))
                }
                other => {
                    return Err(invalid(format!(
                        "unknown field storage.{other} (the drivers are {})",
                        DRIVERS.join(", ")
                    )))
                }
            }
        }
        let Some((driver, given)) = driver else {
            return Err(invalid(format!(
                "no storage driver: give one of {}",
                DRIVERS.join(", ")
            )));
        };
        let given = match given {
            Value::Null => Map::new(),
            v => section(v, &format!("storage.{driver}"))?.clone(),
        };
        let known = params_of(&driver);
        let mut params = Map::new();
        for (name, value) in &given {
            let Some(p) = known.iter().find(|p| p.0 == name) else {
                return Err(invalid(format!(
                    "unknown field storage.{driver}.{name} (the {driver} driver takes {})",
                    known.iter().map(|p| p.0).collect::<Vec<_>>().join(", ")
                )));
            };
            let value = if p.3 && value.as_str() == Some(REDACTED) {
                match current.params.get(name).filter(|_| current.driver == driver) {
                    Some(v) => v.clone(),
                    None => return Err(invalid(format!("storage.{driver}.{name} is {REDACTED}: give the credential itself (there is no current one to keep)"))),
                }
            } else {
                check_kind(&driver, name, p.1, value)?
            };
            params.insert(name.clone(), value);
        }
        for p in known.iter().filter(|p| p.2) {
            if params
                .get(p.0)
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                return Err(invalid(format!("storage.{driver}.{} is required", p.0)));
            }
        }
        if driver == "filesystem" {
            match params.get("rootdirectory").and_then(Value::as_str) {
                None => {
                    params.insert("rootdirectory".into(), json!(STORAGE_MOUNT));
                }
                Some(STORAGE_MOUNT) => {}
                Some(other) => return Err(invalid(format!(
                    "storage.filesystem.rootdirectory is {other:?}: the filesystem storage is each replica's volume at {STORAGE_MOUNT} (choose the volume with `dtr reconfigure --dtr-storage-volume` or --nfs-storage-url)"
                ))),
            }
        }
        if driver == "s3" {
            let has_key = params.contains_key("accesskey");
            let has_secret = params.contains_key("secretkey");
            if has_key != has_secret {
                return Err(invalid(
                    "storage.s3.accesskey and storage.s3.secretkey go together (or give neither, for the store's anonymous or instance credentials)",
                ));
            }
        }
        Ok(StorageConfig {
            driver,
            params,
            readonly,
            redirect_disable,
        })
    }

    /// The `storage` section as distribution reads it.
    pub fn section(&self) -> Value {
        let mut s = Map::new();
        s.insert(self.driver.clone(), Value::Object(self.params.clone()));
        s.insert("delete".into(), json!({"enabled": true}));
        s.insert(
            "maintenance".into(),
            json!({"readonly": {"enabled": self.readonly}}),
        );
        s.insert("redirect".into(), json!({"disable": self.redirect_disable}));
        Value::Object(s)
    }

    /// `section` with every credential replaced by `REDACTED`: what the API shows.
    pub fn redacted_section(&self) -> Value {
        let mut s = self.section();
        let known = params_of(&self.driver);
        if let Some(params) = s[&self.driver].as_object_mut() {
            for (name, value) in params.iter_mut() {
                if known.iter().any(|p| p.0 == name && p.3) {
                    *value = json!(REDACTED);
                }
            }
        }
        s
    }

    /// The credentials in it, for callers that must keep them out of what they print.
    pub fn secrets(&self) -> Vec<&str> {
        let known = params_of(&self.driver);
        self.params
            .iter()
            .filter(|(name, _)| known.iter().any(|p| p.0 == name.as_str() && p.3))
            .filter_map(|(_, v)| v.as_str())
            .filter(|s| !s.is_empty())
            .collect()
    }

    /// Whether blobs live on the replica's own `/storage` mount (a volume, a host path or NFS).
    pub fn on_the_volume(&self) -> bool {
        self.driver == "filesystem"
    }

    /// One line for logs and audit events: the driver and where (never a credential).
    pub fn describe(&self) -> String {
        let p = |k: &str| self.params.get(k).and_then(Value::as_str).unwrap_or("");
        match self.driver.as_str() {
            "s3" => {
                let endpoint = match p("regionendpoint") {
                    "" => format!("region {}", p("region")),
                    e => e.to_string(),
                };
                format!("s3 bucket {} at {endpoint}", p("bucket"))
            }
            "swift" => format!("swift container {} at {}", p("container"), p("authurl")),
            _ => format!("the replica's volume at {STORAGE_MOUNT}"),
        }
    }

    /// The object path of `path` (a path of distribution's storage layout, starting with `/`)
    /// in the store, as the driver names it: under the s3 driver's `rootdirectory`, or the
    /// swift driver's `prefix` + `/files`.
    pub fn object_key(&self, path: &str) -> String {
        let p = |k: &str| self.params.get(k).and_then(Value::as_str).unwrap_or("");
        let full = match self.driver.as_str() {
            "s3" => format!("{}{path}", p("rootdirectory").trim_end_matches('/')),
            "swift" => format!("{}/files{path}", p("prefix")),
            _ => format!("{}{path}", p("rootdirectory").trim_end_matches('/')),
        };
        full.trim_end_matches('/')
            .trim_start_matches('/')
            .to_string()
    }
}

/// The path of a tag's link in distribution's layout: present when the store holds the tag.
pub fn tag_link(repository: &str, tag: &str) -> String {
    format!("{REPOSITORIES}{repository}/_manifests/tags/{tag}/current/link")
}

/// Where distribution keeps its repositories, below the storage's root.
pub const REPOSITORIES: &str = "/docker/registry/v2/repositories/";

/// The repository and tag of a path below `REPOSITORIES` when it is a tag's current link
/// (`<repository>/_manifests/tags/<tag>/current/link`); `None` for any other file.
pub fn tag_of_link(below_repositories: &str) -> Option<(String, String)> {
    let rest = below_repositories.strip_suffix("/current/link")?;
    let (repository, tag) = rest.rsplit_once("/_manifests/tags/")?;
    (!repository.is_empty() && !tag.is_empty() && !tag.contains('/'))
        .then(|| (repository.to_string(), tag.to_string()))
}

/// The directory of an upload in progress (`<repository>/_uploads/<uuid>`) holding a path below
/// `REPOSITORIES`; `None` for any other file, and for the bare `_uploads/` marker some object
/// stores list.
pub fn upload_of(below_repositories: &str) -> Option<&str> {
    let at = below_repositories.find("/_uploads/")?;
    let rest = &below_repositories[at + "/_uploads/".len()..];
    let uuid = rest.split('/').next().unwrap_or_default();
    (at > 0 && !uuid.is_empty())
        .then(|| &below_repositories[..at + "/_uploads/".len() + uuid.len()])
}

/// The file distribution writes when an upload starts (its time, RFC 3339), in its directory.
pub const UPLOAD_STARTED_AT: &str = "startedat";

/// The file of a blob (a manifest's bytes included), by its `sha256:<hex>` digest.
pub fn blob_data(digest: &str) -> Option<String> {
    let hex = digest.strip_prefix("sha256:")?;
    (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| format!("/docker/registry/v2/blobs/sha256/{}/{hex}/data", &hex[..2]))
}

#[cfg(test)]
#[path = "storage_tests.rs"]
mod tests;
