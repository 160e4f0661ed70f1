//! Every check of a bundle, before the engine is asked to load anything:
//!
//! - entry names: relative, no `..`, no empty or `.` component; entry types: files and
//!   directories only (links, devices, pipes refused) — in [`super::Store::add`] and
//!   [`safe_path`];
//! - `dtr-bundle.json`: the first entry, parses, of this bootstrapper's version and format 1;
//!   every other entry listed with its size and SHA-256, nothing unlisted, nothing missing
//!   ([`read_bundle`]);
//! - the `docker save` part ([`check_docker_save`]): `manifest.json` tags every image of the
//!   version and nothing else; each image's config hashes to the image ID (content
//!   addressing: the ID *is* the config's SHA-256, and the config is named after it,
//!   `<hex>.json` in Docker 20.10's layout, `blobs/sha256/<hex>` in the OCI layout of Docker
//!   25 and later); each layer's SHA-256 is the config's `rootfs.diff_ids[i]` (`docker save`
//!   writes layers uncompressed); every `blobs/sha256/<hex>` hashes to its name.

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::path::Path;

use serde::Deserialize;

use super::{
    damaged, refused, sha256_hex, BundleError, BundleManifest, FileRecord, ImageRecord, Kind,
    Links, Store, FORMAT, MANIFEST, MAX_JSON,
};

/// An entry name made safe to use: relative, `/`-separated, without `.`/`..`/empty
/// components; a trailing `/` (directories) is dropped.
pub fn safe_path(raw: &str) -> Result<String, BundleError> {
    let path = raw.trim_end_matches('/');
    if path.is_empty() {
        return Err(refused(format!("an entry has an empty name ({raw:?})")));
    }
    if path.starts_with('/') {
        return Err(refused(format!("entry {raw} has an absolute path")));
    }
    for part in path.split('/') {
        match part {
            ".." => {
                return Err(refused(format!(
                    "entry {raw} points outside the archive (..)"
                )))
            }
            "" | "." => {
                return Err(refused(format!(
                    "entry {raw} has an empty or `.` path component"
                )))
            }
            p if p.contains('\0') => {
                return Err(refused(format!("entry {raw:?} has a NUL in its name")))
            }
            _ => {}
        }
    }
    Ok(path.to_string())
}

/// One image of `docker save`'s `manifest.json`.
#[derive(Deserialize, Debug)]
struct SaveManifestEntry {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers")]
    layers: Vec<String>,
}

#[derive(Deserialize, Debug)]
struct ImageConfig {
    rootfs: RootFs,
}

#[derive(Deserialize, Debug)]
struct RootFs {
    #[serde(rename = "type")]
    typ: String,
    diff_ids: Vec<String>,
}

fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The digest a config's name carries: `<hex>.json` (Docker 20.10) or `blobs/sha256/<hex>`
/// (OCI layout).
fn digest_in_name(path: &str) -> Option<&str> {
    path.strip_suffix(".json")
        .or_else(|| path.strip_prefix("blobs/sha256/"))
        .filter(|h| is_sha256_hex(h))
}

fn parse<T: serde::de::DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, BundleError> {
    serde_json::from_slice(bytes).map_err(|e| refused(format!("{what} does not parse: {e}")))
}

