//! Berth's repository-name rule and the registry's off switch: a repository is an existing
//! project's full path plus at most two more segments, and a project whose registry is
//! `disabled` answers every request for its repositories with `REGISTRY_DISABLED`,
//! even to a token issued before the switch. Which projects exist, their ids and their
//! access level, is behind [`ProjectDirectory`].

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use berth_core::access::RegistryAccess;
use berth_core::{ErrorCode, RepoName};

use crate::error::{RegistryError, Result};

/// Most segments a repository name may add below its project's path.
pub const MAX_EXTRA_SEGMENTS: usize = 2;

/// How long [`DbProjects`] trusts what it read: a project created, deleted, or whose
/// registry is switched off or on is seen by every registry at most this late.
pub const DIRECTORY_TTL: Duration = Duration::from_secs(2);

/// Most project paths (present or absent) [`DbProjects`] remembers.
const DIRECTORY_CAPACITY: usize = 10_000;

/// What the registry knows of one project.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProjectInfo {
    /// Its id, when the directory knows ids (berth-auth's projects do; a configured list
    /// has none, so tokens are not bound to projects there).
    pub id: Option<i64>,
    /// Its registry access level.
    pub access: RegistryAccess,
}

/// Knows which projects exist, their ids and their registry access level.
#[async_trait]
pub trait ProjectDirectory: Send + Sync + 'static {
    /// The project with exactly this full path; `None` when there is no such project.
    async fn project(&self, project_path: &str) -> anyhow::Result<Option<ProjectInfo>>;
}

/// The project owning a repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// Its full path.
    pub path: String,
    /// Its id and access level.
    pub info: ProjectInfo,
}

/// The project owning `name`: the longest existing prefix path that leaves at most
/// [`MAX_EXTRA_SEGMENTS`] segments. `None` when the name fits no project.
pub async fn project_of(dir: &dyn ProjectDirectory, name: &str) -> anyhow::Result<Option<Owner>> {
    let segments: Vec<&str> = name.split('/').collect();
    // A project path has at least two segments (namespace/project).
    let shortest = segments.len().saturating_sub(MAX_EXTRA_SEGMENTS).max(2);
    for len in (shortest..=segments.len()).rev() {
        let candidate = segments[..len].join("/");
        if let Some(info) = dir.project(&candidate).await? {
            return Ok(Some(Owner {
                path: candidate,
                info,
            }));
        }
    }
    Ok(None)
}

/// `REGISTRY_DISABLED` for repository `name` of project `project`.
fn disabled(name: &str, project: &str) -> RegistryError {
    RegistryError::new(ErrorCode::RegistryDisabled)
        .message(format!(
            "the container registry of project {project} is disabled, so {name} cannot be read or written; a maintainer can enable it in the project's settings"
        ))
        .detail(serde_json::json!({ "project": project }))
}

/// Refuse any request for a repository whose owner's registry is disabled. Names that fit
/// no project pass (reads then find nothing; writes call [`require_project`]).
pub fn refuse_disabled(name: &str, owner: Option<&Owner>) -> Result<()> {
    match owner {
        Some(o) if o.info.access == RegistryAccess::Disabled => Err(disabled(name, &o.path)),
        _ => Ok(()),
    }
}

/// Writes need an existing project whose registry is not disabled (Berth's naming rule).
pub async fn require_project(dir: &dyn ProjectDirectory, name: &RepoName) -> Result<()> {
    match project_of(dir, name.as_str()).await? {
        Some(o) if o.info.access == RegistryAccess::Disabled => {
            Err(disabled(name.as_str(), &o.path))
        }
        Some(_) => Ok(()),
        None => Err(RegistryError::new(ErrorCode::NameInvalid).message(format!(
            "repository {name} must be an existing project's path plus at most {MAX_EXTRA_SEGMENTS} more segments"
        ))),
    }
}

