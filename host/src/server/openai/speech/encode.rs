//! The audio formats `/v1/audio/speech` answers in, from the 16-bit little-endian mono PCM
//! chunks the `text-to-speech` task sends: `pcm` as is, `wav` (a RIFF header before the PCM)
//! and `flac` (flacenc, lossless).

/// A response format the route can encode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Raw 16-bit little-endian mono samples.
    Pcm,
    /// RIFF WAVE, 16-bit PCM.
    Wav,
    /// FLAC, 16-bit.
    Flac,
}

/// The formats, by the name OpenAI gives them.
pub const FORMATS: &[(&str, Format)] = &[
    ("wav", Format::Wav),
    ("pcm", Format::Pcm),
    ("flac", Format::Flac),
];

/// OpenAI's formats this route does not encode, and why.
pub const REFUSED: &str = "mp3, opus and aac need an encoder this server does not carry \
                           (there is no well-kept pure-Rust one); ask for wav, pcm or flac";

impl Format {
    /// The format OpenAI names `name`, if the route encodes it.
    pub fn named(name: &str) -> Option<Self> {
        FORMATS
            .iter()
            .find(|(known, _)| *known == name)
            .map(|(_, format)| *format)
    }

    /// The response's media type.
    pub fn media_type(self) -> &'static str {
        match self {
            Self::Pcm => "audio/pcm",
            Self::Wav => "audio/wav",
            Self::Flac => "audio/flac",
        }
    }
}

/// A WAV header for `data_bytes` bytes of 16-bit mono PCM at `rate` Hz; `None` for a stream
/// of unknown length, whose sizes are then the largest a header can hold (as streaming
/// encoders write them).
pub fn wav_header(rate: u32, data_bytes: Option<u32>) -> Vec<u8> {
    let data = data_bytes.unwrap_or(u32::MAX - 36);
    let mut header = Vec::with_capacity(44);
    header.extend_from_slice(b"RIFF");
    header.extend_from_slice(&(36 + data).to_le_bytes());
    header.extend_from_slice(b"WAVEfmt ");
    header.extend_from_slice(&16u32.to_le_bytes());
    header.extend_from_slice(&1u16.to_le_bytes());
    header.extend_from_slice(&1u16.to_le_bytes());
    header.extend_from_slice(&rate.to_le_bytes());
    header.extend_from_slice(&(rate * 2).to_le_bytes());
    header.extend_from_slice(&2u16.to_le_bytes());
    header.extend_from_slice(&16u16.to_le_bytes());
    header.extend_from_slice(b"data");
    header.extend_from_slice(&data.to_le_bytes());
    header
}

/// The whole audio `pcm` (16-bit little-endian mono at `rate` Hz) in `format`.
pub fn whole(format: Format, pcm: Vec<u8>, rate: u32) -> Result<Vec<u8>, String> {
    match format {
        Format::Pcm => Ok(pcm),
        Format::Wav => {
            let size = u32::try_from(pcm.len()).map_err(|_| "the audio is over 4 GB")?;
            let mut wav = wav_header(rate, Some(size));
            wav.extend_from_slice(&pcm);
            Ok(wav)
        }
        Format::Flac => flac(&pcm, rate),
    }
}

/// `pcm` as a FLAC file.
fn flac(pcm: &[u8], rate: u32) -> Result<Vec<u8>, String> {
    use flacenc::{component::BitRepr, error::Verify};
    let samples: Vec<i32> = pcm
        .chunks_exact(2)
        .map(|pair| i32::from(i16::from_le_bytes([pair[0], pair[1]])))
        .collect();
    let config = flacenc::config::Encoder::default()
        .into_verified()
        .map_err(|(_, e)| e.to_string())?;
    let source = flacenc::source::MemSource::from_samples(&samples, 1, 16, rate as usize);
    let stream = flacenc::encode_with_fixed_block_size(&config, source, config.block_size)
        .map_err(|e| e.to_string())?;
    let mut sink = flacenc::bitsink::ByteSink::new();
    stream.write(&mut sink).map_err(|e| e.to_string())?;
    Ok(sink.as_slice().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pcm(samples: &[i16]) -> Vec<u8> {
        samples.iter().flat_map(|s| s.to_le_bytes()).collect()
    }

    #[test]
    fn a_wav_file_has_its_sizes_and_a_stream_the_largest() {
        let wav = whole(Format::Wav, pcm(&[1, -1, 300]), 24_000).unwrap();
        assert_eq!(wav.len(), 44 + 6);
        assert_eq!(&wav[..4], b"RIFF");
        assert_eq!(u32::from_le_bytes(wav[4..8].try_into().unwrap()), 36 + 6);
        assert_eq!(u32::from_le_bytes(wav[24..28].try_into().unwrap()), 24_000);
        assert_eq!(u32::from_le_bytes(wav[40..44].try_into().unwrap()), 6);
        assert_eq!(&wav[44..], pcm(&[1, -1, 300]));
        let open = wav_header(24_000, None);
        assert_eq!(u32::from_le_bytes(open[4..8].try_into().unwrap()), u32::MAX);
    }

    #[test]
    fn a_flac_file_starts_with_its_marker_and_is_smaller_than_silence_in_pcm() {
        let silence = pcm(&[0; 24_000]);
        let flac = whole(Format::Flac, silence.clone(), 24_000).unwrap();
        assert_eq!(&flac[..4], b"fLaC");
        assert!(flac.len() < silence.len() / 10, "{} bytes", flac.len());
    }

    #[test]
    fn formats_are_known_by_openai_names() {
        assert_eq!(Format::named("flac"), Some(Format::Flac));
        assert_eq!(Format::named("mp3"), None);
        assert_eq!(Format::Pcm.media_type(), "audio/pcm");
    }
}
