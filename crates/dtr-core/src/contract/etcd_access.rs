//! Who may do what in etcd: the keys each component's certificate may read and write through
//! `dtr etcd-guard`, the listener in front of every etcd member (issue 18, finding 2).
//!
//! etcd's own authentication cannot take the identity from the client certificate for
//! requests through its JSON gateway (etcd-io/etcd#10366), which every role and Patroni use,
//! so the guard does it: it reads the certificate's CN, decides each request with
//! [`decide`] from the keys the request names, and forwards only what is allowed. The etcd
//! members themselves (CN `etcd`: the peers, `etcdctl` of the bootstrapper) pass unchanged.
//! A contract: the roles' needs are written here once, and a role that starts using a key
//! outside its rules fails its own engine tests instead of silently widening the rules.

/// The certificate CN of the etcd members, whose connections the guard passes unchanged.
pub const MEMBER: &str = "etcd";

/// What a rule allows on the keys it covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Read,
    ReadWrite,
}

/// Keys a rule covers: one key, or every key below a prefix ending in `/`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Keys {
    Exact(&'static str),
    Prefix(&'static str),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rule {
    pub keys: Keys,
    pub access: Access,
}

/// One identity's rights.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Grants {
    pub rules: &'static [Rule],
    /// Leases (grant, keep-alive, revoke): the locks and Patroni's leader key.
    pub leases: bool,
}

const fn read(keys: Keys) -> Rule {
    Rule {
        keys,
        access: Access::Read,
    }
}

const fn write(keys: Keys) -> Rule {
    Rule {
        keys,
        access: Access::ReadWrite,
    }
}

use Keys::{Exact, Prefix};

/// The rights of each certificate CN that is not an etcd member; a CN not here may use only
/// nothing. Keys come from `settings::KEY`, `storage::{KEY, REPLICAS_PREFIX}`,
/// `cluster::{REPLICAS_PREFIX, RETIRED_PREFIX}` and Patroni's namespace.
pub fn grants(cn: &str) -> Option<Grants> {
    const API: &[Rule] = &[
        write(Exact("/dtr/settings")),
        write(Exact("/dtr/storage")),
        read(Prefix("/dtr/storage/replicas/")),
    ];
    const JOBRUNNER: &[Rule] = &[read(Exact("/dtr/storage")), read(Exact("/dtr/settings"))];
    const REGISTRY: &[Rule] = &[
        read(Exact("/dtr/storage")),
        write(Exact("/dtr/storage/switching")),
        write(Prefix("/dtr/storage/replicas/")),
    ];
    const RETHINKDB: &[Rule] = &[write(Prefix("/dtr/patroni/"))];
    const JOIN_AGENT: &[Rule] = &[read(Prefix("/dtr/cluster/")), read(Exact("/dtr/storage"))];
    let (rules, leases) = match cn {
        "api" => (API, false),
        "jobrunner" => (JOBRUNNER, false),
        "registry" => (REGISTRY, true),
        "rethinkdb" => (RETHINKDB, true),
        "dtr-join-agent" => (JOIN_AGENT, false),
        _ => return None,
    };
    Some(Grants { rules, leases })
}

/// What a request asks of etcd, as the guard reads it from the gateway's path and JSON body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Want {
    /// Keys `[key, range_end)`; an empty `range_end` is the key alone.
    Keys {
        key: Vec<u8>,
        range_end: Vec<u8>,
        access: Access,
    },
    Lease,
    /// Member list, status, health, version: nothing of the keyspace.
    Info,
    /// Anything else (membership changes, auth, compaction, defragment, snapshots, alarms).
    Admin,
}

/// The end of the range of keys that start with `prefix`.
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

fn covers(rule: &Rule, key: &[u8], range_end: &[u8]) -> bool {
    match rule.keys {
        Exact(k) => {
            let k = k.as_bytes();
            let mut one = k.to_vec();
            one.push(0);
            key == k && (range_end.is_empty() || range_end == one.as_slice())
        }
        Prefix(p) => {
            let p = p.as_bytes();
            if !key.starts_with(p) {
                return false;
            }
            if range_end.is_empty() {
                return true;
            }
            // "\0" means every key from `key` on: beyond any prefix
            range_end != [0] && range_end > key && range_end <= prefix_end(p).as_slice()
        }
    }
}

/// Whether `grants` allow `want`.
pub fn allows(grants: &Grants, want: &Want) -> bool {
    match want {
        Want::Info => true,
        Want::Admin => false,
        Want::Lease => grants.leases,
        Want::Keys {
            key,
            range_end,
            access,
        } => grants.rules.iter().any(|rule| {
            (rule.access == Access::ReadWrite || *access == Access::Read)
                && covers(rule, key, range_end)
        }),
    }
}

