//! Repository names (the OCI grammar, at most 255 characters) and manifest references.

use std::fmt;

use crate::digest::{Digest, DigestError};

/// Longest repository name accepted (Distribution's limit, also GitLab's).
pub const MAX_NAME_LEN: usize = 255;

/// Why a repository name is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Empty name.
    #[error("repository name must not be empty")]
    Empty,
    /// Over [`MAX_NAME_LEN`].
    #[error("repository name must not be longer than 255 characters")]
    TooLong,
    /// A path component breaks `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`.
    #[error(
        "invalid path component {0:?}: use lowercase letters, digits and single separators (., _, __, -)"
    )]
    BadComponent(String),
}

/// A validated repository name such as `acme/platform/api`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RepoName(String);

impl RepoName {
    /// Validate `s` against the OCI name grammar.
    pub fn parse(s: &str) -> Result<Self, NameError> {
        if s.is_empty() {
            return Err(NameError::Empty);
        }
        if s.len() > MAX_NAME_LEN {
            return Err(NameError::TooLong);
        }
        for component in s.split('/') {
            if !valid_component(component) {
                return Err(NameError::BadComponent(component.to_owned()));
            }
        }
        Ok(RepoName(s.to_owned()))
    }

    /// The name as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The path components.
    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }

    /// The first segment: the root namespace.
    pub fn root_namespace(&self) -> &str {
        self.0.split('/').next().unwrap_or(&self.0)
    }
}

impl fmt::Display for RepoName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*` without a regex engine.
fn valid_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    let (mut i, n) = (0, b.len());
    loop {
        // A run of alphanumerics.
        let start = i;
        while i < n && alnum(b[i]) {
            i += 1;
        }
        if i == start {
            return false;
        }
        if i == n {
            return true;
        }
        // A separator: ".", "_", "__" or one or more "-".
        match b[i] {
            b'.' => i += 1,
            b'_' => {
                i += 1;
                if i < n && b[i] == b'_' {
                    i += 1;
                }
            }
            b'-' => {
                while i < n && b[i] == b'-' {
                    i += 1;
                }
            }
            _ => return false,
        }
    }
}

/// Longest tag accepted by the spec.
pub const MAX_TAG_LEN: usize = 128;

/// What follows `/manifests/`: a tag or a digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Reference {
    /// `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`
    Tag(String),
    /// A content digest.
    Digest(Digest),
}

/// Why a reference is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    /// Neither a tag nor a digest.
    #[error("invalid tag: use up to 128 characters of [A-Za-z0-9_.-], not starting with . or -")]
    BadTag,
    /// Looked like a digest but is not a valid one.
    #[error(transparent)]
    BadDigest(#[from] DigestError),
}

impl Reference {
    /// Parse a tag or digest; anything containing `:` is treated as a digest.
    pub fn parse(s: &str) -> Result<Self, ReferenceError> {
        if s.contains(':') {
            return Ok(Reference::Digest(s.parse()?));
        }
        if is_valid_tag(s) {
            Ok(Reference::Tag(s.to_owned()))
        } else {
            Err(ReferenceError::BadTag)
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reference::Tag(t) => f.write_str(t),
            Reference::Digest(d) => d.fmt(f),
        }
    }
}

/// The spec's tag grammar.
pub fn is_valid_tag(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= MAX_TAG_LEN
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b[1..]
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || c == b'_' || c == b'.' || c == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_spec_names() {
        for ok in [
            "a",
            "acme/platform/api",
            "acme/platform/api/tools/lint",
            "a.b/c_d/e__f/g-h/i---j",
            "0/1/2",
            "foo.bar-baz_qux",
        ] {
            assert!(RepoName::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn rejects_bad_names() {
        for bad in [
            "",
            "/",
            "a/",
            "/a",
            "a//b",
            "A",
            "acme/Platform",
            "a..b",
            "a___b",
            "-a",
            "a-",
            "a.",
            "_a",
            "a/.b",
            "a b",
            "a/../b",
            "a:b",
            "é",
        ] {
            assert!(RepoName::parse(bad).is_err(), "{bad:?} should be rejected");
        }
        let long = format!("a/{}", "b".repeat(254));
        assert_eq!(RepoName::parse(&long), Err(NameError::TooLong));
        let max = "c".repeat(255);
        assert!(RepoName::parse(&max).is_ok());
    }

    #[test]
    fn root_namespace_is_first_segment() {
        let n = RepoName::parse("acme/platform/api").unwrap();
        assert_eq!(n.root_namespace(), "acme");
        assert_eq!(n.segments().count(), 3);
    }

    #[test]
    fn references() {
        assert_eq!(
            Reference::parse("v1.0").unwrap(),
            Reference::Tag("v1.0".into())
        );
        assert_eq!(Reference::parse("_x").unwrap(), Reference::Tag("_x".into()));
        assert!(Reference::parse(&"a".repeat(128)).is_ok());
        for bad in ["", ".v", "-v", "a/b", &"a".repeat(129)] {
            assert!(Reference::parse(bad).is_err(), "{bad}");
        }
        assert!(matches!(
            Reference::parse("sha256:abc"),
            Err(ReferenceError::BadDigest(_))
        ));
        let d = Digest::sha256(b"x");
        assert_eq!(
            Reference::parse(&d.to_string()).unwrap(),
            Reference::Digest(d)
        );
    }
}
