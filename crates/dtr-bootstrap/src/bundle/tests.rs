//! The bundle without an engine: a small `docker save` archive in Docker 20.10's layout, made
//! here (two images sharing a base layer, one layer the engine wrote as a symbolic link), turned
//! into a bundle and read back; then every kind of damage or tampering, each refused with its
//! own reason.

use super::*;

const VERSION: &str = "9.0.0";

fn expected() -> Vec<String> {
    vec![
        format!("registry/dtr:{VERSION}"),
        format!("registry/dtr-api:{VERSION}"),
    ]
}

/// An uncompressed layer tar holding one file.
fn layer(name: &str, content: &[u8]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(content.len() as u64);
    h.set_mode(0o644);
    h.set_mtime(0);
    b.append_data(&mut h, name, content).unwrap();
    b.into_inner().unwrap()
}

fn config(diff_ids: &[String]) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Cmd": ["/bin/true"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .unwrap()
}

/// Raw tar entries, so that tests can write what `tar::Builder` refuses to (`..`, links).
#[derive(Default)]
struct Raw(Vec<u8>);

impl Raw {
    fn header(&mut self, name: &[u8], typ: tar::EntryType, size: u64, link: Option<&[u8]>) {
        let mut h = tar::Header::new_gnu();
        {
            let gnu = h.as_gnu_mut().unwrap();
            gnu.name[..name.len()].copy_from_slice(name);
            if let Some(link) = link {
                gnu.linkname[..link.len()].copy_from_slice(link);
            }
        }
        h.set_entry_type(typ);
        h.set_size(size);
        h.set_mode(if typ == tar::EntryType::Directory {
            0o755
        } else {
            0o644
        });
        h.set_mtime(1_600_000_000);
        h.set_cksum();
        self.0.extend_from_slice(h.as_bytes());
    }
    fn file(&mut self, name: &str, content: &[u8]) {
        self.header(
            name.as_bytes(),
            tar::EntryType::Regular,
            content.len() as u64,
            None,
        );
        self.0.extend_from_slice(content);
        let pad = (512 - content.len() % 512) % 512;
        self.0.extend(std::iter::repeat_n(0u8, pad));
    }
    fn dir(&mut self, name: &str) {
        self.header(
            format!("{name}/").as_bytes(),
            tar::EntryType::Directory,
            0,
            None,
        );
    }
    fn symlink(&mut self, name: &str, target: &str) {
        self.header(
            name.as_bytes(),
            tar::EntryType::Symlink,
            0,
            Some(target.as_bytes()),
        );
    }
    fn finish(mut self) -> Vec<u8> {
        self.0.extend(std::iter::repeat_n(0u8, 1024));
        self.0
    }
}

/// Appends raw entries to a finished archive (before its end-of-archive blocks).
fn append(archive: &[u8], extra: impl FnOnce(&mut Raw)) -> Vec<u8> {
    let mut raw = Raw(archive[..archive.len() - 1024].to_vec());
    extra(&mut raw);
    raw.finish()
}

#[derive(Default)]
struct Save {
    /// extra manifest.json tags of the first image
    extra_tag: Option<String>,
    /// leave the second image out
    only_first: bool,
    /// the second image's own layer differs from what its config names
    wrong_diff_id: bool,
}

