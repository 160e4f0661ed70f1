//! What the bootstrapper knows about a running cluster, read through the engine only: the
//! replicas (from our containers' labels), each component's state and health, the etcd members
//! and their health (`etcdctl` run in an etcd container), and the database members' roles
//! (Patroni's `/cluster`, asked inside a rethinkdb container). Join, remove, emergency-repair
//! and `dtr status` decide from this view; the quorum rules themselves are pure functions here.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;

use crate::engine::{ContainerInfo, Engine};
use crate::error::{Error, Result};
use crate::plan::labels;
use dtr_core::component::Component;
use dtr_core::options::ReplicaId;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    Healthy,
    Unhealthy,
    Starting,
    Stopped,
}

#[derive(Clone, Debug, Serialize)]
pub struct ContainerView {
    pub name: String,
    pub health: Health,
    /// Its `com.docker.dtr.version` label.
    pub version: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct ReplicaView {
    pub id: ReplicaId,
    /// The oldest version among its containers (they differ while an upgrade replaces them).
    pub version: String,
    pub containers: BTreeMap<Component, ContainerView>,
    pub https_port: Option<u16>,
    pub http_port: Option<u16>,
    /// The swarm node it runs on (its record in etcd; this engine's node for its own).
    pub node: Option<String>,
    /// Its containers are not on this engine (another node of a plain swarm): what the cluster
    /// shows of it instead — its etcd member, database member and api over `dtr-ol` — as
    /// problems (empty when all three answer well).
    pub elsewhere: Option<Vec<String>>,
}

impl ReplicaView {
    /// What keeps this replica from being healthy (empty when all eight are healthy).
    pub fn problems(&self) -> Vec<String> {
        if let Some(seen) = &self.elsewhere {
            return seen.clone();
        }
        Component::ALL
            .iter()
            .filter_map(|c| match self.containers.get(c) {
                None => Some(format!("{} is missing", c.container_name(&self.id))),
                Some(v) if v.health != Health::Healthy => {
                    Some(format!("{} is {:?}", v.name, v.health).to_lowercase())
                }
                Some(_) => None,
            })
            .collect()
    }

    pub fn healthy(&self) -> bool {
        self.problems().is_empty()
    }

    pub fn running(&self, c: Component) -> bool {
        self.containers
            .get(&c)
            .is_some_and(|v| v.health != Health::Stopped)
    }

    /// Its containers are on this engine.
    pub fn here(&self) -> bool {
        self.elsewhere.is_none()
    }
}

fn health_of(c: &ContainerInfo) -> Health {
    let status = &c.status;
    match () {
        _ if c.state != "running" => Health::Stopped,
        _ if status.contains("(healthy)") => Health::Healthy,
        _ if status.contains("(unhealthy)") => Health::Unhealthy,
        _ => Health::Starting,
    }
}

/// Every replica with at least one component container on this engine, by id.
pub async fn replicas(engine: &Engine) -> Result<BTreeMap<ReplicaId, ReplicaView>> {
    let mut out: BTreeMap<ReplicaId, ReplicaView> = BTreeMap::new();
    for c in engine
        .containers_labelled(&[&labels::managed_filter()])
        .await?
    {
        let l = &c.labels;
        let (Some(rid), Some(component)) = (
            l.get(labels::REPLICA)
                .and_then(|r| ReplicaId::parse(r).ok()),
            l.get(labels::COMPONENT)
                .and_then(|n| Component::from_name(n)),
        ) else {
            continue;
        };
        let name = component.container_name(&rid);
        // `-next` and `-previous` containers of a replacement under way are not the replica's
        if c.name != name {
            continue;
        }
        let version = l.get(labels::VERSION).cloned().unwrap_or_default();
        let view = out.entry(rid.clone()).or_insert_with(|| ReplicaView {
            id: rid.clone(),
            version: version.clone(),
            containers: BTreeMap::new(),
            https_port: None,
            http_port: None,
            node: None,
            elsewhere: None,
        });
        if dtr_core::version_rules::older(&version, &view.version) {
            view.version = version.clone();
        }
        if component == Component::Nginx {
            for (private, public) in &c.ports {
                match *private {
                    dtr_core::component::NGINX_HTTPS_PORT => view.https_port = *public,
                    dtr_core::component::NGINX_HTTP_PORT => view.http_port = *public,
                    _ => {}
                }
            }
        }
        let mut health = health_of(&c);
        if health == Health::Starting {
            // Docker's own check runs every 10 s: right after a start, ask the probe itself
            let probe = engine.exec(&name, &["dtr-health".to_string()]).await;
            health = match probe {
                Ok(o) if o.exit_code == 0 => Health::Healthy,
                _ => Health::Starting,
            };
        }
        view.containers.insert(
            component,
            ContainerView {
                name,
                health,
                version: version.clone(),
            },
        );
    }
    Ok(out)
}

/// One etcd member as `etcdctl member list` reports it.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct EtcdMember {
    /// Hexadecimal, as etcdctl takes it.
    pub id: String,
    /// The replica id; empty for a member added but never started.
    pub name: String,
    pub peer_urls: Vec<String>,
    pub learner: bool,
    /// Filled by `etcd_health`.
    pub healthy: bool,
}

