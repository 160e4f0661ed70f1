//! `dtr install`: preflight, plan, then apply — networks and volumes, certificates in phase 2
//! while the eight containers are created, the containers started in dependency order —
//! verify `/_ping` through nginx, register the replica (its record in etcd, the cluster's
//! seed as a swarm secret), and report. Any failure or Ctrl-C removes what this run
//! created.

use dtr_core::contract::phase2::{CertResult, Phase2Secrets};
use dtr_core::options::InstallOptions;

use crate::engine::apply::Apply;
use crate::engine::Target;
use crate::error::Result;
use crate::ops::preflight::PreflightRequest;
use crate::ops::steps;
use crate::plan::{self, InstallPlan};
use crate::report::Reporter;

pub struct InstallReport {
    pub plan: InstallPlan,
    pub certs: CertResult,
}

pub async fn install(
    target: &Target,
    opts: InstallOptions,
    reporter: &Reporter,
) -> Result<InstallReport> {
    let engine = steps::connect(target, reporter).await?;
    let (engine, facts) =
        steps::preflight(&engine, &PreflightRequest::install(&opts), reporter).await?;
    let plan = plan::install_plan(&opts, &facts);
    reporter.info(format!(
        "installing replica {} of dtr {} on node {}",
        plan.replica_id, plan.version, plan.node
    ));
    steps::log_plan(reporter, &plan);

    let secrets = Phase2Secrets {
        user_key: opts.tls.as_ref().map(|t| t.key_pem.clone()),
        admin: Some(opts.admin.handover()),
        seed: Vec::new(),
    };
    let apply = Apply::new(&engine, reporter);
    let certs = apply
        .run(
            "install",
            steps::naming_storage(&opts.storage, &plan.replica_id, async {
                steps::networks(&apply, &plan).await?;
                steps::volumes(&apply, &plan).await?;
                let certs =
                    steps::certificates_and_containers(&apply, &plan, &secrets, "phase 2").await?;
                apply.start_in_order(&plan.containers).await?;
                steps::verify(&engine, &plan, reporter).await?;
                steps::register(&engine, &plan, reporter).await?;
                Ok(certs)
            }),
        )
        .await?;
    Ok(InstallReport { plan, certs })
}
