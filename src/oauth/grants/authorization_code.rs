//! RFC 6749 §4.1.3 with PKCE (RFC 7636) and OpenID Connect Core §3.1.3: a code for tokens.
//!
//! Codes are single use: the record is taken atomically from the ephemeral store. A second redemption
//! fails with `invalid_grant` and revokes what the first issued (RFC 6749 §4.1.2): the refresh-token
//! family, and the access token's `jti` until it expires.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{OAuthError, Params, TokenResponse};
use crate::app::AppState;
use crate::oauth::client_auth::{AuthMethod, Authenticated};
use crate::oauth::error::ErrorCode;
use crate::oauth::tokens::{self, Audience, sha256_b64};
use crate::oauth::{id_token, pkce, scope};
use crate::store::{Exchange, NewRefreshFamily, REVOKED_FOR_REUSE, User};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CodeRecord {
    pub client_id: String,
    pub redirect_uri: String,
    pub redirect_uri_given: bool,
    pub scopes: Vec<String>,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub resources: Vec<String>,
    pub user_id: String,
    pub sid: String,
    pub auth_time: i64,
    pub amr: Vec<String>,
    pub acr: String,
    pub expires_at: i64,
}

impl CodeRecord {
    pub fn key(code: &str) -> String {
        format!("code:{}", sha256_b64(code))
    }
}

/// What a redeemed code produced, kept so that a replay can revoke it.
#[derive(Serialize, Deserialize)]
struct Redeemed {
    family_id: Option<String>,
    jti: String,
    exp: i64,
}

fn used_key(code: &str) -> String {
    format!("code-used:{}", sha256_b64(code))
}

pub fn revoked_jti_key(jti: &str) -> String {
    format!("revoked-jti:{jti}")
}

pub struct Request {
    pub code: String,
    pub redirect_uri: Option<String>,
    pub code_verifier: Option<String>,
    pub resources: Vec<String>,
}

impl Request {
    pub fn parse(p: &Params) -> Result<Request, OAuthError> {
        Ok(Request {
            code: p
                .one("code")?
                .ok_or_else(|| OAuthError::invalid_request("missing parameter `code`"))?
                .to_string(),
            redirect_uri: p.one("redirect_uri")?.map(str::to_string),
            code_verifier: p.one("code_verifier")?.map(str::to_string),
            resources: p.all("resource").into_iter().map(str::to_string).collect(),
        })
    }
}

fn invalid_grant(d: &'static str) -> OAuthError {
    OAuthError::new(ErrorCode::InvalidGrant, d)
}

fn unavailable<E: std::fmt::Display>(e: E) -> OAuthError {
    tracing::error!(error = %e, "token endpoint: backend unavailable");
    OAuthError::unavailable("the server cannot issue tokens right now; retry later")
}

/// A replayed code: revoke what its first redemption issued.
async fn replayed(state: &AppState, code: &str, client_id: &str) -> OAuthError {
    if let Ok(Some(raw)) = state.ephemeral.take(&used_key(code)).await
        && let Ok(r) = serde_json::from_slice::<Redeemed>(&raw)
    {
        let now = state.clock.now();
        if let Some(f) = &r.family_id
            && let Err(e) = state.store.revoke_family(f, REVOKED_FOR_REUSE, now).await
        {
            tracing::error!(error = %e, "cannot revoke the family of a replayed code");
        }
        let ttl = (r.exp - now).max(1) as u64;
        let _ = state
            .ephemeral
            .put(&revoked_jti_key(&r.jti), b"1", Duration::from_secs(ttl))
            .await;
        crate::audit::record(
            &state.store,
            now,
            crate::audit::Event::new("authorization_code_reuse")
                .client(client_id)
                .details(json!({"family": r.family_id})),
        )
        .await;
        return invalid_grant(
            "the authorization code was already used; the tokens issued for it are revoked",
        );
    }
    invalid_grant("the authorization code is invalid or expired")
}

