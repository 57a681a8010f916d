//! The password policy, after NIST SP 800-63B §3.1.1.2: a minimum length (default 12) and a generous
//! maximum (1024 characters), any Unicode (NFC-normalised before hashing is the caller's business; we
//! count characters, not bytes), no composition rules, and a refusal of passwords that are known to be
//! bad: on the bundled list of common passwords (`data/common-passwords.txt`), guessable by zxcvbn
//! (score below `password_min_zxcvbn_score`), or, when `hibp_api_url` is set, found in Have I Been
//! Pwned's breach corpus. HIBP is asked by k-anonymity: only the first five hex characters of the
//! password's SHA-1 leave the process, and an unreachable service does not block anyone.
//!
//! Every refusal says why, in words for the form.

use std::sync::OnceLock;
use std::time::Duration;

use crate::config::Config;

pub const MAX_LEN: usize = 1024;
/// zxcvbn's matching grows with length; beyond this many characters only the prefix is scored.
const ZXCVBN_MAX_CHARS: usize = 100;

/// Why a password is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Weakness {
    TooShort {
        min: usize,
    },
    TooLong,
    /// On the bundled list of common passwords.
    Common,
    /// zxcvbn's score is too low; its advice, if any.
    Guessable {
        advice: String,
    },
    /// Seen this many times in breaches (Have I Been Pwned).
    Breached {
        count: u64,
    },
}

impl std::fmt::Display for Weakness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Weakness::TooShort { min } => write!(f, "Use at least {min} characters."),
            Weakness::TooLong => write!(f, "Use at most {MAX_LEN} characters."),
            Weakness::Common => write!(
                f,
                "This password is on a list of the most common passwords. Choose another one."
            ),
            Weakness::Guessable { advice } if advice.is_empty() => write!(
                f,
                "This password is too easy to guess. A few unrelated words make a strong one."
            ),
            Weakness::Guessable { advice } => {
                write!(f, "This password is too easy to guess. {advice}")
            }
            Weakness::Breached { count } => write!(
                f,
                "This password appeared in {count} data breaches and must not be used. Choose another one."
            ),
        }
    }
}

fn common() -> &'static [&'static str] {
    static LIST: OnceLock<Vec<&'static str>> = OnceLock::new();
    LIST.get_or_init(|| {
        let mut v: Vec<&str> = include_str!("data/common-passwords.txt")
            .lines()
            .filter(|l| !l.is_empty())
            .collect();
        v.sort_unstable();
        v
    })
}

/// True when the password (or its lower-case form) is on the bundled list.
pub fn is_common(pw: &str) -> bool {
    let list = common();
    list.binary_search(&pw).is_ok() || list.binary_search(&pw.to_lowercase().as_str()).is_ok()
}

/// The checks that need no network: length, the common list, zxcvbn. `context` holds the person's
/// own words (email, name) that make a password guessable for them.
pub fn check_local(c: &Config, pw: &str, context: &[&str]) -> Result<(), Weakness> {
    let n = pw.chars().count();
    if n < c.password_min_length {
        return Err(Weakness::TooShort {
            min: c.password_min_length,
        });
    }
    if n > MAX_LEN {
        return Err(Weakness::TooLong);
    }
    if is_common(pw) {
        return Err(Weakness::Common);
    }
    if c.password_min_zxcvbn_score > 0 {
        let scored: String = pw.chars().take(ZXCVBN_MAX_CHARS).collect();
        let inputs: Vec<&str> = context
            .iter()
            .flat_map(|w| w.split(['@', '.', ' ', '_', '-', '+']))
            .filter(|w| w.chars().count() >= 3)
            .collect();
        let e = zxcvbn::zxcvbn(&scored, &inputs);
        if u8::from(e.score()) < c.password_min_zxcvbn_score {
            let advice = e
                .feedback()
                .map(|f| {
                    let mut parts: Vec<String> =
                        f.warning().map(|w| w.to_string()).into_iter().collect();
                    parts.extend(f.suggestions().iter().map(|s| s.to_string()));
                    parts.join(" ")
                })
                .unwrap_or_default();
            return Err(Weakness::Guessable { advice });
        }
    }
    Ok(())
}

