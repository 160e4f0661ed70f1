//! The install plan as data, checked without an engine: a full snapshot plus the properties
//! operators and the other layers rely on.

use super::*;
use dtr_core::options::{
    AdminAccount, InstallOptions, LogLevel, Proxies, ReplicaId, Storage, Subnet,
};
use dtr_core::secret::Secret;

fn options() -> InstallOptions {
    InstallOptions {
        node: None,
        replica_id: ReplicaId::parse("0123456789ab").unwrap(),
        http_port: 8080,
        https_port: 8443,
        external_url: None,
        tls: None,
        storage: Storage::DefaultVolume,
        overlay_subnet: Subnet::parse("10.1.0.0/24").unwrap(),
        log_level: LogLevel::Info,
        proxies: Proxies::default(),
        db_cache_mb: Some(512),
        admin: AdminAccount {
            username: "admin".into(),
            password_hash: Secret::new("$argon2id$v=19$test".into()),
        },
        ignore_checks: Vec::new(),
        custom_ca_bundle: None,
    }
}

/// The test options with another replica id (for the other plan tests).
pub(super) fn install_options(id: &str) -> InstallOptions {
    InstallOptions {
        replica_id: ReplicaId::parse(id).unwrap(),
        ..options()
    }
}

fn facts() -> TargetFacts {
    TargetFacts {
        node: "node1".into(),
        node_addr: Some("192.0.2.10".into()),
        mem_total_bytes: 8 << 30,
    }
}

#[test]
fn install_plan_snapshot() {
    let plan = install_plan(&options(), &facts());
    insta::assert_json_snapshot!("install_plan", plan, { ".version" => "[version]", ".containers[].image" => "[image]", ".containers[].env.DTR_VERSION" => "[version]", ".containers[].labels[\"com.docker.dtr.version\"]" => "[version]", ".networks[].labels[\"com.docker.dtr.version\"]" => "[version]", ".volumes[].labels[\"com.docker.dtr.version\"]" => "[version]", ".phase2.image" => "[image]", ".phase2.labels[\"com.docker.dtr.version\"]" => "[version]" });
}

#[test]
fn eight_containers_named_so_that_the_third_field_is_the_replica_id() {
    let plan = install_plan(&options(), &facts());
    let names: Vec<&str> = plan.containers.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "dtr-etcd-0123456789ab",
            "dtr-rethinkdb-0123456789ab",
            "dtr-notary-signer-0123456789ab",
            "dtr-notary-server-0123456789ab",
            "dtr-registry-0123456789ab",
            "dtr-api-0123456789ab",
            "dtr-jobrunner-0123456789ab",
            "dtr-nginx-0123456789ab"
        ]
    );
    for c in &plan.containers {
        // operators take the replica id from the container name; components with a dash in
        // their name (notary-*) are the only exception, and scripts use dtr-rethinkdb for it
        if !c.name.contains("notary") {
            assert_eq!(c.name.split('-').nth(2), Some("0123456789ab"), "{}", c.name);
        }
        assert_eq!(c.labels[labels::REPLICA], "0123456789ab");
        assert_eq!(c.labels[labels::MANAGED], "true");
        assert_eq!(c.labels[labels::VERSION], dtr_core::version::VERSION);
        assert_eq!(c.restart_policy, "unless-stopped");
        assert!(
            c.mounts
                .iter()
                .any(|m| m.target == "/ca" && m.read_only && m.source == "dtr-ca-0123456789ab"),
            "{} must see /ca read-only",
            c.name
        );
        assert!(!c.user.starts_with('0'), "{} must not run as root", c.name);
    }
}

