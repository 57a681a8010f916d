//! custos-verify: validates access tokens issued by Custos (RFC 9068 JWTs) inside a resource server,
//! offline: no call to the issuer per request.
//!
//! A [`Verifier`] is configured with the issuer URL and the audience this API answers to. It reads the
//! issuer's discovery document for the `jwks_uri`, fetches the JWKS and keeps it as long as the
//! response's `Cache-Control` allows. A token whose `kid` it does not know makes it fetch again, at
//! most once per [`Builder::min_refetch_interval`], and a burst of such tokens waits for one shared
//! fetch rather than starting one each (so a key rotation costs one request, and a flood of forged
//! `kid`s costs nothing).
//!
//! Checks, all of which must pass: header `typ` `at+jwt` (RFC 9068 §4); `alg` in the allow-list
//! (`none` and HMAC cannot be named) and equal to what the key with that `kid` is for (an EC key only
//! verifies ES256, and so on); the signature; `iss` equal to the issuer; the audience in `aud`; `exp`
//! and `nbf` (and `iat` not in the future) with a small leeway; the claims RFC 9068 requires present.
//!
//! With the `axum` feature (default), [`axum::BearerLayer`] puts the [`Claims`] of a valid bearer
//! token into the request for handlers, and answers 401/403 with RFC 6750 `WWW-Authenticate`.

mod claims;
mod fetch;
mod keys;

#[cfg(feature = "axum")]
pub mod axum;

use std::sync::{Arc, RwLock};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};
use url::Url;

pub use claims::Claims;
pub use fetch::{FetchError, cache_lifetime};
pub use keys::{Algorithm, BadJwks, KeySet};

/// Larger than any access token Custos issues by far; bigger input is refused before decoding.
const MAX_TOKEN_LEN: usize = 16 * 1024;

/// Why a token was refused. `Display` is fit for `error_description` (plain ASCII, no quotes).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("the access token is malformed")]
    Malformed,
    #[error("the token is not an access token (typ must be at+jwt)")]
    WrongType,
    #[error("the access token algorithm is not accepted")]
    Algorithm,
    #[error("the access token was not signed by a key of the issuer")]
    UnknownKey,
    #[error("the access token signature is invalid")]
    Signature,
    #[error("the access token was issued by another issuer")]
    Issuer,
    #[error("the access token is not meant for this resource")]
    Audience,
    #[error("the access token has expired")]
    Expired,
    #[error("the access token is not valid yet")]
    NotYetValid,
    #[error("the access token lacks the {0} claim")]
    MissingClaim(&'static str),
    /// No keys could be had from the issuer: the token may be fine, but nobody can tell.
    #[error("the issuer's keys are unavailable")]
    Unavailable,
}

/// Seconds since the Unix epoch; replaceable for tests.
pub type ClockFn = dyn Fn() -> i64 + Send + Sync;

fn system_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Configures a [`Verifier`].
pub struct Builder {
    issuer: String,
    audience: String,
    algorithms: Vec<Algorithm>,
    leeway: i64,
    min_refetch_interval: i64,
    default_ttl: u64,
    max_ttl: u64,
    jwks_uri: Option<Url>,
    http: Option<reqwest::Client>,
    clock: Arc<ClockFn>,
}

impl Builder {
    /// Which algorithms to accept (default: ES256, EdDSA, RS256). An empty list accepts nothing.
    pub fn algorithms(mut self, algs: impl IntoIterator<Item = Algorithm>) -> Self {
        self.algorithms = algs.into_iter().collect();
        self
    }

    /// Clock skew tolerated on `exp`, `nbf` and `iat`, seconds (default 30).
    pub fn leeway(mut self, secs: u32) -> Self {
        self.leeway = i64::from(secs);
        self
    }

    /// The least time between two fetches made because of an unknown `kid` or a failure (default 10 s).
    pub fn min_refetch_interval(mut self, secs: u32) -> Self {
        self.min_refetch_interval = i64::from(secs);
        self
    }

    /// How long to keep a JWKS whose response names no lifetime (default 300 s), and the most any
    /// response may ask for (default one day).
    pub fn cache_ttl(mut self, default_secs: u64, max_secs: u64) -> Self {
        self.default_ttl = default_secs;
        self.max_ttl = max_secs;
        self
    }

