//! Read-only: what a presented refresh token is (for RFC 7662 introspection and RFC 7009 audit). Writes
//! nothing; rotation and revocation stay in `refresh.rs`.

use sea_orm::EntityTrait;

use super::entity::{refresh_families, refresh_tokens};
use super::{REFRESH_TOKEN_PREFIX, RefreshFamily, SecretHash, Store, StoreError, list_from_db};

/// base64url of 32 bytes without padding: the body of every token `refresh.rs` issues.
const TOKEN_CHARS: usize = 43;

/// One stored refresh token and its family, as they are now.
#[derive(Clone, Debug)]
pub struct RefreshTokenState {
    pub family: RefreshFamily,
    /// The scope this token carries (within the family's).
    pub scope: Vec<String>,
    pub created_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
}

impl RefreshTokenState {
    /// Redeemable at `now`: not yet rotated, within its own and its family's lifetime, family not
    /// revoked. A token rotated moments ago still inside its grace window is not active: the client is
    /// meant to use its successor.
    pub fn is_active(&self, now: i64) -> bool {
        self.used_at.is_none()
            && self.family.revoked_at.is_none()
            && now < self.expires_at
            && now < self.family.absolute_expires_at
    }
}

/// The stored hash of something shaped like one of our refresh tokens. The same shape check as the
/// rotation path (`refresh::parse_token`, private there), so nothing malformed reaches a query.
fn token_hash(s: &str) -> Option<String> {
    let body = s.strip_prefix(REFRESH_TOKEN_PREFIX)?;
    let well_formed = body.len() == TOKEN_CHARS
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    well_formed.then(|| SecretHash::of(s).to_db())
}

impl Store {
    /// The token and its family; `None` when the string is not a refresh token Custos knows.
    pub async fn refresh_token_state(
        &self,
        token: &str,
    ) -> Result<Option<RefreshTokenState>, StoreError> {
        let Some(hash) = token_hash(token) else {
            return Ok(None);
        };
        let Some(tok) = refresh_tokens::Entity::find_by_id(hash)
            .one(&self.db)
            .await?
        else {
            return Ok(None);
        };
        let Some(fam) = refresh_families::Entity::find_by_id(tok.family_id.clone())
            .one(&self.db)
            .await?
        else {
            return Ok(None);
        };
        Ok(Some(RefreshTokenState {
            family: RefreshFamily::try_from(fam)?,
            scope: list_from_db(&tok.scope, "refresh token scope")?,
            created_at: tok.created_at,
            expires_at: tok.expires_at,
            used_at: tok.used_at,
        }))
    }
}
