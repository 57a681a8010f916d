//! Passkey endpoints. The account's Security page registers, renames and removes them; the
//! second-factor page and (with `passkey_passwordless`) the sign-in page use them.
//!
//! The ceremonies are JSON, driven by `/static/passkey.js`: `…/options` returns the WebAuthn options,
//! the bare path takes the authenticator's answer. Both need `Content-Type: application/json` and
//! the page's CSRF token in `X-CSRF-Token` (so a cross-site form cannot reach them); a finished
//! sign-in answers `{"redirect": …}` with the session cookie. Rename and remove are ordinary forms.

use std::net::IpAddr;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::account::{self, private};
use super::authorize::unavailable_page;
use super::{csrf, paths};
use crate::app::AppState;
use crate::audit::{self, Event};
use crate::mfa::passkey::{self, PasskeyError, Refused, Used};
use crate::mfa::{self, HalfLogin};
use crate::session;
use crate::views::mfa::PasskeyRow;

const CSRF_HEADER: &str = "x-csrf-token";

/// Whether the sign-in page offers a passkey on its own.
pub fn passwordless(s: &AppState) -> bool {
    s.settings.raw.passkey_passwordless && passkey::available(s)
}

/// The Security page's list; `None` when the issuer cannot have passkeys (an IP address).
pub async fn rows(
    s: &AppState,
    user_id: &str,
) -> Result<Option<Vec<PasskeyRow>>, crate::store::StoreError> {
    if !passkey::available(s) {
        return Ok(None);
    }
    let day = |t: i64| {
        chrono::DateTime::from_timestamp(t, 0)
            .map(|d| d.format("%Y-%m-%d").to_string())
            .unwrap_or_default()
    };
    Ok(Some(
        s.store
            .passkeys(user_id)
            .await?
            .into_iter()
            .map(|p| PasskeyRow {
                added: day(p.created_at),
                last_used: p.last_used_at.map_or_else(|| "never".into(), day),
                id: p.id,
                name: p.name,
            })
            .collect(),
    ))
}

fn json_response(status: StatusCode, v: Value) -> Response {
    let mut r = (status, axum::Json(v)).into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn error(status: StatusCode, code: &str, description: &str) -> Response {
    json_response(
        status,
        json!({"error": code, "error_description": description}),
    )
}

fn forbidden() -> Response {
    error(
        StatusCode::FORBIDDEN,
        "invalid_request",
        "The page has expired. Reload it and try again.",
    )
}

fn unavailable(e: &PasskeyError) -> Response {
    match e {
        PasskeyError::Config => error(
            StatusCode::NOT_FOUND,
            "passkeys_unavailable",
            "Passkeys are not available on this server.",
        ),
        _ => {
            tracing::error!(error = %e, "passkeys: backend unavailable");
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                "Try again in a moment.",
            )
        }
    }
}

fn refused(r: Refused) -> Response {
    let (status, text) = match r {
        Refused::NoChallenge => (
            StatusCode::BAD_REQUEST,
            "This passkey request has expired or was already used. Try again.",
        ),
        Refused::Duplicate => (StatusCode::CONFLICT, "This passkey is already registered."),
        Refused::Invalid | Refused::UnknownCredential => {
            (StatusCode::UNAUTHORIZED, "That passkey was not accepted.")
        }
    };
    error(status, r.as_str(), text)
}

fn header_csrf(headers: &HeaderMap) -> &str {
    headers
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
}

/// The JSON body as `T`; a 400 naming what is wrong otherwise.
fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, Box<Response>> {
    serde_json::from_slice(body).map_err(|e| {
        Box::new(error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            &format!("malformed request body: {e}"),
        ))
    })
}

/// A finished sign-in for the script: where to go, and the `Set-Cookie`s of `r` (a redirect).
fn as_json_redirect(r: Response) -> Response {
    if r.status() != StatusCode::SEE_OTHER {
        return error(
            r.status(),
            "login_failed",
            "The sign-in could not be finished. Start again.",
        );
    }
    let to = r
        .headers()
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or(paths::ACCOUNT)
        .to_string();
    let mut out = json_response(StatusCode::OK, json!({ "redirect": to }));
    for c in r.headers().get_all(header::SET_COOKIE) {
        out.headers_mut().append(header::SET_COOKIE, c.clone());
    }
    out
}

