//! Backends going away for real (the connection cut at a proxy the test owns) and coming back.

use std::net::SocketAddr;
use std::time::Duration;

use custos::config::SecretString;

use crate::proxy::Proxy;
use crate::support::{TestApp, fresh_database, oauth_error, skip_or_fail, test_redis};

fn socket_of(url: &str) -> SocketAddr {
    let u = url::Url::parse(url).unwrap();
    let host = u.host_str().unwrap();
    let host = if host == "localhost" {
        "127.0.0.1"
    } else {
        host
    };
    format!("{host}:{}", u.port_or_known_default().unwrap_or(6379))
        .parse()
        .unwrap()
}

fn via(url: &str, proxy: SocketAddr) -> String {
    let mut u = url::Url::parse(url).unwrap();
    u.set_ip_host(proxy.ip()).unwrap();
    u.set_port(Some(proxy.port())).unwrap();
    u.to_string()
}

async fn ready(app: &TestApp) -> (u16, serde_json::Value) {
    let r = app.http.get(app.url("/health/ready")).send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

async fn eventually_ready(app: &TestApp) {
    for _ in 0..60 {
        if ready(app).await.0 == 200 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!(
        "not ready again after the backend came back: {:?}",
        ready(app).await
    );
}

#[tokio::test]
async fn redis_outage_is_reported_and_recovered_without_restart() {
    let Some((url, prefix)) = test_redis() else {
        skip_or_fail("Redis fault test: no Redis (CUSTOS_TEST_REDIS_URL unset)");
        return;
    };
    let proxy = Proxy::start(socket_of(&url)).await;
    let proxied = via(&url, proxy.addr);
    let app = TestApp::builder()
        .with_config(|c| {
            c.redis_url = Some(SecretString(proxied));
            c.redis_prefix = prefix;
        })
        .start()
        .await;
    let c = app.service_client().await;
    assert_eq!(ready(&app).await.0, 200);

    proxy.cut().await;
    let (status, body) = ready(&app).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["checks"]["ephemeral_store"], "unavailable");
    assert_eq!(body["checks"]["database"], "ok");
    // Sign-in needs the ephemeral store: a clear temporarily_unavailable at the client, never a 500.
    let web = app.client(crate::browser::web_client(false)).await;
    let url = reqwest::Url::parse_with_params(
        &app.url("/authorize"),
        &[
            ("response_type", "code"),
            ("client_id", web.id.as_str()),
            ("redirect_uri", crate::browser::REDIRECT),
            ("state", "s"),
            ("code_challenge", &"c".repeat(43)),
        ],
    )
    .unwrap();
    let landing = crate::browser::Browser::new(&app).get(url.as_str()).await;
    assert_eq!(
        landing.param("error").as_deref(),
        Some("temporarily_unavailable"),
        "{landing:?}"
    );
    assert_eq!(landing.param("state").as_deref(), Some("s"));
    // Redeeming a code needs it too: 503 with the RFC error, no panic.
    let (status, error, _) = oauth_error(
        app.post_form(
            "/token",
            &[
                ("grant_type", "authorization_code"),
                ("code", "whatever"),
                ("redirect_uri", crate::browser::REDIRECT),
                ("code_verifier", &"v".repeat(43)),
            ],
            Some((&web.id, &web.secret)),
        )
        .await,
    )
    .await;
    assert_eq!((status, error.as_str()), (503, "temporarily_unavailable"));
    // The client-credentials grant keeps no ephemeral state: it keeps working through the outage.
    let r = app
        .post_form(
            "/token",
            &[("grant_type", "client_credentials")],
            Some((&c.id, &c.secret)),
        )
        .await;
    assert_eq!(r.status(), 200);

    proxy.restore();
    eventually_ready(&app).await;
}

#[tokio::test]
async fn postgres_outage_fails_cleanly_and_recovers_without_restart() {
    let Some(db) = fresh_database().await else {
        skip_or_fail("Postgres fault test: no Postgres (CUSTOS_TEST_DATABASE_URL unset)");
        return;
    };
    let proxy = Proxy::start(socket_of(&db)).await;
    let proxied = via(&db, proxy.addr);
    let app = TestApp::builder()
        .with_config(|c| {
            c.database_url = SecretString(proxied);
            // Read the client from the database on every request, so the outage is visible.
            c.client_cache_ttl_secs = 0;
        })
        .start()
        .await;
    let c = app.service_client().await;
    let cc = [("grant_type", "client_credentials")];
    assert_eq!(
        app.post_form("/token", &cc, Some((&c.id, &c.secret)))
            .await
            .status(),
        200
    );

    proxy.cut().await;
    let (status, error, headers) =
        oauth_error(app.post_form("/token", &cc, Some((&c.id, &c.secret))).await).await;
    assert_eq!((status, error.as_str()), (503, "temporarily_unavailable"));
    assert_eq!(headers["cache-control"], "no-store");
    let (status, body) = ready(&app).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["checks"]["database"], "unavailable");

    proxy.restore();
    eventually_ready(&app).await;
    assert_eq!(
        app.post_form("/token", &cc, Some((&c.id, &c.secret)))
            .await
            .status(),
        200
    );
}
