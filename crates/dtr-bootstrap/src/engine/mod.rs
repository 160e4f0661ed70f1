//! The Docker engine as the operations use it: a thin layer over bollard that speaks in the
//! plan's terms (specs in, names out) and turns every engine error into an `Error` that names
//! the object involved. `apply` walks a plan; `probe` waits for health.

pub mod apply;
mod images;
pub mod mke;
pub mod probe;
pub mod swarm;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use bollard::models::{
    ContainerCreateBody, HealthConfig, HostConfig, Ipam, IpamConfig, Mount, MountType,
    NetworkConnectRequest, NetworkCreateRequest, PortBinding, RestartPolicy, RestartPolicyNameEnum,
    VolumeCreateRequest,
};
use bollard::query_parameters::{
    CreateContainerOptions, DownloadFromContainerOptions, ListContainersOptions,
    ListNetworksOptions, ListNodesOptions, ListVolumesOptions, LogsOptions, RemoveContainerOptions,
    RemoveVolumeOptions, RenameContainerOptions, StopContainerOptions, UploadToContainerOptions,
};
use bollard::Docker;
use futures_util::StreamExt;

use crate::error::{DockerFailure, Error, Result};
use crate::plan::{
    ContainerSpec, MountSpec, NetworkSpec, OneShotNetwork, OneShotOutput, OneShotSpec, PortSpec,
    Uploads, VolumeSpec,
};

use bollard::models::{ContainerInspectResponse, ContainerSummary, Volume};
use bollard::models::{Network, Node};

/// What an operation drives, chosen by the CLI and handed down: the local engine (the usual
/// `DOCKER_HOST`, `DOCKER_TLS_VERIFY`, `DOCKER_CERT_PATH`, else the local socket), or MKE/UCP
/// (`--ucp-*`), logged in to and spoken to with its session token.
#[derive(Clone, Debug)]
pub enum Target {
    Local,
    Mke(mke::MkeTarget),
}

/// A log stream read to its end (or its first error) as stdout and stderr, separately.
async fn split_output(
    mut stream: impl futures_util::Stream<
            Item = std::result::Result<bollard::container::LogOutput, bollard::errors::Error>,
        > + Unpin,
) -> (String, String) {
    let (mut out, mut err) = (String::new(), String::new());
    while let Some(Ok(chunk)) = stream.next().await {
        match chunk {
            bollard::container::LogOutput::StdErr { message } => {
                err.push_str(&String::from_utf8_lossy(&message))
            }
            other => out.push_str(&String::from_utf8_lossy(&other.into_bytes())),
        }
    }
    (out, err)
}

/// The kind of refusal an engine error is: what callers match on, never its text.
pub fn classify(e: &bollard::errors::Error) -> DockerFailure {
    match e {
        bollard::errors::Error::DockerResponseServerError {
            status_code,
            message,
        } => {
            if message.contains(mke::SCHEDULING_REFUSAL) {
                DockerFailure::SchedulingRefused
            } else if message.contains("address already in use")
                || message.contains("port is already allocated")
            {
                DockerFailure::PortInUse
            } else if message.contains("error while mounting volume")
                || message.contains("failed to mount local volume")
            {
                DockerFailure::MountFailed
            } else if message.contains("active endpoints")
                // an overlay that a task of another node is still attached to
                || (message.contains("network") && message.contains("is in use by task"))
            {
                DockerFailure::ActiveEndpoints
            } else if *status_code == 404
                && message.contains("network")
                && message.contains("not found")
            {
                DockerFailure::NetworkNotFound
            } else if *status_code == 404 {
                DockerFailure::NotFound
            } else if *status_code == 401 || *status_code == 403 {
                DockerFailure::Unauthorized
            } else {
                DockerFailure::Other
            }
        }
        _ => DockerFailure::Other,
    }
}

impl Error {
    /// The engine refused to `action` `object`; classified once, here.
    pub(crate) fn docker(
        action: &'static str,
        object: impl Into<String>,
        source: bollard::errors::Error,
    ) -> Self {
        Error::Docker {
            action,
            object: object.into(),
            kind: classify(&source),
            source: Box::new(source),
        }
    }
}

/// What `Engine::describe` reports.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EngineInfo {
    /// The engine's hostname (its swarm node's name).
    pub name: String,
    pub server_version: Option<String>,
    pub swarm_active: bool,
    /// A manager of its swarm (it can create overlay networks and list nodes).
    pub swarm_manager: bool,
    pub node_id: String,
    pub node_addr: Option<String>,
    pub cpus: Option<i64>,
    pub memory_bytes: Option<i64>,
}

/// A swarm node as `docker node ls` describes it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeInfo {
    pub id: String,
    pub hostname: String,
    pub manager: bool,
    /// `ready`, `down`, ... (empty when not reported).
    pub state: String,
    /// Its address in the swarm, when it reports a usable one.
    pub addr: Option<String>,
    pub engine_version: Option<String>,
    pub cpus: Option<i64>,
    pub memory_bytes: Option<i64>,
}

/// A container as the engine lists it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ContainerInfo {
    /// Its name, without the leading `/`.
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// `running`, `exited`, `restarting`, ...
    pub state: String,
    /// `Up 3 minutes (healthy)`, as `docker ps` shows it.
    pub status: String,
    /// `(container port, published host port)`.
    pub ports: Vec<(u16, Option<u16>)>,
    /// The named volumes it mounts.
    pub volumes: Vec<String>,
}

fn container_info(c: ContainerSummary) -> ContainerInfo {
    ContainerInfo {
        name: c
            .names
            .unwrap_or_default()
            .first()
            .map(|n| n.trim_start_matches('/').to_string())
            .unwrap_or_default(),
        labels: c.labels.unwrap_or_default().into_iter().collect(),
        state: c.state.map(|s| s.to_string()).unwrap_or_default(),
        status: c.status.unwrap_or_default(),
        ports: c
            .ports
            .unwrap_or_default()
            .into_iter()
            .map(|p| (p.private_port, p.public_port))
            .collect(),
        volumes: c
            .mounts
            .unwrap_or_default()
            .into_iter()
            .filter_map(|m| m.name)
            .collect(),
    }
}

