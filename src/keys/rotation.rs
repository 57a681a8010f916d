//! Moving keys between states in the database, and keeping a replica's keyring in step with it.
//!
//! `KeyAdmin` makes the changes (the schedule's, and the operator's: rotate, revoke, re-seal under a new
//! KEK), each inside one `Store::lock_keys` transaction that re-reads the rows first, so replicas and
//! CLIs acting at once take turns and decide on fresh data. `KeyService` is a replica's side: every
//! `keys_refresh_secs` it applies what the schedule says is due and reloads its keyring, which bounds
//! how late any replica notices a change made elsewhere.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use crate::audit::{self, Event};
use crate::clock::Clock;
use crate::config::{Alg, Settings};
use crate::store::{KeyMove, KeyRow, KeyTxn, Store};

use super::lifecycle::{self, KeyInfo, Policy, Step};
use super::seal::Kek;
use super::{KeyGenerator, KeyState, Keyring, KeysError, aad, seal_new_key};

/// Makes key-state changes in the database. The CLI uses one directly; a replica through `KeyService`.
pub struct KeyAdmin {
    store: Store,
    kek: Arc<Kek>,
    settings: Arc<Settings>,
    generate: Arc<KeyGenerator>,
    /// Who is acting, for the audit log: "cli" or "scheduler".
    actor: &'static str,
}

/// What `rotate` did for one algorithm.
#[derive(Clone, Debug)]
pub struct Rotated {
    pub alg: Alg,
    pub kid: String,
    /// False when a `next` key was already waiting (it is reported instead of making another).
    pub created: bool,
    /// When the schedule will let it sign.
    pub activates_at: i64,
}

/// What `revoke` did.
#[derive(Clone, Debug)]
pub struct Revoked {
    pub kid: String,
    pub alg: Alg,
    pub was: KeyState,
    /// The key that signs for `alg` from now on, when the revoked one was signing.
    pub replacement: Option<String>,
}

impl KeyAdmin {
    pub fn new(
        store: Store,
        kek: Arc<Kek>,
        settings: Arc<Settings>,
        generate: Arc<KeyGenerator>,
        actor: &'static str,
    ) -> KeyAdmin {
        KeyAdmin {
            store,
            kek,
            settings,
            generate,
            actor,
        }
    }

    /// The policy now: the retirement hold depends on the longest token lifetime any client has.
    pub async fn policy(&self) -> Result<Policy, KeysError> {
        let clients = self.store.clients().await?;
        let overrides = clients
            .iter()
            .flat_map(|c| [c.access_token_ttl_secs, c.id_token_ttl_secs])
            .flatten();
        Ok(Policy::new(
            &self.settings,
            lifecycle::longest_token_ttl(&self.settings, overrides),
        ))
    }

    /// The policy for `rows`: the client table is read only when a retired key needs the hold.
    async fn policy_for(&self, rows: &[KeyRow]) -> Result<Policy, KeysError> {
        if rows.iter().any(|r| r.state == KeyState::Retired.as_str()) {
            self.policy().await
        } else {
            Ok(Policy::new(&self.settings, 0))
        }
    }

    /// Applies what the schedule says is due at `now`; returns the steps taken (usually none).
    pub async fn apply_due(&self, now: i64) -> Result<Vec<Step>, KeysError> {
        // Most ticks find nothing due: decide on a plain read first, lock only when there is work.
        let rows = self.store.keys().await?;
        let policy = self.policy_for(&rows).await?;
        if lifecycle::plan(&infos(&rows), now, &policy).is_empty() {
            return Ok(Vec::new());
        }
        // The full policy, read before the lock: on SQLite in memory the transaction holds the only
        // connection.
        let policy = self.policy().await?;
        let txn = self.store.lock_keys().await?;
        let rows = txn.keys().await?;
        let steps = lifecycle::plan(&infos(&rows), now, &policy);
        if steps
            .iter()
            .any(|s| matches!(s, Step::Create { .. } | Step::Activate { .. }))
        {
            self.check_kek(&rows)?;
        }
        let mut done = Vec::new();
        for step in steps {
            if let Some(event) = self.apply(&txn, &step, now).await? {
                done.push((step, event));
            }
        }
        txn.commit().await?;
        // After the commit: the audit log is written through another connection, which SQLite would
        // keep waiting behind this transaction's write lock.
        let mut steps = Vec::new();
        for (step, event) in done {
            tracing::info!(details = %event.1, "{}", event.0);
            audit::record(
                &self.store,
                now,
                Event::new(event.0).actor(self.actor).details(event.1),
            )
            .await;
            steps.push(step);
        }
        Ok(steps)
    }

