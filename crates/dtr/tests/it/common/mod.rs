//! Harness of the tests that drive the real Docker engine: engine detection (fail under CI,
//! skip elsewhere), one cluster at a time, random replica ids and high host ports, and a guard
//! that removes what a test's replica made — and only that — even when the test fails.
#![allow(dead_code)]

pub mod balancer;
pub mod http;
pub mod ledger;
pub mod mke;
pub mod nodes;
pub mod pull;
pub mod registry;
pub mod stores;
pub mod writer;

use std::net::TcpListener;
use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_dtr");

/// The administrator password of this test process's installs: random, never in the repo.
pub fn admin_password() -> &'static str {
    static PASSWORD: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    PASSWORD.get_or_init(|| format!("pw-{}", dtr_core::options::ReplicaId::random()))
}

/// A throw-away secret for one use in a test (a password typed at a prompt, a wrong password,
/// a made-up token): generated, so that nothing in the repository looks like a real secret and a
/// check that it never reaches the output cannot pass by chance.
pub fn generated_secret() -> String {
    format!(
        "t-{}{}",
        dtr_core::options::ReplicaId::random(),
        dtr_core::options::ReplicaId::random()
    )
}

/// The eight components of a replica, in name order (the user-visible contract of the original).
pub const COMPONENTS: [&str; 8] = [
    "api",
    "etcd",
    "jobrunner",
    "nginx",
    "notary-server",
    "notary-signer",
    "registry",
    "rethinkdb",
];

/// Runs `docker ARGS` and returns its output (never panics on a non-zero exit).
pub fn docker(args: &[&str]) -> Output {
    Command::new("docker")
        .args(args)
        .output()
        .expect("run the docker CLI")
}

/// stdout of a successful `docker ARGS`, trimmed.
pub fn docker_ok(args: &[&str]) -> String {
    let out = docker(args);
    assert!(
        out.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn engine_answers() -> bool {
    Command::new("docker")
        .args(["info", "-f", "{{.Swarm.LocalNodeState}}"])
        .output()
        .map(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).trim() == "active")
        .unwrap_or(false)
}

static ONE_CLUSTER: Mutex<()> = Mutex::new(());

/// Access to the engine for one test: `None` means skip (no engine, not in CI). Under `CI=true`
/// or `DTR_REQUIRE_ENGINE=1` a missing engine is a failure. Holding the returned guard keeps
/// the other engine tests of this process waiting (one DTR cluster per engine); across
/// processes, `.config/nextest.toml` puts every engine test in a group of one thread.
pub fn engine() -> Option<MutexGuard<'static, ()>> {
    let required = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
        || std::env::var("DTR_REQUIRE_ENGINE").is_ok_and(|v| v == "1");
    if !engine_answers() {
        assert!(
            !required,
            "no Docker engine in swarm mode answers (run scripts/engine-up.sh)"
        );
        eprintln!("skipped: no Docker engine in swarm mode (CI would fail here)");
        return None;
    }
    Some(ONE_CLUSTER.lock().unwrap_or_else(|e| e.into_inner()))
}

/// A free TCP port in 20000..40000 (high, away from the usual services).
pub fn free_port() -> u16 {
    loop {
        let port = 20000 + (rand_u32() % 20000) as u16;
        if TcpListener::bind(("0.0.0.0", port)).is_ok() {
            return port;
        }
    }
}

fn rand_u32() -> u32 {
    let id = dtr_core::options::ReplicaId::random().to_string();
    u32::from_str_radix(&id[..8], 16).unwrap()
}

/// The objects of one test replica. Dropping it removes the containers and volumes labelled
/// with its replica id, and the dtr-ol / dtr-br networks if they did not exist when it was made
/// and no other replica's container is left.
pub struct TestReplica {
    pub id: String,
    pub https_port: u16,
    pub http_port: u16,
    networks_existed: bool,
}

impl TestReplica {
    pub fn new() -> Self {
        let networks_existed = ["dtr-ol", "dtr-br"]
            .iter()
            .any(|n| docker(&["network", "inspect", n]).status.success());
        let https_port = free_port();
        let mut http_port = free_port();
        while http_port == https_port {
            http_port = free_port();
        }
        let id = dtr_core::options::ReplicaId::random().to_string();
        let networks = if networks_existed { "kept" } else { "made" };
        ledger::note(&format!("replica {id} {networks}"));
        TestReplica {
            id,
            https_port,
            http_port,
            networks_existed,
        }
    }

    /// Gives the replica another id (before it is installed), written down in the ledger.
    pub fn set_id(&mut self, id: String) {
        let networks = if self.networks_existed {
            "kept"
        } else {
            "made"
        };
        ledger::note(&format!("replica {id} {networks}"));
        ledger::cross_out(&format!("replica {}", self.id));
        self.id = id;
    }

