//! etcd as the roles use it: the v3 JSON gateway of the replica's own member (over mutual TLS,
//! with the role's certificate), for the cluster-wide documents (`/dtr/settings`,
//! `/dtr/storage`) and a lease-bound lock. Keys and values are base64 on the wire.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use data_encoding::BASE64;
use serde_json::{json, Value};

use crate::error::{Error, Result};

/// A client of the etcd endpoints a role was given (`DTR_ETCD_ENDPOINTS`): each request tries
/// them in order until one answers, then the other members' client URLs as the last member
/// list named them (refreshed in the background at most every 30 s), so that a replica whose
/// own member is down still reaches the cluster.
#[derive(Clone)]
pub struct Etcd {
    http: reqwest::Client,
    endpoints: Vec<String>,
    others: Arc<Mutex<Others>>,
}

#[derive(Default)]
struct Others {
    urls: Vec<String>,
    refreshed: Option<Instant>,
}

/// How old the other members' URLs may be before a successful request refreshes them.
const OTHERS_FOR: Duration = Duration::from_secs(30);
const MEMBER_LIST: &str = "/v3/cluster/member/list";

/// A value and the revision it was last written at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub value: Vec<u8>,
    pub mod_revision: i64,
}

fn b64(s: &[u8]) -> String {
    BASE64.encode(s)
}

/// The end of etcd's range of keys that start with `prefix` (its last byte plus one).
fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// A member of the etcd cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// Hexadecimal.
    pub id: String,
    /// The replica id; empty for a member added but never started.
    pub name: String,
    pub peer_urls: Vec<String>,
    pub learner: bool,
}

impl Etcd {
    pub fn new(http: reqwest::Client, endpoints: Vec<String>) -> Etcd {
        Etcd {
            http,
            endpoints,
            others: Arc::default(),
        }
    }

    /// The configured endpoints, then the other members'.
    fn candidates(&self) -> Vec<String> {
        let others = self.others.lock().expect("not poisoned").urls.clone();
        let mut all = self.endpoints.clone();
        all.extend(others.into_iter().filter(|u| !self.endpoints.contains(u)));
        all
    }

