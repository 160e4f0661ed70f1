//! What install creates, as plain data: networks, volumes, the phase-2 request and the eight
//! containers, with their names, labels, mounts, env, users, ports and health checks.
//! Pure functions, no I/O: `install_plan` is where a reader learns what an install makes.

pub mod components;
pub mod labels;
pub mod running;

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use dtr_core::component::Component;
use dtr_core::contract::env::BaseEnv;
use dtr_core::contract::phase2::{CertRequest, ComponentCert};
use dtr_core::contract::{CA_MOUNT, STORAGE_MOUNT};
use dtr_core::options::{
    ExternalUrl, InstallOptions, LogLevel, Proxies, ReplicaId, Storage, Subnet,
};
use dtr_core::version;

pub const OVERLAY_NETWORK: &str = "dtr-ol";

/// `dtr-ol`: the attachable overlay every replica of the cluster is on, on every node.
pub fn overlay_network(subnet: &Subnet, version: &str) -> NetworkSpec {
    NetworkSpec {
        name: OVERLAY_NETWORK.into(),
        driver: "overlay".into(),
        attachable: true,
        subnet: Some(subnet.as_str().to_string()),
        labels: labels::network(version, "overlay"),
    }
}
pub const BRIDGE_NETWORK: &str = "dtr-br";
/// The short-lived in-cluster helper container (the original's name).
pub const PHASE2_CONTAINER: &str = "dtr-phase2";

