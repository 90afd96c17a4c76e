//! Parses `/v2/...` paths into OCI routes. Repository names contain slashes, so the
//! route is recognised from the end of the path, never by a route per path depth.

use crate::digest::Digest;
use crate::name::{NameError, Reference, ReferenceError, RepoName};

/// One endpoint of the distribution API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `/v2/`
    Base,
    /// `/v2/_catalog`
    Catalog,
    /// `/v2/<name>/tags/list`
    Tags(RepoName),
    /// `/v2/<name>/manifests/<reference>`
    Manifest(RepoName, Reference),
    /// `/v2/<name>/blobs/<digest>`
    Blob(RepoName, Digest),
    /// `/v2/<name>/blobs/uploads/`
    Uploads(RepoName),
    /// `/v2/<name>/blobs/uploads/<id>`
    Upload(RepoName, String),
    /// `/v2/<name>/referrers/<digest>`
    Referrers(RepoName, Digest),
}

impl Route {
    /// The repository the route addresses, if any.
    pub fn repository(&self) -> Option<&RepoName> {
        match self {
            Route::Base | Route::Catalog => None,
            Route::Tags(n)
            | Route::Manifest(n, _)
            | Route::Blob(n, _)
            | Route::Uploads(n)
            | Route::Upload(n, _)
            | Route::Referrers(n, _) => Some(n),
        }
    }
}

/// Why a `/v2/` path is not a route.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    /// No endpoint has this shape.
    #[error("not found")]
    NotFound,
    /// The endpoint matched but the repository name is invalid.
    #[error(transparent)]
    Name(#[from] NameError),
    /// The endpoint matched but the reference is invalid.
    #[error(transparent)]
    Reference(#[from] ReferenceError),
}

/// Parse the part of the path after `/v2/` (e.g. `acme/app/manifests/latest`).
pub fn parse(rest: &str) -> Result<Route, RouteError> {
    if rest.is_empty() {
        return Ok(Route::Base);
    }
    if rest == "_catalog" {
        return Ok(Route::Catalog);
    }
    let segs: Vec<&str> = rest.split('/').collect();
    let n = segs.len();
    let name = |upto: usize| -> Result<RepoName, RouteError> {
        if upto == 0 {
            return Err(RouteError::NotFound);
        }
        Ok(RepoName::parse(&segs[..upto].join("/"))?)
    };
    // Longest fixed suffixes first, so `.../blobs/uploads/` is never read as a blob.
    if n >= 3 && segs[n - 3] == "blobs" && segs[n - 2] == "uploads" {
        let name = name(n - 3)?;
        return Ok(match segs[n - 1] {
            "" => Route::Uploads(name),
            id => Route::Upload(name, id.to_owned()),
        });
    }
    if n >= 2 {
        let (kind, last) = (segs[n - 2], segs[n - 1]);
        match kind {
            "tags" if last == "list" => return Ok(Route::Tags(name(n - 2)?)),
            "blobs" if last == "uploads" => return Ok(Route::Uploads(name(n - 2)?)),
            "manifests" => {
                let name = name(n - 2)?;
                return Ok(Route::Manifest(name, Reference::parse(last)?));
            }
            "blobs" => {
                let name = name(n - 2)?;
                let digest = last.parse().map_err(ReferenceError::from)?;
                return Ok(Route::Blob(name, digest));
            }
            "referrers" => {
                let name = name(n - 2)?;
                let digest = last.parse().map_err(ReferenceError::from)?;
                return Ok(Route::Referrers(name, digest));
            }
            _ => {}
        }
    }
    Err(RouteError::NotFound)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> RepoName {
        RepoName::parse(s).unwrap()
    }

    #[test]
    fn parses_every_route() {
        let d = Digest::sha256(b"x");
        let ds = d.to_string();
        let cases: Vec<(String, Route)> = vec![
            ("".into(), Route::Base),
            ("_catalog".into(), Route::Catalog),
            ("a/b/tags/list".into(), Route::Tags(name("a/b"))),
            (
                "a/b/c/manifests/v1".into(),
                Route::Manifest(name("a/b/c"), Reference::Tag("v1".into())),
            ),
            (
                format!("a/b/manifests/{ds}"),
                Route::Manifest(name("a/b"), Reference::Digest(d.clone())),
            ),
            (
                format!("a/b/blobs/{ds}"),
                Route::Blob(name("a/b"), d.clone()),
            ),
            ("a/b/blobs/uploads/".into(), Route::Uploads(name("a/b"))),
            ("a/b/blobs/uploads".into(), Route::Uploads(name("a/b"))),
            (
                "a/b/blobs/uploads/123-abc".into(),
                Route::Upload(name("a/b"), "123-abc".into()),
            ),
            (
                format!("a/b/referrers/{ds}"),
                Route::Referrers(name("a/b"), d.clone()),
            ),
            // Names may contain the endpoint words themselves.
            (
                "blobs/manifests/manifests/tags".into(),
                Route::Manifest(name("blobs/manifests"), Reference::Tag("tags".into())),
            ),
            ("tags/list/tags/list".into(), Route::Tags(name("tags/list"))),
            (
                "x/blobs/uploads/blobs/uploads/".into(),
                Route::Uploads(name("x/blobs/uploads")),
            ),
        ];
        for (path, want) in cases {
            assert_eq!(parse(&path), Ok(want), "{path}");
        }
    }

    #[test]
    fn rejects_bad_paths() {
        assert_eq!(parse("a/b"), Err(RouteError::NotFound));
        assert_eq!(parse("manifests/v1"), Err(RouteError::NotFound));
        assert_eq!(parse("a/b/tags/other"), Err(RouteError::NotFound));
        assert!(matches!(parse("A/manifests/v1"), Err(RouteError::Name(_))));
        assert!(matches!(
            parse("a//b/manifests/v1"),
            Err(RouteError::Name(_))
        ));
        assert!(matches!(
            parse("a/manifests/-bad"),
            Err(RouteError::Reference(_))
        ));
        assert!(matches!(
            parse("a/blobs/sha256:zz"),
            Err(RouteError::Reference(_))
        ));
        assert!(matches!(parse("../manifests/v1"), Err(RouteError::Name(_))));
    }
}
