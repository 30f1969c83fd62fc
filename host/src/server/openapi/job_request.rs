//! The body of `POST /v1/jobs` for the models this host serves: for each model, its names, its
//! tasks and its plugin's parameters (see `jobs::parse_submission`, which reads it).

use super::params;
use crate::{fleet::Fleet, server::jobs::MAX_TIME_LIMIT_SECS, worker::WorkerState};
use serde_json::{Value, json};

/// The `JobRequest` schema: one model's job, or any of several models' jobs.
pub fn schema(fleet: &Fleet) -> Value {
    let models = fleet.models();
    if let [only] = models {
        let any_name = json!({
            "type": ["string", "null"],
            "description": "Any name: this host serves one model",
        });
        return variant(only, any_name, &only.tasks, false);
    }
    let mut variants = Vec::new();
    for model in models {
        let mut names = vec![model.id().to_string()];
        names.extend(model.config.aliases.iter().cloned());
        variants.push(variant(model, json!({"enum": names}), &model.tasks, true));
        let unique: Vec<String> = model
            .tasks
            .iter()
            .filter(|task| models.iter().filter(|m| m.serves(task)).count() == 1)
            .cloned()
            .collect();
        if !unique.is_empty() {
            let unnamed = json!({
                "type": "null",
                "description": "May be left out: one model serves the task",
            });
            variants.push(variant(model, unnamed, &unique, false));
        }
    }
    json!({"anyOf": variants})
}

/// A job for `model` named as `name` says, for one of `tasks`.
fn variant(model: &WorkerState, name: Value, tasks: &[String], named: bool) -> Value {
    let mut required = vec!["task"];
    if named {
        required.push("model");
    }
    if params::required(model) {
        required.push("params");
    }
    json!({
        "type": "object",
        "title": format!("a job for {}", model.id()),
        "additionalProperties": false,
        "required": required,
        "properties": {
            "model": name,
            "task": {"enum": tasks},
            "params": params::reference(model),
            "timeout": {
                "type": ["number", "null"],
                "exclusiveMinimum": 0,
                "maximum": MAX_TIME_LIMIT_SECS,
                "description": "Seconds the job may take; past them it ends with `deadline_exceeded`",
            },
        },
    })
}
