//! The self-service account pages' common ground, and the profile page (`GET|POST /account`).
//!
//! Every account page needs a signed-in person: [`require`] finds the session behind the cookie or
//! answers with a redirect to the sign-in page that comes back here afterwards. Every account form is
//! checked by [`require_form`]: a form body, a live session and the session-bound CSRF token.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::authorize::{see_other, unavailable_page};
use super::{csrf, paths};
use crate::app::AppState;
use crate::oauth::grants::Params;
use crate::session::{self, Session};
use crate::store::User;
use crate::views::accounts::ProfilePage;

/// The signed-in person of a request to an account page.
pub struct Account {
    /// The session cookie's value (to bind CSRF tokens and to keep this session when ending others).
    pub cookie: String,
    pub session: Session,
    pub user: User,
    /// The CSRF token for this session's forms.
    pub csrf: String,
}

/// The signed-in person, or the response to send instead: a redirect to the sign-in page that returns
/// to `here` (an account path) afterwards.
pub async fn require(s: &AppState, headers: &HeaderMap, here: &str) -> Result<Account, Response> {
    let (cookie, sess) = match session::current(s, headers).await {
        Ok(Some(c)) => c,
        Ok(None) => return Err(see_other(&super::signin::login_url(here))),
        Err(_) => return Err(unavailable_page()),
    };
    let user = match s.store.user(&sess.user_id).await {
        Ok(Some(u)) if !u.disabled => u,
        Ok(_) => return Err(see_other(&super::signin::login_url(here))),
        Err(_) => return Err(unavailable_page()),
    };
    Ok(Account {
        csrf: csrf::for_session(s, &cookie),
        cookie,
        session: sess,
        user,
    })
}

/// [`require`] for a posted account form: also a form body and this session's CSRF token.
pub async fn require_form(
    s: &AppState,
    headers: &HeaderMap,
    body: &[u8],
    here: &str,
) -> Result<(Account, Params), Response> {
    let account = require(s, headers, here).await?;
    let p = Params::parse(body);
    let given = p.one("csrf").ok().flatten().unwrap_or_default();
    if !super::token::is_form(headers) || !csrf::session_matches(s, &account.cookie, given) {
        return Err(super::login::csrf_failure());
    }
    Ok((account, p))
}

/// A page the browser must not cache (it shows personal data and carries a CSRF token).
pub fn private(r: impl IntoResponse) -> Response {
    let mut r = r.into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

pub fn field(p: &Params, name: &str) -> String {
    p.one(name).ok().flatten().unwrap_or_default().to_string()
}

fn profile(a: &Account) -> ProfilePage {
    ProfilePage {
        nav: "profile",
        notice: None,
        error: None,
        csrf: a.csrf.clone(),
        name: a.user.name.clone(),
        name_error: None,
        email: a.user.email.clone(),
        email_verified: a.user.email_verified,
        pending_email: None,
        new_email: String::new(),
        email_error: None,
    }
}

pub async fn get(State(s): State<AppState>, headers: HeaderMap) -> Response {
    let a = match require(&s, &headers, paths::ACCOUNT).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let mut page = profile(&a);
    page.pending_email = s
        .store
        .pending_email_change(&a.user.id, &a.user.email, s.clock.now())
        .await
        .ok()
        .flatten();
    private(page)
}

/// Validates a display name: trimmed, 1–200 characters, no control characters.
pub fn check_name(raw: &str) -> Result<String, &'static str> {
    let n = raw.trim();
    if n.is_empty() {
        return Err("Enter your name.");
    }
    if n.chars().count() > 200 || n.chars().any(char::is_control) {
        return Err("Use at most 200 characters and no control characters.");
    }
    Ok(n.to_string())
}

/// `POST /account`: change the display name.
pub async fn post(State(s): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let (a, p) = match require_form(&s, &headers, &body, paths::ACCOUNT).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let name = match check_name(&field(&p, "name")) {
        Ok(n) => n,
        Err(e) => {
            let mut page = profile(&a);
            page.name = field(&p, "name");
            page.name_error = Some(e);
            return private((StatusCode::BAD_REQUEST, page));
        }
    };
    let now = s.clock.now();
    if s.store.set_user_name(&a.user.id, &name, now).await.is_err() {
        return unavailable_page();
    }
    crate::audit::record(
        &s.store,
        now,
        crate::audit::Event::new("profile_updated")
            .actor(&a.user.id)
            .subject(&a.user.id),
    )
    .await;
    let mut page = profile(&a);
    page.name = name;
    page.notice = Some("Your name was saved.");
    private(page)
}

/// `POST /account/email`: start an email change (the current password is required; the new address
/// gets a link and changes only when it is opened).
pub async fn email_post(
    State(s): State<AppState>,
    super::client_ip::ClientIp(ip): super::client_ip::ClientIp,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    use crate::identity::accounts::{self, Current};
    let (a, p) = match require_form(&s, &headers, &body, paths::ACCOUNT).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let raw = field(&p, "email");
    let mut page = profile(&a);
    page.new_email = raw.clone();
    let new = match crate::identity::normalize_email(&raw) {
        Ok(e) if e == a.user.email => {
            page.email_error = Some("This is already your address.");
            return private((StatusCode::BAD_REQUEST, page));
        }
        Ok(e) => e,
        Err(_) => {
            page.email_error = Some("Enter an address like name@example.com.");
            return private((StatusCode::BAD_REQUEST, page));
        }
    };
    let pw = zeroize::Zeroizing::new(field(&p, "current_password"));
    match accounts::verify_current(
        &s,
        &a.user,
        pw,
        Some(&ip.to_string()),
        "email_change_failed",
    )
    .await
    {
        Ok(Current::Right) => {}
        Ok(Current::Wrong) => {
            page.email_error = Some("Enter your current password to change the address.");
            return private((StatusCode::UNAUTHORIZED, page));
        }
        Ok(Current::Locked) => {
            page.email_error = Some("Too many wrong passwords. Try again later.");
            return private((StatusCode::TOO_MANY_REQUESTS, page));
        }
        Err(_) => return unavailable_page(),
    }
    if accounts::request_email_change(&s, &a.user, &new)
        .await
        .is_err()
    {
        return unavailable_page();
    }
    page.new_email = String::new();
    page.pending_email = Some(new);
    page.notice = Some("Check the inbox of the new address and open the link there.");
    private(page)
}

/// `POST /account/verify-email`: a new verification link for the current address.
pub async fn resend_post(State(s): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let (a, _) = match require_form(&s, &headers, &body, paths::ACCOUNT).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let mut page = profile(&a);
    page.notice = Some(if a.user.email_verified {
        "Your address is already confirmed."
    } else if crate::identity::accounts::resend_verification(&s, &a.user).await {
        "A new link is on its way. Open it to confirm your address."
    } else {
        "A link was sent less than a minute ago. Wait a moment before asking again."
    });
    private(page)
}
