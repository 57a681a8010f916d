//! Second factors at rest: TOTP enrolments (sealed secret + last accepted step), recovery-code
//! hashes, and the `roles` list the MFA policy reads. Every "use once" is a conditional UPDATE whose
//! affected-row count picks the single winner, on any number of replicas.

use sea_orm::sea_query::Expr;
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};

use super::entity::{mfa_recovery_codes, mfa_totp, user_roles, users};
use super::{SecretHash, Store, StoreError, User, is_unique_violation, list_from_db, list_to_db};

/// An active TOTP enrolment.
#[derive(Clone)]
pub struct TotpEnrolment {
    /// The 160-bit secret sealed under the KEK (AAD names the user).
    pub sealed_secret: String,
    /// The time step of the last accepted code.
    pub last_step: i64,
    pub created_at: i64,
}

impl std::fmt::Debug for TotpEnrolment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TotpEnrolment")
            .field("last_step", &self.last_step)
            .finish_non_exhaustive()
    }
}

fn code_rows(
    user_id: &str,
    codes: &[SecretHash],
    now: i64,
) -> Vec<mfa_recovery_codes::ActiveModel> {
    codes
        .iter()
        .map(|h| mfa_recovery_codes::ActiveModel {
            id: Set(uuid::Uuid::now_v7().to_string()),
            user_id: Set(user_id.to_string()),
            code_hash: Set(h.to_db()),
            used_at: Set(None),
            created_at: Set(now),
        })
        .collect()
}

/// Which second factors a person has set up.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SecondFactors {
    pub totp: bool,
    pub passkey: bool,
}

/// The account behind an address and its second factors, in one round trip (a sign-in needs both).
const USER_FOR_SIGN_IN_SQL: &str = "SELECT users.*, \
    EXISTS (SELECT 1 FROM mfa_totp WHERE mfa_totp.user_id = users.id) AS has_totp, \
    EXISTS (SELECT 1 FROM passkeys WHERE passkeys.user_id = users.id) AS has_passkey \
    FROM users WHERE users.email = ?";

impl Store {
    /// The account with this (normalised) address, and which second factors it has set up.
    pub async fn user_for_sign_in(
        &self,
        email: &str,
    ) -> Result<Option<(User, SecondFactors)>, StoreError> {
        static PG_SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        // SQLite: on the writer connection, whose page cache stays warm (the sign-in writes right
        // after, anyway).
        let row = self
            .read_before_write(USER_FOR_SIGN_IN_SQL, &PG_SQL, vec![email.into()])
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let user = User::from(row.model::<users::Entity>()?);
        let factors = SecondFactors {
            totp: row.flag("has_totp")?,
            passkey: row.flag("has_passkey")?,
        };
        Ok(Some((user, factors)))
    }

    pub async fn totp_enrolment(&self, user_id: &str) -> Result<Option<TotpEnrolment>, StoreError> {
        Ok(mfa_totp::Entity::find_by_id(user_id.to_string())
            .one(&self.db)
            .await?
            .map(|m| TotpEnrolment {
                sealed_secret: m.sealed_secret,
                last_step: m.last_step,
                created_at: m.created_at,
            }))
    }

    /// Activates TOTP with the step of the code that confirmed it (so that code cannot sign in) and a
    /// fresh set of recovery codes, in one transaction. False when the person is already enrolled.
    pub async fn activate_totp(
        &self,
        user_id: &str,
        sealed_secret: &str,
        step: i64,
        recovery: &[SecretHash],
        now: i64,
    ) -> Result<bool, StoreError> {
        let (txn, _gate) = self.begin_write().await?;
        let am = mfa_totp::ActiveModel {
            user_id: Set(user_id.to_string()),
            sealed_secret: Set(sealed_secret.to_string()),
            last_step: Set(step),
            created_at: Set(now),
        };
        match mfa_totp::Entity::insert(am)
            .exec_without_returning(&txn)
            .await
        {
            Ok(_) => {}
            Err(e) if is_unique_violation(&e) => {
                txn.rollback().await?;
                return Ok(false);
            }
            Err(e) => return Err(e.into()),
        }
        mfa_recovery_codes::Entity::delete_many()
            .filter(mfa_recovery_codes::Column::UserId.eq(user_id))
            .exec(&txn)
            .await?;
        mfa_recovery_codes::Entity::insert_many(code_rows(user_id, recovery, now))
            .exec_without_returning(&txn)
            .await?;
        txn.commit().await?;
        Ok(true)
    }

