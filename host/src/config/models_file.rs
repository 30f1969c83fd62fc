//! The models file (`--models FILE`): a TOML list of the models one host serves, each with its
//! plugin, model reference, options and life-cycle settings.

use super::{ModelConfig, ModelDefaults};
use serde::Deserialize;
use std::{collections::HashSet, path::Path, time::Duration};

/// The file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelsFile {
    #[serde(default)]
    models: Vec<Entry>,
}

/// One `[[models]]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    id: String,
    plugin: String,
    model: Option<String>,
    device: Option<String>,
    threads: Option<u32>,
    parallel: Option<u32>,
    queue_size: Option<u32>,
    options: Option<toml::Table>,
    keep_alive: Option<KeepAlive>,
    #[serde(default)]
    pinned: bool,
    #[serde(default)]
    aliases: Vec<String>,
}

/// `keep_alive`: seconds, a duration such as `"5m"`, or `"forever"`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum KeepAlive {
    Seconds(f64),
    Text(String),
}

/// Reads the models file at `path`; entries start from `defaults` (the command line's flags),
/// and relative model paths are taken from the file's directory.
pub fn read(path: &Path, defaults: &ModelDefaults) -> Result<Vec<ModelConfig>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read the models file {}: {e}", path.display()))?;
    let base = path.parent().unwrap_or(Path::new("."));
    parse(&text, base, defaults).map_err(|e| format!("models file {}: {e}", path.display()))
}

/// Parses a models file's text; see [`read`].
pub fn parse(
    text: &str,
    base: &Path,
    defaults: &ModelDefaults,
) -> Result<Vec<ModelConfig>, String> {
    let file: ModelsFile = toml::from_str(text).map_err(|e| e.to_string())?;
    if file.models.is_empty() {
        return Err("it lists no models (add a [[models]] table)".into());
    }
    let mut names = HashSet::new();
    let mut models = Vec::new();
    for entry in file.models {
        let config = entry_config(entry, base, defaults)?;
        for name in std::iter::once(&config.id).chain(&config.aliases) {
            if !names.insert(name.clone()) {
                return Err(format!("the name '{name}' is used twice"));
            }
        }
        models.push(config);
    }
    Ok(models)
}

fn entry_config(
    entry: Entry,
    base: &Path,
    defaults: &ModelDefaults,
) -> Result<ModelConfig, String> {
    let id = entry.id;
    let bad = |what: String| format!("model '{id}': {what}");
    for name in std::iter::once(&id).chain(&entry.aliases) {
        check_name(name).map_err(bad)?;
    }
    let model = entry
        .model
        .map_or_else(String::new, |model| resolve(&model, base));
    let mut config = defaults.entry(id.clone(), entry.plugin, model);
    config.aliases = entry.aliases;
    config.pinned = entry.pinned;
    if let Some(device) = entry.device {
        config.device = Some(device.parse().map_err(|e| bad(format!("device: {e}")))?);
    }
    config.threads = entry.threads.unwrap_or(config.threads);
    config.parallel = entry.parallel.unwrap_or(config.parallel);
    if let Some(size) = entry.queue_size {
        if size == 0 {
            return Err(bad("queue_size must be at least 1".into()));
        }
        config.queue_size = size as usize;
    }
    if let Some(options) = entry.options {
        config.plugin_options = serde_json::to_string(&options).map_err(|e| bad(e.to_string()))?;
    }
    if let Some(keep_alive) = entry.keep_alive {
        config.keep_alive =
            keep_alive_duration(keep_alive).map_err(|e| bad(format!("keep_alive: {e}")))?;
    }
    Ok(config)
}

/// A model path relative to the models file's directory; hub references stay as written.
fn resolve(model: &str, base: &Path) -> String {
    let local = base.join(model);
    match Path::new(model).is_relative() && local.exists() {
        true => local.to_string_lossy().into_owned(),
        false => model.to_string(),
    }
}

/// Names are what clients type: letters, digits and `. _ - : /`, never an absolute path.
fn check_name(name: &str) -> Result<(), String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "._-:/".contains(c);
    match name.chars().all(allowed) && !name.is_empty() && !name.starts_with('/') {
        true => Ok(()),
        false => Err(format!(
            "'{name}' is not a valid name (letters, digits and . _ - : /, not starting with /)"
        )),
    }
}

