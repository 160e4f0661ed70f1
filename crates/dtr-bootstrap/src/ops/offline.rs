//! `dtr images save` and `dtr images load`: the images of this version as one checked archive
//! for nodes without network (format and checks in `crate::bundle`).
//!
//! Save: the engine's `docker save` of the nine images is spooled, entry by entry, into a
//! private temporary directory (hashing each entry), checked as a load would check it, then
//! written out with `dtr-bundle.json` first. Load: the archive is spooled the same way and
//! checked entirely before the engine is asked to load anything; the engine is then given a
//! `docker save` archive rebuilt from the checked files, and every reference must resolve to
//! the image ID the bundle names. Memory stays flat: files move in 256 KiB pieces.

use std::io::{Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;

use crate::bundle::{self, check, BundleError, BundleManifest, Links, Store, Written};
use crate::engine::{Engine, Target};
use crate::error::{Error, PreflightFailure, Result};
use crate::ops::steps;
use crate::report::{Reporter, Step};
use dtr_core::version::{all_images, VERSION};

/// What `save` wrote.
#[derive(Debug)]
pub struct SaveReport {
    pub manifest: BundleManifest,
    pub written: Written,
    /// Bytes of the engine's `docker save` stream.
    pub exported: u64,
}

/// What `load` did.
#[derive(Debug)]
pub struct LoadReport {
    pub manifest: BundleManifest,
    /// false: every image was already on the engine with the bundle's ID; nothing was loaded.
    pub loaded: bool,
    /// The engine's own messages (`Loaded image: ...`).
    pub messages: Vec<String>,
}

/// A failure of the engine's own archive, or of writing the bundle: exit 1.
fn save_failed(e: BundleError) -> Error {
    match e {
        BundleError::Refused(reason) => Error::io(
            "the engine's `docker save` archive cannot be bundled",
            std::io::Error::other(reason),
        ),
        BundleError::Io { context, source } => Error::Io { context, source },
    }
}

/// A refused bundle: exit 7, nothing was loaded.
fn load_refused(e: BundleError) -> Error {
    match e {
        BundleError::Refused(reason) => Error::BadBundle { reason },
        BundleError::Io { context, source } => Error::Io { context, source },
    }
}

fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

/// A blocking `Read` over chunks sent by the async side.
struct ChannelReader {
    rx: tokio::sync::mpsc::Receiver<Bytes>,
    current: Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(chunk) => self.current = chunk,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

/// A blocking `Write` that hands 256 KiB chunks to the async side.
struct ChannelWriter {
    tx: tokio::sync::mpsc::Sender<std::io::Result<Bytes>>,
    buf: Vec<u8>,
}

const CHUNK: usize = 256 * 1024;

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx.blocking_send(Ok(chunk)).map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::BrokenPipe,
                "the engine stopped reading the archive",
            )
        })
    }
}

/// Counts the bytes read or written through it (progress of a blocking worker).
struct Counting<T> {
    inner: T,
    count: Arc<AtomicU64>,
}

impl<T> Counting<T> {
    fn new(inner: T) -> (Counting<T>, Arc<AtomicU64>) {
        let count = Arc::new(AtomicU64::new(0));
        (
            Counting {
                inner,
                count: count.clone(),
            },
            count,
        )
    }
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Waits for a blocking worker, saying every second how many bytes it has moved.
async fn with_progress<T>(
    step: &Step<'_>,
    count: &AtomicU64,
    what: &str,
    work: impl std::future::Future<Output = T>,
) -> T {
    let started = Instant::now();
    tokio::pin!(work);
    loop {
        tokio::select! {
            done = &mut work => return done,
            _ = tokio::time::sleep(Duration::from_secs(1)) => step.waiting(
                started.elapsed(),
                &format!("{} {what}", mb(count.load(Ordering::Relaxed))),
            ),
        }
    }
}

/// `dtr images save`: the bundle of this version's images, written to `out` (which is given
/// back, flushed, for the caller to finish).
pub async fn save<W: Write + Send + 'static>(
    target: &Target,
    out: W,
    reporter: &Reporter,
) -> Result<(SaveReport, W)> {
    let engine = steps::connect(target, reporter).await?;
    let images = all_images();
    let ids = find_images(&engine, &images, reporter).await?;
    let dir = super::private_temp_dir("dtr-images-", "the image bundle")?;
    let (store, exported) = export_images(&engine, &images, dir.path(), reporter).await?;
    let records = check_export(&store, &images, &ids, reporter)?;
    let (manifest, written, out) = write_out(store, records, out, reporter).await?;
    drop(dir);
    Ok((
        SaveReport {
            manifest,
            written,
            exported,
        },
        out,
    ))
}

