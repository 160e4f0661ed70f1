//! A stand-in for MKE (Mirantis Kubernetes Engine, formerly Docker UCP) for the tests of the MKE
//! target. Real MKE cannot run on the test machine, so this models the part the bootstrapper
//! talks to: TLS with MKE's own CA (served at `/ca`), `/_ping`, `POST /auth/login` handing out
//! session tokens, and the Docker Engine API behind `Authorization: Bearer <token>`, forwarded
//! to the local engine on /var/run/docker.sock — streamed both ways, connection upgrades
//! (attached exec, attach) included — with MKE's classic-Swarm placement of containers
//! (`constraint:node==NAME` in the create request's Env). What is and is not modelled:
//! docs/testing-mke-standin.md.
//!
//! It runs on its own tokio runtime on a background thread, so tests need no runtime of their
//! own to use it; dropping the `MkeStandIn` stops it.
#![allow(dead_code)]

use std::collections::HashSet;
use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

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
    let version_request = parts.method == Method::GET && api_path(parts.uri.path()) == "/version";
    let body = if parts.method == Method::POST && api_path(parts.uri.path()) == "/containers/create"
    {
        match schedule(&state, &mut parts, body).await {
            Ok(body) => body,
            Err(refusal) => return refusal,
        }
    } else {
        body.map_err(BoxError::from).boxed_unsync()
    };

    state.forwarded.fetch_add(1, Ordering::SeqCst);
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
    let mut response = match to_engine(request).await {
        Ok(response) => response,
        Err(e) => {
            return docker_error(
                StatusCode::BAD_GATEWAY,
                &format!("MKE stand-in: the engine at {ENGINE_SOCKET} did not answer: {e}"),
            )
        }
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

/// The scheduler of a container create (classic Swarm as MKE runs it): takes the
/// `constraint:node==NAME` entries out of Env, checks the node against the engine's nodes and
/// the admin setting, and records the placement. The body to forward, or the refusal.
async fn schedule(
    state: &State,
    parts: &mut http::request::Parts,
    body: Incoming,
) -> Result<Body, Response<Body>> {
    let bytes = read_small(body).await?;
    let name = parts
        .uri
        .query()
        .and_then(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .find(|(k, _)| k == "name")
                .map(|(_, v)| v.into_owned())
        })
        .unwrap_or_default();
    let Ok(mut config) = serde_json::from_slice::<Value>(&bytes) else {
        // not JSON: the engine says what is wrong with it
        record(state, name, None);
        return Ok(full(bytes));
    };

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
    let Some(wanted) = nodes_named.first().cloned() else {
        record(state, name, None);
        return Ok(full(bytes));
    };

    let unsatisfiable = || {
        let conditions: Vec<String> = nodes_named.iter().map(|n| format!("node=={n}")).collect();
        docker_error(
            StatusCode::BAD_REQUEST,
            &format!(
                "Unable to find a node that satisfies the following conditions [{}]",
                conditions.join(" ")
            ),
        )
    };
    if nodes_named.iter().any(|n| *n != wanted) {
        return Err(unsatisfiable()); // two different nodes: no node is both
    }
    let nodes = engine_nodes().await.map_err(|e| {
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

/// The engine's swarm nodes (`GET /nodes`), as JSON.
async fn engine_nodes() -> Result<Vec<Value>, BoxError> {
    let request = Request::get("/nodes")
        .header(header::HOST, "docker")
        .body(Empty::new().map_err(BoxError::from).boxed_unsync())?;
    let response = to_engine(request).await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    if !status.is_success() {
        return Err(format!("{status}: {}", String::from_utf8_lossy(&body).trim()).into());
    }
    Ok(serde_json::from_slice(&body)?)
}

/// Sends one request to the engine on a connection of its own (cheap on a unix socket, and an
/// upgraded connection cannot be reused anyway).
async fn to_engine(request: Request<Body>) -> Result<Response<Incoming>, BoxError> {
    let stream = tokio::net::UnixStream::connect(ENGINE_SOCKET).await?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake::<_, Body>(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = connection.with_upgrades().await;
    });
    Ok(sender.send_request(request).await?)
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
