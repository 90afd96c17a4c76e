//! Which tags a cleanup deletes (GitLab's `CleanupTagsService`): a pure function
//! over one repository's tags, shared by the bulk tag delete API, the scheduled cleanup
//! policy and its preview, so all three decide alike.
//!
//! Order (keep rules win; a tag goes only when every remove rule agrees):
//! 1. `latest` is always kept;
//! 2. tags fully matching `name_regex_keep` are kept;
//! 3. tags not fully matching `name_regex_delete` are kept;
//! 4. the rest are sorted newest first by *published time* (when the tag last came to point
//!    at its manifest: the tag row's `updated_at`, which equals `created_at` until the tag is
//!    moved; GitLab's `updated_at || created_at`), ties broken by name ascending so the
//!    result never depends on storage order (tags sharing a digest share a time);
//! 5. the first `keep_n` are kept;
//! 6. those published after `now − older_than` are kept;
//! 7. immutable tags are kept;
//! 8. the rest are deleted.

use std::cmp::Ordering;

use chrono::{DateTime, Duration, Utc};
use regex::Regex;

use crate::cleanup_policy::{MAX_REGEX_LEN, full_match};
use crate::immutability::TagPatterns;

/// The tag a cleanup never deletes.
pub const LATEST: &str = "latest";

/// What the rules look at for one tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagFacts {
    /// Tag name.
    pub name: String,
    /// When the tag last came to point at its manifest (see the module docs).
    pub published_at: DateTime<Utc>,
    /// Digest of the manifest it points at (several tags may share one).
    pub digest: String,
}

/// Why a tag is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeepReason {
    /// It is `latest`.
    Latest,
    /// It fully matches `name_regex_keep`.
    MatchesKeepRegex,
    /// It does not fully match `name_regex_delete`.
    NotMatchingDeleteRegex,
    /// It is among the newest `keep_n`.
    KeepN,
    /// It was published less than `older_than` ago.
    NewerThanOlderThan,
    /// An immutable tag rule (this pattern) protects it.
    Immutable(String),
}

impl KeepReason {
    /// A short stable name (logs, previews).
    pub fn as_str(&self) -> &'static str {
        match self {
            KeepReason::Latest => "latest",
            KeepReason::MatchesKeepRegex => "name_regex_keep",
            KeepReason::NotMatchingDeleteRegex => "name_regex_delete_mismatch",
            KeepReason::KeepN => "keep_n",
            KeepReason::NewerThanOlderThan => "older_than",
            KeepReason::Immutable(_) => "immutable",
        }
    }
}

/// The verdict on one tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// The tag stays, for this reason.
    Keep(KeepReason),
    /// The tag goes.
    Delete,
}

