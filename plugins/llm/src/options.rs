//! The plugin's load options (`--plugin-options`) and the engine settings drawn from them, the
//! host's `--parallel` and the machine.

use crate::{cpu_transformer::KvFormat, engine::EngineConfig, model::Model};
use rbee_plugin_api::PluginError;
use serde::Deserialize;

/// Sequences batched together when the host leaves the choice to the plugin.
pub const DEFAULT_SLOTS: usize = 4;

/// The share of available memory the default key/value budget may take.
const KV_MEMORY_SHARE: u64 = 4;

/// Load options, a JSON object; every field is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadOptions {
    /// Key/value positions shared by all sequences (running ones and cached prefixes). Default:
    /// the context times the slots, at most a quarter of the available memory, at least one
    /// context.
    pub kv_cache_tokens: Option<usize>,
    /// How cached keys and values are stored: `"f16"` (the default, as llama.cpp's) or
    /// `"f32"`. Applies to the CPU network; candle's models keep f32 caches.
    #[serde(default)]
    pub kv_cache_type: KvFormat,
}

impl LoadOptions {
    /// Parses `--plugin-options`; empty means defaults.
    pub fn parse(json: &str) -> Result<Self, PluginError> {
        let options: Self =
            rbee_plugin_kit::options::parse(json, "kv_cache_tokens, kv_cache_type")?;
        if options.kv_cache_tokens == Some(0) {
            return Err(rbee_plugin_kit::error::model_load(
                "plugin options: kv_cache_tokens must be at least 1",
            ));
        }
        Ok(options)
    }

    /// The engine settings for `model`, with `parallel` slots (0: [`DEFAULT_SLOTS`]).
    pub fn engine_config(&self, model: &Model, parallel: u32) -> EngineConfig {
        let slots = match parallel {
            0 => DEFAULT_SLOTS,
            n => n as usize,
        }
        .min(model.max_batch());
        let context = model.context_len();
        let kv_tokens = self.kv_cache_tokens.unwrap_or_else(|| {
            let wanted = context.saturating_mul(slots);
            let affordable = model
                .kv_bytes_per_token()
                .zip(available_memory())
                .map_or(wanted, |(per_token, bytes)| {
                    (bytes / KV_MEMORY_SHARE / per_token as u64) as usize
                });
            wanted.min(affordable).max(context)
        });
        EngineConfig { slots, kv_tokens }
    }
}

/// Bytes of memory available to new allocations, where the system says (`MemAvailable` on
/// Linux).
fn available_memory() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_parse_and_bad_ones_name_the_problem() {
        assert_eq!(LoadOptions::parse("").unwrap().kv_cache_tokens, None);
        assert_eq!(LoadOptions::parse("").unwrap().kv_cache_type, KvFormat::F16);
        assert_eq!(
            LoadOptions::parse(r#"{"kv_cache_type": "f32"}"#)
                .unwrap()
                .kv_cache_type,
            KvFormat::F32
        );
        assert_eq!(
            LoadOptions::parse(r#"{"kv_cache_tokens": 512}"#)
                .unwrap()
                .kv_cache_tokens,
            Some(512)
        );
        for (bad, says) in [
            (r#"{"kv_cache": 1}"#, "unknown field `kv_cache`"),
            (r#"{"kv_cache_tokens": -1}"#, "kv_cache_tokens"),
            (r#"{"kv_cache_tokens": 0}"#, "at least 1"),
            (
                r#"{"kv_cache_type": "q4"}"#,
                "unknown variant `q4`, expected `f16` or `f32`",
            ),
            ("[", "plugin options"),
        ] {
            let error = LoadOptions::parse(bad).unwrap_err();
            assert!(error.message.contains(says), "{bad}: {error}");
        }
    }

    #[test]
    fn available_memory_is_read_on_linux() {
        if cfg!(target_os = "linux") {
            assert!(available_memory().unwrap() > 0);
        }
    }
}
