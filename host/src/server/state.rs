//! What every handler can reach: the served models and the HTTP policy.

use crate::{config::HttpSettings, fleet::Fleet, worker::readiness::State};
use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

/// The state behind the router.
pub struct AppState {
    fleet: Arc<Fleet>,
    http: HttpSettings,
    started: AtomicBool,
}

impl AppState {
    /// The API for the models of `fleet`, under the `http` policy.
    pub fn new(fleet: Arc<Fleet>, http: HttpSettings) -> Self {
        Self {
            fleet,
            http,
            started: AtomicBool::new(false),
        }
    }

    /// Whether the host is past its start-up: every pinned model has been ready once. Latched
    /// when first seen, so that a pinned model loading again later (after an unload by hand)
    /// is not taken for one loading at start-up.
    pub fn started(&self) -> bool {
        if !self.started.load(Ordering::Relaxed) && self.fleet.state() == State::Ready {
            self.started.store(true, Ordering::Relaxed);
        }
        self.started.load(Ordering::Relaxed)
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
