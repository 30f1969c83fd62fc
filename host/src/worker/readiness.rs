//! A model's life cycle: unloaded, loading, ready, unloading, and at the end failed or
//! draining. Being ready means holding the loaded worker, so the two cannot disagree.

use rbee_plugin_api::WorkerBox;
use serde::Serialize;
use std::{
    fmt,
    sync::{Arc, RwLock, RwLockWriteGuard},
};

/// Where the host is in its life, as `/ready` and `/v1/info` report it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum State {
    /// Not in memory; the next request loads it.
    Unloaded,
    /// The model is loading.
    Loading {
        /// 0 to 1, as the plugin reports it.
        progress: f32,
        /// What the plugin says it is doing.
        message: String,
    },
    /// Serving.
    Ready,
    /// The running jobs finish, then the worker is dropped.
    Unloading,
    /// A model the host must serve failed to load; the host is about to exit.
    Failed {
        /// Why.
        message: String,
    },
    /// Shutting down: running jobs finish, new ones are refused.
    Draining,
}

impl State {
    /// The word `/v1/models` shows for it.
    pub fn word(&self) -> &'static str {
        match self {
            State::Unloaded => "unloaded",
            State::Loading { .. } => "loading",
            State::Ready => "loaded",
            State::Unloading => "unloading",
            State::Failed { .. } => "failed",
            State::Draining => "draining",
        }
    }
}

/// A [`State`] with the worker it serves, once loaded.
enum Phase {
    Unloaded,
    Loading {
        progress: f32,
        message: String,
    },
    Ready(Arc<WorkerBox>),
    Unloading,
    Failed {
        message: String,
    },
    /// The worker, if it had loaded, finishes the running jobs.
    Draining(Option<Arc<WorkerBox>>),
}

/// The shared, current life-cycle phase, and the worker once it is loaded.
pub struct Readiness(RwLock<Phase>);

impl Default for Readiness {
    fn default() -> Self {
        Self(RwLock::new(Phase::Unloaded))
    }
}

impl fmt::Debug for Readiness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Readiness").field(&self.state()).finish()
    }
}

impl Readiness {
    /// The current state.
    pub fn state(&self) -> State {
        match &*self.0.read().unwrap_or_else(|e| e.into_inner()) {
            Phase::Unloaded => State::Unloaded,
            Phase::Unloading => State::Unloading,
            Phase::Loading { progress, message } => State::Loading {
                progress: *progress,
                message: message.clone(),
            },
            Phase::Ready(_) => State::Ready,
            Phase::Failed { message } => State::Failed {
                message: message.clone(),
            },
            Phase::Draining(_) => State::Draining,
        }
    }

    /// The loaded worker, while ready and while draining after that.
    pub fn worker(&self) -> Option<Arc<WorkerBox>> {
        match &*self.0.read().unwrap_or_else(|e| e.into_inner()) {
            Phase::Ready(worker) | Phase::Draining(Some(worker)) => Some(worker.clone()),
            _ => None,
        }
    }

    /// The worker if it takes jobs (ready); otherwise the state that keeps it from them.
    pub fn serving(&self) -> Result<Arc<WorkerBox>, State> {
        if let Phase::Ready(worker) = &*self.0.read().unwrap_or_else(|e| e.into_inner()) {
            return Ok(worker.clone());
        }
        Err(self.state())
    }

    /// Starts loading, if unloaded; whether it did (so one caller starts the load).
    pub fn start_loading(&self) -> bool {
        let mut current = self.write();
        let unloaded = matches!(*current, Phase::Unloaded);
        if unloaded {
            *current = Phase::Loading {
                progress: 0.0,
                message: "starting".into(),
            };
        }
        unloaded
    }

    /// Starts unloading, if ready: the worker, which the caller drops once its jobs end.
    pub fn start_unloading(&self) -> Option<Arc<WorkerBox>> {
        let mut current = self.write();
        if !matches!(*current, Phase::Ready(_)) {
            return None;
        }
        match std::mem::replace(&mut *current, Phase::Unloading) {
            Phase::Ready(worker) => Some(worker),
            _ => None,
        }
    }

    /// Becomes unloaded again, after an unload or a load that failed (unless draining).
    pub fn unloaded(&self) {
        self.advance(|_| Phase::Unloaded);
    }

    /// Reports load progress, while still loading.
    pub fn progress(&self, progress: f32, message: &str) {
        let mut current = self.write();
        if let Phase::Loading { .. } = *current {
            *current = Phase::Loading {
                progress: progress.clamp(0.0, 1.0),
                message: message.to_string(),
            };
        }
    }

    /// Becomes ready, serving `worker`.
    pub fn ready(&self, worker: Arc<WorkerBox>) {
        self.advance(|_| Phase::Ready(worker));
    }

    /// Records that the model failed to load.
    pub fn fail(&self, message: String) {
        self.advance(|_| Phase::Failed { message });
    }

    /// Starts draining; a loaded worker stays reachable for the running jobs' figures.
    pub fn drain(&self) {
        self.advance(|current| match current {
            Phase::Ready(worker) => Phase::Draining(Some(worker)),
            _ => Phase::Draining(None),
        });
    }

    /// Moves on from the current phase. Once draining or failed, the host never becomes ready
    /// again.
    fn advance(&self, next: impl FnOnce(Phase) -> Phase) {
        let mut current = self.write();
        if !matches!(*current, Phase::Draining(_) | Phase::Failed { .. }) {
            let previous = std::mem::replace(&mut *current, Phase::Draining(None));
            *current = next(previous);
        }
    }

    fn write(&self) -> RwLockWriteGuard<'_, Phase> {
        self.0.write().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::worker::testing::idle_worker as worker;

    #[test]
    fn draining_is_final() {
        let readiness = Readiness::default();
        assert!(readiness.start_loading());
        readiness.progress(0.5, "half");
        assert!(matches!(readiness.state(), State::Loading { progress, .. } if progress == 0.5));
        readiness.ready(worker());
        assert_eq!(readiness.state(), State::Ready);
        readiness.drain();
        readiness.ready(worker());
        assert_eq!(readiness.state(), State::Draining);
    }

    #[test]
    fn a_model_loads_unloads_and_loads_again() {
        let readiness = Readiness::default();
        assert_eq!(readiness.state(), State::Unloaded);
        assert!(readiness.start_unloading().is_none());
        assert!(readiness.start_loading());
        assert!(!readiness.start_loading(), "one load at a time");
        readiness.ready(worker());
        assert!(readiness.start_unloading().is_some());
        assert_eq!(readiness.state(), State::Unloading);
        assert!(readiness.worker().is_none());
        readiness.unloaded();
        assert!(readiness.start_loading());
    }

    #[test]
    fn the_worker_is_there_exactly_when_loaded() {
        let readiness = Readiness::default();
        readiness.start_loading();
        assert!(readiness.worker().is_none());
        assert!(matches!(readiness.serving(), Err(State::Loading { .. })));
        readiness.ready(worker());
        assert!(readiness.serving().is_ok());
        readiness.drain();
        assert!(readiness.worker().is_some(), "running jobs still report");
        assert_eq!(readiness.serving().err(), Some(State::Draining));
    }

    #[test]
    fn a_failed_load_has_no_worker_and_stays_failed() {
        let readiness = Readiness::default();
        readiness.fail("no weights".into());
        readiness.drain();
        assert_eq!(
            readiness.serving().err(),
            Some(State::Failed {
                message: "no weights".into()
            })
        );
        assert!(readiness.worker().is_none());
    }
}
