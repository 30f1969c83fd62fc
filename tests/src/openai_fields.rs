//! README.md's table of the OpenAI routes' fields (implemented, harmless, refused), read so
//! that tests can walk it over HTTP: what the documentation promises is what they check.

use crate::{Host, workspace_root};
use reqwest::blocking::Response;
use serde_json::{Value, json};

/// One route's row of the table.
#[derive(Debug)]
pub struct RouteFields {
    /// The route's path, e.g. `/v1/chat/completions`.
    pub path: String,
    /// Fields with their documented effect.
    pub implemented: Vec<String>,
    /// Fields accepted that change nothing.
    pub harmless: Vec<String>,
    /// Fields refused with 400 unless neutral.
    pub refused: Vec<String>,
}

impl RouteFields {
    /// Whether the route takes a multipart form rather than JSON.
    pub fn is_multipart(&self) -> bool {
        self.path.starts_with("/v1/audio/") || self.path == "/v1/images/edits"
    }
}

/// Every row of README.md's field table.
pub fn field_table() -> Vec<RouteFields> {
    let readme = std::fs::read_to_string(workspace_root().join("README.md")).expect("README.md");
    let names = |cell: &str| -> Vec<String> {
        cell.split(", ")
            .map(|name| name.trim().trim_matches('`').to_string())
            .filter(|name| name != "none")
            .collect()
    };
    let rows: Vec<RouteFields> = readme
        .lines()
        .filter(|line| line.starts_with("| `/v1/"))
        .filter_map(|line| {
            let cells: Vec<&str> = line.trim_matches('|').split(" | ").collect();
            let [path, implemented, harmless, refused] = cells.as_slice() else {
                return None;
            };
            Some(RouteFields {
                path: path.trim().trim_matches('`').to_string(),
                implemented: names(implemented),
                harmless: names(harmless),
                refused: names(refused),
            })
        })
        .collect();
    assert!(rows.len() >= 7, "README.md's field table is missing");
    rows
}

/// The row of `path`.
pub fn route_fields(path: &str) -> RouteFields {
    field_table()
        .into_iter()
        .find(|row| row.path == path)
        .unwrap_or_else(|| panic!("README.md's field table has no row for {path}"))
}

/// A value a client would send for refused `field`, asking for something the route does not do.
pub fn asking_value(field: &str) -> Value {
    match field {
        "best_of" => json!(2),
        "logit_bias" => json!({"50256": -100}),
        "functions" => json!([{"name": "get_time", "parameters": {"type": "object"}}]),
        "function_call" => json!("auto"),
        "modalities" => json!(["text", "audio"]),
        "audio" => json!({"voice": "alloy", "format": "wav"}),
        "prediction" => json!({"type": "content", "content": "hello"}),
        "reasoning_effort" => json!("high"),
        "verbosity" => json!("low"),
        "frequency_penalty" | "presence_penalty" => json!(0.5),
        "suffix" => json!("the end"),
        "dimensions" | "partial_images" => json!(64),
        "quality" => json!("high"),
        "style" => json!("vivid"),
        "background" => json!("transparent"),
        "output_format" => json!("webp"),
        "output_compression" => json!(50),
        "input_fidelity" => json!("high"),
        "timestamp_granularities[]" => json!("word"),
        "include[]" => json!("logprobs"),
        "chunking_strategy" => json!("auto"),
        "known_speaker_names[]" => json!("agent"),
        "known_speaker_references[]" => json!("data:audio/wav;base64,AAAA"),
        "language" => json!("en"),
        _ => json!(true),
    }
}

/// A value a client would send for harmless `field`.
pub fn harmless_value(field: &str) -> Value {
    match field {
        "metadata" => json!({"team": "tests"}),
        "store" => json!(false),
        "service_tier" => json!("auto"),
        "moderation" => json!("low"),
        other => json!(format!("{other}-value")),
    }
}

/// A field value as multipart text.
pub fn form_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// `POST`s a multipart form of text `fields` and `files` (name, filename, bytes) to `path`.
pub fn post_form(
    host: &Host,
    path: &str,
    fields: &[(&str, String)],
    files: &[(&str, &str, &[u8])],
) -> Response {
    const BOUNDARY: &str = "rbee-fields-boundary-3c9a";
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\ncontent-disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    for (name, filename, bytes) in files {
        body.extend_from_slice(
            format!("--{BOUNDARY}\r\ncontent-disposition: form-data; name=\"{name}\"; filename=\"{filename}\"\r\ncontent-type: application/octet-stream\r\n\r\n").as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    reqwest::blocking::Client::new()
        .post(format!("{}{path}", host.url))
        .header(
            "content-type",
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(body)
        .send()
        .expect("POST")
}

/// Sends one field (with `base` fields and files) to `route` as its clients would: JSON or a
/// multipart form.
pub fn send_field(
    host: &Host,
    route: &RouteFields,
    base: &Value,
    files: &[(&str, &str, &[u8])],
    field: &str,
    value: &Value,
) -> Response {
    if route.is_multipart() {
        let mut fields: Vec<(&str, String)> = vec![(field, form_text(value))];
        if let Some(base) = base.as_object() {
            fields.extend(base.iter().map(|(k, v)| (k.as_str(), form_text(v))));
        }
        post_form(host, &route.path, &fields, files)
    } else {
        let mut body = base.clone();
        body[field] = value.clone();
        host.post(&route.path, &body)
    }
}

/// Sends each of the route's refused fields (asking for something) and one unknown field, and
/// asserts a 400 naming it each time.
pub fn assert_refuses_all(host: &Host, route: &RouteFields) {
    for field in route
        .refused
        .iter()
        .map(String::as_str)
        .chain(["cache_prompt"])
    {
        let response = send_field(host, route, &json!({}), &[], field, &asking_value(field));
        assert_refused(response, &route.path, field);
    }
}

/// Asserts that `response` is a 400 whose OpenAI error names `field`.
pub fn assert_refused(response: Response, route: &str, field: &str) {
    let status = response.status();
    let body: Value = response.json().unwrap_or(Value::Null);
    assert_eq!(status, 400, "{route} {field}: {body}");
    assert_eq!(body["error"]["param"], field, "{route} {field}: {body}");
}
