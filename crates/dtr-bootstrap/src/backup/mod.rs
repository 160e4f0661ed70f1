//! Backups of a cluster's metadata. `archive`: the archive format, its writer and its strict
//! reader (docs/backup-format.md). `crypt`: optional age encryption around the archive. The
//! entries a backup holds are named here; `ops::backup` makes them and `ops::restore` loads them.

pub mod archive;
pub mod crypt;

/// The databases a backup dumps, one `pg_dump` snapshot each, as `db/<name>.dump`.
pub const DATABASES: &[&str] = &["dtr", "notaryserver", "notarysigner"];
/// DTR's keys in etcd (`/dtr/` without Patroni's `/dtr/patroni/`), read at one revision.
pub const ETCD_KEYS: &str = "etcd/keys.json";
/// The cluster-wide settings of the replica's containers (`ops::config::Settings`).
pub const CLUSTER_SETTINGS: &str = "config/cluster.json";
/// The prefix of the dtr-ca volume's shared files (`ca/<path in the volume>`).
pub const CA_PREFIX: &str = "ca/";

pub fn db_entry(db: &str) -> String {
    format!("db/{db}.dump")
}

/// `etcd/keys.json`: the keys and values (base64, as etcd's JSON gives them) of one revision.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EtcdKeys {
    pub revision: i64,
    pub keys: Vec<EtcdKey>,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EtcdKey {
    pub key: String,
    pub value: String,
}

impl EtcdKeys {
    /// From `etcdctl get --prefix /dtr/ -w json`, without Patroni's keys (they describe the old
    /// cluster's members and leader, which a restored cluster must not adopt).
    pub fn from_etcdctl(json: &str) -> Option<EtcdKeys> {
        use data_encoding::BASE64;
        // the JSON document is one line; etcdctl may print warnings beside it (a member that
        // just lost its leader: "retrying of unary invoker failed")
        let doc: serde_json::Value = std::iter::once(json)
            .chain(json.lines())
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l.trim()).ok())
            .find(|d| d.get("header").is_some())?;
        let revision = doc["header"]["revision"].as_i64()?;
        let mut keys = Vec::new();
        for kv in doc["kvs"].as_array().map(Vec::as_slice).unwrap_or_default() {
            let key =
                String::from_utf8(BASE64.decode(kv["key"].as_str()?.as_bytes()).ok()?).ok()?;
            if !key.starts_with("/dtr/") || key.starts_with("/dtr/patroni/") {
                continue;
            }
            keys.push(EtcdKey {
                key,
                value: kv["value"].as_str().unwrap_or("").to_string(),
            });
        }
        Some(EtcdKeys { revision, keys })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etcd_keys_leave_patroni_out() {
        // etcdctl's JSON: keys and values base64
        let json = r#"{"header":{"revision":42},"kvs":[
            {"key":"L2R0ci9zZXR0aW5ncw==","value":"e30="},
            {"key":"L2R0ci9wYXRyb25pL2R0ci9sZWFkZXI=","value":"YQ=="}]}"#;
        let keys = EtcdKeys::from_etcdctl(json).unwrap();
        assert_eq!(keys.revision, 42);
        assert_eq!(
            keys.keys,
            vec![EtcdKey {
                key: "/dtr/settings".into(),
                value: "e30=".into()
            }]
        );
        assert_eq!(EtcdKeys::from_etcdctl("not json"), None);
        let empty = EtcdKeys::from_etcdctl(r#"{"header":{"revision":3}}"#).unwrap();
        // a warning line of etcdctl beside the document (its member just lost the leader)
        let warned = "{\"level\":\"warn\",\"msg\":\"retrying of unary invoker failed\"}\n{\"header\":{\"revision\":4}}\n";
        assert_eq!(EtcdKeys::from_etcdctl(warned).unwrap().revision, 4);
        assert!(empty.keys.is_empty());
    }
}