/// `docker save registry/dtr:9.0.0 registry/dtr-api:9.0.0` as Docker 20.10 writes it: per
/// layer a directory with VERSION, json and layer.tar; `<id>.json` configs; manifest.json;
/// repositories. The base layer is shared; the api's second layer has the same content as the
/// bootstrapper's second layer on top of another chain, so the engine wrote a symlink.
fn docker_save(opts: Save) -> Vec<u8> {
    let base = layer("etc/os-release", b"debian\n");
    let bin = layer("usr/local/bin/dtr", b"\x7fELF the binary");
    let extra = layer("etc/api.conf", b"port = 9443\n");
    let d = |l: &[u8]| format!("sha256:{}", sha256_hex(l));
    let boot_cfg = config(&[d(&base), d(&bin)]);
    let api_diffs = if opts.wrong_diff_id {
        vec![d(&base), d(&extra), d(b"something else")]
    } else {
        vec![d(&base), d(&extra), d(&bin)]
    };
    let api_cfg = config(&api_diffs);
    let (boot_id, api_id) = (sha256_hex(&boot_cfg), sha256_hex(&api_cfg));
    let (l_base, l_bin, l_extra, l_bin2) = (
        "a".repeat(64),
        "b".repeat(64),
        "c".repeat(64),
        "d".repeat(64),
    );
    let mut tags = vec![format!("registry/dtr:{VERSION}")];
    tags.extend(opts.extra_tag.clone());
    let mut manifest = vec![serde_json::json!({
        "Config": format!("{boot_id}.json"),
        "RepoTags": tags,
        "Layers": [format!("{l_base}/layer.tar"), format!("{l_bin}/layer.tar")],
    })];
    if !opts.only_first {
        manifest.push(serde_json::json!({
            "Config": format!("{api_id}.json"),
            "RepoTags": [format!("registry/dtr-api:{VERSION}")],
            "Layers": [format!("{l_base}/layer.tar"), format!("{l_extra}/layer.tar"), format!("{l_bin2}/layer.tar")],
        }));
    }
    let mut raw = Raw::default();
    // lexical order, as the engine's walk of its temporary directory gives
    let layer_dir = |raw: &mut Raw, id: &str, content: Option<&[u8]>, link: Option<&str>| {
        raw.dir(id);
        raw.file(&format!("{id}/VERSION"), b"1.0");
        raw.file(
            &format!("{id}/json"),
            format!("{{\"id\":\"{id}\"}}").as_bytes(),
        );
        match (content, link) {
            (Some(c), _) => raw.file(&format!("{id}/layer.tar"), c),
            (None, Some(target)) => raw.symlink(&format!("{id}/layer.tar"), target),
            _ => unreachable!(),
        }
    };
    layer_dir(&mut raw, &l_base, Some(&base), None);
    layer_dir(&mut raw, &l_bin, Some(&bin), None);
    if !opts.only_first {
        layer_dir(&mut raw, &l_extra, Some(&extra), None);
        layer_dir(
            &mut raw,
            &l_bin2,
            None,
            Some(&format!("../{l_bin}/layer.tar")),
        );
    }
    let mut configs = vec![(boot_id.clone(), boot_cfg)];
    if !opts.only_first {
        configs.push((api_id.clone(), api_cfg));
    }
    configs.sort();
    for (id, cfg) in &configs {
        raw.file(&format!("{id}.json"), cfg);
    }
    raw.file("manifest.json", &serde_json::to_vec(&manifest).unwrap());
    let mut repos = serde_json::json!({"registry/dtr": {VERSION: l_bin}});
    if !opts.only_first {
        repos["registry/dtr-api"] = serde_json::json!({VERSION: l_bin2});
    }
    raw.file("repositories", &serde_json::to_vec(&repos).unwrap());
    raw.finish()
}

/// The bundle `dtr images save` makes of a `docker save` archive (checked first, as save does).
fn bundle_of(save: &[u8], version: &str) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::spool(save, dir.path(), Links::Resolve).unwrap();
    let images = check_docker_save(&store, &expected()).unwrap();
    write_bundle(&store, images, version, "2026-01-01T00:00:00Z", Vec::new())
        .unwrap()
        .2
}

/// The same without the save-side check (as a forger would make it), with `images` as given.
fn unchecked_bundle_of(save: &[u8], images: Vec<ImageRecord>) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::spool(save, dir.path(), Links::Resolve).unwrap();
    write_bundle(&store, images, VERSION, "2026-01-01T00:00:00Z", Vec::new())
        .unwrap()
        .2
}

fn read(bytes: &[u8]) -> Result<BundleManifest, BundleError> {
    let dir = tempfile::tempdir().unwrap();
    read_bundle(bytes, dir.path(), VERSION, &expected()).map(|(m, _)| m)
}

/// The reason a bundle is refused (the test fails if it is accepted or fails otherwise).
fn refusal(bytes: &[u8]) -> String {
    match read(bytes) {
        Err(BundleError::Refused(reason)) => reason,
        Err(e) => panic!("failed, but not as a refusal: {e}"),
        Ok(_) => panic!("accepted"),
    }
}

/// Where the content of entry `path` lies in the archive.
fn data_of(archive: &[u8], path: &str) -> std::ops::Range<usize> {
    let mut a = tar::Archive::new(archive);
    for e in a.entries().unwrap() {
        let e = e.unwrap();
        if e.path().unwrap().to_str() == Some(path) {
            let start = e.raw_file_position() as usize;
            return start..start + e.size() as usize;
        }
    }
    panic!("no entry {path}");
}

