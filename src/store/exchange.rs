//! What redeeming an authorization code reads from and writes to the database, in one round trip.
//!
//! A code exchange needs the account (still enabled? its claims for the ID token) and must record,
//! only while the browser session the code was issued in is still open, that the client got tokens in
//! it (so ending the session revokes them and notifies the client by back-channel logout) and, when
//! asked, a new refresh-token family tied to the session with its first token. Either all of that is
//! written or, for an ended session or a disabled account, nothing.
//!
//! SQLite: one script on the writer connection (`BEGIN IMMEDIATE … COMMIT`) whose every insert is
//! conditional on the session and the account, then a `SELECT` of both; the write lock is held
//! throughout, so the condition cannot change in between. Postgres: one statement whose inserts select
//! from a share-locked session row, so a session being ended either is seen ended here or waits for
//! this transaction and then revokes and notifies what it wrote.

use sea_orm::{ConnectionTrait, DbBackend, Statement, Value};

use super::entity::users;
use super::refresh::secs;
use super::{
    NewRefreshFamily, RefreshFamily, RefreshToken, Script, ScriptRow, Store, StoreError, User,
    list_to_db,
};

/// The outcome of [`Store::record_code_exchange`].
#[derive(Debug)]
pub enum Exchange {
    /// The account is disabled or gone: nothing was written.
    AccountInactive,
    /// The browser session the code was issued in has ended (or is gone): nothing was written.
    SessionEnded,
    Recorded(Box<Recorded>),
}

/// A recorded code exchange.
#[derive(Debug)]
pub struct Recorded {
    /// The account as it is now.
    pub user: User,
    /// The new refresh-token family and its first token, when one was asked for.
    pub refresh: Option<(RefreshFamily, RefreshToken)>,
}

/// The session is open (not ended: a code issued a moment before the session expired is still good)
/// and its account enabled. One `?`: the session id. A macro so the statements below are constants.
macro_rules! live {
    () => {
        "EXISTS (SELECT 1 FROM sessions JOIN users ON users.id = sessions.user_id \
         WHERE sessions.id = ? AND sessions.ended_at IS NULL AND NOT users.disabled)"
    };
}

/// SQLite: `?` session, client, now, session.
const SQLITE_SESSION_CLIENT: &str = concat!(
    "INSERT INTO session_clients (session_id, client_id, first_at) SELECT ?, ?, ? WHERE ",
    live!(),
    " ON CONFLICT (session_id, client_id) DO NOTHING"
);

/// SQLite: `?` id, account, client, scope, session, auth_time, now, absolute expiry, session.
const SQLITE_FAMILY: &str = concat!(
    "INSERT INTO refresh_families (id, user_id, client_id, scope, session_id, auth_time, \
     created_at, absolute_expires_at) SELECT ?, ?, ?, ?, ?, ?, ?, ? WHERE ",
    live!()
);

/// SQLite: `?` hash, family, scope, now, expiry, session.
const SQLITE_TOKEN: &str = concat!(
    "INSERT INTO refresh_tokens (token_hash, family_id, scope, created_at, expires_at) \
     SELECT ?, ?, ?, ?, ? WHERE ",
    live!()
);

/// The account and whether the session is open: `?` the session, `?` the account.
const OUTCOME: &str = "SELECT users.*, \
    EXISTS (SELECT 1 FROM sessions WHERE id = ? AND ended_at IS NULL) AS is_open \
    FROM users WHERE users.id = ?";

/// Postgres, `$1` the session, `$2` the client, `$3` now, `$4` the account. The session row is
/// share-locked: an ending session's `UPDATE` waits for this statement's transaction.
const POSTGRES_HEAD: &str = "\
    WITH live AS (SELECT sessions.id FROM sessions JOIN users ON users.id = sessions.user_id \
            WHERE sessions.id = $1 AND sessions.ended_at IS NULL AND NOT users.disabled \
            FOR SHARE OF sessions), \
        sc AS (INSERT INTO session_clients (session_id, client_id, first_at) \
            SELECT id, $2, $3 FROM live ON CONFLICT (session_id, client_id) DO NOTHING)";

