use super::*;

const V: &str = "0.1.0";

struct Built {
    bytes: Vec<u8>,
    files: Vec<(String, Vec<u8>)>,
    manifest: Manifest,
}

/// A valid archive of three entries.
fn build() -> Built {
    let dir = tempfile::tempdir().unwrap();
    let files: Vec<(String, Vec<u8>)> = vec![
        (
            "etcd/snapshot.db".into(),
            b"etcd snapshot bytes".repeat(100),
        ),
        (
            "db/dtr.dump".into(),
            (0..5000u32).flat_map(|i| i.to_le_bytes()).collect(),
        ),
        (
            "ca/root/ca-key.pem".into(),
            b"-----BEGIN PRIVATE KEY-----\n".to_vec(),
        ),
    ];
    let mut paths = Vec::new();
    let mut metas = Vec::new();
    for (i, (rel, data)) in files.iter().enumerate() {
        let p = dir.path().join(format!("f{i}"));
        std::fs::write(&p, data).unwrap();
        metas.push(describe_file(rel, &p).unwrap());
        paths.push((rel.clone(), p));
    }
    let m = manifest(V, "0123456789ab", "2026-11-23T00:00:00Z".into(), metas);
    Built {
        bytes: write(Vec::new(), &m, &paths).unwrap(),
        files,
        manifest: m,
    }
}

fn check(bytes: &[u8]) -> Result<Manifest, ArchiveError> {
    read(bytes, |_, _| Ok(()))
}

/// Appends an entry with a raw name and type, bypassing the tar crate's path checks.
fn raw_entry(
    b: &mut tar::Builder<Vec<u8>>,
    name: &str,
    kind: tar::EntryType,
    data: &[u8],
    link: Option<&str>,
) {
    let mut h = tar::Header::new_old();
    {
        let old = h.as_old_mut();
        old.name[..name.len()].copy_from_slice(name.as_bytes());
        if let Some(l) = link {
            old.linkname[..l.len()].copy_from_slice(l.as_bytes());
        }
    }
    h.set_entry_type(kind);
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    b.append(&h, data).unwrap();
}

/// The valid archive's entries again, plus `extra` appended by the test.
fn with_extra(extra: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> Vec<u8> {
    let good = build();
    let mut out = tar::Builder::new(Vec::new());
    let mut a = tar::Archive::new(&good.bytes[..]);
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        let h = e.header().clone();
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        out.append(&h, &data[..]).unwrap();
    }
    extra(&mut out);
    out.into_inner().unwrap()
}

#[test]
fn a_valid_archive_reads_back_with_every_byte() {
    let good = build();
    let mut got: std::collections::BTreeMap<String, Vec<u8>> = Default::default();
    let m = read(&good.bytes[..], |rel, b| {
        got.entry(rel.into()).or_default().extend_from_slice(b);
        Ok(())
    })
    .unwrap();
    assert_eq!(m.entries.len(), 3);
    assert_eq!(m.replica_id, "0123456789ab");
    for (rel, data) in &good.files {
        assert_eq!(got.get(rel), Some(data), "{rel}");
    }
    // the manifest is first and names the layout
    let mut a = tar::Archive::new(&good.bytes[..]);
    let first = a.entries().unwrap().next().unwrap().unwrap();
    assert_eq!(
        first.path().unwrap().to_str(),
        Some("dtr-backup-v0.1.0/manifest.json")
    );
}

/// Offsets of each entry's data in the archive (header at offset - 512).
fn data_offsets(bytes: &[u8]) -> Vec<(String, u64)> {
    let mut a = tar::Archive::new(bytes);
    a.entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.path().unwrap().display().to_string(),
                e.raw_file_position(),
            )
        })
        .collect()
}

#[test]
fn a_flipped_bit_in_any_entry_is_refused() {
    let good = build();
    for (name, offset) in data_offsets(&good.bytes) {
        let mut bad = good.bytes.clone();
        bad[offset as usize + 3] ^= 0x10;
        let err = check(&bad).unwrap_err();
        if name.ends_with("manifest.json") || name.ends_with("manifest.sha256") {
            // invalid JSON, or valid JSON whose bytes no longer match the seal
            assert!(
                matches!(
                    err,
                    ArchiveError::BadManifest(_) | ArchiveError::ManifestChecksum
                ),
                "{name}: {err:?}"
            );
        } else {
            assert!(
                matches!(err, ArchiveError::Checksum { .. }),
                "{name}: {err:?}"
            );
        }
        // a flipped bit in the header: tar's own checksum catches it
        let mut bad = good.bytes.clone();
        bad[offset as usize - 512 + 100] ^= 0x01;
        assert!(check(&bad).is_err(), "header of {name}");
    }
}

