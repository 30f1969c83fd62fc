//! Plugins built against a *changed* plugin-api, made the way a stale third-party build would
//! be: a copy of today's plugin-api with a different version or an edited type, and the real
//! echo plugin's source compiled against it, in a workspace of its own under target/.

use crate::{build::target_dir, workspace_root};
use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::Mutex,
};

/// How the copied plugin-api differs from today's.
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
}

/// Builds the echo plugin against the changed plugin-api and returns the `.so`, installed as
/// `echo-cpu.so` in a directory of its own.
pub fn echo_built_against(change: &ApiChange<'_>) -> PathBuf {
    static BUILDING: Mutex<()> = Mutex::new(());
    let _one_at_a_time = BUILDING.lock().unwrap_or_else(|e| e.into_inner());
    let root = target_dir().join("fixtures");
    let dir = root.join(change.name);
    let api = dir.join("plugin-api");
    copy_dir(&workspace_root().join(change.source), &api.join("src"));
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
         [dependencies]\nabi_stable = \"0.11.3\"\n",
            change.version
        ),
    );
    let echo_src = workspace_root().join("plugins/echo/src/lib.rs");
    write(
        &dir.join("echo/Cargo.toml"),
        &format!(
            "[package]\nname = \"rbee-plugin-echo\"\nversion = \"1.0.0\"\nedition = \"2024\"\n\n\
         [lib]\npath = {:?}\ncrate-type = [\"cdylib\"]\n\n\
         [dependencies]\nrbee-plugin-api = {{ path = \"../plugin-api\" }}\n\
         serde = {{ version = \"1\", features = [\"derive\"] }}\nserde_json = \"1\"\nserde_path_to_error = \"0.1\"\n",
            echo_src
        ),
    );
    write(
        &dir.join("Cargo.toml"),
        "[workspace]\nresolver = \"3\"\nmembers = [\"plugin-api\", \"echo\"]\n",
    );
    std::fs::copy(workspace_root().join("Cargo.lock"), dir.join("Cargo.lock"))
        .expect("copying Cargo.lock");
    let target = root.join("target");
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["build", "--quiet", "--manifest-path"])
        .arg(dir.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target)
        .env_remove("RUSTFLAGS")
        .status()
        .expect("running cargo");
    assert!(
        status.success(),
        "building the {} fixture failed",
        change.name
    );
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

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}
