//! Restarting a model whose plugin process crashed: its engine threads end (the
//! running jobs have failed with `plugin_crashed`), then, after a back-off that grows with
//! crashes in a row, the model loads again. `/ready` and `/v1/models` show it loading
//! meanwhile; queued jobs wait for it.

use super::Fleet;
use crate::{isolate::OnCrash, worker::WorkerState, worker::readiness::State};
use std::sync::Arc;

impl Fleet {
    /// What `model`'s plugin process calls when it dies: a restart.
    pub(super) fn restart_on_crash(self: &Arc<Self>, model: &Arc<WorkerState>) -> OnCrash {
        let (fleet, model) = (Arc::downgrade(self), Arc::downgrade(model));
        Box::new(move |why| {
            if let (Some(fleet), Some(model)) = (fleet.upgrade(), model.upgrade()) {
                fleet.restart(model, why);
            }
        })
    }

    /// Unloads the crashed `model` and loads it again after its back-off, on a thread of its
    /// own. Its engine threads take no more jobs from now on: queued jobs wait for the restart.
    fn restart(self: Arc<Self>, model: Arc<WorkerState>, why: String) {
        model.jobs.park_engines();
        let delay = model.crashed();
        tracing::error!(
            model = model.id(),
            "{why}; restarting it in {:.1} s",
            delay.as_secs_f64()
        );
        std::thread::Builder::new()
            .name("rbee-model-restart".into())
            .spawn(move || {
                let Some(worker) = model.readiness.start_unloading() else {
                    return;
                };
                model.jobs.park_engines();
                model.join_engines();
                drop(worker);
                model.readiness.unloaded();
                if !model.readiness.start_loading() {
                    return;
                }
                let waiting = format!("restarting in {:.1} s: {why}", delay.as_secs_f64());
                model.readiness.progress(0.0, &waiting);
                std::thread::sleep(delay);
                if matches!(model.readiness.state(), State::Loading { .. }) {
                    self.load_or_fail_queued(&model);
                }
            })
            .expect("spawning a model-restart thread");
    }
}
