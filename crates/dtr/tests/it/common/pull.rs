//! A client that pulls one image over and over (token, manifest, first layer) while an
//! operation runs, and reports what failed and the longest stretch without a successful pull:
//! the upgrade tests and scripts/bench-upgrade.sh measure availability with it.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::http::Request;

/// One pull: when it started, how long it took, and what failed.
struct Probe {
    at: Instant,
    took: Duration,
    error: Option<String>,
}

/// Stops pulling when finished or dropped (a failed test does not leave it running).
pub struct Puller {
    stop: Arc<AtomicBool>,
    started: Instant,
    /// Every pull so far, shared with the pulling thread: a test waits on it.
    probes: Arc<Mutex<Vec<Probe>>>,
    handle: Option<JoinHandle<()>>,
}

#[derive(Debug)]
pub struct PullStats {
    pub pulls: usize,
    /// Seconds after the start, and what failed.
    pub failed: Vec<(f64, String)>,
    /// The longest time between the start of a failed pull and the end of the next good one.
    pub longest_outage: Duration,
}

impl Puller {
    /// Pulls `https://<authority>/v2/<repo>/manifests/<tag>` as `user` until `finish`.
    pub fn start(
        authority: &str,
        ca: PathBuf,
        repo: &str,
        tag: &str,
        user: (&str, &str),
    ) -> Puller {
        let stop = Arc::new(AtomicBool::new(false));
        let probes = Arc::new(Mutex::new(Vec::new()));
        let (authority, repo, tag) = (authority.to_string(), repo.to_string(), tag.to_string());
        let user = (user.0.to_string(), user.1.to_string());
        let (flag, record) = (stop.clone(), probes.clone());
        let handle = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                let at = Instant::now();
                let error = pull_once(&authority, &ca, &repo, &tag, &user).err();
                record.lock().unwrap().push(Probe {
                    at,
                    took: at.elapsed(),
                    error,
                });
                // pacing of the load, not synchronisation
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        Puller {
            stop,
            started: Instant::now(),
            probes,
            handle: Some(handle),
        }
    }

    fn successes(&self) -> usize {
        let probes = self.probes.lock().unwrap();
        probes.iter().filter(|p| p.error.is_none()).count()
    }

    /// Waits until `n` pulls that start from now have succeeded; fails the test after
    /// `timeout`, with the last failures.
    pub fn wait_for_pulls(&self, n: usize, timeout: Duration) {
        let from = self.successes();
        let start = Instant::now();
        loop {
            let got = self.successes() - from;
            if got >= n {
                return;
            }
            if start.elapsed() > timeout {
                let probes = self.probes.lock().unwrap();
                let errors: Vec<&String> = probes
                    .iter()
                    .rev()
                    .filter_map(|p| p.error.as_ref())
                    .take(5)
                    .collect();
                panic!(
                    "expected {n} successful pulls within {timeout:?}, got {got}; last failures: {errors:#?}"
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn finish(mut self) -> PullStats {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            h.join().expect("the puller thread");
        }
        let probes = std::mem::take(&mut *self.probes.lock().unwrap());
        let mut longest = Duration::ZERO;
        let mut outage_start: Option<Instant> = None;
        for p in &probes {
            match (&p.error, outage_start) {
                (Some(_), None) => outage_start = Some(p.at),
                (None, Some(s)) => {
                    longest = longest.max(p.at + p.took - s);
                    outage_start = None;
                }
                _ => {}
            }
        }
        if let (Some(s), Some(last)) = (outage_start, probes.last()) {
            longest = longest.max(last.at + last.took - s);
        }
        PullStats {
            pulls: probes.len(),
            failed: probes
                .iter()
                .filter_map(|p| {
                    p.error
                        .clone()
                        .map(|e| ((p.at - self.started).as_secs_f64(), e))
                })
                .collect(),
            longest_outage: longest,
        }
    }
}

impl Drop for Puller {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The body of a successful (200) answer; anything else, described.
fn fetch(req: Request, url: &str) -> Result<Vec<u8>, String> {
    let resp = req.timeout(10).send();
    match (&resp.failure, resp.status) {
        (None, 200) => Ok(resp.body),
        // curl's complaint names the request
        (Some(failure), _) => Err(failure.clone()),
        (None, code) => Err(format!(
            "{url}: HTTP {code} {}",
            resp.text().chars().take(200).collect::<String>()
        )),
    }
}

fn pull_once(
    authority: &str,
    ca: &Path,
    repo: &str,
    tag: &str,
    user: &(String, String),
) -> Result<(), String> {
    let token_url =
        format!("https://{authority}/auth/token?service={authority}&scope=repository:{repo}:pull");
    let token = fetch(
        Request::get(&token_url).ca(ca).basic(&user.0, &user.1),
        &token_url,
    )?;
    let token: serde_json::Value = serde_json::from_slice(&token).map_err(|e| e.to_string())?;
    let token = token["token"].as_str().ok_or("no token in the answer")?;
    let bearer = format!("Authorization: Bearer {token}");
    let manifest_url = format!("https://{authority}/v2/{repo}/manifests/{tag}");
    let manifest = fetch(
        Request::get(&manifest_url)
            .ca(ca)
            .header(&bearer)
            .header("Accept: application/vnd.docker.distribution.manifest.v2+json"),
        &manifest_url,
    )?;
    let manifest: serde_json::Value =
        serde_json::from_slice(&manifest).map_err(|e| e.to_string())?;
    let layer = manifest["layers"][0]["digest"]
        .as_str()
        .ok_or("no layer in the manifest")?;
    let blob_url = format!("https://{authority}/v2/{repo}/blobs/{layer}");
    fetch(
        Request::get(&blob_url).ca(ca).header(&bearer).follow(),
        &blob_url,
    )?;
    Ok(())
}
