//! Refresh-token families in the store: rotation, reuse detection, the grace window, expiry, revocation
//! and concurrent rotation (on the default backend, and on a SQLite file with several connections).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use custos::clock::Clock;
use custos::config::SecretString;
use custos::keys::seal::Kek;
use custos::store::{
    NewRefreshFamily, REFRESH_TOKEN_PREFIX, RefreshFamily, RotateRequest, Rotation, Store, User,
};
use sea_orm::{ConnectionTrait, Statement};

use crate::support::{T0, TestApp};

const DAY: u64 = 24 * 3600;

struct Fixture {
    user: String,
    client: String,
    other_client: String,
    kek: Arc<Kek>,
}

async fn fixture(app: &TestApp) -> Fixture {
    let user = uuid::Uuid::new_v4().to_string();
    app.state
        .store
        .insert_user(&User {
            id: user.clone(),
            email: format!("{user}@example.com"),
            email_verified: true,
            name: "Ada".into(),
            password_hash: None,
            disabled: false,
            created_at: T0,
            updated_at: T0,
        })
        .await
        .unwrap();
    Fixture {
        user,
        client: app.service_client().await.id,
        other_client: app.service_client().await.id,
        kek: Arc::new(Kek::generate().unwrap()),
    }
}

fn scope(s: &[&str]) -> Vec<String> {
    s.iter().map(|x| x.to_string()).collect()
}

impl Fixture {
    fn family(&self, now: i64, absolute: u64, idle: u64) -> NewRefreshFamily {
        NewRefreshFamily {
            user_id: self.user.clone(),
            client_id: self.client.clone(),
            scope: scope(&["openid", "read", "write"]),
            session_id: None,
            auth_time: Some(now),
            now,
            absolute_ttl_secs: absolute,
            idle_ttl_secs: idle,
        }
    }

    async fn rotate(&self, store: &Store, token: &str, now: i64, grace: u64) -> Rotation {
        self.rotate_as(store, token, &self.client, None, now, grace)
            .await
    }

    async fn rotate_as(
        &self,
        store: &Store,
        token: &str,
        client: &str,
        asked: Option<&[String]>,
        now: i64,
        grace: u64,
    ) -> Rotation {
        let req = RotateRequest {
            token,
            client_id: client,
            scope: asked,
            now,
            idle_ttl_secs: 7 * DAY,
            grace_secs: grace,
        };
        store.rotate(req, &self.kek).await.unwrap()
    }
}

fn rotated(r: Rotation) -> (String, Vec<String>) {
    match r {
        Rotation::Rotated(i) => (i.token.as_str().to_string(), i.scope),
        other => panic!("expected Rotated, got {other:?}"),
    }
}

fn is_invalid(r: &Rotation) -> bool {
    matches!(r, Rotation::Invalid)
}

async fn family_of(store: &Store, id: &str) -> RefreshFamily {
    store.refresh_family(id).await.unwrap().unwrap()
}

