//! The request shape shared by the endpoints a client calls with its credentials (token, revocation,
//! introspection): a form body, then client authentication (RFC 6749 §2.3).

use axum::http::{HeaderMap, header};

use super::token::is_form;
use crate::app::AppState;
use crate::oauth::client_auth::{self, Authenticated, Presented};
use crate::oauth::error::OAuthError;
use crate::oauth::grants::Params;

pub async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(Authenticated, Params), OAuthError> {
    if !is_form(headers) {
        return Err(OAuthError::invalid_request(
            "the body must be application/x-www-form-urlencoded",
        ));
    }
    let params = Params::parse(body);
    let authorization = match headers.get(header::AUTHORIZATION) {
        Some(v) => Some(
            v.to_str()
                .map_err(|_| OAuthError::invalid_request("malformed Authorization header"))?,
        ),
        None => None,
    };
    let presented = Presented {
        authorization,
        form_client_id: params.one("client_id")?,
        form_client_secret: params.one("client_secret")?,
    };
    let auth = client_auth::authenticate(&state.clients, presented).await?;
    Ok((auth, params))
}