async fn audit_passkey(
    s: &AppState,
    name: &'static str,
    user_id: &str,
    ip: Option<IpAddr>,
    details: Value,
) {
    let mut e = Event::new(name).subject(user_id).details(details);
    if let Some(ip) = ip {
        e = e.ip(ip.to_string());
    }
    audit::record(&s.store, s.clock.now(), e).await;
}

// --- The account page -------------------------------------------------------------------------------

/// The signed-in person of a JSON call with this session's CSRF token.
async fn account_json(s: &AppState, headers: &HeaderMap) -> Result<account::Account, Response> {
    if !is_json(headers) {
        return Err(forbidden());
    }
    let a = match session::current(s, headers).await {
        Ok(Some(_)) => account::require(s, headers, paths::ACCOUNT_SECURITY)
            .await
            .map_err(|_| forbidden())?,
        Ok(None) => {
            return Err(error(
                StatusCode::UNAUTHORIZED,
                "login_required",
                "Sign in again.",
            ));
        }
        Err(_) => return Err(unavailable_page()),
    };
    if !csrf::session_matches(s, &a.cookie, header_csrf(headers)) {
        return Err(forbidden());
    }
    Ok(a)
}

/// `POST /account/security/passkeys/options`: the options to create a new passkey.
pub async fn register_options(State(s): State<AppState>, headers: HeaderMap) -> Response {
    let a = match account_json(&s, &headers).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    match passkey::start_registration(&s, &a.user).await {
        Ok(ccr) => json_response(StatusCode::OK, ccr),
        Err(e) => unavailable(&e),
    }
}

#[derive(Deserialize)]
struct RegisterBody {
    name: String,
    credential: webauthn_rs::prelude::RegisterPublicKeyCredential,
}

/// `POST /account/security/passkeys`: `{"name", "credential"}`, the authenticator's answer.
pub async fn register(
    State(s): State<AppState>,
    crate::http::client_ip::ClientIp(ip): crate::http::client_ip::ClientIp,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let a = match account_json(&s, &headers).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let b: RegisterBody = match parse(&body) {
        Ok(b) => b,
        Err(r) => return *r,
    };
    let Some(name) = passkey::clean_name(&b.name) else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "name: give the passkey a name.",
        );
    };
    match passkey::finish_registration(&s, &a.user.id, &name, &b.credential).await {
        Ok(Ok(p)) => {
            audit_passkey(
                &s,
                "passkey_added",
                &a.user.id,
                Some(ip),
                json!({"name": p.name}),
            )
            .await;
            json_response(StatusCode::OK, json!({"ok": true, "name": p.name}))
        }
        Ok(Err(r)) => refused(r),
        Err(e) => unavailable(&e),
    }
}

/// `POST /account/security/passkeys/rename`: form `csrf`, `id`, `name`.
pub async fn rename(State(s): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let (a, p) = match account::require_form(&s, &headers, &body, paths::ACCOUNT_SECURITY).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let Some(name) = passkey::clean_name(&account::field(&p, "name")) else {
        return super::security::page(
            &s,
            &a,
            StatusCode::BAD_REQUEST,
            Some("Give the passkey a name."),
            None,
        )
        .await;
    };
    match s
        .store
        .rename_passkey(&a.user.id, &account::field(&p, "id"), &name)
        .await
    {
        Ok(true) => {
            super::security::page(
                &s,
                &a,
                StatusCode::OK,
                None,
                Some("The passkey was renamed."),
            )
            .await
        }
        Ok(false) => {
            super::security::page(
                &s,
                &a,
                StatusCode::NOT_FOUND,
                Some("That passkey is not on your account."),
                None,
            )
            .await
        }
        Err(_) => unavailable_page(),
    }
}

