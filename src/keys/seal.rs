//! Sealing private keys at rest: AES-256-GCM under a key-encryption key (KEK), the key id as associated
//! data so a sealed blob cannot be moved to another key's row.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use std::fmt;
use std::io::Write;
use std::path::Path;
use zeroize::Zeroizing;

const PREFIX: &str = "v1.";

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("the KEK must be the base64 encoding of exactly 32 bytes")]
    BadKek,
    #[error("a sealed key could not be opened: wrong KEK or damaged data")]
    Open,
    #[error("randomness unavailable")]
    Rng,
    #[error("KEK file {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

pub struct Kek(Zeroizing<[u8; 32]>);

impl fmt::Debug for Kek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Kek(<redacted>)")
    }
}

impl Kek {
    pub fn from_base64(s: &str) -> Result<Kek, SealError> {
        let s = s.trim();
        let bytes = Zeroizing::new(
            STANDARD
                .decode(s)
                .or_else(|_| URL_SAFE_NO_PAD.decode(s))
                .map_err(|_| SealError::BadKek)?,
        );
        let arr: [u8; 32] = bytes.as_slice().try_into().map_err(|_| SealError::BadKek)?;
        Ok(Kek(Zeroizing::new(arr)))
    }

    pub fn generate() -> Result<Kek, SealError> {
        let mut k = Zeroizing::new([0u8; 32]);
        SystemRandom::new()
            .fill(k.as_mut())
            .map_err(|_| SealError::Rng)?;
        Ok(Kek(k))
    }

    /// An HMAC-SHA256 key derived from the KEK for one purpose (`label`), so every replica derives the
    /// same one and no two purposes share a key.
    pub fn derive_hmac_key(&self, label: &[u8]) -> aws_lc_rs::hmac::Key {
        use aws_lc_rs::hmac;
        let derived = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, self.0.as_ref()), label);
        hmac::Key::new(hmac::HMAC_SHA256, derived.as_ref())
    }

    pub fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(STANDARD.encode(self.0.as_ref()))
    }

    /// Reads `<dir>/kek`, creating the directory (0700) and the file (0600) on first use.
    pub fn load_or_create(dir: &Path) -> Result<Kek, SealError> {
        let io = |source| SealError::Io {
            path: dir.join("kek").display().to_string(),
            source,
        };
        let path = dir.join("kek");
        match std::fs::read_to_string(&path) {
            Ok(s) => Kek::from_base64(&s),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                create_private_dir(dir).map_err(io)?;
                let kek = Kek::generate()?;
                let mut opts = std::fs::OpenOptions::new();
                opts.write(true).create_new(true);
                #[cfg(unix)]
                {
                    use std::os::unix::fs::OpenOptionsExt;
                    opts.mode(0o600);
                }
                let mut f = opts.open(&path).map_err(io)?;
                f.write_all(kek.to_base64().as_bytes()).map_err(io)?;
                f.write_all(b"\n").map_err(io)?;
                f.sync_all().map_err(io)?;
                Ok(kek)
            }
            Err(e) => Err(io(e)),
        }
    }

    fn key(&self) -> LessSafeKey {
        // 32 bytes is always a valid AES-256 key.
        LessSafeKey::new(UnboundKey::new(&AES_256_GCM, self.0.as_ref()).expect("32-byte AES key"))
    }

    pub fn seal(&self, aad: &str, plaintext: &[u8]) -> Result<String, SealError> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| SealError::Rng)?;
        let mut buf = plaintext.to_vec();
        self.key()
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad.as_bytes()),
                &mut buf,
            )
            .map_err(|_| SealError::Rng)?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buf);
        Ok(format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(out)))
    }

    pub fn open(&self, aad: &str, sealed: &str) -> Result<Zeroizing<Vec<u8>>, SealError> {
        let body = sealed.strip_prefix(PREFIX).ok_or(SealError::Open)?;
        let raw = URL_SAFE_NO_PAD.decode(body).map_err(|_| SealError::Open)?;
        if raw.len() < NONCE_LEN + 16 {
            return Err(SealError::Open);
        }
        let (nonce, ct) = raw.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError::Open)?;
        let mut buf = Zeroizing::new(ct.to_vec());
        let len = self
            .key()
            .open_in_place(nonce, Aad::from(aad.as_bytes()), buf.as_mut_slice())
            .map_err(|_| SealError::Open)?
            .len();
        buf.truncate(len);
        Ok(buf)
    }
}

pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_round_trip_and_binding() {
        let k = Kek::generate().unwrap();
        let s = k.seal("kid-1", b"secret key").unwrap();
        assert_eq!(k.open("kid-1", &s).unwrap().as_slice(), b"secret key");
        assert!(
            k.open("kid-2", &s).is_err(),
            "aad binds the blob to its kid"
        );
        assert!(
            Kek::generate().unwrap().open("kid-1", &s).is_err(),
            "another KEK cannot open it"
        );
        let mut t = s.into_bytes();
        let n = t.len() - 3;
        t[n] = if t[n] == b'A' { b'B' } else { b'A' };
        assert!(k.open("kid-1", std::str::from_utf8(&t).unwrap()).is_err());
    }

    #[test]
    fn kek_parsing() {
        let k = Kek::generate().unwrap();
        assert!(Kek::from_base64(&k.to_base64()).is_ok());
        assert!(Kek::from_base64("c2hvcnQ=").is_err());
    }
}
