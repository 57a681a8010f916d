//! Two Custos instances sharing one Postgres and one Redis, as replicas behind a load balancer: what
//! one starts, the other finishes. Needs CUSTOS_TEST_DATABASE_URL and CUSTOS_TEST_REDIS_URL.

use custos::clients::NewClient;
use custos::config::SecretString;
use serde_json::Value;

use crate::browser::{Browser, PASSWORD, REDIRECT, user, web_client};
use crate::support::{TestApp, TestClient, fresh_database, skip_or_fail, test_redis};

async fn pair() -> Option<(TestApp, TestApp)> {
    let (Some(db), Some((redis, prefix))) = (fresh_database().await, test_redis()) else {
        skip_or_fail(
            "multi-replica tests: need Postgres and Redis (CUSTOS_TEST_DATABASE_URL, CUSTOS_TEST_REDIS_URL)",
        );
        return None;
    };
    // Replicas share the database, Redis and the KEK.
    let kek = custos::keys::seal::Kek::generate()
        .unwrap()
        .to_base64()
        .to_string();
    let shared = |c: &mut custos::config::Config| {
        c.kek = Some(SecretString(kek.clone()));
        c.database_url = SecretString(db.clone());
        c.redis_url = Some(SecretString(redis.clone()));
        c.redis_prefix = prefix.clone();
    };
    let a = TestApp::builder().with_config(shared).start().await;
    let issuer = a.base.clone();
    let b = TestApp::builder()
        .with_config(|c| {
            shared(c);
            c.issuer = issuer;
        })
        .start()
        .await;
    Some((a, b))
}

/// Signs in at `at` and returns a code for the client.
async fn code_at(at: &TestApp, browser: &Browser, client: &str) -> (String, String) {
    let verifier = format!("{}{}", "r".repeat(43), uuid::Uuid::new_v4().simple());
    let challenge = custos::oauth::pkce::s256(&verifier);
    let url = reqwest::Url::parse_with_params(
        &at.url("/authorize"),
        &[
            ("response_type", "code"),
            ("client_id", client),
            ("redirect_uri", REDIRECT),
            ("scope", "openid offline_access"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ],
    )
    .unwrap();
    let mut landing = Browser {
        http: browser.http.clone(),
        base: at.base.clone(),
    }
    .get(url.as_str())
    .await;
    if landing.is_login_page() {
        landing = Browser {
            http: browser.http.clone(),
            base: at.base.clone(),
        }
        .login(&landing, "ada@example.com", PASSWORD)
        .await;
    }
    (
        landing
            .param("code")
            .unwrap_or_else(|| panic!("no code: {landing:?}")),
        verifier,
    )
}

async fn redeem_at(at: &TestApp, c: &TestClient, code: &str, verifier: &str) -> reqwest::Response {
    at.post_form(
        "/token",
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", verifier),
        ],
        Some((&c.id, &c.secret)),
    )
    .await
}

fn first_party(grace: u64) -> NewClient {
    NewClient {
        skip_consent: true,
        refresh_reuse_grace_secs: grace,
        ..web_client(false)
    }
}

#[tokio::test]
async fn a_code_from_one_replica_is_redeemed_at_the_other_and_sessions_are_shared() {
    let Some((a, b)) = pair().await else { return };
    let c = a.client(first_party(0)).await;
    user(&a, "ada@example.com").await;
    let browser = Browser::new(&a);
    // Sign in at A; redeem at B.
    let (code, verifier) = code_at(&a, &browser, &c.id).await;
    let r = redeem_at(&b, &c, &code, &verifier).await;
    assert_eq!(r.status(), 200, "{:?}", r.text().await);
    // The session cookie from A is honoured by B: no login page there.
    let (code, verifier) = code_at(&b, &browser, &c.id).await;
    assert_eq!(redeem_at(&a, &c, &code, &verifier).await.status(), 200);
}

