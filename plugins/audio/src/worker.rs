//! The loaded worker: validates `transcription` jobs and runs them window by window (up to
//! [`WINDOWS_PER_BATCH`] side by side when the job asks for no timestamps), streaming
//! one text event (or, if the job asks for `token_events`, one per token) and one
//! [`transcription::SEGMENT`] event per segment. A segment event carries `index`,
//! `start`, `end` (seconds), `text` and its text `tokens`, `seek` (the mel frame its window
//! starts at) and, as OpenAI Whisper reports them per window, `temperature`, `avg_logprob`,
//! `compression_ratio` and `no_speech_prob`.

use crate::{
    audio,
    decode::{self, Decoded, LOGPROB_THRESHOLD, NO_SPEECH_THRESHOLD, Options},
    error::AudioError,
    mel,
    model::LoadedModel,
    params::{Task, TranscriptionParams},
    token_text::token_pieces,
};
use candle_core::Tensor;
use candle_transformers::models::whisper::{HOP_LENGTH, N_FRAMES, N_SAMPLES, SAMPLE_RATE};
use rbee_plugin_api::{
    EventSinkExt, Job, JobEnd, JobSink, PluginError, PluginWorker, WorkerStatus,
    tasks::transcription::{self, TASK, end, param, segment},
};
use serde_json::json;
use std::{
    sync::{Mutex, PoisonError},
    time::Instant,
};

/// Mel frames per second.
const FRAMES_PER_SECOND: f64 = SAMPLE_RATE as f64 / HOP_LENGTH as f64;

/// Windows decoded side by side when they do not depend on each other (no timestamps): a step
/// then reads each decoder weight once for all of them.
const WINDOWS_PER_BATCH: usize = 4;

/// A speech-to-text worker holding one Whisper model.
pub struct AudioWorker {
    loaded: Mutex<LoadedModel>,
    model_name: String,
    memory_bytes: u64,
    multilingual: bool,
    languages: Vec<&'static str>,
    max_audio_seconds: f64,
}

/// What a job produced so far, for the `end` event.
struct Summary {
    audio_seconds: f64,
    language: String,
    segments: u64,
    text_events: u64,
    started: Instant,
}

impl Summary {
    fn details(&self) -> String {
        let processing = self.started.elapsed().as_secs_f64();
        json!({
            end::AUDIO_SECONDS: self.audio_seconds,
            "processing_seconds": processing,
            "real_time_factor": if self.audio_seconds > 0.0 { processing / self.audio_seconds } else { 0.0 },
            "segments": self.segments,
            end::LANGUAGE: self.language,
        })
        .to_string()
    }
}

impl AudioWorker {
    /// Wraps a loaded model; `model_name` is what [`PluginWorker::status`] reports and
    /// `max_audio_seconds` the longest audio a job may send.
    pub fn new(loaded: LoadedModel, model_name: String, max_audio_seconds: f64) -> Self {
        Self {
            memory_bytes: loaded.memory_bytes,
            multilingual: loaded.multilingual,
            languages: loaded
                .tokens
                .languages
                .iter()
                .map(|(code, _)| *code)
                .collect(),
            loaded: Mutex::new(loaded),
            model_name,
            max_audio_seconds,
        }
    }

