//! `dtr join`: add a replica to a running cluster. Reads the cluster (health, quorum, version,
//! settings), checks the new replica's node and the overlay network, then: volumes, phase 2
//! with the cluster's shared files (its CA signs the new certificates), the new etcd member as
//! a learner that is promoted once it has caught up, and the other components, the database
//! member cloning itself from the primary. A failure or Ctrl-C removes the member again and
//! everything this run created.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::components::Component;
use crate::engine::apply::Apply;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::ops::cluster::{self, EtcdMember, Quorum, ReplicaView};
use crate::ops::config::ClusterConfig;
use crate::ops::{install, interruptible, preflight};
use crate::options::{ReplicaId, Storage};
use crate::plan::{self, labels, InstallPlan, ReplicaSettings, OVERLAY_NETWORK};
use crate::report::Reporter;
use crate::roles::phase2::Phase2Secrets;
use crate::version;

pub struct JoinOptions {
    pub existing: Option<ReplicaId>,
    pub replica_id: ReplicaId,
    pub node: Option<String>,
    pub http_port: u16,
    pub https_port: u16,
    pub db_cache_mb: Option<u32>,
    pub skip_network_test: bool,
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
    opts: JoinOptions,
    choose: Chooser<'_>,
    reporter: &Reporter,
) -> Result<JoinReport> {
    let step = reporter.step("connect to the Docker engine");
    let engine = Engine::connect().await?;
    step.done(&engine.host);

    let step = reporter.step("read the cluster");
    let replicas = cluster::replicas(&engine).await?;
    let existing = pick_existing(&replicas, opts.existing.clone(), choose)?;
    let ex = &replicas[&existing];
    let hint = match crate::version_rules::decide_str(&ex.version, version::VERSION) {
        crate::version_rules::Verdict::Same => None,
        crate::version_rules::Verdict::Allowed(_) => Some(format!(
            "join with the cluster's own version (registry/dtr:{}), or first upgrade the cluster to {} with `dtr upgrade`",
            ex.version,
            version::VERSION
        )),
        crate::version_rules::Verdict::Refused { .. } => Some(format!(
            "join with the cluster's own version (registry/dtr:{}); this bootstrapper cannot upgrade the cluster to {}",
            ex.version,
            version::VERSION
        )),
    };
    if let Some(hint) = hint {
        return Err(Error::Refused {
            operation: "join",
            reasons: vec![format!(
                "the cluster runs dtr {}, this bootstrapper is dtr {}",
                ex.version,
                version::VERSION
            )],
            hint,
        });
    }
    let members = match cluster::etcd_view(&engine, &existing).await {
        Ok(m) => m,
        Err(e) if opts.unsafe_join => {
            reporter.warn(format!(
                "cannot read the etcd members: {}",
                crate::report::render(&e)
            ));
            return Err(e);
        }
        Err(e) => return Err(e),
    };
    let members = clear_leftovers(
        &engine,
        &existing,
        &opts.replica_id,
        members,
        &replicas,
        reporter,
    )
    .await?;
    let problems = health_problems(&engine, ex, &members, &replicas).await;
    let after = members.iter().filter(|m| !m.learner).count() + 1;
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

    let step = reporter.step("preflight checks");
    let facts = match preflight::replica_interruptible(
        &engine,
        &preflight::PreflightRequest {
            replica_id: opts.replica_id.clone(),
            node: opts.node.clone(),
            http_port: opts.http_port,
            https_port: opts.https_port,
            joining: true,
            ignore: opts.ignore_checks.clone(),
        },
        reporter,
    )
    .await
    {
        Ok(f) => f,
        Err(e) => {
            step.fail("see below");
            return Err(e);
        }
    };
    step.done(format!("node {}", facts.node));
    // through MKE, every container of the replica goes to that node
    let engine = engine.placed_on(&facts.node);

    if opts.skip_network_test {
        reporter.warn("skipping the overlay network test (--skip-network-test)");
    } else {
        let step = reporter.step("overlay network test");
        network_test(&engine, &opts.replica_id, &existing).await?;
        step.done(format!("{OVERLAY_NETWORK} reaches replica {existing}"));
    }

    let step = reporter.step("read the cluster's settings and shared files");
    let (settings, secrets) = cluster_settings(&engine, &existing, &opts, &members).await?;
    let plan = plan::join_plan(&settings, &facts);
    step.done(format!(
        "storage {}, log level {}",
        describe_storage(&settings.storage),
        settings.log_level.as_str()
    ));
    if reporter.is_debug() {
        reporter.debug(format!(
            "plan: {}",
            serde_json::to_string(&plan).unwrap_or_default()
        ));
    }
    reporter.info(format!(
        "joining replica {} to the cluster of {existing} on node {}",
        plan.replica_id, plan.node
    ));

    let apply = Apply::new(&engine, reporter);
    let mut added: Option<String> = None;
    let result = interruptible(apply_join(
        &engine, &apply, &plan, &existing, &secrets, &mut added,
    ))
    .await;
    match result {
        Ok(()) => {
            if after % 2 == 0 {
                reporter.warn(format!(
                    "the cluster now has {after} replicas: an even number tolerates no more failures than {} replicas; it is recommended that you have 3, 5 or 7 replicas",
                    after - 1
                ));
            }
            Ok(JoinReport {
                plan,
                existing,
                replicas_after: after,
            })
        }
        Err(cause) => {
            reporter.warn("join failed: removing the new member and what this run created");
            let mut left = Vec::new();
            if let Some(id) = &added {
                if let Err(e) = cluster::remove_etcd_member(&engine, &existing, id).await {
                    left.push(format!("etcd member {id} ({})", crate::report::render(&e)));
                }
            }
            let (removed, mut left_behind) = apply.ledger.rollback(&engine).await;
            left_behind.extend(left);
            Err(Error::RolledBack {
                operation: "join",
                cause: Box::new(cause),
                removed,
                left_behind,
            })
        }
    }
}

