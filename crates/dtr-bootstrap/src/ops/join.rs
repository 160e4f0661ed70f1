//! `dtr join`: add a replica to a running cluster, from the engine of the new replica's own
//! node (or MKE). That engine sees none of the other nodes' containers, so the cluster is read
//! and entered the way the swarm allows: the cluster's seed (`ops::seed`, a swarm secret) goes
//! to the join agent, a one-task service on the new node that reads the cluster over `dtr-ol`
//! (health, quorum, version, settings, where each replica runs) and copies the shared files
//! into the new replica's dtr-ca volume. Then, with the certificates phase 2 issues from those
//! files: the new etcd member as a learner that is promoted once it has caught up, and the
//! other components, the database member cloning itself from the primary. A failure or Ctrl-C
//! removes the member again and everything this run created.

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use dtr_core::component::Component;
use dtr_core::contract::cluster::{JoinCheck, ReplicaRecord, ReplicaState};
use dtr_core::contract::phase2::Phase2Secrets;
use dtr_core::options::{NfsStorage, ReplicaId, Storage};
use dtr_core::version;

use crate::engine::apply::{Apply, Undo};
use crate::engine::{Engine, Target};
use crate::error::{Error, Result};
use crate::ops::cluster::{self, EtcdMember, Quorum};
use crate::ops::preflight::PreflightRequest;
use crate::ops::seed::{self, Seed};
use crate::ops::steps;
use crate::plan::{
    self, labels, InstallPlan, OneShotNetwork, OneShotSpec, ReplicaSettings, TargetFacts,
    OVERLAY_NETWORK,
};
use crate::report::Reporter;

pub struct JoinOptions {
    pub existing: Option<ReplicaId>,
    pub replica_id: ReplicaId,
    pub node: Option<String>,
    pub http_port: u16,
    pub https_port: u16,
    pub db_cache_mb: Option<u32>,
    pub skip_network_test: bool,
    /// `--nfs-storage-url` and its options, restated: refused unless the cluster's.
    pub nfs: Option<NfsStorage>,
    pub unsafe_join: bool,
    /// `--ignore-preflight-errors`.
    pub ignore_checks: Vec<&'static str>,
}

pub struct JoinReport {
    pub plan: InstallPlan,
    pub existing: ReplicaId,
    pub replicas_after: usize,
}

pub use cluster::Chooser;

const PROMOTE_TIMEOUT: Duration = Duration::from_secs(60);
const SYNC_TIMEOUT: Duration = Duration::from_secs(120);

pub async fn join(
    target: &Target,
    opts: JoinOptions,
    choose: Chooser<'_>,
    reporter: &Reporter,
) -> Result<JoinReport> {
    let engine = steps::connect(target, reporter).await?;
    let (engine, facts) = steps::preflight(&engine, &opts.preflight_request(), reporter).await?;
    let holder = hold_overlay(&engine, &opts.replica_id, reporter).await;
    let joined = join_held(&engine, &facts, &opts, choose, reporter).await;
    if let Some(holder) = holder {
        if let Err(e) = engine.remove_container(&holder).await {
            reporter.warn(format!("{e}: remove container {holder} by hand"));
        }
    }
    joined
}

/// Everything of a join after the preflight checks, while [`hold_overlay`]'s container keeps
/// the node attached to dtr-ol.
async fn join_held(
    engine: &Engine,
    facts: &TargetFacts,
    opts: &JoinOptions,
    choose: Chooser<'_>,
    reporter: &Reporter,
) -> Result<JoinReport> {
    let cluster = read_cluster(engine, opts, facts, choose, reporter).await?;
    overlay_test(engine, opts, &cluster.existing, reporter).await?;
    let settings = replica_settings(&cluster, opts)?;
    let plan = plan::join_plan(&settings, facts);
    steps::log_plan(reporter, &plan);
    reporter.info(format!(
        "joining replica {} to the cluster of {} on node {}",
        plan.replica_id, cluster.existing, plan.node
    ));

    let apply = Apply::new(engine, reporter);
    apply
        .run(
            "join",
            steps::naming_storage(&settings.storage, &plan.replica_id, async {
                steps::networks(&apply, &plan).await?;
                steps::volumes(&apply, &plan).await?;
                stage_seed(&apply, &cluster, &plan).await?;
                steps::certificates_and_containers(
                    &apply,
                    &plan,
                    &Phase2Secrets::default(),
                    "phase 2, signed by the cluster CA",
                )
                .await?;
                clear_learners(engine, &cluster, &plan.replica_id, reporter).await?;
                let member = add_learner(&apply, &cluster, &plan.replica_id).await?;
                start_and_promote(engine, &plan, &cluster, &member, reporter).await?;
                apply.start_in_order(&plan.containers).await?;
                wait_for_database_sync(engine, &plan.replica_id, reporter).await?;
                record_replica(engine, &plan).await?;
                steps::verify(engine, &plan, reporter).await
            }),
        )
        .await?;
    let after = cluster.voting_after;
    if after % 2 == 0 {
        reporter.warn(format!(
            "the cluster now has {after} replicas: an even number tolerates no more failures than {} replicas; it is recommended that you have 3, 5 or 7 replicas",
            after - 1
        ));
    }
    Ok(JoinReport {
        plan,
        existing: cluster.existing,
        replicas_after: after,
    })
}

