//! Brute-force limits over HTTP: the check and the increment are one step (20 parallel wrong
//! passwords get exactly `login_max_failures` password checks), the lock lifts after its time, it
//! looks the same for unknown accounts, a success clears the counter, and the client IP comes from the
//! socket unless the peer is a trusted proxy.

use crate::accounts::{app_with, audit_kinds};
use crate::browser::{Browser, PASSWORD, hidden, user};
use crate::support::TestApp;

/// One stand-alone sign-in attempt (a fresh CSRF token from `b`); the status and the page.
async fn attempt(
    b: &Browser,
    app_base: &str,
    email: &str,
    pw: &str,
    xff: Option<&str>,
) -> (u16, String) {
    let page = b
        .http
        .get(format!("{app_base}/login?return_to=/account"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = hidden(&page, "csrf");
    let mut req = b.http.post(format!("{app_base}/login")).form(&[
        ("return_to", "/account"),
        ("csrf", csrf.as_str()),
        ("email", email),
        ("password", pw),
    ]);
    if let Some(x) = xff {
        req = req.header("x-forwarded-for", x);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.text().await.unwrap_or_default())
}

const LOCKED: &str = "Too many failed attempts";

fn count(kinds: &[String], k: &str) -> usize {
    kinds.iter().filter(|x| x.as_str() == k).count()
}

#[tokio::test]
async fn parallel_wrong_passwords_never_get_more_attempts_than_the_limit() {
    let (app, _) = app_with(|_| {}).await;
    user(&app, "ada@example.com").await;
    let b = std::sync::Arc::new(Browser::new(&app));
    let base = app.base.clone();
    let tries: Vec<_> = (0..20)
        .map(|i| {
            let (b, base) = (b.clone(), base.clone());
            tokio::spawn(async move {
                attempt(
                    &b,
                    &base,
                    "ada@example.com",
                    &format!("wrong guess {i}"),
                    None,
                )
                .await
            })
        })
        .collect();
    let mut results = Vec::new();
    for t in tries {
        results.push(t.await.unwrap());
    }
    let failed = results.iter().filter(|(s, _)| *s == 401).count();
    let locked = results.iter().filter(|(s, _)| *s == 429).count();
    assert_eq!(
        (failed, locked),
        (5, 15),
        "{:?}",
        results.iter().map(|r| r.0).collect::<Vec<_>>()
    );
    // Exactly five passwords were checked (the audit log records each check).
    let kinds = audit_kinds(&app).await;
    assert_eq!(count(&kinds, "login_failed"), 5);
    assert_eq!(count(&kinds, "login_throttled"), 15);
    assert!(count(&kinds, "login_locked") >= 1);
    // Now even the right password is refused, without being checked.
    let (s, body) = attempt(&b, &base, "ada@example.com", PASSWORD, None).await;
    assert_eq!(s, 429);
    assert!(body.contains(LOCKED));
    // The lock lifts after login_lock_secs (900 s by default), and counting starts afresh.
    app.clock.advance(899);
    assert_eq!(
        attempt(&b, &base, "ada@example.com", PASSWORD, None)
            .await
            .0,
        429
    );
    app.clock.advance(1);
    assert_eq!(
        attempt(&b, &base, "ada@example.com", PASSWORD, None)
            .await
            .0,
        303
    );
}

#[tokio::test]
async fn the_lock_does_not_reveal_whether_the_account_exists() {
    let (app, _) = app_with(|_| {}).await;
    user(&app, "real@example.com").await;
    let b = Browser::new(&app);
    let mut last = Vec::new();
    for email in ["real@example.com", "ghost@example.com"] {
        for i in 0..5 {
            let (s, _) = attempt(&b, &app.base, email, &format!("nope {i}"), None).await;
            assert_eq!(s, 401);
        }
        let (s, body) = attempt(&b, &app.base, email, "nope again", None).await;
        assert_eq!(s, 429);
        last.push(body.replace(email, "X"));
    }
    // Same page for both (apart from the CSRF token, which is the browser's, so also the same).
    assert_eq!(last[0], last[1]);
    // And the ordinary failure looks the same for both too.
    let app2 = TestApp::start().await;
    user(&app2, "real@example.com").await;
    let b2 = Browser::new(&app2);
    let a = attempt(&b2, &app2.base, "real@example.com", "wrong", None).await;
    let c = attempt(&b2, &app2.base, "ghost@example.com", "wrong", None).await;
    assert_eq!(a.0, c.0);
    assert_eq!(
        a.1.replace("real@example.com", "X"),
        c.1.replace("ghost@example.com", "X")
    );
}

#[tokio::test]
async fn a_success_clears_the_account_counter() {
    let (app, _) = app_with(|_| {}).await;
    user(&app, "bea@example.com").await;
    for _ in 0..3 {
        let b = Browser::new(&app);
        for i in 0..4 {
            assert_eq!(
                attempt(&b, &app.base, "bea@example.com", &format!("no {i}"), None)
                    .await
                    .0,
                401
            );
        }
        assert_eq!(
            attempt(&b, &app.base, "bea@example.com", PASSWORD, None)
                .await
                .0,
            303
        );
    }
}

/// An app (limit: 2 failures) where `email` has just been locked.
async fn locked_out(email: &str) -> (TestApp, Browser) {
    let (app, _) = app_with(|c| c.login_max_failures = 2).await;
    user(&app, email).await;
    let b = Browser::new(&app);
    for _ in 0..2 {
        attempt(&b, &app.base, email, "no", None).await;
    }
    assert_eq!(attempt(&b, &app.base, email, PASSWORD, None).await.0, 429);
    (app, b)
}

#[tokio::test]
async fn the_unlock_command_path_lifts_a_lock() {
    let (app, b) = locked_out("cal@example.com").await;
    custos::identity::bruteforce::unlock_account(app.state.ephemeral.as_ref(), " cal@Example.COM")
        .await
        .unwrap();
    assert_eq!(
        attempt(&b, &app.base, "cal@example.com", PASSWORD, None)
            .await
            .0,
        303
    );
}

#[tokio::test]
async fn a_spoofed_x_forwarded_for_is_ignored_without_trusted_proxies() {
    let limits = |c: &mut custos::config::Config| {
        c.login_max_failures = 100;
        c.login_max_failures_per_ip = 3;
    };
    let (app, _) = app_with(limits).await;
    let b = Browser::new(&app);
    // Every attempt claims another client address and another account: all count against 127.0.0.1.
    for i in 0..3 {
        let (s, _) = attempt(
            &b,
            &app.base,
            &format!("u{i}@example.com"),
            "x",
            Some(&format!("203.0.113.{i}")),
        )
        .await;
        assert_eq!(s, 401);
    }
    let (s, body) = attempt(&b, &app.base, "u9@example.com", "x", Some("198.51.100.77")).await;
    assert_eq!(s, 429);
    assert!(body.contains(LOCKED));
    let throttled = app.state.store.audit_events(100).await.unwrap();
    assert!(
        throttled
            .iter()
            .all(|e| e.ip.as_deref().is_none_or(|ip| ip == "127.0.0.1"))
    );

    // Behind a trusted proxy (the test client's own address) the header is believed.
    let (app, _) = app_with(move |c| {
        limits(c);
        c.trusted_proxies = "127.0.0.1/32".into();
    })
    .await;
    let b = Browser::new(&app);
    for i in 0..6 {
        let (s, _) = attempt(
            &b,
            &app.base,
            &format!("u{i}@example.com"),
            "x",
            Some(&format!("203.0.113.{i}")),
        )
        .await;
        assert_eq!(s, 401, "attempt {i}");
    }
    let ips: Vec<String> = app
        .state
        .store
        .audit_events(100)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == "login_failed")
        .filter_map(|e| e.ip)
        .collect();
    assert!(ips.contains(&"203.0.113.5".to_string()), "{ips:?}");
}

#[tokio::test]
async fn custos_user_unlock_lifts_a_lock_through_redis() {
    let (app, b) = locked_out("dan@example.com").await;
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_custos"));
    cmd.env_clear()
        .current_dir(dir.path())
        .env(
            "CUSTOS_DATABASE_URL",
            format!("sqlite://{}/custos.db?mode=rwc", dir.path().display()),
        )
        .env("CUSTOS_KEYS_DIR", dir.path().join("keys"))
        .args(["user", "unlock", "--email", "dan@example.com"]);
    let raw = &app.state.settings.raw;
    let Some(url) = &raw.redis_url else {
        // The in-process counters belong to the running server: the command says so and fails.
        let out = cmd.output().unwrap();
        assert_eq!(out.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&out.stderr).contains("restart it"));
        return;
    };
    let out = cmd
        .env("CUSTOS_REDIS_URL", &url.0)
        .env("CUSTOS_REDIS_PREFIX", &raw.redis_prefix)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        attempt(&b, &app.base, "dan@example.com", PASSWORD, None)
            .await
            .0,
        303
    );
}
