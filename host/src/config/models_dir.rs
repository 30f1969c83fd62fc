//! `--models-dir DIR`: every model file and known model directory in a directory becomes an
//! entry, named after its file, served by the plugin of its kind for one backend.

use super::{ModelConfig, ModelDefaults};
use std::path::Path;

/// The kind of plugin that serves what is at `path`, if it is a model this host knows:
/// a GGUF file (llm), a Stable Diffusion pipeline directory (sd), a CTranslate2 Whisper
/// directory (audio).
fn plugin_kind(path: &Path) -> Option<&'static str> {
    if path.is_file() {
        return (path.extension()? == "gguf").then_some("llm");
    }
    if path.join("model_index.json").is_file() {
        return Some("sd");
    }
    let ctranslate2 = path.join("model.bin").is_file() && path.join("vocabulary.txt").is_file();
    ctranslate2.then_some("audio")
}

/// The entries for the models in `dir`, in name order, served by `<kind>-<backend>` plugins.
pub fn scan(
    dir: &Path,
    backend: &str,
    defaults: &ModelDefaults,
) -> Result<Vec<ModelConfig>, String> {
    let listing = std::fs::read_dir(dir)
        .map_err(|e| format!("cannot read --models-dir {}: {e}", dir.display()))?;
    let mut paths: Vec<_> = listing
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .collect();
    paths.sort();
    let models: Vec<ModelConfig> = paths
        .iter()
        .filter_map(|path| {
            let kind = plugin_kind(path)?;
            let model = path.to_string_lossy().into_owned();
            let id = super::model_id(&model);
            Some(defaults.entry(id, format!("{kind}-{backend}"), model))
        })
        .collect();
    match models.is_empty() {
        true => Err(format!(
            "--models-dir {} holds no model this host knows (.gguf files, Stable Diffusion \
             directories with model_index.json, CTranslate2 Whisper directories)",
            dir.display()
        )),
        false => Ok(models),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gguf_files_and_model_directories_become_entries_named_after_them() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(root.join("SmolLM2.Q4_1.gguf"), b"").unwrap();
        std::fs::write(root.join("notes.txt"), b"").unwrap();
        std::fs::create_dir_all(root.join("tiny-sd")).unwrap();
        std::fs::write(root.join("tiny-sd/model_index.json"), b"{}").unwrap();
        std::fs::create_dir_all(root.join("whisper-tiny.en")).unwrap();
        for file in ["model.bin", "vocabulary.txt"] {
            std::fs::write(root.join("whisper-tiny.en").join(file), b"").unwrap();
        }
        std::fs::create_dir_all(root.join("empty")).unwrap();
        let defaults = ModelDefaults {
            device: None,
            threads: 0,
            parallel: 0,
            queue_size: 8,
            plugin_options: String::new(),
        };
        let models = scan(root, "cpu", &defaults).unwrap();
        let found: Vec<(&str, &str)> = models
            .iter()
            .map(|m| (m.id.as_str(), m.plugin.as_str()))
            .collect();
        assert_eq!(
            found,
            [
                ("SmolLM2.Q4_1", "llm-cpu"),
                ("tiny-sd", "sd-cpu"),
                ("whisper-tiny.en", "audio-cpu")
            ]
        );
        assert_eq!(
            models[0].model,
            root.join("SmolLM2.Q4_1.gguf").to_string_lossy()
        );
        assert!(
            scan(&root.join("empty"), "cpu", &defaults)
                .unwrap_err()
                .contains("holds no model")
        );
    }
}
