//! Loading a model (GGUF by architecture, or a safetensors llama checkpoint) and running it.

use crate::{
    chat_template::ChatTemplate,
    cpu_transformer::{self, CpuTransformer, KvCache, KvFormat, Segment},
    error::LlmError,
    gguf_tokenizer,
    tokenizer::{TextTokenizer, read_json},
};
use candle_core::{DType, Device, Tensor, quantized::gguf_file};
use candle_nn::VarBuilder;
use candle_transformers::models::{
    llama, quantized_llama, quantized_phi3, quantized_qwen2, quantized_qwen3,
};
use serde_json::Value;
use std::{
    collections::HashMap,
    fs::File,
    path::{Path, PathBuf},
};

/// GGUF architectures this plugin runs, as named in `general.architecture`: those of the CPU
/// network, of which candle's models run all but Gemma's elsewhere.
pub const GGUF_ARCHITECTURES: [&str; 6] = cpu_transformer::ARCHITECTURES;

/// The longest context of models whose candle implementation has a fixed-size rope table or cache.
const FIXED_CONTEXT: usize = quantized_llama::MAX_SEQ_LEN;

/// A model ready to serve: weights, tokenizer, chat template.
pub struct LoadedModel {
    /// The network.
    pub model: Model,
    /// Its tokenizer.
    pub tokenizer: TextTokenizer,
    /// Its chat template, if it has one.
    pub chat_template: Option<ChatTemplate>,
    /// Bytes of weights read from disk.
    pub memory_bytes: u64,
}

/// The network, one variant per supported architecture, with its KV cache.
pub struct Model {
    weights: Weights,
    device: Device,
    context_len: usize,
}

enum Weights {
    Cpu(Box<CpuTransformer>),
    Llama(quantized_llama::ModelWeights),
    Qwen2(quantized_qwen2::ModelWeights),
    Qwen3(quantized_qwen3::ModelWeights),
    Phi3(quantized_phi3::ModelWeights),
    Safetensors(Box<SafetensorsLlama>),
}

struct SafetensorsLlama {
    model: llama::Llama,
    config: llama::Config,
    dtype: DType,
    cache: llama::Cache,
}

/// One sequence's state in the model: its own key/value cache on the CPU path; on candle's
/// models, which keep one cache inside, the number of positions fed.
pub enum SequenceCache {
    /// The CPU network's cache of this sequence.
    Cpu(KvCache),
    /// Positions fed to a candle model's internal cache.
    Candle(usize),
}

impl SequenceCache {
    /// The positions held.
    pub fn len(&self) -> usize {
        match self {
            SequenceCache::Cpu(cache) => cache.len(),
            SequenceCache::Candle(positions) => *positions,
        }
    }

    /// A copy of the first `positions` positions, where the cache can be copied (the CPU path).
    pub fn prefix(&self, positions: usize) -> Option<SequenceCache> {
        match self {
            SequenceCache::Cpu(cache) => Some(SequenceCache::Cpu(cache.prefix(positions))),
            SequenceCache::Candle(_) => None,
        }
    }
}

impl Model {
    /// The most tokens (prompt and completion together) one job may hold.
    pub fn context_len(&self) -> usize {
        self.context_len
    }

    /// How many sequences one forward pass can run: any number on the CPU path, one on
    /// candle's models (their cache is inside the model).
    pub fn max_batch(&self) -> usize {
        match &self.weights {
            Weights::Cpu(_) => usize::MAX,
            _ => 1,
        }
    }

    /// Bytes of keys and values one cached position takes, where the plugin keeps the caches.
    pub fn kv_bytes_per_token(&self) -> Option<usize> {
        match &self.weights {
            Weights::Cpu(m) => Some(m.kv_bytes_per_token()),
            _ => None,
        }
    }

    /// Stores the keys and values of new sequences in `format` where the plugin keeps the
    /// caches; returns whether it does (candle's models keep their own f32 caches).
    pub fn set_kv_format(&mut self, format: KvFormat) -> bool {
        match &mut self.weights {
            Weights::Cpu(m) => {
                m.set_kv_format(format);
                true
            }
            _ => false,
        }
    }

