//! The one evaluation of a cleanup policy over a repository's stored tags, shared by the
//! scheduled run (berth-gc), its preview (the API and `berth-gc cleanup --dry-run`): load
//! the tags with their digests and published times and the project's immutable tag rules,
//! then apply [`berth_core::cleanup::Rules`] as of one instant.
//!
//! A run judges every tag as of its start (`expiration_policy_started_at`): `older_than`
//! counts back from it and tags published after it are not candidates, so each slice of a
//! resumed run re-evaluates to the same verdicts. (Re-evaluating after some deletions can
//! only keep more: a tag's rank among the candidates never worsens when others go.)

use berth_core::cleanup::{Decision, Rules, RulesError, TagFacts};
use berth_core::cleanup_policy::Policy;
use berth_core::immutability::TagPatterns;
use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbErr};

use crate::repository_cleanups as state;

/// One tag and the verdict on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// The tag as the rules saw it.
    pub tag: TagFacts,
    /// Keep (why) or delete.
    pub decision: Decision,
}

/// The verdicts on a repository's tags as of one instant.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The instant the rules judged at (`older_than` counts back from it).
    pub as_of: DateTime<Utc>,
    /// Every tag published at or before `as_of`, by name.
    pub verdicts: Vec<Verdict>,
}

impl Plan {
    /// Names of the tags to delete, by name.
    pub fn doomed(&self) -> Vec<String> {
        self.verdicts
            .iter()
            .filter(|v| v.decision == Decision::Delete)
            .map(|v| v.tag.name.clone())
            .collect()
    }
}

/// Compile a policy's rules. A policy without `name_regex` deletes nothing (an empty
/// pattern matches only the empty name, which no tag has).
pub fn rules(policy: &Policy) -> Result<Rules, RulesError> {
    Rules::new(
        policy.name_regex.as_deref().unwrap_or(""),
        policy.name_regex_keep.as_deref(),
        policy.keep_n.map(i64::from),
        policy.older_than.as_deref(),
    )
}

/// A project's immutable tag rules (invalid stored patterns are skipped and logged).
pub async fn immutable(c: &impl ConnectionTrait, project_id: i64) -> Result<TagPatterns, DbErr> {
    let patterns = crate::tag_rules::patterns(c, project_id).await?;
    let (rules, invalid) = TagPatterns::compile(&patterns);
    if !invalid.is_empty() {
        tracing::warn!(project.id = project_id, patterns = ?invalid, "invalid immutable tag patterns ignored");
    }
    Ok(rules)
}

/// Judge repository `repository_id` of project `project_id` under `rules` as of `as_of`.
pub async fn evaluate(
    c: &impl ConnectionTrait,
    project_id: i64,
    repository_id: i64,
    rules: &Rules,
    as_of: DateTime<Utc>,
) -> Result<Plan, DbErr> {
    let rows = crate::registry_deletions::tags_with_digests(c, repository_id).await?;
    let facts: Vec<TagFacts> = rows
        .into_iter()
        .filter(|r| r.tag.updated_at <= as_of)
        .map(|r| TagFacts {
            name: r.tag.name,
            published_at: r.tag.updated_at,
            digest: r.digest,
        })
        .collect();
    let immutable = immutable(c, project_id).await?;
    let decisions = rules.evaluate(&facts, &immutable, as_of);
    Ok(Plan {
        as_of,
        verdicts: facts
            .into_iter()
            .zip(decisions)
            .map(|(tag, decision)| Verdict { tag, decision })
            .collect(),
    })
}

/// The instant the next run of `repository_id` judges at, seen at `now` with the policy
/// scheduled at `next_run_at`: a run already scheduled, ongoing or unfinished keeps its
/// start; otherwise the next run starts at `next_run_at` (or now, if that has passed or the
/// policy is not scheduled).
pub async fn next_run_as_of(
    c: &impl ConnectionTrait,
    repository_id: i64,
    next_run_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<DateTime<Utc>, DbErr> {
    if let Some(s) = state::find(c, repository_id).await?
        && s.expiration_policy_cleanup_status != state::UNSCHEDULED
        && let Some(t) = s.expiration_policy_started_at
    {
        return Ok(t);
    }
    Ok(next_run_at.unwrap_or(now))
}
