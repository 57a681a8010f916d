//! SQLite: the writer's hot statements run on the calling thread, through a connection of our own.
//!
//! sqlx runs each SQLite connection on a worker thread and hands every statement's result and every
//! row back through a channel; each hand-over wakes the async runtime, which on a busy core preempts
//! whatever ran there (a password hash, another request). A sign-in and a refresh rotation pay several
//! such hand-overs per transaction. Their few statements take microseconds, so they run here instead,
//! on a `rusqlite` connection to the same file, held inside the process's write gate (so it is the
//! only writer of this process while it runs): no thread hop, no channel, one `BEGIN IMMEDIATE …
//! COMMIT` per transaction.
//!
//! The connection never waits for a lock (busy timeout zero). When another process holds the
//! database's write lock (a CLI command, a second server on the same file), the attempt is rolled back
//! and reported as [`Ran::Busy`]; the caller then runs the same statements through sqlx, whose worker
//! thread waits under the configured busy timeout without holding up the runtime.
//!
//! Checkpoints stay off this thread: SQLite's automatic checkpoint would copy the log into the
//! database file, and wait for the disk, inside the `COMMIT` that crossed its threshold, holding up
//! every request of the runtime meanwhile. This connection only notes how long the log has grown
//! ([`Ran::Done`]'s `wal_pages`); past [`CHECKPOINT_PAGES`] the store has sqlx's writer run the checkpoint on
//! its own thread, and at [`WAL_CAP_THRESHOLDS`] times that, writers wait for that checkpoint before
//! they commit again.
//!
//! Rows come back as [`ScriptRow`]s, read the same way whichever path produced them: flags by name,
//! and whole entity models typed by the entity's own column definitions.

use rusqlite::types::Value as Lite;
use sea_orm::sea_query::ColumnType;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DbErr, EntityTrait, FromQueryResult, IdenStatic, Iterable,
    QueryResult, TryIntoModel, Value,
};

use super::StoreError;
use crate::config::SqliteSynchronous;

/// The log length (pages) past which a checkpoint is due: 16 MiB of 4 KiB pages, four times SQLite's
/// default. A checkpoint copies each page changed since the last one once, however often it changed, and
/// syncs both files: a refresh storm (new tokens at the table's end, a few hot index pages) rotated
/// 9–13 % faster in turns with 1,000 (bench/README.md), and sign-ins moved within their noise.
pub(crate) const CHECKPOINT_PAGES: i32 = 4000;

/// The log length, in checkpoint thresholds, at which writers wait for the running checkpoint
/// instead of growing the log further. Commits land while a checkpoint's first rounds sync the files
/// without the write gate; on a slow or busy disk a round can take long enough for the log to grow
/// without bound. At the cap a slow disk slows the writes instead, as SQLite's own automatic
/// checkpoint would.
pub(crate) const WAL_CAP_THRESHOLDS: i32 = 3;

thread_local! {
    /// Pages in the log after the last commit on this thread, from [`note_wal_pages`]; read right
    /// after the `COMMIT` that set it, on the same thread.
    static WAL_PAGES: std::cell::Cell<i32> = const { std::cell::Cell::new(0) };
}

/// SQLite's commit hook for a database in WAL mode. Installing it turns off the automatic checkpoint.
fn note_wal_pages(_: &rusqlite::hooks::Wal, pages: std::ffi::c_int) -> rusqlite::Result<()> {
    WAL_PAGES.with(|p| p.set(pages));
    Ok(())
}

/// One statement and its values (`?` placeholders, bound in order).
pub(crate) type Stmt = (String, Vec<Value>);

/// A connection of our own to the SQLite file, used only under the write gate, and opened at its first
/// use (an idle server carries no second connection's caches and code).
pub(crate) struct Direct {
    path: String,
    sync: SqliteSynchronous,
    /// Reached only through `&mut self` (`Mutex::get_mut`, no locking): the mutex only makes the
    /// gate's guard `Sync`, as a `rusqlite::Connection` is not.
    conn: std::sync::Mutex<Option<rusqlite::Connection>>,
}