    /// An empty cache for a new sequence.
    pub fn new_sequence(&self) -> SequenceCache {
        match &self.weights {
            Weights::Cpu(m) => SequenceCache::Cpu(m.new_cache()),
            _ => SequenceCache::Candle(0),
        }
    }

    /// Feeds each segment's tokens to its sequence in one pass and returns the logits of each
    /// segment's last token. Candle's models take one segment at a time, and a sequence that
    /// starts at position 0 empties their cache.
    pub fn forward_batch(
        &mut self,
        segments: &mut [(&[u32], &mut SequenceCache)],
    ) -> Result<Vec<Vec<f32>>, LlmError> {
        if let Weights::Cpu(m) = &mut self.weights {
            let mut cpu_segments = Vec::with_capacity(segments.len());
            for (tokens, cache) in segments.iter_mut() {
                let SequenceCache::Cpu(cache) = &mut **cache else {
                    return Err(LlmError::Inference("a sequence from another model".into()));
                };
                cpu_segments.push(Segment { tokens, cache });
            }
            return m
                .forward_batch(&mut cpu_segments)
                .map_err(LlmError::Inference);
        }
        let [(tokens, cache)] = segments else {
            return Err(LlmError::Inference(format!(
                "this model runs one sequence at a time, not {}",
                segments.len()
            )));
        };
        let SequenceCache::Candle(position) = &mut **cache else {
            return Err(LlmError::Inference("a sequence from another model".into()));
        };
        if *position == 0 {
            self.reset()?;
        }
        let logits = self.candle_forward(tokens, *position)?;
        *position += tokens.len();
        Ok(vec![logits])
    }

    /// Feeds `tokens` at positions `position..` to a candle model and returns the logits of
    /// the last one.
    fn candle_forward(&mut self, tokens: &[u32], position: usize) -> Result<Vec<f32>, LlmError> {
        let input = || Tensor::new(tokens, &self.device)?.unsqueeze(0);
        let logits = match &mut self.weights {
            Weights::Cpu(_) => {
                return Err(LlmError::Inference(
                    "the CPU network runs in batches".into(),
                ));
            }
            Weights::Llama(m) => m.forward(&input()?, position)?,
            Weights::Qwen2(m) => m.forward(&input()?, position)?,
            Weights::Qwen3(m) => m.forward(&input()?, position)?,
            Weights::Phi3(m) => m.forward(&input()?, position)?,
            Weights::Safetensors(s) => s.model.forward(&input()?, position, &mut s.cache)?,
        };
        Ok(logits.flatten_all()?.to_dtype(DType::F32)?.to_vec1()?)
    }

    /// Empties a candle model's KV cache, so the next sequence starts from nothing.
    fn reset(&mut self) -> Result<(), LlmError> {
        match &mut self.weights {
            Weights::Llama(m) => m.clear_kv_cache(),
            Weights::Qwen2(m) => m.clear_kv_cache(),
            Weights::Qwen3(m) => m.clear_kv_cache(),
            // candle's phi3 resets its cache whenever a sequence starts at position 0, and the
            // CPU network keeps no cache of its own.
            Weights::Phi3(_) | Weights::Cpu(_) => {}
            Weights::Safetensors(s) => {
                s.cache = llama::Cache::new(true, s.dtype, &s.config, &self.device)?;
            }
        }
        Ok(())
    }
}

/// Loads the model at `path`: a `.gguf` file, a directory holding one, or a directory with
/// `config.json`, `*.safetensors` and `tokenizer.json`.
pub fn load(path: &Path, device: &Device) -> Result<LoadedModel, LlmError> {
    if path.is_dir() {
        if path.join("config.json").is_file() {
            return load_safetensors(path, device);
        }
        let ggufs = files_with_extension(path, "gguf")?;
        return match ggufs.as_slice() {
            [single] => load_gguf(single, device),
            [] => Err(LlmError::model_load(
                path,
                "the directory holds neither a .gguf file nor config.json with *.safetensors",
            )),
            _ => Err(LlmError::model_load(
                path,
                "the directory holds several .gguf files; name the one to load",
            )),
        };
    }
    if !path.exists() {
        return Err(LlmError::model_load(path, "no such file or directory"));
    }
    load_gguf(path, device)
}

