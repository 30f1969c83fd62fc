//! The router in-process, without a plugin: the worker stays loading (or is made to fail or
//! drain), which is all the routes below need.

use super::{AppState, app};
use crate::{
    config::HttpSettings,
    fleet::Fleet,
    services::metrics::MetricsRegistry,
    worker::{
        WorkerState,
        testing::{echo_model, idle_worker},
    },
};
use axum::{
    Router,
    body::Body,
    http::{HeaderMap, Method, Request, StatusCode, header},
};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use std::sync::Arc;
use tower::ServiceExt;

/// A pinned echo model still loading at start-up (as with `--plugin`), and the router in
/// front of it.
fn loading(api_key: Option<&str>) -> (Arc<WorkerState>, Router) {
    let registry = MetricsRegistry::new(false);
    let worker = Arc::new(echo_model("tiny", true, &registry));
    worker.readiness.start_loading();
    let fleet = Fleet::new(vec![worker.clone()], None, ".".into(), registry);
    let http = HttpSettings {
        api_key: api_key.map(str::to_string),
        cors_origins: Vec::new(),
        max_body_bytes: 1 << 20,
        unread_timeout: None,
        header_timeout: std::time::Duration::from_secs(30),
        body_timeout: std::time::Duration::from_secs(60),
    };
    let router = app(Arc::new(AppState::new(Arc::new(fleet), http)));
    (worker, router)
}

fn get(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).unwrap()
}

fn post_json(uri: &str, body: &str) -> Request<Body> {
    Request::builder()
        .method(Method::POST)
        .uri(uri)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

/// Sends one request: the status, the headers and the body as JSON (`null` if it is not).
async fn send(router: &Router, request: Request<Body>) -> (StatusCode, HeaderMap, Value) {
    let response = router.clone().oneshot(request).await.unwrap();
    let (status, headers) = (response.status(), response.headers().clone());
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, headers, body)
}

#[tokio::test]
async fn health_is_ok_while_loading() {
    let (_, router) = loading(None);
    let (status, _, body) = send(&router, get("/health")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"status": "ok"}));
}

#[tokio::test]
async fn ready_is_503_with_the_load_progress() {
    let (worker, router) = loading(None);
    let (status, _, body) = send(&router, get("/ready")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        body,
        json!({"status": "loading", "progress": 0.0, "message": "starting", "models": {"tiny": "loading"}})
    );
    worker.readiness.progress(0.5, "downloading");
    let (status, _, body) = send(&router, get("/ready")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        body,
        json!({"status": "loading", "progress": 0.5, "message": "downloading", "models": {"tiny": "loading"}})
    );
}

#[tokio::test]
async fn an_unknown_route_is_a_404_json_error() {
    let (_, router) = loading(None);
    let (status, _, body) = send(&router, get("/v2/nothing")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        body,
        json!({"error": {"code": "not_found", "message": "no such route"}})
    );
}

