//! Structured outputs, tool calls and log probabilities on the real LLM plugin (SmolLM2-135M),
//! through a running host: the official `openai` SDK for what OpenAI shapes, plain HTTP for the
//! native API and for the refusals.

use rbee_tests::{Host, SseEvent, streamed_text};
use serde_json::{Value, json};

/// The SDK's view of every feature, printed as one JSON object.
const CLIENT: &str = r#"
import json, os, openai
from enum import Enum
from pydantic import BaseModel, Field

client = openai.OpenAI(base_url=os.environ["BASE_URL"] + "/v1", api_key="unused")
out = {}

class Continent(str, Enum):
    europe = "Europe"
    asia = "Asia"
    africa = "Africa"

class Country(BaseModel):
    name: str = Field(max_length=30)
    continent: Continent

class City(BaseModel):
    city: str = Field(max_length=30)
    country: Country
    population_millions: int = Field(ge=0, le=50)
    landmarks: list[str] = Field(max_length=3)

messages = [{"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "Describe the capital of France as JSON."}]
parsed = client.chat.completions.parse(model="smollm", messages=messages, response_format=City,
                                       temperature=0, max_tokens=200)
choice = parsed.choices[0]
out["parsed"] = choice.message.parsed.model_dump(mode="json") if choice.message.parsed else None
out["parsed_finish"] = choice.finish_reason
out["parsed_validates"] = City.model_validate_json(choice.message.content) is not None

weather = {"type": "function", "function": {
    "name": "get_weather", "description": "The current weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 30}},
                   "required": ["city"], "additionalProperties": False}}}
time_tool = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}}
tools = [weather, time_tool]
ask = [{"role": "system", "content": "You are a helpful assistant."},
       {"role": "user", "content": "What is the weather in Paris?"}]
first = client.chat.completions.create(model="smollm", messages=ask, tools=tools, temperature=0, max_tokens=80,
                                       tool_choice={"type": "function", "function": {"name": "get_weather"}})
call = first.choices[0].message.tool_calls[0]
out["first"] = {"finish": first.choices[0].finish_reason, "content": first.choices[0].message.content,
                "id": call.id, "name": call.function.name, "arguments": json.loads(call.function.arguments)}
second = client.chat.completions.create(
    model="smollm", temperature=0, max_tokens=40, tools=tools,
    messages=ask + [first.choices[0].message.model_dump(exclude_none=True),
                    {"role": "tool", "tool_call_id": call.id, "content": "Sunny, 24 degrees Celsius."}])
out["second"] = {"finish": second.choices[0].finish_reason, "content": second.choices[0].message.content,
                 "tool_calls": second.choices[0].message.tool_calls}

twice = [{"role": "system", "content": "You are a helpful assistant."},
         {"role": "user", "content": "Call get_weather twice: once for Paris and once for London."}]
def parallel(stream):
    kwargs = dict(model="smollm", messages=twice, tools=tools, tool_choice="required", temperature=0, max_tokens=120)
    if not stream:
        message = client.chat.completions.create(**kwargs).choices[0]
        return {"finish": message.finish_reason,
                "calls": [{"index": i, "id": c.id, "name": c.function.name, "arguments": c.function.arguments}
                          for i, c in enumerate(message.message.tool_calls or [])]}
    calls, finish = {}, None
    for chunk in client.chat.completions.create(stream=True, **kwargs):
        delta = chunk.choices[0].delta if chunk.choices else None
        for piece in (delta.tool_calls or []) if delta else []:
            entry = calls.setdefault(piece.index, {"index": piece.index, "id": None, "name": None, "arguments": ""})
            entry["id"] = piece.id or entry["id"]
            entry["name"] = (piece.function.name if piece.function else None) or entry["name"]
            entry["arguments"] += (piece.function.arguments or "") if piece.function else ""
        if chunk.choices and chunk.choices[0].finish_reason:
            finish = chunk.choices[0].finish_reason
    return {"finish": finish, "calls": [calls[i] for i in sorted(calls)]}
out["parallel"] = parallel(False)
out["parallel_streamed"] = parallel(True)

either = client.chat.completions.create(
    model="smollm", temperature=0, max_tokens=80, tools=tools,
    messages=[{"role": "system", "content": "You are a helpful assistant."},
              {"role": "user", "content": "What is the capital of France?"}],
    response_format={"type": "json_schema", "json_schema": {"name": "answer", "schema": {
        "type": "object", "properties": {"answer": {"type": "string", "maxLength": 40}},
        "required": ["answer"], "additionalProperties": False}}}).choices[0]
