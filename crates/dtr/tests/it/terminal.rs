//! The bootstrapper at a real terminal (a pseudo-terminal, through rexpect): prompts appear in
//! the original's order and shape, the password is not echoed, the answers are used. No engine
//! is needed: the MKE URL answered points at a closed port, and the error names it.

use crate::common::{dtr, dtr_command, generated_secret, text};

/// `dtr <args>` in a pseudo-terminal, without the variables that would answer the prompts.
fn spawn(args: &[&str]) -> rexpect::session::PtySession {
    let mut cmd = dtr_command(args);
    cmd.env_remove("DOCKER_HOST")
        .env("NO_COLOR", "1")
        .env("TERM", "xterm");
    rexpect::session::spawn_command(cmd, Some(20_000)).expect("spawn dtr in a pty")
}

/// An MKE URL on a port nothing listens on (bound, then released).
fn closed_url() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("https://127.0.0.1:{}", l.local_addr().unwrap().port())
}

/// A destroy that needs nothing from the engine before MKE is reached.
const DESTROY: [&str; 3] = ["destroy", "--replica-id", "0123456789ab"];

#[test]
fn mke_values_are_prompted_in_order_and_the_password_is_hidden() {
    let secret = generated_secret();
    let url = closed_url();
    let mut p = spawn(&[&DESTROY[..], &["--ucp-insecure-tls"]].concat());
    p.exp_string("ucp-url (The UCP URL including domain and port): ")
        .expect("the URL is asked first");
    p.send_line(&url).unwrap();
    p.exp_string("ucp-username (The UCP administrator username): ")
        .expect("then the username");
    p.send_line("admin").unwrap();
    p.exp_string("ucp-password: ").expect("then the password");
    p.send_line(&secret).unwrap();
    // the answers are used: the error names the URL typed in; the password is not on screen
    let rest = p.exp_eof().expect("dtr ends");
    assert!(
        rest.contains(&format!("MKE/UCP at {url}")) && rest.contains("not reachable"),
        "{rest}"
    );
    assert!(!rest.contains(&secret), "the password was echoed:\n{rest}");
    assert!(
        rest.contains("--ucp-insecure-tls"),
        "the warning is shown:\n{rest}"
    );
}

#[test]
fn a_given_value_is_not_asked_for() {
    let secret = generated_secret();
    let url = closed_url();
    let given = [
        "--ucp-url",
        &url,
        "--ucp-username",
        "admin",
        "--ucp-insecure-tls",
    ];
    let mut p = spawn(&[&DESTROY[..], &given].concat());
    // only the password is asked
    let before = p
        .exp_string("ucp-password: ")
        .expect("the password is asked");
    assert!(!before.contains("ucp-url (The"), "{before}");
    assert!(!before.contains("ucp-username (The"), "{before}");
    p.send_line(&secret).unwrap();
    let rest = p.exp_eof().expect("dtr ends");
    assert!(rest.contains("not reachable"), "{rest}");
    assert!(!rest.contains(&secret), "the password was echoed:\n{rest}");
}

#[test]
fn the_same_command_without_a_terminal_lists_what_is_missing() {
    let out = dtr(&["destroy", "--ucp-insecure-tls"], &[]);
    let log = text(&out);
    assert_eq!(out.status.code(), Some(5), "{log}");
    for line in [
        "--ucp-url (or environment variable UCP_URL)",
        "--ucp-username (or environment variable UCP_USERNAME)",
        "--ucp-password (or environment variable UCP_PASSWORD)",
        "--replica-id (or environment variable DTR_DESTROY_REPLICA_ID)",
    ] {
        assert!(log.contains(line), "{line} missing from:\n{log}");
    }
    // no prompt, no colour codes
    assert!(!log.contains("ucp-url (The"), "{log}");
    assert!(!log.contains('\u{1b}'), "{log}");
}
