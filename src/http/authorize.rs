//! `GET|POST /authorize` and `GET /authorize/resume`: the ordered checks, then the browser's way
//! through sign-in and consent to a code. Errors before the redirect URI is trusted are shown on a page
//! and never redirected (RFC 6749 §4.1.2.1, RFC 9700 §4.1); later errors go back to the client with
//! `error`, `error_description`, `state` and `iss` (RFC 9207).

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Query, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::paths;
use crate::app::AppState;
use crate::clients::random_token;
use crate::oauth::authorize::{self, Prompt, Untrusted};
use crate::oauth::error::{ErrorCode, OAuthError};
use crate::oauth::grants::Params;
use crate::oauth::grants::authorization_code::CodeRecord;
use crate::session::{self, Pending, Session};
use crate::store::User;
use crate::views::ErrorPage;

pub async fn get(State(s): State<AppState>, headers: HeaderMap, RawQuery(q): RawQuery) -> Response {
    let p = Params::parse(q.unwrap_or_default().as_bytes());
    run(&s, &headers, &p).await
}

pub async fn post(State(s): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    if !super::token::is_form(&headers) {
        return page(
            StatusCode::BAD_REQUEST,
            "Invalid request",
            "The request body must be a form.",
            "invalid_request",
        );
    }
    run(&s, &headers, &Params::parse(&body)).await
}

