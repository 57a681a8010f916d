//! Second factors: TOTP, recovery codes, emailed one-time codes and passkeys; the MFA policy; the half-finished
//! login that waits between the password and the second factor.
//!
//! This module decides whether a code is good and uses it up. It owns no HTTP (that is
//! `http::mfa` and `http::security`) and never creates sessions itself.

pub mod email_otp;
pub mod passkey;
pub mod policy;
pub mod recovery;
pub mod totp;

use std::net::IpAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::app::AppState;
use crate::audit::{self, Event};
use crate::ephemeral::EphemeralError;
use crate::identity::bruteforce::{self, Gate};
use crate::keys::seal::SealError;
use crate::store::StoreError;

/// The `acr` of a sign-in with a password (or passkey) and a second factor.
pub const ACR_MFA: &str = "urn:custos:acr:mfa";
/// RFC 8176 `amr` of a one-time code (TOTP, recovery code, emailed code).
pub const AMR_OTP: &str = "otp";
/// How long a half-finished login may wait for its second factor.
pub const HALF_LOGIN_TTL_SECS: i64 = 300;

#[derive(Debug, thiserror::Error)]
pub enum MfaError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Ephemeral(#[from] EphemeralError),
    #[error("second-factor secret: {0}")]
    Seal(#[from] SealError),
}

/// Which second factor was used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Factor {
    Totp,
    RecoveryCode,
    EmailOtp,
    /// A passkey; `synced` when backup-eligible (RFC 8176 `swk`, else `hwk`).
    Passkey {
        synced: bool,
    },
}

impl Factor {
    pub fn as_str(self) -> &'static str {
        match self {
            Factor::Totp => "totp",
            Factor::RecoveryCode => "recovery_code",
            Factor::EmailOtp => "email_otp",
            Factor::Passkey { .. } => "passkey",
        }
    }
}

/// The result of checking a second-factor code.
#[derive(Debug, PartialEq, Eq)]
pub enum Check {
    Ok(Factor),
    /// Wrong, already used, or an older TOTP step than the last accepted one.
    Refused,
    /// Too many wrong codes for this account recently; nothing was checked.
    Locked,
}

/// A sign-in whose first factor is done (or a session that must step up), waiting for the second.
/// Kept in the ephemeral store under the hash of the browser's flow cookie, so only that browser can
/// finish it; it expires after [`HALF_LOGIN_TTL_SECS`] and is taken (not read) when it completes.
#[derive(Clone, Serialize, Deserialize)]
pub struct HalfLogin {
    pub user_id: String,
    pub csrf: String,
    /// The pending authorization request this sign-in continues.
    pub req: Option<String>,
    /// Where an account-page sign-in goes afterwards (a local path).
    pub return_to: Option<String>,
    /// The client's redirect URI the flow ends at: the page's CSP must allow it in `form-action`.
    pub form_target: Option<String>,
    /// The methods already done (`pwd`, or a step-up session's).
    pub amr: Vec<String>,
    /// A step-up keeps its session's `sid`; a fresh sign-in gets a new one.
    pub sid: Option<String>,
    pub expires_at: i64,
    /// The sign-in form's "remember me" (a step-up keeps its session's).
    #[serde(default)]
    pub remember_me: bool,
    /// An emailed code: its hash, and when it was sent.
    pub email_code: Option<email_otp::SentCode>,
}

impl std::fmt::Debug for HalfLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HalfLogin")
            .field("user_id", &self.user_id)
            .field("req", &self.req)
            .field("amr", &self.amr)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

fn half_key(flow_hash: &str) -> String {
    format!("mfa-login:{flow_hash}")
}

impl HalfLogin {
    pub async fn save(&self, state: &AppState, flow_hash: &str) -> Result<(), EphemeralError> {
        let ttl = (self.expires_at - state.clock.now()).max(1) as u64;
        state
            .ephemeral
            .put(
                &half_key(flow_hash),
                &serde_json::to_vec(self).unwrap_or_default(),
                Duration::from_secs(ttl),
            )
            .await
    }

    /// The live half-finished login of the browser whose flow cookie hashes to `flow_hash`.
    pub async fn load(
        state: &AppState,
        flow_hash: &str,
    ) -> Result<Option<HalfLogin>, EphemeralError> {
        let Some(raw) = state.ephemeral.get(&half_key(flow_hash)).await? else {
            return Ok(None);
        };
        Ok(serde_json::from_slice::<HalfLogin>(&raw)
            .ok()
            .filter(|h| state.clock.now() < h.expires_at))
    }

    /// Takes it atomically: of two concurrent completions, one gets it.
    pub async fn take(
        state: &AppState,
        flow_hash: &str,
    ) -> Result<Option<HalfLogin>, EphemeralError> {
        let Some(raw) = state.ephemeral.take(&half_key(flow_hash)).await? else {
            return Ok(None);
        };
        Ok(serde_json::from_slice::<HalfLogin>(&raw)
            .ok()
            .filter(|h| state.clock.now() < h.expires_at))
    }

    pub async fn discard(state: &AppState, flow_hash: &str) -> Result<(), EphemeralError> {
        state.ephemeral.delete(&half_key(flow_hash)).await
    }
}