    /// Parses the job's parameters and checks them against this model; decodes the audio.
    fn prepare<'a>(
        &self,
        job: &'a Job,
    ) -> Result<(TranscriptionParams<'a>, audio::Pcm), AudioError> {
        let params = TranscriptionParams::parse(job)?;
        match params.language.as_deref() {
            Some(language) if !self.multilingual && language != "en" => {
                return Err(AudioError::invalid_param(
                    param::LANGUAGE,
                    format!("this model is English-only; it cannot take '{language}'"),
                ));
            }
            Some(language) if !self.languages.contains(&language) => {
                return Err(AudioError::invalid_param(
                    param::LANGUAGE,
                    format!(
                        "unknown language '{language}' (expected a Whisper code such as en, fr, de)"
                    ),
                ));
            }
            _ => {}
        }
        if params.task == Task::Translate && !self.multilingual {
            return Err(AudioError::invalid_param(
                param::TASK,
                "this model is English-only and cannot translate",
            ));
        }
        let pcm = audio::decode(params.audio.to_vec(), self.max_audio_seconds)?;
        Ok((params, pcm))
    }

    fn run(
        &self,
        params: &TranscriptionParams<'_>,
        pcm: audio::Pcm,
        sink: &JobSink,
    ) -> Result<JobEnd, AudioError> {
        let mut summary = Summary {
            audio_seconds: pcm.seconds(),
            language: String::new(),
            segments: 0,
            text_events: 0,
            started: Instant::now(),
        };
        let samples = audio::to_16k(pcm)?;
        let mut guard = self.loaded.lock().unwrap_or_else(PoisonError::into_inner);
        let model = &mut *guard;
        let n_mels = model.config.num_mel_bins;
        let mut padded = samples.clone();
        padded.resize(samples.len() + N_SAMPLES, 0.0);
        let features = mel::log_mel(&model.config, &padded, &model.filters);
        let total_frames = features.len() / n_mels;
        let device = model.device.clone();
        let mel = Tensor::from_vec(features, (1, n_mels, total_frames), &device)?;
        let content_frames = samples.len().div_ceil(HOP_LENGTH);

        let encode = |model: &mut LoadedModel, seek: usize| {
            model.encoder.forward(&mel.narrow(2, seek, N_FRAMES)?)
        };
        let language = match (&params.language, model.multilingual) {
            (_, false) => None,
            (Some(code), true) => Some(code.clone()),
            (None, true) => {
                let first = encode(model, 0)?;
                Some(detect_language(model, &first)?)
            }
        };
        summary.language = language.clone().unwrap_or_else(|| "en".into());
        let started =
            json!({end::LANGUAGE: summary.language, end::AUDIO_SECONDS: summary.audio_seconds});
        if sink.started(started.to_string().as_str().into()).is_stop() {
            return Ok(cancelled(&summary));
        }
        let language_token = language.and_then(|code| {
            let tokens = &model.tokens.languages;
            tokens.iter().find(|(c, _)| *c == code).map(|(_, id)| *id)
        });
        let prompt = self.prompt_tokens(model, params.initial_prompt.as_deref())?;
        let options = Options {
            language: language_token,
            task: params.task,
            timestamps: params.timestamps,
            temperature: params.temperature as f64,
            prompt: &prompt,
        };

        let mut seek = 0;
        while seek < content_frames {
            // With timestamps a window starts where the one before ended its last segment, so
            // windows go one at a time; without, each is the next 30 s and several decode
            // side by side.
            let batch = if params.timestamps {
                1
            } else {
                WINDOWS_PER_BATCH
            };
            let windows: Vec<Span> = (0..batch)
                .scan(seek, |start, _| {
                    let frames = content_frames.saturating_sub(*start).min(N_FRAMES);
                    let window = Span {
                        start: *start,
                        frames,
                    };
                    *start += frames;
                    (frames > 0).then_some(window)
                })
                .collect();
            let features = windows
                .iter()
                .map(|window| encode(model, window.start))
                .collect::<candle_core::Result<Vec<_>>>()?;
            let mut poll = || sink.is_cancelled();
            let Some(decoded) =
                decode::decode_with_fallback(model, &features, &options, &mut poll)?
            else {
                return Ok(cancelled(&summary));
            };
            for (window, decoded) in windows.into_iter().zip(decoded) {
                let Some(consumed) = emit(model, params, sink, &mut summary, window, &decoded)?
                else {
                    return Ok(cancelled(&summary));
                };
                seek = window.start + consumed;
            }
        }
        Ok(JobEnd::completed().with_details(summary.details()))
    }

    /// The prompt's tokens: a space and the text, keeping the last half-context's worth.
    fn prompt_tokens(
        &self,
        model: &LoadedModel,
        prompt: Option<&str>,
    ) -> Result<Vec<u32>, AudioError> {
        let Some(prompt) = prompt else {
            return Ok(Vec::new());
        };
        let encoding = model
            .tokenizer
            .encode(format!(" {}", prompt.trim()), false)
            .map_err(|e| AudioError::Tokenizer(e.to_string()))?;
        let ids = encoding.get_ids();
        let keep = model.config.max_target_positions / 2 - 1;
        Ok(ids[ids.len().saturating_sub(keep)..].to_vec())
    }
}

