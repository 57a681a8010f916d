//! Discovery documents and the JWKS: bytes prepared once, served as they are.

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use crate::app::AppState;

fn json_bytes(body: bytes::Bytes, cache_control: HeaderValue) -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (header::CACHE_CONTROL, cache_control),
        ],
        body,
    )
        .into_response()
}

pub async fn openid_configuration(State(s): State<AppState>) -> Response {
    json_bytes(
        s.discovery.clone(),
        HeaderValue::from_static("public, max-age=3600"),
    )
}

pub async fn jwks(State(s): State<AppState>) -> Response {
    json_bytes(s.signer.jwks(), s.jwks_cache_control.clone())
}
