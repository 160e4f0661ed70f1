//! Which version moves a cluster may make: the one function behind upgrade's, join's and
//! restore's version checks. The original's rules (semantic versions, no downgrade of any kind):
//!
//! | case | from → to | allowed |
//! |---|---|---|
//! | same version | x.y.z → x.y.z | nothing to do |
//! | patch upgrade, also skipping patches | x.y.z → x.y.z+n | yes |
//! | next minor | x.y.* → x.y+1.* | yes |
//! | skipping a minor | x.y.* → x.y+2.* | no: upgrade to x.y+1 first |
//! | next major, its first minor | x.*.* → x+1.0.* | yes |
//! | next major, a later minor | x.*.* → x+1.1.* | no: upgrade to x+1.0 first |
//! | skipping a major | x.*.* → x+2.*.* | no: upgrade to x+1.0 first |
//! | any downgrade (patch, minor, major) | | no |
//!
//! Pre-releases (`2.9.0-rc.1`) follow semver precedence: `2.9.0-rc.1 → 2.9.0` and
//! `2.9.0-rc.1 → 2.9.0-rc.2` are patch-level upgrades, `2.9.0 → 2.9.0-rc.1` is a downgrade, and
//! a pre-release of the next minor or major (`2.8.3 → 2.9.0-rc.1`) is that minor or major move.
//! Build metadata (`+build.5`) is ignored: two versions that differ only there are the same.

use std::cmp::Ordering;

use semver::Version;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    Patch,
    Minor,
    Major,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The same version: nothing to do.
    Same,
    Allowed(Step),
    /// Why not, and the way to get there instead.
    Refused {
        reason: String,
        next: String,
    },
}

/// The verdict on moving a cluster that runs `from` to `to`.
pub fn decide(from: &Version, to: &Version) -> Verdict {
    let refuse = |reason: String, next: String| Verdict::Refused { reason, next };
    match from.cmp_precedence(to) {
        Ordering::Equal => return Verdict::Same,
        Ordering::Greater => {
            let kind = if to.major < from.major {
                "a major"
            } else if to.minor < from.minor {
                "a minor"
            } else {
                "a patch"
            };
            return refuse(
                format!("{from} → {to} is {kind} downgrade; downgrades are never allowed"),
                format!("keep registry/dtr:{from}, or restore a backup made by {to}"),
            );
        }
        Ordering::Less => {}
    }
    if to.major == from.major {
        if to.minor == from.minor {
            Verdict::Allowed(Step::Patch)
        } else if to.minor == from.minor + 1 {
            Verdict::Allowed(Step::Minor)
        } else {
            refuse(
                format!("{from} → {to} skips a minor version"),
                format!("upgrade to {}.{} first", from.major, from.minor + 1),
            )
        }
    } else if to.major == from.major + 1 {
        if to.minor == 0 {
            Verdict::Allowed(Step::Major)
        } else {
            refuse(
                format!("{from} → {to} goes past the first minor of the next major"),
                format!("upgrade to {}.0 first", to.major),
            )
        }
    } else {
        refuse(
            format!("{from} → {to} skips a major version"),
            format!("upgrade to {}.0 first", from.major + 1),
        )
    }
}

/// Parses both versions, then `decide`s; an unparsable version is a refusal.
pub fn decide_str(from: &str, to: &str) -> Verdict {
    match (Version::parse(from), Version::parse(to)) {
        (Ok(f), Ok(t)) => decide(&f, &t),
        _ => Verdict::Refused {
            reason: format!("{from:?} → {to:?}: not semantic versions"),
            next: "use a released registry/dtr image".into(),
        },
    }
}