/// A window's place in the mel frames.
#[derive(Clone, Copy)]
struct Span {
    start: usize,
    frames: usize,
}

/// Streams a decoded window's segments. Returns how many of its frames it consumed (where the
/// next window starts), or `None` when the job was cancelled.
fn emit(
    model: &LoadedModel,
    params: &TranscriptionParams<'_>,
    sink: &JobSink,
    summary: &mut Summary,
    window: Span,
    decoded: &Decoded,
) -> Result<Option<usize>, AudioError> {
    if decoded.no_speech_prob > NO_SPEECH_THRESHOLD && decoded.avg_logprob < LOGPROB_THRESHOLD {
        return Ok(Some(window.frames));
    }
    let window_seconds = window.frames as f64 / FRAMES_PER_SECOND;
    let offset = window.start as f64 / FRAMES_PER_SECOND;
    let (pieces, consumed) = decode::split(
        &decoded.tokens,
        model.tokens.timestamp_begin,
        params.timestamps,
        window_seconds,
    );
    for piece in pieces {
        let text = model
            .tokenizer
            .decode(&piece.tokens, true)
            .map_err(|e| AudioError::Tokenizer(e.to_string()))?;
        let text = text.trim();
        if text.is_empty() {
            continue;
        }
        let index = summary.segments;
        summary.segments += 1;
        let (start, end) = (offset + piece.start, offset + piece.end.min(window_seconds));
        let streamed = match params.token_events {
            false if index == 0 => vec![text.to_string()],
            false => vec![format!(" {text}")],
            true => token_pieces(&model.tokenizer, &piece.tokens)?,
        };
        let segment = json!({
            "index": index, segment::SEEK: window.start, segment::START: round(start),
            segment::END: round(end), segment::TEXT: text, segment::TOKENS: piece.tokens,
            "temperature": decoded.temperature,
            "avg_logprob": decoded.avg_logprob, "compression_ratio": decoded.compression_ratio,
            "no_speech_prob": decoded.no_speech_prob,
        });
        for piece_text in streamed {
            let piece_text = match summary.text_events {
                0 => piece_text.trim_start(),
                _ => piece_text.as_str(),
            };
            if piece_text.is_empty() {
                continue;
            }
            let event_index = summary.text_events;
            summary.text_events += 1;
            if sink.text(event_index, piece_text.into()).is_stop() {
                return Ok(None);
            }
        }
        let segment = segment.to_string();
        if sink
            .custom(transcription::SEGMENT.into(), segment.as_str().into())
            .is_stop()
        {
            return Ok(None);
        }
    }
    let consumed_frames = (consumed * FRAMES_PER_SECOND).round() as usize;
    Ok(Some(match consumed_frames {
        0 => window.frames,
        frames => frames.min(window.frames),
    }))
}

/// The most likely spoken language: the language token the decoder prefers after
/// `<|startoftranscript|>`.
fn detect_language(model: &LoadedModel, features: &Tensor) -> Result<String, AudioError> {
    let mut windows = model.decoder.windows(std::slice::from_ref(features))?;
    let hidden = windows.forward(&[&[model.tokens.sot]])?;
    let logits = windows.logits(&hidden[0])?;
    let score = |id: u32| {
        logits
            .get(id as usize)
            .copied()
            .unwrap_or(f32::NEG_INFINITY)
    };
    let mut languages = model.tokens.languages.iter();
    let first = languages.next().ok_or_else(|| {
        AudioError::Tokenizer("the vocabulary has no language tokens".to_string())
    })?;
    let best = languages.fold(first, |best, candidate| {
        if score(candidate.1) > score(best.1) {
            candidate
        } else {
            best
        }
    });
    Ok(best.0.to_string())
}

