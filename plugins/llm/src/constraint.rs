//! Constrained decoding with llguidance: a grammar (JSON schema, regex or Lark) compiled against
//! the model's vocabulary, and a per-job matcher that masks the logits before each draw.

use crate::{error::LlmError, tokenizer::TextTokenizer};
use llguidance::{
    JsonCompileOptions, Matcher, ParserFactory, TokenParser,
    api::TopLevelGrammar,
    toktrie::{TokEnv, TokRxInfo, TokTrie, TokenId, TokenizerEnv},
};
use serde_json::Value;
use std::sync::Arc;

/// What the output must follow.
#[derive(Debug, Clone, PartialEq)]
pub enum GrammarSpec {
    /// A JSON Schema.
    JsonSchema(Value),
    /// Any JSON object.
    JsonObject,
    /// A regular expression (Rust syntax) the whole output matches.
    Regex(String),
    /// A grammar in llguidance's Lark syntax.
    Lark(String),
}

/// A grammar compiled against the model's vocabulary, ready to start a [`Constraint`].
pub struct CompiledGrammar {
    parser: TokenParser,
}

/// The model's vocabulary as llguidance sees it, and the factory compiling grammars over it;
/// built once per model.
pub struct Grammars {
    factory: ParserFactory,
}

/// The model's tokenizer for llguidance: its token trie, and our tokenizer for the text the
/// trie cannot split greedily.
struct Vocabulary {
    trie: TokTrie,
    tokenizer: tokenizers::Tokenizer,
}

impl TokenizerEnv for Vocabulary {
    fn tok_trie(&self) -> &TokTrie {
        &self.trie
    }

    fn tokenize_bytes(&self, bytes: &[u8]) -> Vec<TokenId> {
        self.trie.tokenize_with_greedy_fallback(bytes, |text| {
            self.tokenizer
                .encode(text, false)
                .map(|encoding| encoding.get_ids().to_vec())
                .unwrap_or_default()
        })
    }
}

impl Grammars {
    /// Builds the vocabulary (`token_bytes`, from [`TextTokenizer::token_bytes`]) and the
    /// factory for `tokenizer`. Fails for tokenizers whose bytes llguidance cannot recover (only
    /// byte-level and byte-fallback BPE are supported).
    pub fn new(tokenizer: &TextTokenizer, token_bytes: &[Vec<u8>]) -> Result<Self, String> {
        let end_of_generation = tokenizer.end_of_generation();
        let eos = *end_of_generation
            .first()
            .ok_or("the model has no end-of-sequence token")?;
        let info = TokRxInfo::new(token_bytes.len() as u32, eos);
        let trie = TokTrie::from(&info, token_bytes).with_eos_tokens(end_of_generation);
        let env: TokEnv = Arc::new(Vocabulary {
            trie,
            tokenizer: tokenizer.inner().clone(),
        });
        let mut factory = ParserFactory::new_simple(&env).map_err(|e| e.to_string())?;
        factory.set_stderr_log_level(0);
        factory.limits_mut().verbose_errors = false;
        Ok(Self { factory })
    }

    /// Compiles `spec`; an error names `field`.
    pub fn compile(&self, spec: &GrammarSpec, field: &str) -> Result<CompiledGrammar, LlmError> {
        let grammar = match spec {
            GrammarSpec::JsonSchema(schema) => strict_json(schema.clone()),
            GrammarSpec::JsonObject => strict_json(serde_json::json!({"type": "object"})),
            GrammarSpec::Regex(pattern) => TopLevelGrammar::from_regex(pattern),
            GrammarSpec::Lark(source) => TopLevelGrammar::from_lark(source.clone()),
        };
        let parser = self
            .factory
            .create_parser(grammar)
            .map_err(|e| LlmError::invalid_param(field, one_line(&e.to_string())))?;
        Ok(CompiledGrammar { parser })
    }
}

/// A schema whose JSON has no free whitespace: left flexible, sampling can loop on blanks.
fn strict_json(mut schema: Value) -> TopLevelGrammar {
    JsonCompileOptions {
        whitespace_flexible: false,
        ..Default::default()
    }
    .apply_to(&mut schema);
    TopLevelGrammar::from_json_schema(schema)
}

