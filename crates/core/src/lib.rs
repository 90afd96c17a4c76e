//! Berth's pure domain: digests, repository names, references, media types, manifests,
//! scopes and the OCI error codes. No I/O lives here.

pub mod access;
pub mod digest;
pub mod error;
pub mod manifest;
pub mod name;
pub mod route;
pub mod scope;

pub use digest::{Algorithm, Digest, DigestError, DigestHasher};
pub use error::ErrorCode;
pub use name::{Reference, RepoName};
