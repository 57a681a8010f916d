//! The claims of a verified access token, typed as RFC 9068 defines them.

use serde_json::{Map, Value};

use crate::VerifyError;

/// A verified access token's claims. Every claim as signed is in `all`; the ones handlers usually
/// need are typed. `roles`, `groups`, `entitlements` (RFC 9068 §2.2.3.1) and `permissions` are empty
/// when the token carries none.
#[derive(Clone, Debug, PartialEq)]
pub struct Claims {
    pub iss: String,
    /// The resource owner, or the client itself for the client-credentials grant.
    pub sub: String,
    pub aud: Vec<String>,
    pub client_id: String,
    pub exp: i64,
    pub iat: i64,
    pub nbf: Option<i64>,
    pub jti: String,
    /// The `scope` claim split on spaces.
    pub scopes: Vec<String>,
    pub roles: Vec<String>,
    pub groups: Vec<String>,
    pub entitlements: Vec<String>,
    pub permissions: Vec<String>,
    pub auth_time: Option<i64>,
    pub acr: Option<String>,
    /// The `kid` of the key that signed the token.
    pub kid: String,
    pub all: Map<String, Value>,
}

impl Claims {
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }

    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }

    pub fn has_permission(&self, permission: &str) -> bool {
        self.permissions.iter().any(|p| p == permission)
    }

    /// The claims of a payload whose signature has been checked; the time and audience checks are
    /// the caller's. Every claim RFC 9068 §2.2 requires must be present.
    pub(crate) fn from_payload(all: Map<String, Value>, kid: &str) -> Result<Claims, VerifyError> {
        let text = |name: &'static str| -> Result<String, VerifyError> {
            all.get(name)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .ok_or(VerifyError::MissingClaim(name))
        };
        let number = |name: &'static str| -> Result<Option<i64>, VerifyError> {
            match all.get(name) {
                None => Ok(None),
                Some(v) => v
                    .as_i64()
                    // NumericDate may carry a fraction (RFC 7519 §2).
                    .or_else(|| v.as_f64().filter(|f| f.is_finite()).map(|f| f as i64))
                    .map(Some)
                    .ok_or(VerifyError::Malformed),
            }
        };
        let aud = match all.get("aud") {
            Some(Value::String(a)) => vec![a.clone()],
            Some(Value::Array(list)) => list
                .iter()
                .map(|v| v.as_str().map(str::to_string).ok_or(VerifyError::Malformed))
                .collect::<Result<Vec<_>, _>>()?,
            Some(_) => return Err(VerifyError::Malformed),
            None => return Err(VerifyError::MissingClaim("aud")),
        };
        Ok(Claims {
            iss: text("iss")?,
            sub: text("sub")?,
            client_id: text("client_id")?,
            jti: text("jti")?,
            exp: number("exp")?.ok_or(VerifyError::MissingClaim("exp"))?,
            iat: number("iat")?.ok_or(VerifyError::MissingClaim("iat"))?,
            nbf: number("nbf")?,
            auth_time: number("auth_time")?,
            acr: all.get("acr").and_then(Value::as_str).map(str::to_string),
            aud,
            scopes: all
                .get("scope")
                .and_then(Value::as_str)
                .map(|s| {
                    s.split(' ')
                        .filter(|v| !v.is_empty())
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default(),
            roles: values(all.get("roles")),
            groups: values(all.get("groups")),
            entitlements: values(all.get("entitlements")),
            permissions: values(all.get("permissions")),
            kid: kid.to_string(),
            all,
        })
    }
}

/// A multi-valued claim: an array of strings, of SCIM objects with a `value`, or one
/// space-separated string.
fn values(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::String(s)) => s
            .split(' ')
            .filter(|x| !x.is_empty())
            .map(str::to_string)
            .collect(),
        Some(Value::Array(list)) => list
            .iter()
            .filter_map(|x| match x {
                Value::String(s) => Some(s.clone()),
                Value::Object(o) => o.get("value").and_then(Value::as_str).map(str::to_string),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn payload(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn typed_claims_and_multi_valued_forms() {
        let c = Claims::from_payload(
            payload(json!({
                "iss": "https://id", "sub": "u1", "aud": ["a", "b"], "client_id": "c", "exp": 20,
                "iat": 10.5, "jti": "j", "scope": "read  write", "roles": ["admin"],
                "groups": [{"value": "ops"}, {"display": "x"}], "permissions": "p1 p2",
            })),
            "k1",
        )
        .unwrap();
        assert_eq!(c.aud, ["a", "b"]);
        assert_eq!(c.iat, 10);
        assert!(c.has_scope("write") && !c.has_scope(""));
        assert!(c.has_role("admin"));
        assert_eq!(c.groups, ["ops"]);
        assert!(c.has_permission("p2"));
        assert!(c.entitlements.is_empty());
        assert_eq!(c.kid, "k1");
    }

    #[test]
    fn required_claims() {
        let full = json!({"iss": "i", "sub": "s", "aud": "a", "client_id": "c", "exp": 2, "iat": 1, "jti": "j"});
        assert!(Claims::from_payload(payload(full.clone()), "k").is_ok());
        for name in ["iss", "sub", "aud", "client_id", "exp", "iat", "jti"] {
            let mut p = payload(full.clone());
            p.remove(name);
            assert_eq!(
                Claims::from_payload(p, "k").unwrap_err(),
                VerifyError::MissingClaim(name)
            );
        }
        let mut p = payload(full);
        p.insert("exp".into(), json!("soon"));
        assert_eq!(
            Claims::from_payload(p, "k").unwrap_err(),
            VerifyError::Malformed
        );
    }
}
