//! Every error as a person reads it, pinned: one sample of each variant, rendered.

use std::time::Duration;

use dtr_core::InputError;

use super::render;
use crate::error::{DockerFailure, Error, PreflightFailure};

/// The variant's name. No wildcard arm: a new variant does not compile until it has a sample.
fn variant(e: &Error) -> &'static str {
    match e {
        Error::Input(_) => "Input",
        Error::MissingInput { .. } => "MissingInput",
        Error::NotAvailableYet { .. } => "NotAvailableYet",
        Error::NotImplemented { .. } => "NotImplemented",
        Error::NotSupportedYet { .. } => "NotSupportedYet",
        Error::EngineUnreachable { .. } => "EngineUnreachable",
        Error::Preflight { .. } => "Preflight",
        Error::Docker { .. } => "Docker",
        Error::Unhealthy { .. } => "Unhealthy",
        Error::ContainerStopped { .. } => "ContainerStopped",
        Error::Phase2 { .. } => "Phase2",
        Error::ReplicaNotFound { .. } => "ReplicaNotFound",
        Error::Aborted => "Aborted",
        Error::Interrupted => "Interrupted",
        Error::RolledBack { .. } => "RolledBack",
        Error::Io { .. } => "Io",
        Error::ClusterCommand { .. } => "ClusterCommand",
        Error::BrokenReplica { .. } => "BrokenReplica",
        Error::TimedOut { .. } => "TimedOut",
        Error::NfsMount { .. } => "NfsMount",
        Error::LeftBehind { .. } => "LeftBehind",
        Error::BadBackup { .. } => "BadBackup",
        Error::Mke { .. } => "Mke",
        Error::BadBundle { .. } => "BadBundle",
        Error::MigrationFailed { .. } => "MigrationFailed",
        Error::Refused { .. } => "Refused",
        Error::Bug { .. } => "Bug",
    }
}

const ALL: [&str; 27] = [
    "Input",
    "MissingInput",
    "NotAvailableYet",
    "NotImplemented",
    "NotSupportedYet",
    "EngineUnreachable",
    "Preflight",
    "Docker",
    "Unhealthy",
    "ContainerStopped",
    "Phase2",
    "ReplicaNotFound",
    "Aborted",
    "Interrupted",
    "RolledBack",
    "Io",
    "ClusterCommand",
    "BrokenReplica",
    "TimedOut",
    "NfsMount",
    "LeftBehind",
    "BadBackup",
    "Mke",
    "BadBundle",
    "MigrationFailed",
    "Refused",
    "Bug",
];

fn cause(text: &str) -> Box<dyn std::error::Error + Send + Sync> {
    Box::new(std::io::Error::other(text.to_string()))
}

