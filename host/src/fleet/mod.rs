//! The models one host serves: finding the one a request names, loading it on demand (making
//! room under the memory budget), and unloading it when idle or asked to.

mod load;
mod restart;
pub use load::LOAD_FAILED;
pub mod memory;
mod unload;

use crate::{
    services::metrics::{MetricsRegistry, ModelGauges},
    worker::{WorkerState, readiness::State},
};
use std::{
    path::PathBuf,
    sync::{Arc, Mutex},
};

/// Every served model, and what their loads share.
pub struct Fleet {
    models: Vec<Arc<WorkerState>>,
    /// The most memory loaded workers may hold together, in bytes.
    budget: Option<u64>,
    /// Where plugins cache downloaded models.
    cache_dir: PathBuf,
    /// One load (with the unloads it needs) at a time, so that the budget's arithmetic holds.
    loading: Mutex<()>,
    metrics: MetricsRegistry,
}

/// Why no model was picked for a request.
#[derive(Debug, Clone, PartialEq)]
pub enum PickError {
    /// No model goes by that name.
    Unknown {
        /// The name asked for.
        name: String,
        /// The ids there are.
        available: Vec<String>,
    },
    /// No name was given, and more than one model serves the task.
    Ambiguous {
        /// The ids that serve it.
        candidates: Vec<String>,
    },
    /// No model serves the task.
    Unserved {
        /// The tasks that are served.
        served: Vec<String>,
    },
}

impl Fleet {
    /// The fleet of `models`, sharing `metrics`, under `budget`.
    pub fn new(
        models: Vec<Arc<WorkerState>>,
        budget: Option<u64>,
        cache_dir: PathBuf,
        metrics: MetricsRegistry,
    ) -> Self {
        Self {
            models,
            budget,
            cache_dir,
            loading: Mutex::new(()),
            metrics,
        }
    }

    /// Every model, in the order configured.
    pub fn models(&self) -> &[Arc<WorkerState>] {
        &self.models
    }

    /// The host's state as `/ready` reports it: draining once any model drains; else the
    /// state of the first pinned model that is not ready; else ready.
    pub fn state(&self) -> State {
        let states: Vec<(bool, State)> = self
            .models
            .iter()
            .map(|model| (model.config.pinned, model.readiness.state()))
            .collect();
        if states.iter().any(|(_, state)| *state == State::Draining) {
            return State::Draining;
        }
        states
            .into_iter()
            .find(|(pinned, state)| *pinned && *state != State::Ready)
            .map_or(State::Ready, |(_, state)| state)
    }

    /// The model going by `name` (its id or an alias).
    pub fn get(&self, name: &str) -> Result<&Arc<WorkerState>, PickError> {
        self.models
            .iter()
            .find(|model| model.answers_to(name))
            .ok_or_else(|| PickError::Unknown {
                name: name.to_string(),
                available: self.ids(),
            })
    }

    /// The model a request for `task` goes to: the one `name` names; without a name, the one
    /// model serving the task. A host of one model takes any name, as single-model servers do.
    pub fn pick(&self, name: Option<&str>, task: &str) -> Result<&Arc<WorkerState>, PickError> {
        if let [only] = self.models.as_slice() {
            return match only.serves(task) {
                true => Ok(only),
                false => Err(PickError::Unserved {
                    served: only.tasks.clone(),
                }),
            };
        }
        if let Some(name) = name.filter(|name| !name.is_empty()) {
            return self.get(name);
        }
        let serving: Vec<&Arc<WorkerState>> = self
            .models
            .iter()
            .filter(|model| model.serves(task))
            .collect();
        match serving.as_slice() {
            [one] => Ok(one),
            [] => Err(PickError::Unserved {
                served: self.served_tasks(),
            }),
            many => Err(PickError::Ambiguous {
                candidates: many.iter().map(|model| model.id().to_string()).collect(),
            }),
        }
    }

    /// Whether any model serves one of `tasks`.
    pub fn serves_any(&self, tasks: &[&str]) -> bool {
        self.models
            .iter()
            .any(|model| tasks.iter().any(|task| model.serves(task)))
    }

    /// Every task some model serves, once each.
    pub fn served_tasks(&self) -> Vec<String> {
        let mut tasks: Vec<String> = Vec::new();
        for task in self.models.iter().flat_map(|model| &model.tasks) {
            if !tasks.contains(task) {
                tasks.push(task.clone());
            }
        }
        tasks
    }

    /// The model whose queue holds job `id`.
    pub fn model_of_job(&self, id: &str) -> Option<&Arc<WorkerState>> {
        self.models
            .iter()
            .find(|model| model.jobs.view(id).is_some())
    }

    /// The Prometheus exposition of every model.
    pub fn render_metrics(&self) -> String {
        let gauges: Vec<ModelGauges<'_>> = self
            .models
            .iter()
            .map(|model| {
                let (waiting, running) = model.jobs.counts();
                let cache_usage = model
                    .readiness
                    .worker()
                    .map_or(0.0, |worker| worker.status().cache_usage_ratio as f64);
                ModelGauges {
                    metrics: &model.metrics,
                    waiting,
                    running,
                    cache_usage,
                }
            })
            .collect();
        self.metrics.render(&gauges)
    }

    fn ids(&self) -> Vec<String> {
        self.models
            .iter()
            .map(|model| model.id().to_string())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::worker::testing::{echo_model, idle_worker};

    fn fleet(ids: &[&str]) -> Fleet {
        let registry = MetricsRegistry::new(false);
        let models = ids
            .iter()
            .map(|id| Arc::new(echo_model(id, false, &registry)))
            .collect();
        Fleet::new(models, None, ".".into(), registry)
    }

    #[test]
    fn a_request_goes_to_the_model_it_names_or_the_one_serving_its_task() {
        let one = fleet(&["solo"]);
        assert_eq!(one.pick(Some("gpt-4o"), "echo").unwrap().id(), "solo");
        assert_eq!(one.pick(None, "echo").unwrap().id(), "solo");
        assert_eq!(
            one.pick(None, "paint").err().unwrap(),
            PickError::Unserved {
                served: vec!["echo".into()]
            }
        );
        let two = fleet(&["a", "b"]);
        assert_eq!(two.pick(Some("b"), "echo").unwrap().id(), "b");
        assert_eq!(
            two.pick(Some("c"), "echo").err().unwrap(),
            PickError::Unknown {
                name: "c".into(),
                available: vec!["a".into(), "b".into()]
            }
        );
        assert_eq!(
            two.pick(None, "echo").err().unwrap(),
            PickError::Ambiguous {
                candidates: vec!["a".into(), "b".into()]
            }
        );
    }

    #[test]
    fn the_host_is_ready_when_its_pinned_models_are() {
        let registry = MetricsRegistry::new(false);
        let pinned = Arc::new(echo_model("pinned", true, &registry));
        let lazy = Arc::new(echo_model("lazy", false, &registry));
        let fleet = Fleet::new(
            vec![lazy.clone(), pinned.clone()],
            None,
            ".".into(),
            registry,
        );
        pinned.readiness.start_loading();
        assert!(matches!(fleet.state(), State::Loading { .. }));
        pinned.readiness.ready(idle_worker());
        assert_eq!(
            fleet.state(),
            State::Ready,
            "an unloaded lazy model does not matter"
        );
        lazy.readiness.drain();
        assert_eq!(fleet.state(), State::Draining);
    }
}
