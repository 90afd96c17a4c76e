//! Compiling the regular expressions users give (cleanup-policy and bulk-delete tag name
//! regexes, immutable tag patterns) within a bounded cost. Their text is capped in
//! characters where they are accepted; this caps what a short text can still expand to:
//! `\w{100}` is 6 characters but, with Unicode classes, compiles to several megabytes and
//! takes a third of a second at the `regex` crate's default limit (10 MiB).

use regex::{Regex, RegexBuilder};

/// The largest compiled program a user's pattern may need, in bytes (for the NFA and,
/// separately, the lazy DFA's cache). At this bound the slowest pattern of at most 255
/// characters we found fails to compile within about 20 ms (release build); ordinary
/// tag patterns (`v[0-9]+\.[0-9]+`, `[a-z0-9]{7,40}`, `.*-rc[0-9]*`) need a few kilobytes.
pub const MAX_COMPILED_BYTES: usize = 1 << 20;

/// `pattern` compiled with the size bounds above; a pattern that needs more is an error
/// like any invalid one.
pub fn compile(pattern: &str) -> Result<Regex, regex::Error> {
    RegexBuilder::new(pattern)
        .size_limit(MAX_COMPILED_BYTES)
        .dfa_size_limit(MAX_COMPILED_BYTES)
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_patterns_that_expand_too_far_are_refused() {
        for ok in [
            ".*",
            r"v[0-9]+\.[0-9]+\.[0-9]+(-rc[0-9]+)?",
            "[a-z0-9]{7,40}",
            r"\d{20}",
        ] {
            assert!(compile(ok).is_ok(), "{ok}");
        }
        for huge in [
            r"\w{100}",
            r"(\w{100}){100}",
            r"[\p{L}\p{N}]{200}",
            r"(\w+\d+){30}",
        ] {
            let started = std::time::Instant::now();
            assert!(compile(huge).is_err(), "{huge}");
            // Refused within the budget, not after building megabytes (generous for debug
            // builds on a loaded machine).
            assert!(
                started.elapsed() < std::time::Duration::from_secs(2),
                "{huge}"
            );
        }
    }
}
