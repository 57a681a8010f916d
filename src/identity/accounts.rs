//! Account flows behind the pages: registration, email verification (new accounts and address
//! changes), password reset and change. HTTP lives in `http::{register, password, account}`; these
//! functions decide, write, audit and queue mail.
//!
//! Enumeration: registration with an address that already has an account answers exactly like a
//! successful one (and mails that address a notice instead of a link); "forgot password" answers
//! before it even looks the address up, and does its work in the background.

use std::time::Duration;

use serde_json::json;
use zeroize::Zeroizing;

use super::password::HashParams;
use super::policy::{self, Weakness};
use super::tokens::{self, INVITE_TTL_SECS, RESET_TTL_SECS, VERIFY_TTL_SECS};
use super::{bruteforce, normalize_email};
use crate::app::AppState;
use crate::audit::{self, Event};
use crate::config::Registration;
use crate::http::paths;
use crate::mail::{self, Compose};
use crate::store::{StoreError, TokenKind, User};

/// Why a person's sessions end, as `sessions::reason` spells it.
const PASSWORD_RESET: &str = "password_reset";
const PASSWORD_CHANGED: &str = "password_changed";

fn link(state: &AppState, path: &str, token: &str) -> String {
    format!("{}{path}?token={token}", state.settings.issuer_str)
}

fn site(state: &AppState) -> String {
    state.settings.issuer_str.clone()
}

/// Queues a mail; a failure is logged (the queue is the durable part, so this only fails when the
/// database does) and never undoes what caused the mail.
async fn send(state: &AppState, compose: Compose<'_>, link: Option<&str>) {
    if let Err(e) = mail::enqueue(state, compose, link).await {
        tracing::error!(error = %e, "mail could not be queued");
    }
}

// --- registration ------------------------------------------------------------------------------

/// A registration form as posted.
pub struct RegisterForm {
    pub email: String,
    pub name: String,
    pub password: Zeroizing<String>,
    pub invite: Option<String>,
}

/// Per-field problems, in words for the form.
#[derive(Debug, Default)]
pub struct FieldErrors {
    pub email: Option<String>,
    pub name: Option<String>,
    pub password: Option<String>,
}

impl FieldErrors {
    pub fn any(&self) -> bool {
        self.email.is_some() || self.name.is_some() || self.password.is_some()
    }
}

#[derive(Debug)]
pub enum RegisterOutcome {
    /// The account exists now, or already did: the answer is the same ("check your inbox").
    CheckInbox {
        email: String,
    },
    Invalid(FieldErrors),
    /// Registration is closed, or this invitation is unknown, used or expired.
    NotAllowed,
}

/// Whether an invitation is live (for showing the form); `Some(email)` binds it to one address.
pub async fn live_invite(
    state: &AppState,
    raw: &str,
) -> Result<Option<Option<String>>, StoreError> {
    let Some(h) = tokens::parse(TokenKind::Invite, raw) else {
        return Ok(None);
    };
    Ok(state
        .store
        .live_account_token(&h, TokenKind::Invite, state.clock.now())
        .await?
        .map(|t| t.email))
}

