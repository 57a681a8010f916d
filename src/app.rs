//! Assembly: `build_state` turns a validated config into the running parts (database, ephemeral store,
//! keys); `router` and `run` serve them. Tests and `main` call the same functions.

use std::sync::Arc;
use std::time::Duration;

use axum::http::HeaderValue;
use bytes::Bytes;
use tokio::net::TcpListener;

use crate::clients::ClientDirectory;
use crate::clock::{Clock, SystemClock};
use crate::config::Settings;
use crate::ephemeral::EphemeralStore;
use crate::ephemeral::memory::MemoryStore;
use crate::ephemeral::redis::RedisStore;
use crate::keys::jwk::{self, KeyError, Pkcs8};
use crate::keys::rotation::{KeyAdmin, KeyService};
use crate::keys::seal::{Kek, SealError};
use crate::keys::{KeyGenerator, Keyring, KeysError, Signer};
use crate::store::{Store, StoreError};

#[derive(Clone)]
pub struct AppState {
    pub settings: Arc<Settings>,
    pub store: Store,
    pub ephemeral: Arc<dyn EphemeralStore>,
    pub signer: Arc<dyn Signer>,
    pub clock: Arc<dyn Clock>,
    pub clients: Arc<ClientDirectory>,
    pub discovery: Bytes,
    pub jwks_cache_control: HeaderValue,
    /// Seals what must survive a database dump unusable (refresh successors in the grace window).
    pub kek: Arc<Kek>,
    /// Key rotation on this replica: applies the schedule and reloads `signer`'s keys.
    pub keys: Arc<KeyService>,
    /// An argon2id hash of nothing, made on first use with the configured parameters: unknown emails
    /// are checked against it so that they cost what a real check costs.
    pub dummy_hash: Arc<tokio::sync::OnceCell<String>>,
    /// Runs password hashes: at most one per core at a time, in place or on the blocking pool.
    pub hasher: Arc<crate::identity::password::Hasher>,
    /// Delivers queued mail (`mail_transport`: the outbox folder or SMTP).
    pub mailer: Arc<dyn crate::mail::Mailer>,
    /// Wakes this replica's back-channel logout deliverer when a session end queued notices.
    pub backchannel: Arc<tokio::sync::Notify>,
    /// The key of the stand-alone forms' CSRF tokens (`http::csrf`), derived from the KEK once.
    pub csrf_key: aws_lc_rs::hmac::Key,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("configuration key `keys_dir` ({path}): {source}")]
    Kek { path: String, source: SealError },
    #[error("configuration key `kek`: {0}")]
    BadKek(SealError),
    #[error("database: {0}")]
    Store(#[from] StoreError),
    #[error("signing keys: {0}")]
    Keys(#[from] KeysError),
    #[error("configuration key `redis_url`: {0}")]
    Redis(String),
    #[error("mail: {0}")]
    Mail(String),
}

pub struct Options {
    pub clock: Arc<dyn Clock>,
    pub key_generator: Arc<KeyGenerator>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            clock: Arc::new(SystemClock),
            key_generator: Arc::new(generate_key),
        }
    }
}

fn generate_key(alg: crate::config::Alg) -> Result<Pkcs8, KeyError> {
    jwk::generate(alg)
}

pub fn load_kek(settings: &Settings) -> Result<Kek, StartError> {
    match &settings.raw.kek {
        Some(k) => Kek::from_base64(&k.0).map_err(StartError::BadKek),
        None => Kek::load_or_create(&settings.raw.keys_dir).map_err(|source| StartError::Kek {
            path: settings.raw.keys_dir.display().to_string(),
            source,
        }),
    }
}

/// Connects to the configured database with its settings (no migrations).
async fn connect_store(settings: &Settings) -> Result<Store, StoreError> {
    Store::connect_with(
        &settings.raw.database_url.0,
        settings.raw.sqlite_synchronous,
    )
    .await
}

