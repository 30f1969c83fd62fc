//! Speech for the audio benchmark: a long clip made of the provisioned test clips, and the
//! faster-whisper reference timing.

use anyhow::{Context, Result, bail};
use std::{path::Path, process::Command};

/// Writes a mono 16 kHz f32 WAV of at least `min_seconds`: the clips in `dir`, in name order,
/// repeated, half a second of silence between them. Returns its length in seconds.
pub fn long_clip(dir: &Path, out: &Path, min_seconds: f64) -> Result<f64> {
    let mut clips: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {} (run cargo xtask models)", dir.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "wav"))
        .collect();
    clips.sort();
    let clips: Vec<Vec<f32>> = clips
        .iter()
        .map(|path| read_wav(path))
        .collect::<Result<_>>()?;
    if clips.is_empty() {
        bail!("no .wav clips in {}", dir.display());
    }
    let mut samples = Vec::new();
    while (samples.len() as f64) < min_seconds * 16_000.0 {
        for clip in &clips {
            samples.extend_from_slice(clip);
            samples.extend(std::iter::repeat_n(0.0, 8_000));
        }
    }
    std::fs::create_dir_all(out.parent().context("an output dir")?)?;
    std::fs::write(out, wav_bytes(&samples))?;
    Ok(samples.len() as f64 / 16_000.0)
}

/// The samples of a mono 16 kHz WAV of 32-bit floats, as the test clips are.
fn read_wav(path: &Path) -> Result<Vec<f32>> {
    let bytes = std::fs::read(path)?;
    let mut at = 12;
    let (mut format, mut data) = (None, None);
    while at + 8 <= bytes.len() {
        let size = u32::from_le_bytes(bytes[at + 4..at + 8].try_into()?) as usize;
        let body = bytes
            .get(at + 8..at + 8 + size)
            .context("a truncated WAV chunk")?;
        match &bytes[at..at + 4] {
            b"fmt " => {
                format = Some((
                    u16::from_le_bytes([body[0], body[1]]),
                    u16::from_le_bytes([body[2], body[3]]),
                ))
            }
            b"data" => data = Some(body),
            _ => {}
        }
        at += 8 + size + size % 2;
    }
    match (format, data) {
        (Some((3, 1)), Some(data)) => Ok(data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect()),
        _ => bail!("{} is not a mono 32-bit float WAV", path.display()),
    }
}

fn wav_bytes(samples: &[f32]) -> Vec<u8> {
    let data_len = (samples.len() * 4) as u32;
    let mut out = Vec::with_capacity(44 + data_len as usize);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&3u16.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&16_000u32.to_le_bytes());
    out.extend_from_slice(&64_000u32.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&32u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    out.extend(samples.iter().flat_map(|s| s.to_le_bytes()));
    out
}

const FASTER_WHISPER: &str = r#"
import json, sys, time
from faster_whisper import WhisperModel
model = WhisperModel(sys.argv[1], device="cpu", cpu_threads=2)
for _ in range(int(sys.argv[3])):
    started = time.time()
    segments, _ = model.transcribe(sys.argv[2], beam_size=1, language="en", condition_on_previous_text=False)
    text = " ".join(s.text for s in segments)
    print(json.dumps({"seconds": time.time() - started, "text": text}))
"#;

/// faster-whisper's median real-time factor on `clip` with the same model file, if installed.
pub fn faster_whisper_rtf(
    model: &Path,
    clip: &Path,
    seconds: f64,
    runs: usize,
) -> Result<Option<f64>> {
    let installed = Command::new("python3")
        .args(["-c", "import faster_whisper"])
        .output();
    if !installed.is_ok_and(|o| o.status.success()) {
        return Ok(None);
    }
    let output = Command::new("python3")
        .args(["-c", FASTER_WHISPER])
        .arg(model)
        .arg(clip)
        .arg(runs.to_string())
        .output()
        .context("running faster-whisper")?;
    if !output.status.success() {
        bail!(
            "faster-whisper failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let mut rtfs: Vec<f64> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| {
            serde_json::from_str::<serde_json::Value>(line).ok()?["seconds"].as_f64()
        })
        .map(|s| s / seconds)
        .collect();
    rtfs.sort_by(|a, b| a.total_cmp(b));
    Ok(rtfs.get(rtfs.len() / 2).copied())
}
