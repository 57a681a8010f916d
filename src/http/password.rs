//! Passwords: `GET|POST /password/forgot` (always the same answer), `GET|POST /password/reset` (the
//! mailed link: a form, then the new password), and `GET|POST /account/password` (change while signed
//! in, with the current password).

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use zeroize::Zeroizing;

use super::account::{Account, field, private, require, require_form};
use super::authorize::unavailable_page;
use super::client_ip::ClientIp;
use super::register::{TokenQuery, info, invalid_link, with_form_cookie};
use super::{csrf, paths};
use crate::app::AppState;
use crate::identity::accounts::{self, ChangeOutcome, ResetOutcome};
use crate::views::accounts::{ForgotPasswordPage, PasswordPage, ResetPasswordPage};

pub async fn forgot_get(State(s): State<AppState>, headers: HeaderMap) -> Response {
    let (token, set) = csrf::for_browser(&s, &headers);
    with_form_cookie(private(ForgotPasswordPage { csrf: token }), set)
}

/// The same page, status and (near enough) time for every address: the work happens afterwards.
pub async fn forgot_post(
    State(s): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let p = match csrf::browser_form(&s, &headers, &body) {
        Ok(p) => p,
        Err(r) => return r,
    };
    accounts::forgot_password(&s, &field(&p, "email"), Some(ip.to_string()));
    info(
        StatusCode::OK,
        "Check your inbox",
        &[
            "If an account uses this address, a link to choose a new password is on its way. It works once, for 30 minutes.",
            "No message after a few minutes? Look in your spam folder, or check that you typed the address of your account.",
        ],
        Some(("Back to sign-in", paths::LOGIN)),
    )
}

fn reset_form(
    s: &AppState,
    headers: &HeaderMap,
    token: String,
    email: String,
    error: Option<String>,
    status: StatusCode,
) -> Response {
    let (csrf_token, set) = csrf::for_browser(s, headers);
    with_form_cookie(
        private((
            status,
            ResetPasswordPage {
                csrf: csrf_token,
                token,
                email,
                password_error: error,
                min_length: s.settings.raw.password_min_length,
            },
        )),
        set,
    )
}

fn bad_reset_link() -> Response {
    invalid_link(
        "password reset",
        Some(("Ask for a new link", paths::PASSWORD_FORGOT)),
    )
}

pub async fn reset_get(
    State(s): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<TokenQuery>,
) -> Response {
    match accounts::reset_target(&s, &q.token).await {
        Ok(Some(u)) => reset_form(&s, &headers, q.token, u.email, None, StatusCode::OK),
        Ok(None) => bad_reset_link(),
        Err(_) => unavailable_page(),
    }
}

pub async fn reset_post(
    State(s): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let p = match csrf::browser_form(&s, &headers, &body) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let token = field(&p, "token");
    let pw = Zeroizing::new(field(&p, "password"));
    match accounts::reset_password(&s, &token, pw, Some(ip.to_string())).await {
        Ok(ResetOutcome::Done) => info(
            StatusCode::OK,
            "Password changed",
            &["Your new password is set, and every other sign-in of your account has ended."],
            Some(("Sign in", paths::LOGIN)),
        ),
        Ok(ResetOutcome::Weak(w)) => {
            let email = match accounts::reset_target(&s, &token).await {
                Ok(Some(u)) => u.email,
                _ => String::new(),
            };
            reset_form(
                &s,
                &headers,
                token,
                email,
                Some(w.to_string()),
                StatusCode::BAD_REQUEST,
            )
        }
        Ok(ResetOutcome::Invalid) => bad_reset_link(),
        Err(e) => {
            tracing::error!(error = %e, "password reset failed");
            unavailable_page()
        }
    }
}

fn change_page(s: &AppState, a: &Account) -> PasswordPage {
    PasswordPage {
        nav: "password",
        notice: None,
        csrf: a.csrf.clone(),
        email: a.user.email.clone(),
        current_error: None,
        new_error: None,
        min_length: s.settings.raw.password_min_length,
    }
}

pub async fn change_get(State(s): State<AppState>, headers: HeaderMap) -> Response {
    match require(&s, &headers, paths::ACCOUNT_PASSWORD).await {
        Ok(a) => private(change_page(&s, &a)),
        Err(r) => r,
    }
}

pub async fn change_post(
    State(s): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (a, p) = match require_form(&s, &headers, &body, paths::ACCOUNT_PASSWORD).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let current = Zeroizing::new(field(&p, "current_password"));
    let new = Zeroizing::new(field(&p, "new_password"));
    let mut page = change_page(&s, &a);
    let status = match accounts::change_password(
        &s,
        &a.user,
        &a.session.sid,
        current,
        new,
        Some(ip.to_string()),
    )
    .await
    {
        Ok(ChangeOutcome::Done { sessions_ended }) => {
            page.notice = Some(match sessions_ended {
                0 => "Your password was changed.".to_string(),
                1 => "Your password was changed, and 1 other session was signed out.".to_string(),
                n => format!("Your password was changed, and {n} other sessions were signed out."),
            });
            StatusCode::OK
        }
        Ok(ChangeOutcome::WrongCurrent) => {
            page.current_error = Some("This is not your current password.".into());
            StatusCode::UNAUTHORIZED
        }
        Ok(ChangeOutcome::Locked) => {
            page.current_error = Some("Too many wrong passwords. Try again later.".into());
            StatusCode::TOO_MANY_REQUESTS
        }
        Ok(ChangeOutcome::Weak(w)) => {
            page.new_error = Some(w.to_string());
            StatusCode::BAD_REQUEST
        }
        Err(e) => {
            tracing::error!(error = %e, "password change failed");
            return unavailable_page();
        }
    };
    private((status, page))
}
