//! The plugin author's side: a plain Rust trait, a panic guard, and the export macro.

use crate::{
    ExtensionRef, HostApiRef, Job, JobEnd, JobSink, LoadRequest, LogLevel, Manifest, PluginError,
    PluginMod, PluginModRef, Worker, WorkerBox, WorkerStatus, error_code,
};
use abi_stable::{
    prefix_type::PrefixTypeTrait,
    sabi_trait::TD_Opaque,
    std_types::{ROption, RResult, RStr, RString, RVec},
};
use std::panic::{AssertUnwindSafe, catch_unwind};

/// A worker as a plugin author writes it: plain Rust types, no FFI. The threads each method is
/// called on, and what it may block on, are those of [`Worker`]'s methods of the same name.
///
/// [`crate::export_plugin!`] wraps it in an adapter that catches panics, so a panic in any of
/// these methods becomes a `plugin_panic` error for that call and the host carries on.
pub trait PluginWorker: Send + Sync + 'static {
    /// Checks a job (its task, its parameters, a JSON object, and its binary inputs). Return
    /// [`PluginError::invalid_param`] naming the field, or [`PluginError::unsupported_task`].
    fn validate(&self, job: &Job) -> Result<(), PluginError>;

    /// Runs the job, streaming events into `sink`. Check the [`crate::Flow`] each event returns
    /// (or [`crate::EventSinkExt::is_cancelled`]) and return [`JobEnd::cancelled`] within one
    /// step after a stop. Up to [`PluginWorker::max_concurrent_jobs`] calls run at once.
    fn execute(&self, job: Job, sink: JobSink) -> Result<JobEnd, PluginError>;

    /// The worker's status: model, memory held, cache usage.
    fn status(&self) -> WorkerStatus;

    /// How many jobs may run at once; 1 (the default) runs them one after another.
    fn max_concurrent_jobs(&self) -> u32 {
        1
    }

    /// A capability this worker offers by name (see [`crate::extension`]); none by default.
    fn extension(&self, name: &str) -> Option<ExtensionRef> {
        let _ = name;
        None
    }
}

/// Adapts a [`PluginWorker`] to the FFI-safe [`Worker`] trait, catching panics.
struct WorkerAdapter<W>(W);

impl<W: PluginWorker> Worker for WorkerAdapter<W> {
    fn max_concurrent_jobs(&self) -> u32 {
        catch_panic(|| Ok(self.0.max_concurrent_jobs()))
            .unwrap_or(1)
            .max(1)
    }

    fn validate(&self, job: &Job) -> RResult<(), PluginError> {
        catch_panic(|| self.0.validate(job)).into()
    }

    fn execute(&self, job: Job, sink: JobSink) -> RResult<JobEnd, PluginError> {
        catch_panic(|| self.0.execute(job, sink)).into()
    }

    fn status(&self) -> WorkerStatus {
        catch_panic(|| Ok(self.0.status())).unwrap_or_default()
    }

    fn extension(&self, name: RStr<'_>) -> ROption<ExtensionRef> {
        catch_panic(|| Ok(self.0.extension(name.as_str())))
            .ok()
            .flatten()
            .into()
    }
}

/// Runs `f`, turning a panic into a `plugin_panic` error that carries the panic message.
pub fn catch_panic<T>(f: impl FnOnce() -> Result<T, PluginError>) -> Result<T, PluginError> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|payload| {
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic with no message".to_string());
        Err(PluginError::new(
            error_code::PANIC,
            format!("the plugin panicked: {message}"),
        ))
    })
}

/// CPU features this crate was compiled for (with `-C target-cpu` or `-C target-feature`).
/// Because plugin-api is compiled inside each plugin's build, this is the plugin's list.
fn compiled_cpu_features() -> RVec<RString> {
    COMPILED_CPU_FEATURES
        .iter()
        .filter(|name| !name.is_empty())
        .map(|&name| name.into())
        .collect()
}

/// The CPU features enabled at compile time, padded with empty names (skipped by readers).
#[doc(hidden)]
pub const COMPILED_CPU_FEATURES: &[&str] = &compiled_features();

macro_rules! feature_table {
    ($($arch:literal: [$($name:literal),*]),*) => {
        const fn compiled_features() -> [&'static str; feature_table!(@count $($($name)*)*)] {
            let mut out = [""; feature_table!(@count $($($name)*)*)];
            let mut n = 0;
            $($(
                if cfg!(all(target_arch = $arch, target_feature = $name)) {
                    out[n] = $name;
                    n += 1;
                }
            )*)*
            let _ = n;
            out
        }
    };
    (@count $($name:literal)*) => { 0 $(+ { let _ = $name; 1 })* };
}