#[tokio::test]
async fn a_job_submitted_while_loading_is_a_retryable_503() {
    let (_, router) = loading(None);
    let request = post_json("/v1/jobs", r#"{"task": "echo", "params": {}}"#);
    let (status, headers, body) = send(&router, request).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(headers[header::RETRY_AFTER], "2");
    assert_eq!(body["error"]["code"], "loading");
}

#[tokio::test]
async fn a_pinned_model_loading_again_after_start_up_queues_jobs_instead_of_a_503() {
    let (worker, router) = loading(None);
    worker.readiness.ready(idle_worker());
    let unload = post_json("/v1/models/tiny/unload", "");
    assert_eq!(send(&router, unload).await.0, StatusCode::OK);
    worker.readiness.start_loading();
    let submit = post_json("/v1/jobs", r#"{"task": "echo", "params": {"text": "hi"}}"#);
    let (status, _, answer) = send(&router, submit).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
}

#[tokio::test]
async fn a_job_submitted_while_draining_or_after_a_failed_load_is_a_503() {
    let (worker, router) = loading(None);
    worker.readiness.drain();
    let (status, headers, body) = send(&router, post_json("/v1/jobs", r#"{"task": "echo"}"#)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(headers[header::RETRY_AFTER], "5");
    assert_eq!(body["error"]["code"], "draining");

    let (worker, router) = loading(None);
    worker.readiness.fail("no weights".into());
    let (status, headers, body) = send(&router, post_json("/v1/jobs", r#"{"task": "echo"}"#)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(headers.get(header::RETRY_AFTER).is_none());
    assert_eq!(
        body,
        json!({"error": {"code": "failed", "message": "no weights"}})
    );
    let (status, _, body) = send(&router, get("/ready")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        body,
        json!({"status": "failed", "message": "no weights", "models": {"tiny": "failed"}})
    );
}

#[tokio::test]
async fn a_bad_job_body_is_a_400_naming_the_field() {
    let (_, router) = loading(None);
    for (body, field) in [
        (r#"{"params": {}}"#, "task"),
        (r#"{"task": "paint"}"#, "task"),
        (r#"{"task": "echo", "params": [1]}"#, "params"),
        (r#"{"task": "echo", "timeout": -1}"#, "timeout"),
        ("not json", "body"),
    ] {
        let (status, _, answer) = send(&router, post_json("/v1/jobs", body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
        assert_eq!(answer["error"]["code"], "invalid_request", "{body}");
        assert_eq!(answer["error"]["field"], field, "{body}");
    }
    let (_, _, answer) = send(&router, post_json("/v1/jobs", r#"{"task": "paint"}"#)).await;
    assert_eq!(
        answer["error"]["message"],
        "task 'paint' is not served here; the tasks served are: echo"
    );
}

#[tokio::test]
async fn the_api_key_guards_every_route_but_the_probes() {
    let (_, router) = loading(Some("sesame"));
    let (status, headers, body) = send(&router, get("/v1/info")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(headers[header::WWW_AUTHENTICATE], "Bearer");
    assert_eq!(body["error"]["code"], "invalid_api_key");
    assert_eq!(body["error"]["type"], "authentication_error");

    let wrong = Request::get("/v1/info")
        .header(header::AUTHORIZATION, "Bearer open")
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&router, wrong).await.0, StatusCode::UNAUTHORIZED);
    let right = Request::get("/v1/info")
        .header(header::AUTHORIZATION, "Bearer sesame")
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&router, right).await.0, StatusCode::OK);

    assert_eq!(send(&router, get("/health")).await.0, StatusCode::OK);
    assert_eq!(
        send(&router, get("/ready")).await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(send(&router, get("/metrics")).await.0, StatusCode::OK);
}

#[tokio::test]
async fn info_shows_the_plugin_the_state_the_queue_and_the_slots() {
    let (worker, router) = loading(None);
    let (status, _, body) = send(&router, get("/v1/info")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["plugin"]["id"], "echo-cpu");
    assert_eq!(body["plugin"]["tasks"], json!(["echo"]));
    assert_eq!(body["plugin"]["default_model"], "tiny");
    assert_eq!(body["model"], "");
    assert_eq!(body["device"], "cpu");
    assert_eq!(body["state"]["status"], "loading");
    assert_eq!(body["worker"], Value::Null);
    assert_eq!(body["queue"], json!({"waiting": 0, "running": 0}));
    assert_eq!(body["slots"], 0, "unknown until loaded");
    assert_eq!(
        body["models"][0]["params_schema"], body["plugin"]["params_schema"],
        "each model carries its plugin's schema, for forms"
    );
    worker.loaded((0..3).map(|_| std::thread::spawn(|| {})).collect(), 0);
    let (_, _, body) = send(&router, get("/v1/info")).await;
    assert_eq!(body["slots"], 3);
}

#[tokio::test]
async fn an_unknown_job_is_a_404() {
    let (_, router) = loading(None);
    let (status, _, body) = send(&router, get("/v1/jobs/job-missing")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["message"], "no job 'job-missing'");
}

#[tokio::test]
async fn time_limits_beyond_thirty_days_are_400_not_a_panic() {
    let (_, router) = loading(None);
    for timeout in ["1e20", "2e19", "18446744073709551616", "2592001"] {
        let body = format!(r#"{{"task": "echo", "timeout": {timeout}}}"#);
        let (status, _, answer) = send(&router, post_json("/v1/jobs", &body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{timeout}: {answer}");
        assert_eq!(answer["error"]["field"], "timeout", "{timeout}");
    }
    let mut request = post_json("/v1/jobs", r#"{"task": "echo"}"#);
    request
        .headers_mut()
        .insert("x-deadline", "1e20".parse().unwrap());
    let (status, _, answer) = send(&router, request).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(answer["error"]["field"], "X-Deadline");
}

#[tokio::test]
async fn unknown_submission_fields_are_400_and_long_names_are_cut() {
    let (_, router) = loading(None);
    let (status, _, answer) = send(
        &router,
        post_json("/v1/jobs", r#"{"task": "echo", "text": "hi"}"#),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(answer["error"]["field"], "text");
    let long = "k".repeat(100_000);
    let body = format!(r#"{{"task": "echo", "{long}": 1}}"#);
    let (status, _, answer) = send(&router, post_json("/v1/jobs", &body)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        answer.to_string().len() < 1000,
        "{} bytes",
        answer.to_string().len()
    );
}

#[tokio::test]
async fn errors_made_outside_the_handlers_have_the_json_error_shape() {
    let (_, router) = loading(None);
    let (status, headers, answer) = send(&router, get("/v1/jobs")).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(answer["error"]["code"], "method_not_allowed", "{answer}");
    assert!(headers.contains_key(header::ALLOW));
    let (status, _, answer) = send(&router, get("/v1/jobs/%FF")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(answer["error"]["message"].is_string(), "{answer}");
}

#[tokio::test]
async fn a_wrong_method_on_a_model_path_names_the_methods_of_that_path() {
    let (_, router) = loading(None);
    let request = |method: Method, uri: &str| {
        Request::builder()
            .method(method)
            .uri(uri)
            .body(Body::empty())
            .unwrap()
    };
    for (method, uri, allow) in [
        (Method::OPTIONS, "/v1/models/tiny", "GET,HEAD"),
        (Method::POST, "/v1/models/tiny", "GET,HEAD"),
        (Method::DELETE, "/v1/models/tiny/load", "POST"),
        (Method::GET, "/v1/models/tiny/unload", "POST"),
    ] {
        let (status, headers, answer) = send(&router, request(method.clone(), uri)).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {uri}");
        assert_eq!(headers[header::ALLOW], allow, "{method} {uri}");
        assert_eq!(answer["error"]["code"], "method_not_allowed");
    }
    let (status, _, _) = send(&router, request(Method::GET, "/v1/models/other/load")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "no model 'other'");
}

#[tokio::test]
async fn an_upload_to_a_route_the_plugin_does_not_serve_is_refused_before_it_is_read() {
    let (_, router) = loading(None);
    for uri in ["/v1/audio/transcriptions", "/v1/images/edits"] {
        let request = Request::builder()
            .method(Method::POST)
            .uri(uri)
            .header(
                header::CONTENT_TYPE,
                "multipart/form-data; boundary=never-read",
            )
            .body(Body::from("not even a valid form"))
            .unwrap();
        let (status, _, answer) = send(&router, request).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{uri}: {answer}");
        assert_eq!(answer["error"]["code"], "unsupported_route", "{uri}");
    }
}
