//! The plugin's load options (`--plugin-options`), a JSON object whose fields are all optional.

use rbee_plugin_api::PluginError;
use rbee_plugin_kit::error::model_load;
use serde::Deserialize;

/// The longest audio one sentence may become when the options name no other length, in seconds
/// (Parler-TTS mini's own generation limit).
pub const DEFAULT_MAX_SECONDS: f32 = 30.0;

/// Load options.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadOptions {
    /// The longest audio one sentence may become, in seconds (default
    /// [`DEFAULT_MAX_SECONDS`], and at most what the decoder's positions allow): a sentence
    /// whose audio does not end by then is cut there.
    pub max_seconds_per_sentence: Option<f32>,
}

impl LoadOptions {
    /// Parses `--plugin-options`; empty means defaults.
    pub fn parse(json: &str) -> Result<Self, PluginError> {
        let options: Self = rbee_plugin_kit::options::parse(json, "max_seconds_per_sentence")?;
        if options
            .max_seconds_per_sentence
            .is_some_and(|seconds| !(seconds > 0.0 && seconds <= 600.0))
        {
            return Err(model_load(
                "plugin options: max_seconds_per_sentence must be above 0 and at most 600",
            ));
        }
        Ok(options)
    }

    /// The longest audio of one sentence, in seconds.
    pub fn max_seconds(&self) -> f32 {
        self.max_seconds_per_sentence.unwrap_or(DEFAULT_MAX_SECONDS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_read_and_bad_ones_refused() {
        assert_eq!(
            LoadOptions::parse("").unwrap().max_seconds(),
            DEFAULT_MAX_SECONDS
        );
        let options = LoadOptions::parse(r#"{"max_seconds_per_sentence": 2.5}"#).unwrap();
        assert_eq!(options.max_seconds(), 2.5);
        for bad in [
            r#"{"max_seconds_per_sentence": 0}"#,
            r#"{"max_seconds_per_sentence": 1000}"#,
            r#"{"threads": 2}"#,
            r#"{"max_seconds_per_sentence": "long"}"#,
        ] {
            assert!(LoadOptions::parse(bad).is_err(), "{bad}");
        }
    }
}