#[test]
fn a_truncated_archive_is_refused_wherever_it_stops() {
    let good = build();
    let offsets = data_offsets(&good.bytes);
    let mut cuts = vec![0, 100, 511, 512, 700];
    for (_, o) in &offsets {
        cuts.push(*o as usize - 1);
        cuts.push(*o as usize + 10);
    }
    // inside the last entry's data (a cut in the zero blocks after it loses nothing: every
    // entry has been checked by then)
    let last = offsets.last().unwrap().1 as usize;
    cuts.push(last + 64); // inside the seal
                          // the whole last listed entry, but not the seal
    cuts.push(last - 512);
    for cut in cuts {
        assert!(
            check(&good.bytes[..cut]).is_err(),
            "cut at {cut} of {}",
            good.bytes.len()
        );
    }
}

#[test]
fn layout_violations_are_refused() {
    use tar::EntryType::*;
    let top = "dtr-backup-v0.1.0";
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "extra entry",
            with_extra(|b| raw_entry(b, &format!("{top}/db/extra.dump"), Regular, b"x", None)),
        ),
        (
            "traversal",
            with_extra(|b| raw_entry(b, &format!("{top}/../../etc/passwd"), Regular, b"x", None)),
        ),
        (
            "absolute",
            with_extra(|b| raw_entry(b, "/etc/passwd", Regular, b"x", None)),
        ),
        (
            "other top dir",
            with_extra(|b| raw_entry(b, "elsewhere/db/dtr.dump", Regular, b"x", None)),
        ),
        (
            "symlink",
            with_extra(|b| {
                raw_entry(
                    b,
                    &format!("{top}/ca/link"),
                    Symlink,
                    b"",
                    Some("/etc/shadow"),
                )
            }),
        ),
        (
            "hard link",
            with_extra(|b| raw_entry(b, &format!("{top}/ca/hard"), Link, b"", Some("/etc/shadow"))),
        ),
        (
            "device",
            with_extra(|b| raw_entry(b, &format!("{top}/ca/dev"), Char, b"", None)),
        ),
        (
            "directory",
            with_extra(|b| raw_entry(b, &format!("{top}/ca/dir/"), Directory, b"", None)),
        ),
        (
            "fifo",
            with_extra(|b| raw_entry(b, &format!("{top}/ca/fifo"), Fifo, b"", None)),
        ),
        ("duplicate", {
            let good = build();
            with_extra(|b| {
                raw_entry(
                    b,
                    &format!("{top}/etcd/snapshot.db"),
                    Regular,
                    &good.files[0].1,
                    None,
                )
            })
        }),
    ];
    for (what, bytes) in cases {
        let err = check(&bytes).unwrap_err();
        let ok = match what {
            "extra entry" => matches!(err, ArchiveError::Unlisted { .. }),
            "duplicate" => matches!(err, ArchiveError::Duplicate { .. }),
            "symlink" | "hard link" | "device" | "directory" | "fifo" => {
                matches!(err, ArchiveError::NotAFile { .. })
            }
            _ => matches!(err, ArchiveError::OutsideLayout { .. }),
        };
        assert!(ok, "{what}: {err:?}");
    }
}

/// An archive of only `json` as its manifest, sealed with the manifest's SHA-256.
fn archive_with_manifest(json: &[u8], top: &str) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    raw_entry(
        &mut b,
        &format!("{top}/manifest.json"),
        tar::EntryType::Regular,
        json,
        None,
    );
    raw_entry(
        &mut b,
        &format!("{top}/manifest.sha256"),
        tar::EntryType::Regular,
        format!("{}\n", sha256_of(json)).as_bytes(),
        None,
    );
    b.into_inner().unwrap()
}

