//! `GET` and `POST /userinfo` (OpenID Connect Core §5.3): the bearer token off the request, the claims
//! from `oauth::userinfo`, RFC 6750 challenges for what goes wrong.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use axum::response::{IntoResponse, Response};

use super::bearer;
use super::error::no_store;
use crate::app::AppState;
use crate::oauth::userinfo;

pub async fn get(State(state): State<AppState>, headers: HeaderMap, uri: Uri) -> Response {
    respond(&state, &headers, uri.query(), None).await
}

pub async fn post(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    respond(&state, &headers, uri.query(), Some(&body)).await
}

async fn respond(
    state: &AppState,
    headers: &HeaderMap,
    query: Option<&str>,
    body: Option<&[u8]>,
) -> Response {
    let token = match bearer::token(headers, query, body) {
        Ok(Some(t)) => t,
        Ok(None) => return bearer::missing(),
        Err(e) => return bearer::challenge(e, None),
    };
    match userinfo::claims(state, &token).await {
        Ok(claims) => no_store(Json(claims).into_response()),
        Err(e) => bearer::challenge(e, Some("openid")),
    }
}
