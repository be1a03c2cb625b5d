//! The HTTP server: routes wrapped in the middleware stack.

pub mod client_ip;
pub mod cookie;
pub mod error;
pub mod extract;
pub mod middleware;
pub mod png;
pub mod ratelimit;
pub mod routes;
pub mod state;

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::middleware::from_fn_with_state;
use tower::ServiceBuilder;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::sensitive_headers::SetSensitiveHeadersLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use state::AppState;

fn cors(state: &AppState) -> CorsLayer {
    let c = &state.config.cors;
    let origins: Vec<HeaderValue> = c
        .allowed_origins
        .iter()
        .filter(|o| o.as_str() != "*")
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    let mut layer = CorsLayer::new()
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ])
        .allow_headers([
            header::CONTENT_TYPE,
            header::AUTHORIZATION,
            HeaderName::from_static("x-csrf-token"),
            HeaderName::from_static("x-request-id"),
        ])
        .expose_headers([
            HeaderName::from_static("x-request-id"),
            HeaderName::from_static("ratelimit"),
            HeaderName::from_static("ratelimit-policy"),
            HeaderName::from_static("x-ratelimit-limit"),
            HeaderName::from_static("x-ratelimit-remaining"),
            HeaderName::from_static("x-ratelimit-reset"),
            header::RETRY_AFTER,
        ])
        .max_age(Duration::from_secs(c.max_age_secs));
    if c.allowed_origins.iter().any(|o| o == "*") && !c.allow_credentials {
        layer = layer.allow_origin(AllowOrigin::any());
    } else {
        layer = layer
            .allow_origin(AllowOrigin::list(origins))
            .allow_credentials(c.allow_credentials);
    }
    layer
}

/// Builds the complete application service.
pub fn app(state: AppState) -> Router {
    let body_limit = state.config.http.max_body_bytes;
    let timeout = Duration::from_secs(state.config.http.request_timeout_secs);
    let x_request_id = HeaderName::from_static("x-request-id");
    let routes = routes::router()
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(state.clone());
    // Tenant resolution rewrites the URI, so it must run before routing: it wraps the
    // router as an outer layer rather than a route layer.
    Router::new()
        .fallback_service(routes)
        .layer(
            ServiceBuilder::new()
                .layer(SetSensitiveHeadersLayer::new([
                    header::AUTHORIZATION,
                    header::COOKIE,
                    header::SET_COOKIE,
                    HeaderName::from_static("x-csrf-token"),
                ]))
                .layer(SetRequestIdLayer::new(
                    x_request_id.clone(),
                    middleware::MakeUuidV7,
                ))
                .layer(
                    TraceLayer::new_for_http().make_span_with(|req: &axum::http::Request<_>| {
                        let id = req
                            .headers()
                            .get("x-request-id")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("");
                        // The path only: query strings may carry data we must not log.
                        tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id)
                    }),
                )
                .layer(PropagateRequestIdLayer::new(x_request_id))
                .layer(from_fn_with_state(state.clone(), middleware::finish_response))
                .layer(cors(&state))
                .layer(TimeoutLayer::with_status_code(
                    axum::http::StatusCode::REQUEST_TIMEOUT,
                    timeout,
                ))
                .layer(from_fn_with_state(state, middleware::admit)),
        )
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
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}