impl std::fmt::Debug for Direct {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Direct(..)")
    }
}

/// What [`Direct::run`] did.
pub(crate) enum Ran {
    /// The rows, and the pages in the log after the commit (0 when nothing was committed).
    Done {
        rows: Vec<DirectRow>,
        wal_pages: i32,
    },
    /// Another connection holds the write lock: nothing was written; run the statements elsewhere.
    Busy,
}

impl Direct {
    /// For `path`, a file the sqlx pool has already opened (so it exists and is in WAL mode).
    pub(crate) fn new(path: String, sync: SqliteSynchronous) -> Direct {
        Direct {
            path,
            sync,
            conn: std::sync::Mutex::new(None),
        }
    }

    /// The connection, opened with the pool's settings except that it never waits for a lock.
    fn conn(&mut self) -> Result<&rusqlite::Connection, StoreError> {
        let slot = self
            .conn
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if slot.is_none() {
            *slot = Some(open(&self.path, self.sync)?);
        }
        Ok(slot.as_ref().expect("opened above"))
    }

    /// Runs `stmts` in order, inside `BEGIN IMMEDIATE … COMMIT` when `txn`, and returns the rows they
    /// produced. On an error the transaction is rolled back.
    pub(crate) fn run(&mut self, stmts: &[Stmt], txn: bool) -> Result<Ran, StoreError> {
        let conn = self.conn()?;
        if txn && let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
            return busy_or(e);
        }
        WAL_PAGES.with(|p| p.set(0));
        let result = statements(conn, stmts).and_then(|rows| {
            if txn {
                conn.execute_batch("COMMIT")?;
            }
            Ok(rows)
        });
        match result {
            Ok(rows) => Ok(Ran::Done {
                rows,
                wal_pages: WAL_PAGES.with(|p| p.get()),
            }),
            Err(e) => {
                if txn && !conn.is_autocommit() {
                    let _ = conn.execute_batch("ROLLBACK");
                }
                busy_or(e)
            }
        }
    }
}

fn open(path: &str, sync: SqliteSynchronous) -> Result<rusqlite::Connection, StoreError> {
    let conn = rusqlite::Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(db_err)?;
    conn.busy_timeout(std::time::Duration::ZERO)
        .map_err(db_err)?;
    conn.pragma_update(None, "synchronous", sync.pragma())
        .map_err(db_err)?;
    conn.pragma_update(None, "foreign_keys", true)
        .map_err(db_err)?;
    let wal: String = conn
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .map_err(db_err)?;
    if !wal.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Db(DbErr::Custom(format!(
            "{path}: journal_mode is {wal}, expected wal"
        ))));
    }
    conn.wal_hook(Some(note_wal_pages));
    Ok(conn)
}

fn statements(conn: &rusqlite::Connection, stmts: &[Stmt]) -> rusqlite::Result<Vec<DirectRow>> {
    let mut out = Vec::new();
    for (sql, values) in stmts {
        let mut st = conn.prepare_cached(sql)?;
        for (i, v) in values.iter().enumerate() {
            st.raw_bind_parameter(i + 1, to_lite(v)?)?;
        }
        let names: std::sync::Arc<[String]> =
            st.column_names().into_iter().map(String::from).collect();
        let mut rows = st.raw_query();
        while let Some(r) = rows.next()? {
            let values = (0..names.len())
                .map(|i| r.get::<_, Lite>(i))
                .collect::<rusqlite::Result<Vec<_>>>()?;
            out.push(DirectRow {
                names: names.clone(),
                values,
            });
        }
    }
    Ok(out)
}

fn busy_or(e: rusqlite::Error) -> Result<Ran, StoreError> {
    match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
            Ok(Ran::Busy)
        }
        _ => Err(db_err(e)),
    }
}

fn db_err(e: rusqlite::Error) -> StoreError {
    StoreError::Db(DbErr::Custom(format!("sqlite: {e}")))
}