    /// After a request that worked: the other members' URLs again, when they are old.
    fn refresh_others_later(&self) {
        {
            let mut others = self.others.lock().expect("not poisoned");
            if others.refreshed.is_some_and(|t| t.elapsed() < OTHERS_FOR) {
                return;
            }
            // one refresh at a time: the next request sees it as fresh
            others.refreshed = Some(Instant::now());
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let this = self.clone();
        runtime.spawn(async move {
            if let Ok(r) = this.call(MEMBER_LIST, json!({})).await {
                let urls: Vec<String> = r["members"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .flat_map(|m| m["clientURLs"].as_array().cloned().unwrap_or_default())
                    .filter_map(|u| u.as_str().map(str::to_string))
                    .collect();
                this.others.lock().expect("not poisoned").urls = urls;
            }
        });
    }

    async fn call(&self, path: &str, body: Value) -> Result<Value> {
        let mut last = None;
        for endpoint in self.candidates() {
            let url = format!("{endpoint}{path}");
            match self.http.post(&url).json(&body).send().await {
                Ok(r) if r.status().is_success() => {
                    if path != MEMBER_LIST {
                        self.refresh_others_later();
                    }
                    return r.json().await.map_err(|e| Error::Http {
                        url,
                        reason: e.to_string(),
                    });
                }
                Ok(r) => {
                    let status = r.status();
                    let text = r.text().await.unwrap_or_default();
                    last = Some(Error::Http {
                        url,
                        reason: format!("answered {status}: {}", text.trim()),
                    });
                }
                Err(e) => {
                    last = Some(Error::Http {
                        url,
                        reason: e.to_string(),
                    })
                }
            }
        }
        Err(last.unwrap_or_else(|| Error::Usage("no etcd endpoint configured".into())))
    }

    /// The value of `key`. `serializable`: answered from the member's own state, without the
    /// quorum (a replica keeps reading its configuration while the cluster has none).
    pub async fn get(&self, key: &str, serializable: bool) -> Result<Option<Entry>> {
        let r = self
            .call(
                "/v3/kv/range",
                json!({"key": b64(key.as_bytes()), "serializable": serializable}),
            )
            .await?;
        let Some(kv) = r["kvs"].get(0) else {
            return Ok(None);
        };
        let value = BASE64
            .decode(kv["value"].as_str().unwrap_or_default().as_bytes())
            .map_err(|e| Error::BadFile {
                what: format!("etcd key {key}"),
                reason: e.to_string(),
            })?;
        let mod_revision = kv["mod_revision"]
            .as_str()
            .and_then(|r| r.parse().ok())
            .unwrap_or(0);
        Ok(Some(Entry {
            value,
            mod_revision,
        }))
    }

    /// Every key under `prefix` and its value.
    pub async fn get_prefix(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>> {
        let r = self
            .call(
                "/v3/kv/range",
                json!({"key": b64(prefix.as_bytes()), "range_end": b64(&prefix_end(prefix))}),
            )
            .await?;
        let decode = |v: &Value, what: &str| {
            BASE64
                .decode(v.as_str().unwrap_or_default().as_bytes())
                .map_err(|e| Error::BadFile {
                    what: format!("etcd {what} under {prefix}"),
                    reason: e.to_string(),
                })
        };
        let mut out = Vec::new();
        for kv in r["kvs"].as_array().into_iter().flatten() {
            let key = String::from_utf8_lossy(&decode(&kv["key"], "key")?).to_string();
            out.push((key, decode(&kv["value"], "value")?));
        }
        Ok(out)
    }

    /// The cluster's members, as the first endpoint that answers knows them.
    pub async fn members(&self) -> Result<Vec<Member>> {
        let r = self.call(MEMBER_LIST, json!({})).await?;
        Ok(r["members"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|m| Member {
                // the gateway writes uint64 as a decimal string; etcdctl takes hexadecimal
                id: m["ID"]
                    .as_str()
                    .and_then(|v| v.parse::<u64>().ok())
                    .map(|v| format!("{v:x}"))
                    .unwrap_or_default(),
                name: m["name"].as_str().unwrap_or_default().to_string(),
                peer_urls: m["peerURLs"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|u| u.as_str().map(str::to_string))
                    .collect(),
                learner: m["isLearner"].as_bool().unwrap_or(false),
            })
            .collect())
    }

    pub async fn put(&self, key: &str, value: &[u8]) -> Result<()> {
        self.call(
            "/v3/kv/put",
            json!({"key": b64(key.as_bytes()), "value": b64(value)}),
        )
        .await
        .map(|_| ())
    }

    /// Writes `value` only if `key` was last written at `mod_revision` (0: it does not exist);
    /// false when someone else wrote it first.
    pub async fn put_if(&self, key: &str, mod_revision: i64, value: &[u8]) -> Result<bool> {
        let r = self
            .call(
                "/v3/kv/txn",
                json!({
                    "compare": [{"key": b64(key.as_bytes()), "target": "MOD",
                                 "result": "EQUAL", "mod_revision": mod_revision.to_string()}],
                    "success": [{"request_put": {"key": b64(key.as_bytes()), "value": b64(value)}}],
                }),
            )
            .await?;
        Ok(r["succeeded"].as_bool().unwrap_or(false))
    }

    pub async fn delete(&self, key: &str) -> Result<()> {
        self.call("/v3/kv/deleterange", json!({"key": b64(key.as_bytes())}))
            .await
            .map(|_| ())
    }

    /// Takes `key` as a lock held by `owner` for at most `ttl_secs` (the lease expires if the
    /// holder dies): the lease id when taken, `None` when another holds it.
    pub async fn try_lock(&self, key: &str, owner: &str, ttl_secs: i64) -> Result<Option<i64>> {
        let lease = self
            .call("/v3/lease/grant", json!({"TTL": ttl_secs}))
            .await?;
        let id: i64 = lease["ID"]
            .as_str()
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| Error::BadFile {
                what: "etcd lease grant".into(),
                reason: format!("no lease id in {lease}"),
            })?;
        let r = self
            .call(
                "/v3/kv/txn",
                json!({
                    "compare": [{"key": b64(key.as_bytes()), "target": "CREATE",
                                 "result": "EQUAL", "create_revision": "0"}],
                    "success": [{"request_put": {"key": b64(key.as_bytes()),
                                                 "value": b64(owner.as_bytes()),
                                                 "lease": id.to_string()}}],
                }),
            )
            .await?;
        if r["succeeded"].as_bool().unwrap_or(false) {
            Ok(Some(id))
        } else {
            let _ = self
                .call("/v3/lease/revoke", json!({"ID": id.to_string()}))
                .await;
            Ok(None)
        }
    }

    /// Gives a lock taken with `try_lock` back (its key goes with its lease).
    pub async fn unlock(&self, lease: i64) -> Result<()> {
        self.call("/v3/lease/revoke", json!({"ID": lease.to_string()}))
            .await
            .map(|_| ())
    }
}