    /// One step inside the locked transaction; the audit event to record when it took effect (a
    /// conditional move that found the key already moved did nothing).
    async fn apply(
        &self,
        txn: &KeyTxn,
        step: &Step,
        now: i64,
    ) -> Result<Option<(&'static str, serde_json::Value)>, KeysError> {
        let (kind, kid, alg, moved) = match step {
            Step::Create { alg, state } => {
                let row = self.create(txn, *alg, *state, now).await?;
                ("signing_key_published", row.kid, *alg, true)
            }
            Step::Activate { kid, alg } => {
                let ok = txn
                    .transition(kid, KeyState::Next.as_str(), KeyMove::Activate, now)
                    .await?;
                ("signing_key_activated", kid.clone(), *alg, ok)
            }
            Step::Retire { kid, alg } => {
                let ok = txn
                    .transition(kid, KeyState::Active.as_str(), KeyMove::Retire, now)
                    .await?;
                ("signing_key_retired", kid.clone(), *alg, ok)
            }
            Step::Remove { kid, alg } => {
                let ok = txn
                    .transition(kid, KeyState::Retired.as_str(), KeyMove::Remove, now)
                    .await?;
                ("signing_key_removed", kid.clone(), *alg, ok)
            }
        };
        Ok(moved.then(|| (kind, json!({"kid": kid, "alg": alg.as_str()}))))
    }

    /// Generates, seals and stores a key (inside the caller's locked transaction).
    async fn create(
        &self,
        txn: &KeyTxn,
        alg: Alg,
        state: KeyState,
        now: i64,
    ) -> Result<KeyRow, KeysError> {
        // RSA generation takes tens of milliseconds: keep it off the async workers.
        let g = self.generate.clone();
        let pkcs8 = tokio::task::spawn_blocking(move || g(alg))
            .await
            .map_err(|_| super::jwk::KeyError::Generate)??;
        let row = seal_new_key(&self.kek, alg, &pkcs8, state, now)?;
        txn.insert(&row).await?;
        Ok(row)
    }

    /// A key sealed under another KEK than the one in use must not join the set: after a KEK change
    /// the replicas not yet restarted would seal new keys the others cannot open. So every change that
    /// adds or activates a key first proves this KEK opens what is stored.
    fn check_kek(&self, rows: &[KeyRow]) -> Result<(), KeysError> {
        for r in rows
            .iter()
            .filter(|r| r.state != KeyState::Removed.as_str())
        {
            let alg = Alg::parse(&r.alg).ok_or_else(|| KeysError::Corrupt(r.kid.clone()))?;
            self.kek
                .open(&aad(&r.kid, alg), &r.sealed_private_key)
                .map_err(|_| KeysError::WrongKek(r.kid.clone()))?;
        }
        Ok(())
    }

    /// Publishes a `next` key for each of `algs` that has none waiting; the schedule activates it once
    /// it has been published for the lead time.
    pub async fn rotate(&self, algs: &[Alg], now: i64) -> Result<Vec<Rotated>, KeysError> {
        let policy = self.policy().await?;
        let txn = self.store.lock_keys().await?;
        let rows = txn.keys().await?;
        self.check_kek(&rows)?;
        let mut out = Vec::new();
        for &alg in algs {
            let waiting = rows
                .iter()
                .find(|r| r.alg == alg.as_str() && r.state == KeyState::Next.as_str());
            let (kid, created_at, created) = match waiting {
                Some(r) => (r.kid.clone(), r.created_at, false),
                None => {
                    let row = self.create(&txn, alg, KeyState::Next, now).await?;
                    (row.kid, now, true)
                }
            };
            out.push(Rotated {
                alg,
                kid,
                created,
                activates_at: policy.activates_at(created_at),
            });
        }
        txn.commit().await?;
        for r in out.iter().filter(|r| r.created) {
            audit::record(
                &self.store,
                now,
                Event::new("signing_key_published")
                    .actor(self.actor)
                    .details(json!({"kid": r.kid, "alg": r.alg.as_str(), "activates_at": r.activates_at})),
            )
            .await;
        }
        Ok(out)
    }

