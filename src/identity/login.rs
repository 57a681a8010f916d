//! Password sign-in. An unknown email, a wrong password and a disabled account look the same from
//! outside: the same message and status, and the same argon2 work (an unknown email is checked against
//! a dummy hash made with the configured parameters). Only the audit log says which it was.
//!
//! Every attempt goes through the brute-force limits first (`bruteforce`): a locked account or IP gets
//! the same "too many attempts" answer whether or not the account exists, and no password is checked.

use std::net::IpAddr;

use serde_json::json;
use zeroize::Zeroizing;

use super::normalize_email;
use super::password::{self, HashParams};
use super::{bruteforce, bruteforce::Gate};
use crate::app::AppState;
use crate::audit::{self, Event};
use crate::ephemeral::EphemeralError;
use crate::store::{SecondFactors, StoreError, User};

pub async fn dummy_hash(state: &AppState) -> String {
    let params = HashParams::from_config(&state.settings.raw);
    state
        .dummy_hash
        .get_or_init(|| async move {
            let pw = Zeroizing::new(crate::clients::random_token(24));
            state.hasher.hash(pw, params).await.unwrap_or_default()
        })
        .await
        .clone()
}

/// A right password for an enabled account.
#[derive(Debug)]
pub struct Verified {
    pub user: User,
    /// The second factors the person has set up (read with the account).
    pub factors: SecondFactors,
    /// `login_succeeded`, not yet written: it goes into the same transaction as the session the
    /// sign-in starts, or is recorded on its own when a second step comes first.
    pub event: Event,
}

/// How a password sign-in ended.
#[derive(Debug)]
pub enum LoginOutcome {
    Success(Box<Verified>),
    /// Unknown email, wrong password or disabled account: one answer for all three.
    Failed,
    /// Too many failures for this account or IP; no password was checked.
    Locked,
    /// The password was right but `require_verified_email` holds and the address is not verified
    /// (a new verification link has been queued).
    Unverified(User),
}

impl LoginOutcome {
    pub fn into_verified(self) -> Option<Verified> {
        match self {
            LoginOutcome::Success(v) => Some(*v),
            _ => None,
        }
    }

    /// What the sign-in form says; `None` on success.
    pub fn message(&self) -> Option<&'static str> {
        match self {
            LoginOutcome::Success(_) => None,
            LoginOutcome::Failed => Some("Incorrect email or password."),
            LoginOutcome::Locked => Some(
                "Too many failed attempts. Sign-in is paused for a while; try again later or reset your password.",
            ),
            LoginOutcome::Unverified(_) => Some(
                "Confirm your email address first: we have sent you a new link. Open it, then sign in.",
            ),
        }
    }

    /// The HTTP status of the form that says [`LoginOutcome::message`].
    pub fn status(&self) -> u16 {
        match self {
            LoginOutcome::Success(_) => 200,
            LoginOutcome::Locked => 429,
            LoginOutcome::Failed | LoginOutcome::Unverified(_) => 401,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Ephemeral(#[from] EphemeralError),
}

/// Checks an email and password against the brute-force limits and the stored hash.
pub async fn password_login(
    state: &AppState,
    email: &str,
    pw: Zeroizing<String>,
    ip: Option<String>,
) -> Result<LoginOutcome, LoginError> {
    let ip_addr: Option<IpAddr> = ip.as_deref().and_then(|i| i.parse().ok());
    let ev = |kind: &'static str| {
        let mut e = Event::new(kind);
        if let Some(ip) = &ip {
            e = e.ip(ip.clone());
        }
        e
    };
    let attempt = match bruteforce::begin(state, email, ip_addr.as_ref()).await? {
        Gate::Allowed(a) => a,
        Gate::Locked { until } => {
            audit::record(
                &state.store,
                state.clock.now(),
                ev("login_throttled").details(json!({"locked_until": until})),
            )
            .await;
            return Ok(LoginOutcome::Locked);
        }
    };
    let (user, factors) = match normalize_email(email) {
        Ok(e) => state.store.user_for_sign_in(&e).await?.unzip(),
        Err(_) => (None, None),
    };
    let stored = match user.as_ref().and_then(|u| u.password_hash.clone()) {
        Some(h) => h,
        None => dummy_hash(state).await,
    };
    let ok = state.hasher.verify(pw.clone(), stored).await;
    let now = state.clock.now();
    match user {
        Some(u) if ok && !u.disabled => {
            bruteforce::succeeded(state, &attempt).await?;
            let params = HashParams::from_config(&state.settings.raw);
            if u.password_hash
                .as_deref()
                .is_some_and(|h| password::needs_rehash(h, params))
            {
                let from = u.password_hash.as_deref().map(scheme_of).unwrap_or("none");
                let rehashed = state.hasher.hash(pw, params).await;
                if let Ok(h) = rehashed {
                    state.store.set_password_hash(&u.id, &h, now).await?;
                    audit::record(
                        &state.store,
                        now,
                        ev("password_rehashed")
                            .subject(&u.id)
                            .details(json!({"from": from, "to": "argon2id"})),
                    )
                    .await;
                }
            }
            if state.settings.raw.require_verified_email && !u.email_verified {
                audit::record(
                    &state.store,
                    now,
                    ev("login_failed")
                        .subject(&u.id)
                        .details(json!({"reason": "email_not_verified"})),
                )
                .await;
                super::accounts::resend_verification(state, &u).await;
                return Ok(LoginOutcome::Unverified(u));
            }
            let event = ev("login_succeeded")
                .subject(&u.id)
                .details(json!({"amr": ["pwd"]}));
            Ok(LoginOutcome::Success(Box::new(Verified {
                user: u,
                factors: factors.unwrap_or_default(),
                event,
            })))
        }
        other => {
            let failure = bruteforce::failed(state, &attempt).await?;
            let (subject, reason) = match &other {
                Some(u) if ok => (Some(u.id.clone()), "account_disabled"),
                Some(u) => (Some(u.id.clone()), "wrong_password"),
                None => (None, "unknown_email"),
            };
            let mut e = ev("login_failed").details(json!({"reason": reason}));
            if let Some(id) = &subject {
                e = e.subject(id);
            }
            audit::record(&state.store, now, e).await;
            if failure.account_locked || failure.ip_locked {
                let mut e = ev("login_locked").details(json!({
                    "account": failure.account_locked,
                    "ip": failure.ip_locked,
                    "lock_secs": state.settings.raw.login_lock_secs,
                }));
                if let Some(id) = &subject {
                    e = e.subject(id);
                }
                audit::record(&state.store, now, e).await;
            }
            if !failure.delay.is_zero() {
                tokio::time::sleep(failure.delay).await;
            }
            Ok(LoginOutcome::Failed)
        }
    }
}

/// The scheme of a stored hash, for audit events (never the hash).
fn scheme_of(h: &str) -> &'static str {
    password::imported_scheme(h).unwrap_or("unknown")
}
