//! The offline image bundle on the real engine: `images save` from the bootstrapper image (as
//! an operator runs it on a connected machine), the nine references of this version removed,
//! a tampered copy refused with nothing loaded, `images load` of the bundle giving back the
//! same image IDs, and a single-replica install from the loaded images.
//!
//! This test removes this version's image references (`registry/dtr*:<version>`, only those)
//! from the engine. A guard loads the saved bundle back with `docker load -i` if the test ends
//! between the removal and the load; the bundle lives at a fixed path
//! (`/tmp/dtr-offline-test/bundle.tar`) so that a run killed outright is repaired by the next
//! one, or by hand with the same `docker load -i`.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::common::http::Request;
use crate::common::*;
use dtr_core::version::{all_images, VERSION};

const WORK: &str = "/tmp/dtr-offline-test";

fn image_id(reference: &str) -> Option<String> {
    let out = docker(&["image", "inspect", "-f", "{{.Id}}", reference]);
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn missing_images() -> Vec<String> {
    all_images()
        .into_iter()
        .filter(|i| image_id(i).is_none())
        .collect()
}

/// Loads the bundle back when this version's images are missing, then removes the work
/// directory (kept when the images could not be restored: it is the way back).
struct ImagesBack {
    archive: PathBuf,
}

impl Drop for ImagesBack {
    fn drop(&mut self) {
        let missing = missing_images();
        if !missing.is_empty() {
            eprintln!(
                "restoring {} with docker load -i {}",
                missing.join(", "),
                self.archive.display()
            );
            let out = docker(&["load", "-i", &self.archive.to_string_lossy()]);
            eprintln!("{}", text(&out));
        }
        if missing_images().is_empty() {
            let _ = std::fs::remove_dir_all(WORK);
        } else {
            eprintln!(
                "THE IMAGES OF {VERSION} ARE MISSING: docker load -i {}",
                self.archive.display()
            );
        }
    }
}

/// A run killed between removing the images and loading them back left the bundle: use it.
fn repair_an_earlier_run(archive: &Path) {
    if archive.exists() && !missing_images().is_empty() {
        eprintln!(
            "an earlier run left the images missing: docker load -i {}",
            archive.display()
        );
        docker_ok(&["load", "-i", &archive.to_string_lossy()]);
    }
}

/// `dtr-bundle.json`, the first entry of the archive.
fn bundle_manifest(archive: &Path) -> serde_json::Value {
    let mut tar = tar::Archive::new(std::fs::File::open(archive).unwrap());
    let mut first = tar.entries().unwrap().next().unwrap().unwrap();
    assert_eq!(first.path().unwrap().to_str(), Some("dtr-bundle.json"));
    let mut json = String::new();
    first.read_to_string(&mut json).unwrap();
    serde_json::from_str(&json).unwrap()
}

/// The largest entry (a layer) and where its content lies in the archive.
fn largest_entry(archive: &Path) -> (String, u64, u64) {
    let mut tar = tar::Archive::new(std::fs::File::open(archive).unwrap());
    tar.entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.path().unwrap().to_string_lossy().to_string(),
                e.raw_file_position(),
                e.size(),
            )
        })
        .max_by_key(|(_, _, size)| *size)
        .unwrap()
}

#[test]
fn a_saved_bundle_loads_on_an_engine_without_the_images_then_installs() {
    let Some(_engine) = engine() else { return };
    let work = Path::new(WORK);
    let archive = work.join("bundle.tar");
    repair_an_earlier_run(&archive);
    assert_eq!(
        missing_images(),
        Vec::<String>::new(),
        "the images of {VERSION} are needed (scripts/build-images.sh)"
    );
    std::fs::create_dir_all(work).unwrap();
    let before: Vec<(String, String)> = all_images()
        .into_iter()
        .map(|i| {
            let id = image_id(&i).unwrap();
            (i, id)
        })
        .collect();

    // on the connected machine: the bootstrapper image writes the bundle to stdout
    let started = Instant::now();
    let out = Command::new("docker")
        .args(["run", "-i", "--rm", "--log-driver", "none"])
        .args(["-v", "/var/run/docker.sock:/var/run/docker.sock"])
        .arg(format!("registry/dtr:{VERSION}"))
        .args(["images", "save"])
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&archive).unwrap())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let save_secs = started.elapsed().as_secs_f64();
    assert!(out.status.success(), "images save failed:\n{}", text(&out));
    let size = std::fs::metadata(&archive).unwrap().len();
    eprintln!("saved {size} bytes in {save_secs:.1}s");
    let guard = ImagesBack {
        archive: archive.clone(),
    };

    // the bundle names every image with the ID the engine has
    let manifest = bundle_manifest(&archive);
    assert_eq!(manifest["format"], 1);
    assert_eq!(manifest["dtr_version"], VERSION);
    let listed: Vec<(String, String)> = manifest["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["reference"].as_str().unwrap().to_string(),
                i["id"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(listed, before);

    // a copy with one byte flipped inside the largest layer
    let tampered = work.join("tampered.tar");
    std::fs::copy(&archive, &tampered).unwrap();
    let (layer, start, len) = largest_entry(&archive);
    {
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&tampered)
            .unwrap();
        let at = start + len / 2;
        let mut byte = [0u8];
        f.seek(SeekFrom::Start(at)).unwrap();
        f.read_exact(&mut byte).unwrap();
        f.seek(SeekFrom::Start(at)).unwrap();
        f.write_all(&[byte[0] ^ 0x01]).unwrap();
    }

    // the node without the images: this version's references removed (only those)
    let refs = all_images();
    let mut rmi = vec!["rmi"];
    rmi.extend(refs.iter().map(String::as_str));
    docker_ok(&rmi);
    assert_eq!(missing_images(), refs);

    // the tampered copy is refused, exit 7, before anything is loaded
    let out = dtr(
        &["images", "load", "--input", &tampered.to_string_lossy()],
        &[],
    );
    let log = text(&out);
    assert_eq!(out.status.code(), Some(7), "{log}");
    assert!(log.contains("refused") && log.contains(&layer), "{log}");
    assert_eq!(missing_images(), refs, "nothing was loaded");
    std::fs::remove_file(&tampered).unwrap();

    // the bundle loads, and every reference has its old ID back
    let started = Instant::now();
    let out = dtr(
        &["images", "load", "--input", &archive.to_string_lossy()],
        &[],
    );
    let load_secs = started.elapsed().as_secs_f64();
    let log = text(&out);
    assert!(out.status.success(), "images load failed:\n{log}");
    eprintln!("loaded in {load_secs:.1}s:\n{log}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    for (reference, id) in &before {
        assert!(
            stdout.contains(&format!("Loaded image: {reference} ({id})")),
            "{stdout}"
        );
        assert_eq!(image_id(reference).as_ref(), Some(id), "{reference}");
    }

    // loading again: nothing to do
    let out = dtr(
        &["images", "load", "--input", &archive.to_string_lossy()],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("Already present: "));

    // docker's own loader reads the bundle too
    docker_ok(&["load", "-i", &archive.to_string_lossy()]);

    // a replica installs from the loaded images and serves /_ping
    let r = TestReplica::new();
    let out = r.install(&[]);
    assert!(out.status.success(), "install failed:\n{}", text(&out));
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, r.external_ca()).unwrap();
    let ping = Request::get(format!("https://127.0.0.1:{}/_ping", r.https_port))
        .ca(&ca)
        .send();
    assert_eq!(ping.status, 200, "{ping}");
    r.destroy();
    drop(guard);
    assert!(!archive.exists(), "the bundle is removed at the end");
}
