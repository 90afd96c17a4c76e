//! Background jobs as data: what kinds of job exist, the states a job moves through, each
//! kind's payload, and how long a failed attempt waits before the next. berth-auth enqueues
//! jobs (rows of the `jobs` table), berth-gc runs them; both read these types, so a kind or
//! payload means the same thing on either side.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::cleanup::{Rules, RulesError};

/// A kind of job (stored as its [`JobKind::as_str`] name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobKind {
    /// Delete a whole repository: tags, manifests, blob links, then the row.
    DeleteRepository,
    /// Delete the tags of a repository that bulk-delete rules select.
    DeleteTags,
}

impl JobKind {
    /// Every kind.
    pub const ALL: [JobKind; 2] = [JobKind::DeleteRepository, JobKind::DeleteTags];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::DeleteRepository => "delete_repository",
            JobKind::DeleteTags => "delete_tags",
        }
    }
}

/// The state of a job (stored as its [`JobState::as_str`] name).
///
/// `queued` → `running` when a worker claims it; `running` → `succeeded` or `failed` when
/// it ends, or back to `queued` (with a later `run_after`) when an attempt failed and may be
/// retried or the worker was asked to stop. A `running` job whose lease ran out (its worker
/// died) is claimed again as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobState {
    /// Waiting for a worker (possibly until `run_after`).
    Queued,
    /// A worker holds it under a lease.
    Running,
    /// Finished.
    Succeeded,
    /// Gave up; `last_error` says why.
    Failed,
}

impl JobState {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
        }
    }

    /// Not yet finished (queued or running).
    pub fn is_pending(self) -> bool {
        matches!(self, JobState::Queued | JobState::Running)
    }
}

/// A stored kind or state name that is not one of ours.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown job {what} {value:?}")]
pub struct UnknownName {
    what: &'static str,
    value: String,
}

impl FromStr for JobKind {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JobKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownName {
                what: "kind",
                value: s.to_owned(),
            })
    }
}

impl FromStr for JobState {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [
            JobState::Queued,
            JobState::Running,
            JobState::Succeeded,
            JobState::Failed,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
        .ok_or_else(|| UnknownName {
            what: "state",
            value: s.to_owned(),
        })
    }
}

impl fmt::Display for JobKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The repository a deletion job is about. The path is kept because the job outlives the
/// repository row (its status stays readable); the project may be gone too (a project or
/// user deletion), hence optional.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepositoryTarget {
    /// The repository's id.
    pub repository_id: i64,
    /// Its path when the job was enqueued.
    pub repository_path: String,
    /// The project owning it then, if any (its immutable tag rules apply).
    pub project_id: Option<i64>,
}

/// GitLab's bulk tag delete parameters, stored as they were requested.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BulkRules {
    /// Tags to delete (whole-name regex).
    pub name_regex_delete: String,
    /// Tags to keep whatever else says.
    pub name_regex_keep: Option<String>,
    /// Keep the newest N of the matching tags.
    pub keep_n: Option<i64>,
    /// Keep tags published less than this long before the request (`1h`, `7d`, `1month`).
    pub older_than: Option<String>,
}

impl BulkRules {
    /// The compiled rules (the API validates with this before enqueueing).
    pub fn rules(&self) -> Result<Rules, RulesError> {
        Rules::new(
            &self.name_regex_delete,
            self.name_regex_keep.as_deref(),
            self.keep_n,
            self.older_than.as_deref(),
        )
    }
}

/// A job's payload, one variant per [`JobKind`]; stored as JSON in the `payload` column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum JobPayload {
    /// [`JobKind::DeleteTags`]: the target and the rules (listed first: an untagged enum
    /// tries variants in order, and a repository payload has no `rules`).
    DeleteTags {
        /// The repository.
        #[serde(flatten)]
        target: RepositoryTarget,
        /// What to delete.
        rules: BulkRules,
    },
    /// [`JobKind::DeleteRepository`].
    DeleteRepository(RepositoryTarget),
}

impl JobPayload {
    /// The kind this payload belongs to.
    pub fn kind(&self) -> JobKind {
        match self {
            JobPayload::DeleteRepository(_) => JobKind::DeleteRepository,
            JobPayload::DeleteTags { .. } => JobKind::DeleteTags,
        }
    }

    /// The repository the job is about.
    pub fn target(&self) -> &RepositoryTarget {
        match self {
            JobPayload::DeleteRepository(t) | JobPayload::DeleteTags { target: t, .. } => t,
        }
    }

    /// Read a stored payload of `kind`; an error when the JSON is not that kind's shape.
    pub fn parse(kind: JobKind, json: &str) -> Result<JobPayload, serde_json::Error> {
        Ok(match kind {
            JobKind::DeleteRepository => JobPayload::DeleteRepository(serde_json::from_str(json)?),
            JobKind::DeleteTags => {
                #[derive(Deserialize)]
                struct Tags {
                    #[serde(flatten)]
                    target: RepositoryTarget,
                    rules: BulkRules,
                }
                let t: Tags = serde_json::from_str(json)?;
                JobPayload::DeleteTags {
                    target: t.target,
                    rules: t.rules,
                }
            }
        })
    }

    /// The payload as stored.
    pub fn to_json(&self) -> String {
        // Serializing plain structs of strings and integers cannot fail.
        serde_json::to_string(self).unwrap_or_else(|_| "{}".to_owned())
    }
}

/// How long a job waits after its `attempts`-th attempt failed: 10 s doubling per attempt,
/// at most 10 min — long enough for a database restart, short enough that a deletion shown
/// as scheduled is not forgotten.
pub fn retry_delay(attempts: i32) -> Duration {
    const BASE: u64 = 10;
    const CAP: u64 = 10 * 60;
    let exp = (attempts.max(1) - 1).min(16) as u32;
    Duration::from_secs(BASE.saturating_mul(1 << exp).min(CAP))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for k in JobKind::ALL {
            assert_eq!(k.as_str().parse::<JobKind>(), Ok(k));
        }
        for s in [
            JobState::Queued,
            JobState::Running,
            JobState::Succeeded,
            JobState::Failed,
        ] {
            assert_eq!(s.as_str().parse::<JobState>(), Ok(s));
        }
        assert!("repository".parse::<JobKind>().is_err());
        assert!("done".parse::<JobState>().is_err());
    }

    #[test]
    fn payloads_round_trip_by_kind() {
        let target = RepositoryTarget {
            repository_id: 7,
            repository_path: "g/p/app".into(),
            project_id: Some(3),
        };
        let repo = JobPayload::DeleteRepository(target.clone());
        let tags = JobPayload::DeleteTags {
            target,
            rules: BulkRules {
                name_regex_delete: "v.*".into(),
                name_regex_keep: None,
                keep_n: Some(2),
                older_than: Some("7d".into()),
            },
        };
        for p in [repo, tags] {
            assert_eq!(JobPayload::parse(p.kind(), &p.to_json()).unwrap(), p);
        }
        assert!(JobPayload::parse(JobKind::DeleteTags, r#"{"repository_id":1}"#).is_err());
    }

    #[test]
    fn retries_back_off_from_ten_seconds_to_ten_minutes() {
        let secs: Vec<u64> = (0..8).map(|a| retry_delay(a).as_secs()).collect();
        assert_eq!(secs, [10, 10, 20, 40, 80, 160, 320, 600]);
        assert_eq!(retry_delay(1000).as_secs(), 600);
    }
}
