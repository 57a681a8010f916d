//! Accounts beyond sign-in: profile changes, one-time account tokens (email verification, password
//! reset, invitations) and the mail outbox. Owns the `account_tokens` and `mail_outbox` tables; of
//! `users` it writes the name, the email and its verified flag.

use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use super::entity::{account_tokens, mail_outbox, refresh_families, users};
use super::{SecretHash, Store, StoreError, is_unique_violation};

/// What a one-time account token is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenKind {
    /// Proves control of `email` (a new account's, or the new address of an email change).
    VerifyEmail,
    ResetPassword,
    /// Lets its holder register while registration is `invite`; `email`, when set, is the only
    /// address it registers.
    Invite,
}

impl TokenKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenKind::VerifyEmail => "verify_email",
            TokenKind::ResetPassword => "reset_password",
            TokenKind::Invite => "invite",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountToken {
    pub user_id: Option<String>,
    pub email: Option<String>,
    pub created_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
}

impl From<account_tokens::Model> for AccountToken {
    fn from(m: account_tokens::Model) -> Self {
        AccountToken {
            user_id: m.user_id,
            email: m.email,
            created_at: m.created_at,
            expires_at: m.expires_at,
            used_at: m.used_at,
        }
    }
}

/// A mail claimed for one delivery attempt.
#[derive(Clone, Debug)]
pub struct QueuedMail {
    pub id: String,
    pub to: String,
    pub subject: String,
    pub body_sealed: String,
    /// Attempts so far, this one included.
    pub attempts: u32,
}

impl Store {
    pub async fn set_user_name(&self, id: &str, name: &str, now: i64) -> Result<bool, StoreError> {
        let r = users::Entity::update_many()
            .col_expr(users::Column::Name, Expr::value(name.to_string()))
            .col_expr(users::Column::UpdatedAt, Expr::value(now))
            .filter(users::Column::Id.eq(id))
            .exec(&self.db)
            .await?;
        Ok(r.rows_affected == 1)
    }

    /// Marks the user's address verified when it is still `email` (it may have changed since the
    /// link was sent).
    pub async fn set_email_verified(
        &self,
        id: &str,
        email: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let r = users::Entity::update_many()
            .col_expr(users::Column::EmailVerified, Expr::value(true))
            .col_expr(users::Column::UpdatedAt, Expr::value(now))
            .filter(users::Column::Id.eq(id))
            .filter(users::Column::Email.eq(email))
            .exec(&self.db)
            .await?;
        Ok(r.rows_affected == 1)
    }

    /// Replaces the user's address with a verified new one; `Conflict` when another account has it.
    pub async fn change_email(&self, id: &str, email: &str, now: i64) -> Result<bool, StoreError> {
        let r = users::Entity::update_many()
            .col_expr(users::Column::Email, Expr::value(email.to_string()))
            .col_expr(users::Column::EmailVerified, Expr::value(true))
            .col_expr(users::Column::UpdatedAt, Expr::value(now))
            .filter(users::Column::Id.eq(id))
            .exec(&self.db)
            .await;
        match r {
            Ok(r) => Ok(r.rows_affected == 1),
            Err(e) if is_unique_violation(&e) => {
                Err(StoreError::Conflict("a user with this email"))
            }
            Err(e) => Err(e.into()),
        }
    }

    // --- one-time account tokens ----------------------------------------------------------------

    pub async fn insert_account_token(
        &self,
        hash: &SecretHash,
        kind: TokenKind,
        user_id: Option<&str>,
        email: Option<&str>,
        now: i64,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        let am = account_tokens::ActiveModel {
            token_hash: Set(hash.to_db()),
            kind: Set(kind.as_str().to_string()),
            user_id: Set(user_id.map(str::to_string)),
            email: Set(email.map(str::to_string)),
            created_at: Set(now),
            expires_at: Set(expires_at),
            used_at: Set(None),
        };
        account_tokens::Entity::insert(am)
            .exec_without_returning(&self.db)
            .await?;
        Ok(())
    }

    /// The token, if it exists, is of `kind`, unused and unexpired (for showing a form; using it is
    /// [`Store::consume_account_token`]).
    pub async fn live_account_token(
        &self,
        hash: &SecretHash,
        kind: TokenKind,
        now: i64,
    ) -> Result<Option<AccountToken>, StoreError> {
        Ok(account_tokens::Entity::find_by_id(hash.to_db())
            .filter(account_tokens::Column::Kind.eq(kind.as_str()))
            .filter(account_tokens::Column::UsedAt.is_null())
            .filter(account_tokens::Column::ExpiresAt.gt(now))
            .one(&self.db)
            .await?
            .map(AccountToken::from))
    }

