//! `upgrade` and `reconfigure` at the terminal: the flags checked, the replica to drive them
//! through asked for on a terminal; the work is in `ops::{upgrade, reconfigure}`.

use super::args::{ReconfigureArgs, UpgradeArgs};
use super::ha::chooser;
use super::{convert, prompt, runtime};
use dtr_bootstrap::engine::Target;
use dtr_bootstrap::error::Result;
use dtr_bootstrap::report::Reporter;

/// `dtr upgrade`: every replica moved to this version under the version rules, one at a time.
pub fn upgrade(a: UpgradeArgs, target: &Target, reporter: &Reporter) -> Result<()> {
    use dtr_bootstrap::ops::upgrade::UpgradeReport;
    let choose = chooser(
        prompt::interactive(),
        "existing-replica-id (A healthy replica to drive the upgrade from)",
        "--existing-replica-id",
        "DTR_REPLICA_ID",
    );
    let opts = dtr_bootstrap::ops::upgrade::UpgradeOptions {
        existing: convert::existing_replica_id(&a.existing_replica_id)?,
        max_wait: convert::go_duration("--max-wait", &a.max_wait)?,
    };
    if a.no_image_check {
        reporter.info("--no-image-check is accepted for the original's scripts: this upgrade runs no schema-v1 manifest scan");
    }
    match runtime().block_on(dtr_bootstrap::ops::upgrade::upgrade(target, opts, &choose, reporter))? {
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

/// `dtr reconfigure`: the settings given, applied replica by replica.
pub fn reconfigure(a: ReconfigureArgs, target: &Target, reporter: &Reporter) -> Result<()> {
    let changes = convert::reconfigure(&a)?;
    let choose = chooser(
        prompt::interactive(),
        "existing-replica-id (A healthy replica to reconfigure through; its ports and cache are the ones changed)",
        "--existing-replica-id",
        "DTR_REPLICA_ID",
    );
    let report = runtime().block_on(dtr_bootstrap::ops::reconfigure::reconfigure(
        target,
        convert::existing_replica_id(&a.existing_replica_id)?,
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
