//! The playground: a single page, built into the binary, that drives any worker type through
//! the API (its forms come from each plugin's parameter schema). Its files need no key: the
//! page asks for the key and sends it on every API call.

use super::ApiError;
use axum::{
    Router,
    extract::Path,
    http::header,
    response::{IntoResponse, Response},
    routing::get,
};

/// One of the page's files: its name under `/ui/`, its media type and its contents.
struct Asset {
    name: &'static str,
    media_type: &'static str,
    body: &'static str,
}

const JS: &str = "text/javascript; charset=utf-8";

/// Every file of the page, embedded at compile time.
const ASSETS: &[Asset] = &[
    Asset {
        name: "index.html",
        media_type: "text/html; charset=utf-8",
        body: include_str!("index.html"),
    },
    Asset {
        name: "style.css",
        media_type: "text/css; charset=utf-8",
        body: include_str!("style.css"),
    },
    Asset {
        name: "app.js",
        media_type: JS,
        body: include_str!("app.js"),
    },
    Asset {
        name: "api.js",
        media_type: JS,
        body: include_str!("api.js"),
    },
    Asset {
        name: "form.js",
        media_type: JS,
        body: include_str!("form.js"),
    },
    Asset {
        name: "snippets.js",
        media_type: JS,
        body: include_str!("snippets.js"),
    },
    Asset {
        name: "dom.js",
        media_type: JS,
        body: include_str!("dom.js"),
    },
    Asset {
        name: "chat.js",
        media_type: JS,
        body: include_str!("chat.js"),
    },
    Asset {
        name: "image.js",
        media_type: JS,
        body: include_str!("image.js"),
    },
    Asset {
        name: "audio.js",
        media_type: JS,
        body: include_str!("audio.js"),
    },
    Asset {
        name: "embed.js",
        media_type: JS,
        body: include_str!("embed.js"),
    },
    Asset {
        name: "events.js",
        media_type: JS,
        body: include_str!("events.js"),
    },
];

/// Same-origin only: no CDN, no inline script, no framing. Images and audio may be `data:` and
/// `blob:` URLs (results and uploads).
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; img-src 'self' data: blob:; \
    media-src 'self' data: blob:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; \
    form-action 'none'";

/// The page's routes: `GET /`, `GET /ui/` and `GET /ui/{file}`.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(index))
        .route("/ui/", get(index))
        .route("/ui/{file}", get(file))
}

/// Whether `path` is one of the page's (the auth middleware lets these through without a key).
pub fn is_page(path: &str) -> bool {
    path == "/"
        || path
            .strip_prefix("/ui/")
            .is_some_and(|file| !file.contains('/'))
}

async fn index() -> Response {
    serve("index.html")
}

async fn file(Path(name): Path<String>) -> Response {
    serve(&name)
}

fn serve(name: &str) -> Response {
    let Some(asset) = ASSETS.iter().find(|asset| asset.name == name) else {
        return ApiError::not_found("no such playground file").into_response();
    };
    (
        [
            (header::CONTENT_TYPE, asset.media_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        asset.body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::{body::Body, http::Request, http::StatusCode};
    use tower::ServiceExt;

    async fn get(uri: &str) -> Response {
        let request = Request::get(uri).body(Body::empty()).unwrap();
        routes::<()>().oneshot(request).await.unwrap()
    }

    #[tokio::test]
    async fn the_page_and_its_files_are_served_with_their_media_types() {
        for (uri, media_type) in [
            ("/", "text/html; charset=utf-8"),
            ("/ui/", "text/html; charset=utf-8"),
            ("/ui/style.css", "text/css; charset=utf-8"),
            ("/ui/app.js", JS),
        ] {
            let response = get(uri).await;
            assert_eq!(response.status(), StatusCode::OK, "{uri}");
            assert_eq!(
                response.headers()[header::CONTENT_TYPE],
                media_type,
                "{uri}"
            );
        }
        assert_eq!(get("/ui/missing.js").await.status(), StatusCode::NOT_FOUND);
    }

    /// The file names `body` refers to: `from "./x.js"` imports and `"/ui/x"` links.
    fn references(body: &str) -> Vec<&str> {
        ["from \"./", "\"/ui/"]
            .iter()
            .flat_map(|opening| {
                body.match_indices(opening).map(|(at, _)| {
                    let rest = &body[at + opening.len()..];
                    &rest[..rest.find('"').unwrap()]
                })
            })
            .collect()
    }

    #[test]
    fn every_file_the_page_refers_to_is_served_and_every_served_file_is_used() {
        let used: Vec<&str> = ASSETS.iter().flat_map(|a| references(a.body)).collect();
        for name in &used {
            assert!(
                ASSETS.iter().any(|a| a.name == *name),
                "{name} is not served"
            );
        }
        for asset in ASSETS.iter().filter(|a| a.name != "index.html") {
            assert!(used.contains(&asset.name), "nothing uses {}", asset.name);
        }
    }

    #[test]
    fn only_the_page_s_own_paths_are_pages() {
        for open in ["/", "/ui/", "/ui/app.js"] {
            assert!(is_page(open), "{open}");
        }
        for guarded in ["/ui", "/uix/app.js", "/ui/../v1/info", "/v1/info", "//"] {
            assert!(!is_page(guarded), "{guarded}");
        }
    }
}