/// Every check, HIBP included when configured.
pub async fn check(c: &Config, pw: &str, context: &[&str]) -> Result<(), Weakness> {
    check_local(c, pw, context)?;
    if let Some(api) = &c.hibp_api_url
        && let Some(count) = pwned_count(api, pw).await
        && count > 0
    {
        return Err(Weakness::Breached { count });
    }
    Ok(())
}

/// Upper-case hex SHA-1 of the password (HIBP's format).
pub fn sha1_hex(pw: &str) -> String {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, pw.as_bytes());
    d.as_ref().iter().map(|b| format!("{b:02X}")).collect()
}

/// How often HIBP has seen the password; `None` when it could not be asked (fail open: a breach
/// database being down must not stop people from choosing a password; the local checks still hold).
pub async fn pwned_count(api: &str, pw: &str) -> Option<u64> {
    let hash = sha1_hex(pw);
    let (prefix, suffix) = hash.split_at(5);
    let url = format!("{}/range/{prefix}", api.trim_end_matches('/'));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .user_agent("custos-password-check")
        .build()
        .ok()?;
    let resp = match client.get(&url).header("Add-Padding", "true").send().await {
        Ok(r) if r.status().is_success() => r,
        Ok(r) => {
            tracing::warn!(
                status = r.status().as_u16(),
                "hibp: unexpected status; password not checked"
            );
            return None;
        }
        Err(e) => {
            tracing::warn!(error = %e, "hibp: unreachable; password not checked");
            return None;
        }
    };
    let body = resp.text().await.ok()?;
    Some(
        body.lines()
            .filter_map(|l| l.trim().split_once(':'))
            .find(|(s, _)| s.eq_ignore_ascii_case(suffix))
            .and_then(|(_, n)| n.trim().parse().ok())
            .unwrap_or(0),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> Config {
        Config::default()
    }

    #[test]
    fn length_common_and_guessable() {
        let c = cfg();
        assert_eq!(
            check_local(&c, "short", &[]),
            Err(Weakness::TooShort { min: 12 })
        );
        assert_eq!(check_local(&c, "password1234", &[]), Err(Weakness::Common));
        assert_eq!(check_local(&c, "PASSWORD1234", &[]), Err(Weakness::Common));
        assert!(matches!(
            check_local(&c, "aaaaaaaaaaaaaaaa", &[]),
            Err(Weakness::Guessable { .. })
        ));
        assert!(matches!(
            check_local(
                &c,
                "lovelacelovelace",
                &["ada.lovelace@example.com", "Ada Lovelace"]
            ),
            Err(Weakness::Guessable { .. })
        ));
        assert_eq!(check_local(&c, "correct horse battery staple", &[]), Ok(()));
        // Any Unicode, counted in characters.
        assert_eq!(check_local(&c, "ツバメが空を高く飛んでいく朝", &[]), Ok(()));
        assert_eq!(
            check_local(&c, &"x".repeat(MAX_LEN + 1), &[]),
            Err(Weakness::TooLong)
        );
        let lenient = Config {
            password_min_zxcvbn_score: 0,
            ..cfg()
        };
        assert_eq!(check_local(&lenient, "aaaaaaaaaaaaaaaa", &[]), Ok(()));
    }

    #[test]
    fn the_list_is_loaded_and_sorted() {
        assert!(common().len() > 39_000);
        assert!(is_common("iloveyou"));
        assert!(!is_common("correct horse battery staple"));
    }

    #[test]
    fn sha1_matches_hibp_format() {
        assert_eq!(
            sha1_hex("password"),
            "5BAA61E4C9B93F3F0682250B6CF8331B7EE68FD8"
        );
    }
}
