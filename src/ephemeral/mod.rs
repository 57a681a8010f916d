//! Short-lived data whose loss at worst forces a new login: authorization codes, pending requests,
//! counters, revoked jtis (browser sessions are SQL records: `sessions`). Redis in production, a
//! bounded in-process map by default.

pub mod memory;
pub mod redis;

use std::time::Duration;

use async_trait::async_trait;

#[derive(Debug, thiserror::Error)]
pub enum EphemeralError {
    /// The in-process store is full of live entries; it refuses rather than evicting one.
    #[error("ephemeral store is full ({0} live entries)")]
    Full(usize),
    #[error("ephemeral store unavailable: {0}")]
    Unavailable(String),
}

#[async_trait]
pub trait EphemeralStore: Send + Sync {
    /// Stores `value` under `key` for `ttl`, replacing what was there.
    async fn put(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), EphemeralError>;
    /// Stores only if `key` is absent; true when stored.
    async fn put_new(&self, key: &str, value: &[u8], ttl: Duration)
    -> Result<bool, EphemeralError>;
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, EphemeralError>;
    /// Atomic get-and-delete: of concurrent takers, exactly one sees the value.
    async fn take(&self, key: &str) -> Result<Option<Vec<u8>>, EphemeralError>;
    async fn delete(&self, key: &str) -> Result<(), EphemeralError>;
    /// Adds one and returns the new count; the first increment starts the `ttl` window.
    async fn incr(&self, key: &str, ttl: Duration) -> Result<u64, EphemeralError>;
    async fn ping(&self) -> Result<(), EphemeralError>;
    fn kind(&self) -> &'static str;
}
