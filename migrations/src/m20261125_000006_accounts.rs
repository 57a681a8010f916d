//! Accounts: one-time tokens (email verification, password reset, invitations) and the mail outbox.
//!
//! `account_tokens` holds only the SHA-256 of each token; a token is used up by one conditional
//! UPDATE (`used_at IS NULL AND expires_at > now`), so it works once across any number of replicas.
//! `mail_outbox` is the durable queue every outgoing mail goes through: a failed delivery is retried
//! with backoff, and a replica claims a row with a lease before sending it. Bodies are sealed under the
//! KEK (they carry one-time links) and cleared once sent.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum AccountTokens {
    Table,
    TokenHash,
    Kind,
    UserId,
    Email,
    CreatedAt,
    ExpiresAt,
    UsedAt,
}

#[derive(DeriveIden)]
enum MailOutbox {
    Table,
    Id,
    ToAddr,
    Subject,
    BodySealed,
    CreatedAt,
    Attempts,
    NextAttemptAt,
    LeaseUntil,
    SentAt,
    FailedAt,
    LastError,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(AccountTokens::Table)
                .col(string_len(AccountTokens::TokenHash, 128).primary_key())
                .col(string_len(AccountTokens::Kind, 32))
                .col(string_len_null(AccountTokens::UserId, 64))
                .col(string_len_null(AccountTokens::Email, 320))
                .col(big_integer(AccountTokens::CreatedAt))
                .col(big_integer(AccountTokens::ExpiresAt))
                .col(big_integer_null(AccountTokens::UsedAt))
                // A deleted account takes its pending links with it.
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_account_tokens_user")
                        .from(AccountTokens::Table, AccountTokens::UserId)
                        .to(Users::Table, Users::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        for (name, col) in [
            ("idx_account_tokens_user", AccountTokens::UserId),
            ("idx_account_tokens_expires", AccountTokens::ExpiresAt),
        ] {
            m.create_index(
                Index::create()
                    .name(name)
                    .table(AccountTokens::Table)
                    .col(col)
                    .to_owned(),
            )
            .await?;
        }

        m.create_table(
            Table::create()
                .table(MailOutbox::Table)
                .col(string_len(MailOutbox::Id, 64).primary_key())
                .col(string_len(MailOutbox::ToAddr, 320))
                .col(text(MailOutbox::Subject))
                .col(text(MailOutbox::BodySealed))
                .col(big_integer(MailOutbox::CreatedAt))
                .col(integer(MailOutbox::Attempts).default(0))
                .col(big_integer(MailOutbox::NextAttemptAt))
                .col(big_integer_null(MailOutbox::LeaseUntil))
                .col(big_integer_null(MailOutbox::SentAt))
                .col(big_integer_null(MailOutbox::FailedAt))
                .col(text_null(MailOutbox::LastError))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_mail_outbox_due")
                .table(MailOutbox::Table)
                .col(MailOutbox::SentAt)
                .col(MailOutbox::NextAttemptAt)
                .to_owned(),
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(MailOutbox::Table).to_owned())
            .await?;
        m.drop_table(Table::drop().table(AccountTokens::Table).to_owned())
            .await?;
        Ok(())
    }
}
