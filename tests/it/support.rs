//! `TestApp`: a real Custos on 127.0.0.1:0 with a SQLite file of its own (or a fresh Postgres
//! database), the in-process ephemeral store (or Redis), a FixedClock, cheap argon2 parameters and the
//! real migrations.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};

use custos::app::{self, AppState, Options};
use custos::clients::{self, NewClient};
use custos::clock::FixedClock;
use custos::config::{Alg, Config, SecretString};
use custos::keys::jwk::{self, Pkcs8};
use custos::keys::seal::Kek;
use zeroize::Zeroizing;

/// 2026-11-25T00:00:00Z: tests run at a fixed time unless they move the clock.
pub const T0: i64 = 1_795_564_800;

/// RSA generation is slow in a debug build: one key set per test binary.
fn shared_keys() -> &'static HashMap<Alg, Vec<u8>> {
    static KEYS: OnceLock<HashMap<Alg, Vec<u8>>> = OnceLock::new();
    KEYS.get_or_init(|| {
        Alg::ALL
            .into_iter()
            .map(|a| (a, jwk::generate(a).unwrap().0.to_vec()))
            .collect()
    })
}

pub struct Builder {
    config: Config,
    record_keys: Option<Arc<Mutex<Vec<Vec<u8>>>>>,
}

impl Builder {
    pub fn with_config(mut self, f: impl FnOnce(&mut Config)) -> Self {
        f(&mut self.config);
        self
    }

    /// Generate fresh keys (each replica its own), as a real first start does.
    pub fn fresh_keys(self) -> Self {
        self.recording_keys(Arc::new(Mutex::new(Vec::new())))
    }

    /// Generate fresh keys and remember their private bytes (for the secrets-at-rest test).
    pub fn recording_keys(mut self, sink: Arc<Mutex<Vec<Vec<u8>>>>) -> Self {
        self.record_keys = Some(sink);
        self
    }

    pub async fn start(self) -> TestApp {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut config = self.config;
        // The default in-memory backends give way to the backends under test when they are set. Without
        // Postgres, a SQLite file, as operators run it: the writer's own connection (store/direct.rs),
        // WAL and checkpoints are then part of every test.
        let mut db_dir = None;
        if config.database_url.0 == "sqlite::memory:" {
            let url = match fresh_database().await {
                Some(url) => url,
                None => {
                    let dir = tempfile::tempdir().expect("a temporary directory");
                    let url = format!(
                        "sqlite://{}?mode=rwc",
                        dir.path().join("custos.db").display()
                    );
                    db_dir = Some(dir);
                    url
                }
            };
            config.database_url = SecretString(url);
        }
        if config.redis_url.is_none()
            && let Some((url, prefix)) = test_redis()
        {
            config.redis_url = Some(SecretString(url));
            config.redis_prefix = prefix;
        }
        // Replicas behind one load balancer share an issuer: keep one that a test chose.
        if config.issuer == Config::default().issuer {
            config.issuer = format!("http://{addr}");
        }
        // A test that needs a host name (passkeys: no IP-address relying parties) asks for
        // "http://localhost:0" and gets the real port.
        if config.issuer == "http://localhost:0" {
            config.issuer = format!("http://localhost:{}", addr.port());
        }
        config.listen = addr.to_string();
        let settings = config.validate().expect("test config is valid");
        let clock = Arc::new(FixedClock::new(T0));
        let key_generator: Arc<custos::keys::KeyGenerator> = match self.record_keys {
            Some(sink) => Arc::new(move |alg| {
                let k = jwk::generate(alg)?;
                sink.lock().unwrap().push(k.0.to_vec());
                Ok(k)
            }),
            None => Arc::new(|alg| Ok(Pkcs8(Zeroizing::new(shared_keys()[&alg].clone())))),
        };
        let state = app::build_state(
            settings,
            Options {
                clock: clock.clone(),
                key_generator,
            },
        )
        .await
        .expect("app starts");
        let router = app::router(state.clone()).into_make_service_with_connect_info::<SocketAddr>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        TestApp {
            base: format!("http://{addr}"),
            state,
            clock,
            _db_dir: db_dir,
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
        }
    }
}

pub struct TestApp {
    pub base: String,
    pub state: AppState,
    pub clock: Arc<FixedClock>,
    /// The SQLite file's directory, removed with the app.
    _db_dir: Option<tempfile::TempDir>,
    pub http: reqwest::Client,
}

