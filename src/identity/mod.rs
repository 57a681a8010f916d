//! People: accounts and their passwords. Sign-in flows arrive with the code-flow issue.

pub mod login;
pub mod password;

/// Trims the address and lower-cases its domain (the local part is the mail server's business).
pub fn normalize_email(raw: &str) -> Result<String, &'static str> {
    let e = raw.trim();
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
    }
}