#[tokio::test]
async fn rotation_then_reuse_revokes_the_family() {
    let app = TestApp::start().await;
    let store = &app.state.store;
    let f = fixture(&app).await;
    let now = app.clock.now();
    let (family, t0) = store
        .create_family(f.family(now, 30 * DAY, 7 * DAY))
        .await
        .unwrap();
    assert!(t0.as_str().starts_with(REFRESH_TOKEN_PREFIX));
    assert_eq!(t0.as_str().len(), REFRESH_TOKEN_PREFIX.len() + 43);
    assert!(!format!("{t0:?}").contains(t0.as_str()));

    let (t1, s1) = rotated(f.rotate(store, t0.as_str(), now, 0).await);
    assert_ne!(t1, t0.as_str());
    assert_eq!(s1, family.scope);
    app.clock.advance(60);
    let (t2, _) = rotated(f.rotate(store, &t1, app.clock.now(), 0).await);

    // The first token comes back: the whole family goes.
    match f.rotate(store, t0.as_str(), app.clock.now(), 0).await {
        Rotation::Reused { family: fam } => {
            assert_eq!(fam.id, family.id);
            assert_eq!(fam.revoked_at, Some(app.clock.now()));
            assert_eq!(fam.revoked_reason.as_deref(), Some("reuse"));
        }
        other => panic!("expected Reused, got {other:?}"),
    }
    let fam = family_of(store, &family.id).await;
    assert_eq!(fam.revoked_reason.as_deref(), Some("reuse"));
    assert!(is_invalid(&f.rotate(store, &t2, app.clock.now(), 0).await));
    // A used token of a revoked family is still reported as reuse (every replay gets audited) and
    // keeps the first reason.
    assert!(matches!(
        f.rotate(store, &t1, app.clock.now(), 0).await,
        Rotation::Reused { .. }
    ));
    assert_eq!(family_of(store, &family.id).await.revoked_at, Some(T0 + 60));
    assert!(
        store
            .families_for_user(&f.user, app.clock.now())
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn other_clients_and_malformed_tokens_are_invalid() {
    let app = TestApp::start().await;
    let store = &app.state.store;
    let f = fixture(&app).await;
    let now = app.clock.now();
    let (family, t0) = store
        .create_family(f.family(now, 30 * DAY, 7 * DAY))
        .await
        .unwrap();

    let r = f
        .rotate_as(store, t0.as_str(), &f.other_client, None, now, 0)
        .await;
    assert!(is_invalid(&r), "{r:?}");
    let unknown = format!("{REFRESH_TOKEN_PREFIX}{}", "A".repeat(43));
    for bad in [
        "",
        "cst_rt_",
        "cst_rt_short",
        &unknown,
        &t0.as_str()[REFRESH_TOKEN_PREFIX.len()..],
        &format!("{}=", t0.as_str()),
    ] {
        assert!(is_invalid(&f.rotate(store, bad, now, 0).await), "{bad:?}");
    }
    // Nothing above used the token up or hurt the family.
    assert!(family_of(store, &family.id).await.revoked_at.is_none());
    let (t1, _) = rotated(f.rotate(store, t0.as_str(), now, 0).await);
    // Nor does another client presenting a used token revoke anything.
    let r = f
        .rotate_as(store, t0.as_str(), &f.other_client, None, now, 0)
        .await;
    assert!(is_invalid(&r), "{r:?}");
    assert!(family_of(store, &family.id).await.revoked_at.is_none());
    rotated(f.rotate(store, &t1, now, 0).await);
}

#[tokio::test]
async fn idle_and_absolute_expiry() {
    let app = TestApp::start().await;
    let store = &app.state.store;
    let f = fixture(&app).await;
    let start = app.clock.now();

    // Idle: each token lives 60 s unless rotated.
    let (_, t0) = store
        .create_family(f.family(start, 1000, 60))
        .await
        .unwrap();
    app.clock.advance(59);
    let req = |token, now| RotateRequest {
        token,
        client_id: &f.client,
        scope: None,
        now,
        idle_ttl_secs: 60,
        grace_secs: 0,
    };
    let (t1, _) = rotated(
        store
            .rotate(req(t0.as_str(), app.clock.now()), &f.kek)
            .await
            .unwrap(),
    );
    app.clock.advance(60);
    let r = store
        .rotate(req(&t1, app.clock.now()), &f.kek)
        .await
        .unwrap();
    assert!(is_invalid(&r), "idle-expired: {r:?}");

    // Absolute: the family dies at 100 s however often it is rotated; a token's idle expiry is capped.
    app.clock.set(start);
    let (family, t0) = store.create_family(f.family(start, 100, 60)).await.unwrap();
    assert_eq!(family.absolute_expires_at, start + 100);
    app.clock.set(start + 50);
    let (t1, _) = rotated(
        store
            .rotate(req(t0.as_str(), app.clock.now()), &f.kek)
            .await
            .unwrap(),
    );
    app.clock.set(start + 99);
    let (t2, _) = rotated(
        store
            .rotate(req(&t1, app.clock.now()), &f.kek)
            .await
            .unwrap(),
    );
    app.clock.set(start + 100);
    let r = store
        .rotate(req(&t2, app.clock.now()), &f.kek)
        .await
        .unwrap();
    assert!(is_invalid(&r), "absolutely expired: {r:?}");
    // Past its lifetime even a used token is just invalid: nothing left to protect.
    let r = store
        .rotate(req(&t1, app.clock.now()), &f.kek)
        .await
        .unwrap();
    assert!(is_invalid(&r), "{r:?}");
    assert!(family_of(store, &family.id).await.revoked_at.is_none());
}

#[tokio::test]
async fn scope_narrows_within_the_family() {
    let app = TestApp::start().await;
    let store = &app.state.store;
    let f = fixture(&app).await;
    let now = app.clock.now();
    let (_, t0) = store
        .create_family(f.family(now, 30 * DAY, 7 * DAY))
        .await
        .unwrap();
    let read = scope(&["read"]);
    let (t1, s) = rotated(
        f.rotate_as(store, t0.as_str(), &f.client, Some(&read), now, 0)
            .await,
    );
    assert_eq!(s, read);
    // Omitted: the scope originally granted (RFC 6749 §6), not the last narrowing.
    let (t2, s) = rotated(f.rotate(store, &t1, now, 0).await);
    assert_eq!(s, f.family(now, 30 * DAY, 7 * DAY).scope);
    // Anything beyond the family's grant is refused without using the token up.
    let admin = scope(&["read", "admin"]);
    let r = f
        .rotate_as(store, &t2, &f.client, Some(&admin), now, 0)
        .await;
    assert!(matches!(r, Rotation::InvalidScope), "{r:?}");
    // Back up to what was originally granted is allowed.
    let write = scope(&["openid", "write", "write"]);
    let (_, s) = rotated(
        f.rotate_as(store, &t2, &f.client, Some(&write), now, 0)
            .await,
    );
    assert_eq!(s, scope(&["openid", "write"]));
}

/// 50 rotations of one token at once: (outcomes, family id, the raced token).
async fn race(store: &Store, f: &Fixture, now: i64, grace: u64) -> (Vec<Rotation>, String, String) {
    let (family, t0) = store
        .create_family(f.family(now, 30 * DAY, 7 * DAY))
        .await
        .unwrap();
    let token = Arc::new(t0.as_str().to_string());
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let (store, kek, token, client) = (
            store.clone(),
            f.kek.clone(),
            token.clone(),
            f.client.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let req = RotateRequest {
                token: &token,
                client_id: &client,
                scope: None,
                now,
                idle_ttl_secs: 7 * DAY,
                grace_secs: grace,
            };
            store.rotate(req, &kek).await.unwrap()
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    (out, family.id, t0.as_str().to_string())
}

async fn race_without_grace(store: &Store, f: &Fixture, now: i64) {
    let (outcomes, family, _) = race(store, f, now, 0).await;
    let winners: Vec<String> = outcomes
        .iter()
        .filter_map(|r| match r {
            Rotation::Rotated(i) => Some(i.token.as_str().to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(winners.len(), 1, "{outcomes:?}");
    // Every loser is refused. Most see the used token (`Reused`); under READ COMMITTED a loser that
    // read the token before the winner committed but its family after another loser revoked it sees
    // `Invalid`. Both are `invalid_grant`; at least one loser must have detected the reuse.
    let reused = outcomes
        .iter()
        .filter(|r| matches!(r, Rotation::Reused { .. }))
        .count();
    let invalid = outcomes.iter().filter(|r| is_invalid(r)).count();
    assert_eq!(reused + invalid, 49, "{outcomes:?}");
    assert!(reused >= 1, "{outcomes:?}");
    assert_eq!(
        family_of(store, &family).await.revoked_reason.as_deref(),
        Some("reuse")
    );
    assert!(is_invalid(&f.rotate(store, &winners[0], now, 0).await));
}

async fn race_with_grace(app: &TestApp, f: &Fixture) {
    let store = &app.state.store;
    let start = app.clock.now();
    let (outcomes, family, t0) = race(store, f, start, 5).await;
    let mut rotated_n = 0;
    let mut tokens = Vec::new();
    for r in &outcomes {
        match r {
            Rotation::Rotated(i) => {
                rotated_n += 1;
                tokens.push(i.token.as_str().to_string());
            }
            Rotation::GraceReplay(i) => {
                assert_eq!(i.scope, scope(&["openid", "read", "write"]));
                assert_eq!(i.family.id, family);
                tokens.push(i.token.as_str().to_string());
            }
            other => panic!("expected Rotated or GraceReplay, got {other:?}"),
        }
    }
    assert_eq!(rotated_n, 1);
    assert_eq!(tokens.len(), 50);
    let successor = tokens[0].clone();
    assert!(
        tokens.iter().all(|t| *t == successor),
        "one successor for all"
    );
    assert!(family_of(store, &family).await.revoked_at.is_none());
    assert_eq!(rows_of(store, &family).await.len(), 2, "no second branch");

    // Still inside the window (4 s on): the same successor once more.
    app.clock.set(start + 4);
    match f.rotate(store, &t0, app.clock.now(), 5).await {
        Rotation::GraceReplay(i) => assert_eq!(i.token.as_str(), successor),
        other => panic!("expected GraceReplay, got {other:?}"),
    }
    // Past the window: reuse, the family is revoked and the successor dies with it.
    app.clock.set(start + 6);
    let r = f.rotate(store, &t0, app.clock.now(), 5).await;
    assert!(matches!(r, Rotation::Reused { .. }), "{r:?}");
    assert_eq!(
        family_of(store, &family).await.revoked_reason.as_deref(),
        Some("reuse")
    );
    assert!(is_invalid(
        &f.rotate(store, &successor, app.clock.now(), 5).await
    ));
    assert!(
        rows_of(store, &family).await.iter().all(|r| r.2.is_none()),
        "sealed copies cleared"
    );
    app.clock.set(start);
}

/// (token_hash, parent_hash, successor_sealed) of a family's rows, read straight from the table.
async fn rows_of(store: &Store, family: &str) -> Vec<(String, Option<String>, Option<String>)> {
    let db = store.connection();
    let backend = db.get_database_backend();
    let sql = match backend {
        sea_orm::DbBackend::Postgres => {
            "SELECT token_hash, parent_hash, successor_sealed FROM refresh_tokens WHERE family_id = $1"
        }
        _ => {
            "SELECT token_hash, parent_hash, successor_sealed FROM refresh_tokens WHERE family_id = ?"
        }
    };
    db.query_all_raw(Statement::from_sql_and_values(
        backend,
        sql,
        [family.into()],
    ))
    .await
    .unwrap()
    .iter()
    .map(|r| {
        (
            r.try_get::<String>("", "token_hash").unwrap(),
            r.try_get::<Option<String>>("", "parent_hash").unwrap(),
            r.try_get::<Option<String>>("", "successor_sealed").unwrap(),
        )
    })
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_rotations_without_grace_have_one_winner() {
    let app = TestApp::start().await;
    let f = fixture(&app).await;
    race_without_grace(&app.state.store, &f, app.clock.now()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_rotations_with_grace_share_one_successor() {
    let app = TestApp::start().await;
    let f = fixture(&app).await;
    race_with_grace(&app, &f).await;
}

fn sqlite_file_app(dir: &Path) -> crate::support::Builder {
    let db: PathBuf = dir.join("custos.db");
    TestApp::builder().with_config(move |c| {
        c.database_url = SecretString(format!("sqlite://{}?mode=rwc", db.display()));
    })
}

/// A SQLite file has a pool of several connections, so the rotations really overlap.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_rotations_on_a_sqlite_file() {
    let dir = tempfile::tempdir().unwrap();
    let app = sqlite_file_app(dir.path()).start().await;
    let f = fixture(&app).await;
    race_without_grace(&app.state.store, &f, app.clock.now()).await;
    race_with_grace(&app, &f).await;
}

#[tokio::test]
async fn using_the_successor_ends_the_grace_window() {
    let app = TestApp::start().await;
    let store = &app.state.store;
    let f = fixture(&app).await;
    let now = app.clock.now();
    let (family, t0) = store
        .create_family(f.family(now, 30 * DAY, 7 * DAY))
        .await
        .unwrap();
    let (t1, _) = rotated(f.rotate(store, t0.as_str(), now, 5).await);
    let sealed: Vec<_> = rows_of(store, &family.id)
        .await
        .into_iter()
        .filter_map(|r| r.2)
        .collect();
    assert_eq!(sealed.len(), 1);
    assert!(sealed[0].starts_with("v1."));
    assert!(!sealed[0].contains(&t1[REFRESH_TOKEN_PREFIX.len()..]));
    // The client moved on to t1: the grace copy goes, and t0 coming back now is reuse.
    let (_, _) = rotated(f.rotate(store, &t1, now + 1, 5).await);
    let r = f.rotate(store, t0.as_str(), now + 2, 5).await;
    assert!(matches!(r, Rotation::Reused { .. }), "{r:?}");
    assert!(
        rows_of(store, &family.id)
            .await
            .iter()
            .all(|r| r.2.is_none())
    );
}

#[tokio::test]
async fn the_grace_window_ends_at_used_at_plus_grace() {
    let app = TestApp::start().await;
    let store = &app.state.store;
    let f = fixture(&app).await;
    let now = app.clock.now();
    let (family, t0) = store
        .create_family(f.family(now, 30 * DAY, 7 * DAY))
        .await
        .unwrap();
    let (t1, _) = rotated(f.rotate(store, t0.as_str(), now, 5).await);
    match f.rotate(store, t0.as_str(), now + 4, 5).await {
        Rotation::GraceReplay(i) => assert_eq!(i.token.as_str(), t1),
        other => panic!("expected GraceReplay, got {other:?}"),
    }
    let r = f.rotate(store, t0.as_str(), now + 5, 5).await;
    assert!(matches!(r, Rotation::Reused { .. }), "{r:?}");
    assert!(family_of(store, &family.id).await.revoked_at.is_some());
}

#[tokio::test]
async fn stale_successors_are_cleared_and_grace_zero_stores_none() {
    let app = TestApp::start().await;
    let store = &app.state.store;
    let f = fixture(&app).await;
    let now = app.clock.now();
    let (a, ta) = store
        .create_family(f.family(now, 30 * DAY, 7 * DAY))
        .await
        .unwrap();
    let (b, tb) = store
        .create_family(f.family(now, 30 * DAY, 7 * DAY))
        .await
        .unwrap();
    rotated(f.rotate(store, ta.as_str(), now, 0).await);
    rotated(f.rotate(store, tb.as_str(), now, 5).await);
    assert!(rows_of(store, &a.id).await.iter().all(|r| r.2.is_none()));
    assert_eq!(store.clear_stale_successors(now + 4, 5).await.unwrap(), 0);
    assert_eq!(store.clear_stale_successors(now + 5, 5).await.unwrap(), 1);
    assert!(rows_of(store, &b.id).await.iter().all(|r| r.2.is_none()));
}

#[tokio::test]
async fn revocation_helpers() {
    let app = TestApp::start().await;
    let store = &app.state.store;
    let f = fixture(&app).await;
    let now = app.clock.now();
    let in_session = |sid: &str| NewRefreshFamily {
        session_id: Some(sid.to_string()),
        ..f.family(now, 30 * DAY, 7 * DAY)
    };

    // RFC 7009: only the owning client revokes, and a whole family goes.
    let (fam, t0) = store.create_family(in_session("s0")).await.unwrap();
    let (t1, _) = rotated(f.rotate(store, t0.as_str(), now, 0).await);
    assert!(!store.revoke_token(&t1, &f.other_client, now).await.unwrap());
    assert!(
        !store
            .revoke_token("cst_rt_nope", &f.client, now)
            .await
            .unwrap()
    );
    assert!(family_of(store, &fam.id).await.revoked_at.is_none());
    assert!(
        store
            .revoke_token(t0.as_str(), &f.client, now)
            .await
            .unwrap()
    );
    let fam = family_of(store, &fam.id).await;
    assert_eq!(fam.revoked_reason.as_deref(), Some("revoked"));
    assert!(is_invalid(&f.rotate(store, &t1, now, 0).await));
    assert!(!store.revoke_family(&fam.id, "again", now).await.unwrap());
    assert_eq!(
        family_of(store, &fam.id).await.revoked_reason.as_deref(),
        Some("revoked")
    );

    // Logout: every family of the session.
    let (s1a, _) = store.create_family(in_session("s1")).await.unwrap();
    let (s1b, _) = store.create_family(in_session("s1")).await.unwrap();
    let (s2, t2) = store.create_family(in_session("s2")).await.unwrap();
    let live: Vec<String> = store
        .families_for_user(&f.user, now)
        .await
        .unwrap()
        .into_iter()
        .map(|x| x.id)
        .collect();
    assert_eq!(live.len(), 3);
    assert!(live.contains(&s1a.id) && live.contains(&s1b.id) && live.contains(&s2.id));
    assert_eq!(
        store
            .revoke_families_for_session("s1", "logout", now)
            .await
            .unwrap(),
        2
    );
    let live = store.families_for_user(&f.user, now).await.unwrap();
    assert_eq!(live, vec![s2.clone()]);
    assert_eq!(
        family_of(store, &s1a.id).await.revoked_reason.as_deref(),
        Some("logout")
    );

    // Purge: only what is past its absolute lifetime, tokens included.
    let (short, _) = store.create_family(f.family(now, 10, 10)).await.unwrap();
    assert_eq!(store.purge_refresh_families(now + 9).await.unwrap(), 0);
    assert_eq!(store.purge_refresh_families(now + 10).await.unwrap(), 1);
    assert!(store.refresh_family(&short.id).await.unwrap().is_none());
    assert!(rows_of(store, &short.id).await.is_empty());

    // A deleted client takes its families along.
    assert!(store.delete_client(&f.client).await.unwrap());
    assert!(store.refresh_family(&s2.id).await.unwrap().is_none());
    assert!(rows_of(store, &s2.id).await.is_empty());
    assert!(is_invalid(&f.rotate(store, t2.as_str(), now, 0).await));
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn the_database_never_holds_a_refresh_token() {
    let dir = tempfile::tempdir().unwrap();
    let app = sqlite_file_app(dir.path()).start().await;
    let store = &app.state.store;
    let f = fixture(&app).await;
    let now = app.clock.now();
    let (_, t0) = store
        .create_family(f.family(now, 30 * DAY, 7 * DAY))
        .await
        .unwrap();
    let mut tokens = vec![t0.as_str().to_string()];
    for grace in [5, 5, 0, 5] {
        let (t, _) = rotated(f.rotate(store, tokens.last().unwrap(), now, grace).await);
        tokens.push(t);
    }
    // A grace replay of the last rotation leaves its sealed successor in place.
    assert!(matches!(
        f.rotate(store, &tokens[3], now, 5).await,
        Rotation::GraceReplay(_)
    ));
    store.connection().close_by_ref().await.unwrap();

    let mut all = Vec::new();
    for e in std::fs::read_dir(dir.path()).unwrap() {
        let p = e.unwrap().path();
        if p.is_file() {
            let bytes = std::fs::read(&p).unwrap();
            for t in &tokens {
                let body = &t[REFRESH_TOKEN_PREFIX.len()..];
                assert!(
                    !contains(&bytes, body.as_bytes()),
                    "a refresh token in {}",
                    p.display()
                );
            }
            all.extend(bytes);
        }
    }
    // What is there instead: the hashes.
    for t in &tokens {
        let hex: String = custos::store::SecretHash::of(t)
            .0
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert!(
            contains(&all, hex.as_bytes()),
            "the hash of each token is stored"
        );
    }
    assert!(!contains(&all, REFRESH_TOKEN_PREFIX.as_bytes()));
}

#[tokio::test]
async fn housekeeping_purges_expired_families_and_drops_old_grace_copies() {
    use custos::jobs::{Report, run_once};
    let app = TestApp::start().await;
    let store = &app.state.store;
    let f = fixture(&app).await;
    let now = app.clock.now();
    // One family that ends in an hour, one that lives on; each rotated once with a 300 s grace window.
    let (short, s0) = store
        .create_family(f.family(now, 3600, 3600))
        .await
        .unwrap();
    let (long, l0) = store
        .create_family(f.family(now, 30 * DAY, 7 * DAY))
        .await
        .unwrap();
    rotated(f.rotate(store, s0.as_str(), now, 300).await);
    let (l1, _) = rotated(f.rotate(store, l0.as_str(), now, 300).await);
    let sealed = |fam: String| async move {
        rows_of(store, &fam)
            .await
            .into_iter()
            .filter(|r| r.2.is_some())
            .count()
    };
    assert_eq!(sealed(long.id.clone()).await, 1);

    // Nothing is due yet: a pass removes nothing.
    app.clock.advance(299);
    assert_eq!(run_once(&app.state).await.unwrap(), Report::default());
    // The grace windows are over: the sealed copies go, the families stay.
    app.clock.advance(1);
    assert_eq!(
        run_once(&app.state).await.unwrap(),
        Report {
            refresh_families_purged: 0,
            sealed_successors_cleared: 2,
            sessions_purged: 0,
        }
    );
    assert_eq!(sealed(long.id.clone()).await, 0);
    // The live token still rotates.
    let (l2, _) = rotated(f.rotate(store, &l1, app.clock.now(), 300).await);
    // The short family reaches its absolute lifetime and is deleted with its tokens; the grace copy
    // of the rotation just above (at +300 s) is stale by now too.
    app.clock.set(now + 3600);
    assert_eq!(
        run_once(&app.state).await.unwrap(),
        Report {
            refresh_families_purged: 1,
            sealed_successors_cleared: 1,
            sessions_purged: 0,
        }
    );
    assert!(store.refresh_family(&short.id).await.unwrap().is_none());
    assert!(rows_of(store, &short.id).await.is_empty());
    assert!(store.refresh_family(&long.id).await.unwrap().is_some());
    rotated(f.rotate(store, &l2, app.clock.now(), 0).await);
}
