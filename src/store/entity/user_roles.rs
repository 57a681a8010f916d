//! The `roles` column of `users`, on its own: the MFA policy reads it without widening `User`.
use sea_orm::entity::prelude::*;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "users")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub roles: String,
}

impl ActiveModelBehavior for ActiveModel {}
