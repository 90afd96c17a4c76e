//! Berth's pure domain: digests, repository names, references, media types, manifests,
//! scopes, immutable tag patterns, cleanup-policy settings, bounded user regexes and the OCI
//! error codes. No I/O lives here.

pub mod access;
pub mod cleanup;
pub mod cleanup_policy;
pub mod digest;
pub mod error;
pub mod immutability;
pub mod jobs;
pub mod manifest;
pub mod name;
pub mod route;
pub mod scope;
pub mod user_regex;

pub use digest::{Algorithm, Digest, DigestError, DigestHasher};
pub use error::ErrorCode;
pub use name::{Reference, RepoName};