/// What was read from the engine before planning.
#[derive(Clone, Debug, Serialize)]
pub struct TargetFacts {
    /// Hostname of the node that receives the replica.
    pub node: String,
    /// The node's address as the swarm knows it.
    pub node_addr: Option<String>,
    pub mem_total_bytes: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct NetworkSpec {
    pub name: String,
    pub driver: String,
    pub attachable: bool,
    pub subnet: Option<String>,
    pub labels: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct VolumeSpec {
    pub name: String,
    /// `ca`, `etcd`, `notary`, `registry`, `rethink`.
    pub kind: &'static str,
    /// Labels set when the volume is created; an existing volume is reused as it is.
    pub labels: BTreeMap<String, String>,
    /// The volume driver's options (the local driver's `type=nfs` volume); none for a plain
    /// local volume.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub driver_opts: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct MountSpec {
    /// A volume name, or an absolute host path for a bind mount.
    pub source: String,
    pub target: String,
    pub read_only: bool,
    pub bind: bool,
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct PortSpec {
    pub host: u16,
    pub container: u16,
}

#[derive(Clone, Debug, Serialize)]
pub struct HealthSpec {
    pub command: Vec<String>,
    pub interval: Duration,
    pub timeout: Duration,
    pub retries: i64,
    pub start_period: Duration,
}

/// How long a component has to stop by itself before it is killed: the containers' own stop
/// timeout (what `docker stop` and an engine restart give them) and the bootstrapper's stops.
pub const STOP_GRACE: Duration = Duration::from_secs(30);

#[derive(Clone, Debug, Serialize)]
pub struct ContainerSpec {
    pub name: String,
    pub component: Component,
    pub image: String,
    pub hostname: String,
    /// `uid:gid`.
    pub user: String,
    pub env: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
    pub mounts: Vec<MountSpec>,
    /// The first one is the network the container is created on; the others are connected before start.
    pub networks: Vec<String>,
    pub ports: Vec<PortSpec>,
    pub health: HealthSpec,
    pub restart_policy: &'static str,
    pub depends_on: Vec<Component>,
    pub readiness_timeout: Duration,
    /// Memory limit in MiB and process/thread limit (`Component::limits`).
    pub memory_mib: u64,
    pub pids_limit: i64,
    /// Every capability is dropped (the components run as their own non-root users and need
    /// none); `no-new-privileges` too, except where a setuid binary is the documented need.
    pub no_new_privileges: bool,
    /// Supplementary groups (the registry's secrets group).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub group_add: Vec<u32>,
    /// A read-only root filesystem: the component writes only to its volumes and `tmpfs`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub read_only: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tmpfs: Vec<TmpfsSpec>,
}

/// A memory file system of bounded size, made for the container when it starts.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct TmpfsSpec {
    pub path: &'static str,
    pub size_mib: u64,
    pub mode: u32,
    /// Owner and group (the component's uid); root's when `None`.
    pub owner: Option<u32>,
}

/// Whether `component` runs on a read-only root filesystem. etcd and the database do not:
/// `restore` copies the backup's values and dumps into them through the engine's archive API,
/// which writes into the container's own layer and cannot write into a tmpfs.
pub fn read_only_root(component: Component) -> bool {
    !matches!(component, Component::Etcd | Component::Rethinkdb)
}

/// What a read-only component may write: `/run/dtr` (its rendered configuration, its own
/// temporary files; the component's alone) and `/tmp`.
fn writable_tmpfs(component: Component) -> Vec<TmpfsSpec> {
    vec![
        TmpfsSpec {
            path: "/run/dtr",
            size_mib: 32,
            mode: 0o700,
            owner: Some(component.uid()),
        },
        TmpfsSpec {
            path: "/tmp",
            size_mib: 64,
            mode: 0o1777,
            owner: None,
        },
    ]
}

/// An empty tmpfs over the dtr-ca volume's key directory: no component sees the CA key (only
/// phase 2 signs, and the bootstrapper reads the cluster's files through a helper that mounts
/// the volume itself).
fn ca_key_cover() -> TmpfsSpec {
    TmpfsSpec {
        path: dtr_core::contract::CA_KEY_DIR,
        size_mib: 1,
        mode: 0o700,
        owner: None,
    }
}

impl ContainerSpec {
    /// A digest of everything the container is made of. The engine layer stores it in the
    /// container's `com.docker.dtr.spec` label, so that `upgrade` and `reconfigure` replace
    /// exactly the containers the new plan would make differently.
    pub fn fingerprint(&self) -> String {
        use sha2::Digest;
        // not the name: `ops::replace` creates the new container under a temporary one
        let json = serde_json::to_vec(&ContainerSpec {
            name: String::new(),
            ..self.clone()
        })
        .expect("serializable");
        hex::encode(&sha2::Sha256::digest(&json)[..12])
    }
}

/// The network a one-shot container is attached to.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub enum OneShotNetwork {
    /// No network at all (phase 2: it only writes files).
    None,
    /// The engine's default bridge (the port probe publishes ports there).
    Default,
    /// A named network (the overlay test joins `dtr-ol`).
    Named(String),
}

/// A short-lived container that runs one command to its end and is removed: phase 2, the
/// preflight's port probe, join's overlay network test. `Engine::run_once` runs it.
#[derive(Clone, Debug, Serialize)]
pub struct OneShotSpec {
    pub name: String,
    pub image: String,
    /// Replaces the image's entrypoint when given.
    pub entrypoint: Option<Vec<String>>,
    pub command: Vec<String>,
    /// `uid:gid`; `None` = the image's user.
    pub user: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub network: OneShotNetwork,
    pub mounts: Vec<MountSpec>,
    pub ports: Vec<PortSpec>,
}

/// Files copied into a one-shot container after it is created and before it starts:
/// `(path under dir, contents, mode)`, owned by root. How secrets reach phase 2 without a
/// command line or an environment variable.
pub struct Uploads<'a> {
    pub dir: &'a str,
    pub files: Vec<(&'a str, &'a [u8], u32)>,
}

