//! `dtr emergency-repair`: after a majority of replicas was lost, make the chosen survivor a
//! one-replica cluster with all its data, and make sure the others can never come back as a
//! second cluster. Refused while the cluster still has quorum (`dtr remove` is the tool then).
//!
//! 1. Every other replica's containers are stopped (a stop sticks: restart policy
//!    `unless-stopped`) and `tombstone.json` is written into its dtr-ca volume: its components
//!    refuse to start from then on. `--prune` removes its containers and volumes instead.
//! 2. The survivor's etcd restarts once with `--force-new-cluster` (the entrypoint consumes the
//!    `/data/force-new-cluster` marker), keeping its data as the only member.
//! 3. The other database members' keys and a stale leader key are deleted; if Patroni does not
//!    make the survivor primary by itself, `patronictl failover --candidate` does.
//! 4. The survivor's unhealthy components are restarted and `/_ping` is checked.

use std::collections::BTreeMap;
use std::collections::HashMap;
use std::time::Duration;

use crate::engine::{probe, Engine, Target};
use crate::error::{Error, Result};
use crate::ops::cluster::{self, Quorum, ReplicaView, PATRONI_LEADER, PATRONI_MEMBERS};
use crate::ops::destroy;
use crate::ops::steps;
use crate::plan::{labels, volume_name};
use crate::report::Reporter;
use dtr_core::component::Component;
use dtr_core::contract::phase2::TOMBSTONE;
use dtr_core::options::ReplicaId;
use dtr_core::version;

pub struct RepairOptions {
    pub existing: Option<ReplicaId>,
    pub prune: bool,
    /// `--overlay-subnet`: for `dtr-ol` when it must be made again (a swarm made anew).
    pub overlay_subnet: dtr_core::options::Subnet,
}

pub struct RepairReport {
    pub survivor: ReplicaId,
    pub others: Vec<ReplicaId>,
    pub pruned: bool,
    pub kept: Vec<String>,
}

/// The survivor's etcd takes this marker as "start once with --force-new-cluster".
const FORCE_NEW_CLUSTER_MARKER: &str = "force-new-cluster";

pub async fn repair(
    target: &Target,
    opts: RepairOptions,
    choose: cluster::Chooser<'_>,
    confirm: &dyn Fn(&ReplicaId, &[ReplicaId]) -> Result<bool>,
    reporter: &Reporter,
) -> Result<RepairReport> {
    let engine = steps::connect(target, reporter).await?;
    let lost = read_cluster(&engine, opts.existing.clone(), choose, reporter).await?;
    if !confirm(&lost.survivor, &lost.others)? {
        return Err(Error::Aborted);
    }
    let kept = retire_others(&engine, &lost, opts.prune, reporter).await?;
    overlay_back(&engine, &lost, &opts, reporter).await?;
    one_member_etcd(&engine, &lost.survivor, reporter).await?;
    record_retired(&engine, &lost, reporter).await?;
    survivor_database_primary(&engine, &lost, reporter).await?;
    bring_back(&engine, &lost.survivor, reporter).await?;
    Ok(RepairReport {
        survivor: lost.survivor,
        others: lost.others,
        pruned: opts.prune,
        kept,
    })
}

/// A cluster that lost its quorum: the replica kept, and the others.
struct LostCluster {
    replicas: BTreeMap<ReplicaId, ReplicaView>,
    survivor: ReplicaId,
    /// The other replicas on this engine.
    others: Vec<ReplicaId>,
    /// etcd members whose replica is not on this engine.
    strangers: Vec<String>,
}

/// Reads the cluster and refuses the repair while etcd still has quorum (`dtr remove` is the
/// way then) or when the survivor lacks its stores.
async fn read_cluster(
    engine: &Engine,
    existing: Option<ReplicaId>,
    choose: cluster::Chooser<'_>,
    reporter: &Reporter,
) -> Result<LostCluster> {
    let step = reporter.step("read the cluster");
    let replicas = cluster::replicas(engine).await?;
    let survivor = cluster::pick_replica(
        &replicas,
        existing,
        |_| true,
        |v| v.running(Component::Etcd),
        choose,
    )?;
    let view = &replicas[&survivor];
    for c in [Component::Etcd, Component::Rethinkdb] {
        if !view.containers.contains_key(&c) {
            return Err(Error::Refused {
                operation: "emergency-repair",
                reasons: vec![format!(
                    "replica {survivor} has no {} container",
                    c.container_name(&survivor)
                )],
                hint: "choose another replica to keep, or restore from a backup".into(),
            });
        }
    }
    // the survivor's etcd must run to tell whether the cluster has quorum
    engine
        .start(&Component::Etcd.container_name(&survivor))
        .await
        .ok();
    let members = cluster::etcd_view(engine, &survivor)
        .await
        .unwrap_or_default();
    let q = Quorum::of(&members);
    if q.holds() && members.len() > 1 {
        step.fail("the cluster has quorum");
        return Err(Error::Refused {
            operation: "emergency-repair",
            reasons: vec![format!(
                "etcd still has quorum ({} of {} voting members healthy): an emergency repair would throw away healthy replicas",
                q.healthy, q.voting
            )],
            hint: "remove the unhealthy replicas with `dtr remove --replica-ids ...` instead".into(),
        });
    }
    let others: Vec<ReplicaId> = replicas
        .keys()
        .filter(|r| **r != survivor)
        .cloned()
        .collect();
    let strangers: Vec<String> = members
        .iter()
        .filter_map(|m| m.replica())
        .filter(|r| *r != survivor && !replicas.contains_key(r))
        .map(|r| r.to_string())
        .collect();
    step.done(format!(
        "quorum lost ({} of {} etcd members healthy); keeping {survivor}",
        q.healthy, q.voting
    ));
    if !strangers.is_empty() {
        reporter.warn(format!(
            "replicas {} are members but not on this engine (other nodes): they are retired in the repaired cluster; a node that comes back and reaches this one has its etcd member refused and stopped, but run `dtr destroy --replica-id <id>` on each such node before it rejoins the network if you can",
            strangers.join(", ")
        ));
    }
    Ok(LostCluster {
        replicas,
        survivor,
        others,
        strangers,
    })
}

