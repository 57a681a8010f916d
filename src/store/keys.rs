//! Signing-key rows: reads, and the one locked transaction every change of key state goes through.
//!
//! Rotation, revocation and re-sealing run on whichever replica (or CLI) asks; `KeyTxn` makes them
//! take turns: on Postgres a transaction-scoped advisory lock (its own number, not the start-up one),
//! on SQLite this process's write gate plus `BEGIN IMMEDIATE` (which also orders other processes on
//! the same file). Inside it a change re-reads the rows and decides again, so two replicas that both
//! saw a rotation due produce one.

use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseTransaction, DbBackend, EntityTrait,
    QueryFilter, QueryOrder,
};

use super::entity::signing_keys;
use super::{KeyRow, Store, StoreError, is_unique_violation};

/// "custos-k" in ASCII, kept apart from the start-up lock so a rotation never waits for migrations.
const KEY_LOCK: i64 = 0x6375_7374_6f73_2d6b;

fn row(m: signing_keys::Model) -> KeyRow {
    KeyRow {
        kid: m.kid,
        alg: m.alg,
        state: m.state,
        public_jwk: m.public_jwk,
        sealed_private_key: m.sealed_private_key,
        created_at: m.created_at,
        activated_at: m.activated_at,
        retired_at: m.retired_at,
        removed_at: m.removed_at,
    }
}

pub(super) async fn all<C: ConnectionTrait>(db: &C) -> Result<Vec<KeyRow>, StoreError> {
    Ok(signing_keys::Entity::find()
        .order_by_asc(signing_keys::Column::CreatedAt)
        .order_by_asc(signing_keys::Column::Kid)
        .all(db)
        .await?
        .into_iter()
        .map(row)
        .collect())
}

pub(super) async fn insert<C: ConnectionTrait>(db: &C, k: &KeyRow) -> Result<(), StoreError> {
    let am = signing_keys::ActiveModel {
        kid: Set(k.kid.clone()),
        alg: Set(k.alg.clone()),
        state: Set(k.state.clone()),
        public_jwk: Set(k.public_jwk.clone()),
        sealed_private_key: Set(k.sealed_private_key.clone()),
        created_at: Set(k.created_at),
        activated_at: Set(k.activated_at),
        retired_at: Set(k.retired_at),
        removed_at: Set(k.removed_at),
    };
    match signing_keys::Entity::insert(am)
        .exec_without_returning(db)
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if is_unique_violation(&e) => Err(StoreError::Conflict("a key with this kid")),
        Err(e) => Err(e.into()),
    }
}

/// A key-state change in progress; nothing is visible to others until `commit`.
pub struct KeyTxn {
    txn: DatabaseTransaction,
    _gate: Option<super::WriteGuard>,
}

/// The state a key moves to, with the time column that records it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyMove {
    Activate,
    Retire,
    Remove,
}

impl Store {
    /// Starts a key-state change, waiting for any other one (any replica, any process) to finish.
    pub async fn lock_keys(&self) -> Result<KeyTxn, StoreError> {
        let postgres = self.db.get_database_backend() == DbBackend::Postgres;
        let (txn, gate) = self.begin_write().await?;
        if postgres {
            txn.execute_unprepared(&format!("SELECT pg_advisory_xact_lock({KEY_LOCK})"))
                .await?;
        }
        Ok(KeyTxn { txn, _gate: gate })
    }
}

impl KeyTxn {
    /// Every key, oldest first, as of now (the lock is held, so nobody changes them meanwhile).
    pub async fn keys(&self) -> Result<Vec<KeyRow>, StoreError> {
        all(&self.txn).await
    }

    pub async fn insert(&self, k: &KeyRow) -> Result<(), StoreError> {
        insert(&self.txn, k).await
    }

    /// Moves `kid` from state `from` to the state of `to` at `now`; false when it was not in `from`.
    /// A removed key's sealed private key is erased with it: nothing may ever sign with it again.
    pub async fn transition(
        &self,
        kid: &str,
        from: &str,
        to: KeyMove,
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut q = signing_keys::Entity::update_many();
        q = match to {
            KeyMove::Activate => q
                .col_expr(signing_keys::Column::State, Expr::value("active"))
                .col_expr(signing_keys::Column::ActivatedAt, Expr::value(now)),
            KeyMove::Retire => q
                .col_expr(signing_keys::Column::State, Expr::value("retired"))
                .col_expr(signing_keys::Column::RetiredAt, Expr::value(now)),
            KeyMove::Remove => q
                .col_expr(signing_keys::Column::State, Expr::value("removed"))
                .col_expr(signing_keys::Column::RemovedAt, Expr::value(now))
                .col_expr(signing_keys::Column::SealedPrivateKey, Expr::value("")),
        };
        let r = q
            .filter(signing_keys::Column::Kid.eq(kid))
            .filter(signing_keys::Column::State.eq(from))
            .exec(&self.txn)
            .await?;
        Ok(r.rows_affected == 1)
    }

    /// Replaces a key's sealed private key (KEK rotation).
    pub async fn reseal(&self, kid: &str, sealed: &str) -> Result<bool, StoreError> {
        let r = signing_keys::Entity::update_many()
            .col_expr(
                signing_keys::Column::SealedPrivateKey,
                Expr::value(sealed.to_string()),
            )
            .filter(signing_keys::Column::Kid.eq(kid))
            .exec(&self.txn)
            .await?;
        Ok(r.rows_affected == 1)
    }

    pub async fn commit(self) -> Result<(), StoreError> {
        self.txn.commit().await?;
        Ok(())
    }
}
