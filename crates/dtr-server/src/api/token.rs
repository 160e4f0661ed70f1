//! The registry token service (`GET /auth/token`, Docker registry v2 token authentication):
//! the registry and notary-server send clients here; the api checks who they are, grants the
//! intersection of what they ask and what they may do, and signs a short-lived ES256 JWT with
//! `/ca/api/token-key.pem`, whose certificate (`/ca/api/token.pem`) both services trust.
//! While garbage collection runs, or the registry is read-only, no token allows writing.

use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::routing::get;
use axum::{Json, Router};
use data_encoding::{BASE32_NOPAD, BASE64URL_NOPAD};
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde::Serialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::auth::{Account, Caller};
use super::error::{ApiError, ApiResult};
use super::{names, settings, Api};
use crate::error::{Error, Result};
use dtr_core::contract::env::notary_service;

/// The issuer the registry and notary-server are configured to accept.
pub const ISSUER: &str = "dtr";

pub struct Signer {
    key: EcdsaKeyPair,
    /// libtrust key id of the public key: what the registry looks tokens' `kid` up by.
    kid: String,
    rng: SystemRandom,
}

impl Signer {
    pub fn load(cert_pem: &str, key_pem: &str) -> Result<Self> {
        let bad = |what: &str, e: String| Error::tls(format!("token signing {what}"), e);
        let key_der = rustls_pemfile::private_key(&mut key_pem.as_bytes())
            .map_err(|e| bad("key", e.to_string()))?
            .ok_or_else(|| bad("key", "no private key in the file".into()))?;
        let rng = SystemRandom::new();
        let key =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, key_der.secret_der(), &rng)
                .map_err(|e| bad("key", format!("not a P-256 PKCS#8 key: {e}")))?;
        let cert_der = rustls_pemfile::certs(&mut cert_pem.as_bytes())
            .next()
            .ok_or_else(|| bad("certificate", "no certificate in the file".into()))?
            .map_err(|e| bad("certificate", e.to_string()))?;
        let (_, cert) = x509_parser::parse_x509_certificate(&cert_der)
            .map_err(|e| bad("certificate", e.to_string()))?;
        Ok(Signer {
            key,
            kid: libtrust_key_id(cert.public_key().raw),
            rng,
        })
    }

    /// A signed JWT for `subject` with these grants, valid `ttl` seconds.
    pub fn sign(
        &self,
        audience: &str,
        subject: &str,
        access: &[Grant],
        ttl: u32,
    ) -> Result<String> {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let header = json!({"alg": "ES256", "typ": "JWT", "kid": self.kid});
        let claims = json!({
            "iss": ISSUER, "sub": subject, "aud": audience,
            "iat": now, "nbf": now - 10, "exp": now + i64::from(ttl),
            "jti": data_encoding::HEXLOWER.encode(&rand::random::<[u8; 16]>()),
            "access": access,
        });
        let signing_input = format!(
            "{}.{}",
            BASE64URL_NOPAD.encode(header.to_string().as_bytes()),
            BASE64URL_NOPAD.encode(claims.to_string().as_bytes())
        );
        let signature = self
            .key
            .sign(&self.rng, signing_input.as_bytes())
            .map_err(|_| Error::tls("token signing key", "signing a registry token failed"))?;
        Ok(format!(
            "{signing_input}.{}",
            BASE64URL_NOPAD.encode(signature.as_ref())
        ))
    }
}

/// docker/libtrust's key id: SHA-256 of the DER SubjectPublicKeyInfo, first 240 bits, base32,
/// in twelve groups of four separated by colons.
fn libtrust_key_id(spki_der: &[u8]) -> String {
    let digest = Sha256::digest(spki_der);
    let b32 = BASE32_NOPAD.encode(&digest[..30]);
    b32.as_bytes()
        .chunks(4)
        .map(|c| std::str::from_utf8(c).expect("base32 is ASCII"))
        .collect::<Vec<_>>()
        .join(":")
}

/// One entry of a token's `access` claim.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Grant {
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    pub actions: Vec<String>,
}

