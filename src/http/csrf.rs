//! CSRF tokens for the forms that do not belong to a pending authorization request: the stand-alone
//! sign-in, registration, password reset, email verification and the account pages.
//!
//! A token is an HMAC (key derived from the KEK, so every replica computes the same one) over what the
//! form is bound to: the browser's flow cookie for anonymous forms, the session cookie for a signed-in
//! person's forms. Nothing is stored; a form posted from another site lacks the cookie-bound value, and
//! a token from another browser or session does not match. Compared in constant time.

use aws_lc_rs::hmac;
use axum::http::{HeaderMap, HeaderValue};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::app::AppState;
use crate::session;

/// What the CSRF key is derived from the KEK for (`AppState::csrf_key`).
pub const KEY_LABEL: &[u8] = b"custos-form-csrf-v1";

fn token_for(s: &AppState, binding: &str) -> String {
    URL_SAFE_NO_PAD.encode(hmac::sign(&s.csrf_key, binding.as_bytes()).as_ref())
}

/// The token of a signed-in person's forms (bound to the session cookie, so it changes at sign-in).
pub fn for_session(s: &AppState, session_cookie: &str) -> String {
    token_for(s, &format!("session:{}", session::hash(session_cookie)))
}

pub fn session_matches(s: &AppState, session_cookie: &str, given: &str) -> bool {
    session::csrf_matches(&for_session(s, session_cookie), given)
}

/// The token of an anonymous form, and the flow cookie to set when the browser has none yet.
pub fn for_browser(s: &AppState, headers: &HeaderMap) -> (String, Option<HeaderValue>) {
    let existing =
        session::cookie(headers, &session::cookie_name(s, session::FLOW)).filter(|f| f.len() == 43);
    let (flow, set) = match existing {
        Some(f) => (f, None),
        None => {
            let f = session::new_flow().0;
            let c = session::set_cookie(s, session::FLOW, &f, None);
            (f, Some(c))
        }
    };
    (token_for(s, &format!("flow:{}", session::hash(&flow))), set)
}

pub fn browser_matches(s: &AppState, headers: &HeaderMap, given: &str) -> bool {
    let Some(flow) = session::cookie(headers, &session::cookie_name(s, session::FLOW)) else {
        return false;
    };
    session::csrf_matches(
        &token_for(s, &format!("flow:{}", session::hash(&flow))),
        given,
    )
}

/// The start of every anonymous form post: a form body carrying this browser's CSRF token; anything
/// else ends here with the "form expired" page.
// The error is the page every handler returns anyway; boxing it would only add an allocation.
#[allow(clippy::result_large_err)]
pub fn browser_form(
    s: &AppState,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<crate::oauth::grants::Params, axum::response::Response> {
    let p = crate::oauth::grants::Params::parse(body);
    let given = p.one("csrf").ok().flatten().unwrap_or_default();
    if !super::token::is_form(headers) || !browser_matches(s, headers, given) {
        return Err(super::login::csrf_failure());
    }
    Ok(p)
}
