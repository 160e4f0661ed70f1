//! Repositories, their tags and the registry's notifications (being written).

use std::sync::Arc;

use axum::Router;

use super::Api;

pub fn routes() -> Router<Arc<Api>> {
    Router::new()
}