feature_table! {
    "x86_64": ["sse3", "ssse3", "sse4.1", "sse4.2", "popcnt", "avx", "avx2", "fma", "f16c",
               "bmi1", "bmi2", "lzcnt", "movbe", "avx512f", "avx512bw", "avx512vl", "avx512dq",
               "avx512vnni"],
    "aarch64": ["neon", "fp16", "dotprod", "i8mm", "sve"]
}

#[doc(hidden)]
pub fn __manifest_entry(manifest: fn() -> Manifest) -> RResult<Manifest, PluginError> {
    catch_panic(|| {
        let mut manifest = manifest();
        manifest.api_version = crate::API_VERSION.into();
        manifest.required_cpu_features = compiled_cpu_features();
        Ok(manifest)
    })
    .into()
}

#[doc(hidden)]
pub fn __load_entry<W: PluginWorker>(
    load: fn(LoadRequest, HostApiRef) -> Result<W, PluginError>,
    request: LoadRequest,
    host: HostApiRef,
) -> RResult<WorkerBox, PluginError> {
    log_panics_to(host.clone());
    catch_panic(|| load(request, host).map(|w| WorkerBox::from_value(WorkerAdapter(w), TD_Opaque)))
        .into()
}

/// Reports the plugin's panics through the host's log. The plugin's copy of the standard
/// library has a panic hook of its own, which would print past the host's logger (breaking JSON
/// logs); [`panic_report`] becomes one error line instead. The panic itself is still caught and
/// becomes `plugin_panic`.
fn log_panics_to(host: HostApiRef) {
    std::panic::set_hook(Box::new(move |info| {
        let report = panic_report(info);
        host.log(LogLevel::Error, "panic".into(), report.as_str().into());
    }));
}

/// What a panic hook reports of a panic, the host's or a plugin's: `panicked at FILE:LINE:
/// MESSAGE`, then the backtrace when `RUST_BACKTRACE` asks for one.
pub fn panic_report(info: &std::panic::PanicHookInfo<'_>) -> String {
    let payload = info.payload();
    let message = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(a non-text payload)");
    let location = info
        .location()
        .map(|l| format!(" at {}:{}", l.file(), l.line()))
        .unwrap_or_default();
    let backtrace = std::backtrace::Backtrace::capture();
    match backtrace.status() {
        std::backtrace::BacktraceStatus::Captured => {
            format!("panicked{location}: {message}\n{backtrace}")
        }
        _ => format!("panicked{location}: {message}"),
    }
}

#[doc(hidden)]
pub fn __root_module(
    manifest: extern "C" fn() -> RResult<Manifest, PluginError>,
    load: extern "C" fn(LoadRequest, HostApiRef) -> RResult<WorkerBox, PluginError>,
) -> PluginModRef {
    PluginMod { manifest, load }.leak_into_prefix()
}

/// Exports a plugin: its manifest function and its load function.
///
/// - `manifest: fn() -> Manifest` (its `api_version` and `required_cpu_features` are filled in)
/// - `load: fn(LoadRequest, HostApiRef) -> Result<W, PluginError>` where `W: PluginWorker`
///
/// Exports the abi_stable root module and the [`crate::PluginPreamble`]; every entry point
/// catches panics. Use it once, at the root of a `cdylib` crate.
#[macro_export]
macro_rules! export_plugin {
    (manifest: $manifest:path, load: $load:path $(,)?) => {
        #[doc(hidden)]
        #[unsafe(export_name = "rbee_plugin_preamble")]
        pub static RBEE_PLUGIN_PREAMBLE: $crate::PluginPreamble =
            $crate::PluginPreamble::new($crate::COMPILED_CPU_FEATURES);

        #[doc(hidden)]
        #[unsafe(export_name = "_1as_0lib_1header_0root_bmodule_bloader")]
        pub static RBEE_PLUGIN_ROOT_MODULE: $crate::abi_stable::library::LibHeader = {
            extern "C" fn manifest_entry()
            -> $crate::abi_stable::std_types::RResult<$crate::Manifest, $crate::PluginError> {
                $crate::__manifest_entry($manifest)
            }
            extern "C" fn load_entry(
                request: $crate::LoadRequest,
                host: $crate::HostApiRef,
            ) -> $crate::abi_stable::std_types::RResult<$crate::WorkerBox, $crate::PluginError>
            {
                $crate::__load_entry($load, request, host)
            }
            fn root_module() -> $crate::PluginModRef {
                $crate::__root_module(manifest_entry, load_entry)
            }
            extern "C" fn erased_root_module() -> $crate::abi_stable::library::RootModuleResult {
                $crate::abi_stable::library::__call_root_module_loader(root_module)
            }
            unsafe {
                $crate::abi_stable::library::LibHeader::from_constructor::<$crate::PluginModRef>(
                    erased_root_module,
                    $crate::abi_stable::library::CheckTypeLayout::Yes,
                )
            }
        };
    };
}
