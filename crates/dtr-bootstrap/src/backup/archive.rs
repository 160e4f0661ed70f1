//! The backup archive (specification: docs/backup-format.md): a tar whose first entry is
//! `dtr-backup-v<version>/manifest.json`, then the entries the manifest lists, each with its size
//! and SHA-256. Writing streams entries from files the caller made (memory does not grow with the
//! data); reading checks everything before handing anything out: the manifest first and well
//! formed, only regular files at expected paths, no duplicates, every size and checksum, nothing
//! missing, nothing extra.

use std::collections::BTreeSet;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The archive format this version writes and reads.
pub const FORMAT: u32 = 1;
const MANIFEST: &str = "manifest.json";
/// The last entry: the manifest's own SHA-256 (hex and a newline), so that no byte of the
/// archive goes unchecked.
const SEAL: &str = "manifest.sha256";
/// A manifest is small; anything bigger is not one.
const MANIFEST_LIMIT: u64 = 1 << 20;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntryMeta {
    /// Relative to the top directory, e.g. `db/dtr.dump`.
    pub path: String,
    pub size: u64,
    /// Lower-case hex.
    pub sha256: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: u32,
    pub dtr_version: String,
    pub replica_id: String,
    /// RFC 3339 UTC.
    pub created_at: String,
    pub entries: Vec<EntryMeta>,
}

/// Why an archive is refused. Every variant names the entry involved.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ArchiveError {
    #[error("the archive is not a readable tar ({0}); it may be truncated or not a dtr backup")]
    Unreadable(String),
    #[error("the archive's first entry is {found:?}, not the manifest {expected:?}")]
    NoManifestFirst { found: String, expected: String },
    #[error("the manifest is not valid: {0}")]
    BadManifest(String),
    #[error("archive format {found} is not supported by this dtr (it reads format {FORMAT})")]
    Format { found: u32 },
    #[error("entry {path:?} is not a regular file ({kind})")]
    NotAFile { path: String, kind: String },
    #[error("entry {path:?} is outside the backup's layout")]
    OutsideLayout { path: String },
    #[error("entry {path:?} appears twice")]
    Duplicate { path: String },
    #[error("entry {path:?} is not listed in the manifest")]
    Unlisted { path: String },
    #[error("entry {path:?} has {found} bytes, the manifest says {expected}")]
    Size {
        path: String,
        found: u64,
        expected: u64,
    },
    #[error("entry {path:?} does not match its SHA-256 (the archive is damaged or was changed)")]
    Checksum { path: String },
    #[error("entries listed in the manifest are missing: {0:?} (the archive may be truncated)")]
    Missing(Vec<String>),
    #[error("the manifest does not match its SHA-256 in {SEAL:?} (the archive is damaged or was changed)")]
    ManifestChecksum,
    #[error("the archive ends before {SEAL:?}, its last entry (it may be truncated)")]
    Unsealed,
}

/// The top directory of an archive made by `version`: `dtr-backup-v<version>`.
pub fn top_dir(version: &str) -> String {
    format!("dtr-backup-v{version}")
}

/// Paths an archive may hold below its top directory: `etcd/<file>`, `db/<file>`, `config/<file>`, `ca/<path>`;
/// plain names of `[A-Za-z0-9._-]`, no empty, `.` or `..` component.
pub fn in_layout(rel: &str) -> bool {
    let mut parts = rel.split('/');
    let Some(first) = parts.next() else {
        return false;
    };
    let rest: Vec<&str> = parts.collect();
    let plain = |p: &&str| {
        !p.is_empty()
            && *p != "."
            && *p != ".."
            && p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    };
    match first {
        "etcd" | "db" | "config" => rest.len() == 1 && rest.iter().all(plain),
        "ca" => !rest.is_empty() && rest.len() <= 3 && rest.iter().all(plain),
        _ => false,
    }
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// Hashes a file while measuring it, in fixed-size blocks.
pub fn describe_file(rel: &str, file: &Path) -> io::Result<EntryMeta> {
    let mut f = std::fs::File::open(file)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        size += n as u64;
        hasher.update(&buf[..n]);
    }
    Ok(EntryMeta {
        path: rel.to_string(),
        size,
        sha256: hex::encode(hasher.finalize()),
    })
}

fn header(size: u64, mode: u32) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_size(size);
    h.set_mode(mode);
    h.set_mtime(0);
    h.set_entry_type(tar::EntryType::Regular);
    h
}

