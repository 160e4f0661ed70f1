//! The offline image bundle (`dtr images save` / `dtr images load`): every image of one
//! version in one tar archive that is a valid `docker save` archive, plus `dtr-bundle.json`.
//!
//! Layout (format 1):
//!
//! ```text
//! dtr-bundle.json             first entry: format, dtr version, images (reference → image ID),
//!                             the directories, and every file with its size and SHA-256
//! <entries of `docker save`>  as the engine wrote them, in its order; a symbolic link the
//!                             engine wrote (Docker 20.10 links a layer that recurs in another
//!                             chain) is replaced by a copy of the file it points to
//! ```
//!
//! `dtr-bundle.json` comes first because the writer has the whole `docker save` archive in a
//! private temporary directory before it writes anything (it must hash every entry): a reader
//! can then refuse a bundle of another version, an unlisted entry or a wrong size as soon as it
//! meets it, instead of after reading gigabytes.
//!
//! Pure: no engine. [`Store`] spools a tar stream into files of a directory the caller owns,
//! hashing each entry; [`check`] holds every check; [`write_bundle`] and [`write_docker_save`]
//! write archives out of a store.

pub mod check;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use check::{check_docker_save, read_bundle};

/// The name of the bundle's own manifest.
pub const MANIFEST: &str = "dtr-bundle.json";

/// The bundle format this version writes and reads.
pub const FORMAT: u32 = 1;

/// The most a JSON file of the archive (dtr-bundle.json, manifest.json, an image config) may
/// weigh: they are read into memory.
pub const MAX_JSON: u64 = 16 << 20;

/// Why a bundle (or the engine's `docker save` archive) cannot be used, or a local I/O failure.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// The archive is refused; the reason names the entry or the image.
    #[error("{0}")]
    Refused(String),
    /// Writing the temporary directory or the output failed (not the archive's fault).
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

pub(crate) fn refused(reason: impl Into<String>) -> BundleError {
    BundleError::Refused(reason.into())
}

fn io_error(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> BundleError {
    let context = context.into();
    move |source| BundleError::Io { context, source }
}

/// `dtr-bundle.json`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct BundleManifest {
    pub format: u32,
    pub dtr_version: String,
    /// RFC 3339 UTC; informational.
    pub created_at: String,
    /// Every image of the version, in `dtr images` order.
    pub images: Vec<ImageRecord>,
    /// Directory entries of the archive.
    pub directories: Vec<String>,
    /// Every other entry of the archive (this file excepted).
    pub files: Vec<FileRecord>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ImageRecord {
    /// `registry/dtr-api:0.1.0`
    pub reference: String,
    /// `sha256:<hex>`: the SHA-256 of the image's config, as `docker image inspect` shows it.
    pub id: String,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct FileRecord {
    pub path: String,
    pub size: u64,
    /// lowercase hex
    pub sha256: String,
}

/// What a stored entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File {
        size: u64,
        sha256: String,
        /// Where its content is, inside the store's directory.
        stored: PathBuf,
    },
    /// Only from the engine's own `docker save` ([`Links::Resolve`]); never in a bundle.
    Symlink {
        target: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Normalised: relative, `/`-separated, no trailing `/`.
    pub path: String,
    pub mode: u32,
    pub mtime: u64,
    pub kind: Kind,
}

/// Whether symbolic links are accepted while spooling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Links {
    /// The engine's own archive: kept, resolved to the file they name when written out.
    Resolve,
    /// A bundle from elsewhere: refused.
    Refuse,
}

/// The entries of a tar archive, each file's content in its own file of `dir` (named by its
/// position, never by its path), with its size and SHA-256.
#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
    entries: Vec<Entry>,
    index: HashMap<String, usize>,
}

impl Store {
    /// An empty store writing into `dir` (which the caller made private and removes).
    pub fn new(dir: &Path) -> Store {
        Store {
            dir: dir.to_path_buf(),
            entries: Vec::new(),
            index: HashMap::new(),
        }
    }

    /// Every entry of a tar stream: the engine's `docker save` output.
    pub fn spool(input: impl Read, dir: &Path, links: Links) -> Result<Store, BundleError> {
        let mut store = Store::new(dir);
        let mut archive = tar::Archive::new(input);
        let entries = archive.entries().map_err(damaged)?;
        for entry in entries {
            let entry = entry.map_err(damaged)?;
            store.add(entry, links, |_, _| Ok(()))?;
        }
        Ok(store)
    }

    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    pub fn get(&self, path: &str) -> Option<&Entry> {
        self.index.get(path).map(|i| &self.entries[*i])
    }

