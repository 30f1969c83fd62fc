//! Running a parsed command line: logging first, then serving or a `plugins` sub-command.

use crate::{
    cli::{Cli, Command, LogFormat, PluginsAction},
    error::HostError,
    isolate,
    plugin::{commands, discovery::SearchDirs, loader},
    serve,
};

/// Runs the command line.
pub fn run(cli: Cli) -> Result<(), HostError> {
    init_logging(cli.log_format);
    match cli.command {
        Some(Command::Plugins {
            action: PluginsAction::List(search),
        }) => commands::list(&SearchDirs::new(&search.plugins_dirs)?),
        Some(Command::Plugins {
            action: PluginsAction::Inspect { plugin, search },
        }) => commands::inspect(&plugin, &SearchDirs::new(&search.plugins_dirs)?),
        Some(Command::Plugins {
            action: PluginsAction::Probe { path },
        }) => loader::open(&path).map(drop).map_err(HostError::from),
        Some(Command::Plugins {
            action: PluginsAction::Isolated { path },
        }) => isolate::child::run(&path),
        None => serve::serve(cli.serve.validate()?),
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("RBEE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => {
            builder.json().init();
            std::panic::set_hook(Box::new(log_panic));
        }
    }
}

/// Reports a panic of the host's as one log line, so that JSON logs stay JSON (plugins report
/// theirs through the host's log the same way).
fn log_panic(info: &std::panic::PanicHookInfo<'_>) {
    tracing::error!(target: "panic", "{}", rbee_plugin_api::panic_report(info));
}
