//! A real browser: Debian's Chromium, headless, driven over WebDriver (chromedriver + fantoccini)
//! through Custos's own login, second-factor (TOTP) and consent pages, under their real
//! Content-Security-Policy, to a redirect URI served by the test; the code it lands with is then
//! redeemed at /token and its ID token says `acr` multi-factor.
//!
//! Skipped (loudly) when `chromedriver` or `chromium` is not on PATH; `.ci/run` installs both.
//! `CUSTOS_TEST_SCREENSHOT_DIR=<dir>` keeps the screenshots it takes.

use std::fmt::Display;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::RawQuery;
use axum::response::Html;
use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

use crate::browser::{PASSWORD, user, web_client};
use crate::support::{TestApp, skip_or_fail};

/// The bound on every wait: chromedriver's start, a page, the landing at the redirect URI.
const WAIT: Duration = Duration::from_secs(20);

type Res<T> = Result<T, String>;

trait Ctx<T> {
    fn ctx(self, what: &str) -> Res<T>;
}

impl<T, E: Display> Ctx<T> for Result<T, E> {
    fn ctx(self, what: &str) -> Res<T> {
        self.map_err(|e| format!("{what}: {e}"))
    }
}

fn on_path(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    names.iter().find_map(|n| {
        std::env::split_paths(&path)
            .map(|d| d.join(n))
            .find(|p| p.is_file())
    })
}

/// A chromedriver of this test's own, on a port it picks itself (`--port=0`) and reports on stdout.
/// Dropping it, on success or failure alike, ends its session (a killed chromedriver would leave
/// Chromium running) and kills it.
struct Driver {
    child: Child,
    /// `127.0.0.1:<port>`
    addr: String,
    session: Option<String>,
}