/// The decision for a request of certificate `cn` that asks for all of `wants`.
pub fn decide(cn: &str, wants: &[Want]) -> Result<(), String> {
    let Some(grants) = grants(cn) else {
        return Err(format!("certificate {cn:?} may not use etcd"));
    };
    match wants.iter().find(|w| !allows(&grants, w)) {
        None => Ok(()),
        Some(Want::Keys {
            key,
            range_end,
            access,
        }) => Err(format!(
            "certificate {cn:?} may not {} {}{}",
            if *access == Access::Read {
                "read"
            } else {
                "write"
            },
            String::from_utf8_lossy(key),
            if range_end.is_empty() {
                String::new()
            } else {
                format!(" (range to {})", String::from_utf8_lossy(range_end))
            }
        )),
        Some(Want::Lease) => Err(format!("certificate {cn:?} may not use leases")),
        Some(_) => Err(format!(
            "certificate {cn:?} may not administer the etcd cluster"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(key: &str, end: &[u8], access: Access) -> Want {
        Want::Keys {
            key: key.as_bytes().to_vec(),
            range_end: end.to_vec(),
            access,
        }
    }

    #[test]
    fn each_identity_gets_its_keys_and_nothing_else() {
        use Access::*;
        let patroni_range = prefix_end(b"/dtr/patroni/");
        let storage_replicas = prefix_end(b"/dtr/storage/replicas/");
        let cluster = prefix_end(b"/dtr/cluster/");
        let cases: &[(&str, Want, bool)] = &[
            ("api", keys("/dtr/settings", b"", ReadWrite), true),
            ("api", keys("/dtr/settings", b"/dtr/settings\0", Read), true),
            ("api", keys("/dtr/storage", b"", ReadWrite), true),
            (
                "api",
                keys("/dtr/storage/replicas/", &storage_replicas, Read),
                true,
            ),
            (
                "api",
                keys("/dtr/storage/replicas/a", b"", ReadWrite),
                false,
            ),
            (
                "api",
                keys("/dtr/patroni/dtr/leader", b"", ReadWrite),
                false,
            ),
            ("api", keys("/dtr/patroni/", &patroni_range, Read), false),
            ("api", keys("/dtr/", &prefix_end(b"/dtr/"), Read), false),
            ("api", keys("/dtr/settingsX", b"", Read), false),
            ("api", Want::Lease, false),
            ("api", Want::Info, true),
            ("api", Want::Admin, false),
            ("jobrunner", keys("/dtr/storage", b"", Read), true),
            ("jobrunner", keys("/dtr/storage", b"", ReadWrite), false),
            (
                "registry",
                keys("/dtr/storage/switching", b"", ReadWrite),
                true,
            ),
            (
                "registry",
                keys("/dtr/storage/replicas/0123", b"", ReadWrite),
                true,
            ),
            ("registry", keys("/dtr/storage", b"", ReadWrite), false),
            ("registry", keys("/dtr/settings", b"", Read), false),
            ("registry", Want::Lease, true),
            (
                "rethinkdb",
                keys("/dtr/patroni/dtr/leader", b"", ReadWrite),
                true,
            ),
            (
                "rethinkdb",
                keys("/dtr/patroni/", &patroni_range, Read),
                true,
            ),
            ("rethinkdb", keys("/dtr/patroni/", b"\0", Read), false),
            (
                "rethinkdb",
                keys("/dtr/patroni/", &prefix_end(b"/dtr/"), Read),
                false,
            ),
            ("rethinkdb", keys("/dtr/settings", b"", Read), false),
            ("rethinkdb", Want::Lease, true),
            (
                "dtr-join-agent",
                keys("/dtr/cluster/", &cluster, Read),
                true,
            ),
            (
                "dtr-join-agent",
                keys("/dtr/cluster/x", b"", ReadWrite),
                false,
            ),
            ("nginx", keys("/dtr/settings", b"", Read), false),
            ("nginx", Want::Info, false),
            ("notary-server", Want::Info, false),
            ("notary-signer", keys("/dtr/storage", b"", Read), false),
        ];
        for (cn, want, expected) in cases {
            assert_eq!(
                decide(cn, std::slice::from_ref(want)).is_ok(),
                *expected,
                "{cn} {want:?}"
            );
        }
    }

    #[test]
    fn a_request_is_refused_when_any_of_its_keys_is() {
        let put = keys("/dtr/settings", b"", Access::ReadWrite);
        let other = keys("/dtr/patroni/x", b"", Access::ReadWrite);
        assert!(decide("api", std::slice::from_ref(&put)).is_ok());
        let refused = decide("api", &[put, other]).unwrap_err();
        assert!(
            refused.contains("may not write /dtr/patroni/x"),
            "{refused}"
        );
    }
}