impl JoinOptions {
    fn preflight_request(&self) -> PreflightRequest {
        PreflightRequest {
            replica_id: self.replica_id.clone(),
            node: self.node.clone(),
            http_port: self.http_port,
            https_port: self.https_port,
            joining: true,
            ignore: self.ignore_checks.clone(),
        }
    }
}

/// The cluster a replica joins, as the join agent read it before anything is made.
struct Cluster {
    /// The replica the join goes through.
    existing: ReplicaId,
    seed: Seed,
    check: JoinCheck,
    /// The new replica goes on another node than the existing one.
    other_node: bool,
    /// Voting etcd members once the new one is promoted.
    voting_after: usize,
}

impl Cluster {
    /// Every replica that is an etcd member, the one the join goes through first.
    fn members(&self) -> Vec<ReplicaId> {
        let mut out = vec![self.existing.clone()];
        out.extend(
            self.check
                .replicas
                .iter()
                .filter(|(r, s)| s.etcd_member.is_some() && **r != self.existing)
                .map(|(r, _)| r.clone()),
        );
        out
    }
}

/// Reads the cluster through the join agent and refuses a join it cannot take safely: another
/// version, an unhealthy replica, no quorum or no database primary (unless `--unsafe-join`),
/// or a node-local image storage on another node. What an interrupted join of the same id
/// left on this engine is removed first.
async fn read_cluster(
    engine: &Engine,
    opts: &JoinOptions,
    facts: &TargetFacts,
    choose: Chooser<'_>,
    reporter: &Reporter,
) -> Result<Cluster> {
    let step = reporter.step("read the cluster");
    let local = cluster::replicas(engine).await?;
    let (seed, check) = find_cluster(engine, opts, facts, &local, reporter).await?;
    let existing = pick_existing(&check, opts.existing.clone(), choose)?;
    let state = &check.replicas[&existing];
    refuse_other_version(state.ping.as_ref().map(|(_, v)| v.as_str()))?;
    if let Some(new) = check.replicas.get(&opts.replica_id) {
        if new.healthy() {
            step.fail("the replica id is taken");
            return Err(Error::Refused {
                operation: "join",
                reasons: vec![format!(
                    "replica {} is already a healthy member of the cluster",
                    opts.replica_id
                )],
                hint: format!(
                    "choose another --replica-id, or remove it first with `dtr remove --replica-ids {}`",
                    opts.replica_id
                ),
            });
        }
    }
    let problems = health_problems(&check, &existing);
    if !problems.is_empty() {
        if opts.unsafe_join {
            for p in &problems {
                reporter.warn(format!("{p} (continuing because of --unsafe-join)"));
            }
        } else {
            step.fail("the cluster is not healthy");
            return Err(Error::Refused {
                operation: "join",
                reasons: problems,
                hint: "repair or `dtr remove` the unhealthy replicas first (joining while a replica is down can cost the quorum); \
                       --unsafe-join joins anyway, at the risk of split brain and data loss"
                    .into(),
            });
        }
    }
    let other_node = match &state.record {
        Some(r) => r.node != facts.node,
        None => !local.contains_key(&existing),
    };
    refuse_node_local_storage(&check, &existing, other_node, facts)?;
    if local.contains_key(&opts.replica_id) {
        reporter.warn(format!(
            "replica {} has containers from an interrupted join: removing them first",
            opts.replica_id
        ));
        crate::ops::destroy::destroy(engine, &opts.replica_id, reporter).await?;
    }
    let voting_after = check
        .replicas
        .iter()
        .filter(|(r, s)| s.etcd_learner == Some(false) && **r != opts.replica_id)
        .count()
        + 1;
    step.done(format!(
        "{} replicas, joining through {existing}{}",
        check
            .replicas
            .values()
            .filter(|s| s.etcd_member.is_some())
            .count(),
        match &state.record {
            Some(r) if other_node => format!(" (on node {})", r.node),
            _ => String::new(),
        }
    ));
    Ok(Cluster {
        existing,
        seed,
        check,
        other_node,
        voting_after,
    })
}

