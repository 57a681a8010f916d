//! Browser SSO sessions and the browser-bound login flow.
//!
//! A session is a SQL record (`crate::sessions`) found by the SHA-256 of the cookie value (a dump of
//! the database cannot be replayed as a cookie). The cookie value is fresh at every login and privilege
//! change (no fixation). Cookies are HttpOnly, SameSite=Lax, Path=/, and Secure with the `__Host-`
//! prefix when the issuer is https.
//!
//! A pending authorization request is bound to the browser that started it by a second cookie (the
//! flow cookie); forms also carry a CSRF token stored with the request, compared in constant time.

use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue, header};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use crate::app::AppState;
use crate::clients::random_token;
use crate::ephemeral::EphemeralError;
use crate::oauth::authorize::AuthRequest;

pub const SESSION: &str = "custos_session";
/// The `acr` of a password-only sign-in (multi-factor values arrive with the MFA issue).
pub const ACR_PASSWORD: &str = "urn:custos:acr:pwd";
pub const FLOW: &str = "custos_flow";
/// How long a started sign-in may take.
pub const FLOW_TTL_SECS: u64 = 600;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Session {
    /// The session's public identifier (the `sid` claim): stable for the session's life, unrelated to
    /// the cookie value, which changes on every login and privilege change.
    pub sid: String,
    pub user_id: String,
    pub auth_time: i64,
    pub amr: Vec<String>,
    pub acr: String,
    pub created_at: i64,
    pub absolute_expires_at: i64,
}

/// A pending authorization request and where its browser is in the flow.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Pending {
    pub request: AuthRequest,
    /// SHA-256 of the flow cookie that must accompany every step.
    pub flow_hash: String,
    pub csrf: String,
    /// Set once the person signed in during this flow (so prompt=login / max_age do not loop).
    pub login_done_at: Option<i64>,
    /// Set once the consent page was approved in this flow (so prompt=consent does not loop).
    pub consent_done: bool,
    pub created_at: i64,
}

pub fn hash(v: &str) -> String {
    crate::oauth::tokens::sha256_b64(v)
}

pub fn cookie_name(state: &AppState, base: &str) -> String {
    if state.settings.issuer.scheme() == "https" {
        format!("__Host-{base}")
    } else {
        base.to_string()
    }
}

/// Reads a cookie value from the request.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// `Set-Cookie` for a cookie of ours; `max_age` None = a browser-session cookie, Some(0) = delete.
pub fn set_cookie(state: &AppState, base: &str, value: &str, max_age: Option<i64>) -> HeaderValue {
    let secure = state.settings.issuer.scheme() == "https";
    let mut c = format!(
        "{}={value}; Path=/; HttpOnly; SameSite=Lax",
        cookie_name(state, base)
    );
    if secure {
        c.push_str("; Secure");
    }
    if let Some(m) = max_age {
        c.push_str(&format!("; Max-Age={m}"));
    }
    HeaderValue::from_str(&c).unwrap_or_else(|_| HeaderValue::from_static("invalid=; Max-Age=0"))
}

pub fn csrf_matches(expected: &str, given: &str) -> bool {
    expected.len() == given.len() && bool::from(expected.as_bytes().ct_eq(given.as_bytes()))
}

pub fn pending_key(id: &str) -> String {
    format!("authreq:{id}")
}

/// The live session behind the request's cookie, if any: (cookie value, session).
pub async fn current(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<(String, Session)>, crate::store::StoreError> {
    let Some(id) = cookie(headers, &cookie_name(state, SESSION)) else {
        return Ok(None);
    };
    if id.len() > 128 {
        return Ok(None);
    }
    Ok(crate::sessions::lookup(state, &id).await?.map(|s| (id, s)))
}

/// Signs `user_id` in on the browser that sent `headers`, from `ip` (as resolved with
/// `trusted_proxies`): see `sessions::sign_in`; `events` (the sign-in's own audit trail) are written
/// with the session. The caller sets `SignedIn::set_cookie`.
#[allow(clippy::too_many_arguments)]
pub async fn sign_in_browser(
    state: &AppState,
    headers: &HeaderMap,
    ip: std::net::IpAddr,
    user_id: &str,
    amr: Vec<String>,
    acr: String,
    remember_me: bool,
    events: Vec<crate::audit::Event>,
) -> Result<crate::sessions::SignedIn, crate::store::StoreError> {
    let previous = cookie(headers, &cookie_name(state, SESSION));
    let user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.chars().take(512).collect());
    crate::sessions::sign_in(
        state,
        previous.as_deref(),
        crate::sessions::SignIn {
            user_id: user_id.to_string(),
            amr,
            acr,
            remember_me,
            ip: Some(ip.to_string()),
            user_agent,
            events,
        },
    )
    .await
}

/// Whether a sign-in form asked to be remembered (the `remember_me` checkbox).
pub fn remember_me_checked(p: &crate::oauth::grants::Params) -> bool {
    p.one("remember_me")
        .ok()
        .flatten()
        .is_some_and(|v| !v.is_empty())
}

pub async fn save_pending(state: &AppState, id: &str, p: &Pending) -> Result<(), EphemeralError> {
    let raw = serde_json::to_vec(p).unwrap_or_default();
    state
        .ephemeral
        .put(&pending_key(id), &raw, Duration::from_secs(FLOW_TTL_SECS))
        .await
}

/// The pending request `id`, if it exists and this browser holds its flow cookie.
pub async fn load_pending(
    state: &AppState,
    headers: &HeaderMap,
    id: &str,
) -> Result<Option<Pending>, EphemeralError> {
    if id.is_empty() || id.len() > 64 {
        return Ok(None);
    }
    let Some(raw) = state.ephemeral.get(&pending_key(id)).await? else {
        return Ok(None);
    };
    let Ok(p) = serde_json::from_slice::<Pending>(&raw) else {
        return Ok(None);
    };
    let flow = cookie(headers, &cookie_name(state, FLOW)).unwrap_or_default();
    if !csrf_matches(&p.flow_hash, &hash(&flow)) {
        return Ok(None);
    }
    Ok(Some(p))
}

pub fn new_flow() -> (String, String) {
    let flow = random_token(32);
    let h = hash(&flow);
    (flow, h)
}

pub use crate::sessions::{end_session, end_user_sessions};
