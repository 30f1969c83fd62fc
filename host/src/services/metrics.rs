//! Prometheus metrics, every series labelled with `model_name`: queue and running gauges (the
//! ones Kubernetes' inference gateway balances on), jobs by outcome, durations, tokens, steps,
//! load times. Optionally the same gauges under vLLM's names, which the endpoint picker reads
//! by default.

use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{Histogram, exponential_buckets},
    },
    registry::Registry,
};
use std::sync::atomic::AtomicU64;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ModelLabel {
    model_name: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    model_name: String,
    outcome: String,
}

type FloatGauge = Gauge<f64, AtomicU64>;

/// All metrics of this host.
pub struct Metrics {
    registry: Registry,
    label: ModelLabel,
    waiting: Family<ModelLabel, Gauge>,
    running: Family<ModelLabel, Gauge>,
    cache_usage: Family<ModelLabel, FloatGauge>,
    jobs: Family<OutcomeLabels, Counter>,
    job_duration: Family<ModelLabel, Histogram>,
    first_event: Family<ModelLabel, Histogram>,
    tokens: Family<ModelLabel, Counter>,
    tokens_per_second: Family<ModelLabel, FloatGauge>,
    steps: Family<ModelLabel, Counter>,
    plugin_load: Family<ModelLabel, FloatGauge>,
    model_load: Family<ModelLabel, FloatGauge>,
}

fn seconds_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.005, 2.0, 16))
}

impl Metrics {
    /// Metrics for `model_name`; with `vllm_compat`, the gateway gauges also under vLLM's names.
    pub fn new(model_name: &str, vllm_compat: bool) -> Self {
        let mut registry = Registry::default();
        let metrics = Self {
            label: ModelLabel {
                model_name: model_name.to_string(),
            },
            waiting: Family::default(),
            running: Family::default(),
            cache_usage: Family::default(),
            jobs: Family::default(),
            job_duration: Family::new_with_constructor(seconds_histogram),
            first_event: Family::new_with_constructor(seconds_histogram),
            tokens: Family::default(),
            tokens_per_second: Family::default(),
            steps: Family::default(),
            plugin_load: Family::default(),
            model_load: Family::default(),
            registry: Registry::default(),
        };
        let m = &metrics;
        registry.register(
            "rbee_num_requests_waiting",
            "Jobs waiting in the queue",
            m.waiting.clone(),
        );
        registry.register(
            "rbee_num_requests_running",
            "Jobs executing",
            m.running.clone(),
        );
        registry.register(
            "rbee_kv_cache_usage_ratio",
            "Worker cache (KV cache, slots) usage, 0 to 1",
            m.cache_usage.clone(),
        );
        registry.register(
            "rbee_queue_depth",
            "Jobs waiting in the queue",
            m.waiting.clone(),
        );
        registry.register("rbee_jobs", "Jobs finished, by outcome", m.jobs.clone());
        registry.register(
            "rbee_job_duration_seconds",
            "Time from submission to the end of a job",
            m.job_duration.clone(),
        );
        registry.register(
            "rbee_time_to_first_event_seconds",
            "Time from submission to a job's first output",
            m.first_event.clone(),
        );
        registry.register(
            "rbee_tokens_generated",
            "Text tokens streamed",
            m.tokens.clone(),
        );
        registry.register(
            "rbee_tokens_per_second",
            "Output tokens per second of the last text job",
            m.tokens_per_second.clone(),
        );
        registry.register(
            "rbee_steps",
            "Progress steps (e.g. denoising steps) done",
            m.steps.clone(),
        );
        registry.register(
            "rbee_plugin_load_seconds",
            "Time to open and check the plugin",
            m.plugin_load.clone(),
        );
        registry.register(
            "rbee_model_load_seconds",
            "Time the plugin took to load the model",
            m.model_load.clone(),
        );
        if vllm_compat {
            registry.register(
                "vllm:num_requests_waiting",
                "Jobs waiting (vLLM name)",
                m.waiting.clone(),
            );
            registry.register(
                "vllm:num_requests_running",
                "Jobs executing (vLLM name)",
                m.running.clone(),
            );
            registry.register(
                "vllm:kv_cache_usage_perc",
                "Cache usage, 0 to 1 (vLLM name)",
                m.cache_usage.clone(),
            );
        }
        Self {
            registry,
            ..metrics
        }
    }

    /// Records how long opening the plugin took.
    pub fn plugin_loaded(&self, seconds: f64) {
        self.plugin_load.get_or_create(&self.label).set(seconds);
    }

    /// Records how long loading the model took.
    pub fn model_loaded(&self, seconds: f64) {
        self.model_load.get_or_create(&self.label).set(seconds);
    }

    /// Records a job's first output, `seconds` after submission.
    pub fn first_event(&self, seconds: f64) {
        self.first_event.get_or_create(&self.label).observe(seconds);
    }

    /// Counts one streamed text token.
    pub fn token(&self) {
        self.tokens.get_or_create(&self.label).inc();
    }

    /// Counts one progress step.
    pub fn step(&self) {
        self.steps.get_or_create(&self.label).inc();
    }

    /// Records a finished job: its outcome, its duration since submission, and for text jobs
    /// the tokens it produced while running for `running_seconds`.
    pub fn job_finished(&self, outcome: &str, seconds: f64, tokens: u64, running_seconds: f64) {
        let labels = OutcomeLabels {
            model_name: self.label.model_name.clone(),
            outcome: outcome.to_string(),
        };
        self.jobs.get_or_create(&labels).inc();
        self.job_duration
            .get_or_create(&self.label)
            .observe(seconds);
        if tokens > 0 && running_seconds > 0.0 {
            self.tokens_per_second
                .get_or_create(&self.label)
                .set(tokens as f64 / running_seconds);
        }
    }

    /// The text exposition, with the gauges set to the current queue and cache figures.
    pub fn render(&self, waiting: usize, running: usize, cache_usage: f64) -> String {
        self.waiting.get_or_create(&self.label).set(waiting as i64);
        self.running.get_or_create(&self.label).set(running as i64);
        self.cache_usage.get_or_create(&self.label).set(cache_usage);
        let mut text = String::new();
        encode(&mut text, &self.registry).expect("writing to a String cannot fail");
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_labelled_series_and_vllm_names() {
        let metrics = Metrics::new("smol", true);
        metrics.token();
        metrics.job_finished("completed", 0.5, 10, 0.25);
        let text = metrics.render(3, 1, 0.25);
        assert!(
            text.contains(r#"rbee_num_requests_waiting{model_name="smol"} 3"#),
            "{text}"
        );
        assert!(
            text.contains(r#"vllm:num_requests_running{model_name="smol"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"rbee_jobs_total{model_name="smol",outcome="completed"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"rbee_tokens_per_second{model_name="smol"} 40"#),
            "{text}"
        );
        assert!(
            !Metrics::new("smol", false)
                .render(0, 0, 0.0)
                .contains("vllm:")
        );
    }
}
