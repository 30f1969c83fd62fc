//! Accepting connections and serving the router on each over HTTP/1.1 (what every client of
//! this API speaks), with the limits `axum::serve` lacks:
//! a client must send its request headers within a time limit (slow or idle sockets are
//! closed, so they cannot hold file descriptors or the shutdown), and once stopping, open
//! connections get a bounded time to finish before they are closed.

use axum::{Router, extract::Request};
use hyper::{body::Incoming, server::conn::http1};
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    server::graceful::GracefulShutdown,
    service::TowerToHyperService,
};
use std::{future::Future, time::Duration};
use tokio::net::TcpListener;
use tower::ServiceExt;

/// How long accepting waits after an error (such as running out of file descriptors).
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

/// The most header fields hyper reads in a request, well above the API's own limit (100), so
/// that the router answers requests between the two with its JSON 431 rather than hyper with an
/// empty one. hyper's other limits on a request head are its read buffer (about 400 KB) and a
/// request target of 64 KiB, both also well above the API's.
const HYPER_MAX_HEADERS: usize = 1000;

/// Serves `app` on `listener` until `stop` resolves; then stops accepting, lets the open
/// connections end their requests for up to `close_grace`, and closes the rest. A connection
/// whose request headers take longer than `header_timeout` (including an idle keep-alive
/// connection) is closed.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    header_timeout: Duration,
    close_grace: Duration,
    stop: impl Future<Output = ()>,
) {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .max_headers(HYPER_MAX_HEADERS);
    let graceful = GracefulShutdown::new();
    let mut stop = std::pin::pin!(stop);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    tracing::warn!("accepting a connection failed: {error}");
                    tokio::time::sleep(ACCEPT_RETRY).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        let service = app
            .clone()
            .map_request(|request: Request<Incoming>| request.map(axum::body::Body::new));
        let connection =
            builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!("connection ended: {error}");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(close_grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("closing connections still open after {close_grace:?}");
    }
}
