//! `GET|POST /authorize`, the ordered checks that decide whether the redirect URI can be trusted.
//! Errors before that point are shown on an HTML page and never redirected (RFC 6749 §4.1.2.1,
//! RFC 9700 §4.1); later errors go back to the client with `error`, `state` and `iss` (RFC 9207).

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::app::AppState;
use crate::oauth::error::{ErrorCode, OAuthError};
use crate::oauth::grants::Params;
use crate::views::ErrorPage;

pub async fn get(State(s): State<AppState>, RawQuery(q): RawQuery) -> Response {
    let p = Params::parse(q.unwrap_or_default().as_bytes());
    run(&s, &p).await
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
    run(&s, &Params::parse(&body)).await
}

fn page(status: StatusCode, title: &str, message: &str, code: &'static str) -> Response {
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
    let mut r = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(url.as_str()) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

async fn run(s: &AppState, p: &Params) -> Response {
    let client_id = match p.one("client_id") {
        Ok(Some(c)) => c,
        Ok(None) => {
            return page(
                StatusCode::BAD_REQUEST,
                "Invalid request",
                "The request names no client (client_id is missing).",
                "invalid_request",
            );
        }
        Err(_) => {
            return page(
                StatusCode::BAD_REQUEST,
                "Invalid request",
                "A parameter appears more than once.",
                "invalid_request",
            );
        }
    };
    let client = match s.clients.get(client_id).await {
        Ok(Some(c)) => c,
        Ok(None) => {
            return page(
                StatusCode::BAD_REQUEST,
                "Unknown application",
                "The application that sent you here is not registered.",
                "invalid_client",
            );
        }
        Err(e) => {
            tracing::error!(error = %e, "client lookup failed");
            return page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Temporarily unavailable",
                "Please try again in a moment.",
                "temporarily_unavailable",
            );
        }
    };
    let redirect_uri = match p.one("redirect_uri") {
        Ok(Some(r)) if client.redirect_uris.iter().any(|u| u == r) => r.to_string(),
        Ok(None) if client.redirect_uris.len() == 1 => client.redirect_uris[0].clone(),
        Ok(None) => {
            return page(
                StatusCode::BAD_REQUEST,
                "Invalid request",
                "The request must name a redirect URI.",
                "invalid_request",
            );
        }
        Ok(Some(_)) | Err(_) => {
            return page(
                StatusCode::BAD_REQUEST,
                "Unregistered redirect URI",
                "The address to return to is not registered for this application.",
                "invalid_request",
            );
        }
    };
    // From here on the redirect URI is trusted.
    let state = p.one("state").ok().flatten();
    let err = match p.one("response_type") {
        Ok(Some("code")) => {
            OAuthError::unavailable("interactive sign-in is not enabled on this server yet")
        }
        Ok(Some(_)) => OAuthError::new(
            ErrorCode::UnsupportedResponseType,
            "only response_type=code is supported",
        ),
        Ok(None) => OAuthError::invalid_request("missing parameter `response_type`"),
        Err(e) => e,
    };
    let mut pairs = vec![
        ("error", err.code.as_str()),
        ("error_description", err.description.as_ref()),
    ];
    if let Some(st) = state {
        pairs.push(("state", st));
    }
    pairs.push(("iss", s.settings.issuer_str.as_str()));
    redirect_with(&redirect_uri, &pairs)
}
