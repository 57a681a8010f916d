//! Client registration rules and the directory the token endpoint reads clients through.
//!
//! Secrets are 256 random bits from the OS CSPRNG, shown once and stored as SHA-256 (a slow KDF buys
//! nothing for a secret this long and would cap the token endpoint). The directory keeps recently read
//! clients in memory for `client_cache_ttl_secs`, so a busy token endpoint does not read the database
//! for every request; a change made through this process drops the entry at once, one made elsewhere
//! (the CLI, another replica) is seen within the TTL.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The longest refresh-token reuse grace window a client may have.
pub const MAX_REUSE_GRACE_SECS: u64 = 300;

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use zeroize::Zeroizing;

use crate::oauth::scope;
use crate::store::{Client, SecretHash, Store, StoreError};

pub const GRANT_TYPES: &[&str] = &["authorization_code", "refresh_token", "client_credentials"];
const CACHE_MAX: usize = 10_000;

/// Random bytes as base64url.
pub fn random_token(bytes: usize) -> String {
    let mut buf = Zeroizing::new(vec![0u8; bytes]);
    // The OS CSPRNG failing is not something to continue from.
    SystemRandom::new()
        .fill(&mut buf)
        .expect("OS random number generator");
    URL_SAFE_NO_PAD.encode(buf.as_slice())
}

