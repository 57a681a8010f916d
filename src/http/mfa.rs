//! `GET|POST /login/mfa`: the second step of a sign-in, and the two ways into it: after the first
//! factor (`after_password`) and from a session that must step up (`step_up`, called by the
//! authorization pipeline). The half-finished login lives in the ephemeral store under the hash of the
//! browser's flow cookie (`mfa::HalfLogin`); when the second factor is done the session is started
//! with a fresh id (rotating any earlier one) and `acr` = `urn:custos:acr:mfa`.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::authorize::{expired_page, page, redirect_error, see_other, unavailable_page};
use super::login::csrf_failure;
use super::paths;
use crate::app::AppState;
use crate::clients::random_token;
use crate::mfa::{self, Check, HalfLogin, MfaError, email_otp, policy};
use crate::oauth::authorize::{AuthRequest, Prompt};
use crate::oauth::error::{ErrorCode, OAuthError};
use crate::oauth::grants::Params;
use crate::session::{self, Pending, Session};
use crate::store::{Client, SecondFactors, User};
use crate::views::mfa::MfaPage;

/// How the second step can be done for this person right now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Method {
    Totp,
    Email,
}

/// What happens after the first factor.
enum Plan {
    /// No second factor: carry on with what was done.
    Skip,
    Ask(Method),
    /// A second factor is required but the person has none to use.
    Blocked,
}

async fn plan(
    s: &AppState,
    user_id: &str,
    known: Option<SecondFactors>,
    required: bool,
    asked: bool,
    enrolled_forces: bool,
) -> Result<Plan, MfaError> {
    // Nothing can make this a second step: no need to look the person's factors up.
    if !(required || asked || enrolled_forces) {
        return Ok(Plan::Skip);
    }
    // A registered passkey is a second factor like an authenticator app.
    let enrolled = match known {
        Some(f) => f.totp || (f.passkey && mfa::passkey::available(s)),
        None => {
            mfa::has_totp(s, user_id).await?
                || (mfa::passkey::available(s) && mfa::passkey::has_passkey(s, user_id).await?)
        }
    };
    if enrolled && (required || asked || enrolled_forces) {
        return Ok(Plan::Ask(Method::Totp));
    }
    if !(required || asked) {
        return Ok(Plan::Skip);
    }
    if s.settings.raw.mfa_email_otp {
        return Ok(Plan::Ask(Method::Email));
    }
    // `acr_values` is voluntary (OIDC Core 3.1.2.1): without a factor the sign-in goes on, and
    // the ID token's `acr` says it was a password only.
    Ok(if required { Plan::Blocked } else { Plan::Skip })
}

fn blocked_page() -> Response {
    page(
        StatusCode::FORBIDDEN,
        "Two-step verification required",
        "This application requires a second sign-in step, and your account has none set up yet. \
         Sign in to your account, open Security (/account/security), add an authenticator app, \
         then try again.",
        "access_denied",
    )
}

/// The flow cookie of this browser, or a new one (`Some` = set it).
fn flow_of(s: &AppState, headers: &HeaderMap) -> (String, Option<String>) {
    match session::cookie(headers, &session::cookie_name(s, session::FLOW))
        .filter(|f| f.len() == 43)
    {
        Some(f) => (session::hash(&f), None),
        None => {
            let (f, h) = session::new_flow();
            (h, Some(f))
        }
    }
}

pub(super) fn flow_hash(s: &AppState, headers: &HeaderMap) -> Option<String> {
    session::cookie(headers, &session::cookie_name(s, session::FLOW))
        .filter(|f| f.len() == 43)
        .map(|f| session::hash(&f))
}

fn mask_email(e: &str) -> String {
    match e.split_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}•••@{domain}")
        }
        None => "your address".into(),
    }
}

/// What the second step continues.
pub struct Next {
    pub req: Option<String>,
    pub return_to: Option<String>,
    /// The redirect URI the flow ends at (for the page's `form-action`).
    pub form_target: Option<String>,
    pub remember_me: bool,
}

