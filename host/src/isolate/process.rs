//! The host's end of a plugin process: starting it, sending it messages, routing its answers to
//! the calls waiting for them, and noticing when it dies.

use super::protocol::{EventWire, FromChild, ToChild, read_frame, write_frame};
use abi_stable::std_types::RStr;
use rbee_plugin_api::{HostApiRef, JobEnd, LogLevel, PluginError, WorkerStatus};
use std::{
    collections::HashMap,
    io::{BufRead, BufReader, BufWriter},
    os::unix::process::CommandExt,
    path::Path,
    process::{Child, ChildStdin, Command, ExitStatus, Stdio},
    sync::{
        Arc, Condvar, Mutex, OnceLock,
        atomic::{AtomicBool, AtomicU64, Ordering},
        mpsc::{Receiver, Sender, channel},
    },
    time::Duration,
};

/// The error code of jobs that were running when their plugin process died.
pub const PLUGIN_CRASHED: &str = "plugin_crashed";

/// The call number the load answers to.
const LOAD_CALL: u64 = 0;

/// How long a closed plugin process may take to exit before it is killed.
const EXIT_GRACE: Duration = Duration::from_secs(5);

/// How long a dead process's last stderr lines may take to arrive.
const STDERR_GRACE: Duration = Duration::from_secs(1);

/// An answer from the plugin process to one call.
pub enum Reply {
    /// The load's outcome: the worker's concurrency.
    Loaded(Result<u32, PluginError>),
    /// A validation's outcome.
    Checked(Result<(), PluginError>),
    /// An event of a running job, and its binary part.
    Event(EventWire, Vec<u8>),
    /// How a job ended.
    Ended(Result<JobEnd, PluginError>),
    /// The worker's status.
    Status(WorkerStatus),
    /// The process died; why.
    Died(String),
}

/// What to do when the process dies after it loaded: restart it. Called on the thread that
/// noticed, before the running calls fail; it must not wait for them.
pub type OnCrash = Box<dyn FnOnce(String) + Send>;

/// A running plugin process.
pub struct Process {
    pid: u32,
    child: Mutex<Child>,
    input: Mutex<Option<BufWriter<ChildStdin>>>,
    calls: Mutex<HashMap<u64, Sender<Reply>>>,
    next_call: AtomicU64,
    death: OnceLock<String>,
    exited: Latch,
    stderr_closed: Latch,
    closing: AtomicBool,
    on_crash: Mutex<Option<OnCrash>>,
    last_stderr: Mutex<String>,
}

