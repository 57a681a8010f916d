//! Recovery codes: ten single-use codes of 80 random bits each, shown once at activation (or when
//! regenerated) and stored as SHA-256 hashes: at this entropy a slow hash buys nothing, as for client
//! secrets. Typed input is forgiving about case, spaces and dashes.

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroizing;

use crate::keys::seal::SealError;
use crate::store::SecretHash;

pub const COUNT: usize = 10;
/// When this many or fewer are left after a use, the person is told by mail.
pub const LOW: u64 = 3;
/// Crockford's base32: no I, L, O or U to misread.
const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";
const CHARS: usize = 16;

/// Ten fresh codes, formatted `xxxx-xxxx-xxxx-xxxx`.
pub fn generate() -> Result<Vec<Zeroizing<String>>, SealError> {
    let rng = SystemRandom::new();
    (0..COUNT)
        .map(|_| {
            let mut b = Zeroizing::new([0u8; CHARS]);
            rng.fill(b.as_mut()).map_err(|_| SealError::Rng)?;
            let mut s = Zeroizing::new(String::with_capacity(CHARS + 3));
            for (i, x) in b.iter().enumerate() {
                if i > 0 && i % 4 == 0 {
                    s.push('-');
                }
                // 256 is a multiple of 32: no modulo bias.
                s.push(ALPHABET[(*x % 32) as usize] as char);
            }
            Ok(s)
        })
        .collect()
}

/// The canonical form of a typed code, if it can be one.
pub fn normalize(code: &str) -> Option<Zeroizing<String>> {
    let c: Zeroizing<String> = Zeroizing::new(
        code.chars()
            .filter(|c| !c.is_whitespace() && *c != '-')
            .map(|c| match c.to_ascii_lowercase() {
                'o' => '0',
                'i' | 'l' => '1',
                x => x,
            })
            .collect(),
    );
    (c.len() == CHARS && c.bytes().all(|b| ALPHABET.contains(&b))).then_some(c)
}

pub fn hash(normalized: &str) -> SecretHash {
    SecretHash::of(normalized)
}

/// The hashes to store for freshly generated codes.
pub fn hashes(codes: &[Zeroizing<String>]) -> Vec<SecretHash> {
    codes
        .iter()
        .filter_map(|c| normalize(c))
        .map(|n| hash(&n))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct_and_normalize_to_themselves() {
        let codes = generate().unwrap();
        assert_eq!(codes.len(), COUNT);
        let hs = hashes(&codes);
        assert_eq!(hs.len(), COUNT);
        for (i, h) in hs.iter().enumerate() {
            assert!(hs[i + 1..].iter().all(|o| o != h));
        }
        let c = codes[0].as_str();
        assert_eq!(c.len(), 19);
        let typed = c.to_uppercase().replace('-', " ");
        assert_eq!(normalize(&typed).unwrap().as_str(), c.replace('-', ""));
        assert!(normalize("123456").is_none());
    }
}