/// Checks the `docker save` archive in `store` against the images a version has (`expected`,
/// `registry/dtr-api:0.1.0`, ...): the references with their image IDs, in `expected`'s order.
pub fn check_docker_save(
    store: &Store,
    expected: &[String],
) -> Result<Vec<ImageRecord>, BundleError> {
    if store.get("manifest.json").is_none() {
        return Err(refused(
            "manifest.json is missing: this is not a `docker save` archive",
        ));
    }
    let manifest: Vec<SaveManifestEntry> =
        parse(&store.read_small("manifest.json")?, "manifest.json")?;
    let mut found: HashMap<String, String> = HashMap::new();
    for image in &manifest {
        let tags = image.repo_tags.clone().unwrap_or_default();
        let Some(name) = tags.first().cloned() else {
            return Err(refused(format!(
                "manifest.json holds an image without a tag (config {})",
                image.config
            )));
        };
        for tag in &tags {
            if !expected.contains(tag) {
                return Err(refused(format!(
                    "manifest.json tags {tag}, which is not an image of this version (loading it would move that tag)"
                )));
            }
        }
        let config_path = safe_path(&image.config)?;
        if store.file(&config_path).is_none() {
            return Err(refused(format!(
                "the config {config_path} of {name} is missing"
            )));
        }
        let config = store.read_small(&config_path)?;
        let hex = sha256_hex(&config);
        if let Some(named) = digest_in_name(&config_path) {
            if named != hex {
                return Err(refused(format!(
                    "the config of {name} is not the image it is named after: {config_path} has the SHA-256 {hex}"
                )));
            }
        }
        let id = format!("sha256:{hex}");
        let parsed: ImageConfig = parse(&config, &format!("the config of {name}"))?;
        if parsed.rootfs.typ != "layers" {
            return Err(refused(format!(
                "the config of {name} has rootfs type {:?}, not \"layers\"",
                parsed.rootfs.typ
            )));
        }
        if parsed.rootfs.diff_ids.len() != image.layers.len() {
            return Err(refused(format!(
                "{name}: manifest.json lists {} layers, its config {}",
                image.layers.len(),
                parsed.rootfs.diff_ids.len()
            )));
        }
        for (i, (layer, diff_id)) in image.layers.iter().zip(&parsed.rootfs.diff_ids).enumerate() {
            let layer = safe_path(layer)?;
            let Some((_, _, sha, _)) = store.file(&layer) else {
                return Err(refused(format!("layer {layer} of {name} is missing")));
            };
            if format!("sha256:{sha}") != *diff_id {
                return Err(refused(format!(
                    "layer {i} of {name} ({layer}) is not the layer its config names: its SHA-256 is sha256:{sha}, rootfs.diff_ids[{i}] is {diff_id}"
                )));
            }
        }
        for tag in tags {
            if found.insert(tag.clone(), id.clone()).is_some() {
                return Err(refused(format!("manifest.json tags {tag} twice")));
            }
        }
    }
    for image in expected {
        if !found.contains_key(image) {
            return Err(refused(format!("the image {image} is missing")));
        }
    }
    for entry in store.entries() {
        if let Some(hex) = entry.path.strip_prefix("blobs/sha256/") {
            if let Some((_, _, sha, _)) = store.file(&entry.path) {
                if sha != hex {
                    return Err(refused(format!(
                        "blob {} does not match its name: its SHA-256 is {sha}",
                        entry.path
                    )));
                }
            }
        }
    }
    if store.get("repositories").is_some() {
        let repos: HashMap<String, HashMap<String, String>> =
            parse(&store.read_small("repositories")?, "repositories")?;
        for (repo, tags) in repos {
            for tag in tags.keys() {
                let reference = format!("{repo}:{tag}");
                if !expected.contains(&reference) {
                    return Err(refused(format!(
                        "repositories tags {reference}, which is not an image of this version"
                    )));
                }
            }
        }
    }
    if store.get("index.json").is_some() {
        let index: serde_json::Value = parse(&store.read_small("index.json")?, "index.json")?;
        let manifests = index["manifests"].as_array().cloned().unwrap_or_default();
        for m in manifests {
            if let Some(name) = m["annotations"]["io.containerd.image.name"].as_str() {
                let short = name.strip_prefix("docker.io/").unwrap_or(name);
                if !expected.iter().any(|e| e == short) {
                    return Err(refused(format!(
                        "index.json names {name}, which is not an image of this version"
                    )));
                }
            }
        }
    }
    Ok(expected
        .iter()
        .map(|reference| ImageRecord {
            reference: reference.clone(),
            id: found[reference].clone(),
        })
        .collect())
}

/// `dtr-bundle.json`, checked for version and format before the rest of it is trusted.
pub fn parse_manifest(bytes: &[u8], version: &str) -> Result<BundleManifest, BundleError> {
    let loose: serde_json::Value = parse(bytes, MANIFEST)?;
    let Some(bundle_version) = loose.get("dtr_version").and_then(|v| v.as_str()) else {
        return Err(refused(format!("{MANIFEST} names no dtr_version")));
    };
    if bundle_version != version {
        return Err(refused(format!(
            "this bundle holds the images of dtr {bundle_version}, and this bootstrapper is dtr {version}: load it with the dtr {bundle_version} bootstrapper, or save the images of {version} with `dtr images save`"
        )));
    }
    let format = loose.get("format").and_then(|v| v.as_u64());
    if format != Some(FORMAT as u64) {
        return Err(refused(format!(
            "{MANIFEST} is of format {}, this bootstrapper reads format {FORMAT}",
            format.map_or("(none)".to_string(), |f| f.to_string())
        )));
    }
    serde_json::from_value(loose).map_err(|e| refused(format!("{MANIFEST}: {e}")))
}

