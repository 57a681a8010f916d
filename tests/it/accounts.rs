//! Accounts end to end over HTTP: registration → mail in the outbox → verification → sign-in; email
//! change; password reset and change; the password policy (length, common list, zxcvbn, HIBP by
//! k-anonymity); one-time links that are reused, expired or forged; no enumeration on the
//! registration and reset paths; the mail queue's retries.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use custos::config::{Config, MailTransport, Registration};
use custos::mail::{self, Compose, Mail, MailError, Mailer};

use crate::browser::{Browser, Landing, hidden};
use crate::support::TestApp;

pub const GOOD: &str = "violet tractor sings at dawn";
pub const GOOD2: &str = "seven quiet lanterns drift east";

/// An app with open registration, no failure delay, and an outbox folder of its own.
pub async fn app_with(f: impl FnOnce(&mut Config)) -> (TestApp, PathBuf) {
    let dir = tempfile::tempdir().unwrap().keep();
    let outbox = dir.join("outbox");
    let o2 = outbox.clone();
    let app = TestApp::builder()
        .with_config(move |c| {
            c.registration = Registration::Open;
            c.mail_outbox_dir = o2;
            c.login_failure_delay_ms = 0;
            f(c);
        })
        .start()
        .await;
    (app, outbox)
}

/// Decodes a quoted-printable or base64 MIME body.
fn decode(cte: &str, body: &str) -> String {
    match cte {
        "base64" => String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(body.split_whitespace().collect::<String>())
                .unwrap(),
        )
        .unwrap(),
        "quoted-printable" => {
            let joined = body.replace("=\r\n", "").replace("=\n", "");
            let b = joined.as_bytes();
            let mut out = Vec::new();
            let mut i = 0;
            while i < b.len() {
                if b[i] == b'=' && i + 2 < b.len() {
                    let h = std::str::from_utf8(&b[i + 1..i + 3]).unwrap();
                    out.push(u8::from_str_radix(h, 16).unwrap());
                    i += 3;
                } else {
                    out.push(b[i]);
                    i += 1;
                }
            }
            String::from_utf8(out).unwrap()
        }
        _ => body.to_string(),
    }
}

/// The text part of an .eml file, decoded.
fn text_part(eml: &str) -> String {
    let start = eml.find("Content-Type: text/plain").expect("a text part");
    let part = &eml[start..];
    let (headers, rest) = part
        .split_once("\r\n\r\n")
        .or_else(|| part.split_once("\n\n"))
        .unwrap();
    let cte = headers
        .lines()
        .find_map(|l| l.strip_prefix("Content-Transfer-Encoding: "))
        .unwrap_or("7bit")
        .trim()
        .to_string();
    let body = rest.split("\r\n--").next().unwrap();
    decode(&cte, body)
}

/// The mails delivered to the outbox folder, oldest first: only `<id>.eml` files, which the mailer
/// renames into place whole (its `.<id>.eml.tmp` files are being written).
pub fn delivered_mails(outbox: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(outbox)
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    files.retain(|p| p.extension().is_some_and(|e| e == "eml"));
    files.sort();
    files
}

/// Every mail in the outbox addressed to `to`, oldest first: (subject, decoded text).
pub fn mails_to(outbox: &Path, to: &str) -> Vec<(String, String)> {
    delivered_mails(outbox)
        .into_iter()
        .filter_map(|p| {
            let eml = std::fs::read_to_string(&p).ok()?;
            let to_line = eml.lines().find(|l| l.starts_with("To: "))?;
            if !to_line.contains(to) {
                return None;
            }
            let subject = eml
                .lines()
                .find_map(|l| l.strip_prefix("Subject: "))?
                .to_string();
            Some((subject, text_part(&eml)))
        })
        .collect()
}