fn load_gguf(path: &Path, device: &Device) -> Result<LoadedModel, LlmError> {
    let fail = |reason: String| LlmError::model_load(path, reason);
    let mut file = File::open(path).map_err(|e| fail(e.to_string()))?;
    let content = gguf_file::Content::read(&mut file)
        .map_err(|e| fail(format!("not a readable GGUF file: {e}")))?;
    let architecture = content
        .metadata
        .get("general.architecture")
        .and_then(|v| v.to_string().ok())
        .cloned()
        .ok_or_else(|| fail("the GGUF metadata has no general.architecture".into()))?;
    if !GGUF_ARCHITECTURES.contains(&architecture.as_str()) {
        return Err(fail(format!(
            "architecture '{architecture}' is not supported (supported: {})",
            GGUF_ARCHITECTURES.join(", ")
        )));
    }
    let metadata_context = content
        .metadata
        .get(&format!("{architecture}.context_length"))
        .and_then(|v| v.to_u32().ok())
        .map_or(FIXED_CONTEXT, |n| n as usize);

    let dir = path.parent().unwrap_or(Path::new("."));
    let tokenizer = if dir.join("tokenizer.json").is_file() {
        TextTokenizer::from_dir(dir)?
    } else {
        gguf_tokenizer::from_gguf(&content.metadata, path)?
    };
    let template_source = match content.metadata.get("tokenizer.chat_template") {
        Some(source) => Some(source.to_string().map_err(|e| fail(e.to_string()))?.clone()),
        None => template_from_dir(dir)?,
    };
    let chat_template = compile_template(template_source, &tokenizer, path)?;

    let read_error =
        |e: candle_core::Error| fail(format!("cannot read the {architecture} weights: {e}"));
    let (weights, context_len) = match architecture.as_str() {
        _ if device.is_cpu() && cpu_transformer::supports(&content) => {
            let model = CpuTransformer::load(&content, &mut file).map_err(fail)?;
            let context_len = model.context_len();
            (Weights::Cpu(Box::new(model)), context_len)
        }
        "llama" => (
            Weights::Llama(
                quantized_llama::ModelWeights::from_gguf(content, &mut file, device)
                    .map_err(read_error)?,
            ),
            metadata_context.min(FIXED_CONTEXT),
        ),
        "qwen2" => (
            Weights::Qwen2(
                quantized_qwen2::ModelWeights::from_gguf(content, &mut file, device)
                    .map_err(read_error)?,
            ),
            metadata_context,
        ),
        "qwen3" => (
            Weights::Qwen3(
                quantized_qwen3::ModelWeights::from_gguf(content, &mut file, device)
                    .map_err(read_error)?,
            ),
            metadata_context.min(FIXED_CONTEXT),
        ),
        "phi3" => (
            Weights::Phi3(
                quantized_phi3::ModelWeights::from_gguf(false, content, &mut file, device)
                    .map_err(read_error)?,
            ),
            metadata_context,
        ),
        // candle's quantized Gemma lacks soft-capping and GELU: the CPU network alone runs it.
        _ => {
            let reason = if device.is_cpu() {
                cpu_transformer::check(&content).err().unwrap_or_default()
            } else {
                "it runs on the CPU only".into()
            };
            return Err(fail(format!(
                "{architecture} runs on the CPU network only, which cannot run this file: {reason}"
            )));
        }
    };
    Ok(LoadedModel {
        model: Model {
            weights,
            device: device.clone(),
            context_len,
        },
        tokenizer,
        chat_template,
        memory_bytes: file_size(path)?,
    })
}

