//! Typed configuration: built-in defaults < `custos.toml` (or `--config` / `CUSTOS_CONFIG`) < `CUSTOS_*`
//! environment variables. Validated once, before anything binds a port; an error names the key, the
//! offending value (never a secret's) and what is allowed.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};
use url::Url;

/// The keys a `CUSTOS_*` variable may set; other `CUSTOS_*` variables (CUSTOS_CONFIG, the test URLs) are
/// not configuration and are ignored here.
const KEYS: &[&str] = &[
    "issuer",
    "listen",
    "database_url",
    "sqlite_synchronous",
    "redis_url",
    "redis_prefix",
    "keys_dir",
    "kek",
    "access_token_ttl_secs",
    "id_token_ttl_secs",
    "refresh_token_ttl_secs",
    "refresh_token_idle_ttl_secs",
    "authorization_code_ttl_secs",
    "session_idle_ttl_secs",
    "session_absolute_ttl_secs",
    "session_remember_me_ttl_secs",
    "session_limit_per_user",
    "offline_access_survives_logout",
    "backchannel_timeout_secs",
    "backchannel_max_attempts",
    "backchannel_retry_base_secs",
    "require_pkce_for_confidential",
    "access_token_alg",
    "jwks_max_age_secs",
    "keys_refresh_secs",
    "key_rotation_days",
    "client_cache_ttl_secs",
    "log_format",
    "log_level",
    "argon2_memory_kib",
    "argon2_iterations",
    "argon2_parallelism",
    "password_hashing",
    "max_body_bytes",
    "ephemeral_max_entries",
    "trusted_proxies",
    "registration",
    "require_verified_email",
    "password_min_length",
    "password_min_zxcvbn_score",
    "hibp_api_url",
    "login_max_failures",
    "login_max_failures_per_ip",
    "login_failure_window_secs",
    "login_lock_secs",
    "login_failure_delay_ms",
    "mail_transport",
    "mail_outbox_dir",
    "mail_from",
    "smtp_host",
    "smtp_port",
    "smtp_tls",
    "smtp_username",
    "smtp_password",
    "mfa_required",
    "mfa_required_roles",
    "mfa_email_otp",
    "passkey_passwordless",
];

/// A configuration value that must never be printed.
#[derive(Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct SecretString(pub String);

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"<redacted>\"")
    }
}

/// Who may create an account on the registration page.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Registration {
    /// Only operators create accounts (`custos user create`, `custos user import`).
    Closed,
    /// Anyone with an email address.
    Open,
    /// Whoever holds an invitation link (`custos user invite`).
    Invite,
}

/// How mail leaves Custos.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum MailTransport {
    /// `.eml` files in `mail_outbox_dir` plus a log line: for development and the README tour.
    Outbox,
    Smtp,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS (port 587); refuses servers that do not offer it.
    Starttls,
    /// TLS from the first byte (port 465).
    Implicit,
    /// No TLS at all: only for a relay on the same host or a test server.
    None,
}

/// How SQLite waits for the disk at each commit (`PRAGMA synchronous`, in WAL mode); ignored for
/// Postgres, whose own `synchronous_commit` applies.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SqliteSynchronous {
    /// The default: a commit is in the log before the answer, so it survives a crash of the process;
    /// the log is synced to the disk at checkpoints, so a power loss or an OS crash may undo the last
    /// commits.
    Normal,
    /// Every commit is synced to the disk before the answer: it survives a power loss too, at the
    /// price of a sync per commit (see bench/README.md for what that costs refresh rotation).
    Full,
}

impl SqliteSynchronous {
    /// The pragma's value.
    pub fn pragma(self) -> &'static str {
        match self {
            SqliteSynchronous::Normal => "NORMAL",
            SqliteSynchronous::Full => "FULL",
        }
    }
}

