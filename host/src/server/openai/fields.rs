//! Every request field of every OpenAI-compatible route, in one table: implemented, harmless
//! (metadata that never changes the output, accepted), or refused with 400 naming it and saying
//! what to do instead. A field the table does not list is refused too. README.md prints the same
//! table, and a test holds the two together.

use super::request;
use crate::server::{ApiError, clipped};
use rbee_plugin_api::tasks::image::param as image;
use serde_json::Value;

/// What a route does with one field.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Handling {
    /// The field has its documented effect.
    Implemented,
    /// Accepted; it never changes the output here.
    Harmless,
    /// Refused with 400 unless absent, null or `neutral` (a JSON literal asking for nothing
    /// beyond what is implemented); `instead` says what to do.
    Refused {
        /// The one value that asks for nothing, as JSON, if any.
        neutral: Option<&'static str>,
        /// What to do instead.
        instead: &'static str,
    },
}

/// A field and what its route does with it.
#[derive(Debug, Clone, Copy)]
pub struct Field {
    /// The field's name as clients send it (`[]` included for multipart lists).
    pub name: &'static str,
    /// What the route does with it.
    pub handling: Handling,
}

/// One route's fields.
#[derive(Debug)]
pub struct Route {
    /// The route's path.
    pub path: &'static str,
    /// Every field OpenAI defines for it, and the extensions it accepts.
    pub fields: &'static [Field],
}

const fn implemented(name: &'static str) -> Field {
    Field {
        name,
        handling: Handling::Implemented,
    }
}

const fn harmless(name: &'static str) -> Field {
    Field {
        name,
        handling: Handling::Harmless,
    }
}

const fn refused(
    name: &'static str,
    neutral: Option<&'static str>,
    instead: &'static str,
) -> Field {
    Field {
        name,
        handling: Handling::Refused { neutral, instead },
    }
}

const USE_TOOLS: &str =
    "functions are OpenAI's deprecated form of tools; send tools and tool_choice";
const NO_AUDIO_OUT: &str = "this route answers with text only";
const PENALTIES: &str = "use repeat_penalty (and repeat_last_n) instead";
const NO_BIAS: &str = "token biases are not supported; use stop sequences, grammar or the prompt";
const NOT_A_REASONING_MODEL: &str = "the served model has no reasoning settings";
const NO_WEB: &str = "this server does not search the web";
const PNG_ONLY: &str = "images are PNG, uncompressed by this setting, on an opaque background";
const NO_IMAGE_STREAM: &str = "image streams are not supported; wait for the answer";
const NO_QUALITY: &str = "use the steps and guidance_scale extensions instead";
const NO_SPEAKERS: &str = "speaker diarization is not supported";

/// The model the request goes to (any name, on a host of one model).
const MODEL: Field = implemented("model");
/// Metadata every route accepts.
const USER: Field = harmless("user");

/// The text routes' fields: the input (`$input`), the fields both share, then the route's own.
macro_rules! text_fields {
    ($input:expr; $($own:expr),* $(,)?) => {
        &[
            $input,
            MODEL,
            USER,
            implemented("max_tokens"),
            implemented("temperature"),
            implemented("top_p"),
            implemented("seed"),
            implemented("stop"),
            implemented("stream"),
            implemented("stream_options"),
            implemented("top_k"),
            implemented("min_p"),
            implemented("repeat_penalty"),
            implemented("repeat_last_n"),
            implemented("n"),
            implemented("grammar"),
            refused("frequency_penalty", Some("0"), PENALTIES),
            refused("presence_penalty", Some("0"), PENALTIES),
            refused("logit_bias", Some("{}"), NO_BIAS),
            $($own),*
        ]
    };
}

