//! The command-line layer: parses arguments (and env vars), asks for what is missing when a person
//! is at a terminal, hands validated options to `ops`, and turns the outcome into output and an
//! exit code. Nothing below this module knows about clap or terminals.

pub mod args;
mod backup;
mod change;
mod convert;
mod ha;
mod images;
mod prompt;
pub mod reference;

use clap::{CommandFactory, Parser};

use args::{Cli, Command, CommonArgs, JoinAgentStep, Phase2Step};
use dtr_bootstrap::engine::Target;
use dtr_bootstrap::error::{exit, Error, Result};
use dtr_bootstrap::report::{render, Reporter};
use dtr_core::component::Component;
use dtr_core::options::{LogLevel, ReplicaId};

/// The original's MSR rebrand renamed some `DTR_*` variables to `MSR_*`: accept both. An `MSR_X`
/// fills `DTR_X` when that is unset. Runs before any thread starts.
fn alias_msr_env() {
    let renames: Vec<(String, String)> = std::env::vars()
        .filter_map(|(k, v)| {
            k.strip_prefix("MSR_")
                .map(|rest| (format!("DTR_{rest}"), v))
        })
        .filter(|(dtr, _)| std::env::var_os(dtr).is_none())
        .collect();
    for (k, v) in renames {
        // SAFETY-free in edition 2021; called before the runtime or any other thread exists.
        std::env::set_var(k, v);
    }
}

pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("start the async runtime")
}

/// Entry point of the binary; returns the process exit code.
pub fn main() -> i32 {
    alias_msr_env();
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            };
        }
    };
    match cli.command {
        Command::Api => role(dtr_server::api::run()),
        Command::Jobrunner => role(dtr_server::jobrunner::run()),
        Command::Registry => role(dtr_server::registry::run()),
        Command::Phase2 {
            step: Phase2Step::Certs,
        } => role_exit(dtr_server::phase2::run_certs()),
        Command::JoinAgent { step } => match step {
            JoinAgentStep::Check { via } => match via.map(|v| ReplicaId::parse(&v)).transpose() {
                Ok(via) => role(dtr_server::join_agent::run_check(via)),
                Err(e) => {
                    eprintln!("--via: {e}");
                    exit::USAGE
                }
            },
            JoinAgentStep::Seed => role_exit(dtr_server::join_agent::run_seed(
                std::path::Path::new(dtr_core::contract::CA_MOUNT),
            )),
        },
        Command::Health { component } => match Component::from_name(&component) {
            Some(c) => role(dtr_server::health::check(c)),
            None => {
                eprintln!("unknown component {component}");
                exit::USAGE
            }
        },
        Command::DbProxy {
            listen,
            db_host,
            ca_file,
            program,
        } => {
            let cfg = dtr_server::dbproxy::ProxyConfig {
                listen,
                db_host,
                ca_file,
                program,
            };
            match runtime().block_on(dtr_server::dbproxy::run(cfg)) {
                Ok(code) => code,
                Err(e) => role_exit(Err(e)),
            }
        }
        Command::EtcdGuard {
            listen,
            upstream,
            ca_file,
            cert_file,
            key_file,
            log_level,
            program,
        } => {
            let cfg = dtr_server::etcd_guard::GuardConfig {
                listen,
                upstream,
                ca_file,
                cert_file,
                key_file,
                log_level: LogLevel::parse(&log_level).unwrap_or(LogLevel::Info),
                program,
            };
            match runtime().block_on(dtr_server::etcd_guard::run(cfg)) {
                Ok(code) => code,
                Err(e) => role_exit(Err(e)),
            }
        }
        Command::Completion { shell } => {
            reference::completion(shell, &mut std::io::stdout());
            exit::OK
        }
        Command::Man => match reference::man(&mut std::io::stdout()) {
            Ok(()) => exit::OK,
            // `dtr man | head`
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => exit::OK,
            Err(e) => finish(Err(Error::io("write the man page", e)), &Reporter::quiet()),
        },
        command => user_command(command),
    }
}

/// Runs `work` to its end on a runtime that is then dropped without waiting for its blocking
/// threads: after Ctrl-C, one may still be blocked reading stdin or writing stdout.
pub(crate) fn block_on_detached<T>(work: impl std::future::Future<Output = T>) -> T {
    let rt = runtime();
    let result = rt.block_on(work);
    rt.shutdown_background();
    result
}

/// An in-cluster role: its error is logged as one line and the exit code is 1.
fn role(fut: impl std::future::Future<Output = dtr_server::Result<()>>) -> i32 {
    role_exit(runtime().block_on(fut))
}