fn flip(archive: &[u8], path: &str, at: usize) -> Vec<u8> {
    let mut bytes = archive.to_vec();
    let range = data_of(archive, path);
    bytes[range.start + at] ^= 0x01;
    bytes
}

fn good() -> Vec<u8> {
    bundle_of(&docker_save(Save::default()), VERSION)
}

fn entry_names(archive: &[u8]) -> Vec<(String, tar::EntryType)> {
    let mut a = tar::Archive::new(archive);
    a.entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.path().unwrap().to_string_lossy().to_string(),
                e.header().entry_type(),
            )
        })
        .collect()
}

fn layer_path(i: char) -> String {
    format!("{}/layer.tar", i.to_string().repeat(64))
}

#[test]
fn a_bundle_is_accepted_and_lists_every_entry_and_image() {
    let bytes = good();
    let manifest = read(&bytes).unwrap();
    assert_eq!(manifest.format, FORMAT);
    assert_eq!(manifest.dtr_version, VERSION);
    let refs: Vec<&str> = manifest
        .images
        .iter()
        .map(|i| i.reference.as_str())
        .collect();
    assert_eq!(refs, expected());
    assert!(manifest.images.iter().all(|i| i.id.starts_with("sha256:")));
    // 4 layer directories × 3 files, 2 configs, manifest.json, repositories
    assert_eq!(manifest.files.len(), 16);
    assert_eq!(manifest.directories.len(), 4);
    let names = entry_names(&bytes);
    assert_eq!(names[0].0, MANIFEST, "dtr-bundle.json comes first");
    // the engine's symlink became a copy of the file it named
    assert!(names
        .iter()
        .all(|(_, t)| matches!(t, tar::EntryType::Regular | tar::EntryType::Directory)));
    let copy = manifest
        .files
        .iter()
        .find(|f| f.path == layer_path('d'))
        .unwrap();
    let original = manifest
        .files
        .iter()
        .find(|f| f.path == layer_path('b'))
        .unwrap();
    assert_eq!(copy.sha256, original.sha256);
}

#[test]
fn what_the_engine_is_given_is_the_checked_docker_save_archive_without_the_manifest() {
    let bytes = good();
    let dir = tempfile::tempdir().unwrap();
    let (manifest, store) = read_bundle(&bytes[..], dir.path(), VERSION, &expected()).unwrap();
    let (written, out) = write_docker_save(&store, Vec::new()).unwrap();
    assert_eq!(written.files, manifest.files.len());
    let names = entry_names(&out);
    assert!(!names.iter().any(|(n, _)| n == MANIFEST));
    assert_eq!(
        names.len(),
        manifest.files.len() + manifest.directories.len()
    );
    // and it is itself a docker save archive that passes the checks
    let again = tempfile::tempdir().unwrap();
    let store = Store::spool(&out[..], again.path(), Links::Refuse).unwrap();
    let images = check_docker_save(&store, &expected()).unwrap();
    assert_eq!(images, manifest.images);
}

#[test]
fn a_flipped_byte_in_a_layer_is_refused() {
    let reason = refusal(&flip(&good(), &layer_path('c'), 600));
    assert!(
        reason.contains(&layer_path('c')) && reason.contains("SHA-256"),
        "{reason}"
    );
}

#[test]
fn a_flipped_byte_in_a_config_is_refused() {
    let bytes = good();
    let manifest = read(&bytes).unwrap();
    let config = format!("{}.json", &manifest.images[1].id["sha256:".len()..]);
    let reason = refusal(&flip(&bytes, &config, 3));
    assert!(
        reason.contains(&config) && reason.contains("SHA-256"),
        "{reason}"
    );
}

#[test]
fn a_flipped_byte_in_manifest_json_is_refused() {
    let reason = refusal(&flip(&good(), "manifest.json", 10));
    assert!(
        reason.contains("manifest.json") && reason.contains("SHA-256"),
        "{reason}"
    );
}