#[test]
fn manifest_problems_are_refused() {
    let top = "dtr-backup-v0.1.0";
    let good = serde_json::json!({"format": 1, "dtr_version": "0.1.0", "replica_id": "0123456789ab",
        "created_at": "x", "entries": []});
    assert!(check(&archive_with_manifest(good.to_string().as_bytes(), top)).is_ok());
    let mut other_format = good.clone();
    other_format["format"] = 2.into();
    assert_eq!(
        check(&archive_with_manifest(
            other_format.to_string().as_bytes(),
            top
        ))
        .unwrap_err(),
        ArchiveError::Format { found: 2 }
    );
    let mut unknown = good.clone();
    unknown["surprise"] = true.into();
    let mut outside = good.clone();
    outside["entries"] = serde_json::json!([{"path": "../x", "size": 1, "sha256": "0".repeat(64)}]);
    let mut short_hash = good.clone();
    short_hash["entries"] = serde_json::json!([{"path": "db/a", "size": 1, "sha256": "abc"}]);
    for bad in [
        b"not json".to_vec(),
        unknown.to_string().into_bytes(),
        outside.to_string().into_bytes(),
        short_hash.to_string().into_bytes(),
    ] {
        assert!(matches!(
            check(&archive_with_manifest(&bad, top)),
            Err(ArchiveError::BadManifest(_))
        ));
    }
    // the top directory must match the version inside
    assert!(check(&archive_with_manifest(
        good.to_string().as_bytes(),
        "dtr-backup-v0.2.0"
    ))
    .is_err());
    // no manifest first
    let mut b = tar::Builder::new(Vec::new());
    raw_entry(
        &mut b,
        &format!("{top}/db/dtr.dump"),
        tar::EntryType::Regular,
        b"x",
        None,
    );
    assert!(matches!(
        check(&b.into_inner().unwrap()),
        Err(ArchiveError::NoManifestFirst { .. })
    ));
    assert!(check(&[]).is_err());
    // a listed entry that never comes
    let mut listed = good.clone();
    listed["entries"] =
        serde_json::json!([{"path": "db/dtr.dump", "size": 1, "sha256": sha256_of(b"x")}]);
    assert_eq!(
        check(&archive_with_manifest(listed.to_string().as_bytes(), top)).unwrap_err(),
        ArchiveError::Missing(vec!["db/dtr.dump".into()])
    );
}

#[test]
fn the_version_rule_of_restore() {
    assert_eq!(check_version("2.8.3", "2.8.3", false), Ok(None));
    assert!(check_version("2.8.1", "2.8.3", false).is_err());
    assert!(check_version("2.8.1", "2.8.3", true).unwrap().is_some());
    assert!(check_version("2.8.5", "2.8.3", true).unwrap().is_some());
    let e = check_version("2.7.9", "2.8.0", true).unwrap_err();
    assert!(e.contains("2.7"), "{e}");
    assert!(check_version("3.8.0", "2.8.0", true).is_err());
    assert!(check_version("garbage", "2.8.0", true).is_err());
}

#[test]
fn layout_paths() {
    for ok in [
        "etcd/snapshot.db",
        "db/dtr.dump",
        "ca/ca.pem",
        "ca/root/ca-key.pem",
        "ca/api/token-key.pem",
    ] {
        assert!(in_layout(ok), "{ok}");
    }
    for bad in [
        "",
        "etcd",
        "etcd/",
        "db/a/b",
        "ca/../x",
        "ca/./x",
        "x/y",
        "/etcd/a",
        "ca//x",
        "db/a b",
        "ca/a/b/c/d",
    ] {
        assert!(!in_layout(bad), "{bad}");
    }
}

mod fuzz {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        /// Any damage (bytes changed, cut, inserted) either is refused or leaves every entry's
        /// content exactly as written; the reader never panics.
        #[test]
        fn damaged_archives_never_pass_with_other_content(
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..4),
        ) {
            let good = build();
            let mut bytes = good.bytes.clone();
            for (at, value, kind) in edits {
                if bytes.is_empty() { break; }
                let i = at.index(bytes.len());
                match kind {
                    0 => bytes[i] ^= value | 1,
                    1 => bytes.truncate(i),
                    _ => bytes.insert(i, value),
                }
            }
            let mut got: std::collections::BTreeMap<String, Vec<u8>> = Default::default();
            let result = read(&bytes[..], |rel, b| {
                got.entry(rel.into()).or_default().extend_from_slice(b);
                Ok(())
            });
            if let Ok(m) = result {
                for (rel, data) in &good.files {
                    prop_assert_eq!(got.get(rel), Some(data));
                }
                prop_assert_eq!(m, good.manifest.clone());
            }
        }
    }
}
