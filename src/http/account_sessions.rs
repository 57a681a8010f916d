//! `GET /account/sessions`, `POST /account/sessions/end`, `POST /account/sessions/end-others`: the
//! person's sessions, with this device marked; ending one (this one too: that signs out here) or all
//! the others. Forms are the account pages' (session-bound CSRF token); a person can only ever end
//! their own sessions, whatever `sid` a form names.

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, header};
use axum::response::Response;
use serde::Deserialize;

use super::account::{Account, field, private, require, require_form};
use super::authorize::{see_other, unavailable_page};
use super::paths;
use crate::app::AppState;
use crate::session;
use crate::sessions::{self, SessionRecord, reason};
use crate::views::sessions::{SessionRow, SessionsPage};

#[derive(Deserialize, Default)]
pub struct Done {
    #[serde(default)]
    done: Option<String>,
}

fn when(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .map(|d| d.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_default()
}

/// The sign-in methods of an `amr` list in words.
fn methods(amr: &[String]) -> String {
    let words: Vec<&str> = amr
        .iter()
        .map(|m| match m.as_str() {
            "pwd" => "password",
            "otp" | "totp" => "authenticator app",
            "mfa" => "second factor",
            "email" => "email code",
            "rc" | "recovery" => "recovery code",
            "hwk" | "swk" => "passkey",
            "user" => "PIN or biometric",
            _ => "other method",
        })
        .collect();
    let mut s = if words.is_empty() {
        "Signed in".to_string()
    } else {
        format!("Signed in with {}", words.join(" and "))
    };
    s.truncate(120);
    s
}

async fn row(s: &AppState, r: &SessionRecord, current_sid: &str) -> SessionRow {
    let mut apps = Vec::new();
    if let Ok(ids) = s.store.session_clients(&r.id).await {
        for id in ids.iter().take(20) {
            match s.clients.get(id).await {
                Ok(Some(c)) => apps.push(c.name.clone()),
                _ => apps.push(id.clone()),
            }
        }
    }
    SessionRow {
        sid: r.id.clone(),
        device: r.device.clone(),
        ip: r.ip.clone(),
        started: when(r.created_at),
        last_seen: when(r.last_seen_at),
        expires: when(r.absolute_expires_at),
        current: r.id == current_sid,
        remember_me: r.remember_me,
        methods: methods(&r.amr),
        apps,
    }
}

async fn page(s: &AppState, a: &Account, notice: Option<&'static str>) -> Response {
    let now = s.clock.now();
    let list = match s.store.sessions_for_user(&a.user.id, now, false).await {
        Ok(l) => l,
        Err(_) => return unavailable_page(),
    };
    let mut rows = Vec::with_capacity(list.len());
    // This device first, then the most recently seen.
    for r in list.iter().filter(|r| r.id == a.session.sid) {
        rows.push(row(s, r, &a.session.sid).await);
    }
    for r in list.iter().filter(|r| r.id != a.session.sid).take(100) {
        rows.push(row(s, r, &a.session.sid).await);
    }
    private(SessionsPage {
        nav: "sessions",
        csrf: a.csrf.clone(),
        notice,
        sessions: rows,
    })
}

pub async fn get(State(s): State<AppState>, headers: HeaderMap, Query(q): Query<Done>) -> Response {
    let a = match require(&s, &headers, paths::ACCOUNT_SESSIONS).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let notice = match q.done.as_deref() {
        Some("one") => Some("The session was ended."),
        Some("others") => Some("All other sessions were ended."),
        _ => None,
    };
    page(&s, &a, notice).await
}

/// `POST /account/sessions/end`: ends the session `sid` if it is one of this person's.
pub async fn end(State(s): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let (a, p) = match require_form(&s, &headers, &body, paths::ACCOUNT_SESSIONS).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let sid = field(&p, "sid");
    // Session ids are 22 characters; anything much longer is nobody's and needs no lookup.
    let target = match sid.len() {
        1..=64 => match s.store.session(&sid).await {
            Ok(t) => t,
            Err(_) => return unavailable_page(),
        },
        _ => None,
    };
    // Another person's session (or none) gets the same answer as an already ended one.
    if let Some(t) = target.filter(|t| t.user_id == a.user.id)
        && sessions::end_session(&s, &t.id, reason::ENDED_BY_USER)
            .await
            .is_err()
    {
        return unavailable_page();
    }
    if sid == a.session.sid {
        // Signed out here: the cookie goes, and the next account page asks to sign in.
        let mut r = see_other(&super::signin::login_url(paths::ACCOUNT_SESSIONS));
        r.headers_mut().append(
            header::SET_COOKIE,
            session::set_cookie(&s, session::SESSION, "", Some(0)),
        );
        return r;
    }
    see_other(&format!("{}?done=one", paths::ACCOUNT_SESSIONS))
}

/// `POST /account/sessions/end-others`: ends every session of this person but this one.
pub async fn end_others(State(s): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let (a, _) = match require_form(&s, &headers, &body, paths::ACCOUNT_SESSIONS).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    match sessions::end_user_sessions(&s, &a.user.id, Some(&a.session.sid), reason::ENDED_OTHERS)
        .await
    {
        Ok(_) => see_other(&format!("{}?done=others", paths::ACCOUNT_SESSIONS)),
        Err(_) => unavailable_page(),
    }
}
