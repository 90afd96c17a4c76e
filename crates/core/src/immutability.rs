//! Immutable tag rules: a project's patterns over tag names. A tag that exists and
//! matches one cannot be overwritten or deleted, by anyone; creating it is fine. Patterns
//! are RE2-style regular expressions (the `regex` crate's syntax is RE2's), matched
//! unanchored like GitLab's.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use regex::Regex;

/// GitLab's cap on a pattern's length, in characters.
pub const MAX_PATTERN_LEN: usize = 100;

/// GitLab's cap on immutable tag rules per project.
pub const MAX_RULES_PER_PROJECT: u64 = 5;

/// Why a pattern cannot be a rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    /// Empty pattern.
    #[error("tag_name_pattern is missing")]
    Empty,
    /// Longer than [`MAX_PATTERN_LEN`] characters.
    #[error("tag_name_pattern is too long (maximum is {MAX_PATTERN_LEN} characters)")]
    TooLong,
    /// Not a valid RE2-style regular expression.
    #[error("tag_name_pattern should be a valid RE2 regular expression")]
    Invalid,
}

/// Check that `pattern` may be stored as a rule.
pub fn validate_pattern(pattern: &str) -> Result<(), PatternError> {
    if pattern.is_empty() {
        return Err(PatternError::Empty);
    }
    if pattern.chars().count() > MAX_PATTERN_LEN {
        return Err(PatternError::TooLong);
    }
    crate::user_regex::compile(pattern).map_err(|_| PatternError::Invalid)?;
    Ok(())
}

/// A set of compiled patterns: compile once (per request, or once per rule change through
/// [`PatternCache`]), ask per tag.
#[derive(Debug, Clone, Default)]
pub struct TagPatterns {
    rules: Vec<(String, Regex)>,
}

impl TagPatterns {
    /// Compile `patterns`. One that does not compile matches nothing; it is returned among
    /// the second value so the caller can log it.
    pub fn compile(patterns: &[String]) -> (Self, Vec<&str>) {
        let mut rules = Vec::with_capacity(patterns.len());
        let mut invalid = Vec::new();
        for p in patterns {
            match crate::user_regex::compile(p) {
                Ok(re) => rules.push((p.clone(), re)),
                Err(_) => invalid.push(p.as_str()),
            }
        }
        (Self { rules }, invalid)
    }

    /// No pattern at all (nothing is immutable).
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The first pattern `tag` matches, if any.
    pub fn matching(&self, tag: &str) -> Option<&str> {
        self.rules
            .iter()
            .find(|(_, re)| re.is_match(tag))
            .map(|(p, _)| p.as_str())
    }
}

/// Compiled pattern sets by their pattern list, for a service that is handed the same list
/// again and again (the registry gets a project's patterns in every push token): each
/// distinct list, that is each change of a project's rules, is compiled once. Bounded to
/// `capacity` lists; when full, an arbitrary one is dropped (a dropped list that comes back
/// is compiled again, nothing worse). Lists longer than [`MAX_CACHED_LIST_CHARS`] in total
/// are compiled per call and not kept, so the memory held stays bounded by the capacity.
#[derive(Debug)]
pub struct PatternCache {
    capacity: usize,
    sets: Mutex<HashMap<Vec<String>, Arc<TagPatterns>>>,
}

/// The longest pattern list (total characters) a [`PatternCache`] keeps: the most a project
/// can have ([`MAX_RULES_PER_PROJECT`] patterns of [`MAX_PATTERN_LEN`] characters), with room.
pub const MAX_CACHED_LIST_CHARS: usize = 4 * MAX_RULES_PER_PROJECT as usize * MAX_PATTERN_LEN;

/// What [`PatternCache::get`] found.
#[derive(Debug)]
pub struct Cached {
    /// The compiled set.
    pub patterns: Arc<TagPatterns>,
    /// `Some(invalid patterns)` when this call compiled the list (a miss), for the caller to
    /// log and count once; `None` when the set was already compiled.
    pub compiled: Option<Vec<String>>,
}

impl PatternCache {
    /// An empty cache holding at most `capacity` lists (at least one).
    pub fn new(capacity: usize) -> Self {
        PatternCache {
            capacity: capacity.max(1),
            sets: Mutex::new(HashMap::new()),
        }
    }