    /// Uses up a live token of `kind`: one conditional UPDATE, so of concurrent callers (on any
    /// replica) exactly one gets it. `None` for an unknown, used, expired or other-kind token.
    pub async fn consume_account_token(
        &self,
        hash: &SecretHash,
        kind: TokenKind,
        now: i64,
    ) -> Result<Option<AccountToken>, StoreError> {
        let r = account_tokens::Entity::update_many()
            .col_expr(account_tokens::Column::UsedAt, Expr::value(now))
            .filter(account_tokens::Column::TokenHash.eq(hash.to_db()))
            .filter(account_tokens::Column::Kind.eq(kind.as_str()))
            .filter(account_tokens::Column::UsedAt.is_null())
            .filter(account_tokens::Column::ExpiresAt.gt(now))
            .exec(&self.db)
            .await?;
        if r.rows_affected != 1 {
            return Ok(None);
        }
        Ok(account_tokens::Entity::find_by_id(hash.to_db())
            .one(&self.db)
            .await?
            .map(AccountToken::from))
    }

    /// Uses up every live token of `kind` for the user (a reset invalidates older reset links).
    pub async fn void_account_tokens(
        &self,
        user_id: &str,
        kind: TokenKind,
        now: i64,
    ) -> Result<u64, StoreError> {
        let r = account_tokens::Entity::update_many()
            .col_expr(account_tokens::Column::UsedAt, Expr::value(now))
            .filter(account_tokens::Column::UserId.eq(user_id))
            .filter(account_tokens::Column::Kind.eq(kind.as_str()))
            .filter(account_tokens::Column::UsedAt.is_null())
            .exec(&self.db)
            .await?;
        Ok(r.rows_affected)
    }

    /// The newest address the user asked to change to and has not confirmed yet.
    pub async fn pending_email_change(
        &self,
        user_id: &str,
        current: &str,
        now: i64,
    ) -> Result<Option<String>, StoreError> {
        Ok(account_tokens::Entity::find()
            .filter(account_tokens::Column::UserId.eq(user_id))
            .filter(account_tokens::Column::Kind.eq(TokenKind::VerifyEmail.as_str()))
            .filter(account_tokens::Column::UsedAt.is_null())
            .filter(account_tokens::Column::ExpiresAt.gt(now))
            .filter(account_tokens::Column::Email.ne(current))
            .order_by_desc(account_tokens::Column::CreatedAt)
            .one(&self.db)
            .await?
            .and_then(|m| m.email))
    }

    /// Deletes tokens that expired more than a day ago; for the housekeeping job.
    pub async fn purge_account_tokens(&self, now: i64) -> Result<u64, StoreError> {
        let r = account_tokens::Entity::delete_many()
            .filter(account_tokens::Column::ExpiresAt.lt(now - 86_400))
            .exec(&self.db)
            .await?;
        Ok(r.rows_affected)
    }

    /// Revokes every live refresh-token family of the user, whatever session or client it belongs to
    /// (a password reset: whoever knew the old password may hold any of them). Returns how many.
    pub async fn revoke_user_refresh_families(
        &self,
        user_id: &str,
        reason: &str,
        now: i64,
    ) -> Result<u64, StoreError> {
        let r = super::refresh::revoke_families(
            refresh_families::Column::UserId.eq(user_id),
            reason,
            now,
        )
        .exec(&self.db)
        .await?;
        Ok(r.rows_affected)
    }

    // --- mail outbox ----------------------------------------------------------------------------

    pub async fn enqueue_mail(
        &self,
        id: &str,
        to: &str,
        subject: &str,
        body_sealed: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        let am = mail_outbox::ActiveModel {
            id: Set(id.to_string()),
            to_addr: Set(to.to_string()),
            subject: Set(subject.to_string()),
            body_sealed: Set(body_sealed.to_string()),
            created_at: Set(now),
            attempts: Set(0),
            next_attempt_at: Set(now),
            lease_until: Set(None),
            sent_at: Set(None),
            failed_at: Set(None),
            last_error: Set(None),
        };
        mail_outbox::Entity::insert(am)
            .exec_without_returning(&self.db)
            .await?;
        Ok(())
    }

