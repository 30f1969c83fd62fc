//! The host's life cycle as `/ready` reports it: loading, ready, failed, draining.

use serde::Serialize;
use std::sync::RwLock;

/// Where the host is in its life.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum State {
    /// The model is loading.
    Loading {
        /// 0 to 1, as the plugin reports it.
        progress: f32,
        /// What the plugin says it is doing.
        message: String,
    },
    /// Serving.
    Ready,
    /// The model failed to load; the host is about to exit.
    Failed {
        /// Why.
        message: String,
    },
    /// Shutting down: running jobs finish, new ones are refused.
    Draining,
}

/// The shared, current [`State`].
#[derive(Debug)]
pub struct Readiness(RwLock<State>);

impl Default for Readiness {
    fn default() -> Self {
        Self(RwLock::new(State::Loading {
            progress: 0.0,
            message: "starting".into(),
        }))
    }
}

impl Readiness {
    /// The current state.
    pub fn get(&self) -> State {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Moves to `state`. Once draining or failed, the host never becomes ready again.
    pub fn set(&self, state: State) {
        let mut current = self.0.write().unwrap_or_else(|e| e.into_inner());
        if !matches!(*current, State::Draining | State::Failed { .. }) {
            *current = state;
        }
    }

    /// Reports load progress, while still loading.
    pub fn progress(&self, progress: f32, message: &str) {
        let mut current = self.0.write().unwrap_or_else(|e| e.into_inner());
        if let State::Loading { .. } = *current {
            *current = State::Loading {
                progress: progress.clamp(0.0, 1.0),
                message: message.to_string(),
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draining_is_final() {
        let readiness = Readiness::default();
        readiness.progress(0.5, "half");
        assert!(matches!(readiness.get(), State::Loading { progress, .. } if progress == 0.5));
        readiness.set(State::Ready);
        assert_eq!(readiness.get(), State::Ready);
        readiness.set(State::Draining);
        readiness.set(State::Ready);
        assert_eq!(readiness.get(), State::Draining);
    }
}
