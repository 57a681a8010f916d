//! Refresh tokens: families and one-time rotation, durable in SQL.
//!
//! A family is one grant to one client for one user (and maybe one browser session); every rotation
//! marks the presented token used and adds its successor to the family. Presenting a used token again
//! is reuse: the whole family is revoked (RFC 9700 §4.14.2), unless it happens within a short grace
//! window, where the same successor is handed back so a client that lost the response to a network
//! error can retry without being logged out.
//!
//! Why SQL and not the ephemeral store (Redis): the family must be durable in SQL anyway (it outlives
//! restarts and a Redis flush, and "sign out everywhere" and reuse detection need it long after the
//! token was last used). Rotation itself needs only one conditional
//! `UPDATE refresh_tokens SET used_at = ? WHERE token_hash = ? AND used_at IS NULL`: its
//! `rows_affected` elects exactly one winner, atomically across any number of replicas, on SQLite (one
//! writer at a time; the transaction begins `IMMEDIATE`) and on Postgres (row lock; a loser waits for the
//! winner's commit, then re-checks `used_at IS NULL` under READ COMMITTED and matches nothing). The
//! successor is inserted in the same transaction. No second system sits in the critical path, and no
//! read-then-write race exists: the reads before the UPDATE only reject early; the UPDATE decides.
//!
//! Secrets at rest: a token is `cst_rt_` + 256 bits from the OS CSPRNG (base64url); only its SHA-256
//! is stored. For the grace window the successor is kept sealed under the KEK with the presented
//! token's hash as associated data, so a database dump still redeems nothing; the sealed copy is
//! dropped once the successor is used, when the family is revoked, or by `clear_stale_successors`.
//!
//! This module owns the `refresh_families` and `refresh_tokens` tables only; the `refresh_token` grant
//! (client authentication, audit, HTTP answers) lives in `oauth`.

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sea_orm::sea_query::{Expr, Query};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbBackend, DbErr, EntityTrait, QueryFilter,
    QueryOrder,
};
use zeroize::Zeroizing;

use super::entity::{refresh_families, refresh_tokens};
use super::{Script, SecretHash, Store, StoreError, list_from_db, list_to_db};
use crate::keys::seal::Kek;

/// Every refresh token starts with this, so a leaked one can be found by grep.
pub const REFRESH_TOKEN_PREFIX: &str = "cst_rt_";
/// `revoked_reason` of a family revoked because a used token came back.
pub const REVOKED_FOR_REUSE: &str = "reuse";
/// `revoked_reason` of a family revoked through one of its tokens (RFC 7009).
pub const REVOKED_BY_CLIENT: &str = "revoked";

const TOKEN_BYTES: usize = 32;
/// base64url of 32 bytes without padding.
const TOKEN_CHARS: usize = 43;

/// A refresh token as handed to a client. Never stored; `Debug` prints nothing of it.
pub struct RefreshToken(Zeroizing<String>);

impl std::fmt::Debug for RefreshToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RefreshToken(..)")
    }
}