/// The image ID of each of this version's images; all must be on the engine.
async fn find_images(
    engine: &Engine,
    images: &[String],
    reporter: &Reporter,
) -> Result<Vec<String>> {
    let step = reporter.step("find the images of this version");
    let mut ids = Vec::new();
    let mut failures = Vec::new();
    for image in images {
        match engine.image_id(image).await? {
            Some(id) => ids.push(id),
            None => failures.push(PreflightFailure {
                check: "images",
                problem: format!("{image} is not on this engine"),
                fix: "build the images (scripts/build-images.sh) or load them, then save again"
                    .into(),
            }),
        }
    }
    if !failures.is_empty() {
        step.fail(format!(
            "{} of {} images missing",
            failures.len(),
            images.len()
        ));
        return Err(Error::Preflight { failures });
    }
    step.done(format!("{} images", images.len()));
    Ok(ids)
}

/// The engine's `docker save` of the images, spooled into `dir`; and how many bytes it sent.
async fn export_images(
    engine: &Engine,
    images: &[String],
    dir: &std::path::Path,
    reporter: &Reporter,
) -> Result<(Store, u64)> {
    let step = reporter.step(format!(
        "export the images from the engine into {}",
        dir.display()
    ));
    let started = Instant::now();
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(16);
    let spool_dir = dir.to_path_buf();
    let spool = tokio::task::spawn_blocking(move || {
        Store::spool(
            std::io::BufReader::with_capacity(
                CHUNK,
                ChannelReader {
                    rx,
                    current: Bytes::new(),
                },
            ),
            &spool_dir,
            Links::Resolve,
        )
    });
    let mut stream = Box::pin(engine.export_images(images));
    let mut exported = 0u64;
    let mut pumped = Ok(());
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(chunk) => {
                exported += chunk.len() as u64;
                step.waiting(started.elapsed(), &format!("{} received", mb(exported)));
                if tx.send(chunk).await.is_err() {
                    break; // the spool stopped: its error says why
                }
            }
            Err(e) => {
                pumped = Err(e);
                break;
            }
        }
    }
    drop(tx);
    let spooled = spool.await.expect("the spool thread does not panic");
    pumped?;
    let store = spooled.map_err(save_failed)?;
    step.done(format!(
        "{} in {} entries",
        mb(exported),
        store.entries().len()
    ));
    Ok((store, exported))
}

/// Every image is in the engine's archive, with the ID its tag resolves to, and every config
/// and layer matches its digest.
fn check_export(
    store: &Store,
    images: &[String],
    ids: &[String],
    reporter: &Reporter,
) -> Result<Vec<bundle::ImageRecord>> {
    let step = reporter.step("check the engine's archive");
    let records = bundle::check_docker_save(store, images).map_err(save_failed)?;
    for (record, id) in records.iter().zip(ids) {
        if record.id != *id {
            return Err(Error::io(
                format!("the engine's archive of {}", record.reference),
                std::io::Error::other(format!(
                    "it holds image {}, but the tag resolves to {} (was it rebuilt during the save?); save again",
                    record.id, id
                )),
            ));
        }
    }
    step.done("every image is there; every config and layer matches its digest");
    Ok(records)
}

/// `dtr-bundle.json` first, then the archive's files, into `out`.
async fn write_out<W: Write + Send + 'static>(
    store: Store,
    records: Vec<bundle::ImageRecord>,
    out: W,
    reporter: &Reporter,
) -> Result<(BundleManifest, Written, W)> {
    let step = reporter.step("write the bundle");
    let created = dtr_core::timestamp();
    let (out, count) = Counting::new(out);
    let writer = tokio::task::spawn_blocking(move || {
        bundle::write_bundle(&store, records, VERSION, &created, out)
    });
    let (manifest, written, out) = with_progress(&step, &count, "written", writer)
        .await
        .expect("the writer thread does not panic")
        .map_err(save_failed)?;
    step.done(format!(
        "dtr-bundle.json and {} files, {}",
        manifest.files.len(),
        mb(written.bytes)
    ));
    Ok((manifest, written, out.inner))
}

/// `dtr images load`: reads and checks the whole bundle, then loads it and checks that every
/// reference resolves to the bundle's image ID.
pub async fn load<R: Read + Send + 'static>(
    target: &Target,
    input: R,
    reporter: &Reporter,
) -> Result<LoadReport> {
    let engine = steps::connect(target, reporter).await?;
    let dir = super::private_temp_dir("dtr-images-", "the image bundle")?;
    let (manifest, store) = read_and_check(input, dir.path(), reporter).await?;
    if already_loaded(&engine, &manifest, reporter).await? {
        reporter.info(
            "every image of the bundle is already on this engine with the same ID: nothing to load",
        );
        return Ok(LoadReport {
            manifest,
            loaded: false,
            messages: Vec::new(),
        });
    }
    let messages = send_to_engine(&engine, store, reporter).await?;
    check_loaded(&engine, &manifest, reporter).await?;
    drop(dir);
    Ok(LoadReport {
        manifest,
        loaded: true,
        messages,
    })
}

