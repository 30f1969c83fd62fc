//! `POST /v1/embeddings` on the `embedding` task.

use super::{collect, fields, request, requested_model, start_job};
use crate::server::openai::errors::JsonRouteErrors;
use crate::server::{ApiError, AppState};
use axum::{
    Json,
    extract::{State, rejection::JsonRejection},
};
use base64::{Engine, engine::general_purpose::STANDARD as BASE64};
use rbee_plugin_api::tasks::embedding::{TASK, end, param};
use serde_json::{Map, Value, json};
use std::sync::Arc;

/// Embeds `input` (a string or a list of strings); `encoding_format` float or base64.
#[utoipa::path(
    post,
    path = "/v1/embeddings",
    operation_id = "create_embeddings",
    tag = "openai",
    request_body(content = ref("#/components/schemas/EmbeddingsRequest")),
    responses(
        (status = 200, description = "One vector per input", body = ref("#/components/schemas/Embeddings")),
        JsonRouteErrors,
    ),
)]
pub async fn embeddings(
    State(state): State<Arc<AppState>>,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let body = request::object(body)?;
    fields::EMBEDDINGS.check_all(&body)?;
    let input = match body.get("input") {
        Some(text @ Value::String(_)) => text.clone(),
        Some(Value::Array(items)) if items.iter().all(Value::is_string) => {
            Value::Array(items.clone())
        }
        _ => {
            return Err(request::bad(
                "input",
                "'input' must be a string or a list of strings",
            ));
        }
    };
    let base64 = match request::text(&body, "encoding_format")? {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return Err(request::bad(
                "encoding_format",
                format!("unknown encoding_format '{other}'"),
            ));
        }
    };
    let params = Map::from_iter([(param::INPUT.to_string(), input)]);
    let started = start_job(
        &state,
        "/v1/embeddings",
        requested_model(&body)?,
        TASK,
        params,
        Vec::new(),
    )
    .await?;
    let mut collected = collect(started.events).await?;
    collected.embeddings.sort_by_key(|(index, _)| *index);
    let data: Vec<Value> = collected
        .embeddings
        .iter()
        .map(|(index, vector)| {
            let embedding = match base64 {
                true => Value::String(
                    BASE64.encode(
                        vector
                            .iter()
                            .flat_map(|x| x.to_le_bytes())
                            .collect::<Vec<u8>>(),
                    ),
                ),
                false => json!(vector),
            };
            json!({"object": "embedding", "index": index, "embedding": embedding})
        })
        .collect();
    Ok(Json(
        json!({"object": "list", "data": data, "model": started.model, "usage": usage(&collected.details)}),
    ))
}

/// Token counts from an embedding job's end details, in OpenAI's `usage` shape for embeddings.
pub(super) fn usage(details: &Value) -> Value {
    let prompt = details[end::PROMPT_TOKENS].as_u64().unwrap_or(0);
    json!({"prompt_tokens": prompt, "total_tokens": prompt})
}