/// `POST /account/security/passkeys/remove`: form `csrf`, `id`.
pub async fn remove(
    State(s): State<AppState>,
    crate::http::client_ip::ClientIp(ip): crate::http::client_ip::ClientIp,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (a, p) = match account::require_form(&s, &headers, &body, paths::ACCOUNT_SECURITY).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    match s
        .store
        .remove_passkey(&a.user.id, &account::field(&p, "id"))
        .await
    {
        Ok(true) => {
            audit_passkey(&s, "passkey_removed", &a.user.id, Some(ip), json!({})).await;
            private(
                super::security::page(
                    &s,
                    &a,
                    StatusCode::OK,
                    None,
                    Some("The passkey was removed and no longer signs in."),
                )
                .await,
            )
        }
        Ok(false) => {
            super::security::page(
                &s,
                &a,
                StatusCode::NOT_FOUND,
                Some("That passkey is not on your account."),
                None,
            )
            .await
        }
        Err(_) => unavailable_page(),
    }
}

// --- The second factor ------------------------------------------------------------------------------

/// The half-finished login of a JSON call from the second-factor page (its CSRF token).
async fn half_json(s: &AppState, headers: &HeaderMap) -> Result<(String, HalfLogin), Response> {
    if !is_json(headers) {
        return Err(forbidden());
    }
    let Some(fh) = super::mfa::flow_hash(s, headers) else {
        return Err(forbidden());
    };
    let half = match HalfLogin::load(s, &fh).await {
        Ok(Some(h)) => h,
        Ok(None) => return Err(forbidden()),
        Err(e) => return Err(unavailable(&PasskeyError::Ephemeral(e))),
    };
    if !session::csrf_matches(&half.csrf, header_csrf(headers)) {
        return Err(forbidden());
    }
    Ok((fh, half))
}

/// `POST /login/mfa/passkey/options`: the options to use one of the person's passkeys.
pub async fn second_factor_options(State(s): State<AppState>, headers: HeaderMap) -> Response {
    let (fh, half) = match half_json(&s, &headers).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    match passkey::start_second_factor(&s, &half.user_id, &fh).await {
        Ok(Some(rcr)) => json_response(StatusCode::OK, json!(rcr)),
        Ok(None) => error(
            StatusCode::NOT_FOUND,
            "no_passkey",
            "There is no passkey on this account.",
        ),
        Err(e) => unavailable(&e),
    }
}

/// `POST /login/mfa/passkey`: the authenticator's answer; finishes the sign-in like a code would.
pub async fn second_factor(
    State(s): State<AppState>,
    crate::http::client_ip::ClientIp(ip): crate::http::client_ip::ClientIp,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (fh, half) = match half_json(&s, &headers).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let answer: webauthn_rs::prelude::PublicKeyCredential = match parse(&body) {
        Ok(a) => a,
        Err(r) => return *r,
    };
    match passkey::finish_second_factor(&s, &half.user_id, &fh, &answer).await {
        Ok(Ok(used)) => {
            let factor = mfa::Factor::Passkey {
                synced: used.synced,
            };
            as_json_redirect(super::mfa::complete(&s, &headers, &fh, factor, &ip.to_string()).await)
        }
        Ok(Err(r)) => {
            audit_passkey(
                &s,
                "mfa_failed",
                &half.user_id,
                Some(ip),
                json!({"reason": format!("passkey_{}", r.as_str())}),
            )
            .await;
            refused(r)
        }
        Err(e) => unavailable(&e),
    }
}

// --- Passwordless -----------------------------------------------------------------------------------

/// What a passwordless sign-in continues: a pending authorization request (`req`) or the
/// stand-alone sign-in (`return_to`).
#[derive(Deserialize, Default)]
struct Continue {
    #[serde(default)]
    req: String,
    #[serde(default)]
    return_to: Option<String>,
    #[serde(default)]
    remember_me: bool,
}

