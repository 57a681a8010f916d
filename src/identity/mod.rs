//! People: accounts and their passwords, sign-in and its brute-force limits, registration, email
//! verification, password reset and change, the password policy and hash import.

pub mod accounts;
pub mod bruteforce;
pub mod import;
pub mod login;
pub mod password;
pub mod policy;
pub mod tokens;

/// Trims the address, normalises it to Unicode NFC and lower-cases its domain (the local part is the
/// mail server's business), so one mailbox is one account however it is typed.
pub fn normalize_email(raw: &str) -> Result<String, &'static str> {
    use unicode_normalization::UnicodeNormalization;
    let nfc: String = raw.trim().nfc().collect();
    let e = nfc.as_str();
    let (local, domain) = e
        .rsplit_once('@')
        .ok_or("must look like name@example.com")?;
    if local.is_empty()
        || domain.is_empty()
        || e.len() > 320
        || e.chars().any(char::is_whitespace)
        || !domain.contains('.') && domain != "localhost"
    {
        return Err("must look like name@example.com");
    }
    Ok(format!("{local}@{}", domain.to_lowercase()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn emails() {
        assert_eq!(
            super::normalize_email("  Ann@Example.COM ").unwrap(),
            "Ann@example.com"
        );
        assert!(super::normalize_email("nobody").is_err());
        assert!(super::normalize_email("a b@example.com").is_err());
        // NFC: a decomposed "é" (e + U+0301) is the same address as the composed one.
        assert_eq!(
            super::normalize_email("Jose\u{301}@Exa\u{301}mple.COM").unwrap(),
            "José@exámple.com"
        );
    }
}
