//! Audio input: decoding wav, flac, mp3 and ogg/vorbis with symphonia, down-mixing to mono and
//! resampling to Whisper's 16 kHz.

use crate::error::AudioError;
use rbee_plugin_api::tasks::transcription::param;
use rubato::{FftFixedIn, Resampler};
use std::io::Cursor;
use symphonia::core::{
    audio::SampleBuffer, codecs::DecoderOptions, errors::Error as SymphoniaError,
    formats::FormatOptions, io::MediaSourceStream, meta::MetadataOptions, probe::Hint,
};

/// The sample rate Whisper expects.
pub const SAMPLE_RATE: u32 = 16_000;

/// The sample rates decoded: every real recording's. Outside them the resampler's FFTs grow with
/// the rate's distance from [`SAMPLE_RATE`]: a 200-byte wav claiming 1 Hz took 40 s and 400 MB,
/// one claiming 4294967291 Hz over 4 GB (found by the `audio` fuzz target).
const SAMPLE_RATES: std::ops::RangeInclusive<u32> = 4_000..=384_000;

/// Mono samples at some sample rate.
#[derive(Debug, Clone, PartialEq)]
pub struct Pcm {
    /// Samples in -1..=1, one channel.
    pub samples: Vec<f32>,
    /// Samples per second.
    pub sample_rate: u32,
}

impl Pcm {
    /// The duration in seconds.
    pub fn seconds(&self) -> f64 {
        self.samples.len() as f64 / self.sample_rate as f64
    }
}

/// Decodes a whole audio file (any container and codec symphonia was built with) and down-mixes
/// it to mono. Undecodable or empty audio is an `invalid_params` error on `audio`; so is audio
/// longer than `max_seconds`, found out before all of it is decoded.
pub fn decode(bytes: Vec<u8>, max_seconds: f64) -> Result<Pcm, AudioError> {
    // symphonia 0.5 panics on some malformed files (a wav whose sample rate is 0, found by the
    // `audio` fuzz target): they are refused like any other undecodable file.
    std::panic::catch_unwind(|| decode_unguarded(bytes, max_seconds)).unwrap_or_else(|_| {
        Err(AudioError::invalid_param(
            param::AUDIO,
            "cannot decode the audio (the decoder failed on it)",
        ))
    })
}

/// [`decode`], which symphonia may panic in.
fn decode_unguarded(bytes: Vec<u8>, max_seconds: f64) -> Result<Pcm, AudioError> {
    let bad = |message: String| AudioError::invalid_param(param::AUDIO, message);
    let stream = MediaSourceStream::new(Box::new(Cursor::new(bytes)), Default::default());
    let probed = symphonia::default::get_probe()
        .format(
            &Hint::new(),
            stream,
            &FormatOptions::default(),
            &MetadataOptions::default(),
        )
        .map_err(|e| {
            bad(format!(
                "cannot decode the audio (expected wav, flac, mp3 or ogg): {e}"
            ))
        })?;
    let mut format = probed.format;
    let track = format
        .default_track()
        .ok_or_else(|| bad("the file holds no audio track".into()))?;
    let track_id = track.id;
    let sample_rate = track
        .codec_params
        .sample_rate
        .ok_or_else(|| bad("the audio track has no sample rate".into()))?;
    if !SAMPLE_RATES.contains(&sample_rate) {
        return Err(bad(format!(
            "the sample rate is {sample_rate} Hz; audio from {} to {} Hz is accepted",
            SAMPLE_RATES.start(),
            SAMPLE_RATES.end()
        )));
    }
    let too_long = |frames: u64| frames as f64 / sample_rate as f64 > max_seconds;
    if track.codec_params.n_frames.is_some_and(too_long) {
        return Err(too_long_error(max_seconds));
    }
    let mut decoder = symphonia::default::get_codecs()
        .make(&track.codec_params, &DecoderOptions::default())
        .map_err(|e| bad(format!("unsupported audio codec: {e}")))?;
    let mut samples = Vec::new();
    loop {
        let packet = match format.next_packet() {
            Ok(packet) => packet,
            Err(SymphoniaError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                break;
            }
            Err(SymphoniaError::ResetRequired) => break,
            Err(e) => return Err(bad(format!("cannot read the audio: {e}"))),
        };
        if packet.track_id() != track_id {
            continue;
        }
        let decoded = match decoder.decode(&packet) {
            Ok(decoded) => decoded,
            Err(SymphoniaError::DecodeError(_)) => continue,
            Err(e) => return Err(bad(format!("cannot decode the audio: {e}"))),
        };
        let channels = decoded.spec().channels.count().max(1);
        let mut buffer = SampleBuffer::<f32>::new(decoded.capacity() as u64, *decoded.spec());
        buffer.copy_interleaved_ref(decoded);
        samples.extend(
            buffer
                .samples()
                .chunks(channels)
                .map(|frame| frame.iter().sum::<f32>() / channels as f32),
        );
        if too_long(samples.len() as u64) {
            return Err(too_long_error(max_seconds));
        }
    }
    if samples.is_empty() {
        return Err(bad("the audio holds no samples".into()));
    }
    Ok(Pcm {
        samples,
        sample_rate,
    })
}

fn too_long_error(max_seconds: f64) -> AudioError {
    AudioError::invalid_param(
        param::AUDIO,
        format!("the audio is longer than this worker's limit of {max_seconds} seconds"),
    )
}

