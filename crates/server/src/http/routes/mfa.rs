//! MFA endpoints: status, TOTP enrollment/confirmation/disabling, backup codes, and the
//! second login step.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Value, json};

use aegis_core::mfa::SecondFactor;

use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{ApiJson, Authed, CurrentTenant, Meta};
use crate::http::routes::auth::{Delivery, signed_in};
use crate::http::state::AppState;

/// The QR code of an `otpauth://` URI as an SVG document and as a PNG data URL (for
/// API clients that cannot show SVG).
fn qr_images(uri: &str) -> ApiResult<(String, String)> {
    let code = qrcode::QrCode::new(uri.as_bytes())
        .map_err(|e| ApiError::Internal(format!("qr code: {e}")))?;
    let svg = code
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(200, 200)
        .build();
    let dark: Vec<bool> = code
        .to_colors()
        .iter()
        .map(|c| *c == qrcode::Color::Dark)
        .collect();
    let png = crate::http::png::modules_png(&dark, code.width(), 6, 4);
    let data_url = format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(png)
    );
    Ok((svg, data_url))
}

/// `GET /api/v1/mfa`
pub async fn status(State(state): State<AppState>, Authed(who): Authed) -> ApiResult<Json<Value>> {
    let s = state.mfa.status(&who).await?;
    Ok(Json(json!({
        "totp": {"enabled": s.totp_enabled, "pending": s.totp_pending},
        "backup_codes_remaining": s.backup_codes_remaining,
    })))
}

/// `POST /api/v1/mfa/totp/enroll`: a new secret, active once confirmed with a code.
pub async fn enroll(
    State(state): State<AppState>,
    Authed(who): Authed,
    Meta(meta): Meta,
) -> ApiResult<Json<Value>> {
    let e = state.mfa.enroll(&who, &meta).await?;
    let uri = e.otpauth_uri.expose_secret();
    let (svg, png) = qr_images(uri)?;
    Ok(Json(json!({
        "secret": e.secret_base32.expose_secret(),
        "otpauth_uri": uri,
        "qr_svg": svg,
        "qr_png": png,
        "confirm_with": "POST /api/v1/mfa/totp/confirm {\"code\": \"123456\"}",
    })))
}

/// A TOTP code.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodeBody {
    code: String,
}

/// `POST /api/v1/mfa/totp/confirm`: activates TOTP and returns the backup codes (once).
pub async fn confirm(
    State(state): State<AppState>,
    Authed(who): Authed,
    Meta(meta): Meta,
    ApiJson(body): ApiJson<CodeBody>,
) -> ApiResult<Json<Value>> {
    let codes = state.mfa.confirm(&who, &body.code, &meta).await?;
    Ok(Json(json!({"enabled": true, "backup_codes": codes})))
}

/// Re-authentication for disabling: a fresh code or the password.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DisableBody {
    code: Option<String>,
    password: Option<SecretString>,
}

/// `POST /api/v1/mfa/totp/disable`
pub async fn disable(
    State(state): State<AppState>,
    Authed(who): Authed,
    Meta(meta): Meta,
    ApiJson(body): ApiJson<DisableBody>,
) -> ApiResult<Response> {
    state
        .mfa
        .disable(&who, body.code.as_deref(), body.password.as_ref(), &meta)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /api/v1/mfa/backup-codes`: a new set (the old one stops working).
pub async fn regenerate_backup_codes(
    State(state): State<AppState>,
    Authed(who): Authed,
    Meta(meta): Meta,
    ApiJson(body): ApiJson<CodeBody>,
) -> ApiResult<Json<Value>> {
    let codes = state
        .mfa
        .regenerate_backup_codes(&who, &body.code, &meta)
        .await?;
    Ok(Json(json!({"backup_codes": codes})))
}

/// The second login step.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecondStep {
    mfa_token: SecretString,
    code: Option<String>,
    backup_code: Option<String>,
    #[serde(default)]
    session_delivery: Option<Delivery>,
}

/// `POST /api/v1/login/mfa`: the token from the password step plus a TOTP code or a
/// backup code creates the session.
pub async fn complete_login(
    State(state): State<AppState>,
    CurrentTenant(tenant): CurrentTenant,
    Meta(meta): Meta,
    ApiJson(body): ApiJson<SecondStep>,
) -> ApiResult<Response> {
    let answer = match (&body.code, &body.backup_code) {
        (Some(c), None) => SecondFactor::Totp(c),
        (None, Some(c)) => SecondFactor::BackupCode(c),
        _ => {
            return Err(ApiError::Unprocessable(
                "send either code (a TOTP code) or backup_code".into(),
            ));
        }
    };
    let (user, new) = state
        .mfa
        .complete_login(tenant.id, body.mfa_token.expose_secret(), answer, &meta)
        .await?;
    signed_in(&state, &user, &new, body.session_delivery)
}
