//! A replica installed for one test with a docker client set up to use it (registry, content
//! trust, API calls): shared by the registry and backup tests.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use super::*;
use serde_json::Value;

/// The docker CLI's content-trust environment of the tests (passphrases made up for them).
pub const TRUST: [(&str, &str); 3] = [
    ("DOCKER_CONTENT_TRUST", "1"),
    ("DOCKER_CONTENT_TRUST_ROOT_PASSPHRASE", "root-passphrase-1"),
    (
        "DOCKER_CONTENT_TRUST_REPOSITORY_PASSPHRASE",
        "repo-passphrase-1",
    ),
];

/// A replica installed for one test, and a docker client set up to use it: the daemon trusts
/// the CA through /etc/docker/certs.d/<authority>/, the CLI (logins, trust keys) lives in a
/// private DOCKER_CONFIG. Everything is removed on drop.
pub struct Registry {
    pub replica: TestReplica,
    pub authority: String,
    pub ca: PathBuf,
    pub dir: tempfile::TempDir,
    pub certs_d: PathBuf,
    pub images: std::sync::Mutex<Vec<String>>,
}

impl Registry {
    pub fn install() -> Registry {
        Registry::install_with(&[])
    }

    /// `install` with `extra` flags.
    pub fn install_with(extra: &[&str]) -> Registry {
        let replica = TestReplica::new();
        let authority = format!("127.0.0.1:{}", replica.https_port);
        let mut flags = vec!["--dtr-external-url", authority.as_str()];
        flags.extend_from_slice(extra);
        let out = replica.install(&flags);
        assert!(out.status.success(), "install failed:\n{}", text(&out));
        Registry::attach(replica, &authority)
    }

    /// A client for the cluster of `replica` (installed), reached at `authority` (its
    /// external URL: the replica itself or a load balancer in front of the cluster).
    pub fn attach(replica: TestReplica, authority: &str) -> Registry {
        let ca = replica.external_ca();
        Registry::attach_with_ca(replica, authority, &ca)
    }

    /// A client of a cluster the test already has a `Registry` for, at another address or
    /// with another CA (after `reconfigure`); it owns no replica of its own.
    pub fn attach_client(authority: &str, ca_pem: &str) -> Registry {
        Registry::attach_with_ca(TestReplica::new(), authority, ca_pem)
    }

