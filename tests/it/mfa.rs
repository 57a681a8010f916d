//! Multi-factor sign-in over HTTP with the scripted browser: TOTP enrolment from the account page
//! (codes computed from the shown secret at the FixedClock's time), the second step after the
//! password, replay and skew rules, recovery codes, the attempt limit, step-up via `acr_values`,
//! per-client and per-role policy, and `amr`/`acr` in the ID and access tokens.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use custos::clock::Clock;
use custos::mfa::totp::{STEP_SECS, TotpSecret};
use serde_json::Value;
use zeroize::Zeroizing;

use crate::browser::{Browser, Landing, PASSWORD, REDIRECT, hidden, user, web_client};
use crate::support::{TestApp, TestClient};

const ACR_MFA: &str = "urn:custos:acr:mfa";
const ACR_PWD: &str = "urn:custos:acr:pwd";

fn claims_of(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

fn is_page(l: &Landing, path: &str) -> bool {
    matches!(l, Landing::Page(200, p, _) if p == path)
}

/// Enrols TOTP for `user_id` directly (as the account page would) and returns the secret and the
/// recovery codes.
async fn enrol(app: &TestApp, user_id: &str) -> (TotpSecret, Vec<Zeroizing<String>>) {
    let s = &app.state;
    let secret = TotpSecret::generate().unwrap();
    let sealed = secret.seal(&s.kek, user_id).unwrap();
    let codes = custos::mfa::recovery::generate().unwrap();
    let hashes = custos::mfa::recovery::hashes(&codes);
    // Enrolled a while ago: the step of "now" has not been used.
    let step = custos::mfa::totp::step_of(app.clock.now()) - 10;
    assert!(
        s.store
            .activate_totp(user_id, &sealed, step, &hashes, app.clock.now())
            .await
            .unwrap()
    );
    (secret, codes)
}

/// The authorization URL of `client` (PKCE), with extra parameters; returns it and the verifier.
fn authorize_url(app: &TestApp, client: &str, extra: &[(&str, &str)]) -> (String, String) {
    let verifier = "m".repeat(43) + &uuid::Uuid::new_v4().simple().to_string();
    let challenge = custos::oauth::pkce::s256(&verifier);
    let mut q: Vec<(&str, &str)> = vec![
        ("response_type", "code"),
        ("client_id", client),
        ("redirect_uri", REDIRECT),
        ("scope", "openid"),
        ("state", "st"),
        ("nonce", "n-1"),
        ("code_challenge", &challenge),
        ("code_challenge_method", "S256"),
    ];
    q.extend_from_slice(extra);
    (
        reqwest::Url::parse_with_params(&app.url("/authorize"), &q)
            .unwrap()
            .to_string(),
        verifier,
    )
}

/// On the second-factor page: submit `code`.
async fn second_factor(b: &Browser, page: &Landing, code: &str) -> Landing {
    let csrf = hidden(page.body(), "csrf");
    b.submit(
        "/login/mfa",
        &[("csrf", &csrf), ("code", code), ("action", "verify")],
    )
    .await
}

/// Redeems a code; returns (ID-token claims, access-token claims).
async fn tokens(
    app: &TestApp,
    c: &TestClient,
    landing: &Landing,
    verifier: &str,
) -> (Value, Value) {
    let code = landing
        .param("code")
        .unwrap_or_else(|| panic!("no code: {landing:?}"));
    let t: Value = app
        .post_form(
            "/token",
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT),
                ("code_verifier", verifier),
            ],
            Some((&c.id, &c.secret)),
        )
        .await
        .json()
        .await
        .unwrap();
    (
        claims_of(t["id_token"].as_str().unwrap()),
        claims_of(t["access_token"].as_str().unwrap()),
    )
}

async fn first_party(app: &TestApp) -> TestClient {
    app.client(custos::clients::NewClient {
        skip_consent: true,
        ..web_client(false)
    })
    .await
}

