//! Brute-force limits on password sign-in, per account and per client IP, shared by every replica
//! through the ephemeral store (Redis in production).
//!
//! **One atomic step.** Each attempt first increments its counters (`EphemeralStore::incr`: one
//! command, or one Lua script on Redis) and then decides from the count it got back: attempt number
//! `n` may check the password only while `n ≤ limit`. Concurrent attempts each get a different `n`,
//! so twenty parallel guesses get exactly `limit` password checks, never more — there is no
//! read-then-write gap to slip through. A failure at `n ≥ limit` starts the lock.
//!
//! **Windows and locks.** Counters live in fixed windows of `login_failure_window_secs` (the count is
//! this window's plus the previous one's, so a burst across a boundary still counts together). A lock
//! stores the time it ends (by the configured `Clock`, so tests move time instead of waiting) and is the
//! epoch of the counters that follow it: once it lifts, counting starts afresh instead of re-locking on
//! the failures that caused it. While locked no password is checked at all.
//!
//! **Fairness.** The account key is the SHA-256 of the normalised address whether or not an account
//! exists, so an unknown address locks exactly like a real one and the lock message reveals nothing.
//! A success clears the account's counters. For an IP it only offsets its own attempt, so the IP
//! limit counts failures (a busy NAT full of successful sign-ins is never locked) while one valid
//! account cannot wipe the record of a spray across others. Each failure is answered after a delay that doubles with the
//! account's failure count (`login_failure_delay_ms`), which slows a single-threaded guesser further.

use std::net::IpAddr;
use std::time::Duration;

use crate::app::AppState;
use crate::ephemeral::EphemeralError;

/// One rate-limited dimension of an attempt.
#[derive(Debug, Clone)]
struct Counter {
    /// `bf:a:<sha256(email)>` or `bf:i:<ip>`.
    subject: String,
    limit: u64,
    /// The count this attempt got (this window's and the previous one's).
    n: u64,
    /// Keys of this window's and the previous window's counters (for clearing on success).
    keys: [String; 2],
    /// The IP dimension's success counters: a success does not clear an IP's count (a valid account
    /// must not wipe the record of a spray), it offsets one attempt.
    success_keys: [String; 2],
}

/// An attempt that may check the password.
#[derive(Debug, Clone)]
pub struct Attempt {
    account: Counter,
    ip: Option<Counter>,
}

// Built once per sign-in attempt and matched at once: boxing the large variant would only allocate.
#[allow(clippy::large_enum_variant)]
pub enum Gate {
    Allowed(Attempt),
    /// Locked until this time (Clock seconds); no password is checked.
    Locked {
        until: i64,
    },
}

fn lock_key(subject: &str) -> String {
    format!("{subject}:lock")
}

/// The account's subject key: the normalised address (or, when it does not parse, the trimmed
/// lower-cased input), hashed so the ephemeral store holds no addresses.
pub fn account_subject(email: &str) -> String {
    let norm = super::normalize_email(email).unwrap_or_else(|_| email.trim().to_lowercase());
    format!("bf:a:{}", crate::oauth::tokens::sha256_b64(&norm))
}

pub fn ip_subject(ip: &IpAddr) -> String {
    format!("bf:i:{ip}")
}

async fn locked_until(s: &AppState, subject: &str) -> Result<Option<i64>, EphemeralError> {
    Ok(s.ephemeral
        .get(&lock_key(subject))
        .await?
        .and_then(|v| std::str::from_utf8(&v).ok()?.parse().ok()))
}

async fn read_count(s: &AppState, key: &str) -> Result<u64, EphemeralError> {
    Ok(s.ephemeral
        .get(key)
        .await?
        .map(|v| crate::ephemeral::memory::parse_count(&v))
        .unwrap_or(0))
}

/// Counts one attempt against `subject`; `Err(until)` when it is locked. With `offset_successes`,
/// successful sign-ins in the window are subtracted (the IP dimension counts failures, not traffic).
async fn count(
    s: &AppState,
    subject: String,
    limit: u64,
    offset_successes: bool,
) -> Result<Result<Counter, i64>, EphemeralError> {
    let now = s.clock.now();
    let epoch = match locked_until(s, &subject).await? {
        Some(until) if now < until => return Ok(Err(until)),
        Some(until) => until,
        None => 0,
    };
    let window = s.settings.raw.login_failure_window_secs.max(1) as i64;
    let bucket = now.div_euclid(window);
    let keys = [
        format!("{subject}:c:{epoch}:{bucket}"),
        format!("{subject}:c:{epoch}:{}", bucket - 1),
    ];
    let success_keys = [
        format!("{subject}:s:{epoch}:{bucket}"),
        format!("{subject}:s:{epoch}:{}", bucket - 1),
    ];
    // The increment decides; the previous window is only read (nothing increments it any more).
    let this = s
        .ephemeral
        .incr(&keys[0], Duration::from_secs(2 * window as u64))
        .await?;
    let before = read_count(s, &keys[1]).await?;
    // Successes only lower the count; read stale, they make the limit stricter, never looser.
    let successes = if offset_successes {
        read_count(s, &success_keys[0]).await? + read_count(s, &success_keys[1]).await?
    } else {
        0
    };
    let n = (this + before).saturating_sub(successes);
    // Over the limit: refused without a password check. Only a failure starts a lock (`failed`), so
    // a burst of concurrent sign-ins that all succeed is turned away for a moment, never locked out.
    if n > limit {
        return Ok(Err(now));
    }
    Ok(Ok(Counter {
        subject,
        limit,
        n,
        keys,
        success_keys,
    }))
}

