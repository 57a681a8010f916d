//! The in-process ephemeral store: a mutex-guarded map with expiry. Bounded: when every slot holds a
//! live entry it refuses new keys (never evicts a live one). Expired entries are purged lazily on
//! access and in bulk when the map reaches its bound.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;

use super::{EphemeralError, EphemeralStore};
use crate::clock::Clock;

struct Entry {
    value: Vec<u8>,
    expires_at_ms: i128,
}

pub struct MemoryStore {
    map: Mutex<HashMap<String, Entry>>,
    max_entries: usize,
    clock: Arc<dyn Clock>,
}

impl MemoryStore {
    pub fn new(max_entries: usize, clock: Arc<dyn Clock>) -> MemoryStore {
        MemoryStore {
            map: Mutex::new(HashMap::new()),
            max_entries,
            clock,
        }
    }

    fn now_ms(&self) -> i128 {
        i128::from(self.clock.now()) * 1000
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        // A panic while holding the lock cannot leave a half-written entry (each operation is one map
        // call), so a poisoned lock is safe to keep using.
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn make_room(
        &self,
        map: &mut HashMap<String, Entry>,
        key: &str,
        now: i128,
    ) -> Result<(), EphemeralError> {
        if map.len() < self.max_entries || map.contains_key(key) {
            return Ok(());
        }
        map.retain(|_, e| e.expires_at_ms > now);
        if map.len() >= self.max_entries {
            return Err(EphemeralError::Full(map.len()));
        }
        Ok(())
    }

    fn expiry(now: i128, ttl: Duration) -> i128 {
        now + i128::try_from(ttl.as_millis()).unwrap_or(i128::MAX / 2)
    }
}

#[async_trait]
impl EphemeralStore for MemoryStore {
    async fn put(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), EphemeralError> {
        let now = self.now_ms();
        let mut map = self.lock();
        self.make_room(&mut map, key, now)?;
        map.insert(
            key.to_string(),
            Entry {
                value: value.to_vec(),
                expires_at_ms: Self::expiry(now, ttl),
            },
        );
        Ok(())
    }

    async fn put_new(
        &self,
        key: &str,
        value: &[u8],
        ttl: Duration,
    ) -> Result<bool, EphemeralError> {
        let now = self.now_ms();
        let mut map = self.lock();
        if map.get(key).is_some_and(|e| e.expires_at_ms > now) {
            return Ok(false);
        }
        self.make_room(&mut map, key, now)?;
        map.insert(
            key.to_string(),
            Entry {
                value: value.to_vec(),
                expires_at_ms: Self::expiry(now, ttl),
            },
        );
        Ok(true)
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, EphemeralError> {
        let now = self.now_ms();
        let mut map = self.lock();
        match map.get(key) {
            Some(e) if e.expires_at_ms > now => Ok(Some(e.value.clone())),
            Some(_) => {
                map.remove(key);
                Ok(None)
            }
            None => Ok(None),
        }
    }

    async fn take(&self, key: &str) -> Result<Option<Vec<u8>>, EphemeralError> {
        let now = self.now_ms();
        Ok(self
            .lock()
            .remove(key)
            .filter(|e| e.expires_at_ms > now)
            .map(|e| e.value))
    }

    async fn delete(&self, key: &str) -> Result<(), EphemeralError> {
        self.lock().remove(key);
        Ok(())
    }

    async fn incr(&self, key: &str, ttl: Duration) -> Result<u64, EphemeralError> {
        let now = self.now_ms();
        let mut map = self.lock();
        if let Some(e) = map.get_mut(key)
            && e.expires_at_ms > now
        {
            let n = parse_count(&e.value) + 1;
            e.value = n.to_string().into_bytes();
            return Ok(n);
        }
        self.make_room(&mut map, key, now)?;
        map.insert(
            key.to_string(),
            Entry {
                value: b"1".to_vec(),
                expires_at_ms: Self::expiry(now, ttl),
            },
        );
        Ok(1)
    }

    async fn ping(&self) -> Result<(), EphemeralError> {
        Ok(())
    }

    fn kind(&self) -> &'static str {
        "memory"
    }
}

pub(crate) fn parse_count(v: &[u8]) -> u64 {
    std::str::from_utf8(v)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}
