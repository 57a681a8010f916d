//! Browser sessions, the clients that got tokens in each, and the back-channel logout outbox.
//!
//! A session row is keyed by its public id (the `sid` claim); the cookie is stored only as the SHA-256
//! `token_hash`, unique, so the lookup on every request is one indexed read. Ending a session is one
//! transaction: the row is marked ended (a conditional UPDATE, so two enders never both act), the
//! refresh-token families created in it are revoked, and a logout notice is queued in the outbox for
//! every client with a back-channel logout URI that got tokens in it. Either all of that happens or
//! none; a notice is never lost because the process stopped between two steps.
//!
//! This module owns the `sessions`, `session_clients` and `logout_outbox` tables. What a session means
//! (cookies, lifetimes, the audit trail) is `crate::sessions`; delivery is `crate::backchannel`.

use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseTransaction, DbBackend, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect, QueryTrait, Statement,
};
use serde::Serialize;

use super::entity::{clients, logout_outbox, refresh_families, session_clients, sessions};
use super::{AuditEvent, Script, Store, StoreError, list_from_db, list_to_db};

/// A session to record.
#[derive(Clone, Debug)]
pub struct NewSession {
    pub id: String,
    pub token_hash: String,
    pub user_id: String,
    pub now: i64,
    pub idle_expires_at: i64,
    pub absolute_expires_at: i64,
    pub auth_time: i64,
    pub amr: Vec<String>,
    pub acr: String,
    pub ip: Option<String>,
    pub device: String,
    pub remember_me: bool,
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct SessionRecord {
    /// The public session id (`sid`).
    pub id: String,
    pub user_id: String,
    pub created_at: i64,
    pub last_seen_at: i64,
    pub idle_expires_at: i64,
    pub absolute_expires_at: i64,
    pub auth_time: i64,
    pub amr: Vec<String>,
    pub acr: String,
    pub ip: Option<String>,
    pub device: String,
    pub remember_me: bool,
    pub ended_at: Option<i64>,
    pub end_reason: Option<String>,
}

impl SessionRecord {
    /// Not ended and within both lifetimes.
    pub fn is_live(&self, now: i64) -> bool {
        self.ended_at.is_none() && now < self.idle_expires_at && now < self.absolute_expires_at
    }
}

impl TryFrom<sessions::Model> for SessionRecord {
    type Error = StoreError;
    fn try_from(m: sessions::Model) -> Result<Self, StoreError> {
        Ok(SessionRecord {
            amr: list_from_db(&m.amr, "session amr")?,
            id: m.id,
            user_id: m.user_id,
            created_at: m.created_at,
            last_seen_at: m.last_seen_at,
            idle_expires_at: m.idle_expires_at,
            absolute_expires_at: m.absolute_expires_at,
            auth_time: m.auth_time,
            acr: m.acr,
            ip: m.ip,
            device: m.device,
            remember_me: m.remember_me,
            ended_at: m.ended_at,
            end_reason: m.end_reason,
        })
    }
}

/// A session this call ended, and what ending it did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndedSession {
    pub id: String,
    pub user_id: String,
    pub reason: String,
    pub families_revoked: u64,
    /// Clients a back-channel logout notice was queued for.
    pub notified: Vec<String>,
}

/// How sessions are ended: why, when, and whether `offline_access` refresh families survive.
#[derive(Clone, Copy, Debug)]
pub struct EndPolicy<'a> {
    pub reason: &'a str,
    pub now: i64,
    pub keep_offline_access: bool,
}

/// A queued back-channel logout notice.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogoutNotice {
    pub id: String,
    pub client_id: String,
    pub session_id: String,
    pub subject: String,
    pub created_at: i64,
    /// Attempts made so far, including the one about to be made once claimed.
    pub attempts: u32,
    pub next_attempt_at: i64,
    pub last_error: Option<String>,
}

impl From<logout_outbox::Model> for LogoutNotice {
    fn from(m: logout_outbox::Model) -> Self {
        LogoutNotice {
            id: m.id,
            client_id: m.client_id,
            session_id: m.session_id,
            subject: m.subject,
            created_at: m.created_at,
            attempts: u32::try_from(m.attempts).unwrap_or(0),
            next_attempt_at: m.next_attempt_at,
            last_error: m.last_error,
        }
    }
}