/// An error message on one line (regex errors draw a caret diagram over several).
fn one_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// One job's progress through its grammar.
pub struct Constraint {
    matcher: Matcher,
}

impl Constraint {
    /// Starts matching `grammar` from the beginning of the output.
    pub fn new(grammar: CompiledGrammar) -> Self {
        Self {
            matcher: Matcher::new(Ok(grammar.parser)),
        }
    }

    /// Whether the grammar is complete and admits nothing more.
    pub fn is_finished(&self) -> bool {
        self.matcher.is_stopped()
    }

    /// Sets every logit the grammar forbids next to minus infinity (logits past the
    /// vocabulary included). End-of-generation tokens stay allowed only once the output is
    /// complete.
    pub fn mask(&mut self, logits: &mut [f32]) -> Result<(), LlmError> {
        let allowed = self.matcher.compute_mask().map_err(grammar_failure)?;
        if allowed.num_set() == 0 {
            return Err(LlmError::Inference(
                "the grammar allows no token here".into(),
            ));
        }
        let known = allowed.len().min(logits.len());
        allowed.iter_unset_entries(|id| {
            if let Some(logit) = logits.get_mut(id) {
                *logit = f32::NEG_INFINITY;
            }
        });
        logits[known..].fill(f32::NEG_INFINITY);
        Ok(())
    }

    /// Advances the grammar over a sampled token.
    pub fn consume(&mut self, token: u32) -> Result<(), LlmError> {
        self.matcher.consume_token(token).map_err(grammar_failure)
    }
}

fn grammar_failure(error: impl std::fmt::Display) -> LlmError {
    LlmError::Inference(format!(
        "constrained decoding: {}",
        one_line(&error.to_string())
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn grammars() -> &'static Grammars {
        crate::test_support::worker().grammars()
    }

    fn field_of(error: LlmError) -> (String, String) {
        match error {
            LlmError::InvalidParam { field, message } => (field, message),
            other => panic!("expected invalid_params, got {other:?}"),
        }
    }

    #[test]
    fn bad_grammars_are_errors_naming_the_field() {
        let cases = [
            (GrammarSpec::JsonSchema(json!({"type": "nope"})), "nope"),
            (
                GrammarSpec::JsonSchema(json!({"type": "integer", "minimum": 5, "maximum": 1})),
                "minimum",
            ),
            (GrammarSpec::Regex("(ab".into()), "unclosed"),
            (GrammarSpec::Lark("start: foo".into()), "foo"),
        ];
        for (spec, words) in cases {
            let Err(error) = grammars().compile(&spec, "response_format") else {
                panic!("{spec:?} compiled");
            };
            let (field, message) = field_of(error);
            assert_eq!(field, "response_format");
            assert!(message.contains(words), "{message}");
            assert!(!message.contains('\n'), "{message}");
        }
    }

    #[test]
    fn the_mask_forbids_what_the_grammar_does_not_allow() {
        let tokenizer = crate::test_support::worker().tokenizer();
        let grammar = grammars()
            .compile(&GrammarSpec::Regex("[0-9]+".into()), "response_format")
            .unwrap();
        let mut constraint = Constraint::new(grammar);
        let vocab = tokenizer.inner().get_vocab_size(true);
        let mut logits = vec![0.0; vocab + 7];
        let letter = tokenizer.encode("a").unwrap()[0];
        let digit = *tokenizer.encode("7").unwrap().last().unwrap();
        logits[letter as usize] = 100.0;
        constraint.mask(&mut logits).unwrap();
        assert_eq!(logits[letter as usize], f32::NEG_INFINITY);
        assert_eq!(logits[digit as usize], 0.0);
        assert!(logits[vocab..].iter().all(|l| *l == f32::NEG_INFINITY));
        let eos = tokenizer.end_of_generation()[0] as usize;
        assert_eq!(logits[eos], f32::NEG_INFINITY, "nothing matched yet");
        constraint.consume(digit).unwrap();
        let mut logits = vec![0.0; vocab];
        constraint.mask(&mut logits).unwrap();
        assert_eq!(logits[eos], 0.0, "a digit completes [0-9]+");
    }
}
