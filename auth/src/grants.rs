//! The decision of `/jwt/auth` (as GitLab's `ContainerRegistryAuthenticationService`):
//! for each requested scope, the actions the credential may have; the rest are silently
//! dropped and the registry refuses what is missing.

use berth_core::access::Abilities;
use berth_core::scope::{Action, Scope};
use berth_token::{Access, AccessMeta};
use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbErr};

use crate::authz::{ProjectCtx, registry_abilities};
use crate::identity::Credential;

/// The access entries to put in the token for `requested`. A scope on a path no project
/// owns, or whose actions are all refused, is left out.
pub async fn grant(
    c: &impl ConnectionTrait,
    cred: &Credential,
    requested: &[Scope],
    now: DateTime<Utc>,
) -> Result<Vec<Access>, DbErr> {
    let mut out = Vec::new();
    for scope in requested {
        let entry = match scope.resource_type {
            "repository" => repository(c, cred, scope, now).await?,
            "registry" => catalog(cred, scope),
            _ => None,
        };
        out.extend(entry);
    }
    Ok(out)
}

async fn repository(
    c: &impl ConnectionTrait,
    cred: &Credential,
    scope: &Scope,
    now: DateTime<Utc>,
) -> Result<Option<Access>, DbErr> {
    let Some(ctx) = ProjectCtx::for_repository(c, &scope.name).await? else {
        return Ok(None);
    };
    let may = registry_abilities(c, cred, &ctx, now).await?;
    let mut actions = allowed(&scope.actions, may);
    // `*` goes to instance admins only (as GitLab's full-access tokens); anyone else who
    // holds every ability gets the three actions spelled out, which the registry treats
    // the same.
    let admin = matches!(cred, Credential::User(u) if u.user.admin);
    if !admin && actions.contains(&Action::All) {
        actions.retain(|a| *a != Action::All);
        for a in [Action::Pull, Action::Push, Action::Delete] {
            if !actions.contains(&a) {
                actions.push(a);
            }
        }
    }
    if actions.is_empty() {
        return Ok(None);
    }
    // Immutable tag rules bind everyone, admins included; omitted when the project has none.
    let patterns = berth_db::tag_rules::patterns(c, ctx.project.id).await?;
    Ok(Some(Access {
        kind: "repository".into(),
        name: scope.name.clone(),
        actions: actions.iter().map(|a| a.as_str().to_owned()).collect(),
        meta: Some(AccessMeta {
            project_path: Some(ctx.project.full_path.clone()),
            project_id: Some(ctx.project.id),
            root_namespace_id: Some(ctx.root_namespace_id()),
            tag_immutable_patterns: (!patterns.is_empty()).then_some(patterns),
        }),
    }))
}

/// `registry:catalog:*`: instance admins only (GitLab), with a credential that may pull.
fn catalog(cred: &Credential, scope: &Scope) -> Option<Access> {
    let admin = matches!(cred, Credential::User(u) if u.user.admin && u.cap().pull);
    (admin && scope.name == "catalog").then(|| Access {
        kind: "registry".into(),
        name: "catalog".into(),
        actions: vec!["*".into()],
        meta: None,
    })
}

/// The requested actions `may` allows, in request order. `*` needs every ability.
pub fn allowed(requested: &[Action], may: Abilities) -> Vec<Action> {
    requested
        .iter()
        .copied()
        .filter(|a| match a {
            Action::Pull => may.pull,
            Action::Push => may.push,
            Action::Delete => may.delete,
            Action::All => may == Abilities::ALL,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_are_filtered_not_refused() {
        let pull_only = Abilities {
            pull: true,
            push: false,
            delete: false,
        };
        assert_eq!(
            allowed(&[Action::Pull, Action::Push], pull_only),
            vec![Action::Pull]
        );
        assert_eq!(allowed(&[Action::All], pull_only), vec![]);
        assert_eq!(allowed(&[Action::All], Abilities::ALL), vec![Action::All]);
        assert_eq!(allowed(&[Action::Delete], Abilities::NONE), vec![]);
    }
}
