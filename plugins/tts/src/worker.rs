//! The loaded worker: validates `text-to-speech` jobs and speaks their input sentence by
//! sentence, one `artifact` event (16-bit PCM) per sentence as soon as it is ready.

use crate::{
    model::{Parler, Sampler},
    params::SpeechParams,
    resample::resample,
    sentences::{self, MAX_CHARS},
    voices,
};
use rbee_plugin_api::{
    Artifact, EventSinkExt, Job, JobEnd, JobSink, PluginError, PluginWorker, WorkerStatus,
    tasks::text_to_speech::{MEDIA_TYPE, TASK, chunk, end},
};
use rbee_plugin_kit::error::internal;
use serde_json::json;
use std::time::Instant;

/// A worker holding one loaded Parler-TTS model.
pub struct SpeechWorker {
    model_name: String,
    model: Parler,
}

impl SpeechWorker {
    /// A worker for `model`, loaded from `model_name`.
    pub fn new(model_name: String, model: Parler) -> Self {
        Self { model_name, model }
    }

    /// The job's parameters and the description of its voice.
    fn params(&self, job: &Job) -> Result<(SpeechParams, String), PluginError> {
        if job.task != TASK {
            return Err(PluginError::unsupported_task(&job.task, &[TASK]));
        }
        let params = SpeechParams::parse(&job.params_json)?;
        let description =
            voices::description(params.voice.as_deref(), params.instructions.as_deref())?;
        Ok((params, description))
    }
}

impl PluginWorker for SpeechWorker {
    fn validate(&self, job: &Job) -> Result<(), PluginError> {
        self.params(job).map(drop)
    }

    fn execute(&self, job: Job, sink: JobSink) -> Result<JobEnd, PluginError> {
        let began = Instant::now();
        let (params, description) = self.params(&job)?;
        let from = self.model.sample_rate();
        let rate = params.sample_rate.unwrap_or(from);
        let mut sampler = Sampler::new(params.seed.unwrap_or(0), params.temperature.unwrap_or(1.0));
        let mut session = self.model.session();
        let voice = session.voice(&description)?;
        let stop = || sink.is_cancelled();
        let (mut samples_out, mut tokens, mut first_audio_ms) = (0usize, 0usize, None);
        for (index, sentence) in sentences::split(&params.input, MAX_CHARS)
            .iter()
            .enumerate()
        {
            let Some(spoken) = session.speak(sentence, &voice, &mut sampler, &stop)? else {
                return Ok(JobEnd::cancelled());
            };
            tokens += spoken.tokens;
            let audio = resample(&spoken.samples, from, rate, params.speed()).map_err(internal)?;
            let bytes: Vec<u8> = audio
                .iter()
                .flat_map(|x| ((x * 32767.0).round() as i16).to_le_bytes())
                .collect();
            samples_out += audio.len();
            let metadata = json!({
                (chunk::INDEX): index,
                (chunk::SAMPLE_RATE): rate,
                (chunk::TEXT): sentence,
            });
            let metadata = metadata.to_string();
            let flow = sink.artifact(Artifact {
                media_type: MEDIA_TYPE.into(),
                data: bytes.as_slice().into(),
                metadata_json: metadata.as_str().into(),
            });
            first_audio_ms.get_or_insert(began.elapsed().as_secs_f64() * 1000.0);
            if flow.is_stop() {
                return Ok(JobEnd::cancelled());
            }
        }
        let details = json!({
            (end::AUDIO_SECONDS): samples_out as f64 / f64::from(rate),
            (end::SAMPLE_RATE): rate,
            (end::FIRST_AUDIO_MS): first_audio_ms,
            (end::INPUT_TOKENS): tokens,
            "synthesis_seconds": began.elapsed().as_secs_f64(),
        });
        Ok(JobEnd::completed().with_details(details.to_string()))
    }

    fn status(&self) -> WorkerStatus {
        WorkerStatus {
            model: self.model_name.as_str().into(),
            memory_bytes: self.model.weight_bytes(),
            cache_usage_ratio: 0.0,
        }
    }
}
