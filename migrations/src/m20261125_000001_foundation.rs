//! Clients, users, signing keys and audit events.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Clients {
    Table,
    Id,
    Name,
    SecretHash,
    Public,
    RedirectUris,
    GrantTypes,
    AllowedScopes,
    DefaultScopes,
    AllowedResources,
    DefaultAudience,
    AccessTokenTtlSecs,
    RefreshTokenTtlSecs,
    IdTokenTtlSecs,
    SkipConsent,
    PostLogoutRedirectUris,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    Email,
    EmailVerified,
    Name,
    PasswordHash,
    Disabled,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum SigningKeys {
    Table,
    Kid,
    Alg,
    State,
    PublicJwk,
    SealedPrivateKey,
    CreatedAt,
    ActivatedAt,
    RetiredAt,
}

#[derive(DeriveIden)]
enum AuditEvents {
    Table,
    Id,
    At,
    Kind,
    Actor,
    Subject,
    ClientId,
    Ip,
    Details,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Clients::Table)
                .col(string_len(Clients::Id, 128).primary_key())
                .col(string_len(Clients::Name, 200))
                .col(string_len_null(Clients::SecretHash, 128))
                .col(boolean(Clients::Public))
                .col(text(Clients::RedirectUris))
                .col(text(Clients::GrantTypes))
                .col(text(Clients::AllowedScopes))
                .col(text(Clients::DefaultScopes))
                .col(text(Clients::AllowedResources))
                .col(string_len(Clients::DefaultAudience, 2048))
                .col(big_integer_null(Clients::AccessTokenTtlSecs))
                .col(big_integer_null(Clients::RefreshTokenTtlSecs))
                .col(big_integer_null(Clients::IdTokenTtlSecs))
                .col(boolean(Clients::SkipConsent))
                .col(text(Clients::PostLogoutRedirectUris))
                .col(big_integer(Clients::CreatedAt))
                .col(big_integer(Clients::UpdatedAt))
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(Users::Table)
                .col(string_len(Users::Id, 64).primary_key())
                .col(string_len_uniq(Users::Email, 320))
                .col(boolean(Users::EmailVerified))
                .col(string_len(Users::Name, 200))
                .col(string_len_null(Users::PasswordHash, 512))
                .col(boolean(Users::Disabled))
                .col(big_integer(Users::CreatedAt))
                .col(big_integer(Users::UpdatedAt))
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(SigningKeys::Table)
                .col(string_len(SigningKeys::Kid, 128).primary_key())
                .col(string_len(SigningKeys::Alg, 16))
                .col(string_len(SigningKeys::State, 16))
                .col(text(SigningKeys::PublicJwk))
                .col(text(SigningKeys::SealedPrivateKey))
                .col(big_integer(SigningKeys::CreatedAt))
                .col(big_integer_null(SigningKeys::ActivatedAt))
                .col(big_integer_null(SigningKeys::RetiredAt))
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(AuditEvents::Table)
                .col(string_len(AuditEvents::Id, 64).primary_key())
                .col(big_integer(AuditEvents::At))
                .col(string_len(AuditEvents::Kind, 64))
                .col(string_len_null(AuditEvents::Actor, 320))
                .col(string_len_null(AuditEvents::Subject, 320))
                .col(string_len_null(AuditEvents::ClientId, 128))
                .col(string_len_null(AuditEvents::Ip, 64))
                .col(text(AuditEvents::Details))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_audit_events_at")
                .table(AuditEvents::Table)
                .col(AuditEvents::At)
                .to_owned(),
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for t in [
            AuditEvents::Table.into_iden(),
            SigningKeys::Table.into_iden(),
            Users::Table.into_iden(),
            Clients::Table.into_iden(),
        ] {
            m.drop_table(Table::drop().table(t).to_owned()).await?;
        }
        Ok(())
    }
}
