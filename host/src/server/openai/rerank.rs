//! `POST /v1/rerank` (and `/rerank`, `/v2/rerank`) on the `rerank` task, in the shape Cohere,
//! Jina and llama.cpp's server share: `query`, `documents` (strings or `{text}`), `top_n`,
//! `return_documents`; the answer lists `{index, relevance_score, truncated, document?}` by
//! score, best first, with llama.cpp's `usage` (`prompt_tokens` and `total_tokens`).

use super::{collect, fields, request, requested_model, start_job};
use crate::server::openai::errors::JsonRouteErrors;
use crate::server::{ApiError, AppState};
use axum::{
    Json,
    extract::{State, rejection::JsonRejection},
};
use rbee_plugin_api::tasks::rerank::{SCORE, TASK, end, param, score};
use serde_json::{Map, Value, json};
use std::sync::Arc;

/// Ranks `documents` by relevance to `query`: the best `top_n` (default all), with their text
/// if `return_documents`. A document longer than the model's window is truncated (the query is
/// kept whole) and marked `truncated`. Also served at `/rerank` and `/v2/rerank`.
#[utoipa::path(
    post,
    path = "/v1/rerank",
    operation_id = "create_rerank",
    tag = "openai",
    request_body(content = ref("#/components/schemas/RerankRequest")),
    responses(
        (status = 200, description = "The documents by relevance, best first", body = ref("#/components/schemas/Rerank")),
        JsonRouteErrors,
    ),
)]
pub async fn rerank(
    State(state): State<Arc<AppState>>,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let body = request::object(body)?;
    let asked = Asked::read(&body)?;
    let params = Map::from_iter([
        (param::QUERY.to_string(), Value::String(asked.query.clone())),
        (param::DOCUMENTS.to_string(), json!(asked.documents)),
    ]);
    let started = start_job(
        &state,
        "/v1/rerank",
        requested_model(&body)?,
        TASK,
        params,
        Vec::new(),
    )
    .await?;
    let collected = collect(started.events).await?;
    let scores = collected
        .custom
        .iter()
        .filter(|(name, _)| name == SCORE)
        .map(|(_, data)| data);
    Ok(Json(json!({
        "object": "list",
        "model": started.model,
        "results": asked.results(scores, &collected.details),
        "usage": usage(&collected.details),
    })))
}

/// What a rerank request asks for.
#[derive(Debug)]
struct Asked {
    query: String,
    documents: Vec<String>,
    top_n: Option<usize>,
    return_documents: bool,
}

impl Asked {
    /// Reads and checks a request body; a 400 names the field at fault.
    fn read(body: &Map<String, Value>) -> Result<Self, ApiError> {
        fields::RERANK.check_all(body)?;
        let query = match body.get("query") {
            Some(Value::String(query)) if !query.is_empty() => query.clone(),
            Some(Value::String(_)) => return Err(request::bad("query", "'query' is empty")),
            None | Some(Value::Null) => return Err(request::bad("query", "'query' is required")),
            Some(_) => return Err(request::bad("query", "'query' must be a string")),
        };
        let documents = documents(body.get("documents"))?;
        let top_n = match body.get("top_n") {
            None | Some(Value::Null) => None,
            Some(n) => match n.as_u64().filter(|&n| n >= 1) {
                Some(n) => Some(usize::try_from(n).unwrap_or(usize::MAX)),
                None => {
                    return Err(request::bad(
                        "top_n",
                        "'top_n' must be an integer of at least 1",
                    ));
                }
            },
        };
        let return_documents = match body.get("return_documents") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(wanted)) => *wanted,
            Some(_) => {
                return Err(request::bad(
                    "return_documents",
                    "'return_documents' must be true or false",
                ));
            }
        };
        Ok(Self {
            query,
            documents,
            top_n,
            return_documents,
        })
    }

    /// The results from the job's `score` events and end `details`: by relevance, best first
    /// (ties by index), the best `top_n`.
    fn results<'a>(&self, scores: impl Iterator<Item = &'a Value>, details: &Value) -> Vec<Value> {
        let truncated: Vec<u64> = details[end::TRUNCATED]
            .as_array()
            .map(|list| list.iter().filter_map(Value::as_u64).collect())
            .unwrap_or_default();
        let mut ranked: Vec<(u64, f64)> = scores
            .filter_map(|data| {
                Some((
                    data[score::INDEX].as_u64()?,
                    data[score::RELEVANCE_SCORE].as_f64()?,
                ))
            })
            .filter(|(index, _)| (*index as usize) < self.documents.len())
            .collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        ranked.dedup_by_key(|(index, _)| *index);
        ranked
            .into_iter()
            .take(self.top_n.unwrap_or(usize::MAX))
            .map(|(index, relevance)| {
                let mut result = json!({
                    "index": index,
                    "relevance_score": relevance,
                    "truncated": truncated.contains(&index),
                });
                if self.return_documents {
                    result["document"] = json!({"text": self.documents[index as usize]});
                }
                result
            })
            .collect()
    }
}

