//! The steps the operations are made of, each written once and named as the progress output
//! names it: connect, preflight, log the plan, networks, volumes, certificates and containers,
//! verify. An operation reads as a short list of these (see `install`).

use std::time::Duration;

use dtr_core::component::{Component, NGINX_HTTPS_PORT};
use dtr_core::contract::phase2::{CertResult, Phase2Secrets};
use dtr_core::options::{ReplicaId, Storage};

use crate::engine::apply::Apply;
use crate::engine::{Engine, Target};
use crate::error::{DockerFailure, Error, Result};
use crate::ops::preflight::{self, PreflightRequest};
use crate::plan::{InstallPlan, TargetFacts};
use crate::report::Reporter;

/// Connects to the engine the CLI chose (the local one or MKE).
pub async fn connect(target: &Target, reporter: &Reporter) -> Result<Engine> {
    let step = reporter.step("connect to the Docker engine");
    let engine = Engine::connect(target)
        .await?
        .traced(reporter.debug_trace());
    step.done(&engine.host);
    Ok(engine)
}

/// The preflight of a new replica (install, join, restore). Returns what was learnt about its
/// node, and the engine placing every container of the replica on that node (through MKE).
pub async fn preflight(
    engine: &Engine,
    request: &PreflightRequest,
    reporter: &Reporter,
) -> Result<(Engine, TargetFacts)> {
    let step = reporter.step("preflight checks");
    match preflight::run_interruptible(engine, request, reporter).await {
        Ok(facts) => {
            step.done(format!("node {}", facts.node));
            Ok((engine.placed_on(&facts.node), facts))
        }
        Err(e) => {
            // the failures follow in the final message
            step.fail("see below");
            Err(e)
        }
    }
}

/// With `--debug`, the whole plan as JSON. It holds no secret: keys and passwords travel to
/// phase 2 as files, never in the plan.
pub fn log_plan(reporter: &Reporter, plan: &InstallPlan) {
    if reporter.is_debug() {
        reporter.debug(format!(
            "plan: {}",
            serde_json::to_string(plan).unwrap_or_default()
        ));
    }
}

/// `dtr-ol` and `dtr-br`, created when absent.
pub async fn networks(apply: &Apply<'_>, plan: &InstallPlan) -> Result<()> {
    let step = apply.reporter.step("networks");
    let made = apply.networks(&plan.networks).await?;
    step.done(if made.is_empty() {
        "reusing dtr-ol and dtr-br".to_string()
    } else {
        format!("created {}", made.join(", "))
    });
    Ok(())
}

/// The replica's volumes, created when absent (an existing one is reused as it is).
pub async fn volumes(apply: &Apply<'_>, plan: &InstallPlan) -> Result<()> {
    let step = apply.reporter.step("volumes");
    let (made, reused) = apply.volumes(&plan.volumes).await?;
    let mut detail = format!("created {}", made.len());
    if !reused.is_empty() {
        detail.push_str(&format!(", reused {}", reused.join(", ")));
    }
    step.done(detail);
    Ok(())
}

/// Phase 2 writes the certificates while the eight containers are created (not started).
/// `how` says which CA signs them, for the progress line (`phase 2, signed by the cluster CA`).
pub async fn certificates_and_containers(
    apply: &Apply<'_>,
    plan: &InstallPlan,
    secrets: &Phase2Secrets,
    how: &str,
) -> Result<CertResult> {
    let step = apply
        .reporter
        .step(format!("certificates ({how}) and containers"));
    // both run to their end: phase 2 removes its container itself, which a dropped future
    // would not
    let (certs, created) = tokio::join!(
        apply.phase2_certs(&plan.phase2, secrets),
        apply.create_containers(&plan.containers)
    );
    created?;
    let certs = certs?;
    step.done(if certs.reused_ca {
        "reused the CA in the dtr-ca volume"
    } else {
        "new cluster CA"
    });
    Ok(certs)
}

/// `work`, with a failure to mount the NFS export of `storage` named as such (the engine
/// mounts a volume when a container using it is created or started).
pub async fn naming_storage<T>(
    storage: &Storage,
    replica: &ReplicaId,
    work: impl std::future::Future<Output = Result<T>>,
) -> Result<T> {
    work.await.map_err(|e| explain_storage(e, storage, replica))
}

/// A failure to mount the NFS export of `storage` (creating or starting a container that
/// uses its volume), named as such (which export, which volume); any other error unchanged.
pub fn explain_storage(e: Error, storage: &Storage, replica: &ReplicaId) -> Error {
    let Storage::Nfs(nfs) = storage else {
        return e;
    };
    if !e.is_docker(DockerFailure::MountFailed) {
        return e;
    }
    Error::NfsMount {
        url: nfs.url.clone(),
        volume: crate::plan::volume_name("nfs-registry", replica),
        reason: e.summary(),
    }
}

/// The whole chain, as a client sees it: nginx's TLS, routing to the api, and the api's view of
/// every component (`/_ping` answers 200). Checked from inside the nginx container, so it also
/// works when dtr itself runs in a container without a route to the host's ports.
pub async fn verify(engine: &Engine, plan: &InstallPlan, reporter: &Reporter) -> Result<()> {
    let step = reporter.step("verify /_ping through nginx");
    verify_ping(
        engine,
        &plan.replica_id,
        plan.phase2.request.user_cert.is_some(),
    )
    .await?;
    step.done("all components healthy");
    Ok(())
}

/// `verify` without its progress line (upgrade and reconfigure report it as part of a replica).
pub(crate) async fn verify_ping(
    engine: &Engine,
    replica: &ReplicaId,
    user_cert: bool,
) -> Result<()> {
    let nginx = Component::Nginx.container_name(replica);
    let url = format!("https://localhost:{NGINX_HTTPS_PORT}/_ping");
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
    .chain([url.as_str()])
    .map(str::to_string)
    .collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let out = engine.exec(&nginx, &cmd).await?;
        if out.exit_code == 0 && out.output.trim_end().ends_with("200") {
            return Ok(());
        }
        if std::time::Instant::now() >= deadline {
            let body_cmd: Vec<String> = ["curl", "-sS", "-k", "--max-time", "5", url.as_str()]
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
                // /_ping names the failing components; the api logs why
                logs: engine
                    .logs(&Component::Api.container_name(replica), 10)
                    .await,
            });
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Records the replica in etcd (its node and ports, `contract::cluster`) and publishes the
/// cluster's seed, so that replicas can join from other nodes. A seed that cannot be published
/// (an engine that is not a manager, MKE refusing secrets) is a warning: the replica itself is
/// fine, and `reconfigure` publishes it later.
pub async fn register(engine: &Engine, plan: &InstallPlan, reporter: &Reporter) -> Result<()> {
    let step = reporter.step("register the replica");
    let record = crate::ops::join::replica_record(plan);
    crate::ops::cluster::record_replica(engine, &plan.replica_id, &record).await?;
    let published = match crate::ops::seed::publish(engine, &plan.replica_id, reporter).await {
        Ok(Some(s)) => format!(
            "on node {}; seed of cluster {} published",
            plan.node, s.cluster
        ),
        Ok(None) => format!("on node {}; seed not published", plan.node),
        Err(e) => {
            reporter.warn(format!(
                "the cluster's seed could not be published ({}): joins from other nodes need it; run `dtr reconfigure --existing-replica-id {}` to publish it",
                e.summary(),
                plan.replica_id
            ));
            format!("on node {}; seed not published", plan.node)
        }
    };
    step.done(published);
    Ok(())
}
