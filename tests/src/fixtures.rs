//! Plugins and hosts built against a *changed* plugin-api, made the way a stale or newer
//! third-party build would be: a copy of a plugin-api source (today's, or a frozen release under
//! `tests/fixtures`) with another version, an edited type or added files, and a real plugin's or
//! the host's source compiled against it, in a workspace of its own under target/.

use crate::{build::target_dir, workspace_root};
use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::Mutex,
};

/// How the copied plugin-api differs from today's, and what is built against it.
pub struct ApiChange<'a> {
    /// A name for the fixture (its directory).
    pub name: &'a str,
    /// The plugin-api source to copy, relative to the workspace: `plugin-api/src` (today's) or
    /// a frozen release under `tests/fixtures`.
    pub source: &'a str,
    /// The plugin-api version the copy claims.
    pub version: &'a str,
    /// An edit to one source file: (file under src/, text, replacement).
    pub edit: Option<(&'a str, &'a str, &'a str)>,
    /// Files added to the copy's src/: (file name, workspace-relative path of its source).
    pub added: &'a [(&'a str, &'a str)],
    /// The plugin's `lib.rs`, relative to the workspace (its modules beside it).
    pub plugin: &'a str,
}

impl ApiChange<'_> {
    /// Today's echo plugin, built against today's plugin-api claiming `version`.
    pub const fn echo(name: &'static str, version: &'static str) -> ApiChange<'static> {
        ApiChange {
            name,
            source: "plugin-api/src",
            version,
            edit: None,
            added: &[],
            plugin: "plugins/echo/src/lib.rs",
        }
    }
}

/// One fixture build at a time: they share a target dir.
static BUILDING: Mutex<()> = Mutex::new(());

/// Builds the plugin against the changed plugin-api and returns the `.so`, installed as
/// `echo-cpu.so` in a directory of its own.
pub fn echo_built_against(change: &ApiChange<'_>) -> PathBuf {
    let _one_at_a_time = BUILDING.lock().unwrap_or_else(|e| e.into_inner());
    let dir = copy_api(change);
    write(
        &dir.join("echo/Cargo.toml"),
        &format!(
            "[package]\nname = \"rbee-plugin-echo\"\nversion = \"1.0.0\"\nedition = \"2024\"\n\n\
         [lib]\npath = {:?}\ncrate-type = [\"cdylib\"]\n\n\
         [dependencies]\nrbee-plugin-api = {{ path = \"../plugin-api\" }}\n\
         serde = {{ version = \"1\", features = [\"derive\"] }}\nserde_json = \"1\"\nserde_path_to_error = \"0.1\"\n",
            workspace_root().join(change.plugin)
        ),
    );
    write(
        &dir.join("Cargo.toml"),
        "[workspace]\nresolver = \"3\"\nmembers = [\"plugin-api\", \"echo\"]\n",
    );
    let target = cargo_build(&dir, &["--quiet"]);
    let installed_dir = dir.join("plugins");
    std::fs::create_dir_all(&installed_dir).unwrap();
    crate::set_mode(&installed_dir, 0o755);
    let lib = format!(
        "{}rbee_plugin_echo{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    );
    let installed = installed_dir.join(format!("echo-cpu.{}", std::env::consts::DLL_EXTENSION));
    std::fs::copy(target.join("debug").join(lib), &installed).expect("installing the fixture");
    crate::set_mode(&installed, 0o755);
    installed
}

/// Builds today's host source against the changed plugin-api (in the workspace's own settings
/// and lock file) and returns the binary.
pub fn host_built_against(change: &ApiChange<'_>) -> PathBuf {
    let _one_at_a_time = BUILDING.lock().unwrap_or_else(|e| e.into_inner());
    let dir = copy_api(change);
    let root = workspace_root();
    copy_dir(&root.join("host/src"), &dir.join("host/src"));
    std::fs::copy(root.join("host/Cargo.toml"), dir.join("host/Cargo.toml"))
        .expect("copying the host's manifest");
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).expect("the root manifest");
    let members = manifest
        .lines()
        .find(|line| line.starts_with("members = "))
        .expect("a members line");
    write(
        &dir.join("Cargo.toml"),
        &manifest.replace(members, "members = [\"plugin-api\", \"host\"]"),
    );
    let target = cargo_build(&dir, &["--quiet", "-p", "rbee-host"]);
    target.join("debug").join("rbee-host")
}

/// Lays out the changed plugin-api in the fixture's directory, which it returns.
fn copy_api(change: &ApiChange<'_>) -> PathBuf {
    let dir = target_dir().join("fixtures").join(change.name);
    let api = dir.join("plugin-api");
    copy_dir(&workspace_root().join(change.source), &api.join("src"));
    for (file, from) in change.added {
        std::fs::copy(workspace_root().join(from), api.join("src").join(file))
            .expect("adding a file to the copy");
    }
    if let Some((file, from, to)) = change.edit {
        let path = api.join("src").join(file);
        let text = std::fs::read_to_string(&path).expect("reading the copied source");
        assert!(
            text.contains(from),
            "{file} no longer contains {from:?}: update the fixture"
        );
        std::fs::write(&path, text.replace(from, to)).expect("editing the copy");
    }
    write(
        &api.join("Cargo.toml"),
        &format!(
            "[package]\nname = \"rbee-plugin-api\"\nversion = \"{}\"\nedition = \"2024\"\n\n\
         [dependencies]\nabi_stable = \"0.11.3\"\n\n[features]\ntesting = []\n",
            change.version
        ),
    );
    std::fs::copy(workspace_root().join("Cargo.lock"), dir.join("Cargo.lock"))
        .expect("copying Cargo.lock");
    dir
}

/// Builds the fixture workspace in `dir` in the fixtures' shared target dir, which it returns.
fn cargo_build(dir: &Path, args: &[&str]) -> PathBuf {
    let target = target_dir().join("fixtures").join("target");
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .arg("build")
        .args(args)
        .arg("--manifest-path")
        .arg(dir.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target)
        .env_remove("RUSTFLAGS")
        .status()
        .expect("running cargo");
    assert!(
        status.success(),
        "building the {} fixture failed",
        dir.display()
    );
    target
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        match entry.file_type().unwrap().is_dir() {
            true => copy_dir(&entry.path(), &target),
            false => {
                std::fs::copy(entry.path(), target).unwrap();
            }
        }
    }
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}
