//! Bearer-token authentication for `/v2/`: verify the JWT (signature, issuer, audience,
//! times) and check that its `access` claim covers what the request needs. Authorization
//! needs depend on the route, so handlers call [`authorize`] with their scopes.

use std::sync::{Arc, LazyLock};

use axum::http::HeaderMap;
use berth_core::immutability::{PatternCache, TagPatterns};
use berth_core::scope::{Action, Scope};
use berth_token::{Claims, VerifyError};

use crate::error::{RegistryError, Result};
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

/// Authenticate and require `actions` on repository `name`, then refuse it if its
/// project's registry is disabled (`REGISTRY_DISABLED`, for everyone): a token issued before the
/// switch stops working within [`crate::projects::DIRECTORY_TTL`]. Checked after the token
/// so an anonymous caller still gets the challenge and learns nothing about the project.
pub async fn authorize(
    state: &AppState,
    headers: &HeaderMap,
    name: &str,
    actions: &[Action],
) -> Result<Arc<Claims>> {
    let scope = [Scope::repository(name, actions)];
    let claims = authorize_with(state, headers, &scope, &scope).await?;
    crate::projects::require_enabled(state.projects.as_ref(), name).await?;
    Ok(claims)
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
