//! What every handler can reach: the served models and the HTTP policy.

use crate::{config::HttpSettings, fleet::Fleet};
use std::sync::Arc;

/// The state behind the router.
pub struct AppState {
    fleet: Arc<Fleet>,
    http: HttpSettings,
}

impl AppState {
    /// The API for the models of `fleet`, under the `http` policy.
    pub fn new(fleet: Arc<Fleet>, http: HttpSettings) -> Self {
        Self { fleet, http }
    }

    /// The models requests go to.
    pub fn fleet(&self) -> &Arc<Fleet> {
        &self.fleet
    }

    /// Authentication, CORS and size limits.
    pub fn http(&self) -> &HttpSettings {
        &self.http
    }
}
