//! Load on a running host: many concurrent clients submitting echo jobs and streaming,
//! cancelling, disconnecting, waiting or never reading, while the host's memory and file
//! descriptors are sampled. The report says what was lost; `cargo xtask load` runs it at full
//! scale, the `load` test at CI scale.

use crate::{Host, SseStream, open_files, resident_bytes};
use reqwest::blocking::Client;
use serde_json::{Value, json};
use std::{
    fmt,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

/// What one client does with its job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Behaviour {
    /// Reads the stream to its end.
    Stream,
    /// Reads the first event, cancels, reads to the end.
    Cancel,
    /// Reads the first event and hangs up.
    Disconnect,
    /// Submits with `?wait=true`.
    Wait,
    /// Never opens the stream (the host's unread timeout ends the job).
    Unread,
    /// Reads the stream of a job whose plugin panics after two words.
    Panic,
    /// Reads the stream of a job whose plugin fails after two words.
    Fail,
}

/// What a load run does.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Concurrent clients.
    pub clients: usize,
    /// Whether one client in ten asks for a job that panics and one for a job that fails.
    pub faults: bool,
    /// Send the host SIGTERM this long after the clients start; every client then streams
    /// (what the others' jobs became cannot be asked of a host that has exited).
    pub stop_after: Option<Duration>,
    /// How long each of a job's eight words takes.
    pub word_delay_ms: u64,
}

impl Plan {
    /// `clients` clients in the usual mix, no faults, no stop.
    pub fn clients(clients: usize) -> Self {
        Self {
            clients,
            faults: false,
            stop_after: None,
            word_delay_ms: 10,
        }
    }

    /// The mix: six in ten stream, one each cancels, disconnects, waits, never reads; with
    /// faults, two of the streaming ones ask for a panic and a failure instead.
    fn behaviour(&self, client: usize) -> Behaviour {
        if self.stop_after.is_some() {
            return Behaviour::Stream;
        }
        match (client % 10, self.faults) {
            (4, true) => Behaviour::Panic,
            (5, true) => Behaviour::Fail,
            (6, _) => Behaviour::Cancel,
            (7, _) => Behaviour::Disconnect,
            (8, _) => Behaviour::Wait,
            (9, _) => Behaviour::Unread,
            _ => Behaviour::Stream,
        }
    }
}

/// How one client's job went.
#[derive(Debug, Default)]
struct Outcome {
    accepted: Option<String>,
    rejected: bool,
    failed: Option<String>,
    terminals: usize,
    errored: bool,
    submit: Duration,
    first_event: Option<Duration>,
}

/// The figures of one load run.
#[derive(Debug)]
pub struct LoadReport {
    /// Concurrent clients.
    pub clients: usize,
    /// Jobs the host accepted.
    pub accepted: usize,
    /// Submissions refused with 503.
    pub rejected: usize,
    /// Accepted jobs that never ended (still queued or running, or unknown, after the run).
    pub lost: usize,
    /// Streams read to their end that did not carry exactly one terminal event last.
    pub bad_streams: usize,
    /// Streams whose terminal event was `error` (the jobs asked to panic or fail).
    pub error_ends: usize,
    /// Requests that failed otherwise (an unexpected status, a broken connection).
    pub errors: Vec<String>,
    /// Median and 99th percentile of the submit round trip.
    pub submit_ms: (f64, f64),
    /// Median and 99th percentile of the time from submitting to the first event.
    pub first_event_ms: (f64, f64),
    /// The host's resident memory before, at its peak, and after the run, in MiB.
    pub rss_mib: (f64, f64, f64),
    /// The host's open file descriptors before, at the peak, and after the run.
    pub fds: (usize, usize, usize),
    /// How long the run took.
    pub seconds: f64,
}

/// The host's resident memory (MiB) and open file descriptors.
fn host_usage(pid: u32) -> (f64, usize) {
    (resident_bytes(pid) as f64 / MIB, open_files(pid))
}

/// Bytes in a MiB.
const MIB: f64 = 1024.0 * 1024.0;

/// Median and 99th percentile, in milliseconds.
fn percentiles(mut samples: Vec<Duration>) -> (f64, f64) {
    if samples.is_empty() {
        return (0.0, 0.0);
    }
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    (at(0.5).as_secs_f64() * 1e3, at(0.99).as_secs_f64() * 1e3)
}

