//! The HTTP server: routes wrapped in the middleware stack.

pub mod client_ip;
pub mod cookie;
pub mod cors;
pub mod error;
pub mod extract;
pub mod middleware;
pub mod png;
pub mod ratelimit;
pub mod routes;
pub mod state;

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::middleware::from_fn_with_state;
use tower::ServiceBuilder;
use tower_http::timeout::TimeoutLayer;

use state::AppState;

/// Builds the complete application service: the routes wrapped in few layers, on
/// purpose, since each costs every request a boxed future and a clone of everything
/// below it. Tenant resolution rewrites the URI, so it wraps the router rather than
/// being a route layer.
pub fn app(
    state: AppState,
) -> impl tower::Service<
    axum::extract::Request,
    Response = axum::response::Response,
    Error = std::convert::Infallible,
    Future = impl Send + 'static,
> + Clone
+ Send
+ Sync
+ 'static {
    let body_limit = state.config.http.max_body_bytes;
    let timeout = Duration::from_secs(state.config.http.request_timeout_secs);
    let routes = routes::router()
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(state.clone());
    ServiceBuilder::new()
        .layer(from_fn_with_state(state.clone(), middleware::frame))
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            timeout,
        ))
        .layer(from_fn_with_state(state, middleware::admit))
        .service(routes)
}

/// Serves until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = app(state);
    axum::serve(
        listener,
        axum::ServiceExt::<axum::extract::Request>::into_make_service_with_connect_info::<SocketAddr>(app),
    )
    .with_graceful_shutdown(shutdown)
    .await
}
