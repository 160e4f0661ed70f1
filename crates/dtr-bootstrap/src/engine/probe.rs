//! Waiting for a container to become healthy: runs its `dtr-health` command with `docker exec`
//! every 200 ms (much faster than Docker's own health interval), watches for the container
//! stopping, and gives up after a bounded time with what it last saw.

use std::time::{Duration, Instant};

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::report::Step;

const POLL: Duration = Duration::from_millis(200);

/// Returns how long it took. `on_wait` is called about once a second with the elapsed time
/// and the probe's last output, so progress can say what is being waited on.
pub async fn wait_healthy(
    engine: &Engine,
    container: &str,
    command: &[String],
    timeout: Duration,
    mut on_wait: impl FnMut(Duration, &str),
) -> Result<Duration> {
    let start = Instant::now();
    let mut last_output = String::new();
    let mut last_report = Instant::now();
    loop {
        match engine.state(container).await? {
            Some((status, _)) if status == "running" => {
                // an exec can fail while the container is still starting up: treat it as not ready
                if let Ok(out) = engine.exec(container, command).await {
                    if out.exit_code == 0 {
                        return Ok(start.elapsed());
                    }
                    last_output = out.output.trim().to_string();
                }
            }
            Some((status, exit_code))
                if status == "exited" || status == "dead" || status == "restarting" =>
            {
                return Err(Error::ContainerStopped {
                    container: container.into(),
                    state: status,
                    exit_code,
                    logs: engine.logs(container, 20).await,
                });
            }
            Some(_) => {}
            None => {
                return Err(Error::ContainerStopped {
                    container: container.into(),
                    state: "removed".into(),
                    exit_code: -1,
                    logs: String::new(),
                });
            }
        }
        if start.elapsed() >= timeout {
            return Err(Error::Unhealthy {
                container: container.into(),
                waited: timeout,
                last_output,
                logs: engine.logs(container, 20).await,
            });
        }
        if last_report.elapsed() >= Duration::from_secs(1) {
            on_wait(start.elapsed(), &last_output);
            last_report = Instant::now();
        }
        tokio::time::sleep(POLL).await;
    }
}

/// `wait_healthy`, telling `step` what it waits for and what the probe last answered.
pub async fn wait_healthy_step(
    engine: &Engine,
    container: &str,
    command: &[String],
    timeout: Duration,
    step: &Step<'_>,
) -> Result<Duration> {
    wait_healthy(engine, container, command, timeout, |elapsed, last| {
        let what = if last.is_empty() {
            format!("waiting for {container} to be healthy")
        } else {
            format!(
                "waiting for {container} to be healthy (last: {})",
                first_line(last)
            )
        };
        step.waiting(elapsed, &what);
    })
    .await
}

/// The first line of a probe's output, at most 100 characters.
fn first_line(s: &str) -> &str {
    let line = s.lines().next().unwrap_or("");
    match line.char_indices().nth(100) {
        Some((i, _)) => &line[..i],
        None => line,
    }
}
