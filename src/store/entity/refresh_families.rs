use sea_orm::entity::prelude::*;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "refresh_families")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub user_id: String,
    pub client_id: String,
    pub scope: String,
    pub session_id: Option<String>,
    pub auth_time: Option<i64>,
    pub created_at: i64,
    pub absolute_expires_at: i64,
    pub revoked_at: Option<i64>,
    pub revoked_reason: Option<String>,
}

impl ActiveModelBehavior for ActiveModel {}
