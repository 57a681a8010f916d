//! `GET|POST /register` (self-registration, when `registration` is `open` or `invite`) and
//! `GET|POST /verify-email` (the link in a verification mail: GET shows a confirm button, POST uses
//! the token, so a mail scanner that fetches links cannot use it up).

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use serde::Deserialize;
use zeroize::Zeroizing;

use super::account::{field, private};
use super::authorize::unavailable_page;
use super::client_ip::ClientIp;
use super::{csrf, paths};
use crate::app::AppState;
use crate::config::Registration;
use crate::identity::accounts::{self, FieldErrors, RegisterForm, RegisterOutcome, Verified};
use crate::views::accounts::{InfoPage, RegisterPage, VerifyEmailPage};

/// An information page (no form), never cached.
pub fn info(
    status: StatusCode,
    title: &str,
    paragraphs: &[&str],
    link: Option<(&str, &str)>,
) -> Response {
    private((
        status,
        InfoPage {
            title: title.into(),
            paragraphs: paragraphs.iter().map(|p| p.to_string()).collect(),
            link: link.map(|(l, h)| (l.to_string(), h.to_string())),
        },
    ))
}

/// A page with an anonymous form: its CSRF token, and the flow cookie when the browser has none.
pub fn with_form_cookie(mut r: Response, set: Option<axum::http::HeaderValue>) -> Response {
    if let Some(c) = set {
        r.headers_mut().append(header::SET_COOKIE, c);
    }
    r
}

fn not_open() -> Response {
    info(
        StatusCode::NOT_FOUND,
        "Registration is closed",
        &["New accounts are created by the administrator of this service."],
        Some(("Sign in", paths::LOGIN)),
    )
}

fn bad_invite() -> Response {
    info(
        StatusCode::FORBIDDEN,
        "This invitation cannot be used",
        &["The invitation link is unknown, already used or expired. Ask for a new one."],
        None,
    )
}

#[derive(Deserialize)]
pub struct RegisterQuery {
    #[serde(default)]
    invite: Option<String>,
}

fn form_page(
    s: &AppState,
    csrf: String,
    invite: Option<String>,
    email: String,
    name: String,
    errors: FieldErrors,
) -> RegisterPage {
    RegisterPage {
        csrf,
        invite,
        email,
        name,
        email_error: errors.email,
        name_error: errors.name,
        password_error: errors.password,
        min_length: s.settings.raw.password_min_length,
    }
}

pub async fn get(
    State(s): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<RegisterQuery>,
) -> Response {
    let mut email = String::new();
    match s.settings.raw.registration {
        Registration::Closed => return not_open(),
        Registration::Open => {}
        Registration::Invite => {
            match accounts::live_invite(&s, q.invite.as_deref().unwrap_or("")).await {
                Ok(Some(bound)) => email = bound.unwrap_or_default(),
                Ok(None) => return bad_invite(),
                Err(_) => return unavailable_page(),
            }
        }
    }
    let (token, set) = csrf::for_browser(&s, &headers);
    let invite = q
        .invite
        .filter(|_| s.settings.raw.registration == Registration::Invite);
    with_form_cookie(
        private(form_page(
            &s,
            token,
            invite,
            email,
            String::new(),
            FieldErrors::default(),
        )),
        set,
    )
}

pub async fn post(
    State(s): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if s.settings.raw.registration == Registration::Closed {
        return not_open();
    }
    let p = match csrf::browser_form(&s, &headers, &body) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let invite = Some(field(&p, "invite")).filter(|i| !i.is_empty());
    let form = RegisterForm {
        email: field(&p, "email"),
        name: field(&p, "name"),
        password: Zeroizing::new(field(&p, "password")),
        invite: invite.clone(),
    };
    let (email, name) = (form.email.clone(), form.name.clone());
    match accounts::register(&s, form, Some(ip.to_string())).await {
        Ok(RegisterOutcome::CheckInbox { email }) => info(
            StatusCode::OK,
            "Check your inbox",
            &[
                &format!(
                    "We sent a message to {email}. Open the link in it to confirm your address, then sign in."
                ),
                "No message after a few minutes? Look in your spam folder, or sign in and ask for a new link.",
            ],
            Some(("Sign in", paths::LOGIN)),
        ),
        Ok(RegisterOutcome::Invalid(errors)) => {
            let (token, set) = csrf::for_browser(&s, &headers);
            with_form_cookie(
                private((
                    StatusCode::BAD_REQUEST,
                    form_page(&s, token, invite, email, name, errors),
                )),
                set,
            )
        }
        Ok(RegisterOutcome::NotAllowed) => bad_invite(),
        Err(e) => {
            tracing::error!(error = %e, "registration failed");
            unavailable_page()
        }
    }
}

#[derive(Deserialize)]
pub struct TokenQuery {
    #[serde(default)]
    pub token: String,
}

pub fn invalid_link(what: &str, again: Option<(&str, &str)>) -> Response {
    info(
        StatusCode::BAD_REQUEST,
        "This link cannot be used",
        &[&format!(
            "The {what} link is unknown, already used or expired."
        )],
        again,
    )
}

pub async fn verify_get(
    State(s): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<TokenQuery>,
) -> Response {
    match accounts::verification_is_live(&s, &q.token).await {
        Ok(true) => {
            let (token, set) = csrf::for_browser(&s, &headers);
            with_form_cookie(
                private(VerifyEmailPage {
                    csrf: token,
                    token: q.token,
                }),
                set,
            )
        }
        Ok(false) => invalid_link(
            "verification",
            Some(("Sign in to ask for a new one", paths::ACCOUNT)),
        ),
        Err(_) => unavailable_page(),
    }
}

pub async fn verify_post(State(s): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let p = match csrf::browser_form(&s, &headers, &body) {
        Ok(p) => p,
        Err(r) => return r,
    };
    match accounts::verify_email(&s, &field(&p, "token")).await {
        Ok(Verified::Address) => info(
            StatusCode::OK,
            "Address confirmed",
            &["Thank you: your email address is confirmed."],
            Some(("Go to your account", paths::ACCOUNT)),
        ),
        Ok(Verified::Changed) => info(
            StatusCode::OK,
            "Address changed",
            &["Your account now uses this email address."],
            Some(("Go to your account", paths::ACCOUNT)),
        ),
        Ok(Verified::Taken) => info(
            StatusCode::CONFLICT,
            "Address not changed",
            &["Another account uses this address now, so yours keeps its current one."],
            Some(("Go to your account", paths::ACCOUNT)),
        ),
        Ok(Verified::Invalid) => invalid_link(
            "verification",
            Some(("Sign in to ask for a new one", paths::ACCOUNT)),
        ),
        Err(_) => unavailable_page(),
    }
}