    pub fn label(&self) -> String {
        format!("label=com.docker.dtr.replica={}", self.id)
    }

    /// Names of the containers labelled with this replica id.
    pub fn containers(&self) -> Vec<String> {
        lines(&docker_ok(&[
            "ps",
            "-a",
            "--filter",
            &self.label(),
            "--format",
            "{{.Names}}",
        ]))
    }

    /// Names of the volumes labelled with this replica id.
    pub fn volumes(&self) -> Vec<String> {
        lines(&docker_ok(&[
            "volume",
            "ls",
            "--filter",
            &self.label(),
            "--format",
            "{{.Name}}",
        ]))
    }

    /// The cluster CA as served to clients, read from the replica's CA volume.
    pub fn external_ca(&self) -> String {
        self.ca_volume_file("external/ca.pem")
    }

    /// A file of the replica's dtr-ca volume (`rel` inside it).
    pub fn ca_volume_file(&self, rel: &str) -> String {
        let vol = format!("dtr-ca-{}:/ca:ro", self.id);
        let image = format!("registry/dtr:{}", dtr_core::version::VERSION);
        docker_ok(&[
            "run",
            "--rm",
            "-v",
            &vol,
            "--entrypoint",
            "cat",
            &image,
            &format!("/ca/{rel}"),
        ])
    }

    /// `dtr install` of this replica on its ports (as the administrator `admin_password()`),
    /// on this engine's node, with `extra` flags; the output, whatever the exit.
    pub fn install(&self, extra: &[&str]) -> Output {
        let node = docker_ok(&["info", "-f", "{{.Name}}"]);
        let (https, http) = (self.https_port.to_string(), self.http_port.to_string());
        let mut args = vec!["install", "--ucp-node", &node, "--replica-id", &self.id];
        args.extend(["--replica-https-port", &https, "--replica-http-port", &http]);
        args.extend(extra);
        dtr(&args, &[("DTR_ADMIN_PASSWORD", admin_password())])
    }

    /// `dtr destroy` of this replica, which must succeed.
    pub fn destroy(&self) {
        let out = dtr(&["destroy", "--replica-id", &self.id], &[]);
        assert!(out.status.success(), "destroy failed:\n{}", text(&out));
    }

    fn cleanup(&self) {
        // one at a time: removing several containers of one network in parallel can leave
        // Docker 20.10 counting endpoints that are gone, and the network cannot be removed
        for c in self.containers() {
            docker(&["rm", "-f", "-v", &c]);
        }
        let volumes = self.volumes();
        if !volumes.is_empty() {
            let mut args = vec!["volume", "rm", "-f"];
            args.extend(volumes.iter().map(String::as_str));
            docker(&args);
        }
        // the cluster's seed this replica published (install, restore, a join through it)
        let secrets = lines(&docker_ok(&[
            "secret",
            "ls",
            "--filter",
            &self.label(),
            "--format",
            "{{.ID}}",
        ]));
        for s in &secrets {
            docker(&["secret", "rm", s]);
        }
        let others = docker_ok(&["ps", "-aq", "--filter", "label=com.docker.dtr.managed=true"]);
        if !self.networks_existed && others.is_empty() {
            for n in ["dtr-ol", "dtr-br"] {
                let managed = docker(&[
                    "network",
                    "inspect",
                    "-f",
                    "{{index .Labels \"com.docker.dtr.managed\"}}",
                    n,
                ]);
                if String::from_utf8_lossy(&managed.stdout).trim() == "true" {
                    docker(&["network", "rm", n]);
                }
            }
        }
        if self.containers().is_empty() && self.volumes().is_empty() {
            ledger::cross_out(&format!("replica {}", self.id));
        }
    }
}

impl Drop for TestReplica {
    fn drop(&mut self) {
        self.cleanup();
    }
}

/// `dtr <args>` (the test build of this version) without the caller's settings: every `DTR_*`,
/// `UCP_*` and `MSR_*` variable of the test process, and every other variable the parser reads
/// (`YES`, `LOG_LEVEL`, ...), is removed, so that a test sees only what it sets. Stdin and the
/// rest of the environment are the caller's: a test that needs no terminal uses [`dtr`].
pub fn dtr_command(args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args);
    for (name, _) in std::env::vars_os() {
        let Some(n) = name.to_str() else { continue };
        if ["DTR_", "UCP_", "MSR_"].iter().any(|p| n.starts_with(p))
            || parser_env_vars().iter().any(|v| v == n)
        {
            cmd.env_remove(&name);
        }
    }
    cmd
}

