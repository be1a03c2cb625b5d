//! The HTTP server: routes wrapped in the middleware stack.

pub mod answer;
pub mod answer_headers;
pub mod checks;
pub mod client_ip;
pub mod cookie;
pub mod cors;
pub mod error;
pub mod extract;
pub mod middleware;
pub mod png;
pub mod ratelimit;
pub mod request_id;
pub mod routes;
pub mod state;
pub mod tenant;

use axum::extract::DefaultBodyLimit;
use tower::Layer;

use state::AppState;

/// Builds the complete application service: the routes inside one middleware
/// (`middleware::Frame`). Tenant resolution rewrites the URI, so the middleware wraps
/// the router as a service rather than being a route layer.
pub fn app(state: AppState) -> middleware::Frame<impl middleware::Routes> {
    // The body limit wraps the router as a whole: as a router layer it would wrap
    // every route, and every request would pay for one more boxed service and future.
    let body_limit = DefaultBodyLimit::max(state.config.http.max_body_bytes);
    let routes = body_limit.layer(routes::router().with_state(state.clone()));
    middleware::Frame::new(state, routes)
}

/// Serves until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app(state).per_connection())
        .with_graceful_shutdown(shutdown)
        .await
}