fn samples() -> Vec<Error> {
    vec![
        Error::Input(InputError::invalid(
            "--replica-id",
            "xyz",
            "a replica id is exactly 12 lowercase hexadecimal characters, e.g. 0123456789ab",
        )),
        Error::Input(InputError::Tls {
            what: "--dtr-cert".into(),
            reason: "the key does not match the certificate".into(),
        }),
        Error::MissingInput {
            missing: vec![
                ("--ucp-password", "UCP_PASSWORD"),
                ("--replica-id", "DTR_DESTROY_REPLICA_ID"),
            ],
        },
        Error::NotAvailableYet { command: "status" },
        Error::NotImplemented {
            what: "replicas on several nodes".into(),
            hint: "join on the same engine".into(),
        },
        Error::NotSupportedYet {
            flag: "--enable-pprof",
            hint: "profiling endpoints come with a later version",
        },
        Error::EngineUnreachable {
            host: "unix:///var/run/docker.sock".into(),
            source: cause("No such file or directory (os error 2)"),
        },
        Error::Preflight {
            failures: vec![
                PreflightFailure {
                    check: "ports",
                    problem: "host port 8443 is published by container web".into(),
                    fix: "free the port or choose another with --replica-http-port/--replica-https-port".into(),
                },
                PreflightFailure {
                    check: "images",
                    problem: "missing images: registry/dtr-api:0.1.0".into(),
                    fix: "load the offline bundle".into(),
                },
            ],
        },
        Error::Docker {
            action: "create container",
            object: "dtr-api-0123456789ab".into(),
            kind: DockerFailure::Other,
            source: cause("Conflict. The container name is already in use"),
        },
        Error::Docker {
            action: "create container",
            object: "dtr-preflight-0123456789ab".into(),
            kind: DockerFailure::SchedulingRefused,
            source: cause("could not find any nodes on which the container could be created"),
        },
        Error::Unhealthy {
            container: "dtr-rethinkdb-0123456789ab".into(),
            waited: Duration::from_secs(120),
            last_output: "no primary yet".into(),
            logs: "patroni: waiting for leader\npatroni: still waiting\n".into(),
        },
        Error::ContainerStopped {
            container: "dtr-etcd-0123456789ab".into(),
            state: "exited".into(),
            exit_code: 1,
            logs: "etcd: member count is unequal\n".into(),
        },
        Error::Phase2 {
            step: "phase2 certs".into(),
            message: "exit code 1: --dtr-cert was given but its key did not arrive".into(),
        },
        Error::ReplicaNotFound {
            replica: "0123456789ab".into(),
            existing: vec!["aaaaaaaaaaaa".into()],
        },
        Error::ReplicaNotFound {
            replica: "(any)".into(),
            existing: vec![],
        },
        Error::Aborted,
        Error::Interrupted,
        Error::RolledBack {
            operation: "install",
            cause: Box::new(Error::Interrupted),
            removed: vec!["container dtr-api-0123456789ab".into(), "volume dtr-ca-0123456789ab".into()],
            left_behind: vec!["network dtr-ol (it has active endpoints)".into()],
        },
        Error::RolledBack {
            operation: "join",
            cause: Box::new(Error::Aborted),
            removed: vec![],
            left_behind: vec![],
        },
        Error::Io {
            context: "write the backup to stdout".into(),
            source: std::io::Error::other("Broken pipe (os error 32)"),
        },
        Error::ClusterCommand {
            command: "etcdctl member list".into(),
            container: "dtr-etcd-0123456789ab".into(),
            output: "context deadline exceeded\n".into(),
        },
        Error::BrokenReplica {
            replica: "0123456789ab".into(),
            problem: "its dtr-ca volume has no root/ca-key.pem".into(),
        },
        Error::TimedOut {
            waiting_for: "the database primary to move to aaaaaaaaaaaa".into(),
            waited: Duration::from_secs(60),
            hint: "check the database members with `dtr status`, then run the same `remove` again".into(),
        },
        Error::NfsMount {
            url: "nfs://nas.example.com/exports/dtr".into(),
            volume: "dtr-nfs-registry-0123456789ab".into(),
            reason: "failed to mount local volume: mount :/exports/dtr: no such device".into(),
        },
        Error::LeftBehind {
            operation: "destroy",
            objects: vec!["volume dtr-ca-0123456789ab: the Docker engine refused to remove volume dtr-ca-0123456789ab: volume is in use".into()],
        },
        Error::BadBackup {
            reason: "manifest.json: the backup was made by dtr 0.3.0".into(),
        },
        Error::Mke {
            url: "https://mke.example.com".into(),
            reason: "the login of admin was refused (401 Unauthorized): invalid credentials".into(),
            hint: "check --ucp-username and --ucp-password".into(),
        },
        Error::BadBundle {
            reason: "the archive is damaged or truncated".into(),
        },
        Error::MigrationFailed {
            job: 7,
            reason: "it failed: relation \"events\" does not exist".into(),
        },
        Error::Refused {
            operation: "join",
            reasons: vec!["etcd has no quorum: 1 of 3 voting members are healthy, 2 needed".into()],
            hint: "repair or `dtr remove` the unhealthy replicas first".into(),
        },
        Error::Bug {
            what: "the plan's start dependencies form a cycle".into(),
        },
    ]
}

#[test]
fn every_error_as_a_person_reads_it() {
    let samples = samples();
    for name in ALL {
        assert!(
            samples.iter().any(|e| variant(e) == name),
            "no sample of Error::{name}"
        );
    }
    let rendered = samples
        .iter()
        .map(|e| {
            format!(
                "## {} (exit {})\n{}\n",
                variant(e),
                e.exit_code(),
                render(e)
            )
        })
        .collect::<Vec<_>>()
        .join("\n");
    let rendered = rendered.replace(dtr_core::version::VERSION, "<version>");
    insta::assert_snapshot!(rendered);
}

#[test]
fn display_is_the_rendered_message_and_summary_its_first_line() {
    for e in samples() {
        assert_eq!(e.to_string(), render(&e));
        assert_eq!(e.summary(), render(&e).lines().next().unwrap_or_default());
    }
}
