//! `dtr destroy`: force-removes one replica's containers and volumes without telling the rest of
//! the cluster (the original's semantics), and the DTR networks once no replica uses them.
//! Only objects carrying our labels are touched.

use std::collections::BTreeMap;

use crate::engine::{Engine, Target};
use crate::error::{Error, Result};
use crate::ops::steps;
use crate::plan::labels;
use crate::report::Reporter;
use dtr_core::options::ReplicaId;

/// How the replica to destroy is chosen, and whether a person confirms it. The CLI layer fills
/// these in (prompts on a terminal); this module never talks to the terminal itself.
pub struct DestroyRequest<'a> {
    /// `--replica-id`, when given.
    pub replica: Option<ReplicaId>,
    /// Picks one of the replicas found on the engine (asked when `replica` is `None`).
    pub choose: &'a dyn Fn(&[String]) -> Result<ReplicaId>,
    /// Confirms the destruction of the chosen replica; `false` aborts.
    pub confirm: &'a dyn Fn(&ReplicaId) -> Result<bool>,
}

/// `dtr destroy`: connects to the engine, resolves the replica, confirms, removes.
pub async fn run(
    target: &Target,
    request: DestroyRequest<'_>,
    reporter: &Reporter,
) -> Result<(ReplicaId, DestroyReport)> {
    let engine = steps::connect(target, reporter).await?;
    let replica = match request.replica {
        Some(id) => id,
        None => {
            let existing = replicas(&engine).await?;
            if existing.is_empty() {
                return Err(Error::ReplicaNotFound {
                    replica: "(any)".into(),
                    existing,
                });
            }
            (request.choose)(&existing)?
        }
    };
    if !(request.confirm)(&replica)? {
        return Err(Error::Aborted);
    }
    let report = destroy(&engine, &replica, reporter).await?;
    if !report.left_behind.is_empty() {
        return Err(Error::LeftBehind {
            operation: "destroy",
            objects: report.left_behind,
        });
    }
    Ok((replica, report))
}

pub struct DestroyReport {
    pub removed: Vec<String>,
    pub left_behind: Vec<String>,
    /// Volumes other replicas still use (a shared image storage).
    pub kept: Vec<String>,
}

/// Replica ids that have at least one labelled container or volume on this engine.
pub async fn replicas(engine: &Engine) -> Result<Vec<String>> {
    let mut ids: Vec<String> = engine
        .containers_labelled(&[&labels::managed_filter()])
        .await?
        .into_iter()
        .filter_map(|c| c.labels.get(labels::REPLICA).cloned())
        .chain(
            engine
                .volumes_labelled(&[&labels::managed_filter()])
                .await?
                .into_iter()
                .filter_map(|v| v.labels.get(labels::REPLICA).cloned()),
        )
        .collect();
    ids.sort();
    ids.dedup();
    Ok(ids)
}

/// The cluster (its id) of which `replica` is the only etcd member, as its own etcd says;
/// `None` when there are others, or when its etcd cannot tell (not running).
async fn last_of_its_cluster(
    engine: &Engine,
    replica: &ReplicaId,
    containers: &[crate::engine::ContainerInfo],
) -> Option<String> {
    let members = crate::ops::cluster::etcd_members(engine, replica)
        .await
        .ok()?;
    if !members
        .iter()
        .all(|m| m.replica().as_ref() == Some(replica))
    {
        return None;
    }
    let container = containers.first()?;
    let archive = engine
        .download(
            &container.name,
            &format!("{}/ca.pem", dtr_core::contract::CA_MOUNT),
        )
        .await
        .ok()?;
    let mut tar = tar::Archive::new(&archive[..]);
    let mut entry = tar.entries().ok()?.next()?.ok()?;
    let mut pem = String::new();
    std::io::Read::read_to_string(&mut entry, &mut pem).ok()?;
    Some(dtr_core::contract::cluster::cluster_id(&pem))
}

pub async fn destroy(
    engine: &Engine,
    replica: &ReplicaId,
    reporter: &Reporter,
) -> Result<DestroyReport> {
    let managed = labels::managed_filter();
    let this = labels::replica_filter(replica);
    let containers = engine.containers_labelled(&[&managed, &this]).await?;
    let volumes = engine.volumes_labelled(&[&managed, &this]).await?;
    if containers.is_empty() && volumes.is_empty() {
        return Err(Error::ReplicaNotFound {
            replica: replica.to_string(),
            existing: replicas(engine).await?,
        });
    }
    let mut removed = Vec::new();
    let mut left_behind = Vec::new();
    let mut kept = Vec::new();
    // the last replica of its cluster takes the cluster's seed with it
    if let Some(cluster) = last_of_its_cluster(engine, replica, &containers).await {
        match crate::ops::seed::withdraw(engine, &cluster).await {
            Ok(n) if n > 0 => {
                removed.push(format!("the seed of cluster {cluster} ({n} secret(s))"))
            }
            Ok(_) => {}
            Err(e) => left_behind.push(format!("the seed of cluster {cluster}: {}", e.summary())),
        }
    }

    let step = reporter.step(format!("remove the containers of replica {replica}"));
    let names: Vec<String> = containers.iter().map(|c| c.name.clone()).collect();
    // one after the other: parallel removals of containers on one bridge network can leave the
    // engine (20.10) counting an endpoint that is gone, and the network then cannot be removed
    for name in &names {
        match engine.remove_container(name).await {
            Ok(()) => removed.push(format!("container {name}")),
            Err(e) => left_behind.push(format!("container {name}: {}", e.summary())),
        }
    }
    step.done(format!("{} removed", names.len()));

    let step = reporter.step(format!("remove the volumes of replica {replica}"));
    // the image storage of a replica that others joined is theirs too: keep it while used
    let in_use: BTreeMap<String, String> = engine
        .containers_labelled(&[&managed])
        .await?
        .into_iter()
        .flat_map(|c| {
            let owner = c.name;
            c.volumes.into_iter().map(move |v| (v, owner.clone()))
        })
        .collect();
    for v in &volumes {
        if let Some(user) = in_use.get(&v.name) {
            reporter.info(format!("keeping volume {} (in use by {user})", v.name));
            kept.push(format!("volume {} (in use by {user})", v.name));
            continue;
        }
        match engine.remove_volume(&v.name).await {
            Ok(()) => removed.push(format!("volume {}", v.name)),
            Err(e) => left_behind.push(format!("volume {}: {}", v.name, e.summary())),
        }
    }
    step.done(format!("{} removed", volumes.len()));

    // The networks are shared by all replicas: remove them with the last one.
    if engine.containers_labelled(&[&managed]).await?.is_empty() {
        let step = reporter.step("remove the DTR networks (no replica uses them any more)");
        let nets = engine.networks_labelled(&managed).await?;
        let mut count = 0;
        for n in &nets {
            let name = n.name.clone();
            // by id: two networks may carry the same name after a race between installs
            let id = if n.id.is_empty() { &name } else { &n.id };
            match engine.remove_network(id).await {
                Ok(()) => {
                    count += 1;
                    removed.push(format!("network {name}"))
                }
                // the overlay still connects the replicas of other nodes
                Err(Error::Docker {
                    kind: crate::error::DockerFailure::ActiveEndpoints,
                    ..
                }) => kept.push(format!("network {name} (in use on other nodes)")),
                Err(e) => left_behind.push(format!("network {name}: {}", e.summary())),
            }
        }
        step.done(format!("{count} removed"));
    }
    Ok(DestroyReport {
        removed,
        left_behind,
        kept,
    })
}