pub struct TestClient {
    pub id: String,
    pub secret: String,
}

impl TestApp {
    pub fn builder() -> Builder {
        let config = Config {
            database_url: SecretString("sqlite::memory:".into()),
            kek: Some(SecretString(
                Kek::generate().unwrap().to_base64().to_string(),
            )),
            keys_dir: std::env::temp_dir().join("custos-test-unused-keys"),
            argon2_memory_kib: 64,
            argon2_iterations: 1,
            log_level: "warn".into(),
            ..Config::default()
        };
        Builder {
            config,
            record_keys: None,
        }
    }

    pub async fn start() -> TestApp {
        Self::builder().start().await
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn client(&self, n: NewClient) -> TestClient {
        let (c, secret) = clients::create(&self.state.store, n, T0).await.unwrap();
        TestClient {
            id: c.id,
            secret: secret.map(|s| s.to_string()).unwrap_or_default(),
        }
    }

    /// A confidential client-credentials client with scopes read/write and one resource.
    pub async fn service_client(&self) -> TestClient {
        self.client(NewClient {
            name: "service".into(),
            scopes: vec!["read".into(), "write".into()],
            default_scopes: Some(vec!["read".into()]),
            resources: vec![
                "https://api.example.com".into(),
                "https://other.example.com".into(),
            ],
            ..Default::default()
        })
        .await
    }

    pub async fn post_form(
        &self,
        path: &str,
        form: &[(&str, &str)],
        basic: Option<(&str, &str)>,
    ) -> reqwest::Response {
        let mut req = self.http.post(self.url(path)).form(form);
        if let Some((id, secret)) = basic {
            req = req.basic_auth(id, Some(secret));
        }
        req.send().await.unwrap()
    }
}

/// Reads an error response: (status, `error`, headers).
pub async fn oauth_error(r: reqwest::Response) -> (u16, String, reqwest::header::HeaderMap) {
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let body: serde_json::Value = r.json().await.unwrap();
    (
        status,
        body["error"].as_str().unwrap_or_default().to_string(),
        headers,
    )
}

/// `CUSTOS_TEST_DATABASE_URL` (e.g. postgres://postgres@127.0.0.1:5432/custos_ci_123): each call makes
/// a new database `<name>_<n>` on that server, so tests never share state. `.ci/run` drops them all.
pub async fn fresh_database() -> Option<String> {
    use sea_orm::ConnectionTrait;
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    let base = std::env::var("CUSTOS_TEST_DATABASE_URL")
        .ok()
        .filter(|s| !s.is_empty())?;
    let mut url = url::Url::parse(&base).expect("CUSTOS_TEST_DATABASE_URL is a URL");
    let name = format!(
        "{}_{}_{}",
        url.path().trim_start_matches('/'),
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    );
    let mut admin = url.clone();
    admin.set_path("/postgres");
    let db = sea_orm::Database::connect(admin.as_str())
        .await
        .unwrap_or_else(|e| {
            panic!("CUSTOS_TEST_DATABASE_URL is set but Postgres is unreachable: {e}")
        });
    db.execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
        .await
        .unwrap_or_else(|e| panic!("cannot create test database {name}: {e}"));
    let _ = db.close().await;
    url.set_path(&format!("/{name}"));
    Some(url.to_string())
}

/// `CUSTOS_TEST_REDIS_URL`: the URL and a key prefix of this test's own.
pub fn test_redis() -> Option<(String, String)> {
    let url = std::env::var("CUSTOS_TEST_REDIS_URL")
        .ok()
        .filter(|s| !s.is_empty())?;
    Some((
        url,
        format!("custos-test:{}:", uuid::Uuid::new_v4().simple()),
    ))
}

/// Says loudly that a backend suite did not run; in a run that requires the backends
/// (`CUSTOS_TEST_REQUIRE_BACKENDS=1`, as `.ci/run` sets) that is a failure.
pub fn skip_or_fail(what: &str) {
    if std::env::var("CUSTOS_TEST_REQUIRE_BACKENDS").is_ok_and(|v| v == "1") {
        panic!("{what} is required in this CI run but is not configured");
    }
    // Straight to stderr: libtest captures eprintln! of passing tests, and a skip must be seen.
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "skipped: {what}");
}
