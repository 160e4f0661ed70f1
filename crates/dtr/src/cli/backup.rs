//! `backup`, `backup verify` and `restore` at the terminal: flags and environment checked here,
//! the passphrase asked here (only on a terminal); the work is in `ops::{backup, restore}`.

use std::io::IsTerminal;

use super::args::{BackupArgs, BackupKeyArgs, RestoreArgs};
use super::{convert, prompt, runtime};
use dtr_bootstrap::backup::{archive, crypt};
use dtr_bootstrap::engine::Target;
use dtr_bootstrap::error::{Error, Result};
use dtr_bootstrap::report::Reporter;
use dtr_core::options::{LogLevel, Proxies, Subnet};
use dtr_core::secret::Secret;

/// Where the passphrase of an encrypted backup comes from: never a flag, so that it does not
/// show in process lists or shell history.
const PASSPHRASE_ENV: &str = "DTR_BACKUP_PASSPHRASE";

fn passphrase_env() -> Option<Secret<String>> {
    std::env::var(PASSPHRASE_ENV)
        .ok()
        .filter(|p| !p.is_empty())
        .map(Secret::new)
}

fn keys(a: &BackupKeyArgs) -> Result<crypt::Keys> {
    let identities = match &a.backup_identity_file {
        Some(path) => crypt::read_identity_file(path).map_err(|e| {
            Error::Input(dtr_core::InputError::InvalidValue {
                flag: "--backup-identity-file",
                value: path.display().to_string(),
                reason: e.to_string(),
            })
        })?,
        None => Vec::new(),
    };
    Ok(crypt::Keys {
        passphrase: passphrase_env(),
        identities,
    })
}

fn crypt_refused(e: crypt::CryptError) -> Error {
    Error::BadBackup {
        reason: e.to_string(),
    }
}

pub fn backup(a: BackupArgs, target: &Target, reporter: &Reporter) -> Result<()> {
    if std::io::stdout().is_terminal() {
        return Err(Error::Input(dtr_core::InputError::InvalidValue {
            flag: "stdout",
            value: "(a terminal)".into(),
            reason: "the backup is a tar archive written to stdout: redirect it, e.g. `docker run -i --rm --log-driver none registry/dtr backup ... > backup.tar`".into(),
        }));
    }
    for r in &a.encrypt_to {
        crypt::parse_recipient(r).map_err(|e| {
            Error::Input(dtr_core::InputError::InvalidValue {
                flag: "--encrypt-to",
                value: r.clone(),
                reason: e.to_string(),
            })
        })?;
    }
    let protection = match (a.encrypt_with_passphrase, a.encrypt_to.is_empty()) {
        (true, false) => {
            return Err(Error::Input(dtr_core::InputError::InvalidValue {
                flag: "--encrypt-with-passphrase",
                value: "true".into(),
                reason: "choose one: a passphrase or --encrypt-to recipients".into(),
            }))
        }
        (true, true) => crypt::Protection::Passphrase(match passphrase_env() {
            Some(p) => p,
            None if prompt::interactive() => {
                Secret::new(prompt::new_password("Passphrase for the backup")?)
            }
            None => {
                return Err(Error::MissingInput {
                    missing: vec![("the passphrase", PASSPHRASE_ENV)],
                })
            }
        }),
        (false, false) => crypt::Protection::Recipients(a.encrypt_to.clone()),
        (false, true) => crypt::Protection::None,
    };
    let opts = dtr_bootstrap::ops::backup::BackupOptions {
        existing: convert::existing_replica_id(&a.existing_replica_id)?,
        offline: a.offline_backup,
        protection,
    };
    let choose = super::ha::chooser(
        prompt::interactive(),
        "existing-replica-id (The replica to back up)",
        "--existing-replica-id",
        "DTR_REPLICA_ID",
    );
    let stdout = std::io::stdout().lock();
    let report = runtime().block_on(dtr_bootstrap::ops::backup::backup(
        target, opts, &choose, stdout, reporter,
    ))?;
    reporter.info(format!(
        "Backup is complete ({:.1}s): replica {} (database from replica {}), {} entries, {} bytes of data{}",
        reporter.elapsed().as_secs_f64(),
        report.replica,
        report.db_from,
        report.entries,
        report.bytes,
        if report.encrypted { ", encrypted with age" } else { "" }
    ));
    reporter
        .info("Image data is not in the backup: back up the storage (volume or path) separately");
    Ok(())
}

