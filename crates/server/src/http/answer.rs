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
        let id = &this.request_id;
        let limit = Duration::from_secs(this.state.config.http.request_timeout_secs);
        let polled = poll_within(&mut this.deadline, limit, cx, |cx| {
            telemetry::in_request(id.clone(), || handling.as_mut().poll(cx))
        });
        let (resp, shown) = match polled {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Some(answered)) => {
                this.handling = None;
                answered
            }
            Poll::Ready(None) => {
                // Dropped with the request id in scope, like the polls: whatever its
                // destructors log is logged as this request's.
                let abandoned = this.handling.take();
                telemetry::in_request(this.request_id.clone(), || drop(abandoned));
                (StatusCode::REQUEST_TIMEOUT.into_response(), None)
            }
        };
        Poll::Ready(Ok(this.finish(resp, shown)))
    }
}

/// Polls some work (`poll_work`) and, once it has waited, a timer of `limit` started
/// when it first did (kept in `timer`): `Ready(None)` when the time ran out first.
fn poll_within<T>(
    timer: &mut Option<Pin<Box<Sleep>>>,
    limit: Duration,
    cx: &mut Context<'_>,
    poll_work: impl FnOnce(&mut Context<'_>) -> Poll<T>,
) -> Poll<Option<T>> {
    if let Poll::Ready(done) = poll_work(cx) {
        return Poll::Ready(Some(done));
    }
    let timer = timer.get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
    timer.as_mut().poll(cx).map(|()| None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::poll_fn;
    use std::time::Instant;

    /// Polls `work` within `limit` to the end; whether it finished, and whether the
    /// timer was ever started.
    async fn run<F: Future<Output = ()>>(work: F, limit: Duration) -> (bool, bool) {
        let mut work = Box::pin(work);
        let mut timer = None;
        let finished =
            poll_fn(|cx| poll_within(&mut timer, limit, cx, |cx| work.as_mut().poll(cx)))
                .await
                .is_some();
        (finished, timer.is_some())
    }

    #[tokio::test]
    async fn work_done_at_once_never_starts_the_timer() {
        assert_eq!(run(async {}, Duration::from_millis(1)).await, (true, false));
    }

    #[tokio::test]
    async fn waiting_work_finishes_within_its_time() {
        let work = tokio::time::sleep(Duration::from_millis(20));
        assert_eq!(run(work, Duration::from_secs(5)).await, (true, true));
    }

    #[tokio::test]
    async fn work_that_waits_too_long_is_given_up() {
        let started = Instant::now();
        let work = std::future::pending::<()>();
        assert_eq!(run(work, Duration::from_millis(50)).await, (false, true));
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(50) && waited < Duration::from_secs(5),
            "{waited:?}"
        );
    }
}
