//! Verifying Custos's own access tokens (RFC 9068 JWTs) for the endpoints that accept them: userinfo,
//! revocation and introspection.
//!
//! Only what Custos itself signs is accepted: header `typ: at+jwt`, an algorithm of ours whose key type
//! matches the published key named by `kid`, our issuer, a live `exp` (and `nbf`), and a `jti` not on
//! the revocation list in the ephemeral store. The keys come from the JWKS the `Signer` publishes, so a
//! token of a retired (still published) key verifies and one of a removed key does not.
//!
//! The JWKS is parsed on each call: it is a few hundred bytes, and parsing it costs less than the
//! signature check itself, while a cache would need a home in `AppState` and an invalidation rule.
//!
//! This module owns no state and knows nothing of HTTP; callers decide what an error means for them.

use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ED25519, RSA_PKCS1_2048_8192_SHA256, RsaPublicKeyComponents,
    UnparsedPublicKey,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

use crate::app::AppState;
use crate::config::Alg;
use crate::oauth::grants::authorization_code::revoked_jti_key;

/// Larger than any token Custos issues by far; anything bigger is not one of ours and is not decoded.
const MAX_TOKEN_LEN: usize = 8 * 1024;

/// Why a token was refused. `Display` is a description fit for `error_description` (plain ASCII, no
/// quotes or backslashes), except `Unavailable`, which is not the token's fault and must not be shown.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("the access token is malformed")]
    Malformed,
    #[error("the token is not an access token (typ must be at+jwt)")]
    WrongType,
    #[error("the access token algorithm is not accepted")]
    Algorithm,
    #[error("the access token was not signed by a key of this issuer")]
    UnknownKey,
    #[error("the access token signature is invalid")]
    Signature,
    #[error("the access token was issued by another issuer")]
    Issuer,
    #[error("the access token has expired")]
    Expired,
    #[error("the access token is not valid yet")]
    NotYetValid,
    #[error("the access token has been revoked")]
    Revoked,
    /// The revocation list could not be read: the token may be fine, but nobody can tell.
    #[error("the revocation list is unavailable: {0}")]
    Unavailable(String),
}

/// A verified access token: every claim as signed, plus the ones callers always need, typed.
#[derive(Debug, Clone)]
pub struct AccessToken {
    pub claims: Value,
    pub jti: String,
    pub sub: String,
    pub client_id: String,
    pub exp: i64,
}

impl AccessToken {
    /// The `scope` claim split on spaces (none when absent).
    pub fn scopes(&self) -> Vec<&str> {
        self.claims
            .get("scope")
            .and_then(Value::as_str)
            .map(|s| s.split(' ').filter(|v| !v.is_empty()).collect())
            .unwrap_or_default()
    }

    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes().contains(&scope)
    }
}

/// Verifies `token` completely: signature and claims (see [`verify_signed`]), then the revocation list.
pub async fn verify_access_token(
    state: &AppState,
    token: &str,
) -> Result<AccessToken, VerifyError> {
    let at = verify_signed(
        token,
        &state.signer.jwks(),
        &state.settings.issuer_str,
        state.clock.now(),
    )?;
    match state.ephemeral.get(&revoked_jti_key(&at.jti)).await {
        Ok(None) => Ok(at),
        Ok(Some(_)) => Err(VerifyError::Revoked),
        Err(e) => Err(VerifyError::Unavailable(e.to_string())),
    }
}

/// The checks that need no I/O: shape, header, key, signature, `iss`, `exp`, `nbf`, `jti`.
pub fn verify_signed(
    token: &str,
    jwks: &[u8],
    issuer: &str,
    now: i64,
) -> Result<AccessToken, VerifyError> {
    let claims = verify_jws(token, jwks, true)?;
    if claims.get("iss").and_then(Value::as_str) != Some(issuer) {
        return Err(VerifyError::Issuer);
    }
    let exp = claims
        .get("exp")
        .and_then(Value::as_i64)
        .ok_or(VerifyError::Malformed)?;
    if now >= exp {
        return Err(VerifyError::Expired);
    }
    match claims.get("nbf") {
        None => {}
        Some(v) => match v.as_i64() {
            Some(nbf) if nbf <= now => {}
            Some(_) => return Err(VerifyError::NotYetValid),
            None => return Err(VerifyError::Malformed),
        },
    }
    let text = |name: &str| -> Result<String, VerifyError> {
        claims
            .get(name)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .ok_or(VerifyError::Malformed)
    };
    let (jti, sub, client_id) = (text("jti")?, text("sub")?, text("client_id")?);
    Ok(AccessToken {
        jti,
        sub,
        client_id,
        exp,
        claims,
    })
}