/// A container as the engine describes it in detail: what it was made of.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ContainerDetails {
    pub labels: BTreeMap<String, String>,
    /// Its environment, the image's variables included.
    pub env: BTreeMap<String, String>,
    pub mounts: Vec<MountSpec>,
    /// The host ports it publishes.
    pub ports: Vec<PortSpec>,
    pub running: bool,
}

fn container_details(c: ContainerInspectResponse) -> ContainerDetails {
    let config = c.config.unwrap_or_default();
    let env = config
        .env
        .unwrap_or_default()
        .into_iter()
        .filter_map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect();
    let mounts = c
        .mounts
        .unwrap_or_default()
        .into_iter()
        .map(|m| {
            let bind = m.typ.map(|t| t.to_string()) == Some("bind".into());
            MountSpec {
                source: if bind { m.source } else { m.name }.unwrap_or_default(),
                target: m.destination.unwrap_or_default(),
                read_only: !m.rw.unwrap_or(true),
                bind,
            }
        })
        .collect();
    let ports = c
        .host_config
        .and_then(|h| h.port_bindings)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(port, bindings)| {
            let container = port.split('/').next()?.parse().ok()?;
            let host = bindings?.first()?.host_port.as_deref()?.parse().ok()?;
            Some(PortSpec { host, container })
        })
        .collect();
    ContainerDetails {
        labels: config.labels.unwrap_or_default().into_iter().collect(),
        env,
        mounts,
        ports,
        running: c.state.and_then(|s| s.running) == Some(true),
    }
}

/// A volume as the engine describes it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VolumeInfo {
    pub name: String,
    pub driver: String,
    /// The driver's options (`type`, `o`, `device` for the local driver's NFS volumes).
    pub options: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
}

fn volume_info(v: Volume) -> VolumeInfo {
    VolumeInfo {
        name: v.name,
        driver: v.driver,
        options: v.options.into_iter().collect(),
        labels: v.labels.into_iter().collect(),
    }
}

/// A network as the engine lists it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NetworkInfo {
    pub id: String,
    pub name: String,
    /// Carries `com.docker.dtr.managed=true`: dtr made it.
    pub managed: bool,
    /// A network of one node (a bridge), not of the swarm.
    pub local: bool,
}

fn network_info(n: Network) -> NetworkInfo {
    NetworkInfo {
        id: n.id.unwrap_or_default(),
        name: n.name.unwrap_or_default(),
        local: n.scope.as_deref() == Some("local"),
        managed: n
            .labels
            .as_ref()
            .and_then(|l| l.get(crate::plan::labels::MANAGED))
            .map(String::as_str)
            == Some("true"),
    }
}

fn node_info(n: Node) -> NodeInfo {
    let description = n.description.unwrap_or_default();
    let resources = description.resources.unwrap_or_default();
    let status = n.status.unwrap_or_default();
    NodeInfo {
        id: n.id.unwrap_or_default(),
        hostname: description.hostname.unwrap_or_default(),
        manager: n
            .spec
            .and_then(|s| s.role)
            .map(|r| r.to_string())
            .as_deref()
            == Some("manager"),
        state: status.state.map(|s| s.to_string()).unwrap_or_default(),
        addr: status.addr.filter(|a| !a.is_empty() && a != "0.0.0.0"),
        engine_version: description.engine.and_then(|e| e.engine_version),
        cpus: resources.nano_cpus.map(|n| n / 1_000_000_000),
        memory_bytes: resources.memory_bytes,
    }
}

/// Where an engine names the changes it makes (`--debug`).
pub type Trace = std::sync::Arc<dyn Fn(&str) + Send + Sync>;

/// A connected engine (the local socket or `DOCKER_HOST`, with the usual TLS variables).
#[derive(Clone)]
pub struct Engine {
    docker: Docker,
    pub host: String,
    /// With `--debug`: each change and command, by object (never a file's content or an
    /// environment value).
    trace: Option<Trace>,
    /// Reached through MKE/UCP (`--ucp-url`): containers are placed with a node constraint.
    via_mke: bool,
    /// The node new containers go to (MKE only; a plain engine is its own node).
    node: Option<String>,
}

/// The object asked for does not exist; a network answered "not found" counts too.
fn is_not_found(e: &bollard::errors::Error) -> bool {
    matches!(
        classify(e),
        DockerFailure::NotFound | DockerFailure::NetworkNotFound
    )
}

fn filters(pairs: &[(&str, &str)]) -> HashMap<String, Vec<String>> {
    let mut m: HashMap<String, Vec<String>> = HashMap::new();
    for (k, v) in pairs {
        m.entry(k.to_string()).or_default().push(v.to_string());
    }
    m
}

