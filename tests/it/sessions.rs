//! Sessions people can see and end: single sign-on across clients, prompt=login and max_age,
//! "remember me", the account's Sessions page, the per-user limit under parallel sign-ins, refresh
//! tokens of ended sessions, and the `session` CLI.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use custos::clients::NewClient;
use custos::clock::Clock;
use custos::config::SecretString;
use serde_json::Value;

use crate::browser::{Browser, Landing, PASSWORD, REDIRECT, hidden, user, web_client};
use crate::support::{T0, TestApp, TestClient, oauth_error};

pub const VERIFIER: &str = "session-test-verifier-0123456789-abcdefghijklmnopq";
pub const FIREFOX: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";

/// A browser that says it is Firefox on Linux.
pub fn firefox(app: &TestApp) -> Browser {
    Browser {
        http: reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(FIREFOX)
            .build()
            .unwrap(),
        base: app.base.clone(),
    }
}

/// A first-party client (no consent page) allowed refresh tokens.
pub async fn first_party(app: &TestApp, name: &str, backchannel: Option<String>) -> TestClient {
    app.client(NewClient {
        name: name.into(),
        skip_consent: true,
        backchannel_logout_uri: backchannel,
        ..web_client(false)
    })
    .await
}

/// GET /authorize for `client` (code flow, PKCE with [`VERIFIER`], scope openid + offline_access).
pub async fn authorize(
    app: &TestApp,
    browser: &Browser,
    client: &str,
    extra: &[(&str, &str)],
) -> Landing {
    let challenge = custos::oauth::pkce::s256(VERIFIER);
    let mut params = vec![
        ("response_type", "code"),
        ("client_id", client),
        ("scope", "openid offline_access"),
        ("code_challenge", challenge.as_str()),
    ];
    params.extend_from_slice(extra);
    let url = reqwest::Url::parse_with_params(&app.url("/authorize"), &params).unwrap();
    browser.get(url.as_str()).await
}

/// Signs in on the login page when one is shown; returns the code.
pub async fn code(app: &TestApp, browser: &Browser, client: &str, email: &str) -> String {
    let mut landing = authorize(app, browser, client, &[]).await;
    if landing.is_login_page() {
        landing = browser.login(&landing, email, PASSWORD).await;
    }
    landing
        .param("code")
        .unwrap_or_else(|| panic!("no code: {landing:?}"))
}

