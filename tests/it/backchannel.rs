//! OpenID Connect Back-Channel Logout 1.0: a logout token reaches a test relying party and verifies
//! against the JWKS; a relying party that was down gets it after retries, across a Custos restart; a
//! notice is given up after the configured attempts; two replicas deliver a notice once.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Form;
use axum::extract::State;
use axum::routing::post;
use custos::clock::Clock;
use custos::config::SecretString;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;
use tokio::sync::mpsc;

use crate::browser::{Browser, PASSWORD, REDIRECT, user};
use crate::sessions::{VERIFIER, claims, first_party, sid_of, tokens};
use crate::support::TestApp;

const EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// A relying party's back-channel logout endpoint on `listener`: every `logout_token` it receives
/// goes to the channel; it answers 200.
fn relying_party(listener: tokio::net::TcpListener) -> mpsc::UnboundedReceiver<String> {
    let (tx, rx) = mpsc::unbounded_channel::<String>();
    async fn receive(
        State(tx): State<mpsc::UnboundedSender<String>>,
        Form(f): Form<std::collections::HashMap<String, String>>,
    ) -> &'static str {
        if let Some(t) = f.get("logout_token") {
            let _ = tx.send(t.clone());
        }
        ""
    }
    let app = axum::Router::new()
        .route("/backchannel", post(receive))
        .with_state(tx);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    rx
}

/// A port nothing listens on yet, held so nobody else takes it: connections are refused until
/// `listen` is called on the socket.
fn reserved_port() -> (tokio::net::TcpSocket, SocketAddr) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = socket.local_addr().unwrap();
    (socket, addr)
}