impl EtcdMember {
    /// The replica this member belongs to (from its name, or its peer URL before it started).
    pub fn replica(&self) -> Option<ReplicaId> {
        ReplicaId::parse(&self.name).ok().or_else(|| {
            self.peer_urls.iter().find_map(|u| {
                let host = u.trim_start_matches("https://").split(':').next()?;
                ReplicaId::parse(host.strip_prefix("dtr-etcd-")?).ok()
            })
        })
    }
}

/// `etcdctl` inside `dtr-etcd-<via>`: the image's environment points it at the local member
/// with the member's own client certificate.
pub async fn etcdctl(engine: &Engine, via: &ReplicaId, args: &[&str]) -> Result<String> {
    etcdctl_at(engine, via, None, args).await
}

/// `etcdctl` in replica `via`'s etcd container, against the members of `endpoints` instead of
/// the local one when given (a learner does not answer requests itself).
pub async fn etcdctl_at(
    engine: &Engine,
    via: &ReplicaId,
    endpoints: Option<&[ReplicaId]>,
    args: &[&str],
) -> Result<String> {
    let container = Component::Etcd.container_name(via);
    let cmd = etcdctl_command(endpoints, args);
    let out = engine.exec(&container, &cmd).await?;
    if out.exit_code != 0 {
        return Err(Error::ClusterCommand {
            command: format!("etcdctl {}", args.join(" ")),
            container,
            output: out.output.trim().to_string(),
        });
    }
    Ok(out.output)
}

/// The etcdctl command line, against `endpoints` when given: through `ETCDCTL_ENDPOINTS`, since
/// the etcd image sets that variable and etcdctl refuses a flag that shadows it.
fn etcdctl_command(endpoints: Option<&[ReplicaId]>, args: &[&str]) -> Vec<String> {
    let mut cmd: Vec<String> = Vec::new();
    if let Some(endpoints) = endpoints {
        cmd.push("env".into());
        cmd.push(format!("ETCDCTL_ENDPOINTS={}", etcd_client_urls(endpoints)));
    }
    cmd.push("etcdctl".into());
    cmd.push("--command-timeout=5s".into());
    cmd.extend(args.iter().map(|a| a.to_string()));
    cmd
}

