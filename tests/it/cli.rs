//! The binary as an operator runs it: configuration errors, restarts, the CLI, secrets at rest.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use custos::config::SecretString;

use crate::support::TestApp;

const BIN: &str = env!("CARGO_BIN_EXE_custos");

/// The database each test directory uses: registered by `use_test_database` (a fresh Postgres one in the
/// backend run), else a SQLite file inside the directory.
static DATABASES: Mutex<Vec<(PathBuf, String)>> = Mutex::new(Vec::new());

pub(crate) async fn use_test_database(dir: &Path) {
    if let Some(url) = crate::support::fresh_database().await {
        DATABASES.lock().unwrap().push((dir.to_path_buf(), url));
    }
}

pub(crate) fn database_for(dir: &Path) -> String {
    DATABASES
        .lock()
        .unwrap()
        .iter()
        .find(|(d, _)| d == dir)
        .map(|(_, u)| u.clone())
        .unwrap_or_else(|| format!("sqlite://{}/data/custos.db?mode=rwc", dir.display()))
}

fn base_cmd(dir: &Path) -> Command {
    let mut c = Command::new(BIN);
    // A clean environment: nothing from the developer's shell (CUSTOS_*, custos.toml) leaks in.
    c.env_clear()
        .current_dir(dir)
        .env("CUSTOS_DATABASE_URL", database_for(dir))
        .env("CUSTOS_KEYS_DIR", dir.join("keys"))
        .env("CUSTOS_LOG_FORMAT", "json")
        .env("CUSTOS_ARGON2_MEMORY_KIB", "64")
        .env("CUSTOS_ARGON2_ITERATIONS", "1");
    if let Some((url, prefix)) = crate::support::test_redis() {
        c.env("CUSTOS_REDIS_URL", url)
            .env("CUSTOS_REDIS_PREFIX", prefix);
    }
    c
}

pub(crate) fn cli(dir: &Path, args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> Output {
    let mut c = base_cmd(dir);
    c.args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        c.env(k, v);
    }
    let mut child = c.spawn().unwrap();
    if let Some(s) = stdin {
        child.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
    } else {
        drop(child.stdin.take());
    }
    // A command that should exit but serves instead must fail the test, not hang it.
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        if rx.recv_timeout(Duration::from_secs(60)).is_err() {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
        }
    });
    let out = child.wait_with_output().unwrap();
    let _ = tx.send(());
    out
}

