//! Load for the availability tests: an administrator's API client, and a writer that creates
//! repositories through one replica while the cluster is broken and mended, recording every
//! attempt (the write gap and the acknowledged writes come from its log).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::{admin_password, http, wait_for};

/// The API of one replica (or a balancer), as the administrator.
pub struct AdminApi(pub http::Api);

impl AdminApi {
    /// `method path` with an optional JSON body, given `timeout` seconds.
    pub fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        timeout: u32,
    ) -> (u16, Value) {
        let mut req = self
            .0
            .request(method, path)
            .basic("admin", admin_password())
            .timeout(timeout);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send();
        (resp.status, resp.json())
    }

    /// The names of the repositories. A replica that has just come back (a healed partition, a
    /// restarted database) can answer 503 "try again in a moment" for a moment: asked again
    /// for up to 60 s; any other answer but 200 fails at once.
    pub fn repositories(&self) -> Vec<String> {
        let v = wait_for("the repository list", Duration::from_secs(60), || {
            let (code, v) = self.call("GET", "/api/v0/repositories", None, 20);
            match code {
                200 => Ok(v),
                503 => Err(format!("{code} {v}")),
                _ => panic!("list repositories: {code} {v}"),
            }
        });
        v["repositories"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap().to_string())
            .collect()
    }
}

/// Creates repositories `<prefix><n>` through one replica every 200 ms until stopped; records
/// (seconds since start, name, HTTP status) of every attempt.
pub struct Writer {
    stop: Arc<AtomicBool>,
    log: Arc<Mutex<Vec<(f64, String, u16)>>>,
    started: Instant,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Writer {
    pub fn start(api: AdminApi, prefix: &str) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let log = Arc::new(Mutex::new(Vec::new()));
        let started = Instant::now();
        let (s, l, p) = (Arc::clone(&stop), Arc::clone(&log), prefix.to_string());
        let handle = std::thread::spawn(move || {
            let mut n = 0;
            while !s.load(Ordering::Relaxed) {
                n += 1;
                let name = format!("{p}{n}");
                let (code, _) = api.call(
                    "POST",
                    "/api/v0/repositories/admin",
                    Some(json!({"name": name})),
                    15,
                );
                l.lock()
                    .unwrap()
                    .push((started.elapsed().as_secs_f64(), name, code));
                std::thread::sleep(Duration::from_millis(200));
            }
        });
        Writer {
            stop,
            log,
            started,
            handle: Some(handle),
        }
    }

    pub fn since(&self, t: Instant) -> f64 {
        t.duration_since(self.started).as_secs_f64()
    }

    /// How many writes were acknowledged (201) so far.
    pub fn acks(&self) -> usize {
        acked(&self.log.lock().unwrap())
    }

    /// Waits until `n` writes in all were acknowledged; after `timeout` the test fails with the
    /// last attempts.
    pub fn wait_for_acks(&self, n: usize, timeout: Duration) {
        wait_for(&format!("{n} acknowledged writes"), timeout, || {
            let log = self.log.lock().unwrap();
            match acked(&log) {
                got if got >= n => Ok(()),
                got => Err(format!(
                    "{got} acknowledged; last attempts {:?}",
                    &log[log.len().saturating_sub(5)..]
                )),
            }
        });
    }

    pub fn first_ok_after(&self, t: f64) -> Option<f64> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .find(|(at, _, code)| *at > t && *code == 201)
            .map(|(at, _, _)| *at)
    }

    pub fn finish(mut self) -> Vec<(f64, String, u16)> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            h.join().unwrap();
        }
        self.log.lock().unwrap().clone()
    }
}

pub fn acked(log: &[(f64, String, u16)]) -> usize {
    log.iter().filter(|(_, _, code)| *code == 201).count()
}
