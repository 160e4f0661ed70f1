//! Just enough of OpenStack Swift to try a configuration and to look objects up the way
//! distribution's swift driver stores them: authenticate (v1 tempauth/swauth, v2 and v3
//! Keystone, by `authversion` or, as the driver does, by the URL), then create the container,
//! and put, get, head, list and delete objects with the token.

use serde_json::{json, Value};

use super::s3::error_chain;
use super::StorageConfig;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SwiftError {
    #[error("the auth URL {url} is not reachable: {reason}")]
    Unreachable { url: String, reason: String },
    #[error(
        "the certificate of {url} is not trusted ({reason}): {}",
        super::NOT_TRUSTED_HINT
    )]
    NotTrusted { url: String, reason: String },
    #[error("Swift refused the credentials of {user} at {url} ({status})")]
    Credentials {
        user: String,
        url: String,
        status: u16,
    },
    #[error("{operation} answered {status}: {message}")]
    Refused {
        operation: String,
        status: u16,
        message: String,
    },
}

/// A request that got no answer: an untrusted certificate or an unreachable server.
fn unreachable(url: &str, e: &reqwest::Error) -> SwiftError {
    let (url, reason) = (url.to_string(), error_chain(e));
    if super::is_certificate_failure(&reason) {
        SwiftError::NotTrusted { url, reason }
    } else {
        SwiftError::Unreachable { url, reason }
    }
}

fn text(c: &StorageConfig, k: &str) -> String {
    c.params
        .get(k)
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_string()
}

/// A logged-in Swift account: its storage URL and token.
pub struct Swift {
    http: reqwest::Client,
    storage_url: String,
    token: String,
    container: String,
}

/// The identity version: `authversion`, else what the URL says (`/v3`, `/v2.0`), else 1.
fn auth_version(c: &StorageConfig) -> u64 {
    match c.params.get("authversion").and_then(Value::as_u64) {
        Some(v) if v > 0 => v,
        _ => {
            let url = text(c, "authurl");
            if url.contains("/v3") {
                3
            } else if url.contains("/v2") {
                2
            } else {
                1
            }
        }
    }
}

