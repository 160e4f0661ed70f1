//! `dtr install`: preflight, plan, then apply — volumes and networks, certificates in phase 2,
//! the eight containers in dependency order — verify `/_ping` through nginx, and report.
//! Any failure or Ctrl-C removes what this run created.

use std::time::Duration;

use crate::components::Component;
use crate::engine::apply::Apply;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::ops::{interruptible, preflight};
use crate::options::InstallOptions;
use crate::plan::{self, InstallPlan};
use crate::report::Reporter;
use crate::roles::phase2::{CertResult, Phase2Secrets};

pub struct InstallReport {
    pub plan: InstallPlan,
    pub certs: CertResult,
}

pub async fn install(opts: InstallOptions, reporter: &Reporter) -> Result<InstallReport> {
    let step = reporter.step("connect to the Docker engine");
    let engine = Engine::connect().await?;
    step.done(&engine.host);

    let step = reporter.step("preflight checks");
    let facts = match preflight::replica_interruptible(
        &engine,
        &preflight::PreflightRequest::install(&opts),
        reporter,
    )
    .await
    {
        Ok(f) => f,
        Err(e) => {
            step.fail("see below");
            return Err(e);
        }
    };
    step.done(format!("node {}", facts.node));
    // through MKE, every container of the replica goes to that node
    let engine = engine.placed_on(&facts.node);

    let plan = plan::install_plan(&opts, &facts);
    reporter.info(format!(
        "installing replica {} of dtr {} on node {}",
        plan.replica_id, plan.version, plan.node
    ));
    if reporter.is_debug() {
        // The plan holds no secret: the user's key is not part of it.
        reporter.debug(format!(
            "plan: {}",
            serde_json::to_string(&plan).unwrap_or_default()
        ));
    }

    let apply = Apply::new(&engine, reporter);
    let secrets = Phase2Secrets {
        user_key: opts.tls.as_ref().map(|t| t.key_pem.clone()),
        admin: Some(opts.admin.handover()),
        seed: Vec::new(),
    };
    let result = interruptible(async {
        let step = reporter.step("networks");
        let made = apply.networks(&plan.networks).await?;
        step.done(if made.is_empty() {
            "reusing dtr-ol and dtr-br".to_string()
        } else {
            format!("created {}", made.join(", "))
        });

        let step = reporter.step("volumes");
        let (made, reused) = apply.volumes(&plan.volumes).await?;
        let mut detail = format!("created {}", made.len());
        if !reused.is_empty() {
            detail.push_str(&format!(", reused {}", reused.join(", ")));
        }
        step.done(detail);

        // Phase 2 writes the certificates while the containers are being created.
        let step = reporter.step("certificates (phase 2) and containers");
        let (certs, ()) = tokio::try_join!(
            apply.phase2_certs(&plan.phase2, &secrets),
            apply.create_containers(&plan.containers)
        )?;
        step.done(if certs.reused_ca {
            "reused the CA in the dtr-ca volume"
        } else {
            "new cluster CA"
        });

        apply.start_in_order(&plan.containers).await?;

        let step = reporter.step("verify /_ping through nginx");
        verify_ping(
            &engine,
            &plan.replica_id,
            plan.phase2.request.user_cert.is_some(),
        )
        .await?;
        step.done("all components healthy");
        Ok(certs)
    })
    .await;

    match result {
        Ok(certs) => Ok(InstallReport { plan, certs }),
        Err(cause) => Err(apply.roll_back("install", cause).await),
    }
}

/// The whole chain, as a client sees it: nginx's TLS, routing to the api, and the api's view of
/// every component. Checked from inside the nginx container, so it also works when dtr itself runs
/// in a container without a route to the host's ports.
pub(crate) async fn verify_ping(
    engine: &Engine,
    replica: &crate::options::ReplicaId,
    user_cert: bool,
) -> Result<()> {
    let nginx = Component::Nginx.container_name(replica);
    // A certificate the user brought need not name localhost: then only the routing is checked.
    let trust = if user_cert {
        vec!["-k"]
    } else {
        vec!["--cacert", "/ca/external/ca.pem"]
    };
    let cmd: Vec<String> = [
        "curl",
        "-sS",
        "--max-time",
        "5",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
    ]
    .into_iter()
    .chain(trust)
    .chain(["https://localhost:8443/_ping"])
    .map(str::to_string)
    .collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let out = engine.exec(&nginx, &cmd).await?;
        if out.exit_code == 0 && out.output.trim_end().ends_with("200") {
            return Ok(());
        }
        if std::time::Instant::now() >= deadline {
            let body_cmd: Vec<String> = [
                "curl",
                "-sS",
                "-k",
                "--max-time",
                "5",
                "https://localhost:8443/_ping",
            ]
            .map(str::to_string)
            .to_vec();
            let body = engine
                .exec(&nginx, &body_cmd)
                .await
                .map(|o| o.output)
                .unwrap_or_default();
            return Err(Error::Unhealthy {
                container: format!("{nginx} (GET /_ping)"),
                waited: Duration::from_secs(30),
                last_output: format!("HTTP {}: {}", out.output.trim(), body.trim()),
                logs: engine.logs(&nginx, 10).await,
            });
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
