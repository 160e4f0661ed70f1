//! `dtr images` (the list), `dtr images save` and `dtr images load` at the terminal: where the
//! archive goes or comes from; the work is in `ops::offline`.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use super::args::{ImagesAction, ImagesArgs};
use dtr_bootstrap::engine::Target;
use dtr_bootstrap::error::{Error, Result};
use dtr_bootstrap::report::Reporter;
use dtr_core::version::VERSION;

pub fn run(a: ImagesArgs, target: &Target, reporter: &Reporter) -> Result<()> {
    match a.action {
        None => {
            // a closed pipe (`dtr images | head -1`) is not an error
            let mut stdout = std::io::stdout().lock();
            for image in dtr_core::version::all_images() {
                if writeln!(stdout, "{image}").is_err() {
                    break;
                }
            }
            let _ = stdout.flush();
            Ok(())
        }
        Some(ImagesAction::Save { output }) => save(output, target, reporter),
        Some(ImagesAction::Load { input }) => load(input, target, reporter),
    }
}

/// Runs an operation, Ctrl-C/SIGTERM ending it (its temporary directory is removed); a thread
/// still blocked on stdin or stdout is not waited for.
fn block_on<T>(work: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    super::block_on_detached(dtr_bootstrap::ops::interruptible(work))
}

fn save(output: Option<PathBuf>, target: &Target, reporter: &Reporter) -> Result<()> {
    let result = match &output {
        None => {
            if std::io::stdout().is_terminal() {
                return Err(Error::Input(dtr_core::InputError::InvalidValue {
                    flag: "stdout",
                    value: "(a terminal)".into(),
                    reason: format!(
                        "the bundle is a tar archive of several GB written to stdout: redirect it, e.g. `dtr images save > dtr-offline-{VERSION}.tar`, or `docker run -i --rm --log-driver none -v /var/run/docker.sock:/var/run/docker.sock registry/dtr:{VERSION} images save > dtr-offline-{VERSION}.tar`, or give --output"
                    ),
                }));
            }
            let out = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout());
            block_on(dtr_bootstrap::ops::offline::save(target, out, reporter))
                .map(|(report, _)| report)?
        }
        Some(path) => {
            // written beside the target and renamed at the end: the file is complete or absent
            let dir = match path.parent() {
                Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                _ => PathBuf::from("."),
            };
            let partial = tempfile::Builder::new()
                .prefix(".dtr-images-save-")
                .suffix(".partial")
                .tempfile_in(&dir)
                .map_err(|e| Error::io(format!("create a file in {}", dir.display()), e))?;
            let out = std::io::BufWriter::with_capacity(1 << 20, partial);
            let (report, out) = block_on(dtr_bootstrap::ops::offline::save(target, out, reporter))?;
            let file = out
                .into_inner()
                .map_err(|e| Error::io(format!("write {}", path.display()), e.into_error()))?;
            file.as_file()
                .sync_all()
                .map_err(|e| Error::io(format!("write {}", path.display()), e))?;
            persist(file, path)?;
            report
        }
    };
    let _ = std::io::stdout().flush();
    reporter.info(format!(
        "The bundle of dtr {VERSION} is complete ({:.1}s): {} images, {} files and dtr-bundle.json, {:.1} MB{}",
        reporter.elapsed().as_secs_f64(),
        result.manifest.images.len(),
        result.manifest.files.len(),
        result.written.bytes as f64 / 1e6,
        output
            .as_ref()
            .map(|p| format!(", in {}", p.display()))
            .unwrap_or_default()
    ));
    reporter.info(format!(
        "On the node without network: dtr images load --input <this file> (dtr {VERSION}); `docker load -i` reads it too"
    ));
    Ok(())
}

fn persist(file: tempfile::NamedTempFile, path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    // a bundle holds nothing secret: readable like any file the user makes
    let _ = std::fs::set_permissions(file.path(), std::fs::Permissions::from_mode(0o644));
    file.persist(path)
        .map(|_| ())
        .map_err(|e| Error::io(format!("write {}", path.display()), e.error))
}

fn load(input: Option<PathBuf>, target: &Target, reporter: &Reporter) -> Result<()> {
    let report = match input {
        None => {
            if std::io::stdin().is_terminal() {
                return Err(Error::Input(dtr_core::InputError::InvalidValue {
                    flag: "stdin",
                    value: "(a terminal)".into(),
                    reason: format!(
                        "give the bundle: dtr images load --input dtr-offline-{VERSION}.tar, or dtr images load < dtr-offline-{VERSION}.tar"
                    ),
                }));
            }
            block_on(dtr_bootstrap::ops::offline::load(
                target,
                std::io::stdin(),
                reporter,
            ))?
        }
        Some(path) => {
            let file = std::fs::File::open(&path).map_err(|e| {
                Error::Input(dtr_core::InputError::InvalidValue {
                    flag: "--input",
                    value: path.display().to_string(),
                    reason: e.to_string(),
                })
            })?;
            block_on(dtr_bootstrap::ops::offline::load(target, file, reporter))?
        }
    };
    let mut stdout = std::io::stdout().lock();
    for image in &report.manifest.images {
        let what = if report.loaded {
            "Loaded image"
        } else {
            "Already present"
        };
        let _ = writeln!(stdout, "{what}: {} ({})", image.reference, image.id);
    }
    let _ = stdout.flush();
    reporter.info(format!(
        "The images of dtr {} are on this engine ({:.1}s){}",
        report.manifest.dtr_version,
        reporter.elapsed().as_secs_f64(),
        if report.loaded {
            ""
        } else {
            "; nothing had to be loaded"
        }
    ));
    for m in &report.messages {
        reporter.debug(format!("engine: {m}"));
    }
    Ok(())
}
