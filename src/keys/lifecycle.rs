//! When a signing key moves between states: a pure function of the keys, the time and the policy, so
//! every replica (and every test) computes the same plan from the same rows.
//!
//! The periods, with R the key refresh interval (how late a replica may notice a change in SQL), M the
//! JWKS `max-age`, T the longest token lifetime and S the allowed clock skew between machines:
//!
//! - a new key is published as `next` for P = M + R + S before it may sign: by then every replica has
//!   served it for at least M + S, so any JWKS a cache still holds was fetched after it appeared;
//! - an `active` key that stops signing is `retired` and stays published for T + R + S: replicas may
//!   sign with it for up to R after the switch, and its last token lives T more (S for skew);
//! - then it is `removed` (and its sealed private key erased).
//!
//! So `max-age` may be at most P − R − S: the publication lead is derived from it (see DESIGN.md).

use crate::config::{Alg, Settings};
use crate::keys::KeyState;
use crate::store::KeyRow;

/// Clock difference tolerated between the replicas, the CLI's host and resource servers.
pub const CLOCK_SKEW_SECS: i64 = 60;

/// The periods that drive the plan, in seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    /// How long a `next` key is published before it may become `active`.
    pub publish_lead: i64,
    /// How long a `retired` key stays published after it stopped signing.
    pub retire_hold: i64,
    /// An active key older than this is replaced (a `next` key is published `publish_lead` before);
    /// `None`: only `custos keys rotate` starts a rotation.
    pub rotate_every: Option<i64>,
}

fn secs(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX / 4)
}

impl Policy {
    /// The policy for these settings when no token lives longer than `longest_token_ttl` seconds.
    pub fn new(settings: &Settings, longest_token_ttl: i64) -> Policy {
        let refresh = secs(settings.raw.keys_refresh_secs);
        Policy {
            publish_lead: publish_lead(settings),
            retire_hold: longest_token_ttl.max(0) + refresh + CLOCK_SKEW_SECS,
            rotate_every: (settings.raw.key_rotation_days > 0)
                .then(|| secs(settings.raw.key_rotation_days) * 86_400),
        }
    }

    /// When a key published at `published_at` may become `active`.
    pub fn activates_at(&self, published_at: i64) -> i64 {
        published_at + self.publish_lead
    }
}

/// P = M + R + S (see the module documentation).
pub fn publish_lead(settings: &Settings) -> i64 {
    secs(settings.raw.jwks_max_age_secs) + secs(settings.raw.keys_refresh_secs) + CLOCK_SKEW_SECS
}

/// The longest lifetime of a JWT Custos signs under these settings: access and ID tokens (refresh
/// tokens are opaque and never verified against a key).
pub fn longest_token_ttl(settings: &Settings, client_overrides: impl Iterator<Item = u64>) -> i64 {
    secs(
        client_overrides
            .chain([
                settings.raw.access_token_ttl_secs,
                settings.raw.id_token_ttl_secs,
            ])
            .max()
            .unwrap_or(0),
    )
}

/// What the plan needs of a stored key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyInfo {
    pub kid: String,
    pub alg: Alg,
    pub state: KeyState,
    /// Also the time it was first published: a key is published from its creation on.
    pub created_at: i64,
    pub activated_at: Option<i64>,
    pub retired_at: Option<i64>,
}

impl KeyInfo {
    /// None for a row whose algorithm or state this version does not know (it is left alone).
    pub fn from_row(r: &KeyRow) -> Option<KeyInfo> {
        Some(KeyInfo {
            kid: r.kid.clone(),
            alg: Alg::parse(&r.alg)?,
            state: KeyState::parse(&r.state)?,
            created_at: r.created_at,
            activated_at: r.activated_at,
            retired_at: r.retired_at,
        })
    }
}

