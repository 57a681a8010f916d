//! ID tokens (OpenID Connect Core §2, §3.1.3.6): the claims are openidconnect's types, the signature
//! comes from the `Signer` (aws-lc-rs), never from openidconnect's own key types (its RSA key uses the
//! `rsa` crate and its Marvin timing flaw).
//!
//! This module builds and signs one token from values the caller has already decided on; it does not
//! choose the audience, check a code, or decide which profile claims a scope releases.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use openidconnect::core::{
    CoreGenderClaim, CoreJsonWebKey, CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm,
};
use openidconnect::{
    AccessToken, AdditionalClaims, Audience, AuthenticationContextClass,
    AuthenticationMethodReference, AuthorizationCode, ClientId, EndUserEmail, EndUserFamilyName,
    EndUserGivenName, EndUserName, EndUserUsername, IdToken, IdTokenClaims, IssuerUrl, JsonWebKey,
    JsonWebTokenError, Nonce, PrivateSigningKey, SigningError, StandardClaims, SubjectIdentifier,
};
use serde::{Deserialize, Serialize};

use crate::config::Alg;
use crate::keys::{KeysError, Signer, SigningKey};

/// Claims Custos adds to the standard ones: `sid` (OpenID Connect Front-/Back-Channel Logout §2.1),
/// which `IdTokenClaims` has no field for.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SidClaims {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
}

impl AdditionalClaims for SidClaims {}

pub type CustosIdTokenClaims = IdTokenClaims<SidClaims, CoreGenderClaim>;
pub type CustosIdToken =
    IdToken<SidClaims, CoreGenderClaim, CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm>;

