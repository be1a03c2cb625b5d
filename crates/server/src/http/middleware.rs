//! The one middleware around the routes ([`Frame`]): request ids, CORS, the request
//! timeout, admission (tenant resolution with `/t/{slug}` prefix rewriting, rate limits,
//! the Origin / Sec-Fetch-Site check for unsafe methods), security headers, and error
//! bodies stamped with the request id.

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::net::SocketAddr;
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::http::{HeaderMap, Method, header};
use axum::response::{IntoResponse, Response};
use axum::serve::IncomingStream;
use tokio::net::TcpListener;
use tower::{Service, ServiceExt};

use aegis_core::ratelimit::{Micros, now_micros};

use super::answer::Answer;
use super::checks::IdentityCheck;
use super::cors::Cors;
use super::error::ApiError;
use super::extract::{CSRF_HEADER, RequestContext, bearer_token};
use super::ratelimit::{self, Shown};
use super::request_id::{X_REQUEST_ID, acceptable_request_id, new_request_id};
use super::state::AppState;
use super::tenant;

/// Admission, in order: the tenant (from a `/t/{slug}` prefix, else the `Host` header,
/// else the default tenant; the prefix is stripped so routes are the same for every
/// tenant), the rate limits (whose keys may name the tenant), then the origin check of
/// unsafe methods; then the identity checks (see `checks`) or the routes. The answer
/// comes with the rate-limit decision to show in its headers, if a rule applied and
/// admitted the request.
/// `now` is when the request arrived (Unix microseconds), `peer` the connection's.
async fn admit<S: Routes>(
    state: AppState,
    mut req: Request,
    routes: S,
    now: Micros,
    peer: Option<SocketAddr>,
) -> (Response, Option<Shown>) {
    let now_ms = now / 1000;
    let state = &state;
    match tenant::resolve(state, &mut req, now_ms).await {
        Ok(tenant) => req.extensions_mut().insert(RequestContext {
            peer,
            tenant,
            now: now_ms,
        }),
        Err(e) => return (e.into_response(), None),
    };
    let shown = match ratelimit::admit(state, &mut req, now).await {
        Ok(shown) => shown,
        Err(refused) => return (refused, None),
    };
    let resp = if is_unsafe(req.method()) && !origin_allowed(state, &req) {
        tracing::warn!(target: "aegis::security", event = "csrf_failure", "cross-origin unsafe request refused");
        metrics::counter!("aegis_csrf_failures_total", "check" => "origin").increment(1);
        ApiError::Forbidden("cross-origin request refused: the Origin is not allowed".into())
            .into_response()
    } else if let Some(check) = IdentityCheck::of(req.method(), req.uri().path()) {
        check.answer(state, req).await
    } else {
        // `ready` and `call` rather than `oneshot`, which would keep the request in
        // this future beside the routes' own.
        let mut routes = routes;
        let answered = match routes.ready().await {
            Ok(routes) => routes.call(req).await,
            Err(never) => match never {},
        };
        match answered {
            Ok(resp) => resp,
            Err(never) => match never {},
        }
    };
    (resp, shown)
}

fn is_unsafe(m: &Method) -> bool {
    !matches!(
        *m,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    )
}

/// Whether an unsafe request may proceed: from an allowed or the same origin, or
/// without ambient credentials. Requests with a bearer token and no session cookie are
/// exempt.
fn origin_allowed(state: &AppState, req: &Request) -> bool {
    let headers = req.headers();
    if bearer_token(headers).is_some() && state.cookie.read(headers).is_none() {
        return true;
    }
    if let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        if state
            .config
            .cors
            .allowed_origins
            .iter()
            .any(|o| o == origin)
        {
            return true;
        }
        let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
        let authority = origin
            .strip_prefix("https://")
            .or_else(|| origin.strip_prefix("http://"));
        return matches!((authority, host), (Some(a), Some(h)) if a.eq_ignore_ascii_case(h));
    }
    match headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        Some("cross-site") | Some("same-site") => false,
        _ => true, // no browser signals: a non-browser client without ambient intent
    }
}

