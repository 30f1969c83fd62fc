//! Unloading: by hand, when a model has been idle for its keep-alive, or to make room. The
//! running jobs finish first; queued jobs stay and load the model again.

use super::{Fleet, memory};
use crate::worker::{WorkerState, readiness::State};
use std::{sync::Arc, time::Duration};

/// How often idle models are looked for.
const KEEP_ALIVE_CHECK: Duration = Duration::from_millis(250);

impl Fleet {
    /// Unloads `model` if it is loaded: its engine threads finish their jobs and exit, the
    /// worker is dropped, and freed memory goes back to the system. The plugin library stays
    /// mapped (it is never closed, as abi_stable requires). Blocks until done.
    pub fn unload_blocking(self: &Arc<Self>, model: &Arc<WorkerState>) {
        let Some(worker) = model.readiness.start_unloading() else {
            return;
        };
        let before = memory::resident_bytes();
        model.jobs.park_engines();
        model.join_engines();
        drop(worker);
        memory::return_freed_memory();
        model.readiness.unloaded();
        tracing::info!(
            model = model.id(),
            freed_bytes = before.saturating_sub(memory::resident_bytes()),
            "model unloaded"
        );
        if model.jobs.counts().0 > 0 {
            self.request_load(model);
        }
    }

    /// Unloads `model` on a blocking thread and waits for it; a model still loading is
    /// unloaded once loaded.
    pub async fn unload(self: &Arc<Self>, model: &Arc<WorkerState>) {
        while matches!(model.readiness.state(), State::Loading { .. }) {
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let (fleet, model) = (self.clone(), model.clone());
        let _ = tokio::task::spawn_blocking(move || fleet.unload_blocking(&model)).await;
    }

    /// Unloads, in the background, each unpinned model idle for longer than its keep-alive.
    pub fn spawn_keep_alive(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let fleet = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(KEEP_ALIVE_CHECK).await;
                for model in fleet.models.iter().filter(|m| !m.config.pinned) {
                    let Some(keep_alive) = model.config.keep_alive else {
                        continue;
                    };
                    let loaded = model.readiness.worker().is_some();
                    if loaded && model.jobs.idle_for().is_some_and(|idle| idle >= keep_alive) {
                        tracing::info!(model = model.id(), "idle for its keep-alive");
                        fleet.unload(model).await;
                    }
                }
            }
        })
    }
}