/// Parks the half-finished login and sends the browser to the second-factor page.
async fn park(
    s: &AppState,
    headers: &HeaderMap,
    user: &User,
    amr: Vec<String>,
    sid: Option<String>,
    method: Method,
    next: Next,
) -> Result<Response, MfaError> {
    let (flow_hash, new_flow) = flow_of(s, headers);
    let now = s.clock.now();
    let mut half = HalfLogin {
        user_id: user.id.clone(),
        csrf: random_token(32),
        req: next.req,
        return_to: next.return_to,
        form_target: next.form_target,
        remember_me: next.remember_me,
        amr,
        sid,
        expires_at: now + mfa::HALF_LOGIN_TTL_SECS,
        email_code: None,
    };
    if method == Method::Email {
        send_email_code(s, user, &mut half).await?;
    }
    half.save(s, &flow_hash).await?;
    let mut r = see_other(paths::LOGIN_MFA);
    if let Some(f) = new_flow {
        r.headers_mut().append(
            header::SET_COOKIE,
            session::set_cookie(s, session::FLOW, &f, None),
        );
    }
    Ok(r)
}

async fn send_email_code(
    s: &AppState,
    user: &User,
    half: &mut HalfLogin,
) -> Result<bool, MfaError> {
    if !email_otp::allow_send(s, &user.id).await {
        return Ok(false);
    }
    let (code, sent) = email_otp::new_code(s.clock.now())?;
    if let Err(e) = email_otp::send_code(s, &user.email, &code).await {
        tracing::error!(error = %e, "cannot send the sign-in code");
    }
    half.email_code = Some(sent);
    Ok(true)
}

/// Whether the browser's current session was signed in with "remember me" (a step-up keeps it).
async fn remembered(s: &AppState, headers: &HeaderMap) -> Result<bool, MfaError> {
    let Some(c) = session::cookie(headers, &session::cookie_name(s, session::SESSION))
        .filter(|c| c.len() <= 128)
    else {
        return Ok(false);
    };
    Ok(s.store
        .session_by_token(&session::hash(&c))
        .await?
        .is_some_and(|r| r.remember_me))
}

/// The hook of the password step: `None` when no second factor is needed (the caller starts the
/// session), else the response that leads to the second step (or says why it cannot).
pub async fn after_password(
    s: &AppState,
    headers: &HeaderMap,
    req: &str,
    pending: &Pending,
    user: &User,
    factors: SecondFactors,
    remember_me: bool,
) -> Option<Response> {
    let client = s
        .clients
        .get(&pending.request.client_id)
        .await
        .ok()
        .flatten();
    let next = Next {
        req: Some(req.to_string()),
        return_to: None,
        form_target: Some(pending.request.redirect_uri.clone()),
        remember_me,
    };
    let r = after_first_factor(
        s,
        headers,
        user,
        Some(factors),
        vec!["pwd".into()],
        client.as_deref(),
        pending.request.wants_mfa(),
        next,
    )
    .await;
    match r {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "login: second step unavailable");
            Some(unavailable_page())
        }
    }
}

/// The hook of the stand-alone sign-in (account pages): an enrolled person does the second step, which
/// then goes on to `return_to` (already checked to be an account path).
pub async fn after_signin_password(
    s: &AppState,
    headers: &HeaderMap,
    user: &User,
    factors: SecondFactors,
    return_to: &str,
    remember_me: bool,
) -> Option<Response> {
    let next = Next {
        req: None,
        return_to: Some(return_to.to_string()),
        form_target: None,
        remember_me,
    };
    let pwd = vec!["pwd".into()];
    match after_first_factor(s, headers, user, Some(factors), pwd, None, false, next).await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "sign-in: second step unavailable");
            Some(unavailable_page())
        }
    }
}

/// After any first factor (`amr` says which): an enrolled person always does the second step; one who
/// is not does it when policy, the client or the request asks and a factor can be used. `factors`:
/// the person's second factors when already read (else they are looked up).
#[allow(clippy::too_many_arguments)]
pub async fn after_first_factor(
    s: &AppState,
    headers: &HeaderMap,
    user: &User,
    factors: Option<SecondFactors>,
    amr: Vec<String>,
    client: Option<&Client>,
    asked: bool,
    next: Next,
) -> Result<Option<Response>, MfaError> {
    // Account pages (no client) apply only "enrolled → second step": a person the policy covers must
    // still be able to sign in there to enrol.
    let required = match client {
        Some(c) => policy::required(s, &user.id, Some(c)).await?,
        None => false,
    };
    match plan(s, &user.id, factors, required, asked, true).await? {
        Plan::Skip => Ok(None),
        Plan::Blocked => Ok(Some(blocked_page())),
        Plan::Ask(m) => Ok(Some(park(s, headers, user, amr, None, m, next).await?)),
    }
}