async fn refresh_storm(a: &TestApp, b: &TestApp, c: &TestClient, rt: &str) -> Vec<(u16, Value)> {
    let mut handles = Vec::new();
    for i in 0..50 {
        let at = if i % 2 == 0 { a } else { b };
        let (http, url, rt, id, secret) = (
            at.http.clone(),
            at.url("/token"),
            rt.to_string(),
            c.id.clone(),
            c.secret.clone(),
        );
        handles.push(tokio::spawn(async move {
            let r = http
                .post(url)
                .basic_auth(id, Some(secret))
                .form(&[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", rt.as_str()),
                ])
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }));
    }
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

#[tokio::test]
async fn fifty_concurrent_refreshes_across_replicas_strict_and_with_grace() {
    let Some((a, b)) = pair().await else { return };
    user(&a, "ada@example.com").await;
    let browser = Browser::new(&a);

    // Strict client: exactly one success, then the family is revoked (the winner's token too).
    let strict = a.client(first_party(0)).await;
    let (code, verifier) = code_at(&a, &browser, &strict.id).await;
    let t: Value = redeem_at(&b, &strict, &code, &verifier)
        .await
        .json()
        .await
        .unwrap();
    let results = refresh_storm(&a, &b, &strict, t["refresh_token"].as_str().unwrap()).await;
    let winners: Vec<&Value> = results
        .iter()
        .filter(|(s, _)| *s == 200)
        .map(|(_, v)| v)
        .collect();
    assert_eq!(
        winners.len(),
        1,
        "exactly one of 50 succeeds: {:?}",
        results.iter().map(|r| r.0).collect::<Vec<_>>()
    );
    assert!(
        results
            .iter()
            .filter(|(s, _)| *s != 200)
            .all(|(s, v)| *s == 400 && v["error"] == "invalid_grant")
    );
    let successor = winners[0]["refresh_token"].as_str().unwrap();
    let r = a
        .post_form(
            "/token",
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", successor),
            ],
            Some((&strict.id, &strict.secret)),
        )
        .await;
    assert_eq!(r.status(), 400, "the family is revoked after the reuse");

    // With a grace window, all 50 get the same successor and the family lives on.
    let lenient = a.client(first_party(5)).await;
    let (code, verifier) = code_at(&a, &browser, &lenient.id).await;
    let t: Value = redeem_at(&a, &lenient, &code, &verifier)
        .await
        .json()
        .await
        .unwrap();
    let results = refresh_storm(&a, &b, &lenient, t["refresh_token"].as_str().unwrap()).await;
    assert!(
        results.iter().all(|(s, _)| *s == 200),
        "{:?}",
        results
            .iter()
            .map(|r| (r.0, r.1["error"].clone()))
            .collect::<Vec<_>>()
    );
    let first = results[0].1["refresh_token"].as_str().unwrap().to_string();
    assert!(
        results
            .iter()
            .all(|(_, v)| v["refresh_token"] == first.as_str()),
        "one successor for all"
    );
    let r = b
        .post_form(
            "/token",
            &[("grant_type", "refresh_token"), ("refresh_token", &first)],
            Some((&lenient.id, &lenient.secret)),
        )
        .await;
    assert_eq!(r.status(), 200, "the successor works");
}

#[tokio::test]
async fn replicas_starting_together_on_an_empty_database_agree_on_one_key_set() {
    let (Some(db), Some((redis, prefix))) = (fresh_database().await, test_redis()) else {
        skip_or_fail("concurrent start-up test: need Postgres and Redis");
        return;
    };
    let kek = custos::keys::seal::Kek::generate()
        .unwrap()
        .to_base64()
        .to_string();
    let builder = || {
        TestApp::builder().fresh_keys().with_config(|c| {
            c.kek = Some(SecretString(kek.clone()));
            c.database_url = SecretString(db.clone());
            c.redis_url = Some(SecretString(redis.clone()));
            c.redis_prefix = prefix.clone();
        })
    };
    // Both migrate and generate their first keys at the same moment: the advisory lock serialises them.
    let (a, b) = tokio::join!(builder().start(), builder().start());
    let jwks = |app: &TestApp| {
        let (http, url) = (app.http.clone(), app.url("/.well-known/jwks.json"));
        async move {
            http.get(url)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    let (ja, jb) = (jwks(&a).await, jwks(&b).await);
    assert_eq!(
        ja["keys"].as_array().unwrap().len(),
        3,
        "one key per algorithm, not one per replica: {ja}"
    );
    assert_eq!(ja, jb);
}
