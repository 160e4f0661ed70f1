//! `dtr join`: add a replica to a running cluster. Reads the cluster (health, quorum, version,
//! settings), checks the new replica's node and the overlay network, then: volumes, phase 2
//! with the cluster's shared files (its CA signs the new certificates), the new etcd member as
//! a learner that is promoted once it has caught up, and the other components, the database
//! member cloning itself from the primary. A failure or Ctrl-C removes the member again and
//! everything this run created.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use dtr_core::component::Component;
use dtr_core::contract::phase2::Phase2Secrets;
use dtr_core::options::{NfsStorage, ReplicaId, Storage};
use dtr_core::version;

use crate::engine::apply::{Apply, Undo};
use crate::engine::{Engine, Target};
use crate::error::{Error, Result};
use crate::ops::cluster::{self, EtcdMember, Quorum, ReplicaView};
use crate::ops::config::ClusterConfig;
use crate::ops::preflight::PreflightRequest;
use crate::ops::steps;
use crate::plan::{
    self, labels, InstallPlan, OneShotNetwork, OneShotSpec, ReplicaSettings, OVERLAY_NETWORK,
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
    let cluster = read_cluster(&engine, &opts, choose, reporter).await?;
    let (engine, facts) = steps::preflight(&engine, &opts.preflight_request(), reporter).await?;
    overlay_test(&engine, &opts, &cluster.existing, reporter).await?;
    let (settings, secrets) = read_settings(&engine, &cluster, &opts, reporter).await?;
    let plan = plan::join_plan(&settings, &facts);
    steps::log_plan(reporter, &plan);
    reporter.info(format!(
        "joining replica {} to the cluster of {} on node {}",
        plan.replica_id, cluster.existing, plan.node
    ));

    let apply = Apply::new(&engine, reporter);
    apply
        .run(
            "join",
            steps::naming_storage(&settings.storage, &plan.replica_id, async {
                steps::networks(&apply, &plan).await?;
                steps::volumes(&apply, &plan).await?;
                steps::certificates_and_containers(
                    &apply,
                    &plan,
                    &secrets,
                    "phase 2, signed by the cluster CA",
                )
                .await?;
                let member = add_learner(&apply, &cluster.existing, &plan.replica_id).await?;
                start_and_promote(&engine, &plan, &cluster.existing, &member, reporter).await?;
                apply.start_in_order(&plan.containers).await?;
                wait_for_database_sync(&engine, &cluster.existing, &plan.replica_id, reporter)
                    .await?;
                steps::verify(&engine, &plan, reporter).await
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

/// The cluster a replica joins, as read before anything is made.
struct Cluster {
    /// The replica the join goes through.
    existing: ReplicaId,
    members: Vec<EtcdMember>,
    /// Voting etcd members once the new one is promoted.
    voting_after: usize,
}

/// Reads the cluster and refuses a join it cannot take safely: another version, an
/// unhealthy replica, no quorum or no database primary (unless `--unsafe-join`). What an
/// interrupted join left is cleared first.
async fn read_cluster(
    engine: &Engine,
    opts: &JoinOptions,
    choose: Chooser<'_>,
    reporter: &Reporter,
) -> Result<Cluster> {
    let step = reporter.step("read the cluster");
    let replicas = cluster::replicas(engine).await?;
    let existing = pick_existing(&replicas, opts.existing.clone(), choose)?;
    let ex = &replicas[&existing];
    refuse_other_version(&ex.version)?;
    let members = cluster::etcd_view(engine, &existing).await?;
    let members = clear_leftovers(
        engine,
        &existing,
        &opts.replica_id,
        members,
        &replicas,
        reporter,
    )
    .await?;
    let problems = health_problems(engine, ex, &members, &replicas).await;
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
    step.done(format!(
        "{} replicas, joining through {existing}",
        replicas.len()
    ));
    let voting_after = members.iter().filter(|m| !m.learner).count() + 1;
    Ok(Cluster {
        existing,
        members,
        voting_after,
    })
}

/// A replica joins with the cluster's own version only (`dtr upgrade` moves versions).
fn refuse_other_version(cluster_version: &str) -> Result<()> {
    use dtr_core::version_rules::{decide_str, Verdict};
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

/// The new replica's settings and the cluster's shared files, read from the existing replica.
async fn read_settings(
    engine: &Engine,
    cluster: &Cluster,
    opts: &JoinOptions,
    reporter: &Reporter,
) -> Result<(ReplicaSettings, Phase2Secrets)> {
    let step = reporter.step("read the cluster's settings and shared files");
    let (settings, secrets) =
        cluster_settings(engine, &cluster.existing, opts, &cluster.members).await?;
    step.done(format!(
        "storage {}, log level {}",
        settings.storage.describe(&settings.replica_id),
        settings.log_level.as_str()
    ));
    Ok((settings, secrets))
}

/// Takes a new etcd member out again when the join is rolled back.
struct LeaveEtcd {
    via: ReplicaId,
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
        Box::pin(cluster::remove_etcd_member(engine, &self.via, &self.member))
    }
}

/// Adds the new replica's etcd member as a learner (it does not vote until promoted) and
/// registers its removal with the rollback. Returns the member id.
async fn add_learner(apply: &Apply<'_>, existing: &ReplicaId, rid: &ReplicaId) -> Result<String> {
    let (engine, reporter) = (apply.engine, apply.reporter);
    let step = reporter.step(format!("add etcd member {rid} as a learner"));
    let peer = dtr_core::component::etcd_peer_url(rid);
    let started = Instant::now();
    let id = loop {
        match cluster::etcdctl(
            engine,
            existing,
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
            Ok(out) => break parse_added_id(&out),
            // etcd refuses membership changes for a few seconds after the previous one
            Err(e) if started.elapsed() < Duration::from_secs(30) => {
                reporter.debug(format!("member add: {}", e.summary()));
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => return Err(e),
        }
    };
    let id = match id {
        Some(id) => id,
        None => find_member(engine, existing, rid)
            .await?
            .map(|m| m.id)
            .ok_or_else(|| Error::ClusterCommand {
                command: format!("etcdctl member add {rid} --learner"),
                container: Component::Etcd.container_name(existing),
                output: format!("etcd did not report the id of member {rid}"),
            })?,
    };
    apply.undo_with(LeaveEtcd {
        via: existing.clone(),
        member: id.clone(),
    });
    step.done(format!("member id {id}"));
    Ok(id)
}

/// Starts the new etcd and promotes it to a voting member once it has caught up.
async fn start_and_promote(
    engine: &Engine,
    plan: &InstallPlan,
    existing: &ReplicaId,
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
    let started = Instant::now();
    loop {
        match cluster::etcdctl(engine, existing, &["member", "promote", member]).await {
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

/// Waits until the new database member streams from the primary.
async fn wait_for_database_sync(
    engine: &Engine,
    existing: &ReplicaId,
    rid: &ReplicaId,
    reporter: &Reporter,
) -> Result<()> {
    let step = reporter.step("wait for the database member to stream from the primary");
    let started = Instant::now();
    loop {
        let members = cluster::db_members(engine, existing)
            .await
            .unwrap_or_default();
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

fn pick_existing(
    replicas: &BTreeMap<ReplicaId, ReplicaView>,
    given: Option<ReplicaId>,
    choose: Chooser<'_>,
) -> Result<ReplicaId> {
    if replicas.is_empty() {
        return Err(Error::Refused {
            operation: "join",
            reasons: vec!["there is no DTR replica on this engine".into()],
            hint: "install the first replica with `dtr install`".into(),
        });
    }
    cluster::pick_replica(replicas, given, |_| true, ReplicaView::healthy, choose)
}

/// What keeps the cluster from taking a new member safely.
async fn health_problems(
    engine: &Engine,
    ex: &ReplicaView,
    members: &[EtcdMember],
    replicas: &BTreeMap<ReplicaId, ReplicaView>,
) -> Vec<String> {
    let mut problems: Vec<String> = ex
        .problems()
        .into_iter()
        .map(|p| format!("replica {}: {p}", ex.id))
        .collect();
    let q = Quorum::of(members);
    if !q.holds() {
        problems.push(format!(
            "etcd has no quorum: {} of {} voting members are healthy, {} needed",
            q.healthy,
            q.voting,
            q.needed()
        ));
    }
    for m in members.iter().filter(|m| !m.healthy) {
        let who = m
            .replica()
            .map(|r| r.to_string())
            .unwrap_or_else(|| m.id.clone());
        problems.push(format!("etcd member of replica {who} is unreachable"));
    }
    // replicas that are not members (retired by an emergency repair, or left over) do not vote
    let member = |r: &ReplicaId| members.iter().any(|m| m.replica().as_ref() == Some(r));
    for (rid, view) in replicas {
        if rid != &ex.id && member(rid) && !view.healthy() {
            problems.push(format!("replica {rid}: {}", view.problems().join("; ")));
        }
    }
    match cluster::db_members(engine, &ex.id).await {
        Ok(m) if m.iter().any(|m| m.role == "leader") => {}
        Ok(_) => problems.push("the metadata database has no primary".into()),
        Err(e) => problems.push(format!(
            "cannot ask the metadata database: {}",
            crate::report::render(&e)
        )),
    }
    problems
}

/// Re-running a join converges. What an interrupted join of another id left (a learner that was
/// never promoted) is removed, as learners do not vote. The id being joined is started afresh:
/// its member (learner, or voting when the interruption came after the promotion) and its
/// containers and volumes are removed first, unless it is a healthy member already.
async fn clear_leftovers(
    engine: &Engine,
    existing: &ReplicaId,
    new_id: &ReplicaId,
    members: Vec<EtcdMember>,
    replicas: &BTreeMap<ReplicaId, ReplicaView>,
    reporter: &Reporter,
) -> Result<Vec<EtcdMember>> {
    let mut changed = false;
    let new_view = replicas.get(new_id);
    for m in &members {
        let owner = m.replica();
        let is_new = owner.as_ref() == Some(new_id);
        if is_new && new_view.is_some_and(ReplicaView::healthy) {
            return Err(Error::Refused {
                operation: "join",
                reasons: vec![format!("replica {new_id} is already a healthy member of the cluster")],
                hint: format!(
                    "choose another --replica-id, or remove it first with `dtr remove --replica-ids {new_id}`"
                ),
            });
        }
        let serving = owner
            .as_ref()
            .and_then(|r| replicas.get(r))
            .is_some_and(ReplicaView::healthy);
        if !is_new && (!m.learner || serving) {
            continue;
        }
        reporter.warn(format!(
            "removing etcd member {} of replica {} left by an interrupted join",
            m.id,
            owner.as_ref().map(|r| r.as_str()).unwrap_or("?")
        ));
        cluster::remove_etcd_member(engine, existing, &m.id).await?;
        changed = true;
    }
    if new_view.is_some() {
        reporter.warn(format!(
            "replica {new_id} has containers from an interrupted join: removing them first"
        ));
        crate::ops::destroy::destroy(engine, new_id, reporter).await?;
    }
    if changed {
        return cluster::etcd_view(engine, existing).await;
    }
    Ok(members)
}

async fn find_member(
    engine: &Engine,
    via: &ReplicaId,
    rid: &ReplicaId,
) -> Result<Option<EtcdMember>> {
    Ok(cluster::etcd_members(engine, via)
        .await?
        .into_iter()
        .find(|m| m.replica().as_ref() == Some(rid)))
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

/// The new replica's settings: its own flags, and everything cluster-wide from the existing
/// replica (`config::ClusterConfig`: log level, proxies, external URL, image storage, the
/// shared files of `SEED_FILES` and the HTTPS certificate when the user brought one).
async fn cluster_settings(
    engine: &Engine,
    existing: &ReplicaId,
    opts: &JoinOptions,
    members: &[EtcdMember],
) -> Result<(ReplicaSettings, Phase2Secrets)> {
    let config = ClusterConfig::read(engine, existing).await?;
    let seed = config.seed().map_err(|missing| Error::BrokenReplica {
        replica: existing.to_string(),
        problem: format!("its dtr-ca volume has no {missing}"),
    })?;
    let (user_cert, user_key) = config.user_cert();
    let mut initial: Vec<(String, String)> = members
        .iter()
        .filter_map(|m| {
            let r = m.replica()?;
            Some((r.to_string(), dtr_core::component::etcd_peer_url(&r)))
        })
        .collect();
    initial.push((
        opts.replica_id.to_string(),
        dtr_core::component::etcd_peer_url(&opts.replica_id),
    ));
    // every replica shares the existing replica's storage: the same NFS export, or the volume
    // by its name
    let storage = match &config.settings.nfs {
        Some(nfs) => Storage::Nfs(nfs.clone()),
        None => Storage::parse(Some(&config.settings.storage))?,
    };
    if let Some(given) = &opts.nfs {
        if config.settings.nfs.as_ref() != Some(given) {
            return Err(Error::Refused {
                operation: "join",
                reasons: vec![format!(
                    "--nfs-storage-url {} (options {:?}, async {}) is not the cluster's storage ({})",
                    given.url,
                    given.options.as_deref().unwrap_or("default"),
                    given.async_nfs,
                    storage.describe(existing)
                )],
                hint: "a joining replica uses the cluster's storage: leave the NFS flags out, or change the cluster's with `dtr reconfigure --nfs-storage-url`".into(),
            });
        }
    }
    let settings = ReplicaSettings {
        replica_id: opts.replica_id.clone(),
        http_port: opts.http_port,
        https_port: opts.https_port,
        external_url: config.settings.external_url()?,
        user_cert,
        storage,
        overlay_subnet: plan::default_subnet(),
        log_level: config.settings.log_level()?,
        proxies: config.settings.proxies(),
        db_cache_mb: opts.db_cache_mb,
        etcd_initial_cluster: initial,
        etcd_cluster_state: "existing",
        // the cluster's comes with the shared files
        custom_ca_bundle: None,
    };
    let secrets = Phase2Secrets {
        user_key,
        admin: None,
        seed,
    };
    Ok((settings, secrets))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_add_output_gives_the_id() {
        let out = "Member 8e9e05c52164694d added to cluster cdf818194e3a8c32\n\nETCD_NAME=\"x\"\n";
        assert_eq!(parse_added_id(out).as_deref(), Some("8e9e05c52164694d"));
        assert_eq!(parse_added_id("nonsense"), None);
    }
}
