//! Route table. Handlers stay small: extract, call core, map the result.

pub mod admin;
pub mod audit;
pub mod auth;
pub mod forward_auth;
pub mod health;
pub mod mfa;
pub mod oidc;
pub mod sessions;

use axum::Router;
use axum::routing::{delete, get, post, put};

use super::checks::IdentityCheck;
use super::error::ApiError;
use super::state::AppState;

/// All routes, relative to the tenant (the `/t/{slug}` prefix is stripped before routing).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .route("/api/v1/register", post(auth::register))
        .route("/api/v1/login", post(auth::login))
        .route("/api/v1/logout", post(auth::logout))
        .route("/api/v1/login/mfa", post(mfa::complete_login))
        .route("/api/v1/password/reset/request", post(auth::request_reset))
        .route("/api/v1/password/reset", post(auth::reset))
        .route("/api/v1/email/verify", post(auth::verify_email))
        .route(
            "/api/v1/email/verify/resend",
            post(auth::resend_verification),
        )
        .route("/api/v1/mfa", get(mfa::status))
        .route("/api/v1/mfa/totp/enroll", post(mfa::enroll))
        .route("/api/v1/mfa/totp/confirm", post(mfa::confirm))
        .route("/api/v1/mfa/totp/disable", post(mfa::disable))
        .route(
            "/api/v1/mfa/backup-codes",
            post(mfa::regenerate_backup_codes),
        )
        .route("/auth/oidc/{provider}/start", get(oidc::start))
        .route("/auth/oidc/{provider}/callback", get(oidc::callback))
        .route("/api/v1/oidc/providers", get(oidc::public_list))
        .route("/api/v1/admin/oidc/providers", get(oidc::admin_list))
        .route(
            "/api/v1/admin/oidc/providers/{name}",
            put(oidc::admin_put).delete(oidc::admin_delete),
        )
        // GET and HEAD of these two are answered by the frame (see `checks`).
        .route(IdentityCheck::Session.path(), get(auth::session))
        .route(IdentityCheck::ForwardAuth.path(), get(forward_auth::check))
        .route("/api/v1/csrf", get(auth::csrf))
        .route("/api/v1/password", post(auth::change_password))
        .route(
            "/api/v1/sessions",
            get(sessions::list).delete(sessions::revoke_others),
        )
        .route("/api/v1/sessions/{id}", delete(sessions::revoke))
        .route("/api/v1/audit", get(audit::query))
        .route(
            "/api/v1/admin/users",
            get(admin::list_users).post(admin::create_user),
        )
        .route(
            "/api/v1/admin/tenants",
            get(admin::list_tenants).post(admin::create_tenant),
        )
        .route("/api/v1/admin/mfa-policy", put(admin::set_mfa_policy))
        .route("/api/v1/admin/email-policy", put(admin::set_email_policy))
        .route(
            "/api/v1/admin/tenants/{slug}/disable",
            post(admin::disable_tenant),
        )
        .route(
            "/api/v1/admin/tenants/{slug}/enable",
            post(admin::enable_tenant),
        )
        .fallback(|| async { ApiError::NotFound("no such endpoint".into()) })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
}