/// What a one-shot container printed, and how it ended.
#[derive(Clone, Debug)]
pub struct OneShotOutput {
    pub exit_code: i64,
    pub stdout: String,
    pub stderr: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct Phase2Spec {
    pub name: String,
    pub image: String,
    pub command: Vec<String>,
    pub mounts: Vec<MountSpec>,
    pub labels: BTreeMap<String, String>,
    pub request: CertRequest,
}

#[derive(Clone, Debug, Serialize)]
pub struct InstallPlan {
    pub replica_id: ReplicaId,
    pub version: String,
    pub node: String,
    pub networks: Vec<NetworkSpec>,
    pub volumes: Vec<VolumeSpec>,
    pub phase2: Phase2Spec,
    pub containers: Vec<ContainerSpec>,
    pub https_port: u16,
    pub http_port: u16,
    /// What users type after `docker login`, and what the HTTPS certificate is made for.
    pub external_authority: String,
}

/// The values every component spec is built from.
#[derive(Clone, Debug)]
pub struct ReplicaContext {
    pub replica_id: ReplicaId,
    pub version: String,
    pub log_level: LogLevel,
    pub proxies: Proxies,
    pub https_port: u16,
    pub http_port: u16,
    /// `host[:port]` users reach this replica (or its load balancer) by.
    pub external_authority: String,
    pub storage: MountSpec,
    /// `--dtr-external-url` when it was given (join reads it back from the api container).
    pub cluster_url: Option<String>,
    /// `name=https://host:2380` for every etcd member the new member starts with.
    pub etcd_initial_cluster: Vec<(String, String)>,
    pub etcd_cluster_state: &'static str,
    pub db_shared_buffers_mb: u32,
    pub db_effective_cache_mb: u32,
}

impl ReplicaContext {
    pub fn container(&self, c: Component) -> String {
        c.container_name(&self.replica_id)
    }

    /// What every component container's environment starts with.
    pub fn base_env(&self) -> BaseEnv {
        BaseEnv {
            replica_id: self.replica_id.clone(),
            version: self.version.clone(),
            log_level: self.log_level,
            proxies: self.proxies.clone(),
        }
    }

    /// The base of every component container; component modules add env, mounts and ports.
    pub fn base_spec(&self, component: Component) -> ContainerSpec {
        let name = self.container(component);
        let env = self.base_env().to_env();
        ContainerSpec {
            hostname: name.clone(),
            name,
            component,
            image: version::component_image(component),
            user: format!("{0}:{0}", component.uid()),
            env,
            labels: labels::container(&self.replica_id, &self.version, component),
            mounts: vec![MountSpec {
                source: volume_name("ca", &self.replica_id),
                target: CA_MOUNT.into(),
                read_only: true,
                bind: false,
            }],
            networks: vec![BRIDGE_NETWORK.into(), OVERLAY_NETWORK.into()],
            ports: vec![],
            health: HealthSpec {
                command: vec!["dtr-health".into()],
                interval: Duration::from_secs(10),
                timeout: Duration::from_secs(5),
                retries: 3,
                start_period: Duration::from_secs(60),
            },
            restart_policy: "unless-stopped",
            depends_on: component.depends_on().to_vec(),
            readiness_timeout: component.readiness_timeout(),
            memory_mib: component.limits().0,
            pids_limit: component.limits().1,
            no_new_privileges: true,
            group_add: Vec::new(),
            read_only: read_only_root(component),
            tmpfs: if read_only_root(component) {
                writable_tmpfs(component)
            } else {
                Vec::new()
            }
            .into_iter()
            .chain([ca_key_cover()])
            .collect(),
        }
    }

