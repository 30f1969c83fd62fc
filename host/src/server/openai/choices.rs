//! `n` choices of one completion: one job per choice, all queued before anything is answered
//! (so a refusal comes before any output), read together. Dropped early, their events cancel
//! every job that has not ended.

use super::{Started, collect, completion::Flavor, start_job};
use crate::server::{ApiError, AppState, collect::Collected, stream::JobEvents};
use futures_util::{Stream, StreamExt, future::try_join_all, stream};
use rbee_plugin_api::tasks::text_generation::{TASK, param};
use serde_json::{Map, Value};
use std::sync::Arc;

/// Queues `n` jobs of `params` for `flavor`'s route on the model `model` names. When the client
/// gave a seed `s`, choice `i` gets `s + i`; without one, each job picks its own.
pub async fn start(
    state: &Arc<AppState>,
    flavor: Flavor,
    model: Option<&str>,
    params: &Map<String, Value>,
    n: u64,
) -> Result<Vec<Started>, ApiError> {
    let mut started = Vec::new();
    for choice in 0..n {
        let params = seeded(params, choice);
        let job = start_job(state, flavor.route(), model, TASK, params, Vec::new()).await?;
        started.push(job);
    }
    Ok(started)
}

/// `params` for choice `choice`: the client's seed moved on by the choice's index.
fn seeded(params: &Map<String, Value>, choice: u64) -> Map<String, Value> {
    let mut params = params.clone();
    if let Some(seed) = params.get(param::SEED).and_then(Value::as_u64) {
        params.insert(param::SEED.into(), seed.wrapping_add(choice).into());
    }
    params
}

/// Reads every choice's job to its end; the first failure fails them all.
pub async fn collect_all(events: Vec<JobEvents>) -> Result<Vec<Collected>, ApiError> {
    try_join_all(events.into_iter().map(collect)).await
}

/// The events of every choice as they come, each with its choice's index.
pub fn merged(events: Vec<JobEvents>) -> impl Stream<Item = (usize, crate::jobs::event::JobEvent)> {
    let tagged = events.into_iter().enumerate().map(|(index, events)| {
        stream::unfold(events, move |mut events| async move {
            let event = events.next().await?;
            Some(((index, event), events))
        })
        .boxed()
    });
    stream::select_all(tagged)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn each_choice_gets_the_clients_seed_moved_on_by_its_index() {
        let params = json!({"seed": 41, "temperature": 1.0});
        let params = params.as_object().unwrap();
        assert_eq!(seeded(params, 0)["seed"], 41);
        assert_eq!(seeded(params, 2)["seed"], 43);
        assert_eq!(seeded(params, 2)["temperature"], 1.0);
        let unseeded = json!({"temperature": 1.0});
        assert_eq!(seeded(unseeded.as_object().unwrap(), 3).get("seed"), None);
    }
}