    /// Adds one tar entry: its path and type checked, its content copied and hashed.
    /// `expect(path, header size)` may refuse the entry before its content is read.
    pub(crate) fn add<R: Read>(
        &mut self,
        mut entry: tar::Entry<'_, R>,
        links: Links,
        expect: impl FnOnce(&str, Option<u64>) -> Result<(), BundleError>,
    ) -> Result<&Entry, BundleError> {
        let raw = {
            let bytes = entry.path_bytes();
            std::str::from_utf8(&bytes)
                .map_err(|_| refused("an entry's name is not UTF-8"))?
                .to_string()
        };
        let path = check::safe_path(&raw)?;
        if self.index.contains_key(&path) {
            return Err(refused(format!("entry {path} appears twice")));
        }
        let header = entry.header();
        let mode = header.mode().unwrap_or(0o644) & 0o7777;
        let mtime = header.mtime().unwrap_or(0);
        let size = header.size().map_err(damaged)?;
        let typ = header.entry_type();
        let kind = match typ {
            tar::EntryType::Directory => {
                expect(&path, None)?;
                Kind::Dir
            }
            tar::EntryType::Regular => {
                expect(&path, Some(size))?;
                let stored = self.dir.join(format!("{}", self.entries.len()));
                let sha256 = copy_hashed(&mut entry, &stored, size, &path)?;
                Kind::File {
                    size,
                    sha256,
                    stored,
                }
            }
            tar::EntryType::Symlink if links == Links::Resolve => {
                let target = entry
                    .link_name_bytes()
                    .and_then(|t| std::str::from_utf8(&t).ok().map(String::from))
                    .ok_or_else(|| refused(format!("symbolic link {path} has no usable target")))?;
                Kind::Symlink { target }
            }
            tar::EntryType::Symlink => {
                return Err(refused(format!(
                    "entry {path} is a symbolic link (a bundle holds only files and directories)"
                )))
            }
            tar::EntryType::Link => {
                return Err(refused(format!(
                    "entry {path} is a hard link (a bundle holds only files and directories)"
                )))
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                return Err(refused(format!(
                    "entry {path} is a device or a pipe (a bundle holds only files and directories)"
                )))
            }
            other => {
                return Err(refused(format!(
                    "entry {path} has the unsupported tar type {:?}",
                    other.as_byte() as char
                )))
            }
        };
        self.index.insert(path.clone(), self.entries.len());
        self.entries.push(Entry {
            path,
            mode,
            mtime,
            kind,
        });
        Ok(self.entries.last().expect("just pushed"))
    }

    /// The file an entry's path names, following the engine's symbolic links (inside the
    /// archive only, at most 8 of them).
    pub fn file(&self, path: &str) -> Option<(&Entry, u64, &str, &Path)> {
        let mut path = path.to_string();
        for _ in 0..8 {
            let entry = self.get(&path)?;
            match &entry.kind {
                Kind::File {
                    size,
                    sha256,
                    stored,
                } => return Some((entry, *size, sha256, stored)),
                Kind::Dir => return None,
                Kind::Symlink { target } => path = resolve_link(&entry.path, target)?,
            }
        }
        None
    }

    /// The content of a small file (JSON), at most [`MAX_JSON`] bytes.
    pub fn read_small(&self, path: &str) -> Result<Vec<u8>, BundleError> {
        let (_, size, _, stored) = self
            .file(path)
            .ok_or_else(|| refused(format!("{path} is missing")))?;
        if size > MAX_JSON {
            return Err(refused(format!(
                "{path} is {size} bytes, more than the {MAX_JSON} a JSON file of a bundle may have"
            )));
        }
        std::fs::read(stored).map_err(io_error(format!("read {}", stored.display())))
    }
}

/// A symlink target, resolved against the link's directory, lexically, inside the archive.
fn resolve_link(link: &str, target: &str) -> Option<String> {
    if target.starts_with('/') {
        return None;
    }
    let mut parts: Vec<&str> = link.split('/').collect();
    parts.pop();
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            p => parts.push(p),
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

/// Reading the archive failed: it is damaged or ends early.
pub(crate) fn damaged(e: std::io::Error) -> BundleError {
    refused(format!("the archive is damaged or truncated: {e}"))
}

/// Copies exactly `size` bytes of `from` into a new file `to`; their SHA-256 in hex.
fn copy_hashed(
    from: &mut impl Read,
    to: &Path,
    size: u64,
    name: &str,
) -> Result<String, BundleError> {
    let mut out =
        std::fs::File::create(to).map_err(io_error(format!("create {}", to.display())))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut copied = 0u64;
    loop {
        let n = from.read(&mut buf).map_err(damaged)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n])
            .map_err(io_error(format!("write {}", to.display())))?;
        copied += n as u64;
    }
    if copied != size {
        return Err(refused(format!(
            "the archive is truncated: entry {name} has {copied} of its {size} bytes"
        )));
    }
    Ok(hex::encode(hasher.finalize()))
}

/// SHA-256 of a byte string, in hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Sizes of what was written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Written {
    pub files: usize,
    /// Bytes of file content (headers excepted).
    pub bytes: u64,
}