/// Where the server computes password hashes (see `identity::password::Hasher`).
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum PasswordHashing {
    /// On tokio's blocking pool (the default): on one core, other requests preempt a running hash.
    Pool,
    /// On a one-core server (a single runtime worker), in place on the runtime thread, from start to
    /// end: a point or two more sign-ins per second when they saturate the core, but other requests
    /// wait for the hash under way. With more cores, the same as `pool`.
    InPlace,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// JWS algorithms Custos signs with.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Hash)]
pub enum Alg {
    RS256,
    ES256,
    EdDSA,
}

impl Alg {
    pub const ALL: [Alg; 3] = [Alg::RS256, Alg::ES256, Alg::EdDSA];

    pub fn as_str(self) -> &'static str {
        match self {
            Alg::RS256 => "RS256",
            Alg::ES256 => "ES256",
            Alg::EdDSA => "EdDSA",
        }
    }

    pub fn parse(s: &str) -> Option<Alg> {
        Alg::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

impl fmt::Display for Alg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The issuer identifier: scheme, host, optional port and path; no query or fragment.
    pub issuer: String,
    pub listen: String,
    pub database_url: SecretString,
    /// SQLite only: `normal` (default) or `full` (every commit synced to the disk).
    pub sqlite_synchronous: SqliteSynchronous,
    /// Unset: the in-process ephemeral store.
    pub redis_url: Option<SecretString>,
    /// Prefix of every Redis key, so several deployments (or test runs) can share one Redis.
    pub redis_prefix: String,
    pub keys_dir: PathBuf,
    /// Base64 of 32 bytes. Unset: `<keys_dir>/kek`, generated on first start with mode 0600.
    pub kek: Option<SecretString>,
    pub access_token_ttl_secs: u64,
    pub id_token_ttl_secs: u64,
    pub refresh_token_ttl_secs: u64,
    pub refresh_token_idle_ttl_secs: u64,
    pub authorization_code_ttl_secs: u64,
    /// A browser session ends after this long without use …
    pub session_idle_ttl_secs: u64,
    /// … and after this long in any case.
    pub session_absolute_ttl_secs: u64,
    /// "Remember me": the session lasts this long (idle or not) and its cookie is persistent.
    pub session_remember_me_ttl_secs: u64,
    /// Live sessions a person may have at once; a new one ends the least recently seen. 0 = no limit.
    pub session_limit_per_user: u32,
    /// Whether refresh tokens granted with `offline_access` outlive the end of the session they were
    /// granted in (logout, "end session", password change). Others are always revoked with it.
    pub offline_access_survives_logout: bool,
    /// How long one back-channel logout POST may take.
    pub backchannel_timeout_secs: u64,
    /// Delivery attempts per logout notice before it is given up (with an audit event).
    pub backchannel_max_attempts: u32,
    /// The wait after the first failed delivery; it doubles with each further failure (at most 1 h).
    pub backchannel_retry_base_secs: u64,
    /// PKCE for confidential clients too (public clients always need it).
    pub require_pkce_for_confidential: bool,
    pub access_token_alg: String,
    pub jwks_max_age_secs: u64,
    /// How often a replica re-reads the signing keys from the database (and runs rotation when due):
    /// the bound on how late it notices a rotation or a revocation.
    pub keys_refresh_secs: u64,
    /// Replace each signing key after this many days (0: only `custos keys rotate`).
    pub key_rotation_days: u64,
    /// How long a replica may serve a client record from memory; 0 reads the database every time.
    pub client_cache_ttl_secs: u64,
    pub log_format: LogFormat,
    pub log_level: String,
    pub argon2_memory_kib: u32,
    pub argon2_iterations: u32,
    pub argon2_parallelism: u32,
    /// `pool` (default) or `in_place` (on a one-core server only).
    pub password_hashing: PasswordHashing,
    pub max_body_bytes: usize,
    pub ephemeral_max_entries: usize,
    /// Comma-separated CIDRs (or addresses) of the reverse proxies whose `Forwarded` /
    /// `X-Forwarded-For` is believed. Empty (the default): the socket's peer is the client, always.
    pub trusted_proxies: String,
    /// `closed` (default), `open` or `invite`.
    pub registration: Registration,
    /// Refuse sign-in until the address is verified (default: allow, with `email_verified: false`).
    pub require_verified_email: bool,
    /// Shortest password accepted, in Unicode characters (NIST SP 800-63B: at least 8).
    pub password_min_length: usize,
    /// Passwords zxcvbn scores below this (0–4) are refused; 0 turns the check off.
    pub password_min_zxcvbn_score: u8,
    /// Have I Been Pwned range API (e.g. https://api.pwnedpasswords.com); unset = not consulted.
    pub hibp_api_url: Option<String>,
    /// Failed sign-ins per account within the window before it is locked.
    pub login_max_failures: u32,
    /// Failed sign-ins per client IP within the window before the IP is locked (0 = no IP limit).
    pub login_max_failures_per_ip: u32,
    pub login_failure_window_secs: u64,
    pub login_lock_secs: u64,
    /// A failed sign-in is answered after this delay, doubled with each further failure (0 = none).
    pub login_failure_delay_ms: u64,
    pub mail_transport: MailTransport,
    pub mail_outbox_dir: PathBuf,
    /// The From header, e.g. `Custos <no-reply@id.example.com>`.
    pub mail_from: String,
    pub smtp_host: Option<String>,
    pub smtp_port: u16,
    pub smtp_tls: SmtpTls,
    pub smtp_username: Option<String>,
    pub smtp_password: Option<SecretString>,
    /// Every sign-in needs a second factor.
    pub mfa_required: bool,
    /// Comma-separated roles whose members always need a second factor.
    pub mfa_required_roles: String,
    /// A code sent by email is a second factor for people without an authenticator app.
    pub mfa_email_otp: bool,
    /// The sign-in page offers "Sign in with a passkey": a passkey with user verification, alone.
    pub passkey_passwordless: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            issuer: "http://127.0.0.1:8080".into(),
            listen: "127.0.0.1:8080".into(),
            database_url: SecretString("sqlite://data/custos.db?mode=rwc".into()),
            sqlite_synchronous: SqliteSynchronous::Normal,
            redis_url: None,
            redis_prefix: "custos:".into(),
            keys_dir: PathBuf::from("keys"),
            kek: None,
            access_token_ttl_secs: 15 * 60,
            id_token_ttl_secs: 15 * 60,
            refresh_token_ttl_secs: 30 * 24 * 3600,
            refresh_token_idle_ttl_secs: 7 * 24 * 3600,
            authorization_code_ttl_secs: 60,
            session_idle_ttl_secs: 2 * 3600,
            session_absolute_ttl_secs: 12 * 3600,
            session_remember_me_ttl_secs: 30 * 24 * 3600,
            session_limit_per_user: 0,
            offline_access_survives_logout: false,
            backchannel_timeout_secs: 5,
            backchannel_max_attempts: 10,
            backchannel_retry_base_secs: 30,
            require_pkce_for_confidential: true,
            access_token_alg: "ES256".into(),
            jwks_max_age_secs: 300,
            keys_refresh_secs: 30,
            key_rotation_days: 30,
            client_cache_ttl_secs: 5,
            log_format: LogFormat::Text,
            log_level: "info".into(),
            argon2_memory_kib: 19456,
            argon2_iterations: 2,
            argon2_parallelism: 1,
            password_hashing: PasswordHashing::Pool,
            max_body_bytes: 64 * 1024,
            ephemeral_max_entries: 1_000_000,
            trusted_proxies: String::new(),
            registration: Registration::Closed,
            require_verified_email: false,
            password_min_length: 12,
            password_min_zxcvbn_score: 3,
            hibp_api_url: None,
            login_max_failures: 5,
            login_max_failures_per_ip: 100,
            login_failure_window_secs: 900,
            login_lock_secs: 900,
            login_failure_delay_ms: 250,
            mail_transport: MailTransport::Outbox,
            mail_outbox_dir: PathBuf::from("data/outbox"),
            mail_from: "Custos <no-reply@localhost>".into(),
            smtp_host: None,
            smtp_port: 587,
            smtp_tls: SmtpTls::Starttls,
            smtp_username: None,
            smtp_password: None,
            mfa_required: false,
            mfa_required_roles: String::new(),
            mfa_email_otp: false,
            passkey_passwordless: false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Load(String),
    #[error("configuration key `{key}`: {problem}")]
    Invalid { key: &'static str, problem: String },
}

fn invalid(key: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        problem: problem.into(),
    }
}

/// The validated, typed view the rest of the program uses.
#[derive(Clone, Debug)]
pub struct Settings {
    pub raw: Config,
    pub issuer: Url,
    /// The issuer as it appears in tokens: no trailing slash.
    pub issuer_str: String,
    pub listen: SocketAddr,
    pub access_token_alg: Alg,
    /// `trusted_proxies`, parsed.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// `mfa_required_roles`, parsed.
    pub mfa_required_roles: Vec<String>,
}

impl Settings {
    /// The ID-token algorithm for a client: its registered choice, else RS256 (OIDC's mandatory one).
    pub fn id_token_alg(&self, client: &crate::store::Client) -> Alg {
        client
            .id_token_signed_response_alg
            .as_deref()
            .and_then(Alg::parse)
            .unwrap_or(Alg::RS256)
    }
}

impl Config {
    /// Loads defaults < file < environment. `file` is the explicit path; without it `custos.toml` in the
    /// working directory is read when it exists.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        Self::load_from(file, Env::prefixed("CUSTOS_"))
    }

    pub fn load_from(file: Option<&Path>, env: Env) -> Result<Config, ConfigError> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        match file {
            Some(p) => {
                if !p.is_file() {
                    return Err(ConfigError::Load(format!(
                        "config file {} does not exist or is not a file",
                        p.display()
                    )));
                }
                fig = fig.merge(Toml::file_exact(p));
            }
            None => fig = fig.merge(Toml::file("custos.toml")),
        }
        let env = env.filter(|k| KEYS.iter().any(|key| k.as_str().eq_ignore_ascii_case(key)));
        fig.merge(env)
            .extract()
            .map_err(|e| ConfigError::Load(e.to_string()))
    }

    /// Checks every value and returns the typed view.
    pub fn validate(self) -> Result<Settings, ConfigError> {
        let issuer = Url::parse(&self.issuer).map_err(|e| {
            invalid(
                "issuer",
                format!(
                    "`{}` is not an absolute URL ({e}); expected e.g. https://id.example.com",
                    self.issuer
                ),
            )
        })?;
        if !matches!(issuer.scheme(), "https" | "http") {
            return Err(invalid(
                "issuer",
                format!(
                    "`{}` must use https (or http for local testing)",
                    self.issuer
                ),
            ));
        }
        if issuer.host_str().is_none_or(str::is_empty)
            || issuer.query().is_some()
            || issuer.fragment().is_some()
            || !issuer.username().is_empty()
            || issuer.password().is_some()
        {
            return Err(invalid(
                "issuer",
                format!(
                    "`{}` must be scheme://host[:port][/path] with no user info, query or fragment",
                    self.issuer
                ),
            ));
        }
        let issuer_str = issuer.as_str().trim_end_matches('/').to_string();

        let listen: SocketAddr = self.listen.parse().map_err(|_| {
            invalid(
                "listen",
                format!("`{}` is not an address like 127.0.0.1:8080", self.listen),
            )
        })?;

        let db = &self.database_url.0;
        if !(db.starts_with("sqlite:")
            || db.starts_with("postgres://")
            || db.starts_with("postgresql://"))
        {
            return Err(invalid(
                "database_url",
                format!(
                    "`{}` is not supported; use sqlite://PATH?mode=rwc, sqlite::memory: or postgres://…",
                    redact_url(db)
                ),
            ));
        }
        if let Some(r) = &self.redis_url
            && !(r.0.starts_with("redis://") || r.0.starts_with("rediss://"))
        {
            return Err(invalid(
                "redis_url",
                format!(
                    "`{}` must start with redis:// or rediss://",
                    redact_url(&r.0)
                ),
            ));
        }
        if self.redis_prefix.len() > 64 || self.redis_prefix.contains(['{', '}', ' ']) {
            return Err(invalid(
                "redis_prefix",
                format!(
                    "`{}` must be at most 64 characters without braces or spaces",
                    self.redis_prefix
                ),
            ));
        }
        if self.keys_dir.exists() && !self.keys_dir.is_dir() {
            return Err(invalid(
                "keys_dir",
                format!(
                    "`{}` exists but is not a directory",
                    self.keys_dir.display()
                ),
            ));
        }
        if let Some(k) = &self.kek {
            crate::keys::seal::Kek::from_base64(&k.0).map_err(|_| {
                invalid(
                    "kek",
                    "the value (not shown) must be the base64 encoding of exactly 32 bytes",
                )
            })?;
        }
        for (key, v, min, max) in [
            (
                "access_token_ttl_secs",
                self.access_token_ttl_secs,
                10,
                86_400,
            ),
            ("id_token_ttl_secs", self.id_token_ttl_secs, 10, 86_400),
            (
                "refresh_token_ttl_secs",
                self.refresh_token_ttl_secs,
                60,
                400 * 86_400,
            ),
            (
                "refresh_token_idle_ttl_secs",
                self.refresh_token_idle_ttl_secs,
                60,
                400 * 86_400,
            ),
            (
                "authorization_code_ttl_secs",
                self.authorization_code_ttl_secs,
                5,
                600,
            ),
            ("jwks_max_age_secs", self.jwks_max_age_secs, 0, 86_400),
            ("keys_refresh_secs", self.keys_refresh_secs, 1, 3_600),
            ("client_cache_ttl_secs", self.client_cache_ttl_secs, 0, 300),
            (
                "session_idle_ttl_secs",
                self.session_idle_ttl_secs,
                60,
                400 * 86_400,
            ),
            (
                "session_absolute_ttl_secs",
                self.session_absolute_ttl_secs,
                60,
                400 * 86_400,
            ),
            (
                "session_remember_me_ttl_secs",
                self.session_remember_me_ttl_secs,
                60,
                400 * 86_400,
            ),
            (
                "backchannel_timeout_secs",
                self.backchannel_timeout_secs,
                1,
                60,
            ),
            (
                "backchannel_retry_base_secs",
                self.backchannel_retry_base_secs,
                1,
                3_600,
            ),
        ] {
            if !(min..=max).contains(&v) {
                return Err(invalid(
                    key,
                    format!("`{v}` is out of range; allowed {min}..={max} seconds"),
                ));
            }
        }
        if self.refresh_token_idle_ttl_secs > self.refresh_token_ttl_secs {
            return Err(invalid(
                "refresh_token_idle_ttl_secs",
                format!(
                    "`{}` exceeds refresh_token_ttl_secs ({}); the idle lifetime must not be longer than the absolute one",
                    self.refresh_token_idle_ttl_secs, self.refresh_token_ttl_secs
                ),
            ));
        }
        if self.session_idle_ttl_secs > self.session_absolute_ttl_secs {
            return Err(invalid(
                "session_idle_ttl_secs",
                format!(
                    "`{}` exceeds session_absolute_ttl_secs ({}); the idle lifetime must not be longer than the absolute one",
                    self.session_idle_ttl_secs, self.session_absolute_ttl_secs
                ),
            ));
        }
        if self.session_limit_per_user > 1_000 {
            return Err(invalid(
                "session_limit_per_user",
                format!(
                    "`{}` is out of range; allowed 0 (no limit)..=1000",
                    self.session_limit_per_user
                ),
            ));
        }
        if !(1..=100).contains(&self.backchannel_max_attempts) {
            return Err(invalid(
                "backchannel_max_attempts",
                format!(
                    "`{}` is out of range; allowed 1..=100",
                    self.backchannel_max_attempts
                ),
            ));
        }
        if self.key_rotation_days > 3_650 {
            return Err(invalid(
                "key_rotation_days",
                format!(
                    "`{}` is out of range; allowed 0 (manual rotation only)..=3650 days",
                    self.key_rotation_days
                ),
            ));
        }
        // A new key is published for jwks_max_age_secs + keys_refresh_secs (+ clock skew) before it
        // signs; a schedule shorter than that would start the next rotation before this one ends.
        let lead = self.jwks_max_age_secs
            + self.keys_refresh_secs
            + crate::keys::lifecycle::CLOCK_SKEW_SECS.unsigned_abs();
        if self.key_rotation_days > 0 && self.key_rotation_days * 86_400 <= 2 * lead {
            return Err(invalid(
                "key_rotation_days",
                format!(
                    "`{}` is too short: a new key is published {lead} s (jwks_max_age_secs + keys_refresh_secs + 60) before it signs, so rotate at least every {} days or lower jwks_max_age_secs",
                    self.key_rotation_days,
                    (2 * lead) / 86_400 + 1
                ),
            ));
        }
        let access_token_alg = Alg::parse(&self.access_token_alg).ok_or_else(|| {
            invalid(
                "access_token_alg",
                format!(
                    "`{}` is not supported; allowed: RS256, ES256, EdDSA",
                    self.access_token_alg
                ),
            )
        })?;
        if !matches!(
            self.log_level.as_str(),
            "trace" | "debug" | "info" | "warn" | "error" | "off"
        ) {
            return Err(invalid(
                "log_level",
                format!(
                    "`{}` is not a level; allowed: trace, debug, info, warn, error, off",
                    self.log_level
                ),
            ));
        }
        if self.argon2_memory_kib < 8 * self.argon2_parallelism.max(1)
            || self.argon2_memory_kib > 4 * 1024 * 1024
        {
            return Err(invalid(
                "argon2_memory_kib",
                format!(
                    "`{}` is out of range; allowed 8×parallelism..=4194304",
                    self.argon2_memory_kib
                ),
            ));
        }
        if !(1..=100).contains(&self.argon2_iterations) {
            return Err(invalid(
                "argon2_iterations",
                format!(
                    "`{}` is out of range; allowed 1..=100",
                    self.argon2_iterations
                ),
            ));
        }
        if !(1..=16).contains(&self.argon2_parallelism) {
            return Err(invalid(
                "argon2_parallelism",
                format!(
                    "`{}` is out of range; allowed 1..=16",
                    self.argon2_parallelism
                ),
            ));
        }
        if !(1024..=16 * 1024 * 1024).contains(&self.max_body_bytes) {
            return Err(invalid(
                "max_body_bytes",
                format!(
                    "`{}` is out of range; allowed 1024..=16777216",
                    self.max_body_bytes
                ),
            ));
        }
        if self.ephemeral_max_entries < 100 {
            return Err(invalid(
                "ephemeral_max_entries",
                format!(
                    "`{}` is too small; allowed ≥ 100",
                    self.ephemeral_max_entries
                ),
            ));
        }
        self.validate_accounts()?;
        let trusted_proxies = crate::http::client_ip::parse_trusted(&self.trusted_proxies)
            .map_err(|bad| {
                invalid(
                    "trusted_proxies",
                    format!("`{bad}` is not an IP address or CIDR (e.g. 10.0.0.0/8, ::1)"),
                )
            })?;
        let mfa_required_roles = crate::mfa::policy::parse_roles(&self.mfa_required_roles)
            .map_err(|bad| invalid("mfa_required_roles", bad))?;
        Ok(Settings {
            raw: self,
            issuer,
            issuer_str,
            listen,
            access_token_alg,
            trusted_proxies,
            mfa_required_roles,
        })
    }

    /// The account settings: password policy, sign-in limits, mail.
    fn validate_accounts(&self) -> Result<(), ConfigError> {
        if !(8..=64).contains(&self.password_min_length) {
            return Err(invalid(
                "password_min_length",
                format!(
                    "`{}` is out of range; allowed 8..=64 characters (NIST SP 800-63B)",
                    self.password_min_length
                ),
            ));
        }
        if self.password_min_zxcvbn_score > 4 {
            return Err(invalid(
                "password_min_zxcvbn_score",
                format!(
                    "`{}` is out of range; allowed 0 (off)..=4",
                    self.password_min_zxcvbn_score
                ),
            ));
        }
        if let Some(u) = &self.hibp_api_url {
            let ok = Url::parse(u)
                .is_ok_and(|p| matches!(p.scheme(), "https" | "http") && p.host_str().is_some());
            if !ok {
                return Err(invalid(
                    "hibp_api_url",
                    format!("`{u}` is not an http(s) URL, e.g. https://api.pwnedpasswords.com"),
                ));
            }
        }
        if !(1..=1000).contains(&self.login_max_failures) {
            return Err(invalid(
                "login_max_failures",
                format!(
                    "`{}` is out of range; allowed 1..=1000",
                    self.login_max_failures
                ),
            ));
        }
        if self.login_max_failures_per_ip > 1_000_000 {
            return Err(invalid(
                "login_max_failures_per_ip",
                format!(
                    "`{}` is out of range; allowed 0 (no limit)..=1000000",
                    self.login_max_failures_per_ip
                ),
            ));
        }
        for (key, v, min, max) in [
            (
                "login_failure_window_secs",
                self.login_failure_window_secs,
                10,
                86_400,
            ),
            ("login_lock_secs", self.login_lock_secs, 1, 86_400),
            (
                "login_failure_delay_ms",
                self.login_failure_delay_ms,
                0,
                10_000,
            ),
        ] {
            if !(min..=max).contains(&v) {
                return Err(invalid(
                    key,
                    format!("`{v}` is out of range; allowed {min}..={max}"),
                ));
            }
        }
        if self.mail_from.parse::<lettre::message::Mailbox>().is_err() {
            return Err(invalid(
                "mail_from",
                format!(
                    "`{}` is not a mailbox like `Custos <no-reply@id.example.com>`",
                    self.mail_from
                ),
            ));
        }
        if self.mail_transport == MailTransport::Smtp
            && self
                .smtp_host
                .as_deref()
                .is_none_or(|h| h.trim().is_empty())
        {
            return Err(invalid(
                "smtp_host",
                "must be set when mail_transport = \"smtp\"",
            ));
        }
        if self.smtp_port == 0 {
            return Err(invalid("smtp_port", "`0` is not a port"));
        }
        if self.smtp_password.is_some() && self.smtp_username.is_none() {
            return Err(invalid(
                "smtp_username",
                "must be set when smtp_password is (a password alone cannot log in)",
            ));
        }
        Ok(())
    }

    /// The effective configuration as TOML with every secret replaced.
    pub fn redacted_toml(&self) -> String {
        let mut c = self.clone();
        c.database_url = SecretString(redact_url(&c.database_url.0));
        c.redis_url = c.redis_url.map(|r| SecretString(redact_url(&r.0)));
        c.kek = c.kek.map(|_| SecretString("<redacted>".into()));
        c.smtp_password = c.smtp_password.map(|_| SecretString("<redacted>".into()));
        toml_string(&c)
    }
}