/// Writes the archive: the manifest, then each `(relative path, file)` in order. The files'
/// metadata (`manifest.entries`) must have been made with `describe_file`.
pub fn write<W: Write>(out: W, manifest: &Manifest, files: &[(String, PathBuf)]) -> io::Result<W> {
    let top = top_dir(&manifest.dtr_version);
    let mut tar = tar::Builder::new(out);
    let json = serde_json::to_vec_pretty(manifest).expect("serializable");
    let mut h = header(json.len() as u64, 0o644);
    tar.append_data(&mut h, format!("{top}/{MANIFEST}"), &json[..])?;
    for (rel, path) in files {
        let f = std::fs::File::open(path)?;
        let size = f.metadata()?.len();
        let mut h = header(size, 0o600);
        tar.append_data(&mut h, format!("{top}/{rel}"), f)?;
    }
    let seal = format!("{}\n", sha256_hex(&json));
    let mut h = header(seal.len() as u64, 0o644);
    tar.append_data(&mut h, format!("{top}/{SEAL}"), seal.as_bytes())?;
    tar.into_inner()
}

/// Reads and checks a whole archive; `sink(rel, bytes)` receives each entry's content in
/// pieces as it is read (e.g. to spool it to a directory) — only after `read` returned `Ok`
/// is any of it trustworthy. Returns the manifest.
pub fn read<R: Read>(
    input: R,
    mut sink: impl FnMut(&str, &[u8]) -> io::Result<()>,
) -> Result<Manifest, ArchiveError> {
    let unreadable = |e: io::Error| ArchiveError::Unreadable(e.to_string());
    let mut archive = tar::Archive::new(input);
    let mut entries = archive.entries().map_err(unreadable)?;
    let first = match entries.next() {
        Some(e) => e.map_err(unreadable)?,
        None => return Err(ArchiveError::Unreadable("it is empty".into())),
    };
    let (manifest, manifest_sha256) = read_manifest(first)?;
    let top = top_dir(&manifest.dtr_version);
    let mut seen = BTreeSet::new();
    let mut sealed = false;
    let mut buf = vec![0u8; 64 * 1024];
    for entry in entries {
        let mut entry = entry.map_err(unreadable)?;
        let raw = String::from_utf8_lossy(&entry.path_bytes()).to_string();
        let kind = entry.header().entry_type();
        if kind != tar::EntryType::Regular {
            return Err(ArchiveError::NotAFile {
                path: raw,
                kind: format!("{kind:?}"),
            });
        }
        if raw == format!("{top}/{SEAL}") {
            if sealed {
                return Err(ArchiveError::Duplicate { path: SEAL.into() });
            }
            missing(&manifest, &seen)?;
            let mut got = Vec::new();
            (&mut entry)
                .take(128)
                .read_to_end(&mut got)
                .map_err(unreadable)?;
            if (got.len() as u64) < entry.header().size().map_err(unreadable)?.min(128) {
                return Err(cut_short(SEAL));
            }
            if got != format!("{manifest_sha256}\n").as_bytes() {
                return Err(ArchiveError::ManifestChecksum);
            }
            sealed = true;
            continue;
        }
        let rel = match raw.strip_prefix(&format!("{top}/")) {
            Some(rel) if in_layout(rel) => rel.to_string(),
            _ => return Err(ArchiveError::OutsideLayout { path: raw }),
        };
        if !seen.insert(rel.clone()) {
            return Err(ArchiveError::Duplicate { path: rel });
        }
        let Some(meta) = manifest.entries.iter().find(|m| m.path == rel) else {
            return Err(ArchiveError::Unlisted { path: rel });
        };
        let declared = entry.header().size().map_err(unreadable)?;
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        loop {
            let n = entry.read(&mut buf).map_err(unreadable)?;
            if n == 0 {
                break;
            }
            size += n as u64;
            if size > meta.size {
                return Err(ArchiveError::Size {
                    path: rel,
                    found: size,
                    expected: meta.size,
                });
            }
            hasher.update(&buf[..n]);
            sink(&rel, &buf[..n]).map_err(unreadable)?;
        }
        if size < declared {
            return Err(cut_short(&rel));
        }
        if size != meta.size {
            return Err(ArchiveError::Size {
                path: rel,
                found: size,
                expected: meta.size,
            });
        }
        if hex::encode(hasher.finalize()) != meta.sha256 {
            return Err(ArchiveError::Checksum { path: rel });
        }
    }
    missing(&manifest, &seen)?;
    if !sealed {
        return Err(ArchiveError::Unsealed);
    }
    Ok(manifest)
}

fn cut_short(entry: &str) -> ArchiveError {
    ArchiveError::Unreadable(format!("it ends inside {entry}, cut short"))
}

/// Every entry the manifest lists has been read.
fn missing(manifest: &Manifest, seen: &BTreeSet<String>) -> Result<(), ArchiveError> {
    let missing: Vec<String> = manifest
        .entries
        .iter()
        .filter(|m| !seen.contains(&m.path))
        .map(|m| m.path.clone())
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(ArchiveError::Missing(missing))
    }
}

