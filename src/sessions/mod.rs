//! Browser sessions as records: starting one (with the per-user limit), finding the one behind a
//! cookie, listing a person's, and ending them — which revokes the refresh-token families created in
//! them and queues back-channel logout notices for the relying parties that got tokens in them.
//!
//! `session` keeps the cookie, flow and CSRF helpers; this module owns what a session *is* and its
//! audit trail. It never sends anything over the network itself: notices go through the SQL outbox,
//! which `backchannel` delivers.
//!
//! Lifetimes: a session ends `session_idle_ttl_secs` after it was last used and in any case
//! `session_absolute_ttl_secs` after sign-in; with "remember me" it lasts
//! `session_remember_me_ttl_secs` whether used or not, and its cookie outlives the browser. Use is
//! written at most once a minute ([`TOUCH_EVERY_SECS`]), so a page load is a read, not a write, and
//! an idle session may end up to that much early.

pub mod device;

use crate::app::AppState;
use crate::audit::{self, Event};
use crate::clients::random_token;
use crate::config::Settings;
use crate::session::{self, Session};
use crate::store::{EndPolicy, NewSession, Store, StoreError};

pub use crate::store::{EndedSession, SessionRecord};

/// Why a session ended (`sessions.end_reason`, the audit trail, the revoked families' reason).
pub mod reason {
    /// RP-initiated logout or the sign-out page.
    pub const LOGOUT: &str = "logout";
    /// The person ended it from the account's sessions page.
    pub const ENDED_BY_USER: &str = "ended_by_user";
    /// The person ended every other session from the account's sessions page.
    pub const ENDED_OTHERS: &str = "ended_others";
    pub const PASSWORD_CHANGED: &str = "password_changed";
    pub const PASSWORD_RESET: &str = "password_reset";
    pub const ACCOUNT_DISABLED: &str = "account_disabled";
    /// The per-user concurrent-session limit ended the least recently seen session.
    pub const SESSION_LIMIT: &str = "session_limit";
    /// An operator (CLI, admin API).
    pub const ADMIN: &str = "admin";
    /// Someone else signed in on the same browser.
    pub const REPLACED: &str = "replaced";
}

/// A session's use is written at most this often.
pub const TOUCH_EVERY_SECS: i64 = 60;

/// A successful sign-in, to be turned into a session.
#[derive(Clone, Debug)]
pub struct SignIn {
    pub user_id: String,
    pub amr: Vec<String>,
    pub acr: String,
    pub remember_me: bool,
    /// The client address as resolved with `trusted_proxies`.
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// Audit events of the sign-in itself (the password check), written with the new session.
    pub events: Vec<Event>,
}

/// The session a sign-in produced and the cookie that carries it.
#[derive(Clone, Debug)]
pub struct SignedIn {
    /// The new cookie value (only its hash is stored).
    pub cookie: String,
    pub session: Session,
    /// The cookie's `Max-Age`: `Some` for "remember me", `None` for a browser-session cookie.
    pub cookie_max_age: Option<i64>,
    /// True when the browser's existing session of the same person was re-authenticated in place
    /// (same `sid`, new cookie) rather than a new session started.
    pub reauthenticated: bool,
}

impl SignedIn {
    pub fn set_cookie(&self, state: &AppState) -> axum::http::HeaderValue {
        session::set_cookie(state, session::SESSION, &self.cookie, self.cookie_max_age)
    }
}

/// (idle expiry, absolute expiry) of a session signed in at `now`.
fn lifetimes(s: &Settings, remember_me: bool, now: i64) -> (i64, i64) {
    let secs = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    if remember_me {
        let abs = now.saturating_add(secs(s.raw.session_remember_me_ttl_secs));
        (abs, abs)
    } else {
        let abs = now.saturating_add(secs(s.raw.session_absolute_ttl_secs));
        (
            now.saturating_add(secs(s.raw.session_idle_ttl_secs))
                .min(abs),
            abs,
        )
    }
}

fn policy<'a>(s: &Settings, reason: &'a str, now: i64) -> EndPolicy<'a> {
    EndPolicy {
        reason,
        now,
        keep_offline_access: s.raw.offline_access_survives_logout,
    }
}

