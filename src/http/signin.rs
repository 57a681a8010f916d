//! `GET|POST /login` without a pending authorization request: signing in to Custos itself, to reach
//! the account pages. `return_to` names where to go afterwards and is only ever one of our own account
//! paths (an allow-list of relative paths, never a URL), so the page cannot be used as an open
//! redirect.

use std::net::IpAddr;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use zeroize::Zeroizing;

use super::authorize::{see_other, unavailable_page};
use super::{csrf, paths};
use crate::app::AppState;
use crate::oauth::grants::Params;
use crate::session;
use crate::views::accounts::SignInPage;

#[derive(Debug, Default, Deserialize)]
pub struct SignInQuery {
    #[serde(default)]
    pub return_to: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
}

/// `raw` when it is an account path (`/account` or `/account/<segment>/…` of lower-case letters,
/// digits, `-` and `_`), else `/account`. No scheme, host, query, `//`, `..` or backslash can pass.
pub fn safe_return_to(raw: Option<&str>) -> String {
    let ok = |p: &str| {
        p.len() <= 128
            && (p == paths::ACCOUNT
                || p.strip_prefix(paths::ACCOUNT)
                    .and_then(|rest| rest.strip_prefix('/'))
                    .is_some_and(|rest| {
                        rest.split('/').all(|seg| {
                            !seg.is_empty()
                                && seg.bytes().all(|b| {
                                    b.is_ascii_lowercase()
                                        || b.is_ascii_digit()
                                        || b == b'-'
                                        || b == b'_'
                                })
                        })
                    }))
    };
    match raw {
        Some(p) if ok(p) => p.to_string(),
        _ => paths::ACCOUNT.to_string(),
    }
}

/// The address of the sign-in page that returns to `path` afterwards.
pub fn login_url(path: &str) -> String {
    format!("{}?return_to={}", paths::LOGIN, safe_return_to(Some(path)))
}

/// True when a posted form is the stand-alone sign-in (it names `return_to`, not `req`).
pub fn is_signin_form(body: &[u8]) -> bool {
    let p = Params::parse(body);
    p.0.iter().any(|(k, _)| k == "return_to") && !p.0.iter().any(|(k, _)| k == "req")
}

fn no_store(mut r: Response) -> Response {
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn render(
    s: &AppState,
    headers: &HeaderMap,
    return_to: String,
    email: String,
    error: Option<&'static str>,
    status: StatusCode,
) -> Response {
    let (token, set) = csrf::for_browser(s, headers);
    let mut r = (
        status,
        SignInPage {
            return_to,
            csrf: token,
            email,
            error,
            registration: s.settings.raw.registration != crate::config::Registration::Closed,
        },
    )
        .into_response();
    if let Some(c) = set {
        r.headers_mut().append(header::SET_COOKIE, c);
    }
    no_store(r)
}

pub async fn get(s: &AppState, headers: &HeaderMap, q: SignInQuery) -> Response {
    let return_to = safe_return_to(q.return_to.as_deref());
    // Already signed in: straight on.
    if let Ok(Some(_)) = session::current(s, headers).await {
        return see_other(&return_to);
    }
    let email = q.email.unwrap_or_default().chars().take(320).collect();
    render(s, headers, return_to, email, None, StatusCode::OK)
}

pub async fn post(s: &AppState, ip: IpAddr, headers: &HeaderMap, body: &[u8]) -> Response {
    let p = Params::parse(body);
    let field = |n: &str| p.one(n).ok().flatten().unwrap_or_default().to_string();
    let return_to = safe_return_to(Some(&field("return_to")));
    if !super::token::is_form(headers) || !csrf::browser_matches(s, headers, &field("csrf")) {
        return super::login::csrf_failure();
    }
    let email = field("email");
    let password = Zeroizing::new(field("password"));
    let user =
        match crate::identity::login::password_login(s, &email, password, Some(ip.to_string()))
            .await
        {
            Ok(u) => u,
            Err(e) => {
                tracing::error!(error = %e, "sign-in: database unavailable");
                return unavailable_page();
            }
        };
    let (error, status) = (user.message(), user.status());
    let Some(verified) = user.into_verified() else {
        return render(
            s,
            headers,
            return_to,
            email,
            error,
            StatusCode::from_u16(status).unwrap_or(StatusCode::UNAUTHORIZED),
        );
    };
    let remember_me = session::remember_me_checked(&p);
    let crate::identity::login::Verified {
        user,
        factors,
        event,
    } = verified;
    // An enrolled person finishes with the second factor, which then goes on to `return_to`.
    if let Some(r) =
        super::mfa::after_signin_password(s, headers, &user, factors, &return_to, remember_me).await
    {
        crate::audit::record(&s.store, s.clock.now(), event).await;
        return r;
    }
    let signed =
        super::login::start_password_session(s, headers, &user, ip, remember_me, event).await;
    let cookie = match signed {
        Ok(c) => c.set_cookie(s),
        Err(_) => return unavailable_page(),
    };
    let mut r = see_other(&return_to);
    r.headers_mut().append(header::SET_COOKIE, cookie);
    r
}

#[cfg(test)]
mod tests {
    use super::safe_return_to;

    #[test]
    fn only_account_paths_pass() {
        for ok in [
            "/account",
            "/account/password",
            "/account/sessions",
            "/account/mfa/totp",
        ] {
            assert_eq!(safe_return_to(Some(ok)), ok);
        }
        for bad in [
            "https://evil.example/account",
            "//evil.example/account",
            "/account//evil.example",
            "/account/../token",
            "/account/x?y=1",
            "/account\\@evil",
            "/accounts",
            "/account/",
            "/ACCOUNT",
            "/login",
            "",
            "/account/%2e%2e",
        ] {
            assert_eq!(safe_return_to(Some(bad)), "/account", "{bad}");
        }
        assert_eq!(safe_return_to(None), "/account");
    }
}
