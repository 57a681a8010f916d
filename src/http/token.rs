//! `POST /token`: parse the form, authenticate the client, dispatch the grant.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};

use super::error::no_store;
use crate::app::AppState;
use crate::oauth::error::OAuthError;
use crate::oauth::grants::{self, GrantRequest};

pub fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| {
            m.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

pub async fn token(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    match run(&state, &headers, &body).await {
        Ok(r) => no_store(Json(r).into_response()),
        Err(e) => e.into_response(),
    }
}

async fn run(
    state: &AppState,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<grants::TokenResponse, OAuthError> {
    let (auth, params) = super::client_form::authenticate(state, headers, body).await?;
    let req = GrantRequest::parse(&params)?;
    let client_id = auth.client.id.clone();
    let grant = req.name();
    let r = grants::handle(state, auth, req).await;
    match &r {
        Ok(_) => tracing::debug!(client_id, grant, "token issued"),
        Err(e) => tracing::info!(
            client_id,
            grant,
            error = e.code.as_str(),
            "token request refused"
        ),
    }
    r
}
