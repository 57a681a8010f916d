//! One-time account tokens: 256 bits from the OS CSPRNG behind a prefix naming their purpose
//! (`cst_ev_` verification, `cst_pr_` password reset, `cst_iv_` invitation), so a leaked one can be
//! found by grep. Only their SHA-256 is stored; a token works once (`Store::consume_account_token`).

use crate::store::{SecretHash, Store, StoreError, TokenKind};

/// Email verification links live 24 h.
pub const VERIFY_TTL_SECS: i64 = 24 * 3600;
/// Password reset links live 30 min.
pub const RESET_TTL_SECS: i64 = 30 * 60;
/// Invitation links live 7 days unless the operator says otherwise.
pub const INVITE_TTL_SECS: i64 = 7 * 24 * 3600;

fn prefix(kind: TokenKind) -> &'static str {
    match kind {
        TokenKind::VerifyEmail => "cst_ev_",
        TokenKind::ResetPassword => "cst_pr_",
        TokenKind::Invite => "cst_iv_",
    }
}

/// The stored hash of a well-formed token of `kind`; `None` for anything that cannot be one.
pub fn parse(kind: TokenKind, raw: &str) -> Option<SecretHash> {
    let body = raw.strip_prefix(prefix(kind))?;
    let ok = body.len() == 43
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    ok.then(|| SecretHash::of(raw))
}

/// Creates and stores a token; returns it (shown or mailed once, never stored).
pub async fn issue(
    store: &Store,
    kind: TokenKind,
    user_id: Option<&str>,
    email: Option<&str>,
    now: i64,
    ttl_secs: i64,
) -> Result<String, StoreError> {
    let token = format!("{}{}", prefix(kind), crate::clients::random_token(32));
    store
        .insert_account_token(
            &SecretHash::of(&token),
            kind,
            user_id,
            email,
            now,
            now + ttl_secs,
        )
        .await?;
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_checks_prefix_and_shape() {
        let t = format!("cst_pr_{}", crate::clients::random_token(32));
        assert!(parse(TokenKind::ResetPassword, &t).is_some());
        assert!(parse(TokenKind::VerifyEmail, &t).is_none());
        assert!(parse(TokenKind::ResetPassword, "cst_pr_short").is_none());
        assert!(parse(TokenKind::ResetPassword, &format!("{t}=")).is_none());
    }
}