/// Families granted with this scope survive a session's end when the policy says so.
const OFFLINE_ACCESS_IN_SCOPE: &str = "%\"offline_access\"%";

/// Marks one session ended and does what that entails, inside `txn`. `None` when it was already ended.
async fn end_one(
    txn: &DatabaseTransaction,
    id: &str,
    user_id: &str,
    p: EndPolicy<'_>,
) -> Result<Option<EndedSession>, StoreError> {
    let r = sessions::Entity::update_many()
        .col_expr(sessions::Column::EndedAt, Expr::value(p.now))
        .col_expr(
            sessions::Column::EndReason,
            Expr::value(p.reason.to_string()),
        )
        .filter(sessions::Column::Id.eq(id))
        .filter(sessions::Column::EndedAt.is_null())
        .exec(txn)
        .await?;
    if r.rows_affected != 1 {
        return Ok(None);
    }
    let mut revoke = super::refresh::revoke_families(
        refresh_families::Column::SessionId.eq(id),
        p.reason,
        p.now,
    );
    if p.keep_offline_access {
        revoke = revoke.filter(refresh_families::Column::Scope.not_like(OFFLINE_ACCESS_IN_SCOPE));
    }
    let families_revoked = revoke.exec(txn).await?.rows_affected;
    let notify: Vec<String> = clients::Entity::find()
        .select_only()
        .column(clients::Column::Id)
        .filter(
            clients::Column::Id.in_subquery(
                Query::select()
                    .column(session_clients::Column::ClientId)
                    .from(session_clients::Entity)
                    .and_where(session_clients::Column::SessionId.eq(id))
                    .to_owned(),
            ),
        )
        .filter(clients::Column::BackchannelLogoutUri.is_not_null())
        .order_by_asc(clients::Column::Id)
        .into_tuple()
        .all(txn)
        .await?;
    for client_id in &notify {
        logout_outbox::Entity::insert(logout_outbox::ActiveModel {
            id: Set(uuid::Uuid::now_v7().to_string()),
            client_id: Set(client_id.clone()),
            session_id: Set(id.to_string()),
            subject: Set(user_id.to_string()),
            created_at: Set(p.now),
            attempts: Set(0),
            next_attempt_at: Set(p.now),
            lease_until: Set(None),
            last_error: Set(None),
        })
        .exec_without_returning(txn)
        .await?;
    }
    Ok(Some(EndedSession {
        id: id.to_string(),
        user_id: user_id.to_string(),
        reason: p.reason.to_string(),
        families_revoked,
        notified: notify,
    }))
}

fn session_insert(s: NewSession) -> sea_orm::Insert<sessions::ActiveModel> {
    sessions::Entity::insert(sessions::ActiveModel {
        id: Set(s.id),
        token_hash: Set(s.token_hash),
        user_id: Set(s.user_id),
        created_at: Set(s.now),
        last_seen_at: Set(s.now),
        idle_expires_at: Set(s.idle_expires_at),
        absolute_expires_at: Set(s.absolute_expires_at),
        auth_time: Set(s.auth_time),
        amr: Set(list_to_db(&s.amr)),
        acr: Set(s.acr),
        ip: Set(s.ip),
        device: Set(s.device),
        remember_me: Set(s.remember_me),
        ended_at: Set(None),
        end_reason: Set(None),
    })
}