/// Waits (delivery runs in the background) for the `n`-th mail to `to`; returns its (subject, text).
pub async fn wait_mail(outbox: &Path, to: &str, n: usize) -> (String, String) {
    for _ in 0..200 {
        let m = mails_to(outbox, to);
        if m.len() >= n {
            return m[n - 1].clone();
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("no mail #{n} to {to} in {}", outbox.display());
}

/// The first link in `text` to `path` (absolute URL).
pub fn link(text: &str, path: &str) -> String {
    text.split_whitespace()
        .find(|w| w.starts_with("http") && w.contains(&format!("{path}?")))
        .unwrap_or_else(|| panic!("no {path} link in {text}"))
        .to_string()
}

fn token_of(url: &str) -> String {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "token")
        .unwrap()
        .1
        .into_owned()
}

/// GETs a page with a form and posts it with its CSRF token plus `fields`.
pub async fn fill(b: &Browser, page_url: &str, action: &str, fields: &[(&str, &str)]) -> Landing {
    let page = b.get(page_url).await;
    assert_eq!(page.status(), 200, "{page:?}");
    let csrf = hidden(page.body(), "csrf");
    let mut form: Vec<(&str, &str)> = vec![("csrf", &csrf)];
    form.extend_from_slice(fields);
    b.submit(action, &form).await
}

pub async fn register(b: &Browser, app: &TestApp, email: &str, name: &str, pw: &str) -> Landing {
    fill(
        b,
        &app.url("/register"),
        "/register",
        &[("email", email), ("name", name), ("password", pw)],
    )
    .await
}

/// The stand-alone sign-in (to the account pages).
pub async fn sign_in(b: &Browser, app: &TestApp, email: &str, pw: &str) -> Landing {
    let page = b.get(&app.url("/login?return_to=/account")).await;
    if page.status() == 200 && page.body().contains("<h1>Profile</h1>") {
        return page;
    }
    let csrf = hidden(page.body(), "csrf");
    b.submit(
        "/login",
        &[
            ("return_to", "/account"),
            ("csrf", &csrf),
            ("email", email),
            ("password", pw),
        ],
    )
    .await
}

async fn confirm(b: &Browser, url: &str) -> Landing {
    let page = b.get(url).await;
    assert_eq!(page.status(), 200, "{page:?}");
    let (csrf, token) = (hidden(page.body(), "csrf"), hidden(page.body(), "token"));
    b.submit("/verify-email", &[("csrf", &csrf), ("token", &token)])
        .await
}

#[tokio::test]
async fn registration_mail_verification_and_sign_in() {
    let (app, outbox) = app_with(|_| {}).await;
    let b = Browser::new(&app);
    let done = register(&b, &app, "  Grace@Example.COM ", "Grace Hopper", GOOD).await;
    assert_eq!(done.status(), 200, "{done:?}");
    assert!(done.body().contains("Check your inbox"));
    // Normalised: the domain is lower-cased, the local part kept.
    let u = app
        .state
        .store
        .user_by_email("Grace@example.com")
        .await
        .unwrap()
        .expect("the account exists");
    assert!(!u.email_verified);
    assert!(u.password_hash.unwrap().starts_with("$argon2id$"));

    let (subject, text) = wait_mail(&outbox, "Grace@example.com", 1).await;
    assert_eq!(subject, "Confirm your email address");
    let url = link(&text, "/verify-email");
    assert!(token_of(&url).starts_with("cst_ev_"));
    // Signing in before verifying works by default; the profile says "not verified".
    let account = sign_in(&b, &app, "Grace@EXAMPLE.com", GOOD).await;
    assert_eq!(account.status(), 200, "{account:?}");
    assert!(account.body().contains("not verified"));

    let ok = confirm(&b, &url).await;
    assert_eq!(ok.status(), 200, "{ok:?}");
    assert!(ok.body().contains("Address confirmed"));
    let u = app.state.store.user(&u.id).await.unwrap().unwrap();
    assert!(u.email_verified);
    // Used up: the same link again fails, on GET and on POST.
    assert_eq!(b.get(&url).await.status(), 400);
    let again = b
        .submit(
            "/verify-email",
            &[
                (
                    "csrf",
                    &hidden(confirm_page_csrf(&b, &app).await.as_str(), "csrf"),
                ),
                ("token", &token_of(&url)),
            ],
        )
        .await;
    assert_eq!(again.status(), 400, "{again:?}");
    let kinds = audit_kinds(&app).await;
    assert!(kinds.contains(&"user_registered".to_string()));
    assert!(kinds.contains(&"email_verified".to_string()));
}

/// Any page with an anonymous form, for a fresh CSRF token of this browser.
async fn confirm_page_csrf(b: &Browser, app: &TestApp) -> String {
    b.get(&app.url("/password/forgot")).await.body().to_string()
}

pub async fn audit_kinds(app: &TestApp) -> Vec<String> {
    app.state
        .store
        .audit_events(1000)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect()
}

#[tokio::test]
async fn unverified_accounts_can_be_refused_until_verified() {
    let (app, outbox) = app_with(|c| c.require_verified_email = true).await;
    let b = Browser::new(&app);
    register(&b, &app, "kay@example.com", "Kay", GOOD).await;
    let (_, first) = wait_mail(&outbox, "kay@example.com", 1).await;
    let refused = sign_in(&b, &app, "kay@example.com", GOOD).await;
    assert_eq!(refused.status(), 401);
    assert!(refused.body().contains("Confirm your email address first"));
    // The refusal sent a new link; either works once.
    let (_, second) = wait_mail(&outbox, "kay@example.com", 2).await;
    assert_ne!(
        link(&first, "/verify-email"),
        link(&second, "/verify-email")
    );
    assert_eq!(
        confirm(&b, &link(&second, "/verify-email")).await.status(),
        200
    );
    let account = sign_in(&b, &app, "kay@example.com", GOOD).await;
    assert_eq!(account.status(), 200, "{account:?}");
    assert!(account.body().contains("verified"));
}

#[tokio::test]
async fn registration_errors_name_the_field_and_the_reason() {
    let (app, _) = app_with(|_| {}).await;
    let b = Browser::new(&app);
    let r = register(&b, &app, "not-an-address", "", "short").await;
    assert_eq!(r.status(), 400);
    let body = r.body();
    assert!(body.contains("id=\"email-error\""), "{body}");
    assert!(body.contains("id=\"name-error\""), "{body}");
    assert!(body.contains("Use at least 12 characters."), "{body}");
    // The form keeps what was typed, except the password.
    assert!(body.contains("value=\"not-an-address\""));
    // On the bundled list of common passwords.
    let r = register(&b, &app, "ann@example.com", "Ann", "administrator").await;
    assert_eq!(r.status(), 400);
    assert!(
        r.body().contains("list of the most common passwords"),
        "{}",
        r.body()
    );
    // Long enough, not on the list, but guessable (zxcvbn below 3).
    let r = register(&b, &app, "ann@example.com", "Ann", "aaaaaaaaaaaaaaaa").await;
    assert_eq!(r.status(), 400);
    assert!(r.body().contains("too easy to guess"), "{}", r.body());
    assert!(
        app.state
            .store
            .user_by_email("ann@example.com")
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn closed_and_invite_only_registration() {
    let app = TestApp::start().await;
    let b = Browser::new(&app);
    assert_eq!(b.get(&app.url("/register")).await.status(), 404);
    let (app, outbox) = app_with(|c| c.registration = Registration::Invite).await;
    let b = Browser::new(&app);
    assert_eq!(b.get(&app.url("/register")).await.status(), 403);
    let url = custos::identity::accounts::invite(&app.state, Some("ivy@example.com"), None)
        .await
        .unwrap();
    let page = b.get(&url).await;
    assert_eq!(page.status(), 200);
    assert!(page.body().contains("value=\"ivy@example.com\""));
    let (csrf, invite) = (hidden(page.body(), "csrf"), hidden(page.body(), "invite"));
    let form = |email: &'static str| {
        vec![
            ("csrf", csrf.clone()),
            ("invite", invite.clone()),
            ("email", email.to_string()),
            ("name", "Ivy".to_string()),
            ("password", GOOD.to_string()),
        ]
    };
    let as_refs = |v: &Vec<(&'static str, String)>| -> Vec<(&'static str, String)> { v.clone() };
    let other = as_refs(&form("mallory@example.com"));
    let refs: Vec<(&str, &str)> = other.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let r = b.submit("/register", &refs).await;
    assert_eq!(r.status(), 400);
    assert!(r.body().contains("This invitation is for another address."));
    let good = form("ivy@example.com");
    let refs: Vec<(&str, &str)> = good.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(b.submit("/register", &refs).await.status(), 200);
    wait_mail(&outbox, "ivy@example.com", 1).await;
    // The invitation worked once.
    assert_eq!(b.get(&url).await.status(), 403);
}

#[tokio::test]
async fn registering_an_existing_address_looks_like_success_and_mails_the_owner() {
    let (app, outbox) = app_with(|_| {}).await;
    crate::browser::user(&app, "taken@example.com").await;
    let b = Browser::new(&app);
    let fresh = register(&b, &app, "fresh@example.com", "Fresh", GOOD).await;
    let taken = register(&b, &app, "taken@example.com", "Someone", GOOD).await;
    assert_eq!(fresh.status(), taken.status());
    assert_eq!(
        fresh.body().replace("fresh@example.com", "X"),
        taken.body().replace("taken@example.com", "X")
    );
    // The owner hears about it; nothing about the account changed.
    let (subject, text) = wait_mail(&outbox, "taken@example.com", 1).await;
    assert_eq!(
        subject,
        "Someone tried to create an account with your address"
    );
    assert!(text.contains("/password/forgot"));
    let u = app
        .state
        .store
        .user_by_email("taken@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(u.name, "Ada Lovelace");
}

#[tokio::test]
async fn forgot_password_answers_the_same_for_every_address() {
    let (app, outbox) = app_with(|_| {}).await;
    crate::browser::user(&app, "known@example.com").await;
    let b = Browser::new(&app);
    let known = fill(
        &b,
        &app.url("/password/forgot"),
        "/password/forgot",
        &[("email", "known@example.com")],
    )
    .await;
    let unknown = fill(
        &b,
        &app.url("/password/forgot"),
        "/password/forgot",
        &[("email", "nobody@example.com")],
    )
    .await;
    let garbage = fill(
        &b,
        &app.url("/password/forgot"),
        "/password/forgot",
        &[("email", "not an address")],
    )
    .await;
    for r in [&unknown, &garbage] {
        assert_eq!(known.status(), r.status());
        assert_eq!(known.body(), r.body());
    }
    assert_eq!(known.status(), 200);
    let (subject, _) = wait_mail(&outbox, "known@example.com", 1).await;
    assert_eq!(subject, "Reset your password");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(mails_to(&outbox, "nobody@example.com").is_empty());
}

async fn reset_link(app: &TestApp, outbox: &Path, b: &Browser, email: &str, n: usize) -> String {
    fill(
        b,
        &app.url("/password/forgot"),
        "/password/forgot",
        &[("email", email)],
    )
    .await;
    let (_, text) = wait_mail(outbox, email, n).await;
    link(&text, "/password/reset")
}

async fn submit_reset(b: &Browser, url: &str, pw: &str) -> Landing {
    let page = b.get(url).await;
    if page.status() != 200 {
        return page;
    }
    let (csrf, token) = (hidden(page.body(), "csrf"), hidden(page.body(), "token"));
    b.submit(
        "/password/reset",
        &[("csrf", &csrf), ("token", &token), ("password", pw)],
    )
    .await
}

#[tokio::test]
async fn password_reset_end_to_end_revokes_everything() {
    let (app, outbox) = app_with(|_| {}).await;
    let ada = crate::browser::user(&app, "ada@example.com").await;
    // A signed-in browser, and refresh-token families (one bound to no session at all).
    let elsewhere = Browser::new(&app);
    assert_eq!(
        sign_in(
            &elsewhere,
            &app,
            "ada@example.com",
            crate::browser::PASSWORD
        )
        .await
        .status(),
        200
    );
    let c = app.client(crate::browser::web_client(false)).await;
    let fam = app
        .state
        .store
        .create_family(custos::store::NewRefreshFamily {
            user_id: ada.id.clone(),
            client_id: c.id.clone(),
            scope: vec!["openid".to_string()],
            session_id: None,
            auth_time: Some(crate::support::T0),
            now: crate::support::T0,
            absolute_ttl_secs: 3600,
            idle_ttl_secs: 3600,
        })
        .await;
    assert!(fam.is_ok(), "{fam:?}");
    assert_eq!(
        app.state
            .store
            .families_for_user(&ada.id, custos::clock::Clock::now(app.clock.as_ref()))
            .await
            .unwrap()
            .len(),
        1
    );

    let b = Browser::new(&app);
    let url = reset_link(&app, &outbox, &b, "ada@example.com", 1).await;
    assert!(token_of(&url).starts_with("cst_pr_"));
    // A weak password is refused with the reason, and the link still works.
    let weak = submit_reset(&b, &url, "password").await;
    assert_eq!(weak.status(), 400);
    assert!(weak.body().contains("Use at least 12 characters."));
    let done = submit_reset(&b, &url, GOOD2).await;
    assert_eq!(done.status(), 200, "{done:?}");
    assert!(done.body().contains("Password changed"));

    // Every refresh family and every session of the account ended.
    assert!(
        app.state
            .store
            .families_for_user(&ada.id, custos::clock::Clock::now(app.clock.as_ref()))
            .await
            .unwrap()
            .is_empty()
    );
    let gone = elsewhere.get(&app.url("/account")).await;
    assert!(gone.body().contains("name=\"return_to\""), "{gone:?}");
    // Old password out, new one in.
    assert_eq!(
        sign_in(
            &Browser::new(&app),
            &app,
            "ada@example.com",
            crate::browser::PASSWORD
        )
        .await
        .status(),
        401
    );
    assert_eq!(
        sign_in(&Browser::new(&app), &app, "ada@example.com", GOOD2)
            .await
            .status(),
        200
    );
    // Reused: the link is spent.
    assert_eq!(submit_reset(&b, &url, GOOD).await.status(), 400);
    let (subject, _) = wait_mail(&outbox, "ada@example.com", 2).await;
    assert_eq!(subject, "Your password was changed");
    assert!(
        audit_kinds(&app)
            .await
            .contains(&"password_reset".to_string())
    );
}

#[tokio::test]
async fn reset_links_expire_and_cannot_be_forged() {
    let (app, outbox) = app_with(|_| {}).await;
    crate::browser::user(&app, "bo@example.com").await;
    let b = Browser::new(&app);
    let url = reset_link(&app, &outbox, &b, "bo@example.com", 1).await;
    // Forged: a well-formed token nobody issued, a malformed one, another kind's prefix.
    for forged in [
        format!("cst_pr_{}", "A".repeat(43)),
        "cst_pr_short".to_string(),
        token_of(&url).replace("cst_pr_", "cst_ev_"),
    ] {
        let r = b
            .get(&app.url(&format!("/password/reset?token={forged}")))
            .await;
        assert_eq!(r.status(), 400, "{forged}");
        let csrf = hidden(&confirm_page_csrf(&b, &app).await, "csrf");
        let r = b
            .submit(
                "/password/reset",
                &[("csrf", &csrf), ("token", &forged), ("password", GOOD2)],
            )
            .await;
        assert_eq!(r.status(), 400, "{forged}");
    }
    // 30 minutes later it is expired.
    app.clock.advance(30 * 60);
    assert_eq!(submit_reset(&b, &url, GOOD2).await.status(), 400);
    // Verification links last 24 h.
    let (app, outbox) = app_with(|_| {}).await;
    let b = Browser::new(&app);
    register(&b, &app, "late@example.com", "Late", GOOD).await;
    let (_, text) = wait_mail(&outbox, "late@example.com", 1).await;
    app.clock.advance(24 * 3600);
    assert_eq!(b.get(&link(&text, "/verify-email")).await.status(), 400);
}

#[tokio::test]
async fn password_change_keeps_this_session_and_ends_the_others() {
    let (app, outbox) = app_with(|_| {}).await;
    crate::browser::user(&app, "cy@example.com").await;
    let here = Browser::new(&app);
    let there = Browser::new(&app);
    for b in [&here, &there] {
        assert_eq!(
            sign_in(b, &app, "cy@example.com", crate::browser::PASSWORD)
                .await
                .status(),
            200
        );
    }
    let page = here.get(&app.url("/account/password")).await;
    assert_eq!(page.status(), 200);
    let csrf = hidden(page.body(), "csrf");
    let wrong = here
        .submit(
            "/account/password",
            &[
                ("csrf", &csrf),
                ("current_password", "not it at all"),
                ("new_password", GOOD),
            ],
        )
        .await;
    assert_eq!(wrong.status(), 401);
    assert!(wrong.body().contains("This is not your current password."));
    let weak = here
        .submit(
            "/account/password",
            &[
                ("csrf", &csrf),
                ("current_password", crate::browser::PASSWORD),
                ("new_password", "password123"),
            ],
        )
        .await;
    assert_eq!(weak.status(), 400);
    let ok = here
        .submit(
            "/account/password",
            &[
                ("csrf", &csrf),
                ("current_password", crate::browser::PASSWORD),
                ("new_password", GOOD),
            ],
        )
        .await;
    assert_eq!(ok.status(), 200, "{ok:?}");
    assert!(ok.body().contains("Your password was changed"));
    // This browser is still signed in; the other one is not.
    assert!(
        here.get(&app.url("/account"))
            .await
            .body()
            .contains("<h1>Profile</h1>")
    );
    assert!(
        there
            .get(&app.url("/account"))
            .await
            .body()
            .contains("name=\"return_to\"")
    );
    // A form without this session's CSRF token is refused before anything is checked.
    let forged = here
        .submit(
            "/account/password",
            &[
                ("csrf", "forged"),
                ("current_password", GOOD),
                ("new_password", GOOD2),
            ],
        )
        .await;
    assert_eq!(forged.status(), 403);
    let (subject, _) = wait_mail(&outbox, "cy@example.com", 1).await;
    assert_eq!(subject, "Your password was changed");
    assert!(
        audit_kinds(&app)
            .await
            .contains(&"password_changed".to_string())
    );
}

#[tokio::test]
async fn profile_name_and_email_change_with_reverification() {
    let (app, outbox) = app_with(|_| {}).await;
    let dee = crate::browser::user(&app, "dee@example.com").await;
    let b = Browser::new(&app);
    // An account page without a session goes to the sign-in page, and back afterwards.
    let login = b.get(&app.url("/account/password")).await;
    assert!(
        login.body().contains("value=\"/account/password\""),
        "{login:?}"
    );
    let page = sign_in(&b, &app, "dee@example.com", crate::browser::PASSWORD).await;
    let csrf = hidden(page.body(), "csrf");
    let renamed = b
        .submit("/account", &[("csrf", &csrf), ("name", "Dee Dee")])
        .await;
    assert_eq!(renamed.status(), 200);
    assert_eq!(
        app.state.store.user(&dee.id).await.unwrap().unwrap().name,
        "Dee Dee"
    );
    let no_pw = b
        .submit(
            "/account/email",
            &[
                ("csrf", &csrf),
                ("email", "dee@new.example.com"),
                ("current_password", "wrong"),
            ],
        )
        .await;
    assert_eq!(no_pw.status(), 401);
    let asked = b
        .submit(
            "/account/email",
            &[
                ("csrf", &csrf),
                ("email", "dee@New.Example.com"),
                ("current_password", crate::browser::PASSWORD),
            ],
        )
        .await;
    assert_eq!(asked.status(), 200, "{asked:?}");
    assert!(asked.body().contains("dee@new.example.com"));
    // Not changed until the new address confirms.
    assert_eq!(
        app.state.store.user(&dee.id).await.unwrap().unwrap().email,
        "dee@example.com"
    );
    let (subject, text) = wait_mail(&outbox, "dee@new.example.com", 1).await;
    assert_eq!(subject, "Confirm your new email address");
    assert!(
        confirm(&b, &link(&text, "/verify-email"))
            .await
            .body()
            .contains("Address changed")
    );
    let u = app.state.store.user(&dee.id).await.unwrap().unwrap();
    assert_eq!(u.email, "dee@new.example.com");
    assert!(u.email_verified);
    let (subject, _) = wait_mail(&outbox, "dee@example.com", 1).await;
    assert_eq!(subject, "Your email address was changed");
}

#[tokio::test]
async fn sign_in_never_redirects_off_site() {
    let app = TestApp::start().await;
    crate::browser::user(&app, "eve@example.com").await;
    let b = Browser::new(&app);
    let page = b
        .get(&app.url("/login?return_to=https://evil.example/account"))
        .await;
    assert!(
        page.body()
            .contains("name=\"return_to\" value=\"/account\"")
    );
    let csrf = hidden(page.body(), "csrf");
    for target in [
        "https://evil.example/",
        "//evil.example/account",
        "/account/../token",
    ] {
        let r = b
            .http
            .post(app.url("/login"))
            .form(&[
                ("return_to", target),
                ("csrf", &csrf),
                ("email", "eve@example.com"),
                ("password", crate::browser::PASSWORD),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303);
        assert_eq!(r.headers()["location"], "/account", "{target}");
    }
    // Without the browser's CSRF token the form is refused.
    let r = b
        .http
        .post(app.url("/login"))
        .form(&[
            ("return_to", "/account"),
            ("csrf", "forged"),
            ("email", "eve@example.com"),
            ("password", crate::browser::PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
}

/// A local stand-in for the Have I Been Pwned range API that records what it was asked.
async fn hibp_mock(pwned: &'static str, count: u64) -> (String, Arc<Mutex<Vec<String>>>) {
    use axum::extract::Path as AxPath;
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let s2 = seen.clone();
    let full = custos::identity::policy::sha1_hex(pwned);
    let router = axum::Router::new().route(
        "/range/{prefix}",
        axum::routing::get(move |AxPath(prefix): AxPath<String>| {
            let seen = s2.clone();
            let full = full.clone();
            async move {
                seen.lock().unwrap().push(prefix.clone());
                let mut body = String::from("0000000000000000000000000000000000A:0\r\n");
                if full.starts_with(&prefix) {
                    body.push_str(&format!("{}:{count}\r\n", &full[5..]));
                }
                body
            }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(l, router).await;
    });
    (format!("http://{addr}"), seen)
}

#[tokio::test]
async fn breached_passwords_are_refused_through_hibp_k_anonymity() {
    let pwned = "ornate walrus composes sonnets";
    let (api, seen) = hibp_mock(pwned, 42).await;
    let (app, _) = app_with(move |c| c.hibp_api_url = Some(api)).await;
    let b = Browser::new(&app);
    let r = register(&b, &app, "hal@example.com", "Hal", pwned).await;
    assert_eq!(r.status(), 400);
    assert!(
        r.body().contains("appeared in 42 data breaches"),
        "{}",
        r.body()
    );
    assert_eq!(
        register(&b, &app, "hal@example.com", "Hal", GOOD)
            .await
            .status(),
        200
    );
    // Only five hex characters of each SHA-1 ever left.
    let asked = seen.lock().unwrap().clone();
    assert_eq!(asked.len(), 2);
    for (prefix, pw) in asked.iter().zip([pwned, GOOD]) {
        assert_eq!(prefix.len(), 5);
        assert_eq!(
            prefix.as_str(),
            &custos::identity::policy::sha1_hex(pw)[..5]
        );
    }
    // An unreachable HIBP does not block anyone (the local checks still apply).
    let (app, _) = app_with(|c| c.hibp_api_url = Some("http://127.0.0.1:9".into())).await;
    assert_eq!(
        register(&Browser::new(&app), &app, "ida@example.com", "Ida", GOOD)
            .await
            .status(),
        200
    );
}

struct FlakyMailer {
    fail: Mutex<u32>,
    sent: Mutex<Vec<Mail>>,
}

#[async_trait::async_trait]
impl Mailer for FlakyMailer {
    async fn send(&self, _id: &str, m: &Mail) -> Result<(), MailError> {
        let mut f = self.fail.lock().unwrap();
        if *f > 0 {
            *f -= 1;
            return Err(MailError::Transport("421 try again later".into()));
        }
        self.sent.lock().unwrap().push(m.clone());
        Ok(())
    }
    fn kind(&self) -> &'static str {
        "flaky"
    }
}

#[tokio::test]
async fn a_failed_send_is_retried_with_backoff_and_the_account_survives() {
    // SMTP to a port where nothing listens: registration still succeeds, the mail waits.
    let (app, _) = app_with(|c| {
        c.mail_transport = MailTransport::Smtp;
        c.smtp_host = Some("127.0.0.1".into());
        c.smtp_port = 9;
        c.smtp_tls = custos::config::SmtpTls::None;
    })
    .await;
    let b = Browser::new(&app);
    assert_eq!(
        register(&b, &app, "sam@example.com", "Sam", GOOD)
            .await
            .status(),
        200
    );
    assert!(
        app.state
            .store
            .user_by_email("sam@example.com")
            .await
            .unwrap()
            .is_some()
    );
    // Whether or not the first (background) attempt has run yet, the next due one fails too.
    tokio::time::sleep(Duration::from_millis(300)).await;
    app.clock.advance(mail::backoff_secs(1));
    let d = mail::drain(&app.state, app.state.mailer.as_ref(), None)
        .await
        .unwrap();
    assert_eq!(d.retrying, 1, "{d:?}");
    assert_eq!(
        app.state
            .store
            .mail_status("sam@example.com")
            .await
            .unwrap(),
        (1, 0, 0),
        "queued, not sent, not given up"
    );

    // The queue with a mailer that fails twice, then delivers.
    let flaky = FlakyMailer {
        fail: Mutex::new(2),
        sent: Mutex::default(),
    };
    let id = mail::queue(
        &app.state,
        &Compose {
            to: "queue@example.com",
            subject: "Hello",
            heading: "Hello",
            before: vec!["One line.".into()],
            action: Some(("Go", "http://127.0.0.1/x")),
            after: vec![],
        },
    )
    .await
    .unwrap();
    let once = mail::drain(&app.state, &flaky, Some(&id)).await.unwrap();
    assert_eq!(once.retrying, 1);
    // Not due again before the backoff.
    assert_eq!(
        mail::drain(&app.state, &flaky, Some(&id)).await.unwrap(),
        mail::Drained::default()
    );
    app.clock.advance(mail::backoff_secs(1));
    assert_eq!(
        mail::drain(&app.state, &flaky, Some(&id))
            .await
            .unwrap()
            .retrying,
        1
    );
    app.clock.advance(mail::backoff_secs(2));
    assert_eq!(
        mail::drain(&app.state, &flaky, Some(&id))
            .await
            .unwrap()
            .sent,
        1
    );
    let sent = flaky.sent.lock().unwrap().clone();
    assert_eq!(sent.len(), 1);
    assert!(sent[0].text.contains("http://127.0.0.1/x"));
    assert!(
        sent[0]
            .html
            .contains("<a href=\"http://127.0.0.1/x\">Go</a>")
    );
    assert_eq!(
        app.state
            .store
            .mail_status("queue@example.com")
            .await
            .unwrap(),
        (0, 1, 0)
    );
}

#[tokio::test]
async fn tokens_say_whether_the_address_is_verified() {
    let (app, outbox) = app_with(|_| {}).await;
    let c = crate::sessions::first_party(&app, "RP", None).await;
    let b = Browser::new(&app);
    register(&b, &app, "max@example.com", "Max", GOOD).await;
    assert_eq!(
        sign_in(&b, &app, "max@example.com", GOOD).await.status(),
        200
    );
    async fn email_verified(app: &TestApp, c: &crate::support::TestClient, b: &Browser) -> bool {
        let challenge = custos::oauth::pkce::s256(crate::sessions::VERIFIER);
        let url = reqwest::Url::parse_with_params(
            &app.url("/authorize"),
            &[
                ("response_type", "code"),
                ("client_id", c.id.as_str()),
                ("scope", "openid email"),
                ("redirect_uri", crate::browser::REDIRECT),
                ("code_challenge", challenge.as_str()),
                ("code_challenge_method", "S256"),
            ],
        )
        .unwrap();
        let code = b.get(url.as_str()).await.param("code").expect("a code");
        let tokens = crate::sessions::redeem(app, c, &code).await;
        let id = crate::sessions::claims(tokens["id_token"].as_str().unwrap());
        assert_eq!(id["email"], "max@example.com");
        let info: serde_json::Value = app
            .http
            .get(app.url("/userinfo"))
            .bearer_auth(tokens["access_token"].as_str().unwrap())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(info["email_verified"], id["email_verified"]);
        id["email_verified"].as_bool().unwrap()
    }
    assert!(
        !email_verified(&app, &c, &b).await,
        "signed in unverified: email_verified false"
    );
    let (_, text) = wait_mail(&outbox, "max@example.com", 1).await;
    confirm(&b, &link(&text, "/verify-email")).await;
    assert!(email_verified(&app, &c, &b).await);
}
