//! Browser sessions as durable records (the list a person sees and ends), the clients that got tokens
//! in each, the back-channel logout outbox, and each client's back-channel logout registration.
//!
//! `sessions.id` is the public session id (the `sid` claim), stable for the session's life; the cookie
//! value is stored only as `token_hash` (SHA-256), which changes whenever the cookie is rotated.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Sessions {
    Table,
    Id,
    TokenHash,
    UserId,
    CreatedAt,
    LastSeenAt,
    IdleExpiresAt,
    AbsoluteExpiresAt,
    AuthTime,
    Amr,
    Acr,
    Ip,
    Device,
    RememberMe,
    EndedAt,
    EndReason,
}

#[derive(DeriveIden)]
enum SessionClients {
    Table,
    SessionId,
    ClientId,
    FirstAt,
}

#[derive(DeriveIden)]
enum LogoutOutbox {
    Table,
    Id,
    ClientId,
    SessionId,
    Subject,
    CreatedAt,
    Attempts,
    NextAttemptAt,
    LeaseUntil,
    LastError,
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
    BackchannelLogoutUri,
    BackchannelLogoutSessionRequired,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Sessions::Table)
                .col(string_len(Sessions::Id, 64).primary_key())
                .col(string_len(Sessions::TokenHash, 64).unique_key())
                .col(string_len(Sessions::UserId, 64))
                .col(big_integer(Sessions::CreatedAt))
                .col(big_integer(Sessions::LastSeenAt))
                .col(big_integer(Sessions::IdleExpiresAt))
                .col(big_integer(Sessions::AbsoluteExpiresAt))
                .col(big_integer(Sessions::AuthTime))
                .col(text(Sessions::Amr))
                .col(string_len(Sessions::Acr, 128))
                .col(string_len_null(Sessions::Ip, 64))
                .col(string_len(Sessions::Device, 128))
                .col(boolean(Sessions::RememberMe).default(false))
                .col(big_integer_null(Sessions::EndedAt))
                .col(string_len_null(Sessions::EndReason, 64))
                // A deleted account takes its sessions with it.
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_sessions_user")
                        .from(Sessions::Table, Sessions::UserId)
                        .to(Users::Table, Users::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_sessions_user")
                .table(Sessions::Table)
                .col(Sessions::UserId)
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_sessions_absolute_expires")
                .table(Sessions::Table)
                .col(Sessions::AbsoluteExpiresAt)
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(SessionClients::Table)
                .col(string_len(SessionClients::SessionId, 64))
                .col(string_len(SessionClients::ClientId, 128))
                .col(big_integer(SessionClients::FirstAt))
                .primary_key(
                    Index::create()
                        .col(SessionClients::SessionId)
                        .col(SessionClients::ClientId),
                )
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_session_clients_session")
                        .from(SessionClients::Table, SessionClients::SessionId)
                        .to(Sessions::Table, Sessions::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_session_clients_client")
                        .from(SessionClients::Table, SessionClients::ClientId)
                        .to(Clients::Table, Clients::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;

        // No foreign key to sessions or users: a notice must outlive the session row (and the
        // account) it speaks of. A deleted client has nobody left to notify.
        m.create_table(
            Table::create()
                .table(LogoutOutbox::Table)
                .col(string_len(LogoutOutbox::Id, 64).primary_key())
                .col(string_len(LogoutOutbox::ClientId, 128))
                .col(string_len(LogoutOutbox::SessionId, 64))
                .col(string_len(LogoutOutbox::Subject, 64))
                .col(big_integer(LogoutOutbox::CreatedAt))
                .col(integer(LogoutOutbox::Attempts).default(0))
                .col(big_integer(LogoutOutbox::NextAttemptAt))
                .col(big_integer_null(LogoutOutbox::LeaseUntil))
                .col(string_len_null(LogoutOutbox::LastError, 256))
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_logout_outbox_client")
                        .from(LogoutOutbox::Table, LogoutOutbox::ClientId)
                        .to(Clients::Table, Clients::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_logout_outbox_next_attempt")
                .table(LogoutOutbox::Table)
                .col(LogoutOutbox::NextAttemptAt)
                .to_owned(),
        )
        .await?;

        // One ALTER per statement: SQLite cannot take several.
        m.alter_table(
            Table::alter()
                .table(Clients::Table)
                .add_column(text_null(Clients::BackchannelLogoutUri))
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(Clients::Table)
                .add_column(boolean(Clients::BackchannelLogoutSessionRequired).default(false))
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(Clients::Table)
                .drop_column(Clients::BackchannelLogoutSessionRequired)
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(Clients::Table)
                .drop_column(Clients::BackchannelLogoutUri)
                .to_owned(),
        )
        .await?;
        for t in [
            LogoutOutbox::Table.into_iden(),
            SessionClients::Table.into_iden(),
            Sessions::Table.into_iden(),
        ] {
            m.drop_table(Table::drop().table(t).to_owned()).await?;
        }
        Ok(())
    }
}
