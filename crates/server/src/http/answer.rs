//! The future of one request's answer, as the frame hands it to hyper: it runs the
//! admitted request (tenant, rate limits, routes) with the request id in scope for
//! every log line, enforces the request timeout, and finishes the answer (error bodies
//! stamped with the request id, the answer's headers, CORS).
//!
//! A named future rather than an `async` block, so the frame's service can return it
//! without boxing it (hyper keeps it in the connection's state), and so the request
//! timeout costs nothing until the request first waits: the usual session check is
//! answered in its first poll and never touches the timer (a `tokio::time::timeout`
//! reads the clock and builds its timer entry for every request).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio::time::Sleep;

use super::error::ErrorBody;
use super::ratelimit::Shown;
use super::state::AppState;
use crate::telemetry;

/// The admitted request: its answer and the rate-limit decision the answer shows.
pub type Handling = Pin<Box<dyn Future<Output = (Response, Option<Shown>)> + Send>>;

/// See the module doc.
pub struct Answer {
    state: AppState,
    handling: Option<Handling>,
    request_id: HeaderValue,
    /// The request's `Origin`, kept only when CORS is configured.
    origin: Option<HeaderValue>,
    /// Started when the request first waits.
    deadline: Option<Pin<Box<Sleep>>>,
    /// An answer complete before any waiting (a CORS preflight).
    ready: Option<Response>,
}

impl Answer {
    pub fn new(
        state: AppState,
        handling: Handling,
        request_id: HeaderValue,
        origin: Option<HeaderValue>,
    ) -> Answer {
        Answer {
            state,
            handling: Some(handling),
            request_id,
            origin,
            deadline: None,
            ready: None,
        }
    }

    /// An answer already complete.
    pub fn ready(state: AppState, resp: Response) -> Answer {
        Answer {
            state,
            handling: None,
            request_id: HeaderValue::from_static(""),
            origin: None,
            deadline: None,
            ready: Some(resp),
        }
    }

    /// The request id in error bodies, then the answer's headers: the template's, the
    /// rate-limit values, the request id, the handler's own (see `AnswerHeaders`), and
    /// CORS.
    fn finish(&mut self, mut resp: Response, shown: Option<Shown>) -> Response {
        let request_id = std::mem::replace(&mut self.request_id, HeaderValue::from_static(""));
        if let Some(mut body) = resp.extensions_mut().remove::<ErrorBody>() {
            body.request_id = request_id.to_str().ok().map(str::to_string);
            if let Ok(bytes) = serde_json::to_vec(&body) {
                resp.headers_mut()
                    .insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
                *resp.body_mut() = Body::from(bytes);
            }
        }
        let state = &self.state;
        let limits = shown.and_then(|s| s.headers(state));
        let handler = std::mem::take(resp.headers_mut());
        let mut answer = state.answer_headers.assemble(limits, request_id, handler);
        state.cors.decorate(self.origin.as_ref(), &mut answer);
        *resp.headers_mut() = answer;
        resp
    }
}

impl Future for Answer {
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // Every field is `Unpin` (the handling and the timer are boxed).
        let this = self.get_mut();
        if let Some(resp) = this.ready.take() {
            return Poll::Ready(Ok(resp));
        }
        let Some(handling) = this.handling.as_mut() else {
            // Polled after completion: hyper never does; answer something valid.
            return Poll::Ready(Ok(StatusCode::INTERNAL_SERVER_ERROR.into_response()));
        };
        let polled = telemetry::in_request(this.request_id.clone(), || handling.as_mut().poll(cx));
        if let Poll::Ready((resp, shown)) = polled {
            this.handling = None;
            return Poll::Ready(Ok(this.finish(resp, shown)));
        }
        let limit = Duration::from_secs(this.state.config.http.request_timeout_secs);
        let deadline = this
            .deadline
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match deadline.as_mut().poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(()) => {
                // Dropped with the request id in scope, like the polls: whatever its
                // destructors log is logged as this request's.
                let abandoned = this.handling.take();
                telemetry::in_request(this.request_id.clone(), || drop(abandoned));
                let timed_out = StatusCode::REQUEST_TIMEOUT.into_response();
                Poll::Ready(Ok(this.finish(timed_out, None)))
            }
        }
    }
}
