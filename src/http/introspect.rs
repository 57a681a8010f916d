//! `POST /introspect` (RFC 7662): authenticate the client, parse the token, hand both to `oauth`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::client_form;
use super::error::no_store;
use crate::app::AppState;
use crate::oauth::error::OAuthError;
use crate::oauth::introspection;
use crate::oauth::revocation::TokenRequest;

pub async fn introspect(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match run(&state, &headers, &body).await {
        Ok(v) => no_store(Json(v).into_response()),
        Err(e) => e.into_response(),
    }
}

async fn run(state: &AppState, headers: &HeaderMap, body: &[u8]) -> Result<Value, OAuthError> {
    let (auth, params) = client_form::authenticate(state, headers, body).await?;
    let req = TokenRequest::parse(&params)?;
    introspection::introspect(state, &auth, req).await
}