/// Shape, header, key and signature of a JWS made with one of the keys Custos publishes; returns the
/// claims unchecked. `access_token` says which kind is expected: an access token must say
/// `typ: at+jwt` and nothing else may (so one kind can never stand in for the other).
fn verify_jws(token: &str, jwks: &[u8], access_token: bool) -> Result<Value, VerifyError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(VerifyError::Malformed);
    }
    let mut parts = token.split('.');
    let (Some(h64), Some(p64), Some(s64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(VerifyError::Malformed);
    };
    let header = decode_object(h64)?;
    let typ = header.get("typ").and_then(Value::as_str);
    // RFC 9068 §4: `at+jwt`, or the full media type; media types compare case-insensitively.
    let is_at = typ.is_some_and(|t| {
        t.eq_ignore_ascii_case("at+jwt") || t.eq_ignore_ascii_case("application/at+jwt")
    });
    if is_at != access_token {
        return Err(VerifyError::WrongType);
    }
    // Custos sets no critical extensions, so a token that names one was not made here.
    if header.get("crit").is_some() {
        return Err(VerifyError::Malformed);
    }
    let alg = header
        .get("alg")
        .and_then(Value::as_str)
        .and_then(Alg::parse)
        .ok_or(VerifyError::Algorithm)?;
    let kid = header
        .get("kid")
        .and_then(Value::as_str)
        .ok_or(VerifyError::UnknownKey)?;
    let jwk = find_key(jwks, kid)?;
    // The key's own `alg` decides, so a token cannot pick a different algorithm for a published key.
    if jwk.get("alg").and_then(Value::as_str) != Some(alg.as_str()) {
        return Err(VerifyError::Algorithm);
    }
    let sig = URL_SAFE_NO_PAD
        .decode(s64)
        .map_err(|_| VerifyError::Malformed)?;
    let signed = &token[..h64.len() + 1 + p64.len()];
    check_signature(alg, &jwk, signed.as_bytes(), &sig)?;
    decode_object(p64)
}

fn decode_object(part: &str) -> Result<Value, VerifyError> {
    let raw = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| VerifyError::Malformed)?;
    match serde_json::from_slice::<Value>(&raw) {
        Ok(v @ Value::Object(_)) => Ok(v),
        _ => Err(VerifyError::Malformed),
    }
}

/// The published JWK named `kid`.
fn find_key(jwks: &[u8], kid: &str) -> Result<Value, VerifyError> {
    let mut doc: Value = serde_json::from_slice(jwks).map_err(|_| VerifyError::UnknownKey)?;
    let keys = match doc.get_mut("keys").map(Value::take) {
        Some(Value::Array(keys)) => keys,
        _ => return Err(VerifyError::UnknownKey),
    };
    keys.into_iter()
        .find(|k| k.get("kid").and_then(Value::as_str) == Some(kid))
        .ok_or(VerifyError::UnknownKey)
}

fn member(jwk: &Value, name: &str) -> Result<Vec<u8>, VerifyError> {
    jwk.get(name)
        .and_then(Value::as_str)
        .and_then(|s| URL_SAFE_NO_PAD.decode(s).ok())
        .ok_or(VerifyError::UnknownKey)
}

fn is(jwk: &Value, name: &str, value: &str) -> bool {
    jwk.get(name).and_then(Value::as_str) == Some(value)
}