/// The client URLs of the etcd members of `replicas`, comma-separated, as etcdctl takes them.
pub fn etcd_client_urls(replicas: &[ReplicaId]) -> String {
    replicas
        .iter()
        .map(|r| {
            format!(
                "https://{}:{}",
                Component::Etcd.container_name(r),
                dtr_core::component::ETCD_CLIENT_PORT
            )
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// `etcdctl` in a throw-away container of the etcd image on `dtr-ol`, with the etcd
/// certificate of replica `identity` (its dtr-ca volume, on this engine's node), against the
/// members of `endpoints`: how a replica whose etcd does not run yet (or a learner, which
/// answers no request) talks to the cluster.
pub async fn etcdctl_as(
    engine: &Engine,
    identity: &ReplicaId,
    endpoints: &[ReplicaId],
    args: &[&str],
) -> Result<String> {
    let name = format!("dtr-etcdctl-{identity}");
    let entrypoint = etcdctl_command(Some(endpoints), args);
    let spec = crate::plan::OneShotSpec {
        name: name.clone(),
        image: dtr_core::version::component_image(Component::Etcd),
        entrypoint: Some(entrypoint),
        command: Vec::new(),
        user: Some(format!("{0}:{0}", Component::Etcd.uid())),
        labels: labels::helper(identity, dtr_core::version::VERSION),
        network: crate::plan::OneShotNetwork::Named(crate::plan::OVERLAY_NETWORK.into()),
        mounts: vec![crate::plan::MountSpec {
            source: format!("dtr-ca-{identity}"),
            target: dtr_core::contract::CA_MOUNT.into(),
            read_only: true,
            bind: false,
        }],
        ports: Vec::new(),
    };
    let out = engine.run_once(&spec, None).await?;
    if out.exit_code != 0 {
        return Err(Error::ClusterCommand {
            command: format!("etcdctl {}", args.join(" ")),
            container: name,
            output: format!("{}{}", out.stdout, out.stderr).trim().to_string(),
        });
    }
    Ok(out.stdout)
}

/// Writes replica `rid`'s record (`contract::cluster::REPLICAS_PREFIX`) through its own etcd.
pub async fn record_replica(
    engine: &Engine,
    rid: &ReplicaId,
    record: &dtr_core::contract::cluster::ReplicaRecord,
) -> Result<()> {
    let key = format!("{}{rid}", dtr_core::contract::cluster::REPLICAS_PREFIX);
    let value = serde_json::to_string(record).expect("a record serializes");
    etcdctl(engine, rid, &["put", &key, &value])
        .await
        .map(|_| ())
}

/// `etcdctl member remove`, retried while etcd refuses changes right after another one; a
/// member that is already gone counts as removed.
pub async fn remove_etcd_member(engine: &Engine, via: &ReplicaId, id: &str) -> Result<()> {
    let started = std::time::Instant::now();
    loop {
        match etcdctl(engine, via, &["member", "remove", id]).await {
            Ok(_) => return Ok(()),
            Err(Error::ClusterCommand { output, .. }) if output.contains("member not found") => {
                return Ok(())
            }
            Err(_) if started.elapsed() < std::time::Duration::from_secs(20) => {
                tokio::time::sleep(std::time::Duration::from_millis(500)).await
            }
            Err(e) => return Err(e),
        }
    }
}

/// The members, as the etcd of `via` knows them.
pub async fn etcd_members(engine: &Engine, via: &ReplicaId) -> Result<Vec<EtcdMember>> {
    let raw = etcdctl(engine, via, &["member", "list", "-w", "json"]).await?;
    parse_members(&raw).ok_or_else(|| Error::ClusterCommand {
        command: "etcdctl member list".into(),
        container: Component::Etcd.container_name(via),
        output: format!("unreadable answer: {}", raw.trim()),
    })
}

fn parse_members(raw: &str) -> Option<Vec<EtcdMember>> {
    let doc: Value = serde_json::from_str(raw.trim()).ok()?;
    Some(
        doc["members"]
            .as_array()?
            .iter()
            .map(|m| EtcdMember {
                id: format!("{:x}", m["ID"].as_u64().unwrap_or(0)),
                name: m["name"].as_str().unwrap_or("").to_string(),
                peer_urls: m["peerURLs"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|u| u.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default(),
                learner: m["isLearner"].as_bool().unwrap_or(false),
                healthy: false,
            })
            .collect(),
    )
}

/// The members with their health: each one's `/health` asked from the etcd of `via`. Fails
/// only when `via` itself cannot list the members.
pub async fn etcd_view(engine: &Engine, via: &ReplicaId) -> Result<Vec<EtcdMember>> {
    let mut members = etcd_members(engine, via).await?;
    let raw = etcdctl(
        engine,
        via,
        &["endpoint", "health", "--cluster", "-w", "json"],
    )
    .await
    .or_else(|e| match e {
        // some members unhealthy: etcdctl exits 1 but still prints the JSON
        Error::ClusterCommand { output, .. } => Ok(output),
        other => Err(other),
    })?;
    let start = raw.find('[').unwrap_or(0);
    let health: Value =
        serde_json::from_str(raw[start..].lines().next().unwrap_or("[]")).unwrap_or(Value::Null);
    for m in &mut members {
        let host = m.replica().map(|r| Component::Etcd.container_name(&r));
        m.healthy = health.as_array().is_some_and(|a| {
            a.iter().any(|h| {
                h["health"].as_bool() == Some(true)
                    && host
                        .as_ref()
                        .is_some_and(|n| h["endpoint"].as_str().unwrap_or("").contains(n.as_str()))
            })
        });
    }
    Ok(members)
}

/// The etcd view from the first replica (of `order`) whose etcd answers.
pub async fn etcd_view_any(
    engine: &Engine,
    order: impl IntoIterator<Item = &ReplicaId>,
) -> Option<(ReplicaId, Vec<EtcdMember>)> {
    for r in order {
        if let Ok(m) = etcd_view(engine, r).await {
            return Some((r.clone(), m));
        }
    }
    None
}

/// Quorum arithmetic on voting members (learners do not vote).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Quorum {
    pub voting: usize,
    pub healthy: usize,
}

impl Quorum {
    pub fn of(members: &[EtcdMember]) -> Quorum {
        let voting: Vec<&EtcdMember> = members.iter().filter(|m| !m.learner).collect();
        Quorum {
            voting: voting.len(),
            healthy: voting.iter().filter(|m| m.healthy).count(),
        }
    }

    /// A majority of the voting members is healthy.
    pub fn holds(self) -> bool {
        self.voting > 0 && self.healthy * 2 > self.voting
    }

    /// How many members the cluster needs for a majority.
    pub fn needed(self) -> usize {
        self.voting / 2 + 1
    }

    /// The quorum left after removing `healthy` healthy and `unhealthy` unhealthy voters.
    pub fn without(self, healthy: usize, unhealthy: usize) -> Quorum {
        Quorum {
            voting: self.voting.saturating_sub(healthy + unhealthy),
            healthy: self.healthy.saturating_sub(healthy),
        }
    }
}

/// Patroni's keys in etcd (scope `dtr`, namespace `/dtr/patroni/`, docker/rethinkdb/entrypoint.sh).
pub const PATRONI_MEMBERS: &str = "/dtr/patroni/dtr/members/";
pub const PATRONI_LEADER: &str = "/dtr/patroni/dtr/leader";

/// One database member as Patroni reports it.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct DbMember {
    pub name: String,
    /// `leader`, `sync_standby` or `replica`.
    pub role: String,
    /// `running`, `streaming`, `starting`, ...
    pub state: String,
}

/// curl inside a DTR container: `url` over the cluster CA, no proxy, 3 s at most; `flags` says
/// whether an HTTP error fails it (`-fsS`) or its body is wanted anyway (`-sS`).
fn curl_in_cluster(flags: &str, url: &str) -> Vec<String> {
    [
        "curl",
        flags,
        "--noproxy",
        "*",
        "-m",
        "3",
        "--cacert",
        "/ca/ca.pem",
        url,
    ]
    .map(str::to_string)
    .to_vec()
}

/// Patroni's `/cluster`, asked inside `dtr-rethinkdb-<via>`.
pub async fn db_members(engine: &Engine, via: &ReplicaId) -> Result<Vec<DbMember>> {
    let container = Component::Rethinkdb.container_name(via);
    let cmd = curl_in_cluster("-fsS", "https://127.0.0.1:8008/cluster");
    let out = engine.exec(&container, &cmd).await?;
    let doc: Value =
        serde_json::from_str(out.output.trim()).map_err(|_| Error::ClusterCommand {
            command: "GET /cluster (Patroni)".into(),
            container: container.clone(),
            output: out.output.trim().to_string(),
        })?;
    Ok(doc["members"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|m| DbMember {
                    name: m["name"].as_str().unwrap_or("").to_string(),
                    role: m["role"].as_str().unwrap_or("").to_string(),
                    state: m["state"].as_str().unwrap_or("").to_string(),
                })
                .collect()
        })
        .unwrap_or_default())
}