fn toml_string(c: &Config) -> String {
    // figment has no serializer; the config is flat, so a line per key is a faithful TOML rendering.
    let v = serde_json::to_value(c).unwrap_or_default();
    let mut out = String::new();
    if let Some(map) = v.as_object() {
        for key in KEYS {
            match map.get(*key) {
                Some(serde_json::Value::Null) | None => {
                    out.push_str(&format!("# {key} = (unset)\n"))
                }
                Some(val) => out.push_str(&format!("{key} = {val}\n")),
            }
        }
    }
    out
}

/// Replaces the password of a URL (`scheme://user:pass@host`) with `***`.
pub fn redact_url(s: &str) -> String {
    match Url::parse(s) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate() {
        let s = Config::default().validate().unwrap();
        assert_eq!(s.issuer_str, "http://127.0.0.1:8080");
        assert_eq!(s.access_token_alg, Alg::ES256);
    }

    #[test]
    fn bad_values_name_the_key() {
        let c = Config {
            issuer: "not a url".into(),
            ..Config::default()
        };
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("`issuer`") && e.contains("not a url"), "{e}");
        let c = Config {
            log_level: "loud".into(),
            ..Config::default()
        };
        let e = c.validate().unwrap_err().to_string();
        assert!(
            e.contains("`log_level`") && e.contains("loud") && e.contains("allowed"),
            "{e}"
        );
    }

    #[test]
    fn sqlite_synchronous_is_read_and_a_bad_value_names_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("custos.toml");
        let none = Env::prefixed("CUSTOS_TEST_NOTHING_");
        std::fs::write(&file, "sqlite_synchronous = \"full\"\n").unwrap();
        let c = Config::load_from(Some(&file), none.clone()).unwrap();
        assert_eq!(c.sqlite_synchronous, SqliteSynchronous::Full);
        assert_eq!(
            Config::default().sqlite_synchronous,
            SqliteSynchronous::Normal
        );
        std::fs::write(&file, "sqlite_synchronous = \"extra\"\n").unwrap();
        let e = Config::load_from(Some(&file), none)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("sqlite_synchronous") && e.contains("extra") && e.contains("full"),
            "{e}"
        );
    }

    #[test]
    fn session_and_backchannel_keys_are_checked() {
        for (c, key) in [
            (
                Config {
                    session_idle_ttl_secs: 50_000,
                    ..Config::default()
                },
                "`session_idle_ttl_secs`",
            ),
            (
                Config {
                    session_remember_me_ttl_secs: 10,
                    ..Config::default()
                },
                "`session_remember_me_ttl_secs`",
            ),
            (
                Config {
                    session_limit_per_user: 1_001,
                    ..Config::default()
                },
                "`session_limit_per_user`",
            ),
            (
                Config {
                    backchannel_timeout_secs: 0,
                    ..Config::default()
                },
                "`backchannel_timeout_secs`",
            ),
            (
                Config {
                    backchannel_max_attempts: 0,
                    ..Config::default()
                },
                "`backchannel_max_attempts`",
            ),
            (
                Config {
                    backchannel_retry_base_secs: 0,
                    ..Config::default()
                },
                "`backchannel_retry_base_secs`",
            ),
        ] {
            let e = c.validate().unwrap_err().to_string();
            assert!(e.contains(key), "{key}: {e}");
        }
        let s = Config::default().validate().unwrap();
        assert_eq!(s.raw.session_remember_me_ttl_secs, 30 * 86_400);
        assert_eq!(s.raw.session_limit_per_user, 0);
        assert!(!s.raw.offline_access_survives_logout);
    }

    #[test]
    fn secrets_are_redacted() {
        let c = Config {
            database_url: SecretString("postgres://u:hunter2@db/custos".into()),
            kek: Some(SecretString("c2VjcmV0".into())),
            ..Config::default()
        };
        let t = c.redacted_toml();
        assert!(!t.contains("hunter2") && !t.contains("c2VjcmV0"), "{t}");
        assert!(t.contains("postgres://u:***@db/custos"), "{t}");
        let e = Config {
            kek: Some(SecretString("c2VjcmV0".into())),
            ..Config::default()
        }
        .validate()
        .unwrap_err()
        .to_string();
        assert!(e.contains("`kek`") && !e.contains("c2VjcmV0"), "{e}");
    }
}