/// Reads a bundle from `input` into `dir` (private, the caller's) and checks all of it. On
/// success every file of the store is exactly what `dtr-bundle.json` lists, and the `docker
/// save` part holds exactly the images `expected` of `version`, content-addressed.
pub fn read_bundle(
    input: impl Read,
    dir: &Path,
    version: &str,
    expected: &[String],
) -> Result<(BundleManifest, Store), BundleError> {
    let mut archive = tar::Archive::new(input);
    let mut entries = archive.entries().map_err(damaged)?;
    let first = entries
        .next()
        .ok_or_else(|| refused(format!("the archive is empty (no {MANIFEST})")))?
        .map_err(damaged)?;
    let first_path = String::from_utf8_lossy(&first.path_bytes()).to_string();
    if safe_path(&first_path).ok().as_deref() != Some(MANIFEST) {
        return Err(refused(format!(
            "the first entry is {first_path}, not {MANIFEST}: this is not a bundle made by `dtr images save` (a plain `docker save` archive is not checked: load that with `docker load`)"
        )));
    }
    if first.header().entry_type() != tar::EntryType::Regular {
        return Err(refused(format!("{MANIFEST} is not a file")));
    }
    let size = first.header().size().map_err(damaged)?;
    if size > MAX_JSON {
        return Err(refused(format!("{MANIFEST} is {size} bytes: too large")));
    }
    let mut bytes = Vec::with_capacity(size as usize);
    first
        .take(MAX_JSON)
        .read_to_end(&mut bytes)
        .map_err(damaged)?;
    if bytes.len() as u64 != size {
        return Err(refused(format!(
            "the archive is truncated inside {MANIFEST}"
        )));
    }
    let manifest = parse_manifest(&bytes, version)?;

    let mut files: HashMap<&str, &FileRecord> = HashMap::new();
    for f in &manifest.files {
        if files.insert(f.path.as_str(), f).is_some() {
            return Err(refused(format!("{MANIFEST} lists {} twice", f.path)));
        }
    }
    let dirs: HashSet<&str> = manifest.directories.iter().map(String::as_str).collect();
    let mut store = Store::new(dir);
    for entry in entries {
        let entry = entry.map_err(damaged)?;
        let stored = store.add(entry, Links::Refuse, |path, size| match size {
            None if dirs.contains(path) => Ok(()),
            None => Err(refused(format!(
                "directory {path} is not listed in {MANIFEST}"
            ))),
            Some(size) => match files.get(path) {
                None => Err(refused(format!("entry {path} is not listed in {MANIFEST}"))),
                Some(r) if r.size != size => Err(refused(format!(
                    "entry {path} is {size} bytes, {MANIFEST} says {}",
                    r.size
                ))),
                Some(_) => Ok(()),
            },
        })?;
        if let Kind::File { sha256, .. } = &stored.kind {
            if files[stored.path.as_str()].sha256 != *sha256 {
                return Err(refused(format!(
                    "entry {} does not match its SHA-256 in {MANIFEST}: it was changed or damaged",
                    stored.path
                )));
            }
        }
    }
    for d in &manifest.directories {
        if store.get(d).map(|e| &e.kind) != Some(&Kind::Dir) {
            return Err(refused(format!(
                "directory {d} listed in {MANIFEST} is missing: the archive is truncated or incomplete"
            )));
        }
    }
    for f in &manifest.files {
        if store.get(&f.path).is_none() {
            return Err(refused(format!(
                "entry {} listed in {MANIFEST} is missing: the archive is truncated or incomplete",
                f.path
            )));
        }
    }
    let images = check_docker_save(&store, expected)?;
    let mut listed = manifest.images.clone();
    listed.sort_by(|a, b| a.reference.cmp(&b.reference));
    let mut actual = images;
    actual.sort_by(|a, b| a.reference.cmp(&b.reference));
    if listed != actual {
        return Err(refused(format!(
            "the images {MANIFEST} lists are not the images of the archive: it lists {}, the archive holds {}",
            describe(&listed),
            describe(&actual)
        )));
    }
    Ok((manifest, store))
}

fn describe(images: &[ImageRecord]) -> String {
    images
        .iter()
        .map(|i| format!("{} ({})", i.reference, short_id(&i.id)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `sha256:0123456789ab`: enough to tell images apart in a message.
pub fn short_id(id: &str) -> &str {
    &id[..id.len().min(19)]
}