/// Request headers that carry credentials: marked sensitive, so any debug output of a
/// request shows them as `Sensitive`. One pass over the request's headers (a lookup per
/// name hashed each name for every request).
fn mark_request_sensitive(headers: &mut axum::http::HeaderMap) {
    for (name, value) in headers.iter_mut() {
        if *name == header::AUTHORIZATION || *name == header::COOKIE || *name == CSRF_HEADER {
            value.set_sensitive(true);
        }
    }
}

/// The one middleware around the routes, as a service wrapping the router: credential
/// headers marked sensitive, the request id (the client's, or a new one) on the
/// request, the answer and every log line of the request, CORS (preflights answered
/// here), the request timeout, admission (tenant, rate limits, origin check), then on
/// the way out the rate-limit and CORS headers, the request id in error bodies and the
/// security headers (the way out, and the timeout, are the [`Answer`]'s). Written as a
/// plain service rather than the layers it replaces (or axum's `from_fn`): each layer
/// cost every request a boxed future and a clone of the whole stack below it.
#[derive(Clone)]
pub struct Frame<S> {
    state: AppState,
    routes: S,
    /// The peer of the connection this frame serves (see [`PerConnection`]).
    peer: Option<SocketAddr>,
}

/// What the frame wraps: the router (with its body limit).
pub trait Routes:
    Service<Request, Response = Response, Error = Infallible, Future: Send> + Clone + Send + 'static
{
}

impl<S> Routes for S where
    S: Service<Request, Response = Response, Error = Infallible, Future: Send>
        + Clone
        + Send
        + 'static
{
}

impl<S: Routes> Frame<S> {
    pub fn new(state: AppState, routes: S) -> Frame<S> {
        Frame {
            state,
            routes,
            peer: None,
        }
    }

    /// Makes a frame for each accepted connection, knowing its peer: the address goes
    /// into the one extension the frame adds to a request (`RequestContext`), rather
    /// than into an extension of its own per request.
    pub fn per_connection(self) -> PerConnection<S> {
        PerConnection(self)
    }
}

/// The make-service that gives each connection its [`Frame`].
#[derive(Clone)]
pub struct PerConnection<S>(Frame<S>);

impl<S: Routes> Service<IncomingStream<'_, TcpListener>> for PerConnection<S> {
    type Response = Frame<S>;
    type Error = Infallible;
    type Future = Ready<Result<Frame<S>, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, connection: IncomingStream<'_, TcpListener>) -> Self::Future {
        let mut frame = self.0.clone();
        frame.peer = Some(*connection.remote_addr());
        ready(Ok(frame))
    }
}

impl<S: Routes> Service<Request> for Frame<S> {
    type Response = Response;
    type Error = Infallible;
    type Future = Answer;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    /// The frame's work for one request, up to where it waits: the rest is the
    /// [`Answer`]'s. Never fails: every error is an answer.
    fn call(&mut self, mut req: Request) -> Answer {
        mark_request_sensitive(req.headers_mut());
        // One clock reading for the request id, the tenant cache and the rate limits.
        let now = now_micros();
        // Handlers read the id from the task (`telemetry::request_id`), not from the
        // request, so a client's unusable id needs no rewriting there.
        let request_id = match req.headers().get(X_REQUEST_ID) {
            Some(id) if acceptable_request_id(id) => id.clone(),
            _ => new_request_id(now / 1000),
        };
        let state = &self.state;
        if Cors::is_preflight(req.method(), req.headers()) {
            let mut resp = axum::http::StatusCode::OK.into_response();
            let mut answer = state
                .answer_headers
                .assemble(None, request_id, HeaderMap::new());
            state.cors.preflight(req.headers(), &mut answer);
            *resp.headers_mut() = answer;
            return Answer::ready(state.clone(), resp);
        }
        let origin = match state.cors.enabled() {
            true => req.headers().get(header::ORIGIN).cloned(),
            false => None,
        };
        let handling = Box::pin(admit(
            state.clone(),
            req,
            self.routes.clone(),
            now,
            self.peer,
        ));
        Answer::new(state.clone(), handling, request_id, origin)
    }
}
