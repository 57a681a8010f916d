//! RP-Initiated Logout 1.0: with and without `id_token_hint`, registered and unregistered return
//! addresses, and the confirmation form's CSRF protection.

use custos::clients::NewClient;
use serde_json::Value;

use crate::browser::{Browser, Landing, PASSWORD, REDIRECT, hidden, user, web_client};
use crate::support::TestApp;

const AFTER: &str = "https://rp.example.com/signed-out";

async fn signed_in(app: &TestApp) -> (Browser, crate::support::TestClient, String) {
    let c = app
        .client(NewClient {
            skip_consent: true,
            post_logout_redirect_uris: vec![AFTER.into()],
            ..web_client(false)
        })
        .await;
    user(app, "ada@example.com").await;
    let browser = Browser::new(app);
    let verifier = "l".repeat(50);
    let challenge = custos::oauth::pkce::s256(&verifier);
    let url = reqwest::Url::parse_with_params(
        &app.url("/authorize"),
        &[
            ("response_type", "code"),
            ("client_id", c.id.as_str()),
            ("scope", "openid"),
            ("code_challenge", &challenge),
        ],
    )
    .unwrap();
    let login = browser.get(url.as_str()).await;
    let back = browser.login(&login, "ada@example.com", PASSWORD).await;
    let code = back.param("code").expect("code");
    let t: Value = app
        .post_form(
            "/token",
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT),
                ("code_verifier", &verifier),
            ],
            Some((&c.id, &c.secret)),
        )
        .await
        .json()
        .await
        .unwrap();
    (browser, c, t["id_token"].as_str().unwrap().to_string())
}

async fn still_signed_in(app: &TestApp, browser: &Browser, client: &str) -> bool {
    let url = reqwest::Url::parse_with_params(
        &app.url("/authorize"),
        &[
            ("response_type", "code"),
            ("client_id", client),
            ("scope", "openid"),
            ("prompt", "none"),
            ("code_challenge", &"c".repeat(43)),
        ],
    )
    .unwrap();
    browser.get(url.as_str()).await.param("code").is_some()
}

#[tokio::test]
async fn logout_with_a_valid_hint_ends_the_session_and_returns_to_the_client() {
    let app = TestApp::start().await;
    let (browser, c, id_token) = signed_in(&app).await;
    assert!(still_signed_in(&app, &browser, &c.id).await);
    let url = reqwest::Url::parse_with_params(
        &app.url("/logout"),
        &[
            ("id_token_hint", id_token.as_str()),
            ("post_logout_redirect_uri", AFTER),
            ("state", "bye"),
        ],
    )
    .unwrap();
    let landing = browser.get(url.as_str()).await;
    match &landing {
        Landing::Client(u) => assert!(u.as_str().starts_with(AFTER), "{u}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(landing.param("state").as_deref(), Some("bye"));
    assert!(
        !still_signed_in(&app, &browser, &c.id).await,
        "the next request needs a login"
    );
    // An expired hint is still accepted (a logout often comes long after sign-in).
    app.clock.advance(86_400);
    let url = reqwest::Url::parse_with_params(
        &app.url("/logout"),
        &[("id_token_hint", id_token.as_str())],
    )
    .unwrap();
    assert_eq!(browser.get(url.as_str()).await.status(), 200);
}

#[tokio::test]
async fn logout_without_a_hint_asks_first_and_checks_csrf() {
    let app = TestApp::start().await;
    let (browser, c, _) = signed_in(&app).await;
    let page = browser.get(&app.url("/logout")).await;
    assert_eq!(page.status(), 200);
    assert!(page.body().contains("Sign out?"));
    let (id, csrf) = (
        hidden(page.body(), "logout_id"),
        hidden(page.body(), "csrf"),
    );
    // A forged or missing token: 403, and the session survives.
    for bad in ["", "forged-forged-forged-forged-forged-forged-aa"] {
        let r = browser
            .submit(
                "/logout",
                &[("logout_id", &id), ("csrf", bad), ("decision", "logout")],
            )
            .await;
        assert_eq!(r.status(), 403);
    }
    assert!(still_signed_in(&app, &browser, &c.id).await);
    // Another browser cannot use this confirmation either.
    let stranger = Browser::new(&app);
    assert_eq!(
        stranger
            .submit(
                "/logout",
                &[("logout_id", &id), ("csrf", &csrf), ("decision", "logout")]
            )
            .await
            .status(),
        403
    );
    let done = browser
        .submit(
            "/logout",
            &[("logout_id", &id), ("csrf", &csrf), ("decision", "logout")],
        )
        .await;
    assert_eq!(done.status(), 200);
    assert!(done.body().contains("signed out"));
    assert!(!still_signed_in(&app, &browser, &c.id).await);
}

#[tokio::test]
async fn logout_never_redirects_to_an_unregistered_address_or_trusts_a_forged_hint() {
    let app = TestApp::start().await;
    let (browser, c, id_token) = signed_in(&app).await;
    for bad in [
        "https://evil.example.com/",
        "https://rp.example.com/signed-out/",
        REDIRECT,
    ] {
        let url = reqwest::Url::parse_with_params(
            &app.url("/logout"),
            &[
                ("id_token_hint", id_token.as_str()),
                ("post_logout_redirect_uri", bad),
            ],
        )
        .unwrap();
        let r = browser.http.get(url).send().await.unwrap();
        assert_eq!(r.status(), 400, "{bad}");
        assert!(r.headers().get("location").is_none());
    }
    let (head, _) = id_token.rsplit_once('.').unwrap();
    let forged = format!("{head}.AAAA");
    let url =
        reqwest::Url::parse_with_params(&app.url("/logout"), &[("id_token_hint", forged.as_str())])
            .unwrap();
    assert_eq!(browser.http.get(url).send().await.unwrap().status(), 400);
    assert!(
        still_signed_in(&app, &browser, &c.id).await,
        "nothing ended"
    );
}