out["either"] = {"finish": either.finish_reason, "content": either.message.content,
                 "calls": len(either.message.tool_calls or [])}

capital = [{"role": "system", "content": "You are a helpful assistant."},
           {"role": "user", "content": "What is the capital of France?"}]
whole = client.chat.completions.create(model="smollm", messages=capital, temperature=0, max_tokens=12,
                                       logprobs=True, top_logprobs=3)
out["logprobs"] = [e.model_dump() for e in whole.choices[0].logprobs.content]
out["logprobs_text"] = whole.choices[0].message.content
streamed = []
for chunk in client.chat.completions.create(model="smollm", messages=capital, temperature=0, max_tokens=12,
                                            logprobs=True, top_logprobs=3, stream=True):
    if chunk.choices and chunk.choices[0].logprobs and chunk.choices[0].logprobs.content:
        streamed += [e.model_dump() for e in chunk.choices[0].logprobs.content]
out["logprobs_streamed"] = streamed
legacy = client.completions.create(model="smollm", prompt="The capital of France is", max_tokens=5,
                                   temperature=0, logprobs=2)
out["legacy"] = legacy.choices[0].logprobs.model_dump()
out["legacy_text"] = legacy.choices[0].text
print(json.dumps(out))
"#;

#[test]
fn the_openai_sdk_gets_parsed_objects_tool_calls_and_logprobs() {
    let host = Host::start_llm(&[]);
    let out = host.run_openai_client(CLIENT);

    let parsed = &out["parsed"];
    assert_eq!(out["parsed_finish"], "stop", "{out}");
    assert_eq!(out["parsed_validates"], true);
    assert!(parsed["country"]["name"].is_string(), "{parsed}");
    assert!(
        ["Europe", "Asia", "Africa"].contains(&parsed["country"]["continent"].as_str().unwrap()),
        "{parsed}"
    );
    assert!(
        parsed["landmarks"].as_array().unwrap().len() <= 3,
        "{parsed}"
    );

    let first = &out["first"];
    assert_eq!(first["finish"], "tool_calls", "{first}");
    assert_eq!(first["content"], Value::Null);
    assert_eq!(first["name"], "get_weather");
    assert!(first["arguments"]["city"].is_string(), "{first}");
    assert!(first["id"].as_str().unwrap().starts_with("call_"));
    let second = &out["second"];
    assert_eq!(second["finish"], "stop", "{second}");
    let reply = second["content"].as_str().unwrap();
    assert!(
        reply.contains("24") || reply.to_lowercase().contains("sunny"),
        "the tool's result reached the model: {second}"
    );

    for key in ["parallel", "parallel_streamed"] {
        let parallel = &out[key];
        assert_eq!(parallel["finish"], "tool_calls", "{key}: {parallel}");
        let calls = parallel["calls"].as_array().unwrap();
        assert_eq!(calls.len(), 2, "{key}: {parallel}");
        assert_eq!(
            (calls[0]["index"].clone(), calls[1]["index"].clone()),
            (json!(0), json!(1))
        );
        assert_ne!(calls[0]["id"], calls[1]["id"], "{key}");
        let cities: Vec<String> = calls
            .iter()
            .map(|call| {
                assert_eq!(call["name"], "get_weather", "{key}: {call}");
                let arguments: Value =
                    serde_json::from_str(call["arguments"].as_str().unwrap()).unwrap();
                arguments["city"].as_str().unwrap().to_string()
            })
            .collect();
        assert_eq!(cities, ["Paris", "London"], "{key}");
    }
    assert_eq!(out["parallel"]["calls"].as_array().unwrap().len(), 2);

    let either = &out["either"];
    if either["calls"] == 0 {
        assert_eq!(either["finish"], "stop", "{either}");
        let answer: Value = serde_json::from_str(either["content"].as_str().unwrap()).unwrap();
        assert!(answer["answer"].is_string(), "{either}");
    } else {
        assert_eq!(either["finish"], "tool_calls", "{either}");
    }

    let logprobs = out["logprobs"].as_array().unwrap();
    assert!(!logprobs.is_empty());
    assert_eq!(logprobs, out["logprobs_streamed"].as_array().unwrap());
    let joined: String = logprobs
        .iter()
        .map(|e| e["token"].as_str().unwrap())
        .collect();
    assert_eq!(joined, out["logprobs_text"].as_str().unwrap());
    for entry in logprobs {
        let top = entry["top_logprobs"].as_array().unwrap();
        assert_eq!(top.len(), 3, "{entry}");
        assert_eq!(top[0]["token"], entry["token"], "greedy takes the best");
        assert!(entry["logprob"].as_f64().unwrap() <= 0.0);
        assert!(entry["bytes"].is_array());
    }
    let legacy = &out["legacy"];
    let tokens = legacy["tokens"].as_array().unwrap();
    assert_eq!(tokens.len(), 5, "{legacy}");
    let joined: String = tokens.iter().map(|t| t.as_str().unwrap()).collect();
    assert_eq!(joined, out["legacy_text"].as_str().unwrap());
    assert_eq!(legacy["token_logprobs"].as_array().unwrap().len(), 5);
    assert_eq!(legacy["top_logprobs"][0].as_object().unwrap().len(), 2);
    assert_eq!(legacy["text_offset"][0], 0);
}