/// A requested scope `type:name:actions` (the name may contain colons: `host:port/ns/repo`).
fn parse_scope(scope: &str) -> ApiResult<Grant> {
    let bad = || {
        ApiError::bad_request(
            "INVALID_SCOPE",
            format!("{scope:?} is not type:name:actions"),
        )
    };
    let (kind, rest) = scope.split_once(':').ok_or_else(bad)?;
    let (name, actions) = rest.rsplit_once(':').ok_or_else(bad)?;
    if kind.is_empty() || name.is_empty() {
        return Err(bad());
    }
    let mut actions: Vec<String> = actions
        .split(',')
        .filter(|a| !a.is_empty())
        .map(String::from)
        .collect();
    actions.sort();
    actions.dedup();
    Ok(Grant {
        kind: kind.into(),
        name: name.into(),
        actions,
    })
}

/// What the caller may do on `namespace/repository`, given whether it is public.
pub fn allowed_actions(
    caller: &Caller,
    namespace: &str,
    public: Option<bool>,
) -> &'static [&'static str] {
    const ALL: &[&str] = &["*", "delete", "pull", "push"];
    match caller {
        Caller::Account(Account { admin: true, .. }) => ALL,
        Caller::Account(a) if a.name == namespace => ALL,
        _ if public == Some(true) => &["pull"],
        _ => &[],
    }
}

fn writes(actions: &[String]) -> bool {
    actions.iter().any(|a| a != "pull")
}

/// Who a token is for. The registry names repositories `<namespace>/<repository>`; notary
/// names their trust data by GUN, `<registry service>/<namespace>/<repository>`. Each has its
/// own audience (`aud`), so that neither accepts a token made for the other.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Audience {
    Registry,
    Notary,
}

/// The repository (`<namespace>/<repository>`) a scope's name stands for with this audience;
/// `None` when the name is not one this audience serves (a GUN asked of the registry, a plain
/// name or another registry's GUN asked of notary): such a scope is granted nothing.
fn repository_of<'a>(audience: Audience, registry_service: &str, name: &'a str) -> Option<&'a str> {
    let gun = name
        .strip_prefix(registry_service)
        .and_then(|n| n.strip_prefix('/'));
    match audience {
        Audience::Notary => gun,
        Audience::Registry => gun.is_none().then_some(name),
    }
}

/// Whether `scope` is a repository scope naming a GUN of this registry (notary's names).
fn is_gun_scope(scope: &Grant, registry_service: &str) -> bool {
    scope.kind == "repository"
        && repository_of(Audience::Notary, registry_service, &scope.name).is_some()
}

/// Decides one repository scope, creating the repository on push where the settings allow.
async fn decide(
    api: &Api,
    caller: &Caller,
    settings: &settings::Settings,
    audience: Audience,
    requested: Grant,
) -> ApiResult<Grant> {
    let Some(full) = repository_of(audience, &api.token_service, &requested.name) else {
        return Ok(Grant {
            actions: vec![],
            ..requested
        });
    };
    let (namespace, repository) = names::split_full(full)?;
    let db = api.db().await?;
    let row = db
        .query_opt(
            "SELECT visibility = 'public' FROM repositories WHERE namespace = $1 AND name = $2",
            &[&namespace, &repository],
        )
        .await?;
    let public: Option<bool> = row.map(|r| r.get(0));
    let allowed = allowed_actions(caller, namespace, public);
    let mut actions: Vec<String> = requested
        .actions
        .iter()
        .filter(|a| allowed.contains(&a.as_str()))
        .cloned()
        .collect();
    if settings.read_only_registry {
        actions.retain(|a| a == "pull");
    }
    if public.is_none() && !actions.is_empty() {
        let creates = settings.create_repository_on_push && actions.iter().any(|a| a == "push");
        if creates {
            let made = db
                .execute(
                    "INSERT INTO repositories (namespace, name, visibility) VALUES ($1, $2, 'private')
                     ON CONFLICT DO NOTHING",
                    &[&namespace, &repository],
                )
                .await?;
            if made == 1 {
                super::events::record(
                    &db,
                    caller.name(),
                    "repository.create",
                    full,
                    json!({"visibility": "private", "onPush": true}),
                )
                .await?;
            }
        } else {
            // nothing to pull from a repository that does not exist
            actions.clear();
        }
    }
    Ok(Grant {
        actions,
        ..requested
    })
}

