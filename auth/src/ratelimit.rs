//! Failed-login limits for HTTP Basic at `/jwt/auth`: a small budget per
//! (address, username) and a larger one per address.
//!
//! Both count failures in a fixed window. The (address, username) budget stops guessing
//! one account's password without locking out the other people behind the same address
//! (CI runners and offices share one); the per-address budget stops spraying one password
//! across many usernames. Once an address is over its budget only password logins from it
//! are refused: access tokens carry 192 random bits, so guessing them is hopeless, and a
//! CI runner behind a NAT keeps working while someone sprays passwords from it.
//!
//! Counters live in this process: N replicas allow up to N times the budget, which still
//! bounds guessing; a shared store would make it exact at the price of a round trip per
//! login.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How many distinct keys are kept before expired windows are swept.
const SWEEP_AT: usize = 10_000;

/// The most keys ever tracked per table (a few MiB); beyond it new keys are not counted.
const MAX_KEYS: usize = 100_000;

/// Usernames longer than this are counted by their first this-many characters.
const MAX_USERNAME: usize = 255;

fn user_key(addr: IpAddr, username: &str) -> (IpAddr, String) {
    (addr, username.chars().take(MAX_USERNAME).collect())
}

#[derive(Debug, Clone, Copy)]
struct Window {
    started: Instant,
    failures: u32,
}

/// The limiter.
pub struct Limiter {
    per_user: u32,
    per_address: u32,
    window: Duration,
    users: Mutex<HashMap<(IpAddr, String), Window>>,
    addresses: Mutex<HashMap<IpAddr, Window>>,
}

/// Why a login is refused before its credentials are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limited {
    /// Seconds until the window ends.
    pub retry_after: u64,
}

impl Limiter {
    /// A limiter allowing `per_user` failures per (address, username) and `per_address`
    /// per address within `window`.
    pub fn new(per_user: u32, per_address: u32, window: Duration) -> Limiter {
        Limiter {
            per_user,
            per_address,
            window,
            users: Mutex::new(HashMap::new()),
            addresses: Mutex::new(HashMap::new()),
        }
    }

    fn retry_after(&self, w: &Window) -> u64 {
        self.window
            .saturating_sub(w.started.elapsed())
            .as_secs()
            .max(1)
    }

    /// May this login be checked at all? `password` says whether it is a password (the
    /// per-address budget applies to passwords only).
    pub fn check(&self, addr: IpAddr, username: &str, password: bool) -> Result<(), Limited> {
        let live = |w: &Window| w.started.elapsed() < self.window;
        let over = |w: Option<&Window>, budget: u32| {
            w.filter(|w| live(w) && w.failures >= budget)
                .map(|w| Limited {
                    retry_after: self.retry_after(w),
                })
        };
        if let Some(l) = over(
            lock(&self.users).get(&(addr, username.to_owned())),
            self.per_user,
        ) {
            return Err(l);
        }
        if password && let Some(l) = over(lock(&self.addresses).get(&addr), self.per_address) {
            return Err(l);
        }
        Ok(())
    }

    /// Count a failed login.
    pub fn failed(&self, addr: IpAddr, username: &str) {
        let now = Instant::now();
        let window = self.window;
        let bump = |w: &mut Window| {
            if w.started.elapsed() >= window {
                *w = Window {
                    started: now,
                    failures: 0,
                };
            }
            w.failures = w.failures.saturating_add(1);
        };
        let fresh = Window {
            started: now,
            failures: 0,
        };
        // The address first: once it is over its budget, it gets no new per-username
        // entries, so one address cannot grow the table without bound by failing with a
        // fresh username (or a token-shaped password, which skips the address check) each
        // time.
        let address_over = {
            let mut addresses = lock(&self.addresses);
            if addresses.len() >= SWEEP_AT {
                addresses.retain(|_, w| w.started.elapsed() < window);
            }
            if addresses.contains_key(&addr) || addresses.len() < MAX_KEYS {
                bump(addresses.entry(addr).or_insert(fresh));
            }
            addresses
                .get(&addr)
                .is_some_and(|w| w.failures > self.per_address)
        };
        let mut users = lock(&self.users);
        if users.len() >= SWEEP_AT {
            users.retain(|_, w| w.started.elapsed() < window);
        }
        let key = user_key(addr, username);
        if users.contains_key(&key) || (!address_over && users.len() < MAX_KEYS) {
            bump(users.entry(key).or_insert(fresh));
        }
    }
}

/// A poisoned lock only means another request panicked mid-update of a counter: keep going.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn eleventh_failure_for_one_user_is_limited_but_others_pass() {
        let l = Limiter::new(10, 50, Duration::from_secs(60));
        let a = ip("10.0.0.1");
        for _ in 0..10 {
            assert!(l.check(a, "alice", true).is_ok());
            l.failed(a, "alice");
        }
        let limited = l.check(a, "alice", true).unwrap_err();
        assert!(limited.retry_after >= 1 && limited.retry_after <= 60);
        assert!(l.check(a, "bob", true).is_ok());
        assert!(l.check(ip("10.0.0.2"), "alice", true).is_ok());
    }

    #[test]
    fn spraying_hits_the_address_budget_for_passwords_only() {
        let l = Limiter::new(10, 50, Duration::from_secs(60));
        let a = ip("10.0.0.1");
        for i in 0..50 {
            l.failed(a, &format!("user{i}"));
        }
        assert!(l.check(a, "someone", true).is_err());
        assert!(l.check(a, "ci-runner", false).is_ok());
    }

    #[test]
    fn an_address_over_budget_adds_no_new_usernames() {
        let l = Limiter::new(10, 5, Duration::from_secs(60));
        let a = ip("10.0.0.1");
        for i in 0..1000 {
            l.failed(a, &format!("user{i}"));
        }
        assert!(lock(&l.users).len() <= 6, "{}", lock(&l.users).len());
        assert_eq!(lock(&l.addresses).len(), 1);
    }

    #[test]
    fn the_window_ends() {
        let l = Limiter::new(1, 50, Duration::from_millis(30));
        let a = ip("10.0.0.1");
        l.failed(a, "alice");
        assert!(l.check(a, "alice", true).is_err());
        std::thread::sleep(Duration::from_millis(40));
        assert!(l.check(a, "alice", true).is_ok());
    }
}
