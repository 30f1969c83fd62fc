//! The official `openai` Python package against a running host with the real LLM plugin.

use rbee_tests::Host;
use serde_json::json;

const CLIENT: &str = r#"
import json, os, openai
client = openai.OpenAI(base_url=os.environ["BASE_URL"] + "/v1", api_key="test-key")
messages = [{"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "What is the capital of France?"}]
whole = client.chat.completions.create(model="smollm", messages=messages, temperature=0, max_tokens=24)
chunks = list(client.chat.completions.create(model="smollm", messages=messages, temperature=0, max_tokens=24,
                                             stream=True, stream_options={"include_usage": True}))
streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
plain = client.completions.create(model="smollm", prompt="The capital of France is", max_tokens=3, temperature=0)
try:
    client.embeddings.create(model="smollm", input="hello")
    embedding_error = None
except openai.NotFoundError as error:
    embedding_error = error.body
choices = client.chat.completions.create(model="smollm", messages=messages, max_tokens=6, temperature=1, seed=3, n=2)
refused = {
    "functions": {"functions": [{"name": "now", "parameters": {"type": "object", "properties": {}}}]},
    "logit_bias": {"logit_bias": {"50256": -100}},
    "reasoning_effort": {"reasoning_effort": "high"},
    "top_logprobs": {"top_logprobs": 2},
    "n": {"n": 9},
}
refusals = {}
for name, fields in refused.items():
    try:
        client.chat.completions.create(model="smollm", messages=messages, max_tokens=2, **fields)
        refusals[name] = "accepted"
    except openai.BadRequestError as error:
        body = error.body if isinstance(error.body, dict) else {}
        refusals[name] = body.get("param", body.get("error", {}).get("param"))
try:
    openai.OpenAI(base_url=os.environ["BASE_URL"] + "/v1", api_key="wrong").models.list()
    auth_error = None
except openai.AuthenticationError as error:
    auth_error = error.status_code
print(json.dumps({
    "content": whole.choices[0].message.content,
    "finish_reason": whole.choices[0].finish_reason,
    "usage": whole.usage.model_dump(),
    "streamed": streamed,
    "last_finish": [c.choices[0].finish_reason for c in chunks if c.choices][-1],
    "stream_usage": chunks[-1].usage.model_dump() if chunks[-1].usage else None,
    "plain": plain.choices[0].text,
    "plain_finish": plain.choices[0].finish_reason,
    "models": [m.id for m in client.models.list().data],
    "embedding_error": embedding_error,
    "auth_error": auth_error,
    "choices": [c.index for c in choices.choices],
    "choices_usage": choices.usage.model_dump(),
    "refusals": refusals,
}))
"#;

#[test]
fn the_openai_python_sdk_works_unchanged() {
    let host = Host::start_llm(&["--api-key", "test-key"]);
    let result = host.run_openai_client(CLIENT);
    let content = result["content"].as_str().unwrap();
    assert!(content.contains("Paris"), "{result}");
    assert_eq!(
        result["streamed"], content,
        "streaming and whole answers differ: {result}"
    );
    assert_eq!(
        result["usage"]["completion_tokens"], result["stream_usage"]["completion_tokens"],
        "{result}"
    );
    assert!(result["usage"]["prompt_tokens"].as_u64().unwrap() > 10);
    assert_eq!(result["finish_reason"], result["last_finish"]);
    assert_eq!(result["plain_finish"], "length");
    assert!(!result["plain"].as_str().unwrap().is_empty());
    assert_eq!(result["models"].as_array().unwrap().len(), 1);
    assert!(
        result["embedding_error"]
            .to_string()
            .contains("text-generation"),
        "{result}"
    );
    assert_eq!(result["auth_error"], 401);
    assert_eq!(
        result["choices"],
        json!([0, 1]),
        "n: 2 gives two choices: {result}"
    );
    let tokens = result["choices_usage"]["completion_tokens"]
        .as_u64()
        .unwrap();
    assert!(
        (2..=12).contains(&tokens),
        "two choices of 1 to 6 tokens: {result}"
    );
    for (field, param) in result["refusals"].as_object().unwrap() {
        assert_eq!(
            param, field,
            "the SDK's {field} request was not refused naming it: {result}"
        );
    }
}