/// Runs the plan's clients at once against `host` (an echo host with an unread timeout of a few
/// seconds), then waits for every accepted job to end, and reports.
pub fn run_load(host: &Host, plan: &Plan) -> LoadReport {
    let clients = plan.clients;
    let client = Client::builder()
        .timeout(Duration::from_secs(120))
        .pool_max_idle_per_host(clients)
        .build()
        .expect("an HTTP client");
    let (rss_before, fds_before) = host_usage(host.pid());
    let peak = Arc::new(Mutex::new((rss_before, fds_before)));
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (peak, sampling, pid) = (peak.clone(), sampling.clone(), host.pid());
        thread::spawn(move || {
            while sampling.load(Ordering::Relaxed) {
                let (rss, fds) = host_usage(pid);
                let mut peak = peak.lock().unwrap();
                *peak = (peak.0.max(rss), peak.1.max(fds));
                drop(peak);
                thread::sleep(Duration::from_millis(50));
            }
        })
    };
    let started = Instant::now();
    let workers: Vec<_> = (0..clients)
        .map(|index| {
            let (client, url) = (client.clone(), host.url.clone());
            let (behaviour, delay) = (plan.behaviour(index), plan.word_delay_ms);
            thread::Builder::new()
                .stack_size(256 * 1024)
                .spawn(move || one_client(&client, &url, behaviour, delay))
                .expect("spawning a client thread")
        })
        .collect();
    if let Some(delay) = plan.stop_after {
        thread::sleep(delay);
        host.terminate();
    }
    let outcomes: Vec<Outcome> = workers.into_iter().map(|w| w.join().unwrap()).collect();
    let lost = match plan.stop_after {
        Some(_) => outcomes
            .iter()
            .filter(|o| o.accepted.is_some() && o.terminals == 0)
            .count(),
        None => count_lost(host, &outcomes),
    };
    let seconds = started.elapsed().as_secs_f64();
    sampling.store(false, Ordering::Relaxed);
    sampler.join().unwrap();
    drop(client);
    let (rss_after, fds_after) = settled_usage(host.pid(), fds_before);
    let (rss_peak, fds_peak) = *peak.lock().unwrap();
    LoadReport {
        clients,
        accepted: outcomes.iter().filter(|o| o.accepted.is_some()).count(),
        rejected: outcomes.iter().filter(|o| o.rejected).count(),
        lost,
        bad_streams: outcomes
            .iter()
            .filter(|o| o.failed.is_none() && o.terminals > 1)
            .count(),
        error_ends: outcomes.iter().filter(|o| o.errored).count(),
        errors: outcomes.iter().filter_map(|o| o.failed.clone()).collect(),
        submit_ms: percentiles(outcomes.iter().map(|o| o.submit).collect()),
        first_event_ms: percentiles(outcomes.iter().filter_map(|o| o.first_event).collect()),
        rss_mib: (rss_before, rss_peak, rss_after),
        fds: (fds_before, fds_peak, fds_after),
        seconds,
    }
}

