//! Passkeys (WebAuthn, through webauthn-rs): registering one, and using one as the second factor or —
//! with `passkey_passwordless` — alone, with user verification.
//!
//! Each ceremony's state (the challenge and what it allows) is parked in the ephemeral store between
//! the options and the answer and is *taken* when the answer comes, so a challenge answers once.
//! The relying party is the issuer: its host is the RP id, its origin the only accepted origin.
//! This module owns no HTTP (`http::passkey`) and starts no sessions.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use serde::de::DeserializeOwned;
use webauthn_rs::prelude::{
    AuthenticationResult, CreationChallengeResponse, DiscoverableAuthentication, DiscoverableKey,
    Passkey, PasskeyAuthentication, PasskeyRegistration, PublicKeyCredential,
    RegisterPublicKeyCredential, RequestChallengeResponse, Url, Uuid, Webauthn, WebauthnBuilder,
};

use crate::app::AppState;
use crate::ephemeral::EphemeralError;
use crate::store::{StoreError, StoredPasskey, User};

/// RFC 8176: a hardware-bound key (a device-bound passkey).
pub const AMR_HWK: &str = "hwk";
/// RFC 8176: a software key (a synced passkey, one whose authenticator says it can be backed up).
pub const AMR_SWK: &str = "swk";
/// RFC 8176: the authenticator verified the user (PIN or biometric).
pub const AMR_USER: &str = "user";
/// How long a ceremony may take.
const CEREMONY_TTL_SECS: u64 = 300;
/// Longest passkey name, in characters.
pub const NAME_MAX: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum PasskeyError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Ephemeral(#[from] EphemeralError),
    /// The issuer has no domain name (WebAuthn has no IP-address relying parties).
    #[error("passkeys: the issuer must be a domain name")]
    Config,
}

/// Why an answer was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// No ceremony is waiting (never started, expired, or already answered).
    NoChallenge,
    /// The answer does not verify (wrong challenge, origin, signature, flags…).
    Invalid,
    /// The credential is not registered (to this person).
    UnknownCredential,
    /// Registration: this credential is already registered.
    Duplicate,
}

impl Refused {
    pub fn as_str(self) -> &'static str {
        match self {
            Refused::NoChallenge => "no_challenge",
            Refused::Invalid => "invalid_credential",
            Refused::UnknownCredential => "unknown_credential",
            Refused::Duplicate => "duplicate_credential",
        }
    }
}

/// A passkey that just signed someone in.
#[derive(Debug, Clone)]
pub struct Used {
    pub user_id: String,
    /// The authenticator says the credential may be synced (backup-eligible): `swk`, else `hwk`.
    pub synced: bool,
    pub user_verified: bool,
}

impl Used {
    /// The `amr` value of the key itself.
    pub fn amr(&self) -> &'static str {
        if self.synced { AMR_SWK } else { AMR_HWK }
    }
}

fn webauthn(state: &AppState) -> Result<Webauthn, PasskeyError> {
    let issuer = &state.settings.issuer;
    let rp_id = issuer.domain().ok_or(PasskeyError::Config)?;
    let origin =
        Url::parse(&issuer.origin().ascii_serialization()).map_err(|_| PasskeyError::Config)?;
    WebauthnBuilder::new(rp_id, &origin)
        .and_then(|b| b.rp_name("Custos").build())
        .map_err(|_| PasskeyError::Config)
}

/// Whether passkeys can be used with this issuer.
pub fn available(state: &AppState) -> bool {
    webauthn(state).is_ok()
}

/// The id a credential is stored under.
fn cred_key(raw: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(raw)
}

fn reg_key(user_id: &str) -> String {
    format!("passkey-reg:{user_id}")
}
fn second_key(flow_hash: &str) -> String {
    format!("passkey-2fa:{flow_hash}")
}
fn login_key(flow_hash: &str) -> String {
    format!("passkey-login:{flow_hash}")
}

async fn park<T: Serialize>(state: &AppState, key: &str, v: &T) -> Result<(), PasskeyError> {
    let raw = serde_json::to_vec(v).map_err(|_| PasskeyError::Config)?;
    state
        .ephemeral
        .put(key, &raw, Duration::from_secs(CEREMONY_TTL_SECS))
        .await?;
    Ok(())
}

