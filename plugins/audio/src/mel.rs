//! Log-mel features: the Slaney-style mel filter bank Whisper was trained with (librosa's
//! `filters.mel(sr=16000, n_fft=400)`, computed here because candle ships none) and the
//! spectrogram over it. The spectrogram is candle's `pcm_to_mel` (the same framing, padding and
//! scaling) with a real FFT in place of its recursive one, which falls back to an O(n²) DFT on
//! 400 = 16 x 25 points and took 1.4 s of a 51 s clip's 11 s.

use candle_transformers::models::whisper::{self as whisper, Config};
use realfft::RealFftPlanner;

/// FFT bins of one frame: `n_fft / 2 + 1`.
pub const FFT_BINS: usize = whisper::N_FFT / 2 + 1;

/// The mel filter bank, `n_mels` rows of [`FFT_BINS`] weights (row-major), with Slaney's mel
/// scale and area normalisation, as librosa and Whisper use them.
pub fn filter_bank(n_mels: usize) -> Vec<f32> {
    let sample_rate = whisper::SAMPLE_RATE as f64;
    let fft_freqs: Vec<f64> = (0..FFT_BINS)
        .map(|i| i as f64 * sample_rate / whisper::N_FFT as f64)
        .collect();
    let (low, high) = (hz_to_mel(0.0), hz_to_mel(sample_rate / 2.0));
    let mel_freqs: Vec<f64> = (0..n_mels + 2)
        .map(|i| mel_to_hz(low + (high - low) * i as f64 / (n_mels + 1) as f64))
        .collect();
    let mut weights = vec![0f32; n_mels * FFT_BINS];
    for m in 0..n_mels {
        let (left, centre, right) = (mel_freqs[m], mel_freqs[m + 1], mel_freqs[m + 2]);
        let norm = 2.0 / (right - left);
        for (bin, &freq) in fft_freqs.iter().enumerate() {
            let rising = (freq - left) / (centre - left);
            let falling = (right - freq) / (right - centre);
            weights[m * FFT_BINS + bin] = (rising.min(falling).max(0.0) * norm) as f32;
        }
    }
    weights
}

/// Log-mel features of 16 kHz mono samples, `num_mel_bins` rows of frames (row-major): frames
/// every [`whisper::HOP_LENGTH`] samples (not centred), their number rounded up to a multiple of
/// half a window and half a window more of silence added, as candle's `pcm_to_mel` does. Values
/// are `log10` of the mel power, floored at 8 below the loudest, then scaled to `x / 4 + 1`.
pub fn log_mel(config: &Config, samples: &[f32], filters: &[f32]) -> Vec<f32> {
    let (size, hop, n_mels) = (whisper::N_FFT, whisper::HOP_LENGTH, config.num_mel_bins);
    let half_window = whisper::N_FRAMES / 2;
    let frames = (samples.len() / hop).div_ceil(half_window) * half_window + half_window;
    let hann: Vec<f32> = (0..size)
        .map(|i| 0.5 * (1.0 - (2.0 * std::f32::consts::PI * i as f32 / size as f32).cos()))
        .collect();
    let fft = RealFftPlanner::<f32>::new().plan_fft_forward(size);
    let (mut input, mut spectrum) = (fft.make_input_vec(), fft.make_output_vec());
    let mut scratch = fft.make_scratch_vec();
    let mut power = vec![0f32; FFT_BINS];
    let mut mel = vec![0f32; n_mels * frames];
    // Each triangular filter weighs a few bins; the products skip the zeros around them.
    let bands: Vec<_> = filters
        .chunks_exact(FFT_BINS)
        .take(n_mels)
        .map(|filter| {
            let first = filter.iter().position(|&w| w != 0.0).unwrap_or(0);
            let end = filter
                .iter()
                .rposition(|&w| w != 0.0)
                .map_or(first, |last| last + 1);
            first..end
        })
        .collect();
    for frame in 0..frames {
        let start = (frame * hop).min(samples.len());
        let chunk = &samples[start..(start + size).min(samples.len())];
        for (i, slot) in input.iter_mut().enumerate() {
            *slot = chunk.get(i).map_or(0.0, |s| s * hann[i]);
        }
        fft.process_with_scratch(&mut input, &mut spectrum, &mut scratch)
            .expect("buffers made by the plan");
        for (bin, (p, c)) in power.iter_mut().zip(&spectrum).enumerate() {
            let magnitude = c.re * c.re + c.im * c.im;
            // The bins between DC and Nyquist stand for their mirror images too.
            *p = if bin == 0 || bin == size / 2 {
                magnitude
            } else {
                magnitude + magnitude
            };
        }
        for (row, (filter, bins)) in filters.chunks_exact(FFT_BINS).zip(&bands).enumerate() {
            let sum: f32 = filter[bins.clone()]
                .iter()
                .zip(&power[bins.clone()])
                .map(|(f, p)| f * p)
                .sum();
            mel[row * frames + frame] = sum.max(1e-10).log10();
        }
    }
    let floor = mel.iter().copied().fold(f32::NEG_INFINITY, f32::max) - 8.0;
    for value in &mut mel {
        *value = value.max(floor) / 4.0 + 1.0;
    }
    mel
}

