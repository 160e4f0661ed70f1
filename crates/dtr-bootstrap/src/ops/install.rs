//! `dtr install`: preflight, plan, then apply — networks and volumes, certificates in phase 2
//! while the eight containers are created, the containers started in dependency order —
//! verify `/_ping` through nginx, remove the first administrator's hand-over file, register
//! the replica (its record in etcd, the cluster's seed as a swarm secret), and report. Any
//! failure or Ctrl-C removes what this run created.

use dtr_core::contract::phase2::{CertResult, Phase2Secrets};
use dtr_core::contract::CA_MOUNT;
use dtr_core::options::{InstallOptions, ReplicaId};
use dtr_core::version;

use crate::engine::apply::Apply;
use crate::engine::{Engine, Target};
use crate::error::{Error, Result};
use crate::ops::preflight::PreflightRequest;
use crate::ops::steps;
use crate::plan::{self, labels, InstallPlan, MountSpec, OneShotNetwork, OneShotSpec};
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
                forget_handover(&engine, &plan.replica_id, reporter).await?;
                steps::register(&engine, &plan, reporter).await?;
                Ok(certs)
            }),
        )
        .await?;
    Ok(InstallReport { plan, certs })
}

/// Where phase 2 leaves the first administrator (name and argon2 hash) for the api.
const HANDOVER: &str = "api/admin.json";

/// A throw-away container that removes the hand-over file from the replica's dtr-ca volume
/// (every component mounts it read-only).
pub fn forget_handover_spec(replica: &ReplicaId) -> OneShotSpec {
    OneShotSpec {
        name: format!("dtr-forget-handover-{replica}"),
        image: version::bootstrapper_image(),
        entrypoint: Some(vec![
            "rm".into(),
            "-f".into(),
            format!("{CA_MOUNT}/{HANDOVER}"),
        ]),
        command: Vec::new(),
        user: None,
        labels: labels::helper(replica, version::VERSION),
        network: OneShotNetwork::None,
        mounts: vec![MountSpec {
            source: plan::volume_name("ca", replica),
            target: CA_MOUNT.into(),
            read_only: false,
            bind: false,
        }],
        ports: Vec::new(),
    }
}

/// Once the api is healthy it has made the first administrator from the hand-over file; the
/// file goes, so that the hash is in no volume or backup and an empty account table later
/// makes no administrator again.
async fn forget_handover(engine: &Engine, replica: &ReplicaId, reporter: &Reporter) -> Result<()> {
    let step = reporter.step("remove the first administrator's hand-over file");
    let out = engine
        .run_once(&forget_handover_spec(replica), None)
        .await?;
    if out.exit_code != 0 {
        let spec = forget_handover_spec(replica);
        let e = Error::ClusterCommand {
            command: format!("rm -f {CA_MOUNT}/{HANDOVER}"),
            container: spec.name,
            output: format!("{}{}", out.stdout, out.stderr).trim().to_string(),
        };
        step.fail(e.summary());
        return Err(e);
    }
    step.done("the api made the account");
    Ok(())
}
