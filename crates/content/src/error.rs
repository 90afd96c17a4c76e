//! Why a change to registry content was refused or failed. Each binary maps this once into
//! its protocol's errors (OCI JSON in the registry, GitLab JSON in the API).

use berth_db::usage::Limit;

use crate::retry::Retryable;

/// What an immutable tag protected it from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protected {
    /// Moving the tag to another manifest.
    Overwrite,
    /// Deleting the tag.
    Delete,
    /// Deleting the manifest the tag points at.
    DeleteManifest,
}

/// A reference a manifest makes that the repository does not hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missing {
    /// A config or layer blob not linked to the repository.
    Blob,
    /// An index child not in the repository.
    Manifest,
    /// Present when read, then garbage-collected before the write committed.
    Collected,
}

/// A refused or failed content change.
#[derive(Debug, thiserror::Error)]
pub enum ContentError {
    /// No manifest with that digest in the repository.
    #[error("manifest unknown")]
    ManifestUnknown,
    /// No tag with that name in the repository.
    #[error("tag {0} not found")]
    TagUnknown(String),
    /// An immutable tag rule protects `tag`.
    #[error("tag {tag} is immutable (pattern {pattern})")]
    TagImmutable {
        /// The protected tag.
        tag: String,
        /// The rule that matched.
        pattern: String,
        /// What was refused.
        action: Protected,
    },
    /// The manifest is a child of an index in the repository.
    #[error("the manifest is referenced by an index; delete the index first")]
    ManifestReferenced,
    /// The manifest references `digest`, which the repository does not hold.
    #[error("{digest} is not in this repository ({what:?})")]
    ReferenceUnknown {
        /// The missing digest (empty for [`Missing::Collected`]).
        digest: String,
        /// What kind of reference.
        what: Missing,
    },
    /// Tagging would take a project's or namespace's usage over its storage limit.
    #[error("storage limit of {} exceeded ({usage} bytes)", limit.path)]
    QuotaExceeded {
        /// The limit exceeded.
        limit: Limit,
        /// The usage the write would have brought.
        usage: i64,
    },
    /// The blob is still referenced by `manifests` live manifests of the repository.
    #[error("blob {digest} is referenced by {manifests} manifest(s) of this repository")]
    BlobInUse {
        /// The blob.
        digest: String,
        /// How many manifests reference it.
        manifests: u64,
    },
    /// The database failed; its kind says how.
    #[error(transparent)]
    Db(#[from] berth_db::Error),
}

impl From<sea_orm::DbErr> for ContentError {
    fn from(e: sea_orm::DbErr) -> Self {
        ContentError::Db(e.into())
    }
}

impl Retryable for ContentError {
    fn is_retryable(&self) -> bool {
        // The trait's rule (a lost race: serialization, deadlock, or a unique or foreign-key
        // conflict raised after the operation's own checks), not `Error::is_retryable`'s
        // narrower one.
        matches!(self, ContentError::Db(e) if Retryable::is_retryable(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_db::ErrorKind;

    #[test]
    fn lost_races_are_retried_and_refusals_are_not() {
        for kind in [
            ErrorKind::Retryable,
            ErrorKind::UniqueConflict,
            ErrorKind::ForeignKeyConflict,
        ] {
            assert!(
                ContentError::Db(berth_db::Error::new(kind, "x")).is_retryable(),
                "{kind:?}"
            );
        }
        for kind in [
            ErrorKind::NotFound,
            ErrorKind::Unavailable,
            ErrorKind::Other,
        ] {
            assert!(
                !ContentError::Db(berth_db::Error::new(kind, "x")).is_retryable(),
                "{kind:?}"
            );
        }
        assert!(!ContentError::ManifestUnknown.is_retryable());
    }
}
