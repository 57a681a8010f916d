//! Key pairs: generation, loading from PKCS#8, public JWKs, RFC 7638 thumbprints and JWS signing.

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RSA_PKCS1_SHA256,
    RsaKeyPair,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use zeroize::Zeroizing;

use crate::config::Alg;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("key generation failed")]
    Generate,
    #[error("private key rejected: {0}")]
    Rejected(String),
    #[error("signing failed")]
    Sign,
}

pub enum KeyPairKind {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
}

/// A private key in PKCS#8 DER, wiped from memory when dropped.
pub struct Pkcs8(pub Zeroizing<Vec<u8>>);

pub fn generate(alg: Alg) -> Result<Pkcs8, KeyError> {
    let rng = SystemRandom::new();
    let der = match alg {
        Alg::RS256 => RsaKeyPair::generate(KeySize::Rsa2048)
            .and_then(|k| k.as_der())
            .map(|d| d.as_ref().to_vec())
            .map_err(|_| KeyError::Generate)?,
        Alg::ES256 => EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map(|d| d.as_ref().to_vec())
            .map_err(|_| KeyError::Generate)?,
        Alg::EdDSA => Ed25519KeyPair::generate_pkcs8v1(&rng)
            .map(|d| d.as_ref().to_vec())
            .map_err(|_| KeyError::Generate)?,
    };
    Ok(Pkcs8(Zeroizing::new(der)))
}

pub fn load(alg: Alg, pkcs8: &[u8]) -> Result<KeyPairKind, KeyError> {
    let rej = |e: aws_lc_rs::error::KeyRejected| KeyError::Rejected(e.to_string());
    Ok(match alg {
        Alg::RS256 => KeyPairKind::Rsa(RsaKeyPair::from_pkcs8(pkcs8).map_err(rej)?),
        Alg::ES256 => KeyPairKind::Ec(
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8).map_err(rej)?,
        ),
        Alg::EdDSA => KeyPairKind::Ed(Ed25519KeyPair::from_pkcs8(pkcs8).map_err(rej)?),
    })
}

fn b64(b: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(b)
}

impl KeyPairKind {
    /// The public key's required JWK members only (what RFC 7638 hashes), in lexicographic order.
    pub fn public_members(&self) -> Value {
        match self {
            KeyPairKind::Rsa(k) => {
                let p = k.public_key();
                json!({
                    "e": b64(p.exponent().big_endian_without_leading_zero()),
                    "kty": "RSA",
                    "n": b64(p.modulus().big_endian_without_leading_zero()),
                })
            }
            KeyPairKind::Ec(k) => {
                // Uncompressed point: 0x04 || x (32) || y (32).
                let p = k.public_key().as_ref();
                json!({"crv": "P-256", "kty": "EC", "x": b64(&p[1..33]), "y": b64(&p[33..65])})
            }
            KeyPairKind::Ed(k) => {
                json!({"crv": "Ed25519", "kty": "OKP", "x": b64(k.public_key().as_ref())})
            }
        }
    }

    pub fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, KeyError> {
        let rng = SystemRandom::new();
        match self {
            KeyPairKind::Rsa(k) => {
                let mut sig = vec![0u8; k.public_modulus_len()];
                k.sign(&RSA_PKCS1_SHA256, &rng, msg, &mut sig)
                    .map_err(|_| KeyError::Sign)?;
                Ok(sig)
            }
            KeyPairKind::Ec(k) => k
                .sign(&rng, msg)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| KeyError::Sign),
            KeyPairKind::Ed(k) => Ok(k.sign(msg).as_ref().to_vec()),
        }
    }
}

/// RFC 7638 thumbprint: SHA-256 over the required members serialised without whitespace, keys sorted.
pub fn thumbprint(public_members: &Value) -> String {
    // serde_json's map is ordered by key (no preserve_order feature), which is exactly RFC 7638's order.
    let canonical = serde_json::to_string(public_members).unwrap_or_default();
    b64(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, canonical.as_bytes()).as_ref())
}

/// The JWK as published: public members plus kid, alg and use.
pub fn published_jwk(public_members: &Value, kid: &str, alg: Alg) -> Value {
    let mut v = public_members.clone();
    if let Some(m) = v.as_object_mut() {
        m.insert("kid".into(), kid.into());
        m.insert("alg".into(), alg.as_str().into());
        m.insert("use".into(), "sig".into());
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7638_example_thumbprint() {
        // The example key of RFC 7638 §3.1 and its published thumbprint.
        let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
        let members = json!({"e": "AQAB", "kty": "RSA", "n": n});
        assert_eq!(
            thumbprint(&members),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn generated_keys_load_and_sign() {
        for alg in [Alg::ES256, Alg::EdDSA] {
            let k = generate(alg).unwrap();
            let kp = load(alg, &k.0).unwrap();
            assert!(!kp.sign(b"msg").unwrap().is_empty());
            assert_eq!(thumbprint(&kp.public_members()).len(), 43);
        }
    }
}
