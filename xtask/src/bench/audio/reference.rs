//! faster-whisper as the audio bench's reference: one Python process that loads the model once
//! and transcribes each file named on its stdin, answering with one JSON line.

use super::{super::THREADS, Run};
use anyhow::{Context, Result, bail};
use serde_json::Value;
use std::{
    io::{BufRead, BufReader, Lines, Write},
    path::Path,
    process::{Child, ChildStdin, ChildStdout, Command, Stdio},
};

/// Loads the model (argv 1) on argv 2 threads, prints `ready`, then per path read from stdin
/// transcribes it as the plugin does (greedy, English, no conditioning on the previous window's
/// text, the default temperature fallback) and prints the seconds it took, the windows decoded
/// at a temperature above 0 and the text.
const SERVER: &str = r#"
import json, sys, time
from faster_whisper import WhisperModel
model = WhisperModel(sys.argv[1], device="cpu", cpu_threads=int(sys.argv[2]))
print("ready", flush=True)
for line in sys.stdin:
    started = time.perf_counter()
    segments, _ = model.transcribe(line.strip(), beam_size=1, language="en", condition_on_previous_text=False)
    segments = list(segments)
    seconds = time.perf_counter() - started
    fallbacks = len({s.seek for s in segments if s.temperature > 0})
    text = " ".join(s.text.strip() for s in segments)
    print(json.dumps({"seconds": seconds, "fallback_windows": fallbacks, "text": text}), flush=True)
"#;

/// A running faster-whisper process with the model loaded.
pub struct FasterWhisper {
    child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
}

impl FasterWhisper {
    /// Starts the process on `model` and waits until it is loaded; `None` when faster-whisper
    /// is not installed.
    pub fn start(model: &Path) -> Result<Option<Self>> {
        let installed = Command::new("python3")
            .args(["-c", "import faster_whisper"])
            .output();
        if !installed.is_ok_and(|o| o.status.success()) {
            return Ok(None);
        }
        let mut child = Command::new("python3")
            .args(["-c", SERVER])
            .arg(model)
            .arg(THREADS)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("starting faster-whisper")?;
        let stdin = child.stdin.take().context("faster-whisper's stdin")?;
        let stdout = child.stdout.take().context("faster-whisper's stdout")?;
        let mut server = Self {
            child,
            stdin,
            lines: BufReader::new(stdout).lines(),
        };
        match server.lines.next() {
            Some(Ok(line)) if line == "ready" => Ok(Some(server)),
            _ => bail!("faster-whisper did not load {}", model.display()),
        }
    }

    /// Transcribes `clip` (`seconds` long).
    pub fn transcribe(&mut self, clip: &Path, seconds: f64) -> Result<Run> {
        writeln!(self.stdin, "{}", clip.display())?;
        let line = self
            .lines
            .next()
            .context("faster-whisper exited")?
            .context("reading faster-whisper's answer")?;
        let answer: Value = serde_json::from_str(&line)
            .with_context(|| format!("faster-whisper answered {line}"))?;
        Ok(Run {
            rtf: answer["seconds"].as_f64().context("no seconds")? / seconds,
            plugin_rtf: 0.0,
            fallback_windows: answer["fallback_windows"].as_u64().map(|n| n as usize),
            text: answer["text"].as_str().unwrap_or("").to_string(),
        })
    }
}

impl Drop for FasterWhisper {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
