//! OpenID Connect Core §5.3: the claims about the person an access token was issued for, released by
//! scope (§5.4). Taking the bearer token off the request and rendering RFC 6750 challenges is the HTTP
//! layer's; this module decides what a verified token may see.
//!
//! Choices:
//! - The token must carry `openid`; its audience is not checked, because an access token's `aud` names
//!   the resource servers it was requested for, and userinfo belongs to the issuer itself.
//! - `sub` is the user id, exactly as in the ID token.
//! - `profile` releases `name` and `updated_at`. Custos has no usernames, so no `preferred_username`:
//!   the email's local part is not one (it is neither chosen as a handle nor stable), and repeating
//!   `name` under another claim would only invite relying parties to treat it as a login name.
//! - `email` releases `email` and `email_verified`.
//! - A disabled or deleted account makes the token invalid here, as it does at the token endpoint.

use serde_json::{Map, Value, json};

use super::error::{ErrorCode, OAuthError};
use super::verify::{self, VerifyError};
use crate::app::AppState;

/// Maps a verification failure to RFC 6750 terms: `invalid_token`, or 503 when the revocation list
/// cannot be read (the token might be revoked; answering either way would be a guess).
pub fn token_error(e: VerifyError) -> OAuthError {
    match e {
        VerifyError::Unavailable(cause) => {
            tracing::error!(error = %cause, "access token check: ephemeral store unavailable");
            OAuthError::unavailable("the server cannot check tokens right now; retry later")
        }
        other => OAuthError::new(ErrorCode::InvalidToken, other.to_string()),
    }
}

pub async fn claims(state: &AppState, token: &str) -> Result<Value, OAuthError> {
    let at = verify::verify_access_token(state, token)
        .await
        .map_err(token_error)?;
    if !at.has_scope("openid") {
        return Err(OAuthError::new(
            ErrorCode::InsufficientScope,
            "the access token does not carry the openid scope",
        ));
    }
    // A client-credentials token names the client itself as its subject: there is no person to describe.
    if at.sub == at.client_id {
        return Err(OAuthError::new(
            ErrorCode::InvalidToken,
            "the access token was not issued for a person",
        ));
    }
    let user = match state.store.user(&at.sub).await {
        Ok(Some(u)) if !u.disabled => u,
        Ok(_) => {
            return Err(OAuthError::new(
                ErrorCode::InvalidToken,
                "the account is no longer active",
            ));
        }
        Err(e) => {
            tracing::error!(error = %e, "userinfo: database unavailable");
            return Err(OAuthError::unavailable(
                "the server cannot answer right now; retry later",
            ));
        }
    };
    let mut out = Map::new();
    out.insert("sub".into(), json!(user.id));
    if at.has_scope("profile") {
        if !user.name.is_empty() {
            out.insert("name".into(), json!(user.name));
        }
        out.insert("updated_at".into(), json!(user.updated_at));
    }
    if at.has_scope("email") {
        out.insert("email".into(), json!(user.email));
        out.insert("email_verified".into(), json!(user.email_verified));
    }
    Ok(Value::Object(out))
}