pub async fn issue(
    state: &AppState,
    auth: &Authenticated,
    r: Request,
) -> Result<TokenResponse, OAuthError> {
    let client = &auth.client;
    let key = CodeRecord::key(&r.code);
    // Read first: a code presented by another client must not be used up by that attempt.
    let Some(raw) = state.ephemeral.get(&key).await.map_err(unavailable)? else {
        return Err(replayed(state, &r.code, &client.id).await);
    };
    let rec: CodeRecord = serde_json::from_slice(&raw)
        .map_err(|_| invalid_grant("the authorization code is invalid"))?;
    if rec.client_id != client.id {
        return Err(invalid_grant(
            "the authorization code was issued to another client",
        ));
    }
    if state
        .ephemeral
        .take(&key)
        .await
        .map_err(unavailable)?
        .is_none()
    {
        return Err(replayed(state, &r.code, &client.id).await);
    }
    let now = state.clock.now();
    if now >= rec.expires_at {
        return Err(invalid_grant("the authorization code has expired"));
    }
    match (&r.redirect_uri, rec.redirect_uri_given) {
        (Some(u), _) if *u == rec.redirect_uri => {}
        (None, false) => {}
        _ => {
            return Err(invalid_grant(
                "redirect_uri does not match the authorization request",
            ));
        }
    }
    match (&rec.code_challenge, &r.code_verifier) {
        (Some(ch), Some(v)) if pkce::verify(v, ch) => {}
        (Some(_), Some(_)) => {
            return Err(invalid_grant(
                "code_verifier does not match the code_challenge",
            ));
        }
        (Some(_), None) => {
            return Err(OAuthError::invalid_request(
                "missing parameter `code_verifier`",
            ));
        }
        (None, Some(_)) => {
            return Err(invalid_grant(
                "code_verifier sent but the authorization request had no code_challenge",
            ));
        }
        (None, None) if client.public || auth.method == AuthMethod::None => {
            return Err(invalid_grant("PKCE is required for public clients"));
        }
        (None, None) => {}
    }
    let aud = audience(client, &rec.resources, &r.resources)?;
    let family = (client.grant_types.iter().any(|g| g == "refresh_token")
        && rec.scopes.iter().any(|s| s == "offline_access"))
    .then(|| NewRefreshFamily {
        user_id: rec.user_id.clone(),
        client_id: client.id.clone(),
        scope: rec.scopes.clone(),
        session_id: Some(rec.sid.clone()),
        auth_time: Some(rec.auth_time),
        now,
        absolute_ttl_secs: client
            .refresh_token_ttl_secs
            .unwrap_or(state.settings.raw.refresh_token_ttl_secs),
        idle_ttl_secs: state.settings.raw.refresh_token_idle_ttl_secs,
    });
    // Recorded before anything is signed, in one step with the session still open and the account
    // enabled: that this client got tokens in the session (so its end revokes them and notifies the
    // client) and the refresh-token family tied to it.
    let (user, refresh) = match state
        .store
        .record_code_exchange(&rec.sid, &rec.user_id, &client.id, now, family)
        .await
        .map_err(unavailable)?
    {
        Exchange::AccountInactive => {
            return Err(invalid_grant("the account is no longer active"));
        }
        Exchange::SessionEnded => {
            return Err(invalid_grant(
                "the session the authorization code was issued in has ended",
            ));
        }
        Exchange::Recorded(r) => (r.user, r.refresh),
    };
    let (refresh_token, family_id) = match refresh {
        Some((family, token)) => (Some(token.as_str().to_string()), Some(family.id)),
        None => (None, None),
    };
    let (access_token, jti, ttl) =
        access_token(state, client, &user.id, &aud, &rec.scopes, Some(&rec), now)?;
    let id_token = if rec.scopes.iter().any(|s| s == "openid") {
        Some(sign_id_token(
            state,
            client,
            &user,
            &rec,
            &access_token,
            now,
        )?)
    } else {
        None
    };
    let redeemed = Redeemed {
        family_id,
        jti,
        exp: now + ttl as i64,
    };
    // Long enough to catch a replay while anything it could revoke is still alive.
    let keep = Duration::from_secs(ttl.max(state.settings.raw.authorization_code_ttl_secs));
    if let Err(e) = state
        .ephemeral
        .put(
            &used_key(&r.code),
            &serde_json::to_vec(&redeemed).unwrap_or_default(),
            keep,
        )
        .await
    {
        tracing::warn!(error = %e, "cannot record the redeemed code for replay detection");
    }
    Ok(TokenResponse {
        access_token,
        token_type: "Bearer",
        expires_in: ttl,
        scope: Some(rec.scopes.join(" ")),
        refresh_token,
        id_token,
    })
}

