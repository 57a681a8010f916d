//! Signing-key lifecycle: when a key was removed (`next` → `active` → `retired` → `removed`; the other
//! times are already columns). Keys stored before rotation existed are `active`; their activation time
//! is their creation time.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum SigningKeys {
    Table,
    State,
    CreatedAt,
    ActivatedAt,
    RemovedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(SigningKeys::Table)
                .add_column(big_integer_null(SigningKeys::RemovedAt))
                .to_owned(),
        )
        .await?;
        m.exec_stmt(
            Query::update()
                .table(SigningKeys::Table)
                .value(SigningKeys::ActivatedAt, Expr::col(SigningKeys::CreatedAt))
                .and_where(Expr::col(SigningKeys::State).eq("active"))
                .and_where(Expr::col(SigningKeys::ActivatedAt).is_null())
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(SigningKeys::Table)
                .drop_column(SigningKeys::RemovedAt)
                .to_owned(),
        )
        .await
    }
}
