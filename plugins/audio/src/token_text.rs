//! The text each token of a segment adds, for jobs that ask for a text event per token.

use crate::error::AudioError;
use tokenizers::Tokenizer;

/// The replacement character a byte-level decoder writes for an incomplete UTF-8 sequence.
const INCOMPLETE: char = '\u{FFFD}';

/// Splits the text of `tokens` into one piece per token: what decoding one more token adds.
/// A token that ends inside a multi-byte character adds nothing; the character comes with the
/// token that completes it. The pieces join to the text of all the tokens.
pub fn token_pieces(tokenizer: &Tokenizer, tokens: &[u32]) -> Result<Vec<String>, AudioError> {
    let decode = |ids: &[u32]| {
        tokenizer
            .decode(ids, true)
            .map_err(|e| AudioError::Tokenizer(e.to_string()))
    };
    let mut pieces = Vec::with_capacity(tokens.len());
    let mut emitted = String::new();
    for end in 1..=tokens.len() {
        let text = decode(&tokens[..end])?;
        let complete = !text.ends_with(INCOMPLETE) || end == tokens.len();
        match text.strip_prefix(emitted.as_str()) {
            Some(added) if complete => {
                pieces.push(added.to_string());
                emitted = text;
            }
            _ => pieces.push(String::new()),
        }
    }
    Ok(pieces)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{TEST_MODEL_DIR, provisioned};

    fn tokenizer() -> Tokenizer {
        Tokenizer::from_file(provisioned(TEST_MODEL_DIR).join("tokenizer.json")).unwrap()
    }

    #[test]
    fn pieces_join_to_the_whole_text_even_through_multi_byte_characters() {
        let tokenizer = tokenizer();
        for text in [
            " The quick brown fox.",
            " Grüße aus Köln, 東京 and naïve café",
        ] {
            let ids = tokenizer.encode(text, false).unwrap().get_ids().to_vec();
            let pieces = token_pieces(&tokenizer, &ids).unwrap();
            assert_eq!(pieces.len(), ids.len());
            assert_eq!(pieces.concat(), tokenizer.decode(&ids, true).unwrap());
            assert!(pieces.iter().all(|p| !p.contains(INCOMPLETE)), "{pieces:?}");
        }
    }
}