/// Slaney's mel scale: linear below 1 kHz, logarithmic above.
fn hz_to_mel(hz: f64) -> f64 {
    if hz < MIN_LOG_HZ {
        hz / F_SP
    } else {
        MIN_LOG_MEL + (hz / MIN_LOG_HZ).ln() / log_step()
    }
}

fn mel_to_hz(mel: f64) -> f64 {
    if mel < MIN_LOG_MEL {
        mel * F_SP
    } else {
        MIN_LOG_HZ * ((mel - MIN_LOG_MEL) * log_step()).exp()
    }
}

const F_SP: f64 = 200.0 / 3.0;
const MIN_LOG_HZ: f64 = 1000.0;
const MIN_LOG_MEL: f64 = MIN_LOG_HZ / F_SP;

fn log_step() -> f64 {
    6.4f64.ln() / 27.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mel_scale_round_trips_and_is_linear_below_1khz() {
        for hz in [0.0, 200.0, 999.0, 1000.0, 4000.0, 8000.0] {
            assert!((mel_to_hz(hz_to_mel(hz)) - hz).abs() < 1e-6, "{hz}");
        }
        assert!((hz_to_mel(1000.0) - 15.0).abs() < 1e-9);
        assert!((hz_to_mel(500.0) - 7.5).abs() < 1e-9);
    }

    #[test]
    fn filters_are_triangles_of_unit_area_in_rising_order() {
        for n_mels in [80, 128] {
            let bank = filter_bank(n_mels);
            assert_eq!(bank.len(), n_mels * FFT_BINS);
            assert!(bank.iter().all(|w| *w >= 0.0));
            let bin_hz = whisper::SAMPLE_RATE as f32 / whisper::N_FFT as f32;
            let mut last_peak = 0;
            for row in bank.chunks(FFT_BINS) {
                let peak = (0..FFT_BINS)
                    .max_by(|&a, &b| row[a].total_cmp(&row[b]))
                    .unwrap();
                assert!(peak >= last_peak);
                last_peak = peak;
                let nonzero: Vec<usize> = (0..FFT_BINS).filter(|&i| row[i] > 0.0).collect();
                let (first, last) = (nonzero[0], *nonzero.last().unwrap());
                assert!(nonzero.len() == last - first + 1, "one contiguous triangle");
                if last - first >= 6 {
                    let area: f32 = row.iter().sum::<f32>() * bin_hz;
                    assert!((area - 1.0).abs() < 0.05, "area {area}");
                }
            }
            assert!(last_peak > FFT_BINS * 9 / 10);
        }
    }

    #[test]
    fn the_first_filters_have_the_height_worked_out_by_hand() {
        // 80 bins up to 8 kHz (45.245 Slaney mels): centres 37.24 Hz apart, so filter 0 spans
        // 0..74.48 Hz with height 2 / 74.48, and is 0.926 of that at bin 1 (40 Hz).
        let bank = filter_bank(80);
        assert!((bank[1] - 0.024_862_59).abs() < 1e-6, "{}", bank[1]);
        assert_eq!(bank[0], 0.0);
    }

    #[test]
    fn a_tone_lights_up_the_filter_around_its_frequency() {
        let config = tiny_config();
        let samples: Vec<f32> = (0..16_000)
            .map(|i| (2.0 * std::f32::consts::PI * 1000.0 * i as f32 / 16_000.0).sin())
            .collect();
        let bank = filter_bank(80);
        let mel = log_mel(&config, &samples, &bank);
        let frames = mel.len() / 80;
        assert_eq!(frames % 1500, 0);
        let frame = 50;
        let loudest = (0..80)
            .max_by(|&a, &b| mel[a * frames + frame].total_cmp(&mel[b * frames + frame]))
            .unwrap();
        let peaks: Vec<usize> = bank
            .chunks(FFT_BINS)
            .map(|row| {
                (0..FFT_BINS)
                    .max_by(|&a, &b| row[a].total_cmp(&row[b]))
                    .unwrap()
            })
            .collect();
        let bin_1k = 1000 * whisper::N_FFT / whisper::SAMPLE_RATE;
        assert!(
            peaks[loudest].abs_diff(bin_1k) <= 1,
            "filter {loudest} peaks at bin {}",
            peaks[loudest]
        );
    }

    #[test]
    fn the_spectrogram_matches_candle_s() {
        let config = tiny_config();
        let samples: Vec<f32> = (0..40_000)
            .map(|i| {
                let t = i as f32 / 16_000.0;
                (2.0 * std::f32::consts::PI * 440.0 * t).sin() * 0.5
                    + (i as f32 * 12.9898).sin().fract() * 0.1
            })
            .collect();
        let bank = filter_bank(80);
        let ours = log_mel(&config, &samples, &bank);
        let candle = whisper::audio::pcm_to_mel(&config, &samples, &bank);
        assert_eq!(ours.len(), candle.len());
        let worst = ours
            .iter()
            .zip(&candle)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        // candle's f32 DFT rounds more than a real FFT does, in the quietest bins above all.
        assert!(worst < 1e-3, "largest difference {worst}");
    }

    fn tiny_config() -> Config {
        serde_json::from_value(serde_json::json!({
            "num_mel_bins": 80, "max_source_positions": 1500, "d_model": 384,
            "encoder_attention_heads": 6, "encoder_layers": 4, "vocab_size": 51864,
            "max_target_positions": 448, "decoder_attention_heads": 6, "decoder_layers": 4
        }))
        .unwrap()
    }
}
