//! Every check of `Verifier`, against tokens signed here with keys made here (no issuer needed).

use super::*;
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RSA_PKCS1_SHA256,
    RsaKeyPair,
};
use serde_json::json;
use std::sync::OnceLock;

pub(crate) const ISS: &str = "https://id.example.com";
pub(crate) const AUD: &str = "https://api.example.com";
pub(crate) const NOW: i64 = 1_800_000_000;

pub(crate) enum Pair {
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
    Rsa(RsaKeyPair),
}

pub(crate) struct TestKey {
    pub(crate) kid: String,
    pub(crate) alg: Algorithm,
    pair: Pair,
}

fn b64(b: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(b)
}

impl TestKey {
    pub(crate) fn new(alg: Algorithm, kid: &str) -> TestKey {
        let rng = SystemRandom::new();
        let pair = match alg {
            Algorithm::ES256 => {
                let d =
                    EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
                Pair::Ec(
                    EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, d.as_ref()).unwrap(),
                )
            }
            Algorithm::EdDSA => Pair::Ed(Ed25519KeyPair::generate().unwrap()),
            Algorithm::RS256 => {
                let k = RsaKeyPair::generate(KeySize::Rsa2048).unwrap();
                let der = k.as_der().unwrap();
                Pair::Rsa(RsaKeyPair::from_pkcs8(der.as_ref()).unwrap())
            }
        };
        TestKey {
            kid: kid.into(),
            alg,
            pair,
        }
    }

    pub(crate) fn jwk(&self) -> Value {
        let mut v = match &self.pair {
            Pair::Ec(k) => {
                let p = k.public_key().as_ref();
                json!({"kty": "EC", "crv": "P-256", "x": b64(&p[1..33]), "y": b64(&p[33..65])})
            }
            Pair::Ed(k) => {
                json!({"kty": "OKP", "crv": "Ed25519", "x": b64(k.public_key().as_ref())})
            }
            Pair::Rsa(k) => {
                let p = k.public_key();
                json!({"kty": "RSA", "n": b64(p.modulus().big_endian_without_leading_zero()),
                       "e": b64(p.exponent().big_endian_without_leading_zero())})
            }
        };
        v["kid"] = json!(self.kid);
        v["alg"] = json!(self.alg.as_str());
        v["use"] = json!("sig");
        v
    }

    pub(crate) fn sign_raw(&self, msg: &[u8]) -> Vec<u8> {
        let rng = SystemRandom::new();
        match &self.pair {
            Pair::Ec(k) => k.sign(&rng, msg).unwrap().as_ref().to_vec(),
            Pair::Ed(k) => k.sign(msg).as_ref().to_vec(),
            Pair::Rsa(k) => {
                let mut sig = vec![0; k.public_modulus_len()];
                k.sign(&RSA_PKCS1_SHA256, &rng, msg, &mut sig).unwrap();
                sig
            }
        }
    }

    pub(crate) fn sign(&self, header: &Value, claims: &Value) -> String {
        let mut t = b64(header.to_string().as_bytes());
        t.push('.');
        t.push_str(&b64(claims.to_string().as_bytes()));
        let sig = self.sign_raw(t.as_bytes());
        t.push('.');
        t.push_str(&b64(&sig));
        t
    }

    pub(crate) fn token(&self, claims: &Value) -> String {
        self.sign(
            &json!({"alg": self.alg.as_str(), "typ": "at+jwt", "kid": self.kid}),
            claims,
        )
    }
}

pub(crate) fn claims() -> Value {
    json!({
        "iss": ISS, "sub": "user-1", "aud": AUD, "exp": NOW + 60, "iat": NOW, "nbf": NOW,
        "jti": "j1", "client_id": "rp", "scope": "items:read openid",
    })
}

/// One key of each algorithm (RSA generation is slow in a debug build).
fn keys() -> &'static [TestKey; 3] {
    static K: OnceLock<[TestKey; 3]> = OnceLock::new();
    K.get_or_init(|| {
        [
            TestKey::new(Algorithm::ES256, "ec"),
            TestKey::new(Algorithm::EdDSA, "ed"),
            TestKey::new(Algorithm::RS256, "rsa"),
        ]
    })
}

pub(crate) fn jwks(keys: &[&TestKey]) -> Vec<u8> {
    let keys: Vec<Value> = keys.iter().map(|k| k.jwk()).collect();
    json!({ "keys": keys }).to_string().into_bytes()
}

fn verifier(b: Builder) -> Verifier {
    let [ec, ed, rsa] = keys();
    b.clock(|| NOW)
        .build_with_keys(KeySet::from_jwks(&jwks(&[ec, ed, rsa])).unwrap())
}