#[test]
fn registry_carries_the_version_and_only_nginx_publishes_ports() {
    let plan = install_plan(&options(), &facts());
    let registry = plan
        .containers
        .iter()
        .find(|c| c.component == Component::Registry)
        .unwrap();
    assert_eq!(registry.env["DTR_VERSION"], dtr_core::version::VERSION);
    for c in &plan.containers {
        if c.component == Component::Nginx {
            assert_eq!(
                c.ports,
                vec![
                    PortSpec {
                        host: 8080,
                        container: 8080
                    },
                    PortSpec {
                        host: 8443,
                        container: 8443
                    }
                ]
            );
        } else {
            assert!(c.ports.is_empty(), "{} publishes ports", c.name);
        }
    }
}

#[test]
fn volumes_and_networks() {
    let plan = install_plan(&options(), &facts());
    let vols: Vec<&str> = plan.volumes.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(
        vols,
        [
            "dtr-ca-0123456789ab",
            "dtr-etcd-0123456789ab",
            "dtr-notary-0123456789ab",
            "dtr-rethink-0123456789ab",
            "dtr-registry-0123456789ab"
        ]
    );
    assert!(plan
        .volumes
        .iter()
        .all(|v| v.labels[labels::REPLICA] == "0123456789ab"));
    assert_eq!(plan.networks[0].name, "dtr-ol");
    assert_eq!(plan.networks[0].driver, "overlay");
    assert!(plan.networks[0].attachable);
    assert_eq!(plan.networks[0].subnet.as_deref(), Some("10.1.0.0/24"));
    assert_eq!(plan.networks[1].name, "dtr-br");
    assert_eq!(plan.networks[1].driver, "bridge");
}

#[test]
fn a_users_storage_volume_is_used_but_never_labelled_as_ours() {
    let mut opts = options();
    opts.storage = Storage::NamedVolume("my-blobs".into());
    let plan = install_plan(&opts, &facts());
    let v = plan.volumes.iter().find(|v| v.name == "my-blobs").unwrap();
    assert!(
        v.labels.is_empty(),
        "destroy must not find the user's volume"
    );
    let registry = plan
        .containers
        .iter()
        .find(|c| c.component == Component::Registry)
        .unwrap();
    assert!(registry
        .mounts
        .iter()
        .any(|m| m.source == "my-blobs" && m.target == "/storage"));

    opts.storage = Storage::HostPath("/srv/dtr".into());
    let plan = install_plan(&opts, &facts());
    let registry = plan
        .containers
        .iter()
        .find(|c| c.component == Component::Registry)
        .unwrap();
    assert!(registry
        .mounts
        .iter()
        .any(|m| m.source == "/srv/dtr" && m.bind));
    assert!(!plan.volumes.iter().any(|v| v.kind == "registry"));
}

#[test]
fn log_level_and_proxies_reach_every_container() {
    let mut opts = options();
    opts.log_level = LogLevel::Debug;
    opts.proxies = Proxies {
        http: Some("http://proxy:3128".into()),
        https: None,
        no_proxy: Some("a.com".into()),
    };
    let plan = install_plan(&opts, &facts());
    for c in &plan.containers {
        assert_eq!(c.env["LOG_LEVEL"], "debug");
        assert_eq!(c.env["HTTP_PROXY"], "http://proxy:3128");
        assert_eq!(c.env["http_proxy"], "http://proxy:3128");
        assert_eq!(c.env["NO_PROXY"], "a.com");
        assert!(!c.env.contains_key("HTTPS_PROXY"));
    }
}

#[test]
fn external_url_names_the_certificate_and_the_token_realm() {
    let mut opts = options();
    opts.external_url =
        Some(dtr_core::options::ExternalUrl::parse("https://registry.example.com").unwrap());
    let plan = install_plan(&opts, &facts());
    assert_eq!(plan.external_authority, "registry.example.com");
    assert_eq!(
        plan.phase2.request.external_names[0],
        "registry.example.com"
    );
    assert!(plan
        .phase2
        .request
        .external_names
        .contains(&"node1".to_string()));
    assert!(plan
        .phase2
        .request
        .external_names
        .contains(&"192.0.2.10".to_string()));
    let registry = plan
        .containers
        .iter()
        .find(|c| c.component == Component::Registry)
        .unwrap();
    assert_eq!(
        registry.env["DTR_TOKEN_REALM"],
        "https://registry.example.com/auth/token"
    );
}

