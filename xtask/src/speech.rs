//! Speech for the audio benchmark: a long clip made of the provisioned test clips (the same
//! sentences over and over, which Whisper's compression-ratio check rejects), and a clip of
//! clean, non-repeating speech synthesised by espeak-ng.

use anyhow::{Context, Result, bail};
use std::{path::Path, process::Command};

/// The clean clip's text: plain sentences, none repeated, written for this benchmark.
pub const CLEAN_TEXT: &str = "The old harbour town wakes slowly in winter. Before sunrise, a \
baker on the corner lights his ovens, and the smell of fresh bread drifts down to the water. \
Fishing boats return with their nets folded, and the gulls follow them in wide circles. By eight \
o'clock the market square is full of people buying apples, cheese, and warm coffee. Children \
walk to school along the sea wall, counting the ships that wait outside the bay. In the \
afternoon the library opens its doors, and retired sailors read newspapers beside the large \
windows. Some of them remember storms that lasted for days and winters when the river froze. \
When evening comes, the lighthouse begins to turn, and its beam sweeps across the dark hills. \
Families gather for dinner, the streets grow quiet, and only the sound of the waves remains \
until morning.";

/// Writes [`CLEAN_TEXT`] spoken by espeak-ng (US English, 160 words a minute: about 51 s, a
/// 22.05 kHz 16-bit WAV) to `out`; returns its length in seconds.
pub fn clean_clip(out: &Path) -> Result<f64> {
    std::fs::create_dir_all(out.parent().context("an output dir")?)?;
    let status = Command::new("espeak-ng")
        .args(["-v", "en-us", "-s", "160", "-w"])
        .arg(out)
        .arg(CLEAN_TEXT)
        .status();
    match status {
        Ok(status) if status.success() => {}
        Ok(status) => bail!("espeak-ng failed ({status})"),
        Err(_) => bail!(
            "the audio benchmark's clean clip is synthesised by espeak-ng: \
             install it (apt-get install -y espeak-ng)"
        ),
    }
    let bytes = std::fs::read(out)?;
    let (rate, data) = match (bytes.get(24..28), bytes.get(40..44)) {
        (Some(rate), Some(data)) => (
            u32::from_le_bytes(rate.try_into()?),
            u32::from_le_bytes(data.try_into()?),
        ),
        _ => bail!("espeak-ng wrote no WAV header to {}", out.display()),
    };
    Ok(data as f64 / 2.0 / rate as f64)
}

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
