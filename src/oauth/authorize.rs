//! The authorization request (OIDC Core 3.1.2.1) as an ordered pipeline of small checks. The first
//! two (client, redirect URI) decide whether errors may be redirected at all; the HTTP layer shows a
//! page for those. Everything after returns an `OAuthError` that goes back to the client.

use serde::{Deserialize, Serialize};

use super::error::{ErrorCode, OAuthError};
use super::grants::Params;
use super::{pkce, scope};
use crate::store::Client;

/// Scopes every client that uses the code flow may ask for (OIDC Core 5.4, 11).
pub const OIDC_SCOPES: &[&str] = &["openid", "profile", "email", "offline_access"];

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Prompt {
    None,
    Login,
    Consent,
    SelectAccount,
}

/// Why the redirect URI cannot be trusted: shown on a page, never redirected.
#[derive(Debug, PartialEq, Eq)]
pub enum Untrusted {
    MissingClient,
    UnknownClient,
    MissingRedirect,
    UnregisteredRedirect,
    Repeated,
}

/// A checked authorization request, parked in the ephemeral store while the person signs in.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AuthRequest {
    pub client_id: String,
    pub redirect_uri: String,
    /// The request named the redirect URI (then the token request must repeat it).
    pub redirect_uri_given: bool,
    pub scopes: Vec<String>,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub prompt: Vec<Prompt>,
    pub max_age: Option<i64>,
    pub login_hint: Option<String>,
    pub resources: Vec<String>,
    /// OIDC Core 3.1.2.1 `acr_values`, in order of preference (voluntary: the ID token's `acr` says
    /// what was actually done).
    #[serde(default)]
    pub acr_values: Vec<String>,
}

impl AuthRequest {
    pub fn is_oidc(&self) -> bool {
        self.scopes.iter().any(|s| s == "openid")
    }
    pub fn has_prompt(&self, p: Prompt) -> bool {
        self.prompt.contains(&p)
    }
    /// The request asks for a multi-factor sign-in (step-up).
    pub fn wants_mfa(&self) -> bool {
        self.acr_values.iter().any(|a| a == crate::mfa::ACR_MFA)
    }
}

/// Step 1 and 2: the redirect URI this request may be answered at.
pub fn trusted_redirect(client: &Client, p: &Params) -> Result<(String, bool), Untrusted> {
    match p.one("redirect_uri") {
        Ok(Some(r)) if client.redirect_uris.iter().any(|u| u == r) => Ok((r.to_string(), true)),
        Ok(None) if client.redirect_uris.len() == 1 => Ok((client.redirect_uris[0].clone(), false)),
        Ok(None) => Err(Untrusted::MissingRedirect),
        Ok(Some(_)) => Err(Untrusted::UnregisteredRedirect),
        Err(_) => Err(Untrusted::Repeated),
    }
}

fn bad(d: &'static str) -> OAuthError {
    OAuthError::invalid_request(d)
}

/// The rest of the checks, in order. `require_pkce` is the configured policy for confidential clients
/// (public clients always need PKCE).
pub fn check(
    client: &Client,
    p: &Params,
    redirect_uri: String,
    redirect_uri_given: bool,
    require_pkce: bool,
) -> Result<AuthRequest, OAuthError> {
    let limited = |name: &str, max: usize| -> Result<Option<String>, OAuthError> {
        match p.one(name)? {
            Some(v) if v.len() > max => Err(OAuthError::invalid_request(format!(
                "`{name}` is longer than {max} characters"
            ))),
            v => Ok(v.map(str::to_string)),
        }
    };
    let state = limited("state", 2048)?;
    if p.one("request")?.is_some() {
        return Err(OAuthError::new(
            ErrorCode::InvalidRequest,
            "request objects are not supported",
        ));
    }
    if p.one("request_uri")?.is_some() {
        return Err(OAuthError::new(
            ErrorCode::InvalidRequest,
            "request_uri is not supported",
        ));
    }
    match p.one("response_type")? {
        Some("code") => {}
        Some(_) => {
            return Err(OAuthError::new(
                ErrorCode::UnsupportedResponseType,
                "only response_type=code is supported",
            ));
        }
        None => return Err(bad("missing parameter `response_type`")),
    }
    match p.one("response_mode")? {
        None | Some("query") => {}
        Some(_) => return Err(bad("only response_mode=query is supported")),
    }
    if !client.grant_types.iter().any(|g| g == "authorization_code") {
        return Err(OAuthError::new(
            ErrorCode::UnauthorizedClient,
            "this client may not use the authorization code flow",
        ));
    }
    let scopes = match p.one("scope")? {
        None => client.default_scopes.clone(),
        Some(s) => scope::parse(s)?,
    };
    if let Some(s) = scopes
        .iter()
        .find(|s| !OIDC_SCOPES.contains(&s.as_str()) && !client.allowed_scopes.contains(s))
    {
        return Err(OAuthError::new(
            ErrorCode::InvalidScope,
            format!("scope `{s}` is not allowed for this client"),
        ));
    }
    let code_challenge = match (p.one("code_challenge")?, p.one("code_challenge_method")?) {
        (Some(c), None | Some("S256")) if pkce::well_formed(c) => Some(c.to_string()),
        (Some(_), None | Some("S256")) => {
            return Err(bad(
                "code_challenge must be 43-128 characters of A-Z a-z 0-9 - . _ ~",
            ));
        }
        (_, Some("plain")) => {
            return Err(bad("code_challenge_method=plain is not allowed; use S256"));
        }
        (_, Some(_)) => return Err(bad("unsupported code_challenge_method; use S256")),
        (None, None) => None,
    };
    if code_challenge.is_none() && (client.public || require_pkce) {
        return Err(bad(
            "PKCE is required: send code_challenge with code_challenge_method=S256",
        ));
    }
    let nonce = limited("nonce", 512)?;
    let mut prompt = Vec::new();
    if let Some(ps) = p.one("prompt")? {
        for v in ps.split(' ') {
            prompt.push(match v {
                "none" => Prompt::None,
                "login" => Prompt::Login,
                "consent" => Prompt::Consent,
                "select_account" => Prompt::SelectAccount,
                _ => return Err(bad("prompt must be none, login, consent or select_account")),
            });
        }
        if prompt.contains(&Prompt::None) && prompt.len() > 1 {
            return Err(bad("prompt=none cannot be combined with other values"));
        }
    }
    let max_age = match p.one("max_age")? {
        None => None,
        Some(v) => Some(
            v.parse::<u32>()
                .map_err(|_| bad("max_age must be a non-negative integer"))? as i64,
        ),
    };
    let login_hint = limited("login_hint", 320)?;
    let acr_values = limited("acr_values", 512)?
        .map(|v| {
            v.split(' ')
                .filter(|a| !a.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let mut resources: Vec<String> = Vec::new();
    for r in p.all("resource") {
        if !scope::valid_resource(r) {
            return Err(OAuthError::new(
                ErrorCode::InvalidTarget,
                "resource must be an absolute URI without a fragment",
            ));
        }
        if !client.allowed_resources.iter().any(|a| a == r) {
            return Err(OAuthError::new(
                ErrorCode::InvalidTarget,
                "resource is not allowed for this client",
            ));
        }
        if !resources.iter().any(|x| x == r) {
            resources.push(r.to_string());
        }
    }
    Ok(AuthRequest {
        client_id: client.id.clone(),
        redirect_uri,
        redirect_uri_given,
        scopes,
        state,
        nonce,
        code_challenge,
        prompt,
        max_age,
        login_hint,
        resources,
        acr_values,
    })
}
