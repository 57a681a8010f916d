//! Password hashing: argon2id with the configured parameters, run through a [`Hasher`] (at most one
//! hash per core at a time, on tokio's blocking pool or in place; see [`PasswordHashing`]).

use argon2::password_hash::PasswordHasher;
use argon2::password_hash::phc::PasswordHash;
use argon2::{Algorithm, Argon2, Params, Version};
use zeroize::Zeroizing;

use crate::config::{Config, PasswordHashing};

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

/// Where the server's password hashes run, and how many at once.
///
/// At most one hash per core runs at a time: argon2id is memory-hard (19 MiB at the OWASP parameters),
/// so more at once only adds memory and cache misses; the rest wait their turn.
///
/// A hash runs on tokio's blocking pool, or, with `password_hashing = "in_place"` (see
/// [`PasswordHashing`]) on a server whose runtime has a single worker (one core), in place on the
/// runtime thread that asked for it:
/// - on one core a blocking thread has no core of its own, so the runtime thread and sqlx's SQLite
///   thread preempt it about ten times per sign-in, each time with cold caches on both sides. In
///   place, a hash runs from start to end in one go: one or two points more sign-ins per second in
///   `bench/run.sh` when sign-ins saturate the core, nothing when they do not;
/// - the price: requests that arrive during a hash wait for it (up to one hash, about 13 ms at the
///   OWASP parameters). That is why it is not the default. Each hash is preceded by yields, so the
///   runtime polls its sockets and runs whatever is ready between two hashes, never several hashes
///   in a row (without them, a request could wait for a dozen).
pub struct Hasher {
    slots: tokio::sync::Semaphore,
    in_place: bool,
}

impl Hasher {
    /// For the current tokio runtime (in place needs it to have a single worker).
    pub fn new(mode: PasswordHashing) -> Self {
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        let workers = tokio::runtime::Handle::try_current()
            .map(|h| h.metrics().num_workers())
            .unwrap_or(cores);
        Hasher {
            slots: tokio::sync::Semaphore::new(cores),
            in_place: mode == PasswordHashing::InPlace && workers == 1,
        }
    }

    /// True when hashes run on the runtime thread itself.
    pub fn in_place(&self) -> bool {
        self.in_place
    }

    async fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
        let _slot = self.slots.acquire().await.ok()?;
        if self.in_place {
            // Lets the runtime poll its sockets and run what is ready before the hash holds the
            // thread: otherwise the next sign-in woken by this slot's release would hash right after,
            // and a request arriving meanwhile would wait for every hash queued before it. Twice: the
            // first yield's wake-up puts this task in tokio's LIFO slot, ahead of the requests the
            // socket poll just found; after the second, they run first (measured: a JWKS request
            // beside a sign-in storm waited 26–29 ms at the median with one yield, 11 ms with two).
            tokio::task::yield_now().await;
            tokio::task::yield_now().await;
            Some(f())
        } else {
            tokio::task::spawn_blocking(f).await.ok()
        }
    }

    /// [`verify_blocking`] in its turn; false when the check could not run.
    pub async fn verify(&self, pw: Zeroizing<String>, stored: String) -> bool {
        self.run(move || verify_blocking(&pw, &stored))
            .await
            .unwrap_or(false)
    }

    /// [`hash_blocking`] in its turn.
    pub async fn hash(
        &self,
        pw: Zeroizing<String>,
        params: HashParams,
    ) -> Result<String, PasswordError> {
        self.run(move || hash_blocking(&pw, params))
            .await
            .ok_or(PasswordError::Hash)?
    }
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
///
/// Imported hashes are verified by their own scheme (see [`verify_imported`]) and rehashed to argon2id
/// at the first successful sign-in (`needs_rehash` flags them).
pub fn verify_blocking(pw: &str, phc: &str) -> bool {
    if let Some(ok) = verify_imported(pw, phc) {
        return ok;
    }
    match PasswordHash::new(phc) {
        Ok(h) => verify_parsed(pw.as_bytes(), &h).unwrap_or(false),
        Err(_) => false,
    }
}

/// The most work an imported hash may ask of one verification: more is refused at import (a hostile
/// file could otherwise make every sign-in attempt cost seconds).
pub const MAX_PBKDF2_ITERATIONS: u32 = 10_000_000;
pub const MAX_BCRYPT_COST: u32 = 16;
pub const MAX_IMPORTED_ARGON2_KIB: u32 = 256 * 1024;

