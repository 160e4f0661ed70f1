//! From parsed arguments to validated options: each flag's value checked once, with the flag's
//! name in the error; flags whose feature has not landed yet are refused by name.

use super::args::{InstallArgs, ServiceArgs, UcpArgs};
use super::prompt;
use dtr_bootstrap::engine::mke::MkeTarget;
use dtr_bootstrap::engine::Target;
use dtr_bootstrap::error::{Error, Result};
use dtr_core::options::{
    AdminAccount, ExternalUrl, InstallOptions, LogLevel, NfsStorage, Proxies, ReplicaId, Storage,
    Subnet,
};
use dtr_core::pki::TlsMaterial;
use dtr_core::secret::Secret;

/// `--ucp-*`: the MKE/UCP target, or `None` for the local engine when no `--ucp-*` flag (or
/// `UCP_*` variable) is given at all. With any of them, URL, username and password are required:
/// asked for on a terminal, else noted in `ask` (the caller ends with `ask.finish()`).
pub fn mke_target(
    ucp: &UcpArgs,
    ask: &mut prompt::Asker,
    reporter: &dtr_bootstrap::report::Reporter,
) -> Result<Option<MkeTarget>> {
    let any = [
        &ucp.ucp_url,
        &ucp.ucp_username,
        &ucp.ucp_password,
        &ucp.ucp_ca,
    ]
    .iter()
    .any(|v| v.is_some())
        || ucp.ucp_insecure_tls;
    if !any {
        return Ok(None);
    }
    let url = ask.value(
        nonempty(&ucp.ucp_url),
        "ucp-url",
        "The UCP URL including domain and port",
        "--ucp-url",
        "UCP_URL",
    )?;
    let username = ask.value(
        nonempty(&ucp.ucp_username),
        "ucp-username",
        "The UCP administrator username",
        "--ucp-username",
        "UCP_USERNAME",
    )?;
    let password = ask.secret(
        ucp.ucp_password.clone().filter(|p| !p.is_empty()),
        "ucp-password",
        "--ucp-password",
        "UCP_PASSWORD",
    )?;
    let (Some(url), Some(username), Some(password)) = (url, username, password) else {
        return Ok(None);
    };
    let ca_pem = nonempty(&ucp.ucp_ca)
        .map(|v| pem_value("--ucp-ca", &v))
        .transpose()?;
    if ucp.ucp_insecure_tls {
        reporter.warn(
            "--ucp-insecure-tls: MKE's certificate is not verified, so whoever sits between this machine and MKE can read the password and the session; give --ucp-ca instead outside a lab",
        );
        if ca_pem.is_some() {
            reporter.warn("--ucp-ca is not used because --ucp-insecure-tls was given");
        }
    }
    Ok(Some(MkeTarget {
        url: mke_url(&url)?,
        username,
        password,
        ca_pem,
        insecure: ucp.ucp_insecure_tls,
    }))
}