/// Stops the other replicas for good (tombstoned), or with `--prune` removes them; returns
/// the volumes kept because another replica uses them.
async fn retire_others(
    engine: &Engine,
    lost: &LostCluster,
    prune: bool,
    reporter: &Reporter,
) -> Result<Vec<String>> {
    let mut kept = Vec::new();
    for o in &lost.others {
        let step = reporter.step(format!("retire replica {o}"));
        retire(engine, o, &lost.replicas[o]).await?;
        if prune {
            let d = destroy::destroy(engine, o, reporter).await?;
            kept.extend(d.kept);
            step.done("containers and volumes removed (--prune)");
        } else {
            step.done("stopped, and marked so that it never starts again");
        }
    }
    Ok(kept)
}

/// `dtr-ol` made again when it is gone (the swarm was made anew with `docker swarm init
/// --force-new-cluster` on a node that lost its managers, and the network with it), with
/// `--overlay-subnet`, and the survivor's containers connected to it; when it is there but
/// replicas on other nodes were lost, the survivor's containers restarted on it.
async fn overlay_back(
    engine: &Engine,
    lost: &LostCluster,
    opts: &RepairOptions,
    reporter: &Reporter,
) -> Result<()> {
    use crate::plan::OVERLAY_NETWORK;
    if !engine.networks_named(OVERLAY_NETWORK).await?.is_empty() {
        if lost.strangers.is_empty() {
            return Ok(());
        }
        // members on other nodes were lost: so may the swarm's managers have been, and after
        // `docker swarm init --force-new-cluster` the containers on an overlay no longer find
        // each other by name until their endpoints are made again. All stop before any starts:
        // a container restarted while the others still hold their old addresses can be given
        // one of them ("Address already in use")
        let step = reporter.step(format!("restart the containers on {OVERLAY_NETWORK}"));
        let survivor = &lost.replicas[&lost.survivor];
        for c in survivor.containers.values() {
            engine.stop(&c.name, Duration::from_secs(10)).await?;
        }
        for c in survivor.containers.values() {
            engine.start(&c.name).await?;
        }
        step.done(format!(
            "{} containers restarted",
            survivor.containers.len()
        ));
        return Ok(());
    }
    let step = reporter.step(format!("make {OVERLAY_NETWORK} again"));
    let spec = crate::plan::overlay_network(&opts.overlay_subnet, version::VERSION);
    engine.create_network(&spec).await?;
    for c in lost.replicas[&lost.survivor].containers.values() {
        engine.connect_network(&c.name, OVERLAY_NETWORK).await?;
    }
    step.done(format!("subnet {}", opts.overlay_subnet.as_str()));
    Ok(())
}

/// The replicas left out are recorded as retired in the repaired cluster (and their records
/// go): `dtr status` and joins no longer count them.
async fn record_retired(engine: &Engine, lost: &LostCluster, reporter: &Reporter) -> Result<()> {
    use dtr_core::contract::cluster::{Retired, REPLICAS_PREFIX, RETIRED_PREFIX};
    let survivor = &lost.survivor;
    let retired: Vec<String> = lost
        .others
        .iter()
        .map(|r| r.to_string())
        .chain(lost.strangers.iter().cloned())
        .collect();
    if retired.is_empty() {
        return Ok(());
    }
    let step = reporter.step("record the retired replicas");
    let why = Retired {
        by: "dtr emergency-repair".into(),
        at: dtr_core::timestamp(),
        reason: format!("replica {survivor} was made the whole cluster"),
    };
    let value = serde_json::to_string(&why).expect("serializable");
    for r in &retired {
        cluster::etcdctl(
            engine,
            survivor,
            &["put", &format!("{RETIRED_PREFIX}{r}"), &value],
        )
        .await?;
        cluster::etcdctl(engine, survivor, &["del", &format!("{REPLICAS_PREFIX}{r}")]).await?;
    }
    step.done(retired.join(", "));
    Ok(())
}