fn check_signature(alg: Alg, jwk: &Value, msg: &[u8], sig: &[u8]) -> Result<(), VerifyError> {
    let ok = match alg {
        Alg::RS256 => {
            if !is(jwk, "kty", "RSA") {
                return Err(VerifyError::Algorithm);
            }
            let (n, e) = (member(jwk, "n")?, member(jwk, "e")?);
            RsaPublicKeyComponents { n: &n, e: &e }
                .verify(&RSA_PKCS1_2048_8192_SHA256, msg, sig)
                .is_ok()
        }
        Alg::ES256 => {
            if !is(jwk, "kty", "EC") || !is(jwk, "crv", "P-256") {
                return Err(VerifyError::Algorithm);
            }
            let (x, y) = (member(jwk, "x")?, member(jwk, "y")?);
            if x.len() != 32 || y.len() != 32 {
                return Err(VerifyError::UnknownKey);
            }
            // SEC 1 uncompressed point: 0x04 || x || y.
            let mut point = Vec::with_capacity(65);
            point.push(0x04);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &point)
                .verify(msg, sig)
                .is_ok()
        }
        Alg::EdDSA => {
            if !is(jwk, "kty", "OKP") || !is(jwk, "crv", "Ed25519") {
                return Err(VerifyError::Algorithm);
            }
            let x = member(jwk, "x")?;
            UnparsedPublicKey::new(&ED25519, &x)
                .verify(msg, sig)
                .is_ok()
        }
    };
    if ok {
        Ok(())
    } else {
        Err(VerifyError::Signature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::jwk;
    use serde_json::json;

    const ISS: &str = "https://id.example.com";
    const NOW: i64 = 1_800_000_000;

    struct Key {
        alg: Alg,
        kid: String,
        pair: jwk::KeyPairKind,
        published: Value,
    }

    fn key(alg: Alg) -> Key {
        let pkcs8 = jwk::generate(alg).unwrap();
        let pair = jwk::load(alg, &pkcs8.0).unwrap();
        let members = pair.public_members();
        let kid = jwk::thumbprint(&members);
        let published = jwk::published_jwk(&members, &kid, alg);
        Key {
            alg,
            kid,
            pair,
            published,
        }
    }

    fn jwks(keys: &[&Key]) -> Vec<u8> {
        let keys: Vec<&Value> = keys.iter().map(|k| &k.published).collect();
        json!({ "keys": keys }).to_string().into_bytes()
    }

    fn claims() -> Value {
        json!({
            "iss": ISS, "sub": "user-1", "aud": "https://api.example.com", "exp": NOW + 60,
            "iat": NOW, "nbf": NOW, "jti": "j1", "client_id": "rp", "scope": "openid email",
        })
    }

    fn sign(k: &Key, header: Value, payload: &Value) -> String {
        let mut out = URL_SAFE_NO_PAD.encode(header.to_string());
        out.push('.');
        out.push_str(&URL_SAFE_NO_PAD.encode(payload.to_string()));
        let sig = k.pair.sign(out.as_bytes()).unwrap();
        out.push('.');
        out.push_str(&URL_SAFE_NO_PAD.encode(sig));
        out
    }

    fn token(k: &Key, payload: &Value) -> String {
        sign(
            k,
            json!({"alg": k.alg.as_str(), "typ": "at+jwt", "kid": k.kid}),
            payload,
        )
    }

    #[test]
    fn accepts_each_algorithm() {
        // RSA generation is slow in a debug build; one of each is enough.
        for alg in Alg::ALL {
            let k = key(alg);
            let at = verify_signed(&token(&k, &claims()), &jwks(&[&k]), ISS, NOW).unwrap();
            assert_eq!(at.jti, "j1");
            assert_eq!(at.sub, "user-1");
            assert_eq!(at.client_id, "rp");
            assert!(at.has_scope("openid") && !at.has_scope("profile"));
        }
    }

    #[test]
    fn refuses_what_is_not_ours_or_not_live() {
        let ec = key(Alg::ES256);
        let ed = key(Alg::EdDSA);
        let set = jwks(&[&ec, &ed]);
        let check = |t: &str| verify_signed(t, &set, ISS, NOW).map(|_| ()).unwrap_err();

        let wrong_typ = sign(
            &ec,
            json!({"alg": "ES256", "typ": "JWT", "kid": ec.kid}),
            &claims(),
        );
        assert_eq!(check(&wrong_typ), VerifyError::WrongType);
        let no_typ = sign(&ec, json!({"alg": "ES256", "kid": ec.kid}), &claims());
        assert_eq!(check(&no_typ), VerifyError::WrongType);

        let none = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD
                .encode(json!({"alg": "none", "typ": "at+jwt", "kid": ec.kid}).to_string()),
            URL_SAFE_NO_PAD.encode(claims().to_string())
        );
        assert_eq!(check(&none), VerifyError::Algorithm);
        // An EdDSA signature presented as ES256 under the EC key's kid, and the other way round.
        let confused = sign(
            &ed,
            json!({"alg": "EdDSA", "typ": "at+jwt", "kid": ec.kid}),
            &claims(),
        );
        assert_eq!(check(&confused), VerifyError::Algorithm);
        let hs = sign(
            &ec,
            json!({"alg": "HS256", "typ": "at+jwt", "kid": ec.kid}),
            &claims(),
        );
        assert_eq!(check(&hs), VerifyError::Algorithm);

        let stranger = key(Alg::ES256);
        assert_eq!(check(&token(&stranger, &claims())), VerifyError::UnknownKey);
        // A stranger's signature under our kid.
        let forged = sign(
            &stranger,
            json!({"alg": "ES256", "typ": "at+jwt", "kid": ec.kid}),
            &claims(),
        );
        assert_eq!(check(&forged), VerifyError::Signature);
        // Our signature over other claims.
        let good = token(&ec, &claims());
        let mut c = claims();
        c["sub"] = json!("someone-else");
        let parts: Vec<&str> = good.split('.').collect();
        let tampered = format!(
            "{}.{}.{}",
            parts[0],
            URL_SAFE_NO_PAD.encode(c.to_string()),
            parts[2]
        );
        assert_eq!(check(&tampered), VerifyError::Signature);

        let mut c = claims();
        c["iss"] = json!("https://evil.example.com");
        assert_eq!(check(&token(&ec, &c)), VerifyError::Issuer);
        let mut c = claims();
        c["exp"] = json!(NOW);
        assert_eq!(check(&token(&ec, &c)), VerifyError::Expired);
        let mut c = claims();
        c["nbf"] = json!(NOW + 10);
        assert_eq!(check(&token(&ec, &c)), VerifyError::NotYetValid);
        let mut c = claims();
        c.as_object_mut().unwrap().remove("jti");
        assert_eq!(check(&token(&ec, &c)), VerifyError::Malformed);
        let crit = sign(
            &ec,
            json!({"alg": "ES256", "typ": "at+jwt", "kid": ec.kid, "crit": ["exp"]}),
            &claims(),
        );
        assert_eq!(check(&crit), VerifyError::Malformed);

        for junk in [
            "",
            "a.b",
            "a.b.c.d",
            "!!.!!.!!",
            &"a".repeat(MAX_TOKEN_LEN + 1),
        ] {
            assert_eq!(check(junk), VerifyError::Malformed, "{junk:.20}");
        }
    }

    #[test]
    fn descriptions_fit_a_www_authenticate_header() {
        for e in [
            VerifyError::Malformed,
            VerifyError::WrongType,
            VerifyError::Algorithm,
            VerifyError::UnknownKey,
            VerifyError::Signature,
            VerifyError::Issuer,
            VerifyError::Expired,
            VerifyError::NotYetValid,
            VerifyError::Revoked,
        ] {
            let d = e.to_string();
            assert!(
                d.bytes()
                    .all(|b| (0x20..=0x7e).contains(&b) && b != b'"' && b != b'\\'),
                "{d}"
            );
        }
    }
}