/// The environment variables any `dtr` command reads through its flags.
fn parser_env_vars() -> &'static [String] {
    static VARS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    fn walk(cmd: &clap::Command, out: &mut Vec<String>) {
        out.extend(
            cmd.get_arguments()
                .filter_map(|a| a.get_env())
                .map(|v| v.to_string_lossy().to_string()),
        );
        for sub in cmd.get_subcommands() {
            walk(sub, out);
        }
    }
    VARS.get_or_init(|| {
        let mut vars = Vec::new();
        walk(
            &<dtr::cli::args::Cli as clap::CommandFactory>::command(),
            &mut vars,
        );
        vars
    })
}

/// `dtr <args>` as [`dtr_command`] makes it, with `env` set and no terminal (stdin is empty);
/// the output, whatever the exit.
pub fn dtr(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = dtr_command(args);
    cmd.envs(env.iter().copied()).stdin(Stdio::null());
    cmd.output().expect("run dtr")
}

/// `dtr join` of `new` (its id and ports) through `existing`.
pub fn join(new: &TestReplica, existing: &TestReplica) -> Output {
    dtr(&strs(&join_args(new, existing)), &[])
}

/// The arguments of `dtr join` of `new` through `existing`.
pub fn join_args(new: &TestReplica, existing: &TestReplica) -> Vec<String> {
    let (https, http) = (new.https_port.to_string(), new.http_port.to_string());
    let args: [&str; 9] = [
        "join",
        "--existing-replica-id",
        &existing.id,
        "--replica-id",
        &new.id,
        "--replica-https-port",
        &https,
        "--replica-http-port",
        &http,
    ];
    args.map(String::from).to_vec()
}

pub fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

/// Polls `ok` every 500 ms; fails the test after `timeout`.
pub fn wait_until(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Polls `check` every 500 ms until it gives a value; after `timeout` the test fails with what
/// the last check saw.
pub fn wait_for<T>(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> Result<T, String>,
) -> T {
    let start = Instant::now();
    loop {
        match check() {
            Ok(v) => return v,
            Err(seen) => assert!(
                start.elapsed() < timeout,
                "timed out after {timeout:?} waiting for {what}; last seen: {seen}"
            ),
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Polls job `id` through `api` as `admin` until its status is one of `statuses`; after
/// `timeout` the test fails with the job and its logs.
pub fn wait_for_job(
    api: &http::Api,
    admin: (&str, &str),
    id: i64,
    statuses: &[&str],
    timeout: Duration,
) -> Value {
    let start = Instant::now();
    let path = format!("/api/v0/jobs/{id}");
    loop {
        let (code, job) = api.call("GET", &path, Some(admin), None);
        assert_eq!(code, 200, "{job}");
        if statuses.contains(&job["status"].as_str().unwrap_or("")) {
            return job;
        }
        assert!(
            start.elapsed() < timeout,
            "job {id} not {statuses:?} after {timeout:?}: {job}\nlogs: {}",
            api.call("GET", &format!("{path}/logs"), Some(admin), None)
                .1
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Replicas of one cluster, cleaned up last first: the first replica's storage volume is used
/// by the others and can only go once their containers are gone.
pub struct Replicas(pub Vec<TestReplica>);

impl Replicas {
    pub fn new(n: usize) -> Self {
        Replicas((0..n).map(|_| TestReplica::new()).collect())
    }
}

impl std::ops::Deref for Replicas {
    type Target = Vec<TestReplica>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for Replicas {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl Drop for Replicas {
    fn drop(&mut self) {
        while let Some(r) = self.0.pop() {
            drop(r);
        }
    }
}

/// `psql` on the `dtr` database in `dtr-rethinkdb-<replica>`: the rows, unaligned, no header.
pub fn psql(replica: &str, sql: &str) -> String {
    docker_ok(&[
        "exec",
        &format!("dtr-rethinkdb-{replica}"),
        "psql",
        "-XqAt",
        "-d",
        "dtr",
        "-c",
        sql,
    ])
}

pub fn lines(s: &str) -> Vec<String> {
    s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect()
}

pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A volume made by the test itself, as a user would (no dtr labels); removed on drop.
pub struct UserVolume(pub String);

impl UserVolume {
    pub fn create(name: &str) -> Self {
        ledger::note(&format!("volume {name}"));
        docker_ok(&["volume", "create", name]);
        UserVolume(name.to_string())
    }

    pub fn exists(&self) -> bool {
        docker(&["volume", "inspect", &self.0]).status.success()
    }
}

impl Drop for UserVolume {
    fn drop(&mut self) {
        docker(&["volume", "rm", "-f", &self.0]);
        if !self.exists() {
            ledger::cross_out(&format!("volume {}", self.0));
        }
    }
}
