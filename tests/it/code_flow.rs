//! The authorization-code flow end to end, with the `openidconnect` crate as the relying party and a
//! scripted browser, and each way it must refuse.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use custos::config::Alg;
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreJwsSigningAlgorithm, CoreProviderMetadata,
};
use openidconnect::{
    AccessTokenHash, AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce,
    OAuth2TokenResponse, PkceCodeChallenge, RedirectUrl, Scope, TokenResponse,
};
use serde_json::Value;

use crate::browser::{Browser, Landing, PASSWORD, REDIRECT, user, web_client};
use crate::discovery::oidc_http;
use crate::support::{TestApp, TestClient, oauth_error};

fn claims_of(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

#[tokio::test]
async fn openidconnect_client_runs_the_whole_flow() {
    for alg in [Alg::RS256, Alg::ES256] {
        let app = TestApp::start().await;
        // The RP library checks exp and iat against the real clock.
        app.clock.set(chrono::Utc::now().timestamp());
        let mut nc = web_client(false);
        nc.id_token_signed_response_alg = (alg != Alg::RS256).then(|| alg.as_str().to_string());
        let c = app.client(nc).await;
        let ada = user(&app, "ada@example.com").await;

        let meta = CoreProviderMetadata::discover_async(
            IssuerUrl::new(app.base.clone()).unwrap(),
            &oidc_http,
        )
        .await
        .unwrap();
        let rp = CoreClient::from_provider_metadata(
            meta,
            ClientId::new(c.id.clone()),
            Some(ClientSecret::new(c.secret.clone())),
        )
        .set_redirect_uri(RedirectUrl::new(REDIRECT.into()).unwrap());
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let (url, state, nonce) = rp
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .add_scope(Scope::new("email".into()))
            .add_scope(Scope::new("offline_access".into()))
            .set_pkce_challenge(challenge)
            .url();

        let browser = Browser::new(&app);
        let login = browser.get(url.as_str()).await;
        assert!(login.is_login_page(), "{login:?}");
        let consent = browser.login(&login, "ada@example.com", PASSWORD).await;
        assert!(
            matches!(&consent, Landing::Page(200, p, _) if p == "/consent"),
            "{consent:?}"
        );
        assert!(consent.body().contains("Example RP"));
        let back = browser.consent(&consent, true).await;
        assert_eq!(
            back.param("state").as_deref(),
            Some(state.secret().as_str())
        );
        assert_eq!(
            back.param("iss").as_deref(),
            Some(app.base.as_str()),
            "RFC 9207"
        );
        let code = back.param("code").expect("a code");

        let tokens = rp
            .exchange_code(AuthorizationCode::new(code))
            .unwrap()
            .set_pkce_verifier(verifier)
            .request_async(&oidc_http)
            .await
            .unwrap_or_else(|e| panic!("{alg}: {e:?}"));
        let id_token = tokens.id_token().expect("an ID token for scope openid");
        let id_verifier = rp.id_token_verifier().set_allowed_algs(vec![match alg {
            Alg::RS256 => CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
            Alg::ES256 => CoreJwsSigningAlgorithm::EcdsaP256Sha256,
            Alg::EdDSA => CoreJwsSigningAlgorithm::EdDsa,
        }]);
        let claims = id_token
            .claims(&id_verifier, &nonce)
            .unwrap_or_else(|e| panic!("{alg}: {e:?}"));
        assert_eq!(claims.subject().as_str(), ada.id);
        let at_hash = AccessTokenHash::from_token(
            tokens.access_token(),
            id_token.signing_alg().unwrap(),
            id_token.signing_key(&id_verifier).unwrap(),
        )
        .unwrap();
        assert_eq!(claims.access_token_hash(), Some(&at_hash));
        assert!(claims.auth_time().is_some());

        let at = claims_of(tokens.access_token().secret());
        assert_eq!(at["sub"], ada.id.as_str());
        assert_eq!(at["aud"], "https://api.example.com");
        assert_eq!(at["client_id"], c.id.as_str());
        assert_eq!(at["amr"], serde_json::json!(["pwd"]));
        let idc = claims_of(serde_json::to_value(id_token).unwrap().as_str().unwrap());
        assert_eq!(at["sid"], idc["sid"], "one session id in both tokens");

        // Refresh: a new token each time; replaying the old one revokes the family.
        let first = tokens
            .refresh_token()
            .expect("offline_access gives a refresh token")
            .clone();
        let second = rp
            .exchange_refresh_token(&first)
            .unwrap()
            .request_async(&oidc_http)
            .await
            .unwrap();
        let second_rt = second.refresh_token().unwrap().clone();
        assert_ne!(second_rt.secret(), first.secret());
        let replay = app
            .post_form(
                "/token",
                &[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", first.secret()),
                ],
                Some((&c.id, &c.secret)),
            )
            .await;
        assert_eq!(oauth_error(replay).await.1, "invalid_grant");
        let after = app
            .post_form(
                "/token",
                &[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", second_rt.secret()),
                ],
                Some((&c.id, &c.secret)),
            )
            .await;
        assert_eq!(
            oauth_error(after).await.1,
            "invalid_grant",
            "the whole family is revoked"
        );
        // userinfo with the newest access token: the same sub as the ID token.
        let at2 = second.access_token().secret().clone();
        let ui: Value = app
            .http
            .get(app.url("/userinfo"))
            .bearer_auth(&at2)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(ui["sub"], ada.id.as_str());
        assert_eq!(ui["email"], "ada@example.com");
        // Revoke the access token: introspection shows it inactive and userinfo refuses it.
        let r = app
            .post_form(
                "/revoke",
                &[("token", at2.as_str())],
                Some((&c.id, &c.secret)),
            )
            .await;
        assert_eq!(r.status(), 200);
        let intro: Value = app
            .post_form(
                "/introspect",
                &[("token", at2.as_str())],
                Some((&c.id, &c.secret)),
            )
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(intro, serde_json::json!({"active": false}));
        let r = app
            .http
            .get(app.url("/userinfo"))
            .bearer_auth(&at2)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
        // Sign out with the ID token as hint; the next authorization request asks for a login again.
        let hint = serde_json::to_value(id_token)
            .unwrap()
            .as_str()
            .unwrap()
            .to_string();
        let out = reqwest::Url::parse_with_params(
            &app.url("/logout"),
            &[("id_token_hint", hint.as_str())],
        )
        .unwrap();
        assert_eq!(browser.get(out.as_str()).await.status(), 200);
        let again = browser.get(url.as_str()).await;
        assert!(again.is_login_page(), "{again:?}");

        let kinds: Vec<String> = app
            .state
            .store
            .audit_events(50)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.kind)
            .collect();
        assert!(
            kinds.contains(&"refresh_token_reuse".to_string()),
            "{kinds:?}"
        );
    }
}

