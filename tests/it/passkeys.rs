//! Passkeys over HTTP with the scripted browser and a software authenticator (ES256, "none"
//! attestation, built here with aws-lc-rs and hand-written CBOR): registration from the account page,
//! the passkey as the second factor and as a passwordless first factor (only when configured),
//! refused answers (unknown credential, wrong or replayed challenge), removal.

use aws_lc_rs::digest::{SHA256, digest};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use crate::browser::{Browser, Landing, PASSWORD, REDIRECT, hidden, user, web_client};
use crate::support::{TestApp, TestClient};

const ACR_MFA: &str = "urn:custos:acr:mfa";
/// Passkeys need a domain: the relying party is the issuer's host.
const ISSUER: &str = "http://localhost:8080";

fn b64(b: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(b)
}

/// A software authenticator holding one discoverable ES256 credential (device-bound: not
/// backup-eligible, so `hwk`), with user verification.
struct SoftKey {
    key: EcdsaKeyPair,
    cred_id: Vec<u8>,
    user_handle: Vec<u8>,
    counter: u32,
}

fn cbor_bytes(out: &mut Vec<u8>, b: &[u8]) {
    match b.len() {
        n if n < 24 => out.push(0x40 | n as u8),
        n if n < 256 => out.extend([0x58, n as u8]),
        n => {
            out.push(0x59);
            out.extend((n as u16).to_be_bytes());
        }
    }
    out.extend_from_slice(b);
}

fn cbor_text(out: &mut Vec<u8>, s: &str) {
    assert!(s.len() < 24);
    out.push(0x60 | s.len() as u8);
    out.extend_from_slice(s.as_bytes());
}

const UP: u8 = 0x01;
const UV: u8 = 0x04;
const AT: u8 = 0x40;

impl SoftKey {
    fn new() -> SoftKey {
        SoftKey {
            key: EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING).unwrap(),
            cred_id: uuid::Uuid::new_v4().as_bytes().to_vec(),
            user_handle: Vec::new(),
            counter: 0,
        }
    }

    fn client_data(kind: &str, challenge: &str) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "type": kind,
            "challenge": challenge,
            "origin": ISSUER,
            "crossOrigin": false,
        }))
        .unwrap()
    }

    fn auth_data(&self, flags: u8) -> Vec<u8> {
        let mut a = digest(&SHA256, b"localhost").as_ref().to_vec();
        a.push(flags);
        a.extend(self.counter.to_be_bytes());
        a
    }

    /// `navigator.credentials.create` on the server's options, as the page's script posts it.
    fn create(&mut self, options: &Value) -> Value {
        let pk = &options["publicKey"];
        assert_eq!(pk["rp"]["id"], "localhost", "{options}");
        self.user_handle = URL_SAFE_NO_PAD
            .decode(pk["user"]["id"].as_str().unwrap())
            .unwrap();
        let cdj = Self::client_data("webauthn.create", pk["challenge"].as_str().unwrap());
        let point = self.key.public_key().as_ref().to_vec();
        assert_eq!(point.len(), 65);
        let mut cose = vec![0xa5, 0x01, 0x02, 0x03, 0x26, 0x20, 0x01, 0x21];
        cbor_bytes(&mut cose, &point[1..33]);
        cose.push(0x22);
        cbor_bytes(&mut cose, &point[33..65]);
        let mut ad = self.auth_data(UP | UV | AT);
        ad.extend([0u8; 16]);
        ad.extend((self.cred_id.len() as u16).to_be_bytes());
        ad.extend(&self.cred_id);
        ad.extend(cose);
        let mut att = vec![0xa3];
        cbor_text(&mut att, "fmt");
        cbor_text(&mut att, "none");
        cbor_text(&mut att, "attStmt");
        att.push(0xa0);
        cbor_text(&mut att, "authData");
        cbor_bytes(&mut att, &ad);
        json!({
            "id": b64(&self.cred_id),
            "rawId": b64(&self.cred_id),
            "type": "public-key",
            "response": {"attestationObject": b64(&att), "clientDataJSON": b64(&cdj)},
            "extensions": {},
        })
    }

    /// `navigator.credentials.get` on the server's options.
    fn get(&mut self, options: &Value) -> Value {
        let challenge = options["publicKey"]["challenge"].as_str().unwrap();
        self.assert_for(challenge)
    }

    fn assert_for(&mut self, challenge: &str) -> Value {
        self.counter += 1;
        let cdj = Self::client_data("webauthn.get", challenge);
        let ad = self.auth_data(UP | UV);
        let mut msg = ad.clone();
        msg.extend(digest(&SHA256, &cdj).as_ref());
        let sig = self.key.sign(&SystemRandom::new(), &msg).unwrap();
        json!({
            "id": b64(&self.cred_id),
            "rawId": b64(&self.cred_id),
            "type": "public-key",
            "response": {
                "authenticatorData": b64(&ad),
                "clientDataJSON": b64(&cdj),
                "signature": b64(sig.as_ref()),
                "userHandle": b64(&self.user_handle),
            },
            "extensions": {},
        })
    }
}