/// `patronictl` inside `dtr-rethinkdb-<via>`.
pub async fn patronictl(engine: &Engine, via: &ReplicaId, args: &[&str]) -> Result<String> {
    let container = Component::Rethinkdb.container_name(via);
    let mut cmd: Vec<String> = vec![
        "patronictl".into(),
        "-c".into(),
        "/run/dtr/patroni.yml".into(),
    ];
    cmd.extend(args.iter().map(|a| a.to_string()));
    let out = engine.exec(&container, &cmd).await?;
    if out.exit_code != 0 {
        return Err(Error::ClusterCommand {
            command: format!("patronictl {}", args.join(" ")),
            container,
            output: out.output.trim().to_string(),
        });
    }
    Ok(out.output)
}

/// Waits until `member`'s database is the running primary, as it says itself; false after
/// `timeout`.
pub async fn wait_primary(engine: &Engine, member: &ReplicaId, timeout: Duration) -> bool {
    let started = Instant::now();
    while started.elapsed() < timeout {
        if let Ok(m) = db_members(engine, member).await {
            if m.iter()
                .any(|m| m.name == member.as_str() && m.role == "leader" && m.state == "running")
            {
                return true;
            }
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    false
}

/// `psql -c sql` on database `db` inside `dtr-rethinkdb-<via>` (peer authentication as the
/// container's postgres user): unaligned rows, fields separated by a space.
pub async fn psql(engine: &Engine, via: &ReplicaId, db: &str, sql: &str) -> Result<String> {
    let container = Component::Rethinkdb.container_name(via);
    let cmd: Vec<String> = ["psql", "-XqAt", "-F", " ", "--dbname", db, "-c", sql]
        .map(str::to_string)
        .to_vec();
    let result = engine.exec(&container, &cmd).await?;
    if result.exit_code != 0 {
        return Err(Error::ClusterCommand {
            command: format!("psql -c \"{sql}\""),
            container,
            output: result.output.trim().to_string(),
        });
    }
    Ok(result.output)
}

/// The whole picture `dtr status` prints and the operations check.
#[derive(Debug, Serialize)]
pub struct ClusterView {
    pub replicas: BTreeMap<ReplicaId, ReplicaView>,
    /// `None` when no etcd answered.
    pub etcd: Option<Vec<EtcdMember>>,
    pub db: Option<Vec<DbMember>>,
}

/// `dtr status`: the cluster as the target's engine shows it.
pub async fn status(target: &crate::engine::Target) -> Result<ClusterView> {
    ClusterView::read(&Engine::connect(target).await?).await
}

impl ClusterView {
    /// The replicas whose containers are on other nodes, as `<id> (node <node>)`.
    pub fn elsewhere(&self) -> Vec<String> {
        self.replicas
            .values()
            .filter(|r| !r.here())
            .map(|r| format!("{} (node {})", r.id, r.node.as_deref().unwrap_or("?")))
            .collect()
    }

    pub async fn read(engine: &Engine) -> Result<ClusterView> {
        let mut replicas = replicas(engine).await?;
        let order: Vec<ReplicaId> = healthy_first(&replicas).into_iter().cloned().collect();
        let found = etcd_view_any(engine, order.iter()).await;
        let mut db = None;
        for r in &order {
            if replicas[r].running(Component::Rethinkdb) {
                if let Ok(m) = db_members(engine, r).await {
                    db = Some(m);
                    break;
                }
            }
        }
        let etcd = match found {
            Some((via, members)) => {
                add_elsewhere(engine, &via, &members, db.as_deref(), &mut replicas).await;
                Some(members)
            }
            None => None,
        };
        // a replica installed before records existed: this engine's own node
        if !engine.via_mke() {
            if let Ok(info) = engine.describe().await {
                for v in replicas
                    .values_mut()
                    .filter(|v| v.here() && v.node.is_none())
                {
                    v.node = Some(info.name.clone());
                }
            }
        }
        Ok(ClusterView { replicas, etcd, db })
    }

    pub fn quorum(&self) -> Option<Quorum> {
        self.etcd.as_deref().map(Quorum::of)
    }

    /// What keeps the cluster from taking a change: a lost etcd quorum, no database primary
    /// and, with `per_replica`, each replica's own problems. Empty when it is healthy.
    pub fn problems(&self, per_replica: bool) -> Vec<String> {
        let mut problems = Vec::new();
        match self.quorum() {
            Some(q) if q.holds() => {}
            Some(q) => problems.push(format!(
                "etcd has {} healthy voting member(s) of {}: the quorum is lost",
                q.healthy, q.voting
            )),
            None => problems.push("no etcd member answers".into()),
        }
        if self.db_leader().is_none() {
            problems.push("the metadata database has no primary".into());
        }
        if per_replica {
            for r in self.replicas.values() {
                problems.extend(
                    r.problems()
                        .into_iter()
                        .map(|p| format!("replica {}: {p}", r.id)),
                );
            }
        }
        problems
    }

    pub fn etcd_role(&self, r: &ReplicaId) -> &'static str {
        match self
            .etcd
            .as_ref()
            .and_then(|m| m.iter().find(|m| m.replica().as_ref() == Some(r)))
        {
            None if self.etcd.is_none() => "unknown",
            None => "not a member",
            Some(m) if m.learner => "learner",
            Some(m) if m.healthy => "member",
            Some(_) => "member (unreachable)",
        }
    }

    pub fn db_role(&self, r: &ReplicaId) -> String {
        match self
            .db
            .as_ref()
            .and_then(|m| m.iter().find(|m| m.name == r.as_str()))
        {
            Some(m) => format!("{} ({})", m.role, m.state),
            None if self.db.is_none() => "unknown".into(),
            None => "not a member".into(),
        }
    }

    pub fn db_leader(&self) -> Option<String> {
        self.db
            .as_ref()?
            .iter()
            .find(|m| m.role == "leader")
            .map(|m| m.name.clone())
    }
}

/// The replicas of the cluster whose containers are not on this engine (the etcd members and
/// records that no local container belongs to), as the cluster shows them; and the node of
/// each replica from its record. Retired replicas (emergency repair) are left out.
async fn add_elsewhere(
    engine: &Engine,
    via: &ReplicaId,
    members: &[EtcdMember],
    db: Option<&[DbMember]>,
    replicas: &mut BTreeMap<ReplicaId, ReplicaView>,
) {
    use dtr_core::contract::cluster::{ReplicaRecord, REPLICAS_PREFIX, RETIRED_PREFIX};
    let records: BTreeMap<ReplicaId, ReplicaRecord> = etcd_get_prefix(engine, via, REPLICAS_PREFIX)
        .await
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(k, v)| {
            let r = ReplicaId::parse(k.strip_prefix(REPLICAS_PREFIX)?).ok()?;
            Some((r, serde_json::from_slice(&v).ok()?))
        })
        .collect();
    let retired: Vec<ReplicaId> = etcd_get_prefix(engine, via, RETIRED_PREFIX)
        .await
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(k, _)| ReplicaId::parse(k.strip_prefix(RETIRED_PREFIX)?).ok())
        .collect();
    for (r, view) in replicas.iter_mut() {
        view.node = records.get(r).map(|rec| rec.node.clone());
    }
    let mut others: Vec<ReplicaId> = members.iter().filter_map(|m| m.replica()).collect();
    others.extend(records.keys().cloned());
    others.sort();
    others.dedup();
    for r in others {
        if replicas.contains_key(&r) || retired.contains(&r) {
            continue;
        }
        let record = records.get(&r);
        let member = members.iter().find(|m| m.replica().as_ref() == Some(&r));
        let mut problems = Vec::new();
        match member {
            None => problems.push("it is not an etcd member".to_string()),
            Some(m) if !m.healthy => problems.push("its etcd member does not answer".into()),
            Some(_) => {}
        }
        let (version, ping) = match ping_over_overlay(engine, via, &r).await {
            Some((true, v)) => (v, None),
            Some((false, v)) => (v, Some("its api reports it unhealthy (/_ping)".to_string())),
            None => (
                String::new(),
                Some("its api does not answer over dtr-ol".to_string()),
            ),
        };
        problems.extend(ping);
        match db.and_then(|d| d.iter().find(|m| m.name == r.as_str())) {
            None if db.is_some() => problems.push("it is not a database member".into()),
            Some(m) if m.state != "running" && m.state != "streaming" => {
                problems.push(format!("its database member is {}", m.state))
            }
            _ => {}
        }
        replicas.insert(
            r.clone(),
            ReplicaView {
                id: r.clone(),
                version,
                containers: BTreeMap::new(),
                https_port: record.map(|rec| rec.https_port),
                http_port: record.map(|rec| rec.http_port),
                node: record.map(|rec| rec.node.clone()),
                elsewhere: Some(problems),
            },
        );
    }
}

