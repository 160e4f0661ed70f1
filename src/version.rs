//! The bootstrapper's own version and the image references that belong to it.
//! Every image of a release carries the same tag: the bootstrapper's version.

use crate::components::Component;

/// The version of this bootstrapper, and of every image it installs.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

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
    fn nine_images_all_tagged_with_the_version() {
        let images = all_images();
        assert_eq!(images.len(), 9);
        assert!(images.iter().all(|i| i.ends_with(&format!(":{VERSION}"))));
        assert_eq!(images[0], format!("registry/dtr:{VERSION}"));
    }
}