async fn app(passwordless: bool) -> TestApp {
    TestApp::builder()
        .with_config(|c| {
            c.issuer = ISSUER.into();
            c.passkey_passwordless = passwordless;
        })
        .start()
        .await
}

/// A JSON call as `/static/passkey.js` makes it: (status, body).
async fn call(b: &Browser, path: &str, csrf: &str, body: Value) -> (u16, Value) {
    let r = b
        .http
        .post(format!("{}{path}", b.base))
        .header("x-csrf-token", csrf)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// The value of `attr="…"` on the element with `id="<id>"`.
fn attr(html: &str, id: &str, attr: &str) -> String {
    let el = html
        .split(&format!("id=\"{id}\""))
        .nth(1)
        .unwrap_or_else(|| panic!("no #{id} in {html}"));
    let el = el.split('>').next().unwrap();
    let marker = format!("{attr}=\"");
    el.split(&marker)
        .nth(1)
        .unwrap_or_else(|| panic!("no {attr} on #{id}"))
        .split('"')
        .next()
        .unwrap()
        .to_string()
}

fn claims_of(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

/// Signs in to the account pages with the password and opens Security.
async fn security_page(app: &TestApp, b: &Browser) -> Landing {
    let signin = b.get(&app.url("/account/security")).await;
    let page = b
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
    assert!(
        matches!(&page, Landing::Page(200, p, _) if p == "/account/security"),
        "{page:?}"
    );
    page
}

/// Registers `key` as "Laptop" from the Security page of the signed-in browser `b`.
async fn register(b: &Browser, page: &Landing, key: &mut SoftKey) {
    let csrf = attr(page.body(), "passkey-add", "data-csrf");
    assert_eq!(csrf, hidden(page.body(), "csrf"));
    let (st, bad) = call(b, "/account/security/passkeys/options", "forged", json!({})).await;
    assert_eq!((st, bad["error"].as_str()), (403, Some("invalid_request")));
    let (st, options) = call(b, "/account/security/passkeys/options", &csrf, json!({})).await;
    assert_eq!(st, 200, "{options}");
    assert_eq!(options["publicKey"]["user"]["name"], "ada@example.com");
    // A discoverable credential, so that it can also sign in without a password.
    assert_eq!(
        options["publicKey"]["authenticatorSelection"]["residentKey"],
        "preferred"
    );
    let credential = key.create(&options);
    let body = json!({"name": "Laptop", "credential": credential});
    let (st, ok) = call(b, "/account/security/passkeys", &csrf, body.clone()).await;
    assert_eq!(st, 200, "{ok}");
    // The challenge answered once.
    let (st, again) = call(b, "/account/security/passkeys", &csrf, body).await;
    assert_eq!((st, again["error"].as_str()), (400, Some("no_challenge")));
}

fn authorize_url(app: &TestApp, client: &str) -> (String, String) {
    let verifier = "p".repeat(43) + &uuid::Uuid::new_v4().simple().to_string();
    let challenge = custos::oauth::pkce::s256(&verifier);
    let q = [
        ("response_type", "code"),
        ("client_id", client),
        ("redirect_uri", REDIRECT),
        ("scope", "openid"),
        ("state", "st"),
        ("nonce", "n-1"),
        ("code_challenge", &challenge),
        ("code_challenge_method", "S256"),
    ];
    (
        reqwest::Url::parse_with_params(&app.url("/authorize"), &q)
            .unwrap()
            .to_string(),
        verifier,
    )
}

async fn id_token(app: &TestApp, c: &TestClient, landing: &Landing, verifier: &str) -> Value {
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
    claims_of(t["id_token"].as_str().unwrap())
}

async fn first_party(app: &TestApp) -> TestClient {
    app.client(custos::clients::NewClient {
        skip_consent: true,
        ..web_client(false)
    })
    .await
}

/// A new browser: authorize, password, the second-factor page (which offers the passkey).
async fn to_second_step(app: &TestApp, c: &TestClient) -> (Browser, Landing, String) {
    let b = Browser::new(app);
    let (url, verifier) = authorize_url(app, &c.id);
    let login = b.get(&url).await;
    let mfa = b.login(&login, "ada@example.com", PASSWORD).await;
    assert!(
        matches!(&mfa, Landing::Page(200, p, _) if p == "/login/mfa"),
        "{mfa:?}"
    );
    assert!(mfa.body().contains("data-passkey=\"second-factor\""));
    assert!(mfa.body().contains("src=\"/static/passkey.js\""));
    (b, mfa, verifier)
}

#[tokio::test]
async fn passkey_registered_on_the_account_page_is_the_second_factor() {
    let app = app(false).await;
    let c = first_party(&app).await;
    user(&app, "ada@example.com").await;
    let mut key = SoftKey::new();

    let account = Browser::new(&app);
    let page = security_page(&app, &account).await;
    assert!(page.body().contains("No passkeys yet."), "{}", page.body());
    register(&account, &page, &mut key).await;
    let page = account.get(&app.url("/account/security")).await;
    assert!(page.body().contains("<strong>Laptop</strong>"));
    assert!(page.body().contains("last used never"));
    let id = hidden(page.body(), "id");
    let renamed = account
        .submit(
            "/account/security/passkeys/rename",
            &[
                ("csrf", &hidden(page.body(), "csrf")),
                ("id", &id),
                ("name", "Work laptop"),
            ],
        )
        .await;
    assert_eq!(renamed.status(), 200, "{renamed:?}");
    assert!(renamed.body().contains("<strong>Work laptop</strong>"));
    let forged = account
        .submit(
            "/account/security/passkeys/rename",
            &[("csrf", "forged"), ("id", &id), ("name", "x")],
        )
        .await;
    assert_eq!(forged.status(), 403);

    // The script is served from our origin and the CSP lets it (and only it) run.
    let js = account
        .http
        .get(app.url("/static/passkey.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(js.status(), 200);
    let csp = js.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("connect-src 'self'"),
        "{csp}"
    );
    assert!(
        js.text()
            .await
            .unwrap()
            .contains("navigator.credentials.get")
    );

    let (b, mfa, verifier) = to_second_step(&app, &c).await;
    let csrf = attr(mfa.body(), "passkey", "data-csrf");
    let (st, _) = call(&b, "/login/mfa/passkey/options", "forged", json!({})).await;
    assert_eq!(st, 403);
    let (st, options) = call(&b, "/login/mfa/passkey/options", &csrf, json!({})).await;
    assert_eq!(st, 200, "{options}");
    assert_eq!(
        options["publicKey"]["allowCredentials"][0]["id"],
        b64(&key.cred_id)
    );
    assert_eq!(options["publicKey"]["userVerification"], "required");
    let answer = key.get(&options);
    let (st, done) = call(&b, "/login/mfa/passkey", &csrf, answer.clone()).await;
    assert_eq!(st, 200, "{done}");
    let to = done["redirect"].as_str().unwrap();
    assert!(to.starts_with("/authorize/resume?req="), "{to}");
    let landing = b.get(&app.url(to)).await;
    let claims = id_token(&app, &c, &landing, &verifier).await;
    assert_eq!(claims["acr"], ACR_MFA);
    assert_eq!(claims["amr"], json!(["pwd", "hwk"]));

    // The same answer again: the half-finished login is gone.
    let (st, _) = call(&b, "/login/mfa/passkey", &csrf, answer).await;
    assert_eq!(st, 403);
    let page = account.get(&app.url("/account/security")).await;
    assert!(!page.body().contains("last used never"));
}

#[tokio::test]
async fn unknown_wrong_and_replayed_passkey_answers_are_refused() {
    let app = app(false).await;
    let c = first_party(&app).await;
    user(&app, "ada@example.com").await;
    let mut key = SoftKey::new();
    let account = Browser::new(&app);
    let page = security_page(&app, &account).await;
    register(&account, &page, &mut key).await;

    let (b, mfa, verifier) = to_second_step(&app, &c).await;
    let csrf = attr(mfa.body(), "passkey", "data-csrf");
    let options = |b: &Browser| {
        let csrf = csrf.clone();
        let b = Browser {
            http: b.http.clone(),
            base: b.base.clone(),
        };
        async move {
            let (st, o) = call(&b, "/login/mfa/passkey/options", &csrf, json!({})).await;
            assert_eq!(st, 200, "{o}");
            o
        }
    };

    // A credential that is not registered (another authenticator, same person).
    let first = options(&b).await;
    let mut stranger = SoftKey::new();
    stranger.user_handle = key.user_handle.clone();
    let (st, e) = call(&b, "/login/mfa/passkey", &csrf, stranger.get(&first)).await;
    assert_eq!((st, e["error"].as_str()), (401, Some("unknown_credential")));
    // That challenge is used up: even the right key cannot answer it now.
    let (st, e) = call(&b, "/login/mfa/passkey", &csrf, key.get(&first)).await;
    assert_eq!((st, e["error"].as_str()), (400, Some("no_challenge")));

    // An answer signed for an earlier (used) challenge, sent against a new one.
    let _second = options(&b).await;
    let old = first["publicKey"]["challenge"]
        .as_str()
        .unwrap()
        .to_string();
    let (st, e) = call(&b, "/login/mfa/passkey", &csrf, key.assert_for(&old)).await;
    assert_eq!((st, e["error"].as_str()), (401, Some("invalid_credential")));

    // A tampered signature.
    let third = options(&b).await;
    let mut bad = key.get(&third);
    bad["response"]["signature"] = json!(b64(&[0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01]));
    let (st, e) = call(&b, "/login/mfa/passkey", &csrf, bad).await;
    assert_eq!((st, e["error"].as_str()), (401, Some("invalid_credential")));

    // Not JSON (a cross-site form cannot send it): refused before anything is checked.
    let r = b
        .http
        .post(app.url("/login/mfa/passkey"))
        .header("x-csrf-token", &csrf)
        .form(&[("a", "b")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    // And still, the right answer to a fresh challenge signs in.
    let fourth = options(&b).await;
    let (st, done) = call(&b, "/login/mfa/passkey", &csrf, key.get(&fourth)).await;
    assert_eq!(st, 200, "{done}");
    let landing = b.get(&app.url(done["redirect"].as_str().unwrap())).await;
    let claims = id_token(&app, &c, &landing, &verifier).await;
    assert_eq!(claims["amr"], json!(["pwd", "hwk"]));
}

#[tokio::test]
async fn passwordless_sign_in_is_refused_unless_configured() {
    let app = app(false).await;
    let c = first_party(&app).await;
    user(&app, "ada@example.com").await;
    let mut key = SoftKey::new();
    let account = Browser::new(&app);
    let page = security_page(&app, &account).await;
    register(&account, &page, &mut key).await;

    let b = Browser::new(&app);
    let (url, _) = authorize_url(&app, &c.id);
    let login = b.get(&url).await;
    assert!(!login.body().contains("data-passkey=\"sign-in\""));
    let (req, csrf) = (hidden(login.body(), "req"), hidden(login.body(), "csrf"));
    let (st, e) = call(&b, "/login/passkey/options", &csrf, json!({"req": req})).await;
    assert_eq!(
        (st, e["error"].as_str()),
        (404, Some("passkey_passwordless_disabled"))
    );
    let answer = key.assert_for(&b64(&[7u8; 32]));
    let (st, e) = call(
        &b,
        "/login/passkey",
        &csrf,
        json!({"req": req, "credential": answer}),
    )
    .await;
    assert_eq!(
        (st, e["error"].as_str()),
        (404, Some("passkey_passwordless_disabled"))
    );
}

#[tokio::test]
async fn passwordless_sign_in_with_a_passkey_then_removed_it_no_longer_works() {
    let app = app(true).await;
    let c = first_party(&app).await;
    user(&app, "ada@example.com").await;
    let mut key = SoftKey::new();
    let account = Browser::new(&app);
    let page = security_page(&app, &account).await;
    assert!(page.body().contains("or to sign in without a password"));
    register(&account, &page, &mut key).await;

    let b = Browser::new(&app);
    let (url, verifier) = authorize_url(&app, &c.id);
    let login = b.get(&url).await;
    let req = attr(login.body(), "passkey-signin", "data-req");
    let csrf = attr(login.body(), "passkey-signin", "data-csrf");
    assert_eq!(req, hidden(login.body(), "req"));
    let (st, _) = call(&b, "/login/passkey/options", "forged", json!({"req": req})).await;
    assert_eq!(st, 403);
    let (st, options) = call(&b, "/login/passkey/options", &csrf, json!({"req": req})).await;
    assert_eq!(st, 200, "{options}");
    assert!(
        options["publicKey"]["allowCredentials"]
            .as_array()
            .is_none_or(|a| a.is_empty()),
        "{options}"
    );
    assert_eq!(options["publicKey"]["userVerification"], "required");
    let answer = key.get(&options);
    let body = json!({"req": req, "credential": answer});
    let (st, done) = call(&b, "/login/passkey", &csrf, body.clone()).await;
    assert_eq!(st, 200, "{done}");
    // The same answer replayed (before the sign-in even goes on): its challenge is gone.
    let (st, e) = call(&b, "/login/passkey", &csrf, body).await;
    assert_eq!((st, e["error"].as_str()), (400, Some("no_challenge")));

    let landing = b.get(&app.url(done["redirect"].as_str().unwrap())).await;
    let claims = id_token(&app, &c, &landing, &verifier).await;
    assert_eq!(claims["acr"], ACR_MFA);
    assert_eq!(claims["amr"], json!(["hwk", "user"]));

    // Remove it on the account page (CSRF checked): it no longer signs in.
    let page = account.get(&app.url("/account/security")).await;
    let id = hidden(page.body(), "id");
    assert_eq!(id, b64(&key.cred_id));
    let forged = account
        .submit(
            "/account/security/passkeys/remove",
            &[("csrf", "forged"), ("id", &id)],
        )
        .await;
    assert_eq!(forged.status(), 403);
    let removed = account
        .submit(
            "/account/security/passkeys/remove",
            &[("csrf", &hidden(page.body(), "csrf")), ("id", &id)],
        )
        .await;
    assert_eq!(removed.status(), 200, "{removed:?}");
    assert!(removed.body().contains("No passkeys yet."));

    let b = Browser::new(&app);
    let (url, _) = authorize_url(&app, &c.id);
    let login = b.get(&url).await;
    let req = attr(login.body(), "passkey-signin", "data-req");
    let csrf = attr(login.body(), "passkey-signin", "data-csrf");
    let (_, options) = call(&b, "/login/passkey/options", &csrf, json!({"req": req})).await;
    let (st, e) = call(
        &b,
        "/login/passkey",
        &csrf,
        json!({"req": req, "credential": key.get(&options)}),
    )
    .await;
    assert_eq!((st, e["error"].as_str()), (401, Some("unknown_credential")));
    // And the password alone is enough again (no second factor left).
    let landing = b.login(&login, "ada@example.com", PASSWORD).await;
    assert!(matches!(landing, Landing::Client(_)), "{landing:?}");
}
