//! A short-lived in-process cache of manifests by repository and reference, so manifest
//! HEAD/GET (the hottest requests: every `docker pull`, every CI job) do no database work.
//!
//! Consistency: this process drops a repository's entries whenever it writes to that
//! repository, so its own clients always read their writes. Another replica's writes are
//! seen after at most the TTL (a few seconds), the same bound a CDN or GitLab's Redis
//! repository cache gives. Entries by digest are content-addressed and never wrong while
//! the manifest exists; a deleted manifest may be served by other replicas for up to a TTL.
//!
//! Memory: the cache holds at most a byte budget (`manifest_cache_bytes`), weighing every
//! entry by the bytes it keeps, and drops entries once their TTL has passed, so what a burst
//! of pulls brought in is given back. A tag's entry holds only the digest it names; the bytes
//! live once, in the digest's entry, however many tags point at them (200 tags of one 4 MiB
//! manifest cost 4 MiB, not 800). The eviction policy, the weights and the expiry are
//! `moka`'s (a TinyLFU cache), not hand-written.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::Bytes;
use moka::sync::Cache;

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

/// The default byte budget: room for sixteen of the largest manifests (4 MiB) or thousands
/// of ordinary ones (a few KiB), a small part of a registry's memory.
pub const DEFAULT_BYTES: u64 = 64 * 1024 * 1024;

/// What one entry costs besides its strings and payload: the cache's node, the key's and
/// value's headers, reference counts. An estimate; it keeps a flood of tiny entries (many
/// tags) from being counted as free.
const ENTRY_OVERHEAD: usize = 160;

/// A reference's entry.
#[derive(Clone)]
enum Target {
    /// A tag names a digest; the manifest is that digest's entry, shared by every tag.
    Tag(Arc<str>),
    /// A digest's entry: the manifest itself.
    Manifest(Arc<CachedManifest>),
}

#[derive(Clone)]
struct Entry {
    /// The repository's generation when the entry was read (see [`ManifestCache`]).
    generation: u64,
    target: Target,
}

/// (repository name, reference as written: a tag or a digest).
type Key = (String, String);

/// Repository name and reference → manifest, within a byte budget.
pub struct ManifestCache {
    /// `None` when the cache is disabled (TTL zero).
    entries: Option<Cache<Key, Entry>>,
    /// Repository → the generation of this process's last write to it. An entry counts
    /// only while its generation equals its repository's, so a write makes every entry
    /// of its repository unreachable at once, without visiting them (they are evicted when
    /// they expire or the budget needs room). A repository's generation lives longer than
    /// the entries' TTL, so no entry read before a write can outlive the record of that
    /// write; a repository never written (or written more than a TTL ago) is generation 0.
    repositories: Cache<String, u64>,
    /// Bumped by every invalidation, and the source of repositories' generations. A
    /// reader notes it before reading the database and only caches its result if no write
    /// happened meanwhile, so a read that raced a write can never put the pre-write state
    /// back.
    generation: AtomicU64,
    /// Puts hold it shared and invalidations exclusively: a put's "no write happened"
    /// check and the generation it stores are then taken with no invalidation between.
    writes: RwLock<()>,
}

impl ManifestCache {
    /// A cache whose entries live `ttl` (zero disables it) and weigh at most `max_bytes`.
    pub fn new(ttl: Duration, max_bytes: u64) -> Self {
        let entries = (!ttl.is_zero() && max_bytes > 0).then(|| {
            Cache::builder()
                .max_capacity(max_bytes)
                .weigher(|k: &Key, v: &Entry| weight(k, v))
                .time_to_live(ttl)
                .build()
        });
        ManifestCache {
            entries,
            // One second beyond the entries' TTL: an entry read just before a write cannot
            // outlive that write's record even with the clock's coarse steps.
            repositories: Cache::builder()
                .time_to_live(ttl + Duration::from_secs(1))
                .build(),
            generation: AtomicU64::new(0),
            writes: RwLock::new(()),
        }
    }

    /// A fresh entry for `reference` (a tag or a digest) in `repository`.
    pub fn get(&self, repository: &str, reference: &str) -> Option<Arc<CachedManifest>> {
        let entries = self.entries.as_ref()?;
        let current = self.repositories.get(repository).unwrap_or(0);
        let fresh = |reference: &str| {
            entries
                .get(&(repository.to_owned(), reference.to_owned()))
                .filter(|e| e.generation == current)
        };
        match fresh(reference)?.target {
            Target::Manifest(m) => Some(m),
            Target::Tag(digest) => match fresh(&digest)?.target {
                Target::Manifest(m) => Some(m),
                Target::Tag(_) => None,
            },
        }
    }

    /// The generation to pass to [`ManifestCache::put`]; read it before the database.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Remember a manifest read from the database for `reference` when the cache was at
    /// `generation`. The bytes are kept once per digest: a manifest already cached under its
    /// digest stays the one served, and a tag's entry only names the digest.
    pub fn put(
        &self,
        repository: &str,
        reference: &str,
        manifest: Arc<CachedManifest>,
        generation: u64,
    ) {
        let Some(entries) = &self.entries else {
            return;
        };
        let Ok(_shared) = self.writes.read() else {
            return;
        };
        if self.generation.load(Ordering::Acquire) != generation {
            return;
        }
        let current = self.repositories.get(repository).unwrap_or(0);
        let digest_key = (repository.to_owned(), manifest.digest.clone());
        let cached = entries
            .get(&digest_key)
            .is_some_and(|e| e.generation == current);
        if reference != manifest.digest {
            entries.insert(
                (repository.to_owned(), reference.to_owned()),
                Entry {
                    generation: current,
                    target: Target::Tag(Arc::from(manifest.digest.as_str())),
                },
            );
        }
        if !cached {
            entries.insert(
                digest_key,
                Entry {
                    generation: current,
                    target: Target::Manifest(manifest),
                },
            );
        }
    }

