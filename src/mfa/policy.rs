//! When a second factor is required: for everyone (`mfa_required`), for members of a role
//! (`mfa_required_roles` against the user's `roles`), for a client (`require_mfa`), or because the
//! request asked for it (`acr_values` naming `urn:custos:acr:mfa`: step-up).

use crate::app::AppState;
use crate::store::{Client, StoreError};

fn valid_role(r: &str) -> bool {
    (1..=64).contains(&r.len())
        && r.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
}

/// `mfa_required_roles`: comma-separated; an invalid entry is the error.
pub fn parse_roles(s: &str) -> Result<Vec<String>, String> {
    let v: Vec<String> = s
        .split(',')
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(str::to_string)
        .collect();
    normalize_roles(&v)
}

/// Checks and de-duplicates a list of role names.
pub fn normalize_roles(v: &[String]) -> Result<Vec<String>, String> {
    let mut out: Vec<String> = Vec::new();
    for r in v {
        let r = r.trim();
        if !valid_role(r) {
            return Err(format!(
                "`{r}` is not a role name (1-64 characters of A-Z a-z 0-9 - _ . :)"
            ));
        }
        if !out.iter().any(|x| x == r) {
            out.push(r.to_string());
        }
    }
    Ok(out)
}

/// Whether configuration or the client demands a second factor for this person (what the request
/// itself asks for is the caller's business).
pub async fn required(
    state: &AppState,
    user_id: &str,
    client: Option<&Client>,
) -> Result<bool, StoreError> {
    if state.settings.raw.mfa_required || client.is_some_and(|c| c.require_mfa) {
        return Ok(true);
    }
    let wanted = &state.settings.mfa_required_roles;
    if wanted.is_empty() {
        return Ok(false);
    }
    let roles = state.store.user_roles(user_id).await?;
    Ok(roles.iter().any(|r| wanted.contains(r)))
}

#[cfg(test)]
mod tests {
    #[test]
    fn roles_parse() {
        assert_eq!(
            super::parse_roles(" admin, ops ,admin,").unwrap(),
            ["admin", "ops"]
        );
        assert!(super::parse_roles("ad min").is_err());
        assert!(super::parse_roles("").unwrap().is_empty());
    }
}
