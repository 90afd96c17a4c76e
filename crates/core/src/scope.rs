//! Token scopes (`repository:<name>:<actions>`, `registry:catalog:*`) and the action each
//! HTTP method needs.

use std::fmt;

/// An action a token can grant on a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Read manifests and blobs.
    Pull,
    /// Write manifests and blobs.
    Push,
    /// Delete manifests, tags and blobs.
    Delete,
    /// Everything (`*`).
    All,
}

impl Action {
    /// The action's name in a scope string and in the JWT `access` claim.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Pull => "pull",
            Action::Push => "push",
            Action::Delete => "delete",
            Action::All => "*",
        }
    }

    /// What a request with `method` needs on its repository (Distribution's mapping).
    pub fn required_for(method: &str) -> &'static [Action] {
        match method {
            "GET" | "HEAD" => &[Action::Pull],
            "DELETE" => &[Action::Delete],
            _ => &[Action::Pull, Action::Push],
        }
    }
}

/// A resource and the actions wanted on it, as in a `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    /// `repository` or `registry`.
    pub resource_type: &'static str,
    /// Repository name, or `catalog`.
    pub name: String,
    /// The actions.
    pub actions: Vec<Action>,
}

impl Scope {
    /// A repository scope.
    pub fn repository(name: impl Into<String>, actions: &[Action]) -> Self {
        Scope {
            resource_type: "repository",
            name: name.into(),
            actions: actions.to_vec(),
        }
    }

    /// `registry:catalog:*`
    pub fn catalog() -> Self {
        Scope {
            resource_type: "registry",
            name: "catalog".into(),
            actions: vec![Action::All],
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:", self.resource_type, self.name)?;
        for (i, a) in self.actions.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(a.as_str())?;
        }
        Ok(())
    }
}

/// Most scopes one token request may ask for. Docker, Podman, Buildah and GitLab's
/// clients ask for one to three (the repository, plus a source for a cross-repository
/// mount); each scope costs the token server a few database reads and the token some
/// hundred bytes, so a request asking for more is refused whole instead of served slowly
/// (an anonymous request with 1,900 scopes took most of a CPU second).
pub const MAX_REQUESTED_SCOPES: usize = 16;

/// A token request asked for more than [`MAX_REQUESTED_SCOPES`] scopes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{requested} scopes requested; a token request may ask for at most {MAX_REQUESTED_SCOPES}")]
pub struct TooManyScopes {
    /// How many the request held (every whitespace-separated item, readable or not).
    pub requested: usize,
}

/// Parse the `scope` values of a token request (`/jwt/auth?scope=…&scope=…`), the way
/// Distribution and GitLab read them: each value may hold several scopes separated by
/// whitespace; a scope is `type:name:actions` where the name may itself contain a `:` (a
/// registry host with a port), so the type ends at the first `:` and the actions start
/// after the last. Unknown types, unknown actions and invalid names are dropped, never an
/// error: the token server grants what it can and the registry refuses the rest. More than
/// [`MAX_REQUESTED_SCOPES`] items, readable or not, is [`TooManyScopes`]: counted before
/// anything is parsed, so the refusal costs no more than counting.
pub fn parse_requested<'a>(
    values: impl IntoIterator<Item = &'a str> + Clone,
) -> Result<Vec<Scope>, TooManyScopes> {
    let requested = values
        .clone()
        .into_iter()
        .flat_map(str::split_whitespace)
        .count();
    if requested > MAX_REQUESTED_SCOPES {
        return Err(TooManyScopes { requested });
    }
    let mut out: Vec<Scope> = Vec::new();
    for scope in values.into_iter().flat_map(str::split_whitespace) {
        let Some((kind, rest)) = scope.split_once(':') else {
            continue;
        };
        let Some((name, actions)) = rest.rsplit_once(':') else {
            continue;
        };
        let parsed = match kind {
            "repository" if crate::RepoName::parse(name).is_ok() => {
                let mut unique: Vec<Action> = Vec::new();
                for action in actions.split(',').filter_map(|a| match a.trim() {
                    "pull" => Some(Action::Pull),
                    "push" => Some(Action::Push),
                    "delete" => Some(Action::Delete),
                    "*" => Some(Action::All),
                    _ => None,
                }) {
                    if !unique.contains(&action) {
                        unique.push(action);
                    }
                }
                Scope::repository(name, &unique)
            }
            // Only `registry:catalog:*` exists.
            "registry" if name == "catalog" && actions == "*" => Scope::catalog(),
            _ => continue,
        };
        if parsed.actions.is_empty() {
            continue;
        }
        // The same resource asked twice: merge the actions.
        match out
            .iter_mut()
            .find(|s| s.resource_type == parsed.resource_type && s.name == parsed.name)
        {
            Some(existing) => {
                for a in parsed.actions {
                    if !existing.actions.contains(&a) {
                        existing.actions.push(a);
                    }
                }
            }
            None => out.push(parsed),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_mapping_and_display() {
        assert_eq!(Action::required_for("HEAD"), &[Action::Pull]);
        assert_eq!(Action::required_for("PATCH"), &[Action::Pull, Action::Push]);
        assert_eq!(Action::required_for("DELETE"), &[Action::Delete]);
        let s = Scope::repository("a/b", Action::required_for("PUT"));
        assert_eq!(s.to_string(), "repository:a/b:pull,push");
        assert_eq!(Scope::catalog().to_string(), "registry:catalog:*");
    }

    #[test]
    fn parses_token_request_scopes() {
        let got = parse_requested([
            "repository:acme/app:pull,push",
            "repository:acme/app/worker:pull repository:acme/lib:delete",
            "registry:catalog:*",
            "repository:acme/app:delete,bogus,pull,delete",
        ])
        .unwrap();
        let want = vec![
            Scope::repository("acme/app", &[Action::Pull, Action::Push, Action::Delete]),
            Scope::repository("acme/app/worker", &[Action::Pull]),
            Scope::repository("acme/lib", &[Action::Delete]),
            Scope::catalog(),
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn drops_what_it_cannot_read() {
        for bad in [
            "",
            "repository",
            "repository:acme/app",
            "repository:Acme/App:pull",
            "repository:acme/app:bogus",
            "registry:catalog:pull",
            "registry:other:*",
            "plugin:acme/app:pull",
        ] {
            assert_eq!(parse_requested([bad]), Ok(vec![]), "{bad:?}");
        }
        // A name holding a host:port keeps its colon (the name is then invalid for us).
        assert_eq!(
            parse_requested(["repository:localhost:5000/acme/app:pull"]),
            Ok(vec![])
        );
        assert_eq!(
            parse_requested(["repository:acme/app:*"]),
            Ok(vec![Scope::repository("acme/app", &[Action::All])])
        );
    }

    #[test]
    fn refuses_more_scopes_than_the_cap() {
        let names: Vec<String> = (0..=MAX_REQUESTED_SCOPES)
            .map(|i| format!("repository:acme/app{i}:pull"))
            .collect();
        let at_cap = parse_requested(names[..MAX_REQUESTED_SCOPES].iter().map(String::as_str));
        assert_eq!(at_cap.map(|s| s.len()), Ok(MAX_REQUESTED_SCOPES));
        assert_eq!(
            parse_requested(names.iter().map(String::as_str)),
            Err(TooManyScopes {
                requested: MAX_REQUESTED_SCOPES + 1
            })
        );
        // Items in one value count one by one, and unreadable ones count too.
        let packed = vec!["bogus"; 1900].join(" ");
        assert_eq!(
            parse_requested([packed.as_str()]),
            Err(TooManyScopes { requested: 1900 })
        );
    }
}
