//! OpenID Connect Back-Channel Logout 1.0: logout tokens delivered from the SQL outbox.
//!
//! Ending a session queues one notice per client that got tokens in it and registered a
//! `backchannel_logout_uri` (in the same transaction that ends the session, `store::sessions`). This
//! task delivers them: it claims due notices with a conditional UPDATE of their lease (so replicas
//! never deliver the same notice at the same time), signs a logout token per attempt (fresh `jti`,
//! `iat`, short `exp`) with the client's ID-token algorithm and `typ: logout+jwt`, and POSTs
//! `logout_token=…` with a timeout. A 2xx answer removes the notice; anything else (an error status,
//! a refused connection, a timeout) schedules another attempt after an exponential backoff, until
//! `backchannel_max_attempts`, when the notice is given up with an audit event. Nobody waits for any
//! of this: the person's request ended when the notice was queued, and a restart loses nothing, since
//! the outbox is the database. Delivery is at least once (a process stopped mid-POST leaves the
//! notice leased; once the lease passes it is sent again).

use std::time::Duration;

use serde::Serialize;
use serde_json::json;

use crate::app::AppState;
use crate::keys::KeysError;
use crate::store::{Client, LogoutNotice, StoreError};

/// The event a logout token carries (Back-Channel Logout 1.0 §2.4).
pub const EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";
/// A logout token's lifetime: long enough for clock skew, short enough that a captured one is useless
/// soon (the spec recommends at most two minutes).
pub const TOKEN_TTL_SECS: i64 = 120;
/// The wait between retries never grows past this.
pub const MAX_BACKOFF_SECS: u64 = 3_600;
/// Notices claimed per pass.
const BATCH: u64 = 32;

#[derive(Serialize)]
struct LogoutClaims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    iat: i64,
    exp: i64,
    jti: String,
    events: serde_json::Value,
    sid: &'a str,
}

/// A signed logout token for `client` about `notice`'s session and subject.
pub fn logout_token(
    state: &AppState,
    client: &Client,
    notice: &LogoutNotice,
    now: i64,
) -> Result<String, KeysError> {
    let claims = LogoutClaims {
        iss: &state.settings.issuer_str,
        sub: &notice.subject,
        aud: &client.id,
        iat: now,
        exp: now + TOKEN_TTL_SECS,
        jti: crate::oauth::tokens::new_jti(),
        events: json!({ EVENT: {} }),
        sid: &notice.session_id,
    };
    let payload =
        serde_json::to_vec(&claims).map_err(|_| KeysError::Corrupt("logout claims".into()))?;
    state
        .signer
        .sign_jws(state.settings.id_token_alg(client), "logout+jwt", &payload)
}

/// The wait after the `attempts`-th failed attempt: base, 2·base, 4·base, … at most an hour.
pub fn backoff_secs(base: u64, attempts: u32) -> u64 {
    let doublings = attempts.saturating_sub(1).min(20);
    base.saturating_mul(1u64 << doublings).min(MAX_BACKOFF_SECS)
}

/// What became of one notice in one pass.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Delivered,
    /// Failed; tried again later.
    Retry,
    /// Failed for the last time, or nobody is left to notify (client deleted or unregistered).
    Dropped,
}

/// The HTTP client deliveries use: no redirects (a logout token goes where it was registered to go,
/// nowhere else), the configured timeout.
pub fn http_client(state: &AppState) -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(
            state.settings.raw.backchannel_timeout_secs,
        ))
        .user_agent(concat!("custos/", env!("CARGO_PKG_VERSION")))
        .build()
        .unwrap_or_default()
}

/// One pass: claims the notices due now and delivers them concurrently (a slow relying party holds
/// up only its own notice). Returns how many were claimed.
pub async fn run_once(state: &AppState, http: &reqwest::Client) -> Result<usize, StoreError> {
    let now = state.clock.now();
    let due = state.store.due_logout_notices(now, BATCH).await?;
    // Past the lease a notice is free again: the timeout plus a margin for signing and bookkeeping.
    let lease_until = now + state.settings.raw.backchannel_timeout_secs as i64 + 30;
    let mut deliveries = tokio::task::JoinSet::new();
    for mut n in due {
        if !state
            .store
            .claim_logout_notice(&n.id, now, lease_until)
            .await?
        {
            continue;
        }
        n.attempts += 1;
        let (state, http) = (state.clone(), http.clone());
        deliveries.spawn(async move { deliver(&state, &http, n).await });
    }
    let mut claimed = 0;
    while let Some(r) = deliveries.join_next().await {
        claimed += 1;
        if let Ok(Err(e)) = r {
            tracing::warn!(error = %e, "back-channel logout bookkeeping failed; the notice is retried after its lease");
        }
    }
    Ok(claimed)
}

