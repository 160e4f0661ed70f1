//! The MKE/UCP target: log in to MKE (`POST /auth/login` → session token), then speak the
//! Docker Engine API through MKE at the same URL with `Authorization: Bearer <token>`.
//! Containers are placed on a node the way MKE's classic-Swarm scheduler takes it: an
//! environment entry `constraint:node==<node>` in the create request (MKE removes it before the
//! engine sees it). TLS is verified by default (`--ucp-ca`, else the system's roots);
//! `--ucp-insecure-tls` turns verification off and is warned about by the CLI.

use std::sync::Arc;

use bollard::{BollardRequest, Docker};
use http::header::{HeaderValue, AUTHORIZATION};

use crate::error::{Error, Result};
use dtr_core::secret::Secret;

/// How to reach MKE, from `--ucp-url`, `--ucp-username`, `--ucp-password`, `--ucp-ca`,
/// `--ucp-insecure-tls`.
#[derive(Debug, Clone)]
pub struct MkeTarget {
    pub url: url::Url,
    pub username: String,
    pub password: Secret<String>,
    /// PEM CA certificate(s) MKE's certificate must chain to; `None` = the system's roots.
    pub ca_pem: Option<String>,
    pub insecure: bool,
}

/// MKE's `GET /version` answers with its own version (`ucp/3.7.0`), not the engine's: how a
/// client bundle's `DOCKER_HOST` is recognised as MKE.
pub fn is_mke_version(version: &str) -> bool {
    version.starts_with("ucp/") || version.starts_with("mke/")
}

/// Environment entry that places a container on a node through MKE's scheduler.
pub fn node_constraint(node: &str) -> String {
    format!("constraint:node=={node}")
}

/// MKE's answer when its scheduler may not use any node for the request: the admin settings
/// forbid administrators' containers on managers (or on nodes running DTR).
pub const SCHEDULING_REFUSAL: &str =
    "could not find any nodes on which the container could be created";

/// What an admin changes when MKE refuses to schedule DTR's containers.
pub const SCHEDULING_FIX: &str = "in MKE, Admin Settings → Orchestration (Scheduler): turn on \"Allow administrators to deploy containers on MKE managers or nodes running MSR/DTR\", or give --ucp-node a worker node";

impl MkeTarget {
    /// The URL without a trailing slash, as shown to people.
    pub fn shown(&self) -> String {
        self.url.as_str().trim_end_matches('/').to_string()
    }

    fn err(&self, reason: impl Into<String>, hint: impl Into<String>) -> Error {
        Error::Mke {
            url: self.shown(),
            reason: reason.into(),
            hint: hint.into(),
        }
    }

