//! The identity checks, `GET`/`HEAD /api/v1/session` and `/api/v1/forward-auth`,
//! answered by the frame itself rather than through the router.
//!
//! These two are what a gateway does for every request of the apps behind it (a proxy
//! asks forward-auth before each request it passes on; an app asks who is calling),
//! so they are the hot path, and after admission there is nothing left for a router
//! to decide. The router's dispatch for them (route lookup, the method router, a
//! boxed clone of the handler, two boxed futures, the path-parameter and body-limit
//! request extensions, the `Content-Length` pass) cost about 8 % of a check's CPU
//! time (`bench/session.sh`, cpu x).
//! The answers are the routed handlers' own ([`auth::session`], [`forward_auth::check`])
//! with the same extractors; the routes stay in the route table for the other
//! methods' 405 answers (with `Allow`). hyper sends no body in answer to `HEAD`.

use axum::extract::{FromRequestParts, Request};
use axum::http::Method;
use axum::response::{IntoResponse, Response};

use super::extract::{Authed, CurrentTenant};
use super::routes::{auth, forward_auth};
use super::state::AppState;

/// One of the identity checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdentityCheck {
    /// `GET /api/v1/session`
    Session,
    /// `GET /api/v1/forward-auth`
    ForwardAuth,
}

impl IdentityCheck {
    pub const ALL: [IdentityCheck; 2] = [IdentityCheck::Session, IdentityCheck::ForwardAuth];

    /// The check's path (in the route table and the default rate-limit rule's
    /// exceptions too).
    pub const fn path(self) -> &'static str {
        match self {
            IdentityCheck::Session => "/api/v1/session",
            IdentityCheck::ForwardAuth => "/api/v1/forward-auth",
        }
    }

    /// The check a request asks for, if it is one (after any `/t/{slug}` prefix was
    /// stripped).
    pub fn of(method: &Method, path: &str) -> Option<IdentityCheck> {
        if *method != Method::GET && *method != Method::HEAD {
            return None;
        }
        Self::ALL.into_iter().find(|c| c.path() == path)
    }

    /// The answer, as the routed handler gives it.
    pub async fn answer(self, state: &AppState, req: Request) -> Response {
        let (mut parts, _) = req.into_parts();
        let tenant = match CurrentTenant::from_request_parts(&mut parts, state).await {
            Ok(tenant) => tenant,
            Err(e) => return e.into_response(),
        };
        let who = match Authed::from_request_parts(&mut parts, state).await {
            Ok(who) => who,
            Err(e) => return e.into_response(),
        };
        match self {
            IdentityCheck::Session => auth::session(tenant, who).await,
            IdentityCheck::ForwardAuth => forward_auth::check(tenant, who).await.into_response(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_reads_of_the_two_paths_are_checks() {
        for method in [Method::GET, Method::HEAD] {
            assert_eq!(
                IdentityCheck::of(&method, "/api/v1/session"),
                Some(IdentityCheck::Session)
            );
            assert_eq!(
                IdentityCheck::of(&method, "/api/v1/forward-auth"),
                Some(IdentityCheck::ForwardAuth)
            );
        }
        assert_eq!(IdentityCheck::of(&Method::POST, "/api/v1/session"), None);
        assert_eq!(
            IdentityCheck::of(&Method::OPTIONS, "/api/v1/forward-auth"),
            None
        );
        assert_eq!(IdentityCheck::of(&Method::GET, "/api/v1/sessions"), None);
        assert_eq!(IdentityCheck::of(&Method::GET, "/api/v1/session/"), None);
    }
}