/// Postgres, with a refresh-token family: `$5`–`$10` the family (id, account, client, scope,
/// auth_time, absolute expiry), `$11`–`$13` its first token (hash, scope, expiry).
const POSTGRES_FAMILY: &str = "\
        , fam AS (INSERT INTO refresh_families (id, user_id, client_id, scope, session_id, \
            auth_time, created_at, absolute_expires_at) \
            SELECT $5, $6, $7, $8, id, $9, $3, $10 FROM live RETURNING id), \
        tok AS (INSERT INTO refresh_tokens (token_hash, family_id, scope, created_at, expires_at) \
            SELECT $11, id, $12, $3, $13 FROM fam)";

const POSTGRES_TAIL: &str = " SELECT users.*, \
    EXISTS (SELECT 1 FROM sessions WHERE id = $1 AND ended_at IS NULL) AS is_open \
    FROM users WHERE users.id = $4";

impl Store {
    /// Records a code exchange (see the module doc): the client noted in session `sid`, and with
    /// `family` a new refresh-token family in it, for the account `user_id`.
    pub async fn record_code_exchange(
        &self,
        sid: &str,
        user_id: &str,
        client_id: &str,
        now: i64,
        family: Option<NewRefreshFamily>,
    ) -> Result<Exchange, StoreError> {
        let refresh = match family {
            Some(mut f) => {
                f.session_id = Some(sid.to_string());
                let idle = secs(f.idle_ttl_secs);
                let family = f.into_family();
                let expires = family.token_expires_at(now, idle);
                Some((family, RefreshToken::generate()?, expires))
            }
            None => None,
        };
        let row = if self.is_sqlite() {
            let mut script = Script::new();
            script.push_sql(
                SQLITE_SESSION_CLIENT,
                [sid.into(), client_id.into(), now.into(), sid.into()],
            );
            if let Some((f, t, expires)) = &refresh {
                let scope = list_to_db(&f.scope);
                script.push_sql(
                    SQLITE_FAMILY,
                    [
                        f.id.as_str().into(),
                        f.user_id.as_str().into(),
                        f.client_id.as_str().into(),
                        scope.clone().into(),
                        sid.into(),
                        f.auth_time.into(),
                        now.into(),
                        f.absolute_expires_at.into(),
                        sid.into(),
                    ],
                );
                script.push_sql(
                    SQLITE_TOKEN,
                    [
                        t.hash().to_db().into(),
                        f.id.as_str().into(),
                        scope.into(),
                        now.into(),
                        (*expires).into(),
                        sid.into(),
                    ],
                );
            }
            script.push_sql(OUTCOME, [sid.into(), user_id.into()]);
            self.sqlite_script(script).await?.into_iter().next()
        } else {
            let mut values: Vec<Value> =
                vec![sid.into(), client_id.into(), now.into(), user_id.into()];
            let mut sql = String::from(POSTGRES_HEAD);
            if let Some((f, t, expires)) = &refresh {
                let scope = list_to_db(&f.scope);
                values.extend([
                    f.id.as_str().into(),
                    f.user_id.as_str().into(),
                    f.client_id.as_str().into(),
                    scope.clone().into(),
                    f.auth_time.into(),
                    f.absolute_expires_at.into(),
                    t.hash().to_db().into(),
                    scope.into(),
                    (*expires).into(),
                ]);
                sql.push_str(POSTGRES_FAMILY);
            }
            sql.push_str(POSTGRES_TAIL);
            self.db
                .query_one_raw(Statement::from_sql_and_values(
                    DbBackend::Postgres,
                    sql,
                    values,
                ))
                .await?
                .map(ScriptRow::Sqlx)
        };
        outcome(row, refresh.map(|(f, t, _)| (f, t)))
    }
}

fn outcome(
    row: Option<ScriptRow>,
    refresh: Option<(RefreshFamily, RefreshToken)>,
) -> Result<Exchange, StoreError> {
    let Some(row) = row else {
        return Ok(Exchange::AccountInactive);
    };
    let user = User::from(row.model::<users::Entity>()?);
    if user.disabled {
        return Ok(Exchange::AccountInactive);
    }
    let open = row.flag("is_open")?;
    if !open {
        return Ok(Exchange::SessionEnded);
    }
    Ok(Exchange::Recorded(Box::new(Recorded { user, refresh })))
}
