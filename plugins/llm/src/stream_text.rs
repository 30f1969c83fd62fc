//! Streaming text out of generated tokens: UTF-8-safe detokenization plus stop sequences.

use crate::error::LlmError;
use tokenizers::{
    DecodeStream, DecoderWrapper, ModelWrapper, NormalizerWrapper, PostProcessorWrapper,
    PreTokenizerWrapper, Tokenizer,
};

type Detokenizer<'t> = DecodeStream<
    't,
    ModelWrapper,
    NormalizerWrapper,
    PreTokenizerWrapper,
    PostProcessorWrapper,
    DecoderWrapper,
>;

/// What one token added to the output.
#[derive(Debug, Default, PartialEq)]
pub struct Step {
    /// Text that is final and may be sent now (often empty).
    pub text: String,
    /// Whether a stop sequence was reached; `text` holds what preceded it.
    pub stopped: bool,
}

/// Turns tokens into text pieces that never split a UTF-8 character (the tokenizer's
/// [`DecodeStream`] holds back incomplete byte sequences) and holds back text while it could
/// still be the start of a stop sequence.
pub struct TextStream<'t> {
    detokenizer: Detokenizer<'t>,
    stops: StopFilter,
}

impl<'t> TextStream<'t> {
    /// A stream over `tokenizer`'s output, ending at any of `stops`.
    pub fn new(tokenizer: &'t Tokenizer, stops: Vec<String>) -> Self {
        Self {
            detokenizer: tokenizer.decode_stream(true),
            stops: StopFilter::new(stops),
        }
    }

    /// Adds a generated token.
    pub fn push(&mut self, token: u32) -> Result<Step, LlmError> {
        let piece = self
            .detokenizer
            .step(token)
            .map_err(|e| LlmError::Tokenizer(e.to_string()))?;
        Ok(self.stops.push(piece.as_deref().unwrap_or("")))
    }

    /// The text still held back, released when generation ends without a stop sequence.
    pub fn finish(&mut self) -> String {
        std::mem::take(&mut self.stops.held)
    }
}

/// Holds back text that could be the beginning of a stop sequence.
#[derive(Debug)]
pub struct StopFilter {
    stops: Vec<String>,
    held: String,
}

impl StopFilter {
    /// A filter for `stops` (none: everything passes at once).
    pub fn new(stops: Vec<String>) -> Self {
        Self {
            stops,
            held: String::new(),
        }
    }

    /// Adds text; returns what can be released and whether a stop sequence was found.
    pub fn push(&mut self, text: &str) -> Step {
        self.held.push_str(text);
        let first_stop = self
            .stops
            .iter()
            .filter_map(|stop| self.held.find(stop.as_str()))
            .min();
        if let Some(at) = first_stop {
            self.held.truncate(at);
            return Step {
                text: std::mem::take(&mut self.held),
                stopped: true,
            };
        }
        let keep_from = self
            .held
            .char_indices()
            .map(|(at, _)| at)
            .find(|&at| {
                self.stops
                    .iter()
                    .any(|stop| stop.starts_with(&self.held[at..]))
            })
            .unwrap_or(self.held.len());
        let rest = self.held.split_off(keep_from);
        Step {
            text: std::mem::replace(&mut self.held, rest),
            stopped: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(stops: &[&str], pieces: &[&str]) -> (Vec<String>, bool, String) {
        let mut filter = StopFilter::new(stops.iter().map(|s| s.to_string()).collect());
        let mut out = Vec::new();
        for piece in pieces {
            let step = filter.push(piece);
            out.push(step.text);
            if step.stopped {
                return (out, true, filter.held);
            }
        }
        (out, false, filter.held)
    }

    #[test]
    fn without_stops_text_passes_at_once() {
        assert_eq!(run(&[], &["a", "b"]).0, ["a", "b"]);
    }

    #[test]
    fn a_possible_stop_prefix_is_held_back_then_released() {
        let (out, stopped, held) = run(&["END"], &["x E", "N", "d!"]);
        assert_eq!(out, ["x ", "", "ENd!"]);
        assert!(!stopped);
        assert!(held.is_empty());
    }

    #[test]
    fn a_stop_split_over_pieces_ends_without_its_text() {
        let (out, stopped, _) = run(&["END"], &["ab E", "N", "Dtail"]);
        assert_eq!(out.concat(), "ab ");
        assert!(stopped);
    }

    #[test]
    fn the_earliest_of_several_stops_wins() {
        let (out, stopped, _) = run(&["yy", "x"], &["ab yy x"]);
        assert_eq!(out, ["ab "]);
        assert!(stopped);
    }

    #[test]
    fn held_text_at_the_end_is_returned_by_finish() {
        let (out, stopped, held) = run(&["STOP"], &["go ST"]);
        assert_eq!(
            (out.concat(), stopped, held.as_str()),
            ("go ".to_string(), false, "ST")
        );
    }

    #[test]
    fn multibyte_text_is_cut_on_character_boundaries() {
        let (out, stopped, _) = run(&["é!"], &["café", "!"]);
        assert_eq!(out.concat(), "caf");
        assert!(stopped);
    }
}
