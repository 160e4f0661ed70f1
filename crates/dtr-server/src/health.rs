//! `dtr health api|jobrunner`: the `dtr-health` probe of our own two images. Exit 0 = healthy.

use std::time::{Duration, SystemTime};

use crate::error::{Error, Result};
use crate::jobrunner::{BEAT_EVERY, HEARTBEAT_FILE};
use crate::runtime::RoleConfig;
use dtr_core::component::Component;

pub async fn check(component: Component) -> Result<()> {
    match component {
        Component::Api => {
            let cfg = RoleConfig::from_env(Component::Api)?;
            let url = format!("https://localhost:{}/health", dtr_core::component::API_PORT);
            let r = cfg
                .http_client()?
                .get(&url)
                .send()
                .await
                .map_err(|e| Error::Http {
                    url: url.clone(),
                    reason: e.to_string(),
                })?;
            if r.status().is_success() {
                Ok(())
            } else {
                Err(Error::Http {
                    url,
                    reason: format!("answered {}", r.status()),
                })
            }
        }
        Component::Jobrunner => {
            let modified = std::fs::metadata(HEARTBEAT_FILE)
                .and_then(|m| m.modified())
                .map_err(|e| Error::io(format!("read {HEARTBEAT_FILE}"), e))?;
            let age = SystemTime::now()
                .duration_since(modified)
                .unwrap_or(Duration::ZERO);
            if age <= BEAT_EVERY * 4 {
                Ok(())
            } else {
                Err(Error::Unhealthy(format!(
                    "last database heartbeat {}s ago",
                    age.as_secs()
                )))
            }
        }
        other => Err(Error::Usage(format!(
            "no built-in health check for {}",
            other.name()
        ))),
    }
}
