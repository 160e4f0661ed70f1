//! The tests' one HTTP client: curl, as an operator would type it (`--noproxy '*'` always), behind
//! a small request builder; bodies go through stdin, never on the command line (some are large).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

/// One request, sent with [`Request::send`].
#[derive(Debug, Clone)]
pub struct Request {
    method: String,
    url: String,
    ca: Option<PathBuf>,
    basic: Option<String>,
    headers: Vec<String>,
    body: Option<Vec<u8>>,
    timeout_secs: u32,
    resolve: Vec<String>,
    unix_socket: Option<PathBuf>,
    follow: bool,
}

/// What came back. `status` is 0 when there was no HTTP answer (see `failure`).
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    /// The header lines of the (last, with `follow`) answer, names as sent.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// curl's own complaint when it exited with an error (connection refused, TLS, timeout,
    /// a transfer cut short), with its exit code.
    pub failure: Option<String>,
}

impl Request {
    pub fn new(method: &str, url: impl Into<String>) -> Request {
        Request {
            method: method.to_string(),
            url: url.into(),
            ca: None,
            basic: None,
            headers: Vec::new(),
            body: None,
            timeout_secs: 30,
            resolve: Vec::new(),
            unix_socket: None,
            follow: false,
        }
    }

    pub fn get(url: impl Into<String>) -> Request {
        Request::new("GET", url)
    }

    pub fn post(url: impl Into<String>) -> Request {
        Request::new("POST", url)
    }

    /// Verify the server with this CA file (`--cacert`).
    pub fn ca(mut self, path: &Path) -> Request {
        self.ca = Some(path.to_path_buf());
        self
    }

    /// Basic credentials (`-u user:password`).
    pub fn basic(mut self, user: &str, password: &str) -> Request {
        self.basic = Some(format!("{user}:{password}"));
        self
    }

    /// A header line, `Name: value`.
    pub fn header(mut self, line: &str) -> Request {
        self.headers.push(line.to_string());
        self
    }

    /// `value` as the JSON body.
    pub fn json(self, value: &Value) -> Request {
        self.json_bytes(serde_json::to_vec(value).unwrap())
    }

    /// `bytes` as a body labelled JSON, whatever they are (malformed JSON is how a refusal is
    /// tested).
    pub fn json_bytes(self, bytes: impl Into<Vec<u8>>) -> Request {
        self.header("Content-Type: application/json").body(bytes)
    }

    /// The raw body (an empty one still makes a body of length 0).
    pub fn body(mut self, bytes: impl Into<Vec<u8>>) -> Request {
        self.body = Some(bytes.into());
        self
    }

    /// The whole request may take this long (`-m`); 30 s unless set.
    pub fn timeout(mut self, secs: u32) -> Request {
        self.timeout_secs = secs;
        self
    }

    /// `--resolve host:port:address`: a name the resolver does not know.
    pub fn resolve(mut self, host_port_address: &str) -> Request {
        self.resolve.push(host_port_address.to_string());
        self
    }

    /// Talk HTTP over this Unix socket (the Docker engine's API).
    pub fn unix_socket(mut self, path: &Path) -> Request {
        self.unix_socket = Some(path.to_path_buf());
        self
    }

    /// Follow redirects (`-L`).
    pub fn follow(mut self) -> Request {
        self.follow = true;
        self
    }

