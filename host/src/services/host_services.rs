//! The host's side of `HostApi`: plugin logs into tracing, the cache dir, load progress.

use crate::jobs::{Jobs, event::JobEvent};
use crate::worker::readiness::Readiness;
use abi_stable::std_types::{ROption, RStr, RString, RVec};
use indicatif::{ProgressBar, ProgressStyle};
use rbee_plugin_api::{ExtensionRef, HostApi, LogLevel};
use std::{io::IsTerminal, sync::Mutex};
use std::{path::PathBuf, sync::Arc};

/// What a plugin can ask of the host.
#[derive(Clone)]
pub struct HostServices {
    /// The plugin's id, attached to every log line it sends.
    pub plugin_id: String,
    /// The model being loaded.
    pub model_id: String,
    /// Where it should cache models.
    pub cache_dir: PathBuf,
    /// Where load progress goes.
    pub readiness: Arc<Readiness>,
    /// The model's queue: jobs waiting for the load hear of its progress.
    pub jobs: Arc<Jobs>,
    /// How load progress is shown on the terminal and in the logs.
    pub display: Arc<ProgressDisplay>,
}

/// Load progress for people: a bar when stderr is a terminal, and a log line whenever another
/// tenth is done or the plugin says it does something else (not one per downloaded chunk).
pub struct ProgressDisplay {
    bar: Option<ProgressBar>,
    last_logged: Mutex<(i32, String)>,
}

impl Default for ProgressDisplay {
    fn default() -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(1000);
            let style = ProgressStyle::with_template("{bar:40} {percent:>3}% {msg}");
            bar.set_style(style.unwrap_or_else(|_| ProgressStyle::default_bar()));
            bar
        });
        Self {
            bar,
            last_logged: Mutex::new((-1, String::new())),
        }
    }
}

impl ProgressDisplay {
    /// Shows the progress; whether it is news (another tenth done, or another message).
    fn show(&self, model: &str, fraction: f32, message: &str) -> bool {
        if let Some(bar) = &self.bar {
            bar.set_position((fraction.clamp(0.0, 1.0) * 1000.0) as u64);
            bar.set_message(message.to_string());
            if fraction >= 1.0 {
                bar.finish_and_clear();
            }
        }
        let tenth = (fraction * 10.0).floor() as i32;
        let mut last = self.last_logged.lock().unwrap_or_else(|e| e.into_inner());
        let news = last.0 != tenth || last.1 != message;
        if news {
            *last = (tenth, message.to_string());
            tracing::info!(model, "loading: {:.0}% {message}", fraction * 100.0);
        }
        news
    }
}

/// The `loading` event jobs waiting for their model's load receive.
pub fn loading_event(model: &str, progress: f32, message: &str) -> JobEvent {
    JobEvent::Custom {
        name: "loading".into(),
        data: serde_json::json!({"model": model, "progress": progress, "message": message}),
    }
}

impl HostServices {
    /// The capabilities this host offers through [`HostApi::extension`]: none in 2.0.
    pub fn capabilities() -> RVec<RString> {
        RVec::new()
    }
}

impl HostApi for HostServices {
    fn log(&self, level: LogLevel, target: RStr<'_>, message: RStr<'_>) {
        let (plugin, target, message) =
            (self.plugin_id.as_str(), target.as_str(), message.as_str());
        match level {
            LogLevel::Trace => tracing::trace!(plugin, target, "{message}"),
            LogLevel::Debug => tracing::debug!(plugin, target, "{message}"),
            LogLevel::Info => tracing::info!(plugin, target, "{message}"),
            LogLevel::Warn => tracing::warn!(plugin, target, "{message}"),
            LogLevel::Error => tracing::error!(plugin, target, "{message}"),
        }
    }

    fn cache_dir(&self) -> RString {
        self.cache_dir.to_string_lossy().into_owned().into()
    }

    fn load_progress(&self, fraction: f32, message: RStr<'_>) {
        let news = self
            .display
            .show(&self.model_id, fraction, message.as_str());
        self.readiness.progress(fraction, message.as_str());
        if news {
            self.jobs
                .tell_queued(&loading_event(&self.model_id, fraction, message.as_str()));
        }
    }

    fn extension(&self, _name: RStr<'_>) -> ROption<ExtensionRef> {
        ROption::RNone
    }
}