/// Step-up inside a session that did not use a second factor, when the request (`acr_values`), the
/// client or the policy needs one. `None`: carry on.
pub async fn step_up(
    s: &AppState,
    headers: &HeaderMap,
    id: &str,
    req: &AuthRequest,
    client: &Client,
    user: &User,
    sess: &Session,
) -> Option<Response> {
    if sess.acr == mfa::ACR_MFA {
        return None;
    }
    let go = async {
        let required = policy::required(s, &user.id, Some(client)).await?;
        match plan(s, &user.id, None, required, req.wants_mfa(), false).await? {
            Plan::Skip => Ok::<_, MfaError>(None),
            Plan::Blocked => Ok(Some(blocked_page())),
            Plan::Ask(_) if req.has_prompt(Prompt::None) => Ok(Some(redirect_error(
                s,
                &req.redirect_uri,
                req.state.as_deref(),
                &OAuthError::new(
                    ErrorCode::InteractionRequired,
                    "a second sign-in step is required",
                ),
            ))),
            Plan::Ask(m) => {
                let next = Next {
                    req: Some(id.to_string()),
                    return_to: None,
                    form_target: Some(req.redirect_uri.clone()),
                    remember_me: remembered(s, headers).await?,
                };
                Ok(Some(
                    park(
                        s,
                        headers,
                        user,
                        sess.amr.clone(),
                        Some(sess.sid.clone()),
                        m,
                        next,
                    )
                    .await?,
                ))
            }
        }
    };
    match go.await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "step-up unavailable");
            Some(unavailable_page())
        }
    }
}

async fn render(
    s: &AppState,
    half: &HalfLogin,
    status: StatusCode,
    error: Option<&'static str>,
    notice: Option<&'static str>,
) -> Response {
    let (totp, passkey, email) = match (
        mfa::has_totp(s, &half.user_id).await,
        mfa::passkey::has_passkey(s, &half.user_id).await,
        s.store.user(&half.user_id).await,
    ) {
        (Ok(t), Ok(p), Ok(Some(u))) => (t, p && mfa::passkey::available(s), u.email),
        _ => return unavailable_page(),
    };
    let mut r = MfaPage {
        csrf: half.csrf.clone(),
        totp,
        passkey,
        // A person with only a passkey is offered the emailed code when one was sent.
        email: (!totp && (!passkey || half.email_code.is_some())).then(|| mask_email(&email)),
        error,
        notice,
    }
    .into_response();
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        super::csp_with_form_target(half.form_target.as_deref()),
    );
    r
}

pub async fn get(State(s): State<AppState>, headers: HeaderMap) -> Response {
    let Some(fh) = flow_hash(&s, &headers) else {
        return expired_page();
    };
    match HalfLogin::load(&s, &fh).await {
        Ok(Some(half)) => render(&s, &half, StatusCode::OK, None, None).await,
        Ok(None) => expired_page(),
        Err(_) => unavailable_page(),
    }
}

