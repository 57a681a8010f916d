//! Per-client token policy: the refresh-token reuse grace window and the ID-token signing algorithm.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Clients {
    Table,
    RefreshReuseGraceSecs,
    IdTokenSignedResponseAlg,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // One ALTER per statement: SQLite cannot take several.
        m.alter_table(
            Table::alter()
                .table(Clients::Table)
                .add_column(big_integer(Clients::RefreshReuseGraceSecs).default(0))
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(Clients::Table)
                .add_column(string_len_null(Clients::IdTokenSignedResponseAlg, 16))
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(Clients::Table)
                .drop_column(Clients::IdTokenSignedResponseAlg)
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(Clients::Table)
                .drop_column(Clients::RefreshReuseGraceSecs)
                .to_owned(),
        )
        .await
    }
}
