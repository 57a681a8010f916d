//! The issuer's public keys, parsed once per JWKS fetch into ready-to-use verification keys.
//!
//! Only asymmetric signature keys are kept: RSA (RS256), EC P-256 (ES256) and Ed25519 (EdDSA). A key
//! of any other type (`oct` above all: no HMAC with a public key), with `use` other than `sig`, or
//! whose own `alg` disagrees with its type is left out, so a token can never pick an algorithm the key
//! was not made for.

use std::collections::HashMap;
use std::fmt;

use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ED25519, ParsedPublicKey, RSA_PKCS1_2048_8192_SHA256,
    RsaPublicKeyComponents,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

/// The JWS algorithms a verifier may accept. `none` and the HMAC family are not representable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Algorithm {
    ES256,
    EdDSA,
    RS256,
}

impl Algorithm {
    pub const ALL: [Algorithm; 3] = [Algorithm::ES256, Algorithm::EdDSA, Algorithm::RS256];

    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::ES256 => "ES256",
            Algorithm::EdDSA => "EdDSA",
            Algorithm::RS256 => "RS256",
        }
    }

    /// The algorithm named in a JOSE header; None for anything not in this list (`none`, `HS256`, …).
    pub fn parse(s: &str) -> Option<Algorithm> {
        Algorithm::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One published key, parsed.
pub(crate) struct Key {
    pub(crate) alg: Algorithm,
    pub(crate) public: ParsedPublicKey,
}

/// The keys of one JWKS document, by `kid`.
#[derive(Default)]
pub struct KeySet {
    keys: HashMap<String, Key>,
}

impl fmt::Debug for KeySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut kids: Vec<(&String, Algorithm)> =
            self.keys.iter().map(|(k, v)| (k, v.alg)).collect();
        kids.sort();
        f.debug_struct("KeySet").field("keys", &kids).finish()
    }
}

/// Why a JWKS document was refused as a whole.
#[derive(Debug, thiserror::Error)]
#[error("the JWKS is not a JSON object with a `keys` array")]
pub struct BadJwks;

impl KeySet {
    /// Parses a JWKS (RFC 7517). Keys this crate cannot use are skipped, not fatal: an issuer may
    /// publish more kinds than a resource server accepts.
    pub fn from_jwks(bytes: &[u8]) -> Result<KeySet, BadJwks> {
        let doc: Value = serde_json::from_slice(bytes).map_err(|_| BadJwks)?;
        let list = doc.get("keys").and_then(Value::as_array).ok_or(BadJwks)?;
        let mut keys = HashMap::new();
        for jwk in list {
            let Some(kid) = jwk.get("kid").and_then(Value::as_str) else {
                continue;
            };
            match parse_key(jwk) {
                // Two keys under one kid: neither can be trusted to be the one meant.
                Some(key) if !keys.contains_key(kid) => {
                    keys.insert(kid.to_string(), key);
                }
                Some(_) => {
                    tracing::warn!(kid, "JWKS names two keys with one kid; both ignored");
                    keys.remove(kid);
                }
                None => tracing::debug!(kid, "JWKS key skipped: unsupported type or malformed"),
            }
        }
        Ok(KeySet { keys })
    }

    pub(crate) fn get(&self, kid: &str) -> Option<&Key> {
        self.keys.get(kid)
    }

    pub fn contains(&self, kid: &str) -> bool {
        self.keys.contains_key(kid)
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

fn text<'a>(jwk: &'a Value, name: &str) -> Option<&'a str> {
    jwk.get(name).and_then(Value::as_str)
}

fn bytes(jwk: &Value, name: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(text(jwk, name)?).ok()
}

fn parse_key(jwk: &Value) -> Option<Key> {
    if text(jwk, "use").is_some_and(|u| u != "sig") {
        return None;
    }
    let (alg, public) = match (text(jwk, "kty")?, text(jwk, "crv")) {
        ("RSA", _) => {
            let (n, e) = (bytes(jwk, "n")?, bytes(jwk, "e")?);
            let public = RsaPublicKeyComponents { n: &n, e: &e }
                .to_parsed_public_key(&RSA_PKCS1_2048_8192_SHA256)
                .ok()?;
            (Algorithm::RS256, public)
        }
        ("EC", Some("P-256")) => {
            let (x, y) = (bytes(jwk, "x")?, bytes(jwk, "y")?);
            if x.len() != 32 || y.len() != 32 {
                return None;
            }
            // SEC 1 uncompressed point: 0x04 || x || y.
            let mut point = Vec::with_capacity(65);
            point.push(0x04);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            let public = ParsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &point).ok()?;
            (Algorithm::ES256, public)
        }
        ("OKP", Some("Ed25519")) => {
            let x = bytes(jwk, "x")?;
            if x.len() != 32 {
                return None;
            }
            (Algorithm::EdDSA, ParsedPublicKey::new(&ED25519, &x).ok()?)
        }
        _ => return None,
    };
    // A key that names its algorithm must name the one its type implies.
    if text(jwk, "alg").is_some_and(|a| a != alg.as_str()) {
        return None;
    }
    Some(Key { alg, public })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keeps_only_usable_signature_keys() {
        let ed = aws_lc_rs::signature::Ed25519KeyPair::generate().unwrap();
        use aws_lc_rs::signature::KeyPair;
        let x = URL_SAFE_NO_PAD.encode(ed.public_key().as_ref());
        let jwks = json!({"keys": [
            {"kty": "OKP", "crv": "Ed25519", "x": x, "kid": "ok", "alg": "EdDSA", "use": "sig"},
            {"kty": "OKP", "crv": "Ed25519", "x": x, "kid": "enc", "use": "enc"},
            {"kty": "OKP", "crv": "Ed25519", "x": x, "kid": "lies", "alg": "ES256"},
            {"kty": "oct", "k": "c2VjcmV0", "kid": "hmac", "alg": "HS256"},
            {"kty": "OKP", "crv": "Ed25519", "x": "AAAA", "kid": "short"},
            {"kty": "OKP", "crv": "Ed25519", "x": x},
            {"kty": "OKP", "crv": "Ed25519", "x": x, "kid": "dup"},
            {"kty": "OKP", "crv": "Ed25519", "x": x, "kid": "dup"},
        ]});
        let set = KeySet::from_jwks(jwks.to_string().as_bytes()).unwrap();
        assert!(set.contains("ok"));
        assert_eq!(set.len(), 1, "{set:?}");
        assert!(KeySet::from_jwks(b"[]").is_err());
        assert!(KeySet::from_jwks(b"{\"keys\": 1}").is_err());
    }

    #[test]
    fn none_and_hmac_are_not_algorithms() {
        for a in ["none", "HS256", "HS512", "PS256", "es256", ""] {
            assert_eq!(Algorithm::parse(a), None, "{a}");
        }
        assert_eq!(Algorithm::parse("EdDSA"), Some(Algorithm::EdDSA));
    }
}
