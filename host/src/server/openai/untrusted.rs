//! The OpenAI routes' readers of untrusted request bytes, callable without a server or a model:
//! the fuzz targets (`tests/fuzz`) drive them with arbitrary input. Each runs the code a route
//! runs on its body before it starts a job.

use super::{
    audio::{self, Mode},
    fields,
    images::{self, edits, transparency},
    request,
};
use crate::server::{ApiError, jobs::job_for};
use axum::{
    Json,
    body::Body,
    extract::{FromRequest, Multipart},
    http::{Request, header::CONTENT_TYPE},
};
use rbee_plugin_api::tasks::image::param::PASSED_THROUGH;
use serde_json::Value;

/// The boundary [`read_forms`] reads its bodies with.
pub const BOUNDARY: &str = "rbee-fuzz";

/// Reads `body`, a `multipart/form-data` body delimited by [`BOUNDARY`], as each form route
/// reads its upload: `/v1/audio/transcriptions`, `/v1/audio/translations`, then
/// `/v1/images/edits` (its PNG files decoded as [`plan_edit`] does). One result per route.
pub async fn read_forms(body: &[u8]) -> Vec<Result<(), ApiError>> {
    let mut results = Vec::new();
    for mode in [Mode::Transcribe, Mode::Translate] {
        let read = match multipart(body).await {
            Ok(form) => audio::read_form(form, mode).await.map(drop),
            Err(error) => Err(error),
        };
        results.push(read);
    }
    let edit = match multipart(body).await {
        Ok(form) => match edits::read_form(form).await {
            Ok(edits::Form {
                image: Some(image),
                mask,
                ..
            }) => plan_edit(&image, mask.as_deref()).map(drop),
            other => other.map(drop),
        },
        Err(error) => Err(error),
    };
    results.push(edit);
    results
}

/// The multipart extractor the form routes take, over `body`.
async fn multipart(body: &[u8]) -> Result<Multipart, ApiError> {
    let request = Request::builder()
        .header(
            CONTENT_TYPE,
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(Body::from(body.to_vec()))
        .expect("a constant header makes a valid request");
    Multipart::from_request(request, &())
        .await
        .map_err(|e| request::bad("file", e.body_text()))
}

/// Decodes the PNG `image` (and `mask`) of an image edit as `/v1/images/edits` does: the native
/// task the edit becomes.
pub fn plan_edit(image: &[u8], mask: Option<&[u8]>) -> Result<&'static str, ApiError> {
    transparency::plan(image, mask).map(|edit| edit.task)
}

/// Reads `body` as each JSON route reads its request: the body as a JSON object, then its
/// fields checked and mapped onto job parameters by `/v1/chat/completions`, `/v1/completions`,
/// `/v1/embeddings`, `/v1/images/generations`, and the binary parameters of the native
/// `POST /v1/jobs` (`task` and `params`) decoded. One result per route, or one error for a body
/// that is not a JSON object.
pub fn read_json(body: &[u8]) -> Vec<Result<(), ApiError>> {
    let body = match request::object(Json::from_bytes(body)) {
        Ok(body) => body,
        Err(error) => return vec![Err(error)],
    };
    let text_generation = |route: &fields::Route| {
        route.check_all(&body)?;
        request::sampling(&body)?;
        request::stream(&body).map(drop)
    };
    let task = body.get("task").and_then(Value::as_str).unwrap_or_default();
    let params = body.get("params").and_then(Value::as_object).cloned();
    vec![
        text_generation(&fields::CHAT),
        text_generation(&fields::COMPLETIONS),
        fields::EMBEDDINGS.check_all(&body),
        fields::IMAGE_GENERATIONS
            .check_all(&body)
            .and_then(|()| images::job_params(&body, PASSED_THROUGH).map(drop)),
        job_for(task, params.unwrap_or_default(), Vec::new()).map(drop),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn each_form_route_reads_the_body_its_own_way() {
        let field = |name: &str, value: &str| {
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
        };
        let body = format!(
            "{}{}--{BOUNDARY}--\r\n",
            field("file", "RIFF"),
            field("language", "en")
        );
        let read: Vec<String> = read_forms(body.as_bytes())
            .await
            .iter()
            .map(|r| format!("{r:?}"))
            .collect();
        assert_eq!(read[0], "Ok(())");
        assert!(
            read[1].contains("'language' is not supported"),
            "{}",
            read[1]
        );
        assert!(read[2].contains("unknown field 'file'"), "{}", read[2]);
    }

    #[test]
    fn json_bodies_are_read_by_every_route() {
        let read = read_json(br#"{"prompt": "hi", "n": 1}"#);
        let ok: Vec<bool> = read.iter().map(Result::is_ok).collect();
        assert_eq!(ok, [false, true, false, true, true]);
        assert_eq!(read_json(b"[1]").len(), 1);
    }
}
