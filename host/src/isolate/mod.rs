//! Crash isolation, the default (`--in-process` turns it off): a model's plugin loads and runs
//! in a supervised child process (`rbee-host plugins isolated <file>`), which the host talks to
//! over the child's stdin and stdout. The child has a process group of its own, so a Ctrl-C on
//! the terminal reaches only the host, which drains and then closes it. A segfault, abort or stack overflow in the plugin kills only that process: its
//! running jobs end with a `plugin_crashed` error, and the host loads the model again.
//!
//! The host still opens the plugin file itself, after the probe, to read its manifest; the
//! plugin's `load`, `validate` and `execute` run only in the child.

pub mod child;
mod process;
mod protocol;
mod worker;

pub use process::{OnCrash, PLUGIN_CRASHED};

use process::{Process, Reply};
use protocol::{LoadWire, ToChild};
use rbee_plugin_api::{HostApiRef, LoadRequest, PluginError, WorkerBox};
use std::path::Path;
use worker::{IsolatedWorker, crashed};

/// Starts a plugin process for the plugin file at `plugin`, loads the model there and returns
/// the worker that speaks to it. After the load, the process's death calls `on_crash`.
pub fn load(
    plugin: &Path,
    request: &LoadRequest,
    host: HostApiRef,
    on_crash: OnCrash,
) -> Result<WorkerBox, PluginError> {
    let cache_dir = host.cache_dir().into_string();
    let process = Process::start(plugin, host)?;
    let (_, answers) = process.open_call(true);
    let load = ToChild::Load {
        request: LoadWire::from(request),
        cache_dir,
    };
    process.send(&load, &[]);
    let loaded = match answers.recv() {
        Ok(Reply::Loaded(outcome)) => outcome,
        Ok(Reply::Died(why)) => Err(crashed(&why)),
        _ => Err(crashed("the plugin process stopped answering")),
    };
    let slots = loaded.inspect_err(|_| process.close())?;
    process.on_crash(on_crash);
    if let Some(why) = process.death() {
        return Err(crashed(why));
    }
    tracing::info!(
        "the plugin runs in a process of its own, pid {}",
        process.pid()
    );
    let worker = IsolatedWorker::new(process, slots);
    Ok(WorkerBox::from_value(
        worker,
        abi_stable::sabi_trait::TD_Opaque,
    ))
}
