//! RFC 6749 §6 with rotation (RFC 9700 §4.14.2): every use returns a new refresh token in the same
//! family; a used token presented again outside the client's grace window revokes the whole family.

use serde_json::json;

use super::authorization_code::{access_token, audience};
use super::{OAuthError, Params, TokenResponse};
use crate::app::AppState;
use crate::oauth::client_auth::Authenticated;
use crate::oauth::error::ErrorCode;
use crate::oauth::scope;
use crate::store::{RotateRequest, Rotation};

pub struct Request {
    pub refresh_token: String,
    pub scope: Option<Vec<String>>,
    pub resources: Vec<String>,
}

impl Request {
    pub fn parse(p: &Params) -> Result<Request, OAuthError> {
        Ok(Request {
            refresh_token: p
                .one("refresh_token")?
                .ok_or_else(|| OAuthError::invalid_request("missing parameter `refresh_token`"))?
                .to_string(),
            scope: p.one("scope")?.map(scope::parse).transpose()?,
            resources: p.all("resource").into_iter().map(str::to_string).collect(),
        })
    }
}

pub async fn issue(
    state: &AppState,
    auth: &Authenticated,
    r: Request,
) -> Result<TokenResponse, OAuthError> {
    let client = &auth.client;
    let now = state.clock.now();
    let outcome = state
        .store
        .rotate(
            RotateRequest {
                token: &r.refresh_token,
                client_id: &client.id,
                scope: r.scope.as_deref(),
                now,
                idle_ttl_secs: state.settings.raw.refresh_token_idle_ttl_secs,
                grace_secs: client.refresh_reuse_grace_secs,
            },
            &state.kek,
        )
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "refresh rotation: database unavailable");
            OAuthError::unavailable("the server cannot issue tokens right now; retry later")
        })?;
    let issued = match outcome {
        Rotation::Rotated(i) | Rotation::GraceReplay(i) => i,
        Rotation::Reused { family } => {
            crate::audit::record(
                &state.store,
                now,
                crate::audit::Event::new("refresh_token_reuse")
                    .subject(&family.user_id)
                    .client(&client.id)
                    .details(json!({"family": family.id})),
            )
            .await;
            return Err(OAuthError::new(
                ErrorCode::InvalidGrant,
                "the refresh token was already used; its whole family is revoked",
            ));
        }
        Rotation::InvalidScope => {
            return Err(OAuthError::new(
                ErrorCode::InvalidScope,
                "scope exceeds what was granted",
            ));
        }
        Rotation::AccountInactive => {
            return Err(OAuthError::new(
                ErrorCode::InvalidGrant,
                "the account is no longer active",
            ));
        }
        Rotation::Invalid => {
            return Err(OAuthError::new(
                ErrorCode::InvalidGrant,
                "the refresh token is invalid, expired or revoked",
            ));
        }
    };
    let aud = audience(client, &[], &r.resources)?;
    let (at, _, ttl) = access_token(
        state,
        client,
        &issued.family.user_id,
        &aud,
        &issued.scope,
        None,
        now,
    )?;
    Ok(TokenResponse {
        access_token: at,
        token_type: "Bearer",
        expires_in: ttl,
        scope: Some(issued.scope.join(" ")),
        refresh_token: Some(issued.token.as_str().to_string()),
        id_token: None,
    })
}
