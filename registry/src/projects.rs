//! Berth's repository-name rule: a repository is an existing project's full path plus at
//! most two more segments. Which projects exist is behind [`ProjectDirectory`], so the auth
//! service's project table can answer once it exists.

use async_trait::async_trait;
use berth_core::RepoName;

/// Most segments a repository name may add below its project's path.
pub const MAX_EXTRA_SEGMENTS: usize = 2;

/// Knows which projects exist.
#[async_trait]
pub trait ProjectDirectory: Send + Sync + 'static {
    /// Does a project with exactly this full path exist?
    async fn exists(&self, project_path: &str) -> anyhow::Result<bool>;
}

/// The project owning `name`: the longest existing prefix path that leaves at most
/// [`MAX_EXTRA_SEGMENTS`] segments. `None` when the name fits no project.
pub async fn project_of(
    dir: &dyn ProjectDirectory,
    name: &RepoName,
) -> anyhow::Result<Option<String>> {
    let segments: Vec<&str> = name.segments().collect();
    // A project path has at least two segments (namespace/project).
    let shortest = segments.len().saturating_sub(MAX_EXTRA_SEGMENTS).max(2);
    for len in (shortest..=segments.len()).rev() {
        let candidate = segments[..len].join("/");
        if dir.exists(&candidate).await? {
            return Ok(Some(candidate));
        }
    }
    Ok(None)
}

/// The projects berth-auth keeps in the shared database.
#[derive(Clone)]
pub struct DbProjects {
    db: berth_db::Db,
}

impl DbProjects {
    /// Ask `db`.
    pub fn new(db: berth_db::Db) -> Self {
        DbProjects { db }
    }
}

#[async_trait]
impl ProjectDirectory for DbProjects {
    async fn exists(&self, project_path: &str) -> anyhow::Result<bool> {
        Ok(berth_db::projects::exists(&self.db.read, project_path).await?)
    }
}

/// Projects named in configuration (`BERTH_REGISTRY_PROJECTS`): for running the registry
/// without berth-auth (development, tests). When set, it replaces the database's projects.
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
    async fn exists(&self, project_path: &str) -> anyhow::Result<bool> {
        Ok(self.paths.contains(project_path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn owner(list: &str, name: &str) -> Option<String> {
        let dir = ConfiguredProjects::from_list(list);
        project_of(&dir, &RepoName::parse(name).unwrap())
            .await
            .unwrap()
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
