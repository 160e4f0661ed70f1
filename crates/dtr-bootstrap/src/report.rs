//! What a person sees: progress of the steps (indicatif spinners on a terminal, timestamped
//! plain lines otherwise, both on stderr), and the one function that turns an `Error` into a
//! message saying what failed, which object, and what to do next.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::error::{DockerFailure, Error, PreflightFailure};

pub use dtr_core::timestamp;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Level {
    Debug,
    Info,
    Warn,
    Error,
}

impl Level {
    fn label(self) -> &'static str {
        match self {
            Level::Debug => "DEBUG",
            Level::Info => "INFO ",
            Level::Warn => "WARN ",
            Level::Error => "ERROR",
        }
    }
    fn color(self) -> &'static str {
        match self {
            Level::Debug => "\x1b[2m",
            Level::Info => "\x1b[36m",
            Level::Warn => "\x1b[33m",
            Level::Error => "\x1b[31m",
        }
    }
}

/// Where the lines go: the terminal's progress bars (printed above them) or plain stderr.
#[derive(Clone)]
struct Sink {
    color: bool,
    multi: Option<MultiProgress>,
}

impl Sink {
    fn line(&self, level: Level, msg: &str) {
        let text = if self.color {
            format!("{}{}\x1b[0m {msg}", level.color(), level.label())
        } else {
            format!("{} {} {msg}", timestamp(), level.label())
        };
        match &self.multi {
            Some(m) => {
                let _ = m.println(text);
            }
            None => eprintln!("{text}"),
        }
    }
}

pub struct Reporter {
    tty: bool,
    debug: bool,
    sink: Sink,
    timings: Mutex<Vec<(String, Duration)>>,
    started: Instant,
}

impl Reporter {
    /// `nocolor` comes from `--nocolor`/`NOCOLOR`; `NO_COLOR` is honoured as well.
    pub fn new(debug: bool, nocolor: bool) -> Reporter {
        let tty = std::io::stderr().is_terminal()
            && std::env::var("TERM").map(|t| t != "dumb").unwrap_or(true);
        let color = tty && !nocolor && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
        let multi = tty.then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        Reporter {
            tty,
            debug,
            sink: Sink { color, multi },
            timings: Mutex::new(Vec::new()),
            started: Instant::now(),
        }
    }

    /// A reporter that prints nothing (for roles and tests).
    pub fn quiet() -> Reporter {
        Reporter {
            tty: false,
            debug: false,
            sink: Sink {
                color: false,
                multi: None,
            },
            timings: Mutex::new(Vec::new()),
            started: Instant::now(),
        }
    }

    fn line(&self, level: Level, msg: &str) {
        self.sink.line(level, msg);
    }

    pub fn info(&self, msg: impl AsRef<str>) {
        self.line(Level::Info, msg.as_ref());
    }

    pub fn warn(&self, msg: impl AsRef<str>) {
        self.line(Level::Warn, msg.as_ref());
    }

    pub fn error(&self, msg: impl AsRef<str>) {
        self.line(Level::Error, msg.as_ref());
    }

    /// Detail for `--debug`. Callers pass no secrets: secret values are `Secret` and print `***`.
    pub fn debug(&self, msg: impl AsRef<str>) {
        if self.debug {
            self.line(Level::Debug, msg.as_ref());
        }
    }

    pub fn is_debug(&self) -> bool {
        self.debug
    }

    /// With `--debug`, a function printing debug lines that outlives the borrow (the engine
    /// keeps it to name each change it makes); `None` otherwise.
    pub fn debug_trace(&self) -> Option<crate::engine::Trace> {
        let sink = self.sink.clone();
        self.debug
            .then(|| std::sync::Arc::new(move |m: &str| sink.line(Level::Debug, m)) as _)
    }

    /// Starts a named step; finish it with `done` or `fail`.
    pub fn step(&self, name: impl Into<String>) -> Step<'_> {
        let name = name.into();
        let bar = self.sink.multi.as_ref().map(|m| {
            let bar = m.add(ProgressBar::new_spinner());
            bar.set_style(
                ProgressStyle::with_template("{spinner} {msg} [{elapsed}]")
                    .expect("valid template"),
            );
            bar.set_message(name.clone());
            bar.enable_steady_tick(Duration::from_millis(100));
            bar
        });
        if bar.is_none() {
            self.info(format!("{name} ..."));
        }
        Step {
            reporter: self,
            name,
            start: Instant::now(),
            bar,
            last_plain_wait: Mutex::new(Instant::now()),
        }
    }

    /// Each finished step and its duration, in order (for the summary and the benchmark).
    pub fn timings(&self) -> Vec<(String, Duration)> {
        self.timings.lock().expect("not poisoned").clone()
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    pub fn is_tty(&self) -> bool {
        self.tty
    }
}

