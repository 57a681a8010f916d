//! A resource API protected by Custos access tokens, validated offline with custos-verify.
//!
//! ```sh
//! CUSTOS_ISSUER=http://127.0.0.1:8080 API_AUDIENCE=https://api.example.com \
//!     cargo run -p custos-verify --example resource_api
//! # a client allowed scope items:read / items:write and resource https://api.example.com:
//! TOKEN=$(curl -s -u "$ID:$SECRET" -d grant_type=client_credentials -d scope=items:read \
//!     -d resource=https://api.example.com http://127.0.0.1:8080/token | jq -r .access_token)
//! curl -H "Authorization: Bearer $TOKEN" http://127.0.0.1:3000/items         # 200
//! curl -X POST -H "Authorization: Bearer $TOKEN" http://127.0.0.1:3000/items # 403 insufficient_scope
//! ```
//!
//! `GET /health` needs no token; `GET /items` needs `items:read`; `POST /items` needs `items:write`;
//! `GET /me` shows the verified claims.

use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::handler::Handler;
use axum::routing::get;
use axum::{Json, Router};
use custos_verify::Claims;
use custos_verify::Verifier;
use custos_verify::axum::{BearerLayer, require_scope};
use serde_json::{Value, json};

#[derive(Clone, Default)]
struct Items(Arc<Mutex<Vec<Value>>>);

async fn list(State(items): State<Items>) -> Json<Value> {
    let list = items.0.lock().map(|l| l.clone()).unwrap_or_default();
    Json(json!({ "items": list }))
}

async fn create(State(items): State<Items>, claims: Claims) -> Json<Value> {
    let item =
        json!({ "id": uuid_like(), "created_by": claims.sub, "client_id": claims.client_id });
    if let Ok(mut l) = items.0.lock() {
        l.push(item.clone());
    }
    Json(item)
}

async fn me(claims: Claims) -> Json<Value> {
    Json(json!({
        "sub": claims.sub,
        "client_id": claims.client_id,
        "scopes": claims.scopes,
        "roles": claims.roles,
        "permissions": claims.permissions,
        "expires_at": claims.exp,
        "kid": claims.kid,
    }))
}

fn uuid_like() -> String {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{n:x}")
}

/// The API's routes behind the verifier (the integration tests serve this same router).
pub fn router(verifier: Verifier) -> Router {
    let items = Items::default();
    Router::new()
        .route(
            "/items",
            get(list.layer(require_scope("items:read")))
                .post(create.layer(require_scope("items:write"))),
        )
        .route("/me", get(me))
        .layer(BearerLayer::new(verifier))
        .route("/health", get(|| async { "ok" }))
        .with_state(items)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let issuer = std::env::var("CUSTOS_ISSUER").unwrap_or_else(|_| "http://127.0.0.1:8080".into());
    let audience =
        std::env::var("API_AUDIENCE").unwrap_or_else(|_| "https://api.example.com".into());
    let listen = std::env::var("API_LISTEN").unwrap_or_else(|_| "127.0.0.1:3000".into());
    let verifier = Verifier::builder(&issuer, &audience).build().await?;
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    eprintln!("resource API on http://{listen}: tokens of {issuer} for {audience}");
    axum::serve(listener, router(verifier)).await?;
    Ok(())
}
