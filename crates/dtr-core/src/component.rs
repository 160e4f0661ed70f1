//! The eight per-replica components: their names, users, ports and start dependencies. How
//! the plan runs each one is `dtr_bootstrap::plan::components`; the images' side of the same
//! contract is `docker/<component>/` and `docs/components.md`.

use std::time::Duration;

use crate::options::ReplicaId;

/// The api's HTTPS port on the DTR networks.
pub const API_PORT: u16 = 9443;
/// etcd's client and peer ports.
pub const ETCD_CLIENT_PORT: u16 = 2379;
pub const ETCD_PEER_PORT: u16 = 2380;
/// nginx's ports inside its container (the replica's published ports map to them).
pub const NGINX_HTTP_PORT: u16 = 8080;
pub const NGINX_HTTPS_PORT: u16 = 8443;
/// PostgreSQL's port in the rethinkdb container.
pub const DB_PORT: u16 = 5432;
/// Patroni's REST API in the rethinkdb container (HTTPS, the rethinkdb certificate).
pub const PATRONI_PORT: u16 = 8008;
/// The group of the registry's secrets (its TLS key and the notification secret): those files
/// belong to root, mode 0640 to this group, which only the registry container carries. The
/// jobrunner's set-user-id collector becomes the registry's uid but not this group, so it
/// cannot read them (issue 18, finding 12; docs/jobs.md).
pub const REGISTRY_SECRETS_GID: u32 = 10009;

/// The URL other etcd members reach this replica's member by.
pub fn etcd_peer_url(replica: &ReplicaId) -> String {
    format!(
        "https://{}:{ETCD_PEER_PORT}",
        Component::Etcd.container_name(replica)
    )
}

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Component {
    Etcd,
    Rethinkdb,
    NotarySigner,
    NotaryServer,
    Registry,
    Api,
    Jobrunner,
    Nginx,
}

impl Component {
    /// In start order: each component comes after everything it depends on.
    pub const ALL: [Component; 8] = [
        Component::Etcd,
        Component::Rethinkdb,
        Component::NotarySigner,
        Component::NotaryServer,
        Component::Registry,
        Component::Api,
        Component::Jobrunner,
        Component::Nginx,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Component::Etcd => "etcd",
            Component::Rethinkdb => "rethinkdb",
            Component::NotarySigner => "notary-signer",
            Component::NotaryServer => "notary-server",
            Component::Registry => "registry",
            Component::Api => "api",
            Component::Jobrunner => "jobrunner",
            Component::Nginx => "nginx",
        }
    }

    pub fn from_name(name: &str) -> Option<Component> {
        Component::ALL.into_iter().find(|c| c.name() == name)
    }

    /// `dtr-<component>-<replica id>`: also the container's DNS name on the DTR networks.
    pub fn container_name(self, replica: &ReplicaId) -> String {
        format!("dtr-{}-{replica}", self.name())
    }

    /// The fixed uid (= gid) the component runs as; the images create the same users.
    pub fn uid(self) -> u32 {
        match self {
            Component::Etcd => 10001,
            Component::Rethinkdb => 10002,
            Component::NotaryServer => 10003,
            Component::NotarySigner => 10004,
            Component::Registry => 10005,
            Component::Nginx => 10006,
            Component::Api => 10007,
            Component::Jobrunner => 10008,
        }
    }

    /// Components that must be healthy before this one starts.
    pub fn depends_on(self) -> &'static [Component] {
        use Component::*;
        match self {
            Etcd => &[],
            // it reads the storage configuration from etcd
            Registry => &[Etcd],
            Rethinkdb => &[Etcd],
            NotarySigner => &[Rethinkdb],
            NotaryServer => &[NotarySigner],
            Api => &[Etcd, Rethinkdb],
            Jobrunner => &[Api],
            Nginx => &[Api, Registry, NotaryServer],
        }
    }

    /// The container's memory limit (MiB) and process/thread limit: a component that runs away
    /// (a flood of logins, a leak) is stopped there instead of taking the node with it.
    /// Sized for what each one does with room to spare (docs/security.md lists them).
    pub fn limits(self) -> (u64, i64) {
        match self {
            Component::Etcd => (1024, 512),
            // PostgreSQL (a process per connection) and Patroni
            Component::Rethinkdb => (4096, 1024),
            // distribution: blobs are streamed, its caches are small
            Component::Registry => (2048, 1024),
            Component::NotarySigner | Component::NotaryServer => (512, 256),
            // at most four argon2 checks (19 MiB each) at once: see dtr-server's api::limits
            Component::Api => (512, 1024),
            // garbage collection marks every manifest in memory
            Component::Jobrunner => (2048, 1024),
            Component::Nginx => (512, 256),
        }
    }

    /// How long the install waits for the component to become healthy after its start.
    pub fn readiness_timeout(self) -> Duration {
        match self {
            // initdb + Patroni's first leader election
            Component::Rethinkdb => Duration::from_secs(120),
            _ => Duration::from_secs(60),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_order_respects_every_dependency() {
        for (i, c) in Component::ALL.iter().enumerate() {
            for dep in c.depends_on() {
                let j = Component::ALL.iter().position(|x| x == dep).unwrap();
                assert!(j < i, "{} must come after {}", c.name(), dep.name());
            }
        }
    }

    #[test]
    fn uids_are_distinct_and_match_the_dockerfile() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../Dockerfile");
        let dockerfile = std::fs::read_to_string(path).expect("read the top-level Dockerfile");
        let mut seen = std::collections::BTreeSet::new();
        for c in Component::ALL {
            assert!(seen.insert(c.uid()), "uid {} used twice", c.uid());
            assert!(
                dockerfile.contains(&c.uid().to_string()),
                "Dockerfile does not create uid {} for {}",
                c.uid(),
                c.name()
            );
        }
    }

    #[test]
    fn names_round_trip() {
        for c in Component::ALL {
            assert_eq!(Component::from_name(c.name()), Some(c));
        }
    }
}
