//! The cluster-membership commands at the terminal: `join`, `remove`, `emergency-repair` and
//! `status`. Flags are validated here, pick-lists and confirmations asked here (only on a
//! terminal); the work is in `ops::{join, remove, repair, cluster}`.

use super::args::{
    EmergencyRepairArgs, JoinArgs, ReconfigureArgs, RemoveArgs, StatusArgs, UpgradeArgs,
};
use super::{convert, prompt, runtime};
use crate::error::{Error, Result};
use crate::options::ReplicaId;
use crate::report::Reporter;

/// A pick-list on a terminal; without one, the flag is reported missing.
pub(super) fn chooser<'a>(
    interactive: bool,
    label: &'a str,
    flag: &'static str,
    env: &'static str,
) -> impl Fn(&[String], usize) -> Result<ReplicaId> + 'a {
    move |ids: &[String], default: usize| {
        if !interactive {
            return Err(Error::MissingInput {
                missing: vec![(flag, env)],
            });
        }
        ReplicaId::parse(&prompt::pick_default(label, ids, default)?)
    }
}

pub fn join(a: JoinArgs, reporter: &Reporter) -> Result<()> {
    let opts = crate::ops::join::JoinOptions {
        existing: convert::replica_id_opt(&a.existing_replica_id)?,
        replica_id: convert::new_replica_id(&a.replica.replica_id)?,
        node: a.replica.ucp_node.clone().filter(|n| !n.is_empty()),
        http_port: convert::port("--replica-http-port", a.replica.replica_http_port)?,
        https_port: convert::port("--replica-https-port", a.replica.replica_https_port)?,
        db_cache_mb: convert::cache_mb(a.replica.replica_rethinkdb_cache_mb)?,
        skip_network_test: a.skip_network_test,
        unsafe_join: a.unsafe_join,
        ignore_checks: crate::ops::preflight::ignorable(
            a.replica.ignore_preflight_errors.as_deref(),
        )?,
    };
    let choose = chooser(
        prompt::interactive(),
        "Choose a replica to join to",
        "--existing-replica-id",
        "DTR_REPLICA_ID",
    );
    let report = runtime().block_on(crate::ops::join::join(opts, &choose, reporter))?;
    reporter.info(format!(
        "Join is complete ({:.1}s): replica {} joined through {}; the cluster has {} replicas",
        reporter.elapsed().as_secs_f64(),
        report.plan.replica_id,
        report.existing,
        report.replicas_after
    ));
    reporter.info(format!(
        "Replica {} serves https://{} (HTTP port {})",
        report.plan.replica_id, report.plan.external_authority, report.plan.http_port
    ));
    Ok(())
}

pub fn remove(a: RemoveArgs, reporter: &Reporter) -> Result<()> {
    let interactive = prompt::interactive();
    let mut ids = convert::replica_ids(&a.replica_ids, &a.replica_id)?;
    if ids.is_empty() {
        if !interactive {
            return Err(Error::MissingInput {
                missing: vec![("--replica-ids", "DTR_REMOVE_REPLICA_IDS")],
            });
        }
        let existing = runtime().block_on(async {
            let engine = crate::engine::Engine::connect().await?;
            crate::ops::destroy::replicas(&engine).await
        })?;
        ids.push(ReplicaId::parse(&prompt::pick(
            "replica-ids (The IDs of the replicas to remove)",
            &existing,
        )?)?);
    }
    if a.replica_id.is_some() {
        reporter.warn("--replica-id is deprecated for remove: use --replica-ids");
    }
    let opts = crate::ops::remove::RemoveOptions {
        existing: convert::replica_id_opt(&a.existing_replica_id)?,
        remove: ids,
        force: a.force,
    };
    let choose = chooser(
        interactive,
        "existing-replica-id (A healthy replica that stays)",
        "--existing-replica-id",
        "DTR_REPLICA_ID",
    );
    let report = runtime().block_on(crate::ops::remove::remove(opts, &choose, reporter))?;
    for k in &report.kept {
        reporter.info(format!("kept {k}"));
    }
    if !report.left_behind.is_empty() {
        return Err(Error::Role(format!(
            "the replicas left the cluster, but some objects could not be removed: {}",
            report.left_behind.join("; ")
        )));
    }
    reporter.info(format!(
        "Removed replica(s) {} ({:.1}s); the cluster goes on through {}",
        report
            .removed
            .iter()
            .map(ReplicaId::as_str)
            .collect::<Vec<_>>()
            .join(", "),
        reporter.elapsed().as_secs_f64(),
        report.existing
    ));
    Ok(())
}

