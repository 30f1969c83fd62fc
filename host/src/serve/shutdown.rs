//! Stopping: waiting for a signal (or a fatal load error), then draining every model.

use crate::worker::WorkerState;
use std::{
    future::pending,
    sync::Arc,
    time::{Duration, Instant},
};
use tokio::sync::oneshot;

/// How long a cancelled job may take to stop at the end of a drain.
const CANCEL_GRACE: Duration = Duration::from_secs(10);

/// Waits for SIGINT/SIGTERM (`None`) or a fatal load error (`Some(message)`).
pub async fn wait_for_stop(fatal: oneshot::Receiver<String>) -> Option<String> {
    let fatal = async {
        match fatal.await {
            Ok(message) => message,
            Err(_) => pending().await,
        }
    };
    tokio::select! {
        () = signal() => None,
        message = fatal => Some(message),
    }
}

async fn signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).expect("installing the SIGTERM handler");
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: draining"),
            _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: draining"),
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Stops taking jobs, cancels queued ones, lets the running ones finish up to `timeout`, then
/// cancels them and waits for them to stop.
pub async fn drain(models: &[Arc<WorkerState>], timeout: Duration) {
    for model in models {
        model.jobs.drain();
        model.readiness.drain();
    }
    if !wait_idle(models, timeout).await {
        tracing::warn!("shutdown timeout reached; cancelling the running jobs");
        for model in models {
            model.jobs.cancel_running();
        }
        wait_idle(models, CANCEL_GRACE).await;
    }
}

async fn wait_idle(models: &[Arc<WorkerState>], timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while models.iter().any(|model| model.jobs.counts().1 > 0) {
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    true
}