impl Process {
    /// Starts `rbee-host plugins isolated <plugin>`; its logs and load progress go to `host`.
    pub fn start(plugin: &Path, host: HostApiRef) -> Result<Arc<Self>, PluginError> {
        let exe = std::env::current_exe()
            .map_err(|e| PluginError::internal(format!("cannot find rbee-host itself: {e}")))?;
        let mut child = Command::new(exe)
            .args(["plugins", "isolated"])
            .arg(plugin)
            .process_group(0)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| PluginError::internal(format!("cannot start a plugin process: {e}")))?;
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(PluginError::internal("the plugin process has no pipes"));
        };
        let process = Arc::new(Self {
            pid: child.id(),
            child: Mutex::new(child),
            input: Mutex::new(Some(BufWriter::new(stdin))),
            calls: Mutex::new(HashMap::new()),
            next_call: AtomicU64::new(LOAD_CALL + 1),
            death: OnceLock::new(),
            exited: Latch::default(),
            stderr_closed: Latch::default(),
            closing: AtomicBool::new(false),
            on_crash: Mutex::new(None),
            last_stderr: Mutex::new(String::new()),
        });
        let relay = process.clone();
        spawn("rbee-plugin-stderr", move || relay.relay_stderr(stderr));
        let reader = process.clone();
        spawn("rbee-plugin-reader", move || {
            reader.read_answers(BufReader::new(stdout), host)
        });
        Ok(process)
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Registers a call and returns its number and where its answers arrive; the load has
    /// number [`LOAD_CALL`].
    pub fn open_call(&self, load: bool) -> (u64, Receiver<Reply>) {
        let call = match load {
            true => LOAD_CALL,
            false => self.next_call.fetch_add(1, Ordering::Relaxed),
        };
        let (sender, receiver) = channel();
        match self.death.get() {
            Some(why) => {
                let _ = sender.send(Reply::Died(why.clone()));
            }
            None => {
                self.lock_calls().insert(call, sender);
            }
        }
        (call, receiver)
    }

    /// Forgets a call that will get no more answers.
    pub fn close_call(&self, call: u64) {
        self.lock_calls().remove(&call);
    }

    /// Sends a message; a process that cannot be written to is dead, which its reader reports.
    pub fn send(&self, message: &ToChild, payload: &[u8]) {
        let mut input = self.input.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(pipe) = input.as_mut()
            && write_frame(pipe, message, payload).is_err()
        {
            *input = None;
        }
    }

    /// Why the process died, if it has.
    pub fn death(&self) -> Option<&String> {
        self.death.get()
    }

    /// From now on, a death calls `on_crash` (once).
    pub fn on_crash(&self, on_crash: OnCrash) {
        *self.on_crash.lock().unwrap_or_else(|e| e.into_inner()) = Some(on_crash);
    }

    /// Ends the process: closes its input (it exits by itself), and kills it if it has not
    /// exited within [`EXIT_GRACE`]. Not a crash.
    pub fn close(&self) {
        self.closing.store(true, Ordering::SeqCst);
        self.input.lock().unwrap_or_else(|e| e.into_inner()).take();
        if !self.exited.wait(EXIT_GRACE) {
            let _ = self.child.lock().unwrap_or_else(|e| e.into_inner()).kill();
        }
    }

    /// The process's resident memory, in bytes (Linux), or 0.
    pub fn resident_bytes(&self) -> u64 {
        let statm = std::fs::read_to_string(format!("/proc/{}/statm", self.pid));
        let pages = statm
            .ok()
            .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok());
        pages.map_or(0, |pages| pages * 4096)
    }

    /// Routes every frame the process sends, until it ends; then reports its death.
    fn read_answers(&self, mut output: impl std::io::Read, host: HostApiRef) {
        while let Ok(Some((message, payload))) = read_frame::<FromChild>(&mut output) {
            let (call, reply) = match message {
                FromChild::Loaded(outcome) => {
                    (LOAD_CALL, Reply::Loaded(outcome.map_err(Into::into)))
                }
                FromChild::Checked { call, outcome } => {
                    (call, Reply::Checked(outcome.map_err(Into::into)))
                }
                FromChild::Event { call, event } => (call, Reply::Event(event, payload)),
                FromChild::Ended { call, outcome } => (
                    call,
                    Reply::Ended(outcome.map(Into::into).map_err(Into::into)),
                ),
                FromChild::Status { call, status } => (call, Reply::Status(status.into())),
                FromChild::Log {
                    level,
                    target,
                    message,
                } => {
                    host.log(
                        log_level(level),
                        RStr::from(target.as_str()),
                        message.as_str().into(),
                    );
                    continue;
                }
                FromChild::Progress { fraction, message } => {
                    host.load_progress(fraction, message.as_str().into());
                    continue;
                }
            };
            let ends_call = matches!(
                reply,
                Reply::Loaded(_) | Reply::Checked(_) | Reply::Ended(_) | Reply::Status(_)
            );
            let mut calls = self.lock_calls();
            let sender = match ends_call {
                true => calls.remove(&call),
                false => calls.get(&call).cloned(),
            };
            drop(calls);
            if let Some(sender) = sender {
                let _ = sender.send(reply);
            }
        }
        self.died();
    }

    /// Records why the process ended and, unless the host closed it, reports the crash (before
    /// the waiting calls fail, so that no engine thread takes another job for the dead
    /// process); then fails every waiting call with it.
    fn died(&self) {
        self.input.lock().unwrap_or_else(|e| e.into_inner()).take();
        let status = self.child.lock().unwrap_or_else(|e| e.into_inner()).wait();
        self.exited.set();
        self.stderr_closed.wait(STDERR_GRACE);
        let last_line = self
            .last_stderr
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let why = describe_death(self.pid, status.ok(), &last_line);
        let why = self.death.get_or_init(|| why).clone();
        if !self.closing.load(Ordering::SeqCst) {
            let on_crash = self
                .on_crash
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take();
            if let Some(on_crash) = on_crash {
                on_crash(why.clone());
            }
        }
        for (_, sender) in self.lock_calls().drain() {
            let _ = sender.send(Reply::Died(why.clone()));
        }
    }

    /// Passes the process's stderr (panic messages, runtime errors, stray prints) to the
    /// host's log, line by line, keeping the last line for the death report.
    fn relay_stderr(&self, stderr: impl std::io::Read) {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.trim().is_empty() {
                continue;
            }
            tracing::warn!(target: "rbee_host::plugin_process", pid = self.pid, "{line}");
            *self.last_stderr.lock().unwrap_or_else(|e| e.into_inner()) = line;
        }
        self.stderr_closed.set();
    }

    fn lock_calls(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Sender<Reply>>> {
        self.calls.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Something that happens once, and threads that wait for it.
#[derive(Default)]
struct Latch(Mutex<bool>, Condvar);

impl Latch {
    fn set(&self) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.1.notify_all();
    }

    /// Waits up to `timeout`; whether it happened.
    fn wait(&self, timeout: Duration) -> bool {
        let guard = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let (guard, _) = self
            .1
            .wait_timeout_while(guard, timeout, |done| !*done)
            .unwrap_or_else(|e| e.into_inner());
        *guard
    }
}

fn spawn(name: &str, work: impl FnOnce() + Send + 'static) {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(work)
        .expect("spawning a plugin-process thread");
}

fn log_level(level: u8) -> LogLevel {
    match level {
        0 => LogLevel::Trace,
        1 => LogLevel::Debug,
        2 => LogLevel::Info,
        3 => LogLevel::Warn,
        _ => LogLevel::Error,
    }
}

/// "the plugin process (pid 12) was killed by signal 11 (SIGSEGV): <its last stderr line>".
fn describe_death(pid: u32, status: Option<ExitStatus>, last_line: &str) -> String {
    let how = match status {
        Some(status) => match (status.code(), signal_of(&status)) {
            (_, Some(signal)) => format!("was killed by signal {signal} ({})", signal_name(signal)),
            (Some(code), None) => format!("exited with code {code}"),
            (None, None) => "ended".to_string(),
        },
        None => "ended".to_string(),
    };
    match last_line.trim() {
        "" => format!("the plugin process (pid {pid}) {how}"),
        line => format!("the plugin process (pid {pid}) {how}: {line}"),
    }
}

fn signal_of(status: &ExitStatus) -> Option<i32> {
    std::os::unix::process::ExitStatusExt::signal(status)
}

fn signal_name(signal: i32) -> &'static str {
    match signal {
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGILL => "SIGILL",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGTERM => "SIGTERM",
        _ => "another signal",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    #[test]
    fn a_death_names_the_signal_and_the_last_words() {
        let segfault = ExitStatus::from_raw(libc::SIGSEGV);
        assert_eq!(
            describe_death(7, Some(segfault), ""),
            "the plugin process (pid 7) was killed by signal 11 (SIGSEGV)"
        );
        let overflow = ExitStatus::from_raw(libc::SIGABRT);
        assert!(
            describe_death(7, Some(overflow), "fatal runtime error: stack overflow")
                .ends_with("(SIGABRT): fatal runtime error: stack overflow")
        );
        let exit = ExitStatus::from_raw(3 << 8);
        assert!(describe_death(7, Some(exit), "").ends_with("exited with code 3"));
    }
}
