//! What a credential may do in a project's registry: loads the project's namespace chain and
//! the caller's effective role, then applies the pure rules of `berth_core::access`
//! (visibility matrix, roles, scope caps), including the job-token allowlist and
//! deploy-token coverage.

use berth_core::access::{
    Abilities, Principal, ProjectAccess, RegistryAccess, Role, Visibility, deploy_token_abilities,
    user_abilities,
};
use berth_db::access as q;
use berth_db::entity::{namespaces, projects, users};
use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbErr};

use crate::identity::{Credential, parse_scopes, split_scopes};

/// A project with its namespace chain (root first).
#[derive(Debug, Clone)]
pub struct ProjectCtx {
    /// The project.
    pub project: projects::Model,
    /// Its namespaces, root first.
    pub chain: Vec<namespaces::Model>,
}

impl ProjectCtx {
    /// Load the chain of `project`.
    pub async fn load(c: &impl ConnectionTrait, project: projects::Model) -> Result<Self, DbErr> {
        let chain = q::namespace_chain(c, q::project_namespace_path(&project)).await?;
        Ok(ProjectCtx { project, chain })
    }

    /// The project owning repository `path`, if any.
    pub async fn for_repository(
        c: &impl ConnectionTrait,
        path: &str,
    ) -> Result<Option<Self>, DbErr> {
        match q::project_for_repository(c, path).await? {
            Some(p) => Ok(Some(Self::load(c, p).await?)),
            None => Ok(None),
        }
    }

    /// Ids of the namespace chain.
    pub fn chain_ids(&self) -> Vec<i64> {
        self.chain.iter().map(|n| n.id).collect()
    }

    /// The root namespace's id.
    pub fn root_namespace_id(&self) -> i64 {
        self.chain
            .first()
            .map_or(self.project.namespace_id, |n| n.id)
    }

    /// Visibility and registry access level. Unknown stored values read as the most
    /// restrictive.
    pub fn access(&self) -> ProjectAccess {
        ProjectAccess {
            visibility: self
                .project
                .visibility
                .parse()
                .unwrap_or(Visibility::Private),
            registry: self
                .project
                .container_registry_access_level
                .parse()
                .unwrap_or(RegistryAccess::Disabled),
        }
    }
}

/// Does `user` reach a project (`project`: its id) or group (`project` `None`) whose
/// namespaces are `chain` (root first; a group's own id included)?
///
/// People reach everything and their memberships decide. A project or group access token
/// is a bot user confined to the project or group it was made for (and, for a group, the
/// subgroups and projects below it): anywhere else it holds no role at all, whatever
/// memberships it might have acquired. Every role lookup of the API and of `/jwt/auth`
/// goes through this one rule, so a bot cannot create a group or project outside its home
/// (and become its Owner), nor manage members or mint tokens there: such a credential
/// would otherwise outlive the revocation of the bot's own token.
pub fn bot_reaches(user: &users::Model, project: Option<i64>, chain: &[i64]) -> bool {
    if !user.bot {
        return true;
    }
    match berth_db::project_admin::bot_home(&user.username) {
        Some(("project", home)) => project == Some(home),
        Some(("group", home)) => chain.contains(&home),
        // A bot whose name names no home reaches nothing (fail closed).
        _ => false,
    }
}

/// A user's highest effective role in a project (direct or through its groups); none for a
/// bot outside its home ([`bot_reaches`]).
pub async fn project_role(
    c: &impl ConnectionTrait,
    user: &users::Model,
    ctx: &ProjectCtx,
    now: DateTime<Utc>,
) -> Result<Option<Role>, DbErr> {
    if !bot_reaches(user, Some(ctx.project.id), &ctx.chain_ids()) {
        return Ok(None);
    }
    let level = q::effective_level(c, user.id, ctx.project.id, &ctx.chain_ids(), now).await?;
    Ok(level.and_then(Role::from_level))
}

/// The person side of the access rules (role, admin flag) for a user in a project.
pub async fn principal(
    c: &impl ConnectionTrait,
    user: &users::Model,
    ctx: &ProjectCtx,
    now: DateTime<Utc>,
) -> Result<Principal, DbErr> {
    Ok(Principal {
        signed_in: true,
        admin: user.admin,
        role: project_role(c, user, ctx, now).await?,
    })
}

/// What `cred` may do in the registry of `ctx`'s project.
pub async fn registry_abilities(
    c: &impl ConnectionTrait,
    cred: &Credential,
    ctx: &ProjectCtx,
    now: DateTime<Utc>,
) -> Result<Abilities, DbErr> {
    let project = ctx.access();
    Ok(match cred {
        Credential::Anonymous => user_abilities(project, Principal::ANONYMOUS),
        Credential::User(u) => {
            user_abilities(project, principal(c, &u.user, ctx, now).await?).and(u.cap())
        }
        Credential::Deploy(token) => {
            let covers = token.project_id == Some(ctx.project.id)
                || token
                    .namespace_id
                    .is_some_and(|ns| ctx.chain.iter().any(|n| n.id == ns));
            if covers {
                deploy_token_abilities(project, &parse_scopes(&split_scopes(&token.scopes)))
            } else {
                Abilities::NONE
            }
        }
        Credential::Job { job, user } => {
            if project.registry == RegistryAccess::Disabled {
                Abilities::NONE
            } else if job.project_id == ctx.project.id {
                // Its own project: always pull (GitLab); push and delete as far as the
                // job's user may right now, so a user removed or demoted while the job
                // runs loses those rights, and a Developer's job cannot delete (only
                // Maintainers have the registry `delete` action, though GitLab lets jobs
                // delete in their own project).
                let user = user_abilities(project, principal(c, user, ctx, now).await?);
                Abilities {
                    pull: true,
                    push: user.push,
                    delete: user.delete,
                }
            } else {
                // Elsewhere only pull, and only if the job's user may pull there AND that
                // project's allowlist names the job's project or one of its groups.
                let user_may = user_abilities(project, principal(c, user, ctx, now).await?).pull;
                let admitted = user_may && {
                    let source = q::project_by_id(c, job.project_id).await?;
                    let source_chain = match source {
                        Some(p) => q::namespace_chain(c, q::project_namespace_path(&p))
                            .await?
                            .iter()
                            .map(|n| n.id)
                            .collect(),
                        None => Vec::new(),
                    };
                    q::allowlist_admits(c, ctx.project.id, job.project_id, &source_chain).await?
                };
                Abilities {
                    pull: admitted,
                    push: false,
                    delete: false,
                }
            }
        }
    })
}

/// Can this credential do anything in any registry? (`false` answers `403 DENIED`.)
pub fn has_registry_ability(cred: &Credential) -> bool {
    match cred {
        Credential::Anonymous => true,
        Credential::User(u) => u.cap().any(),
        Credential::Deploy(t) => {
            let scopes = parse_scopes(&split_scopes(&t.scopes));
            deploy_token_abilities(
                ProjectAccess {
                    visibility: Visibility::Private,
                    registry: RegistryAccess::Enabled,
                },
                &scopes,
            )
            .any()
        }
        Credential::Job { .. } => true,
    }
}