fn is_bcrypt(h: &str) -> bool {
    ["$2a$", "$2b$", "$2y$"].iter().any(|p| h.starts_with(p))
}

/// bcrypt (`$2a$`/`$2b$`/`$2y$`) and PBKDF2-SHA256 (PHC `$pbkdf2-sha256$i=…,l=…$salt$hash`, passlib's
/// modular-crypt `$pbkdf2-sha256$rounds$salt$hash`, Django's `pbkdf2_sha256$rounds$salt$hash`);
/// `None` for any other format (argon2 goes through the pooled path).
pub fn verify_imported(pw: &str, stored: &str) -> Option<bool> {
    if is_bcrypt(stored) {
        return Some(bcrypt::verify(pw, stored).unwrap_or(false));
    }
    let p = parse_pbkdf2(stored)?;
    Some(
        aws_lc_rs::pbkdf2::verify(
            aws_lc_rs::pbkdf2::PBKDF2_HMAC_SHA256,
            p.iterations,
            &p.salt,
            pw.as_bytes(),
            &p.hash,
        )
        .is_ok(),
    )
}

struct Pbkdf2 {
    iterations: std::num::NonZeroU32,
    salt: Vec<u8>,
    hash: Vec<u8>,
}

fn parse_pbkdf2(stored: &str) -> Option<Pbkdf2> {
    use base64::Engine;
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
    let (iterations, salt, hash) = if let Some(rest) = stored.strip_prefix("pbkdf2_sha256$") {
        // Django: the salt is used as its text; the hash is padded base64.
        let mut it = rest.split('$');
        let (i, salt, hash) = (it.next()?, it.next()?, it.next()?);
        if it.next().is_some() {
            return None;
        }
        (
            i.parse::<u32>().ok()?,
            salt.as_bytes().to_vec(),
            STANDARD.decode(hash).ok()?,
        )
    } else if let Some(rest) = stored.strip_prefix("$pbkdf2-sha256$") {
        let mut it = rest.split('$');
        let (params, salt, hash) = (it.next()?, it.next()?, it.next()?);
        if it.next().is_some() {
            return None;
        }
        if params.starts_with("i=") {
            // PHC string format: unpadded standard base64.
            let mut i = None;
            let mut l = None;
            for kv in params.split(',') {
                match kv.split_once('=')? {
                    ("i", v) => i = v.parse::<u32>().ok(),
                    ("l", v) => l = v.parse::<usize>().ok(),
                    _ => return None,
                }
            }
            let hash = STANDARD_NO_PAD.decode(hash).ok()?;
            if l.is_some_and(|l| l != hash.len()) {
                return None;
            }
            (i?, STANDARD_NO_PAD.decode(salt).ok()?, hash)
        } else {
            // passlib's modular crypt: "adapted base64" (`.` for `+`, no padding).
            let ab64 = |s: &str| STANDARD_NO_PAD.decode(s.replace('.', "+")).ok();
            (params.parse::<u32>().ok()?, ab64(salt)?, ab64(hash)?)
        }
    } else {
        return None;
    };
    if hash.len() < 16 || salt.is_empty() || iterations > MAX_PBKDF2_ITERATIONS {
        return None;
    }
    Some(Pbkdf2 {
        iterations: std::num::NonZeroU32::new(iterations)?,
        salt,
        hash,
    })
}

