//! The OpenAI image routes: `POST /v1/images/generations` on the `image-generation` task and
//! `POST /v1/images/edits` on `inpainting` or `image-to-image`; images come back as b64_json.

pub(super) mod edits;
pub(super) mod transparency;

pub use edits::edits;

use super::{Collected, collect, fields, now, request, requested_model, start_job};
use crate::server::openai::errors::JsonRouteErrors;
use crate::server::{ApiError, AppState};
use axum::{
    Json,
    extract::{State, rejection::JsonRejection},
};
use base64::{Engine, engine::general_purpose::STANDARD as BASE64};
use rbee_plugin_api::tasks::image::{self, param};
use serde_json::{Map, Value, json};
use std::sync::Arc;

/// Generates images from `prompt`; `n`, `size` ("WxH") and the plugin's own parameters
/// (`negative_prompt`, `steps`, `guidance_scale`, `seed`, `scheduler`) as extensions.
#[utoipa::path(
    post,
    path = "/v1/images/generations",
    operation_id = "create_images",
    tag = "openai",
    request_body(content = ref("#/components/schemas/ImageGenerationRequest")),
    responses(
        (status = 200, description = "The images, as base64 PNG", body = ref("#/components/schemas/Images")),
        JsonRouteErrors,
    ),
)]
pub async fn generations(
    State(state): State<Arc<AppState>>,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let body = request::object(body)?;
    fields::IMAGE_GENERATIONS.check_all(&body)?;
    let (prompt, params) = job_params(&body, param::PASSED_THROUGH)?;
    let started = start_job(
        &state,
        "/v1/images/generations",
        requested_model(&body)?,
        image::GENERATION,
        params,
        Vec::new(),
    )
    .await?;
    Ok(answer(collect(started.events).await?, &prompt))
}

/// The prompt and the job parameters the OpenAI fields both routes share map onto: `prompt`,
/// `n`, `size` as `width` and `height`, `response_format` (b64_json only) and `extensions`.
pub(super) fn job_params(
    body: &Map<String, Value>,
    extensions: &[&str],
) -> Result<(String, Map<String, Value>), ApiError> {
    let mut params = Map::new();
    let prompt = body
        .get("prompt")
        .and_then(Value::as_str)
        .ok_or_else(|| request::bad("prompt", "'prompt' is required"))?;
    params.insert(param::PROMPT.into(), prompt.into());
    if let Some(n) = body.get("n").filter(|n| !n.is_null()) {
        params.insert(param::N.into(), n.clone());
    }
    if let Some(size) = request::text(body, "size")? {
        let (width, height) = size
            .split_once('x')
            .and_then(|(w, h)| Some((w.parse::<u64>().ok()?, h.parse::<u64>().ok()?)))
            .ok_or_else(|| request::bad("size", "'size' must look like 512x512"))?;
        params.insert(param::WIDTH.into(), width.into());
        params.insert(param::HEIGHT.into(), height.into());
    }
    if let Some(format) = request::text(body, "response_format")?.filter(|f| *f != "b64_json") {
        return Err(request::bad(
            "response_format",
            format!(
                "response_format '{format}' is not supported: this server keeps no image files to link to, use b64_json"
            ),
        ));
    }
    for extension in extensions {
        if let Some(value) = body.get(*extension).filter(|v| !v.is_null()) {
            params.insert((*extension).into(), value.clone());
        }
    }
    Ok((prompt.to_string(), params))
}

/// OpenAI's image answer: each PNG the job produced as b64_json.
fn answer(collected: Collected, prompt: &str) -> Json<Value> {
    let data: Vec<Value> = collected
        .artifacts
        .iter()
        .map(|image| json!({"b64_json": BASE64.encode(&image.data), "revised_prompt": prompt}))
        .collect();
    Json(json!({"created": now(), "data": data}))
}
