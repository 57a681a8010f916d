//! `/account/security`: the person's second factors. TOTP enrolment (a fresh 160-bit secret shown as
//! an inline QR code and as text, active only once a code from it is entered), turning it off (needs
//! a fresh TOTP or recovery code), and recovery codes (how many are left; new ones, shown once).
//!
//! The secret being set up waits sealed in the ephemeral store for ten minutes; only activation
//! writes it, sealed, to SQL.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use zeroize::Zeroizing;

use super::account::{self, Account, private};
use super::authorize::{see_other, unavailable_page};
use super::paths;
use crate::app::AppState;
use crate::mfa::{self, Check, recovery, totp::TotpSecret};
use crate::views::mfa::{RecoveryCodesPage, SecurityPage, TotpSetupPage};

const SETUP_TTL_SECS: u64 = 600;
const NAV: &str = "security";

fn setup_key(user_id: &str) -> String {
    format!("totp-setup:{user_id}")
}

pub(super) async fn page(
    s: &AppState,
    a: &Account,
    status: StatusCode,
    error: Option<&'static str>,
    notice: Option<&'static str>,
) -> Response {
    let (enrolment, left) = match (
        s.store.totp_enrolment(&a.user.id).await,
        s.store.recovery_codes_left(&a.user.id).await,
    ) {
        (Ok(e), Ok(l)) => (e, l),
        _ => return unavailable_page(),
    };
    let since = enrolment
        .as_ref()
        .and_then(|e| chrono::DateTime::from_timestamp(e.created_at, 0))
        .map(|d| d.format("%Y-%m-%d").to_string())
        .unwrap_or_default();
    let mut r = private(SecurityPage {
        nav: NAV,
        email: a.user.email.clone(),
        csrf: a.csrf.clone(),
        totp_enabled: enrolment.is_some(),
        totp_since: since,
        recovery_left: left,
        email_otp: s.settings.raw.mfa_email_otp,
        passkeys: match super::passkey::rows(s, &a.user.id).await {
            Ok(rows) => rows,
            Err(_) => return unavailable_page(),
        },
        passwordless: s.settings.raw.passkey_passwordless,
        error,
        notice,
    });
    *r.status_mut() = status;
    r
}

pub async fn get(State(s): State<AppState>, headers: HeaderMap) -> Response {
    match account::require(&s, &headers, paths::ACCOUNT_SECURITY).await {
        Ok(a) => page(&s, &a, StatusCode::OK, None, None).await,
        Err(r) => r,
    }
}

fn setup_page(
    s: &AppState,
    a: &Account,
    secret: &TotpSecret,
    error: Option<&'static str>,
) -> Response {
    let host = s.settings.issuer.host_str().unwrap_or("Custos").to_string();
    let uri = Zeroizing::new(secret.otpauth_uri(&host, &a.user.email));
    let b32 = secret.base32();
    let grouped: String = b32
        .as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join(" ");
    let mut r = private(TotpSetupPage {
        nav: NAV,
        csrf: a.csrf.clone(),
        qr_svg: mfa::totp::qr_svg(&uri),
        secret: Zeroizing::new(grouped),
        uri,
        error,
    });
    if error.is_some() {
        *r.status_mut() = StatusCode::BAD_REQUEST;
    }
    r
}

/// `POST /account/security/totp/setup`: a new secret, parked until a code confirms it.
pub async fn setup(State(s): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let (a, _) = match account::require_form(&s, &headers, &body, paths::ACCOUNT_SECURITY).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    match mfa::has_totp(&s, &a.user.id).await {
        Ok(false) => {}
        Ok(true) => {
            return page(
                &s,
                &a,
                StatusCode::CONFLICT,
                Some("An authenticator app is already set up. Turn it off first to replace it."),
                None,
            )
            .await;
        }
        Err(_) => return unavailable_page(),
    }
    let Ok(secret) = TotpSecret::generate() else {
        return unavailable_page();
    };
    let Ok(sealed) = secret.seal(&s.kek, &a.user.id) else {
        return unavailable_page();
    };
    if s.ephemeral
        .put(
            &setup_key(&a.user.id),
            sealed.as_bytes(),
            Duration::from_secs(SETUP_TTL_SECS),
        )
        .await
        .is_err()
    {
        return unavailable_page();
    }
    setup_page(&s, &a, &secret, None)
}