pub fn repair(a: EmergencyRepairArgs, reporter: &Reporter) -> Result<()> {
    crate::options::Subnet::parse(&a.overlay_subnet)?;
    let interactive = prompt::interactive();
    let yes = a.yes;
    let prune = a.prune;
    let confirm = move |survivor: &ReplicaId, others: &[ReplicaId]| {
        if yes {
            return Ok(true);
        }
        if !interactive {
            return Err(Error::MissingInput {
                missing: vec![("--yes", "YES")],
            });
        }
        let list = others
            .iter()
            .map(ReplicaId::as_str)
            .collect::<Vec<_>>()
            .join(", ");
        prompt::confirm(&format!(
            "Make replica {survivor} a one-replica cluster? Replicas {list} are stopped and can never rejoin{}",
            if prune { "; their volumes are deleted (--prune)" } else { "" }
        ))
    };
    let opts = crate::ops::repair::RepairOptions {
        existing: convert::replica_id_opt(&a.existing_replica_id)?,
        prune,
    };
    let choose = chooser(
        interactive,
        "existing-replica-id (The replica to keep)",
        "--existing-replica-id",
        "DTR_REPLICA_ID",
    );
    let report = runtime().block_on(crate::ops::repair::repair(
        opts, &choose, &confirm, reporter,
    ))?;
    reporter.info(format!(
        "Emergency repair is complete ({:.1}s): replica {} is a one-replica cluster with all its data",
        reporter.elapsed().as_secs_f64(),
        report.survivor
    ));
    if !report.others.is_empty() && !report.pruned {
        reporter.info(format!(
            "replicas {} are stopped and marked removed; delete them with `dtr destroy --replica-id <id>`",
            report
                .others
                .iter()
                .map(ReplicaId::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    reporter.info(format!(
        "Grow the cluster again with: dtr join --existing-replica-id {} (to 3, 5 or 7 replicas)",
        report.survivor
    ));
    Ok(())
}

pub fn status(a: StatusArgs) -> Result<()> {
    let view = runtime().block_on(async {
        let engine = crate::engine::Engine::connect().await?;
        crate::ops::cluster::ClusterView::read(&engine).await
    })?;
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&view).expect("serializable")
        );
        return Ok(());
    }
    println!(
        "{:<14} {:<8} {:<11} {:<22} {:<26} PROBLEMS",
        "REPLICA", "VERSION", "PORTS", "ETCD", "DATABASE"
    );
    for (rid, r) in &view.replicas {
        let ports = match (r.https_port, r.http_port) {
            (Some(s), Some(h)) => format!("{s}/{h}"),
            _ => "-".into(),
        };
        let problems = r.problems();
        println!(
            "{:<14} {:<8} {:<11} {:<22} {:<26} {}",
            rid.as_str(),
            r.version,
            ports,
            view.etcd_role(rid),
            view.db_role(rid),
            if problems.is_empty() {
                "-".to_string()
            } else {
                problems.join("; ")
            }
        );
    }
    match view.quorum() {
        Some(q) => println!(
            "etcd quorum: {} ({} of {} voting members healthy, {} needed); database primary: {}",
            if q.holds() { "yes" } else { "LOST" },
            q.healthy,
            q.voting,
            q.needed(),
            view.db_leader().unwrap_or_else(|| "none".into())
        ),
        None => println!("etcd: no member answered"),
    }
    Ok(())
}

/// `dtr upgrade`: the version rules' verdict (the rolling replacement is not there yet).
pub fn upgrade(a: UpgradeArgs, reporter: &Reporter) -> Result<()> {
    use crate::ops::upgrade::UpgradeReport;
    let choose = chooser(
        prompt::interactive(),
        "existing-replica-id (A healthy replica to drive the upgrade from)",
        "--existing-replica-id",
        "DTR_REPLICA_ID",
    );
    let opts = crate::ops::upgrade::UpgradeOptions {
        existing: convert::replica_id_opt(&a.existing_replica_id)?,
        max_wait: convert::go_duration("--max-wait", &a.max_wait)?,
    };
    if a.no_image_check {
        reporter.info("--no-image-check is accepted for the original's scripts: this upgrade runs no schema-v1 manifest scan");
    }
    match runtime().block_on(crate::ops::upgrade::upgrade(opts, &choose, reporter))? {
        UpgradeReport::NothingToDo { existing, version } => reporter.info(format!(
            "Every replica already runs dtr {version}: nothing to do (checked through replica {existing})"
        )),
        UpgradeReport::Upgraded {
            from,
            to,
            resumed,
            replicas,
            migration,
        } => {
            for (r, took) in &replicas {
                reporter.info(format!("  replica {r}: {:.1}s", took.as_secs_f64()));
            }
            if let Some((job, before, after)) = migration {
                reporter.info(format!(
                    "  schema migrated from version {before} to {after} by metadatastoremigration job {job}"
                ));
            }
            reporter.info(format!(
                "Upgrade from {from} to {to} is complete{} ({} replica(s))",
                if resumed { ", continued from an interrupted run" } else { "" },
                replicas.len()
            ));
        }
    }
    Ok(())
}

pub fn reconfigure(a: ReconfigureArgs, reporter: &Reporter) -> Result<()> {
    let changes = convert::reconfigure(&a)?;
    let choose = chooser(
        prompt::interactive(),
        "existing-replica-id (A healthy replica to reconfigure through; its ports and cache are the ones changed)",
        "--existing-replica-id",
        "DTR_REPLICA_ID",
    );
    let report = runtime().block_on(crate::ops::reconfigure::reconfigure(
        convert::replica_id_opt(&a.existing_replica_id)?,
        changes,
        &choose,
        reporter,
    ))?;
    for (r, names) in &report.changed {
        reporter.info(format!(
            "  replica {r}: {}",
            if names.is_empty() {
                "unchanged".to_string()
            } else {
                names.join(", ")
            }
        ));
    }
    reporter.info(format!(
        "Reconfiguration is complete (through replica {})",
        report.existing
    ));
    Ok(())
}
