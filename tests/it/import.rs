//! `custos user import`: bcrypt, PBKDF2-SHA256 and argon2 hashes from a JSON-lines file; bad lines
//! reported by number while the rest import; a re-run changes nothing; imported people sign in with
//! their old password and are rehashed to argon2id at that sign-in.

use std::num::NonZeroU32;
use std::process::Command;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use serde_json::json;

use crate::accounts::{audit_kinds, sign_in};
use crate::browser::Browser;
use crate::support::TestApp;

fn pbkdf2(pw: &str, salt: &[u8], rounds: u32) -> [u8; 32] {
    let mut out = [0u8; 32];
    aws_lc_rs::pbkdf2::derive(
        aws_lc_rs::pbkdf2::PBKDF2_HMAC_SHA256,
        NonZeroU32::new(rounds).unwrap(),
        salt,
        pw.as_bytes(),
        &mut out,
    );
    out
}

/// (email, old password, hash) for every supported format.
fn people() -> Vec<(String, String, String)> {
    let bcrypt_h = bcrypt::hash("bcrypt old password", 4).unwrap();
    let salt = b"0123456789abcdef";
    let phc = format!(
        "$pbkdf2-sha256$i=1000,l=32${}${}",
        STANDARD_NO_PAD.encode(salt),
        STANDARD_NO_PAD.encode(pbkdf2("phc old password", salt, 1000))
    );
    let passlib = format!(
        "$pbkdf2-sha256$1000${}${}",
        STANDARD_NO_PAD.encode(salt).replace('+', "."),
        STANDARD_NO_PAD
            .encode(pbkdf2("passlib old password", salt, 1000))
            .replace('+', ".")
    );
    let django = format!(
        "pbkdf2_sha256$1000$djangosalt${}",
        STANDARD.encode(pbkdf2("django old password", b"djangosalt", 1000))
    );
    let argon2i = {
        use argon2::password_hash::PasswordHasher;
        argon2::Argon2::new(
            argon2::Algorithm::Argon2i,
            argon2::Version::V0x13,
            argon2::Params::new(64, 1, 1, None).unwrap(),
        )
        .hash_password(b"argon2i old password")
        .unwrap()
        .to_string()
    };
    vec![
        (
            "b@example.com".into(),
            "bcrypt old password".into(),
            bcrypt_h,
        ),
        ("p@example.com".into(), "phc old password".into(), phc),
        (
            "l@example.com".into(),
            "passlib old password".into(),
            passlib,
        ),
        ("d@example.com".into(), "django old password".into(), django),
        (
            "a@example.com".into(),
            "argon2i old password".into(),
            argon2i,
        ),
    ]
}

fn jsonl(people: &[(String, String, String)]) -> String {
    let mut lines: Vec<String> = people
        .iter()
        .map(|(e, _, h)| json!({"email": e, "name": "Imported Person", "password_hash": h, "email_verified": true}).to_string())
        .collect();
    // Bad lines: line 2 is not JSON, line 4 an unsupported hash, line 6 a bad address, line 8 unknown field.
    lines.insert(1, "{not json".into());
    lines.insert(
        3,
        json!({"email": "md5@example.com", "name": "M", "password_hash": "$1$abc$def"}).to_string(),
    );
    lines.insert(
        5,
        json!({"email": "nope", "name": "N", "password_hash": people[0].2}).to_string(),
    );
    lines.insert(
        7,
        json!({"email": "x@example.com", "name": "X", "password_hash": people[0].2, "admin": true})
            .to_string(),
    );
    lines.join("\n") + "\n"
}

#[tokio::test]
async fn imported_hashes_sign_in_and_are_rehashed_to_argon2id() {
    let app = TestApp::builder()
        .with_config(|c| c.login_failure_delay_ms = 0)
        .start()
        .await;
    let people = people();
    let text = jsonl(&people);
    let r = custos::identity::import::import(
        &app.state.store,
        &text,
        custos::clock::Clock::now(app.clock.as_ref()),
    )
    .await
    .unwrap();
    assert_eq!(r.imported, 5);
    assert_eq!(
        r.errors.iter().map(|e| e.0).collect::<Vec<_>>(),
        vec![2, 4, 6, 8]
    );
    // Idempotent.
    let again = custos::identity::import::import(
        &app.state.store,
        &text,
        custos::clock::Clock::now(app.clock.as_ref()),
    )
    .await
    .unwrap();
    assert_eq!((again.imported, again.skipped), (0, 5));

    for (email, pw, old) in &people {
        let b = Browser::new(&app);
        assert_eq!(
            sign_in(&b, &app, email, "not the old password")
                .await
                .status(),
            401
        );
        let u = app.state.store.user_by_email(email).await.unwrap().unwrap();
        assert_eq!(
            u.password_hash.as_deref(),
            Some(old.as_str()),
            "a failure does not rehash"
        );
        let ok = sign_in(&b, &app, email, pw).await;
        assert_eq!(ok.status(), 200, "{email}: {ok:?}");
        let u = app.state.store.user_by_email(email).await.unwrap().unwrap();
        let h = u.password_hash.unwrap();
        assert!(
            h.starts_with("$argon2id$v=19$m=64,t=1,p=1$"),
            "{email}: {h}"
        );
        // And the new hash works.
        assert_eq!(
            sign_in(&Browser::new(&app), &app, email, pw).await.status(),
            200
        );
    }
    let kinds = audit_kinds(&app).await;
    assert_eq!(
        kinds.iter().filter(|k| *k == "password_rehashed").count(),
        5
    );
    assert_eq!(kinds.iter().filter(|k| *k == "user_imported").count(), 5);
}

#[tokio::test]
async fn the_cli_reports_bad_lines_by_number_and_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("users.jsonl");
    std::fs::write(&file, jsonl(&people())).unwrap();
    let db = match crate::support::fresh_database().await {
        Some(url) => url,
        None => format!("sqlite://{}/custos.db?mode=rwc", dir.path().display()),
    };
    let run = || {
        Command::new(env!("CARGO_BIN_EXE_custos"))
            .env_clear()
            .current_dir(dir.path())
            .env("CUSTOS_DATABASE_URL", &db)
            .env("CUSTOS_KEYS_DIR", dir.path().join("keys"))
            .args(["user", "import", file.to_str().unwrap(), "--json"])
            .output()
            .unwrap()
    };
    let first = run();
    let stderr = String::from_utf8_lossy(&first.stderr);
    assert_eq!(first.status.code(), Some(1), "{stderr}");
    for n in [2, 4, 6, 8] {
        assert!(stderr.contains(&format!("users.jsonl:{n}: ")), "{stderr}");
    }
    assert!(
        stderr.contains("imported 5, skipped 0 (address already has an account), 4 bad lines"),
        "{stderr}"
    );
    let report: serde_json::Value = serde_json::from_slice(&first.stdout).unwrap();
    assert_eq!(report["imported"], 5);
    let second = run();
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(
        stderr.contains("imported 0, skipped 5 (address already has an account), 4 bad lines"),
        "{stderr}"
    );
}