/// The projects berth-auth keeps in the shared database, each answer (absence included)
/// kept for [`DIRECTORY_TTL`], so a steady stream of requests costs no query each.
pub struct DbProjects {
    db: berth_db::Db,
    cache: Mutex<HashMap<String, (Instant, Option<ProjectInfo>)>>,
}

impl DbProjects {
    /// Ask `db`.
    pub fn new(db: berth_db::Db) -> Self {
        DbProjects {
            db,
            cache: Mutex::new(HashMap::new()),
        }
    }

    fn cached(&self, path: &str) -> Option<Option<ProjectInfo>> {
        let cache = self.cache.lock().ok()?;
        let (at, info) = cache.get(path)?;
        (at.elapsed() < DIRECTORY_TTL).then_some(*info)
    }

    fn remember(&self, path: &str, info: Option<ProjectInfo>) {
        let Ok(mut cache) = self.cache.lock() else {
            return;
        };
        if cache.len() >= DIRECTORY_CAPACITY {
            cache.retain(|_, (at, _)| at.elapsed() < DIRECTORY_TTL);
            if cache.len() >= DIRECTORY_CAPACITY {
                cache.clear();
            }
        }
        cache.insert(path.to_owned(), (Instant::now(), info));
    }
}

#[async_trait]
impl ProjectDirectory for DbProjects {
    async fn project(&self, project_path: &str) -> anyhow::Result<Option<ProjectInfo>> {
        if let Some(hit) = self.cached(project_path) {
            return Ok(hit);
        }
        let row = berth_db::projects::registry_access_level(&self.db.read, project_path).await?;
        // An unknown stored value reads as the most restrictive, as berth-auth reads it.
        let info = row.map(|(id, level)| ProjectInfo {
            id: Some(id),
            access: level.parse().unwrap_or(RegistryAccess::Disabled),
        });
        self.remember(project_path, info);
        Ok(info)
    }
}

/// Projects named in configuration (`BERTH_REGISTRY_PROJECTS`): for running the registry
/// without berth-auth (development, tests). When set, it replaces the database's projects;
/// their registries are all enabled.
#[derive(Debug, Clone, Default)]
pub struct ConfiguredProjects {
    paths: std::collections::HashSet<String>,
}

impl ConfiguredProjects {
    /// From a comma-separated list.
    pub fn from_list(list: &str) -> Self {
        ConfiguredProjects {
            paths: list
                .split(',')
                .map(|p| p.trim().trim_matches('/').to_owned())
                .filter(|p| !p.is_empty())
                .collect(),
        }
    }
}

#[async_trait]
impl ProjectDirectory for ConfiguredProjects {
    async fn project(&self, project_path: &str) -> anyhow::Result<Option<ProjectInfo>> {
        Ok(self.paths.contains(project_path).then_some(ProjectInfo {
            id: None,
            access: RegistryAccess::Enabled,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn owner(list: &str, name: &str) -> Option<String> {
        let dir = ConfiguredProjects::from_list(list);
        project_of(&dir, name).await.unwrap().map(|o| o.path)
    }

    #[tokio::test]
    async fn project_plus_at_most_two_segments() {
        let list = "acme/platform, acme/platform/api, solo/app";
        assert_eq!(
            owner(list, "acme/platform").await.as_deref(),
            Some("acme/platform")
        );
        assert_eq!(
            owner(list, "acme/platform/x/y").await.as_deref(),
            Some("acme/platform")
        );
        // The longest matching project wins.
        assert_eq!(
            owner(list, "acme/platform/api/w").await.as_deref(),
            Some("acme/platform/api")
        );
        assert_eq!(
            owner(list, "acme/platform/api/w/z").await.as_deref(),
            Some("acme/platform/api")
        );
        assert_eq!(owner(list, "acme/platform/x/y/z").await, None);
        assert_eq!(owner(list, "acme").await, None);
        assert_eq!(owner(list, "other/app").await, None);
        assert_eq!(
            owner(list, "solo/app/a/b").await.as_deref(),
            Some("solo/app")
        );
    }
}