pub async fn post(
    State(s): State<AppState>,
    crate::http::client_ip::ClientIp(ip): crate::http::client_ip::ClientIp,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !super::token::is_form(&headers) {
        return csrf_failure();
    }
    let Some(fh) = flow_hash(&s, &headers) else {
        return expired_page();
    };
    let mut half = match HalfLogin::load(&s, &fh).await {
        Ok(Some(h)) => h,
        Ok(None) => return expired_page(),
        Err(_) => return unavailable_page(),
    };
    let p = Params::parse(&body);
    let field = |n: &str| p.one(n).ok().flatten().unwrap_or_default().to_string();
    if !session::csrf_matches(&half.csrf, &field("csrf")) {
        return csrf_failure();
    }
    let ip = ip.to_string();
    let totp = match mfa::has_totp(&s, &half.user_id).await {
        Ok(t) => t,
        Err(_) => return unavailable_page(),
    };
    if field("action") == "resend" {
        if totp || !s.settings.raw.mfa_email_otp {
            return render(&s, &half, StatusCode::BAD_REQUEST, None, None).await;
        }
        let user = match s.store.user(&half.user_id).await {
            Ok(Some(u)) => u,
            _ => return unavailable_page(),
        };
        return match send_email_code(&s, &user, &mut half).await {
            Ok(true) => match half.save(&s, &fh).await {
                Ok(()) => {
                    render(
                        &s,
                        &half,
                        StatusCode::OK,
                        None,
                        Some("A new code was sent."),
                    )
                    .await
                }
                Err(_) => unavailable_page(),
            },
            Ok(false) => {
                render(
                    &s,
                    &half,
                    StatusCode::TOO_MANY_REQUESTS,
                    Some("Too many codes were sent. Wait a few minutes and try again."),
                    None,
                )
                .await
            }
            Err(_) => unavailable_page(),
        };
    }
    let code = zeroize::Zeroizing::new(field("code"));
    let checked = if totp {
        mfa::check_code(&s, &half.user_id, &code, Some(&ip)).await
    } else {
        mfa::check_email_code(&s, &half, &code, Some(&ip)).await
    };
    match checked {
        Ok(Check::Ok(factor)) => complete(&s, &headers, &fh, factor, &ip).await,
        Ok(Check::Refused) => {
            render(
                &s,
                &half,
                StatusCode::UNAUTHORIZED,
                Some("That code is not right, has expired or was already used."),
                None,
            )
            .await
        }
        Ok(Check::Locked) => {
            render(
                &s,
                &half,
                StatusCode::TOO_MANY_REQUESTS,
                Some("Too many wrong codes. Wait a few minutes and try again."),
                None,
            )
            .await
        }
        Err(e) => {
            tracing::error!(error = %e, "second factor: backend unavailable");
            unavailable_page()
        }
    }
}

/// The second factor is done: take the half-finished login (once), start the session with a fresh id
/// and continue where the sign-in came from.
pub(super) async fn complete(
    s: &AppState,
    headers: &HeaderMap,
    fh: &str,
    factor: mfa::Factor,
    ip: &str,
) -> Response {
    let half = match HalfLogin::take(s, fh).await {
        Ok(Some(h)) => h,
        Ok(None) => return expired_page(),
        Err(_) => return unavailable_page(),
    };
    match s.store.user(&half.user_id).await {
        Ok(Some(u)) if !u.disabled => {}
        Ok(_) => return expired_page(),
        Err(_) => return unavailable_page(),
    }
    let now = s.clock.now();
    let amr = mfa::amr_with(&half.amr, factor);
    crate::audit::record(
        &s.store,
        now,
        crate::audit::Event::new("mfa_succeeded")
            .subject(&half.user_id)
            .ip(ip)
            .details(json!({"factor": factor.as_str(), "amr": amr, "step_up": half.sid.is_some()})),
    )
    .await;
    // A step-up re-authenticates this browser's session in place (same sid, new cookie); otherwise
    // a new session starts. Either way the cookie is new (a change of privilege).
    let client_ip = ip
        .parse()
        .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
    let signed = match session::sign_in_browser(
        s,
        headers,
        client_ip,
        &half.user_id,
        amr,
        mfa::ACR_MFA.into(),
        half.remember_me,
        Vec::new(),
    )
    .await
    {
        Ok(signed) => signed,
        Err(_) => return unavailable_page(),
    };
    let mut r = match &half.req {
        Some(req) => match session::load_pending(s, headers, req).await {
            Ok(Some(mut pending)) => {
                pending.login_done_at = Some(now);
                if session::save_pending(s, req, &pending).await.is_err() {
                    return unavailable_page();
                }
                see_other(&format!("{}?req={req}", paths::AUTHORIZE_RESUME))
            }
            Ok(None) => expired_page(),
            Err(_) => return unavailable_page(),
        },
        None => see_other(
            half.return_to
                .as_deref()
                .filter(|t| is_local_path(t))
                .unwrap_or(paths::ACCOUNT_SECURITY),
        ),
    };
    r.headers_mut()
        .append(header::SET_COOKIE, signed.set_cookie(s));
    r
}

/// A path on this server: `/x`, never `//host` or `/\host`.
pub fn is_local_path(t: &str) -> bool {
    t.starts_with('/') && !t.starts_with("//") && !t.starts_with("/\\") && !t.contains(['\r', '\n'])
}