/// Whether `a` comes before `b` by semver precedence (an unparsable version sorts first, by
/// its text among its kind).
pub fn older(a: &str, b: &str) -> bool {
    match (Version::parse(a), Version::parse(b)) {
        (Ok(a), Ok(b)) => a.cmp_precedence(&b).is_lt(),
        (Err(_), Ok(_)) => true,
        (Ok(_), Err(_)) => false,
        (Err(_), Err(_)) => a < b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn older_is_precedence() {
        assert!(older("0.1.0", "0.2.0-test.1"));
        assert!(older("0.2.0-test.1", "0.2.0"));
        assert!(!older("0.2.0+b.1", "0.2.0"));
        assert!(older("garbage", "0.1.0"));
    }

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    fn verdict(from: &str, to: &str) -> Verdict {
        decide(&v(from), &v(to))
    }

    fn refused_with(from: &str, to: &str, next: &str) {
        match verdict(from, to) {
            Verdict::Refused { next: n, .. } => assert!(n.contains(next), "{from}→{to}: {n}"),
            other => panic!("{from}→{to}: {other:?}"),
        }
    }

    /// Every row of the original's table, then the edges.
    #[test]
    fn the_rules_table() {
        use Step::*;
        assert_eq!(verdict("2.8.0", "2.8.1"), Verdict::Allowed(Patch)); // patch upgrade
        assert_eq!(verdict("2.8.0", "2.8.2"), Verdict::Allowed(Patch)); // skip patch
        refused_with("2.8.2", "2.8.1", "keep registry/dtr:2.8.2"); // patch downgrade
        assert_eq!(verdict("2.8.4", "2.9.0"), Verdict::Allowed(Minor)); // minor upgrade
        assert_eq!(verdict("2.8.0", "2.9.3"), Verdict::Allowed(Minor));
        refused_with("2.7.5", "2.9.0", "upgrade to 2.8 first"); // skip minor
        refused_with("2.9.0", "2.8.6", "keep registry/dtr:2.9.0"); // minor downgrade
        assert_eq!(verdict("2.9.4", "3.0.0"), Verdict::Allowed(Major)); // major upgrade
        assert_eq!(verdict("2.9.4", "3.0.2"), Verdict::Allowed(Major));
        refused_with("2.9.4", "3.1.0", "upgrade to 3.0 first"); // major skipping minor
        refused_with("2.9.4", "4.0.0", "upgrade to 3.0 first"); // skip major
        refused_with("3.0.0", "2.9.9", "keep registry/dtr:3.0.0"); // major downgrade
                                                                   // same version: nothing to do, build metadata ignored
        assert_eq!(verdict("2.9.4", "2.9.4"), Verdict::Same);
        assert_eq!(verdict("2.9.4+b1", "2.9.4+b2"), Verdict::Same);
        // pre-releases
        assert_eq!(verdict("2.9.0-rc.1", "2.9.0"), Verdict::Allowed(Patch));
        assert_eq!(verdict("2.9.0-rc.1", "2.9.0-rc.2"), Verdict::Allowed(Patch));
        assert_eq!(verdict("2.8.3", "2.9.0-rc.1"), Verdict::Allowed(Minor));
        assert_eq!(verdict("2.9.9", "3.0.0-beta.1"), Verdict::Allowed(Major));
        refused_with("2.9.0", "2.9.0-rc.1", "keep registry/dtr:2.9.0");
        // 0.x versions follow the same arithmetic
        assert_eq!(verdict("0.1.0", "0.2.0"), Verdict::Allowed(Minor));
        refused_with("0.1.0", "0.3.0", "upgrade to 0.2 first");
        // the refusal names the kind of downgrade
        match verdict("3.1.0", "2.9.0") {
            Verdict::Refused { reason, .. } => assert!(reason.contains("a major downgrade")),
            other => panic!("{other:?}"),
        }
        assert!(matches!(decide_str("x", "2.9.0"), Verdict::Refused { .. }));
    }

    fn any_version() -> impl Strategy<Value = Version> {
        (0u64..5, 0u64..5, 0u64..5, proptest::option::of(1u64..3)).prop_map(|(a, b, c, pre)| {
            let mut v = Version::new(a, b, c);
            if let Some(n) = pre {
                v.pre = semver::Prerelease::new(&format!("rc.{n}")).unwrap();
            }
            v
        })
    }

    proptest! {
        /// No downgrade is ever allowed; sameness is exactly equal precedence.
        #[test]
        fn never_a_downgrade(from in any_version(), to in any_version()) {
            let d = decide(&from, &to);
            match from.cmp_precedence(&to) {
                Ordering::Greater => prop_assert!(matches!(d, Verdict::Refused { .. }), "{} → {}", from, to),
                Ordering::Equal => prop_assert_eq!(d, Verdict::Same),
                Ordering::Less => prop_assert_ne!(d, Verdict::Same),
            }
        }

        /// An allowed move changes at most one minor within a major, or goes to the next
        /// major's first minor; a refusal's next step is itself allowed.
        #[test]
        fn allowed_moves_are_one_step(from in any_version(), to in any_version()) {
            match decide(&from, &to) {
                Verdict::Allowed(step) => {
                    let ok = match step {
                        Step::Patch => to.major == from.major && to.minor == from.minor,
                        Step::Minor => to.major == from.major && to.minor == from.minor + 1,
                        Step::Major => to.major == from.major + 1 && to.minor == 0,
                    };
                    prop_assert!(ok, "{} → {} as {:?}", from, to, step);
                }
                Verdict::Refused { next, .. } if from.cmp_precedence(&to) == Ordering::Less => {
                    // "upgrade to M.m first": M.m.0 is reachable from `from` in one move
                    let target = next.trim_start_matches("upgrade to ").trim_end_matches(" first");
                    let stop = Version::parse(&format!("{target}.0")).unwrap();
                    prop_assert!(matches!(decide(&from, &stop), Verdict::Allowed(_)), "{} → {}: {}", from, to, next);
                }
                _ => {}
            }
        }
    }
}
