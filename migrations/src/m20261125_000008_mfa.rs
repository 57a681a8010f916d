//! Multi-factor sign-in: TOTP enrolments (secret sealed under the KEK, the last accepted time step for
//! replay protection), hashed single-use recovery codes, the per-client `require_mfa` flag and a
//! minimal `roles` list on users (JSON text) for the per-role MFA policy.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    Roles,
}

#[derive(DeriveIden)]
enum Clients {
    Table,
    RequireMfa,
}

#[derive(DeriveIden)]
enum MfaTotp {
    Table,
    UserId,
    SealedSecret,
    LastStep,
    CreatedAt,
}

#[derive(DeriveIden)]
enum MfaRecoveryCodes {
    Table,
    Id,
    UserId,
    CodeHash,
    UsedAt,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // One ALTER per statement: SQLite cannot take several.
        m.alter_table(
            Table::alter()
                .table(Users::Table)
                .add_column(text(Users::Roles).default("[]"))
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(Clients::Table)
                .add_column(boolean(Clients::RequireMfa).default(false))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(MfaTotp::Table)
                .col(string_len(MfaTotp::UserId, 64).primary_key())
                .col(text(MfaTotp::SealedSecret))
                // The time step (unix time / 30) of the last accepted code; a code is accepted only
                // for a later step, by a conditional UPDATE, so a replay race has one winner.
                .col(big_integer(MfaTotp::LastStep))
                .col(big_integer(MfaTotp::CreatedAt))
                .foreign_key(
                    ForeignKey::create()
                        .from(MfaTotp::Table, MfaTotp::UserId)
                        .to(Users::Table, Users::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(MfaRecoveryCodes::Table)
                .col(string_len(MfaRecoveryCodes::Id, 64).primary_key())
                .col(string_len(MfaRecoveryCodes::UserId, 64))
                .col(string_len(MfaRecoveryCodes::CodeHash, 80))
                .col(big_integer_null(MfaRecoveryCodes::UsedAt))
                .col(big_integer(MfaRecoveryCodes::CreatedAt))
                .foreign_key(
                    ForeignKey::create()
                        .from(MfaRecoveryCodes::Table, MfaRecoveryCodes::UserId)
                        .to(Users::Table, Users::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("mfa_recovery_codes_user_hash")
                .table(MfaRecoveryCodes::Table)
                .col(MfaRecoveryCodes::UserId)
                .col(MfaRecoveryCodes::CodeHash)
                .unique()
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(MfaRecoveryCodes::Table).to_owned())
            .await?;
        m.drop_table(Table::drop().table(MfaTotp::Table).to_owned())
            .await?;
        m.alter_table(
            Table::alter()
                .table(Clients::Table)
                .drop_column(Clients::RequireMfa)
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(Users::Table)
                .drop_column(Users::Roles)
                .to_owned(),
        )
        .await
    }
}
