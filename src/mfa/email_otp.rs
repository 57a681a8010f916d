//! Emailed one-time codes: a second factor for people without an authenticator app, when
//! `mfa_email_otp` is on. Six digits, valid for the half-finished login they were sent for (at most
//! its five minutes), used up with it, and checked under the same attempt budget as TOTP codes. Only
//! a salted SHA-256 of the code is kept.
//!
//! Also the "few recovery codes left" notice. Both go out through the mailer.

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::app::AppState;
use crate::keys::seal::SealError;
use crate::mail::Compose;

/// How long an emailed code is good for.
pub const CODE_TTL_SECS: i64 = 300;
/// Codes sent per account per attempt window (`login_failure_window_secs`).
pub const MAX_SENDS: u64 = 5;

#[derive(Clone, Serialize, Deserialize)]
pub struct SentCode {
    salt: String,
    hash: String,
    pub sent_at: i64,
}

fn digest(salt: &str, code: &str) -> String {
    crate::oauth::tokens::sha256_b64(&format!("{salt}:{code}"))
}

impl SentCode {
    pub fn matches(&self, code: &str, now: i64) -> bool {
        let Some(code) = super::totp::normalize_code(code) else {
            return false;
        };
        let h = digest(&self.salt, &code);
        now < self.sent_at + CODE_TTL_SECS
            && h.len() == self.hash.len()
            && bool::from(h.as_bytes().ct_eq(self.hash.as_bytes()))
    }
}

/// A fresh six-digit code and what to keep of it.
pub fn new_code(now: i64) -> Result<(Zeroizing<String>, SentCode), SealError> {
    let mut b = [0u8; 4];
    SystemRandom::new()
        .fill(&mut b)
        .map_err(|_| SealError::Rng)?;
    // 2^32 mod 10^6 bias is below one in four thousand: irrelevant for a code that lives minutes.
    let code = Zeroizing::new(format!("{:06}", u32::from_be_bytes(b) % 1_000_000));
    let salt = crate::clients::random_token(16);
    let sent = SentCode {
        hash: digest(&salt, &code),
        salt,
        sent_at: now,
    };
    Ok((code, sent))
}

/// May another code be sent to this account now? Counts the send.
pub async fn allow_send(state: &AppState, user_id: &str) -> bool {
    state
        .ephemeral
        .incr(
            &format!("mfa-email-sends:{user_id}"),
            std::time::Duration::from_secs(state.settings.raw.login_failure_window_secs),
        )
        .await
        .is_ok_and(|n| n <= MAX_SENDS)
}

/// Sends the sign-in code to the person's address (queued in the mail outbox; the code never
/// reaches a log).
pub async fn send_code(state: &AppState, to: &str, code: &str) -> Result<(), String> {
    let compose = Compose {
        to,
        subject: "Your sign-in code",
        heading: "Your sign-in code",
        before: vec![
            format!("Enter this code to finish signing in: {code}"),
            format!("It is valid for {} minutes.", CODE_TTL_SECS / 60),
        ],
        action: None,
        after: vec![
            "If you did not try to sign in, change your password: someone else knows it.".into(),
        ],
    };
    crate::mail::enqueue(state, compose, None)
        .await
        .map(drop)
        .map_err(|e| e.to_string())
}

/// Tells the person that few recovery codes are left (after one was used).
pub async fn notify_recovery_codes_low(state: &AppState, user_id: &str, left: u64) {
    let Ok(Some(u)) = state.store.user(user_id).await else {
        return;
    };
    let link = format!(
        "{}{}",
        state.settings.issuer_str,
        crate::http::paths::ACCOUNT_SECURITY
    );
    let compose = Compose {
        to: &u.email,
        subject: "Few recovery codes left",
        heading: "Few recovery codes left",
        before: vec![format!(
            "A recovery code was just used to sign in to your account. {left} recovery code{} left.",
            if left == 1 { " is" } else { "s are" }
        )],
        action: Some(("Make new recovery codes", &link)),
        after: vec!["If this was not you, change your password and make new codes now.".into()],
    };
    if let Err(e) = crate::mail::enqueue(state, compose, None).await {
        tracing::warn!(error = %e, "cannot queue the recovery-codes notice");
    }
}