/// The `/_ping` of replica `r`'s api, asked from replica `via`'s nginx over `dtr-ol`: whether it
/// is healthy, and its version.
async fn ping_over_overlay(
    engine: &Engine,
    via: &ReplicaId,
    r: &ReplicaId,
) -> Option<(bool, String)> {
    let url = format!(
        "https://{}:{}/_ping",
        Component::Api.container_name(r),
        dtr_core::component::API_PORT
    );
    let cmd = curl_in_cluster("-sS", &url);
    let out = engine
        .exec(&Component::Nginx.container_name(via), &cmd)
        .await
        .ok()?;
    let doc: Value = serde_json::from_str(out.output.trim()).ok()?;
    Some((
        doc["Healthy"].as_bool().unwrap_or(false),
        doc["Version"].as_str().unwrap_or_default().to_string(),
    ))
}

/// Every key under `prefix` and its value, through the etcd of `via`.
pub async fn etcd_get_prefix(
    engine: &Engine,
    via: &ReplicaId,
    prefix: &str,
) -> Result<Vec<(String, Vec<u8>)>> {
    let raw = etcdctl(engine, via, &["get", "--prefix", prefix, "-w", "json"]).await?;
    let doc: Value = serde_json::from_str(raw.trim()).map_err(|_| Error::ClusterCommand {
        command: format!("etcdctl get --prefix {prefix}"),
        container: Component::Etcd.container_name(via),
        output: format!("unreadable answer: {}", raw.trim()),
    })?;
    let b64 = |v: &Value| {
        data_encoding::BASE64
            .decode(v.as_str().unwrap_or_default().as_bytes())
            .unwrap_or_default()
    };
    Ok(doc["kvs"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|kv| {
            (
                String::from_utf8_lossy(&b64(&kv["key"])).to_string(),
                b64(&kv["value"]),
            )
        })
        .collect())
}

