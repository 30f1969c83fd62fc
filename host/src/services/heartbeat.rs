//! Heartbeats to a hive (or queen): a ready callback once the model is loaded, then the
//! worker's state every interval. Failures retry with capped exponential backoff and jitter,
//! are logged once per outage, and never block serving. A last heartbeat says `stopping`.

use crate::{
    config::HeartbeatConfig,
    fleet::Fleet,
    worker::{WorkerState, readiness::State},
};
use rand::Rng;
use serde_json::{Value, json};
use std::{
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};
use tokio::{sync::watch, task::JoinHandle, time::Instant};

/// How often readiness is checked, so the ready callback goes out promptly.
const POLL: Duration = Duration::from_millis(200);
/// The longest a single request to the hive may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Starts the heartbeat task; it sends the `stopping` heartbeat and ends when `stop` turns true.
pub fn spawn(
    config: HeartbeatConfig,
    state: Arc<Fleet>,
    url: String,
    stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    let url = config.advertise_url.clone().unwrap_or(url);
    tokio::spawn(run(config, state, url, stop))
}

async fn run(
    config: HeartbeatConfig,
    state: Arc<Fleet>,
    url: String,
    mut stop: watch::Receiver<bool>,
) {
    let client = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .build()
        .expect("an HTTP client");
    let (mut ready_sent, mut failures) = (false, 0u32);
    let mut next_beat = Instant::now();
    loop {
        let ready = matches!(state.state(), State::Ready);
        let due = if ready && !ready_sent {
            Some("ready")
        } else {
            (Instant::now() >= next_beat).then_some("heartbeat")
        };
        if let Some(kind) = due {
            let payload = snapshot(&config, &state, &url, None);
            match post(&client, &config.hive_url, kind, &payload).await {
                Ok(()) => {
                    if failures > 0 {
                        tracing::info!(hive = config.hive_url, "the hive is reachable again");
                    }
                    failures = 0;
                    ready_sent |= kind == "ready";
                    next_beat = Instant::now() + config.interval;
                }
                Err(error) => {
                    if failures == 0 {
                        tracing::warn!(
                            hive = config.hive_url,
                            "the hive is unreachable ({error}); retrying with backoff"
                        );
                    }
                    failures += 1;
                    next_beat = Instant::now() + backoff(failures, config.interval);
                }
            }
        }
        let wait = match ready && !ready_sent {
            true => next_beat.saturating_duration_since(Instant::now()),
            false => POLL.min(next_beat.saturating_duration_since(Instant::now())),
        };
        tokio::select! {
            () = tokio::time::sleep(wait.max(Duration::from_millis(10))) => {}
            _ = stop.changed() => break,
        }
    }
    let last = snapshot(&config, &state, &url, Some("stopping"));
    if let Err(error) = post(&client, &config.hive_url, "heartbeat", &last).await {
        tracing::warn!(hive = config.hive_url, "the last heartbeat failed: {error}");
    }
}

/// 1 s doubling per failure, capped at the interval, with jitter (50 to 100 %).
fn backoff(failures: u32, interval: Duration) -> Duration {
    let base = Duration::from_secs(1)
        .saturating_mul(1 << failures.min(16).saturating_sub(1))
        .min(interval);
    base.mul_f64(rand::rng().random_range(0.5..=1.0))
}

async fn post(
    client: &reqwest::Client,
    hive: &str,
    kind: &str,
    payload: &Value,
) -> Result<(), String> {
    let response = client
        .post(format!("{hive}/v1/workers/{kind}"))
        .json(payload)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    match response.status().is_success() {
        true => Ok(()),
        false => Err(format!("it answered {}", response.status())),
    }
}

/// The host's state as the hive sees it: the first model's figures at the top (the one-model
/// case), and every model in `models`.
fn snapshot(config: &HeartbeatConfig, fleet: &Fleet, url: &str, forced: Option<&str>) -> Value {
    let models: Vec<Value> = fleet
        .models()
        .iter()
        .map(|model| model_figures(model))
        .collect();
    let first = fleet.models().first();
    let (waiting, running) = first.map_or((0, 0), |model| model.jobs.counts());
    let life = match (fleet.state(), running) {
        (State::Loading { progress: 0.0, .. }, _) => "starting",
        (State::Loading { .. } | State::Unloaded | State::Unloading, _) => "loading",
        (State::Ready, 0) => "ready",
        (State::Ready, _) => "busy",
        (State::Draining, _) => "draining",
        (State::Failed { .. }, _) => "failed",
    };
    let figures = first.map(|model| model_figures(model)).unwrap_or_default();
    json!({
        "worker_id": config.worker_id,
        "plugin_id": figures["plugin_id"],
        "plugin_version": figures["plugin_version"],
        "model": figures["model"],
        "device": figures["device"],
        "state": forced.unwrap_or(life),
        "queue_depth": waiting,
        "jobs_running": running,
        "slots": figures["slots"],
        "memory_bytes": figures["memory_bytes"],
        "models": models,
        "url": url,
        "timestamp": SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()),
    })
}

/// One model's figures in a heartbeat.
fn model_figures(model: &WorkerState) -> Value {
    let (waiting, running) = model.jobs.counts();
    let loaded_name = model
        .readiness
        .worker()
        .map(|worker| worker.status().model.to_string());
    json!({
        "id": model.id(),
        "plugin_id": model.manifest["id"],
        "plugin_version": model.manifest["version"],
        "model": loaded_name.filter(|name| !name.is_empty()).unwrap_or_else(|| model.config.model.clone()),
        "device": model.device.to_string(),
        "state": model.readiness.state().word(),
        "queue_depth": waiting,
        "jobs_running": running,
        "slots": model.slots(),
        "memory_bytes": model.memory_bytes(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{services::metrics::MetricsRegistry, worker::testing::echo_model};

    #[test]
    fn the_snapshot_carries_each_model_and_the_first_ones_slots() {
        let registry = MetricsRegistry::new(false);
        let first = Arc::new(echo_model("tiny", true, &registry));
        let second = Arc::new(echo_model("other", false, &registry));
        first.readiness.start_loading();
        let fleet = Fleet::new(vec![first.clone(), second], None, ".".into(), registry);
        let config = HeartbeatConfig {
            hive_url: "http://hive".into(),
            interval: Duration::from_secs(30),
            worker_id: "w-1".into(),
            advertise_url: None,
        };
        let loading = snapshot(&config, &fleet, "http://w", None);
        assert_eq!(loading["state"], "starting");
        assert_eq!(loading["slots"], 0, "unknown until loaded");
        let states: Vec<(&str, &str)> = loading["models"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| (m["id"].as_str().unwrap(), m["state"].as_str().unwrap()))
            .collect();
        assert_eq!(states, [("tiny", "loading"), ("other", "unloaded")]);
        first.loaded((0..2).map(|_| std::thread::spawn(|| {})).collect(), 0);
        let stopping = snapshot(&config, &fleet, "http://w", Some("stopping"));
        assert_eq!(stopping["state"], "stopping");
        assert_eq!(stopping["slots"], 2);
    }

    #[test]
    fn backoff_doubles_up_to_the_interval() {
        let interval = Duration::from_secs(8);
        assert!(backoff(1, interval) <= Duration::from_secs(1));
        assert!(
            backoff(3, interval) >= Duration::from_secs(2)
                && backoff(3, interval) <= Duration::from_secs(4)
        );
        assert!(backoff(30, interval) <= interval && backoff(30, interval) >= interval / 2);
    }
}
