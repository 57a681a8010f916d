//! Password sign-in. An unknown email, a wrong password and a disabled account look the same from
//! outside: the same message and status, and the same argon2 work (an unknown email is checked against
//! a dummy hash made with the configured parameters). Only the audit log says which it was.

use serde_json::json;
use zeroize::Zeroizing;

use super::normalize_email;
use super::password::{self, HashParams};
use crate::app::AppState;
use crate::audit::{self, Event};
use crate::store::{StoreError, User};

pub async fn dummy_hash(state: &AppState) -> String {
    let params = HashParams::from_config(&state.settings.raw);
    state
        .dummy_hash
        .get_or_init(|| async move {
            let pw = Zeroizing::new(crate::clients::random_token(24));
            password::hash(pw, params).await.unwrap_or_default()
        })
        .await
        .clone()
}

/// Checks an email and password; `Ok(None)` is the one generic failure.
pub async fn password_login(
    state: &AppState,
    email: &str,
    pw: Zeroizing<String>,
    ip: Option<String>,
) -> Result<Option<User>, StoreError> {
    let user = match normalize_email(email) {
        Ok(e) => state.store.user_by_email(&e).await?,
        Err(_) => None,
    };
    let stored = match user.as_ref().and_then(|u| u.password_hash.clone()) {
        Some(h) => h,
        None => dummy_hash(state).await,
    };
    let pw2 = pw.clone();
    let ok = {
        let _slot = state.password_slots.acquire().await;
        tokio::task::spawn_blocking(move || password::verify_blocking(&pw2, &stored))
            .await
            .unwrap_or(false)
    };
    let now = state.clock.now();
    let ev = |kind: &'static str| {
        let mut e = Event::new(kind);
        if let Some(ip) = &ip {
            e = e.ip(ip.clone());
        }
        e
    };
    match user {
        Some(u) if ok && !u.disabled => {
            let params = HashParams::from_config(&state.settings.raw);
            if u.password_hash
                .as_deref()
                .is_some_and(|h| password::needs_rehash(h, params))
            {
                let rehashed = {
                    let _slot = state.password_slots.acquire().await;
                    password::hash(pw, params).await
                };
                if let Ok(h) = rehashed {
                    state.store.set_password_hash(&u.id, &h, now).await?;
                }
            }
            audit::record(
                &state.store,
                now,
                ev("login_succeeded")
                    .subject(&u.id)
                    .details(json!({"amr": ["pwd"]})),
            )
            .await;
            Ok(Some(u))
        }
        Some(u) => {
            let reason = if ok {
                "account_disabled"
            } else {
                "wrong_password"
            };
            audit::record(
                &state.store,
                now,
                ev("login_failed")
                    .subject(&u.id)
                    .details(json!({"reason": reason})),
            )
            .await;
            Ok(None)
        }
        None => {
            audit::record(
                &state.store,
                now,
                ev("login_failed").details(json!({"reason": "unknown_email"})),
            )
            .await;
            Ok(None)
        }
    }
}