/// `--ucp-url`: `https://host[:port]`; a bare `host[:port]` means https.
fn mke_url(v: &str) -> Result<url::Url> {
    let with_scheme = if v.contains("://") {
        v.to_string()
    } else {
        format!("https://{v}")
    };
    let invalid = |reason: &str| {
        Error::Input(dtr_core::InputError::InvalidValue {
            flag: "--ucp-url",
            value: v.to_string(),
            reason: reason.into(),
        })
    };
    let url = url::Url::parse(&with_scheme).map_err(|e| invalid(&e.to_string()))?;
    if url.scheme() != "https" {
        return Err(invalid("MKE/UCP is reached over https"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid("no host in it"));
    }
    Ok(url)
}

pub fn refuse_later_features(s: &ServiceArgs) -> Result<()> {
    refuse_later([
        s.enable_client_cert_auth,
        s.client_cert_auth_ca.is_some(),
        s.log_host.is_some(),
        !s.log_protocol.eq_ignore_ascii_case("internal"),
        s.enable_pprof,
    ])
}

/// The flags of features a later version brings, with what to do instead; install and
/// reconfigure refuse them alike (`given` in this order).
const LATER_FEATURES: [(&str, &str); 5] = [
    (
        "--enable-client-cert-auth",
        "client-certificate authentication comes with a later version",
    ),
    (
        "--client-cert-auth-ca",
        "client-certificate authentication comes with a later version",
    ),
    (
        "--log-host",
        "the services log through the node's Docker log driver (--log-protocol internal)",
    ),
    (
        "--log-protocol",
        "the services log through the node's Docker log driver (--log-protocol internal)",
    ),
    (
        "--enable-pprof",
        "profiling endpoints come with a later version",
    ),
];

/// `--custom-ca-cert-bundle`: PEM certificates (the content, or a file), checked.
pub fn custom_ca_bundle(v: &Option<String>) -> Result<Option<String>> {
    let Some(v) = nonempty(v) else {
        return Ok(None);
    };
    let pem = pem_value("--custom-ca-cert-bundle", &v)?;
    let count = dtr_core::pki::certificate_count(&pem)
        .map_err(|reason| Error::invalid("--custom-ca-cert-bundle", "(given)", reason))?;
    if count == 0 {
        return Err(Error::invalid(
            "--custom-ca-cert-bundle",
            "(given)",
            "no PEM certificate in it; pass the content, e.g. --custom-ca-cert-bundle \"$(cat ca.pem)\", or a file",
        ));
    }
    Ok(Some(pem))
}

/// The image storage of install and restore: `--dtr-storage-volume` or `--nfs-storage-url`
/// (with `--nfs-options`, `--async-nfs`), not both; `None` when neither is given.
pub fn storage_choice(s: &ServiceArgs) -> Result<Option<Storage>> {
    let volume = nonempty(&s.dtr_storage_volume);
    let nfs = nonempty(&s.nfs_storage_url);
    if nfs.is_none() && (s.nfs_options.is_some() || s.async_nfs) {
        return Err(Error::invalid(
            if s.async_nfs {
                "--async-nfs"
            } else {
                "--nfs-options"
            },
            "(given)",
            "it goes with --nfs-storage-url",
        ));
    }
    match (volume, nfs) {
        (Some(_), Some(_)) => Err(Error::invalid(
            "--nfs-storage-url",
            "(given)",
            "choose one image storage: --dtr-storage-volume or --nfs-storage-url",
        )),
        (Some(v), None) => Ok(Some(Storage::parse(Some(&v))?)),
        (None, Some(url)) => Ok(Some(Storage::Nfs(NfsStorage::parse(
            &url,
            s.nfs_options.as_deref(),
            s.async_nfs,
        )?))),
        (None, None) => Ok(None),
    }
}

fn refuse_later(given: [bool; 5]) -> Result<()> {
    match LATER_FEATURES.iter().zip(given).find(|(_, on)| *on) {
        Some(((flag, hint), _)) => Err(Error::NotSupportedYet { flag, hint }),
        None => Ok(()),
    }
}

/// A PEM flag takes the PEM itself (the original's `"$(cat cert.pem)"`) or a path to a file.
fn pem_value(flag: &'static str, value: &str) -> Result<String> {
    if value.contains("-----BEGIN") {
        return Ok(value.to_string());
    }
    std::fs::read_to_string(value).map_err(|e| {
        Error::Input(dtr_core::InputError::InvalidValue {
            flag,
            // a private key given inline but mangled must not end up in the message: name a value
            // only when it reads as a file path of a non-secret flag
            value: if flag.ends_with("-key") || value.contains('\n') || value.len() > 200 {
                "(value not shown)".to_string()
            } else {
                value.to_string()
            },
            reason: format!("neither PEM content nor a readable file ({e})"),
        })
    })
}

pub fn nonempty(v: &Option<String>) -> Option<String> {
    v.as_ref()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// `--dtr-cert`/`--dtr-key`/`--dtr-ca`: the user's HTTPS certificate, checked.
pub fn tls(s: &ServiceArgs) -> Result<Option<TlsMaterial>> {
    tls_parts(&s.dtr_cert, &s.dtr_key, &s.dtr_ca)
}

/// `--dtr-cert`, `--dtr-key` and `--dtr-ca`: all or none (the CA may be left out).
fn tls_parts(
    cert: &Option<String>,
    key: &Option<String>,
    ca: &Option<String>,
) -> Result<Option<TlsMaterial>> {
    let dtr_ca = ca;
    Ok(match (nonempty(cert), nonempty(key)) {
        (Some(cert), Some(key)) => {
            let ca = nonempty(dtr_ca)
                .map(|v| pem_value("--dtr-ca", &v))
                .transpose()?;
            Some(TlsMaterial::new(
                pem_value("--dtr-cert", &cert)?,
                Secret::new(pem_value("--dtr-key", &key)?),
                ca,
            )?)
        }
        (None, None) if dtr_ca.is_some() => {
            return Err(Error::Input(dtr_core::InputError::InvalidValue {
                flag: "--dtr-ca",
                value: "(given)".into(),
                reason: "--dtr-ca goes with --dtr-cert and --dtr-key".into(),
            }))
        }
        (None, None) => None,
        (Some(_), None) => {
            return Err(Error::Input(dtr_core::InputError::InvalidValue {
                flag: "--dtr-key",
                value: "(missing)".into(),
                reason: "--dtr-cert needs its private key in --dtr-key".into(),
            }))
        }
        (None, Some(_)) => {
            return Err(Error::Input(dtr_core::InputError::InvalidValue {
                flag: "--dtr-cert",
                value: "(missing)".into(),
                reason: "--dtr-key needs its certificate in --dtr-cert".into(),
            }))
        }
    })
}

/// `reconfigure`'s image storage: `--dtr-storage-volume`, or `--nfs-storage-url` (with its
/// options; `""` switches back to the replica's own volume, as the original's documents say).
fn reconfigure_storage(a: &crate::cli::args::ReconfigureArgs) -> Result<Option<Storage>> {
    let volume = nonempty(&a.dtr_storage_volume);
    match (&a.nfs_storage_url, volume) {
        (Some(_), Some(_)) => Err(Error::invalid(
            "--nfs-storage-url",
            "(given)",
            "choose one image storage: --dtr-storage-volume or --nfs-storage-url",
        )),
        (None, volume) => {
            if a.nfs_options.is_some() || a.async_nfs.is_some() {
                return Err(Error::invalid(
                    if a.async_nfs.is_some() { "--async-nfs" } else { "--nfs-options" },
                    "(given)",
                    "give --nfs-storage-url with it (the original's rule: NFS options are applied with the URL)",
                ));
            }
            Ok(volume.map(|v| Storage::parse(Some(&v))).transpose()?)
        }
        (Some(url), None) if url.trim().is_empty() => Ok(Some(Storage::DefaultVolume)),
        (Some(url), None) => Ok(Some(Storage::Nfs(NfsStorage::parse(
            url.trim(),
            a.nfs_options.as_deref(),
            a.async_nfs.unwrap_or(false),
        )?))),
    }
}

/// `reconfigure`'s flags: only those given become changes; the features install refuses are
/// refused here too.
pub fn reconfigure(
    a: &crate::cli::args::ReconfigureArgs,
) -> Result<dtr_bootstrap::ops::reconfigure::Changes> {
    refuse_later([
        a.enable_client_cert_auth == Some(true),
        a.client_cert_auth_ca.is_some(),
        a.log_host.is_some(),
        a.log_protocol
            .as_deref()
            .is_some_and(|p| !p.eq_ignore_ascii_case("internal")),
        a.enable_pprof == Some(true),
    ])?;
    let port_of = |flag, v: Option<u16>| v.map(|p| port(flag, p)).transpose();
    cache_mb(a.replica_rethinkdb_cache_mb)?;
    let changes = dtr_bootstrap::ops::reconfigure::Changes {
        http_port: port_of("--replica-http-port", a.replica_http_port)?,
        https_port: port_of("--replica-https-port", a.replica_https_port)?,
        db_cache_mb: a.replica_rethinkdb_cache_mb,
        external_url: nonempty(&a.dtr_external_url)
            .map(|u| ExternalUrl::parse(&u))
            .transpose()?,
        tls: tls_parts(&a.dtr_cert, &a.dtr_key, &a.dtr_ca)?,
        storage: reconfigure_storage(a)?,
        custom_ca_bundle: custom_ca_bundle(&a.custom_ca_cert_bundle)?,
        storage_migrated: a.storage_migrated,
        log_level: nonempty(&a.log_level)
            .map(|l| LogLevel::parse(&l))
            .transpose()?,
        http_proxy: a.http_proxy.clone(),
        https_proxy: a.https_proxy.clone(),
        no_proxy: a.no_proxy.clone(),
    };
    if changes.is_empty() {
        return Err(Error::Input(dtr_core::InputError::InvalidValue {
            flag: "reconfigure",
            value: "(no change)".into(),
            reason: "give at least one setting to change (see `dtr reconfigure --help`)".into(),
        }));
    }
    Ok(changes)
}

pub fn install(a: InstallArgs, target: &Target) -> Result<InstallOptions> {
    refuse_later_features(&a.service)?;
    let s = &a.service;
    let tls = tls(s)?;
    cache_mb(a.replica.replica_rethinkdb_cache_mb)?;
    Ok(InstallOptions {
        node: nonempty(&a.replica.ucp_node),
        replica_id: new_replica_id(&a.replica.replica_id)?,
        http_port: port("--replica-http-port", a.replica.replica_http_port)?,
        https_port: port("--replica-https-port", a.replica.replica_https_port)?,
        external_url: nonempty(&s.dtr_external_url)
            .map(|u| ExternalUrl::parse(&u))
            .transpose()?,
        tls,
        storage: storage_choice(s)?.unwrap_or(Storage::DefaultVolume),
        overlay_subnet: Subnet::parse(&a.overlay_subnet)?,
        log_level: LogLevel::parse(&s.log_level)?,
        proxies: Proxies {
            http: nonempty(&s.http_proxy),
            https: nonempty(&s.https_proxy),
            no_proxy: nonempty(&s.no_proxy),
        },
        db_cache_mb: a.replica.replica_rethinkdb_cache_mb,
        admin: match (target, nonempty(&a.admin_password)) {
            // through MKE, DTR's first administrator is MKE's, as the original's users were MKE's
            (Target::Mke(mke), None) => {
                admin_account(&mke.username, Some(mke.password.expose().clone()))?
            }
            _ => admin_account(&a.admin_username, a.admin_password)?,
        },
        ignore_checks: dtr_bootstrap::ops::preflight::ignorable(
            a.replica.ignore_preflight_errors.as_deref(),
        )?,
        custom_ca_bundle: custom_ca_bundle(&s.custom_ca_cert_bundle)?,
    })
}

pub fn port(flag: &'static str, p: u16) -> Result<u16> {
    if p == 0 {
        Err(Error::Input(dtr_core::InputError::InvalidValue {
            flag,
            value: "0".into(),
            reason: "use a port from 1 to 65535".into(),
        }))
    } else {
        Ok(p)
    }
}

pub fn cache_mb(v: Option<u32>) -> Result<Option<u32>> {
    match v {
        Some(mb) if mb < 64 => Err(Error::Input(dtr_core::InputError::InvalidValue {
            flag: "--replica-rethinkdb-cache-mb",
            value: mb.to_string(),
            reason: "give at least 64 (MB)".into(),
        })),
        other => Ok(other),
    }
}

/// `--replica-id`: given, or a random one.
pub fn new_replica_id(v: &Option<String>) -> Result<ReplicaId> {
    match nonempty(v) {
        Some(id) => Ok(ReplicaId::parse(&id)?),
        None => Ok(ReplicaId::random()),
    }
}

/// An optional `--replica-id`.
pub fn replica_id_opt(v: &Option<String>) -> Result<Option<ReplicaId>> {
    Ok(nonempty(v).map(|id| ReplicaId::parse(&id)).transpose()?)
}

/// `--existing-replica-id`: a bad value is named by that flag.
pub fn existing_replica_id(v: &Option<String>) -> Result<Option<ReplicaId>> {
    Ok(nonempty(v)
        .map(|id| ReplicaId::parse(&id).map_err(|e| e.for_flag("--existing-replica-id")))
        .transpose()?)
}

/// A Go duration, as the original's `--max-wait` takes it: `90s`, `10m`, `1h30m`, `1.5h`,
/// `500ms` (units ns, us/µs, ms, s, m, h; no sign).
pub fn go_duration(flag: &'static str, v: &Option<String>) -> Result<Option<std::time::Duration>> {
    let Some(text) = nonempty(v) else {
        return Ok(None);
    };
    let invalid = || {
        Error::Input(dtr_core::InputError::InvalidValue {
            flag,
            value: text.clone(),
            reason: "a duration like 90s, 10m or 1h30m".into(),
        })
    };
    let mut rest = text.as_str();
    let mut secs = 0f64;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(invalid)?;
        let (num, tail) = rest.split_at(num_len);
        let n: f64 = num.parse().map_err(|_| invalid())?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let scale = match unit {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(invalid()),
        };
        secs += n * scale;
        rest = tail;
    }
    if secs <= 0.0 || !secs.is_finite() {
        return Err(invalid());
    }
    Ok(Some(std::time::Duration::from_secs_f64(secs)))
}

/// `--replica-ids a,b` (and the deprecated `--replica-id`).
pub fn replica_ids(list: &Option<String>, single: &Option<String>) -> Result<Vec<ReplicaId>> {
    let mut out = Vec::new();
    for part in [list, single]
        .into_iter()
        .flatten()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        let flag = if list
            .as_deref()
            .is_some_and(|l| l.split(',').any(|p| p.trim() == part))
        {
            "--replica-ids"
        } else {
            "--replica-id"
        };
        let id = ReplicaId::parse(part).map_err(|e| e.for_flag(flag))?;
        if !out.contains(&id) {
            out.push(id);
        }
    }
    Ok(out)
}

