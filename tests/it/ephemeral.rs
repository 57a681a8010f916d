//! One contract, every `EphemeralStore`: the in-process map always, Redis when CUSTOS_TEST_REDIS_URL is set.

use std::sync::Arc;
use std::time::Duration;

use custos::clock::FixedClock;
use custos::ephemeral::memory::MemoryStore;
use custos::ephemeral::redis::RedisStore;
use custos::ephemeral::{EphemeralError, EphemeralStore};

use crate::support::{T0, skip_or_fail, test_redis};

/// Moves time forward for the store under test: the FixedClock for the in-process store, real
/// sleeping for Redis (whose clock is its own).
enum Time {
    Fixed(Arc<FixedClock>),
    Real,
}

impl Time {
    async fn pass(&self, secs: u64) {
        match self {
            Time::Fixed(c) => c.advance(secs as i64),
            Time::Real => tokio::time::sleep(Duration::from_millis(secs * 1000 + 100)).await,
        }
    }
}

async fn contract(s: Arc<dyn EphemeralStore>, time: Time) {
    let kind = s.kind();
    s.ping().await.unwrap();
    // put / get / delete
    s.put("a", b"one", Duration::from_secs(60)).await.unwrap();
    assert_eq!(
        s.get("a").await.unwrap().as_deref(),
        Some(&b"one"[..]),
        "{kind}"
    );
    s.put("a", b"two", Duration::from_secs(60)).await.unwrap();
    assert_eq!(
        s.get("a").await.unwrap().as_deref(),
        Some(&b"two"[..]),
        "{kind}: put replaces"
    );
    s.delete("a").await.unwrap();
    assert_eq!(s.get("a").await.unwrap(), None, "{kind}");
    s.delete("never-there").await.unwrap();

    // put_new only when absent
    assert!(
        s.put_new("n", b"x", Duration::from_secs(60)).await.unwrap(),
        "{kind}"
    );
    assert!(
        !s.put_new("n", b"y", Duration::from_secs(60)).await.unwrap(),
        "{kind}"
    );
    assert_eq!(s.get("n").await.unwrap().as_deref(), Some(&b"x"[..]));

    // take is get-and-delete
    s.put("t", b"code", Duration::from_secs(60)).await.unwrap();
    assert_eq!(
        s.take("t").await.unwrap().as_deref(),
        Some(&b"code"[..]),
        "{kind}"
    );
    assert_eq!(s.take("t").await.unwrap(), None, "{kind}: single use");

    // Of 50 concurrent takers exactly one gets the value.
    s.put("race", b"v", Duration::from_secs(60)).await.unwrap();
    let mut handles = Vec::new();
    for _ in 0..50 {
        let s = s.clone();
        handles.push(tokio::spawn(async move { s.take("race").await.unwrap() }));
    }
    let mut winners = 0;
    for h in handles {
        if h.await.unwrap().is_some() {
            winners += 1;
        }
    }
    assert_eq!(winners, 1, "{kind}: take is atomic");

    // Counters: concurrent increments are all counted.
    let mut handles = Vec::new();
    for _ in 0..40 {
        let s = s.clone();
        handles.push(tokio::spawn(async move {
            s.incr("ctr", Duration::from_secs(60)).await.unwrap()
        }));
    }
    let mut seen = Vec::new();
    for h in handles {
        seen.push(h.await.unwrap());
    }
    seen.sort();
    assert_eq!(
        seen,
        (1..=40).collect::<Vec<u64>>(),
        "{kind}: every increment has its own count"
    );

    // Expiry: values and counters vanish after their ttl; a counter's window starts at its first incr.
    s.put("short", b"x", Duration::from_secs(1)).await.unwrap();
    s.put("long", b"x", Duration::from_secs(60)).await.unwrap();
    assert_eq!(s.incr("window", Duration::from_secs(1)).await.unwrap(), 1);
    assert_eq!(s.incr("window", Duration::from_secs(1)).await.unwrap(), 2);
    time.pass(1).await;
    assert_eq!(s.get("short").await.unwrap(), None, "{kind}: expired");
    assert_eq!(s.take("short").await.unwrap(), None, "{kind}: expired");
    assert!(s.get("long").await.unwrap().is_some(), "{kind}");
    assert_eq!(
        s.incr("window", Duration::from_secs(1)).await.unwrap(),
        1,
        "{kind}: a new window"
    );
    assert!(
        s.put_new("short", b"again", Duration::from_secs(60))
            .await
            .unwrap(),
        "{kind}: expired keys are free"
    );
}

#[tokio::test]
async fn memory_store_meets_the_contract() {
    let clock = Arc::new(FixedClock::new(T0));
    let s: Arc<dyn EphemeralStore> = Arc::new(MemoryStore::new(10_000, clock.clone()));
    contract(s, Time::Fixed(clock)).await;
}

#[tokio::test]
async fn redis_store_meets_the_contract() {
    let Some((url, prefix)) = test_redis() else {
        skip_or_fail("Redis contract suite: no Redis (CUSTOS_TEST_REDIS_URL unset)");
        return;
    };
    let s: Arc<dyn EphemeralStore> = Arc::new(
        RedisStore::connect(&url, &prefix)
            .await
            .expect("Redis reachable"),
    );
    contract(s, Time::Real).await;
}

#[tokio::test]
async fn memory_store_refuses_rather_than_evicting_live_entries() {
    let clock = Arc::new(FixedClock::new(T0));
    let s = MemoryStore::new(100, clock.clone());
    for i in 0..100 {
        s.put(&format!("k{i}"), b"v", Duration::from_secs(10))
            .await
            .unwrap();
    }
    match s.put("one-more", b"v", Duration::from_secs(10)).await {
        Err(EphemeralError::Full(n)) => assert_eq!(n, 100),
        other => panic!("expected Full, got {other:?}"),
    }
    assert!(s.incr("ctr", Duration::from_secs(10)).await.is_err());
    // Every live entry is still there; replacing one is allowed.
    for i in 0..100 {
        assert!(s.get(&format!("k{i}")).await.unwrap().is_some());
    }
    s.put("k5", b"w", Duration::from_secs(10)).await.unwrap();
    // Once entries expire, their room is reused.
    clock.advance(11);
    s.put("one-more", b"v", Duration::from_secs(10))
        .await
        .unwrap();
}