/// Password, then the second-factor page.
async fn to_second_step(
    app: &TestApp,
    b: &Browser,
    client: &str,
    extra: &[(&str, &str)],
) -> (Landing, String) {
    let (url, verifier) = authorize_url(app, client, extra);
    let login = b.get(&url).await;
    assert!(login.is_login_page(), "{login:?}");
    let mfa = b.login(&login, "ada@example.com", PASSWORD).await;
    assert!(is_page(&mfa, "/login/mfa"), "{mfa:?}");
    (mfa, verifier)
}

#[tokio::test]
async fn totp_enrolment_from_the_account_page_then_sign_in_with_amr_and_acr() {
    let app = TestApp::start().await;
    let c = app.client(web_client(false)).await;
    let ada = user(&app, "ada@example.com").await;
    let b = Browser::new(&app);

    // Sign in to the account pages (password only: nothing enrolled yet).
    let signin = b.get(&app.url("/account/security")).await;
    assert!(is_page(&signin, "/login"), "{signin:?}");
    let security = b
        .submit(
            "/login",
            &[
                ("return_to", &hidden(signin.body(), "return_to")),
                ("csrf", &hidden(signin.body(), "csrf")),
                ("email", "ada@example.com"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert!(is_page(&security, "/account/security"), "{security:?}");
    assert!(security.body().contains("id=\"setup\""));
    let csrf = hidden(security.body(), "csrf");

    // Set-up page: inline SVG QR code (no style attribute, no outside image), the secret and the URI.
    let setup = b
        .submit("/account/security/totp/setup", &[("csrf", &csrf)])
        .await;
    assert_eq!(setup.status(), 200, "{setup:?}");
    let html = setup.body();
    assert!(
        html.contains("<svg ") && html.contains("<path fill=\"#000\""),
        "{html}"
    );
    assert!(!html.contains("style=") && !html.contains("<img"), "{html}");
    let text = html
        .split("id=\"totp-secret\">")
        .nth(1)
        .unwrap()
        .split('<')
        .next()
        .unwrap()
        .replace(' ', "");
    assert_eq!(text.len(), 32, "160 bits in base32: {text}");
    assert!(html.contains("otpauth://totp/"), "{html}");
    assert!(html.contains(&format!("secret={text}")));
    let bytes = totp_rs::Secret::try_from_base32(&text).unwrap();
    let secret = TotpSecret::from_bytes(bytes.as_bytes());

    // Not active until a code is entered: a password sign-in still needs nothing more.
    assert!(!custos::mfa::has_totp(&app.state, &ada.id).await.unwrap());
    let wrong = b
        .submit(
            "/account/security/totp/confirm",
            &[("csrf", &csrf), ("code", "000000")],
        )
        .await;
    assert_eq!(wrong.status(), 400);
    assert!(!custos::mfa::has_totp(&app.state, &ada.id).await.unwrap());
    let now = app.clock.now();
    let done = b
        .submit(
            "/account/security/totp/confirm",
            &[("csrf", &csrf), ("code", &secret.code_at(now))],
        )
        .await;
    assert_eq!(done.status(), 200, "{done:?}");
    let codes: Vec<String> = done
        .body()
        .split("<li><code>")
        .skip(1)
        .map(|s| s.split('<').next().unwrap().to_string())
        .collect();
    assert_eq!(codes.len(), 10, "{}", done.body());
    assert!(custos::mfa::has_totp(&app.state, &ada.id).await.unwrap());
    // Sealed at rest: the stored value is not the secret in any encoding.
    let stored = app
        .state
        .store
        .totp_enrolment(&ada.id)
        .await
        .unwrap()
        .unwrap();
    assert!(!stored.sealed_secret.contains(&text));
    let page = b.get(&app.url("/account/security")).await;
    assert!(
        page.body().contains("<strong>10</strong> of 10"),
        "{}",
        page.body()
    );

    // Discovery advertises both ACRs.
    let meta: Value = app
        .http
        .get(app.url("/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        meta["acr_values_supported"],
        serde_json::json!([ACR_PWD, ACR_MFA])
    );

    // A new browser signs in: password, then the code (the enrolment's own code cannot be reused).
    app.clock.advance(STEP_SECS);
    let b2 = Browser::new(&app);
    let (mfa, verifier) = to_second_step(&app, &b2, &c.id, &[]).await;
    assert!(mfa.body().contains("authenticator app"));
    let consent = second_factor(&b2, &mfa, &secret.code_at(app.clock.now())).await;
    assert!(is_page(&consent, "/consent"), "{consent:?}");
    let back = b2.consent(&consent, true).await;
    let (id, at) = tokens(&app, &c, &back, &verifier).await;
    for claims in [&id, &at] {
        assert_eq!(claims["acr"], ACR_MFA, "{claims}");
        assert_eq!(claims["amr"], serde_json::json!(["pwd", "otp"]), "{claims}");
        assert_eq!(claims["auth_time"], app.clock.now());
    }
    assert_eq!(id["sid"], at["sid"]);

    // Turning TOTP off needs a fresh code: a wrong one is refused, a recovery code works.
    let page = b.get(&app.url("/account/security")).await;
    let csrf = hidden(page.body(), "csrf");
    let r = b
        .submit(
            "/account/security/totp/disable",
            &[("csrf", &csrf), ("code", "123456")],
        )
        .await;
    assert_eq!(r.status(), 401);
    assert!(custos::mfa::has_totp(&app.state, &ada.id).await.unwrap());
    let r = b
        .submit(
            "/account/security/totp/disable",
            &[("csrf", &csrf), ("code", &codes[0])],
        )
        .await;
    assert_eq!(r.status(), 200, "{r:?}");
    assert!(!custos::mfa::has_totp(&app.state, &ada.id).await.unwrap());
    let kinds: Vec<String> = app
        .state
        .store
        .audit_events(100)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    for k in [
        "mfa_totp_enabled",
        "mfa_succeeded",
        "mfa_failed",
        "mfa_totp_disabled",
    ] {
        assert!(kinds.iter().any(|x| x == k), "{k} in {kinds:?}");
    }
}

#[tokio::test]
async fn the_same_code_twice_is_refused_and_skew_is_one_step() {
    let app = TestApp::start().await;
    let c = first_party(&app).await;
    let ada = user(&app, "ada@example.com").await;
    let (secret, _) = enrol(&app, &ada.id).await;
    let now = app.clock.now();
    let at = |d: i64| secret.code_at(now + d * STEP_SECS);

    let b = Browser::new(&app);
    let (mfa, verifier) = to_second_step(&app, &b, &c.id, &[]).await;
    // ±2 steps: refused, and the page says so.
    for d in [-2, 2] {
        let r = second_factor(&b, &mfa, &at(d)).await;
        assert_eq!(r.status(), 401, "{d}: {r:?}");
        assert!(r.body().contains("not right"), "{}", r.body());
    }
    // -1 step (a slow phone clock): accepted.
    let back = second_factor(&b, &mfa, &at(-1)).await;
    let (id, _) = tokens(&app, &c, &back, &verifier).await;
    assert_eq!(id["acr"], ACR_MFA);

    // The same code again, in another sign-in: refused (replay); so is an older one.
    let b = Browser::new(&app);
    let (mfa, _) = to_second_step(&app, &b, &c.id, &[]).await;
    assert_eq!(second_factor(&b, &mfa, &at(-1)).await.status(), 401);
    // +1 step (a fast phone clock): accepted; then the current step, older, is refused.
    let back = second_factor(&b, &mfa, &at(1)).await;
    assert!(back.param("code").is_some(), "{back:?}");
    let b = Browser::new(&app);
    let (mfa, _) = to_second_step(&app, &b, &c.id, &[]).await;
    assert_eq!(second_factor(&b, &mfa, &at(0)).await.status(), 401);
    assert_eq!(second_factor(&b, &mfa, &at(1)).await.status(), 401);
    // Time moves on: the next step's code works.
    app.clock.advance(2 * STEP_SECS);
    let back = second_factor(&b, &mfa, &secret.code_at(app.clock.now())).await;
    assert!(back.param("code").is_some(), "{back:?}");
}

#[tokio::test]
async fn concurrent_uses_of_one_code_have_one_winner() {
    let app = TestApp::start().await;
    let ada = user(&app, "ada@example.com").await;
    let (secret, _) = enrol(&app, &ada.id).await;
    let code = secret.code_at(app.clock.now());
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (s, id, code) = (app.state.clone(), ada.id.clone(), code.clone());
        tasks.push(tokio::spawn(async move {
            custos::mfa::check_code(&s, &id, &code, None).await.unwrap()
        }));
    }
    let mut ok = 0;
    for t in tasks {
        if t.await.unwrap() == custos::mfa::Check::Ok(custos::mfa::Factor::Totp) {
            ok += 1;
        }
    }
    assert_eq!(ok, 1);
}

#[tokio::test]
async fn a_recovery_code_works_once() {
    let app = TestApp::start().await;
    let c = first_party(&app).await;
    let ada = user(&app, "ada@example.com").await;
    let (_, codes) = enrol(&app, &ada.id).await;

    let b = Browser::new(&app);
    let (mfa, verifier) = to_second_step(&app, &b, &c.id, &[]).await;
    // Typed loosely: upper case, spaces instead of dashes.
    let typed = codes[3].to_uppercase().replace('-', " ");
    let back = second_factor(&b, &mfa, &typed).await;
    let (id, at) = tokens(&app, &c, &back, &verifier).await;
    assert_eq!(id["amr"], serde_json::json!(["pwd", "otp"]));
    assert_eq!(at["acr"], ACR_MFA);
    assert_eq!(
        app.state.store.recovery_codes_left(&ada.id).await.unwrap(),
        9
    );
    let used = app
        .state
        .store
        .audit_events(50)
        .await
        .unwrap()
        .into_iter()
        .find(|e| e.kind == "mfa_recovery_code_used")
        .expect("an audit event");
    assert_eq!(used.subject.as_deref(), Some(ada.id.as_str()));
    assert_eq!(used.details["remaining"], 9);

    let b = Browser::new(&app);
    let (mfa, _) = to_second_step(&app, &b, &c.id, &[]).await;
    let again = second_factor(&b, &mfa, &codes[3]).await;
    assert_eq!(again.status(), 401, "a recovery code works once");
    let back = second_factor(&b, &mfa, &codes[4]).await;
    assert!(back.param("code").is_some(), "{back:?}");
}

#[tokio::test]
async fn guessing_is_limited_per_account() {
    let app = TestApp::builder()
        .with_config(|c| c.login_max_failures = 3)
        .start()
        .await;
    let c = first_party(&app).await;
    let ada = user(&app, "ada@example.com").await;
    let (secret, _) = enrol(&app, &ada.id).await;
    let b = Browser::new(&app);
    let (mfa, _) = to_second_step(&app, &b, &c.id, &[]).await;
    for guess in ["111111", "222222", "333333"] {
        assert_eq!(second_factor(&b, &mfa, guess).await.status(), 401);
    }
    // The budget is spent: even the right code is not checked, from this browser or another.
    let locked = second_factor(&b, &mfa, &secret.code_at(app.clock.now())).await;
    assert_eq!(locked.status(), 429, "{locked:?}");
    assert!(locked.body().contains("Too many"));
    // It is the password sign-in's lock: the account's next password sign-in is paused too.
    let b2 = Browser::new(&app);
    let (url, _) = authorize_url(&app, &c.id, &[]);
    let login = b2.get(&url).await;
    let r = b2.login(&login, "ada@example.com", PASSWORD).await;
    assert_eq!(r.status(), 429, "{r:?}");
    let kinds = app.state.store.audit_events(50).await.unwrap();
    assert!(
        kinds
            .iter()
            .any(|e| e.kind == "mfa_failed" && e.details["reason"] == "too_many_attempts")
    );
}

#[tokio::test]
async fn a_half_finished_login_is_bound_to_its_browser_and_expires() {
    let app = TestApp::start().await;
    let c = first_party(&app).await;
    let ada = user(&app, "ada@example.com").await;
    let (secret, _) = enrol(&app, &ada.id).await;
    let b = Browser::new(&app);
    let (mfa, _) = to_second_step(&app, &b, &c.id, &[]).await;
    let csrf = hidden(mfa.body(), "csrf");

    // Another browser cannot see or finish it, even with the form's token and a right code.
    let other = Browser::new(&app);
    assert_eq!(other.get(&app.url("/login/mfa")).await.status(), 400);
    let code = secret.code_at(app.clock.now());
    let r = other
        .submit("/login/mfa", &[("csrf", &csrf), ("code", &code)])
        .await;
    assert_eq!(r.status(), 400, "{r:?}");
    assert!(r.body().contains("expired"));
    // A wrong CSRF token in the right browser: refused before the code is looked at.
    let r = b
        .submit("/login/mfa", &[("csrf", "nope"), ("code", &code)])
        .await;
    assert_eq!(r.status(), 403);

    // Five minutes later it is gone.
    app.clock.advance(301);
    let r = second_factor(&b, &mfa, &secret.code_at(app.clock.now())).await;
    assert_eq!(r.status(), 400, "{r:?}");
    assert!(r.body().contains("expired"));
}

#[tokio::test]
async fn step_up_via_acr_values_rotates_the_session_and_max_age_asks_again() {
    let app = TestApp::start().await;
    let c = first_party(&app).await;
    let ada = user(&app, "ada@example.com").await;
    let (b, jar) = jar_browser(&app);

    // Not enrolled yet: a password sign-in, acr pwd.
    let (url, verifier) = authorize_url(&app, &c.id, &[]);
    let login = b.get(&url).await;
    let back = b.login(&login, "ada@example.com", PASSWORD).await;
    let (id, at) = tokens(&app, &c, &back, &verifier).await;
    assert_eq!(id["acr"], ACR_PWD);
    assert_eq!(at["amr"], serde_json::json!(["pwd"]));
    let sid = id["sid"].clone();

    // Enrolled since. A request without acr_values is served by the password session as it is.
    let (secret, _) = enrol(&app, &ada.id).await;
    let (url, verifier) = authorize_url(&app, &c.id, &[]);
    let back = b.get(&url).await;
    assert_eq!(tokens(&app, &c, &back, &verifier).await.0["acr"], ACR_PWD);

    // prompt=none cannot step up.
    let (url, _) = authorize_url(&app, &c.id, &[("acr_values", ACR_MFA), ("prompt", "none")]);
    let back = b.get(&url).await;
    assert_eq!(back.param("error").as_deref(), Some("interaction_required"));

    // acr_values asks for multi-factor: no password again, straight to the second factor.
    let (url, verifier) = authorize_url(&app, &c.id, &[("acr_values", ACR_MFA)]);
    let mfa = b.get(&url).await;
    assert!(is_page(&mfa, "/login/mfa"), "{mfa:?}");
    let csrf = hidden(mfa.body(), "csrf");
    let before = session_cookie(&jar, &app);
    assert!(!before.is_empty());
    let r = b
        .http
        .post(app.url("/login/mfa"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("code", &secret.code_at(app.clock.now())),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let set: Vec<String> = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    assert!(
        set.iter().any(|c| c.starts_with("custos_session=")),
        "{set:?}"
    );
    let back = b.follow(r).await;
    let after = session_cookie(&jar, &app);
    assert_ne!(
        before, after,
        "the session id is rotated when the second factor completes"
    );
    let (id, at) = tokens(&app, &c, &back, &verifier).await;
    assert_eq!(id["acr"], ACR_MFA);
    assert_eq!(id["amr"], serde_json::json!(["pwd", "otp"]));
    assert_eq!(at["acr"], ACR_MFA);
    assert_eq!(id["sid"], sid, "a step-up keeps the session (and its sid)");

    // max_age: once it has passed, the password and the second factor are asked again.
    app.clock.advance(120);
    let (url, verifier) = authorize_url(&app, &c.id, &[("max_age", "60")]);
    let login = b.get(&url).await;
    assert!(login.is_login_page(), "{login:?}");
    let mfa = b.login(&login, "ada@example.com", PASSWORD).await;
    assert!(is_page(&mfa, "/login/mfa"), "{mfa:?}");
    let back = second_factor(&b, &mfa, &secret.code_at(app.clock.now())).await;
    let (id, _) = tokens(&app, &c, &back, &verifier).await;
    assert_eq!(id["acr"], ACR_MFA);
    assert_eq!(id["auth_time"], app.clock.now());
}

/// A scripted browser whose cookie jar the test can read.
fn jar_browser(app: &TestApp) -> (Browser, std::sync::Arc<reqwest::cookie::Jar>) {
    let jar = std::sync::Arc::new(reqwest::cookie::Jar::default());
    let http = reqwest::Client::builder()
        .cookie_provider(jar.clone())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    (
        Browser {
            http,
            base: app.base.clone(),
        },
        jar,
    )
}

/// The session cookie's value in the jar.
fn session_cookie(jar: &reqwest::cookie::Jar, app: &TestApp) -> String {
    use reqwest::cookie::CookieStore;
    let all = jar
        .cookies(&app.base.parse().unwrap())
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    all.split("; ")
        .find_map(|kv| kv.strip_prefix("custos_session="))
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn client_flag_and_role_policy_require_a_second_factor() {
    let app = TestApp::builder()
        .with_config(|c| c.mfa_required_roles = "admin".into())
        .start()
        .await;
    let strict = app
        .client(custos::clients::NewClient {
            skip_consent: true,
            require_mfa: true,
            ..web_client(false)
        })
        .await;
    let relaxed = first_party(&app).await;
    let ada = user(&app, "ada@example.com").await;

    // Not enrolled: the strict client cannot be signed in to; the other can, with a password.
    let b = Browser::new(&app);
    let (url, _) = authorize_url(&app, &strict.id, &[]);
    let login = b.get(&url).await;
    let r = b.login(&login, "ada@example.com", PASSWORD).await;
    assert_eq!(r.status(), 403, "{r:?}");
    assert!(r.body().contains("/account/security"));
    let (url, verifier) = authorize_url(&app, &relaxed.id, &[]);
    let back = b.get(&url).await;
    let back = if back.is_login_page() {
        b.login(&back, "ada@example.com", PASSWORD).await
    } else {
        back
    };
    assert_eq!(
        tokens(&app, &relaxed, &back, &verifier).await.0["acr"],
        ACR_PWD
    );

    // An admin needs it everywhere.
    assert!(
        app.state
            .store
            .set_user_roles(&ada.id, &["admin".into()])
            .await
            .unwrap()
    );
    let (url, _) = authorize_url(&app, &relaxed.id, &[]);
    let r = b.get(&url).await;
    assert_eq!(r.status(), 403, "the password session must step up: {r:?}");

    // Enrolled: the strict client gets a second step inside the existing session.
    let (secret, _) = enrol(&app, &ada.id).await;
    let (url, verifier) = authorize_url(&app, &strict.id, &[]);
    let mfa = b.get(&url).await;
    assert!(is_page(&mfa, "/login/mfa"), "{mfa:?}");
    let back = second_factor(&b, &mfa, &secret.code_at(app.clock.now())).await;
    let (id, _) = tokens(&app, &strict, &back, &verifier).await;
    assert_eq!(id["acr"], ACR_MFA);
}

/// Waits (bounded) for a new mail in the outbox folder whose text contains `subject`; returns it.
async fn next_mail(
    dir: &std::path::Path,
    subject: &str,
    seen: &mut Vec<std::path::PathBuf>,
) -> String {
    for _ in 0..200 {
        // Not the mailer's temporary files: one read mid-write would be seen twice, as the file
        // and again once renamed, and the second time would pass for the next mail.
        for f in crate::accounts::delivered_mails(dir) {
            if seen.contains(&f) {
                continue;
            }
            // Undo quoted-printable soft line breaks.
            let text = std::fs::read_to_string(&f)
                .unwrap_or_default()
                .replace("=\r\n", "")
                .replace("=\n", "");
            if text.contains(subject) {
                seen.push(f);
                return text;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("no mail `{subject}` in {}", dir.display());
}

/// The six digits after "finish signing in: " in a mail.
fn emailed_code(mail: &str) -> String {
    let after = mail
        .split("finish signing in: ")
        .nth(1)
        .unwrap_or_else(|| panic!("no code in {mail}"));
    after.chars().take(6).collect()
}

#[tokio::test]
async fn an_emailed_code_is_the_second_factor_without_an_authenticator() {
    let outbox = tempfile::tempdir().unwrap();
    let dir = outbox.path().to_path_buf();
    let app = TestApp::builder()
        .with_config(|c| {
            c.mfa_email_otp = true;
            c.mail_outbox_dir = dir.clone();
        })
        .start()
        .await;
    let c = app
        .client(custos::clients::NewClient {
            skip_consent: true,
            require_mfa: true,
            ..web_client(false)
        })
        .await;
    user(&app, "ada@example.com").await;
    let mut seen = Vec::new();

    let b = Browser::new(&app);
    let (mfa, verifier) = to_second_step(&app, &b, &c.id, &[]).await;
    assert!(mfa.body().contains("a•••@example.com"), "{}", mfa.body());
    let code = emailed_code(&next_mail(&dir, "Your sign-in code", &mut seen).await);
    let wrong = if code == "000000" { "111111" } else { "000000" };
    assert_eq!(second_factor(&b, &mfa, wrong).await.status(), 401);
    let back = second_factor(&b, &mfa, &code).await;
    let (id, at) = tokens(&app, &c, &back, &verifier).await;
    assert_eq!(id["acr"], ACR_MFA);
    assert_eq!(at["amr"], serde_json::json!(["pwd", "otp"]));

    // The code was used up with its sign-in: the next sign-in gets (and needs) a new one.
    let b = Browser::new(&app);
    let (mfa, _) = to_second_step(&app, &b, &c.id, &[]).await;
    let fresh = emailed_code(&next_mail(&dir, "Your sign-in code", &mut seen).await);
    if fresh != code {
        assert_eq!(second_factor(&b, &mfa, &code).await.status(), 401);
    }
    // "Send a new code" replaces it; the old one no longer works.
    let csrf = hidden(mfa.body(), "csrf");
    let r = b
        .submit("/login/mfa", &[("csrf", &csrf), ("action", "resend")])
        .await;
    assert_eq!(r.status(), 200);
    assert!(r.body().contains("A new code was sent"));
    let newest = emailed_code(&next_mail(&dir, "Your sign-in code", &mut seen).await);
    if newest != fresh {
        assert_eq!(second_factor(&b, &mfa, &fresh).await.status(), 401);
    }
    let back = second_factor(&b, &mfa, &newest).await;
    assert!(back.param("code").is_some(), "{back:?}");
}

#[tokio::test]
async fn a_mail_says_when_few_recovery_codes_are_left() {
    let outbox = tempfile::tempdir().unwrap();
    let dir = outbox.path().to_path_buf();
    let app = TestApp::builder()
        .with_config(|c| c.mail_outbox_dir = dir.clone())
        .start()
        .await;
    let ada = user(&app, "ada@example.com").await;
    let (_, codes) = enrol(&app, &ada.id).await;
    for c in &codes[..7] {
        assert_eq!(
            custos::mfa::check_code(&app.state, &ada.id, c, None)
                .await
                .unwrap(),
            custos::mfa::Check::Ok(custos::mfa::Factor::RecoveryCode)
        );
    }
    assert_eq!(
        app.state.store.recovery_codes_left(&ada.id).await.unwrap(),
        3
    );
    let mail = next_mail(&dir, "Few recovery codes left", &mut Vec::new()).await;
    assert!(mail.contains("3 recovery codes are left"), "{mail}");
    assert!(mail.contains("ada@example.com"));
}
