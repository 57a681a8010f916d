use sea_orm::entity::prelude::*;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "clients")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub name: String,
    pub secret_hash: Option<String>,
    pub public: bool,
    pub redirect_uris: String,
    pub grant_types: String,
    pub allowed_scopes: String,
    pub default_scopes: String,
    pub allowed_resources: String,
    pub default_audience: String,
    pub access_token_ttl_secs: Option<i64>,
    pub refresh_token_ttl_secs: Option<i64>,
    pub id_token_ttl_secs: Option<i64>,
    pub skip_consent: bool,
    pub post_logout_redirect_uris: String,
    pub refresh_reuse_grace_secs: i64,
    pub id_token_signed_response_alg: Option<String>,
    pub backchannel_logout_uri: Option<String>,
    pub backchannel_logout_session_required: bool,
    pub require_mfa: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

impl ActiveModelBehavior for ActiveModel {}
