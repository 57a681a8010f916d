use sea_orm::entity::prelude::*;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "sessions")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    #[sea_orm(unique)]
    pub token_hash: String,
    pub user_id: String,
    pub created_at: i64,
    pub last_seen_at: i64,
    pub idle_expires_at: i64,
    pub absolute_expires_at: i64,
    pub auth_time: i64,
    pub amr: String,
    pub acr: String,
    pub ip: Option<String>,
    pub device: String,
    pub remember_me: bool,
    pub ended_at: Option<i64>,
    pub end_reason: Option<String>,
}

impl ActiveModelBehavior for ActiveModel {}
