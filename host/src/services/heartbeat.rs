//! Heartbeats to a hive (or queen): a ready callback once the model is loaded, then the
//! worker's state every interval. Failures retry with capped exponential backoff and jitter,
//! are logged once per outage, and never block serving. A last heartbeat says `stopping`.

use crate::{
    config::HeartbeatConfig,
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
    state: Arc<WorkerState>,
    url: String,
    stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    let url = config.advertise_url.clone().unwrap_or(url);
    tokio::spawn(run(config, state, url, stop))
}

async fn run(
    config: HeartbeatConfig,
    state: Arc<WorkerState>,
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
        let ready = matches!(state.readiness.state(), State::Ready);
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

/// The worker's state as the hive sees it.
fn snapshot(
    config: &HeartbeatConfig,
    state: &WorkerState,
    url: &str,
    forced: Option<&str>,
) -> Value {
    let (waiting, running) = state.jobs.counts();
    let status = state.readiness.worker().map(|worker| worker.status());
    let life = match (state.readiness.state(), running) {
        (State::Loading { progress: 0.0, .. }, _) => "starting",
        (State::Loading { .. }, _) => "loading",
        (State::Ready, 0) => "ready",
        (State::Ready, _) => "busy",
        (State::Draining, _) => "draining",
        (State::Failed { .. }, _) => "failed",
    };
    json!({
        "worker_id": config.worker_id,
        "plugin_id": state.manifest["id"],
        "plugin_version": state.manifest["version"],
        "model": status.as_ref().map_or(state.model.clone(), |s| s.model.to_string()),
        "device": state.device,
        "state": forced.unwrap_or(life),
        "queue_depth": waiting,
        "jobs_running": running,
        "slots": state.slots(),
        "memory_bytes": status.as_ref().map_or(0, |s| s.memory_bytes),
        "url": url,
        "timestamp": SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::metrics::Metrics;
    use rbee_plugin_api::Manifest;

    #[test]
    fn the_snapshot_carries_the_slots_once_loaded() {
        let manifest = Manifest::new("echo", "cpu", "0.1.0", &["echo"]);
        let metrics = Arc::new(Metrics::new("tiny", false));
        let state = WorkerState::new(&manifest, "tiny".into(), "cpu".into(), 4, metrics);
        let config = HeartbeatConfig {
            hive_url: "http://hive".into(),
            interval: Duration::from_secs(30),
            worker_id: "w-1".into(),
            advertise_url: None,
        };
        let loading = snapshot(&config, &state, "http://w", None);
        assert_eq!(loading["state"], "starting");
        assert_eq!(loading["slots"], 0, "unknown until loaded");
        state.set_slots(2);
        let stopping = snapshot(&config, &state, "http://w", Some("stopping"));
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