/// `--admin-username` / `--admin-password`: the password is asked on a terminal, required
/// otherwise, checked, hashed here and dropped.
fn admin_account(username: &str, password: Option<String>) -> Result<AdminAccount> {
    let valid_name = dtr_core::options::name_component_ok(username, 64);
    if !valid_name {
        return Err(Error::Input(dtr_core::InputError::InvalidValue {
            flag: "--admin-username",
            value: username.to_string(),
            reason: "use lower-case letters and digits, with single . _ - between them, at most 64"
                .into(),
        }));
    }
    let password = match password.filter(|p| !p.is_empty()) {
        Some(p) => Secret::new(p),
        None if prompt::interactive() => Secret::new(prompt::new_password(&format!(
            "Password for the DTR administrator {username}"
        ))?),
        None => {
            return Err(Error::MissingInput {
                missing: vec![("--admin-password", "DTR_ADMIN_PASSWORD")],
            })
        }
    };
    if password.expose().chars().count() < 8 {
        return Err(Error::Input(dtr_core::InputError::InvalidValue {
            flag: "--admin-password",
            value: "(not shown)".into(),
            reason: "use at least 8 characters".into(),
        }));
    }
    Ok(AdminAccount {
        username: username.to_string(),
        password_hash: Secret::new(dtr_server::password::hash(password.expose())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_wait_is_a_go_duration() {
        let d = |s: &str| go_duration("--max-wait", &Some(s.to_string()));
        let secs = std::time::Duration::from_secs;
        assert_eq!(d("90s").unwrap(), Some(secs(90)));
        assert_eq!(d("1h30m").unwrap(), Some(secs(5400)));
        assert_eq!(d("1.5m").unwrap(), Some(secs(90)));
        assert_eq!(
            d("500ms").unwrap(),
            Some(std::time::Duration::from_millis(500))
        );
        assert_eq!(go_duration("--max-wait", &None).unwrap(), None);
        for bad in ["10", "m", "5x", "-5s", "0s", "1h-2m"] {
            assert!(d(bad).is_err(), "{bad}");
        }
    }
}