/// The cluster's seed and what the agent read with it. A replica of the cluster on this
/// engine (the one named, or any when no seed is published) publishes the seed first — a
/// cluster installed before seeds existed, or whose seed was removed, gets one so. With
/// several clusters' seeds on the swarm, the one whose CA the named replica's etcd accepts.
async fn find_cluster(
    engine: &Engine,
    opts: &JoinOptions,
    facts: &TargetFacts,
    local: &std::collections::BTreeMap<ReplicaId, cluster::ReplicaView>,
    reporter: &Reporter,
) -> Result<(Seed, JoinCheck)> {
    let mut seeds = seed::published(engine).await?;
    let publisher = match &opts.existing {
        Some(r) if local.contains_key(r) => Some(r.clone()),
        None if seeds.is_empty() => cluster::healthy_first(local)
            .into_iter()
            .find(|r| **r != opts.replica_id)
            .cloned(),
        _ => None,
    };
    if let Some(r) = publisher {
        if let Some(s) = seed::publish(engine, &r, reporter).await? {
            seeds.retain(|o| o.cluster != s.cluster);
            seeds.insert(0, s);
        }
    }
    if seeds.is_empty() {
        return Err(Error::Refused {
            operation: "join",
            reasons: vec!["no DTR cluster's seed is published on this swarm".into()],
            hint: "install the first replica with `dtr install`; a cluster installed through an engine that is not a swarm manager publishes its seed with `dtr reconfigure` run against a manager's engine".into(),
        });
    }
    let mut failures = Vec::new();
    for s in &seeds {
        let check = seed::check(
            engine,
            s,
            &opts.replica_id,
            &facts.node,
            opts.existing.as_ref(),
        )
        .await?;
        match &check.failure {
            None => return Ok((s.clone(), check)),
            Some(f) => failures.push(format!(
                "cluster {} through replica {}: {f}",
                s.cluster, check.via
            )),
        }
    }
    Err(Error::Refused {
        operation: "join",
        reasons: failures,
        hint: format!(
            "check --existing-replica-id, that the replica's etcd runs, and that {OVERLAY_NETWORK} reaches it from node {}",
            facts.node
        ),
    })
}

/// A replica joins with the cluster's own version only (`dtr upgrade` moves versions).
fn refuse_other_version(cluster_version: Option<&str>) -> Result<()> {
    use dtr_core::version_rules::{decide_str, Verdict};
    let Some(cluster_version) = cluster_version.filter(|v| !v.is_empty()) else {
        // an api that does not answer is a health problem, reported as such
        return Ok(());
    };
    let hint = match decide_str(cluster_version, version::VERSION) {
        Verdict::Same => return Ok(()),
        Verdict::Allowed(_) => format!(
            "join with the cluster's own version (registry/dtr:{cluster_version}), or first upgrade the cluster to {} with `dtr upgrade`",
            version::VERSION
        ),
        Verdict::Refused { .. } => format!(
            "join with the cluster's own version (registry/dtr:{cluster_version}); this bootstrapper cannot upgrade the cluster to {}",
            version::VERSION
        ),
    };
    Err(Error::Refused {
        operation: "join",
        reasons: vec![format!(
            "the cluster runs dtr {cluster_version}, this bootstrapper is dtr {}",
            version::VERSION
        )],
        hint,
    })
}

/// Replicas on different nodes must share the image storage: refused, before anything is
/// made, when the cluster keeps its images on a volume of the existing replica's node.
fn refuse_node_local_storage(
    check: &JoinCheck,
    existing: &ReplicaId,
    other_node: bool,
    facts: &TargetFacts,
) -> Result<()> {
    if !other_node || !check.storage_on_volume || check.settings.shared_between_nodes() {
        return Ok(());
    }
    let there = check.replicas[existing]
        .record
        .as_ref()
        .map(|r| format!("node {}", r.node))
        .unwrap_or_else(|| "another node".into());
    Err(Error::Refused {
        operation: "join",
        reasons: vec![format!(
            "the cluster keeps its images on {} of {there}, and replica {} would run on node {}: it could not serve them",
            check.settings.storage,
            existing,
            facts.node
        )],
        hint: "give the cluster a storage every node reaches first: an object store (S3, Swift: PUT /api/v0/admin/settings/registry/simple, docs/operations/storage.md) or NFS (`dtr reconfigure --nfs-storage-url nfs://host/path`); or join on the same node".into(),
    })
}

