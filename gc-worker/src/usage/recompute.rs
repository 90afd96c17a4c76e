//! The independent computation behind `--recompute`: per repository, the set of blob
//! digests its live manifests reach (tags → index children, subjects and referrers,
//! breadth first → layers and configs),
//! then unions of those sets per project and for the root namespace, summed over blob
//! sizes. Memory is one root namespace's digest sets at a time.

use std::collections::{HashMap, HashSet};

use berth_db::usage_walk;
use sea_orm::ConnectionTrait;

/// Recomputed figures of one root namespace, in the order of the inputs.
pub(super) struct Figures {
    /// The root namespace.
    pub root: i64,
    /// Per project.
    pub projects: Vec<i64>,
    /// Per repository.
    pub repositories: Vec<i64>,
}

/// Recompute a root namespace whose projects and repositories are given; `owners[i]` is
/// the project index of repository `i`.
pub(super) async fn root(
    c: &impl ConnectionTrait,
    projects: &[(i64, String)],
    repos: &[(i64, String)],
    owners: &[Option<usize>],
) -> anyhow::Result<Figures> {
    let mut sets = Vec::with_capacity(repos.len());
    for (id, _) in repos {
        sets.push(reachable(c, *id).await?);
    }
    let all: HashSet<&String> = sets.iter().flatten().collect();
    let all: Vec<String> = all.into_iter().cloned().collect();
    let sizes: HashMap<String, i64> = usage_walk::blob_sizes(c, &all).await?.into_iter().collect();
    let total = |set: &HashSet<&String>| set.iter().filter_map(|d| sizes.get(*d)).sum::<i64>();

    // Open upload sessions hold their bytes on top of the blobs.
    let mut uploads = Vec::with_capacity(repos.len());
    for (id, _) in repos {
        uploads.push(usage_walk::upload_bytes(c, *id).await?);
    }
    let repositories = sets
        .iter()
        .zip(&uploads)
        .map(|(s, u)| total(&s.iter().collect()) + u)
        .collect();
    let mut per_project: Vec<HashSet<&String>> = vec![HashSet::new(); projects.len()];
    let mut project_uploads = vec![0i64; projects.len()];
    for ((set, owner), u) in sets.iter().zip(owners).zip(&uploads) {
        if let Some(p) = owner {
            per_project[*p].extend(set.iter());
            project_uploads[*p] += u;
        }
    }
    let root_set: HashSet<&String> = sets.iter().flatten().collect();
    Ok(Figures {
        root: total(&root_set) + uploads.iter().sum::<i64>(),
        projects: per_project
            .iter()
            .zip(&project_uploads)
            .map(|(set, u)| total(set) + u)
            .collect(),
        repositories,
    })
}

/// Digests of the blobs a repository's live manifests reference (each manifest visited
/// once, so a malformed cycle ends).
async fn reachable(
    c: &impl ConnectionTrait,
    repository_id: i64,
) -> anyhow::Result<HashSet<String>> {
    let mut seen: HashSet<i64> = usage_walk::tagged_manifests(c, repository_id)
        .await?
        .into_iter()
        .collect();
    let mut frontier: Vec<i64> = seen.iter().copied().collect();
    while !frontier.is_empty() {
        frontier = usage_walk::live_neighbours(c, &frontier)
            .await?
            .into_iter()
            .filter(|id| seen.insert(*id))
            .collect();
    }
    let ids: Vec<i64> = seen.into_iter().collect();
    Ok(usage_walk::blob_digests(c, &ids)
        .await?
        .into_iter()
        .collect())
}