pub fn page(status: StatusCode, title: &str, message: &str, code: &'static str) -> Response {
    let mut r = (
        status,
        ErrorPage {
            title: title.into(),
            message: message.into(),
            code,
        },
    )
        .into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

pub fn expired_page() -> Response {
    page(
        StatusCode::BAD_REQUEST,
        "This sign-in has expired",
        "Go back to the application and start again.",
        "invalid_request",
    )
}

pub fn unavailable_page() -> Response {
    page(
        StatusCode::SERVICE_UNAVAILABLE,
        "Temporarily unavailable",
        "Please try again in a moment.",
        "temporarily_unavailable",
    )
}

pub fn see_other(to: &str) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// Appends the response parameters to the registered redirect URI, keeping its own query.
pub fn redirect_with(redirect_uri: &str, pairs: &[(&str, &str)]) -> Response {
    let mut url = match url::Url::parse(redirect_uri) {
        Ok(u) => u,
        Err(_) => {
            return page(
                StatusCode::BAD_REQUEST,
                "Invalid redirect",
                "The redirect URI is malformed.",
                "invalid_request",
            );
        }
    };
    {
        let mut q = url.query_pairs_mut();
        for (k, v) in pairs {
            q.append_pair(k, v);
        }
    }
    see_other(url.as_str())
}

/// An error sent back to the client at its (trusted) redirect URI.
pub fn redirect_error(
    s: &AppState,
    redirect_uri: &str,
    state: Option<&str>,
    e: &OAuthError,
) -> Response {
    let mut pairs = vec![
        ("error", e.code.as_str()),
        ("error_description", e.description.as_ref()),
    ];
    if let Some(st) = state {
        pairs.push(("state", st));
    }
    pairs.push(("iss", s.settings.issuer_str.as_str()));
    redirect_with(redirect_uri, &pairs)
}

fn untrusted_page(u: Untrusted) -> Response {
    let (title, msg) = match u {
        Untrusted::MissingClient => (
            "Invalid request",
            "The request names no application (client_id is missing).",
        ),
        Untrusted::UnknownClient => (
            "Unknown application",
            "The application that sent you here is not registered.",
        ),
        Untrusted::MissingRedirect => (
            "Invalid request",
            "The request must name the address to return to (redirect_uri).",
        ),
        Untrusted::UnregisteredRedirect => (
            "Unregistered redirect URI",
            "The address to return to is not registered for this application.",
        ),
        Untrusted::Repeated => ("Invalid request", "A parameter appears more than once."),
    };
    let code = if u == Untrusted::UnknownClient {
        "invalid_client"
    } else {
        "invalid_request"
    };
    page(StatusCode::BAD_REQUEST, title, msg, code)
}

async fn run(s: &AppState, headers: &HeaderMap, p: &Params) -> Response {
    let client_id = match p.one("client_id") {
        Ok(Some(c)) => c,
        Ok(None) => return untrusted_page(Untrusted::MissingClient),
        Err(_) => return untrusted_page(Untrusted::Repeated),
    };
    let client = match s.clients.get(client_id).await {
        Ok(Some(c)) => c,
        Ok(None) => return untrusted_page(Untrusted::UnknownClient),
        Err(e) => {
            tracing::error!(error = %e, "client lookup failed");
            return unavailable_page();
        }
    };
    let (redirect_uri, given) = match authorize::trusted_redirect(&client, p) {
        Ok(r) => r,
        Err(u) => return untrusted_page(u),
    };
    // From here on the redirect URI is trusted.
    let state_param = p.one("state").ok().flatten().map(str::to_string);
    let request = match authorize::check(
        &client,
        p,
        redirect_uri.clone(),
        given,
        s.settings.raw.require_pkce_for_confidential,
    ) {
        Ok(r) => r,
        Err(e) => return redirect_error(s, &redirect_uri, state_param.as_deref(), &e),
    };
    // One flow cookie per browser, shared by its pending requests (two tabs must not evict each other).
    let existing =
        session::cookie(headers, &session::cookie_name(s, session::FLOW)).filter(|f| f.len() == 43);
    let (flow, set_flow) = match existing {
        Some(f) => (f, false),
        None => (session::new_flow().0, true),
    };
    let id = random_token(16);
    let pending = Pending {
        csrf: random_token(32),
        flow_hash: session::hash(&flow),
        login_done_at: None,
        consent_done: false,
        created_at: s.clock.now(),
        request,
    };
    if let Err(e) = session::save_pending(s, &id, &pending).await {
        tracing::error!(error = %e, "cannot park the authorization request");
        return redirect_error(
            s,
            &redirect_uri,
            state_param.as_deref(),
            &OAuthError::unavailable("the server cannot start a sign-in right now"),
        );
    }
    let mut r = proceed(s, headers, &id, pending).await;
    if set_flow {
        r.headers_mut().append(
            header::SET_COOKIE,
            session::set_cookie(s, session::FLOW, &flow, None),
        );
    }
    r
}

#[derive(Deserialize)]
pub struct ReqQuery {
    #[serde(default)]
    pub req: String,
}

/// Back from the login or consent page.
pub async fn resume(
    State(s): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<ReqQuery>,
) -> Response {
    match session::load_pending(&s, &headers, &q.req).await {
        Ok(Some(p)) => proceed(&s, &headers, &q.req, p).await,
        Ok(None) => expired_page(),
        Err(_) => unavailable_page(),
    }
}

/// Decides the next step for a pending request: sign in, consent, or the code. The person is whoever
/// the browser's session cookie says.
pub async fn proceed(s: &AppState, headers: &HeaderMap, id: &str, pending: Pending) -> Response {
    let signed_in = async {
        let Some((_, sess)) = session::current(s, headers).await? else {
            return Ok(None);
        };
        Ok::<_, crate::store::StoreError>(match s.store.user(&sess.user_id).await? {
            Some(u) if !u.disabled => Some((sess, u)),
            _ => None,
        })
    };
    match signed_in.await {
        Ok(who) => decide(s, headers, id, pending, Parked::AsStored, who).await,
        Err(_) => unavailable_redirect(s, &pending),
    }
}

fn unavailable_redirect(s: &AppState, pending: &Pending) -> Response {
    let req = &pending.request;
    redirect_error(
        s,
        &req.redirect_uri,
        req.state.as_deref(),
        &OAuthError::unavailable("the server cannot complete the sign-in right now; retry later"),
    )
}

/// Whether the pending request handed to [`decide`] is what the ephemeral store holds under its id.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Parked {
    AsStored,
    /// Changed since (the login page noted the sign-in): a step that continues the flow later (consent,
    /// a second factor) stores it first.
    Changed,
}