    /// Fetch the keys from here instead of the discovery document's `jwks_uri`.
    pub fn jwks_uri(mut self, url: Url) -> Self {
        self.jwks_uri = Some(url);
        self
    }

    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.http = Some(client);
        self
    }

    /// The time source (default: the system clock), seconds since the Unix epoch.
    pub fn clock(mut self, now: impl Fn() -> i64 + Send + Sync + 'static) -> Self {
        self.clock = Arc::new(now);
        self
    }

    fn into_verifier(self, cached: Cached, fetching: bool) -> Verifier {
        Verifier {
            inner: Arc::new(Inner {
                http: self.http.clone().unwrap_or_else(|| {
                    // Every request with an unknown kid waits for a fetch: bound how long.
                    reqwest::Client::builder()
                        .timeout(std::time::Duration::from_secs(10))
                        .build()
                        .unwrap_or_default()
                }),
                fetch: tokio::sync::Mutex::new(FetchState {
                    jwks_uri: self.jwks_uri.clone(),
                    last_attempt: None,
                }),
                keys: RwLock::new(Arc::new(cached)),
                fetching,
                cfg: self,
            }),
        }
    }

    /// Discovers the issuer and fetches its keys now; an error when either fails.
    pub async fn build(self) -> Result<Verifier, FetchError> {
        let v = self.into_verifier(Cached::empty(), true);
        {
            let mut st = v.inner.fetch.lock().await;
            let now = (v.inner.cfg.clock)();
            st.last_attempt = Some(now);
            let (set, ttl) = v.inner.fetch_keys(&mut st).await?;
            v.inner.store(set, ttl, now, 0);
        }
        Ok(v)
    }

    /// A verifier that fetches on first use (the issuer may be down when the API starts).
    pub fn build_lazy(self) -> Verifier {
        self.into_verifier(Cached::empty(), true)
    }

    /// A verifier over fixed keys that never fetches (tests, benchmarks, air-gapped setups).
    pub fn build_with_keys(self, keys: KeySet) -> Verifier {
        let cached = Cached {
            set: keys,
            expires_at: i64::MAX,
            generation: 1,
        };
        self.into_verifier(cached, false)
    }
}

struct Cached {
    set: KeySet,
    /// Unix seconds after which the keys are refetched before use.
    expires_at: i64,
    /// Bumped by every successful fetch, so waiters can tell whether one happened while they waited.
    generation: u64,
}

impl Cached {
    fn empty() -> Cached {
        Cached {
            set: KeySet::default(),
            expires_at: i64::MIN,
            generation: 0,
        }
    }
}

struct FetchState {
    jwks_uri: Option<Url>,
    last_attempt: Option<i64>,
}

struct Inner {
    cfg: Builder,
    http: reqwest::Client,
    keys: RwLock<Arc<Cached>>,
    /// Held by the one task fetching; the others wait here and then use its result.
    fetch: tokio::sync::Mutex<FetchState>,
    fetching: bool,
}

/// Verifies access tokens of one issuer for one audience. Cheap to clone; share one per process.
#[derive(Clone)]
pub struct Verifier {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("issuer", &self.inner.cfg.issuer)
            .field("audience", &self.inner.cfg.audience)
            .finish_non_exhaustive()
    }
}

/// A token split and its header checked, before any key is looked up.
struct Parsed<'a> {
    alg: Algorithm,
    kid: String,
    signing_input: &'a [u8],
    signature: Vec<u8>,
    payload: &'a str,
}

impl Verifier {
    /// `issuer` exactly as in the tokens' `iss` (e.g. `https://id.example.com`); `audience` the value
    /// this API expects in `aud` (its resource indicator).
    pub fn builder(issuer: impl Into<String>, audience: impl Into<String>) -> Builder {
        Builder {
            issuer: issuer.into().trim_end_matches('/').to_string(),
            audience: audience.into(),
            algorithms: Algorithm::ALL.to_vec(),
            leeway: 30,
            min_refetch_interval: 10,
            default_ttl: 300,
            max_ttl: 86_400,
            jwks_uri: None,
            http: None,
            clock: Arc::new(system_now),
        }
    }

    pub fn issuer(&self) -> &str {
        &self.inner.cfg.issuer
    }

    pub fn audience(&self) -> &str {
        &self.inner.cfg.audience
    }

    /// Verifies `token`, fetching the keys first when the cached ones are stale or do not include its
    /// `kid` (within the refetch limits).
    pub async fn verify(&self, token: &str) -> Result<Claims, VerifyError> {
        let parsed = self.parse(token)?;
        let inner = &self.inner;
        let mut keys = inner.current();
        if inner.fetching && keys.expires_at <= (inner.cfg.clock)() {
            keys = inner.refresh(keys.generation).await;
        }
        if inner.fetching && !keys.set.contains(&parsed.kid) {
            keys = inner.refresh(keys.generation).await;
        }
        if keys.generation == 0 {
            return Err(VerifyError::Unavailable);
        }
        self.check(&parsed, &keys.set)
    }

    /// Verifies `token` against the keys already held, without fetching.
    pub fn verify_offline(&self, token: &str) -> Result<Claims, VerifyError> {
        let parsed = self.parse(token)?;
        self.check(&parsed, &self.inner.current().set)
    }

    /// Whether the keys held now include `kid` (no fetch).
    pub fn knows_kid(&self, kid: &str) -> bool {
        self.inner.current().set.contains(kid)
    }

