//! `POST /v1/images/edits`: a multipart upload of `image` (and optionally `mask`) becomes an
//! `inpainting` job when something is transparent, else an `image-to-image` job (see
//! [`super::transparency`]); the answer has the generations route's shape.

use super::{answer, job_params, transparency};
use crate::server::openai::errors::FormRouteErrors;
use crate::server::{
    ApiError, AppState,
    openai::{collect, fields, request, require_task, start_job},
};
use axum::{
    Json,
    extract::{Multipart, State, multipart::MultipartRejection},
};
use rbee_plugin_api::{
    Input,
    tasks::image::{
        INPAINTING, TO_IMAGE,
        param::{self, INIT_IMAGE, MASK_IMAGE, PASSED_THROUGH, STRENGTH},
    },
};
use serde_json::{Map, Value};
use std::sync::Arc;

const ROUTE: &str = "/v1/images/edits";

/// How a text field of the form is read.
#[derive(Clone, Copy)]
enum Kind {
    Text,
    Integer,
    Number,
}

/// The text fields the route reads into the job: OpenAI's, then the plugin's own parameters as
/// extensions (the others [`fields::IMAGE_EDITS`] accepts change nothing).
const TEXT_FIELDS: [(&str, Kind); 11] = [
    ("model", Kind::Text),
    ("prompt", Kind::Text),
    ("n", Kind::Integer),
    ("size", Kind::Text),
    ("response_format", Kind::Text),
    (param::NEGATIVE_PROMPT, Kind::Text),
    (param::STEPS, Kind::Integer),
    (param::GUIDANCE_SCALE, Kind::Number),
    (param::SEED, Kind::Integer),
    (param::SCHEDULER, Kind::Text),
    (STRENGTH, Kind::Number),
];

/// The uploaded form.
#[derive(Default)]
pub(crate) struct Form {
    pub(crate) image: Option<Vec<u8>>,
    pub(crate) mask: Option<Vec<u8>>,
    fields: Map<String, Value>,
}

/// Edits the uploaded `image` following `prompt`: the transparent area of `mask` (or of the
/// image) is repainted; with nothing transparent the whole image is reworked by `strength`.
#[utoipa::path(
    post,
    path = "/v1/images/edits",
    operation_id = "edit_images",
    tag = "openai",
    request_body(content = ref("#/components/schemas/ImageEditRequest"), content_type = "multipart/form-data"),
    responses(
        (status = 200, description = "The images, as base64 PNG", body = ref("#/components/schemas/Images")),
        FormRouteErrors,
    ),
)]
pub async fn edits(
    State(state): State<Arc<AppState>>,
    form: Result<Multipart, MultipartRejection>,
) -> Result<Json<Value>, ApiError> {
    require_task(&state, ROUTE, &[INPAINTING, TO_IMAGE])?;
    let form = read_form(form.map_err(|e| request::bad("image", e.body_text()))?).await?;
    let image = form
        .image
        .ok_or_else(|| request::bad("image", "'image' (a PNG file) is required"))?;
    let (prompt, params) = job_params(&form.fields, &[PASSED_THROUGH, &[STRENGTH]].concat())?;
    let edit = transparency::plan(&image, form.mask.as_deref())?;
    let mut inputs = vec![Input {
        name: INIT_IMAGE.into(),
        data: image.into(),
    }];
    if let Some(mask) = edit.mask_png {
        inputs.push(Input {
            name: MASK_IMAGE.into(),
            data: mask.into(),
        });
    }
    let model = form.fields.get("model").and_then(Value::as_str);
    let started = start_job(&state, ROUTE, model, edit.task, params, inputs).await?;
    Ok(answer(collect(started.events).await?, &prompt))
}

pub(crate) async fn read_form(mut form: Multipart) -> Result<Form, ApiError> {
    let mut read = Form::default();
    while let Some(field) = form
        .next_field()
        .await
        .map_err(|e| request::bad("image", e.body_text()))?
    {
        let name = field.name().unwrap_or_default().to_string();
        let file = match name.as_str() {
            "image" | "image[]" => Some(&mut read.image),
            "mask" => Some(&mut read.mask),
            _ => None,
        };
        if let Some(slot) = file {
            let field_name = name.trim_end_matches("[]").to_string();
            if slot.is_some() {
                return Err(request::bad(
                    &field_name,
                    format!("give one '{field_name}' file, not several"),
                ));
            }
            let bytes = field
                .bytes()
                .await
                .map_err(|e| request::bad(&field_name, e.body_text()))?;
            *slot = Some(bytes.to_vec());
            continue;
        }
        let text = field
            .text()
            .await
            .map_err(|e| request::bad(&name, e.body_text()))?;
        fields::IMAGE_EDITS.check(&name, &fields::form_value(&text))?;
        let Some(kind) = TEXT_FIELDS
            .iter()
            .find(|(known, _)| *known == name)
            .map(|(_, kind)| *kind)
        else {
            continue;
        };
        let value = parse(&name, kind, &text)?;
        read.fields.insert(name, value);
    }
    Ok(read)
}

fn parse(name: &str, kind: Kind, text: &str) -> Result<Value, ApiError> {
    let text = text.trim();
    match kind {
        Kind::Text => Ok(text.into()),
        Kind::Integer => text
            .parse::<u64>()
            .map(Value::from)
            .map_err(|_| request::bad(name, format!("'{name}' must be a non-negative integer"))),
        Kind::Number => text
            .parse::<f64>()
            .ok()
            .filter(|n| n.is_finite())
            .map(Value::from)
            .ok_or_else(|| request::bad(name, format!("'{name}' must be a number"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_fields_are_typed_and_bad_numbers_refused() {
        assert_eq!(parse("n", Kind::Integer, " 2 ").unwrap(), Value::from(2u64));
        assert_eq!(
            parse("strength", Kind::Number, "0.5").unwrap(),
            Value::from(0.5)
        );
        assert_eq!(
            parse("prompt", Kind::Text, "a cat").unwrap(),
            Value::from("a cat")
        );
        assert!(parse("n", Kind::Integer, "-1").is_err());
        assert!(parse("strength", Kind::Number, "NaN").is_err());
    }

    #[test]
    fn every_field_read_into_the_job_is_one_the_route_implements() {
        for (name, _) in TEXT_FIELDS {
            let field = fields::IMAGE_EDITS.fields.iter().find(|f| f.name == name);
            assert_eq!(
                field.map(|f| f.handling),
                Some(fields::Handling::Implemented),
                "{name}"
            );
        }
    }
}
