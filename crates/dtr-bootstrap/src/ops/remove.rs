//! `dtr remove`: scale the cluster down by removing replicas gracefully. Refuses (unless
//! `--force`) when the replica operated through is unhealthy or when the removal would leave
//! the cluster without quorum. For each replica: hand the database primary over if it holds
//! it, stop its database member (Patroni lets go cleanly), remove its etcd member while that
//! still runs (with two members, a stopped one would take the quorum needed for the change),
//! then stop and remove its containers and volumes (an image storage volume other replicas
//! still use is kept).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::engine::{Engine, Target};
use crate::error::{Error, Result};
use crate::ops::cluster::{self, EtcdMember, Quorum, ReplicaView};
use crate::ops::destroy;
use crate::ops::steps;
use crate::report::Reporter;
use dtr_core::component::Component;
use dtr_core::options::ReplicaId;

pub struct RemoveOptions {
    pub existing: Option<ReplicaId>,
    /// `--replica-ids`; empty: one is picked (`RemoveRequest::pick`) among the replicas found.
    pub remove: Vec<ReplicaId>,
    pub force: bool,
}

pub struct RemoveReport {
    pub existing: ReplicaId,
    pub removed: Vec<ReplicaId>,
    pub kept: Vec<String>,
    pub left_behind: Vec<String>,
    /// Removed replicas whose containers are not on this engine (another node, maybe gone):
    /// they left the cluster, their containers are for `dtr destroy` on their node.
    pub unreachable: Vec<String>,
}

/// `pick` chooses the replica to remove when `opts.remove` is empty (the CLI asks on a
/// terminal); `choose` the healthy replica that stays and drives the removal.
pub async fn remove(
    target: &Target,
    mut opts: RemoveOptions,
    pick: &dyn Fn(&[String]) -> Result<ReplicaId>,
    choose: cluster::Chooser<'_>,
    reporter: &Reporter,
) -> Result<RemoveReport> {
    let engine = steps::connect(target, reporter).await?;
    if opts.remove.is_empty() {
        let existing = destroy::replicas(&engine).await?;
        opts.remove.push(pick(&existing)?);
    }
    let step = reporter.step("read the cluster");
    let replicas = cluster::replicas(&engine).await?;
    let existing = cluster::pick_replica(
        &replicas,
        opts.existing.clone(),
        |v| !opts.remove.contains(&v.id),
        ReplicaView::healthy,
        choose,
    )?;
    let ex = &replicas[&existing];
    let members = cluster::etcd_view(&engine, &existing).await?;
    let mut reasons = check(&opts, ex, &members, &replicas);
    if opts.remove.contains(&existing) {
        // never overridable: the operation runs through that replica
        return Err(Error::Refused {
            operation: "remove",
            reasons: vec![format!(
                "--existing-replica-id {existing} is also to be removed"
            )],
            hint: "operate through a replica that stays".into(),
        });
    }
    if !reasons.is_empty() {
        if opts.force {
            for r in reasons.drain(..) {
                reporter.warn(format!("{r} (continuing because of --force)"));
            }
        } else {
            step.fail("refused");
            return Err(Error::Refused {
                operation: "remove",
                reasons,
                hint: "remove unhealthy replicas one at a time, keep a majority of healthy members, \
                       or use `dtr emergency-repair` when the majority is already lost; --force skips these checks"
                    .into(),
            });
        }
    }
    step.done(format!(
        "{} replicas; removing {}",
        replicas.len(),
        opts.remove
            .iter()
            .map(ReplicaId::as_str)
            .collect::<Vec<_>>()
            .join(", ")
    ));

    let mut report = RemoveReport {
        existing: existing.clone(),
        removed: Vec::new(),
        kept: Vec::new(),
        left_behind: Vec::new(),
        unreachable: Vec::new(),
    };
    for r in &opts.remove {
        remove_one(
            &engine,
            &existing,
            r,
            &members,
            replicas.get(r),
            reporter,
            &mut report,
        )
        .await?;
        report.removed.push(r.clone());
    }
    Ok(report)
}

