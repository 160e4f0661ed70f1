//! The cluster-membership commands at the terminal: `join`, `remove`, `emergency-repair` and
//! `status`. Flags are validated here, pick-lists and confirmations asked here (only on a
//! terminal, as closures the operations call); the work is in `ops::{join, remove, repair,
//! cluster}`.

use super::args::{EmergencyRepairArgs, JoinArgs, RemoveArgs, StatusArgs};
use super::{convert, prompt, runtime};
use dtr_bootstrap::engine::Target;
use dtr_bootstrap::error::{Error, Result};
use dtr_bootstrap::report::Reporter;
use dtr_core::options::ReplicaId;

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
        Ok(ReplicaId::parse(&prompt::pick_default(
            label, ids, default,
        )?)?)
    }
}

pub fn join(a: JoinArgs, target: &Target, reporter: &Reporter) -> Result<()> {
    let opts = dtr_bootstrap::ops::join::JoinOptions {
        existing: convert::existing_replica_id(&a.existing_replica_id)?,
        replica_id: convert::new_replica_id(&a.replica.replica_id)?,
        node: a.replica.ucp_node.clone().filter(|n| !n.is_empty()),
        http_port: convert::port("--replica-http-port", a.replica.replica_http_port)?,
        https_port: convert::port("--replica-https-port", a.replica.replica_https_port)?,
        db_cache_mb: convert::cache_mb(a.replica.replica_rethinkdb_cache_mb)?,
        skip_network_test: a.skip_network_test,
        nfs: match convert::nonempty(&a.nfs_storage_url) {
            Some(url) => Some(dtr_core::options::NfsStorage::parse(
                &url,
                a.nfs_options.as_deref(),
                a.async_nfs,
            )?),
            None if a.nfs_options.is_some() || a.async_nfs => {
                return Err(Error::invalid(
                    "--nfs-options",
                    "(given)",
                    "it goes with --nfs-storage-url",
                ))
            }
            None => None,
        },
        unsafe_join: a.unsafe_join,
        ignore_checks: dtr_bootstrap::ops::preflight::ignorable(
            a.replica.ignore_preflight_errors.as_deref(),
        )?,
    };
    let choose = chooser(
        prompt::interactive(),
        "Choose a replica to join to",
        "--existing-replica-id",
        "DTR_REPLICA_ID",
    );
    let report = runtime().block_on(dtr_bootstrap::ops::join::join(
        target, opts, &choose, reporter,
    ))?;
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

pub fn remove(a: RemoveArgs, target: &Target, reporter: &Reporter) -> Result<()> {
    let interactive = prompt::interactive();
    let ids = convert::replica_ids(&a.replica_ids, &a.replica_id)?;
    if ids.is_empty() && !interactive {
        return Err(Error::MissingInput {
            missing: vec![("--replica-ids", "DTR_REMOVE_REPLICA_IDS")],
        });
    }
    let pick = |existing: &[String]| {
        Ok(ReplicaId::parse(&prompt::pick(
            "replica-ids (The IDs of the replicas to remove)",
            existing,
        )?)?)
    };
    if a.replica_id.is_some() {
        reporter.warn("--replica-id is deprecated for remove: use --replica-ids");
    }
    let opts = dtr_bootstrap::ops::remove::RemoveOptions {
        existing: convert::existing_replica_id(&a.existing_replica_id)?,
        remove: ids,
        force: a.force,
    };
    let choose = chooser(
        interactive,
        "existing-replica-id (A healthy replica that stays)",
        "--existing-replica-id",
        "DTR_REPLICA_ID",
    );
    let report = runtime().block_on(dtr_bootstrap::ops::remove::remove(
        target, opts, &pick, &choose, reporter,
    ))?;
    for k in &report.kept {
        reporter.info(format!("kept {k}"));
    }
    for u in &report.unreachable {
        reporter.warn(u);
    }
    if !report.left_behind.is_empty() {
        return Err(Error::LeftBehind {
            operation: "remove",
            objects: report.left_behind,
        });
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

pub fn repair(a: EmergencyRepairArgs, target: &Target, reporter: &Reporter) -> Result<()> {
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
    let opts = dtr_bootstrap::ops::repair::RepairOptions {
        existing: convert::existing_replica_id(&a.existing_replica_id)?,
        prune,
        overlay_subnet: dtr_core::options::Subnet::parse(&a.overlay_subnet)?,
    };
    let choose = chooser(
        interactive,
        "existing-replica-id (The replica to keep)",
        "--existing-replica-id",
        "DTR_REPLICA_ID",
    );
    let report = runtime().block_on(dtr_bootstrap::ops::repair::repair(
        target, opts, &choose, &confirm, reporter,
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

pub fn status(a: StatusArgs, target: &Target) -> Result<()> {
    let view = runtime().block_on(dtr_bootstrap::ops::cluster::status(target))?;
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&view).expect("serializable")
        );
        return Ok(());
    }
    println!(
        "{:<14} {:<16} {:<8} {:<11} {:<22} {:<26} PROBLEMS",
        "REPLICA", "NODE", "VERSION", "PORTS", "ETCD", "DATABASE"
    );
    for (rid, r) in &view.replicas {
        let ports = match (r.https_port, r.http_port) {
            (Some(s), Some(h)) => format!("{s}/{h}"),
            _ => "-".into(),
        };
        let problems = r.problems();
        let node = match (&r.node, r.here()) {
            (Some(n), true) => n.clone(),
            (Some(n), false) => format!("{n} (remote)"),
            (None, true) => "-".into(),
            (None, false) => "? (remote)".into(),
        };
        println!(
            "{:<14} {:<16} {:<8} {:<11} {:<22} {:<26} {}",
            rid.as_str(),
            node,
            if r.version.is_empty() {
                "?"
            } else {
                &r.version
            },
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
