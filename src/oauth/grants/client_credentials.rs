//! RFC 6749 §4.4: a confidential client gets an access token for itself.

use super::{OAuthError, Params, TokenResponse};
use crate::app::AppState;
use crate::oauth::client_auth::{AuthMethod, Authenticated};
use crate::oauth::error::ErrorCode;
use crate::oauth::scope;
use crate::oauth::tokens::Audience;
use crate::store::Client;

pub struct Request {
    pub scope: Option<Vec<String>>,
    pub resources: Vec<String>,
}

impl Request {
    pub fn parse(p: &Params) -> Result<Request, OAuthError> {
        let scope = p.one("scope")?.map(scope::parse).transpose()?;
        Ok(Request {
            scope,
            resources: p.all("resource").into_iter().map(str::to_string).collect(),
        })
    }
}

/// The granted scopes: the requested ones when all are allowed, else the client's defaults.
pub fn granted_scopes(
    client: &Client,
    requested: Option<Vec<String>>,
) -> Result<Vec<String>, OAuthError> {
    match requested {
        None => Ok(client.default_scopes.clone()),
        Some(req) => {
            if let Some(bad) = req.iter().find(|s| !client.allowed_scopes.contains(s)) {
                return Err(OAuthError::new(
                    ErrorCode::InvalidScope,
                    format!("scope `{bad}` is not allowed for this client"),
                ));
            }
            Ok(req)
        }
    }
}

/// RFC 8707: the audience from `resource` parameters, each registered for the client; without any,
/// the client's default audience.
pub fn audience(client: &Client, resources: &[String]) -> Result<Audience, OAuthError> {
    if resources.is_empty() {
        return Ok(Audience::One(client.default_audience.clone()));
    }
    let mut out: Vec<String> = Vec::with_capacity(resources.len());
    for r in resources {
        if !scope::valid_resource(r) {
            return Err(OAuthError::new(
                ErrorCode::InvalidTarget,
                "resource must be an absolute URI without a fragment",
            ));
        }
        if !client.allowed_resources.contains(r) {
            return Err(OAuthError::new(
                ErrorCode::InvalidTarget,
                "resource is not allowed for this client",
            ));
        }
        if !out.contains(r) {
            out.push(r.clone());
        }
    }
    Ok(Audience::from_list(out))
}

pub fn issue(
    state: &AppState,
    auth: &Authenticated,
    r: Request,
) -> Result<TokenResponse, OAuthError> {
    let client = &auth.client;
    if client.public || auth.method == AuthMethod::None {
        return Err(OAuthError::new(
            ErrorCode::UnauthorizedClient,
            "client_credentials requires a confidential client",
        ));
    }
    let scopes = granted_scopes(client, r.scope)?;
    let aud = audience(client, &r.resources)?;
    let (token, _, ttl) = super::authorization_code::access_token(
        state,
        client,
        &client.id,
        &aud,
        &scopes,
        None,
        state.clock.now(),
    )?;
    let scope = scopes.join(" ");
    Ok(TokenResponse {
        access_token: token,
        token_type: "Bearer",
        expires_in: ttl,
        scope: Some(scope),
        refresh_token: None,
        id_token: None,
    })
}