impl Driver {
    fn start(bin: &Path) -> Res<Driver> {
        let mut child = Command::new(bin)
            .arg("--port=0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .ctx("cannot start chromedriver")?;
        let stdout = child.stdout.take().expect("piped stdout");
        let mut driver = Driver {
            child,
            addr: String::new(),
            session: None,
        };
        // Drain stdout for the driver's whole life so that it never blocks on a full pipe.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + WAIT;
        let mut seen = Vec::new();
        loop {
            let line = rx
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .map_err(|_| format!("chromedriver reported no port within {WAIT:?}: {seen:?}"))?;
            if let Some(rest) = line.split("started successfully on port ").nth(1) {
                let port: u16 = rest
                    .trim()
                    .trim_end_matches('.')
                    .parse()
                    .ctx("chromedriver's port")?;
                driver.addr = format!("127.0.0.1:{port}");
                return Ok(driver);
            }
            seen.push(line);
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        if let Some(id) = self.session.take()
            && let Ok(mut conn) = std::net::TcpStream::connect(&self.addr)
        {
            use std::io::{Read, Write};
            let _ = conn.set_read_timeout(Some(WAIT));
            let _ = write!(
                conn,
                "DELETE /session/{id} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
                self.addr
            );
            // chromedriver answers once Chromium has quit (and keeps the connection open).
            let _ = conn.read(&mut [0; 512]);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Serves the client's redirect URI, `GET /cb`, on a loopback port; remembers each query it gets.
async fn callback_server() -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let redirect = format!("http://{}/cb", listener.local_addr().unwrap());
    let hits: Arc<Mutex<Vec<String>>> = Arc::default();
    let seen = hits.clone();
    let router = axum::Router::new().route(
        "/cb",
        axum::routing::get(move |RawQuery(q): RawQuery| async move {
            seen.lock().unwrap().push(q.unwrap_or_default());
            Html("<!doctype html><title>Example RP</title><p>Signed in.</p>")
        }),
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    (redirect, hits)
}

/// What the browser saw on its way.
struct Run {
    login_title: String,
    /// `border-radius` of the card as computed from /static/custos.css (the browser's default is 0px).
    card_radius: String,
    login_png: Vec<u8>,
    mfa_title: String,
    consent_text: String,
    landed: url::Url,
}

async fn save(dir: &Path, name: &str, png: &[u8]) -> Res<()> {
    tokio::fs::write(dir.join(name), png)
        .await
        .ctx(&format!("cannot write {name}"))
}

/// Records the page's Content-Security-Policy violations (WebDriver's scripts are not subject to it).
async fn watch_csp(b: &Client) -> Res<()> {
    b.execute(
        "window.__csp = []; document.addEventListener('securitypolicyviolation', e => \
         window.__csp.push(`${e.effectiveDirective} blocked ${e.blockedURI}`));",
        vec![],
    )
    .await
    .ctx("cannot watch for CSP violations")
    .map(drop)
}

/// Where the browser is, what it shows and what the CSP blocked there, for an error message.
async fn whereabouts(b: &Client) -> String {
    let url = b.current_url().await.map(|u| u.to_string());
    let csp = b.execute("return window.__csp || [];", vec![]).await;
    let src = b.source().await.unwrap_or_default();
    format!("at {url:?}, CSP violations {csp:?}, page: {src}")
}

/// Waits (bounded) for an element to show up.
async fn wait_for(b: &Client, css: &str, page: &str) -> Res<Element> {
    match b.wait().at_most(WAIT).for_element(Locator::Css(css)).await {
        Ok(e) => Ok(e),
        Err(e) => Err(format!("no {css} on {page}: {e}; {}", whereabouts(b).await)),
    }
}

/// Types Ada's email into `email`, the password into `#password`, and submits the form.
async fn sign_in_with_password(b: &Client, email: &Element) -> Res<()> {
    email
        .send_keys("ada@example.com")
        .await
        .ctx("type the email")?;
    b.find(Locator::Css("#password"))
        .await
        .ctx("#password")?
        .send_keys(PASSWORD)
        .await
        .ctx("type the password")?;
    b.find(Locator::Css("#submit"))
        .await
        .ctx("#submit")?
        .click()
        .await
        .ctx("click #submit")?;
    Ok(())
}

async fn drive(
    b: &Client,
    authorize: &str,
    redirect: &str,
    shots: &Path,
    totp_code: &str,
) -> Res<Run> {
    b.goto(authorize).await.ctx("GET /authorize")?;
    let email = wait_for(b, "#email", "the login page").await?;
    watch_csp(b).await?;
    let login_title = b.title().await.ctx("title")?;
    let card_radius = b
        .find(Locator::Css("main.card"))
        .await
        .ctx("main.card")?
        .css_value("border-radius")
        .await
        .ctx("border-radius")?;
    let login_png = b.screenshot().await.ctx("screenshot of the login page")?;
    save(shots, "login.png", &login_png).await?;

    sign_in_with_password(b, &email).await?;

    // The second factor: a code from the authenticator app.
    let code = wait_for(b, "#code", "the second-factor page").await?;
    watch_csp(b).await?;
    let mfa_title = b.title().await.ctx("title")?;
    save(
        shots,
        "mfa.png",
        &b.screenshot()
            .await
            .ctx("screenshot of the second-factor page")?,
    )
    .await?;
    code.send_keys(totp_code).await.ctx("type the TOTP code")?;
    b.find(Locator::Css("#verify"))
        .await
        .ctx("#verify")?
        .click()
        .await
        .ctx("click #verify")?;

    let approve = wait_for(b, "#approve", "the consent page").await?;
    watch_csp(b).await?;
    let consent_text = b
        .find(Locator::Css("main"))
        .await
        .ctx("main")?
        .text()
        .await
        .ctx("consent text")?;
    save(
        shots,
        "consent.png",
        &b.screenshot().await.ctx("screenshot of the consent page")?,
    )
    .await?;
    approve.click().await.ctx("click #approve")?;

    let deadline = Instant::now() + WAIT;
    loop {
        let now = b.current_url().await.ctx("current URL")?;
        if now.as_str().starts_with(redirect) {
            return Ok(Run {
                login_title,
                card_radius,
                login_png,
                mfa_title,
                consent_text,
                landed: now,
            });
        }
        if Instant::now() > deadline {
            return Err(format!(
                "never reached {redirect} within {WAIT:?}; {}",
                whereabouts(b).await
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn param(u: &url::Url, name: &str) -> Option<String> {
    u.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_signs_in_with_a_totp_code_consents_and_lands_with_a_code() {
    let (Some(driver_bin), Some(chromium)) = (
        on_path(&["chromedriver"]),
        on_path(&["chromium", "chromium-browser"]),
    ) else {
        skip_or_fail("real-browser test (chromium/chromedriver not installed)");
        return;
    };
    let started = Instant::now();
    let app = TestApp::start().await;
    let (redirect, hits) = callback_server().await;
    let mut nc = web_client(false);
    nc.redirect_uris = vec![redirect.clone()];
    let c = app.client(nc).await;
    let ada = user(&app, "ada@example.com").await;
    // Ada has an authenticator app: the sign-in takes a TOTP code after the password.
    let secret = custos::mfa::totp::TotpSecret::generate().unwrap();
    let codes = custos::mfa::recovery::generate().unwrap();
    {
        use custos::clock::Clock;
        let now = app.clock.now();
        let sealed = secret.seal(&app.state.kek, &ada.id).unwrap();
        let step = custos::mfa::totp::step_of(now) - 10;
        let hashes = custos::mfa::recovery::hashes(&codes);
        app.state
            .store
            .activate_totp(&ada.id, &sealed, step, &hashes, now)
            .await
            .unwrap();
    }
    let totp_code = {
        use custos::clock::Clock;
        secret.code_at(app.clock.now())
    };

    let verifier = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let state = uuid::Uuid::new_v4().simple().to_string();
    let authorize = url::Url::parse_with_params(
        &app.url("/authorize"),
        &[
            ("response_type", "code"),
            ("client_id", c.id.as_str()),
            ("redirect_uri", redirect.as_str()),
            ("scope", "openid"),
            ("state", state.as_str()),
            ("code_challenge", &custos::oauth::pkce::s256(&verifier)),
            ("code_challenge_method", "S256"),
        ],
    )
    .unwrap();

    let profile = tempfile::tempdir().unwrap();
    let shots = match std::env::var_os("CUSTOS_TEST_SCREENSHOT_DIR") {
        Some(d) => PathBuf::from(d),
        None => profile.path().to_path_buf(),
    };
    let mut driver = tokio::task::spawn_blocking(move || Driver::start(&driver_bin))
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("{e}"));
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": chromium,
            "args": [
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--window-size=1000,800",
                format!("--user-data-dir={}", profile.path().join("chromium").display()),
            ],
        }),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    let browser = ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&format!("http://{}", driver.addr))
        .await
        .unwrap_or_else(|e| panic!("no WebDriver session from chromedriver: {e}"));
    driver.session = browser.session_id().await.ok().flatten();
    let run = drive(&browser, authorize.as_str(), &redirect, &shots, &totp_code).await;
    // End the session (chromedriver ends Chromium) and chromedriver before any assertion can panic.
    if browser.close().await.is_ok() {
        driver.session = None;
    }
    drop(driver);
    let run = run.unwrap_or_else(|e| panic!("{e}"));
    let browser_secs = started.elapsed().as_secs_f64();

    // The pages rendered with their stylesheet under `style-src 'self'`.
    assert_eq!(run.login_title, "Sign in · Custos");
    assert_eq!(run.card_radius, "12px", "custos.css did not apply");
    assert!(
        run.login_png.len() > 1000 && run.login_png.starts_with(b"\x89PNG\r\n\x1a\n"),
        "the screenshot is not a PNG"
    );
    assert_eq!(run.mfa_title, "Two-step verification · Custos");
    assert!(
        run.consent_text.contains("Example RP"),
        "{}",
        run.consent_text
    );

    // It landed on the redirect URI, and the client's page got the same response.
    let landed = &run.landed;
    assert_eq!(landed.path(), "/cb");
    assert_eq!(param(landed, "state").as_deref(), Some(state.as_str()));
    assert_eq!(param(landed, "iss").as_deref(), Some(app.base.as_str()));
    let code = param(landed, "code").expect("a code at the redirect URI");
    assert_eq!(
        hits.lock().unwrap().as_slice(),
        [landed.query().unwrap_or_default()],
        "the client's page was loaded once with the response"
    );

    // The code is real: it redeems, once.
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", redirect.as_str()),
        ("code_verifier", verifier.as_str()),
    ];
    let r = app
        .post_form("/token", &form, Some((&c.id, &c.secret)))
        .await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert!(body["access_token"].as_str().is_some_and(|t| !t.is_empty()));
    assert!(body["id_token"].is_string(), "scope openid: {body}");
    let id_claims: Value = {
        use base64::Engine;
        let payload = body["id_token"]
            .as_str()
            .unwrap()
            .split('.')
            .nth(1)
            .unwrap();
        serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload)
                .unwrap(),
        )
        .unwrap()
    };
    assert_eq!(id_claims["acr"], "urn:custos:acr:mfa");
    assert_eq!(id_claims["amr"], json!(["pwd", "otp"]));
    let again = app
        .post_form("/token", &form, Some((&c.id, &c.secret)))
        .await;
    assert_eq!(again.status(), 400, "a code redeems once");
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "real browser: {} in {browser_secs:.1}s",
        chromium.display()
    );
}

/// WebDriver's WebAuthn extension: a virtual platform authenticator with resident keys and user
/// verification, for this session's pages.
#[derive(Debug)]
struct AddVirtualAuthenticator;

impl fantoccini::wd::WebDriverCompatibleCommand for AddVirtualAuthenticator {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/webauthn/authenticator",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        let body = json!({
            "protocol": "ctap2",
            "transport": "internal",
            "hasResidentKey": true,
            "hasUserVerification": true,
            "isUserVerified": true,
            "isUserConsenting": true,
        });
        (http::Method::POST, Some(body.to_string()))
    }
}