async fn lock(s: &AppState, subject: &str, now: i64) -> Result<i64, EphemeralError> {
    let lock_secs = s.settings.raw.login_lock_secs as i64;
    let until = now + lock_secs;
    // Kept past `until` (by the window) so it still names the epoch of the counters after it.
    let keep = Duration::from_secs(
        (lock_secs as u64).saturating_add(2 * s.settings.raw.login_failure_window_secs),
    );
    s.ephemeral
        .put(&lock_key(subject), until.to_string().as_bytes(), keep)
        .await?;
    Ok(until)
}

/// Counts an attempt by (email, ip) and says whether it may check the password.
pub async fn begin(s: &AppState, email: &str, ip: Option<&IpAddr>) -> Result<Gate, EphemeralError> {
    let per_ip = u64::from(s.settings.raw.login_max_failures_per_ip);
    let ip = match ip {
        Some(ip) if per_ip > 0 => match count(s, ip_subject(ip), per_ip, true).await? {
            Ok(c) => Some(c),
            Err(until) => return Ok(Gate::Locked { until }),
        },
        _ => None,
    };
    let limit = u64::from(s.settings.raw.login_max_failures);
    match count(s, account_subject(email), limit, false).await? {
        Ok(account) => Ok(Gate::Allowed(Attempt { account, ip })),
        Err(until) => Ok(Gate::Locked { until }),
    }
}

/// What a failed attempt led to.
pub struct Failure {
    /// The account (or the IP) is locked from now on.
    pub account_locked: bool,
    pub ip_locked: bool,
    /// How long to wait before answering.
    pub delay: Duration,
}

/// Records a failed password check: locks what reached its limit.
pub async fn failed(s: &AppState, a: &Attempt) -> Result<Failure, EphemeralError> {
    let now = s.clock.now();
    let mut account_locked = false;
    if a.account.n >= a.account.limit {
        lock(s, &a.account.subject, now).await?;
        account_locked = true;
    }
    let mut ip_locked = false;
    if let Some(ip) = &a.ip
        && ip.n >= ip.limit
    {
        lock(s, &ip.subject, now).await?;
        ip_locked = true;
    }
    let base = s.settings.raw.login_failure_delay_ms;
    let shift = a.account.n.saturating_sub(1).min(4) as u32;
    Ok(Failure {
        account_locked,
        ip_locked,
        delay: Duration::from_millis(base.saturating_mul(1 << shift)),
    })
}

/// A successful sign-in clears the account's counters and offsets one attempt of the IP's.
pub async fn succeeded(s: &AppState, a: &Attempt) -> Result<(), EphemeralError> {
    for k in &a.account.keys {
        s.ephemeral.delete(k).await?;
    }
    if let Some(ip) = &a.ip {
        let window = s.settings.raw.login_failure_window_secs.max(1);
        s.ephemeral
            .incr(&ip.success_keys[0], Duration::from_secs(2 * window))
            .await?;
    }
    Ok(())
}

/// Lifts an account's lock and clears its counters (`custos user unlock`, a completed password reset).
pub async fn unlock_account(
    s: &dyn crate::ephemeral::EphemeralStore,
    email: &str,
) -> Result<(), EphemeralError> {
    unlock_subject(s, &account_subject(email)).await
}

pub async fn unlock_ip(
    s: &dyn crate::ephemeral::EphemeralStore,
    ip: &IpAddr,
) -> Result<(), EphemeralError> {
    unlock_subject(s, &ip_subject(ip)).await
}

async fn unlock_subject(
    s: &dyn crate::ephemeral::EphemeralStore,
    subject: &str,
) -> Result<(), EphemeralError> {
    // Deleting the lock would return the counters to epoch 0, whose old counts may still exist: write
    // an already-lifted lock (a negative time) with an epoch of its own instead.
    let epoch = -(uuid::Uuid::new_v4().as_u128() as u32 as i64) - 1;
    s.put(
        &lock_key(subject),
        epoch.to_string().as_bytes(),
        Duration::from_secs(7 * 86_400),
    )
    .await
}
