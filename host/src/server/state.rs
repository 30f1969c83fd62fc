//! What every handler can reach: the served worker and the HTTP policy.

use crate::{config::HttpSettings, worker::WorkerState};
use std::sync::Arc;

/// The state behind the router.
pub struct AppState {
    worker: Arc<WorkerState>,
    http: HttpSettings,
}

impl AppState {
    /// The API for `worker`, under the `http` policy.
    pub fn new(worker: Arc<WorkerState>, http: HttpSettings) -> Self {
        Self { worker, http }
    }

    /// The worker requests go to.
    pub fn worker(&self) -> &WorkerState {
        &self.worker
    }

    /// Authentication, CORS and size limits.
    pub fn http(&self) -> &HttpSettings {
        &self.http
    }
}