#[test]
fn a_flipped_byte_in_dtr_bundle_json_is_refused() {
    let bytes = good();
    // in a listed SHA-256: the entry no longer matches
    let text = String::from_utf8_lossy(&bytes[data_of(&bytes, MANIFEST)]).to_string();
    let at = text.find("\"sha256\": \"").unwrap() + "\"sha256\": \"".len();
    let mut tampered = bytes.clone();
    let pos = data_of(&bytes, MANIFEST).start + at;
    tampered[pos] = if tampered[pos] == b'0' { b'1' } else { b'0' };
    let reason = refusal(&tampered);
    assert!(reason.contains("does not match its SHA-256"), "{reason}");
    // in its structure: it does not parse
    let reason = refusal(&flip(&bytes, MANIFEST, 0));
    assert!(
        reason.contains("dtr-bundle.json does not parse"),
        "{reason}"
    );
}

#[test]
fn a_bundle_of_another_version_is_refused_saying_which_version_it_is_for() {
    let bytes = bundle_of(&docker_save(Save::default()), "9.1.0");
    let reason = refusal(&bytes);
    assert!(
        reason.contains("dtr 9.1.0") && reason.contains("this bootstrapper is dtr 9.0.0"),
        "{reason}"
    );
}

#[test]
fn a_missing_image_is_refused() {
    let save = docker_save(Save {
        only_first: true,
        ..Default::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let store = Store::spool(&save[..], dir.path(), Links::Resolve).unwrap();
    let e = check_docker_save(&store, &expected()).unwrap_err();
    assert!(
        e.to_string().contains("registry/dtr-api:9.0.0 is missing"),
        "{e}"
    );
    // a bundle made of it anyway is refused at load
    let first = check_docker_save(&store, &expected()[..1]).unwrap();
    let reason = refusal(&unchecked_bundle_of(&save, first));
    assert!(
        reason.contains("registry/dtr-api:9.0.0 is missing"),
        "{reason}"
    );
}

#[test]
fn a_tag_that_is_not_an_image_of_the_version_is_refused() {
    let save = docker_save(Save {
        extra_tag: Some("debian:bookworm-slim".into()),
        ..Default::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let store = Store::spool(&save[..], dir.path(), Links::Resolve).unwrap();
    let e = check_docker_save(&store, &expected()).unwrap_err();
    assert!(e.to_string().contains("tags debian:bookworm-slim"), "{e}");
}

#[test]
fn a_layer_that_is_not_the_one_its_config_names_is_refused_even_with_a_consistent_listing() {
    // dtr-bundle.json remade after the layer changed: the sizes and hashes match the entries,
    // but content addressing does not
    let save = docker_save(Save {
        wrong_diff_id: true,
        ..Default::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let store = Store::spool(&save[..], dir.path(), Links::Resolve).unwrap();
    let e = check_docker_save(&store, &expected()).unwrap_err();
    assert!(
        e.to_string().contains("is not the layer its config names"),
        "{e}"
    );
    let images = expected()
        .into_iter()
        .map(|reference| ImageRecord {
            reference,
            id: format!("sha256:{}", "0".repeat(64)),
        })
        .collect();
    let reason = refusal(&unchecked_bundle_of(&save, images));
    assert!(
        reason.contains("layer 2 of registry/dtr-api:9.0.0"),
        "{reason}"
    );
}

#[test]
fn a_config_that_is_not_the_image_it_is_named_after_is_refused() {
    // a config replaced by another one under the old name, listing remade
    let save = docker_save(Save::default());
    let dir = tempfile::tempdir().unwrap();
    let store = Store::spool(&save[..], dir.path(), Links::Resolve).unwrap();
    let images = check_docker_save(&store, &expected()).unwrap();
    let name = format!("{}.json", &images[0].id["sha256:".len()..]);
    let range = data_of(&save, &name);
    let mut forged = save.clone();
    // same length, other content: "amd64" → "arm64"
    let text = String::from_utf8_lossy(&save[range.clone()]).to_string();
    let at = text.find("amd64").unwrap() + 1;
    forged[range.start + at] = b'r';
    let reason = refusal(&unchecked_bundle_of(&forged, images));
    assert!(
        reason.contains("the config of registry/dtr:9.0.0 is not the image it is named after"),
        "{reason}"
    );
}

#[test]
fn an_unlisted_entry_is_refused() {
    let bytes = append(&good(), |raw| raw.file("extra.sh", b"#!/bin/sh\n"));
    let reason = refusal(&bytes);
    assert!(reason.contains("entry extra.sh is not listed"), "{reason}");
    let bytes = append(&good(), |raw| raw.dir("more"));
    assert!(refusal(&bytes).contains("directory more is not listed"));
    // a second dtr-bundle.json is not listed either
    let bytes = append(&good(), |raw| raw.file(MANIFEST, b"{}"));
    assert!(refusal(&bytes).contains("entry dtr-bundle.json is not listed"));
}

#[test]
fn traversal_and_absolute_paths_are_refused() {
    let bytes = append(&good(), |raw| {
        raw.file("../../etc/cron.d/x", b"* * * * * root id\n")
    });
    assert!(refusal(&bytes).contains("points outside the archive"));
    let bytes = append(&good(), |raw| raw.file("a/../../x", b"x"));
    assert!(refusal(&bytes).contains("points outside the archive"));
    let bytes = append(&good(), |raw| raw.file("/etc/passwd", b"x"));
    assert!(refusal(&bytes).contains("absolute path"));
}

#[test]
fn links_and_devices_are_refused() {
    let bytes = append(&good(), |raw| raw.symlink("evil", "/etc/shadow"));
    assert!(refusal(&bytes).contains("entry evil is a symbolic link"));
    let bytes = append(&good(), |raw| {
        raw.header(b"hard", tar::EntryType::Link, 0, Some(b"manifest.json"))
    });
    assert!(refusal(&bytes).contains("entry hard is a hard link"));
    let bytes = append(&good(), |raw| {
        raw.header(b"null", tar::EntryType::Char, 0, None)
    });
    assert!(refusal(&bytes).contains("entry null is a device"));
    let bytes = append(&good(), |raw| {
        raw.header(b"disk", tar::EntryType::Block, 0, None)
    });
    assert!(refusal(&bytes).contains("entry disk is a device"));
}

#[test]
fn a_truncated_archive_is_refused() {
    let bytes = good();
    // in the middle of an entry
    let layer = data_of(&bytes, &layer_path('c'));
    let reason = refusal(&bytes[..layer.start + 100]);
    assert!(reason.contains("truncated"), "{reason}");
    // at an entry boundary, without the end-of-archive blocks
    let reason = refusal(&bytes[..layer.start - 512]);
    assert!(
        reason.contains("is missing: the archive is truncated"),
        "{reason}"
    );
    // in the middle of a header
    let reason = refusal(&bytes[..layer.start - 300]);
    assert!(reason.contains("truncated"), "{reason}");
    // nothing at all
    assert!(refusal(&[]).contains("empty"));
}

#[test]
fn a_plain_docker_save_archive_is_not_a_bundle() {
    let reason = refusal(&docker_save(Save::default()));
    assert!(
        reason.contains("not a bundle made by `dtr images save`"),
        "{reason}"
    );
}

#[test]
fn a_size_that_differs_from_the_listing_is_refused_before_the_content_is_read() {
    let bytes = good();
    let manifest = read(&bytes).unwrap();
    let f = manifest
        .files
        .iter()
        .find(|f| f.path == "manifest.json")
        .unwrap();
    let mut forged = manifest.clone();
    forged.files.retain(|x| x.path != "manifest.json");
    forged.files.push(FileRecord {
        size: f.size + 1,
        ..f.clone()
    });
    // rebuild the archive with the forged listing first
    let json = serde_json::to_vec_pretty(&forged).unwrap();
    let mut raw = Raw::default();
    raw.file(MANIFEST, &json);
    let rest_start = data_of(&bytes, MANIFEST).end.div_ceil(512) * 512;
    let mut out = raw.0;
    out.extend_from_slice(&bytes[rest_start..]);
    let reason = refusal(&out);
    assert!(reason.contains("dtr-bundle.json says"), "{reason}");
}

#[test]
fn the_engines_links_are_resolved_only_inside_the_archive() {
    let mut raw = Raw::default();
    raw.symlink("x/layer.tar", "../../../etc/passwd");
    let save = raw.finish();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::spool(&save[..], dir.path(), Links::Resolve).unwrap();
    assert!(store.file("x/layer.tar").is_none());
    let e = write_bundle(&store, vec![], VERSION, "", Vec::new()).unwrap_err();
    assert!(
        e.to_string()
            .contains("symbolic link to nothing inside the archive"),
        "{e}"
    );
}

#[test]
fn safe_paths() {
    assert_eq!(check::safe_path("abc/").unwrap(), "abc");
    assert_eq!(check::safe_path("a/b.json").unwrap(), "a/b.json");
    for bad in ["", "/", "/a", "..", "a/..", "a//b", "./a", "a/./b"] {
        assert!(check::safe_path(bad).is_err(), "{bad:?} accepted");
    }
}
