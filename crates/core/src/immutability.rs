//! Immutable tag rules: a project's patterns over tag names. A tag that exists and
//! matches one cannot be overwritten or deleted, by anyone; creating it is fine. Patterns
//! are RE2-style regular expressions (the `regex` crate's syntax is RE2's), matched
//! unanchored like GitLab's.

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
    Regex::new(pattern).map_err(|_| PatternError::Invalid)?;
    Ok(())
}

/// A set of compiled patterns: compile once per request, ask per tag.
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
            match Regex::new(p) {
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
}
