//! Passkeys (WebAuthn credentials): one row per registered credential, keyed by its credential id
//! (base64url), so one credential can never be registered twice, by anyone. `credential` is
//! webauthn-rs's `Passkey` as JSON (public key, signature counter, backup flags).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Passkeys {
    Table,
    Id,
    UserId,
    Name,
    Credential,
    CreatedAt,
    LastUsedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Passkeys::Table)
                // The credential id, base64url without padding (up to 1023 bytes raw).
                .col(text(Passkeys::Id).primary_key())
                .col(string_len(Passkeys::UserId, 64))
                .col(string_len(Passkeys::Name, 64))
                .col(text(Passkeys::Credential))
                .col(big_integer(Passkeys::CreatedAt))
                .col(big_integer_null(Passkeys::LastUsedAt))
                .foreign_key(
                    ForeignKey::create()
                        .from(Passkeys::Table, Passkeys::UserId)
                        .to(Users::Table, Users::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("passkeys_user")
                .table(Passkeys::Table)
                .col(Passkeys::UserId)
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(Passkeys::Table).to_owned())
            .await
    }
}
