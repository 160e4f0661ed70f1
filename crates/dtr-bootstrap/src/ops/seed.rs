//! The cluster's seed (`dtr_core::contract::cluster`): what a new replica needs from the
//! cluster — the settings of its containers and the files every replica shares, the CA key
//! among them — published as a swarm secret, and the join agent that reads it on the joining
//! node. The bootstrapper on the joining node's engine never sees another node's containers:
//! the swarm gives the secret to the agent's task, and the task reaches the cluster over
//! `dtr-ol`.

use std::collections::BTreeMap;
use std::time::Duration;

use dtr_core::contract::cluster::{
    self, ClusterSeed, JoinCheck, SEED_CLUSTER_LABEL, SEED_SECRET_PREFIX, SEED_SECRET_TARGET,
};
use dtr_core::contract::CA_MOUNT;
use dtr_core::options::ReplicaId;
use dtr_core::version;

use crate::engine::swarm::{SecretInfo, TaskRun};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::ops::config::ClusterConfig;
use crate::plan::{labels, MountSpec, OVERLAY_NETWORK};
use crate::report::Reporter;

/// How long the agent's task may take (scheduling, the image's start, the cluster's answers).
const AGENT_TIMEOUT: Duration = Duration::from_secs(90);
/// The label recording when a seed secret was published (ordering).
const PUBLISHED_LABEL: &str = "com.docker.dtr.seed-published";

/// A published seed: its secret and its cluster.
#[derive(Clone, Debug)]
pub struct Seed {
    pub secret: SecretInfo,
    pub cluster: String,
}

/// Publishes the seed of the cluster of `replica` (its containers on this engine) as a swarm
/// secret, unless that very seed is published already; older seeds of the cluster are
/// removed. Needs a manager's engine or MKE: elsewhere it warns that joins will need one, and
/// returns `None`.
pub async fn publish(
    engine: &Engine,
    replica: &ReplicaId,
    reporter: &Reporter,
) -> Result<Option<Seed>> {
    if !engine.via_mke() && !engine.describe().await?.swarm_manager {
        reporter.warn(format!(
            "this engine is not a swarm manager: the cluster's seed (what a new replica needs from it) was not published; run `dtr reconfigure --existing-replica-id {replica}` against a manager's engine before joining replicas on other nodes"
        ));
        return Ok(None);
    }
    let config = ClusterConfig::read(engine, replica).await?;
    let seed =
        ClusterSeed::new(replica.clone(), config.settings, &config.files).ok_or_else(|| {
            Error::BrokenReplica {
                replica: replica.to_string(),
                problem: "its dtr-ca volume has no ca.pem".into(),
            }
        })?;
    let document = serde_json::to_vec(&seed).expect("a seed serializes");
    let name = cluster::seed_secret_name(&seed.cluster, &document);
    let existing = engine
        .secrets_labelled(&format!("{SEED_CLUSTER_LABEL}={}", seed.cluster))
        .await?;
    let current = match existing.iter().find(|s| s.name == name) {
        Some(s) => s.clone(),
        None => {
            let mut l = BTreeMap::from([
                (labels::MANAGED.to_string(), "true".to_string()),
                (SEED_CLUSTER_LABEL.to_string(), seed.cluster.clone()),
                (PUBLISHED_LABEL.to_string(), dtr_core::timestamp()),
            ]);
            l.insert(labels::REPLICA.to_string(), replica.to_string());
            let id = engine.create_secret(&name, &document, l.clone()).await?;
            SecretInfo {
                id,
                name: name.clone(),
                labels: l,
            }
        }
    };
    for old in existing.iter().filter(|s| s.name != name) {
        // a join under way may still use it: it goes with the next publication then
        if let Err(e) = engine.remove_secret(&old.id).await {
            reporter.debug(format!("old seed {} kept: {}", old.name, e.summary()));
        }
    }
    Ok(Some(Seed {
        secret: current,
        cluster: seed.cluster,
    }))
}