    pub fn send(&self) -> Response {
        let dir = tempfile::tempdir().expect("a scratch directory for curl");
        let (head, out) = (dir.path().join("headers"), dir.path().join("body"));
        let mut cmd = Command::new("curl");
        cmd.args(["-sS", "--noproxy", "*", "-X", &self.method])
            .args(["-m", &self.timeout_secs.to_string()])
            .arg("-D")
            .arg(&head)
            .arg("-o")
            .arg(&out)
            .args(["-w", "%{http_code}"]);
        if let Some(ca) = &self.ca {
            cmd.arg("--cacert").arg(ca);
        }
        if let Some(creds) = &self.basic {
            cmd.args(["-u", creds]);
        }
        for h in &self.headers {
            cmd.args(["-H", h]);
        }
        for r in &self.resolve {
            cmd.args(["--resolve", r]);
        }
        if let Some(socket) = &self.unix_socket {
            cmd.arg("--unix-socket").arg(socket);
        }
        if self.follow {
            cmd.arg("-L");
        }
        if self.body.is_some() {
            cmd.args(["--data-binary", "@-"]);
        }
        let mut child = cmd
            .arg(&self.url)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run curl");
        {
            // curl reads all of `@-` before it sends: writing first cannot block on its output
            let mut stdin = child.stdin.take().unwrap();
            if let Some(b) = &self.body {
                stdin.write_all(b).expect("write the body to curl");
            }
        }
        let done = child.wait_with_output().expect("wait for curl");
        let failure = (!done.status.success()).then(|| {
            format!(
                "curl {} {}: {} ({})",
                self.method,
                self.url,
                String::from_utf8_lossy(&done.stderr).trim(),
                done.status
            )
        });
        Response {
            status: String::from_utf8_lossy(&done.stdout)
                .trim()
                .parse()
                .unwrap_or(0),
            headers: last_header_block(&std::fs::read_to_string(&head).unwrap_or_default()),
            body: std::fs::read(&out).unwrap_or_default(),
            failure,
        }
    }
}

/// The header lines of the last answer in curl's `-D` file (one block per answer: a redirect,
/// a `100 Continue`, then the final one).
fn last_header_block(dump: &str) -> Vec<(String, String)> {
    let mut headers = Vec::new();
    for line in dump.lines().map(str::trim_end) {
        if line.starts_with("HTTP/") {
            headers.clear();
        } else if let Some((name, value)) = line.split_once(':') {
            headers.push((name.to_string(), value.trim().to_string()));
        }
    }
    headers
}

impl Response {
    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).to_string()
    }

    /// The body as JSON; a body that is not JSON as a JSON string of its text (Null when empty),
    /// so that a failure message still shows what came back.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|_| {
            if self.body.is_empty() {
                Value::Null
            } else {
                Value::String(self.text())
            }
        })
    }

    /// The first header of that name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

impl std::fmt::Display for Response {
    /// Status, curl's complaint if any, headers and the start of the body: for failure messages.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HTTP {}", self.status)?;
        if let Some(failure) = &self.failure {
            write!(f, " ({failure})")?;
        }
        for (n, v) in &self.headers {
            write!(f, "\n{n}: {v}")?;
        }
        let text = self.text();
        write!(f, "\n\n{}", text.chars().take(2000).collect::<String>())
    }
}

/// A DTR endpoint as a client sees it: its base URL (`https://host:port`) and the CA that
/// verifies it. Requests take a path, or a whole URL (as a `Location` header gives).
#[derive(Debug, Clone)]
pub struct Api {
    pub base: String,
    pub ca: PathBuf,
}

impl Api {
    pub fn new(base: impl Into<String>, ca: &Path) -> Api {
        Api {
            base: base.into(),
            ca: ca.to_path_buf(),
        }
    }

    pub fn request(&self, method: &str, path_or_url: &str) -> Request {
        let url = if path_or_url.starts_with("http") {
            path_or_url.to_string()
        } else {
            format!("{}{path_or_url}", self.base)
        };
        Request::new(method, url).ca(&self.ca)
    }

    /// `method path` as `auth` (user, password), with an optional JSON body: (status, body as
    /// [`Response::json`] reads it).
    pub fn call(
        &self,
        method: &str,
        path: &str,
        auth: Option<(&str, &str)>,
        json: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self.request(method, path);
        if let Some((user, password)) = auth {
            req = req.basic(user, password);
        }
        if let Some(body) = json {
            req = req.json(&body);
        }
        let resp = req.send();
        (resp.status, resp.json())
    }
}
