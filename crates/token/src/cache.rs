//! The bounded cache of already-verified tokens that keeps signature checks off the
//! per-request hot path.
//!
//! Entries are keyed by the SHA-256 of the token so the cache never holds a usable
//! credential. The map is split into shards, each behind a `RwLock`, so concurrent hits
//! take only shared locks and writers (misses) contend on one shard at a time.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use crate::claims::Claims;

/// Number of independently locked shards; the first digest byte picks one.
const SHARDS: usize = 16;

/// SHA-256 of a token string.
pub(crate) type TokenDigest = [u8; 32];

type Shard = RwLock<HashMap<TokenDigest, Arc<Claims>>>;

/// A sharded, bounded map from token digest to verified claims.
pub(crate) struct TokenCache {
    shards: [Shard; SHARDS],
    shard_capacity: usize,
}

impl TokenCache {
    /// A cache holding at most about `capacity` entries in total.
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            shards: std::array::from_fn(|_| RwLock::new(HashMap::new())),
            shard_capacity: capacity.div_ceil(SHARDS).max(1),
        }
    }

    fn shard(&self, digest: &TokenDigest) -> &Shard {
        &self.shards[usize::from(digest[0]) % SHARDS]
    }

    /// The cached claims for `digest`, if any. Callers must still check exp/nbf.
    pub(crate) fn get(&self, digest: &TokenDigest) -> Option<Arc<Claims>> {
        // A panic while holding the lock cannot leave the map logically broken (every
        // mutation is a single HashMap call), so a poisoned lock is safe to reuse.
        let shard = self
            .shard(digest)
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        shard.get(digest).cloned()
    }

    /// Stores verified claims. When the shard is full, entries expired at `now` (allowing
    /// `leeway` seconds) are dropped first; if that frees nothing the shard is cleared,
    /// which only costs re-verification.
    pub(crate) fn insert(&self, digest: TokenDigest, claims: Arc<Claims>, now: i64, leeway: i64) {
        let mut shard = self
            .shard(&digest)
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if shard.len() >= self.shard_capacity && !shard.contains_key(&digest) {
            shard.retain(|_, c| c.exp.saturating_add(leeway) >= now);
            if shard.len() >= self.shard_capacity {
                shard.clear();
            }
        }
        shard.insert(digest, claims);
    }

    /// Total number of cached entries.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.read().unwrap_or_else(PoisonError::into_inner).len())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::claims::Audience;

    fn claims(exp: i64) -> Arc<Claims> {
        Arc::new(Claims {
            iss: "i".into(),
            sub: None,
            aud: Audience::single("a"),
            iat: 0,
            nbf: 0,
            exp,
            jti: "j".into(),
            auth_type: None,
            access: vec![],
        })
    }

    fn digest(shard: u8, n: u8) -> TokenDigest {
        let mut d = [0u8; 32];
        d[0] = shard;
        d[1] = n;
        d
    }

    #[test]
    fn get_returns_same_arc() {
        let cache = TokenCache::new(64);
        let c = claims(100);
        cache.insert(digest(0, 1), c.clone(), 0, 0);
        assert!(Arc::ptr_eq(&cache.get(&digest(0, 1)).unwrap(), &c));
        assert!(cache.get(&digest(0, 2)).is_none());
    }

    #[test]
    fn full_shard_drops_expired_entries_first() {
        // 16 shards * 2 = capacity 32, so each shard holds two entries.
        let cache = TokenCache::new(32);
        cache.insert(digest(0, 1), claims(10), 0, 0);
        cache.insert(digest(0, 2), claims(1000), 0, 0);
        cache.insert(digest(0, 3), claims(1000), 500, 0);
        assert!(cache.get(&digest(0, 1)).is_none(), "expired entry evicted");
        assert!(cache.get(&digest(0, 2)).is_some());
        assert!(cache.get(&digest(0, 3)).is_some());
    }

    #[test]
    fn full_shard_without_expired_entries_is_cleared() {
        let cache = TokenCache::new(32);
        cache.insert(digest(0, 1), claims(1000), 0, 0);
        cache.insert(digest(0, 2), claims(1000), 0, 0);
        cache.insert(digest(0, 3), claims(1000), 0, 0);
        assert_eq!(cache.len(), 1);
        assert!(cache.get(&digest(0, 3)).is_some());
    }
}