async fn apply_join(
    engine: &Engine,
    apply: &Apply<'_>,
    plan: &InstallPlan,
    existing: &ReplicaId,
    secrets: &Phase2Secrets,
    added: &mut Option<String>,
) -> Result<()> {
    let reporter = apply.reporter;
    let step = reporter.step("networks and volumes");
    apply.networks(&plan.networks).await?;
    let (made, reused) = apply.volumes(&plan.volumes).await?;
    step.done(format!(
        "created {} volumes, reused {}",
        made.len(),
        reused.join(", ")
    ));

    let step = reporter.step("certificates (phase 2, signed by the cluster CA) and containers");
    tokio::try_join!(
        apply.phase2_certs(&plan.phase2, secrets),
        apply.create_containers(&plan.containers)
    )?;
    step.done("");

    let rid = &plan.replica_id;
    let step = reporter.step(format!("add etcd member {rid} as a learner"));
    let peer = crate::components::etcd_peer_url(rid);
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
                reporter.debug(format!("member add: {}", crate::report::render(&e)));
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
            .ok_or_else(|| Error::Role(format!("etcd did not report the id of member {rid}")))?,
    };
    *added = Some(id.clone());
    step.done(format!("member id {id}"));

    let etcd = plan
        .containers
        .iter()
        .find(|c| c.component == Component::Etcd)
        .expect("the plan has an etcd");
    let step = reporter.step(format!("start {} and promote it", etcd.name));
    engine.start(&etcd.name).await?;
    let started = Instant::now();
    loop {
        match cluster::etcdctl(engine, existing, &["member", "promote", &id]).await {
            Ok(_) => break,
            // "can only promote a learner member which is in sync with leader"
            Err(e) if started.elapsed() < PROMOTE_TIMEOUT => {
                reporter.debug(format!("member promote: {}", crate::report::render(&e)));
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

    apply.start_in_order(&plan.containers).await?;

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

    let step = reporter.step("verify /_ping through nginx");
    install::verify_ping(engine, rid, plan.phase2.request.user_cert.is_some()).await?;
    step.done("all components healthy");
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

/// A throw-away container on the overlay network, placed like the new replica, reaches the
/// existing replica's etcd peer port and database port.
async fn network_test(engine: &Engine, new_id: &ReplicaId, existing: &ReplicaId) -> Result<()> {
    use bollard::models::{ContainerCreateBody, HostConfig};
    let name = format!("dtr-overlay-test-{new_id}");
    let targets = [
        (
            Component::Etcd.container_name(existing),
            crate::components::ETCD_PEER_PORT,
        ),
        (Component::Rethinkdb.container_name(existing), 5432),
    ];
    let script = targets
        .iter()
        .map(|(h, p)| format!("timeout 5 bash -c '</dev/tcp/{h}/{p}' || {{ echo \"cannot reach {h}:{p}\"; exit 1; }}"))
        .collect::<Vec<_>>()
        .join("; ");
    let l = labels::helper(new_id, version::VERSION);
    let body = ContainerCreateBody {
        image: Some(version::bootstrapper_image()),
        entrypoint: Some(vec!["bash".into(), "-c".into(), script]),
        labels: Some(l.into_iter().collect()),
        host_config: Some(HostConfig {
            network_mode: Some(OVERLAY_NETWORK.into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let _ = engine.remove_container(&name).await;
    engine.create_raw(&name, body).await?;
    let result = async {
        engine.start(&name).await?;
        let code = engine.wait_exit(&name).await?;
        let (out, err) = engine.output(&name).await;
        if code != 0 {
            return Err(Error::Refused {
                operation: "join",
                reasons: vec![format!(
                    "overlay network test failed: {}",
                    format!("{out}{err}").trim()
                )],
                hint: format!("check that {OVERLAY_NETWORK} works between the nodes (swarm ports 4789/udp, 7946) or skip the test with --skip-network-test"),
            });
        }
        Ok(())
    }
    .await;
    let _ = engine.remove_container(&name).await;
    result
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
    let seed = config.seed().map_err(|missing| {
        Error::Role(format!(
            "the dtr-ca volume of replica {existing} has no {missing}"
        ))
    })?;
    let (user_cert, user_key) = config.user_cert();
    let mut initial: Vec<(String, String)> = members
        .iter()
        .filter_map(|m| {
            let r = m.replica()?;
            Some((r.to_string(), crate::components::etcd_peer_url(&r)))
        })
        .collect();
    initial.push((
        opts.replica_id.to_string(),
        crate::components::etcd_peer_url(&opts.replica_id),
    ));
    // every replica shares the existing replica's storage, by its name
    let storage = Storage::parse(Some(&config.settings.storage))?;
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
    };
    let secrets = Phase2Secrets {
        user_key,
        admin: None,
        seed,
    };
    Ok((settings, secrets))
}

fn describe_storage(s: &Storage) -> String {
    match s {
        Storage::DefaultVolume => "the replica's own volume".into(),
        Storage::NamedVolume(v) => format!("volume {v} (shared)"),
        Storage::HostPath(p) => format!("host path {} (shared)", p.display()),
    }
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
