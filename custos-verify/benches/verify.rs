//! Verifications per second on one core, per algorithm: a complete `verify_offline` (split, header,
//! key lookup, signature, claims, times, audience) of a token shaped like Custos's.
//!
//! `cargo bench -p custos-verify`; each benchmark's time is the cost of one verification on one
//! thread, so verifications/s per core = 1 / time.

use std::hint::black_box;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RSA_PKCS1_SHA256,
    RsaKeyPair,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use custos_verify::{Algorithm, KeySet, Verifier};
use serde_json::{Value, json};

const NOW: i64 = 1_800_000_000;

type SignFn = Box<dyn Fn(&[u8]) -> Vec<u8>>;

/// A signing function and the public JWK members for one algorithm.
fn keypair(alg: Algorithm) -> (SignFn, Value) {
    let rng = SystemRandom::new();
    match alg {
        Algorithm::ES256 => {
            let pkcs8 =
                EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
            let k =
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).unwrap();
            let p = k.public_key().as_ref().to_vec();
            let jwk = json!({"kty": "EC", "crv": "P-256", "x": B64.encode(&p[1..33]), "y": B64.encode(&p[33..65])});
            (
                Box::new(move |m| k.sign(&rng, m).unwrap().as_ref().to_vec()),
                jwk,
            )
        }
        Algorithm::EdDSA => {
            let k = Ed25519KeyPair::generate().unwrap();
            let jwk =
                json!({"kty": "OKP", "crv": "Ed25519", "x": B64.encode(k.public_key().as_ref())});
            (Box::new(move |m| k.sign(m).as_ref().to_vec()), jwk)
        }
        Algorithm::RS256 => {
            let der = RsaKeyPair::generate(KeySize::Rsa2048)
                .unwrap()
                .as_der()
                .unwrap();
            let k = RsaKeyPair::from_pkcs8(der.as_ref()).unwrap();
            let p = k.public_key();
            let jwk = json!({"kty": "RSA",
                "n": B64.encode(p.modulus().big_endian_without_leading_zero()),
                "e": B64.encode(p.exponent().big_endian_without_leading_zero())});
            (
                Box::new(move |m| {
                    let mut sig = vec![0; k.public_modulus_len()];
                    k.sign(&RSA_PKCS1_SHA256, &rng, m, &mut sig).unwrap();
                    sig
                }),
                jwk,
            )
        }
    }
}

fn setup(alg: Algorithm) -> (Verifier, String) {
    let (sign, mut jwk) = keypair(alg);
    let kid = format!("bench-{alg}");
    jwk["kid"] = json!(kid);
    jwk["alg"] = json!(alg.as_str());
    let header = json!({"alg": alg.as_str(), "typ": "at+jwt", "kid": kid});
    let claims = json!({
        "iss": "https://id.example.com", "sub": "0f9a3c1e-5b7d-4e2a-9c8b-1d2e3f4a5b6c",
        "aud": "https://api.example.com", "exp": NOW + 900, "iat": NOW, "nbf": NOW,
        "jti": "5f0c2b7e9a1d4c3b8e6f0a2d4c6e8b1a", "client_id": "billing-service",
        "scope": "items:read items:write",
    });
    let mut token = format!(
        "{}.{}",
        B64.encode(header.to_string()),
        B64.encode(claims.to_string())
    );
    let sig = sign(token.as_bytes());
    token = format!("{token}.{}", B64.encode(sig));
    let jwks = json!({"keys": [jwk]}).to_string();
    let verifier = Verifier::builder("https://id.example.com", "https://api.example.com")
        .clock(|| NOW)
        .build_with_keys(KeySet::from_jwks(jwks.as_bytes()).unwrap());
    assert!(verifier.verify_offline(&token).is_ok());
    (verifier, token)
}

fn verify(c: &mut Criterion) {
    let mut g = c.benchmark_group("verify_access_token");
    g.throughput(Throughput::Elements(1));
    for alg in [Algorithm::ES256, Algorithm::EdDSA, Algorithm::RS256] {
        let (verifier, token) = setup(alg);
        g.bench_function(alg.as_str(), |b| {
            b.iter(|| verifier.verify_offline(black_box(&token)).unwrap())
        });
    }
    g.finish();
}

criterion_group!(benches, verify);
criterion_main!(benches);