fn append_file(
    builder: &mut tar::Builder<impl Write>,
    path: &str,
    mode: u32,
    mtime: u64,
    size: u64,
    content: impl Read,
) -> Result<(), BundleError> {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_size(size);
    header.set_mode(mode);
    header.set_mtime(mtime);
    builder
        .append_data(&mut header, path, content)
        .map_err(io_error(format!("write entry {path}")))
}

/// Writes the store's entries in their order (symbolic links replaced by the file they name);
/// with `skip` the entry of that name is left out. Returns the directories and the files.
fn write_entries(
    builder: &mut tar::Builder<impl Write>,
    store: &Store,
    skip: Option<&str>,
) -> Result<(Vec<String>, Vec<FileRecord>), BundleError> {
    let mut dirs = Vec::new();
    let mut files = Vec::new();
    for entry in store.entries() {
        if Some(entry.path.as_str()) == skip {
            continue;
        }
        if entry.kind == Kind::Dir {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(tar::EntryType::Directory);
            header.set_size(0);
            header.set_mode(entry.mode);
            header.set_mtime(entry.mtime);
            builder
                .append_data(&mut header, &entry.path, std::io::empty())
                .map_err(io_error(format!("write entry {}", entry.path)))?;
            dirs.push(entry.path.clone());
            continue;
        }
        let (_, size, sha256, stored) = store.file(&entry.path).ok_or_else(|| {
            refused(format!(
                "{} is a symbolic link to nothing inside the archive",
                entry.path
            ))
        })?;
        let content =
            std::fs::File::open(stored).map_err(io_error(format!("open {}", stored.display())))?;
        let mode = if matches!(entry.kind, Kind::Symlink { .. }) {
            0o644
        } else {
            entry.mode
        };
        append_file(builder, &entry.path, mode, entry.mtime, size, content)?;
        files.push(FileRecord {
            path: entry.path.clone(),
            size,
            sha256: sha256.to_string(),
        });
    }
    Ok((dirs, files))
}

/// Writes the bundle: `dtr-bundle.json` first, then the store's entries (the engine's
/// `docker save` archive, checked by [`check_docker_save`], which gave `images`).
pub fn write_bundle<W: Write>(
    store: &Store,
    images: Vec<ImageRecord>,
    dtr_version: &str,
    created_at: &str,
    out: W,
) -> Result<(BundleManifest, Written, W), BundleError> {
    if store.get(MANIFEST).is_some() {
        return Err(refused(format!(
            "the engine's archive already has a {MANIFEST}"
        )));
    }
    // The listing is known before anything is written: every entry was hashed while spooled.
    let mut dirs = Vec::new();
    let mut files = Vec::new();
    for entry in store.entries() {
        match &entry.kind {
            Kind::Dir => dirs.push(entry.path.clone()),
            _ => {
                let (_, size, sha256, _) = store.file(&entry.path).ok_or_else(|| {
                    refused(format!(
                        "{} is a symbolic link to nothing inside the archive",
                        entry.path
                    ))
                })?;
                files.push(FileRecord {
                    path: entry.path.clone(),
                    size,
                    sha256: sha256.to_string(),
                });
            }
        }
    }
    let manifest = BundleManifest {
        format: FORMAT,
        dtr_version: dtr_version.to_string(),
        created_at: created_at.to_string(),
        images,
        directories: dirs,
        files,
    };
    let json = serde_json::to_vec_pretty(&manifest).expect("serialisable");
    let mut builder = tar::Builder::new(out);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    append_file(
        &mut builder,
        MANIFEST,
        0o644,
        now,
        json.len() as u64,
        &json[..],
    )?;
    let (dirs, files) = write_entries(&mut builder, store, None)?;
    debug_assert_eq!(dirs, manifest.directories);
    debug_assert_eq!(files, manifest.files);
    let written = Written {
        files: files.len() + 1,
        bytes: files.iter().map(|f| f.size).sum::<u64>() + json.len() as u64,
    };
    let mut out = builder
        .into_inner()
        .map_err(io_error("finish the archive"))?;
    out.flush().map_err(io_error("finish the archive"))?;
    Ok((manifest, written, out))
}

/// Writes the checked entries as a plain `docker save` archive (without `dtr-bundle.json`):
/// what the engine is given to load, built from the checked files rather than passed through.
pub fn write_docker_save<W: Write>(store: &Store, out: W) -> Result<(Written, W), BundleError> {
    let mut builder = tar::Builder::new(out);
    let (_, files) = write_entries(&mut builder, store, Some(MANIFEST))?;
    let mut out = builder
        .into_inner()
        .map_err(io_error("finish the archive"))?;
    out.flush().map_err(io_error("finish the archive"))?;
    Ok((
        Written {
            files: files.len(),
            bytes: files.iter().map(|f| f.size).sum(),
        },
        out,
    ))
}
