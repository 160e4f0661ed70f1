//! Namespace (account) and repository names: what the registry's grammar allows, limited to the
//! two levels DTR uses (`<namespace>/<repository>`). Anything else — path traversal, upper case,
//! empty parts — is a 400 before it reaches the database or the registry.

use super::error::{ApiError, ApiResult};
use dtr_core::options::name_component_ok as component_ok;

pub fn check_namespace(name: &str) -> ApiResult<()> {
    if component_ok(name, 64) {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            "INVALID_NAME",
            format!("{name:?} is not a valid account or namespace name (lower-case letters, digits, single . _ - between them, at most 64)"),
        ))
    }
}

pub fn check_repository(name: &str) -> ApiResult<()> {
    if component_ok(name, 255) {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            "INVALID_NAME",
            format!("{name:?} is not a valid repository name (lower-case letters, digits, single . _ - between them)"),
        ))
    }
}

/// Names the components sign their own registry tokens with (`dtr-api`) and any other of the
/// prefix: an account of such a name could pass for a component (its deletes would not be
/// audited), so none can be created.
pub const RESERVED_PREFIX: &str = "dtr-";

/// A name for a new account: a valid namespace outside [`RESERVED_PREFIX`].
pub fn check_new_account(name: &str) -> ApiResult<()> {
    check_namespace(name)?;
    if name.starts_with(RESERVED_PREFIX) {
        return Err(ApiError::bad_request(
            "RESERVED_NAME",
            format!("{name:?}: account names starting with {RESERVED_PREFIX:?} are reserved for DTR's components"),
        ));
    }
    Ok(())
}

/// `namespace/repository` split and checked.
pub fn split_full(full: &str) -> ApiResult<(&str, &str)> {
    let (ns, repo) = full.split_once('/').ok_or_else(|| {
        ApiError::bad_request(
            "INVALID_NAME",
            format!("{full:?}: repositories are named <namespace>/<repository>"),
        )
    })?;
    check_namespace(ns)?;
    check_repository(repo)?;
    Ok((ns, repo))
}

/// A tag: what the registry accepts (`[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`).
pub fn check_tag(tag: &str) -> ApiResult<()> {
    let b = tag.as_bytes();
    let ok = !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || b"_.-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            "INVALID_TAG",
            format!("{tag:?} is not a valid tag"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_registry_grammar_and_refuse_traversal() {
        for ok in ["admin", "a", "my-app", "team.one", "x_y2"] {
            assert!(check_repository(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "..",
            "../etc",
            "a/b",
            "App",
            "-a",
            "a-",
            "a..b",
            "a--b",
            "a b",
            "a%2f..",
            &"x".repeat(256),
        ] {
            assert!(check_repository(bad).is_err(), "{bad:?}");
        }
        assert_eq!(split_full("admin/app").unwrap(), ("admin", "app"));
        for bad in [
            "admin",
            "admin/app/x",
            "/app",
            "admin/",
            "../app",
            "admin/../x",
        ] {
            assert!(split_full(bad).is_err(), "{bad:?}");
        }
        assert!(check_tag("v1.2_rc-3").is_ok());
        for bad in ["", ".x", "-x", "a/b", "a:b", &"t".repeat(129)] {
            assert!(check_tag(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn account_names_of_the_components_prefix_are_refused() {
        for reserved in ["dtr-api", "dtr-x"] {
            let e = check_new_account(reserved).unwrap_err();
            assert_eq!(e.code, "RESERVED_NAME", "{reserved}");
        }
        assert!(check_new_account("dtr").is_ok());
        assert!(check_new_account("mydtr-api").is_ok());
        assert!(check_new_account("Bad").is_err());
    }
}