/// Waits (bounded) until the browser is at a URL starting with `prefix`.
async fn wait_at(b: &Client, prefix: &str) -> Res<url::Url> {
    let deadline = Instant::now() + WAIT;
    loop {
        let now = b.current_url().await.ctx("current URL")?;
        if now.as_str().starts_with(prefix) {
            return Ok(now);
        }
        if Instant::now() > deadline {
            return Err(format!(
                "never reached {prefix} within {WAIT:?}; {}",
                whereabouts(b).await
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Account page → sign in → add a passkey (/static/passkey.js, a virtual authenticator); then the
/// authorization flow's "Sign in with a passkey" to the redirect URI; then password + "Use a passkey".
async fn drive_passkey(
    b: &Client,
    base: &str,
    authorize: &str,
    redirect: &str,
) -> Res<(url::Url, url::Url)> {
    b.issue_cmd(AddVirtualAuthenticator)
        .await
        .ctx("add a virtual authenticator")?;
    b.goto(&format!("{base}/account/security"))
        .await
        .ctx("GET /account/security")?;
    let email = wait_for(b, "#email", "the sign-in page").await?;
    sign_in_with_password(b, &email).await?;
    let name = wait_for(b, "#passkey-name", "the Security page").await?;
    watch_csp(b).await?;
    name.send_keys("Chromium").await.ctx("type the name")?;
    b.find(Locator::Css("#passkey-add"))
        .await
        .ctx("#passkey-add")?
        .click()
        .await
        .ctx("click #passkey-add")?;
    wait_for(b, "div.passkey", "the Security page after adding").await?;

    b.goto(authorize).await.ctx("GET /authorize")?;
    let button = wait_for(b, "#passkey-signin", "the login page").await?;
    watch_csp(b).await?;
    button.click().await.ctx("click #passkey-signin")?;
    let alone = wait_at(b, redirect).await?;

    // Again with the password: the passkey is now the second factor.
    b.goto(authorize).await.ctx("GET /authorize")?;
    let email = wait_for(b, "#email", "the login page").await?;
    sign_in_with_password(b, &email).await?;
    let button = wait_for(b, "#passkey", "the second-factor page").await?;
    watch_csp(b).await?;
    button.click().await.ctx("click #passkey")?;
    wait_at(b, &format!("{redirect}?code=")).await?;
    let second = b.current_url().await.ctx("current URL")?;
    Ok((alone, second))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_adds_a_passkey_and_signs_in_with_it_alone_then_as_second_factor() {
    let (Some(driver_bin), Some(chromium)) = (
        on_path(&["chromedriver"]),
        on_path(&["chromium", "chromium-browser"]),
    ) else {
        skip_or_fail("real-browser passkey test (chromium/chromedriver not installed)");
        return;
    };
    let app = TestApp::builder()
        .with_config(|c| {
            c.issuer = "http://localhost:0".into();
            c.passkey_passwordless = true;
        })
        .start()
        .await;
    let base = app.state.settings.issuer_str.clone();
    let (redirect, _hits) = callback_server().await;
    let mut nc = web_client(false);
    nc.redirect_uris = vec![redirect.clone()];
    nc.skip_consent = true;
    let c = app.client(nc).await;
    user(&app, "ada@example.com").await;
    let verifier = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let authorize = url::Url::parse_with_params(
        &format!("{base}/authorize"),
        &[
            ("response_type", "code"),
            ("client_id", c.id.as_str()),
            ("redirect_uri", redirect.as_str()),
            ("scope", "openid"),
            ("state", "st"),
            // The browser is signed in (it added the passkey): sign in again, with the passkey.
            ("prompt", "login"),
            ("code_challenge", &custos::oauth::pkce::s256(&verifier)),
            ("code_challenge_method", "S256"),
        ],
    )
    .unwrap();

    let profile = tempfile::tempdir().unwrap();
    let mut driver = tokio::task::spawn_blocking(move || Driver::start(&driver_bin))
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("{e}"));
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": chromium,
            "args": [
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                format!("--user-data-dir={}", profile.path().join("chromium").display()),
            ],
        }),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    let browser = ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&format!("http://{}", driver.addr))
        .await
        .unwrap_or_else(|e| panic!("no WebDriver session from chromedriver: {e}"));
    driver.session = browser.session_id().await.ok().flatten();
    let run = drive_passkey(&browser, &base, authorize.as_str(), &redirect).await;
    if browser.close().await.is_ok() {
        driver.session = None;
    }
    drop(driver);
    let (alone, second) = run.unwrap_or_else(|e| panic!("{e}"));
    assert_ne!(param(&alone, "code"), param(&second, "code"));
    let claims = id_claims(&app, &c, &alone, &redirect, &verifier).await;
    assert_eq!(claims["acr"], "urn:custos:acr:mfa");
    assert_eq!(claims["amr"][1], "user", "{claims}");
    assert!(
        claims["amr"][0] == "hwk" || claims["amr"][0] == "swk",
        "{claims}"
    );
    let claims = id_claims(&app, &c, &second, &redirect, &verifier).await;
    assert_eq!(claims["acr"], "urn:custos:acr:mfa");
    assert_eq!(claims["amr"][0], "pwd", "{claims}");
    assert!(
        claims["amr"][1] == "hwk" || claims["amr"][1] == "swk",
        "{claims}"
    );
}

/// Redeems the code at `landed`; the ID token's claims.
async fn id_claims(
    app: &TestApp,
    c: &crate::support::TestClient,
    landed: &url::Url,
    redirect: &str,
    verifier: &str,
) -> Value {
    let code = param(landed, "code").expect("a code at the redirect URI");
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", redirect),
        ("code_verifier", verifier),
    ];
    let body: Value = app
        .post_form("/token", &form, Some((&c.id, &c.secret)))
        .await
        .json()
        .await
        .unwrap();
    {
        use base64::Engine;
        let payload = body["id_token"]
            .as_str()
            .unwrap()
            .split('.')
            .nth(1)
            .unwrap();
        serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload)
                .unwrap(),
        )
        .unwrap()
    }
}
