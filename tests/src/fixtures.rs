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
    /// Whether the plugin uses `rbee-plugin-kit` (built from today's source against the copy).
    pub kit: bool,
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
            kit: true,
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
    let mut members = vec!["plugin-api", "echo"];
    let mut kit = String::new();
    if change.kit {
        fresh_copy(
            &workspace_root().join("crates/plugin-kit"),
            &dir.join("plugin-kit"),
        );
        members.push("plugin-kit");
        kit = "rbee-plugin-kit = { path = \"../plugin-kit\" }\n".into();
    }
    write(
        &dir.join("echo/Cargo.toml"),
        &format!(
            "[package]\nname = \"rbee-plugin-echo\"\nversion = \"1.0.0\"\nedition = \"2024\"\n\n\
         [lib]\npath = {:?}\ncrate-type = [\"cdylib\"]\n\n\
         [dependencies]\nrbee-plugin-api = {{ path = \"../plugin-api\" }}\n{kit}\
         serde.workspace = true\nserde_json.workspace = true\nserde_path_to_error.workspace = true\n\
         schemars.workspace = true\n",
            workspace_root().join(change.plugin)
        ),
    );
    write_workspace(&dir, &members);
    let target = cargo_build(&dir, &["--quiet", "-p", "rbee-plugin-echo"]);
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
    fresh_copy(&workspace_root().join("host"), &dir.join("host"));
    write_workspace(&dir, &["plugin-api", "host"]);
    let target = cargo_build(&dir, &["--quiet", "-p", "rbee-host"]);
    target.join("debug").join("rbee-host")
}

/// Writes the fixture workspace's manifest: today's workspace settings and pinned dependencies
/// (so builds match the lock file), with `members`, and plugin-api and the kit at the fixture's
/// copies, whatever version the plugin-api copy claims. Dependencies are built unoptimised: a
/// fixture serves one echo job, and optimising a host's dependencies takes minutes.
fn write_workspace(dir: &Path, members: &[&str]) {
    let manifest =
        std::fs::read_to_string(workspace_root().join("Cargo.toml")).expect("the root manifest");
    let members = format!("members = {members:?}");
    let mut section = String::new();
    let manifest: Vec<String> = manifest
        .lines()
        .map(|line| {
            if line.starts_with('[') {
                section = line.to_string();
            }
            match line.split(' ').next() {
                Some("members") => members.clone(),
                Some("rbee-plugin-api") => "rbee-plugin-api = { path = \"plugin-api\" }".into(),
                Some("rbee-plugin-kit") => "rbee-plugin-kit = { path = \"plugin-kit\" }".into(),
                Some("opt-level") if section == "[profile.dev.package.\"*\"]" => {
                    "opt-level = 0".into()
                }
                _ => line.to_string(),
            }
        })
        .collect();
    write(&dir.join("Cargo.toml"), &manifest.join("\n"));
}

/// Lays out the changed plugin-api in the fixture's directory, which it returns.
fn copy_api(change: &ApiChange<'_>) -> PathBuf {
    let dir = target_dir().join("fixtures").join(change.name);
    let api = dir.join("plugin-api");
    fresh_copy(&workspace_root().join(change.source), &api.join("src"));
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

/// Replaces `to` with a copy of `from`, so no file of an earlier copy is left behind.
fn fresh_copy(from: &Path, to: &Path) {
    if to.exists() {
        std::fs::remove_dir_all(to).expect("removing an earlier copy");
    }
    copy_dir(from, to);
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