/// One client's job of eight words, `delay_ms` each, done its way.
fn one_client(client: &Client, url: &str, behaviour: Behaviour, delay_ms: u64) -> Outcome {
    let mut outcome = Outcome::default();
    let mut params =
        json!({"text": "one two three four five six seven eight", "delay_ms": delay_ms});
    match behaviour {
        Behaviour::Panic => params["panic_after"] = json!(2),
        Behaviour::Fail => params["fail_after"] = json!(2),
        _ => {}
    }
    let body = json!({"task": "echo", "params": params});
    let query = if behaviour == Behaviour::Wait {
        "?wait=true"
    } else {
        ""
    };
    let submitted = Instant::now();
    let response = match client
        .post(format!("{url}/v1/jobs{query}"))
        .json(&body)
        .send()
    {
        Ok(response) => response,
        Err(error) => {
            outcome.failed = Some(format!("submit: {error}"));
            return outcome;
        }
    };
    outcome.submit = submitted.elapsed();
    let status = response.status().as_u16();
    let answer: Value = response.json().unwrap_or_default();
    match (status, behaviour) {
        (503, _) => {
            outcome.rejected = true;
            return outcome;
        }
        (200, Behaviour::Wait) => {
            outcome.accepted = answer["job_id"].as_str().map(str::to_string);
            outcome.terminals = usize::from(answer.get("stop_reason").is_some());
            outcome.first_event = Some(outcome.submit);
            return outcome;
        }
        (202, _) => outcome.accepted = answer["job_id"].as_str().map(str::to_string),
        _ => {
            outcome.failed = Some(format!("submit answered {status}: {answer}"));
            return outcome;
        }
    }
    let id = outcome.accepted.clone().unwrap_or_default();
    if behaviour == Behaviour::Unread {
        return outcome;
    }
    let stream = match client.get(format!("{url}/v1/jobs/{id}/stream")).send() {
        Ok(stream) if stream.status() == 200 => stream,
        Ok(stream) => {
            outcome.failed = Some(format!("stream answered {}", stream.status()));
            return outcome;
        }
        Err(error) => {
            outcome.failed = Some(format!("stream: {error}"));
            return outcome;
        }
    };
    let mut events = SseStream::new(stream);
    let mut last = String::new();
    for (index, event) in events.by_ref().enumerate() {
        if index == 0 {
            outcome.first_event = Some(submitted.elapsed());
            match behaviour {
                Behaviour::Disconnect => return outcome,
                Behaviour::Cancel => {
                    let _ = client.delete(format!("{url}/v1/jobs/{id}")).send();
                }
                _ => {}
            }
        }
        if matches!(event.name.as_str(), "end" | "error") {
            outcome.terminals += 1;
            outcome.errored = event.name == "error";
        }
        last = event.name;
    }
    if outcome.terminals != 1 || !matches!(last.as_str(), "end" | "error") {
        outcome.terminals = outcome.terminals.max(2);
    }
    outcome
}

/// Accepted jobs that have not ended once every client is done, after up to 30 s for the
/// unread and disconnected ones to be ended by the host.
fn count_lost(host: &Host, outcomes: &[Outcome]) -> usize {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut pending: Vec<&str> = outcomes
        .iter()
        .filter_map(|o| o.accepted.as_deref())
        .collect();
    while !pending.is_empty() && Instant::now() < deadline {
        pending.retain(|id| {
            let state = host
                .get(&format!("/v1/jobs/{id}"))
                .json::<Value>()
                .unwrap_or_default();
            !matches!(
                state["state"].as_str(),
                Some("completed" | "cancelled" | "failed")
            )
        });
        if !pending.is_empty() {
            thread::sleep(Duration::from_millis(200));
        }
    }
    pending.len()
}

/// The host's usage once its connections have closed (up to 20 s: longer than the header
/// timeout the load test gives idle connections).
fn settled_usage(pid: u32, fds_before: usize) -> (f64, usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (rss, fds) = host_usage(pid);
        if fds <= fds_before || Instant::now() >= deadline {
            return (rss, fds);
        }
        thread::sleep(Duration::from_millis(100));
    }
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "| figure | value |\n|---|---|")?;
        writeln!(f, "| clients | {} |", self.clients)?;
        writeln!(
            f,
            "| accepted / rejected (503) / lost | {} / {} / {} |",
            self.accepted, self.rejected, self.lost
        )?;
        writeln!(
            f,
            "| streams without exactly one terminal event | {} |",
            self.bad_streams
        )?;
        writeln!(f, "| other errors | {} |", self.errors.len())?;
        writeln!(
            f,
            "| submit p50 / p99 | {:.1} / {:.1} ms |",
            self.submit_ms.0, self.submit_ms.1
        )?;
        writeln!(
            f,
            "| first event p50 / p99 | {:.1} / {:.1} ms |",
            self.first_event_ms.0, self.first_event_ms.1
        )?;
        writeln!(
            f,
            "| host RSS before / peak / after | {:.0} / {:.0} / {:.0} MiB |",
            self.rss_mib.0, self.rss_mib.1, self.rss_mib.2
        )?;
        writeln!(
            f,
            "| host open files before / peak / after | {} / {} / {} |",
            self.fds.0, self.fds.1, self.fds.2
        )?;
        write!(f, "| run | {:.1} s |", self.seconds)
    }
}
