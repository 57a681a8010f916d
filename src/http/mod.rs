//! axum: the router, middleware and one thin handler file per endpoint. Handlers parse the wire format
//! into typed values and hand them to `oauth`; nothing protocol-specific is decided here.

pub mod account;
pub mod account_sessions;
pub mod authorize;
pub mod bearer;
pub mod client_form;
pub mod client_ip;
pub mod consent;
pub mod csrf;
pub mod error;
pub mod health;
pub mod introspect;
pub mod login;
pub mod logout;
pub mod mfa;
pub mod passkey;
pub mod password;
pub mod paths;
pub mod register;
pub mod revoke;
pub mod security;
pub mod signin;
pub mod token;
pub mod userinfo;
pub mod wellknown;

use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;

use crate::app::AppState;

static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

// `script-src`/`connect-src 'self'`: /static/passkey.js and the JSON calls it makes (no inline script).
const CSP: &str = "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The CSP of a page whose form ends, through redirects, at `target` (a registered redirect URI):
/// browsers apply `form-action` to every redirect after the post, so that origin must be allowed too.
pub fn csp_with_form_target(target: Option<&str>) -> HeaderValue {
    let origin = target
        .and_then(|t| url::Url::parse(t).ok())
        .map(|u| match u.origin() {
            url::Origin::Tuple(..) => u.origin().ascii_serialization(),
            // A private-use scheme (native apps) has no host: allow the scheme.
            url::Origin::Opaque(_) => format!("{}:", u.scheme()),
        });
    let csp = match origin {
        Some(o) if !o.contains([';', ',', '\'', ' ']) => {
            CSP.replace("form-action 'self'", &format!("form-action 'self' {o}"))
        }
        _ => CSP.to_string(),
    };
    HeaderValue::from_str(&csp).unwrap_or_else(|_| HeaderValue::from_static(CSP))
}

async fn css() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        include_str!("../../templates/static/custos.css"),
    )
        .into_response()
}

async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        axum::Json(json!({"error": "not_found"})),
    )
        .into_response()
}

fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("handler panicked");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        axum::Json(json!({"error": "server_error"})),
    )
        .into_response()
}

pub fn router(state: AppState) -> Router {
    let body_limit = state.settings.raw.max_body_bytes;
    let trace = TraceLayer::new_for_http()
        .make_span_with(|req: &Request<_>| {
            let id = req.headers().get(&REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("-");
            // The path only: queries carry state, nonces and codes.
            tracing::info_span!("request", request_id = %id, method = %req.method(), path = %req.uri().path())
        })
        .on_request(())
        .on_response(|res: &axum::http::Response<_>, latency: Duration, _span: &tracing::Span| {
            let status = res.status().as_u16();
            if status >= 500 {
                tracing::error!(status, latency_us = latency.as_micros() as u64, "response");
            } else {
                tracing::debug!(status, latency_us = latency.as_micros() as u64, "response");
            }
        })
        .on_failure(());
    let headers = ServiceBuilder::new()
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ));
    Router::new()
        .route(
            paths::OPENID_CONFIGURATION,
            get(wellknown::openid_configuration),
        )
        .route(
            paths::OAUTH_AUTHORIZATION_SERVER,
            get(wellknown::openid_configuration),
        )
        .route(paths::JWKS, get(wellknown::jwks))
        .route(paths::AUTHORIZE, get(authorize::get).post(authorize::post))
        .route(paths::AUTHORIZE_RESUME, get(authorize::resume))
        .route(paths::LOGIN, get(login::get).post(login::post))
        .route(paths::CONSENT, get(consent::get).post(consent::post))
        .route(paths::LOGOUT, get(logout::get).post(logout::post))
        .route(paths::LOGIN_MFA, get(mfa::get).post(mfa::post))
        .route(paths::ACCOUNT_SECURITY, get(security::get))
        .route(paths::ACCOUNT_TOTP_SETUP, post(security::setup))
        .route(paths::ACCOUNT_TOTP_CONFIRM, post(security::confirm))
        .route(paths::ACCOUNT_TOTP_DISABLE, post(security::disable))
        .route(paths::ACCOUNT_RECOVERY_CODES, post(security::regenerate))
        .route(paths::ACCOUNT, get(account::get).post(account::post))
        .route(
            paths::ACCOUNT_PASSWORD,
            get(password::change_get).post(password::change_post),
        )
        .route(paths::ACCOUNT_EMAIL, post(account::email_post))
        .route(paths::ACCOUNT_VERIFY_EMAIL, post(account::resend_post))
        .route(paths::REGISTER, get(register::get).post(register::post))
        .route(
            paths::VERIFY_EMAIL,
            get(register::verify_get).post(register::verify_post),
        )
        .route(
            paths::PASSWORD_FORGOT,
            get(password::forgot_get).post(password::forgot_post),
        )
        .route(
            paths::PASSWORD_RESET,
            get(password::reset_get).post(password::reset_post),
        )
        .route(paths::ACCOUNT_SESSIONS, get(account_sessions::get))
        .route(paths::ACCOUNT_SESSIONS_END, post(account_sessions::end))
        .route(
            paths::ACCOUNT_SESSIONS_END_OTHERS,
            post(account_sessions::end_others),
        )
        .route(paths::TOKEN, post(token::token))
        .route(paths::USERINFO, get(userinfo::get).post(userinfo::post))
        .route(paths::REVOKE, post(revoke::revoke))
        .route(paths::INTROSPECT, post(introspect::introspect))
        .route(paths::HEALTH_LIVE, get(health::live))
        .route(paths::HEALTH_READY, get(health::ready))
        .route("/static/custos.css", get(css))
        .route(paths::PASSKEY_JS, get(passkey::script))
        .route(
            paths::ACCOUNT_PASSKEY_OPTIONS,
            post(passkey::register_options),
        )
        .route(paths::ACCOUNT_PASSKEYS, post(passkey::register))
        .route(paths::ACCOUNT_PASSKEY_RENAME, post(passkey::rename))
        .route(paths::ACCOUNT_PASSKEY_REMOVE, post(passkey::remove))
        .route(
            paths::LOGIN_MFA_PASSKEY_OPTIONS,
            post(passkey::second_factor_options),
        )
        .route(paths::LOGIN_MFA_PASSKEY, post(passkey::second_factor))
        .route(
            paths::LOGIN_PASSKEY_OPTIONS,
            post(passkey::passwordless_options),
        )
        .route(paths::LOGIN_PASSKEY, post(passkey::passwordless_finish))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(headers)
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::new(REQUEST_ID.clone(), MakeRequestUuid))
                .layer(trace)
                .layer(PropagateRequestIdLayer::new(REQUEST_ID.clone()))
                .layer(CatchPanicLayer::custom(panic_response)),
        )
        .with_state(state)
}