pub struct Step<'a> {
    reporter: &'a Reporter,
    name: String,
    start: Instant,
    bar: Option<ProgressBar>,
    last_plain_wait: Mutex<Instant>,
}

impl Step<'_> {
    /// Says what the step is waiting on; on plain output at most every 5 s.
    pub fn waiting(&self, elapsed: Duration, what: &str) {
        match &self.bar {
            Some(bar) => bar.set_message(format!("{}: {what}", self.name)),
            None => {
                let mut last = self.last_plain_wait.lock().expect("not poisoned");
                if last.elapsed() >= Duration::from_secs(5) {
                    self.reporter.info(format!(
                        "{}: still {what} ({}s)",
                        self.name,
                        elapsed.as_secs()
                    ));
                    *last = Instant::now();
                }
            }
        }
    }

    pub fn done(self, detail: impl AsRef<str>) -> Duration {
        let took = self.start.elapsed();
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        let detail = detail.as_ref();
        let sep = if detail.is_empty() { "" } else { ": " };
        self.reporter.info(format!(
            "{}{sep}{detail} ({:.1}s)",
            self.name,
            took.as_secs_f64()
        ));
        self.reporter
            .timings
            .lock()
            .expect("not poisoned")
            .push((self.name.clone(), took));
        took
    }

    pub fn fail(self, why: impl AsRef<str>) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        self.reporter.error(format!(
            "{} failed after {:.1}s: {}",
            self.name,
            self.start.elapsed().as_secs_f64(),
            why.as_ref()
        ));
    }
}

