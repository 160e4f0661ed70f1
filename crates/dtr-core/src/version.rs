//! The bootstrapper's own version and the image references that belong to it.
//! Every image of a release carries the same tag: the bootstrapper's version.

use crate::component::Component;

/// The version of this bootstrapper, and of every image it installs: the crate's version, or,
/// in a test build, `DTR_TEST_VERSION` as it was at compile time (see [`TEST_BUILD`]).
pub const VERSION: &str = match option_env!("DTR_TEST_VERSION") {
    Some(v) => v,
    None => env!("CARGO_PKG_VERSION"),
};

/// A build made with `DTR_TEST_VERSION` (`scripts/build-images.sh --test-version`), so that the
/// upgrade tests have a second version to move to. `build.rs` accepts only a pre-release whose
/// first identifier is `test` (`0.2.0-test.1`): by semver precedence it is older than the
/// release of the same number, so no cluster is ever kept on it, and the bootstrapper warns
/// at every start. The variable is read by the compiler, never at run time.
pub const TEST_BUILD: bool = option_env!("DTR_TEST_VERSION").is_some();

/// `major.minor.patch` of [`VERSION`], pre-release and build metadata left out: the releases
/// whose data migrations this version carries (`dtr_server::db`).
pub fn release() -> (u64, u64, u64) {
    let v = semver::Version::parse(VERSION).expect("build.rs checked the version");
    (v.major, v.minor, v.patch)
}

/// Repository prefix of all images (`registry/dtr`, `registry/dtr-api`, ...).
pub const IMAGE_REPOSITORY: &str = "registry/dtr";

/// `registry/dtr:<version>`: the bootstrapper, also used for the short-lived phase-2 container.
pub fn bootstrapper_image() -> String {
    format!("{IMAGE_REPOSITORY}:{VERSION}")
}

/// `registry/dtr-<component>:<version>`.
pub fn component_image(component: Component) -> String {
    format!("{IMAGE_REPOSITORY}-{}:{VERSION}", component.name())
}

/// The nine images of this version, bootstrapper first, then the components in start order.
pub fn all_images() -> Vec<String> {
    std::iter::once(bootstrapper_image())
        .chain(Component::ALL.iter().map(|c| component_image(*c)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_is_semver_and_a_test_build_says_so() {
        let v = semver::Version::parse(VERSION).unwrap();
        assert_eq!(TEST_BUILD, v.pre.as_str().starts_with("test"));
        assert_eq!(release(), (v.major, v.minor, v.patch));
    }

    #[test]
    fn nine_images_all_tagged_with_the_version() {
        let images = all_images();
        assert_eq!(images.len(), 9);
        assert!(images.iter().all(|i| i.ends_with(&format!(":{VERSION}"))));
        assert_eq!(images[0], format!("registry/dtr:{VERSION}"));
    }
}
