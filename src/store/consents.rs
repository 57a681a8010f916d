//! Consent records: (user, client) → the scopes granted so far.

use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, EntityTrait};

use super::entity::consents;
use super::{Store, StoreError, list_from_db, list_to_db};

impl Store {
    pub async fn consented_scopes(
        &self,
        user_id: &str,
        client_id: &str,
    ) -> Result<Vec<String>, StoreError> {
        match consents::Entity::find_by_id((user_id.to_string(), client_id.to_string()))
            .one(&self.db)
            .await?
        {
            Some(m) => list_from_db(&m.scopes, "consent scopes"),
            None => Ok(Vec::new()),
        }
    }

    /// Adds `scopes` to what the person granted the client (a union, never a narrowing).
    pub async fn grant_consent(
        &self,
        user_id: &str,
        client_id: &str,
        scopes: &[String],
        now: i64,
    ) -> Result<(), StoreError> {
        let mut all = self.consented_scopes(user_id, client_id).await?;
        for s in scopes {
            if !all.contains(s) {
                all.push(s.clone());
            }
        }
        let am = consents::ActiveModel {
            user_id: Set(user_id.to_string()),
            client_id: Set(client_id.to_string()),
            scopes: Set(list_to_db(&all)),
            created_at: Set(now),
            updated_at: Set(now),
        };
        consents::Entity::insert(am)
            .on_conflict(
                OnConflict::columns([consents::Column::UserId, consents::Column::ClientId])
                    .update_columns([consents::Column::Scopes, consents::Column::UpdatedAt])
                    .to_owned(),
            )
            .exec_without_returning(&self.db)
            .await?;
        Ok(())
    }
}
