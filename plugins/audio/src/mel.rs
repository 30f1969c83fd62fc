//! Log-mel features: the Slaney-style mel filter bank Whisper was trained with (librosa's
//! `filters.mel(sr=16000, n_fft=400)`, computed here because candle ships none) and candle's
//! spectrogram over it.

use candle_transformers::models::whisper::{self as whisper, Config, audio::pcm_to_mel};

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

/// Log-mel features of 16 kHz mono samples, `num_mel_bins` rows of frames (row-major), padded
/// by candle with at least 15 s of silence.
pub fn log_mel(config: &Config, samples: &[f32], filters: &[f32]) -> Vec<f32> {
    pcm_to_mel(config, samples, filters)
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

    fn tiny_config() -> Config {
        serde_json::from_value(serde_json::json!({
            "num_mel_bins": 80, "max_source_positions": 1500, "d_model": 384,
            "encoder_attention_heads": 6, "encoder_layers": 4, "vocab_size": 51864,
            "max_target_positions": 448, "decoder_attention_heads": 6, "decoder_layers": 4
        }))
        .unwrap()
    }
}
