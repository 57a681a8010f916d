//! `POST /token` with client credentials: tokens verified offline against the JWKS, and every error.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use custos::clients::NewClient;
use custos::config::Alg;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde_json::{Value, json};

use crate::support::{TestApp, oauth_error};

fn jwt_alg(a: Alg) -> Algorithm {
    match a {
        Alg::RS256 => Algorithm::RS256,
        Alg::ES256 => Algorithm::ES256,
        Alg::EdDSA => Algorithm::EdDSA,
    }
}

async fn jwks(app: &TestApp) -> JwkSet {
    app.http
        .get(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Verifies an access token the way a resource server would: key by kid from the JWKS, algorithm
/// pinned, typ, iss, aud and exp checked.
fn verify(
    set: &JwkSet,
    token: &str,
    alg: Algorithm,
    iss: &str,
    aud: &str,
) -> Result<Value, String> {
    let header = jsonwebtoken::decode_header(token).map_err(|e| e.to_string())?;
    if header.typ.as_deref() != Some("at+jwt") {
        return Err(format!("typ {:?}", header.typ));
    }
    if header.alg != alg {
        return Err(format!("alg {:?}", header.alg));
    }
    let kid = header.kid.ok_or("no kid")?;
    let jwk = set.find(&kid).ok_or("kid not in JWKS")?;
    let key = DecodingKey::from_jwk(jwk).map_err(|e| e.to_string())?;
    let mut v = Validation::new(alg);
    v.set_issuer(&[iss]);
    v.set_audience(&[aud]);
    v.set_required_spec_claims(&["exp", "iss", "aud", "sub", "iat"]);
    v.leeway = 0;
    jsonwebtoken::decode::<Value>(token, &key, &v)
        .map(|d| d.claims)
        .map_err(|e| e.to_string())
}

async fn token_ok(app: &TestApp, form: &[(&str, &str)], basic: Option<(&str, &str)>) -> Value {
    let r = app.post_form("/token", form, basic).await;
    assert_eq!(r.status(), 200, "{:?}", r.text().await);
    assert_eq!(r.headers()["cache-control"], "no-store");
    assert_eq!(r.headers()["pragma"], "no-cache");
    r.json().await.unwrap()
}

#[tokio::test]
async fn client_credentials_tokens_verify_offline_for_every_algorithm() {
    for alg in Alg::ALL {
        let app = TestApp::builder()
            .with_config(|c| c.access_token_alg = alg.as_str().into())
            .start()
            .await;
        // jsonwebtoken checks exp against the real clock.
        app.clock.set(chrono::Utc::now().timestamp());
        let c = app.service_client().await;
        let body = token_ok(
            &app,
            &[
                ("grant_type", "client_credentials"),
                ("scope", "read write"),
            ],
            Some((&c.id, &c.secret)),
        )
        .await;
        assert_eq!(body["token_type"], "Bearer");
        assert_eq!(body["expires_in"], 900);
        assert_eq!(body["scope"], "read write");
        let at = body["access_token"].as_str().unwrap();
        let set = jwks(&app).await;
        let claims = verify(&set, at, jwt_alg(alg), &app.base, "https://api.example.com")
            .unwrap_or_else(|e| panic!("{alg}: {e}"));
        assert_eq!(claims["sub"], c.id.as_str());
        assert_eq!(claims["client_id"], c.id.as_str());
        assert_eq!(claims["scope"], "read write");
        assert_eq!(
            claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
            900
        );
        assert_eq!(claims["jti"].as_str().unwrap().len(), 32);

        // One flipped bit in the signature: rejected.
        let (head, sig) = at.rsplit_once('.').unwrap();
        let mut raw = URL_SAFE_NO_PAD.decode(sig).unwrap();
        raw[5] ^= 0x01;
        let forged = format!("{head}.{}", URL_SAFE_NO_PAD.encode(raw));
        assert!(
            verify(
                &set,
                &forged,
                jwt_alg(alg),
                &app.base,
                "https://api.example.com"
            )
            .is_err(),
            "{alg}"
        );
        // The wrong audience: rejected.
        assert!(
            verify(
                &set,
                at,
                jwt_alg(alg),
                &app.base,
                "https://elsewhere.example"
            )
            .is_err()
        );
    }
}

#[tokio::test]
async fn a_token_from_a_key_outside_the_jwks_fails() {
    let app = TestApp::start().await;
    app.clock.set(chrono::Utc::now().timestamp());
    let set = jwks(&app).await;
    let real_kid = set
        .keys
        .iter()
        .find(|k| k.common.key_algorithm == Some(jsonwebtoken::jwk::KeyAlgorithm::ES256))
        .unwrap()
        .common
        .key_id
        .clone()
        .unwrap();
    let foreign = custos::keys::jwk::generate(Alg::ES256).unwrap();
    let key = EncodingKey::from_ec_der(&foreign.0);
    let now = chrono::Utc::now().timestamp();
    let claims = json!({"iss": app.base, "sub": "x", "aud": "https://api.example.com", "exp": now + 60, "iat": now, "client_id": "x", "jti": "j"});
    for kid in ["not-a-published-kid".to_string(), real_kid] {
        let mut h = Header::new(Algorithm::ES256);
        h.typ = Some("at+jwt".into());
        h.kid = Some(kid.clone());
        let t = jsonwebtoken::encode(&h, &claims, &key).unwrap();
        assert!(
            verify(
                &set,
                &t,
                Algorithm::ES256,
                &app.base,
                "https://api.example.com"
            )
            .is_err(),
            "kid {kid}"
        );
    }
}

#[tokio::test]
async fn scopes_resources_and_client_secret_post() {
    let app = TestApp::start().await;
    let c = app.service_client().await;
    // No scope: the client's default scopes; no resource: the default audience (first resource).
    let b = token_ok(
        &app,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &c.id),
            ("client_secret", &c.secret),
        ],
        None,
    )
    .await;
    assert_eq!(b["scope"], "read");
    let claims = decode_unverified(b["access_token"].as_str().unwrap());
    assert_eq!(claims["aud"], "https://api.example.com");
    // Two resources: an array audience.
    let b = token_ok(
        &app,
        &[
            ("grant_type", "client_credentials"),
            ("resource", "https://other.example.com"),
            ("resource", "https://api.example.com"),
        ],
        Some((&c.id, &c.secret)),
    )
    .await;
    let claims = decode_unverified(b["access_token"].as_str().unwrap());
    assert_eq!(
        claims["aud"],
        json!(["https://other.example.com", "https://api.example.com"])
    );
}