/// The overlay network test, unless `--skip-network-test`.
async fn overlay_test(
    engine: &Engine,
    opts: &JoinOptions,
    existing: &ReplicaId,
    reporter: &Reporter,
) -> Result<()> {
    if opts.skip_network_test {
        reporter.warn("skipping the overlay network test (--skip-network-test)");
        return Ok(());
    }
    let step = reporter.step("overlay network test");
    network_test(engine, &opts.replica_id, existing).await?;
    step.done(format!("{OVERLAY_NETWORK} reaches replica {existing}"));
    Ok(())
}

/// The join agent copies the cluster's shared files into the new replica's dtr-ca volume.
async fn stage_seed(apply: &Apply<'_>, cluster: &Cluster, plan: &InstallPlan) -> Result<()> {
    let step = apply.reporter.step("the cluster's shared files");
    seed::stage(apply.engine, &cluster.seed, &plan.replica_id, &plan.node).await?;
    step.done(format!("from the seed of cluster {}", cluster.seed.cluster));
    Ok(())
}

/// Takes a new etcd member out again when the join is rolled back, with the new replica's
/// own etcd certificate (its dtr-ca volume is still there: the undo runs first).
struct LeaveEtcd {
    identity: ReplicaId,
    endpoints: Vec<ReplicaId>,
    member: String,
}

impl Undo for LeaveEtcd {
    fn describe(&self) -> String {
        format!("etcd member {}", self.member)
    }

    fn undo<'a>(
        &'a self,
        engine: &'a Engine,
    ) -> Pin<Box<dyn Future<Output = Result<()>> + Send + 'a>> {
        Box::pin(remove_member_as(
            engine,
            &self.identity,
            &self.endpoints,
            &self.member,
        ))
    }
}

/// `etcdctl member remove`, retried while etcd refuses changes right after another one; a
/// member that is already gone counts as removed.
async fn remove_member_as(
    engine: &Engine,
    identity: &ReplicaId,
    endpoints: &[ReplicaId],
    member: &str,
) -> Result<()> {
    let started = Instant::now();
    loop {
        match cluster::etcdctl_as(engine, identity, endpoints, &["member", "remove", member]).await
        {
            Ok(_) => return Ok(()),
            Err(Error::ClusterCommand { output, .. }) if output.contains("member not found") => {
                return Ok(())
            }
            Err(_) if started.elapsed() < Duration::from_secs(20) => {
                tokio::time::sleep(Duration::from_millis(500)).await
            }
            Err(e) => return Err(e),
        }
    }
}

/// What an interrupted join left in etcd: a learner of the id being joined, or of another id
/// that was never promoted and does not serve (learners do not vote), is removed.
async fn clear_learners(
    engine: &Engine,
    cluster: &Cluster,
    new_id: &ReplicaId,
    reporter: &Reporter,
) -> Result<()> {
    let members = cluster.members();
    for (rid, state) in &cluster.check.replicas {
        let Some(member) = &state.etcd_member else {
            continue;
        };
        let stale_learner = state.etcd_learner == Some(true) && !state.healthy();
        if rid != new_id && !stale_learner {
            continue;
        }
        reporter.warn(format!(
            "removing etcd member {member} of replica {rid} left by an interrupted join"
        ));
        let endpoints: Vec<ReplicaId> = members.iter().filter(|r| *r != rid).cloned().collect();
        remove_member_as(engine, new_id, &endpoints, member).await?;
    }
    Ok(())
}