pub(crate) struct Server {
    child: Child,
    pub(crate) base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `custos serve` on 127.0.0.1:0 and reads the bound address from its JSON log.
pub(crate) fn serve(dir: &Path) -> Server {
    let mut child = base_cmd(dir)
        .env("CUSTOS_LISTEN", "127.0.0.1:0")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
                && v["message"] == "custos listening"
            {
                let _ = tx.send(v["listen"].as_str().unwrap_or_default().to_string());
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("server reports its address");
    Server {
        child,
        base: format!("http://{addr}"),
    }
}

async fn kids(base: &str) -> Vec<String> {
    let v: serde_json::Value = reqwest::get(format!("{base}/.well-known/jwks.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut k: Vec<String> = v["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_string())
        .collect();
    k.sort();
    k
}

async fn cc_token(base: &str, id: &str, secret: &str) -> reqwest::StatusCode {
    reqwest::Client::new()
        .post(format!("{base}/token"))
        .basic_auth(id, Some(secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn restart_reuses_keys_and_clients() {
    let dir = tempfile::tempdir().unwrap();
    use_test_database(dir.path()).await;
    let first = serve(dir.path());
    let kids1 = kids(&first.base).await;
    assert_eq!(kids1.len(), 3);
    let out = cli(
        dir.path(),
        &[
            "client", "create", "--name", "svc", "--scope", "read", "--json",
        ],
        &[],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let c: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let (id, secret) = (
        c["id"].as_str().unwrap().to_string(),
        c["client_secret"].as_str().unwrap().to_string(),
    );
    assert_eq!(cc_token(&first.base, &id, &secret).await, 200);
    drop(first);

    let kek_before = std::fs::read(dir.path().join("keys/kek")).unwrap();
    let second = serve(dir.path());
    assert_eq!(
        kids(&second.base).await,
        kids1,
        "the same keys after a restart"
    );
    assert_eq!(
        cc_token(&second.base, &id, &secret).await,
        200,
        "the same clients after a restart"
    );
    assert_eq!(
        std::fs::read(dir.path().join("keys/kek")).unwrap(),
        kek_before
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("keys/kek"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let out = cli(dir.path(), &["keys", "list", "--json"], &[], None);
    let keys: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(keys.as_array().unwrap().len(), 3);
    assert!(
        keys.as_array()
            .unwrap()
            .iter()
            .all(|k| k["state"] == "active")
    );
}

#[tokio::test]
async fn cli_manages_clients_and_users() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    use_test_database(d).await;
    let out = cli(
        d,
        &[
            "client",
            "create",
            "--name",
            "web",
            "--id",
            "web-app",
            "--redirect-uri",
            "https://app.example.com/cb",
            "--scope",
            "openid",
            "--json",
        ],
        &[],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["id"], "web-app");
    assert_eq!(
        v["grant_types"],
        serde_json::json!(["authorization_code", "refresh_token"])
    );
    let first_secret = v["client_secret"].as_str().unwrap().to_string();
    assert!(
        URL_SAFE_NO_PAD.decode(&first_secret).unwrap().len() >= 32,
        "≥ 256-bit secret"
    );

    let out = cli(
        d,
        &["client", "create", "--name", "dup", "--id", "web-app"],
        &[],
        None,
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("already exists"));
    let out = cli(
        d,
        &[
            "client",
            "create",
            "--name",
            "bad",
            "--redirect-uri",
            "http://evil.example.com/cb",
        ],
        &[],
        None,
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("redirect_uri"));

    let out = cli(
        d,
        &["client", "rotate-secret", "web-app", "--json"],
        &[],
        None,
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_ne!(v["client_secret"].as_str().unwrap(), first_secret);
    let out = cli(d, &["client", "show", "web-app", "--json"], &[], None);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        v.get("client_secret").is_none() && v.get("secret_hash").is_none(),
        "show never prints a secret: {v}"
    );
    let out = cli(d, &["client", "list"], &[], None);
    assert!(String::from_utf8_lossy(&out.stdout).contains("web-app"));
    assert!(
        cli(d, &["client", "delete", "web-app"], &[], None)
            .status
            .success()
    );
    assert!(
        !cli(d, &["client", "delete", "web-app"], &[], None)
            .status
            .success()
    );

    let out = cli(
        d,
        &[
            "user",
            "create",
            "--email",
            "Ann@Example.COM",
            "--name",
            "Ann",
            "--password-stdin",
            "--json",
        ],
        &[],
        Some("a long enough passphrase\n"),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = cli(
        d,
        &[
            "user",
            "create",
            "--email",
            "bob@example.com",
            "--name",
            "Bob",
            "--password-stdin",
        ],
        &[],
        Some("short\n"),
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("password"));
    let out = cli(d, &["user", "list", "--json"], &[], None);
    let users: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(users[0]["email"], "Ann@example.com");
    assert!(users[0].get("password_hash").is_none());
    let out = cli(
        d,
        &[
            "user",
            "set-password",
            "--email",
            "ann@EXAMPLE.com",
            "--password-stdin",
        ],
        &[],
        Some("another long passphrase\n"),
    );
    assert!(!out.status.success(), "the local part is case-sensitive");
    let out = cli(
        d,
        &[
            "user",
            "set-password",
            "--email",
            "Ann@EXAMPLE.com",
            "--password-stdin",
        ],
        &[],
        Some("another long passphrase\n"),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // On SQLite, the file itself never holds the password (on Postgres there is no file to scan).
    if database_for(d).starts_with("sqlite:") {
        let db = std::fs::read(d.join("data/custos.db")).unwrap();
        assert!(!contains(&db, b"another long passphrase"));
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn bad_configuration_exits_before_binding() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Hold a port: a process that got as far as binding would fail with a bind error instead.
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let listen = held.local_addr().unwrap().to_string();
    let file = d.join("a-file");
    std::fs::write(&file, "x").unwrap();
    let cases: [(&str, &str, &[&str]); 5] = [
        ("CUSTOS_ISSUER", "not a url", &["`issuer`", "not a url"]),
        (
            "CUSTOS_LOG_LEVEL",
            "loud",
            &["`log_level`", "loud", "allowed"],
        ),
        (
            "CUSTOS_KEYS_DIR",
            file.to_str().unwrap(),
            &["`keys_dir`", "not a directory"],
        ),
        (
            "CUSTOS_ACCESS_TOKEN_ALG",
            "HS256",
            &["`access_token_alg`", "HS256", "ES256"],
        ),
        (
            "CUSTOS_PASSWORD_HASHING",
            "threads",
            &["PASSWORD_HASHING", "threads", "`pool`", "`in_place`"],
        ),
    ];
    for (key, value, expect) in cases {
        let out = cli(
            d,
            &["serve"],
            &[("CUSTOS_LISTEN", &listen), (key, value)],
            None,
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{key}: {err}");
        for e in expect {
            assert!(err.contains(e), "{key}: expected {e:?} in {err}");
        }
        assert!(!err.contains("bind"), "{err}");
    }
    // A secret's value never appears in the message.
    let out = cli(
        d,
        &["serve"],
        &[("CUSTOS_KEK", "dG9vLXNob3J0LXNlY3JldA==")],
        None,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        err.contains("`kek`") && !err.contains("dG9vLXNob3J0LXNlY3JldA"),
        "{err}"
    );
    // An unknown key in the file.
    let toml = d.join("custos.toml");
    std::fs::write(&toml, "isuer = \"https://typo.example\"\n").unwrap();
    let out = cli(d, &["--config", toml.to_str().unwrap(), "serve"], &[], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("isuer"));
}

#[test]
fn config_check_redacts_secrets_and_layers_sources() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let toml = d.join("custos.toml");
    std::fs::write(
        &toml,
        "issuer = \"https://from-file.example\"\naccess_token_ttl_secs = 600\n",
    )
    .unwrap();
    let kek = STANDARD.encode([7u8; 32]);
    let out = cli(
        d,
        &["--config", toml.to_str().unwrap(), "config", "check"],
        &[
            (
                "CUSTOS_DATABASE_URL",
                "postgres://custos:hunter2@db.internal/custos",
            ),
            ("CUSTOS_KEK", &kek),
            ("CUSTOS_ACCESS_TOKEN_TTL_SECS", "300"),
        ],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(
        s.contains("issuer = \"https://from-file.example\""),
        "file over defaults: {s}"
    );
    assert!(
        s.contains("access_token_ttl_secs = 300"),
        "environment over file: {s}"
    );
    assert!(!s.contains("hunter2") && !s.contains(&kek), "{s}");
    assert!(
        s.contains("postgres://custos:***@db.internal/custos"),
        "{s}"
    );
}

#[tokio::test]
async fn secrets_at_rest_are_hashed_or_sealed() {
    let dir = tempfile::tempdir().unwrap();
    let db_path: PathBuf = dir.path().join("custos.db");
    let keys_dir = dir.path().join("keys");
    let generated = Arc::new(Mutex::new(Vec::new()));
    let app = TestApp::builder()
        .with_config(|c| {
            c.database_url = SecretString(format!("sqlite://{}?mode=rwc", db_path.display()));
            c.kek = None;
            c.keys_dir = keys_dir.clone();
        })
        .recording_keys(generated.clone())
        .start()
        .await;
    let client = app.service_client().await;
    assert_eq!(cc_token(&app.base, &client.id, &client.secret).await, 200);
    app.state.store.connection().close_by_ref().await.unwrap();

    let mut blobs: Vec<(String, Vec<u8>)> = Vec::new();
    for d in [dir.path().to_path_buf(), keys_dir.clone()] {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_file() {
                blobs.push((p.display().to_string(), std::fs::read(&p).unwrap()));
            }
        }
    }
    assert!(blobs.iter().any(|(n, _)| n.ends_with("custos.db")));
    let keys = generated.lock().unwrap().clone();
    assert_eq!(keys.len(), 3);
    for (name, bytes) in &blobs {
        assert!(
            !contains(bytes, client.secret.as_bytes()),
            "client secret in {name}"
        );
        assert!(
            !contains(bytes, b"PRIVATE KEY"),
            "PEM private key in {name}"
        );
        for k in &keys {
            for form in [
                k.clone(),
                STANDARD.encode(k).into_bytes(),
                URL_SAFE_NO_PAD.encode(k).into_bytes(),
            ] {
                // The private-key part of the PKCS#8 document (past its algorithm header).
                let tail = &form[form.len() / 2..];
                assert!(!contains(bytes, tail), "unsealed private key in {name}");
            }
        }
    }
}