fn keep_alive_duration(keep_alive: KeepAlive) -> Result<Option<Duration>, String> {
    match keep_alive {
        KeepAlive::Seconds(seconds) if seconds.is_finite() && seconds >= 0.0 => {
            Duration::try_from_secs_f64(seconds)
                .map(Some)
                .map_err(|e| e.to_string())
        }
        KeepAlive::Seconds(seconds) => Err(format!("{seconds} is not a number of seconds")),
        KeepAlive::Text(text) if text == "forever" => Ok(None),
        KeepAlive::Text(text) => humantime::parse_duration(&text)
            .map(Some)
            .map_err(|e| format!("'{text}': {e} (write e.g. \"30s\", \"5m\" or \"forever\")")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DEFAULT_KEEP_ALIVE;

    fn defaults() -> ModelDefaults {
        ModelDefaults {
            device: None,
            threads: 2,
            parallel: 0,
            queue_size: 64,
            plugin_options: String::new(),
        }
    }

    #[test]
    fn entries_take_their_own_settings_over_the_defaults() {
        let text = r#"
            [[models]]
            id = "smol"
            plugin = "llm-cpu"
            model = "org/repo:file.gguf"
            parallel = 8
            options = { kv_cache_tokens = 4096 }
            keep_alive = "2m"
            aliases = ["gpt-4o-mini"]

            [[models]]
            id = "whisper"
            plugin = "audio-cpu"
            pinned = true
            keep_alive = "forever"
            threads = 1
        "#;
        let models = parse(text, Path::new("/nowhere"), &defaults()).unwrap();
        assert_eq!(models.len(), 2);
        let smol = &models[0];
        assert_eq!(
            (smol.id.as_str(), smol.model.as_str()),
            ("smol", "org/repo:file.gguf")
        );
        assert_eq!((smol.parallel, smol.threads, smol.queue_size), (8, 2, 64));
        assert_eq!(smol.plugin_options, r#"{"kv_cache_tokens":4096}"#);
        assert_eq!(smol.keep_alive, Some(Duration::from_secs(120)));
        assert_eq!(smol.aliases, ["gpt-4o-mini"]);
        assert!(!smol.pinned);
        let whisper = &models[1];
        assert_eq!(
            (whisper.pinned, whisper.keep_alive, whisper.threads),
            (true, None, 1)
        );
        assert_eq!(whisper.model, "");
    }

    #[test]
    fn keep_alive_defaults_to_five_minutes_and_takes_plain_seconds() {
        let text = "[[models]]\nid = \"a\"\nplugin = \"echo-cpu\"\n[[models]]\nid = \"b\"\nplugin = \"echo-cpu\"\nkeep_alive = 1.5\n";
        let models = parse(text, Path::new("."), &defaults()).unwrap();
        assert_eq!(models[0].keep_alive, Some(DEFAULT_KEEP_ALIVE));
        assert_eq!(models[1].keep_alive, Some(Duration::from_millis(1500)));
    }

    #[test]
    fn relative_model_paths_are_read_from_the_files_directory() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("m.gguf"), b"").unwrap();
        let text = "[[models]]\nid = \"m\"\nplugin = \"llm-cpu\"\nmodel = \"m.gguf\"\n";
        let models = parse(text, dir.path(), &defaults()).unwrap();
        assert_eq!(models[0].model, dir.path().join("m.gguf").to_string_lossy());
    }

    #[test]
    fn mistakes_are_named() {
        let cases = [
            ("", "lists no models"),
            ("[[models]]\nid = \"a\"\n", "missing field `plugin`"),
            (
                "[[models]]\nid = \"a\"\nplugin = \"x\"\nmodle = \"m\"\n",
                "unknown field `modle`",
            ),
            (
                "[[models]]\nid = \"/abs/a.gguf\"\nplugin = \"x\"\n",
                "not a valid name",
            ),
            (
                "[[models]]\nid = \"a\"\nplugin = \"x\"\nkeep_alive = \"soon\"\n",
                "keep_alive: 'soon'",
            ),
            (
                "[[models]]\nid = \"a\"\nplugin = \"x\"\ndevice = \"tpu\"\n",
                "model 'a': device",
            ),
            (
                "[[models]]\nid = \"a\"\nplugin = \"x\"\n[[models]]\nid = \"b\"\nplugin = \"x\"\naliases = [\"a\"]\n",
                "'a' is used twice",
            ),
            (
                "[[models]]\nid = \"a\"\nplugin = \"x\"\nqueue_size = 0\n",
                "queue_size",
            ),
        ];
        for (text, expected) in cases {
            let error = parse(text, Path::new("."), &defaults()).unwrap_err();
            assert!(error.contains(expected), "{text:?}: {error}");
        }
    }
}
