//! Log probabilities as OpenAI shapes them, from the entries the plugin reports per token
//! (`{"token", "logprob", "bytes", "top_logprobs": [{"token", "logprob", "bytes"}]}`): chat's
//! `{"content", "refusal"}` and text completions' parallel lists.

use serde_json::{Map, Value, json};

/// Chat's `logprobs` of a choice or a chunk: the entries are already in OpenAI's shape.
pub fn chat(entries: &[Value]) -> Value {
    json!({"content": entries, "refusal": null})
}

/// Text completions' `logprobs` of `entries`: their tokens, log probabilities, alternatives
/// (`{token: logprob}`) and character offsets into the completion, the first at `offset`,
/// which is moved past them (so that a stream's chunks continue where the last one ended).
pub fn text(entries: &[Value], offset: &mut usize) -> Value {
    let mut tokens = Vec::new();
    let mut token_logprobs = Vec::new();
    let mut top_logprobs = Vec::new();
    let mut text_offset = Vec::new();
    for entry in entries {
        let token = entry["token"].as_str().unwrap_or_default();
        tokens.push(Value::from(token));
        token_logprobs.push(entry["logprob"].clone());
        top_logprobs.push(alternatives(&entry["top_logprobs"]));
        text_offset.push(Value::from(*offset));
        *offset += token.chars().count();
    }
    json!({
        "tokens": tokens,
        "token_logprobs": token_logprobs,
        "top_logprobs": top_logprobs,
        "text_offset": text_offset,
    })
}

/// A token's alternatives as text completions list them: `{token: logprob}`.
fn alternatives(top: &Value) -> Value {
    let pairs = top
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|alternative| {
            let token = alternative["token"].as_str()?;
            Some((token.to_string(), alternative["logprob"].clone()))
        });
    Value::Object(pairs.collect::<Map<String, Value>>())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(token: &str, logprob: f64, top: &[(&str, f64)]) -> Value {
        let top: Vec<Value> = top
            .iter()
            .map(|(token, logprob)| json!({"token": token, "logprob": logprob, "bytes": token.as_bytes()}))
            .collect();
        json!({"token": token, "logprob": logprob, "bytes": token.as_bytes(), "top_logprobs": top})
    }

    #[test]
    fn chat_logprobs_are_the_entries_as_content() {
        let entries = [entry("Hi", -0.25, &[("Hi", -0.25), ("Hello", -1.5)])];
        assert_eq!(chat(&entries), json!({"content": entries, "refusal": null}));
    }

    #[test]
    fn text_logprobs_are_parallel_lists_whose_offsets_run_on() {
        let mut offset = 0;
        let first = text(
            &[
                entry("Hé", -0.5, &[("Hé", -0.5), ("Ho", -2.0)]),
                entry("llo", -0.125, &[]),
            ],
            &mut offset,
        );
        assert_eq!(
            first,
            json!({
                "tokens": ["Hé", "llo"],
                "token_logprobs": [-0.5, -0.125],
                "top_logprobs": [{"Hé": -0.5, "Ho": -2.0}, {}],
                "text_offset": [0, 2],
            })
        );
        let next = text(&[entry(" you", -1.0, &[])], &mut offset);
        assert_eq!(next["text_offset"], json!([5]));
        assert_eq!(offset, 9);
    }
}
