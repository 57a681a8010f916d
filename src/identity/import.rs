//! `custos user import FILE.jsonl`: accounts with their existing password hashes, one JSON object per
//! line:
//!
//! ```json
//! {"email": "ada@example.com", "name": "Ada Lovelace", "password_hash": "$2b$12$…", "email_verified": true}
//! ```
//!
//! Hashes may be argon2 (PHC), bcrypt (`$2a$`/`$2b$`/`$2y$`) or PBKDF2-SHA256 (PHC, passlib's modular
//! crypt, Django's `pbkdf2_sha256$…`); they are kept as they are, and rehashed to argon2id at the
//! person's first sign-in. A bad line is reported with its number and the others still import; an
//! address that already has an account is skipped, so running the same file again changes nothing.

use serde::Deserialize;
use serde_json::json;

use super::normalize_email;
use super::password;
use crate::audit::{self, Event};
use crate::store::{Store, StoreError, User};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    email: String,
    name: String,
    password_hash: String,
    #[serde(default)]
    email_verified: bool,
    #[serde(default)]
    disabled: bool,
}

#[derive(Debug, Default)]
pub struct Report {
    pub imported: u64,
    /// Addresses that already had an account (a re-run, or a duplicate in the file).
    pub skipped: u64,
    /// (line number, problem) for every line that was not imported.
    pub errors: Vec<(usize, String)>,
}

fn check(l: &Line) -> Result<(String, String, &'static str), String> {
    let email = normalize_email(&l.email).map_err(|e| format!("email: {e}"))?;
    let name = crate::http::account::check_name(&l.name).map_err(|e| format!("name: {e}"))?;
    let scheme = password::imported_scheme(l.password_hash.trim())
        .map_err(|e| format!("password_hash: {e}"))?;
    Ok((email, name, scheme))
}

/// Imports every good line of `text`.
pub async fn import(store: &Store, text: &str, now: i64) -> Result<Report, StoreError> {
    let mut r = Report::default();
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        if raw.trim().is_empty() {
            continue;
        }
        let line: Line = match serde_json::from_str(raw) {
            Ok(l) => l,
            Err(e) => {
                r.errors
                    .push((n, format!("not a JSON object of the expected shape: {e}")));
                continue;
            }
        };
        let (email, name, scheme) = match check(&line) {
            Ok(v) => v,
            Err(e) => {
                r.errors.push((n, e));
                continue;
            }
        };
        let u = User {
            id: uuid::Uuid::new_v4().to_string(),
            email,
            email_verified: line.email_verified,
            name,
            password_hash: Some(line.password_hash.trim().to_string()),
            disabled: line.disabled,
            created_at: now,
            updated_at: now,
        };
        match store.insert_user(&u).await {
            Ok(()) => {
                r.imported += 1;
                audit::record(
                    store,
                    now,
                    Event::new("user_imported")
                        .actor("cli")
                        .subject(&u.id)
                        .details(json!({"scheme": scheme})),
                )
                .await;
            }
            Err(StoreError::Conflict(_)) => r.skipped += 1,
            Err(e) => return Err(e),
        }
    }
    Ok(r)
}
