//! RFC 6750 on the wire: taking a bearer access token off a request (§2) and answering with a
//! `WWW-Authenticate: Bearer` challenge (§3).
//!
//! Accepted: the `Authorization: Bearer` header (§2.1) and, on a form-encoded POST, an `access_token`
//! body parameter (§2.2). Refused with `invalid_request`: a token in the URI query (§2.3 lets a server
//! refuse it; query strings end up in logs, proxies and browser history), and more than one method at
//! once (§3.1).

use axum::Json;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::error::no_store;
use super::token::is_form;
use crate::oauth::error::{ErrorCode, OAuthError};
use crate::oauth::grants::Params;

/// RFC 6750 §2.1 `b64token`: `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
fn is_b64token(t: &str) -> bool {
    let body = t.trim_end_matches('=');
    !body.is_empty()
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b))
}

/// The bearer token the request carries, if any. `form_body` is the body of a POST (`None` for GET).
pub fn token(
    headers: &HeaderMap,
    query: Option<&str>,
    form_body: Option<&[u8]>,
) -> Result<Option<String>, OAuthError> {
    if let Some(q) = query
        && url::form_urlencoded::parse(q.as_bytes()).any(|(k, _)| k == "access_token")
    {
        return Err(OAuthError::invalid_request(
            "access tokens in the URI query are not accepted; use the Authorization header",
        ));
    }
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let from_header = match (values.next(), values.next()) {
        (None, _) => None,
        (Some(_), Some(_)) => {
            return Err(OAuthError::invalid_request(
                "more than one Authorization header",
            ));
        }
        (Some(v), None) => {
            let v = v
                .to_str()
                .map_err(|_| OAuthError::invalid_request("malformed Authorization header"))?;
            match v.split_once(' ') {
                Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => {
                    let t = rest.trim_start_matches(' ');
                    if !is_b64token(t) {
                        return Err(OAuthError::invalid_request("malformed Bearer credentials"));
                    }
                    Some(t.to_string())
                }
                // Another scheme (Basic, say) carries no bearer token.
                _ => None,
            }
        }
    };
    let from_body = match form_body {
        Some(b) if is_form(headers) => Params::parse(b).one("access_token")?.map(str::to_string),
        _ => None,
    };
    match (from_header, from_body) {
        (Some(_), Some(_)) => Err(OAuthError::invalid_request(
            "send the access token in the Authorization header or the body, not both",
        )),
        (h, b) => Ok(h.or(b)),
    }
}

/// §3: a request without any token gets a bare challenge and no error information.
pub fn missing() -> Response {
    let mut r = StatusCode::UNAUTHORIZED.into_response();
    r.headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    no_store(r)
}

/// Keeps a description within §3's `error_description` characters (%x20-21 / %x23-5B / %x5D-7E).
fn quotable(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            ' '..='~' if c != '"' && c != '\\' => c,
            _ => '?',
        })
        .collect()
}

/// §3.1 errors with their challenge; `scope` is named for `insufficient_scope`. Errors that are not the
/// token's (503, 500) render as usual, without a challenge.
pub fn challenge(e: OAuthError, scope: Option<&str>) -> Response {
    if !matches!(
        e.code,
        ErrorCode::InvalidRequest | ErrorCode::InvalidToken | ErrorCode::InsufficientScope
    ) {
        return e.into_response();
    }
    let mut value = format!(
        "Bearer error=\"{}\", error_description=\"{}\"",
        e.code.as_str(),
        quotable(&e.description)
    );
    if e.code == ErrorCode::InsufficientScope
        && let Some(s) = scope
    {
        value.push_str(&format!(", scope=\"{}\"", quotable(s)));
    }
    let status = StatusCode::from_u16(e.code.status()).unwrap_or(StatusCode::BAD_REQUEST);
    let mut r = (
        status,
        Json(json!({"error": e.code.as_str(), "error_description": e.description})),
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&value) {
        r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    no_store(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_auth(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn takes_the_token_from_the_header() {
        assert_eq!(
            token(&with_auth("Bearer abc.DEF-_~+/=="), None, None).unwrap(),
            Some("abc.DEF-_~+/==".into())
        );
        assert_eq!(
            token(&with_auth("bearer  x"), None, None).unwrap(),
            Some("x".into())
        );
        assert_eq!(token(&with_auth("Basic eDp5"), None, None).unwrap(), None);
        assert_eq!(token(&HeaderMap::new(), Some("a=b"), None).unwrap(), None);
        for bad in ["Bearer ", "Bearer a b", "Bearer =", "Bearer a\"b"] {
            let e = token(&with_auth(bad), None, None).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidRequest, "{bad}");
        }
    }

    #[test]
    fn refuses_the_query_and_two_methods() {
        let e = token(&HeaderMap::new(), Some("x=1&access_token=abc"), None).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidRequest);
        let mut h = with_auth("Bearer abc");
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
        let e = token(&h, None, Some(b"access_token=abc")).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidRequest);
        h.remove(header::AUTHORIZATION);
        assert_eq!(
            token(&h, None, Some(b"access_token=abc")).unwrap(),
            Some("abc".into())
        );
        // Only a form body counts.
        assert_eq!(
            token(&HeaderMap::new(), None, Some(b"access_token=abc")).unwrap(),
            None
        );
    }

    #[test]
    fn descriptions_are_quoted_safely() {
        assert_eq!(quotable("a \"b\" \\ é"), "a ?b? ? ?");
    }
}
