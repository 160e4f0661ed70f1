//! The command line without an engine: the subcommands, validation, env var aliases,
//! "not available yet" answers and exit codes (docs/cli.md).

use crate::common::{dtr, dtr_command, text, COMPONENTS};

#[test]
fn help_lists_the_ten_subcommands_of_the_original() {
    let out = dtr(&["--help"], &[]);
    assert!(out.status.success());
    let help = text(&out);
    for sub in [
        "install",
        "join",
        "reconfigure",
        "upgrade",
        "backup",
        "restore",
        "destroy",
        "remove",
        "emergency-repair",
        "images",
    ] {
        assert!(help.contains(sub), "{sub} missing from --help:\n{help}");
    }
    for internal in ["jobrunner", "phase2", "health"] {
        assert!(
            !help.lines().any(|l| l.trim_start().starts_with(internal)),
            "{internal} is internal:\n{help}"
        );
    }
}

#[test]
fn reconfigure_checks_its_flags_before_touching_the_engine() {
    // nothing to change
    let out = dtr(
        &["reconfigure", "--existing-replica-id", "0123456789ab"],
        &[],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("at least one setting"),
        "{}",
        text(&out)
    );
    // a feature of a later version, by flag and by env var
    let out = dtr(&["reconfigure", "--enable-pprof"], &[]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    assert!(text(&out).contains("--enable-pprof"), "{}", text(&out));
    // NFS is a real storage now: by env var too, it is a change that needs an engine
    let out = dtr(
        &["reconfigure", "--existing-replica-id", "0123456789ab"],
        &[
            ("NFS_STORAGE_URL", "nfs://nas/export"),
            ("DOCKER_HOST", "unix:///nonexistent/docker.sock"),
        ],
    );
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    // a certificate without its key, a bad level, a bad port
    let out = dtr(&["reconfigure", "--dtr-cert", "/nonexistent.pem"], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("--dtr-key"), "{}", text(&out));
    let out = dtr(&["reconfigure", "--log-level", "loud"], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let out = dtr(&["reconfigure", "--replica-https-port", "0"], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
}

#[test]
fn membership_commands_check_their_flags_before_touching_the_engine() {
    // no terminal: the replicas to remove must be given
    let out = dtr(&["remove"], &[]);
    assert_eq!(out.status.code(), Some(5), "{}", text(&out));
    assert!(text(&out).contains("--replica-ids"), "{}", text(&out));
    // every id of the list is checked, in both spellings
    let out = dtr(&["remove", "--replica-ids", "0123456789ab,XYZ"], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("XYZ"), "{}", text(&out));
    let out = dtr(&["remove", "--replica-id", "nothex"], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let out = dtr(&["join", "--replica-id", "ABC"], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let out = dtr(&["join", "--replica-https-port", "0"], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let out = dtr(
        &["emergency-repair", "--overlay-subnet", "10.1.0.0/99"],
        &[],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
}

#[test]
fn images_lists_the_nine_images_of_this_version() {
    let out = dtr(&["images"], &[]);
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let images: Vec<&str> = stdout.lines().collect();
    assert_eq!(images.len(), 9, "{stdout}");
    let version = dtr_core::version::VERSION;
    assert!(images.contains(&format!("registry/dtr:{version}").as_str()));
    for c in COMPONENTS {
        assert!(
            images.contains(&format!("registry/dtr-{c}:{version}").as_str()),
            "{c}: {stdout}"
        );
    }
}

#[test]
fn a_bad_replica_id_is_a_usage_error_naming_the_value() {
    let out = dtr(&["install", "--replica-id", "ABC"], &[]);
    let log = text(&out);
    assert_eq!(out.status.code(), Some(2), "{log}");
    assert!(log.contains("ABC") && log.contains("12"), "{log}");
}

#[test]
fn msr_spellings_of_env_vars_are_accepted() {
    // MSR_INSTALL_REPLICA_ID fills DTR_INSTALL_REPLICA_ID: its bad value is reported as such
    let out = dtr(&["install"], &[("MSR_INSTALL_REPLICA_ID", "not-hex-00")]);
    let log = text(&out);
    assert_eq!(out.status.code(), Some(2), "{log}");
    assert!(log.contains("not-hex-00"), "{log}");
}

#[test]
fn without_a_terminal_one_error_lists_every_missing_value() {
    // an MKE target needs username and password (install's administrator is then MKE's)
    let out = dtr(&["install", "--ucp-url", "https://ucp.example"], &[]);
    let log = text(&out);
    assert_eq!(out.status.code(), Some(5), "{log}");
    assert!(!log.contains("--admin-password"), "{log}");
    for (flag, env) in [
        ("--ucp-username", "UCP_USERNAME"),
        ("--ucp-password", "UCP_PASSWORD"),
    ] {
        assert!(
            log.contains(&format!("{flag} (or environment variable {env})")),
            "{flag} missing from:\n{log}"
        );
    }
    assert!(!log.contains("--ucp-url (or"), "the URL was given:\n{log}");
    assert_eq!(log.matches("missing required values").count(), 1, "{log}");
    // MKE chosen through an env var alone
    let out = dtr(&["destroy"], &[("UCP_USERNAME", "admin")]);
    let log = text(&out);
    assert_eq!(out.status.code(), Some(5), "{log}");
    for flag in ["--ucp-url", "--ucp-password", "--replica-id"] {
        assert!(log.contains(flag), "{flag} missing from:\n{log}");
    }
    // a bad MKE URL is named
    let out = dtr(
        &[
            "destroy",
            "--replica-id",
            "0123456789ab",
            "--ucp-url",
            "http://ucp.example",
        ],
        &[("UCP_USERNAME", "admin"), ("UCP_PASSWORD", "pw")],
    );
    let log = text(&out);
    assert_eq!(out.status.code(), Some(2), "{log}");
    assert!(log.contains("--ucp-url") && log.contains("https"), "{log}");
}

#[test]
fn flags_of_later_issues_are_refused_clearly() {
    let out = dtr(&["install", "--enable-pprof"], &[]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    assert!(text(&out).contains("--enable-pprof"), "{}", text(&out));
}

#[test]
fn storage_flags_are_checked_before_the_engine_is_touched() {
    for (args, flag, reason) in [
        (
            vec!["install", "--nfs-storage-url", "http://nas/x"],
            "--nfs-storage-url",
            "nfs://",
        ),
        (
            vec!["install", "--nfs-storage-url", "nfs://nas"],
            "--nfs-storage-url",
            "no exported path",
        ),
        (
            vec!["install", "--nfs-options", "rw"],
            "--nfs-options",
            "goes with --nfs-storage-url",
        ),
        (
            vec![
                "install",
                "--nfs-storage-url",
                "nfs://nas/x",
                "--dtr-storage-volume",
                "v",
            ],
            "--nfs-storage-url",
            "choose one image storage",
        ),
        (
            vec!["install", "--custom-ca-cert-bundle", "not a certificate"],
            "--custom-ca-cert-bundle",
            "neither PEM content nor a readable file",
        ),
        (
            vec!["reconfigure", "--async-nfs"],
            "--async-nfs",
            "give --nfs-storage-url with it",
        ),
        (
            vec!["join", "--nfs-options", "rw"],
            "--nfs-options",
            "goes with --nfs-storage-url",
        ),
        (
            vec!["remove", "--replica-ids", "0123456789ab,nothex"],
            "--replica-ids",
            "12 lowercase",
        ),
        (
            vec!["join", "--existing-replica-id", "xyz"],
            "--existing-replica-id",
            "12 lowercase",
        ),
    ] {
        let out = dtr(&args, &[("DTR_ADMIN_PASSWORD", "a-long-password")]);
        let log = text(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {log}");
        assert!(
            log.contains(&format!("for {flag}:")) && log.contains(reason),
            "{args:?}: {log}"
        );
    }
}

#[test]
fn destroy_without_a_terminal_needs_the_replica_id() {
    let out = dtr(&["destroy"], &[]);
    let log = text(&out);
    assert_eq!(out.status.code(), Some(5), "{log}");
    assert!(log.contains("--replica-id"), "{log}");
}

#[test]
fn an_unreachable_engine_is_reported_with_the_address() {
    let out = dtr(
        &["install", "--replica-https-port", "28443"],
        &[
            ("DOCKER_HOST", "unix:///nonexistent/docker.sock"),
            ("DTR_ADMIN_PASSWORD", "a-long-password"),
        ],
    );
    let log = text(&out);
    assert_eq!(out.status.code(), Some(3), "{log}");
    assert!(log.contains("/nonexistent/docker.sock"), "{log}");
}

#[test]
fn a_user_key_that_does_not_match_the_certificate_is_refused() {
    let ca = dtr_core::pki::generate_ca("ca").unwrap();
    let a = dtr_core::pki::issue(
        &ca.cert_pem,
        &ca.key_pem,
        "a",
        &["a.example".into()],
        dtr_core::pki::Usage::Server,
    )
    .unwrap();
    let b = dtr_core::pki::issue(
        &ca.cert_pem,
        &ca.key_pem,
        "b",
        &["b.example".into()],
        dtr_core::pki::Usage::Server,
    )
    .unwrap();
    let out = dtr(
        &[
            "install",
            "--dtr-cert",
            &a.cert_pem,
            "--dtr-key",
            b.key_pem.expose(),
        ],
        &[],
    );
    let log = text(&out);
    assert_eq!(out.status.code(), Some(2), "{log}");
    assert!(log.contains("does not match"), "{log}");
    assert!(
        !log.contains("PRIVATE KEY"),
        "the key is never printed: {log}"
    );
}

#[test]
fn a_mangled_inline_key_is_never_echoed() {
    // a key pasted without its BEGIN line reads as a file path that does not exist
    let ca = dtr_core::pki::generate_ca("ca").unwrap();
    let out = dtr(
        &[
            "install",
            "--dtr-cert",
            &ca.cert_pem,
            "--dtr-key",
            "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC",
        ],
        &[],
    );
    let log = text(&out);
    assert_eq!(out.status.code(), Some(2), "{log}");
    assert!(
        log.contains("--dtr-key") && !log.contains("MIIEvQIBADANBgkq"),
        "{log}"
    );
}

#[test]
fn install_without_a_terminal_needs_the_admin_password() {
    let out = dtr(&["install"], &[]);
    let log = text(&out);
    assert_eq!(out.status.code(), Some(5), "{log}");
    assert!(
        log.contains("--admin-password") && log.contains("DTR_ADMIN_PASSWORD"),
        "{log}"
    );
    let out = dtr(&["install", "--admin-password", "short"], &[]);
    let log = text(&out);
    assert_eq!(out.status.code(), Some(2), "{log}");
    assert!(
        log.contains("8 characters") && !log.contains("short\""),
        "{log}"
    );
}

#[test]
fn backup_verify_checks_an_archive_from_stdin() {
    use dtr_bootstrap::backup::archive;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("dump");
    std::fs::write(&data, b"metadata".repeat(1000)).unwrap();
    let meta = archive::describe_file("db/dtr.dump", &data).unwrap();
    let m = archive::manifest(
        "0.1.0",
        "0123456789ab",
        "2026-11-23T00:00:00Z".into(),
        vec![meta],
    );
    let mut bytes = archive::write(Vec::new(), &m, &[("db/dtr.dump".into(), data)]).unwrap();
    let run = |bytes: &[u8]| {
        let file = dir.path().join("backup.tar");
        std::fs::write(&file, bytes).unwrap();
        dtr_command(&["backup", "verify"])
            .stdin(std::fs::File::open(&file).unwrap())
            .output()
            .unwrap()
    };
    let out = run(&bytes);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("every SHA-256 matches"),
        "{}",
        text(&out)
    );
    let inside = bytes
        .windows(16)
        .position(|w| w == b"metadatametadata")
        .unwrap();
    bytes[inside + 100] ^= 1;
    let out = run(&bytes);
    assert_eq!(out.status.code(), Some(7), "{}", text(&out));
    assert!(
        text(&out).contains("refused") && text(&out).contains("db/dtr.dump"),
        "{}",
        text(&out)
    );
}

#[test]
fn restore_takes_at_most_one_storage_choice() {
    for (flags, flag) in [
        (
            vec![
                "restore",
                "--dtr-use-default-storage",
                "--dtr-storage-volume",
                "vol",
            ],
            "--dtr-use-default-storage",
        ),
        (
            vec![
                "restore",
                "--dtr-storage-volume",
                "vol",
                "--nfs-storage-url",
                "nfs://h/e",
            ],
            "--nfs-storage-url",
        ),
    ] {
        let out = dtr(&flags, &[]);
        assert_eq!(out.status.code(), Some(2), "{flags:?}: {}", text(&out));
        assert!(
            text(&out).contains(&format!("for {flag}:")),
            "{}",
            text(&out)
        );
    }
    // none, or --dtr-use-default-storage: the storage the backup recorded; NFS is a choice
    // like the others (each needs the backup on stdin, which a terminal is not: exit 7 for an
    // empty stdin that is no archive)
    for flags in [
        vec!["restore"],
        vec!["restore", "--dtr-use-default-storage"],
        vec!["restore", "--nfs-storage-url", "nfs://h/e"],
    ] {
        let out = dtr(&flags, &[]);
        assert_eq!(out.status.code(), Some(7), "{flags:?}: {}", text(&out));
    }
}

#[test]
fn completions_and_the_man_page_come_from_the_parser() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = dtr(&["completion", shell], &[]);
        let script = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(out.status.success(), "{shell}: {}", text(&out));
        for word in [
            "install",
            "emergency-repair",
            "ucp-url",
            "replica-https-port",
        ] {
            assert!(script.contains(word), "{shell} completion lacks {word}");
        }
        assert!(
            !script.contains("jobrunner"),
            "{shell}: internal command listed"
        );
    }
    let secret = crate::common::generated_secret();
    let out = dtr(&["man"], &[("UCP_PASSWORD", &secret)]);
    let page = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        page.starts_with(".ie") || page.contains(".TH dtr"),
        "not roff"
    );
    for section in [
        "DTR INSTALL",
        "DTR BACKUP",
        "DTR IMAGES",
        "DTR EMERGENCY-REPAIR",
    ] {
        assert!(
            page.contains(section),
            "{section} missing from the man page"
        );
    }
    assert!(page.contains("ucp\\-password"), "flags are listed");
    assert!(!page.contains(&secret), "an env value leaked");
    assert!(!page.contains("DTR PHASE2"), "internal command listed");
}

#[test]
fn only_documented_preflight_checks_can_be_ignored() {
    let out = dtr(
        &[
            "install",
            "--ignore-preflight-errors",
            "ports,existing-install",
        ],
        &[("DTR_ADMIN_PASSWORD", &crate::common::generated_secret())],
    );
    let log = text(&out);
    assert_eq!(out.status.code(), Some(2), "{log}");
    assert!(
        log.contains("--ignore-preflight-errors")
            && log.contains("existing-install check cannot be ignored"),
        "{log}"
    );
}