/// Connects to the database and runs pending migrations (under the start-up lock).
pub async fn open_store(settings: &Settings) -> Result<Store, StartError> {
    let store = connect_store(settings).await?;
    let lock = store.startup_lock().await?;
    store.migrate().await?;
    release(lock).await?;
    Ok(store)
}

async fn release(lock: Option<sea_orm::DatabaseTransaction>) -> Result<(), StoreError> {
    if let Some(tx) = lock {
        tx.commit().await?;
    }
    Ok(())
}

pub async fn build_state(settings: Settings, opts: Options) -> Result<AppState, StartError> {
    let kek = load_kek(&settings)?;
    let store = connect_store(&settings).await?;
    let now = opts.clock.now();
    // Replicas starting together on an empty database must neither migrate twice nor each generate a
    // first key per algorithm: both happen under one lock.
    let lock = store.startup_lock().await?;
    store.migrate().await?;
    let keyring =
        Arc::new(Keyring::load_or_init(&store, &kek, now, opts.key_generator.clone()).await?);
    release(lock).await?;
    let kek = Arc::new(kek);
    let settings = Arc::new(settings);
    let ephemeral: Arc<dyn EphemeralStore> = match &settings.raw.redis_url {
        Some(url) => Arc::new(
            RedisStore::connect(&url.0, &settings.raw.redis_prefix)
                .await
                .map_err(|e| StartError::Redis(e.to_string()))?,
        ),
        None => Arc::new(MemoryStore::new(
            settings.raw.ephemeral_max_entries,
            opts.clock.clone(),
        )),
    };
    let discovery = Bytes::from(crate::oauth::discovery::metadata(&settings).to_string());
    let jwks_cache_control = HeaderValue::from_str(&format!(
        "public, max-age={}",
        settings.raw.jwks_max_age_secs
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("public, max-age=300"));
    let clients = Arc::new(ClientDirectory::new(
        store.clone(),
        Duration::from_secs(settings.raw.client_cache_ttl_secs),
    ));
    let keys = Arc::new(KeyService::new(
        KeyAdmin::new(
            store.clone(),
            kek.clone(),
            settings.clone(),
            opts.key_generator.clone(),
            "scheduler",
        ),
        keyring.clone(),
        opts.clock.clone(),
    ));
    let mailer =
        crate::mail::from_settings(&settings).map_err(|e| StartError::Mail(e.to_string()))?;
    let hasher = Arc::new(crate::identity::password::Hasher::new(
        settings.raw.password_hashing,
    ));
    Ok(AppState {
        settings,
        store,
        ephemeral,
        signer: keyring,
        clock: opts.clock,
        clients,
        discovery,
        jwks_cache_control,
        keys,
        dummy_hash: Arc::new(tokio::sync::OnceCell::new()),
        hasher,
        mailer,
        backchannel: Arc::new(tokio::sync::Notify::new()),
        csrf_key: kek.derive_hmac_key(crate::http::csrf::KEY_LABEL),
        kek,
    })
}

pub fn router(state: AppState) -> axum::Router {
    crate::http::router(state)
}

/// Serves until SIGINT or SIGTERM, then finishes in-flight requests. Key upkeep (rotation schedule,
/// reloads), housekeeping (`jobs`) and back-channel logout delivery (`backchannel`) run alongside.
pub async fn run(listener: TcpListener, state: AppState) -> std::io::Result<()> {
    let upkeep = state.keys.clone().spawn();
    let housekeeping = crate::jobs::spawn(state.clone());
    let mail = crate::mail::spawn(state.clone());
    let backchannel = crate::backchannel::spawn(state.clone());
    let result = serve(listener, state).await;
    upkeep.abort();
    housekeeping.abort();
    mail.abort();
    // A delivery cut short stays leased until its lease passes, then any replica retries it.
    backchannel.abort();
    result
}

async fn serve(listener: TcpListener, state: AppState) -> std::io::Result<()> {
    let app = router(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}