/// Records how long the write grants of this token live, unless garbage collection has fenced
/// writes off — then the write actions are dropped. One transaction with a row lock, so that a
/// collection that has just started sees every write token issued before it.
async fn fence_writes(api: &Api, grants: &mut [Grant], ttl: u32) -> ApiResult<()> {
    if !grants.iter().any(|g| writes(&g.actions)) {
        return Ok(());
    }
    let mut client = api.db_exclusive().await?;
    let tx = client.transaction().await?;
    tx.query_one(
        "SELECT expires_at FROM write_token_horizon WHERE id = 1 FOR UPDATE",
        &[],
    )
    .await?;
    if super::jobs::registry_writes_fenced(&tx).await? {
        for g in grants.iter_mut() {
            g.actions.retain(|a| a == "pull");
        }
    } else {
        let ttl = f64::from(ttl);
        tx.execute(
            "UPDATE write_token_horizon SET expires_at = greatest(expires_at, now() + make_interval(secs => $1)) WHERE id = 1",
            &[&ttl],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

async fn token(
    State(api): State<Arc<Api>>,
    caller: Caller,
    RawQuery(query): RawQuery,
    _headers: HeaderMap,
) -> ApiResult<Json<Value>> {
    let pairs: Vec<(String, String)> =
        url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
    let service = pairs
        .iter()
        .find(|(k, _)| k == "service")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    // parsed once; a malformed scope is refused after the service is checked
    let scopes: Vec<ApiResult<Grant>> = pairs
        .iter()
        .filter(|(k, _)| k == "scope")
        .flat_map(|(_, v)| v.split(' '))
        .filter(|s| !s.is_empty())
        .map(parse_scope)
        .collect();
    let audience = if service == api.token_service {
        // the docker CLI's notary client asks with the challenge of `/v2/` (the registry's
        // service) for its GUNs only: that token is made for notary
        let guns = scopes.iter().all(|s| {
            s.as_ref()
                .is_ok_and(|g| is_gun_scope(g, &api.token_service))
        });
        if !scopes.is_empty() && guns {
            Audience::Notary
        } else {
            Audience::Registry
        }
    } else if service == notary_service(&api.token_service) {
        Audience::Notary
    } else {
        return Err(ApiError::bad_request(
            "INVALID_SERVICE",
            format!(
                "service {service:?} is neither this registry ({}) nor its notary",
                api.token_service
            ),
        ));
    };
    let settings = settings::current(&api).await?;
    let mut grants = Vec::new();
    for requested in scopes {
        let requested = requested?;
        match requested.kind.as_str() {
            "repository" => {
                grants.push(decide(&api, &caller, &settings, audience, requested).await?)
            }
            "registry" if requested.name == "catalog" && audience == Audience::Registry => {
                let actions = if matches!(&caller, Caller::Account(a) if a.admin) {
                    requested.actions.clone()
                } else {
                    vec![]
                };
                grants.push(Grant {
                    actions,
                    ..requested
                });
            }
            _ => grants.push(Grant {
                actions: vec![],
                ..requested
            }),
        }
    }
    let ttl = settings.token_lifetime_seconds;
    fence_writes(&api, &mut grants, ttl).await?;
    let aud = match audience {
        Audience::Registry => api.token_service.clone(),
        Audience::Notary => notary_service(&api.token_service),
    };
    let jwt = api.signer.sign(&aud, caller.name(), &grants, ttl)?;
    let issued_at = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    Ok(Json(
        json!({"token": jwt, "access_token": jwt, "expires_in": ttl, "issued_at": issued_at}),
    ))
}

pub fn routes() -> Router<Arc<Api>> {
    Router::new().route("/auth/token", get(token))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_parse_with_colons_in_the_name() {
        let g = parse_scope("repository:host:8443/admin/app:push,pull").unwrap();
        assert_eq!(g.kind, "repository");
        assert_eq!(g.name, "host:8443/admin/app");
        assert_eq!(g.actions, vec!["pull", "push"]);
        assert!(parse_scope("repository").is_err());
        assert!(parse_scope(":x:pull").is_err());
    }

    #[test]
    fn each_audience_serves_its_own_names_only() {
        let svc = "dtr.example.com";
        let registry = |n| repository_of(Audience::Registry, svc, n);
        let notary = |n| repository_of(Audience::Notary, svc, n);
        assert_eq!(registry("alice/x"), Some("alice/x"));
        assert_eq!(registry("dtr.example.com/alice/x"), None);
        assert_eq!(notary("dtr.example.com/alice/x"), Some("alice/x"));
        assert_eq!(notary("alice/x"), None);
        assert_eq!(notary("other.example.com/alice/x"), None);
        assert_eq!(notary("dtr.example.comx/alice/x"), None);
        assert!(is_gun_scope(
            &parse_scope("repository:dtr.example.com/alice/x:pull").unwrap(),
            svc
        ));
        assert!(!is_gun_scope(
            &parse_scope("repository:alice/x:pull").unwrap(),
            svc
        ));
        assert!(!is_gun_scope(
            &parse_scope("registry:catalog:*").unwrap(),
            svc
        ));
    }

    #[test]
    fn only_owners_and_admins_write() {
        let admin = Caller::Account(Account {
            id: 1,
            name: "admin".into(),
            admin: true,
            by_token: false,
        });
        let alice = Caller::Account(Account {
            id: 2,
            name: "alice".into(),
            admin: false,
            by_token: true,
        });
        assert!(allowed_actions(&admin, "alice", Some(false)).contains(&"push"));
        assert!(allowed_actions(&alice, "alice", None).contains(&"push"));
        assert_eq!(allowed_actions(&alice, "admin", Some(true)), &["pull"]);
        assert!(allowed_actions(&alice, "admin", Some(false)).is_empty());
        assert!(allowed_actions(&Caller::Anonymous, "admin", Some(false)).is_empty());
        assert_eq!(
            allowed_actions(&Caller::Anonymous, "admin", Some(true)),
            &["pull"]
        );
    }

    #[test]
    fn tokens_are_es256_jwts_with_the_libtrust_kid() {
        let ca = dtr_core::pki::generate_ca("t").unwrap();
        let t = dtr_core::pki::issue(
            &ca.cert_pem,
            &ca.key_pem,
            "token",
            &[],
            dtr_core::pki::Usage::TokenSigning,
        )
        .unwrap();
        let signer = Signer::load(&t.cert_pem, t.key_pem.expose()).unwrap();
        let grant = Grant {
            kind: "repository".into(),
            name: "admin/app".into(),
            actions: vec!["pull".into()],
        };
        let jwt = signer.sign("reg:443", "admin", &[grant], 60).unwrap();
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        let header: Value =
            serde_json::from_slice(&BASE64URL_NOPAD.decode(parts[0].as_bytes()).unwrap()).unwrap();
        assert_eq!(header["alg"], "ES256");
        let kid = header["kid"].as_str().unwrap();
        assert_eq!(kid.len(), 12 * 4 + 11, "{kid}");
        let claims: Value =
            serde_json::from_slice(&BASE64URL_NOPAD.decode(parts[1].as_bytes()).unwrap()).unwrap();
        assert_eq!(claims["aud"], "reg:443");
        assert_eq!(claims["access"][0]["actions"][0], "pull");
        // the signature verifies with the certificate's public key
        let der = rustls_pemfile::certs(&mut t.cert_pem.as_bytes())
            .next()
            .unwrap()
            .unwrap();
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        let public = ring::signature::UnparsedPublicKey::new(
            &ring::signature::ECDSA_P256_SHA256_FIXED,
            cert.public_key().subject_public_key.data.to_vec(),
        );
        let sig = BASE64URL_NOPAD.decode(parts[2].as_bytes()).unwrap();
        public
            .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &sig)
            .unwrap();
    }
}
