//! axum/tower integration: a layer that requires a valid bearer token and hands its [`Claims`] to
//! handlers, scope checks, and RFC 6750 error responses.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use axum::{Router, routing::get};
//! use custos_verify::{Claims, Verifier, axum::{BearerLayer, require_scope}};
//!
//! let verifier = Verifier::builder("https://id.example.com", "https://api.example.com")
//!     .build()
//!     .await?;
//! let app: Router = Router::new()
//!     .route("/items", get(|c: Claims| async move { format!("hello {}", c.sub) }))
//!     .route_layer(require_scope("items:read"))
//!     .layer(BearerLayer::new(verifier));
//! # Ok(()) }
//! ```

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tower_layer::Layer;
use tower_service::Service;

use crate::{Claims, Verifier, VerifyError};

/// A refusal, rendered as RFC 6750 §3 says: 401 with a `Bearer` challenge, 403 for a missing scope,
/// 400 for a malformed request; 503 when the issuer's keys cannot be had.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthError {
    /// No bearer token in the request: the challenge carries no error code (RFC 6750 §3.1).
    Missing,
    /// More than one token, or an `Authorization: Bearer` header without a usable token.
    BadRequest(&'static str),
    Invalid(VerifyError),
    InsufficientScope(String),
}

impl From<VerifyError> for AuthError {
    fn from(e: VerifyError) -> Self {
        AuthError::Invalid(e)
    }
}

impl std::fmt::Display for AuthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AuthError::Missing => f.write_str("no bearer token"),
            AuthError::BadRequest(d) => f.write_str(d),
            AuthError::Invalid(e) => e.fmt(f),
            AuthError::InsufficientScope(s) => write!(f, "the scope {s} is required"),
        }
    }
}

impl std::error::Error for AuthError {}

impl IntoResponse for AuthError {
    fn into_response(self) -> Response {
        let (status, code, description, scope) = match &self {
            AuthError::Missing => (StatusCode::UNAUTHORIZED, None, None, None),
            AuthError::Invalid(VerifyError::Unavailable) => {
                // Not the token's fault, and nothing a client can fix by changing it.
                return (
                    StatusCode::SERVICE_UNAVAILABLE,
                    [(header::RETRY_AFTER, HeaderValue::from_static("10"))],
                    axum::Json(serde_json::json!({"error": "temporarily_unavailable"})),
                )
                    .into_response();
            }
            AuthError::BadRequest(d) => (
                StatusCode::BAD_REQUEST,
                Some("invalid_request"),
                Some(d.to_string()),
                None,
            ),
            AuthError::Invalid(e) => (
                StatusCode::UNAUTHORIZED,
                Some("invalid_token"),
                Some(e.to_string()),
                None,
            ),
            AuthError::InsufficientScope(s) => (
                StatusCode::FORBIDDEN,
                Some("insufficient_scope"),
                Some(self.to_string()),
                Some(s.clone()),
            ),
        };
        let mut challenge = String::from("Bearer");
        let mut sep = " ";
        for (name, value) in [
            ("error", code.map(str::to_string)),
            ("error_description", description.clone()),
            ("scope", scope),
        ] {
            if let Some(v) = value {
                // Values here are our own ASCII texts and scope tokens: no quote or backslash.
                challenge.push_str(&format!("{sep}{name}=\"{v}\""));
                sep = ", ";
            }
        }
        let www = HeaderValue::from_str(&challenge).unwrap_or(HeaderValue::from_static("Bearer"));
        let body = match code {
            Some(c) => serde_json::json!({"error": c, "error_description": description}),
            None => serde_json::json!({"error": "unauthorized"}),
        };
        (
            status,
            [
                (header::WWW_AUTHENTICATE, www),
                (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            ],
            axum::Json(body),
        )
            .into_response()
    }
}

/// The bearer token of a request (RFC 6750 §2.1; the header only: tokens in URLs leak into logs).
pub fn bearer_token(parts: &axum::http::HeaderMap) -> Result<&str, AuthError> {
    let mut values = parts.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Err(AuthError::Missing);
    };
    if values.next().is_some() {
        return Err(AuthError::BadRequest("more than one Authorization header"));
    }
    let value = value
        .to_str()
        .map_err(|_| AuthError::BadRequest("the Authorization header is not ASCII"))?;
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::Missing);
    }
    let token = token.trim();
    if token.is_empty() || token.contains(' ') {
        return Err(AuthError::BadRequest(
            "the bearer token is missing or malformed",
        ));
    }
    Ok(token)
}

