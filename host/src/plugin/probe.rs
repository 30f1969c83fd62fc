//! Opening an unknown library runs its static initialisers, which can crash or hang. So every
//! plugin file is first opened in a throw-away child process (`rbee-host plugins probe`); only
//! when the child survives does the host open it in its own process.

use super::error::ProbeError;
use std::{
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

/// How long a probe may take before the file is refused as hanging.
const PROBE_TIMEOUT: Duration = Duration::from_secs(20);

/// Opens and checks `path` in a child process; the refusal says what went wrong.
pub fn in_child(path: &Path) -> Result<(), ProbeError> {
    let exe = std::env::current_exe().map_err(ProbeError::NoExecutable)?;
    let mut child = Command::new(exe)
        .args(["plugins", "probe"])
        .arg(path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(ProbeError::Spawn)?;
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().map_err(ProbeError::Wait)? {
            break status;
        }
        if started.elapsed() > PROBE_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            return Err(ProbeError::Hung {
                path: path.to_path_buf(),
                seconds: PROBE_TIMEOUT.as_secs(),
            });
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    if status.success() {
        return Ok(());
    }
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut pipe, &mut stderr);
    }
    let refusal = stderr
        .lines()
        .find_map(|line| line.strip_prefix("rbee-host: "))
        .map(str::to_string);
    match (refusal, signal_of(&status)) {
        (_, Some(signal)) => Err(ProbeError::Crashed {
            path: path.to_path_buf(),
            signal,
        }),
        (Some(refusal), None) => Err(ProbeError::Refused(refusal)),
        (None, None) => Err(ProbeError::Failed {
            path: path.to_path_buf(),
            status,
        }),
    }
}

#[cfg(unix)]
fn signal_of(status: &std::process::ExitStatus) -> Option<i32> {
    std::os::unix::process::ExitStatusExt::signal(status)
}

#[cfg(not(unix))]
fn signal_of(_status: &std::process::ExitStatus) -> Option<i32> {
    None
}
