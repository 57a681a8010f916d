//! `GET|POST /consent`: the person approves or denies the scopes a client asks for.

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};

use super::authorize::{
    ReqQuery, expired_page, proceed, redirect_error, see_other, unavailable_page,
};
use super::login::pending_form;
use super::paths;
use crate::app::AppState;
use crate::oauth::error::{ErrorCode, OAuthError};
use crate::session;
use crate::views::{ConsentPage, describe_scope};

pub async fn get(
    State(s): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<ReqQuery>,
) -> Response {
    let pending = match session::load_pending(&s, &headers, &q.req).await {
        Ok(Some(p)) => p,
        Ok(None) => return expired_page(),
        Err(_) => return unavailable_page(),
    };
    let Ok(Some((_, sess))) = session::current(&s, &headers).await else {
        return see_other(&format!("{}?req={}", paths::AUTHORIZE_RESUME, q.req));
    };
    let (client, user) = match (
        s.clients.get(&pending.request.client_id).await,
        s.store.user(&sess.user_id).await,
    ) {
        (Ok(Some(c)), Ok(Some(u))) => (c, u),
        _ => return unavailable_page(),
    };
    let redirect_uri = pending.request.redirect_uri.clone();
    let mut r = ConsentPage {
        client_name: client.name.clone(),
        user_email: user.email,
        scopes: pending
            .request
            .scopes
            .iter()
            .map(|s| describe_scope(s))
            .collect(),
        req: q.req,
        csrf: pending.csrf,
    }
    .into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        super::csp_with_form_target(Some(&redirect_uri)),
    );
    r
}

pub async fn post(State(s): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let (p, req, mut pending) = match pending_form(&s, &headers, &body).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let field = |n: &str| p.one(n).ok().flatten().unwrap_or_default().to_string();
    let Ok(Some((_, sess))) = session::current(&s, &headers).await else {
        return see_other(&format!("{}?req={req}", paths::AUTHORIZE_RESUME));
    };
    let r = &pending.request;
    match field("decision").as_str() {
        "approve" => {
            let now = s.clock.now();
            if s.store
                .grant_consent(&sess.user_id, &r.client_id, &r.scopes, now)
                .await
                .is_err()
            {
                return unavailable_page();
            }
            crate::audit::record(
                &s.store,
                now,
                crate::audit::Event::new("consent_granted")
                    .subject(&sess.user_id)
                    .client(&r.client_id)
                    .details(serde_json::json!({"scopes": r.scopes})),
            )
            .await;
            pending.consent_done = true;
            if session::save_pending(&s, &req, &pending).await.is_err() {
                return unavailable_page();
            }
            proceed(&s, &headers, &req, pending).await
        }
        _ => {
            let _ = s.ephemeral.delete(&session::pending_key(&req)).await;
            redirect_error(
                &s,
                &r.redirect_uri,
                r.state.as_deref(),
                &OAuthError::new(ErrorCode::AccessDenied, "the person denied the request"),
            )
        }
    }
}