    fn parse<'a>(&self, token: &'a str) -> Result<Parsed<'a>, VerifyError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(VerifyError::Malformed);
        }
        let mut parts = token.split('.');
        let (Some(h64), Some(p64), Some(s64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(VerifyError::Malformed);
        };
        let header = decode_object(h64)?;
        let typ = header.get("typ").and_then(Value::as_str).unwrap_or("");
        // RFC 9068 §4: `at+jwt`, or the full media type; media types compare case-insensitively.
        if !(typ.eq_ignore_ascii_case("at+jwt") || typ.eq_ignore_ascii_case("application/at+jwt")) {
            return Err(VerifyError::WrongType);
        }
        // No critical extension is understood here, so none may be required (RFC 7515 §4.1.11).
        if header.contains_key("crit") {
            return Err(VerifyError::Malformed);
        }
        let alg = header
            .get("alg")
            .and_then(Value::as_str)
            .and_then(Algorithm::parse)
            .filter(|a| self.inner.cfg.algorithms.contains(a))
            .ok_or(VerifyError::Algorithm)?;
        let kid = header
            .get("kid")
            .and_then(Value::as_str)
            .ok_or(VerifyError::UnknownKey)?
            .to_string();
        let signature = URL_SAFE_NO_PAD
            .decode(s64)
            .map_err(|_| VerifyError::Malformed)?;
        Ok(Parsed {
            alg,
            kid,
            signing_input: &token.as_bytes()[..h64.len() + 1 + p64.len()],
            signature,
            payload: p64,
        })
    }

    fn check(&self, t: &Parsed<'_>, keys: &KeySet) -> Result<Claims, VerifyError> {
        let key = keys.get(&t.kid).ok_or(VerifyError::UnknownKey)?;
        // The key decides the algorithm: a token cannot have an EC key checked as anything but ES256.
        if key.alg != t.alg {
            return Err(VerifyError::Algorithm);
        }
        key.public
            .verify_sig(t.signing_input, &t.signature)
            .map_err(|_| VerifyError::Signature)?;
        let claims = Claims::from_payload(decode_object(t.payload)?, &t.kid)?;
        let cfg = &self.inner.cfg;
        if claims.iss != cfg.issuer {
            return Err(VerifyError::Issuer);
        }
        if !claims.aud.contains(&cfg.audience) {
            return Err(VerifyError::Audience);
        }
        let now = (cfg.clock)();
        if now >= claims.exp.saturating_add(cfg.leeway) {
            return Err(VerifyError::Expired);
        }
        if claims.nbf.unwrap_or(i64::MIN) > now.saturating_add(cfg.leeway)
            || claims.iat > now.saturating_add(cfg.leeway)
        {
            return Err(VerifyError::NotYetValid);
        }
        Ok(claims)
    }
}

fn decode_object(part: &str) -> Result<Map<String, Value>, VerifyError> {
    let raw = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| VerifyError::Malformed)?;
    match serde_json::from_slice::<Value>(&raw) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(VerifyError::Malformed),
    }
}

impl Inner {
    fn current(&self) -> Arc<Cached> {
        match self.keys.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    fn store(&self, set: KeySet, ttl: u64, now: i64, previous: u64) -> Arc<Cached> {
        let ttl = i64::try_from(ttl.min(self.cfg.max_ttl)).unwrap_or(i64::MAX);
        let cached = Arc::new(Cached {
            set,
            expires_at: now.saturating_add(ttl),
            generation: previous + 1,
        });
        match self.keys.write() {
            Ok(mut g) => *g = cached.clone(),
            Err(p) => *p.into_inner() = cached.clone(),
        }
        cached
    }

    async fn fetch_keys(&self, st: &mut FetchState) -> Result<(KeySet, u64), FetchError> {
        let url = match &st.jwks_uri {
            Some(u) => u.clone(),
            None => {
                let u = fetch::discover(&self.http, &self.cfg.issuer).await?;
                st.jwks_uri = Some(u.clone());
                u
            }
        };
        fetch::jwks(&self.http, &url, self.cfg.default_ttl).await
    }

    /// Fetches the keys unless another task did since `seen` was current, or the last attempt was
    /// less than the minimum interval ago; returns the keys to use either way.
    async fn refresh(&self, seen: u64) -> Arc<Cached> {
        let mut st = self.fetch.lock().await;
        let current = self.current();
        if current.generation != seen {
            return current;
        }
        let now = (self.cfg.clock)();
        if st
            .last_attempt
            .is_some_and(|t| now < t.saturating_add(self.cfg.min_refetch_interval))
        {
            return current;
        }
        st.last_attempt = Some(now);
        match self.fetch_keys(&mut st).await {
            Ok((set, ttl)) => self.store(set, ttl, now, current.generation),
            Err(e) => {
                // Stale keys beat none: the issuer may be briefly away. A revoked key leaves with the
                // next successful fetch.
                tracing::warn!(error = %e, "custos-verify: fetching the issuer's keys failed");
                current
            }
        }
    }
}

#[cfg(test)]
mod tests;
