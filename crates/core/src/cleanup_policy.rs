//! Cleanup-policy settings (GitLab's `container_expiration_policy`): the
//! allowed values, GitLab's defaults for a project without a stored policy, validation with
//! GitLab's messages, merging a partial update, and when the next run is due. The worker
//! that applies a policy lives elsewhere; this is the pure part.

use chrono::{DateTime, Duration, Months, Utc};
use regex::Regex;

/// Allowed `cadence` values (how often the policy runs).
pub const CADENCES: &[&str] = &["1d", "7d", "14d", "1month", "3month"];

/// Allowed `keep_n` values (null is allowed too: keep no fixed number).
pub const KEEP_N: &[i32] = &[1, 5, 10, 25, 50, 100];

/// Allowed `older_than` values (null is allowed too: no age limit).
pub const OLDER_THAN: &[&str] = &["7d", "14d", "30d", "90d"];

/// The longest `name_regex` / `name_regex_keep`, in characters (GitLab's column size).
pub const MAX_REGEX_LEN: usize = 255;

/// A project's cleanup-policy settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// One of [`CADENCES`].
    pub cadence: String,
    /// Whether the policy runs at all.
    pub enabled: bool,
    /// One of [`KEEP_N`], or none.
    pub keep_n: Option<i32>,
    /// One of [`OLDER_THAN`], or none.
    pub older_than: Option<String>,
    /// Tags to remove (RE2-style, matched against the whole name); required when enabled.
    pub name_regex: Option<String>,
    /// Tags to keep whatever else says (RE2-style, whole name).
    pub name_regex_keep: Option<String>,
}

impl Default for Policy {
    /// GitLab's policy for a new project: `cadence:"1d", enabled:false, keep_n:10,
    /// older_than:"90d", name_regex:".*", name_regex_keep:null`.
    fn default() -> Self {
        Self {
            cadence: "1d".to_owned(),
            enabled: false,
            keep_n: Some(10),
            older_than: Some("90d".to_owned()),
            name_regex: Some(".*".to_owned()),
            name_regex_keep: None,
        }
    }
}

/// A partial update: `None` leaves a field as it is; for nullable fields `Some(None)` clears.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PolicyChanges {
    /// New cadence.
    pub cadence: Option<String>,
    /// New enabled flag.
    pub enabled: Option<bool>,
    /// New keep_n (`Some(None)`: null).
    pub keep_n: Option<Option<i32>>,
    /// New older_than (`Some(None)`: null).
    pub older_than: Option<Option<String>>,
    /// New name_regex (`Some(None)`: null).
    pub name_regex: Option<Option<String>>,
    /// New name_regex_keep (`Some(None)`: null).
    pub name_regex_keep: Option<Option<String>>,
}