/// Requires a valid access token on every request it wraps; puts its [`Claims`] into the request's
/// extensions (where the `Claims` extractor finds them).
#[derive(Clone, Debug)]
pub struct BearerLayer {
    verifier: Verifier,
}

impl BearerLayer {
    pub fn new(verifier: Verifier) -> Self {
        BearerLayer { verifier }
    }
}

impl<S> Layer<S> for BearerLayer {
    type Service = Bearer<S>;
    fn layer(&self, inner: S) -> Bearer<S> {
        Bearer {
            inner,
            verifier: self.verifier.clone(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Bearer<S> {
    inner: S,
    verifier: Verifier,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S> Service<Request> for Bearer<S>
where
    S: Service<Request, Response = Response> + Clone + Send + 'static,
    S::Future: Send,
{
    type Response = Response;
    type Error = S::Error;
    type Future = BoxFuture<Result<Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request) -> Self::Future {
        // The service poll_ready made ready is the one to call: take it, leave a clone behind.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let verifier = self.verifier.clone();
        Box::pin(async move {
            let token = match bearer_token(req.headers()) {
                Ok(t) => t.to_string(),
                Err(e) => return Ok(e.into_response()),
            };
            match verifier.verify(&token).await {
                Ok(claims) => {
                    req.extensions_mut().insert(claims);
                    inner.call(req).await
                }
                Err(e) => Ok(AuthError::Invalid(e).into_response()),
            }
        })
    }
}

/// A layer that lets through only requests whose token has `scope` (403 `insufficient_scope`
/// otherwise). Goes inside a [`BearerLayer`].
pub fn require_scope(scope: impl Into<String>) -> RequireScopeLayer {
    RequireScopeLayer {
        scope: scope.into(),
    }
}

#[derive(Clone, Debug)]
pub struct RequireScopeLayer {
    scope: String,
}

impl<S> Layer<S> for RequireScopeLayer {
    type Service = RequireScope<S>;
    fn layer(&self, inner: S) -> RequireScope<S> {
        RequireScope {
            inner,
            scope: self.scope.clone(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct RequireScope<S> {
    inner: S,
    scope: String,
}

impl<S> Service<Request> for RequireScope<S>
where
    S: Service<Request, Response = Response> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Send,
{
    type Response = Response;
    type Error = S::Error;
    type Future = BoxFuture<Result<Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let verdict = match req.extensions().get::<Claims>() {
            None => Err(AuthError::Missing),
            Some(c) => c.require_scope(&self.scope),
        };
        match verdict {
            Ok(()) => Box::pin(self.inner.call(req)),
            Err(e) => Box::pin(std::future::ready(Ok(e.into_response()))),
        }
    }
}

impl Claims {
    /// `Ok` when the token has `scope`; otherwise the 403 `insufficient_scope` answer.
    pub fn require_scope(&self, scope: &str) -> Result<(), AuthError> {
        if self.has_scope(scope) {
            Ok(())
        } else {
            Err(AuthError::InsufficientScope(scope.to_string()))
        }
    }
}

/// The claims a [`BearerLayer`] verified. Without the layer in front, the request is refused with
/// 401, never let through.
impl<S: Send + Sync> FromRequestParts<S> for Claims {
    type Rejection = AuthError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        match parts.extensions.get::<Claims>() {
            Some(c) => Ok(c.clone()),
            None => {
                tracing::error!("custos-verify: Claims extracted on a route without BearerLayer");
                Err(AuthError::Missing)
            }
        }
    }
}

/// The claims when a valid token was presented, `None` when there was no token at all; an invalid
/// token is still refused. For routes that serve anonymous callers too (put a [`Verifier`] into the
/// router state or an `Extension`, and call [`optional_claims`]).
pub async fn optional_claims(
    verifier: &Verifier,
    headers: &axum::http::HeaderMap,
) -> Result<Option<Claims>, AuthError> {
    match bearer_token(headers) {
        Err(AuthError::Missing) => Ok(None),
        Err(e) => Err(e),
        Ok(t) => Ok(Some(verifier.verify(t).await?)),
    }
}