/// `POST /account/security/totp/confirm`: a code from the new secret turns TOTP on and makes the
/// recovery codes, shown once.
pub async fn confirm(State(s): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let (a, p) = match account::require_form(&s, &headers, &body, paths::ACCOUNT_SECURITY).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let sealed = match s.ephemeral.get(&setup_key(&a.user.id)).await {
        Ok(Some(v)) => String::from_utf8(v).unwrap_or_default(),
        Ok(None) => {
            return page(
                &s,
                &a,
                StatusCode::BAD_REQUEST,
                Some("The setup took too long. Start again."),
                None,
            )
            .await;
        }
        Err(_) => return unavailable_page(),
    };
    let Ok(secret) = TotpSecret::open(&s.kek, &a.user.id, &sealed) else {
        return unavailable_page();
    };
    let code = Zeroizing::new(account::field(&p, "code"));
    let now = s.clock.now();
    let Some(step) = secret.matching_step(&code, now) else {
        return setup_page(
            &s,
            &a,
            &secret,
            Some("That code does not match. Check the app's clock and try the current code."),
        );
    };
    let Ok(codes) = recovery::generate() else {
        return unavailable_page();
    };
    match s
        .store
        .activate_totp(&a.user.id, &sealed, step, &recovery::hashes(&codes), now)
        .await
    {
        Ok(true) => {}
        Ok(false) => {
            return page(
                &s,
                &a,
                StatusCode::CONFLICT,
                Some("An authenticator app is already set up."),
                None,
            )
            .await;
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot activate TOTP");
            return unavailable_page();
        }
    }
    let _ = s.ephemeral.delete(&setup_key(&a.user.id)).await;
    crate::audit::record(
        &s.store,
        now,
        crate::audit::Event::new("mfa_totp_enabled").subject(&a.user.id),
    )
    .await;
    private(RecoveryCodesPage {
        nav: NAV,
        codes,
        first_time: true,
    })
}

/// Checks the code a sensitive change needs; `Err` is the page to show instead.
async fn fresh_code(
    s: &AppState,
    a: &Account,
    p: &crate::oauth::grants::Params,
) -> Result<mfa::Factor, Response> {
    let code = Zeroizing::new(account::field(p, "code"));
    match mfa::check_code(s, &a.user.id, &code, None).await {
        Ok(Check::Ok(f)) => Ok(f),
        Ok(Check::Refused) => Err(page(
            s,
            a,
            StatusCode::UNAUTHORIZED,
            Some("That code is not right, or was already used."),
            None,
        )
        .await),
        Ok(Check::Locked) => Err(page(
            s,
            a,
            StatusCode::TOO_MANY_REQUESTS,
            Some("Too many wrong codes. Wait a few minutes and try again."),
            None,
        )
        .await),
        Err(e) => {
            tracing::error!(error = %e, "second factor: backend unavailable");
            Err(unavailable_page())
        }
    }
}

/// `POST /account/security/totp/disable`: needs a fresh TOTP or recovery code.
pub async fn disable(State(s): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let (a, p) = match account::require_form(&s, &headers, &body, paths::ACCOUNT_SECURITY).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let factor = match fresh_code(&s, &a, &p).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    if s.store.remove_mfa(&a.user.id).await.is_err() {
        return unavailable_page();
    }
    crate::audit::record(
        &s.store,
        s.clock.now(),
        crate::audit::Event::new("mfa_totp_disabled")
            .subject(&a.user.id)
            .details(json!({"confirmed_with": factor.as_str()})),
    )
    .await;
    page(
        &s,
        &a,
        StatusCode::OK,
        None,
        Some("Two-step verification is off, and your recovery codes no longer work."),
    )
    .await
}

/// `POST /account/security/recovery-codes`: ten new codes (the old ones stop working), shown once.
pub async fn regenerate(State(s): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let (a, p) = match account::require_form(&s, &headers, &body, paths::ACCOUNT_SECURITY).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    match mfa::has_totp(&s, &a.user.id).await {
        Ok(true) => {}
        Ok(false) => return see_other(paths::ACCOUNT_SECURITY),
        Err(_) => return unavailable_page(),
    }
    if let Err(r) = fresh_code(&s, &a, &p).await {
        return r;
    }
    let Ok(codes) = recovery::generate() else {
        return unavailable_page();
    };
    let now = s.clock.now();
    if s.store
        .replace_recovery_codes(&a.user.id, &recovery::hashes(&codes), now)
        .await
        .is_err()
    {
        return unavailable_page();
    }
    crate::audit::record(
        &s.store,
        now,
        crate::audit::Event::new("mfa_recovery_codes_regenerated").subject(&a.user.id),
    )
    .await;
    private(RecoveryCodesPage {
        nav: NAV,
        codes,
        first_time: false,
    })
    .into_response()
}