/// The manifest and the SHA-256 of its bytes (checked against the seal at the end).
fn read_manifest<R: Read>(
    mut entry: tar::Entry<'_, R>,
) -> Result<(Manifest, String), ArchiveError> {
    let raw = String::from_utf8_lossy(&entry.path_bytes()).to_string();
    let is_manifest = raw.ends_with(&format!("/{MANIFEST}"))
        && raw.starts_with("dtr-backup-v")
        && raw.matches('/').count() == 1;
    if !is_manifest || entry.header().entry_type() != tar::EntryType::Regular {
        return Err(ArchiveError::NoManifestFirst {
            found: raw,
            expected: format!("dtr-backup-v<version>/{MANIFEST}"),
        });
    }
    let declared = entry
        .header()
        .size()
        .map_err(|e| ArchiveError::Unreadable(e.to_string()))?;
    if declared > MANIFEST_LIMIT {
        return Err(ArchiveError::BadManifest("larger than 1 MiB".into()));
    }
    let mut json = Vec::new();
    (&mut entry)
        .take(MANIFEST_LIMIT + 1)
        .read_to_end(&mut json)
        .map_err(|e| ArchiveError::Unreadable(e.to_string()))?;
    if (json.len() as u64) < declared {
        return Err(cut_short(MANIFEST));
    }
    // the format number first, so that a future format is named as such
    let format = serde_json::from_slice::<serde_json::Value>(&json)
        .map_err(|e| ArchiveError::BadManifest(e.to_string()))?["format"]
        .as_u64()
        .ok_or_else(|| ArchiveError::BadManifest("no format number".into()))?;
    if format != u64::from(FORMAT) {
        return Err(ArchiveError::Format {
            found: format.min(u64::from(u32::MAX)) as u32,
        });
    }
    let m: Manifest =
        serde_json::from_slice(&json).map_err(|e| ArchiveError::BadManifest(e.to_string()))?;
    if raw != format!("{}/{MANIFEST}", top_dir(&m.dtr_version)) {
        return Err(ArchiveError::BadManifest(format!(
            "it sits in {raw:?} but names version {}",
            m.dtr_version
        )));
    }
    if semver::Version::parse(&m.dtr_version).is_err() {
        return Err(ArchiveError::BadManifest(format!(
            "dtr_version {:?} is not a version",
            m.dtr_version
        )));
    }
    let mut paths = BTreeSet::new();
    for e in &m.entries {
        if !in_layout(&e.path) {
            return Err(ArchiveError::BadManifest(format!(
                "it lists {:?}, outside the layout",
                e.path
            )));
        }
        if !paths.insert(&e.path) {
            return Err(ArchiveError::BadManifest(format!(
                "it lists {:?} twice",
                e.path
            )));
        }
        if e.sha256.len() != 64
            || !e
                .sha256
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        {
            return Err(ArchiveError::BadManifest(format!(
                "the SHA-256 of {:?} is not 64 lower-case hex digits",
                e.path
            )));
        }
    }
    Ok((m, sha256_hex(&json)))
}

/// The version rule of restore: the same major.minor as this dtr; another patch only when the
/// user allows it (then `Ok(Some(warning))`).
pub fn check_version(
    archive: &str,
    ours: &str,
    allow_other_patch: bool,
) -> Result<Option<String>, String> {
    let parse =
        |v: &str| semver::Version::parse(v).map_err(|e| format!("{v:?} is not a version: {e}"));
    let (a, o) = (parse(archive)?, parse(ours)?);
    if (a.major, a.minor) != (o.major, o.minor) {
        return Err(format!(
            "the backup was made by dtr {a}; this is dtr {o}: restore it with a {}.{} bootstrapper (registry/dtr:{a})",
            a.major, a.minor
        ));
    }
    if a == o {
        return Ok(None);
    }
    if allow_other_patch {
        Ok(Some(format!(
            "restoring a backup of dtr {a} with dtr {o} (another patch release, allowed by the flag)"
        )))
    } else {
        Err(format!(
            "the backup was made by dtr {a}; this is dtr {o}: use registry/dtr:{a}, or allow another patch release explicitly"
        ))
    }
}

/// A manifest for `entries` made now.
pub fn manifest(
    dtr_version: &str,
    replica_id: &str,
    created_at: String,
    entries: Vec<EntryMeta>,
) -> Manifest {
    Manifest {
        format: FORMAT,
        dtr_version: dtr_version.to_string(),
        replica_id: replica_id.to_string(),
        created_at,
        entries,
    }
}

#[doc(hidden)]
pub fn sha256_of(data: &[u8]) -> String {
    sha256_hex(data)
}

#[cfg(test)]
mod tests;
