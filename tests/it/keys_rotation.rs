//! Key rotation end to end, with custos-verify as the resource server: a token signed before a
//! rotation keeps validating until it expires, the new key's tokens validate without restarting
//! anything, a revoked key's tokens fail, a burst of unknown `kid`s costs one JWKS fetch; replicas
//! share one rotation and notice changes without a restart; the CLI's `keys` commands.

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use custos::clients::NewClient;
use custos::clock::Clock;
use custos::config::{Alg, SecretString};
use custos::keys::lifecycle::{self, Step};
use custos::keys::seal::Kek;
use custos::keys::{KeyState, KeysError};
use custos_verify::{Verifier, VerifyError};
use serde_json::Value;

use crate::support::{T0, TestApp, TestClient, fresh_database};

// The example resource API, served as it is.
#[allow(dead_code)]
#[path = "../../custos-verify/examples/resource_api.rs"]
mod resource_api;

const API: &str = "https://api.example.com";
const DAY: i64 = 86_400;

async fn api_client(app: &TestApp) -> TestClient {
    app.client(NewClient {
        name: "api caller".into(),
        scopes: vec!["items:read".into(), "items:write".into()],
        default_scopes: Some(vec!["items:read".into()]),
        resources: vec![API.into()],
        ..Default::default()
    })
    .await
}

async fn token(app: &TestApp, c: &TestClient) -> String {
    let r = app
        .post_form(
            "/token",
            &[("grant_type", "client_credentials"), ("resource", API)],
            Some((&c.id, &c.secret)),
        )
        .await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    v["access_token"].as_str().unwrap().to_string()
}

fn part(token: &str, i: usize) -> Value {
    let p = token.split('.').nth(i).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).unwrap()).unwrap()
}

fn kid(token: &str) -> String {
    part(token, 0)["kid"].as_str().unwrap().to_string()
}

async fn jwks_kids(app: &TestApp) -> Vec<String> {
    let v: Value = app
        .http
        .get(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_string())
        .collect()
}

async fn introspect_active(app: &TestApp, c: &TestClient, token: &str) -> bool {
    let r = app
        .post_form("/introspect", &[("token", token)], Some((&c.id, &c.secret)))
        .await;
    assert_eq!(r.status(), 200);
    r.json::<Value>().await.unwrap()["active"] == true
}

async fn active_kid(app: &TestApp, alg: Alg) -> String {
    app.state.signer.active_key(alg).unwrap().kid().to_string()
}

/// Serves `app`'s JWKS (with its Cache-Control) from another address and counts the requests.
struct JwksCounter {
    url: url::Url,
    fetches: Arc<AtomicUsize>,
}

impl JwksCounter {
    async fn start(app: &TestApp) -> JwksCounter {
        let upstream = app.url("/.well-known/jwks.json");
        let fetches = Arc::new(AtomicUsize::new(0));
        let count = fetches.clone();
        let http = reqwest::Client::new();
        let route = axum::routing::get(move || {
            count.fetch_add(1, Ordering::SeqCst);
            let (http, upstream) = (http.clone(), upstream.clone());
            async move {
                let r = http.get(upstream).send().await.unwrap();
                let cc = r.headers()[CACHE_CONTROL].clone();
                let body = r.bytes().await.unwrap();
                (
                    [
                        (CACHE_CONTROL, cc),
                        (CONTENT_TYPE, "application/json".parse().unwrap()),
                    ],
                    body,
                )
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, axum::Router::new().route("/jwks", route)).await;
        });
        JwksCounter {
            url: format!("http://{addr}/jwks").parse().unwrap(),
            fetches,
        }
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }

    /// A resource server's verifier for `app`, on `app`'s clock, fetching through this counter.
    async fn verifier(&self, app: &TestApp) -> Verifier {
        let clock = app.clock.clone();
        Verifier::builder(&app.base, API)
            .jwks_uri(self.url.clone())
            .clock(move || clock.now())
            .build()
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn a_rotation_breaks_no_token_and_needs_no_restart() {
    let app = TestApp::builder().fresh_keys().start().await;
    let client = api_client(&app).await;
    let jwks = JwksCounter::start(&app).await;
    let kit = jwks.verifier(&app).await;
    assert_eq!(jwks.fetches(), 1);
    let before = token(&app, &client).await;
    let old_kid = kid(&before);
    assert_eq!(kit.verify(&before).await.unwrap().sub, client.id);

    // A new key is published, and nothing signs with it yet.
    let admin = app.state.keys.admin();
    let lead = lifecycle::publish_lead(&app.state.settings);
    assert_eq!(lead, 300 + 30 + 60, "max-age + refresh + skew");
    let rotated = admin.rotate(&[Alg::ES256], T0).await.unwrap();
    assert!(rotated[0].created);
    assert_eq!(rotated[0].activates_at, T0 + lead);
    let new_kid = rotated[0].kid.clone();
    // Asking again reports the waiting key instead of making another.
    let again = admin.rotate(&[Alg::ES256], T0).await.unwrap();
    assert_eq!((again[0].created, &again[0].kid), (false, &new_kid));
    assert!(app.state.keys.maintain().await.unwrap().is_empty());
    let kids = jwks_kids(&app).await;
    assert!(
        kids.contains(&new_kid) && kids.contains(&old_kid),
        "{kids:?}"
    );
    assert_eq!(kid(&token(&app, &client).await), old_kid);

    // It signs once it has been published for the lead, not a second sooner.
    app.clock.advance(lead - 1);
    assert!(app.state.keys.maintain().await.unwrap().is_empty());
    assert_eq!(kid(&token(&app, &client).await), old_kid);
    app.clock.advance(1);
    let steps = app.state.keys.maintain().await.unwrap();
    assert_eq!(
        steps,
        vec![
            Step::Activate {
                kid: new_kid.clone(),
                alg: Alg::ES256
            },
            Step::Retire {
                kid: old_kid.clone(),
                alg: Alg::ES256
            },
        ]
    );
    let after = token(&app, &client).await;
    assert_eq!(kid(&after), new_kid);

    // The same verifier takes both: its JWKS copy expired (max-age 300 < lead) and the fresh one has
    // the new key; the old key is retired but still published.
    assert_eq!(kit.verify(&after).await.unwrap().kid, new_kid);
    assert_eq!(kit.verify(&before).await.unwrap().kid, old_kid);
    assert!(introspect_active(&app, &client, &before).await);
    assert_eq!(jwks.fetches(), 2);

    // The old token is good until it expires, like any other.
    let exp = part(&before, 1)["exp"].as_i64().unwrap();
    app.clock.set(exp - 31);
    assert!(kit.verify(&before).await.is_ok());
    app.clock.set(exp + 30);
    assert_eq!(kit.verify(&before).await.unwrap_err(), VerifyError::Expired);

    // The retired key leaves the JWKS once every token it signed has expired.
    let hold = admin.policy().await.unwrap().retire_hold;
    assert_eq!(hold, 900 + 30 + 60, "token lifetime + refresh + skew");
    app.clock.set(T0 + lead + hold - 1);
    assert!(app.state.keys.maintain().await.unwrap().is_empty());
    app.clock.advance(1);
    assert_eq!(
        app.state.keys.maintain().await.unwrap(),
        vec![Step::Remove {
            kid: old_kid.clone(),
            alg: Alg::ES256
        }]
    );
    assert!(!jwks_kids(&app).await.contains(&old_kid));
    let rows = app.state.store.keys().await.unwrap();
    let old = rows.iter().find(|r| r.kid == old_kid).unwrap();
    assert_eq!(old.state, "removed");
    assert_eq!(old.removed_at, Some(T0 + lead + hold));
    assert!(
        old.sealed_private_key.is_empty(),
        "a removed key's private half is erased"
    );
    let events: Vec<String> = app
        .state
        .store
        .audit_events(50)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    for kind in [
        "signing_key_published",
        "signing_key_activated",
        "signing_key_retired",
        "signing_key_removed",
    ] {
        assert!(events.iter().any(|e| e == kind), "{kind}: {events:?}");
    }
}

#[tokio::test]
async fn a_revoked_key_stops_validating_everywhere() {
    let app = TestApp::builder().fresh_keys().start().await;
    let client = api_client(&app).await;
    let jwks = JwksCounter::start(&app).await;
    let kit = jwks.verifier(&app).await;
    let t1 = token(&app, &client).await;
    let k1 = kid(&t1);
    assert!(introspect_active(&app, &client, &t1).await);
    assert!(kit.verify(&t1).await.is_ok());

    let admin = app.state.keys.admin();
    let r = admin.revoke(&k1, T0).await.unwrap();
    assert_eq!((r.alg, r.was), (Alg::ES256, KeyState::Active));
    let k2 = r.replacement.clone().expect("a replacement signs at once");
    assert_ne!(k2, k1);
    assert!(matches!(
        admin.revoke(&k1, T0).await.unwrap_err(),
        KeysError::AlreadyRemoved(_)
    ));
    assert!(matches!(
        admin.revoke("no-such-kid", T0).await.unwrap_err(),
        KeysError::UnknownKid(_)
    ));

    // This replica notices at its next refresh.
    app.state.keys.maintain().await.unwrap();
    let kids = jwks_kids(&app).await;
    assert!(!kids.contains(&k1) && kids.contains(&k2), "{kids:?}");
    assert_eq!(active_kid(&app, Alg::ES256).await, k2);
    assert!(!introspect_active(&app, &client, &t1).await);
    let t2 = token(&app, &client).await;
    assert_eq!(kid(&t2), k2);

    // The resource server holds the JWKS for its max-age (the documented bound), then drops the key.
    assert!(kit.verify(&t1).await.is_ok());
    app.clock.advance(300);
    assert_eq!(kit.verify(&t1).await.unwrap_err(), VerifyError::UnknownKey);
    assert_eq!(kit.verify(&t2).await.unwrap().kid, k2);
}

async fn get_items(base: &str, token: &str, n: usize) -> Vec<u16> {
    let http = reqwest::Client::new();
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..n {
        let req = http.get(format!("{base}/items")).bearer_auth(token);
        set.spawn(async move { req.send().await.unwrap().status().as_u16() });
    }
    let mut out = Vec::new();
    while let Some(s) = set.join_next().await {
        out.push(s.unwrap());
    }
    out
}

#[tokio::test]
async fn a_burst_of_tokens_with_a_new_kid_makes_one_jwks_fetch() {
    let app = TestApp::builder().fresh_keys().start().await;
    let client = api_client(&app).await;
    let jwks = JwksCounter::start(&app).await;
    let kit = jwks.verifier(&app).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = format!("http://{}", listener.local_addr().unwrap());
    let router = resource_api::router(kit.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    let t1 = token(&app, &client).await;
    assert_eq!(get_items(&api, &t1, 1).await, [200]);
    assert_eq!(jwks.fetches(), 1);

    // A compromised key is replaced at once: the resource server has never seen the new kid.
    let old = kid(&t1);
    app.state.keys.admin().revoke(&old, T0).await.unwrap();
    app.state.keys.maintain().await.unwrap();
    // Past the kit's minimum interval between fetches (10 s), not past its JWKS max-age (300 s).
    app.clock.advance(11);
    let t2 = token(&app, &client).await;
    assert!(!kit.knows_kid(&kid(&t2)));
    let statuses = get_items(&api, &t2, 100).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(jwks.fetches(), 2, "100 requests, one fetch");

    // A kid nobody published: inside the minimum interval no fetch at all, after it one per burst.
    let mut header = part(&t2, 0);
    header["kid"] = "no-such-key".into();
    let rest: Vec<&str> = t2.splitn(2, '.').collect();
    let forged = format!("{}.{}", URL_SAFE_NO_PAD.encode(header.to_string()), rest[1]);
    let statuses = get_items(&api, &forged, 100).await;
    assert!(statuses.iter().all(|s| *s == 401), "{statuses:?}");
    assert_eq!(jwks.fetches(), 2);
    app.clock.advance(11);
    let statuses = get_items(&api, &forged, 100).await;
    assert!(statuses.iter().all(|s| *s == 401), "{statuses:?}");
    assert_eq!(jwks.fetches(), 3);
    let r = reqwest::Client::new()
        .get(format!("{api}/items"))
        .bearer_auth(&forged)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers()["www-authenticate"],
        "Bearer error=\"invalid_token\", error_description=\"the access token was not signed by a key of the issuer\""
    );
    // Scope checks: items:write is not in this token.
    let r = reqwest::Client::new()
        .post(format!("{api}/items"))
        .bearer_auth(&t2)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
}

/// A database two replicas can share: a fresh Postgres one in the backend run, else a SQLite file.
async fn shared_database(dir: &Path) -> String {
    match fresh_database().await {
        Some(url) => url,
        None => format!("sqlite://{}/custos.db?mode=rwc", dir.display()),
    }
}

#[tokio::test]
async fn replicas_share_one_rotation_and_notice_changes_without_restart() {
    let dir = tempfile::tempdir().unwrap();
    let db = shared_database(dir.path()).await;
    let kek = Kek::generate().unwrap().to_base64().to_string();
    let shared = |c: &mut custos::config::Config| {
        c.kek = Some(SecretString(kek.clone()));
        c.database_url = SecretString(db.clone());
        c.keys_refresh_secs = 1;
    };
    let a = TestApp::builder()
        .fresh_keys()
        .with_config(shared)
        .start()
        .await;
    let issuer = a.base.clone();
    let b = TestApp::builder()
        .fresh_keys()
        .with_config(|c| {
            shared(c);
            c.issuer = issuer;
        })
        .start()
        .await;
    assert_eq!(
        active_kid(&a, Alg::ES256).await,
        active_kid(&b, Alg::ES256).await
    );

    // Both replicas find the scheduled rotation due at the same moment: one set of keys is made.
    let due = T0 + 30 * DAY - lifecycle::publish_lead(&a.state.settings);
    a.clock.set(due);
    b.clock.set(due);
    let (ra, rb) = tokio::join!(
        a.state.keys.admin().apply_due(due),
        b.state.keys.admin().apply_due(due)
    );
    let made = ra.unwrap().len() + rb.unwrap().len();
    assert_eq!(made, 3, "one next key per algorithm, not one per replica");
    let rows = a.state.store.keys().await.unwrap();
    assert_eq!(rows.iter().filter(|r| r.state == "next").count(), 3);

    // A change made through one replica reaches the other through its own refresh task.
    let upkeep = b.state.keys.clone().spawn();
    let es = active_kid(&a, Alg::ES256).await;
    let r = a.state.keys.admin().revoke(&es, due).await.unwrap();
    let replacement = r.replacement.unwrap();
    let mut seen = false;
    for _ in 0..100 {
        if !jwks_kids(&b).await.contains(&es) {
            seen = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    upkeep.abort();
    assert!(seen, "replica b still publishes the revoked key");
    assert_eq!(active_kid(&b, Alg::ES256).await, replacement);
}

const BIN: &str = env!("CARGO_BIN_EXE_custos");

fn custos(dir: &Path, db: &str, kek: &str, args: &[&str]) -> Output {
    Command::new(BIN)
        .env_clear()
        .current_dir(dir)
        .env("CUSTOS_DATABASE_URL", db)
        .env("CUSTOS_KEK", kek)
        .env("CUSTOS_LOG_LEVEL", "warn")
        .args(args)
        .output()
        .unwrap()
}

fn json_out(o: &Output) -> Value {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap()
}

#[tokio::test]
async fn keys_commands_rotate_revoke_and_reseal() {
    let dir = tempfile::tempdir().unwrap();
    let db = shared_database(dir.path()).await;
    let kek = Kek::generate().unwrap().to_base64().to_string();

    let out = json_out(&custos(
        dir.path(),
        &db,
        &kek,
        &["keys", "rotate", "--json"],
    ));
    let list = out.as_array().unwrap();
    assert_eq!(list.len(), 3);
    assert!(list.iter().all(|k| k["created"] == true));
    let es = list.iter().find(|k| k["alg"] == "ES256").unwrap()["kid"]
        .as_str()
        .unwrap()
        .to_string();
    let again = json_out(&custos(
        dir.path(),
        &db,
        &kek,
        &["keys", "rotate", "--alg", "ES256", "--json"],
    ));
    assert_eq!(again[0]["created"], false);
    assert_eq!(again[0]["kid"], es.as_str());
    let bad = custos(dir.path(), &db, &kek, &["keys", "rotate", "--alg", "HS256"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--alg: `HS256`"));

    let revoked = json_out(&custos(
        dir.path(),
        &db,
        &kek,
        &["keys", "revoke", &es, "--json"],
    ));
    assert_eq!(revoked["was"], "next");
    assert_eq!(revoked["replacement"], Value::Null);
    let twice = custos(dir.path(), &db, &kek, &["keys", "revoke", &es]);
    assert_eq!(twice.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&twice.stderr).contains("already removed"));
    let listed = json_out(&custos(dir.path(), &db, &kek, &["keys", "list", "--json"]));
    let row = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == es.as_str())
        .unwrap()
        .clone();
    assert_eq!(row["state"], "removed");
    assert!(row["removed_at"].is_string());

    // KEK rotation: every key re-sealed; from then on only the new KEK may add keys.
    let new_kek = Kek::generate().unwrap().to_base64().to_string();
    let file = dir.path().join("new-kek");
    std::fs::write(&file, format!("{new_kek}\n")).unwrap();
    let rekey = custos(
        dir.path(),
        &db,
        &kek,
        &[
            "keys",
            "rekey-kek",
            "--new-kek-file",
            file.to_str().unwrap(),
        ],
    );
    assert!(
        rekey.status.success(),
        "{}",
        String::from_utf8_lossy(&rekey.stderr)
    );
    assert!(String::from_utf8_lossy(&rekey.stderr).contains("re-sealed 2 signing keys"));
    let stale = custos(dir.path(), &db, &kek, &["keys", "rotate", "--alg", "ES256"]);
    assert_eq!(stale.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&stale.stderr).contains("this KEK cannot open"),
        "{}",
        String::from_utf8_lossy(&stale.stderr)
    );
    let fresh = json_out(&custos(
        dir.path(),
        &db,
        &new_kek,
        &["keys", "rotate", "--alg", "ES256", "--json"],
    ));
    assert_eq!(fresh[0]["created"], true);
    let missing = custos(dir.path(), &db, &new_kek, &["keys", "rekey-kek"]);
    assert_eq!(missing.status.code(), Some(2));
}
