//! Where a checkpoint's files come from: a local diffusers directory, or a Hugging Face hub repo
//! downloaded into the host's cache directory with load-progress reports.

use hf_hub::{
    Cache,
    api::{Progress, sync::ApiRepo},
};
use rbee_plugin_api::{HostApiRef, PluginError};
use rbee_plugin_kit::{error::model_load, source::ModelSource};
use std::{collections::HashSet, path::PathBuf};

/// A checkpoint's file store.
pub enum Source {
    /// A diffusers-layout directory on disk.
    Local(PathBuf),
    /// A hub repo: the files it lists (when the hub answered) and the cache it downloads into.
    Hub {
        /// `org/name`.
        repo: String,
        /// The hub client, or `None` when offline (then only cached files are found).
        api: Option<Box<(ApiRepo, HashSet<String>)>>,
        /// The local cache.
        cache: Cache,
        /// The host, for progress reports.
        host: HostApiRef,
    },
}

impl Source {
    /// The store for `model`: a local diffusers directory, or a hub repository `org/name` (a
    /// reference read by [`ModelSource::parse`]; it may not name a file).
    pub fn open(model: &str, host: &HostApiRef) -> Result<Self, PluginError> {
        let repo = match ModelSource::parse(model) {
            ModelSource::Local(path) if path.is_dir() => return Ok(Self::Local(path)),
            ModelSource::Hub { repo, file: None } => repo,
            _ => {
                return Err(model_load(format!(
                    "model '{model}' is neither a diffusers checkpoint directory nor a hub repo 'org/name'"
                )));
            }
        };
        let cache_dir = PathBuf::from(host.cache_dir().as_str());
        let online = !rbee_hub::offline();
        let api = online
            .then(|| rbee_hub::api(&cache_dir).ok())
            .flatten()
            .map(|api| api.model(repo.clone()))
            .and_then(|repo| {
                let info = repo.info().ok()?;
                let files = info.siblings.into_iter().map(|s| s.rfilename).collect();
                Some(Box::new((repo, files)))
            });
        Ok(Self::Hub {
            repo,
            api,
            cache: Cache::new(cache_dir),
            host: host.clone(),
        })
    }

    /// The model's name, for status and version detection.
    pub fn name(&self) -> String {
        match self {
            Self::Local(path) => path.display().to_string(),
            Self::Hub { repo, .. } => repo.clone(),
        }
    }

    /// The local path of `file` (e.g. `unet/config.json`), downloading it if needed, or `None`
    /// when the checkpoint has no such file. `fraction` is the load progress to report.
    pub fn get(&self, file: &str, fraction: f32) -> Result<Option<PathBuf>, PluginError> {
        match self {
            Self::Local(dir) => Ok(Some(dir.join(file)).filter(|path| path.is_file())),
            Self::Hub {
                repo,
                api,
                cache,
                host,
            } => {
                if let Some(path) = cache.model(repo.clone()).get(file) {
                    return Ok(Some(path));
                }
                let Some(listed) = api else {
                    return Ok(None);
                };
                let (api, files) = &**listed;
                if !files.contains(file) {
                    return Ok(None);
                }
                let progress = Download {
                    host: host.clone(),
                    file: file.to_string(),
                    fraction,
                    total: 0,
                    done: 0,
                    reported: 0,
                };
                rbee_hub::download(api, repo, file, cache.path(), progress)
                    .map(Some)
                    .map_err(|e| model_load(format!("cannot download {file} from {repo}: {e}")))
            }
        }
    }

    /// Whether the store is a hub repo that could not be reached or may not be (only cached
    /// files are seen).
    pub fn offline_hint(&self) -> &'static str {
        match self {
            Self::Hub { api: None, .. } if rbee_hub::offline() => {
                " (HF_HUB_OFFLINE is set; only cached files were looked at)"
            }
            Self::Hub { api: None, .. } => {
                " (the hub could not be reached; only cached files were looked at)"
            }
            _ => "",
        }
    }
}

/// Reports a download's progress to the host every 5%.
struct Download {
    host: HostApiRef,
    file: String,
    fraction: f32,
    total: usize,
    done: usize,
    reported: usize,
}

impl Progress for Download {
    fn init(&mut self, size: usize, _filename: &str) {
        self.total = size.max(1);
        self.host.load_progress(
            self.fraction,
            format!("downloading {}", self.file).as_str().into(),
        );
    }

    fn update(&mut self, size: usize) {
        self.done += size;
        let percent = self.done * 100 / self.total;
        if percent >= self.reported + 5 {
            self.reported = percent;
            let message = format!("downloading {}: {percent}%", self.file);
            self.host
                .load_progress(self.fraction, message.as_str().into());
        }
    }

    fn finish(&mut self) {}
}
