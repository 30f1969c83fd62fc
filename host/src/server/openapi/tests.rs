//! The document against the router and the handlers' own tables.

use super::for_fleet;
use crate::{
    config::HttpSettings,
    fleet::Fleet,
    server::{AppState, app, jobs::SUBMISSION_FIELDS},
    services::metrics::MetricsRegistry,
    worker::testing::echo_model,
};
use axum::{
    body::Body,
    http::{Method, Request, StatusCode},
};
use http_body_util::BodyExt;
use serde_json::Value;
use std::{sync::Arc, time::Duration};
use tower::ServiceExt;

/// A fleet of two echo models, `a` and `b`, neither loaded.
fn fleet() -> Arc<Fleet> {
    let registry = MetricsRegistry::new(false);
    let models = ["a", "b"].map(|id| Arc::new(echo_model(id, false, &registry)));
    Arc::new(Fleet::new(models.into(), None, ".".into(), registry))
}

/// Every `$ref` value inside `value`.
fn references(value: &Value, found: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("$ref", Value::String(target)) => found.push(target.clone()),
                    _ => references(value, found),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| references(item, found)),
        _ => {}
    }
}

#[test]
fn every_reference_resolves_inside_the_document() {
    let document = for_fleet(&fleet());
    let mut found = Vec::new();
    references(&document, &mut found);
    assert!(found.len() > 50, "{found:?}");
    for target in found {
        let pointer = target
            .strip_prefix('#')
            .expect("a reference inside the document");
        assert!(
            document.pointer(pointer).is_some(),
            "{target} does not resolve"
        );
    }
}

#[test]
fn the_job_request_has_the_fields_the_handler_reads_for_each_model() {
    let document = for_fleet(&fleet());
    let variants = document["components"]["schemas"]["JobRequest"]["anyOf"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(
        variants.len(),
        2,
        "named, for each of the two: {variants:?}"
    );
    for variant in variants {
        let mut fields: Vec<&String> = variant["properties"].as_object().unwrap().keys().collect();
        fields.sort();
        let mut known = SUBMISSION_FIELDS.to_vec();
        known.sort();
        assert_eq!(fields, known);
        assert_eq!(variant["additionalProperties"], false);
    }
}

#[tokio::test]
async fn every_documented_operation_is_routed() {
    let fleet = fleet();
    let document = for_fleet(&fleet);
    let http = HttpSettings {
        api_key: None,
        cors_origins: Vec::new(),
        max_body_bytes: 1 << 20,
        unread_timeout: None,
        header_timeout: Duration::from_secs(30),
        body_timeout: Duration::from_secs(60),
    };
    let router = app(Arc::new(AppState::new(fleet, http)));
    let paths = document["paths"].as_object().unwrap();
    assert!(paths.len() >= 18, "{:?}", paths.keys());
    for (path, operations) in paths {
        let uri = path.replace("{id}", "x").replace("{action}", "load");
        for method in operations.as_object().unwrap().keys() {
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let request = Request::builder()
                .method(method.clone())
                .uri(&uri)
                .body(Body::empty())
                .unwrap();
            let response = router.clone().oneshot(request).await.unwrap();
            let status = response.status();
            let bytes = response.into_body().collect().await.unwrap().to_bytes();
            let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
            assert_ne!(body["error"]["message"], "no such route", "{method} {path}");
        }
    }
}
