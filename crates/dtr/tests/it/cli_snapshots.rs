//! What a person sees from the command line, pinned by snapshots (tests/it/snapshots/): the
//! `--help` of dtr and of every user command, the one error that lists what is missing when no
//! terminal can ask, and the plain log lines written without a terminal. Each snapshot holds
//! the exit code, stdout and stderr of one command (uv's layout); timestamps read
//! `<timestamp>` and this version `<version>`. After a deliberate change:
//! `INSTA_UPDATE=always cargo nextest run -E 'test(cli_snapshots)'`, then read the diff.

use std::process::{Command, Output, Stdio};

use crate::common::dtr_command;
use dtr_core::version::VERSION;

/// `dtr <args>` with `env`, no terminal, help laid out for 100 columns and never coloured,
/// whatever the runner's environment.
fn command(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = dtr_command(args);
    cmd.env("COLUMNS", "100")
        .env_remove("LINES")
        .env_remove("CLICOLOR_FORCE")
        .env_remove("CLICOLOR")
        .envs(env.iter().copied())
        .stdin(Stdio::null());
    cmd
}

/// Exit code, stdout and stderr of one run, redacted.
fn transcript(out: &Output) -> String {
    let code = out
        .status
        .code()
        .map_or_else(|| "killed by a signal".to_string(), |c| c.to_string());
    format!(
        "success: {}\nexit_code: {code}\n----- stdout -----\n{}----- stderr -----\n{}",
        out.status.success(),
        redact(&String::from_utf8_lossy(&out.stdout)),
        redact(&String::from_utf8_lossy(&out.stderr)),
    )
}

/// Timestamps (`2026-11-23T00:00:00Z`, with or without fractions) become `<timestamp>`, this
/// version (not inside a longer number such as the subnet 10.1.0.0/24) `<version>`.
fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while !rest.is_empty() {
        if let Some(len) = timestamp_len(rest) {
            out.push_str("<timestamp>");
            rest = &rest[len..];
        } else if rest.starts_with(VERSION)
            && !out.ends_with(|c: char| c.is_ascii_digit() || c == '.')
            && !continues_number(&rest[VERSION.len()..])
        {
            out.push_str("<version>");
            rest = &rest[VERSION.len()..];
        } else {
            let c = rest.chars().next().unwrap();
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    out
}

/// Whether `after` (the text after a version) goes on with the same number: a digit, or a dot
/// and a digit.
fn continues_number(after: &str) -> bool {
    let mut chars = after.chars();
    match chars.next() {
        Some(c) if c.is_ascii_digit() => true,
        Some('.') => chars.next().is_some_and(|c| c.is_ascii_digit()),
        _ => false,
    }
}

/// The length of the RFC 3339 UTC timestamp `text` starts with, if it does.
fn timestamp_len(text: &str) -> Option<usize> {
    let b = text.as_bytes();
    let shape = b"dddd-dd-ddTdd:dd:dd";
    if b.len() < shape.len()
        || !shape.iter().zip(b).all(|(s, c)| match s {
            b'd' => c.is_ascii_digit(),
            s => s == c,
        })
    {
        return None;
    }
    let mut len = shape.len();
    if b.get(len) == Some(&b'.') {
        len += 1;
        while b.get(len).is_some_and(u8::is_ascii_digit) {
            len += 1;
        }
    }
    (b.get(len) == Some(&b'Z')).then_some(len + 1)
}

/// Pins the transcript of `cmd` as snapshot `name`; the file's header names the command.
fn pin(name: &str, description: &str, cmd: &mut Command) {
    let out = cmd.output().expect("run dtr");
    insta::with_settings!({ description => description, omit_expression => true }, {
        insta::assert_snapshot!(name, transcript(&out));
    });
}

#[test]
fn redaction_keeps_what_only_looks_like_the_version() {
    let line = format!(
        "2026-11-23T00:00:00Z INFO  dtr {VERSION}, backup dtr-backup-v{VERSION}/, \
         subnet 10.{VERSION}.0/24, at 2026-11-23T00:00:00.123456Z."
    );
    assert_eq!(
        redact(&line),
        format!(
            "<timestamp> INFO  dtr <version>, backup dtr-backup-v<version>/, \
             subnet 10.{VERSION}.0/24, at <timestamp>."
        )
    );
}

#[test]
fn help_and_version_of_dtr_and_help_of_every_user_command() {
    pin("help", "dtr --help", &mut command(&["--help"], &[]));
    pin(
        "version",
        "dtr --version",
        &mut command(&["--version"], &[]),
    );
    for sub in [
        "install",
        "join",
        "reconfigure",
        "upgrade",
        "backup",
        "backup verify",
        "restore",
        "destroy",
        "remove",
        "emergency-repair",
        "images",
        "images save",
        "images load",
        "status",
    ] {
        let mut args: Vec<&str> = sub.split(' ').collect();
        args.push("--help");
        pin(
            &format!("help_{}", sub.replace([' ', '-'], "_")),
            &format!("dtr {sub} --help"),
            &mut command(&args, &[]),
        );
    }
}

#[test]
fn missing_values_without_a_terminal_are_listed_in_one_error() {
    pin(
        "missing_install_mke_credentials",
        "dtr install --ucp-url https://ucp.example < /dev/null",
        &mut command(&["install", "--ucp-url", "https://ucp.example"], &[]),
    );
    pin(
        "missing_install_admin_password",
        "dtr install < /dev/null",
        &mut command(&["install"], &[]),
    );
    pin(
        "missing_destroy_replica_id",
        "dtr destroy < /dev/null",
        &mut command(&["destroy"], &[]),
    );
}

#[test]
fn plain_log_lines_without_a_terminal() {
    // the first step's line, then the error with what to do next
    pin(
        "log_install_engine_unreachable",
        "DOCKER_HOST=unix:///nonexistent/docker.sock dtr install --replica-https-port 28443 < /dev/null",
        &mut command(
            &["install", "--replica-https-port", "28443"],
            &[
                ("DOCKER_HOST", "unix:///nonexistent/docker.sock"),
                ("DTR_ADMIN_PASSWORD", &crate::common::generated_secret()),
            ],
        ),
    );

    // what backup verify says of a sound archive and of one with a flipped bit
    use dtr_bootstrap::backup::archive;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("dump");
    std::fs::write(&data, b"metadata".repeat(1000)).unwrap();
    let meta = archive::describe_file("db/dtr.dump", &data).unwrap();
    let m = archive::manifest(
        VERSION,
        "0123456789ab",
        "2026-11-23T00:00:00Z".into(),
        vec![meta],
    );
    let mut bytes = archive::write(Vec::new(), &m, &[("db/dtr.dump".into(), data)]).unwrap();
    let file = dir.path().join("backup.tar");
    std::fs::write(&file, &bytes).unwrap();
    pin(
        "log_backup_verify_sound",
        "dtr backup verify < backup.tar",
        command(&["backup", "verify"], &[]).stdin(std::fs::File::open(&file).unwrap()),
    );
    let inside = bytes
        .windows(16)
        .position(|w| w == b"metadatametadata")
        .unwrap();
    bytes[inside + 100] ^= 1;
    std::fs::write(&file, &bytes).unwrap();
    pin(
        "log_backup_verify_damaged",
        "dtr backup verify < backup.tar (one bit flipped in db/dtr.dump)",
        command(&["backup", "verify"], &[]).stdin(std::fs::File::open(&file).unwrap()),
    );
}