/// The survivor's etcd restarts as a one-member cluster (`--force-new-cluster`, once).
async fn one_member_etcd(engine: &Engine, survivor: &ReplicaId, reporter: &Reporter) -> Result<()> {
    let step = reporter.step(format!("make the etcd of {survivor} a one-member cluster"));
    let etcd = Component::Etcd.container_name(survivor);
    engine
        .upload(&etcd, "/data", &[(FORCE_NEW_CLUSTER_MARKER, b"", 0o644)])
        .await?;
    engine.restart(&etcd).await?;
    wait_component(engine, &etcd).await?;
    let members = cluster::etcd_members(engine, survivor).await?;
    step.done(format!("{} member", members.len()));
    Ok(())
}

/// The other members leave Patroni's records, and the survivor's database becomes the primary
/// (by itself, else by a forced failover).
async fn survivor_database_primary(
    engine: &Engine,
    lost: &LostCluster,
    reporter: &Reporter,
) -> Result<()> {
    let survivor = &lost.survivor;
    let step = reporter.step(format!("make the database of {survivor} the primary"));
    for o in lost
        .others
        .iter()
        .map(|r| r.to_string())
        .chain(lost.strangers.iter().cloned())
    {
        cluster::etcdctl(engine, survivor, &["del", &format!("{PATRONI_MEMBERS}{o}")]).await?;
    }
    let leader = cluster::etcdctl(
        engine,
        survivor,
        &["get", PATRONI_LEADER, "--print-value-only"],
    )
    .await?;
    if leader.trim() != survivor.as_str() {
        cluster::etcdctl(engine, survivor, &["del", PATRONI_LEADER]).await?;
    }
    let db = Component::Rethinkdb.container_name(survivor);
    engine.start(&db).await?;
    if !cluster::wait_primary(engine, survivor, Duration::from_secs(20)).await {
        reporter.info("Patroni did not promote the survivor by itself: forcing a failover to it");
        cluster::patronictl(
            engine,
            survivor,
            &["failover", "--candidate", survivor.as_str(), "--force"],
        )
        .await?;
        if !cluster::wait_primary(engine, survivor, Duration::from_secs(60)).await {
            return Err(Error::Unhealthy {
                container: db.clone(),
                waited: Duration::from_secs(60),
                last_output: "the member did not become the primary".into(),
                logs: engine.logs(&db, 20).await,
            });
        }
    }
    step.done("writable");
    Ok(())
}

/// Restarts what is unhealthy on the survivor and checks `/_ping`.
async fn bring_back(engine: &Engine, survivor: &ReplicaId, reporter: &Reporter) -> Result<()> {
    let step = reporter.step(format!("bring every component of {survivor} back"));
    let after = cluster::replicas(engine).await?;
    if let Some(v) = after.get(survivor) {
        restart_unhealthy(engine, v).await?;
    }
    let user_cert = has_user_cert(engine, survivor).await;
    steps::verify_ping(engine, survivor, user_cert).await?;
    step.done("all components healthy");
    Ok(())
}

/// Stops every container of a replica left out of the repaired cluster and writes the
/// tombstone its components check at start.
async fn retire(engine: &Engine, r: &ReplicaId, view: &ReplicaView) -> Result<()> {
    for c in view.containers.values() {
        engine.stop(&c.name, Duration::from_secs(5)).await?;
    }
    let why = serde_json::json!({
        "removed_by": "dtr emergency-repair",
        "at": dtr_core::timestamp(),
        "replica": r.as_str(),
    })
    .to_string();
    let l: HashMap<String, String> = labels::helper(r, version::VERSION).into_iter().collect();
    engine
        .write_into_volume(
            &volume_name("ca", r),
            &format!("dtr-repair-{r}"),
            &[(TOMBSTONE, why.as_bytes(), 0o644)],
            0,
            l,
        )
        .await
}

async fn wait_component(engine: &Engine, name: &str) -> Result<Duration> {
    probe::wait_healthy(
        engine,
        name,
        &["dtr-health".to_string()],
        Duration::from_secs(90),
        |_, _| {},
    )
    .await
}

async fn restart_unhealthy(engine: &Engine, v: &ReplicaView) -> Result<()> {
    for c in Component::ALL {
        let Some(cv) = v.containers.get(&c) else {
            continue;
        };
        if cv.health != cluster::Health::Healthy {
            engine.restart(&cv.name).await.ok();
        }
    }
    for c in Component::ALL {
        if let Some(cv) = v.containers.get(&c) {
            wait_component(engine, &cv.name).await?;
        }
    }
    Ok(())
}

async fn has_user_cert(engine: &Engine, r: &ReplicaId) -> bool {
    let nginx = Component::Nginx.container_name(r);
    let cmd = ["cmp", "-s", "/ca/external/ca.pem", "/ca/ca.pem"].map(str::to_string);
    matches!(engine.exec(&nginx, &cmd).await, Ok(o) if o.exit_code != 0)
}
