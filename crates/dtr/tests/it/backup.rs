//! Backup and restore on the real engine: a populated replica (accounts, permissions, tokens,
//! settings, jobs, pushed and signed images on a storage volume the user keeps) goes through
//! backup → destroy → restore and everything is back; a backup taken while a writer adds
//! repositories restores to a consistent state; and damaged or foreign archives are refused
//! before anything on the engine changes. Harness rules as in tests/common.

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::registry::*;
use crate::common::*;
use serde_json::Value;

const PASSPHRASE: &str = "a passphrase for the test backup";

/// `dtr backup` of the replica into `file`; `env` e.g. asks for encryption.
fn backup(replica: &TestReplica, file: &std::path::Path, extra: &[&str], env: &[(&str, &str)]) {
    let mut cmd = dtr_command(&["backup", "--existing-replica-id", &replica.id]);
    cmd.args(extra)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(file).unwrap())
        .stderr(Stdio::piped());
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "backup failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `dtr restore` of `file` onto the replica's id and ports.
fn restore(
    replica: &TestReplica,
    file: &std::path::Path,
    extra: &[&str],
    env: &[(&str, &str)],
) -> Output {
    let node = docker_ok(&["info", "-f", "{{.Name}}"]);
    dtr_command(&["restore", "--ucp-node", &node, "--replica-id", &replica.id])
        .args(["--replica-https-port", &replica.https_port.to_string()])
        .args(["--replica-http-port", &replica.http_port.to_string()])
        .args(extra)
        .envs(env.iter().copied())
        .stdin(std::fs::File::open(file).unwrap())
        .output()
        .unwrap()
}

fn verify(file: &std::path::Path, env: &[(&str, &str)]) -> Output {
    dtr_command(&["backup", "verify"])
        .envs(env.iter().copied())
        .stdin(std::fs::File::open(file).unwrap())
        .output()
        .unwrap()
}

fn get(reg: &Registry, path: &str) -> Value {
    let (code, body) = reg.api("GET", path, reg.admin(), None);
    assert_eq!(code, 200, "GET {path}: {body}");
    body
}

