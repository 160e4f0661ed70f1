//! A stand-in for MKE (Mirantis Kubernetes Engine, formerly Docker UCP) for the tests of the MKE
//! target. Real MKE cannot run on the test machine, so this models the part the bootstrapper
//! talks to: TLS with MKE's own CA (served at `/ca`), `/_ping`, `POST /auth/login` handing out
//! session tokens, and the Docker Engine API behind `Authorization: Bearer <token>`, forwarded
//! to the local engine on /var/run/docker.sock — streamed both ways, connection upgrades
//! (attached exec, attach) included — with MKE's classic-Swarm placement of containers
//! (`constraint:node==NAME` in the create request's Env). With `MkeOptions::nodes` it fronts
//! several engines (the multi-node harness, common/nodes.rs) as one MKE does: each request goes
//! to the node that holds what it names, listings are the nodes' answers together, volumes and
//! local networks are made on every node. What is and is not modelled:
//! docs/testing-mke-standin.md.
//!
//! It runs on its own tokio runtime on a background thread, so tests need no runtime of their
//! own to use it; dropping the `MkeStandIn` stops it.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rand::distr::{Alphanumeric, SampleString};
use serde_json::{json, Value};

/// Where the stand-in finds the engine it fronts.
const ENGINE_SOCKET: &str = "/var/run/docker.sock";

/// The environment entry of a create request that names the node (classic Swarm's syntax).
const NODE_CONSTRAINT: &str = "constraint:node==";

/// MKE's refusal when no node may take the container (here: the named node is a manager and
/// administrators may not deploy on managers).
pub const NO_NODE_MESSAGE: &str =
    "could not find any nodes on which the container could be created";

/// Bodies the stand-in reads whole (login, container create) are small; anything larger is
/// refused rather than buffered.
const SMALL_BODY_LIMIT: usize = 4 << 20;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// One body type for everything the stand-in sends or relays: its own small answers and the
/// client's or engine's streamed bodies.
type Body = UnsyncBoxBody<Bytes, BoxError>;

/// What the stand-in accepts and how its scheduler behaves.
#[derive(Debug, Clone)]
pub struct MkeOptions {
    pub username: String,
    pub password: String,
    /// MKE's admin setting "Allow administrators to deploy containers on MKE managers or nodes
    /// running DTR". When false, a create placed on a manager node is refused.
    pub admins_on_managers: bool,
    /// Tokens are handed out but never honoured by the Docker API (a session that expires at
    /// once, or a token MKE revoked): every API call is refused with 401.
    pub expire_tokens: bool,
    /// Answer `GET /version` as MKE does, with `"Version": "ucp/<version>"` (the engine's own
    /// version otherwise), so that a client can tell MKE from an engine.
    pub report_as_mke: bool,
    /// The engines to front, as (node name = its swarm hostname, path of its engine's unix
    /// socket), in order: the first is asked first for what any manager can answer. Empty (the
    /// default): the local engine at /var/run/docker.sock alone, every request forwarded to it.
    pub nodes: Vec<(String, String)>,
}

impl Default for MkeOptions {
    /// User `admin` with a random 16-character password; administrators may use managers.
    fn default() -> Self {
        MkeOptions {
            username: "admin".into(),
            password: random_string(16),
            admins_on_managers: true,
            expire_tokens: false,
            report_as_mke: false,
            nodes: Vec::new(),
        }
    }
}

