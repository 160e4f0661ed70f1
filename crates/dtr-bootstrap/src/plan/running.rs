//! A replica as it runs, read back from its containers: what `upgrade` and `reconfigure` plan
//! the replacement containers from. Plain data — the engine layer fills it
//! (`ops::replace::observe`) — so that "the replica this version would make of what runs"
//! is tested without an engine.

use std::collections::BTreeMap;

use crate::plan::{ContainerSpec, MountSpec, PortSpec, ReplicaContext};
use dtr_core::component::{Component, NGINX_HTTP_PORT};
use dtr_core::options::{LogLevel, Proxies, ReplicaId};
use dtr_core::version;

/// One component container as the engine describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunningContainer {
    /// Its `com.docker.dtr.version` label.
    pub version: String,
    /// Its `com.docker.dtr.spec` label: the fingerprint of the spec it was made from.
    pub fingerprint: Option<String>,
    /// Its environment (the image's variables included).
    pub env: BTreeMap<String, String>,
    pub mounts: Vec<MountSpec>,
    pub ports: Vec<PortSpec>,
}

impl RunningContainer {
    /// What the engine reports for a container made from `spec`.
    pub fn of_spec(spec: &ContainerSpec) -> RunningContainer {
        RunningContainer {
            version: spec
                .labels
                .get(super::labels::VERSION)
                .cloned()
                .unwrap_or_default(),
            fingerprint: Some(spec.fingerprint()),
            env: spec.env.clone(),
            mounts: spec.mounts.clone(),
            ports: spec.ports.clone(),
        }
    }

    /// Whether `spec` would make this very container.
    pub fn made_from(&self, spec: &ContainerSpec) -> bool {
        self.fingerprint.as_deref() == Some(spec.fingerprint().as_str())
    }
}

/// The component containers of one replica.
#[derive(Clone, Debug)]
pub struct RunningReplica {
    pub replica_id: ReplicaId,
    pub containers: BTreeMap<Component, RunningContainer>,
}

impl RunningReplica {
    fn env(&self, c: Component, key: &str) -> Result<&str, String> {
        let container = self
            .containers
            .get(&c)
            .ok_or_else(|| format!("{} is missing", c.container_name(&self.replica_id)))?;
        container.env.get(key).map(String::as_str).ok_or_else(|| {
            format!(
                "{} has no {key} in its environment",
                c.container_name(&self.replica_id)
            )
        })
    }

    fn optional_env(&self, c: Component, key: &str) -> Option<String> {
        self.env(c, key).ok().map(str::to_string)
    }

    /// The host port its nginx publishes for `container_port`.
    pub fn published_port(&self, container_port: u16) -> Option<u16> {
        self.containers
            .get(&Component::Nginx)?
            .ports
            .iter()
            .find(|p| p.container == container_port)
            .map(|p| p.host)
    }

    /// The values its containers were made from, for this bootstrapper's version: what
    /// `upgrade` makes its new containers of, and `reconfigure` changes.
    pub fn context(&self) -> Result<ReplicaContext, String> {
        let rid = &self.replica_id;
        let number = |c: Component, key: &str| -> Result<u32, String> {
            let v = self.env(c, key)?;
            v.parse()
                .map_err(|_| format!("{} has {key}={v:?}", c.container_name(rid)))
        };
        let https_port = number(Component::Api, "DTR_HTTPS_PORT")?;
        let http_port = self.published_port(NGINX_HTTP_PORT).ok_or_else(|| {
            format!(
                "{} publishes no HTTP port",
                Component::Nginx.container_name(rid)
            )
        })?;
        let external_url = self.env(Component::Api, "DTR_EXTERNAL_URL")?;
        let external_authority = external_url
            .strip_prefix("https://")
            .unwrap_or(external_url)
            .to_string();
        let storage = self
            .containers
            .get(&Component::Registry)
            .and_then(|r| r.mounts.iter().find(|m| m.target == "/storage"))
            .cloned()
            .ok_or_else(|| {
                format!(
                    "{} has no /storage mount",
                    Component::Registry.container_name(rid)
                )
            })?;
        let etcd_initial_cluster = self
            .env(Component::Etcd, "ETCD_INITIAL_CLUSTER")?
            .split(',')
            .filter(|m| !m.is_empty())
            .map(|m| {
                m.split_once('=')
                    .map(|(n, u)| (n.to_string(), u.to_string()))
                    .ok_or_else(|| format!("ETCD_INITIAL_CLUSTER has {m:?}"))
            })
            .collect::<Result<Vec<_>, String>>()?;
        let etcd_cluster_state = match self.env(Component::Etcd, "ETCD_INITIAL_CLUSTER_STATE")? {
            "new" => "new",
            "existing" => "existing",
            other => return Err(format!("ETCD_INITIAL_CLUSTER_STATE is {other:?}")),
        };
        let log_level =
            LogLevel::parse(self.env(Component::Api, "LOG_LEVEL")?).map_err(|e| e.to_string())?;
        Ok(ReplicaContext {
            replica_id: rid.clone(),
            version: version::VERSION.to_string(),
            log_level,
            proxies: Proxies {
                http: self.optional_env(Component::Api, "HTTP_PROXY"),
                https: self.optional_env(Component::Api, "HTTPS_PROXY"),
                no_proxy: self.optional_env(Component::Api, "NO_PROXY"),
            },
            https_port: u16::try_from(https_port).map_err(|e| e.to_string())?,
            http_port,
            external_authority,
            storage,
            cluster_url: self.optional_env(
                Component::Api,
                dtr_core::contract::env::CLUSTER_EXTERNAL_URL,
            ),
            etcd_initial_cluster,
            etcd_cluster_state,
            db_shared_buffers_mb: number(Component::Rethinkdb, "DTR_DB_SHARED_BUFFERS_MB")?,
            db_effective_cache_mb: number(Component::Rethinkdb, "DTR_DB_EFFECTIVE_CACHE_MB")?,
        })
    }
}

