//! Changes a sentence's audio to the asked sample rate and speed in one pass of rubato's sinc
//! resampler: audio made at `rate` and played `speed` times faster is audio at
//! `rate * speed` read at `rate`, so the pace and the pitch move together.

use rubato::{
    Resampler, SincFixedIn, SincInterpolationParameters, SincInterpolationType, WindowFunction,
};

/// Input frames the resampler takes per call.
const CHUNK: usize = 1024;

/// `samples` made at `from` Hz, as heard at `to` Hz when played `speed` times faster.
pub fn resample(samples: &[f32], from: u32, to: u32, speed: f32) -> Result<Vec<f32>, String> {
    let ratio = f64::from(to) / (f64::from(from) * f64::from(speed));
    if (ratio - 1.0).abs() < 1e-9 || samples.is_empty() {
        return Ok(samples.to_vec());
    }
    let parameters = SincInterpolationParameters {
        sinc_len: 128,
        f_cutoff: 0.95,
        interpolation: SincInterpolationType::Linear,
        oversampling_factor: 128,
        window: WindowFunction::BlackmanHarris2,
    };
    let mut resampler =
        SincFixedIn::<f32>::new(ratio, 1.0, parameters, CHUNK, 1).map_err(|e| e.to_string())?;
    let wanted = (samples.len() as f64 * ratio).round() as usize;
    let mut out = Vec::with_capacity(wanted + CHUNK);
    let mut chunks = samples.chunks_exact(CHUNK);
    for chunk in chunks.by_ref() {
        let produced = resampler
            .process(&[chunk], None)
            .map_err(|e| e.to_string())?;
        out.extend_from_slice(&produced[0]);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let produced = resampler
            .process_partial(Some(&[rest]), None)
            .map_err(|e| e.to_string())?;
        out.extend_from_slice(&produced[0]);
    }
    while out.len() < wanted {
        let produced = resampler
            .process_partial::<&[f32]>(None, None)
            .map_err(|e| e.to_string())?;
        if produced[0].is_empty() {
            break;
        }
        out.extend_from_slice(&produced[0]);
    }
    out.truncate(wanted);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(hz: f32, rate: u32, seconds: f32) -> Vec<f32> {
        let n = (rate as f32 * seconds) as usize;
        (0..n)
            .map(|i| (i as f32 * hz * std::f32::consts::TAU / rate as f32).sin() * 0.5)
            .collect()
    }

    /// The tone's frequency, from the number of rising zero crossings.
    fn frequency(samples: &[f32], rate: u32) -> f32 {
        let crossings = samples
            .windows(2)
            .filter(|pair| pair[0] < 0.0 && pair[1] >= 0.0)
            .count();
        crossings as f32 * rate as f32 / samples.len() as f32
    }

    #[test]
    fn the_rate_changes_and_the_tone_stays() {
        let out = resample(&tone(440.0, 44_100, 1.0), 44_100, 24_000, 1.0).unwrap();
        assert_eq!(out.len(), 24_000);
        let expected = tone(440.0, 24_000, 1.0);
        let error = out
            .iter()
            .zip(&expected)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(error < 0.05, "the resampled tone is off by up to {error}");
        assert!((frequency(&out, 24_000) - 440.0).abs() < 5.0);
    }

    #[test]
    fn speed_shortens_the_audio_and_raises_the_pitch() {
        let out = resample(&tone(440.0, 44_100, 1.0), 44_100, 24_000, 2.0).unwrap();
        assert_eq!(out.len(), 12_000);
        assert!((frequency(&out, 24_000) - 880.0).abs() < 10.0);
        let slow = resample(&tone(440.0, 24_000, 0.5), 24_000, 24_000, 0.5).unwrap();
        assert_eq!(slow.len(), 24_000);
    }

    #[test]
    fn the_same_rate_and_speed_keep_the_samples() {
        let samples = tone(100.0, 16_000, 0.1);
        assert_eq!(resample(&samples, 16_000, 16_000, 1.0).unwrap(), samples);
    }
}