/// One attempt at one claimed notice (`n.attempts` counts this one).
async fn deliver(
    state: &AppState,
    http: &reqwest::Client,
    n: LogoutNotice,
) -> Result<Outcome, StoreError> {
    let now = state.clock.now();
    let client = state.clients.get(&n.client_id).await?;
    let Some((client, uri)) = client.and_then(|c| {
        let uri = c.backchannel_logout_uri.clone()?;
        Some((c, uri))
    }) else {
        state.store.delete_logout_notice(&n.id).await?;
        return Ok(Outcome::Dropped);
    };
    let result = match logout_token(state, &client, &n, now) {
        Ok(token) => http
            .post(&uri)
            .form(&[("logout_token", token.as_str())])
            .send()
            .await
            .map_err(|e| describe(&e))
            .and_then(|r| {
                if r.status().is_success() {
                    Ok(())
                } else {
                    Err(format!("HTTP {}", r.status().as_u16()))
                }
            }),
        Err(e) => Err(format!("signing: {e}")),
    };
    let event = |kind: &'static str, extra: serde_json::Value| {
        let mut details =
            json!({"sid": n.session_id, "attempts": n.attempts, "queued_at": n.created_at});
        if let (Some(d), Some(x)) = (details.as_object_mut(), extra.as_object()) {
            d.extend(x.clone());
        }
        crate::audit::Event::new(kind)
            .subject(&n.subject)
            .client(&n.client_id)
            .details(details)
    };
    match result {
        Ok(()) => {
            state.store.delete_logout_notice(&n.id).await?;
            crate::audit::record(
                &state.store,
                now,
                event("backchannel_logout_delivered", json!({})),
            )
            .await;
            Ok(Outcome::Delivered)
        }
        Err(error) if n.attempts >= state.settings.raw.backchannel_max_attempts => {
            tracing::warn!(client_id = %n.client_id, attempts = n.attempts, %error, "back-channel logout given up");
            state.store.delete_logout_notice(&n.id).await?;
            crate::audit::record(
                &state.store,
                now,
                event("backchannel_logout_failed", json!({"error": error})),
            )
            .await;
            Ok(Outcome::Dropped)
        }
        Err(error) => {
            let wait = backoff_secs(state.settings.raw.backchannel_retry_base_secs, n.attempts);
            tracing::info!(client_id = %n.client_id, attempts = n.attempts, %error, retry_in_secs = wait, "back-channel logout failed; will retry");
            state
                .store
                .retry_logout_notice(&n.id, now + wait as i64, &error)
                .await?;
            Ok(Outcome::Retry)
        }
    }
}

/// A transport error in a few words (reqwest's Display may carry the whole URL, query included).
fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "connection failed".into()
    } else if e.is_redirect() {
        "redirected".into()
    } else {
        "request failed".into()
    }
}

/// Delivers notices until the task is aborted: at once when this replica queued some, else every
/// few seconds (notices queued by other replicas or the CLI, and retries falling due).
pub fn spawn(state: AppState) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let http = http_client(&state);
        let poll = Duration::from_secs(state.settings.raw.backchannel_retry_base_secs.clamp(1, 5));
        loop {
            let full = match run_once(&state, &http).await {
                Ok(n) => n as u64 >= BATCH,
                Err(e) => {
                    tracing::warn!(error = %e, "back-channel logout outbox unavailable; retrying");
                    false
                }
            };
            if !full {
                tokio::select! {
                    _ = state.backchannel.notified() => {}
                    _ = tokio::time::sleep(poll) => {}
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::backoff_secs;

    #[test]
    fn backoff_doubles_up_to_an_hour() {
        assert_eq!(backoff_secs(30, 1), 30);
        assert_eq!(backoff_secs(30, 2), 60);
        assert_eq!(backoff_secs(30, 3), 120);
        assert_eq!(backoff_secs(30, 8), 3_600);
        assert_eq!(backoff_secs(30, 100), 3_600);
        assert_eq!(backoff_secs(1, 1), 1);
    }
}
