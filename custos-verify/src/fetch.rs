//! Fetching the issuer's metadata and JWKS, and how long the server says a JWKS may be kept.

use http::HeaderMap;
use http::header::{AGE, CACHE_CONTROL};
use serde_json::Value;
use url::Url;

use crate::keys::KeySet;

/// Why the keys could not be fetched (the verifier keeps what it had).
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("GET {url}: {source}")]
    Http {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("GET {url}: status {status}")]
    Status { url: String, status: u16 },
    #[error("discovery document of {issuer}: {problem}")]
    Discovery { issuer: String, problem: String },
    #[error("GET {url}: {source}")]
    Jwks {
        url: String,
        #[source]
        source: crate::keys::BadJwks,
    },
}

async fn get(http: &reqwest::Client, url: &Url) -> Result<reqwest::Response, FetchError> {
    let r = http
        .get(url.clone())
        .header(http::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|source| FetchError::Http {
            url: url.to_string(),
            source,
        })?;
    if !r.status().is_success() {
        return Err(FetchError::Status {
            url: url.to_string(),
            status: r.status().as_u16(),
        });
    }
    Ok(r)
}

/// The `jwks_uri` of `issuer` from its OpenID Connect discovery document, after checking that the
/// document speaks for that issuer (OpenID Connect Discovery §4.3).
pub(crate) async fn discover(http: &reqwest::Client, issuer: &str) -> Result<Url, FetchError> {
    let bad = |problem: String| FetchError::Discovery {
        issuer: issuer.to_string(),
        problem,
    };
    let url = Url::parse(&format!("{issuer}/.well-known/openid-configuration"))
        .map_err(|e| bad(format!("not a URL: {e}")))?;
    let r = get(http, &url).await?;
    let doc: Value = r.json().await.map_err(|source| FetchError::Http {
        url: url.to_string(),
        source,
    })?;
    let said = doc.get("issuer").and_then(Value::as_str).unwrap_or("");
    if said.trim_end_matches('/') != issuer {
        return Err(bad(format!("it names issuer `{said}`")));
    }
    let jwks = doc
        .get("jwks_uri")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("no jwks_uri".into()))?;
    Url::parse(jwks).map_err(|e| bad(format!("jwks_uri: {e}")))
}

/// The keys at `url`, and for how many seconds the server allows them to be reused.
pub(crate) async fn jwks(
    http: &reqwest::Client,
    url: &Url,
    default_ttl: u64,
) -> Result<(KeySet, u64), FetchError> {
    let r = get(http, url).await?;
    let ttl = cache_lifetime(r.headers(), default_ttl);
    let body = r.bytes().await.map_err(|source| FetchError::Http {
        url: url.to_string(),
        source,
    })?;
    let set = KeySet::from_jwks(&body).map_err(|source| FetchError::Jwks {
        url: url.to_string(),
        source,
    })?;
    Ok((set, ttl))
}

/// Freshness lifetime of a response (RFC 9111 §4.2.1 and §4.2.3): `max-age` less `Age`; `no-store`
/// or `no-cache` mean none; without a directive, `default_ttl`.
pub fn cache_lifetime(headers: &HeaderMap, default_ttl: u64) -> u64 {
    let mut max_age = None;
    for v in headers.get_all(CACHE_CONTROL) {
        let Ok(v) = v.to_str() else { continue };
        for d in v.split(',') {
            let d = d.trim().to_ascii_lowercase();
            if d == "no-store" || d == "no-cache" {
                return 0;
            }
            if let Some(n) = d.strip_prefix("max-age=") {
                // A malformed max-age is treated as stale (RFC 9111 §4.2.1).
                max_age = Some(n.trim_matches('"').parse::<u64>().unwrap_or(0));
            }
        }
    }
    let age = headers
        .get(AGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(0);
    max_age.unwrap_or(default_ttl).saturating_sub(age)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn lifetimes() {
        assert_eq!(
            cache_lifetime(&headers(&[("cache-control", "public, max-age=300")]), 60),
            300
        );
        assert_eq!(
            cache_lifetime(
                &headers(&[("cache-control", "max-age=300"), ("age", "100")]),
                60
            ),
            200
        );
        assert_eq!(
            cache_lifetime(
                &headers(&[("cache-control", "max-age=300"), ("age", "900")]),
                60
            ),
            0
        );
        assert_eq!(
            cache_lifetime(&headers(&[("cache-control", "no-store")]), 60),
            0
        );
        assert_eq!(
            cache_lifetime(&headers(&[("cache-control", "max-age=abc")]), 60),
            0
        );
        assert_eq!(cache_lifetime(&headers(&[]), 60), 60);
    }
}