/// The published seeds on this swarm, one per cluster (the newest of each).
pub async fn published(engine: &Engine) -> Result<Vec<Seed>> {
    let mut by_cluster: BTreeMap<String, SecretInfo> = BTreeMap::new();
    for s in engine.secrets_labelled(SEED_CLUSTER_LABEL).await? {
        if !s.name.starts_with(SEED_SECRET_PREFIX) {
            continue;
        }
        let Some(cluster) = s.labels.get(SEED_CLUSTER_LABEL).cloned() else {
            continue;
        };
        let newer = by_cluster
            .get(&cluster)
            .is_none_or(|o| o.labels.get(PUBLISHED_LABEL) < s.labels.get(PUBLISHED_LABEL));
        if newer {
            by_cluster.insert(cluster, s);
        }
    }
    Ok(by_cluster
        .into_iter()
        .map(|(cluster, secret)| Seed { secret, cluster })
        .collect())
}

/// Removes every published seed of `cluster` (its last replica is gone).
pub async fn withdraw(engine: &Engine, cluster: &str) -> Result<usize> {
    let seeds = engine
        .secrets_labelled(&format!("{SEED_CLUSTER_LABEL}={cluster}"))
        .await?;
    for s in &seeds {
        engine.remove_secret(&s.id).await?;
    }
    Ok(seeds.len())
}

fn agent_task(seed: &Seed, new_id: &ReplicaId, node: &str, step: &str) -> TaskRun {
    TaskRun {
        name: format!("dtr-join-agent-{new_id}"),
        image: version::bootstrapper_image(),
        command: vec!["dtr".into(), "join-agent".into(), step.into()],
        node: node.to_string(),
        secret: Some((
            seed.secret.id.clone(),
            seed.secret.name.clone(),
            SEED_SECRET_TARGET.to_string(),
        )),
        mounts: Vec::new(),
        network: None,
        labels: labels::helper(new_id, version::VERSION),
    }
}

/// The join agent's `check` on `node`, through replica `via` (the seed's own when `None`).
pub async fn check(
    engine: &Engine,
    seed: &Seed,
    new_id: &ReplicaId,
    node: &str,
    via: Option<&ReplicaId>,
) -> Result<JoinCheck> {
    let mut task = agent_task(seed, new_id, node, "check");
    task.network = Some(OVERLAY_NETWORK.to_string());
    if let Some(v) = via {
        task.command.extend(["--via".to_string(), v.to_string()]);
    }
    let out = engine.run_task(&task, AGENT_TIMEOUT).await?;
    let line = out.stdout.lines().rev().find(|l| l.starts_with('{'));
    match line.map(serde_json::from_str::<JoinCheck>) {
        Some(Ok(check)) if out.exit_code == 0 => Ok(check),
        _ => Err(Error::ClusterCommand {
            command: "dtr join-agent check".into(),
            container: format!("service {} on node {node}", task.name),
            output: format!("{}{}", out.stdout, out.stderr).trim().to_string(),
        }),
    }
}

/// The join agent's `seed` on `node`: the cluster's shared files into the new replica's dtr-ca
/// volume, for its phase 2.
pub async fn stage(engine: &Engine, seed: &Seed, new_id: &ReplicaId, node: &str) -> Result<()> {
    let mut task = agent_task(seed, new_id, node, "seed");
    task.mounts = vec![MountSpec {
        source: format!("dtr-ca-{new_id}"),
        target: CA_MOUNT.to_string(),
        read_only: false,
        bind: false,
    }];
    let out = engine.run_task(&task, AGENT_TIMEOUT).await?;
    if out.exit_code != 0 {
        return Err(Error::ClusterCommand {
            command: "dtr join-agent seed".into(),
            container: format!("service {} on node {node}", task.name),
            output: format!("{}{}", out.stdout, out.stderr).trim().to_string(),
        });
    }
    Ok(())
}