fn decode_unverified(t: &str) -> Value {
    let payload = t.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

#[tokio::test]
async fn every_token_error_has_its_code_and_status() {
    let app = TestApp::start().await;
    let c = app.service_client().await;
    let code_client = app
        .client(NewClient {
            name: "web".into(),
            redirect_uris: vec!["https://app.example.com/cb".into()],
            ..Default::default()
        })
        .await;
    let public = app
        .client(NewClient {
            name: "spa".into(),
            public: true,
            redirect_uris: vec!["https://spa.example.com/cb".into()],
            ..Default::default()
        })
        .await;
    let cc = [("grant_type", "client_credentials")];
    let basic = Some((c.id.as_str(), c.secret.as_str()));

    // invalid_request
    let (s, e, _) = oauth_error(app.post_form("/token", &[], basic).await).await;
    assert_eq!(
        (s, e.as_str()),
        (400, "invalid_request"),
        "missing grant_type"
    );
    let (s, e, _) = oauth_error(
        app.post_form(
            "/token",
            &[
                ("grant_type", "client_credentials"),
                ("scope", "read"),
                ("scope", "write"),
            ],
            basic,
        )
        .await,
    )
    .await;
    assert_eq!(
        (s, e.as_str()),
        (400, "invalid_request"),
        "repeated parameter"
    );
    let (s, e, _) = oauth_error(
        app.post_form(
            "/token",
            &[
                ("grant_type", "client_credentials"),
                ("client_secret", &c.secret),
            ],
            basic,
        )
        .await,
    )
    .await;
    assert_eq!(
        (s, e.as_str()),
        (400, "invalid_request"),
        "two authentication methods"
    );
    let r = app
        .http
        .post(app.url("/token"))
        .basic_auth(&c.id, Some(&c.secret))
        .json(&json!({"grant_type": "client_credentials"}))
        .send()
        .await
        .unwrap();
    let (s, e, _) = oauth_error(r).await;
    assert_eq!((s, e.as_str()), (400, "invalid_request"), "JSON body");

    // invalid_client: 401, with a Basic challenge only when Basic was tried.
    let (s, e, h) = oauth_error(app.post_form("/token", &cc, Some((&c.id, "wrong"))).await).await;
    assert_eq!((s, e.as_str()), (401, "invalid_client"));
    assert!(h["www-authenticate"].to_str().unwrap().starts_with("Basic"));
    let (s, e, h) = oauth_error(
        app.post_form(
            "/token",
            &[
                ("grant_type", "client_credentials"),
                ("client_id", "nobody"),
                ("client_secret", "x"),
            ],
            None,
        )
        .await,
    )
    .await;
    assert_eq!((s, e.as_str()), (401, "invalid_client"));
    assert!(h.get("www-authenticate").is_none());
    let (s, e, _) = oauth_error(app.post_form("/token", &cc, None).await).await;
    assert_eq!(
        (s, e.as_str()),
        (401, "invalid_client"),
        "no authentication"
    );
    let (s, e, _) = oauth_error(
        app.post_form(
            "/token",
            &[("grant_type", "client_credentials"), ("client_id", &c.id)],
            None,
        )
        .await,
    )
    .await;
    assert_eq!(
        (s, e.as_str()),
        (401, "invalid_client"),
        "confidential client without its secret"
    );

    // unauthorized_client
    let (s, e, _) = oauth_error(
        app.post_form("/token", &cc, Some((&code_client.id, &code_client.secret)))
            .await,
    )
    .await;
    assert_eq!(
        (s, e.as_str()),
        (400, "unauthorized_client"),
        "grant not allowed for the client"
    );
    let (s, e, _) = oauth_error(
        app.post_form(
            "/token",
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &public.id),
            ],
            None,
        )
        .await,
    )
    .await;
    assert_eq!(
        (s, e.as_str()),
        (400, "unauthorized_client"),
        "public client"
    );

    // unsupported_grant_type
    let (s, e, _) = oauth_error(
        app.post_form("/token", &[("grant_type", "password")], basic)
            .await,
    )
    .await;
    assert_eq!((s, e.as_str()), (400, "unsupported_grant_type"));

    // invalid_scope
    let (s, e, _) = oauth_error(
        app.post_form(
            "/token",
            &[
                ("grant_type", "client_credentials"),
                ("scope", "read admin"),
            ],
            basic,
        )
        .await,
    )
    .await;
    assert_eq!((s, e.as_str()), (400, "invalid_scope"));
    let (s, e, _) = oauth_error(
        app.post_form(
            "/token",
            &[
                ("grant_type", "client_credentials"),
                ("scope", "read  write"),
            ],
            basic,
        )
        .await,
    )
    .await;
    assert_eq!((s, e.as_str()), (400, "invalid_scope"), "malformed scope");

    // invalid_target
    let (s, e, _) = oauth_error(
        app.post_form(
            "/token",
            &[
                ("grant_type", "client_credentials"),
                ("resource", "https://evil.example.com"),
            ],
            basic,
        )
        .await,
    )
    .await;
    assert_eq!((s, e.as_str()), (400, "invalid_target"));
    let (s, e, _) = oauth_error(
        app.post_form(
            "/token",
            &[
                ("grant_type", "client_credentials"),
                ("resource", "/relative"),
            ],
            basic,
        )
        .await,
    )
    .await;
    assert_eq!(
        (s, e.as_str()),
        (400, "invalid_target"),
        "not an absolute URI"
    );

    // Method and size.
    let r = app.http.get(app.url("/token")).send().await.unwrap();
    assert_eq!(r.status(), 405);
    let big = "a".repeat(70 * 1024);
    let r = app
        .post_form(
            "/token",
            &[("grant_type", "client_credentials"), ("pad", &big)],
            basic,
        )
        .await;
    assert_eq!(r.status(), 413);

    // None of the refusals leaked a token, and the client still works.
    token_ok(&app, &cc, basic).await;
}
