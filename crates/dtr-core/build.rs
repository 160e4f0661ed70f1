//! Checks `DTR_TEST_VERSION`, the compile-time version of test builds (src/version.rs): only a
//! semver pre-release whose first identifier is `test` is accepted, so that a test build can
//! never carry a release's version.

fn main() {
    println!("cargo:rerun-if-env-changed=DTR_TEST_VERSION");
    println!("cargo:rerun-if-changed=build.rs");
    let Ok(v) = std::env::var("DTR_TEST_VERSION") else {
        return;
    };
    let pre = v
        .split_once('-')
        .map(|(core, pre)| (core, pre.split_once('+').map_or(pre, |(p, _)| p)));
    let valid_core = |core: &str| {
        let parts: Vec<&str> = core.split('.').collect();
        parts.len() == 3
            && parts
                .iter()
                .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
    };
    match pre {
        Some((core, pre))
            if valid_core(core)
                && (pre == "test" || pre.starts_with("test."))
                && pre
                    .split('.')
                    .all(|id| !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')) => {}
        _ => panic!(
            "DTR_TEST_VERSION={v:?} is not a test version: use MAJOR.MINOR.PATCH-test[.N] (e.g. 0.2.0-test.1)"
        ),
    }
}