/// `POST /v1/chat/completions`.
pub const CHAT: Route = Route {
    path: "/v1/chat/completions",
    fields: text_fields![
        implemented("messages");
        implemented("max_completion_tokens"),
        harmless("metadata"),
        harmless("store"),
        harmless("service_tier"),
        harmless("safety_identifier"),
        harmless("prompt_cache_key"),
        implemented("logprobs"),
        implemented("top_logprobs"),
        implemented("response_format"),
        implemented("tools"),
        implemented("tool_choice"),
        implemented("parallel_tool_calls"),
        refused("functions", Some("[]"), USE_TOOLS),
        refused("function_call", Some(r#""none""#), USE_TOOLS),
        refused("modalities", Some(r#"["text"]"#), NO_AUDIO_OUT),
        refused("audio", None, NO_AUDIO_OUT),
        refused(
            "prediction",
            None,
            "predicted outputs are not supported; send the request without one"
        ),
        refused("reasoning_effort", None, NOT_A_REASONING_MODEL),
        refused("verbosity", None, NOT_A_REASONING_MODEL),
        refused("web_search_options", None, NO_WEB),
    ],
};

/// `POST /v1/completions`.
pub const COMPLETIONS: Route = Route {
    path: "/v1/completions",
    fields: text_fields![
        implemented("prompt");
        implemented("logprobs"),
        implemented("response_format"),
        refused(
            "best_of",
            Some("1"),
            "ask for n choices and pick the best yourself"
        ),
        refused(
            "echo",
            Some("false"),
            "the answer holds the completion only; prepend the prompt yourself"
        ),
        refused(
            "suffix",
            Some(r#""""#),
            "insertion is not supported; send the text before the gap as the prompt"
        ),
    ],
};

/// `POST /v1/embeddings`.
pub const EMBEDDINGS: Route = Route {
    path: "/v1/embeddings",
    fields: &[
        implemented("input"),
        MODEL,
        implemented("encoding_format"),
        USER,
        refused(
            "dimensions",
            None,
            "vectors have the model's own size; truncate and renormalise them yourself",
        ),
    ],
};

/// `POST /v1/rerank` (also served at `/rerank` and `/v2/rerank`).
pub const RERANK: Route = Route {
    path: "/v1/rerank",
    fields: &[
        implemented("query"),
        implemented("documents"),
        MODEL,
        implemented("top_n"),
        implemented("return_documents"),
        refused(
            "rank_fields",
            None,
            "documents are strings or {\"text\"} objects; put what to rank in text",
        ),
        refused(
            "max_chunks_per_doc",
            None,
            "a document longer than the model's window is truncated (marked truncated), not chunked",
        ),
        refused(
            "max_tokens_per_doc",
            None,
            "documents are cut at the model's window; shorten them yourself to cut them sooner",
        ),
    ],
};

/// The image fields both image routes share.
macro_rules! image_fields {
    ($($extra:expr),* $(,)?) => {
        &[
            implemented("prompt"),
            MODEL,
            implemented("n"),
            implemented("size"),
            implemented("response_format"),
            USER,
            harmless("moderation"),
            implemented(image::NEGATIVE_PROMPT),
            implemented(image::STEPS),
            implemented(image::GUIDANCE_SCALE),
            implemented(image::SEED),
            implemented(image::SCHEDULER),
            refused("quality", Some(r#""auto""#), NO_QUALITY),
            refused("style", None, "describe the style in the prompt"),
            refused("background", Some(r#""auto""#), PNG_ONLY),
            refused("output_format", Some(r#""png""#), PNG_ONLY),
            refused("output_compression", Some("100"), PNG_ONLY),
            refused("stream", Some("false"), NO_IMAGE_STREAM),
            refused("partial_images", Some("0"), NO_IMAGE_STREAM),
            $($extra),*
        ]
    };
}

/// `POST /v1/images/generations`.
pub const IMAGE_GENERATIONS: Route = Route {
    path: "/v1/images/generations",
    fields: image_fields![],
};

/// `POST /v1/images/edits` (multipart).
pub const IMAGE_EDITS: Route = Route {
    path: "/v1/images/edits",
    fields: image_fields![
        implemented("image"),
        implemented("image[]"),
        implemented("mask"),
        implemented(image::STRENGTH),
        refused(
            "input_fidelity",
            Some(r#""low""#),
            "use the strength extension instead"
        ),
    ],
};

/// The audio fields both audio routes share.
macro_rules! audio_fields {
    ($($extra:expr),* $(,)?) => {
        &[
            implemented("file"),
            MODEL,
            implemented("prompt"),
            implemented("response_format"),
            implemented("temperature"),
            refused("stream", Some("false"), "transcripts are sent whole; stream with the native POST /v1/jobs and token_events"),
            $($extra),*
        ]
    };
}

/// `POST /v1/audio/transcriptions` (multipart).
pub const TRANSCRIPTIONS: Route = Route {
    path: "/v1/audio/transcriptions",
    fields: audio_fields![
        implemented("language"),
        refused(
            "timestamp_granularities[]",
            Some(r#""segment""#),
            "segment timestamps come with verbose_json; word timestamps are not supported"
        ),
        refused(
            "include[]",
            None,
            "use response_format verbose_json for per-segment avg_logprob"
        ),
        refused("chunking_strategy", None, "audio is cut into 30 s windows"),
        refused("known_speaker_names[]", None, NO_SPEAKERS),
        refused("known_speaker_references[]", None, NO_SPEAKERS),
    ],
};

/// `POST /v1/audio/translations` (multipart).
pub const TRANSLATIONS: Route = Route {
    path: "/v1/audio/translations",
    fields: audio_fields![refused(
        "language",
        None,
        "translations are always into English; use /v1/audio/transcriptions to name the spoken language"
    )],
};

/// `POST /v1/audio/speech`.
pub const SPEECH: Route = Route {
    path: "/v1/audio/speech",
    fields: &[
        implemented("input"),
        MODEL,
        implemented("voice"),
        implemented("instructions"),
        implemented("response_format"),
        implemented("speed"),
        implemented("stream_format"),
    ],
};

/// Every route the table covers.
#[cfg(test)]
pub const ROUTES: [&Route; 9] = [
    &CHAT,
    &COMPLETIONS,
    &EMBEDDINGS,
    &RERANK,
    &IMAGE_GENERATIONS,
    &IMAGE_EDITS,
    &TRANSCRIPTIONS,
    &TRANSLATIONS,
    &SPEECH,
];

impl Route {
    /// Checks one field: 400 naming it when it is refused (and not neutral) or unknown.
    pub fn check(&self, name: &str, value: &Value) -> Result<(), ApiError> {
        let Some(field) = self.fields.iter().find(|f| f.name == name) else {
            let known: Vec<&str> = self.fields.iter().map(|f| f.name).collect();
            let name = clipped(name);
            return Err(request::bad(
                &name,
                format!(
                    "unknown field '{name}' for {} (known: {})",
                    self.path,
                    known.join(", ")
                ),
            ));
        };
        match field.handling {
            Handling::Refused { neutral, instead } if !is_neutral(value, neutral) => Err(
                request::bad(name, format!("'{name}' is not supported here: {instead}")),
            ),
            _ => Ok(()),
        }
    }

    /// Checks every field of a JSON body.
    pub fn check_all(&self, body: &serde_json::Map<String, Value>) -> Result<(), ApiError> {
        body.iter()
            .try_for_each(|(name, value)| self.check(name, value))
    }
}

/// A multipart text field's value as JSON when it reads as JSON (`false`, `100`), else as a
/// string.
pub fn form_value(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string()))
}

/// Whether `value` asks for nothing: null, or equal to `neutral` (numbers by value).
fn is_neutral(value: &Value, neutral: Option<&str>) -> bool {
    if value.is_null() {
        return true;
    }
    let Some(neutral) = neutral.and_then(|n| serde_json::from_str::<Value>(n).ok()) else {
        return false;
    };
    match (value.as_f64(), neutral.as_f64()) {
        (Some(a), Some(b)) => a == b,
        _ => *value == neutral,
    }
}

#[cfg(test)]
mod tests;
