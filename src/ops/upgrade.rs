//! `dtr upgrade`: today, the decision only. It reads the version every replica runs (the
//! `com.docker.dtr.version` label of its containers) and applies `version_rules::decide` to the
//! move to this bootstrapper's version: the same version is "nothing to do", a move the rules
//! refuse is refused with the path to take instead, and an allowed move answers that the
//! rolling replacement of the replicas is not available yet in this version. Nothing is changed
//! in any case.

use std::collections::BTreeSet;

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::ops::cluster::{self, Chooser};
use crate::options::ReplicaId;
use crate::report::Reporter;
use crate::version;
use crate::version_rules::{self, Verdict};

pub struct UpgradeReport {
    pub existing: ReplicaId,
    pub version: String,
}

pub async fn upgrade(
    existing: Option<ReplicaId>,
    choose: Chooser<'_>,
    reporter: &Reporter,
) -> Result<UpgradeReport> {
    let step = reporter.step("connect to the Docker engine");
    let engine = Engine::connect().await?;
    step.done(&engine.host);

    let replicas = cluster::replicas(&engine).await?;
    // no replica at all: pick_replica says so, naming none
    let existing = cluster::pick_replica(&replicas, existing, |_| true, |v| v.healthy(), choose)?;
    let versions: BTreeSet<&str> = replicas.values().map(|v| v.version.as_str()).collect();
    let lowest = versions
        .iter()
        .min_by(
            |a, b| match (semver::Version::parse(a), semver::Version::parse(b)) {
                (Ok(a), Ok(b)) => a.cmp_precedence(&b),
                _ => a.cmp(b),
            },
        )
        .copied()
        .unwrap_or_default()
        .to_string();
    let refused = |reasons: Vec<String>, hint: String| Error::Refused {
        operation: "upgrade",
        reasons,
        hint,
    };
    match version_rules::decide_str(&lowest, version::VERSION) {
        Verdict::Same if versions.len() == 1 => Ok(UpgradeReport {
            existing,
            version: lowest,
        }),
        Verdict::Refused { reason, next } => Err(refused(vec![reason], next)),
        _ => Err(Error::NotImplemented {
            what: format!(
                "the move from dtr {} to {} is allowed by the upgrade rules, but replacing the replicas' containers (the rolling upgrade)",
                versions.iter().copied().collect::<Vec<_>>().join(", "),
                version::VERSION
            ),
            hint: format!(
                "keep the cluster on {lowest}; nothing was changed"
            ),
        }),
    }
}
