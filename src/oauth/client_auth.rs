//! Client authentication at the token, revocation and introspection endpoints (RFC 6749 §2.3):
//! `client_secret_basic` and `client_secret_post`, exactly one per request; public clients identify
//! themselves with `client_id` alone.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::error::{ErrorCode, OAuthError};
use crate::clients::ClientDirectory;
use crate::store::{Client, SecretHash};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthMethod {
    Basic,
    Post,
    /// A public client, identified but not authenticated.
    None,
}

pub struct Authenticated {
    pub client: Arc<Client>,
    pub method: AuthMethod,
}

/// What the request carried; built by the HTTP layer.
#[derive(Default)]
pub struct Presented<'a> {
    pub authorization: Option<&'a str>,
    pub form_client_id: Option<&'a str>,
    pub form_client_secret: Option<&'a str>,
}

fn invalid_client(basic: bool) -> OAuthError {
    OAuthError {
        code: ErrorCode::InvalidClient,
        description: "client authentication failed".into(),
        basic_challenge: basic,
    }
}

/// Splits `Basic base64(urlencode(id):urlencode(secret))`.
fn parse_basic(h: &str) -> Option<(String, String)> {
    let (scheme, rest) = h.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = STANDARD.decode(rest.trim()).ok()?;
    let s = String::from_utf8(raw).ok()?;
    let (id, secret) = s.split_once(':')?;
    let dec = |v: &str| -> Option<String> {
        let v = v.replace('+', " ");
        percent_decode(&v)
    };
    Some((dec(id)?, dec(secret)?))
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

pub async fn authenticate(
    dir: &ClientDirectory,
    p: Presented<'_>,
) -> Result<Authenticated, OAuthError> {
    let basic = p.authorization.filter(|h| {
        h.split_once(' ')
            .is_some_and(|(s, _)| s.eq_ignore_ascii_case("basic"))
    });
    let (id, secret, method) = match basic {
        Some(h) => {
            if p.form_client_secret.is_some() {
                return Err(OAuthError::invalid_request(
                    "use exactly one client authentication method (both Basic and client_secret were sent)",
                ));
            }
            let (id, secret) = parse_basic(h).ok_or_else(|| invalid_client(true))?;
            if p.form_client_id.is_some_and(|f| f != id) {
                return Err(OAuthError::invalid_request(
                    "client_id in the body differs from the Basic credentials",
                ));
            }
            (id, Some(secret), AuthMethod::Basic)
        }
        None => match (p.form_client_id, p.form_client_secret) {
            (Some(id), Some(s)) => (id.to_string(), Some(s.to_string()), AuthMethod::Post),
            (Some(id), None) => (id.to_string(), None, AuthMethod::None),
            (None, Some(_)) => {
                return Err(OAuthError::invalid_request(
                    "client_secret without client_id",
                ));
            }
            (None, None) => {
                return Err(OAuthError::new(
                    ErrorCode::InvalidClient,
                    "client authentication required",
                ));
            }
        },
    };
    let is_basic = method == AuthMethod::Basic;
    let client = dir.get(&id).await.map_err(|e| {
        tracing::error!(error = %e, "client lookup failed");
        OAuthError::unavailable("the client registry is unavailable; retry later")
    })?;
    // Hash what was presented even for an unknown client, so the work done does not depend on it.
    let presented = secret.as_deref().map(SecretHash::of);
    let client = client.ok_or_else(|| invalid_client(is_basic))?;
    match (&client.secret_hash, presented, method) {
        (Some(stored), Some(given), _) if stored.matches(&given) => {
            Ok(Authenticated { client, method })
        }
        (None, None, AuthMethod::None) if client.public => Ok(Authenticated { client, method }),
        _ => Err(invalid_client(is_basic)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_is_form_decoded() {
        let h = format!("Basic {}", STANDARD.encode("my%20id:p%3Aw+d"));
        assert_eq!(parse_basic(&h), Some(("my id".into(), "p:w d".into())));
        assert_eq!(parse_basic("Bearer x"), None);
        assert_eq!(parse_basic("Basic !!!"), None);
    }
}