fn role_exit(result: dtr_server::Result<()>) -> i32 {
    match result {
        Ok(()) => exit::OK,
        Err(e) => {
            eprintln!("{} ERROR {e}", dtr_core::timestamp());
            exit::FAILED
        }
    }
}

fn finish(result: Result<()>, reporter: &Reporter) -> i32 {
    match result {
        Ok(()) => exit::OK,
        Err(e) => {
            let text = render(&e);
            if reporter.is_tty() {
                reporter.error(text);
            } else {
                eprintln!("{} ERROR {text}", dtr_bootstrap::report::timestamp());
            }
            e.exit_code()
        }
    }
}

fn common_of(command: &Command) -> Option<&CommonArgs> {
    Some(match command {
        Command::Install(a) => &a.common,
        Command::Join(a) => &a.common,
        Command::Reconfigure(a) => &a.common,
        Command::Upgrade(a) => &a.common,
        Command::Backup(a) => &a.common,
        Command::Restore(a) => &a.common,
        Command::Destroy(a) => &a.common,
        Command::Remove(a) => &a.common,
        Command::EmergencyRepair(a) => &a.common,
        Command::Images(a) => &a.common,
        Command::Status(a) => &a.common,
        _ => return None,
    })
}

fn ucp_of(command: &Command) -> Option<&args::UcpArgs> {
    Some(match command {
        Command::Install(a) => &a.ucp,
        Command::Join(a) => &a.ucp,
        Command::Reconfigure(a) => &a.ucp,
        Command::Upgrade(a) => &a.ucp,
        Command::Backup(a) => &a.ucp,
        Command::Restore(a) => &a.ucp,
        Command::Destroy(a) => &a.ucp,
        Command::Remove(a) => &a.ucp,
        Command::EmergencyRepair(a) => &a.ucp,
        Command::Status(a) => &a.ucp,
        _ => return None,
    })
}

/// Before a command runs: the target (MKE when `--ucp-*` is given: its URL, username and
/// password asked for on a terminal); without a terminal, when MKE's values are missing, one
/// error listing every required value that is missing — MKE's and the command's own.
fn prepare(command: &Command, reporter: &Reporter) -> Result<Target> {
    let mut ask = prompt::Asker::new(prompt::interactive());
    let mut target = Target::Local;
    if let Some(ucp) = ucp_of(command) {
        if let Some(mke) = convert::mke_target(ucp, &mut ask, reporter)? {
            target = Target::Mke(mke);
        }
    }
    // MKE's values are missing: name the command's own missing values in the same error
    // (otherwise each command checks its values first and names what is missing itself)
    if !ask.is_interactive() && !ask.is_complete() {
        let blank = |v: &Option<String>| v.as_deref().is_none_or(|s| s.trim().is_empty());
        match command {
            Command::Destroy(a) if blank(&a.replica_id) => {
                ask.note_missing("--replica-id", "DTR_DESTROY_REPLICA_ID")
            }
            Command::Remove(a) if blank(&a.replica_ids) && blank(&a.replica_id) => {
                ask.note_missing("--replica-ids", "DTR_REMOVE_REPLICA_IDS")
            }
            Command::EmergencyRepair(a) if !a.yes => ask.note_missing("--yes", "YES"),
            _ => {}
        }
    }
    ask.finish()?;
    Ok(target)
}

fn subcommand_name(command: &Command) -> &'static str {
    match command {
        Command::Install(_) => "install",
        Command::Join(_) => "join",
        Command::Reconfigure(_) => "reconfigure",
        Command::Upgrade(_) => "upgrade",
        Command::Backup(_) => "backup",
        Command::Restore(_) => "restore",
        Command::Destroy(_) => "destroy",
        Command::Remove(_) => "remove",
        Command::EmergencyRepair(_) => "emergency-repair",
        Command::Images(_) => "images",
        Command::Status(_) => "status",
        Command::Api => "api",
        Command::Jobrunner => "jobrunner",
        Command::Registry => "registry",
        Command::Phase2 { .. } => "phase2",
        Command::Health { .. } => "health",
        Command::JoinAgent { .. } => "join-agent",
        Command::DbProxy { .. } => "db-proxy",
        Command::EtcdGuard { .. } => "etcd-guard",
        Command::Completion { .. } => "completion",
        Command::Man => "man",
    }
}

fn user_command(command: Command) -> i32 {
    let common = common_of(&command)
        .cloned()
        .expect("user commands have common flags");
    let name = subcommand_name(&command);
    if common.help_extended {
        let mut cmd = Cli::command();
        if let Some(sub) = cmd.find_subcommand_mut(name) {
            let _ = sub.print_long_help();
        }
        return exit::OK;
    }
    let reporter = Reporter::new(common.debug, common.nocolor);
    if dtr_core::version::TEST_BUILD {
        reporter.warn(format!(
            "this is a test build (version {}, made with DTR_TEST_VERSION for the upgrade tests): do not run it on a registry you keep",
            dtr_core::version::VERSION
        ));
    }
    let result = prepare(&command, &reporter).and_then(|target| run(command, &target, &reporter));
    finish(result, &reporter)
}

