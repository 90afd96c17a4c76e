//! Bearer-token authentication for `/v2/`: verify the JWT (signature, issuer, audience,
//! times) and check that its `access` claim covers what the request needs. Authorization
//! needs depend on the route, so handlers call [`authorize`] with their scopes.

use std::sync::{Arc, LazyLock};

use axum::http::HeaderMap;
use berth_core::immutability::{PatternCache, TagPatterns};
use berth_core::scope::{Action, Scope};
use berth_token::{Claims, VerifyError};

use crate::error::{RegistryError, Result};
use crate::projects::Owner;
use crate::state::AppState;

/// The `WWW-Authenticate` value for `scopes` (space-joined), with an optional error.
pub fn challenge(state: &AppState, scopes: &[Scope], error: Option<&str>) -> String {
    let mut c = format!(
        "Bearer realm=\"{}\",service=\"{}\"",
        state.realm, state.service
    );
    if !scopes.is_empty() {
        let joined: Vec<String> = scopes.iter().map(Scope::to_string).collect();
        c.push_str(&format!(",scope=\"{}\"", joined.join(" ")));
    }
    if let Some(e) = error {
        c.push_str(&format!(",error=\"{e}\""));
    }
    c
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Does `claims` grant every action of `scope`?
pub fn grants(claims: &Claims, scope: &Scope) -> bool {
    scope
        .actions
        .iter()
        .all(|a| claims.allows(scope.resource_type, &scope.name, a.as_str()))
}

/// Authenticate the request and require `scopes`; the 401 names `challenge_scopes`.
pub async fn authorize_with(
    state: &AppState,
    headers: &HeaderMap,
    scopes: &[Scope],
    challenge_scopes: &[Scope],
) -> Result<Arc<Claims>> {
    let Some(token) = bearer(headers) else {
        return Err(RegistryError::unauthorized(
            challenge(state, challenge_scopes, None),
            "authentication required",
        ));
    };
    let claims = state.verifier.verify(token).await.map_err(|e| {
        if let VerifyError::KeySource(detail) = &e {
            tracing::warn!(error = %detail, "token keys unavailable");
        }
        tracing::debug!(reason = %e, "token rejected");
        RegistryError::unauthorized(
            challenge(state, challenge_scopes, Some("invalid_token")),
            "invalid token",
        )
    })?;
    if scopes.iter().all(|s| grants(&claims, s)) {
        Ok(claims)
    } else {
        Err(RegistryError::unauthorized(
            challenge(state, challenge_scopes, Some("insufficient_scope")),
            "insufficient scope: the token does not grant the requested access",
        ))
    }
}

/// Authenticate and require `actions` on repository `name`, then [`check_project`]. Checked
/// after the token so an anonymous caller still gets the challenge and learns nothing about
/// the project.
pub async fn authorize(
    state: &AppState,
    headers: &HeaderMap,
    name: &str,
    actions: &[Action],
) -> Result<Arc<Claims>> {
    let scope = [Scope::repository(name, actions)];
    let claims = authorize_with(state, headers, &scope, &scope).await?;
    check_project(state, &claims, name, &scope).await?;
    Ok(claims)
}

/// What `claims` grants on repository `name` must still be meant for the project that owns
/// `name` now, and that project's registry must not be disabled (`REGISTRY_DISABLED`,
/// Both are read through the project directory's cache, so a token issued before
/// the project was deleted (and perhaps re-created at the same path), or before its
/// registry was switched off, stops working within [`crate::projects::DIRECTORY_TTL`]. A
/// token issued for another project gets a 401 naming `challenge`, so a client asks
/// berth-auth again, which decides for the project there now.
pub async fn check_project(
    state: &AppState,
    claims: &Claims,
    name: &str,
    challenge_scopes: &[Scope],
) -> Result<()> {
    let owner = crate::projects::project_of(state.projects.as_ref(), name).await?;
    if !issued_for(claims, name, owner.as_ref()) {
        tracing::debug!(repository.name = name, "token issued for another project");
        return Err(RegistryError::unauthorized(
            challenge(state, challenge_scopes, Some("invalid_token")),
            "the token was issued for a project that no longer owns this repository",
        ));
    }
    crate::projects::refuse_disabled(name, owner.as_ref())
}

/// Was every grant of `claims` on repository `name` issued for `owner`, the project that
/// owns `name` now? berth-auth writes the project's id into each entry's `meta`. Where the
/// directory knows ids, an entry must carry exactly that id; where no project owns the name
/// any more, an entry issued for some project is void. A configured project list has no
/// ids, so tokens there are not bound.
pub fn issued_for(claims: &Claims, name: &str, owner: Option<&Owner>) -> bool {
    let mut ids = claims
        .access
        .iter()
        .filter(|a| a.kind == "repository" && a.name == name)
        .map(|a| a.meta.as_ref().and_then(|m| m.project_id));
    match owner.map(|o| o.info.id) {
        Some(Some(id)) => ids.all(|p| p == Some(id)),
        Some(None) => true,
        None => ids.all(|p| p.is_none()),
    }
}

/// How many distinct immutable-pattern lists the registry keeps compiled. A list is one
/// project's rules as of a token, so this covers as many projects pushing at once; beyond
/// it a list is compiled again when it comes back.
const PATTERN_LISTS_CACHED: usize = 1024;

/// Compiled immutable-pattern lists, shared by every request of the process. Every push
/// token carries its project's patterns; compiling them on each manifest write cost a
/// regex compilation per push, so each distinct list (each change of the rules) is
/// compiled once.
static PATTERNS: LazyLock<PatternCache> = LazyLock::new(|| PatternCache::new(PATTERN_LISTS_CACHED));

/// The immutable tag patterns the token carries for repository `name`, compiled once per
/// distinct list ([`PATTERNS`]). A pattern that does not compile matches nothing (auth
/// validates patterns when rules are created, so this means a foreign or corrupted token):
/// logged when its list is compiled, not fatal.
pub fn immutable_patterns(claims: &Claims, name: &str) -> Arc<TagPatterns> {
    let raw = claims
        .meta_for(name)
        .and_then(|m| m.tag_immutable_patterns.as_deref())
        .unwrap_or_default();
    if raw.is_empty() {
        static NONE: LazyLock<Arc<TagPatterns>> = LazyLock::new(Arc::default);
        return NONE.clone();
    }
    let cached = PATTERNS.get(raw);
    if let Some(invalid) = cached.compiled {
        metrics::counter!("berth_registry_tag_pattern_compilations_total").increment(1);
        for pattern in invalid {
            tracing::warn!(
                repository.name = name,
                tag.pattern = pattern,
                "ignoring an immutable tag pattern that does not compile"
            );
        }
    }
    cached.patterns
}

#[cfg(test)]
mod tests {
    use berth_core::access::RegistryAccess;
    use berth_token::{Access, AccessMeta, Audience};

    use super::*;
    use crate::projects::ProjectInfo;

    fn claims(entries: &[(&str, Option<i64>)]) -> Claims {
        Claims {
            iss: "berth".into(),
            sub: None,
            aud: Audience::single("container_registry"),
            iat: 0,
            nbf: 0,
            exp: 0,
            jti: "j".into(),
            auth_type: None,
            access: entries
                .iter()
                .map(|(name, id)| Access {
                    meta: id.map(|id| AccessMeta {
                        project_id: Some(id),
                        ..AccessMeta::default()
                    }),
                    ..Access::repository(*name, &["pull"])
                })
                .collect(),
        }
    }

    fn owner(id: Option<i64>) -> Owner {
        Owner {
            path: "g/app".into(),
            info: ProjectInfo {
                id,
                access: RegistryAccess::Enabled,
            },
        }
    }

    #[test]
    fn a_grant_is_bound_to_the_project_it_was_issued_for() {
        let name = "g/app/api";
        let issued = claims(&[(name, Some(7))]);
        assert!(issued_for(&issued, name, Some(&owner(Some(7)))));
        // The project was deleted and another one made at the same path.
        assert!(!issued_for(&issued, name, Some(&owner(Some(8)))));
        // The project was deleted and nothing took its path.
        assert!(!issued_for(&issued, name, None));
        // A grant without a project id is bound to nothing, so it is refused where the
        // owner's id is known.
        assert!(!issued_for(
            &claims(&[(name, None)]),
            name,
            Some(&owner(Some(7)))
        ));
        // Every entry for the name counts, not only the first.
        assert!(!issued_for(
            &claims(&[(name, Some(7)), (name, Some(8))]),
            name,
            Some(&owner(Some(7)))
        ));
        // Entries for other names do not matter.
        assert!(issued_for(
            &claims(&[(name, Some(7)), ("g/other", Some(9))]),
            name,
            Some(&owner(Some(7)))
        ));
        // Configured projects have no ids: nothing to bind to.
        assert!(issued_for(
            &claims(&[(name, None)]),
            name,
            Some(&owner(None))
        ));
        assert!(issued_for(&claims(&[(name, None)]), name, None));
    }
}