/// The next step for a pending request, given who is signed in on this browser (`None`: nobody, or a
/// disabled account). The login page calls this directly with the session it has just started, so a
/// sign-in goes on to the code (or the consent page) without another round trip through the browser.
pub async fn decide(
    s: &AppState,
    headers: &HeaderMap,
    id: &str,
    pending: Pending,
    parked: Parked,
    who: Option<(Session, User)>,
) -> Response {
    // Before leaving for a page that resumes this request later.
    let keep = async |p: &Pending| match parked {
        Parked::Changed => session::save_pending(s, id, p).await.is_ok(),
        Parked::AsStored => true,
    };
    let req = &pending.request;
    let st = req.state.as_deref();
    let fail = |e: OAuthError| redirect_error(s, &req.redirect_uri, st, &e);
    let unavailable = || unavailable_redirect(s, &pending);
    let client = match s.clients.get(&req.client_id).await {
        Ok(Some(c)) => c,
        Ok(None) => return untrusted_page(Untrusted::UnknownClient),
        Err(_) => return unavailable(),
    };
    let now = s.clock.now();
    let fresh_login = pending.login_done_at.is_some();
    let need_login = match &who {
        Some((sess, _)) => {
            !fresh_login
                && (req.has_prompt(Prompt::Login)
                    || req.has_prompt(Prompt::SelectAccount)
                    || req.max_age.is_some_and(|m| now - sess.auth_time > m))
        }
        None => true,
    };
    if need_login {
        if req.has_prompt(Prompt::None) {
            return fail(OAuthError::new(
                ErrorCode::LoginRequired,
                "the person is not signed in",
            ));
        }
        if !keep(&pending).await {
            return unavailable();
        }
        return super::login::page_for(s, client.name.clone(), id.to_string(), pending);
    }
    let Some((sess, user)) = who else {
        return unavailable();
    };
    // A password-only session meets a request, client or policy that needs a second factor.
    if let Some(r) = super::mfa::step_up(s, headers, id, req, &client, &user, &sess).await {
        if !keep(&pending).await {
            return unavailable();
        }
        return r;
    }
    if !client.skip_consent {
        let granted = match s.store.consented_scopes(&user.id, &client.id).await {
            Ok(g) => g,
            Err(_) => return unavailable(),
        };
        let covered = req.scopes.iter().all(|sc| granted.contains(sc));
        if !pending.consent_done && (!covered || req.has_prompt(Prompt::Consent)) {
            if req.has_prompt(Prompt::None) {
                return fail(OAuthError::new(
                    ErrorCode::ConsentRequired,
                    "the person has not granted these scopes",
                ));
            }
            if !keep(&pending).await {
                return unavailable();
            }
            return see_other(&format!("{}?req={id}", paths::CONSENT));
        }
    }
    let code = random_token(32);
    let record = CodeRecord {
        client_id: client.id.clone(),
        redirect_uri: req.redirect_uri.clone(),
        redirect_uri_given: req.redirect_uri_given,
        scopes: req.scopes.clone(),
        nonce: req.nonce.clone(),
        code_challenge: req.code_challenge.clone(),
        resources: req.resources.clone(),
        user_id: user.id.clone(),
        sid: sess.sid.clone(),
        auth_time: sess.auth_time,
        amr: sess.amr.clone(),
        acr: sess.acr.clone(),
        expires_at: now + s.settings.raw.authorization_code_ttl_secs as i64,
    };
    let ttl = Duration::from_secs(s.settings.raw.authorization_code_ttl_secs);
    if s.ephemeral
        .put(
            &CodeRecord::key(&code),
            &serde_json::to_vec(&record).unwrap_or_default(),
            ttl,
        )
        .await
        .is_err()
    {
        return unavailable();
    }
    // The request is answered: it cannot be resumed again.
    let _ = s.ephemeral.delete(&session::pending_key(id)).await;
    let mut pairs = vec![("code", code.as_str())];
    if let Some(v) = st {
        pairs.push(("state", v));
    }
    pairs.push(("iss", s.settings.issuer_str.as_str()));
    redirect_with(&req.redirect_uri, &pairs)
}