async fn take<T: DeserializeOwned>(state: &AppState, key: &str) -> Result<Option<T>, PasskeyError> {
    Ok(state
        .ephemeral
        .take(key)
        .await?
        .and_then(|raw| serde_json::from_slice(&raw).ok()))
}

/// A name as typed: trimmed, control characters dropped, at most [`NAME_MAX`] characters; `None`
/// when nothing is left.
pub fn clean_name(raw: &str) -> Option<String> {
    let n: String = raw
        .trim()
        .chars()
        .filter(|c| !c.is_control())
        .take(NAME_MAX)
        .collect();
    (!n.trim().is_empty()).then(|| n.trim().to_string())
}

/// The options for registering a new passkey (the person's existing ones are excluded), as the JSON
/// the browser gets.
pub async fn start_registration(
    state: &AppState,
    user: &User,
) -> Result<serde_json::Value, PasskeyError> {
    let wa = webauthn(state)?;
    let uuid = Uuid::parse_str(&user.id).map_err(|_| PasskeyError::Config)?;
    let exclude = state
        .store
        .passkeys(&user.id)
        .await?
        .iter()
        .filter_map(|p| serde_json::from_str::<Passkey>(&p.credential).ok())
        .map(|p| p.cred_id().clone())
        .collect::<Vec<_>>();
    let display = if user.name.is_empty() {
        &user.email
    } else {
        &user.name
    };
    let (ccr, reg) = wa
        .start_passkey_registration(uuid, &user.email, display, Some(exclude))
        .map_err(|_| PasskeyError::Config)?;
    park(state, &reg_key(&user.id), &reg).await?;
    Ok(discoverable(&ccr))
}

/// webauthn-rs asks for a server-side credential ("residentKey": "discouraged"), which a passwordless
/// sign-in cannot find: ask for a discoverable one (what people know as a passkey; "preferred" so a
/// security key without room for one can still be a second factor). The registration state does
/// not depend on it.
fn discoverable(ccr: &CreationChallengeResponse) -> serde_json::Value {
    let mut v = serde_json::to_value(ccr).unwrap_or_default();
    if let Some(sel) = v
        .pointer_mut("/publicKey/authenticatorSelection")
        .and_then(|s| s.as_object_mut())
    {
        sel.insert("residentKey".into(), "preferred".into());
    }
    v
}

/// Verifies the authenticator's answer and stores the new passkey under `name`.
pub async fn finish_registration(
    state: &AppState,
    user_id: &str,
    name: &str,
    answer: &RegisterPublicKeyCredential,
) -> Result<Result<StoredPasskey, Refused>, PasskeyError> {
    let wa = webauthn(state)?;
    let Some(reg) = take::<PasskeyRegistration>(state, &reg_key(user_id)).await? else {
        return Ok(Err(Refused::NoChallenge));
    };
    let pk = match wa.finish_passkey_registration(answer, &reg) {
        Ok(pk) => pk,
        Err(e) => {
            tracing::info!(error = %e, "passkey registration refused");
            return Ok(Err(Refused::Invalid));
        }
    };
    let row = StoredPasskey {
        id: cred_key(pk.cred_id().as_ref()),
        user_id: user_id.to_string(),
        name: name.to_string(),
        credential: serde_json::to_string(&pk).map_err(|_| PasskeyError::Config)?,
        created_at: state.clock.now(),
        last_used_at: None,
    };
    if !state.store.add_passkey(&row).await? {
        return Ok(Err(Refused::Duplicate));
    }
    Ok(Ok(row))
}

/// The options for using one of `user_id`'s passkeys as the second factor of the half-finished
/// login of the browser whose flow cookie hashes to `flow_hash`; `None` when they have none.
pub async fn start_second_factor(
    state: &AppState,
    user_id: &str,
    flow_hash: &str,
) -> Result<Option<RequestChallengeResponse>, PasskeyError> {
    let wa = webauthn(state)?;
    let keys: Vec<Passkey> = state
        .store
        .passkeys(user_id)
        .await?
        .iter()
        .filter_map(|p| serde_json::from_str(&p.credential).ok())
        .collect();
    if keys.is_empty() {
        return Ok(None);
    }
    let (rcr, st) = wa
        .start_passkey_authentication(&keys)
        .map_err(|_| PasskeyError::Config)?;
    park(state, &second_key(flow_hash), &st).await?;
    Ok(Some(rcr))
}