impl Swift {
    /// Authenticates with the configuration's credentials.
    pub async fn login(c: &StorageConfig, http: reqwest::Client) -> Result<Swift, SwiftError> {
        let url = text(c, "authurl");
        let user = text(c, "username");
        let password = text(c, "password");
        let unreachable = |e: reqwest::Error| unreachable(&url, &e);
        let refused = |status: u16| SwiftError::Credentials {
            user: user.clone(),
            url: url.clone(),
            status,
        };
        let region = text(c, "region");
        let (storage_url, token) = match auth_version(c) {
            1 => {
                let r = http
                    .get(&url)
                    .header("X-Auth-User", &user)
                    .header("X-Auth-Key", &password)
                    .send()
                    .await
                    .map_err(unreachable)?;
                let status = r.status().as_u16();
                if status == 401 || status == 403 {
                    return Err(refused(status));
                }
                let header = |name: &str| {
                    r.headers()
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string)
                };
                match (header("X-Storage-Url"), header("X-Auth-Token")) {
                    (Some(u), Some(t)) => (u, t),
                    _ => {
                        return Err(SwiftError::Refused {
                            operation: format!("GET {url} (auth v1)"),
                            status,
                            message: "no X-Storage-Url and X-Auth-Token in the answer".into(),
                        })
                    }
                }
            }
            2 => {
                let mut auth =
                    json!({"passwordCredentials": {"username": user, "password": password}});
                let tenant = text(c, "tenant");
                let tenant_id = text(c, "tenantid");
                if !tenant.is_empty() {
                    auth["tenantName"] = json!(tenant);
                } else if !tenant_id.is_empty() {
                    auth["tenantId"] = json!(tenant_id);
                }
                let r = http
                    .post(format!("{}/tokens", url.trim_end_matches('/')))
                    .json(&json!({"auth": auth}))
                    .send()
                    .await
                    .map_err(unreachable)?;
                let status = r.status().as_u16();
                if status == 401 || status == 403 {
                    return Err(refused(status));
                }
                let v: Value = r.json().await.map_err(unreachable)?;
                let token = v["access"]["token"]["id"].as_str().unwrap_or_default();
                let endpoint = v["access"]["serviceCatalog"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|s| s["type"] == "object-store")
                    .flat_map(|s| s["endpoints"].as_array().cloned().unwrap_or_default())
                    .find(|e| region.is_empty() || e["region"] == region.as_str())
                    .and_then(|e| e["publicURL"].as_str().map(str::to_string));
                match endpoint {
                    Some(e) if !token.is_empty() => (e, token.to_string()),
                    _ => {
                        return Err(SwiftError::Refused {
                            operation: format!("POST {url}/tokens (auth v2)"),
                            status,
                            message: "no token or no object-store endpoint in the answer".into(),
                        })
                    }
                }
            }
            _ => {
                let domain = |name: &str, id: &str| {
                    let (n, i) = (text(c, name), text(c, id));
                    if !i.is_empty() {
                        json!({"id": i})
                    } else {
                        json!({"name": if n.is_empty() { "Default".to_string() } else { n }})
                    }
                };
                let mut body = json!({"auth": {"identity": {"methods": ["password"], "password": {
                    "user": {"name": user, "password": password, "domain": domain("domain", "domainid")}}}}});
                let (tenant, tenant_id) = (text(c, "tenant"), text(c, "tenantid"));
                if !tenant_id.is_empty() {
                    body["auth"]["scope"] = json!({"project": {"id": tenant_id}});
                } else if !tenant.is_empty() {
                    body["auth"]["scope"] = json!({"project": {"name": tenant,
                        "domain": domain("tenantdomain", "tenantdomainid")}});
                }
                let r = http
                    .post(format!("{}/auth/tokens", url.trim_end_matches('/')))
                    .json(&body)
                    .send()
                    .await
                    .map_err(unreachable)?;
                let status = r.status().as_u16();
                if status == 401 || status == 403 {
                    return Err(refused(status));
                }
                let token = r
                    .headers()
                    .get("X-Subject-Token")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string();
                let v: Value = r.json().await.map_err(unreachable)?;
                let endpoint_type = match text(c, "endpointtype").as_str() {
                    "" => "public".to_string(),
                    t => t.to_string(),
                };
                let endpoint = v["token"]["catalog"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|s| s["type"] == "object-store")
                    .flat_map(|s| s["endpoints"].as_array().cloned().unwrap_or_default())
                    .find(|e| {
                        e["interface"] == endpoint_type.as_str()
                            && (region.is_empty() || e["region"] == region.as_str())
                    })
                    .and_then(|e| e["url"].as_str().map(str::to_string));
                match endpoint {
                    Some(e) if !token.is_empty() => (e, token),
                    _ => {
                        return Err(SwiftError::Refused {
                            operation: format!("POST {url}/auth/tokens (auth v3)"),
                            status,
                            message: "no token or no object-store endpoint in the answer".into(),
                        })
                    }
                }
            }
        };
        Ok(Swift {
            http,
            storage_url: storage_url.trim_end_matches('/').to_string(),
            token,
            container: text(c, "container"),
        })
    }

    fn url(&self, object: &str) -> String {
        let enc: String = object
            .split('/')
            .map(|s| super::s3::uri_encode(s, false))
            .collect::<Vec<_>>()
            .join("/");
        if object.is_empty() {
            format!(
                "{}/{}",
                self.storage_url,
                super::s3::uri_encode(&self.container, false)
            )
        } else {
            format!(
                "{}/{}/{enc}",
                self.storage_url,
                super::s3::uri_encode(&self.container, false)
            )
        }
    }

    async fn send(
        &self,
        method: reqwest::Method,
        object: &str,
        query: &[(&str, String)],
        body: Vec<u8>,
    ) -> Result<(u16, Vec<u8>), SwiftError> {
        let url = self.url(object);
        let mut request = self
            .http
            .request(method.clone(), &url)
            .query(query)
            .header("X-Auth-Token", &self.token);
        // an empty body goes without Content-Length, and Swift refuses such an object PUT (411)
        if method == reqwest::Method::PUT {
            request = request.header(reqwest::header::CONTENT_LENGTH, body.len());
        }
        let r = request
            .body(body)
            .send()
            .await
            .map_err(|e| unreachable(&url, &e))?;
        let status = r.status().as_u16();
        let body = r.bytes().await.map(|b| b.to_vec()).unwrap_or_default();
        Ok((status, body))
    }

    fn refused(operation: String, status: u16, body: &[u8]) -> SwiftError {
        SwiftError::Refused {
            operation,
            status,
            message: String::from_utf8_lossy(body)
                .trim()
                .chars()
                .take(300)
                .collect(),
        }
    }

    /// Creates the container when it is missing, as the driver does at start.
    pub async fn ensure_container(&self) -> Result<(), SwiftError> {
        let (status, body) = self.send(reqwest::Method::PUT, "", &[], Vec::new()).await?;
        if !(200..300).contains(&status) {
            return Err(Self::refused(
                format!("creating container {}", self.container),
                status,
                &body,
            ));
        }
        Ok(())
    }

    pub async fn list(&self, prefix: &str, max: usize) -> Result<Vec<String>, SwiftError> {
        let (status, body) = self
            .send(
                reqwest::Method::GET,
                "",
                &[("prefix", prefix.to_string()), ("limit", max.to_string())],
                Vec::new(),
            )
            .await?;
        match status {
            200 | 204 => Ok(String::from_utf8_lossy(&body)
                .lines()
                .filter(|l| !l.is_empty())
                .map(str::to_string)
                .collect()),
            _ => Err(Self::refused(
                format!("listing container {}", self.container),
                status,
                &body,
            )),
        }
    }

    /// Every object and size under `prefix` (all pages of the JSON listing).
    pub async fn list_all(&self, prefix: &str) -> Result<Vec<(String, u64)>, SwiftError> {
        let mut out = Vec::new();
        let mut marker = String::new();
        loop {
            let (status, body) = self
                .send(
                    reqwest::Method::GET,
                    "",
                    &[
                        ("prefix", prefix.to_string()),
                        ("format", "json".into()),
                        ("marker", marker.clone()),
                    ],
                    Vec::new(),
                )
                .await?;
            if status != 200 && status != 204 {
                return Err(Self::refused(
                    format!("listing container {}", self.container),
                    status,
                    &body,
                ));
            }
            let page: Vec<Value> = serde_json::from_slice(&body).unwrap_or_default();
            if page.is_empty() {
                return Ok(out);
            }
            for o in &page {
                out.push((
                    o["name"].as_str().unwrap_or_default().to_string(),
                    o["bytes"].as_u64().unwrap_or(0),
                ));
            }
            marker = out.last().map(|(n, _)| n.clone()).unwrap_or_default();
        }
    }

    pub async fn put(&self, object: &str, data: Vec<u8>) -> Result<(), SwiftError> {
        let (status, body) = self.send(reqwest::Method::PUT, object, &[], data).await?;
        if status != 201 {
            return Err(Self::refused(format!("writing {object}"), status, &body));
        }
        Ok(())
    }

    pub async fn get(&self, object: &str) -> Result<Option<Vec<u8>>, SwiftError> {
        let (status, body) = self
            .send(reqwest::Method::GET, object, &[], Vec::new())
            .await?;
        match status {
            200 => Ok(Some(body)),
            404 => Ok(None),
            _ => Err(Self::refused(format!("reading {object}"), status, &body)),
        }
    }

    pub async fn exists(&self, object: &str) -> Result<bool, SwiftError> {
        let (status, body) = self
            .send(reqwest::Method::HEAD, object, &[], Vec::new())
            .await?;
        match status {
            200 => Ok(true),
            404 => Ok(false),
            _ => Err(Self::refused(format!("looking up {object}"), status, &body)),
        }
    }

    pub async fn delete(&self, object: &str) -> Result<(), SwiftError> {
        let (status, body) = self
            .send(reqwest::Method::DELETE, object, &[], Vec::new())
            .await?;
        if status != 204 && status != 200 && status != 404 {
            return Err(Self::refused(format!("deleting {object}"), status, &body));
        }
        Ok(())
    }
}