    /// rustls settings: MKE's CA, the system's roots, or (insecure) none.
    fn tls_config(&self) -> Result<rustls::ClientConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| self.err(format!("TLS set-up: {e}"), "report this as a bug"))?;
        if self.insecure {
            return Ok(builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(dtr_core::pki::AnyCertificate(provider)))
                .with_no_client_auth());
        }
        let mut roots = rustls::RootCertStore::empty();
        match &self.ca_pem {
            Some(pem) => {
                let certs: Vec<_> = rustls_pemfile::certs(&mut pem.as_bytes())
                    .collect::<std::result::Result<_, _>>()
                    .map_err(|e| {
                        Error::Input(dtr_core::InputError::InvalidValue {
                            flag: "--ucp-ca",
                            value: "(given)".into(),
                            reason: format!("not PEM certificates: {e}"),
                        })
                    })?;
                if certs.is_empty() {
                    return Err(Error::Input(dtr_core::InputError::InvalidValue {
                        flag: "--ucp-ca",
                        value: "(given)".into(),
                        reason: "no PEM certificate in it; pass the content, e.g. --ucp-ca \"$(cat ca.pem)\"".into(),
                    }));
                }
                for c in certs {
                    roots.add(c).map_err(|e| {
                        Error::Input(dtr_core::InputError::InvalidValue {
                            flag: "--ucp-ca",
                            value: "(given)".into(),
                            reason: format!("not a usable CA certificate: {e}"),
                        })
                    })?;
                }
            }
            None => {
                for c in rustls_native_certs::load_native_certs().certs {
                    let _ = roots.add(c);
                }
            }
        }
        Ok(builder.with_root_certificates(roots).with_no_client_auth())
    }

    /// Why a request to MKE failed, in the user's terms.
    fn unreachable(&self, e: &reqwest::Error) -> Error {
        let mut text = e.to_string();
        let mut cur = std::error::Error::source(e);
        while let Some(inner) = cur {
            text.push_str(": ");
            text.push_str(&inner.to_string());
            cur = inner.source();
        }
        let untrusted = [
            "UnknownIssuer",
            "certificate",
            "NotValidForName",
            "BadSignature",
        ]
        .iter()
        .any(|k| text.contains(k));
        if untrusted {
            let source = if self.ca_pem.is_some() {
                "the CA given with --ucp-ca"
            } else {
                "the system's trusted CAs (no --ucp-ca given)"
            };
            self.err(
                format!("its TLS certificate is not trusted by {source}: {text}"),
                format!(
                    "give MKE's CA: --ucp-ca \"$(curl -sk {}/ca)\" (compare it with what your MKE admin gave you), or --ucp-insecure-tls to skip verification (not for production)",
                    self.shown()
                ),
            )
        } else {
            self.err(
                format!("not reachable: {text}"),
                format!(
                    "check --ucp-url (https://host[:port]) and that MKE answers: curl -sk {}/_ping",
                    self.shown()
                ),
            )
        }
    }

    /// `POST /auth/login`; the session token MKE hands back.
    async fn login(&self, tls: rustls::ClientConfig) -> Result<Secret<String>> {
        #[derive(serde::Deserialize)]
        struct Token {
            auth_token: String,
        }
        let client = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .map_err(|e| self.unreachable(&e))?;
        let url = self
            .url
            .join("auth/login")
            .map_err(|e| self.err(format!("bad URL: {e}"), "check --ucp-url"))?;
        let body = serde_json::json!({
            "username": self.username,
            "password": self.password.expose(),
        });
        let resp = client
            .post(url)
            .json(&body)
            .send()
            .await
            .map_err(|e| self.unreachable(&e))?;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        if status.as_u16() == 401 || status.as_u16() == 403 {
            return Err(self.err(
                format!(
                    "the login of {} was refused ({status}): {}",
                    self.username,
                    mke_message(&text)
                ),
                "check --ucp-username and --ucp-password (UCP_USERNAME, UCP_PASSWORD): the account must be an MKE administrator",
            ));
        }
        if !status.is_success() {
            return Err(self.err(
                format!("POST /auth/login answered {status}: {}", mke_message(&text)),
                "check that --ucp-url is MKE/UCP itself (not DTR or a load balancer in front of something else)",
            ));
        }
        let token: Token = serde_json::from_str(&text).map_err(|_| {
            self.err(
                "POST /auth/login did not answer with an auth_token",
                "check that --ucp-url is MKE/UCP itself",
            )
        })?;
        Ok(Secret::new(token.auth_token))
    }

    /// Logs in and returns a Docker client that speaks through MKE with the session token.
    pub async fn connect(&self) -> Result<Docker> {
        let tls = self.tls_config()?;
        let token = self.login(tls.clone()).await?;
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_only()
            .enable_http1()
            .build();
        let client = Arc::new(
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build(connector),
        );
        let transport = move |req: BollardRequest| {
            let client = Arc::clone(&client);
            async move {
                client
                    .request(req)
                    .await
                    .map_err(|e| bollard::errors::Error::IOError {
                        err: std::io::Error::other(e),
                    })
            }
        };
        let host = match self.url.port() {
            Some(p) => format!("{}:{p}", self.url.host_str().unwrap_or_default()),
            None => self.url.host_str().unwrap_or_default().to_string(),
        };
        let mut bearer =
            HeaderValue::from_str(&format!("Bearer {}", token.expose())).map_err(|_| {
                self.err(
                    "MKE returned a token that is not a header value",
                    "report this as a bug",
                )
            })?;
        bearer.set_sensitive(true);
        let docker = Docker::connect_with_custom_transport(
            transport,
            Some(format!("https://{host}")),
            120,
            bollard::API_DEFAULT_VERSION,
        )
        .map_err(|e| self.err(format!("Docker client: {e}"), "report this as a bug"))?
        .with_request_modifier(move |mut req| {
            req.headers_mut().insert(AUTHORIZATION, bearer.clone());
            req
        });
        Ok(docker)
    }
}

/// The message of an MKE error body (`{"errors":[{"message":..}]}` or `{"message":..}`).
fn mke_message(body: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    v.pointer("/errors/0/message")
        .or_else(|| v.get("message"))
        .and_then(|m| m.as_str())
        .map(str::to_string)
        .unwrap_or_else(|| body.chars().take(200).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mke_error_bodies() {
        assert_eq!(
            mke_message(
                r#"{"errors":[{"code":"UNAUTHORIZED","message":"invalid username or password"}]}"#
            ),
            "invalid username or password"
        );
        assert_eq!(mke_message(r#"{"message":"unauthorized"}"#), "unauthorized");
        assert_eq!(mke_message("plain"), "plain");
    }

    #[test]
    fn mke_is_told_from_an_engine_by_its_version() {
        assert!(is_mke_version("ucp/3.7.0"));
        assert!(is_mke_version("mke/3.8.1"));
        assert!(!is_mke_version("20.10.24+dfsg1"));
        assert!(!is_mke_version("28.2.2"));
    }

    #[test]
    fn the_password_is_not_in_debug_output() {
        let t = MkeTarget {
            url: url::Url::parse("https://mke.example:4443").unwrap(),
            username: "admin".into(),
            password: Secret::new(format!("pw-{}", dtr_core::options::ReplicaId::random())),
            ca_pem: None,
            insecure: false,
        };
        assert!(!format!("{t:?}").contains(t.password.expose().as_str()));
        assert_eq!(t.shown(), "https://mke.example:4443");
    }

    #[test]
    fn a_ca_without_certificates_is_refused_by_flag() {
        let t = MkeTarget {
            url: url::Url::parse("https://mke.example").unwrap(),
            username: "admin".into(),
            password: Secret::new("x".into()),
            ca_pem: Some("not a pem".into()),
            insecure: false,
        };
        match t.tls_config() {
            Err(Error::Input(dtr_core::InputError::InvalidValue { flag, .. })) => {
                assert_eq!(flag, "--ucp-ca")
            }
            other => panic!("expected --ucp-ca refusal, got {:?}", other.map(|_| ())),
        }
    }
}
