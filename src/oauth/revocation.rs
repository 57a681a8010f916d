//! RFC 7009 token revocation, for an already authenticated client.
//!
//! Tokens describe themselves (refresh tokens start with `cst_rt_`, access tokens are our JWTs), so
//! `token_type_hint` is parsed but never needed. A refresh token revokes its whole family; an access
//! token's `jti` goes on the revocation list in the ephemeral store until the token would have expired.
//! A client can only revoke its own tokens; anything else (unknown, expired, already revoked, another
//! client's) is answered like a success, as §2.2 requires, and changes nothing.

use std::time::Duration;

use serde_json::json;

use super::client_auth::Authenticated;
use super::error::OAuthError;
use super::grants::Params;
use super::grants::authorization_code::revoked_jti_key;
use super::verify::{self, VerifyError};
use crate::app::AppState;
use crate::store::REFRESH_TOKEN_PREFIX;

/// RFC 7009 §2.1 / RFC 7662 §2.1 `token_type_hint`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenTypeHint {
    AccessToken,
    RefreshToken,
    /// A value we do not know; the RFCs let the server ignore it.
    Other,
}

/// The body of a revocation or introspection request, past client authentication.
pub struct TokenRequest {
    pub token: String,
    pub hint: Option<TokenTypeHint>,
}

impl TokenRequest {
    pub fn parse(p: &Params) -> Result<TokenRequest, OAuthError> {
        let token = p
            .one("token")?
            .ok_or_else(|| OAuthError::invalid_request("missing parameter `token`"))?
            .to_string();
        let hint = p.one("token_type_hint")?.map(|h| match h {
            "access_token" => TokenTypeHint::AccessToken,
            "refresh_token" => TokenTypeHint::RefreshToken,
            _ => TokenTypeHint::Other,
        });
        Ok(TokenRequest { token, hint })
    }

    pub fn is_refresh_token(&self) -> bool {
        self.token.starts_with(REFRESH_TOKEN_PREFIX)
    }
}

fn unavailable<E: std::fmt::Display>(e: E) -> OAuthError {
    tracing::error!(error = %e, "revocation: backend unavailable");
    OAuthError::unavailable("the server cannot revoke tokens right now; retry later")
}

pub async fn revoke(
    state: &AppState,
    auth: &Authenticated,
    r: TokenRequest,
) -> Result<(), OAuthError> {
    if r.is_refresh_token() {
        revoke_refresh(state, auth, &r.token).await
    } else {
        revoke_access(state, auth, &r.token).await
    }
}

async fn revoke_refresh(
    state: &AppState,
    auth: &Authenticated,
    token: &str,
) -> Result<(), OAuthError> {
    let client_id = auth.client.id.as_str();
    let Some(st) = state
        .store
        .refresh_token_state(token)
        .await
        .map_err(unavailable)?
    else {
        return Ok(());
    };
    if st.family.client_id != client_id {
        tracing::info!(
            client_id,
            "revocation of another client's refresh token ignored"
        );
        return Ok(());
    }
    let now = state.clock.now();
    let owned = state
        .store
        .revoke_token(token, client_id, now)
        .await
        .map_err(unavailable)?;
    if owned && st.family.revoked_at.is_none() {
        crate::audit::record(
            &state.store,
            now,
            crate::audit::Event::new("token_revoked")
                .subject(&st.family.user_id)
                .client(client_id)
                .details(json!({"token_type": "refresh_token", "family": st.family.id})),
        )
        .await;
    }
    Ok(())
}

async fn revoke_access(
    state: &AppState,
    auth: &Authenticated,
    token: &str,
) -> Result<(), OAuthError> {
    let client_id = auth.client.id.as_str();
    let at = match verify::verify_access_token(state, token).await {
        Ok(at) => at,
        Err(VerifyError::Unavailable(e)) => return Err(unavailable(e)),
        // Not ours, expired or already revoked: nothing left to do.
        Err(_) => return Ok(()),
    };
    if at.client_id != client_id {
        tracing::info!(
            client_id,
            "revocation of another client's access token ignored"
        );
        return Ok(());
    }
    let now = state.clock.now();
    // Past `exp` the token is refused anyway, so the entry need not outlive it.
    let ttl = u64::try_from(at.exp.saturating_sub(now))
        .unwrap_or(0)
        .max(1);
    state
        .ephemeral
        .put(&revoked_jti_key(&at.jti), b"1", Duration::from_secs(ttl))
        .await
        .map_err(unavailable)?;
    crate::audit::record(
        &state.store,
        now,
        crate::audit::Event::new("token_revoked")
            .subject(&at.sub)
            .client(client_id)
            .details(json!({"token_type": "access_token", "jti": at.jti})),
    )
    .await;
    Ok(())
}