/// A container of the bootstrapper's image that only holds `mount` (no network, never started).
fn volume_helper(mount: &MountSpec, labels: HashMap<String, String>) -> ContainerCreateBody {
    ContainerCreateBody {
        image: Some(dtr_core::version::bootstrapper_image()),
        labels: Some(labels),
        network_disabled: Some(true),
        host_config: Some(HostConfig {
            mounts: Some(mounts(std::slice::from_ref(mount))),
            network_mode: Some("none".into()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The engine's `Tmpfs` map: path → mount options.
fn tmpfs(specs: &[crate::plan::TmpfsSpec]) -> HashMap<String, String> {
    specs
        .iter()
        .map(|t| {
            let mut options = format!(
                "rw,noexec,nosuid,nodev,size={}m,mode={:o}",
                t.size_mib, t.mode
            );
            if let Some(uid) = t.owner {
                options.push_str(&format!(",uid={uid},gid={uid}"));
            }
            (t.path.to_string(), options)
        })
        .collect()
}

pub(crate) fn mounts(specs: &[MountSpec]) -> Vec<Mount> {
    specs
        .iter()
        .map(|m| Mount {
            source: Some(m.source.clone()),
            target: Some(m.target.clone()),
            typ: Some(if m.bind {
                MountType::BIND
            } else {
                MountType::VOLUME
            }),
            read_only: Some(m.read_only),
            ..Default::default()
        })
        .collect()
}

/// A container about to be created, for `--debug`: image, user, command, networks, mounts,
/// ports and the names (never the values) of its environment.
fn describe_create(name: &str, body: &ContainerCreateBody) -> String {
    let host = body.host_config.as_ref();
    let mounts: Vec<String> = host
        .and_then(|h| h.mounts.as_ref())
        .map(|ms| {
            ms.iter()
                .map(|m| {
                    let ro = if m.read_only == Some(true) { ":ro" } else { "" };
                    format!(
                        "{}:{}{ro}",
                        m.source.as_deref().unwrap_or_default(),
                        m.target.as_deref().unwrap_or_default()
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let ports: Vec<String> = host
        .and_then(|h| h.port_bindings.as_ref())
        .map(|b| {
            b.iter()
                .map(|(inside, outside)| {
                    let outside: Vec<String> = outside
                        .iter()
                        .flatten()
                        .map(|p| p.host_port.clone().unwrap_or_default())
                        .collect();
                    format!("{}->{inside}", outside.join(","))
                })
                .collect()
        })
        .unwrap_or_default();
    let env: Vec<&str> = body
        .env
        .iter()
        .flatten()
        .map(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k))
        .collect();
    format!(
        "create container {name}: image {}, user {}, command {}, network {}, mounts [{}], ports [{}], environment [{}]",
        body.image.as_deref().unwrap_or_default(),
        body.user.as_deref().filter(|u| !u.is_empty()).unwrap_or("(image's)"),
        body.cmd
            .as_ref()
            .filter(|c| !c.is_empty())
            .map_or("(image's)".to_string(), |c| format!("[{}]", c.join(" "))),
        host.and_then(|h| h.network_mode.as_deref()).unwrap_or("default"),
        mounts.join(", "),
        ports.join(", "),
        env.join(" ")
    )
}

/// The output of an attached exec, as bollard streams it.
type ExecStream = std::pin::Pin<
    Box<
        dyn futures_util::Stream<
                Item = std::result::Result<bollard::container::LogOutput, bollard::errors::Error>,
            > + Send,
    >,
>;

/// Output of a command run in a container.
pub struct ExecOutput {
    pub exit_code: i64,
    pub output: String,
}

impl Engine {
    pub async fn connect(target: &Target) -> Result<Engine> {
        if let Target::Mke(target) = target {
            let host = target.shown();
            let docker = target.connect().await?;
            let docker = docker.negotiate_version().await.map_err(|source| match source {
                bollard::errors::Error::DockerResponseServerError {
                    status_code: 401 | 403,
                    message,
                } => Error::Mke {
                    url: host.clone(),
                    reason: format!("the login worked, but the Docker API refused the session token: {message}"),
                    hint: "the account must be an MKE administrator; if it is, MKE ended the session at once: check MKE's session lifetime (Admin Settings → Authentication) and run again".into(),
                },
                source => Error::EngineUnreachable {
                    host: format!("{host} (through MKE)"),
                    source: Box::new(source),
                },
            })?;
            return Ok(Engine {
                docker,
                host,
                trace: None,
                via_mke: true,
                node: None,
            });
        }
        let host =
            std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".into());
        let unreachable = |source: bollard::errors::Error| Error::EngineUnreachable {
            host: host.clone(),
            source: Box::new(source),
        };
        let docker = Docker::connect_with_defaults().map_err(unreachable)?;
        // The engine may be older than bollard's default API version (Debian's 20.10 speaks 1.41).
        let docker = docker.negotiate_version().await.map_err(unreachable)?;
        docker.ping().await.map_err(unreachable)?;
        // a client bundle's DOCKER_HOST reaches MKE, which tells itself by its version
        let via_mke = docker
            .version()
            .await
            .ok()
            .and_then(|v| v.version)
            .is_some_and(|v| mke::is_mke_version(&v));
        Ok(Engine {
            docker,
            trace: None,
            host: if via_mke {
                format!("{host} (MKE, client bundle)")
            } else {
                host
            },
            via_mke,
            node: None,
        })
    }

    /// The same engine, naming each change it makes to `trace`.
    pub fn traced(self, trace: Option<Trace>) -> Engine {
        Engine { trace, ..self }
    }

    fn note(&self, what: impl FnOnce() -> String) {
        if let Some(t) = &self.trace {
            t(&format!("engine: {}", what()));
        }
    }

    /// The engine and its place in the swarm.
    pub async fn describe(&self) -> Result<EngineInfo> {
        let info = self
            .docker
            .info()
            .await
            .map_err(|e| Error::docker("describe", "the engine", e))?;
        let swarm = info.swarm.unwrap_or_default();
        Ok(EngineInfo {
            name: info.name.unwrap_or_default(),
            server_version: info.server_version,
            swarm_active: swarm.local_node_state.map(|s| s.to_string()).as_deref()
                == Some("active"),
            swarm_manager: swarm.control_available == Some(true),
            node_id: swarm.node_id.unwrap_or_default(),
            node_addr: swarm.node_addr.filter(|a| !a.is_empty()),
            cpus: info.ncpu,
            memory_bytes: info.mem_total,
        })
    }

    /// The swarm's nodes (a manager's view).
    pub async fn nodes(&self) -> Result<Vec<NodeInfo>> {
        let nodes = self
            .docker
            .list_nodes(None::<ListNodesOptions>)
            .await
            .map_err(|e| Error::docker("list", "swarm nodes", e))?;
        Ok(nodes.into_iter().map(node_info).collect())
    }

    /// Every host port a container on this engine publishes, and that container's name.
    pub async fn published_ports(&self) -> Result<Vec<(u16, String)>> {
        let mut out = Vec::new();
        for c in self.containers_labelled(&[]).await? {
            for (_, public) in &c.ports {
                if let Some(public) = public {
                    out.push((*public, c.name.clone()));
                }
            }
        }
        Ok(out)
    }

    pub async fn image_exists(&self, image: &str) -> Result<bool> {
        match self.docker.inspect_image(image).await {
            Ok(_) => Ok(true),
            Err(e) if is_not_found(&e) => Ok(false),
            Err(e) => Err(Error::docker("inspect image", image, e)),
        }
    }

    /// The networks with exactly this name: the engine does not keep names unique (two
    /// creations racing each other both succeed), so there may be more than one.
    pub async fn networks_named(&self, name: &str) -> Result<Vec<NetworkInfo>> {
        // Names are matched exactly: the engine's name filter matches substrings.
        let list = self
            .docker
            .list_networks(Some(ListNetworksOptions {
                filters: Some(filters(&[("name", name)])),
            }))
            .await
            .map_err(|e| Error::docker("list networks", name, e))?;
        Ok(list
            .into_iter()
            .filter(|n| n.name.as_deref() == Some(name))
            .map(network_info)
            .collect())
    }

    pub async fn networks_labelled(&self, label: &str) -> Result<Vec<NetworkInfo>> {
        let list = self
            .docker
            .list_networks(Some(ListNetworksOptions {
                filters: Some(filters(&[("label", label)])),
            }))
            .await
            .map_err(|e| Error::docker("list networks", label, e))?;
        Ok(list.into_iter().map(network_info).collect())
    }

    pub async fn create_network(&self, spec: &NetworkSpec) -> Result<()> {
        let request = NetworkCreateRequest {
            name: spec.name.clone(),
            driver: Some(spec.driver.clone()),
            attachable: Some(spec.attachable),
            ipam: spec.subnet.as_ref().map(|s| Ipam {
                config: Some(vec![IpamConfig {
                    subnet: Some(s.clone()),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            labels: Some(spec.labels.clone().into_iter().collect()),
            ..Default::default()
        };
        self.note(|| format!("create network {} (driver {})", spec.name, spec.driver));
        self.docker
            .create_network(request)
            .await
            .map(|_| ())
            .map_err(|e| Error::docker("create network", &spec.name, e))
    }

    /// Removes a network (by name or id). The engine releases the endpoints of just-removed
    /// containers asynchronously, so "active endpoints" is retried for up to 3 s.
    pub async fn remove_network(&self, name: &str) -> Result<()> {
        self.note(|| format!("remove network {name}"));
        let mut attempt = 0;
        loop {
            match self.docker.remove_network(name).await {
                Ok(()) => return Ok(()),
                Err(e) if is_not_found(&e) => return Ok(()),
                Err(e) if attempt < 10 && classify(&e) == DockerFailure::ActiveEndpoints => {
                    attempt += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
                }
                Err(e) => return Err(Error::docker("remove network", name, e)),
            }
        }
    }

    pub async fn volume(&self, name: &str) -> Result<Option<VolumeInfo>> {
        match self.docker.inspect_volume(name).await {
            Ok(v) => Ok(Some(volume_info(v))),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(Error::docker("inspect volume", name, e)),
        }
    }

    pub async fn volumes_labelled(&self, labels: &[&str]) -> Result<Vec<VolumeInfo>> {
        let pairs: Vec<(&str, &str)> = labels.iter().map(|l| ("label", *l)).collect();
        let r = self
            .docker
            .list_volumes(Some(ListVolumesOptions {
                filters: Some(filters(&pairs)),
            }))
            .await
            .map_err(|e| Error::docker("list volumes", labels.join(","), e))?;
        Ok(r.volumes
            .unwrap_or_default()
            .into_iter()
            .map(volume_info)
            .collect())
    }

    pub async fn create_volume(&self, spec: &VolumeSpec) -> Result<()> {
        let request = VolumeCreateRequest {
            name: Some(spec.name.clone()),
            labels: Some(spec.labels.clone().into_iter().collect()),
            driver: (!spec.driver_opts.is_empty()).then(|| "local".to_string()),
            driver_opts: (!spec.driver_opts.is_empty())
                .then(|| spec.driver_opts.clone().into_iter().collect()),
            ..Default::default()
        };
        self.note(|| {
            let opts: Vec<String> = spec
                .driver_opts
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            format!("create volume {} [{}]", spec.name, opts.join(" "))
        });
        if self.via_mke && self.node.is_some() {
            return self.create_volume_on_node(spec).await;
        }
        self.docker
            .create_volume(request)
            .await
            .map(|_| ())
            .map_err(|e| Error::docker("create volume", &spec.name, e))
    }

    /// Through MKE a named volume is made where the first container that mounts it is placed
    /// (classic Swarm's volume create does not take a node): a helper container pinned to this
    /// engine's node, created with the mount and the volume's labels and driver options, never
    /// started, removed again.
    async fn create_volume_on_node(&self, spec: &VolumeSpec) -> Result<()> {
        use bollard::models::{MountVolumeOptions, MountVolumeOptionsDriverConfig};
        let helper = format!("dtr-volume-{}", spec.name);
        let _ = self.remove_container(&helper).await;
        let mut mount = mounts(&[MountSpec {
            source: spec.name.clone(),
            target: "/volume".into(),
            read_only: false,
            bind: false,
        }])
        .remove(0);
        mount.volume_options = Some(MountVolumeOptions {
            labels: Some(spec.labels.clone().into_iter().collect()),
            driver_config: (!spec.driver_opts.is_empty()).then(|| MountVolumeOptionsDriverConfig {
                name: Some("local".into()),
                options: Some(spec.driver_opts.clone().into_iter().collect()),
            }),
            ..Default::default()
        });
        let body = ContainerCreateBody {
            image: Some(dtr_core::version::bootstrapper_image()),
            labels: Some(spec.labels.clone().into_iter().collect()),
            network_disabled: Some(true),
            host_config: Some(HostConfig {
                mounts: Some(vec![mount]),
                network_mode: Some("none".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        self.create_raw(&helper, body).await?;
        self.remove_container(&helper).await
    }

    pub async fn remove_volume(&self, name: &str) -> Result<()> {
        self.note(|| format!("remove volume {name}"));
        match self
            .docker
            .remove_volume(name, Some(RemoveVolumeOptions { force: false }))
            .await
        {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(Error::docker("remove volume", name, e)),
        }
    }

    /// The containers, running or not, that carry every label filter (`key=value`).
    pub async fn containers_labelled(&self, labels: &[&str]) -> Result<Vec<ContainerInfo>> {
        let pairs: Vec<(&str, &str)> = labels.iter().map(|l| ("label", *l)).collect();
        let list = self
            .docker
            .list_containers(Some(ListContainersOptions {
                all: true,
                filters: Some(filters(&pairs)),
                ..Default::default()
            }))
            .await
            .map_err(|e| Error::docker("list containers", labels.join(","), e))?;
        Ok(list.into_iter().map(container_info).collect())
    }

    /// Creates a component container (not started) on its first network, then connects the others.
    pub async fn create_container(&self, spec: &ContainerSpec) -> Result<()> {
        self.create_container_as(spec, &spec.name).await
    }

    /// The same, under another name (a replacement is made beside the container it replaces).
    pub async fn create_container_as(&self, spec: &ContainerSpec, name: &str) -> Result<()> {
        let nanos = |d: Duration| d.as_nanos() as i64;
        let body = ContainerCreateBody {
            image: Some(spec.image.clone()),
            hostname: Some(spec.hostname.clone()),
            user: Some(spec.user.clone()),
            env: Some(spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
            labels: Some(
                spec.labels
                    .clone()
                    .into_iter()
                    .chain([(crate::plan::labels::SPEC.to_string(), spec.fingerprint())])
                    .collect(),
            ),
            exposed_ports: exposed_ports(&spec.ports),
            stop_timeout: Some(crate::plan::STOP_GRACE.as_secs() as i64),
            healthcheck: Some(HealthConfig {
                test: Some(
                    std::iter::once("CMD".to_string())
                        .chain(spec.health.command.iter().cloned())
                        .collect(),
                ),
                interval: Some(nanos(spec.health.interval)),
                timeout: Some(nanos(spec.health.timeout)),
                retries: Some(spec.health.retries),
                start_period: Some(nanos(spec.health.start_period)),
                ..Default::default()
            }),
            host_config: Some(HostConfig {
                mounts: Some(mounts(&spec.mounts)),
                network_mode: spec.networks.first().cloned(),
                port_bindings: port_bindings(&spec.ports),
                restart_policy: Some(RestartPolicy {
                    name: Some(restart_policy(spec.restart_policy)),
                    maximum_retry_count: None,
                }),
                init: Some(true),
                memory: Some((spec.memory_mib * 1024 * 1024) as i64),
                pids_limit: Some(spec.pids_limit),
                cap_drop: Some(vec!["ALL".into()]),
                security_opt: spec
                    .no_new_privileges
                    .then(|| vec!["no-new-privileges:true".into()]),
                group_add: (!spec.group_add.is_empty())
                    .then(|| spec.group_add.iter().map(u32::to_string).collect()),
                readonly_rootfs: spec.read_only.then_some(true),
                tmpfs: (!spec.tmpfs.is_empty()).then(|| tmpfs(&spec.tmpfs)),
                ..Default::default()
            }),
            ..Default::default()
        };
        self.create_raw(name, body).await?;
        for net in spec.networks.iter().skip(1) {
            self.note(|| format!("connect container {name} to network {net}"));
            self.docker
                .connect_network(
                    net,
                    NetworkConnectRequest {
                        container: name.to_string(),
                        ..Default::default()
                    },
                )
                .await
                .map_err(|e| Error::docker("connect to network", format!("{name} ({net})"), e))?;
        }
        Ok(())
    }

    /// Connects a container to a network.
    pub async fn connect_network(&self, container: &str, network: &str) -> Result<()> {
        self.note(|| format!("connect container {container} to network {network}"));
        self.docker
            .connect_network(
                network,
                NetworkConnectRequest {
                    container: container.to_string(),
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| Error::docker("connect to network", format!("{container} ({network})"), e))
    }

    pub fn via_mke(&self) -> bool {
        self.via_mke
    }

    /// The same engine, placing the containers it creates on `node` (through MKE).
    pub fn placed_on(&self, node: &str) -> Engine {
        Engine {
            node: Some(node.to_string()),
            ..self.clone()
        }
    }

    /// The node a new container goes to through MKE: the one chosen for this engine, else the
    /// node its replica's other containers were placed on (upgrade, reconfigure, phase 2).
    async fn placement(&self, body: &ContainerCreateBody) -> Result<Option<String>> {
        if !self.via_mke {
            return Ok(None);
        }
        if let Some(node) = &self.node {
            return Ok(Some(node.clone()));
        }
        let replica = body
            .labels
            .as_ref()
            .and_then(|l| l.get(crate::plan::labels::REPLICA));
        let Some(replica) = replica else {
            return Ok(None);
        };
        let filter = format!("{}={replica}", crate::plan::labels::REPLICA);
        let siblings = self.containers_labelled(&[&filter]).await?;
        Ok(siblings
            .iter()
            .find_map(|c| c.labels.get(crate::plan::labels::NODE).cloned()))
    }

    /// Runs a one-shot container to its end: a leftover of the same name is removed first,
    /// `uploads` are copied in before it starts, and it is removed afterwards whatever
    /// happened. A failure to create or start it is the engine's error (classified: a taken
    /// port, MKE's scheduling refusal); a non-zero exit is the caller's to judge.
    pub async fn run_once(
        &self,
        spec: &OneShotSpec,
        uploads: Option<&Uploads<'_>>,
    ) -> Result<OneShotOutput> {
        let _ = self.remove_container(&spec.name).await;
        self.create_raw(&spec.name, one_shot_body(spec)).await?;
        let result: Result<OneShotOutput> = async {
            if let Some(u) = uploads {
                self.upload(&spec.name, u.dir, &u.files).await?;
            }
            self.start(&spec.name).await?;
            let exit_code = self.wait_exit(&spec.name).await?;
            let (stdout, stderr) = self.output(&spec.name).await;
            Ok(OneShotOutput {
                exit_code,
                stdout,
                stderr,
            })
        }
        .await;
        let removed = self.remove_container(&spec.name).await;
        let output = result?;
        removed?;
        Ok(output)
    }

    /// Starts a one-shot container and leaves it running (a leftover of the same name is
    /// removed first); the caller removes it with [`Engine::remove_container`].
    pub async fn start_detached(&self, spec: &OneShotSpec) -> Result<()> {
        let _ = self.remove_container(&spec.name).await;
        self.create_raw(&spec.name, one_shot_body(spec)).await?;
        if let Err(e) = self.start(&spec.name).await {
            let _ = self.remove_container(&spec.name).await;
            return Err(e);
        }
        Ok(())
    }

    /// Creates a container from a raw body. Through MKE the body gets the node constraint and
    /// a label naming the node.
    async fn create_raw(&self, name: &str, body: ContainerCreateBody) -> Result<()> {
        let node = self.placement(&body).await?;
        self.create_on(name, body, node).await
    }

    /// Creates a container from a raw body on `node` (through MKE; the engine's own node
    /// otherwise).
    async fn create_on(
        &self,
        name: &str,
        mut body: ContainerCreateBody,
        node: Option<String>,
    ) -> Result<()> {
        self.note(|| describe_create(name, &body));
        if let Some(node) = node.filter(|_| self.via_mke) {
            body.env
                .get_or_insert_with(Vec::new)
                .push(mke::node_constraint(&node));
            body.labels
                .get_or_insert_with(Default::default)
                .insert(crate::plan::labels::NODE.to_string(), node);
        }
        self.docker
            .create_container(
                Some(CreateContainerOptions {
                    name: Some(name.to_string()),
                    ..Default::default()
                }),
                body,
            )
            .await
            .map(|_| ())
            .map_err(|e| Error::docker("create container", name, e))
    }

    /// Starts a container. A node detaches from an attachable overlay asynchronously once its
    /// last container on it is gone (moby/moby#27513, docker/for-linux#888); a start in that
    /// moment answers "network … not found", so that refusal is retried for up to 10 s.
    pub async fn start(&self, name: &str) -> Result<()> {
        self.note(|| format!("start container {name}"));
        let mut attempt = 0;
        loop {
            match self.docker.start_container(name, None).await {
                Ok(()) => return Ok(()),
                Err(e) if attempt < 20 && classify(&e) == DockerFailure::NetworkNotFound => {
                    attempt += 1;
                    self.note(|| format!("start container {name}: {e}; again in 0.5 s"));
                    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                }
                Err(e) => return Err(Error::docker("start container", name, e)),
            }
        }
    }

    pub async fn remove_container(&self, name: &str) -> Result<()> {
        self.note(|| format!("remove container {name}"));
        match self
            .docker
            .remove_container(
                name,
                Some(RemoveContainerOptions {
                    force: true,
                    v: false,
                    link: false,
                }),
            )
            .await
        {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(Error::docker("remove container", name, e)),
        }
    }

    /// `(status, exit code)` of a container, or `None` if it does not exist.
    pub async fn state(&self, name: &str) -> Result<Option<(String, i64)>> {
        match self.docker.inspect_container(name, None).await {
            Ok(c) => {
                let s = c.state.unwrap_or_default();
                Ok(Some((
                    s.status.map(|x| x.to_string()).unwrap_or_default(),
                    s.exit_code.unwrap_or(0),
                )))
            }
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(Error::docker("inspect container", name, e)),
        }
    }

    pub async fn wait_exit(&self, name: &str) -> Result<i64> {
        let mut stream = self.docker.wait_container(name, None);
        match stream.next().await {
            Some(Ok(r)) => Ok(r.status_code),
            // a non-zero exit arrives as an error carrying the code
            Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => Ok(code),
            Some(Err(e)) => Err(Error::docker("wait for container", name, e)),
            None => Ok(self.state(name).await?.map(|s| s.1).unwrap_or(-1)),
        }
    }

    /// The last `lines` lines of the container's output (stdout and stderr, in order).
    pub async fn logs(&self, name: &str, lines: usize) -> String {
        let opts = LogsOptions {
            stdout: true,
            stderr: true,
            tail: lines.to_string(),
            ..Default::default()
        };
        let mut stream = self.docker.logs(name, Some(opts));
        let mut out = String::new();
        while let Some(Ok(chunk)) = stream.next().await {
            out.push_str(&String::from_utf8_lossy(&chunk.into_bytes()));
        }
        out
    }

    /// stdout and stderr of a finished container, separately.
    pub async fn output(&self, name: &str) -> (String, String) {
        let opts = LogsOptions {
            stdout: true,
            stderr: true,
            tail: "all".into(),
            ..Default::default()
        };
        split_output(self.docker.logs(name, Some(opts))).await
    }

    /// Creates and starts a command in a running container, attached to its stdout and stderr:
    /// the exec's id and its output.
    async fn start_attached(&self, name: &str, cmd: &[String]) -> Result<(String, ExecStream)> {
        let created = self
            .docker
            .create_exec(
                name,
                bollard::exec::CreateExecOptions::<String> {
                    cmd: Some(cmd.to_vec()),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| Error::docker("run a command in", name, e))?;
        let output = match self
            .docker
            .start_exec(&created.id, None)
            .await
            .map_err(|e| Error::docker("run a command in", name, e))?
        {
            bollard::exec::StartExecResults::Attached { output, .. } => output,
            bollard::exec::StartExecResults::Detached => Box::pin(futures_util::stream::empty()),
        };
        Ok((created.id, output))
    }

    /// The exit code of a finished exec.
    async fn exec_exit_code(&self, name: &str, id: &str) -> Result<i64> {
        let inspect = self
            .docker
            .inspect_exec(id)
            .await
            .map_err(|e| Error::docker("inspect a command in", name, e))?;
        Ok(inspect.exit_code.unwrap_or(-1))
    }

    /// Runs a command in a running container and collects its output.
    pub async fn exec(&self, name: &str, cmd: &[String]) -> Result<ExecOutput> {
        self.note(|| format!("exec in {name}: {}", cmd.join(" ")));
        let (id, mut stream) = self.start_attached(name, cmd).await?;
        let mut output = String::new();
        while let Some(Ok(chunk)) = stream.next().await {
            output.push_str(&String::from_utf8_lossy(&chunk.into_bytes()));
        }
        Ok(ExecOutput {
            exit_code: self.exec_exit_code(name, &id).await?,
            output,
        })
    }

    /// Runs a command in a running container and streams its stdout into `file` (memory does not
    /// grow with the output). Returns the exit code and the last 8 KiB of stderr.
    pub async fn exec_to_file(
        &self,
        name: &str,
        cmd: &[String],
        file: &std::path::Path,
    ) -> Result<ExecOutput> {
        use tokio::io::AsyncWriteExt;
        let write_failed = |e| Error::io(format!("write {}", file.display()), e);
        let mut out = tokio::fs::File::create(file)
            .await
            .map_err(|e| Error::io(format!("create {}", file.display()), e))?;
        self.note(|| format!("exec in {name}: {} > {}", cmd.join(" "), file.display()));
        let (id, mut stream) = self.start_attached(name, cmd).await?;
        let mut stderr: Vec<u8> = Vec::new();
        while let Some(chunk) = stream.next().await {
            match chunk.map_err(|e| Error::docker("read the output of a command in", name, e))? {
                bollard::container::LogOutput::StdOut { message } => {
                    out.write_all(&message).await.map_err(write_failed)?
                }
                other => {
                    stderr.extend_from_slice(&other.into_bytes());
                    let excess = stderr.len().saturating_sub(8192);
                    stderr.drain(..excess);
                }
            }
        }
        out.flush().await.map_err(write_failed)?;
        Ok(ExecOutput {
            exit_code: self.exec_exit_code(name, &id).await?,
            output: String::from_utf8_lossy(&stderr).to_string(),
        })
    }

    /// Stops a container (a no-op when it is not running or does not exist), giving it
    /// `grace` to exit on SIGTERM. A stopped container stays stopped (restart policy
    /// `unless-stopped`).
    pub async fn stop(&self, name: &str, grace: Duration) -> Result<()> {
        self.note(|| format!("stop container {name} ({}s to exit)", grace.as_secs()));
        match self
            .docker
            .stop_container(
                name,
                Some(StopContainerOptions {
                    t: Some(grace.as_secs() as i32),
                    ..Default::default()
                }),
            )
            .await
        {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            // 304: already stopped
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 304, ..
            }) => Ok(()),
            Err(e) => Err(Error::docker("stop container", name, e)),
        }
    }

    pub async fn rename(&self, name: &str, to: &str) -> Result<()> {
        self.note(|| format!("rename container {name} to {to}"));
        self.docker
            .rename_container(
                name,
                RenameContainerOptions {
                    name: to.to_string(),
                },
            )
            .await
            .map_err(|e| Error::docker("rename container", format!("{name} (to {to})"), e))
    }

    pub async fn restart(&self, name: &str) -> Result<()> {
        self.note(|| format!("restart container {name}"));
        self.docker
            .restart_container(name, None)
            .await
            .map_err(|e| Error::docker("restart container", name, e))
    }

    /// The container's full description, or `None` if it does not exist.
    pub async fn inspect(&self, name: &str) -> Result<Option<ContainerDetails>> {
        match self.docker.inspect_container(name, None).await {
            Ok(c) => Ok(Some(container_details(c))),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(Error::docker("inspect container", name, e)),
        }
    }

    /// A path of a container (running or not, volumes included) as a tar archive.
    pub async fn download(&self, name: &str, path: &str) -> Result<Vec<u8>> {
        let mut stream = self.docker.download_from_container(
            name,
            Some(DownloadFromContainerOptions {
                path: path.to_string(),
            }),
        );
        let mut out = Vec::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk
                .map_err(|e| Error::docker("copy files out of", format!("{name}:{path}"), e))?;
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }

    /// Writes files into a volume through a helper container that is created, never started,
    /// and removed again: the only way to write into a volume every component mounts read-only.
    pub async fn write_into_volume(
        &self,
        volume: &str,
        helper: &str,
        files: &[(&str, &[u8], u32)],
        owner: u64,
        labels: HashMap<String, String>,
    ) -> Result<()> {
        let _ = self.remove_container(helper).await;
        let mount = MountSpec {
            source: volume.to_string(),
            target: "/volume".into(),
            read_only: false,
            bind: false,
        };
        self.create_raw(helper, volume_helper(&mount, labels))
            .await?;
        let result = self.upload_owned(helper, "/volume", files, owner).await;
        self.remove_container(helper).await?;
        result
    }

    /// The files of a volume, as the engine's archive of `target` (entries under its last
    /// component), through a helper that mounts the volume read-only at `target` and is
    /// created, never started, and removed again: what no component sees of it (the CA key)
    /// is read this way. Through MKE the helper goes to `node`, where the volume is.
    pub async fn read_volume(
        &self,
        volume: &str,
        target: &str,
        helper: &str,
        labels: HashMap<String, String>,
        node: Option<String>,
    ) -> Result<Vec<u8>> {
        let _ = self.remove_container(helper).await;
        let mount = MountSpec {
            source: volume.to_string(),
            target: target.to_string(),
            read_only: true,
            bind: false,
        };
        let body = volume_helper(&mount, labels);
        let node = match node {
            Some(n) => Some(n),
            None => self.placement(&body).await?,
        };
        self.create_on(helper, body, node).await?;
        let result = self.download(helper, target).await;
        self.remove_container(helper).await?;
        result
    }

    /// Copies files into a (created or running) container: `(path inside dir, contents, mode)`,
    /// owned by root.
    pub async fn upload(&self, name: &str, dir: &str, files: &[(&str, &[u8], u32)]) -> Result<()> {
        self.upload_owned(name, dir, files, 0).await
    }

    /// The same, every file owned by `uid` (and the group of that number).
    pub async fn upload_owned(
        &self,
        name: &str,
        dir: &str,
        files: &[(&str, &[u8], u32)],
        uid: u64,
    ) -> Result<()> {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, contents, mode) in files {
            let mut header = tar::Header::new_gnu();
            header.set_size(contents.len() as u64);
            header.set_mode(*mode);
            header.set_uid(uid);
            header.set_gid(uid);
            header.set_mtime(0);
            header.set_cksum();
            builder
                .append_data(&mut header, path, *contents)
                .map_err(|e| Error::io("build upload archive", e))?;
        }
        let archive = builder
            .into_inner()
            .map_err(|e| Error::io("build upload archive", e))?;
        self.note(|| {
            let listed: Vec<String> = files
                .iter()
                .map(|(p, c, m)| format!("{p} ({} bytes, {m:o})", c.len()))
                .collect();
            format!("copy into {name}:{dir}: {}", listed.join(", "))
        });
        self.docker
            .upload_to_container(
                name,
                Some(UploadToContainerOptions {
                    path: dir.to_string(),
                    ..Default::default()
                }),
                bollard::body_full(archive.into()),
            )
            .await
            .map_err(|e| Error::docker("copy files into", name, e))
    }
}

impl Engine {
    /// Copies one file from the local disk into a container as `dir/entry` (mode and owner
    /// `uid`), streamed: memory does not grow with the file's size.
    pub async fn upload_file(
        &self,
        name: &str,
        dir: &str,
        entry: &str,
        file: &std::path::Path,
        mode: u32,
        uid: u64,
    ) -> Result<()> {
        let local = std::fs::File::open(file)
            .map_err(|e| Error::io(format!("open {}", file.display()), e))?;
        let size = local
            .metadata()
            .map_err(|e| Error::io(format!("open {}", file.display()), e))?
            .len();
        let mut header = tar::Header::new_gnu();
        header.set_size(size);
        header.set_mode(mode);
        header.set_uid(uid);
        header.set_gid(uid);
        header.set_mtime(0);
        header
            .set_path(entry)
            .map_err(|e| Error::io("build upload archive", e))?;
        header.set_cksum();
        self.note(|| {
            format!(
                "copy {} into {name}:{dir}/{entry} ({size} bytes, {mode:o})",
                file.display()
            )
        });
        let head = bytes::Bytes::copy_from_slice(header.as_bytes());
        let padding = (512 - size % 512) % 512;
        // header, the file in 64 KiB pieces, padding to a block, then two zero blocks
        let tail = bytes::Bytes::from(vec![0u8; padding as usize + 1024]);
        let body = futures_util::stream::iter([Ok(head)])
            .chain(futures_util::stream::unfold(local, |mut f| async move {
                use std::io::Read;
                let mut buf = vec![0u8; 64 * 1024];
                match f.read(&mut buf) {
                    Ok(0) => None,
                    Ok(n) => {
                        buf.truncate(n);
                        Some((Ok(bytes::Bytes::from(buf)), f))
                    }
                    Err(e) => Some((Err(e), f)),
                }
            }))
            .chain(futures_util::stream::iter([Ok(tail)]));
        self.docker
            .upload_to_container(
                name,
                Some(UploadToContainerOptions {
                    path: dir.to_string(),
                    ..Default::default()
                }),
                bollard::body_try_stream(body),
            )
            .await
            .map_err(|e| Error::docker("copy files into", name, e))
    }
}

fn port_bindings(ports: &[PortSpec]) -> Option<HashMap<String, Option<Vec<PortBinding>>>> {
    if ports.is_empty() {
        return None;
    }
    Some(
        ports
            .iter()
            .map(|p| {
                (
                    format!("{}/tcp", p.container),
                    Some(vec![PortBinding {
                        host_ip: None,
                        host_port: Some(p.host.to_string()),
                    }]),
                )
            })
            .collect(),
    )
}

fn exposed_ports(ports: &[PortSpec]) -> Option<Vec<String>> {
    if ports.is_empty() {
        return None;
    }
    Some(
        ports
            .iter()
            .map(|p| format!("{}/tcp", p.container))
            .collect(),
    )
}

fn one_shot_body(spec: &OneShotSpec) -> ContainerCreateBody {
    let network_mode = match &spec.network {
        OneShotNetwork::None => Some("none".to_string()),
        OneShotNetwork::Default => None,
        OneShotNetwork::Named(n) => Some(n.clone()),
    };
    ContainerCreateBody {
        image: Some(spec.image.clone()),
        entrypoint: spec.entrypoint.clone(),
        cmd: (!spec.command.is_empty()).then(|| spec.command.clone()),
        user: spec.user.clone(),
        labels: Some(spec.labels.clone().into_iter().collect()),
        network_disabled: (spec.network == OneShotNetwork::None).then_some(true),
        exposed_ports: exposed_ports(&spec.ports),
        host_config: Some(HostConfig {
            mounts: (!spec.mounts.is_empty()).then(|| mounts(&spec.mounts)),
            network_mode,
            port_bindings: port_bindings(&spec.ports),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn restart_policy(name: &str) -> RestartPolicyNameEnum {
    match name {
        "always" => RestartPolicyNameEnum::ALWAYS,
        "no" => RestartPolicyNameEnum::NO,
        "on-failure" => RestartPolicyNameEnum::ON_FAILURE,
        _ => RestartPolicyNameEnum::UNLESS_STOPPED,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_overlay_still_used_on_another_node_counts_as_active_endpoints() {
        let refusal =
            |status_code, message: &str| bollard::errors::Error::DockerResponseServerError {
                status_code,
                message: message.into(),
            };
        let elsewhere = "rpc error: code = FailedPrecondition desc = network xczowzerd0jq is in use by task 0mw0z7kclq8k";
        assert_eq!(
            classify(&refusal(400, elsewhere)),
            DockerFailure::ActiveEndpoints
        );
        let here = "error while removing network: network dtr-br id 2e94 has active endpoints";
        assert_eq!(
            classify(&refusal(403, here)),
            DockerFailure::ActiveEndpoints
        );
        assert_eq!(
            classify(&refusal(400, "bad parameter")),
            DockerFailure::Other
        );
    }

    #[test]
    fn a_network_the_node_does_not_know_is_told_from_a_missing_container() {
        let refusal = |message: &str| bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            message: message.into(),
        };
        assert_eq!(
            classify(&refusal("network fphm30ht1myf94jesw67w2u30 not found")),
            DockerFailure::NetworkNotFound
        );
        assert_eq!(
            classify(&refusal("No such container: dtr-etcd-bb0206b3d793")),
            DockerFailure::NotFound
        );
    }

    #[test]
    fn a_container_is_described_for_debug_without_its_environment_values() {
        let body = ContainerCreateBody {
            image: Some("registry/dtr-api:1".into()),
            user: Some("10007:10007".into()),
            env: Some(vec![
                "DTR_REPLICA_ID=0123456789ab".into(),
                "TOKEN=s3cr3t=x".into(),
            ]),
            host_config: Some(HostConfig {
                mounts: Some(mounts(&[MountSpec {
                    source: "dtr-ca-0123456789ab".into(),
                    target: "/ca".into(),
                    read_only: true,
                    bind: false,
                }])),
                network_mode: Some("dtr-br".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let shown = describe_create("dtr-api-0123456789ab", &body);
        assert_eq!(
            shown,
            "create container dtr-api-0123456789ab: image registry/dtr-api:1, user 10007:10007, \
             command (image's), network dtr-br, mounts [dtr-ca-0123456789ab:/ca:ro], ports [], \
             environment [DTR_REPLICA_ID TOKEN]"
        );
    }
}