#[derive(Debug, thiserror::Error)]
pub enum IdTokenError {
    #[error(transparent)]
    Keys(#[from] KeysError),
    #[error("id token claim {0} is not valid")]
    Claim(&'static str),
    #[error("signing key {0}: its published JWK is not usable for an id token")]
    Jwk(String),
    #[error("id token signing failed: {0}")]
    Sign(#[from] JsonWebTokenError),
}

/// The JWS algorithm openidconnect names for each of Custos's signing algorithms.
pub fn jws_alg(alg: Alg) -> CoreJwsSigningAlgorithm {
    match alg {
        Alg::RS256 => CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
        Alg::ES256 => CoreJwsSigningAlgorithm::EcdsaP256Sha256,
        Alg::EdDSA => CoreJwsSigningAlgorithm::EdDsa,
    }
}

/// openidconnect's `PrivateSigningKey` over one pinned Custos key: the header's `kid`, the
/// `at_hash`/`c_hash` algorithm and the signature all come from the same key even if the keyring
/// rotates meanwhile.
pub struct SignerKey {
    key: Arc<dyn SigningKey>,
    jwk: CoreJsonWebKey,
}

impl SignerKey {
    /// Pins the signer's active key for `alg`.
    pub fn active(signer: &dyn Signer, alg: Alg) -> Result<SignerKey, IdTokenError> {
        let key = signer.active_key(alg)?;
        let bad = || IdTokenError::Jwk(key.kid().to_owned());
        let jwk: CoreJsonWebKey =
            serde_json::from_value(key.public_jwk().clone()).map_err(|_| bad())?;
        // openidconnect writes the header's kid from this JWK: it must be the key that signs.
        if jwk.key_id().map(|k| k.as_str()) != Some(key.kid()) || key.alg() != alg {
            return Err(bad());
        }
        Ok(SignerKey { key, jwk })
    }

    pub fn kid(&self) -> &str {
        self.key.kid()
    }
}

impl PrivateSigningKey for SignerKey {
    type VerificationKey = CoreJsonWebKey;

    fn sign(
        &self,
        signature_alg: &CoreJwsSigningAlgorithm,
        message: &[u8],
    ) -> Result<Vec<u8>, SigningError> {
        if *signature_alg != jws_alg(self.key.alg()) {
            return Err(SigningError::UnsupportedAlg(format!(
                "{signature_alg:?} with a {} key",
                self.key.alg()
            )));
        }
        self.key
            .sign_raw(message)
            .map_err(|e| SigningError::Other(e.to_string()))
    }

    fn as_verification_key(&self) -> CoreJsonWebKey {
        self.jwk.clone()
    }
}

/// Profile and email claims (OpenID Connect Core §5.1) to put in the ID token. Which of them a grant
/// releases, and whether they belong in the ID token or only at the UserInfo endpoint, is the caller's
/// decision.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProfileClaims<'a> {
    pub name: Option<&'a str>,
    pub given_name: Option<&'a str>,
    pub family_name: Option<&'a str>,
    pub preferred_username: Option<&'a str>,
    pub email: Option<&'a str>,
    pub email_verified: Option<bool>,
}

/// Everything one ID token says. Times are Unix seconds.
#[derive(Clone, Copy, Debug, Default)]
pub struct IdTokenInput<'a> {
    pub iss: &'a str,
    pub sub: &'a str,
    /// The client the token is issued to: the first `aud` and, when `aud` has several values, `azp`.
    pub client_id: &'a str,
    /// Further audiences; rarely wanted. Non-empty makes `aud` an array with `azp` set to `client_id`.
    pub extra_audiences: &'a [String],
    /// The authorization request's nonce, echoed unchanged.
    pub nonce: Option<&'a str>,
    /// When the user last authenticated (required when max_age was requested or auth_time asked for).
    pub auth_time: Option<i64>,
    pub acr: Option<&'a str>,
    /// Authentication methods (RFC 8176: "pwd", "otp", "mfa", ...); empty leaves `amr` out.
    pub amr: &'a [String],
    /// The SSO session id, for logout.
    pub sid: Option<&'a str>,
    pub iat: i64,
    pub exp: i64,
    /// The access token issued alongside: sets `at_hash`.
    pub access_token: Option<&'a str>,
    /// The authorization code returned alongside (hybrid flow): sets `c_hash`.
    pub code: Option<&'a str>,
    pub profile: ProfileClaims<'a>,
}

fn time(secs: i64, claim: &'static str) -> Result<DateTime<Utc>, IdTokenError> {
    DateTime::from_timestamp(secs, 0).ok_or(IdTokenError::Claim(claim))
}

fn required(v: &str, claim: &'static str) -> Result<String, IdTokenError> {
    if v.is_empty() {
        Err(IdTokenError::Claim(claim))
    } else {
        Ok(v.to_owned())
    }
}

/// Builds the claims of `input` (without `at_hash`/`c_hash`, which depend on the signing key).
pub fn build_claims(input: &IdTokenInput<'_>) -> Result<CustosIdTokenClaims, IdTokenError> {
    let iss =
        IssuerUrl::new(required(input.iss, "iss")?).map_err(|_| IdTokenError::Claim("iss"))?;
    let client_id = required(input.client_id, "aud")?;
    let mut audiences = vec![Audience::new(client_id.clone())];
    for a in input.extra_audiences {
        if a.is_empty() {
            return Err(IdTokenError::Claim("aud"));
        }
        if *a != client_id {
            audiences.push(Audience::new(a.clone()));
        }
    }
    if input.exp <= input.iat {
        return Err(IdTokenError::Claim("exp"));
    }
    let p = &input.profile;
    let standard = StandardClaims::new(SubjectIdentifier::new(required(input.sub, "sub")?))
        .set_name(p.name.map(|v| EndUserName::new(v.to_owned()).into()))
        .set_given_name(
            p.given_name
                .map(|v| EndUserGivenName::new(v.to_owned()).into()),
        )
        .set_family_name(
            p.family_name
                .map(|v| EndUserFamilyName::new(v.to_owned()).into()),
        )
        .set_preferred_username(
            p.preferred_username
                .map(|v| EndUserUsername::new(v.to_owned())),
        )
        .set_email(p.email.map(|v| EndUserEmail::new(v.to_owned())))
        .set_email_verified(p.email_verified);
    // OIDC Core §2: azp is needed when the token has audiences besides the client it was issued to.
    let azp = (audiences.len() > 1).then(|| ClientId::new(client_id));
    let auth_time = input.auth_time.map(|t| time(t, "auth_time")).transpose()?;
    let amr = (!input.amr.is_empty()).then(|| {
        input
            .amr
            .iter()
            .map(|m| AuthenticationMethodReference::new(m.clone()))
            .collect()
    });
    Ok(CustosIdTokenClaims::new(
        iss,
        audiences,
        time(input.exp, "exp")?,
        time(input.iat, "iat")?,
        standard,
        SidClaims {
            sid: input.sid.map(str::to_owned),
        },
    )
    .set_nonce(input.nonce.map(|n| Nonce::new(n.to_owned())))
    .set_auth_time(auth_time)
    .set_auth_context_ref(
        input
            .acr
            .map(|a| AuthenticationContextClass::new(a.to_owned())),
    )
    .set_auth_method_refs(amr)
    .set_authorized_party(azp))
}

/// Signs an ID token with the signer's active key for `alg`; returns the compact JWS.
pub fn sign_id_token(
    signer: &dyn Signer,
    alg: Alg,
    input: &IdTokenInput<'_>,
) -> Result<String, IdTokenError> {
    let claims = build_claims(input)?;
    let key = SignerKey::active(signer, alg)?;
    let access_token = input.access_token.map(|t| AccessToken::new(t.to_owned()));
    let code = input.code.map(|c| AuthorizationCode::new(c.to_owned()));
    let token = CustosIdToken::new(
        claims,
        &key,
        jws_alg(alg),
        access_token.as_ref(),
        code.as_ref(),
    )?;
    // IdToken's Display panics if serialisation fails; serde returns the error instead.
    match serde_json::to_value(&token) {
        Ok(serde_json::Value::String(s)) => Ok(s),
        _ => Err(IdTokenError::Claim("serialisation")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use openidconnect::core::{CoreIdTokenVerifier, CoreJsonWebKeySet};
    use openidconnect::{AccessTokenHash, AuthorizationCodeHash, ClaimsVerificationError};
    use serde_json::Value;

    use crate::keys::Keyring;
    use crate::keys::seal::Kek;
    use crate::store::Store;

    const NOW: i64 = 1_795_564_800;
    const ISS: &str = "https://id.example.com";
    const CLIENT: &str = "app-1";

    async fn keyring() -> Keyring {
        let store = Store::connect("sqlite::memory:").await.unwrap();
        store.migrate().await.unwrap();
        let kek = Kek::generate().unwrap();
        Keyring::load_or_init(&store, &kek, NOW, Arc::new(crate::keys::jwk::generate))
            .await
            .unwrap()
    }

    fn at_now() -> DateTime<Utc> {
        DateTime::from_timestamp(NOW + 5, 0).unwrap()
    }

    fn verifier(signer: &dyn Signer, alg: Alg) -> CoreIdTokenVerifier<'static> {
        let jwks: CoreJsonWebKeySet = serde_json::from_slice(&signer.jwks()).unwrap();
        CoreIdTokenVerifier::new_public_client(
            ClientId::new(CLIENT.into()),
            IssuerUrl::new(ISS.into()).unwrap(),
            jwks,
        )
        .set_allowed_algs([jws_alg(alg)])
        .set_time_fn(at_now)
    }

    fn parts(token: &str) -> (Value, Value) {
        let mut it = token.split('.');
        let mut next = || {
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(it.next().unwrap()).unwrap()).unwrap()
        };
        (next(), next())
    }

    /// The OIDC Core §3.1.3.6 left-half hash, computed here independently of openidconnect.
    fn left_half(alg: Alg, v: &str) -> String {
        let d = match alg {
            Alg::EdDSA => &aws_lc_rs::digest::SHA512,
            _ => &aws_lc_rs::digest::SHA256,
        };
        let h = aws_lc_rs::digest::digest(d, v.as_bytes());
        URL_SAFE_NO_PAD.encode(&h.as_ref()[..h.as_ref().len() / 2])
    }

    fn full_input<'a>(amr: &'a [String], extra: &'a [String]) -> IdTokenInput<'a> {
        IdTokenInput {
            iss: ISS,
            sub: "user-42",
            client_id: CLIENT,
            extra_audiences: extra,
            nonce: Some("n-0S6_WzA2Mj"),
            auth_time: Some(NOW - 30),
            acr: Some("urn:custos:acr:mfa"),
            amr,
            sid: Some("sess-abc"),
            iat: NOW,
            exp: NOW + 300,
            access_token: Some("custos_at_example"),
            code: Some("custos_code_example"),
            profile: ProfileClaims {
                email: Some("ada@example.com"),
                email_verified: Some(true),
                preferred_username: Some("ada"),
                ..Default::default()
            },
        }
    }

    #[tokio::test]
    async fn signs_and_verifies_for_every_alg() {
        let ring = keyring().await;
        let amr = vec!["pwd".to_owned(), "otp".to_owned()];
        let extra = vec!["https://api.example.com".to_owned()];
        for alg in Alg::ALL {
            let input = full_input(&amr, &extra);
            let jwt = sign_id_token(&ring, alg, &input).unwrap();

            // Header: alg and the active key's kid, as openidconnect writes it (no typ).
            let (header, payload) = parts(&jwt);
            let kid = ring.active_key(alg).unwrap().kid().to_owned();
            assert_eq!(header["alg"], alg.as_str());
            assert_eq!(header["kid"], kid.as_str());
            assert!(header.get("typ").is_none_or(|t| t == "JWT"), "{header}");
            assert_eq!(payload["iss"], ISS, "issuer is not rewritten");
            assert_eq!(payload["iat"], NOW);
            assert_eq!(payload["exp"], NOW + 300);
            assert_eq!(payload["sid"], "sess-abc");
            assert_eq!(payload["email"], "ada@example.com");
            assert_eq!(payload["at_hash"], left_half(alg, "custos_at_example"));
            assert_eq!(payload["c_hash"], left_half(alg, "custos_code_example"));

            let token: CustosIdToken = jwt.parse().unwrap();
            let v = verifier(&ring, alg)
                .set_other_audience_verifier_fn(|a| a.as_str() == "https://api.example.com");
            let nonce = Nonce::new("n-0S6_WzA2Mj".into());
            let claims = token.claims(&v, &nonce).unwrap();

            assert_eq!(claims.subject().as_str(), "user-42");
            assert_eq!(claims.audiences().len(), 2);
            assert_eq!(claims.nonce().unwrap().secret(), "n-0S6_WzA2Mj");
            assert_eq!(claims.auth_time().unwrap().timestamp(), NOW - 30);
            assert_eq!(
                claims.auth_context_ref().unwrap().as_str(),
                "urn:custos:acr:mfa"
            );
            let got_amr: Vec<&str> = claims
                .auth_method_refs()
                .unwrap()
                .iter()
                .map(|m| m.as_str())
                .collect();
            assert_eq!(got_amr, ["pwd", "otp"]);
            // openidconnect's verifier does not check azp (its code for that is commented out).
            assert_eq!(claims.authorized_party().unwrap().as_str(), CLIENT);
            assert_eq!(claims.additional_claims().sid.as_deref(), Some("sess-abc"));
            assert_eq!(claims.email().unwrap().as_str(), "ada@example.com");
            assert_eq!(claims.email_verified(), Some(true));
            assert_eq!(
                claims.preferred_username().unwrap().as_str(),
                "ada",
                "{alg}"
            );

            // at_hash / c_hash as a relying party checks them (openidconnect leaves this to the RP).
            let signing_alg = token.signing_alg().unwrap();
            let signing_key = token.signing_key(&v).unwrap();
            assert_eq!(signing_key.key_id().unwrap().as_str(), kid);
            let at = AccessTokenHash::from_token(
                &AccessToken::new("custos_at_example".into()),
                signing_alg,
                signing_key,
            )
            .unwrap();
            assert_eq!(claims.access_token_hash(), Some(&at));
            let ch = AuthorizationCodeHash::from_code(
                &AuthorizationCode::new("custos_code_example".into()),
                signing_alg,
                signing_key,
            )
            .unwrap();
            assert_eq!(claims.code_hash(), Some(&ch));
        }
    }

    #[tokio::test]
    async fn minimal_token_leaves_optional_claims_out() {
        let ring = keyring().await;
        let input = IdTokenInput {
            iss: ISS,
            sub: "user-42",
            client_id: CLIENT,
            iat: NOW,
            exp: NOW + 300,
            ..Default::default()
        };
        let jwt = sign_id_token(&ring, Alg::RS256, &input).unwrap();
        let (_, payload) = parts(&jwt);
        let mut keys: Vec<&str> = payload
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(keys, ["aud", "exp", "iat", "iss", "sub"]);

        // RS256 is openidconnect's default: no set_allowed_algs needed. No nonce was sent.
        let jwks: CoreJsonWebKeySet = serde_json::from_slice(&ring.jwks()).unwrap();
        let v = CoreIdTokenVerifier::new_public_client(
            ClientId::new(CLIENT.into()),
            IssuerUrl::new(ISS.into()).unwrap(),
            jwks,
        )
        .set_time_fn(at_now);
        let token: CustosIdToken = jwt.parse().unwrap();
        let claims = token.claims(&v, |n: Option<&Nonce>| match n {
            None => Ok(()),
            Some(_) => Err("unexpected nonce".to_owned()),
        });
        let claims = claims.unwrap();
        assert!(claims.authorized_party().is_none());
        assert!(claims.additional_claims().sid.is_none());
        assert!(claims.access_token_hash().is_none());
    }

    #[tokio::test]
    async fn rejects_wrong_nonce_flipped_signature_and_expiry() {
        let ring = keyring().await;
        let amr = vec!["pwd".to_owned()];
        for alg in Alg::ALL {
            let jwt = sign_id_token(&ring, alg, &full_input(&amr, &[])).unwrap();
            let v = verifier(&ring, alg);
            let good = Nonce::new("n-0S6_WzA2Mj".into());
            let token: CustosIdToken = jwt.parse().unwrap();
            token.claims(&v, &good).unwrap();

            let wrong = Nonce::new("n-other".into());
            assert!(matches!(
                token.claims(&v, &wrong),
                Err(ClaimsVerificationError::InvalidNonce(_))
            ));

            // Flip one bit of the signature's first byte.
            let (signing_input, sig) = jwt.rsplit_once('.').unwrap();
            let mut raw = URL_SAFE_NO_PAD.decode(sig).unwrap();
            raw[0] ^= 0x01;
            let forged = format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(&raw));
            let forged: CustosIdToken = forged.parse().unwrap();
            assert!(
                matches!(
                    forged.claims(&v, &good),
                    Err(ClaimsVerificationError::SignatureVerification(_))
                ),
                "{alg}"
            );

            let late = verifier(&ring, alg)
                .set_time_fn(|| DateTime::from_timestamp(NOW + 300, 0).unwrap());
            assert!(matches!(
                token.claims(&late, &good),
                Err(ClaimsVerificationError::Expired(_))
            ));
        }
    }

