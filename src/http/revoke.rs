//! `POST /revoke` (RFC 7009): authenticate the client, parse the token, hand both to `oauth`.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::client_form;
use super::error::no_store;
use crate::app::AppState;
use crate::oauth::error::OAuthError;
use crate::oauth::revocation::{self, TokenRequest};

pub async fn revoke(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    match run(&state, &headers, &body).await {
        // §2.2: 200 whether or not there was anything to revoke; the body is empty.
        Ok(()) => no_store(StatusCode::OK.into_response()),
        Err(e) => e.into_response(),
    }
}

async fn run(state: &AppState, headers: &HeaderMap, body: &[u8]) -> Result<(), OAuthError> {
    let (auth, params) = client_form::authenticate(state, headers, body).await?;
    let req = TokenRequest::parse(&params)?;
    revocation::revoke(state, &auth, req).await
}
