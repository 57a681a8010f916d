//! The token endpoint's grants. A request is parsed into a `GrantRequest` at the edge, so no handler
//! matches on strings; each grant lives in its own file.

pub mod authorization_code;
pub mod client_credentials;
pub mod refresh_token;

use serde::Serialize;

use super::client_auth::Authenticated;
use super::error::{ErrorCode, OAuthError};
use crate::app::AppState;

/// Form parameters of one request. RFC 6749 §3.2: a parameter must not appear twice (except those a
/// spec makes repeatable, like RFC 8707's `resource`).
pub struct Params(pub Vec<(String, String)>);

impl Params {
    pub fn parse(body: &[u8]) -> Params {
        Params(url::form_urlencoded::parse(body).into_owned().collect())
    }

    /// The single value of `name`; empty counts as absent (RFC 6749 §3.1).
    pub fn one(&self, name: &str) -> Result<Option<&str>, OAuthError> {
        let mut it = self.0.iter().filter(|(k, _)| k == name);
        let first = it.next();
        if it.next().is_some() {
            return Err(OAuthError::invalid_request(format!(
                "parameter `{name}` must not be repeated"
            )));
        }
        Ok(first.map(|(_, v)| v.as_str()).filter(|v| !v.is_empty()))
    }

    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

pub enum GrantRequest {
    AuthorizationCode(authorization_code::Request),
    RefreshToken(refresh_token::Request),
    ClientCredentials(client_credentials::Request),
}

impl GrantRequest {
    pub fn parse(p: &Params) -> Result<GrantRequest, OAuthError> {
        match p.one("grant_type")? {
            None => Err(OAuthError::invalid_request(
                "missing parameter `grant_type`",
            )),
            Some("authorization_code") => Ok(GrantRequest::AuthorizationCode(
                authorization_code::Request::parse(p)?,
            )),
            Some("refresh_token") => Ok(GrantRequest::RefreshToken(refresh_token::Request::parse(
                p,
            )?)),
            Some("client_credentials") => Ok(GrantRequest::ClientCredentials(
                client_credentials::Request::parse(p)?,
            )),
            Some(other) => Err(OAuthError::new(
                ErrorCode::UnsupportedGrantType,
                format!(
                    "grant_type `{}` is not supported",
                    other.chars().take(64).collect::<String>()
                ),
            )),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            GrantRequest::AuthorizationCode(_) => "authorization_code",
            GrantRequest::RefreshToken(_) => "refresh_token",
            GrantRequest::ClientCredentials(_) => "client_credentials",
        }
    }
}

#[derive(Debug, Serialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
}

pub async fn handle(
    state: &AppState,
    auth: Authenticated,
    req: GrantRequest,
) -> Result<TokenResponse, OAuthError> {
    if !auth.client.grant_types.iter().any(|g| g == req.name()) {
        return Err(OAuthError::new(
            ErrorCode::UnauthorizedClient,
            format!("this client may not use the {} grant", req.name()),
        ));
    }
    match req {
        GrantRequest::AuthorizationCode(r) => authorization_code::issue(state, &auth, r).await,
        GrantRequest::RefreshToken(r) => refresh_token::issue(state, &auth, r).await,
        GrantRequest::ClientCredentials(r) => client_credentials::issue(state, &auth, r),
    }
}