pub async fn register(
    state: &AppState,
    f: RegisterForm,
    ip: Option<String>,
) -> Result<RegisterOutcome, StoreError> {
    let cfg = &state.settings.raw;
    let now = state.clock.now();
    let invite_email = match cfg.registration {
        Registration::Closed => return Ok(RegisterOutcome::NotAllowed),
        Registration::Open => None,
        Registration::Invite => {
            match live_invite(state, f.invite.as_deref().unwrap_or("")).await? {
                Some(bound) => bound,
                None => return Ok(RegisterOutcome::NotAllowed),
            }
        }
    };
    let mut errors = FieldErrors::default();
    let email = match normalize_email(&f.email) {
        Ok(e) => Some(e),
        Err(e) => {
            errors.email = Some(format!("Enter an email address that {e}."));
            None
        }
    };
    if let (Some(bound), Some(e)) = (&invite_email, &email)
        && bound != e
    {
        errors.email = Some("This invitation is for another address.".into());
    }
    let name = match crate::http::account::check_name(&f.name) {
        Ok(n) => Some(n),
        Err(e) => {
            errors.name = Some(e.into());
            None
        }
    };
    let context: Vec<&str> = [email.as_deref(), name.as_deref()]
        .into_iter()
        .flatten()
        .collect();
    if let Err(w) = policy::check(cfg, &f.password, &context).await {
        errors.password = Some(w.to_string());
    }
    let (Some(email), Some(name)) = (email, name) else {
        return Ok(RegisterOutcome::Invalid(errors));
    };
    if errors.any() {
        return Ok(RegisterOutcome::Invalid(errors));
    }
    // Hash before knowing whether the address is taken: both answers cost the same.
    let hash = state
        .hasher
        .hash(f.password, HashParams::from_config(cfg))
        .await
        .map_err(|e| StoreError::Corrupt(format!("password hashing: {e}")))?;
    if cfg.registration == Registration::Invite {
        let used = match tokens::parse(TokenKind::Invite, f.invite.as_deref().unwrap_or("")) {
            Some(h) => state
                .store
                .consume_account_token(&h, TokenKind::Invite, now)
                .await?
                .is_some(),
            None => false,
        };
        if !used {
            return Ok(RegisterOutcome::NotAllowed);
        }
    }
    let user = User {
        id: uuid::Uuid::new_v4().to_string(),
        email: email.clone(),
        email_verified: false,
        name,
        password_hash: Some(hash),
        disabled: false,
        created_at: now,
        updated_at: now,
    };
    let mut ev = Event::new("user_registered");
    if let Some(ip) = &ip {
        ev = ev.ip(ip.clone());
    }
    match state.store.insert_user(&user).await {
        Ok(()) => {
            audit::record(&state.store, now, ev.actor(&user.id).subject(&user.id)).await;
            send_verification(state, &user, &user.email, false).await?;
        }
        Err(StoreError::Conflict(_)) => {
            let existing = state.store.user_by_email(&email).await?;
            let mut ev = Event::new("registration_conflict");
            if let Some(u) = &existing {
                ev = ev.subject(&u.id);
            }
            if let Some(ip) = &ip {
                ev = ev.ip(ip.clone());
            }
            audit::record(&state.store, now, ev).await;
            let forgot = format!("{}{}", site(state), paths::PASSWORD_FORGOT);
            send(
                state,
                Compose {
                    to: &email,
                    subject: "Someone tried to create an account with your address",
                    heading: "You already have an account",
                    before: vec![
                        "Someone (perhaps you) tried to create a new account with this email address, which already has one. No new account was created.".into(),
                        "If it was you, sign in with your existing account. If you forgot its password, you can set a new one:".into(),
                    ],
                    action: Some(("Reset your password", &forgot)),
                    after: vec!["If it was not you, you can ignore this mail.".into()],
                },
                None,
            )
            .await;
        }
        Err(e) => return Err(e),
    }
    Ok(RegisterOutcome::CheckInbox { email })
}

/// Issues a verification link for `address` (the account's own, or the new one of an email change)
/// and queues it.
pub async fn send_verification(
    state: &AppState,
    user: &User,
    address: &str,
    change: bool,
) -> Result<(), StoreError> {
    let now = state.clock.now();
    let token = tokens::issue(
        &state.store,
        TokenKind::VerifyEmail,
        Some(&user.id),
        Some(address),
        now,
        VERIFY_TTL_SECS,
    )
    .await?;
    let url = link(state, paths::VERIFY_EMAIL, &token);
    let (subject, before) = if change {
        (
            "Confirm your new email address",
            vec![format!(
                "Hello {}, you asked to use this address for your account. Open the link below to confirm it; until then your account keeps its current address.",
                user.name
            )],
        )
    } else {
        (
            "Confirm your email address",
            vec![format!(
                "Welcome, {}! Open the link below to confirm that this address is yours.",
                user.name
            )],
        )
    };
    send(
        state,
        Compose {
            to: address,
            subject,
            heading: subject,
            before,
            action: Some(("Confirm this address", &url)),
            after: vec![
                "The link works once, for 24 hours. If you did not ask for this, ignore this mail."
                    .into(),
            ],
        },
        Some(&url),
    )
    .await;
    Ok(())
}

