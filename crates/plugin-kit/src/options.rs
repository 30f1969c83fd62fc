//! A plugin's load options (`--plugin-options`): a JSON object read into the plugin's own
//! `#[derive(Deserialize, Default)]` type, an empty string meaning every default.

use crate::error::model_load;
use rbee_plugin_api::PluginError;
use serde::de::DeserializeOwned;

/// Reads `json` into `T` (defaults when it is empty); an error is a `model_load` error that
/// names the problem and lists the `known` options.
pub fn parse<T: DeserializeOwned + Default>(json: &str, known: &str) -> Result<T, PluginError> {
    if json.trim().is_empty() {
        return Ok(T::default());
    }
    serde_json::from_str(json)
        .map_err(|e| model_load(format!("plugin options: {e} (known: {known})")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Default, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Options {
        batch: Option<usize>,
    }

    #[test]
    fn empty_means_defaults_and_a_value_is_read() {
        assert_eq!(parse::<Options>(" ", "batch").unwrap(), Options::default());
        let options: Options = parse(r#"{"batch": 3}"#, "batch").unwrap();
        assert_eq!(options.batch, Some(3));
    }

    #[test]
    fn an_unknown_option_is_named_with_the_known_ones() {
        let error = parse::<Options>(r#"{"bach": 3}"#, "batch").unwrap_err();
        assert!(error.message.contains("bach"), "{}", error.message);
        assert!(
            error.message.contains("(known: batch)"),
            "{}",
            error.message
        );
    }
}