/// sea-orm's value as SQLite stores it (sqlx binds the same way: booleans as 0/1).
fn to_lite(v: &Value) -> rusqlite::Result<Lite> {
    // Never the value itself in the message: it may be a hash or a sealed secret.
    let unsupported = || {
        rusqlite::Error::ToSqlConversionFailure(
            "only numbers, text, bytes and JSON are bound here".into(),
        )
    };
    Ok(match v {
        Value::Bool(b) => b.map_or(Lite::Null, |b| Lite::Integer(b.into())),
        Value::TinyInt(n) => n.map_or(Lite::Null, |n| Lite::Integer(n.into())),
        Value::SmallInt(n) => n.map_or(Lite::Null, |n| Lite::Integer(n.into())),
        Value::Int(n) => n.map_or(Lite::Null, |n| Lite::Integer(n.into())),
        Value::BigInt(n) => n.map_or(Lite::Null, Lite::Integer),
        Value::TinyUnsigned(n) => n.map_or(Lite::Null, |n| Lite::Integer(n.into())),
        Value::SmallUnsigned(n) => n.map_or(Lite::Null, |n| Lite::Integer(n.into())),
        Value::Unsigned(n) => n.map_or(Lite::Null, |n| Lite::Integer(n.into())),
        Value::BigUnsigned(n) => match n {
            None => Lite::Null,
            Some(n) => Lite::Integer(i64::try_from(*n).map_err(|_| unsupported())?),
        },
        Value::Float(x) => x.map_or(Lite::Null, |x| Lite::Real(x.into())),
        Value::Double(x) => x.map_or(Lite::Null, Lite::Real),
        Value::String(s) => s.clone().map_or(Lite::Null, Lite::Text),
        Value::Char(c) => c.map_or(Lite::Null, |c| Lite::Text(c.to_string())),
        Value::Bytes(b) => b.clone().map_or(Lite::Null, Lite::Blob),
        Value::Json(j) => j.as_ref().map_or(Lite::Null, |j| Lite::Text(j.to_string())),
        _ => return Err(unsupported()),
    })
}

/// A row read by [`Direct`]: its column names and SQLite values.
#[derive(Clone)]
pub(crate) struct DirectRow {
    names: std::sync::Arc<[String]>,
    values: Vec<Lite>,
}

/// The column names only: a row may hold a password hash.
impl std::fmt::Debug for DirectRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirectRow")
            .field("columns", &self.names)
            .finish_non_exhaustive()
    }
}

impl DirectRow {
    fn get(&self, col: &str) -> Result<&Lite, StoreError> {
        self.names
            .iter()
            .position(|n| n == col)
            .map(|i| &self.values[i])
            .ok_or_else(|| StoreError::Db(DbErr::Custom(format!("no column {col}"))))
    }
}

/// A row of the writer connection, from either path.
#[derive(Debug)]
pub(crate) enum ScriptRow {
    Sqlx(QueryResult),
    Direct(DirectRow),
}

impl ScriptRow {
    /// A 0/1 column (`EXISTS (…) AS name`).
    pub(crate) fn flag(&self, col: &str) -> Result<bool, StoreError> {
        match self {
            ScriptRow::Sqlx(r) => Ok(r.try_get("", col)?),
            ScriptRow::Direct(r) => match r.get(col)? {
                Lite::Integer(n) => Ok(*n != 0),
                other => Err(StoreError::Db(DbErr::Type(format!(
                    "{col}: expected 0 or 1, got {}",
                    other.data_type()
                )))),
            },
        }
    }

    /// A 0/1 column that may be NULL (from an outer join): None for NULL.
    pub(crate) fn opt_flag(&self, col: &str) -> Result<Option<bool>, StoreError> {
        match self {
            ScriptRow::Sqlx(r) => Ok(r.try_get("", col)?),
            ScriptRow::Direct(r) => match r.get(col)? {
                Lite::Null => Ok(None),
                _ => self.flag(col).map(Some),
            },
        }
    }

    /// The columns of entity `E`, read as its model (columns typed by the entity's definitions).
    pub(crate) fn model<E>(&self) -> Result<E::Model, StoreError>
    where
        E: EntityTrait,
        E::Model: FromQueryResult,
        E::ActiveModel: TryIntoModel<E::Model>,
    {
        self.model_at::<E>("")
    }

