//! Browser sessions as records: starting one (with the per-user limit), finding the one behind a
//! cookie, listing a person's, and ending them — which revokes the refresh-token families created in
//! them and queues back-channel logout notices for the relying parties that got tokens in them.
//!
//! `session` keeps the cookie, flow and CSRF helpers; this module owns what a session *is*. It never
//! sends anything over the network itself: deliveries go through the SQL outbox (`backchannel`).

use crate::app::AppState;
use crate::store::StoreError;

/// Why a session ended (`sessions.end_reason`, audit events, logout tokens are the same for all).
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
    // Interim: the SQL session records land in the next commits; until then this is a no-op so that
    // callers can be written against the final signature.
    let _ = (state, user_id, keep_sid, reason);
    Ok(0)
}

/// Ends one session by its `sid`, with the same consequences as [`end_user_sessions`]. True when this
/// call ended it (false: unknown or already ended).
pub async fn end_session(
    state: &AppState,
    sid: &str,
    reason: &'static str,
) -> Result<bool, StoreError> {
    let _ = (state, sid, reason);
    Ok(false)
}