/// Runs authorize → login → consent for a client and returns the code (or the landing if it is not one).
async fn code_for(
    app: &TestApp,
    browser: &Browser,
    client_id: &str,
    extra: &[(&str, &str)],
) -> Result<(String, String), Landing> {
    let verifier = "v".repeat(43) + &uuid::Uuid::new_v4().simple().to_string();
    let challenge = custos::oauth::pkce::s256(&verifier);
    let mut q: Vec<(&str, &str)> = vec![
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", REDIRECT),
        ("scope", "openid offline_access"),
        ("state", "st-1"),
        ("code_challenge", &challenge),
        ("code_challenge_method", "S256"),
    ];
    q.extend_from_slice(extra);
    let url = reqwest::Url::parse_with_params(&app.url("/authorize"), &q).unwrap();
    let mut landing = browser.get(url.as_str()).await;
    if landing.is_login_page() {
        landing = browser.login(&landing, "ada@example.com", PASSWORD).await;
    }
    if matches!(&landing, Landing::Page(200, p, _) if p == "/consent") {
        landing = browser.consent(&landing, true).await;
    }
    match landing.param("code") {
        Some(code) => Ok((code, verifier)),
        None => Err(landing),
    }
}

async fn redeem(app: &TestApp, c: &TestClient, code: &str, verifier: &str) -> reqwest::Response {
    app.post_form(
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

#[tokio::test]
async fn untrusted_redirect_uris_are_never_followed() {
    let app = TestApp::start().await;
    let c = app.client(web_client(false)).await;
    let browser = Browser::new(&app);
    for bad in [
        "https://rp.example.com/callbac",
        "https://rp.example.com/callback/",
        "https://rp.example.com:8443/callback",
        "https://RP.example.com/Callback",
        "https://rp.example.com/callback?x=1",
        "https://rp.example.com.evil.com/callback",
        "not a uri",
    ] {
        let url = reqwest::Url::parse_with_params(
            &app.url("/authorize"),
            &[
                ("response_type", "code"),
                ("client_id", &c.id),
                ("redirect_uri", bad),
            ],
        )
        .unwrap();
        let r = browser.http.get(url).send().await.unwrap();
        assert_eq!(r.status(), 400, "{bad}");
        assert!(
            r.headers().get("location").is_none(),
            "{bad} must not redirect"
        );
        assert!(r.text().await.unwrap().contains("not registered"), "{bad}");
    }
    let url = reqwest::Url::parse_with_params(
        &app.url("/authorize"),
        &[
            ("response_type", "code"),
            ("client_id", "nobody"),
            ("redirect_uri", REDIRECT),
        ],
    )
    .unwrap();
    let r = browser.http.get(url).send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.headers().get("location").is_none());
}

#[tokio::test]
async fn pkce_is_required_and_plain_is_refused() {
    let app = TestApp::start().await;
    let public = app.client(web_client(true)).await;
    let browser = Browser::new(&app);
    for extra in [
        vec![],
        vec![
            ("code_challenge", "a".repeat(43)),
            ("code_challenge_method", "plain".to_string()),
        ],
    ] {
        let mut q: Vec<(&str, String)> = vec![
            ("response_type", "code".to_string()),
            ("client_id", public.id.clone()),
            ("redirect_uri", REDIRECT.into()),
            ("state", "s".into()),
        ];
        q.extend(extra);
        let url = reqwest::Url::parse_with_params(&app.url("/authorize"), &q).unwrap();
        let landing = browser.get(url.as_str()).await;
        assert_eq!(
            landing.param("error").as_deref(),
            Some("invalid_request"),
            "{landing:?}"
        );
        assert_eq!(landing.param("state").as_deref(), Some("s"));
        assert_eq!(landing.param("iss").as_deref(), Some(app.base.as_str()));
    }
}

#[tokio::test]
async fn code_checks_replay_and_expiry() {
    let app = TestApp::start().await;
    let c = app.client(web_client(false)).await;
    let other = app.client(web_client(false)).await;
    user(&app, "ada@example.com").await;
    let browser = Browser::new(&app);

    // Wrong verifier → invalid_grant (and the code is used up).
    let (code, _) = code_for(&app, &browser, &c.id, &[]).await.unwrap();
    let (s, e, _) = oauth_error(redeem(&app, &c, &code, &"x".repeat(43)).await).await;
    assert_eq!((s, e.as_str()), (400, "invalid_grant"));

    // Another client cannot redeem it, and its attempt does not use it up.
    let (code, verifier) = code_for(&app, &browser, &c.id, &[]).await.unwrap();
    let (_, e, _) = oauth_error(redeem(&app, &other, &code, &verifier).await).await;
    assert_eq!(e, "invalid_grant");
    let first = redeem(&app, &c, &code, &verifier).await;
    assert_eq!(first.status(), 200);
    let first: Value = first.json().await.unwrap();
    // A replay fails and revokes what the first redemption issued.
    let (_, e, _) = oauth_error(redeem(&app, &c, &code, &verifier).await).await;
    assert_eq!(e, "invalid_grant");
    let rt = first["refresh_token"].as_str().unwrap();
    let (_, e, _) = oauth_error(
        app.post_form(
            "/token",
            &[("grant_type", "refresh_token"), ("refresh_token", rt)],
            Some((&c.id, &c.secret)),
        )
        .await,
    )
    .await;
    assert_eq!(
        e, "invalid_grant",
        "the refresh token issued from a replayed code is revoked"
    );

    // Expired code.
    let (code, verifier) = code_for(&app, &browser, &c.id, &[]).await.unwrap();
    app.clock.advance(61);
    let (_, e, _) = oauth_error(redeem(&app, &c, &code, &verifier).await).await;
    assert_eq!(e, "invalid_grant");
}

#[tokio::test]
async fn sessions_prompts_and_consent() {
    let app = TestApp::start().await;
    let c = app.client(web_client(false)).await;
    user(&app, "ada@example.com").await;
    let browser = Browser::new(&app);

    // prompt=none without a session → login_required, at the client.
    let landing = code_for(&app, &browser, &c.id, &[("prompt", "none")])
        .await
        .unwrap_err();
    assert_eq!(landing.param("error").as_deref(), Some("login_required"));

    // Sign in once; the second request passes straight through (SSO, consent remembered).
    code_for(&app, &browser, &c.id, &[]).await.unwrap();
    let url = reqwest::Url::parse_with_params(
        &app.url("/authorize"),
        &[
            ("response_type", "code"),
            ("client_id", c.id.as_str()),
            ("scope", "openid"),
            ("code_challenge", &"c".repeat(43)),
        ],
    )
    .unwrap();
    let landing = browser.get(url.as_str()).await;
    assert!(
        landing.param("code").is_some(),
        "no login or consent page the second time: {landing:?}"
    );

    // prompt=login asks again even with a session.
    let url = reqwest::Url::parse_with_params(
        &app.url("/authorize"),
        &[
            ("response_type", "code"),
            ("client_id", c.id.as_str()),
            ("prompt", "login"),
            ("code_challenge", &"c".repeat(43)),
        ],
    )
    .unwrap();
    assert!(browser.get(url.as_str()).await.is_login_page());

    // A scope not yet consented → the consent page; denying → access_denied.
    let url = reqwest::Url::parse_with_params(
        &app.url("/authorize"),
        &[
            ("response_type", "code"),
            ("client_id", c.id.as_str()),
            ("scope", "openid api:read"),
            ("state", "z"),
            ("code_challenge", &"c".repeat(43)),
        ],
    )
    .unwrap();
    let consent = browser.get(url.as_str()).await;
    assert!(
        matches!(&consent, Landing::Page(200, p, _) if p == "/consent"),
        "{consent:?}"
    );
    let denied = browser.consent(&consent, false).await;
    assert_eq!(denied.param("error").as_deref(), Some("access_denied"));
    assert_eq!(denied.param("state").as_deref(), Some("z"));

    // prompt=none with a session but without consent → consent_required.
    let url = reqwest::Url::parse_with_params(
        &app.url("/authorize"),
        &[
            ("response_type", "code"),
            ("client_id", c.id.as_str()),
            ("scope", "openid api:read"),
            ("prompt", "none"),
            ("code_challenge", &"c".repeat(43)),
        ],
    )
    .unwrap();
    assert_eq!(
        browser.get(url.as_str()).await.param("error").as_deref(),
        Some("consent_required")
    );
}

#[tokio::test]
async fn login_failures_look_alike_and_csrf_is_enforced() {
    let app = TestApp::start().await;
    let c = app.client(web_client(false)).await;
    user(&app, "ada@example.com").await;
    let browser = Browser::new(&app);
    let url = reqwest::Url::parse_with_params(
        &app.url("/authorize"),
        &[
            ("response_type", "code"),
            ("client_id", c.id.as_str()),
            ("code_challenge", &"c".repeat(43)),
        ],
    )
    .unwrap();
    let login = browser.get(url.as_str()).await;
    let wrong_pw = browser
        .login(&login, "ada@example.com", "not the password")
        .await;
    let unknown = browser.login(&login, "eve@example.com", PASSWORD).await;
    assert_eq!(wrong_pw.status(), 401);
    assert_eq!(unknown.status(), 401);
    assert_eq!(
        wrong_pw.body().replace("ada@example.com", "EMAIL"),
        unknown.body().replace("eve@example.com", "EMAIL"),
        "the same page for an unknown email and a wrong password"
    );

    // Missing and wrong CSRF tokens: 403, and nobody gets signed in.
    let req = crate::browser::hidden(login.body(), "req");
    for csrf in ["", "forged-token-forged-token-forged-token-aaaa"] {
        let r = browser
            .http
            .post(app.url("/login"))
            .form(&[
                ("req", req.as_str()),
                ("csrf", csrf),
                ("email", "ada@example.com"),
                ("password", PASSWORD),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403);
        assert!(r.headers().get("set-cookie").is_none());
    }
    assert!(
        browser.get(url.as_str()).await.is_login_page(),
        "still signed out"
    );
    // Another browser (without the flow cookie) cannot use this sign-in form at all.
    let stranger = Browser::new(&app);
    let csrf = crate::browser::hidden(login.body(), "csrf");
    let r = stranger
        .submit(
            "/login",
            &[
                ("req", &req),
                ("csrf", &csrf),
                ("email", "ada@example.com"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn refresh_tokens_are_bound_to_their_client_and_rotate_atomically() {
    let app = TestApp::start().await;
    let c = app.client(web_client(false)).await;
    let other = app.client(web_client(false)).await;
    user(&app, "ada@example.com").await;
    let browser = Browser::new(&app);
    let (code, verifier) = code_for(&app, &browser, &c.id, &[]).await.unwrap();
    let t: Value = redeem(&app, &c, &code, &verifier)
        .await
        .json()
        .await
        .unwrap();
    let rt = t["refresh_token"].as_str().unwrap().to_string();
    assert!(rt.starts_with("cst_rt_"));

    let (_, e, _) = oauth_error(
        app.post_form(
            "/token",
            &[("grant_type", "refresh_token"), ("refresh_token", &rt)],
            Some((&other.id, &other.secret)),
        )
        .await,
    )
    .await;
    assert_eq!(e, "invalid_grant", "another client");

    let mut handles = Vec::new();
    for _ in 0..20 {
        let (http, url, rt, id, secret) = (
            app.http.clone(),
            app.url("/token"),
            rt.clone(),
            c.id.clone(),
            c.secret.clone(),
        );
        handles.push(tokio::spawn(async move {
            http.post(url)
                .basic_auth(id, Some(secret))
                .form(&[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", rt.as_str()),
                ])
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
    }
    let mut ok = 0;
    for h in handles {
        if h.await.unwrap() == 200 {
            ok += 1;
        }
    }
    assert_eq!(ok, 1, "exactly one of 20 concurrent refreshes succeeds");
}

/// Without a session the login page is the answer to `/authorize` itself (no redirect), and a right
/// password goes straight back to the client with a code: no stop at `/authorize/resume`. The pending
/// request is answered once, and the sign-in's audit events are written with its session.
#[tokio::test]
async fn sign_in_goes_from_authorize_to_the_code_in_two_requests() {
    let app = TestApp::start().await;
    let c = app
        .client(custos::clients::NewClient {
            skip_consent: true,
            ..web_client(false)
        })
        .await;
    let ada = user(&app, "ada@example.com").await;
    let browser = Browser::new(&app);
    let challenge = custos::oauth::pkce::s256(&"v".repeat(43));
    let url = reqwest::Url::parse_with_params(
        &app.url("/authorize"),
        &[
            ("response_type", "code"),
            ("client_id", c.id.as_str()),
            ("redirect_uri", REDIRECT),
            ("scope", "openid offline_access"),
            ("state", "st-2"),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
        ],
    )
    .unwrap();
    let page = browser.http.get(url.as_str()).send().await.unwrap();
    assert_eq!(page.status(), 200, "the login page, not a redirect");
    assert_eq!(page.headers()["cache-control"], "no-store");
    let csp = page.headers()["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("form-action 'self' https://rp.example.com"),
        "{csp}"
    );
    let login = Landing::Page(200, "/authorize".into(), page.text().await.unwrap());
    assert!(login.is_login_page(), "{login:?}");
    let req = crate::browser::hidden(login.body(), "req");
    let r = browser.post_login(&login, &[]).await;
    assert_eq!(r.status(), 303);
    let to = r.headers()["location"].to_str().unwrap().to_string();
    assert!(to.starts_with(REDIRECT), "straight to the client: {to}");
    assert!(r.headers().get("set-cookie").is_some(), "a session cookie");
    let back = url::Url::parse(&to).unwrap();
    let param = |n: &str| {
        back.query_pairs()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.into_owned())
    };
    let code = param("code").unwrap();
    assert!(code.len() >= 43);
    assert_eq!(param("state").as_deref(), Some("st-2"));

    // The request was answered: neither resuming it nor posting the form again gets another code.
    let again = browser
        .get(&app.url(&format!("/authorize/resume?req={req}")))
        .await;
    assert_eq!(again.status(), 400, "{again:?}");
    assert!(again.body().contains("expired"), "{again:?}");
    let twice = browser.login(&login, "ada@example.com", PASSWORD).await;
    assert_eq!(twice.status(), 400, "{twice:?}");

    // login_succeeded and session_started, for the session that exists.
    let events = app.state.store.audit_events(20).await.unwrap();
    let kinds: Vec<&str> = events
        .iter()
        .filter(|e| e.subject.as_deref() == Some(ada.id.as_str()))
        .map(|e| e.kind.as_str())
        .collect();
    assert!(kinds.contains(&"login_succeeded"), "{kinds:?}");
    let started = events
        .iter()
        .find(|e| e.kind == "session_started")
        .expect("session_started");
    let sid = started.details["sid"].as_str().unwrap();
    assert!(app.state.store.session(sid).await.unwrap().is_some());

    // The account is disabled before the code is redeemed: invalid_grant, and the exchange records
    // nothing (no client in the session, no refresh family).
    app.state
        .store
        .set_user_disabled(&ada.id, true, crate::support::T0)
        .await
        .unwrap();
    let r = app
        .post_form(
            "/token",
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT),
                ("code_verifier", &"v".repeat(43)),
            ],
            Some((&c.id, &c.secret)),
        )
        .await;
    let (status, error, _) = oauth_error(r).await;
    assert_eq!((status, error.as_str()), (400, "invalid_grant"));
    assert!(
        app.state
            .store
            .session_clients(sid)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        app.state
            .store
            .families_for_user(&ada.id, crate::support::T0)
            .await
            .unwrap()
            .is_empty()
    );
}
