//! sea-orm entities, one module per table.

pub mod blobs;
pub mod ci_jobs;
pub mod container_expiration_policies;
pub mod container_repository_cleanups;
pub mod deploy_tokens;
pub mod gc_blob_review_queue;
pub mod gc_manifest_review_queue;
pub mod job_token_allowlist;
pub mod jobs;
pub mod layers;
pub mod manifest_references;
pub mod manifests;
pub mod members;
pub mod namespaces;
pub mod oauth_access_tokens;
pub mod personal_access_tokens;
pub mod projects;
pub mod refresh_tokens;
pub mod repositories;
pub mod repository_blobs;
pub mod signing_keys;
pub mod tag_immutability_rules;
pub mod tags;
pub mod uploads;
pub mod users;