/// Which scheme a hash to import uses, or why it cannot be imported (unknown format, parameters
/// out of bounds).
pub fn imported_scheme(stored: &str) -> Result<&'static str, String> {
    if is_bcrypt(stored) {
        let parts: bcrypt::HashParts = stored
            .parse()
            .map_err(|e| format!("not a valid bcrypt hash ({e})"))?;
        if parts.get_cost() > MAX_BCRYPT_COST {
            return Err(format!("bcrypt cost above {MAX_BCRYPT_COST}"));
        }
        return Ok("bcrypt");
    }
    if stored.starts_with("pbkdf2_sha256$") || stored.starts_with("$pbkdf2-sha256$") {
        return parse_pbkdf2(stored).map(|_| "pbkdf2-sha256").ok_or_else(|| {
            format!(
                "not a valid PBKDF2-SHA256 hash (or more than {MAX_PBKDF2_ITERATIONS} iterations)"
            )
        });
    }
    if stored.starts_with("$argon2") {
        let h = PasswordHash::new(stored).map_err(|e| format!("not a valid argon2 hash ({e})"))?;
        Algorithm::try_from(h.algorithm.as_str())
            .map_err(|_| "unknown argon2 variant".to_string())?;
        let p = Params::try_from(&h).map_err(|e| format!("argon2 parameters: {e}"))?;
        if p.m_cost() > MAX_IMPORTED_ARGON2_KIB {
            return Err(format!("argon2 memory above {MAX_IMPORTED_ARGON2_KIB} KiB"));
        }
        if h.salt.is_none() || h.hash.is_none() {
            return Err("argon2 hash without salt or output".into());
        }
        return Ok("argon2");
    }
    Err(
        "unsupported hash format; expected argon2 (PHC), bcrypt ($2a$/$2b$/$2y$) or PBKDF2-SHA256"
            .into(),
    )
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

    const CHEAP: HashParams = HashParams {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
    };

    /// Hashes, then checks the right and a wrong password, through `h`.
    async fn round_trip(h: &Hasher) {
        let phc = h
            .hash(Zeroizing::new("through the hasher".into()), CHEAP)
            .await
            .unwrap();
        assert!(phc.starts_with("$argon2id$"), "{phc}");
        assert!(
            h.verify(Zeroizing::new("through the hasher".into()), phc.clone())
                .await
        );
        assert!(
            !h.verify(Zeroizing::new("through the hashes".into()), phc)
                .await
        );
        assert!(
            !h.verify(Zeroizing::new("x".into()), "not a hash".into())
                .await
        );
    }

    #[tokio::test]
    async fn a_single_worker_runtime_hashes_in_place_only_when_told() {
        let in_place = Hasher::new(PasswordHashing::InPlace);
        assert!(in_place.in_place());
        round_trip(&in_place).await;
        let pool = Hasher::new(PasswordHashing::Pool);
        assert!(!pool.in_place());
        round_trip(&pool).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_multi_worker_runtime_hashes_on_the_blocking_pool() {
        let in_place = Hasher::new(PasswordHashing::InPlace);
        assert!(!in_place.in_place());
        round_trip(&in_place).await;
    }

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
    fn imported_bcrypt_and_pbkdf2_verify() {
        let b = bcrypt::hash_with_result("old bcrypt password", 4)
            .unwrap()
            .format_for_version(bcrypt::Version::TwoB);
        assert_eq!(imported_scheme(&b), Ok("bcrypt"));
        assert!(verify_blocking("old bcrypt password", &b));
        assert!(!verify_blocking("old bcrypt passwore", &b));
        assert!(needs_rehash(
            &b,
            HashParams {
                memory_kib: 64,
                iterations: 1,
                parallelism: 1
            }
        ));
        // Werkzeug/passlib test vector: "password" with PBKDF2-SHA256, 1000 rounds, salt "salt".
        use base64::Engine;
        use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
        let mut out = [0u8; 32];
        aws_lc_rs::pbkdf2::derive(
            aws_lc_rs::pbkdf2::PBKDF2_HMAC_SHA256,
            std::num::NonZeroU32::new(1000).unwrap(),
            b"NaCl-salt",
            b"old pbkdf2 password",
            &mut out,
        );
        let phc = format!(
            "$pbkdf2-sha256$i=1000,l=32${}${}",
            STANDARD_NO_PAD.encode(b"NaCl-salt"),
            STANDARD_NO_PAD.encode(out)
        );
        let mcf = format!(
            "$pbkdf2-sha256$1000${}${}",
            STANDARD_NO_PAD.encode(b"NaCl-salt").replace('+', "."),
            STANDARD_NO_PAD.encode(out).replace('+', ".")
        );
        let django = format!("pbkdf2_sha256$1000$NaCl-salt${}", STANDARD.encode(out));
        for h in [&phc, &mcf, &django] {
            assert_eq!(imported_scheme(h), Ok("pbkdf2-sha256"), "{h}");
            assert!(verify_blocking("old pbkdf2 password", h), "{h}");
            assert!(!verify_blocking("old pbkdf2 passwore", h), "{h}");
        }
        assert!(imported_scheme("$pbkdf2-sha256$99999999$c2FsdA$aGFzaGhhc2hoYXNoaGFzaA").is_err());
        assert!(imported_scheme("$1$md5crypt$xxxx").is_err());
        assert!(imported_scheme("plaintext").is_err());
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