/// Why the removal is unsafe (empty = safe).
fn check(
    opts: &RemoveOptions,
    ex: &ReplicaView,
    members: &[EtcdMember],
    replicas: &BTreeMap<ReplicaId, ReplicaView>,
) -> Vec<String> {
    let mut reasons = Vec::new();
    for r in &opts.remove {
        let known =
            replicas.contains_key(r) || members.iter().any(|m| m.replica().as_ref() == Some(r));
        if !known {
            reasons.push(format!(
                "replica {r} is neither on this engine nor an etcd member"
            ));
        }
        // on another node and answering: its containers would go on running there, its
        // database member still streaming (and chosen as the synchronous standby)
        let alive_elsewhere = !replicas.contains_key(r)
            && members
                .iter()
                .any(|m| m.replica().as_ref() == Some(r) && m.healthy);
        if alive_elsewhere {
            reasons.push(format!(
                "replica {r} runs on another node and answers: removed from here, its containers would go on running there; run `dtr remove` against that node's engine or through MKE, or `dtr destroy --replica-id {r}` on that node first"
            ));
        }
    }
    if !ex.healthy() {
        reasons.push(format!(
            "replica {} is not healthy: {}",
            ex.id,
            ex.problems().join("; ")
        ));
    }
    let removed: Vec<&EtcdMember> = members
        .iter()
        .filter(|m| !m.learner && m.replica().is_some_and(|r| opts.remove.contains(&r)))
        .collect();
    let healthy = removed.iter().filter(|m| m.healthy).count();
    let q = Quorum::of(members);
    let after = q.without(healthy, removed.len() - healthy);
    if after.voting == 0 {
        reasons.push("that would remove every member: use `dtr destroy` to uninstall".into());
    } else if !after.holds() {
        reasons.push(format!(
            "the cluster would lose its quorum: {} of {} remaining voting members healthy, {} needed",
            after.healthy,
            after.voting,
            after.needed()
        ));
    }
    reasons
}

async fn remove_one(
    engine: &Engine,
    existing: &ReplicaId,
    r: &ReplicaId,
    members: &[EtcdMember],
    view: Option<&ReplicaView>,
    reporter: &Reporter,
    report: &mut RemoveReport,
) -> Result<()> {
    let here = view.is_some();
    if view.is_some_and(|v| v.running(Component::Rethinkdb)) {
        hand_over_primary(engine, existing, r, reporter).await?;
        let step = reporter.step(format!("stop the database member of {r}"));
        engine
            .stop(
                &Component::Rethinkdb.container_name(r),
                Duration::from_secs(30),
            )
            .await?;
        step.done("");
    } else if !here {
        // on another node: hand its primary over if it still holds it (a dead node's was
        // taken over by Patroni already)
        hand_over_primary(engine, existing, r, reporter).await?;
    }
    let node = record_node(engine, existing, r).await;
    let step = reporter.step(format!("remove {r} from etcd and the database cluster"));
    if let Some(m) = members.iter().find(|m| m.replica().as_ref() == Some(r)) {
        cluster::remove_etcd_member(engine, existing, &m.id).await?;
    }
    // Patroni forgets a member after its key's ttl; removing it now frees its sync slot at once;
    // its record and its registry's generation go with it
    for key in [
        format!("{}{}", cluster::PATRONI_MEMBERS, r),
        format!("{}{r}", dtr_core::contract::cluster::REPLICAS_PREFIX),
        format!("{}{r}", dtr_core::contract::storage::REPLICAS_PREFIX),
    ] {
        cluster::etcdctl(engine, existing, &["del", &key]).await?;
    }
    step.done("");
    if !here && !has_objects(engine, r).await? {
        report.unreachable.push(format!(
            "the containers and volumes of replica {r} are not on this engine{}: if that node comes back, run `dtr destroy --replica-id {r}` against its engine (its etcd member was removed: it cannot rejoin the cluster by itself)",
            node.map(|n| format!(" (node {n})")).unwrap_or_default()
        ));
        return Ok(());
    }
    if let Some(v) = view {
        let step = reporter.step(format!("stop the containers of {r}"));
        for c in v.containers.values() {
            engine.stop(&c.name, Duration::from_secs(10)).await?;
        }
        step.done("");
    }
    if view.is_some() || has_objects(engine, r).await? {
        let d = destroy::destroy(engine, r, reporter).await?;
        report.kept.extend(d.kept);
        report.left_behind.extend(d.left_behind);
    }
    Ok(())
}

/// The node replica `r` was recorded on.
async fn record_node(engine: &Engine, via: &ReplicaId, r: &ReplicaId) -> Option<String> {
    let key = format!("{}{r}", dtr_core::contract::cluster::REPLICAS_PREFIX);
    let out = cluster::etcdctl(engine, via, &["get", &key, "--print-value-only"])
        .await
        .ok()?;
    serde_json::from_str::<dtr_core::contract::cluster::ReplicaRecord>(out.trim())
        .ok()
        .map(|rec| rec.node)
}

async fn has_objects(engine: &Engine, r: &ReplicaId) -> Result<bool> {
    Ok(destroy::replicas(engine).await?.contains(&r.to_string()))
}