fn to_session(r: &SessionRecord) -> Session {
    Session {
        sid: r.id.clone(),
        user_id: r.user_id.clone(),
        auth_time: r.auth_time,
        amr: r.amr.clone(),
        acr: r.acr.clone(),
        created_at: r.created_at,
        absolute_expires_at: r.absolute_expires_at,
    }
}

/// Signs a person in on this browser. When the browser's current session (`previous_cookie`) is the
/// same person's, it is re-authenticated in place: same `sid` (relying parties keep their sessions),
/// new cookie, new `auth_time`/`amr`/`acr`, renewed lifetimes. Otherwise a new session starts (the
/// previous one, someone else's, ends), within the per-user limit. The cookie is new either way
/// (no fixation).
pub async fn sign_in(
    state: &AppState,
    previous_cookie: Option<&str>,
    mut s: SignIn,
) -> Result<SignedIn, StoreError> {
    let now = state.clock.now();
    let cookie = random_token(32);
    let hash = session::hash(&cookie);
    let (idle, abs) = lifetimes(&state.settings, s.remember_me, now);
    let cookie_max_age = s.remember_me.then_some(abs - now);
    if let Some(prev) = previous_cookie.filter(|c| c.len() <= 128) {
        let prev_hash = session::hash(prev);
        if let Some(rec) = state.store.session_by_token(&prev_hash).await?
            && rec.is_live(now)
        {
            if rec.user_id == s.user_id {
                if state
                    .store
                    .reauthenticate_session(
                        &rec.id,
                        &prev_hash,
                        &hash,
                        now,
                        &s.amr,
                        &s.acr,
                        s.remember_me,
                        idle,
                        abs,
                    )
                    .await?
                {
                    for e in std::mem::take(&mut s.events) {
                        audit::record(&state.store, now, e).await;
                    }
                    audit::record(
                        &state.store,
                        now,
                        with_ip(Event::new("session_reauthenticated"), &s.ip)
                            .subject(&s.user_id)
                            .details(serde_json::json!({
                                "sid": rec.id, "amr": s.amr, "acr": s.acr,
                                "remember_me": s.remember_me,
                            })),
                    )
                    .await;
                    let session = Session {
                        sid: rec.id,
                        user_id: s.user_id,
                        auth_time: now,
                        amr: s.amr,
                        acr: s.acr,
                        created_at: rec.created_at,
                        absolute_expires_at: abs,
                    };
                    return Ok(SignedIn {
                        cookie,
                        session,
                        cookie_max_age,
                        reauthenticated: true,
                    });
                }
            } else {
                end_session(state, &rec.id, reason::REPLACED).await?;
            }
        }
    }
    let device = device::label(s.user_agent.as_deref());
    let sid = random_token(16);
    let mut events: Vec<_> = s.events.into_iter().map(|e| e.into_row(now)).collect();
    events.push(
        with_ip(Event::new("session_started"), &s.ip)
            .subject(&s.user_id)
            .details(serde_json::json!({
                "sid": sid, "device": device, "amr": s.amr, "acr": s.acr,
                "remember_me": s.remember_me,
            }))
            .into_row(now),
    );
    let ended = state
        .store
        .start_session(
            NewSession {
                id: sid.clone(),
                token_hash: hash,
                user_id: s.user_id.clone(),
                now,
                idle_expires_at: idle,
                absolute_expires_at: abs,
                auth_time: now,
                amr: s.amr.clone(),
                acr: s.acr.clone(),
                ip: s.ip.clone(),
                device: device.clone(),
                remember_me: s.remember_me,
            },
            state.settings.raw.session_limit_per_user,
            policy(&state.settings, reason::SESSION_LIMIT, now),
            &events,
        )
        .await?;
    ended_audit(&state.store, now, &ended, None).await;
    kick(state, &ended);
    Ok(SignedIn {
        cookie,
        session: Session {
            sid,
            user_id: s.user_id,
            auth_time: now,
            amr: s.amr,
            acr: s.acr,
            created_at: now,
            absolute_expires_at: abs,
        },
        cookie_max_age,
        reauthenticated: false,
    })
}

