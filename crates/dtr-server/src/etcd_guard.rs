//! `dtr etcd-guard --listen 0.0.0.0:2379 --upstream 127.0.0.1:2378 -- etcd ARGS...`: runs etcd
//! (listening on the container's loopback only) behind the replica's etcd client port, and lets
//! each client certificate do what `dtr_core::contract::etcd_access` grants its CN.
//!
//! - CN `etcd` (the members, the bootstrapper's `etcdctl`): the TLS stream is passed to etcd
//!   unchanged (gRPC included), re-encrypted with the member's own certificate.
//! - Any other CN: etcd's JSON gateway only (HTTP/1.1 or 2). Each request's path and body are read
//!   into the keys it names ([`wants`]); one refused key refuses the request with 403 and the
//!   gateway's error shape (`code` 7, permission denied). Allowed requests go on to etcd with
//!   the member's certificate, and their answers (watches included) stream back.
//!
//! The process exits with etcd's exit code; SIGTERM and SIGINT are passed on to it.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use data_encoding::BASE64;
use dtr_core::contract::etcd_access::{self, Access, Want};
use dtr_core::options::LogLevel;
use http_body_util::{combinators::BoxBody, BodyExt, Full, Limited, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use rustls::pki_types::ServerName;
use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::error::{Error, Result};
use crate::runtime::{log, read_certs, read_key};

/// A request body larger than this is refused (etcd's own limit for a request is 1.5 MiB).
const BODY_LIMIT: usize = 2 << 20;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

pub struct GuardConfig {
    pub listen: String,
    pub upstream: String,
    pub ca_file: String,
    pub cert_file: String,
    pub key_file: String,
    pub log_level: LogLevel,
    pub program: Vec<String>,
}

struct Guard {
    upstream: String,
    /// To etcd, as the member: for the passed-through streams (ALPN set per connection).
    upstream_tls: rustls::ClientConfig,
    /// To etcd's gateway, as the member: for the requests that were allowed.
    http: reqwest::Client,
    log_level: LogLevel,
}

type Body = BoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn server_tls(cfg: &GuardConfig) -> Result<rustls::ServerConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for c in read_certs(&cfg.ca_file)? {
        roots.add(c).map_err(|e| Error::tls("cluster CA", e))?;
    }
    let verifier =
        rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
            .build()
            .map_err(|e| Error::tls("client verifier", e))?;
    let mut tls = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::tls("protocol versions", e))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(read_certs(&cfg.cert_file)?, read_key(&cfg.key_file)?)
        .map_err(|e| Error::tls("etcd certificate", e))?;
    // gRPC (etcdctl, members) needs h2; the roles and Patroni speak HTTP/1.1
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(tls)
}

fn client_tls(cfg: &GuardConfig) -> Result<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for c in read_certs(&cfg.ca_file)? {
        roots.add(c).map_err(|e| Error::tls("cluster CA", e))?;
    }
    rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::tls("protocol versions", e))?
        .with_root_certificates(roots)
        .with_client_auth_cert(read_certs(&cfg.cert_file)?, read_key(&cfg.key_file)?)
        .map_err(|e| Error::tls("etcd client certificate", e))
}

/// The CN of a client's certificate (the verifier already checked it against the cluster CA).
fn common_name(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let cn = cert.subject().iter_common_name().next()?;
    cn.as_str().ok().map(str::to_string)
}

fn decoded(v: &Value) -> Vec<u8> {
    v.as_str()
        .and_then(|s| BASE64.decode(s.as_bytes()).ok())
        .unwrap_or_default()
}

fn range(v: &Value, access: Access) -> Want {
    Want::Keys {
        key: decoded(&v["key"]),
        range_end: decoded(&v["range_end"]),
        access,
    }
}

/// The operations of a transaction, nested ones included.
fn txn_wants(txn: &Value, out: &mut Vec<Want>) {
    for c in txn["compare"].as_array().into_iter().flatten() {
        out.push(range(c, Access::Read));
    }
    let ops = ["success", "failure"]
        .iter()
        .flat_map(|branch| txn[*branch].as_array().into_iter().flatten());
    for op in ops {
        if let Some(r) = op.get("request_range") {
            out.push(range(r, Access::Read));
        } else if let Some(p) = op.get("request_put") {
            out.push(range(p, Access::ReadWrite));
        } else if let Some(d) = op.get("request_delete_range") {
            out.push(range(d, Access::ReadWrite));
        } else if let Some(t) = op.get("request_txn") {
            txn_wants(t, out);
        } else {
            out.push(Want::Admin);
        }
    }
}

