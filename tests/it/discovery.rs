//! Discovery and the JWKS, read by a real OpenID Connect client library.

use openidconnect::core::CoreProviderMetadata;
use openidconnect::{HttpRequest, HttpResponse, IssuerUrl};

use crate::support::TestApp;

/// openidconnect's HTTP seam, served by reqwest.
pub async fn oidc_http(req: HttpRequest) -> Result<HttpResponse, std::io::Error> {
    let client = reqwest::Client::new();
    let (parts, body) = req.into_parts();
    let r = client
        .request(parts.method, parts.uri.to_string())
        .headers(parts.headers)
        .body(body)
        .send()
        .await
        .map_err(std::io::Error::other)?;
    let mut b = http::Response::builder().status(r.status());
    for (k, v) in r.headers() {
        b = b.header(k, v);
    }
    let bytes = r.bytes().await.map_err(std::io::Error::other)?;
    b.body(bytes.to_vec()).map_err(std::io::Error::other)
}

#[tokio::test]
async fn openidconnect_discovers_metadata_and_jwks() {
    let app = TestApp::start().await;
    let meta =
        CoreProviderMetadata::discover_async(IssuerUrl::new(app.base.clone()).unwrap(), &oidc_http)
            .await
            .expect("discovery parses");
    assert_eq!(meta.issuer().as_str(), app.base);
    assert_eq!(meta.token_endpoint().unwrap().as_str(), app.url("/token"));
    assert_eq!(
        meta.jwks().keys().len(),
        3,
        "RS256, ES256 and EdDSA keys are published"
    );
    let algs: Vec<String> = meta
        .id_token_signing_alg_values_supported()
        .iter()
        .map(|a| {
            serde_json::to_value(a)
                .unwrap()
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert!(
        algs.contains(&"RS256".to_string()),
        "OIDC requires RS256: {algs:?}"
    );
}

#[tokio::test]
async fn rfc8414_metadata_matches_openid_configuration() {
    let app = TestApp::start().await;
    let a: serde_json::Value = app
        .http
        .get(app.url("/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let b: serde_json::Value = app
        .http
        .get(app.url("/.well-known/oauth-authorization-server"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(a, b);
    assert_eq!(
        a["grant_types_supported"],
        serde_json::json!(["authorization_code", "refresh_token", "client_credentials"]),
        "only what works is advertised"
    );
    assert_eq!(
        a["token_endpoint_auth_methods_supported"],
        serde_json::json!(["client_secret_basic", "client_secret_post", "none"])
    );
    assert_eq!(
        a["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );
    assert_eq!(a["response_types_supported"], serde_json::json!(["code"]));
    // Every advertised endpoint answers (not 404).
    for key in ["token_endpoint", "jwks_uri", "authorization_endpoint"] {
        let url = a[key].as_str().unwrap();
        let r = app.http.get(url).send().await.unwrap();
        assert_ne!(r.status().as_u16(), 404, "{key} {url}");
    }
}

#[tokio::test]
async fn jwks_publishes_public_members_only_with_thumbprint_kids() {
    let app = TestApp::start().await;
    let r = app
        .http
        .get(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let cc = r.headers()["cache-control"].to_str().unwrap().to_string();
    assert!(cc.starts_with("public, max-age="), "{cc}");
    let jwks: serde_json::Value = r.json().await.unwrap();
    let keys = jwks["keys"].as_array().unwrap();
    let mut algs: Vec<&str> = keys.iter().map(|k| k["alg"].as_str().unwrap()).collect();
    algs.sort();
    assert_eq!(algs, ["ES256", "EdDSA", "RS256"]);
    for k in keys {
        assert_eq!(k["use"], "sig");
        for private in ["d", "p", "q", "dp", "dq", "qi", "k"] {
            assert!(
                k.get(private).is_none(),
                "private member {private} published: {k}"
            );
        }
        // kid is the RFC 7638 thumbprint of the required public members.
        let members: serde_json::Map<String, serde_json::Value> = k
            .as_object()
            .unwrap()
            .iter()
            .filter(|(name, _)| ["e", "n", "kty", "crv", "x", "y"].contains(&name.as_str()))
            .map(|(a, b)| (a.clone(), b.clone()))
            .collect();
        assert_eq!(
            k["kid"].as_str().unwrap(),
            custos::keys::jwk::thumbprint(&serde_json::Value::Object(members))
        );
    }
}

#[tokio::test]
async fn health_endpoints() {
    let app = TestApp::start().await;
    let live = app.http.get(app.url("/health/live")).send().await.unwrap();
    assert_eq!(live.status(), 200);
    let ready = app.http.get(app.url("/health/ready")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(body["checks"]["database"], "ok");
    assert_eq!(body["checks"]["ephemeral_store"], "ok");
}

#[tokio::test]
async fn request_id_is_returned_and_accepted() {
    let app = TestApp::start().await;
    let r = app
        .http
        .get(app.url("/health/live"))
        .header("x-request-id", "trace-me-123")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"], "trace-me-123");
    let r = app.http.get(app.url("/health/live")).send().await.unwrap();
    assert!(!r.headers()["x-request-id"].is_empty());
}