/// Resamples to [`SAMPLE_RATE`] with rubato's FFT resampler; 16 kHz input is returned as is.
pub fn to_16k(pcm: Pcm) -> Result<Vec<f32>, AudioError> {
    if pcm.sample_rate == SAMPLE_RATE {
        return Ok(pcm.samples);
    }
    let internal = |e: &dyn std::fmt::Display| AudioError::Resample(e.to_string());
    let mut resampler =
        FftFixedIn::<f32>::new(pcm.sample_rate as usize, SAMPLE_RATE as usize, 1024, 2, 1)
            .map_err(|e| internal(&e))?;
    let expected =
        (pcm.samples.len() as u64 * SAMPLE_RATE as u64).div_ceil(pcm.sample_rate as u64) as usize;
    let delay = resampler.output_delay();
    let mut out = Vec::with_capacity(expected + delay);
    let mut rest = pcm.samples.as_slice();
    while rest.len() >= resampler.input_frames_next() {
        let (chunk, tail) = rest.split_at(resampler.input_frames_next());
        out.extend_from_slice(
            &resampler
                .process(&[chunk], None)
                .map_err(|e| internal(&e))?[0],
        );
        rest = tail;
    }
    out.extend_from_slice(
        &resampler
            .process_partial(Some(&[rest]), None)
            .map_err(|e| internal(&e))?[0],
    );
    while out.len() < expected + delay {
        let flushed = resampler
            .process_partial::<&[f32]>(None, None)
            .map_err(|e| internal(&e))?;
        out.extend_from_slice(&flushed[0]);
    }
    out.drain(..delay);
    out.truncate(expected);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 16-bit PCM wav file of `samples` at `rate`, with `channels` identical channels.
    fn wav(samples: &[f32], rate: u32, channels: u16) -> Vec<u8> {
        let data_len = (samples.len() * 2 * channels as usize) as u32;
        let mut out = Vec::new();
        out.extend_from_slice(b"RIFF");
        out.extend_from_slice(&(36 + data_len).to_le_bytes());
        out.extend_from_slice(b"WAVEfmt ");
        out.extend_from_slice(&16u32.to_le_bytes());
        out.extend_from_slice(&1u16.to_le_bytes());
        out.extend_from_slice(&channels.to_le_bytes());
        out.extend_from_slice(&rate.to_le_bytes());
        out.extend_from_slice(&(rate * 2 * channels as u32).to_le_bytes());
        out.extend_from_slice(&(2 * channels).to_le_bytes());
        out.extend_from_slice(&16u16.to_le_bytes());
        out.extend_from_slice(b"data");
        out.extend_from_slice(&data_len.to_le_bytes());
        for sample in samples {
            let value = (sample.clamp(-1.0, 1.0) * 32767.0) as i16;
            for _ in 0..channels {
                out.extend_from_slice(&value.to_le_bytes());
            }
        }
        out
    }

    fn sine(freq: f32, rate: u32, seconds: f32) -> Vec<f32> {
        let n = (rate as f32 * seconds) as usize;
        (0..n)
            .map(|i| 0.5 * (2.0 * std::f32::consts::PI * freq * i as f32 / rate as f32).sin())
            .collect()
    }

    fn field(error: AudioError) -> String {
        match error {
            AudioError::InvalidParam { field, .. } => field,
            other => panic!("expected an invalid_params error, got {other:?}"),
        }
    }

    #[test]
    fn a_stereo_wav_decodes_to_mono_at_its_rate() {
        let tone = sine(440.0, 22_050, 0.5);
        let pcm = decode(wav(&tone, 22_050, 2), 60.0).unwrap();
        assert_eq!(pcm.sample_rate, 22_050);
        assert_eq!(pcm.samples.len(), tone.len());
        assert!((pcm.samples[100] - tone[100]).abs() < 1e-3);
        assert!((pcm.seconds() - 0.5).abs() < 1e-3);
    }

    #[test]
    fn garbage_empty_and_too_long_audio_are_refused_on_audio() {
        assert_eq!(
            field(decode(b"not audio at all".to_vec(), 60.0).unwrap_err()),
            "audio"
        );
        assert_eq!(
            field(decode(wav(&[], 16_000, 1), 60.0).unwrap_err()),
            "audio"
        );
        let long = wav(&sine(440.0, 8_000, 3.0), 8_000, 1);
        let error = decode(long, 2.0).unwrap_err();
        assert!(error.to_string().contains("longer than"), "{error}");
    }

    #[test]
    fn files_symphonia_panics_on_are_refused_on_audio() {
        let error = decode(wav(&[0.1; 8], 0, 2), 60.0).unwrap_err();
        assert_eq!(field(error), "audio");
    }

    #[test]
    fn sample_rates_that_would_make_resampling_huge_are_refused() {
        for rate in [1, 3_999, 1_000_003] {
            let error = decode(wav(&[0.1; 8], rate, 1), 3600.0).unwrap_err();
            assert!(error.to_string().contains("sample rate"), "{error}");
            assert_eq!(field(error), "audio");
        }
        assert!(decode(wav(&[0.1; 8], 383_987, 1), 3600.0).is_ok());
    }

    #[test]
    fn resampling_keeps_duration_and_pitch() {
        let rate = 44_100;
        let out = to_16k(Pcm {
            samples: sine(1000.0, rate, 1.0),
            sample_rate: rate,
        })
        .unwrap();
        assert_eq!(out.len(), 16_000);
        let expected = sine(1000.0, 16_000, 1.0);
        let worst = out[1000..15_000]
            .iter()
            .zip(&expected[1000..15_000])
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(worst < 0.02, "largest deviation {worst}");
    }

    #[test]
    fn sixteen_khz_is_left_alone() {
        let samples = sine(300.0, 16_000, 0.1);
        let pcm = Pcm {
            samples: samples.clone(),
            sample_rate: 16_000,
        };
        assert_eq!(to_16k(pcm).unwrap(), samples);
    }
}