/// Checks the answer to [`start_second_factor`]: one of `user_id`'s passkeys, for that challenge.
pub async fn finish_second_factor(
    state: &AppState,
    user_id: &str,
    flow_hash: &str,
    answer: &PublicKeyCredential,
) -> Result<Result<Used, Refused>, PasskeyError> {
    let wa = webauthn(state)?;
    let Some(st) = take::<PasskeyAuthentication>(state, &second_key(flow_hash)).await? else {
        return Ok(Err(Refused::NoChallenge));
    };
    let Some(row) = state
        .store
        .passkey(&cred_key(answer.get_credential_id()))
        .await?
    else {
        return Ok(Err(Refused::UnknownCredential));
    };
    if row.user_id != user_id {
        return Ok(Err(Refused::UnknownCredential));
    }
    let res = match wa.finish_passkey_authentication(answer, &st) {
        Ok(r) => r,
        Err(e) => {
            tracing::info!(error = %e, "passkey second factor refused");
            return Ok(Err(Refused::Invalid));
        }
    };
    used(state, row, &res).await
}

/// The options for a passwordless sign-in on the browser whose flow cookie hashes to `flow_hash`: no
/// credentials are listed, the authenticator offers the discoverable ones it holds for this site.
pub async fn start_passwordless(
    state: &AppState,
    flow_hash: &str,
) -> Result<RequestChallengeResponse, PasskeyError> {
    let wa = webauthn(state)?;
    let (mut rcr, st) = wa
        .start_discoverable_authentication()
        .map_err(|_| PasskeyError::Config)?;
    // A button press, not the autofill ("conditional") prompt.
    rcr.mediation = None;
    park(state, &login_key(flow_hash), &st).await?;
    Ok(rcr)
}

/// Checks the answer to [`start_passwordless`]: the credential names its owner (the user handle),
/// which must be the person it is registered to; user verification is required.
pub async fn finish_passwordless(
    state: &AppState,
    flow_hash: &str,
    answer: &PublicKeyCredential,
) -> Result<Result<Used, Refused>, PasskeyError> {
    let wa = webauthn(state)?;
    let Some(st) = take::<DiscoverableAuthentication>(state, &login_key(flow_hash)).await? else {
        return Ok(Err(Refused::NoChallenge));
    };
    let Ok((owner, raw_id)) = wa.identify_discoverable_authentication(answer) else {
        return Ok(Err(Refused::Invalid));
    };
    let Some(row) = state.store.passkey(&cred_key(raw_id)).await? else {
        return Ok(Err(Refused::UnknownCredential));
    };
    if row.user_id != owner.to_string() {
        return Ok(Err(Refused::UnknownCredential));
    }
    let Ok(pk) = serde_json::from_str::<Passkey>(&row.credential) else {
        return Ok(Err(Refused::UnknownCredential));
    };
    let res = match wa.finish_discoverable_authentication_v2(answer, st, DiscoverableKey::from(&pk))
    {
        Ok(r) if r.user_verified() => r,
        Ok(_) => return Ok(Err(Refused::Invalid)),
        Err(e) => {
            tracing::info!(error = %e, "passkey sign-in refused");
            return Ok(Err(Refused::Invalid));
        }
    };
    used(state, row, &res).await
}

/// Records the use (counter, backup state, time); a passkey removed meanwhile refuses.
async fn used(
    state: &AppState,
    row: StoredPasskey,
    res: &AuthenticationResult,
) -> Result<Result<Used, Refused>, PasskeyError> {
    let Ok(mut pk) = serde_json::from_str::<Passkey>(&row.credential) else {
        return Ok(Err(Refused::UnknownCredential));
    };
    pk.update_credential(res);
    let cred = serde_json::to_string(&pk).map_err(|_| PasskeyError::Config)?;
    if !state
        .store
        .passkey_used(&row.id, &cred, state.clock.now())
        .await?
    {
        return Ok(Err(Refused::UnknownCredential));
    }
    Ok(Ok(Used {
        user_id: row.user_id,
        synced: res.backup_eligible(),
        user_verified: res.user_verified(),
    }))
}

/// Whether the person has a passkey.
pub async fn has_passkey(state: &AppState, user_id: &str) -> Result<bool, StoreError> {
    Ok(!state.store.passkeys(user_id).await?.is_empty())
}