/// Redeems a code; the token response.
pub async fn redeem(app: &TestApp, c: &TestClient, code: &str) -> Value {
    let r = app
        .post_form(
            "/token",
            &[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", REDIRECT),
                ("code_verifier", VERIFIER),
            ],
            Some((&c.id, &c.secret)),
        )
        .await;
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

/// Signs in when needed and redeems the code: the token response.
pub async fn tokens(app: &TestApp, browser: &Browser, c: &TestClient, email: &str) -> Value {
    redeem(app, c, &code(app, browser, &c.id, email).await).await
}

/// The `sid` of a token response's ID token.
pub fn sid_of(t: &Value) -> String {
    claims(t["id_token"].as_str().unwrap())["sid"]
        .as_str()
        .unwrap()
        .to_string()
}

pub fn claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

/// Whether the browser passes /authorize with prompt=none (i.e. is signed in).
pub async fn signed_in(app: &TestApp, browser: &Browser, client: &str) -> bool {
    authorize(app, browser, client, &[("prompt", "none")])
        .await
        .param("code")
        .is_some()
}

async fn refresh(app: &TestApp, c: &TestClient, rt: &str) -> reqwest::Response {
    app.post_form(
        "/token",
        &[("grant_type", "refresh_token"), ("refresh_token", rt)],
        Some((&c.id, &c.secret)),
    )
    .await
}

#[tokio::test]
async fn single_sign_on_across_two_clients_carries_auth_time_amr_and_acr() {
    let app = TestApp::start().await;
    let a = first_party(&app, "App A", None).await;
    let b = first_party(&app, "App B", None).await;
    user(&app, "ada@example.com").await;
    let browser = firefox(&app);

    let ta = tokens(&app, &browser, &a, "ada@example.com").await;
    app.clock.advance(120);
    // The second client: no login page, straight back with a code.
    let landing = authorize(&app, &browser, &b.id, &[]).await;
    let code_b = landing
        .param("code")
        .expect("no login page for the second client");
    let tb = redeem(&app, &b, &code_b).await;
    let (ia, ib) = (
        claims(ta["id_token"].as_str().unwrap()),
        claims(tb["id_token"].as_str().unwrap()),
    );
    assert_eq!(ia["sid"], ib["sid"], "one session");
    assert_eq!(ia["auth_time"], T0);
    assert_eq!(
        ib["auth_time"], T0,
        "the session's auth_time, not the time of the request"
    );
    assert_eq!(ib["amr"], serde_json::json!(["pwd"]));
    assert_eq!(ib["acr"], custos::session::ACR_PASSWORD);
    let clients = app
        .state
        .store
        .session_clients(ia["sid"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(
        clients,
        vec![a.id.clone(), b.id.clone()],
        "both clients recorded"
    );

    // max_age: a sign-in older than it asks again; younger passes.
    assert!(
        authorize(&app, &browser, &b.id, &[("max_age", "300")])
            .await
            .param("code")
            .is_some()
    );
    let again = authorize(&app, &browser, &b.id, &[("max_age", "60")]).await;
    assert!(again.is_login_page(), "{again:?}");
    // prompt=login: the login page even with a session; signing in again keeps the session (same
    // sid: the relying parties keep theirs) with a new auth_time and a new cookie.
    let old_cookie = app
        .state
        .store
        .session(ia["sid"].as_str().unwrap())
        .await
        .unwrap()
        .unwrap();
    app.clock.advance(60);
    let login = authorize(&app, &browser, &b.id, &[("prompt", "login")]).await;
    assert!(login.is_login_page());
    let back = browser.login(&login, "ada@example.com", PASSWORD).await;
    let t2 = redeem(&app, &b, &back.param("code").expect("code")).await;
    let i2 = claims(t2["id_token"].as_str().unwrap());
    assert_eq!(i2["sid"], ia["sid"]);
    assert_eq!(i2["auth_time"], T0 + 180);
    let after = app
        .state
        .store
        .session(ia["sid"].as_str().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(after.auth_time, T0 + 180);
    assert_eq!(old_cookie.created_at, after.created_at);
    assert_eq!(after.device, "Firefox on Linux");
    assert_eq!(after.ip.as_deref(), Some("127.0.0.1"));
    // The cookie from before the re-authentication no longer works (rotated on login).
    assert!(signed_in(&app, &browser, &a.id).await);
}

/// Posts the login form on `login` (with `extra` fields): a successful sign-in.
async fn post_login(
    browser: &Browser,
    login: &Landing,
    extra: &[(&str, &str)],
) -> reqwest::Response {
    let r = browser.post_login(login, extra).await;
    assert_eq!(r.status(), 303);
    r
}

/// Posts the login form on `login` and returns the new session cookie's value.
async fn login_cookie(browser: &Browser, login: &Landing) -> String {
    let r = post_login(browser, login, &[]).await;
    let set = r.headers()["set-cookie"].to_str().unwrap().to_string();
    set.strip_prefix("custos_session=")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string()
}

/// GET /account/sessions with exactly this session cookie: 200 when it names a live session.
async fn cookie_works(app: &TestApp, value: &str) -> bool {
    app.http
        .get(app.url("/account/sessions"))
        .header("cookie", format!("custos_session={value}"))
        .send()
        .await
        .unwrap()
        .status()
        == 200
}

#[tokio::test]
async fn the_cookie_is_rotated_on_every_login_and_the_old_one_is_dead() {
    let app = TestApp::start().await;
    let a = first_party(&app, "App A", None).await;
    user(&app, "ada@example.com").await;
    let browser = Browser::new(&app);
    let login = authorize(&app, &browser, &a.id, &[]).await;
    let first = login_cookie(&browser, &login).await;
    assert!(cookie_works(&app, &first).await);
    let sid = app
        .state
        .store
        .session_by_token(&custos::session::hash(&first))
        .await
        .unwrap()
        .unwrap()
        .id;
    // Only the hash is stored.
    assert_ne!(sid, first);

    let login = authorize(&app, &browser, &a.id, &[("prompt", "login")]).await;
    let second = login_cookie(&browser, &login).await;
    assert_ne!(first, second);
    assert!(cookie_works(&app, &second).await);
    assert!(
        !cookie_works(&app, &first).await,
        "the pre-login cookie is dead"
    );
    let rec = app
        .state
        .store
        .session_by_token(&custos::session::hash(&second))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rec.id, sid, "the same session, with a new cookie");
    // A value the server never issued is nobody's session.
    assert!(!cookie_works(&app, "planted-cookie-value-planted-cookie-value-xx").await);
}

#[tokio::test]
async fn remember_me_gives_a_persistent_cookie_and_a_long_session() {
    let app = TestApp::builder()
        .with_config(|c| c.session_remember_me_ttl_secs = 30 * 86_400)
        .start()
        .await;
    let a = first_party(&app, "App A", None).await;
    let ada = user(&app, "ada@example.com").await;
    for remember in [false, true] {
        let browser = Browser::new(&app);
        let login = authorize(&app, &browser, &a.id, &[]).await;
        assert!(login.body().contains("name=\"remember_me\""));
        let extra: &[(&str, &str)] = if remember {
            &[("remember_me", "on")]
        } else {
            &[]
        };
        let r = post_login(&browser, &login, extra).await;
        let set = r.headers()["set-cookie"].to_str().unwrap().to_string();
        assert!(
            set.contains("HttpOnly") && set.contains("SameSite=Lax"),
            "{set}"
        );
        if remember {
            assert!(set.contains(&format!("Max-Age={}", 30 * 86_400)), "{set}");
        } else {
            assert!(!set.contains("Max-Age"), "a browser-session cookie: {set}");
        }
    }
    let list = app
        .state
        .store
        .sessions_for_user(&ada.id, T0, false)
        .await
        .unwrap();
    assert_eq!(list.len(), 2);
    let long = list.iter().find(|s| s.remember_me).unwrap();
    let short = list.iter().find(|s| !s.remember_me).unwrap();
    assert_eq!(long.absolute_expires_at, T0 + 30 * 86_400);
    assert_eq!(short.absolute_expires_at, T0 + 12 * 3600);
    assert_eq!(short.idle_expires_at, T0 + 2 * 3600);
    // Past the idle lifetime the short one is over; the remembered one lives on.
    app.clock.advance(3 * 3600);
    let live = app
        .state
        .store
        .sessions_for_user(&ada.id, app.clock.now(), false)
        .await
        .unwrap();
    assert_eq!(live.len(), 1);
    assert!(live[0].remember_me);
}

/// Sessions page rows: (sid, is this device).
fn rows(html: &str) -> Vec<(String, bool)> {
    html.split("<li class=\"session\" id=\"session-")
        .skip(1)
        .map(|chunk| {
            let sid = chunk.split('"').next().unwrap().to_string();
            let this = chunk.split("</li>").next().unwrap().contains("This device");
            (sid, this)
        })
        .collect()
}

#[tokio::test]
async fn the_account_page_lists_sessions_and_ends_one_or_all_others() {
    let app = TestApp::start().await;
    let a = first_party(&app, "App A", None).await;
    user(&app, "ada@example.com").await;
    user(&app, "bob@example.com").await;
    let (laptop, phone, tablet) = (firefox(&app), Browser::new(&app), Browser::new(&app));
    for b in [&laptop, &phone, &tablet] {
        tokens(&app, b, &a, "ada@example.com").await;
    }
    let bob = Browser::new(&app);
    code(&app, &bob, &a.id, "bob@example.com").await;

    // Signed out: the page sends the browser to sign in and come back.
    let r = app
        .http
        .get(app.url("/account/sessions"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(
        r.headers()["location"],
        "/login?return_to=/account/sessions"
    );

    let page = laptop.get(&app.url("/account/sessions")).await;
    assert_eq!(page.status(), 200, "{page:?}");
    let html = page.body().to_string();
    let list = rows(&html);
    assert_eq!(list.len(), 3, "ada's three sessions, not bob's");
    assert_eq!(list.iter().filter(|(_, this)| *this).count(), 1);
    assert!(list[0].1, "this device first");
    assert!(html.contains("Firefox on Linux") && html.contains("127.0.0.1"));
    assert!(html.contains("App A"), "the apps used in each session");
    let csrf = hidden(&html, "csrf");

    // The phone's session: found by elimination (the tablet signed in last, and is listed first).
    let phone_sid = {
        let page = phone.get(&app.url("/account/sessions")).await;
        rows(page.body()).into_iter().find(|(_, t)| *t).unwrap().0
    };
    // A forged or missing CSRF token changes nothing.
    for bad in ["", "forged"] {
        let r = laptop
            .submit(
                "/account/sessions/end",
                &[("csrf", bad), ("sid", phone_sid.as_str())],
            )
            .await;
        assert_eq!(r.status(), 403);
    }
    // Bob cannot end Ada's session with his own valid token.
    let bob_page = bob.get(&app.url("/account/sessions")).await;
    let bob_csrf = hidden(bob_page.body(), "csrf");
    bob.submit(
        "/account/sessions/end",
        &[("csrf", bob_csrf.as_str()), ("sid", phone_sid.as_str())],
    )
    .await;
    assert!(signed_in(&app, &phone, &a.id).await);

    // End one.
    let done = laptop
        .submit(
            "/account/sessions/end",
            &[("csrf", csrf.as_str()), ("sid", phone_sid.as_str())],
        )
        .await;
    assert_eq!(done.status(), 200);
    assert!(done.body().contains("The session was ended."));
    assert_eq!(rows(done.body()).len(), 2);
    assert!(
        !signed_in(&app, &phone, &a.id).await,
        "the phone is signed out"
    );
    assert!(signed_in(&app, &tablet, &a.id).await);

    // End all others.
    let done = laptop
        .submit("/account/sessions/end-others", &[("csrf", csrf.as_str())])
        .await;
    assert!(done.body().contains("All other sessions were ended."));
    let left = rows(done.body());
    assert_eq!(left.len(), 1);
    assert!(left[0].1);
    assert!(!signed_in(&app, &tablet, &a.id).await);
    assert!(signed_in(&app, &laptop, &a.id).await, "this device stays");
    assert!(signed_in(&app, &bob, &a.id).await, "nobody else is touched");

    // Ending this device's own session signs out here.
    let r = laptop
        .http
        .post(app.url("/account/sessions/end"))
        .form(&[("csrf", csrf.as_str()), ("sid", left[0].0.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert!(
        r.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    assert!(!signed_in(&app, &laptop, &a.id).await);
    let events: Vec<String> = app
        .state
        .store
        .audit_events(100)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == "session_ended")
        .map(|e| e.details["reason"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(
        events.iter().filter(|r| *r == "ended_by_user").count(),
        2,
        "{events:?}"
    );
    assert_eq!(events.iter().filter(|r| *r == "ended_others").count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_session_limit_holds_under_twenty_parallel_logins() {
    let app = TestApp::builder()
        .with_config(|c| {
            c.session_limit_per_user = 3;
            // Twenty sign-ins of one account at once are what this test is about, not a guesser.
            c.login_max_failures = 1000;
        })
        .start()
        .await;
    let a = first_party(&app, "App A", None).await;
    let ada = user(&app, "ada@example.com").await;
    let browsers: Vec<Browser> = (0..20).map(|_| Browser::new(&app)).collect();
    // Every browser first reaches the login page, then all sign in at once.
    let mut pages = Vec::new();
    for b in &browsers {
        pages.push(authorize(&app, b, &a.id, &[]).await);
    }
    let logins = browsers
        .iter()
        .zip(&pages)
        .map(|(b, p)| b.login(p, "ada@example.com", PASSWORD));
    let landings = futures_join_all(logins).await;
    // Each sign-in succeeds; a browser whose brand-new session a later sign-in already ended on its
    // way back to /authorize is simply asked to sign in again.
    for l in &landings {
        assert!(l.param("code").is_some() || l.is_login_page(), "{l:?}");
    }
    let live = app
        .state
        .store
        .sessions_for_user(&ada.id, app.clock.now(), false)
        .await
        .unwrap();
    assert_eq!(live.len(), 3, "the limit holds");
    let mut still = 0;
    for b in &browsers {
        if signed_in(&app, b, &a.id).await {
            still += 1;
        }
    }
    assert_eq!(
        still, 3,
        "exactly the three live sessions' browsers are signed in"
    );
    let ended = app
        .state
        .store
        .sessions_for_user(&ada.id, app.clock.now(), true)
        .await
        .unwrap()
        .into_iter()
        .filter(|s| s.end_reason.as_deref() == Some("session_limit"))
        .count();
    assert_eq!(ended, 17);
}

/// `join_all` without the futures crate: spawn each on the runtime (they really run in parallel).
async fn futures_join_all<F>(futs: impl Iterator<Item = F>) -> Vec<Landing>
where
    F: std::future::Future<Output = Landing>,
{
    // The futures borrow the browsers, so they cannot be spawned; poll them together instead.
    let mut set = Vec::new();
    for f in futs {
        set.push(Box::pin(f));
    }
    let mut out: Vec<Option<Landing>> = (0..set.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in set.iter_mut().enumerate() {
            if out[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => out[i] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().map(Option::unwrap).collect()
}

#[tokio::test]
async fn the_limit_ends_the_least_recently_seen_session() {
    let app = TestApp::builder()
        .with_config(|c| c.session_limit_per_user = 2)
        .start()
        .await;
    let a = first_party(&app, "App A", None).await;
    user(&app, "ada@example.com").await;
    let (first, second, third) = (Browser::new(&app), Browser::new(&app), Browser::new(&app));
    code(&app, &first, &a.id, "ada@example.com").await;
    app.clock.advance(10);
    code(&app, &second, &a.id, "ada@example.com").await;
    // The oldest session is used again: now the second one is the least recently seen.
    app.clock.advance(100);
    assert!(signed_in(&app, &first, &a.id).await);
    app.clock.advance(100);
    code(&app, &third, &a.id, "ada@example.com").await;
    assert!(signed_in(&app, &first, &a.id).await);
    assert!(
        !signed_in(&app, &second, &a.id).await,
        "least recently seen"
    );
    assert!(signed_in(&app, &third, &a.id).await, "never the new one");
}

#[tokio::test]
async fn refresh_tokens_from_an_ended_session_are_refused() {
    for survive in [false, true] {
        let app = TestApp::builder()
            .with_config(|c| c.offline_access_survives_logout = survive)
            .start()
            .await;
        let a = first_party(&app, "App A", None).await;
        user(&app, "ada@example.com").await;
        let browser = Browser::new(&app);
        let t = tokens(&app, &browser, &a, "ada@example.com").await;
        let rt = t["refresh_token"].as_str().unwrap().to_string();
        let r = refresh(&app, &a, &rt).await;
        assert_eq!(r.status(), 200);
        let rt2 = r.json::<Value>().await.unwrap()["refresh_token"]
            .as_str()
            .unwrap()
            .to_string();
        // A code issued in the session but redeemed after it ended is refused too.
        let late_code = authorize(&app, &browser, &a.id, &[])
            .await
            .param("code")
            .unwrap();
        // Sign out (RP-initiated logout with the ID token as hint).
        let url = reqwest::Url::parse_with_params(
            &app.url("/logout"),
            &[("id_token_hint", t["id_token"].as_str().unwrap())],
        )
        .unwrap();
        assert_eq!(browser.get(url.as_str()).await.status(), 200);
        let r = refresh(&app, &a, &rt2).await;
        if survive {
            assert_eq!(r.status(), 200, "offline_access_survives_logout = true");
        } else {
            let (status, error, _) = oauth_error(r).await;
            assert_eq!((status, error.as_str()), (400, "invalid_grant"));
        }
        let r = app
            .post_form(
                "/token",
                &[
                    ("grant_type", "authorization_code"),
                    ("code", &late_code),
                    ("redirect_uri", REDIRECT),
                    ("code_verifier", VERIFIER),
                ],
                Some((&a.id, &a.secret)),
            )
            .await;
        let (status, error, _) = oauth_error(r).await;
        assert_eq!((status, error.as_str()), (400, "invalid_grant"));
    }
}

#[tokio::test]
async fn ending_a_persons_sessions_through_the_api_keeps_the_one_named() {
    let app = TestApp::start().await;
    let a = first_party(&app, "App A", None).await;
    let ada = user(&app, "ada@example.com").await;
    let (here, there) = (Browser::new(&app), Browser::new(&app));
    let t = tokens(&app, &here, &a, "ada@example.com").await;
    let t_there = tokens(&app, &there, &a, "ada@example.com").await;
    let keep = sid_of(&t);
    let n = custos::sessions::end_user_sessions(
        &app.state,
        &ada.id,
        Some(&keep),
        custos::sessions::reason::PASSWORD_CHANGED,
    )
    .await
    .unwrap();
    assert_eq!(n, 1);
    assert!(signed_in(&app, &here, &a.id).await);
    assert!(!signed_in(&app, &there, &a.id).await);
    let (status, error, _) =
        oauth_error(refresh(&app, &a, t_there["refresh_token"].as_str().unwrap()).await).await;
    assert_eq!((status, error.as_str()), (400, "invalid_grant"));
    assert_eq!(
        refresh(&app, &a, t["refresh_token"].as_str().unwrap())
            .await
            .status(),
        200
    );
    // Again: nothing left to end. Then everything, by sid.
    assert_eq!(
        custos::sessions::end_user_sessions(&app.state, &ada.id, Some(&keep), "password_changed")
            .await
            .unwrap(),
        0
    );
    assert!(
        custos::sessions::end_session(&app.state, &keep, "account_disabled")
            .await
            .unwrap()
    );
    assert!(
        !custos::sessions::end_session(&app.state, &keep, "account_disabled")
            .await
            .unwrap()
    );
    assert!(!signed_in(&app, &here, &a.id).await);
}

/// A database several apps (or the CLI) can share — a fresh Postgres one in the backend run, else a
/// SQLite file in `dir` — and a KEK for all of them.
pub async fn shared_database(dir: &std::path::Path) -> (String, String) {
    let db = match crate::support::fresh_database().await {
        Some(url) => url,
        None => format!("sqlite://{}/custos.db?mode=rwc", dir.display()),
    };
    let kek = custos::keys::seal::Kek::generate()
        .unwrap()
        .to_base64()
        .to_string();
    (db, kek)
}

/// The `end_reason` of every session in `session list --all --json` output.
fn end_reasons(json: &str) -> Vec<String> {
    let all: Value = serde_json::from_str(json).unwrap();
    all.as_array()
        .unwrap()
        .iter()
        .map(|s| s["end_reason"].as_str().unwrap_or("-").to_string())
        .collect()
}

#[tokio::test]
async fn the_cli_lists_and_ends_a_persons_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let (db, kek) = shared_database(dir.path()).await;
    let (db2, kek2) = (db.clone(), kek.clone());
    let app = TestApp::builder()
        .with_config(move |c| {
            c.database_url = SecretString(db2);
            c.kek = Some(SecretString(kek2));
        })
        .start()
        .await;
    // The CLI reads the real clock.
    app.clock.set(chrono::Utc::now().timestamp());
    let a = first_party(&app, "App A", None).await;
    let ada = user(&app, "ada@example.com").await;
    let (one, two) = (firefox(&app), Browser::new(&app));
    tokens(&app, &one, &a, "ada@example.com").await;
    tokens(&app, &two, &a, "ada@example.com").await;
    let custos = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_custos"))
            .env_clear()
            .current_dir(dir.path())
            .env("CUSTOS_DATABASE_URL", &db)
            .env("CUSTOS_KEK", &kek)
            .env("CUSTOS_LOG_LEVEL", "warn")
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (code_, out, err) = custos(&["session", "list", "--user", "ada@example.com", "--json"]);
    assert_eq!(code_, 0, "{err}");
    let list: Value = serde_json::from_str(&out).unwrap();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert!(list.iter().any(|s| s["device"] == "Firefox on Linux"));
    assert!(
        list.iter()
            .all(|s| s["clients"] == serde_json::json!([a.id]))
    );
    let first = list[0]["sid"].as_str().unwrap().to_string();

    // A too-short prefix and an unknown one are refused.
    assert_eq!(custos(&["session", "end", "abc"]).0, 2);
    assert_eq!(custos(&["session", "end", "zzzzzzzzzz"]).0, 1);
    let (code_, out, err) = custos(&["session", "end", &first[..8], "--json"]);
    assert_eq!(code_, 0, "{err}");
    let ended: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(ended[0]["sid"], first.as_str());
    let live = app
        .state
        .store
        .sessions_for_user(&ada.id, app.clock.now(), false)
        .await
        .unwrap();
    assert_eq!(live.len(), 1);
    assert_ne!(live[0].id, first);

    let (code_, _, err) = custos(&["session", "end", "--user", "ada@example.com", "--all"]);
    assert_eq!(code_, 0, "{err}");
    assert!(
        app.state
            .store
            .sessions_for_user(&ada.id, app.clock.now(), false)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(!signed_in(&app, &one, &a.id).await && !signed_in(&app, &two, &a.id).await);
    let list_all = [
        "session",
        "list",
        "--user",
        "ada@example.com",
        "--all",
        "--json",
    ];
    assert!(
        end_reasons(&custos(&list_all).1)
            .iter()
            .all(|r| r == "admin")
    );

    // Disabling the account ends its sessions too; enabling lets the person sign in again.
    tokens(&app, &one, &a, "ada@example.com").await;
    assert!(signed_in(&app, &one, &a.id).await);
    let (code_, _, err) = custos(&["user", "disable", "--email", "ada@example.com"]);
    assert_eq!(code_, 0, "{err}");
    assert!(err.contains("1 sessions ended"), "{err}");
    assert!(!signed_in(&app, &one, &a.id).await);
    let reasons = end_reasons(&custos(&list_all).1);
    assert_eq!(
        reasons.iter().filter(|r| *r == "account_disabled").count(),
        1
    );
    let login = authorize(&app, &one, &a.id, &[]).await;
    assert_eq!(
        one.login(&login, "ada@example.com", PASSWORD)
            .await
            .status(),
        401,
        "a disabled account cannot sign in"
    );
    assert_eq!(
        custos(&["user", "enable", "--email", "ada@example.com"]).0,
        0
    );
    tokens(&app, &one, &a, "ada@example.com").await;
}