/// RFC 8707 at the token endpoint: a `resource` must be one the authorization request named (or, if it
/// named none, one the client may use); without one, the authorization's resources or the default.
pub fn audience(
    client: &crate::store::Client,
    granted: &[String],
    asked: &[String],
) -> Result<Audience, OAuthError> {
    let allowed: &[String] = if granted.is_empty() {
        &client.allowed_resources
    } else {
        granted
    };
    if asked.is_empty() {
        return Ok(if granted.is_empty() {
            Audience::One(client.default_audience.clone())
        } else {
            Audience::from_list(granted.to_vec())
        });
    }
    let mut out: Vec<String> = Vec::new();
    for r in asked {
        if !scope::valid_resource(r) || !allowed.contains(r) {
            return Err(OAuthError::new(
                ErrorCode::InvalidTarget,
                "resource is not allowed for this grant",
            ));
        }
        if !out.contains(r) {
            out.push(r.clone());
        }
    }
    Ok(Audience::from_list(out))
}

/// Signs an access token for a person; returns it, its jti and its lifetime.
pub fn access_token(
    state: &AppState,
    client: &crate::store::Client,
    user_id: &str,
    aud: &Audience,
    scopes: &[String],
    auth: Option<&CodeRecord>,
    now: i64,
) -> Result<(String, String, u64), OAuthError> {
    let ttl = client
        .access_token_ttl_secs
        .unwrap_or(state.settings.raw.access_token_ttl_secs);
    let scope = scopes.join(" ");
    let jti = tokens::new_jti();
    let claims = tokens::AccessTokenClaims {
        iss: &state.settings.issuer_str,
        sub: user_id,
        aud,
        exp: now + ttl as i64,
        iat: now,
        nbf: now,
        jti: jti.clone(),
        client_id: &client.id,
        scope: &scope,
        auth_time: auth.map(|a| a.auth_time),
        acr: auth.map(|a| a.acr.as_str()),
        amr: auth.map(|a| a.amr.as_slice()),
        sid: auth.map(|a| a.sid.as_str()),
    };
    let t = tokens::sign_access_token(
        state.signer.as_ref(),
        state.settings.access_token_alg,
        &claims,
    )
    .map_err(|e| {
        tracing::error!(error = %e, "signing failed");
        OAuthError::server_error()
    })?;
    Ok((t, jti, ttl))
}

fn sign_id_token(
    state: &AppState,
    client: &crate::store::Client,
    user: &User,
    rec: &CodeRecord,
    access_token: &str,
    now: i64,
) -> Result<String, OAuthError> {
    let ttl = client
        .id_token_ttl_secs
        .unwrap_or(state.settings.raw.id_token_ttl_secs);
    // The `email` and `profile` claims ride along in the ID token too (they are also at userinfo), so
    // an RP sees at once whether the address is verified.
    let granted = |s: &str| rec.scopes.iter().any(|x| x == s);
    let profile = id_token::ProfileClaims {
        name: granted("profile").then_some(user.name.as_str()),
        email: granted("email").then_some(user.email.as_str()),
        email_verified: granted("email").then_some(user.email_verified),
        ..Default::default()
    };
    let input = id_token::IdTokenInput {
        iss: &state.settings.issuer_str,
        sub: &user.id,
        client_id: &client.id,
        nonce: rec.nonce.as_deref(),
        auth_time: Some(rec.auth_time),
        acr: Some(&rec.acr),
        amr: &rec.amr,
        sid: Some(&rec.sid),
        iat: now,
        exp: now + ttl as i64,
        access_token: Some(access_token),
        profile,
        ..Default::default()
    };
    id_token::sign_id_token(
        state.signer.as_ref(),
        state.settings.id_token_alg(client),
        &input,
    )
    .map_err(|e| {
        tracing::error!(error = %e, "ID token signing failed");
        OAuthError::server_error()
    })
}