    #[tokio::test]
    async fn pinned_key_signs_only_its_own_alg() {
        let ring = keyring().await;
        let key = SignerKey::active(&ring, Alg::ES256).unwrap();
        assert_eq!(key.kid(), ring.active_key(Alg::ES256).unwrap().kid());
        assert_eq!(
            key.as_verification_key().key_id().unwrap().as_str(),
            key.kid()
        );
        assert!(key.sign(&jws_alg(Alg::ES256), b"msg").is_ok());
        assert!(matches!(
            key.sign(&jws_alg(Alg::RS256), b"msg"),
            Err(SigningError::UnsupportedAlg(_))
        ));
    }

    #[tokio::test]
    async fn refuses_bad_input() {
        let ring = keyring().await;
        let ok = IdTokenInput {
            iss: ISS,
            sub: "user-42",
            client_id: CLIENT,
            iat: NOW,
            exp: NOW + 300,
            ..Default::default()
        };
        for (bad, claim) in [
            (IdTokenInput { sub: "", ..ok }, "sub"),
            (
                IdTokenInput {
                    client_id: "",
                    ..ok
                },
                "aud",
            ),
            (
                IdTokenInput {
                    iss: "not a url",
                    ..ok
                },
                "iss",
            ),
            (IdTokenInput { exp: NOW, ..ok }, "exp"),
        ] {
            match sign_id_token(&ring, Alg::ES256, &bad) {
                Err(IdTokenError::Claim(c)) => assert_eq!(c, claim),
                other => panic!("{claim}: {other:?}"),
            }
        }
    }
}