/// A running stand-in, listening on 127.0.0.1 (a random free port) until dropped.
pub struct MkeStandIn {
    port: u16,
    state: Arc<State>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// What the server tasks share with the handle: settings, issued tokens, counters.
struct State {
    opts: MkeOptions,
    ca_pem: String,
    /// A client bundle's certificate and key (PEM), signed by the CA: MKE's other way in.
    bundle: (String, String),
    tokens: Mutex<HashSet<String>>,
    logins_ok: AtomicUsize,
    logins_refused: AtomicUsize,
    rejected: AtomicUsize,
    forwarded: AtomicUsize,
    placements: Mutex<Vec<(String, Option<String>)>>,
    /// The engines fronted: the local one, or `MkeOptions::nodes`.
    engines: Vec<Engine>,
    /// Multi-node mode (`MkeOptions::nodes` given).
    multi: bool,
    /// Where each container is: id or name as a client named it → (engine, full id).
    containers: Mutex<HashMap<String, (usize, String)>>,
    /// Where each exec was created: exec id → engine.
    execs: Mutex<HashMap<String, usize>>,
    /// The manager last found to answer, and when.
    manager: Mutex<Option<(usize, Instant)>>,
    /// Client requests that reached each engine (lookups of the stand-in's own not counted).
    per_node: Mutex<BTreeMap<String, usize>>,
    /// Every container create that an engine accepted, in order: (`?name=`, node).
    created_on: Mutex<Vec<(String, String)>>,
}

/// One engine the stand-in fronts: its node's name (empty for the local engine) and socket.
struct Engine {
    name: String,
    socket: String,
}

impl MkeStandIn {
    /// Generates a CA and a server certificate for 127.0.0.1 and localhost, binds a free port
    /// on 127.0.0.1 and serves on a background thread. Panics if any of that fails.
    pub fn start(opts: MkeOptions) -> MkeStandIn {
        let (ca_pem, bundle, tls) = tls_config();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the MKE stand-in");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let port = listener.local_addr().expect("listener address").port();
        let multi = !opts.nodes.is_empty();
        let engines = if multi {
            opts.nodes
                .iter()
                .map(|(name, socket)| Engine {
                    name: name.clone(),
                    socket: socket.clone(),
                })
                .collect()
        } else {
            vec![Engine {
                name: String::new(),
                socket: ENGINE_SOCKET.to_string(),
            }]
        };
        let state = Arc::new(State {
            opts,
            ca_pem,
            bundle,
            tokens: Mutex::default(),
            logins_ok: AtomicUsize::new(0),
            logins_refused: AtomicUsize::new(0),
            rejected: AtomicUsize::new(0),
            forwarded: AtomicUsize::new(0),
            placements: Mutex::default(),
            engines,
            multi,
            containers: Mutex::default(),
            execs: Mutex::default(),
            manager: Mutex::default(),
            per_node: Mutex::default(),
            created_on: Mutex::default(),
        });
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let served = state.clone();
        let thread = std::thread::Builder::new()
            .name(format!("mke-stand-in-{port}"))
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .expect("tokio runtime of the MKE stand-in");
                runtime.block_on(serve(listener, tls, served, stopped));
                // connection tasks still running (an attached exec nobody closed) go with it
                runtime.shutdown_background();
            })
            .expect("thread of the MKE stand-in");
        MkeStandIn {
            port,
            state,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// `https://127.0.0.1:PORT`, no trailing slash.
    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The stand-in's CA certificate (PEM), the one its server certificate chains to.
    pub fn ca_pem(&self) -> String {
        self.state.ca_pem.clone()
    }

    /// Writes a client bundle into `dir` as MKE's `env.sh` expects it: `ca.pem`, `cert.pem`,
    /// `key.pem` (for DOCKER_HOST=tcp://127.0.0.1:PORT, DOCKER_TLS_VERIFY=1,
    /// DOCKER_CERT_PATH=dir). Requests over a connection that presented the certificate need no
    /// session token.
    pub fn write_client_bundle(&self, dir: &std::path::Path) {
        std::fs::write(dir.join("ca.pem"), &self.state.ca_pem).unwrap();
        std::fs::write(dir.join("cert.pem"), &self.state.bundle.0).unwrap();
        std::fs::write(dir.join("key.pem"), &self.state.bundle.1).unwrap();
    }

    pub fn username(&self) -> &str {
        &self.state.opts.username
    }

    pub fn password(&self) -> &str {
        &self.state.opts.password
    }

    /// `docker run registry/dtr:<version> upgrade --existing-replica-id <existing>` through this
    /// stand-in, as an operator runs the next version's bootstrapper from its image (host
    /// network: the stand-in listens on 127.0.0.1); the output, whatever the exit.
    pub fn upgrade_from_image(&self, version: &str, existing: &str) -> std::process::Output {
        let name = format!("dtr-mke-upgrade-{existing}");
        let out = std::process::Command::new("docker")
            .args(["run", "--rm", "--name", &name, "--network", "host"])
            .args(["-e", "UCP_PASSWORD"])
            .arg(format!("registry/dtr:{version}"))
            .args(["upgrade", "--existing-replica-id", existing])
            .args(["--ucp-url", &self.url(), "--ucp-username", self.username()])
            .args(["--ucp-ca", &self.ca_pem()])
            .env("UCP_PASSWORD", self.password())
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        let _ = std::process::Command::new("docker")
            .args(["rm", "-f", &name])
            .output();
        out
    }

    /// Logins so far: (accepted, refused). Refused counts wrong credentials (401) and
    /// malformed requests (400).
    pub fn logins(&self) -> (usize, usize) {
        (
            self.state.logins_ok.load(Ordering::SeqCst),
            self.state.logins_refused.load(Ordering::SeqCst),
        )
    }

    /// Docker API requests refused for a missing or unknown session token.
    pub fn rejected_requests(&self) -> usize {
        self.state.rejected.load(Ordering::SeqCst)
    }

    /// Docker API requests forwarded to the engine (whatever the engine answered).
    pub fn forwarded_requests(&self) -> usize {
        self.state.forwarded.load(Ordering::SeqCst)
    }

    /// Every container create forwarded to the engine, in order: the name from `?name=` (empty
    /// when none) and the node of its `constraint:node==` entry. Creates the scheduler refused
    /// (unknown node, manager not allowed) are not in it.
    pub fn placements(&self) -> Vec<(String, Option<String>)> {
        self.state.placements.lock().unwrap().clone()
    }

    /// Multi-node mode: every container create an engine accepted, in order, as (the `?name=`
    /// value, the node it went to) — the constraint's node, or the one the stand-in chose.
    pub fn created_on(&self) -> Vec<(String, String)> {
        self.state.created_on.lock().unwrap().clone()
    }

    /// Multi-node mode: how many client requests reached each node's engine (a listing or a
    /// volume create counts on every node it went to; the stand-in's own look-ups do not count).
    pub fn requests_per_node(&self) -> BTreeMap<String, usize> {
        self.state.per_node.lock().unwrap().clone()
    }
}

impl Drop for MkeStandIn {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// What `GET /version` says with `MkeOptions::report_as_mke`, as MKE 3.7 does.
pub const MKE_VERSION: &str = "ucp/3.7.0";

fn random_string(len: usize) -> String {
    Alphanumeric.sample_string(&mut rand::rng(), len)
}

/// A fresh CA, a server certificate it signed for 127.0.0.1 and localhost, and a client
/// bundle's certificate; the CA's PEM, the bundle (certificate, key) and the TLS settings
/// (HTTP/1.1 only; a client certificate of that CA is verified when presented, not required).
fn tls_config() -> (String, (String, String), Arc<rustls::ServerConfig>) {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, KeyUsagePurpose,
    };
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca_params = CertificateParams::default();
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "MKE stand-in root CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca_params.self_signed(&ca_key).expect("CA certificate");
    let issuer = Issuer::new(ca_params, ca_key);

    let key = KeyPair::generate().expect("server key");
    // new() makes "127.0.0.1" an IP SAN and "localhost" a DNS SAN
    let mut params = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".into()])
        .expect("server certificate names");
    params
        .distinguished_name
        .push(DnType::CommonName, "MKE stand-in");
    params.use_authority_key_identifier_extension = true;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let cert = params.signed_by(&key, &issuer).expect("server certificate");

