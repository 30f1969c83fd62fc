//! A long run on a real model: a few clients submit chat jobs back to back (one in five
//! cancelled after its first token) while the host's resident memory is sampled, so that
//! growth over time shows. `cargo xtask load --soak SECONDS` runs it at length, the `soak` test
//! for a minute.

use crate::{Host, SseStream};
use reqwest::blocking::Client;
use serde_json::{Value, json};
use std::{
    fmt,
    sync::atomic::{AtomicUsize, Ordering},
    thread,
    time::{Duration, Instant},
};

/// What a soak run saw.
#[derive(Debug)]
pub struct SoakReport {
    /// Jobs that ran to their terminal event.
    pub jobs: usize,
    /// Jobs accepted whose stream did not end with exactly one terminal event.
    pub broken: usize,
    /// The host's resident memory (MiB), sampled every `every` from the start.
    pub rss_mib: Vec<f64>,
    /// Time between samples.
    pub every: Duration,
}

impl SoakReport {
    /// How much higher the memory peaked in the last third of the run than in the middle
    /// third (the first third is the warm-up: caches and the registry of finished jobs fill).
    pub fn late_growth_mib(&self) -> f64 {
        let third = self.rss_mib.len() / 3;
        let peak = |samples: &[f64]| samples.iter().copied().fold(0.0, f64::max);
        peak(&self.rss_mib[2 * third..]) - peak(&self.rss_mib[third..2 * third])
    }
}

/// Runs `clients` clients for `duration` against an LLM `host`, sampling its memory `every`.
pub fn soak(host: &Host, clients: usize, duration: Duration, every: Duration) -> SoakReport {
    let client = Client::builder()
        .timeout(Duration::from_secs(300))
        .build()
        .expect("an HTTP client");
    let (jobs, broken) = (AtomicUsize::new(0), AtomicUsize::new(0));
    let deadline = Instant::now() + duration;
    let mut rss_mib = Vec::new();
    thread::scope(|scope| {
        for index in 0..clients {
            let (client, jobs, broken) = (&client, &jobs, &broken);
            scope.spawn(move || {
                let mut round = 0;
                while Instant::now() < deadline {
                    let cancel = (index + round) % 5 == 0;
                    match chat(client, &host.url, index * 1000 + round, cancel) {
                        true => jobs.fetch_add(1, Ordering::Relaxed),
                        false => broken.fetch_add(1, Ordering::Relaxed),
                    };
                    round += 1;
                }
            });
        }
        while Instant::now() < deadline {
            rss_mib.push(host.resident_bytes() as f64 / (1024.0 * 1024.0));
            thread::sleep(every);
        }
    });
    SoakReport {
        jobs: jobs.into_inner(),
        broken: broken.into_inner(),
        rss_mib,
        every,
    }
}

/// One chat job, streamed to its end (or cancelled after its first token); whether it ended
/// with exactly one terminal event.
fn chat(client: &Client, url: &str, number: usize, cancel: bool) -> bool {
    let prompt = format!("Tell story number {number} about a lighthouse keeper.");
    let body = json!({"task": "text-generation", "params": {
        "messages": [{"role": "user", "content": prompt}], "max_tokens": 48, "temperature": 0.7, "seed": number}});
    let Ok(answer) = client.post(format!("{url}/v1/jobs")).json(&body).send() else {
        return false;
    };
    let answer: Value = answer.json().unwrap_or_default();
    let Some(id) = answer["job_id"].as_str() else {
        return false;
    };
    let Ok(stream) = client.get(format!("{url}/v1/jobs/{id}/stream")).send() else {
        return false;
    };
    let mut terminals = 0;
    for event in SseStream::new(stream) {
        if cancel && event.name == "token" && terminals == 0 {
            let _ = client.delete(format!("{url}/v1/jobs/{id}")).send();
        }
        terminals += usize::from(matches!(event.name.as_str(), "end" | "error"));
    }
    terminals == 1
}

impl fmt::Display for SoakReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "jobs {}, broken {}", self.jobs, self.broken)?;
        writeln!(f, "| seconds | host RSS (MiB) |\n|---|---|")?;
        for (index, rss) in self.rss_mib.iter().enumerate() {
            let at = index as f64 * self.every.as_secs_f64();
            writeln!(f, "| {at:.0} | {rss:.0} |")?;
        }
        Ok(())
    }
}
