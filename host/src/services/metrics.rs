//! Prometheus metrics, every series labelled with the `model_name` of the model it is about: queue and running gauges (the
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

/// The series of every model this host serves, and their exposition.
pub struct MetricsRegistry {
    registry: Registry,
    families: Families,
}

/// One model's handle on the series: everything it records carries its `model_name`.
#[derive(Clone)]
pub struct Metrics {
    label: ModelLabel,
    families: Families,
}

/// The gauges of one model at the moment `/metrics` is read.
pub struct ModelGauges<'a> {
    /// The model's handle.
    pub metrics: &'a Metrics,
    /// Jobs waiting.
    pub waiting: usize,
    /// Jobs running.
    pub running: usize,
    /// Cache usage, 0 to 1.
    pub cache_usage: f64,
}

#[derive(Clone)]
struct Families {
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

impl MetricsRegistry {
    /// The series, registered; with `vllm_compat`, the gateway gauges also under vLLM's names.
    pub fn new(vllm_compat: bool) -> Self {
        let mut registry = Registry::default();
        let m = Families {
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
        };
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
            families: m,
        }
    }

    /// The handle a model records through, its series labelled `model_name`.
    pub fn for_model(&self, model_name: &str) -> Metrics {
        Metrics {
            label: ModelLabel {
                model_name: model_name.to_string(),
            },
            families: self.families.clone(),
        }
    }

    /// The text exposition, with each model's gauges set to its current figures.
    pub fn render(&self, models: &[ModelGauges<'_>]) -> String {
        for gauges in models {
            let (families, label) = (&gauges.metrics.families, &gauges.metrics.label);
            families
                .waiting
                .get_or_create(label)
                .set(gauges.waiting as i64);
            families
                .running
                .get_or_create(label)
                .set(gauges.running as i64);
            families
                .cache_usage
                .get_or_create(label)
                .set(gauges.cache_usage);
        }
        let mut text = String::new();
        encode(&mut text, &self.registry).expect("writing to a String cannot fail");
        text
    }
}

impl Metrics {
    /// Records how long opening the plugin took.
    pub fn plugin_loaded(&self, seconds: f64) {
        self.families
            .plugin_load
            .get_or_create(&self.label)
            .set(seconds);
    }

    /// Records how long loading the model took.
    pub fn model_loaded(&self, seconds: f64) {
        self.families
            .model_load
            .get_or_create(&self.label)
            .set(seconds);
    }

    /// Records a job's first output, `seconds` after submission.
    pub fn first_event(&self, seconds: f64) {
        self.families
            .first_event
            .get_or_create(&self.label)
            .observe(seconds);
    }

    /// Counts one streamed text token.
    pub fn token(&self) {
        self.families.tokens.get_or_create(&self.label).inc();
    }

    /// Counts one progress step.
    pub fn step(&self) {
        self.families.steps.get_or_create(&self.label).inc();
    }

    /// Records a finished job: its outcome, its duration since submission, and for text jobs
    /// the tokens it produced while running for `running_seconds`.
    pub fn job_finished(&self, outcome: &str, seconds: f64, tokens: u64, running_seconds: f64) {
        let labels = OutcomeLabels {
            model_name: self.label.model_name.clone(),
            outcome: outcome.to_string(),
        };
        self.families.jobs.get_or_create(&labels).inc();
        self.families
            .job_duration
            .get_or_create(&self.label)
            .observe(seconds);
        if tokens > 0 && running_seconds > 0.0 {
            self.families
                .tokens_per_second
                .get_or_create(&self.label)
                .set(tokens as f64 / running_seconds);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_labelled_series_and_vllm_names() {
        let registry = MetricsRegistry::new(true);
        let (smol, other) = (registry.for_model("smol"), registry.for_model("other"));
        smol.token();
        smol.job_finished("completed", 0.5, 10, 0.25);
        let gauges = |metrics, waiting| ModelGauges {
            metrics,
            waiting,
            running: 1,
            cache_usage: 0.25,
        };
        let text = registry.render(&[gauges(&smol, 3), gauges(&other, 5)]);
        assert!(
            text.contains(r#"rbee_num_requests_waiting{model_name="other"} 5"#),
            "{text}"
        );
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
        assert!(!MetricsRegistry::new(false).render(&[]).contains("vllm:"));
    }
}
