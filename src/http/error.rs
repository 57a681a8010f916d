//! Rendering errors. Protocol errors become RFC 6749 §5.2 JSON; internal errors become a bare 500 with
//! the request id, the cause going only to the log.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::oauth::error::{ErrorCode, OAuthError};

pub fn no_store(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    r
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.code.status()).unwrap_or(StatusCode::BAD_REQUEST);
        let mut r = (
            status,
            Json(json!({"error": self.code.as_str(), "error_description": self.description})),
        )
            .into_response();
        if self.code == ErrorCode::InvalidClient && self.basic_challenge {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"custos\", charset=\"UTF-8\""),
            );
        }
        no_store(r)
    }
}