impl RefreshToken {
    pub(super) fn generate() -> Result<RefreshToken, StoreError> {
        let mut buf = Zeroizing::new([0u8; TOKEN_BYTES]);
        SystemRandom::new()
            .fill(buf.as_mut())
            .map_err(|_| no_randomness())?;
        let mut s = Zeroizing::new(String::with_capacity(
            REFRESH_TOKEN_PREFIX.len() + TOKEN_CHARS,
        ));
        s.push_str(REFRESH_TOKEN_PREFIX);
        URL_SAFE_NO_PAD.encode_string(buf.as_ref(), &mut s);
        Ok(RefreshToken(s))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub(super) fn hash(&self) -> SecretHash {
        SecretHash::of(&self.0)
    }
}

fn no_randomness() -> StoreError {
    StoreError::Db(DbErr::Custom(
        "the OS random number generator failed".into(),
    ))
}

/// The hash a well-formed token is stored under; `None` for anything that cannot be one of ours.
fn parse_token(s: &str) -> Option<String> {
    let body = s.strip_prefix(REFRESH_TOKEN_PREFIX)?;
    let well_formed = body.len() == TOKEN_CHARS
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    well_formed.then(|| SecretHash::of(s).to_db())
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefreshFamily {
    pub id: String,
    pub user_id: String,
    pub client_id: String,
    /// What the user granted; a rotation may narrow a token's scope within it, never widen past it.
    pub scope: Vec<String>,
    pub session_id: Option<String>,
    pub auth_time: Option<i64>,
    pub created_at: i64,
    pub absolute_expires_at: i64,
    pub revoked_at: Option<i64>,
    pub revoked_reason: Option<String>,
}

impl RefreshFamily {
    /// When a token of this family issued at `now` expires: after `idle_ttl` seconds unused, and never
    /// after the family itself.
    pub(super) fn token_expires_at(&self, now: i64, idle_ttl: i64) -> i64 {
        now.saturating_add(idle_ttl).min(self.absolute_expires_at)
    }
}

impl TryFrom<refresh_families::Model> for RefreshFamily {
    type Error = StoreError;
    fn try_from(m: refresh_families::Model) -> Result<Self, StoreError> {
        Ok(RefreshFamily {
            scope: list_from_db(&m.scope, "refresh family scope")?,
            id: m.id,
            user_id: m.user_id,
            client_id: m.client_id,
            session_id: m.session_id,
            auth_time: m.auth_time,
            created_at: m.created_at,
            absolute_expires_at: m.absolute_expires_at,
            revoked_at: m.revoked_at,
            revoked_reason: m.revoked_reason,
        })
    }
}

#[derive(Clone, Debug)]
pub struct NewRefreshFamily {
    pub user_id: String,
    pub client_id: String,
    pub scope: Vec<String>,
    pub session_id: Option<String>,
    pub auth_time: Option<i64>,
    pub now: i64,
    /// Lifetime of the family, whatever the rotations.
    pub absolute_ttl_secs: u64,
    /// Lifetime of each token unless rotated (capped by the family's).
    pub idle_ttl_secs: u64,
}

/// No `Debug`: it holds the presented token.
#[derive(Clone, Copy)]
pub struct RotateRequest<'a> {
    /// The token as presented; anything not shaped like one is simply `Invalid`.
    pub token: &'a str,
    /// The authenticated client; a token of another client's family is `Invalid`.
    pub client_id: &'a str,
    /// A narrower scope (within the family's); `None` keeps the presented token's scope.
    pub scope: Option<&'a [String]>,
    pub now: i64,
    pub idle_ttl_secs: u64,
    /// How long after a rotation the rotated token still returns the same successor: a replay at
    /// `used_at + grace_secs` or later is reuse. 0 = never, and then no successor is kept at all.
    pub grace_secs: u64,
}

/// A token to hand out, the family it belongs to and the scope it carries.
#[derive(Debug)]
pub struct IssuedRefresh {
    pub token: RefreshToken,
    pub family: RefreshFamily,
    pub scope: Vec<String>,
}

#[derive(Debug)]
pub enum Rotation {
    /// The presented token was live and is now used; here is its successor.
    Rotated(IssuedRefresh),
    /// The presented token was rotated moments ago (within the grace window): the same successor again.
    GraceReplay(IssuedRefresh),
    /// A used token came back outside the grace window: its family is now revoked (returned as stored
    /// after the revocation). Also when the family was revoked before (its first reason is kept), so
    /// every replay can be audited. The caller answers `invalid_grant` and writes an audit event.
    Reused { family: RefreshFamily },
    /// The requested scope is not within the family's; the token was not used up.
    InvalidScope,
    /// The family's account is disabled (or gone); the token was not used up.
    AccountInactive,
    /// Unknown, expired (idle or absolute), revoked, or another client's: `invalid_grant`.
    Invalid,
}

pub(super) fn secs(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl NewRefreshFamily {
    pub(super) fn into_family(self) -> RefreshFamily {
        RefreshFamily {
            id: uuid::Uuid::new_v4().to_string(),
            user_id: self.user_id,
            client_id: self.client_id,
            scope: self.scope,
            session_id: self.session_id,
            auth_time: self.auth_time,
            created_at: self.now,
            absolute_expires_at: self.now.saturating_add(secs(self.absolute_ttl_secs)),
            revoked_at: None,
            revoked_reason: None,
        }
    }
}

impl Store {
    /// Records a new family and returns it with its first token.
    pub async fn create_family(
        &self,
        f: NewRefreshFamily,
    ) -> Result<(RefreshFamily, RefreshToken), StoreError> {
        let idle_ttl_secs = f.idle_ttl_secs;
        let now = f.now;
        let family = f.into_family();
        let token = RefreshToken::generate()?;
        let (txn, _gate) = self.begin_write().await?;
        refresh_families::Entity::insert(refresh_families::ActiveModel {
            id: Set(family.id.clone()),
            user_id: Set(family.user_id.clone()),
            client_id: Set(family.client_id.clone()),
            scope: Set(list_to_db(&family.scope)),
            session_id: Set(family.session_id.clone()),
            auth_time: Set(family.auth_time),
            created_at: Set(family.created_at),
            absolute_expires_at: Set(family.absolute_expires_at),
            revoked_at: Set(None),
            revoked_reason: Set(None),
        })
        .exec_without_returning(&txn)
        .await?;
        insert_token(
            &txn,
            &token,
            &family,
            None,
            &family.scope,
            now,
            secs(idle_ttl_secs),
        )
        .await?;
        txn.commit().await?;
        Ok((family, token))
    }

    /// Redeems a refresh token for its successor; see [`Rotation`] for the outcomes.
    pub async fn rotate(&self, req: RotateRequest<'_>, kek: &Kek) -> Result<Rotation, StoreError> {
        let Some(hash) = parse_token(req.token) else {
            return Ok(Rotation::Invalid);
        };
        // A lost race is settled on the next round, which reads the winner's committed row; a third
        // round would mean the winner rolled back and we lost again to yet another winner.
        for _ in 0..3 {
            let Some((tok, fam, account_active)) = self.rotation_rows(&hash).await? else {
                return Ok(Rotation::Invalid);
            };
            if fam.client_id != req.client_id || req.now >= fam.absolute_expires_at {
                return Ok(Rotation::Invalid);
            }
            let family = RefreshFamily::try_from(fam)?;
            if let Some(used_at) = tok.used_at {
                return self.replayed(&tok, family, used_at, &req, kek).await;
            }
            if family.revoked_at.is_some() || req.now >= tok.expires_at {
                return Ok(Rotation::Invalid);
            }
            if !account_active {
                return Ok(Rotation::AccountInactive);
            }
            let scope = match req.scope {
                // RFC 6749 §6: an omitted scope means the scope originally granted.
                None => family.scope.clone(),
                Some(asked) if asked.iter().all(|s| family.scope.contains(s)) => {
                    let mut v: Vec<String> = Vec::with_capacity(asked.len());
                    for s in asked {
                        if !v.contains(s) {
                            v.push(s.clone());
                        }
                    }
                    v
                }
                Some(_) => return Ok(Rotation::InvalidScope),
            };

            let next = RefreshToken::generate()?;
            let sealed = if req.grace_secs > 0 {
                Some(
                    kek.seal(&hash, next.as_str().as_bytes())
                        .map_err(|_| no_randomness())?,
                )
            } else {
                None
            };
            let claim = Claim {
                hash: &hash,
                sealed,
                next: &next,
                family: &family,
                parent: tok.parent_hash.as_deref(),
                scope: &scope,
                now: req.now,
                idle_ttl: secs(req.idle_ttl_secs),
            };
            if !self.claim(claim).await? {
                continue;
            }
            return Ok(Rotation::Rotated(IssuedRefresh {
                token: next,
                family,
                scope,
            }));
        }
        Err(StoreError::Db(DbErr::Custom(
            "refresh token rotation did not settle".into(),
        )))
    }

    /// A used token came back: the same successor within the grace window, else the family is revoked.
    async fn replayed(
        &self,
        tok: &refresh_tokens::Model,
        family: RefreshFamily,
        used_at: i64,
        req: &RotateRequest<'_>,
        kek: &Kek,
    ) -> Result<Rotation, StoreError> {
        let in_grace = req.grace_secs > 0
            && req.now < used_at.saturating_add(secs(req.grace_secs))
            && family.revoked_at.is_none();
        if in_grace && let Some(sealed) = &tok.successor_sealed {
            let plain = kek
                .open(&tok.token_hash, sealed)
                .map_err(|_| StoreError::Corrupt("sealed refresh token successor".into()))?;
            let text = std::str::from_utf8(&plain)
                .map_err(|_| StoreError::Corrupt("sealed refresh token successor".into()))?;
            let token = RefreshToken(Zeroizing::new(text.to_string()));
            // The sealed copy is cleared when the successor is used, but that may have happened since
            // the read above; a used successor means the client has moved on, so this is reuse.
            if let Some(next) = refresh_tokens::Entity::find_by_id(token.hash().to_db())
                .one(&self.db)
                .await?
                && next.used_at.is_none()
            {
                let scope = list_from_db(&next.scope, "refresh token scope")?;
                return Ok(Rotation::GraceReplay(IssuedRefresh {
                    token,
                    family,
                    scope,
                }));
            }
        }
        self.revoke_family(&family.id, REVOKED_FOR_REUSE, req.now)
            .await?;
        let family = match refresh_families::Entity::find_by_id(family.id.clone())
            .one(&self.db)
            .await?
        {
            Some(m) => RefreshFamily::try_from(m)?,
            None => family,
        };
        Ok(Rotation::Reused { family })
    }

    /// Revokes a family (every token in it stops working at once). True when this call revoked it,
    /// false when it was already revoked or does not exist. The first reason given is kept.
    pub async fn revoke_family(
        &self,
        id: &str,
        reason: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let r = revoke_families(refresh_families::Column::Id.eq(id), reason, now)
            .exec(&self.db)
            .await?;
        clear_successor(&self.db, refresh_tokens::Column::FamilyId.eq(id)).await?;
        Ok(r.rows_affected == 1)
    }

    /// RFC 7009 for refresh tokens: revokes the family of `token` when it belongs to `client_id`.
    /// True when the token was one of this client's (whether or not already revoked).
    pub async fn revoke_token(
        &self,
        token: &str,
        client_id: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let Some(hash) = parse_token(token) else {
            return Ok(false);
        };
        let Some(tok) = refresh_tokens::Entity::find_by_id(hash)
            .one(&self.db)
            .await?
        else {
            return Ok(false);
        };
        let owned = refresh_families::Entity::find_by_id(tok.family_id.clone())
            .one(&self.db)
            .await?
            .is_some_and(|f| f.client_id == client_id);
        if owned {
            self.revoke_family(&tok.family_id, REVOKED_BY_CLIENT, now)
                .await?;
        }
        Ok(owned)
    }

    pub async fn refresh_family(&self, id: &str) -> Result<Option<RefreshFamily>, StoreError> {
        refresh_families::Entity::find_by_id(id.to_string())
            .one(&self.db)
            .await?
            .map(RefreshFamily::try_from)
            .transpose()
    }

    /// The user's families that are neither revoked nor past their absolute lifetime, oldest first.
    pub async fn families_for_user(
        &self,
        user_id: &str,
        now: i64,
    ) -> Result<Vec<RefreshFamily>, StoreError> {
        refresh_families::Entity::find()
            .filter(refresh_families::Column::UserId.eq(user_id))
            .filter(refresh_families::Column::RevokedAt.is_null())
            .filter(refresh_families::Column::AbsoluteExpiresAt.gt(now))
            .order_by_asc(refresh_families::Column::CreatedAt)
            .order_by_asc(refresh_families::Column::Id)
            .all(&self.db)
            .await?
            .into_iter()
            .map(RefreshFamily::try_from)
            .collect()
    }

    /// Revokes every live family tied to a browser session (logout); returns how many.
    pub async fn revoke_families_for_session(
        &self,
        session_id: &str,
        reason: &str,
        now: i64,
    ) -> Result<u64, StoreError> {
        let r = revoke_families(
            refresh_families::Column::SessionId.eq(session_id),
            reason,
            now,
        )
        .exec(&self.db)
        .await?;
        // Sealed successors of these families are useless now (rotation checks the family first) and
        // go with `clear_stale_successors` once their grace window has passed.
        Ok(r.rows_affected)
    }

    /// Drops the sealed successor copies whose grace window has passed; for the periodic job.
    pub async fn clear_stale_successors(
        &self,
        now: i64,
        grace_secs: u64,
    ) -> Result<u64, StoreError> {
        let cutoff = now.saturating_sub(secs(grace_secs));
        clear_successor(&self.db, refresh_tokens::Column::UsedAt.lte(cutoff)).await
    }

    /// Deletes the families past their absolute lifetime, with their tokens; returns how many families.
    /// Revoked families stay until then, so a replayed token is still recognised as reuse.
    pub async fn purge_refresh_families(&self, now: i64) -> Result<u64, StoreError> {
        let (txn, _gate) = self.begin_write().await?;
        refresh_tokens::Entity::delete_many()
            .filter(
                refresh_tokens::Column::FamilyId.in_subquery(
                    Query::select()
                        .column(refresh_families::Column::Id)
                        .from(refresh_families::Entity)
                        .and_where(refresh_families::Column::AbsoluteExpiresAt.lte(now))
                        .to_owned(),
                ),
            )
            .exec(&txn)
            .await?;
        let r = refresh_families::Entity::delete_many()
            .filter(refresh_families::Column::AbsoluteExpiresAt.lte(now))
            .exec(&txn)
            .await?;
        txn.commit().await?;
        Ok(r.rows_affected)
    }
}

/// `SELECT` of one token with its family and whether the family's account is active, in one round
/// trip; `?` placeholders, rewritten to `$n` for Postgres by `numbered`.
const ROTATION_ROWS_SQL: &str = "SELECT \
    t.token_hash AS t_token_hash, t.family_id AS t_family_id, t.parent_hash AS t_parent_hash, \
    t.scope AS t_scope, t.created_at AS t_created_at, t.expires_at AS t_expires_at, \
    t.used_at AS t_used_at, t.successor_sealed AS t_successor_sealed, \
    f.id AS f_id, f.user_id AS f_user_id, f.client_id AS f_client_id, f.scope AS f_scope, \
    f.session_id AS f_session_id, f.auth_time AS f_auth_time, f.created_at AS f_created_at, \
    f.absolute_expires_at AS f_absolute_expires_at, f.revoked_at AS f_revoked_at, \
    f.revoked_reason AS f_revoked_reason, u.disabled AS u_disabled \
    FROM refresh_tokens t \
    JOIN refresh_families f ON f.id = t.family_id \
    LEFT JOIN users u ON u.id = f.user_id \
    WHERE t.token_hash = ?";

/// The rotation's writes on SQLite: three statements run in order as one [`Script`] (one
/// transaction). The conditional `UPDATE` elects the winner; the successor is inserted, and the
/// parent's sealed grace copy dropped, only when it did (`changes()` is the row count of the statement
/// before). First mark the presented token used (`?` now, its sealed successor, its hash) …
const CLAIM_SQLITE_USE: &str = "UPDATE refresh_tokens SET used_at = ?, successor_sealed = ? \
    WHERE token_hash = ? AND used_at IS NULL";
/// … then, only if that matched, insert the successor (`?` its hash, family, parent, scope, now,
/// expiry) …
const CLAIM_SQLITE_NEXT: &str = "INSERT INTO refresh_tokens \
    (token_hash, family_id, parent_hash, scope, created_at, expires_at, used_at, successor_sealed) \
    SELECT ?, ?, ?, ?, ?, ?, NULL, NULL WHERE changes() = 1";
/// … and, only if that inserted, clear the grace copy kept on the parent (`?` the parent's hash).
const CLAIM_SQLITE_CLEAR: &str = "UPDATE refresh_tokens SET successor_sealed = NULL \
    WHERE token_hash = ? AND successor_sealed IS NOT NULL AND changes() = 1";

/// Whether this claim won: its successor (a fresh random hash) exists only if the insert ran.
const CLAIM_SQLITE_WON: &str =
    "SELECT EXISTS (SELECT 1 FROM refresh_tokens WHERE token_hash = ?) AS won";

/// The same as one Postgres statement: data-modifying CTEs run together, atomically, and the insert and
/// the clean-up see whether the claim matched. A loser blocks on the row lock, re-checks
/// `used_at IS NULL` after the winner commits, matches nothing and so inserts nothing.
const CLAIM_POSTGRES: &str = "\
    WITH won AS (UPDATE refresh_tokens SET used_at = $1, successor_sealed = $2 \
            WHERE token_hash = $3 AND used_at IS NULL RETURNING 1), \
        ins AS (INSERT INTO refresh_tokens \
            (token_hash, family_id, parent_hash, scope, created_at, expires_at, used_at, successor_sealed) \
            SELECT $4, $5, $6, $7, $8, $9, NULL, NULL FROM won RETURNING 1), \
        clr AS (UPDATE refresh_tokens SET successor_sealed = NULL \
            WHERE token_hash = $10 AND successor_sealed IS NOT NULL AND EXISTS (SELECT 1 FROM ins)) \
    SELECT COUNT(*) AS won FROM won";

impl Store {
    /// The presented token, its family, and whether the account is present and enabled.
    async fn rotation_rows(
        &self,
        hash: &str,
    ) -> Result<Option<(refresh_tokens::Model, refresh_families::Model, bool)>, StoreError> {
        static PG_SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        // SQLite: on the writer connection, on this thread, with the token's and family's pages in
        // its cache; the claim follows on the same connection.
        let row = self
            .read_before_write(ROTATION_ROWS_SQL, &PG_SQL, vec![hash.into()])
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let tok = row.model_at::<refresh_tokens::Entity>("t_")?;
        let fam = row.model_at::<refresh_families::Entity>("f_")?;
        Ok(Some((tok, fam, row.opt_flag("u_disabled")? == Some(false))))
    }
}

/// What a winning rotation writes: `hash` marked used, `next` recorded as its successor, and the
/// grace copy kept on `parent` cleared.
struct Claim<'a> {
    hash: &'a str,
    sealed: Option<String>,
    next: &'a RefreshToken,
    family: &'a RefreshFamily,
    parent: Option<&'a str>,
    scope: &'a [String],
    now: i64,
    idle_ttl: i64,
}

impl Store {
    /// Applies `c` if `c.hash` is still unused; true when this call won. One round trip: on Postgres a
    /// single statement (its own transaction); on SQLite one multi-statement transaction on the writer
    /// connection, behind this process's write gate.
    async fn claim(&self, c: Claim<'_>) -> Result<bool, StoreError> {
        use sea_orm::{Statement, Value};
        let backend = self.db.get_database_backend();
        // The values of the three steps: mark used, insert the successor, clear the parent's copy.
        let mark: [Value; 3] = [c.now.into(), c.sealed.into(), c.hash.into()];
        let next: [Value; 6] = [
            c.next.hash().to_db().into(),
            c.family.id.as_str().into(),
            c.hash.into(),
            list_to_db(c.scope).into(),
            c.now.into(),
            c.family.token_expires_at(c.now, c.idle_ttl).into(),
        ];
        let clear: [Value; 1] = [c.parent.map(str::to_string).into()];
        if backend == DbBackend::Postgres {
            let values: Vec<Value> = mark.into_iter().chain(next).chain(clear).collect();
            let row = self
                .db
                .query_one_raw(Statement::from_sql_and_values(
                    backend,
                    CLAIM_POSTGRES,
                    values,
                ))
                .await?
                .ok_or_else(|| StoreError::Db(DbErr::Custom("rotation returned no row".into())))?;
            let won: i64 = row.try_get("", "won")?;
            return Ok(won == 1);
        }
        let mut script = Script::new();
        script.push_sql(CLAIM_SQLITE_USE, mark);
        script.push_sql(CLAIM_SQLITE_NEXT, next);
        script.push_sql(CLAIM_SQLITE_CLEAR, clear);
        script.push_sql(CLAIM_SQLITE_WON, [c.next.hash().to_db().into()]);
        match self.sqlite_script(script).await?.first() {
            Some(row) => row.flag("won"),
            None => Err(StoreError::Db(DbErr::Custom(
                "rotation returned no row".into(),
            ))),
        }
    }
}

/// Revokes the families matching `filter` that are not revoked yet (the first reason given is kept).
/// The statement is returned unexecuted so a caller can narrow it further or run it in a transaction.
pub(super) fn revoke_families(
    filter: sea_orm::sea_query::SimpleExpr,
    reason: &str,
    now: i64,
) -> sea_orm::UpdateMany<refresh_families::Entity> {
    refresh_families::Entity::update_many()
        .col_expr(refresh_families::Column::RevokedAt, Expr::value(now))
        .col_expr(
            refresh_families::Column::RevokedReason,
            Expr::value(reason.to_string()),
        )
        .filter(filter)
        .filter(refresh_families::Column::RevokedAt.is_null())
}

async fn insert_token(
    db: &impl ConnectionTrait,
    token: &RefreshToken,
    family: &RefreshFamily,
    parent_hash: Option<String>,
    scope: &[String],
    now: i64,
    idle_ttl: i64,
) -> Result<(), StoreError> {
    refresh_tokens::Entity::insert(refresh_tokens::ActiveModel {
        token_hash: Set(token.hash().to_db()),
        family_id: Set(family.id.clone()),
        parent_hash: Set(parent_hash),
        scope: Set(list_to_db(scope)),
        created_at: Set(now),
        expires_at: Set(family.token_expires_at(now, idle_ttl)),
        used_at: Set(None),
        successor_sealed: Set(None),
    })
    .exec_without_returning(db)
    .await?;
    Ok(())
}

/// Sets `successor_sealed` to NULL on the rows matching `filter` that still hold one.
async fn clear_successor(db: &impl ConnectionTrait, filter: Expr) -> Result<u64, StoreError> {
    Ok(refresh_tokens::Entity::update_many()
        .col_expr(
            refresh_tokens::Column::SuccessorSealed,
            Expr::value(Option::<String>::None),
        )
        .filter(filter)
        .filter(refresh_tokens::Column::SuccessorSealed.is_not_null())
        .exec(db)
        .await?
        .rows_affected)
}
