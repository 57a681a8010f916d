//! RFC 7662 token introspection, for an authenticated confidential client.
//!
//! Who may see what (the RFC leaves it to the server, §2.2 and §4):
//! - Access tokens may be introspected by any confidential client: they are JWTs whose claims any
//!   holder can already read, and resource servers (registered as clients) must be able to check tokens
//!   issued to other clients. What introspection adds is liveness: signature, expiry, revocation, and
//!   whether the account (or, for a client-credentials token, the client) still exists and is enabled.
//! - Refresh tokens are only ever shown to the client they were issued to; for any other client they
//!   are `{"active": false}`, so introspection cannot be used to probe another client's grants.
//! - Public clients cannot introspect (`invalid_client`): they are identified, not authenticated.
//!
//! Anything that is not a live token is `{"active": false}` with nothing else (§2.2).

use serde_json::{Map, Value, json};

use super::client_auth::{AuthMethod, Authenticated};
use super::error::{ErrorCode, OAuthError};
use super::revocation::TokenRequest;
use super::verify::{self, AccessToken, VerifyError};
use crate::app::AppState;

fn unavailable<E: std::fmt::Display>(e: E) -> OAuthError {
    tracing::error!(error = %e, "introspection: backend unavailable");
    OAuthError::unavailable("the server cannot check tokens right now; retry later")
}

pub fn inactive() -> Value {
    json!({"active": false})
}

pub async fn introspect(
    state: &AppState,
    auth: &Authenticated,
    r: TokenRequest,
) -> Result<Value, OAuthError> {
    if auth.method == AuthMethod::None {
        return Err(OAuthError::new(
            ErrorCode::InvalidClient,
            "introspection requires an authenticated (confidential) client",
        ));
    }
    if r.is_refresh_token() {
        refresh(state, auth, &r.token).await
    } else {
        access(state, &r.token).await
    }
}

async fn refresh(state: &AppState, auth: &Authenticated, token: &str) -> Result<Value, OAuthError> {
    let Some(st) = state
        .store
        .refresh_token_state(token)
        .await
        .map_err(unavailable)?
    else {
        return Ok(inactive());
    };
    let now = state.clock.now();
    if st.family.client_id != auth.client.id || !st.is_active(now) {
        return Ok(inactive());
    }
    if !user_active(state, &st.family.user_id).await? {
        return Ok(inactive());
    }
    Ok(json!({
        "active": true,
        "token_type": "refresh_token",
        "scope": st.scope.join(" "),
        "client_id": st.family.client_id,
        "sub": st.family.user_id,
        "iss": state.settings.issuer_str,
        "exp": st.expires_at.min(st.family.absolute_expires_at),
        "iat": st.created_at,
    }))
}

async fn access(state: &AppState, token: &str) -> Result<Value, OAuthError> {
    let at = match verify::verify_access_token(state, token).await {
        Ok(at) => at,
        Err(VerifyError::Unavailable(e)) => return Err(unavailable(e)),
        Err(_) => return Ok(inactive()),
    };
    // A client-credentials token's subject is its client; any other subject is a person.
    let live = if at.sub == at.client_id {
        state
            .clients
            .get(&at.client_id)
            .await
            .map_err(unavailable)?
            .is_some()
    } else {
        user_active(state, &at.sub).await?
    };
    Ok(if live { describe(&at) } else { inactive() })
}

async fn user_active(state: &AppState, id: &str) -> Result<bool, OAuthError> {
    Ok(state
        .store
        .user(id)
        .await
        .map_err(unavailable)?
        .is_some_and(|u| !u.disabled))
}

/// RFC 7662 §2.2 members, copied from the verified claims.
fn describe(at: &AccessToken) -> Value {
    let mut out = Map::new();
    out.insert("active".into(), Value::Bool(true));
    out.insert("token_type".into(), Value::from("Bearer"));
    for name in [
        "scope",
        "client_id",
        "sub",
        "aud",
        "iss",
        "exp",
        "iat",
        "nbf",
        "jti",
    ] {
        if let Some(v) = at.claims.get(name) {
            out.insert(name.into(), v.clone());
        }
    }
    Value::Object(out)
}