#[test]
fn no_secret_in_any_container_command_or_env() {
    let ca = dtr_core::pki::generate_ca("t").unwrap();
    let leaf = dtr_core::pki::issue(
        &ca.cert_pem,
        &ca.key_pem,
        "x",
        &["x".into()],
        dtr_core::pki::Usage::Server,
    )
    .unwrap();
    let mut opts = options();
    opts.tls =
        Some(dtr_core::pki::TlsMaterial::new(leaf.cert_pem, leaf.key_pem.clone(), None).unwrap());
    let plan = install_plan(&opts, &facts());
    let text = serde_json::to_string(&plan).unwrap();
    assert!(
        !text.contains("PRIVATE KEY"),
        "the plan must never hold a private key"
    );
    assert!(!text.contains(leaf.key_pem.expose().lines().nth(1).unwrap()));
}

#[test]
fn database_memory_follows_the_flag_or_the_node() {
    assert_eq!(db_memory(Some(1024), 0), (256, 1024));
    // the original's default: (memory - 1 GiB) / 2
    assert_eq!(db_memory(None, 9 << 30), (1024, 4096));
    assert_eq!(db_memory(None, 512 << 20), (16, 64));
}

#[test]
fn registry_and_notary_server_require_tokens_from_the_api() {
    let plan = install_plan(&options(), &facts());
    for component in [Component::Registry, Component::NotaryServer, Component::Api] {
        let c = plan
            .containers
            .iter()
            .find(|c| c.component == component)
            .unwrap();
        assert_eq!(
            c.env["DTR_TOKEN_REALM"], "https://node1:8443/auth/token",
            "{}",
            c.name
        );
        let audience = match component {
            Component::NotaryServer => "node1:8443-notary",
            _ => "node1:8443",
        };
        assert_eq!(c.env["DTR_TOKEN_SERVICE"], audience, "{}", c.name);
    }
}

#[test]
fn nfs_storage_is_a_labelled_local_volume_of_type_nfs() {
    let mut opts = options();
    let nfs = dtr_core::options::NfsStorage::parse("nfs://nas.example.com/exports/dtr", None, true)
        .unwrap();
    opts.storage = Storage::Nfs(nfs.clone());
    let plan = install_plan(&opts, &facts());
    let v = plan
        .volumes
        .iter()
        .find(|v| v.kind == "registry")
        .expect("a storage volume");
    assert_eq!(v.name, "dtr-nfs-registry-0123456789ab");
    assert_eq!(v.driver_opts["type"], "nfs");
    assert_eq!(v.driver_opts["device"], ":/exports/dtr");
    assert_eq!(
        v.driver_opts["o"],
        "addr=nas.example.com,rw,nfsvers=4,hard,async"
    );
    assert_eq!(labels::nfs_of(&v.labels), Some(nfs));
    for c in [Component::Registry, Component::Jobrunner] {
        let spec = plan.containers.iter().find(|s| s.component == c).unwrap();
        assert!(spec
            .mounts
            .iter()
            .any(|m| m.source == "dtr-nfs-registry-0123456789ab"
                && m.target == "/storage"
                && !m.bind));
    }
}

#[test]
fn a_custom_ca_bundle_goes_to_phase_2() {
    let mut opts = options();
    opts.custom_ca_bundle =
        Some("-----BEGIN CERTIFICATE-----\nMII\n-----END CERTIFICATE-----\n".into());
    let plan = install_plan(&opts, &facts());
    assert!(plan.phase2.request.custom_ca_bundle.is_some());
    // and nothing else of the plan carries it
    let mut json = serde_json::to_value(&plan).unwrap();
    json["phase2"]["request"]["custom_ca_bundle"] = serde_json::Value::Null;
    assert!(!json.to_string().contains("BEGIN CERTIFICATE"));
}
