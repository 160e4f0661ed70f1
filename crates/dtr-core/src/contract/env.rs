//! The environment of the component containers: every variable's name once, and the typed
//! values of the ones our own binary reads back (`RoleEnv` for the api and jobrunner, `ApiEnv`
//! for the api). The plan writes them with `to_env`, the roles — and `dtr upgrade`, reading a
//! running replica back — parse them with `from_env`; a round-trip test ties the two.
//! The other variables are read by the images' entrypoint scripts (`docker/<component>/`).

use std::collections::BTreeMap;

use crate::options::{LogLevel, Proxies, ReplicaId};

pub const REPLICA_ID: &str = "DTR_REPLICA_ID";
pub const VERSION: &str = "DTR_VERSION";
pub const LOG_LEVEL: &str = "LOG_LEVEL";
/// Each proxy variable in both spellings, as programs differ in which they read.
pub const HTTP_PROXY: [&str; 2] = ["HTTP_PROXY", "http_proxy"];
pub const HTTPS_PROXY: [&str; 2] = ["HTTPS_PROXY", "https_proxy"];
pub const NO_PROXY: [&str; 2] = ["NO_PROXY", "no_proxy"];

/// api and jobrunner: `host:port` of the metadata database members, this replica's first.
pub const DB_HOSTS: &str = "DTR_DB_HOSTS";
/// api and jobrunner: etcd client URLs.
pub const ETCD_ENDPOINTS: &str = "DTR_ETCD_ENDPOINTS";
/// api and jobrunner: `https://<authority>` clients reach the cluster by.
pub const EXTERNAL_URL: &str = "DTR_EXTERNAL_URL";
/// api and nginx: the replica's published HTTPS port.
pub const HTTPS_PORT: &str = "DTR_HTTPS_PORT";
/// api: `--dtr-external-url` as given at install (read back by `dtr join`).
pub const CLUSTER_EXTERNAL_URL: &str = "DTR_CLUSTER_EXTERNAL_URL";
/// api, registry, notary-server: the token service's realm and service name.
pub const TOKEN_REALM: &str = "DTR_TOKEN_REALM";
pub const TOKEN_SERVICE: &str = "DTR_TOKEN_SERVICE";
/// api and jobrunner: the CA volume's mount when it is not `CA_MOUNT` (tests).
pub const CA_DIR: &str = "DTR_CA_DIR";

/// notary-signer, notary-server: the replica's database container.
pub const DB_HOST: &str = "DTR_DB_HOST";
/// notary-server: the replica's notary-signer container.
pub const NOTARY_SIGNER_HOST: &str = "DTR_NOTARY_SIGNER_HOST";
/// rethinkdb: the replica's etcd (Patroni's store), and the database's memory.
pub const ETCD_HOSTS: &str = "DTR_ETCD_HOSTS";
pub const DB_SHARED_BUFFERS_MB: &str = "DTR_DB_SHARED_BUFFERS_MB";
pub const DB_EFFECTIVE_CACHE_MB: &str = "DTR_DB_EFFECTIVE_CACHE_MB";
/// etcd: its member name and how it starts.
pub const ETCD_NAME: &str = "ETCD_NAME";
pub const ETCD_INITIAL_CLUSTER: &str = "ETCD_INITIAL_CLUSTER";
pub const ETCD_INITIAL_CLUSTER_STATE: &str = "ETCD_INITIAL_CLUSTER_STATE";
pub const ETCD_INITIAL_CLUSTER_TOKEN: &str = "ETCD_INITIAL_CLUSTER_TOKEN";

pub type Env = BTreeMap<String, String>;

/// A variable a role needs that is missing or unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("environment variable {var} {problem} (it is set by the install plan)")]
pub struct EnvError {
    pub var: &'static str,
    pub problem: String,
}

fn required(
    lookup: &impl Fn(&str) -> Option<String>,
    var: &'static str,
) -> Result<String, EnvError> {
    lookup(var).filter(|v| !v.is_empty()).ok_or(EnvError {
        var,
        problem: "is not set".into(),
    })
}

fn list(value: &str) -> Vec<String> {
    value
        .split(',')
        .filter(|v| !v.is_empty())
        .map(str::to_string)
        .collect()
}

/// What every component container gets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BaseEnv {
    pub replica_id: ReplicaId,
    pub version: String,
    pub log_level: LogLevel,
    pub proxies: Proxies,
}

impl BaseEnv {
    pub fn to_env(&self) -> Env {
        let mut env = Env::new();
        env.insert(REPLICA_ID.into(), self.replica_id.to_string());
        env.insert(VERSION.into(), self.version.clone());
        env.insert(LOG_LEVEL.into(), self.log_level.as_str().into());
        for (keys, value) in [
            (HTTP_PROXY, &self.proxies.http),
            (HTTPS_PROXY, &self.proxies.https),
            (NO_PROXY, &self.proxies.no_proxy),
        ] {
            if let Some(v) = value {
                for k in keys {
                    env.insert(k.into(), v.clone());
                }
            }
        }
        env
    }

