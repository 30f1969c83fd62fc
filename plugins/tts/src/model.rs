//! Parler-TTS through candle: the description of the voice is read by the T5 encoder once per
//! job; each sentence is then a run of the audio-token decoder (one token per codebook per
//! frame, codebook `k` starting `k` frames late: the delay pattern) and the DAC codec turning the
//! tokens into 44.1 kHz samples. The generation loop is the plugin's own, so a job stops within
//! one frame of a cancel.

use candle_core::{DType, Device, IndexOp, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::{
    generation::{LogitsProcessor, Sampling},
    models::parler_tts::{Config, Model},
};
use rbee_hub::repository::SafetensorsModel;
use rbee_plugin_api::PluginError;
use rbee_plugin_kit::error::{internal, model_load};
use tokenizers::Tokenizer;

/// A loaded Parler-TTS model.
pub struct Parler {
    model: Model,
    tokenizer: Tokenizer,
    device: Device,
    sample_rate: u32,
    codebooks: usize,
    code_bias: Tensor,
    max_positions: usize,
    max_frames: usize,
    weight_bytes: u64,
}

/// How one sentence's audio tokens are sampled.
pub struct Sampler {
    processor: LogitsProcessor,
}

impl Sampler {
    /// Sampling at `temperature` (0: always the likeliest token) from `seed`.
    pub fn new(seed: u64, temperature: f64) -> Self {
        let sampling = if temperature <= 0.0 {
            Sampling::ArgMax
        } else {
            Sampling::All { temperature }
        };
        Self {
            processor: LogitsProcessor::from_sampling(seed, sampling),
        }
    }
}

/// A description read by the text encoder, ready for the decoder's cross-attention.
pub struct Voice {
    encoded: Tensor,
}

/// One sentence's audio: samples at the model's rate, and the tokens of text read.
pub struct Spoken {
    /// Mono samples in -1..1.
    pub samples: Vec<f32>,
    /// Tokens of the sentence.
    pub tokens: usize,
}

impl Parler {
    /// Loads `files` onto `device`; a sentence's audio is cut at `max_seconds`.
    pub fn load(
        files: &SafetensorsModel,
        device: &Device,
        max_seconds: f32,
        progress: &dyn Fn(f32, &str),
    ) -> Result<Self, PluginError> {
        let config_text = std::fs::read_to_string(&files.config)
            .map_err(|e| model_load(format!("{}: {e}", files.config.display())))?;
        let config: Config = serde_json::from_str(&config_text).map_err(|e| {
            model_load(format!(
                "{}: not a Parler-TTS config (text_encoder, decoder, audio_encoder): {e}",
                files.config.display()
            ))
        })?;
        let tokenizer = Tokenizer::from_file(&files.tokenizer)
            .map_err(|e| model_load(format!("{}: {e}", files.tokenizer.display())))?;
        progress(0.5, "loading the weights");
        let weight_bytes = std::fs::metadata(&files.weights)
            .map(|m| m.len())
            .unwrap_or(0);
        // SAFETY: the weights file is memory-mapped read-only; the host owns the model
        // directory and does not change files of a loaded model.
        let vb =
            unsafe { VarBuilder::from_mmaped_safetensors(&[&files.weights], DType::F32, device) }
                .map_err(|e| model_load(format!("{}: {e}", files.weights.display())))?;
        let model = Model::new(&config, vb)
            .map_err(|e| model_load(format!("{}: {e}", files.weights.display())))?;
        let frame_rate = config.audio_encoder.frame_rate as f32;
        let max_positions = config.decoder.max_position_embeddings;
        let code_bias = code_bias(
            config.decoder.vocab_size,
            config.audio_encoder.codebook_size,
            config.pad_token_id as usize,
            device,
        )
        .map_err(|e| model_load(e.to_string()))?;
        Ok(Self {
            model,
            tokenizer,
            device: device.clone(),
            sample_rate: config.audio_encoder.sampling_rate,

            codebooks: config.decoder.num_codebooks,
            code_bias,
            max_positions,
            max_frames: ((max_seconds * frame_rate).ceil() as usize).max(1),
            weight_bytes,
        })
    }

    /// The rate of the samples [`Parler::speak`] returns, in Hz.
    pub fn sample_rate(&self) -> u32 {
        self.sample_rate
    }

    /// Bytes of weights held.
    pub fn weight_bytes(&self) -> u64 {
        self.weight_bytes
    }

    /// A copy sharing the weights, with caches of its own (one per job).
    pub fn session(&self) -> Session<'_> {
        Session {
            parler: self,
            model: self.model.clone(),
        }
    }

    /// The token ids of `text`, with the tokenizer's end-of-text token.
    fn tokens(&self, text: &str) -> Result<Tensor, PluginError> {
        let encoding = self.tokenizer.encode(text, true).map_err(internal)?;
        let ids = encoding.get_ids();
        Tensor::new(ids, &self.device)
            .and_then(|t| t.unsqueeze(0))
            .map_err(internal)
    }
}

/// What is added to a codebook's logits (`vocab` tokens) so that only audio codes (below
/// `codebook_size`) and the end token `pad` can be sampled: the decoder's vocabulary has a few
/// more entries (the start token among them) that are not codes.
fn code_bias(
    vocab: usize,
    codebook_size: usize,
    pad: usize,
    device: &Device,
) -> candle_core::Result<Tensor> {
    let bias: Vec<f32> = (0..vocab)
        .map(|token| {
            if token < codebook_size || token == pad {
                0.0
            } else {
                f32::NEG_INFINITY
            }
        })
        .collect();
    Tensor::from_vec(bias, vocab, device)
}

