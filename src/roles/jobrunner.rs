//! `dtr jobrunner`: background jobs from the metadata database. For now it keeps a database
//! connection and a heartbeat (the api reports it unhealthy when the heartbeat goes stale);
//! job execution comes with the registry features.

use std::time::Duration;

use crate::components::Component;
use crate::error::Result;
use crate::options::LogLevel;
use crate::roles::db;
use crate::roles::runtime::{log, RoleConfig};

/// Touched after every successful heartbeat; `dtr health jobrunner` checks its age.
pub const HEARTBEAT_FILE: &str = "/tmp/dtr-jobrunner-heartbeat";
pub const BEAT_EVERY: Duration = Duration::from_secs(5);

pub async fn run() -> Result<()> {
    let cfg = RoleConfig::from_env(Component::Jobrunner)?;
    log(
        LogLevel::Info,
        cfg.log_level,
        format!(
            "dtr jobrunner {} for replica {}",
            cfg.version, cfg.replica_id
        ),
    );
    let mut client: Option<tokio_postgres::Client> = None;
    let mut failures = 0u32;
    loop {
        if client.as_ref().is_none_or(|c| c.is_closed()) {
            match db::connect(&cfg).await {
                Ok(c) => {
                    log(
                        LogLevel::Info,
                        cfg.log_level,
                        "connected to the metadata database",
                    );
                    client = Some(c);
                }
                Err(e) => {
                    failures += 1;
                    if failures % 10 == 1 {
                        log(
                            LogLevel::Warn,
                            cfg.log_level,
                            format!("waiting for the metadata database: {e}"),
                        );
                    }
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    continue;
                }
            }
        }
        let c = client.as_ref().expect("connected above");
        match db::heartbeat(c, &cfg).await {
            Ok(()) => {
                failures = 0;
                if let Err(e) = std::fs::write(HEARTBEAT_FILE, crate::report::timestamp()) {
                    log(
                        LogLevel::Error,
                        cfg.log_level,
                        format!("write {HEARTBEAT_FILE}: {e}"),
                    );
                }
                tokio::time::sleep(BEAT_EVERY).await;
            }
            Err(e) => {
                log(
                    LogLevel::Warn,
                    cfg.log_level,
                    format!("heartbeat failed, reconnecting: {e}"),
                );
                client = None;
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}
