//! Password hashing: argon2id with the configured parameters, always on a blocking thread.

use argon2::password_hash::PasswordHasher;
use argon2::password_hash::phc::PasswordHash;
use argon2::{Algorithm, Argon2, Params, Version};
use zeroize::Zeroizing;

use crate::config::Config;

pub const MIN_LEN: usize = 12;
pub const MAX_LEN: usize = 1024;

#[derive(Clone, Copy, Debug)]
pub struct HashParams {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl HashParams {
    pub fn from_config(c: &Config) -> Self {
        HashParams {
            memory_kib: c.argon2_memory_kib,
            iterations: c.argon2_iterations,
            parallelism: c.argon2_parallelism,
        }
    }

    fn argon2(&self) -> Result<Argon2<'static>, PasswordError> {
        let p = Params::new(self.memory_kib, self.iterations, self.parallelism, None)
            .map_err(|_| PasswordError::Params)?;
        Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, p))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("password must be {MIN_LEN} to {MAX_LEN} characters")]
    Length,
    #[error("argon2 parameters are invalid")]
    Params,
    #[error("hashing failed")]
    Hash,
}

pub fn check_policy(pw: &str) -> Result<(), PasswordError> {
    let n = pw.chars().count();
    if !(MIN_LEN..=MAX_LEN).contains(&n) {
        return Err(PasswordError::Length);
    }
    Ok(())
}

pub fn hash_blocking(pw: &str, params: HashParams) -> Result<String, PasswordError> {
    let argon = params.argon2()?;
    argon
        .hash_password(pw.as_bytes())
        .map(|h| h.to_string())
        .map_err(|_| PasswordError::Hash)
}

pub async fn hash(pw: Zeroizing<String>, params: HashParams) -> Result<String, PasswordError> {
    tokio::task::spawn_blocking(move || hash_blocking(&pw, params))
        .await
        .map_err(|_| PasswordError::Hash)?
}

/// True when the stored hash is not argon2id or uses weaker parameters than configured.
pub fn needs_rehash(phc: &str, want: HashParams) -> bool {
    let Ok(h) = PasswordHash::new(phc) else {
        return true;
    };
    if h.algorithm.as_str() != "argon2id" {
        return true;
    }
    let get = |k: &str| h.params.get_decimal(k).unwrap_or(0);
    get("m") < want.memory_kib || get("t") < want.iterations || get("p") < want.parallelism
}

/// Checks `pw` against an argon2 PHC string (argon2id, argon2i or argon2d, any parameters).
///
/// The argon2 working memory (19 MiB at the OWASP parameters) comes from a small pool of buffers
/// reused across calls instead of a fresh allocation each time: a fresh one is mapped, faulted in
/// page by page and zeroed, which costs about a fifth of a verification and makes its time vary with
/// the load. Every block is overwritten by the first pass before it is read, so what a buffer held
/// before does not matter; it holds password-derived data only as long as the process lives, like any
/// other in-memory secret of the server.
pub fn verify_blocking(pw: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(h) => verify_parsed(pw.as_bytes(), &h).unwrap_or(false),
        Err(_) => false,
    }
}

fn verify_parsed(pw: &[u8], h: &PasswordHash) -> Option<bool> {
    use subtle::ConstantTimeEq;
    let algorithm = Algorithm::try_from(h.algorithm.as_str()).ok()?;
    let version = match h.version {
        Some(v) => Version::try_from(v).ok()?,
        None => Version::default(),
    };
    let params = Params::try_from(h).ok()?;
    let salt = h.salt.as_ref()?;
    let expected = h.hash.as_ref()?;
    let blocks = params.block_count();
    let argon = Argon2::new(algorithm, version, params);
    let mut out = Zeroizing::new(vec![0u8; expected.len()]);
    let mut memory = memory_pool::take(blocks);
    let done =
        argon.hash_password_into_with_memory(pw, salt.as_ref(), &mut out, &mut memory[..blocks]);
    memory_pool::give_back(memory);
    done.ok()?;
    Some(out.as_slice().ct_eq(expected.as_ref()).into())
}

/// Reusable argon2 working memory. At most [`KEEP`] buffers of at most [`KEEP_MAX_BLOCKS`] are kept
/// (verifications run at most one per core at a time); a larger or surplus buffer is simply dropped.
mod memory_pool {
    use argon2::Block;
    use std::sync::Mutex;

    const KEEP: usize = 8;
    /// 64 MiB: the largest memory cost whose buffer is kept (an imported hash may ask for more).
    const KEEP_MAX_BLOCKS: usize = 64 * 1024;

    static POOL: Mutex<Vec<Vec<Block>>> = Mutex::new(Vec::new());

    pub fn take(blocks: usize) -> Vec<Block> {
        let reused = POOL.lock().ok().and_then(|mut p| p.pop());
        let mut v = reused.unwrap_or_default();
        if v.len() < blocks {
            v.resize(blocks, Block::default());
        }
        v
    }

    pub fn give_back(v: Vec<Block>) {
        if v.len() > KEEP_MAX_BLOCKS {
            return;
        }
        if let Ok(mut p) = POOL.lock()
            && p.len() < KEEP
        {
            p.push(v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_and_verify() {
        let p = HashParams {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        };
        let h = hash_blocking("correct horse battery", p).unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=64,t=1,p=1$"), "{h}");
        assert!(verify_blocking("correct horse battery", &h));
        assert!(!verify_blocking("wrong horse battery", &h));
        assert!(!needs_rehash(&h, p));
        assert!(needs_rehash(
            &h,
            HashParams {
                memory_kib: 128,
                ..p
            }
        ));
        assert!(needs_rehash("$2b$12$invalidbcrypt", p));
    }

    #[test]
    fn pooled_verify_agrees_with_the_reference_across_parameters_and_variants() {
        use argon2::password_hash::PasswordVerifier;
        // A large buffer first, then smaller ones reuse it: stale contents must not matter.
        for (m, t, alg) in [
            (256, 2, Algorithm::Argon2id),
            (64, 1, Algorithm::Argon2id),
            (128, 3, Algorithm::Argon2i),
            (96, 2, Algorithm::Argon2d),
        ] {
            let argon = Argon2::new(alg, Version::V0x13, Params::new(m, t, 1, None).unwrap());
            let h = argon
                .hash_password(b"pool test password")
                .unwrap()
                .to_string();
            let parsed = PasswordHash::new(&h).unwrap();
            for pw in ["pool test password", "pool test passwore", ""] {
                let reference = Argon2::default()
                    .verify_password(pw.as_bytes(), &parsed)
                    .is_ok();
                assert_eq!(verify_blocking(pw, &h), reference, "{h} / {pw:?}");
            }
            assert!(verify_blocking("pool test password", &h));
        }
        // Version 0x10 hashes (no `v=`) and garbage.
        let old = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x10,
            Params::new(64, 1, 1, None).unwrap(),
        );
        let h = old.hash_password(b"legacy password!").unwrap().to_string();
        assert!(verify_blocking("legacy password!", &h));
        assert!(!verify_blocking("legacy password?", &h));
        assert!(!verify_blocking(
            "x",
            "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ"
        ));
        assert!(!verify_blocking("x", "not a hash"));
    }
}