#[derive(Debug, Clone, Default)]
pub struct NewClient {
    pub id: Option<String>,
    pub name: String,
    pub public: bool,
    pub redirect_uris: Vec<String>,
    pub grant_types: Vec<String>,
    pub scopes: Vec<String>,
    pub default_scopes: Option<Vec<String>>,
    pub resources: Vec<String>,
    pub audience: Option<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub skip_consent: bool,
    pub access_token_ttl_secs: Option<u64>,
    pub refresh_token_ttl_secs: Option<u64>,
    pub id_token_ttl_secs: Option<u64>,
    pub refresh_reuse_grace_secs: u64,
    pub id_token_signed_response_alg: Option<String>,
    /// OpenID Connect Back-Channel Logout 1.0 registration.
    pub backchannel_logout_uri: Option<String>,
    pub backchannel_logout_session_required: bool,
    /// Sign-ins for this client always need a second factor.
    pub require_mfa: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{field}: {problem}")]
    Invalid {
        field: &'static str,
        problem: String,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn invalid(field: &'static str, problem: impl Into<String>) -> ClientError {
    ClientError::Invalid {
        field,
        problem: problem.into(),
    }
}

/// A redirect URI must be absolute, without fragment; http only for loopback hosts (RFC 9700 §2.1,
/// RFC 8252 §7.3); private-use schemes (`com.example.app:/cb`) are allowed for native apps.
pub fn check_redirect_uri(u: &str) -> Result<(), String> {
    let url = url::Url::parse(u).map_err(|e| format!("`{u}` is not an absolute URI ({e})"))?;
    if url.fragment().is_some() || u.contains('#') {
        return Err(format!("`{u}` must not contain a fragment"));
    }
    match url.scheme() {
        "https" => Ok(()),
        "http" => match url.host_str() {
            Some("localhost" | "127.0.0.1" | "[::1]") => Ok(()),
            _ => Err(format!(
                "`{u}`: http is allowed only for loopback hosts; use https"
            )),
        },
        "javascript" | "data" | "file" | "vbscript" => Err(format!("`{u}`: scheme not allowed")),
        s if s.contains('.') => Ok(()),
        _ => Err(format!(
            "`{u}`: use https, http on a loopback host, or a reverse-DNS private-use scheme"
        )),
    }
}

/// A back-channel logout URI (Back-Channel Logout 1.0 §2.2): absolute, no fragment, https, or http
/// on a loopback host (for development and tests). Custos POSTs to it from the server side, so only
/// an operator registers one.
pub fn check_backchannel_uri(u: &str) -> Result<(), String> {
    let url = url::Url::parse(u).map_err(|e| format!("`{u}` is not an absolute URI ({e})"))?;
    if url.fragment().is_some() || u.contains('#') {
        return Err(format!("`{u}` must not contain a fragment"));
    }
    match (url.scheme(), url.host_str()) {
        ("https", Some(_)) => Ok(()),
        ("http", Some("localhost" | "127.0.0.1" | "[::1]")) => Ok(()),
        _ => Err(format!("`{u}`: use https (http only on a loopback host)")),
    }
}

fn valid_client_id(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

/// Validates and stores a new client. Returns the client and, for a confidential one, its secret:
/// the only time the secret exists outside the caller's hands.
pub async fn create(
    store: &Store,
    n: NewClient,
    now: i64,
) -> Result<(Client, Option<Zeroizing<String>>), ClientError> {
    let id = match n.id {
        Some(id) if valid_client_id(&id) => id,
        Some(id) => {
            return Err(invalid(
                "id",
                format!("`{id}` must be 1-128 characters of A-Z a-z 0-9 - . _ ~"),
            ));
        }
        None => random_token(16),
    };
    let name = n.name.trim().to_string();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(invalid("name", "must be 1-200 characters"));
    }
    for u in &n.redirect_uris {
        check_redirect_uri(u).map_err(|p| invalid("redirect_uri", p))?;
    }
    for u in &n.post_logout_redirect_uris {
        check_redirect_uri(u).map_err(|p| invalid("post_logout_redirect_uri", p))?;
    }
    let mut grants = n.grant_types.clone();
    if grants.is_empty() {
        grants = if n.redirect_uris.is_empty() {
            vec!["client_credentials".into()]
        } else {
            vec!["authorization_code".into(), "refresh_token".into()]
        };
    }
    for g in &grants {
        if !GRANT_TYPES.contains(&g.as_str()) {
            return Err(invalid(
                "grant",
                format!("`{g}` is not one of {}", GRANT_TYPES.join(", ")),
            ));
        }
    }
    grants.dedup();
    if n.public && grants.iter().any(|g| g == "client_credentials") {
        return Err(invalid(
            "grant",
            "a public client cannot use client_credentials (it has no secret)",
        ));
    }
    if grants.iter().any(|g| g == "authorization_code") && n.redirect_uris.is_empty() {
        return Err(invalid(
            "redirect_uri",
            "authorization_code needs at least one redirect URI",
        ));
    }
    let scopes = if n.scopes.is_empty() {
        Vec::new()
    } else {
        scope::parse(&n.scopes.join(" ")).map_err(|_| {
            invalid(
                "scope",
                "scopes must be printable ASCII without spaces, quotes or backslashes",
            )
        })?
    };
    let default_scopes = match n.default_scopes {
        Some(d) => {
            for s in &d {
                if !scopes.contains(s) {
                    return Err(invalid(
                        "default_scope",
                        format!("`{s}` is not among the client's scopes"),
                    ));
                }
            }
            d
        }
        None => scopes.clone(),
    };
    for r in &n.resources {
        if !scope::valid_resource(r) {
            return Err(invalid(
                "resource",
                format!("`{r}` must be an absolute URI without a fragment"),
            ));
        }
    }
    let default_audience = match (n.audience, n.resources.first()) {
        (Some(a), _) => a,
        (None, Some(r)) => r.clone(),
        (None, None) => id.clone(),
    };
    if n.refresh_reuse_grace_secs > MAX_REUSE_GRACE_SECS {
        return Err(invalid(
            "refresh_reuse_grace_secs",
            format!(
                "`{}` is out of range; allowed 0..={MAX_REUSE_GRACE_SECS}",
                n.refresh_reuse_grace_secs
            ),
        ));
    }
    if let Some(a) = &n.id_token_signed_response_alg
        && crate::config::Alg::parse(a).is_none()
    {
        return Err(invalid(
            "id_token_signed_response_alg",
            format!("`{a}` is not one of RS256, ES256, EdDSA"),
        ));
    }
    if let Some(u) = &n.backchannel_logout_uri {
        check_backchannel_uri(u).map_err(|p| invalid("backchannel_logout_uri", p))?;
    }
    if n.backchannel_logout_session_required && n.backchannel_logout_uri.is_none() {
        return Err(invalid(
            "backchannel_logout_session_required",
            "needs a backchannel_logout_uri",
        ));
    }
    let secret = (!n.public).then(|| Zeroizing::new(random_token(32)));
    let client = Client {
        secret_hash: secret.as_ref().map(|s| SecretHash::of(s)),
        id,
        name,
        public: n.public,
        redirect_uris: n.redirect_uris,
        grant_types: grants,
        allowed_scopes: scopes,
        default_scopes,
        allowed_resources: n.resources,
        default_audience,
        access_token_ttl_secs: n.access_token_ttl_secs,
        refresh_token_ttl_secs: n.refresh_token_ttl_secs,
        id_token_ttl_secs: n.id_token_ttl_secs,
        skip_consent: n.skip_consent,
        post_logout_redirect_uris: n.post_logout_redirect_uris,
        refresh_reuse_grace_secs: n.refresh_reuse_grace_secs,
        id_token_signed_response_alg: n.id_token_signed_response_alg,
        backchannel_logout_uri: n.backchannel_logout_uri,
        backchannel_logout_session_required: n.backchannel_logout_session_required,
        require_mfa: n.require_mfa,
        created_at: now,
        updated_at: now,
    };
    store.insert_client(&client).await?;
    Ok((client, secret))
}

/// Replaces a confidential client's secret; returns the new one, or None when no such client exists.
pub async fn rotate_secret(
    store: &Store,
    id: &str,
    now: i64,
) -> Result<Option<Zeroizing<String>>, ClientError> {
    let secret = Zeroizing::new(random_token(32));
    if store
        .set_client_secret(id, SecretHash::of(&secret), now)
        .await?
    {
        Ok(Some(secret))
    } else {
        Ok(None)
    }
}

pub struct ClientDirectory {
    store: Store,
    ttl: Duration,
    cache: Mutex<HashMap<String, (Arc<Client>, Instant)>>,
}

impl ClientDirectory {
    pub fn new(store: Store, ttl: Duration) -> Self {
        ClientDirectory {
            store,
            ttl,
            cache: Mutex::new(HashMap::new()),
        }
    }

    pub async fn get(&self, id: &str) -> Result<Option<Arc<Client>>, StoreError> {
        if !self.ttl.is_zero() {
            let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((c, at)) = cache.get(id)
                && at.elapsed() < self.ttl
            {
                return Ok(Some(c.clone()));
            }
        }
        let found = self.store.client(id).await?.map(Arc::new);
        if !self.ttl.is_zero() {
            let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            match &found {
                Some(c) => {
                    if cache.len() >= CACHE_MAX {
                        cache.clear();
                    }
                    cache.insert(id.to_string(), (c.clone(), Instant::now()));
                }
                None => {
                    cache.remove(id);
                }
            }
        }
        Ok(found)
    }

    pub fn forget(&self, id: &str) {
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
    }
}