    /// Forget everything about `repository`; called after a write to it commits.
    pub fn invalidate(&self, repository: &str) {
        let Ok(_exclusive) = self.writes.write() else {
            return;
        };
        let next = self.generation.fetch_add(1, Ordering::AcqRel) + 1;
        self.repositories.insert(repository.to_owned(), next);
    }

    /// Drop expired entries now, giving their memory back. The cache also does this as it
    /// is used; this covers a registry that went quiet after a burst of pulls.
    pub fn evict_expired(&self) {
        if let Some(entries) = &self.entries {
            entries.run_pending_tasks();
        }
        self.repositories.run_pending_tasks();
    }

    /// The weight of what the cache holds, in bytes (after pending maintenance).
    pub fn weighted_bytes(&self) -> u64 {
        self.entries.as_ref().map_or(0, |e| {
            e.run_pending_tasks();
            e.weighted_size()
        })
    }
}

/// An entry's weight in bytes: its key, what it holds and a fixed overhead.
fn weight(key: &Key, entry: &Entry) -> u32 {
    let held = match &entry.target {
        Target::Tag(digest) => digest.len(),
        Target::Manifest(m) => m.payload.len() + m.digest.len() + m.media_type.len(),
    };
    let total = key.0.len() + key.1.len() + held + ENTRY_OVERHEAD;
    u32::try_from(total).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(d: &str) -> Arc<CachedManifest> {
        sized(d, 0)
    }

    fn sized(d: &str, len: usize) -> Arc<CachedManifest> {
        Arc::new(CachedManifest {
            repository_id: 1,
            digest: d.into(),
            media_type: "x".into(),
            payload: Bytes::from(vec![0u8; len]),
        })
    }

    #[test]
    fn hit_expire_and_invalidate() {
        let c = ManifestCache::new(Duration::from_millis(50), DEFAULT_BYTES);
        c.put("a/b", "v1", m("d1"), c.generation());
        assert_eq!(c.get("a/b", "v1").unwrap().digest, "d1");
        assert_eq!(c.get("a/b", "d1").unwrap().digest, "d1");
        assert!(c.get("a/b", "v2").is_none());
        let before = c.generation();
        c.invalidate("a/b");
        assert!(c.get("a/b", "v1").is_none());
        assert!(c.get("a/b", "d1").is_none());
        // A read that started before the write cannot cache its stale result.
        c.put("a/b", "v1", m("old"), before);
        assert!(c.get("a/b", "v1").is_none());
        c.put("a/b", "v1", m("d1"), c.generation());
        assert_eq!(c.get("a/b", "v1").unwrap().digest, "d1");
        std::thread::sleep(Duration::from_millis(60));
        assert!(c.get("a/b", "v1").is_none());
        let off = ManifestCache::new(Duration::ZERO, DEFAULT_BYTES);
        off.put("a/b", "v1", m("d1"), off.generation());
        assert!(off.get("a/b", "v1").is_none());
    }

    #[test]
    fn a_write_to_one_repository_keeps_the_others() {
        let c = ManifestCache::new(Duration::from_secs(60), DEFAULT_BYTES);
        c.put("a/b", "v1", m("d1"), c.generation());
        c.put("a/c", "v1", m("d2"), c.generation());
        c.invalidate("a/b");
        assert!(c.get("a/b", "v1").is_none());
        assert_eq!(c.get("a/c", "v1").unwrap().digest, "d2");
        // Entries read after the write count again.
        c.put("a/b", "v1", m("d3"), c.generation());
        assert_eq!(c.get("a/b", "v1").unwrap().digest, "d3");
    }

    #[test]
    fn tags_of_one_manifest_share_its_bytes() {
        let c = ManifestCache::new(Duration::from_secs(60), DEFAULT_BYTES);
        let size = 4 << 20;
        for i in 0..200 {
            // Each load brings its own copy of the bytes; the cache keeps the first.
            c.put("a/b", &format!("t{i}"), sized("d1", size), c.generation());
        }
        let first = c.get("a/b", "t0").unwrap();
        for i in 0..200 {
            let hit = c.get("a/b", &format!("t{i}")).unwrap();
            assert!(Arc::ptr_eq(&hit, &first), "tag t{i} holds its own copy");
        }
        let held = c.weighted_bytes();
        assert!(
            held < size as u64 + 200 * 1024,
            "200 tags of one manifest weigh {held} bytes"
        );
    }

    #[test]
    fn stays_within_its_byte_budget() {
        let budget = 16 << 20;
        let c = ManifestCache::new(Duration::from_secs(60), budget);
        for i in 0..50 {
            c.put(
                "a/b",
                &format!("t{i}"),
                sized(&format!("d{i}"), 1 << 20),
                c.generation(),
            );
        }
        let held = c.weighted_bytes();
        assert!(held <= budget, "{held} bytes held, budget {budget}");
        assert!(held > 0);
    }

    #[test]
    fn expired_entries_are_evicted() {
        let c = ManifestCache::new(Duration::from_millis(50), DEFAULT_BYTES);
        c.put("a/b", "v1", sized("d1", 1 << 20), c.generation());
        assert!(c.weighted_bytes() > 1 << 20);
        std::thread::sleep(Duration::from_millis(60));
        c.evict_expired();
        assert_eq!(c.weighted_bytes(), 0);
    }
}
