//! Refresh-token families and the tokens rotated within them. Only SHA-256 hashes of tokens are stored;
//! a successor is kept (sealed under the KEK) only for a short grace window.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum RefreshFamilies {
    Table,
    Id,
    UserId,
    ClientId,
    Scope,
    SessionId,
    AuthTime,
    CreatedAt,
    AbsoluteExpiresAt,
    RevokedAt,
    RevokedReason,
}

#[derive(DeriveIden)]
enum RefreshTokens {
    Table,
    TokenHash,
    FamilyId,
    ParentHash,
    Scope,
    CreatedAt,
    ExpiresAt,
    UsedAt,
    SuccessorSealed,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Clients {
    Table,
    Id,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(RefreshFamilies::Table)
                .col(string_len(RefreshFamilies::Id, 64).primary_key())
                .col(string_len(RefreshFamilies::UserId, 64))
                .col(string_len(RefreshFamilies::ClientId, 128))
                .col(text(RefreshFamilies::Scope))
                .col(string_len_null(RefreshFamilies::SessionId, 128))
                .col(big_integer_null(RefreshFamilies::AuthTime))
                .col(big_integer(RefreshFamilies::CreatedAt))
                .col(big_integer(RefreshFamilies::AbsoluteExpiresAt))
                .col(big_integer_null(RefreshFamilies::RevokedAt))
                .col(string_len_null(RefreshFamilies::RevokedReason, 64))
                // A deleted user or client takes its refresh tokens with it.
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_refresh_families_user")
                        .from(RefreshFamilies::Table, RefreshFamilies::UserId)
                        .to(Users::Table, Users::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_refresh_families_client")
                        .from(RefreshFamilies::Table, RefreshFamilies::ClientId)
                        .to(Clients::Table, Clients::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        for (name, col) in [
            ("idx_refresh_families_user", RefreshFamilies::UserId),
            ("idx_refresh_families_client", RefreshFamilies::ClientId),
            ("idx_refresh_families_session", RefreshFamilies::SessionId),
        ] {
            m.create_index(
                Index::create()
                    .name(name)
                    .table(RefreshFamilies::Table)
                    .col(col)
                    .to_owned(),
            )
            .await?;
        }

        m.create_table(
            Table::create()
                .table(RefreshTokens::Table)
                .col(string_len(RefreshTokens::TokenHash, 128).primary_key())
                .col(string_len(RefreshTokens::FamilyId, 64))
                .col(string_len_null(RefreshTokens::ParentHash, 128))
                .col(text(RefreshTokens::Scope))
                .col(big_integer(RefreshTokens::CreatedAt))
                .col(big_integer(RefreshTokens::ExpiresAt))
                .col(big_integer_null(RefreshTokens::UsedAt))
                .col(text_null(RefreshTokens::SuccessorSealed))
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_refresh_tokens_family")
                        .from(RefreshTokens::Table, RefreshTokens::FamilyId)
                        .to(RefreshFamilies::Table, RefreshFamilies::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_refresh_tokens_family")
                .table(RefreshTokens::Table)
                .col(RefreshTokens::FamilyId)
                .to_owned(),
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(RefreshTokens::Table).to_owned())
            .await?;
        m.drop_table(Table::drop().table(RefreshFamilies::Table).to_owned())
            .await?;
        Ok(())
    }
}
