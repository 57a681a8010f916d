//! `GET|POST /login`: the sign-in page of a pending authorization request.

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use zeroize::Zeroizing;

use super::authorize::{Parked, ReqQuery, expired_page, page, unavailable_page};
use crate::app::AppState;
use crate::identity::login::Verified;
use crate::oauth::grants::Params;
use crate::session;
use crate::views::LoginPage;

async fn client_name(s: &AppState, id: &str) -> String {
    match s.clients.get(id).await {
        Ok(Some(c)) => c.name.clone(),
        _ => id.to_string(),
    }
}

pub async fn get(
    State(s): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<ReqQuery>,
    Query(signin): Query<super::signin::SignInQuery>,
) -> Response {
    // Without a pending authorization request: the stand-alone sign-in (to the account pages).
    if q.req.is_empty() {
        return super::signin::get(&s, &headers, signin).await;
    }
    let pending = match session::load_pending(&s, &headers, &q.req).await {
        Ok(Some(p)) => p,
        Ok(None) => return expired_page(),
        Err(_) => return unavailable_page(),
    };
    let name = client_name(&s, &pending.request.client_id).await;
    page_for(&s, name, q.req, pending)
}

/// The sign-in page of the pending request `req`, for the application called `client_name`. Shown
/// at `GET /login` and, with no session to go on, straight from `/authorize` (one redirect fewer).
pub fn page_for(
    s: &AppState,
    client_name: String,
    req: String,
    pending: session::Pending,
) -> Response {
    let mut r = LoginPage {
        client_name,
        req,
        csrf: pending.csrf,
        email: pending.request.login_hint.unwrap_or_default(),
        error: None,
        passkey: super::passkey::passwordless(s),
    }
    .into_response();
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    r.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        super::csp_with_form_target(Some(&pending.request.redirect_uri)),
    );
    r
}

pub fn csrf_failure() -> Response {
    page(
        StatusCode::FORBIDDEN,
        "This form has expired",
        "The form was not sent from this page or is too old. Go back and try again.",
        "invalid_request",
    )
}

/// The shared start of every form post in a sign-in flow: a form body whose `req` names a pending
/// request of this browser and whose `csrf` matches it. Anything else ends here with its page.
pub async fn pending_form(
    s: &AppState,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(Params, String, session::Pending), Response> {
    if !super::token::is_form(headers) {
        return Err(csrf_failure());
    }
    let p = Params::parse(body);
    let field = |n: &str| p.one(n).ok().flatten().unwrap_or_default().to_string();
    let req = field("req");
    let pending = match session::load_pending(s, headers, &req).await {
        Ok(Some(p)) => p,
        Ok(None) => return Err(expired_page()),
        Err(_) => return Err(unavailable_page()),
    };
    if !session::csrf_matches(&pending.csrf, &field("csrf")) {
        return Err(csrf_failure());
    }
    Ok((p, req, pending))
}

pub async fn post(
    State(s): State<AppState>,
    crate::http::client_ip::ClientIp(ip): crate::http::client_ip::ClientIp,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if super::signin::is_signin_form(&body) {
        return super::signin::post(&s, ip, &headers, &body).await;
    }
    let (p, req, mut pending) = match pending_form(&s, &headers, &body).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let field = |n: &str| p.one(n).ok().flatten().unwrap_or_default().to_string();
    let email = field("email");
    let password = Zeroizing::new(field("password"));
    let user =
        match crate::identity::login::password_login(&s, &email, password, Some(ip.to_string()))
            .await
        {
            Ok(u) => u,
            Err(e) => {
                tracing::error!(error = %e, "login: database unavailable");
                return unavailable_page();
            }
        };
    let (error, status) = (user.message(), user.status());
    let Some(verified) = user.into_verified() else {
        let mut r = LoginPage {
            client_name: client_name(&s, &pending.request.client_id).await,
            req,
            csrf: pending.csrf,
            email,
            error,
            passkey: super::passkey::passwordless(&s),
        }
        .into_response();
        *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::UNAUTHORIZED);
        r.headers_mut().insert(
            header::CONTENT_SECURITY_POLICY,
            super::csp_with_form_target(Some(&pending.request.redirect_uri)),
        );
        return r;
    };
    let remember_me = session::remember_me_checked(&p);
    let Verified {
        user,
        factors,
        event,
    } = verified;
    // A second factor, when one is due, finishes the sign-in on its own page.
    if let Some(r) =
        super::mfa::after_password(&s, &headers, &req, &pending, &user, factors, remember_me).await
    {
        crate::audit::record(&s.store, s.clock.now(), event).await;
        return r;
    }
    let signed = match start_password_session(&s, &headers, &user, ip, remember_me, event).await {
        Ok(c) => c,
        Err(_) => return unavailable_page(),
    };
    // Noted so that prompt=login / max_age do not ask again when the consent page (or a step-up)
    // resumes the request; `decide` stores it only then, as the code ends the flow.
    pending.login_done_at = Some(s.clock.now());
    let cookie = signed.set_cookie(&s);
    let who = Some((signed.session, user));
    let mut r = super::authorize::decide(&s, &headers, &req, pending, Parked::Changed, who).await;
    r.headers_mut().append(header::SET_COOKIE, cookie);
    r
}

/// Signs `user` in on this browser after a password check (a new session, or this browser's session
/// of the same person re-authenticated with a new cookie), writing `password_checked` (its
/// `login_succeeded` event) with the session; the caller sets the cookie. Shared by the authorization
/// flow's login and the stand-alone sign-in.
pub async fn start_password_session(
    s: &AppState,
    headers: &HeaderMap,
    user: &crate::store::User,
    ip: std::net::IpAddr,
    remember_me: bool,
    password_checked: crate::audit::Event,
) -> Result<crate::sessions::SignedIn, crate::store::StoreError> {
    session::sign_in_browser(
        s,
        headers,
        ip,
        &user.id,
        vec!["pwd".into()],
        session::ACR_PASSWORD.into(),
        remember_me,
        vec![password_checked],
    )
    .await
}