fn indent(text: &str, prefix: &str) -> String {
    text.trim_end()
        .lines()
        .map(|l| format!("{prefix}{l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn preflight_lines(failures: &[PreflightFailure]) -> String {
    failures
        .iter()
        .map(|f| format!("  - [{}] {}\n      fix: {}", f.check, f.problem, f.fix))
        .collect::<Vec<_>>()
        .join("\n")
}

fn source_text(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(inner) = cur {
        let t = inner.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = inner.source();
    }
    s
}

/// The message a person reads for an error: what failed, the object, what to do next.
pub fn render(err: &Error) -> String {
    match err {
        Error::Input(e) => e.to_string(),
        Error::MissingInput { missing } => {
            let list = missing.iter().map(|(flag, env)| format!("  {flag} (or environment variable {env})")).collect::<Vec<_>>().join("\n");
            format!("missing required values, and there is no terminal to ask for them:\n{list}\nGive them as flags or environment variables.")
        }
        Error::NotAvailableYet { command } => format!(
            "`dtr {command}` is not available yet in dtr {}. It is accepted so that scripts parse, but does nothing.\nSee docs/cli.md for what this version implements.",
            dtr_core::version::VERSION
        ),
        Error::NotImplemented { what, hint } => format!("{what} is not available yet in dtr {}.\nnext: {hint}", dtr_core::version::VERSION),
        Error::NotSupportedYet { flag, hint } => format!("{flag} is not supported yet by dtr {}: {hint}", dtr_core::version::VERSION),
        Error::EngineUnreachable { host, source } => format!(
            "cannot reach the Docker engine at {host}: {}\nnext: start the engine (e.g. `dockerd`), or set DOCKER_HOST (and DOCKER_TLS_VERIFY/DOCKER_CERT_PATH) to a reachable engine; inside `docker run` mount the socket with -v /var/run/docker.sock:/var/run/docker.sock.",
            source_text(source.as_ref())
        ),
        Error::Preflight { failures } => format!("preflight checks failed; nothing was created:\n{}", preflight_lines(failures)),
        Error::Docker { action, object, kind, source } => {
            let mut s = format!("the Docker engine refused to {action} {object}: {}", source_text(source.as_ref()));
            if *kind == DockerFailure::SchedulingRefused {
                s.push_str(&format!("\nMKE's scheduler may not place DTR's containers on that node.\nnext: {}", crate::engine::mke::SCHEDULING_FIX));
            }
            s
        }
        Error::Mke { url, reason, hint } => format!("MKE/UCP at {url}: {reason}\nnothing was changed.\nnext: {hint}"),
        Error::Unhealthy { container, waited, last_output, logs } => format!(
            "{container} did not become healthy within {}s.\n  last health check output: {}\n  last log lines:\n{}\nnext: inspect it with `docker logs {container}`.",
            waited.as_secs(),
            if last_output.is_empty() { "(none)" } else { last_output },
            indent(logs, "    | ")
        ),
        Error::ContainerStopped { container, state, exit_code, logs } => format!(
            "{container} stopped while starting (state {state}, exit code {exit_code}).\n  last log lines:\n{}",
            indent(logs, "    | ")
        ),
        Error::Phase2 { step, message } => format!("phase 2 ({step}) failed in the dtr-phase2 container: {message}"),
        Error::ReplicaNotFound { replica, existing } => {
            let others = if existing.is_empty() { "no DTR replica exists on this engine".to_string() } else { format!("replicas on this engine: {}", existing.join(", ")) };
            format!("no object of replica {replica} found ({others})")
        }
        Error::Aborted => "aborted: nothing was changed".into(),
        Error::Interrupted => "interrupted".into(),
        Error::RolledBack { operation, cause, removed, left_behind } => {
            let mut s = format!("{operation} failed: {}", render(cause));
            if removed.is_empty() {
                s.push_str("\nnothing had been created yet.");
            } else {
                s.push_str(&format!("\ncleaned up what this run created: {}", removed.join(", ")));
            }
            if !left_behind.is_empty() {
                s.push_str(&format!("\ncould NOT remove (remove by hand): {}", left_behind.join(", ")));
            }
            s
        }
        Error::Io { context, source } => format!("{context}: {source}"),
        Error::ClusterCommand { command, container, output } => format!(
            "`{command}` failed in {container}:\n{}\nnext: check the container with `docker logs {container}` and the cluster with `dtr status`.",
            indent(output, "    | ")
        ),
        Error::BadBackup { reason } => format!(
            "the backup is refused; nothing was changed: {reason}\nnext: check the file with `dtr backup verify < backup.tar`, use the bootstrapper version that made it, or take a new backup."
        ),
        Error::BadBundle { reason } => format!(
            "the image bundle is refused; nothing was loaded: {reason}\nnext: check the copy (compare `sha256sum` of the file on both machines), or save it again with `dtr images save` on a connected machine with the bootstrapper of the same version ({})",
            dtr_core::version::VERSION
        ),
        Error::MigrationFailed { job, reason } => format!(
            "the upgrade stopped: the schema migration (metadatastoremigration job {job}) did not complete: {reason}\n\
             the replicas upgraded so far keep serving on the old schema's data; the upgrade is recorded in etcd\n\
             next: read the job's log (GET /api/v0/jobs/{job}/logs), fix the cause, then run the same `upgrade` again: it continues where it stopped and queues the migration again"
        ),
        Error::Refused { operation, reasons, hint } => format!(
            "{operation} refused; nothing was changed:\n{}\nnext: {hint}",
            reasons.iter().map(|r| format!("  - {r}")).collect::<Vec<_>>().join("\n")
        ),
        Error::BrokenReplica { replica, problem } => format!(
            "replica {replica} cannot be used: {problem}\n\
             next: repair it (`dtr emergency-repair` keeps one replica), or `dtr remove` it and `dtr join` it again"
        ),
        Error::TimedOut { waiting_for, waited, hint } => format!(
            "gave up after {}s waiting for {waiting_for}\nnext: {hint}",
            waited.as_secs()
        ),
        Error::NfsMount { url, volume, reason } => format!(
            "the NFS export {url} could not be mounted on the node (volume {volume}): {reason}\n\
             next: check that the node has an NFS client (Debian: nfs-common), that the server exports the path to this node, and --nfs-options; nothing of this run was left behind"
        ),
        Error::LeftBehind { operation, objects } => format!(
            "{operation} did its work, but these objects could not be removed (remove them by hand):\n{}",
            objects.iter().map(|o| format!("  - {o}")).collect::<Vec<_>>().join("\n")
        ),
        Error::Bug { what } => format!(
            "internal error: {what}\nthis is a bug in dtr {}: please report it with the output above",
            dtr_core::version::VERSION
        ),
    }
}

#[cfg(test)]
mod tests;
