//! Liveness (the process answers) and readiness (its database and ephemeral store answer).

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::app::AppState;

pub async fn live() -> Response {
    Json(json!({"status": "ok"})).into_response()
}

pub async fn ready(State(s): State<AppState>) -> Response {
    let limit = Duration::from_secs(2);
    let db = match tokio::time::timeout(limit, s.store.ping()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("timed out".to_string()),
    };
    let eph = match tokio::time::timeout(limit, s.ephemeral.ping()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("timed out".to_string()),
    };
    let word = |r: &Result<(), String>| if r.is_ok() { "ok" } else { "unavailable" };
    let body = json!({
        "status": if db.is_ok() && eph.is_ok() { "ok" } else { "unavailable" },
        "checks": {"database": word(&db), "ephemeral_store": word(&eph)},
    });
    if let Err(e) = &db {
        tracing::warn!(error = %e, "readiness: database unavailable");
    }
    if let Err(e) = &eph {
        tracing::warn!(error = %e, "readiness: ephemeral store unavailable");
    }
    let status = if db.is_ok() && eph.is_ok() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}
