//! `GET|POST /logout`: OpenID Connect RP-Initiated Logout 1.0.
//!
//! With a valid `id_token_hint` for the signed-in person, the session ends at once. Without one (or for
//! another person), the person confirms on a CSRF-protected page bound to their browser first, so a
//! third-party page cannot sign anyone out. `post_logout_redirect_uri` must be registered, exactly, for
//! the client named by the hint or `client_id`; an unregistered one is never followed.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::authorize::{page, redirect_with, unavailable_page};
use super::login::csrf_failure;
use crate::app::AppState;
use crate::clients::random_token;
use crate::oauth::grants::Params;
use crate::session;
use crate::views::LogoutPage;

#[derive(Serialize, Deserialize)]
struct PendingLogout {
    csrf: String,
    /// SHA-256 of the session cookie the confirmation may end.
    session_hash: String,
    redirect: Option<String>,
    state: Option<String>,
}

fn key(id: &str) -> String {
    format!("logout:{id}")
}

fn no_store(mut r: Response) -> Response {
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn bad_request(msg: &str) -> Response {
    page(
        StatusCode::BAD_REQUEST,
        "Invalid sign-out request",
        msg,
        "invalid_request",
    )
}

pub async fn get(State(s): State<AppState>, headers: HeaderMap, RawQuery(q): RawQuery) -> Response {
    start(
        &s,
        &headers,
        &Params::parse(q.unwrap_or_default().as_bytes()),
    )
    .await
}

pub async fn post(State(s): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    if !super::token::is_form(&headers) {
        return bad_request("The request body must be a form.");
    }
    let p = Params::parse(&body);
    if p.one("logout_id").ok().flatten().is_some() {
        confirm(&s, &headers, &p).await
    } else {
        start(&s, &headers, &p).await
    }
}

/// Ends the session behind the cookie and clears the cookie.
async fn end_and_leave(
    s: &AppState,
    headers: &HeaderMap,
    redirect: Option<&str>,
    state: Option<&str>,
) -> Response {
    if let Ok(Some((_, sess))) = session::current(s, headers).await {
        // Revokes the session's refresh families and queues back-channel logout notices; the audit
        // trail gets `session_ended` with reason `logout`.
        if crate::sessions::end_session(s, &sess.sid, crate::sessions::reason::LOGOUT)
            .await
            .is_err()
        {
            return unavailable_page();
        }
    }
    let mut r = match redirect {
        Some(uri) => {
            let pairs: Vec<(&str, &str)> = state.map(|st| vec![("state", st)]).unwrap_or_default();
            redirect_with(uri, &pairs)
        }
        None => no_store(
            LogoutPage {
                confirm: false,
                client_name: None,
                logout_id: String::new(),
                csrf: String::new(),
            }
            .into_response(),
        ),
    };
    r.headers_mut().append(
        header::SET_COOKIE,
        session::set_cookie(s, session::SESSION, "", Some(0)),
    );
    r
}

async fn start(s: &AppState, headers: &HeaderMap, p: &Params) -> Response {
    let one = |n: &str| p.one(n).map(|v| v.map(str::to_string));
    let (Ok(hint), Ok(client_id), Ok(redirect), Ok(state)) = (
        one("id_token_hint"),
        one("client_id"),
        one("post_logout_redirect_uri"),
        one("state"),
    ) else {
        return bad_request("A parameter appears more than once.");
    };
    let hint = match hint {
        Some(h) => match crate::oauth::verify::verify_id_token_hint(
            &h,
            &s.signer.jwks(),
            &s.settings.issuer_str,
        ) {
            Ok(c) => Some(c),
            Err(_) => return bad_request("The id_token_hint was not issued by this server."),
        },
        None => None,
    };
    let hint_client = hint.as_ref().and_then(|c| c.azp.clone());
    let client_id = match (client_id, hint_client) {
        (Some(a), Some(b)) if a != b => {
            return bad_request("client_id does not match the id_token_hint.");
        }
        (a, b) => a.or(b),
    };
    let client = match &client_id {
        Some(id) => match s.clients.get(id).await {
            Ok(Some(c)) => Some(c),
            Ok(None) => return bad_request("The application is not registered."),
            Err(_) => return unavailable_page(),
        },
        None => None,
    };
    if let Some(uri) = &redirect {
        let registered = client
            .as_ref()
            .is_some_and(|c| c.post_logout_redirect_uris.iter().any(|u| u == uri));
        if !registered {
            return bad_request(
                "The address to return to after signing out is not registered for this application.",
            );
        }
    }
    let current = match session::current(s, headers).await {
        Ok(c) => c,
        Err(_) => return unavailable_page(),
    };
    let Some((sid_cookie, sess)) = current else {
        // Nobody is signed in here: nothing to end.
        return end_and_leave(s, headers, redirect.as_deref(), state.as_deref()).await;
    };
    if hint.as_ref().is_some_and(|h| h.sub == sess.user_id) {
        return end_and_leave(s, headers, redirect.as_deref(), state.as_deref()).await;
    }
    // Ask first.
    let id = random_token(16);
    let pending = PendingLogout {
        csrf: random_token(32),
        session_hash: session::hash(&sid_cookie),
        redirect,
        state,
    };
    let pending_redirect = pending.redirect.clone();
    let raw = serde_json::to_vec(&pending).unwrap_or_default();
    if s.ephemeral
        .put(&key(&id), &raw, Duration::from_secs(session::FLOW_TTL_SECS))
        .await
        .is_err()
    {
        return unavailable_page();
    }
    let mut r = no_store(
        LogoutPage {
            confirm: true,
            client_name: client.map(|c| c.name.clone()),
            logout_id: id,
            csrf: pending.csrf,
        }
        .into_response(),
    );
    r.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        super::csp_with_form_target(pending_redirect.as_deref()),
    );
    r
}

async fn confirm(s: &AppState, headers: &HeaderMap, p: &Params) -> Response {
    let field = |n: &str| p.one(n).ok().flatten().unwrap_or_default().to_string();
    let id = field("logout_id");
    let pending = match s.ephemeral.get(&key(&id)).await {
        Ok(Some(raw)) => match serde_json::from_slice::<PendingLogout>(&raw) {
            Ok(p) => p,
            Err(_) => return csrf_failure(),
        },
        Ok(None) => return csrf_failure(),
        Err(_) => return unavailable_page(),
    };
    let cookie =
        session::cookie(headers, &session::cookie_name(s, session::SESSION)).unwrap_or_default();
    if !session::csrf_matches(&pending.csrf, &field("csrf"))
        || !session::csrf_matches(&pending.session_hash, &session::hash(&cookie))
    {
        return csrf_failure();
    }
    let _ = s.ephemeral.delete(&key(&id)).await;
    if field("decision") != "logout" {
        return match &pending.redirect {
            Some(uri) => redirect_with(
                uri,
                &pending
                    .state
                    .as_deref()
                    .map(|st| vec![("state", st)])
                    .unwrap_or_default(),
            ),
            None => page(
                StatusCode::OK,
                "Still signed in",
                "You are still signed in. You can close this page.",
                "none",
            ),
        };
    }
    end_and_leave(
        s,
        headers,
        pending.redirect.as_deref(),
        pending.state.as_deref(),
    )
    .await
}