/// The live session behind a cookie value. Notes its use (at most once a minute), sliding the idle
/// expiry.
pub async fn lookup(state: &AppState, cookie: &str) -> Result<Option<Session>, StoreError> {
    let Some(rec) = state.store.session_by_token(&session::hash(cookie)).await? else {
        return Ok(None);
    };
    let now = state.clock.now();
    if !rec.is_live(now) {
        return Ok(None);
    }
    if now - rec.last_seen_at >= TOUCH_EVERY_SECS {
        let idle = if rec.remember_me {
            rec.absolute_expires_at
        } else {
            now.saturating_add(i64::try_from(state.settings.raw.session_idle_ttl_secs).unwrap_or(0))
                .min(rec.absolute_expires_at)
        };
        state
            .store
            .touch_session(&rec.id, now, idle, now - TOUCH_EVERY_SECS)
            .await?;
    }
    Ok(Some(to_session(&rec)))
}

/// Ends every live session of `user_id` except `keep_sid` (the `sid` of the session to keep, e.g. the
/// one a password was just changed in). For each ended session: the refresh-token families created in
/// it are revoked (those with `offline_access` survive only when `offline_access_survives_logout` is
/// set), a back-channel logout is queued for every client that got tokens in it, and an audit event is
/// written. Returns how many sessions ended.
pub async fn end_user_sessions(
    state: &AppState,
    user_id: &str,
    keep_sid: Option<&str>,
    reason: &'static str,
) -> Result<usize, StoreError> {
    let ended = end_user_sessions_in(
        &state.store,
        &state.settings,
        state.clock.now(),
        user_id,
        keep_sid,
        reason,
        None,
    )
    .await?;
    kick(state, &ended);
    Ok(ended.len())
}

/// Ends one session by its `sid`, with the same consequences as [`end_user_sessions`]. True when this
/// call ended it (false: unknown or already ended).
pub async fn end_session(
    state: &AppState,
    sid: &str,
    reason: &'static str,
) -> Result<bool, StoreError> {
    let ended = end_session_in(
        &state.store,
        &state.settings,
        state.clock.now(),
        sid,
        reason,
        None,
    )
    .await?;
    if let Some(e) = &ended {
        kick(state, std::slice::from_ref(e));
    }
    Ok(ended.is_some())
}

/// [`end_user_sessions`] without a running server (the CLI): the notices wait in the outbox for the
/// next server to poll it. `actor` names who did it in the audit trail (the person when `None`).
pub async fn end_user_sessions_in(
    store: &Store,
    settings: &Settings,
    now: i64,
    user_id: &str,
    keep_sid: Option<&str>,
    reason: &str,
    actor: Option<&str>,
) -> Result<Vec<EndedSession>, StoreError> {
    let ended = store
        .end_user_sessions(user_id, keep_sid, policy(settings, reason, now))
        .await?;
    ended_audit(store, now, &ended, actor).await;
    Ok(ended)
}

/// [`end_session`] without a running server (the CLI).
pub async fn end_session_in(
    store: &Store,
    settings: &Settings,
    now: i64,
    sid: &str,
    reason: &str,
    actor: Option<&str>,
) -> Result<Option<EndedSession>, StoreError> {
    let ended = store
        .end_session(sid, policy(settings, reason, now))
        .await?;
    ended_audit(store, now, ended.as_slice(), actor).await;
    Ok(ended)
}

fn with_ip(e: Event, ip: &Option<String>) -> Event {
    match ip {
        Some(ip) => e.ip(ip.clone()),
        None => e,
    }
}

async fn ended_audit(store: &Store, now: i64, ended: &[EndedSession], actor: Option<&str>) {
    for e in ended {
        let mut ev = Event::new("session_ended")
            .subject(&e.user_id)
            .details(serde_json::json!({
                "sid": e.id, "reason": e.reason, "refresh_families_revoked": e.families_revoked,
                "backchannel_notified": e.notified,
            }));
        if let Some(a) = actor {
            ev = ev.actor(a);
        }
        audit::record(store, now, ev).await;
    }
}

/// Wakes this replica's back-channel deliverer when notices were queued.
fn kick(state: &AppState, ended: &[EndedSession]) {
    if ended.iter().any(|e| !e.notified.is_empty()) {
        state.backchannel.notify_one();
    }
}