    /// Comma-separated `dtr-<component>-<id>:<port>` of the given replicas, this replica first.
    pub fn hosts(&self, c: Component, port: u16) -> String {
        format!("{}:{port}", self.container(c))
    }
}

/// The registry's and jobrunner's `/storage` mount for `storage` on replica `rid`.
pub fn storage_mount(storage: &Storage, rid: &ReplicaId) -> MountSpec {
    let (source, bind) = match storage {
        Storage::DefaultVolume => (volume_name("registry", rid), false),
        Storage::NamedVolume(v) => (v.clone(), false),
        Storage::HostPath(p) => (p.display().to_string(), true),
        Storage::Nfs(_) => (volume_name("nfs-registry", rid), false),
    };
    MountSpec {
        source,
        target: STORAGE_MOUNT.into(),
        read_only: false,
        bind,
    }
}

/// The volume the image storage needs on the replica's node, if any: the replica's own, the
/// user's (made if missing, but not labelled as the replica's, so that destroy never removes
/// image data the user pointed us at), or the NFS mount; none for a host path.
pub fn storage_volumes(storage: &Storage, rid: &ReplicaId, version: &str) -> Vec<VolumeSpec> {
    match storage {
        Storage::DefaultVolume => vec![VolumeSpec {
            name: volume_name("registry", rid),
            kind: "registry",
            labels: labels::volume(rid, version, "registry"),
            driver_opts: BTreeMap::new(),
        }],
        Storage::NamedVolume(v) => vec![VolumeSpec {
            name: v.clone(),
            kind: "registry",
            labels: BTreeMap::new(),
            driver_opts: BTreeMap::new(),
        }],
        Storage::HostPath(_) => vec![],
        // the image data is on the NFS server: the volume is only how the node mounts it,
        // and is the replica's (destroy removes it, not the data)
        Storage::Nfs(nfs) => vec![VolumeSpec {
            name: volume_name("nfs-registry", rid),
            kind: "registry",
            labels: labels::nfs_volume(rid, version, nfs),
            driver_opts: nfs.driver_opts(),
        }],
    }
}

/// `dtr-<kind>-<replica id>`.
pub fn volume_name(kind: &str, replica: &ReplicaId) -> String {
    format!("dtr-{kind}-{replica}")
}

/// The metadata database's memory, from `--replica-rethinkdb-cache-mb` or, like the original,
/// (node memory − 1 GiB) / 2. PostgreSQL gets a quarter of it as `shared_buffers` and is told
/// that the whole of it is the cache it may count on (`effective_cache_size`).
pub fn db_memory(cache_mb: Option<u32>, mem_total_bytes: u64) -> (u32, u32) {
    let cache = cache_mb.unwrap_or_else(|| {
        let mem_mb = mem_total_bytes / (1024 * 1024);
        (mem_mb.saturating_sub(1024) / 2).clamp(64, u32::MAX as u64) as u32
    });
    let cache = cache.max(64);
    ((cache / 4).max(16), cache)
}

/// Everything one replica is made from. Install takes it from the flags; join from its flags
/// and the cluster it joins (`join_settings`).
#[derive(Clone, Debug)]
pub struct ReplicaSettings {
    pub replica_id: ReplicaId,
    pub http_port: u16,
    pub https_port: u16,
    /// `--dtr-external-url`, cluster-wide.
    pub external_url: Option<ExternalUrl>,
    pub user_cert: Option<dtr_core::pki::UserCertPublic>,
    pub storage: Storage,
    pub overlay_subnet: Subnet,
    pub log_level: LogLevel,
    pub proxies: Proxies,
    pub db_cache_mb: Option<u32>,
    /// The etcd members the new member starts with (itself included), and whether the
    /// cluster is `new` (install) or `existing` (join).
    pub etcd_initial_cluster: Vec<(String, String)>,
    pub etcd_cluster_state: &'static str,
    /// `--custom-ca-cert-bundle`, written by phase 2; `None` keeps what the volume has (a join
    /// brings the cluster's with the shared files).
    pub custom_ca_bundle: Option<String>,
}

impl ReplicaSettings {
    pub fn for_install(opts: &InstallOptions) -> ReplicaSettings {
        ReplicaSettings {
            replica_id: opts.replica_id.clone(),
            http_port: opts.http_port,
            https_port: opts.https_port,
            external_url: opts.external_url.clone(),
            user_cert: opts.tls.as_ref().map(|t| t.public_part()),
            storage: opts.storage.clone(),
            overlay_subnet: opts.overlay_subnet.clone(),
            log_level: opts.log_level,
            proxies: opts.proxies.clone(),
            db_cache_mb: opts.db_cache_mb,
            etcd_initial_cluster: vec![(
                opts.replica_id.to_string(),
                dtr_core::component::etcd_peer_url(&opts.replica_id),
            )],
            etcd_cluster_state: "new",
            custom_ca_bundle: opts.custom_ca_bundle.clone(),
        }
    }
}

pub fn install_plan(opts: &InstallOptions, target: &TargetFacts) -> InstallPlan {
    replica_plan(&ReplicaSettings::for_install(opts), target)
}

/// The replica `join` adds: the new member's etcd starts with every current member and joins
/// the `existing` cluster; everything cluster-wide comes from `settings`, already read from the
/// cluster.
pub fn join_plan(settings: &ReplicaSettings, target: &TargetFacts) -> InstallPlan {
    debug_assert_eq!(settings.etcd_cluster_state, "existing");
    replica_plan(settings, target)
}

/// The replica `restore` makes: a new one-member cluster like install's, with settings built
/// from the restore's flags and the backup.
pub fn restore_plan(settings: &ReplicaSettings, target: &TargetFacts) -> InstallPlan {
    debug_assert_eq!(settings.etcd_cluster_state, "new");
    replica_plan(settings, target)
}

fn replica_plan(opts: &ReplicaSettings, target: &TargetFacts) -> InstallPlan {
    let rid = &opts.replica_id;
    let version = version::VERSION.to_string();
    let external_authority = match &opts.external_url {
        Some(u) => u.authority(),
        None if opts.https_port == 443 => target.node.clone(),
        None => format!("{}:{}", target.node, opts.https_port),
    };

    let storage = storage_mount(&opts.storage, rid);

    let (shared_buffers, effective_cache) = db_memory(opts.db_cache_mb, target.mem_total_bytes);
    let ctx = ReplicaContext {
        replica_id: rid.clone(),
        version: version.clone(),
        log_level: opts.log_level,
        proxies: opts.proxies.clone(),
        https_port: opts.https_port,
        http_port: opts.http_port,
        external_authority: external_authority.clone(),
        storage: storage.clone(),
        cluster_url: opts
            .external_url
            .as_ref()
            .map(|u| format!("https://{}", u.authority())),
        etcd_initial_cluster: opts.etcd_initial_cluster.clone(),
        etcd_cluster_state: opts.etcd_cluster_state,
        db_shared_buffers_mb: shared_buffers,
        db_effective_cache_mb: effective_cache,
    };

    let networks = vec![
        overlay_network(&opts.overlay_subnet, &version),
        NetworkSpec {
            name: BRIDGE_NETWORK.into(),
            driver: "bridge".into(),
            attachable: false,
            subnet: None,
            labels: labels::network(&version, "bridge"),
        },
    ];

    let mut volumes: Vec<VolumeSpec> = ["ca", "etcd", "notary", "rethink"]
        .into_iter()
        .map(|kind| VolumeSpec {
            name: volume_name(kind, rid),
            kind,
            labels: labels::volume(rid, &version, kind),
            driver_opts: BTreeMap::new(),
        })
        .collect();
    volumes.extend(storage_volumes(&opts.storage, rid, &version));

    let request = CertRequest {
        replica_id: rid.clone(),
        components: Component::ALL
            .iter()
            .map(|c| ComponentCert {
                component: *c,
                hostname: c.container_name(rid),
                uid: c.uid(),
            })
            .collect(),
        external_names: external_names(opts.external_url.as_ref(), target),
        user_cert: opts.user_cert.clone(),
        custom_ca_bundle: opts.custom_ca_bundle.clone(),
    };

    let phase2 = Phase2Spec {
        name: PHASE2_CONTAINER.into(),
        image: version::bootstrapper_image(),
        command: vec!["phase2".into(), "certs".into()],
        mounts: vec![MountSpec {
            source: volume_name("ca", rid),
            target: CA_MOUNT.into(),
            read_only: false,
            bind: false,
        }],
        labels: labels::phase2(rid, &version),
        request,
    };

    InstallPlan {
        replica_id: rid.clone(),
        version,
        node: target.node.clone(),
        networks,
        volumes,
        phase2,
        containers: running::replica_containers(&ctx),
        https_port: opts.https_port,
        http_port: opts.http_port,
        external_authority,
    }
}

/// DNS names and IPs the HTTPS certificate is made for when the user brings none.
fn external_names(url: Option<&ExternalUrl>, target: &TargetFacts) -> Vec<String> {
    let mut names = Vec::new();
    if let Some(u) = url {
        names.push(
            u.host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string(),
        );
    }
    names.push(target.node.clone());
    if let Some(addr) = &target.node_addr {
        names.push(addr.clone());
    }
    names.push("localhost".into());
    names.push("127.0.0.1".into());
    let mut seen = std::collections::BTreeSet::new();
    names.retain(|n| seen.insert(n.clone()));
    names
}

/// The overlay network's subnet given on the command line or the default.
pub fn default_subnet() -> Subnet {
    Subnet::parse(Subnet::DEFAULT).expect("the default subnet is valid")
}

#[cfg(test)]
mod tests;