fn check(token: &str) -> Result<Claims, VerifyError> {
    verifier(Verifier::builder(ISS, AUD)).verify_offline(token)
}

#[test]
fn accepts_each_algorithm_and_hands_out_the_claims() {
    for k in keys() {
        let c = check(&k.token(&claims())).unwrap();
        assert_eq!(c.sub, "user-1");
        assert_eq!(c.client_id, "rp");
        assert_eq!(c.kid, k.kid);
        assert!(c.has_scope("items:read"));
    }
    // The full media type, and an audience array that includes ours.
    let [ec, ..] = keys();
    let t = ec.sign(
        &json!({"alg": "ES256", "typ": "application/AT+JWT", "kid": "ec"}),
        &claims(),
    );
    assert!(check(&t).is_ok());
    let mut c = claims();
    c["aud"] = json!(["https://other", AUD]);
    assert!(check(&ec.token(&c)).is_ok());
}

#[test]
fn refuses_wrong_type_algorithm_key_and_signature() {
    let [ec, ed, rsa] = keys();
    let wrong_typ = ec.sign(
        &json!({"alg": "ES256", "typ": "JWT", "kid": "ec"}),
        &claims(),
    );
    assert_eq!(check(&wrong_typ).unwrap_err(), VerifyError::WrongType);
    let no_typ = ec.sign(&json!({"alg": "ES256", "kid": "ec"}), &claims());
    assert_eq!(check(&no_typ).unwrap_err(), VerifyError::WrongType);

    let none = format!(
        "{}.{}.",
        b64(json!({"alg": "none", "typ": "at+jwt", "kid": "ec"})
            .to_string()
            .as_bytes()),
        b64(claims().to_string().as_bytes())
    );
    assert_eq!(check(&none).unwrap_err(), VerifyError::Algorithm);
    // HS256 "signed" with the public key's bytes: the classic confusion. HS256 is no algorithm here.
    let hs = rsa.sign(
        &json!({"alg": "HS256", "typ": "at+jwt", "kid": "rsa"}),
        &claims(),
    );
    assert_eq!(check(&hs).unwrap_err(), VerifyError::Algorithm);
    // An Ed25519 signature presented as EdDSA under the EC key's kid.
    let confused = ed.sign(
        &json!({"alg": "EdDSA", "typ": "at+jwt", "kid": "ec"}),
        &claims(),
    );
    assert_eq!(check(&confused).unwrap_err(), VerifyError::Algorithm);
    // Outside the allow-list.
    let only_ec = verifier(Verifier::builder(ISS, AUD).algorithms([Algorithm::ES256]));
    assert_eq!(
        only_ec.verify_offline(&rsa.token(&claims())).unwrap_err(),
        VerifyError::Algorithm
    );
    assert!(only_ec.verify_offline(&ec.token(&claims())).is_ok());

    let stranger = TestKey::new(Algorithm::ES256, "stranger");
    assert_eq!(
        check(&stranger.token(&claims())).unwrap_err(),
        VerifyError::UnknownKey
    );
    let no_kid = ec.sign(&json!({"alg": "ES256", "typ": "at+jwt"}), &claims());
    assert_eq!(check(&no_kid).unwrap_err(), VerifyError::UnknownKey);
    let forged = stranger.sign(
        &json!({"alg": "ES256", "typ": "at+jwt", "kid": "ec"}),
        &claims(),
    );
    assert_eq!(check(&forged).unwrap_err(), VerifyError::Signature);
    let good = ed.token(&claims());
    let mut c = claims();
    c["scope"] = json!("items:write");
    let parts: Vec<&str> = good.split('.').collect();
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        b64(c.to_string().as_bytes()),
        parts[2]
    );
    assert_eq!(check(&tampered).unwrap_err(), VerifyError::Signature);
    let crit = ec.sign(
        &json!({"alg": "ES256", "typ": "at+jwt", "kid": "ec", "crit": ["exp"]}),
        &claims(),
    );
    assert_eq!(check(&crit).unwrap_err(), VerifyError::Malformed);
    for junk in [
        "",
        "a.b",
        "a.b.c.d",
        "!!.!!.!!",
        &"a".repeat(MAX_TOKEN_LEN + 1),
    ] {
        assert_eq!(check(junk).unwrap_err(), VerifyError::Malformed, "{junk}");
    }
}

