//! Password hashing: argon2id with the configured parameters, always on a blocking thread.

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
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

pub fn verify_blocking(pw: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(h) => Argon2::default().verify_password(pw.as_bytes(), &h).is_ok(),
        Err(_) => false,
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
}