/// Times to the millisecond.
fn round(seconds: f64) -> f64 {
    (seconds * 1000.0).round() / 1000.0
}

fn cancelled(summary: &Summary) -> JobEnd {
    JobEnd::cancelled().with_details(summary.details())
}

impl PluginWorker for AudioWorker {
    fn validate(&self, job: &Job) -> Result<(), PluginError> {
        if job.task.as_str() != TASK {
            return Err(PluginError::unsupported_task(&job.task, &[TASK]));
        }
        self.prepare(job)?;
        Ok(())
    }

    fn execute(&self, job: Job, sink: JobSink) -> Result<JobEnd, PluginError> {
        if job.task.as_str() != TASK {
            return Err(PluginError::unsupported_task(&job.task, &[TASK]));
        }
        let (params, pcm) = self.prepare(&job)?;
        Ok(self.run(&params, pcm, &sink)?)
    }

    fn status(&self) -> WorkerStatus {
        WorkerStatus {
            model: self.model_name.as_str().into(),
            memory_bytes: self.memory_bytes,
            cache_usage_ratio: 0.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{
        clip, clip_audio, details, job, normalise, run, run_on, segments, worker,
    };
    use rbee_plugin_api::{
        LoadRequest,
        testing::{RecordingSink, TestHost},
    };
    use serde_json::{Value, json};

    fn transcribe(name: &str) -> (RecordingSink, JobEnd) {
        let sink = RecordingSink::new();
        let end = run(&clip_audio(name), json!({}), &sink).unwrap();
        (sink, end)
    }

    #[test]
    fn the_clips_transcribe_to_their_reference_text() {
        for name in ["hello_world", "quick_brown_fox"] {
            let (sink, end) = transcribe(name);
            let reference = clip(name).1;
            assert_eq!(normalise(&sink.text()), normalise(&reference), "{name}");
            let details = details(&end);
            eprintln!(
                "{name}: {:?} real-time factor {}",
                sink.text(),
                details["real_time_factor"]
            );
            assert_eq!(end.stop_reason.as_str(), "completed");
        }
    }

    #[test]
    fn an_initial_prompt_steers_the_spelling() {
        let audio = clip_audio("counting");
        let plain = RecordingSink::new();
        run(&audio, json!({}), &plain).unwrap();
        let prompted = RecordingSink::new();
        let params = json!({"initial_prompt": "One, two, three, four."});
        run(&audio, params, &prompted).unwrap();
        assert_ne!(
            normalise(&plain.text()),
            normalise(&clip("counting").1),
            "tiny.en writes digits"
        );
        assert_eq!(normalise(&prompted.text()), normalise(&clip("counting").1));
    }

    #[test]
    fn segments_carry_times_and_the_end_carries_the_summary() {
        let (sink, end) = transcribe("quick_brown_fox");
        let segments = segments(&sink);
        let texts = sink.texts();
        assert!(!segments.is_empty());
        assert_eq!(segments.len(), texts.len());
        let details = details(&end);
        let audio_seconds = details["audio_seconds"].as_f64().unwrap();
        assert!(
            (audio_seconds - 184_952.0 / 4.0 / 16_000.0).abs() < 0.1,
            "{audio_seconds}"
        );
        let mut last_end = 0.0;
        for (i, segment) in segments.iter().enumerate() {
            assert_eq!(segment["index"], i as u64);
            let (start, stop) = (
                segment["start"].as_f64().unwrap(),
                segment["end"].as_f64().unwrap(),
            );
            assert!(
                start >= last_end - 1e-9 && stop > start && stop <= audio_seconds + 0.05,
                "{segment}"
            );
            last_end = stop;
            assert_eq!(segment["text"].as_str().unwrap(), texts[i].1.trim());
            let stat = |name: &str| segment[name].as_f64().unwrap();
            for name in transcription::segment::STATS {
                assert!(segment[name].is_number(), "{name}: {segment}");
            }
            assert!(
                (-1.0..0.0).contains(&stat("avg_logprob")),
                "clear speech is decoded confidently: {segment}"
            );
            assert!((0.5..2.4).contains(&stat("compression_ratio")), "{segment}");
            assert!((0.0..0.2).contains(&stat("no_speech_prob")), "{segment}");
            assert_eq!(stat("temperature"), 0.0);
            assert_eq!(segment["seek"], 0);
            let tokens: Vec<u32> = serde_json::from_value(segment["tokens"].clone()).unwrap();
            let model = worker().loaded.lock().unwrap();
            let decoded = model.tokenizer.decode(&tokens, true).unwrap();
            assert_eq!(decoded.trim(), segment["text"]);
        }
        assert_eq!(details["segments"], segments.len() as u64);
        assert_eq!(details["language"], "en");
        assert!(details["real_time_factor"].as_f64().unwrap() > 0.0);
        let started: Value = serde_json::from_str(&sink.started()[0]).unwrap();
        assert_eq!(started["language"], "en");
    }

    #[test]
    fn repetitive_text_is_decoded_again_hotter_and_clean_speech_is_not() {
        let names = ["counting", "hello_world", "quick_brown_fox"];
        for name in names {
            let (sink, _) = transcribe(name);
            for segment in segments(&sink) {
                assert_eq!(segment["temperature"], 0.0, "{name}: {segment}");
                assert!(segment["compression_ratio"].as_f64().unwrap() < 2.4);
            }
        }
        let pause = vec![0.0; 8_000];
        let round: Vec<f32> = names
            .iter()
            .flat_map(|name| {
                let pcm = audio::decode(clip_audio(name), 60.0).unwrap();
                [pcm.samples, pause.clone()].concat()
            })
            .collect();
        let looped = round.repeat(3);
        assert!(looped.len() < 16_000 * 30, "one window");
        let sink = RecordingSink::new();
        run(&wav_f32(&looped), json!({}), &sink).unwrap();
        let first = &segments(&sink)[0];
        assert!(
            first["temperature"].as_f64().unwrap() > 0.0,
            "the same sentences three times compress too well at temperature 0: {first}"
        );
    }

    #[test]
    fn token_events_split_the_same_text_token_by_token() {
        let (by_segment, _) = transcribe("quick_brown_fox");
        let by_token = RecordingSink::new();
        let params = json!({"token_events": true});
        run(&clip_audio("quick_brown_fox"), params, &by_token).unwrap();
        assert_eq!(by_token.text(), by_segment.text());
        assert_eq!(segments(&by_token), segments(&by_segment));
        let tokens: usize = segments(&by_token)
            .iter()
            .map(|s| s["tokens"].as_array().unwrap().len())
            .sum();
        let texts = by_token.texts();
        assert_eq!(texts.len(), tokens, "{texts:?}");
        let indexes: Vec<u64> = texts.iter().map(|(i, _)| *i).collect();
        assert_eq!(indexes, (0..tokens as u64).collect::<Vec<_>>());
    }

    #[test]
    fn without_timestamps_the_text_is_the_same_in_one_segment() {
        let sink = RecordingSink::new();
        let params = json!({"timestamps": false});
        run(&clip_audio("hello_world"), params, &sink).unwrap();
        assert_eq!(normalise(&sink.text()), normalise(&clip("hello_world").1));
        assert_eq!(segments(&sink).len(), 1);
        assert_eq!(segments(&sink)[0]["start"], 0.0);
    }

    /// Without timestamps, windows are decoded side by side, a batch of four and then one: each
    /// window's segment is the one its 30 s alone give, token for token. (Their figures differ
    /// slightly: a window's spectrogram depends on its neighbours' samples at its edges and on
    /// the loudest frame of the whole file.)
    #[test]
    fn windows_decoded_side_by_side_give_what_each_gives_alone() {
        let window = |name: &str| {
            let mut samples = audio::decode(clip_audio(name), 60.0).unwrap().samples;
            samples.resize(16_000 * 30, 0.0);
            samples
        };
        let names = [
            "quick_brown_fox",
            "counting",
            "hello_world",
            "counting",
            "quick_brown_fox",
        ];
        let windows: Vec<Vec<f32>> = names.iter().map(|name| window(name)).collect();
        let params = json!({"timestamps": false});
        let together = RecordingSink::new();
        run(&wav_f32(&windows.concat()), params.clone(), &together).unwrap();
        let together = segments(&together);
        assert_eq!(together.len(), names.len());
        for (index, (segment, samples)) in together.iter().zip(&windows).enumerate() {
            let alone = RecordingSink::new();
            run(&wav_f32(samples), params.clone(), &alone).unwrap();
            let alone = &segments(&alone)[0];
            assert_eq!(segment["start"], 30.0 * index as f64);
            for field in ["text", "tokens", "temperature"] {
                assert_eq!(segment[field], alone[field], "window {index}: {field}");
            }
        }
    }

    #[test]
    fn audio_longer_than_a_window_is_transcribed_window_by_window() {
        let (wav, _) = clip("quick_brown_fox");
        let pcm = audio::decode(wav, 60.0).unwrap();
        let gap = vec![0.0; 16_000 * 30];
        let samples: Vec<f32> = [&pcm.samples[..], &gap, &pcm.samples[..]].concat();
        let long = wav_f32(&samples);
        let sink = RecordingSink::new();
        let end = run(&long, json!({}), &sink).unwrap();
        let text = normalise(&sink.text());
        let fox = normalise(&clip("quick_brown_fox").1);
        assert_eq!(text.matches(&fox).count(), 2, "{text}");
        let last = segments(&sink).last().unwrap()["start"].as_f64().unwrap();
        assert!(
            last >= 30.0,
            "the second sentence is in the second window: {last}"
        );
        assert!(details(&end)["audio_seconds"].as_f64().unwrap() > 35.0);
    }

    #[test]
    fn the_same_model_in_hugging_face_layout_gives_the_same_transcript() {
        let dir = tempfile::tempdir().unwrap();
        crate::test_support::write_hugging_face_layout(dir.path());
        let request = LoadRequest::cpu(&dir.path().to_string_lossy());
        let hf = crate::load(request, TestHost::default().api()).unwrap();
        for name in ["quick_brown_fox", "counting"] {
            let audio = clip_audio(name);
            let (from_hf, from_ct2) = (RecordingSink::new(), RecordingSink::new());
            run_on(&hf, &audio, json!({}), &from_hf).unwrap();
            run(&audio, json!({}), &from_ct2).unwrap();
            assert_eq!(from_hf.text(), from_ct2.text());
            assert_eq!(segments(&from_hf), segments(&from_ct2));
        }
    }

    #[test]
    fn a_multilingual_model_detects_the_language_it_rates_highest_and_may_translate() {
        let dir = tempfile::tempdir().unwrap();
        crate::test_support::write_multilingual_model(dir.path(), "de");
        let request = LoadRequest::cpu(&dir.path().to_string_lossy());
        let multilingual = crate::load(request, TestHost::default().api()).unwrap();
        let audio = clip_audio("hello_world");
        let language_of = |params: Value| {
            multilingual.validate(&job(&audio, params.clone())).unwrap();
            let sink = RecordingSink::new();
            let end = run_on(&multilingual, &audio, params, &sink).unwrap();
            let started: Value = serde_json::from_str(&sink.started()[0]).unwrap();
            assert_eq!(started["language"], details(&end)["language"]);
            assert_eq!(end.stop_reason.as_str(), "completed");
            details(&end)["language"].as_str().unwrap().to_string()
        };
        assert_eq!(language_of(json!({})), "de");
        assert_eq!(language_of(json!({"language": "auto"})), "de");
        assert_eq!(language_of(json!({"language": "fr"})), "fr");
        let translate = json!({"task": "translate", "timestamps": false});
        assert_eq!(language_of(translate), "de");
        let unknown = job(&audio, json!({"language": "xx"}));
        let error = multilingual.validate(&unknown).unwrap_err();
        assert!(
            error.message.contains("unknown language 'xx'"),
            "{}",
            error.message
        );
    }

    #[test]
    fn cancelling_stops_between_tokens() {
        let sink = RecordingSink::new().stop_at_poll(3);
        let end = run(&clip_audio("counting"), json!({}), &sink).unwrap();
        assert_eq!(end.stop_reason.as_str(), "cancelled");
        assert_eq!(sink.polls(), 3);
        assert!(sink.texts().is_empty());
    }

    #[test]
    fn validate_checks_task_params_audio_and_the_model_s_languages() {
        let worker = worker();
        let field = |job: Job| {
            let error = worker.validate(&job).unwrap_err();
            error.field.into_option().unwrap().to_string()
        };
        let audio = clip_audio("hello_world");
        let embedding = Job::new("test", "embedding", "{}").with_input(param::AUDIO, &*audio);
        assert_eq!(
            worker.validate(&embedding).unwrap_err().code.as_str(),
            "unsupported_task"
        );
        assert!(
            worker
                .validate(&job(&audio, json!({"language": "en"})))
                .is_ok()
        );
        assert_eq!(field(Job::new("test", TASK, "{}")), "audio");
        assert_eq!(field(job(b"hello there", json!({}))), "audio");
        assert_eq!(field(job(&wav_f32(&[]), json!({}))), "audio");
        assert_eq!(field(job(&audio, json!({"language": "fr"}))), "language");
        assert_eq!(field(job(&audio, json!({"task": "translate"}))), "task");
        assert_eq!(field(job(&audio, json!({"speed": 2}))), "speed");
    }

    #[test]
    fn audio_beyond_the_configured_limit_is_refused() {
        let loaded = crate::model::load(
            &crate::test_support::provisioned(crate::test_support::TEST_MODEL_DIR),
            &candle_core::Device::Cpu,
        )
        .unwrap();
        let short_limit = AudioWorker::new(loaded, "tiny".into(), 1.0);
        let error = short_limit
            .validate(&job(&clip_audio("counting"), json!({})))
            .unwrap_err();
        assert_eq!(error.field.into_option().unwrap().as_str(), "audio");
        assert!(error.message.contains("1 seconds"), "{}", error.message);
    }

    /// A 32-bit float mono wav at 16 kHz, the clips' own format.
    fn wav_f32(samples: &[f32]) -> Vec<u8> {
        let data_len = samples.len() as u32 * 4;
        let mut out = b"RIFF".to_vec();
        out.extend_from_slice(&(36 + data_len).to_le_bytes());
        out.extend_from_slice(b"WAVEfmt ");
        out.extend_from_slice(&16u32.to_le_bytes());
        for value in [3u16, 1] {
            out.extend_from_slice(&value.to_le_bytes());
        }
        for value in [16_000u32, 64_000] {
            out.extend_from_slice(&value.to_le_bytes());
        }
        for value in [4u16, 32] {
            out.extend_from_slice(&value.to_le_bytes());
        }
        out.extend_from_slice(b"data");
        out.extend_from_slice(&data_len.to_le_bytes());
        samples
            .iter()
            .for_each(|s| out.extend_from_slice(&s.to_le_bytes()));
        out
    }
}