    let client_key = KeyPair::generate().expect("client bundle key");
    let mut client_params = CertificateParams::default();
    client_params
        .distinguished_name
        .push(DnType::CommonName, "admin (client bundle)");
    client_params.use_authority_key_identifier_extension = true;
    client_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    client_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let client_cert = client_params
        .signed_by(&client_key, &issuer)
        .expect("client bundle certificate");

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(ca_cert.der().clone())
        .expect("the CA as a client root");
    let client_verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .allow_unauthenticated()
    .build()
    .expect("client certificate verifier");
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_client_cert_verifier(client_verifier)
        .with_single_cert(
            vec![cert.der().clone()],
            rustls::pki_types::PrivatePkcs8KeyDer::from(key.serialize_der()).into(),
        )
        .expect("TLS server settings");
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    (
        ca_cert.pem(),
        (client_cert.pem(), client_key.serialize_pem()),
        Arc::new(config),
    )
}

/// Accepts connections until `stopped` fires; each one is TLS then HTTP/1.1 with upgrades.
async fn serve(
    listener: std::net::TcpListener,
    tls: Arc<rustls::ServerConfig>,
    state: Arc<State>,
    mut stopped: tokio::sync::oneshot::Receiver<()>,
) {
    let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    loop {
        let tcp = tokio::select! {
            _ = &mut stopped => return,
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => tcp,
                Err(_) => continue,
            },
        };
        let acceptor = acceptor.clone();
        let state = state.clone();
        tokio::spawn(async move {
            let Ok(Ok(stream)) =
                tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await
            else {
                return; // a failed handshake (a client that does not trust the CA) ends here
            };
            // rustls has verified it against the CA: a client bundle's certificate
            let bundle = stream.get_ref().1.peer_certificates().is_some();
            let service = hyper::service::service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(handle(state, bundle, req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades()
                .await;
        });
    }
}

/// MKE's own endpoints, else the Docker Engine API.
async fn handle(state: Arc<State>, bundle: bool, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path();
    let method = req.method();
    if method == Method::GET && path == "/ca" {
        return answer(StatusCode::OK, "text/plain", state.ca_pem.clone());
    }
    if (method == Method::GET || method == Method::HEAD) && api_path(path) == "/_ping" {
        return answer(StatusCode::OK, "text/plain", "OK");
    }
    if method == Method::POST && path == "/auth/login" {
        return login(&state, req).await;
    }
    docker_api(state, bundle, req).await
}

/// `POST /auth/login`: a new session token for the right username and password.
async fn login(state: &State, req: Request<Incoming>) -> Response<Body> {
    let body = match read_small(req.into_body()).await {
        Ok(body) => body,
        Err(response) => {
            state.logins_refused.fetch_add(1, Ordering::SeqCst);
            return response;
        }
    };
    let credentials = serde_json::from_slice::<Value>(&body).ok().and_then(|v| {
        let field = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
        Some((field("username")?, field("password")?))
    });
    let Some((username, password)) = credentials else {
        state.logins_refused.fetch_add(1, Ordering::SeqCst);
        return mke_error(
            StatusCode::BAD_REQUEST,
            "INVALID_JSON",
            "invalid JSON: expected {\"username\": \"...\", \"password\": \"...\"}",
        );
    };
    if username != state.opts.username || password != state.opts.password {
        state.logins_refused.fetch_add(1, Ordering::SeqCst);
        return mke_error(
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
            "invalid username or password",
        );
    }
    let token = random_string(40);
    if !state.opts.expire_tokens {
        state.tokens.lock().unwrap().insert(token.clone());
    }
    state.logins_ok.fetch_add(1, Ordering::SeqCst);
    json_answer(StatusCode::OK, &json!({ "auth_token": token }))
}

/// The Docker Engine API: a session token, the scheduler for container creates, then the
/// engine.
async fn docker_api(state: Arc<State>, bundle: bool, mut req: Request<Incoming>) -> Response<Body> {
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim().to_string());
    let known = bundle || token.is_some_and(|t| state.tokens.lock().unwrap().contains(&t));
    if !known {
        state.rejected.fetch_add(1, Ordering::SeqCst);
        return docker_error(
            StatusCode::UNAUTHORIZED,
            "unauthorized: missing or invalid session token",
        );
    }

    // Taken before the request is taken apart: resolves once hyper has sent our 101 and hands
    // over the client's connection.
    let client_upgrade = req
        .headers()
        .contains_key(header::UPGRADE)
        .then(|| hyper::upgrade::on(&mut req));
    let (mut parts, body) = req.into_parts();
    if state.multi {
        return route(&state, parts, body, client_upgrade).await;
    }
    let body = if parts.method == Method::POST && api_path(parts.uri.path()) == "/containers/create"
    {
        match schedule(&state, &mut parts, body).await {
            Ok(body) => body,
            Err(refusal) => return refusal,
        }
    } else {
        body.map_err(BoxError::from).boxed_unsync()
    };
    forward(&state, 0, parts, body, client_upgrade).await
}

/// Sends one client request to engine `idx` and relays its answer as it comes: the body
/// streamed, a connection upgrade (101) relayed both ways, `GET /version` rewritten when the
/// stand-in reports itself as MKE. An engine that does not answer: 502 naming it.
async fn forward(
    state: &State,
    idx: usize,
    mut parts: http::request::Parts,
    body: Body,
    client_upgrade: Option<hyper::upgrade::OnUpgrade>,
) -> Response<Body> {
    let version_request = parts.method == Method::GET && api_path(parts.uri.path()) == "/version";
    state.forwarded.fetch_add(1, Ordering::SeqCst);
    count(state, idx);
    let upgrading = client_upgrade.is_some();
    forward_headers(&mut parts.headers, upgrading);
    parts
        .headers
        .entry(header::HOST)
        .or_insert(HeaderValue::from_static("docker"));
    let mut request = Request::from_parts(parts, body);
    // the engine gets the origin form (path and query) of what the client asked for
    *request.uri_mut() = request
        .uri()
        .path_and_query()
        .map(|pq| pq.as_str())
        .unwrap_or("/")
        .parse()
        .expect("a path and query is a URI");
    let mut response = match to_engine(&state.engines[idx].socket, request).await {
        Ok(response) => response,
        Err(e) => return unreachable_engine(state, idx, &e),
    };

    if response.status() == StatusCode::SWITCHING_PROTOCOLS {
        if let Some(client_upgrade) = client_upgrade {
            // Both sides switch to raw bytes after the 101: relay them until both are done.
            let engine_upgrade = hyper::upgrade::on(&mut response);
            tokio::spawn(async move {
                if let (Ok(client), Ok(engine)) = tokio::join!(client_upgrade, engine_upgrade) {
                    let _ = tokio::io::copy_bidirectional(
                        &mut TokioIo::new(client),
                        &mut TokioIo::new(engine),
                    )
                    .await;
                }
            });
        }
    }
    if version_request && state.opts.report_as_mke && response.status() == StatusCode::OK {
        // MKE answers with its own version; the engine's API version stays
        let status = response.status();
        let body = response.into_body().collect().await.map(|b| b.to_bytes());
        let mut version: Value = body
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        version["Version"] = json!(MKE_VERSION);
        return json_answer(status, &version);
    }
    // The answer itself: a 101's headers, or any other response (a hijacked exec's 200 raw
    // stream too) with its body relayed frame by frame as the engine sends it.
    let (mut parts, body) = response.into_parts();
    forward_headers(
        &mut parts.headers,
        parts.status == StatusCode::SWITCHING_PROTOCOLS,
    );
    Response::from_parts(parts, body.map_err(BoxError::from).boxed_unsync())
}

/// 502 for a request the engine `idx` did not take (its node killed, its socket gone).
fn unreachable_engine(state: &State, idx: usize, e: &BoxError) -> Response<Body> {
    let engine = &state.engines[idx];
    let message = if state.multi {
        format!(
            "MKE stand-in: the engine of node {} ({}) did not answer: {e}",
            engine.name, engine.socket
        )
    } else {
        format!(
            "MKE stand-in: the engine at {} did not answer: {e}",
            engine.socket
        )
    };
    docker_error(StatusCode::BAD_GATEWAY, &message)
}

fn count(state: &State, idx: usize) {
    if state.multi {
        *state
            .per_node
            .lock()
            .unwrap()
            .entry(state.engines[idx].name.clone())
            .or_default() += 1;
    }
}

/// The scheduler of a container create (classic Swarm as MKE runs it): takes the
/// `constraint:node==NAME` entries out of Env, checks the node against the engine's nodes and
/// the admin setting, and records the placement. The body to forward, or the refusal.
async fn schedule(
    state: &State,
    parts: &mut http::request::Parts,
    body: Incoming,
) -> Result<Body, Response<Body>> {
    let bytes = read_small(body).await?;
    let name = query_param(parts, "name");
    let Ok(mut config) = serde_json::from_slice::<Value>(&bytes) else {
        // not JSON: the engine says what is wrong with it
        record(state, name, None);
        return Ok(full(bytes));
    };

    let nodes_named = take_constraints(&mut config);
    let Some(wanted) = nodes_named.first().cloned() else {
        record(state, name, None);
        return Ok(full(bytes));
    };

    let unsatisfiable = || unsatisfiable(&nodes_named);
    if nodes_named.iter().any(|n| *n != wanted) {
        return Err(unsatisfiable()); // two different nodes: no node is both
    }
    let nodes = engine_nodes(ENGINE_SOCKET).await.map_err(|e| {
        docker_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("MKE stand-in: cannot list the engine's nodes: {e}"),
        )
    })?;
    let node = nodes.iter().find(|n| {
        n["ID"].as_str() == Some(wanted.as_str())
            || n["Description"]["Hostname"].as_str() == Some(wanted.as_str())
    });
    let Some(node) = node else {
        return Err(unsatisfiable());
    };
    if !state.opts.admins_on_managers && node["Spec"]["Role"].as_str() == Some("manager") {
        return Err(docker_error(StatusCode::BAD_REQUEST, NO_NODE_MESSAGE));
    }