fn load_safetensors(dir: &Path, device: &Device) -> Result<LoadedModel, LlmError> {
    let config_path = dir.join("config.json");
    let config_json = read_json(&config_path)?;
    let model_type = config_json
        .get("model_type")
        .and_then(Value::as_str)
        .unwrap_or("unknown");
    if model_type != "llama" {
        return Err(LlmError::model_load(
            &config_path,
            format!(
                "model_type '{model_type}' is not supported for safetensors checkpoints (supported: llama)"
            ),
        ));
    }
    let config: llama::LlamaConfig =
        serde_json::from_value(config_json).map_err(|e| LlmError::model_load(&config_path, e))?;
    let config = config.into_config(false);
    let files = files_with_extension(dir, "safetensors")?;
    if files.is_empty() {
        return Err(LlmError::model_load(
            dir,
            "the directory holds no *.safetensors file",
        ));
    }
    let dtype = match device {
        Device::Cpu => DType::F32,
        Device::Cuda(_) => DType::BF16,
        Device::Metal(_) => DType::F16,
    };
    let mut tensors = HashMap::new();
    let mut memory_bytes = 0;
    for file in &files {
        tensors.extend(
            candle_core::safetensors::load(file, device)
                .map_err(|e| LlmError::model_load(file, e))?,
        );
        memory_bytes += file_size(file)?;
    }
    let vb = VarBuilder::from_tensors(tensors, dtype, device);
    let model = llama::Llama::load(vb, &config).map_err(|e| LlmError::model_load(dir, e))?;
    let cache = llama::Cache::new(true, dtype, &config, device)?;
    let tokenizer = TextTokenizer::from_dir(dir)?;
    let chat_template = compile_template(template_from_dir(dir)?, &tokenizer, dir)?;
    Ok(LoadedModel {
        model: Model {
            weights: Weights::Safetensors(Box::new(SafetensorsLlama {
                model,
                dtype,
                cache,
                config: config.clone(),
            })),
            device: device.clone(),
            context_len: config.max_position_embeddings,
        },
        tokenizer,
        chat_template,
        memory_bytes,
    })
}

/// The chat template from `chat_template.jinja` or `tokenizer_config.json` in `dir`, if any.
fn template_from_dir(dir: &Path) -> Result<Option<String>, LlmError> {
    let jinja = dir.join("chat_template.jinja");
    if jinja.is_file() {
        return std::fs::read_to_string(&jinja)
            .map(Some)
            .map_err(|e| LlmError::model_load(&jinja, e));
    }
    let config = read_json(&dir.join("tokenizer_config.json"))?;
    Ok(match config.get("chat_template") {
        Some(Value::String(source)) => Some(source.clone()),
        // A list of named templates: the default one.
        Some(Value::Array(named)) => named
            .iter()
            .find(|t| t.get("name").and_then(Value::as_str) == Some("default"))
            .and_then(|t| t.get("template")?.as_str().map(str::to_string)),
        _ => None,
    })
}

fn compile_template(
    source: Option<String>,
    tokenizer: &TextTokenizer,
    path: &Path,
) -> Result<Option<ChatTemplate>, LlmError> {
    source
        .map(|source| {
            ChatTemplate::new(source, tokenizer.bos_text(), tokenizer.eos_text())
                .map_err(|e| LlmError::model_load(path, e))
        })
        .transpose()
}

fn files_with_extension(dir: &Path, extension: &str) -> Result<Vec<PathBuf>, LlmError> {
    let entries = std::fs::read_dir(dir).map_err(|e| LlmError::model_load(dir, e))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == extension))
        .collect();
    files.sort();
    Ok(files)
}

