//! Token formats. Access tokens are RFC 9068 JWTs (`typ: at+jwt`) signed through the `Signer`.

use serde::Serialize;

use crate::config::Alg;
use crate::keys::{KeysError, Signer};

/// One audience is a string, several an array (RFC 7519 §4.1.3).
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    pub fn from_list(mut v: Vec<String>) -> Audience {
        if v.len() == 1 {
            Audience::One(v.remove(0))
        } else {
            Audience::Many(v)
        }
    }
}

#[derive(Debug, Serialize)]
pub struct AccessTokenClaims<'a> {
    pub iss: &'a str,
    pub sub: &'a str,
    pub aud: &'a Audience,
    pub exp: i64,
    pub iat: i64,
    pub nbf: i64,
    pub jti: String,
    pub client_id: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    pub scope: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acr: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub amr: Option<&'a [String]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sid: Option<&'a str>,
}

pub fn new_jti() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

pub fn sign_access_token(
    signer: &dyn Signer,
    alg: Alg,
    claims: &AccessTokenClaims<'_>,
) -> Result<String, KeysError> {
    let payload = serde_json::to_vec(claims).map_err(|_| KeysError::Corrupt("claims".into()))?;
    signer.sign_jws(alg, "at+jwt", &payload)
}

/// Base64url SHA-256: how codes, session ids and flow cookies are keyed at rest.
pub fn sha256_b64(v: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        v.as_bytes(),
    ))
}