impl Store {
    /// Records a new session. With `limit` > 0, the person's other live sessions beyond `limit - 1`
    /// are ended (least recently seen first) in the same transaction, under a lock on the person: two
    /// sign-ins at once are counted one after the other, so neither bypasses the limit nor ends the
    /// other's brand-new session. Returns the sessions the limit ended.
    ///
    /// `events` (the sign-in's audit trail) are written in the same transaction. On SQLite without a
    /// limit that transaction is one script, one round trip.
    pub async fn start_session(
        &self,
        s: NewSession,
        limit: u32,
        limit_policy: EndPolicy<'_>,
        events: &[AuditEvent],
    ) -> Result<Vec<EndedSession>, StoreError> {
        if limit == 0 && self.is_sqlite() {
            let mut script = Script::new();
            script.push(session_insert(s).build(DbBackend::Sqlite));
            if !events.is_empty() {
                script.push(super::audit_insert_all(events).build(DbBackend::Sqlite));
            }
            self.sqlite_script(script).await?;
            return Ok(Vec::new());
        }
        let (txn, _gate) = self.begin_write().await?;
        if txn.get_database_backend() == DbBackend::Postgres {
            // Serialises the limit per person (SQLite: `begin_write` already serialises all writers).
            // NO KEY UPDATE leaves foreign-key checks of other inserts for this person unblocked.
            txn.query_one_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT id FROM users WHERE id = $1 FOR NO KEY UPDATE",
                [s.user_id.clone().into()],
            ))
            .await?;
        }
        let new_id = s.id.clone();
        let user_id = s.user_id.clone();
        let now = s.now;
        session_insert(s).exec_without_returning(&txn).await?;
        if !events.is_empty() {
            super::audit_insert_all(events)
                .exec_without_returning(&txn)
                .await?;
        }
        let mut ended = Vec::new();
        if limit > 0 {
            let others: Vec<(String, String)> = sessions::Entity::find()
                .select_only()
                .column(sessions::Column::Id)
                .column(sessions::Column::UserId)
                .filter(sessions::Column::UserId.eq(user_id.as_str()))
                .filter(sessions::Column::Id.ne(new_id.as_str()))
                .filter(sessions::Column::EndedAt.is_null())
                .filter(sessions::Column::IdleExpiresAt.gt(now))
                .filter(sessions::Column::AbsoluteExpiresAt.gt(now))
                .order_by_desc(sessions::Column::LastSeenAt)
                .order_by_desc(sessions::Column::CreatedAt)
                .order_by_desc(sessions::Column::Id)
                .into_tuple()
                .all(&txn)
                .await?;
            for (id, uid) in others.iter().skip(limit as usize - 1) {
                if let Some(e) = end_one(&txn, id, uid, limit_policy).await? {
                    ended.push(e);
                }
            }
        }
        txn.commit().await?;
        Ok(ended)
    }

    /// The session whose cookie hashes to `token_hash`, ended or not.
    pub async fn session_by_token(
        &self,
        token_hash: &str,
    ) -> Result<Option<SessionRecord>, StoreError> {
        sessions::Entity::find()
            .filter(sessions::Column::TokenHash.eq(token_hash))
            .one(&self.db)
            .await?
            .map(SessionRecord::try_from)
            .transpose()
    }

    pub async fn session(&self, id: &str) -> Result<Option<SessionRecord>, StoreError> {
        sessions::Entity::find_by_id(id.to_string())
            .one(&self.db)
            .await?
            .map(SessionRecord::try_from)
            .transpose()
    }

    /// Notes that the session was used at `now` and slides its idle expiry, unless it was already
    /// noted after `unless_seen_after` (the throttle: a page load is not a write every time).
    pub async fn touch_session(
        &self,
        id: &str,
        now: i64,
        idle_expires_at: i64,
        unless_seen_after: i64,
    ) -> Result<bool, StoreError> {
        let r = sessions::Entity::update_many()
            .col_expr(sessions::Column::LastSeenAt, Expr::value(now))
            .col_expr(
                sessions::Column::IdleExpiresAt,
                Expr::value(idle_expires_at),
            )
            .filter(sessions::Column::Id.eq(id))
            .filter(sessions::Column::EndedAt.is_null())
            .filter(sessions::Column::LastSeenAt.lte(unless_seen_after))
            .exec(&self.db)
            .await?;
        Ok(r.rows_affected == 1)
    }

    /// The person signed in again in this session (re-authentication or a step-up): a new cookie
    /// (`new_hash` replaces `old_hash`), a new `auth_time`/`amr`/`acr`, and renewed lifetimes. False
    /// when the session ended or its cookie changed meanwhile.
    #[allow(clippy::too_many_arguments)]
    pub async fn reauthenticate_session(
        &self,
        id: &str,
        old_hash: &str,
        new_hash: &str,
        auth_time: i64,
        amr: &[String],
        acr: &str,
        remember_me: bool,
        idle_expires_at: i64,
        absolute_expires_at: i64,
    ) -> Result<bool, StoreError> {
        let r = sessions::Entity::update_many()
            .col_expr(
                sessions::Column::TokenHash,
                Expr::value(new_hash.to_string()),
            )
            .col_expr(sessions::Column::AuthTime, Expr::value(auth_time))
            .col_expr(sessions::Column::LastSeenAt, Expr::value(auth_time))
            .col_expr(sessions::Column::Amr, Expr::value(list_to_db(amr)))
            .col_expr(sessions::Column::Acr, Expr::value(acr.to_string()))
            .col_expr(sessions::Column::RememberMe, Expr::value(remember_me))
            .col_expr(
                sessions::Column::IdleExpiresAt,
                Expr::value(idle_expires_at),
            )
            .col_expr(
                sessions::Column::AbsoluteExpiresAt,
                Expr::value(absolute_expires_at),
            )
            .filter(sessions::Column::Id.eq(id))
            .filter(sessions::Column::TokenHash.eq(old_hash))
            .filter(sessions::Column::EndedAt.is_null())
            .exec(&self.db)
            .await?;
        Ok(r.rows_affected == 1)
    }

    /// The clients that got tokens in a session, in the order they first did.
    pub async fn session_clients(&self, session_id: &str) -> Result<Vec<String>, StoreError> {
        Ok(session_clients::Entity::find()
            .filter(session_clients::Column::SessionId.eq(session_id))
            .order_by_asc(session_clients::Column::FirstAt)
            .order_by_asc(session_clients::Column::ClientId)
            .all(&self.db)
            .await?
            .into_iter()
            .map(|m| m.client_id)
            .collect())
    }

    /// A person's sessions, most recently seen first: the live ones, or (`all`) every row still kept.
    pub async fn sessions_for_user(
        &self,
        user_id: &str,
        now: i64,
        all: bool,
    ) -> Result<Vec<SessionRecord>, StoreError> {
        let mut q = sessions::Entity::find().filter(sessions::Column::UserId.eq(user_id));
        if !all {
            q = q
                .filter(sessions::Column::EndedAt.is_null())
                .filter(sessions::Column::IdleExpiresAt.gt(now))
                .filter(sessions::Column::AbsoluteExpiresAt.gt(now));
        }
        q.order_by_desc(sessions::Column::LastSeenAt)
            .order_by_desc(sessions::Column::CreatedAt)
            .order_by_desc(sessions::Column::Id)
            .limit(1_000)
            .all(&self.db)
            .await?
            .into_iter()
            .map(SessionRecord::try_from)
            .collect()
    }

    /// Sessions whose id starts with `prefix` (for the CLI: ids are long).
    pub async fn sessions_by_prefix(&self, prefix: &str) -> Result<Vec<SessionRecord>, StoreError> {
        // `_` is a LIKE wildcard and may occur in ids: the LIKE narrows, the check decides.
        let pattern = format!("{}%", prefix.replace(['%', '\\'], ""));
        sessions::Entity::find()
            .filter(sessions::Column::Id.like(pattern))
            .limit(100)
            .all(&self.db)
            .await?
            .into_iter()
            .filter(|m| m.id.starts_with(prefix))
            .map(SessionRecord::try_from)
            .collect()
    }

    /// Ends one session (see the module doc for what that entails). `None` when it does not exist or
    /// had already ended.
    pub async fn end_session(
        &self,
        id: &str,
        p: EndPolicy<'_>,
    ) -> Result<Option<EndedSession>, StoreError> {
        let (txn, _gate) = self.begin_write().await?;
        let row: Option<(String, String)> = sessions::Entity::find()
            .select_only()
            .column(sessions::Column::Id)
            .column(sessions::Column::UserId)
            .filter(sessions::Column::Id.eq(id))
            .filter(sessions::Column::EndedAt.is_null())
            .into_tuple()
            .one(&txn)
            .await?;
        let ended = match row {
            Some((id, uid)) => end_one(&txn, &id, &uid, p).await?,
            None => None,
        };
        txn.commit().await?;
        Ok(ended)
    }

    /// Ends every session of `user_id` not yet ended, except `keep` — expired ones included, so their
    /// refresh families and relying parties are dealt with too.
    pub async fn end_user_sessions(
        &self,
        user_id: &str,
        keep: Option<&str>,
        p: EndPolicy<'_>,
    ) -> Result<Vec<EndedSession>, StoreError> {
        let (txn, _gate) = self.begin_write().await?;
        let mut q = sessions::Entity::find()
            .select_only()
            .column(sessions::Column::Id)
            .filter(sessions::Column::UserId.eq(user_id))
            .filter(sessions::Column::EndedAt.is_null());
        if let Some(k) = keep {
            q = q.filter(sessions::Column::Id.ne(k));
        }
        let ids: Vec<String> = q
            .order_by_asc(sessions::Column::CreatedAt)
            .into_tuple()
            .all(&txn)
            .await?;
        let mut ended = Vec::with_capacity(ids.len());
        for id in &ids {
            if let Some(e) = end_one(&txn, id, user_id, p).await? {
                ended.push(e);
            }
        }
        txn.commit().await?;
        Ok(ended)
    }

    /// Deletes session rows that ended, or expired, before `cutoff` (their clients go with them).
    pub async fn purge_sessions(&self, cutoff: i64) -> Result<u64, StoreError> {
        use sea_orm::Condition;
        let r = sessions::Entity::delete_many()
            .filter(
                Condition::any()
                    .add(sessions::Column::EndedAt.lt(cutoff))
                    .add(sessions::Column::IdleExpiresAt.lt(cutoff))
                    .add(sessions::Column::AbsoluteExpiresAt.lt(cutoff)),
            )
            .exec(&self.db)
            .await?;
        Ok(r.rows_affected)
    }

    // --- the back-channel logout outbox --------------------------------------------------------

    /// Notices due at `now` and not leased to a deliverer, oldest first.
    pub async fn due_logout_notices(
        &self,
        now: i64,
        limit: u64,
    ) -> Result<Vec<LogoutNotice>, StoreError> {
        use sea_orm::Condition;
        Ok(logout_outbox::Entity::find()
            .filter(logout_outbox::Column::NextAttemptAt.lte(now))
            .filter(
                Condition::any()
                    .add(logout_outbox::Column::LeaseUntil.is_null())
                    .add(logout_outbox::Column::LeaseUntil.lte(now)),
            )
            .order_by_asc(logout_outbox::Column::NextAttemptAt)
            .order_by_asc(logout_outbox::Column::Id)
            .limit(limit)
            .all(&self.db)
            .await?
            .into_iter()
            .map(LogoutNotice::from)
            .collect())
    }

    /// Every queued notice (for tests and operators).
    pub async fn logout_notices(&self) -> Result<Vec<LogoutNotice>, StoreError> {
        Ok(logout_outbox::Entity::find()
            .order_by_asc(logout_outbox::Column::CreatedAt)
            .order_by_asc(logout_outbox::Column::Id)
            .all(&self.db)
            .await?
            .into_iter()
            .map(LogoutNotice::from)
            .collect())
    }

    /// Takes a notice for one delivery attempt until `lease_until`, counting the attempt. True for
    /// exactly one of any number of replicas asking at once (a conditional UPDATE).
    pub async fn claim_logout_notice(
        &self,
        id: &str,
        now: i64,
        lease_until: i64,
    ) -> Result<bool, StoreError> {
        use sea_orm::Condition;
        let r = logout_outbox::Entity::update_many()
            .col_expr(logout_outbox::Column::LeaseUntil, Expr::value(lease_until))
            .col_expr(
                logout_outbox::Column::Attempts,
                Expr::col(logout_outbox::Column::Attempts).add(1),
            )
            .filter(logout_outbox::Column::Id.eq(id))
            .filter(logout_outbox::Column::NextAttemptAt.lte(now))
            .filter(
                Condition::any()
                    .add(logout_outbox::Column::LeaseUntil.is_null())
                    .add(logout_outbox::Column::LeaseUntil.lte(now)),
            )
            .exec(&self.db)
            .await?;
        Ok(r.rows_affected == 1)
    }

    /// Delivered, or given up: the notice leaves the outbox.
    pub async fn delete_logout_notice(&self, id: &str) -> Result<(), StoreError> {
        logout_outbox::Entity::delete_by_id(id.to_string())
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// A failed attempt: try again at `next_attempt_at`.
    pub async fn retry_logout_notice(
        &self,
        id: &str,
        next_attempt_at: i64,
        error: &str,
    ) -> Result<(), StoreError> {
        let error: String = error.chars().take(250).collect();
        logout_outbox::Entity::update_many()
            .col_expr(
                logout_outbox::Column::LeaseUntil,
                Expr::value(Option::<i64>::None),
            )
            .col_expr(
                logout_outbox::Column::NextAttemptAt,
                Expr::value(next_attempt_at),
            )
            .col_expr(logout_outbox::Column::LastError, Expr::value(error))
            .filter(logout_outbox::Column::Id.eq(id))
            .exec(&self.db)
            .await?;
        Ok(())
    }
}