    /// Accepts `step` for the person's TOTP only when it is later than the last accepted one: of two
    /// concurrent uses of one code, exactly one succeeds.
    pub async fn accept_totp_step(&self, user_id: &str, step: i64) -> Result<bool, StoreError> {
        let r = mfa_totp::Entity::update_many()
            .col_expr(mfa_totp::Column::LastStep, Expr::value(step))
            .filter(mfa_totp::Column::UserId.eq(user_id))
            .filter(mfa_totp::Column::LastStep.lt(step))
            .exec(&self.db)
            .await?;
        Ok(r.rows_affected == 1)
    }

    /// Removes the person's TOTP enrolment and recovery codes.
    pub async fn remove_mfa(&self, user_id: &str) -> Result<(), StoreError> {
        let (txn, _gate) = self.begin_write().await?;
        mfa_totp::Entity::delete_by_id(user_id.to_string())
            .exec(&txn)
            .await?;
        mfa_recovery_codes::Entity::delete_many()
            .filter(mfa_recovery_codes::Column::UserId.eq(user_id))
            .exec(&txn)
            .await?;
        txn.commit().await?;
        Ok(())
    }

    /// Replaces every recovery code of the person (used or not) with `codes`.
    pub async fn replace_recovery_codes(
        &self,
        user_id: &str,
        codes: &[SecretHash],
        now: i64,
    ) -> Result<(), StoreError> {
        let (txn, _gate) = self.begin_write().await?;
        mfa_recovery_codes::Entity::delete_many()
            .filter(mfa_recovery_codes::Column::UserId.eq(user_id))
            .exec(&txn)
            .await?;
        mfa_recovery_codes::Entity::insert_many(code_rows(user_id, codes, now))
            .exec_without_returning(&txn)
            .await?;
        txn.commit().await?;
        Ok(())
    }

    /// Uses up one recovery code; true for the one caller that used it.
    pub async fn use_recovery_code(
        &self,
        user_id: &str,
        code: &SecretHash,
        now: i64,
    ) -> Result<bool, StoreError> {
        let r = mfa_recovery_codes::Entity::update_many()
            .col_expr(mfa_recovery_codes::Column::UsedAt, Expr::value(now))
            .filter(mfa_recovery_codes::Column::UserId.eq(user_id))
            .filter(mfa_recovery_codes::Column::CodeHash.eq(code.to_db()))
            .filter(mfa_recovery_codes::Column::UsedAt.is_null())
            .exec(&self.db)
            .await?;
        Ok(r.rows_affected == 1)
    }

    pub async fn recovery_codes_left(&self, user_id: &str) -> Result<u64, StoreError> {
        Ok(mfa_recovery_codes::Entity::find()
            .filter(mfa_recovery_codes::Column::UserId.eq(user_id))
            .filter(mfa_recovery_codes::Column::UsedAt.is_null())
            .count(&self.db)
            .await?)
    }

    pub async fn user_roles(&self, user_id: &str) -> Result<Vec<String>, StoreError> {
        match user_roles::Entity::find_by_id(user_id.to_string())
            .one(&self.db)
            .await?
        {
            Some(m) => list_from_db(&m.roles, "user roles"),
            None => Ok(Vec::new()),
        }
    }

    pub async fn set_user_roles(
        &self,
        user_id: &str,
        roles: &[String],
    ) -> Result<bool, StoreError> {
        let r = user_roles::Entity::update_many()
            .col_expr(user_roles::Column::Roles, Expr::value(list_to_db(roles)))
            .filter(user_roles::Column::Id.eq(user_id))
            .exec(&self.db)
            .await?;
        Ok(r.rows_affected == 1)
    }
}
