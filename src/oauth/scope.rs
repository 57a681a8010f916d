//! Scope strings (RFC 6749 §3.3) and resource indicators (RFC 8707).

use super::error::{ErrorCode, OAuthError};

/// Parses `scope = scope-token *( SP scope-token )`, scope-token = 1*( %x21 / %x23-5B / %x5D-7E ).
/// Duplicates are dropped, order kept.
pub fn parse(s: &str) -> Result<Vec<String>, OAuthError> {
    let bad = || {
        OAuthError::new(
            ErrorCode::InvalidScope,
            "scope must be space-separated tokens of printable ASCII without quotes or backslashes",
        )
    };
    let mut out: Vec<String> = Vec::new();
    for tok in s.split(' ') {
        if tok.is_empty()
            || !tok
                .bytes()
                .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
        {
            return Err(bad());
        }
        if !out.iter().any(|t| t == tok) {
            out.push(tok.to_string());
        }
    }
    Ok(out)
}

/// RFC 8707 §2: an absolute URI without a fragment.
pub fn valid_resource(r: &str) -> bool {
    match url::Url::parse(r) {
        Ok(u) => u.fragment().is_none() && !r.contains('#'),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_syntax() {
        assert_eq!(parse("a b a").unwrap(), vec!["a", "b"]);
        assert!(parse("").is_err());
        assert!(parse("a  b").is_err());
        assert!(parse(" a").is_err());
        assert!(parse("a\"b").is_err());
        assert!(parse("caf\u{e9}").is_err());
    }

    #[test]
    fn resources() {
        assert!(valid_resource("https://api.example.com/v1"));
        assert!(!valid_resource("/relative"));
        assert!(!valid_resource("https://api.example.com/#frag"));
    }
}