/// The texts of `documents`: a non-empty list of strings or `{"text": string}` objects.
fn documents(documents: Option<&Value>) -> Result<Vec<String>, ApiError> {
    let shape = "'documents' must be a non-empty list of strings or {\"text\": string} objects";
    let Some(Value::Array(items)) = documents else {
        return Err(request::bad("documents", shape));
    };
    if items.is_empty() {
        return Err(request::bad(
            "documents",
            "'documents' is an empty list: give at least one",
        ));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, item)| match item {
            Value::String(text) => Ok(text.clone()),
            Value::Object(object) if object.len() == 1 => match object.get("text") {
                Some(Value::String(text)) => Ok(text.clone()),
                _ => Err(request::bad(
                    "documents",
                    format!("documents[{i}]: {shape}"),
                )),
            },
            _ => Err(request::bad(
                "documents",
                format!("documents[{i}]: {shape}"),
            )),
        })
        .collect()
}

/// Token counts from a rerank job's end details, as llama.cpp's server reports them (Jina's
/// `total_tokens` included).
fn usage(details: &Value) -> Value {
    let prompt = details[end::PROMPT_TOKENS].as_u64().unwrap_or(0);
    json!({"prompt_tokens": prompt, "total_tokens": prompt})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(body: Value) -> Result<Asked, String> {
        Asked::read(body.as_object().expect("an object")).map_err(|e| format!("{e:?}"))
    }

    fn field_of(body: Value) -> String {
        let error = read(body).unwrap_err();
        assert!(error.contains("status: 400"), "{error}");
        error
    }

    #[test]
    fn documents_are_strings_or_text_objects() {
        let asked = read(json!({"query": "q", "documents": ["a", {"text": "b"}], "top_n": 1, "return_documents": true})).unwrap();
        assert_eq!(asked.documents, ["a", "b"]);
        assert_eq!((asked.top_n, asked.return_documents), (Some(1), true));
    }

    #[test]
    fn bad_fields_are_400_naming_them() {
        for (body, field) in [
            (json!({"documents": ["a"]}), "query"),
            (json!({"query": 3, "documents": ["a"]}), "query"),
            (json!({"query": "", "documents": ["a"]}), "query"),
            (json!({"query": "q"}), "documents"),
            (json!({"query": "q", "documents": []}), "documents"),
            (
                json!({"query": "q", "documents": [{"title": "a"}]}),
                "documents",
            ),
            (
                json!({"query": "q", "documents": [{"text": "a", "id": 1}]}),
                "documents",
            ),
            (
                json!({"query": "q", "documents": ["a"], "top_n": "2"}),
                "top_n",
            ),
            (
                json!({"query": "q", "documents": ["a"], "top_n": 0}),
                "top_n",
            ),
            (
                json!({"query": "q", "documents": ["a"], "return_documents": 1}),
                "return_documents",
            ),
            (
                json!({"query": "q", "documents": ["a"], "rank_fields": ["text"]}),
                "rank_fields",
            ),
            (
                json!({"query": "q", "documents": ["a"], "cache_prompt": true}),
                "cache_prompt",
            ),
        ] {
            let error = field_of(body.clone());
            assert!(
                error.contains(&format!("field: Some(\"{field}\")")),
                "{body}: {error}"
            );
        }
    }

    #[test]
    fn results_are_best_first_cut_to_top_n_with_their_text_when_asked() {
        let asked = read(json!({"query": "q", "documents": ["a", "b", "c"], "top_n": 2, "return_documents": true})).unwrap();
        let scores = [
            json!({"index": 2, "relevance_score": 0.5}),
            json!({"index": 0, "relevance_score": 0.9}),
            json!({"index": 1, "relevance_score": 0.1}),
        ];
        let results = asked.results(scores.iter(), &json!({"truncated": [2]}));
        assert_eq!(
            results,
            [
                json!({"index": 0, "relevance_score": 0.9, "truncated": false, "document": {"text": "a"}}),
                json!({"index": 2, "relevance_score": 0.5, "truncated": true, "document": {"text": "c"}}),
            ]
        );
        assert_eq!(
            usage(&json!({"prompt_tokens": 9})),
            json!({"prompt_tokens": 9, "total_tokens": 9})
        );
    }
}
