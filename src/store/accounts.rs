//! Accounts beyond sign-in: profile changes, one-time account tokens (email verification, password
//! reset, invitations) and the mail outbox. Owns the `account_tokens` and `mail_outbox` tables; the
//! `users` columns it writes are the name, the email and its verified flag.

use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

use super::entity::users;
use super::{Store, StoreError};

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
}