/// A user command against `target`.
fn run(command: Command, target: &Target, reporter: &Reporter) -> Result<()> {
    match command {
        Command::Images(a) => images::run(a, target, reporter),
        Command::Install(a) => install(a, target, reporter),
        Command::Destroy(a) => runtime().block_on(destroy(a, target, reporter)),
        Command::Join(a) => ha::join(a, target, reporter),
        Command::Remove(a) => ha::remove(a, target, reporter),
        Command::EmergencyRepair(a) => ha::repair(a, target, reporter),
        Command::Status(a) => ha::status(a, target),
        Command::Backup(args::BackupArgs {
            action: Some(args::BackupAction::Verify { keys }),
            ..
        }) => backup::verify(keys, reporter),
        Command::Backup(a) => backup::backup(a, target, reporter),
        Command::Restore(a) => backup::restore(a, target, reporter),
        Command::Upgrade(a) => change::upgrade(a, target, reporter),
        Command::Reconfigure(a) => change::reconfigure(a, target, reporter),
        other => Err(Error::NotAvailableYet {
            command: subcommand_name(&other),
        }),
    }
}

fn install(a: args::InstallArgs, target: &Target, reporter: &Reporter) -> Result<()> {
    let opts = convert::install(a, target)?;
    let report =
        runtime().block_on(dtr_bootstrap::ops::install::install(target, opts, reporter))?;
    summary(reporter, &report);
    Ok(())
}

async fn destroy(a: args::DestroyArgs, target: &Target, reporter: &Reporter) -> Result<()> {
    let interactive = prompt::interactive();
    if a.replica_id.is_none() && !interactive {
        return Err(Error::MissingInput {
            missing: vec![("--replica-id", "DTR_DESTROY_REPLICA_ID")],
        });
    }
    let replica = a
        .replica_id
        .as_deref()
        .map(dtr_core::options::ReplicaId::parse)
        .transpose()?;
    let choose = |existing: &[String]| {
        Ok(dtr_core::options::ReplicaId::parse(&prompt::pick(
            "replica-id (The ID of the replica to destroy)",
            existing,
        )?)?)
    };
    // asked only of a replica picked from the list: a script's `destroy --replica-id X`
    // (the original's docs run it with -it) must not hang on a question the original never asked
    let picked = replica.is_none();
    let confirm = |replica: &dtr_core::options::ReplicaId| {
        if !interactive || !picked {
            return Ok(true);
        }
        prompt::confirm(&format!(
            "Destroy replica {replica}? Its containers and the volumes dtr created for it are \
             removed (a --dtr-storage-volume volume and volumes that existed before the install are kept)"
        ))
    };
    let request = dtr_bootstrap::ops::destroy::DestroyRequest {
        replica,
        choose: &choose,
        confirm: &confirm,
    };
    let (replica, report) = dtr_bootstrap::ops::destroy::run(target, request, reporter).await?;
    for r in &report.removed {
        reporter.debug(format!("removed {r}"));
    }
    reporter.info(format!(
        "replica {replica} destroyed: {} objects removed",
        report.removed.len()
    ));
    Ok(())
}

fn summary(reporter: &Reporter, report: &dtr_bootstrap::ops::install::InstallReport) {
    let plan = &report.plan;
    let url = format!("https://{}", plan.external_authority);
    reporter.info(format!(
        "Installation is complete ({:.1}s)",
        reporter.elapsed().as_secs_f64()
    ));
    reporter.info(format!("Replica ID is set to: {}", plan.replica_id));
    reporter.info(format!(
        "DTR is at {url} (HTTP port {} redirects to HTTPS)",
        plan.http_port
    ));
    reporter.info(format!(
        "CA certificate (SHA-256 {}): served at {url}/ca, and in volume dtr-ca-{} as external/ca.pem",
        report.certs.external_ca_fingerprint, plan.replica_id
    ));
    reporter.info(format!(
        "To trust it on a Docker client: mkdir -p /etc/docker/certs.d/{0} && curl -sk {url}/ca -o /etc/docker/certs.d/{0}/ca.crt (then compare the fingerprint)",
        plan.external_authority
    ));
    reporter.info(format!(
        "To add replicas: dtr join --existing-replica-id {} --replica-https-port <port> --replica-http-port <port>",
        plan.replica_id
    ));
}