/// The eight containers of a replica, in start order.
pub fn replica_containers(ctx: &ReplicaContext) -> Vec<ContainerSpec> {
    Component::ALL
        .iter()
        .map(|c| super::components::spec(*c, ctx))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{ReplicaSettings, TargetFacts};
    use dtr_core::options::{ExternalUrl, Storage};

    fn settings(id: &str) -> ReplicaSettings {
        let opts = crate::plan::tests::install_options(id);
        ReplicaSettings::for_install(&opts)
    }

    fn target() -> TargetFacts {
        TargetFacts {
            node: "node-1".into(),
            node_addr: Some("10.0.0.5".into()),
            mem_total_bytes: 8 << 30,
        }
    }

    fn round_trip(s: &ReplicaSettings) {
        let plan = crate::plan::replica_plan(s, &target());
        let running = RunningReplica {
            replica_id: s.replica_id.clone(),
            containers: plan
                .containers
                .iter()
                .map(|c| (c.component, RunningContainer::of_spec(c)))
                .collect(),
        };
        let again = replica_containers(&running.context().unwrap());
        assert_eq!(again.len(), plan.containers.len());
        for (a, b) in again.iter().zip(&plan.containers) {
            assert_eq!(a.name, b.name);
            assert_eq!(a.env, b.env, "{}", a.name);
            assert_eq!(a.mounts, b.mounts, "{}", a.name);
            assert_eq!(a.ports, b.ports, "{}", a.name);
            assert!(running.containers[&a.component].made_from(a), "{}", a.name);
        }
    }

    #[test]
    fn what_runs_plans_the_same_containers_again() {
        round_trip(&settings("aaaaaaaaaaaa"));
        let mut s = settings("bbbbbbbbbbbb");
        s.external_url = Some(ExternalUrl::parse("https://registry.example.com:8443").unwrap());
        s.proxies.http = Some("http://proxy:3128".into());
        s.proxies.no_proxy = Some("localhost,.internal".into());
        s.storage = Storage::HostPath("/srv/images".into());
        s.https_port = 4443;
        s.http_port = 8080;
        s.db_cache_mb = Some(512);
        s.etcd_initial_cluster.push((
            "cccccccccccc".into(),
            dtr_core::component::etcd_peer_url(&ReplicaId::parse("cccccccccccc").unwrap()),
        ));
        s.etcd_cluster_state = "existing";
        round_trip(&s);
        s.storage = Storage::NamedVolume("shared-images".into());
        s.log_level = LogLevel::parse("debug").unwrap();
        round_trip(&s);
    }

    #[test]
    fn another_version_or_setting_is_another_container() {
        let plan = crate::plan::replica_plan(&settings("aaaaaaaaaaaa"), &target());
        let api = plan
            .containers
            .iter()
            .find(|c| c.component == Component::Api)
            .unwrap();
        let running = RunningContainer::of_spec(api);
        assert!(running.made_from(api));
        let mut other = api.clone();
        other.image = "registry/dtr-api:9.9.9".into();
        assert!(!running.made_from(&other));
        let mut other = api.clone();
        other.env.remove("HTTP_PROXY");
        other.env.insert("LOG_LEVEL".into(), "debug".into());
        assert!(!running.made_from(&other));
        let unlabelled = RunningContainer {
            fingerprint: None,
            ..running
        };
        assert!(!unlabelled.made_from(api));
    }

    #[test]
    fn a_missing_container_or_value_is_named() {
        let plan = crate::plan::replica_plan(&settings("aaaaaaaaaaaa"), &target());
        let mut running = RunningReplica {
            replica_id: plan.replica_id.clone(),
            containers: plan
                .containers
                .iter()
                .map(|c| (c.component, RunningContainer::of_spec(c)))
                .collect(),
        };
        running
            .containers
            .get_mut(&Component::Rethinkdb)
            .unwrap()
            .env
            .remove("DTR_DB_SHARED_BUFFERS_MB");
        let e = running.context().unwrap_err();
        assert!(
            e.contains("dtr-rethinkdb-aaaaaaaaaaaa has no DTR_DB_SHARED_BUFFERS_MB"),
            "{e}"
        );
        running.containers.remove(&Component::Api);
        assert!(running
            .context()
            .unwrap_err()
            .contains("dtr-api-aaaaaaaaaaaa is missing"));
    }
}