/// What a gateway request asks for; anything the guard does not understand is `Admin`.
pub fn wants(method: &Method, path: &str, body: &[u8]) -> Vec<Want> {
    let path = path.replacen("/v3beta/", "/v3/", 1);
    if method == Method::GET {
        return match path.as_str() {
            "/health" | "/version" | "/readyz" | "/livez" => vec![Want::Info],
            _ => vec![Want::Admin],
        };
    }
    // the gateway takes a stream of JSON messages on /v3/watch, one on the others
    let messages: std::result::Result<Vec<Value>, _> = serde_json::Deserializer::from_slice(body)
        .into_iter::<Value>()
        .collect();
    let Ok(mut messages) = messages else {
        return vec![Want::Admin];
    };
    if messages.is_empty() {
        messages.push(json!({}));
    }
    let one = &messages[0];
    match path.as_str() {
        "/v3/kv/range" => vec![range(one, Access::Read)],
        "/v3/kv/put" | "/v3/kv/deleterange" => vec![range(one, Access::ReadWrite)],
        "/v3/kv/txn" => {
            let mut out = Vec::new();
            txn_wants(one, &mut out);
            out
        }
        "/v3/watch" => messages
            .iter()
            .map(|m| match m.get("create_request") {
                Some(c) => range(c, Access::Read),
                None if m.get("cancel_request").is_some()
                    || m.get("progress_request").is_some() =>
                {
                    Want::Info
                }
                None => Want::Admin,
            })
            .collect(),
        "/v3/lease/grant"
        | "/v3/lease/revoke"
        | "/v3/kv/lease/revoke"
        | "/v3/lease/keepalive"
        | "/v3/lease/timetolive"
        | "/v3/kv/lease/timetolive"
        | "/v3/lease/leases"
        | "/v3/kv/lease/leases" => vec![Want::Lease],
        "/v3/cluster/member/list" | "/v3/maintenance/status" => vec![Want::Info],
        _ => vec![Want::Admin],
    }
}

fn answer(status: StatusCode, body: Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(
            Full::new(Bytes::from(body.to_string()))
                .map_err(|never| match never {})
                .boxed(),
        )
        .expect("static response")
}

/// The gateway's error shape, so that clients show it as etcd's own refusal.
fn refused(status: StatusCode, message: String) -> Response<Body> {
    answer(
        status,
        json!({"error": message, "code": 7, "message": message}),
    )
}

impl Guard {
    async fn handle(self: Arc<Self>, req: Request<Incoming>, cn: Arc<str>) -> Response<Body> {
        let (parts, body) = req.into_parts();
        let body = match Limited::new(body, BODY_LIMIT).collect().await {
            Ok(b) => b.to_bytes(),
            Err(_) => {
                return refused(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "request body too large or cut".into(),
                )
            }
        };
        let path = parts.uri.path();
        if let Err(why) = etcd_access::decide(&cn, &wants(&parts.method, path, &body)) {
            log(
                LogLevel::Warn,
                self.log_level,
                format!("refused {} {path}: {why}", parts.method),
            );
            return refused(StatusCode::FORBIDDEN, format!("etcd-guard: {why}"));
        }
        let query = parts
            .uri
            .query()
            .map(|q| format!("?{q}"))
            .unwrap_or_default();
        let url = format!("https://{}{path}{query}", self.upstream);
        let mut forward = self.http.request(parts.method.clone(), url).body(body);
        if let Some(t) = parts.headers.get(http::header::CONTENT_TYPE) {
            forward = forward.header(http::header::CONTENT_TYPE, t);
        }
        let upstream = match forward.send().await {
            Ok(r) => r,
            Err(e) => {
                return refused(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("etcd-guard: etcd did not answer: {e}"),
                )
            }
        };
        let mut out = Response::builder().status(upstream.status());
        if let Some(t) = upstream.headers().get(http::header::CONTENT_TYPE) {
            out = out.header(http::header::CONTENT_TYPE, t);
        }
        // chunk by chunk: a watch answers for as long as it lasts
        let chunks = futures_util::stream::unfold(upstream, |mut r| async move {
            match r.chunk().await {
                Ok(Some(b)) => Some((Ok(Frame::data(b)), r)),
                Ok(None) => None,
                Err(e) => Some((
                    Err(Box::new(e) as Box<dyn std::error::Error + Send + Sync>),
                    r,
                )),
            }
        });
        out.body(StreamBody::new(chunks).boxed())
            .unwrap_or_else(|e| refused(StatusCode::BAD_GATEWAY, e.to_string()))
    }