    /// [`ScriptRow::model`] from the columns named `prefix` + the entity's column names (a join that
    /// selects two entities as `t_…` and `f_…`).
    pub(crate) fn model_at<E>(&self, prefix: &str) -> Result<E::Model, StoreError>
    where
        E: EntityTrait,
        E::Model: FromQueryResult,
        E::ActiveModel: TryIntoModel<E::Model>,
    {
        match self {
            ScriptRow::Sqlx(r) => Ok(E::Model::from_query_result(r, prefix)?),
            ScriptRow::Direct(r) => {
                let mut m = <E::ActiveModel as ActiveModelTrait>::default();
                let mut name = String::with_capacity(prefix.len() + 24);
                for c in E::Column::iter() {
                    name.clear();
                    name.push_str(prefix);
                    name.push_str(c.as_str());
                    let v = typed(c.def().get_column_type(), r.get(&name)?)
                        .map_err(|e| StoreError::Db(DbErr::Type(format!("{name}: {e}"))))?;
                    m.try_set(c, v)?;
                }
                Ok(m.try_into_model()?)
            }
        }
    }
}

/// A SQLite value as the sea-orm value of a column of type `ty` (NULL as that type's null).
fn typed(ty: &ColumnType, v: &Lite) -> Result<Value, String> {
    // The storage class, never the value (it may be a password hash).
    let mismatch = || format!("a {} value is not a {ty:?}", v.data_type());
    let int = |v: &Lite| match v {
        Lite::Null => Ok(None),
        Lite::Integer(n) => Ok(Some(*n)),
        _ => Err(mismatch()),
    };
    Ok(match ty {
        ColumnType::Boolean => Value::Bool(int(v)?.map(|n| n != 0)),
        ColumnType::BigInteger => Value::BigInt(int(v)?),
        ColumnType::Integer => Value::Int(
            int(v)?
                .map(i32::try_from)
                .transpose()
                .map_err(|_| mismatch())?,
        ),
        ColumnType::SmallInteger => Value::SmallInt(
            int(v)?
                .map(i16::try_from)
                .transpose()
                .map_err(|_| mismatch())?,
        ),
        ColumnType::String(_) | ColumnType::Text | ColumnType::Char(_) => match v {
            Lite::Null => Value::String(None),
            Lite::Text(s) => Value::String(Some(s.clone())),
            _ => return Err(mismatch()),
        },
        ColumnType::Binary(_) | ColumnType::VarBinary(_) | ColumnType::Blob => match v {
            Lite::Null => Value::Bytes(None),
            Lite::Blob(b) => Value::Bytes(Some(b.clone())),
            _ => return Err(mismatch()),
        },
        ColumnType::Double | ColumnType::Float => match v {
            Lite::Null => Value::Double(None),
            Lite::Real(x) => Value::Double(Some(*x)),
            Lite::Integer(n) => Value::Double(Some(*n as f64)),
            _ => return Err(mismatch()),
        },
        _ => return Err(format!("columns of type {ty:?} are not read here")),
    })
}

#[cfg(test)]
mod tests {
    use super::super::{AuditEvent, Script, Store, User, audit_insert_all};
    use sea_orm::{DbBackend, QueryTrait};