/// A new verification link for a signed-in person, or at an unverified sign-in: at most one a minute.
pub async fn resend_verification(state: &AppState, user: &User) -> bool {
    let key = format!("verify-resend:{}", user.id);
    match state
        .ephemeral
        .put_new(&key, b"1", Duration::from_secs(60))
        .await
    {
        Ok(true) => send_verification(state, user, &user.email, false)
            .await
            .is_ok(),
        _ => false,
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum Verified {
    /// The account's address is verified now.
    Address,
    /// The account's address changed to the confirmed one.
    Changed,
    /// Unknown, used or expired link.
    Invalid,
    /// The new address was taken by another account in the meantime.
    Taken,
}

/// Whether a verification link is live (for the confirmation page).
pub async fn verification_is_live(state: &AppState, raw: &str) -> Result<bool, StoreError> {
    let Some(h) = tokens::parse(TokenKind::VerifyEmail, raw) else {
        return Ok(false);
    };
    Ok(state
        .store
        .live_account_token(&h, TokenKind::VerifyEmail, state.clock.now())
        .await?
        .is_some())
}

pub async fn verify_email(state: &AppState, raw: &str) -> Result<Verified, StoreError> {
    let now = state.clock.now();
    let Some(h) = tokens::parse(TokenKind::VerifyEmail, raw) else {
        return Ok(Verified::Invalid);
    };
    let Some(t) = state
        .store
        .consume_account_token(&h, TokenKind::VerifyEmail, now)
        .await?
    else {
        return Ok(Verified::Invalid);
    };
    let (Some(uid), Some(address)) = (t.user_id, t.email) else {
        return Ok(Verified::Invalid);
    };
    let Some(user) = state.store.user(&uid).await? else {
        return Ok(Verified::Invalid);
    };
    if user.email == address {
        state.store.set_email_verified(&uid, &address, now).await?;
        audit::record(
            &state.store,
            now,
            Event::new("email_verified").subject(&uid),
        )
        .await;
        return Ok(Verified::Address);
    }
    match state.store.change_email(&uid, &address, now).await {
        Ok(_) => {
            audit::record(
                &state.store,
                now,
                Event::new("email_changed")
                    .subject(&uid)
                    .details(json!({"verified": true})),
            )
            .await;
            send(
                state,
                Compose {
                    to: &user.email,
                    subject: "Your email address was changed",
                    heading: "Your email address was changed",
                    before: vec![format!(
                        "Your account now uses {address}. Mail about it goes there from now on."
                    )],
                    action: None,
                    after: vec![
                        "If you did not do this, contact the administrator of this service.".into(),
                    ],
                },
                None,
            )
            .await;
            Ok(Verified::Changed)
        }
        Err(StoreError::Conflict(_)) => Ok(Verified::Taken),
        Err(e) => Err(e),
    }
}

/// Starts an email change: a link to the new address (or, when another account has it, a notice to
/// that address; the page answers the same).
pub async fn request_email_change(
    state: &AppState,
    user: &User,
    new: &str,
) -> Result<(), StoreError> {
    let now = state.clock.now();
    audit::record(
        &state.store,
        now,
        Event::new("email_change_requested")
            .actor(&user.id)
            .subject(&user.id),
    )
    .await;
    if state.store.user_by_email(new).await?.is_some() {
        send(
            state,
            Compose {
                to: new,
                subject: "Someone asked to use your address for another account",
                heading: "Your address is already in use",
                before: vec!["Someone asked to move another account to this email address. It already belongs to your account, so nothing was changed.".into()],
                action: None,
                after: vec!["If it was not you, you can ignore this mail.".into()],
            },
            None,
        )
        .await;
        return Ok(());
    }
    send_verification(state, user, new, true).await
}

// --- password reset ----------------------------------------------------------------------------

/// "Forgot password": answers at once, the same for every address; the lookup, the link and the
/// mail happen in the background (at most one reset mail per address a minute).
pub fn forgot_password(state: &AppState, email: &str, ip: Option<String>) {
    let Ok(email) = normalize_email(email) else {
        return;
    };
    let state = state.clone();
    tokio::spawn(async move {
        if let Err(e) = send_reset(&state, &email, ip).await {
            tracing::error!(error = %e, "password reset mail could not be prepared");
        }
    });
}

async fn send_reset(state: &AppState, email: &str, ip: Option<String>) -> Result<(), StoreError> {
    let now = state.clock.now();
    let Some(user) = state.store.user_by_email(email).await? else {
        let mut ev = Event::new("password_reset_requested").details(json!({"known": false}));
        if let Some(ip) = &ip {
            ev = ev.ip(ip.clone());
        }
        audit::record(&state.store, now, ev).await;
        return Ok(());
    };
    let throttle = format!("reset-mail:{}", user.id);
    if user.disabled
        || !state
            .ephemeral
            .put_new(&throttle, b"1", Duration::from_secs(60))
            .await
            .unwrap_or(false)
    {
        return Ok(());
    }
    let token = tokens::issue(
        &state.store,
        TokenKind::ResetPassword,
        Some(&user.id),
        Some(&user.email),
        now,
        RESET_TTL_SECS,
    )
    .await?;
    let mut ev = Event::new("password_reset_requested")
        .subject(&user.id)
        .details(json!({"known": true}));
    if let Some(ip) = &ip {
        ev = ev.ip(ip.clone());
    }
    audit::record(&state.store, now, ev).await;
    let url = link(state, paths::PASSWORD_RESET, &token);
    send(
        state,
        Compose {
            to: &user.email,
            subject: "Reset your password",
            heading: "Reset your password",
            before: vec!["Someone (hopefully you) asked to reset the password of your account. Open the link below to choose a new one.".into()],
            action: Some(("Choose a new password", &url)),
            after: vec![
                "The link works once, for 30 minutes. If you did not ask for this, ignore this mail: your password stays as it is.".into(),
            ],
        },
        Some(&url),
    )
    .await;
    Ok(())
}

/// The account a live reset link belongs to (for the form and the policy's context).
pub async fn reset_target(state: &AppState, raw: &str) -> Result<Option<User>, StoreError> {
    let Some(h) = tokens::parse(TokenKind::ResetPassword, raw) else {
        return Ok(None);
    };
    let Some(t) = state
        .store
        .live_account_token(&h, TokenKind::ResetPassword, state.clock.now())
        .await?
    else {
        return Ok(None);
    };
    match t.user_id {
        Some(id) => Ok(state.store.user(&id).await?.filter(|u| !u.disabled)),
        None => Ok(None),
    }
}

#[derive(Debug)]
pub enum ResetOutcome {
    Done,
    /// The new password is refused; the link still works.
    Weak(Weakness),
    /// Unknown, used or expired link.
    Invalid,
}

/// Sets a new password through a reset link: the link is used up, every session and refresh-token
/// family of the account ends, its sign-in lock lifts, and a notice is mailed.
pub async fn reset_password(
    state: &AppState,
    raw: &str,
    pw: Zeroizing<String>,
    ip: Option<String>,
) -> Result<ResetOutcome, StoreError> {
    let Some(user) = reset_target(state, raw).await? else {
        return Ok(ResetOutcome::Invalid);
    };
    if let Err(w) = policy::check(&state.settings.raw, &pw, &[&user.email, &user.name]).await {
        return Ok(ResetOutcome::Weak(w));
    }
    let hash = state
        .hasher
        .hash(pw, HashParams::from_config(&state.settings.raw))
        .await
        .map_err(|e| StoreError::Corrupt(format!("password hashing: {e}")))?;
    let now = state.clock.now();
    let Some(h) = tokens::parse(TokenKind::ResetPassword, raw) else {
        return Ok(ResetOutcome::Invalid);
    };
    // The conditional UPDATE decides: of two tabs submitting the same link, one wins.
    if state
        .store
        .consume_account_token(&h, TokenKind::ResetPassword, now)
        .await?
        .is_none()
    {
        return Ok(ResetOutcome::Invalid);
    }
    state.store.set_password_hash(&user.id, &hash, now).await?;
    state
        .store
        .void_account_tokens(&user.id, TokenKind::ResetPassword, now)
        .await?;
    // Opening the mailed link proved the address.
    state
        .store
        .set_email_verified(&user.id, &user.email, now)
        .await?;
    let sessions = crate::session::end_user_sessions(state, &user.id, None, PASSWORD_RESET).await?;
    let families = state
        .store
        .revoke_user_refresh_families(&user.id, PASSWORD_RESET, now)
        .await?;
    if let Err(e) = bruteforce::unlock_account(state.ephemeral.as_ref(), &user.email).await {
        tracing::warn!(error = %e, "could not lift the sign-in lock after a reset");
    }
    let mut ev = Event::new("password_reset")
        .subject(&user.id)
        .details(json!({
            "sessions_ended": sessions, "refresh_families_revoked": families,
        }));
    if let Some(ip) = &ip {
        ev = ev.ip(ip.clone());
    }
    audit::record(&state.store, now, ev).await;
    password_changed_notice(state, &user).await;
    Ok(ResetOutcome::Done)
}

async fn password_changed_notice(state: &AppState, user: &User) {
    let forgot = format!("{}{}", site(state), paths::PASSWORD_FORGOT);
    send(
        state,
        Compose {
            to: &user.email,
            subject: "Your password was changed",
            heading: "Your password was changed",
            before: vec![
                "The password of your account was just changed, and every other place you were signed in was signed out.".into(),
                "If this was not you, set a new password now:".into(),
            ],
            action: Some(("Reset your password", &forgot)),
            after: vec![],
        },
        None,
    )
    .await;
}

// --- password change ---------------------------------------------------------------------------

/// A signed-in person's current password, re-entered for a sensitive change.
#[derive(Debug, PartialEq, Eq)]
pub enum Current {
    Right,
    Wrong,
    /// The sign-in limits apply here too: a stolen session cannot guess the password faster.
    Locked,
}

/// Checks a re-entered current password under the brute-force limits; a wrong one is audited as
/// `event`.
pub async fn verify_current(
    state: &AppState,
    user: &User,
    pw: Zeroizing<String>,
    ip: Option<&str>,
    event: &'static str,
) -> Result<Current, crate::identity::login::LoginError> {
    let ip_addr: Option<std::net::IpAddr> = ip.and_then(|i| i.parse().ok());
    let attempt = match bruteforce::begin(state, &user.email, ip_addr.as_ref()).await? {
        bruteforce::Gate::Allowed(a) => a,
        bruteforce::Gate::Locked { .. } => return Ok(Current::Locked),
    };
    let stored = user.password_hash.clone().unwrap_or_default();
    let ok = state.hasher.verify(pw, stored).await;
    if ok {
        bruteforce::succeeded(state, &attempt).await?;
        return Ok(Current::Right);
    }
    let f = bruteforce::failed(state, &attempt).await?;
    let mut ev = Event::new(event)
        .subject(&user.id)
        .details(json!({"reason": "wrong_current_password", "locked": f.account_locked}));
    if let Some(ip) = ip {
        ev = ev.ip(ip);
    }
    audit::record(&state.store, state.clock.now(), ev).await;
    if !f.delay.is_zero() {
        tokio::time::sleep(f.delay).await;
    }
    Ok(Current::Wrong)
}

#[derive(Debug)]
pub enum ChangeOutcome {
    Done {
        sessions_ended: usize,
    },
    WrongCurrent,
    /// Too many wrong current passwords (the sign-in limits apply here too).
    Locked,
    Weak(Weakness),
}

/// Changes the password of a signed-in person: the current one is required; every other session and
/// refresh-token family ends, `keep_sid` (this session) stays.
pub async fn change_password(
    state: &AppState,
    user: &User,
    keep_sid: &str,
    current: Zeroizing<String>,
    new: Zeroizing<String>,
    ip: Option<String>,
) -> Result<ChangeOutcome, crate::identity::login::LoginError> {
    match verify_current(
        state,
        user,
        current,
        ip.as_deref(),
        "password_change_failed",
    )
    .await?
    {
        Current::Right => {}
        Current::Wrong => return Ok(ChangeOutcome::WrongCurrent),
        Current::Locked => return Ok(ChangeOutcome::Locked),
    }
    let now = state.clock.now();
    if let Err(w) = policy::check(&state.settings.raw, &new, &[&user.email, &user.name]).await {
        return Ok(ChangeOutcome::Weak(w));
    }
    let hash = state
        .hasher
        .hash(new, HashParams::from_config(&state.settings.raw))
        .await
        .map_err(|e| StoreError::Corrupt(format!("password hashing: {e}")))?;
    state.store.set_password_hash(&user.id, &hash, now).await?;
    let sessions =
        crate::session::end_user_sessions(state, &user.id, Some(keep_sid), PASSWORD_CHANGED)
            .await?;
    let mut ev = Event::new("password_changed")
        .actor(&user.id)
        .subject(&user.id)
        .details(json!({"sessions_ended": sessions}));
    if let Some(ip) = &ip {
        ev = ev.ip(ip.clone());
    }
    audit::record(&state.store, now, ev).await;
    password_changed_notice(state, user).await;
    Ok(ChangeOutcome::Done {
        sessions_ended: sessions,
    })
}

// --- invitations -------------------------------------------------------------------------------

/// Issues an invitation link (for `registration = "invite"`), optionally bound to one address and
/// mailed to it.
pub async fn invite(
    state: &AppState,
    email: Option<&str>,
    ttl_secs: Option<i64>,
) -> Result<String, StoreError> {
    let now = state.clock.now();
    let token = tokens::issue(
        &state.store,
        TokenKind::Invite,
        None,
        email,
        now,
        ttl_secs.unwrap_or(INVITE_TTL_SECS),
    )
    .await?;
    let url = format!(
        "{}{}?invite={token}",
        state.settings.issuer_str,
        paths::REGISTER
    );
    audit::record(
        &state.store,
        now,
        Event::new("invitation_created")
            .actor("cli")
            .details(json!({"bound_to_email": email.is_some()})),
    )
    .await;
    if let Some(to) = email
        && let Err(e) = mail::queue(
            state,
            &Compose {
                to,
                subject: "You are invited to create an account",
                heading: "You are invited",
                before: vec!["You have been invited to create an account. Open the link below to choose your password.".into()],
                action: Some(("Create your account", &url)),
                after: vec!["The invitation works once.".into()],
            },
        )
        .await
    {
        tracing::error!(error = %e, "invitation mail could not be queued");
    }
    Ok(url)
}
