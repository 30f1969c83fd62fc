//! A models file (`rbee-host --models FILE.toml`) written by a test, and a host serving it.

use crate::{Host, plugins_dir};
use serde_json::Value;
use std::path::PathBuf;

/// A models file in a temp dir of its own, removed when dropped: one `[[models]]` table per
/// entry.
pub struct ModelsFile {
    dir: tempfile::TempDir,
}

impl ModelsFile {
    /// Writes `entries`: JSON objects holding an entry's fields (`id`, `plugin`, `model`,
    /// `keep_alive`, `options`, ...), each written as the TOML value of the same shape.
    pub fn new(entries: &[Value]) -> ModelsFile {
        let dir = tempfile::tempdir().expect("creating a temp dir");
        let mut text = String::new();
        for entry in entries {
            text.push_str("[[models]]\n");
            for (key, value) in entry.as_object().expect("an entry is a JSON object") {
                text.push_str(&format!(
                    "{} = {}\n",
                    toml(&key.as_str().into()),
                    toml(value)
                ));
            }
            text.push('\n');
        }
        let file = ModelsFile { dir };
        std::fs::write(file.path(), text).expect("writing the models file");
        file
    }

    /// The file's path.
    pub fn path(&self) -> PathBuf {
        self.dir.path().join("models.toml")
    }

    /// Starts `rbee-host` serving the file with the installed plugins and `extra` flags, and
    /// waits until it is ready.
    pub fn serve(&self, extra: &[&str]) -> Host {
        let (file, plugins) = (self.path(), plugins_dir());
        let mut args = vec![
            "--models",
            file.to_str().expect("a UTF-8 path"),
            "--plugins-dir",
            plugins.to_str().expect("a UTF-8 path"),
        ];
        args.extend_from_slice(extra);
        Host::start_ready(&args)
    }
}

/// `value` in TOML: JSON's strings, numbers, booleans and arrays are written the same; objects
/// become inline tables.
fn toml(value: &Value) -> String {
    match value {
        Value::Null => panic!("TOML has no null"),
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(toml).collect::<Vec<_>>().join(", ")
        ),
        Value::Object(fields) => {
            let fields: Vec<String> = fields
                .iter()
                .map(|(key, value)| format!("{} = {}", toml(&key.as_str().into()), toml(value)))
                .collect();
            format!("{{ {} }}", fields.join(", "))
        }
        scalar => scalar.to_string(),
    }
}