/// One change of the plan. Applied in order; every change is conditional on the state it starts from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Generate a key for `alg` in `state` (`Next`; `Active` only when nothing else can sign).
    Create {
        alg: Alg,
        state: KeyState,
    },
    Activate {
        kid: String,
        alg: Alg,
    },
    Retire {
        kid: String,
        alg: Alg,
    },
    Remove {
        kid: String,
        alg: Alg,
    },
}

/// The changes due at `now`. Keys come oldest first (the order the store returns them in); of several
/// active keys of one algorithm the oldest signs, as in the keyring.
pub fn plan(keys: &[KeyInfo], now: i64, policy: &Policy) -> Vec<Step> {
    let mut steps = Vec::new();
    for alg in Alg::ALL {
        let of = |state: KeyState| -> Vec<&KeyInfo> {
            let mut v: Vec<&KeyInfo> = keys
                .iter()
                .filter(|k| k.alg == alg && k.state == state)
                .collect();
            v.sort_by_key(|k| (k.created_at, k.kid.clone()));
            v
        };
        let (actives, nexts, retired) = (
            of(KeyState::Active),
            of(KeyState::Next),
            of(KeyState::Retired),
        );
        let due = nexts
            .iter()
            .find(|k| policy.activates_at(k.created_at) <= now);
        // Nothing signs (a first start raced, a revocation found no replacement): the oldest `next`
        // signs at once, however young; tokens must go on being issued.
        let promote = due.or(if actives.is_empty() {
            nexts.first()
        } else {
            None
        });
        let signer_since = match promote {
            Some(n) => {
                steps.push(Step::Activate {
                    kid: n.kid.clone(),
                    alg,
                });
                for a in &actives {
                    steps.push(Step::Retire {
                        kid: a.kid.clone(),
                        alg,
                    });
                }
                Some(now)
            }
            None => {
                // Extra active keys never sign (the oldest does): retire them.
                for a in actives.iter().skip(1) {
                    steps.push(Step::Retire {
                        kid: a.kid.clone(),
                        alg,
                    });
                }
                actives
                    .first()
                    .map(|a| a.activated_at.unwrap_or(a.created_at))
            }
        };
        for r in &retired {
            if r.retired_at.unwrap_or(r.created_at) + policy.retire_hold <= now {
                steps.push(Step::Remove {
                    kid: r.kid.clone(),
                    alg,
                });
            }
        }
        let waiting = nexts.len() - usize::from(promote.is_some());
        match signer_since {
            None => steps.push(Step::Create {
                alg,
                state: KeyState::Active,
            }),
            Some(since) => {
                if let Some(every) = policy.rotate_every
                    && waiting == 0
                    && since + every - policy.publish_lead <= now
                {
                    steps.push(Step::Create {
                        alg,
                        state: KeyState::Next,
                    });
                }
            }
        }
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, FixedClock};

    const DAY: i64 = 86_400;
    const T0: i64 = 1_795_564_800;

    fn policy() -> Policy {
        // M = 300, R = 30, S = 60; T = 900.
        Policy {
            publish_lead: 390,
            retire_hold: 990,
            rotate_every: Some(30 * DAY),
        }
    }

    fn key(kid: &str, alg: Alg, state: KeyState, created: i64) -> KeyInfo {
        KeyInfo {
            kid: kid.into(),
            alg,
            state,
            created_at: created,
            activated_at: (state == KeyState::Active).then_some(created),
            retired_at: None,
        }
    }

    /// One active key per algorithm, created at `t`.
    fn fresh(t: i64) -> Vec<KeyInfo> {
        Alg::ALL
            .into_iter()
            .map(|a| key(&format!("{a}-1"), a, KeyState::Active, t))
            .collect()
    }

    /// Applies a plan the way the store does, `n` numbering new keys.
    fn apply(keys: &mut Vec<KeyInfo>, steps: &[Step], now: i64, n: &mut u32) {
        for s in steps {
            match s {
                Step::Create { alg, state } => {
                    *n += 1;
                    let mut k = key(&format!("{alg}-new{n}"), *alg, *state, now);
                    k.activated_at = (*state == KeyState::Active).then_some(now);
                    keys.push(k);
                }
                Step::Activate { kid, .. } => {
                    let k = keys.iter_mut().find(|k| &k.kid == kid).unwrap();
                    assert_eq!(k.state, KeyState::Next);
                    k.state = KeyState::Active;
                    k.activated_at = Some(now);
                }
                Step::Retire { kid, .. } => {
                    let k = keys.iter_mut().find(|k| &k.kid == kid).unwrap();
                    assert_eq!(k.state, KeyState::Active);
                    k.state = KeyState::Retired;
                    k.retired_at = Some(now);
                }
                Step::Remove { kid, .. } => {
                    let k = keys.iter_mut().find(|k| &k.kid == kid).unwrap();
                    assert_eq!(k.state, KeyState::Retired);
                    k.state = KeyState::Removed;
                }
            }
        }
    }

    fn state_of(keys: &[KeyInfo], kid: &str) -> KeyState {
        keys.iter().find(|k| k.kid == kid).unwrap().state
    }

    #[test]
    fn nothing_to_do_for_young_keys() {
        let clock = FixedClock::new(T0);
        let keys = fresh(T0);
        assert!(plan(&keys, clock.now(), &policy()).is_empty());
        clock.advance(29 * DAY);
        assert!(plan(&keys, clock.now(), &policy()).is_empty());
        let manual = Policy {
            rotate_every: None,
            ..policy()
        };
        clock.advance(400 * DAY);
        assert!(plan(&keys, clock.now(), &manual).is_empty());
    }

    #[test]
    fn scheduled_rotation_publishes_then_activates_then_removes() {
        let p = policy();
        let clock = FixedClock::new(T0);
        let mut keys = fresh(T0);
        let mut n = 0;
        // The next key is published one lead before the active key turns 30 days old.
        clock.set(T0 + 30 * DAY - p.publish_lead - 1);
        assert!(plan(&keys, clock.now(), &p).is_empty());
        clock.advance(1);
        let steps = plan(&keys, clock.now(), &p);
        assert_eq!(
            steps,
            Alg::ALL
                .map(|alg| Step::Create {
                    alg,
                    state: KeyState::Next
                })
                .to_vec()
        );
        let published = clock.now();
        apply(&mut keys, &steps, published, &mut n);
        // Published but not signing: nothing more until the lead has passed, and no second `next`.
        clock.advance(p.publish_lead - 1);
        assert!(plan(&keys, clock.now(), &p).is_empty());
        clock.advance(1);
        let steps = plan(&keys, clock.now(), &p);
        assert_eq!(steps.len(), 6, "{steps:?}");
        assert!(steps.contains(&Step::Activate {
            kid: "ES256-new2".into(),
            alg: Alg::ES256
        }));
        assert!(steps.contains(&Step::Retire {
            kid: "ES256-1".into(),
            alg: Alg::ES256
        }));
        apply(&mut keys, &steps, clock.now(), &mut n);
        assert_eq!(state_of(&keys, "ES256-1"), KeyState::Retired);
        // The retired key stays published for the hold, then goes.
        clock.advance(p.retire_hold - 1);
        assert!(plan(&keys, clock.now(), &p).is_empty());
        clock.advance(1);
        let steps = plan(&keys, clock.now(), &p);
        assert_eq!(
            steps,
            Alg::ALL
                .map(|alg| Step::Remove {
                    kid: format!("{alg}-1"),
                    alg
                })
                .to_vec()
        );
        apply(&mut keys, &steps, clock.now(), &mut n);
        // The next rotation is counted from the new key's activation.
        let activated = published + p.publish_lead;
        clock.set(activated + 30 * DAY - p.publish_lead - 1);
        assert!(plan(&keys, clock.now(), &p).is_empty());
        clock.advance(1);
        assert_eq!(plan(&keys, clock.now(), &p).len(), 3);
    }

    #[test]
    fn a_manual_next_waits_for_the_lead_even_without_a_schedule() {
        let p = Policy {
            rotate_every: None,
            ..policy()
        };
        let clock = FixedClock::new(T0 + DAY);
        let mut keys = fresh(T0);
        keys.push(key("ES256-2", Alg::ES256, KeyState::Next, clock.now()));
        clock.advance(p.publish_lead - 1);
        assert!(plan(&keys, clock.now(), &p).is_empty());
        clock.advance(1);
        assert_eq!(
            plan(&keys, clock.now(), &p),
            vec![
                Step::Activate {
                    kid: "ES256-2".into(),
                    alg: Alg::ES256
                },
                Step::Retire {
                    kid: "ES256-1".into(),
                    alg: Alg::ES256
                },
            ]
        );
    }

    #[test]
    fn a_missing_signer_is_replaced_at_once() {
        let p = policy();
        let mut keys = fresh(T0);
        keys.retain(|k| k.alg != Alg::EdDSA);
        // No key at all: create an active one.
        assert_eq!(
            plan(&keys, T0, &p),
            vec![Step::Create {
                alg: Alg::EdDSA,
                state: KeyState::Active
            }]
        );
        // A young `next`: it signs now rather than nobody signing.
        keys.push(key("EdDSA-2", Alg::EdDSA, KeyState::Next, T0));
        assert_eq!(
            plan(&keys, T0, &p),
            vec![Step::Activate {
                kid: "EdDSA-2".into(),
                alg: Alg::EdDSA
            }]
        );
    }

    #[test]
    fn extra_active_keys_are_retired_and_the_oldest_keeps_signing() {
        let p = policy();
        let mut keys = fresh(T0);
        keys.push(key("RS256-0", Alg::RS256, KeyState::Active, T0 + 1));
        assert_eq!(
            plan(&keys, T0 + 5, &p),
            vec![Step::Retire {
                kid: "RS256-0".into(),
                alg: Alg::RS256
            }]
        );
    }

    #[test]
    fn removed_keys_are_left_alone() {
        let p = policy();
        let mut keys = fresh(T0);
        let mut old = key("ES256-0", Alg::ES256, KeyState::Removed, T0 - DAY);
        old.retired_at = Some(T0 - DAY);
        keys.push(old);
        assert!(plan(&keys, T0 + 10 * DAY, &p).is_empty());
    }

    #[test]
    fn periods_follow_the_settings() {
        let s = crate::config::Config {
            jwks_max_age_secs: 600,
            keys_refresh_secs: 20,
            key_rotation_days: 7,
            access_token_ttl_secs: 1200,
            ..Default::default()
        }
        .validate()
        .unwrap();
        let longest = longest_token_ttl(&s, [3600u64].into_iter());
        assert_eq!(longest, 3600, "a client's override counts");
        let p = Policy::new(&s, longest);
        assert_eq!(p.publish_lead, 600 + 20 + CLOCK_SKEW_SECS);
        assert_eq!(p.retire_hold, 3600 + 20 + CLOCK_SKEW_SECS);
        assert_eq!(p.rotate_every, Some(7 * DAY));
        assert_eq!(longest_token_ttl(&s, std::iter::empty()), 1200);
    }

    #[test]
    fn a_schedule_shorter_than_the_lead_is_refused() {
        let e = crate::config::Config {
            jwks_max_age_secs: 86_400,
            key_rotation_days: 2,
            ..Default::default()
        }
        .validate()
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("`key_rotation_days`") && e.contains("too short"),
            "{e}"
        );
        let e = crate::config::Config {
            keys_refresh_secs: 0,
            ..Default::default()
        }
        .validate()
        .unwrap_err()
        .to_string();
        assert!(e.contains("`keys_refresh_secs`"), "{e}");
        let manual = crate::config::Config {
            jwks_max_age_secs: 86_400,
            key_rotation_days: 0,
            ..Default::default()
        };
        assert!(manual.validate().is_ok());
    }
}