/// What the CLI hands in to ask which replica to operate through: `choose(ids, default index)`.
pub type Chooser<'a> = &'a dyn Fn(&[String], usize) -> Result<ReplicaId>;

/// The replica an operation works through: `given`, or one `choose`n among the replicas that
/// pass `candidate`, the first that passes `preferred` preselected. It must be on this engine.
pub fn pick_replica(
    replicas: &BTreeMap<ReplicaId, ReplicaView>,
    given: Option<ReplicaId>,
    candidate: impl Fn(&ReplicaView) -> bool,
    preferred: impl Fn(&ReplicaView) -> bool,
    choose: Chooser<'_>,
) -> Result<ReplicaId> {
    let not_found = |replica: String| Error::ReplicaNotFound {
        replica,
        existing: replicas.keys().map(|r| r.to_string()).collect(),
    };
    let picked = match given {
        Some(r) => r,
        None => {
            let views: Vec<&ReplicaView> = replicas.values().filter(|v| candidate(v)).collect();
            if views.is_empty() {
                return Err(not_found("(any)".into()));
            }
            let ids: Vec<String> = views.iter().map(|v| v.id.to_string()).collect();
            let default = views.iter().position(|v| preferred(v)).unwrap_or(0);
            choose(&ids, default)?
        }
    };
    if !replicas.contains_key(&picked) {
        return Err(not_found(picked.to_string()));
    }
    Ok(picked)
}

