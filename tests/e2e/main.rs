//! End-to-end tests: the real `berth-registry` binary, a real database (SQLite and
//! PostgreSQL), real clients. One module per scenario.

mod images;
mod jobs;
mod stack;
mod support;

mod api;
mod auth;
mod auth_keys;
mod bounded;
mod bounds;
mod cleanup_policy;
mod clients;
mod concurrency;
mod confinement;
mod credentials;
mod expiration_policy;
mod gc;
mod gc_check;
mod immutable_tags;
mod input_bounds;
mod log_secrets;
mod manifest_delete_api;
mod matrix;
mod openapi;
mod owners;
mod podman;
mod python_gitlab;
mod quota;
mod registry_api;
mod registry_api_access;
mod registry_deletions;
mod registry_disabled;
mod resume;
mod tag_delete_api;
mod tag_listing;
mod token_binding;
mod tokens;
mod upload_bounds;
mod usage_facts;