/// `amr` after a second factor: the first factors, then `otp`.
pub fn amr_with(first: &[String], factor: Factor) -> Vec<String> {
    let add = match factor {
        Factor::Totp | Factor::RecoveryCode | Factor::EmailOtp => AMR_OTP,
        Factor::Passkey { synced: false } => passkey::AMR_HWK,
        Factor::Passkey { synced: true } => passkey::AMR_SWK,
    };
    let mut v = first.to_vec();
    if !v.iter().any(|m| m == add) {
        v.push(add.to_string());
    }
    v
}

/// Counts one guess against the account and this client's address in the password sign-in's limits
/// (`identity::bruteforce`: atomic on the shared store, so replicas and concurrent guesses share one
/// budget). `None`: locked, nothing may be checked.
async fn begin_attempt(
    state: &AppState,
    user_id: &str,
    ip: Option<&str>,
) -> Result<Option<bruteforce::Attempt>, MfaError> {
    let Some(user) = state.store.user(user_id).await? else {
        return Ok(None);
    };
    let ip: Option<IpAddr> = ip.and_then(|i| i.parse().ok());
    match bruteforce::begin(state, &user.email, ip.as_ref()).await? {
        Gate::Allowed(a) => Ok(Some(a)),
        Gate::Locked { .. } => Ok(None),
    }
}

/// Settles an attempt: a right code clears the account's count, a wrong one may start the lock.
async fn finish_attempt(
    state: &AppState,
    attempt: &bruteforce::Attempt,
    ok: bool,
) -> Result<(), MfaError> {
    if ok {
        bruteforce::succeeded(state, attempt).await?;
    } else {
        bruteforce::failed(state, attempt).await?;
    }
    Ok(())
}

async fn audit_failure(state: &AppState, user_id: &str, ip: Option<&str>, reason: &str) {
    let mut e = Event::new("mfa_failed")
        .subject(user_id)
        .details(json!({"reason": reason}));
    if let Some(ip) = ip {
        e = e.ip(ip);
    }
    audit::record(&state.store, state.clock.now(), e).await;
}

/// Whether the person has an authenticator app enrolled.
pub async fn has_totp(state: &AppState, user_id: &str) -> Result<bool, StoreError> {
    Ok(state.store.totp_enrolment(user_id).await?.is_some())
}

/// Checks a TOTP or recovery code for an enrolled person and uses it up: a TOTP step is accepted only
/// after the last accepted one, a recovery code only once. Wrong codes count against the account.
pub async fn check_code(
    state: &AppState,
    user_id: &str,
    code: &str,
    ip: Option<&str>,
) -> Result<Check, MfaError> {
    let Some(attempt) = begin_attempt(state, user_id, ip).await? else {
        audit_failure(state, user_id, ip, "too_many_attempts").await;
        return Ok(Check::Locked);
    };
    let factor = use_code(state, user_id, code, ip).await?;
    finish_attempt(state, &attempt, factor.is_some()).await?;
    Ok(factor.map_or(Check::Refused, Check::Ok))
}

/// The checking half of [`check_code`]: which factor `code` was, once used up.
async fn use_code(
    state: &AppState,
    user_id: &str,
    code: &str,
    ip: Option<&str>,
) -> Result<Option<Factor>, MfaError> {
    let now = state.clock.now();
    if totp::normalize_code(code).is_some() {
        let Some(enrolment) = state.store.totp_enrolment(user_id).await? else {
            audit_failure(state, user_id, ip, "not_enrolled").await;
            return Ok(None);
        };
        let secret = totp::TotpSecret::open(&state.kek, user_id, &enrolment.sealed_secret)?;
        let Some(step) = secret.matching_step(code, now) else {
            audit_failure(state, user_id, ip, "wrong_totp").await;
            return Ok(None);
        };
        if step <= enrolment.last_step || !state.store.accept_totp_step(user_id, step).await? {
            audit_failure(state, user_id, ip, "totp_replayed").await;
            return Ok(None);
        }
        return Ok(Some(Factor::Totp));
    }
    let Some(normalized) = recovery::normalize(code) else {
        audit_failure(state, user_id, ip, "malformed_code").await;
        return Ok(None);
    };
    if !state
        .store
        .use_recovery_code(user_id, &recovery::hash(&normalized), now)
        .await?
    {
        audit_failure(state, user_id, ip, "wrong_recovery_code").await;
        return Ok(None);
    }
    let left = state.store.recovery_codes_left(user_id).await?;
    let mut e = Event::new("mfa_recovery_code_used")
        .subject(user_id)
        .details(json!({"remaining": left}));
    if let Some(ip) = ip {
        e = e.ip(ip);
    }
    audit::record(&state.store, now, e).await;
    if left <= recovery::LOW {
        email_otp::notify_recovery_codes_low(state, user_id, left).await;
    }
    Ok(Some(Factor::RecoveryCode))
}

/// Checks an emailed code against the one sent for this half-finished login; same attempt budget.
pub async fn check_email_code(
    state: &AppState,
    half: &HalfLogin,
    code: &str,
    ip: Option<&str>,
) -> Result<Check, MfaError> {
    let Some(attempt) = begin_attempt(state, &half.user_id, ip).await? else {
        audit_failure(state, &half.user_id, ip, "too_many_attempts").await;
        return Ok(Check::Locked);
    };
    let ok = half
        .email_code
        .as_ref()
        .is_some_and(|sent| sent.matches(code, state.clock.now()));
    finish_attempt(state, &attempt, ok).await?;
    if ok {
        Ok(Check::Ok(Factor::EmailOtp))
    } else {
        audit_failure(state, &half.user_id, ip, "wrong_email_code").await;
        Ok(Check::Refused)
    }
}