    /// Removes a key at once (key compromise). When it was the one signing, the oldest `next` key of
    /// its algorithm takes over, else a new key is made active: signing never stops. Caches that do
    /// not know the replacement yet miss it until they refetch (resource servers that refetch on an
    /// unknown `kid`, as custos-verify does, do so at once).
    pub async fn revoke(&self, kid: &str, now: i64) -> Result<Revoked, KeysError> {
        let txn = self.store.lock_keys().await?;
        let rows = txn.keys().await?;
        let row = rows
            .iter()
            .find(|r| r.kid == kid)
            .ok_or_else(|| KeysError::UnknownKid(kid.into()))?;
        let was = KeyState::parse(&row.state).ok_or_else(|| KeysError::Corrupt(kid.into()))?;
        let alg = Alg::parse(&row.alg).ok_or_else(|| KeysError::Corrupt(kid.into()))?;
        if was == KeyState::Removed {
            return Err(KeysError::AlreadyRemoved(kid.into()));
        }
        txn.transition(kid, was.as_str(), KeyMove::Remove, now)
            .await?;
        let still_signing = rows
            .iter()
            .any(|r| r.kid != kid && r.alg == alg.as_str() && r.state == KeyState::Active.as_str());
        let mut replacement = None;
        if was == KeyState::Active && !still_signing {
            let others: Vec<KeyRow> = rows.iter().filter(|r| r.kid != kid).cloned().collect();
            self.check_kek(&others)?;
            let next = others
                .iter()
                .find(|r| r.alg == alg.as_str() && r.state == KeyState::Next.as_str());
            replacement = Some(match next {
                Some(n) => {
                    txn.transition(&n.kid, KeyState::Next.as_str(), KeyMove::Activate, now)
                        .await?;
                    n.kid.clone()
                }
                None => self.create(&txn, alg, KeyState::Active, now).await?.kid,
            });
        }
        txn.commit().await?;
        audit::record(
            &self.store,
            now,
            Event::new("signing_key_revoked").actor(self.actor).details(
                json!({"kid": kid, "alg": alg.as_str(), "was": was.as_str(), "replacement": replacement}),
            ),
        )
        .await;
        Ok(Revoked {
            kid: kid.into(),
            alg,
            was,
            replacement,
        })
    }

    /// Re-seals every stored private key under `new` (KEK rotation); returns how many. All or none:
    /// one transaction, and every key must open under the current KEK first.
    pub async fn rekey(&self, new: &Kek, now: i64) -> Result<usize, KeysError> {
        let txn = self.store.lock_keys().await?;
        let rows = txn.keys().await?;
        let mut n = 0;
        for r in rows
            .iter()
            .filter(|r| r.state != KeyState::Removed.as_str())
        {
            let alg = Alg::parse(&r.alg).ok_or_else(|| KeysError::Corrupt(r.kid.clone()))?;
            let aad = aad(&r.kid, alg);
            let pkcs8 = self
                .kek
                .open(&aad, &r.sealed_private_key)
                .map_err(|_| KeysError::WrongKek(r.kid.clone()))?;
            let sealed = new.seal(&aad, &pkcs8).map_err(|source| KeysError::Seal {
                kid: r.kid.clone(),
                source,
            })?;
            txn.reseal(&r.kid, &sealed).await?;
            n += 1;
        }
        txn.commit().await?;
        audit::record(
            &self.store,
            now,
            Event::new("kek_rotated")
                .actor(self.actor)
                .details(json!({"keys": n})),
        )
        .await;
        Ok(n)
    }
}

fn infos(rows: &[KeyRow]) -> Vec<KeyInfo> {
    rows.iter().filter_map(KeyInfo::from_row).collect()
}

/// A replica's key upkeep: the schedule's changes, then its keyring reloaded from the database.
pub struct KeyService {
    admin: KeyAdmin,
    ring: Arc<Keyring>,
    clock: Arc<dyn Clock>,
    every: Duration,
}

impl KeyService {
    pub fn new(admin: KeyAdmin, ring: Arc<Keyring>, clock: Arc<dyn Clock>) -> KeyService {
        let every = Duration::from_secs(admin.settings.raw.keys_refresh_secs.max(1));
        KeyService {
            admin,
            ring,
            clock,
            every,
        }
    }

    pub fn admin(&self) -> &KeyAdmin {
        &self.admin
    }

    /// Re-reads the keys; true when the signing keys or the JWKS changed.
    pub async fn reload(&self) -> Result<bool, KeysError> {
        self.ring.reload(&self.admin.store, &self.admin.kek).await
    }

    /// One round: the changes due now, then a reload (also when the changes failed: another replica
    /// may have made them).
    pub async fn maintain(&self) -> Result<Vec<Step>, KeysError> {
        let due = self.admin.apply_due(self.clock.now()).await;
        let reloaded = self.reload().await;
        if let Ok(true) = reloaded {
            tracing::info!("signing keys reloaded");
        }
        let steps = due?;
        reloaded?;
        Ok(steps)
    }

    /// Runs `maintain` every `keys_refresh_secs` until the runtime stops. A failed round is logged and
    /// the current keys stay in use.
    pub fn spawn(self: Arc<Self>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(self.every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            // The first tick is immediate; start-up has just loaded the keys.
            tick.tick().await;
            loop {
                tick.tick().await;
                if let Err(e) = self.maintain().await {
                    tracing::warn!(error = %e, "signing-key upkeep failed; keeping the current keys");
                }
            }
        })
    }
}