    /// Claims up to `limit` mails that are due (or only `only`), each for `lease_secs`: a conditional
    /// UPDATE per row, so two replicas draining at once never send the same mail twice while a lease
    /// holds. Each claim counts as an attempt.
    pub async fn claim_due_mail(
        &self,
        now: i64,
        lease_secs: i64,
        limit: u64,
        only: Option<&str>,
    ) -> Result<Vec<QueuedMail>, StoreError> {
        let mut q = mail_outbox::Entity::find()
            .filter(mail_outbox::Column::SentAt.is_null())
            .filter(mail_outbox::Column::FailedAt.is_null())
            .filter(mail_outbox::Column::NextAttemptAt.lte(now))
            .filter(
                mail_outbox::Column::LeaseUntil
                    .is_null()
                    .or(mail_outbox::Column::LeaseUntil.lte(now)),
            );
        if let Some(id) = only {
            q = q.filter(mail_outbox::Column::Id.eq(id));
        }
        let candidates = q
            .order_by_asc(mail_outbox::Column::NextAttemptAt)
            .limit(limit)
            .all(&self.db)
            .await?;
        let mut claimed = Vec::new();
        for m in candidates {
            let r = mail_outbox::Entity::update_many()
                .col_expr(
                    mail_outbox::Column::LeaseUntil,
                    Expr::value(now + lease_secs),
                )
                .col_expr(
                    mail_outbox::Column::Attempts,
                    Expr::col(mail_outbox::Column::Attempts).add(1),
                )
                .filter(mail_outbox::Column::Id.eq(m.id.clone()))
                .filter(mail_outbox::Column::SentAt.is_null())
                .filter(mail_outbox::Column::Attempts.eq(m.attempts))
                .filter(
                    mail_outbox::Column::LeaseUntil
                        .is_null()
                        .or(mail_outbox::Column::LeaseUntil.lte(now)),
                )
                .exec(&self.db)
                .await?;
            if r.rows_affected == 1 {
                claimed.push(QueuedMail {
                    attempts: u32::try_from(m.attempts).unwrap_or(0) + 1,
                    id: m.id,
                    to: m.to_addr,
                    subject: m.subject,
                    body_sealed: m.body_sealed,
                });
            }
        }
        Ok(claimed)
    }

    /// Delivered: the sealed body (it carries one-time links) is dropped; the row stays as a record.
    pub async fn mark_mail_sent(&self, id: &str, now: i64) -> Result<(), StoreError> {
        mail_outbox::Entity::update_many()
            .col_expr(mail_outbox::Column::SentAt, Expr::value(now))
            .col_expr(
                mail_outbox::Column::LeaseUntil,
                Expr::value(Option::<i64>::None),
            )
            .col_expr(mail_outbox::Column::BodySealed, Expr::value(String::new()))
            .col_expr(
                mail_outbox::Column::LastError,
                Expr::value(Option::<String>::None),
            )
            .filter(mail_outbox::Column::Id.eq(id))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// A failed attempt: retry at `retry_at`, or give up (`None`; the body is dropped).
    pub async fn mark_mail_failed(
        &self,
        id: &str,
        error: &str,
        retry_at: Option<i64>,
        now: i64,
    ) -> Result<(), StoreError> {
        let mut q = mail_outbox::Entity::update_many()
            .col_expr(
                mail_outbox::Column::LeaseUntil,
                Expr::value(Option::<i64>::None),
            )
            .col_expr(
                mail_outbox::Column::LastError,
                Expr::value(error.chars().take(500).collect::<String>()),
            );
        q = match retry_at {
            Some(t) => q.col_expr(mail_outbox::Column::NextAttemptAt, Expr::value(t)),
            None => q
                .col_expr(mail_outbox::Column::FailedAt, Expr::value(now))
                .col_expr(mail_outbox::Column::BodySealed, Expr::value(String::new())),
        };
        q.filter(mail_outbox::Column::Id.eq(id))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// (pending, sent, failed) mails addressed to `to`; for tests and operators.
    pub async fn mail_status(&self, to: &str) -> Result<(u64, u64, u64), StoreError> {
        let rows = mail_outbox::Entity::find()
            .filter(mail_outbox::Column::ToAddr.eq(to))
            .all(&self.db)
            .await?;
        let sent = rows.iter().filter(|m| m.sent_at.is_some()).count() as u64;
        let failed = rows.iter().filter(|m| m.failed_at.is_some()).count() as u64;
        Ok((rows.len() as u64 - sent - failed, sent, failed))
    }

    /// Deletes delivered or abandoned mails older than a week; for the housekeeping job.
    pub async fn purge_mail(&self, now: i64) -> Result<u64, StoreError> {
        let cutoff = now - 7 * 86_400;
        let r = mail_outbox::Entity::delete_many()
            .filter(
                mail_outbox::Column::SentAt
                    .lt(cutoff)
                    .or(mail_outbox::Column::FailedAt.lt(cutoff)),
            )
            .exec(&self.db)
            .await?;
        Ok(r.rows_affected)
    }
}
