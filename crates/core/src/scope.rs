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
}