    /// A member's stream, unchanged, to etcd with the member's own certificate.
    async fn pass(
        &self,
        mut client: tokio_rustls::server::TlsStream<TcpStream>,
        alpn: Option<Vec<u8>>,
    ) {
        let Ok(Ok(tcp)) =
            tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&self.upstream)).await
        else {
            return;
        };
        let mut tls = self.upstream_tls.clone();
        tls.alpn_protocols = alpn.into_iter().collect();
        let name = ServerName::try_from("localhost").expect("a valid name");
        let Ok(mut server) = TlsConnector::from(Arc::new(tls)).connect(name, tcp).await else {
            return;
        };
        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
    }

    async fn connection(self: Arc<Self>, acceptor: TlsAcceptor, stream: TcpStream) {
        let _ = stream.set_nodelay(true);
        let Ok(Ok(tls)) = tokio::time::timeout(CONNECT_TIMEOUT, acceptor.accept(stream)).await
        else {
            return;
        };
        let (_, session) = tls.get_ref();
        let cn = session
            .peer_certificates()
            .and_then(|c| c.first())
            .and_then(|c| common_name(c));
        let alpn = session.alpn_protocol().map(<[u8]>::to_vec);
        let Some(cn) = cn else { return };
        if cn == etcd_access::MEMBER {
            return self.pass(tls, alpn).await;
        }
        let cn: Arc<str> = cn.into();
        let guard = self.clone();
        let service = hyper::service::service_fn(move |req| {
            let (guard, cn) = (guard.clone(), cn.clone());
            async move { Ok::<_, Infallible>(guard.handle(req, cn).await) }
        });
        // HTTP/1.1 or HTTP/2 (curl's default): gRPC itself is refused, as it names no path the
        // guard reads
        let mut builder =
            hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
        builder
            .http1()
            .header_read_timeout(Duration::from_secs(15))
            .timer(hyper_util::rt::TokioTimer::new());
        let _ = builder
            .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
            .await;
    }
}

pub async fn run(cfg: GuardConfig) -> Result<i32> {
    let Some((program, args)) = cfg.program.split_first() else {
        return Err(Error::Usage(
            "etcd-guard: no program to run after `--`".into(),
        ));
    };
    let acceptor = TlsAcceptor::from(Arc::new(server_tls(&cfg)?));
    let upstream_tls = client_tls(&cfg)?;
    let http = reqwest::Client::builder()
        .use_preconfigured_tls(upstream_tls.clone())
        .connect_timeout(CONNECT_TIMEOUT)
        .no_proxy()
        .build()
        .map_err(|e| Error::tls("HTTP client", e))?;
    let guard = Arc::new(Guard {
        upstream: cfg.upstream.clone(),
        upstream_tls,
        http,
        log_level: cfg.log_level,
    });
    let listener = TcpListener::bind(&cfg.listen)
        .await
        .map_err(|e| Error::io(format!("listen on {}", cfg.listen), e))?;
    tokio::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    tokio::spawn(guard.clone().connection(acceptor.clone(), stream));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    });
    crate::runtime::supervise(program, args).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        BASE64.encode(s.as_bytes())
    }

    #[test]
    fn requests_become_the_keys_they_name() {
        let put = json!({"key": b64("/dtr/settings"), "value": b64("{}")}).to_string();
        assert_eq!(
            wants(&Method::POST, "/v3/kv/put", put.as_bytes()),
            vec![Want::Keys {
                key: b"/dtr/settings".to_vec(),
                range_end: vec![],
                access: Access::ReadWrite
            }]
        );
        let txn = json!({
            "compare": [{"key": b64("/dtr/storage/switching"), "target": "CREATE"}],
            "success": [{"request_put": {"key": b64("/dtr/storage/switching"), "lease": "1"}}],
            "failure": [{"request_range": {"key": b64("/dtr/patroni/dtr/leader")}}]
        })
        .to_string();
        let w = wants(&Method::POST, "/v3/kv/txn", txn.as_bytes());
        assert_eq!(w.len(), 3);
        assert!(
            etcd_access::decide("registry", &w).is_err(),
            "the failure branch reads Patroni's key"
        );
        let watch = format!(
            "{}\n{}",
            json!({"create_request": {"key": b64("/dtr/patroni/"), "range_end": b64("/dtr/patroni0")}}),
            json!({"progress_request": {}})
        );
        let w = wants(&Method::POST, "/v3/watch", watch.as_bytes());
        assert!(etcd_access::decide("rethinkdb", &w).is_ok(), "{w:?}");
        assert!(etcd_access::decide("api", &w).is_err());
        for admin in [
            "/v3/cluster/member/add",
            "/v3/auth/enable",
            "/v3/maintenance/defragment",
            "/v3/kv/compaction",
        ] {
            assert_eq!(
                wants(&Method::POST, admin, b"{}"),
                vec![Want::Admin],
                "{admin}"
            );
        }
        assert_eq!(
            wants(&Method::POST, "/v3/kv/put", b"not json"),
            vec![Want::Admin]
        );
        assert_eq!(wants(&Method::GET, "/health", b""), vec![Want::Info]);
        assert_eq!(
            wants(&Method::POST, "/v3beta/lease/grant", b"{\"TTL\":5}"),
            vec![Want::Lease]
        );
    }
}
