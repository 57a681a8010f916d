//! Database schema for Custos, as sea-orm migrations.
//!
//! This crate depends on nothing of the application: it owns table shapes only. Applied migrations are
//! never edited; a change is a new migration. Every statement stays portable between SQLite and
//! Postgres (one ALTER per statement, times as BIGINT unix seconds, lists as JSON text).

pub use sea_orm_migration::prelude::*;

mod m20261125_000001_foundation;
mod m20261125_000002_refresh_tokens;
mod m20261125_000003_consents;
mod m20261125_000004_client_token_policy;
mod m20261125_000005_key_lifecycle;
mod m20261125_000006_accounts;
mod m20261125_000007_sessions;
mod m20261125_000008_mfa;
mod m20261125_000009_passkeys;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261125_000001_foundation::Migration),
            Box::new(m20261125_000002_refresh_tokens::Migration),
            Box::new(m20261125_000003_consents::Migration),
            Box::new(m20261125_000004_client_token_policy::Migration),
            Box::new(m20261125_000005_key_lifecycle::Migration),
            Box::new(m20261125_000006_accounts::Migration),
            Box::new(m20261125_000007_sessions::Migration),
            Box::new(m20261125_000008_mfa::Migration),
            Box::new(m20261125_000009_passkeys::Migration),
        ]
    }
}