    /// A missing `DTR_VERSION` is this build's; a missing `LOG_LEVEL` is `info`.
    pub fn from_env(lookup: impl Fn(&str) -> Option<String>) -> Result<BaseEnv, EnvError> {
        let replica_id =
            ReplicaId::parse(&required(&lookup, REPLICA_ID)?).map_err(|e| EnvError {
                var: REPLICA_ID,
                problem: e.to_string(),
            })?;
        let level = lookup(LOG_LEVEL).unwrap_or_else(|| "info".into());
        let log_level = LogLevel::parse(&level).map_err(|e| EnvError {
            var: LOG_LEVEL,
            problem: e.to_string(),
        })?;
        let proxy = |keys: [&str; 2]| lookup(keys[0]).filter(|v| !v.is_empty());
        Ok(BaseEnv {
            replica_id,
            version: lookup(VERSION).unwrap_or_else(|| crate::version::VERSION.into()),
            log_level,
            proxies: Proxies {
                http: proxy(HTTP_PROXY),
                https: proxy(HTTPS_PROXY),
                no_proxy: proxy(NO_PROXY),
            },
        })
    }
}

/// The environment of the two roles of our own binary, api and jobrunner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoleEnv {
    pub base: BaseEnv,
    pub db_hosts: Vec<String>,
    pub etcd_endpoints: Vec<String>,
    pub external_url: String,
}

impl RoleEnv {
    pub fn to_env(&self) -> Env {
        let mut env = self.base.to_env();
        env.insert(DB_HOSTS.into(), self.db_hosts.join(","));
        env.insert(ETCD_ENDPOINTS.into(), self.etcd_endpoints.join(","));
        env.insert(EXTERNAL_URL.into(), self.external_url.clone());
        env
    }

    pub fn from_env(lookup: impl Fn(&str) -> Option<String>) -> Result<RoleEnv, EnvError> {
        Ok(RoleEnv {
            db_hosts: list(&required(&lookup, DB_HOSTS)?),
            etcd_endpoints: list(&required(&lookup, ETCD_ENDPOINTS)?),
            external_url: lookup(EXTERNAL_URL).unwrap_or_default(),
            base: BaseEnv::from_env(lookup)?,
        })
    }

    /// `external_url` without its scheme: what clients type after `docker login`.
    pub fn external_authority(&self) -> &str {
        self.external_url
            .strip_prefix("https://")
            .unwrap_or(&self.external_url)
    }
}

/// notary-server's token audience for the registry's `service`.
pub fn notary_service(service: &str) -> String {
    format!("{service}-notary")
}

/// Where the registry and notary-server send clients for tokens, and the service the tokens
/// name: the cluster's external authority.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenAuth {
    pub realm: String,
    pub service: String,
}

impl TokenAuth {
    pub fn for_authority(authority: &str) -> TokenAuth {
        TokenAuth {
            realm: format!("https://{authority}/auth/token"),
            service: authority.to_string(),
        }
    }

    /// The same realm with notary's own audience (`<service>-notary`): a token the api signs
    /// for notary's trust data is refused by the registry, and the other way round.
    pub fn for_notary(&self) -> TokenAuth {
        TokenAuth {
            realm: self.realm.clone(),
            service: notary_service(&self.service),
        }
    }

    pub fn to_env(&self) -> Env {
        Env::from([
            (TOKEN_REALM.into(), self.realm.clone()),
            (TOKEN_SERVICE.into(), self.service.clone()),
        ])
    }

    pub fn from_env(lookup: impl Fn(&str) -> Option<String>) -> Result<TokenAuth, EnvError> {
        Ok(TokenAuth {
            realm: required(&lookup, TOKEN_REALM)?,
            service: required(&lookup, TOKEN_SERVICE)?,
        })
    }
}

/// The api's environment: its role's, and what only it reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiEnv {
    pub role: RoleEnv,
    pub https_port: u16,
    /// `--dtr-external-url` when it was given: not used by the api; `dtr join` reads it back
    /// to plan the next replica the same way.
    pub cluster_url: Option<String>,
    pub token: TokenAuth,
}

impl ApiEnv {
    pub fn to_env(&self) -> Env {
        let mut env = self.role.to_env();
        env.insert(HTTPS_PORT.into(), self.https_port.to_string());
        if let Some(url) = &self.cluster_url {
            env.insert(CLUSTER_EXTERNAL_URL.into(), url.clone());
        }
        env.extend(self.token.to_env());
        env
    }