/// A job's use of the model: its own decoder caches over the shared weights.
pub struct Session<'a> {
    parler: &'a Parler,
    model: Model,
}

impl Session<'_> {
    /// Reads `description` with the text encoder.
    pub fn voice(&mut self, description: &str) -> Result<Voice, PluginError> {
        let ids = self.parler.tokens(description)?;
        self.model.text_encoder.clear_kv_cache();
        let encoded = self.model.text_encoder.forward(&ids).map_err(internal)?;
        let encoded = match &self.model.enc_to_dec_proj {
            Some(projection) => encoded.apply(projection).map_err(internal)?,
            None => encoded,
        };
        Ok(Voice { encoded })
    }

    /// Speaks `text` in `voice`; `None` when `stop` said so before the end.
    pub fn speak(
        &mut self,
        text: &str,
        voice: &Voice,
        sampler: &mut Sampler,
        stop: &dyn Fn() -> bool,
    ) -> Result<Option<Spoken>, PluginError> {
        let prompt_ids = self.parler.tokens(text)?;
        let prompt = prompt_ids
            .apply(&self.model.embed_prompts)
            .map_err(internal)?;
        let prompt_len = prompt.dim(1).map_err(internal)?;
        let room = self.parler.max_positions.saturating_sub(prompt_len + 1);
        if room == 0 {
            return Err(PluginError::invalid_param(
                "input",
                format!("a sentence of {prompt_len} tokens leaves the decoder no room for audio"),
            ));
        }
        let steps = room.min(self.parler.max_frames + self.parler.codebooks - 1);
        let Some(codes) = self.codes(&prompt, voice, sampler, steps, stop)? else {
            return Ok(None);
        };
        let samples = self.decode(codes)?;
        Ok(Some(Spoken {
            samples,
            tokens: prompt_len,
        }))
    }

    /// The audio tokens of one sentence: `[codebook][frame]`, every codebook of equal length.
    fn codes(
        &mut self,
        prompt: &Tensor,
        voice: &Voice,
        sampler: &mut Sampler,
        max_steps: usize,
        stop: &dyn Fn() -> bool,
    ) -> Result<Option<Vec<Vec<u32>>>, PluginError> {
        let model = &mut self.model;
        model.decoder.clear_kv_cache();
        let codebooks = self.parler.codebooks;
        let (start, pad) = (model.decoder_start_token_id, model.pad_token_id);
        let prompt_len = prompt.dim(1).map_err(internal)?;
        let mut current = vec![start; codebooks];
        let mut codes = vec![Vec::new(); codebooks];
        for step in 0..max_steps {
            if stop() {
                return Ok(None);
            }
            let input = Tensor::from_slice(&current, (1, codebooks, 1), &self.parler.device)
                .map_err(internal)?;
            let (prompt_states, position, mask) = if step == 0 {
                let mask = causal_mask(prompt_len + 1, &self.parler.device)?;
                (Some(prompt), 0, Some(mask))
            } else {
                (None, step + prompt_len, None)
            };
            let logits = model
                .decoder
                .forward(
                    &input,
                    prompt_states,
                    mask.as_ref(),
                    &voice.encoded,
                    None,
                    position,
                )
                .map_err(internal)?;
            for (codebook, logits) in logits.iter().enumerate().take(step + 1) {
                if current[codebook] == pad {
                    continue;
                }
                let last = logits.dim(1).map_err(internal)? - 1;
                let row = logits
                    .i((0, last))
                    .and_then(|row| row + &self.parler.code_bias)
                    .map_err(internal)?;
                current[codebook] = sampler.processor.sample(&row).map_err(internal)?;
            }
            if current.iter().all(|&token| token == pad) {
                break;
            }
            for (codebook, &token) in current.iter().enumerate() {
                if token != start && token != pad {
                    codes[codebook].push(token);
                }
            }
        }
        let frames = codes.iter().map(Vec::len).min().unwrap_or(0);
        for list in &mut codes {
            list.truncate(frames);
        }
        Ok(Some(codes))
    }

    /// The samples of `codes` through the DAC decoder; none for fewer than two frames (23 ms,
    /// too short for the codec's first upsampling layer).
    fn decode(&self, codes: Vec<Vec<u32>>) -> Result<Vec<f32>, PluginError> {
        let frames = codes.first().map_or(0, Vec::len);
        if frames < 2 {
            return Ok(Vec::new());
        }
        let flat: Vec<u32> = codes.into_iter().flatten().collect();
        let codebooks = self.parler.codebooks;
        let tensor = Tensor::from_vec(flat, (1, codebooks, frames), &self.parler.device)
            .map_err(internal)?;
        let audio = self
            .model
            .audio_encoder
            .decode_codes(&tensor)
            .and_then(|pcm| pcm.i((0, 0)))
            .and_then(|pcm| pcm.to_dtype(DType::F32))
            .and_then(|pcm| pcm.to_vec1::<f32>())
            .map_err(internal)?;
        Ok(audio
            .into_iter()
            .map(|x| {
                if x.is_finite() {
                    x.clamp(-1.0, 1.0)
                } else {
                    0.0
                }
            })
            .collect())
    }
}

/// The first step's mask: each of `len` positions sees itself and those before.
fn causal_mask(len: usize, device: &Device) -> Result<Tensor, PluginError> {
    let mask: Vec<f32> = (0..len)
        .flat_map(|i| (0..len).map(move |j| if j > i { f32::NEG_INFINITY } else { 0.0 }))
        .collect();
    Tensor::from_slice(&mask, (len, len), device).map_err(internal)
}