/// When `r` holds the primary, switch it over to a synchronous standby that stays, and wait
/// until that one leads (no acknowledged write is lost; writes pause for about a second).
async fn hand_over_primary(
    engine: &Engine,
    existing: &ReplicaId,
    r: &ReplicaId,
    reporter: &Reporter,
) -> Result<()> {
    let members = cluster::db_members(engine, existing).await?;
    if !members
        .iter()
        .any(|m| m.name == r.as_str() && m.role == "leader")
    {
        return Ok(());
    }
    let Some(candidate) = members
        .iter()
        .find(|m| m.name != r.as_str() && m.role == "sync_standby")
        .or_else(|| {
            members
                .iter()
                .find(|m| m.name != r.as_str() && m.state == "streaming")
        })
    else {
        reporter.warn(format!(
            "replica {r} holds the database primary and no standby can take over: writes pause until Patroni elects one"
        ));
        return Ok(());
    };
    let step = reporter.step(format!(
        "hand the database primary over from {r} to {}",
        candidate.name
    ));
    cluster::patronictl(
        engine,
        existing,
        &[
            "switchover",
            "--leader",
            r.as_str(),
            "--candidate",
            &candidate.name,
            "--force",
        ],
    )
    .await?;
    let started = Instant::now();
    loop {
        let now = cluster::db_members(engine, existing)
            .await
            .unwrap_or_default();
        if now
            .iter()
            .any(|m| m.name == candidate.name && m.role == "leader" && m.state == "running")
        {
            break;
        }
        if started.elapsed() > Duration::from_secs(60) {
            return Err(Error::TimedOut {
                waiting_for: format!("the database primary to move to {}", candidate.name),
                waited: Duration::from_secs(60),
                hint:
                    "check the database members with `dtr status`, then run the same `remove` again"
                        .into(),
            });
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    step.done("");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::cluster::{ContainerView, Health};

    fn rid(n: u8) -> ReplicaId {
        ReplicaId::parse(&format!("00000000000{n}")).unwrap()
    }

    fn view(r: &ReplicaId, healthy: bool) -> ReplicaView {
        ReplicaView {
            id: r.clone(),
            version: "0".into(),
            containers: Component::ALL
                .iter()
                .map(|c| {
                    (
                        *c,
                        ContainerView {
                            name: c.container_name(r),
                            health: if healthy {
                                Health::Healthy
                            } else {
                                Health::Stopped
                            },
                            version: "0".into(),
                        },
                    )
                })
                .collect(),
            https_port: None,
            http_port: None,
            node: None,
            elsewhere: None,
        }
    }

    fn member(r: &ReplicaId, healthy: bool) -> EtcdMember {
        EtcdMember {
            id: "1".into(),
            name: r.to_string(),
            peer_urls: vec![],
            learner: false,
            healthy,
        }
    }

    #[test]
    fn removal_that_loses_quorum_is_refused() {
        let (a, b, c) = (rid(1), rid(2), rid(3));
        let replicas: BTreeMap<_, _> = [
            (a.clone(), view(&a, true)),
            (b.clone(), view(&b, true)),
            (c.clone(), view(&c, false)),
        ]
        .into();
        let members = [member(&a, true), member(&b, true), member(&c, false)];
        let opts = |r: &ReplicaId| RemoveOptions {
            existing: Some(a.clone()),
            remove: vec![r.clone()],
            force: false,
        };
        // the dead one: fine
        assert!(check(&opts(&c), &replicas[&a], &members, &replicas).is_empty());
        // a healthy one while another is dead: 1 of 2 left
        let why = check(&opts(&b), &replicas[&a], &members, &replicas);
        assert!(why.iter().any(|w| w.contains("quorum")), "{why:?}");
        // all of them
        let all = RemoveOptions {
            existing: Some(a.clone()),
            remove: vec![a.clone(), b.clone(), c.clone()],
            force: false,
        };
        assert!(check(&all, &replicas[&a], &members, &replicas)
            .iter()
            .any(|w| w.contains("destroy")));
        // unknown id
        let unknown = check(&opts(&rid(9)), &replicas[&a], &members, &replicas);
        assert!(unknown.iter().any(|w| w.contains("neither")));
    }

    #[test]
    fn a_replica_that_answers_on_another_node_is_not_removed_from_here() {
        let (a, b, c, d) = (rid(1), rid(2), rid(3), rid(4));
        // a and b on this engine; c and d on other nodes, c answering, d dead
        let replicas: BTreeMap<_, _> =
            [(a.clone(), view(&a, true)), (b.clone(), view(&b, true))].into();
        let members = [
            member(&a, true),
            member(&b, true),
            member(&c, true),
            member(&d, false),
        ];
        let opts = |r: &ReplicaId| RemoveOptions {
            existing: Some(a.clone()),
            remove: vec![r.clone()],
            force: false,
        };
        let why = check(&opts(&c), &replicas[&a], &members, &replicas);
        assert!(
            why.iter()
                .any(|w| w.contains("runs on another node and answers")),
            "{why:?}"
        );
        assert!(check(&opts(&d), &replicas[&a], &members, &replicas).is_empty());
    }
}
