//! Managing projects through the API: create, list what a viewer may see, update, delete.

use chrono::Utc;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect, Set,
};

use crate::entity::{job_token_allowlist, namespaces, personal_access_tokens, projects, users};
use crate::members::{self, Source};
use crate::namespaces::{Viewer, contains_ci, like, like_escape, member_namespaces, within};

/// A project to create.
#[derive(Debug, Clone)]
pub struct NewProject<'a> {
    /// Its namespace.
    pub namespace: &'a namespaces::Model,
    /// The last path segment.
    pub path: &'a str,
    /// Display name.
    pub name: &'a str,
    /// `public`, `internal` or `private`.
    pub visibility: &'a str,
    /// `enabled`, `private` or `disabled`.
    pub registry_access: &'a str,
}

/// Insert a project.
pub async fn create(
    c: &impl ConnectionTrait,
    new: NewProject<'_>,
) -> Result<projects::Model, DbErr> {
    let now = Utc::now();
    projects::ActiveModel {
        namespace_id: Set(new.namespace.id),
        path: Set(new.path.to_owned()),
        full_path: Set(format!("{}/{}", new.namespace.full_path, new.path)),
        name: Set(new.name.to_owned()),
        visibility: Set(new.visibility.to_owned()),
        container_registry_access_level: Set(new.registry_access.to_owned()),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
    .insert(c)
    .await
}

/// Which projects to list.
#[derive(Debug, Clone, Default)]
pub struct ProjectQuery {
    /// Substring of the name or path.
    pub search: Option<String>,
    /// Only this visibility.
    pub visibility: Option<String>,
    /// Only projects the viewer is a member of (directly or through a group) with at least
    /// this level.
    pub min_level: Option<i32>,
    /// Only projects of the viewer's personal namespace or where they are Owner.
    pub owned: bool,
    /// Only projects directly in this namespace.
    pub namespace_id: Option<i64>,
}

/// Projects a user reaches through memberships of at least `min_level`.
async fn membership(
    c: &impl ConnectionTrait,
    user_id: i64,
    min_level: i32,
) -> Result<Condition, DbErr> {
    use projects::Column as P;
    let now = Utc::now();
    let groups = member_namespaces(c, user_id, min_level, now).await?;
    let direct = members::member_project_ids(c, user_id, min_level, now).await?;
    Ok(Condition::any()
        .add(P::Id.is_in(direct))
        .add(within(P::NamespaceId, P::FullPath, &groups)))
}

/// The projects `viewer` may see matching `q`, newest first, with the total count.
pub async fn list(
    c: &impl ConnectionTrait,
    viewer: Viewer,
    q: &ProjectQuery,
    offset: u64,
    limit: u64,
) -> Result<(Vec<projects::Model>, u64), DbErr> {
    use projects::Column as P;
    let mut select = projects::Entity::find();
    match viewer {
        Viewer::Admin => {}
        Viewer::Anonymous => select = select.filter(P::Visibility.eq("public")),
        Viewer::User(uid) => {
            select = select.filter(
                Condition::any()
                    .add(P::Visibility.is_in(["public", "internal"]))
                    .add(membership(c, uid, 0).await?),
            );
        }
    }
    if let Viewer::User(uid) = viewer {
        if let Some(min) = q.min_level {
            select = select.filter(membership(c, uid, min).await?);
        }
        if q.owned {
            let mut owned = membership(c, uid, 50).await?;
            if let Some(ns) = crate::namespaces::personal(c, uid).await? {
                owned = owned.add(P::NamespaceId.eq(ns.id));
            }
            select = select.filter(owned);
        }
    }
    if let Some(v) = &q.visibility {
        select = select.filter(P::Visibility.eq(v.as_str()));
    }
    if let Some(ns) = q.namespace_id {
        select = select.filter(P::NamespaceId.eq(ns));
    }
    if let Some(s) = q.search.as_deref().filter(|s| !s.is_empty()) {
        select = select.filter(
            Condition::any()
                .add(contains_ci(P::Name, s))
                .add(contains_ci(P::Path, s)),
        );
    }
    let total = select.clone().count(c).await?;
    let rows = select
        .order_by_desc(P::CreatedAt)
        .order_by_desc(P::Id)
        .offset(offset)
        .limit(limit)
        .all(c)
        .await?;
    Ok((rows, total))
}

/// Projects by id (in any order).
pub async fn by_ids(c: &impl ConnectionTrait, ids: &[i64]) -> Result<Vec<projects::Model>, DbErr> {
    projects::Entity::find()
        .filter(projects::Column::Id.is_in(ids.to_vec()))
        .all(c)
        .await
}

/// What `PUT /projects/:id` may change.
#[derive(Debug, Clone, Default)]
pub struct ProjectChanges {
    /// Display name.
    pub name: Option<String>,
    /// Visibility.
    pub visibility: Option<String>,
    /// Registry access level.
    pub registry_access: Option<String>,
}

/// Apply `changes`.
pub async fn update(
    c: &impl ConnectionTrait,
    project: projects::Model,
    changes: ProjectChanges,
) -> Result<projects::Model, DbErr> {
    let mut am: projects::ActiveModel = project.into();
    if let Some(n) = changes.name {
        am.name = Set(n);
    }
    if let Some(v) = changes.visibility {
        am.visibility = Set(v);
    }
    if let Some(r) = changes.registry_access {
        am.container_registry_access_level = Set(r);
    }
    am.updated_at = Set(Utc::now());
    am.update(c).await
}

/// Does the registry still hold repositories at or under `full_path`? They can only be
/// left over from a deleted project (a push needs a project), whose repositories are not
/// removed with it: a new project at the same path would inherit them, and whoever
/// creates it (any signed-in user, for a recreated top-level group or a reused username)
/// could pull the old project's private images. Such a path stays taken until the
/// repositories are gone.
pub async fn repositories_remain(c: &impl ConnectionTrait, full_path: &str) -> Result<bool, DbErr> {
    use crate::entity::repositories::{Column as R, Entity};
    let n = Entity::find()
        .filter(
            Condition::any()
                .add(R::Name.eq(full_path))
                .add(like(R::Name, format!("{}/%", like_escape(full_path)))),
        )
        .count(c)
        .await?;
    Ok(n > 0)
}

/// The username prefix of a project's access-token bots.
pub fn bot_prefix(kind: &str, id: i64) -> String {
    format!("{kind}_{id}_bot_")
}

/// The project or group (`kind` `project`/`group`, id) a bot's username names as its home:
/// the inverse of [`bot_prefix`]. `None` for any other name.
pub fn bot_home(username: &str) -> Option<(&str, i64)> {
    let (kind, rest) = username.split_once('_')?;
    let (id, _) = rest.split_once("_bot_")?;
    let kind = ["project", "group"].into_iter().find(|k| *k == kind)?;
    Some((kind, id.parse().ok()?))
}

/// The access-token bots of a project or group (`kind` `project`/`group`), by id.
pub async fn bots(
    c: &impl ConnectionTrait,
    kind: &str,
    id: i64,
) -> Result<Vec<users::Model>, DbErr> {
    let pattern = format!("{}%", like_escape(&bot_prefix(kind, id)));
    users::Entity::find()
        .filter(users::Column::Bot.eq(true))
        .filter(like(users::Column::Username, pattern))
        .order_by_asc(users::Column::Id)
        .all(c)
        .await
}

/// Block the bots of a project or group (`kind` `project`/`group`) and revoke their tokens.
pub async fn retire_bots(c: &impl ConnectionTrait, kind: &str, id: i64) -> Result<(), DbErr> {
    let bots: Vec<i64> = bots(c, kind, id).await?.iter().map(|u| u.id).collect();
    users::Entity::update_many()
        .col_expr(users::Column::State, "blocked".into())
        .filter(users::Column::Id.is_in(bots.clone()))
        .exec(c)
        .await?;
    personal_access_tokens::Entity::update_many()
        .col_expr(personal_access_tokens::Column::Revoked, true.into())
        .filter(personal_access_tokens::Column::UserId.is_in(bots))
        .exec(c)
        .await?;
    Ok(())
}

/// Delete a project with its memberships, allowlist entries naming it and its bots'
/// access (deploy tokens, jobs and its own allowlist go by cascade). Its repositories are
/// the registry's to collect.
pub async fn delete(c: &impl ConnectionTrait, project: &projects::Model) -> Result<(), DbErr> {
    members::remove_all(c, Source::Project(project.id)).await?;
    job_token_allowlist::Entity::delete_many()
        .filter(job_token_allowlist::Column::SourceProjectId.eq(project.id))
        .exec(c)
        .await?;
    retire_bots(c, "project", project.id).await?;
    projects::Entity::delete_by_id(project.id).exec(c).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use berth_test_support::{TestDb, db_test};

    use super::*;
    use crate::namespaces::{GroupQuery, NewGroup, create_group, list_groups};
    use crate::tokens::{DeployOwner, NewDeployToken, create_deploy_token};
    use crate::users::NewUser;

    async fn user(c: &impl ConnectionTrait, name: &str) -> users::Model {
        crate::users::create(
            c,
            NewUser {
                username: name,
                email: &format!("{name}@x.test"),
                name,
                password_hash: None,
                admin: false,
                bot: false,
            },
        )
        .await
        .unwrap()
    }

    #[test]
    fn bot_home_inverts_bot_prefix() {
        for (kind, id) in [("project", 7), ("group", 123_456)] {
            let name = format!("{}0a1b2c3d", bot_prefix(kind, id));
            assert_eq!(bot_home(&name), Some((kind, id)));
        }
        for name in [
            "alice",
            "project_x_bot_1",
            "user_1_bot_a",
            "project_1",
            "group_-_bot_",
        ] {
            assert_eq!(bot_home(name), None, "{name}");
        }
    }

    db_test!(listings_follow_visibility_and_inherited_membership);
    async fn listings_follow_visibility_and_inherited_membership(db: TestDb) {
        let conn = crate::connect(&db.url).await.unwrap();
        crate::migrate(&conn).await.unwrap();
        let c = &conn.write;
        let alice = user(c, "alice").await;
        let bob = user(c, "bob").await;
        // `a_b` must not match `axb` through LIKE's `_` wildcard.
        let mut groups = Vec::new();
        for path in ["a_b", "axb"] {
            let g = create_group(
                c,
                NewGroup {
                    parent: None,
                    path,
                    name: path,
                    visibility: "private",
                },
            )
            .await
            .unwrap();
            let sub = create_group(
                c,
                NewGroup {
                    parent: Some(&g),
                    path: "sub",
                    name: "Sub",
                    visibility: "private",
                },
            )
            .await
            .unwrap();
            let p = create(
                c,
                NewProject {
                    namespace: &sub,
                    path: "app",
                    name: "App",
                    visibility: "private",
                    registry_access: "enabled",
                },
            )
            .await
            .unwrap();
            groups.push((g, p));
        }
        members::add(c, Source::Namespace(groups[0].0.id), alice.id, 30, None)
            .await
            .unwrap();
        members::add(c, Source::Project(groups[1].1.id), bob.id, 20, None)
            .await
            .unwrap();
        let q = ProjectQuery::default();
        let (mine, total) = list(c, Viewer::User(alice.id), &q, 0, 20).await.unwrap();
        assert_eq!(total, 1);
        assert_eq!(mine[0].full_path, "a_b/sub/app");
        let (bobs, _) = list(c, Viewer::User(bob.id), &q, 0, 20).await.unwrap();
        assert_eq!(bobs.len(), 1);
        assert_eq!(bobs[0].full_path, "axb/sub/app");
        let (all, _) = list(c, Viewer::Admin, &q, 0, 20).await.unwrap();
        assert_eq!(all.len(), 2);
        let (none, _) = list(c, Viewer::Anonymous, &q, 0, 20).await.unwrap();
        assert!(none.is_empty());
        let developer = ProjectQuery {
            min_level: Some(40),
            ..ProjectQuery::default()
        };
        assert_eq!(
            list(c, Viewer::User(alice.id), &developer, 0, 20)
                .await
                .unwrap()
                .1,
            0
        );
        let (gs, _) = list_groups(c, Viewer::User(alice.id), &GroupQuery::default(), 0, 20)
            .await
            .unwrap();
        let mut paths: Vec<&str> = gs.iter().map(|g| g.full_path.as_str()).collect();
        paths.sort_unstable();
        assert_eq!(paths, ["a_b", "a_b/sub"]);
    }

    db_test!(stale_repositories_pat_races_and_email_search);
    async fn stale_repositories_pat_races_and_email_search(db: TestDb) {
        let conn = crate::connect(&db.url).await.unwrap();
        crate::migrate(&conn).await.unwrap();
        let c = &conn.write;
        // Repositories left behind by a deleted project keep its path taken; `_` in the
        // path is no LIKE wildcard.
        crate::repositories::get_or_create(c, "a_b/app/img", Utc::now())
            .await
            .unwrap();
        assert!(repositories_remain(c, "a_b/app").await.unwrap());
        assert!(repositories_remain(c, "a_b/app/img").await.unwrap());
        assert!(!repositories_remain(c, "axb/app").await.unwrap());
        assert!(!repositories_remain(c, "a_b/ap").await.unwrap());
        // Revoking is conditional: a second revocation (a racing rotation) loses.
        let alice = user(c, "alice").await;
        let t = crate::tokens::create_pat(
            c,
            crate::tokens::NewPat {
                user_id: alice.id,
                name: "t",
                digest: "1".repeat(64).as_str(),
                scopes: &["api".to_owned()],
                expires_at: None,
            },
        )
        .await
        .unwrap();
        assert!(crate::tokens::revoke_pat(c, t.id).await.unwrap());
        assert!(!crate::tokens::revoke_pat(c, t.id).await.unwrap());
        // Only admins search emails.
        let mut q = crate::users::UserQuery {
            search: Some("x.test".into()),
            ..Default::default()
        };
        assert_eq!(crate::users::list(c, &q, 0, 20).await.unwrap().1, 0);
        q.search_email = true;
        assert_eq!(crate::users::list(c, &q, 0, 20).await.unwrap().1, 1);
    }

    db_test!(deploy_token_default_username_carries_its_id);
    async fn deploy_token_default_username_carries_its_id(db: TestDb) {
        let conn = crate::connect(&db.url).await.unwrap();
        crate::migrate(&conn).await.unwrap();
        let c = &conn.write;
        let g = create_group(
            c,
            NewGroup {
                parent: None,
                path: "acme",
                name: "Acme",
                visibility: "public",
            },
        )
        .await
        .unwrap();
        let t = create_deploy_token(
            c,
            NewDeployToken {
                owner: DeployOwner::Namespace(g.id),
                name: "d",
                username: None,
                digest: "0".repeat(64).as_str(),
                scopes: &["read_registry".to_owned()],
                expires_at: None,
            },
        )
        .await
        .unwrap();
        assert_eq!(t.username, format!("gitlab+deploy-token-{}", t.id));
    }
}