    record(state, name, Some(wanted));
    let bytes = Bytes::from(serde_json::to_vec(&config).expect("JSON serializes"));
    parts.headers.remove(header::TRANSFER_ENCODING);
    parts
        .headers
        .insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
    Ok(full(bytes))
}

fn record(state: &State, name: String, node: Option<String>) {
    state.placements.lock().unwrap().push((name, node));
}

/// Takes the `constraint:node==NAME` entries out of a create body's Env: the names.
fn take_constraints(config: &mut Value) -> Vec<String> {
    let mut nodes_named = Vec::new();
    if let Some(env) = config.get_mut("Env").and_then(Value::as_array_mut) {
        env.retain(
            |entry| match entry.as_str().and_then(|e| e.strip_prefix(NODE_CONSTRAINT)) {
                Some(node) => {
                    nodes_named.push(node.to_string());
                    false
                }
                None => true,
            },
        );
    }
    nodes_named
}

/// classic Swarm's refusal when no node meets the constraints
fn unsatisfiable(nodes_named: &[String]) -> Response<Body> {
    let conditions: Vec<String> = nodes_named.iter().map(|n| format!("node=={n}")).collect();
    docker_error(
        StatusCode::BAD_REQUEST,
        &format!(
            "Unable to find a node that satisfies the following conditions [{}]",
            conditions.join(" ")
        ),
    )
}

/// The `?name=` of a request, empty when none.
fn query_param(parts: &http::request::Parts, key: &str) -> String {
    parts
        .uri
        .query()
        .and_then(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.into_owned())
        })
        .unwrap_or_default()
}

/// The swarm nodes (`GET /nodes`) as the engine at `socket` lists them, as JSON.
async fn engine_nodes(socket: &str) -> Result<Vec<Value>, BoxError> {
    let request = Request::get("/nodes")
        .header(header::HOST, "docker")
        .body(Empty::new().map_err(BoxError::from).boxed_unsync())?;
    let response = to_engine(socket, request).await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    if !status.is_success() {
        return Err(format!("{status}: {}", String::from_utf8_lossy(&body).trim()).into());
    }
    Ok(serde_json::from_slice(&body)?)
}

/// Sends one request to the engine on a connection of its own (cheap on a unix socket, and an
/// upgraded connection cannot be reused anyway).
async fn to_engine(socket: &str, request: Request<Body>) -> Result<Response<Incoming>, BoxError> {
    let stream = tokio::net::UnixStream::connect(socket).await?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake::<_, Body>(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = connection.with_upgrades().await;
    });
    Ok(sender.send_request(request).await?)
}

// ---------------------------------------------------------------------------------------------
// Multi-node mode (`MkeOptions::nodes`): classic Swarm in front of several engines.

/// An engine's answer read whole (look-ups, listings, fan-outs).
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

/// How long the stand-in waits for one buffered answer of an engine.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a manager found to answer is used without being asked `GET /nodes` again (its
/// socket is still tried each time).
const MANAGER_TTL: Duration = Duration::from_secs(2);

/// Which engine a request goes to, by what it names; what a listing or a volume or network
/// change needs from every engine is done here too.
async fn route(
    state: &Arc<State>,
    parts: http::request::Parts,
    body: Incoming,
    client_upgrade: Option<hyper::upgrade::OnUpgrade>,
) -> Response<Body> {
    let path = api_path(parts.uri.path()).to_string();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let method = parts.method.clone();
    match (&method, segments.as_slice()) {
        (&Method::POST, ["containers", "create"]) => create_on_a_node(state, parts, body).await,
        (&Method::GET, ["containers", "json"]) => listing(state, parts, Listing::Containers).await,
        (_, ["containers", reference, rest @ ..]) if *reference != "prune" => {
            let (reference, rest) = (reference.to_string(), rest.join("/"));
            container_request(state, parts, body, client_upgrade, &reference, &rest).await
        }
        (_, ["exec", id, ..]) => {
            let id = id.to_string();
            match locate_exec(state, &id).await {
                Ok(idx) => forward(state, idx, parts, stream(body), client_upgrade).await,
                Err(refusal) => refusal,
            }
        }
        (&Method::GET, ["volumes"]) => listing(state, parts, Listing::Volumes).await,
        (&Method::POST, ["volumes", "create"]) => volume_create(state, parts, body).await,
        (&Method::GET, ["volumes", _]) | (&Method::GET, ["networks", _]) => {
            first_having(state, parts).await
        }
        (&Method::DELETE, ["volumes", _]) => volume_remove(state, parts).await,
        (&Method::GET, ["networks"]) => listing(state, parts, Listing::Networks).await,
        (&Method::POST, ["networks", "create"]) => network_create(state, parts, body).await,
        (&Method::POST, ["networks", _, "connect" | "disconnect"]) => {
            network_attach(state, parts, body).await
        }
        (&Method::DELETE, ["networks", reference]) => {
            let reference = reference.to_string();
            network_remove(state, parts, &reference).await
        }
        _ => match manager(state).await {
            Ok(idx) => forward(state, idx, parts, stream(body), client_upgrade).await,
            Err(refusal) => refusal,
        },
    }
}

fn stream(body: Incoming) -> Body {
    body.map_err(BoxError::from).boxed_unsync()
}

fn path_and_query(parts: &http::request::Parts) -> String {
    parts
        .uri
        .path_and_query()
        .map(|pq| pq.as_str().to_string())
        .unwrap_or_else(|| "/".into())
}

/// The client's headers as an engine may see them in a request of the stand-in's own making
/// (the body is sent whole: its length is set anew).
fn headers_to_pass(headers: &HeaderMap) -> HeaderMap {
    let mut headers = headers.clone();
    forward_headers(&mut headers, false);
    headers.remove(header::CONTENT_LENGTH);
    headers.remove(header::HOST);
    headers
}

