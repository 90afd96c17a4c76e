//! A short-lived in-process cache of manifests by repository and reference, so manifest
//! HEAD/GET (the hottest requests: every `docker pull`, every CI job) do no database work.
//!
//! Consistency: this process drops a repository's entries whenever it writes to that
//! repository, so its own clients always read their writes. Another replica's writes are
//! seen after at most the TTL (a few seconds), the same bound a CDN or GitLab's Redis
//! repository cache gives. Entries by digest are content-addressed and never wrong while
//! the manifest exists; a deleted manifest may be served by other replicas for up to a TTL.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;

/// What a manifest response needs.
#[derive(Debug)]
pub struct CachedManifest {
    /// The repository's id (for usage counts).
    pub repository_id: i64,
    /// Canonical digest string.
    pub digest: String,
    /// Media type.
    pub media_type: String,
    /// The exact bytes.
    pub payload: Bytes,
}

struct Entry {
    manifest: Arc<CachedManifest>,
    at: Instant,
}

/// Most repositories kept; past it the cache starts over (cheap, and bounded memory).
const MAX_REPOSITORIES: usize = 10_000;
/// Most references kept per repository.
const MAX_REFERENCES: usize = 1_000;

/// Repository name → reference → manifest.
pub struct ManifestCache {
    ttl: Duration,
    map: RwLock<HashMap<String, HashMap<String, Entry>>>,
    /// Bumped by every invalidation. A reader notes it before reading the database and
    /// only caches its result if no write happened meanwhile, so a read that raced a write
    /// can never put the pre-write state back.
    generation: AtomicU64,
}

impl ManifestCache {
    /// A cache whose entries live `ttl` (zero disables it).
    pub fn new(ttl: Duration) -> Self {
        ManifestCache {
            ttl,
            map: RwLock::new(HashMap::new()),
            generation: AtomicU64::new(0),
        }
    }

    /// A fresh entry for `reference` in `repository`.
    pub fn get(&self, repository: &str, reference: &str) -> Option<Arc<CachedManifest>> {
        if self.ttl.is_zero() {
            return None;
        }
        let map = self.map.read().ok()?;
        let e = map.get(repository)?.get(reference)?;
        (e.at.elapsed() < self.ttl).then(|| e.manifest.clone())
    }

    /// The generation to pass to [`ManifestCache::put`]; read it before the database.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Remember a manifest read from the database when the cache was at `generation`.
    pub fn put(
        &self,
        repository: &str,
        reference: &str,
        manifest: Arc<CachedManifest>,
        generation: u64,
    ) {
        if self.ttl.is_zero() {
            return;
        }
        let Ok(mut map) = self.map.write() else {
            return;
        };
        if self.generation.load(Ordering::Acquire) != generation {
            return;
        }
        if map.len() >= MAX_REPOSITORIES && !map.contains_key(repository) {
            map.clear();
        }
        let refs = map.entry(repository.to_owned()).or_default();
        if refs.len() >= MAX_REFERENCES {
            refs.clear();
        }
        refs.insert(
            reference.to_owned(),
            Entry {
                manifest,
                at: Instant::now(),
            },
        );
    }

    /// Forget everything about `repository`; called after a write to it commits.
    pub fn invalidate(&self, repository: &str) {
        if let Ok(mut map) = self.map.write() {
            self.generation.fetch_add(1, Ordering::AcqRel);
            map.remove(repository);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(d: &str) -> Arc<CachedManifest> {
        Arc::new(CachedManifest {
            repository_id: 1,
            digest: d.into(),
            media_type: "x".into(),
            payload: Bytes::new(),
        })
    }

    #[test]
    fn hit_expire_and_invalidate() {
        let c = ManifestCache::new(Duration::from_millis(50));
        c.put("a/b", "v1", m("d1"), c.generation());
        assert_eq!(c.get("a/b", "v1").unwrap().digest, "d1");
        assert!(c.get("a/b", "v2").is_none());
        let before = c.generation();
        c.invalidate("a/b");
        assert!(c.get("a/b", "v1").is_none());
        // A read that started before the write cannot cache its stale result.
        c.put("a/b", "v1", m("old"), before);
        assert!(c.get("a/b", "v1").is_none());
        c.put("a/b", "v1", m("d1"), c.generation());
        std::thread::sleep(Duration::from_millis(60));
        assert!(c.get("a/b", "v1").is_none());
        let off = ManifestCache::new(Duration::ZERO);
        off.put("a/b", "v1", m("d1"), off.generation());
        assert!(off.get("a/b", "v1").is_none());
    }
}
