//! Signing keys: generated on first start (RS256, ES256, EdDSA), sealed at rest under the KEK in the
//! database (the one place every replica shares), unsealed into memory at start, published as a JWKS.
//!
//! States: `next` (published, not signing), `active` (signing), `retired` (published, not signing),
//! `removed`. `lifecycle` decides when a key moves on, `rotation` moves it (under a lock shared by
//! every replica) and keeps each replica's `Keyring` in step with the database.

pub mod jwk;
pub mod lifecycle;
pub mod rotation;
pub mod seal;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use serde::Serialize;
use serde_json::{Value, json};

use crate::config::Alg;
use crate::store::{KeyRow, Store, StoreError};
use jwk::{KeyError, KeyPairKind, Pkcs8};
use seal::{Kek, SealError};

#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("signing key {kid}: {source}")]
    Seal {
        kid: String,
        #[source]
        source: SealError,
    },
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("signing key {0}: stored row is not valid")]
    Corrupt(String),
    #[error("no active signing key for {0}")]
    NoActiveKey(Alg),
    #[error("no signing key {0}")]
    UnknownKid(String),
    #[error("signing key {0} is already removed")]
    AlreadyRemoved(String),
    #[error(
        "this KEK cannot open the stored signing key {0}: the keys were re-sealed under another KEK (configure that one)"
    )]
    WrongKek(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyState {
    Next,
    Active,
    Retired,
    Removed,
}

impl KeyState {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Next => "next",
            KeyState::Active => "active",
            KeyState::Retired => "retired",
            KeyState::Removed => "removed",
        }
    }
    pub fn parse(s: &str) -> Option<KeyState> {
        [
            KeyState::Next,
            KeyState::Active,
            KeyState::Retired,
            KeyState::Removed,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// What signs tokens. Today: keys unsealed from the database; tomorrow perhaps a KMS or an HSM.
pub trait Signer: Send + Sync {
    /// A compact JWS of `payload` with the active key for `alg`, header `{alg, typ, kid}`.
    fn sign_jws(&self, alg: Alg, typ: &str, payload: &[u8]) -> Result<String, KeysError>;
    /// The JWKS document, serialised once per key-set change.
    fn jwks(&self) -> Bytes;
    /// The active key for `alg`, pinned: for JWS builders outside this module (openidconnect's ID
    /// tokens) that ask for the `kid` and the signature separately. Both come from the handle, so a
    /// rotation between the two calls cannot pair one key's `kid` with another key's signature.
    fn active_key(&self, alg: Alg) -> Result<Arc<dyn SigningKey>, KeysError>;
}

/// One signing key, fixed for the lifetime of the handle.
pub trait SigningKey: Send + Sync {
    fn alg(&self) -> Alg;
    fn kid(&self) -> &str;
    /// The JWK exactly as published in the JWKS: public members plus `kid`, `alg` and `use`.
    fn public_jwk(&self) -> &Value;
    /// The raw JWS signature over `msg` (RS256: PKCS#1 v1.5 SHA-256; ES256: fixed-length r||s;
    /// EdDSA: Ed25519).
    fn sign_raw(&self, msg: &[u8]) -> Result<Vec<u8>, KeysError>;
}

struct LoadedKey {
    kid: String,
    alg: Alg,
    /// The stored row's published JWK (what verifiers find in the JWKS under `kid`).
    jwk: Value,
    pair: KeyPairKind,
}

impl SigningKey for LoadedKey {
    fn alg(&self) -> Alg {
        self.alg
    }
    fn kid(&self) -> &str {
        &self.kid
    }
    fn public_jwk(&self) -> &Value {
        &self.jwk
    }
    fn sign_raw(&self, msg: &[u8]) -> Result<Vec<u8>, KeysError> {
        Ok(self.pair.sign(msg)?)
    }
}

struct KeySet {
    active: HashMap<Alg, Arc<LoadedKey>>,
    jwks: Bytes,
}

pub struct Keyring {
    set: RwLock<Arc<KeySet>>,
}

/// Produces a new private key for an algorithm (tests hand in pre-generated ones: RSA generation is slow).
pub type KeyGenerator = dyn Fn(Alg) -> Result<Pkcs8, KeyError> + Send + Sync;

impl Keyring {
    /// Loads the keys from the store; for any algorithm without an active key, generates one, seals it
    /// and stores it first.
    pub async fn load_or_init(
        store: &Store,
        kek: &Kek,
        now: i64,
        generate: Arc<KeyGenerator>,
    ) -> Result<Keyring, KeysError> {
        let rows = store.keys().await?;
        for alg in Alg::ALL {
            let has_active = rows
                .iter()
                .any(|r| r.alg == alg.as_str() && r.state == KeyState::Active.as_str());
            if !has_active {
                // RSA generation takes tens of milliseconds: keep it off the async workers.
                let g = generate.clone();
                let pkcs8 = tokio::task::spawn_blocking(move || g(alg))
                    .await
                    .map_err(|_| KeyError::Generate)??;
                let row = seal_new_key(kek, alg, &pkcs8, KeyState::Active, now)?;
                tracing::info!(kid = %row.kid, alg = %alg, "generated signing key");
                store.insert_key(&row).await?;
                crate::audit::record(
                    store,
                    now,
                    crate::audit::Event::new("signing_key_generated")
                        .details(json!({"kid": row.kid, "alg": alg.as_str()})),
                )
                .await;
            }
        }
        let rows = store.keys().await?;
        let set = build_set(kek, &rows, None)?;
        Ok(Keyring {
            set: RwLock::new(Arc::new(set)),
        })
    }

    /// Re-reads the keys and swaps in the new set when it differs; true when it did. Keys already in
    /// memory are reused rather than unsealed again, so a replica keeps signing through a KEK change
    /// it has not been restarted for yet; on any error the current set stays.
    pub async fn reload(&self, store: &Store, kek: &Kek) -> Result<bool, KeysError> {
        let rows = store.keys().await?;
        let current = self.current();
        let set = build_set(kek, &rows, Some(&current))?;
        let same = set.jwks == current.jwks
            && set.active.len() == current.active.len()
            && set
                .active
                .iter()
                .all(|(alg, k)| current.active.get(alg).is_some_and(|c| c.kid == k.kid));
        if same {
            return Ok(false);
        }
        let mut guard = match self.set.write() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        *guard = Arc::new(set);
        Ok(true)
    }

    fn current(&self) -> Arc<KeySet> {
        match self.set.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }
}

/// Seals a private key and describes it as a row.
pub fn seal_new_key(
    kek: &Kek,
    alg: Alg,
    pkcs8: &Pkcs8,
    state: KeyState,
    now: i64,
) -> Result<KeyRow, KeysError> {
    let pair = jwk::load(alg, &pkcs8.0)?;
    let members = pair.public_members();
    let kid = jwk::thumbprint(&members);
    let sealed = kek
        .seal(&aad(&kid, alg), &pkcs8.0)
        .map_err(|source| KeysError::Seal {
            kid: kid.clone(),
            source,
        })?;
    Ok(KeyRow {
        public_jwk: jwk::published_jwk(&members, &kid, alg).to_string(),
        kid,
        alg: alg.as_str().into(),
        state: state.as_str().into(),
        sealed_private_key: sealed,
        created_at: now,
        activated_at: (state == KeyState::Active).then_some(now),
        retired_at: None,
        removed_at: None,
    })
}

pub(crate) fn aad(kid: &str, alg: Alg) -> String {
    format!("custos-signing-key:{alg}:{kid}")
}

fn build_set(kek: &Kek, rows: &[KeyRow], loaded: Option<&KeySet>) -> Result<KeySet, KeysError> {
    let mut active: HashMap<Alg, Arc<LoadedKey>> = HashMap::new();
    let mut published = Vec::new();
    for r in rows {
        let state = KeyState::parse(&r.state).ok_or_else(|| KeysError::Corrupt(r.kid.clone()))?;
        let alg = Alg::parse(&r.alg).ok_or_else(|| KeysError::Corrupt(r.kid.clone()))?;
        if state == KeyState::Removed {
            continue;
        }
        let jwk: Value =
            serde_json::from_str(&r.public_jwk).map_err(|_| KeysError::Corrupt(r.kid.clone()))?;
        // Of several active keys for one algorithm (two replicas' first starts raced), the oldest signs;
        // every replica makes the same choice because rows come ordered by creation.
        if state == KeyState::Active && !active.contains_key(&alg) {
            if let Some(k) = loaded
                .and_then(|l| l.active.get(&alg))
                .filter(|k| k.kid == r.kid)
            {
                active.insert(alg, k.clone());
                published.push(jwk);
                continue;
            }
            let pkcs8 = kek
                .open(&aad(&r.kid, alg), &r.sealed_private_key)
                .map_err(|source| KeysError::Seal {
                    kid: r.kid.clone(),
                    source,
                })?;
            let pair = jwk::load(alg, &pkcs8)?;
            // The header's kid comes from the published JWK (see `SigningKey`): it must name this key.
            if jwk::thumbprint(&pair.public_members()) != r.kid
                || jwk.get("kid").and_then(Value::as_str) != Some(r.kid.as_str())
            {
                return Err(KeysError::Corrupt(r.kid.clone()));
            }
            active.insert(
                alg,
                Arc::new(LoadedKey {
                    kid: r.kid.clone(),
                    alg,
                    jwk: jwk.clone(),
                    pair,
                }),
            );
        }
        published.push(jwk);
    }
    let jwks = Bytes::from(json!({ "keys": published }).to_string());
    Ok(KeySet { active, jwks })
}

impl Signer for Keyring {
    fn sign_jws(&self, alg: Alg, typ: &str, payload: &[u8]) -> Result<String, KeysError> {
        let set = self.current();
        let key = set.active.get(&alg).ok_or(KeysError::NoActiveKey(alg))?;
        let header = json!({"alg": alg.as_str(), "typ": typ, "kid": key.kid}).to_string();
        let mut out = String::with_capacity(payload.len() * 4 / 3 + 400);
        URL_SAFE_NO_PAD.encode_string(header.as_bytes(), &mut out);
        out.push('.');
        URL_SAFE_NO_PAD.encode_string(payload, &mut out);
        let sig = key.pair.sign(out.as_bytes())?;
        out.push('.');
        URL_SAFE_NO_PAD.encode_string(&sig, &mut out);
        Ok(out)
    }

    fn jwks(&self) -> Bytes {
        self.current().jwks.clone()
    }

    fn active_key(&self, alg: Alg) -> Result<Arc<dyn SigningKey>, KeysError> {
        let key = self
            .current()
            .active
            .get(&alg)
            .cloned()
            .ok_or(KeysError::NoActiveKey(alg))?;
        Ok(key)
    }
}