/// Adds the new replica's etcd member as a learner (it does not vote until promoted) and
/// registers its removal with the rollback. Returns the member id.
async fn add_learner(apply: &Apply<'_>, cluster: &Cluster, rid: &ReplicaId) -> Result<String> {
    let (engine, reporter) = (apply.engine, apply.reporter);
    let step = reporter.step(format!("add etcd member {rid} as a learner"));
    let peer = dtr_core::component::etcd_peer_url(rid);
    let endpoints: Vec<ReplicaId> = cluster.members().into_iter().filter(|r| r != rid).collect();
    let started = Instant::now();
    let out = loop {
        match cluster::etcdctl_as(
            engine,
            rid,
            &endpoints,
            &[
                "member",
                "add",
                rid.as_str(),
                "--learner",
                &format!("--peer-urls={peer}"),
            ],
        )
        .await
        {
            Ok(out) => break out,
            // etcd refuses membership changes for a few seconds after the previous one
            Err(e) if started.elapsed() < Duration::from_secs(30) => {
                reporter.debug(format!("member add: {}", e.summary()));
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => return Err(e),
        }
    };
    let id = parse_added_id(&out).ok_or_else(|| Error::ClusterCommand {
        command: format!("etcdctl member add {rid} --learner"),
        container: format!("dtr-etcdctl-{rid}"),
        output: format!("etcd did not report the id of member {rid}: {}", out.trim()),
    })?;
    apply.undo_with(LeaveEtcd {
        identity: rid.clone(),
        endpoints,
        member: id.clone(),
    });
    step.done(format!("member id {id}"));
    Ok(id)
}

/// `etcdctl` in the new replica's etcd container, against the cluster's other members (a
/// learner does not answer requests itself).
async fn etcdctl_in_new(
    engine: &Engine,
    rid: &ReplicaId,
    endpoints: &[ReplicaId],
    args: &[&str],
) -> Result<String> {
    cluster::etcdctl_at(engine, rid, Some(endpoints), args).await
}

/// Starts the new etcd and promotes it to a voting member once it has caught up.
async fn start_and_promote(
    engine: &Engine,
    plan: &InstallPlan,
    cluster: &Cluster,
    member: &str,
    reporter: &Reporter,
) -> Result<()> {
    let etcd = plan
        .containers
        .iter()
        .find(|c| c.component == Component::Etcd)
        .expect("the plan has an etcd");
    let step = reporter.step(format!("start {} and promote it", etcd.name));
    engine.start(&etcd.name).await?;
    let others: Vec<ReplicaId> = cluster
        .members()
        .into_iter()
        .filter(|r| *r != plan.replica_id)
        .collect();
    let started = Instant::now();
    loop {
        match etcdctl_in_new(
            engine,
            &plan.replica_id,
            &others,
            &["member", "promote", member],
        )
        .await
        {
            Ok(_) => break,
            // "can only promote a learner member which is in sync with leader"
            Err(e) if started.elapsed() < PROMOTE_TIMEOUT => {
                reporter.debug(format!("member promote: {}", e.summary()));
                if let Some((state, code)) = engine.state(&etcd.name).await? {
                    if state == "exited" || state == "dead" {
                        return Err(Error::ContainerStopped {
                            container: etcd.name.clone(),
                            state,
                            exit_code: code,
                            logs: engine.logs(&etcd.name, 15).await,
                        });
                    }
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            Err(e) => return Err(e),
        }
    }
    step.done(format!(
        "voting member after {:.1}s",
        started.elapsed().as_secs_f64()
    ));
    Ok(())
}

/// Waits until the new database member streams from the primary (Patroni's view, asked in
/// the new member's own container).
async fn wait_for_database_sync(
    engine: &Engine,
    rid: &ReplicaId,
    reporter: &Reporter,
) -> Result<()> {
    let step = reporter.step("wait for the database member to stream from the primary");
    let started = Instant::now();
    loop {
        let members = cluster::db_members(engine, rid).await.unwrap_or_default();
        if members.iter().any(|m| {
            m.name == rid.as_str()
                && (m.state == "streaming" || m.state == "running")
                && m.role != "leader"
        }) {
            break;
        }
        if started.elapsed() > SYNC_TIMEOUT {
            return Err(Error::Unhealthy {
                container: Component::Rethinkdb.container_name(rid),
                waited: SYNC_TIMEOUT,
                last_output: format!("database members: {members:?}"),
                logs: engine
                    .logs(&Component::Rethinkdb.container_name(rid), 15)
                    .await,
            });
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    step.done("in sync");
    Ok(())
}

/// The new replica's record in etcd (its node and ports), written through its own member.
async fn record_replica(engine: &Engine, plan: &InstallPlan) -> Result<()> {
    cluster::record_replica(engine, &plan.replica_id, &replica_record(plan)).await
}

pub fn replica_record(plan: &InstallPlan) -> ReplicaRecord {
    ReplicaRecord {
        node: plan.node.clone(),
        https_port: plan.https_port,
        http_port: plan.http_port,
    }
}

/// The replica the join goes through: the one named, or one chosen among the cluster's
/// voting members, a healthy one preselected.
fn pick_existing(
    check: &JoinCheck,
    given: Option<ReplicaId>,
    choose: Chooser<'_>,
) -> Result<ReplicaId> {
    let voting: Vec<(&ReplicaId, &ReplicaState)> = check
        .replicas
        .iter()
        .filter(|(_, s)| s.etcd_learner == Some(false) && !s.retired)
        .collect();
    let not_found = |replica: String| Error::ReplicaNotFound {
        replica,
        existing: voting.iter().map(|(r, _)| r.to_string()).collect(),
    };
    let picked = match given {
        Some(r) => r,
        None => {
            if voting.is_empty() {
                return Err(not_found("(any)".into()));
            }
            let ids: Vec<String> = voting.iter().map(|(r, _)| r.to_string()).collect();
            let default = voting.iter().position(|(_, s)| s.healthy()).unwrap_or(0);
            choose(&ids, default)?
        }
    };
    if !voting.iter().any(|(r, _)| **r == picked) {
        return Err(not_found(picked.to_string()));
    }
    Ok(picked)
}

/// What keeps the cluster from taking a new member safely.
fn health_problems(check: &JoinCheck, existing: &ReplicaId) -> Vec<String> {
    let mut problems = Vec::new();
    let members: Vec<EtcdMember> = check
        .replicas
        .iter()
        .filter_map(|(r, s)| {
            Some(EtcdMember {
                id: s.etcd_member.clone()?,
                name: r.to_string(),
                peer_urls: Vec::new(),
                learner: s.etcd_learner == Some(true),
                healthy: s.etcd_healthy,
            })
        })
        .collect();
    let q = Quorum::of(&members);
    if !q.holds() {
        problems.push(format!(
            "etcd has no quorum: {} of {} voting members are healthy, {} needed",
            q.healthy,
            q.voting,
            q.needed()
        ));
    }
    // the existing replica first
    let mut order: Vec<&ReplicaId> = vec![existing];
    order.extend(check.replicas.keys().filter(|r| *r != existing));
    for rid in order {
        let s = &check.replicas[rid];
        // learners (an interrupted join) and retired replicas do not vote: cleared, not blocking
        if s.etcd_learner != Some(false) || s.retired {
            continue;
        }
        problems.extend(
            replica_problems(s)
                .into_iter()
                .map(|p| format!("replica {rid}: {p}")),
        );
    }
    if !check
        .replicas
        .values()
        .any(|s| s.db.as_ref().is_some_and(|(role, _)| role == "leader"))
    {
        problems.push("the metadata database has no primary".into());
    }
    problems
}

/// What the join agent saw wrong with one replica.
pub fn replica_problems(s: &ReplicaState) -> Vec<String> {
    let mut p = Vec::new();
    if !s.etcd_healthy {
        p.push("its etcd member does not answer".to_string());
    }
    match &s.ping {
        None => p.push("its api does not answer".into()),
        Some((false, _)) => p.push("its api reports it unhealthy (/_ping)".into()),
        Some(_) => {}
    }
    match &s.db {
        None => p.push("it is not a database member".into()),
        Some((_, state)) if state != "running" && state != "streaming" => {
            p.push(format!("its database member is {state}"))
        }
        Some(_) => {}
    }
    p
}

/// `Member 8e9e05c52164694d added to cluster ...`
fn parse_added_id(out: &str) -> Option<String> {
    out.lines()
        .find_map(|l| l.strip_prefix("Member "))
        .and_then(|rest| rest.split_whitespace().next())
        .filter(|id| id.chars().all(|c| c.is_ascii_hexdigit()))
        .map(str::to_string)
}

/// A throw-away container on the overlay network, placed like the new replica, that reaches
/// the existing replica's etcd peer port and database port.
pub fn network_test_spec(new_id: &ReplicaId, existing: &ReplicaId) -> OneShotSpec {
    let targets = [
        (
            Component::Etcd.container_name(existing),
            dtr_core::component::ETCD_PEER_PORT,
        ),
        (
            Component::Rethinkdb.container_name(existing),
            dtr_core::component::DB_PORT,
        ),
    ];
    let script = targets
        .iter()
        .map(|(h, p)| format!("timeout 5 bash -c '</dev/tcp/{h}/{p}' || {{ echo \"cannot reach {h}:{p}\"; exit 1; }}"))
        .collect::<Vec<_>>()
        .join("; ");
    OneShotSpec {
        name: format!("dtr-overlay-test-{new_id}"),
        image: version::bootstrapper_image(),
        entrypoint: Some(vec!["bash".into(), "-c".into(), script]),
        command: Vec::new(),
        user: None,
        labels: labels::helper(new_id, version::VERSION),
        network: OneShotNetwork::Named(OVERLAY_NETWORK.into()),
        mounts: Vec::new(),
        ports: Vec::new(),
    }
}

/// A container on dtr-ol that only sleeps, on the new replica's node, for the whole join.
/// A node detaches from an attachable overlay in the background once its last container on
/// it is gone (moby/moby#27513); the join's short-lived containers on dtr-ol (the agent's
/// check, the overlay test, etcdctl) left it detaching just as the new etcd started, and that
/// start waited 20 s for its attachment and failed ("attaching to network failed … context
/// deadline exceeded", seen on a node that had come back to its swarm). With one container
/// staying on dtr-ol the node never detaches during the join.
fn overlay_holder_spec(new_id: &ReplicaId) -> OneShotSpec {
    OneShotSpec {
        name: format!("dtr-overlay-hold-{new_id}"),
        image: version::bootstrapper_image(),
        entrypoint: Some(vec!["sleep".into(), "infinity".into()]),
        command: Vec::new(),
        user: None,
        labels: labels::helper(new_id, version::VERSION),
        network: OneShotNetwork::Named(OVERLAY_NETWORK.into()),
        mounts: Vec::new(),
        ports: Vec::new(),
    }
}

/// Starts [`overlay_holder_spec`]'s container; its name, for the join to remove at the end.
/// It only makes the join more robust: when it cannot start, the join goes on without it (and
/// the steps that need dtr-ol say what is wrong with it).
async fn hold_overlay(engine: &Engine, new_id: &ReplicaId, reporter: &Reporter) -> Option<String> {
    let spec = overlay_holder_spec(new_id);
    match engine.start_detached(&spec).await {
        Ok(()) => Some(spec.name),
        Err(e) => {
            reporter.warn(format!(
                "{e}: going on without a container holding {OVERLAY_NETWORK} on this node"
            ));
            None
        }
    }
}

async fn network_test(engine: &Engine, new_id: &ReplicaId, existing: &ReplicaId) -> Result<()> {
    let out = engine
        .run_once(&network_test_spec(new_id, existing), None)
        .await?;
    if out.exit_code != 0 {
        return Err(Error::Refused {
            operation: "join",
            reasons: vec![format!(
                "overlay network test failed: {}",
                format!("{}{}", out.stdout, out.stderr).trim()
            )],
            hint: format!("check that {OVERLAY_NETWORK} works between the nodes (swarm ports 4789/udp, 7946) or skip the test with --skip-network-test"),
        });
    }
    Ok(())
}

/// The new replica's settings: its own flags, and everything cluster-wide from the seed the
/// agent read (log level, proxies, external URL, the user's HTTPS certificate) and from the
/// cluster (the etcd members, the image storage).
fn replica_settings(cluster: &Cluster, opts: &JoinOptions) -> Result<ReplicaSettings> {
    let check = &cluster.check;
    let settings = &check.settings;
    let mut initial: Vec<(String, String)> = cluster
        .members()
        .into_iter()
        .filter(|r| *r != opts.replica_id)
        .map(|r| (r.to_string(), dtr_core::component::etcd_peer_url(&r)))
        .collect();
    initial.sort();
    initial.push((
        opts.replica_id.to_string(),
        dtr_core::component::etcd_peer_url(&opts.replica_id),
    ));
    // every replica shares the cluster's storage: the same NFS export, the volume by its name
    // on the same node; on another node the images are in the object store, and the replica
    // gets a volume of its own
    let storage = match &settings.nfs {
        Some(nfs) => Storage::Nfs(nfs.clone()),
        None if cluster.other_node => Storage::DefaultVolume,
        None => Storage::parse(Some(&settings.storage))?,
    };
    if let Some(given) = &opts.nfs {
        if settings.nfs.as_ref() != Some(given) {
            return Err(Error::Refused {
                operation: "join",
                reasons: vec![format!(
                    "--nfs-storage-url {} (options {:?}, async {}) is not the cluster's storage ({})",
                    given.url,
                    given.options.as_deref().unwrap_or("default"),
                    given.async_nfs,
                    storage.describe(&cluster.existing)
                )],
                hint: "a joining replica uses the cluster's storage: leave the NFS flags out, or change the cluster's with `dtr reconfigure --nfs-storage-url`".into(),
            });
        }
    }
    Ok(ReplicaSettings {
        replica_id: opts.replica_id.clone(),
        http_port: opts.http_port,
        https_port: opts.https_port,
        external_url: settings.external_url()?,
        user_cert: check
            .user_cert
            .clone()
            .map(|(cert_pem, ca_pem)| dtr_core::pki::UserCertPublic { cert_pem, ca_pem }),
        storage,
        overlay_subnet: plan::default_subnet(),
        log_level: settings.log_level()?,
        proxies: settings.proxies(),
        db_cache_mb: opts.db_cache_mb,
        etcd_initial_cluster: initial,
        etcd_cluster_state: "existing",
        // the cluster's comes with the shared files
        custom_ca_bundle: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    use dtr_core::contract::cluster::Settings;

    fn rid(n: u8) -> ReplicaId {
        ReplicaId::parse(&format!("00000000000{n}")).unwrap()
    }

    fn healthy_state(node: &str, leader: bool) -> ReplicaState {
        ReplicaState {
            record: Some(ReplicaRecord {
                node: node.into(),
                https_port: 443,
                http_port: 80,
            }),
            etcd_learner: Some(false),
            etcd_member: Some("1".into()),
            etcd_healthy: true,
            db: Some((
                if leader { "leader" } else { "replica" }.into(),
                if leader { "running" } else { "streaming" }.into(),
            )),
            ping: Some((true, version::VERSION.into())),
            retired: false,
        }
    }

    fn check_of(replicas: Vec<(ReplicaId, ReplicaState)>, on_volume: bool) -> JoinCheck {
        JoinCheck {
            cluster: "c".into(),
            via: rid(1),
            settings: Settings {
                external_url: None,
                storage: "dtr-registry-000000000001".into(),
                nfs: None,
                log_level: "info".into(),
                http_proxy: None,
                https_proxy: None,
                no_proxy: None,
            },
            user_cert: None,
            storage: "the volume".into(),
            storage_on_volume: on_volume,
            replicas: replicas.into_iter().collect(),
            failure: None,
        }
    }

    fn facts(node: &str) -> TargetFacts {
        TargetFacts {
            node: node.into(),
            node_addr: None,
            mem_total_bytes: 8 << 30,
        }
    }

    #[test]
    fn the_overlay_holder_sleeps_on_dtr_ol_as_a_helper_of_the_new_replica() {
        let spec = overlay_holder_spec(&rid(2));
        assert_eq!(spec.name, "dtr-overlay-hold-000000000002");
        assert_eq!(spec.network, OneShotNetwork::Named("dtr-ol".into()));
        assert_eq!(
            spec.entrypoint,
            Some(vec!["sleep".to_string(), "infinity".to_string()])
        );
        assert_eq!(spec.labels, labels::helper(&rid(2), version::VERSION));
        assert!(spec.mounts.is_empty() && spec.ports.is_empty());
    }

    #[test]
    fn an_unhealthy_cluster_is_named_replica_by_replica() {
        let mut down = healthy_state("node2", false);
        down.etcd_healthy = false;
        down.ping = None;
        let check = check_of(
            vec![
                (rid(1), healthy_state("node1", true)),
                (rid(2), down),
                (rid(3), healthy_state("node3", false)),
            ],
            false,
        );
        let p = health_problems(&check, &rid(1));
        assert_eq!(
            p,
            vec![
                "replica 000000000002: its etcd member does not answer",
                "replica 000000000002: its api does not answer",
            ]
        );
        // a learner left by an interrupted join does not block, a lost quorum does
        let mut learner = healthy_state("node2", false);
        learner.etcd_learner = Some(true);
        learner.etcd_healthy = false;
        let ok = check_of(
            vec![(rid(1), healthy_state("node1", true)), (rid(2), learner)],
            false,
        );
        assert!(health_problems(&ok, &rid(1)).is_empty());
        let mut lost = check_of(vec![(rid(1), healthy_state("node1", false))], false);
        lost.replicas.get_mut(&rid(1)).unwrap().etcd_healthy = false;
        let p = health_problems(&lost, &rid(1));
        assert!(p[0].starts_with("etcd has no quorum"), "{p:?}");
        assert!(p.contains(&"the metadata database has no primary".to_string()));
    }

    #[test]
    fn node_local_storage_refuses_a_join_on_another_node_only() {
        let check = check_of(vec![(rid(1), healthy_state("node1", true))], true);
        assert!(refuse_node_local_storage(&check, &rid(1), false, &facts("node1")).is_ok());
        let e = refuse_node_local_storage(&check, &rid(1), true, &facts("node2")).unwrap_err();
        let text = crate::report::render(&e);
        assert!(
            text.contains("dtr-registry-000000000001 of node node1")
                && text.contains("node node2")
                && text.contains("object store"),
            "{text}"
        );
        // an object store or NFS is shared
        let s3 = check_of(vec![(rid(1), healthy_state("node1", true))], false);
        assert!(refuse_node_local_storage(&s3, &rid(1), true, &facts("node2")).is_ok());
        let mut nfs = check;
        nfs.settings.nfs = Some(NfsStorage {
            url: "nfs://nas/x".into(),
            host: "nas".into(),
            port: None,
            path: "/x".into(),
            options: None,
            async_nfs: false,
        });
        assert!(refuse_node_local_storage(&nfs, &rid(1), true, &facts("node2")).is_ok());
    }

    #[test]
    fn member_add_output_gives_the_id() {
        let out = "Member 8e9e05c52164694d added to cluster cdf818194e3a8c32\n\nETCD_NAME=\"x\"\n";
        assert_eq!(parse_added_id(out).as_deref(), Some("8e9e05c52164694d"));
        assert_eq!(parse_added_id("nonsense"), None);
    }
}