/// `dtr backup verify < backup.tar`: reads the whole archive from stdin and checks it.
pub fn verify(a: BackupKeyArgs, reporter: &Reporter) -> Result<()> {
    if std::io::stdin().is_terminal() {
        return Err(Error::Input(dtr_core::InputError::InvalidValue {
            flag: "stdin",
            value: "(a terminal)".into(),
            reason: "pipe the backup in: dtr backup verify < backup.tar".into(),
        }));
    }
    let keys = keys(&a)?;
    let (reader, encrypted) = crypt::open(std::io::stdin().lock(), &keys).map_err(crypt_refused)?;
    let mut bytes = 0u64;
    let manifest = archive::read(reader, |_, b| {
        bytes += b.len() as u64;
        Ok(())
    })
    .map_err(|e| Error::BadBackup {
        reason: e.to_string(),
    })?;
    reporter.info(format!(
        "the backup is intact: format {}, dtr {}, replica {}, made {}; {} entries, {bytes} bytes, every SHA-256 matches{}",
        manifest.format,
        manifest.dtr_version,
        manifest.replica_id,
        manifest.created_at,
        manifest.entries.len(),
        if encrypted { "; decrypted with the given key" } else { "" }
    ));
    if let Err(why) =
        archive::check_version(&manifest.dtr_version, dtr_core::version::VERSION, false)
    {
        reporter.warn(format!("this bootstrapper would not restore it: {why}"));
    }
    Ok(())
}

pub fn restore(a: RestoreArgs, target: &Target, reporter: &Reporter) -> Result<()> {
    let s = &a.service;
    let storage = convert::storage_choice(s)?;
    if a.dtr_use_default_storage && storage.is_some() {
        return Err(Error::invalid(
            "--dtr-use-default-storage",
            "true",
            "it means the storage recorded in the backup: give it, --dtr-storage-volume or --nfs-storage-url, not two",
        ));
    }
    convert::refuse_later_features(s)?;
    if std::io::stdin().is_terminal() {
        return Err(Error::Input(dtr_core::InputError::InvalidValue {
            flag: "stdin",
            value: "(a terminal)".into(),
            reason: "pipe the backup in: docker run -i --rm registry/dtr restore ... < backup.tar"
                .into(),
        }));
    }
    let proxies = Proxies {
        http: convert::nonempty(&s.http_proxy),
        https: convert::nonempty(&s.https_proxy),
        no_proxy: convert::nonempty(&s.no_proxy),
    };
    let any_proxy = proxies.http.is_some() || proxies.https.is_some() || proxies.no_proxy.is_some();
    let opts = dtr_bootstrap::ops::restore::RestoreOptions {
        node: convert::nonempty(&a.replica.ucp_node),
        replica_id: convert::replica_id_opt(&a.replica.replica_id)?,
        http_port: convert::port("--replica-http-port", a.replica.replica_http_port)?,
        https_port: convert::port("--replica-https-port", a.replica.replica_https_port)?,
        db_cache_mb: convert::cache_mb(a.replica.replica_rethinkdb_cache_mb)?,
        external_url: convert::nonempty(&s.dtr_external_url)
            .map(|u| dtr_core::options::ExternalUrl::parse(&u))
            .transpose()?,
        tls: convert::tls(s)?,
        storage,
        overlay_subnet: Subnet::parse(&a.overlay_subnet)?,
        log_level: LogLevel::parse(&s.log_level)?,
        proxies: any_proxy.then_some(proxies),
        allow_other_patch: a.allow_other_patch,
        keys: keys(&a.keys)?,
        ignore_checks: dtr_bootstrap::ops::preflight::ignorable(
            a.replica.ignore_preflight_errors.as_deref(),
        )?,
        custom_ca_bundle: convert::custom_ca_bundle(&s.custom_ca_cert_bundle)?,
    };
    // after Ctrl-C the thread reading stdin may still wait for input: it is not waited for
    let report = super::block_on_detached(dtr_bootstrap::ops::restore::restore(
        target,
        opts,
        std::io::stdin(),
        reporter,
    ))?;
    reporter.info(format!(
        "Restore is complete ({:.1}s): replica {} holds the backup of replica {} made {} by dtr {}",
        reporter.elapsed().as_secs_f64(),
        report.plan.replica_id,
        report.manifest.replica_id,
        report.manifest.created_at,
        report.manifest.dtr_version
    ));
    reporter.info(format!(
        "Restored: {}, {} etcd keys",
        report
            .counts
            .iter()
            .map(|(what, n)| format!("{n} {what}"))
            .collect::<Vec<_>>()
            .join(", "),
        report.etcd_keys
    ));
    reporter.info(format!(
        "DTR is at https://{} (CA SHA-256 {}); add replicas with: dtr join --existing-replica-id {}",
        report.plan.external_authority, report.certs.external_ca_fingerprint, report.plan.replica_id
    ));
    reporter.info(
        "The vulnerability database is not in a backup: download it again if you scan images",
    );
    Ok(())
}