    fn attach_with_ca(replica: TestReplica, authority: &str, ca_pem: &str) -> Registry {
        let authority = authority.to_string();
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, ca_pem).unwrap();
        let certs_d = PathBuf::from(format!("/etc/docker/certs.d/{authority}"));
        std::fs::create_dir_all(&certs_d).unwrap();
        std::fs::copy(&ca, certs_d.join("ca.crt")).unwrap();
        // the notary client of the CLI looks for the CA here
        let tls = dir.path().join("config/tls").join(&authority);
        std::fs::create_dir_all(&tls).unwrap();
        std::fs::copy(&ca, tls.join("ca.crt")).unwrap();
        Registry {
            replica,
            authority,
            ca,
            dir,
            certs_d,
            images: Default::default(),
        }
    }

    /// The docker CLI with this test's own configuration directory.
    pub fn docker(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = Command::new("docker");
        cmd.args(args)
            .env("DOCKER_CONFIG", self.dir.path().join("config"))
            .stdin(Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    }

    pub fn docker_ok(&self, args: &[&str], env: &[(&str, &str)]) -> String {
        let out = self.docker(args, env);
        assert!(out.status.success(), "docker {args:?}:\n{}", text(&out));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    pub fn login(&self, user: &str, secret: &str) -> Output {
        let mut cmd = Command::new("docker");
        cmd.args(["login", &self.authority, "-u", user, "--password-stdin"])
            .env("DOCKER_CONFIG", self.dir.path().join("config"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(secret.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    }

    /// `docker login` that must succeed; its output in the failure.
    pub fn login_ok(&self, user: &str, secret: &str) {
        let out = self.login(user, secret);
        assert!(
            out.status.success(),
            "docker login {} as {user} failed:\n{}",
            self.authority,
            crate::common::text(&out)
        );
    }

    /// A small image of `size` random bytes named `<authority>/<repo>:<tag>`.
    pub fn make_image(&self, repo_tag: &str, size: usize) -> String {
        let name = format!("{}/{repo_tag}", self.authority);
        let data: Vec<u8> = (0..size).map(|_| rand_byte()).collect();
        import_image(self.dir.path(), &name, &data);
        self.images.lock().unwrap().push(name.clone());
        name
    }

    /// Pushes `image`; the digest the registry answered.
    pub fn push(&self, image: &str) -> String {
        let pushed = self.docker_ok(&["push", image], &[]);
        pushed
            .split("digest: ")
            .nth(1)
            .and_then(|s| s.split_whitespace().next())
            .unwrap()
            .to_string()
    }

    /// A small image `<authority>/<repo_tag>` pushed with content trust; its name.
    pub fn push_signed(&self, repo_tag: &str) -> String {
        let signed = self.make_image(repo_tag, 1024);
        let out = self.docker_ok(&["push", &signed], &TRUST);
        assert!(out.contains("Successfully signed"), "{out}");
        signed
    }

    /// The API at the registry's authority, verified with its CA.
    pub fn client(&self) -> http::Api {
        http::Api::new(format!("https://{}", self.authority), &self.ca)
    }

    /// `method path` against the API as `auth`, with an optional body sent as JSON as it is
    /// (malformed on purpose, sometimes): (status, JSON body, or the text as a JSON string).
    /// Queues the job `body` (`{"action": ...}`) as the administrator, waits for it to end and
    /// checks it is done: the finished job.
    pub fn run_job(&self, body: &str, timeout: std::time::Duration) -> Value {
        let (code, job) = self.api("POST", "/api/v0/jobs", self.admin(), Some(body));
        assert_eq!(code, 202, "{job}");
        let job = wait_for_job(
            &self.client(),
            ("admin", admin_password()),
            job["id"].as_i64().unwrap(),
            &["done", "failed"],
            timeout,
        );
        assert_eq!(job["status"], "done", "{job}");
        job
    }

    pub fn api(
        &self,
        method: &str,
        path: &str,
        auth: Option<(&str, &str)>,
        body: Option<&str>,
    ) -> (u16, Value) {
        let mut req = self.client().request(method, path);
        if let Some((user, password)) = auth {
            req = req.basic(user, password);
        }
        if let Some(b) = body {
            req = req.json_bytes(b);
        }
        let resp = req.send();
        (resp.status, resp.json())
    }

    pub fn admin(&self) -> Option<(&str, &str)> {
        Some(("admin", admin_password()))
    }

    /// Bytes under the registry's blob store.
    pub fn blob_bytes(&self) -> u64 {
        let vol = format!("dtr-registry-{}:/s:ro", self.replica.id);
        let image = format!("registry/dtr:{}", dtr_core::version::VERSION);
        let out = docker_ok(&[
            "run",
            "--rm",
            "-v",
            &vol,
            "--entrypoint",
            "du",
            &image,
            "-sb",
            "/s/docker/registry/v2/blobs",
        ]);
        out.split_whitespace().next().unwrap().parse().unwrap()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        for image in self.images.lock().unwrap().iter() {
            docker(&["rmi", "-f", image]);
        }
        let _ = std::fs::remove_dir_all(&self.certs_d);
    }
}

/// `docker import` of one layer holding a file `data`, as image `name`; `work` is a scratch
/// directory.
pub fn import_image(work: &std::path::Path, name: &str, data: &[u8]) {
    let layer = work.join("layer");
    std::fs::create_dir_all(&layer).unwrap();
    std::fs::write(layer.join("data"), data).unwrap();
    let tar = Command::new("tar")
        .arg("-C")
        .arg(&layer)
        .args(["-c", "."])
        .output()
        .unwrap();
    let mut import = Command::new("docker")
        .args(["import", "-", name])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    use std::io::Write;
    import.stdin.take().unwrap().write_all(&tar.stdout).unwrap();
    assert!(import.wait().unwrap().success());
}

pub fn rand_byte() -> u8 {
    rand::random()
}

/// The grants of the token `/auth/token` signs for `service` and `scope` as `auth` (it must
/// answer 200), and the token.
pub fn token_grants(
    c: &http::Api,
    service: &str,
    auth: (&str, &str),
    scope: &str,
) -> (Vec<Value>, String) {
    let url = format!("/auth/token?service={service}&scope={scope}");
    let (code, v) = c.call("GET", &url, Some(auth), None);
    assert_eq!(code, 200, "{v}");
    let jwt = v["token"].as_str().unwrap().to_string();
    let payload = jwt.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(
        &data_encoding::BASE64URL_NOPAD
            .decode(payload.as_bytes())
            .unwrap(),
    )
    .unwrap();
    (
        claims["access"].as_array().cloned().unwrap_or_default(),
        jwt,
    )
}