fn chat_error(host: &Host, extra: Value) -> (u16, Value) {
    let mut body = json!({"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4});
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let response = host.post("/v1/chat/completions", &body);
    let status = response.status().as_u16();
    (status, response.json().unwrap())
}

#[test]
fn what_cannot_be_enforced_is_refused_with_400_naming_the_field() {
    let host = Host::start_llm(&[]);
    let tool = json!([{"type": "function", "function": {"name": "get_weather"}}]);
    let cases = [
        (
            json!({"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "nope"}}}}),
            "response_format",
        ),
        (
            json!({"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"$ref": "#/$defs/missing"}}}}),
            "response_format",
        ),
        (
            json!({"tools": tool, "tool_choice": {"type": "function", "function": {"name": "get_time"}}}),
            "tool_choice",
        ),
        (json!({"grammar": "root ::= \"yes\" | \"no\""}), "grammar"),
        (json!({"grammar": "start: undefined_rule"}), "grammar"),
        (
            json!({"tools": tool, "response_format": {"type": "regex", "pattern": "a+"}}),
            "response_format",
        ),
        (
            json!({"logprobs": true, "top_logprobs": 21}),
            "top_logprobs",
        ),
    ];
    for (extra, field) in cases {
        let (status, body) = chat_error(&host, extra.clone());
        assert_eq!(status, 400, "{extra}: {body}");
        assert_eq!(body["error"]["param"], field, "{extra}: {body}");
    }
}

fn events(host: &Host, params: Value) -> Vec<SseEvent> {
    host.stream(&host.submit("text-generation", params))
        .collect_all()
}

#[test]
fn the_native_task_takes_grammars_and_reports_logprobs_in_token_events() {
    let host = Host::start_llm(&[]);
    let chat = json!([{"role": "system", "content": "You are a helpful assistant."},
                      {"role": "user", "content": "Is Paris in France?"}]);
    let events_of = |extra: Value| {
        let mut params = json!({"messages": chat, "temperature": 0, "max_tokens": 20});
        params
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        events(&host, params)
    };
    let answer = events_of(
        json!({"grammar": "start: (\"Yes\" | \"No\") \", because \" /[a-z ]{3,40}/ \".\""}),
    );
    let text = streamed_text(&answer);
    assert!(
        text.starts_with("Yes, because ") || text.starts_with("No, because "),
        "{text:?}"
    );
    let end = answer.last().unwrap();
    assert_eq!(end.name, "end");
    if end.data["stop_reason"] == "eos" {
        assert!(text.ends_with('.'), "{text:?}");
    }

    let answer = events_of(json!({"logprobs": true, "top_logprobs": 2}));
    let tokens: Vec<&SseEvent> = answer.iter().filter(|e| e.name == "token").collect();
    assert!(!tokens.is_empty());
    for token in &tokens {
        let logprobs = token.data["logprobs"].as_array().unwrap();
        assert!(!logprobs.is_empty(), "{:?}", token.data);
        let joined: String = logprobs
            .iter()
            .map(|e| e["token"].as_str().unwrap())
            .collect();
        assert_eq!(joined, token.data["text"].as_str().unwrap());
        assert_eq!(logprobs[0]["top_logprobs"].as_array().unwrap().len(), 2);
    }
    assert!(
        answer.iter().all(|e| e.name != "token_logprobs"),
        "merged into the token events"
    );

    let refused = host.post(
        "/v1/jobs",
        &json!({"task": "text-generation",
                "params": {"messages": chat, "response_format": {"type": "regex", "pattern": "(unclosed"}}}),
    );
    assert_eq!(refused.status().as_u16(), 400);
    let body: Value = refused.json().unwrap();
    assert!(body.to_string().contains("response_format"), "{body}");
}