/// Verifies a logout token as a relying party must (Back-Channel Logout 1.0 §2.6): signature by a
/// key of the issuer's JWKS, `typ`, iss, aud, iat/exp, the event, a `sid` or `sub`, no nonce.
async fn verify(base: &str, issuer: &str, token: &str, client_id: &str) -> Value {
    let jwks: JwkSet = reqwest::get(format!("{base}/.well-known/jwks.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let header = jsonwebtoken::decode_header(token).unwrap();
    assert_eq!(header.typ.as_deref(), Some("logout+jwt"));
    assert_eq!(
        header.alg,
        Algorithm::RS256,
        "the client's ID-token algorithm"
    );
    let jwk = jwks
        .find(header.kid.as_deref().unwrap())
        .expect("kid in the JWKS");
    let mut v = Validation::new(Algorithm::RS256);
    v.set_issuer(&[issuer]);
    v.set_audience(&[client_id]);
    v.set_required_spec_claims(&["exp", "iss", "aud", "iat"]);
    let c = jsonwebtoken::decode::<Value>(token, &DecodingKey::from_jwk(jwk).unwrap(), &v)
        .unwrap()
        .claims;
    assert_eq!(c["events"], serde_json::json!({ EVENT: {} }));
    assert!(c.get("nonce").is_none(), "a logout token never has a nonce");
    assert!(c["jti"].as_str().is_some_and(|j| !j.is_empty()));
    let (iat, exp) = (c["iat"].as_i64().unwrap(), c["exp"].as_i64().unwrap());
    assert!(exp > iat && exp - iat <= 120);
    // Tampering breaks it.
    let (head, sig) = token.rsplit_once('.').unwrap();
    let flipped = format!(
        "{head}.{}{}",
        if sig.starts_with('A') { "B" } else { "A" },
        &sig[1..]
    );
    assert!(
        jsonwebtoken::decode::<Value>(&flipped, &DecodingKey::from_jwk(jwk).unwrap(), &v).is_err()
    );
    c
}

async fn next_token(rx: &mut mpsc::UnboundedReceiver<String>, within: Duration) -> String {
    tokio::time::timeout(within, rx.recv())
        .await
        .expect("a logout token arrives in time")
        .expect("the relying party is running")
}

/// The attempts a notice to `client_id` took, from its `backchannel_logout_delivered` audit event
/// (written once the relying party has answered, so it is waited for).
async fn delivered_after(store: &custos::store::Store, client_id: &str) -> u64 {
    for _ in 0..100 {
        if let Some(n) = store
            .audit_events(100)
            .await
            .unwrap()
            .into_iter()
            .find(|e| {
                e.kind == "backchannel_logout_delivered"
                    && e.client_id.as_deref() == Some(client_id)
            })
            .and_then(|e| e.details["attempts"].as_u64())
        {
            return n;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no delivery to {client_id} in the audit trail");
}

/// Signs out through RP-initiated logout with the ID token as hint.
async fn logout(base: &str, browser: &Browser, id_token: &str) {
    let url =
        reqwest::Url::parse_with_params(&format!("{base}/logout"), &[("id_token_hint", id_token)])
            .unwrap();
    assert_eq!(browser.get(url.as_str()).await.status(), 200);
}

#[tokio::test]
async fn a_logout_token_reaches_the_relying_party_and_verifies_against_the_jwks() {
    let app = TestApp::start().await;
    // jsonwebtoken checks exp against the real clock.
    app.clock.set(chrono::Utc::now().timestamp());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let uri = format!("http://{}/backchannel", listener.local_addr().unwrap());
    let mut rx = relying_party(listener);
    let notified = first_party(&app, "Notified RP", Some(uri.clone())).await;
    let silent = first_party(&app, "RP without back-channel", None).await;
    // Registered for back-channel logout but never used in the session: not notified.
    let unused = first_party(&app, "Unused RP", Some(uri.clone())).await;
    let ada = user(&app, "ada@example.com").await;
    let browser = Browser::new(&app);
    let t = tokens(&app, &browser, &notified, "ada@example.com").await;
    tokens(&app, &browser, &silent, "ada@example.com").await;
    let sid = sid_of(&t);

    logout(&app.base, &browser, t["id_token"].as_str().unwrap()).await;
    let queued = app.state.store.logout_notices().await.unwrap();
    assert_eq!(
        queued.len(),
        1,
        "one notice: the one client with a URI that got tokens"
    );
    assert_eq!(queued[0].client_id, notified.id);

    let worker = custos::backchannel::spawn(app.state.clone());
    let token = next_token(&mut rx, Duration::from_secs(20)).await;
    let c = verify(&app.base, &app.base, &token, &notified.id).await;
    assert_eq!(c["sid"], sid.as_str(), "the sid of the ID token");
    assert_eq!(c["sub"], ada.id.as_str());
    assert_eq!(c["aud"], notified.id.as_str());
    // Delivered at the first attempt: the audit trail says so and the outbox is empty.
    assert_eq!(delivered_after(&app.state.store, &notified.id).await, 1);
    assert!(app.state.store.logout_notices().await.unwrap().is_empty());
    let events = app.state.store.audit_events(50).await.unwrap();
    assert!(
        !events
            .iter()
            .any(|e| e.client_id.as_deref() == Some(unused.id.as_str())
                && e.kind.starts_with("backchannel"))
    );
    worker.abort();

    // Discovery says so.
    let meta: Value = reqwest::get(app.url("/.well-known/openid-configuration"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(meta["backchannel_logout_supported"], true);
    assert_eq!(meta["backchannel_logout_session_supported"], true);
}

#[tokio::test]
async fn a_notice_is_retried_with_backoff_then_given_up_with_an_audit_event() {
    let app = TestApp::builder()
        .with_config(|c| {
            c.backchannel_max_attempts = 3;
            c.backchannel_retry_base_secs = 10;
            c.backchannel_timeout_secs = 2;
        })
        .start()
        .await;
    let (_held, dead) = reserved_port();
    let rp = first_party(&app, "Dead RP", Some(format!("http://{dead}/backchannel"))).await;
    user(&app, "ada@example.com").await;
    let browser = Browser::new(&app);
    let t = tokens(&app, &browser, &rp, "ada@example.com").await;
    logout(&app.base, &browser, t["id_token"].as_str().unwrap()).await;
    let http = custos::backchannel::http_client(&app.state);
    let state = &app.state;

    assert_eq!(
        custos::backchannel::run_once(state, &http).await.unwrap(),
        1
    );
    let n = &state.store.logout_notices().await.unwrap()[0];
    assert_eq!(n.attempts, 1);
    assert_eq!(n.next_attempt_at, app.clock.now() + 10);
    assert_eq!(n.last_error.as_deref(), Some("connection failed"));
    // Not due yet: nothing is tried.
    app.clock.advance(9);
    assert_eq!(
        custos::backchannel::run_once(state, &http).await.unwrap(),
        0
    );
    app.clock.advance(1);
    assert_eq!(
        custos::backchannel::run_once(state, &http).await.unwrap(),
        1
    );
    let n = &state.store.logout_notices().await.unwrap()[0];
    assert_eq!(n.attempts, 2);
    assert_eq!(n.next_attempt_at, app.clock.now() + 20, "the wait doubles");
    app.clock.advance(20);
    assert_eq!(
        custos::backchannel::run_once(state, &http).await.unwrap(),
        1
    );
    assert!(
        state.store.logout_notices().await.unwrap().is_empty(),
        "given up"
    );
    let failed = state
        .store
        .audit_events(50)
        .await
        .unwrap()
        .into_iter()
        .find(|e| e.kind == "backchannel_logout_failed")
        .expect("an audit event for the notice given up");
    assert_eq!(failed.client_id.as_deref(), Some(rp.id.as_str()));
    assert_eq!(failed.details["attempts"], 3);
}

#[tokio::test]
async fn two_replicas_deliver_a_notice_once() {
    let dir = tempfile::tempdir().unwrap();
    let (db, kek) = crate::sessions::shared_database(dir.path()).await;
    let shared = |c: &mut custos::config::Config| {
        c.kek = Some(SecretString(kek.clone()));
        c.database_url = SecretString(db.clone());
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
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let uri = format!("http://{}/backchannel", listener.local_addr().unwrap());
    let mut rx = relying_party(listener);
    let rp = first_party(&a, "RP", Some(uri)).await;
    user(&a, "ada@example.com").await;
    for round in 0..5 {
        let browser = Browser::new(&a);
        let t = tokens(&a, &browser, &rp, "ada@example.com").await;
        logout(&a.base, &browser, t["id_token"].as_str().unwrap()).await;
        let (ha, hb) = (
            custos::backchannel::http_client(&a.state),
            custos::backchannel::http_client(&b.state),
        );
        let (ra, rb) = tokio::join!(
            custos::backchannel::run_once(&a.state, &ha),
            custos::backchannel::run_once(&b.state, &hb)
        );
        assert_eq!(ra.unwrap() + rb.unwrap(), 1, "round {round}: claimed once");
        next_token(&mut rx, Duration::from_secs(10)).await;
        assert!(rx.try_recv().is_err(), "round {round}: delivered once");
    }
}

#[tokio::test]
async fn delivery_is_retried_after_the_rp_was_down_and_completes_after_a_restart() {
    use crate::cli::{cli, database_for, serve, use_test_database};
    let dir = tempfile::tempdir().unwrap();
    use_test_database(dir.path()).await;
    std::fs::write(
        dir.path().join("custos.toml"),
        "backchannel_retry_base_secs = 1\nbackchannel_timeout_secs = 2\n",
    )
    .unwrap();
    let (socket, rp_addr) = reserved_port();
    let first = serve(dir.path());

    let out = cli(
        dir.path(),
        &[
            "client",
            "create",
            "--name",
            "RP",
            "--redirect-uri",
            REDIRECT,
            "--scope",
            "api:read",
            "--skip-consent",
            "--backchannel-logout-uri",
            &format!("http://{rp_addr}/backchannel"),
            "--backchannel-logout-session-required",
            "--json",
        ],
        &[],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let c: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(c["backchannel_logout_session_required"], true);
    let (id, secret) = (
        c["id"].as_str().unwrap().to_string(),
        c["client_secret"].as_str().unwrap().to_string(),
    );
    let pw = format!("{PASSWORD} of a lighthouse keeper 7q!");
    let out = cli(
        dir.path(),
        &[
            "user",
            "create",
            "--email",
            "ada@example.com",
            "--name",
            "Ada",
            "--password-stdin",
        ],
        &[],
        Some(&format!("{pw}\n")),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Sign in through the real binary and get an ID token.
    let browser = Browser {
        http: reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        base: first.base.clone(),
    };
    let challenge = custos::oauth::pkce::s256(VERIFIER);
    let url = reqwest::Url::parse_with_params(
        &format!("{}/authorize", first.base),
        &[
            ("response_type", "code"),
            ("client_id", id.as_str()),
            ("scope", "openid"),
            ("code_challenge", challenge.as_str()),
        ],
    )
    .unwrap();
    let login = browser.get(url.as_str()).await;
    let back = browser.login(&login, "ada@example.com", &pw).await;
    let code = back.param("code").unwrap_or_else(|| panic!("{back:?}"));
    let t: Value = reqwest::Client::new()
        .post(format!("{}/token", first.base))
        .basic_auth(&id, Some(&secret))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id_token = t["id_token"].as_str().expect("an ID token").to_string();
    let sid = claims(&id_token)["sid"].as_str().unwrap().to_string();
    let meta: Value = reqwest::get(format!("{}/.well-known/openid-configuration", first.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let issuer = meta["issuer"].as_str().unwrap().to_string();

    // Sign out while the relying party is down: the first attempts fail.
    logout(&first.base, &browser, &id_token).await;
    let store = custos::store::Store::connect(&database_for(dir.path()))
        .await
        .unwrap();
    let mut failed = false;
    for _ in 0..200 {
        if store
            .logout_notices()
            .await
            .unwrap()
            .first()
            .is_some_and(|n| n.attempts >= 1 && n.last_error.is_some())
        {
            failed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        failed,
        "a delivery was attempted and failed while the RP was down"
    );

    // Custos goes away (killed, not asked to stop), the RP comes up, Custos comes back.
    drop(first);
    let mut rx = relying_party(socket.listen(16).unwrap());
    let second = serve(dir.path());
    let token = next_token(&mut rx, Duration::from_secs(60)).await;
    let c = verify(&second.base, &issuer, &token, &id).await;
    assert_eq!(c["sid"], sid.as_str());
    let attempts = delivered_after(&store, &id).await;
    assert!(attempts >= 2, "delivered on a retry ({attempts})");
    assert!(store.logout_notices().await.unwrap().is_empty());
    drop(second);
}

#[tokio::test]
async fn a_backchannel_uri_must_be_https_or_loopback() {
    let app = TestApp::start().await;
    for bad in [
        "http://rp.example.com/logout",
        "ftp://rp.example.com/logout",
        "https://rp.example.com/logout#frag",
        "not a url",
    ] {
        let r = custos::clients::create(
            &app.state.store,
            custos::clients::NewClient {
                name: "x".into(),
                backchannel_logout_uri: Some(bad.into()),
                ..crate::browser::web_client(false)
            },
            0,
        )
        .await;
        let e = r
            .err()
            .unwrap_or_else(|| panic!("{bad} accepted"))
            .to_string();
        assert!(e.starts_with("backchannel_logout_uri:"), "{e}");
    }
    let e = custos::clients::create(
        &app.state.store,
        custos::clients::NewClient {
            name: "x".into(),
            backchannel_logout_session_required: true,
            ..crate::browser::web_client(false)
        },
        0,
    )
    .await
    .err()
    .unwrap()
    .to_string();
    assert!(e.starts_with("backchannel_logout_session_required:"), "{e}");
}