#[test]
fn backup_destroy_restore_brings_everything_back_and_signed_pulls_verify() {
    let Some(_engine) = engine() else { return };
    let store = UserVolume::create(&format!(
        "dtr-test-store-{}",
        dtr_core::options::ReplicaId::random()
    ));
    let reg = Registry::install_with(&["--dtr-storage-volume", &store.0]);
    let a = reg.authority.clone();

    // settings, accounts and permissions, tokens, a job, images (one signed)
    let (code, _) = reg.api(
        "POST",
        "/api/v0/meta/settings",
        reg.admin(),
        Some(r#"{"tokenLifetimeSeconds":77,"createRepositoryOnPush":true}"#),
    );
    assert_eq!(code, 200);
    let (code, body) = reg.api(
        "POST",
        "/api/v0/accounts",
        reg.admin(),
        Some(r#"{"name":"alice","password":"alice-password"}"#),
    );
    assert_eq!(code, 201, "{body}");
    let (code, body) = reg.api(
        "POST",
        "/api/v0/repositories/admin",
        reg.admin(),
        Some(r#"{"name":"open","visibility":"public","shortDescription":"everyone reads"}"#),
    );
    assert_eq!(code, 201, "{body}");
    let (code, token) = reg.api(
        "POST",
        "/api/v0/api_tokens",
        reg.admin(),
        Some(r#"{"tokenLabel":"ci"}"#),
    );
    assert_eq!(code, 201, "{token}");
    let token = token["token"].as_str().unwrap().to_string();
    let job = reg.run_job(
        r#"{"action":"metadatastoremigration"}"#,
        Duration::from_secs(60),
    );

    reg.login_ok("admin", admin_password());
    let image = reg.make_image("admin/app:1", 512 * 1024);
    let digest = reg.push(&image);
    let trust = TRUST;
    let signed = reg.push_signed("admin/app:2");
    assert!(reg.login("alice", "alice-password").status.success());
    let hers = format!("{a}/alice/mine:1");
    reg.docker_ok(&["tag", &image, &hers], &[]);
    reg.images.lock().unwrap().push(hers.clone());
    reg.docker_ok(&["push", &hers], &[]);

    let before = |reg: &Registry| {
        (
            get(reg, "/api/v0/meta/settings"),
            get(reg, "/api/v0/repositories"),
            get(reg, "/api/v0/accounts"),
            get(reg, "/api/v0/api_tokens"),
            get(reg, "/api/v0/repositories/admin/app/tags"),
            get(reg, &format!("/api/v0/jobs/{}", job["id"])),
        )
    };
    let state = before(&reg);

    // a plain and an encrypted backup
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("backup.tar");
    let sealed = dir.path().join("backup.tar.age");
    backup(&reg.replica, &plain, &[], &[]);
    backup(
        &reg.replica,
        &sealed,
        &["--encrypt-with-passphrase"],
        &[("DTR_BACKUP_PASSPHRASE", PASSPHRASE)],
    );
    let listing = Command::new("tar").arg("-tf").arg(&plain).output().unwrap();
    let listing = String::from_utf8_lossy(&listing.stdout).to_string();
    let first = listing.lines().next().unwrap_or("");
    assert_eq!(
        first,
        format!("dtr-backup-v{}/manifest.json", dtr_core::version::VERSION),
        "{listing}"
    );
    for part in [
        "db/dtr.dump",
        "db/notaryserver.dump",
        "db/notarysigner.dump",
        "etcd/keys.json",
        "ca/root/ca-key.pem",
    ] {
        assert!(listing.contains(part), "{part} missing:\n{listing}");
    }
    assert!(verify(&plain, &[]).status.success());
    let out = verify(&sealed, &[]);
    assert_eq!(out.status.code(), Some(7), "{}", text(&out));
    assert!(
        text(&out).contains("DTR_BACKUP_PASSPHRASE"),
        "{}",
        text(&out)
    );
    let out = verify(&sealed, &[("DTR_BACKUP_PASSPHRASE", PASSPHRASE)]);
    assert!(out.status.success(), "{}", text(&out));

    // destroy: the user's storage volume stays
    reg.replica.destroy();
    assert!(store.exists());
    assert!(reg.replica.containers().is_empty());

    let out = restore(
        &reg.replica,
        &sealed,
        &["--dtr-use-default-storage"],
        &[("DTR_BACKUP_PASSPHRASE", PASSPHRASE)],
    );
    let log = text(&out);
    assert!(out.status.success(), "restore failed:\n{log}");
    assert!(log.contains("3 repositories, 3 tags"), "{log}");
    assert!(
        log.contains("2 accounts") && log.contains("1 api_tokens"),
        "{log}"
    );

    // everything is back, as the API shows it
    let after = before(&reg);
    assert_eq!(state, after);
    // the administrator's token and alice's password log in; alice still cannot read admin/app
    reg.login_ok("admin", &token);
    reg.docker_ok(&["rmi", &image], &[]);
    reg.docker_ok(&["pull", &image], &[]);
    let pulled = reg.docker_ok(
        &["image", "inspect", "-f", "{{index .RepoDigests 0}}", &image],
        &[],
    );
    assert_eq!(pulled, format!("{a}/admin/app@{digest}"));
    assert!(reg.login("alice", "alice-password").status.success());
    let out = reg.docker(&["pull", &image], &[]);
    assert!(
        !out.status.success(),
        "alice pulled a private repository:\n{}",
        text(&out)
    );
    reg.docker_ok(&["pull", &hers], &[]);
    // trust data and signing keys came back: the signed tag verifies, an unsigned one does not
    reg.login_ok("admin", admin_password());
    reg.docker_ok(&["rmi", &signed], &[]);
    reg.docker_ok(&["pull", &signed], &trust);
    let out = reg.docker(&["pull", &image], &trust);
    assert!(
        !out.status.success(),
        "an unsigned tag was pulled under content trust:\n{}",
        text(&out)
    );
    // and the restored cluster signs new content with the restored keys
    reg.push_signed("admin/app:3");

    reg.replica.destroy();
    assert!(store.exists());
}

/// The engine's objects, to show that a refused restore changed nothing.
fn engine_objects() -> Vec<String> {
    let mut all = Vec::new();
    for args in [
        vec!["ps", "-aq", "--no-trunc"],
        vec!["volume", "ls", "-q"],
        vec!["network", "ls", "-q", "--no-trunc"],
    ] {
        let mut v = lines(&docker_ok(&args));
        v.sort();
        all.extend(v);
    }
    all
}

/// One archive entry as the damaging code sees it.
#[derive(Clone)]
struct Entry {
    name: Vec<u8>,
    kind: tar::EntryType,
    link: Option<Vec<u8>>,
    data: Vec<u8>,
}

fn entries_of(bytes: &[u8]) -> Vec<Entry> {
    let mut archive = tar::Archive::new(bytes);
    archive
        .entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut data).unwrap();
            Entry {
                name: e.path_bytes().to_vec(),
                kind: e.header().entry_type(),
                link: e.link_name_bytes().map(|l| l.to_vec()),
                data,
            }
        })
        .collect()
}

/// A tar of `entries`, names written raw (so that `..` and absolute paths can be made).
fn tar_of(entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries {
        let mut h = tar::Header::new_ustar();
        h.as_ustar_mut().unwrap().name[..e.name.len()].copy_from_slice(&e.name);
        h.set_size(e.data.len() as u64);
        h.set_mode(0o600);
        h.set_entry_type(e.kind);
        if let Some(l) = &e.link {
            h.as_ustar_mut().unwrap().linkname[..l.len()].copy_from_slice(l);
        }
        if e.kind == tar::EntryType::Char {
            h.set_device_major(1).unwrap();
            h.set_device_minor(3).unwrap();
        }
        h.set_cksum();
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(&e.data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.resize(out.len() + 1024, 0);
    out
}

/// The entries with a manifest and seal that match them (as a careful forger would make them):
/// the manifest lists the entries that are inside the layout.
fn with_manifest(version: &str, format: u32, body: &[Entry]) -> Vec<Entry> {
    let top = format!("dtr-backup-v{version}/");
    let body: Vec<Entry> = body
        .iter()
        .filter(|e| !e.name.ends_with(b"/manifest.sha256"))
        .cloned()
        .collect();
    let metas = body
        .iter()
        .filter_map(|e| {
            let name = String::from_utf8_lossy(&e.name).to_string();
            let rel = name.strip_prefix(&top)?;
            dtr_bootstrap::backup::archive::in_layout(rel).then(|| {
                serde_json::json!({
                    "path": rel,
                    "size": e.data.len(),
                    "sha256": dtr_bootstrap::backup::archive::sha256_of(&e.data),
                })
            })
        })
        .collect::<Vec<_>>();
    let manifest = serde_json::to_vec(&serde_json::json!({
        "format": format,
        "dtr_version": version,
        "replica_id": "0123456789ab",
        "created_at": "2026-11-23T00:00:00Z",
        "entries": metas,
    }))
    .unwrap();
    let file = |name: String, data: Vec<u8>| Entry {
        name: name.into_bytes(),
        kind: tar::EntryType::Regular,
        link: None,
        data,
    };
    let seal = format!("{}\n", dtr_bootstrap::backup::archive::sha256_of(&manifest)).into_bytes();
    let mut out = vec![file(format!("{top}manifest.json"), manifest)];
    out.extend(body);
    out.push(file(format!("{top}manifest.sha256"), seal));
    out
}

fn renamed(entries: &[Entry], from: &str, to: &str) -> Vec<Entry> {
    entries
        .iter()
        .map(|e| Entry {
            name: String::from_utf8_lossy(&e.name)
                .replace(from, to)
                .into_bytes(),
            ..e.clone()
        })
        .collect()
}

/// The byte offset of an entry's data in the archive.
fn data_offset(bytes: &[u8], suffix: &str) -> usize {
    let mut archive = tar::Archive::new(bytes);
    for e in archive.entries().unwrap() {
        let e = e.unwrap();
        if String::from_utf8_lossy(&e.path_bytes()).ends_with(suffix) {
            return e.raw_file_position() as usize;
        }
    }
    panic!("no entry {suffix}");
}

fn flip(bytes: &[u8], at: usize) -> Vec<u8> {
    let mut b = bytes.to_vec();
    b[at] ^= 0x10;
    b
}

/// What is wrong with it, its bytes, the environment of the restore, and a piece of the
/// message that must name the reason.
type BadArchive = (
    &'static str,
    Vec<u8>,
    Vec<(&'static str, &'static str)>,
    &'static str,
);

/// Crafted bad archives: every one must be refused with exit 7 before the engine is touched.
fn bad_archives(good: &[u8], sealed: &[u8]) -> Vec<BadArchive> {
    use tar::EntryType::{Char, Link, Regular, Symlink};
    let v = dtr_core::version::VERSION;
    let top = format!("dtr-backup-v{v}/");
    let entries = entries_of(good);
    let body: Vec<Entry> = entries[1..].to_vec();
    let plain = |name: &str, kind: tar::EntryType, link: Option<&str>, data: &[u8]| Entry {
        name: name.as_bytes().to_vec(),
        kind,
        link: link.map(|l| l.as_bytes().to_vec()),
        data: data.to_vec(),
    };
    let semver = semver::Version::parse(v).unwrap();
    let other_minor = format!("{}.{}.0", semver.major, semver.minor + 1);
    let other_patch = format!("{}.{}.{}", semver.major, semver.minor, semver.patch + 1);
    let dump = data_offset(good, "db/dtr.dump");
    let sealed_env = vec![("DTR_BACKUP_PASSPHRASE", PASSPHRASE)];
    let mut cases: Vec<BadArchive> = Vec::new();
    let mut case = |what, bytes: Vec<u8>, expect| cases.push((what, bytes, vec![], expect));
    let unreadable = "not a readable tar";
    case("empty", vec![], "it is empty");
    case(
        "cut inside the manifest's header",
        good[..100].to_vec(),
        unreadable,
    );
    case("cut inside the manifest", good[..600].to_vec(), unreadable);
    case(
        "cut inside the database dump",
        good[..dump + 100].to_vec(),
        unreadable,
    );
    let last = data_offset(good, "ca/root/ca-key.pem") - 512;
    case(
        "cut before the last entry",
        good[..last].to_vec(),
        "missing",
    );
    case(
        "bit flipped in the manifest",
        flip(good, 512 + 40),
        "manifest",
    );
    case(
        "bit flipped in a tar header",
        flip(good, dump - 512 + 10),
        unreadable,
    );
    for part in [
        "etcd/keys.json",
        "db/dtr.dump",
        "db/notarysigner.dump",
        "config/cluster.json",
        "ca/root/ca-key.pem",
        "manifest.sha256",
    ] {
        let expect = if part == "manifest.sha256" {
            "the manifest does not match its SHA-256"
        } else {
            "does not match its SHA-256"
        };
        case(
            "bit flipped in an entry",
            flip(good, data_offset(good, part) + 3),
            expect,
        );
    }
    case("no manifest", tar_of(&body), "first entry");
    let mut extra = entries.clone();
    extra.push(plain(&format!("{top}db/extra.dump"), Regular, None, b"x"));
    case(
        "an extra entry",
        tar_of(&extra),
        "not listed in the manifest",
    );
    let mut twice = entries.clone();
    twice.push(body[0].clone());
    case("a duplicate entry", tar_of(&twice), "appears twice");
    let one =
        |name: &str, kind, link| tar_of(&with_manifest(v, 1, &[plain(name, kind, link, b"")]));
    let outside = "outside the backup's layout";
    case(
        "path traversal",
        one(&format!("{top}../../etc/cron.d/x"), Regular, None),
        outside,
    );
    case(
        "absolute path",
        one("/etc/cron.d/x", Regular, None),
        outside,
    );
    let not_a_file = "is not a regular file";
    case(
        "symlink",
        one(&format!("{top}ca/ca.pem"), Symlink, Some("/etc/shadow")),
        not_a_file,
    );
    case(
        "hard link",
        one(&format!("{top}ca/ca.pem"), Link, Some("/etc/shadow")),
        not_a_file,
    );
    case(
        "device",
        one(&format!("{top}db/dtr.dump"), Char, None),
        not_a_file,
    );
    let as_version = |other: &str| {
        tar_of(&with_manifest(
            other,
            1,
            &renamed(&body, &top, &format!("dtr-backup-v{other}/")),
        ))
    };
    case(
        "other minor version",
        as_version(&other_minor),
        "restore it with a",
    );
    case(
        "other patch version without the flag",
        as_version(&other_patch),
        "allow another patch release explicitly",
    );
    case(
        "other format version",
        tar_of(&with_manifest(v, 2, &body)),
        "format 2 is not supported",
    );
    let no_signer: Vec<Entry> = body
        .iter()
        .filter(|e| !e.name.ends_with(b"notarysigner.dump"))
        .cloned()
        .collect();
    case(
        "intact but without the signer's database",
        tar_of(&with_manifest(v, 1, &no_signer)),
        "incomplete",
    );
    case(
        "not a backup at all",
        b"#!/bin/sh\necho hello\n".repeat(100),
        unreadable,
    );
    cases.push((
        "encrypted, wrong passphrase",
        sealed.to_vec(),
        vec![("DTR_BACKUP_PASSPHRASE", "not the passphrase")],
        "does not open this backup",
    ));
    cases.push((
        "encrypted, no passphrase",
        sealed.to_vec(),
        vec![],
        "DTR_BACKUP_PASSPHRASE",
    ));
    cases.push((
        "encrypted, a bit flipped",
        flip(sealed, sealed.len() - 700),
        sealed_env,
        "damaged",
    ));
    cases
}

#[test]
fn a_backup_under_writes_is_consistent_and_bad_archives_change_nothing() {
    let Some(_engine) = engine() else { return };
    let reg = Arc::new(Registry::install());

    // a writer adds a repository every 20 ms; which ones were acknowledged is recorded
    let stop = Arc::new(AtomicBool::new(false));
    let acked: Arc<Mutex<Vec<String>>> = Default::default();
    let writer = {
        let (reg, stop, acked) = (reg.clone(), stop.clone(), acked.clone());
        std::thread::spawn(move || {
            let mut i = 0;
            let mut attempted = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                let name = format!("w{i}");
                attempted.push(name.clone());
                let body = format!(r#"{{"name":"{name}","visibility":"private"}}"#);
                let (code, _) = reg.api(
                    "POST",
                    "/api/v0/repositories/admin",
                    reg.admin(),
                    Some(&body),
                );
                if code == 201 {
                    acked.lock().unwrap().push(name);
                }
                i += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            attempted
        })
    };
    // wait for a few acknowledged writes (not for a time: these machines are noisy)
    let acked_count = |n: usize| {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while acked.lock().unwrap().len() < n {
            assert!(
                std::time::Instant::now() < deadline,
                "the writer got only {:?}",
                acked.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    acked_count(10);
    let acked_before: Vec<String> = acked.lock().unwrap().clone();
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("backup.tar");
    let sealed = dir.path().join("backup.tar.age");
    backup(&reg.replica, &good, &[], &[]);
    backup(
        &reg.replica,
        &sealed,
        &["--encrypt-with-passphrase"],
        &[("DTR_BACKUP_PASSPHRASE", PASSPHRASE)],
    );
    // and a few more after the backups
    let so_far = acked.lock().unwrap().len();
    acked_count(so_far + 5);
    stop.store(true, Ordering::SeqCst);
    let attempted = writer.join().unwrap();

    // bad archives: refused, named, and the engine is as it was (the replica is still running,
    // so a restore that read nothing first would be refused by preflight with another code)
    let good_bytes = std::fs::read(&good).unwrap();
    let sealed_bytes = std::fs::read(&sealed).unwrap();
    let cases = bad_archives(&good_bytes, &sealed_bytes);
    assert!(cases.len() >= 20);
    let objects = engine_objects();
    for (what, bytes, env, expect) in &cases {
        let file = dir.path().join("bad.tar");
        std::fs::File::create(&file)
            .unwrap()
            .write_all(bytes)
            .unwrap();
        let out = restore(&reg.replica, &file, &["--dtr-use-default-storage"], env);
        let log = text(&out);
        assert_eq!(out.status.code(), Some(7), "{what}: {log}");
        assert!(
            log.contains("the backup is refused; nothing was changed") && log.contains(expect),
            "{what}: expected {expect:?} in:\n{log}"
        );
        assert!(
            !log.contains(PASSPHRASE),
            "{what}: the passphrase leaked:\n{log}"
        );
    }
    assert_eq!(
        objects,
        engine_objects(),
        "a refused restore changed the engine"
    );
    // another patch release is accepted with the flag (then refused here only by preflight,
    // because the replica still runs)
    let semver = semver::Version::parse(dtr_core::version::VERSION).unwrap();
    let other_patch = format!("{}.{}.{}", semver.major, semver.minor, semver.patch + 1);
    let entries = entries_of(&good_bytes);
    let top = format!("dtr-backup-v{}/", dtr_core::version::VERSION);
    let patch = tar_of(&with_manifest(
        &other_patch,
        1,
        &renamed(&entries[1..], &top, &format!("dtr-backup-v{other_patch}/")),
    ));
    let file = dir.path().join("patch.tar");
    std::fs::write(&file, patch).unwrap();
    let out = restore(
        &reg.replica,
        &file,
        &["--dtr-use-default-storage", "--allow-other-patch"],
        &[],
    );
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        text(&out).contains("another patch release") && text(&out).contains("existing-install"),
        "{}",
        text(&out)
    );
    assert_eq!(objects, engine_objects());

    // the backup restores to a consistent state: every repository acknowledged before it is
    // there, nothing that was never attempted, and each repository with its audit event
    reg.replica.destroy();
    let out = restore(&reg.replica, &good, &["--dtr-use-default-storage"], &[]);
    assert!(out.status.success(), "restore failed:\n{}", text(&out));
    let repos = get(&reg, "/api/v0/repositories");
    let names: Vec<String> = repos["repositories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_string())
        .collect();
    for n in &acked_before {
        assert!(
            names.contains(n),
            "{n} was acknowledged before the backup but is missing"
        );
    }
    for n in &names {
        assert!(attempted.contains(n), "{n} was never written");
    }
    let orphans = psql(
        &reg.replica.id,
        "SELECT count(*) FROM repositories r FULL JOIN (SELECT object FROM events WHERE action = 'repository.create') e \
         ON e.object = r.namespace || '/' || r.name WHERE r.id IS NULL OR e.object IS NULL",
    );
    assert_eq!(
        orphans, "0",
        "repositories without their event or events without their repository"
    );

    // a dump that would act as the superuser — an event trigger that makes the api's role a
    // superuser at the next DDL — in an archive sealed like a genuine one: restore loads each
    // database as its owner, so the load fails instead
    let hostile = superuser_dump(&reg);
    reg.replica.destroy();
    let db_entry = format!("{top}{}", dtr_bootstrap::backup::db_entry("dtr"));
    let body: Vec<Entry> = entries[1..]
        .iter()
        .cloned()
        .map(|mut e| {
            if e.name == db_entry.as_bytes() {
                e.data = hostile.clone();
            }
            e
        })
        .collect();
    let file = dir.path().join("hostile.tar");
    std::fs::write(
        &file,
        tar_of(&with_manifest(dtr_core::version::VERSION, 1, &body)),
    )
    .unwrap();
    let out = restore(&reg.replica, &file, &["--dtr-use-default-storage"], &[]);
    assert!(
        !out.status.success(),
        "a superuser's dump was restored:\n{}",
        text(&out)
    );
    assert!(
        text(&out).contains("permission denied to create event trigger"),
        "{}",
        text(&out)
    );
    // and the failed restore removed what it had made
    let left = docker_ok(&[
        "ps",
        "-aq",
        "--filter",
        &format!("label=com.docker.dtr.replica={}", reg.replica.id),
    ]);
    assert_eq!(left, "", "the failed restore left containers");
}

/// A custom-format dump, made in the replica's database container as the superuser, of a
/// database holding an event trigger (which only a superuser may create or own).
fn superuser_dump(reg: &Registry) -> Vec<u8> {
    let container = format!("dtr-rethinkdb-{}", reg.replica.id);
    let script = "set -e
        psql -Xq -v ON_ERROR_STOP=1 -c 'CREATE DATABASE hostile'
        psql -Xq -v ON_ERROR_STOP=1 -d hostile <<'SQL'
CREATE FUNCTION promote() RETURNS event_trigger LANGUAGE plpgsql AS 'BEGIN ALTER ROLE dtr SUPERUSER; END';
CREATE EVENT TRIGGER promote ON ddl_command_end EXECUTE FUNCTION promote();
SQL
        pg_dump --format=custom --dbname hostile --file /run/dtr/hostile.dump
        psql -Xq -c 'DROP DATABASE hostile'";
    docker_ok(&["exec", &container, "sh", "-c", script]);
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("hostile.dump");
    docker_ok(&[
        "cp",
        &format!("{container}:/run/dtr/hostile.dump"),
        local.to_str().unwrap(),
    ]);
    std::fs::read(local).unwrap()
}
