//! Where plugins are looked for, and finding one by id.

use super::error::PermissionError;
use crate::error::HostError;
use std::{
    env,
    path::{Path, PathBuf},
};

/// The platform's file ending for shared libraries.
pub const LIBRARY_SUFFIX: &str = std::env::consts::DLL_EXTENSION;

/// One directory searched for plugins.
#[derive(Debug, Clone)]
pub struct SearchDir {
    /// The directory.
    pub path: PathBuf,
}

/// The ordered list of directories searched for plugins.
#[derive(Debug, Clone)]
pub struct SearchDirs(Vec<SearchDir>);

/// A plugin file found on disk, named `<id>.<suffix>`.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// The id, from the file name.
    pub id: String,
    /// The file.
    pub path: PathBuf,
}

impl SearchDirs {
    /// The search order: `explicit` dirs, `$RBEE_PLUGIN_PATH`, the user data dir,
    /// `/usr/lib/rbee/plugins`, then `plugins/` beside the executable.
    pub fn new(explicit: &[PathBuf]) -> Result<Self, HostError> {
        let mut dirs = Vec::new();
        for path in explicit {
            if !path.is_dir() {
                return Err(HostError::Usage(format!(
                    "--plugins-dir {} is not a directory",
                    path.display()
                )));
            }
            dirs.push(SearchDir { path: path.clone() });
        }
        let implicit = env::var_os("RBEE_PLUGIN_PATH")
            .map(|paths| env::split_paths(&paths).collect::<Vec<_>>())
            .unwrap_or_default()
            .into_iter()
            .chain(dirs::data_dir().map(|dir| dir.join("rbee").join("plugins")))
            .chain([PathBuf::from("/usr/lib/rbee/plugins")])
            .chain(
                env::current_exe()
                    .ok()
                    .and_then(|exe| Some(exe.parent()?.join("plugins"))),
            );
        dirs.extend(implicit.map(|path| SearchDir { path }));
        Ok(Self(dirs))
    }

    /// The directories, in search order.
    pub fn dirs(&self) -> &[SearchDir] {
        &self.0
    }

    /// Every plugin file in every directory, in search order.
    pub fn candidates(&self) -> Vec<Candidate> {
        self.0
            .iter()
            .flat_map(|dir| candidates_in(&dir.path))
            .collect()
    }

    /// The one file for plugin `id`: an error lists the ids found when there is none, and names
    /// both files when there are two.
    pub fn find(&self, id: &str) -> Result<Candidate, HostError> {
        let all = self.candidates();
        let mut matching = all.iter().filter(|c| c.id == id);
        match (matching.next(), matching.next()) {
            (Some(first), None) => Ok(first.clone()),
            (Some(first), Some(second)) => Err(HostError::DuplicatePlugin {
                id: id.to_string(),
                first: first.path.clone(),
                second: second.path.clone(),
            }),
            (None, _) => Err(HostError::PluginNotFound {
                id: id.to_string(),
                searched: self
                    .0
                    .iter()
                    .map(|d| d.path.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                found: match all.is_empty() {
                    true => "none (build them with `cargo xtask plugins`)".to_string(),
                    false => all
                        .iter()
                        .map(|c| c.id.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                },
            }),
        }
    }
}

fn candidates_in(dir: &Path) -> Vec<Candidate> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found: Vec<Candidate> = entries
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == LIBRARY_SUFFIX) && path.is_file())
        .filter_map(|path| {
            let id = path.file_stem()?.to_str()?.to_string();
            Some(Candidate { id, path })
        })
        .collect();
    found.sort_by(|a, b| a.id.cmp(&b.id));
    found
}

/// Refuses a plugin file that others could have changed: loading a plugin runs its code, so
/// the file and its directory must not be writable by group or others.
pub fn check_permissions(path: &Path) -> Result<(), PermissionError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let dir = path.parent().unwrap_or(Path::new("."));
        for (what, item) in [("file", path), ("directory", dir)] {
            let mode = std::fs::metadata(item)
                .map_err(|error| PermissionError::Unreadable {
                    path: item.to_path_buf(),
                    error,
                })?
                .permissions()
                .mode();
            if mode & 0o022 != 0 {
                return Err(PermissionError::Writable {
                    plugin: path.to_path_buf(),
                    what,
                    item: item.to_path_buf(),
                    mode: mode & 0o777,
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn dir_with(files: &[&str]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for file in files {
            std::fs::write(dir.path().join(file), b"").unwrap();
        }
        dir
    }

    #[test]
    fn finds_plugins_by_file_stem_and_ignores_other_files() {
        let dir = dir_with(&[&format!("echo-cpu.{LIBRARY_SUFFIX}"), "notes.txt"]);
        let dirs = SearchDirs::new(&[dir.path().to_path_buf()]).unwrap();
        let found = dirs.find("echo-cpu").unwrap();
        assert_eq!(
            found.path,
            dir.path().join(format!("echo-cpu.{LIBRARY_SUFFIX}"))
        );
    }

    #[test]
    fn unknown_id_lists_the_ids_found() {
        let dir = dir_with(&[&format!("echo-cpu.{LIBRARY_SUFFIX}")]);
        let dirs = SearchDirs::new(&[dir.path().to_path_buf()]).unwrap();
        let message = dirs.find("llm-cpu").unwrap_err().to_string();
        assert!(message.contains("no plugin 'llm-cpu'"), "{message}");
        assert!(message.contains("echo-cpu"), "{message}");
    }

    #[test]
    fn the_same_id_twice_names_both_files() {
        let name = format!("echo-cpu.{LIBRARY_SUFFIX}");
        let (a, b) = (dir_with(&[&name]), dir_with(&[&name]));
        let dirs = SearchDirs::new(&[a.path().to_path_buf(), b.path().to_path_buf()]).unwrap();
        let message = dirs.find("echo-cpu").unwrap_err().to_string();
        assert!(
            message.contains(&a.path().join(&name).display().to_string()),
            "{message}"
        );
        assert!(
            message.contains(&b.path().join(&name).display().to_string()),
            "{message}"
        );
    }

    #[test]
    fn a_missing_explicit_dir_is_a_usage_error() {
        let error = SearchDirs::new(&[PathBuf::from("/no/such/dir")]).unwrap_err();
        assert!(error.to_string().contains("/no/such/dir"));
    }

    #[test]
    fn group_or_world_writable_files_and_dirs_are_refused() {
        let name = format!("echo-cpu.{LIBRARY_SUFFIX}");
        let dir = dir_with(&[&name]);
        let file = dir.path().join(&name);
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(check_permissions(&file).is_ok());
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o666)).unwrap();
        assert!(
            check_permissions(&file)
                .unwrap_err()
                .to_string()
                .contains("its file")
        );
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(
            check_permissions(&file)
                .unwrap_err()
                .to_string()
                .contains("its directory")
        );
    }
}