    /// The compiled set for `patterns`, compiling it unless it is cached.
    pub fn get(&self, patterns: &[String]) -> Cached {
        if let Some(set) = self.sets.lock().ok().and_then(|m| m.get(patterns).cloned()) {
            return Cached {
                patterns: set,
                compiled: None,
            };
        }
        // Compiled outside the lock: two callers racing on a new list both compile it
        // (bounded work), and neither waits on the other's compilation.
        let (set, invalid) = TagPatterns::compile(patterns);
        let invalid: Vec<String> = invalid.into_iter().map(str::to_owned).collect();
        let set = Arc::new(set);
        let size: usize = patterns.iter().map(|p| p.chars().count()).sum();
        if size <= MAX_CACHED_LIST_CHARS
            && let Ok(mut sets) = self.sets.lock()
        {
            if sets.len() >= self.capacity
                && let Some(victim) = sets.keys().next().cloned()
            {
                sets.remove(&victim);
            }
            sets.insert(patterns.to_vec(), set.clone());
        }
        Cached {
            patterns: set,
            compiled: Some(invalid),
        }
    }

    /// How many lists are cached.
    pub fn len(&self) -> usize {
        self.sets.lock().map(|m| m.len()).unwrap_or(0)
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation() {
        assert_eq!(validate_pattern("^v[0-9]+"), Ok(()));
        assert_eq!(validate_pattern(""), Err(PatternError::Empty));
        assert_eq!(validate_pattern("v[0-9"), Err(PatternError::Invalid));
        // RE2 has no backreferences or lookaround.
        assert_eq!(validate_pattern("(a)\\1"), Err(PatternError::Invalid));
        assert_eq!(validate_pattern("(?=v)"), Err(PatternError::Invalid));
        assert_eq!(validate_pattern(&"a".repeat(100)), Ok(()));
        assert_eq!(
            validate_pattern(&"a".repeat(101)),
            Err(PatternError::TooLong)
        );
    }

    #[test]
    fn matching_is_unanchored_and_skips_invalid() {
        let raw = vec!["^v[0-9]+".to_owned(), "v[".to_owned(), "release".to_owned()];
        let (set, invalid) = TagPatterns::compile(&raw);
        assert_eq!(invalid, vec!["v["]);
        assert_eq!(set.matching("v1"), Some("^v[0-9]+"));
        assert_eq!(set.matching("v1.2-rc"), Some("^v[0-9]+"));
        assert_eq!(set.matching("pre-release-3"), Some("release"));
        assert_eq!(set.matching("latest"), None);
        assert_eq!(set.matching("av1"), None);
        assert!(TagPatterns::compile(&[]).0.is_empty());
    }

    #[test]
    fn patterns_are_bounded_in_compiled_size() {
        // Within the length cap, but megabytes once compiled.
        assert_eq!(validate_pattern(r"\w{100}"), Err(PatternError::Invalid));
        let raw = [r"\w{100}".to_owned()];
        let (set, invalid) = TagPatterns::compile(&raw);
        assert!(set.is_empty());
        assert_eq!(invalid, vec![r"\w{100}"]);
    }

    #[test]
    fn the_cache_compiles_each_list_once_and_stays_bounded() {
        let cache = PatternCache::new(2);
        let a = vec!["^v[0-9]+".to_owned(), "v[".to_owned()];
        let first = cache.get(&a);
        assert_eq!(first.compiled, Some(vec!["v[".to_owned()]));
        assert_eq!(first.patterns.matching("v1"), Some("^v[0-9]+"));
        let again = cache.get(&a);
        assert!(
            again.compiled.is_none(),
            "the same list is not compiled again"
        );
        assert!(Arc::ptr_eq(&first.patterns, &again.patterns));
        // A change of the rules is a new list: compiled once.
        let b = vec!["^release-".to_owned()];
        assert!(cache.get(&b).compiled.is_some());
        assert!(cache.get(&b).compiled.is_none());
        // Full: a third list evicts one, the size stays at the capacity.
        assert!(cache.get(&[]).compiled.is_some());
        assert_eq!(cache.len(), 2);
        // A list longer than any project's is compiled but not kept.
        let huge = vec!["a".repeat(MAX_CACHED_LIST_CHARS + 1)];
        assert!(cache.get(&huge).compiled.is_some());
        assert!(cache.get(&huge).compiled.is_some());
        assert_eq!(cache.len(), 2);
    }
}