/// Replica ids, the healthy ones first.
pub fn healthy_first(replicas: &BTreeMap<ReplicaId, ReplicaView>) -> Vec<&ReplicaId> {
    let mut ids: Vec<&ReplicaId> = replicas.keys().collect();
    ids.sort_by_key(|r| !replicas[*r].healthy());
    ids
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(name: &str, learner: bool, healthy: bool) -> EtcdMember {
        EtcdMember {
            id: "1".into(),
            name: name.into(),
            peer_urls: vec![],
            learner,
            healthy,
        }
    }

    #[test]
    fn quorum_is_a_majority_of_voters() {
        let three = [
            member("a", false, true),
            member("b", false, true),
            member("c", false, false),
        ];
        let q = Quorum::of(&three);
        assert!(q.holds());
        assert_eq!(q.needed(), 2);
        // removing a healthy member of 3 with one down leaves 1 of 2: no quorum
        assert!(!q.without(1, 0).holds());
        // removing the dead one leaves 2 of 2
        assert!(q.without(0, 1).holds());
        let lost = [
            member("a", false, true),
            member("b", false, false),
            member("c", false, false),
        ];
        assert!(!Quorum::of(&lost).holds());
        // a learner does not vote
        let with_learner = [member("a", false, true), member("b", true, false)];
        assert!(Quorum::of(&with_learner).holds());
        assert!(!Quorum::of(&[]).holds());
    }

    #[test]
    fn members_parse_from_etcdctl_json() {
        let raw = r#"{"header":{"cluster_id":1},"members":[{"ID":12345,"name":"0123456789ab","peerURLs":["https://dtr-etcd-0123456789ab:2380"],"clientURLs":[]},{"ID":255,"peerURLs":["https://dtr-etcd-ba9876543210:2380"],"isLearner":true}]}"#;
        let m = parse_members(raw).unwrap();
        assert_eq!(m[0].id, "3039");
        assert_eq!(m[0].replica().unwrap().as_str(), "0123456789ab");
        assert!(m[1].learner);
        assert_eq!(m[1].name, "");
        assert_eq!(m[1].replica().unwrap().as_str(), "ba9876543210");
    }
}