    async fn file_store(dir: &tempfile::TempDir) -> Store {
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("c.db").display());
        let store = Store::connect(&url).await.unwrap();
        store.migrate().await.unwrap();
        store
    }

    async fn memory_store() -> Store {
        let store = Store::connect("sqlite::memory:").await.unwrap();
        store.migrate().await.unwrap();
        store
    }

    fn user(id: &str, email: &str, disabled: bool) -> User {
        User {
            id: id.into(),
            email: email.into(),
            email_verified: true,
            name: "Ada".into(),
            password_hash: Some("$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaA".into()),
            disabled,
            created_at: 1_700_000_000,
            updated_at: 1_700_000_001,
        }
    }

    fn event(id: usize, details: serde_json::Value) -> AuditEvent {
        AuditEvent {
            id: format!("ev{id}"),
            at: 1_700_000_000,
            kind: "test".into(),
            actor: None,
            subject: Some("u1".into()),
            client_id: None,
            ip: None,
            details,
        }
    }

    async fn audit_count(store: &Store) -> i64 {
        let row = store
            .sqlite_writer_read("SELECT COUNT(*) AS n FROM audit_events", vec![])
            .await
            .unwrap()
            .unwrap();
        match row {
            super::ScriptRow::Direct(r) => match r.get("n").unwrap() {
                rusqlite::types::Value::Integer(n) => *n,
                other => panic!("count is {other:?}"),
            },
            super::ScriptRow::Sqlx(r) => r.try_get("", "n").unwrap(),
        }
    }

    /// The account read for a sign-in is the same model, field for field (NULLs, booleans, 64-bit
    /// times), whether it came through our connection (a file) or through sqlx (in memory).
    #[tokio::test]
    async fn both_paths_read_the_same_account() {
        let dir = tempfile::tempdir().unwrap();
        let mut no_hash = user("u2", "b@example.com", true);
        no_hash.password_hash = None;
        let mut seen = Vec::new();
        for store in [file_store(&dir).await, memory_store().await] {
            assert_eq!(
                store.write_gate.lock().await.is_some(),
                seen.is_empty(),
                "a file has its own connection, memory does not"
            );
            store
                .insert_user(&user("u1", "a@example.com", false))
                .await
                .unwrap();
            store.insert_user(&no_hash).await.unwrap();
            let a = store.user_for_sign_in("a@example.com").await.unwrap();
            let b = store.user_for_sign_in("b@example.com").await.unwrap();
            let none = store.user_for_sign_in("c@example.com").await.unwrap();
            assert!(none.is_none());
            let (a, fa) = a.unwrap();
            let (b, fb) = b.unwrap();
            assert_eq!(a.password_hash, user("u1", "", false).password_hash);
            assert!(!a.disabled && a.email_verified && a.updated_at == 1_700_000_001);
            assert!(b.password_hash.is_none() && b.disabled);
            assert!(!fa.totp && !fa.passkey && !fb.totp && !fb.passkey);
            seen.push(format!("{a:?} {b:?}"));
        }
        assert_eq!(seen[0], seen[1]);
    }

    /// `sqlite_synchronous` reaches every connection to the file: sqlx's pool, its writer, and ours.
    #[tokio::test]
    async fn every_connection_syncs_as_configured() {
        use crate::config::SqliteSynchronous;
        use sea_orm::{ConnectionTrait, Statement};
        for (sync, level) in [(SqliteSynchronous::Normal, 1), (SqliteSynchronous::Full, 2)] {
            let dir = tempfile::tempdir().unwrap();
            let url = format!("sqlite://{}?mode=rwc", dir.path().join("s.db").display());
            let store = Store::connect_with(&url, sync).await.unwrap();
            store.migrate().await.unwrap();
            let row = store
                .sqlite_writer_read("SELECT synchronous FROM pragma_synchronous", vec![])
                .await
                .unwrap();
            let Some(super::ScriptRow::Direct(row)) = row else {
                panic!("a file's writer read runs on the direct connection: {row:?}");
            };
            assert_eq!(
                row.get("synchronous").unwrap(),
                &super::Lite::Integer(level),
                "{sync:?}"
            );
            for conn in [&store.db, &store.writer] {
                let r = conn
                    .query_one_raw(Statement::from_string(
                        DbBackend::Sqlite,
                        "PRAGMA synchronous",
                    ))
                    .await
                    .unwrap()
                    .unwrap();
                assert_eq!(
                    r.try_get::<i64>("", "synchronous").unwrap(),
                    level,
                    "{sync:?}"
                );
            }
        }
    }

    /// A join read as two prefixed models and a flag that an outer join may leave NULL, the same on
    /// both paths.
    #[tokio::test]
    async fn both_paths_read_prefixed_models_and_null_flags() {
        use crate::store::entity::users;
        let dir = tempfile::tempdir().unwrap();
        let sql = "SELECT a.id AS a_id, a.email AS a_email, a.password_hash AS a_password_hash, \
            a.email_verified AS a_email_verified, a.disabled AS a_disabled, a.name AS a_name, \
            a.created_at AS a_created_at, a.updated_at AS a_updated_at, \
            b.id AS b_id, b.email AS b_email, b.password_hash AS b_password_hash, \
            b.email_verified AS b_email_verified, b.disabled AS b_disabled, b.name AS b_name, \
            b.created_at AS b_created_at, b.updated_at AS b_updated_at, \
            c.disabled AS c_disabled, a.disabled AS a_flag \
            FROM users a JOIN users b ON b.id = ? LEFT JOIN users c ON c.id = 'nobody' \
            WHERE a.id = ?";
        let mut seen = Vec::new();
        for store in [file_store(&dir).await, memory_store().await] {
            store
                .insert_user(&user("u1", "a@example.com", false))
                .await
                .unwrap();
            store
                .insert_user(&user("u2", "b@example.com", true))
                .await
                .unwrap();
            let row = store
                .sqlite_writer_read(sql, vec!["u2".into(), "u1".into()])
                .await
                .unwrap()
                .unwrap();
            let a = row.model_at::<users::Entity>("a_").unwrap();
            let b = row.model_at::<users::Entity>("b_").unwrap();
            assert_eq!((a.id.as_str(), b.id.as_str()), ("u1", "u2"));
            assert!(!a.disabled && b.disabled);
            assert_eq!(row.opt_flag("c_disabled").unwrap(), None);
            assert_eq!(row.opt_flag("a_flag").unwrap(), Some(false));
            assert!(
                row.model_at::<users::Entity>("c_").is_err(),
                "no c_id column"
            );
            seen.push(format!("{a:?} {b:?}"));
        }
        assert_eq!(seen[0], seen[1]);
    }

    /// A row's `Debug` (what an error or a log line could carry) names columns, never values.
    #[tokio::test]
    async fn a_row_never_shows_its_values() {
        let dir = tempfile::tempdir().unwrap();
        let store = file_store(&dir).await;
        let u = user("u1", "a@example.com", false);
        store.insert_user(&u).await.unwrap();
        let row = store
            .sqlite_writer_read("SELECT * FROM users", vec![])
            .await
            .unwrap()
            .unwrap();
        let shown = format!("{row:?}");
        assert!(shown.contains("password_hash"), "{shown}");
        assert!(
            !shown.contains(u.password_hash.as_deref().unwrap()),
            "{shown}"
        );
        assert!(!shown.contains("a@example.com"), "{shown}");
    }

    /// A failing statement rolls the whole transaction back, on our connection as through sqlx.
    #[tokio::test]
    async fn a_failed_statement_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        for store in [file_store(&dir).await, memory_store().await] {
            let mut script = Script::new();
            script.push(
                audit_insert_all(&[event(1, serde_json::json!({}))]).build(DbBackend::Sqlite),
            );
            script.push_sql("INSERT INTO no_such_table (x) VALUES (?)", [1i64.into()]);
            assert!(store.sqlite_script(script).await.is_err());
            assert_eq!(audit_count(&store).await, 0);
            // The connection is usable again, outside any transaction.
            let mut script = Script::new();
            script.push(
                audit_insert_all(&[event(2, serde_json::json!({}))]).build(DbBackend::Sqlite),
            );
            store.sqlite_script(script).await.unwrap();
            assert_eq!(audit_count(&store).await, 1);
        }
    }

    /// While another connection holds the write lock, our connection does not wait on the runtime's
    /// thread: the script goes to sqlx, which waits (busy timeout) and then commits it.
    #[tokio::test]
    async fn a_held_write_lock_sends_the_script_through_sqlx() {
        let dir = tempfile::tempdir().unwrap();
        let store = file_store(&dir).await;
        let other = rusqlite::Connection::open(dir.path().join("c.db")).unwrap();
        other.execute_batch("BEGIN IMMEDIATE").unwrap();
        let mut direct = store.write_gate.clone().lock_owned().await;
        assert!(matches!(
            direct.as_mut().unwrap().run(&[], true).unwrap(),
            super::Ran::Busy
        ));
        drop(direct);
        let writer = {
            let store = store.clone();
            tokio::spawn(async move {
                let mut script = Script::new();
                script.push(
                    audit_insert_all(&[event(1, serde_json::json!({}))]).build(DbBackend::Sqlite),
                );
                store.sqlite_script(script).await
            })
        };
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        assert!(!writer.is_finished(), "the script waits for the lock");
        other.execute_batch("COMMIT").unwrap();
        writer.await.unwrap().unwrap();
        assert_eq!(audit_count(&store).await, 1);
    }

    /// A checkpoint task that panics still clears the running flag and wakes the writers waiting at
    /// the cap (they would otherwise wait for good, and no checkpoint would start again).
    #[tokio::test]
    async fn a_checkpoint_that_panics_still_wakes_the_writers() {
        use std::sync::{Arc, atomic::AtomicBool, atomic::Ordering};
        let running = Arc::new(AtomicBool::new(true));
        let done = Arc::new(tokio::sync::Notify::new());
        let waiter = done.clone().notified_owned();
        tokio::pin!(waiter);
        waiter.as_mut().enable();
        let end = super::super::CheckpointEnd {
            running: running.clone(),
            done,
        };
        let task = tokio::spawn(async move {
            let _end = end;
            panic!("a checkpoint task fails");
        });
        assert!(task.await.unwrap_err().is_panic());
        assert!(!running.load(Ordering::Acquire), "the flag is cleared");
        tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
            .await
            .expect("the waiting writer is woken");
    }

    /// A file store whose checkpoint is due at 1,000 pages (SQLite's default; the tests need a quarter
    /// of the writes the server's threshold would).
    async fn small_log_store(dir: &tempfile::TempDir) -> Store {
        let mut store = file_store(dir).await;
        store.checkpoint_pages = 1000;
        store
    }

    /// Writes `commits` audit events of 4,000 bytes each, one commit each, as fast as they go, and
    /// checks that the log stays under 4× the checkpoint threshold.
    async fn fill_and_check_the_log(store: &Store, dir: &tempfile::TempDir, commits: usize) {
        let filler = "x".repeat(4000);
        for i in 0..commits {
            let mut script = Script::new();
            script.push(
                audit_insert_all(&[event(i, serde_json::json!({ "filler": filler }))])
                    .build(DbBackend::Sqlite),
            );
            store.sqlite_script(script).await.unwrap();
        }
        assert_eq!(audit_count(store).await, commits as i64);
        let wal = std::fs::metadata(dir.path().join("c.db-wal"))
            .unwrap()
            .len();
        let limit = 4 * store.checkpoint_pages as u64 * 4096;
        assert!(wal < limit, "log of {wal} bytes, more than {limit}");
    }

    /// A checkpoint slower than the writes (a slow or busy disk, stood in for by a pause before its
    /// first round) holds the writers at [`super::WAL_CAP_THRESHOLDS`] × the threshold: the log stays
    /// under 4× the threshold, where without the cap the writes would go on growing it meanwhile
    /// (87 MB when the wait is taken out).
    #[tokio::test]
    async fn a_slow_checkpoint_holds_the_writers_at_the_cap() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = small_log_store(&dir).await;
        store.slow_checkpoint = Some(std::time::Duration::from_millis(400));
        fill_and_check_the_log(&store, &dir, 4_000).await;
    }

    /// Our connection's commits leave the checkpoint to sqlx's thread, and the log still starts
    /// over, though commits land during the checkpoint's rounds without the gate: 48 MiB written in
    /// 12,000 commits, as fast as they go, leave a log of a few times the threshold, not 48 MiB.
    #[tokio::test]
    async fn the_log_is_checkpointed_off_this_thread() {
        let dir = tempfile::tempdir().unwrap();
        let store = small_log_store(&dir).await;
        fill_and_check_the_log(&store, &dir, 12_000).await;
        let db = std::fs::metadata(dir.path().join("c.db")).unwrap().len();
        assert!(
            db > 40 << 20,
            "the database file holds the checkpointed pages ({db} bytes)"
        );
    }
}