/// One request to engine `idx`, both bodies whole.
async fn call(
    state: &State,
    idx: usize,
    method: Method,
    path_and_query: &str,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Answer, BoxError> {
    let mut request = Request::builder()
        .method(method)
        .uri(path_and_query)
        .header(header::HOST, "docker");
    for (name, value) in headers {
        request = request.header(name, value);
    }
    if !body.is_empty() {
        request = request.header(header::CONTENT_LENGTH, body.len());
    }
    let request = request.body(full(body))?;
    let exchange = async {
        let response = to_engine(&state.engines[idx].socket, request).await?;
        let (parts, body) = response.into_parts();
        let body = body.collect().await?.to_bytes();
        Ok::<_, BoxError>(Answer {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    };
    tokio::time::timeout(CALL_TIMEOUT, exchange)
        .await
        .map_err(|_| format!("no answer within {CALL_TIMEOUT:?}"))?
}

/// The same request to every engine at once; the answers in engine order.
async fn call_all(
    state: &State,
    method: &Method,
    path_and_query: &str,
    headers: &HeaderMap,
    body: &Bytes,
) -> Vec<Result<Answer, BoxError>> {
    futures_util::future::join_all((0..state.engines.len()).map(|idx| {
        call(
            state,
            idx,
            method.clone(),
            path_and_query,
            headers,
            body.clone(),
        )
    }))
    .await
}

/// An engine's buffered answer as the client's.
fn relay(answer: Answer) -> Response<Body> {
    let mut response = Response::new(full(answer.body));
    *response.status_mut() = answer.status;
    *response.headers_mut() = answer.headers;
    forward_headers(response.headers_mut(), false);
    response.headers_mut().remove(header::CONTENT_LENGTH);
    response
}

/// The answer of a request sent to several engines: the first refusal (in engine order) if
/// one refused, else the first success; 502 naming the nodes when none answered.
fn one_answer(state: &State, answers: Vec<Result<Answer, BoxError>>) -> Response<Body> {
    let mut success = None;
    let mut unreachable = Vec::new();
    for (idx, answer) in answers.into_iter().enumerate() {
        match answer {
            Ok(a) if !a.status.is_success() => return relay(a),
            Ok(a) => {
                success.get_or_insert(a);
            }
            Err(e) => unreachable.push(format!("{}: {e}", state.engines[idx].name)),
        }
    }
    match success {
        Some(a) => relay(a),
        None => no_engine_answered(&unreachable),
    }
}

fn no_engine_answered(failures: &[String]) -> Response<Body> {
    docker_error(
        StatusCode::BAD_GATEWAY,
        &format!(
            "MKE stand-in: no node's engine answered ({})",
            failures.join("; ")
        ),
    )
}

/// The first engine in order that answers `GET /nodes` (a manager of a swarm with a leader):
/// where everything that is not about one node's objects goes (`/info`, `/version`, `/nodes`,
/// `/swarm`, services, secrets, images, events, ...).
async fn manager(state: &State) -> Result<usize, Response<Body>> {
    let cached = *state.manager.lock().unwrap();
    if let Some((idx, when)) = cached {
        // a killed node's socket refuses at once: never handed out from the cache
        if when.elapsed() < MANAGER_TTL
            && tokio::net::UnixStream::connect(&state.engines[idx].socket)
                .await
                .is_ok()
        {
            return Ok(idx);
        }
    }
    let mut seen = Vec::new();
    for idx in 0..state.engines.len() {
        let probe = tokio::time::timeout(
            Duration::from_secs(5),
            call(
                state,
                idx,
                Method::GET,
                "/nodes",
                &HeaderMap::new(),
                Bytes::new(),
            ),
        )
        .await;
        match probe {
            Ok(Ok(a)) if a.status == StatusCode::OK => {
                *state.manager.lock().unwrap() = Some((idx, Instant::now()));
                return Ok(idx);
            }
            Ok(Ok(a)) => seen.push(format!(
                "{}: {} {}",
                state.engines[idx].name,
                a.status,
                String::from_utf8_lossy(&a.body).trim()
            )),
            Ok(Err(e)) => seen.push(format!("{}: {e}", state.engines[idx].name)),
            Err(_) => seen.push(format!("{}: no answer within 5s", state.engines[idx].name)),
        }
    }
    Err(docker_error(
        StatusCode::BAD_GATEWAY,
        &format!(
            "MKE stand-in: no manager of the swarm answers ({})",
            seen.join("; ")
        ),
    ))
}

/// The engine of the node whose swarm hostname or node id is `wanted`, with that node's
/// description; None when the swarm has no such node or the stand-in does not front it.
fn engine_of_node(state: &State, nodes: &[Value], wanted: &str) -> Option<(usize, Value)> {
    let node = nodes.iter().find(|n| {
        n["ID"].as_str() == Some(wanted) || n["Description"]["Hostname"].as_str() == Some(wanted)
    })?;
    let hostname = node["Description"]["Hostname"].as_str()?;
    let idx = state.engines.iter().position(|e| e.name == hostname)?;
    Some((idx, node.clone()))
}

/// `POST /containers/create` in multi-node mode: the node of the `constraint:node==` entry,
/// or (none) the node with the fewest containers of those that may take it (classic Swarm's
/// "spread" strategy; ties go to the first in order). The container is remembered as on it.
async fn create_on_a_node(
    state: &State,
    mut parts: http::request::Parts,
    body: Incoming,
) -> Response<Body> {
    let bytes = match read_small(body).await {
        Ok(bytes) => bytes,
        Err(refusal) => return refusal,
    };
    let name = query_param(&parts, "name");
    let manager_idx = match manager(state).await {
        Ok(idx) => idx,
        Err(refusal) => return refusal,
    };
    let nodes = match engine_nodes(&state.engines[manager_idx].socket).await {
        Ok(nodes) => nodes,
        Err(e) => {
            return docker_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("MKE stand-in: cannot list the swarm's nodes: {e}"),
            )
        }
    };
    let mut config = serde_json::from_slice::<Value>(&bytes).ok();
    let nodes_named = config.as_mut().map(take_constraints).unwrap_or_default();
    let idx = if let Some(wanted) = nodes_named.first() {
        if nodes_named.iter().any(|n| n != wanted) {
            return unsatisfiable(&nodes_named);
        }
        let Some((idx, node)) = engine_of_node(state, &nodes, wanted) else {
            return unsatisfiable(&nodes_named);
        };
        if !state.opts.admins_on_managers && node["Spec"]["Role"].as_str() == Some("manager") {
            return docker_error(StatusCode::BAD_REQUEST, NO_NODE_MESSAGE);
        }
        idx
    } else {
        match spread(state, &nodes).await {
            Some(idx) => idx,
            None => return docker_error(StatusCode::BAD_REQUEST, NO_NODE_MESSAGE),
        }
    };
    record(state, name.clone(), nodes_named.first().cloned());

    let body = match &config {
        Some(config) => Bytes::from(serde_json::to_vec(config).expect("JSON serializes")),
        None => bytes, // not JSON: the engine says what is wrong with it
    };
    state.forwarded.fetch_add(1, Ordering::SeqCst);
    count(state, idx);
    let headers = headers_to_pass(&parts.headers);
    parts.headers = HeaderMap::new();
    let answer = match call(
        state,
        idx,
        Method::POST,
        &path_and_query(&parts),
        &headers,
        body,
    )
    .await
    {
        Ok(answer) => answer,
        Err(e) => return unreachable_engine(state, idx, &e),
    };
    if answer.status == StatusCode::CREATED {
        let id = serde_json::from_slice::<Value>(&answer.body)
            .ok()
            .and_then(|v| v["Id"].as_str().map(String::from))
            .unwrap_or_default();
        let mut containers = state.containers.lock().unwrap();
        containers.insert(id.clone(), (idx, id.clone()));
        if !name.is_empty() {
            containers.insert(name.clone(), (idx, id));
        }
        state
            .created_on
            .lock()
            .unwrap()
            .push((name, state.engines[idx].name.clone()));
    }
    relay(answer)
}

/// Classic Swarm's "spread": of the engines that answer and may take a container (with
/// `admins_on_managers` false: workers only), the one holding the fewest containers.
async fn spread(state: &State, nodes: &[Value]) -> Option<usize> {
    let counts = call_all(
        state,
        &Method::GET,
        "/containers/json?all=1",
        &HeaderMap::new(),
        &Bytes::new(),
    )
    .await;
    counts
        .into_iter()
        .enumerate()
        .filter_map(|(idx, answer)| {
            let answer = answer.ok().filter(|a| a.status == StatusCode::OK)?;
            let held = serde_json::from_slice::<Vec<Value>>(&answer.body)
                .ok()?
                .len();
            if !state.opts.admins_on_managers {
                let (_, node) = engine_of_node(state, nodes, &state.engines[idx].name)?;
                if node["Spec"]["Role"].as_str() == Some("manager") {
                    return None;
                }
            }
            Some((held, idx))
        })
        .min()
        .map(|(_, idx)| idx)
}

/// The engine that holds the container a client names (id, id prefix or name): remembered,
/// or asked of every engine. Not found on any engine that answers: Docker's 404.
async fn locate_container(state: &State, reference: &str) -> Result<usize, Response<Body>> {
    if let Some((idx, _)) = state.containers.lock().unwrap().get(reference) {
        return Ok(*idx);
    }
    let path = format!("/containers/{reference}/json");
    let answers = call_all(state, &Method::GET, &path, &HeaderMap::new(), &Bytes::new()).await;
    for (idx, answer) in answers.into_iter().enumerate() {
        let Ok(answer) = answer else { continue };
        if answer.status != StatusCode::OK {
            continue;
        }
        let details: Value = serde_json::from_slice(&answer.body).unwrap_or_default();
        let id = details["Id"].as_str().unwrap_or(reference).to_string();
        let mut containers = state.containers.lock().unwrap();
        containers.insert(reference.to_string(), (idx, id.clone()));
        containers.insert(id.clone(), (idx, id.clone()));
        if let Some(name) = details["Name"].as_str() {
            containers.insert(name.trim_start_matches('/').to_string(), (idx, id));
        }
        return Ok(idx);
    }
    Err(docker_error(
        StatusCode::NOT_FOUND,
        &format!("No such container: {reference}"),
    ))
}

/// Forgets every name and id that led to the container `reference` named.
fn forget_container(state: &State, reference: &str) {
    let mut containers = state.containers.lock().unwrap();
    if let Some((_, id)) = containers.get(reference).cloned() {
        containers.retain(|_, (_, other)| *other != id);
    }
    containers.remove(reference);
}

/// A request about one container (`/containers/{reference}/{rest}`), on its node. An exec
/// created there is remembered as on that node; a removed container is forgotten, a renamed
/// one known by its new name.
async fn container_request(
    state: &State,
    parts: http::request::Parts,
    body: Incoming,
    client_upgrade: Option<hyper::upgrade::OnUpgrade>,
    reference: &str,
    rest: &str,
) -> Response<Body> {
    let idx = match locate_container(state, reference).await {
        Ok(idx) => idx,
        Err(refusal) => return refusal,
    };
    let method = parts.method.clone();
    if method == Method::POST && rest == "exec" {
        let bytes = match read_small(body).await {
            Ok(bytes) => bytes,
            Err(refusal) => return refusal,
        };
        state.forwarded.fetch_add(1, Ordering::SeqCst);
        count(state, idx);
        let headers = headers_to_pass(&parts.headers);
        return match call(state, idx, method, &path_and_query(&parts), &headers, bytes).await {
            Ok(answer) => {
                if answer.status == StatusCode::CREATED {
                    if let Some(id) = serde_json::from_slice::<Value>(&answer.body)
                        .ok()
                        .and_then(|v| v["Id"].as_str().map(String::from))
                    {
                        state.execs.lock().unwrap().insert(id, idx);
                    }
                }
                relay(answer)
            }
            Err(e) => unreachable_engine(state, idx, &e),
        };
    }
    let new_name = query_param(&parts, "name");
    let response = forward(state, idx, parts, stream(body), client_upgrade).await;
    let status = response.status();
    if method == Method::DELETE && rest.is_empty() && status.is_success() {
        forget_container(state, reference);
    } else if method == Method::POST && rest == "rename" && status.is_success() {
        let mut containers = state.containers.lock().unwrap();
        if let Some((idx, id)) = containers.get(reference).cloned() {
            containers.retain(|name, (_, other)| *other != id || *name == id);
            containers.insert(new_name, (idx, id));
        }
    } else if status == StatusCode::NOT_FOUND && rest.is_empty() {
        // gone behind the stand-in's back (removed straight on the node): ask again next time
        forget_container(state, reference);
    }
    response
}

/// The engine where exec `id` was created: remembered, or asked of every engine.
async fn locate_exec(state: &State, id: &str) -> Result<usize, Response<Body>> {
    if let Some(idx) = state.execs.lock().unwrap().get(id) {
        return Ok(*idx);
    }
    let path = format!("/exec/{id}/json");
    let answers = call_all(state, &Method::GET, &path, &HeaderMap::new(), &Bytes::new()).await;
    for (idx, answer) in answers.into_iter().enumerate() {
        if answer.is_ok_and(|a| a.status == StatusCode::OK) {
            state.execs.lock().unwrap().insert(id.to_string(), idx);
            return Ok(idx);
        }
    }
    Err(docker_error(
        StatusCode::NOT_FOUND,
        &format!("No such exec instance: {id}"),
    ))
}

#[derive(Clone, Copy)]
enum Listing {
    Containers,
    Volumes,
    Networks,
}

/// `GET /containers/json`, `/volumes`, `/networks` (query and filters as given) of every engine
/// that answers, together: each entry as its engine gave it; a volume name once (the first
/// node's), a swarm-scoped network once (by id). Engines that do not answer are left out.
async fn listing(state: &State, parts: http::request::Parts, kind: Listing) -> Response<Body> {
    state.forwarded.fetch_add(1, Ordering::SeqCst);
    let headers = headers_to_pass(&parts.headers);
    let answers = call_all(
        state,
        &Method::GET,
        &path_and_query(&parts),
        &headers,
        &Bytes::new(),
    )
    .await;
    let mut lists = Vec::new();
    let mut failures = Vec::new();
    let mut refusal = None;
    for (idx, answer) in answers.into_iter().enumerate() {
        match answer {
            Ok(a) if a.status == StatusCode::OK => {
                count(state, idx);
                match serde_json::from_slice::<Value>(&a.body) {
                    Ok(v) => lists.push(v),
                    Err(e) => failures.push(format!("{}: {e}", state.engines[idx].name)),
                }
            }
            Ok(a) => {
                count(state, idx);
                refusal.get_or_insert(a);
            }
            Err(e) => failures.push(format!("{}: {e}", state.engines[idx].name)),
        }
    }
    if lists.is_empty() {
        return match refusal {
            Some(a) => relay(a),
            None => no_engine_answered(&failures),
        };
    }
    let merged = match kind {
        Listing::Containers => Value::Array(
            lists
                .into_iter()
                .flat_map(|l| l.as_array().cloned().unwrap_or_default())
                .collect(),
        ),
        Listing::Networks => {
            let mut seen = HashSet::new();
            Value::Array(
                lists
                    .into_iter()
                    .flat_map(|l| l.as_array().cloned().unwrap_or_default())
                    .filter(|n| {
                        n["Scope"] != "swarm"
                            || seen.insert(n["Id"].as_str().unwrap_or("").to_string())
                    })
                    .collect(),
            )
        }
        Listing::Volumes => {
            let mut seen = HashSet::new();
            let mut volumes = Vec::new();
            let mut warnings = Vec::new();
            for l in lists {
                for v in l["Volumes"].as_array().cloned().unwrap_or_default() {
                    if seen.insert(v["Name"].as_str().unwrap_or("").to_string()) {
                        volumes.push(v);
                    }
                }
                warnings.extend(l["Warnings"].as_array().cloned().unwrap_or_default());
            }
            let warnings = if warnings.is_empty() {
                Value::Null
            } else {
                Value::Array(warnings)
            };
            json!({ "Volumes": volumes, "Warnings": warnings })
        }
    };
    json_answer(StatusCode::OK, &merged)
}

/// `GET /volumes/{name}`, `GET /networks/{reference}`: the first engine in order that has it;
/// else the first engine's refusal (404).
async fn first_having(state: &State, parts: http::request::Parts) -> Response<Body> {
    state.forwarded.fetch_add(1, Ordering::SeqCst);
    let headers = headers_to_pass(&parts.headers);
    let answers = call_all(
        state,
        &Method::GET,
        &path_and_query(&parts),
        &headers,
        &Bytes::new(),
    )
    .await;
    let mut refusal = None;
    let mut failures = Vec::new();
    for (idx, answer) in answers.into_iter().enumerate() {
        match answer {
            Ok(a) if a.status == StatusCode::OK => {
                count(state, idx);
                return relay(a);
            }
            Ok(a) => {
                refusal.get_or_insert(a);
            }
            Err(e) => failures.push(format!("{}: {e}", state.engines[idx].name)),
        }
    }
    match refusal {
        Some(a) => relay(a),
        None => no_engine_answered(&failures),
    }
}

/// `POST /volumes/create`: made on every node whose engine answers, as classic Swarm does for a
/// named volume; the first node's answer, or the first refusal.
async fn volume_create(
    state: &State,
    parts: http::request::Parts,
    body: Incoming,
) -> Response<Body> {
    let bytes = match read_small(body).await {
        Ok(bytes) => bytes,
        Err(refusal) => return refusal,
    };
    state.forwarded.fetch_add(1, Ordering::SeqCst);
    let headers = headers_to_pass(&parts.headers);
    let answers = call_all(
        state,
        &Method::POST,
        &path_and_query(&parts),
        &headers,
        &bytes,
    )
    .await;
    count_answered(state, &answers);
    one_answer(state, answers)
}

fn count_answered(state: &State, answers: &[Result<Answer, BoxError>]) {
    for (idx, answer) in answers.iter().enumerate() {
        if answer.is_ok() {
            count(state, idx);
        }
    }
}

/// `DELETE /volumes/{name}`: on every node; removed (204) when it went from any and no engine
/// refused otherwise than with 404 (a volume in use: that engine's 409).
async fn volume_remove(state: &State, parts: http::request::Parts) -> Response<Body> {
    state.forwarded.fetch_add(1, Ordering::SeqCst);
    let headers = headers_to_pass(&parts.headers);
    let answers = call_all(
        state,
        &Method::DELETE,
        &path_and_query(&parts),
        &headers,
        &Bytes::new(),
    )
    .await;
    count_answered(state, &answers);
    let mut removed = None;
    let mut not_found = None;
    let mut failures = Vec::new();
    for (idx, answer) in answers.into_iter().enumerate() {
        match answer {
            Ok(a) if a.status.is_success() => {
                removed.get_or_insert(a);
            }
            Ok(a) if a.status == StatusCode::NOT_FOUND => {
                not_found.get_or_insert(a);
            }
            Ok(a) => return relay(a),
            Err(e) => failures.push(format!("{}: {e}", state.engines[idx].name)),
        }
    }
    match removed.or(not_found) {
        Some(a) => relay(a),
        None => no_engine_answered(&failures),
    }
}

/// `POST /networks/create`: an overlay (or any swarm-scoped network) once, through a manager;
/// a local one (bridge, ...) on every node whose engine answers and has none of that name. When
/// every node has one, the first engine answers the request as it is.
async fn network_create(
    state: &State,
    parts: http::request::Parts,
    body: Incoming,
) -> Response<Body> {
    let bytes = match read_small(body).await {
        Ok(bytes) => bytes,
        Err(refusal) => return refusal,
    };
    state.forwarded.fetch_add(1, Ordering::SeqCst);
    let headers = headers_to_pass(&parts.headers);
    let pq = path_and_query(&parts);
    let config: Value = serde_json::from_slice(&bytes).unwrap_or_default();
    let swarm_scoped = config["Driver"] == "overlay" || config["Scope"] == "swarm";
    let name = config["Name"].as_str().unwrap_or("").to_string();
    if swarm_scoped || name.is_empty() {
        let idx = match manager(state).await {
            Ok(idx) => idx,
            Err(refusal) => return refusal,
        };
        count(state, idx);
        return match call(state, idx, Method::POST, &pq, &headers, bytes).await {
            Ok(answer) => relay(answer),
            Err(e) => unreachable_engine(state, idx, &e),
        };
    }
    let inspect = format!("/networks/{name}");
    let present = call_all(
        state,
        &Method::GET,
        &inspect,
        &HeaderMap::new(),
        &Bytes::new(),
    )
    .await;
    let lacking: Vec<usize> = present
        .iter()
        .enumerate()
        .filter(|(_, a)| a.as_ref().is_ok_and(|a| a.status == StatusCode::NOT_FOUND))
        .map(|(idx, _)| idx)
        .collect();
    let targets = if lacking.is_empty() {
        // every node has it (or none answers): the first that answers says what it says
        let first = present.iter().position(|a| a.is_ok());
        first.into_iter().collect()
    } else {
        lacking
    };
    if targets.is_empty() {
        let failures: Vec<String> = present
            .iter()
            .enumerate()
            .filter_map(|(idx, a)| {
                a.as_ref()
                    .err()
                    .map(|e| format!("{}: {e}", state.engines[idx].name))
            })
            .collect();
        return no_engine_answered(&failures);
    }
    let answers = futures_util::future::join_all(targets.iter().map(|idx| {
        count(state, *idx);
        call(state, *idx, Method::POST, &pq, &headers, bytes.clone())
    }))
    .await;
    one_answer(state, answers)
}

/// `POST /networks/{id}/connect|disconnect`: on the node of the container the body names.
async fn network_attach(
    state: &State,
    parts: http::request::Parts,
    body: Incoming,
) -> Response<Body> {
    let bytes = match read_small(body).await {
        Ok(bytes) => bytes,
        Err(refusal) => return refusal,
    };
    let config: Value = serde_json::from_slice(&bytes).unwrap_or_default();
    let idx = match config["Container"].as_str() {
        Some(container) => match locate_container(state, container).await {
            Ok(idx) => idx,
            Err(refusal) => return refusal,
        },
        None => match manager(state).await {
            Ok(idx) => idx,
            Err(refusal) => return refusal,
        },
    };
    state.forwarded.fetch_add(1, Ordering::SeqCst);
    count(state, idx);
    let headers = headers_to_pass(&parts.headers);
    match call(
        state,
        idx,
        Method::POST,
        &path_and_query(&parts),
        &headers,
        bytes,
    )
    .await
    {
        Ok(answer) => relay(answer),
        Err(e) => unreachable_engine(state, idx, &e),
    }
}

/// `DELETE /networks/{reference}`: a swarm-scoped network once, through the first engine that
/// has it; a local one on every node that has one by that name or id.
async fn network_remove(
    state: &State,
    parts: http::request::Parts,
    reference: &str,
) -> Response<Body> {
    state.forwarded.fetch_add(1, Ordering::SeqCst);
    let inspect = format!("/networks/{reference}");
    let present = call_all(
        state,
        &Method::GET,
        &inspect,
        &HeaderMap::new(),
        &Bytes::new(),
    )
    .await;
    let mut having = Vec::new();
    let mut refusal = None;
    let mut failures = Vec::new();
    for (idx, answer) in present.into_iter().enumerate() {
        match answer {
            Ok(a) if a.status == StatusCode::OK => {
                let details: Value = serde_json::from_slice(&a.body).unwrap_or_default();
                having.push((idx, details["Scope"] == "swarm"));
            }
            Ok(a) => {
                refusal.get_or_insert(a);
            }
            Err(e) => failures.push(format!("{}: {e}", state.engines[idx].name)),
        }
    }
    if having.is_empty() {
        return match refusal {
            Some(a) => relay(a),
            None => no_engine_answered(&failures),
        };
    }
    let targets: Vec<usize> = match having.iter().find(|(_, swarm)| *swarm) {
        Some((idx, _)) => vec![*idx],
        None => having.iter().map(|(idx, _)| *idx).collect(),
    };
    let headers = headers_to_pass(&parts.headers);
    let pq = path_and_query(&parts);
    let answers = futures_util::future::join_all(targets.iter().map(|idx| {
        count(state, *idx);
        call(state, *idx, Method::DELETE, &pq, &headers, Bytes::new())
    }))
    .await;
    one_answer(state, answers)
}

/// Drops what must not cross a proxy: the client's credentials for MKE, and the hop-by-hop
/// headers (RFC 9110 7.6.1) — except `Connection`/`Upgrade` of an upgrade, which the other
/// side must see. `Expect` is handled by the stand-in's own HTTP server. Without
/// `Transfer-Encoding`, hyper frames each body anew (Content-Length stays when there is one).
fn forward_headers(headers: &mut HeaderMap, upgrading: bool) {
    let named_by_connection: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named_by_connection {
        if !(upgrading && name == header::UPGRADE) {
            headers.remove(name);
        }
    }
    for name in [
        header::AUTHORIZATION,
        header::PROXY_AUTHORIZATION,
        header::PROXY_AUTHENTICATE,
        header::TE,
        header::TRAILER,
        header::TRANSFER_ENCODING,
        header::EXPECT,
        HeaderName::from_static("keep-alive"),
    ] {
        headers.remove(name);
    }
    if !upgrading {
        headers.remove(header::CONNECTION);
        headers.remove(header::UPGRADE);
    }
}

/// A body read whole, up to SMALL_BODY_LIMIT; a Docker-style 400 or 413 otherwise.
async fn read_small(body: Incoming) -> Result<Bytes, Response<Body>> {
    match Limited::new(body, SMALL_BODY_LIMIT).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(docker_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "MKE stand-in: request body too large",
        )),
        Err(e) => Err(docker_error(
            StatusCode::BAD_REQUEST,
            &format!("reading the request body: {e}"),
        )),
    }
}

/// The path without the API version prefix: `/v1.41/containers/create` → `/containers/create`.
fn api_path(path: &str) -> &str {
    let Some(rest) = path.strip_prefix("/v") else {
        return path;
    };
    let (version, tail) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let is_version = !version.is_empty()
        && version.starts_with(|c: char| c.is_ascii_digit())
        && version.chars().all(|c| c.is_ascii_digit() || c == '.');
    if is_version {
        if tail.is_empty() {
            "/"
        } else {
            tail
        }
    } else {
        path
    }
}

fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

fn answer(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Body> {
    let mut response = Response::new(full(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

fn json_answer(status: StatusCode, value: &Value) -> Response<Body> {
    answer(status, "application/json", value.to_string())
}

/// An error as the Docker Engine API words it (and MKE in front of it): `{"message": ...}`.
fn docker_error(status: StatusCode, message: &str) -> Response<Body> {
    json_answer(status, &json!({ "message": message }))
}

/// An error of MKE's own API (auth): `{"errors": [{"code": ..., "message": ...}]}`.
fn mke_error(status: StatusCode, code: &str, message: &str) -> Response<Body> {
    json_answer(
        status,
        &json!({ "errors": [{ "code": code, "message": message }] }),
    )
}