/// What RP-Initiated Logout needs from an `id_token_hint`.
#[derive(Debug, Clone)]
pub struct IdTokenHint {
    pub sub: String,
    /// The client the ID token was issued to (`azp`, else the single `aud`).
    pub azp: Option<String>,
    pub sid: Option<String>,
}

/// Verifies an ID token used as a logout hint: a key of ours signed it and `iss` is ours. An expired
/// hint is accepted (OIDC RP-Initiated Logout 1.0 §2: the OP should accept it after expiry).
pub fn verify_id_token_hint(
    token: &str,
    jwks: &[u8],
    issuer: &str,
) -> Result<IdTokenHint, VerifyError> {
    let claims = verify_jws(token, jwks, false)?;
    if claims.get("iss").and_then(Value::as_str) != Some(issuer) {
        return Err(VerifyError::Issuer);
    }
    let sub = claims
        .get("sub")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or(VerifyError::Malformed)?
        .to_string();
    let azp = claims
        .get("azp")
        .and_then(Value::as_str)
        .map(str::to_string)
        .or_else(|| match claims.get("aud") {
            Some(Value::String(a)) => Some(a.clone()),
            Some(Value::Array(a)) if a.len() == 1 => a[0].as_str().map(str::to_string),
            _ => None,
        });
    let sid = claims
        .get("sid")
        .and_then(Value::as_str)
        .map(str::to_string);
    Ok(IdTokenHint { sub, azp, sid })
}
