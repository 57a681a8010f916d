//! Housekeeping that keeps the database from growing without bound. Every replica runs it; each step is
//! an idempotent bulk statement, so replicas doing it at the same time only repeat each other's work.
//!
//! - Refresh families past their absolute lifetime are deleted with their tokens. (Revoked families stay
//!   until then, so a replayed token is still recognised as reuse and audited.)
//! - Sealed grace copies of rotated tokens are dropped once no client's grace window can still need
//!   them ([`MAX_REUSE_GRACE_SECS`] after the rotation).
//! - Session records are deleted [`SESSION_RETENTION_SECS`] after they ended or expired (the audit
//!   trail keeps what happened).

use std::time::Duration;

use crate::app::AppState;
use crate::clients::MAX_REUSE_GRACE_SECS;
use crate::store::StoreError;

/// How often a replica runs [`run_once`].
pub const EVERY: Duration = Duration::from_secs(600);
/// The first run waits this long after start-up, so a restart storm is not also a purge storm.
const FIRST_AFTER: Duration = Duration::from_secs(60);

/// How long an ended or expired session stays listed (`custos session list --all`).
pub const SESSION_RETENTION_SECS: i64 = 7 * 86_400;

/// What one pass removed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub refresh_families_purged: u64,
    pub sealed_successors_cleared: u64,
    pub sessions_purged: u64,
}

/// One housekeeping pass at the state's clock.
pub async fn run_once(state: &AppState) -> Result<Report, StoreError> {
    let now = state.clock.now();
    // Used or expired one-time links, and delivered or abandoned mails, after a grace period.
    let tokens = state.store.purge_account_tokens(now).await?;
    let mails = state.store.purge_mail(now).await?;
    if tokens + mails > 0 {
        tracing::debug!(
            tokens,
            mails,
            "housekeeping: account links and mails purged"
        );
    }
    Ok(Report {
        refresh_families_purged: state.store.purge_refresh_families(now).await?,
        sealed_successors_cleared: state
            .store
            .clear_stale_successors(now, MAX_REUSE_GRACE_SECS)
            .await?,
        sessions_purged: state
            .store
            .purge_sessions(now - SESSION_RETENTION_SECS)
            .await?,
    })
}

/// Runs [`run_once`] every [`EVERY`] until the task is aborted; a failed pass is logged and retried
/// at the next tick.
pub fn spawn(state: AppState) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        tokio::time::sleep(FIRST_AFTER).await;
        let mut tick = tokio::time::interval(EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match run_once(&state).await {
                Ok(r) if r != Report::default() => tracing::info!(
                    refresh_families_purged = r.refresh_families_purged,
                    sealed_successors_cleared = r.sealed_successors_cleared,
                    sessions_purged = r.sessions_purged,
                    "housekeeping"
                ),
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "housekeeping failed; retrying at the next pass")
                }
            }
        }
    })
}