/// The whole bundle, spooled into `dir` and checked before the engine sees a byte.
async fn read_and_check<R: Read + Send + 'static>(
    input: R,
    dir: &std::path::Path,
    reporter: &Reporter,
) -> Result<(BundleManifest, Store)> {
    let step = reporter.step(format!("read and check the bundle (in {})", dir.display()));
    let spool_dir = dir.to_path_buf();
    let (input, count) = Counting::new(input);
    let reader = tokio::task::spawn_blocking(move || {
        bundle::read_bundle(
            std::io::BufReader::with_capacity(CHUNK, input),
            &spool_dir,
            VERSION,
            &all_images(),
        )
    });
    let read = with_progress(&step, &count, "read and checked", reader)
        .await
        .expect("the reader thread does not panic");
    let (manifest, store) = match read {
        Ok(r) => r,
        Err(e) => {
            step.fail(match &e {
                BundleError::Refused(_) => "refused".to_string(),
                BundleError::Io { context, .. } => context.clone(),
            });
            return Err(load_refused(e));
        }
    };
    step.done(format!(
        "dtr {}, {} images, {} files, {}: every size, SHA-256, image ID and layer digest matches",
        manifest.dtr_version,
        manifest.images.len(),
        manifest.files.len(),
        mb(manifest.files.iter().map(|f| f.size).sum())
    ));
    Ok((manifest, store))
}

/// Whether every image of the bundle is on the engine with the bundle's ID already; an image
/// it would replace is warned about.
async fn already_loaded(
    engine: &Engine,
    manifest: &BundleManifest,
    reporter: &Reporter,
) -> Result<bool> {
    let mut all_present = true;
    for image in &manifest.images {
        match engine.image_id(&image.reference).await? {
            Some(id) if id == image.id => {}
            Some(other) => {
                all_present = false;
                reporter.warn(format!(
                    "{} is {} on this engine; the bundle's {} replaces it",
                    image.reference,
                    check::short_id(&other),
                    check::short_id(&image.id)
                ));
            }
            None => all_present = false,
        }
    }
    Ok(all_present)
}

/// The bundle rebuilt as a `docker save` archive, streamed to the engine's load; the engine's
/// messages.
async fn send_to_engine(engine: &Engine, store: Store, reporter: &Reporter) -> Result<Vec<String>> {
    let step = reporter.step("load the images into the engine");
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(16);
    let abort = tx.clone();
    let (out, count) = Counting::new(ChannelWriter {
        tx,
        buf: Vec::with_capacity(CHUNK),
    });
    let writer = tokio::task::spawn_blocking(move || {
        let result = bundle::write_docker_save(&store, out).map(|(written, _)| written);
        if let Err(e) = &result {
            // an error in the body makes the engine drop the request instead of loading a
            // shorter archive
            let _ = abort.blocking_send(Err(std::io::Error::other(e.to_string())));
        }
        result
    });
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    let loaded = with_progress(
        &step,
        &count,
        "sent to the engine",
        engine.load_images(body),
    )
    .await;
    let written = writer.await.expect("the writer thread does not panic");
    // the engine's error first: when it stops reading, the writer only sees a broken pipe
    let (messages, written) = match (loaded, written) {
        (Err(e), _) => return Err(e),
        (Ok(_), Err(e)) => return Err(load_refused(e)),
        (Ok(messages), Ok(written)) => (messages, written),
    };
    step.done(format!("{} files, {}", written.files, mb(written.bytes)));
    Ok(messages)
}

/// Every reference of the bundle resolves to the bundle's image ID after the load.
async fn check_loaded(
    engine: &Engine,
    manifest: &BundleManifest,
    reporter: &Reporter,
) -> Result<()> {
    let step = reporter.step("check the loaded images");
    for image in &manifest.images {
        let id = engine.image_id(&image.reference).await?;
        if id.as_deref() != Some(image.id.as_str()) {
            return Err(Error::io(
                format!("after the load, {}", image.reference),
                std::io::Error::other(format!(
                    "resolves to {}, not to the bundle's {}",
                    id.as_deref().unwrap_or("nothing"),
                    image.id
                )),
            ));
        }
    }
    step.done("every reference resolves to the bundle's image ID");
    Ok(())
}