    pub fn from_env(lookup: impl Fn(&str) -> Option<String>) -> Result<ApiEnv, EnvError> {
        let port = required(&lookup, HTTPS_PORT)?;
        let https_port = port.parse().map_err(|_| EnvError {
            var: HTTPS_PORT,
            problem: format!("is {port:?}, not a port number"),
        })?;
        Ok(ApiEnv {
            https_port,
            cluster_url: lookup(CLUSTER_EXTERNAL_URL).filter(|v| !v.is_empty()),
            token: TokenAuth::from_env(&lookup)?,
            role: RoleEnv::from_env(lookup)?,
        })
    }
}

/// The registry's environment: it runs our binary as its supervisor (`dtr registry`), which
/// reads the storage configuration from etcd and checks tokens for this realm and service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegistryEnv {
    pub base: BaseEnv,
    pub token: TokenAuth,
    pub etcd_endpoints: Vec<String>,
}

impl RegistryEnv {
    pub fn to_env(&self) -> Env {
        let mut env = self.base.to_env();
        env.extend(self.token.to_env());
        env.insert(ETCD_ENDPOINTS.into(), self.etcd_endpoints.join(","));
        env
    }

    pub fn from_env(lookup: impl Fn(&str) -> Option<String>) -> Result<RegistryEnv, EnvError> {
        Ok(RegistryEnv {
            token: TokenAuth::from_env(&lookup)?,
            etcd_endpoints: list(&required(&lookup, ETCD_ENDPOINTS)?),
            base: BaseEnv::from_env(lookup)?,
        })
    }
}

/// Lookup in the process's own environment (what a role passes to `from_env`).
pub fn process_env(var: &str) -> Option<String> {
    std::env::var(var).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api_env(proxies: Proxies, cluster_url: Option<String>) -> ApiEnv {
        ApiEnv {
            role: RoleEnv {
                base: BaseEnv {
                    replica_id: ReplicaId::parse("0123456789ab").unwrap(),
                    version: "1.2.3".into(),
                    log_level: LogLevel::Debug,
                    proxies,
                },
                db_hosts: vec!["dtr-rethinkdb-0123456789ab:5432".into()],
                etcd_endpoints: vec!["https://dtr-etcd-0123456789ab:2379".into()],
                external_url: "https://dtr.example.com:8443".into(),
            },
            https_port: 8443,
            cluster_url,
            token: TokenAuth::for_authority("dtr.example.com:8443"),
        }
    }

    #[test]
    fn what_the_plan_writes_the_roles_read_back() {
        for (proxies, url) in [
            (Proxies::default(), None),
            (
                Proxies {
                    http: Some("http://proxy:3128".into()),
                    https: Some("http://proxy:3129".into()),
                    no_proxy: Some("localhost,.internal".into()),
                },
                Some("https://dtr.example.com".into()),
            ),
        ] {
            let api = api_env(proxies, url);
            let env = api.to_env();
            let lookup = |k: &str| env.get(k).cloned();
            assert_eq!(ApiEnv::from_env(lookup).unwrap(), api);
            assert_eq!(RoleEnv::from_env(lookup).unwrap(), api.role);
            assert_eq!(api.role.external_authority(), "dtr.example.com:8443");
            let registry = RegistryEnv {
                base: api.role.base.clone(),
                token: api.token.clone(),
                etcd_endpoints: api.role.etcd_endpoints.clone(),
            };
            let env = registry.to_env();
            assert_eq!(
                RegistryEnv::from_env(|k: &str| env.get(k).cloned()).unwrap(),
                registry
            );
        }
    }

    #[test]
    fn proxies_are_set_in_both_spellings() {
        let mut api = api_env(Proxies::default(), None);
        api.role.base.proxies.no_proxy = Some("x".into());
        let env = api.to_env();
        assert_eq!(env.get("NO_PROXY"), Some(&"x".to_string()));
        assert_eq!(env.get("no_proxy"), Some(&"x".to_string()));
        assert!(!env.contains_key("HTTP_PROXY"));
    }

    #[test]
    fn a_missing_variable_is_named() {
        let env = api_env(Proxies::default(), None).to_env();
        for var in [
            REPLICA_ID,
            DB_HOSTS,
            ETCD_ENDPOINTS,
            HTTPS_PORT,
            TOKEN_SERVICE,
        ] {
            let lookup = |k: &str| (k != var).then(|| env.get(k).cloned()).flatten();
            let e = ApiEnv::from_env(lookup).unwrap_err();
            assert_eq!(e.var, var);
            assert!(e.to_string().contains("is not set"), "{e}");
        }
        let lookup = |k: &str| {
            if k == HTTPS_PORT {
                Some("x".into())
            } else {
                env.get(k).cloned()
            }
        };
        assert!(ApiEnv::from_env(lookup)
            .unwrap_err()
            .problem
            .contains("not a port"));
    }
}