fn file_size(path: &Path) -> Result<u64, LlmError> {
    std::fs::metadata(path)
        .map(|m| m.len())
        .map_err(|e| LlmError::model_load(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{LlmWorker, cpu_transformer::tiny_gguf::Tiny, test_support::model_path};
    use candle_core::quantized::GgmlDType;
    use rbee_plugin_api::{
        Job, PluginWorker, tasks::text_generation::stop_reason, testing::RecordingSink,
    };

    fn load_error(path: &Path) -> String {
        match load(path, &Device::Cpu) {
            Err(error @ LlmError::ModelLoad { .. }) => error.to_string(),
            Err(other) => panic!("expected a model_load error, got {other}"),
            Ok(_) => panic!("{} loaded", path.display()),
        }
    }

    #[test]
    fn a_missing_file_is_named() {
        let path = Path::new("/nonexistent/models/absent.gguf");
        let message = load_error(path);
        assert!(
            message.contains("/nonexistent/models/absent.gguf"),
            "{message}"
        );
    }

    #[test]
    fn a_file_that_is_not_gguf_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.gguf");
        std::fs::write(&path, b"definitely not a gguf file").unwrap();
        let message = load_error(&path);
        assert!(
            message.contains(&*path.to_string_lossy()) && message.contains("GGUF"),
            "{message}"
        );
    }

    #[test]
    fn an_unsupported_architecture_names_the_file_and_the_architecture() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("neox.gguf");
        let architecture = gguf_file::Value::String("gptneox".into());
        let mut file = File::create(&path).unwrap();
        gguf_file::write(&mut file, &[("general.architecture", &architecture)], &[]).unwrap();
        drop(file);
        let message = load_error(&path);
        assert!(
            message.contains("neox.gguf") && message.contains("'gptneox'"),
            "{message}"
        );
    }

    /// A directory with the test model's tokenizer, for tiny models of other architectures.
    fn dir_with_a_tokenizer() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let smol = load(&model_path(), &Device::Cpu).unwrap();
        let tokenizer = dir.path().join("tokenizer.json");
        smol.tokenizer.inner().save(&tokenizer, false).unwrap();
        std::fs::write(dir.path().join("tokenizer_config.json"), "{}").unwrap();
        dir
    }

    /// Every architecture of the CPU network loads onto it on the CPU with the context its
    /// metadata gives (Qwen 3's 40960 positions, past the 4096 of candle's Qwen 3).
    #[test]
    fn each_architecture_loads_onto_the_cpu_network_with_its_full_context() {
        let dir = dir_with_a_tokenizer();
        for tiny in [
            Tiny::llama(),
            Tiny::qwen2(),
            Tiny::qwen3(),
            Tiny::phi3(),
            Tiny::gemma2(4096),
            Tiny::gemma3(1024),
        ] {
            let path = dir.path().join(format!("{}.gguf", tiny.architecture));
            tiny.write(&path, GgmlDType::Q8_0);
            let model = load(&path, &Device::Cpu).unwrap().model;
            assert_eq!(model.max_batch(), usize::MAX, "{}", tiny.architecture);
            assert_eq!(model.context_len(), tiny.context as usize);
        }
    }

    /// The real Gemma 3 270M (the base model), Q4_K_M as its publisher made it (Q4_K, Q6_K and
    /// Q8_0 matrices, 262144 embeddings, one key/value head of 256, sliding-window layers), runs
    /// on the CPU network and continues greedily as llama.cpp does (`llama-server`
    /// `/completion`, temperature 0), for as long as llama.cpp's choice is clear: its best token
    /// leads the next by at least 0.67 nats of log-probability at every step here. Beyond that
    /// come near ties that rounding decides differently between kernels (after "Paris is the
    /// capital of", " and", "," and "." lie within 0.12 nats).
    #[test]
    fn a_real_gemma3_q4_k_m_file_continues_text_as_llama_cpp_does() {
        let path = crate::test_support::provisioned("gemma-3-270m-q4_k_m.gguf");
        let worker = crate::test_support::load_worker(&path, 2);
        assert_eq!(worker.context_len(), 32768);
        for (prompt, llama_cpp, tokens) in [
            ("The capital of France is", " the capital of the", 4),
            (
                "Paris is the capital and largest city of",
                " France. It is the",
                5,
            ),
            (
                "Water boils at a temperature of",
                " 100 degrees Celsius.",
                7,
            ),
        ] {
            let sink = RecordingSink::new();
            let params =
                serde_json::json!({"prompt": prompt, "temperature": 0, "max_tokens": tokens});
            worker
                .execute(
                    Job::new("gemma", crate::TASK, &params.to_string()),
                    sink.sink(),
                )
                .unwrap();
            assert_eq!(sink.text(), llama_cpp, "{prompt:?}");
        }
    }

    /// Gemma has no candle fallback: a file the CPU network cannot run is refused, saying why.
    #[test]
    fn a_gemma_file_the_cpu_network_cannot_run_is_refused_with_the_reason() {
        let dir = dir_with_a_tokenizer();
        let path = dir.path().join("gemma2.gguf");
        Tiny::gemma2(4096).write(&path, GgmlDType::F16);
        let message = load_error(&path);
        assert!(
            message.contains("gemma2 runs on the CPU network only")
                && message.contains("weight is F16, which its kernels do not run"),
            "{message}"
        );
    }

    #[test]
    fn a_directory_with_one_gguf_loads_it() {
        let loaded = load(model_path().parent().unwrap(), &Device::Cpu);
        // The models dir may hold other models later; then it must say so.
        match loaded {
            Ok(loaded) => assert!(loaded.chat_template.is_some()),
            Err(error) => assert!(error.to_string().contains("several .gguf files"), "{error}"),
        }
    }

    /// A random two-layer llama checkpoint with the test model's tokenizer.
    fn tiny_safetensors_checkpoint(dir: &Path) {
        let (vocab, hidden, inter) = (49152, 16, 32);
        let config = serde_json::json!({
            "model_type": "llama", "hidden_size": hidden, "intermediate_size": inter,
            "vocab_size": vocab, "num_hidden_layers": 2, "num_attention_heads": 2,
            "num_key_value_heads": 1, "rms_norm_eps": 1e-5, "max_position_embeddings": 256,
            "tie_word_embeddings": true, "bos_token_id": 1, "eos_token_id": 2
        });
        std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
        let mut tensors = HashMap::new();
        let mut add = |name: String, shape: &[usize]| {
            tensors.insert(name, Tensor::randn(0f32, 0.5, shape, &Device::Cpu).unwrap());
        };
        add("model.embed_tokens.weight".into(), &[vocab, hidden]);
        add("model.norm.weight".into(), &[hidden]);
        for layer in 0..2 {
            let p = format!("model.layers.{layer}");
            add(format!("{p}.self_attn.q_proj.weight"), &[hidden, hidden]);
            add(
                format!("{p}.self_attn.k_proj.weight"),
                &[hidden / 2, hidden],
            );
            add(
                format!("{p}.self_attn.v_proj.weight"),
                &[hidden / 2, hidden],
            );
            add(format!("{p}.self_attn.o_proj.weight"), &[hidden, hidden]);
            add(format!("{p}.mlp.gate_proj.weight"), &[inter, hidden]);
            add(format!("{p}.mlp.up_proj.weight"), &[inter, hidden]);
            add(format!("{p}.mlp.down_proj.weight"), &[hidden, inter]);
            add(format!("{p}.input_layernorm.weight"), &[hidden]);
            add(format!("{p}.post_attention_layernorm.weight"), &[hidden]);
        }
        candle_core::safetensors::save(&tensors, dir.join("model.safetensors")).unwrap();

        let gguf = load(&model_path(), &Device::Cpu).unwrap();
        gguf.tokenizer
            .inner()
            .save(dir.join("tokenizer.json"), false)
            .unwrap();
        let tokenizer_config = serde_json::json!({
            "bos_token": "<|im_start|>", "eos_token": "<|im_end|>",
            "chat_template": "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}<|im_start|>assistant\n"
        });
        std::fs::write(
            dir.join("tokenizer_config.json"),
            tokenizer_config.to_string(),
        )
        .unwrap();
    }

    #[test]
    fn a_safetensors_llama_checkpoint_loads_and_generates() {
        let dir = tempfile::tempdir().unwrap();
        tiny_safetensors_checkpoint(dir.path());
        let loaded = load(dir.path(), &Device::Cpu).unwrap();
        assert_eq!(loaded.model.context_len(), 256);
        assert!(loaded.chat_template.is_some());
        let config = crate::LoadOptions::default().engine_config(&loaded.model, 0);
        let worker = LlmWorker::new(loaded, "tiny".into(), config);
        let job = Job::new(
            "tiny",
            crate::TASK,
            r#"{"messages": [{"role": "user", "content": "hi"}], "max_tokens": 3, "seed": 1}"#,
        );
        for _ in 0..2 {
            let end = worker
                .execute(job.clone(), RecordingSink::new().sink())
                .unwrap();
            let completion = crate::test_support::details(&end)["completion_tokens"]
                .as_u64()
                .unwrap();
            assert!(completion <= 3, "{end:?}");
            assert!(
                [stop_reason::EOS, stop_reason::MAX_TOKENS].contains(&end.stop_reason.as_str()),
                "{end:?}"
            );
        }
    }

    #[test]
    fn a_directory_without_weights_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let message = load_error(dir.path());
        assert!(
            message.contains("neither a .gguf file nor config.json"),
            "{message}"
        );
    }
}
