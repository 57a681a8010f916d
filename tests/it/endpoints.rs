//! `/userinfo` (OIDC Core §5.3, RFC 6750), `/revoke` (RFC 7009) and `/introspect` (RFC 7662), with
//! tokens obtained through the real authorization-code flow.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use custos::http::paths;
use serde_json::{Value, json};

use crate::browser::{Browser, Landing, PASSWORD, REDIRECT, user, web_client};
use crate::support::{T0, TestApp, TestClient, oauth_error};

fn claims_of(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

/// Runs authorize → login → consent for a client and returns the code and the PKCE verifier.
async fn code_for(
    app: &TestApp,
    browser: &Browser,
    client_id: &str,
    scope: &str,
) -> (String, String) {
    let verifier = "v".repeat(43) + &uuid::Uuid::new_v4().simple().to_string();
    let challenge = custos::oauth::pkce::s256(&verifier);
    let q: Vec<(&str, &str)> = vec![
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", REDIRECT),
        ("scope", scope),
        ("state", "st-1"),
        ("code_challenge", &challenge),
        ("code_challenge_method", "S256"),
    ];
    let url = reqwest::Url::parse_with_params(&app.url(paths::AUTHORIZE), &q).unwrap();
    let mut landing = browser.get(url.as_str()).await;
    if landing.is_login_page() {
        landing = browser.login(&landing, "ada@example.com", PASSWORD).await;
    }
    if matches!(&landing, Landing::Page(200, p, _) if p == "/consent") {
        landing = browser.consent(&landing, true).await;
    }
    let code = landing
        .param("code")
        .unwrap_or_else(|| panic!("no code: {landing:?}"));
    (code, verifier)
}

/// The token response for `scope`, redeemed by a confidential client (public: `secret` empty).
async fn tokens_for(app: &TestApp, browser: &Browser, c: &TestClient, scope: &str) -> Value {
    let (code, verifier) = code_for(app, browser, &c.id, scope).await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
        ("code_verifier", verifier.as_str()),
        ("client_id", c.id.as_str()),
    ];
    let basic = (!c.secret.is_empty()).then_some((c.id.as_str(), c.secret.as_str()));
    let r = app.post_form(paths::TOKEN, &form, basic).await;
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

fn at(t: &Value) -> &str {
    t["access_token"].as_str().unwrap()
}

fn rt(t: &Value) -> &str {
    t["refresh_token"].as_str().expect("a refresh token")
}

async fn userinfo(app: &TestApp, token: &str) -> reqwest::Response {
    app.http
        .get(app.url(paths::USERINFO))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

fn www_authenticate(r: &reqwest::Response) -> String {
    r.headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

fn invalid_token(description: &str) -> String {
    format!("Bearer error=\"invalid_token\", error_description=\"{description}\"")
}

async fn introspect(app: &TestApp, c: &TestClient, token: &str) -> Value {
    let r = app
        .post_form(
            paths::INTROSPECT,
            &[("token", token)],
            Some((&c.id, &c.secret)),
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    r.json().await.unwrap()
}

async fn revoke(app: &TestApp, c: &TestClient, token: &str, hint: Option<&str>) {
    let mut form = vec![("token", token)];
    if let Some(h) = hint {
        form.push(("token_type_hint", h));
    }
    let r = app
        .post_form(paths::REVOKE, &form, Some((&c.id, &c.secret)))
        .await;
    assert_eq!(r.status(), 200);
    assert!(r.bytes().await.unwrap().is_empty(), "RFC 7009: empty body");
}

async fn refresh(app: &TestApp, c: &TestClient, token: &str) -> reqwest::Response {
    app.post_form(
        paths::TOKEN,
        &[("grant_type", "refresh_token"), ("refresh_token", token)],
        Some((&c.id, &c.secret)),
    )
    .await
}

async fn audit_kinds(app: &TestApp) -> Vec<String> {
    app.state
        .store
        .audit_events(100)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect()
}

#[tokio::test]
async fn discovery_names_the_endpoints() {
    let app = TestApp::start().await;
    let meta: Value = app
        .http
        .get(app.url(paths::OPENID_CONFIGURATION))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(meta["userinfo_endpoint"], app.url("/userinfo"));
    assert_eq!(meta["revocation_endpoint"], app.url("/revoke"));
    assert_eq!(meta["introspection_endpoint"], app.url("/introspect"));
    assert_eq!(
        meta["introspection_endpoint_auth_methods_supported"],
        json!(["client_secret_basic", "client_secret_post"])
    );
    assert_eq!(
        meta["revocation_endpoint_auth_methods_supported"],
        json!(["client_secret_basic", "client_secret_post", "none"])
    );
}

#[tokio::test]
async fn userinfo_releases_claims_by_scope() {
    let app = TestApp::start().await;
    let c = app.client(web_client(false)).await;
    let ada = user(&app, "ada@example.com").await;
    let browser = Browser::new(&app);

    let t = tokens_for(&app, &browser, &c, "openid profile email").await;
    let id_sub = claims_of(t["id_token"].as_str().unwrap())["sub"].clone();
    assert_eq!(id_sub, ada.id.as_str());
    let expected = json!({
        "sub": ada.id,
        "name": "Ada Lovelace",
        "updated_at": T0,
        "email": "ada@example.com",
        "email_verified": true,
    });

    let r = userinfo(&app, at(&t)).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body, expected,
        "no preferred_username: Custos has no usernames"
    );
    assert_eq!(body["sub"], id_sub, "the same sub as the ID token");

    // POST with the header, and POST with the token in a form body (RFC 6750 §2.2).
    let r = app
        .http
        .post(app.url(paths::USERINFO))
        .bearer_auth(at(&t))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap(), expected);
    let r = app
        .http
        .post(app.url(paths::USERINFO))
        .form(&[("access_token", at(&t))])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap(), expected);

    let t = tokens_for(&app, &browser, &c, "openid").await;
    let body: Value = userinfo(&app, at(&t)).await.json().await.unwrap();
    assert_eq!(body, json!({"sub": ada.id}));

    let t = tokens_for(&app, &browser, &c, "openid email").await;
    let body: Value = userinfo(&app, at(&t)).await.json().await.unwrap();
    assert_eq!(
        body,
        json!({"sub": ada.id, "email": "ada@example.com", "email_verified": true})
    );

    let t = tokens_for(&app, &browser, &c, "openid profile").await;
    let body: Value = userinfo(&app, at(&t)).await.json().await.unwrap();
    assert_eq!(
        body,
        json!({"sub": ada.id, "name": "Ada Lovelace", "updated_at": T0})
    );
}

#[tokio::test]
async fn userinfo_refuses_missing_bad_and_misplaced_tokens() {
    let app = TestApp::start().await;
    let c = app.client(web_client(false)).await;
    user(&app, "ada@example.com").await;
    let browser = Browser::new(&app);
    let t = tokens_for(&app, &browser, &c, "openid email").await;

    // RFC 6750 §3.1: no credentials, no error code.
    let r = app.http.get(app.url(paths::USERINFO)).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(www_authenticate(&r), "Bearer");
    assert!(r.bytes().await.unwrap().is_empty());
    let r = app
        .http
        .get(app.url(paths::USERINFO))
        .basic_auth(&c.id, Some(&c.secret))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        www_authenticate(&r),
        "Bearer",
        "Basic is not a bearer token"
    );

    let r = userinfo(&app, "not-a-jwt").await;
    assert_eq!(r.status(), 401);
    assert_eq!(
        www_authenticate(&r),
        invalid_token("the access token is malformed")
    );
    assert_eq!(r.headers()["cache-control"], "no-store");

    // Our signature over different claims.
    let good = at(&t);
    let parts: Vec<&str> = good.split('.').collect();
    let mut claims = claims_of(good);
    claims["sub"] = json!("someone-else");
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        parts[2]
    );
    let r = userinfo(&app, &forged).await;
    assert_eq!(r.status(), 401);
    assert_eq!(
        www_authenticate(&r),
        invalid_token("the access token signature is invalid")
    );

    // An ID token is signed by the same keys but is not an access token.
    let r = userinfo(&app, t["id_token"].as_str().unwrap()).await;
    assert_eq!(r.status(), 401);
    assert_eq!(
        www_authenticate(&r),
        invalid_token("the token is not an access token (typ must be at+jwt)")
    );

    // RFC 6750 §2.3: Custos refuses tokens in the query, with or without another method.
    let query_refused = "Bearer error=\"invalid_request\", error_description=\"access tokens in the URI query are not accepted; use the Authorization header\"";
    let r = app
        .http
        .get(format!("{}?access_token={good}", app.url(paths::USERINFO)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(www_authenticate(&r), query_refused);
    assert_eq!(oauth_error(r).await.1, "invalid_request");
    let r = app
        .http
        .post(format!("{}?access_token={good}", app.url(paths::USERINFO)))
        .bearer_auth(good)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(www_authenticate(&r), query_refused);

    // Two methods at once (§3.1 invalid_request).
    let r = app
        .http
        .post(app.url(paths::USERINFO))
        .bearer_auth(good)
        .form(&[("access_token", good)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(
        www_authenticate(&r),
        "Bearer error=\"invalid_request\", error_description=\"send the access token in the Authorization header or the body, not both\""
    );

    // Still fine before expiry; refused from `exp` on, at userinfo and at introspection.
    assert_eq!(userinfo(&app, good).await.status(), 200);
    app.clock
        .advance(app.state.settings.raw.access_token_ttl_secs as i64);
    let r = userinfo(&app, good).await;
    assert_eq!(r.status(), 401);
    assert_eq!(
        www_authenticate(&r),
        invalid_token("the access token has expired")
    );
    assert_eq!(introspect(&app, &c, good).await, json!({"active": false}));
}

#[tokio::test]
async fn userinfo_needs_the_openid_scope() {
    let app = TestApp::start().await;
    let c = app.client(web_client(false)).await;
    user(&app, "ada@example.com").await;
    let browser = Browser::new(&app);
    let t = tokens_for(&app, &browser, &c, "email api:read").await;
    let r = userinfo(&app, at(&t)).await;
    assert_eq!(r.status(), 403);
    assert_eq!(
        www_authenticate(&r),
        "Bearer error=\"insufficient_scope\", error_description=\"the access token does not carry the openid scope\", scope=\"openid\""
    );
    assert_eq!(oauth_error(r).await.1, "insufficient_scope");

    // A client-credentials token has no person behind it either.
    let svc = app.service_client().await;
    let r = app
        .post_form(
            paths::TOKEN,
            &[("grant_type", "client_credentials")],
            Some((&svc.id, &svc.secret)),
        )
        .await;
    let cc: Value = r.json().await.unwrap();
    assert_eq!(userinfo(&app, at(&cc)).await.status(), 403);
}

#[tokio::test]
async fn revoking_a_refresh_token_revokes_its_family() {
    let app = TestApp::start().await;
    let c = app.client(web_client(false)).await;
    let ada = user(&app, "ada@example.com").await;
    let browser = Browser::new(&app);
    let t = tokens_for(&app, &browser, &c, "openid offline_access").await;

    let live = introspect(&app, &c, rt(&t)).await;
    assert_eq!(live["active"], true);
    assert_eq!(live["token_type"], "refresh_token");
    assert_eq!(live["client_id"], c.id.as_str());
    assert_eq!(live["sub"], ada.id.as_str());
    assert_eq!(live["scope"], "openid offline_access");
    assert_eq!(live["iss"], app.base.as_str());
    assert_eq!(live["iat"], T0);
    assert!(live["exp"].as_i64().unwrap() > T0);

    // Rotate once: the old token is used (inactive), its successor is the live one.
    let r = refresh(&app, &c, rt(&t)).await;
    assert_eq!(r.status(), 200);
    let t2: Value = r.json().await.unwrap();
    assert_eq!(
        introspect(&app, &c, rt(&t)).await,
        json!({"active": false}),
        "a rotated token is not active"
    );
    assert_eq!(introspect(&app, &c, rt(&t2)).await["active"], true);

    // client_secret_post this time.
    let r = app
        .post_form(
            paths::REVOKE,
            &[
                ("token", rt(&t2)),
                ("token_type_hint", "refresh_token"),
                ("client_id", &c.id),
                ("client_secret", &c.secret),
            ],
            None,
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        oauth_error(refresh(&app, &c, rt(&t2)).await).await.1,
        "invalid_grant"
    );
    assert_eq!(
        introspect(&app, &c, rt(&t2)).await,
        json!({"active": false})
    );
    assert!(
        audit_kinds(&app)
            .await
            .contains(&"token_revoked".to_string())
    );
    let fam = app
        .state
        .store
        .refresh_token_state(rt(&t2))
        .await
        .unwrap()
        .unwrap()
        .family;
    assert_eq!(fam.revoked_reason.as_deref(), Some("revoked"));

    // Revoking again, or with a wrong hint, is still a quiet 200.
    revoke(&app, &c, rt(&t2), Some("access_token")).await;
    revoke(&app, &c, rt(&t), None).await;
}

#[tokio::test]
async fn revoking_an_access_token_stops_it_everywhere() {
    let app = TestApp::start().await;
    let c = app.client(web_client(false)).await;
    let ada = user(&app, "ada@example.com").await;
    let browser = Browser::new(&app);
    let t = tokens_for(&app, &browser, &c, "openid email offline_access").await;
    let claims = claims_of(at(&t));

    let live = introspect(&app, &c, at(&t)).await;
    assert_eq!(
        live,
        json!({
            "active": true,
            "token_type": "Bearer",
            "scope": "openid email offline_access",
            "client_id": c.id,
            "sub": ada.id,
            "aud": "https://api.example.com",
            "iss": app.base,
            "exp": claims["exp"],
            "iat": T0,
            "nbf": T0,
            "jti": claims["jti"],
        })
    );
    assert_eq!(userinfo(&app, at(&t)).await.status(), 200);

    revoke(&app, &c, at(&t), Some("access_token")).await;
    let r = userinfo(&app, at(&t)).await;
    assert_eq!(r.status(), 401);
    assert_eq!(
        www_authenticate(&r),
        invalid_token("the access token has been revoked")
    );
    assert_eq!(introspect(&app, &c, at(&t)).await, json!({"active": false}));
    // The refresh token is another grant artefact and stays usable.
    assert_eq!(refresh(&app, &c, rt(&t)).await.status(), 200);
    let events = app.state.store.audit_events(100).await.unwrap();
    let ev = events
        .iter()
        .find(|e| e.kind == "token_revoked")
        .expect("audited");
    assert_eq!(ev.client_id.as_deref(), Some(c.id.as_str()));
    assert_eq!(ev.subject.as_deref(), Some(ada.id.as_str()));
    assert_eq!(ev.details["token_type"], "access_token");
}

#[tokio::test]
async fn other_clients_and_unknown_tokens_change_nothing() {
    let app = TestApp::start().await;
    let a = app.client(web_client(false)).await;
    let b = app.client(web_client(false)).await;
    user(&app, "ada@example.com").await;
    let browser = Browser::new(&app);
    let t = tokens_for(&app, &browser, &a, "openid offline_access").await;

    for junk in [
        "nonsense",
        "cst_rt_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "eyJhbGciOiJub25lIn0.e30.",
    ] {
        revoke(&app, &a, junk, None).await;
        assert_eq!(introspect(&app, &a, junk).await, json!({"active": false}));
    }

    // B cannot revoke A's tokens: 200, and both still work.
    revoke(&app, &b, rt(&t), Some("refresh_token")).await;
    revoke(&app, &b, at(&t), Some("access_token")).await;
    assert_eq!(userinfo(&app, at(&t)).await.status(), 200);
    // B sees A's refresh token as inactive, but may check A's access token (the resource-server case).
    assert_eq!(introspect(&app, &b, rt(&t)).await, json!({"active": false}));
    assert_eq!(introspect(&app, &b, at(&t)).await["active"], true);
    assert_eq!(introspect(&app, &a, rt(&t)).await["active"], true);
    assert_eq!(refresh(&app, &a, rt(&t)).await.status(), 200);
    assert!(
        !audit_kinds(&app)
            .await
            .contains(&"token_revoked".to_string())
    );
}

#[tokio::test]
async fn a_public_client_revokes_its_own_refresh_token_but_cannot_introspect() {
    let app = TestApp::start().await;
    let p = app.client(web_client(true)).await;
    user(&app, "ada@example.com").await;
    let browser = Browser::new(&app);
    let t = tokens_for(&app, &browser, &p, "openid offline_access").await;

    let r = app
        .post_form(
            paths::INTROSPECT,
            &[("token", rt(&t)), ("client_id", &p.id)],
            None,
        )
        .await;
    assert_eq!(oauth_error(r).await.0, 401);

    let r = app
        .post_form(
            paths::REVOKE,
            &[("token", rt(&t)), ("client_id", &p.id)],
            None,
        )
        .await;
    assert_eq!(r.status(), 200);
    let r = app
        .post_form(
            paths::TOKEN,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", rt(&t)),
                ("client_id", &p.id),
            ],
            None,
        )
        .await;
    assert_eq!(oauth_error(r).await.1, "invalid_grant");
}

#[tokio::test]
async fn revoke_and_introspect_require_client_authentication() {
    let app = TestApp::start().await;
    let c = app.client(web_client(false)).await;
    let svc = app.service_client().await;
    let r = app
        .post_form(
            paths::TOKEN,
            &[("grant_type", "client_credentials")],
            Some((&svc.id, &svc.secret)),
        )
        .await;
    let cc: Value = r.json().await.unwrap();
    let token = at(&cc);
    // A client-credentials token is live for introspection while its client exists.
    assert_eq!(introspect(&app, &c, token).await["sub"], svc.id.as_str());

    for path in [paths::REVOKE, paths::INTROSPECT] {
        let r = app.post_form(path, &[("token", token)], None).await;
        let (status, error, headers) = oauth_error(r).await;
        assert_eq!((status, error.as_str()), (401, "invalid_client"), "{path}");
        assert!(headers.get("www-authenticate").is_none(), "{path}");

        let r = app
            .post_form(path, &[("token", token)], Some((&c.id, "wrong")))
            .await;
        let (status, error, headers) = oauth_error(r).await;
        assert_eq!((status, error.as_str()), (401, "invalid_client"), "{path}");
        assert_eq!(
            headers["www-authenticate"], "Basic realm=\"custos\", charset=\"UTF-8\"",
            "{path}"
        );

        let r = app
            .post_form(
                path,
                &[
                    ("token", token),
                    ("client_id", &c.id),
                    ("client_secret", "wrong"),
                ],
                None,
            )
            .await;
        assert_eq!(oauth_error(r).await.1, "invalid_client", "{path}");

        let r = app.post_form(path, &[], Some((&c.id, &c.secret))).await;
        assert_eq!(
            oauth_error(r).await.1,
            "invalid_request",
            "{path}: token is required"
        );

        let r = app
            .http
            .post(app.url(path))
            .basic_auth(&c.id, Some(&c.secret))
            .json(&json!({"token": token}))
            .send()
            .await
            .unwrap();
        assert_eq!(
            oauth_error(r).await.1,
            "invalid_request",
            "{path}: a form body"
        );
    }
    // Nothing above revoked it.
    assert_eq!(introspect(&app, &c, token).await["active"], true);
}