/// Why a policy cannot be saved; the text is GitLab's (`container_expiration_policy.<field>
/// <problem>`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// A value outside the allowed list.
    #[error("container_expiration_policy.{0} is not included in the list")]
    NotInList(&'static str),
    /// A required value is missing.
    #[error("container_expiration_policy.{0} can't be blank")]
    Blank(&'static str),
    /// Longer than [`MAX_REGEX_LEN`].
    #[error("container_expiration_policy.{0} is too long (maximum is {MAX_REGEX_LEN} characters)")]
    TooLong(&'static str),
    /// Not a valid RE2-style regular expression.
    #[error("container_expiration_policy.{0} not valid RE2 syntax")]
    InvalidRegex(&'static str),
}

impl Policy {
    /// This policy with `changes` applied (not yet validated).
    pub fn merged(&self, changes: &PolicyChanges) -> Policy {
        let mut p = self.clone();
        if let Some(c) = &changes.cadence {
            p.cadence.clone_from(c);
        }
        if let Some(e) = changes.enabled {
            p.enabled = e;
        }
        if let Some(k) = changes.keep_n {
            p.keep_n = k;
        }
        if let Some(o) = &changes.older_than {
            p.older_than.clone_from(o);
        }
        if let Some(r) = &changes.name_regex {
            p.name_regex.clone_from(r);
        }
        if let Some(r) = &changes.name_regex_keep {
            p.name_regex_keep.clone_from(r);
        }
        p
    }

    /// Check every field against GitLab's rules (first problem wins).
    pub fn validate(&self) -> Result<(), PolicyError> {
        if self.cadence.is_empty() {
            return Err(PolicyError::Blank("cadence"));
        }
        if !CADENCES.contains(&self.cadence.as_str()) {
            return Err(PolicyError::NotInList("cadence"));
        }
        if self.keep_n.is_some_and(|k| !KEEP_N.contains(&k)) {
            return Err(PolicyError::NotInList("keep_n"));
        }
        if self
            .older_than
            .as_deref()
            .is_some_and(|o| !OLDER_THAN.contains(&o))
        {
            return Err(PolicyError::NotInList("older_than"));
        }
        if self.enabled && self.name_regex.as_deref().is_none_or(str::is_empty) {
            return Err(PolicyError::Blank("name_regex"));
        }
        for (field, value) in [
            ("name_regex", &self.name_regex),
            ("name_regex_keep", &self.name_regex_keep),
        ] {
            if let Some(v) = value {
                if v.chars().count() > MAX_REGEX_LEN {
                    return Err(PolicyError::TooLong(field));
                }
                if full_match(v).is_err() {
                    return Err(PolicyError::InvalidRegex(field));
                }
            }
        }
        Ok(())
    }
}

/// `pattern` compiled to match whole tag names only (GitLab anchors policy regexes as
/// `\A(pattern)\z`), within [`crate::user_regex`]'s size bounds. The pattern must be valid
/// on its own, so `a)|(b` cannot escape the anchoring group. Callers compile once per
/// policy save, bulk-delete request or cleanup run, never per tag.
pub fn full_match(pattern: &str) -> Result<Regex, regex::Error> {
    crate::user_regex::compile(pattern)?;
    crate::user_regex::compile(&format!(r"\A(?:{pattern})\z"))
}

/// When a policy with `cadence` saved at `from` runs next: `from` plus the cadence (months
/// are calendar months). `None` for an unknown cadence.
pub fn next_run_at(cadence: &str, from: DateTime<Utc>) -> Option<DateTime<Utc>> {
    match cadence {
        "1d" => from.checked_add_signed(Duration::days(1)),
        "7d" => from.checked_add_signed(Duration::days(7)),
        "14d" => from.checked_add_signed(Duration::days(14)),
        "1month" => from.checked_add_months(Months::new(1)),
        "3month" => from.checked_add_months(Months::new(3)),
        _ => None,
    }
}

/// `next_run_at` after saving `after` over `before` (whose schedule was `before_next`) at
/// `now`: none while disabled; recomputed from `now` when the policy is turned on, its
/// cadence changes or it had no schedule; otherwise unchanged.
pub fn next_run_after_save(
    before: &Policy,
    before_next: Option<DateTime<Utc>>,
    after: &Policy,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    if !after.enabled {
        return None;
    }
    match before_next {
        Some(t) if before.enabled && before.cadence == after.cadence => Some(t),
        _ => next_run_at(&after.cadence, now),
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn at(y: i32, m: u32, d: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, 12, 30, 0).unwrap()
    }

    #[test]
    fn defaults_are_gitlabs() {
        let p = Policy::default();
        assert_eq!(p.cadence, "1d");
        assert!(!p.enabled);
        assert_eq!(p.keep_n, Some(10));
        assert_eq!(p.older_than.as_deref(), Some("90d"));
        assert_eq!(p.name_regex.as_deref(), Some(".*"));
        assert_eq!(p.name_regex_keep, None);
        assert_eq!(p.validate(), Ok(()));
    }

    #[test]
    fn validation_table() {
        use PolicyError::*;
        let base = Policy::default();
        let s = |v: &str| Some(v.to_owned());
        let cases: Vec<(PolicyChanges, Result<(), PolicyError>)> = vec![
            (PolicyChanges::default(), Ok(())),
            (
                PolicyChanges {
                    enabled: Some(true),
                    cadence: s("7d"),
                    keep_n: Some(Some(5)),
                    older_than: Some(s("14d")),
                    name_regex: Some(s(".*")),
                    name_regex_keep: Some(s("^release")),
                },
                Ok(()),
            ),
            (
                PolicyChanges {
                    cadence: s("3month"),
                    keep_n: Some(None),
                    older_than: Some(None),
                    ..Default::default()
                },
                Ok(()),
            ),
            (
                PolicyChanges {
                    cadence: s("2d"),
                    ..Default::default()
                },
                Err(NotInList("cadence")),
            ),
            (
                PolicyChanges {
                    cadence: s(""),
                    ..Default::default()
                },
                Err(Blank("cadence")),
            ),
            (
                PolicyChanges {
                    keep_n: Some(Some(3)),
                    ..Default::default()
                },
                Err(NotInList("keep_n")),
            ),
            (
                PolicyChanges {
                    keep_n: Some(Some(0)),
                    ..Default::default()
                },
                Err(NotInList("keep_n")),
            ),
            (
                PolicyChanges {
                    older_than: Some(s("1d")),
                    ..Default::default()
                },
                Err(NotInList("older_than")),
            ),
            (
                PolicyChanges {
                    enabled: Some(true),
                    name_regex: Some(None),
                    ..Default::default()
                },
                Err(Blank("name_regex")),
            ),
            (
                PolicyChanges {
                    name_regex: Some(None),
                    ..Default::default()
                },
                Ok(()),
            ),
            (
                PolicyChanges {
                    name_regex: Some(s("v[0-9")),
                    ..Default::default()
                },
                Err(InvalidRegex("name_regex")),
            ),
            (
                PolicyChanges {
                    name_regex_keep: Some(s("(a)\\1")),
                    ..Default::default()
                },
                Err(InvalidRegex("name_regex_keep")),
            ),
            (
                PolicyChanges {
                    name_regex_keep: Some(s("a)|(b")),
                    ..Default::default()
                },
                Err(InvalidRegex("name_regex_keep")),
            ),
            (
                PolicyChanges {
                    name_regex: Some(Some("a".repeat(256))),
                    ..Default::default()
                },
                Err(TooLong("name_regex")),
            ),
            (
                PolicyChanges {
                    name_regex: Some(Some("a".repeat(255))),
                    ..Default::default()
                },
                Ok(()),
            ),
            // Short, but compiled it would take megabytes (and a third of a second).
            (
                PolicyChanges {
                    name_regex_keep: Some(s(r"[\p{L}\p{N}]{200}")),
                    ..Default::default()
                },
                Err(InvalidRegex("name_regex_keep")),
            ),
        ];
        for (changes, want) in cases {
            assert_eq!(base.merged(&changes).validate(), want, "{changes:?}");
        }
    }

    #[test]
    fn messages_are_gitlabs() {
        assert_eq!(
            PolicyError::NotInList("cadence").to_string(),
            "container_expiration_policy.cadence is not included in the list"
        );
        assert_eq!(
            PolicyError::Blank("name_regex").to_string(),
            "container_expiration_policy.name_regex can't be blank"
        );
    }

    #[test]
    fn merge_keeps_what_is_not_given() {
        let p = Policy::default().merged(&PolicyChanges {
            keep_n: Some(Some(25)),
            ..Default::default()
        });
        assert_eq!(
            p,
            Policy {
                keep_n: Some(25),
                ..Policy::default()
            }
        );
    }

    #[test]
    fn full_match_is_anchored() {
        let re = full_match("v[0-9]+").unwrap();
        assert!(re.is_match("v12"));
        assert!(!re.is_match("av12"));
        assert!(!re.is_match("v12-rc"));
        assert!(full_match(".*").unwrap().is_match(""));
    }

    #[test]
    fn next_run_at_table() {
        let cases = [
            ("1d", at(2026, 1, 31), Some(at(2026, 2, 1))),
            ("7d", at(2026, 1, 31), Some(at(2026, 2, 7))),
            ("14d", at(2026, 12, 25), Some(at(2027, 1, 8))),
            ("1month", at(2026, 1, 15), Some(at(2026, 2, 15))),
            // Calendar months: clamped to the end of a shorter month.
            ("1month", at(2026, 1, 31), Some(at(2026, 2, 28))),
            ("3month", at(2026, 11, 30), Some(at(2027, 2, 28))),
            ("3month", at(2028, 11, 30), Some(at(2029, 2, 28))),
            ("2d", at(2026, 1, 1), None),
        ];
        for (cadence, from, want) in cases {
            assert_eq!(next_run_at(cadence, from), want, "{cadence} from {from}");
        }
    }

    #[test]
    fn scheduling_after_save_table() {
        let now = at(2026, 3, 1);
        let old_next = Some(at(2026, 3, 5));
        let off = Policy::default();
        let on = Policy {
            enabled: true,
            ..Policy::default()
        };
        let on_7d = Policy {
            cadence: "7d".into(),
            ..on.clone()
        };
        let on_keep_5 = Policy {
            keep_n: Some(5),
            ..on.clone()
        };
        let cases = [
            // Turning on schedules from now.
            (&off, None, &on, Some(at(2026, 3, 2))),
            // Staying off: nothing.
            (&off, None, &off, None),
            // Turning off clears.
            (&on, old_next, &off, None),
            // Changing the cadence reschedules from now.
            (&on, old_next, &on_7d, Some(at(2026, 3, 8))),
            // Other changes keep the schedule.
            (&on, old_next, &on_keep_5, old_next),
            (&on, old_next, &on, old_next),
            // Enabled but unscheduled: schedule.
            (&on, None, &on, Some(at(2026, 3, 2))),
        ];
        for (before, before_next, after, want) in cases {
            assert_eq!(
                next_run_after_save(before, before_next, after, now),
                want,
                "{before:?} -> {after:?}"
            );
        }
    }
}