/// Checks a passwordless call: configured, JSON, the sign-in page's CSRF token; the flow hash.
async fn passwordless_call(
    s: &AppState,
    headers: &HeaderMap,
    c: &Continue,
) -> Result<String, Response> {
    if !passwordless(s) {
        return Err(error(
            StatusCode::NOT_FOUND,
            "passkey_passwordless_disabled",
            "Signing in with only a passkey is not enabled on this server.",
        ));
    }
    if !is_json(headers) {
        return Err(forbidden());
    }
    let ok = if c.req.is_empty() {
        csrf::browser_matches(s, headers, header_csrf(headers))
    } else {
        match session::load_pending(s, headers, &c.req).await {
            Ok(Some(p)) => session::csrf_matches(&p.csrf, header_csrf(headers)),
            Ok(None) => false,
            Err(e) => return Err(unavailable(&PasskeyError::Ephemeral(e))),
        }
    };
    match super::mfa::flow_hash(s, headers) {
        Some(fh) if ok => Ok(fh),
        _ => Err(forbidden()),
    }
}

/// `POST /login/passkey/options`: `{"req"}` or `{"return_to"}`; the options of a passwordless sign-in.
pub async fn passwordless_options(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let c: Continue = match parse(&body) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let fh = match passwordless_call(&s, &headers, &c).await {
        Ok(fh) => fh,
        Err(r) => return r,
    };
    match passkey::start_passwordless(&s, &fh).await {
        Ok(rcr) => json_response(StatusCode::OK, json!(rcr)),
        Err(e) => unavailable(&e),
    }
}

#[derive(Deserialize)]
struct PasswordlessBody {
    #[serde(flatten)]
    next: Continue,
    credential: webauthn_rs::prelude::PublicKeyCredential,
}

/// `POST /login/passkey`: `{"req" | "return_to", "credential"}`; signs in with `amr` = [key, `user`]
/// and the MFA `acr` (possession of the key plus the authenticator's user verification).
pub async fn passwordless_finish(
    State(s): State<AppState>,
    crate::http::client_ip::ClientIp(ip): crate::http::client_ip::ClientIp,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let b: PasswordlessBody = match parse(&body) {
        Ok(b) => b,
        Err(r) => return *r,
    };
    let fh = match passwordless_call(&s, &headers, &b.next).await {
        Ok(fh) => fh,
        Err(r) => return r,
    };
    let used: Used = match passkey::finish_passwordless(&s, &fh, &b.credential).await {
        Ok(Ok(u)) => u,
        Ok(Err(r)) => {
            let e = Event::new("login_failed")
                .ip(ip.to_string())
                .details(json!({"reason": format!("passkey_{}", r.as_str())}));
            audit::record(&s.store, s.clock.now(), e).await;
            return refused(r);
        }
        Err(e) => return unavailable(&e),
    };
    match s.store.user(&used.user_id).await {
        Ok(Some(u)) if !u.disabled => {}
        Ok(_) => return refused(Refused::UnknownCredential),
        Err(_) => return unavailable_page(),
    }
    let amr = vec![used.amr().to_string(), passkey::AMR_USER.to_string()];
    audit_passkey(
        &s,
        "login_succeeded",
        &used.user_id,
        Some(ip),
        json!({"method": "passkey", "amr": amr}),
    )
    .await;
    let signed = match session::sign_in_browser(
        &s,
        &headers,
        ip,
        &used.user_id,
        amr,
        mfa::ACR_MFA.into(),
        b.next.remember_me,
        Vec::new(),
    )
    .await
    {
        Ok(signed) => signed,
        Err(_) => return unavailable_page(),
    };
    let to = if b.next.req.is_empty() {
        super::signin::safe_return_to(b.next.return_to.as_deref())
    } else {
        let req = &b.next.req;
        match session::load_pending(&s, &headers, req).await {
            Ok(Some(mut pending)) => {
                pending.login_done_at = Some(s.clock.now());
                if session::save_pending(&s, req, &pending).await.is_err() {
                    return unavailable_page();
                }
                format!("{}?req={req}", paths::AUTHORIZE_RESUME)
            }
            Ok(None) => return forbidden(),
            Err(_) => return unavailable_page(),
        }
    };
    let mut r = json_response(StatusCode::OK, json!({ "redirect": to }));
    r.headers_mut()
        .append(header::SET_COOKIE, signed.set_cookie(&s));
    r
}

/// `GET /static/passkey.js`: the browser half of the ceremonies.
pub async fn script() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        include_str!("../../templates/static/passkey.js"),
    )
        .into_response()
}