#[test]
fn refuses_other_issuers_audiences_and_times() {
    let [ec, ..] = keys();
    let with = |name: &str, v: Value| {
        let mut c = claims();
        c[name] = v;
        check(&ec.token(&c)).map(|_| ()).unwrap_err()
    };
    assert_eq!(with("iss", json!("https://evil")), VerifyError::Issuer);
    assert_eq!(with("aud", json!("https://other")), VerifyError::Audience);
    assert_eq!(with("aud", json!(["a", "b"])), VerifyError::Audience);
    // Leeway 30 s on each side.
    assert_eq!(with("exp", json!(NOW - 30)), VerifyError::Expired);
    assert!(
        check(&ec.token(&{
            let mut c = claims();
            c["exp"] = json!(NOW - 29);
            c
        }))
        .is_ok()
    );
    assert_eq!(with("nbf", json!(NOW + 31)), VerifyError::NotYetValid);
    assert_eq!(with("iat", json!(NOW + 31)), VerifyError::NotYetValid);
    let strict = verifier(Verifier::builder(ISS, AUD).leeway(0));
    let mut c = claims();
    c["exp"] = json!(NOW);
    assert_eq!(
        strict.verify_offline(&ec.token(&c)).unwrap_err(),
        VerifyError::Expired
    );
    let mut c = claims();
    c.as_object_mut().unwrap().remove("client_id");
    assert_eq!(
        check(&ec.token(&c)).unwrap_err(),
        VerifyError::MissingClaim("client_id")
    );
}

#[tokio::test]
async fn an_unreachable_issuer_is_unavailable_not_invalid() {
    let [ec, ..] = keys();
    // Port 9 (discard) on loopback: refused at once.
    let v = Verifier::builder("http://127.0.0.1:9", AUD)
        .clock(|| NOW)
        .build_lazy();
    assert_eq!(
        v.verify(&ec.token(&claims())).await.unwrap_err(),
        VerifyError::Unavailable
    );
    assert!(
        Verifier::builder("http://127.0.0.1:9", AUD)
            .build()
            .await
            .is_err()
    );
}

#[cfg(feature = "axum")]
mod layer {
    use super::*;
    use crate::axum::{BearerLayer, require_scope};
    use ::axum::Router;
    use ::axum::body::Body;
    use ::axum::http::{Request, StatusCode};
    use ::axum::routing::get;
    use tower::ServiceExt;

    fn app() -> Router {
        Router::new()
            .route(
                "/write",
                get(|c: Claims| async move { c.sub }).route_layer(require_scope("items:write")),
            )
            .route("/read", get(|c: Claims| async move { c.sub }))
            .layer(BearerLayer::new(verifier(Verifier::builder(ISS, AUD))))
            .route("/open", get(|| async { "open" }))
    }

    async fn call(path: &str, auth: Option<&str>) -> (StatusCode, String, String) {
        let mut r = Request::get(path);
        if let Some(a) = auth {
            r = r.header("authorization", a);
        }
        let resp = app().oneshot(r.body(Body::empty()).unwrap()).await.unwrap();
        let www = resp
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let status = resp.status();
        let body = ::axum::body::to_bytes(resp.into_body(), 1 << 16)
            .await
            .unwrap();
        (status, www, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn rfc6750_answers() {
        let [ec, ..] = keys();
        let good = format!("Bearer {}", ec.token(&claims()));
        assert_eq!(
            call("/read", Some(&good)).await,
            (StatusCode::OK, String::new(), "user-1".into())
        );
        assert_eq!(call("/open", None).await.0, StatusCode::OK);

        let (s, www, _) = call("/read", None).await;
        assert_eq!((s, www.as_str()), (StatusCode::UNAUTHORIZED, "Bearer"));
        let (s, www, _) = call("/read", Some("Basic dXNlcjpwdw==")).await;
        assert_eq!((s, www.as_str()), (StatusCode::UNAUTHORIZED, "Bearer"));

        let mut expired = claims();
        expired["exp"] = json!(NOW - 100);
        let (s, www, body) = call("/read", Some(&format!("bearer {}", ec.token(&expired)))).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
        assert_eq!(
            www,
            "Bearer error=\"invalid_token\", error_description=\"the access token has expired\""
        );
        assert!(body.contains("invalid_token"), "{body}");

        let (s, www, _) = call("/write", Some(&good)).await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        assert_eq!(
            www,
            "Bearer error=\"insufficient_scope\", error_description=\"the scope items:write is required\", scope=\"items:write\""
        );
        let mut writer = claims();
        writer["scope"] = json!("items:write");
        let (s, _, _) = call("/write", Some(&format!("Bearer {}", ec.token(&writer)))).await;
        assert_eq!(s, StatusCode::OK);

        let (s, www, _) = call("/read", Some("Bearer a b")).await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert!(www.contains("invalid_request"), "{www}");
    }
}
