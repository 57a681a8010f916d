//! Registered passkeys at rest. The credential itself is opaque JSON here (`mfa::passkey` owns its
//! meaning); the row's id is the credential id, so a credential is registered at most once.

use sea_orm::sea_query::Expr;
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder};

use super::entity::passkeys;
use super::{Store, StoreError, is_unique_violation};

/// One registered passkey.
#[derive(Clone, Debug)]
pub struct StoredPasskey {
    /// The credential id, base64url without padding.
    pub id: String,
    pub user_id: String,
    pub name: String,
    /// webauthn-rs's `Passkey` as JSON (public key and counter: nothing secret).
    pub credential: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

impl From<passkeys::Model> for StoredPasskey {
    fn from(m: passkeys::Model) -> Self {
        StoredPasskey {
            id: m.id,
            user_id: m.user_id,
            name: m.name,
            credential: m.credential,
            created_at: m.created_at,
            last_used_at: m.last_used_at,
        }
    }
}

impl Store {
    /// The person's passkeys, oldest first.
    pub async fn passkeys(&self, user_id: &str) -> Result<Vec<StoredPasskey>, StoreError> {
        Ok(passkeys::Entity::find()
            .filter(passkeys::Column::UserId.eq(user_id))
            .order_by_asc(passkeys::Column::CreatedAt)
            .order_by_asc(passkeys::Column::Id)
            .all(&self.db)
            .await?
            .into_iter()
            .map(Into::into)
            .collect())
    }

    pub async fn passkey(&self, id: &str) -> Result<Option<StoredPasskey>, StoreError> {
        Ok(passkeys::Entity::find_by_id(id.to_string())
            .one(&self.db)
            .await?
            .map(Into::into))
    }

    /// False when this credential id is already registered (to anyone).
    pub async fn add_passkey(&self, p: &StoredPasskey) -> Result<bool, StoreError> {
        let am = passkeys::ActiveModel {
            id: Set(p.id.clone()),
            user_id: Set(p.user_id.clone()),
            name: Set(p.name.clone()),
            credential: Set(p.credential.clone()),
            created_at: Set(p.created_at),
            last_used_at: Set(p.last_used_at),
        };
        match passkeys::Entity::insert(am)
            .exec_without_returning(&self.db)
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if is_unique_violation(&e) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Renames one of the person's passkeys; false when it is not theirs (or gone).
    pub async fn rename_passkey(
        &self,
        user_id: &str,
        id: &str,
        name: &str,
    ) -> Result<bool, StoreError> {
        let r = passkeys::Entity::update_many()
            .col_expr(passkeys::Column::Name, Expr::value(name))
            .filter(passkeys::Column::Id.eq(id))
            .filter(passkeys::Column::UserId.eq(user_id))
            .exec(&self.db)
            .await?;
        Ok(r.rows_affected == 1)
    }

    /// Removes one of the person's passkeys; false when it is not theirs (or gone).
    pub async fn remove_passkey(&self, user_id: &str, id: &str) -> Result<bool, StoreError> {
        let r = passkeys::Entity::delete_many()
            .filter(passkeys::Column::Id.eq(id))
            .filter(passkeys::Column::UserId.eq(user_id))
            .exec(&self.db)
            .await?;
        Ok(r.rows_affected == 1)
    }

    /// Removes every passkey of the person (the operator's `user reset-mfa`).
    pub async fn remove_passkeys(&self, user_id: &str) -> Result<u64, StoreError> {
        let r = passkeys::Entity::delete_many()
            .filter(passkeys::Column::UserId.eq(user_id))
            .exec(&self.db)
            .await?;
        Ok(r.rows_affected)
    }

    /// Records a use: the updated credential (counter, backup state) and when. False when the passkey
    /// was removed meanwhile (the sign-in must then fail).
    pub async fn passkey_used(
        &self,
        id: &str,
        credential: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let r = passkeys::Entity::update_many()
            .col_expr(passkeys::Column::Credential, Expr::value(credential))
            .col_expr(passkeys::Column::LastUsedAt, Expr::value(now))
            .filter(passkeys::Column::Id.eq(id))
            .exec(&self.db)
            .await?;
        Ok(r.rows_affected == 1)
    }
}