/// Why rules cannot be built; the text is GitLab's parameter error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RulesError {
    /// Not a valid RE2-style regular expression (or one that compiles too large).
    #[error("{0} is an invalid regexp")]
    InvalidRegex(&'static str),
    /// Longer than [`MAX_REGEX_LEN`] characters.
    #[error("{0} is too long (maximum is {MAX_REGEX_LEN} characters)")]
    TooLong(&'static str),
    /// `keep_n` below zero.
    #[error("keep_n is invalid")]
    InvalidKeepN,
    /// `older_than` is not a duration.
    #[error("older_than is invalid")]
    InvalidOlderThan,
}

/// Compiled cleanup rules.
#[derive(Debug, Clone)]
pub struct Rules {
    delete: Regex,
    keep: Option<Regex>,
    keep_n: Option<usize>,
    older_than: Option<Duration>,
}

impl Rules {
    /// Compile the rules. Regexes are anchored (whole name); `older_than` is one of
    /// GitLab's human durations ([`parse_duration`]).
    pub fn new(
        name_regex_delete: &str,
        name_regex_keep: Option<&str>,
        keep_n: Option<i64>,
        older_than: Option<&str>,
    ) -> Result<Rules, RulesError> {
        let delete = bounded_full_match("name_regex_delete", name_regex_delete)?;
        let keep = name_regex_keep
            .map(|k| bounded_full_match("name_regex_keep", k))
            .transpose()?;
        let keep_n = keep_n
            .map(|n| usize::try_from(n).map_err(|_| RulesError::InvalidKeepN))
            .transpose()?;
        let older_than = older_than
            .map(|o| parse_duration(o).ok_or(RulesError::InvalidOlderThan))
            .transpose()?;
        Ok(Rules {
            delete,
            keep,
            keep_n,
            older_than,
        })
    }

    /// The verdict on each of `tags` (same order) at `now`.
    pub fn evaluate(
        &self,
        tags: &[TagFacts],
        immutable: &TagPatterns,
        now: DateTime<Utc>,
    ) -> Vec<Decision> {
        let mut out: Vec<Option<Decision>> = vec![None; tags.len()];
        let mut candidates = Vec::new();
        for (i, t) in tags.iter().enumerate() {
            let keep = if t.name == LATEST {
                Some(KeepReason::Latest)
            } else if self.keep.as_ref().is_some_and(|k| k.is_match(&t.name)) {
                Some(KeepReason::MatchesKeepRegex)
            } else if !self.delete.is_match(&t.name) {
                Some(KeepReason::NotMatchingDeleteRegex)
            } else {
                None
            };
            match keep {
                Some(reason) => out[i] = Some(Decision::Keep(reason)),
                None => candidates.push(i),
            }
        }
        candidates.sort_by(|&a, &b| newest_first(&tags[a], &tags[b]));
        let cutoff = self.older_than.and_then(|d| now.checked_sub_signed(d));
        for (rank, &i) in candidates.iter().enumerate() {
            let t = &tags[i];
            let decision = if self.keep_n.is_some_and(|n| rank < n) {
                Decision::Keep(KeepReason::KeepN)
            } else if cutoff.is_some_and(|c| t.published_at > c) {
                Decision::Keep(KeepReason::NewerThanOlderThan)
            } else if let Some(p) = immutable.matching(&t.name) {
                Decision::Keep(KeepReason::Immutable(p.to_owned()))
            } else {
                Decision::Delete
            };
            out[i] = Some(decision);
        }
        out.into_iter()
            .map(|d| d.unwrap_or(Decision::Keep(KeepReason::NotMatchingDeleteRegex)))
            .collect()
    }
}

/// `pattern` (the parameter `field`) as a whole-name regex: at most [`MAX_REGEX_LEN`]
/// characters, the bound a cleanup policy's regexes have (GitLab's column size), so a bulk
/// delete request cannot carry a longer one than a policy could store.
fn bounded_full_match(field: &'static str, pattern: &str) -> Result<Regex, RulesError> {
    if pattern.chars().count() > MAX_REGEX_LEN {
        return Err(RulesError::TooLong(field));
    }
    full_match(pattern).map_err(|_| RulesError::InvalidRegex(field))
}

/// Newest published first; equal times by name ascending.
fn newest_first(a: &TagFacts, b: &TagFacts) -> Ordering {
    b.published_at
        .cmp(&a.published_at)
        .then_with(|| a.name.cmp(&b.name))
}

/// One of GitLab's human durations (ChronicDuration as the bulk delete API reads
/// `older_than`): one or more `<number><unit>` parts, spaces allowed, such as `1h`, `7d`,
/// `1month`, `2 weeks`, `1d 12h`. Units: s/sec/second(s), m/min/minute(s), h/hr/hour(s),
/// d/day(s), w/week(s), mo/month(s) (30 days), y/year(s) (365 days). A bare number is
/// seconds. `None` when it is not one.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let s = text.trim().to_ascii_lowercase();
    if s.is_empty() {
        return None;
    }
    let mut total = Duration::zero();
    let mut rest = s.as_str();
    while !rest.is_empty() {
        rest = rest.trim_start();
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return None;
        }
        let n: i64 = rest[..digits].parse().ok()?;
        rest = rest[digits..].trim_start();
        let unit_len = rest
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = rest[unit_len..].trim_start_matches([' ', ',']);
        let seconds: i64 = match unit {
            "" | "s" | "sec" | "secs" | "second" | "seconds" => 1,
            "m" | "min" | "mins" | "minute" | "minutes" => 60,
            "h" | "hr" | "hrs" | "hour" | "hours" => 3_600,
            "d" | "day" | "days" => 86_400,
            "w" | "week" | "weeks" => 7 * 86_400,
            "mo" | "month" | "months" => 30 * 86_400,
            "y" | "year" | "years" => 365 * 86_400,
            _ => return None,
        };
        let part = Duration::try_seconds(n.checked_mul(seconds)?)?;
        total = total.checked_add(&part)?;
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0).unwrap()
    }

    fn tag(name: &str, hours_ago: i64, digest: &str) -> TagFacts {
        TagFacts {
            name: name.to_owned(),
            published_at: now() - Duration::hours(hours_ago),
            digest: digest.to_owned(),
        }
    }

    fn deleted(
        tags: &[TagFacts],
        rules: &Rules,
        immutable: &[&str],
    ) -> (Vec<String>, Vec<Decision>) {
        let patterns: Vec<String> = immutable.iter().map(|s| (*s).to_owned()).collect();
        let (immutable, _) = TagPatterns::compile(&patterns);
        let decisions = rules.evaluate(tags, &immutable, now());
        let mut names: Vec<String> = tags
            .iter()
            .zip(&decisions)
            .filter(|(_, d)| **d == Decision::Delete)
            .map(|(t, _)| t.name.clone())
            .collect();
        names.sort();
        (names, decisions)
    }

    /// GitLab's documented workflow (reduce_container_registry_storage.md): keep 1, keep
    /// `production-.*`, remove older than 7 days, remove `.*` → `dev-v42`, `v43`, `v42`.
    #[test]
    fn gitlab_documented_example() {
        let d = 24;
        let tags = vec![
            tag("latest", 2, "sha256:a"),
            tag("production-v44", 3 * d, "sha256:b"),
            tag("production-v43", 6 * d, "sha256:c"),
            tag("production-v42", 11 * d, "sha256:d"),
            tag("dev-v44", 2 * d, "sha256:e"),
            tag("dev-v43", 5 * d, "sha256:f"),
            tag("dev-v42", 10 * d, "sha256:g"),
            tag("v44", d, "sha256:h"),
            tag("v43", 12 * d, "sha256:i"),
            tag("v42", 20 * d, "sha256:j"),
        ];
        let rules = Rules::new(".*", Some("production-.*"), Some(1), Some("7d")).unwrap();
        let (gone, decisions) = deleted(&tags, &rules, &[]);
        assert_eq!(gone, ["dev-v42", "v42", "v43"]);
        assert_eq!(decisions[0], Decision::Keep(KeepReason::Latest));
        assert_eq!(decisions[1], Decision::Keep(KeepReason::MatchesKeepRegex));
        assert_eq!(decisions[7], Decision::Keep(KeepReason::KeepN));
        assert_eq!(decisions[4], Decision::Keep(KeepReason::NewerThanOlderThan));
    }

    #[test]
    fn rules_table() {
        let tags = vec![
            tag("latest", 100, "sha256:l"),
            tag("v1", 50, "sha256:1"),
            tag("v2", 40, "sha256:2"),
            tag("v3", 30, "sha256:3"),
            tag("v10", 20, "sha256:10"),
            tag("stable", 60, "sha256:s"),
            tag("release-1", 70, "sha256:r"),
            tag("av1", 80, "sha256:x"),
        ];
        type Case<'a> = (
            &'a str,
            Option<&'a str>,
            Option<i64>,
            Option<&'a str>,
            &'a [&'a str],
            &'a [&'a str],
        );
        let cases: &[Case] = &[
            // Everything but latest.
            (
                ".*",
                None,
                None,
                None,
                &[],
                &["av1", "release-1", "stable", "v1", "v10", "v2", "v3"],
            ),
            // Anchored: `v.` matches v1, v2, v3 only (not v10, not av1).
            ("v.", None, None, None, &[], &["v1", "v2", "v3"]),
            // Alternation stays inside the anchors.
            ("v1|v2", None, None, None, &[], &["v1", "v2"]),
            // Keep regex overrides; `.*` makes it a no-op.
            ("v.*", Some("v1.*"), None, None, &[], &["v2", "v3"]),
            (".*", Some(".*"), None, None, &[], &[]),
            // keep_n keeps the newest by published time (v10, v3).
            ("v.*", None, Some(2), None, &[], &["v1", "v2"]),
            ("v.*", None, Some(0), None, &[], &["v1", "v10", "v2", "v3"]),
            ("v.*", None, Some(10), None, &[], &[]),
            // older_than: older than 35 hours only.
            ("v.*", None, None, Some("35h"), &[], &["v1", "v2"]),
            ("v.*", None, None, Some("3d"), &[], &[]),
            // Both: a tag goes only when every remove rule agrees.
            ("v.*", None, Some(1), Some("25h"), &[], &["v1", "v2", "v3"]),
            ("v.*", None, Some(3), Some("25h"), &[], &["v1"]),
            // Immutable tags are skipped (unanchored patterns, as the rules are).
            (
                ".*",
                None,
                None,
                None,
                &["^v", "stable"],
                &["av1", "release-1"],
            ),
            // keep_n counts immutable tags among the newest (GitLab drops them last).
            ("v.*", None, Some(1), None, &["v3"], &["v1", "v2"]),
        ];
        for (del, keep, keep_n, older, immutable, want) in cases {
            let rules = Rules::new(del, *keep, *keep_n, *older).unwrap();
            let (gone, _) = deleted(&tags, &rules, immutable);
            assert_eq!(
                gone, *want,
                "delete={del} keep={keep:?} keep_n={keep_n:?} older_than={older:?} immutable={immutable:?}"
            );
        }
    }

    /// Tags on one digest share their published time: keep_n picks among them by name, the
    /// same way every run, and each tag is judged on its own (siblings are not dragged along).
    #[test]
    fn keep_n_with_tags_sharing_a_digest() {
        let tags = vec![
            tag("c", 10, "sha256:same"),
            tag("a", 10, "sha256:same"),
            tag("b", 10, "sha256:same"),
            tag("old", 20, "sha256:other"),
            tag("new", 1, "sha256:newer"),
        ];
        let rules = Rules::new(".*", None, Some(2), None).unwrap();
        let (gone, decisions) = deleted(&tags, &rules, &[]);
        assert_eq!(gone, ["b", "c", "old"]);
        assert_eq!(decisions[1], Decision::Keep(KeepReason::KeepN));
        assert_eq!(decisions[4], Decision::Keep(KeepReason::KeepN));
        // Any input order gives the same answer.
        let mut reversed = tags.clone();
        reversed.reverse();
        let (again, _) = deleted(&reversed, &rules, &[]);
        assert_eq!(again, gone);
    }

    #[test]
    fn latest_is_never_deleted() {
        let tags = vec![tag("latest", 10_000, "sha256:l")];
        let rules = Rules::new("latest", None, Some(0), Some("1s")).unwrap();
        let (gone, decisions) = deleted(&tags, &rules, &[]);
        assert!(gone.is_empty());
        assert_eq!(decisions[0], Decision::Keep(KeepReason::Latest));
    }

    #[test]
    fn invalid_rules() {
        assert_eq!(
            Rules::new("v[0-9", None, None, None).unwrap_err(),
            RulesError::InvalidRegex("name_regex_delete")
        );
        assert_eq!(
            Rules::new(".*", Some("(a)\\1"), None, None).unwrap_err(),
            RulesError::InvalidRegex("name_regex_keep")
        );
        assert_eq!(
            Rules::new(".*", Some("a)|(b"), None, None).unwrap_err(),
            RulesError::InvalidRegex("name_regex_keep")
        );
        assert_eq!(
            Rules::new(".*", None, Some(-1), None).unwrap_err(),
            RulesError::InvalidKeepN
        );
        assert_eq!(
            Rules::new(".*", None, None, Some("soon")).unwrap_err(),
            RulesError::InvalidOlderThan
        );
        assert_eq!(
            RulesError::InvalidRegex("name_regex_delete").to_string(),
            "name_regex_delete is an invalid regexp"
        );
    }

    #[test]
    fn regexes_are_bounded_in_length_and_compiled_size() {
        let long = "a".repeat(MAX_REGEX_LEN + 1);
        assert_eq!(
            Rules::new(&long, None, None, None).unwrap_err(),
            RulesError::TooLong("name_regex_delete")
        );
        assert_eq!(
            Rules::new(".*", Some(&long), None, None).unwrap_err(),
            RulesError::TooLong("name_regex_keep")
        );
        assert_eq!(
            RulesError::TooLong("name_regex_keep").to_string(),
            "name_regex_keep is too long (maximum is 255 characters)"
        );
        assert!(Rules::new(&"a".repeat(MAX_REGEX_LEN), None, None, None).is_ok());
        // Short, but it would compile to megabytes.
        assert_eq!(
            Rules::new(r"(\w{100}){100}", None, None, None).unwrap_err(),
            RulesError::InvalidRegex("name_regex_delete")
        );
    }

    #[test]
    fn durations() {
        let cases = [
            ("1h", Some(Duration::hours(1))),
            ("7d", Some(Duration::days(7))),
            ("14d", Some(Duration::days(14))),
            ("90d", Some(Duration::days(90))),
            ("1month", Some(Duration::days(30))),
            ("3months", Some(Duration::days(90))),
            ("2 weeks", Some(Duration::weeks(2))),
            ("1d 12h", Some(Duration::hours(36))),
            ("30m", Some(Duration::minutes(30))),
            ("45", Some(Duration::seconds(45))),
            ("1y", Some(Duration::days(365))),
            ("", None),
            ("d", None),
            ("1x", None),
            ("-1d", None),
            ("99999999999999999999d", None),
        ];
        for (text, want) in cases {
            assert_eq!(parse_duration(text), want, "{text:?}");
        }
    }
}
