//! `GET /openapi.json`: the OpenAPI 3.1 document of every route, native and OpenAI-compatible.
//! utoipa generates it from the `#[utoipa::path]` attribute on each handler and from the types
//! the handlers read and answer with (the error bodies, the submit answer, the query); what
//! depends on the models this host serves is added on each request: every model's job
//! parameters from its plugin's manifest ([`params`]), the `POST /v1/jobs` body built on them
//! ([`job_request`]), and the OpenAI request bodies from the routes' field tables.

mod answers;
mod job_request;
pub mod params;
#[cfg(test)]
mod tests;

use super::{AppState, error, jobs, models, openai, status, stream};
use crate::fleet::Fleet;
use axum::{Json, extract::State};
use serde_json::Value;
use std::sync::Arc;
use utoipa::OpenApi;

/// The native routes, the error bodies, and the document's description.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "rbee-host",
        description = "An inference host serving plugins: native jobs with Server-Sent Events, and OpenAI-compatible routes for the tasks its models serve. Errors are `{\"error\": {\"code\", \"message\", \"field\"}}` on native routes and OpenAI's `{\"error\": {\"message\", \"type\", \"param\", \"code\"}}` on the OpenAI ones."
    ),
    paths(
        status::health,
        status::ready,
        status::metrics,
        status::info,
        jobs::submit,
        jobs::get,
        jobs::cancel,
        stream::stream,
        models::show,
        models::act,
        document,
    ),
    components(schemas(error::ErrorBody, error::OpenAiErrorBody)),
    tags(
        (name = "jobs", description = "Native jobs: submit, stream, inspect, cancel"),
        (name = "models", description = "What this host serves, loading and unloading"),
        (name = "openai", description = "OpenAI-compatible routes, for the tasks the models serve"),
        (name = "operations", description = "Probes, metrics and this document"),
    )
)]
struct ApiDoc;

/// `GET /openapi.json`: this host's OpenAPI document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    operation_id = "openapi",
    tag = "operations",
    responses((status = 200, description = "This document (OpenAPI 3.1)", body = Object)),
)]
pub async fn document(State(state): State<Arc<AppState>>) -> Json<Value> {
    Json(for_fleet(state.fleet()))
}

/// The document for the models of `fleet`.
pub fn for_fleet(fleet: &Fleet) -> Value {
    let mut api = ApiDoc::openapi();
    api.merge(openai::Doc::openapi());
    let mut document = serde_json::to_value(api).expect("an OpenAPI document serializes");
    let schemas = &mut document["components"]["schemas"];
    let fixed = answers::schemas()
        .into_iter()
        .map(|(n, s)| (n.to_string(), s));
    let requests = openai::request_schemas(fleet)
        .into_iter()
        .map(|(n, s)| (n.to_string(), s));
    let job = ("JobRequest".to_string(), job_request::schema(fleet));
    for (name, schema) in fixed
        .chain(requests)
        .chain(params::schemas(fleet))
        .chain([job])
    {
        schemas[name] = schema;
    }
    document
}
